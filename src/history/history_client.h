#pragma once

// HistoryClient: how the other roles reach history. In-process today (HistoryEngine); a gRPC
// implementation of the same interface lets history run on other nodes later, so only plain
// values and protobuf messages cross it. Every method is thread-safe. Failures are
// absl::Status, with Temporal error details attached as payloads (common/status_details.h).

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "temporal/api/schedule/v1/message.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::history {

namespace wsv1 = temporal::api::workflowservice::v1;

// A task that matching hands to a poller, to be recorded as started.
struct RecordTaskStartedRequest {
  std::string namespace_id;
  v1::TaskQueueTask task;
  std::string poll_request_id;  // identifies the poll, so a retried record is idempotent
  std::string identity;
  bool from_sticky_queue = false;  // a sticky poll gets only the events the worker lacks
};

class HistoryClient {
 public:
  HistoryClient() = default;
  HistoryClient(const HistoryClient&) = delete;
  HistoryClient& operator=(const HistoryClient&) = delete;
  virtual ~HistoryClient() = default;

  // Starts a run under the id reuse and conflict policies. kAlreadyExists with
  // WorkflowExecutionAlreadyStartedFailure when refused.
  virtual absl::StatusOr<wsv1::StartWorkflowExecutionResponse> StartWorkflowExecution(
      const std::string& namespace_id, const wsv1::StartWorkflowExecutionRequest& request) = 0;

  // Records a dispatched task as started and builds the worker's poll response. kNotFound
  // when the run or task moved on: matching then drops the task.
  virtual absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse> RecordWorkflowTaskStarted(
      const RecordTaskStartedRequest& request) = 0;
  virtual absl::StatusOr<wsv1::PollActivityTaskQueueResponse> RecordActivityTaskStarted(
      const RecordTaskStartedRequest& request) = 0;

  // Worker responses, addressed by a task token that the frontend has parsed. kNotFound when
  // the token is stale.
  virtual absl::StatusOr<wsv1::RespondWorkflowTaskCompletedResponse> RespondWorkflowTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskCompletedRequest& request) = 0;
  virtual absl::Status RespondWorkflowTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskFailedRequest& request) = 0;
  virtual absl::Status RespondActivityTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCompletedRequest& request) = 0;
  virtual absl::Status RespondActivityTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskFailedRequest& request) = 0;
  virtual absl::Status RespondActivityTaskCanceled(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCanceledRequest& request) = 0;
  // Returns whether the workflow asked for the activity's cancellation.
  virtual absl::StatusOr<bool> RecordActivityTaskHeartbeat(
      const v1::TaskToken& token, const wsv1::RecordActivityTaskHeartbeatRequest& request) = 0;

  // The token of a started activity named by workflow id, run id (empty: the current run)
  // and activity id, for the ...ById RPCs. kNotFound when no such activity is started.
  virtual absl::StatusOr<v1::TaskToken> ActivityTokenById(const std::string& namespace_id,
                                                          const std::string& workflow_id,
                                                          const std::string& run_id,
                                                          const std::string& activity_id) = 0;

  virtual absl::Status RequestCancelWorkflowExecution(
      const std::string& namespace_id,
      const wsv1::RequestCancelWorkflowExecutionRequest& request) = 0;
  virtual absl::Status TerminateWorkflowExecution(
      const std::string& namespace_id, const wsv1::TerminateWorkflowExecutionRequest& request) = 0;
  // Starts a new run from a prefix of another's history (see BuildResetRun); the current
  // run, if running, is terminated.
  virtual absl::StatusOr<wsv1::ResetWorkflowExecutionResponse> ResetWorkflowExecution(
      const std::string& namespace_id, const wsv1::ResetWorkflowExecutionRequest& request) = 0;
  virtual absl::StatusOr<wsv1::DescribeWorkflowExecutionResponse> DescribeWorkflowExecution(
      const std::string& namespace_id, const wsv1::DescribeWorkflowExecutionRequest& request) = 0;

  // Reads a page of history. With wait_new_event, holds the answer until there is something
  // new (or, with the close-event filter, until the run closes), or until `deadline`, when it
  // answers with no events and a token to poll again. `done` runs exactly once, on any thread.
  using HistoryCallback =
      std::function<void(absl::StatusOr<wsv1::GetWorkflowExecutionHistoryResponse>)>;
  virtual void GetWorkflowExecutionHistory(const std::string& namespace_id,
                                           const wsv1::GetWorkflowExecutionHistoryRequest& request,
                                           absl::Time deadline, HistoryCallback done) = 0;

  // Records a signal on the run (empty run id: the current one). A repeated request id is
  // applied once. kNotFound when the run is closed or unknown.
  virtual absl::Status SignalWorkflowExecution(
      const std::string& namespace_id, const wsv1::SignalWorkflowExecutionRequest& request) = 0;
  // Signals the running workflow, or starts it under the id policies with the signal as its
  // first event.
  virtual absl::StatusOr<wsv1::SignalWithStartWorkflowExecutionResponse>
  SignalWithStartWorkflowExecution(const std::string& namespace_id,
                                   const wsv1::SignalWithStartWorkflowExecutionRequest& request) = 0;

  // Asks a worker to answer a query: attached to the run's next workflow task when one is
  // pending, else sent alone through matching. `done` runs exactly once, on any thread;
  // kDeadlineExceeded when no worker answered by `deadline`.
  using QueryCallback = std::function<void(absl::StatusOr<wsv1::QueryWorkflowResponse>)>;
  virtual void QueryWorkflow(const std::string& namespace_id,
                             const wsv1::QueryWorkflowRequest& request, absl::Time deadline,
                             QueryCallback done) = 0;

  // Admits an update (or finds the one with the same id) and answers once it reaches the
  // requested stage, or at `deadline` with the stage it has reached.
  using UpdateCallback = std::function<void(absl::StatusOr<wsv1::UpdateWorkflowExecutionResponse>)>;
  virtual void UpdateWorkflowExecution(const std::string& namespace_id,
                                       const wsv1::UpdateWorkflowExecutionRequest& request,
                                       absl::Time deadline, UpdateCallback done) = 0;
  // Waits for an update admitted earlier. kNotFound when the run has no update with the id.
  using PollUpdateCallback =
      std::function<void(absl::StatusOr<wsv1::PollWorkflowExecutionUpdateResponse>)>;
  virtual void PollWorkflowExecutionUpdate(const std::string& namespace_id,
                                           const wsv1::PollWorkflowExecutionUpdateRequest& request,
                                           absl::Time deadline, PollUpdateCallback done) = 0;
  // Update-with-start: starts the run under the id policies (or finds it, under
  // USE_EXISTING) and admits the update on it before any workflow task of the run can start,
  // so a new run's first task carries it. `done` gets the start's outcome and, when the start
  // succeeded, the update's.
  using UpdateWithStartCallback =
      std::function<void(absl::StatusOr<wsv1::StartWorkflowExecutionResponse>,
                         absl::StatusOr<wsv1::UpdateWorkflowExecutionResponse>)>;
  virtual void UpdateWithStart(const std::string& namespace_id,
                               const wsv1::StartWorkflowExecutionRequest& start,
                               const wsv1::UpdateWorkflowExecutionRequest& update,
                               absl::Time deadline, UpdateWithStartCallback done) = 0;

  // Schedules. Each is hosted by history: its record, its wake-ups and its actions. The
  // frontend validates a schedule and makes its spec canonical first.
  // Creates a schedule (the record's namespace, id, schedule, memo, search attributes and
  // identity), taking an initial patch. kAlreadyExists when the id is taken.
  virtual absl::Status CreateSchedule(
      v1::ScheduleRecord record, const temporal::api::schedule::v1::SchedulePatch* initial_patch) = 0;
  // The schedule's record. kNotFound ("workflow not found for ID:
  // temporal-sys-scheduler:<id>", as Temporal) when there is none.
  virtual absl::StatusOr<v1::ScheduleRecord> DescribeSchedule(const std::string& namespace_id,
                                                              const std::string& schedule_id) = 0;
  // Replaces the schedule's definition (and, when given, its search attributes). A conflict
  // token other than 0 or the schedule's makes it a no-op, as in Temporal.
  virtual absl::Status UpdateSchedule(
      const std::string& namespace_id, const std::string& schedule_id,
      const temporal::api::schedule::v1::Schedule& schedule,
      const temporal::api::common::v1::SearchAttributes* search_attributes,
      int64_t conflict_token) = 0;
  virtual absl::Status PatchSchedule(const std::string& namespace_id,
                                     const std::string& schedule_id,
                                     const temporal::api::schedule::v1::SchedulePatch& patch) = 0;
  // Deletes the schedule; the workflows it started go on. The record stays, marked deleted,
  // for the namespace's retention (DescribeSchedule returns it so), then goes.
  virtual absl::Status DeleteSchedule(const std::string& namespace_id,
                                      const std::string& schedule_id) = 0;
};

}  // namespace almanac::history
