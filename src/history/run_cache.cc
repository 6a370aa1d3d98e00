#include "history/run_cache.h"

namespace almanac::history {

size_t CachedRun::Bytes() const {
  size_t n = sizeof(CachedRun) + state.ByteSizeLong();
  if (started_event) n += started_event->ByteSizeLong();
  for (const auto& [id, e] : scheduled_events) n += sizeof(id) + e.ByteSizeLong();
  return n;
}

std::shared_ptr<CachedRun> RunCache::Get(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->run;
}

void RunCache::Put(const std::string& key, std::shared_ptr<CachedRun> run) {
  // Measured outside the lock: it walks the whole state.
  const size_t bytes = run->Bytes();
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= it->second->bytes;
    it->second->run = std::move(run);
    it->second->bytes = bytes;
    lru_.splice(lru_.begin(), lru_, it->second);
  } else {
    lru_.push_front(Slot{key, std::move(run), bytes});
    index_.emplace(key, lru_.begin());
  }
  bytes_ += bytes;
  EvictLocked();
}

void RunCache::EvictLocked() {
  while (lru_.size() > 1 && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    Slot& victim = lru_.back();
    bytes_ -= victim.bytes;
    index_.erase(victim.key);
    lru_.pop_back();
  }
}

void RunCache::Erase(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return;
  bytes_ -= it->second->bytes;
  lru_.erase(it->second);
  index_.erase(it);
}

void RunCache::Clear() {
  absl::MutexLock lock(&mu_);
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

size_t RunCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

size_t RunCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace almanac::history
