#pragma once

// Server configuration: defaults, then a YAML file, then environment overrides (the names
// Temporal's images use), then command-line flags.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "history/state_machine.h"
#include "persistence/driver.h"
#include "persistence/fault_injection.h"

namespace almanac::server {

struct ServerConfig {
  std::string store = "sqlite";  // "sqlite" or "postgres"
  persistence::SqliteOptions sqlite;
  persistence::PostgresOptions postgres;
  std::string bind_ip = "127.0.0.1";
  int grpc_port = 7233;
  int num_shards = 4;  // fixed when the store is created
  size_t cache_entries = 100000;         // history's run cache, over all shards
  size_t cache_bytes = size_t{1} << 30;  // and its memory bound
  // Off unless configured: makes a fraction of the store's transactions fail (tests).
  persistence::FaultInjectionOptions fault_injection;
  std::vector<std::string> namespaces = {"default"};
  bool auto_migrate = false;  // dev mode migrates the schema by itself
  std::string log_level = "info";
  int executor_threads = 16;
  history::Limits limits;  // history and payload limits; Temporal's defaults
};

// Reads a YAML file over `config`. Unknown keys are errors, so typos do not pass silently.
absl::Status LoadConfigFile(const std::string& path, ServerConfig* config);

// Applies DB, DB_PORT, POSTGRES_SEEDS, POSTGRES_USER, POSTGRES_PWD, DBNAME, BIND_ON_IP,
// FRONTEND_GRPC_PORT, NUM_HISTORY_SHARDS and LOG_LEVEL when set.
absl::Status ApplyEnvironment(ServerConfig* config);

}  // namespace almanac::server
