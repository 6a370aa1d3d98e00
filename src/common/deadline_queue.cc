#include "common/deadline_queue.h"

namespace almanac {

// The longest the thread sleeps before re-reading the clock; bounds the lag after a
// ManualClock moves without a Poke, and after the system clock jumps.
constexpr absl::Duration kMaxSleep = absl::Milliseconds(200);

DeadlineQueue::DeadlineQueue(Clock* clock) : clock_(clock) {
  thread_ = std::thread([this] { Loop(); });
}

DeadlineQueue::~DeadlineQueue() { Stop(); }

void DeadlineQueue::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

DeadlineQueue::Id DeadlineQueue::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  const Id id = next_id_++;
  const bool earliest = entries_.empty() || when < entries_.begin()->first.first;
  entries_.emplace(std::make_pair(when, id), std::move(fn));
  when_by_id_.emplace(id, when);
  if (earliest) poked_ = true;
  return id;
}

bool DeadlineQueue::Cancel(Id id) {
  absl::MutexLock lock(&mu_);
  auto it = when_by_id_.find(id);
  if (it == when_by_id_.end()) return false;
  entries_.erase({it->second, id});
  when_by_id_.erase(it);
  return true;
}

void DeadlineQueue::Poke() {
  absl::MutexLock lock(&mu_);
  poked_ = true;
}

void DeadlineQueue::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = clock_->Now();
    if (!entries_.empty() && entries_.begin()->first.first <= now) {
      auto node = entries_.extract(entries_.begin());
      when_by_id_.erase(node.key().second);
      mu_.Unlock();
      node.mapped()();
      mu_.Lock();
      continue;
    }
    absl::Duration wait = kMaxSleep;
    if (!entries_.empty()) wait = std::min(wait, entries_.begin()->first.first - now);
    poked_ = false;
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || poked_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
  }
}

}  // namespace almanac
