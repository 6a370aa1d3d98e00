#pragma once

// HistoryEngine: the in-process HistoryClient. Owns every run's mutable state and history.
//
// Concurrency: mutations of one workflow id are serialized by that id's entry mutex (held
// across the store write, so a run's transactions never interleave); different ids proceed
// in parallel. There is no engine-wide lock on the request path: the entry map is split
// into stripes, each with its own mutex, held only to find or insert an entry.
//
// Each mutation runs the pure state machine on a copy of the cached state and writes the
// events, the state (conditioned on db_version) and the tasks in one transaction. The cache
// is updated only after the commit; on a version conflict the entry is reloaded and the
// mutation retried. Tasks go to the in-memory queue processors right after the commit; the
// processors also read back what is pending in the store when the engine starts.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/deadline_queue.h"
#include "common/executor.h"
#include "common/namespace_registry.h"
#include "history/history_client.h"
#include "history/state_machine.h"
#include "matching/matching_client.h"
#include "persistence/stores.h"

namespace almanac::history {

struct HistoryOptions {
  int num_shards = 4;
  int cache_capacity = 100000;    // workflow ids whose state stays cached
  int history_page_size = 256;    // events per page when the request names none
  absl::Duration timer_window = absl::Minutes(5);  // timers kept in memory ahead of now
  Limits limits;
};

class HistoryEngine final : public HistoryClient {
 public:
  HistoryEngine(persistence::Stores* stores, NamespaceRegistry* namespaces, Clock* clock,
                DeadlineQueue* deadlines, Executor* executor, HistoryOptions options);
  ~HistoryEngine() override;

  // Wires matching, which history dispatches tasks to. Must precede Start.
  void SetMatching(matching::MatchingClient* matching) { matching_ = matching; }

  // Acquires the shards and starts the queue processors, reading back pending tasks.
  absl::Status Start();
  // Stops dispatching; pending tasks stay in the store for the next start.
  void Stop();

  absl::StatusOr<wsv1::StartWorkflowExecutionResponse> StartWorkflowExecution(
      const std::string& namespace_id, const wsv1::StartWorkflowExecutionRequest& request) override;
  absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse> RecordWorkflowTaskStarted(
      const RecordTaskStartedRequest& request) override;
  absl::StatusOr<wsv1::PollActivityTaskQueueResponse> RecordActivityTaskStarted(
      const RecordTaskStartedRequest& request) override;
  absl::StatusOr<wsv1::RespondWorkflowTaskCompletedResponse> RespondWorkflowTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskCompletedRequest& request) override;
  absl::Status RespondWorkflowTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskFailedRequest& request) override;
  absl::Status RespondActivityTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCompletedRequest& request) override;
  absl::Status RespondActivityTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskFailedRequest& request) override;
  absl::Status RespondActivityTaskCanceled(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCanceledRequest& request) override;
  absl::StatusOr<bool> RecordActivityTaskHeartbeat(
      const v1::TaskToken& token, const wsv1::RecordActivityTaskHeartbeatRequest& request) override;
  absl::Status RequestCancelWorkflowExecution(
      const std::string& namespace_id,
      const wsv1::RequestCancelWorkflowExecutionRequest& request) override;
  absl::Status TerminateWorkflowExecution(
      const std::string& namespace_id, const wsv1::TerminateWorkflowExecutionRequest& request) override;
  absl::StatusOr<v1::TaskToken> ActivityTokenById(const std::string& namespace_id,
                                                  const std::string& workflow_id,
                                                  const std::string& run_id,
                                                  const std::string& activity_id) override;
  absl::StatusOr<wsv1::DescribeWorkflowExecutionResponse> DescribeWorkflowExecution(
      const std::string& namespace_id, const wsv1::DescribeWorkflowExecutionRequest& request) override;
  void GetWorkflowExecutionHistory(const std::string& namespace_id,
                                   const wsv1::GetWorkflowExecutionHistoryRequest& request,
                                   absl::Time deadline, HistoryCallback done) override;

  int32_t ShardOf(const std::string& namespace_id, const std::string& workflow_id) const;

 private:
  // A long poll on one run's history, woken by the commit that makes its answer ready.
  struct Waiter {
    std::atomic<bool> fired{false};
    std::function<void()> wake;
  };

  // The cached runs of one workflow id, and the lock that serializes their mutations.
  struct WorkflowEntry {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, v1::MutableState> runs ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Waiter>>> waiters
        ABSL_GUARDED_BY(mu);
    // First events of runs that may start a successor, read once per cached run.
    absl::flat_hash_map<std::string, HistoryEvent> started_events ABSL_GUARDED_BY(mu);
    // ActivityTaskScheduled events of pending activities (small ones only), by run and
    // scheduled event id, so that starting an attempt need not read them back.
    absl::flat_hash_map<std::string, absl::flat_hash_map<int64_t, HistoryEvent>> scheduled_events
        ABSL_GUARDED_BY(mu);
  };

  // The largest ActivityTaskScheduled event kept in memory.
  static constexpr size_t kCachedEventLimit = 16 * 1024;

  struct Stripe {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<WorkflowEntry>> entries ABSL_GUARDED_BY(mu);
  };

  struct Shard {
    int64_t range_id = 0;
    std::atomic<int64_t> next_task_seq{1};
    absl::Mutex timer_mu;
    absl::Time timer_window_end ABSL_GUARDED_BY(timer_mu);
  };

  // How a mutation changes the current-run pointer and visibility.
  struct WriteOptions {
    bool create = false;
    persistence::ExecutionMutation::Current current = persistence::ExecutionMutation::Current::kNone;
    std::string previous_run_id;
  };

  // A mutation: edits the state copy and fills the effects. Returns an error to abort
  // without writing; sets *write to false when nothing changed.
  using MutationFn = std::function<absl::Status(v1::MutableState*, Effects*, bool* write)>;
  // A mutation that may close the run, and so may start its successor.
  using ChainMutationFn =
      std::function<absl::Status(const ChainContext&, v1::MutableState*, Effects*, bool* write)>;

  // Keeps the entry's cache of scheduled events in step with a committed mutation.
  static void RememberScheduledEvents(WorkflowEntry* entry, const std::string& run_id,
                                      const Effects& fx, bool closed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  std::shared_ptr<WorkflowEntry> Entry(const std::string& namespace_id,
                                       const std::string& workflow_id);
  // Returns the cached state of the run, loading it if needed.
  absl::StatusOr<v1::MutableState*> LoadRun(WorkflowEntry* entry, int32_t shard,
                                            const v1::RunKey& run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // Resolves an empty run id to the workflow id's current run.
  absl::StatusOr<std::string> ResolveRunId(const std::string& namespace_id,
                                           const std::string& workflow_id,
                                           const std::string& run_id);
  // What a mutation that may close the run needs to start its successor. Reads the run's
  // first event only when the run has a retry policy.
  absl::StatusOr<ChainContext> ChainFor(WorkflowEntry* entry, const v1::MutableState& ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // Runs `fn` on the run under its entry lock and commits what it produced.
  absl::Status UpdateRun(const v1::RunKey& run, const MutationFn& fn);
  absl::Status UpdateRunWithChain(const v1::RunKey& run, const ChainMutationFn& fn);
  absl::Status UpdateRunLocked(WorkflowEntry* entry, const v1::RunKey& run, const MutationFn& fn)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);
  // Writes a new or changed state with its effects in one transaction, then updates the
  // cache, wakes waiters and hands the tasks to the queue processors.
  absl::Status Commit(WorkflowEntry* entry, int32_t shard, v1::MutableState next, Effects fx,
                      const WriteOptions& options, int64_t expected_db_version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);

  absl::StatusOr<v1::MutableState> CreateRunLocked(WorkflowEntry* entry, int32_t shard,
                                                   const std::string& namespace_id,
                                                   const wsv1::StartWorkflowExecutionRequest& request,
                                                   const std::string& previous_run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(entry->mu);

  // History reads and long polls.
  void ReadHistory(const std::string& namespace_id,
                   const wsv1::GetWorkflowExecutionHistoryRequest& request, absl::Time deadline,
                   std::shared_ptr<HistoryCallback> done);

  // Queue processors (queues.cc).
  void DispatchTransfer(v1::TransferTask task);
  void ProcessTransfer(const v1::TransferTask& task);
  void EnqueueTimer(const v1::TimerTask& task);
  void ProcessTimer(const v1::TimerTask& task);
  void PageTimers(int32_t shard_id);
  void RetryLater(std::function<void()> fn);
  // Records a handled task for deletion. Deletions are batched into one transaction every
  // kAckInterval: a deletion lost in a crash only means the task runs again, idempotently.
  void Ack(const v1::TransferTask& task);
  void Ack(const v1::TimerTask& task);
  void FlushAcks();
  absl::Status RecoverShard(int32_t shard_id);

  persistence::Stores* const stores_;
  NamespaceRegistry* const namespaces_;
  Clock* const clock_;
  DeadlineQueue* const deadlines_;
  Executor* const executor_;
  const HistoryOptions options_;
  matching::MatchingClient* matching_ = nullptr;

  static constexpr int kStripes = 64;
  Stripe stripes_[kStripes];
  std::vector<std::unique_ptr<Shard>> shards_;
  absl::Mutex ack_mu_;
  persistence::ExecutionStore::CompletedTasks acks_ ABSL_GUARDED_BY(ack_mu_);
  bool ack_flush_scheduled_ ABSL_GUARDED_BY(ack_mu_) = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace almanac::history
