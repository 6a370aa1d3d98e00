#include "history/shard_context.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace {
constexpr int kPageSize = 1000;

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}
}  // namespace

ShardContext::ShardContext(int32_t shard_id, std::string owner, persistence::Stores* stores,
                           const persistence::ShardInfo& lease, const ShardOptions& options)
    : shard_id_(shard_id),
      owner_(std::move(owner)),
      stores_(stores),
      options_(options),
      cache_(options.cache_entries, options.cache_bytes),
      range_id_(lease.range_id),
      transfer_(lease.transfer_ack_level),
      timers_(lease.timer_ack_level),
      persisted_transfer_ack_(lease.transfer_ack_level),
      persisted_timer_ack_(lease.timer_ack_level) {}

absl::Status ShardContext::NotOwnedError() const {
  return absl::UnavailableError(
      absl::StrCat("shard ", shard_id_, " is not owned by this node (another node took it)"));
}

persistence::TimerKey ShardContext::KeyOf(const v1::TimerTask& t) {
  return {Micros(t.visibility_time()), t.task_id()};
}

absl::Status ShardContext::AssignTaskIds(std::vector<v1::TransferTask>* transfer,
                                         std::vector<v1::TimerTask>* timers) {
  if (transfer->empty() && timers->empty()) return absl::OkStatus();
  if (!owned()) return NotOwnedError();
  std::string lost_to;
  absl::Status st = AssignTaskIdsLocked(transfer, timers, &lost_to);
  if (!lost_to.empty()) MarkLost(lost_to);
  return st;
}

absl::Status ShardContext::AssignTaskIdsLocked(std::vector<v1::TransferTask>* transfer,
                                               std::vector<v1::TimerTask>* timers,
                                               std::string* lost_to) {
  absl::MutexLock lock(&queue_mu_);
  const size_t needed = transfer->size() + timers->size();
  int64_t range;
  {
    absl::ReaderMutexLock lease(&lease_mu_);
    range = range_id_;
  }
  // Ids are allocated and registered under one lock, so the ack level can never pass an id
  // that is allocated but not yet tracked.
  if (next_sequence_ + static_cast<int64_t>(needed) - 1 > options_.max_task_sequence) {
    absl::MutexLock lease(&lease_mu_);  // waits for writes in flight under the old range
    auto renewed = stores_->shards->RenewRange(shard_id_, range_id_);
    if (!renewed.ok()) {
      if (absl::IsFailedPrecondition(renewed.status())) {
        // Unloaded like any fenced-out write, once queue_mu_ (held here) is released.
        *lost_to = std::string(renewed.status().message());
        return NotOwnedError();
      }
      return renewed.status();
    }
    range_id_ = *renewed;
    range = range_id_;
    next_sequence_ = 1;
    spdlog::info("shard {}: task-id range renewed, range_id {}", shard_id_, range);
  }
  for (auto& t : *transfer) {
    t.set_shard_id(shard_id_);
    t.set_task_id((range << 32) | next_sequence_++);
    transfer_.AddInflight(t.task_id());
  }
  const persistence::TimerKey ack = timers_.ack_level();
  for (auto& t : *timers) {
    t.set_shard_id(shard_id_);
    t.set_task_id((range << 32) | next_sequence_++);
    int64_t at = Micros(t.visibility_time());
    if (at <= ack.time_micros) at = ack.time_micros + 1;
    t.mutable_visibility_time()->set_seconds(at / 1000000);
    t.mutable_visibility_time()->set_nanos(static_cast<int32_t>(at % 1000000) * 1000);
    timers_.AddInflight(KeyOf(t));
  }
  return absl::OkStatus();
}

absl::Status ShardContext::Fenced(const std::function<absl::Status(int64_t range_id)>& write) {
  absl::Status st;
  {
    absl::ReaderMutexLock lease(&lease_mu_);
    if (!owned()) return NotOwnedError();
    st = write(range_id_);
  }
  if (absl::IsFailedPrecondition(st)) {
    MarkLost(std::string(st.message()));
    return NotOwnedError();
  }
  return st;
}

ShardContext::Outcome ShardContext::OutcomeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return Outcome::kCommitted;
    // Raised by a statement inside the transaction, which then rolled back.
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
      return Outcome::kNotCommitted;
    default:
      return Outcome::kUnknown;
  }
}

void ShardContext::Resolve(Outcome outcome, const std::vector<v1::TransferTask>& transfer,
                           const std::vector<v1::TimerTask>& timers,
                           std::vector<v1::TransferTask>* run_transfer,
                           std::vector<v1::TimerTask>* run_timers) {
  if (transfer.empty() && timers.empty()) return;
  {
    absl::MutexLock lock(&queue_mu_);
    for (const auto& t : transfer) {
      switch (outcome) {
        case Outcome::kCommitted:
          if (transfer_.Committed(t.task_id())) run_transfer->push_back(t);
          break;
        case Outcome::kNotCommitted:
          transfer_.NotCommitted(t.task_id());
          break;
        case Outcome::kUnknown:
          transfer_.Unknown(t.task_id());
          break;
      }
    }
    for (const auto& t : timers) {
      const persistence::TimerKey key = KeyOf(t);
      switch (outcome) {
        case Outcome::kCommitted:
          if (key.time_micros >= window_end_micros_) {
            // Beyond the window: the pager reads it when its window comes.
            timers_.NotCommitted(key);
          } else if (timers_.Committed(key)) {
            run_timers->push_back(t);
          }
          break;
        case Outcome::kNotCommitted:
          timers_.NotCommitted(key);
          break;
        case Outcome::kUnknown:
          timers_.Unknown(key);
          break;
      }
    }
  }
  if (outcome == Outcome::kUnknown) rescan_requested_ = true;
}

void ShardContext::TransferDone(int64_t task_id) {
  absl::MutexLock lock(&queue_mu_);
  transfer_.Done(task_id);
}

void ShardContext::TimerDone(const v1::TimerTask& task) {
  absl::MutexLock lock(&queue_mu_);
  timers_.Done(KeyOf(task));
}

absl::StatusOr<std::vector<v1::TransferTask>> ShardContext::RescanTransfer() {
  if (!owned()) return NotOwnedError();
  std::vector<int64_t> unknown;
  int64_t after;
  {
    absl::MutexLock lock(&queue_mu_);
    unknown = transfer_.UnknownKeys();
    after = transfer_.ack_level();
  }
  std::vector<v1::TransferTask> out;
  for (;;) {
    auto page = stores_->executions->ListTransferTasks(shard_id_, after, kPageSize);
    if (!page.ok()) return page.status();
    absl::MutexLock lock(&queue_mu_);
    for (auto& t : *page) {
      after = t.task_id();
      if (transfer_.Found(t.task_id())) out.push_back(std::move(t));
    }
    if (static_cast<int>(page->size()) < kPageSize) break;
  }
  absl::MutexLock lock(&queue_mu_);
  transfer_.Forget(unknown);
  return out;
}

absl::StatusOr<std::vector<v1::TimerTask>> ShardContext::ReadTimers(bool from_ack_level,
                                                                   absl::Time window_end) {
  if (!owned()) return NotOwnedError();
  std::vector<persistence::TimerKey> unknown;
  persistence::TimerKey after;
  int64_t until = absl::ToUnixMicros(window_end);
  {
    absl::MutexLock lock(&queue_mu_);
    unknown = timers_.UnknownKeys();
    if (from_ack_level) {
      after = timers_.ack_level();
    } else {
      // Just before the old window end, past every task id at that instant.
      after = {window_end_micros_ - 1, INT64_MAX};
    }
    until = std::max(until, window_end_micros_);
    // Moved before the read: a timer committed meanwhile is either seen by the read or
    // inside the window when its commit settles, and then run by the committer.
    window_end_micros_ = until;
  }
  const persistence::TimerKey from = after;
  std::vector<v1::TimerTask> out;
  for (;;) {
    auto page = stores_->executions->ListTimerTasks(
        shard_id_, absl::FromUnixMicros(after.time_micros), after.task_id,
        absl::FromUnixMicros(until), kPageSize);
    if (!page.ok()) return page.status();
    absl::MutexLock lock(&queue_mu_);
    for (auto& t : *page) {
      after = KeyOf(t);
      if (timers_.Found(after)) out.push_back(std::move(t));
    }
    if (static_cast<int>(page->size()) < kPageSize) break;
  }
  // Unknown writes inside the range read, and not found, were never written.
  std::vector<persistence::TimerKey> settled;
  for (const auto& k : unknown) {
    if (from < k && k.time_micros < until) settled.push_back(k);
  }
  absl::MutexLock lock(&queue_mu_);
  timers_.Forget(settled);
  return out;
}

absl::Time ShardContext::timer_window_end() const {
  absl::MutexLock lock(&queue_mu_);
  return absl::FromUnixMicros(window_end_micros_);
}

absl::Status ShardContext::FlushAcks() {
  if (!owned()) return NotOwnedError();
  absl::MutexLock flush(&flush_mu_);
  int64_t transfer_ack;
  persistence::TimerKey timer_ack;
  {
    absl::MutexLock lock(&queue_mu_);
    transfer_ack = transfer_.Advance();
    timer_ack = timers_.Advance();
    if (transfer_ack == persisted_transfer_ack_ && timer_ack == persisted_timer_ack_) {
      return absl::OkStatus();
    }
  }
  absl::Status st = Fenced([&](int64_t range) {
    return stores_->executions->CompleteTasks(shard_id_, range, transfer_ack, timer_ack);
  });
  if (!st.ok()) return st;  // retried at the next flush: the range delete is idempotent
  absl::MutexLock lock(&queue_mu_);
  persisted_transfer_ack_ = transfer_ack;
  persisted_timer_ack_ = timer_ack;
  return absl::OkStatus();
}

absl::Status ShardContext::RenewLease(absl::Time now) {
  return Fenced([&](int64_t range) {
    return stores_->shards->RenewShard(shard_id_, range, owner_, now);
  });
}

void ShardContext::MarkLost(const std::string& why) {
  if (lost_.exchange(true)) return;
  spdlog::error("shard {}: ownership lost, another node took it ({}); this node stops writing "
                "to it and unloads it",
                shard_id_, why);
  cache_.Clear();
  absl::MutexLock lock(&queue_mu_);
  transfer_.Clear();
  timers_.Clear();
}

int64_t ShardContext::range_id() const {
  absl::ReaderMutexLock lease(&lease_mu_);
  return range_id_;
}

int64_t ShardContext::transfer_ack_level() const {
  absl::MutexLock lock(&queue_mu_);
  return transfer_.ack_level();
}

persistence::TimerKey ShardContext::timer_ack_level() const {
  absl::MutexLock lock(&queue_mu_);
  return timers_.ack_level();
}

size_t ShardContext::outstanding_tasks() const {
  absl::MutexLock lock(&queue_mu_);
  return transfer_.size() + timers_.size();
}

}  // namespace almanac::history
