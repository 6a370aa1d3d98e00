// The history queue processors: transfer tasks (do now) and timer tasks (do at time T).
//
// Both are written in the transaction that causes them. After the commit, the tasks that
// commit released go straight to these processors. Each shard's ShardContext tracks every
// task from the moment its id is assigned; a handled task is marked done there, and a
// periodic tick persists the ack levels with a range delete. The tick also renews the
// shard's lease, rescans the store (on a period, and soon after any write whose outcome is
// unknown) and pages timers in: the processor keeps in memory only the timers due before
// the shard's window end. Each task runs at least once, and each handler checks the run's
// state before acting, so a repeat is harmless.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "history/history_engine.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;

namespace {
constexpr absl::Duration kRetryDelay = absl::Seconds(1);
// How often each shard's tick runs: it also bounds how long a write of unknown outcome
// waits for the rescan that settles it.
constexpr absl::Duration kTickInterval = absl::Milliseconds(200);
constexpr absl::Duration kRequestIdSweepInterval = absl::Minutes(10);
}  // namespace

absl::Status HistoryEngine::Start() {
  if (matching_ == nullptr) return absl::FailedPreconditionError("matching is not wired");
  // Resumable: a start that failed on a transient store error is called again, and goes
  // on from the first shard it has not loaded and scanned.
  ShardOptions shard_options;
  const size_t n = static_cast<size_t>(options_.num_shards);
  shard_options.cache_entries = std::max<size_t>(1, options_.cache_entries / n);
  shard_options.cache_bytes = std::max<size_t>(1, options_.cache_bytes / n);
  shard_options.max_task_sequence = options_.max_task_sequence;
  const absl::Time now = clock_->Now();
  while (shards_.size() < n) {
    const int32_t id = static_cast<int32_t>(shards_.size());
    auto lease = stores_->shards->AcquireShard(id, options_.owner);
    if (!lease.ok()) return lease.status();
    shards_.push_back(
        std::make_unique<ShardContext>(id, options_.owner, stores_, *lease, shard_options));
    shard_clocks_.push_back({now, now, absl::InfinitePast(), now});
  }
  for (size_t i = 0; i < n; ++i) {
    if (shard_clocks_[i].last_full_scan != absl::InfinitePast()) continue;
    absl::Status st = ScanShard(*shards_[i], /*full=*/true);
    if (!st.ok()) return st;
    shard_clocks_[i].last_full_scan = now;
  }
  for (int i = 0; i < options_.num_shards; ++i) {
    deadlines_->Schedule(now + kTickInterval,
                         [this, i] { executor_->Post([this, i] { ShardTick(i); }); });
  }
  return absl::OkStatus();
}

void HistoryEngine::Stop() {
  if (stopping_.exchange(true)) return;
  // Best effort: what is not acknowledged runs again after the next start.
  for (auto& shard : shards_) {
    if (shard->owned()) shard->FlushAcks().IgnoreError();
  }
}

absl::Status HistoryEngine::ScanShard(ShardContext& shard, bool full) {
  std::vector<v1::TransferTask> transfer;
  if (full) {
    auto found = shard.RescanTransfer();
    if (!found.ok()) return found.status();
    transfer = std::move(*found);
  }
  auto timers = shard.ReadTimers(full, clock_->Now() + options_.timer_window);
  if (!timers.ok()) return timers.status();
  if (!transfer.empty() || !timers->empty()) {
    spdlog::debug("shard {}: {} transfer and {} timer tasks read back from the store", shard.id(),
                  transfer.size(), timers->size());
  }
  RunReleased(std::move(transfer), std::move(*timers));
  return absl::OkStatus();
}

void HistoryEngine::ShardTick(int32_t shard_id) {
  if (stopping_) return;
  ShardContext& shard = *shards_[shard_id];
  if (!shard.owned()) return;  // unloaded for good
  ShardClock& clock = shard_clocks_[shard_id];
  const absl::Time now = clock_->Now();
  if (now - clock.last_renew >= options_.lease_renew_interval) {
    absl::Status st = shard.RenewLease(now);
    if (st.ok()) {
      clock.last_renew = now;
    } else if (shard.owned()) {
      spdlog::warn("shard {}: renewing the lease: {}", shard_id, st.ToString());
    }
  }
  if (shard.owned() && now - clock.last_flush >= options_.ack_flush_interval) {
    absl::Status st = shard.FlushAcks();
    if (st.ok()) {
      clock.last_flush = now;
    } else if (shard.owned()) {
      spdlog::warn("shard {}: persisting ack levels: {}", shard_id, st.ToString());
    }
  }
  if (shard.owned() && now - clock.last_request_id_sweep >= kRequestIdSweepInterval) {
    absl::Status st = shard.Fenced([&](int64_t range_id) {
      return stores_->executions->DeleteExpiredRequestIds(shard_id, range_id, now);
    });
    if (st.ok()) {
      clock.last_request_id_sweep = now;
    } else if (shard.owned()) {
      spdlog::warn("shard {}: deleting expired request ids: {}", shard_id, st.ToString());
    }
  }
  if (shard.owned()) {
    const bool full = shard.TakeRescanRequest() || now - clock.last_full_scan >= options_.rescan_interval;
    const bool page = now + options_.timer_window / 5 >= shard.timer_window_end();
    if (full || page) {
      absl::Status st = ScanShard(shard, full);
      if (st.ok()) {
        if (full) clock.last_full_scan = now;
      } else if (shard.owned()) {
        spdlog::warn("shard {}: reading back tasks: {}", shard_id, st.ToString());
        if (full) clock.last_full_scan = absl::InfinitePast();  // again at the next tick
      }
    }
  }
  if (!shard.owned()) return;
  deadlines_->Schedule(clock_->Now() + kTickInterval,
                       [this, shard_id] { executor_->Post([this, shard_id] { ShardTick(shard_id); }); });
}

void HistoryEngine::RetryLater(std::function<void()> fn) {
  if (stopping_) return;
  deadlines_->Schedule(clock_->Now() + kRetryDelay,
                       [this, fn = std::move(fn)] { executor_->Post(fn); });
}

void HistoryEngine::RunReleased(std::vector<v1::TransferTask> transfer,
                                std::vector<v1::TimerTask> timers) {
  for (auto& t : transfer) DispatchTransfer(std::move(t));
  for (auto& t : timers) ScheduleTimer(t);
}

void HistoryEngine::DispatchTransfer(v1::TransferTask task) {
  executor_->Post([this, task = std::move(task)] { ProcessTransfer(task); });
}

void HistoryEngine::ProcessTransfer(const v1::TransferTask& task) {
  if (stopping_) return;
  ShardContext& shard = *shards_.at(task.shard_id());
  if (!shard.owned()) return;  // the new owner runs it
  absl::Status st;
  v1::TaskQueueTask qt;
  *qt.mutable_run() = task.run();
  qt.set_scheduled_event_id(task.scheduled_event_id());
  qt.set_stamp(task.stamp());
  switch (task.kind()) {
    case v1::TransferTask::KIND_WORKFLOW_TASK: {
      st = matching_->AddWorkflowTask(task.run().namespace_id(), task.task_queue(),
                                      task.sticky(), qt);
      if (task.sticky() && absl::IsFailedPrecondition(st)) {
        // The sticky worker is gone: send the task to the normal queue with full history.
        st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
          *write = ClearStickyForTask(task.stamp(), ms);
          if (*write) {
            v1::TransferTask normal = task;
            normal.set_task_queue(ms->execution().task_queue());
            normal.set_sticky(false);
            normal.clear_task_id();
            fx->transfer_tasks.push_back(std::move(normal));
          }
          return absl::OkStatus();
        });
        if (absl::IsNotFound(st)) st = absl::OkStatus();
      }
      break;
    }
    case v1::TransferTask::KIND_ACTIVITY_TASK:
      st = matching_->AddActivityTask(task.run().namespace_id(), task.task_queue(), qt);
      break;
    case v1::TransferTask::KIND_SIGNAL_EXECUTION:
    case v1::TransferTask::KIND_CANCEL_EXECUTION:
      st = ProcessExternalRequest(task);
      break;
    case v1::TransferTask::KIND_START_CHILD:
      st = ProcessStartChild(task);
      break;
    case v1::TransferTask::KIND_CLOSE_EXECUTION:
      st = ProcessChildClosed(task);  // written only for runs with a parent
      break;
    case v1::TransferTask::KIND_SCHEDULE_RUN_CLOSED:
      st = ProcessScheduledRunClosed(task.run(), task.schedule_id());
      break;
    case v1::TransferTask::KIND_PARENT_CLOSE_POLICY:
      st = ApplyParentClosePolicy(task.run(), task.child());
      break;
    default:
      spdlog::warn("dropping transfer task of unknown kind {}", static_cast<int>(task.kind()));
      break;
  }
  if (!st.ok()) {
    if (!shard.owned()) return;
    spdlog::warn("transfer task {} failed, will retry: {}", task.task_id(), st.ToString());
    RetryLater([this, task] { ProcessTransfer(task); });
    return;
  }
  shard.TransferDone(task.task_id());
}

void HistoryEngine::ScheduleTimer(const v1::TimerTask& task) {
  deadlines_->Schedule(FromProto(task.visibility_time()),
                       [this, task] { executor_->Post([this, task] { ProcessTimer(task); }); });
}

void HistoryEngine::ProcessTimer(const v1::TimerTask& task) {
  if (stopping_) return;
  ShardContext& shard = *shards_.at(task.shard_id());
  if (!shard.owned()) return;  // the new owner runs it
  const absl::Time now = clock_->Now();
  absl::Status st;
  switch (task.kind()) {
    case v1::TimerTask::KIND_SCHEDULE_WAKE:
      st = ProcessScheduleWake(task);
      break;
    case v1::TimerTask::KIND_USER_TIMER:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        FireUserTimer(task, now, ms, fx);
        *write = !fx->events.empty() || ms->buffered_events_size() > 0;
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_WORKFLOW_TASK_TIMEOUT:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        const bool had_task = ms->has_workflow_task();
        const int64_t stamp = had_task ? ms->workflow_task().stamp() : 0;
        TimeoutWorkflowTask(task, now, ms, fx);
        // The timeout acted only if it replaced a pending task. Most of these timers fire
        // after their task completed, often with none pending or the run closed: nothing
        // to write then.
        *write = had_task && (!ms->has_workflow_task() || ms->workflow_task().stamp() != stamp);
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_ACTIVITY_TIMEOUT:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        const size_t pending = ms->activities_size();
        const int64_t stamp = ms->execution().next_stamp();
        TimeoutActivity(task, now, ms, fx);
        *write = !fx->events.empty() || !fx->timer_tasks.empty() ||
                 static_cast<size_t>(ms->activities_size()) != pending ||
                 ms->execution().next_stamp() != stamp;
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT:
      st = UpdateRunWithChain(task.run(), [&](const ChainContext& chain, v1::MutableState* ms,
                                              Effects* fx, bool* write) {
        TimeoutWorkflow(task, chain, now, ms, fx);
        *write = fx->closed;
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_WORKFLOW_BACKOFF:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        const bool was_pending = ms->execution().backoff_pending();
        EndWorkflowBackoff(now, ms, fx);
        *write = was_pending || !fx->events.empty();
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_ACTIVITY_RETRY: {
      // The attempt is due: dispatch it unless the activity moved on meanwhile.
      bool due = false;
      std::string task_queue;
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects*, bool* write) {
        *write = false;
        due = ActivityRetryDue(task, *ms);
        if (due) task_queue = ms->activities().at(task.event_id()).task_queue();
        return absl::OkStatus();
      });
      if (st.ok() && due) {
        v1::TaskQueueTask qt;
        *qt.mutable_run() = task.run();
        qt.set_scheduled_event_id(task.event_id());
        qt.set_stamp(task.stamp());
        st = matching_->AddActivityTask(task.run().namespace_id(), task_queue, qt);
      }
      break;
    }
    default:
      spdlog::warn("dropping timer task of unknown kind {}", static_cast<int>(task.kind()));
      break;
  }
  if (absl::IsNotFound(st)) st = absl::OkStatus();  // the run is gone: nothing to do
  if (!st.ok()) {
    if (!shard.owned()) return;
    spdlog::warn("timer task {} failed, will retry: {}", task.task_id(), st.ToString());
    RetryLater([this, task] { ProcessTimer(task); });
    return;
  }
  shard.TimerDone(task);
}

}  // namespace almanac::history
