// The history engine's child workflow paths: starting the child a parent's command asked
// for, telling the parent how its child closed, and applying a closed parent's close policy
// to its children.
//
// Each is a transfer task of one run that acts on another (on any shard), then records the
// outcome on the first. No two workflow locks are held at once: each step takes one run's
// lock, reads or mutates it, and lets go. A step that is repeated (the task runs again after
// a crash) finds its work done: the child's start is de-duplicated by its request id, the
// parent's records check the child's pending info, and terminate and cancel of a child that
// is gone answer NotFound, which ends the task.

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_details.h"
#include "history/history_engine.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;
using temporal::api::common::v1::WorkflowExecution;
using temporal::api::history::v1::WorkflowExecutionCancelRequestedEventAttributes;

namespace {

// Who acts on children for a closed parent, and why, in Temporal's words.
constexpr char kHistoryServiceIdentity[] = "history-service";
constexpr char kParentClosePolicyReason[] = "by parent close policy";
constexpr char kResetterIdentity[] = "history-resetter";
// How many resets a child's report follows from the run that started it (Temporal's limit).
constexpr int kMaxResetHops = 100;

}  // namespace

absl::StatusOr<HistoryEvent> HistoryEngine::ReadEvent(const v1::RunKey& run, int64_t event_id) {
  temporal::api::history::v1::History read;
  absl::Status st = stores_->executions->ReadHistory(ShardOf(run.namespace_id(), run.workflow_id()),
                                                     run, event_id, event_id + 1, 1, &read);
  if (!st.ok()) return st;
  if (read.events_size() != 1 || read.events(0).event_id() != event_id) {
    return absl::DataLossError(absl::StrCat("event ", event_id, " of ", run.workflow_id(), "/",
                                            run.run_id(), " is missing"));
  }
  return std::move(*read.mutable_events(0));
}

absl::Status HistoryEngine::ProcessStartChild(const v1::TransferTask& task) {
  const v1::RunKey& parent = task.run();
  const int64_t initiated_id = task.scheduled_event_id();
  // Is the child still to start? Then read what the command asked for.
  v1::ChildExecutionInfo child;
  ParentInfo parent_info;
  {
    auto ctx = Context(parent.namespace_id(), parent.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(parent.namespace_id(), parent.workflow_id()), parent);
    if (absl::IsNotFound(cached.status())) return absl::OkStatus();
    if (!cached.ok()) return cached.status();
    const v1::MutableState& ms = (*cached)->state;
    auto it = ms.children().find(initiated_id);
    if (!IsRunning(ms) || it == ms.children().end() || !it->second.run_id().empty()) {
      return absl::OkStatus();
    }
    child = it->second;
    const v1::ExecutionInfo& info = ms.execution();
    parent_info.namespace_id = parent.namespace_id();
    parent_info.workflow_id = parent.workflow_id();
    parent_info.run_id = parent.run_id();
    parent_info.initiated_event_id = initiated_id;
    parent_info.root_workflow_id = info.root_workflow_id().empty() ? info.workflow_id()
                                                                   : info.root_workflow_id();
    parent_info.root_run_id = info.root_run_id().empty() ? info.run_id() : info.root_run_id();
  }
  auto initiated = ReadEvent(parent, initiated_id);
  if (!initiated.ok()) return initiated.status();
  const auto& a = initiated->start_child_workflow_execution_initiated_event_attributes();
  auto parent_ns = namespaces_->GetById(parent.namespace_id());
  parent_info.namespace_name = parent_ns.ok() ? parent_ns->info().name() : parent.namespace_id();

  const absl::Time now = clock_->Now();
  auto record_failure = [&](enums::StartChildWorkflowExecutionFailedCause cause) {
    absl::Status st = UpdateRun(parent, [&](v1::MutableState* ms, Effects* fx, bool* write) {
      *write = RecordStartChildFailed(*initiated, cause, now, ms, fx);
      return absl::OkStatus();
    });
    return absl::IsNotFound(st) ? absl::OkStatus() : st;
  };
  auto child_ns = namespaces_->GetById(child.namespace_id());
  if (absl::IsNotFound(child_ns.status())) {
    return record_failure(enums::START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND);
  }
  if (!child_ns.ok()) return child_ns.status();

  wsv1::StartWorkflowExecutionRequest start;
  start.set_namespace_(child_ns->info().name());
  start.set_workflow_id(a.workflow_id());
  *start.mutable_workflow_type() = a.workflow_type();
  *start.mutable_task_queue() = a.task_queue();
  if (a.has_input()) *start.mutable_input() = a.input();
  if (a.has_workflow_execution_timeout()) {
    *start.mutable_workflow_execution_timeout() = a.workflow_execution_timeout();
  }
  if (a.has_workflow_run_timeout()) *start.mutable_workflow_run_timeout() = a.workflow_run_timeout();
  if (a.has_workflow_task_timeout()) {
    *start.mutable_workflow_task_timeout() = a.workflow_task_timeout();
  }
  // The same request id on every attempt: a repeated task finds the child it started.
  start.set_request_id(child.create_request_id());
  start.set_workflow_id_reuse_policy(a.workflow_id_reuse_policy());
  start.set_workflow_id_conflict_policy(enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL);
  if (a.has_retry_policy()) *start.mutable_retry_policy() = a.retry_policy();
  start.set_cron_schedule(a.cron_schedule());
  if (a.has_memo()) *start.mutable_memo() = a.memo();
  if (a.has_search_attributes()) *start.mutable_search_attributes() = a.search_attributes();
  if (a.has_header()) *start.mutable_header() = a.header();
  if (initiated->has_user_metadata()) *start.mutable_user_metadata() = initiated->user_metadata();
  if (a.has_priority()) *start.mutable_priority() = a.priority();

  std::string child_run_id;
  {
    auto ctx = Context(child.namespace_id(), a.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto started = StartLocked(ctx->get(), child.namespace_id(), start, nullptr, &parent_info);
    if (absl::IsAlreadyExists(started.status())) {
      return record_failure(
          enums::START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS);
    }
    if (!started.ok()) return started.status();
    child_run_id = started->run_id();
  }

  bool parent_gone = false;
  absl::Status st = UpdateRun(parent, [&](v1::MutableState* ms, Effects* fx, bool* write) {
    *write = RecordChildStarted(*initiated, child_run_id, now, ms, fx);
    // Not recorded: either the child's close recorded its start already, or the parent
    // closed (or moved on) while its child was starting.
    if (!*write) parent_gone = !IsRunning(*ms) || !ms->children().contains(initiated_id);
    return absl::OkStatus();
  });
  if (absl::IsNotFound(st)) {
    parent_gone = true;
    st = absl::OkStatus();
  }
  if (!st.ok()) return st;
  if (parent_gone) {
    // The parent's close applied its policy to the children it knew as started; this one
    // started after, so it gets the policy here.
    child.set_run_id(child_run_id);
    return ApplyParentClosePolicy(parent, child);
  }
  return absl::OkStatus();
}

absl::Status HistoryEngine::ProcessChildClosed(const v1::TransferTask& task) {
  const v1::RunKey& run = task.run();
  v1::RunKey parent;
  int64_t initiated_id = 0;
  HistoryEvent close_event;
  std::string first_run_id;
  {
    auto ctx = Context(run.namespace_id(), run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(run.namespace_id(), run.workflow_id()), run);
    if (absl::IsNotFound(cached.status())) return absl::OkStatus();
    if (!cached.ok()) return cached.status();
    const v1::MutableState& ms = (*cached)->state;
    const v1::ExecutionInfo& info = ms.execution();
    if (IsRunning(ms) || info.parent_workflow_id().empty() || !ms.has_close_event()) {
      return absl::OkStatus();
    }
    // A run a reset replaced is not the end of the child: the reset run goes on as it.
    const HistoryEvent& closed = ms.close_event();
    if (closed.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED &&
        closed.workflow_execution_terminated_event_attributes().identity() == kResetterIdentity) {
      return absl::OkStatus();
    }
    parent = MakeRunKey(info.parent_namespace_id(), info.parent_workflow_id(), info.parent_run_id());
    initiated_id = info.parent_initiated_event_id();
    close_event = ms.close_event();
    first_run_id = info.first_execution_run_id();
  }
  // Was the child's start recorded? If not, its record needs the initiated event. A parent
  // that a reset replaced hands the report on to its reset run.
  bool start_recorded = true;
  for (int hops = 0;; ++hops) {
    auto ctx = Context(parent.namespace_id(), parent.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(parent.namespace_id(), parent.workflow_id()), parent);
    if (absl::IsNotFound(cached.status())) return absl::OkStatus();  // the parent is gone
    if (!cached.ok()) return cached.status();
    const v1::MutableState& ms = (*cached)->state;
    if (!IsRunning(ms) && !ms.execution().reset_run_id().empty() && hops < kMaxResetHops) {
      parent.set_run_id(ms.execution().reset_run_id());
      continue;
    }
    auto it = ms.children().find(initiated_id);
    if (!IsRunning(ms) || it == ms.children().end()) return absl::OkStatus();
    start_recorded = !it->second.run_id().empty();
    break;
  }
  std::optional<HistoryEvent> initiated;
  if (!start_recorded) {
    auto read = ReadEvent(parent, initiated_id);
    if (!read.ok()) return read.status();
    initiated = std::move(*read);
  }
  WorkflowExecution child;
  child.set_workflow_id(run.workflow_id());
  child.set_run_id(run.run_id());
  const absl::Time now = clock_->Now();
  absl::Status st = UpdateRun(parent, [&](v1::MutableState* ms, Effects* fx, bool* write) {
    *write = RecordChildClosed(initiated_id, child, first_run_id, close_event,
                               initiated.has_value() ? &*initiated : nullptr, now, ms, fx);
    return absl::OkStatus();
  });
  return absl::IsNotFound(st) ? absl::OkStatus() : st;
}

absl::Status HistoryEngine::ApplyParentClosePolicy(const v1::RunKey& parent,
                                                   const v1::ChildExecutionInfo& child) {
  WorkflowExecution from;
  from.set_workflow_id(parent.workflow_id());
  from.set_run_id(parent.run_id());
  absl::Status st;
  switch (child.parent_close_policy()) {
    case enums::PARENT_CLOSE_POLICY_TERMINATE:
      st = TerminateRun(child.namespace_id(), child.workflow_id(), "", child.run_id(),
                        kParentClosePolicyReason, {}, kHistoryServiceIdentity, &from);
      break;
    case enums::PARENT_CLOSE_POLICY_REQUEST_CANCEL: {
      WorkflowExecutionCancelRequestedEventAttributes cancel;
      *cancel.mutable_external_workflow_execution() = from;
      cancel.set_identity(kHistoryServiceIdentity);
      st = CancelRun(child.namespace_id(), child.workflow_id(), "", std::move(cancel),
                     /*child_only=*/true, child.run_id());
      break;
    }
    default:
      return absl::OkStatus();  // abandoned
  }
  // A child already closed (or never started) has nothing left to apply.
  return absl::IsNotFound(st) ? absl::OkStatus() : st;
}

absl::Status HistoryEngine::TerminateRun(const std::string& namespace_id,
                                         const std::string& workflow_id, const std::string& run_id,
                                         const std::string& first_run_id,
                                         const std::string& reason,
                                         const temporal::api::common::v1::Payloads& details,
                                         const std::string& identity,
                                         const WorkflowExecution* parent) {
  const absl::Time now = clock_->Now();
  return OnRun(namespace_id, workflow_id, run_id, [&](const std::string& resolved) {
    return UpdateRun(MakeRunKey(namespace_id, workflow_id, resolved),
                     [&](v1::MutableState* ms, Effects* fx, bool*) {
                       const v1::ExecutionInfo& info = ms->execution();
                       if (!IsRunning(*ms)) {
                         return WorkflowNotFound("workflow execution already completed");
                       }
                       if (!first_run_id.empty() && info.first_execution_run_id() != first_run_id) {
                         return WorkflowNotFound("workflow execution not found in the chain");
                       }
                       if (parent != nullptr &&
                           (info.parent_workflow_id() != parent->workflow_id() ||
                            info.parent_run_id() != parent->run_id())) {
                         return WorkflowNotFound("workflow parent does not match");
                       }
                       TerminateWorkflow(reason, details, identity, now, ms, fx);
                       return absl::OkStatus();
                     });
  });
}

}  // namespace almanac::history
