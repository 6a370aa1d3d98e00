#include "frontend/unimplemented.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace almanac::frontend {
namespace {

namespace gx = grpc::experimental;

class UnimplementedNaming final : public gx::Interceptor {
 public:
  explicit UnimplementedNaming(gx::ServerRpcInfo* info) : info_(info) {}

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        // "/temporal.api.workflowservice.v1.WorkflowService/ListWorkflowExecutions"
        absl::string_view method = info_->method() != nullptr ? info_->method() : "";
        if (const size_t slash = method.rfind('/'); slash != absl::string_view::npos) {
          method.remove_prefix(slash + 1);
        }
        methods->ModifySendStatus(grpc::Status(
            grpc::StatusCode::UNIMPLEMENTED, absl::StrCat("method ", method, " not implemented")));
      }
    }
    methods->Proceed();
  }

 private:
  gx::ServerRpcInfo* info_;
};

class UnimplementedNamingFactory final : public gx::ServerInterceptorFactoryInterface {
 public:
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    return new UnimplementedNaming(info);
  }
};

}  // namespace

std::unique_ptr<gx::ServerInterceptorFactoryInterface> NewUnimplementedNamingInterceptorFactory() {
  return std::make_unique<UnimplementedNamingFactory>();
}

}  // namespace almanac::frontend
