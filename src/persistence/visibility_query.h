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
// kInvalidArgument with the text Temporal's server (1.32, SQL visibility) gives for it where it
// has one, led by "invalid query: " as Temporal's frontend answers it (e.g. "invalid query:
// invalid search attribute: Foo"), and the failures come in Temporal's order: syntax errors
// first, then a LIMIT clause, then the filter's conditions left to right (for each: the
// attribute, then its values, then the operator), then GROUP BY, then ORDER BY.
//
// The language, as Temporal's SQL visibility accepts it:
//   - comparisons `=`, `!=` (also `<>`), `<`, `<=`, `>`, `>=` of an attribute and a literal;
//     `[NOT] IN (v, ...)`, `[NOT] BETWEEN a AND b`, `[NOT] STARTS_WITH 'prefix'`,
//     `IS [NOT] NULL`; `AND` (also `&&`), `OR` (also `||`), `NOT`, parentheses, with SQL's
//     precedence (NOT over AND over OR).
//   - literals: strings in single or double quotes (a doubled quote or a backslash escapes,
//     as MySQL's \0 \b \n \r \t \Z \\ \' \"; a backslash before any other character is that
//     character), integers (signs before them fold in; one beyond int64 reads as a decimal),
//     decimals (1.5, .5, 1e3, and -1.5), TRUE and FALSE. Against a Datetime: RFC 3339 text
//     ('2021-08-22T15:04:05.5+02:00') or integer nanoseconds since the epoch; against
//     ExecutionStatus: 'Running', 'WORKFLOW_EXECUTION_STATUS_RUNNING' or the number; against
//     ExecutionDuration: integer nanoseconds, or text as nanoseconds, a Go duration with
//     Temporal's "d" ('1h30m', '1.5s', '2d') or 'hh:mm:ss'.
//   - attribute names as identifiers ([A-Za-z_@][A-Za-z0-9_@]*) or in backquotes (`a b`);
//     keywords are case-insensitive, attribute names case-sensitive (but a name that is one of
//     the SQL parser's non-reserved keywords, such as Status or Date, reads lower-cased unless
//     backquoted, and backquotes inside a backquoted name are dropped, as Temporal does).
//   - after the filter, `GROUP BY ExecutionStatus` (Count groups by it; List and Scan accept
//     and ignore it) and `ORDER BY attr [ASC|DESC], ...`; a trailing `;`, `FOR UPDATE` or
//     `LOCK IN SHARE MODE` is ignored; comments (--, #, //, /* */) are skipped.
//
// Syntax errors are reported as Temporal reports them: its parser reads
// "select * from table1 where <the query trimmed of blanks>" ("select * from table1 <query>"
// when the trimmed query starts with "order by" or "group by", one space, in any case), and
// reports "syntax error at position N" where N is the 1-based offset, in that text, of the
// character after the offending token (the whole text's length + 1 at its end), followed by
// " near '<token>'" when the token has a text: an identifier as written, a keyword
// lower-cased, a string's or number's text; none for punctuation, operators or the end.
// The parser follows the grammar of Temporal's SQL parser (vitess's, with STARTS_WITH) for
// expressions, so that it accepts what Temporal parses (arithmetic, function calls, LIKE,
// REGEXP, IS TRUE, tuples, bind variables, qualified names ...) and refuses it afterwards with
// Temporal's message ("invalid expression: unexpected value type *sqlparser.BinaryExpr"); it
// does not parse subqueries, CASE, INTERVAL, EXISTS, COLLATE or the functions that are SQL
// keywords (LEFT(...), CAST(...)), which Temporal's parser accepts, nor UNION.
//
// Where this differs from Temporal's server on purpose, refusing what it runs wrongly or
// fails to run: a HAVING clause ("operation is not supported: 'HAVING' clause"; Temporal
// ignores it, condition and all); x'..' and b'..' literals, which Temporal reads as decimal
// digits (x'10' is 10), and a list where one value belongs (`X = (1, 2)`, which Temporal's
// store fails to run), both refused once the rest of the query is checked; NUL in a string;
// an ExecutionStatus number beyond the enum (Temporal truncates it to 32 bits); more than
// kMaxQueryConditions conditions or kMaxQueryParams values; Count's GROUP BY
// TemporalNamespaceDivision, which our store cannot group by. Text values of no token
// ('!!!') are taken (matching nothing), as Temporal takes them.
//
// Storage the compiler assumes (the visibility store's migration must match it):
//
//   visibility, one row per run, read as `FROM visibility` (no alias: the side-table
//   subqueries correlate on visibility.namespace_id and visibility.run_id). Besides today's
//   columns (namespace_id, run_id, workflow_id, workflow_type, task_queue, status INTEGER,
//   start_time, execution_time, close_time NULL while open; times in microseconds since the
//   Unix epoch) it holds, all written only once the run closes (NULL while it is open), as
//   Temporal writes them:
//     history_length          BIGINT NULL
//     execution_duration      BIGINT NULL   nanoseconds from execution_time to close_time
//     state_transition_count  BIGINT NULL
//     history_size_bytes      BIGINT NULL
//   and
//     parent_workflow_id      TEXT NULL     (NULL for a run without a parent)
//     parent_run_id           TEXT NULL
//     root_workflow_id        TEXT NULL
//     root_run_id             TEXT NULL
//     namespace_division      TEXT NULL     TemporalNamespaceDivision (schedules' rows)
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
// Semantics. A comparison on an attribute or column that is not set is UNKNOWN, as SQL's NULL
// column is in Temporal's SQL visibility, so neither `X = 1` nor `X != 1` nor `NOT X = 1`
// matches a run without X; only IS NULL does. That holds for the columns a running run does
// not have yet too: `HistoryLength <= 2`, `ExecutionDuration < '1h'` or `CloseTime < t`
// match no running run. The compiler pushes NOT down to the conditions (De Morgan, exact in
// three-valued logic) so that a side-table condition keeps this meaning.
// KeywordList and Text are the exception, as they are full-text matches in Temporal's SQL
// stores: KeywordList `=` means "contains", IN "contains any of the values"; Text `=` matches
// when any token of the value is a token of the attribute (Temporal's OR matching); and
// their `!=` and NOT IN match every run that does not match `=` or IN, runs without the
// attribute included (so `NOT X = v` is `X != v` for them as well). A Text value of no token
// at all ('!!!') matches nothing with `=` and everything with `!=`; one of nothing but
// spaces is refused, as Temporal refuses it.
// STARTS_WITH is case-sensitive on both databases. CloseTime compares its column as it is, so
// that `CloseTime > t` matches closed runs only.
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

// A value Temporal refuses whatever attribute it is compared with: NULL, a column name, an
// expression (1 + 1, now(), (1)), a number that does not parse (0x1F, 1e999) ... The parser
// keeps it with the message, which the compiler reports once the attribute it is compared with
// has resolved, as Temporal does.
struct QueryRefusedValue {
  std::string message;  // after "invalid query: "
  bool operator==(const QueryRefusedValue&) const = default;
};

// A sign before a number that the parser does not fold into it (-1.5, - x'10'; -5 is just -5):
// Temporal checks the number as written against the attribute, then applies the sign, which
// only a number attribute takes.
struct QuerySignedNumber {
  std::variant<int64_t, double> number;  // without the sign
  bool negative = false;
  std::string text;  // as Temporal prints the expression ("-1.5", "-X'10'"), for its refusal
  bool operator==(const QuerySignedNumber&) const = default;
};

// A literal as written: a string, an integer, a decimal or a boolean (or one of the above).
// What it means (a time, a status, a duration) is decided against the attribute it is compared
// with.
using QueryLiteral =
    std::variant<std::string, int64_t, double, bool, QuerySignedNumber, QueryRefusedValue>;

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
  kRegexp,
  kNotRegexp,
  kNullSafeEqual,  // <=>
  kIsTrue,
  kIsNotTrue,
  kIsFalse,
  kIsNotFalse,
};

// The operator as Temporal's messages spell it: "=", "!=", "IN", "NOT STARTS_WITH", ...
absl::string_view QueryOpName(QueryOp op);

struct QueryNode {
  // kRefused: an expression Temporal parses but refuses (a bare attribute name, a comparison
  // whose left side is not an attribute, a bare literal, ...), with its message.
  enum class Kind { kAnd, kOr, kNot, kCondition, kRefused };
  Kind kind = Kind::kCondition;
  // kAnd and kOr: two or more operands; kNot: one.
  std::vector<QueryNode> children;
  // kCondition: `attribute op values`. values holds one literal for a comparison, LIKE or
  // STARTS_WITH, two for BETWEEN, one or more for IN, none for IS [NOT] NULL/TRUE/FALSE.
  std::string attribute;  // as Temporal resolves it: backquotes dropped
  QueryOp op = QueryOp::kEqual;
  std::vector<QueryLiteral> values;
  // A list (a, b) where one value belongs (`X = (a, b)`, BETWEEN (a, b) AND c): values holds its
  // elements, checked as values.
  bool row_value = false;
  // What the compiler refuses the condition for once nothing else in the query is wrong, where
  // Temporal goes on and fails later or, worse, runs it: a row value (its SQL store fails it),
  // a hex or bit literal (x'10', which Temporal reads as the number 10).
  std::string deferred_refusal;
  std::string refusal;  // kRefused: the message, after "invalid query: "
};

// A GROUP BY or ORDER BY term: an attribute name, or an expression that is not one, refused
// (refusal non-empty) when the compiler reaches it.
struct QueryClauseTerm {
  std::string attribute;
  bool descending = false;  // ORDER BY ... DESC
  std::string refusal;
};

struct ParsedQuery {
  std::optional<QueryNode> where;  // absent for an empty filter
  std::vector<QueryClauseTerm> group_by;
  std::vector<QueryClauseTerm> order_by;
};

// Deepest nesting of parentheses, NOTs and unary operators the parser accepts (the limit of
// Temporal's parser).
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
// position N near 'x'", counted as Temporal counts, above), nesting beyond kMaxQueryNesting
// ("max nesting level reached at position N"), a tree deeper than Temporal's parser allows
// ("max ast depth reached"), text that is not UTF-8, more than kMaxQueryConditions conditions
// or an IN list longer than kMaxQueryParams, and then for a LIMIT clause ("operation is not
// supported: 'LIMIT' clause") or a HAVING clause (which Temporal ignores). What Temporal
// refuses only once it resolves attributes is kept in the tree (QueryRefusedValue,
// QueryNode::kRefused, QueryClauseTerm::refusal) for the compiler to report in order.
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
// TemporalScheduledById). Fails with kInvalidArgument: "invalid query: invalid search
// attribute: X".
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
  // ListWorkflowExecutions, ScanWorkflowExecutions: ORDER BY; GROUP BY checked as Temporal
  // checks it (GROUP BY ExecutionStatus or TemporalNamespaceDivision), then ignored.
  kList,
  // CountWorkflowExecutions: GROUP BY ExecutionStatus; ORDER BY checked, not emitted.
  kCount,
};

struct VisibilityQueryOptions {
  Dialect dialect = Dialect::kSqlite;
  VisibilityQueryKind kind = VisibilityQueryKind::kList;
  // The number of the first placeholder the compiled SQL uses ($N), so that the store can
  // number its own parameters (the namespace, a page token's keys) before the query's. >= 1.
  int first_placeholder = 1;
  // Temporal's SQL visibility refuses ORDER BY ("operation is not supported: 'ORDER BY'
  // clause", once its terms are checked: an unknown attribute or a Text one is refused as
  // such first); Elasticsearch visibility allows it. False gives the SQL behaviour.
  bool allow_order_by = true;
  // Temporal's default for workflow lists and counts: a query that names no
  // TemporalNamespaceDivision matches only runs without one (so schedules, whose rows carry
  // the division "TemporalScheduler", stay out of workflow lists).
  bool default_division = false;
  // ListSchedules: ScheduleId's text values get this prefix (the schedule rows' workflow ids
  // are "temporal-sys-scheduler:<schedule id>"). Empty: ScheduleId is WorkflowId as it is.
  std::string schedule_id_prefix;
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

// Resolves, type-checks and compiles a parsed query. Fails with kInvalidArgument, in Temporal's
// order and words, for what the parser kept as refused, an unknown attribute, a literal of
// the wrong type or that does not parse as the attribute's (a time in RFC 3339, an
// ExecutionStatus name or number, a duration), an operator the attribute's type does not
// support (Temporal's rules: STARTS_WITH on Keyword only, and not on ExecutionStatus, which is
// stored as its number; Text takes = and != only; KeywordList =, !=, IN and NOT IN; BETWEEN
// on Keyword, Int, Double and Datetime; LIKE, REGEXP, <=> and IS TRUE/FALSE on none), a Text
// value of nothing but spaces, a GROUP BY of more than one term or of another attribute than
// ExecutionStatus (or, in a list, TemporalNamespaceDivision), an ORDER BY on Text (and, when
// allow_order_by, on KeywordList; when not, any ORDER BY), or beyond kMaxSqlNesting or
// kMaxQueryParams.
absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    const ParsedQuery& query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options);

// ParseVisibilityQuery, then CompileVisibilityQuery.
absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    absl::string_view query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options);

}  // namespace almanac::persistence
