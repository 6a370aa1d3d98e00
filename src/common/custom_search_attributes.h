#pragma once

// A namespace's custom search attributes, kept as Temporal's SQL visibility keeps them: each is
// an alias of one of the namespace's preallocated fields (Bool01..Bool03, Datetime01..03,
// Double01..03, Int01..03, Keyword01..Keyword10, KeywordList01..03, Text01..03), recorded in
// the namespace config's custom_search_attribute_aliases (field -> alias). So each type has
// Temporal's number of slots, and DescribeNamespace shows the same map as Temporal's.

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "almanac/v1/persistence.pb.h"
#include "persistence/visibility_query.h"

namespace almanac {

// Every preallocated field, name -> type (what Temporal's GetSearchAttributes lists as the
// custom attributes of SQL visibility).
std::map<std::string, temporal::api::enums::v1::IndexedValueType> PreallocatedSearchAttributeFields();

// The attributes the namespace's queries and runs may name beyond Temporal's own.
persistence::SearchAttributeSchema SearchAttributeSchemaOf(const v1::NamespaceRecord& record);

// OperatorService.AddSearchAttributes on one namespace: each name gets the first free field
// of its type; a name already registered (of any type) is left alone. Fails, changing
// nothing, with kInvalidArgument and Temporal's texts: "Search attribute <name> is reserved
// by system." (Temporal's own names, and any beginning with "Temporal"), "Unknown search
// attribute type: <n>.", "Unable to create search attributes: cannot have more than <n>
// search attribute of type <Type>.".
absl::Status AddCustomSearchAttributes(
    const std::map<std::string, temporal::api::enums::v1::IndexedValueType>& attributes,
    v1::NamespaceRecord* record);

// OperatorService.RemoveSearchAttributes: frees the fields of the named attributes; a name not
// registered is skipped. "Unable to remove non-custom search attributes: <name>." for one of
// Temporal's own.
absl::Status RemoveCustomSearchAttributes(const std::vector<std::string>& names,
                                          v1::NamespaceRecord* record);

}  // namespace almanac
