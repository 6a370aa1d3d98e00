#pragma once

// A driver that wraps another and makes a fraction of its transactions fail, the way a real
// database and network fail: before the commit (nothing written), after the commit with the
// outcome reported unknown (everything written, an error returned), and by time-out (a slow
// answer, then an error; written or not, at random). Statements outside an explicit
// transaction that write (INSERT, UPDATE, DELETE) count as transactions of their own.
// Reads are never failed: callers' handling of a lost write is what this layer proves.
//
// Off unless configured (`persistence.fault_injection.rate`). The durability tests run load
// through it on both stores; the store conformance suite runs under it too. Thread-safe.

#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "persistence/driver.h"

namespace almanac::persistence {

struct FaultInjectionOptions {
  double rate = 0;        // fraction of transactions that fail, in [0, 1]
  uint64_t seed = 1;      // the faults are a deterministic function of the seed and call order
  absl::Duration timeout_delay = absl::Milliseconds(100);  // how long a timed-out write hangs
};

// The error texts, so that logs and tests can tell an injected fault from a real one.
inline constexpr char kInjectedBeforeCommit[] = "injected fault: transaction failed before commit";
inline constexpr char kInjectedUnknownOutcome[] =
    "injected fault: connection lost at commit, outcome unknown";
inline constexpr char kInjectedTimeout[] = "injected fault: transaction timed out";

// Counts of what was injected, for tests and logs.
struct FaultInjectionStats {
  int64_t transactions = 0;
  int64_t before_commit = 0;
  int64_t unknown_outcome = 0;
  int64_t timeouts = 0;
};

class FaultInjectingDriver : public SqlDriver {
 public:
  virtual FaultInjectionStats stats() const = 0;
};

std::unique_ptr<FaultInjectingDriver> NewFaultInjectingDriver(std::unique_ptr<SqlDriver> inner,
                                                              const FaultInjectionOptions& options);

}  // namespace almanac::persistence
