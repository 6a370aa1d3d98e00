#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "persistence/driver.h"

namespace almanac::persistence {

// The schema is versioned in the repository: an ordered list of migrations, each applied
// once in its own transaction and recorded in schema_version. Setup and migrate are the
// same operation: apply what the database lacks.

// The version this build's code expects.
int CurrentSchemaVersion();

// The version the database is at; 0 for an empty database.
absl::StatusOr<int> ReadSchemaVersion(SqlDriver* driver);

// Applies every migration the database lacks. Safe to run again.
absl::Status MigrateSchema(SqlDriver* driver);

}  // namespace almanac::persistence
