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
};

}  // namespace almanac::history
