#include "persistence/fault_injection.h"

#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"

namespace almanac::persistence {
namespace {

enum class Fault { kNone, kBeforeCommit, kUnknownOutcome, kTimeout };

class FaultInjectingDriverImpl;

// One connection of the inner driver, with the faults decided at each commit.
class FaultInjectingConnection final : public SqlConnection {
 public:
  FaultInjectingConnection(FaultInjectingDriverImpl* driver, SqlDriver::Lease inner)
      : driver_(driver), inner_(std::move(inner)) {}

  absl::Status Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                    SqlRows* rows) override;
  absl::Status Begin() override {
    absl::Status st = inner_->Begin();
    in_transaction_ = st.ok();
    return st;
  }
  absl::Status Commit() override;
  void Rollback() override {
    in_transaction_ = false;
    inner_->Rollback();
  }

 private:
  FaultInjectingDriverImpl* const driver_;
  SqlDriver::Lease inner_;
  bool in_transaction_ = false;
};

class FaultInjectingDriverImpl final : public FaultInjectingDriver {
 public:
  FaultInjectingDriverImpl(std::unique_ptr<SqlDriver> inner, const FaultInjectionOptions& options)
      : inner_(std::move(inner)), options_(options), rng_(options.seed) {}

  Dialect dialect() const override { return inner_->dialect(); }

  absl::StatusOr<Lease> Acquire() override {
    auto lease = inner_->Acquire();
    if (!lease.ok()) return lease.status();
    return Lease(this, std::make_unique<FaultInjectingConnection>(this, std::move(*lease)));
  }

  FaultInjectionStats stats() const override {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

  // Decides the fate of one transaction.
  Fault Next() {
    absl::MutexLock lock(&mu_);
    ++stats_.transactions;
    if (std::uniform_real_distribution<double>(0, 1)(rng_) >= options_.rate) return Fault::kNone;
    switch (std::uniform_int_distribution<int>(0, 2)(rng_)) {
      case 0:
        ++stats_.before_commit;
        return Fault::kBeforeCommit;
      case 1:
        ++stats_.unknown_outcome;
        return Fault::kUnknownOutcome;
      default:
        ++stats_.timeouts;
        return Fault::kTimeout;
    }
  }

  bool Coin() {
    absl::MutexLock lock(&mu_);
    return std::uniform_int_distribution<int>(0, 1)(rng_) == 1;
  }

  absl::Duration timeout_delay() const { return options_.timeout_delay; }

 protected:
  void Release(std::unique_ptr<SqlConnection> conn) override {
    conn.reset();  // returns the inner connection to the inner pool
  }

 private:
  std::unique_ptr<SqlDriver> inner_;
  const FaultInjectionOptions options_;
  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  FaultInjectionStats stats_ ABSL_GUARDED_BY(mu_);
};

bool IsWrite(absl::string_view sql) {
  sql = absl::StripLeadingAsciiWhitespace(sql);
  return absl::StartsWithIgnoreCase(sql, "INSERT") || absl::StartsWithIgnoreCase(sql, "UPDATE") ||
         absl::StartsWithIgnoreCase(sql, "DELETE");
}

absl::Status FaultInjectingConnection::Exec(absl::string_view sql,
                                            absl::Span<const SqlValue> params, SqlRows* rows) {
  if (in_transaction_ || !IsWrite(sql)) return inner_->Exec(sql, params, rows);
  // A write on its own is a transaction of its own.
  switch (driver_->Next()) {
    case Fault::kNone:
      return inner_->Exec(sql, params, rows);
    case Fault::kBeforeCommit:
      return absl::UnavailableError(kInjectedBeforeCommit);
    case Fault::kUnknownOutcome: {
      absl::Status st = inner_->Exec(sql, params, rows);
      if (!st.ok()) return st;
      return absl::UnavailableError(kInjectedUnknownOutcome);
    }
    case Fault::kTimeout: {
      if (driver_->Coin()) {
        absl::Status st = inner_->Exec(sql, params, rows);
        if (!st.ok()) return st;
      }
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(driver_->timeout_delay()));
      return absl::DeadlineExceededError(kInjectedTimeout);
    }
  }
  return absl::InternalError("unreachable");
}

absl::Status FaultInjectingConnection::Commit() {
  in_transaction_ = false;
  switch (driver_->Next()) {
    case Fault::kNone:
      return inner_->Commit();
    case Fault::kBeforeCommit:
      inner_->Rollback();
      return absl::UnavailableError(kInjectedBeforeCommit);
    case Fault::kUnknownOutcome: {
      absl::Status st = inner_->Commit();
      if (!st.ok()) return st;
      return absl::UnavailableError(kInjectedUnknownOutcome);
    }
    case Fault::kTimeout: {
      // Finish the transaction first (a held writer slot would stall everyone on SQLite),
      // then answer late.
      if (driver_->Coin()) {
        absl::Status st = inner_->Commit();
        if (!st.ok()) return st;
      } else {
        inner_->Rollback();
      }
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(driver_->timeout_delay()));
      return absl::DeadlineExceededError(kInjectedTimeout);
    }
  }
  return absl::InternalError("unreachable");
}

}  // namespace

std::unique_ptr<FaultInjectingDriver> NewFaultInjectingDriver(std::unique_ptr<SqlDriver> inner,
                                                              const FaultInjectionOptions& options) {
  return std::make_unique<FaultInjectingDriverImpl>(std::move(inner), options);
}

}  // namespace almanac::persistence
