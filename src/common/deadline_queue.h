#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace almanac {

// Runs callbacks at (or soon after) a given time, on one internal thread. Callbacks must be
// short and must not block: anything slow is posted to an Executor. Used for long-poll
// expiry and for the in-memory window of history timer tasks. Thread-safe.
class DeadlineQueue {
 public:
  using Id = uint64_t;

  explicit DeadlineQueue(Clock* clock);
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;
  // Stops running callbacks and joins the thread. Schedule and Cancel stay safe to call
  // afterwards (what they add never runs), so that closures still draining elsewhere at
  // shutdown may use the queue.
  void Stop();
  // Stops, and drops callbacks not yet run.
  ~DeadlineQueue();

  // Schedules `fn` at `when`. Returns an id for Cancel.
  Id Schedule(absl::Time when, std::function<void()> fn);
  // Cancels a callback not yet started. Returns true when it was cancelled.
  bool Cancel(Id id);
  // Wakes the thread to re-read the clock (for tests with a ManualClock).
  void Poke();

 private:
  void Loop();

  Clock* const clock_;
  absl::Mutex mu_;
  // Keyed by (when, id) so that equal times run in scheduling order.
  std::map<std::pair<absl::Time, Id>, std::function<void()>> entries_ ABSL_GUARDED_BY(mu_);
  std::map<Id, absl::Time> when_by_id_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace almanac
