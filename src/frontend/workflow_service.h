#pragma once

// The frontend's WorkflowService: validates each request, resolves its namespace, and routes
// it to history or matching. Runs on gRPC's callback API: handlers hand their work to the
// executor (which may block on the store) and return at once; long polls park in matching
// or history as callbacks, holding no thread. Thread-safe.

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/executor.h"
#include "common/namespace_registry.h"
#include "frontend/validation.h"
#include "history/history_client.h"
#include "matching/matching_client.h"
#include "persistence/stores.h"
#include "temporal/api/workflowservice/v1/service.grpc.pb.h"

namespace almanac::frontend {

struct ServerIdentity {
  std::string server_version;
  std::string cluster_id;
  std::string cluster_name = "active";
  int num_shards = 0;
  std::string store;  // "sqlite" or "postgres"
};

std::unique_ptr<temporal::api::workflowservice::v1::WorkflowService::CallbackService>
NewWorkflowService(NamespaceRegistry* namespaces, history::HistoryClient* history,
                   matching::MatchingClient* matching, persistence::VisibilityStore* visibility,
                   Executor* executor, Clock* clock,
                   ServerIdentity identity, ValidationLimits limits);

}  // namespace almanac::frontend
