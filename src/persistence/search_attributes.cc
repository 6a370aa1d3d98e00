#include "persistence/search_attributes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "persistence/visibility_query.h"

namespace almanac::persistence {
namespace {

namespace common = temporal::api::common::v1;
namespace enums = temporal::api::enums::v1;

// ---- A small JSON reader: enough for search attribute values ---------------------------------

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // kString: the decoded string; kNumber: the literal as written
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;  // kObject
};

constexpr int kMaxJsonDepth = 64;

class JsonReader {
 public:
  explicit JsonReader(absl::string_view s) : s_(s) {}

  std::optional<Json> ReadDocument() {
    Json v;
    if (!Value(&v, 0)) return std::nullopt;
    SkipSpace();
    if (i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool Literal(absl::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool Value(Json* out, int depth) {
    if (depth > kMaxJsonDepth) return false;
    SkipSpace();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == 'n') return Literal("null") && (out->kind = Json::Kind::kNull, true);
    if (c == 't') return Literal("true") && (out->kind = Json::Kind::kBool, out->boolean = true);
    if (c == 'f') {
      out->kind = Json::Kind::kBool;
      return Literal("false");
    }
    if (c == '"') {
      out->kind = Json::Kind::kString;
      return String(&out->text);
    }
    if (c == '[') {
      ++i_;
      out->kind = Json::Kind::kArray;
      SkipSpace();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      for (;;) {
        Json item;
        if (!Value(&item, depth + 1)) return false;
        out->items.push_back(std::move(item));
        SkipSpace();
        if (i_ >= s_.size()) return false;
        if (s_[i_] == ']') return ++i_, true;
        if (s_[i_] != ',') return false;
        ++i_;
      }
    }
    if (c == '{') {
      ++i_;
      out->kind = Json::Kind::kObject;
      SkipSpace();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      for (;;) {
        SkipSpace();
        std::string key;
        if (i_ >= s_.size() || s_[i_] != '"' || !String(&key)) return false;
        SkipSpace();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        Json member;
        if (!Value(&member, depth + 1)) return false;
        out->members.emplace_back(std::move(key), std::move(member));
        SkipSpace();
        if (i_ >= s_.size()) return false;
        if (s_[i_] == '}') return ++i_, true;
        if (s_[i_] != ',') return false;
        ++i_;
      }
    }
    out->kind = Json::Kind::kNumber;
    return Number(&out->text);
  }
  // JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool Number(std::string* out) {
    const size_t start = i_;
    auto digits = [&] {
      const size_t from = i_;
      while (i_ < s_.size() && absl::ascii_isdigit(s_[i_])) ++i_;
      return i_ > from;
    };
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (!digits()) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) return false;
    }
    *out = std::string(s_.substr(start, i_ - start));
    return true;
  }
  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool Hex4(uint32_t* out) {
    if (i_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_ + k];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else return false;
    }
    i_ += 4;
    *out = v;
    return true;
  }
  bool String(std::string* out) {
    ++i_;  // the opening quote
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            const size_t save = i_;
            i_ += 2;
            uint32_t low;
            if (Hex4(&low) && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              i_ = save;
              cp = 0xFFFD;
            }
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;  // a lone surrogate, as Go decodes it
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  absl::string_view s_;
  size_t i_ = 0;
};

bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// The payload's JSON, or nullopt when it is not a JSON payload Temporal's converter reads.
// A binary/null payload reads as JSON null.
std::optional<Json> PayloadJson(const common::Payload& payload) {
  auto it = payload.metadata().find("encoding");
  const std::string encoding = it == payload.metadata().end() ? "" : it->second;
  if (encoding == "binary/null") return Json{};
  if (encoding != "json/plain") return std::nullopt;
  return JsonReader(payload.data()).ReadDocument();
}

// Reads one JSON value as the type; false when it is not one.
bool ReadScalar(const Json& v, IndexedValueType type, SearchAttributeValue* out) {
  switch (type) {
    case enums::INDEXED_VALUE_TYPE_KEYWORD:
    case enums::INDEXED_VALUE_TYPE_TEXT:
    case enums::INDEXED_VALUE_TYPE_KEYWORD_LIST:
      if (v.kind != Json::Kind::kString || !IsUtf8(v.text)) return false;
      out->strings.push_back(v.text);
      return true;
    case enums::INDEXED_VALUE_TYPE_INT: {
      if (v.kind != Json::Kind::kNumber) return false;
      if (v.text.find_first_of(".eE") != std::string::npos) return false;
      return absl::SimpleAtoi(v.text, &out->int_value);
    }
    case enums::INDEXED_VALUE_TYPE_DOUBLE: {
      if (v.kind != Json::Kind::kNumber) return false;
      double d;
      if (!absl::SimpleAtod(v.text, &d) || !std::isfinite(d)) return false;
      out->double_value = d;
      return true;
    }
    case enums::INDEXED_VALUE_TYPE_BOOL:
      if (v.kind != Json::Kind::kBool) return false;
      out->int_value = v.boolean ? 1 : 0;
      return true;
    case enums::INDEXED_VALUE_TYPE_DATETIME: {
      if (v.kind != Json::Kind::kString) return false;
      auto micros = ParseRfc3339ToMicros(v.text);
      if (!micros.has_value()) return false;
      out->int_value = *micros;
      return true;
    }
    default:
      return false;
  }
}

// Go's %v of a float64: the shortest text that reads back as it, in exponent form when the
// exponent is below -4 or at least 21.
std::string GoFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
  char buf[64];
  int precision = 0;
  for (; precision < 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::snprintf(buf, sizeof buf, "%.*e", precision, d);
  const std::string e(buf);
  const size_t epos = e.find('e');
  const int exponent = std::atoi(e.c_str() + epos + 1);
  std::string mantissa = e.substr(0, epos);
  if (exponent < -4 || exponent >= 21) {
    return absl::StrCat(mantissa, "e", exponent < 0 ? "-" : "+",
                        std::abs(exponent) < 10 ? "0" : "", std::abs(exponent));
  }
  std::snprintf(buf, sizeof buf, "%.*f", std::max(0, precision - exponent), d);
  return buf;
}

std::string GoDisplay(const Json& v) {
  switch (v.kind) {
    case Json::Kind::kNull:
      return "<nil>";
    case Json::Kind::kBool:
      return v.boolean ? "true" : "false";
    case Json::Kind::kString:
      return v.text;
    case Json::Kind::kNumber: {
      double d = 0;
      if (!absl::SimpleAtod(v.text, &d)) return v.text;
      return GoFloat(d);
    }
    case Json::Kind::kArray: {
      std::vector<std::string> parts;
      for (const Json& item : v.items) parts.push_back(GoDisplay(item));
      return absl::StrCat("[", absl::StrJoin(parts, " "), "]");
    }
    case Json::Kind::kObject: {
      std::map<std::string, std::string> sorted;
      for (const auto& [k, m] : v.members) sorted[k] = GoDisplay(m);
      std::vector<std::string> parts;
      for (const auto& [k, m] : sorted) parts.push_back(absl::StrCat(k, ":", m));
      return absl::StrCat("map[", absl::StrJoin(parts, " "), "]");
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<SearchAttributeValue> DecodeSearchAttributeValue(const common::Payload& payload,
                                                                IndexedValueType type) {
  SearchAttributeValue out;
  out.type = type;
  if (payload.data().empty() && payload.metadata().empty()) {
    out.unset = true;
    return out;
  }
  std::optional<Json> json = PayloadJson(payload);
  if (!json.has_value()) return absl::InvalidArgumentError("");
  if (json->kind == Json::Kind::kNull) {
    out.unset = true;
    return out;
  }
  if (json->kind == Json::Kind::kArray) {
    if (json->items.empty()) {
      out.unset = true;
      return out;
    }
    if (type != enums::INDEXED_VALUE_TYPE_KEYWORD_LIST && json->items.size() > 1) {
      return absl::InvalidArgumentError("");
    }
    for (const Json& item : json->items) {
      if (!ReadScalar(item, type, &out)) return absl::InvalidArgumentError("");
    }
    return out;
  }
  if (!ReadScalar(*json, type, &out)) return absl::InvalidArgumentError("");
  return out;
}

std::string SearchAttributeValueError(absl::string_view name, IndexedValueType type,
                                      const common::Payload& payload) {
  std::optional<Json> json = PayloadJson(payload);
  std::string shown;
  if (json.has_value()) {
    shown = GoDisplay(*json);
  } else {
    shown = absl::StrCat("value from <", payload.ShortDebugString(), ">");
  }
  return absl::StrCat("invalid value for search attribute ", name, " of type ",
                      IndexedValueTypeName(type), ": ", shown);
}

IndexedValueType SearchAttributeTypeOf(const common::Payload& payload) {
  auto it = payload.metadata().find("type");
  if (it == payload.metadata().end()) return enums::INDEXED_VALUE_TYPE_UNSPECIFIED;
  return IndexedValueTypeFromName(it->second).value_or(enums::INDEXED_VALUE_TYPE_UNSPECIFIED);
}

void SetSearchAttributeType(common::Payload* payload, IndexedValueType type) {
  (*payload->mutable_metadata())["type"] = std::string(IndexedValueTypeName(type));
}

std::optional<IndexedValueType> IndexedValueTypeFromName(absl::string_view name) {
  for (IndexedValueType t :
       {enums::INDEXED_VALUE_TYPE_TEXT, enums::INDEXED_VALUE_TYPE_KEYWORD,
        enums::INDEXED_VALUE_TYPE_INT, enums::INDEXED_VALUE_TYPE_DOUBLE,
        enums::INDEXED_VALUE_TYPE_BOOL, enums::INDEXED_VALUE_TYPE_DATETIME,
        enums::INDEXED_VALUE_TYPE_KEYWORD_LIST}) {
    if (IndexedValueTypeName(t) == name) return t;
  }
  return std::nullopt;
}

std::vector<SearchAttributeIndexRow> SearchAttributeIndexRows(
    const common::SearchAttributes& attributes) {
  std::vector<SearchAttributeIndexRow> rows;
  for (const auto& [name, payload] : attributes.indexed_fields()) {
    const IndexedValueType type = SearchAttributeTypeOf(payload);
    if (type == enums::INDEXED_VALUE_TYPE_UNSPECIFIED) continue;
    if (name == "TemporalNamespaceDivision") continue;  // a column of the visibility row
    auto value = DecodeSearchAttributeValue(payload, type);
    if (!value.ok() || value->unset) continue;
    switch (type) {
      case enums::INDEXED_VALUE_TYPE_KEYWORD:
      case enums::INDEXED_VALUE_TYPE_KEYWORD_LIST: {
        std::vector<std::string> seen;
        for (const std::string& s : value->strings) {
          if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
          seen.push_back(s);
          rows.push_back({name, std::nullopt, std::nullopt, s});
        }
        break;
      }
      case enums::INDEXED_VALUE_TYPE_TEXT:
        for (std::string& token : TokenizeText(value->strings.front())) {
          rows.push_back({name, std::nullopt, std::nullopt, std::move(token)});
        }
        break;
      case enums::INDEXED_VALUE_TYPE_DOUBLE:
        rows.push_back({name, std::nullopt, value->double_value, std::nullopt});
        break;
      default:  // Int, Bool, Datetime
        rows.push_back({name, value->int_value, std::nullopt, std::nullopt});
        break;
    }
  }
  // A fixed order, so that equal attributes give equal rows.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.name < b.name; });
  return rows;
}

bool IsUnsetValue(const common::Payload& payload) {
  if (payload.data().empty()) return true;
  std::optional<Json> json = PayloadJson(payload);
  if (!json.has_value()) return false;
  return json->kind == Json::Kind::kNull ||
         (json->kind == Json::Kind::kArray && json->items.empty());
}

void MergeSearchAttributes(const common::SearchAttributes& update,
                           common::SearchAttributes* attributes) {
  auto* fields = attributes->mutable_indexed_fields();
  for (const auto& [name, payload] : update.indexed_fields()) {
    if (IsUnsetValue(payload)) {
      fields->erase(name);
    } else {
      (*fields)[name] = payload;
    }
  }
}

void MergeMemo(const common::Memo& update, common::Memo* memo) {
  auto* fields = memo->mutable_fields();
  for (const auto& [name, payload] : update.fields()) {
    if (IsUnsetValue(payload)) {
      fields->erase(name);
    } else {
      (*fields)[name] = payload;
    }
  }
}

namespace {

// Temporal's predefined attributes that users may still set.
bool PredefinedSettable(absl::string_view name) {
  static const auto* const names = new std::vector<absl::string_view>{
      "TemporalChangeVersion",     "BinaryChecksums",        "BuildIds",
      "BatcherNamespace",          "BatcherUser",            "TemporalScheduledStartTime",
      "TemporalScheduledById",     "TemporalSchedulePaused", "TemporalNamespaceDivision",
      "TemporalPauseInfo",         "TemporalReportedProblems"};
  return std::find(names->begin(), names->end(), name) != names->end();
}

const BuiltinSearchAttribute* Builtin(absl::string_view name) {
  for (const BuiltinSearchAttribute& a : BuiltinSearchAttributes()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace

std::optional<IndexedValueType> StoredAttributeType(const SearchAttributeSchema& schema,
                                                    absl::string_view name) {
  const BuiltinSearchAttribute* builtin = Builtin(name);
  if (builtin != nullptr) {
    if (!builtin->column.empty()) return std::nullopt;
    return builtin->type;
  }
  auto it = schema.custom.find(name);
  if (it == schema.custom.end()) return std::nullopt;
  return it->second;
}

absl::Status CheckSearchAttributeSizes(const SearchAttributeLimits& limits,
                                       const common::SearchAttributes& attributes) {
  std::vector<std::string> names;
  for (const auto& [name, payload] : attributes.indexed_fields()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const size_t size = attributes.indexed_fields().at(name).data().size();
    if (static_cast<int64_t>(size) > limits.max_value_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("search attribute ", name, " value size ",
                                                     size, " exceeds size limit ",
                                                     limits.max_value_bytes));
    }
  }
  const size_t total = attributes.ByteSizeLong();
  if (static_cast<int64_t>(total) > limits.max_total_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("total size of search attributes ", total,
                                                   " exceeds size limit ",
                                                   limits.max_total_bytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateSearchAttributes(const SearchAttributeSchema& schema,
                                      absl::string_view namespace_name,
                                      const SearchAttributeLimits& limits,
                                      common::SearchAttributes* attributes) {
  auto* fields = attributes->mutable_indexed_fields();
  if (fields->empty()) return absl::OkStatus();
  std::vector<std::string> names;
  names.reserve(fields->size());
  for (const auto& [name, payload] : *fields) names.push_back(name);
  std::sort(names.begin(), names.end());

  for (const std::string& name : names) {
    if (Builtin(name) == nullptr && !schema.custom.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("Namespace ", namespace_name,
                                                     " has no mapping defined for search attribute ",
                                                     name));
    }
  }
  if (static_cast<int>(names.size()) > limits.max_keys) {
    return absl::InvalidArgumentError(absl::StrCat("number of search attributes ", names.size(),
                                                   " exceeds limit ", limits.max_keys));
  }
  for (const std::string& name : names) {
    const BuiltinSearchAttribute* builtin = Builtin(name);
    if (builtin != nullptr && !PredefinedSettable(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " attribute can't be set in SearchAttributes"));
    }
    const IndexedValueType type = builtin != nullptr ? builtin->type : schema.custom.at(name);
    common::Payload& payload = (*fields)[name];
    if (!DecodeSearchAttributeValue(payload, type).ok()) {
      return absl::InvalidArgumentError(SearchAttributeValueError(name, type, payload));
    }
  }
  for (const std::string& name : names) {
    const BuiltinSearchAttribute* builtin = Builtin(name);
    SetSearchAttributeType(&(*fields)[name], builtin != nullptr ? builtin->type : schema.custom.at(name));
  }
  return absl::OkStatus();
}

}  // namespace almanac::persistence
