// Visibility queries: a lexer and a recursive-descent parser that follow the grammar of
// Temporal's SQL parser (its fork of vitess's sqlparser) for what a List Filter holds, and report
// syntax errors where and as it does; then a compiler that resolves each attribute, checks
// operator and value against the attribute's type as Temporal's query converter does, and writes
// parameterised SQL.

#include "persistence/visibility_query.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
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

// A refusal's text after "invalid query: ".
template <typename... Args>
std::string Message(absl::string_view kind, const Args&... args) {
  return absl::StrCat(kind, ": ", args...);
}

absl::Status Refusal(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("invalid query: ", message));
}

template <typename... Args>
absl::Status QueryError(absl::string_view kind, const Args&... args) {
  return Refusal(Message(kind, args...));
}

// The code point of the UTF-8 sequence at s[i] and its length; 0 for an invalid one (overlong
// forms, surrogates and code points beyond Unicode included).
int DecodeRune(absl::string_view s, size_t i, uint32_t* cp) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int extra;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    extra = 1;
    *cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    *cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    *cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + extra >= s.size()) return 0;
  for (int k = 1; k <= extra; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (cc & 0x3F);
  }
  if ((extra == 1 && *cp < 0x80) || (extra == 2 && *cp < 0x800) ||
      (extra == 3 && *cp < 0x10000) || (*cp >= 0xD800 && *cp <= 0xDFFF) || *cp > 0x10FFFF) {
    return 0;
  }
  return extra + 1;
}

bool IsValidUtf8(absl::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    const int n = DecodeRune(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Text for a message as it is, but valid UTF-8: a byte that is not (the parser's error token
// can be one byte of a longer character) becomes U+FFFD, as clients show Temporal's.
std::string ValidUtf8(absl::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    const int n = DecodeRune(s, i, &cp);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      absl::StrAppend(&out, s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Go's unicode.IsPrint, near enough: ASCII's printable characters, and every other character
// but the C1 controls, the spaces other than ' ', the format characters, private use and the
// non-characters.
bool GoIsPrint(uint32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7F;
  if (r <= 0xA0 || r == 0xAD || r == 0x61C || r == 0x1680 || r == 0x180E) return false;
  if ((r >= 0x2000 && r <= 0x200F) || (r >= 0x2028 && r <= 0x202F) ||
      (r >= 0x205F && r <= 0x206F) || r == 0x3000 || r == 0xFEFF ||
      (r >= 0xFFF9 && r <= 0xFFFB) || (r & 0xFFFE) == 0xFFFE) {
    return false;
  }
  if ((r >= 0xE000 && r <= 0xF8FF) || r >= 0xF0000 || (r >= 0xE0000 && r <= 0xE007F)) {
    return false;
  }
  return true;
}

// A string as Go's %q (and %#v) writes it: between double quotes, '"', '\\' and what is not
// printable escaped.
std::string GoQuote(absl::string_view s) {
  std::string out = "\"";
  uint32_t r;
  for (size_t i = 0; i < s.size();) {
    const int n = DecodeRune(s, i, &r);
    if (n == 0) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", static_cast<unsigned char>(s[i])));
      ++i;
      continue;
    }
    const absl::string_view raw = s.substr(i, n);
    i += n;
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
    } else if (GoIsPrint(r)) {
      absl::StrAppend(&out, raw);
    } else if (r == '\a') {
      out += "\\a";
    } else if (r == '\b') {
      out += "\\b";
    } else if (r == '\f') {
      out += "\\f";
    } else if (r == '\n') {
      out += "\\n";
    } else if (r == '\r') {
      out += "\\r";
    } else if (r == '\t') {
      out += "\\t";
    } else if (r == '\v') {
      out += "\\v";
    } else if (r < 0x20 || r == 0x7F) {
      absl::StrAppend(&out, absl::StrFormat("\\x%02x", r));
    } else if (r < 0x10000) {
      absl::StrAppend(&out, absl::StrFormat("\\u%04x", r));
    } else {
      absl::StrAppend(&out, absl::StrFormat("\\U%08x", r));
    }
  }
  out.push_back('"');
  return out;
}

// A float64 as Go's %v writes it: the shortest digits that read back, in %e form when the
// exponent is below -4 or at least 6 (1e+06, 1.5e-05), else plainly (0.0001, 123456.5).
std::string GoFloat(double d) {
  if (d == 0) return std::signbit(d) ? "-0" : "0";
  char buf[64];
  const std::to_chars_result r =
      std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  absl::string_view sci(buf, r.ptr - buf);  // [-]d[.ddd]e(+|-)dd
  std::string out;
  if (absl::ConsumePrefix(&sci, "-")) out = "-";
  const size_t e = sci.find('e');
  std::string digits = absl::StrReplaceAll(sci.substr(0, e), {{".", ""}});
  int exp = 0;
  (void)absl::SimpleAtoi(sci.substr(e + 1), &exp);
  if (exp < -4 || exp >= 6) {
    out.push_back(digits[0]);
    if (digits.size() > 1) absl::StrAppend(&out, ".", digits.substr(1));
    absl::StrAppend(&out, exp < 0 ? "e-" : "e+", std::abs(exp) < 10 ? "0" : "", std::abs(exp));
  } else if (exp >= 0) {
    const size_t whole = static_cast<size_t>(exp) + 1;
    if (digits.size() <= whole) {
      absl::StrAppend(&out, digits, std::string(whole - digits.size(), '0'));
    } else {
      absl::StrAppend(&out, digits.substr(0, whole), ".", digits.substr(whole));
    }
  } else {
    absl::StrAppend(&out, "0.", std::string(-exp - 1, '0'), digits);
  }
  return out;
}

// Renders a literal as Temporal's messages do (Go's %#v, then its type).
std::string GoValue(const QueryLiteral& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return GoQuote(*s);
  if (const auto* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  if (const auto* d = std::get_if<double>(&v)) return GoFloat(*d);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return "";
}

absl::string_view GoType(const QueryLiteral& v) {
  if (std::holds_alternative<std::string>(v)) return "string";
  if (std::holds_alternative<int64_t>(v)) return "int64";
  if (std::holds_alternative<double>(v)) return "float64";
  return "bool";
}

// Go's strings.TrimSpace: Unicode white space off both ends.
absl::string_view TrimGoSpace(absl::string_view s) {
  auto space_at = [&](size_t i, size_t* len) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || (c >= '\t' && c <= '\r')) {
      *len = 1;
      return true;
    }
    uint32_t r;
    const int n = DecodeRune(s, i, &r);
    if (n > 1 && (r == 0x85 || r == 0xA0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200A) ||
                  r == 0x2028 || r == 0x2029 || r == 0x202F || r == 0x205F || r == 0x3000)) {
      *len = n;
      return true;
    }
    return false;
  };
  size_t len;
  while (!s.empty() && space_at(0, &len)) s.remove_prefix(len);
  for (;;) {
    // The last character starts at the last byte that is not a continuation byte.
    size_t start = s.size();
    while (start > 0 && (static_cast<unsigned char>(s[start - 1]) & 0xC0) == 0x80) --start;
    if (start == 0) break;
    --start;
    if (!space_at(start, &len) || start + len != s.size()) break;
    s.remove_suffix(len);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Lexer: Temporal's parser's tokenizer.

enum class Tok {
  kEnd,
  kLexError,
  kId,       // a name (also one in backquotes)
  kKeyword,  // value: the word lower-cased
  kString,
  kIntegral,
  kFloat,
  kHexNum,    // 0x1F
  kHex,       // x'1F'
  kBit,       // b'101'
  kValueArg,  // ?, :name
  kListArg,   // ::name
  kLParen,
  kRParen,
  kComma,
  kSemicolon,
  kDot,
  kEq,
  kLt,
  kGt,
  kLe,
  kGe,
  kNe,
  kNullSafeEq,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kCaret,
  kTilde,
  kBang,
  kAmp,
  kPipe,
  kShiftLeft,
  kShiftRight,
  kJsonExtract,         // ->
  kJsonUnquoteExtract,  // ->>
  kAndOp,               // &&
  kOrOp,                // ||
};

struct Token {
  Tok kind = Tok::kEnd;
  // The token's text as the parser keeps it for its messages: a name as written (a keyword
  // lower-cased), a string's or a backquoted name's decoded text, a number's digits.
  std::string value;
  bool has_value = false;  // punctuation, operators, the end and empty texts have none
  char keyword_class = 0;  // kKeyword: 'R' reserved, 'N' non-reserved (a name too), 'O' other
  size_t end = 0;          // offset just past it in the trimmed query
};

// The parser's keywords and what it lets them be: 'R' reserved (a name only after a '.'), 'N'
// non-reserved (a name anywhere, lower-cased), 'O' neither.
char KeywordClass(absl::string_view lowered) {
  static const auto* keywords = new absl::flat_hash_map<std::string, char>{
    {"_binary", 'O'}, {"accessible", 'N'}, {"add", 'R'}, {"against", 'N'}, {"all", 'O'},
    {"alter", 'O'}, {"analyze", 'O'}, {"and", 'R'}, {"as", 'R'}, {"asc", 'R'},
    {"asensitive", 'N'}, {"auto_increment", 'R'}, {"before", 'N'}, {"begin", 'N'},
    {"between", 'R'}, {"bigint", 'N'}, {"binary", 'R'}, {"bit", 'N'}, {"blob", 'N'},
    {"bool", 'N'}, {"boolean", 'O'}, {"both", 'N'}, {"by", 'R'}, {"call", 'N'}, {"cascade", 'N'},
    {"case", 'R'}, {"cast", 'O'}, {"change", 'N'}, {"char", 'N'}, {"character", 'N'},
    {"charset", 'N'}, {"check", 'N'}, {"collate", 'R'}, {"column", 'O'}, {"comment", 'N'},
    {"commit", 'N'}, {"committed", 'N'}, {"condition", 'N'}, {"constraint", 'O'},
    {"continue", 'N'}, {"convert", 'R'}, {"create", 'R'}, {"cross", 'R'}, {"current_date", 'R'},
    {"current_time", 'R'}, {"current_timestamp", 'R'}, {"current_user", 'N'}, {"cursor", 'N'},
    {"database", 'R'}, {"databases", 'R'}, {"date", 'N'}, {"datetime", 'N'}, {"day_hour", 'N'},
    {"day_microsecond", 'N'}, {"day_minute", 'N'}, {"day_second", 'N'}, {"dec", 'N'},
    {"decimal", 'N'}, {"declare", 'N'}, {"default", 'R'}, {"delayed", 'N'}, {"delete", 'R'},
    {"desc", 'R'}, {"describe", 'R'}, {"deterministic", 'N'}, {"distinct", 'R'},
    {"distinctrow", 'N'}, {"div", 'R'}, {"double", 'N'}, {"drop", 'R'}, {"duplicate", 'N'},
    {"each", 'N'}, {"else", 'R'}, {"elseif", 'N'}, {"enclosed", 'N'}, {"end", 'R'},
    {"enum", 'N'}, {"escape", 'R'}, {"escaped", 'N'}, {"exists", 'R'}, {"exit", 'N'},
    {"expansion", 'N'}, {"explain", 'R'}, {"extended", 'O'}, {"false", 'R'}, {"fetch", 'N'},
    {"float", 'N'}, {"float4", 'N'}, {"float8", 'N'}, {"for", 'R'}, {"force", 'R'},
    {"foreign", 'N'}, {"from", 'R'}, {"full", 'O'}, {"fulltext", 'N'}, {"generated", 'N'},
    {"geometry", 'N'}, {"geometrycollection", 'N'}, {"get", 'N'}, {"global", 'N'},
    {"grant", 'N'}, {"group", 'R'}, {"group_concat", 'O'}, {"having", 'R'},
    {"high_priority", 'N'}, {"hour_microsecond", 'N'}, {"hour_minute", 'N'},
    {"hour_second", 'N'}, {"if", 'R'}, {"ignore", 'R'}, {"in", 'R'}, {"index", 'R'},
    {"infile", 'N'}, {"inner", 'R'}, {"inout", 'N'}, {"insensitive", 'N'}, {"insert", 'R'},
    {"int", 'N'}, {"int1", 'N'}, {"int2", 'N'}, {"int3", 'N'}, {"int4", 'N'}, {"int8", 'N'},
    {"integer", 'N'}, {"interval", 'R'}, {"into", 'R'}, {"io_after_gtids", 'N'}, {"is", 'R'},
    {"isolation", 'N'}, {"iterate", 'N'}, {"join", 'R'}, {"json", 'N'}, {"key", 'R'},
    {"key_block_size", 'N'}, {"keys", 'N'}, {"kill", 'N'}, {"language", 'N'},
    {"last_insert_id", 'N'}, {"leading", 'N'}, {"leave", 'N'}, {"left", 'R'}, {"less", 'N'},
    {"level", 'N'}, {"like", 'R'}, {"limit", 'R'}, {"linear", 'N'}, {"lines", 'N'},
    {"linestring", 'N'}, {"load", 'N'}, {"localtime", 'R'}, {"localtimestamp", 'R'},
    {"lock", 'R'}, {"long", 'N'}, {"longblob", 'N'}, {"longtext", 'N'}, {"loop", 'N'},
    {"low_priority", 'N'}, {"master_bind", 'N'}, {"match", 'R'}, {"maxvalue", 'R'},
    {"mediumblob", 'N'}, {"mediumint", 'N'}, {"mediumtext", 'N'}, {"middleint", 'N'},
    {"minute_microsecond", 'N'}, {"minute_second", 'N'}, {"mod", 'R'}, {"mode", 'N'},
    {"modifies", 'N'}, {"multilinestring", 'N'}, {"multipoint", 'N'}, {"multipolygon", 'N'},
    {"names", 'N'}, {"natural", 'R'}, {"nchar", 'N'}, {"next", 'R'}, {"no_write_to_binlog", 'N'},
    {"not", 'R'}, {"null", 'R'}, {"numeric", 'N'}, {"offset", 'N'}, {"on", 'R'}, {"only", 'N'},
    {"optimize", 'N'}, {"optimizer_costs", 'N'}, {"option", 'N'}, {"optionally", 'N'},
    {"or", 'R'}, {"order", 'R'}, {"out", 'N'}, {"outer", 'R'}, {"outfile", 'N'},
    {"partition", 'N'}, {"point", 'N'}, {"polygon", 'N'}, {"precision", 'N'}, {"primary", 'N'},
    {"procedure", 'N'}, {"processlist", 'O'}, {"query", 'N'}, {"range", 'N'}, {"read", 'N'},
    {"read_write", 'N'}, {"reads", 'N'}, {"real", 'N'}, {"references", 'N'}, {"regexp", 'R'},
    {"release", 'N'}, {"rename", 'R'}, {"reorganize", 'N'}, {"repair", 'N'}, {"repeat", 'N'},
    {"repeatable", 'N'}, {"replace", 'R'}, {"require", 'N'}, {"resignal", 'N'},
    {"restrict", 'N'}, {"return", 'N'}, {"revoke", 'N'}, {"right", 'R'}, {"rlike", 'R'},
    {"rollback", 'N'}, {"schema", 'R'}, {"schemas", 'N'}, {"second_microsecond", 'N'},
    {"select", 'R'}, {"sensitive", 'N'}, {"separator", 'R'}, {"serializable", 'N'},
    {"session", 'N'}, {"set", 'R'}, {"share", 'N'}, {"show", 'R'}, {"signal", 'N'},
    {"signed", 'N'}, {"smallint", 'N'}, {"spatial", 'N'}, {"specific", 'N'}, {"sql", 'N'},
    {"sql_big_result", 'N'}, {"sql_cache", 'O'}, {"sql_calc_found_rows", 'N'},
    {"sql_no_cache", 'O'}, {"sql_small_result", 'N'}, {"sqlexception", 'N'}, {"sqlstate", 'N'},
    {"sqlwarning", 'N'}, {"ssl", 'N'}, {"start", 'N'}, {"starting", 'N'}, {"starts_with", 'R'},
    {"status", 'N'}, {"stored", 'N'}, {"straight_join", 'R'}, {"stream", 'O'}, {"substr", 'R'},
    {"substring", 'R'}, {"table", 'R'}, {"tables", 'R'}, {"terminated", 'N'}, {"text", 'N'},
    {"than", 'N'}, {"then", 'R'}, {"time", 'N'}, {"timestamp", 'N'}, {"tinyblob", 'N'},
    {"tinyint", 'N'}, {"tinytext", 'N'}, {"to", 'R'}, {"trailing", 'N'}, {"transaction", 'N'},
    {"trigger", 'N'}, {"true", 'R'}, {"truncate", 'N'}, {"uncommitted", 'N'}, {"undo", 'N'},
    {"union", 'R'}, {"unique", 'R'}, {"unlock", 'N'}, {"unsigned", 'N'}, {"update", 'R'},
    {"usage", 'N'}, {"use", 'R'}, {"using", 'R'}, {"utc_date", 'R'}, {"utc_time", 'R'},
    {"utc_timestamp", 'R'}, {"values", 'R'}, {"varbinary", 'N'}, {"varchar", 'N'},
    {"varcharacter", 'N'}, {"variables", 'N'}, {"varying", 'N'}, {"view", 'N'}, {"vindex", 'N'},
    {"vindexes", 'N'}, {"virtual", 'N'}, {"vitess_keyspaces", 'N'}, {"vitess_shards", 'N'},
    {"vitess_tablets", 'N'}, {"vschema_tables", 'N'}, {"when", 'R'}, {"where", 'R'},
    {"while", 'N'}, {"with", 'N'}, {"write", 'N'}, {"xor", 'N'}, {"year", 'N'},
    {"year_month", 'N'}, {"zerofill", 'N'},
  };
  auto it = keywords->find(lowered);
  return it == keywords->end() ? 0 : it->second;
}

bool IsLetter(char c) { return absl::ascii_isalpha(c) || c == '_' || c == '@'; }
bool IsDigit(char c) { return absl::ascii_isdigit(c); }

class Lexer {
 public:
  explicit Lexer(absl::string_view text) : text_(text) {}

  // Splits the whole query, up to and with the first lexical error.
  std::vector<Token> Tokens() {
    std::vector<Token> out;
    for (;;) {
      Token t = Next();
      const Tok kind = t.kind;
      out.push_back(std::move(t));
      if (kind == Tok::kEnd || kind == Tok::kLexError) break;
    }
    if (out.back().kind != Tok::kEnd) {
      Token end;
      end.end = text_.size();
      out.push_back(std::move(end));
    }
    return out;
  }

 private:
  bool AtEnd() const { return pos_ >= text_.size(); }
  bool NextIs(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  Token Make(Tok kind, std::string value = "", bool has_value = false) const {
    Token t;
    t.kind = kind;
    t.value = std::move(value);
    t.has_value = has_value;
    t.end = pos_;
    return t;
  }
  Token Text(Tok kind, std::string value) const {
    const bool has_value = !value.empty();
    return Make(kind, std::move(value), has_value);
  }

  void SkipLine() {
    while (!AtEnd() && text_[pos_] != '\n') ++pos_;
    if (!AtEnd()) ++pos_;
  }

  Token Next() {
    for (;;) {
      while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' ||
                          text_[pos_] == '\t')) {
        ++pos_;
      }
      if (AtEnd()) return Make(Tok::kEnd);
      const size_t start = pos_;
      const char c = text_[pos_];
      if (IsLetter(c)) {
        ++pos_;
        if ((c == 'x' || c == 'X') && NextIs('\'')) {
          ++pos_;
          return Quoted(16);
        }
        if ((c == 'b' || c == 'B') && NextIs('\'')) {
          ++pos_;
          return Quoted(2);
        }
        // @@system variables take '.', quotes and backquotes in their names.
        const bool system = c == '@' && NextIs('@');
        while (!AtEnd() && (IsLetter(text_[pos_]) || IsDigit(text_[pos_]) ||
                            (system && absl::string_view(".'\"`").find(text_[pos_]) !=
                                           absl::string_view::npos))) {
          ++pos_;
        }
        const absl::string_view word = text_.substr(start, pos_ - start);
        std::string lowered = absl::AsciiStrToLower(word);
        if (const char k = KeywordClass(lowered)) {
          Token t = Make(Tok::kKeyword, std::move(lowered), true);
          t.keyword_class = k;
          return t;
        }
        return Make(Tok::kId, std::string(word), true);
      }
      if (IsDigit(c)) return Number(start);
      if (c == ':') return BindVariable();
      ++pos_;
      switch (c) {
        case '=':
          return Make(Tok::kEq);
        case ',':
          return Make(Tok::kComma);
        case ';':
          return Make(Tok::kSemicolon);
        case '(':
          return Make(Tok::kLParen);
        case ')':
          return Make(Tok::kRParen);
        case '+':
          return Make(Tok::kPlus);
        case '*':
          return Make(Tok::kStar);
        case '%':
          return Make(Tok::kPercent);
        case '^':
          return Make(Tok::kCaret);
        case '~':
          return Make(Tok::kTilde);
        case '&':
          if (NextIs('&')) {
            ++pos_;
            return Make(Tok::kAndOp);
          }
          return Make(Tok::kAmp);
        case '|':
          if (NextIs('|')) {
            ++pos_;
            return Make(Tok::kOrOp);
          }
          return Make(Tok::kPipe);
        case '?':
          return Make(Tok::kValueArg, absl::StrCat(":v", ++value_args_), true);
        case '.':
          if (!AtEnd() && IsDigit(text_[pos_])) return Number(start);
          return Make(Tok::kDot);
        case '/':
          if (NextIs('/')) {
            SkipLine();
            continue;
          }
          if (NextIs('*')) {
            const size_t close = text_.find("*/", pos_ + 1);
            if (close == absl::string_view::npos) {
              pos_ = text_.size();
              return Text(Tok::kLexError, std::string(text_.substr(start)));
            }
            pos_ = close + 2;
            continue;
          }
          return Make(Tok::kSlash);
        case '#':
          SkipLine();
          continue;
        case '-':
          if (NextIs('-')) {
            SkipLine();
            continue;
          }
          if (NextIs('>')) {
            ++pos_;
            if (NextIs('>')) {
              ++pos_;
              return Make(Tok::kJsonUnquoteExtract);
            }
            return Make(Tok::kJsonExtract);
          }
          return Make(Tok::kMinus);
        case '<':
          if (NextIs('>')) {
            ++pos_;
            return Make(Tok::kNe);
          }
          if (NextIs('<')) {
            ++pos_;
            return Make(Tok::kShiftLeft);
          }
          if (NextIs('=')) {
            ++pos_;
            if (NextIs('>')) {
              ++pos_;
              return Make(Tok::kNullSafeEq);
            }
            return Make(Tok::kLe);
          }
          return Make(Tok::kLt);
        case '>':
          if (NextIs('=')) {
            ++pos_;
            return Make(Tok::kGe);
          }
          if (NextIs('>')) {
            ++pos_;
            return Make(Tok::kShiftRight);
          }
          return Make(Tok::kGt);
        case '!':
          if (NextIs('=')) {
            ++pos_;
            return Make(Tok::kNe);
          }
          return Make(Tok::kBang);
        case '\'':
        case '"':
          return String(c);
        case '`':
          return QuotedName();
        default:
          return Text(Tok::kLexError, std::string(1, c));
      }
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

  Token String(char delim) {
    std::string value;
    for (;;) {
      if (AtEnd()) return Text(Tok::kLexError, std::move(value));
      const char c = text_[pos_++];
      if (c == '\\') {
        if (AtEnd()) return Text(Tok::kLexError, std::move(value));
        value.push_back(Unescape(text_[pos_++]));
      } else if (c == delim) {
        if (!NextIs(delim)) break;
        value.push_back(delim);  // a doubled delimiter
        ++pos_;
      } else {
        value.push_back(c);
      }
    }
    return Text(Tok::kString, std::move(value));
  }

  Token QuotedName() {
    std::string value;
    for (;;) {
      if (AtEnd()) return Text(Tok::kLexError, std::move(value));
      const char c = text_[pos_++];
      if (c == '`') {
        if (!NextIs('`')) break;
        value.push_back('`');
        ++pos_;
      } else {
        value.push_back(c);
      }
    }
    if (value.empty()) return Text(Tok::kLexError, "");
    return Text(Tok::kId, std::move(value));
  }

  // x'..' (an even number of hex digits) and b'..', after the quote.
  Token Quoted(int base) {
    const size_t start = pos_;
    while (!AtEnd() && (base == 16 ? absl::ascii_isxdigit(text_[pos_])
                                   : (text_[pos_] == '0' || text_[pos_] == '1'))) {
      ++pos_;
    }
    std::string digits(text_.substr(start, pos_ - start));
    if (!NextIs('\'')) return Text(Tok::kLexError, std::move(digits));
    ++pos_;
    if (base == 16 && digits.size() % 2 != 0) return Text(Tok::kLexError, std::move(digits));
    return Text(base == 16 ? Tok::kHex : Tok::kBit, std::move(digits));
  }

  void Digits(int base) {
    while (!AtEnd() && (base == 16 ? absl::ascii_isxdigit(text_[pos_]) : IsDigit(text_[pos_]))) {
      ++pos_;
    }
  }

  // 12, 1.5, .5, 1., 1e3, 1.5E-3, 1e (a number the converter cannot read), 0x1F; `start` is at
  // the first digit or the '.' before it. A letter right after a number is an error.
  Token Number(size_t start) {
    Tok kind = Tok::kIntegral;
    if (text_[start] == '.') {
      kind = Tok::kFloat;
      Digits(10);
    } else if (text_[pos_] == '0' && pos_ + 1 < text_.size() &&
               (text_[pos_ + 1] == 'x' || text_[pos_ + 1] == 'X')) {
      pos_ += 2;
      Digits(16);
      kind = Tok::kHexNum;
    } else {
      Digits(10);
      if (NextIs('.')) {
        kind = Tok::kFloat;
        ++pos_;
        Digits(10);
      }
    }
    if (kind != Tok::kHexNum && (NextIs('e') || NextIs('E'))) {
      kind = Tok::kFloat;
      ++pos_;
      if (NextIs('+') || NextIs('-')) ++pos_;
      Digits(10);
    }
    std::string text(text_.substr(start, pos_ - start));
    if (!AtEnd() && IsLetter(text_[pos_])) return Text(Tok::kLexError, std::move(text));
    return Text(kind, std::move(text));
  }

  // :name, ::name.
  Token BindVariable() {
    const size_t start = pos_;
    ++pos_;
    Tok kind = Tok::kValueArg;
    if (NextIs(':')) {
      kind = Tok::kListArg;
      ++pos_;
    }
    if (AtEnd() || !IsLetter(text_[pos_])) {
      return Text(Tok::kLexError, std::string(text_.substr(start, pos_ - start)));
    }
    while (!AtEnd() && (IsLetter(text_[pos_]) || IsDigit(text_[pos_]) || text_[pos_] == '.')) {
      ++pos_;
    }
    return Text(kind, std::string(text_.substr(start, pos_ - start)));
  }

  absl::string_view text_;
  size_t pos_ = 0;
  int value_args_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Parser.

// A literal's kind in Temporal's parser (sqlparser.SQLVal's types).
enum class ValType { kStr, kInt, kFloat, kHexNum, kHex, kBit, kArg };

// An expression as Temporal's parser would have it, with what the converter needs of it: its
// node type, its text as sqlparser.String() prints it (kept for names and literals, and for
// anything inside a unary operator, whose refusal quotes it), and its height.
struct Expr {
  enum class Type {
    kColumn,
    kValue,
    kBool,
    kNull,
    kListArg,
    kParen,
    kTuple,
    kFunc,
    kBinary,
    kUnary,
    kNode,  // a condition, or AND, OR, NOT: `node` holds it
  };
  Type type = Type::kValue;
  std::string text;
  // The height of its subtree in Temporal's parser (a leaf is 1, a column name 3), for the
  // parser's depth limit.
  int height = 1;
  // kColumn: the name Temporal resolves (its text without backquotes); kValue: the literal's
  // text (a string's decoded value); kUnary: the operator.
  std::string name;
  ValType val_type = ValType::kStr;  // kValue
  bool flag = false;                 // kBool
  std::vector<Expr> items;           // kParen: the inner one; kTuple: the elements; kUnary: 1
  std::unique_ptr<QueryNode> node;   // kNode (on the heap: the parser's frames stay small)
  absl::string_view go_type;         // kNode: the parser's node type, as Go's %T prints it
};

absl::string_view GoTypeOf(const Expr& e) {
  switch (e.type) {
    case Expr::Type::kColumn:
      return "*sqlparser.ColName";
    case Expr::Type::kValue:
      return "*sqlparser.SQLVal";
    case Expr::Type::kBool:
      return "sqlparser.BoolVal";
    case Expr::Type::kNull:
      return "*sqlparser.NullVal";
    case Expr::Type::kListArg:
      return "sqlparser.ListArg";
    case Expr::Type::kParen:
      return "*sqlparser.ParenExpr";
    case Expr::Type::kTuple:
      return "sqlparser.ValTuple";
    case Expr::Type::kFunc:
      return "*sqlparser.FuncExpr";
    case Expr::Type::kBinary:
      return "*sqlparser.BinaryExpr";
    case Expr::Type::kUnary:
      return "*sqlparser.UnaryExpr";
    case Expr::Type::kNode:
      return e.go_type;
  }
  return "";
}

// A string literal as the parser prints it: in single quotes, MySQL's escapes.
std::string SqlStringText(absl::string_view s) {
  std::string out = "'";
  for (char c : s) {
    switch (c) {
      case '\0':
        out += "\\0";
        break;
      case '\'':
        out += "\\'";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\x1a':
        out += "\\Z";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

// A name as the parser prints it: in backquotes when it is not a plain identifier or is a
// keyword.
std::string FormatName(absl::string_view name) {
  bool plain = !name.empty();
  for (size_t i = 0; i < name.size() && plain; ++i) {
    plain = IsLetter(name[i]) || (i > 0 && IsDigit(name[i]));
  }
  if (plain && KeywordClass(absl::AsciiStrToLower(name)) == 0) return std::string(name);
  return absl::StrCat("`", absl::StrReplaceAll(name, {{"`", "``"}}), "`");
}

// Go's strconv.ParseInt(s, 10, 64).
std::optional<int64_t> GoParseInt(absl::string_view s) {
  absl::string_view digits = s;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != absl::string_view::npos) {
    return std::nullopt;
  }
  int64_t v;
  if (!absl::SimpleAtoi(s, &v)) return std::nullopt;
  return v;
}

// Go's strconv.ParseFloat(s, 64) for the decimal forms (the parser's tokens hold no other that
// it reads): nullopt for anything else and for a value beyond float64.
std::optional<double> GoParseFloat(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && IsDigit(s[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  const std::string text(s);
  const double d = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

QueryLiteral Refused(std::string message) { return QueryRefusedValue{std::move(message)}; }

QueryNode RefusedNode(std::string message) {
  QueryNode n;
  n.kind = QueryNode::Kind::kRefused;
  n.refusal = std::move(message);
  return n;
}

// A literal's value as Temporal's converter reads it (sqlquery.ParseValue): a string, else an
// int64, else a float64.
QueryLiteral LiteralValue(const Expr& e) {
  if (e.val_type == ValType::kStr) {
    // Embedded NULs would be cut short by libpq's text parameters, silently changing the
    // value; PostgreSQL rejects them in text anyway.
    if (absl::StrContains(e.name, '\0')) {
      return Refused(Message(kInvalidExpression, "a string value contains a NUL character"));
    }
    return e.name;
  }
  // Temporal reads x'..' and b'..' as decimal digits too (x'10' as 10): the parser marks them
  // for the compiler to refuse in the end.
  if (std::optional<int64_t> i = GoParseInt(e.name)) return *i;
  if (std::optional<double> d = GoParseFloat(e.name)) return *d;
  return Refused(Message(kInvalidExpression, "unable to parse value ", GoQuote(e.text)));
}

// A value on the right of a comparison, as Temporal's converter takes it.
QueryLiteral ValueOf(const Expr& e) {
  switch (e.type) {
    case Expr::Type::kValue:
      return LiteralValue(e);
    case Expr::Type::kBool:
      return e.flag;
    case Expr::Type::kColumn:
      return Refused(Message(kNotSupported,
                             "column name on the right side of comparison expression (did you "
                             "forget to quote ",
                             GoQuote(e.text), "?)"));
    case Expr::Type::kFunc:
      return Refused(Message(kNotSupported, "nested func"));
    case Expr::Type::kUnary: {
      if (e.name != "-" && e.name != "+") {
        return Refused(Message(kNotSupported, "unary operator ", GoQuote(e.name)));
      }
      // A sign before a number (one before an integer is folded in by the parser already).
      const Expr& operand = e.items.front();
      if (operand.type == Expr::Type::kValue && operand.val_type != ValType::kStr) {
        QueryLiteral v = LiteralValue(operand);
        QuerySignedNumber signed_number;
        signed_number.negative = e.name == "-";
        signed_number.text = e.text;
        if (const auto* i = std::get_if<int64_t>(&v)) {
          signed_number.number = *i;
        } else if (const auto* d = std::get_if<double>(&v)) {
          signed_number.number = *d;
        } else {
          return v;  // refused
        }
        return signed_number;
      }
      return Refused(
          Message(kInvalidExpression, "unary operator not supported in ", GoQuote(e.text)));
    }
    default:
      return Refused(Message(kInvalidExpression, "unexpected value type ", GoTypeOf(e)));
  }
}

// What a bare expression (one that is not a condition) means where a condition is expected.
QueryNode ToNode(Expr&& e) {
  switch (e.type) {
    case Expr::Type::kNode:
      return std::move(*e.node);
    case Expr::Type::kParen:
      return ToNode(std::move(e.items.front()));
    case Expr::Type::kColumn:
      return RefusedNode(Message(kInvalidExpression, "incomplete expression"));
    case Expr::Type::kFunc:
      return RefusedNode(Message(kNotSupported, "function expression"));
    default:
      return RefusedNode(Message(kNotSupported, "expression of type ", GoTypeOf(e)));
  }
}

// A GROUP BY or ORDER BY term.
QueryClauseTerm ToTerm(const Expr& e) {
  QueryClauseTerm term;
  if (e.type == Expr::Type::kColumn) {
    term.attribute = e.name;
  } else {
    term.refusal = Message(kInvalidExpression, "must be a column name but was ", GoTypeOf(e));
  }
  return term;
}

absl::string_view OperatorText(QueryOp op) {
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
    case QueryOp::kNullSafeEqual:
      return "<=>";
    case QueryOp::kIn:
      return "in";
    case QueryOp::kNotIn:
      return "not in";
    case QueryOp::kLike:
      return "like";
    case QueryOp::kNotLike:
      return "not like";
    case QueryOp::kRegexp:
      return "regexp";
    case QueryOp::kNotRegexp:
      return "not regexp";
    case QueryOp::kStartsWith:
      return "starts_with";
    case QueryOp::kNotStartsWith:
      return "not starts_with";
    case QueryOp::kBetween:
      return "between";
    case QueryOp::kNotBetween:
      return "not between";
    case QueryOp::kIsNull:
      return "is null";
    case QueryOp::kIsNotNull:
      return "is not null";
    case QueryOp::kIsTrue:
      return "is true";
    case QueryOp::kIsNotTrue:
      return "is not true";
    case QueryOp::kIsFalse:
      return "is false";
    case QueryOp::kIsNotFalse:
      return "is not false";
  }
  return "";
}

// Declares `var`, a reference to expr's value, or returns its error.
#define VQ_TRY(var, expr)                       \
  auto var##_or = (expr);                       \
  if (!var##_or.ok()) return var##_or.status(); \
  auto& var = *var##_or

class Parser {
 public:
  // `trimmed` is the query without blanks around it, which Temporal's parser reads after
  // `prefix` characters of its own.
  Parser(absl::string_view trimmed, size_t prefix)
      : tokens_(Lexer(trimmed).Tokens()), prefix_(prefix) {}

  absl::StatusOr<ParsedQuery> Parse(bool with_where) {
    ParsedQuery out;
    bool limit = false, having = false;
    if (with_where) {
      VQ_TRY(where, Expression());
      CheckDepth(where, 2);
      out.where = ToNode(std::move(where));
    }
    if (Is(Peek(), "group")) {
      Take();
      if (!Is(Peek(), "by")) return SyntaxError(Peek());
      Take();
      for (;;) {
        VQ_TRY(term, Expression());
        CheckDepth(term, 2);
        out.group_by.push_back(ToTerm(term));
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (Is(Peek(), "having")) {
      Take();
      VQ_TRY(condition, Expression());
      CheckDepth(condition, 2);
      having = true;
    }
    if (Is(Peek(), "order")) {
      Take();
      if (!Is(Peek(), "by")) return SyntaxError(Peek());
      Take();
      for (;;) {
        VQ_TRY(term, Expression());
        CheckDepth(term, 3);
        QueryClauseTerm t = ToTerm(term);
        if (Is(Peek(), "asc")) {
          Take();
        } else if (Is(Peek(), "desc")) {
          Take();
          t.descending = true;
        }
        out.order_by.push_back(std::move(t));
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (Is(Peek(), "limit")) {
      Take();
      VQ_TRY(count, Expression());
      CheckDepth(count, 2);
      if (Peek().kind == Tok::kComma || Is(Peek(), "offset")) {
        Take();
        VQ_TRY(offset, Expression());
        CheckDepth(offset, 2);
      }
      limit = true;
    }
    // Locks mean nothing to a read of visibility; Temporal ignores them.
    if (Is(Peek(), "for")) {
      Take();
      if (!Is(Peek(), "update")) return SyntaxError(Peek());
      Take();
    } else if (Is(Peek(), "lock")) {
      Take();
      for (absl::string_view word : {"in", "share", "mode"}) {
        if (!Is(Peek(), word)) return SyntaxError(Peek());
        Take();
      }
    }
    if (Peek().kind == Tok::kSemicolon) Take();
    if (Peek().kind != Tok::kEnd) return SyntaxError(Peek());

    if (too_deep_) return QueryError(kMalformed, "max ast depth reached");
    if (conditions_ > kMaxQueryConditions) {
      return QueryError(kInvalidExpression, "more than ", kMaxQueryConditions, " conditions");
    }
    if (too_many_values_) {
      return QueryError(kInvalidExpression, "more than ", kMaxQueryParams, " values");
    }
    if (limit) return QueryError(kNotSupported, "'LIMIT' clause");
    // Temporal ignores a HAVING clause, filter and all; refusing it is safer.
    if (having) return QueryError(kNotSupported, "'HAVING' clause");
    return out;
  }

 private:
  const Token& Peek() const { return tokens_[std::min(next_, tokens_.size() - 1)]; }
  const Token& Take() {
    const Token& t = Peek();
    if (next_ < tokens_.size() - 1) ++next_;
    return t;
  }

  static bool Is(const Token& t, absl::string_view keyword) {
    return t.kind == Tok::kKeyword && t.value == keyword;
  }
  static bool IsAnd(const Token& t) { return Is(t, "and") || t.kind == Tok::kAndOp; }
  static bool IsOr(const Token& t) { return Is(t, "or") || t.kind == Tok::kOrOp; }
  // What may be a name (sql_id) anywhere, and what may be one after a '.'.
  static bool IsName(const Token& t) {
    return t.kind == Tok::kId || (t.kind == Tok::kKeyword && t.keyword_class == 'N');
  }
  static bool IsQualifiedName(const Token& t) {
    return IsName(t) || (t.kind == Tok::kKeyword && t.keyword_class == 'R');
  }

  // Where Temporal's parser reports an error at token t: just past it, counted in its text.
  std::string At(const Token& t) const {
    return absl::StrCat("at position ", prefix_ + t.end + 1,
                        t.has_value ? absl::StrCat(" near '", ValidUtf8(t.value), "'") : "");
  }
  ABSL_ATTRIBUTE_NOINLINE absl::Status SyntaxError(const Token& t) const {
    return QueryError(kMalformed, "syntax error ", At(t));
  }

  // Parentheses, NOTs and unary operators nest at most kMaxQueryNesting - 1 deep.
  absl::Status Enter(const Token& t) {
    if (++depth_ >= kMaxQueryNesting) return NestingError(t);
    return absl::OkStatus();
  }
  ABSL_ATTRIBUTE_NOINLINE absl::Status NestingError(const Token& t) const {
    return QueryError(kMalformed, "max nesting level reached ", At(t));
  }
  void Leave() { --depth_; }

  // Temporal's parser refuses a tree of 1000 levels or more; `depth` is where e sits in it.
  void CheckDepth(const Expr& e, int depth) {
    if (depth + e.height - 1 >= 1000) too_deep_ = true;
  }

  bool KeepText() const { return text_wanted_ > 0; }

  static int Height(std::initializer_list<int> children) {
    return 1 + std::min(std::max(children), 1000000);
  }

  ABSL_ATTRIBUTE_NOINLINE Expr Node(QueryNode node, absl::string_view go_type, int height,
                                    std::string text) {
    Expr e;
    e.type = Expr::Type::kNode;
    e.node = std::make_unique<QueryNode>(std::move(node));
    e.go_type = go_type;
    e.height = height;
    e.text = std::move(text);
    return e;
  }

  // The functions that recurse as expressions nest (Chain, Not, Predicate, Rest, Operation,
  // Binary, Unary, Primary, Parenthesised, Call) keep their frames small, as 199 levels of each
  // may be on the stack: what they do besides recursing is in helpers not inlined into them.

  // expression: OR of ANDs of NOTs of predicates. Chains become one node with every operand.
  absl::StatusOr<Expr> Expression() { return Chain(/*is_or=*/true); }

  absl::StatusOr<Expr> Chain(bool is_or) {
    absl::StatusOr<Expr> chain = is_or ? Chain(false) : Not();
    if (!chain.ok() || !(is_or ? IsOr(Peek()) : IsAnd(Peek()))) return chain;
    StartChain(*chain, is_or);
    while (is_or ? IsOr(Peek()) : IsAnd(Peek())) {
      Take();
      absl::StatusOr<Expr> next = is_or ? Chain(false) : Not();
      if (!next.ok()) return next;
      AddToChain(*chain, std::move(*next), is_or);
    }
    return chain;
  }

  ABSL_ATTRIBUTE_NOINLINE void StartChain(Expr& e, bool is_or) {
    QueryNode node;
    node.kind = is_or ? QueryNode::Kind::kOr : QueryNode::Kind::kAnd;
    const int height = e.height;
    std::string text = std::move(e.text);
    node.children.push_back(ToNode(std::move(e)));
    e = Node(std::move(node), is_or ? "*sqlparser.OrExpr" : "*sqlparser.AndExpr", height,
             std::move(text));
  }

  ABSL_ATTRIBUTE_NOINLINE void AddToChain(Expr& chain, Expr&& next, bool is_or) {
    chain.height = Height({chain.height, next.height});
    if (KeepText()) absl::StrAppend(&chain.text, is_or ? " or " : " and ", next.text);
    chain.node->children.push_back(ToNode(std::move(next)));
  }

  absl::StatusOr<Expr> Not() {
    if (!Is(Peek(), "not")) return Predicate();
    if (absl::Status st = Enter(Take()); !st.ok()) return st;
    absl::StatusOr<Expr> operand = Not();
    if (!operand.ok()) return operand;
    Leave();
    MakeNot(*operand);
    return operand;
  }

  ABSL_ATTRIBUTE_NOINLINE void MakeNot(Expr& e) {
    QueryNode node;
    node.kind = QueryNode::Kind::kNot;
    const int height = Height({e.height});
    std::string text = KeepText() ? absl::StrCat("not ", e.text) : "";
    node.children.push_back(ToNode(std::move(e)));
    e = Node(std::move(node), "*sqlparser.NotExpr", height, std::move(text));
  }

  // A value expression, and the comparison, IN, LIKE, BETWEEN ... it is the left side of, and
  // any IS suffixes after.
  absl::StatusOr<Expr> Predicate() {
    absl::StatusOr<Expr> left = Value();
    if (!left.ok()) return left;
    return Rest(std::move(*left));
  }

  static bool ComparisonOperator(const Token& t, QueryOp* op) {
    switch (t.kind) {
      case Tok::kEq:
        *op = QueryOp::kEqual;
        return true;
      case Tok::kNe:
        *op = QueryOp::kNotEqual;
        return true;
      case Tok::kLt:
        *op = QueryOp::kLess;
        return true;
      case Tok::kLe:
        *op = QueryOp::kLessOrEqual;
        return true;
      case Tok::kGt:
        *op = QueryOp::kGreater;
        return true;
      case Tok::kGe:
        *op = QueryOp::kGreaterOrEqual;
        return true;
      case Tok::kNullSafeEq:
        *op = QueryOp::kNullSafeEqual;
        return true;
      default:
        return false;
    }
  }

  static bool IsOperation(const Token& t) {
    return Is(t, "in") || Is(t, "like") || Is(t, "regexp") || Is(t, "starts_with") ||
           Is(t, "between");
  }

  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<Expr> Rest(Expr left) {
    QueryOp op;
    if (ComparisonOperator(Peek(), &op)) {
      Take();
      absl::StatusOr<Expr> right = Value();
      if (!right.ok()) return right;
      MakeComparison(left, op, std::move(*right), nullptr);
    } else if (IsOperation(Peek()) || Is(Peek(), "not")) {
      const bool negated = Is(Peek(), "not");
      if (negated) {
        Take();
        if (!IsOperation(Peek())) return SyntaxError(Peek());
      }
      absl::StatusOr<Expr> cond = Operation(std::move(left), negated);
      if (!cond.ok()) return cond;
      left = std::move(*cond);
    }
    if (absl::Status st = IsSuffixes(left); !st.ok()) return st;
    return left;
  }

  // expression IS [NOT] {NULL | TRUE | FALSE}, any number of times.
  ABSL_ATTRIBUTE_NOINLINE absl::Status IsSuffixes(Expr& e) {
    while (Is(Peek(), "is")) {
      Take();
      QueryOp op;
      bool negated = false;
      if (Is(Peek(), "not")) {
        Take();
        negated = true;
      }
      const Token& what = Peek();
      if (Is(what, "null")) {
        op = negated ? QueryOp::kIsNotNull : QueryOp::kIsNull;
      } else if (Is(what, "true")) {
        op = negated ? QueryOp::kIsNotTrue : QueryOp::kIsTrue;
      } else if (Is(what, "false")) {
        op = negated ? QueryOp::kIsNotFalse : QueryOp::kIsFalse;
      } else {
        return SyntaxError(what);
      }
      Take();
      e = IsCondition(std::move(e), op);
    }
    return absl::OkStatus();
  }

  // IN, LIKE, REGEXP, STARTS_WITH or BETWEEN (after NOT when negated), and its operands.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<Expr> Operation(Expr left, bool negated) {
    const Token& t = Take();
    if (Is(t, "in")) {
      absl::StatusOr<Expr> right = Tuple();
      if (!right.ok()) return right;
      MakeComparison(left, negated ? QueryOp::kNotIn : QueryOp::kIn, std::move(*right), nullptr);
      return left;
    }
    if (Is(t, "between")) {
      absl::StatusOr<Expr> from = Value();
      if (!from.ok()) return from;
      if (!IsAnd(Peek())) return SyntaxError(Peek());
      Take();
      absl::StatusOr<Expr> to = Value();
      if (!to.ok()) return to;
      MakeRange(left, negated ? QueryOp::kNotBetween : QueryOp::kBetween, std::move(*from),
                std::move(*to));
      return left;
    }
    QueryOp op;
    if (Is(t, "like")) {
      op = negated ? QueryOp::kNotLike : QueryOp::kLike;
    } else if (Is(t, "regexp")) {
      op = negated ? QueryOp::kNotRegexp : QueryOp::kRegexp;
    } else {
      op = negated ? QueryOp::kNotStartsWith : QueryOp::kStartsWith;
    }
    absl::StatusOr<Expr> right = Value();
    if (!right.ok()) return right;
    if ((op == QueryOp::kLike || op == QueryOp::kNotLike) && Is(Peek(), "escape")) {
      Take();
      absl::StatusOr<Expr> escape = Value();
      if (!escape.ok()) return escape;
      MakeComparison(left, op, std::move(*right), &*escape);
      return left;
    }
    MakeComparison(left, op, std::move(*right), nullptr);
    return left;
  }

  // These replace `left` by the condition it is the left side of.
  ABSL_ATTRIBUTE_NOINLINE void MakeComparison(Expr& left, QueryOp op, Expr&& right,
                                              const Expr* escape) {
    left = Comparison(std::move(left), op, std::move(right), escape);
  }
  ABSL_ATTRIBUTE_NOINLINE void MakeRange(Expr& left, QueryOp op, Expr&& from, Expr&& to) {
    left = Range(std::move(left), op, std::move(from), std::move(to));
  }

  // The values of an operand: a tuple's elements, for IN; a tuple where one value belongs (or
  // in IN's tuple) is a row value, whose elements Temporal checks all the same.
  static void AddValues(QueryNode& node, const Expr& operand, bool in) {
    if (operand.type != Expr::Type::kTuple) {
      node.values.push_back(ValueOf(operand));  // for IN, a ::list
      // A hex or bit literal, possibly signed.
      const Expr& literal = operand.type == Expr::Type::kUnary ? operand.items.front() : operand;
      if (literal.type == Expr::Type::kValue &&
          (literal.val_type == ValType::kHex || literal.val_type == ValType::kBit) &&
          node.deferred_refusal.empty()) {
        node.deferred_refusal =
            Message(kInvalidExpression, "unable to parse value ", GoQuote(literal.text));
      }
      return;
    }
    if (!in) {
      node.row_value = true;
      if (node.deferred_refusal.empty()) {
        node.deferred_refusal =
            Message(kInvalidExpression, "unexpected value type ", GoTypeOf(operand));
      }
    }
    for (const Expr& item : operand.items) AddValues(node, item, /*in=*/false);
  }

  ABSL_ATTRIBUTE_NOINLINE Expr Comparison(Expr left, QueryOp op, Expr right, const Expr* escape) {
    ++conditions_;
    const int height = Height({left.height, right.height, escape ? escape->height : 0});
    std::string text;
    if (KeepText()) {
      text = absl::StrCat(left.text, " ", OperatorText(op), " ", right.text,
                          escape ? absl::StrCat(" escape ", escape->text) : "");
    }
    QueryNode node;
    if (left.type != Expr::Type::kColumn) {
      node = RefusedNode(
          Message(kInvalidExpression, "must be a column name but was ", GoTypeOf(left)));
    } else {
      node.attribute = std::move(left.name);
      node.op = op;
      const bool in = op == QueryOp::kIn || op == QueryOp::kNotIn;
      if (in && right.items.size() > static_cast<size_t>(kMaxQueryParams)) {
        too_many_values_ = true;
      }
      AddValues(node, right, in);
    }
    return Node(std::move(node), "*sqlparser.ComparisonExpr", height, std::move(text));
  }

  ABSL_ATTRIBUTE_NOINLINE Expr Range(Expr left, QueryOp op, Expr from, Expr to) {
    ++conditions_;
    const int height = Height({left.height, from.height, to.height});
    std::string text;
    if (KeepText()) {
      text = absl::StrCat(left.text, " ", OperatorText(op), " ", from.text, " and ", to.text);
    }
    QueryNode node;
    if (left.type != Expr::Type::kColumn) {
      node = RefusedNode(
          Message(kInvalidExpression, "must be a column name but was ", GoTypeOf(left)));
    } else {
      node.attribute = std::move(left.name);
      node.op = op;
      AddValues(node, from, /*in=*/false);
      AddValues(node, to, /*in=*/false);
    }
    return Node(std::move(node), "*sqlparser.RangeCond", height, std::move(text));
  }

  ABSL_ATTRIBUTE_NOINLINE Expr IsCondition(Expr operand, QueryOp op) {
    ++conditions_;
    const int height = Height({operand.height});
    std::string text = KeepText() ? absl::StrCat(operand.text, " ", OperatorText(op)) : "";
    QueryNode node;
    if (operand.type != Expr::Type::kColumn) {
      node = RefusedNode(
          Message(kInvalidExpression, "must be a column name but was ", GoTypeOf(operand)));
    } else {
      node.attribute = std::move(operand.name);
      node.op = op;
    }
    return Node(std::move(node), "*sqlparser.IsExpr", height, std::move(text));
  }

  // IN's right side: a parenthesised list (a tuple even of one) or a ::list bind variable.
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<Expr> Tuple() {
    if (Peek().kind == Tok::kListArg) {
      Expr e;
      e.type = Expr::Type::kListArg;
      e.text = Take().value;
      return e;
    }
    if (Peek().kind != Tok::kLParen) return SyntaxError(Peek());
    absl::StatusOr<Expr> e = Parenthesised();
    if (e.ok()) e->type = Expr::Type::kTuple;
    return e;
  }

  // ( expression, ... ): a tuple, or the one expression in parentheses.
  absl::StatusOr<Expr> Parenthesised() {
    if (absl::Status st = Enter(Take()); !st.ok()) return st;
    Expr e;
    for (;;) {
      absl::StatusOr<Expr> item = Expression();
      if (!item.ok()) return item;
      e.items.push_back(std::move(*item));
      if (Peek().kind != Tok::kComma) break;
      Take();
    }
    if (Peek().kind != Tok::kRParen) return SyntaxError(Peek());
    Take();
    Leave();
    FinishParenthesised(e);
    return e;
  }

  ABSL_ATTRIBUTE_NOINLINE void FinishParenthesised(Expr& e) const {
    e.type = e.items.size() == 1 ? Expr::Type::kParen : Expr::Type::kTuple;
    int height = 0;
    std::vector<absl::string_view> texts;
    for (const Expr& item : e.items) {
      height = std::max(height, item.height);
      texts.push_back(item.text);
    }
    e.height = Height({height});
    if (KeepText()) e.text = absl::StrCat("(", absl::StrJoin(texts, ", "), ")");
  }

  // value_expression: | below & below << >> below + - below * / DIV % MOD below ^ below the
  // unary operators, each left-associative.
  absl::StatusOr<Expr> Value() { return Binary(0); }

  // The binary operator at t and its precedence level (0 for |, 5 for ^); "" for none.
  static absl::string_view BinaryOperator(const Token& t, int* level) {
    struct Op {
      Tok kind;
      absl::string_view keyword, text;
      int level;
    };
    static constexpr Op kOps[] = {
        {Tok::kPipe, "", "|", 0},        {Tok::kAmp, "", "&", 1},
        {Tok::kShiftLeft, "", "<<", 2},  {Tok::kShiftRight, "", ">>", 2},
        {Tok::kPlus, "", "+", 3},        {Tok::kMinus, "", "-", 3},
        {Tok::kStar, "", "*", 4},        {Tok::kSlash, "", "/", 4},
        {Tok::kPercent, "", "%", 4},     {Tok::kKeyword, "mod", "%", 4},
        {Tok::kKeyword, "div", "div", 4}, {Tok::kCaret, "", "^", 5},
    };
    for (const Op& op : kOps) {
      if (t.kind == op.kind && (op.keyword.empty() || t.value == op.keyword)) {
        *level = op.level;
        return op.text;
      }
    }
    return "";
  }

  ABSL_ATTRIBUTE_NOINLINE Expr BinaryExpr(Expr left, absl::string_view op, Expr right) {
    Expr e;
    e.type = Expr::Type::kBinary;
    e.height = Height({left.height, right.height});
    if (KeepText()) e.text = absl::StrCat(left.text, " ", op, " ", right.text);
    return e;
  }

  ABSL_ATTRIBUTE_NOINLINE void MakeBinary(Expr& left, absl::string_view op, Expr&& right) {
    left = BinaryExpr(std::move(left), op, std::move(right));
  }

  // Precedence climbing: the operators of level `min` and above.
  absl::StatusOr<Expr> Binary(int min) {
    absl::StatusOr<Expr> left = Unary();
    if (!left.ok()) return left;
    for (;;) {
      int level = 0;
      const absl::string_view op = BinaryOperator(Peek(), &level);
      if (op.empty() || level < min) return left;
      Take();
      absl::StatusOr<Expr> right = Binary(level + 1);
      if (!right.ok()) return right;
      MakeBinary(*left, op, std::move(*right));
    }
  }

  absl::StatusOr<Expr> Unary() {
    const Token& t = Peek();
    absl::string_view op;
    if (t.kind == Tok::kPlus) {
      op = "+";
    } else if (t.kind == Tok::kMinus) {
      op = "-";
    } else if (t.kind == Tok::kTilde) {
      op = "~";
    } else if (t.kind == Tok::kBang) {
      op = "!";
    } else if (Is(t, "binary")) {
      op = "binary ";
    } else {
      return Primary();
    }
    if (absl::Status st = Enter(Take()); !st.ok()) return st;
    ++text_wanted_;
    absl::StatusOr<Expr> operand = Unary();
    if (!operand.ok()) return operand;
    --text_wanted_;
    Leave();
    ApplyUnary(op, *operand);
    return operand;
  }

  // The parser folds a sign into an integer (- -5 is 5); anything else is a unary expression.
  ABSL_ATTRIBUTE_NOINLINE static void ApplyUnary(absl::string_view op, Expr& e) {
    if ((op == "-" || op == "+") && e.type == Expr::Type::kValue &&
        e.val_type == ValType::kInt) {
      if (op == "-") {
        e.name = absl::StartsWith(e.name, "-") ? e.name.substr(1) : absl::StrCat("-", e.name);
        e.text = e.name;
      }
      return;
    }
    Expr operand = std::move(e);
    e = Expr();
    e.type = Expr::Type::kUnary;
    e.name = std::string(op);
    e.height = Height({operand.height});
    e.text = absl::StrCat(op, operand.type == Expr::Type::kUnary ? " " : "", operand.text);
    e.items.push_back(std::move(operand));
  }

  ABSL_ATTRIBUTE_NOINLINE static Expr Literal(ValType type, std::string value) {
    Expr e;
    e.type = Expr::Type::kValue;
    e.val_type = type;
    switch (type) {
      case ValType::kStr:
        e.text = SqlStringText(value);
        break;
      case ValType::kHex:
        e.text = absl::StrCat("X'", value, "'");
        break;
      case ValType::kBit:
        e.text = absl::StrCat("B'", value, "'");
        break;
      default:
        e.text = value;
    }
    e.name = std::move(value);
    return e;
  }

  static std::optional<ValType> LiteralType(Tok kind) {
    switch (kind) {
      case Tok::kString:
        return ValType::kStr;
      case Tok::kIntegral:
        return ValType::kInt;
      case Tok::kFloat:
        return ValType::kFloat;
      case Tok::kHexNum:
        return ValType::kHexNum;
      case Tok::kHex:
        return ValType::kHex;
      case Tok::kBit:
        return ValType::kBit;
      case Tok::kValueArg:
        return ValType::kArg;
      default:
        return std::nullopt;
    }
  }

  // NULL, TRUE or FALSE.
  ABSL_ATTRIBUTE_NOINLINE static Expr Constant(absl::string_view word) {
    Expr e;
    e.type = word == "null" ? Expr::Type::kNull : Expr::Type::kBool;
    e.flag = word == "true";
    e.text = std::string(word);
    return e;
  }

  absl::StatusOr<Expr> Primary() {
    const Token& t = Peek();
    if (std::optional<ValType> type = LiteralType(t.kind)) return Literal(*type, Take().value);
    if (Is(t, "null") || Is(t, "true") || Is(t, "false")) return Constant(Take().value);
    if (t.kind == Tok::kLParen) return Parenthesised();
    if (IsName(t)) return Name();
    return SyntaxError(t);
  }

  // A column name (name, table.name or db.table.name) or a function call (name(...),
  // table.name(...)).
  ABSL_ATTRIBUTE_NOINLINE absl::StatusOr<Expr> Name() {
    std::vector<std::string> parts = {Take().value};
    if (Peek().kind == Tok::kLParen) return Call(parts);
    if (Peek().kind == Tok::kDot) {
      Take();
      if (!IsQualifiedName(Peek())) return SyntaxError(Peek());
      parts.push_back(Take().value);
      if (Peek().kind == Tok::kLParen) return Call(parts);
      if (Peek().kind == Tok::kDot) {
        Take();
        if (!IsQualifiedName(Peek())) return SyntaxError(Peek());
        parts.push_back(Take().value);
      }
    }
    Expr column;
    column.type = Expr::Type::kColumn;
    std::vector<std::string> formatted;
    for (const std::string& p : parts) formatted.push_back(FormatName(p));
    column.text = absl::StrJoin(formatted, ".");
    column.name = absl::StrReplaceAll(column.text, {{"`", ""}});
    column.height = 3;  // the name and its (empty) qualifier below it
    if (Peek().kind == Tok::kJsonExtract || Peek().kind == Tok::kJsonUnquoteExtract) {
      const absl::string_view op = Take().kind == Tok::kJsonExtract ? "->" : "->>";
      const Token& v = Peek();
      std::optional<ValType> type = LiteralType(v.kind);
      if (!type.has_value() && !Is(v, "null")) return SyntaxError(v);
      Expr value = type.has_value() ? Literal(*type, Take().value) : Expr();
      if (!type.has_value()) {
        Take();
        value.type = Expr::Type::kNull;
        value.text = "null";
      }
      return BinaryExpr(std::move(column), op, std::move(value));
    }
    return column;
  }

  // How many tokens from here make a `*`, `table.*` or `db.table.*` argument (0: none).
  int StarAhead() const {
    auto at = [&](size_t k) -> const Token& {
      return tokens_[std::min(next_ + k, tokens_.size() - 1)];
    };
    if (at(0).kind == Tok::kStar) return 1;
    if (!IsName(at(0)) || at(1).kind != Tok::kDot) return 0;
    if (at(2).kind == Tok::kStar) return 3;
    if (IsQualifiedName(at(2)) && at(3).kind == Tok::kDot && at(4).kind == Tok::kStar) return 5;
    return 0;
  }

  // After the function's name: ( [DISTINCT] {* | expression [[AS] alias]}, ... ).
  absl::StatusOr<Expr> Call(const std::vector<std::string>& parts) {
    if (absl::Status st = Enter(Take()); !st.ok()) return st;
    int args_height = 1;
    bool distinct = false;
    std::vector<std::string> texts;
    if (Peek().kind != Tok::kRParen) {
      if (Is(Peek(), "distinct")) {
        Take();
        distinct = true;
      }
      for (;;) {
        if (const int star = StarAhead(); star > 0) {
          std::string text;
          for (int i = 0; i < star; ++i) {
            const Token& t = Take();
            absl::StrAppend(&text, t.kind == Tok::kDot    ? "."
                                   : t.kind == Tok::kStar ? "*"
                                                          : FormatName(t.value));
          }
          args_height = std::max(args_height, 4);
          texts.push_back(std::move(text));
        } else {
          VQ_TRY(arg, Expression());
          args_height = std::max(args_height, Height({arg.height, 1}) + 1);
          // An alias: [AS] name or 'string'.
          const bool as = Is(Peek(), "as");
          if (as) Take();
          if (IsName(Peek()) || Peek().kind == Tok::kString) {
            const Token& alias = Take();
            absl::StrAppend(&arg.text, " as ", FormatName(alias.value));
          } else if (as) {
            return SyntaxError(Peek());
          }
          texts.push_back(std::move(arg.text));
        }
        if (Peek().kind != Tok::kComma) break;
        Take();
      }
    }
    if (Peek().kind != Tok::kRParen) return SyntaxError(Peek());
    Take();
    Leave();
    Expr e;
    e.type = Expr::Type::kFunc;
    e.height = Height({args_height});
    if (KeepText()) {
      e.text = absl::StrCat(parts.size() > 1 ? absl::StrCat(FormatName(parts[0]), ".") : "",
                            parts.back(), "(", distinct ? "distinct " : "",
                            absl::StrJoin(texts, ", "), ")");
    }
    return e;
  }

  std::vector<Token> tokens_;
  size_t next_ = 0;
  size_t prefix_;
  int depth_ = 0;
  int text_wanted_ = 0;
  int conditions_ = 0;
  bool too_deep_ = false;
  bool too_many_values_ = false;
};

#undef VQ_TRY

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
// YYYY-MM-DDTHH:MM:SS[.fraction]{Z|+hh:mm|-hh:mm}, the hour of one digit or two, fractions of
// any length (digits beyond nanoseconds ignored), '.' or ',' before them, offsets up to 24:60. Returns microseconds since the epoch, rounded
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
  // Go's general parser reads the hour as one or two digits.
  const size_t hour_digits = s.size() > 12 && absl::ascii_isdigit(s[12]) ? 2 : 1;
  if (!number(4, &year) || !literal('-') || !number(2, &month) || !literal('-') ||
      !number(2, &day) || !literal('T') || !number(hour_digits, &hour) || !literal(':') ||
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
    // Go allows offsets of 24 hours or 60 minutes.
    if (!number(2, &oh) || !literal(':') || !number(2, &om) || oh > 24 || om > 60) {
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
    case QueryOp::kRegexp:
      return QueryOp::kNotRegexp;
    case QueryOp::kNotRegexp:
      return QueryOp::kRegexp;
    case QueryOp::kIsTrue:
      return QueryOp::kIsNotTrue;
    case QueryOp::kIsNotTrue:
      return QueryOp::kIsTrue;
    case QueryOp::kIsFalse:
      return QueryOp::kIsNotFalse;
    case QueryOp::kIsNotFalse:
      return QueryOp::kIsFalse;
    case QueryOp::kNullSafeEqual:
      return QueryOp::kNullSafeEqual;  // refused before it is negated
  }
  return op;
}

// The operators Temporal's converter accepts for each type.
bool OperatorAllowed(IndexedValueType type, QueryOp op) {
  switch (op) {
    case QueryOp::kIsNull:
    case QueryOp::kIsNotNull:
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
      return type != INDEXED_VALUE_TYPE_TEXT && type != INDEXED_VALUE_TYPE_KEYWORD_LIST;
    case QueryOp::kBetween:
    case QueryOp::kNotBetween:
      return type == INDEXED_VALUE_TYPE_KEYWORD || type == INDEXED_VALUE_TYPE_INT ||
             type == INDEXED_VALUE_TYPE_DOUBLE || type == INDEXED_VALUE_TYPE_DATETIME;
    default:  // LIKE, REGEXP, <=>, IS TRUE ...
      return false;
  }
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
    if (!deferred_.empty()) return Refusal(deferred_);
    // Runs of a namespace division (a schedule's row) are listed only when asked for.
    if (options_.default_division && !names_division_) {
      out.where = out.where.empty() ? "namespace_division IS NULL"
                                    : absl::StrCat("namespace_division IS NULL AND ", out.where);
    }
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
      case QueryNode::Kind::kRefused:
        return Refusal(node.refusal);
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

  // One literal as the attribute's stored value, checked as Temporal's converter checks it.
  absl::StatusOr<Bound> Value(const QueryNode& node, const ResolvedSearchAttribute& a,
                              const QueryLiteral& v) {
    if (const auto* refused = std::get_if<QueryRefusedValue>(&v)) {
      return Refusal(refused->message);
    }
    if (const auto* signed_number = std::get_if<QuerySignedNumber>(&v)) {
      // The number is checked as written; then the sign, which a time or a status (by then a
      // text in Temporal's converter) does not take.
      const QueryLiteral number = std::visit([](auto n) { return QueryLiteral(n); },
                                             signed_number->number);
      absl::StatusOr<Bound> b = Value(node, a, number);
      if (!b.ok()) return b.status();
      if (a.name == kExecutionStatus || a.type == INDEXED_VALUE_TYPE_DATETIME) {
        return QueryError(kInvalidExpression, "unary expression ", GoQuote(signed_number->text));
      }
      if (!signed_number->negative) return b;
      if (const double* d = std::get_if<double>(&*b)) return Bound(0.0 - *d);
      const int64_t i = std::get<int64_t>(std::get<SqlValue>(*b));
      if (i == std::numeric_limits<int64_t>::min()) return Bound(-static_cast<double>(i));
      return Bound(SqlValue(-i));
    }
    // Temporal takes a boolean as it is, whatever the attribute: only the type check refuses
    // it, in the same words for every attribute.
    if (std::holds_alternative<bool>(v) && a.type != INDEXED_VALUE_TYPE_BOOL) {
      return ValueTypeError(node.attribute, a.type, v);
    }
    if (a.name == kExecutionStatus) {
      const StatusNames& names = ExecutionStatusNames();
      if (const auto* s = std::get_if<std::string>(&v)) {
        auto it = names.by_name.find(*s);
        if (it == names.by_name.end()) {
          return QueryError(kInvalidExpression, "invalid ExecutionStatus value '", *s, "'");
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
                            *s);
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
            return QueryError(kInvalidExpression, "unable to parse datetime '", *s, "'");
          }
          return Bound(SqlValue(*micros));
        }
        return ValueTypeError(node.attribute, a.type, v);
      case INDEXED_VALUE_TYPE_TEXT:
        if (const auto* s = std::get_if<std::string>(&v)) {
          // Temporal splits a Text value at spaces, and refuses one with nothing else.
          if (s->find_first_not_of(' ') == std::string::npos) {
            return QueryError(kInvalidExpression,
                              "no tokens found filtering on Text type search attribute ",
                              node.attribute);
          }
          return Bound(SqlValue(*s));
        }
        return ValueTypeError(node.attribute, a.type, v);
      case INDEXED_VALUE_TYPE_KEYWORD:
      case INDEXED_VALUE_TYPE_KEYWORD_LIST:
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

  // The literal an ExecutionStatus value was written as, as Temporal names it back: the text as
  // written, or the number's name.
  static std::string StatusAsWritten(const QueryLiteral& v) {
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* i = std::get_if<int64_t>(&v)) return ExecutionStatusName(static_cast<int>(*i));
    return "";
  }

  // SQL for a condition that holds for every run, or for none.
  static Sql Constant(bool value) { return Sql{value ? "1 = 1" : "1 = 0"}; }

  // A condition, checked in Temporal's order: the attribute, a range's type, IS's operator, the
  // values, the operator; then compiled (NOT, when negate, pushed into it).
  absl::StatusOr<Sql> Condition(const QueryNode& given, bool negate) {
    // ListSchedules: ScheduleId names a schedule's row, whose workflow id is the schedule id
    // behind a prefix, as Temporal rewrites it.
    std::optional<QueryNode> rewritten;
    if (!options_.schedule_id_prefix.empty() &&
        (given.attribute == "ScheduleId" || given.attribute == "TemporalScheduleId")) {
      rewritten = given;
      for (QueryLiteral& v : rewritten->values) {
        if (auto* text = std::get_if<std::string>(&v)) {
          *text = absl::StrCat(options_.schedule_id_prefix, *text);
        }
      }
    }
    const QueryNode& node = rewritten.has_value() ? *rewritten : given;
    absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, node.attribute);
    if (!a.ok()) return a.status();
    if (a->name == "TemporalNamespaceDivision") names_division_ = true;
    const bool range = node.op == QueryOp::kBetween || node.op == QueryOp::kNotBetween;
    if (range && !OperatorAllowed(a->type, node.op)) {
      return QueryError(kInvalidExpression, "cannot do range condition on search attribute '",
                        node.attribute, "' of type ", IndexedValueTypeName(a->type));
    }
    if (node.op == QueryOp::kIsTrue || node.op == QueryOp::kIsNotTrue ||
        node.op == QueryOp::kIsFalse || node.op == QueryOp::kIsNotFalse) {
      return QueryError(kInvalidExpression,
                        "'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'");
    }
    std::vector<Bound> values;
    values.reserve(node.values.size());
    for (const QueryLiteral& literal : node.values) {
      absl::StatusOr<Bound> v = Value(node, *a, literal);
      if (!v.ok()) return v.status();
      values.push_back(std::move(*v));
    }
    if (!OperatorAllowed(a->type, node.op)) return OperatorError(node.attribute, a->type, node.op);
    const bool starts_with = node.op == QueryOp::kStartsWith || node.op == QueryOp::kNotStartsWith;
    // ExecutionStatus is a Keyword stored as its number: a prefix of it means nothing.
    if (starts_with && (a->name == kExecutionStatus || node.row_value)) {
      std::vector<std::string> got;
      for (const QueryLiteral& v : node.values) {
        got.push_back(a->name == kExecutionStatus ? StatusAsWritten(v) : std::get<std::string>(v));
      }
      return QueryError(kInvalidExpression, "right-hand side of ", GoQuote(OperatorText(node.op)),
                        " operator must be a literal string (got: ",
                        node.row_value ? absl::StrCat("[", absl::StrJoin(got, " "), "]") : got[0],
                        ")");
    }
    if (node.row_value && IsMultiValued(a->type) && node.op != QueryOp::kIn &&
        node.op != QueryOp::kNotIn) {
      std::vector<std::string> got;
      for (const QueryLiteral& v : node.values) {
        got.push_back(absl::StrCat("'", std::get<std::string>(v), "'"));
      }
      return QueryError(kInvalidExpression, "unexpected value type (expected string, got (",
                        absl::StrJoin(got, ", "), "))");
    }
    if (deferred_.empty()) deferred_ = node.deferred_refusal;  // refused once the rest is checked
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

    if (!IsMultiValued(a->type)) {
      const std::string exists = absl::StrCat(kSideTableFrom, Placeholder(a->name));
      if (op == QueryOp::kIsNull) return Sql{absl::StrCat("NOT ", Exists(exists))};
      if (op == QueryOp::kIsNotNull) return Sql{Exists(exists)};
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

    // KeywordList and Text, full-text matches in Temporal's SQL stores: `=` and IN ask for a
    // row with one of the values (of the value's tokens); `!=` and NOT IN for none, which a
    // run without the attribute has too.
    if (op == QueryOp::kIsNull || op == QueryOp::kIsNotNull) {
      const std::string exists = absl::StrCat(kSideTableFrom, Placeholder(a->name));
      return Sql{op == QueryOp::kIsNull ? absl::StrCat("NOT ", Exists(exists)) : Exists(exists)};
    }
    const bool contains = op == QueryOp::kEqual || op == QueryOp::kIn;
    std::vector<Bound> wanted;
    if (a->type == INDEXED_VALUE_TYPE_TEXT) {
      const std::vector<std::string> tokens =
          TokenizeText(AsString(std::get<SqlValue>(values.front())));
      if (tokens.empty()) return Constant(!contains);  // nothing to match
      for (const std::string& t : tokens) wanted.emplace_back(SqlValue(t));
    } else {
      wanted = std::move(values);
    }
    const std::string exists = absl::StrCat(kSideTableFrom, Placeholder(a->name));
    const QueryOp member = wanted.size() == 1 ? QueryOp::kEqual : QueryOp::kIn;
    absl::StatusOr<std::string> p = Predicate("sa.text_value", member, std::move(wanted));
    if (!p.ok()) return p.status();
    if (absl::Status st = CheckParams(); !st.ok()) return st;
    const std::string match = Exists(absl::StrCat(exists, " AND ", *p));
    return Sql{contains ? match : absl::StrCat("NOT ", match)};
  }

  // Temporal checks GROUP BY in every call: one term, ExecutionStatus or
  // TemporalNamespaceDivision. A count groups by ExecutionStatus (the only column we can group
  // by); a list ignores it.
  absl::Status GroupBy(const ParsedQuery& query, CompiledVisibilityQuery* out) {
    if (query.group_by.empty()) return absl::OkStatus();
    if (query.group_by.size() > 1) {
      return QueryError(kNotSupported, "'GROUP BY' clause supports only a single field");
    }
    const QueryClauseTerm& term = query.group_by.front();
    if (!term.refusal.empty()) return Refusal(term.refusal);
    absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, term.attribute);
    if (!a.ok()) return a.status();
    const bool groupable =
        a->name == kExecutionStatus ||
        (options_.kind == VisibilityQueryKind::kList && a->name == "TemporalNamespaceDivision");
    if (!groupable) {
      return QueryError(kNotSupported, "'GROUP BY' clause is not supported for search attribute ",
                        term.attribute);
    }
    if (options_.kind == VisibilityQueryKind::kCount) out->group_by = std::string(a->column);
    return absl::OkStatus();
  }

  // ORDER BY's terms, checked as Temporal checks them (an attribute, not a Text one; nor, when
  // we order, a KeywordList one); then refused when !allow_order_by.
  absl::Status OrderBy(const ParsedQuery& query, CompiledVisibilityQuery* out) {
    std::vector<VisibilitySortKey> keys;
    bool has_run_id = false;
    for (const QueryClauseTerm& term : query.order_by) {
      if (!term.refusal.empty()) return Refusal(term.refusal);
      absl::StatusOr<ResolvedSearchAttribute> a = ResolveSearchAttribute(schema_, term.attribute);
      if (!a.ok()) return a.status();
      if (a->type == INDEXED_VALUE_TYPE_TEXT ||
          (options_.allow_order_by && IsMultiValued(a->type))) {
        return QueryError(kNotSupported, "unable to sort by search attribute type ",
                          IndexedValueTypeName(a->type));
      }
      if (!options_.allow_order_by || options_.kind == VisibilityQueryKind::kCount) continue;
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
    if (!query.order_by.empty() && !options_.allow_order_by) {
      return QueryError(kNotSupported, "'ORDER BY' clause");
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
  bool names_division_ = false;  // a condition names TemporalNamespaceDivision
  int exists_count_ = 0;
  std::string deferred_;  // the first condition's deferred refusal
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
    case QueryOp::kRegexp:
      return "REGEXP";
    case QueryOp::kNotRegexp:
      return "NOT REGEXP";
    case QueryOp::kNullSafeEqual:
      return "<=>";
    case QueryOp::kIsTrue:
      return "IS TRUE";
    case QueryOp::kIsNotTrue:
      return "IS NOT TRUE";
    case QueryOp::kIsFalse:
      return "IS FALSE";
    case QueryOp::kIsNotFalse:
      return "IS NOT FALSE";
  }
  return "?";
}

absl::StatusOr<ParsedQuery> ParseVisibilityQuery(absl::string_view query) {
  // Protobuf already refuses a request whose strings are not UTF-8; a caller that skips it
  // must not get bytes PostgreSQL would refuse into a parameter.
  if (!IsValidUtf8(query)) return QueryError(kMalformed, "the query is not valid UTF-8");
  // Temporal parses "select * from table1 where <query>", without "where " when the query
  // starts with ORDER BY or GROUP BY: its positions count from there.
  constexpr absl::string_view kSelect = "select * from table1 ";
  const absl::string_view trimmed = TrimGoSpace(query);
  if (trimmed.empty()) return ParsedQuery{};
  const std::string start = absl::AsciiStrToLower(trimmed.substr(0, 8));
  const bool clauses_only = start == "order by" || start == "group by";
  return Parser(trimmed, kSelect.size() + (clauses_only ? 0 : absl::string_view("where ").size()))
      .Parse(/*with_where=*/!clauses_only);
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
      // Written once the run closes, as Temporal writes them: NULL while it is open.
      {"HistoryLength", INDEXED_VALUE_TYPE_INT, "history_length", true},
      {"ExecutionDuration", INDEXED_VALUE_TYPE_INT, "execution_duration", true},
      {"StateTransitionCount", INDEXED_VALUE_TYPE_INT, "state_transition_count", true},
      {"HistorySizeBytes", INDEXED_VALUE_TYPE_INT, "history_size_bytes", true},
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
      {"TemporalNamespaceDivision", INDEXED_VALUE_TYPE_KEYWORD, "namespace_division", true},
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
  return Refusal(absl::StrCat("invalid search attribute: ", name));
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
