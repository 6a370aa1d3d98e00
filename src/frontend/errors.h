#pragma once

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace almanac::frontend {

// Maps a role's absl::Status to the gRPC status the SDKs expect: the same code, the message,
// and the Temporal error detail (from the status payload, or the default one for the code)
// as a serialized google.rpc.Status in the details. The one place this mapping happens.
grpc::Status ToGrpcStatus(const absl::Status& status);
// The same as a google.rpc.Status message, for errors nested in other errors' details.
google::rpc::Status ToRpcStatus(const absl::Status& status);

}  // namespace almanac::frontend
