#include "common/deadline_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace almanac {
namespace {

// Polls `cond` until it holds or a deadline passes; no fixed sleeps.
template <typename Cond>
bool Eventually(Cond cond) {
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (absl::Now() < until) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return cond();
}

TEST(DeadlineQueueTest, RunsInTimeOrderWhenTheClockPassesEachDeadline) {
  ManualClock clock(absl::FromUnixSeconds(1000));
  DeadlineQueue queue(&clock);
  absl::Mutex mu;
  std::vector<int> ran;
  auto record = [&](int i) { return [&, i] { absl::MutexLock l(&mu); ran.push_back(i); }; };
  queue.Schedule(absl::FromUnixSeconds(1002), record(2));
  queue.Schedule(absl::FromUnixSeconds(1001), record(1));
  queue.Schedule(absl::FromUnixSeconds(1003), record(3));
  clock.Advance(absl::Seconds(2));
  queue.Poke();
  ASSERT_TRUE(Eventually([&] { absl::MutexLock l(&mu); return ran.size() == 2; }));
  clock.Advance(absl::Seconds(5));
  queue.Poke();
  ASSERT_TRUE(Eventually([&] { absl::MutexLock l(&mu); return ran.size() == 3; }));
  absl::MutexLock l(&mu);
  EXPECT_EQ(ran, (std::vector{1, 2, 3}));
}

TEST(DeadlineQueueTest, CancelledCallbacksNeverRun) {
  ManualClock clock(absl::FromUnixSeconds(1000));
  DeadlineQueue queue(&clock);
  std::atomic<int> ran{0};
  auto id = queue.Schedule(absl::FromUnixSeconds(1001), [&] { ran += 10; });
  queue.Schedule(absl::FromUnixSeconds(1001), [&] { ran += 1; });
  EXPECT_TRUE(queue.Cancel(id));
  EXPECT_FALSE(queue.Cancel(id));
  clock.Advance(absl::Seconds(1));
  queue.Poke();
  ASSERT_TRUE(Eventually([&] { return ran.load() == 1; }));
}

}  // namespace
}  // namespace almanac
