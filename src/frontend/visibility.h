#pragma once

// The frontend's visibility calls: ListWorkflowExecutions, ScanWorkflowExecutions,
// CountWorkflowExecutions and GetSearchAttributes. Each resolves the namespace, compiles the
// list filter against the namespace's search attributes (visibility_query.h) and reads the
// visibility store. Blocking; run on the executor. Thread-safe.

#include "absl/status/status.h"
#include "common/namespace_registry.h"
#include "persistence/stores.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::frontend {

class VisibilityCalls {
 public:
  // Temporal's default page size, and the largest one it accepts.
  static constexpr int kDefaultPageSize = 1000;
  static constexpr int kMaxPageSize = 10000;

  VisibilityCalls(NamespaceRegistry* namespaces, persistence::VisibilityStore* store)
      : namespaces_(namespaces), store_(store) {}

  absl::Status List(const temporal::api::workflowservice::v1::ListWorkflowExecutionsRequest& req,
                    temporal::api::workflowservice::v1::ListWorkflowExecutionsResponse* resp);
  absl::Status Scan(const temporal::api::workflowservice::v1::ScanWorkflowExecutionsRequest& req,
                    temporal::api::workflowservice::v1::ScanWorkflowExecutionsResponse* resp);
  absl::Status Count(const temporal::api::workflowservice::v1::CountWorkflowExecutionsRequest& req,
                     temporal::api::workflowservice::v1::CountWorkflowExecutionsResponse* resp);
  absl::Status GetSearchAttributes(
      const temporal::api::workflowservice::v1::GetSearchAttributesRequest& req,
      temporal::api::workflowservice::v1::GetSearchAttributesResponse* resp);

 private:
  absl::Status Page(const std::string& ns_name, const std::string& query, int page_size,
                    const std::string& token,
                    google::protobuf::RepeatedPtrField<temporal::api::workflow::v1::WorkflowExecutionInfo>* out,
                    std::string* next_token);

  NamespaceRegistry* const namespaces_;
  persistence::VisibilityStore* const store_;
};

}  // namespace almanac::frontend
