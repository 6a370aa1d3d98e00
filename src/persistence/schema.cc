#include "persistence/schema.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace almanac::persistence {
namespace {

// Each migration is written once in a neutral dialect: BLOB becomes BYTEA on PostgreSQL.
// Lookups use the indexed columns; the records themselves are protobuf bytes.
const std::vector<std::vector<std::string>>& Migrations() {
  static const auto* migrations = new std::vector<std::vector<std::string>>{
      // Version 1: the foundation.
      {
          R"(CREATE TABLE cluster_metadata (
               id INTEGER PRIMARY KEY,
               cluster_id TEXT NOT NULL,
               num_shards INTEGER NOT NULL))",
          R"(CREATE TABLE namespaces (
               id TEXT PRIMARY KEY,
               name TEXT NOT NULL UNIQUE,
               notification_version BIGINT NOT NULL,
               data BLOB NOT NULL))",
          R"(CREATE TABLE shards (
               shard_id INTEGER PRIMARY KEY,
               range_id BIGINT NOT NULL))",
          R"(CREATE TABLE executions (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               db_version BIGINT NOT NULL,
               state BLOB NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)))",
          R"(CREATE TABLE current_executions (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               create_request_id TEXT NOT NULL,
               status INTEGER NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id)))",
          R"(CREATE TABLE history_events (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               first_event_id BIGINT NOT NULL,
               last_event_id BIGINT NOT NULL,
               data BLOB NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, first_event_id)))",
          R"(CREATE TABLE transfer_tasks (
               shard_id INTEGER NOT NULL,
               task_id BIGINT NOT NULL,
               data BLOB NOT NULL,
               PRIMARY KEY (shard_id, task_id)))",
          R"(CREATE TABLE timer_tasks (
               shard_id INTEGER NOT NULL,
               visibility_time BIGINT NOT NULL,
               task_id BIGINT NOT NULL,
               data BLOB NOT NULL,
               PRIMARY KEY (shard_id, visibility_time, task_id)))",
          R"(CREATE TABLE task_queues (
               namespace_id TEXT NOT NULL,
               name TEXT NOT NULL,
               kind INTEGER NOT NULL,
               range_id BIGINT NOT NULL,
               PRIMARY KEY (namespace_id, name, kind)))",
          R"(CREATE TABLE task_queue_tasks (
               namespace_id TEXT NOT NULL,
               name TEXT NOT NULL,
               kind INTEGER NOT NULL,
               task_id BIGINT NOT NULL,
               data BLOB NOT NULL,
               PRIMARY KEY (namespace_id, name, kind, task_id)))",
          R"(CREATE TABLE visibility (
               namespace_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               workflow_type TEXT NOT NULL,
               task_queue TEXT NOT NULL,
               status INTEGER NOT NULL,
               start_time BIGINT NOT NULL,
               execution_time BIGINT NOT NULL,
               close_time BIGINT,
               history_length BIGINT NOT NULL,
               PRIMARY KEY (namespace_id, run_id)))",
          R"(CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time))",
          R"(CREATE INDEX visibility_by_workflow_id ON visibility (namespace_id, workflow_id))",
      },
      // Version 2: heartbeats in their own small rows, so that a heartbeat does not rewrite
      // the run's whole state.
      {
          R"(CREATE TABLE activity_heartbeats (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               scheduled_event_id BIGINT NOT NULL,
               heartbeat_time BIGINT NOT NULL,
               details BLOB NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, scheduled_event_id)))",
      },
      // Version 3: shard leases record their owner and renewal, and the queue processors'
      // ack levels, below which tasks are deleted by range.
      {
          R"(ALTER TABLE shards ADD COLUMN owner TEXT NOT NULL DEFAULT '')",
          R"(ALTER TABLE shards ADD COLUMN lease_renewed_at BIGINT NOT NULL DEFAULT 0)",
          R"(ALTER TABLE shards ADD COLUMN transfer_ack_level BIGINT NOT NULL DEFAULT 0)",
          R"(ALTER TABLE shards ADD COLUMN timer_ack_time BIGINT NOT NULL DEFAULT 0)",
          R"(ALTER TABLE shards ADD COLUMN timer_ack_task_id BIGINT NOT NULL DEFAULT 0)",
      },
      // Version 4: a run's pending items (activities, timers, buffered events; later
      // children, outgoing signals and cancels, updates) in rows of their own, each written
      // only when it changes; request ids in a table of their own, with an expiry.
      {
          R"(CREATE TABLE execution_items (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               kind INTEGER NOT NULL,
               item_id TEXT NOT NULL,
               data BLOB NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, kind, item_id)))",
          R"(CREATE TABLE request_ids (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               request_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               expire_at BIGINT NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, workflow_id, request_id)))",
          R"(CREATE INDEX request_ids_by_expiry ON request_ids (shard_id, expire_at))",
      },
      // Version 5: visibility keeps every built-in attribute Temporal lists and filters on
      // (the counts only once a run closes, as Temporal writes them), the run's memo and
      // search attributes (payload bytes, returned by list calls), and an index of the
      // search attributes, one row per value (visibility_query.h describes it). The table is
      // rebuilt, since history_length becomes nullable.
      {
          R"(ALTER TABLE visibility RENAME TO visibility_v4)",
          R"(CREATE TABLE visibility (
               namespace_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               workflow_id TEXT NOT NULL,
               workflow_type TEXT NOT NULL,
               task_queue TEXT NOT NULL,
               status INTEGER NOT NULL,
               start_time BIGINT NOT NULL,
               execution_time BIGINT NOT NULL,
               close_time BIGINT,
               history_length BIGINT,
               execution_duration BIGINT,
               state_transition_count BIGINT,
               history_size_bytes BIGINT,
               parent_workflow_id TEXT,
               parent_run_id TEXT,
               root_workflow_id TEXT,
               root_run_id TEXT,
               memo BLOB,
               search_attributes BLOB,
               PRIMARY KEY (namespace_id, run_id)))",
          R"(INSERT INTO visibility (namespace_id, run_id, workflow_id, workflow_type, task_queue,
               status, start_time, execution_time, close_time, history_length)
             SELECT namespace_id, run_id, workflow_id, workflow_type, task_queue, status,
               start_time, execution_time, close_time,
               CASE WHEN close_time IS NULL THEN NULL ELSE history_length END
             FROM visibility_v4)",
          R"(DROP TABLE visibility_v4)",
          R"(CREATE INDEX visibility_by_workflow_id ON visibility (namespace_id, workflow_id))",
          R"(CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time))",
          R"(CREATE INDEX visibility_by_close_time ON visibility (namespace_id, close_time))",
          // The default order (open runs first, newest first) and the common filters, each
          // ending in that order so that a page is an index range scan.
          R"(CREATE INDEX visibility_by_order ON visibility
               (namespace_id, (COALESCE(close_time, 9223372036854775807)) DESC, start_time DESC,
                run_id))",
          R"(CREATE INDEX visibility_by_status ON visibility
               (namespace_id, status, (COALESCE(close_time, 9223372036854775807)) DESC,
                start_time DESC, run_id))",
          R"(CREATE INDEX visibility_by_type ON visibility
               (namespace_id, workflow_type, (COALESCE(close_time, 9223372036854775807)) DESC,
                start_time DESC, run_id))",
          R"(CREATE INDEX visibility_by_task_queue ON visibility
               (namespace_id, task_queue, (COALESCE(close_time, 9223372036854775807)) DESC,
                start_time DESC, run_id))",
          R"(CREATE TABLE visibility_search_attributes (
               namespace_id TEXT NOT NULL,
               run_id TEXT NOT NULL,
               name TEXT NOT NULL,
               int_value BIGINT,
               double_value DOUBLE PRECISION,
               text_value TEXT))",
          R"(CREATE INDEX visibility_sa_by_run ON visibility_search_attributes
               (namespace_id, run_id, name))",
          R"(CREATE INDEX visibility_sa_by_text ON visibility_search_attributes
               (namespace_id, name, text_value))",
          R"(CREATE INDEX visibility_sa_by_int ON visibility_search_attributes
               (namespace_id, name, int_value))",
          R"(CREATE INDEX visibility_sa_by_double ON visibility_search_attributes
               (namespace_id, name, double_value))",
      },
      // Version 6: schedules. One row per schedule, owned by a history shard (its record:
      // ScheduleRecord). Visibility gains TemporalNamespaceDivision as a column (schedules'
      // rows carry "TemporalScheduler"; workflow lists leave them out by default), moved
      // out of the search attribute index.
      {
          R"(CREATE TABLE schedules (
               shard_id INTEGER NOT NULL,
               namespace_id TEXT NOT NULL,
               schedule_id TEXT NOT NULL,
               db_version BIGINT NOT NULL,
               state BLOB NOT NULL,
               PRIMARY KEY (shard_id, namespace_id, schedule_id)))",
          R"(ALTER TABLE visibility ADD COLUMN namespace_division TEXT)",
          R"(UPDATE visibility SET namespace_division = (
               SELECT sa.text_value FROM visibility_search_attributes sa
               WHERE sa.namespace_id = visibility.namespace_id AND sa.run_id = visibility.run_id
                 AND sa.name = 'TemporalNamespaceDivision')
             WHERE EXISTS (
               SELECT 1 FROM visibility_search_attributes sa
               WHERE sa.namespace_id = visibility.namespace_id AND sa.run_id = visibility.run_id
                 AND sa.name = 'TemporalNamespaceDivision'))",
          R"(DELETE FROM visibility_search_attributes WHERE name = 'TemporalNamespaceDivision')",
      },
  };
  return *migrations;
}

std::string ForDialect(Dialect dialect, const std::string& sql) {
  if (dialect == Dialect::kPostgres) return absl::StrReplaceAll(sql, {{"BLOB", "BYTEA"}});
  return sql;
}

}  // namespace

int CurrentSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> ReadSchemaVersion(SqlDriver* driver) {
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  absl::Status st = (*conn)->Exec(
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", {}, nullptr);
  if (!st.ok()) return st;
  SqlRows rows;
  st = (*conn)->Exec("SELECT MAX(version) FROM schema_version", {}, &rows);
  if (!st.ok()) return st;
  if (rows.rows.empty()) return 0;
  return static_cast<int>(AsInt(rows.rows[0][0]));
}

absl::Status MigrateSchema(SqlDriver* driver) {
  auto version = ReadSchemaVersion(driver);
  if (!version.ok()) return version.status();
  if (*version > CurrentSchemaVersion()) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", *version, " is newer than this build's ",
                     CurrentSchemaVersion()));
  }
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  for (int v = *version; v < CurrentSchemaVersion(); ++v) {
    absl::Status st = (*conn)->Begin();
    if (!st.ok()) return st;
    for (const std::string& sql : Migrations()[v]) {
      st = (*conn)->Exec(ForDialect(driver->dialect(), sql), {}, nullptr);
      if (!st.ok()) break;
    }
    if (st.ok()) {
      st = (*conn)->Exec("INSERT INTO schema_version (version) VALUES ($1)",
                         {SqlValue(int64_t{v + 1})}, nullptr);
    }
    if (!st.ok()) {
      (*conn)->Rollback();
      return absl::Status(st.code(), absl::StrCat("migration to version ", v + 1, ": ",
                                                  st.message()));
    }
    st = (*conn)->Commit();
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace almanac::persistence
