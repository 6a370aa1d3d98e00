// SQLite driver: the embedded default store. A file in WAL mode with synchronous=FULL, so a
// commit is on disk when it returns. Writers are serialized by an in-process mutex (SQLite
// allows one writer at a time anyway); readers proceed in parallel on their own connections.

#include "absl/strings/string_view.h"
#include <sqlite3.h>

#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "persistence/driver.h"
#include "persistence/pooled_driver.h"

namespace almanac::persistence {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const std::string msg = absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xFF) {
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// Rewrites $N placeholders to ?N, which SQLite binds by number.
std::string ToSqlitePlaceholders(absl::string_view sql) {
  std::string out(sql);
  for (char& c : out) {
    if (c == '$') c = '?';
  }
  return out;
}

class SqliteDriver;

class SqliteConnection final : public SqlConnection {
 public:
  // The store's own statements, a fixed set, stay prepared; statements beyond this many (the
  // text of list filters varies without end) are prepared for each call.
  static constexpr size_t kMaxCachedStatements = 256;

  SqliteConnection(sqlite3* db, absl::Mutex* writer_mu) : db_(db), writer_mu_(writer_mu) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  absl::Status Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                    SqlRows* rows) override {
    sqlite3_stmt* stmt = nullptr;
    auto it = cache_.find(std::string(sql));
    if (it != cache_.end()) {
      stmt = it->second;
    } else {
      const std::string text = ToSqlitePlaceholders(sql);
      int rc = sqlite3_prepare_v2(db_, text.c_str(), static_cast<int>(text.size()), &stmt,
                                  nullptr);
      if (rc != SQLITE_OK) return SqliteError(db_, rc, "prepare");
      if (cache_.size() < kMaxCachedStatements) {
        cache_.emplace(std::string(sql), stmt);
      } else {
        // A statement beyond the cache (a user's list filter, say) lives for this call only.
        absl::Status st = Run(stmt, params, rows);
        sqlite3_finalize(stmt);
        return st;
      }
    }
    return Run(stmt, params, rows);
  }

 private:
  absl::Status Run(sqlite3_stmt* stmt, absl::Span<const SqlValue> params, SqlRows* rows) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      const SqlValue& p = params[i];
      if (std::holds_alternative<std::monostate>(p)) {
        rc = sqlite3_bind_null(stmt, idx);
      } else if (auto* n = std::get_if<int64_t>(&p)) {
        rc = sqlite3_bind_int64(stmt, idx, *n);
      } else if (auto* s = std::get_if<std::string>(&p)) {
        rc = sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()),
                               SQLITE_TRANSIENT);
      } else {
        const Blob& b = std::get<Blob>(p);
        rc = sqlite3_bind_blob(stmt, idx, b.bytes.data(), static_cast<int>(b.bytes.size()),
                               SQLITE_TRANSIENT);
      }
      if (rc != SQLITE_OK) return SqliteError(db_, rc, "bind");
    }
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        absl::Status st = SqliteError(db_, rc, "step");
        sqlite3_reset(stmt);
        return st;
      }
      if (rows == nullptr) continue;
      std::vector<SqlValue>& row = rows->rows.emplace_back();
      const int n = sqlite3_column_count(stmt);
      row.reserve(n);
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(stmt, c)) {
          case SQLITE_NULL:
            row.emplace_back(std::monostate{});
            break;
          case SQLITE_INTEGER:
            row.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, c)));
            break;
          case SQLITE_BLOB: {
            const void* data = sqlite3_column_blob(stmt, c);
            const int size = sqlite3_column_bytes(stmt, c);
            row.emplace_back(Blob{std::string(static_cast<const char*>(data), size)});
            break;
          }
          default: {
            const unsigned char* text = sqlite3_column_text(stmt, c);
            const int size = sqlite3_column_bytes(stmt, c);
            row.emplace_back(std::string(reinterpret_cast<const char*>(text), size));
            break;
          }
        }
      }
    }
    if (rows != nullptr) rows->rows_affected = sqlite3_changes(db_);
    sqlite3_reset(stmt);
    return absl::OkStatus();
  }

 public:
  absl::Status Begin() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    writer_mu_->Lock();
    absl::Status st = Exec("BEGIN IMMEDIATE", {}, nullptr);
    if (!st.ok()) {
      writer_mu_->Unlock();
      return st;
    }
    holds_writer_ = true;
    return st;
  }

  absl::Status Commit() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::Status st = Exec("COMMIT", {}, nullptr);
    if (!st.ok()) Exec("ROLLBACK", {}, nullptr).IgnoreError();
    ReleaseWriter();
    return st;
  }

  void Rollback() override {
    if (sqlite3_get_autocommit(db_) == 0) Exec("ROLLBACK", {}, nullptr).IgnoreError();
    ReleaseWriter();
  }

 private:
  void ReleaseWriter() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!holds_writer_) return;
    holds_writer_ = false;
    writer_mu_->Unlock();
  }

  sqlite3* db_;
  absl::Mutex* writer_mu_;
  bool holds_writer_ = false;  // between a successful Begin and Commit/Rollback
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

class SqliteDriver final : public PooledDriver {
 public:
  explicit SqliteDriver(SqliteOptions options)
      : PooledDriver(options.in_memory ? 1 : options.pool_size), options_(std::move(options)) {}

  Dialect dialect() const override { return Dialect::kSqlite; }

  // Opens the first connection at once, so that a bad path fails at start. An in-memory
  // database is private to one connection, so it gets a pool of one.
  absl::Status Open() {
    auto conn = Connect();
    if (!conn.ok()) return conn.status();
    Adopt(std::move(*conn));
    return absl::OkStatus();
  }

 protected:
  absl::StatusOr<std::unique_ptr<SqlConnection>> Connect() override {
    sqlite3* db = nullptr;
    const std::string path = options_.in_memory ? ":memory:" : options_.path;
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
      absl::Status st = SqliteError(db, rc, absl::StrCat("open ", path));
      sqlite3_close_v2(db);
      return st;
    }
    sqlite3_busy_timeout(db, 10000);
    auto conn = std::make_unique<SqliteConnection>(db, &writer_mu_);
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                               "PRAGMA foreign_keys=OFF", "PRAGMA temp_store=MEMORY"}) {
      SqlRows ignored;
      absl::Status st = conn->Exec(pragma, {}, &ignored);
      if (!st.ok()) return st;
    }
    return std::unique_ptr<SqlConnection>(std::move(conn));
  }

 private:
  const SqliteOptions options_;
  absl::Mutex writer_mu_;  // the database's one writer slot
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlDriver>> NewSqliteDriver(const SqliteOptions& options) {
  auto driver = std::make_unique<SqliteDriver>(options);
  absl::Status st = driver->Open();
  if (!st.ok()) return st;
  return std::unique_ptr<SqlDriver>(std::move(driver));
}

int64_t AsInt(const SqlValue& v) {
  if (auto* n = std::get_if<int64_t>(&v)) return *n;
  return 0;
}

const std::string& AsString(const SqlValue& v) {
  static const std::string* empty = new std::string();
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* b = std::get_if<Blob>(&v)) return b->bytes;
  return *empty;
}

}  // namespace almanac::persistence
