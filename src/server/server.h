#pragma once

#include <memory>

#include "absl/status/status.h"
#include "server/config.h"

namespace almanac::server {

// Opens the store a config names, as a SqlDriver.
absl::StatusOr<std::unique_ptr<persistence::SqlDriver>> OpenDriver(const ServerConfig& config);

// One Almanac process: every role, wired together, serving gRPC. Not copyable.
class Server {
 public:
  virtual ~Server() = default;
  // The port the frontend listens on (useful when the config asked for port 0).
  virtual int port() const = 0;
  // Stops accepting calls, answers what is in flight, and stops the roles.
  virtual void Shutdown() = 0;
};

// Opens the store, checks (or, with auto_migrate, migrates) its schema, creates the
// configured namespaces, starts the roles and the gRPC frontend.
absl::StatusOr<std::unique_ptr<Server>> StartServer(const ServerConfig& config);

}  // namespace almanac::server
