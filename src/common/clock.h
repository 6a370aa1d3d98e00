#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace almanac {

// The source of time for every role. Production uses the real clock; tests inject a
// ManualClock so that timers and timeouts are driven without sleeping. Thread-safe.
class Clock {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;
};

// The process-wide real clock. Never null; never deleted.
Clock* RealClock();

// A clock that moves only when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override;
  void Advance(absl::Duration d);
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace almanac
