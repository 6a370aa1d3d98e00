#pragma once

// RunCache: the mutable states of recently used runs, bounded by entry count and by bytes,
// evicting the least recently used first. It holds only what can be reloaded from the
// store; nothing that waits on a run lives here (see RunContext in history_engine.h), so
// eviction never loses a caller.
//
// Thread-safe. Entries are shared: a caller that got an entry may keep using it after it was
// evicted (it is then simply no longer cached). Mutations of one run are serialized by the
// engine's per-workflow lock, not by the cache.

#include <cstddef>
#include <list>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "almanac/v1/persistence.pb.h"
#include "temporal/api/history/v1/message.pb.h"

namespace almanac::history {

// What the engine keeps of one run besides its state: events it would otherwise read back.
struct CachedRun {
  v1::MutableState state;
  // The run's WorkflowExecutionStarted event, read once for runs that may start a successor.
  std::unique_ptr<temporal::api::history::v1::HistoryEvent> started_event;
  // ActivityTaskScheduled events of pending activities (small ones only), by scheduled
  // event id, so that starting an attempt need not read them back.
  absl::flat_hash_map<int64_t, temporal::api::history::v1::HistoryEvent> scheduled_events;

  // An estimate of the memory this entry holds.
  size_t Bytes() const;
};

class RunCache {
 public:
  RunCache(size_t max_entries, size_t max_bytes)
      : max_entries_(max_entries == 0 ? 1 : max_entries), max_bytes_(max_bytes) {}
  RunCache(const RunCache&) = delete;
  RunCache& operator=(const RunCache&) = delete;

  // Returns the entry and marks it most recently used, or null when absent.
  std::shared_ptr<CachedRun> Get(const std::string& key);
  // Inserts or replaces the entry (as most recently used), with its size measured now, then
  // evicts from the least recently used end until both bounds hold. The newest entry is
  // kept even when it alone exceeds the byte bound.
  void Put(const std::string& key, std::shared_ptr<CachedRun> run);
  void Erase(const std::string& key);
  void Clear();

  size_t size() const;
  size_t bytes() const;

 private:
  struct Slot {
    std::string key;
    std::shared_ptr<CachedRun> run;
    size_t bytes = 0;
  };
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_entries_;
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::list<Slot> lru_ ABSL_GUARDED_BY(mu_);  // front: most recently used
  absl::flat_hash_map<std::string, std::list<Slot>::iterator> index_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace almanac::history
