#pragma once

// AckTracker: which tasks of an ordered queue are done, so that the queue's ack level (the
// position up to which every task is done) can be persisted and everything at or below it
// deleted by one range delete.
//
// Each task is tracked from the moment its key is allocated, before the transaction that
// writes it commits, so the ack level never passes a task whose write is still in flight.
// A write whose outcome is unknown keeps its keys until a rescan of the store settles them:
// found ones run, missing ones were never written and are forgotten.
//
// Not thread-safe: the owner guards it with its own mutex.

#include <map>
#include <optional>
#include <vector>

namespace almanac {

template <typename Key>
class AckTracker {
 public:
  enum class State {
    kInflight,  // allocated; the transaction writing it has not finished
    kUnknown,   // the transaction finished with an unknown outcome; a rescan decides
    kPending,   // written and known to the processor; runs until done
    kDone,      // handled; waits for the ack level to pass it
  };

  explicit AckTracker(Key ack_level = Key()) : ack_level_(ack_level) {}

  Key ack_level() const { return ack_level_; }
  size_t size() const { return tasks_.size(); }

  // A key was allocated for a write that has not committed yet.
  void AddInflight(const Key& key) { tasks_[key] = State::kInflight; }

  // The write committed. Returns true when the caller should run the task now; false when a
  // rescan already found it (and ran it).
  bool Committed(const Key& key) {
    auto it = tasks_.find(key);
    if (it == tasks_.end() || it->second != State::kInflight) return false;
    it->second = State::kPending;
    return true;
  }

  // The write certainly did not commit.
  void NotCommitted(const Key& key) {
    auto it = tasks_.find(key);
    if (it != tasks_.end() && it->second == State::kInflight) tasks_.erase(it);
  }

  // The write's outcome is unknown.
  void Unknown(const Key& key) {
    auto it = tasks_.find(key);
    if (it != tasks_.end() && it->second == State::kInflight) it->second = State::kUnknown;
  }

  // A task read from the store. Returns true when the caller should run it: it was not
  // known, or its write was still in flight or of unknown outcome.
  bool Found(const Key& key) {
    if (key <= ack_level_) return false;
    auto [it, inserted] = tasks_.try_emplace(key, State::kPending);
    if (inserted) return true;
    if (it->second == State::kInflight || it->second == State::kUnknown) {
      it->second = State::kPending;
      return true;
    }
    return false;
  }

  // The keys whose outcome is unknown now; a rescan that starts after this call and does
  // not find one of them proves it was never written (see Forget).
  std::vector<Key> UnknownKeys() const {
    std::vector<Key> out;
    for (const auto& [k, s] : tasks_) {
      if (s == State::kUnknown) out.push_back(k);
    }
    return out;
  }

  // Drops keys of unknown outcome that a complete rescan did not find.
  void Forget(const std::vector<Key>& keys) {
    for (const Key& k : keys) {
      auto it = tasks_.find(k);
      if (it != tasks_.end() && it->second == State::kUnknown) tasks_.erase(it);
    }
  }

  // Marks a task handled.
  void Done(const Key& key) {
    auto it = tasks_.find(key);
    if (it != tasks_.end()) it->second = State::kDone;
  }

  // Advances the ack level over the done tasks at the front, at most up to `limit` when
  // given (tasks beyond it may exist unseen), and returns it.
  Key Advance(std::optional<Key> limit = std::nullopt) {
    while (!tasks_.empty()) {
      auto it = tasks_.begin();
      if (it->second != State::kDone) break;
      if (limit.has_value() && *limit < it->first) break;
      ack_level_ = it->first;
      tasks_.erase(it);
    }
    return ack_level_;
  }

  // Whether `key` is tracked and not done.
  bool IsOutstanding(const Key& key) const {
    auto it = tasks_.find(key);
    return it != tasks_.end() && it->second != State::kDone;
  }

  void Clear() { tasks_.clear(); }

 private:
  Key ack_level_;
  std::map<Key, State> tasks_;
};

}  // namespace almanac
