#pragma once

// The SQL visibility store: the write of a run's visibility rows (called by the execution
// store inside its mutation's transaction) and the VisibilityStore that reads them.

#include <memory>

#include "absl/status/status.h"
#include "almanac/v1/persistence.pb.h"
#include "persistence/driver.h"
#include "persistence/stores.h"

namespace almanac::persistence {

// Writes the run's visibility row (inserting or replacing it) and its search attribute index
// rows, on `conn`, inside the caller's transaction. `created`: the run is new, so it has no
// index rows to replace yet.
absl::Status WriteVisibility(SqlConnection& conn, Dialect dialect, const v1::MutableState& state,
                             bool created);

// Deletes a row and its index rows (a deleted schedule's), inside the caller's transaction.
absl::Status DeleteVisibility(SqlConnection& conn, const std::string& namespace_id,
                              const std::string& run_id);

std::unique_ptr<VisibilityStore> NewSqlVisibilityStore(SqlDriver* driver);

}  // namespace almanac::persistence
