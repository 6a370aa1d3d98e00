#pragma once

#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "persistence/driver.h"

namespace almanac::persistence {

// The connection pool both drivers share: at most `pool_size` connections, opened on demand,
// reused in LIFO order, and dropped when a driver says one is broken. Thread-safe.
class PooledDriver : public SqlDriver {
 public:
  explicit PooledDriver(int pool_size) : pool_size_(pool_size) {}

  // Waits for an idle connection, or opens one while the pool is below its size.
  absl::StatusOr<Lease> Acquire() final;

 protected:
  // Opens a new connection.
  virtual absl::StatusOr<std::unique_ptr<SqlConnection>> Connect() = 0;
  // Whether a returned connection may be reused.
  virtual bool Reusable(SqlConnection* conn) { return true; }

  void Release(std::unique_ptr<SqlConnection> conn) final;
  // Puts a connection opened outside Acquire (for example to fail fast at start) in the pool.
  void Adopt(std::unique_ptr<SqlConnection> conn);
  void set_pool_size(int size) { pool_size_ = size; }

 private:
  int pool_size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<SqlConnection>> idle_ ABSL_GUARDED_BY(mu_);
  int opened_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace almanac::persistence
