// The history queue processors: transfer tasks (do now) and timer tasks (do at time T).
//
// Both are written in the transaction that causes them. After the commit they go straight
// to these processors; on start, what is pending is read back from the store. Each runs at
// least once, and each handler checks the run's state before acting, so a repeat is
// harmless. A task is deleted from the store once handled.
//
// Timers: the processor keeps in memory only the timers due before the shard's window end,
// and pages the next window in from the store shortly before it is reached. The window end
// moves before the page is read, so a timer committed meanwhile is either enqueued by its
// commit or found by the read (possibly both: handlers are idempotent).

#include "absl/strings/str_cat.h"
#include "history/history_engine.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;

namespace {
constexpr int kPageSize = 1000;
constexpr absl::Duration kRetryDelay = absl::Seconds(1);
constexpr absl::Duration kAckInterval = absl::Milliseconds(50);
}  // namespace

absl::Status HistoryEngine::Start() {
  if (matching_ == nullptr) return absl::FailedPreconditionError("matching is not wired");
  shards_.clear();
  for (int i = 0; i < options_.num_shards; ++i) {
    auto range = stores_->shards->AcquireShard(i);
    if (!range.ok()) return range.status();
    auto shard = std::make_unique<Shard>();
    shard->range_id = *range;
    shards_.push_back(std::move(shard));
  }
  for (int i = 0; i < options_.num_shards; ++i) {
    absl::Status st = RecoverShard(i);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

void HistoryEngine::Stop() {
  if (stopping_.exchange(true)) return;
  FlushAcks();  // best effort: what is not deleted runs again after the next start
}

absl::Status HistoryEngine::RecoverShard(int32_t shard_id) {
  int64_t after = 0;
  int recovered = 0;
  for (;;) {
    auto tasks = stores_->executions->ListTransferTasks(shard_id, after, kPageSize);
    if (!tasks.ok()) return tasks.status();
    for (auto& t : *tasks) {
      after = t.task_id();
      DispatchTransfer(std::move(t));
      ++recovered;
    }
    if (static_cast<int>(tasks->size()) < kPageSize) break;
  }
  Shard& shard = *shards_[shard_id];
  {
    absl::MutexLock lock(&shard.timer_mu);
    shard.timer_window_end = absl::InfinitePast();
  }
  PageTimers(shard_id);
  if (recovered > 0) spdlog::info("shard {}: recovered {} transfer tasks", shard_id, recovered);
  return absl::OkStatus();
}

void HistoryEngine::RetryLater(std::function<void()> fn) {
  if (stopping_) return;
  deadlines_->Schedule(clock_->Now() + kRetryDelay,
                       [this, fn = std::move(fn)] { executor_->Post(fn); });
}

void HistoryEngine::Ack(const v1::TransferTask& task) {
  absl::MutexLock lock(&ack_mu_);
  acks_.transfer.push_back({task.shard_id(), task.task_id()});
  if (ack_flush_scheduled_) return;
  ack_flush_scheduled_ = true;
  deadlines_->Schedule(clock_->Now() + kAckInterval,
                       [this] { executor_->Post([this] { FlushAcks(); }); });
}

void HistoryEngine::Ack(const v1::TimerTask& task) {
  absl::MutexLock lock(&ack_mu_);
  acks_.timers.push_back({task.shard_id(), FromProto(task.visibility_time()), task.task_id()});
  if (ack_flush_scheduled_) return;
  ack_flush_scheduled_ = true;
  deadlines_->Schedule(clock_->Now() + kAckInterval,
                       [this] { executor_->Post([this] { FlushAcks(); }); });
}

void HistoryEngine::FlushAcks() {
  persistence::ExecutionStore::CompletedTasks batch;
  {
    absl::MutexLock lock(&ack_mu_);
    std::swap(batch, acks_);
    ack_flush_scheduled_ = false;
  }
  absl::Status st = stores_->executions->DeleteCompletedTasks(batch);
  if (!st.ok()) {
    // Not lost: the tasks stay in the store and would only run again after a restart.
    // Keep them for the next flush.
    spdlog::warn("deleting {} handled tasks: {}", batch.transfer.size() + batch.timers.size(),
                 st.ToString());
    absl::MutexLock lock(&ack_mu_);
    for (auto& t : batch.transfer) acks_.transfer.push_back(t);
    for (auto& t : batch.timers) acks_.timers.push_back(t);
    if (!ack_flush_scheduled_ && !stopping_) {
      ack_flush_scheduled_ = true;
      deadlines_->Schedule(clock_->Now() + kRetryDelay,
                           [this] { executor_->Post([this] { FlushAcks(); }); });
    }
  }
}

void HistoryEngine::DispatchTransfer(v1::TransferTask task) {
  executor_->Post([this, task = std::move(task)] { ProcessTransfer(task); });
}

void HistoryEngine::ProcessTransfer(const v1::TransferTask& task) {
  if (stopping_) return;
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
    case v1::TransferTask::KIND_CLOSE_EXECUTION:
      // Nothing to notify yet: parents, children and retention arrive with their features.
      break;
    default:
      spdlog::warn("dropping transfer task of unknown kind {}", static_cast<int>(task.kind()));
      break;
  }
  if (!st.ok()) {
    spdlog::warn("transfer task {} failed, will retry: {}", task.task_id(), st.ToString());
    RetryLater([this, task] { ProcessTransfer(task); });
    return;
  }
  Ack(task);
}

void HistoryEngine::EnqueueTimer(const v1::TimerTask& task) {
  Shard& shard = *shards_.at(task.shard_id());
  const absl::Time at = FromProto(task.visibility_time());
  {
    absl::MutexLock lock(&shard.timer_mu);
    if (at >= shard.timer_window_end) return;  // the pager will read it when its window comes
  }
  deadlines_->Schedule(at, [this, task] { executor_->Post([this, task] { ProcessTimer(task); }); });
}

void HistoryEngine::PageTimers(int32_t shard_id) {
  if (stopping_) return;
  Shard& shard = *shards_[shard_id];
  absl::Time from;
  absl::Time until;
  {
    absl::MutexLock lock(&shard.timer_mu);
    from = shard.timer_window_end;
    until = clock_->Now() + options_.timer_window;
    if (until <= from) until = from + options_.timer_window;
    shard.timer_window_end = until;
  }
  // Read [from, until): timers before `from` are already in memory, or were enqueued by
  // their commit. After a restart `from` is the infinite past, so overdue timers fire.
  // The store pages after a (time, task id) position, in microseconds: start just before
  // `from`, past every task id at that instant.
  absl::Time after_time = absl::UnixEpoch();
  int64_t after_id = -1;
  if (from != absl::InfinitePast()) {
    after_time = from - absl::Microseconds(1);
    after_id = INT64_MAX;
  }
  for (;;) {
    auto tasks = stores_->executions->ListTimerTasks(shard_id, after_time, after_id, until, kPageSize);
    if (!tasks.ok()) {
      spdlog::warn("paging timers of shard {}: {}", shard_id, tasks.status().ToString());
      absl::MutexLock lock(&shard.timer_mu);
      shard.timer_window_end = from;  // read this window again
      RetryLater([this, shard_id] { PageTimers(shard_id); });
      return;
    }
    for (const auto& t : *tasks) {
      after_time = FromProto(t.visibility_time());
      after_id = t.task_id();
      const v1::TimerTask copy = t;
      deadlines_->Schedule(after_time, [this, copy] {
        executor_->Post([this, copy] { ProcessTimer(copy); });
      });
    }
    if (static_cast<int>(tasks->size()) < kPageSize) break;
  }
  // Page the next window in a little before this one ends.
  deadlines_->Schedule(until - options_.timer_window / 5,
                       [this, shard_id] { executor_->Post([this, shard_id] { PageTimers(shard_id); }); });
}

void HistoryEngine::ProcessTimer(const v1::TimerTask& task) {
  if (stopping_) return;
  const absl::Time now = clock_->Now();
  absl::Status st;
  switch (task.kind()) {
    case v1::TimerTask::KIND_USER_TIMER:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        FireUserTimer(task, now, ms, fx);
        *write = !fx->events.empty() || ms->buffered_events_size() > 0;
        return absl::OkStatus();
      });
      break;
    case v1::TimerTask::KIND_WORKFLOW_TASK_TIMEOUT:
      st = UpdateRun(task.run(), [&](v1::MutableState* ms, Effects* fx, bool* write) {
        const int64_t stamp = ms->has_workflow_task() ? ms->workflow_task().stamp() : 0;
        TimeoutWorkflowTask(task, now, ms, fx);
        *write = !ms->has_workflow_task() || ms->workflow_task().stamp() != stamp;
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
        EndWorkflowBackoff(now, ms, fx);
        *write = !fx->events.empty();
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
    spdlog::warn("timer task {} failed, will retry: {}", task.task_id(), st.ToString());
    RetryLater([this, task] { ProcessTimer(task); });
    return;
  }
  Ack(task);
}

}  // namespace almanac::history
