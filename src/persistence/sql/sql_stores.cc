// The SQL implementation of every store, shared by the SQLite and PostgreSQL drivers.
// Statements use $N placeholders; the few dialect differences are chosen by driver->dialect().

#include "absl/strings/string_view.h"
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "persistence/sql/sql_visibility.h"
#include "persistence/stores.h"

namespace almanac::persistence {

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t micros) { return absl::FromUnixMicros(micros); }

namespace {

using temporal::api::history::v1::History;
using temporal::api::history::v1::HistoryEvent;

SqlValue Int(int64_t v) { return SqlValue(v); }
SqlValue Text(std::string s) { return SqlValue(std::move(s)); }
SqlValue Bytes(const google::protobuf::MessageLite& m) { return SqlValue(Blob{m.SerializeAsString()}); }

template <typename T>
absl::StatusOr<T> ParseRecord(const SqlValue& v, absl::string_view what) {
  T message;
  if (!message.ParseFromString(AsString(v))) {
    return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
  }
  return message;
}

// Runs `body` inside a write transaction on a pooled connection, committing on success and
// rolling back on any failure.
template <typename Body>
absl::Status InTransaction(SqlDriver* driver, Body body) {
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  absl::Status st = (*conn)->Begin();
  if (!st.ok()) return st;
  st = body(**conn);
  if (!st.ok()) {
    (*conn)->Rollback();
    return st;
  }
  st = (*conn)->Commit();
  if (!st.ok()) (*conn)->Rollback();
  return st;
}

absl::Status Query(SqlDriver* driver, absl::string_view sql, std::vector<SqlValue> params,
                   SqlRows* rows) {
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  return (*conn)->Exec(sql, params, rows);
}

class SqlClusterMetadataStore final : public ClusterMetadataStore {
 public:
  explicit SqlClusterMetadataStore(SqlDriver* driver) : driver_(driver) {}

  absl::StatusOr<Metadata> GetOrCreate(const Metadata& defaults) override {
    absl::Status st = Query(driver_,
                            "INSERT INTO cluster_metadata (id, cluster_id, num_shards) "
                            "VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
                            {Text(defaults.cluster_id), Int(defaults.num_shards)}, nullptr);
    if (!st.ok()) return st;
    SqlRows rows;
    st = Query(driver_, "SELECT cluster_id, num_shards FROM cluster_metadata WHERE id = 1", {},
               &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty()) return absl::InternalError("cluster metadata missing");
    return Metadata{AsString(rows.rows[0][0]), static_cast<int>(AsInt(rows.rows[0][1]))};
  }

 private:
  SqlDriver* driver_;
};

class SqlNamespaceStore final : public NamespaceStore {
 public:
  explicit SqlNamespaceStore(SqlDriver* driver) : driver_(driver) {}

  absl::Status Create(const v1::NamespaceRecord& record) override {
    absl::Status st = Query(driver_,
                            "INSERT INTO namespaces (id, name, notification_version, data) "
                            "VALUES ($1, $2, 0, $3)",
                            {Text(record.info().id()), Text(record.info().name()), Bytes(record)},
                            nullptr);
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(
          absl::StrCat("Namespace already exists: ", record.info().name()));
    }
    return st;
  }

  absl::StatusOr<v1::NamespaceRecord> GetByName(const std::string& name) override {
    return GetOne("SELECT data FROM namespaces WHERE name = $1", name);
  }
  absl::StatusOr<v1::NamespaceRecord> GetById(const std::string& id) override {
    return GetOne("SELECT data FROM namespaces WHERE id = $1", id);
  }

  absl::StatusOr<std::vector<v1::NamespaceRecord>> List() override {
    SqlRows rows;
    absl::Status st = Query(driver_, "SELECT data FROM namespaces ORDER BY name", {}, &rows);
    if (!st.ok()) return st;
    std::vector<v1::NamespaceRecord> out;
    for (const auto& row : rows.rows) {
      auto rec = ParseRecord<v1::NamespaceRecord>(row[0], "namespace");
      if (!rec.ok()) return rec.status();
      out.push_back(std::move(*rec));
    }
    return out;
  }

  absl::Status Update(const v1::NamespaceRecord& record) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "UPDATE namespaces SET data = $1, name = $2, "
                            "notification_version = notification_version + 1 WHERE id = $3",
                            {Bytes(record), Text(record.info().name()), Text(record.info().id())},
                            &rows);
    if (!st.ok()) return st;
    if (rows.rows_affected == 0) {
      return absl::NotFoundError(absl::StrCat("Namespace ", record.info().name(), " is not found."));
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<v1::NamespaceRecord> GetOne(absl::string_view sql, const std::string& key) {
    SqlRows rows;
    absl::Status st = Query(driver_, sql, {Text(key)}, &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty()) return absl::NotFoundError(absl::StrCat("Namespace ", key, " is not found."));
    return ParseRecord<v1::NamespaceRecord>(rows.rows[0][0], "namespace");
  }

  SqlDriver* driver_;
};

// Checks, inside a transaction, that the shard's lease is still `range_id`. On PostgreSQL a
// shared row lock keeps a new owner's lease from landing between this check and the commit.
absl::Status FenceShard(SqlDriver* driver, SqlConnection& conn, int32_t shard_id,
                        int64_t range_id) {
  SqlRows fence;
  absl::Status st = conn.Exec(driver->dialect() == Dialect::kPostgres
                                  ? "SELECT range_id FROM shards WHERE shard_id = $1 FOR SHARE"
                                  : "SELECT range_id FROM shards WHERE shard_id = $1",
                              {Int(shard_id)}, &fence);
  if (!st.ok()) return st;
  if (fence.rows.empty() || AsInt(fence.rows[0][0]) != range_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard_id, " is owned by another range"));
  }
  return absl::OkStatus();
}

class SqlShardStore final : public ShardStore {
 public:
  explicit SqlShardStore(SqlDriver* driver) : driver_(driver) {}

  absl::StatusOr<ShardInfo> AcquireShard(int32_t shard_id, const std::string& owner) override {
    ShardInfo info;
    absl::Status st = InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status s = conn.Exec(
          "INSERT INTO shards (shard_id, range_id) VALUES ($1, 0) ON CONFLICT (shard_id) DO NOTHING",
          {Int(shard_id)}, nullptr);
      if (!s.ok()) return s;
      s = conn.Exec("UPDATE shards SET range_id = range_id + 1, owner = $2 WHERE shard_id = $1",
                    {Int(shard_id), Text(owner)}, nullptr);
      if (!s.ok()) return s;
      SqlRows rows;
      s = conn.Exec(
          "SELECT range_id, transfer_ack_level, timer_ack_time, timer_ack_task_id FROM shards "
          "WHERE shard_id = $1",
          {Int(shard_id)}, &rows);
      if (!s.ok()) return s;
      if (rows.rows.empty()) return absl::InternalError("shard row missing");
      const auto& r = rows.rows[0];
      info.range_id = AsInt(r[0]);
      info.transfer_ack_level = AsInt(r[1]);
      info.timer_ack_level = {AsInt(r[2]), AsInt(r[3])};
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return info;
  }

  absl::Status RenewShard(int32_t shard_id, int64_t range_id, const std::string& owner,
                          absl::Time now) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "UPDATE shards SET lease_renewed_at = $1, owner = $2 "
                            "WHERE shard_id = $3 AND range_id = $4",
                            {Int(ToMicros(now)), Text(owner), Int(shard_id), Int(range_id)}, &rows);
    if (!st.ok()) return st;
    if (rows.rows_affected != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", shard_id, " is owned by another range"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> RenewRange(int32_t shard_id, int64_t range_id) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "UPDATE shards SET range_id = range_id + 1 "
                            "WHERE shard_id = $1 AND range_id = $2",
                            {Int(shard_id), Int(range_id)}, &rows);
    if (!st.ok()) return st;
    if (rows.rows_affected != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", shard_id, " is owned by another range"));
    }
    return range_id + 1;
  }

 private:
  SqlDriver* driver_;
};

// The kinds of a run's pending items, each stored as a row of execution_items. Numbers are
// stored: never reuse one.
enum class ItemKind : int64_t {
  kActivity = 1,
  kTimer = 2,
  kBufferedEvent = 3,
  kSignalRequested = 4,  // a signal this run sends to another workflow
  kCancelRequested = 5,  // a cancellation this run asks of another workflow
  kUpdate = 6,           // an accepted update
  kChild = 7,            // a child workflow this run started
};

// The execution row: the state without its pending items.
v1::MutableState ExecutionRow(const v1::MutableState& state) {
  v1::MutableState row;
  if (state.has_execution()) *row.mutable_execution() = state.execution();
  if (state.has_workflow_task()) *row.mutable_workflow_task() = state.workflow_task();
  row.set_next_event_id(state.next_event_id());
  row.set_db_version(state.db_version());
  if (state.has_close_event()) *row.mutable_close_event() = state.close_event();
  if (state.has_sticky()) *row.mutable_sticky() = state.sticky();
  row.set_storage_format(1);
  return row;
}

std::string BufferedEventKey(int index) { return absl::StrFormat("%010d", index); }

// One item row to write (data set) or delete (data empty).
struct ItemWrite {
  ItemKind kind;
  std::string id;
  std::optional<std::string> data;
};

// The item rows that turn `base` into `state`. Unchanged items are found by comparing
// their encodings in reused buffers; a map inside an item may encode in another order in a
// copy, which only costs a needless rewrite of that row.
template <typename Map, typename KeyFn>
void DiffItems(ItemKind kind, const Map* base, const Map& now, KeyFn key,
               std::vector<ItemWrite>* out) {
  std::string mine;
  std::string theirs;
  for (const auto& [k, v] : now) {
    v.SerializeToString(&mine);
    if (base != nullptr) {
      auto it = base->find(k);
      if (it != base->end() && it->second.SerializeToString(&theirs) && theirs == mine) continue;
    }
    out->push_back({kind, key(k), mine});
  }
  if (base == nullptr) return;
  for (const auto& [k, v] : *base) {
    if (!now.contains(k)) out->push_back({kind, key(k), std::nullopt});
  }
}

// The item rows that turn `base` into `state`; with `updates_only`, those of updates only.
std::vector<ItemWrite> ItemWrites(const v1::MutableState* base, const v1::MutableState& state,
                                  bool updates_only = false) {
  const bool diff = base != nullptr && base->storage_format() >= 1;
  std::vector<ItemWrite> out;
  DiffItems(ItemKind::kUpdate, diff ? &base->updates() : nullptr, state.updates(),
            [](const std::string& k) { return k; }, &out);
  if (updates_only) return out;
  DiffItems(ItemKind::kActivity, diff ? &base->activities() : nullptr, state.activities(),
            [](int64_t k) { return absl::StrCat(k); }, &out);
  DiffItems(ItemKind::kTimer, diff ? &base->timers() : nullptr, state.timers(),
            [](const std::string& k) { return k; }, &out);
  DiffItems(ItemKind::kSignalRequested, diff ? &base->signals_requested() : nullptr,
            state.signals_requested(), [](int64_t k) { return absl::StrCat(k); }, &out);
  DiffItems(ItemKind::kCancelRequested, diff ? &base->cancels_requested() : nullptr,
            state.cancels_requested(), [](int64_t k) { return absl::StrCat(k); }, &out);
  DiffItems(ItemKind::kChild, diff ? &base->children() : nullptr, state.children(),
            [](int64_t k) { return absl::StrCat(k); }, &out);
  // Buffered events are appended, then flushed all at once: rows by position.
  const int before = diff ? base->buffered_events_size() : 0;
  for (int i = 0; i < state.buffered_events_size(); ++i) {
    std::string bytes = state.buffered_events(i).SerializeAsString();
    if (i < before && base->buffered_events(i).SerializeAsString() == bytes) continue;
    out.push_back({ItemKind::kBufferedEvent, BufferedEventKey(i), std::move(bytes)});
  }
  for (int i = state.buffered_events_size(); i < before; ++i) {
    out.push_back({ItemKind::kBufferedEvent, BufferedEventKey(i), std::nullopt});
  }
  return out;
}

class SqlExecutionStore final : public ExecutionStore {
 public:
  explicit SqlExecutionStore(SqlDriver* driver) : driver_(driver) {}

  static int64_t Micros(const google::protobuf::Timestamp& t) {
    return t.seconds() * 1000000 + t.nanos() / 1000;
  }

  absl::Status Apply(const ExecutionMutation& m) override {
    const v1::MutableState& state = *m.state;
    const v1::ExecutionInfo& info = state.execution();
    const SqlValue shard = Int(m.shard_id);
    const SqlValue ns = Text(info.namespace_id());
    const SqlValue wid = Text(info.workflow_id());
    const SqlValue rid = Text(info.run_id());
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      // Fence: the shard must still be ours.
      absl::Status st = FenceShard(driver_, conn, m.shard_id, m.range_id);
      if (!st.ok()) return st;

      const v1::MutableState row = ExecutionRow(state);
      if (m.create) {
        st = conn.Exec(
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, db_version, state) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {shard, ns, wid, rid, Int(state.db_version()), Bytes(row)}, nullptr);
        if (!st.ok()) return st;
      } else {
        SqlRows rows;
        st = conn.Exec(
            "UPDATE executions SET db_version = $1, state = $2 WHERE shard_id = $3 AND "
            "namespace_id = $4 AND workflow_id = $5 AND run_id = $6 AND db_version = $7",
            {Int(state.db_version()), Bytes(row), shard, ns, wid, rid,
             Int(m.expected_db_version)},
            &rows);
        if (!st.ok()) return st;
        if (rows.rows_affected != 1) {
          return absl::AbortedError("workflow state changed underneath (stale db_version)");
        }
      }
      st = WriteItems(conn, shard, ns, wid, rid, m.create ? nullptr : m.base, state);
      if (!st.ok()) return st;

      auto append_events = [&](const SqlValue& run_id,
                               const std::vector<const HistoryEvent*>& events) -> absl::Status {
        if (events.empty()) return absl::OkStatus();
        History batch;
        for (const auto* e : events) *batch.add_events() = *e;
        return conn.Exec(
            "INSERT INTO history_events (shard_id, namespace_id, workflow_id, run_id, "
            "first_event_id, last_event_id, data) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            {shard, ns, wid, run_id, Int(events.front()->event_id()),
             Int(events.back()->event_id()), Bytes(batch)},
            nullptr);
      };
      // One batch, or several where the mutation says batches start.
      std::vector<const HistoryEvent*> batch;
      size_t next_start = 0;
      for (const HistoryEvent* e : m.events) {
        if (next_start < m.batch_starts.size() && e->event_id() == m.batch_starts[next_start]) {
          ++next_start;
          st = append_events(rid, batch);
          if (!st.ok()) return st;
          batch.clear();
        }
        batch.push_back(e);
      }
      st = append_events(rid, batch);
      if (!st.ok()) return st;

      if (m.new_run_state != nullptr) {
        const v1::MutableState& next = *m.new_run_state;
        const SqlValue next_rid = Text(next.execution().run_id());
        st = conn.Exec(
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, db_version, state) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {shard, ns, wid, next_rid, Int(next.db_version()), Bytes(ExecutionRow(next))}, nullptr);
        if (!st.ok()) return st;
        st = WriteItems(conn, shard, ns, wid, next_rid, nullptr, next);
        if (!st.ok()) return st;
        st = append_events(next_rid, m.new_run_events);
        if (!st.ok()) return st;
      }

      for (const v1::TransferTask& t : m.transfer_tasks) {
        st = conn.Exec("INSERT INTO transfer_tasks (shard_id, task_id, data) VALUES ($1, $2, $3)",
                       {Int(t.shard_id()), Int(t.task_id()), Bytes(t)}, nullptr);
        if (!st.ok()) return st;
      }
      for (const v1::TimerTask& t : m.timer_tasks) {
        st = conn.Exec(
            "INSERT INTO timer_tasks (shard_id, visibility_time, task_id, data) "
            "VALUES ($1, $2, $3, $4)",
            {Int(t.shard_id()), Int(Micros(t.visibility_time())), Int(t.task_id()), Bytes(t)},
            nullptr);
        if (!st.ok()) return st;
      }

      const SqlValue status = Int(info.status());
      switch (m.current) {
        case ExecutionMutation::Current::kNone:
          break;
        case ExecutionMutation::Current::kUpdate: {
          SqlRows rows;
          if (m.new_run_state != nullptr) {
            const auto& next = m.new_run_state->execution();
            st = conn.Exec(
                "UPDATE current_executions SET run_id = $1, create_request_id = $2, status = $3 "
                "WHERE shard_id = $4 AND namespace_id = $5 AND workflow_id = $6 AND run_id = $7",
                {Text(next.run_id()), Text(next.create_request_id()), Int(next.status()), shard,
                 ns, wid, rid},
                &rows);
          } else {
            st = conn.Exec(
                "UPDATE current_executions SET status = $1 WHERE shard_id = $2 AND "
                "namespace_id = $3 AND workflow_id = $4 AND run_id = $5",
                {status, shard, ns, wid, rid}, &rows);
          }
          if (!st.ok()) return st;
          break;
        }
        case ExecutionMutation::Current::kCreate: {
          if (m.previous_run_id.empty()) {
            st = conn.Exec(
                "INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, "
                "create_request_id, status) VALUES ($1, $2, $3, $4, $5, $6)",
                {shard, ns, wid, rid, Text(info.create_request_id()), status}, nullptr);
            if (!st.ok()) return st;
          } else {
            SqlRows rows;
            st = conn.Exec(
                "UPDATE current_executions SET run_id = $1, create_request_id = $2, status = $3 "
                "WHERE shard_id = $4 AND namespace_id = $5 AND workflow_id = $6 AND run_id = $7",
                {rid, Text(info.create_request_id()), status, shard, ns, wid,
                 Text(m.previous_run_id)},
                &rows);
            if (!st.ok()) return st;
            if (rows.rows_affected != 1) {
              return absl::AlreadyExistsError("the workflow id's current run changed");
            }
          }
          break;
        }
      }

      if (m.write_visibility) {
        st = WriteVisibility(conn, driver_->dialect(), state, m.create);
        if (!st.ok()) return st;
      }
      if (info.status() != temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_RUNNING &&
          !m.create) {
        st = conn.Exec(
            "DELETE FROM activity_heartbeats WHERE shard_id = $1 AND namespace_id = $2 AND "
            "workflow_id = $3 AND run_id = $4",
            {shard, ns, wid, rid}, nullptr);
        if (!st.ok()) return st;
      }
      if (m.new_run_state != nullptr) {
        st = WriteVisibility(conn, driver_->dialect(), *m.new_run_state, /*created=*/true);
        if (!st.ok()) return st;
      }
      for (const RequestIdRecord& r : m.request_ids) {
        st = conn.Exec(
            "INSERT INTO request_ids (shard_id, namespace_id, workflow_id, request_id, run_id, "
            "expire_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (shard_id, namespace_id, "
            "workflow_id, request_id) DO UPDATE SET run_id = excluded.run_id, "
            "expire_at = excluded.expire_at",
            {shard, ns, wid, Text(r.request_id), Text(r.run_id), Int(ToMicros(r.expire_at))},
            nullptr);
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    });
  }

  // Writes the item rows that differ between `base` and `state` (all of them when base is
  // null or stored before schema version 4). A run that closed loses all its rows at once.
  static absl::Status WriteItems(SqlConnection& conn, const SqlValue& shard, const SqlValue& ns,
                                 const SqlValue& wid, const SqlValue& rid,
                                 const v1::MutableState* base, const v1::MutableState& state) {
    const bool closed =
        state.execution().status() != temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_RUNNING;
    const bool only_updates_left =
        closed && state.activities().empty() && state.timers().empty() &&
        state.buffered_events().empty() && state.signals_requested().empty() &&
        state.cancels_requested().empty() && state.children().empty();
    if (only_updates_left && base != nullptr) {
      // Updates outlive the run (a repeated update gets its outcome); nothing else does.
      absl::Status st = conn.Exec(
          "DELETE FROM execution_items WHERE shard_id = $1 AND namespace_id = $2 AND "
          "workflow_id = $3 AND run_id = $4 AND kind <> $5",
          {shard, ns, wid, rid, Int(static_cast<int64_t>(ItemKind::kUpdate))}, nullptr);
      if (!st.ok()) return st;
    }
    for (ItemWrite& w : ItemWrites(base, state, only_updates_left)) {
      absl::Status st;
      if (w.data.has_value()) {
        st = conn.Exec(
            "INSERT INTO execution_items (shard_id, namespace_id, workflow_id, run_id, kind, "
            "item_id, data) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (shard_id, "
            "namespace_id, workflow_id, run_id, kind, item_id) DO UPDATE SET data = excluded.data",
            {shard, ns, wid, rid, Int(static_cast<int64_t>(w.kind)), Text(std::move(w.id)),
             SqlValue(Blob{std::move(*w.data)})},
            nullptr);
      } else {
        st = conn.Exec(
            "DELETE FROM execution_items WHERE shard_id = $1 AND namespace_id = $2 AND "
            "workflow_id = $3 AND run_id = $4 AND kind = $5 AND item_id = $6",
            {shard, ns, wid, rid, Int(static_cast<int64_t>(w.kind)), Text(std::move(w.id))},
            nullptr);
      }
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<std::string>> FindRequestId(int32_t shard_id,
                                                           const std::string& namespace_id,
                                                           const std::string& workflow_id,
                                                           const std::string& request_id,
                                                           absl::Time now) override {
    // A primary-key lookup; the expiry is checked here, so that no plan scans the shard's
    // unexpired ids through the expiry index.
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT run_id, expire_at FROM request_ids WHERE shard_id = $1 AND "
                            "namespace_id = $2 AND workflow_id = $3 AND request_id = $4",
                            {Int(shard_id), Text(namespace_id), Text(workflow_id),
                             Text(request_id)},
                            &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty() || AsInt(rows.rows[0][1]) <= ToMicros(now)) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(AsString(rows.rows[0][0]));
  }

  absl::Status DeleteExpiredRequestIds(int32_t shard_id, int64_t range_id,
                                       absl::Time now) override {
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status st = FenceShard(driver_, conn, shard_id, range_id);
      if (!st.ok()) return st;
      return conn.Exec("DELETE FROM request_ids WHERE shard_id = $1 AND expire_at <= $2",
                       {Int(shard_id), Int(ToMicros(now))}, nullptr);
    });
  }

  absl::StatusOr<CurrentRun> GetCurrentRun(int32_t shard_id, const std::string& namespace_id,
                                           const std::string& workflow_id) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT run_id, create_request_id, status FROM current_executions "
                            "WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3",
                            {Int(shard_id), Text(namespace_id), Text(workflow_id)}, &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty()) {
      return absl::NotFoundError(absl::StrCat("workflow not found for ID: ", workflow_id));
    }
    const auto& r = rows.rows[0];
    return CurrentRun{AsString(r[0]), AsString(r[1]), static_cast<int32_t>(AsInt(r[2]))};
  }

  absl::StatusOr<v1::MutableState> GetMutableState(int32_t shard_id,
                                                   const v1::RunKey& run) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT state FROM executions WHERE shard_id = $1 AND "
                            "namespace_id = $2 AND workflow_id = $3 AND run_id = $4",
                            {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()),
                             Text(run.run_id())},
                            &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty()) {
      return absl::NotFoundError(absl::StrCat("workflow execution not found: ", run.workflow_id(),
                                              "/", run.run_id()));
    }
    auto state = ParseRecord<v1::MutableState>(rows.rows[0][0], "mutable state");
    if (!state.ok()) return state;
    if (state->storage_format() >= 1) {
      SqlRows items;
      st = Query(driver_,
                 "SELECT kind, item_id, data FROM execution_items WHERE shard_id = $1 AND "
                 "namespace_id = $2 AND workflow_id = $3 AND run_id = $4 ORDER BY kind, item_id",
                 {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()),
                  Text(run.run_id())},
                 &items);
      if (!st.ok()) return st;
      for (const auto& item : items.rows) {
        switch (static_cast<ItemKind>(AsInt(item[0]))) {
          case ItemKind::kActivity: {
            auto ai = ParseRecord<v1::ActivityInfo>(item[2], "activity");
            if (!ai.ok()) return ai.status();
            (*state->mutable_activities())[ai->scheduled_event_id()] = std::move(*ai);
            break;
          }
          case ItemKind::kTimer: {
            auto ti = ParseRecord<v1::TimerInfo>(item[2], "timer");
            if (!ti.ok()) return ti.status();
            (*state->mutable_timers())[ti->timer_id()] = std::move(*ti);
            break;
          }
          case ItemKind::kBufferedEvent: {
            auto e = ParseRecord<HistoryEvent>(item[2], "buffered event");
            if (!e.ok()) return e.status();
            *state->add_buffered_events() = std::move(*e);
            break;
          }
          case ItemKind::kSignalRequested:
          case ItemKind::kCancelRequested: {
            auto r = ParseRecord<v1::ExternalRequestInfo>(item[2], "external request");
            if (!r.ok()) return r.status();
            auto* map = static_cast<ItemKind>(AsInt(item[0])) == ItemKind::kSignalRequested
                            ? state->mutable_signals_requested()
                            : state->mutable_cancels_requested();
            (*map)[r->initiated_event_id()] = std::move(*r);
            break;
          }
          case ItemKind::kChild: {
            auto c = ParseRecord<v1::ChildExecutionInfo>(item[2], "child");
            if (!c.ok()) return c.status();
            (*state->mutable_children())[c->initiated_event_id()] = std::move(*c);
            break;
          }
          case ItemKind::kUpdate: {
            auto u = ParseRecord<v1::UpdateInfo>(item[2], "update");
            if (!u.ok()) return u.status();
            (*state->mutable_updates())[u->update_id()] = std::move(*u);
            break;
          }
          default:
            return absl::DataLossError(absl::StrCat("unknown execution item kind ", AsInt(item[0])));
        }
      }
    }
    if (state->activities().empty()) return state;
    SqlRows beats;
    st = Query(driver_,
               "SELECT scheduled_event_id, heartbeat_time, details FROM activity_heartbeats "
               "WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4",
               {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()),
                Text(run.run_id())},
               &beats);
    if (!st.ok()) return st;
    for (const auto& row : beats.rows) {
      auto it = state->mutable_activities()->find(AsInt(row[0]));
      if (it == state->mutable_activities()->end()) continue;
      const int64_t at = AsInt(row[1]);
      v1::ActivityInfo& ai = it->second;
      if (ai.has_last_heartbeat_time() && Micros(ai.last_heartbeat_time()) >= at) continue;
      auto details = ParseRecord<temporal::api::common::v1::Payloads>(row[2], "heartbeat");
      if (!details.ok()) return details.status();
      *ai.mutable_heartbeat_details() = std::move(*details);
      ai.mutable_last_heartbeat_time()->set_seconds(at / 1000000);
      ai.mutable_last_heartbeat_time()->set_nanos(static_cast<int32_t>(at % 1000000) * 1000);
    }
    return state;
  }

  absl::Status RecordHeartbeat(int32_t shard_id, int64_t range_id, const v1::RunKey& run,
                               int64_t scheduled_event_id, absl::Time time,
                               const temporal::api::common::v1::Payloads& details) override {
    // One statement, fenced inline: it writes only while the lease is `range_id`. (A new
    // owner taking the shard at the same instant may or may not see this heartbeat, exactly
    // as if it had arrived a moment earlier or later.)
    SqlRows rows;
    absl::Status st = Query(
        driver_,
        "INSERT INTO activity_heartbeats (shard_id, namespace_id, workflow_id, run_id, "
        "scheduled_event_id, heartbeat_time, details) SELECT $1, $2, $3, $4, $5, $6, $7 "
        "WHERE EXISTS (SELECT 1 FROM shards WHERE shard_id = $1 AND range_id = $8) "
        "ON CONFLICT (shard_id, namespace_id, workflow_id, run_id, scheduled_event_id) "
        "DO UPDATE SET heartbeat_time = excluded.heartbeat_time, details = excluded.details",
        {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()), Text(run.run_id()),
         Int(scheduled_event_id), Int(ToMicros(time)), Bytes(details), Int(range_id)},
        &rows);
    if (!st.ok()) return st;
    if (rows.rows_affected != 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("shard ", shard_id, " is owned by another range"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<int64_t>> ListHistoryBatchStarts(int32_t shard_id,
                                                              const v1::RunKey& run,
                                                              int64_t first_event_id,
                                                              int64_t next_event_id) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT first_event_id FROM history_events WHERE shard_id = $1 AND "
                            "namespace_id = $2 AND workflow_id = $3 AND run_id = $4 AND "
                            "first_event_id >= $5 AND first_event_id < $6 ORDER BY first_event_id",
                            {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()),
                             Text(run.run_id()), Int(first_event_id), Int(next_event_id)},
                            &rows);
    if (!st.ok()) return st;
    std::vector<int64_t> out;
    out.reserve(rows.rows.size());
    for (const auto& r : rows.rows) out.push_back(AsInt(r[0]));
    return out;
  }

  absl::Status ReadHistory(int32_t shard_id, const v1::RunKey& run, int64_t first_event_id,
                           int64_t next_event_id, int max_events, History* out) override {
    // Each batch holds at least one event, so `max_events` batches always suffice; the
    // primary key (.., first_event_id) serves the range and the order.
    SqlRows rows;
    std::vector<SqlValue> params = {Int(shard_id),        Text(run.namespace_id()),
                                    Text(run.workflow_id()), Text(run.run_id()),
                                    Int(first_event_id),  Int(next_event_id)};
    // The range starts at the batch that holds `first` (the last one starting at or before
    // it, found by one index probe), so a read near the end of a long history does not scan
    // the batches before it.
    std::string sql =
        "SELECT data FROM history_events WHERE shard_id = $1 AND namespace_id = $2 AND "
        "workflow_id = $3 AND run_id = $4 AND first_event_id >= COALESCE((SELECT "
        "first_event_id FROM history_events WHERE shard_id = $1 AND namespace_id = $2 AND "
        "workflow_id = $3 AND run_id = $4 AND first_event_id <= $5 ORDER BY first_event_id "
        "DESC LIMIT 1), 0) AND last_event_id >= $5 AND first_event_id < $6 "
        "ORDER BY first_event_id";
    if (max_events > 0) {
      sql += " LIMIT $7";
      params.push_back(Int(max_events));
    }
    absl::Status st = Query(driver_, sql, std::move(params), &rows);
    if (!st.ok()) return st;
    int taken = 0;
    for (const auto& row : rows.rows) {
      auto batch = ParseRecord<History>(row[0], "history batch");
      if (!batch.ok()) return batch.status();
      for (auto& e : *batch->mutable_events()) {
        if (e.event_id() < first_event_id || e.event_id() >= next_event_id) continue;
        if (max_events > 0 && taken >= max_events) return absl::OkStatus();
        *out->add_events() = std::move(e);
        ++taken;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::TransferTask>> ListTransferTasks(int32_t shard_id, int64_t after,
                                                                  int limit) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT data FROM transfer_tasks WHERE shard_id = $1 AND task_id > $2 "
                            "ORDER BY task_id LIMIT $3",
                            {Int(shard_id), Int(after), Int(limit)}, &rows);
    if (!st.ok()) return st;
    std::vector<v1::TransferTask> out;
    for (const auto& row : rows.rows) {
      auto t = ParseRecord<v1::TransferTask>(row[0], "transfer task");
      if (!t.ok()) return t.status();
      out.push_back(std::move(*t));
    }
    return out;
  }

  absl::StatusOr<std::vector<v1::TimerTask>> ListTimerTasks(int32_t shard_id,
                                                            absl::Time after_time,
                                                            int64_t after_task_id,
                                                            absl::Time until,
                                                            int limit) override {
    SqlRows rows;
    const int64_t after_us = ToMicros(after_time);
    absl::Status st = Query(
        driver_,
        "SELECT data FROM timer_tasks WHERE shard_id = $1 AND "
        "(visibility_time > $2 OR (visibility_time = $2 AND task_id > $3)) AND "
        "visibility_time < $4 ORDER BY visibility_time, task_id LIMIT $5",
        {Int(shard_id), Int(after_us), Int(after_task_id), Int(ToMicros(until)), Int(limit)},
        &rows);
    if (!st.ok()) return st;
    std::vector<v1::TimerTask> out;
    for (const auto& row : rows.rows) {
      auto t = ParseRecord<v1::TimerTask>(row[0], "timer task");
      if (!t.ok()) return t.status();
      out.push_back(std::move(*t));
    }
    return out;
  }

  absl::Status CompleteTasks(int32_t shard_id, int64_t range_id, int64_t transfer_ack_level,
                             TimerKey timer_ack_level) override {
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status st = FenceShard(driver_, conn, shard_id, range_id);
      if (!st.ok()) return st;
      st = conn.Exec(
          "UPDATE shards SET transfer_ack_level = $1, timer_ack_time = $2, timer_ack_task_id = $3 "
          "WHERE shard_id = $4",
          {Int(transfer_ack_level), Int(timer_ack_level.time_micros), Int(timer_ack_level.task_id),
           Int(shard_id)},
          nullptr);
      if (!st.ok()) return st;
      st = conn.Exec("DELETE FROM transfer_tasks WHERE shard_id = $1 AND task_id <= $2",
                     {Int(shard_id), Int(transfer_ack_level)}, nullptr);
      if (!st.ok()) return st;
      return conn.Exec(
          "DELETE FROM timer_tasks WHERE shard_id = $1 AND (visibility_time < $2 OR "
          "(visibility_time = $2 AND task_id <= $3))",
          {Int(shard_id), Int(timer_ack_level.time_micros), Int(timer_ack_level.task_id)}, nullptr);
    });
  }

 private:
  SqlDriver* driver_;
};

class SqlTaskQueueStore final : public TaskQueueStore {
 public:
  explicit SqlTaskQueueStore(SqlDriver* driver) : driver_(driver) {}

  // Checks, inside a transaction, that the queue's lease is still `range_id`.
  absl::Status FenceQueue(SqlConnection& conn, const TaskQueueKey& q, int64_t range_id) {
    SqlRows fence;
    absl::Status s = conn.Exec(
        driver_->dialect() == Dialect::kPostgres
            ? "SELECT range_id FROM task_queues WHERE namespace_id = $1 AND name = $2 AND "
              "kind = $3 FOR SHARE"
            : "SELECT range_id FROM task_queues WHERE namespace_id = $1 AND name = $2 AND "
              "kind = $3",
        {Text(q.namespace_id), Text(q.name), Int(static_cast<int64_t>(q.kind))}, &fence);
    if (!s.ok()) return s;
    if (fence.rows.empty() || AsInt(fence.rows[0][0]) != range_id) {
      return absl::FailedPreconditionError("task queue lease moved on");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> LeaseQueue(const TaskQueueKey& q) override {
    int64_t range_id = 0;
    const std::vector<SqlValue> key = {Text(q.namespace_id), Text(q.name),
                                       Int(static_cast<int64_t>(q.kind))};
    absl::Status st = InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status s = conn.Exec(
          "INSERT INTO task_queues (namespace_id, name, kind, range_id) VALUES ($1, $2, $3, 0) "
          "ON CONFLICT (namespace_id, name, kind) DO NOTHING",
          key, nullptr);
      if (!s.ok()) return s;
      s = conn.Exec(
          "UPDATE task_queues SET range_id = range_id + 1 WHERE namespace_id = $1 AND name = $2 "
          "AND kind = $3",
          key, nullptr);
      if (!s.ok()) return s;
      SqlRows rows;
      s = conn.Exec(
          "SELECT range_id FROM task_queues WHERE namespace_id = $1 AND name = $2 AND kind = $3",
          key, &rows);
      if (!s.ok()) return s;
      range_id = AsInt(rows.rows.at(0)[0]);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return range_id;
  }

  absl::Status AddTask(const TaskQueueKey& q, int64_t range_id, int64_t task_id,
                       const v1::TaskQueueTask& task) override {
    const SqlValue kind = Int(static_cast<int64_t>(q.kind));
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status s = FenceQueue(conn, q, range_id);
      if (!s.ok()) return s;
      return conn.Exec(
          "INSERT INTO task_queue_tasks (namespace_id, name, kind, task_id, data) "
          "VALUES ($1, $2, $3, $4, $5)",
          {Text(q.namespace_id), Text(q.name), kind, Int(task_id), Bytes(task)}, nullptr);
    });
  }

  absl::StatusOr<std::vector<StoredTask>> ListTasks(const TaskQueueKey& q, int64_t after,
                                                    int limit) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT task_id, data FROM task_queue_tasks WHERE namespace_id = $1 "
                            "AND name = $2 AND kind = $3 AND task_id > $4 ORDER BY task_id LIMIT $5",
                            {Text(q.namespace_id), Text(q.name), Int(static_cast<int64_t>(q.kind)),
                             Int(after), Int(limit)},
                            &rows);
    if (!st.ok()) return st;
    std::vector<StoredTask> out;
    for (const auto& row : rows.rows) {
      auto t = ParseRecord<v1::TaskQueueTask>(row[1], "task queue task");
      if (!t.ok()) return t.status();
      out.push_back({AsInt(row[0]), std::move(*t)});
    }
    return out;
  }

  absl::StatusOr<int64_t> CountTasks(const TaskQueueKey& q, int64_t after) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT COUNT(*) FROM task_queue_tasks WHERE namespace_id = $1 "
                            "AND name = $2 AND kind = $3 AND task_id > $4",
                            {Text(q.namespace_id), Text(q.name), Int(static_cast<int64_t>(q.kind)),
                             Int(after)},
                            &rows);
    if (!st.ok()) return st;
    return rows.rows.empty() ? 0 : AsInt(rows.rows[0][0]);
  }

  absl::Status DeleteTasksUpTo(const TaskQueueKey& q, int64_t range_id,
                               int64_t ack_level) override {
    const SqlValue kind = Int(static_cast<int64_t>(q.kind));
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status s = FenceQueue(conn, q, range_id);
      if (!s.ok()) return s;
      return conn.Exec(
          "DELETE FROM task_queue_tasks WHERE namespace_id = $1 AND name = $2 AND kind = $3 "
          "AND task_id <= $4",
          {Text(q.namespace_id), Text(q.name), kind, Int(ack_level)}, nullptr);
    });
  }

 private:
  SqlDriver* driver_;
};

class SqlScheduleStore final : public ScheduleStore {
 public:
  explicit SqlScheduleStore(SqlDriver* driver) : driver_(driver) {}

  absl::Status Apply(const ScheduleMutation& m) override {
    const v1::ScheduleRecord& record = *m.record;
    const SqlValue shard = Int(m.shard_id);
    const SqlValue ns = Text(record.namespace_id());
    const SqlValue id = Text(record.schedule_id());
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status st = FenceShard(driver_, conn, m.shard_id, m.range_id);
      if (!st.ok()) return st;
      SqlRows rows;
      switch (m.kind) {
        case ScheduleMutation::Kind::kCreate:
          st = conn.Exec("SELECT 1 FROM schedules WHERE shard_id = $1 AND namespace_id = $2 AND "
                         "schedule_id = $3",
                         {shard, ns, id}, &rows);
          if (!st.ok()) return st;
          if (!rows.rows.empty()) {
            return absl::AlreadyExistsError(
                absl::StrCat("schedule ", record.schedule_id(), " exists"));
          }
          st = conn.Exec(
              "INSERT INTO schedules (shard_id, namespace_id, schedule_id, db_version, state) "
              "VALUES ($1, $2, $3, $4, $5)",
              {shard, ns, id, Int(record.db_version()), Bytes(record)}, nullptr);
          break;
        case ScheduleMutation::Kind::kUpdate:
          st = conn.Exec(
              "UPDATE schedules SET db_version = $1, state = $2 WHERE shard_id = $3 AND "
              "namespace_id = $4 AND schedule_id = $5 AND db_version = $6",
              {Int(record.db_version()), Bytes(record), shard, ns, id,
               Int(m.expected_db_version)},
              &rows);
          if (st.ok() && rows.rows_affected != 1) {
            return absl::AbortedError("schedule changed underneath (stale db_version)");
          }
          break;
        case ScheduleMutation::Kind::kDelete:
          st = conn.Exec(
              "DELETE FROM schedules WHERE shard_id = $1 AND namespace_id = $2 AND "
              "schedule_id = $3 AND db_version = $4",
              {shard, ns, id, Int(m.expected_db_version)}, &rows);
          if (st.ok() && rows.rows_affected != 1) {
            return absl::AbortedError("schedule changed underneath (stale db_version)");
          }
          if (st.ok()) st = DeleteVisibility(conn, record.namespace_id(), record.run_id());
          break;
      }
      if (!st.ok()) return st;
      for (const v1::TimerTask& t : m.timer_tasks) {
        st = conn.Exec(
            "INSERT INTO timer_tasks (shard_id, visibility_time, task_id, data) "
            "VALUES ($1, $2, $3, $4)",
            {Int(t.shard_id()), Int(SqlExecutionStore::Micros(t.visibility_time())),
             Int(t.task_id()), Bytes(t)},
            nullptr);
        if (!st.ok()) return st;
      }
      if (m.delete_visibility && m.kind == ScheduleMutation::Kind::kUpdate) {
        st = DeleteVisibility(conn, record.namespace_id(), record.run_id());
        if (!st.ok()) return st;
      }
      if (m.visibility != nullptr && m.kind != ScheduleMutation::Kind::kDelete) {
        st = WriteVisibility(conn, driver_->dialect(), *m.visibility,
                             m.kind == ScheduleMutation::Kind::kCreate);
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<v1::ScheduleRecord> Get(int32_t shard_id, const std::string& namespace_id,
                                         const std::string& schedule_id) override {
    SqlRows rows;
    absl::Status st = Query(driver_,
                            "SELECT state FROM schedules WHERE shard_id = $1 AND namespace_id = $2 "
                            "AND schedule_id = $3",
                            {Int(shard_id), Text(namespace_id), Text(schedule_id)}, &rows);
    if (!st.ok()) return st;
    if (rows.rows.empty()) return absl::NotFoundError("schedule not found");
    return ParseRecord<v1::ScheduleRecord>(rows.rows[0][0], "schedule");
  }

 private:
  SqlDriver* driver_;
};

}  // namespace

std::unique_ptr<Stores> NewSqlStores(std::unique_ptr<SqlDriver> driver) {
  auto stores = std::make_unique<Stores>();
  SqlDriver* d = driver.get();
  stores->driver = std::move(driver);
  stores->cluster = std::make_unique<SqlClusterMetadataStore>(d);
  stores->namespaces = std::make_unique<SqlNamespaceStore>(d);
  stores->shards = std::make_unique<SqlShardStore>(d);
  stores->executions = std::make_unique<SqlExecutionStore>(d);
  stores->task_queues = std::make_unique<SqlTaskQueueStore>(d);
  stores->visibility = NewSqlVisibilityStore(d);
  stores->schedules = std::make_unique<SqlScheduleStore>(d);
  return stores;
}

}  // namespace almanac::persistence
