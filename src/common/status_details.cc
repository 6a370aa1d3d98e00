#include "common/status_details.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "temporal/api/errordetails/v1/message.pb.h"

namespace almanac {

absl::Status WithDetail(absl::Status status, const google::protobuf::Message& detail) {
  status.SetPayload(absl::StrCat(kTypeUrlPrefix, detail.GetDescriptor()->full_name()),
                    absl::Cord(detail.SerializeAsString()));
  return status;
}

absl::Status NamespaceNotFound(const std::string& name) {
  temporal::api::errordetails::v1::NamespaceNotFoundFailure detail;
  detail.set_namespace_(name);
  return WithDetail(absl::NotFoundError(absl::StrCat("Namespace ", name, " is not found.")),
                    detail);
}

absl::Status WorkflowNotFound(const std::string& message) {
  return WithDetail(absl::NotFoundError(message),
                    temporal::api::errordetails::v1::NotFoundFailure());
}

absl::Status AlreadyStarted(const std::string& message, const std::string& request_id,
                            const std::string& run_id) {
  temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure detail;
  detail.set_start_request_id(request_id);
  detail.set_run_id(run_id);
  return WithDetail(absl::AlreadyExistsError(message), detail);
}

}  // namespace almanac
