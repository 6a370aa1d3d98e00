// The SQL implementation of every store, shared by the SQLite and PostgreSQL drivers.
// Statements use $N placeholders; the few dialect differences are chosen by driver->dialect().

#include "absl/strings/string_view.h"
#include <utility>

#include "absl/strings/str_cat.h"
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

class SqlShardStore final : public ShardStore {
 public:
  explicit SqlShardStore(SqlDriver* driver) : driver_(driver) {}

  absl::StatusOr<int64_t> AcquireShard(int32_t shard_id) override {
    int64_t range_id = 0;
    absl::Status st = InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      absl::Status s = conn.Exec(
          "INSERT INTO shards (shard_id, range_id) VALUES ($1, 0) ON CONFLICT (shard_id) DO NOTHING",
          {Int(shard_id)}, nullptr);
      if (!s.ok()) return s;
      s = conn.Exec("UPDATE shards SET range_id = range_id + 1 WHERE shard_id = $1",
                    {Int(shard_id)}, nullptr);
      if (!s.ok()) return s;
      SqlRows rows;
      s = conn.Exec("SELECT range_id FROM shards WHERE shard_id = $1", {Int(shard_id)}, &rows);
      if (!s.ok()) return s;
      range_id = AsInt(rows.rows.at(0)[0]);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return range_id;
  }

 private:
  SqlDriver* driver_;
};

class SqlExecutionStore final : public ExecutionStore {
 public:
  explicit SqlExecutionStore(SqlDriver* driver) : driver_(driver) {}

  static int64_t Micros(const google::protobuf::Timestamp& t) {
    return t.seconds() * 1000000 + t.nanos() / 1000;
  }

  // One visibility row per run, with the built-in attributes.
  static absl::Status UpsertVisibility(SqlConnection& conn, const v1::MutableState& state) {
    const v1::ExecutionInfo& info = state.execution();
    SqlValue close = std::monostate{};
    if (info.has_close_time()) close = Int(Micros(info.close_time()));
    return conn.Exec(
        "INSERT INTO visibility (namespace_id, run_id, workflow_id, workflow_type, "
        "task_queue, status, start_time, execution_time, close_time, history_length) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (namespace_id, run_id) DO UPDATE SET status = excluded.status, "
        "close_time = excluded.close_time, history_length = excluded.history_length",
        {Text(info.namespace_id()), Text(info.run_id()), Text(info.workflow_id()),
         Text(info.workflow_type()), Text(info.task_queue()), Int(info.status()),
         Int(Micros(info.start_time())), Int(Micros(info.execution_time())), close,
         Int(state.next_event_id() - 1)},
        nullptr);
  }

  absl::Status Apply(const ExecutionMutation& m) override {
    const v1::MutableState& state = *m.state;
    const v1::ExecutionInfo& info = state.execution();
    const SqlValue shard = Int(m.shard_id);
    const SqlValue ns = Text(info.namespace_id());
    const SqlValue wid = Text(info.workflow_id());
    const SqlValue rid = Text(info.run_id());
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      // Fence: the shard must still be ours. On PostgreSQL a shared row lock keeps a new
      // owner's lease from landing between this check and the commit.
      SqlRows fence;
      absl::Status st = conn.Exec(
          driver_->dialect() == Dialect::kPostgres
              ? "SELECT range_id FROM shards WHERE shard_id = $1 FOR SHARE"
              : "SELECT range_id FROM shards WHERE shard_id = $1",
          {shard}, &fence);
      if (!st.ok()) return st;
      if (fence.rows.empty() || AsInt(fence.rows[0][0]) != m.range_id) {
        return absl::FailedPreconditionError(
            absl::StrCat("shard ", m.shard_id, " is owned by another range"));
      }

      if (m.create) {
        st = conn.Exec(
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, db_version, state) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {shard, ns, wid, rid, Int(state.db_version()), Bytes(state)}, nullptr);
        if (!st.ok()) return st;
      } else {
        SqlRows rows;
        st = conn.Exec(
            "UPDATE executions SET db_version = $1, state = $2 WHERE shard_id = $3 AND "
            "namespace_id = $4 AND workflow_id = $5 AND run_id = $6 AND db_version = $7",
            {Int(state.db_version()), Bytes(state), shard, ns, wid, rid,
             Int(m.expected_db_version)},
            &rows);
        if (!st.ok()) return st;
        if (rows.rows_affected != 1) {
          return absl::AbortedError("workflow state changed underneath (stale db_version)");
        }
      }

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
      st = append_events(rid, m.events);
      if (!st.ok()) return st;

      if (m.new_run_state != nullptr) {
        const v1::MutableState& next = *m.new_run_state;
        const SqlValue next_rid = Text(next.execution().run_id());
        st = conn.Exec(
            "INSERT INTO executions (shard_id, namespace_id, workflow_id, run_id, db_version, state) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {shard, ns, wid, next_rid, Int(next.db_version()), Bytes(next)}, nullptr);
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
        st = UpsertVisibility(conn, state);
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
        st = UpsertVisibility(conn, *m.new_run_state);
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
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
    if (!state.ok() || state->activities().empty()) return state;
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

  absl::Status RecordHeartbeat(int32_t shard_id, const v1::RunKey& run, int64_t scheduled_event_id,
                               absl::Time time,
                               const temporal::api::common::v1::Payloads& details) override {
    return Query(driver_,
                 "INSERT INTO activity_heartbeats (shard_id, namespace_id, workflow_id, run_id, "
                 "scheduled_event_id, heartbeat_time, details) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                 "ON CONFLICT (shard_id, namespace_id, workflow_id, run_id, scheduled_event_id) "
                 "DO UPDATE SET heartbeat_time = excluded.heartbeat_time, details = excluded.details",
                 {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()),
                  Text(run.run_id()), Int(scheduled_event_id), Int(ToMicros(time)), Bytes(details)},
                 nullptr);
  }

  absl::Status ReadHistory(int32_t shard_id, const v1::RunKey& run, int64_t first_event_id,
                           int64_t next_event_id, int max_events, History* out) override {
    SqlRows rows;
    absl::Status st = Query(
        driver_,
        "SELECT data FROM history_events WHERE shard_id = $1 AND namespace_id = $2 AND "
        "workflow_id = $3 AND run_id = $4 AND last_event_id >= $5 AND first_event_id < $6 "
        "ORDER BY first_event_id",
        {Int(shard_id), Text(run.namespace_id()), Text(run.workflow_id()), Text(run.run_id()),
         Int(first_event_id), Int(next_event_id)},
        &rows);
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

  absl::Status DeleteCompletedTasks(const CompletedTasks& tasks) override {
    if (tasks.empty()) return absl::OkStatus();
    return InTransaction(driver_, [&](SqlConnection& conn) -> absl::Status {
      for (const auto& t : tasks.transfer) {
        absl::Status st =
            conn.Exec("DELETE FROM transfer_tasks WHERE shard_id = $1 AND task_id = $2",
                      {Int(t.shard_id), Int(t.task_id)}, nullptr);
        if (!st.ok()) return st;
      }
      for (const auto& t : tasks.timers) {
        absl::Status st = conn.Exec(
            "DELETE FROM timer_tasks WHERE shard_id = $1 AND visibility_time = $2 AND "
            "task_id = $3",
            {Int(t.shard_id), Int(ToMicros(t.visibility_time)), Int(t.task_id)}, nullptr);
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    });
  }

 private:
  SqlDriver* driver_;
};

class SqlTaskQueueStore final : public TaskQueueStore {
 public:
  explicit SqlTaskQueueStore(SqlDriver* driver) : driver_(driver) {}

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
      SqlRows fence;
      absl::Status s = conn.Exec(
          driver_->dialect() == Dialect::kPostgres
              ? "SELECT range_id FROM task_queues WHERE namespace_id = $1 AND name = $2 AND "
                "kind = $3 FOR SHARE"
              : "SELECT range_id FROM task_queues WHERE namespace_id = $1 AND name = $2 AND "
                "kind = $3",
          {Text(q.namespace_id), Text(q.name), kind}, &fence);
      if (!s.ok()) return s;
      if (fence.rows.empty() || AsInt(fence.rows[0][0]) != range_id) {
        return absl::FailedPreconditionError("task queue lease moved on");
      }
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

  absl::Status DeleteTask(const TaskQueueKey& q, int64_t task_id) override {
    return Query(driver_,
                 "DELETE FROM task_queue_tasks WHERE namespace_id = $1 AND name = $2 AND "
                 "kind = $3 AND task_id = $4",
                 {Text(q.namespace_id), Text(q.name), Int(static_cast<int64_t>(q.kind)),
                  Int(task_id)},
                 nullptr);
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
  return stores;
}

}  // namespace almanac::persistence
