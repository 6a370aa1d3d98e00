#pragma once

// Internals of the history state machine, shared by its source files (state_machine.cc,
// command_handlers.cc, successor_run.cc) and their tests. Not for use outside
// src/history/: the engine calls only what state_machine.h declares.
//
// Everything here is pure, like the state machine itself: no I/O, no clock reads, no locks.
// Functions that take a `v1::MutableState*` and an `Effects*` edit the state in place and
// append what they produce (events, tasks) to the effects; callers work on a copy and keep
// it only when the whole mutation succeeds.

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "history/state_machine.h"
#include "temporal/api/command/v1/message.pb.h"
#include "temporal/api/common/v1/message.pb.h"
#include "temporal/api/enums/v1/failed_cause.pb.h"
#include "temporal/api/enums/v1/workflow.pb.h"
#include "temporal/api/failure/v1/message.pb.h"
#include "temporal/api/protocol/v1/message.pb.h"

namespace almanac::history::internal {

// ---- Events, tasks and closing --------------------------------------------------------

// Returns the run's next stamp, which fences tasks and timers of earlier attempts.
int64_t NextStamp(v1::MutableState* ms);

// Schedules a workflow task (see ScheduleWorkflowTask and ScheduleSpeculativeWorkflowTask).
void ScheduleTask(absl::Time now, bool speculative, v1::MutableState* ms, Effects* fx);

v1::RunKey RunOf(const v1::MutableState& ms);

// An event of `type` at `now`, without an id: Append assigns it.
HistoryEvent NewEvent(api::enums::v1::EventType type, absl::Time now);

// Writes an event now: gives it the run's next event id, counts its size into the
// history size, and adds it to fx->events. Returns the id.
int64_t Append(HistoryEvent e, v1::MutableState* ms, Effects* fx);

// A timer task of `kind` for the run of `ms`, due at `at`.
v1::TimerTask NewTimer(v1::TimerTask::Kind kind, absl::Time at, const v1::MutableState& ms);

// Closes the run with `status`. Requires that the closing event was just appended (it is
// fx->events.back()). Drops every pending workflow task, activity and timer, and emits the
// close transfer task.
void Close(api::enums::v1::WorkflowExecutionStatus status, absl::Time now, v1::MutableState* ms,
           Effects* fx);

// The initiated event id a child's terminal event names; 0 for any other event.
int64_t ChildTerminalInitiatedId(const HistoryEvent& e);
// Sets the started_event_id of a child's terminal event.
void SetChildStartedId(HistoryEvent* e, int64_t started_id);

// ---- Activities --------------------------------------------------------------------

// Emits the transfer task that hands the activity's current attempt to matching.
void DispatchActivity(const v1::ActivityInfo& ai, const v1::MutableState& ms, Effects* fx);

// Arms the schedule-to-start timeout of the activity's current attempt, counted from `from`,
// unless schedule-to-close already covers it.
void ArmScheduleToStart(const v1::ActivityInfo& ai, absl::Time from, const v1::MutableState& ms,
                        Effects* fx);

// A pending activity's first attempt, as its Scheduled event describes it.
v1::ActivityInfo ActivityInfoOf(const api::history::v1::ActivityTaskScheduledEventAttributes& a,
                                int64_t scheduled_event_id, absl::Time scheduled);

// Adds a pending activity whose Scheduled event is written: gives it a stamp, hands it to
// matching and arms its schedule-to-start and schedule-to-close timeouts from `now`.
void AddActivity(v1::ActivityInfo ai, absl::Time now, v1::MutableState* ms, Effects* fx);

// Fills the unset fields of a retry policy with Temporal's defaults.
void DefaultRetryPolicy(api::common::v1::RetryPolicy* p);

// ---- Workflow retries and successor runs ---------------------------------------------

// Arms the run timeout of `ms`: its run timeout counted from `from`, bounded by the chain's
// execution expiration. Arms nothing when neither is set.
void ArmRunTimeout(absl::Time from, const v1::MutableState& ms, Effects* fx);

// Decides whether a failed or timed-out run is retried: returns the backoff before the
// successor's first workflow task, or nullopt with the retry state that ends the chain.
// `failure` is null for a timeout. Always sets *state.
std::optional<absl::Duration> WorkflowRetry(const v1::MutableState& ms,
                                            const api::failure::v1::Failure* failure,
                                            absl::Time now, api::enums::v1::RetryState* state);

// What distinguishes a run that succeeds the one closing in this mutation. Retries, cron
// and continue-as-new differ only in how they fill it; BuildSuccessorRun does the rest.
//
// An override left unset inherits the closing run's value (from its state and its
// WorkflowExecutionStarted event). A set override replaces it; for the message-valued ones
// an empty message leaves the field unset in the successor. Overrides are used as given:
// the caller applies defaults and caps (task timeout within the run timeout, ...).
struct SuccessorSpec {
  // RETRY increments the attempt; WORKFLOW (continue-as-new) and CRON_SCHEDULE start the
  // successor at attempt 1.
  api::enums::v1::ContinueAsNewInitiator initiator =
      api::enums::v1::CONTINUE_AS_NEW_INITIATOR_UNSPECIFIED;
  // Delay before the successor's first workflow task; zero schedules it at once.
  absl::Duration backoff = absl::ZeroDuration();

  std::optional<std::string> workflow_type;
  std::optional<std::string> task_queue;
  std::optional<api::common::v1::Payloads> input;
  std::optional<absl::Duration> run_timeout;
  std::optional<absl::Duration> task_timeout;
  std::optional<api::common::v1::Memo> memo;
  std::optional<api::common::v1::SearchAttributes> search_attributes;
  std::optional<api::common::v1::Header> header;
  std::optional<api::common::v1::RetryPolicy> retry_policy;
  std::optional<std::string> cron_schedule;  // empty: the successor has none

  // What the successor's started event reports of its predecessor. Unset: nothing.
  std::optional<api::failure::v1::Failure> continued_failure;
  std::optional<api::common::v1::Payloads> last_completion_result;
};

// The spec of a retry of the closing run: same input and settings, attempt + 1, and the
// failure that caused it (null for a timeout). Like Temporal's, it carries no last
// completion result.
SuccessorSpec RetrySuccessor(const ChainContext& chain, const api::failure::v1::Failure* failure,
                             absl::Duration backoff);

// The delay before a cron workflow's next run, counted from `now`, when its current run
// (whose first workflow task was due at `scheduled`) closes: the schedule's first time after
// `scheduled` that is not before `now`, in whole seconds rounded up, as Temporal computes it.
// nullopt when `cron` is empty, malformed or has no time left.
std::optional<absl::Duration> CronBackoff(const std::string& cron, absl::Time scheduled,
                                          absl::Time now);

// The spec of the cron's next run after the closing one: a fresh attempt that gets the
// closing run's result as its last completion result, or, after a failure or timeout, the
// failure and the last completion result the closing run was given. Requires
// chain.started_event.
SuccessorSpec CronSuccessor(const ChainContext& chain, const api::common::v1::Payloads* result,
                            const api::failure::v1::Failure* failure, absl::Duration backoff);

// Starts the successor of the run that closed in this mutation and links the two.
//
// Requires: the run of `ms` was just closed (its closing event is fx->events.back()),
// chain.started_event is that run's WorkflowExecutionStarted event, and chain.next_run_id
// is the successor's run id.
//
// Effects: the closing event (and ms->close_event) names the successor in
// new_execution_run_id; fx->new_run holds the successor's state and its first events (ids
// from 1). The successor stays in the chain (same first_execution_run_id, same execution
// expiration time) and its started event names its predecessor. After a positive backoff
// its first workflow task waits for a KIND_WORKFLOW_BACKOFF timer, otherwise it is
// scheduled at once; its run timeout counts from the end of the backoff. The successor's
// tasks are added to fx (they name its run).
void BuildSuccessorRun(const SuccessorSpec& spec, const ChainContext& chain, absl::Time now,
                       v1::MutableState* ms, Effects* fx);

// ---- Commands of a workflow task completion (command_handlers.cc) ---------------------

// Why a command was refused: the workflow task fails with `cause`, and `message` becomes
// its failure's message (and the error the worker's RPC returns).
struct CommandError {
  api::enums::v1::WorkflowTaskFailedCause cause;
  std::string message;
  // The command broke a size limit: after the task fails, the history service terminates the
  // run, with the failure's message as the reason (as Temporal does).
  bool terminate = false;
};

// What every command handler works on. One context lives for one completion; the handlers
// run in the order of the commands, on a copy of the state that is dropped when any of
// them refuses its command.
struct CommandContext {
  const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request;
  const Limits& limits;
  const ChainContext& chain;
  absl::Time now;
  int64_t completed_event_id = 0;  // this completion's WorkflowTaskCompleted event
  v1::MutableState* ms = nullptr;
  Effects* fx = nullptr;
  bool closed = false;        // a command closed the run; no command may follow it
  bool new_task_due = false;  // a command wrote an event the worker has not yet seen
  const CompletionContext* context = nullptr;
  std::set<std::string> applied_messages;  // ids of messages placed by ProtocolMessage commands
};

// A command handler applies one command of its type, or refuses it and returns why. A
// refusal may leave the state half-changed: the caller drops it.
using CommandHandler = std::optional<CommandError> (*)(
    const api::command::v1::Command& command, CommandContext* ctx);

std::optional<CommandError> HandleScheduleActivityTask(const api::command::v1::Command& command,
                                                       CommandContext* ctx);
std::optional<CommandError> HandleRequestCancelActivityTask(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleStartTimer(const api::command::v1::Command& command,
                                             CommandContext* ctx);
std::optional<CommandError> HandleCancelTimer(const api::command::v1::Command& command,
                                              CommandContext* ctx);
std::optional<CommandError> HandleRecordMarker(const api::command::v1::Command& command,
                                               CommandContext* ctx);
std::optional<CommandError> HandleModifyWorkflowProperties(const api::command::v1::Command& command,
                                                           CommandContext* ctx);
std::optional<CommandError> HandleUpsertWorkflowSearchAttributes(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleCompleteWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleFailWorkflowExecution(const api::command::v1::Command& command,
                                                        CommandContext* ctx);
std::optional<CommandError> HandleCancelWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleContinueAsNewWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleStartChildWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleSignalExternalWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
std::optional<CommandError> HandleRequestCancelExternalWorkflowExecution(
    const api::command::v1::Command& command, CommandContext* ctx);
// Applies the protocol message the command names, at the command's place among the events.
std::optional<CommandError> HandleProtocolMessage(const api::command::v1::Command& command,
                                                  CommandContext* ctx);
// Applies one update protocol message from a worker: an Acceptance writes
// WorkflowExecutionUpdateAccepted, a Response WorkflowExecutionUpdateCompleted, a Rejection
// nothing; each is reported in fx->updates.
std::optional<CommandError> ApplyMessage(const api::protocol::v1::Message& message,
                                         const CompletionContext& context, absl::Time now,
                                         v1::MutableState* ms, Effects* fx);
// Refuses a command this server does not implement yet.
std::optional<CommandError> HandleUnsupportedCommand(const api::command::v1::Command& command,
                                                     CommandContext* ctx);

// The handler for a command type; HandleUnsupportedCommand for the types not implemented.
CommandHandler HandlerFor(api::enums::v1::CommandType type);

// Applies one command through its handler. Refuses any command once the run is closed.
std::optional<CommandError> ApplyCommand(const api::command::v1::Command& command,
                                         CommandContext* ctx);

}  // namespace almanac::history::internal
