#pragma once

// Temporal's visibility query language (the "List Filter" of ListWorkflowExecutions,
// CountWorkflowExecutions and ScanWorkflowExecutions): parsed into a tree, resolved and
// type-checked against the namespace's search attributes, and compiled into parameterised SQL
// for the visibility store, on SQLite and PostgreSQL alike.
//
// User text never becomes SQL text: an attribute name is only ever looked up, and what the SQL
// names is the column or side-table row our schema gives it; every literal, and every custom
// attribute's name, travels as a parameter. The SQL holds nothing but our own column names,
// keywords, operators, $N placeholders and four constants of ours ('!', 0, 1, the int64 max).
//
// Pure functions over immutable values: thread-safe. Every failure caused by the query is
// kInvalidArgument with the text Temporal's server gives for it where it has one, led by
// "invalid query: " as Temporal's frontend answers it (e.g. "invalid query: invalid
// expression: column name 'Foo' is not a valid search attribute").
//
// The language, as Temporal's SQL visibility accepts it:
//   - comparisons `=`, `!=` (also `<>`), `<`, `<=`, `>`, `>=` of an attribute and a literal;
//     `[NOT] IN (v, ...)`, `[NOT] BETWEEN a AND b`, `[NOT] STARTS_WITH 'prefix'`,
//     `IS [NOT] NULL`; `AND` (also `&&`), `OR` (also `||`), `NOT`, parentheses, with SQL's
//     precedence (NOT over AND over OR).
//   - literals: strings in single or double quotes (a doubled quote or a backslash escapes,
//     as MySQL's \0 \b \n \r \t \Z \\ \' \"; a backslash before any other character is that
//     character), integers (an optional sign; one beyond int64 reads as a decimal),
//     decimals (1.5, .5, 1e3), TRUE and FALSE. Against a Datetime: RFC 3339 text
//     ('2021-08-22T15:04:05.5+02:00') or integer nanoseconds since the epoch; against
//     ExecutionStatus: 'Running', 'WORKFLOW_EXECUTION_STATUS_RUNNING' or the number; against
//     ExecutionDuration: integer nanoseconds, or text as nanoseconds, a Go duration with
//     Temporal's "d" ('1h30m', '1.5s', '2d') or 'hh:mm:ss'.
//   - attribute names as identifiers ([A-Za-z_@][A-Za-z0-9_@]*) or in backquotes (`a b`, with
//     `` for a backquote); keywords are case-insensitive, attribute names case-sensitive.
//   - after the filter, `GROUP BY ExecutionStatus` (counts only) and
//     `ORDER BY attr [ASC|DESC], ...`; comments (-- #, /* */) are skipped.
//
// Storage the compiler assumes (the visibility store's migration must match it):
//
//   visibility, one row per run, read as `FROM visibility` (no alias: the side-table
//   subqueries correlate on visibility.namespace_id and visibility.run_id). Besides today's
//   columns (namespace_id, run_id, workflow_id, workflow_type, task_queue, status INTEGER,
//   start_time, execution_time, close_time NULL while open, history_length; times in
//   microseconds since the Unix epoch) it gains:
//     execution_duration      BIGINT NULL   nanoseconds from execution_time to close_time
//     state_transition_count  BIGINT NOT NULL
//     history_size_bytes      BIGINT NOT NULL
//     parent_workflow_id      TEXT NULL     (NULL for a run without a parent)
//     parent_run_id           TEXT NULL
//     root_workflow_id        TEXT NULL
//     root_run_id             TEXT NULL
//
//   visibility_search_attributes, the index of every other attribute: the namespace's custom
//   ones and Temporal's predefined ones (BuildIds, TemporalChangeVersion,
//   TemporalScheduledById, ...), which arrive in the same SearchAttributes map:
//     CREATE TABLE visibility_search_attributes (
//       namespace_id TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL,
//       int_value BIGINT, double_value DOUBLE PRECISION (REAL on SQLite), text_value TEXT)
//     INDEX (namespace_id, run_id, name)           -- the correlated lookups, and deletes
//     INDEX (namespace_id, name, text_value)       -- and likewise int_value, double_value:
//     INDEX (namespace_id, name, int_value)        --   a selective filter can start from
//     INDEX (namespace_id, name, double_value)     --   the side table
//   One row per value, under the attribute's name as registered:
//     Keyword            text_value, one row
//     KeywordList        text_value, one row per distinct element (an empty list: no row)
//     Text               text_value, one row per distinct token of TokenizeText()
//     Int                int_value
//     Bool               int_value, 0 or 1
//     Datetime           int_value, microseconds since the Unix epoch (UTC)
//     Double             double_value (finite)
//   An attribute that is not set has no row. A single-valued attribute has at most one row
//   per run: the compiler relies on it for SQL's three-valued logic (below).
//   The values themselves, to return in list responses, live elsewhere (e.g. the
//   SearchAttributes message as bytes on the visibility row): this table is an index only.
//
//   The default order is served by an expression index on both databases:
//     INDEX (namespace_id, COALESCE(close_time, 9223372036854775807) DESC, start_time DESC,
//            run_id)
//
// Semantics. A comparison on an attribute that is not set is UNKNOWN, as SQL's NULL column
// is in Temporal's SQL visibility, so neither `X = 1` nor `X != 1` nor `NOT X = 1` matches a
// run without X; only IS NULL does. The compiler pushes NOT down to the conditions (De
// Morgan, exact in three-valued logic) so that a side-table condition keeps this meaning.
// KeywordList `=` means "contains", `!=` "is set and does not contain"; IN and NOT IN
// likewise for any of the values. Text `=` matches when any token of the value is a token
// of the attribute (Temporal's OR matching), `!=` when the attribute is set and none is.
// STARTS_WITH is case-sensitive on both databases. CloseTime compares its column as it is (as
// Elasticsearch visibility does; Temporal's SQL store compares COALESCE(close_time, max), so
// that there `CloseTime > t` matches every running workflow).
// On PostgreSQL, side-table conditions after the eighth carry OFFSET 0, which keeps them out
// of the planner's join search, whose cost grows steeply with their number.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "persistence/driver.h"
#include "temporal/api/enums/v1/common.pb.h"
#include "temporal/api/enums/v1/workflow.pb.h"

namespace almanac::persistence {

// ---------------------------------------------------------------------------------------------
// The tree.

// A literal as written: a string, an integer, a decimal or a boolean. What it means (a time, a
// status, a duration) is decided against the attribute it is compared with.
using QueryLiteral = std::variant<std::string, int64_t, double, bool>;

enum class QueryOp {
  kEqual,
  kNotEqual,
  kLess,
  kLessOrEqual,
  kGreater,
  kGreaterOrEqual,
  kIn,
  kNotIn,
  kBetween,
  kNotBetween,
  kStartsWith,
  kNotStartsWith,
  kIsNull,
  kIsNotNull,
  // Parsed only so that they are refused with Temporal's message, naming the attribute.
  kLike,
  kNotLike,
  kNullSafeEqual,  // <=>
};

// The operator as Temporal's messages spell it: "=", "!=", "IN", "NOT STARTS_WITH", ...
absl::string_view QueryOpName(QueryOp op);

struct QueryNode {
  enum class Kind { kAnd, kOr, kNot, kCondition };
  Kind kind = Kind::kCondition;
  // kAnd and kOr: two or more operands; kNot: one.
  std::vector<QueryNode> children;
  // kCondition: `attribute op values`. values holds one literal for a comparison or
  // STARTS_WITH, two for BETWEEN, one or more for IN, none for IS [NOT] NULL.
  std::string attribute;  // as written, without backquotes
  QueryOp op = QueryOp::kEqual;
  std::vector<QueryLiteral> values;
};

struct QueryOrderTerm {
  std::string attribute;
  bool descending = false;
};

struct ParsedQuery {
  std::optional<QueryNode> where;  // absent for an empty filter
  std::vector<std::string> group_by;
  std::vector<QueryOrderTerm> order_by;
};

// Deepest nesting of parentheses and NOTs the parser accepts (the limit of Temporal's parser).
inline constexpr int kMaxQueryNesting = 200;
// Deepest nesting of parentheses in a compiled WHERE, as AND within OR within AND ... (NOTs and
// redundant parentheses are gone by then). SQLite before 3.46 parses at most about 26 such
// levels (its parser stack holds 100 entries); 20 leaves room for the store's own
// parentheses around the fragment.
inline constexpr int kMaxSqlNesting = 20;
// Most conditions (leaves) in one filter. Bounds the SQL expression's depth, which SQLite
// limits to 1000, and the work one request can ask for.
inline constexpr int kMaxQueryConditions = 500;
// Most SQL parameters one query may compile to (IN lists included). SQLite's limit is 32766.
inline constexpr int kMaxQueryParams = 10000;

// Parses a filter. The empty string (or only blanks) is the empty filter. Fails with
// kInvalidArgument for a syntax error ("invalid query: malformed SQL query: syntax error at
// position N near 'x'", N the 1-based byte offset of the offending token), text that is not
// UTF-8, a number that is not one, a string with a NUL, a LIMIT clause, nesting beyond
// kMaxQueryNesting, more than kMaxQueryConditions conditions or an IN list longer than
// kMaxQueryParams.
absl::StatusOr<ParsedQuery> ParseVisibilityQuery(absl::string_view query);

// ---------------------------------------------------------------------------------------------
// Search attributes.

using IndexedValueType = temporal::api::enums::v1::IndexedValueType;

// A built-in attribute: Temporal's system attributes, each in a column of the visibility
// table, and its predefined ones, which live in visibility_search_attributes under `name`.
struct BuiltinSearchAttribute {
  absl::string_view name;
  IndexedValueType type;
  absl::string_view column;  // empty: a row of visibility_search_attributes
  bool nullable;             // whether the column can be NULL
};

// Every built-in attribute, in a fixed order.
const std::vector<BuiltinSearchAttribute>& BuiltinSearchAttributes();

// The attributes one namespace's queries may name, beyond the built-ins: its custom search
// attributes, name -> type, as AddSearchAttributes registered them. Names are case-sensitive.
struct SearchAttributeSchema {
  absl::flat_hash_map<std::string, IndexedValueType> custom;
};

// An attribute name of a query, resolved.
struct ResolvedSearchAttribute {
  std::string name;  // the canonical name: the side-table key for an attribute in that table
  IndexedValueType type = temporal::api::enums::v1::INDEXED_VALUE_TYPE_UNSPECIFIED;
  absl::string_view column;  // the visibility column; empty for the side table
  bool nullable = true;
};

// Resolves a name as Temporal does: a custom attribute first (unless the name is a built-in
// one), then a built-in by its name, then ScheduleId (or TemporalScheduleId) as WorkflowId,
// then the name with Temporal's "Temporal" prefix added or removed (so ScheduledById is
// TemporalScheduledById). Fails with kInvalidArgument: "column name 'X' is not a valid
// search attribute".
absl::StatusOr<ResolvedSearchAttribute> ResolveSearchAttribute(const SearchAttributeSchema& schema,
                                                               absl::string_view name);

// The type's name as Temporal's messages write it: "Keyword", "KeywordList", "Datetime", ...
absl::string_view IndexedValueTypeName(IndexedValueType type);

// A Text attribute's tokens, for the side table's rows and for matching: runs of ASCII letters
// and digits, '_' and non-ASCII bytes, where '.', ':' and '\'' join two letters or two digits
// (as Elasticsearch's standard analyzer does), ASCII-lowercased, each once, in order.
std::vector<std::string> TokenizeText(absl::string_view text);

// A time in RFC 3339 as Go's time.Parse(time.RFC3339Nano) reads it, as microseconds since the
// Unix epoch (finer digits dropped); nullopt when it is not one.
std::optional<int64_t> ParseRfc3339ToMicros(absl::string_view text);

// The name Temporal shows for an execution status in a count's groups: "Running", "TimedOut";
// empty for a value the enum does not have.
std::string ExecutionStatusName(int status);

// ---------------------------------------------------------------------------------------------
// The compiler.

enum class VisibilityQueryKind {
  kList,   // ListWorkflowExecutions, ScanWorkflowExecutions: ORDER BY; GROUP BY refused
  kCount,  // CountWorkflowExecutions: GROUP BY ExecutionStatus; ORDER BY checked, not emitted
};

struct VisibilityQueryOptions {
  Dialect dialect = Dialect::kSqlite;
  VisibilityQueryKind kind = VisibilityQueryKind::kList;
  // The number of the first placeholder the compiled SQL uses ($N), so that the store can
  // number its own parameters (the namespace, a page token's keys) before the query's. >= 1.
  int first_placeholder = 1;
  // Temporal's SQL visibility refuses ORDER BY ("operation is not supported: 'ORDER BY'
  // clause"); Elasticsearch visibility allows it. False gives the SQL behaviour.
  bool allow_order_by = true;
};

// One key of the result's order. The keys order runs totally: run_id, unique in a namespace,
// is always among them (last, unless the query names RunId), so that a page token can hold
// the last row's keys.
struct VisibilitySortKey {
  std::string sql;  // an expression over the visibility row; may use the query's placeholders
  bool descending = false;
  bool nullable = false;  // if so, the order puts NULLs last in either direction
};

struct CompiledVisibilityQuery {
  // A boolean SQL expression over the visibility row, safe to AND with other conditions as
  // it is; empty for the empty filter. The namespace condition is the caller's to add.
  std::string where;
  // kList: the ORDER BY list (without the keywords), the default when the query has none:
  // open runs first, then by close time descending, start time descending and run id, as
  // Temporal's SQL visibility orders. kCount: empty.
  std::string order_by;
  std::vector<VisibilitySortKey> sort_keys;  // the terms of order_by
  // kCount with GROUP BY: the column to group by ("status"); otherwise empty.
  std::string group_by;
  // The values of $first_placeholder, $first_placeholder+1, ... in where and order_by, in
  // that order. A double travels as its text inside CAST($N AS <the dialect's float type>),
  // since SqlValue has no double.
  std::vector<SqlValue> params;
};

// Resolves, type-checks and compiles a parsed query. Fails with kInvalidArgument for an
// unknown attribute, a literal of the wrong type or that does not parse as the attribute's
// (a time in RFC 3339, an ExecutionStatus name, a duration), an operator the attribute's type
// does not support (Temporal's rules: STARTS_WITH on Keyword only, but not ExecutionStatus,
// which is stored as its number; Text takes = and != only;
// KeywordList =, !=, IN and NOT IN; BETWEEN on Keyword, Int, Double and Datetime; and, beyond
// Temporal, no ordering comparison of Bool), a GROUP BY other than ExecutionStatus or in a
// list, an ORDER BY on Text or KeywordList (or any when !allow_order_by), or beyond
// kMaxSqlNesting or kMaxQueryParams.
absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    const ParsedQuery& query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options);

// ParseVisibilityQuery, then CompileVisibilityQuery.
absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    absl::string_view query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options);

}  // namespace almanac::persistence
