#include "frontend/workflow_service.h"

#include <atomic>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "frontend/errors.h"
#include "frontend/schedules.h"
#include "frontend/visibility.h"
#include "history/state_machine.h"
#include "temporal/api/errordetails/v1/message.pb.h"
#include "temporal/api/failure/v1/message.pb.h"

namespace almanac::frontend {
namespace {

namespace ws = temporal::api::workflowservice::v1;
namespace errordetails = temporal::api::errordetails::v1;
namespace enums = temporal::api::enums::v1;
using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Long polls get at most this long when the client set no deadline.
constexpr absl::Duration kDefaultPollWindow = absl::Seconds(60);

absl::Time DeadlineOf(CallbackServerContext* ctx, absl::Time now) {
  const absl::Time deadline = absl::FromChrono(ctx->deadline());
  if (deadline > now + absl::Hours(1)) return now + kDefaultPollWindow;
  return deadline;
}

// Rewrites the close event of a run that a successor followed (a completed cron run, a
// failed or timed-out run that was retried) as WorkflowExecutionContinuedAsNew naming the
// successor, with the result or failure it carried. Other events are left alone.
void ShowAsContinuedAsNew(temporal::api::history::v1::HistoryEvent* e) {
  temporal::api::history::v1::WorkflowExecutionContinuedAsNewEventAttributes shown;
  switch (e->event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: {
      const auto& a = e->workflow_execution_completed_event_attributes();
      if (a.new_execution_run_id().empty()) return;
      shown.set_new_execution_run_id(a.new_execution_run_id());
      if (a.has_result()) *shown.mutable_last_completion_result() = a.result();
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: {
      const auto& a = e->workflow_execution_failed_event_attributes();
      if (a.new_execution_run_id().empty()) return;
      shown.set_new_execution_run_id(a.new_execution_run_id());
      *shown.mutable_failure() = a.failure();
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: {
      const auto& a = e->workflow_execution_timed_out_event_attributes();
      if (a.new_execution_run_id().empty()) return;
      shown.set_new_execution_run_id(a.new_execution_run_id());
      auto* f = shown.mutable_failure();
      f->set_message("workflow timeout");
      f->set_source("Server");
      f->mutable_timeout_failure_info()->set_timeout_type(enums::TIMEOUT_TYPE_START_TO_CLOSE);
      break;
    }
    default:
      return;
  }
  temporal::api::history::v1::HistoryEvent fake;
  fake.set_event_id(e->event_id());
  *fake.mutable_event_time() = e->event_time();
  fake.set_event_type(enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW);
  fake.set_version(e->version());
  fake.set_task_id(e->task_id());
  *fake.mutable_workflow_execution_continued_as_new_event_attributes() = std::move(shown);
  *e = std::move(fake);
}

// A long poll: answered once from whichever thread has the answer; tells matching when the
// client goes away. Freed when both gRPC is done with it and the handler has registered the
// poll (the answer may come before registration returns).
class PollReactor final : public ServerUnaryReactor {
 public:
  explicit PollReactor(matching::MatchingClient* matching) : matching_(matching) {}

  // Records the poll's id, so a later cancellation reaches matching; or 0 when no poll was
  // registered. Call exactly once.
  void Registered(uint64_t id) {
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      poll_id_ = id;
      cancel = cancelled_;
    }
    if (cancel && id != 0) matching_->CancelPoll(id);
    Release();
  }

  void OnCancel() override {
    uint64_t id;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      id = poll_id_;
    }
    if (id != 0) matching_->CancelPoll(id);
  }

  void OnDone() override { Release(); }

 private:
  void Release() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  matching::MatchingClient* const matching_;
  std::atomic<int> refs_{2};  // gRPC's OnDone, and the handler's Registered
  absl::Mutex mu_;
  uint64_t poll_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

ws::DescribeNamespaceResponse DescribeRecord(const v1::NamespaceRecord& r) {
  ws::DescribeNamespaceResponse out;
  *out.mutable_namespace_info() = r.info();
  *out.mutable_config() = r.config();
  *out.mutable_replication_config() = r.replication_config();
  out.set_failover_version(r.failover_version());
  out.set_is_global_namespace(r.is_global_namespace());
  return out;
}

class WorkflowServiceImpl final : public ws::WorkflowService::CallbackService {
 public:
  WorkflowServiceImpl(NamespaceRegistry* namespaces, history::HistoryClient* history,
                      matching::MatchingClient* matching, persistence::VisibilityStore* visibility,
                      Executor* executor, Clock* clock, ServerIdentity identity,
                      ValidationLimits limits)
      : namespaces_(namespaces),
        history_(history),
        matching_(matching),
        visibility_(namespaces, visibility),
        schedules_(namespaces, history, visibility, limits),
        executor_(executor),
        clock_(clock),
        identity_(std::move(identity)),
        limits_(limits) {}

  // Runs `fn` on the executor and finishes the call with the status it returns.
  template <typename Fn>
  ServerUnaryReactor* Run(CallbackServerContext* ctx, Fn fn) {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    executor_->Post([reactor, fn = std::move(fn)]() mutable {
      reactor->Finish(ToGrpcStatus(fn()));
    });
    return reactor;
  }

  absl::StatusOr<std::string> NamespaceId(const std::string& name) {
    absl::Status st = ValidateNamespaceName(name);
    if (!st.ok()) return st;
    auto ns = namespaces_->GetByName(name);
    if (!ns.ok()) return ns.status();
    return ns->info().id();
  }

  // ---- Cluster and namespaces -------------------------------------------------------------

  ServerUnaryReactor* GetSystemInfo(CallbackServerContext* ctx, const ws::GetSystemInfoRequest*,
                                    ws::GetSystemInfoResponse* resp) override {
    resp->set_server_version(identity_.server_version);
    auto* caps = resp->mutable_capabilities();
    // Only what is implemented. Failures are stored and returned as the SDK encoded them.
    caps->set_sdk_metadata(true);
    caps->set_encoded_failure_attributes(true);
    // Heartbeat details sent with an activity failure are kept for the next attempt.
    caps->set_activity_failure_include_heartbeat(true);
    // Signal and query headers are recorded and delivered to the worker.
    caps->set_signal_and_query_header(true);
    // Visibility: counts grouped by status; workflows upsert their memo.
    caps->set_count_group_by_execution_status(true);
    caps->set_upsert_memo(true);
    // Schedules: every Schedule RPC.
    caps->set_supports_schedules(true);
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  ServerUnaryReactor* GetClusterInfo(CallbackServerContext* ctx, const ws::GetClusterInfoRequest*,
                                     ws::GetClusterInfoResponse* resp) override {
    resp->set_server_version(identity_.server_version);
    resp->set_cluster_id(identity_.cluster_id);
    resp->set_cluster_name(identity_.cluster_name);
    resp->set_history_shard_count(identity_.num_shards);
    resp->set_persistence_store(identity_.store);
    resp->set_visibility_store(identity_.store);
    resp->mutable_version_info()->mutable_current()->set_version(identity_.server_version);
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  ServerUnaryReactor* RegisterNamespace(CallbackServerContext* ctx,
                                        const ws::RegisterNamespaceRequest* req,
                                        ws::RegisterNamespaceResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      absl::Status st = ValidateNamespaceName(req->namespace_());
      if (!st.ok()) return st;
      if (req->has_workflow_execution_retention_period() &&
          history::FromProto(req->workflow_execution_retention_period()) < absl::ZeroDuration()) {
        return absl::InvalidArgumentError("WorkflowExecutionRetentionPeriod must not be negative.");
      }
      v1::NamespaceRecord record;
      auto* info = record.mutable_info();
      info->set_name(req->namespace_());
      info->set_id(NewUuid());
      info->set_state(enums::NAMESPACE_STATE_REGISTERED);
      info->set_description(req->description());
      info->set_owner_email(req->owner_email());
      *info->mutable_data() = req->data();
      auto* config = record.mutable_config();
      *config->mutable_workflow_execution_retention_ttl() =
          req->has_workflow_execution_retention_period()
              ? req->workflow_execution_retention_period()
              : history::ToProto(absl::Hours(72));
      config->set_history_archival_state(enums::ARCHIVAL_STATE_DISABLED);
      config->set_visibility_archival_state(enums::ARCHIVAL_STATE_DISABLED);
      record.mutable_replication_config()->set_active_cluster_name(identity_.cluster_name);
      record.mutable_replication_config()->add_clusters()->set_cluster_name(identity_.cluster_name);
      return namespaces_->Register(record);
    });
  }

  ServerUnaryReactor* DescribeNamespace(CallbackServerContext* ctx,
                                        const ws::DescribeNamespaceRequest* req,
                                        ws::DescribeNamespaceResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      absl::StatusOr<v1::NamespaceRecord> ns;
      if (!req->id().empty()) {
        ns = namespaces_->GetById(req->id());
      } else {
        absl::Status st = ValidateNamespaceName(req->namespace_());
        if (!st.ok()) return st;
        ns = namespaces_->GetByName(req->namespace_());
      }
      if (!ns.ok()) return ns.status();
      *resp = DescribeRecord(*ns);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* ListNamespaces(CallbackServerContext* ctx, const ws::ListNamespacesRequest*,
                                     ws::ListNamespacesResponse* resp) override {
    return Run(ctx, [this, resp]() -> absl::Status {
      auto all = namespaces_->List();
      if (!all.ok()) return all.status();
      for (const auto& r : *all) *resp->add_namespaces() = DescribeRecord(r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* UpdateNamespace(CallbackServerContext* ctx,
                                      const ws::UpdateNamespaceRequest* req,
                                      ws::UpdateNamespaceResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      absl::Status st = ValidateNamespaceName(req->namespace_());
      if (!st.ok()) return st;
      auto changed = namespaces_->Change(req->namespace_(), [&](v1::NamespaceRecord* record)
                                                                -> absl::Status {
        if (req->has_update_info()) {
          const auto& u = req->update_info();
          if (!u.description().empty()) record->mutable_info()->set_description(u.description());
          if (!u.owner_email().empty()) record->mutable_info()->set_owner_email(u.owner_email());
          for (const auto& [k, v] : u.data()) (*record->mutable_info()->mutable_data())[k] = v;
        }
        if (req->has_config()) {
          const auto& c = req->config();
          if (c.has_workflow_execution_retention_ttl()) {
            if (history::FromProto(c.workflow_execution_retention_ttl()) < absl::ZeroDuration()) {
              return absl::InvalidArgumentError("WorkflowExecutionRetentionTtl must not be negative.");
            }
            *record->mutable_config()->mutable_workflow_execution_retention_ttl() =
                c.workflow_execution_retention_ttl();
          }
          if (!c.custom_search_attribute_aliases().empty() || c.has_bad_binaries()) {
            return absl::UnimplementedError(
                "search attribute aliases and bad binaries are not supported by this server yet.");
          }
        }
        if (req->has_replication_config() || !req->promote_namespace() == false) {
          return absl::UnimplementedError("namespace replication is not supported by this server.");
        }
        return absl::OkStatus();
      });
      if (!changed.ok()) return changed.status();
      const v1::NamespaceRecord& record = *changed;
      *resp->mutable_namespace_info() = record.info();
      *resp->mutable_config() = record.config();
      *resp->mutable_replication_config() = record.replication_config();
      resp->set_failover_version(record.failover_version());
      resp->set_is_global_namespace(record.is_global_namespace());
      return absl::OkStatus();
    });
  }

  // ---- Workflows ----------------------------------------------------------------------------

  ServerUnaryReactor* StartWorkflowExecution(CallbackServerContext* ctx,
                                             const ws::StartWorkflowExecutionRequest* req,
                                             ws::StartWorkflowExecutionResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateStart(*req, limits_);
      if (!st.ok()) return st;
      ws::StartWorkflowExecutionRequest request = *req;
      if (request.request_id().empty()) request.set_request_id(NewUuid());
      auto r = history_->StartWorkflowExecution(*ns, request);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* TerminateWorkflowExecution(CallbackServerContext* ctx,
                                                 const ws::TerminateWorkflowExecutionRequest* req,
                                                 ws::TerminateWorkflowExecutionResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateExecution(req->workflow_execution(), limits_);
      if (!st.ok()) return st;
      return history_->TerminateWorkflowExecution(*ns, *req);
    });
  }

  ServerUnaryReactor* RequestCancelWorkflowExecution(
      CallbackServerContext* ctx, const ws::RequestCancelWorkflowExecutionRequest* req,
      ws::RequestCancelWorkflowExecutionResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateExecution(req->workflow_execution(), limits_);
      if (!st.ok()) return st;
      return history_->RequestCancelWorkflowExecution(*ns, *req);
    });
  }

  ServerUnaryReactor* ResetWorkflowExecution(CallbackServerContext* ctx,
                                             const ws::ResetWorkflowExecutionRequest* req,
                                             ws::ResetWorkflowExecutionResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateExecution(req->workflow_execution(), limits_);
      if (!st.ok()) return st;
      if (req->request_id().size() > limits_.max_id_length) {
        return absl::InvalidArgumentError("RequestId exceeds length limit.");
      }
      auto r = history_->ResetWorkflowExecution(*ns, *req);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* DescribeWorkflowExecution(CallbackServerContext* ctx,
                                                const ws::DescribeWorkflowExecutionRequest* req,
                                                ws::DescribeWorkflowExecutionResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateExecution(req->execution(), limits_);
      if (!st.ok()) return st;
      auto r = history_->DescribeWorkflowExecution(*ns, *req);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* GetWorkflowExecutionHistory(
      CallbackServerContext* ctx, const ws::GetWorkflowExecutionHistoryRequest* req,
      ws::GetWorkflowExecutionHistoryResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now()) - absl::Seconds(1);
    // A client waiting for a run's close event that does not say it follows a completed or
    // failed run to its successor is shown that close as a continue-as-new, as Temporal
    // does for older SDKs (the Python SDK among them), so that it follows the chain.
    const bool close_only = req->history_event_filter_type() ==
                            temporal::api::enums::v1::HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT;
    bool follows_next_run = false;
    for (auto [it, end] = ctx->client_metadata().equal_range("supported-features"); it != end; ++it) {
      for (absl::string_view f : absl::StrSplit(absl::string_view(it->second.data(), it->second.size()), ',')) {
        follows_next_run = follows_next_run || absl::StripAsciiWhitespace(f) == "follows-next-run-id";
      }
    }
    const bool rewrite_close = close_only && !follows_next_run;
    executor_->Post([this, reactor, req, resp, deadline, rewrite_close] {
      auto ns = NamespaceId(req->namespace_());
      absl::Status st = ns.ok() ? ValidateExecution(req->execution(), limits_) : ns.status();
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      history_->GetWorkflowExecutionHistory(
          *ns, *req, deadline,
          [reactor, resp, rewrite_close](absl::StatusOr<ws::GetWorkflowExecutionHistoryResponse> r) {
            if (r.ok()) {
              *resp = std::move(*r);
              auto* events = resp->mutable_history()->mutable_events();
              if (rewrite_close && !events->empty()) ShowAsContinuedAsNew(&(*events)[events->size() - 1]);
            }
            reactor->Finish(ToGrpcStatus(r.status()));
          });
    });
    return reactor;
  }

  // ---- Schedules ----------------------------------------------------------------------------

  ServerUnaryReactor* CreateSchedule(CallbackServerContext* ctx, const ws::CreateScheduleRequest* req,
                                     ws::CreateScheduleResponse* resp) override {
    return Run(ctx, [this, req, resp] { return schedules_.Create(*req, resp); });
  }

  ServerUnaryReactor* DescribeSchedule(CallbackServerContext* ctx,
                                       const ws::DescribeScheduleRequest* req,
                                       ws::DescribeScheduleResponse* resp) override {
    return Run(ctx, [this, req, resp] { return schedules_.Describe(*req, resp); });
  }

  ServerUnaryReactor* UpdateSchedule(CallbackServerContext* ctx, const ws::UpdateScheduleRequest* req,
                                     ws::UpdateScheduleResponse*) override {
    return Run(ctx, [this, req] { return schedules_.Update(*req); });
  }

  ServerUnaryReactor* PatchSchedule(CallbackServerContext* ctx, const ws::PatchScheduleRequest* req,
                                    ws::PatchScheduleResponse*) override {
    return Run(ctx, [this, req] { return schedules_.Patch(*req); });
  }

  ServerUnaryReactor* DeleteSchedule(CallbackServerContext* ctx, const ws::DeleteScheduleRequest* req,
                                     ws::DeleteScheduleResponse*) override {
    return Run(ctx, [this, req] { return schedules_.Delete(*req); });
  }

  ServerUnaryReactor* ListSchedules(CallbackServerContext* ctx, const ws::ListSchedulesRequest* req,
                                    ws::ListSchedulesResponse* resp) override {
    return Run(ctx, [this, req, resp] { return schedules_.List(*req, resp); });
  }

  ServerUnaryReactor* CountSchedules(CallbackServerContext* ctx, const ws::CountSchedulesRequest* req,
                                     ws::CountSchedulesResponse* resp) override {
    return Run(ctx, [this, req, resp] { return schedules_.Count(*req, resp); });
  }

  ServerUnaryReactor* ListScheduleMatchingTimes(
      CallbackServerContext* ctx, const ws::ListScheduleMatchingTimesRequest* req,
      ws::ListScheduleMatchingTimesResponse* resp) override {
    return Run(ctx, [this, req, resp] { return schedules_.MatchingTimes(*req, resp); });
  }

  // ---- Visibility ---------------------------------------------------------------------------

  ServerUnaryReactor* ListWorkflowExecutions(CallbackServerContext* ctx,
                                             const ws::ListWorkflowExecutionsRequest* req,
                                             ws::ListWorkflowExecutionsResponse* resp) override {
    return Run(ctx, [this, req, resp] { return visibility_.List(*req, resp); });
  }

  ServerUnaryReactor* ScanWorkflowExecutions(CallbackServerContext* ctx,
                                             const ws::ScanWorkflowExecutionsRequest* req,
                                             ws::ScanWorkflowExecutionsResponse* resp) override {
    return Run(ctx, [this, req, resp] { return visibility_.Scan(*req, resp); });
  }

  ServerUnaryReactor* CountWorkflowExecutions(CallbackServerContext* ctx,
                                              const ws::CountWorkflowExecutionsRequest* req,
                                              ws::CountWorkflowExecutionsResponse* resp) override {
    return Run(ctx, [this, req, resp] { return visibility_.Count(*req, resp); });
  }

  ServerUnaryReactor* GetSearchAttributes(CallbackServerContext* ctx,
                                          const ws::GetSearchAttributesRequest* req,
                                          ws::GetSearchAttributesResponse* resp) override {
    return Run(ctx, [this, req, resp] { return visibility_.GetSearchAttributes(*req, resp); });
  }

  // Newest events first. The token names the run and the newest event id of the next page;
  // each page is a forward read of its id range, reversed.
  ServerUnaryReactor* GetWorkflowExecutionHistoryReverse(
      CallbackServerContext* ctx, const ws::GetWorkflowExecutionHistoryReverseRequest* req,
      ws::GetWorkflowExecutionHistoryReverseResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    executor_->Post([this, reactor, req, resp] {
      auto ns = NamespaceId(req->namespace_());
      absl::Status st = ns.status();
      if (st.ok() && !req->has_execution()) {
        st = absl::InvalidArgumentError("Execution is not set on request.");
      }
      if (st.ok()) st = ValidateExecution(req->execution(), limits_);
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      v1::HistoryPageToken token;
      if (!req->next_page_token().empty() &&
          (!token.ParseFromString(req->next_page_token()) || token.last_event_id() <= 0)) {
        reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError("Invalid NextPageToken.")));
        return;
      }
      if (req->next_page_token().empty()) {
        ws::DescribeWorkflowExecutionRequest describe;
        describe.set_namespace_(req->namespace_());
        *describe.mutable_execution() = req->execution();
        auto described = history_->DescribeWorkflowExecution(*ns, describe);
        if (!described.ok()) {
          reactor->Finish(ToGrpcStatus(described.status()));
          return;
        }
        const auto& info = described->workflow_execution_info();
        token.set_run_id(info.execution().run_id());
        token.set_last_event_id(info.history_length());
      }
      const int64_t last = token.last_event_id();
      const int64_t size = req->maximum_page_size() > 0 ? req->maximum_page_size() : 1000;
      const int64_t first = std::max<int64_t>(1, last - size + 1);
      ws::GetWorkflowExecutionHistoryRequest forward;
      forward.set_namespace_(req->namespace_());
      forward.mutable_execution()->set_workflow_id(req->execution().workflow_id());
      forward.mutable_execution()->set_run_id(token.run_id());
      forward.set_maximum_page_size(static_cast<int32_t>(last - first + 1));
      v1::HistoryPageToken range;
      range.set_run_id(token.run_id());
      range.set_next_event_id(first);
      range.set_last_event_id(last);
      forward.set_next_page_token(range.SerializeAsString());
      history_->GetWorkflowExecutionHistory(
          *ns, forward, absl::InfiniteFuture(),
          [reactor, resp, first, last, run_id = token.run_id()](
              absl::StatusOr<ws::GetWorkflowExecutionHistoryResponse> r) {
            if (!r.ok()) {
              reactor->Finish(ToGrpcStatus(r.status()));
              return;
            }
            const auto& events = r->history().events();
            for (int i = events.size() - 1; i >= 0; --i) {
              if (events[i].event_id() < first || events[i].event_id() > last) continue;
              *resp->mutable_history()->add_events() = events[i];
            }
            if (first > 1) {
              v1::HistoryPageToken next;
              next.set_run_id(run_id);
              next.set_last_event_id(first - 1);
              resp->set_next_page_token(next.SerializeAsString());
            }
            reactor->Finish(grpc::Status::OK);
          });
    });
    return reactor;
  }

  // ---- Task queues ---------------------------------------------------------------------------

  ServerUnaryReactor* DescribeTaskQueue(CallbackServerContext* ctx,
                                        const ws::DescribeTaskQueueRequest* req,
                                        ws::DescribeTaskQueueResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateTaskQueue(req->task_queue(), limits_);
      if (!st.ok()) return st;
      const std::string& name = req->task_queue().name();
      auto stats_of = [](const matching::MatchingClient::QueueDescription& d) {
        temporal::api::taskqueue::v1::TaskQueueStats stats;
        stats.set_approximate_backlog_count(d.backlog_count);
        *stats.mutable_approximate_backlog_age() = history::ToProto(d.backlog_age);
        return stats;
      };
      if (req->api_mode() == enums::DESCRIBE_TASK_QUEUE_MODE_ENHANCED) {
        if (req->task_queue().kind() == enums::TASK_QUEUE_KIND_STICKY) {
          return absl::InvalidArgumentError(
              "Enhanced DescribeTaskQueue is not valid for a sticky queue, use api_mode=UNSPECIFIED "
              "or a normal queue.");
        }
        std::vector<enums::TaskQueueType> types;
        for (int t : req->task_queue_types()) types.push_back(static_cast<enums::TaskQueueType>(t));
        if (types.empty()) types = {enums::TASK_QUEUE_TYPE_WORKFLOW, enums::TASK_QUEUE_TYPE_ACTIVITY};
        auto& version = (*resp->mutable_versions_info())[""];
        for (enums::TaskQueueType type : types) {
          if (type != enums::TASK_QUEUE_TYPE_WORKFLOW && type != enums::TASK_QUEUE_TYPE_ACTIVITY) {
            continue;  // Nexus queues: none here
          }
          auto d = matching_->DescribeTaskQueue(*ns, name, type == enums::TASK_QUEUE_TYPE_ACTIVITY);
          if (!d.ok()) return d.status();
          auto& info = (*version.mutable_types_info())[type];
          if (req->report_pollers()) {
            for (auto& p : d->pollers) *info.add_pollers() = std::move(p);
          }
          if (req->report_stats()) *info.mutable_stats() = stats_of(*d);
        }
        return absl::OkStatus();
      }
      const bool activity = req->task_queue_type() == enums::TASK_QUEUE_TYPE_ACTIVITY;
      auto d = matching_->DescribeTaskQueue(*ns, name, activity);
      if (!d.ok()) return d.status();
      for (auto& p : d->pollers) *resp->add_pollers() = std::move(p);
      if (req->report_stats()) *resp->mutable_stats() = stats_of(*d);
      if (req->include_task_queue_status()) {
        auto* status = resp->mutable_task_queue_status();
        status->set_backlog_count_hint(d->backlog_count);
        status->set_read_level(d->read_level);
        status->set_ack_level(d->ack_level);
        status->set_rate_per_second(100000);
      }
      return absl::OkStatus();
    });
  }

  // ---- Workers ------------------------------------------------------------------------------

  // A long poll: resolved and validated on the executor, then parked in matching, which
  // answers through the reactor. `poll` is the MatchingClient method to call.
  template <typename Request, typename Response, typename PollFn>
  ServerUnaryReactor* LongPoll(CallbackServerContext* ctx, const Request* req, Response* resp,
                               PollFn poll) {
    auto* reactor = new PollReactor(matching_);
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now());
    executor_->Post([this, reactor, req, resp, deadline, poll] {
      auto ns = NamespaceId(req->namespace_());
      absl::Status st = ns.ok() ? ValidateTaskQueue(req->task_queue(), limits_) : ns.status();
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        reactor->Registered(0);
        return;
      }
      reactor->Registered((matching_->*poll)(*ns, *req, deadline,
                                            [reactor, resp](absl::StatusOr<Response> r) {
                                              if (r.ok()) *resp = std::move(*r);
                                              reactor->Finish(ToGrpcStatus(r.status()));
                                            }));
    });
    return reactor;
  }

  ServerUnaryReactor* PollWorkflowTaskQueue(CallbackServerContext* ctx,
                                            const ws::PollWorkflowTaskQueueRequest* req,
                                            ws::PollWorkflowTaskQueueResponse* resp) override {
    return LongPoll(ctx, req, resp, &matching::MatchingClient::PollWorkflowTaskQueue);
  }

  ServerUnaryReactor* PollActivityTaskQueue(CallbackServerContext* ctx,
                                            const ws::PollActivityTaskQueueRequest* req,
                                            ws::PollActivityTaskQueueResponse* resp) override {
    return LongPoll(ctx, req, resp, &matching::MatchingClient::PollActivityTaskQueue);
  }

  ServerUnaryReactor* RespondWorkflowTaskCompleted(
      CallbackServerContext* ctx, const ws::RespondWorkflowTaskCompletedRequest* req,
      ws::RespondWorkflowTaskCompletedResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), /*activity=*/false);
      if (!token.ok()) return token.status();
      auto r = history_->RespondWorkflowTaskCompleted(*token, *req);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* RespondWorkflowTaskFailed(CallbackServerContext* ctx,
                                                const ws::RespondWorkflowTaskFailedRequest* req,
                                                ws::RespondWorkflowTaskFailedResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), false);
      if (!token.ok()) return token.status();
      return history_->RespondWorkflowTaskFailed(*token, *req);
    });
  }

  ServerUnaryReactor* RespondActivityTaskCompleted(
      CallbackServerContext* ctx, const ws::RespondActivityTaskCompletedRequest* req,
      ws::RespondActivityTaskCompletedResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), true);
      if (!token.ok()) return token.status();
      absl::Status st = ValidateBlob(req->result().ByteSizeLong(), "Result", limits_);
      if (!st.ok()) return st;
      return history_->RespondActivityTaskCompleted(*token, *req);
    });
  }

  ServerUnaryReactor* RespondActivityTaskFailed(CallbackServerContext* ctx,
                                                const ws::RespondActivityTaskFailedRequest* req,
                                                ws::RespondActivityTaskFailedResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), true);
      if (!token.ok()) return token.status();
      return history_->RespondActivityTaskFailed(*token, *req);
    });
  }

  ServerUnaryReactor* RespondActivityTaskCanceled(
      CallbackServerContext* ctx, const ws::RespondActivityTaskCanceledRequest* req,
      ws::RespondActivityTaskCanceledResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), true);
      if (!token.ok()) return token.status();
      return history_->RespondActivityTaskCanceled(*token, *req);
    });
  }

  ServerUnaryReactor* RecordActivityTaskHeartbeat(
      CallbackServerContext* ctx, const ws::RecordActivityTaskHeartbeatRequest* req,
      ws::RecordActivityTaskHeartbeatResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto token = ParseTaskToken(req->task_token(), true);
      if (!token.ok()) return token.status();
      absl::Status st = ValidateBlob(req->details().ByteSizeLong(), "Details", limits_);
      if (!st.ok()) return st;
      auto cancel = history_->RecordActivityTaskHeartbeat(*token, *req);
      if (!cancel.ok()) return cancel.status();
      resp->set_cancel_requested(*cancel);
      return absl::OkStatus();
    });
  }

  // The ...ById variants address a started activity by workflow id, run id and activity id.
  absl::StatusOr<v1::TaskToken> TokenById(const std::string& ns_name, const std::string& workflow_id,
                                          const std::string& run_id, const std::string& activity_id) {
    auto ns = NamespaceId(ns_name);
    if (!ns.ok()) return ns.status();
    temporal::api::common::v1::WorkflowExecution exec;
    exec.set_workflow_id(workflow_id);
    exec.set_run_id(run_id);
    absl::Status st = ValidateExecution(exec, limits_);
    if (!st.ok()) return st;
    if (activity_id.empty()) return absl::InvalidArgumentError("ActivityId is not set on request.");
    return history_->ActivityTokenById(*ns, workflow_id, run_id, activity_id);
  }

  ServerUnaryReactor* RespondActivityTaskCompletedById(
      CallbackServerContext* ctx, const ws::RespondActivityTaskCompletedByIdRequest* req,
      ws::RespondActivityTaskCompletedByIdResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = TokenById(req->namespace_(), req->workflow_id(), req->run_id(), req->activity_id());
      if (!token.ok()) return token.status();
      absl::Status st = ValidateBlob(req->result().ByteSizeLong(), "Result", limits_);
      if (!st.ok()) return st;
      ws::RespondActivityTaskCompletedRequest request;
      *request.mutable_result() = req->result();
      request.set_identity(req->identity());
      return history_->RespondActivityTaskCompleted(*token, request);
    });
  }

  ServerUnaryReactor* RespondActivityTaskFailedById(
      CallbackServerContext* ctx, const ws::RespondActivityTaskFailedByIdRequest* req,
      ws::RespondActivityTaskFailedByIdResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = TokenById(req->namespace_(), req->workflow_id(), req->run_id(), req->activity_id());
      if (!token.ok()) return token.status();
      ws::RespondActivityTaskFailedRequest request;
      *request.mutable_failure() = req->failure();
      request.set_identity(req->identity());
      if (req->has_last_heartbeat_details()) {
        *request.mutable_last_heartbeat_details() = req->last_heartbeat_details();
      }
      return history_->RespondActivityTaskFailed(*token, request);
    });
  }

  ServerUnaryReactor* RespondActivityTaskCanceledById(
      CallbackServerContext* ctx, const ws::RespondActivityTaskCanceledByIdRequest* req,
      ws::RespondActivityTaskCanceledByIdResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto token = TokenById(req->namespace_(), req->workflow_id(), req->run_id(), req->activity_id());
      if (!token.ok()) return token.status();
      ws::RespondActivityTaskCanceledRequest request;
      *request.mutable_details() = req->details();
      request.set_identity(req->identity());
      return history_->RespondActivityTaskCanceled(*token, request);
    });
  }

  ServerUnaryReactor* RecordActivityTaskHeartbeatById(
      CallbackServerContext* ctx, const ws::RecordActivityTaskHeartbeatByIdRequest* req,
      ws::RecordActivityTaskHeartbeatByIdResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto token = TokenById(req->namespace_(), req->workflow_id(), req->run_id(), req->activity_id());
      if (!token.ok()) return token.status();
      absl::Status st = ValidateBlob(req->details().ByteSizeLong(), "Details", limits_);
      if (!st.ok()) return st;
      ws::RecordActivityTaskHeartbeatRequest request;
      *request.mutable_details() = req->details();
      request.set_identity(req->identity());
      auto cancel = history_->RecordActivityTaskHeartbeat(*token, request);
      if (!cancel.ok()) return cancel.status();
      resp->set_cancel_requested(*cancel);
      return absl::OkStatus();
    });
  }

  // ---- Messages: signals, queries, updates --------------------------------------------------

  ServerUnaryReactor* SignalWorkflowExecution(CallbackServerContext* ctx,
                                              const ws::SignalWorkflowExecutionRequest* req,
                                              ws::SignalWorkflowExecutionResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      absl::Status st = ValidateExecution(req->workflow_execution(), limits_);
      if (st.ok()) st = ValidateSignal(req->signal_name(), req->input().ByteSizeLong(), limits_);
      if (!st.ok()) return st;
      if (req->request_id().size() > limits_.max_id_length) {
        return absl::InvalidArgumentError("RequestId exceeds length limit.");
      }
      return history_->SignalWorkflowExecution(*ns, *req);
    });
  }

  ServerUnaryReactor* SignalWithStartWorkflowExecution(
      CallbackServerContext* ctx, const ws::SignalWithStartWorkflowExecutionRequest* req,
      ws::SignalWithStartWorkflowExecutionResponse* resp) override {
    return Run(ctx, [this, req, resp]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      // The start half is checked as a start request would be.
      ws::StartWorkflowExecutionRequest start;
      start.set_workflow_id(req->workflow_id());
      *start.mutable_workflow_type() = req->workflow_type();
      *start.mutable_task_queue() = req->task_queue();
      if (req->has_input()) *start.mutable_input() = req->input();
      if (req->has_workflow_execution_timeout()) {
        *start.mutable_workflow_execution_timeout() = req->workflow_execution_timeout();
      }
      if (req->has_workflow_run_timeout()) *start.mutable_workflow_run_timeout() = req->workflow_run_timeout();
      if (req->has_workflow_task_timeout()) *start.mutable_workflow_task_timeout() = req->workflow_task_timeout();
      start.set_request_id(req->request_id());
      start.set_cron_schedule(req->cron_schedule());
      if (req->has_workflow_start_delay()) *start.mutable_workflow_start_delay() = req->workflow_start_delay();
      absl::Status st = ValidateStart(start, limits_);
      if (st.ok()) st = ValidateSignal(req->signal_name(), req->signal_input().ByteSizeLong(), limits_);
      if (st.ok() && req->workflow_id_conflict_policy() == enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL) {
        st = absl::InvalidArgumentError(
            "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported "
            "for this operation.");
      }
      if (!st.ok()) return st;
      ws::SignalWithStartWorkflowExecutionRequest request = *req;
      if (request.request_id().empty()) request.set_request_id(NewUuid());
      auto r = history_->SignalWithStartWorkflowExecution(*ns, request);
      if (!r.ok()) return r.status();
      *resp = std::move(*r);
      return absl::OkStatus();
    });
  }

  ServerUnaryReactor* QueryWorkflow(CallbackServerContext* ctx, const ws::QueryWorkflowRequest* req,
                                    ws::QueryWorkflowResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now()) - absl::Seconds(1);
    executor_->Post([this, reactor, req, resp, deadline] {
      auto ns = NamespaceId(req->namespace_());
      absl::Status st = ns.ok() ? ValidateExecution(req->execution(), limits_) : ns.status();
      if (st.ok() && !req->has_query()) st = absl::InvalidArgumentError("WorkflowQuery is not set on request.");
      if (st.ok() && req->query().query_type().empty()) {
        st = absl::InvalidArgumentError("QueryType is not set on request.");
      }
      if (st.ok()) st = ValidateBlob(req->query().query_args().ByteSizeLong(), "Query args", limits_);
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      history_->QueryWorkflow(*ns, *req, deadline,
                              [reactor, resp](absl::StatusOr<ws::QueryWorkflowResponse> r) {
                                if (r.ok()) *resp = std::move(*r);
                                reactor->Finish(ToGrpcStatus(r.status()));
                              });
    });
    return reactor;
  }

  ServerUnaryReactor* RespondQueryTaskCompleted(CallbackServerContext* ctx,
                                                const ws::RespondQueryTaskCompletedRequest* req,
                                                ws::RespondQueryTaskCompletedResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      auto token = ParseQueryTaskToken(req->task_token());
      if (!token.ok()) return token.status();
      absl::Status st = ValidateBlob(req->query_result().ByteSizeLong(), "QueryResult", limits_);
      if (!st.ok()) return st;
      return matching_->RespondQueryTaskCompleted(token->namespace_id(), token->query_id(), *req);
    });
  }

  ServerUnaryReactor* UpdateWorkflowExecution(CallbackServerContext* ctx,
                                              const ws::UpdateWorkflowExecutionRequest* req,
                                              ws::UpdateWorkflowExecutionResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now()) - absl::Seconds(1);
    executor_->Post([this, reactor, req, resp, deadline] {
      auto ns = NamespaceId(req->namespace_());
      auto request = std::make_shared<ws::UpdateWorkflowExecutionRequest>(*req);
      absl::Status st = ns.ok() ? ValidateUpdate(request.get(), limits_) : ns.status();
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      if (request->request().meta().update_id().empty()) {
        request->mutable_request()->mutable_meta()->set_update_id(NewUuid());
      }
      history_->UpdateWorkflowExecution(
          *ns, *request, deadline,
          [reactor, resp, request](absl::StatusOr<ws::UpdateWorkflowExecutionResponse> r) {
            if (r.ok()) *resp = std::move(*r);
            reactor->Finish(ToGrpcStatus(r.status()));
          });
    });
    return reactor;
  }

  ServerUnaryReactor* PollWorkflowExecutionUpdate(
      CallbackServerContext* ctx, const ws::PollWorkflowExecutionUpdateRequest* req,
      ws::PollWorkflowExecutionUpdateResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now()) - absl::Seconds(1);
    executor_->Post([this, reactor, req, resp, deadline] {
      auto ns = NamespaceId(req->namespace_());
      absl::Status st = ns.ok() ? absl::OkStatus() : ns.status();
      if (st.ok() && !req->has_update_ref()) {
        st = absl::InvalidArgumentError("UpdateRef is not set on request.");
      }
      if (st.ok()) st = ValidateExecution(req->update_ref().workflow_execution(), limits_);
      if (st.ok() && req->update_ref().update_id().empty()) {
        st = absl::InvalidArgumentError("UpdateId is not set on request.");
      }
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      history_->PollWorkflowExecutionUpdate(
          *ns, *req, deadline,
          [reactor, resp](absl::StatusOr<ws::PollWorkflowExecutionUpdateResponse> r) {
            if (r.ok()) *resp = std::move(*r);
            reactor->Finish(ToGrpcStatus(r.status()));
          });
    });
    return reactor;
  }

  // Update-with-start: exactly [Start, Update]. The start follows its id policies (a
  // running workflow is used under USE_EXISTING); the update then goes to the run it named.
  // A failure names which operation failed, as Temporal's MultiOperationExecutionFailure.
  ServerUnaryReactor* ExecuteMultiOperation(CallbackServerContext* ctx,
                                            const ws::ExecuteMultiOperationRequest* req,
                                            ws::ExecuteMultiOperationResponse* resp) override {
    ServerUnaryReactor* reactor = ctx->DefaultReactor();
    const absl::Time deadline = DeadlineOf(ctx, clock_->Now()) - absl::Seconds(1);
    executor_->Post([this, reactor, req, resp, deadline] {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) {
        reactor->Finish(ToGrpcStatus(ns.status()));
        return;
      }
      if (req->operations_size() != 2 || !req->operations(0).has_start_workflow() ||
          !req->operations(1).has_update_workflow()) {
        reactor->Finish(ToGrpcStatus(
            absl::InvalidArgumentError("Operations have to be exactly [Start, Update].")));
        return;
      }
      ws::StartWorkflowExecutionRequest start = req->operations(0).start_workflow();
      auto update = std::make_shared<ws::UpdateWorkflowExecutionRequest>(
          req->operations(1).update_workflow());
      absl::Status st = ValidateStart(start, limits_);
      if (st.ok() && !start.cron_schedule().empty()) {
        st = absl::InvalidArgumentError("CronSchedule is not allowed.");
      }
      if (st.ok() && history::FromProto(start.workflow_start_delay()) > absl::ZeroDuration()) {
        st = absl::InvalidArgumentError("WorkflowStartDelay is not supported.");
      }
      if (st.ok() && update->workflow_execution().workflow_id() != start.workflow_id()) {
        st = absl::InvalidArgumentError("WorkflowId is not consistent with previous operation(s).");
      }
      if (st.ok() && !update->workflow_execution().run_id().empty()) {
        st = absl::InvalidArgumentError("RunId is not allowed.");
      }
      if (st.ok() && !update->first_execution_run_id().empty()) {
        st = absl::InvalidArgumentError("FirstExecutionRunId is not allowed.");
      }
      if (st.ok()) st = ValidateUpdate(update.get(), limits_);
      if (!st.ok()) {
        reactor->Finish(ToGrpcStatus(st));
        return;
      }
      if (start.request_id().empty()) start.set_request_id(NewUuid());
      if (update->request().meta().update_id().empty()) {
        update->mutable_request()->mutable_meta()->set_update_id(NewUuid());
      }
      history_->UpdateWithStart(
          *ns, start, *update, deadline,
          [reactor, resp, update](absl::StatusOr<ws::StartWorkflowExecutionResponse> started,
                                  absl::StatusOr<ws::UpdateWorkflowExecutionResponse> updated) {
            if (!started.ok()) {
              reactor->Finish(MultiOperationFailure(started.status(), /*failed=*/0));
              return;
            }
            if (!updated.ok()) {
              reactor->Finish(MultiOperationFailure(updated.status(), /*failed=*/1));
              return;
            }
            *resp->add_responses()->mutable_start_workflow() = std::move(*started);
            *resp->add_responses()->mutable_update_workflow() = std::move(*updated);
            reactor->Finish(grpc::Status::OK);
          });
    });
    return reactor;
  }

  // The error of a multi-operation whose operation `failed` failed with `error`; the other
  // operation is reported aborted.
  static grpc::Status MultiOperationFailure(const absl::Status& error, int failed) {
    errordetails::MultiOperationExecutionFailure detail;
    for (int i = 0; i < 2; ++i) {
      auto* op = detail.add_statuses();
      if (i == failed) {
        const google::rpc::Status rpc = ToRpcStatus(error);
        op->set_code(rpc.code());
        op->set_message(rpc.message());
        *op->mutable_details() = rpc.details();
      } else {
        op->set_code(static_cast<int>(absl::StatusCode::kAborted));
        op->set_message("Operation was aborted.");
        op->add_details()->PackFrom(temporal::api::failure::v1::MultiOperationExecutionAborted());
      }
    }
    // The failed operation's code is the whole call's, as in Temporal.
    return ToGrpcStatus(WithDetail(
        absl::Status(error.code(), "Update-with-Start could not be executed."), detail));
  }

  ServerUnaryReactor* ShutdownWorker(CallbackServerContext* ctx, const ws::ShutdownWorkerRequest* req,
                                     ws::ShutdownWorkerResponse*) override {
    return Run(ctx, [this, req]() -> absl::Status {
      auto ns = NamespaceId(req->namespace_());
      if (!ns.ok()) return ns.status();
      if (!req->sticky_task_queue().empty()) matching_->ShutdownWorker(*ns, req->sticky_task_queue());
      return absl::OkStatus();
    });
  }

 private:
  NamespaceRegistry* const namespaces_;
  history::HistoryClient* const history_;
  matching::MatchingClient* const matching_;
  VisibilityCalls visibility_;
  ScheduleCalls schedules_;
  Executor* const executor_;
  Clock* const clock_;
  const ServerIdentity identity_;
  const ValidationLimits limits_;
};

}  // namespace

std::unique_ptr<ws::WorkflowService::CallbackService> NewWorkflowService(
    NamespaceRegistry* namespaces, history::HistoryClient* history,
    matching::MatchingClient* matching, persistence::VisibilityStore* visibility,
    Executor* executor, Clock* clock, ServerIdentity identity, ValidationLimits limits) {
  return std::make_unique<WorkflowServiceImpl>(namespaces, history, matching, visibility,
                                               executor, clock, std::move(identity), limits);
}

}  // namespace almanac::frontend
