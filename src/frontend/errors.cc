#include "absl/strings/string_view.h"
#include "frontend/errors.h"

#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "common/status_details.h"
#include "google/protobuf/any.pb.h"
#include "google/rpc/status.pb.h"
#include "temporal/api/errordetails/v1/message.pb.h"

namespace almanac::frontend {

namespace details = temporal::api::errordetails::v1;

google::rpc::Status ToRpcStatus(const absl::Status& status) {
  google::rpc::Status rpc;
  rpc.set_code(static_cast<int>(status.code()));
  rpc.set_message(std::string(status.message()));
  bool has_detail = false;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    if (!absl::StartsWith(type_url, kTypeUrlPrefix)) return;
    google::protobuf::Any* any = rpc.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
    has_detail = true;
  });
  if (!has_detail) {
    // The SDKs branch on these details; give every such code its default one.
    std::optional<google::protobuf::Any> any;
    if (status.code() == absl::StatusCode::kNotFound) {
      any.emplace();
      any->PackFrom(details::NotFoundFailure());
    } else if (status.code() == absl::StatusCode::kResourceExhausted) {
      any.emplace();
      details::ResourceExhaustedFailure detail;
      detail.set_cause(temporal::api::enums::v1::RESOURCE_EXHAUSTED_CAUSE_SYSTEM_OVERLOADED);
      any->PackFrom(detail);
    }
    if (any) *rpc.add_details() = std::move(*any);
  }
  return rpc;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const google::rpc::Status rpc = ToRpcStatus(status);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()),
                      rpc.SerializeAsString());
}

}  // namespace almanac::frontend
