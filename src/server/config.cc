#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace almanac::server {
namespace {

absl::Status CheckKeys(const YAML::Node& node, const std::string& where,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, " must be a mapping"));
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown key ", where, ".", key));
    }
  }
  return absl::OkStatus();
}

absl::Status ParsePort(const std::string& value, const char* name, int* out) {
  int port;
  if (!absl::SimpleAtoi(value, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is not a port: ", value));
  }
  *out = port;
  return absl::OkStatus();
}

absl::Status Apply(const YAML::Node& root, ServerConfig* c) {
  absl::Status st =
      CheckKeys(root, "config", {"persistence", "frontend", "history", "namespaces", "log", "limits"});
  if (!st.ok()) return st;
  if (const auto p = root["persistence"]) {
    st = CheckKeys(p, "persistence", {"driver", "sqlite", "postgres", "fault_injection"});
    if (!st.ok()) return st;
    if (p["driver"]) c->store = p["driver"].as<std::string>();
    if (const auto s = p["sqlite"]) {
      st = CheckKeys(s, "persistence.sqlite", {"path", "in_memory"});
      if (!st.ok()) return st;
      if (s["path"]) c->sqlite.path = s["path"].as<std::string>();
      if (s["in_memory"]) c->sqlite.in_memory = s["in_memory"].as<bool>();
    }
    if (const auto pg = p["postgres"]) {
      st = CheckKeys(pg, "persistence.postgres",
                     {"host", "port", "user", "password", "database", "max_conns"});
      if (!st.ok()) return st;
      if (pg["host"]) c->postgres.host = pg["host"].as<std::string>();
      if (pg["port"]) c->postgres.port = pg["port"].as<int>();
      if (pg["user"]) c->postgres.user = pg["user"].as<std::string>();
      if (pg["password"]) c->postgres.password = pg["password"].as<std::string>();
      if (pg["database"]) c->postgres.database = pg["database"].as<std::string>();
      if (pg["max_conns"]) c->postgres.pool_size = pg["max_conns"].as<int>();
    }
    if (const auto fi = p["fault_injection"]) {
      st = CheckKeys(fi, "persistence.fault_injection", {"rate", "seed", "timeout_delay_ms"});
      if (!st.ok()) return st;
      if (fi["rate"]) c->fault_injection.rate = fi["rate"].as<double>();
      if (fi["seed"]) c->fault_injection.seed = fi["seed"].as<uint64_t>();
      if (fi["timeout_delay_ms"]) {
        c->fault_injection.timeout_delay = absl::Milliseconds(fi["timeout_delay_ms"].as<int64_t>());
      }
      if (c->fault_injection.rate < 0 || c->fault_injection.rate > 1) {
        return absl::InvalidArgumentError("persistence.fault_injection.rate must be in [0, 1]");
      }
    }
  }
  if (const auto f = root["frontend"]) {
    st = CheckKeys(f, "frontend", {"bind_ip", "grpc_port"});
    if (!st.ok()) return st;
    if (f["bind_ip"]) c->bind_ip = f["bind_ip"].as<std::string>();
    if (f["grpc_port"]) c->grpc_port = f["grpc_port"].as<int>();
  }
  if (const auto h = root["history"]) {
    st = CheckKeys(h, "history", {"num_shards", "cache_size", "cache_bytes"});
    if (!st.ok()) return st;
    if (h["num_shards"]) c->num_shards = h["num_shards"].as<int>();
    if (h["cache_size"]) c->cache_entries = h["cache_size"].as<size_t>();
    if (h["cache_bytes"]) c->cache_bytes = h["cache_bytes"].as<size_t>();
    if (c->cache_entries == 0 || c->cache_bytes == 0) {
      return absl::InvalidArgumentError("history.cache_size and history.cache_bytes must be positive");
    }
  }
  if (const auto n = root["namespaces"]) c->namespaces = n.as<std::vector<std::string>>();
  if (const auto l = root["limits"]) {
    st = CheckKeys(l, "limits",
                   {"history_count_warn", "history_count_error", "history_size_warn_bytes",
                    "history_size_error_bytes", "max_pending_activities", "blob_size_error_bytes",
                    "max_in_flight_updates", "max_total_updates", "max_pending_children",
                    "max_pending_signals", "max_pending_cancel_requests"});
    if (!st.ok()) return st;
    auto& lim = c->limits;
    if (l["history_count_warn"]) lim.history_count_warn = l["history_count_warn"].as<int64_t>();
    if (l["history_count_error"]) lim.history_count_error = l["history_count_error"].as<int64_t>();
    if (l["history_size_warn_bytes"]) lim.history_size_warn = l["history_size_warn_bytes"].as<int64_t>();
    if (l["history_size_error_bytes"]) lim.history_size_error = l["history_size_error_bytes"].as<int64_t>();
    if (l["max_pending_activities"]) lim.max_pending_activities = l["max_pending_activities"].as<int>();
    if (l["blob_size_error_bytes"]) lim.blob_size_error = l["blob_size_error_bytes"].as<int64_t>();
    if (l["max_in_flight_updates"]) lim.max_in_flight_updates = l["max_in_flight_updates"].as<int>();
    if (l["max_total_updates"]) lim.max_total_updates = l["max_total_updates"].as<int>();
    if (l["max_pending_children"]) lim.max_pending_children = l["max_pending_children"].as<int>();
    if (l["max_pending_signals"]) lim.max_pending_signals = l["max_pending_signals"].as<int>();
    if (l["max_pending_cancel_requests"]) {
      lim.max_pending_cancel_requests = l["max_pending_cancel_requests"].as<int>();
    }
  }
  if (const auto l = root["log"]) {
    st = CheckKeys(l, "log", {"level"});
    if (!st.ok()) return st;
    if (l["level"]) c->log_level = l["level"].as<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadConfigFile(const std::string& path, ServerConfig* config) {
  try {
    return Apply(YAML::LoadFile(path), config);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", e.what()));
  }
}

absl::Status ApplyEnvironment(ServerConfig* c) {
  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return (v != nullptr && *v != '\0') ? v : nullptr;
  };
  if (const char* db = env("DB")) {
    const std::string v = db;
    if (v == "postgres" || v == "postgresql" || v == "postgres12" || v == "postgres12_pgx") {
      c->store = "postgres";
    } else if (v == "sqlite") {
      c->store = "sqlite";
    } else {
      return absl::InvalidArgumentError(absl::StrCat("DB: unsupported store ", v));
    }
  }
  if (const char* v = env("DB_PORT")) {
    absl::Status st = ParsePort(v, "DB_PORT", &c->postgres.port);
    if (!st.ok()) return st;
  }
  if (const char* v = env("POSTGRES_SEEDS")) c->postgres.host = v;
  if (const char* v = env("POSTGRES_USER")) c->postgres.user = v;
  if (const char* v = env("POSTGRES_PWD")) c->postgres.password = v;
  if (const char* v = env("DBNAME")) c->postgres.database = v;
  if (const char* v = env("BIND_ON_IP")) c->bind_ip = v;
  if (const char* v = env("FRONTEND_GRPC_PORT")) {
    absl::Status st = ParsePort(v, "FRONTEND_GRPC_PORT", &c->grpc_port);
    if (!st.ok()) return st;
  }
  if (const char* v = env("NUM_HISTORY_SHARDS")) {
    if (!absl::SimpleAtoi(v, &c->num_shards) || c->num_shards < 1) {
      return absl::InvalidArgumentError(absl::StrCat("NUM_HISTORY_SHARDS: not a positive number: ", v));
    }
  }
  if (const char* v = env("LOG_LEVEL")) c->log_level = v;
  return absl::OkStatus();
}

}  // namespace almanac::server
