#include "server/server.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <unistd.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/deadline_queue.h"
#include "common/executor.h"
#include "common/ids.h"
#include "common/namespace_registry.h"
#include "frontend/operator_service.h"
#include "frontend/unimplemented.h"
#include "frontend/workflow_service.h"
#include "history/history_engine.h"
#include "history/state_machine.h"
#include "matching/matching_engine.h"
#include "persistence/fault_injection.h"
#include "persistence/schema.h"
#include "persistence/stores.h"
#include "spdlog/spdlog.h"
#include "temporal/api/operatorservice/v1/service.grpc.pb.h"

namespace almanac::server {

constexpr char kServerVersion[] = "0.1.0";

absl::StatusOr<std::unique_ptr<persistence::SqlDriver>> OpenDriver(const ServerConfig& config) {
  if (config.store == "postgres") return persistence::NewPostgresDriver(config.postgres);
  if (config.store == "sqlite") {
    if (!config.sqlite.in_memory && config.sqlite.path.empty()) {
      return absl::InvalidArgumentError("the SQLite store needs a file path (or in-memory)");
    }
    return persistence::NewSqliteDriver(config.sqlite);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown store: ", config.store));
}

namespace {

// Start-up steps write to the store; a transient failure (a lost connection, or an injected
// fault) is retried a few times before the start gives up.
absl::Status RetryTransient(const std::function<absl::Status()>& step) {
  absl::Status st;
  for (int attempt = 0; attempt < 20; ++attempt) {
    st = step();
    if (!absl::IsUnavailable(st) && !absl::IsDeadlineExceeded(st)) return st;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return st;
}

frontend::ValidationLimits ValidationLimitsOf(const ServerConfig& config) {
  frontend::ValidationLimits limits;
  limits.max_blob_size = static_cast<size_t>(config.limits.blob_size_error);
  limits.max_id_length = static_cast<size_t>(config.limits.max_id_length);
  return limits;
}

class ServerImpl final : public Server {
 public:
  int port() const override { return port_; }

  void Shutdown() override {
    if (grpc_) {
      grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      grpc_.reset();
    }
    if (history_) history_->Stop();
  }

  ~ServerImpl() override {
    Shutdown();
    // Threads first (they call into the roles), then the roles, then the store. The deadline
    // queue stops before the executor drains, and is freed after it: draining closures may
    // still schedule (what they schedule never runs).
    if (deadlines_) deadlines_->Stop();
    executor_.reset();
    deadlines_.reset();
    workflow_service_.reset();
    matching_.reset();
    history_.reset();
    namespaces_.reset();
    stores_.reset();
  }

  absl::Status Start(const ServerConfig& config) {
    auto driver = OpenDriver(config);
    if (!driver.ok()) return driver.status();
    if (config.auto_migrate) {
      absl::Status st = persistence::MigrateSchema(driver->get());
      if (!st.ok()) return st;
    }
    auto version = persistence::ReadSchemaVersion(driver->get());
    if (!version.ok()) return version.status();
    if (*version != persistence::CurrentSchemaVersion()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database schema is at version ", *version, ", this build needs ",
          persistence::CurrentSchemaVersion(), ": run `almanac schema setup`"));
    }
    if (config.fault_injection.rate > 0) {
      spdlog::warn("fault injection is on: {}% of the store's transactions will fail",
                   config.fault_injection.rate * 100);
      *driver = persistence::NewFaultInjectingDriver(std::move(*driver), config.fault_injection);
    }
    stores_ = persistence::NewSqlStores(std::move(*driver));
    absl::StatusOr<persistence::ClusterMetadataStore::Metadata> cluster;
    absl::Status got = RetryTransient([&] {
      cluster = stores_->cluster->GetOrCreate({NewUuid(), config.num_shards});
      return cluster.status();
    });
    if (!got.ok()) return got;
    if (cluster->num_shards != config.num_shards) {
      spdlog::info("using the store's {} history shards (fixed when it was created)",
                   cluster->num_shards);
    }

    namespaces_ = std::make_unique<NamespaceRegistry>(stores_->namespaces.get());
    for (const std::string& name : config.namespaces) {
      absl::Status st = RetryTransient([&] { return EnsureNamespace(name); });
      if (!st.ok()) return st;
    }

    Clock* clock = RealClock();
    executor_ = std::make_unique<Executor>(config.executor_threads);
    deadlines_ = std::make_unique<DeadlineQueue>(clock);
    history::HistoryOptions hopts;
    hopts.num_shards = cluster->num_shards;
    hopts.cache_entries = config.cache_entries;
    hopts.cache_bytes = config.cache_bytes;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    hopts.owner = absl::StrCat(host, ":", getpid(), ":", NewUuid().substr(0, 8));
    hopts.limits = config.limits;
    history_ = std::make_unique<history::HistoryEngine>(stores_.get(), namespaces_.get(), clock,
                                                        deadlines_.get(), executor_.get(), hopts);
    matching_ = std::make_unique<matching::MatchingEngine>(
        stores_->task_queues.get(), history_.get(), clock, deadlines_.get(), executor_.get(),
        matching::MatchingOptions());
    history_->SetMatching(matching_.get());
    absl::Status st = RetryTransient([&] { return history_->Start(); });
    if (!st.ok()) return st;

    frontend::ServerIdentity identity;
    identity.server_version = kServerVersion;
    identity.cluster_id = cluster->cluster_id;
    identity.num_shards = cluster->num_shards;
    identity.store = config.store;
    workflow_service_ = frontend::NewWorkflowService(
        namespaces_.get(), history_.get(), matching_.get(), stores_->visibility.get(),
        executor_.get(), clock, identity, ValidationLimitsOf(config));
    operator_service_ = frontend::NewOperatorService(namespaces_.get(), executor_.get());

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    const std::string address = absl::StrCat(config.bind_ip, ":", config.grpc_port);
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(workflow_service_.get());
    builder.RegisterService(operator_service_.get());
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(frontend::NewUnimplementedNamingInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    builder.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    builder.SetMaxSendMessageSize(64 * 1024 * 1024);
    grpc_ = builder.BuildAndStart();
    if (!grpc_ || port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
    }
    auto* health = grpc_->GetHealthCheckService();
    health->SetServingStatus(true);
    health->SetServingStatus("temporal.api.workflowservice.v1.WorkflowService", true);
    spdlog::info("almanac {} serving on {}:{} ({} store, {} shards)", kServerVersion,
                 config.bind_ip, port_, config.store, cluster->num_shards);
    return absl::OkStatus();
  }

 private:
  absl::Status EnsureNamespace(const std::string& name) {
    auto existing = namespaces_->GetByName(name);
    if (existing.ok()) return absl::OkStatus();
    if (!absl::IsNotFound(existing.status())) return existing.status();
    v1::NamespaceRecord record;
    auto* info = record.mutable_info();
    info->set_name(name);
    info->set_id(NewUuid());
    info->set_state(temporal::api::enums::v1::NAMESPACE_STATE_REGISTERED);
    *record.mutable_config()->mutable_workflow_execution_retention_ttl() =
        history::ToProto(absl::Hours(24));
    record.mutable_config()->set_history_archival_state(temporal::api::enums::v1::ARCHIVAL_STATE_DISABLED);
    record.mutable_config()->set_visibility_archival_state(
        temporal::api::enums::v1::ARCHIVAL_STATE_DISABLED);
    record.mutable_replication_config()->set_active_cluster_name("active");
    record.mutable_replication_config()->add_clusters()->set_cluster_name("active");
    absl::Status st = namespaces_->Register(record);
    if (absl::IsAlreadyExists(st)) return absl::OkStatus();
    return st;
  }

  std::unique_ptr<persistence::Stores> stores_;
  std::unique_ptr<NamespaceRegistry> namespaces_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<DeadlineQueue> deadlines_;
  std::unique_ptr<history::HistoryEngine> history_;
  std::unique_ptr<matching::MatchingEngine> matching_;
  std::unique_ptr<temporal::api::workflowservice::v1::WorkflowService::CallbackService> workflow_service_;
  std::unique_ptr<temporal::api::operatorservice::v1::OperatorService::CallbackService>
      operator_service_;
  std::unique_ptr<grpc::Server> grpc_;
  int port_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> StartServer(const ServerConfig& config) {
  auto server = std::make_unique<ServerImpl>();
  absl::Status st = server->Start(config);
  if (!st.ok()) return st;
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace almanac::server
