// What the execution store writes and reads, measured below the engine.
//
//  1. Bytes and rows written when one activity of a run completes, for runs holding 1, 100
//     and 1,000 pending activities: the change-only layout (schema version 4) against what
//     the whole-state layout wrote (the serialized state, every time).
//  2. The cost of reading page k of a 10,000-event history, with the paged read (LIMIT over
//     event batches) against an unbounded read from the page's first event to the end (what
//     the store did before).
//
// Usage: store_costs_bench [sqlite|postgres]. PostgreSQL is the server named by
// ALMANAC_TEST_POSTGRES=host:port:user:database (tests/with_postgres.py provides one):
//   build/venv/bin/python tests/with_postgres.py build/src/store_costs_bench postgres

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "persistence/schema.h"
#include "persistence/stores.h"

namespace almanac::persistence {
namespace {

namespace enums = temporal::api::enums::v1;
using temporal::api::history::v1::History;
using temporal::api::history::v1::HistoryEvent;

// What the writes through a driver cost: statements, rows affected, parameter bytes.
struct WriteCounts {
  int64_t statements = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t commits = 0;
};

class CountingDriver;

class CountingConnection final : public SqlConnection {
 public:
  CountingConnection(CountingDriver* driver, SqlDriver::Lease inner)
      : driver_(driver), inner_(std::move(inner)) {}
  absl::Status Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                    SqlRows* rows) override;
  absl::Status Begin() override { return inner_->Begin(); }
  absl::Status Commit() override;
  void Rollback() override { inner_->Rollback(); }

 private:
  CountingDriver* driver_;
  SqlDriver::Lease inner_;
};

class CountingDriver final : public SqlDriver {
 public:
  explicit CountingDriver(std::unique_ptr<SqlDriver> inner) : inner_(std::move(inner)) {}
  Dialect dialect() const override { return inner_->dialect(); }
  absl::StatusOr<Lease> Acquire() override {
    auto lease = inner_->Acquire();
    if (!lease.ok()) return lease.status();
    return Lease(this, std::make_unique<CountingConnection>(this, std::move(*lease)));
  }
  WriteCounts Take() {
    absl::MutexLock lock(&mu_);
    WriteCounts out = counts_;
    counts_ = {};
    return out;
  }
  void Add(const WriteCounts& c) {
    absl::MutexLock lock(&mu_);
    counts_.statements += c.statements;
    counts_.rows += c.rows;
    counts_.bytes += c.bytes;
    counts_.commits += c.commits;
  }

 protected:
  void Release(std::unique_ptr<SqlConnection> conn) override { conn.reset(); }

 private:
  std::unique_ptr<SqlDriver> inner_;
  absl::Mutex mu_;
  WriteCounts counts_ ABSL_GUARDED_BY(mu_);
};

absl::Status CountingConnection::Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                                      SqlRows* rows) {
  SqlRows local;
  SqlRows* out = rows != nullptr ? rows : &local;
  absl::Status st = inner_->Exec(sql, params, out);
  const absl::string_view head = sql.substr(0, 6);
  if (absl::EqualsIgnoreCase(head, "INSERT") || absl::EqualsIgnoreCase(head, "UPDATE") ||
      absl::EqualsIgnoreCase(head, "DELETE")) {
    WriteCounts c;
    c.statements = 1;
    c.rows = out->rows_affected;
    for (const SqlValue& p : params) {
      if (auto* s = std::get_if<std::string>(&p)) c.bytes += static_cast<int64_t>(s->size());
      if (auto* b = std::get_if<Blob>(&p)) c.bytes += static_cast<int64_t>(b->bytes.size());
      if (std::holds_alternative<int64_t>(p)) c.bytes += 8;
    }
    driver_->Add(c);
  }
  return st;
}

absl::Status CountingConnection::Commit() {
  driver_->Add({0, 0, 0, 1});
  return inner_->Commit();
}

v1::ActivityInfo Activity(int64_t scheduled_event_id) {
  v1::ActivityInfo ai;
  ai.set_scheduled_event_id(scheduled_event_id);
  ai.set_activity_id(absl::StrCat(scheduled_event_id));
  ai.set_activity_type("charge_card");
  ai.set_task_queue("payments");
  ai.set_attempt(1);
  ai.mutable_scheduled_time()->set_seconds(1700000000);
  ai.mutable_first_scheduled_time()->set_seconds(1700000000);
  ai.mutable_start_to_close_timeout()->set_seconds(30);
  ai.mutable_schedule_to_close_timeout()->set_seconds(300);
  ai.mutable_schedule_to_start_timeout()->set_seconds(300);
  ai.mutable_heartbeat_timeout()->set_seconds(0);
  ai.mutable_retry_policy()->mutable_initial_interval()->set_seconds(1);
  ai.mutable_retry_policy()->set_backoff_coefficient(2.0);
  ai.mutable_retry_policy()->mutable_maximum_interval()->set_seconds(100);
  ai.set_stamp(scheduled_event_id);
  return ai;
}

HistoryEvent Event(int64_t id, enums::EventType type) {
  HistoryEvent e;
  e.set_event_id(id);
  e.set_event_type(type);
  e.mutable_event_time()->set_seconds(1700000000 + id);
  return e;
}

v1::RunKey RunKey(const std::string& run_id) {
  v1::RunKey run;
  run.set_namespace_id("ns");
  run.set_workflow_id(run_id);
  run.set_run_id(run_id);
  return run;
}

struct Stores2 {
  std::unique_ptr<Stores> stores;
  CountingDriver* counter = nullptr;
};

void MeasureCompletion(Stores2& s, int64_t range_id, int pending) {
  const std::string run_id = absl::StrCat("run-", pending, "-", NewUuid());
  v1::MutableState state;
  auto* info = state.mutable_execution();
  info->set_namespace_id("ns");
  info->set_workflow_id(run_id);
  info->set_run_id(run_id);
  info->set_workflow_type("Checkout");
  info->set_task_queue("payments");
  info->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  state.set_next_event_id(4 + pending);
  for (int i = 0; i < pending; ++i) (*state.mutable_activities())[5 + i] = Activity(5 + i);
  state.set_db_version(1);
  state.set_storage_format(1);
  ExecutionMutation create;
  create.shard_id = 0;
  create.range_id = range_id;
  create.state = &state;
  create.create = true;
  if (!s.stores->executions->Apply(create).ok()) std::abort();
  s.counter->Take();

  // One activity completes: its Started and Completed events and a workflow task.
  v1::MutableState next = state;
  next.mutable_activities()->erase(5);
  const int64_t first = next.next_event_id();
  std::vector<HistoryEvent> events = {Event(first, enums::EVENT_TYPE_ACTIVITY_TASK_STARTED),
                                      Event(first + 1, enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED),
                                      Event(first + 2, enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)};
  next.set_next_event_id(first + 3);
  next.set_db_version(2);
  v1::TransferTask task;
  task.set_shard_id(0);
  task.set_task_id(static_cast<int64_t>(range_id << 32) + pending);
  task.set_kind(v1::TransferTask::KIND_WORKFLOW_TASK);
  ExecutionMutation update;
  update.shard_id = 0;
  update.range_id = range_id;
  update.state = &next;
  update.base = &state;
  update.expected_db_version = 1;
  for (const auto& e : events) update.events.push_back(&e);
  update.transfer_tasks.push_back(task);
  const auto t0 = std::chrono::steady_clock::now();
  if (!s.stores->executions->Apply(update).ok()) std::abort();
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  const WriteCounts c = s.counter->Take();
  // The whole-state layout wrote the serialized state instead of the changed rows.
  History batch;
  for (const auto& e : events) *batch.add_events() = e;
  const int64_t whole = static_cast<int64_t>(next.ByteSizeLong() + batch.ByteSizeLong() +
                                             task.ByteSizeLong());
  std::printf("| %d | %lld | %lld | %lld | %lld | %.0f |\n", pending,
              static_cast<long long>(c.bytes), static_cast<long long>(c.rows),
              static_cast<long long>(c.statements), static_cast<long long>(whole), us);
}

void MeasureHistoryPages(Stores2& s, int64_t range_id) {
  constexpr int kEvents = 10000;
  constexpr int kBatch = 4;
  constexpr int kPage = 256;
  const std::string run_id = absl::StrCat("history-", NewUuid());
  v1::MutableState state;
  state.mutable_execution()->set_namespace_id("ns");
  state.mutable_execution()->set_workflow_id(run_id);
  state.mutable_execution()->set_run_id(run_id);
  state.set_db_version(0);
  std::vector<HistoryEvent> events;
  for (int64_t id = 1; id <= kEvents; ++id) {
    HistoryEvent e = Event(id, enums::EVENT_TYPE_MARKER_RECORDED);
    (*e.mutable_marker_recorded_event_attributes()->mutable_details())["data"]
        .add_payloads()
        ->set_data(std::string(64, 'x'));
    events.push_back(std::move(e));
  }
  for (int first = 0; first < kEvents; first += kBatch) {
    v1::MutableState next = state;
    next.set_db_version(state.db_version() + 1);
    next.set_next_event_id(first + kBatch + 1);
    ExecutionMutation m;
    m.shard_id = 0;
    m.range_id = range_id;
    m.state = &next;
    m.base = first == 0 ? nullptr : &state;
    m.create = first == 0;
    m.expected_db_version = state.db_version();
    for (int i = first; i < first + kBatch; ++i) m.events.push_back(&events[i]);
    if (!s.stores->executions->Apply(m).ok()) std::abort();
    state = next;
  }
  const v1::RunKey run = RunKey(run_id);
  for (int page : {0, 10, 20, 38}) {
    const int64_t from = 1 + static_cast<int64_t>(page) * kPage;
    auto time_read = [&](int limit) {
      constexpr int kReps = 20;
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < kReps; ++r) {
        History out;
        if (!s.stores->executions->ReadHistory(0, run, from, kEvents + 1, limit, &out).ok()) {
          std::abort();
        }
      }
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                 .count() /
             kReps;
    };
    std::printf("| %d | %.0f | %.0f |\n", page, time_read(kPage), time_read(0));
  }
}

int Main(int argc, char** argv) {
  const std::string store = argc > 1 ? argv[1] : "sqlite";
  std::unique_ptr<SqlDriver> driver;
  std::filesystem::path path;
  if (store == "sqlite") {
    path = std::filesystem::temp_directory_path() / absl::StrCat("almanac-bench-", NewUuid(), ".db");
    auto d = NewSqliteDriver({path.string(), false, 2});
    if (!d.ok()) return 2;
    driver = std::move(*d);
  } else {
    const char* env = std::getenv("ALMANAC_TEST_POSTGRES");
    if (env == nullptr) {
      std::fprintf(stderr, "set ALMANAC_TEST_POSTGRES=host:port:user:database\n");
      return 2;
    }
    std::vector<std::string> parts = absl::StrSplit(env, ':');
    auto d = NewPostgresDriver({parts[0], std::stoi(parts[1]), parts[2], "", parts[3], 2});
    if (!d.ok()) return 2;
    driver = std::move(*d);
  }
  if (!MigrateSchema(driver.get()).ok()) return 2;
  Stores2 s;
  auto counting = std::make_unique<CountingDriver>(std::move(driver));
  s.counter = counting.get();
  s.stores = NewSqlStores(std::move(counting));
  auto lease = s.stores->shards->AcquireShard(0, "bench");
  if (!lease.ok()) return 2;
  std::printf("store: %s\n\nOne activity completes (%s):\n\n", store.c_str(), store.c_str());
  std::printf("| pending activities | bytes written | rows written | statements | whole-state layout bytes | Apply µs |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int pending : {1, 100, 1000}) MeasureCompletion(s, lease->range_id, pending);
  std::printf("\nPage k (256 events) of a 10,000-event history (%s), µs per read:\n\n", store.c_str());
  std::printf("| page k | paged read (LIMIT) | unbounded read to the end (before) |\n");
  std::printf("| ---: | ---: | ---: |\n");
  MeasureHistoryPages(s, lease->range_id);
  s.stores.reset();
  if (!path.empty()) {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix, ignored);
  }
  return 0;
}

}  // namespace
}  // namespace almanac::persistence

int main(int argc, char** argv) { return almanac::persistence::Main(argc, argv); }
