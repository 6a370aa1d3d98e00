// Runs that succeed another in its chain: a retry of a failed or timed-out run, a
// continue-as-new, or a cron workflow's next run. They differ only in their SuccessorSpec.

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "history/state_machine.h"
#include "history/state_machine_internal.h"
#include "scheduler/schedule_spec.h"

namespace almanac::history::internal {

namespace {

namespace enums = api::enums::v1;
using api::failure::v1::Failure;

// Names the successor in the closing event, so the SDKs can follow the chain. Only the
// events that may end a run with a successor have the field.
void LinkClosingEvent(const std::string& next_run_id, HistoryEvent* closing) {
  switch (closing->event_type()) {
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
      closing->mutable_workflow_execution_completed_event_attributes()->set_new_execution_run_id(
          next_run_id);
      break;
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
      closing->mutable_workflow_execution_failed_event_attributes()->set_new_execution_run_id(
          next_run_id);
      break;
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
      closing->mutable_workflow_execution_timed_out_event_attributes()->set_new_execution_run_id(
          next_run_id);
      break;
    case enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
      closing->mutable_workflow_execution_continued_as_new_event_attributes()
          ->set_new_execution_run_id(next_run_id);
      break;
    default:
      break;
  }
}

// A retry is another attempt of the same run; continue-as-new and cron start afresh.
int32_t SuccessorAttempt(enums::ContinueAsNewInitiator initiator, int32_t previous) {
  return initiator == enums::CONTINUE_AS_NEW_INITIATOR_RETRY ? previous + 1 : 1;
}

}  // namespace

std::optional<absl::Duration> WorkflowRetry(const v1::MutableState& ms, const Failure* failure,
                                            absl::Time now, enums::RetryState* state) {
  const auto& info = ms.execution();
  if (!info.has_retry_policy()) {
    *state = enums::RETRY_STATE_RETRY_POLICY_NOT_SET;
    return std::nullopt;
  }
  api::common::v1::RetryPolicy policy = info.retry_policy();
  DefaultRetryPolicy(&policy);
  if (failure != nullptr && failure->has_application_failure_info()) {
    const auto& app = failure->application_failure_info();
    bool listed = false;
    for (const auto& t : policy.non_retryable_error_types()) listed = listed || t == app.type();
    if (app.non_retryable() || listed) {
      *state = enums::RETRY_STATE_NON_RETRYABLE_FAILURE;
      return std::nullopt;
    }
  }
  if (policy.maximum_attempts() > 0 && info.attempt() >= policy.maximum_attempts()) {
    *state = enums::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED;
    return std::nullopt;
  }
  absl::Duration backoff;
  if (failure != nullptr && failure->has_application_failure_info() &&
      FromProto(failure->application_failure_info().next_retry_delay()) > absl::ZeroDuration()) {
    backoff = FromProto(failure->application_failure_info().next_retry_delay());
  } else {
    const double secs = absl::ToDoubleSeconds(FromProto(policy.initial_interval())) *
                        std::pow(policy.backoff_coefficient(), info.attempt() - 1);
    backoff = std::min(absl::Seconds(secs), FromProto(policy.maximum_interval()));
  }
  if (info.has_execution_expiration_time() &&
      now + backoff >= FromProto(info.execution_expiration_time())) {
    *state = enums::RETRY_STATE_TIMEOUT;
    return std::nullopt;
  }
  *state = enums::RETRY_STATE_IN_PROGRESS;
  return backoff;
}

SuccessorSpec RetrySuccessor(const ChainContext& /*chain*/, const Failure* failure,
                             absl::Duration backoff) {
  SuccessorSpec spec;
  spec.initiator = enums::CONTINUE_AS_NEW_INITIATOR_RETRY;
  spec.backoff = backoff;
  if (failure != nullptr) spec.continued_failure = *failure;
  // A retry carries no last completion result, even of a cron run (as in Temporal).
  return spec;
}

std::optional<absl::Duration> CronBackoff(const std::string& cron, absl::Time scheduled,
                                          absl::Time now) {
  if (cron.empty()) return std::nullopt;
  // @every counts from the run's scheduled time, which the chain's first run set.
  auto spec = scheduler::CompileCron(cron, absl::FromUnixSeconds(absl::ToUnixSeconds(scheduled)));
  if (!spec.ok()) return std::nullopt;
  absl::Time next = scheduled;
  if (now >= scheduled) {
    // The first time after `scheduled` that is not before `now`.
    auto found = spec->Next(std::max(scheduled, now - absl::Nanoseconds(1)));
    if (!found.has_value()) return std::nullopt;
    next = *found;
  }
  return absl::Seconds(std::ceil(absl::ToDoubleSeconds(next - now)));
}

SuccessorSpec CronSuccessor(const ChainContext& chain, const api::common::v1::Payloads* result,
                            const Failure* failure, absl::Duration backoff) {
  SuccessorSpec spec;
  spec.initiator = enums::CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE;
  spec.backoff = backoff;
  if (failure != nullptr) {
    spec.continued_failure = *failure;
    // A failed run passes on the result its own run was given.
    const auto& started = chain.started_event->workflow_execution_started_event_attributes();
    if (started.has_last_completion_result()) {
      spec.last_completion_result = started.last_completion_result();
    }
  } else if (result != nullptr) {
    spec.last_completion_result = *result;
  }
  return spec;
}

void BuildSuccessorRun(const SuccessorSpec& spec, const ChainContext& chain, absl::Time now,
                       v1::MutableState* ms, Effects* fx) {
  HistoryEvent& closing = fx->events.back();
  LinkClosingEvent(chain.next_run_id, &closing);
  *ms->mutable_close_event() = closing;

  const v1::ExecutionInfo& old = ms->execution();
  NewRun next;
  v1::MutableState& nm = next.state;
  nm.set_next_event_id(1);
  v1::ExecutionInfo* info = nm.mutable_execution();
  info->set_namespace_id(old.namespace_id());
  info->set_workflow_id(old.workflow_id());
  info->set_run_id(chain.next_run_id);
  // The chain keeps its first run and its deadline.
  info->set_first_execution_run_id(old.first_execution_run_id());
  if (old.has_execution_expiration_time()) {
    *info->mutable_execution_expiration_time() = old.execution_expiration_time();
  }
  if (old.has_execution_timeout()) *info->mutable_execution_timeout() = old.execution_timeout();
  info->set_original_execution_run_id(chain.next_run_id);
  info->set_workflow_type(spec.workflow_type.value_or(old.workflow_type()));
  info->set_task_queue(spec.task_queue.value_or(old.task_queue()));
  if (spec.run_timeout.has_value()) {
    if (*spec.run_timeout > absl::ZeroDuration()) {
      *info->mutable_run_timeout() = ToProto(*spec.run_timeout);
    }
  } else if (old.has_run_timeout()) {
    *info->mutable_run_timeout() = old.run_timeout();
  }
  *info->mutable_task_timeout() =
      spec.task_timeout.has_value() ? ToProto(*spec.task_timeout) : old.task_timeout();
  *info->mutable_start_time() = ToProto(now);
  *info->mutable_execution_time() = ToProto(now + spec.backoff);
  info->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  info->set_create_request_id(chain.next_run_id);
  info->set_attempt(SuccessorAttempt(spec.initiator, old.attempt()));
  if (spec.memo.has_value()) {
    if (spec.memo->ByteSizeLong() > 0) *info->mutable_memo() = *spec.memo;
  } else if (old.has_memo()) {
    *info->mutable_memo() = old.memo();
  }
  if (spec.search_attributes.has_value()) {
    if (spec.search_attributes->ByteSizeLong() > 0) {
      *info->mutable_search_attributes() = *spec.search_attributes;
    }
  } else if (old.has_search_attributes()) {
    *info->mutable_search_attributes() = old.search_attributes();
  }
  if (spec.retry_policy.has_value()) {
    if (spec.retry_policy->ByteSizeLong() > 0) *info->mutable_retry_policy() = *spec.retry_policy;
  } else if (old.has_retry_policy()) {
    *info->mutable_retry_policy() = old.retry_policy();
  }
  info->set_cron_schedule(spec.cron_schedule.value_or(old.cron_schedule()));
  // A successor of a child is the same child to its parent, and in the same tree.
  info->set_parent_namespace_id(old.parent_namespace_id());
  info->set_parent_workflow_id(old.parent_workflow_id());
  info->set_parent_run_id(old.parent_run_id());
  info->set_parent_initiated_event_id(old.parent_initiated_event_id());
  // A schedule's run goes on as the same action of the schedule.
  info->set_scheduled_by(old.scheduled_by());
  // A run with no parent is its own root; a child's successor stays in its parent's tree.
  const bool child = !old.parent_workflow_id().empty();
  info->set_root_workflow_id(child ? old.root_workflow_id() : old.workflow_id());
  info->set_root_run_id(child ? old.root_run_id() : chain.next_run_id);
  // The chain goes on: the parent (or schedule) hears of it only when its last run closes.
  const v1::RunKey closing_run = RunOf(*ms);
  std::erase_if(fx->transfer_tasks, [&](const v1::TransferTask& t) {
    return (t.kind() == v1::TransferTask::KIND_CLOSE_EXECUTION ||
            t.kind() == v1::TransferTask::KIND_SCHEDULE_RUN_CLOSED) &&
           t.run().run_id() == closing_run.run_id();
  });

  // The started event repeats the predecessor's, with what the spec changes.
  HistoryEvent started = *chain.started_event;
  started.clear_event_id();
  *started.mutable_event_time() = ToProto(now);
  auto* a = started.mutable_workflow_execution_started_event_attributes();
  if (spec.workflow_type.has_value()) a->mutable_workflow_type()->set_name(*spec.workflow_type);
  if (spec.task_queue.has_value()) {
    a->mutable_task_queue()->set_name(*spec.task_queue);
    a->mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  }
  if (spec.input.has_value()) {
    if (spec.input->ByteSizeLong() > 0) {
      *a->mutable_input() = *spec.input;
    } else {
      a->clear_input();
    }
  }
  if (spec.header.has_value()) {
    if (spec.header->ByteSizeLong() > 0) {
      *a->mutable_header() = *spec.header;
    } else {
      a->clear_header();
    }
  }
  // What the state holds, the event repeats.
  if (spec.run_timeout.has_value()) {
    if (info->has_run_timeout()) {
      *a->mutable_workflow_run_timeout() = info->run_timeout();
    } else {
      a->clear_workflow_run_timeout();
    }
  }
  if (spec.task_timeout.has_value()) *a->mutable_workflow_task_timeout() = info->task_timeout();
  if (spec.memo.has_value()) {
    if (info->has_memo()) {
      *a->mutable_memo() = info->memo();
    } else {
      a->clear_memo();
    }
  }
  if (spec.search_attributes.has_value()) {
    if (info->has_search_attributes()) {
      *a->mutable_search_attributes() = info->search_attributes();
    } else {
      a->clear_search_attributes();
    }
  }
  if (spec.retry_policy.has_value()) {
    if (info->has_retry_policy()) {
      *a->mutable_retry_policy() = info->retry_policy();
    } else {
      a->clear_retry_policy();
    }
  }
  a->set_cron_schedule(info->cron_schedule());
  a->set_attempt(info->attempt());
  a->set_continued_execution_run_id(old.run_id());
  a->set_original_execution_run_id(chain.next_run_id);
  a->set_initiator(spec.initiator);
  if (spec.continued_failure.has_value()) {
    *a->mutable_continued_failure() = *spec.continued_failure;
  } else {
    a->clear_continued_failure();
  }
  if (spec.last_completion_result.has_value()) {
    *a->mutable_last_completion_result() = *spec.last_completion_result;
  } else {
    a->clear_last_completion_result();
  }
  *a->mutable_first_workflow_task_backoff() = ToProto(spec.backoff);

  Effects run_fx;
  Append(std::move(started), &nm, &run_fx);
  // The run's own time starts when its first workflow task may.
  ArmRunTimeout(now + spec.backoff, nm, &run_fx);
  if (spec.backoff > absl::ZeroDuration()) {
    nm.mutable_execution()->set_backoff_pending(true);
    run_fx.timer_tasks.push_back(
        NewTimer(v1::TimerTask::KIND_WORKFLOW_BACKOFF, now + spec.backoff, nm));
  } else {
    ScheduleWorkflowTask(now, &nm, &run_fx);
  }
  next.events = std::move(run_fx.events);
  for (auto& t : run_fx.transfer_tasks) fx->transfer_tasks.push_back(std::move(t));
  for (auto& t : run_fx.timer_tasks) fx->timer_tasks.push_back(std::move(t));
  fx->new_run = std::move(next);
}

}  // namespace almanac::history::internal
