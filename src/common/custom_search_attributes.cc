#include "common/custom_search_attributes.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace almanac {
namespace {

namespace enums = temporal::api::enums::v1;
using persistence::IndexedValueType;

struct Slots {
  IndexedValueType type;
  int count;
};

// Temporal's preallocated custom fields per type, in its SQL visibility.
const std::vector<Slots>& AllSlots() {
  static const auto* const slots = new std::vector<Slots>{
      {enums::INDEXED_VALUE_TYPE_BOOL, 3},         {enums::INDEXED_VALUE_TYPE_DATETIME, 3},
      {enums::INDEXED_VALUE_TYPE_DOUBLE, 3},       {enums::INDEXED_VALUE_TYPE_INT, 3},
      {enums::INDEXED_VALUE_TYPE_KEYWORD, 10},     {enums::INDEXED_VALUE_TYPE_KEYWORD_LIST, 3},
      {enums::INDEXED_VALUE_TYPE_TEXT, 3},
  };
  return *slots;
}

std::string FieldName(IndexedValueType type, int index) {
  return absl::StrFormat("%s%02d", persistence::IndexedValueTypeName(type), index);
}

// The type of a preallocated field name; UNSPECIFIED for any other name.
IndexedValueType FieldType(const std::string& field) {
  for (const Slots& s : AllSlots()) {
    for (int i = 1; i <= s.count; ++i) {
      if (field == FieldName(s.type, i)) return s.type;
    }
  }
  return enums::INDEXED_VALUE_TYPE_UNSPECIFIED;
}

bool IsReservedName(const std::string& name) {
  for (const auto& a : persistence::BuiltinSearchAttributes()) {
    if (a.name == name) return true;
  }
  return name == "NamespaceId" || name == "Memo" || name == "MemoEncoding" ||
         name == "VisibilityTaskKey" || absl::StartsWith(name, "Temporal");
}

}  // namespace

std::map<std::string, IndexedValueType> PreallocatedSearchAttributeFields() {
  std::map<std::string, IndexedValueType> out;
  for (const Slots& s : AllSlots()) {
    for (int i = 1; i <= s.count; ++i) out[FieldName(s.type, i)] = s.type;
  }
  return out;
}

persistence::SearchAttributeSchema SearchAttributeSchemaOf(const v1::NamespaceRecord& record) {
  persistence::SearchAttributeSchema schema;
  for (const auto& [field, alias] : record.config().custom_search_attribute_aliases()) {
    const IndexedValueType type = FieldType(field);
    if (type != enums::INDEXED_VALUE_TYPE_UNSPECIFIED && !alias.empty()) {
      schema.custom[alias] = type;
    }
  }
  return schema;
}

absl::Status AddCustomSearchAttributes(
    const std::map<std::string, IndexedValueType>& attributes, v1::NamespaceRecord* record) {
  for (const auto& [name, type] : attributes) {
    if (IsReservedName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("Search attribute ", name,
                                                     " is reserved by system."));
    }
    if (!enums::IndexedValueType_IsValid(type)) {
      return absl::InvalidArgumentError(absl::StrCat("Unknown search attribute type: ",
                                                     static_cast<int>(type), "."));
    }
  }
  auto aliases = *record->mutable_config()->mutable_custom_search_attribute_aliases();
  const persistence::SearchAttributeSchema current = SearchAttributeSchemaOf(*record);
  for (const auto& [name, type] : attributes) {
    if (current.custom.contains(name)) continue;
    int used = 0;
    std::string free_field;
    for (const Slots& s : AllSlots()) {
      if (s.type != type) continue;
      for (int i = 1; i <= s.count; ++i) {
        const std::string field = FieldName(type, i);
        auto it = aliases.find(field);
        if (it != aliases.end() && !it->second.empty()) {
          ++used;
        } else {
          free_field = field;
          break;
        }
      }
    }
    if (free_field.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Unable to create search attributes: cannot have more than ", used,
          " search attribute of type ", persistence::IndexedValueTypeName(type), "."));
    }
    aliases[free_field] = name;
  }
  *record->mutable_config()->mutable_custom_search_attribute_aliases() = std::move(aliases);
  return absl::OkStatus();
}

absl::Status RemoveCustomSearchAttributes(const std::vector<std::string>& names,
                                          v1::NamespaceRecord* record) {
  auto* aliases = record->mutable_config()->mutable_custom_search_attribute_aliases();
  for (const std::string& name : names) {
    bool found = false;
    for (auto it = aliases->begin(); it != aliases->end(); ++it) {
      if (it->second == name) {
        aliases->erase(it);
        found = true;
        break;
      }
    }
    if (found) continue;
    for (const auto& a : persistence::BuiltinSearchAttributes()) {
      if (a.name == name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Unable to remove non-custom search attributes: ", name, "."));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace almanac
