#include "frontend/visibility.h"

#include "absl/strings/str_cat.h"
#include "common/custom_search_attributes.h"
#include "frontend/validation.h"
#include "persistence/visibility_query.h"

namespace almanac::frontend {
namespace {

namespace ws = temporal::api::workflowservice::v1;

absl::Status NamespaceEmpty() { return absl::InvalidArgumentError("Namespace is empty."); }

}  // namespace

absl::Status VisibilityCalls::Page(
    const std::string& ns_name, const std::string& query, int page_size, const std::string& token,
    google::protobuf::RepeatedPtrField<temporal::api::workflow::v1::WorkflowExecutionInfo>* out,
    std::string* next_token) {
  if (ns_name.empty()) return NamespaceEmpty();
  absl::Status st = ValidateNamespaceName(ns_name);
  if (!st.ok()) return st;
  auto ns = namespaces_->GetByName(ns_name);
  if (!ns.ok()) return ns.status();
  if (page_size <= 0) page_size = kDefaultPageSize;
  if (page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("PageSize is larger than allowed ", kMaxPageSize, "."));
  }
  persistence::VisibilityQueryOptions options;
  options.dialect = store_->dialect();
  options.kind = persistence::VisibilityQueryKind::kList;
  options.first_placeholder = persistence::VisibilityStore::kFirstQueryPlaceholder;
  options.allow_order_by = false;  // as Temporal's SQL visibility
  options.default_division = true;
  auto compiled = persistence::CompileVisibilityQuery(query, SearchAttributeSchemaOf(*ns), options);
  if (!compiled.ok()) return compiled.status();
  auto page = store_->List(ns->info().id(), *compiled, page_size, token);
  if (!page.ok()) return page.status();
  out->Reserve(static_cast<int>(page->executions.size()));
  for (auto& e : page->executions) *out->Add() = std::move(e);
  *next_token = std::move(page->next_page_token);
  return absl::OkStatus();
}

absl::Status VisibilityCalls::List(const ws::ListWorkflowExecutionsRequest& req,
                                   ws::ListWorkflowExecutionsResponse* resp) {
  return Page(req.namespace_(), req.query(), req.page_size(), req.next_page_token(),
              resp->mutable_executions(), resp->mutable_next_page_token());
}

absl::Status VisibilityCalls::Scan(const ws::ScanWorkflowExecutionsRequest& req,
                                   ws::ScanWorkflowExecutionsResponse* resp) {
  return Page(req.namespace_(), req.query(), req.page_size(), req.next_page_token(),
              resp->mutable_executions(), resp->mutable_next_page_token());
}

absl::Status VisibilityCalls::Count(const ws::CountWorkflowExecutionsRequest& req,
                                    ws::CountWorkflowExecutionsResponse* resp) {
  if (req.namespace_().empty()) return NamespaceEmpty();
  absl::Status st = ValidateNamespaceName(req.namespace_());
  if (!st.ok()) return st;
  auto ns = namespaces_->GetByName(req.namespace_());
  if (!ns.ok()) return ns.status();
  persistence::VisibilityQueryOptions options;
  options.dialect = store_->dialect();
  options.kind = persistence::VisibilityQueryKind::kCount;
  options.first_placeholder = persistence::VisibilityStore::kFirstQueryPlaceholder;
  options.allow_order_by = false;
  options.default_division = true;
  auto compiled =
      persistence::CompileVisibilityQuery(req.query(), SearchAttributeSchemaOf(*ns), options);
  if (!compiled.ok()) return compiled.status();
  auto count = store_->CountRuns(ns->info().id(), *compiled);
  if (!count.ok()) return count.status();
  resp->set_count(count->count);
  for (const auto& [status, n] : count->groups) {
    auto* group = resp->add_groups();
    auto* value = group->add_group_values();
    (*value->mutable_metadata())["encoding"] = "json/plain";
    (*value->mutable_metadata())["type"] = "Keyword";
    value->set_data(absl::StrCat("\"", persistence::ExecutionStatusName(status), "\""));
    group->set_count(n);
  }
  return absl::OkStatus();
}

absl::Status VisibilityCalls::GetSearchAttributes(const ws::GetSearchAttributesRequest&,
                                                  ws::GetSearchAttributesResponse* resp) {
  for (const auto& a : persistence::BuiltinSearchAttributes()) {
    (*resp->mutable_keys())[std::string(a.name)] = a.type;
  }
  for (const auto& [name, type] : PreallocatedSearchAttributeFields()) {
    (*resp->mutable_keys())[name] = type;
  }
  return absl::OkStatus();
}

}  // namespace almanac::frontend
