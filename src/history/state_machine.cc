#include "history/state_machine.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "history/state_machine_internal.h"
#include "temporal/api/command/v1/message.pb.h"

namespace almanac::history {

namespace enums = api::enums::v1;
using api::failure::v1::Failure;

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsRunning(const v1::MutableState& ms) {
  return ms.execution().status() == enums::WORKFLOW_EXECUTION_STATUS_RUNNING;
}

// Helpers shared with command_handlers.cc and successor_run.cc; see state_machine_internal.h.
namespace internal {

int64_t NextStamp(v1::MutableState* ms) {
  auto* info = ms->mutable_execution();
  info->set_next_stamp(info->next_stamp() + 1);
  return info->next_stamp();
}

v1::RunKey RunOf(const v1::MutableState& ms) {
  v1::RunKey key;
  key.set_namespace_id(ms.execution().namespace_id());
  key.set_workflow_id(ms.execution().workflow_id());
  key.set_run_id(ms.execution().run_id());
  return key;
}

HistoryEvent NewEvent(enums::EventType type, absl::Time now) {
  HistoryEvent e;
  e.set_event_type(type);
  *e.mutable_event_time() = ToProto(now);
  return e;
}

// Writes an event now: assigns the next id. Returns the id.
int64_t Append(HistoryEvent e, v1::MutableState* ms, Effects* fx) {
  const int64_t id = ms->next_event_id();
  e.set_event_id(id);
  ms->set_next_event_id(id + 1);
  auto* info = ms->mutable_execution();
  info->set_history_size_bytes(info->history_size_bytes() + static_cast<int64_t>(e.ByteSizeLong()));
  fx->events.push_back(std::move(e));
  return id;
}

v1::TimerTask NewTimer(v1::TimerTask::Kind kind, absl::Time at, const v1::MutableState& ms) {
  v1::TimerTask t;
  t.set_kind(kind);
  *t.mutable_run() = RunOf(ms);
  *t.mutable_visibility_time() = ToProto(at);
  return t;
}

int64_t ChildTerminalInitiatedId(const HistoryEvent& e) {
  switch (e.event_type()) {
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
      return e.child_workflow_execution_completed_event_attributes().initiated_event_id();
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
      return e.child_workflow_execution_failed_event_attributes().initiated_event_id();
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
      return e.child_workflow_execution_canceled_event_attributes().initiated_event_id();
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
      return e.child_workflow_execution_timed_out_event_attributes().initiated_event_id();
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
      return e.child_workflow_execution_terminated_event_attributes().initiated_event_id();
    default:
      return 0;
  }
}

void SetChildStartedId(HistoryEvent* e, int64_t started_id) {
  switch (e->event_type()) {
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
      e->mutable_child_workflow_execution_completed_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
      e->mutable_child_workflow_execution_failed_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED:
      e->mutable_child_workflow_execution_canceled_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT:
      e->mutable_child_workflow_execution_timed_out_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
      e->mutable_child_workflow_execution_terminated_event_attributes()->set_started_event_id(started_id);
      break;
    default:
      break;
  }
}

void Close(enums::WorkflowExecutionStatus status, absl::Time now, v1::MutableState* ms,
           Effects* fx) {
  auto* info = ms->mutable_execution();
  info->set_status(status);
  *info->mutable_close_time() = ToProto(now);
  *ms->mutable_close_event() = fx->events.back();
  ms->clear_workflow_task();
  ms->clear_activities();
  ms->clear_timers();
  ms->clear_signals_requested();
  ms->clear_cancels_requested();
  ms->clear_sticky();
  // A child tells its parent how it closed, and a schedule's run its schedule
  // (BuildSuccessorRun takes this back when the chain goes on). Other runs write no close
  // task: it would be a certain no-op.
  if (!info->parent_workflow_id().empty()) {
    v1::TransferTask t;
    t.set_kind(v1::TransferTask::KIND_CLOSE_EXECUTION);
    *t.mutable_run() = RunOf(*ms);
    fx->transfer_tasks.push_back(std::move(t));
  }
  if (!info->scheduled_by().empty()) {
    v1::TransferTask t;
    t.set_kind(v1::TransferTask::KIND_SCHEDULE_RUN_CLOSED);
    *t.mutable_run() = RunOf(*ms);
    t.set_schedule_id(info->scheduled_by());
    fx->transfer_tasks.push_back(std::move(t));
  }
  // The run's children get its parent close policy, each from a task of its own.
  for (auto& [id, child] : *ms->mutable_children()) {
    if (child.parent_close_policy() == enums::PARENT_CLOSE_POLICY_ABANDON) continue;
    v1::TransferTask t;
    t.set_kind(v1::TransferTask::KIND_PARENT_CLOSE_POLICY);
    *t.mutable_run() = RunOf(*ms);
    t.set_scheduled_event_id(id);
    *t.mutable_child() = std::move(child);
    fx->transfer_tasks.push_back(std::move(t));
  }
  ms->clear_children();
  fx->closed = true;
}

void DispatchActivity(const v1::ActivityInfo& ai, const v1::MutableState& ms, Effects* fx) {
  v1::TransferTask t;
  t.set_kind(v1::TransferTask::KIND_ACTIVITY_TASK);
  *t.mutable_run() = RunOf(ms);
  t.set_scheduled_event_id(ai.scheduled_event_id());
  t.set_task_queue(ai.task_queue());
  t.set_stamp(ai.stamp());
  fx->transfer_tasks.push_back(std::move(t));
}

void ArmScheduleToStart(const v1::ActivityInfo& ai, absl::Time from, const v1::MutableState& ms,
                        Effects* fx) {
  const absl::Duration s2s = FromProto(ai.schedule_to_start_timeout());
  const absl::Duration s2c = FromProto(ai.schedule_to_close_timeout());
  // A schedule-to-start as long as schedule-to-close adds nothing: that timer covers it.
  if (s2s <= absl::ZeroDuration() || (s2c > absl::ZeroDuration() && s2s >= s2c)) return;
  v1::TimerTask t = NewTimer(v1::TimerTask::KIND_ACTIVITY_TIMEOUT, from + s2s, ms);
  t.set_event_id(ai.scheduled_event_id());
  t.set_stamp(ai.stamp());
  t.set_timeout_type(enums::TIMEOUT_TYPE_SCHEDULE_TO_START);
  fx->timer_tasks.push_back(std::move(t));
}

v1::ActivityInfo ActivityInfoOf(const api::history::v1::ActivityTaskScheduledEventAttributes& a,
                                int64_t scheduled_event_id, absl::Time scheduled) {
  v1::ActivityInfo ai;
  ai.set_scheduled_event_id(scheduled_event_id);
  ai.set_activity_id(a.activity_id());
  ai.set_activity_type(a.activity_type().name());
  ai.set_task_queue(a.task_queue().name());
  ai.set_attempt(1);
  *ai.mutable_scheduled_time() = ToProto(scheduled);
  *ai.mutable_first_scheduled_time() = ToProto(scheduled);
  *ai.mutable_schedule_to_close_timeout() = a.schedule_to_close_timeout();
  *ai.mutable_schedule_to_start_timeout() = a.schedule_to_start_timeout();
  *ai.mutable_start_to_close_timeout() = a.start_to_close_timeout();
  *ai.mutable_heartbeat_timeout() = a.heartbeat_timeout();
  *ai.mutable_retry_policy() = a.retry_policy();
  return ai;
}

void AddActivity(v1::ActivityInfo ai, absl::Time now, v1::MutableState* ms, Effects* fx) {
  ai.set_stamp(NextStamp(ms));
  DispatchActivity(ai, *ms, fx);
  ArmScheduleToStart(ai, now, *ms, fx);
  const absl::Duration s2c = FromProto(ai.schedule_to_close_timeout());
  if (s2c > absl::ZeroDuration()) {
    v1::TimerTask t = NewTimer(v1::TimerTask::KIND_ACTIVITY_TIMEOUT, now + s2c, *ms);
    t.set_event_id(ai.scheduled_event_id());
    t.set_timeout_type(enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE);
    fx->timer_tasks.push_back(std::move(t));
  }
  const int64_t id = ai.scheduled_event_id();
  (*ms->mutable_activities())[id] = std::move(ai);
}

void DefaultRetryPolicy(api::common::v1::RetryPolicy* p) {
  if (FromProto(p->initial_interval()) <= absl::ZeroDuration()) {
    *p->mutable_initial_interval() = ToProto(absl::Seconds(1));
  }
  if (p->backoff_coefficient() < 1.0) p->set_backoff_coefficient(2.0);
  if (FromProto(p->maximum_interval()) <= absl::ZeroDuration()) {
    *p->mutable_maximum_interval() = ToProto(100 * FromProto(p->initial_interval()));
  }
}

// The run's deadline: its run timeout from `from`, bounded by the chain's expiration.
void ArmRunTimeout(absl::Time from, const v1::MutableState& ms, Effects* fx) {
  const auto& info = ms.execution();
  absl::Time deadline = absl::InfiniteFuture();
  if (info.has_run_timeout() && FromProto(info.run_timeout()) > absl::ZeroDuration()) {
    deadline = from + FromProto(info.run_timeout());
  }
  if (info.has_execution_expiration_time()) {
    deadline = std::min(deadline, FromProto(info.execution_expiration_time()));
  }
  if (deadline == absl::InfiniteFuture()) return;
  fx->timer_tasks.push_back(NewTimer(v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT, deadline, ms));
}

}  // namespace internal

using internal::Append;
using internal::ArmRunTimeout;
using internal::ArmScheduleToStart;
using internal::BuildSuccessorRun;
using internal::Close;
using internal::CommandContext;
using internal::CommandError;
using internal::NewEvent;
using internal::NewTimer;
using internal::NextStamp;
using internal::RetrySuccessor;
using internal::RunOf;
using internal::WorkflowRetry;

namespace {

// Whether events from outside the current workflow task must wait for it to end: while it
// is started. A transient or speculative task that has not started lets them be written,
// and becomes a normal task when it starts (RecordWorkflowTaskStarted).
bool MustBuffer(const v1::MutableState& ms) {
  return ms.has_workflow_task() && ms.workflow_task().started_event_id() != 0;
}

// Whether the task's Scheduled and Started events wait, unwritten, for its completion.
bool EventsReserved(const v1::WorkflowTaskInfo& wft) { return wft.transient() || wft.speculative(); }

// Sets the started_event_id of an activity's terminal event.
void SetActivityStartedId(HistoryEvent* e, int64_t started_id) {
  switch (e->event_type()) {
    case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
      e->mutable_activity_task_completed_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
      e->mutable_activity_task_failed_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
      e->mutable_activity_task_timed_out_event_attributes()->set_started_event_id(started_id);
      break;
    case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
      e->mutable_activity_task_canceled_event_attributes()->set_started_event_id(started_id);
      break;
    default:
      break;
  }
}


int64_t ActivityTerminalScheduledId(const HistoryEvent& e) {
  switch (e.event_type()) {
    case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
      return e.activity_task_completed_event_attributes().scheduled_event_id();
    case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
      return e.activity_task_failed_event_attributes().scheduled_event_id();
    case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
      return e.activity_task_timed_out_event_attributes().scheduled_event_id();
    case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
      return e.activity_task_canceled_event_attributes().scheduled_event_id();
    default:
      return 0;
  }
}

// Writes events from outside a workflow task in arrival order. A Started event (of an
// activity or a child) comes before the terminal event that names it, so its id is known
// when that event is written; a child's Started id is also kept in its pending info.
void AppendInOrder(google::protobuf::RepeatedPtrField<HistoryEvent> events, v1::MutableState* ms,
                   Effects* fx) {
  std::map<int64_t, int64_t> activity_started;  // by scheduled event id
  std::map<int64_t, int64_t> child_started;     // by initiated event id
  for (auto& e : events) {
    if (e.event_type() == enums::EVENT_TYPE_ACTIVITY_TASK_STARTED) {
      const int64_t sched = e.activity_task_started_event_attributes().scheduled_event_id();
      activity_started[sched] = Append(std::move(e), ms, fx);
      continue;
    }
    if (e.event_type() == enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED) {
      const int64_t init = e.child_workflow_execution_started_event_attributes().initiated_event_id();
      const int64_t id = Append(std::move(e), ms, fx);
      child_started[init] = id;
      auto it = ms->mutable_children()->find(init);
      if (it != ms->mutable_children()->end()) it->second.set_started_event_id(id);
      continue;
    }
    if (const int64_t sched = ActivityTerminalScheduledId(e); sched != 0) {
      if (auto it = activity_started.find(sched); it != activity_started.end()) {
        SetActivityStartedId(&e, it->second);
      }
    } else if (const int64_t init = internal::ChildTerminalInitiatedId(e); init != 0) {
      if (auto it = child_started.find(init); it != child_started.end()) {
        internal::SetChildStartedId(&e, it->second);
      }
    }
    Append(std::move(e), ms, fx);
  }
}

// Writes buffered events in arrival order (see AppendInOrder).
int FlushBuffered(v1::MutableState* ms, Effects* fx) {
  const int n = ms->buffered_events_size();
  if (n == 0) return 0;
  auto buffered = std::move(*ms->mutable_buffered_events());
  ms->clear_buffered_events();
  AppendInOrder(std::move(buffered), ms, fx);
  return n;
}

// Adds events that come from outside the workflow task (activity results, fired timers,
// ...): buffered while a workflow task is in flight, otherwise written, and a workflow task
// is scheduled so the worker sees them.
void AddExternalEvents(std::vector<HistoryEvent> events, absl::Time now, v1::MutableState* ms,
                       Effects* fx) {
  if (MustBuffer(*ms)) {
    for (auto& e : events) *ms->add_buffered_events() = std::move(e);
    return;
  }
  google::protobuf::RepeatedPtrField<HistoryEvent> list;
  for (auto& e : events) *list.Add() = std::move(e);
  AppendInOrder(std::move(list), ms, fx);
  ScheduleWorkflowTask(now, ms, fx);
}

HistoryEvent ActivityStartedEvent(const v1::ActivityInfo& ai, absl::Time now) {
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                            ai.has_started_time() ? FromProto(ai.started_time()) : now);
  auto* a = e.mutable_activity_task_started_event_attributes();
  a->set_scheduled_event_id(ai.scheduled_event_id());
  a->set_identity(ai.started_identity());
  a->set_request_id(ai.started_request_id());
  a->set_attempt(ai.attempt());
  if (ai.has_last_failure()) *a->mutable_last_failure() = ai.last_failure();
  return e;
}

HistoryEvent TransientScheduledEvent(const v1::MutableState& ms) {
  const auto& wft = ms.workflow_task();
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, FromProto(wft.scheduled_time()));
  e.set_event_id(wft.scheduled_event_id());
  auto* a = e.mutable_workflow_task_scheduled_event_attributes();
  a->mutable_task_queue()->set_name(wft.task_queue());
  a->mutable_task_queue()->set_kind(wft.sticky() ? enums::TASK_QUEUE_KIND_STICKY
                                                 : enums::TASK_QUEUE_KIND_NORMAL);
  if (wft.sticky()) a->mutable_task_queue()->set_normal_name(ms.execution().task_queue());
  *a->mutable_start_to_close_timeout() = wft.start_to_close_timeout();
  a->set_attempt(wft.attempt());
  return e;
}

HistoryEvent TransientStartedEvent(const v1::MutableState& ms) {
  const auto& wft = ms.workflow_task();
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_STARTED, FromProto(wft.started_time()));
  e.set_event_id(wft.started_event_id());
  auto* a = e.mutable_workflow_task_started_event_attributes();
  a->set_scheduled_event_id(wft.scheduled_event_id());
  a->set_identity(wft.identity());
  a->set_request_id(wft.request_id());
  a->set_history_size_bytes(ms.execution().history_size_bytes());
  return e;
}

void WriteTransientEvents(v1::MutableState* ms, Effects* fx) {
  HistoryEvent scheduled = TransientScheduledEvent(*ms);
  HistoryEvent started = TransientStartedEvent(*ms);
  Append(std::move(scheduled), ms, fx);
  Append(std::move(started), ms, fx);
}

// Applies a completion to `ms`: writes WorkflowTaskCompleted (after the events of a
// transient task), records the sticky queue, then applies each command through its handler.
// Returns the first refusal; the caller then drops `ms` and `fx`.
void KeepStickyQueue(const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request,
                     v1::MutableState* ms) {
  if (request.has_sticky_attributes() && !request.sticky_attributes().worker_task_queue().name().empty()) {
    auto* sticky = ms->mutable_sticky();
    sticky->set_task_queue(request.sticky_attributes().worker_task_queue().name());
    *sticky->mutable_schedule_to_start_timeout() =
        request.sticky_attributes().schedule_to_start_timeout();
  } else {
    ms->clear_sticky();
  }
}

// Whether a speculative task's completion leaves no trace: no commands, nothing new to
// deliver, and only update rejections among its messages.
bool CompletionWritesNothing(
    const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request,
    const v1::MutableState& ms) {
  if (request.commands_size() > 0 || request.force_create_new_workflow_task() ||
      ms.buffered_events_size() > 0) {
    return false;
  }
  for (const auto& m : request.messages()) {
    if (!m.body().Is<api::update::v1::Rejection>()) return false;
  }
  return true;
}

std::optional<CommandError> ApplyCompletion(
    const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request,
    const Limits& limits, const ChainContext& chain, const CompletionContext& context,
    absl::Time now, v1::MutableState* ms, Effects* fx) {
  const v1::WorkflowTaskInfo wft = ms->workflow_task();
  if (wft.speculative() && CompletionWritesNothing(request, *ms)) {
    // The task never happened as far as history goes: only its rejections are reported.
    ms->clear_workflow_task();
    KeepStickyQueue(request, ms);
    for (const auto& m : request.messages()) {
      if (auto err = internal::ApplyMessage(m, context, now, ms, fx)) return err;
    }
    if (context.updates_waiting) ScheduleSpeculativeWorkflowTask(now, ms, fx);
    return std::nullopt;
  }
  if (EventsReserved(wft)) WriteTransientEvents(ms, fx);

  HistoryEvent done = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED, now);
  {
    auto* a = done.mutable_workflow_task_completed_event_attributes();
    a->set_scheduled_event_id(wft.scheduled_event_id());
    a->set_started_event_id(wft.started_event_id());
    a->set_identity(request.identity());
    a->set_binary_checksum(request.binary_checksum());
    if (request.has_sdk_metadata()) *a->mutable_sdk_metadata() = request.sdk_metadata();
    if (request.has_metering_metadata()) *a->mutable_metering_metadata() = request.metering_metadata();
    if (request.has_worker_version_stamp()) *a->mutable_worker_version() = request.worker_version_stamp();
  }
  const int64_t completed_id = Append(std::move(done), ms, fx);
  auto* info = ms->mutable_execution();
  info->set_last_completed_workflow_task_started_event_id(wft.started_event_id());
  info->set_last_completed_workflow_task_event_id(completed_id);
  info->set_workflow_task_attempts_failed(0);
  ms->clear_workflow_task();
  KeepStickyQueue(request, ms);

  CommandContext ctx{request, limits, chain, now, completed_id, ms, fx};
  ctx.context = &context;
  for (const auto& cmd : request.commands()) {
    if (auto err = internal::ApplyCommand(cmd, &ctx)) return err;
  }
  if (ctx.closed) return std::nullopt;
  // Messages that no ProtocolMessage command placed come after the commands' events.
  for (const auto& m : request.messages()) {
    if (ctx.applied_messages.contains(m.id())) continue;
    if (auto err = internal::ApplyMessage(m, context, now, ms, fx)) return err;
  }
  const int flushed = FlushBuffered(ms, fx);
  if (flushed > 0 || request.force_create_new_workflow_task() || ctx.new_task_due) {
    ScheduleWorkflowTask(now, ms, fx);
  }
  if (context.updates_waiting) ScheduleSpeculativeWorkflowTask(now, ms, fx);
  return std::nullopt;
}

// Closes an activity attempt that failed or timed out: a retry when the policy allows one,
// else the terminal event. `timeout_type` is set for timeouts.
void RetryOrCloseActivity(v1::ActivityInfo ai, const Failure& failure,
                          enums::TimeoutType timeout_type, const std::string& identity,
                          absl::Time now, v1::MutableState* ms, Effects* fx) {
  const auto& policy = ai.retry_policy();
  enums::RetryState state = enums::RETRY_STATE_IN_PROGRESS;
  absl::Duration backoff = absl::ZeroDuration();
  const bool non_retryable_timeout = timeout_type == enums::TIMEOUT_TYPE_SCHEDULE_TO_START ||
                                     timeout_type == enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE;
  if (non_retryable_timeout) {
    state = enums::RETRY_STATE_TIMEOUT;
  } else if (failure.has_application_failure_info() &&
             failure.application_failure_info().non_retryable()) {
    state = enums::RETRY_STATE_NON_RETRYABLE_FAILURE;
  } else if (policy.maximum_attempts() > 0 && ai.attempt() >= policy.maximum_attempts()) {
    state = enums::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED;
  } else {
    const std::string type = failure.has_application_failure_info()
                                 ? failure.application_failure_info().type()
                                 : (failure.has_timeout_failure_info() ? "TemporalTimeout" : "");
    for (const auto& t : policy.non_retryable_error_types()) {
      if (!type.empty() && t == type) state = enums::RETRY_STATE_NON_RETRYABLE_FAILURE;
    }
  }
  if (state == enums::RETRY_STATE_IN_PROGRESS) {
    if (failure.has_application_failure_info() &&
        FromProto(failure.application_failure_info().next_retry_delay()) > absl::ZeroDuration()) {
      backoff = FromProto(failure.application_failure_info().next_retry_delay());
    } else {
      const double secs = absl::ToDoubleSeconds(FromProto(policy.initial_interval())) *
                          std::pow(policy.backoff_coefficient(), ai.attempt() - 1);
      backoff = std::min(absl::Seconds(secs), FromProto(policy.maximum_interval()));
    }
    const absl::Duration s2c = FromProto(ai.schedule_to_close_timeout());
    if (s2c > absl::ZeroDuration() &&
        now + backoff >= FromProto(ai.first_scheduled_time()) + s2c) {
      state = enums::RETRY_STATE_TIMEOUT;
    }
  }
  if (state == enums::RETRY_STATE_IN_PROGRESS) {
    v1::ActivityInfo& live = (*ms->mutable_activities())[ai.scheduled_event_id()];
    live.set_attempt(ai.attempt() + 1);
    live.clear_started_time();
    live.clear_started_identity();
    live.clear_started_request_id();
    live.clear_last_heartbeat_time();
    *live.mutable_last_failure() = failure;
    *live.mutable_scheduled_time() = ToProto(now + backoff);
    live.set_stamp(NextStamp(ms));
    v1::TimerTask t = NewTimer(v1::TimerTask::KIND_ACTIVITY_RETRY, now + backoff, *ms);
    t.set_event_id(ai.scheduled_event_id());
    t.set_stamp(live.stamp());
    fx->timer_tasks.push_back(std::move(t));
    ArmScheduleToStart(live, now + backoff, *ms, fx);
    return;
  }
  std::vector<HistoryEvent> events;
  if (ai.has_started_time()) events.push_back(ActivityStartedEvent(ai, now));
  if (timeout_type != enums::TIMEOUT_TYPE_UNSPECIFIED) {
    HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, now);
    auto* a = e.mutable_activity_task_timed_out_event_attributes();
    *a->mutable_failure() = failure;
    if (state == enums::RETRY_STATE_TIMEOUT && timeout_type != enums::TIMEOUT_TYPE_SCHEDULE_TO_START) {
      // No time is left for another attempt: Temporal reports that as a schedule-to-close
      // timeout, in these words, whichever timer fired.
      a->mutable_failure()->set_message(
          "Not enough time to schedule next retry before activity ScheduleToClose timeout, "
          "giving up retrying");
      a->mutable_failure()->mutable_timeout_failure_info()->set_timeout_type(
          enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE);
    }
    a->set_scheduled_event_id(ai.scheduled_event_id());
    a->set_retry_state(state);
    events.push_back(std::move(e));
  } else {
    HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_FAILED, now);
    auto* a = e.mutable_activity_task_failed_event_attributes();
    *a->mutable_failure() = failure;
    a->set_scheduled_event_id(ai.scheduled_event_id());
    a->set_identity(identity);
    a->set_retry_state(state);
    events.push_back(std::move(e));
  }
  ms->mutable_activities()->erase(ai.scheduled_event_id());
  AddExternalEvents(std::move(events), now, ms, fx);
}

// Temporal's name of a timeout type in failure messages ("activity StartToClose timeout"),
// which SDKs show and users match on; not the enum's SCREAMING_CASE name.
const char* TimeoutTypeShortName(enums::TimeoutType type) {
  switch (type) {
    case enums::TIMEOUT_TYPE_START_TO_CLOSE:
      return "StartToClose";
    case enums::TIMEOUT_TYPE_SCHEDULE_TO_START:
      return "ScheduleToStart";
    case enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
      return "ScheduleToClose";
    case enums::TIMEOUT_TYPE_HEARTBEAT:
      return "Heartbeat";
    default:
      return "Unspecified";
  }
}

Failure TimeoutFailure(enums::TimeoutType type, const v1::ActivityInfo* ai) {
  Failure f;
  f.set_message(absl::StrCat("activity ", TimeoutTypeShortName(type), " timeout"));
  f.mutable_timeout_failure_info()->set_timeout_type(type);
  if (ai != nullptr && ai->has_heartbeat_details()) {
    *f.mutable_timeout_failure_info()->mutable_last_heartbeat_details() = ai->heartbeat_details();
  }
  if (ai != nullptr && ai->has_last_failure()) *f.mutable_cause() = ai->last_failure();
  return f;
}

}  // namespace

void StartWorkflow(const api::workflowservice::v1::StartWorkflowExecutionRequest& request,
                   const StartParams& params, const Limits& limits, v1::MutableState* ms,
                   Effects* fx) {
  ms->Clear();
  ms->set_next_event_id(1);
  auto* info = ms->mutable_execution();
  info->set_namespace_id(params.namespace_id);
  info->set_workflow_id(request.workflow_id());
  info->set_run_id(params.run_id);
  const std::string first_run =
      params.first_execution_run_id.empty() ? params.run_id : params.first_execution_run_id;
  info->set_first_execution_run_id(first_run);
  info->set_original_execution_run_id(params.run_id);
  info->set_workflow_type(request.workflow_type().name());
  info->set_task_queue(request.task_queue().name());
  const absl::Duration exec_timeout = FromProto(request.workflow_execution_timeout());
  absl::Duration run_timeout = FromProto(request.workflow_run_timeout());
  if (exec_timeout > absl::ZeroDuration() &&
      (run_timeout <= absl::ZeroDuration() || run_timeout > exec_timeout)) {
    run_timeout = exec_timeout;
  }
  absl::Duration task_timeout = FromProto(request.workflow_task_timeout());
  if (task_timeout <= absl::ZeroDuration()) task_timeout = limits.default_workflow_task_timeout;
  task_timeout = std::min(task_timeout, limits.max_workflow_task_timeout);
  if (run_timeout > absl::ZeroDuration()) task_timeout = std::min(task_timeout, run_timeout);
  if (exec_timeout > absl::ZeroDuration()) *info->mutable_execution_timeout() = ToProto(exec_timeout);
  if (run_timeout > absl::ZeroDuration()) *info->mutable_run_timeout() = ToProto(run_timeout);
  *info->mutable_task_timeout() = ToProto(task_timeout);
  absl::Duration delay = std::max(absl::ZeroDuration(), FromProto(request.workflow_start_delay()));
  if (!request.cron_schedule().empty()) {
    // A cron workflow's first run waits for the schedule's first time.
    delay = std::max(delay, internal::CronBackoff(request.cron_schedule(), params.now, params.now)
                                .value_or(absl::ZeroDuration()));
    info->set_cron_schedule(request.cron_schedule());
  }
  *info->mutable_start_time() = ToProto(params.now);
  *info->mutable_execution_time() = ToProto(params.now + delay);
  info->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  info->set_create_request_id(request.request_id());
  info->set_attempt(1);
  info->set_scheduled_by(params.scheduled_by);
  if (request.has_memo()) *info->mutable_memo() = request.memo();
  if (request.has_search_attributes()) *info->mutable_search_attributes() = request.search_attributes();
  if (request.has_retry_policy()) *info->mutable_retry_policy() = request.retry_policy();
  if (exec_timeout > absl::ZeroDuration()) {
    *info->mutable_execution_expiration_time() = ToProto(params.now + exec_timeout);
  }
  if (params.parent != nullptr) {
    const ParentInfo& p = *params.parent;
    info->set_parent_namespace_id(p.namespace_id);
    info->set_parent_workflow_id(p.workflow_id);
    info->set_parent_run_id(p.run_id);
    info->set_parent_initiated_event_id(p.initiated_event_id);
    info->set_root_workflow_id(p.root_workflow_id);
    info->set_root_run_id(p.root_run_id);
  } else {
    info->set_root_workflow_id(request.workflow_id());
    info->set_root_run_id(params.run_id);
  }

  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, params.now);
  auto* a = e.mutable_workflow_execution_started_event_attributes();
  *a->mutable_workflow_type() = request.workflow_type();
  a->mutable_task_queue()->set_name(request.task_queue().name());
  a->mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  if (request.has_input()) *a->mutable_input() = request.input();
  if (exec_timeout > absl::ZeroDuration()) *a->mutable_workflow_execution_timeout() = ToProto(exec_timeout);
  if (run_timeout > absl::ZeroDuration()) *a->mutable_workflow_run_timeout() = ToProto(run_timeout);
  *a->mutable_workflow_task_timeout() = ToProto(task_timeout);
  a->set_original_execution_run_id(params.run_id);
  a->set_identity(request.identity());
  a->set_first_execution_run_id(first_run);
  a->set_attempt(1);
  if (request.has_retry_policy()) *a->mutable_retry_policy() = request.retry_policy();
  a->set_cron_schedule(request.cron_schedule());
  if (request.has_header()) *a->mutable_header() = request.header();
  if (request.has_memo()) *a->mutable_memo() = request.memo();
  if (request.has_search_attributes()) *a->mutable_search_attributes() = request.search_attributes();
  if (request.has_last_completion_result()) {
    *a->mutable_last_completion_result() = request.last_completion_result();
  }
  if (request.has_continued_failure()) *a->mutable_continued_failure() = request.continued_failure();
  if (exec_timeout > absl::ZeroDuration()) {
    *a->mutable_workflow_execution_expiration_time() = ToProto(params.now + exec_timeout);
  }
  a->set_workflow_id(request.workflow_id());
  if (params.parent != nullptr) {
    const ParentInfo& p = *params.parent;
    a->set_parent_workflow_namespace(p.namespace_name);
    a->set_parent_workflow_namespace_id(p.namespace_id);
    a->mutable_parent_workflow_execution()->set_workflow_id(p.workflow_id);
    a->mutable_parent_workflow_execution()->set_run_id(p.run_id);
    a->set_parent_initiated_event_id(p.initiated_event_id);
    // Only a child's event names its root; every run's describe does.
    a->mutable_root_workflow_execution()->set_workflow_id(info->root_workflow_id());
    a->mutable_root_workflow_execution()->set_run_id(info->root_run_id());
  }
  if (request.has_priority()) *a->mutable_priority() = request.priority();
  *a->mutable_first_workflow_task_backoff() = ToProto(delay);
  // A cron workflow's every run, the first too, is a run of its schedule.
  if (!request.cron_schedule().empty()) {
    a->set_initiator(enums::CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE);
  }
  if (request.has_user_metadata()) *e.mutable_user_metadata() = request.user_metadata();
  Append(std::move(e), ms, fx);
  if (params.signal != nullptr) {
    HistoryEvent signaled = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, params.now);
    *signaled.mutable_workflow_execution_signaled_event_attributes() = *params.signal;
    Append(std::move(signaled), ms, fx);
  }
  if (delay > absl::ZeroDuration()) {
    // The first workflow task waits for the start delay; the run's time counts from then.
    info->set_backoff_pending(true);
    ArmRunTimeout(params.now + delay, *ms, fx);
    fx->timer_tasks.push_back(
        NewTimer(v1::TimerTask::KIND_WORKFLOW_BACKOFF, params.now + delay, *ms));
    return;
  }
  ArmRunTimeout(params.now, *ms, fx);
  ScheduleWorkflowTask(params.now, ms, fx);
}

void RequestCancelWorkflow(api::history::v1::WorkflowExecutionCancelRequestedEventAttributes attrs,
                           absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms) || ms->execution().cancel_requested()) return;
  ms->mutable_execution()->set_cancel_requested(true);
  // A cancellation does not wait for a backoff (start delay, cron, retry): the workflow
  // sees it in a workflow task at once, as in Temporal.
  ms->mutable_execution()->set_backoff_pending(false);
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED, now);
  *e.mutable_workflow_execution_cancel_requested_event_attributes() = std::move(attrs);
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
}

void TimeoutWorkflow(const v1::TimerTask& timer, const ChainContext& chain, absl::Time now,
                     v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms) || timer.run().run_id() != ms->execution().run_id()) return;
  ms->clear_workflow_task();
  FlushBuffered(ms, fx);
  std::optional<absl::Duration> backoff;
  std::optional<absl::Duration> cron;
  const auto& info = ms->execution();
  // Past the chain's execution timeout nothing follows, whatever the policy.
  const bool expired = info.has_execution_expiration_time() &&
                       FromProto(info.execution_expiration_time()) <= now;
  enums::RetryState retry_state =
      expired ? enums::RETRY_STATE_TIMEOUT : enums::RETRY_STATE_RETRY_POLICY_NOT_SET;
  if (chain.started_event != nullptr && !expired) {
    backoff = WorkflowRetry(*ms, nullptr, now, &retry_state);
    // A run past its retries goes on as the cron's next run.
    if (!backoff.has_value()) {
      cron = internal::CronBackoff(info.cron_schedule(), FromProto(info.execution_time()), now);
    }
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, now);
  e.mutable_workflow_execution_timed_out_event_attributes()->set_retry_state(retry_state);
  Append(std::move(e), ms, fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT, now, ms, fx);
  if (backoff.has_value()) {
    BuildSuccessorRun(RetrySuccessor(chain, nullptr, *backoff), chain, now, ms, fx);
  } else if (cron.has_value()) {
    api::failure::v1::Failure timeout;
    timeout.set_message("workflow timeout");
    timeout.set_source("Server");
    timeout.mutable_timeout_failure_info()->set_timeout_type(enums::TIMEOUT_TYPE_START_TO_CLOSE);
    BuildSuccessorRun(internal::CronSuccessor(chain, nullptr, &timeout, *cron), chain, now, ms,
                      fx);
  }
}

void SignalWorkflow(api::history::v1::WorkflowExecutionSignaledEventAttributes attrs,
                    absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms)) return;
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, now);
  *e.mutable_workflow_execution_signaled_event_attributes() = std::move(attrs);
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
}

void CompleteExternalSignal(const HistoryEvent& initiated,
                            enums::SignalExternalWorkflowExecutionFailedCause cause,
                            absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms) || ms->mutable_signals_requested()->erase(initiated.event_id()) == 0) return;
  const auto& in = initiated.signal_external_workflow_execution_initiated_event_attributes();
  HistoryEvent e;
  if (cause == enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_UNSPECIFIED) {
    e = NewEvent(enums::EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED, now);
    auto* a = e.mutable_external_workflow_execution_signaled_event_attributes();
    a->set_initiated_event_id(initiated.event_id());
    a->set_namespace_(in.namespace_());
    a->set_namespace_id(in.namespace_id());
    *a->mutable_workflow_execution() = in.workflow_execution();
    a->set_control(in.control());
  } else {
    e = NewEvent(enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED, now);
    auto* a = e.mutable_signal_external_workflow_execution_failed_event_attributes();
    a->set_cause(cause);
    a->set_workflow_task_completed_event_id(in.workflow_task_completed_event_id());
    a->set_namespace_(in.namespace_());
    a->set_namespace_id(in.namespace_id());
    *a->mutable_workflow_execution() = in.workflow_execution();
    a->set_initiated_event_id(initiated.event_id());
    a->set_control(in.control());
  }
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
}

void CompleteExternalCancel(const HistoryEvent& initiated,
                            enums::CancelExternalWorkflowExecutionFailedCause cause,
                            absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms) || ms->mutable_cancels_requested()->erase(initiated.event_id()) == 0) return;
  const auto& in = initiated.request_cancel_external_workflow_execution_initiated_event_attributes();
  HistoryEvent e;
  if (cause == enums::CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_UNSPECIFIED) {
    e = NewEvent(enums::EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED, now);
    auto* a = e.mutable_external_workflow_execution_cancel_requested_event_attributes();
    a->set_initiated_event_id(initiated.event_id());
    a->set_namespace_(in.namespace_());
    a->set_namespace_id(in.namespace_id());
    *a->mutable_workflow_execution() = in.workflow_execution();
  } else {
    e = NewEvent(enums::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED, now);
    auto* a = e.mutable_request_cancel_external_workflow_execution_failed_event_attributes();
    a->set_cause(cause);
    a->set_workflow_task_completed_event_id(in.workflow_task_completed_event_id());
    a->set_namespace_(in.namespace_());
    a->set_namespace_id(in.namespace_id());
    *a->mutable_workflow_execution() = in.workflow_execution();
    a->set_initiated_event_id(initiated.event_id());
    a->set_control(in.control());
  }
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
}

bool RecordChildStarted(const HistoryEvent& initiated, const std::string& run_id, absl::Time now,
                        v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms)) return false;
  auto it = ms->mutable_children()->find(initiated.event_id());
  if (it == ms->mutable_children()->end() || !it->second.run_id().empty()) return false;
  it->second.set_run_id(run_id);
  const auto& in = initiated.start_child_workflow_execution_initiated_event_attributes();
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, now);
  auto* a = e.mutable_child_workflow_execution_started_event_attributes();
  a->set_namespace_(in.namespace_());
  a->set_namespace_id(in.namespace_id());
  a->set_initiated_event_id(initiated.event_id());
  a->mutable_workflow_execution()->set_workflow_id(in.workflow_id());
  a->mutable_workflow_execution()->set_run_id(run_id);
  *a->mutable_workflow_type() = in.workflow_type();
  if (in.has_header()) *a->mutable_header() = in.header();
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
  return true;
}

bool RecordStartChildFailed(const HistoryEvent& initiated,
                            enums::StartChildWorkflowExecutionFailedCause cause, absl::Time now,
                            v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms)) return false;
  auto it = ms->mutable_children()->find(initiated.event_id());
  if (it == ms->mutable_children()->end() || !it->second.run_id().empty()) return false;
  ms->mutable_children()->erase(it);
  const auto& in = initiated.start_child_workflow_execution_initiated_event_attributes();
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED, now);
  auto* a = e.mutable_start_child_workflow_execution_failed_event_attributes();
  a->set_namespace_(in.namespace_());
  a->set_namespace_id(in.namespace_id());
  a->set_workflow_id(in.workflow_id());
  *a->mutable_workflow_type() = in.workflow_type();
  a->set_cause(cause);
  a->set_control(in.control());
  a->set_initiated_event_id(initiated.event_id());
  a->set_workflow_task_completed_event_id(in.workflow_task_completed_event_id());
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
  return true;
}

bool RecordChildClosed(int64_t initiated_event_id, const api::common::v1::WorkflowExecution& child,
                       const std::string& child_first_run_id, const HistoryEvent& close_event,
                       const HistoryEvent* initiated, absl::Time now, v1::MutableState* ms,
                       Effects* fx) {
  if (!IsRunning(*ms)) return false;
  auto it = ms->mutable_children()->find(initiated_event_id);
  if (it == ms->mutable_children()->end() || it->second.workflow_id() != child.workflow_id()) {
    return false;
  }
  if (it->second.run_id().empty()) {
    // The child ran to its end before its start was recorded: record it now.
    if (initiated == nullptr) return false;
    if (!RecordChildStarted(*initiated, child_first_run_id, now, ms, fx)) return false;
    it = ms->mutable_children()->find(initiated_event_id);
  } else if (!child_first_run_id.empty() && it->second.run_id() != child_first_run_id) {
    return false;  // another workflow that reused the child's id
  }
  const v1::ChildExecutionInfo info = it->second;
  ms->mutable_children()->erase(it);
  HistoryEvent e;
  // Every child terminal event has the same five fields besides its own.
  auto fill = [&](auto* a) {
    a->set_namespace_(info.namespace_());
    a->set_namespace_id(info.namespace_id());
    *a->mutable_workflow_execution() = child;
    a->mutable_workflow_type()->set_name(info.workflow_type());
    a->set_initiated_event_id(initiated_event_id);
    a->set_started_event_id(info.started_event_id());  // 0 while Started is buffered: patched
  };
  switch (close_event.event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: {
      e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED, now);
      auto* a = e.mutable_child_workflow_execution_completed_event_attributes();
      fill(a);
      const auto& c = close_event.workflow_execution_completed_event_attributes();
      if (c.has_result()) *a->mutable_result() = c.result();
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: {
      e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED, now);
      auto* a = e.mutable_child_workflow_execution_failed_event_attributes();
      fill(a);
      const auto& c = close_event.workflow_execution_failed_event_attributes();
      *a->mutable_failure() = c.failure();
      a->set_retry_state(c.retry_state());
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: {
      e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED, now);
      auto* a = e.mutable_child_workflow_execution_canceled_event_attributes();
      fill(a);
      const auto& c = close_event.workflow_execution_canceled_event_attributes();
      if (c.has_details()) *a->mutable_details() = c.details();
      break;
    }
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: {
      e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT, now);
      auto* a = e.mutable_child_workflow_execution_timed_out_event_attributes();
      fill(a);
      a->set_retry_state(close_event.workflow_execution_timed_out_event_attributes().retry_state());
      break;
    }
    default: {
      e = NewEvent(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED, now);
      fill(e.mutable_child_workflow_execution_terminated_event_attributes());
      break;
    }
  }
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
  return true;
}

void EndWorkflowBackoff(absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!ms->execution().backoff_pending()) return;  // ended early (a cancellation)
  ms->mutable_execution()->set_backoff_pending(false);
  ScheduleWorkflowTask(now, ms, fx);
}

void ScheduleWorkflowTask(absl::Time now, v1::MutableState* ms, Effects* fx) {
  internal::ScheduleTask(now, /*speculative=*/false, ms, fx);
}

void ScheduleSpeculativeWorkflowTask(absl::Time now, v1::MutableState* ms, Effects* fx) {
  internal::ScheduleTask(now, /*speculative=*/true, ms, fx);
}

namespace internal {

void ScheduleTask(absl::Time now, bool speculative, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms) || ms->has_workflow_task() || ms->execution().backoff_pending()) return;
  auto* wft = ms->mutable_workflow_task();
  const int32_t attempt = static_cast<int32_t>(ms->execution().workflow_task_attempts_failed()) + 1;
  const bool sticky = !ms->sticky().task_queue().empty();
  wft->set_attempt(attempt);
  wft->set_transient(attempt > 1);
  wft->set_speculative(speculative && attempt == 1);
  wft->set_sticky(sticky);
  wft->set_task_queue(sticky ? ms->sticky().task_queue() : ms->execution().task_queue());
  *wft->mutable_scheduled_time() = ToProto(now);
  *wft->mutable_start_to_close_timeout() = ms->execution().task_timeout();
  wft->set_stamp(NextStamp(ms));
  if (EventsReserved(*wft)) {
    // Its id is reserved; if anything else is written first, the task becomes a normal one
    // when it starts.
    wft->set_scheduled_event_id(ms->next_event_id());
  } else {
    wft->set_scheduled_event_id(Append(TransientScheduledEvent(*ms), ms, fx));
  }
  v1::TransferTask t;
  t.set_kind(v1::TransferTask::KIND_WORKFLOW_TASK);
  *t.mutable_run() = RunOf(*ms);
  t.set_scheduled_event_id(wft->scheduled_event_id());
  t.set_task_queue(wft->task_queue());
  t.set_stamp(wft->stamp());
  t.set_sticky(sticky);
  if (sticky) {
    const absl::Duration s2s = FromProto(ms->sticky().schedule_to_start_timeout());
    if (s2s > absl::ZeroDuration()) {
      v1::TimerTask timer = NewTimer(v1::TimerTask::KIND_WORKFLOW_TASK_TIMEOUT, now + s2s, *ms);
      timer.set_event_id(wft->scheduled_event_id());
      timer.set_stamp(wft->stamp());
      timer.set_timeout_type(enums::TIMEOUT_TYPE_SCHEDULE_TO_START);
      fx->timer_tasks.push_back(std::move(timer));
    }
  }
  fx->transfer_tasks.push_back(std::move(t));
}

}  // namespace internal

absl::StatusOr<WorkflowTaskStarted> RecordWorkflowTaskStarted(int64_t stamp,
                                                              const std::string& request_id,
                                                              const std::string& identity,
                                                              absl::Time now,
                                                              v1::MutableState* ms, Effects* fx,
                                                              const Limits& limits) {
  if (!IsRunning(*ms) || !ms->has_workflow_task() || ms->workflow_task().stamp() != stamp) {
    return absl::NotFoundError("Workflow task not found.");
  }
  auto* wft = ms->mutable_workflow_task();
  if (wft->started_event_id() != 0) {
    if (wft->request_id() != request_id) {
      return absl::NotFoundError("Workflow task already started.");
    }
  } else {
    if (EventsReserved(*wft) && wft->scheduled_event_id() != ms->next_event_id()) {
      // Events were written while it waited: they are new to the worker, so this is a
      // normal first attempt, with its Scheduled event after them.
      wft->set_transient(false);
      wft->set_speculative(false);
      wft->set_attempt(1);
      ms->mutable_execution()->set_workflow_task_attempts_failed(0);
      wft->set_scheduled_event_id(Append(TransientScheduledEvent(*ms), ms, fx));
    }
    wft->set_request_id(request_id);
    wft->set_identity(identity);
    *wft->mutable_started_time() = ToProto(now);
    if (EventsReserved(*wft)) {
      wft->set_started_event_id(wft->scheduled_event_id() + 1);
    } else {
      HistoryEvent started = TransientStartedEvent(*ms);
      if (HistoryOverWarnLimits(limits, *ms)) {
        started.mutable_workflow_task_started_event_attributes()->set_suggest_continue_as_new(true);
      }
      wft->set_started_event_id(Append(std::move(started), ms, fx));
    }
    v1::TimerTask timer = NewTimer(v1::TimerTask::KIND_WORKFLOW_TASK_TIMEOUT,
                                   now + FromProto(wft->start_to_close_timeout()), *ms);
    timer.set_event_id(wft->scheduled_event_id());
    timer.set_stamp(wft->stamp());
    timer.set_timeout_type(enums::TIMEOUT_TYPE_START_TO_CLOSE);
    fx->timer_tasks.push_back(std::move(timer));
  }
  WorkflowTaskStarted out;
  out.scheduled_event_id = wft->scheduled_event_id();
  out.started_event_id = wft->started_event_id();
  out.previous_started_event_id = ms->execution().last_completed_workflow_task_started_event_id();
  out.attempt = wft->attempt();
  out.sticky = wft->sticky();
  out.stamp = wft->stamp();
  out.scheduled_time = FromProto(wft->scheduled_time());
  out.started_time = FromProto(wft->started_time());
  if (EventsReserved(*wft)) {
    out.transient_events.push_back(TransientScheduledEvent(*ms));
    out.transient_events.push_back(TransientStartedEvent(*ms));
  }
  return out;
}

absl::Status ValidateWorkflowTaskToken(const v1::TaskToken& token, const v1::MutableState& ms) {
  if (!IsRunning(ms)) return absl::NotFoundError("Workflow execution already completed.");
  const auto& wft = ms.workflow_task();
  if (!ms.has_workflow_task() || wft.started_event_id() == 0 || wft.stamp() != token.stamp() ||
      wft.started_event_id() != token.started_event_id()) {
    return absl::NotFoundError("Workflow task not found.");
  }
  return absl::OkStatus();
}

std::string WorkflowTaskFailedCauseName(enums::WorkflowTaskFailedCause cause) {
  const std::string full = enums::WorkflowTaskFailedCause_Name(cause);
  constexpr absl::string_view kPrefix = "WORKFLOW_TASK_FAILED_CAUSE_";
  std::string out;
  bool upper = true;
  for (char c : absl::string_view(full).substr(absl::StartsWith(full, kPrefix) ? kPrefix.size() : 0)) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out.push_back(upper ? absl::ascii_toupper(c) : absl::ascii_tolower(c));
    upper = false;
  }
  return out;
}

CompletionOutcome CompleteWorkflowTask(
    const api::workflowservice::v1::RespondWorkflowTaskCompletedRequest& request,
    const Limits& limits, const ChainContext& chain, const CompletionContext& context,
    absl::Time now, v1::MutableState* ms, Effects* fx) {
  v1::MutableState scratch = *ms;
  Effects scratch_fx;
  const bool speculative = ms->workflow_task().speculative();
  std::optional<CommandError> err =
      ApplyCompletion(request, limits, chain, context, now, &scratch, &scratch_fx);
  if (!err.has_value()) {
    CompletionOutcome out;
    if (speculative && scratch_fx.events.empty()) {
      out.reset_history_event_id =
          scratch.execution().last_completed_workflow_task_started_event_id();
    }
    *ms = std::move(scratch);
    for (auto& e : scratch_fx.events) fx->events.push_back(std::move(e));
    for (auto& t : scratch_fx.transfer_tasks) fx->transfer_tasks.push_back(std::move(t));
    for (auto& t : scratch_fx.timer_tasks) fx->timer_tasks.push_back(std::move(t));
    fx->closed = fx->closed || scratch_fx.closed;
    if (scratch_fx.new_run.has_value()) fx->new_run = std::move(scratch_fx.new_run);
    for (auto& u : scratch_fx.updates) fx->updates.push_back(std::move(u));
    return out;
  }
  // Temporal's text: the cause's short name, then what was wrong ("BadSearchAttributes: ...").
  const std::string cause = WorkflowTaskFailedCauseName(err->cause);
  Failure failure;
  failure.set_message(err->message.empty() || err->message == cause
                          ? cause
                          : absl::StrCat(cause, ": ", err->message));
  failure.mutable_server_failure_info();
  FailWorkflowTask(err->cause, failure, request.identity(), request.binary_checksum(), now, ms, fx);
  if (err->terminate) {
    TerminateWorkflow(failure.message(), api::common::v1::Payloads(), "history-service", now, ms,
                      fx);
  }
  return CompletionOutcome{true, err->message};
}

void FailWorkflowTask(enums::WorkflowTaskFailedCause cause, const Failure& failure,
                      const std::string& identity, const std::string& binary_checksum,
                      absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!ms->has_workflow_task()) return;
  const v1::WorkflowTaskInfo wft = ms->workflow_task();
  if (!wft.transient() && wft.started_event_id() != 0) {
    // A speculative task that fails is kept in history, as a normal one would be.
    if (wft.speculative()) WriteTransientEvents(ms, fx);
    HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_FAILED, now);
    auto* a = e.mutable_workflow_task_failed_event_attributes();
    a->set_scheduled_event_id(wft.scheduled_event_id());
    a->set_started_event_id(wft.started_event_id());
    a->set_cause(cause);
    *a->mutable_failure() = failure;
    a->set_identity(identity);
    a->set_binary_checksum(binary_checksum);
    Append(std::move(e), ms, fx);
  }
  auto* info = ms->mutable_execution();
  // A task refused for events that arrived meanwhile is not a worker failure: the next
  // attempt starts afresh, and it carries those events.
  if (cause == enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND) {
    info->set_workflow_task_attempts_failed(0);
  } else {
    info->set_workflow_task_attempts_failed(info->workflow_task_attempts_failed() + 1);
  }
  ms->clear_workflow_task();
  FlushBuffered(ms, fx);
  if (cause == enums::WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND) return;
  ScheduleWorkflowTask(now, ms, fx);
}

void TimeoutWorkflowTask(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms,
                         Effects* fx) {
  if (!IsRunning(*ms) || !ms->has_workflow_task() || ms->workflow_task().stamp() != timer.stamp()) {
    return;
  }
  const v1::WorkflowTaskInfo wft = ms->workflow_task();
  const bool started = wft.started_event_id() != 0;
  if (timer.timeout_type() == enums::TIMEOUT_TYPE_START_TO_CLOSE && started) {
    if (!wft.transient()) {
      if (wft.speculative()) WriteTransientEvents(ms, fx);
      HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, now);
      auto* a = e.mutable_workflow_task_timed_out_event_attributes();
      a->set_scheduled_event_id(wft.scheduled_event_id());
      a->set_started_event_id(wft.started_event_id());
      a->set_timeout_type(enums::TIMEOUT_TYPE_START_TO_CLOSE);
      Append(std::move(e), ms, fx);
    }
    auto* info = ms->mutable_execution();
    info->set_workflow_task_attempts_failed(info->workflow_task_attempts_failed() + 1);
  } else if (timer.timeout_type() == enums::TIMEOUT_TYPE_SCHEDULE_TO_START && !started) {
    if (!EventsReserved(wft)) {
      HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, now);
      auto* a = e.mutable_workflow_task_timed_out_event_attributes();
      a->set_scheduled_event_id(wft.scheduled_event_id());
      a->set_timeout_type(enums::TIMEOUT_TYPE_SCHEDULE_TO_START);
      Append(std::move(e), ms, fx);
    }
  } else {
    return;
  }
  // The worker that held the task, or its sticky queue, is presumed gone: the next attempt
  // goes to the normal queue with the full history.
  ms->clear_workflow_task();
  ms->clear_sticky();
  FlushBuffered(ms, fx);
  ScheduleWorkflowTask(now, ms, fx);
}

bool ClearStickyForTask(int64_t stamp, v1::MutableState* ms) {
  if (!IsRunning(*ms) || !ms->has_workflow_task()) return false;
  auto* wft = ms->mutable_workflow_task();
  if (wft->stamp() != stamp || wft->started_event_id() != 0 || !wft->sticky()) return false;
  ms->clear_sticky();
  wft->set_sticky(false);
  wft->set_task_queue(ms->execution().task_queue());
  return true;
}

absl::StatusOr<v1::ActivityInfo> RecordActivityTaskStarted(int64_t scheduled_event_id,
                                                           int64_t stamp,
                                                           const std::string& request_id,
                                                           const std::string& identity,
                                                           absl::Time now,
                                                           v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms)) return absl::NotFoundError("Workflow execution already completed.");
  auto it = ms->mutable_activities()->find(scheduled_event_id);
  if (it == ms->mutable_activities()->end() || it->second.stamp() != stamp) {
    return absl::NotFoundError("Activity task not found.");
  }
  v1::ActivityInfo& ai = it->second;
  if (ai.has_started_time()) {
    if (ai.started_request_id() != request_id) {
      return absl::NotFoundError("Activity task already started.");
    }
    return ai;
  }
  *ai.mutable_started_time() = ToProto(now);
  ai.set_started_identity(identity);
  ai.set_started_request_id(request_id);
  const absl::Duration stc = FromProto(ai.start_to_close_timeout());
  if (stc > absl::ZeroDuration()) {
    v1::TimerTask t = NewTimer(v1::TimerTask::KIND_ACTIVITY_TIMEOUT, now + stc, *ms);
    t.set_event_id(scheduled_event_id);
    t.set_stamp(stamp);
    t.set_timeout_type(enums::TIMEOUT_TYPE_START_TO_CLOSE);
    fx->timer_tasks.push_back(std::move(t));
  }
  const absl::Duration hb = FromProto(ai.heartbeat_timeout());
  if (hb > absl::ZeroDuration() && hb < stc) {
    v1::TimerTask t = NewTimer(v1::TimerTask::KIND_ACTIVITY_TIMEOUT, now + hb, *ms);
    t.set_event_id(scheduled_event_id);
    t.set_stamp(stamp);
    t.set_timeout_type(enums::TIMEOUT_TYPE_HEARTBEAT);
    fx->timer_tasks.push_back(std::move(t));
  }
  return ai;
}

absl::StatusOr<v1::ActivityInfo*> FindStartedActivity(const v1::TaskToken& token,
                                                      v1::MutableState* ms) {
  if (!IsRunning(*ms)) return absl::NotFoundError("Workflow execution already completed.");
  auto it = ms->mutable_activities()->find(token.scheduled_event_id());
  if (it == ms->mutable_activities()->end() || it->second.stamp() != token.stamp() ||
      !it->second.has_started_time()) {
    return absl::NotFoundError("Activity task not found.");
  }
  return &it->second;
}

void CompleteActivityTask(int64_t scheduled_event_id, const api::common::v1::Payloads& result,
                          const std::string& identity, absl::Time now, v1::MutableState* ms,
                          Effects* fx) {
  auto it = ms->mutable_activities()->find(scheduled_event_id);
  if (it == ms->mutable_activities()->end()) return;
  std::vector<HistoryEvent> events;
  events.push_back(ActivityStartedEvent(it->second, now));
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED, now);
  auto* a = e.mutable_activity_task_completed_event_attributes();
  *a->mutable_result() = result;
  a->set_scheduled_event_id(scheduled_event_id);
  a->set_identity(identity);
  events.push_back(std::move(e));
  ms->mutable_activities()->erase(it);
  AddExternalEvents(std::move(events), now, ms, fx);
}

void FailActivityTask(int64_t scheduled_event_id, const Failure& failure,
                      const std::string& identity, absl::Time now, v1::MutableState* ms,
                      Effects* fx) {
  auto it = ms->mutable_activities()->find(scheduled_event_id);
  if (it == ms->mutable_activities()->end()) return;
  RetryOrCloseActivity(it->second, failure, enums::TIMEOUT_TYPE_UNSPECIFIED, identity, now, ms, fx);
}

void CancelActivityTask(int64_t scheduled_event_id, const api::common::v1::Payloads& details,
                        const std::string& identity, absl::Time now, v1::MutableState* ms,
                        Effects* fx) {
  auto it = ms->mutable_activities()->find(scheduled_event_id);
  if (it == ms->mutable_activities()->end()) return;
  std::vector<HistoryEvent> events;
  events.push_back(ActivityStartedEvent(it->second, now));
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED, now);
  auto* a = e.mutable_activity_task_canceled_event_attributes();
  *a->mutable_details() = details;
  a->set_scheduled_event_id(scheduled_event_id);
  a->set_latest_cancel_requested_event_id(it->second.cancel_requested_event_id());
  a->set_identity(identity);
  events.push_back(std::move(e));
  ms->mutable_activities()->erase(it);
  AddExternalEvents(std::move(events), now, ms, fx);
}

bool HeartbeatActivity(int64_t scheduled_event_id, const api::common::v1::Payloads& details,
                       absl::Time now, v1::MutableState* ms) {
  auto it = ms->mutable_activities()->find(scheduled_event_id);
  if (it == ms->mutable_activities()->end()) return false;
  *it->second.mutable_heartbeat_details() = details;
  *it->second.mutable_last_heartbeat_time() = ToProto(now);
  return it->second.cancel_requested();
}

void FireUserTimer(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms, Effects* fx) {
  if (!IsRunning(*ms)) return;
  auto it = ms->mutable_timers()->find(timer.timer_id());
  if (it == ms->mutable_timers()->end() || it->second.started_event_id() != timer.event_id()) {
    return;
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_TIMER_FIRED, now);
  e.mutable_timer_fired_event_attributes()->set_timer_id(timer.timer_id());
  e.mutable_timer_fired_event_attributes()->set_started_event_id(timer.event_id());
  ms->mutable_timers()->erase(it);
  std::vector<HistoryEvent> events;
  events.push_back(std::move(e));
  AddExternalEvents(std::move(events), now, ms, fx);
}

void TimeoutActivity(const v1::TimerTask& timer, absl::Time now, v1::MutableState* ms,
                     Effects* fx) {
  if (!IsRunning(*ms)) return;
  auto it = ms->mutable_activities()->find(timer.event_id());
  if (it == ms->mutable_activities()->end()) return;
  const v1::ActivityInfo ai = it->second;
  const auto type = static_cast<enums::TimeoutType>(timer.timeout_type());
  switch (type) {
    case enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
      break;  // spans every attempt: no stamp to check
    case enums::TIMEOUT_TYPE_SCHEDULE_TO_START:
      if (ai.stamp() != timer.stamp() || ai.has_started_time()) return;
      break;
    case enums::TIMEOUT_TYPE_START_TO_CLOSE:
      if (ai.stamp() != timer.stamp() || !ai.has_started_time()) return;
      break;
    case enums::TIMEOUT_TYPE_HEARTBEAT: {
      if (ai.stamp() != timer.stamp() || !ai.has_started_time()) return;
      // A heartbeat from an earlier attempt does not count for this one.
      absl::Time last = FromProto(ai.started_time());
      if (ai.has_last_heartbeat_time()) last = std::max(last, FromProto(ai.last_heartbeat_time()));
      const absl::Time due = last + FromProto(ai.heartbeat_timeout());
      if (due > now) {
        // A heartbeat arrived since the timer was set: wait for the next deadline.
        v1::TimerTask next = timer;
        *next.mutable_visibility_time() = ToProto(due);
        next.clear_task_id();
        fx->timer_tasks.push_back(std::move(next));
        return;
      }
      break;
    }
    default:
      return;
  }
  RetryOrCloseActivity(ai, TimeoutFailure(type, &ai), type, "", now, ms, fx);
}

bool ActivityRetryDue(const v1::TimerTask& timer, const v1::MutableState& ms) {
  if (!IsRunning(ms)) return false;
  auto it = ms.activities().find(timer.event_id());
  return it != ms.activities().end() && it->second.stamp() == timer.stamp() &&
         !it->second.has_started_time();
}

bool HistoryOverWarnLimits(const Limits& limits, const v1::MutableState& ms) {
  return ms.next_event_id() - 1 > limits.history_count_warn ||
         ms.execution().history_size_bytes() > limits.history_size_warn;
}

bool EnforceHistoryLimits(const Limits& limits, absl::Time now, v1::MutableState* ms,
                          Effects* fx) {
  if (!IsRunning(*ms)) return false;
  const char* reason = nullptr;
  if (ms->execution().history_size_bytes() > limits.history_size_error) {
    reason = "Workflow history size exceeds limit.";
  } else if (ms->next_event_id() - 1 > limits.history_count_error) {
    reason = "Workflow history count exceeds limit.";
  }
  if (reason == nullptr) return false;
  TerminateWorkflow(reason, {}, "almanac", now, ms, fx);
  return true;
}

void TerminateWorkflow(const std::string& reason, const api::common::v1::Payloads& details,
                       const std::string& identity, absl::Time now, v1::MutableState* ms,
                       Effects* fx) {
  if (!IsRunning(*ms)) return;
  if (ms->has_workflow_task() && ms->workflow_task().started_event_id() != 0) {
    Failure failure;
    failure.set_message("workflow terminated");
    FailWorkflowTask(enums::WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND, failure, identity, "",
                     now, ms, fx);
  }
  ms->clear_workflow_task();
  FlushBuffered(ms, fx);
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, now);
  auto* a = e.mutable_workflow_execution_terminated_event_attributes();
  a->set_reason(reason);
  if (details.payloads_size() > 0) *a->mutable_details() = details;
  a->set_identity(identity);
  Append(std::move(e), ms, fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_TERMINATED, now, ms, fx);
}

}  // namespace almanac::history
