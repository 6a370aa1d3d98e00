// The almanac binary.
//
//   almanac start-dev [--ip IP] [--port PORT] [--db-filename PATH | --in-memory]
//                     [--namespace NAME]... [--log-level LEVEL]
//       Every role in one process on the embedded SQLite store, migrated automatically.
//   almanac server --config FILE
//       A production run from a YAML config (PostgreSQL or SQLite), with environment
//       overrides; the schema must have been set up.
//   almanac schema setup|migrate --config FILE
//       Creates or migrates the database schema.

#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "persistence/schema.h"
#include "server/config.h"
#include "server/server.h"
#include "spdlog/spdlog.h"

namespace {

using almanac::server::ServerConfig;

constexpr char kUsage[] =
    "usage:\n"
    "  almanac start-dev [--ip IP] [--port PORT] [--db-filename PATH | --in-memory]\n"
    "                    [--namespace NAME]... [--log-level LEVEL]\n"
    "  almanac server --config FILE\n"
    "  almanac schema setup|migrate --config FILE\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "almanac: %s\n", message.c_str());
  return 2;
}

// Parses --name value and --name=value flags; a bare --flag is "true".
bool ParseFlags(int argc, char** argv, int first, std::vector<std::pair<std::string, std::string>>* out,
                std::string* error) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      *error = absl::StrCat("unexpected argument: ", arg);
      return false;
    }
    arg = arg.substr(2);
    if (auto eq = arg.find('='); eq != std::string::npos) {
      out->emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (arg == "in-memory") {
      out->emplace_back(arg, "true");
    } else if (i + 1 < argc) {
      out->emplace_back(arg, argv[++i]);
    } else {
      *error = absl::StrCat("flag --", arg, " needs a value");
      return false;
    }
  }
  return true;
}

absl::Status ApplyFlags(const std::vector<std::pair<std::string, std::string>>& flags,
                        ServerConfig* c) {
  bool namespaces_given = false;
  for (const auto& [name, value] : flags) {
    if (name == "ip") {
      c->bind_ip = value;
    } else if (name == "port") {
      if (!absl::SimpleAtoi(value, &c->grpc_port)) return absl::InvalidArgumentError("bad --port");
    } else if (name == "db-filename") {
      c->sqlite.path = value;
      c->sqlite.in_memory = false;
    } else if (name == "in-memory") {
      c->sqlite.in_memory = true;
    } else if (name == "namespace") {
      if (!namespaces_given) c->namespaces = {"default"};
      namespaces_given = true;
      c->namespaces.push_back(value);
    } else if (name == "log-level") {
      c->log_level = value;
    } else if (name == "num-shards") {
      if (!absl::SimpleAtoi(value, &c->num_shards) || c->num_shards < 1) {
        return absl::InvalidArgumentError("bad --num-shards");
      }
    } else if (name != "config") {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
  }
  return absl::OkStatus();
}

std::string FlagValue(const std::vector<std::pair<std::string, std::string>>& flags,
                      const std::string& name) {
  for (const auto& [n, v] : flags) {
    if (n == name) return v;
  }
  return "";
}

// Serves until SIGINT or SIGTERM.
int Serve(const ServerConfig& config) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  // Block before any thread starts, so that only sigwait below sees them.
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto server = almanac::server::StartServer(config);
  if (!server.ok()) return Fail(server.status().ToString());
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received signal {}, shutting down", sig);
  (*server)->Shutdown();
  server->reset();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Fail(kUsage);
  const std::string command = argv[1];
  ServerConfig config;
  std::vector<std::pair<std::string, std::string>> flags;
  std::string error;
  int first_flag = 2;
  std::string schema_action;
  if (command == "schema") {
    if (argc < 3) return Fail(kUsage);
    schema_action = argv[2];
    if (schema_action != "setup" && schema_action != "migrate") return Fail(kUsage);
    first_flag = 3;
  } else if (command != "start-dev" && command != "server") {
    return Fail(kUsage);
  }
  if (!ParseFlags(argc, argv, first_flag, &flags, &error)) return Fail(error);

  const std::string config_path = FlagValue(flags, "config");
  if (command == "start-dev") {
    config.store = "sqlite";
    config.sqlite.path = "almanac.db";
    config.auto_migrate = true;
  } else if (config_path.empty()) {
    return Fail(absl::StrCat(command, " needs --config FILE\n", kUsage));
  }
  if (!config_path.empty()) {
    absl::Status st = almanac::server::LoadConfigFile(config_path, &config);
    if (!st.ok()) return Fail(st.ToString());
  }
  absl::Status st = almanac::server::ApplyEnvironment(&config);
  if (st.ok()) st = ApplyFlags(flags, &config);
  if (!st.ok()) return Fail(st.ToString());
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  if (command == "schema") {
    auto driver = almanac::server::OpenDriver(config);
    if (!driver.ok()) return Fail(driver.status().ToString());
    st = almanac::persistence::MigrateSchema(driver->get());
    if (!st.ok()) return Fail(st.ToString());
    std::printf("schema is at version %d\n", almanac::persistence::CurrentSchemaVersion());
    return 0;
  }
  return Serve(config);
}
