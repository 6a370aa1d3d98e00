#pragma once

// The frontend's OperatorService: the search attribute calls (AddSearchAttributes,
// RemoveSearchAttributes, ListSearchAttributes), as Temporal answers them over SQL
// visibility: per namespace, aliases of preallocated fields. Other calls answer
// UNIMPLEMENTED. Thread-safe.

#include <memory>

#include "common/executor.h"
#include "common/namespace_registry.h"
#include "temporal/api/operatorservice/v1/service.grpc.pb.h"

namespace almanac::frontend {

std::unique_ptr<temporal::api::operatorservice::v1::OperatorService::CallbackService>
NewOperatorService(NamespaceRegistry* namespaces, Executor* executor);

}  // namespace almanac::frontend
