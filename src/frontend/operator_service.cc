#include "frontend/operator_service.h"

#include <map>
#include <string>
#include <vector>

#include "common/custom_search_attributes.h"
#include "frontend/errors.h"
#include "frontend/validation.h"

namespace almanac::frontend {
namespace {

namespace os = temporal::api::operatorservice::v1;
using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

absl::Status NamespaceNotSet() {
  return absl::InvalidArgumentError("Namespace is not set on request.");
}
absl::Status SearchAttributesNotSet() {
  return absl::InvalidArgumentError("SearchAttributes are not set on request.");
}

class OperatorServiceImpl final : public os::OperatorService::CallbackService {
 public:
  OperatorServiceImpl(NamespaceRegistry* namespaces, Executor* executor)
      : namespaces_(namespaces), executor_(executor) {}

  template <typename Fn>
  ServerUnaryReactor* Run(CallbackServerContext* ctx, Fn fn) {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    executor_->Post([reactor, fn = std::move(fn)]() mutable {
      reactor->Finish(ToGrpcStatus(fn()));
    });
    return reactor;
  }

  ServerUnaryReactor* AddSearchAttributes(CallbackServerContext* ctx,
                                          const os::AddSearchAttributesRequest* req,
                                          os::AddSearchAttributesResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      if (req->search_attributes().empty()) return SearchAttributesNotSet();
      if (req->namespace_().empty()) return NamespaceNotSet();
      absl::Status st = ValidateNamespaceName(req->namespace_());
      if (!st.ok()) return st;
      std::map<std::string, temporal::api::enums::v1::IndexedValueType> wanted(
          req->search_attributes().begin(), req->search_attributes().end());
      return namespaces_
          ->Change(req->namespace_(),
                   [&](v1::NamespaceRecord* r) { return AddCustomSearchAttributes(wanted, r); })
          .status();
    });
  }

  ServerUnaryReactor* RemoveSearchAttributes(CallbackServerContext* ctx,
                                             const os::RemoveSearchAttributesRequest* req,
                                             os::RemoveSearchAttributesResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      if (req->search_attributes().empty()) return SearchAttributesNotSet();
      if (req->namespace_().empty()) return NamespaceNotSet();
      absl::Status st = ValidateNamespaceName(req->namespace_());
      if (!st.ok()) return st;
      std::vector<std::string> names(req->search_attributes().begin(),
                                     req->search_attributes().end());
      return namespaces_
          ->Change(req->namespace_(),
                   [&](v1::NamespaceRecord* r) { return RemoveCustomSearchAttributes(names, r); })
          .status();
    });
  }

  ServerUnaryReactor* ListSearchAttributes(CallbackServerContext* ctx,
                                           const os::ListSearchAttributesRequest* req,
                                           os::ListSearchAttributesResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      if (req->namespace_().empty()) return NamespaceNotSet();
      absl::Status st = ValidateNamespaceName(req->namespace_());
      if (!st.ok()) return st;
      auto ns = namespaces_->GetByName(req->namespace_());
      if (!ns.ok()) return ns.status();
      for (const auto& [name, type] : SearchAttributeSchemaOf(*ns).custom) {
        (*resp->mutable_custom_attributes())[name] = type;
      }
      for (const auto& a : persistence::BuiltinSearchAttributes()) {
        (*resp->mutable_system_attributes())[std::string(a.name)] = a.type;
      }
      return absl::OkStatus();
    });
  }

 private:
  NamespaceRegistry* const namespaces_;
  Executor* const executor_;
};

}  // namespace

std::unique_ptr<os::OperatorService::CallbackService> NewOperatorService(
    NamespaceRegistry* namespaces, Executor* executor) {
  return std::make_unique<OperatorServiceImpl>(namespaces, executor);
}

}  // namespace almanac::frontend
