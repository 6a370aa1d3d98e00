#pragma once

// The history state machine: (mutable state, input) -> (events, state changes, tasks).
//
// Pure: no I/O, no clock reads (time is an input), no locks. The history engine loads a
// run's MutableState, calls one of these functions on a copy, and persists the copy, the
// new events and the tasks in one transaction. Every rule of Temporal's event model that
// the SDKs rely on lives here, so each is unit-tested without a database.
//
// Event rules kept here:
//  - event ids are dense from 1;
//  - a workflow task is Scheduled, Started, then Completed, Failed or TimedOut; retries
//    after a failure are transient (no events) until one completes;
//  - events that arrive while a workflow task is started (or transient) are buffered and
//    written after it ends; a command closing the run while events wait is refused;
//  - an activity's Started event is written together with its terminal event.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "persistence/visibility_query.h"
#include "temporal/api/enums/v1/failed_cause.pb.h"
#include "temporal/api/history/v1/message.pb.h"
#include "temporal/api/update/v1/message.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::history {

namespace api = temporal::api;
using api::history::v1::HistoryEvent;

// A run that succeeds the mutated one in its chain (a workflow retry), created with it.
struct NewRun {
  v1::MutableState state;
  std::vector<HistoryEvent> events;
};

// What a workflow task completion did to one update, for the engine's update registry.
struct UpdateResult {
  enum class Kind { kAccepted, kRejected, kCompleted };
  std::string update_id;
  Kind kind = Kind::kAccepted;
  api::update::v1::Outcome outcome;  // kRejected (its failure) and kCompleted
};

// What one mutation produced besides the new state. Tasks carry no shard or task id yet:
// the engine assigns them. Tasks may belong to the new run (each names its run).
struct Effects {
  std::vector<HistoryEvent> events;
  std::vector<v1::TransferTask> transfer_tasks;
  std::vector<v1::TimerTask> timer_tasks;
  bool closed = false;  // the run closed in this mutation
  std::optional<NewRun> new_run;
  std::vector<UpdateResult> updates;  // update messages a completion applied
  // Ids of events (not the first) that begin a new batch; empty: `events` is one batch.
  std::vector<int64_t> batch_starts;
};

// What closing a run needs to start its successor. The engine fills it only for runs that
// may have one (a retry policy), so no other mutation reads the first event.
struct ChainContext {
  const HistoryEvent* started_event = nullptr;  // the closing run's WorkflowExecutionStarted
  std::string next_run_id;                      // the successor's run id, if one starts
};

// Limits and defaults that come from configuration, not from the request. The defaults are
// Temporal's.
struct Limits {
  absl::Duration default_workflow_task_timeout = absl::Seconds(10);
  absl::Duration max_workflow_task_timeout = absl::Seconds(120);
  int max_id_length = 1000;
  int64_t history_count_warn = 10240;
  int64_t history_count_error = 51200;
  int64_t history_size_warn = 10 * 1024 * 1024;
  int64_t history_size_error = 50 * 1024 * 1024;
  int max_pending_activities = 2000;
  int64_t blob_size_error = 2 * 1024 * 1024;
  int max_in_flight_updates = 10;   // admitted or accepted, not yet completed, per run
  int max_total_updates = 2000;     // distinct updates a run may receive
  int max_pending_children = 2000;  // child workflows started and not yet closed, per run
  int max_pending_signals = 2000;   // signals to other workflows not yet delivered, per run
  int max_pending_cancel_requests = 2000;  // cancellations of other workflows, likewise
};

// A child's parent, as the child's runs record it.
struct ParentInfo {
  std::string namespace_name;
  std::string namespace_id;
  std::string workflow_id;
  std::string run_id;
  int64_t initiated_event_id = 0;  // the parent's StartChildWorkflowExecutionInitiated
  std::string root_workflow_id;    // the root of the parent's own tree
  std::string root_run_id;
};

struct StartParams {
  std::string namespace_id;
  std::string run_id;
  std::string first_execution_run_id;  // empty: this run starts the chain
  absl::Time now;
  // Signal-with-start: the signal, recorded right after WorkflowExecutionStarted.
  const api::history::v1::WorkflowExecutionSignaledEventAttributes* signal = nullptr;
  // A child workflow: its parent.
  const ParentInfo* parent = nullptr;
  // A schedule's action: the schedule's id.
  std::string scheduled_by;
};

// Builds a new run's state from a start request and schedules its first workflow task.
void StartWorkflow(const api::workflowservice::v1::StartWorkflowExecutionRequest& request,
                   const StartParams& params, const Limits& limits, v1::MutableState* ms,
                   Effects* fx);

// Schedules a workflow task unless one is pending, the run is closed, or its first workflow
// task waits for a backoff.
void ScheduleWorkflowTask(absl::Time now, v1::MutableState* ms, Effects* fx);

// Schedules a workflow task that carries only updates: its Scheduled and Started events are
// written only if its completion writes anything (a rejection writes nothing). Becomes a
// normal task if other events are written before it starts.
void ScheduleSpeculativeWorkflowTask(absl::Time now, v1::MutableState* ms, Effects* fx);

// What the poll response needs from a workflow task that was just started.
struct WorkflowTaskStarted {
  int64_t scheduled_event_id = 0;
  int64_t started_event_id = 0;
  int64_t previous_started_event_id = 0;
  int32_t attempt = 0;
  bool sticky = false;
  int64_t stamp = 0;
  absl::Time scheduled_time;
  absl::Time started_time;
  // For a transient task: its Scheduled and Started events, which the worker sees at the
  // end of its history though they are not yet written.
  std::vector<HistoryEvent> transient_events;
};

// Starts the workflow task with `stamp`. kNotFound when the run or task moved on (the task
// is then dropped). A repeat of the same poll request returns the same start.
absl::StatusOr<WorkflowTaskStarted> RecordWorkflowTaskStarted(int64_t stamp,
                                                              const std::string& request_id,
                                                              const std::string& identity,
                                                              absl::Time now,
                                                              v1::MutableState* ms, Effects* fx,
                                                              const Limits& limits = Limits());

// Checks that a worker's task token names the run's started workflow task.
absl::Status ValidateWorkflowTaskToken(const v1::TaskToken& token, const v1::MutableState& ms);

// Applies a worker's completion: its commands, then flushes buffered events and schedules
// the next workflow task when one is due. A command that cannot be applied fails the
// workflow task instead, and nothing of the completion is kept.
struct CompletionOutcome {
  bool workflow_task_failed = false;  // the completion was refused
  std::string failure_message;
  // A speculative task whose completion wrote nothing was discarded: the worker is told to
  // go back to the last started event of a workflow task that history kept.
  int64_t reset_history_event_id = 0;
};
// What a completion needs besides the request that the state does not hold.
struct CompletionContext {
  std::string namespace_name;  // the run's namespace, named by events that target a namespace
  // The requests of the updates this task carried, by update id (the registry's copies).
  std::map<std::string, api::update::v1::Request> update_requests;
  // Updates admitted that this task did not carry: they refuse a command that closes the
  // run, and get a workflow task of their own after this one.
  bool updates_waiting = false;
  // The ids of the namespaces the completion's StartChildWorkflowExecution commands name,
  // by name; a name missing here does not exist.
  std::map<std::string, std::string> namespace_ids;
  // The namespace's custom search attributes, against which commands' attributes are checked.
  persistence::SearchAttributeSchema search_attributes;
};
// The cause as Temporal names it in messages: WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
// is "BadSearchAttributes".
std::string WorkflowTaskFailedCauseName(api::enums::v1::WorkflowTaskFailedCause cause);

CompletionOutcome CompleteWorkflowTask(
    const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request,
    const Limits& limits, const ChainContext& chain, const CompletionContext& context,
    absl::Time now, v1::MutableState* ms, Effects* fx);

// Fails the started workflow task: WorkflowTaskFailed for a first failure, nothing for a
// transient retry; then schedules the next attempt.
void FailWorkflowTask(api::enums::v1::WorkflowTaskFailedCause cause,
                      const api::failure::v1::Failure& failure, const std::string& identity,
                      const std::string& binary_checksum, absl::Time now, v1::MutableState* ms,
                      Effects* fx);

// Handles a workflow task timeout timer. Does nothing when the task moved on.
void TimeoutWorkflowTask(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms,
                         Effects* fx);

// Moves a workflow task that could not reach its sticky queue back to the normal queue.
// Returns false when the task moved on.
bool ClearStickyForTask(int64_t stamp, v1::MutableState* ms);

// Starts an activity attempt. kNotFound when the activity or attempt moved on.
absl::StatusOr<v1::ActivityInfo> RecordActivityTaskStarted(int64_t scheduled_event_id,
                                                           int64_t stamp,
                                                           const std::string& request_id,
                                                           const std::string& identity,
                                                           absl::Time now,
                                                           v1::MutableState* ms, Effects* fx);

// Finds the started activity a token names. kNotFound when it moved on.
absl::StatusOr<v1::ActivityInfo*> FindStartedActivity(const v1::TaskToken& token,
                                                      v1::MutableState* ms);

void CompleteActivityTask(int64_t scheduled_event_id,
                          const api::common::v1::Payloads& result, const std::string& identity,
                          absl::Time now, v1::MutableState* ms, Effects* fx);
// Fails an attempt: schedules a retry when the retry policy allows one, else writes
// ActivityTaskFailed with the retry state.
void FailActivityTask(int64_t scheduled_event_id, const api::failure::v1::Failure& failure,
                      const std::string& identity, absl::Time now, v1::MutableState* ms,
                      Effects* fx);
void CancelActivityTask(int64_t scheduled_event_id, const api::common::v1::Payloads& details,
                        const std::string& identity, absl::Time now, v1::MutableState* ms,
                        Effects* fx);
// Records a heartbeat. Returns whether cancellation was requested.
bool HeartbeatActivity(int64_t scheduled_event_id, const api::common::v1::Payloads& details,
                       absl::Time now, v1::MutableState* ms);

// Timer tasks. Each does nothing when the state has moved on.
void FireUserTimer(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms,
                   Effects* fx);
void TimeoutActivity(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms,
                     Effects* fx);
// Returns true when the retry is due and the activity should be dispatched again.
bool ActivityRetryDue(const v1::TimerTask& timer, const v1::MutableState& ms);

// Records a cancellation request (WorkflowExecutionCancelRequested) for the worker to act on.
// A repeat request is accepted and changes nothing.
void RequestCancelWorkflow(api::history::v1::WorkflowExecutionCancelRequestedEventAttributes attrs,
                           absl::Time now, v1::MutableState* ms, Effects* fx);

// Records a signal (WorkflowExecutionSignaled): buffered while a workflow task runs, else
// written with a workflow task to deliver it.
void SignalWorkflow(api::history::v1::WorkflowExecutionSignaledEventAttributes attrs,
                    absl::Time now, v1::MutableState* ms, Effects* fx);

// Records how a signal or cancellation this run sent to another workflow ended: delivered
// (ExternalWorkflowExecutionSignaled / ...CancelRequested) or failed with `cause`.
// `initiated` is the command's Initiated event. Does nothing when the request is no longer
// pending.
void CompleteExternalSignal(const HistoryEvent& initiated,
                            api::enums::v1::SignalExternalWorkflowExecutionFailedCause cause,
                            absl::Time now, v1::MutableState* ms, Effects* fx);
void CompleteExternalCancel(const HistoryEvent& initiated,
                            api::enums::v1::CancelExternalWorkflowExecutionFailedCause cause,
                            absl::Time now, v1::MutableState* ms, Effects* fx);

// Child workflows, as their parent records them. Each returns false, changing nothing, when
// the child is no longer pending in the run (or the run is closed). `initiated` is the
// child's StartChildWorkflowExecutionInitiated event.
//
// The child started: ChildWorkflowExecutionStarted (`run_id` is its first run).
bool RecordChildStarted(const HistoryEvent& initiated, const std::string& run_id, absl::Time now,
                        v1::MutableState* ms, Effects* fx);
// The child could not start: StartChildWorkflowExecutionFailed with `cause`.
bool RecordStartChildFailed(const HistoryEvent& initiated,
                            api::enums::v1::StartChildWorkflowExecutionFailedCause cause,
                            absl::Time now, v1::MutableState* ms, Effects* fx);
// The child's chain closed with `close_event` (its last run is `child`): the matching
// ChildWorkflowExecution{Completed,Failed,Canceled,TimedOut,Terminated} event. When the
// child's start is not yet recorded it is recorded first (its first run is
// `child_first_run_id`); `initiated` is needed only then and may be null otherwise.
bool RecordChildClosed(int64_t initiated_event_id, const api::common::v1::WorkflowExecution& child,
                       const std::string& child_first_run_id, const HistoryEvent& close_event,
                       const HistoryEvent* initiated, absl::Time now, v1::MutableState* ms,
                       Effects* fx);

// Closes the run as timed out when its run timeout fires; a retry policy (or else a cron
// schedule) may start a successor unless the whole chain's execution timeout has passed.
void TimeoutWorkflow(const v1::TimerTask& timer, const ChainContext& chain, absl::Time now,
                     v1::MutableState* ms, Effects* fx);

// Schedules a retried run's first workflow task once its backoff has passed.
void EndWorkflowBackoff(absl::Time now, v1::MutableState* ms, Effects* fx);

// Terminates a run whose history has grown past the error limits. Returns true when it did.
bool EnforceHistoryLimits(const Limits& limits, absl::Time now, v1::MutableState* ms,
                          Effects* fx);

// Whether the run's history is past the warning limits (workers are then told to continue
// as new).
bool HistoryOverWarnLimits(const Limits& limits, const v1::MutableState& ms);

void TerminateWorkflow(const std::string& reason, const api::common::v1::Payloads& details,
                       const std::string& identity, absl::Time now, v1::MutableState* ms,
                       Effects* fx);

bool IsRunning(const v1::MutableState& ms);

// What a reset needs besides the base run's events.
struct ResetParams {
  std::string namespace_id;
  std::string workflow_id;
  std::string run_id;       // the new run's
  std::string request_id;   // the reset request's: the new run's create request id
  std::string base_run_id;
  std::string reason;
  absl::Time now;
  // The base run's event batches that start after event 1 and before the reset point: the
  // copied events keep them.
  std::vector<int64_t> base_batch_starts;
};

// Builds the run a reset starts (ResetWorkflowExecution): the base run's events up to the
// reset point (`base_events`: ids 1 to the point - 1, which must leave a workflow task
// pending), that task started if it was not and failed with RESET_WORKFLOW (naming both
// runs), the activities pending there dispatched again and its timers armed again, then
// `reapply` (signals, and updates as WorkflowExecutionUpdateAdmitted), then a new workflow
// task. The children pending at the point stay pending: what they did after it in the base
// run (`reapply` also holds the base run's child events) is recorded again, and one that
// never started is started. kInvalidArgument, with Temporal's text, for a point that follows
// no pending workflow task.
absl::Status BuildResetRun(const std::vector<HistoryEvent>& base_events,
                           const std::vector<HistoryEvent>& reapply, const ResetParams& params,
                           v1::MutableState* ms, Effects* fx);

// Time conversions between absl and protobuf well-known types.
google::protobuf::Timestamp ToProto(absl::Time t);
absl::Time FromProto(const google::protobuf::Timestamp& t);
google::protobuf::Duration ToProto(absl::Duration d);
absl::Duration FromProto(const google::protobuf::Duration& d);

}  // namespace almanac::history
