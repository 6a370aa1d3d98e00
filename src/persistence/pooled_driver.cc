#include "persistence/pooled_driver.h"

namespace almanac::persistence {

absl::StatusOr<SqlDriver::Lease> PooledDriver::Acquire() {
  mu_.Lock();
  auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !idle_.empty() || opened_ < pool_size_;
  };
  mu_.Await(absl::Condition(&available));
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    mu_.Unlock();
    return Lease(this, std::move(conn));
  }
  ++opened_;
  mu_.Unlock();
  auto conn = Connect();
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --opened_;
    return conn.status();
  }
  return Lease(this, std::move(*conn));
}

void PooledDriver::Release(std::unique_ptr<SqlConnection> conn) {
  const bool reusable = Reusable(conn.get());
  absl::MutexLock lock(&mu_);
  if (!reusable) {
    --opened_;  // dropped: the next Acquire opens a fresh one
    return;
  }
  idle_.push_back(std::move(conn));
}

void PooledDriver::Adopt(std::unique_ptr<SqlConnection> conn) {
  absl::MutexLock lock(&mu_);
  ++opened_;
  idle_.push_back(std::move(conn));
}

}  // namespace almanac::persistence
