// ShardContext over a real SQLite store (a temporary file): the lease, task-id ranges, ack
// levels with range deletes, and rescans that settle writes of unknown outcome.

#include "history/shard_context.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "persistence/schema.h"

namespace almanac::history {
namespace {

using persistence::ExecutionMutation;

class ShardContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / absl::StrCat("almanac-shard-", NewUuid(), ".db");
    auto driver = persistence::NewSqliteDriver({path_.string(), false, 2});
    ASSERT_TRUE(driver.ok()) << driver.status();
    ASSERT_TRUE(persistence::MigrateSchema(driver->get()).ok());
    stores_ = persistence::NewSqlStores(std::move(*driver));
  }
  void TearDown() override {
    stores_.reset();
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix, ignored);
  }

  std::unique_ptr<ShardContext> Load(int32_t shard_id, ShardOptions options = {}) {
    auto lease = stores_->shards->AcquireShard(shard_id, "test-node");
    EXPECT_TRUE(lease.ok()) << lease.status();
    return std::make_unique<ShardContext>(shard_id, "test-node", stores_.get(), *lease, options);
  }

  // Writes a new run carrying `transfer` and `timers` through the shard's fence.
  absl::Status Write(ShardContext& shard, const std::string& run_id,
                     const std::vector<v1::TransferTask>& transfer,
                     const std::vector<v1::TimerTask>& timers) {
    v1::MutableState ms;
    ms.mutable_execution()->set_namespace_id("ns");
    ms.mutable_execution()->set_workflow_id(run_id);
    ms.mutable_execution()->set_run_id(run_id);
    ms.set_db_version(1);
    ExecutionMutation m;
    m.shard_id = shard.id();
    m.state = &ms;
    m.create = true;
    m.transfer_tasks = transfer;
    m.timer_tasks = timers;
    return shard.Fenced([&](int64_t range) {
      m.range_id = range;
      return stores_->executions->Apply(m);
    });
  }

  static v1::TimerTask Timer(absl::Time at) {
    v1::TimerTask t;
    t.set_kind(v1::TimerTask::KIND_USER_TIMER);
    t.mutable_visibility_time()->set_seconds(absl::ToUnixSeconds(at));
    return t;
  }

  std::filesystem::path path_;
  std::unique_ptr<persistence::Stores> stores_;
};

TEST_F(ShardContextTest, TaskIdsMoveToTheNextRangeWhenTheSequenceRunsOut) {
  ShardOptions options;
  options.max_task_sequence = 3;
  auto shard = Load(0, options);
  const int64_t first_range = shard->range_id();
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    std::vector<v1::TransferTask> transfer(2);
    std::vector<v1::TimerTask> timers;
    ASSERT_TRUE(shard->AssignTaskIds(&transfer, &timers).ok());
    for (const auto& t : transfer) {
      EXPECT_LE(t.task_id() & 0xffffffff, 3) << "a sequence overflowed its range";
      ids.push_back(t.task_id());
    }
    ASSERT_TRUE(Write(*shard, absl::StrCat("r", i), transfer, timers).ok());
  }
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]);
  EXPECT_GT(shard->range_id(), first_range);
  EXPECT_TRUE(shard->owned());
}

TEST_F(ShardContextTest, ARangeRenewalThatFindsTheShardTakenUnloadsIt) {
  ShardOptions options;
  options.max_task_sequence = 1;
  auto shard = Load(3, options);
  std::vector<v1::TransferTask> first(1);
  std::vector<v1::TimerTask> timers;
  ASSERT_TRUE(shard->AssignTaskIds(&first, &timers).ok());
  auto thief = Load(3);
  std::vector<v1::TransferTask> second(1);
  EXPECT_TRUE(absl::IsUnavailable(shard->AssignTaskIds(&second, &timers)));
  EXPECT_FALSE(shard->owned());
  EXPECT_TRUE(absl::IsUnavailable(shard->RenewLease(absl::Now())));
}

TEST_F(ShardContextTest, ALeaseTakenByAnotherNodeStopsEveryWrite) {
  auto shard = Load(1);
  ASSERT_TRUE(shard->RenewLease(absl::Now()).ok());
  auto thief = Load(1);  // another node takes the shard
  EXPECT_TRUE(shard->owned()) << "not yet noticed";
  absl::Status st = shard->RenewLease(absl::Now());
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_FALSE(shard->owned());
  std::vector<v1::TransferTask> transfer(1);
  std::vector<v1::TimerTask> timers;
  EXPECT_TRUE(absl::IsUnavailable(shard->AssignTaskIds(&transfer, &timers)));
  EXPECT_TRUE(absl::IsUnavailable(Write(*shard, "r", {}, {})));
  // The new owner writes.
  EXPECT_TRUE(Write(*thief, "r", {}, {}).ok());
}

TEST_F(ShardContextTest, AWriteFencedOutMarksTheShardLost) {
  auto shard = Load(2);
  auto thief = Load(2);
  absl::Status st = Write(*shard, "r", {}, {});
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_FALSE(shard->owned());
  EXPECT_TRUE(absl::IsUnavailable(shard->FlushAcks()));
}

TEST_F(ShardContextTest, DoneTasksAreDeletedByRangeAndTheAckLevelsSurviveARestart) {
  auto shard = Load(3);
  const absl::Time t0 = absl::FromUnixSeconds(1000000);
  ASSERT_TRUE(shard->ReadTimers(true, t0 + absl::Hours(1)).ok());
  std::vector<v1::TransferTask> transfer(3);
  std::vector<v1::TimerTask> timers = {Timer(t0 + absl::Seconds(1)), Timer(t0 + absl::Seconds(2))};
  ASSERT_TRUE(shard->AssignTaskIds(&transfer, &timers).ok());
  ASSERT_TRUE(Write(*shard, "r", transfer, timers).ok());
  std::vector<v1::TransferTask> run_transfer;
  std::vector<v1::TimerTask> run_timers;
  shard->Resolve(ShardContext::Outcome::kCommitted, transfer, timers, &run_transfer, &run_timers);
  ASSERT_EQ(run_transfer.size(), 3u);
  ASSERT_EQ(run_timers.size(), 2u);

  // Out of order: the ack level waits for the first.
  shard->TransferDone(transfer[2].task_id());
  shard->TransferDone(transfer[1].task_id());
  shard->TimerDone(timers[0]);
  ASSERT_TRUE(shard->FlushAcks().ok());
  auto left = stores_->executions->ListTransferTasks(3, 0, 10);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->size(), 3u);
  auto left_timers = stores_->executions->ListTimerTasks(3, absl::UnixEpoch(), 0, absl::InfiniteFuture(), 10);
  ASSERT_TRUE(left_timers.ok());
  EXPECT_EQ(left_timers->size(), 1u);

  shard->TransferDone(transfer[0].task_id());
  shard->TimerDone(timers[1]);
  ASSERT_TRUE(shard->FlushAcks().ok());
  left = stores_->executions->ListTransferTasks(3, 0, 10);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  left_timers = stores_->executions->ListTimerTasks(3, absl::UnixEpoch(), 0, absl::InfiniteFuture(), 10);
  ASSERT_TRUE(left_timers.ok());
  EXPECT_TRUE(left_timers->empty());

  auto lease = stores_->shards->AcquireShard(3, "next-node");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->transfer_ack_level, transfer[2].task_id());
  EXPECT_EQ(lease->timer_ack_level.task_id, timers[1].task_id());
}

TEST_F(ShardContextTest, ARescanRunsWhatAnUnknownWriteWroteAndForgetsTheRest) {
  auto shard = Load(0);
  ASSERT_TRUE(shard->ReadTimers(true, absl::Now() + absl::Hours(1)).ok());
  std::vector<v1::TransferTask> written(1), lost(1);
  std::vector<v1::TimerTask> written_timers = {Timer(absl::Now() + absl::Minutes(1))};
  std::vector<v1::TimerTask> no_timers;
  ASSERT_TRUE(shard->AssignTaskIds(&written, &written_timers).ok());
  ASSERT_TRUE(shard->AssignTaskIds(&lost, &no_timers).ok());
  ASSERT_TRUE(Write(*shard, "r", written, written_timers).ok());
  std::vector<v1::TransferTask> run_transfer;
  std::vector<v1::TimerTask> run_timers;
  // Both writes report an unknown outcome; only the first reached the store.
  shard->Resolve(ShardContext::Outcome::kUnknown, written, written_timers, &run_transfer, &run_timers);
  shard->Resolve(ShardContext::Outcome::kUnknown, lost, no_timers, &run_transfer, &run_timers);
  EXPECT_TRUE(run_transfer.empty());
  EXPECT_TRUE(shard->TakeRescanRequest());

  auto found = shard->RescanTransfer();
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].task_id(), written[0].task_id());
  auto found_timers = shard->ReadTimers(true, absl::Now() + absl::Hours(1));
  ASSERT_TRUE(found_timers.ok());
  ASSERT_EQ(found_timers->size(), 1u);

  shard->TransferDone(written[0].task_id());
  shard->TimerDone((*found_timers)[0]);
  ASSERT_TRUE(shard->FlushAcks().ok());
  // The lost task no longer holds the ack level back: nothing is outstanding.
  EXPECT_EQ(shard->transfer_ack_level(), written[0].task_id());
  EXPECT_EQ(shard->outstanding_tasks(), 0u);
}

TEST_F(ShardContextTest, TimersAreNeverScheduledBelowTheTimerAckLevel) {
  auto shard = Load(1);
  const absl::Time t0 = absl::FromUnixSeconds(2000000);
  ASSERT_TRUE(shard->ReadTimers(true, t0 + absl::Hours(1)).ok());
  std::vector<v1::TransferTask> none;
  std::vector<v1::TimerTask> timers = {Timer(t0)};
  ASSERT_TRUE(shard->AssignTaskIds(&none, &timers).ok());
  ASSERT_TRUE(Write(*shard, "a", none, timers).ok());
  std::vector<v1::TransferTask> rt;
  std::vector<v1::TimerTask> rtimers;
  shard->Resolve(ShardContext::Outcome::kCommitted, none, timers, &rt, &rtimers);
  shard->TimerDone(timers[0]);
  ASSERT_TRUE(shard->FlushAcks().ok());
  // A timer due at the same instant as the ack level, or before it, moves just after it.
  std::vector<v1::TimerTask> late = {Timer(t0 - absl::Seconds(5))};
  ASSERT_TRUE(shard->AssignTaskIds(&none, &late).ok());
  EXPECT_GT(absl::FromUnixSeconds(late[0].visibility_time().seconds()) +
                absl::Nanoseconds(late[0].visibility_time().nanos()),
            t0);
}

}  // namespace
}  // namespace almanac::history
