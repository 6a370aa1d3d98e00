// One conformance suite for the stores, run against every driver: SQLite (a temporary file)
// and PostgreSQL (the server named by ALMANAC_TEST_POSTGRES=host:port:user:database, which
// scripts/test.sh provides). Each test gets a fresh database.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "persistence/fault_injection.h"
#include "persistence/schema.h"
#include "persistence/stores.h"

namespace almanac::persistence {
namespace {

namespace enums = temporal::api::enums::v1;
using temporal::api::history::v1::History;
using temporal::api::history::v1::HistoryEvent;

enum class Backend { kSqlite, kPostgres };

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::unique_ptr<SqlDriver> driver;
    if (GetParam() == Backend::kSqlite) {
      path_ = std::filesystem::temp_directory_path() / absl::StrCat("almanac-conf-", NewUuid(), ".db");
      auto d = NewSqliteDriver({path_.string(), false, 4});
      ASSERT_TRUE(d.ok()) << d.status();
      driver = std::move(*d);
      open_ = [path = path_.string()]() -> std::unique_ptr<SqlDriver> {
        auto d = NewSqliteDriver({path, false, 4});
        return d.ok() ? std::move(*d) : nullptr;
      };
    } else {
      const char* env = std::getenv("ALMANAC_TEST_POSTGRES");
      if (env == nullptr) GTEST_SKIP() << "ALMANAC_TEST_POSTGRES is not set (scripts/test.sh sets it)";
      std::vector<std::string> parts = absl::StrSplit(env, ':');
      ASSERT_EQ(parts.size(), 4u) << "ALMANAC_TEST_POSTGRES=host:port:user:database";
      PostgresOptions admin{parts[0], std::stoi(parts[1]), parts[2], "", parts[3], 2};
      auto a = NewPostgresDriver(admin);
      ASSERT_TRUE(a.ok()) << a.status();
      const std::string db = absl::StrCat("conf_", absl::StrReplaceAll(NewUuid(), {{"-", ""}}).substr(0, 16));
      {
        auto conn = (*a)->Acquire();
        ASSERT_TRUE(conn.ok());
        ASSERT_TRUE((*conn)->Exec(absl::StrCat("CREATE DATABASE ", db), {}, nullptr).ok());
      }
      PostgresOptions opts = admin;
      opts.database = db;
      opts.pool_size = 4;
      auto d = NewPostgresDriver(opts);
      ASSERT_TRUE(d.ok()) << d.status();
      driver = std::move(*d);
      open_ = [opts]() -> std::unique_ptr<SqlDriver> {
        auto d = NewPostgresDriver(opts);
        return d.ok() ? std::move(*d) : nullptr;
      };
    }
    ASSERT_TRUE(MigrateSchema(driver.get()).ok());
    stores_ = NewSqlStores(std::move(driver));
  }

  void TearDown() override {
    stores_.reset();
    if (!path_.empty()) {
      std::error_code ignored;
      for (const char* suffix : {"", "-wal", "-shm"}) {
        std::filesystem::remove(path_.string() + suffix, ignored);
      }
    }
  }

  static v1::MutableState State(const std::string& run_id, int64_t version, int64_t next_event_id) {
    v1::MutableState ms;
    ms.mutable_execution()->set_namespace_id("ns");
    ms.mutable_execution()->set_workflow_id("wf");
    ms.mutable_execution()->set_run_id(run_id);
    ms.mutable_execution()->set_workflow_type("T");
    ms.mutable_execution()->set_task_queue("tq");
    ms.mutable_execution()->set_create_request_id("req-" + run_id);
    ms.mutable_execution()->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
    ms.set_db_version(version);
    ms.set_next_event_id(next_event_id);
    return ms;
  }

  static std::vector<HistoryEvent> Events(int64_t first, int64_t last) {
    std::vector<HistoryEvent> out;
    for (int64_t id = first; id <= last; ++id) {
      HistoryEvent e;
      e.set_event_id(id);
      e.set_event_type(enums::EVENT_TYPE_MARKER_RECORDED);
      out.push_back(e);
    }
    return out;
  }

  static v1::RunKey Run(const std::string& run_id) {
    v1::RunKey key;
    key.set_namespace_id("ns");
    key.set_workflow_id("wf");
    key.set_run_id(run_id);
    return key;
  }

  std::filesystem::path path_;
  std::unique_ptr<Stores> stores_;
  std::function<std::unique_ptr<SqlDriver>()> open_;  // another driver on the same database
};

TEST_P(StoreConformanceTest, MigrationIsRepeatable) {
  EXPECT_TRUE(MigrateSchema(stores_->driver.get()).ok());
  auto version = ReadSchemaVersion(stores_->driver.get());
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(*version, CurrentSchemaVersion());
}

TEST_P(StoreConformanceTest, NamespacesAreUniqueByNameAndUpdatable) {
  v1::NamespaceRecord r;
  r.mutable_info()->set_id("id-1");
  r.mutable_info()->set_name("orders");
  ASSERT_TRUE(stores_->namespaces->Create(r).ok());
  v1::NamespaceRecord dup = r;
  dup.mutable_info()->set_id("id-2");
  EXPECT_TRUE(absl::IsAlreadyExists(stores_->namespaces->Create(dup)));
  r.mutable_info()->set_description("changed");
  ASSERT_TRUE(stores_->namespaces->Update(r).ok());
  auto by_id = stores_->namespaces->GetById("id-1");
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->info().description(), "changed");
  EXPECT_TRUE(absl::IsNotFound(stores_->namespaces->GetByName("absent").status()));
  auto all = stores_->namespaces->List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST_P(StoreConformanceTest, ClusterMetadataKeepsTheFirstShardCount) {
  auto first = stores_->cluster->GetOrCreate({"c1", 4});
  ASSERT_TRUE(first.ok());
  auto second = stores_->cluster->GetOrCreate({"c2", 16});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->cluster_id, "c1");
  EXPECT_EQ(second->num_shards, 4);
}

TEST_P(StoreConformanceTest, MutationsAreConditionedOnVersionAndFencedByShard) {
  auto lease = stores_->shards->AcquireShard(0, "node-a");
  ASSERT_TRUE(lease.ok());
  const int64_t* range = &lease->range_id;
  v1::MutableState s1 = State("r1", 1, 4);
  auto events = Events(1, 3);
  ExecutionMutation create;
  create.shard_id = 0;
  create.range_id = *range;
  create.state = &s1;
  create.create = true;
  for (const auto& e : events) create.events.push_back(&e);
  create.current = ExecutionMutation::Current::kCreate;
  create.write_visibility = true;
  v1::TransferTask t;
  t.set_shard_id(0);
  t.set_task_id(7);
  create.transfer_tasks.push_back(t);
  ASSERT_TRUE(stores_->executions->Apply(create).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(stores_->executions->Apply(create)));

  // An update must name the version it read.
  v1::MutableState s2 = State("r1", 2, 6);
  auto more = Events(4, 5);
  ExecutionMutation update;
  update.shard_id = 0;
  update.range_id = *range;
  update.state = &s2;
  update.expected_db_version = 5;  // stale
  for (const auto& e : more) update.events.push_back(&e);
  EXPECT_TRUE(absl::IsAborted(stores_->executions->Apply(update)));
  update.expected_db_version = 1;
  ASSERT_TRUE(stores_->executions->Apply(update).ok());

  // A newer owner of the shard fences the old one out.
  auto newer = stores_->shards->AcquireShard(0, "node-b");
  ASSERT_TRUE(newer.ok());
  EXPECT_GT(newer->range_id, *range);
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->shards->RenewShard(0, *range, "node-a", absl::Now())));
  EXPECT_TRUE(stores_->shards->RenewShard(0, newer->range_id, "node-b", absl::Now()).ok());
  v1::MutableState s3 = State("r1", 3, 6);
  update.state = &s3;
  update.expected_db_version = 2;
  update.events.clear();
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->executions->Apply(update)));

  auto loaded = stores_->executions->GetMutableState(0, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->db_version(), 2);
  History h;
  ASSERT_TRUE(stores_->executions->ReadHistory(0, Run("r1"), 1, 6, 0, &h).ok());
  ASSERT_EQ(h.events_size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.events(i).event_id(), i + 1);
  History page;
  ASSERT_TRUE(stores_->executions->ReadHistory(0, Run("r1"), 3, 6, 2, &page).ok());
  ASSERT_EQ(page.events_size(), 2);
  EXPECT_EQ(page.events(0).event_id(), 3);
  EXPECT_EQ(page.events(1).event_id(), 4);

  auto tasks = stores_->executions->ListTransferTasks(0, 0, 10);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 1u);
  // Deletion goes by ack level and is fenced like every write.
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->executions->CompleteTasks(0, *range, 7, {})));
  ASSERT_TRUE(stores_->executions->CompleteTasks(0, newer->range_id, 6, {}).ok());
  tasks = stores_->executions->ListTransferTasks(0, 0, 10);
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(tasks->size(), 1u);
  ASSERT_TRUE(stores_->executions->CompleteTasks(0, newer->range_id, 7, {}).ok());
  tasks = stores_->executions->ListTransferTasks(0, 0, 10);
  ASSERT_TRUE(tasks.ok());
  EXPECT_TRUE(tasks->empty());
}

TEST_P(StoreConformanceTest, CurrentRunMovesOnlyFromTheNamedPreviousRun) {
  auto lease = stores_->shards->AcquireShard(1, "node-a");
  ASSERT_TRUE(lease.ok());
  const int64_t* range = &lease->range_id;
  auto create = [&](const std::string& run_id, const std::string& previous) {
    v1::MutableState s = State(run_id, 1, 1);
    ExecutionMutation m;
    m.shard_id = 1;
    m.range_id = *range;
    m.state = &s;
    m.create = true;
    m.current = ExecutionMutation::Current::kCreate;
    m.previous_run_id = previous;
    return stores_->executions->Apply(m);
  };
  ASSERT_TRUE(create("r1", "").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(create("r2", "")));        // a current run exists
  EXPECT_TRUE(absl::IsAlreadyExists(create("r3", "wrong")));   // not the current one
  ASSERT_TRUE(create("r4", "r1").ok());
  auto current = stores_->executions->GetCurrentRun(1, "ns", "wf");
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->run_id, "r4");
  EXPECT_EQ(current->create_request_id, "req-r4");
  // A failed mutation writes nothing: r2 and r3 do not exist.
  EXPECT_TRUE(absl::IsNotFound(stores_->executions->GetMutableState(1, Run("r2")).status()));
  EXPECT_TRUE(absl::IsNotFound(stores_->executions->GetMutableState(1, Run("r3")).status()));
}

TEST_P(StoreConformanceTest, TimerTasksComeBackInTimeOrderWithinAWindow) {
  auto lease = stores_->shards->AcquireShard(2, "node-a");
  ASSERT_TRUE(lease.ok());
  const int64_t* range = &lease->range_id;
  v1::MutableState s = State("r1", 1, 1);
  ExecutionMutation m;
  m.shard_id = 2;
  m.range_id = *range;
  m.state = &s;
  m.create = true;
  const absl::Time base = absl::FromUnixSeconds(2000000000);
  for (int i : {3, 1, 2, 9}) {
    v1::TimerTask t;
    t.set_shard_id(2);
    t.set_task_id(100 + i);
    t.mutable_visibility_time()->set_seconds(absl::ToUnixSeconds(base + absl::Seconds(i)));
    m.timer_tasks.push_back(t);
  }
  ASSERT_TRUE(stores_->executions->Apply(m).ok());
  auto due = stores_->executions->ListTimerTasks(2, absl::UnixEpoch(), 0, base + absl::Seconds(5), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 3u);
  EXPECT_EQ((*due)[0].task_id(), 101);
  EXPECT_EQ((*due)[2].task_id(), 103);
  auto after = stores_->executions->ListTimerTasks(2, base + absl::Seconds(1), 101, base + absl::Seconds(10), 10);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 3u);
  EXPECT_EQ((*after)[0].task_id(), 102);
  // Everything at or below the ack level (base+2s, task 102) goes.
  ASSERT_TRUE(stores_->executions
                  ->CompleteTasks(2, *range, 0, {ToMicros(base + absl::Seconds(2)), 102})
                  .ok());
  after = stores_->executions->ListTimerTasks(2, absl::UnixEpoch(), 0, base + absl::Seconds(10), 10);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].task_id(), 103);
  EXPECT_EQ((*after)[1].task_id(), 109);
  auto reloaded = stores_->shards->AcquireShard(2, "node-a");
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ(reloaded->timer_ack_level.task_id, 102);
  EXPECT_EQ(reloaded->timer_ack_level.time_micros, ToMicros(base + absl::Seconds(2)));
}

// A schedule's record is written with its wake-up timer and its visibility row, conditioned
// on its version, fenced by the shard; deleting it removes its visibility row.
TEST_P(StoreConformanceTest, SchedulesAreVersionedFencedAndListed) {
  auto lease = stores_->shards->AcquireShard(3, "node-a");
  ASSERT_TRUE(lease.ok());
  v1::ScheduleRecord r;
  r.set_namespace_id("ns");
  r.set_schedule_id("sched-1");
  r.set_run_id("sched-run");
  r.set_db_version(1);
  v1::MutableState row;
  auto* info = row.mutable_execution();
  info->set_namespace_id("ns");
  info->set_workflow_id("temporal-sys-scheduler:sched-1");
  info->set_run_id("sched-run");
  info->set_workflow_type("temporal-sys-scheduler-workflow");
  info->set_task_queue("temporal-sys-per-ns-tq");
  info->set_status(temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_RUNNING);
  auto& division = (*info->mutable_search_attributes()->mutable_indexed_fields())["TemporalNamespaceDivision"];
  (*division.mutable_metadata())["encoding"] = "json/plain";
  (*division.mutable_metadata())["type"] = "Keyword";
  division.set_data("\"TemporalScheduler\"");
  ScheduleMutation m;
  m.shard_id = 3;
  m.range_id = lease->range_id;
  m.kind = ScheduleMutation::Kind::kCreate;
  m.record = &r;
  m.visibility = &row;
  v1::TimerTask wake;
  wake.set_shard_id(3);
  wake.set_task_id(7);
  wake.set_kind(v1::TimerTask::KIND_SCHEDULE_WAKE);
  wake.mutable_visibility_time()->set_seconds(2000000000);
  m.timer_tasks.push_back(wake);
  ASSERT_TRUE(stores_->schedules->Apply(m).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(stores_->schedules->Apply(m)));
  auto timers = stores_->executions->ListTimerTasks(3, absl::UnixEpoch(), 0,
                                                    absl::FromUnixSeconds(2000000001), 10);
  ASSERT_TRUE(timers.ok());
  ASSERT_EQ(timers->size(), 1u);
  EXPECT_EQ((*timers)[0].kind(), v1::TimerTask::KIND_SCHEDULE_WAKE);

  // The division is a column: the default workflow filter leaves the row out.
  VisibilityQueryOptions options;
  options.dialect = stores_->visibility->dialect();
  options.first_placeholder = VisibilityStore::kFirstQueryPlaceholder;
  options.default_division = true;
  auto workflows = CompileVisibilityQuery("", SearchAttributeSchema{}, options);
  ASSERT_TRUE(workflows.ok());
  auto count = stores_->visibility->CountRuns("ns", *workflows);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->count, 0);
  auto schedules = CompileVisibilityQuery("TemporalNamespaceDivision = 'TemporalScheduler'",
                                          SearchAttributeSchema{}, options);
  ASSERT_TRUE(schedules.ok());
  count = stores_->visibility->CountRuns("ns", *schedules);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->count, 1);

  v1::ScheduleRecord next = r;
  next.set_db_version(2);
  next.set_conflict_token(5);
  m.kind = ScheduleMutation::Kind::kUpdate;
  m.record = &next;
  m.expected_db_version = 1;
  m.timer_tasks.clear();
  ASSERT_TRUE(stores_->schedules->Apply(m).ok());
  EXPECT_TRUE(absl::IsAborted(stores_->schedules->Apply(m)));  // version 1 is gone
  auto read = stores_->schedules->Get(3, "ns", "sched-1");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->conflict_token(), 5);
  EXPECT_TRUE(absl::IsNotFound(stores_->schedules->Get(3, "ns", "other").status()));

  auto thief = stores_->shards->AcquireShard(3, "node-b");
  ASSERT_TRUE(thief.ok());
  m.expected_db_version = 2;
  next.set_db_version(3);
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->schedules->Apply(m)));  // fenced
  m.range_id = thief->range_id;
  m.kind = ScheduleMutation::Kind::kDelete;
  m.record = &read.value();
  ASSERT_TRUE(stores_->schedules->Apply(m).ok());
  EXPECT_TRUE(absl::IsNotFound(stores_->schedules->Get(3, "ns", "sched-1").status()));
  count = stores_->visibility->CountRuns("ns", *schedules);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->count, 0);
}

TEST_P(StoreConformanceTest, TaskQueueBacklogIsOrderedAndFencedByItsLease) {
  TaskQueueKey q{"ns", "tq", TaskQueueKind::kActivity};
  auto lease = stores_->task_queues->LeaseQueue(q);
  ASSERT_TRUE(lease.ok());
  v1::TaskQueueTask task;
  task.mutable_run()->set_run_id("r1");
  for (int64_t id : {5, 3, 4}) {
    task.set_scheduled_event_id(id);
    ASSERT_TRUE(stores_->task_queues->AddTask(q, *lease, id, task).ok());
  }
  auto newer = stores_->task_queues->LeaseQueue(q);
  ASSERT_TRUE(newer.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->task_queues->AddTask(q, *lease, 6, task)));
  auto tasks = stores_->task_queues->ListTasks(q, 3, 10);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 2u);
  EXPECT_EQ((*tasks)[0].task_id, 4);
  EXPECT_EQ((*tasks)[0].task.scheduled_event_id(), 4);
  EXPECT_TRUE(absl::IsFailedPrecondition(stores_->task_queues->DeleteTasksUpTo(q, *lease, 4)));
  ASSERT_TRUE(stores_->task_queues->DeleteTasksUpTo(q, *newer, 4).ok());
  tasks = stores_->task_queues->ListTasks(q, 0, 10);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].task_id, 5);
  // Another kind of queue with the same name is a different queue.
  auto other = stores_->task_queues->ListTasks({"ns", "tq", TaskQueueKind::kWorkflow}, 0, 10);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
}

TEST_P(StoreConformanceTest, HeartbeatsMergeIntoTheStateUntilTheRunCloses) {
  auto lease = stores_->shards->AcquireShard(3, "node-a");
  ASSERT_TRUE(lease.ok());
  const int64_t* range = &lease->range_id;
  v1::MutableState s = State("r1", 1, 1);
  v1::ActivityInfo ai;
  ai.set_scheduled_event_id(5);
  ai.mutable_last_heartbeat_time()->set_seconds(100);
  (*s.mutable_activities())[5] = ai;
  ExecutionMutation create;
  create.shard_id = 3;
  create.range_id = *range;
  create.state = &s;
  create.create = true;
  ASSERT_TRUE(stores_->executions->Apply(create).ok());

  temporal::api::common::v1::Payloads details;
  details.add_payloads()->set_data("progress-1");
  ASSERT_TRUE(stores_->executions->RecordHeartbeat(3, *range, Run("r1"), 5, absl::FromUnixSeconds(200), details).ok());
  details.mutable_payloads(0)->set_data("progress-2");
  ASSERT_TRUE(stores_->executions->RecordHeartbeat(3, *range, Run("r1"), 5, absl::FromUnixSeconds(300), details).ok());
  // A heartbeat for an activity the state no longer has is ignored.
  ASSERT_TRUE(stores_->executions->RecordHeartbeat(3, *range, Run("r1"), 9, absl::FromUnixSeconds(300), details).ok());
  auto loaded = stores_->executions->GetMutableState(3, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->db_version(), 1);  // no state rewrite
  const v1::ActivityInfo& merged = loaded->activities().at(5);
  EXPECT_EQ(merged.heartbeat_details().payloads(0).data(), "progress-2");
  EXPECT_EQ(merged.last_heartbeat_time().seconds(), 300);
  EXPECT_FALSE(loaded->activities().contains(9));
  // Heartbeats are fenced like every write.
  auto thief = stores_->shards->AcquireShard(3, "node-b");
  ASSERT_TRUE(thief.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      stores_->executions->RecordHeartbeat(3, *range, Run("r1"), 5, absl::FromUnixSeconds(400), details)));
  range = &thief->range_id;

  // Closing the run removes its heartbeat rows.
  v1::MutableState closed = State("r1", 2, 1);
  closed.mutable_execution()->set_status(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  (*closed.mutable_activities())[5] = ai;  // kept only to observe that no merge happens
  ExecutionMutation close;
  close.shard_id = 3;
  close.range_id = *range;
  close.state = &closed;
  close.expected_db_version = 1;
  ASSERT_TRUE(stores_->executions->Apply(close).ok());
  loaded = stores_->executions->GetMutableState(3, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->activities().at(5).last_heartbeat_time().seconds(), 100);
}

// A run's pending items are rows of their own: a mutation writes the ones that changed and
// deletes the ones that went, and a reload assembles the same state.
TEST_P(StoreConformanceTest, PendingItemsAreStoredAsTheirOwnRows) {
  auto lease = stores_->shards->AcquireShard(1, "node-a");
  ASSERT_TRUE(lease.ok());
  v1::MutableState s1 = State("r1", 1, 10);
  s1.set_storage_format(1);
  for (int64_t id : {5, 6, 7}) {
    v1::ActivityInfo ai;
    ai.set_scheduled_event_id(id);
    ai.set_activity_id(absl::StrCat("a", id));
    (*s1.mutable_activities())[id] = ai;
  }
  (*s1.mutable_timers())["t1"].set_timer_id("t1");
  *s1.add_buffered_events() = Events(10, 10)[0];
  ExecutionMutation create;
  create.shard_id = 1;
  create.range_id = lease->range_id;
  create.state = &s1;
  create.create = true;
  ASSERT_TRUE(stores_->executions->Apply(create).ok());
  auto loaded = stores_->executions->GetMutableState(1, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->activities_size(), 3);
  EXPECT_EQ(loaded->timers_size(), 1);
  EXPECT_EQ(loaded->buffered_events_size(), 1);

  // One activity goes, one changes, a timer and a buffered event arrive.
  v1::MutableState s2 = s1;
  s2.set_db_version(2);
  s2.mutable_activities()->erase(5);
  (*s2.mutable_activities())[6].set_attempt(2);
  (*s2.mutable_timers())["t2"].set_timer_id("t2");
  *s2.add_buffered_events() = Events(11, 11)[0];
  ExecutionMutation update;
  update.shard_id = 1;
  update.range_id = lease->range_id;
  update.state = &s2;
  update.base = &s1;
  update.expected_db_version = 1;
  ASSERT_TRUE(stores_->executions->Apply(update).ok());
  loaded = stores_->executions->GetMutableState(1, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->activities_size(), 2);
  EXPECT_FALSE(loaded->activities().contains(5));
  EXPECT_EQ(loaded->activities().at(6).attempt(), 2);
  EXPECT_EQ(loaded->activities().at(7).activity_id(), "a7");
  EXPECT_EQ(loaded->timers_size(), 2);
  ASSERT_EQ(loaded->buffered_events_size(), 2);
  EXPECT_EQ(loaded->buffered_events(0).event_id(), 10);
  EXPECT_EQ(loaded->buffered_events(1).event_id(), 11);

  // Buffered events flushed and the run closed: no item row is left.
  v1::MutableState s3 = State("r1", 3, 12);
  s3.set_storage_format(1);
  s3.mutable_execution()->set_status(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  update.state = &s3;
  update.base = &s2;
  update.expected_db_version = 2;
  ASSERT_TRUE(stores_->executions->Apply(update).ok());
  loaded = stores_->executions->GetMutableState(1, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->activities_size(), 0);
  EXPECT_EQ(loaded->timers_size(), 0);
  EXPECT_EQ(loaded->buffered_events_size(), 0);
  auto conn = stores_->driver->Acquire();
  ASSERT_TRUE(conn.ok());
  SqlRows rows;
  ASSERT_TRUE((*conn)->Exec("SELECT COUNT(*) FROM execution_items", {}, &rows).ok());
  EXPECT_EQ(AsInt(rows.rows[0][0]), 0);
}

TEST_P(StoreConformanceTest, SignalsCancelsAndUpdatesAreItemsAndUpdatesOutliveTheRun) {
  auto lease = stores_->shards->AcquireShard(1, "node-a");
  ASSERT_TRUE(lease.ok());
  v1::MutableState s1 = State("r1", 1, 10);
  s1.set_storage_format(1);
  (*s1.mutable_signals_requested())[5].set_initiated_event_id(5);
  (*s1.mutable_signals_requested())[5].set_request_id("r1:signal:5");
  (*s1.mutable_cancels_requested())[6].set_initiated_event_id(6);
  (*s1.mutable_updates())["u1"].set_update_id("u1");
  (*s1.mutable_updates())["u1"].set_accepted_event_id(7);
  ExecutionMutation create;
  create.shard_id = 1;
  create.range_id = lease->range_id;
  create.state = &s1;
  create.create = true;
  ASSERT_TRUE(stores_->executions->Apply(create).ok());
  auto loaded = stores_->executions->GetMutableState(1, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->signals_requested().at(5).request_id(), "r1:signal:5");
  EXPECT_TRUE(loaded->cancels_requested().contains(6));
  EXPECT_EQ(loaded->updates().at("u1").accepted_event_id(), 7);

  // The requests are delivered, the update completes, the run closes: the update stays.
  v1::MutableState s2 = State("r1", 2, 12);
  s2.set_storage_format(1);
  s2.mutable_execution()->set_status(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  (*s2.mutable_updates())["u1"] = s1.updates().at("u1");
  (*s2.mutable_updates())["u1"].set_completed_event_id(11);
  ExecutionMutation update;
  update.shard_id = 1;
  update.range_id = lease->range_id;
  update.state = &s2;
  update.base = &s1;
  update.expected_db_version = 1;
  ASSERT_TRUE(stores_->executions->Apply(update).ok());
  loaded = stores_->executions->GetMutableState(1, Run("r1"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->signals_requested().empty());
  EXPECT_TRUE(loaded->cancels_requested().empty());
  EXPECT_EQ(loaded->updates().at("u1").completed_event_id(), 11);
}

// A state stored before schema version 4 holds its items inside the execution row; it reads
// back whole, and its next write moves every item to its own row.
TEST_P(StoreConformanceTest, AStateWithInlineItemsMovesThemToRowsOnItsNextWrite) {
  auto lease = stores_->shards->AcquireShard(2, "node-a");
  ASSERT_TRUE(lease.ok());
  v1::MutableState legacy = State("old", 1, 6);  // storage_format 0, items inline
  v1::ActivityInfo ai;
  ai.set_scheduled_event_id(5);
  (*legacy.mutable_activities())[5] = ai;
  {
    auto conn = stores_->driver->Acquire();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)
                    ->Exec("INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, "
                           "db_version, state) VALUES ($1, $2, $3, $4, $5, $6)",
                           {SqlValue(int64_t{2}), SqlValue(std::string("ns")),
                            SqlValue(std::string("wf")), SqlValue(std::string("old")),
                            SqlValue(int64_t{1}), SqlValue(Blob{legacy.SerializeAsString()})},
                           nullptr)
                    .ok());
  }
  auto loaded = stores_->executions->GetMutableState(2, Run("old"));
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->activities_size(), 1);
  v1::MutableState next = *loaded;
  next.set_db_version(2);
  next.set_storage_format(1);
  ExecutionMutation m;
  m.shard_id = 2;
  m.range_id = lease->range_id;
  m.state = &next;
  m.base = &*loaded;
  m.expected_db_version = 1;
  ASSERT_TRUE(stores_->executions->Apply(m).ok());
  auto again = stores_->executions->GetMutableState(2, Run("old"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->storage_format(), 1);
  ASSERT_EQ(again->activities_size(), 1);
  EXPECT_TRUE(again->activities().contains(5));
}

TEST_P(StoreConformanceTest, RequestIdsAreRememberedUntilTheyExpire) {
  auto lease = stores_->shards->AcquireShard(3, "node-a");
  ASSERT_TRUE(lease.ok());
  const absl::Time t0 = absl::FromUnixSeconds(2000000000);
  v1::MutableState s = State("r1", 1, 1);
  ExecutionMutation m;
  m.shard_id = 3;
  m.range_id = lease->range_id;
  m.state = &s;
  m.create = true;
  m.request_ids.push_back({"req-1", "r1", t0 + absl::Hours(1)});
  ASSERT_TRUE(stores_->executions->Apply(m).ok());
  auto found = stores_->executions->FindRequestId(3, "ns", "wf", "req-1", t0);
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, "r1");
  auto other = stores_->executions->FindRequestId(3, "ns", "wf", "req-2", t0);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  auto expired = stores_->executions->FindRequestId(3, "ns", "wf", "req-1", t0 + absl::Hours(2));
  ASSERT_TRUE(expired.ok());
  EXPECT_FALSE(expired->has_value());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      stores_->executions->DeleteExpiredRequestIds(3, lease->range_id - 1, t0 + absl::Hours(2))));
  ASSERT_TRUE(stores_->executions->DeleteExpiredRequestIds(3, lease->range_id, t0 + absl::Hours(2)).ok());
  auto conn = stores_->driver->Acquire();
  ASSERT_TRUE(conn.ok());
  SqlRows rows;
  ASSERT_TRUE((*conn)->Exec("SELECT COUNT(*) FROM request_ids", {}, &rows).ok());
  EXPECT_EQ(AsInt(rows.rows[0][0]), 0);
}

// The fault-injection layer over this driver: every write either lands whole or not at all,
// whatever the injected failure, so a writer that re-reads after an error never sees a
// partial mutation, a gap in the history or a task without its state change.
TEST_P(StoreConformanceTest, VisibilityListsCountsAndPagesRunsWithTheirAttributes) {
  auto lease = stores_->shards->AcquireShard(0, "node-a");
  ASSERT_TRUE(lease.ok());
  // Five runs of distinct workflows: r0..r3 closed (close times 10..13 s), r4 running; r1
  // and r3 carry a Keyword attribute "Color", r3 a memo.
  for (int i = 0; i < 5; ++i) {
    v1::MutableState ms = State(absl::StrCat("r", i), 1, 4);
    auto* info = ms.mutable_execution();
    info->set_workflow_id(absl::StrCat("wf-", i));
    info->mutable_start_time()->set_seconds(i);
    info->mutable_execution_time()->set_seconds(i);
    if (i < 4) {
      info->set_status(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
      info->mutable_close_time()->set_seconds(10 + i);
    }
    if (i % 2 == 1) {
      temporal::api::common::v1::Payload p;
      (*p.mutable_metadata())["encoding"] = "json/plain";
      (*p.mutable_metadata())["type"] = "Keyword";
      p.set_data(i == 1 ? "\"red\"" : "\"blue\"");
      (*info->mutable_search_attributes()->mutable_indexed_fields())["Color"] = p;
    }
    if (i == 3) {
      temporal::api::common::v1::Payload p;
      p.set_data("memo");
      (*info->mutable_memo()->mutable_fields())["note"] = p;
    }
    ExecutionMutation create;
    create.shard_id = 0;
    create.range_id = lease->range_id;
    create.state = &ms;
    create.create = true;
    create.current = ExecutionMutation::Current::kCreate;
    create.write_visibility = true;
    ASSERT_TRUE(stores_->executions->Apply(create).ok());
  }
  SearchAttributeSchema schema;
  schema.custom["Color"] = enums::INDEXED_VALUE_TYPE_KEYWORD;
  auto compile = [&](const std::string& query, VisibilityQueryKind kind) {
    VisibilityQueryOptions options;
    options.dialect = stores_->visibility->dialect();
    options.kind = kind;
    options.first_placeholder = VisibilityStore::kFirstQueryPlaceholder;
    options.allow_order_by = false;
    auto compiled = CompileVisibilityQuery(query, schema, options);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return *compiled;
  };
  auto ids = [](const VisibilityStore::Page& page) {
    std::vector<std::string> out;
    for (const auto& e : page.executions) out.push_back(e.execution().workflow_id());
    return out;
  };

  // The default order: the open run, then by close time, newest first; one page at a time.
  const CompiledVisibilityQuery all = compile("", VisibilityQueryKind::kList);
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    auto page = stores_->visibility->List("ns", all, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const auto& id : ids(*page)) listed.push_back(id);
    token = page->next_page_token;
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(listed, (std::vector<std::string>{"wf-4", "wf-3", "wf-2", "wf-1", "wf-0"}));
  EXPECT_EQ(pages, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(stores_->visibility->List("ns", all, 2, "garbage").status()));

  auto colored = stores_->visibility->List(
      "ns", compile("Color = 'blue' OR WorkflowId = 'wf-0'", VisibilityQueryKind::kList), 10, "");
  ASSERT_TRUE(colored.ok()) << colored.status();
  EXPECT_EQ(ids(*colored), (std::vector<std::string>{"wf-3", "wf-0"}));
  const auto& row = colored->executions[0];
  EXPECT_EQ(row.status(), enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  EXPECT_EQ(row.close_time().seconds(), 13);
  EXPECT_EQ(row.history_length(), 3);
  EXPECT_EQ(row.execution_duration().seconds(), 10);
  EXPECT_EQ(row.memo().fields().at("note").data(), "memo");
  EXPECT_EQ(row.search_attributes().indexed_fields().at("Color").data(), "\"blue\"");
  EXPECT_EQ(row.root_execution().workflow_id(), "wf-3");

  // The open run has no counts yet.
  auto open = stores_->visibility->List(
      "ns", compile("ExecutionStatus = 'Running'", VisibilityQueryKind::kList), 10, "");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(ids(*open), std::vector<std::string>{"wf-4"});
  EXPECT_EQ(open->executions[0].history_length(), 0);
  EXPECT_FALSE(open->executions[0].has_close_time());

  auto counted = stores_->visibility->CountRuns(
      "ns", compile("Color IS NOT NULL", VisibilityQueryKind::kCount));
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(counted->count, 2);
  auto grouped = stores_->visibility->CountRuns(
      "ns", compile("GROUP BY ExecutionStatus", VisibilityQueryKind::kCount));
  ASSERT_TRUE(grouped.ok());
  EXPECT_EQ(grouped->count, 5);
  EXPECT_EQ(grouped->groups,
            (std::vector<std::pair<int32_t, int64_t>>{
                {enums::WORKFLOW_EXECUTION_STATUS_RUNNING, 1},
                {enums::WORKFLOW_EXECUTION_STATUS_COMPLETED, 4}}));
  auto other = stores_->visibility->CountRuns("other-ns", compile("", VisibilityQueryKind::kCount));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->count, 0);
}

TEST_P(StoreConformanceTest, WritesUnderInjectedFaultsAreAllOrNothing) {
  FaultInjectionOptions faults;
  faults.rate = 0.3;
  faults.seed = 7;
  faults.timeout_delay = absl::Milliseconds(1);
  auto inner = open_();
  ASSERT_NE(inner, nullptr);
  auto faulty_driver = NewFaultInjectingDriver(std::move(inner), faults);
  FaultInjectingDriver* fault_stats = faulty_driver.get();
  auto faulty = NewSqlStores(std::move(faulty_driver));

  auto lease = stores_->shards->AcquireShard(0, "node-a");
  ASSERT_TRUE(lease.ok());
  constexpr int kUpdates = 120;
  int failures = 0;
  for (int64_t version = 1; version <= kUpdates + 1;) {
    // Each write appends event `version` and transfer task `version`, conditioned on the
    // version the writer last read.
    v1::MutableState s = State("r1", version, version + 1);
    auto events = Events(version, version);
    ExecutionMutation m;
    m.shard_id = 0;
    m.range_id = lease->range_id;
    m.state = &s;
    m.create = version == 1;
    m.expected_db_version = version - 1;
    m.events.push_back(&events[0]);
    v1::TransferTask t;
    t.set_shard_id(0);
    t.set_task_id(version);
    m.transfer_tasks.push_back(t);
    if (m.create) m.current = ExecutionMutation::Current::kCreate;
    absl::Status st = faulty->executions->Apply(m);
    if (st.ok()) {
      ++version;
      continue;
    }
    ++failures;
    // After a failure the writer learns what happened by reading the state back.
    auto now = stores_->executions->GetMutableState(0, Run("r1"));
    if (now.ok() && now->db_version() == version) {
      ++version;  // the write landed despite the error
    } else {
      ASSERT_TRUE(now.ok() ? now->db_version() == version - 1 : version == 1)
          << "a failed write left the state at an unexpected version";
    }
  }
  EXPECT_GT(failures, 0);
  const FaultInjectionStats stats = fault_stats->stats();
  EXPECT_GT(stats.before_commit, 0);
  EXPECT_GT(stats.unknown_outcome, 0);
  EXPECT_GT(stats.timeouts, 0);

  History h;
  ASSERT_TRUE(stores_->executions->ReadHistory(0, Run("r1"), 1, kUpdates + 2, 0, &h).ok());
  ASSERT_EQ(h.events_size(), kUpdates + 1);
  for (int i = 0; i < h.events_size(); ++i) EXPECT_EQ(h.events(i).event_id(), i + 1);
  auto tasks = stores_->executions->ListTransferTasks(0, 0, 1000);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), static_cast<size_t>(kUpdates + 1));
  for (size_t i = 0; i < tasks->size(); ++i) EXPECT_EQ((*tasks)[i].task_id(), static_cast<int64_t>(i + 1));

  // Range deletes and heartbeats under faults: retried until they report success, they
  // leave exactly what a single success would.
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (faulty->executions->CompleteTasks(0, lease->range_id, 60, {}).ok()) break;
  }
  tasks = stores_->executions->ListTransferTasks(0, 0, 1000);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), static_cast<size_t>(kUpdates + 1 - 60));
  EXPECT_EQ(tasks->front().task_id(), 61);
}

INSTANTIATE_TEST_SUITE_P(Drivers, StoreConformanceTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const auto& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace
}  // namespace almanac::persistence
