#pragma once

// MatchingClient: how the other roles reach matching. In-process today (MatchingEngine).
// Every method is thread-safe.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "temporal/api/taskqueue/v1/message.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::matching {

namespace wsv1 = temporal::api::workflowservice::v1;

class MatchingClient {
 public:
  MatchingClient() = default;
  MatchingClient(const MatchingClient&) = delete;
  MatchingClient& operator=(const MatchingClient&) = delete;
  virtual ~MatchingClient() = default;

  // Queues a workflow task: straight to a waiting poller, else to the durable backlog.
  // For a sticky queue whose worker is gone, fails with kFailedPrecondition (the sticky
  // worker is unavailable) and history sends the task to the normal queue instead.
  virtual absl::Status AddWorkflowTask(const std::string& namespace_id,
                                       const std::string& task_queue, bool sticky,
                                       const v1::TaskQueueTask& task) = 0;
  virtual absl::Status AddActivityTask(const std::string& namespace_id,
                                       const std::string& task_queue,
                                       const v1::TaskQueueTask& task) = 0;

  // Long polls. The callback runs exactly once, on any thread: with a task, with an empty
  // response shortly before `deadline`, or empty after CancelPoll. Returns the poll's id.
  // Nothing holds a thread while the poll waits.
  using WorkflowPollCallback =
      std::function<void(absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse>)>;
  using ActivityPollCallback =
      std::function<void(absl::StatusOr<wsv1::PollActivityTaskQueueResponse>)>;
  virtual uint64_t PollWorkflowTaskQueue(const std::string& namespace_id,
                                         const wsv1::PollWorkflowTaskQueueRequest& request,
                                         absl::Time deadline, WorkflowPollCallback done) = 0;
  virtual uint64_t PollActivityTaskQueue(const std::string& namespace_id,
                                         const wsv1::PollActivityTaskQueueRequest& request,
                                         absl::Time deadline, ActivityPollCallback done) = 0;
  // Ends a parked poll (its client went away). A poll already being answered is unaffected.
  virtual void CancelPoll(uint64_t poll_id) = 0;

  // A query task: handed to the next poller of the queue, ahead of its other tasks, as
  // `task` (built by history: token, query, history). Never stored. `done` runs exactly
  // once, on any thread: with the worker's answer, kDeadlineExceeded at `deadline`, or
  // kFailedPrecondition at once for a sticky queue whose worker is gone.
  using QueryTaskCallback =
      std::function<void(absl::StatusOr<wsv1::RespondQueryTaskCompletedRequest>)>;
  virtual void DispatchQueryTask(const std::string& namespace_id, const std::string& task_queue,
                                 bool sticky, const std::string& query_id,
                                 wsv1::PollWorkflowTaskQueueResponse task, absl::Time deadline,
                                 QueryTaskCallback done) = 0;
  // A worker's answer to a query task. kNotFound when the query is unknown or expired.
  virtual absl::Status RespondQueryTaskCompleted(const std::string& namespace_id,
                                                 const std::string& query_id,
                                                 const wsv1::RespondQueryTaskCompletedRequest& request) = 0;

  // What DescribeTaskQueue shows of one queue of one type.
  struct QueueDescription {
    // The workers that polled in the last five minutes, most recent first.
    std::vector<temporal::api::taskqueue::v1::PollerInfo> pollers;
    int64_t backlog_count = 0;                  // tasks waiting in the backlog
    absl::Duration backlog_age = absl::ZeroDuration();  // of the oldest one
    int64_t read_level = 0;
    int64_t ack_level = 0;
  };
  // `activity`: the activity queue of that name, else the workflow queue.
  virtual absl::StatusOr<QueueDescription> DescribeTaskQueue(const std::string& namespace_id,
                                                             const std::string& task_queue,
                                                             bool activity) = 0;
  // A worker is stopping: its sticky queue takes no more tasks.
  virtual void ShutdownWorker(const std::string& namespace_id, const std::string& sticky_queue) = 0;
};

}  // namespace almanac::matching
