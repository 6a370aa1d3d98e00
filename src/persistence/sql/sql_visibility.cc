#include "persistence/sql/sql_visibility.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "persistence/search_attributes.h"

namespace almanac::persistence {
namespace {

namespace enums = temporal::api::enums::v1;
using temporal::api::workflow::v1::WorkflowExecutionInfo;

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

google::protobuf::Timestamp TimestampOf(int64_t micros) {
  google::protobuf::Timestamp t;
  int64_t seconds = micros / 1000000;
  int64_t rest = micros % 1000000;
  if (rest < 0) {
    rest += 1000000;
    --seconds;
  }
  t.set_seconds(seconds);
  t.set_nanos(static_cast<int32_t>(rest * 1000));
  return t;
}

SqlValue TextOrNull(const std::string& s) {
  if (s.empty()) return std::monostate{};
  return s;
}

// The columns List reads, in order, before the query's sort keys.
constexpr absl::string_view kListColumns =
    "workflow_id, run_id, workflow_type, task_queue, status, start_time, execution_time, "
    "close_time, history_length, execution_duration, state_transition_count, "
    "history_size_bytes, parent_workflow_id, parent_run_id, root_workflow_id, root_run_id, "
    "memo, search_attributes";
constexpr int kListColumnCount = 18;

WorkflowExecutionInfo RowToInfo(const std::vector<SqlValue>& row) {
  WorkflowExecutionInfo info;
  info.mutable_execution()->set_workflow_id(AsString(row[0]));
  info.mutable_execution()->set_run_id(AsString(row[1]));
  info.mutable_type()->set_name(AsString(row[2]));
  info.set_task_queue(AsString(row[3]));
  info.set_status(static_cast<enums::WorkflowExecutionStatus>(AsInt(row[4])));
  *info.mutable_start_time() = TimestampOf(AsInt(row[5]));
  *info.mutable_execution_time() = TimestampOf(AsInt(row[6]));
  if (!std::holds_alternative<std::monostate>(row[7])) {
    *info.mutable_close_time() = TimestampOf(AsInt(row[7]));
  }
  info.set_history_length(AsInt(row[8]));
  if (!std::holds_alternative<std::monostate>(row[9])) {
    const int64_t nanos = AsInt(row[9]);
    info.mutable_execution_duration()->set_seconds(nanos / 1000000000);
    info.mutable_execution_duration()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  }
  info.set_state_transition_count(AsInt(row[10]));
  info.set_history_size_bytes(AsInt(row[11]));
  if (!std::holds_alternative<std::monostate>(row[12])) {
    info.mutable_parent_execution()->set_workflow_id(AsString(row[12]));
    info.mutable_parent_execution()->set_run_id(AsString(row[13]));
  }
  if (!std::holds_alternative<std::monostate>(row[14])) {
    info.mutable_root_execution()->set_workflow_id(AsString(row[14]));
    info.mutable_root_execution()->set_run_id(AsString(row[15]));
  }
  if (!AsString(row[16]).empty()) info.mutable_memo()->ParseFromString(AsString(row[16]));
  if (!AsString(row[17]).empty()) {
    info.mutable_search_attributes()->ParseFromString(AsString(row[17]));
  }
  return info;
}

// The attributes as list calls show them: as Temporal's SQL visibility reads them back, a
// Datetime in UTC ("Z") to the microsecond.
temporal::api::common::v1::SearchAttributes ListedAttributes(
    const temporal::api::common::v1::SearchAttributes& stored) {
  temporal::api::common::v1::SearchAttributes out = stored;
  for (auto& [name, payload] : *out.mutable_indexed_fields()) {
    if (SearchAttributeTypeOf(payload) != enums::INDEXED_VALUE_TYPE_DATETIME) continue;
    auto value = DecodeSearchAttributeValue(payload, enums::INDEXED_VALUE_TYPE_DATETIME);
    if (!value.ok() || value->unset) continue;
    payload.set_data(absl::StrCat(
        "\"",
        absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMicros(value->int_value),
                         absl::UTCTimeZone()),
        "\""));
  }
  return out;
}

absl::Status BadToken() { return absl::InvalidArgumentError("invalid page token"); }

class SqlVisibilityStore final : public VisibilityStore {
 public:
  explicit SqlVisibilityStore(SqlDriver* driver) : driver_(driver) {}

  Dialect dialect() const override { return driver_->dialect(); }

  absl::StatusOr<Page> List(const std::string& namespace_id, const CompiledVisibilityQuery& query,
                            int page_size, const std::string& page_token) override {
    std::vector<SqlValue> params;
    params.reserve(query.params.size() + 2 * query.sort_keys.size() + 2);
    params.push_back(namespace_id);
    params.insert(params.end(), query.params.begin(), query.params.end());
    std::string sql = absl::StrCat("SELECT ", kListColumns);
    for (const VisibilitySortKey& key : query.sort_keys) absl::StrAppend(&sql, ", ", key.sql);
    absl::StrAppend(&sql, " FROM visibility WHERE namespace_id = $1");
    if (!query.where.empty()) absl::StrAppend(&sql, " AND (", query.where, ")");
    if (!page_token.empty()) {
      v1::VisibilityPageToken token;
      if (!token.ParseFromString(page_token) ||
          token.keys_size() != static_cast<int>(query.sort_keys.size())) {
        return BadToken();
      }
      absl::StrAppend(&sql, " AND (", After(query.sort_keys, token, &params), ")");
    }
    params.push_back(int64_t{page_size} + 1);  // one more, to know whether a page follows
    absl::StrAppend(&sql, " ORDER BY ", query.order_by, " LIMIT $", params.size());

    auto conn = driver_->Acquire();
    if (!conn.ok()) return conn.status();
    SqlRows rows;
    absl::Status st = (*conn)->Exec(sql, params, &rows);
    if (!st.ok()) return st;

    Page page;
    const size_t n = std::min(rows.rows.size(), static_cast<size_t>(page_size));
    page.executions.reserve(n);
    for (size_t i = 0; i < n; ++i) page.executions.push_back(RowToInfo(rows.rows[i]));
    if (rows.rows.size() > n && n > 0) {
      v1::VisibilityPageToken next;
      const std::vector<SqlValue>& last = rows.rows[n - 1];
      for (size_t k = 0; k < query.sort_keys.size(); ++k) {
        const SqlValue& v = last[kListColumnCount + k];
        auto* key = next.add_keys();
        if (std::holds_alternative<std::monostate>(v)) {
          key->set_is_null(true);
        } else if (const int64_t* i = std::get_if<int64_t>(&v)) {
          key->set_int_value(*i);
        } else {
          key->set_text_value(AsString(v));
        }
      }
      page.next_page_token = next.SerializeAsString();
    }
    return page;
  }

  absl::StatusOr<Count> CountRuns(const std::string& namespace_id,
                                  const CompiledVisibilityQuery& query) override {
    std::vector<SqlValue> params;
    params.push_back(namespace_id);
    params.insert(params.end(), query.params.begin(), query.params.end());
    std::string sql;
    if (query.group_by.empty()) {
      sql = "SELECT COUNT(*) FROM visibility WHERE namespace_id = $1";
    } else {
      sql = absl::StrCat("SELECT ", query.group_by,
                         ", COUNT(*) FROM visibility WHERE namespace_id = $1");
    }
    if (!query.where.empty()) absl::StrAppend(&sql, " AND (", query.where, ")");
    if (!query.group_by.empty()) {
      absl::StrAppend(&sql, " GROUP BY ", query.group_by, " ORDER BY ", query.group_by);
    }
    SqlRows rows;
    auto conn = driver_->Acquire();
    if (!conn.ok()) return conn.status();
    absl::Status st = (*conn)->Exec(sql, params, &rows);
    if (!st.ok()) return st;
    Count out;
    if (query.group_by.empty()) {
      if (!rows.rows.empty()) out.count = AsInt(rows.rows[0][0]);
      return out;
    }
    for (const auto& row : rows.rows) {
      const int64_t n = AsInt(row[1]);
      out.groups.emplace_back(static_cast<int32_t>(AsInt(row[0])), n);
      out.count += n;
    }
    return out;
  }

 private:
  // The condition that a row comes after the token's row in the keys' order: for some key,
  // every earlier key equal and this one after. NULLs sort last in either direction.
  static std::string After(const std::vector<VisibilitySortKey>& keys,
                           const v1::VisibilityPageToken& token, std::vector<SqlValue>* params) {
    std::vector<std::string> alternatives;
    std::vector<std::string> equal_so_far;
    for (size_t k = 0; k < keys.size(); ++k) {
      const VisibilitySortKey& key = keys[k];
      const auto& t = token.keys(static_cast<int>(k));
      std::string placeholder;
      if (!t.is_null()) {
        if (t.value_case() == v1::VisibilityPageToken::Key::kIntValue) {
          params->push_back(t.int_value());
        } else {
          params->push_back(t.text_value());
        }
        placeholder = absl::StrCat("$", params->size());
      }
      if (!t.is_null()) {
        std::string after =
            absl::StrCat(key.sql, key.descending ? " < " : " > ", placeholder);
        if (key.nullable) after = absl::StrCat("(", after, " OR ", key.sql, " IS NULL)");
        std::vector<std::string> term = equal_so_far;
        term.push_back(after);
        alternatives.push_back(absl::StrCat("(", absl::StrJoin(term, " AND "), ")"));
        equal_so_far.push_back(absl::StrCat(key.sql, " = ", placeholder));
      } else {
        equal_so_far.push_back(absl::StrCat(key.sql, " IS NULL"));
      }
    }
    if (alternatives.empty()) return "1 = 0";
    return absl::StrJoin(alternatives, " OR ");
  }

  SqlDriver* driver_;
};

}  // namespace

absl::Status WriteVisibility(SqlConnection& conn, Dialect dialect, const v1::MutableState& state,
                             bool created) {
  const v1::ExecutionInfo& info = state.execution();
  // The counts and the duration are written once the run closes, as Temporal writes them.
  SqlValue close = std::monostate{};
  SqlValue duration = std::monostate{};
  SqlValue history_length = std::monostate{};
  SqlValue transitions = std::monostate{};
  SqlValue history_size = std::monostate{};
  if (info.has_close_time()) {
    close = Micros(info.close_time());
    const int64_t from = Micros(info.execution_time());
    duration = std::max<int64_t>(0, Micros(info.close_time()) - from) * 1000;
    history_length = state.next_event_id() - 1;
    transitions = state.db_version();
    history_size = info.history_size_bytes();
  }
  const bool has_parent = !info.parent_workflow_id().empty();
  const std::string& root_wid =
      info.root_workflow_id().empty() ? info.workflow_id() : info.root_workflow_id();
  const std::string& root_rid = info.root_workflow_id().empty() ? info.run_id() : info.root_run_id();
  SqlValue memo = std::monostate{};
  if (info.has_memo() && info.memo().fields_size() > 0) memo = Blob{info.memo().SerializeAsString()};
  SqlValue attributes = std::monostate{};
  SqlValue division = std::monostate{};
  if (info.has_search_attributes() && info.search_attributes().indexed_fields_size() > 0) {
    attributes = Blob{ListedAttributes(info.search_attributes()).SerializeAsString()};
    auto it = info.search_attributes().indexed_fields().find("TemporalNamespaceDivision");
    if (it != info.search_attributes().indexed_fields().end()) {
      auto value = DecodeSearchAttributeValue(it->second, enums::INDEXED_VALUE_TYPE_KEYWORD);
      if (value.ok() && !value->unset && !value->strings.empty()) division = value->strings[0];
    }
  }
  absl::Status st = conn.Exec(
      "INSERT INTO visibility (namespace_id, run_id, workflow_id, workflow_type, task_queue, "
      "status, start_time, execution_time, close_time, history_length, execution_duration, "
      "state_transition_count, history_size_bytes, parent_workflow_id, parent_run_id, "
      "root_workflow_id, root_run_id, memo, search_attributes, namespace_division) VALUES ($1, "
      "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) "
      "ON CONFLICT (namespace_id, run_id) DO UPDATE SET status = excluded.status, "
      "execution_time = excluded.execution_time, close_time = excluded.close_time, "
      "history_length = excluded.history_length, "
      "execution_duration = excluded.execution_duration, "
      "state_transition_count = excluded.state_transition_count, "
      "history_size_bytes = excluded.history_size_bytes, memo = excluded.memo, "
      "search_attributes = excluded.search_attributes, "
      "namespace_division = excluded.namespace_division",
      {info.namespace_id(), info.run_id(), info.workflow_id(), info.workflow_type(),
       info.task_queue(), int64_t{info.status()}, Micros(info.start_time()),
       Micros(info.execution_time()), close, history_length, duration, transitions,
       history_size,
       has_parent ? TextOrNull(info.parent_workflow_id()) : SqlValue(std::monostate{}),
       has_parent ? TextOrNull(info.parent_run_id()) : SqlValue(std::monostate{}),
       TextOrNull(root_wid), TextOrNull(root_rid), memo, attributes, division},
      nullptr);
  if (!st.ok()) return st;

  if (!created) {
    st = conn.Exec(
        "DELETE FROM visibility_search_attributes WHERE namespace_id = $1 AND run_id = $2",
        {info.namespace_id(), info.run_id()}, nullptr);
    if (!st.ok()) return st;
  }
  const absl::string_view float_type = dialect == Dialect::kPostgres ? "DOUBLE PRECISION" : "REAL";
  const std::string insert = absl::StrCat(
      "INSERT INTO visibility_search_attributes (namespace_id, run_id, name, int_value, "
      "double_value, text_value) VALUES ($1, $2, $3, $4, CAST($5 AS ", float_type, "), $6)");
  for (const SearchAttributeIndexRow& row : SearchAttributeIndexRows(info.search_attributes())) {
    SqlValue i = std::monostate{};
    SqlValue d = std::monostate{};
    SqlValue t = std::monostate{};
    if (row.int_value.has_value()) i = *row.int_value;
    if (row.double_value.has_value()) d = absl::StrFormat("%.17g", *row.double_value);
    if (row.text_value.has_value()) t = *row.text_value;
    st = conn.Exec(insert, {info.namespace_id(), info.run_id(), row.name, i, d, t}, nullptr);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status DeleteVisibility(SqlConnection& conn, const std::string& namespace_id,
                              const std::string& run_id) {
  absl::Status st = conn.Exec("DELETE FROM visibility WHERE namespace_id = $1 AND run_id = $2",
                              {namespace_id, run_id}, nullptr);
  if (!st.ok()) return st;
  return conn.Exec(
      "DELETE FROM visibility_search_attributes WHERE namespace_id = $1 AND run_id = $2",
      {namespace_id, run_id}, nullptr);
}

std::unique_ptr<VisibilityStore> NewSqlVisibilityStore(SqlDriver* driver) {
  return std::make_unique<SqlVisibilityStore>(driver);
}

}  // namespace almanac::persistence
