// PostgreSQL driver over libpq. Parameters go as typed values (int8 and bytea in binary,
// text as text); results come back in binary and are decoded by column type.

#include "absl/strings/string_view.h"
#include <arpa/inet.h>
#include <libpq-fe.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "persistence/driver.h"
#include "persistence/pooled_driver.h"

namespace almanac::persistence {
namespace {

// Type OIDs from PostgreSQL's catalog (pg_type.dat); stable across versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

uint64_t ToBigEndian64(uint64_t v) { return htobe64(v); }
uint64_t FromBigEndian64(uint64_t v) { return be64toh(v); }

absl::Status ResultError(PGconn* conn, PGresult* res, absl::string_view what) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const std::string msg = absl::StrCat(what, ": ", PQerrorMessage(conn));
  if (state != nullptr && std::strcmp(state, "23505") == 0) return absl::AlreadyExistsError(msg);
  if (state != nullptr && (std::strcmp(state, "40001") == 0 || std::strcmp(state, "40P01") == 0)) {
    return absl::AbortedError(msg);  // serialization failure or deadlock: retry
  }
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

class PostgresConnection final : public SqlConnection {
 public:
  explicit PostgresConnection(PGconn* conn) : conn_(conn) {}
  ~PostgresConnection() override { PQfinish(conn_); }

  bool healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

  absl::Status Exec(absl::string_view sql, absl::Span<const SqlValue> params,
                    SqlRows* rows) override {
    const size_t n = params.size();
    std::vector<Oid> types(n, 0);
    std::vector<const char*> values(n, nullptr);
    std::vector<int> lengths(n, 0);
    std::vector<int> formats(n, 0);
    std::vector<uint64_t> ints(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const SqlValue& p = params[i];
      if (auto* v = std::get_if<int64_t>(&p)) {
        ints[i] = ToBigEndian64(static_cast<uint64_t>(*v));
        types[i] = kInt8Oid;
        values[i] = reinterpret_cast<const char*>(&ints[i]);
        lengths[i] = 8;
        formats[i] = 1;
      } else if (auto* s = std::get_if<std::string>(&p)) {
        values[i] = s->c_str();
        lengths[i] = static_cast<int>(s->size());
      } else if (auto* b = std::get_if<Blob>(&p)) {
        types[i] = kByteaOid;
        values[i] = b->bytes.data();
        lengths[i] = static_cast<int>(b->bytes.size());
        formats[i] = 1;
      }
    }
    const std::string text(sql);
    PGresult* res = PQexecParams(conn_, text.c_str(), static_cast<int>(n), types.data(),
                                 values.data(), lengths.data(), formats.data(), /*binary=*/1);
    const ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      absl::Status st = ResultError(conn_, res, "exec");
      PQclear(res);
      return st;
    }
    if (rows != nullptr) {
      const char* affected = PQcmdTuples(res);
      rows->rows_affected = (affected && *affected) ? std::atoll(affected) : 0;
      const int nrows = PQntuples(res);
      const int ncols = PQnfields(res);
      for (int r = 0; r < nrows; ++r) {
        std::vector<SqlValue>& row = rows->rows.emplace_back();
        row.reserve(ncols);
        for (int c = 0; c < ncols; ++c) row.push_back(Decode(res, r, c));
      }
    }
    PQclear(res);
    return absl::OkStatus();
  }

  absl::Status Begin() override { return Exec("BEGIN", {}, nullptr); }
  absl::Status Commit() override { return Exec("COMMIT", {}, nullptr); }
  void Rollback() override {
    if (PQtransactionStatus(conn_) != PQTRANS_IDLE) Exec("ROLLBACK", {}, nullptr).IgnoreError();
  }

 private:
  static SqlValue Decode(PGresult* res, int r, int c) {
    if (PQgetisnull(res, r, c)) return std::monostate{};
    const char* data = PQgetvalue(res, r, c);
    const int len = PQgetlength(res, r, c);
    switch (PQftype(res, c)) {
      case kInt8Oid: {
        uint64_t v;
        std::memcpy(&v, data, 8);
        return static_cast<int64_t>(FromBigEndian64(v));
      }
      case kInt4Oid: {
        uint32_t v;
        std::memcpy(&v, data, 4);
        return static_cast<int64_t>(static_cast<int32_t>(ntohl(v)));
      }
      case kInt2Oid: {
        uint16_t v;
        std::memcpy(&v, data, 2);
        return static_cast<int64_t>(static_cast<int16_t>(ntohs(v)));
      }
      case kBoolOid:
        return static_cast<int64_t>(data[0] != 0);
      case kByteaOid:
        return Blob{std::string(data, len)};
      default:
        return std::string(data, len);
    }
  }

  PGconn* conn_;
};

class PostgresDriver final : public PooledDriver {
 public:
  explicit PostgresDriver(PostgresOptions options)
      : PooledDriver(options.pool_size), options_(std::move(options)) {}

  Dialect dialect() const override { return Dialect::kPostgres; }

  // Connects once at once, so that bad settings fail at start.
  absl::Status Open() {
    auto conn = Connect();
    if (!conn.ok()) return conn.status();
    Adopt(std::move(*conn));
    return absl::OkStatus();
  }

 protected:
  absl::StatusOr<std::unique_ptr<SqlConnection>> Connect() override {
    const std::string port = std::to_string(options_.port);
    const char* keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout",
                          "application_name", nullptr};
    const char* values[] = {options_.host.c_str(), port.c_str(), options_.user.c_str(),
                            options_.password.c_str(), options_.database.c_str(), "10",
                            "almanac", nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
      absl::Status st = absl::UnavailableError(
          absl::StrCat("connect to PostgreSQL at ", options_.host, ":", options_.port, ": ",
                       PQerrorMessage(conn)));
      PQfinish(conn);
      return st;
    }
    return std::unique_ptr<SqlConnection>(new PostgresConnection(conn));
  }

  // A broken connection is dropped; the next Acquire opens a fresh one.
  bool Reusable(SqlConnection* conn) override {
    return static_cast<PostgresConnection*>(conn)->healthy();
  }

 private:
  const PostgresOptions options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqlDriver>> NewPostgresDriver(const PostgresOptions& options) {
  auto driver = std::make_unique<PostgresDriver>(options);
  absl::Status st = driver->Open();
  if (!st.ok()) return st;
  return std::unique_ptr<SqlDriver>(std::move(driver));
}

}  // namespace almanac::persistence
