#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "almanac/v1/persistence.pb.h"
#include "persistence/stores.h"

namespace almanac {

// Resolves namespaces by name and id through a cache over the NamespaceStore. Shared by the
// frontend (name resolution) and history (namespace settings). Thread-safe.
class NamespaceRegistry {
 public:
  explicit NamespaceRegistry(persistence::NamespaceStore* store) : store_(store) {}
  NamespaceRegistry(const NamespaceRegistry&) = delete;
  NamespaceRegistry& operator=(const NamespaceRegistry&) = delete;

  // kNotFound with NamespaceNotFoundFailure when absent.
  absl::StatusOr<v1::NamespaceRecord> GetByName(const std::string& name);
  absl::StatusOr<v1::NamespaceRecord> GetById(const std::string& id);
  absl::StatusOr<std::vector<v1::NamespaceRecord>> List();
  // kAlreadyExists when the name is taken.
  absl::Status Register(const v1::NamespaceRecord& record);
  absl::Status Update(const v1::NamespaceRecord& record);
  // Reads the named namespace, lets `change` edit it and stores the result, one such change at
  // a time (so two concurrent changes never lose one another). Nothing is stored when
  // `change` fails. Returns the stored record.
  absl::StatusOr<v1::NamespaceRecord> Change(
      const std::string& name, absl::FunctionRef<absl::Status(v1::NamespaceRecord*)> change);

 private:
  void Remember(const v1::NamespaceRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  persistence::NamespaceStore* const store_;
  absl::Mutex change_mu_;  // serialises Change; held across the store write
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::NamespaceRecord> by_name_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> name_by_id_ ABSL_GUARDED_BY(mu_);
};

}  // namespace almanac
