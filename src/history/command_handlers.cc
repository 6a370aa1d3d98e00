// One handler per command a worker may send in a workflow task completion. Each checks its
// command against the run and the limits, then writes the command's events and edits the
// state; the completion in state_machine.cc runs them in order.

#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "history/state_machine.h"
#include "persistence/search_attributes.h"
#include "history/state_machine_internal.h"

namespace almanac::history::internal {

namespace {

namespace enums = api::enums::v1;
using api::command::v1::Command;
using api::failure::v1::Failure;

CommandError Refuse(enums::WorkflowTaskFailedCause cause, std::string message) {
  return CommandError{cause, std::move(message)};
}

// Checks search attributes a command sets against the run's namespace, writing their types
// in; refuses the command as Temporal does (BAD_SEARCH_ATTRIBUTES, its validator's text).
std::optional<CommandError> CheckSearchAttributes(const CommandContext& ctx,
                                                  api::common::v1::SearchAttributes* attributes) {
  if (ctx.context == nullptr) return std::nullopt;
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES;
  const api::common::v1::SearchAttributes given = *attributes;
  absl::Status st = persistence::ValidateSearchAttributes(
      ctx.context->search_attributes, ctx.context->namespace_name, {}, attributes);
  if (!st.ok()) return Refuse(bad, std::string(st.message()));
  // Sizes as the worker sent them (before the types were written in), the run's attributes
  // after the change included.
  st = persistence::CheckSearchAttributeSizes({}, given);
  if (st.ok()) {
    api::common::v1::SearchAttributes merged = ctx.ms->execution().search_attributes();
    persistence::MergeSearchAttributes(given, &merged);
    st = persistence::CheckSearchAttributeSizes({}, merged);
  }
  if (!st.ok()) {
    CommandError err = Refuse(bad, std::string(st.message()));
    err.terminate = true;
    return err;
  }
  return std::nullopt;
}

// Applies Temporal's defaults and caps to an activity's timeouts. Returns an error message
// when a timeout is negative, or when the command sets neither schedule-to-close nor
// start-to-close and the run has no run timeout to bound it.
std::optional<std::string> NormalizeActivityTimeouts(
    api::command::v1::ScheduleActivityTaskCommandAttributes* a, absl::Duration run_timeout) {
  absl::Duration s2c = FromProto(a->schedule_to_close_timeout());
  absl::Duration s2s = FromProto(a->schedule_to_start_timeout());
  absl::Duration stc = FromProto(a->start_to_close_timeout());
  absl::Duration hb = FromProto(a->heartbeat_timeout());
  if (s2c < absl::ZeroDuration() || s2s < absl::ZeroDuration() || stc < absl::ZeroDuration() ||
      hb < absl::ZeroDuration()) {
    return "activity timeouts must not be negative";
  }
  const absl::Duration zero = absl::ZeroDuration();
  if (run_timeout > zero && (s2c == zero || s2c > run_timeout)) s2c = run_timeout;
  if (s2c > zero) {
    if (s2s == zero || s2s > s2c) s2s = s2c;
    if (stc == zero || stc > s2c) stc = s2c;
  } else if (stc > zero) {
    // Neither the command nor the run bounds the activity's whole life.
  } else {
    return "A valid StartToClose or ScheduleToCloseTimeout is not set on "
           "ScheduleActivityTaskCommand.";
  }
  if (hb > stc) hb = stc;
  *a->mutable_schedule_to_close_timeout() = ToProto(s2c);
  *a->mutable_schedule_to_start_timeout() = ToProto(s2s);
  *a->mutable_start_to_close_timeout() = ToProto(stc);
  *a->mutable_heartbeat_timeout() = ToProto(hb);
  return std::nullopt;
}

// A command that closes the run is refused while events wait in the buffer, or updates
// wait for a task: the worker has not seen them, and a new workflow task will carry them.
std::optional<CommandError> RefuseCloseWhileEventsWait(const CommandContext& ctx) {
  // Temporal's failure message for the cause is the cause's name.
  if (ctx.ms->buffered_events_size() > 0 ||
      (ctx.context != nullptr && ctx.context->updates_waiting)) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND, "UnhandledCommand");
  }
  return std::nullopt;
}

}  // namespace

std::optional<CommandError> HandleScheduleActivityTask(const Command& command,
                                                       CommandContext* ctx) {
  v1::MutableState* ms = ctx->ms;
  // A copy: defaults and caps are written into it before it becomes the event.
  auto a = command.schedule_activity_task_command_attributes();
  if (a.activity_id().empty() || a.activity_type().name().empty()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
                  "ActivityId and ActivityType are required");
  }
  if (static_cast<int>(a.activity_id().size()) > ctx->limits.max_id_length) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
                  "ActivityId exceeds length limit");
  }
  if (ms->activities_size() >= ctx->limits.max_pending_activities) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
                  absl::StrCat("the run has ", ms->activities_size(),
                               " pending activities, the limit"));
  }
  if (static_cast<int64_t>(a.input().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,
                  "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.");
  }
  for (const auto& [id, pending] : ms->activities()) {
    if (pending.activity_id() == a.activity_id()) {
      return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
                    absl::StrCat("activity id already in use: ", a.activity_id()));
    }
  }
  if (a.task_queue().name().empty()) {
    a.mutable_task_queue()->set_name(ms->execution().task_queue());
  }
  a.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  if (auto err = NormalizeActivityTimeouts(&a, FromProto(ms->execution().run_timeout()))) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES, *err);
  }
  DefaultRetryPolicy(a.mutable_retry_policy());

  const absl::Time now = ctx->now;
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, now);
  auto* ea = e.mutable_activity_task_scheduled_event_attributes();
  ea->set_activity_id(a.activity_id());
  *ea->mutable_activity_type() = a.activity_type();
  *ea->mutable_task_queue() = a.task_queue();
  if (a.has_header()) *ea->mutable_header() = a.header();
  if (a.has_input()) *ea->mutable_input() = a.input();
  *ea->mutable_schedule_to_close_timeout() = a.schedule_to_close_timeout();
  *ea->mutable_schedule_to_start_timeout() = a.schedule_to_start_timeout();
  *ea->mutable_start_to_close_timeout() = a.start_to_close_timeout();
  *ea->mutable_heartbeat_timeout() = a.heartbeat_timeout();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  *ea->mutable_retry_policy() = a.retry_policy();
  if (a.has_priority()) *ea->mutable_priority() = a.priority();
  const v1::ActivityInfo ai = ActivityInfoOf(*ea, 0, now);
  const int64_t sched_id = Append(std::move(e), ms, ctx->fx);

  v1::ActivityInfo scheduled = ai;
  scheduled.set_scheduled_event_id(sched_id);
  AddActivity(std::move(scheduled), now, ms, ctx->fx);
  return std::nullopt;
}

std::optional<CommandError> HandleRequestCancelActivityTask(const Command& command,
                                                            CommandContext* ctx) {
  v1::MutableState* ms = ctx->ms;
  const int64_t sched_id =
      command.request_cancel_activity_task_command_attributes().scheduled_event_id();
  auto it = ms->mutable_activities()->find(sched_id);
  if (it == ms->mutable_activities()->end()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
                  absl::StrCat("no pending activity with scheduled event id ", sched_id));
  }
  HistoryEvent req = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, ctx->now);
  auto* ra = req.mutable_activity_task_cancel_requested_event_attributes();
  ra->set_scheduled_event_id(sched_id);
  ra->set_workflow_task_completed_event_id(ctx->completed_event_id);
  const int64_t req_id = Append(std::move(req), ms, ctx->fx);
  v1::ActivityInfo& ai = it->second;
  if (ai.has_started_time()) {
    // A running attempt learns of the request from its next heartbeat; the activity is
    // canceled when the worker reports it.
    ai.set_cancel_requested(true);
    ai.set_cancel_requested_event_id(req_id);
    return std::nullopt;
  }
  // Not started: canceled at once.
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED, ctx->now);
  auto* ea = e.mutable_activity_task_canceled_event_attributes();
  ea->set_scheduled_event_id(sched_id);
  ea->set_latest_cancel_requested_event_id(req_id);
  Append(std::move(e), ms, ctx->fx);
  ms->mutable_activities()->erase(it);
  // The worker learns of the cancellation in a new workflow task.
  ctx->new_task_due = true;
  return std::nullopt;
}

std::optional<CommandError> HandleStartTimer(const Command& command, CommandContext* ctx) {
  v1::MutableState* ms = ctx->ms;
  const auto& a = command.start_timer_command_attributes();
  if (a.timer_id().empty()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
                  "TimerId is not set");
  }
  if (ms->timers().contains(a.timer_id())) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
                  absl::StrCat("timer id already in use: ", a.timer_id()));
  }
  const absl::Duration d = FromProto(a.start_to_fire_timeout());
  if (d <= absl::ZeroDuration()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
                  "StartToFireTimeout must be positive");
  }
  const absl::Time now = ctx->now;
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_TIMER_STARTED, now);
  auto* ea = e.mutable_timer_started_event_attributes();
  ea->set_timer_id(a.timer_id());
  *ea->mutable_start_to_fire_timeout() = a.start_to_fire_timeout();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  const int64_t started_id = Append(std::move(e), ms, ctx->fx);
  v1::TimerInfo ti;
  ti.set_timer_id(a.timer_id());
  ti.set_started_event_id(started_id);
  *ti.mutable_expiry_time() = ToProto(now + d);
  (*ms->mutable_timers())[a.timer_id()] = ti;
  v1::TimerTask t = NewTimer(v1::TimerTask::KIND_USER_TIMER, now + d, *ms);
  t.set_timer_id(a.timer_id());
  t.set_event_id(started_id);
  ctx->fx->timer_tasks.push_back(std::move(t));
  return std::nullopt;
}

std::optional<CommandError> HandleCancelTimer(const Command& command, CommandContext* ctx) {
  v1::MutableState* ms = ctx->ms;
  const auto& a = command.cancel_timer_command_attributes();
  auto it = ms->mutable_timers()->find(a.timer_id());
  if (it == ms->mutable_timers()->end()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
                  absl::StrCat("no pending timer with id ", a.timer_id()));
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_TIMER_CANCELED, ctx->now);
  auto* ea = e.mutable_timer_canceled_event_attributes();
  ea->set_timer_id(a.timer_id());
  ea->set_started_event_id(it->second.started_event_id());
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  ea->set_identity(ctx->request.identity());
  Append(std::move(e), ms, ctx->fx);
  // The timer task stays queued; it finds no timer when it fires and does nothing.
  ms->mutable_timers()->erase(it);
  return std::nullopt;
}

std::optional<CommandError> HandleRecordMarker(const Command& command, CommandContext* ctx) {
  const auto& a = command.record_marker_command_attributes();
  if (a.marker_name().empty()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
                  "MarkerName is not set");
  }
  int64_t details_size = 0;
  for (const auto& [k, v] : a.details()) details_size += static_cast<int64_t>(v.ByteSizeLong());
  if (details_size > ctx->limits.blob_size_error) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
                  "RecordMarkerCommandAttributes.Details exceeds size limit.");
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_MARKER_RECORDED, ctx->now);
  auto* ea = e.mutable_marker_recorded_event_attributes();
  ea->set_marker_name(a.marker_name());
  *ea->mutable_details() = a.details();
  if (a.has_header()) *ea->mutable_header() = a.header();
  if (a.has_failure()) *ea->mutable_failure() = a.failure();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  Append(std::move(e), ctx->ms, ctx->fx);
  return std::nullopt;
}

std::optional<CommandError> HandleUpsertWorkflowSearchAttributes(const Command& command,
                                                                 CommandContext* ctx) {
  const auto& a = command.upsert_workflow_search_attributes_command_attributes();
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES;
  if (!command.has_upsert_workflow_search_attributes_command_attributes()) {
    return Refuse(bad, "UpsertWorkflowSearchAttributesCommandAttributes is not set on command.");
  }
  if (!a.has_search_attributes()) return Refuse(bad, "SearchAttributes is not set on command.");
  if (a.search_attributes().indexed_fields().empty()) {
    return Refuse(bad, "IndexedFields is empty on command.");
  }
  api::common::v1::SearchAttributes attributes = a.search_attributes();
  if (auto err = CheckSearchAttributes(*ctx, &attributes)) return err;
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, ctx->now);
  auto* ea = e.mutable_upsert_workflow_search_attributes_event_attributes();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  *ea->mutable_search_attributes() = attributes;
  Append(std::move(e), ctx->ms, ctx->fx);
  // Upserted keys replace their old values, or remove them (null, []); others keep theirs.
  persistence::MergeSearchAttributes(
      attributes, ctx->ms->mutable_execution()->mutable_search_attributes());
  return std::nullopt;
}

std::optional<CommandError> HandleModifyWorkflowProperties(const Command& command,
                                                           CommandContext* ctx) {
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES;
  if (!command.has_modify_workflow_properties_command_attributes()) {
    return Refuse(bad, "ModifyWorkflowPropertiesCommandAttributes is not set on command.");
  }
  const auto& a = command.modify_workflow_properties_command_attributes();
  if (static_cast<int64_t>(a.upserted_memo().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(bad, "ModifyWorkflowPropertiesCommandAttributes.UpsertedMemo exceeds size limit.");
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED, ctx->now);
  auto* ea = e.mutable_workflow_properties_modified_event_attributes();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  if (a.has_upserted_memo()) *ea->mutable_upserted_memo() = a.upserted_memo();
  Append(std::move(e), ctx->ms, ctx->fx);
  persistence::MergeMemo(a.upserted_memo(), ctx->ms->mutable_execution()->mutable_memo());
  return std::nullopt;
}

std::optional<CommandError> HandleCompleteWorkflowExecution(const Command& command,
                                                            CommandContext* ctx) {
  if (auto err = RefuseCloseWhileEventsWait(*ctx)) return err;
  const auto& a = command.complete_workflow_execution_command_attributes();
  if (static_cast<int64_t>(a.result().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES,
                  "CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit.");
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, ctx->now);
  auto* ea = e.mutable_workflow_execution_completed_event_attributes();
  *ea->mutable_result() = a.result();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  // A cron run's end starts the next run, at the schedule's next time.
  const v1::ExecutionInfo& info = ctx->ms->execution();
  std::optional<absl::Duration> cron;
  if (ctx->chain.started_event != nullptr) {
    cron = CronBackoff(info.cron_schedule(), FromProto(info.execution_time()), ctx->now);
  }
  Append(std::move(e), ctx->ms, ctx->fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED, ctx->now, ctx->ms, ctx->fx);
  if (cron.has_value()) {
    BuildSuccessorRun(CronSuccessor(ctx->chain, &a.result(), nullptr, *cron), ctx->chain,
                      ctx->now, ctx->ms, ctx->fx);
  }
  ctx->closed = true;
  return std::nullopt;
}

std::optional<CommandError> HandleFailWorkflowExecution(const Command& command,
                                                        CommandContext* ctx) {
  if (auto err = RefuseCloseWhileEventsWait(*ctx)) return err;
  const Failure& failure = command.fail_workflow_execution_command_attributes().failure();
  if (static_cast<int64_t>(failure.ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
                  "FailWorkflowExecutionCommandAttributes.Failure exceeds size limit.");
  }
  const ChainContext& chain = ctx->chain;
  enums::RetryState retry_state;
  std::optional<absl::Duration> backoff;
  std::optional<absl::Duration> cron;
  if (chain.started_event != nullptr) {
    backoff = WorkflowRetry(*ctx->ms, &failure, ctx->now, &retry_state);
    // Past its retries, a cron run still goes on as the cron's next run.
    const v1::ExecutionInfo& info = ctx->ms->execution();
    if (!backoff.has_value()) {
      cron = CronBackoff(info.cron_schedule(), FromProto(info.execution_time()), ctx->now);
    }
  } else {
    // The engine gives no chain to a run without a retry policy; one with a policy but no
    // chain cannot be retried.
    retry_state = ctx->ms->execution().has_retry_policy()
                      ? enums::RETRY_STATE_INTERNAL_SERVER_ERROR
                      : enums::RETRY_STATE_RETRY_POLICY_NOT_SET;
  }
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, ctx->now);
  auto* ea = e.mutable_workflow_execution_failed_event_attributes();
  *ea->mutable_failure() = failure;
  ea->set_retry_state(retry_state);
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  Append(std::move(e), ctx->ms, ctx->fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_FAILED, ctx->now, ctx->ms, ctx->fx);
  if (backoff.has_value()) {
    BuildSuccessorRun(RetrySuccessor(chain, &failure, *backoff), chain, ctx->now, ctx->ms,
                      ctx->fx);
  } else if (cron.has_value()) {
    BuildSuccessorRun(CronSuccessor(chain, nullptr, &failure, *cron), chain, ctx->now, ctx->ms,
                      ctx->fx);
  }
  ctx->closed = true;
  return std::nullopt;
}

std::optional<CommandError> HandleCancelWorkflowExecution(const Command& command,
                                                          CommandContext* ctx) {
  if (auto err = RefuseCloseWhileEventsWait(*ctx)) return err;
  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, ctx->now);
  auto* ea = e.mutable_workflow_execution_canceled_event_attributes();
  *ea->mutable_details() = command.cancel_workflow_execution_command_attributes().details();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  Append(std::move(e), ctx->ms, ctx->fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_CANCELED, ctx->now, ctx->ms, ctx->fx);
  ctx->closed = true;
  return std::nullopt;
}

std::optional<CommandError> HandleContinueAsNewWorkflowExecution(const Command& command,
                                                                 CommandContext* ctx) {
  if (auto err = RefuseCloseWhileEventsWait(*ctx)) return err;
  const auto& a = command.continue_as_new_workflow_execution_command_attributes();
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES;
  if (ctx->chain.started_event == nullptr || ctx->chain.next_run_id.empty()) {
    return Refuse(bad, "the run's first event is needed to continue it as new");
  }
  if (!a.cron_schedule().empty() &&
      !CronBackoff(a.cron_schedule(), ctx->now, ctx->now).has_value()) {
    return Refuse(bad, "invalid CronSchedule.");
  }
  for (const auto* d : {&a.workflow_run_timeout(), &a.workflow_task_timeout(),
                        &a.backoff_start_interval()}) {
    if (FromProto(*d) < absl::ZeroDuration()) {
      return Refuse(bad, "ContinueAsNew timeouts and backoff must not be negative");
    }
  }
  if (static_cast<int64_t>(a.input().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(bad, "ContinueAsNewWorkflowExecutionCommandAttributes.Input exceeds size limit.");
  }
  const v1::ExecutionInfo& info = ctx->ms->execution();
  const std::string type = a.workflow_type().name().empty() ? info.workflow_type()
                                                            : a.workflow_type().name();
  const std::string queue = a.task_queue().name().empty() ? info.task_queue() : a.task_queue().name();
  const absl::Duration backoff = FromProto(a.backoff_start_interval());

  SuccessorSpec spec;
  spec.initiator = enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW;
  spec.backoff = backoff;
  spec.workflow_type = type;
  spec.task_queue = queue;
  spec.input = a.input();
  if (FromProto(a.workflow_run_timeout()) > absl::ZeroDuration()) {
    spec.run_timeout = FromProto(a.workflow_run_timeout());
  }
  if (FromProto(a.workflow_task_timeout()) > absl::ZeroDuration()) {
    spec.task_timeout = std::min(FromProto(a.workflow_task_timeout()),
                                 ctx->limits.max_workflow_task_timeout);
  }
  // Memo and search attributes carry over unless the command replaces them.
  if (a.has_memo()) spec.memo = a.memo();
  if (a.has_search_attributes()) {
    api::common::v1::SearchAttributes attributes = a.search_attributes();
    if (auto err = CheckSearchAttributes(*ctx, &attributes)) return err;
    spec.search_attributes = std::move(attributes);
  }
  spec.header = a.header();
  if (a.has_retry_policy()) spec.retry_policy = a.retry_policy();
  spec.cron_schedule = a.cron_schedule();
  if (a.has_last_completion_result()) spec.last_completion_result = a.last_completion_result();
  if (a.has_failure()) spec.continued_failure = a.failure();

  HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, ctx->now);
  auto* ea = e.mutable_workflow_execution_continued_as_new_event_attributes();
  ea->mutable_workflow_type()->set_name(type);
  ea->mutable_task_queue()->set_name(queue);
  ea->mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  if (a.has_input()) *ea->mutable_input() = a.input();
  *ea->mutable_workflow_run_timeout() = spec.run_timeout.has_value()
                                            ? ToProto(*spec.run_timeout)
                                            : info.run_timeout();
  *ea->mutable_workflow_task_timeout() =
      spec.task_timeout.has_value() ? ToProto(*spec.task_timeout) : info.task_timeout();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  *ea->mutable_backoff_start_interval() = ToProto(backoff);
  ea->set_initiator(enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW);
  if (a.has_last_completion_result()) *ea->mutable_last_completion_result() = a.last_completion_result();
  if (a.has_header()) *ea->mutable_header() = a.header();
  *ea->mutable_memo() = a.has_memo() ? a.memo() : info.memo();
  *ea->mutable_search_attributes() =
      spec.search_attributes.has_value() ? *spec.search_attributes : info.search_attributes();
  Append(std::move(e), ctx->ms, ctx->fx);
  Close(enums::WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, ctx->now, ctx->ms, ctx->fx);
  BuildSuccessorRun(spec, ctx->chain, ctx->now, ctx->ms, ctx->fx);
  ctx->closed = true;
  return std::nullopt;
}

std::optional<CommandError> HandleStartChildWorkflowExecution(const Command& command,
                                                              CommandContext* ctx) {
  // A copy: defaults are written into it before it becomes the event.
  auto a = command.start_child_workflow_execution_command_attributes();
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES;
  const v1::ExecutionInfo& parent = ctx->ms->execution();
  const std::string own_namespace = ctx->context != nullptr ? ctx->context->namespace_name : "";
  std::string namespace_id = parent.namespace_id();
  if (a.namespace_().empty() || a.namespace_() == own_namespace) {
    a.set_namespace_(own_namespace);
  } else {
    static const std::map<std::string, std::string> kNone;
    const auto& ids = ctx->context != nullptr ? ctx->context->namespace_ids : kNone;
    auto it = ids.find(a.namespace_());
    if (it == ids.end()) {
      return Refuse(bad, absl::StrCat("Namespace name: ", a.namespace_(), " not found."));
    }
    namespace_id = it->second;
  }
  const std::string& wid = a.workflow_id();
  const std::string& type = a.workflow_type().name();
  const std::string& ns = a.namespace_();
  if (wid.empty()) {
    return Refuse(bad, absl::StrCat("Required field WorkflowId is not set on "
                                    "StartChildWorkflowExecutionCommand. WorkflowType=",
                                    type, " Namespace=", ns));
  }
  if (type.empty()) {
    return Refuse(bad, absl::StrCat("Required field WorkflowType is not set on "
                                    "StartChildWorkflowExecutionCommand. WorkflowId=",
                                    wid, " Namespace=", ns));
  }
  const int limit = ctx->limits.max_id_length;
  if (static_cast<int>(wid.size()) > limit) {
    return Refuse(bad, absl::StrCat("WorkflowId on StartChildWorkflowExecutionCommand exceeds "
                                    "length limit. WorkflowId=", wid, " Length=", wid.size(),
                                    " Limit=", limit, " WorkflowType=", type, " Namespace=", ns));
  }
  if (static_cast<int>(type.size()) > limit) {
    return Refuse(bad, absl::StrCat("WorkflowType on StartChildWorkflowExecutionCommand exceeds "
                                    "length limit. WorkflowId=", wid, " WorkflowType=", type,
                                    " Length=", type.size(), " Limit=", limit,
                                    " Namespace=", ns));
  }
  const std::pair<const google::protobuf::Duration*, const char*> timeouts[] = {
      {&a.workflow_execution_timeout(), "WorkflowExecutionTimeout"},
      {&a.workflow_run_timeout(), "WorkflowRunTimeout"},
      {&a.workflow_task_timeout(), "WorkflowTaskTimeout"}};
  for (const auto& [d, name] : timeouts) {
    if (FromProto(*d) < absl::ZeroDuration()) {
      return Refuse(bad, absl::StrCat("Invalid ", name, " on StartChildWorkflowExecutionCommand: "
                                      "negative duration. WorkflowId=", wid, " WorkflowType=",
                                      type, " Namespace=", ns));
    }
  }
  // Attributes for a child in this namespace are checked here; one elsewhere is checked
  // against its own namespace when it starts.
  if (a.has_search_attributes() && namespace_id == parent.namespace_id()) {
    if (auto err = CheckSearchAttributes(*ctx, a.mutable_search_attributes())) return err;
  }
  if (!a.cron_schedule().empty() &&
      !CronBackoff(a.cron_schedule(), ctx->now, ctx->now).has_value()) {
    return Refuse(bad, absl::StrCat("invalid CronSchedule on StartChildWorkflowExecutionCommand: "
                                    "invalid CronSchedule.. WorkflowId=", wid, " WorkflowType=",
                                    type, " Namespace=", ns));
  }
  if (static_cast<int64_t>(a.input().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(bad, "StartChildWorkflowExecutionCommandAttributes. Input exceeds size limit.");
  }
  if (ctx->ms->children_size() >= ctx->limits.max_pending_children) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
                  absl::StrCat("the run has ", ctx->ms->children_size(),
                               " pending child workflows, the limit"));
  }
  // Temporal's defaults: the parent's task queue, a run timeout bounded by the execution
  // timeout, the default task timeout bounded by the run timeout; TERMINATE; ALLOW_DUPLICATE.
  if (a.task_queue().name().empty()) a.mutable_task_queue()->set_name(parent.task_queue());
  a.mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  const absl::Duration exec = FromProto(a.workflow_execution_timeout());
  absl::Duration run = FromProto(a.workflow_run_timeout());
  if (exec > absl::ZeroDuration() && (run == absl::ZeroDuration() || run > exec)) run = exec;
  absl::Duration task = FromProto(a.workflow_task_timeout());
  if (task == absl::ZeroDuration()) task = ctx->limits.default_workflow_task_timeout;
  task = std::min(task, ctx->limits.max_workflow_task_timeout);
  if (run > absl::ZeroDuration()) task = std::min(task, run);
  if (a.parent_close_policy() == enums::PARENT_CLOSE_POLICY_UNSPECIFIED) {
    a.set_parent_close_policy(enums::PARENT_CLOSE_POLICY_TERMINATE);
  }
  if (a.workflow_id_reuse_policy() == enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED) {
    a.set_workflow_id_reuse_policy(enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE);
  }

  HistoryEvent e =
      NewEvent(enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, ctx->now);
  auto* ea = e.mutable_start_child_workflow_execution_initiated_event_attributes();
  ea->set_namespace_(ns);
  ea->set_namespace_id(namespace_id);
  ea->set_workflow_id(wid);
  *ea->mutable_workflow_type() = a.workflow_type();
  *ea->mutable_task_queue() = a.task_queue();
  if (a.has_input()) *ea->mutable_input() = a.input();
  if (exec > absl::ZeroDuration()) *ea->mutable_workflow_execution_timeout() = ToProto(exec);
  *ea->mutable_workflow_run_timeout() = ToProto(run);
  *ea->mutable_workflow_task_timeout() = ToProto(task);
  ea->set_parent_close_policy(a.parent_close_policy());
  ea->set_control(a.control());
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  ea->set_workflow_id_reuse_policy(a.workflow_id_reuse_policy());
  if (a.has_retry_policy()) *ea->mutable_retry_policy() = a.retry_policy();
  ea->set_cron_schedule(a.cron_schedule());
  if (a.has_header()) *ea->mutable_header() = a.header();
  if (a.has_memo()) *ea->mutable_memo() = a.memo();
  if (a.has_search_attributes()) *ea->mutable_search_attributes() = a.search_attributes();
  if (a.has_priority()) *ea->mutable_priority() = a.priority();
  const int64_t id = Append(std::move(e), ctx->ms, ctx->fx);
  auto& child = (*ctx->ms->mutable_children())[id];
  child.set_initiated_event_id(id);
  child.set_namespace_(ns);
  child.set_namespace_id(namespace_id);
  child.set_workflow_id(wid);
  child.set_workflow_type(type);
  child.set_parent_close_policy(a.parent_close_policy());
  child.set_create_request_id(absl::StrCat(parent.run_id(), ":child:", id));
  v1::TransferTask t;
  t.set_kind(v1::TransferTask::KIND_START_CHILD);
  *t.mutable_run() = RunOf(*ctx->ms);
  t.set_scheduled_event_id(id);
  ctx->fx->transfer_tasks.push_back(std::move(t));
  return std::nullopt;
}

std::optional<CommandError> HandleSignalExternalWorkflowExecution(const Command& command,
                                                                  CommandContext* ctx) {
  const auto& a = command.signal_external_workflow_execution_command_attributes();
  const auto cause = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES;
  if (a.execution().workflow_id().empty()) {
    return Refuse(cause, "WorkflowId is not set on SignalExternalWorkflowExecutionCommand.");
  }
  if (a.signal_name().empty()) {
    return Refuse(cause, "SignalName is not set on SignalExternalWorkflowExecutionCommand.");
  }
  if (static_cast<int64_t>(a.input().ByteSizeLong()) > ctx->limits.blob_size_error) {
    return Refuse(cause, "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit.");
  }
  if (ctx->ms->signals_requested_size() >= ctx->limits.max_pending_signals) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
                  absl::StrCat("the run has ", ctx->ms->signals_requested_size(),
                               " pending signals to other workflows, the limit"));
  }
  HistoryEvent e =
      NewEvent(enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, ctx->now);
  auto* ea = e.mutable_signal_external_workflow_execution_initiated_event_attributes();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  ea->set_namespace_(a.namespace_().empty() && ctx->context != nullptr
                         ? ctx->context->namespace_name
                         : a.namespace_());
  *ea->mutable_workflow_execution() = a.execution();
  ea->set_signal_name(a.signal_name());
  if (a.has_input()) *ea->mutable_input() = a.input();
  ea->set_control(a.control());
  ea->set_child_workflow_only(a.child_workflow_only());
  if (a.has_header()) *ea->mutable_header() = a.header();
  const int64_t id = Append(std::move(e), ctx->ms, ctx->fx);
  auto& info = (*ctx->ms->mutable_signals_requested())[id];
  info.set_initiated_event_id(id);
  info.set_request_id(absl::StrCat(ctx->ms->execution().run_id(), ":signal:", id));
  v1::TransferTask t;
  t.set_kind(v1::TransferTask::KIND_SIGNAL_EXECUTION);
  *t.mutable_run() = RunOf(*ctx->ms);
  t.set_scheduled_event_id(id);
  ctx->fx->transfer_tasks.push_back(std::move(t));
  return std::nullopt;
}

std::optional<CommandError> HandleRequestCancelExternalWorkflowExecution(const Command& command,
                                                                         CommandContext* ctx) {
  const auto& a = command.request_cancel_external_workflow_execution_command_attributes();
  if (a.workflow_id().empty()) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
                  "WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand.");
  }
  if (ctx->ms->cancels_requested_size() >= ctx->limits.max_pending_cancel_requests) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
                  absl::StrCat("the run has ", ctx->ms->cancels_requested_size(),
                               " pending cancellation requests to other workflows, the limit"));
  }
  HistoryEvent e =
      NewEvent(enums::EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED, ctx->now);
  auto* ea = e.mutable_request_cancel_external_workflow_execution_initiated_event_attributes();
  ea->set_workflow_task_completed_event_id(ctx->completed_event_id);
  ea->set_namespace_(a.namespace_().empty() && ctx->context != nullptr
                         ? ctx->context->namespace_name
                         : a.namespace_());
  ea->mutable_workflow_execution()->set_workflow_id(a.workflow_id());
  ea->mutable_workflow_execution()->set_run_id(a.run_id());
  ea->set_control(a.control());
  ea->set_child_workflow_only(a.child_workflow_only());
  ea->set_reason(a.reason());
  const int64_t id = Append(std::move(e), ctx->ms, ctx->fx);
  auto& info = (*ctx->ms->mutable_cancels_requested())[id];
  info.set_initiated_event_id(id);
  info.set_request_id(absl::StrCat(ctx->ms->execution().run_id(), ":cancel:", id));
  v1::TransferTask t;
  t.set_kind(v1::TransferTask::KIND_CANCEL_EXECUTION);
  *t.mutable_run() = RunOf(*ctx->ms);
  t.set_scheduled_event_id(id);
  ctx->fx->transfer_tasks.push_back(std::move(t));
  return std::nullopt;
}

std::optional<CommandError> HandleProtocolMessage(const Command& command, CommandContext* ctx) {
  const std::string& id = command.protocol_message_command_attributes().message_id();
  for (const auto& m : ctx->request.messages()) {
    if (m.id() != id) continue;
    if (!ctx->applied_messages.insert(id).second) break;  // named twice
    static const CompletionContext kNone;
    return ApplyMessage(m, ctx->context != nullptr ? *ctx->context : kNone, ctx->now, ctx->ms,
                        ctx->fx);
  }
  return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
                absl::StrCat("ProtocolMessageCommand names message ", id,
                             ", which the completion does not carry once"));
}

std::optional<CommandError> ApplyMessage(const api::protocol::v1::Message& message,
                                         const CompletionContext& context, absl::Time now,
                                         v1::MutableState* ms, Effects* fx) {
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE;
  const std::string& update_id = message.protocol_instance_id();
  if (update_id.empty()) return Refuse(bad, "a protocol message has no protocol_instance_id");
  if (message.body().Is<api::update::v1::Acceptance>()) {
    api::update::v1::Acceptance acceptance;
    if (!message.body().UnpackTo(&acceptance)) return Refuse(bad, "unable to unmarshal Acceptance");
    auto known = ms->updates().find(update_id);
    const bool admitted_by_event =
        known != ms->updates().end() && known->second.accepted_event_id() == 0;
    if (known != ms->updates().end() && !admitted_by_event) {
      return Refuse(bad, absl::StrCat("update ", update_id, " is already accepted"));
    }
    HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED, now);
    auto* a = e.mutable_workflow_execution_update_accepted_event_attributes();
    a->set_protocol_instance_id(update_id);
    a->set_accepted_request_message_id(acceptance.accepted_request_message_id());
    a->set_accepted_request_sequencing_event_id(acceptance.accepted_request_sequencing_event_id());
    // An update admitted by an event has its request there already.
    if (!admitted_by_event) {
      auto it = context.update_requests.find(update_id);
      *a->mutable_accepted_request() =
          it != context.update_requests.end() ? it->second : acceptance.accepted_request();
    }
    const int64_t id = Append(std::move(e), ms, fx);
    auto& info = (*ms->mutable_updates())[update_id];
    info.set_update_id(update_id);
    info.set_accepted_event_id(id);
    fx->updates.push_back({update_id, UpdateResult::Kind::kAccepted, {}});
    return std::nullopt;
  }
  if (message.body().Is<api::update::v1::Rejection>()) {
    api::update::v1::Rejection rejection;
    if (!message.body().UnpackTo(&rejection)) return Refuse(bad, "unable to unmarshal Rejection");
    if (auto known = ms->updates().find(update_id); known != ms->updates().end()) {
      if (known->second.accepted_event_id() != 0) {
        return Refuse(bad,
                      absl::StrCat("update ", update_id, " is accepted and cannot be rejected"));
      }
      ms->mutable_updates()->erase(update_id);  // admitted by an event, now rejected
    }
    UpdateResult r{update_id, UpdateResult::Kind::kRejected, {}};
    *r.outcome.mutable_failure() = rejection.failure();
    fx->updates.push_back(std::move(r));
    return std::nullopt;
  }
  if (message.body().Is<api::update::v1::Response>()) {
    api::update::v1::Response response;
    if (!message.body().UnpackTo(&response)) return Refuse(bad, "unable to unmarshal Response");
    auto it = ms->mutable_updates()->find(update_id);
    if (it == ms->mutable_updates()->end() || it->second.accepted_event_id() == 0 ||
        it->second.completed_event_id() != 0) {
      return Refuse(bad, absl::StrCat("update ", update_id, " is not accepted and running"));
    }
    HistoryEvent e = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, now);
    auto* a = e.mutable_workflow_execution_update_completed_event_attributes();
    *a->mutable_meta() = response.meta();
    if (a->meta().update_id().empty()) a->mutable_meta()->set_update_id(update_id);
    a->set_accepted_event_id(it->second.accepted_event_id());
    *a->mutable_outcome() = response.outcome();
    it->second.set_completed_event_id(Append(std::move(e), ms, fx));
    fx->updates.push_back({update_id, UpdateResult::Kind::kCompleted, response.outcome()});
    return std::nullopt;
  }
  return Refuse(bad, absl::StrCat("Message type ", message.body().type_url(), " not supported"));
}

std::optional<CommandError> HandleUnsupportedCommand(const Command& command, CommandContext*) {
  return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                absl::StrCat("command ", enums::CommandType_Name(command.command_type()),
                             " is not supported by this server yet"));
}

CommandHandler HandlerFor(enums::CommandType type) {
  switch (type) {
    case enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK:
      return &HandleScheduleActivityTask;
    case enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK:
      return &HandleRequestCancelActivityTask;
    case enums::COMMAND_TYPE_START_TIMER:
      return &HandleStartTimer;
    case enums::COMMAND_TYPE_CANCEL_TIMER:
      return &HandleCancelTimer;
    case enums::COMMAND_TYPE_RECORD_MARKER:
      return &HandleRecordMarker;
    case enums::COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
      return &HandleUpsertWorkflowSearchAttributes;
    case enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION:
      return &HandleCompleteWorkflowExecution;
    case enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION:
      return &HandleFailWorkflowExecution;
    case enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION:
      return &HandleCancelWorkflowExecution;
    case enums::COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION:
      return &HandleSignalExternalWorkflowExecution;
    case enums::COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION:
      return &HandleStartChildWorkflowExecution;
    case enums::COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION:
      return &HandleContinueAsNewWorkflowExecution;
    case enums::COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION:
      return &HandleRequestCancelExternalWorkflowExecution;
    case enums::COMMAND_TYPE_PROTOCOL_MESSAGE:
      return &HandleProtocolMessage;
    case enums::COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES:
      return &HandleModifyWorkflowProperties;
    default:
      // Nexus operations, ...: refused until implemented.
      return &HandleUnsupportedCommand;
  }
}

std::optional<CommandError> ApplyCommand(const Command& command, CommandContext* ctx) {
  if (ctx->closed) {
    return Refuse(enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                  "a command follows the one that closed the workflow");
  }
  const size_t before = ctx->fx->events.size();
  std::optional<CommandError> refused = HandlerFor(command.command_type())(command, ctx);
  // The command's metadata (summary, details) goes on the event it wrote, as in Temporal.
  if (!refused.has_value() && command.has_user_metadata() &&
      command.command_type() != enums::COMMAND_TYPE_PROTOCOL_MESSAGE &&
      ctx->fx->events.size() > before) {
    *ctx->fx->events[before].mutable_user_metadata() = command.user_metadata();
  }
  return refused;
}

}  // namespace almanac::history::internal
