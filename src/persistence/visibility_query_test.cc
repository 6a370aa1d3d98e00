// The visibility query language: the parser's trees, the compiler's exact SQL and parameters,
// the errors (in Temporal's words), the meaning of compiled queries run on real databases
// (SQLite always; PostgreSQL when ALMANAC_TEST_POSTGRES=host:port:user:database is set, as
// scripts/test.sh does), and a seeded fuzz test.

#include "persistence/visibility_query.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"

namespace almanac::persistence {
namespace {

namespace enums = temporal::api::enums::v1;

// ---------------------------------------------------------------------------------------------
// Helpers.

// A string between double quotes: '"', '\\' and control characters escaped, the rest as is.
std::string Quoted(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\", std::string(1, c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", c));
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

std::string ShowLiteral(const QueryLiteral& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return Quoted(*s);
  if (const auto* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  if (const auto* d = std::get_if<double>(&v)) return absl::StrCat("dbl:", *d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "TRUE" : "FALSE";
  if (const auto* n = std::get_if<QuerySignedNumber>(&v)) {
    return absl::StrCat(n->negative ? "-" : "+",
                        std::visit([](auto x) { return ShowLiteral(QueryLiteral(x)); }, n->number),
                        "{", n->text, "}");
  }
  return absl::StrCat("!{", std::get<QueryRefusedValue>(v).message, "}");
}

// The tree as an s-expression: (AND a b), (NOT a), (= attr value).
std::string Show(const QueryNode& n) {
  switch (n.kind) {
    case QueryNode::Kind::kAnd:
    case QueryNode::Kind::kOr: {
      std::vector<std::string> parts;
      for (const QueryNode& c : n.children) parts.push_back(Show(c));
      return absl::StrCat("(", n.kind == QueryNode::Kind::kAnd ? "AND " : "OR ",
                          absl::StrJoin(parts, " "), ")");
    }
    case QueryNode::Kind::kNot:
      return absl::StrCat("(NOT ", Show(n.children.front()), ")");
    case QueryNode::Kind::kCondition: {
      std::string out = absl::StrCat("(", QueryOpName(n.op), " ", n.attribute);
      for (const QueryLiteral& v : n.values) absl::StrAppend(&out, " ", ShowLiteral(v));
      if (n.row_value) out += " ROW";
      if (!n.deferred_refusal.empty()) absl::StrAppend(&out, " LATER{", n.deferred_refusal, "}");
      return out + ")";
    }
    case QueryNode::Kind::kRefused:
      return absl::StrCat("!{", n.refusal, "}");
  }
  return "?";
}

std::string Show(const QueryClauseTerm& t) {
  return t.refusal.empty() ? t.attribute : absl::StrCat("!{", t.refusal, "}");
}

std::string Show(const ParsedQuery& q) {
  std::string out = q.where.has_value() ? Show(*q.where) : "-";
  for (const QueryClauseTerm& t : q.group_by) absl::StrAppend(&out, " GROUP ", Show(t));
  for (const QueryClauseTerm& t : q.order_by) {
    absl::StrAppend(&out, " ORDER ", Show(t), t.descending ? " DESC" : "");
  }
  return out;
}

std::string ShowParams(const std::vector<SqlValue>& params) {
  std::vector<std::string> parts;
  for (const SqlValue& p : params) {
    if (const auto* i = std::get_if<int64_t>(&p)) {
      parts.push_back(absl::StrCat(*i));
    } else if (const auto* s = std::get_if<std::string>(&p)) {
      parts.push_back(absl::StrCat("'", absl::CHexEscape(*s), "'"));
    } else {
      parts.push_back("?");
    }
  }
  return absl::StrJoin(parts, ", ");
}

SearchAttributeSchema TestSchema() {
  SearchAttributeSchema schema;
  schema.custom = {
      {"CustomKeywordField", enums::INDEXED_VALUE_TYPE_KEYWORD},
      {"CustomTextField", enums::INDEXED_VALUE_TYPE_TEXT},
      {"CustomIntField", enums::INDEXED_VALUE_TYPE_INT},
      {"CustomDoubleField", enums::INDEXED_VALUE_TYPE_DOUBLE},
      {"CustomBoolField", enums::INDEXED_VALUE_TYPE_BOOL},
      {"CustomDatetimeField", enums::INDEXED_VALUE_TYPE_DATETIME},
      {"CustomKeywordListField", enums::INDEXED_VALUE_TYPE_KEYWORD_LIST},
      {"Custom Field", enums::INDEXED_VALUE_TYPE_KEYWORD},
  };
  return schema;
}

VisibilityQueryOptions Options(Dialect dialect = Dialect::kSqlite,
                               VisibilityQueryKind kind = VisibilityQueryKind::kList) {
  VisibilityQueryOptions o;
  o.dialect = dialect;
  o.kind = kind;
  return o;
}

constexpr absl::string_view kDefaultOrder =
    "COALESCE(close_time, 9223372036854775807) DESC, start_time DESC, run_id";
constexpr absl::string_view kSide =
    "SELECT 1 FROM visibility_search_attributes sa WHERE sa.namespace_id = "
    "visibility.namespace_id AND sa.run_id = visibility.run_id AND sa.name = ";

// ---------------------------------------------------------------------------------------------
// Parser.

struct ParseCase {
  const char* query;
  const char* tree;
};
void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.query; }

class VisibilityQueryParseTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(VisibilityQueryParseTest, Tree) {
  absl::StatusOr<ParsedQuery> q = ParseVisibilityQuery(GetParam().query);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(Show(*q), GetParam().tree);
}

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryOperators, VisibilityQueryParseTest,
    ::testing::Values(
        ParseCase{"a = 1", "(= a 1)"}, ParseCase{"a != 1", "(!= a 1)"},
        ParseCase{"a <> 1", "(!= a 1)"}, ParseCase{"a < 1", "(< a 1)"},
        ParseCase{"a <= 1", "(<= a 1)"}, ParseCase{"a > 1", "(> a 1)"},
        ParseCase{"a >= 1", "(>= a 1)"}, ParseCase{"a<=>1", "(<=> a 1)"},
        ParseCase{"a=1", "(= a 1)"},
        ParseCase{"a in (1, 'x', true)", "(IN a 1 \"x\" TRUE)"},
        ParseCase{"a IN ('x')", "(IN a \"x\")"},
        ParseCase{"a not in (1,2)", "(NOT IN a 1 2)"},
        ParseCase{"a between 1 and 2", "(BETWEEN a 1 2)"},
        ParseCase{"a NOT BETWEEN 'x' AND 'y'", "(NOT BETWEEN a \"x\" \"y\")"},
        ParseCase{"a starts_with 'x'", "(STARTS_WITH a \"x\")"},
        ParseCase{"a STARTS_WITH \"x\"", "(STARTS_WITH a \"x\")"},
        ParseCase{"a Not Starts_With 'x'", "(NOT STARTS_WITH a \"x\")"},
        ParseCase{"a is null", "(IS NULL a)"}, ParseCase{"a IS NOT NULL", "(IS NOT NULL a)"},
        ParseCase{"a like 'x%'", "(LIKE a \"x%\")"},
        ParseCase{"a not like 'x%'", "(NOT LIKE a \"x%\")"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryPrecedence, VisibilityQueryParseTest,
    ::testing::Values(
        ParseCase{"a = 1 OR b = 2 AND c = 3", "(OR (= a 1) (AND (= b 2) (= c 3)))"},
        ParseCase{"a = 1 AND b = 2 OR c = 3", "(OR (AND (= a 1) (= b 2)) (= c 3))"},
        ParseCase{"(a = 1 OR b = 2) AND c = 3", "(AND (OR (= a 1) (= b 2)) (= c 3))"},
        ParseCase{"a = 1 AND b = 2 AND c = 3", "(AND (= a 1) (= b 2) (= c 3))"},
        ParseCase{"a = 1 or b = 2 Or c = 3", "(OR (= a 1) (= b 2) (= c 3))"},
        ParseCase{"a = 1 && b = 2 || c = 3", "(OR (AND (= a 1) (= b 2)) (= c 3))"},
        ParseCase{"NOT a = 1 AND b = 2", "(AND (NOT (= a 1)) (= b 2))"},
        ParseCase{"not (a = 1 and b = 2)", "(NOT (AND (= a 1) (= b 2)))"},
        ParseCase{"NOT NOT a = 1", "(NOT (NOT (= a 1)))"},
        ParseCase{"((a = 1))", "(= a 1)"},
        ParseCase{"a between 1 and 2 and b = 3", "(AND (BETWEEN a 1 2) (= b 3))"},
        ParseCase{"a = 1 AND (b = 2 OR (c = 3 AND NOT d IS NULL))",
                  "(AND (= a 1) (OR (= b 2) (AND (= c 3) (NOT (IS NULL d)))))"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryLiterals, VisibilityQueryParseTest,
    ::testing::Values(
        ParseCase{"a = 'it''s'", "(= a \"it's\")"},
        ParseCase{"a = \"say \"\"hi\"\"\"", "(= a \"say \\\"hi\\\"\")"},
        ParseCase{"a = \"it's\"", "(= a \"it's\")"},
        ParseCase{"a = 'it\\'s'", "(= a \"it's\")"},
        ParseCase{"a = 'tab\\there\\n'", "(= a \"tab\\there\\n\")"},
        ParseCase{"a = 'c:\\\\dir'", "(= a \"c:\\\\dir\")"},
        ParseCase{"a = '\\q\\%'", "(= a \"q%\")"},
        ParseCase{"a = ''", "(= a \"\")"},
        ParseCase{"a = '\xc3\xa9t\xc3\xa9'", "(= a \"\xc3\xa9t\xc3\xa9\")"},
        ParseCase{"a = 'x -- not a comment'", "(= a \"x -- not a comment\")"},
        ParseCase{"a = -5", "(= a -5)"}, ParseCase{"a = - -5", "(= a 5)"},
        ParseCase{"a = +5", "(= a 5)"}, ParseCase{"a = 1.5", "(= a dbl:1.5)"},
        ParseCase{"a = .5", "(= a dbl:0.5)"}, ParseCase{"a = 1e3", "(= a dbl:1000)"},
        ParseCase{"a = 2.5E-1", "(= a dbl:0.25)"},
        // A sign before anything but an integer stays an operator, applied after the check.
        ParseCase{"a = -1.5", "(= a -dbl:1.5{-1.5})"},
        ParseCase{"a = - - -1", "(= a -1)"}, ParseCase{"a = + -1", "(= a -1)"},
        ParseCase{"a = 1.", "(= a dbl:1)"},
        ParseCase{"a = 9223372036854775807", "(= a 9223372036854775807)"},
        ParseCase{"a = -9223372036854775808", "(= a -9223372036854775808)"},
        ParseCase{"a = 9223372036854775808", "(= a dbl:9.22337e+18)"},
        ParseCase{"a = TRUE", "(= a TRUE)"}, ParseCase{"a = false", "(= a FALSE)"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryNamesAndClauses, VisibilityQueryParseTest,
    ::testing::Values(
        ParseCase{"`Custom Field` = 1", "(= Custom Field 1)"},
        // Temporal drops every backquote of a name, doubled ones inside it too.
        ParseCase{"`a``b` = 1", "(= ab 1)"}, ParseCase{"`and` = 1", "(= and 1)"},
        ParseCase{"_x@1 = 1", "(= _x@1 1)"}, ParseCase{"", "-"}, ParseCase{"  \n\t ", "-"},
        ParseCase{"a = 1 -- trailing", "(= a 1)"}, ParseCase{"/* c */ a = 1 # x", "(= a 1)"},
        ParseCase{"order by a desc, b ASC, c", "- ORDER a DESC ORDER b ORDER c"},
        ParseCase{"GROUP BY ExecutionStatus", "- GROUP ExecutionStatus"},
        ParseCase{"a = 1 group by b order by c", "(= a 1) GROUP b ORDER c"},
        ParseCase{"a = 1 ORDER BY b", "(= a 1) ORDER b"},
        ParseCase{"a = 1 // trailing", "(= a 1)"},
        ParseCase{"\v a = 1 \xc2\xa0", "(= a 1)"},  // Go's TrimSpace
        ParseCase{"a = 1;", "(= a 1)"}, ParseCase{"a = 1 FOR UPDATE", "(= a 1)"},
        ParseCase{"a = 1 lock in share mode", "(= a 1)"},
        // A name that is a non-reserved keyword of the parser reads lower-cased.
        ParseCase{"Status = 1 AND `Date` = 2", "(AND (= status 1) (= Date 2))"},
        ParseCase{"a.b = 1 OR a.`select`.c = 2", "(OR (= a.b 1) (= a.select.c 2))"},
        ParseCase{"a IN ('x') ORDER BY c, `d e` DESC", "(IN a \"x\") ORDER c ORDER d e DESC"}));

// What Temporal's parser reads but its converter refuses is kept, to be refused in order.
INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryRefusedLater, VisibilityQueryParseTest,
    ::testing::Values(
        ParseCase{"a", "!{invalid expression: incomplete expression}"},
        ParseCase{"a AND b = 1", "(AND !{invalid expression: incomplete expression} (= b 1))"},
        ParseCase{"1", "!{operation is not supported: expression of type *sqlparser.SQLVal}"},
        ParseCase{"NOT (true)",
                  "(NOT !{operation is not supported: expression of type sqlparser.BoolVal})"},
        ParseCase{"now()", "!{operation is not supported: function expression}"},
        ParseCase{"(a = 1, b = 2)",
                  "!{operation is not supported: expression of type sqlparser.ValTuple}"},
        ParseCase{"'x' = a",
                  "!{invalid expression: must be a column name but was *sqlparser.SQLVal}"},
        ParseCase{"count(*) > 1",
                  "!{invalid expression: must be a column name but was *sqlparser.FuncExpr}"},
        ParseCase{"(a = 1) = 2",
                  "!{invalid expression: must be a column name but was *sqlparser.ParenExpr}"},
        ParseCase{"a = 1 IS NULL",
                  "!{invalid expression: must be a column name but was "
                  "*sqlparser.ComparisonExpr}"},
        ParseCase{"-a BETWEEN 1 AND 2",
                  "!{invalid expression: must be a column name but was *sqlparser.UnaryExpr}"},
        ParseCase{"a = b",
                  "(= a !{operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"b\"?)})"},
        ParseCase{"a = status",
                  "(= a !{operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"`status`\"?)})"},
        ParseCase{"a = NULL", "(= a !{invalid expression: unexpected value type *sqlparser.NullVal})"},
        ParseCase{"a = 1 + 1",
                  "(= a !{invalid expression: unexpected value type *sqlparser.BinaryExpr})"},
        ParseCase{"a IN ((1))",
                  "(IN a !{invalid expression: unexpected value type *sqlparser.ParenExpr})"},
        ParseCase{"a = now()", "(= a !{operation is not supported: nested func})"},
        ParseCase{"a = 0x1F", "(= a !{invalid expression: unable to parse value \"0x1F\"})"},
        // Temporal reads x'10' as 10: refused, but in the end, where Temporal would run it.
        ParseCase{"a = x'10'",
                  "(= a 10 LATER{invalid expression: unable to parse value \"X'10'\"})"},
        ParseCase{"a = 1e", "(= a !{invalid expression: unable to parse value \"1e\"})"},
        ParseCase{"a = 1e999", "(= a !{invalid expression: unable to parse value \"1e999\"})"},
        ParseCase{"a = ? OR a = :x",
                  "(OR (= a !{invalid expression: unable to parse value \":v1\"}) (= a "
                  "!{invalid expression: unable to parse value \":x\"}))"},
        ParseCase{"a IN ::list",
                  "(IN a !{invalid expression: unexpected value type sqlparser.ListArg})"},
        ParseCase{"a = -'it''s'",
                  "(= a !{invalid expression: unary operator not supported in \"-'it\\\\'s'\"})"},
        ParseCase{"a = -(1)",
                  "(= a !{invalid expression: unary operator not supported in \"-(1)\"})"},
        ParseCase{"a = ~1", "(= a !{operation is not supported: unary operator \"~\"})"},
        ParseCase{"a = 'x\\0y'",
                  "(= a !{invalid expression: a string value contains a NUL character})"},
        ParseCase{"a = (1, 'x') OR a BETWEEN (1, 2) AND 3",
                  "(OR (= a 1 \"x\" ROW LATER{invalid expression: unexpected value type "
                  "sqlparser.ValTuple}) (BETWEEN a 1 2 3 ROW LATER{invalid expression: unexpected "
                  "value type sqlparser.ValTuple}))"},
        ParseCase{"a IS TRUE OR a IS NOT FALSE", "(OR (IS TRUE a) (IS NOT FALSE a))"},
        ParseCase{"a REGEXP 'x' OR a NOT LIKE 'y' ESCAPE '!'",
                  "(OR (REGEXP a \"x\") (NOT LIKE a \"y\"))"},
        ParseCase{"GROUP BY 1, ExecutionStatus",
                  "- GROUP !{invalid expression: must be a column name but was *sqlparser.SQLVal} "
                  "GROUP ExecutionStatus"},
        ParseCase{"ORDER BY a + 1 DESC",
                  "- ORDER !{invalid expression: must be a column name but was "
                  "*sqlparser.BinaryExpr} DESC"}));

struct ErrorCase {
  const char* query;
  const char* message;
};
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.query; }

class VisibilityQueryParseErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(VisibilityQueryParseErrorTest, Message) {
  absl::StatusOr<ParsedQuery> q = ParseVisibilityQuery(GetParam().query);
  ASSERT_FALSE(q.ok()) << Show(*q);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.status().message(), GetParam().message);
}

// Syntax errors where and as Temporal's parser reports them (each checked against Temporal's
// dev server): it reads "select * from table1 where " (27 characters; "select * from table1 "
// before ORDER BY or GROUP BY) and then the query trimmed, and reports the position just past
// the offending token, with the token's text when it has one (keywords lower-cased).
INSTANTIATE_TEST_SUITE_P(
    VisibilityQuerySyntax, VisibilityQueryParseErrorTest,
    ::testing::Values(
        ErrorCase{"a = ", "invalid query: malformed SQL query: syntax error at position 31"},
        ErrorCase{"(a = 1", "invalid query: malformed SQL query: syntax error at position 34"},
        ErrorCase{"a = 1)", "invalid query: malformed SQL query: syntax error at position 34"},
        ErrorCase{"a = 1 b = 2",
                  "invalid query: malformed SQL query: syntax error at position 35 near 'b'"},
        ErrorCase{"a = 1 = 2", "invalid query: malformed SQL query: syntax error at position 35"},
        ErrorCase{"a = 1 AND", "invalid query: malformed SQL query: syntax error at position 37"},
        ErrorCase{"a ! = 1", "invalid query: malformed SQL query: syntax error at position 31"},
        ErrorCase{"a IN ()", "invalid query: malformed SQL query: syntax error at position 35"},
        ErrorCase{"a IN ('x',)", "invalid query: malformed SQL query: syntax error at position 39"},
        ErrorCase{"a IN 'x'",
                  "invalid query: malformed SQL query: syntax error at position 36 near 'x'"},
        ErrorCase{"a BETWEEN 1 OR 2",
                  "invalid query: malformed SQL query: syntax error at position 42 near 'or'"},
        ErrorCase{"a = 'x",
                  "invalid query: malformed SQL query: syntax error at position 34 near 'x'"},
        ErrorCase{"a = '", "invalid query: malformed SQL query: syntax error at position 33"},
        ErrorCase{"`a = 1",
                  "invalid query: malformed SQL query: syntax error at position 34 near 'a = 1'"},
        ErrorCase{"`` = 1", "invalid query: malformed SQL query: syntax error at position 30"},
        ErrorCase{"a = 1 /* x",
                  "invalid query: malformed SQL query: syntax error at position 38 near '/* x'"},
        ErrorCase{"a = 5abc",
                  "invalid query: malformed SQL query: syntax error at position 33 near '5'"},
        ErrorCase{"a = 1ex",
                  "invalid query: malformed SQL query: syntax error at position 34 near '1e'"},
        ErrorCase{"a = 0x1Fg",
                  "invalid query: malformed SQL query: syntax error at position 36 near '0x1F'"},
        ErrorCase{"a IS NOT 1",
                  "invalid query: malformed SQL query: syntax error at position 38 near '1'"},
        ErrorCase{"a IS 'x'",
                  "invalid query: malformed SQL query: syntax error at position 36 near 'x'"},
        ErrorCase{"a IS ''", "invalid query: malformed SQL query: syntax error at position 35"},
        ErrorCase{"a NOT = 1", "invalid query: malformed SQL query: syntax error at position 35"},
        ErrorCase{"NOT", "invalid query: malformed SQL query: syntax error at position 31"},
        ErrorCase{"a = 1 AND NOT",
                  "invalid query: malformed SQL query: syntax error at position 41"},
        ErrorCase{"ORDER BY", "invalid query: malformed SQL query: syntax error at position 30"},
        ErrorCase{"ORDER BY a,", "invalid query: malformed SQL query: syntax error at position 33"},
        ErrorCase{"ORDER BY a GROUP BY b",
                  "invalid query: malformed SQL query: syntax error at position 38 near 'group'"},
        ErrorCase{"a = 1 ORDER a",
                  "invalid query: malformed SQL query: syntax error at position 41 near 'a'"},
        ErrorCase{"a = 1 ORDER BY a LIMIT",
                  "invalid query: malformed SQL query: syntax error at position 50"},
        ErrorCase{"order  by a",
                  "invalid query: malformed SQL query: syntax error at position 33 near 'order'"},
        ErrorCase{"GROUP BY", "invalid query: malformed SQL query: syntax error at position 30"},
        ErrorCase{"group by a order",
                  "invalid query: malformed SQL query: syntax error at position 38"},
        ErrorCase{"a = 1; DROP TABLE visibility",
                  "invalid query: malformed SQL query: syntax error at position 39 near 'drop'"},
        ErrorCase{"a = 1;;", "invalid query: malformed SQL query: syntax error at position 35"},
        ErrorCase{"a = $1",
                  "invalid query: malformed SQL query: syntax error at position 33 near '$'"},
        ErrorCase{"a = :",
                  "invalid query: malformed SQL query: syntax error at position 33 near ':'"},
        ErrorCase{"a.b.c.d = 1", "invalid query: malformed SQL query: syntax error at position 34"},
        ErrorCase{"a.5 = 1",
                  "invalid query: malformed SQL query: syntax error at position 31 near '.5'"},
        ErrorCase{"a = 1 FOR", "invalid query: malformed SQL query: syntax error at position 37"},
        ErrorCase{"a = 1 LOCK IN SHARE",
                  "invalid query: malformed SQL query: syntax error at position 47"},
        ErrorCase{"SELECT * FROM x",
                  "invalid query: malformed SQL query: syntax error at position 34 near 'select'"},
        ErrorCase{"LIMIT 10",
                  "invalid query: malformed SQL query: syntax error at position 33 near 'limit'"},
        ErrorCase{"a = 1 LIMIT", "invalid query: malformed SQL query: syntax error at position 39"},
        ErrorCase{"a = 1 LIMIT 1 OFFSET",
                  "invalid query: malformed SQL query: syntax error at position 48"},
        ErrorCase{"\303\251 = 1",
                  "invalid query: malformed SQL query: syntax error at position 29 near "
                  "'\357\277\275'"},
        ErrorCase{"a\013= 1",
                  "invalid query: malformed SQL query: syntax error at position 30 near '\013'"},
        ErrorCase{"\013 a = ", "invalid query: malformed SQL query: syntax error at position 31"},
        ErrorCase{"a = x'4G'",
                  "invalid query: malformed SQL query: syntax error at position 35 near '4'"},
        ErrorCase{"a = x'123'",
                  "invalid query: malformed SQL query: syntax error at position 38 near '123'"},
        ErrorCase{"a = b'12'",
                  "invalid query: malformed SQL query: syntax error at position 35 near '1'"},
        ErrorCase{"a = 1 UNION SELECT 1",
                  "invalid query: malformed SQL query: syntax error at position 39 near 'union'"},
        ErrorCase{"a BETWEEN 1 AND",
                  "invalid query: malformed SQL query: syntax error at position 43"},
        ErrorCase{"(a = 1, b", "invalid query: malformed SQL query: syntax error at position 37"},
        ErrorCase{"count(* = 1", "invalid query: malformed SQL query: syntax error at position 37"},
        ErrorCase{"a = now(1 x y)",
                  "invalid query: malformed SQL query: syntax error at position 41 near 'y'"},
        ErrorCase{"a = 'it''s' 'b'",
                  "invalid query: malformed SQL query: syntax error at position 43 near 'b'"},
        ErrorCase{"a = \"say \"\"hi\"\" x\" y",
                  "invalid query: malformed SQL query: syntax error at position 48 near 'y'"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryOthers, VisibilityQueryParseErrorTest,
    ::testing::Values(
        ErrorCase{"a = '\xff'", "invalid query: malformed SQL query: the query is not valid UTF-8"},
        ErrorCase{"a = 1 LIMIT 10", "invalid query: operation is not supported: 'LIMIT' clause"},
        ErrorCase{"a = 1 LIMIT 1, 2", "invalid query: operation is not supported: 'LIMIT' clause"},
        ErrorCase{"Nope = b ORDER BY c LIMIT 'x' OFFSET d",
                  "invalid query: operation is not supported: 'LIMIT' clause"},
        // Temporal ignores HAVING, condition and all: refused rather than ignored.
        ErrorCase{"a = 1 HAVING b = 2",
                  "invalid query: operation is not supported: 'HAVING' clause"},
        // UNION makes Temporal's server fail; a syntax error here.
        ErrorCase{"a = 1 UNION SELECT 1",
                  "invalid query: malformed SQL query: syntax error at position 39 near 'union'"}));

// As Temporal's parser counts (each checked against Temporal's dev server): parentheses, NOTs
// and unary operators nest 199 deep at most; the error is at the token that went too deep.
TEST(VisibilityQueryParseLimitsTest, Nesting) {
  auto nested = [](int depth) {
    return absl::StrCat(std::string(depth, '('), "a = 1", std::string(depth, ')'));
  };
  EXPECT_TRUE(ParseVisibilityQuery(nested(kMaxQueryNesting - 1)).ok());
  absl::StatusOr<ParsedQuery> q = ParseVisibilityQuery(nested(kMaxQueryNesting));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: malformed SQL query: max nesting level reached at position 228");
  std::string nots;
  for (int i = 0; i < kMaxQueryNesting - 1; ++i) nots += "NOT ";
  EXPECT_TRUE(ParseVisibilityQuery(nots + "a = 1").ok());
  q = ParseVisibilityQuery(nots + "NOT a = 1");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: malformed SQL query: max nesting level reached at position 827 near "
            "'not'");
  std::string mixed;
  for (int i = 0; i < kMaxQueryNesting / 2; ++i) mixed += "NOT (";
  q = ParseVisibilityQuery(absl::StrCat(mixed, "a = 1", std::string(kMaxQueryNesting / 2, ')')));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: malformed SQL query: max nesting level reached at position 528");
  auto signs = [](int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += "- ";
    return out;
  };
  EXPECT_TRUE(ParseVisibilityQuery(absl::StrCat("a = ", signs(kMaxQueryNesting - 1), "1")).ok());
  q = ParseVisibilityQuery(absl::StrCat("a = ", signs(kMaxQueryNesting), "1"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: malformed SQL query: max nesting level reached at position 431");
  // Deep nesting of a long input must not exhaust the stack either.
  EXPECT_FALSE(ParseVisibilityQuery(std::string(100000, '(')).ok());
  EXPECT_FALSE(ParseVisibilityQuery(absl::StrCat("a = ", signs(100000), "1")).ok());
}

// Temporal's parser refuses a tree 1000 deep; a chain of conditions or of operators is as
// deep as it is long.
TEST(VisibilityQueryParseLimitsTest, Depth) {
  auto chain = [](int n, absl::string_view item, absl::string_view op) {
    std::vector<std::string> parts(n, std::string(item));
    return absl::StrJoin(parts, op);
  };
  constexpr absl::string_view kTooDeep = "invalid query: malformed SQL query: max ast depth reached";
  absl::StatusOr<ParsedQuery> q = ParseVisibilityQuery(chain(996, "WorkflowId = 'a'", " AND "));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), kTooDeep);
  q = ParseVisibilityQuery(absl::StrCat("VisInt = ", chain(997, "1", " + ")));
  ASSERT_TRUE(q.ok()) << q.status();
  q = ParseVisibilityQuery(absl::StrCat("VisInt = ", chain(998, "1", " + ")));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), kTooDeep);
  q = ParseVisibilityQuery(absl::StrCat("VisInt = ", chain(200000, "1", "+")));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), kTooDeep);
}

TEST(VisibilityQueryParseLimitsTest, ConditionsAndValues) {
  auto chain = [](int n) {
    std::vector<std::string> parts(n, "a = 1");
    return absl::StrJoin(parts, " AND ");
  };
  EXPECT_TRUE(ParseVisibilityQuery(chain(kMaxQueryConditions)).ok());
  absl::StatusOr<ParsedQuery> q = ParseVisibilityQuery(chain(kMaxQueryConditions + 1));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "invalid query: invalid expression: more than 500 conditions");

  std::vector<std::string> values(kMaxQueryParams + 1, "1");
  q = ParseVisibilityQuery(absl::StrCat("a IN (", absl::StrJoin(values, ","), ")"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "invalid query: invalid expression: more than 10000 values");
}

// ---------------------------------------------------------------------------------------------
// Compiler: exact SQL.

struct SqlCase {
  std::string query;
  std::string where;
  std::string params;
  std::string order_by = "";  // the default order when empty
};
void PrintTo(const SqlCase& c, std::ostream* os) { *os << c.query; }

class VisibilityQuerySqliteSqlTest : public ::testing::TestWithParam<SqlCase> {};
class VisibilityQueryPostgresSqlTest : public ::testing::TestWithParam<SqlCase> {};

void ExpectSql(const SqlCase& c, Dialect dialect) {
  absl::StatusOr<CompiledVisibilityQuery> q =
      CompileVisibilityQuery(c.query, TestSchema(), Options(dialect));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, c.where);
  EXPECT_EQ(ShowParams(q->params), c.params);
  EXPECT_EQ(q->order_by, c.order_by.empty() ? kDefaultOrder : c.order_by);
  EXPECT_EQ(q->group_by, "");
}

TEST_P(VisibilityQuerySqliteSqlTest, Exact) { ExpectSql(GetParam(), Dialect::kSqlite); }
TEST_P(VisibilityQueryPostgresSqlTest, Exact) { ExpectSql(GetParam(), Dialect::kPostgres); }

const std::string& SideExists(int name_param, absl::string_view rest) {
  static auto* cache = new std::map<std::string, std::string>;
  std::string key = absl::StrCat(name_param, rest);
  auto [it, inserted] = cache->emplace(
      key, absl::StrCat("EXISTS (", kSide, "$", name_param, rest.empty() ? "" : " AND ", rest,
                        ")"));
  return it->second;
}

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryColumns, VisibilityQuerySqliteSqlTest,
    ::testing::Values(
        SqlCase{"", "", ""},
        SqlCase{"WorkflowId = 'wf' AND ExecutionStatus = 'Running'",
                "workflow_id = $1 AND status = $2", "'wf', 1"},
        SqlCase{"WorkflowId = 'a' OR WorkflowId = 'b'", "(workflow_id = $1 OR workflow_id = $2)",
                "'a', 'b'"},
        SqlCase{"(WorkflowType = 'a' OR WorkflowType = 'b') AND StartTime > "
                "'2021-08-22T15:04:05+00:00'",
                "(workflow_type = $1 OR workflow_type = $2) AND start_time > $3",
                "'a', 'b', 1629644645000000"},
        SqlCase{"WorkflowType = 'a' OR WorkflowType = 'b' AND TaskQueue = 'q'",
                "(workflow_type = $1 OR (workflow_type = $2 AND task_queue = $3))",
                "'a', 'b', 'q'"},
        SqlCase{"NOT (WorkflowId = 'a' OR CloseTime IS NULL)",
                "workflow_id <> $1 AND close_time IS NOT NULL", "'a'"},
        SqlCase{"NOT (WorkflowId != 'a' AND NOT RunId = 'r')",
                "(workflow_id = $1 OR run_id = $2)", "'a', 'r'"},
        SqlCase{"NOT HistoryLength < 5 AND NOT HistoryLength > 9",
                "history_length >= $1 AND history_length <= $2", "5, 9"},
        SqlCase{"ExecutionStatus IN ('Completed', 'WORKFLOW_EXECUTION_STATUS_FAILED', 7)",
                "status IN ($1, $2, $3)", "2, 3, 7"},
        SqlCase{"NOT ExecutionStatus IN ('Running')", "status NOT IN ($1)", "1"},
        SqlCase{"ExecutionTime between '2021-08-22T15:04:05+00:00' and "
                "'2021-08-28T15:04:05.123456789-01:30'",
                "execution_time BETWEEN $1 AND $2", "1629644645000000, 1630168445123456"},
        SqlCase{"WorkflowId = 'x';", "workflow_id = $1", "'x'"},
        SqlCase{"NOT StartTime BETWEEN 1000 AND 2999",
                "start_time NOT BETWEEN $1 AND $2", "1, 2"},
        SqlCase{"StartTime > -1", "start_time > $1", "-1"},
        SqlCase{"CloseTime IS NOT NULL AND ParentWorkflowId IS NULL",
                "close_time IS NOT NULL AND parent_workflow_id IS NULL", ""},
        SqlCase{"WorkflowId STARTS_WITH 'a*b?[c]_%'", "workflow_id GLOB $1",
                "'a[*]b[?][[]c]_%*'"},
        SqlCase{"WorkflowType NOT STARTS_WITH 'x'", "workflow_type NOT GLOB $1", "'x*'"},
        SqlCase{"NOT WorkflowType NOT STARTS_WITH 'x'", "workflow_type GLOB $1", "'x*'"},
        SqlCase{"HistoryLength > 2.5", "history_length > CAST($1 AS REAL)", "'2.5'"},
        SqlCase{"HistorySizeBytes >= 0.1", "history_size_bytes >= CAST($1 AS REAL)",
                "'0.10000000000000001'"},
        SqlCase{"ExecutionDuration > '1h30m'", "execution_duration > $1", "5400000000000"},
        SqlCase{"ExecutionDuration < '00:01:30'", "execution_duration < $1", "90000000000"},
        SqlCase{"ExecutionDuration >= 1000", "execution_duration >= $1", "1000"},
        SqlCase{"ExecutionDuration = '2d'", "execution_duration = $1", "172800000000000"},
        SqlCase{"ExecutionDuration = '1.5s'", "execution_duration = $1", "1500000000"},
        SqlCase{"ExecutionDuration = '-300ms'", "execution_duration = $1", "-300000000"},
        SqlCase{"ExecutionDuration = '5'", "execution_duration = $1", "5"},
        SqlCase{"HistoryLength <= 2 OR HistoryLength IS NULL",
                "(history_length <= $1 OR history_length IS NULL)", "2"},
        SqlCase{"StartTime < '2021-08-22T5:04:05+24:00'", "start_time < $1", "1629522245000000"},
        SqlCase{"ExecutionDuration = - 1000", "execution_duration = $1", "-1000"},
        SqlCase{"StateTransitionCount = 3 AND RootRunId = 'r' AND ParentRunId != 'p' AND "
                "RootWorkflowId = 'w'",
                "state_transition_count = $1 AND root_run_id = $2 AND parent_run_id <> $3 AND "
                "root_workflow_id = $4",
                "3, 'r', 'p', 'w'"},
        SqlCase{"ScheduleId = 's' AND TemporalScheduleId = 't' AND TemporalWorkflowId = 'u'",
                "workflow_id = $1 AND workflow_id = $2 AND workflow_id = $3", "'s', 't', 'u'"},
        SqlCase{"WorkflowId = 'x''; DROP TABLE visibility; --'", "workflow_id = $1",
                "'x\\'; DROP TABLE visibility; --'"},
        SqlCase{"WorkflowId = \"a' OR '1'='1\"", "workflow_id = $1", "'a\\' OR \\'1\\'=\\'1'"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQuerySideTable, VisibilityQuerySqliteSqlTest,
    ::testing::Values(
        SqlCase{"CustomIntField >= 5", SideExists(1, "sa.int_value >= $2").c_str(),
                "'CustomIntField', 5"},
        SqlCase{"NOT CustomIntField = 5", SideExists(1, "sa.int_value <> $2").c_str(),
                "'CustomIntField', 5"},
        SqlCase{"CustomIntField IS NULL", absl::StrCat("NOT ", SideExists(1, "")).c_str(),
                "'CustomIntField'"},
        SqlCase{"NOT CustomIntField IS NULL", SideExists(1, "").c_str(), "'CustomIntField'"},
        SqlCase{"CustomDoubleField BETWEEN 1 AND 2.5",
                SideExists(1, "sa.double_value BETWEEN $2 AND CAST($3 AS REAL)").c_str(),
                "'CustomDoubleField', 1, '2.5'"},
        SqlCase{"CustomBoolField = true", SideExists(1, "sa.int_value = $2").c_str(),
                "'CustomBoolField', 1"},
        SqlCase{"CustomBoolField IN (true, false)",
                SideExists(1, "sa.int_value IN ($2, $3)").c_str(), "'CustomBoolField', 1, 0"},
        SqlCase{"CustomDatetimeField < '2024-01-01T00:00:00Z'",
                SideExists(1, "sa.int_value < $2").c_str(),
                "'CustomDatetimeField', 1704067200000000"},
        SqlCase{"CustomKeywordField STARTS_WITH 'ab'", SideExists(1, "sa.text_value GLOB $2").c_str(),
                "'CustomKeywordField', 'ab*'"},
        SqlCase{"`Custom Field` = 'x'", SideExists(1, "sa.text_value = $2").c_str(),
                "'Custom Field', 'x'"},
        SqlCase{"CustomKeywordListField = 'x'", SideExists(1, "sa.text_value = $2").c_str(),
                "'CustomKeywordListField', 'x'"},
        SqlCase{"CustomKeywordListField IN ('x', 'y')",
                SideExists(1, "sa.text_value IN ($2, $3)").c_str(),
                "'CustomKeywordListField', 'x', 'y'"},
        // KeywordList and Text `!=` and NOT IN match runs without the attribute too.
        SqlCase{"CustomKeywordListField != 'x'",
                absl::StrCat("NOT ", SideExists(1, "sa.text_value = $2")).c_str(),
                "'CustomKeywordListField', 'x'"},
        SqlCase{"NOT CustomKeywordListField = 'x'",
                absl::StrCat("NOT ", SideExists(1, "sa.text_value = $2")).c_str(),
                "'CustomKeywordListField', 'x'"},
        SqlCase{"CustomKeywordListField NOT IN ('x', 'y')",
                absl::StrCat("NOT ", SideExists(1, "sa.text_value IN ($2, $3)")).c_str(),
                "'CustomKeywordListField', 'x', 'y'"},
        SqlCase{"CustomKeywordListField IS NULL OR NOT CustomKeywordListField IS NULL",
                absl::StrCat("(NOT ", SideExists(1, ""), " OR ", SideExists(2, ""), ")").c_str(),
                "'CustomKeywordListField', 'CustomKeywordListField'"},
        SqlCase{"NOT CustomKeywordListField NOT IN ('x', 'y')",
                SideExists(1, "sa.text_value IN ($2, $3)").c_str(),
                "'CustomKeywordListField', 'x', 'y'"},
        SqlCase{"WorkflowId = 'w' OR CustomKeywordListField NOT IN ('x')",
                absl::StrCat("(workflow_id = $1 OR NOT ", SideExists(2, "sa.text_value = $3"), ")")
                    .c_str(),
                "'w', 'CustomKeywordListField', 'x'"},
        SqlCase{"CustomTextField = 'Hello, World! hello'",
                SideExists(1, "sa.text_value IN ($2, $3)").c_str(),
                "'CustomTextField', 'hello', 'world'"},
        SqlCase{"CustomTextField = 'word'", SideExists(1, "sa.text_value = $2").c_str(),
                "'CustomTextField', 'word'"},
        SqlCase{"CustomTextField != 'a b'",
                absl::StrCat("NOT ", SideExists(1, "sa.text_value IN ($2, $3)")).c_str(),
                "'CustomTextField', 'a', 'b'"},
        // A value of no token matches nothing, and its negation everything.
        SqlCase{"CustomTextField = '!!!' OR CustomTextField != '...'", "(1 = 0 OR 1 = 1)", ""},
        SqlCase{"NOT CustomTextField = '!!!'", "1 = 1", ""},
        SqlCase{"CustomTextField IS NOT NULL", SideExists(1, "").c_str(), "'CustomTextField'"},
        // A sign before a decimal applies after the check; Temporal orders booleans too.
        SqlCase{"CustomDoubleField = -1.5 AND CustomIntField > - 2.5",
                absl::StrCat(SideExists(1, "sa.double_value = CAST($2 AS REAL)"), " AND ",
                             SideExists(3, "sa.int_value > CAST($4 AS REAL)"))
                    .c_str(),
                "'CustomDoubleField', '-1.5', 'CustomIntField', '-2.5'"},
        SqlCase{"CustomBoolField > false", SideExists(1, "sa.int_value > $2").c_str(),
                "'CustomBoolField', 0"},
        SqlCase{"BuildIds = 'v1' AND SchedulePaused = true AND ScheduledById = 's'",
                absl::StrCat(SideExists(1, "sa.text_value = $2"), " AND ",
                             SideExists(3, "sa.int_value = $4"), " AND ",
                             SideExists(5, "sa.text_value = $6"))
                    .c_str(),
                "'BuildIds', 'v1', 'TemporalSchedulePaused', 1, 'TemporalScheduledById', 's'"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryOrderBy, VisibilityQuerySqliteSqlTest,
    ::testing::Values(
        SqlCase{"ORDER BY StartTime", "", "", "start_time, run_id"},
        SqlCase{"WorkflowId = 'x' ORDER BY CloseTime DESC", "workflow_id = $1", "'x'",
                "close_time DESC NULLS LAST, run_id"},
        SqlCase{"order by ExecutionStatus asc, RunId desc", "", "", "status, run_id DESC"},
        SqlCase{"WorkflowId = 'x' ORDER BY CustomIntField DESC, StartTime", "workflow_id = $1",
                "'x', 'CustomIntField'",
                "(SELECT sa.int_value FROM visibility_search_attributes sa WHERE sa.namespace_id "
                "= visibility.namespace_id AND sa.run_id = visibility.run_id AND sa.name = $2) "
                "DESC NULLS LAST, start_time, run_id"},
        SqlCase{"ORDER BY CustomDoubleField, CustomKeywordField", "",
                "'CustomDoubleField', 'CustomKeywordField'",
                "(SELECT sa.double_value FROM visibility_search_attributes sa WHERE "
                "sa.namespace_id = visibility.namespace_id AND sa.run_id = visibility.run_id AND "
                "sa.name = $1) NULLS LAST, (SELECT sa.text_value FROM "
                "visibility_search_attributes sa WHERE sa.namespace_id = visibility.namespace_id "
                "AND sa.run_id = visibility.run_id AND sa.name = $2) NULLS LAST, run_id"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryDialect, VisibilityQueryPostgresSqlTest,
    ::testing::Values(
        SqlCase{"WorkflowId STARTS_WITH 'a*b_%!'", "workflow_id LIKE $1 ESCAPE '!'",
                "'a*b!_!%!!%'"},
        SqlCase{"NOT WorkflowId STARTS_WITH 'x'", "workflow_id NOT LIKE $1 ESCAPE '!'", "'x%'"},
        SqlCase{"CustomKeywordField NOT STARTS_WITH 'a'",
                SideExists(1, "sa.text_value NOT LIKE $2 ESCAPE '!'").c_str(),
                "'CustomKeywordField', 'a%'"},
        SqlCase{"HistoryLength > 2.5", "history_length > CAST($1 AS DOUBLE PRECISION)",
                "'2.5'"},
        SqlCase{"CustomDoubleField = -1e-7",
                SideExists(1, "sa.double_value = CAST($2 AS DOUBLE PRECISION)").c_str(),
                "'CustomDoubleField', '-9.9999999999999995e-08'"},
        SqlCase{"WorkflowId = 'x' AND ExecutionStatus = 1", "workflow_id = $1 AND status = $2",
                "'x', 1"}));

TEST(VisibilityQueryCompileTest, PostgresPlansAFewSideTableConditionsAsJoins) {
  std::vector<std::string> conditions;
  for (int i = 0; i < 10; ++i) conditions.push_back(absl::StrCat("CustomIntField != ", i));
  conditions.push_back("CustomKeywordListField != 'x'");
  const std::string query = absl::StrJoin(conditions, " AND ");
  absl::StatusOr<CompiledVisibilityQuery> q =
      CompileVisibilityQuery(query, TestSchema(), Options(Dialect::kPostgres));
  ASSERT_TRUE(q.ok()) << q.status();
  // The first eight EXISTS may become semi-joins; the rest stay subplans.
  std::vector<std::string> parts = absl::StrSplit(q->where, "EXISTS (");
  ASSERT_EQ(parts.size(), 12u);
  for (size_t i = 1; i < parts.size(); ++i) {
    EXPECT_EQ(absl::StrContains(parts[i], "OFFSET 0)"), i > 8) << i << ": " << parts[i];
  }
  EXPECT_TRUE(absl::EndsWith(q->where, "sa.text_value = $22 OFFSET 0)")) << q->where;
  q = CompileVisibilityQuery(query, TestSchema(), Options(Dialect::kSqlite));
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(absl::StrContains(q->where, "OFFSET"));
}

TEST(VisibilityQueryCompileTest, FirstPlaceholder) {
  VisibilityQueryOptions options = Options();
  options.first_placeholder = 3;
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(
      "WorkflowId = 'x' AND CustomIntField = 1 ORDER BY CustomKeywordField", TestSchema(),
      options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where,
            absl::StrCat("workflow_id = $3 AND EXISTS (", kSide, "$4 AND sa.int_value = $5)"));
  EXPECT_EQ(ShowParams(q->params), "'x', 'CustomIntField', 1, 'CustomKeywordField'");
  EXPECT_TRUE(absl::StrContains(q->order_by, "sa.name = $6)")) << q->order_by;
  ASSERT_EQ(q->sort_keys.size(), 2u);
  EXPECT_TRUE(q->sort_keys[0].nullable);
  EXPECT_EQ(q->sort_keys[1].sql, "run_id");
}

TEST(VisibilityQueryCompileTest, SortKeys) {
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery("", TestSchema(), Options());
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->sort_keys.size(), 3u);
  EXPECT_EQ(q->sort_keys[0].sql, "COALESCE(close_time, 9223372036854775807)");
  EXPECT_TRUE(q->sort_keys[0].descending);
  EXPECT_FALSE(q->sort_keys[0].nullable);
  EXPECT_EQ(q->sort_keys[1].sql, "start_time");
  EXPECT_TRUE(q->sort_keys[1].descending);
  EXPECT_EQ(q->sort_keys[2].sql, "run_id");
  EXPECT_FALSE(q->sort_keys[2].descending);
}

TEST(VisibilityQueryCompileTest, Count) {
  VisibilityQueryOptions options = Options(Dialect::kSqlite, VisibilityQueryKind::kCount);
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(
      "ExecutionStatus = 'Running' GROUP BY ExecutionStatus", TestSchema(), options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "status = $1");
  EXPECT_EQ(q->group_by, "status");
  EXPECT_EQ(q->order_by, "");
  EXPECT_TRUE(q->sort_keys.empty());
  EXPECT_EQ(ShowParams(q->params), "1");

  // ORDER BY is checked in a count, but needs no SQL and no parameter.
  q = CompileVisibilityQuery("group by ExecutionStatus order by CustomIntField", TestSchema(),
                             options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "");
  EXPECT_EQ(q->group_by, "status");
  EXPECT_EQ(q->order_by, "");
  EXPECT_TRUE(q->params.empty());
  q = CompileVisibilityQuery("ORDER BY CustomTextField", TestSchema(), options);
  EXPECT_FALSE(q.ok());

  q = CompileVisibilityQuery("WorkflowId = 'x'", TestSchema(), options);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->group_by, "");
}

TEST(VisibilityQueryCompileTest, RedundantNestingCostsNothing) {
  const std::string query = absl::StrCat(std::string(kMaxQueryNesting - 1, '('),
                                         "WorkflowId = 'x'", std::string(kMaxQueryNesting - 1, ')'));
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(query, TestSchema(), Options());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "workflow_id = $1");
  std::string nots;
  for (int i = 0; i < kMaxQueryNesting - 2; ++i) nots += "NOT ";  // an even number
  q = CompileVisibilityQuery(nots + "(WorkflowId = 'x' AND RunId = 'y')", TestSchema(), Options());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "workflow_id = $1 AND run_id = $2");
}

TEST(VisibilityQueryCompileTest, ParsedTreeCompilesAsText) {
  absl::StatusOr<ParsedQuery> parsed = ParseVisibilityQuery("WorkflowId = 'a' OR RunId = 'b'");
  ASSERT_TRUE(parsed.ok());
  absl::StatusOr<CompiledVisibilityQuery> q =
      CompileVisibilityQuery(*parsed, TestSchema(), Options());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->where, "(workflow_id = $1 OR run_id = $2)");
}

// ---------------------------------------------------------------------------------------------
// Compiler: errors.

// As the frontend compiles them, with Temporal's SQL visibility's refusal of ORDER BY.
VisibilityQueryOptions AsFrontend(VisibilityQueryKind kind = VisibilityQueryKind::kList) {
  VisibilityQueryOptions o = Options(Dialect::kSqlite, kind);
  o.allow_order_by = false;
  return o;
}

class VisibilityQueryCompileErrorTest : public ::testing::TestWithParam<ErrorCase> {};

// Every message below was checked against Temporal's dev server (1.32), for List and Count
// alike.
TEST_P(VisibilityQueryCompileErrorTest, Message) {
  for (VisibilityQueryKind kind : {VisibilityQueryKind::kList, VisibilityQueryKind::kCount}) {
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(GetParam().query, TestSchema(), AsFrontend(kind));
    ASSERT_FALSE(q.ok()) << q->where;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(q.status().message(), GetParam().message);
  }
}

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryAttributes, VisibilityQueryCompileErrorTest,
    ::testing::Values(
        ErrorCase{"Foo = 1", "invalid query: invalid search attribute: Foo"},
        ErrorCase{"workflowid = 'x'", "invalid query: invalid search attribute: workflowid"},
        ErrorCase{"WorkflowId = 'x' AND TemporalFoo IS NULL",
                  "invalid query: invalid search attribute: TemporalFoo"},
        ErrorCase{"`Custom Keyword` IS NULL",
                  "invalid query: invalid search attribute: Custom Keyword"},
        ErrorCase{"a.b = 1", "invalid query: invalid search attribute: a.b"},
        ErrorCase{"Status = 'x'", "invalid query: invalid search attribute: status"},
        ErrorCase{"Foo = b", "invalid query: invalid search attribute: Foo"},
        ErrorCase{"Foo IN ('a', b)", "invalid query: invalid search attribute: Foo"},
        ErrorCase{"Foo = 1 LIMIT 1", "invalid query: operation is not supported: 'LIMIT' clause"}));

// Values: each checked against the attribute, in order, before the operator.
INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryValues, VisibilityQueryCompileErrorTest,
    ::testing::Values(
        ErrorCase{"CustomIntField = 'x'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomIntField of type Int: \"x\" (type: string)"},
        ErrorCase{"CustomDoubleField = true",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomDoubleField of type Double: true (type: bool)"},
        ErrorCase{"WorkflowId = 123",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "WorkflowId of type Keyword: 123 (type: int64)"},
        ErrorCase{"CustomKeywordListField IN ('a', 1.5)",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomKeywordListField of type KeywordList: 1.5 (type: float64)"},
        ErrorCase{"CustomTextField = 1",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomTextField of type Text: 1 (type: int64)"},
        ErrorCase{"CustomBoolField = 1",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomBoolField of type Bool: 1 (type: int64)"},
        ErrorCase{"CustomBoolField = 'true'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomBoolField of type Bool: \"true\" (type: string)"},
        ErrorCase{"CustomBoolField = -1.5",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomBoolField of type Bool: 1.5 (type: float64)"},
        ErrorCase{"CustomDatetimeField = 1.5",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomDatetimeField of type Datetime: 1.5 (type: float64)"},
        ErrorCase{"CustomKeywordField = 1234567.5",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomKeywordField of type Keyword: 1.2345675e+06 (type: float64)"},
        ErrorCase{"CustomKeywordField = 0.00001",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomKeywordField of type Keyword: 1e-05 (type: float64)"},
        ErrorCase{"CustomKeywordField = -x'10'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomKeywordField of type Keyword: 10 (type: int64)"},
        ErrorCase{"StartTime > '2021-01-01'",
                  "invalid query: invalid expression: unable to parse datetime '2021-01-01'"},
        ErrorCase{"StartTime > '2021-01-01 12:34:56Z'",
                  "invalid query: invalid expression: unable to parse datetime '2021-01-01 "
                  "12:34:56Z'"},
        ErrorCase{"StartTime > '2021-02-29T00:00:00Z'",
                  "invalid query: invalid expression: unable to parse datetime "
                  "'2021-02-29T00:00:00Z'"},
        ErrorCase{"StartTime > '2021-01-01T24:00:00Z'",
                  "invalid query: invalid expression: unable to parse datetime "
                  "'2021-01-01T24:00:00Z'"},
        ErrorCase{"StartTime > '2021-01-01T00:00:00.Z'",
                  "invalid query: invalid expression: unable to parse datetime "
                  "'2021-01-01T00:00:00.Z'"},
        ErrorCase{"StartTime > '2021-01-01T00:00:00+0100'",
                  "invalid query: invalid expression: unable to parse datetime "
                  "'2021-01-01T00:00:00+0100'"},
        ErrorCase{"StartTime > '2021-01-01T00:00:00+25:00'",
                  "invalid query: invalid expression: unable to parse datetime "
                  "'2021-01-01T00:00:00+25:00'"},
        ErrorCase{"StartTime = - x'10'",
                  "invalid query: invalid expression: unary expression \"-X'10'\""},
        ErrorCase{"CustomDatetimeField = -1.5",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomDatetimeField of type Datetime: 1.5 (type: float64)"},
        ErrorCase{"ExecutionStatus = 'Foo'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'Foo'"},
        ErrorCase{"ExecutionStatus = 'running'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'running'"},
        ErrorCase{"ExecutionStatus = 99",
                  "invalid query: invalid expression: invalid ExecutionStatus value 99"},
        ErrorCase{"ExecutionStatus = -1",
                  "invalid query: invalid expression: invalid ExecutionStatus value -1"},
        ErrorCase{"ExecutionStatus = 4294967297",
                  "invalid query: invalid expression: invalid ExecutionStatus value 4294967297"},
        ErrorCase{"ExecutionStatus = 1.5",
                  "invalid query: invalid expression: unexpected value type float64 for search "
                  "attribute ExecutionStatus"},
        ErrorCase{"ExecutionStatus = true",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "ExecutionStatus of type Keyword: true (type: bool)"},
        ErrorCase{"ExecutionStatus = - x'01'",
                  "invalid query: invalid expression: unary expression \"-X'01'\""},
        ErrorCase{"ExecutionDuration > '1x'",
                  "invalid query: invalid expression: invalid duration value for search attribute "
                  "ExecutionDuration: 1x"},
        ErrorCase{"ExecutionDuration > '1:60:00'",
                  "invalid query: invalid expression: invalid duration value for search attribute "
                  "ExecutionDuration: 1:60:00"},
        ErrorCase{"ExecutionDuration > '9999999999h'",
                  "invalid query: invalid expression: invalid duration value for search attribute "
                  "ExecutionDuration: 9999999999h"},
        ErrorCase{"ExecutionDuration > 1.5",
                  "invalid query: invalid expression: unexpected value type float64 for search "
                  "attribute ExecutionDuration"},
        ErrorCase{"ExecutionDuration > true",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "ExecutionDuration of type Int: true (type: bool)"},
        ErrorCase{"CustomTextField = '   '",
                  "invalid query: invalid expression: no tokens found filtering on Text type "
                  "search attribute CustomTextField"},
        ErrorCase{"CustomTextField != ''",
                  "invalid query: invalid expression: no tokens found filtering on Text type "
                  "search attribute CustomTextField"},
        ErrorCase{"CustomTextField > ''",
                  "invalid query: invalid expression: no tokens found filtering on Text type "
                  "search attribute CustomTextField"},
        ErrorCase{"CustomIntField = NULL",
                  "invalid query: invalid expression: unexpected value type *sqlparser.NullVal"},
        ErrorCase{"CustomIntField = CustomIntField",
                  "invalid query: operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"CustomIntField\"?)"},
        ErrorCase{"CustomIntField = `Custom Field`",
                  "invalid query: operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"`Custom Field`\"?)"},
        ErrorCase{"CustomIntField = 1 + 1",
                  "invalid query: invalid expression: unexpected value type *sqlparser.BinaryExpr"},
        ErrorCase{"CustomIntField = (1)",
                  "invalid query: invalid expression: unexpected value type *sqlparser.ParenExpr"},
        ErrorCase{"CustomIntField = now()",
                  "invalid query: operation is not supported: nested func"},
        ErrorCase{"CustomIntField = -'1'",
                  "invalid query: invalid expression: unary operator not supported in \"-'1'\""},
        ErrorCase{"CustomIntField = - -1.5",
                  "invalid query: invalid expression: unary operator not supported in \"- -1.5\""},
        ErrorCase{"CustomIntField = !1",
                  "invalid query: operation is not supported: unary operator \"!\""},
        ErrorCase{"CustomIntField = 0x1F",
                  "invalid query: invalid expression: unable to parse value \"0x1F\""},
        ErrorCase{"CustomIntField = ?",
                  "invalid query: invalid expression: unable to parse value \":v1\""},
        ErrorCase{"CustomIntField IN ::list",
                  "invalid query: invalid expression: unexpected value type sqlparser.ListArg"},
        ErrorCase{"WorkflowId = 'a' AND CustomIntField = 'x' AND Foo = 1",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomIntField of type Int: \"x\" (type: string)"}));

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryOperators, VisibilityQueryCompileErrorTest,
    ::testing::Values(
        ErrorCase{"CustomIntField STARTS_WITH 1",
                  "invalid query: operation is not supported: operator 'STARTS_WITH' not "
                  "supported for Int type search attribute 'CustomIntField'"},
        ErrorCase{"CustomIntField STARTS_WITH '1'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "CustomIntField of type Int: \"1\" (type: string)"},
        ErrorCase{"CustomKeywordListField NOT STARTS_WITH 'a'",
                  "invalid query: operation is not supported: operator 'NOT STARTS_WITH' not "
                  "supported for KeywordList type search attribute 'CustomKeywordListField'"},
        ErrorCase{"ExecutionStatus STARTS_WITH 'Run'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'Run'"},
        ErrorCase{"ExecutionStatus STARTS_WITH 'Running'",
                  "invalid query: invalid expression: right-hand side of \"starts_with\" operator "
                  "must be a literal string (got: Running)"},
        ErrorCase{"ExecutionStatus NOT STARTS_WITH 2",
                  "invalid query: invalid expression: right-hand side of \"not starts_with\" "
                  "operator must be a literal string (got: Completed)"},
        ErrorCase{"CustomTextField IN ('a')",
                  "invalid query: operation is not supported: operator 'IN' not supported for "
                  "Text type search attribute 'CustomTextField'"},
        ErrorCase{"CustomTextField < 'a'",
                  "invalid query: operation is not supported: operator '<' not supported for Text "
                  "type search attribute 'CustomTextField'"},
        ErrorCase{"CustomTextField STARTS_WITH 'a'",
                  "invalid query: operation is not supported: operator 'STARTS_WITH' not "
                  "supported for Text type search attribute 'CustomTextField'"},
        ErrorCase{"CustomKeywordListField >= 'a'",
                  "invalid query: operation is not supported: operator '>=' not supported for "
                  "KeywordList type search attribute 'CustomKeywordListField'"},
        ErrorCase{"WorkflowId LIKE 'a%'",
                  "invalid query: operation is not supported: operator 'LIKE' not supported for "
                  "Keyword type search attribute 'WorkflowId'"},
        ErrorCase{"WorkflowId LIKE 1",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "WorkflowId of type Keyword: 1 (type: int64)"},
        ErrorCase{"CustomIntField NOT LIKE 1",
                  "invalid query: operation is not supported: operator 'NOT LIKE' not supported "
                  "for Int type search attribute 'CustomIntField'"},
        ErrorCase{"WorkflowId <=> 'a'",
                  "invalid query: operation is not supported: operator '<=>' not supported for "
                  "Keyword type search attribute 'WorkflowId'"},
        ErrorCase{"WorkflowId REGEXP 'a'",
                  "invalid query: operation is not supported: operator 'REGEXP' not supported for "
                  "Keyword type search attribute 'WorkflowId'"},
        ErrorCase{"CustomBoolField NOT REGEXP true",
                  "invalid query: operation is not supported: operator 'NOT REGEXP' not supported "
                  "for Bool type search attribute 'CustomBoolField'"},
        ErrorCase{"CustomTextField BETWEEN 'a' AND 'b'",
                  "invalid query: invalid expression: cannot do range condition on search "
                  "attribute 'CustomTextField' of type Text"},
        ErrorCase{"CustomBoolField NOT BETWEEN true AND false",
                  "invalid query: invalid expression: cannot do range condition on search "
                  "attribute 'CustomBoolField' of type Bool"},
        ErrorCase{"CustomKeywordListField BETWEEN 'a' AND 'b'",
                  "invalid query: invalid expression: cannot do range condition on search "
                  "attribute 'CustomKeywordListField' of type KeywordList"},
        ErrorCase{"CustomKeywordListField BETWEEN 1 AND 2",
                  "invalid query: invalid expression: cannot do range condition on search "
                  "attribute 'CustomKeywordListField' of type KeywordList"},
        ErrorCase{"WorkflowId IS TRUE",
                  "invalid query: invalid expression: 'IS' operator can only be used as 'IS NULL' "
                  "or 'IS NOT NULL'"},
        ErrorCase{"CustomIntField IS NOT FALSE",
                  "invalid query: invalid expression: 'IS' operator can only be used as 'IS NULL' "
                  "or 'IS NOT NULL'"},
        ErrorCase{"CustomKeywordListField = ('a', 'b')",
                  "invalid query: invalid expression: unexpected value type (expected string, got "
                  "('a', 'b'))"},
        ErrorCase{"CustomTextField != ('a', 'b')",
                  "invalid query: invalid expression: unexpected value type (expected string, got "
                  "('a', 'b'))"},
        ErrorCase{"CustomKeywordField STARTS_WITH ('a', 'b')",
                  "invalid query: invalid expression: right-hand side of \"starts_with\" operator "
                  "must be a literal string (got: [a b])"},
        ErrorCase{"ExecutionStatus STARTS_WITH (1, 'Failed')",
                  "invalid query: invalid expression: right-hand side of \"starts_with\" operator "
                  "must be a literal string (got: [Running Failed])"},
        ErrorCase{"WorkflowId = 'x' LIMIT 1",
                  "invalid query: operation is not supported: 'LIMIT' clause"}));

// GROUP BY and ORDER BY, checked after the filter; ORDER BY's terms before the clause itself.
INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryClauses, VisibilityQueryCompileErrorTest,
    ::testing::Values(
        ErrorCase{"GROUP BY WorkflowType",
                  "invalid query: operation is not supported: 'GROUP BY' clause is not supported "
                  "for search attribute WorkflowType"},
        ErrorCase{"GROUP BY ExecutionStatus, WorkflowType",
                  "invalid query: operation is not supported: 'GROUP BY' clause supports only a "
                  "single field"},
        ErrorCase{"GROUP BY Nope", "invalid query: invalid search attribute: Nope"},
        ErrorCase{"GROUP BY executionstatus",
                  "invalid query: invalid search attribute: executionstatus"},
        ErrorCase{"GROUP BY 1",
                  "invalid query: invalid expression: must be a column name but was "
                  "*sqlparser.SQLVal"},
        ErrorCase{"GROUP BY (ExecutionStatus)",
                  "invalid query: invalid expression: must be a column name but was "
                  "*sqlparser.ParenExpr"},
        ErrorCase{"Nope = 1 GROUP BY WorkflowType",
                  "invalid query: invalid search attribute: Nope"},
        ErrorCase{"WorkflowId = 'x' GROUP BY ExecutionStatus, Nope",
                  "invalid query: operation is not supported: 'GROUP BY' clause supports only a "
                  "single field"},
        ErrorCase{"ORDER BY StartTime",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"ORDER BY CustomTextField",
                  "invalid query: operation is not supported: unable to sort by search attribute "
                  "type Text"},
        ErrorCase{"ORDER BY StartTime, CustomTextField DESC",
                  "invalid query: operation is not supported: unable to sort by search attribute "
                  "type Text"},
        ErrorCase{"ORDER BY Nope", "invalid query: invalid search attribute: Nope"},
        ErrorCase{"ORDER BY 1",
                  "invalid query: invalid expression: must be a column name but was "
                  "*sqlparser.SQLVal"},
        ErrorCase{"GROUP BY WorkflowType ORDER BY CustomTextField",
                  "invalid query: operation is not supported: 'GROUP BY' clause is not supported "
                  "for search attribute WorkflowType"},
        ErrorCase{"GROUP BY ExecutionStatus ORDER BY CustomTextField",
                  "invalid query: operation is not supported: unable to sort by search attribute "
                  "type Text"},
        ErrorCase{"ORDER BY CustomKeywordListField",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"WorkflowId = (1, 2) ORDER BY StartTime",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "WorkflowId of type Keyword: 1 (type: int64)"},
        ErrorCase{"WorkflowId = x'41' GROUP BY ExecutionStatus",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "WorkflowId of type Keyword: 41 (type: int64)"}));

// Where Temporal goes on and fails running the query (a row value), or runs what it should not
// (x'10' as the number 10), the refusal comes once everything else is checked.
TEST(VisibilityQueryCompileErrorTest, DeferredRefusals) {
  auto message = [](absl::string_view query) {
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(query, TestSchema(), AsFrontend());
    return q.ok() ? std::string("OK") : std::string(q.status().message());
  };
  EXPECT_EQ(message("WorkflowId = ('a', 'b')"),
            "invalid query: invalid expression: unexpected value type sqlparser.ValTuple");
  EXPECT_EQ(message("CustomIntField BETWEEN (1, 2) AND 3"),
            "invalid query: invalid expression: unexpected value type sqlparser.ValTuple");
  EXPECT_EQ(message("CustomIntField IN ((1, 2), 3)"),
            "invalid query: invalid expression: unexpected value type sqlparser.ValTuple");
  EXPECT_EQ(message("CustomIntField = x'10' OR CustomIntField = -b'1'"),
            "invalid query: invalid expression: unable to parse value \"X'10'\"");
  // What Temporal refuses first, whatever comes after.
  EXPECT_EQ(message("WorkflowId = ('a', 'b') ORDER BY StartTime"),
            "invalid query: operation is not supported: 'ORDER BY' clause");
  EXPECT_EQ(message("WorkflowId = ('a', 'b') AND Nope = 1"),
            "invalid query: invalid search attribute: Nope");
  EXPECT_EQ(message("CustomIntField = x'10' GROUP BY WorkflowType"),
            "invalid query: operation is not supported: 'GROUP BY' clause is not supported for "
            "search attribute WorkflowType");
  EXPECT_EQ(message("CustomKeywordField = x'10'"),
            "invalid query: invalid expression: invalid value type for search attribute "
            "CustomKeywordField of type Keyword: 10 (type: int64)");
}

// List and Scan check GROUP BY as Count does, then ignore it; Count groups by status only.
TEST(VisibilityQueryCompileErrorTest, GroupBy) {
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(
      "ExecutionStatus = 'Completed' GROUP BY ExecutionStatus", TestSchema(), AsFrontend());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "status = $1");
  EXPECT_EQ(q->group_by, "");
  EXPECT_EQ(q->order_by, kDefaultOrder);
  q = CompileVisibilityQuery("GROUP BY `TemporalNamespaceDivision`", TestSchema(), AsFrontend());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->group_by, "");

  const VisibilityQueryOptions count = AsFrontend(VisibilityQueryKind::kCount);
  q = CompileVisibilityQuery("GROUP BY ExecutionStatus", TestSchema(), count);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->group_by, "status");
  // Temporal groups counts by TemporalNamespaceDivision too; we cannot.
  q = CompileVisibilityQuery("GROUP BY TemporalNamespaceDivision", TestSchema(), count);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: operation is not supported: 'GROUP BY' clause is not supported for "
            "search attribute TemporalNamespaceDivision");
}

// Workflow lists leave rows with a namespace division (schedules') out unless the query
// names TemporalNamespaceDivision.
TEST(VisibilityQueryCompileTest, DefaultNamespaceDivision) {
  VisibilityQueryOptions options = AsFrontend();
  options.default_division = true;
  auto q = CompileVisibilityQuery("", TestSchema(), options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "namespace_division IS NULL");
  q = CompileVisibilityQuery("WorkflowId = 'a' OR WorkflowId = 'b'", TestSchema(), options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "namespace_division IS NULL AND (workflow_id = $1 OR workflow_id = $2)");
  q = CompileVisibilityQuery("TemporalNamespaceDivision = 'TemporalScheduler'", TestSchema(),
                             options);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->where, "namespace_division = $1");
}

// ListSchedules: ScheduleId compares the schedule rows' workflow ids, behind their prefix.
TEST(VisibilityQueryCompileTest, ScheduleIdPrefix) {
  VisibilityQueryOptions options = AsFrontend();
  options.schedule_id_prefix = "temporal-sys-scheduler:";
  auto q = CompileVisibilityQuery("ScheduleId STARTS_WITH 'nightly'", TestSchema(), options);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->params.size(), 1u);
  EXPECT_EQ(std::get<std::string>(q->params[0]), "temporal-sys-scheduler:nightly*");
}

// With ORDER BY allowed (Elasticsearch's behaviour), a KeywordList cannot order either.
TEST(VisibilityQueryCompileErrorTest, OrderByWhenAllowed) {
  absl::StatusOr<CompiledVisibilityQuery> q =
      CompileVisibilityQuery("ORDER BY BuildIds DESC", TestSchema(), Options());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: operation is not supported: unable to sort by search attribute type "
            "KeywordList");
  q = CompileVisibilityQuery("ORDER BY CustomTextField", TestSchema(), Options());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(),
            "invalid query: operation is not supported: unable to sort by search attribute type "
            "Text");
  EXPECT_TRUE(CompileVisibilityQuery("ORDER BY StartTime", TestSchema(), Options()).ok());
}

// ---------------------------------------------------------------------------------------------
// The refusals tests/integration/test_visibility.py expects (REFUSED_QUERIES and
// ORDER_BY_QUERIES, read off Temporal's dev server), with its attributes, for List and Count.

SearchAttributeSchema IntegrationSchema() {
  SearchAttributeSchema schema;
  schema.custom = {
      {"VisKeyword", enums::INDEXED_VALUE_TYPE_KEYWORD},
      {"VisText", enums::INDEXED_VALUE_TYPE_TEXT},
      {"VisInt", enums::INDEXED_VALUE_TYPE_INT},
      {"VisDouble", enums::INDEXED_VALUE_TYPE_DOUBLE},
      {"VisBool", enums::INDEXED_VALUE_TYPE_BOOL},
      {"VisDatetime", enums::INDEXED_VALUE_TYPE_DATETIME},
      {"VisKeywordList", enums::INDEXED_VALUE_TYPE_KEYWORD_LIST},
  };
  return schema;
}

class VisibilityQueryIntegrationRefusalTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(VisibilityQueryIntegrationRefusalTest, Message) {
  for (VisibilityQueryKind kind : {VisibilityQueryKind::kList, VisibilityQueryKind::kCount}) {
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(GetParam().query, IntegrationSchema(), AsFrontend(kind));
    ASSERT_FALSE(q.ok()) << q->where;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(q.status().message(), GetParam().message);
  }
}

INSTANTIATE_TEST_SUITE_P(
    VisibilityQueryIntegration, VisibilityQueryIntegrationRefusalTest,
    ::testing::Values(
        ErrorCase{"WorkflowId = ",
                  "invalid query: malformed SQL query: syntax error at position 40"},
        ErrorCase{"WorkflowId = 'a' AND",
                  "invalid query: malformed SQL query: syntax error at position 48"},
        ErrorCase{"(WorkflowId = 'a'",
                  "invalid query: malformed SQL query: syntax error at position 45"},
        ErrorCase{"WorkflowId == 'a'",
                  "invalid query: malformed SQL query: syntax error at position 41"},
        ErrorCase{"WorkflowId IN ()",
                  "invalid query: malformed SQL query: syntax error at position 44"},
        ErrorCase{"WorkflowId IS 'a'",
                  "invalid query: malformed SQL query: syntax error at position 45 near 'a'"},
        ErrorCase{"SELECT * FROM x",
                  "invalid query: malformed SQL query: syntax error at position 34 near 'select'"},
        ErrorCase{"Nope = 'x'", "invalid query: invalid search attribute: Nope"},
        ErrorCase{"workflowid = 'a'", "invalid query: invalid search attribute: workflowid"},
        ErrorCase{"WorkflowId", "invalid query: invalid expression: incomplete expression"},
        ErrorCase{"WorkflowId = a",
                  "invalid query: operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"a\"?)"},
        ErrorCase{"WorkflowId = WorkflowType",
                  "invalid query: operation is not supported: column name on the right side of "
                  "comparison expression (did you forget to quote \"WorkflowType\"?)"},
        ErrorCase{"VisInt = 'abc'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "VisInt of type Int: \"abc\" (type: string)"},
        ErrorCase{"VisInt = true",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "VisInt of type Int: true (type: bool)"},
        ErrorCase{"VisKeyword = 1",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "VisKeyword of type Keyword: 1 (type: int64)"},
        ErrorCase{"VisBool = 'true'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "VisBool of type Bool: \"true\" (type: string)"},
        ErrorCase{"VisDouble = 'x'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "VisDouble of type Double: \"x\" (type: string)"},
        ErrorCase{"WorkflowId IN ('a', 1)",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "WorkflowId of type Keyword: 1 (type: int64)"},
        ErrorCase{"HistoryLength > 'a'",
                  "invalid query: invalid expression: invalid value type for search attribute "
                  "HistoryLength of type Int: \"a\" (type: string)"},
        ErrorCase{"ExecutionStatus = 'Bogus'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'Bogus'"},
        ErrorCase{"ExecutionStatus = 'running'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'running'"},
        ErrorCase{"ExecutionStatus = 'Cancelled'",
                  "invalid query: invalid expression: invalid ExecutionStatus value 'Cancelled'"},
        ErrorCase{"ExecutionStatus = 99",
                  "invalid query: invalid expression: invalid ExecutionStatus value 99"},
        ErrorCase{"StartTime = 'yesterday'",
                  "invalid query: invalid expression: unable to parse datetime 'yesterday'"},
        ErrorCase{"VisDatetime > '2024-03-01'",
                  "invalid query: invalid expression: unable to parse datetime '2024-03-01'"},
        ErrorCase{"ExecutionDuration > 'abc'",
                  "invalid query: invalid expression: invalid duration value for search attribute "
                  "ExecutionDuration: abc"},
        ErrorCase{"VisText > 'a'",
                  "invalid query: operation is not supported: operator '>' not supported for Text "
                  "type search attribute 'VisText'"},
        ErrorCase{"VisText IN ('a')",
                  "invalid query: operation is not supported: operator 'IN' not supported for "
                  "Text type search attribute 'VisText'"},
        ErrorCase{"VisText STARTS_WITH 'a'",
                  "invalid query: operation is not supported: operator 'STARTS_WITH' not "
                  "supported for Text type search attribute 'VisText'"},
        ErrorCase{"VisText = '  '",
                  "invalid query: invalid expression: no tokens found filtering on Text type "
                  "search attribute VisText"},
        ErrorCase{"VisKeywordList > 'blue'",
                  "invalid query: operation is not supported: operator '>' not supported for "
                  "KeywordList type search attribute 'VisKeywordList'"},
        ErrorCase{"VisKeywordList STARTS_WITH 'gr'",
                  "invalid query: operation is not supported: operator 'STARTS_WITH' not "
                  "supported for KeywordList type search attribute 'VisKeywordList'"},
        ErrorCase{"VisKeywordList BETWEEN 'a' AND 'c'",
                  "invalid query: invalid expression: cannot do range condition on search "
                  "attribute 'VisKeywordList' of type KeywordList"},
        ErrorCase{"WorkflowId LIKE 'a%'",
                  "invalid query: operation is not supported: operator 'LIKE' not supported for "
                  "Keyword type search attribute 'WorkflowId'"},
        ErrorCase{"WorkflowId = 'a' LIMIT 10",
                  "invalid query: operation is not supported: 'LIMIT' clause"},
        ErrorCase{"GROUP BY WorkflowType",
                  "invalid query: operation is not supported: 'GROUP BY' clause is not supported "
                  "for search attribute WorkflowType"},
        ErrorCase{"ExecutionStatus = 'Running' GROUP BY VisKeyword",
                  "invalid query: operation is not supported: 'GROUP BY' clause is not supported "
                  "for search attribute VisKeyword"},
        ErrorCase{"WorkflowId = 'a' GROUP BY ExecutionStatus, WorkflowType",
                  "invalid query: operation is not supported: 'GROUP BY' clause supports only a "
                  "single field"},
        ErrorCase{"ORDER BY StartTime",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"WorkflowId = 'a' ORDER BY StartTime DESC",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"ExecutionStatus = 'Running' order by CloseTime asc, WorkflowId",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"ORDER BY VisInt",
                  "invalid query: operation is not supported: 'ORDER BY' clause"},
        ErrorCase{"ORDER BY VisText",
                  "invalid query: operation is not supported: unable to sort by search attribute "
                  "type Text"}));

TEST(VisibilityQueryCompileErrorTest, TooManyParameters) {
  // 400 conditions of 30 values each: within the parser's limits, beyond the compiler's.
  std::vector<std::string> values(30, "'v'");
  std::vector<std::string> conditions(
      400, absl::StrCat("WorkflowId IN (", absl::StrJoin(values, ","), ")"));
  absl::StatusOr<CompiledVisibilityQuery> q =
      CompileVisibilityQuery(absl::StrJoin(conditions, " OR "), TestSchema(), Options());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().message(), "invalid query: invalid expression: more than 10000 values");
}

// ---------------------------------------------------------------------------------------------
// Resolution and helpers.

TEST(VisibilityQueryResolveTest, Aliases) {
  SearchAttributeSchema schema = TestSchema();
  auto name = [&](absl::string_view n) -> std::string {
    absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema, n);
    if (!a.ok()) return std::string(a.status().message());
    return absl::StrCat(a->name, "/", a->column.empty() ? "side" : a->column, "/",
                        IndexedValueTypeName(a->type));
  };
  EXPECT_EQ(name("WorkflowId"), "WorkflowId/workflow_id/Keyword");
  EXPECT_EQ(name("ScheduleId"), "WorkflowId/workflow_id/Keyword");
  EXPECT_EQ(name("TemporalScheduleId"), "WorkflowId/workflow_id/Keyword");
  EXPECT_EQ(name("TemporalRunId"), "RunId/run_id/Keyword");
  EXPECT_EQ(name("ScheduledById"), "TemporalScheduledById/side/Keyword");
  EXPECT_EQ(name("SchedulePaused"), "TemporalSchedulePaused/side/Bool");
  EXPECT_EQ(name("WorkflowVersioningBehavior"), "TemporalWorkflowVersioningBehavior/side/Keyword");
  EXPECT_EQ(name("BuildIds"), "BuildIds/side/KeywordList");
  EXPECT_EQ(name("ExecutionDuration"), "ExecutionDuration/execution_duration/Int");
  EXPECT_EQ(name("Custom Field"), "Custom Field/side/Keyword");

  // A custom attribute wins over an alias, never over a built-in name.
  schema.custom["SchedulePaused"] = enums::INDEXED_VALUE_TYPE_KEYWORD;
  schema.custom["ScheduleId"] = enums::INDEXED_VALUE_TYPE_KEYWORD;
  schema.custom["WorkflowId"] = enums::INDEXED_VALUE_TYPE_INT;
  EXPECT_EQ(name("SchedulePaused"), "SchedulePaused/side/Keyword");
  EXPECT_EQ(name("TemporalSchedulePaused"), "TemporalSchedulePaused/side/Bool");
  EXPECT_EQ(name("ScheduleId"), "ScheduleId/side/Keyword");
  EXPECT_EQ(name("WorkflowId"), "WorkflowId/workflow_id/Keyword");
  EXPECT_EQ(name("Nope"), "invalid query: invalid search attribute: Nope");
}

TEST(VisibilityQueryResolveTest, EveryBuiltinHasAKnownShape) {
  std::set<std::string> names;
  for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) {
    EXPECT_TRUE(names.insert(std::string(a.name)).second) << a.name;
    EXPECT_NE(IndexedValueTypeName(a.type), "Unspecified") << a.name;
    if (a.column.empty()) {
      EXPECT_TRUE(a.nullable) << a.name;
    }
  }
  EXPECT_EQ(names.size(), 33u);
  // Written once a run closes, as Temporal writes them: NULL while it is open.
  std::set<std::string> nullable_columns;
  for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) {
    if (!a.column.empty() && a.nullable) nullable_columns.insert(std::string(a.name));
  }
  EXPECT_EQ(absl::StrJoin(nullable_columns, " "),
            "CloseTime ExecutionDuration HistoryLength HistorySizeBytes ParentRunId "
            "ParentWorkflowId RootRunId RootWorkflowId StateTransitionCount "
            "TemporalNamespaceDivision");
}

TEST(VisibilityQueryTokenizeTest, Text) {
  using V = std::vector<std::string>;
  EXPECT_EQ(TokenizeText("my-business-id-foobar"), (V{"my", "business", "id", "foobar"}));
  EXPECT_EQ(TokenizeText("My Business  ID foobar my"), (V{"my", "business", "id", "foobar"}));
  EXPECT_EQ(TokenizeText("payment_retry_handler"), (V{"payment_retry_handler"}));
  EXPECT_EQ(TokenizeText("com.example.ProcessOrder"), (V{"com.example.processorder"}));
  EXPECT_EQ(TokenizeText("v1.2.3 alpha:bravo it's"), (V{"v1.2.3", "alpha:bravo", "it's"}));
  EXPECT_EQ(TokenizeText("v1.ProcessOrder"), (V{"v1", "processorder"}));
  EXPECT_EQ(TokenizeText("end. 'quoted' a:"), (V{"end", "quoted", "a"}));
  EXPECT_EQ(TokenizeText("caf\xc3\xa9 CAF\xc3\xa9"), (V{"caf\xc3\xa9"}));
  EXPECT_EQ(TokenizeText("  ,;!  "), V{});
}

TEST(VisibilityQueryTokenizeTest, ExecutionStatusNames) {
  EXPECT_EQ(ExecutionStatusName(0), "Unspecified");
  EXPECT_EQ(ExecutionStatusName(1), "Running");
  EXPECT_EQ(ExecutionStatusName(6), "ContinuedAsNew");
  EXPECT_EQ(ExecutionStatusName(7), "TimedOut");
  EXPECT_EQ(ExecutionStatusName(1000), "");
}

// ---------------------------------------------------------------------------------------------
// Compiled queries on real databases.

enum class Backend { kSqlite, kPostgres };

// The storage visibility_query.h describes, as the store's migration is to create it.
std::vector<std::string> VisibilityDdl(Dialect dialect) {
  const char* dbl = dialect == Dialect::kPostgres ? "DOUBLE PRECISION" : "REAL";
  return {
      R"(CREATE TABLE visibility (
           namespace_id TEXT NOT NULL, run_id TEXT NOT NULL, workflow_id TEXT NOT NULL,
           workflow_type TEXT NOT NULL, task_queue TEXT NOT NULL, status INTEGER NOT NULL,
           start_time BIGINT NOT NULL, execution_time BIGINT NOT NULL, close_time BIGINT,
           history_length BIGINT, execution_duration BIGINT,
           state_transition_count BIGINT, history_size_bytes BIGINT,
           parent_workflow_id TEXT, parent_run_id TEXT, root_workflow_id TEXT, root_run_id TEXT,
           namespace_division TEXT,
           PRIMARY KEY (namespace_id, run_id)))",
      absl::StrCat(R"(CREATE TABLE visibility_search_attributes (
           namespace_id TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL,
           int_value BIGINT, double_value )",
                   dbl, ", text_value TEXT)"),
      "CREATE INDEX vsa_by_run ON visibility_search_attributes (namespace_id, run_id, name)",
      "CREATE INDEX vsa_by_text ON visibility_search_attributes (namespace_id, name, text_value)",
      "CREATE INDEX vsa_by_int ON visibility_search_attributes (namespace_id, name, int_value)",
      "CREATE INDEX vsa_by_double ON visibility_search_attributes "
      "(namespace_id, name, double_value)",
  };
}

struct SideRow {
  std::string name;
  SqlValue int_value;
  std::optional<double> double_value;
  SqlValue text_value;
};

std::vector<SideRow> Kw(const std::string& n, const std::string& v) { return {{n, {}, {}, v}}; }
std::vector<SideRow> Int(const std::string& n, int64_t v) { return {{n, v, {}, {}}}; }
std::vector<SideRow> Bool(const std::string& n, bool v) {
  return {{n, int64_t{v ? 1 : 0}, {}, {}}};
}
std::vector<SideRow> Dbl(const std::string& n, double v) { return {{n, {}, v, {}}}; }
std::vector<SideRow> List(const std::string& n, const std::vector<std::string>& v) {
  std::vector<SideRow> out;
  for (const std::string& s : v) out.push_back({n, {}, {}, s});
  return out;
}
std::vector<SideRow> Text(const std::string& n, const std::string& v) {
  return List(n, TokenizeText(v));
}

struct Run {
  std::string ns = "ns";
  std::string run_id, workflow_id, workflow_type, task_queue;
  int64_t status;
  int64_t start, execution;
  SqlValue close;
  int64_t history_length;
  SqlValue duration;
  SqlValue parent_workflow_id, parent_run_id;
  std::vector<std::vector<SideRow>> side;
};

std::vector<Run> Runs() {
  const SqlValue null;
  return {
      {"ns", "r1", "order-1", "OrderWorkflow", "q1", 1, 100, 100, null, 10, null, null, null,
       {Kw("CustomKeywordField", "alpha"), Int("CustomIntField", 5),
        Dbl("CustomDoubleField", 1.5), Bool("CustomBoolField", true),
        Int("CustomDatetimeField", 1704067200000000),  // 2024-01-01T00:00:00Z
        List("CustomKeywordListField", {"a", "b"}), Text("CustomTextField", "Hello World"),
        List("BuildIds", {"v1"})}},
      {"ns", "r2", "order_2", "OrderWorkflow", "q1", 2, 200, 250, int64_t{900}, 20,
       int64_t{90000000000}, std::string("order-1"), std::string("r1"),
       {Kw("CustomKeywordField", "beta"), Int("CustomIntField", 10),
        Dbl("CustomDoubleField", -0.25), Bool("CustomBoolField", false),
        Int("CustomDatetimeField", 1717236000500000),  // 2024-06-01T10:00:00.5Z
        List("CustomKeywordListField", {"b"}), Text("CustomTextField", "order-processing-v2")}},
      {"ns", "r3", "ORDER-3", "PaymentWorkflow", "q2", 3, 300, 300, int64_t{800}, 30,
       int64_t{7200000000000}, null, null,
       {Int("CustomIntField", -3), Text("CustomTextField", "payment_retry_handler v1.2.3"),
        Kw("Custom Field", "spaced")}},
      {"ns", "r4", "ord%er-4", "PaymentWorkflow", "q2", 1, 400, 400, null, 40, null, null, null,
       {}},
      {"ns", "r5", "a*b?[c]-5", "Other", "q3", 7, 500, 500, int64_t{700}, 50,
       int64_t{1500000000}, null, null, {}},
      {"ns", "r6", "plain-6", "Other", "q3", 6, 600, 600, int64_t{950}, 60,
       int64_t{350000000000}, null, null,
       {Bool("TemporalSchedulePaused", true), Kw("TemporalScheduledById", "sched-1")}},
      // The population of tests/integration/test_visibility.py (namespace "it"), as Temporal's
      // dev server listed it: times in seconds from the epoch, durations in nanoseconds.
      {"it", "w1", "w1", "VisWorkflow", "tq", 2, 100000000, 100000000, int64_t{100500000}, 5,
       int64_t{500000000}, null, null,
       {Kw("VisKeyword", "alpha"), Text("VisText", "the quick brown fox"), Int("VisInt", 10),
        Dbl("VisDouble", 1.5), Bool("VisBool", true), Int("VisDatetime", 1704067200000000),
        List("VisKeywordList", {"red", "green"})}},
      {"it", "w2", "w2", "VisWorkflow", "tq", 1, 200000000, 200000000, null, 0, null, null, null,
       {Kw("VisKeyword", "beta"), Text("VisText", "lazy dog"), Int("VisInt", 20),
        Dbl("VisDouble", 2.5), Bool("VisBool", false), Int("VisDatetime", 1717243200000000),
        List("VisKeywordList", {"green"})}},
      {"it", "w3", "w3", "VisWorkflow", "tq", 3, 300000000, 300000000, int64_t{300300000}, 5,
       int64_t{300000000}, null, null,
       {Kw("VisKeyword", "alphabet"), Int("VisInt", 30), Dbl("VisDouble", -0.5),
        Bool("VisBool", true), List("VisKeywordList", {"blue"})}},
      {"it", "w4", "w4", "OtherTypeWorkflow", "tq", 2, 400000000, 400000000, int64_t{400200000},
       5, int64_t{200000000}, null, null, {}},
      {"it", "w5", "w5", "VisWorkflow", "tq", 5, 500000000, 500000000, int64_t{501000000}, 5,
       int64_t{1000000000}, null, null, {Kw("VisKeyword", "gamma"), Int("VisInt", 40)}},
      {"it", "w6", "w6", "VisWorkflow", "tq", 2, 600000000, 600000000, int64_t{603000000}, 9,
       int64_t{3000000000}, null, null,
       {Kw("VisKeyword", "delta"), Int("VisInt", -5), Dbl("VisDouble", 100),
        Bool("VisBool", false), Int("VisDatetime", 1742027400000000),
        List("VisKeywordList", {"red"})}},
      {"it", "w7", "w7", "VisWorkflow", "tq", 1, 700000000, 10000000000, null, 0, null, null,
       null, {}},
      {"it", "w8", "w8", "VisWorkflow", "tq", 4, 800000000, 800000000, int64_t{801500000}, 9,
       int64_t{1500000000}, null, null, {}},
      {"it", "w9", "w9", "VisWorkflow", "tq", 7, 900000000, 900000000, int64_t{902100000}, 5,
       int64_t{2100000000}, null, null, {}},
      {"it", "p", "p", "VisParent", "tq", 1, 1000000000, 1000000000, null, 0, null, null, null,
       {}},
      {"it", "c", "c", "VisWorkflow", "tq", 1, 1100000000, 1100000000, null, 0, null,
       std::string("p"), std::string("p"), {}},
      // Another namespace with a run of the same id: the side table must correlate on both.
      {"ns2", "r1", "order-1", "OrderWorkflow", "q1", 2, 100, 100, int64_t{150}, 10,
       int64_t{1000}, null, null,
       {Int("CustomIntField", 99), List("CustomKeywordListField", {"z"})}},
  };
}

absl::Status Populate(SqlDriver* driver) {
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  for (const std::string& ddl : VisibilityDdl(driver->dialect())) {
    if (absl::Status st = (*conn)->Exec(ddl, {}, nullptr); !st.ok()) return st;
  }
  const char* dbl = driver->dialect() == Dialect::kPostgres ? "DOUBLE PRECISION" : "REAL";
  for (const Run& r : Runs()) {
    // The counts are written once the run closes, as Temporal writes them.
    const bool closed = !std::holds_alternative<std::monostate>(r.close);
    const SqlValue length = closed ? SqlValue(r.history_length) : SqlValue();
    const SqlValue transitions = closed ? SqlValue(r.history_length / 2) : SqlValue();
    const SqlValue size = closed ? SqlValue(r.history_length * 100) : SqlValue();
    absl::Status st = (*conn)->Exec(
        "INSERT INTO visibility (namespace_id, run_id, workflow_id, workflow_type, task_queue, "
        "status, start_time, execution_time, close_time, history_length, execution_duration, "
        "state_transition_count, history_size_bytes, parent_workflow_id, parent_run_id, "
        "root_workflow_id, root_run_id) VALUES "
        "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        {r.ns, r.run_id, r.workflow_id, r.workflow_type, r.task_queue, r.status, r.start,
         r.execution, r.close, length, r.duration, transitions, size, r.parent_workflow_id,
         r.parent_run_id, r.workflow_id, r.run_id},
        nullptr);
    if (!st.ok()) return st;
    for (const std::vector<SideRow>& rows : r.side) {
      for (const SideRow& s : rows) {
        SqlValue d;
        if (s.double_value.has_value()) d = absl::StrFormat("%.17g", *s.double_value);
        st = (*conn)->Exec(
            absl::StrCat("INSERT INTO visibility_search_attributes (namespace_id, run_id, name, "
                         "int_value, double_value, text_value) VALUES ($1, $2, $3, $4, CAST($5 "
                         "AS ",
                         dbl, "), $6)"),
            {r.ns, r.run_id, s.name, s.int_value, d, s.text_value}, nullptr);
        if (!st.ok()) return st;
      }
    }
  }
  return absl::OkStatus();
}

// Runs a compiled list in namespace "ns": the run ids in the query's order.
absl::StatusOr<std::vector<std::string>> RunList(SqlDriver* driver, absl::string_view query,
                                                 const SearchAttributeSchema& schema,
                                                 const std::string& ns = "ns",
                                                 bool allow_order_by = true) {
  VisibilityQueryOptions options = Options(driver->dialect());
  options.first_placeholder = 2;
  options.allow_order_by = allow_order_by;
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(query, schema, options);
  if (!q.ok()) return q.status();
  std::vector<SqlValue> params = {ns};
  params.insert(params.end(), q->params.begin(), q->params.end());
  const std::string sql =
      absl::StrCat("SELECT run_id FROM visibility WHERE namespace_id = $1",
                   q->where.empty() ? "" : " AND ", q->where, " ORDER BY ", q->order_by);
  auto conn = driver->Acquire();
  if (!conn.ok()) return conn.status();
  SqlRows rows;
  if (absl::Status st = (*conn)->Exec(sql, params, &rows); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat(st.message(), " in: ", sql));
  }
  std::vector<std::string> out;
  for (const auto& row : rows.rows) out.push_back(AsString(row[0]));
  return out;
}

std::string Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return absl::StrJoin(v, " ");
}

class VisibilityQueryDatabaseTest : public ::testing::TestWithParam<Backend> {
 protected:
  static SqlDriver* Driver(Backend backend) {
    static std::map<Backend, std::unique_ptr<SqlDriver>>* drivers =
        new std::map<Backend, std::unique_ptr<SqlDriver>>;
    auto it = drivers->find(backend);
    if (it != drivers->end()) return it->second.get();
    std::unique_ptr<SqlDriver> driver;
    if (backend == Backend::kSqlite) {
      auto d = NewSqliteDriver({"", true, 1});
      if (!d.ok()) return nullptr;
      driver = std::move(*d);
    } else {
      const char* env = std::getenv("ALMANAC_TEST_POSTGRES");
      if (env == nullptr) return nullptr;
      std::vector<std::string> parts = absl::StrSplit(env, ':');
      if (parts.size() != 4) return nullptr;
      PostgresOptions admin{parts[0], std::stoi(parts[1]), parts[2], "", parts[3], 1};
      auto a = NewPostgresDriver(admin);
      if (!a.ok()) return nullptr;
      const std::string db =
          absl::StrCat("visq_", absl::StrReplaceAll(NewUuid(), {{"-", ""}}).substr(0, 16));
      {
        auto conn = (*a)->Acquire();
        if (!conn.ok() || !(*conn)->Exec(absl::StrCat("CREATE DATABASE ", db), {}, nullptr).ok()) {
          return nullptr;
        }
      }
      PostgresOptions opts = admin;
      opts.database = db;
      auto d = NewPostgresDriver(opts);
      if (!d.ok()) return nullptr;
      driver = std::move(*d);
    }
    if (absl::Status st = Populate(driver.get()); !st.ok()) {
      ADD_FAILURE() << st;
      return nullptr;
    }
    return drivers->emplace(backend, std::move(driver)).first->second.get();
  }

  void SetUp() override {
    if (GetParam() == Backend::kPostgres && std::getenv("ALMANAC_TEST_POSTGRES") == nullptr) {
      GTEST_SKIP() << "ALMANAC_TEST_POSTGRES is not set (scripts/test.sh sets it)";
    }
    driver_ = Driver(GetParam());
    ASSERT_NE(driver_, nullptr);
  }

  std::string Matches(absl::string_view query) {
    absl::StatusOr<std::vector<std::string>> ids = RunList(driver_, query, TestSchema());
    if (!ids.ok()) return std::string(ids.status().ToString());
    return Sorted(*ids);
  }
  std::string Ordered(absl::string_view query) {
    absl::StatusOr<std::vector<std::string>> ids = RunList(driver_, query, TestSchema());
    if (!ids.ok()) return std::string(ids.status().ToString());
    return absl::StrJoin(*ids, " ");
  }

  SqlDriver* driver_ = nullptr;
};

TEST_P(VisibilityQueryDatabaseTest, Columns) {
  EXPECT_EQ(Matches(""), "r1 r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("WorkflowId = 'order-1'"), "r1");
  EXPECT_EQ(Matches("WorkflowId = 'order-1' OR WorkflowId = \"plain-6\""), "r1 r6");
  EXPECT_EQ(Matches("WorkflowId IN ('order-1', 'nope', 'plain-6')"), "r1 r6");
  EXPECT_EQ(Matches("ExecutionStatus = 'Running'"), "r1 r4");
  EXPECT_EQ(Matches("ExecutionStatus != \"Running\""), "r2 r3 r5 r6");
  EXPECT_EQ(Matches("ExecutionStatus IN ('Completed', 'WORKFLOW_EXECUTION_STATUS_FAILED', 7)"),
            "r2 r3 r5");
  EXPECT_EQ(Matches("ExecutionStatus BETWEEN 2 AND 3"), "r2 r3");
  EXPECT_EQ(Matches("CloseTime IS NULL"), "r1 r4");
  EXPECT_EQ(Matches("CloseTime IS NOT NULL"), "r2 r3 r5 r6");
  // Integers are nanoseconds; the columns hold microseconds.
  EXPECT_EQ(Matches("CloseTime > 850000"), "r2 r6");
  EXPECT_EQ(Matches("StartTime BETWEEN 200000 AND 400000"), "r2 r3 r4");
  EXPECT_EQ(Matches("StartTime > '1970-01-01T00:00:00.000450Z'"), "r5 r6");
  EXPECT_EQ(Matches("StartTime > '1970-01-01T01:00:00.000450+01:00'"), "r5 r6");
  // An open run's close time is unknown: neither side of the comparison matches it.
  EXPECT_EQ(Matches("NOT CloseTime > 850000"), "r3 r5");
  EXPECT_EQ(Matches("ExecutionDuration > '1m'"), "r2 r3 r6");
  EXPECT_EQ(Matches("ExecutionDuration < '00:01:00'"), "r5");
  EXPECT_EQ(Matches("ExecutionDuration >= 1500000000"), "r2 r3 r5 r6");
  EXPECT_EQ(Matches("ParentWorkflowId = 'order-1'"), "r2");
  EXPECT_EQ(Matches("ParentWorkflowId != 'order-1'"), "");
  EXPECT_EQ(Matches("ParentWorkflowId IS NULL"), "r1 r3 r4 r5 r6");
  // The counts of an open run (r1, r4) are unknown until it closes.
  EXPECT_EQ(Matches("HistoryLength > 25 AND HistoryLength < 55"), "r3 r5");
  EXPECT_EQ(Matches("HistoryLength > 25.5"), "r3 r5 r6");
  EXPECT_EQ(Matches("HistoryLength IN (10, 60)"), "r6");
  EXPECT_EQ(Matches("HistoryLength <= 20"), "r2");
  EXPECT_EQ(Matches("NOT HistoryLength > 20"), "r2");
  EXPECT_EQ(Matches("NOT (HistoryLength > 20 OR WorkflowType = 'Other')"), "r2");
  EXPECT_EQ(Matches("HistoryLength NOT BETWEEN 25 AND 55"), "r2 r6");
  EXPECT_EQ(Matches("HistoryLength IS NULL"), "r1 r4");
  EXPECT_EQ(Matches("StateTransitionCount IS NOT NULL AND HistorySizeBytes IS NOT NULL"),
            "r2 r3 r5 r6");
  EXPECT_EQ(Matches("StateTransitionCount != 15"), "r2 r5 r6");
  EXPECT_EQ(Matches("StateTransitionCount = 15 AND HistorySizeBytes = 3000"), "r3");
  EXPECT_EQ(Matches("RootWorkflowId = 'plain-6' AND RootRunId = 'r6'"), "r6");
  EXPECT_EQ(Matches("ScheduleId = 'plain-6'"), "r6");
  EXPECT_EQ(Matches("WorkflowType = 'OrderWorkflow' OR WorkflowType = 'Other' AND "
                    "ExecutionStatus = 'TimedOut'"),
            "r1 r2 r5");
  EXPECT_EQ(Matches("(WorkflowType = 'OrderWorkflow' OR WorkflowType = 'Other') AND "
                    "ExecutionStatus = 'TimedOut'"),
            "r5");
  EXPECT_EQ(Matches("WorkflowId = 'x'' OR ''1''=''1'"), "");
}

TEST_P(VisibilityQueryDatabaseTest, StartsWithIsCaseSensitiveAndLiteral) {
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'order'"), "r1 r2");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'ORDER'"), "r3");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'order_'"), "r2");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'ord%'"), "r4");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'ord_'"), "");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'a*b?[c]'"), "r5");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'a*'"), "r5");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH 'a'"), "r5");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH '*'"), "");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH '!'"), "");
  EXPECT_EQ(Matches("WorkflowId STARTS_WITH ''"), "r1 r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("WorkflowId NOT STARTS_WITH 'order'"), "r3 r4 r5 r6");
  EXPECT_EQ(Matches("NOT WorkflowId STARTS_WITH 'order'"), "r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomKeywordField STARTS_WITH 'be'"), "r2");
  EXPECT_EQ(Matches("CustomKeywordField NOT STARTS_WITH 'be'"), "r1");
  EXPECT_EQ(Matches("ScheduledById STARTS_WITH 'sched'"), "r6");
}

TEST_P(VisibilityQueryDatabaseTest, CustomSingleValued) {
  EXPECT_EQ(Matches("CustomIntField = 5"), "r1");
  // Only runs with the attribute answer either way; IS NULL finds the others.
  EXPECT_EQ(Matches("CustomIntField != 5"), "r2 r3");
  EXPECT_EQ(Matches("NOT CustomIntField = 5"), "r2 r3");
  EXPECT_EQ(Matches("CustomIntField IS NULL"), "r4 r5 r6");
  EXPECT_EQ(Matches("CustomIntField IS NOT NULL"), "r1 r2 r3");
  EXPECT_EQ(Matches("NOT (CustomIntField = 5 OR CustomIntField IS NULL)"), "r2 r3");
  EXPECT_EQ(Matches("CustomIntField = 5 OR CustomIntField IS NULL"), "r1 r4 r5 r6");
  EXPECT_EQ(Matches("CustomIntField > 4.5"), "r1 r2");
  EXPECT_EQ(Matches("CustomIntField BETWEEN 0 AND 7"), "r1");
  EXPECT_EQ(Matches("CustomIntField NOT BETWEEN 0 AND 7"), "r2 r3");
  EXPECT_EQ(Matches("NOT CustomIntField NOT BETWEEN 0 AND 7"), "r1");
  EXPECT_EQ(Matches("CustomIntField IN (5, -3)"), "r1 r3");
  EXPECT_EQ(Matches("CustomIntField NOT IN (5, -3)"), "r2");
  EXPECT_EQ(Matches("CustomIntField = 99"), "");  // only in the other namespace
  EXPECT_EQ(Matches("NOT (WorkflowType = 'Other' OR CustomIntField > 0)"), "r3");
  EXPECT_EQ(Matches("CustomDoubleField > 0"), "r1");
  EXPECT_EQ(Matches("CustomDoubleField < 1"), "r2");
  EXPECT_EQ(Matches("CustomDoubleField = 1.5"), "r1");
  EXPECT_EQ(Matches("CustomDoubleField BETWEEN -1 AND 1"), "r2");
  EXPECT_EQ(Matches("CustomBoolField = true"), "r1");
  EXPECT_EQ(Matches("CustomBoolField != true"), "r2");
  EXPECT_EQ(Matches("CustomBoolField = false"), "r2");
  EXPECT_EQ(Matches("CustomBoolField IN (true, false)"), "r1 r2");
  EXPECT_EQ(Matches("CustomBoolField > false"), "r1");
  EXPECT_EQ(Matches("CustomDoubleField > -0.5 AND CustomDoubleField < 1.5"), "r2");
  EXPECT_EQ(Matches("NOT CustomBoolField = false"), "r1");
  EXPECT_EQ(Matches("CustomDatetimeField > '2024-03-01T00:00:00Z'"), "r2");
  EXPECT_EQ(Matches("CustomDatetimeField = '2024-06-01T12:00:00.5+02:00'"), "r2");
  EXPECT_EQ(Matches("CustomDatetimeField < '2024-01-01T00:00:00.000001Z'"), "r1");
  EXPECT_EQ(Matches("CustomKeywordField < 'b'"), "r1");
  EXPECT_EQ(Matches("CustomKeywordField != 'alpha'"), "r2");
  EXPECT_EQ(Matches("`Custom Field` = 'spaced'"), "r3");
  EXPECT_EQ(Matches("SchedulePaused = true"), "r6");
  EXPECT_EQ(Matches("TemporalScheduledById = 'sched-1'"), "r6");
}

TEST_P(VisibilityQueryDatabaseTest, CustomMultiValued) {
  EXPECT_EQ(Matches("CustomKeywordListField = 'a'"), "r1");
  EXPECT_EQ(Matches("CustomKeywordListField = 'b'"), "r1 r2");
  // `!=` and NOT IN: every run that `=` and IN do not match, runs without the list included.
  EXPECT_EQ(Matches("CustomKeywordListField != 'a'"), "r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("NOT CustomKeywordListField = 'a'"), "r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomKeywordListField IN ('a', 'b')"), "r1 r2");
  EXPECT_EQ(Matches("CustomKeywordListField NOT IN ('a')"), "r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomKeywordListField NOT IN ('a', 'b')"), "r3 r4 r5 r6");
  EXPECT_EQ(Matches("NOT CustomKeywordListField NOT IN ('a', 'b')"), "r1 r2");
  EXPECT_EQ(Matches("NOT CustomKeywordListField != 'a'"), "r1");
  EXPECT_EQ(Matches("CustomKeywordListField != 'a' AND CustomKeywordListField IS NOT NULL"),
            "r2");
  EXPECT_EQ(Matches("CustomKeywordListField IS NULL"), "r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomKeywordListField = 'z'"), "");
  EXPECT_EQ(Matches("BuildIds = 'v1'"), "r1");
  EXPECT_EQ(Matches("CustomTextField = 'hello'"), "r1");
  EXPECT_EQ(Matches("CustomTextField = 'HELLO there'"), "r1");
  EXPECT_EQ(Matches("CustomTextField = 'processing'"), "r2");
  EXPECT_EQ(Matches("CustomTextField = 'payment'"), "");
  EXPECT_EQ(Matches("CustomTextField = 'payment_retry_handler'"), "r3");
  EXPECT_EQ(Matches("CustomTextField = 'v1.2.3'"), "r3");
  EXPECT_EQ(Matches("CustomTextField = 'foo world'"), "r1");
  EXPECT_EQ(Matches("CustomTextField != 'world'"), "r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("NOT CustomTextField = 'world'"), "r2 r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomTextField != 'hello processing'"), "r3 r4 r5 r6");
  EXPECT_EQ(Matches("CustomTextField = '!!!'"), "");
  EXPECT_EQ(Matches("CustomTextField != '!!!'"), "r1 r2 r3 r4 r5 r6");
}

TEST_P(VisibilityQueryDatabaseTest, Order) {
  EXPECT_EQ(Ordered(""), "r4 r1 r6 r2 r3 r5");
  EXPECT_EQ(Ordered("ORDER BY CustomIntField"), "r3 r1 r2 r4 r5 r6");
  EXPECT_EQ(Ordered("ORDER BY CustomIntField DESC"), "r2 r1 r3 r4 r5 r6");
  EXPECT_EQ(Ordered("ORDER BY CloseTime DESC"), "r6 r2 r3 r5 r1 r4");
  EXPECT_EQ(Ordered("ORDER BY CloseTime"), "r5 r3 r2 r6 r1 r4");
  EXPECT_EQ(Ordered("ExecutionStatus = 'Running' ORDER BY StartTime"), "r1 r4");
  EXPECT_EQ(Ordered("ORDER BY WorkflowType, StartTime DESC"), "r2 r1 r6 r5 r4 r3");
  EXPECT_EQ(Ordered("ORDER BY CustomDoubleField DESC, RunId DESC"), "r1 r2 r6 r5 r4 r3");
}

// The query-case tables of tests/integration/test_visibility.py, on its population: each query,
// compiled as the frontend compiles it, lists and counts exactly the runs the test expects.
TEST_P(VisibilityQueryDatabaseTest, IntegrationQueryCases) {
  struct Case {
    const char* query;
    const char* runs;
  };
  static const Case kCases[] = {
      // keyword
      {"VisKeyword = 'alpha'", "w1"},
      {"VisKeyword != 'alpha'", "w2 w3 w5 w6"},
      {"VisKeyword > 'alpha'", "w2 w3 w5 w6"},
      {"VisKeyword >= 'alpha'", "w1 w2 w3 w5 w6"},
      {"VisKeyword < 'beta'", "w1 w3"},
      {"VisKeyword <= 'beta'", "w1 w2 w3"},
      {"VisKeyword IN ('alpha', 'gamma')", "w1 w5"},
      {"VisKeyword NOT IN ('alpha', 'gamma')", "w2 w3 w6"},
      {"VisKeyword BETWEEN 'alpha' AND 'beta'", "w1 w2 w3"},
      {"VisKeyword NOT BETWEEN 'alpha' AND 'beta'", "w5 w6"},
      {"VisKeyword STARTS_WITH 'alph'", "w1 w3"},
      {"VisKeyword NOT STARTS_WITH 'alph'", "w2 w5 w6"},
      {"VisKeyword IS NULL", "c p w4 w7 w8 w9"},
      {"VisKeyword IS NOT NULL", "w1 w2 w3 w5 w6"},
      {"VisKeyword = 'Alpha'", ""},
      {"VisKeyword = 'alpha '", ""},
      // text
      {"VisText = 'quick'", "w1"},
      {"VisText = 'QUICK'", "w1"},
      {"VisText = 'fox quick'", "w1"},
      {"VisText = 'the quick brown fox'", "w1"},
      {"VisText = 'fox cat'", "w1"},
      {"VisText = 'Fox, quick!'", "w1"},
      {"VisText = 'dog'", "w2"},
      {"VisText = 'qui'", ""},
      {"VisText != 'quick'", "c p w2 w3 w4 w5 w6 w7 w8 w9"},
      {"VisText IS NULL", "c p w3 w4 w5 w6 w7 w8 w9"},
      {"VisText IS NOT NULL", "w1 w2"},
      // int
      {"VisInt = 20", "w2"},
      {"VisInt != 20", "w1 w3 w5 w6"},
      {"VisInt > 20", "w3 w5"},
      {"VisInt >= 20", "w2 w3 w5"},
      {"VisInt < 20", "w1 w6"},
      {"VisInt <= 20", "w1 w2 w6"},
      {"VisInt < 0", "w6"},
      {"VisInt IN (10, 40)", "w1 w5"},
      {"VisInt NOT IN (10, 40)", "w2 w3 w6"},
      {"VisInt BETWEEN 15 AND 35", "w2 w3"},
      {"VisInt IS NULL", "c p w4 w7 w8 w9"},
      {"VisInt IS NOT NULL", "w1 w2 w3 w5 w6"},
      // double
      {"VisDouble = 1.5", "w1"},
      {"VisDouble != 1.5", "w2 w3 w6"},
      {"VisDouble > 1", "w1 w2 w6"},
      {"VisDouble >= 100", "w6"},
      {"VisDouble < 0", "w3"},
      {"VisDouble <= 1.5", "w1 w3"},
      {"VisDouble BETWEEN -1 AND 2", "w1 w3"},
      {"VisDouble IN (2.5, 100)", "w2 w6"},
      {"VisDouble IS NULL", "c p w4 w5 w7 w8 w9"},
      // bool
      {"VisBool = true", "w1 w3"},
      {"VisBool = TRUE", "w1 w3"},
      {"VisBool = false", "w2 w6"},
      {"VisBool != true", "w2 w6"},
      {"VisBool IS NULL", "c p w4 w5 w7 w8 w9"},
      {"VisBool IS NOT NULL", "w1 w2 w3 w6"},
      // datetime
      {"VisDatetime > '2024-03-01T00:00:00Z'", "w2 w6"},
      {"VisDatetime >= '2024-03-01T00:00:00+02:00'", "w2 w6"},
      {"VisDatetime < '2024-03-01T00:00:00Z'", "w1"},
      {"VisDatetime <= '2025-01-01T00:00:00Z'", "w1 w2"},
      {"VisDatetime BETWEEN '2023-12-31T00:00:00Z' AND '2024-12-31T00:00:00Z'", "w1 w2"},
      {"VisDatetime IS NULL", "c p w3 w4 w5 w7 w8 w9"},
      {"VisDatetime IS NOT NULL", "w1 w2 w6"},
      // keyword_list
      {"VisKeywordList = 'green'", "w1 w2"},
      {"VisKeywordList = 'red'", "w1 w6"},
      {"VisKeywordList = 'gre'", ""},
      {"VisKeywordList != 'green'", "c p w3 w4 w5 w6 w7 w8 w9"},
      {"VisKeywordList IN ('red', 'blue')", "w1 w3 w6"},
      {"VisKeywordList NOT IN ('green', 'blue')", "c p w4 w5 w6 w7 w8 w9"},
      {"VisKeywordList IS NULL", "c p w4 w5 w7 w8 w9"},
      {"VisKeywordList IS NOT NULL", "w1 w2 w3 w6"},
      // status
      {"ExecutionStatus = 'Running'", "c p w2 w7"},
      {"ExecutionStatus = 'Completed'", "w1 w4 w6"},
      {"ExecutionStatus = 'Failed'", "w3"},
      {"ExecutionStatus = 'Terminated'", "w5"},
      {"ExecutionStatus = 'Canceled'", "w8"},
      {"ExecutionStatus = 'TimedOut'", "w9"},
      {"ExecutionStatus = 'ContinuedAsNew'", ""},
      {"ExecutionStatus != 'Running'", "w1 w3 w4 w5 w6 w8 w9"},
      {"ExecutionStatus IN ('Failed', 'Terminated')", "w3 w5"},
      {"ExecutionStatus NOT IN ('Running', 'Completed')", "w3 w5 w8 w9"},
      {"ExecutionStatus = 1", "c p w2 w7"},
      {"ExecutionStatus = 2", "w1 w4 w6"},
      // ids_and_types
      {"WorkflowId = 'w1'", "w1"},
      {"WorkflowId != 'w1'", "c p w2 w3 w4 w5 w6 w7 w8 w9"},
      {"WorkflowId IN ('w1', 'p')", "p w1"},
      {"WorkflowId STARTS_WITH 'w'", "w1 w2 w3 w4 w5 w6 w7 w8 w9"},
      {"WorkflowId > 'w5'", "w6 w7 w8 w9"},
      {"RunId = 'w1'", "w1"},
      {"WorkflowType = 'OtherTypeWorkflow'", "w4"},
      {"WorkflowType != 'VisWorkflow'", "p w4"},
      {"WorkflowType STARTS_WITH 'Vis'", "c p w1 w2 w3 w5 w6 w7 w8 w9"},
      {"WorkflowType IN ('VisParent', 'OtherTypeWorkflow')", "p w4"},
      {"TaskQueue = 'tq'", "c p w1 w2 w3 w4 w5 w6 w7 w8 w9"},
      {"TaskQueue != 'tq'", ""},
      {"ParentWorkflowId = 'p'", "c"},
      {"ParentWorkflowId IS NOT NULL", "c"},
      {"ParentWorkflowId IS NULL", "p w1 w2 w3 w4 w5 w6 w7 w8 w9"},
      {"RootWorkflowId IS NULL", ""},
      // history_length
      {"HistoryLength = 5", "w1 w3 w4 w5 w9"},
      {"HistoryLength > 5", "w6 w8"},
      {"HistoryLength = 9", "w6 w8"},
      {"HistoryLength <= 2", ""},
      {"HistoryLength IS NULL", "c p w2 w7"},
      {"HistoryLength IS NOT NULL", "w1 w3 w4 w5 w6 w8 w9"},
      // times
      {"CloseTime IS NULL", "c p w2 w7"},
      {"CloseTime IS NOT NULL", "w1 w3 w4 w5 w6 w8 w9"},
      {"ExecutionTime > '1970-01-01T02:00:00Z'", "w7"},
      {"ExecutionTime IS NULL", ""},
      {"StartTime = '1970-01-01T00:06:40Z'", "w4"},
      {"StartTime > '1970-01-01T00:06:40Z'", "c p w5 w6 w7 w8 w9"},
      {"CloseTime > '1970-01-01T00:06:40Z'", "w4 w5 w6 w8 w9"},
      // duration
      {"ExecutionDuration > '2s'", "w6 w9"},
      {"ExecutionDuration > '00:00:02'", "w6 w9"},
      {"ExecutionDuration > 2000000000", "w6 w9"},
      {"ExecutionDuration <= '2s'", "w1 w3 w4 w5 w8"},
      {"ExecutionDuration < '1h'", "w1 w3 w4 w5 w6 w8 w9"},
      {"ExecutionDuration >= '1h'", ""},
      {"ExecutionDuration IS NULL", "c p w2 w7"},
      // logic
      {"VisInt > 15 AND VisBool = true", "w3"},
      {"VisInt < 15 OR VisInt > 35", "w1 w5 w6"},
      {"VisInt < 15 OR VisInt > 35 AND ExecutionStatus = 'Terminated'", "w1 w5 w6"},
      {"(VisInt < 15 OR VisInt > 35) AND ExecutionStatus = 'Terminated'", "w5"},
      {"(VisBool = true AND (VisInt = 10 OR VisInt = 30)) OR VisKeyword = 'gamma'", "w1 w3 w5"},
      {"NOT VisInt = 10", "w2 w3 w5 w6"},
      {"NOT (VisKeyword = 'alpha' OR VisKeyword = 'beta')", "w3 w5 w6"},
      {"VisKeyword IS NOT NULL AND NOT VisKeyword = 'beta'", "w1 w3 w5 w6"},
      {"ExecutionStatus = 'Running' AND WorkflowType = 'VisWorkflow'", "c w2 w7"},
      // syntax
      {"VisKeyword in ('alpha') and VisInt between 5 and 15", "w1"},
      {"VisKeyword starts_with 'alph' or VisKeyword is null and VisInt = 1", "w1 w3"},
      {"VisKeyword = \"alpha\"", "w1"},
      {"`VisKeyword` = 'alpha'", "w1"},
      {"VisKeyword='alpha'", "w1"},
      {"VisInt>=30", "w3 w5"},
  };
  for (const Case& c : kCases) {
    absl::StatusOr<std::vector<std::string>> ids =
        RunList(driver_, c.query, IntegrationSchema(), "it", /*allow_order_by=*/false);
    ASSERT_TRUE(ids.ok()) << c.query << ": " << ids.status();
    EXPECT_EQ(Sorted(*ids), c.runs) << c.query;

    VisibilityQueryOptions options = AsFrontend(VisibilityQueryKind::kCount);
    options.dialect = driver_->dialect();
    options.first_placeholder = 2;
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(c.query, IntegrationSchema(), options);
    ASSERT_TRUE(q.ok()) << c.query << ": " << q.status();
    std::vector<SqlValue> params = {std::string("it")};
    params.insert(params.end(), q->params.begin(), q->params.end());
    auto conn = driver_->Acquire();
    ASSERT_TRUE(conn.ok());
    SqlRows rows;
    ASSERT_TRUE((*conn)
                    ->Exec(absl::StrCat("SELECT COUNT(*) FROM visibility WHERE namespace_id = $1",
                                        q->where.empty() ? "" : " AND ", q->where),
                           params, &rows)
                    .ok())
        << c.query;
    EXPECT_EQ(AsInt(rows.rows.at(0).at(0)), static_cast<int64_t>(ids->size())) << c.query;
  }
}

TEST_P(VisibilityQueryDatabaseTest, CountGroupByStatus) {
  auto counts = [&](absl::string_view query) -> std::string {
    VisibilityQueryOptions options = Options(driver_->dialect(), VisibilityQueryKind::kCount);
    options.first_placeholder = 2;
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(query, TestSchema(), options);
    if (!q.ok()) return std::string(q.status().message());
    std::vector<SqlValue> params = {std::string("ns")};
    params.insert(params.end(), q->params.begin(), q->params.end());
    const std::string sql = absl::StrCat(
        "SELECT ", q->group_by, ", COUNT(*) FROM visibility WHERE namespace_id = $1",
        q->where.empty() ? "" : " AND ", q->where, " GROUP BY ", q->group_by, " ORDER BY ",
        q->group_by);
    auto conn = driver_->Acquire();
    SqlRows rows;
    absl::Status st = (*conn)->Exec(sql, params, &rows);
    if (!st.ok()) return std::string(st.message());
    std::vector<std::string> out;
    for (const auto& row : rows.rows) {
      out.push_back(absl::StrCat(ExecutionStatusName(AsInt(row[0])), "=", AsInt(row[1])));
    }
    return absl::StrJoin(out, " ");
  };
  EXPECT_EQ(counts("GROUP BY ExecutionStatus"),
            "Running=2 Completed=1 Failed=1 ContinuedAsNew=1 TimedOut=1");
  EXPECT_EQ(counts("WorkflowType = 'OrderWorkflow' GROUP BY ExecutionStatus"),
            "Running=1 Completed=1");
}

TEST_P(VisibilityQueryDatabaseTest, LimitsFitTheDatabase) {
  // The deepest nesting the compiler accepts, around its heaviest condition (EXISTS, NOT IN,
  // CAST), runs; one more level is refused. Redundant parentheses and NOTs do not count.
  auto nested = [](int levels) {
    std::string query = "NOT CustomDoubleField IN (1.5, 2.5)";
    for (int i = 0; i < levels; ++i) {
      query = absl::StrCat("((NOT NOT WorkflowId = 'x' ", i % 2 ? "AND" : "OR", " ", query, "))");
    }
    return query;
  };
  int deepest = 0;
  for (int levels = 1; levels < 40; ++levels) {
    absl::StatusOr<CompiledVisibilityQuery> q =
        CompileVisibilityQuery(nested(levels), TestSchema(), Options(driver_->dialect()));
    if (!q.ok()) {
      EXPECT_EQ(q.status().message(),
                "invalid query: operation is not supported: conditions nested more than 20 "
                "levels deep (AND within OR within AND ...)");
      break;
    }
    deepest = levels;
  }
  EXPECT_GE(deepest, 16);
  absl::StatusOr<std::vector<std::string>> ids =
      RunList(driver_, nested(deepest), TestSchema());
  ASSERT_TRUE(ids.ok()) << ids.status().ToString().substr(0, 300);
  // ... and so does it inside the most conditions, in a chain SQLite nests under its first
  // operand.
  std::vector<std::string> chain(kMaxQueryConditions - deepest - 1, "CustomIntField != 7");
  ids = RunList(driver_, absl::StrCat("(", nested(deepest), ") AND ", absl::StrJoin(chain, " AND ")),
                TestSchema());
  ASSERT_TRUE(ids.ok()) << ids.status().ToString().substr(0, 300);

  std::vector<std::string> flat(kMaxQueryConditions, "CustomKeywordListField != 'x'");
  ids = RunList(driver_, absl::StrJoin(flat, " OR "), TestSchema());
  ASSERT_TRUE(ids.ok()) << ids.status().ToString().substr(0, 300);
  EXPECT_EQ(Sorted(*ids), "r1 r2 r3 r4 r5 r6");
  std::vector<std::string> values(kMaxQueryParams - 1, "'v'");
  ids = RunList(driver_, absl::StrCat("WorkflowId IN (", absl::StrJoin(values, ","), ")"),
                TestSchema());
  ASSERT_TRUE(ids.ok()) << ids.status().ToString().substr(0, 300);
}

INSTANTIATE_TEST_SUITE_P(VisibilityQueryBackends, VisibilityQueryDatabaseTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
                         });

// ---------------------------------------------------------------------------------------------
// Fuzz: seeded, grammar-generated and byte-mutated queries. Every one either compiles or is
// refused with kInvalidArgument; compiled SQL holds only the compiler's own vocabulary, as
// many placeholders as parameters, and runs on SQLite (and on PostgreSQL when available).

class QueryGenerator {
 public:
  explicit QueryGenerator(uint64_t seed) : rng_(seed) {}

  std::string Query() {
    std::string out;
    if (Chance(0.9)) out = Expr(Pick(1, 4));
    if (Chance(0.1)) {
      absl::StrAppend(&out, " ", Case("GROUP BY"), " ",
                      Chance(0.7) ? "ExecutionStatus" : AttributeName());
    }
    if (Chance(0.15)) {
      absl::StrAppend(&out, " ", Case("ORDER BY"), " ", AttributeName());
      if (Chance(0.5)) absl::StrAppend(&out, " ", Case(Chance(0.5) ? "DESC" : "ASC"));
      if (Chance(0.3)) absl::StrAppend(&out, ", ", AttributeName());
    }
    if (Chance(0.01)) absl::StrAppend(&out, " LIMIT 5");
    return out;
  }

  std::string Mutate(std::string s) {
    static constexpr absl::string_view kSpecial = "()'\"`\\,=<>!-/*#;$?.% \t\n_[]&|+0aZ";
    const int n = Pick(1, 4);
    for (int i = 0; i < n; ++i) {
      const size_t pos = s.empty() ? 0 : Pick(0, static_cast<int>(s.size()) - 1);
      switch (Pick(0, 4)) {
        case 0:  // delete a range
          if (!s.empty()) s.erase(pos, Pick(1, 4));
          break;
        case 1:  // insert a special character
          s.insert(pos, 1, kSpecial[Pick(0, static_cast<int>(kSpecial.size()) - 1)]);
          break;
        case 2:  // insert any byte
          s.insert(pos, 1, static_cast<char>(Pick(0, 255)));
          break;
        case 3:  // replace a byte
          if (!s.empty()) s[pos] = kSpecial[Pick(0, static_cast<int>(kSpecial.size()) - 1)];
          break;
        case 4:  // duplicate a slice
          if (!s.empty()) s.insert(pos, s.substr(Pick(0, static_cast<int>(s.size()) - 1), 8));
          break;
      }
    }
    return s;
  }

  int Pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }

 private:
  template <typename T>
  const T& One(const std::vector<T>& v) {
    return v[Pick(0, static_cast<int>(v.size()) - 1)];
  }

  std::string Case(absl::string_view keyword) {
    switch (Pick(0, 2)) {
      case 0:
        return absl::AsciiStrToLower(keyword);
      case 1:
        return std::string(keyword);
      default: {
        std::string s(keyword);
        for (char& c : s) c = Chance(0.5) ? absl::ascii_tolower(c) : c;
        return s;
      }
    }
  }

  // An attribute name as written, and its type when it resolves.
  std::pair<std::string, IndexedValueType> Attribute() {
    static const auto* names = [] {
      auto* v = new std::vector<std::pair<std::string, IndexedValueType>>;
      for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) {
        v->emplace_back(a.name, a.type);
      }
      std::vector<std::pair<std::string, IndexedValueType>> custom;
      for (const auto& [name, type] : TestSchema().custom) {
        if (name != "Custom Field") custom.emplace_back(name, type);
      }
      std::sort(custom.begin(), custom.end());  // the map's order varies between runs
      v->insert(v->end(), custom.begin(), custom.end());
      for (const char* alias : {"ScheduleId", "ScheduledById", "TemporalWorkflowId"}) {
        v->emplace_back(alias, enums::INDEXED_VALUE_TYPE_KEYWORD);
      }
      v->emplace_back("SchedulePaused", enums::INDEXED_VALUE_TYPE_BOOL);
      for (const char* unknown : {"Foo", "workflowid", "_x"}) {
        v->emplace_back(unknown, enums::INDEXED_VALUE_TYPE_UNSPECIFIED);
      }
      return v;
    }();
    if (Chance(0.05)) return {"`Custom Field`", enums::INDEXED_VALUE_TYPE_KEYWORD};
    auto [name, type] = One(*names);
    if (Chance(0.1)) name = absl::StrCat("`", name, "`");
    return {name, type};
  }

  std::string AttributeName() { return Attribute().first; }

  std::string Quote(absl::string_view s) {
    const char q = Chance(0.5) ? '\'' : '"';
    std::string out(1, q);
    for (char c : s) {
      if (c == q) {
        out += Chance(0.5) ? std::string(2, q) : std::string("\\") + q;
      } else if (c == '\\') {
        out += "\\\\";
      } else {
        out.push_back(c);
      }
    }
    out.push_back(q);
    return out;
  }

  std::string StringValue() {
    static const std::vector<std::string> kStrings = {
        "", "x", "order-", "Running", "Completed", "WORKFLOW_EXECUTION_STATUS_TIMED_OUT",
        "TimedOut", "running", "2021-08-22T15:04:05+00:00", "2024-06-01T12:00:00.5+02:00",
        "2021-02-30T00:00:00Z", "1h30m", "00:01:30", "2d", "-5ms", "1.5", "hello world",
        "it's", "a\"b", "back\\slash", "50%_off!", "a*b?[c]", "'; DROP TABLE visibility; --",
        "$1", "?1", "\xc3\xa9t\xc3\xa9", "  ", "a\tb\nc", "true", "NULL", "`x`"};
    return Quote(One(kStrings));
  }

  // Mostly a literal the attribute accepts, sometimes any.
  std::string Value(absl::string_view name, IndexedValueType type) {
    if (Chance(0.25)) return Value();
    static const std::vector<std::string> kStatuses = {
        "'Running'", "\"Completed\"", "'WORKFLOW_EXECUTION_STATUS_FAILED'", "'TimedOut'", "2",
        "7", "'ContinuedAsNew'"};
    static const std::vector<std::string> kDurations = {"'1h30m'", "'00:01:30'", "'2d'",
                                                        "'1.5s'", "1000", "'-5ms'", "'90'"};
    static const std::vector<std::string> kTimes = {
        "'2021-08-22T15:04:05+00:00'", "\"2024-06-01T12:00:00.5+02:00\"",
        "'1970-01-01T00:00:00.000450Z'", "1629644645123456789", "-1", "'9999-12-31T23:59:59Z'"};
    if (absl::StrContains(name, "ExecutionStatus")) return One(kStatuses);
    if (absl::StrContains(name, "ExecutionDuration")) return One(kDurations);
    switch (type) {
      case enums::INDEXED_VALUE_TYPE_INT:
        return absl::StrCat(Pick(-5, 100));
      case enums::INDEXED_VALUE_TYPE_DOUBLE:
        return Chance(0.5) ? absl::StrCat(Pick(-5, 5), ".", Pick(0, 99)) : absl::StrCat(Pick(-5, 5));
      case enums::INDEXED_VALUE_TYPE_BOOL:
        return Case(Chance(0.5) ? "true" : "false");
      case enums::INDEXED_VALUE_TYPE_DATETIME:
        return One(kTimes);
      default:
        return StringValue();
    }
  }

  std::string Value() {
    switch (Pick(0, 9)) {
      case 0:
      case 1:
      case 2:
        return StringValue();
      case 3:
        return absl::StrCat(Pick(-3, 1000));
      case 4:
        return One(std::vector<std::string>{"9223372036854775807", "-9223372036854775808",
                                            "99999999999999999999", "0x1F", "1e", "1e999", "1.",
                                            ".5", "- -3", "+7", "1629644645123456789"});
      case 5:
        return absl::StrCat(Pick(-100, 100), ".", Pick(0, 99));
      case 6:
        return Case(Chance(0.5) ? "true" : "false");
      case 7:
        return Chance(0.2) ? "NULL" : StringValue();
      case 8:
        return Chance(0.3) ? AttributeName() : absl::StrCat(Pick(0, 8));
      default:
        return StringValue();
    }
  }

  std::string Condition() {
    const auto [attr, type] = Attribute();
    auto value = [&, attr = attr, type = type] { return Value(attr, type); };
    const bool text = type == enums::INDEXED_VALUE_TYPE_TEXT ||
                      type == enums::INDEXED_VALUE_TYPE_KEYWORD_LIST;
    switch (Pick(0, 11)) {
      case 0:
      case 1:
      case 2: {
        static const std::vector<std::string> kOps = {"=", "!=", "<>", "<", "<=", ">", ">="};
        return absl::StrCat(attr, " ", text && Chance(0.8) ? "=" : One(kOps), " ", value());
      }
      case 3:
      case 4: {
        std::vector<std::string> values;
        for (int i = Pick(1, 4); i > 0; --i) values.push_back(value());
        return absl::StrCat(attr, Chance(0.3) ? Case(" NOT IN (") : Case(" IN ("),
                            absl::StrJoin(values, ", "), ")");
      }
      case 5:
        return absl::StrCat(attr, Chance(0.3) ? Case(" NOT BETWEEN ") : Case(" BETWEEN "),
                            value(), Case(" AND "), value());
      case 6:
      case 7:
        return absl::StrCat(attr, Chance(0.3) ? Case(" NOT STARTS_WITH ") : Case(" STARTS_WITH "),
                            Chance(0.9) ? StringValue() : Value());
      case 8:
        return absl::StrCat(attr, Case(Chance(0.5) ? " IS NULL" : " IS NOT NULL"));
      case 9:
        return absl::StrCat(attr, Chance(0.5) ? Case(" LIKE ") : " <=> ", value());
      default:
        return absl::StrCat(attr, " = ", value());
    }
  }

  std::string Expr(int depth) {
    if (depth <= 0 || Chance(0.35)) return Condition();
    switch (Pick(0, 5)) {
      case 0:
        return absl::StrCat(Case("NOT "), Expr(depth - 1));
      case 1:
        return absl::StrCat("(", Expr(depth - 1), ")");
      case 2:
      case 3:
        return absl::StrCat(Expr(depth - 1), Case(" AND "), Expr(depth - 1));
      default:
        return absl::StrCat(Expr(depth - 1), Chance(0.1) ? " || " : Case(" OR "),
                            Expr(depth - 1));
    }
  }

  std::mt19937_64 rng_;
};

// What compiled SQL may contain: the compiler's keywords, our table and column names, $N,
// operators, and its three constants.
std::string ForeignSqlText(absl::string_view sql) {
  static const auto* words = [] {
    auto* w = new std::set<std::string>{
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL",
        "EXISTS", "LIKE", "ESCAPE", "GLOB", "CAST", "AS", "REAL", "DOUBLE", "PRECISION",
        "COALESCE", "DESC", "NULLS", "LAST", "OFFSET", "visibility",
        "visibility_search_attributes",
        "sa", "namespace_id", "sa.namespace_id", "sa.run_id", "sa.name", "sa.int_value",
        "sa.double_value", "sa.text_value", "visibility.namespace_id", "visibility.run_id"};
    for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) {
      if (!a.column.empty()) w->insert(std::string(a.column));
    }
    return w;
  }();
  size_t i = 0;
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == ' ') {
      ++i;
    } else if (c == '$') {
      size_t j = i + 1;
      while (j < sql.size() && absl::ascii_isdigit(sql[j])) ++j;
      if (j == i + 1) return std::string(sql.substr(i));
      i = j;
    } else if (absl::ascii_isalpha(c) || c == '_') {
      size_t j = i;
      while (j < sql.size() && (absl::ascii_isalnum(sql[j]) || sql[j] == '_' || sql[j] == '.')) {
        ++j;
      }
      if (!words->contains(std::string(sql.substr(i, j - i)))) return std::string(sql.substr(i));
      i = j;
    } else if (absl::ascii_isdigit(c)) {
      size_t j = i;
      while (j < sql.size() && absl::ascii_isdigit(sql[j])) ++j;
      const absl::string_view number = sql.substr(i, j - i);
      if (number != "0" && number != "1" && number != "9223372036854775807") {
        return std::string(sql.substr(i));
      }
      i = j;
    } else if (absl::StartsWith(sql.substr(i), "'!'")) {
      i += 3;
    } else if (absl::StartsWith(sql.substr(i), "<>") || absl::StartsWith(sql.substr(i), "<=") ||
               absl::StartsWith(sql.substr(i), ">=")) {
      i += 2;
    } else if (absl::string_view("()=<>,").find(c) != absl::string_view::npos) {
      ++i;
    } else {
      return std::string(sql.substr(i));
    }
  }
  return "";
}

// Every placeholder numbers a parameter, and every parameter is used.
std::string PlaceholderMismatch(const CompiledVisibilityQuery& q, int first) {
  std::set<int> used;
  for (absl::string_view sql : {absl::string_view(q.where), absl::string_view(q.order_by)}) {
    for (size_t i = sql.find('$'); i != absl::string_view::npos; i = sql.find('$', i + 1)) {
      size_t j = i + 1;
      while (j < sql.size() && absl::ascii_isdigit(sql[j])) ++j;
      int n = 0;
      if (!absl::SimpleAtoi(sql.substr(i + 1, j - i - 1), &n)) return "bad placeholder";
      used.insert(n);
    }
  }
  if (q.params.empty()) return used.empty() ? "" : "placeholders without parameters";
  if (used.size() != q.params.size() || *used.begin() != first ||
      *used.rbegin() != first + static_cast<int>(q.params.size()) - 1) {
    return absl::StrCat(used.size(), " placeholders for ", q.params.size(), " parameters");
  }
  for (const SqlValue& p : q.params) {
    const auto* s = std::get_if<std::string>(&p);
    if (!std::holds_alternative<int64_t>(p) && s == nullptr) return "a parameter of no type";
    if (s != nullptr && absl::StrContains(*s, '\0')) return "a NUL in a parameter";
  }
  return "";
}

// Runs SQL on a raw SQLite connection: prepared and finalized each time, unlike the driver,
// which keeps every distinct statement it has seen.
class RawSqlite {
 public:
  RawSqlite() {
    EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    for (const std::string& ddl : VisibilityDdl(Dialect::kSqlite)) Exec(ddl, {});
    const char* dbl = "REAL";
    for (const Run& r : Runs()) {
      Exec("INSERT INTO visibility VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, 2, "
           "?12, ?13, ?3, ?2)",
           {r.ns, r.run_id, r.workflow_id, r.workflow_type, r.task_queue, r.status, r.start,
            r.execution, r.close, r.history_length, r.duration, r.parent_workflow_id,
            r.parent_run_id});
      for (const auto& rows : r.side) {
        for (const SideRow& s : rows) {
          SqlValue d;
          if (s.double_value.has_value()) d = absl::StrFormat("%.17g", *s.double_value);
          Exec(absl::StrCat("INSERT INTO visibility_search_attributes VALUES (?1, ?2, ?3, ?4, "
                            "CAST(?5 AS ",
                            dbl, "), ?6)"),
               {r.ns, r.run_id, s.name, s.int_value, d, s.text_value});
        }
      }
    }
  }
  ~RawSqlite() { sqlite3_close(db_); }

  // Returns "" or SQLite's error.
  std::string Exec(const std::string& sql_with_dollars, const std::vector<SqlValue>& params) {
    const std::string sql = absl::StrReplaceAll(sql_with_dollars, {{"$", "?"}});
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr) !=
        SQLITE_OK) {
      return sqlite3_errmsg(db_);
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      if (const auto* n = std::get_if<int64_t>(&params[i])) {
        sqlite3_bind_int64(stmt, idx, *n);
      } else if (const auto* s = std::get_if<std::string>(&params[i])) {
        sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_null(stmt, idx);
      }
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    std::string error = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return error;
  }

 private:
  sqlite3* db_ = nullptr;
};

struct FuzzStats {
  int ok = 0;
  int refused = 0;
  int executed = 0;
};

// Checks one query in one dialect and kind; returns "" or what is wrong.
std::string CheckOne(const std::string& query, Dialect dialect, VisibilityQueryKind kind,
                     RawSqlite* sqlite, FuzzStats* stats,
                     std::vector<std::pair<std::string, CompiledVisibilityQuery>>* for_pg) {
  VisibilityQueryOptions options = Options(dialect, kind);
  options.first_placeholder = 2;
  absl::StatusOr<CompiledVisibilityQuery> q = CompileVisibilityQuery(query, TestSchema(), options);
  if (!q.ok()) {
    ++stats->refused;
    if (q.status().code() != absl::StatusCode::kInvalidArgument) {
      return absl::StrCat("status ", q.status().ToString());
    }
    if (!absl::StartsWith(q.status().message(), "invalid query: ")) {
      return absl::StrCat("message ", q.status().message());
    }
    return "";
  }
  ++stats->ok;
  for (const std::string* sql : {&q->where, &q->order_by, &q->group_by}) {
    if (std::string foreign = ForeignSqlText(*sql); !foreign.empty()) {
      return absl::StrCat("foreign SQL text at: ", foreign);
    }
  }
  if (std::string bad = PlaceholderMismatch(*q, 2); !bad.empty()) return bad;
  std::string sql;
  if (kind == VisibilityQueryKind::kCount) {
    const std::string group = q->group_by.empty() ? "" : absl::StrCat(q->group_by, ", ");
    sql = absl::StrCat("SELECT ", group, "COUNT(*) FROM visibility WHERE namespace_id = $1",
                       q->where.empty() ? "" : " AND ", q->where,
                       q->group_by.empty() ? "" : " GROUP BY ", q->group_by);
  } else {
    sql = absl::StrCat("SELECT run_id FROM visibility WHERE namespace_id = $1",
                       q->where.empty() ? "" : " AND ", q->where, " ORDER BY ", q->order_by);
  }
  if (dialect == Dialect::kSqlite) {
    std::vector<SqlValue> params = {std::string("ns")};
    params.insert(params.end(), q->params.begin(), q->params.end());
    if (std::string error = sqlite->Exec(sql, params); !error.empty()) {
      return absl::StrCat("SQLite: ", error, " in ", sql);
    }
    ++stats->executed;
  } else if (for_pg != nullptr && for_pg->size() < 3000) {
    for_pg->emplace_back(sql, *std::move(q));
  }
  return "";
}

TEST(VisibilityQueryFuzzTest, RandomAndMutatedQueries) {
  constexpr int kQueries = 100000;
  const auto started = std::chrono::steady_clock::now();
  QueryGenerator gen(20240917);
  RawSqlite sqlite;
  FuzzStats stats;
  std::vector<std::pair<std::string, CompiledVisibilityQuery>> for_pg;
  const bool postgres = std::getenv("ALMANAC_TEST_POSTGRES") != nullptr;
  int failures = 0;
  for (int i = 0; i < kQueries && failures < 10; ++i) {
    std::string query = gen.Query();
    if (i % 2 == 1) query = gen.Mutate(std::move(query));
    const VisibilityQueryKind kind =
        gen.Chance(0.2) ? VisibilityQueryKind::kCount : VisibilityQueryKind::kList;
    for (Dialect dialect : {Dialect::kSqlite, Dialect::kPostgres}) {
      std::string problem =
          CheckOne(query, dialect, kind, &sqlite, &stats, postgres ? &for_pg : nullptr);
      if (!problem.empty()) {
        ADD_FAILURE() << "query: " << absl::CHexEscape(query) << "\n" << problem;
        ++failures;
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::cout << "fuzz: " << kQueries << " queries, " << stats.ok << " compiled, " << stats.refused
            << " refused, " << stats.executed << " run on SQLite, in " << seconds << " s\n";
  // Both outcomes must be well represented, or the generator has drifted.
  EXPECT_GT(stats.ok, kQueries / 5);
  EXPECT_GT(stats.refused, kQueries / 5);

  if (!postgres) return;
  const char* env = std::getenv("ALMANAC_TEST_POSTGRES");
  std::vector<std::string> parts = absl::StrSplit(env, ':');
  ASSERT_EQ(parts.size(), 4u);
  PostgresOptions admin{parts[0], std::stoi(parts[1]), parts[2], "", parts[3], 1};
  auto a = NewPostgresDriver(admin);
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string db =
      absl::StrCat("visfuzz_", absl::StrReplaceAll(NewUuid(), {{"-", ""}}).substr(0, 16));
  {
    auto conn = (*a)->Acquire();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)->Exec(absl::StrCat("CREATE DATABASE ", db), {}, nullptr).ok());
  }
  PostgresOptions opts = admin;
  opts.database = db;
  auto d = NewPostgresDriver(opts);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(Populate(d->get()).ok());
  auto conn = (*d)->Acquire();
  ASSERT_TRUE(conn.ok());
  for (const auto& [sql, q] : for_pg) {
    std::vector<SqlValue> params = {std::string("ns")};
    params.insert(params.end(), q.params.begin(), q.params.end());
    absl::Status st = (*conn)->Exec(sql, params, nullptr);
    ASSERT_TRUE(st.ok()) << st << " in " << sql;
  }
  std::cout << "fuzz: " << for_pg.size() << " compiled queries run on PostgreSQL\n";
}

}  // namespace
}  // namespace almanac::persistence
