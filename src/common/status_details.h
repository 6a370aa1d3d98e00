#pragma once

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace almanac {

// Roles describe a failure with an absl::Status; when Temporal defines an error detail for
// it (WorkflowExecutionAlreadyStartedFailure, NamespaceNotFoundFailure, ...), the detail
// message travels as the status payload under its type URL. The frontend turns the payload
// into the google.rpc.Status details that the SDKs branch on.
inline constexpr char kTypeUrlPrefix[] = "type.googleapis.com/";

// Returns `status` with `detail` attached as its Temporal error detail.
absl::Status WithDetail(absl::Status status, const google::protobuf::Message& detail);

// Convenience constructors for the errors every role raises.
absl::Status NamespaceNotFound(const std::string& name);
absl::Status WorkflowNotFound(const std::string& message);
absl::Status AlreadyStarted(const std::string& message, const std::string& request_id,
                            const std::string& run_id);

}  // namespace almanac
