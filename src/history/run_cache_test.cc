#include "history/run_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace almanac::history {
namespace {

std::shared_ptr<CachedRun> MakeRun(const std::string& id, size_t padding = 0) {
  auto run = std::make_shared<CachedRun>();
  run->state.mutable_execution()->set_run_id(id);
  run->state.mutable_execution()->set_workflow_type(std::string(padding, 'x'));
  return run;
}

TEST(RunCacheTest, EvictsTheLeastRecentlyUsedFirst) {
  RunCache cache(3, size_t{1} << 30);
  cache.Put("a", MakeRun("a"));
  cache.Put("b", MakeRun("b"));
  cache.Put("c", MakeRun("c"));
  ASSERT_NE(cache.Get("a"), nullptr);  // a is now the most recently used
  cache.Put("d", MakeRun("d"));            // evicts b, the least recently used
  EXPECT_EQ(cache.Get("b"), nullptr);
  EXPECT_NE(cache.Get("a"), nullptr);
  EXPECT_NE(cache.Get("c"), nullptr);
  EXPECT_NE(cache.Get("d"), nullptr);
  EXPECT_EQ(cache.size(), 3u);
}

TEST(RunCacheTest, IsBoundedByBytes) {
  RunCache cache(1000, 10 * 1024);
  for (int i = 0; i < 10; ++i) cache.Put(std::to_string(i), MakeRun(std::to_string(i), 2000));
  EXPECT_LE(cache.bytes(), 10u * 1024);
  EXPECT_LT(cache.size(), 10u);
  EXPECT_NE(cache.Get("9"), nullptr);  // the newest stays
  EXPECT_EQ(cache.Get("0"), nullptr);
}

TEST(RunCacheTest, KeepsAnEntryLargerThanTheBoundUntilSomethingNewer) {
  RunCache cache(10, 100);
  cache.Put("big", MakeRun("big", 1000));
  EXPECT_NE(cache.Get("big"), nullptr);
  cache.Put("small", MakeRun("small"));
  EXPECT_EQ(cache.Get("big"), nullptr);
}

TEST(RunCacheTest, ReplacingAnEntryUpdatesItsSize) {
  RunCache cache(10, size_t{1} << 30);
  cache.Put("a", MakeRun("a", 5000));
  const size_t big = cache.bytes();
  cache.Put("a", MakeRun("a"));
  EXPECT_LT(cache.bytes(), big);
  EXPECT_EQ(cache.size(), 1u);
  cache.Erase("a");
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(RunCacheTest, AnEvictedEntryStaysUsableByItsHolder) {
  RunCache cache(1, size_t{1} << 30);
  cache.Put("a", MakeRun("a"));
  auto held = cache.Get("a");
  cache.Put("b", MakeRun("b"));
  EXPECT_EQ(cache.Get("a"), nullptr);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->state.execution().run_id(), "a");
}

}  // namespace
}  // namespace almanac::history
