#pragma once

// Names the RPC in the UNIMPLEMENTED answers of the methods the services do not implement.
//
// gRPC answers such a method with UNIMPLEMENTED and an empty message, which the `temporal`
// CLI prints as "Error: " and nothing else. This interceptor gives the answer the text a Go
// server gives it ("method ListWorkflowExecutions not implemented"). Other answers pass
// through untouched.

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace almanac::frontend {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
NewUnimplementedNamingInterceptorFactory();

}  // namespace almanac::frontend
