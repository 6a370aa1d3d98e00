#pragma once

// MatchingEngine: the in-process MatchingClient. Owns the task queues.
//
// A task goes straight to a waiting poller when there is one (sync match); otherwise it is
// written to the queue's durable backlog and handed out in order. AddTask succeeds only
// once the task is safe: recorded as started by a poller, obsolete, or in the backlog; so
// history keeps its transfer task (and retries it) until then. Only a bounded window of the
// backlog is held in memory; the rest is paged in from the store as pollers drain it. Handed
// out tasks are deleted by range, below the queue's ack level, in one write per second at
// most. Sticky queues keep their tasks in memory only: history's sticky schedule-to-start
// timer recovers a task lost with the process.
//
// A waiting poll is a callback parked on its queue, with no thread; it is answered by the
// next task, just before its deadline (empty), or when its client goes away (empty).
// Each queue has its own mutex; there is no engine-wide lock on the request path.

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/deadline_queue.h"
#include "common/executor.h"
#include "history/history_client.h"
#include "matching/matching_client.h"
#include "persistence/stores.h"

namespace almanac::matching {

struct MatchingOptions {
  int backlog_window = 1000;                        // backlog tasks held in memory per queue
  absl::Duration ack_flush_interval = absl::Seconds(1);  // backlog range deletes, per queue
  absl::Duration poll_answer_margin = absl::Seconds(1);  // answer this long before deadlines
  absl::Duration sticky_poller_gone = absl::Seconds(10); // a sticky queue unpolled this long
};

class MatchingEngine final : public MatchingClient {
 public:
  MatchingEngine(persistence::TaskQueueStore* store, history::HistoryClient* history,
                 Clock* clock, DeadlineQueue* deadlines, Executor* executor,
                 MatchingOptions options);
  ~MatchingEngine() override;

  absl::Status AddWorkflowTask(const std::string& namespace_id, const std::string& task_queue,
                               bool sticky, const v1::TaskQueueTask& task) override;
  absl::Status AddActivityTask(const std::string& namespace_id, const std::string& task_queue,
                               const v1::TaskQueueTask& task) override;
  uint64_t PollWorkflowTaskQueue(const std::string& namespace_id,
                                 const wsv1::PollWorkflowTaskQueueRequest& request,
                                 absl::Time deadline, WorkflowPollCallback done) override;
  uint64_t PollActivityTaskQueue(const std::string& namespace_id,
                                 const wsv1::PollActivityTaskQueueRequest& request,
                                 absl::Time deadline, ActivityPollCallback done) override;
  void CancelPoll(uint64_t poll_id) override;
  void ShutdownWorker(const std::string& namespace_id, const std::string& sticky_queue) override;
  absl::StatusOr<QueueDescription> DescribeTaskQueue(const std::string& namespace_id,
                                                     const std::string& task_queue,
                                                     bool activity) override;
  void DispatchQueryTask(const std::string& namespace_id, const std::string& task_queue,
                         bool sticky, const std::string& query_id,
                         wsv1::PollWorkflowTaskQueueResponse task, absl::Time deadline,
                         QueryTaskCallback done) override;
  absl::Status RespondQueryTaskCompleted(const std::string& namespace_id,
                                         const std::string& query_id,
                                         const wsv1::RespondQueryTaskCompletedRequest& request) override;

 private:
  struct Poller;
  struct TaskQueue;
  struct QueryTask;
  struct BacklogTask {
    int64_t task_id = 0;  // 0 for a task that was never written (sticky)
    v1::TaskQueueTask task;
  };

  std::shared_ptr<TaskQueue> Queue(const persistence::TaskQueueKey& key, bool sticky);
  absl::Status AddTask(const persistence::TaskQueueKey& key, bool sticky,
                       const v1::TaskQueueTask& task);
  uint64_t Poll(const persistence::TaskQueueKey& key, bool sticky, std::shared_ptr<Poller> poller);
  // Parks the poller or hands it a task; called with no locks held.
  void Serve(std::shared_ptr<TaskQueue> queue, std::shared_ptr<Poller> poller);
  // Records the task as started with history and answers the poller (with the task, or
  // empty when recording failed). Returns OK when the task reached the worker or is
  // obsolete; otherwise why recording failed, and the caller must keep the task.
  absl::Status Deliver(std::shared_ptr<TaskQueue> queue, std::shared_ptr<Poller> poller,
                       BacklogTask task);
  // A backlog task left memory for good (handed out or obsolete): it no longer holds back
  // the queue's ack level.
  void Handled(const std::shared_ptr<TaskQueue>& queue, int64_t task_id);
  // Deletes the queue's handed-out backlog tasks up to its ack level.
  void FlushAcks(const std::shared_ptr<TaskQueue>& queue);
  // Drops an answered poll's registration and its expiry alarm.
  void Forget(uint64_t poll_id, DeadlineQueue::Id alarm);
  // Reads the next window of the backlog from the store, if it has more.
  void LoadBacklog(const std::shared_ptr<TaskQueue>& queue);
  // Forgets pollers not seen for kSeenPollerTtl.
  static void PruneSeenPollers(TaskQueue* q, absl::Time now);
  static constexpr absl::Duration kSeenPollerTtl = absl::Minutes(5);
  static constexpr size_t kMaxSeenPollers = 1000;  // identities remembered per queue
  // Answers a query's caller once and forgets the query.
  void FinishQuery(const std::shared_ptr<QueryTask>& query,
                   absl::StatusOr<wsv1::RespondQueryTaskCompletedRequest> result);

  persistence::TaskQueueStore* const store_;
  history::HistoryClient* const history_;
  Clock* const clock_;
  DeadlineQueue* const deadlines_;
  Executor* const executor_;
  const MatchingOptions options_;

  absl::Mutex mu_;  // guards only the maps below, never held across I/O
  absl::flat_hash_map<std::string, std::shared_ptr<TaskQueue>> queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::weak_ptr<Poller>> polls_ ABSL_GUARDED_BY(mu_);
  uint64_t next_poll_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Query tasks handed out or waiting, by namespace id and query id, until answered.
  absl::flat_hash_map<std::string, std::shared_ptr<QueryTask>> queries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace almanac::matching
