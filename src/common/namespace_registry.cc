#include "common/namespace_registry.h"

#include "common/status_details.h"
#include "temporal/api/errordetails/v1/message.pb.h"

namespace almanac {

void NamespaceRegistry::Remember(const v1::NamespaceRecord& record) {
  by_name_[record.info().name()] = record;
  name_by_id_[record.info().id()] = record.info().name();
}

absl::StatusOr<v1::NamespaceRecord> NamespaceRegistry::GetByName(const std::string& name) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  }
  auto record = store_->GetByName(name);
  if (absl::IsNotFound(record.status())) return NamespaceNotFound(name);
  if (!record.ok()) return record.status();
  absl::MutexLock lock(&mu_);
  Remember(*record);
  return record;
}

absl::StatusOr<v1::NamespaceRecord> NamespaceRegistry::GetById(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = name_by_id_.find(id); it != name_by_id_.end()) return by_name_.at(it->second);
  }
  auto record = store_->GetById(id);
  if (absl::IsNotFound(record.status())) return NamespaceNotFound(id);
  if (!record.ok()) return record.status();
  absl::MutexLock lock(&mu_);
  Remember(*record);
  return record;
}

absl::StatusOr<std::vector<v1::NamespaceRecord>> NamespaceRegistry::List() {
  return store_->List();
}

absl::Status NamespaceRegistry::Register(const v1::NamespaceRecord& record) {
  absl::Status st = store_->Create(record);
  if (absl::IsAlreadyExists(st)) {
    return WithDetail(st, temporal::api::errordetails::v1::NamespaceAlreadyExistsFailure());
  }
  if (!st.ok()) return st;
  absl::MutexLock lock(&mu_);
  Remember(record);
  return absl::OkStatus();
}

absl::Status NamespaceRegistry::Update(const v1::NamespaceRecord& record) {
  absl::Status st = store_->Update(record);
  if (absl::IsNotFound(st)) return NamespaceNotFound(record.info().name());
  if (!st.ok()) return st;
  absl::MutexLock lock(&mu_);
  Remember(record);
  return absl::OkStatus();
}

absl::StatusOr<v1::NamespaceRecord> NamespaceRegistry::Change(
    const std::string& name, absl::FunctionRef<absl::Status(v1::NamespaceRecord*)> change) {
  absl::MutexLock serial(&change_mu_);
  // Read from the store, not the cache: another process may share the database.
  auto record = store_->GetByName(name);
  if (absl::IsNotFound(record.status())) return NamespaceNotFound(name);
  if (!record.ok()) return record.status();
  absl::Status st = change(&*record);
  if (!st.ok()) return st;
  st = Update(*record);
  if (!st.ok()) return st;
  return record;
}

}  // namespace almanac
