#pragma once

// ShardContext: everything one node holds while it owns one history shard.
//
//  - The lease: the shard's range_id, taken at load, confirmed on a period (RenewLease), and
//    lost for good when another node takes the shard. Every write of the shard goes through
//    Fenced(), which passes the current range_id to the store (which refuses a stale one)
//    and turns a refusal into loss of the shard: from then on this node writes nothing to it
//    and answers none of its runs (kUnavailable), so it can serve nothing stale.
//  - Task ids: range_id << 32 | sequence, always increasing. When the sequence is used up the
//    lease moves to the next range_id (RenewRange), so ids never overflow into range bits.
//  - The run cache (LRU, bounded by entries and bytes).
//  - The ack bookkeeping of the shard's transfer and timer queues: every task is tracked
//    from the moment its id is assigned, before its transaction commits. The ack levels
//    (every task at or below is done) are persisted with a range delete (FlushAcks). A write
//    whose outcome is unknown triggers a rescan of the store from the ack level, so a task
//    that was written always runs, without a restart.
//
// The engine runs the tasks (queues.cc); this class decides which ones to run and when the
// store may forget them. Thread-safe.

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ack_tracker.h"
#include "history/run_cache.h"
#include "persistence/stores.h"

namespace almanac::history {

struct ShardOptions {
  size_t cache_entries = 100000;
  size_t cache_bytes = size_t{1} << 30;
  int64_t max_task_sequence = (int64_t{1} << 32) - 1;  // lowered only by tests
};

class ShardContext {
 public:
  // How a write of the shard ended.
  enum class Outcome { kCommitted, kNotCommitted, kUnknown };

  ShardContext(int32_t shard_id, std::string owner, persistence::Stores* stores,
               const persistence::ShardInfo& lease, const ShardOptions& options);
  ShardContext(const ShardContext&) = delete;
  ShardContext& operator=(const ShardContext&) = delete;

  int32_t id() const { return shard_id_; }
  bool owned() const { return !lost_.load(); }
  // kUnavailable naming the shard, for requests that reach a shard this node lost.
  absl::Status NotOwnedError() const;
  RunCache& cache() { return cache_; }

  // Gives each task its id and registers it as in flight. Timer times are truncated to the
  // store's microseconds and moved after the timer ack level (a timer due before it would
  // be deleted unrun). Fails when the shard is lost or a range renewal fails.
  absl::Status AssignTaskIds(std::vector<v1::TransferTask>* transfer,
                             std::vector<v1::TimerTask>* timers);

  // Runs `write` with the lease's range_id unless the shard is lost. A kFailedPrecondition
  // answer (the store's fence) marks the shard lost.
  absl::Status Fenced(const std::function<absl::Status(int64_t range_id)>& write);

  // Classifies a write's status: only a commit, or an error that proves nothing was written,
  // is certain.
  static Outcome OutcomeOf(const absl::Status& status);

  // Settles the tasks of a finished write. Appends to the outputs the tasks the caller
  // must run now: committed, not already found by a rescan, and (timers) inside the
  // in-memory window. An unknown outcome schedules a rescan (see rescan_requested).
  void Resolve(Outcome outcome, const std::vector<v1::TransferTask>& transfer,
               const std::vector<v1::TimerTask>& timers,
               std::vector<v1::TransferTask>* run_transfer, std::vector<v1::TimerTask>* run_timers);

  // The processors report handled tasks.
  void TransferDone(int64_t task_id);
  void TimerDone(const v1::TimerTask& task);

  // Reads every transfer task above the ack level and returns those to run. Settles writes
  // of unknown outcome that started before the call.
  absl::StatusOr<std::vector<v1::TransferTask>> RescanTransfer();
  // Reads timer tasks from `from_ack_level` (true: the ack level, a full rescan; false: the
  // current window end, a window extension) up to `window_end`, which becomes the window
  // end, and returns those to schedule.
  absl::StatusOr<std::vector<v1::TimerTask>> ReadTimers(bool from_ack_level, absl::Time window_end);
  absl::Time timer_window_end() const;

  // Whether a write of unknown outcome asked for a rescan since the last one; clears it.
  bool TakeRescanRequest() { return rescan_requested_.exchange(false); }

  // Persists the ack levels, if they moved, deleting every task at or below them.
  absl::Status FlushAcks();
  // Confirms the lease in the store; marks the shard lost if another node took it.
  absl::Status RenewLease(absl::Time now);
  // Gives up the shard: it is unloaded and never written again by this node.
  void MarkLost(const std::string& why);

  int64_t range_id() const;
  int64_t transfer_ack_level() const;
  persistence::TimerKey timer_ack_level() const;
  size_t outstanding_tasks() const;

 private:
  static persistence::TimerKey KeyOf(const v1::TimerTask& t);
  // AssignTaskIds under queue_mu_; sets *lost_to when a range renewal finds the shard taken.
  absl::Status AssignTaskIdsLocked(std::vector<v1::TransferTask>* transfer,
                                   std::vector<v1::TimerTask>* timers, std::string* lost_to);

  const int32_t shard_id_;
  const std::string owner_;
  persistence::Stores* const stores_;
  const ShardOptions options_;
  RunCache cache_;
  std::atomic<bool> lost_{false};
  std::atomic<bool> rescan_requested_{false};

  // Writes hold it shared, with the range_id they write under; a range renewal holds it
  // exclusively, so no write is in flight under the old range when it moves.
  mutable absl::Mutex lease_mu_;
  int64_t range_id_ ABSL_GUARDED_BY(lease_mu_);
  int64_t next_sequence_ ABSL_GUARDED_BY(lease_mu_) = 1;

  mutable absl::Mutex queue_mu_;
  AckTracker<int64_t> transfer_ ABSL_GUARDED_BY(queue_mu_);
  AckTracker<persistence::TimerKey> timers_ ABSL_GUARDED_BY(queue_mu_);
  int64_t window_end_micros_ ABSL_GUARDED_BY(queue_mu_) = 0;  // timers before it are tracked
  int64_t persisted_transfer_ack_ ABSL_GUARDED_BY(queue_mu_) = 0;
  persistence::TimerKey persisted_timer_ack_ ABSL_GUARDED_BY(queue_mu_);
  absl::Mutex flush_mu_;  // one FlushAcks at a time
};

}  // namespace almanac::history
