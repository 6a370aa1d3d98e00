// Visibility queries: a lexer and a recursive-descent parser that follow the grammar Temporal's
// server accepts (its fork of vitess's sqlparser, restricted to what its query converter
// allows), then a compiler that resolves each attribute, checks operator and value against the
// attribute's type as Temporal's converter does, and writes parameterised SQL.

#include "persistence/visibility_query.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace almanac::persistence {
namespace {

namespace enums_v1 = temporal::api::enums::v1;

// Temporal's error texts: the frontend leads with "invalid query", the converter with one of
// three kinds.
constexpr absl::string_view kMalformed = "malformed SQL query";
constexpr absl::string_view kNotSupported = "operation is not supported";
constexpr absl::string_view kInvalidExpression = "invalid expression";

template <typename... Args>
absl::Status QueryError(absl::string_view kind, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat("invalid query: ", kind, ": ", args...));
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points beyond Unicode.
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
        (extra == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += extra + 1;
  }
  return true;
}

// Query text for an error message: control bytes escaped, the rest kept (the query is valid
// UTF-8); with go_quoted, also '"' and '\\', as Go's %q writes a string between quotes.
std::string ForMessage(absl::string_view s, bool go_quoted = false) {
  std::string out;
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", u));
    } else if (go_quoted && (c == '"' || c == '\\')) {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// At most `max` bytes of s, not cutting a UTF-8 sequence.
absl::string_view Prefix(absl::string_view s, size_t max) {
  if (s.size() <= max) return s;
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return s.substr(0, max);
}

// Renders a literal as Temporal's messages do (Go's %#v, then its type).
std::string GoValue(const QueryLiteral& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return absl::StrCat("\"", ForMessage(*s, /*go_quoted=*/true), "\"");
  }
  if (const auto* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  if (const auto* d = std::get_if<double>(&v)) return absl::StrCat(*d);
  return std::get<bool>(v) ? "true" : "false";
}

absl::string_view GoType(const QueryLiteral& v) {
  if (std::holds_alternative<std::string>(v)) return "string";
  if (std::holds_alternative<int64_t>(v)) return "int64";
  if (std::holds_alternative<double>(v)) return "float64";
  return "bool";
}

// ---------------------------------------------------------------------------------------------
// Lexer.

enum class Tok {
  kEnd,
  kIdent,
  kString,
  kInteger,
  kDecimal,
  kHexNumber,
  kLParen,
  kRParen,
  kComma,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kNullSafeEq,
  kPlus,
  kMinus,
  // Keywords.
  kAnd,
  kOr,
  kNot,
  kIn,
  kBetween,
  kStartsWith,
  kIs,
  kNull,
  kTrue,
  kFalse,
  kLike,
  kOrder,
  kGroup,
  kBy,
  kAsc,
  kDesc,
  kLimit,
  // A character or sequence the grammar has no use for, or a lexical error.
  kOther,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string value;  // an identifier's name, a string's decoded text, a number's digits
  size_t pos = 0;     // byte offset in the query
  size_t len = 0;     // bytes of the query it spans
  absl::string_view problem;  // kOther from a lexical error: what is wrong
};

bool IsIdentStart(char c) { return absl::ascii_isalpha(c) || c == '_' || c == '@'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || absl::ascii_isdigit(c); }

Tok KeywordOrIdent(absl::string_view word) {
  static const auto* keywords = new absl::flat_hash_map<std::string, Tok>{
      {"and", Tok::kAnd},       {"or", Tok::kOr},
      {"not", Tok::kNot},       {"in", Tok::kIn},
      {"between", Tok::kBetween}, {"starts_with", Tok::kStartsWith},
      {"is", Tok::kIs},         {"null", Tok::kNull},
      {"true", Tok::kTrue},     {"false", Tok::kFalse},
      {"like", Tok::kLike},     {"order", Tok::kOrder},
      {"group", Tok::kGroup},   {"by", Tok::kBy},
      {"asc", Tok::kAsc},       {"desc", Tok::kDesc},
      {"limit", Tok::kLimit},
  };
  auto it = keywords->find(absl::AsciiStrToLower(word));
  return it == keywords->end() ? Tok::kIdent : it->second;
}

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  // Splits the whole query; a lexical error ends the list with a kOther token carrying the
  // problem, which the parser reports where it meets it.
  std::vector<Token> Tokens() {
    std::vector<Token> out;
    for (;;) {
      Token t = Next();
      const Tok kind = t.kind;
      const bool lexical_error = kind == Tok::kOther && !t.problem.empty();
      out.push_back(std::move(t));
      if (kind == Tok::kEnd || lexical_error) break;
    }
    if (out.back().kind != Tok::kEnd) out.push_back(Token{Tok::kEnd, "", text_.size(), 0, {}});
    return out;
  }

 private:
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool AtEnd(size_t ahead = 0) const { return pos_ + ahead >= text_.size(); }

  Token Make(Tok kind, size_t start, std::string value = "") const {
    return Token{kind, std::move(value), start, pos_ - start, {}};
  }
  Token Error(size_t start, absl::string_view problem) const {
    Token t = Make(Tok::kOther, start);
    t.problem = problem;
    if (t.len == 0) t.len = 1;
    return t;
  }

  // Skips blanks and comments (--, # to the end of the line; /* ... */). Returns false on an
  // unterminated /* comment, with *start at it.
  bool SkipBlanksAndComments(size_t* start) {
    for (;;) {
      while (!AtEnd() && (Peek() == ' ' || Peek() == '\n' || Peek() == '\r' || Peek() == '\t')) {
        ++pos_;
      }
      if ((Peek() == '-' && Peek(1) == '-') || Peek() == '#') {
        while (!AtEnd() && Peek() != '\n') ++pos_;
        continue;
      }
      if (Peek() == '/' && Peek(1) == '*') {
        *start = pos_;
        const size_t close = text_.find("*/", pos_ + 2);
        if (close == absl::string_view::npos) {
          pos_ = text_.size();
          return false;
        }
        pos_ = close + 2;
        continue;
      }
      return true;
    }
  }

  Token Next() {
    size_t start = pos_;
    if (!SkipBlanksAndComments(&start)) return Error(start, "unterminated comment");
    start = pos_;
    if (AtEnd()) return Make(Tok::kEnd, start);
    const char c = Peek();
    if (IsIdentStart(c)) {
      while (!AtEnd() && IsIdentChar(Peek())) ++pos_;
      const absl::string_view word = text_.substr(start, pos_ - start);
      return Make(KeywordOrIdent(word), start, std::string(word));
    }
    if (absl::ascii_isdigit(c) || (c == '.' && absl::ascii_isdigit(Peek(1)))) return Number();
    ++pos_;
    switch (c) {
      case '(':
        return Make(Tok::kLParen, start);
      case ')':
        return Make(Tok::kRParen, start);
      case ',':
        return Make(Tok::kComma, start);
      case '=':
        return Make(Tok::kEq, start);
      case '+':
        return Make(Tok::kPlus, start);
      case '-':
        return Make(Tok::kMinus, start);
      case '!':
        if (Peek() == '=') {
          ++pos_;
          return Make(Tok::kNe, start);
        }
        return Make(Tok::kOther, start);
      case '<':
        if (Peek() == '>') {
          ++pos_;
          return Make(Tok::kNe, start);
        }
        if (Peek() == '=') {
          ++pos_;
          if (Peek() == '>') {
            ++pos_;
            return Make(Tok::kNullSafeEq, start);
          }
          return Make(Tok::kLe, start);
        }
        return Make(Tok::kLt, start);
      case '>':
        if (Peek() == '=') {
          ++pos_;
          return Make(Tok::kGe, start);
        }
        return Make(Tok::kGt, start);
      case '&':
        if (Peek() == '&') {
          ++pos_;
          return Make(Tok::kAnd, start);
        }
        return Make(Tok::kOther, start);
      case '|':
        if (Peek() == '|') {
          ++pos_;
          return Make(Tok::kOr, start);
        }
        return Make(Tok::kOther, start);
      case '\'':
      case '"':
        return String(start, c);
      case '`':
        return QuotedIdent(start);
      default:
        return Make(Tok::kOther, start);
    }
  }

  // MySQL's escapes, as the parser decodes them; any other escaped character is itself.
  static char Unescape(char c) {
    switch (c) {
      case '0':
        return '\0';
      case 'b':
        return '\b';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'Z':
        return '\x1a';
      default:
        return c;
    }
  }

  Token String(size_t start, char delim) {
    std::string value;
    for (;;) {
      if (AtEnd()) return Error(start, "unterminated string");
      const char c = text_[pos_++];
      if (c == '\\') {
        if (AtEnd()) return Error(start, "unterminated string");
        value.push_back(Unescape(text_[pos_++]));
      } else if (c == delim) {
        if (Peek() != delim || AtEnd()) break;
        value.push_back(delim);  // a doubled delimiter
        ++pos_;
      } else {
        value.push_back(c);
      }
    }
    return Make(Tok::kString, start, std::move(value));
  }

  Token QuotedIdent(size_t start) {
    std::string value;
    for (;;) {
      if (AtEnd()) return Error(start, "unterminated quoted name");
      const char c = text_[pos_++];
      if (c == '`') {
        if (Peek() != '`' || AtEnd()) break;
        value.push_back('`');
        ++pos_;
      } else {
        value.push_back(c);
      }
    }
    if (value.empty()) return Error(start, "empty quoted name");
    return Make(Tok::kIdent, start, std::move(value));
  }

  void Digits(int base) {
    while (!AtEnd()) {
      const char c = Peek();
      const bool ok = base == 16 ? absl::ascii_isxdigit(c) : absl::ascii_isdigit(c);
      if (!ok) break;
      ++pos_;
    }
  }

  // The number forms of the parser's lexer: 12, 1.5, .5, 1., 1e3, 1.5E-3, 0x1F. A letter
  // right after a number is an error.
  Token Number() {
    const size_t start = pos_;
    Tok kind = Tok::kInteger;
    if (Peek() == '0' && (Peek(1) == 'x' || Peek(1) == 'X')) {
      pos_ += 2;
      Digits(16);
      kind = Tok::kHexNumber;
    } else {
      Digits(10);
      if (Peek() == '.') {
        kind = Tok::kDecimal;
        ++pos_;
        Digits(10);
      }
      if (Peek() == 'e' || Peek() == 'E') {
        kind = Tok::kDecimal;
        ++pos_;
        if (Peek() == '+' || Peek() == '-') ++pos_;
        Digits(10);
      }
    }
    if (!AtEnd() && IsIdentStart(Peek())) {
      while (!AtEnd() && IsIdentChar(Peek())) ++pos_;
      return Error(start, "a letter follows a number");
    }
    return Make(kind, start, std::string(text_.substr(start, pos_ - start)));
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Parser.

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text), tokens_(Lexer(text).Tokens()) {}

  absl::StatusOr<ParsedQuery> Parse() {
    ParsedQuery out;
    if (Peek().kind != Tok::kEnd && Peek().kind != Tok::kOrder && Peek().kind != Tok::kGroup) {
      absl::StatusOr<QueryNode> where = Or();
      if (!where.ok()) return where.status();
      out.where = std::move(*where);
    }
    if (Peek().kind == Tok::kGroup) {
      Take();
      if (absl::Status st = Expect(Tok::kBy); !st.ok()) return st;
      for (;;) {
        absl::StatusOr<std::string> name = Name();
        if (!name.ok()) return name.status();
        out.group_by.push_back(std::move(*name));
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (Peek().kind == Tok::kOrder) {
      Take();
      if (absl::Status st = Expect(Tok::kBy); !st.ok()) return st;
      for (;;) {
        QueryOrderTerm term;
        absl::StatusOr<std::string> name = Name();
        if (!name.ok()) return name.status();
        term.attribute = std::move(*name);
        if (Peek().kind == Tok::kAsc) {
          Take();
        } else if (Peek().kind == Tok::kDesc) {
          Take();
          term.descending = true;
        }
        out.order_by.push_back(std::move(term));
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (Peek().kind == Tok::kLimit) return QueryError(kNotSupported, "'LIMIT' clause");
    if (Peek().kind != Tok::kEnd) return SyntaxError(Peek());
    return out;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(next_ + ahead, tokens_.size() - 1)];
  }
  const Token& Take() {
    const Token& t = Peek();
    if (next_ < tokens_.size() - 1) ++next_;
    return t;
  }

  absl::Status SyntaxError(const Token& t) const {
    if (t.kind == Tok::kEnd) {
      return QueryError(kMalformed, "syntax error at position ", t.pos + 1);
    }
    return QueryError(kMalformed, "syntax error at position ", t.pos + 1, " near '",
                      Near(t), "'", t.problem.empty() ? "" : ": ", t.problem);
  }

  // The token as written, shortened.
  std::string Near(const Token& t) const {
    return ForMessage(Prefix(text_.substr(t.pos, t.len), 40));
  }

  absl::Status Expect(Tok kind) {
    if (Peek().kind != kind) return SyntaxError(Peek());
    Take();
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Name() {
    if (Peek().kind != Tok::kIdent) return SyntaxError(Peek());
    return Take().value;
  }

  absl::Status Enter(const Token& at) {
    if (++depth_ >= kMaxQueryNesting) {
      return QueryError(kMalformed, "max nesting level reached at position ", at.pos + 1);
    }
    return absl::OkStatus();
  }

  // Left-to-right chains become one node with every operand, not a deep tree, so that a long
  // chain costs no stack.
  absl::StatusOr<QueryNode> Or() { return Chain(Tok::kOr, QueryNode::Kind::kOr); }
  absl::StatusOr<QueryNode> And() { return Chain(Tok::kAnd, QueryNode::Kind::kAnd); }

  absl::StatusOr<QueryNode> Chain(Tok op, QueryNode::Kind kind) {
    absl::StatusOr<QueryNode> first = op == Tok::kOr ? And() : Not();
    if (!first.ok() || Peek().kind != op) return first;
    QueryNode node;
    node.kind = kind;
    node.children.push_back(std::move(*first));
    while (Peek().kind == op) {
      Take();
      absl::StatusOr<QueryNode> next = op == Tok::kOr ? And() : Not();
      if (!next.ok()) return next.status();
      node.children.push_back(std::move(*next));
    }
    return node;
  }

  absl::StatusOr<QueryNode> Not() {
    if (Peek().kind != Tok::kNot) return Primary();
    const Token& not_token = Take();
    if (absl::Status st = Enter(not_token); !st.ok()) return st;
    absl::StatusOr<QueryNode> operand = Not();
    --depth_;
    if (!operand.ok()) return operand.status();
    QueryNode node;
    node.kind = QueryNode::Kind::kNot;
    node.children.push_back(std::move(*operand));
    return node;
  }

  absl::StatusOr<QueryNode> Primary() {
    if (Peek().kind == Tok::kLParen) {
      const Token& open = Take();
      if (absl::Status st = Enter(open); !st.ok()) return st;
      absl::StatusOr<QueryNode> inner = Or();
      --depth_;
      if (!inner.ok()) return inner.status();
      if (absl::Status st = Expect(Tok::kRParen); !st.ok()) return st;
      return inner;
    }
    return Condition();
  }

  static bool IsLiteralStart(Tok kind) {
    return kind == Tok::kString || kind == Tok::kInteger || kind == Tok::kDecimal ||
           kind == Tok::kHexNumber || kind == Tok::kTrue || kind == Tok::kFalse ||
           kind == Tok::kNull || kind == Tok::kPlus || kind == Tok::kMinus;
  }

  // What may follow a complete condition.
  static bool EndsCondition(Tok kind) {
    return kind == Tok::kEnd || kind == Tok::kAnd || kind == Tok::kOr || kind == Tok::kRParen ||
           kind == Tok::kGroup || kind == Tok::kOrder || kind == Tok::kLimit;
  }

  absl::StatusOr<QueryNode> Condition() {
    const Token& first = Peek();
    if (first.kind != Tok::kIdent) {
      if (IsLiteralStart(first.kind)) {
        return QueryError(kInvalidExpression, "must be a column name but was a value (near '",
                          Near(first), "' at position ", first.pos + 1, ")");
      }
      return SyntaxError(first);
    }
    if (++conditions_ > kMaxQueryConditions) {
      return QueryError(kInvalidExpression, "more than ", kMaxQueryConditions, " conditions");
    }
    QueryNode node;
    node.kind = QueryNode::Kind::kCondition;
    node.attribute = Take().value;

    const Token& op = Take();
    switch (op.kind) {
      case Tok::kEq:
      case Tok::kNe:
      case Tok::kLt:
      case Tok::kLe:
      case Tok::kGt:
      case Tok::kGe:
      case Tok::kNullSafeEq: {
        static const auto* ops = new absl::flat_hash_map<Tok, QueryOp>{
            {Tok::kEq, QueryOp::kEqual},        {Tok::kNe, QueryOp::kNotEqual},
            {Tok::kLt, QueryOp::kLess},         {Tok::kLe, QueryOp::kLessOrEqual},
            {Tok::kGt, QueryOp::kGreater},      {Tok::kGe, QueryOp::kGreaterOrEqual},
            {Tok::kNullSafeEq, QueryOp::kNullSafeEqual}};
        node.op = ops->at(op.kind);
        return WithValues(std::move(node), 1);
      }
      case Tok::kIn:
        node.op = QueryOp::kIn;
        return WithList(std::move(node));
      case Tok::kBetween:
        node.op = QueryOp::kBetween;
        return WithRange(std::move(node));
      case Tok::kStartsWith:
        node.op = QueryOp::kStartsWith;
        return WithValues(std::move(node), 1);
      case Tok::kLike:
        node.op = QueryOp::kLike;
        return WithValues(std::move(node), 1);
      case Tok::kNot: {
        const Token& negated = Take();
        switch (negated.kind) {
          case Tok::kIn:
            node.op = QueryOp::kNotIn;
            return WithList(std::move(node));
          case Tok::kBetween:
            node.op = QueryOp::kNotBetween;
            return WithRange(std::move(node));
          case Tok::kStartsWith:
            node.op = QueryOp::kNotStartsWith;
            return WithValues(std::move(node), 1);
          case Tok::kLike:
            node.op = QueryOp::kNotLike;
            return WithValues(std::move(node), 1);
          default:
            return SyntaxError(negated);
        }
      }
      case Tok::kIs: {
        bool negated = false;
        if (Peek().kind == Tok::kNot) {
          Take();
          negated = true;
        }
        const Token& what = Take();
        if (what.kind == Tok::kNull) {
          node.op = negated ? QueryOp::kIsNotNull : QueryOp::kIsNull;
          return node;
        }
        if (what.kind == Tok::kTrue || what.kind == Tok::kFalse) {
          return QueryError(kInvalidExpression,
                            "'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'");
        }
        return SyntaxError(what);
      }
      default:
        if (EndsCondition(op.kind)) {
          return QueryError(kInvalidExpression, "incomplete expression");
        }
        return SyntaxError(op);
    }
  }

  absl::StatusOr<QueryNode> WithValues(QueryNode node, int n) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<QueryLiteral> v = Literal();
      if (!v.ok()) return v.status();
      node.values.push_back(std::move(*v));
    }
    return node;
  }

  absl::StatusOr<QueryNode> WithRange(QueryNode node) {
    absl::StatusOr<QueryLiteral> from = Literal();
    if (!from.ok()) return from.status();
    if (absl::Status st = Expect(Tok::kAnd); !st.ok()) return st;
    absl::StatusOr<QueryLiteral> to = Literal();
    if (!to.ok()) return to.status();
    node.values.push_back(std::move(*from));
    node.values.push_back(std::move(*to));
    return node;
  }

  absl::StatusOr<QueryNode> WithList(QueryNode node) {
    if (absl::Status st = Expect(Tok::kLParen); !st.ok()) return st;
    for (;;) {
      absl::StatusOr<QueryLiteral> v = Literal();
      if (!v.ok()) return v.status();
      node.values.push_back(std::move(*v));
      if (node.values.size() > static_cast<size_t>(kMaxQueryParams)) {
        return QueryError(kInvalidExpression, "more than ", kMaxQueryParams, " values");
      }
      if (Peek().kind != Tok::kComma) break;
      Take();
    }
    if (absl::Status st = Expect(Tok::kRParen); !st.ok()) return st;
    return node;
  }

  absl::StatusOr<QueryLiteral> Literal() {
    const Token& t = Peek();
    switch (t.kind) {
      case Tok::kString: {
        Take();
        // Embedded NULs would be cut short by libpq's text parameters, silently changing
        // the value; PostgreSQL rejects them in text anyway.
        if (absl::StrContains(t.value, '\0')) {
          return QueryError(kInvalidExpression, "a string value contains a NUL character");
        }
        return QueryLiteral(t.value);
      }
      case Tok::kTrue:
        Take();
        return QueryLiteral(true);
      case Tok::kFalse:
        Take();
        return QueryLiteral(false);
      case Tok::kNull:
        return QueryError(kInvalidExpression,
                          "NULL is not a value to compare with: use IS NULL or IS NOT NULL");
      case Tok::kIdent:
        return QueryError(kNotSupported,
                          "column name on the right side of comparison expression (did you "
                          "forget to quote \"",
                          ForMessage(t.value, /*go_quoted=*/true), "\"?)");
      case Tok::kPlus:
      case Tok::kMinus:
      case Tok::kInteger:
      case Tok::kDecimal:
      case Tok::kHexNumber:
        return Number();
      default:
        return SyntaxError(t);
    }
  }

  // A number with any signs before it ("- -5" is 5). An integer beyond int64 reads as a
  // decimal, as Temporal's value parser falls back to a float.
  absl::StatusOr<QueryLiteral> Number() {
    bool negative = false;
    while (Peek().kind == Tok::kPlus || Peek().kind == Tok::kMinus) {
      if (Take().kind == Tok::kMinus) negative = !negative;
    }
    const Token& t = Take();
    const std::string text = absl::StrCat(negative ? "-" : "", t.value);
    auto unparsable = [&] {
      return QueryError(kInvalidExpression, "unable to parse value \"", ForMessage(text, true),
                        "\"");
    };
    if (t.kind == Tok::kHexNumber) return unparsable();
    if (t.kind != Tok::kInteger && t.kind != Tok::kDecimal) return SyntaxError(t);
    if (t.kind == Tok::kInteger) {
      uint64_t magnitude = 0;
      bool overflow = false;
      for (char c : t.value) {
        const uint64_t digit = static_cast<uint64_t>(c - '0');
        if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
          overflow = true;
          break;
        }
        magnitude = magnitude * 10 + digit;
      }
      constexpr uint64_t kMaxPositive = std::numeric_limits<int64_t>::max();
      if (!overflow && !negative && magnitude <= kMaxPositive) {
        return QueryLiteral(static_cast<int64_t>(magnitude));
      }
      if (!overflow && negative && magnitude <= kMaxPositive + 1) {
        return QueryLiteral(static_cast<int64_t>(0 - magnitude));
      }
    }
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(d)) return unparsable();
    return QueryLiteral(d);
  }

  absl::string_view text_;
  std::vector<Token> tokens_;
  size_t next_ = 0;
  int depth_ = 0;
  int conditions_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Search attributes.

using enums_v1::INDEXED_VALUE_TYPE_BOOL;
using enums_v1::INDEXED_VALUE_TYPE_DATETIME;
using enums_v1::INDEXED_VALUE_TYPE_DOUBLE;
using enums_v1::INDEXED_VALUE_TYPE_INT;
using enums_v1::INDEXED_VALUE_TYPE_KEYWORD;
using enums_v1::INDEXED_VALUE_TYPE_KEYWORD_LIST;
using enums_v1::INDEXED_VALUE_TYPE_TEXT;

constexpr absl::string_view kExecutionStatus = "ExecutionStatus";
constexpr absl::string_view kExecutionDuration = "ExecutionDuration";
constexpr absl::string_view kReservedPrefix = "Temporal";

const absl::flat_hash_map<absl::string_view, const BuiltinSearchAttribute*>& BuiltinsByName() {
  static const auto* by_name = [] {
    auto* m = new absl::flat_hash_map<absl::string_view, const BuiltinSearchAttribute*>;
    for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) m->emplace(a.name, &a);
    return m;
  }();
  return *by_name;
}

ResolvedSearchAttribute FromBuiltin(const BuiltinSearchAttribute& a) {
  return ResolvedSearchAttribute{std::string(a.name), a.type, a.column, a.nullable};
}

std::optional<ResolvedSearchAttribute> Lookup(const SearchAttributeSchema& schema,
                                              absl::string_view name) {
  const auto& builtins = BuiltinsByName();
  if (auto it = builtins.find(name); it != builtins.end()) return FromBuiltin(*it->second);
  if (auto it = schema.custom.find(name); it != schema.custom.end()) {
    return ResolvedSearchAttribute{it->first, it->second, {}, true};
  }
  return std::nullopt;
}

bool IsMultiValued(IndexedValueType type) {
  return type == INDEXED_VALUE_TYPE_KEYWORD_LIST || type == INDEXED_VALUE_TYPE_TEXT;
}

// ---------------------------------------------------------------------------------------------
// Values.

// Days in a month of the proleptic Gregorian calendar.
int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}

// RFC 3339 as Go's time.Parse(time.RFC3339Nano) reads it:
// YYYY-MM-DDTHH:MM:SS[.fraction]{Z|+hh:mm|-hh:mm}, fractions of any length (digits beyond
// nanoseconds ignored), '.' or ',' before them. Returns microseconds since the epoch, rounded
// down, as Temporal keeps times in SQL to the microsecond.
std::optional<int64_t> ParseRfc3339Micros(absl::string_view s) {
  size_t i = 0;
  auto number = [&](size_t width, int* out) {
    if (i + width > s.size()) return false;
    int v = 0;
    for (size_t k = 0; k < width; ++k) {
      if (!absl::ascii_isdigit(s[i + k])) return false;
      v = v * 10 + (s[i + k] - '0');
    }
    i += width;
    *out = v;
    return true;
  };
  auto literal = [&](char c) {
    if (i >= s.size() || s[i] != c) return false;
    ++i;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!number(4, &year) || !literal('-') || !number(2, &month) || !literal('-') ||
      !number(2, &day) || !literal('T') || !number(2, &hour) || !literal(':') ||
      !number(2, &minute) || !literal(':') || !number(2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 ||
      minute > 59 || second > 59) {
    return std::nullopt;
  }
  int64_t nanos = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    int digits = 0;
    while (i < s.size() && absl::ascii_isdigit(s[i])) {
      if (digits < 9) {
        nanos = nanos * 10 + (s[i] - '0');
        ++digits;
      }
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) nanos *= 10;
  }
  int offset_seconds = 0;  // "Z"
  if (!literal('Z')) {
    if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return std::nullopt;
    const int sign = s[i] == '-' ? -1 : 1;
    ++i;
    int oh, om;
    if (!number(2, &oh) || !literal(':') || !number(2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_seconds = sign * (oh * 3600 + om * 60);
  }
  if (i != s.size()) return std::nullopt;
  const absl::Time utc = absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                                         absl::UTCTimeZone()) -
                         absl::Seconds(offset_seconds);
  return absl::ToUnixMicros(utc) + nanos / 1000;
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Go's time.ParseDuration, plus Temporal's "d" (24h) unit: [-+]? then "0", or a sequence of
// decimal numbers each with a unit (ns, us, µs, μs, ms, s, m, h, d). Exact to the nanosecond;
// nullopt beyond int64 nanoseconds.
std::optional<int64_t> ParseGoDurationNanos(absl::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return 0;
  if (s.empty()) return std::nullopt;
  struct Unit {
    absl::string_view suffix;
    int64_t nanos;
  };
  // Longer suffixes first, so that "ms" is not read as "m".
  static constexpr Unit kUnits[] = {
      {"ns", 1},
      {"us", 1000},
      {"\xc2\xb5s", 1000},
      {"\xce\xbcs", 1000},
      {"ms", 1000000},
      {"s", 1000000000},
      {"m", 60 * int64_t{1000000000}},
      {"h", 3600 * int64_t{1000000000}},
      {"d", 86400 * int64_t{1000000000}},
  };
  __int128 total = 0;
  constexpr __int128 kLimit = static_cast<__int128>(std::numeric_limits<int64_t>::max()) + 1;
  while (!s.empty()) {
    __int128 whole = 0;
    size_t i = 0;
    bool any_digit = false;
    while (i < s.size() && absl::ascii_isdigit(s[i])) {
      whole = whole * 10 + (s[i] - '0');
      if (whole > kLimit) return std::nullopt;
      any_digit = true;
      ++i;
    }
    __int128 frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && absl::ascii_isdigit(s[i])) {
        if (scale < static_cast<__int128>(1000000000000000000)) {  // 18 digits are plenty
          frac = frac * 10 + (s[i] - '0');
          scale *= 10;
        }
        any_digit = true;
        ++i;
      }
    }
    if (!any_digit) return std::nullopt;
    s.remove_prefix(i);
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (absl::StartsWith(s, u.suffix)) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return std::nullopt;
    s.remove_prefix(unit->suffix.size());
    total += whole * unit->nanos + frac * unit->nanos / scale;
    if (total > kLimit) return std::nullopt;
  }
  if (!negative && total == kLimit) return std::nullopt;
  return static_cast<int64_t>(negative ? -total : total);
}

// Temporal's ExecutionDuration strings: an integer is nanoseconds; then a Go duration (with
// "d"); then hh:mm:ss.
std::optional<int64_t> ParseExecutionDurationNanos(absl::string_view s) {
  int64_t n;
  if (!s.empty() && s.find_first_not_of("+-0123456789") == absl::string_view::npos &&
      absl::SimpleAtoi(s, &n)) {
    return n;
  }
  if (std::optional<int64_t> d = ParseGoDurationNanos(s)) return d;
  // hh:mm:ss, minutes and seconds below 60.
  const size_t c1 = s.find(':');
  const size_t c2 = c1 == absl::string_view::npos ? c1 : s.find(':', c1 + 1);
  if (c2 == absl::string_view::npos) return std::nullopt;
  int64_t h, m, sec;
  auto all_digits = [](absl::string_view p) {
    return !p.empty() && p.find_first_not_of("0123456789") == absl::string_view::npos;
  };
  const absl::string_view hp = s.substr(0, c1), mp = s.substr(c1 + 1, c2 - c1 - 1),
                          sp = s.substr(c2 + 1);
  if (!all_digits(hp) || !all_digits(mp) || !all_digits(sp) || !absl::SimpleAtoi(hp, &h) ||
      !absl::SimpleAtoi(mp, &m) || !absl::SimpleAtoi(sp, &sec) || m > 59 || sec > 59) {
    return std::nullopt;
  }
  constexpr int64_t kSecond = 1000000000;
  if (h > (std::numeric_limits<int64_t>::max() - m * 60 * kSecond - sec * kSecond) /
              (3600 * kSecond)) {
    return std::nullopt;
  }
  return h * 3600 * kSecond + m * 60 * kSecond + sec * kSecond;
}

// Execution status names, both forms Temporal accepts: "Running" and
// "WORKFLOW_EXECUTION_STATUS_RUNNING", from the pinned enum, so that new statuses come along.
struct StatusNames {
  absl::flat_hash_map<std::string, int> by_name;
  absl::flat_hash_map<int, std::string> shorthand;
};

const StatusNames& ExecutionStatusNames() {
  static const auto* names = [] {
    auto* out = new StatusNames;
    constexpr absl::string_view kPrefix = "WORKFLOW_EXECUTION_STATUS_";
    const google::protobuf::EnumDescriptor* d = enums_v1::WorkflowExecutionStatus_descriptor();
    for (int i = 0; i < d->value_count(); ++i) {
      const google::protobuf::EnumValueDescriptor* v = d->value(i);
      absl::string_view full = v->name();
      std::string pascal;
      if (absl::ConsumePrefix(&full, kPrefix)) {
        bool upper = true;
        for (char c : full) {
          if (c == '_') {
            upper = true;
            continue;
          }
          pascal.push_back(upper ? absl::ascii_toupper(c) : absl::ascii_tolower(c));
          upper = false;
        }
      }
      out->by_name.emplace(std::string(v->name()), v->number());
      if (!pascal.empty()) {
        out->by_name.emplace(pascal, v->number());
        out->shorthand.emplace(v->number(), pascal);
      }
    }
    return out;
  }();
  return *names;
}

// ---------------------------------------------------------------------------------------------
// Compiler.

QueryOp Negated(QueryOp op) {
  switch (op) {
    case QueryOp::kEqual:
      return QueryOp::kNotEqual;
    case QueryOp::kNotEqual:
      return QueryOp::kEqual;
    case QueryOp::kLess:
      return QueryOp::kGreaterOrEqual;
    case QueryOp::kGreaterOrEqual:
      return QueryOp::kLess;
    case QueryOp::kGreater:
      return QueryOp::kLessOrEqual;
    case QueryOp::kLessOrEqual:
      return QueryOp::kGreater;
    case QueryOp::kIn:
      return QueryOp::kNotIn;
    case QueryOp::kNotIn:
      return QueryOp::kIn;
    case QueryOp::kBetween:
      return QueryOp::kNotBetween;
    case QueryOp::kNotBetween:
      return QueryOp::kBetween;
    case QueryOp::kStartsWith:
      return QueryOp::kNotStartsWith;
    case QueryOp::kNotStartsWith:
      return QueryOp::kStartsWith;
    case QueryOp::kIsNull:
      return QueryOp::kIsNotNull;
    case QueryOp::kIsNotNull:
      return QueryOp::kIsNull;
    case QueryOp::kLike:
      return QueryOp::kNotLike;
    case QueryOp::kNotLike:
      return QueryOp::kLike;
    case QueryOp::kNullSafeEqual:
      return QueryOp::kNullSafeEqual;  // refused before it is negated
  }
  return op;
}

bool OperatorAllowed(IndexedValueType type, QueryOp op) {
  switch (op) {
    case QueryOp::kIsNull:
    case QueryOp::kIsNotNull:
      return true;
    case QueryOp::kLike:
    case QueryOp::kNotLike:
    case QueryOp::kNullSafeEqual:
      return false;
    case QueryOp::kEqual:
    case QueryOp::kNotEqual:
      return true;
    case QueryOp::kIn:
    case QueryOp::kNotIn:
      return type != INDEXED_VALUE_TYPE_TEXT;
    case QueryOp::kStartsWith:
    case QueryOp::kNotStartsWith:
      return type == INDEXED_VALUE_TYPE_KEYWORD;
    case QueryOp::kLess:
    case QueryOp::kLessOrEqual:
    case QueryOp::kGreater:
    case QueryOp::kGreaterOrEqual:
      // Temporal lets Bool through here; an order of booleans answers no question.
      return type == INDEXED_VALUE_TYPE_KEYWORD || type == INDEXED_VALUE_TYPE_INT ||
             type == INDEXED_VALUE_TYPE_DOUBLE || type == INDEXED_VALUE_TYPE_DATETIME;
    case QueryOp::kBetween:
    case QueryOp::kNotBetween:
      return type == INDEXED_VALUE_TYPE_KEYWORD || type == INDEXED_VALUE_TYPE_INT ||
             type == INDEXED_VALUE_TYPE_DOUBLE || type == INDEXED_VALUE_TYPE_DATETIME;
  }
  return false;
}

absl::string_view SqlComparison(QueryOp op) {
  switch (op) {
    case QueryOp::kEqual:
      return "=";
    case QueryOp::kNotEqual:
      return "<>";
    case QueryOp::kLess:
      return "<";
    case QueryOp::kLessOrEqual:
      return "<=";
    case QueryOp::kGreater:
      return ">";
    case QueryOp::kGreaterOrEqual:
      return ">=";
    default:
      return "";
  }
}

// How many side-table conditions PostgreSQL may plan as joins; see Compiler::Exists.
constexpr int kJoinableExists = 8;

constexpr absl::string_view kSideTableFrom =
    "SELECT 1 FROM visibility_search_attributes sa WHERE sa.namespace_id = "
    "visibility.namespace_id AND sa.run_id = visibility.run_id AND sa.name = ";

// A literal converted for binding: a parameter value, or a double, which travels as text in a
// CAST since SqlValue has no double.
using Bound = std::variant<SqlValue, double>;

// A compiled boolean expression and how tightly it binds, to parenthesise no more than needed.
struct Sql {
  enum class Prec { kAtom, kAnd, kOr };
  std::string text;
  Prec prec = Prec::kAtom;
};

class Compiler {
 public:
  Compiler(const SearchAttributeSchema& schema, const VisibilityQueryOptions& options)
      : schema_(schema), options_(options) {}

  absl::StatusOr<CompiledVisibilityQuery> Compile(const ParsedQuery& query) {
    CompiledVisibilityQuery out;
    if (query.where.has_value()) {
      absl::StatusOr<Sql> where = Node(*query.where, /*negate=*/false);
      if (!where.ok()) return where.status();
      out.where = where->prec == Sql::Prec::kOr ? absl::StrCat("(", where->text, ")")
                                                : std::move(where->text);
      int depth = 0, deepest = 0;  // the SQL holds no parenthesis inside a string
      for (char c : out.where) {
        if (c == '(') deepest = std::max(deepest, ++depth);
        if (c == ')') --depth;
      }
      if (deepest > kMaxSqlNesting) {
        return QueryError(kNotSupported, "conditions nested more than ", kMaxSqlNesting,
                          " levels deep (AND within OR within AND ...)");
      }
    }
    if (absl::Status st = GroupBy(query, &out); !st.ok()) return st;
    if (absl::Status st = OrderBy(query, &out); !st.ok()) return st;
    out.params = std::move(params_);
    return out;
  }

 private:
  // Adds a parameter (a SqlValue, or what one is made of); returns its placeholder.
  template <typename T>
  std::string Placeholder(T&& value) {
    params_.emplace_back(std::forward<T>(value));
    return absl::StrCat("$", options_.first_placeholder + static_cast<int>(params_.size()) - 1);
  }

  absl::Status CheckParams() const {
    if (params_.size() > static_cast<size_t>(kMaxQueryParams)) {
      return QueryError(kInvalidExpression, "more than ", kMaxQueryParams, " values");
    }
    return absl::OkStatus();
  }

  // A value as SQL: a placeholder, or for a double its text cast back (SqlValue has none).
  std::string ValueSql(SqlValue v) { return Placeholder(std::move(v)); }
  std::string ValueSql(double d) {
    return absl::StrCat("CAST(", Placeholder(absl::StrFormat("%.17g", d)), " AS ",
                        options_.dialect == Dialect::kPostgres ? "DOUBLE PRECISION" : "REAL",
                        ")");
  }

  absl::StatusOr<Sql> Node(const QueryNode& node, bool negate) {
    switch (node.kind) {
      case QueryNode::Kind::kNot:
        return Node(node.children.front(), !negate);
      case QueryNode::Kind::kAnd:
      case QueryNode::Kind::kOr: {
        // NOT pushed down by De Morgan: exact in SQL's three-valued logic.
        const bool is_and = (node.kind == QueryNode::Kind::kAnd) != negate;
        const Sql::Prec prec = is_and ? Sql::Prec::kAnd : Sql::Prec::kOr;
        std::vector<std::string> parts;
        for (const QueryNode& child : node.children) {
          absl::StatusOr<Sql> c = Node(child, negate);
          if (!c.ok()) return c.status();
          if (c->prec == Sql::Prec::kAtom || c->prec == prec) {
            parts.push_back(std::move(c->text));
          } else {
            parts.push_back(absl::StrCat("(", c->text, ")"));
          }
        }
        return Sql{absl::StrJoin(parts, is_and ? " AND " : " OR "), prec};
      }
      case QueryNode::Kind::kCondition:
        return Condition(node, negate);
    }
    return absl::InternalError("unknown query node");
  }

  absl::Status OperatorError(absl::string_view attribute, IndexedValueType type, QueryOp op) {
    return QueryError(kNotSupported, "operator '", QueryOpName(op), "' not supported for ",
                      IndexedValueTypeName(type), " type search attribute '", attribute, "'");
  }

  absl::Status ValueTypeError(absl::string_view attribute, IndexedValueType type,
                              const QueryLiteral& v) {
    return QueryError(kInvalidExpression, "invalid value type for search attribute ", attribute,
                      " of type ", IndexedValueTypeName(type), ": ", GoValue(v), " (type: ",
                      GoType(v), ")");
  }

  // One literal as the attribute's stored value.
  absl::StatusOr<Bound> Value(const QueryNode& node,
                                                       const ResolvedSearchAttribute& a,
                                                       const QueryLiteral& v) {
    if (a.name == kExecutionStatus) {
      const StatusNames& names = ExecutionStatusNames();
      if (const auto* s = std::get_if<std::string>(&v)) {
        auto it = names.by_name.find(*s);
        if (it == names.by_name.end()) {
          return QueryError(kInvalidExpression, "invalid ExecutionStatus value '",
                            ForMessage(*s), "'");
        }
        return Bound(SqlValue(int64_t{it->second}));
      }
      if (const auto* i = std::get_if<int64_t>(&v)) {
        if (*i < 0 || *i > INT_MAX ||
            !enums_v1::WorkflowExecutionStatus_IsValid(static_cast<int>(*i))) {
          return QueryError(kInvalidExpression, "invalid ExecutionStatus value ", *i);
        }
        return Bound(SqlValue(*i));
      }
      return QueryError(kInvalidExpression, "unexpected value type ", GoType(v),
                        " for search attribute ExecutionStatus");
    }
    if (a.name == kExecutionDuration) {
      if (const auto* i = std::get_if<int64_t>(&v)) return Bound(SqlValue(*i));
      if (const auto* s = std::get_if<std::string>(&v)) {
        std::optional<int64_t> nanos = ParseExecutionDurationNanos(*s);
        if (!nanos.has_value()) {
          return QueryError(kInvalidExpression,
                            "invalid duration value for search attribute ExecutionDuration: ",
                            ForMessage(*s));
        }
        return Bound(SqlValue(*nanos));
      }
      return QueryError(kInvalidExpression, "unexpected value type ", GoType(v),
                        " for search attribute ExecutionDuration");
    }
    switch (a.type) {
      case INDEXED_VALUE_TYPE_INT:
      case INDEXED_VALUE_TYPE_DOUBLE:
        if (const auto* i = std::get_if<int64_t>(&v)) return Bound(SqlValue(*i));
        if (const auto* d = std::get_if<double>(&v)) return Bound(*d);
        return ValueTypeError(node.attribute, a.type, v);
      case INDEXED_VALUE_TYPE_BOOL:
        if (const auto* b = std::get_if<bool>(&v)) return Bound(SqlValue(int64_t{*b ? 1 : 0}));
        return ValueTypeError(node.attribute, a.type, v);
      case INDEXED_VALUE_TYPE_DATETIME:
        if (const auto* i = std::get_if<int64_t>(&v)) {
          return Bound(SqlValue(FloorDiv(*i, 1000)));  // nanoseconds since the epoch
        }
        if (const auto* s = std::get_if<std::string>(&v)) {
          std::optional<int64_t> micros = ParseRfc3339Micros(*s);
          if (!micros.has_value()) {
            return QueryError(kInvalidExpression, "unable to parse datetime '",
                              ForMessage(*s), "'");
          }
          return Bound(SqlValue(*micros));
        }
        return ValueTypeError(node.attribute, a.type, v);
      case INDEXED_VALUE_TYPE_KEYWORD:
      case INDEXED_VALUE_TYPE_KEYWORD_LIST:
      case INDEXED_VALUE_TYPE_TEXT:
        if (const auto* s = std::get_if<std::string>(&v)) return Bound(SqlValue(*s));
        return ValueTypeError(node.attribute, a.type, v);
      default:
        return QueryError(kInvalidExpression, "unknown search attribute type ",
                          IndexedValueTypeName(a.type), " for ", node.attribute);
    }
  }

  std::string Emit(Bound v) {
    if (auto* d = std::get_if<double>(&v)) return ValueSql(*d);
    return ValueSql(std::move(std::get<SqlValue>(v)));
  }

  // The prefix pattern of STARTS_WITH: GLOB on SQLite, whose LIKE ignores ASCII case; LIKE with
  // '!' as escape on PostgreSQL (as Temporal escapes: no backslash rules to differ).
  std::string PrefixPattern(absl::string_view prefix) const {
    std::string out;
    if (options_.dialect == Dialect::kSqlite) {
      for (char c : prefix) {
        if (c == '*' || c == '?' || c == '[') {
          absl::StrAppend(&out, "[", std::string(1, c), "]");
        } else {
          out.push_back(c);
        }
      }
      out.push_back('*');
    } else {
      for (char c : prefix) {
        if (c == '%' || c == '_' || c == '!') out.push_back('!');
        out.push_back(c);
      }
      out.push_back('%');
    }
    return out;
  }

  // `operand op values` for one column or side-table value column, op already negated.
  absl::StatusOr<std::string> Predicate(absl::string_view operand, QueryOp op,
                                        std::vector<Bound> values) {
    switch (op) {
      case QueryOp::kEqual:
      case QueryOp::kNotEqual:
      case QueryOp::kLess:
      case QueryOp::kLessOrEqual:
      case QueryOp::kGreater:
      case QueryOp::kGreaterOrEqual:
        return absl::StrCat(operand, " ", SqlComparison(op), " ", Emit(std::move(values[0])));
      case QueryOp::kIn:
      case QueryOp::kNotIn: {
        std::vector<std::string> items;
        items.reserve(values.size());
        for (auto& v : values) items.push_back(Emit(std::move(v)));
        return absl::StrCat(operand, op == QueryOp::kNotIn ? " NOT IN (" : " IN (",
                            absl::StrJoin(items, ", "), ")");
      }
      case QueryOp::kBetween:
      case QueryOp::kNotBetween: {
        std::string from = Emit(std::move(values[0]));
        std::string to = Emit(std::move(values[1]));
        return absl::StrCat(operand, op == QueryOp::kNotBetween ? " NOT BETWEEN " : " BETWEEN ",
                            from, " AND ", to);
      }
      case QueryOp::kStartsWith:
      case QueryOp::kNotStartsWith: {
        const std::string pattern =
            Placeholder(PrefixPattern(AsString(std::get<SqlValue>(values[0]))));
        const bool negated = op == QueryOp::kNotStartsWith;
        if (options_.dialect == Dialect::kSqlite) {
          return absl::StrCat(operand, negated ? " NOT GLOB " : " GLOB ", pattern);
        }
        return absl::StrCat(operand, negated ? " NOT LIKE " : " LIKE ", pattern, " ESCAPE '!'");
      }
      default:
        return absl::InternalError("unexpected operator");
    }
  }

  // EXISTS over an attribute's rows. PostgreSQL plans an EXISTS of the top-level AND as a
  // semi-join, which lets a selective condition start from the side table's index; but its join
  // search grows steeply with their number (planning takes 1 s at 100 and 13 s at 200 on
  // PostgreSQL 15). Past the first kJoinableExists, OFFSET 0 keeps one a subplan, probed per
  // row. SQLite keeps every EXISTS a subquery, and has no OFFSET without LIMIT.
  std::string Exists(absl::string_view subquery) {
    const bool fence =
        options_.dialect == Dialect::kPostgres && ++exists_count_ > kJoinableExists;
    return absl::StrCat("EXISTS (", subquery, fence ? " OFFSET 0" : "", ")");
  }

  absl::StatusOr<Sql> Condition(const QueryNode& node, bool negate) {
    absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, node.attribute);
    if (!a.ok()) return a.status();
    const bool range = node.op == QueryOp::kBetween || node.op == QueryOp::kNotBetween;
    if (range && !OperatorAllowed(a->type, node.op)) {
      return QueryError(kInvalidExpression, "cannot do range condition on search attribute '",
                        node.attribute, "' of type ", IndexedValueTypeName(a->type));
    }
    // ExecutionStatus is a Keyword stored as its number: a prefix of it means nothing.
    if (!OperatorAllowed(a->type, node.op) ||
        (a->name == kExecutionStatus &&
         (node.op == QueryOp::kStartsWith || node.op == QueryOp::kNotStartsWith))) {
      return OperatorError(node.attribute, a->type, node.op);
    }
    std::vector<Bound> values;
    values.reserve(node.values.size());
    for (const QueryLiteral& literal : node.values) {
      absl::StatusOr<Bound> v = Value(node, *a, literal);
      if (!v.ok()) return v.status();
      values.push_back(std::move(*v));
    }
    const QueryOp op = negate ? Negated(node.op) : node.op;

    if (!a->column.empty()) {
      if (op == QueryOp::kIsNull || op == QueryOp::kIsNotNull) {
        return Sql{absl::StrCat(a->column, op == QueryOp::kIsNull ? " IS NULL" : " IS NOT NULL")};
      }
      absl::StatusOr<std::string> p = Predicate(a->column, op, std::move(values));
      if (!p.ok()) return p.status();
      if (absl::Status st = CheckParams(); !st.ok()) return st;
      return Sql{std::move(*p)};
    }

    const std::string exists = absl::StrCat(kSideTableFrom, Placeholder(a->name));
    if (op == QueryOp::kIsNull) return Sql{absl::StrCat("NOT ", Exists(exists))};
    if (op == QueryOp::kIsNotNull) return Sql{Exists(exists)};

    if (!IsMultiValued(a->type)) {
      // At most one row: the condition inside EXISTS is the condition on the value.
      const absl::string_view column = a->type == INDEXED_VALUE_TYPE_DOUBLE ? "sa.double_value"
                                        : a->type == INDEXED_VALUE_TYPE_KEYWORD
                                            ? "sa.text_value"
                                            : "sa.int_value";
      absl::StatusOr<std::string> p = Predicate(column, op, std::move(values));
      if (!p.ok()) return p.status();
      if (absl::Status st = CheckParams(); !st.ok()) return st;
      return Sql{Exists(absl::StrCat(exists, " AND ", *p))};
    }

    // KeywordList and Text: `=` and IN ask for a row with one of the values; `!=` and NOT IN
    // for a set attribute without any.
    std::vector<Bound> wanted;
    if (a->type == INDEXED_VALUE_TYPE_TEXT) {
      const std::vector<std::string> tokens =
          TokenizeText(AsString(std::get<SqlValue>(values.front())));
      if (tokens.empty()) {
        return QueryError(kInvalidExpression,
                          "unexpected value for Text type search attribute (no tokens found)");
      }
      for (const std::string& t : tokens) wanted.emplace_back(SqlValue(t));
    } else {
      wanted = std::move(values);
    }
    const bool contains = op == QueryOp::kEqual || op == QueryOp::kIn;
    const QueryOp member = wanted.size() == 1 ? QueryOp::kEqual : QueryOp::kIn;
    absl::StatusOr<std::string> p = Predicate("sa.text_value", member, std::move(wanted));
    if (!p.ok()) return p.status();
    if (absl::Status st = CheckParams(); !st.ok()) return st;
    if (contains) return Sql{Exists(absl::StrCat(exists, " AND ", *p))};
    std::string is_set = Exists(exists);
    return Sql{absl::StrCat(is_set, " AND NOT ", Exists(absl::StrCat(exists, " AND ", *p))),
               Sql::Prec::kAnd};
  }

  absl::Status GroupBy(const ParsedQuery& query, CompiledVisibilityQuery* out) {
    if (query.group_by.empty()) return absl::OkStatus();
    if (options_.kind == VisibilityQueryKind::kList) {
      return QueryError(kNotSupported, "'GROUP BY' clause");
    }
    if (query.group_by.size() > 1) {
      return QueryError(kNotSupported, "'GROUP BY' clause supports only a single field");
    }
    absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, query.group_by[0]);
    if (!a.ok()) return a.status();
    if (a->name != kExecutionStatus) {
      return QueryError(kNotSupported, "'GROUP BY' clause is not supported for search attribute ",
                        query.group_by[0]);
    }
    out->group_by = std::string(a->column);
    return absl::OkStatus();
  }

  absl::Status OrderBy(const ParsedQuery& query, CompiledVisibilityQuery* out) {
    if (!query.order_by.empty() && !options_.allow_order_by) {
      return QueryError(kNotSupported, "'ORDER BY' clause");
    }
    std::vector<VisibilitySortKey> keys;
    bool has_run_id = false;
    for (const QueryOrderTerm& term : query.order_by) {
      absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, term.attribute);
      if (!a.ok()) return a.status();
      if (IsMultiValued(a->type)) {
        return QueryError(kNotSupported, "unable to sort by search attribute type ",
                          IndexedValueTypeName(a->type));
      }
      if (options_.kind == VisibilityQueryKind::kCount) continue;  // checked, not needed
      VisibilitySortKey key;
      key.descending = term.descending;
      if (!a->column.empty()) {
        key.sql = std::string(a->column);
        key.nullable = a->nullable;
        has_run_id = has_run_id || a->column == "run_id";
      } else {
        const absl::string_view column = a->type == INDEXED_VALUE_TYPE_DOUBLE ? "sa.double_value"
                                          : a->type == INDEXED_VALUE_TYPE_KEYWORD
                                              ? "sa.text_value"
                                              : "sa.int_value";
        key.sql = absl::StrCat("(SELECT ", column,
                               " FROM visibility_search_attributes sa WHERE sa.namespace_id = "
                               "visibility.namespace_id AND sa.run_id = visibility.run_id AND "
                               "sa.name = ",
                               Placeholder(a->name), ")");
        key.nullable = true;
      }
      keys.push_back(std::move(key));
    }
    if (options_.kind == VisibilityQueryKind::kCount) return CheckParams();
    if (keys.empty()) {
      // Temporal's SQL order: open runs first (a NULL close time as the largest), then the
      // latest closed, then the latest started.
      keys.push_back({"COALESCE(close_time, 9223372036854775807)", true, false});
      keys.push_back({"start_time", true, false});
    }
    if (!has_run_id) keys.push_back({"run_id", false, false});
    std::vector<std::string> terms;
    for (const VisibilitySortKey& k : keys) {
      terms.push_back(absl::StrCat(k.sql, k.descending ? " DESC" : "",
                                   k.nullable ? " NULLS LAST" : ""));
    }
    out->order_by = absl::StrJoin(terms, ", ");
    out->sort_keys = std::move(keys);
    return CheckParams();
  }

  const SearchAttributeSchema& schema_;
  const VisibilityQueryOptions& options_;
  std::vector<SqlValue> params_;
  int exists_count_ = 0;
};

}  // namespace

absl::string_view QueryOpName(QueryOp op) {
  switch (op) {
    case QueryOp::kEqual:
      return "=";
    case QueryOp::kNotEqual:
      return "!=";
    case QueryOp::kLess:
      return "<";
    case QueryOp::kLessOrEqual:
      return "<=";
    case QueryOp::kGreater:
      return ">";
    case QueryOp::kGreaterOrEqual:
      return ">=";
    case QueryOp::kIn:
      return "IN";
    case QueryOp::kNotIn:
      return "NOT IN";
    case QueryOp::kBetween:
      return "BETWEEN";
    case QueryOp::kNotBetween:
      return "NOT BETWEEN";
    case QueryOp::kStartsWith:
      return "STARTS_WITH";
    case QueryOp::kNotStartsWith:
      return "NOT STARTS_WITH";
    case QueryOp::kIsNull:
      return "IS NULL";
    case QueryOp::kIsNotNull:
      return "IS NOT NULL";
    case QueryOp::kLike:
      return "LIKE";
    case QueryOp::kNotLike:
      return "NOT LIKE";
    case QueryOp::kNullSafeEqual:
      return "<=>";
  }
  return "?";
}

absl::StatusOr<ParsedQuery> ParseVisibilityQuery(absl::string_view query) {
  // Protobuf already refuses a request whose strings are not UTF-8; a caller that skips it
  // must not get bytes PostgreSQL would refuse into a parameter.
  if (!IsValidUtf8(query)) return QueryError(kMalformed, "the query is not valid UTF-8");
  return Parser(query).Parse();
}

const std::vector<BuiltinSearchAttribute>& BuiltinSearchAttributes() {
  static const auto* builtins = new std::vector<BuiltinSearchAttribute>{
      // Temporal's system attributes, each in a column of the visibility row.
      {"WorkflowId", INDEXED_VALUE_TYPE_KEYWORD, "workflow_id", false},
      {"RunId", INDEXED_VALUE_TYPE_KEYWORD, "run_id", false},
      {"WorkflowType", INDEXED_VALUE_TYPE_KEYWORD, "workflow_type", false},
      {"StartTime", INDEXED_VALUE_TYPE_DATETIME, "start_time", false},
      {"ExecutionTime", INDEXED_VALUE_TYPE_DATETIME, "execution_time", false},
      {"CloseTime", INDEXED_VALUE_TYPE_DATETIME, "close_time", true},
      {"ExecutionStatus", INDEXED_VALUE_TYPE_KEYWORD, "status", false},
      {"TaskQueue", INDEXED_VALUE_TYPE_KEYWORD, "task_queue", false},
      {"HistoryLength", INDEXED_VALUE_TYPE_INT, "history_length", false},
      {"ExecutionDuration", INDEXED_VALUE_TYPE_INT, "execution_duration", true},
      {"StateTransitionCount", INDEXED_VALUE_TYPE_INT, "state_transition_count", false},
      {"HistorySizeBytes", INDEXED_VALUE_TYPE_INT, "history_size_bytes", false},
      {"ParentWorkflowId", INDEXED_VALUE_TYPE_KEYWORD, "parent_workflow_id", true},
      {"ParentRunId", INDEXED_VALUE_TYPE_KEYWORD, "parent_run_id", true},
      {"RootWorkflowId", INDEXED_VALUE_TYPE_KEYWORD, "root_workflow_id", true},
      {"RootRunId", INDEXED_VALUE_TYPE_KEYWORD, "root_run_id", true},
      // Its predefined ones, which come in the run's SearchAttributes map as custom ones do
      // and are kept as they are, in visibility_search_attributes.
      {"TemporalChangeVersion", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"BinaryChecksums", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"BuildIds", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"BatcherNamespace", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"BatcherUser", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalScheduledStartTime", INDEXED_VALUE_TYPE_DATETIME, "", true},
      {"TemporalScheduledById", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalSchedulePaused", INDEXED_VALUE_TYPE_BOOL, "", true},
      {"TemporalNamespaceDivision", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalPauseInfo", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"TemporalReportedProblems", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"TemporalWorkerDeploymentVersion", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalWorkflowVersioningBehavior", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalWorkerDeployment", INDEXED_VALUE_TYPE_KEYWORD, "", true},
      {"TemporalUsedWorkerDeploymentVersions", INDEXED_VALUE_TYPE_KEYWORD_LIST, "", true},
      {"TemporalExternalPayloadCount", INDEXED_VALUE_TYPE_INT, "", true},
      {"TemporalExternalPayloadSizeBytes", INDEXED_VALUE_TYPE_INT, "", true},
  };
  return *builtins;
}

absl::StatusOr<ResolvedSearchAttribute> ResolveSearchAttribute(const SearchAttributeSchema& schema,
                                                               absl::string_view name) {
  const auto& builtins = BuiltinsByName();
  // A custom attribute may not shadow a built-in name, but may take an alias's (docs: "your
  // custom Search Attribute overrides the alias").
  if (!builtins.contains(name)) {
    if (auto it = schema.custom.find(name); it != schema.custom.end()) {
      return ResolvedSearchAttribute{it->first, it->second, {}, true};
    }
  }
  if (auto it = builtins.find(name); it != builtins.end()) return FromBuiltin(*it->second);
  absl::string_view stripped = name;
  const bool prefixed = absl::ConsumePrefix(&stripped, kReservedPrefix);
  if (stripped == "ScheduleId") return FromBuiltin(*builtins.at("WorkflowId"));
  const std::string alias = prefixed ? std::string(stripped) : absl::StrCat(kReservedPrefix, name);
  if (std::optional<ResolvedSearchAttribute> a = Lookup(schema, alias)) return *std::move(a);
  return QueryError(kInvalidExpression, "column name '", ForMessage(name),
                    "' is not a valid search attribute");
}

absl::string_view IndexedValueTypeName(IndexedValueType type) {
  switch (type) {
    case INDEXED_VALUE_TYPE_TEXT:
      return "Text";
    case INDEXED_VALUE_TYPE_KEYWORD:
      return "Keyword";
    case INDEXED_VALUE_TYPE_INT:
      return "Int";
    case INDEXED_VALUE_TYPE_DOUBLE:
      return "Double";
    case INDEXED_VALUE_TYPE_BOOL:
      return "Bool";
    case INDEXED_VALUE_TYPE_DATETIME:
      return "Datetime";
    case INDEXED_VALUE_TYPE_KEYWORD_LIST:
      return "KeywordList";
    default:
      return "Unspecified";
  }
}

std::vector<std::string> TokenizeText(absl::string_view text) {
  auto word = [](unsigned char c) { return absl::ascii_isalnum(c) || c == '_' || c >= 0x80; };
  std::vector<std::string> out;
  absl::flat_hash_set<std::string> seen;
  std::string current;
  auto flush = [&] {
    if (!current.empty() && seen.insert(current).second) out.push_back(current);
    current.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (word(c)) {
      current.push_back(absl::ascii_tolower(c));
      continue;
    }
    if ((c == '.' || c == ':' || c == '\'') && !current.empty() && i + 1 < text.size()) {
      const unsigned char prev = static_cast<unsigned char>(text[i - 1]);
      const unsigned char next = static_cast<unsigned char>(text[i + 1]);
      if ((absl::ascii_isalpha(prev) && absl::ascii_isalpha(next)) ||
          (absl::ascii_isdigit(prev) && absl::ascii_isdigit(next))) {
        current.push_back(static_cast<char>(c));
        continue;
      }
    }
    flush();
  }
  flush();
  return out;
}

std::string ExecutionStatusName(int status) {
  const StatusNames& names = ExecutionStatusNames();
  auto it = names.shorthand.find(status);
  return it == names.shorthand.end() ? "" : it->second;
}

absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    const ParsedQuery& query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options) {
  return Compiler(schema, options).Compile(query);
}

absl::StatusOr<CompiledVisibilityQuery> CompileVisibilityQuery(
    absl::string_view query, const SearchAttributeSchema& schema,
    const VisibilityQueryOptions& options) {
  absl::StatusOr<ParsedQuery> parsed = ParseVisibilityQuery(query);
  if (!parsed.ok()) return parsed.status();
  return CompileVisibilityQuery(*parsed, schema, options);
}

std::optional<int64_t> ParseRfc3339ToMicros(absl::string_view text) {
  return ParseRfc3339Micros(text);
}

}  // namespace almanac::persistence
