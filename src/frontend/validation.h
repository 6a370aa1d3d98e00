#pragma once

// Input validation for the frontend: every external input is checked here before it reaches
// a role. Failures are kInvalidArgument with a message naming the field.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "almanac/v1/persistence.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::frontend {

struct ValidationLimits {
  size_t max_id_length = 1000;           // workflow id, type, task queue, request id
  size_t max_blob_size = 2 * 1024 * 1024;  // one payload set (input, result, details)
};

absl::Status ValidateNamespaceName(const std::string& name);
absl::Status ValidateStart(const temporal::api::workflowservice::v1::StartWorkflowExecutionRequest& r,
                           const ValidationLimits& limits);
absl::Status ValidateExecution(const temporal::api::common::v1::WorkflowExecution& e,
                               const ValidationLimits& limits);
absl::Status ValidateTaskQueue(const temporal::api::taskqueue::v1::TaskQueue& tq,
                               const ValidationLimits& limits);
absl::Status ValidateBlob(size_t size, const char* what, const ValidationLimits& limits);

absl::Status ValidateSignal(const std::string& signal_name, size_t input_size,
                            const ValidationLimits& limits);
// Checks an update request and fills Temporal's defaults in (the wait stage).
absl::Status ValidateUpdate(temporal::api::workflowservice::v1::UpdateWorkflowExecutionRequest* r,
                            const ValidationLimits& limits);
// Parses the token of a query task (RespondQueryTaskCompleted).
absl::StatusOr<v1::TaskToken> ParseQueryTaskToken(const std::string& bytes);

// Parses a worker's task token. kInvalidArgument when absent or malformed; a well-formed
// token for something that moved on is refused later, by history, with kNotFound.
absl::StatusOr<v1::TaskToken> ParseTaskToken(const std::string& bytes, bool activity);

}  // namespace almanac::frontend
