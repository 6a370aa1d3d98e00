#pragma once

// Search attribute values: the JSON payloads that carry them, read by type as Temporal reads
// them, and the rows of the visibility store's index (visibility_search_attributes) that a
// run's attributes become. Pure functions: thread-safe.
//
// A value travels as a payload of encoding json/plain whose metadata "type" names its
// IndexedValueType ("Keyword", "Int", ...). Clients may leave the type out; the server writes
// it (SetSearchAttributeType) when it accepts the value, so that every stored payload names
// its type and the index can be rebuilt from the payloads alone.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "persistence/visibility_query.h"
#include "absl/strings/string_view.h"
#include "temporal/api/common/v1/message.pb.h"
#include "temporal/api/enums/v1/common.pb.h"

namespace almanac::persistence {

using IndexedValueType = temporal::api::enums::v1::IndexedValueType;

// A value read as its attribute's type.
struct SearchAttributeValue {
  IndexedValueType type = temporal::api::enums::v1::INDEXED_VALUE_TYPE_UNSPECIFIED;
  // JSON null, an empty list or an empty payload: the value unsets the attribute.
  bool unset = false;
  // Keyword and Text: one string; KeywordList: its elements, as given.
  std::vector<std::string> strings;
  // Int; Bool as 0 or 1; Datetime as microseconds since the Unix epoch (UTC).
  int64_t int_value = 0;
  double double_value = 0;  // Double (finite)
};

// Reads `payload` as a value of `type`, as Temporal's server does: JSON of that type, or a
// list of one such value (more than one only for KeywordList); Datetime as RFC 3339 text.
// Fails with kInvalidArgument (no message of its own: see SearchAttributeValueError) when the
// payload is not JSON, not of the type, or holds text that is not UTF-8.
absl::StatusOr<SearchAttributeValue> DecodeSearchAttributeValue(
    const temporal::api::common::v1::Payload& payload, IndexedValueType type);

// Temporal's "invalid value for search attribute <name> of type <Type>: <value>", the value
// shown as Go's fmt shows the decoded JSON (a string bare, a list as [a b], null as <nil>).
std::string SearchAttributeValueError(absl::string_view name, IndexedValueType type,
                                      const temporal::api::common::v1::Payload& payload);

// The type named by the payload's metadata "type"; UNSPECIFIED when absent or unknown.
IndexedValueType SearchAttributeTypeOf(const temporal::api::common::v1::Payload& payload);
// Writes the type's name into the payload's metadata "type".
void SetSearchAttributeType(temporal::api::common::v1::Payload* payload, IndexedValueType type);
// The type whose name Temporal writes as `name` ("Keyword", "KeywordList", ...).
std::optional<IndexedValueType> IndexedValueTypeFromName(absl::string_view name);

// One row of visibility_search_attributes (see visibility_query.h for the layout).
struct SearchAttributeIndexRow {
  std::string name;
  std::optional<int64_t> int_value;
  std::optional<double> double_value;
  std::optional<std::string> text_value;
};

// The index rows of a run's attributes, each attribute typed by its payload's metadata; an
// attribute without a known type, or whose value does not read as it, has no rows.
std::vector<SearchAttributeIndexRow> SearchAttributeIndexRows(
    const temporal::api::common::v1::SearchAttributes& attributes);

// Merges an upsert into a run's attributes: each key of `update` replaces the key of
// `attributes`, or removes it when its value unsets (null, [] or an empty payload).
void MergeSearchAttributes(const temporal::api::common::v1::SearchAttributes& update,
                           temporal::api::common::v1::SearchAttributes* attributes);

// Merges a memo upsert (ModifyWorkflowProperties) likewise: a key whose value unsets is removed.
void MergeMemo(const temporal::api::common::v1::Memo& update,
               temporal::api::common::v1::Memo* memo);

// Whether a payload's value unsets (JSON null, an empty list, no data).
bool IsUnsetValue(const temporal::api::common::v1::Payload& payload);

// Temporal's default limits on the attributes one run carries.
struct SearchAttributeLimits {
  int max_keys = 100;
  int max_value_bytes = 2 * 1024;  // of one value's data
  int max_total_bytes = 40 * 1024;  // of the whole SearchAttributes message
};

// Checks attributes that a client (at start) or a workflow (upsert, continue-as-new, child)
// sets, in Temporal's order and with its texts (kInvalidArgument):
//   "Namespace <ns> has no mapping defined for search attribute <name>" for a name that is
//   neither registered in the namespace nor one of Temporal's; "number of search attributes
//   N exceeds limit M"; "<name> attribute can't be set in SearchAttributes" for a system
//   attribute (WorkflowId, ...) or an internal predefined one; SearchAttributeValueError for
//   a value that does not read as its type.
// On success writes each value's type into its metadata. Keys are checked in name order.
// Sizes are CheckSearchAttributeSizes' (Temporal terminates a run whose command breaks them).
absl::Status ValidateSearchAttributes(const SearchAttributeSchema& schema,
                                      absl::string_view namespace_name,
                                      const SearchAttributeLimits& limits,
                                      temporal::api::common::v1::SearchAttributes* attributes);

// Temporal's size limits: "search attribute <name> value size N exceeds size limit M" (of a
// value's data), "total size of search attributes N exceeds size limit M".
absl::Status CheckSearchAttributeSizes(const SearchAttributeLimits& limits,
                                       const temporal::api::common::v1::SearchAttributes& attributes);

// The registered type of an attribute a run may carry: a custom one of the namespace, or a
// predefined one of Temporal's (not the system attributes, which are columns); nullopt for
// any other name.
std::optional<IndexedValueType> StoredAttributeType(const SearchAttributeSchema& schema,
                                                    absl::string_view name);

}  // namespace almanac::persistence
