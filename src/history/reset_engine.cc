// The history engine's reset: reads the base run's history up to the reset point and the
// signals and updates that came after it (in the base run and in the later runs of its
// chain, up to the current one), builds the new run (BuildResetRun), terminates the
// current run if it is running, and creates the new run as the workflow id's current one.
//
// Every run involved shares the workflow id, so one workflow lock covers the whole reset.
// The termination and the creation are two transactions: a reset that dies between them
// leaves the current run terminated and no new run; the caller's retry (same request id)
// then resets again from the base run.

#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "history/history_engine.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;

namespace {

// Who terminates the run a reset replaces, in Temporal's words.
constexpr char kResetterIdentity[] = "history-resetter";

// The run a closing event names as its successor, or empty.
std::string SuccessorOf(const HistoryEvent& e) {
  switch (e.event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
      return e.workflow_execution_completed_event_attributes().new_execution_run_id();
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
      return e.workflow_execution_failed_event_attributes().new_execution_run_id();
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
      return e.workflow_execution_timed_out_event_attributes().new_execution_run_id();
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
      return e.workflow_execution_continued_as_new_event_attributes().new_execution_run_id();
    default:
      return "";
  }
}

}  // namespace

absl::StatusOr<wsv1::ResetWorkflowExecutionResponse> HistoryEngine::ResetWorkflowExecution(
    const std::string& namespace_id, const wsv1::ResetWorkflowExecutionRequest& request) {
  const std::string& wid = request.workflow_execution().workflow_id();
  ShardContext& shard = ShardFor(namespace_id, wid);
  auto ctx = Context(namespace_id, wid);
  absl::MutexLock lock(&(*ctx)->mu);
  if (!shard.owned()) return shard.NotOwnedError();
  auto current = stores_->executions->GetCurrentRun(shard.id(), namespace_id, wid);
  if (absl::IsNotFound(current.status())) {
    return WorkflowNotFound(absl::StrCat("workflow not found for ID: ", wid));
  }
  if (!current.ok()) return current.status();
  const std::string base_run_id =
      request.workflow_execution().run_id().empty() ? current->run_id
                                                    : request.workflow_execution().run_id();
  const v1::RunKey base = MakeRunKey(namespace_id, wid, base_run_id);
  auto loaded = LoadRun(ctx->get(), shard, base);
  if (!loaded.ok()) return loaded.status();
  const int64_t point = request.workflow_task_finish_event_id();
  if (point <= 1 || point >= (*loaded)->state.next_event_id()) {
    return absl::InvalidArgumentError(
        "Workflow task finish ID must be > 1 && <= workflow last event ID.");
  }
  wsv1::ResetWorkflowExecutionResponse resp;
  // As Temporal: a request carrying the current run's create request id changes nothing. A
  // reset run inherits its base's, so a repeated reset request resets again.
  if (!request.request_id().empty() && current->create_request_id == request.request_id()) {
    resp.set_run_id(current->run_id);
    return resp;
  }
  // The copied events must end a batch of the base's history (events written together).
  auto batch_starts = stores_->executions->ListHistoryBatchStarts(shard.id(), base, 2, point + 1);
  if (!batch_starts.ok()) return batch_starts.status();
  if (batch_starts->empty() || batch_starts->back() != point) {
    return absl::InvalidArgumentError(absl::StrCat(
        "StateRebuilder unable to Rebuild mutable state to event ID: ", point - 1,
        ", version: 0, this event must be at the boundary"));
  }

  temporal::api::history::v1::History prefix;
  absl::Status st = stores_->executions->ReadHistory(shard.id(), base, 1, point, 0, &prefix);
  if (!st.ok()) return st;
  std::vector<HistoryEvent> base_events(prefix.events().begin(), prefix.events().end());

  // What to reapply: signals and updates, unless excluded (the deprecated reapply type
  // narrows the same choice).
  bool keep_signals = true;
  bool keep_updates = true;
  for (int t : request.reset_reapply_exclude_types()) {
    if (t == enums::RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL) keep_signals = false;
    if (t == enums::RESET_REAPPLY_EXCLUDE_TYPE_UPDATE) keep_updates = false;
  }
  if (request.reset_reapply_type() == enums::RESET_REAPPLY_TYPE_SIGNAL) keep_updates = false;
  if (request.reset_reapply_type() == enums::RESET_REAPPLY_TYPE_NONE) {
    keep_signals = false;
    keep_updates = false;
  }
  std::vector<HistoryEvent> reapply;
  std::string run = base_run_id;
  int64_t from = point;
  while (!run.empty()) {
    temporal::api::history::v1::History rest;
    st = stores_->executions->ReadHistory(shard.id(), MakeRunKey(namespace_id, wid, run), from,
                                          std::numeric_limits<int64_t>::max(), 0, &rest);
    if (!st.ok()) return st;
    std::string next;
    const bool in_base = run == base_run_id;
    for (auto& e : *rest.mutable_events()) {
      const auto type = e.event_type();
      // What the base run's children did after the point is recorded again for those the
      // reset run keeps (BuildResetRun picks them).
      const bool child_event = in_base &&
                               (type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED ||
                                type == enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED ||
                                type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED ||
                                type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED ||
                                type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED ||
                                type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT ||
                                type == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED);
      if ((type == enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED && keep_signals) ||
          ((type == enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED ||
            type == enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED) &&
           keep_updates) ||
          child_event) {
        reapply.push_back(std::move(e));
      } else if (std::string s = SuccessorOf(e); !s.empty()) {
        next = std::move(s);
      }
    }
    if (run == current->run_id) break;
    run = std::move(next);
    from = 1;
  }

  const absl::Time now = clock_->Now();
  ResetParams params;
  params.namespace_id = namespace_id;
  params.workflow_id = wid;
  params.run_id = NewUuid();
  params.request_id = (*loaded)->state.execution().create_request_id();
  params.base_run_id = base_run_id;
  params.reason = request.reason();
  params.now = now;
  params.base_batch_starts = std::move(*batch_starts);
  v1::MutableState ms;
  Effects fx;
  st = BuildResetRun(base_events, reapply, params, &ms, &fx);
  if (!st.ok()) return st;

  // The base run names the reset run, so that its children's reports find their way there.
  if (current->run_id != base_run_id) {
    st = UpdateRunLocked(ctx->get(), base, [&](v1::MutableState* b, Effects*, bool*) {
      b->mutable_execution()->set_reset_run_id(params.run_id);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
  }
  if (current->status == enums::WORKFLOW_EXECUTION_STATUS_RUNNING ||
      current->run_id == base_run_id) {
    st = UpdateRunLocked(
        ctx->get(), MakeRunKey(namespace_id, wid, current->run_id),
        [&](v1::MutableState* cur, Effects* cfx, bool*) {
          if (cur->execution().run_id() == base_run_id) {
            cur->mutable_execution()->set_reset_run_id(params.run_id);
          }
          TerminateWorkflow(request.reason(), {}, kResetterIdentity, now, cur, cfx);
          // The children go on with the reset run: no parent close policy (as Temporal).
          std::erase_if(cfx->transfer_tasks, [](const v1::TransferTask& t) {
            return t.kind() == v1::TransferTask::KIND_PARENT_CLOSE_POLICY;
          });
          return absl::OkStatus();
        });
    if (!st.ok()) return st;
  }
  WriteOptions options;
  options.create = true;
  options.current = persistence::ExecutionMutation::Current::kCreate;
  options.previous_run_id = current->run_id;
  st = Commit(ctx->get(), shard, nullptr, std::move(ms), std::move(fx), options, 0);
  if (!st.ok()) return st;
  resp.set_run_id(params.run_id);
  return resp;
}

}  // namespace almanac::history
