// The history engine's message paths: signals, cancellations sent between workflows,
// queries and updates.
//
// Signals and cancellations are events, written like any other mutation; one sent by a
// workflow is a transfer task of the sending run, delivered to its target (on any shard)
// and then recorded on the sender as delivered or failed.
//
// Queries and updates in flight live in memory, in the run's RunContext: a query until a
// worker answers it, an update until it is rejected, completed, or accepted (from then on
// the run's state holds it, so a caller that lost its answer with a restart finds it
// again). Each waits for a workflow task to carry it to a worker: the pending one, or, for
// an update on a run with none, a speculative task whose events are written only if the
// worker's answer writes anything. A query on a run with no workflow task pending (or a
// closed run) goes to a worker alone, as a query task through matching.

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "common/custom_search_attributes.h"
#include "history/history_engine.h"
#include "spdlog/spdlog.h"
#include "temporal/api/errordetails/v1/message.pb.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;
namespace updatepb = temporal::api::update::v1;
using temporal::api::history::v1::WorkflowExecutionCancelRequestedEventAttributes;
using temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes;

namespace {

// How long an update call waits for its stage before answering with the stage reached, as
// Temporal's long-poll interval. The SDKs then ask again.
constexpr absl::Duration kUpdateLongPoll = absl::Seconds(20);
// How long a query waits on the sticky queue before going to the normal one.
constexpr absl::Duration kStickyQueryWindow = absl::Seconds(5);
// Who sends the signals and cancellations that workflows ask for, in Temporal's words.
constexpr char kHistoryServiceIdentity[] = "history-service";

updatepb::Outcome ServerFailureOutcome(const char* message, const char* type) {
  updatepb::Outcome outcome;
  auto* f = outcome.mutable_failure();
  f->set_message(message);
  f->set_source("Server");
  f->mutable_application_failure_info()->set_type(type);
  f->mutable_application_failure_info()->set_non_retryable(true);
  return outcome;
}

updatepb::Outcome CompletedBeforeUpdateOutcome() {
  return ServerFailureOutcome(
      "Workflow Update failed because the Workflow completed before the Update completed.",
      "AcceptedUpdateCompletedWorkflow");
}

updatepb::Outcome UnprocessedUpdateOutcome() {
  return ServerFailureOutcome(
      "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow "
      "Update is not supported by the worker.",
      "UnprocessedUpdate");
}

int StageRank(enums::UpdateWorkflowExecutionLifecycleStage stage) {
  switch (stage) {
    case enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED:
      return 1;
    case enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED:
      return 2;
    case enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED:
      return 3;
    default:
      return 2;  // unspecified waits for acceptance, as Temporal's default
  }
}

// A worker's answer to a query, as the query's caller gets it.
absl::StatusOr<wsv1::QueryWorkflowResponse> QueryAnswer(enums::QueryResultType type,
                                                        const temporal::api::common::v1::Payloads& answer,
                                                        const std::string& error_message,
                                                        const temporal::api::failure::v1::Failure& failure) {
  if (type == enums::QUERY_RESULT_TYPE_ANSWERED) {
    wsv1::QueryWorkflowResponse resp;
    *resp.mutable_query_result() = answer;
    return resp;
  }
  temporal::api::errordetails::v1::QueryFailedFailure detail;
  *detail.mutable_failure() = failure;
  return WithDetail(absl::InvalidArgumentError(error_message), detail);
}

}  // namespace

// ---- Signals and cancellations ------------------------------------------------------------

absl::Status HistoryEngine::SignalRun(const std::string& namespace_id,
                                      const std::string& workflow_id, const std::string& run_id,
                                      WorkflowExecutionSignaledEventAttributes attrs,
                                      bool child_only) {
  return OnRun(namespace_id, workflow_id, run_id, [&](const std::string& resolved) {
    return SignalRunOnce(namespace_id, workflow_id, resolved, attrs, child_only);
  });
}

absl::Status HistoryEngine::SignalRunOnce(const std::string& namespace_id,
                                          const std::string& workflow_id,
                                          const std::string& run_id,
                                          const WorkflowExecutionSignaledEventAttributes& attrs,
                                          bool child_only) {
  ShardContext& shard = ShardFor(namespace_id, workflow_id);
  const absl::Time now = clock_->Now();
  const std::string request_id = attrs.request_id();
  auto ctx = Context(namespace_id, workflow_id);
  absl::MutexLock lock(&(*ctx)->mu);
  if (!request_id.empty()) {
    if (!shard.owned()) return shard.NotOwnedError();
    auto applied =
        stores_->executions->FindRequestId(shard.id(), namespace_id, workflow_id, request_id, now);
    if (!applied.ok()) return applied.status();
    if (applied->has_value()) return absl::OkStatus();  // applied once already
  }
  return UpdateRunLocked(
      ctx->get(), MakeRunKey(namespace_id, workflow_id, run_id),
      [&](v1::MutableState* ms, Effects* fx, bool*) {
        if (!IsRunning(*ms)) return WorkflowNotFound("workflow execution already completed");
        if (child_only && (ms->execution().parent_workflow_id() !=
                               attrs.external_workflow_execution().workflow_id() ||
                           ms->execution().parent_run_id() !=
                               attrs.external_workflow_execution().run_id())) {
          return WorkflowNotFound("workflow parent does not match");
        }
        SignalWorkflow(attrs, now, ms, fx);
        return absl::OkStatus();
      },
      ChainNeed::kNone, nullptr, request_id);
}

absl::Status HistoryEngine::CancelRun(const std::string& namespace_id,
                                      const std::string& workflow_id, const std::string& run_id,
                                      WorkflowExecutionCancelRequestedEventAttributes attrs,
                                      bool child_only, const std::string& first_run_id) {
  const absl::Time now = clock_->Now();
  return OnRun(namespace_id, workflow_id, run_id, [&](const std::string& resolved) {
    return UpdateRun(MakeRunKey(namespace_id, workflow_id, resolved),
                     [&](v1::MutableState* ms, Effects* fx, bool* write) {
                       const v1::ExecutionInfo& info = ms->execution();
                       if (!IsRunning(*ms)) {
                         return WorkflowNotFound("workflow execution already completed");
                       }
                       if (!first_run_id.empty() && info.first_execution_run_id() != first_run_id) {
                         return WorkflowNotFound("workflow execution not found in the chain");
                       }
                       if (child_only &&
                           (info.parent_workflow_id() !=
                                attrs.external_workflow_execution().workflow_id() ||
                            info.parent_run_id() != attrs.external_workflow_execution().run_id())) {
                         return WorkflowNotFound("workflow parent does not match");
                       }
                       *write = !info.cancel_requested();
                       RequestCancelWorkflow(attrs, now, ms, fx);
                       return absl::OkStatus();
                     });
  });
}

absl::Status HistoryEngine::SignalWorkflowExecution(
    const std::string& namespace_id, const wsv1::SignalWorkflowExecutionRequest& request) {
  WorkflowExecutionSignaledEventAttributes a;
  a.set_signal_name(request.signal_name());
  if (request.has_input()) *a.mutable_input() = request.input();
  a.set_identity(request.identity());
  if (request.has_header()) *a.mutable_header() = request.header();
  a.set_request_id(request.request_id());
  const auto& exec = request.workflow_execution();
  return SignalRun(namespace_id, exec.workflow_id(), exec.run_id(), std::move(a), false);
}

absl::StatusOr<wsv1::SignalWithStartWorkflowExecutionResponse>
HistoryEngine::SignalWithStartWorkflowExecution(
    const std::string& namespace_id, const wsv1::SignalWithStartWorkflowExecutionRequest& request) {
  wsv1::StartWorkflowExecutionRequest start;
  start.set_namespace_(request.namespace_());
  start.set_workflow_id(request.workflow_id());
  *start.mutable_workflow_type() = request.workflow_type();
  *start.mutable_task_queue() = request.task_queue();
  if (request.has_input()) *start.mutable_input() = request.input();
  if (request.has_workflow_execution_timeout()) {
    *start.mutable_workflow_execution_timeout() = request.workflow_execution_timeout();
  }
  if (request.has_workflow_run_timeout()) {
    *start.mutable_workflow_run_timeout() = request.workflow_run_timeout();
  }
  if (request.has_workflow_task_timeout()) {
    *start.mutable_workflow_task_timeout() = request.workflow_task_timeout();
  }
  start.set_identity(request.identity());
  start.set_request_id(request.request_id());
  start.set_workflow_id_reuse_policy(request.workflow_id_reuse_policy());
  start.set_workflow_id_conflict_policy(request.workflow_id_conflict_policy());
  if (request.has_retry_policy()) *start.mutable_retry_policy() = request.retry_policy();
  start.set_cron_schedule(request.cron_schedule());
  if (request.has_memo()) *start.mutable_memo() = request.memo();
  if (request.has_search_attributes()) *start.mutable_search_attributes() = request.search_attributes();
  if (request.has_header()) *start.mutable_header() = request.header();
  if (request.has_user_metadata()) *start.mutable_user_metadata() = request.user_metadata();
  if (request.has_priority()) *start.mutable_priority() = request.priority();

  WorkflowExecutionSignaledEventAttributes signal;
  signal.set_signal_name(request.signal_name());
  if (request.has_signal_input()) *signal.mutable_input() = request.signal_input();
  signal.set_identity(request.identity());
  if (request.has_header()) *signal.mutable_header() = request.header();
  signal.set_request_id(request.request_id());

  const std::string& wid = request.workflow_id();
  ShardContext& shard = ShardFor(namespace_id, wid);
  const absl::Time now = clock_->Now();
  auto ctx = Context(namespace_id, wid);
  absl::MutexLock lock(&(*ctx)->mu);
  if (!shard.owned()) return shard.NotOwnedError();
  auto current = stores_->executions->GetCurrentRun(shard.id(), namespace_id, wid);
  if (!current.ok() && !absl::IsNotFound(current.status())) return current.status();
  wsv1::SignalWithStartWorkflowExecutionResponse resp;
  if (current.ok()) {
    if (!request.request_id().empty() && current->create_request_id == request.request_id()) {
      resp.set_run_id(current->run_id);  // a retry of the request that started the run
      resp.set_started(true);
      return resp;
    }
    if (!request.request_id().empty()) {
      auto applied = stores_->executions->FindRequestId(shard.id(), namespace_id, wid,
                                                        request.request_id(), now);
      if (!applied.ok()) return applied.status();
      if (applied->has_value()) {
        resp.set_run_id(**applied);
        return resp;
      }
    }
    const bool running = current->status == enums::WORKFLOW_EXECUTION_STATUS_RUNNING;
    if (running && request.workflow_id_conflict_policy() !=
                       enums::WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING) {
      absl::Status st = UpdateRunLocked(
          ctx->get(), MakeRunKey(namespace_id, wid, current->run_id),
          [&](v1::MutableState* ms, Effects* fx, bool*) {
            if (!IsRunning(*ms)) return WorkflowNotFound("workflow execution already completed");
            SignalWorkflow(signal, now, ms, fx);
            // Signal-with-start ends a start delay (or any backoff before the first task).
            if (ms->execution().backoff_pending()) EndWorkflowBackoff(now, ms, fx);
            return absl::OkStatus();
          },
          ChainNeed::kNone, nullptr, request.request_id());
      if (!st.ok()) return st;
      resp.set_run_id(current->run_id);
      return resp;
    }
  }
  auto started = StartLocked(ctx->get(), namespace_id, start, &signal);
  if (!started.ok()) return started.status();
  resp.set_run_id(started->run_id());
  resp.set_started(started->started());
  return resp;
}

absl::Status HistoryEngine::ProcessExternalRequest(const v1::TransferTask& task) {
  const v1::RunKey& source = task.run();
  const bool is_signal = task.kind() == v1::TransferTask::KIND_SIGNAL_EXECUTION;
  // Is the request still pending? Then read its Initiated event, which holds the command.
  std::string request_id;
  {
    auto ctx = Context(source.namespace_id(), source.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(source.namespace_id(), source.workflow_id()), source);
    if (absl::IsNotFound(cached.status())) return absl::OkStatus();
    if (!cached.ok()) return cached.status();
    const v1::MutableState& ms = (*cached)->state;
    const auto& pending = is_signal ? ms.signals_requested() : ms.cancels_requested();
    auto it = pending.find(task.scheduled_event_id());
    if (!IsRunning(ms) || it == pending.end()) return absl::OkStatus();
    request_id = it->second.request_id();
  }
  const int32_t shard_id = ShardOf(source.namespace_id(), source.workflow_id());
  temporal::api::history::v1::History read;
  absl::Status st = stores_->executions->ReadHistory(shard_id, source, task.scheduled_event_id(),
                                                     task.scheduled_event_id() + 1, 1, &read);
  if (!st.ok()) return st;
  if (read.events_size() != 1) return absl::DataLossError("the request's initiated event is missing");
  const HistoryEvent initiated = read.events(0);

  temporal::api::common::v1::WorkflowExecution from;
  from.set_workflow_id(source.workflow_id());
  from.set_run_id(source.run_id());
  std::string target_ns_name;
  temporal::api::common::v1::WorkflowExecution target;
  bool child_only = false;
  if (is_signal) {
    const auto& a = initiated.signal_external_workflow_execution_initiated_event_attributes();
    target_ns_name = a.namespace_();
    target = a.workflow_execution();
    child_only = a.child_workflow_only();
  } else {
    const auto& a = initiated.request_cancel_external_workflow_execution_initiated_event_attributes();
    target_ns_name = a.namespace_();
    target = a.workflow_execution();
    child_only = a.child_workflow_only();
  }
  std::string target_ns = source.namespace_id();
  bool namespace_missing = false;
  if (!target_ns_name.empty()) {
    auto ns = namespaces_->GetByName(target_ns_name);
    if (ns.ok()) {
      target_ns = ns->info().id();
    } else if (absl::IsNotFound(ns.status())) {
      namespace_missing = true;
    } else {
      return ns.status();
    }
  }
  bool target_missing = false;
  if (!namespace_missing) {
    if (is_signal) {
      const auto& a = initiated.signal_external_workflow_execution_initiated_event_attributes();
      WorkflowExecutionSignaledEventAttributes signal;
      signal.set_signal_name(a.signal_name());
      if (a.has_input()) *signal.mutable_input() = a.input();
      signal.set_identity(kHistoryServiceIdentity);
      if (a.has_header()) *signal.mutable_header() = a.header();
      *signal.mutable_external_workflow_execution() = from;
      signal.set_request_id(request_id);
      st = SignalRun(target_ns, target.workflow_id(), target.run_id(), std::move(signal), child_only);
    } else {
      const auto& a = initiated.request_cancel_external_workflow_execution_initiated_event_attributes();
      WorkflowExecutionCancelRequestedEventAttributes cancel;
      cancel.set_cause(a.reason());
      cancel.set_external_initiated_event_id(initiated.event_id());
      *cancel.mutable_external_workflow_execution() = from;
      cancel.set_identity(kHistoryServiceIdentity);
      st = CancelRun(target_ns, target.workflow_id(), target.run_id(), std::move(cancel), child_only);
    }
    if (absl::IsNotFound(st)) {
      target_missing = true;
    } else if (!st.ok()) {
      return st;  // retried: the target's request id makes a repeat harmless
    }
  }
  const absl::Time now = clock_->Now();
  st = UpdateRun(source, [&](v1::MutableState* ms, Effects* fx, bool* write) {
    const size_t before = is_signal ? ms->signals_requested_size() : ms->cancels_requested_size();
    if (is_signal) {
      CompleteExternalSignal(
          initiated,
          namespace_missing
              ? enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
              : target_missing
                    ? enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
                    : enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_UNSPECIFIED,
          now, ms, fx);
    } else {
      CompleteExternalCancel(
          initiated,
          namespace_missing
              ? enums::CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
              : target_missing
                    ? enums::CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
                    : enums::CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_UNSPECIFIED,
          now, ms, fx);
    }
    const size_t after = is_signal ? ms->signals_requested_size() : ms->cancels_requested_size();
    *write = after != before;
    return absl::OkStatus();
  });
  return absl::IsNotFound(st) ? absl::OkStatus() : st;
}

// ---- Update answers -----------------------------------------------------------------------

// Turns where an update stands into the answer of the call that waited for it (an update
// call or a poll: the two responses share their fields).
template <typename Response>
std::function<void(absl::StatusOr<HistoryEngine::UpdateStatus>)> HistoryEngine::AnswerWith(
    const v1::RunKey& run, const std::string& update_id,
    std::function<void(absl::StatusOr<Response>)> done) {
  return [run, update_id, done = std::move(done)](absl::StatusOr<UpdateStatus> s) {
    if (!s.ok()) {
      done(s.status());
      return;
    }
    Response resp;
    auto* ref = resp.mutable_update_ref();
    ref->mutable_workflow_execution()->set_workflow_id(run.workflow_id());
    ref->mutable_workflow_execution()->set_run_id(run.run_id());
    ref->set_update_id(update_id);
    if (s->outcome.has_value()) *resp.mutable_outcome() = std::move(*s->outcome);
    resp.set_stage(s->stage);
    done(std::move(resp));
  };
}

// ---- Run contexts -------------------------------------------------------------------------

HistoryEngine::RunContext& HistoryEngine::RunContextOf(WorkflowContext* ctx,
                                                       const std::string& run_id) {
  auto [it, inserted] = ctx->runs.try_emplace(run_id);
  if (inserted) ++ctx->waiting;
  return it->second;
}

void HistoryEngine::DropRunContextIfEmpty(WorkflowContext* ctx, const std::string& run_id) {
  auto it = ctx->runs.find(run_id);
  if (it == ctx->runs.end() || !it->second.empty()) return;
  ctx->runs.erase(it);
  --ctx->waiting;
}

// ---- Updates ------------------------------------------------------------------------------

absl::Status HistoryEngine::CheckUpdateLimits(const v1::MutableState& ms, const RunContext& rc) const {
  int admitted = 0;
  for (const auto& [id, pending] : rc.updates) {
    if (pending.stage != PendingUpdate::Stage::kAccepted) ++admitted;
  }
  int running = 0;
  for (const auto& [id, info] : ms.updates()) {
    if (info.completed_event_id() == 0) ++running;
  }
  const int max_in_flight = options_.limits.max_in_flight_updates;
  if (max_in_flight > 0 && admitted + running >= max_in_flight) {
    temporal::api::errordetails::v1::ResourceExhaustedFailure detail;
    detail.set_cause(enums::RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT);
    detail.set_scope(enums::RESOURCE_EXHAUSTED_SCOPE_NAMESPACE);
    return WithDetail(
        absl::ResourceExhaustedError(absl::StrCat(
            "limit on number of concurrent in-flight updates has been reached (", max_in_flight, ")")),
        detail);
  }
  const int max_total = options_.limits.max_total_updates;
  if (max_total > 0 && admitted + ms.updates_size() >= max_total) {
    return absl::FailedPreconditionError(absl::StrCat(
        "The limit on the total number of distinct updates in this workflow has been reached (",
        max_total,
        "). Make sure any duplicate updates share an Update ID so the server can deduplicate "
        "them, and consider rejecting updates that you aren't going to process. You can also "
        "Continue-as-New to avoid this; we recommend you check Continue-as-New Suggested in "
        "your Workflow."));
  }
  return absl::OkStatus();
}

void HistoryEngine::UpdateWorkflowExecution(const std::string& namespace_id,
                                            const wsv1::UpdateWorkflowExecutionRequest& request,
                                            absl::Time deadline, UpdateCallback done) {
  const auto& exec = request.workflow_execution();
  auto run_id = ResolveRunId(namespace_id, exec.workflow_id(), exec.run_id());
  if (!run_id.ok()) {
    done(run_id.status());
    return;
  }
  const v1::RunKey run = MakeRunKey(namespace_id, exec.workflow_id(), *run_id);
  const std::string update_id = request.request().meta().update_id();
  WaitForUpdate(namespace_id, run, update_id, &request.request(),
                request.wait_policy().lifecycle_stage(), deadline,
                AnswerWith<wsv1::UpdateWorkflowExecutionResponse>(run, update_id, std::move(done)));
}

void HistoryEngine::PollWorkflowExecutionUpdate(
    const std::string& namespace_id, const wsv1::PollWorkflowExecutionUpdateRequest& request,
    absl::Time deadline, PollUpdateCallback done) {
  const auto& ref = request.update_ref();
  const auto& exec = ref.workflow_execution();
  auto run_id = ResolveRunId(namespace_id, exec.workflow_id(), exec.run_id());
  if (!run_id.ok()) {
    done(run_id.status());
    return;
  }
  const v1::RunKey run = MakeRunKey(namespace_id, exec.workflow_id(), *run_id);
  const std::string update_id = ref.update_id();
  WaitForUpdate(namespace_id, run, update_id, nullptr, request.wait_policy().lifecycle_stage(),
                deadline,
                AnswerWith<wsv1::PollWorkflowExecutionUpdateResponse>(run, update_id, std::move(done)));
}

void HistoryEngine::UpdateWithStart(const std::string& namespace_id,
                                    const wsv1::StartWorkflowExecutionRequest& start,
                                    const wsv1::UpdateWorkflowExecutionRequest& update,
                                    absl::Time deadline, UpdateWithStartCallback done) {
  const std::string update_id = update.request().meta().update_id();
  absl::StatusOr<wsv1::StartWorkflowExecutionResponse> started;
  v1::RunKey run;
  Admission admission;
  UpdateStatusCallback answer;
  {
    auto ctx = Context(namespace_id, start.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    started = StartLocked(ctx->get(), namespace_id, start, nullptr);
    if (!started.ok()) {
      done(started, absl::AbortedError("Operation was aborted."));
      return;
    }
    run = MakeRunKey(namespace_id, start.workflow_id(), started->run_id());
    answer = AnswerWith<wsv1::UpdateWorkflowExecutionResponse>(
        run, update_id, [done, started](absl::StatusOr<wsv1::UpdateWorkflowExecutionResponse> r) {
          done(started, std::move(r));
        });
    // Still under the workflow's lock: no workflow task of the run has started yet.
    admission = AdmitUpdateLocked(ctx->get(), run, update_id, &update.request(),
                                  update.wait_policy().lifecycle_stage(), answer);
  }
  AwaitUpdate(std::move(admission), namespace_id, run, update_id, deadline, std::move(answer));
}

void HistoryEngine::WaitForUpdate(const std::string& namespace_id, const v1::RunKey& run,
                                  const std::string& update_id, const updatepb::Request* request,
                                  enums::UpdateWorkflowExecutionLifecycleStage wanted,
                                  absl::Time deadline, UpdateStatusCallback done) {
  Admission admission;
  {
    auto ctx = Context(namespace_id, run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    admission = AdmitUpdateLocked(ctx->get(), run, update_id, request, wanted, done);
  }
  AwaitUpdate(std::move(admission), namespace_id, run, update_id, deadline, std::move(done));
}

HistoryEngine::Admission HistoryEngine::AdmitUpdateLocked(
    WorkflowContext* ctx, const v1::RunKey& run, const std::string& update_id,
    const updatepb::Request* request, enums::UpdateWorkflowExecutionLifecycleStage wanted,
    const UpdateStatusCallback& done) {
  Admission out;
  ShardContext& shard = ShardFor(run.namespace_id(), run.workflow_id());
  auto cached = LoadRun(ctx, shard, run);
  if (!cached.ok()) {
    out.error = cached.status();
    return out;
  }
  const v1::MutableState& ms = (*cached)->state;
  RunContext& rc = RunContextOf(ctx, run.run_id());
  PendingUpdate* pending = nullptr;
  if (auto it = rc.updates.find(update_id); it != rc.updates.end()) pending = &it->second;
  if (pending == nullptr) {
    auto known = ms.updates().find(update_id);
    if (known != ms.updates().end()) {
      if (known->second.completed_event_id() != 0) {
        out.completed_event_id = known->second.completed_event_id();
      } else if (!IsRunning(ms)) {
        out.answer = UpdateStatus{enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
                                  CompletedBeforeUpdateOutcome()};
      } else {
        pending = &rc.updates[update_id];
        pending->stage = PendingUpdate::Stage::kAccepted;
      }
    } else if (request == nullptr) {
      out.error = absl::NotFoundError(absl::StrCat("update \"", update_id, "\" not found"));
    } else if (!IsRunning(ms)) {
      out.error = WorkflowNotFound("workflow execution already completed");
    } else if (absl::Status limit = CheckUpdateLimits(ms, rc); !limit.ok()) {
      out.error = limit;
    } else {
      pending = &rc.updates[update_id];
      pending->request = *request;
      if (!ms.has_workflow_task()) {
        // No task will carry it: schedule one that leaves no trace if it is rejected.
        const absl::Time now = clock_->Now();
        absl::Status st = UpdateRunLocked(ctx, run,
                                          [&](v1::MutableState* m, Effects* fx, bool* write) {
                                            ScheduleSpeculativeWorkflowTask(now, m, fx);
                                            *write = m->has_workflow_task();
                                            return absl::OkStatus();
                                          });
        if (!st.ok()) {
          rc.updates.erase(update_id);
          pending = nullptr;
          out.error = st;
        }
      }
    }
  }
  if (pending != nullptr) {
    const auto stage = pending->stage == PendingUpdate::Stage::kAccepted
                           ? enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
                           : enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED;
    if (StageRank(stage) >= StageRank(wanted)) {
      out.answer = UpdateStatus{stage, std::nullopt};
    } else {
      out.waiter = std::make_shared<UpdateWaiter>();
      out.waiter->wanted = wanted;
      out.waiter->done = done;
      pending->waiters.push_back(out.waiter);
    }
  }
  DropRunContextIfEmpty(ctx, run.run_id());
  return out;
}

void HistoryEngine::AwaitUpdate(Admission admission, const std::string& namespace_id,
                                const v1::RunKey& run, const std::string& update_id,
                                absl::Time deadline, UpdateStatusCallback done) {
  if (!admission.error.ok()) {
    done(admission.error);
    return;
  }
  if (admission.answer.has_value()) {
    done(std::move(*admission.answer));
    return;
  }
  if (const int64_t completed_event_id = admission.completed_event_id; completed_event_id != 0) {
    temporal::api::history::v1::History read;
    absl::Status st = stores_->executions->ReadHistory(
        ShardOf(namespace_id, run.workflow_id()), run, completed_event_id, completed_event_id + 1,
        1, &read);
    if (!st.ok()) {
      done(st);
      return;
    }
    if (read.events_size() != 1) {
      done(absl::DataLossError("the update's completed event is missing"));
      return;
    }
    done(UpdateStatus{
        enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
        read.events(0).workflow_execution_update_completed_event_attributes().outcome()});
    return;
  }
  std::shared_ptr<UpdateWaiter> waiter = std::move(admission.waiter);
  // Parked: answered by ResolveUpdates, or here at the deadline with the stage reached.
  const absl::Time until = std::min(deadline, clock_->Now() + kUpdateLongPoll);
  deadlines_->Schedule(until, [this, waiter, namespace_id, run, update_id] {
    if (waiter->fired.exchange(true)) return;
    executor_->Post([this, waiter, namespace_id, run, update_id] {
      auto stage = enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED;
      {
        auto ctx = Context(namespace_id, run.workflow_id());
        absl::MutexLock lock(&(*ctx)->mu);
        auto rit = (*ctx)->runs.find(run.run_id());
        if (rit != (*ctx)->runs.end()) {
          auto uit = rit->second.updates.find(update_id);
          if (uit != rit->second.updates.end()) {
            auto& ws = uit->second.waiters;
            ws.erase(std::remove(ws.begin(), ws.end(), waiter), ws.end());
            if (uit->second.stage == PendingUpdate::Stage::kAccepted) {
              stage = enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED;
            }
          }
        }
      }
      waiter->done(UpdateStatus{stage, std::nullopt});
    });
  });
}

void HistoryEngine::AttachMessages(WorkflowContext* ctx, const std::string& run_id,
                                   int64_t stamp, int64_t started_event_id,
                                   wsv1::PollWorkflowTaskQueueResponse* resp) {
  auto rit = ctx->runs.find(run_id);
  if (rit == ctx->runs.end()) return;
  RunContext& rc = rit->second;
  for (auto& [update_id, pending] : rc.updates) {
    if (pending.stage == PendingUpdate::Stage::kAccepted) continue;
    // Admitted, or sent to a task that ended without an answer: this task carries it.
    pending.stage = PendingUpdate::Stage::kSent;
    pending.sent_stamp = stamp;
    auto* m = resp->add_messages();
    m->set_id(absl::StrCat(update_id, "/request"));
    m->set_protocol_instance_id(update_id);
    m->set_event_id(started_event_id - 1);
    m->mutable_body()->PackFrom(pending.request);
  }
  for (auto& [query_id, pending] : rc.queries) {
    if (pending.answered->load()) continue;
    pending.sent_stamp = stamp;
    (*resp->mutable_queries())[query_id] = pending.query;
  }
}

CompletionContext HistoryEngine::CompletionContextFor(WorkflowContext* ctx, const v1::RunKey& run,
                                                      int64_t stamp) {
  CompletionContext out;
  auto ns = namespaces_->GetById(run.namespace_id());
  if (ns.ok()) {
    out.namespace_name = ns->info().name();
    out.search_attributes = SearchAttributeSchemaOf(*ns);
  }
  auto rit = ctx->runs.find(run.run_id());
  if (rit == ctx->runs.end()) return out;
  for (const auto& [update_id, pending] : rit->second.updates) {
    if (pending.stage == PendingUpdate::Stage::kSent && pending.sent_stamp == stamp) {
      out.update_requests[update_id] = pending.request;
    } else if (pending.stage != PendingUpdate::Stage::kAccepted) {
      out.updates_waiting = true;
    }
  }
  return out;
}

void HistoryEngine::ResolveUpdates(WorkflowContext* ctx, const v1::RunKey& run,
                                   const std::vector<UpdateResult>& results, bool closed,
                                   bool continued) {
  const std::string& run_id = run.run_id();
  auto rit = ctx->runs.find(run_id);
  if (rit == ctx->runs.end()) return;
  auto& updates = rit->second.updates;
  std::vector<std::pair<std::shared_ptr<UpdateWaiter>, absl::StatusOr<UpdateStatus>>> answers;
  auto finish = [&](std::map<std::string, PendingUpdate>::iterator it,
                    absl::StatusOr<UpdateStatus> status) {
    for (auto& w : it->second.waiters) answers.emplace_back(w, status);
    updates.erase(it);
  };
  for (const auto& r : results) {
    auto it = updates.find(r.update_id);
    if (it == updates.end()) continue;
    switch (r.kind) {
      case UpdateResult::Kind::kAccepted: {
        it->second.stage = PendingUpdate::Stage::kAccepted;
        auto& ws = it->second.waiters;
        for (auto w = ws.begin(); w != ws.end();) {
          if (StageRank((*w)->wanted) <= 2) {
            answers.emplace_back(*w, UpdateStatus{
                                         enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED,
                                         std::nullopt});
            w = ws.erase(w);
          } else {
            ++w;
          }
        }
        break;
      }
      case UpdateResult::Kind::kRejected:
      case UpdateResult::Kind::kCompleted:
        finish(it, UpdateStatus{enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
                                r.outcome});
        break;
    }
  }
  if (closed && !rit->second.queries.empty()) {
    // No workflow task will carry them now: each goes to a worker as a query task.
    std::vector<std::string> query_ids;
    for (const auto& [query_id, q] : rit->second.queries) query_ids.push_back(query_id);
    executor_->Post([this, run, query_ids] { DispatchWaitingQueries(run, query_ids); });
  }
  if (closed) {
    while (!updates.empty()) {
      auto it = updates.begin();
      if (it->second.stage == PendingUpdate::Stage::kAccepted) {
        finish(it, UpdateStatus{enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED,
                                CompletedBeforeUpdateOutcome()});
      } else if (continued) {
        // Retryable: the caller's retry reaches the successor run.
        temporal::api::errordetails::v1::ResourceExhaustedFailure detail;
        detail.set_cause(enums::RESOURCE_EXHAUSTED_CAUSE_BUSY_WORKFLOW);
        detail.set_scope(enums::RESOURCE_EXHAUSTED_SCOPE_NAMESPACE);
        finish(it, WithDetail(absl::ResourceExhaustedError(
                                  "workflow operation can not be applied because workflow is "
                                  "closing"),
                              detail));
      } else {
        finish(it, WorkflowNotFound("workflow update was aborted by closing workflow"));
      }
    }
  }
  DropRunContextIfEmpty(ctx, run_id);
  for (auto& [w, status] : answers) {
    if (w->fired.exchange(true)) continue;
    executor_->Post([w, status] { w->done(status); });
  }
}

std::vector<std::string> HistoryEngine::SettleAfterCompletion(
    WorkflowContext* ctx, const v1::RunKey& run, int64_t stamp,
    const wsv1::RespondWorkflowTaskCompletedRequest& request, bool task_pending) {
  const std::string& run_id = run.run_id();
  std::vector<std::string> to_send;
  auto rit = ctx->runs.find(run_id);
  if (rit == ctx->runs.end()) return to_send;
  RunContext& rc = rit->second;
  // Updates the task carried and the worker neither accepted nor rejected.
  std::vector<UpdateResult> ignored;
  for (const auto& [update_id, pending] : rc.updates) {
    if (pending.stage == PendingUpdate::Stage::kSent && pending.sent_stamp == stamp) {
      ignored.push_back({update_id, UpdateResult::Kind::kRejected, UnprocessedUpdateOutcome()});
    }
  }
  for (auto it = rc.queries.begin(); it != rc.queries.end();) {
    PendingQuery& q = it->second;
    auto answered = request.query_results().find(it->first);
    if (answered != request.query_results().end()) {
      if (!q.answered->exchange(true)) {
        const auto& r = answered->second;
        executor_->Post([done = q.done, answer = QueryAnswer(r.result_type(), r.answer(),
                                                             r.error_message(), r.failure())] {
          done(answer);
        });
      }
      it = rc.queries.erase(it);
      continue;
    }
    if (q.answered->load()) {
      it = rc.queries.erase(it);
      continue;
    }
    // Not answered by this task: the next one carries it, or, with none, a query task.
    if (!task_pending) to_send.push_back(it->first);
    ++it;
  }
  if (!ignored.empty()) ResolveUpdates(ctx, run, ignored, false, false);
  DropRunContextIfEmpty(ctx, run_id);
  return to_send;
}

// ---- Queries ------------------------------------------------------------------------------

void HistoryEngine::QueryWorkflow(const std::string& namespace_id,
                                  const wsv1::QueryWorkflowRequest& request, absl::Time deadline,
                                  QueryCallback done) {
  const auto& exec = request.execution();
  auto run_id = ResolveRunId(namespace_id, exec.workflow_id(), exec.run_id());
  if (!run_id.ok()) {
    done(run_id.status());
    return;
  }
  const v1::RunKey run = MakeRunKey(namespace_id, exec.workflow_id(), *run_id);
  const std::string query_id = NewUuid();
  std::optional<enums::WorkflowExecutionStatus> rejected;
  bool buffered = false;
  auto answered = std::make_shared<std::atomic<bool>>(false);
  {
    auto ctx = Context(namespace_id, exec.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(namespace_id, exec.workflow_id()), run);
    if (!cached.ok()) {
      done(cached.status());
      return;
    }
    const v1::MutableState& ms = (*cached)->state;
    const auto status = ms.execution().status();
    const auto condition = request.query_reject_condition();
    if ((condition == enums::QUERY_REJECT_CONDITION_NOT_OPEN &&
         status != enums::WORKFLOW_EXECUTION_STATUS_RUNNING) ||
        (condition == enums::QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY &&
         status != enums::WORKFLOW_EXECUTION_STATUS_RUNNING &&
         status != enums::WORKFLOW_EXECUTION_STATUS_COMPLETED)) {
      rejected = status;
    } else if (IsRunning(ms) && ms.has_workflow_task()) {
      // A workflow task is pending: the query rides on it (or on the next one).
      PendingQuery& q = RunContextOf(ctx->get(), run.run_id()).queries[query_id];
      q.query = request.query();
      q.answered = answered;
      q.done = done;
      q.deadline = deadline;
      buffered = true;
    }
  }
  if (rejected.has_value()) {
    wsv1::QueryWorkflowResponse resp;
    resp.mutable_query_rejected()->set_status(*rejected);
    done(std::move(resp));
    return;
  }
  if (!buffered) {
    DispatchQuery(namespace_id, run, query_id, request.query(), deadline, std::move(done));
    return;
  }
  deadlines_->Schedule(deadline, [this, answered, done, namespace_id, run, query_id] {
    if (answered->exchange(true)) return;
    executor_->Post([this, done, namespace_id, run, query_id] {
      {
        auto ctx = Context(namespace_id, run.workflow_id());
        absl::MutexLock lock(&(*ctx)->mu);
        auto rit = (*ctx)->runs.find(run.run_id());
        if (rit != (*ctx)->runs.end()) {
          rit->second.queries.erase(query_id);
          DropRunContextIfEmpty(ctx->get(), run.run_id());
        }
      }
      done(absl::DeadlineExceededError("no worker answered the query in time"));
    });
  });
}

void HistoryEngine::DispatchWaitingQueries(const v1::RunKey& run,
                                           const std::vector<std::string>& query_ids) {
  for (const auto& query_id : query_ids) {
    PendingQuery q;
    {
      auto ctx = Context(run.namespace_id(), run.workflow_id());
      absl::MutexLock lock(&(*ctx)->mu);
      auto rit = (*ctx)->runs.find(run.run_id());
      if (rit == (*ctx)->runs.end()) continue;
      auto qit = rit->second.queries.find(query_id);
      if (qit == rit->second.queries.end()) continue;
      q = std::move(qit->second);
      rit->second.queries.erase(qit);
      DropRunContextIfEmpty(ctx->get(), run.run_id());
    }
    // The query task answers it from now on; its deadline alarm finds it answered.
    if (q.answered->exchange(true)) continue;
    DispatchQuery(run.namespace_id(), run, query_id, q.query, q.deadline, q.done);
  }
}

void HistoryEngine::DispatchQuery(const std::string& namespace_id, const v1::RunKey& run,
                                  const std::string& query_id,
                                  temporal::api::query::v1::WorkflowQuery query,
                                  absl::Time deadline, QueryCallback done) {
  ShardContext& shard = ShardFor(namespace_id, run.workflow_id());
  std::string sticky_queue;
  std::string normal_queue;
  int64_t next_event_id = 0;
  wsv1::PollWorkflowTaskQueueResponse task;
  {
    auto ctx = Context(namespace_id, run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), shard, run);
    if (!cached.ok()) {
      done(cached.status());
      return;
    }
    const v1::MutableState& ms = (*cached)->state;
    if (IsRunning(ms)) sticky_queue = ms.sticky().task_queue();
    normal_queue = ms.execution().task_queue();
    next_event_id = ms.next_event_id();
    task.mutable_workflow_type()->set_name(ms.execution().workflow_type());
    task.set_previous_started_event_id(
        ms.execution().last_completed_workflow_task_started_event_id());
  }
  v1::TaskToken token;
  token.set_namespace_id(namespace_id);
  token.set_workflow_id(run.workflow_id());
  token.set_run_id(run.run_id());
  token.set_query_id(query_id);
  task.set_task_token(token.SerializeAsString());
  task.mutable_workflow_execution()->set_workflow_id(run.workflow_id());
  task.mutable_workflow_execution()->set_run_id(run.run_id());
  *task.mutable_query() = std::move(query);
  task.mutable_history();  // present, though empty for a sticky worker: the SDKs require it
  task.mutable_workflow_execution_task_queue()->set_name(normal_queue);
  task.mutable_workflow_execution_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);

  auto answer = [done](absl::StatusOr<wsv1::RespondQueryTaskCompletedRequest> r) {
    if (!r.ok()) {
      done(r.status());
      return;
    }
    done(QueryAnswer(r->completed_type(), r->query_result(), r->error_message(), r->failure()));
  };
  // To the normal queue, with the whole history: any worker can replay it to answer.
  auto send_normal = [this, namespace_id, run, query_id, normal_queue, next_event_id, deadline,
                      answer, shard_id = shard.id()](wsv1::PollWorkflowTaskQueueResponse t) {
    absl::Status st = FillHistory(shard_id, run, 1, next_event_id - 1, true, &t);
    if (!st.ok()) {
      answer(st);
      return;
    }
    matching_->DispatchQueryTask(namespace_id, normal_queue, false, query_id, std::move(t),
                                 deadline, answer);
  };
  if (sticky_queue.empty()) {
    send_normal(std::move(task));
    return;
  }
  // The sticky worker holds the run in its cache: it gets no history, as in Temporal, and
  // the normal queue takes over if it is gone or slow.
  const absl::Time sticky_deadline = std::min(deadline, clock_->Now() + kStickyQueryWindow);
  matching_->DispatchQueryTask(
      namespace_id, sticky_queue, true, query_id, task, sticky_deadline,
      [this, task, deadline, answer, send_normal](
          absl::StatusOr<wsv1::RespondQueryTaskCompletedRequest> r) {
        const bool retry = !r.ok() &&
                           (absl::IsFailedPrecondition(r.status()) ||
                            absl::IsDeadlineExceeded(r.status())) &&
                           clock_->Now() < deadline;
        if (!retry) {
          answer(std::move(r));
          return;
        }
        executor_->Post([task, send_normal] { send_normal(task); });
      });
}

}  // namespace almanac::history
