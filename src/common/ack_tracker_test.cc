#include "common/ack_tracker.h"

#include <gtest/gtest.h>

namespace almanac {
namespace {

TEST(AckTrackerTest, AckLevelStopsAtTheFirstTaskNotDone) {
  AckTracker<int64_t> t(10);
  for (int64_t id : {11, 12, 13}) t.AddInflight(id);
  EXPECT_TRUE(t.Committed(11));
  EXPECT_TRUE(t.Committed(12));
  EXPECT_TRUE(t.Committed(13));
  t.Done(12);
  t.Done(13);
  EXPECT_EQ(t.Advance(), 10);  // 11 still runs
  t.Done(11);
  EXPECT_EQ(t.Advance(), 13);
  EXPECT_EQ(t.size(), 0u);
}

TEST(AckTrackerTest, InflightWritesHoldTheAckLevelBack) {
  AckTracker<int64_t> t(0);
  t.AddInflight(1);
  t.AddInflight(2);
  ASSERT_TRUE(t.Committed(2));
  t.Done(2);
  EXPECT_EQ(t.Advance(), 0);
  t.NotCommitted(1);  // rolled back: never written
  EXPECT_EQ(t.Advance(), 2);
}

TEST(AckTrackerTest, ARescanSettlesWritesOfUnknownOutcome) {
  AckTracker<int64_t> t(0);
  t.AddInflight(1);
  t.AddInflight(2);
  t.AddInflight(3);
  t.Unknown(1);  // written after all
  t.Unknown(2);  // never written
  const auto unknown = t.UnknownKeys();
  ASSERT_EQ(unknown.size(), 2u);
  EXPECT_TRUE(t.Found(1));   // the rescan runs it
  EXPECT_TRUE(t.Found(3));   // committed meanwhile, found before its committer settled it
  EXPECT_FALSE(t.Committed(3));  // so the committer must not run it again
  t.Forget(unknown);
  EXPECT_FALSE(t.IsOutstanding(2));
  EXPECT_TRUE(t.IsOutstanding(1));
  t.Done(1);
  t.Done(3);
  EXPECT_EQ(t.Advance(), 3);
}

TEST(AckTrackerTest, FoundIgnoresTasksAtOrBelowTheAckLevelAndKnownOnes) {
  AckTracker<int64_t> t(5);
  EXPECT_FALSE(t.Found(5));
  EXPECT_TRUE(t.Found(6));
  EXPECT_FALSE(t.Found(6));
  t.Done(6);
  EXPECT_FALSE(t.Found(6));
}

TEST(AckTrackerTest, AdvanceRespectsALimit) {
  AckTracker<int64_t> t(0);
  for (int64_t id : {1, 2, 3}) {
    t.Found(id);
    t.Done(id);
  }
  EXPECT_EQ(t.Advance(2), 2);
  EXPECT_EQ(t.Advance(), 3);
}

}  // namespace
}  // namespace almanac
