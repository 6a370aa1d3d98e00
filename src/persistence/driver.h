#pragma once

#include "absl/strings/string_view.h"
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace almanac::persistence {

// A blob parameter or column: raw bytes, stored as BLOB (SQLite) or BYTEA (PostgreSQL).
struct Blob {
  std::string bytes;
};

// A statement parameter or a column value. NULL is std::monostate.
using SqlValue = std::variant<std::monostate, int64_t, std::string, Blob>;

// The rows a query returned, each a vector of column values in select order.
struct SqlRows {
  std::vector<std::vector<SqlValue>> rows;
  int64_t rows_affected = 0;
};

// Reads a column as an integer, a text or a blob; NULL reads as 0 or empty.
int64_t AsInt(const SqlValue& v);
const std::string& AsString(const SqlValue& v);

// One connection to the database, used by one thread at a time. Statements use $1, $2, ...
// placeholders in both dialects. Errors come back as absl::Status: kAlreadyExists for a
// unique-key violation, kUnavailable for a lost connection, kInternal otherwise.
class SqlConnection {
 public:
  SqlConnection() = default;
  SqlConnection(const SqlConnection&) = delete;
  SqlConnection& operator=(const SqlConnection&) = delete;
  virtual ~SqlConnection() = default;

  // Runs one statement. `rows` may be null when nothing is read.
  virtual absl::Status Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                            SqlRows* rows) = 0;

  // Starts a write transaction. On SQLite this also takes the database's single writer
  // slot, so that writers queue in-process instead of spinning on SQLITE_BUSY.
  virtual absl::Status Begin() = 0;
  // Commits; the transaction is durable when this returns OK.
  virtual absl::Status Commit() = 0;
  // Rolls back; safe to call after a failed statement or commit.
  virtual void Rollback() = 0;
};

enum class Dialect { kSqlite, kPostgres };

// A pool of connections to one database. Thread-safe.
class SqlDriver {
 public:
  // Returns a connection to its pool when destroyed.
  class Lease {
   public:
    Lease(SqlDriver* driver, std::unique_ptr<SqlConnection> conn)
        : driver_(driver), conn_(std::move(conn)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (conn_) driver_->Release(std::move(conn_));
    }
    SqlConnection* operator->() const { return conn_.get(); }
    SqlConnection& operator*() const { return *conn_; }

   private:
    SqlDriver* driver_;
    std::unique_ptr<SqlConnection> conn_;
  };

  SqlDriver() = default;
  SqlDriver(const SqlDriver&) = delete;
  SqlDriver& operator=(const SqlDriver&) = delete;
  virtual ~SqlDriver() = default;

  virtual Dialect dialect() const = 0;
  // Takes a connection from the pool, waiting for one if all are in use, or opening one.
  virtual absl::StatusOr<Lease> Acquire() = 0;

 protected:
  virtual void Release(std::unique_ptr<SqlConnection> conn) = 0;
};

struct SqliteOptions {
  std::string path;        // a file path; ignored when in_memory
  bool in_memory = false;  // a throwaway database that lives as long as the driver
  int pool_size = 4;
};
absl::StatusOr<std::unique_ptr<SqlDriver>> NewSqliteDriver(const SqliteOptions& options);

struct PostgresOptions {
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string user;
  std::string password;
  std::string database;
  int pool_size = 16;
};
absl::StatusOr<std::unique_ptr<SqlDriver>> NewPostgresDriver(const PostgresOptions& options);

}  // namespace almanac::persistence
