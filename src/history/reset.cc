// Reset: a new run whose history is a prefix of another run's, up to a workflow task, which
// it fails with RESET_WORKFLOW and then goes on from.
//
// The new run's state is rebuilt by replaying the copied events: each event does to the
// state what writing it did. Only this server's own histories are replayed, so an
// activity's Started event always comes with its terminal event.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "persistence/search_attributes.h"
#include "history/state_machine.h"
#include "history/state_machine_internal.h"

namespace almanac::history {

namespace enums = api::enums::v1;
using internal::Append;
using internal::NewEvent;
using internal::NewTimer;

namespace {

// Who writes the reset's events, in Temporal's words.
constexpr char kHistoryServiceIdentity[] = "history-service";

// Fills the run's settings from its WorkflowExecutionStarted event.
void ReplayStarted(const HistoryEvent& e, v1::MutableState* ms) {
  const auto& a = e.workflow_execution_started_event_attributes();
  auto* info = ms->mutable_execution();
  info->set_workflow_type(a.workflow_type().name());
  info->set_task_queue(a.task_queue().name());
  info->set_first_execution_run_id(a.first_execution_run_id());
  if (a.has_workflow_execution_timeout()) {
    *info->mutable_execution_timeout() = a.workflow_execution_timeout();
  }
  if (a.has_workflow_run_timeout() && FromProto(a.workflow_run_timeout()) > absl::ZeroDuration()) {
    *info->mutable_run_timeout() = a.workflow_run_timeout();
  }
  *info->mutable_task_timeout() = a.workflow_task_timeout();
  if (a.has_workflow_execution_expiration_time()) {
    *info->mutable_execution_expiration_time() = a.workflow_execution_expiration_time();
  }
  info->set_attempt(a.attempt() > 0 ? a.attempt() : 1);
  if (a.has_retry_policy()) *info->mutable_retry_policy() = a.retry_policy();
  if (a.has_memo()) *info->mutable_memo() = a.memo();
  if (a.has_search_attributes()) *info->mutable_search_attributes() = a.search_attributes();
  info->set_cron_schedule(a.cron_schedule());
  if (a.has_parent_workflow_execution()) {
    info->set_parent_namespace_id(a.parent_workflow_namespace_id());
    info->set_parent_workflow_id(a.parent_workflow_execution().workflow_id());
    info->set_parent_run_id(a.parent_workflow_execution().run_id());
    info->set_parent_initiated_event_id(a.parent_initiated_event_id());
  }
  info->set_root_workflow_id(a.root_workflow_execution().workflow_id());
  info->set_root_run_id(a.root_workflow_execution().run_id());
}

// Does to the state what writing `e` did. Returns false for an event a reset point cannot
// follow (the run closed).
bool Replay(const HistoryEvent& e, v1::MutableState* ms) {
  auto* info = ms->mutable_execution();
  const int64_t id = e.event_id();
  switch (e.event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
      ReplayStarted(e, ms);
      break;
    case enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: {
      const auto& a = e.workflow_task_scheduled_event_attributes();
      auto* wft = ms->mutable_workflow_task();
      wft->Clear();
      wft->set_scheduled_event_id(id);
      wft->set_attempt(a.attempt());
      wft->set_task_queue(a.task_queue().kind() == enums::TASK_QUEUE_KIND_STICKY
                              ? a.task_queue().normal_name()
                              : a.task_queue().name());
      *wft->mutable_start_to_close_timeout() = a.start_to_close_timeout();
      *wft->mutable_scheduled_time() = e.event_time();
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_TASK_STARTED: {
      const auto& a = e.workflow_task_started_event_attributes();
      auto* wft = ms->mutable_workflow_task();
      wft->set_started_event_id(id);
      *wft->mutable_started_time() = e.event_time();
      wft->set_request_id(a.request_id());
      wft->set_identity(a.identity());
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
      info->set_last_completed_workflow_task_started_event_id(
          e.workflow_task_completed_event_attributes().started_event_id());
      info->set_last_completed_workflow_task_event_id(id);
      ms->clear_workflow_task();
      break;
    case enums::EVENT_TYPE_WORKFLOW_TASK_FAILED:
    case enums::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
      ms->clear_workflow_task();
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
      (*ms->mutable_activities())[id] = internal::ActivityInfoOf(
          e.activity_task_scheduled_event_attributes(), id, FromProto(e.event_time()));
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED: {
      const int64_t sched = e.activity_task_cancel_requested_event_attributes().scheduled_event_id();
      if (auto it = ms->mutable_activities()->find(sched); it != ms->mutable_activities()->end()) {
        it->second.set_cancel_requested(true);
        it->second.set_cancel_requested_event_id(id);
      }
      break;
    }
    case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
      ms->mutable_activities()->erase(e.activity_task_completed_event_attributes().scheduled_event_id());
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
      ms->mutable_activities()->erase(e.activity_task_failed_event_attributes().scheduled_event_id());
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
      ms->mutable_activities()->erase(e.activity_task_timed_out_event_attributes().scheduled_event_id());
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
      ms->mutable_activities()->erase(e.activity_task_canceled_event_attributes().scheduled_event_id());
      break;
    case enums::EVENT_TYPE_TIMER_STARTED: {
      const auto& a = e.timer_started_event_attributes();
      v1::TimerInfo ti;
      ti.set_timer_id(a.timer_id());
      ti.set_started_event_id(id);
      *ti.mutable_expiry_time() = ToProto(FromProto(e.event_time()) + FromProto(a.start_to_fire_timeout()));
      (*ms->mutable_timers())[a.timer_id()] = std::move(ti);
      break;
    }
    case enums::EVENT_TYPE_TIMER_FIRED:
      ms->mutable_timers()->erase(e.timer_fired_event_attributes().timer_id());
      break;
    case enums::EVENT_TYPE_TIMER_CANCELED:
      ms->mutable_timers()->erase(e.timer_canceled_event_attributes().timer_id());
      break;
    case enums::EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
      persistence::MergeSearchAttributes(
          e.upsert_workflow_search_attributes_event_attributes().search_attributes(),
          info->mutable_search_attributes());
      break;
    case enums::EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
      persistence::MergeMemo(e.workflow_properties_modified_event_attributes().upserted_memo(),
                             info->mutable_memo());
      break;
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
      info->set_cancel_requested(true);
      break;
    case enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: {
      auto& r = (*ms->mutable_signals_requested())[id];
      r.set_initiated_event_id(id);
      break;
    }
    case enums::EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED:
      ms->mutable_signals_requested()->erase(
          e.external_workflow_execution_signaled_event_attributes().initiated_event_id());
      break;
    case enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
      ms->mutable_signals_requested()->erase(
          e.signal_external_workflow_execution_failed_event_attributes().initiated_event_id());
      break;
    case enums::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: {
      auto& r = (*ms->mutable_cancels_requested())[id];
      r.set_initiated_event_id(id);
      break;
    }
    case enums::EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
      ms->mutable_cancels_requested()->erase(
          e.external_workflow_execution_cancel_requested_event_attributes().initiated_event_id());
      break;
    case enums::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
      ms->mutable_cancels_requested()->erase(
          e.request_cancel_external_workflow_execution_failed_event_attributes().initiated_event_id());
      break;
    case enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: {
      const auto& a = e.start_child_workflow_execution_initiated_event_attributes();
      auto& c = (*ms->mutable_children())[id];
      c.set_initiated_event_id(id);
      c.set_namespace_(a.namespace_());
      c.set_namespace_id(a.namespace_id());
      c.set_workflow_id(a.workflow_id());
      c.set_workflow_type(a.workflow_type().name());
      c.set_parent_close_policy(a.parent_close_policy());
      break;
    }
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: {
      const auto& a = e.child_workflow_execution_started_event_attributes();
      auto it = ms->mutable_children()->find(a.initiated_event_id());
      if (it != ms->mutable_children()->end()) {
        it->second.set_run_id(a.workflow_execution().run_id());
        it->second.set_started_event_id(id);
      }
      break;
    }
    case enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
      ms->mutable_children()->erase(
          e.start_child_workflow_execution_failed_event_attributes().initiated_event_id());
      break;
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
      ms->mutable_children()->erase(internal::ChildTerminalInitiatedId(e));
      break;
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: {
      const auto& a = e.workflow_execution_update_accepted_event_attributes();
      auto& u = (*ms->mutable_updates())[a.protocol_instance_id()];
      u.set_update_id(a.protocol_instance_id());
      u.set_accepted_event_id(id);
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: {
      const auto& a = e.workflow_execution_update_completed_event_attributes();
      auto it = ms->mutable_updates()->find(a.meta().update_id());
      if (it != ms->mutable_updates()->end()) it->second.set_completed_event_id(id);
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
      return false;
    default:
      break;  // markers, signals, ...: nothing in the state
  }
  return true;
}

}  // namespace

absl::Status BuildResetRun(const std::vector<HistoryEvent>& base_events,
                           const std::vector<HistoryEvent>& reapply, const ResetParams& params,
                           v1::MutableState* ms, Effects* fx) {
  ms->Clear();
  ms->set_next_event_id(1);
  if (base_events.empty() ||
      base_events[0].event_type() != enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) {
    return absl::InvalidArgumentError("the base run's history does not start with its start");
  }
  auto* info = ms->mutable_execution();
  info->set_namespace_id(params.namespace_id);
  info->set_workflow_id(params.workflow_id);
  info->set_run_id(params.run_id);
  info->set_original_execution_run_id(params.run_id);
  info->set_create_request_id(params.request_id);
  info->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  *info->mutable_start_time() = ToProto(params.now);
  *info->mutable_execution_time() = ToProto(params.now);
  *info->mutable_last_reset_time() = ToProto(params.now);
  for (const HistoryEvent& e : base_events) {
    if (e.event_id() != ms->next_event_id()) {
      return absl::DataLossError(absl::StrCat("the base run's history skips event ", ms->next_event_id()));
    }
    if (!Replay(e, ms)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, "
          "WorkflowTaskStarted + 1]: ", base_events.size() + 1));
    }
    Append(e, ms, fx);
  }
  const int64_t point = ms->next_event_id();
  // The copied events keep their batches; what the reset writes is a batch of its own.
  for (int64_t start : params.base_batch_starts) {
    if (start > 1 && start < point) fx->batch_starts.push_back(start);
  }
  fx->batch_starts.push_back(point);
  if (!ms->has_workflow_task()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, "
        "WorkflowTaskStarted + 1]: ", point));
  }
  // The workflow task at the reset point fails; the run goes on from there.
  const v1::WorkflowTaskInfo wft = ms->workflow_task();
  int64_t started_id = wft.started_event_id();
  if (started_id == 0) {
    HistoryEvent s = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_STARTED, params.now);
    auto* a = s.mutable_workflow_task_started_event_attributes();
    a->set_scheduled_event_id(wft.scheduled_event_id());
    a->set_identity(kHistoryServiceIdentity);
    a->set_request_id("emptyUuid");  // Temporal's, for a task no worker took
    started_id = Append(std::move(s), ms, fx);
  }
  HistoryEvent failed = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_FAILED, params.now);
  auto* fa = failed.mutable_workflow_task_failed_event_attributes();
  fa->set_scheduled_event_id(wft.scheduled_event_id());
  fa->set_started_event_id(started_id);
  fa->set_cause(enums::WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW);
  fa->mutable_failure()->set_message(params.reason);
  fa->mutable_failure()->mutable_reset_workflow_failure_info();
  fa->set_identity(kHistoryServiceIdentity);
  fa->set_base_run_id(params.base_run_id);
  fa->set_new_run_id(params.run_id);
  Append(std::move(failed), ms, fx);
  ms->clear_workflow_task();
  info->set_workflow_task_attempts_failed(0);

  // What was pending at the reset point starts again: activities are dispatched anew,
  // timers fire at their times, requests to other workflows are sent again.
  auto activities = std::move(*ms->mutable_activities());
  ms->clear_activities();
  for (auto& [id, ai] : activities) {
    *ai.mutable_scheduled_time() = ToProto(params.now);
    *ai.mutable_first_scheduled_time() = ToProto(params.now);
    internal::AddActivity(std::move(ai), params.now, ms, fx);
  }
  for (const auto& [timer_id, ti] : ms->timers()) {
    v1::TimerTask t = NewTimer(v1::TimerTask::KIND_USER_TIMER, FromProto(ti.expiry_time()), *ms);
    t.set_timer_id(timer_id);
    t.set_event_id(ti.started_event_id());
    fx->timer_tasks.push_back(std::move(t));
  }
  for (auto* pending : {ms->mutable_signals_requested(), ms->mutable_cancels_requested()}) {
    const bool signal = pending == ms->mutable_signals_requested();
    for (auto& [id, r] : *pending) {
      r.set_request_id(absl::StrCat(params.run_id, signal ? ":signal:" : ":cancel:", id));
      v1::TransferTask t;
      t.set_kind(signal ? v1::TransferTask::KIND_SIGNAL_EXECUTION
                        : v1::TransferTask::KIND_CANCEL_EXECUTION);
      *t.mutable_run() = internal::RunOf(*ms);
      t.set_scheduled_event_id(id);
      fx->transfer_tasks.push_back(std::move(t));
    }
  }

  // Signals and updates from after the reset point, as the reset chose them.
  for (const HistoryEvent& r : reapply) {
    HistoryEvent e;
    if (r.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) {
      e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, params.now);
      *e.mutable_workflow_execution_signaled_event_attributes() =
          r.workflow_execution_signaled_event_attributes();
    } else if (r.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED ||
               r.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED) {
      e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED, params.now);
      auto* a = e.mutable_workflow_execution_update_admitted_event_attributes();
      *a->mutable_request() =
          r.event_type() == enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
              ? r.workflow_execution_update_accepted_event_attributes().accepted_request()
              : r.workflow_execution_update_admitted_event_attributes().request();
      a->set_origin(enums::UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY);
      const std::string update_id = a->request().meta().update_id();
      if (ms->updates().contains(update_id)) continue;  // accepted before the reset point
      auto& u = (*ms->mutable_updates())[update_id];
      u.set_update_id(update_id);
      u.set_admitted_event_id(ms->next_event_id());
    } else if (r.event_type() == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) {
      // The base run's children pending at the point stay the reset run's: what they did
      // after it is recorded again.
      const int64_t init = r.child_workflow_execution_started_event_attributes().initiated_event_id();
      auto it = ms->mutable_children()->find(init);
      if (it == ms->mutable_children()->end() || !it->second.run_id().empty()) continue;
      e = r;
      *e.mutable_event_time() = ToProto(params.now);
      it->second.set_run_id(r.child_workflow_execution_started_event_attributes()
                                .workflow_execution()
                                .run_id());
      it->second.set_started_event_id(ms->next_event_id());
    } else if (const int64_t init = internal::ChildTerminalInitiatedId(r); init != 0 ||
               r.event_type() == enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED) {
      const int64_t initiated =
          init != 0 ? init : r.start_child_workflow_execution_failed_event_attributes().initiated_event_id();
      auto it = ms->mutable_children()->find(initiated);
      if (it == ms->mutable_children()->end()) continue;
      e = r;
      *e.mutable_event_time() = ToProto(params.now);
      if (init != 0) internal::SetChildStartedId(&e, it->second.started_event_id());
      ms->mutable_children()->erase(it);
    } else {
      continue;
    }
    Append(std::move(e), ms, fx);
  }
  // A child initiated before the point that never started is started for the reset run.
  for (auto& [id, child] : *ms->mutable_children()) {
    if (!child.run_id().empty()) continue;
    child.set_create_request_id(absl::StrCat(params.run_id, ":child:", id));
    v1::TransferTask t;
    t.set_kind(v1::TransferTask::KIND_START_CHILD);
    *t.mutable_run() = internal::RunOf(*ms);
    t.set_scheduled_event_id(id);
    fx->transfer_tasks.push_back(std::move(t));
  }
  internal::ArmRunTimeout(params.now, *ms, fx);
  ScheduleWorkflowTask(params.now, ms, fx);
  return absl::OkStatus();
}

}  // namespace almanac::history
