#include "scheduler/schedule_machine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace almanac::scheduler {
namespace {

namespace enums = temporal::api::enums::v1;
namespace common = temporal::api::common::v1;
namespace wsv1 = temporal::api::workflowservice::v1;

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {
    rest += 1000000000;
    --seconds;
  }
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(rest));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

google::protobuf::Duration DurationProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

enums::ScheduleOverlapPolicy Resolve(const ScheduleRecord& r, enums::ScheduleOverlapPolicy p) {
  if (p == enums::SCHEDULE_OVERLAP_POLICY_UNSPECIFIED) p = r.schedule().policies().overlap_policy();
  if (p == enums::SCHEDULE_OVERLAP_POLICY_UNSPECIFIED) p = enums::SCHEDULE_OVERLAP_POLICY_SKIP;
  return p;
}

void AddStart(ScheduleRecord* r, absl::Time nominal, absl::Time actual,
              enums::ScheduleOverlapPolicy policy, bool manual) {
  if (r->buffered_starts_size() >= kMaxBufferSize) {
    r->mutable_info()->set_buffer_dropped(r->info().buffer_dropped() + 1);
    return;
  }
  BufferedStart* s = r->add_buffered_starts();
  *s->mutable_nominal_time() = ToProto(nominal);
  *s->mutable_actual_time() = ToProto(actual);
  s->set_overlap_policy(policy);
  s->set_manual(manual);
  s->set_sequence(r->next_start_sequence());
  r->set_next_start_sequence(r->next_start_sequence() + 1);
}

absl::Time UpdateTime(const ScheduleRecord& r) {
  return r.info().has_update_time() ? FromProto(r.info().update_time()) : absl::InfinitePast();
}

// The last thing that happened to the schedule: its creation, last update or last action.
absl::Time LastEvent(const ScheduleRecord& r) {
  absl::Time last = FromProto(r.info().create_time());
  if (r.info().has_update_time()) last = std::max(last, FromProto(r.info().update_time()));
  if (r.info().recent_actions_size() > 0) {
    last = std::max(last, FromProto(r.info().recent_actions().rbegin()->actual_time()));
  }
  return last;
}

template <typename T>
void KeepTail(google::protobuf::RepeatedPtrField<T>* field, int n) {
  if (field->size() > n) field->DeleteSubrange(0, field->size() - n);
}

template <typename T>
void KeepHead(google::protobuf::RepeatedPtrField<T>* field, int n) {
  if (field->size() > n) field->DeleteSubrange(n, field->size() - n);
}

}  // namespace

absl::Duration CatchupWindow(const schedv1::Schedule& schedule) {
  if (!schedule.policies().has_catchup_window()) return kDefaultCatchupWindow;
  return std::max(FromProto(schedule.policies().catchup_window()), kMinCatchupWindow);
}

void ResolvePolicies(schedv1::Schedule* schedule) {
  auto* policies = schedule->mutable_policies();
  if (policies->overlap_policy() == enums::SCHEDULE_OVERLAP_POLICY_UNSPECIFIED) {
    policies->set_overlap_policy(enums::SCHEDULE_OVERLAP_POLICY_SKIP);
  }
  *policies->mutable_catchup_window() = DurationProto(CatchupWindow(*schedule));
  schedule->mutable_spec();
  schedule->mutable_action();
  schedule->mutable_state();
}

bool CanTakeScheduledAction(ScheduleRecord* r, bool manual, bool decrement) {
  if (manual) return true;
  auto* state = r->mutable_schedule()->mutable_state();
  if (state->paused()) return false;
  if (!state->limited_actions()) return true;
  if (state->remaining_actions() > 0) {
    if (decrement) {
      state->set_remaining_actions(state->remaining_actions() - 1);
      r->set_conflict_token(r->conflict_token() + 1);
    }
    return true;
  }
  return false;
}

void BufferDueActions(ScheduleRecord* r, const CompiledSpec* spec, absl::Time now) {
  const absl::Time from = FromProto(r->last_processed_time());
  if (spec == nullptr || !CanTakeScheduledAction(r, false, false)) {
    // Paused or out of actions: the time passes without actions (none counts as missed).
    *r->mutable_last_processed_time() = ToProto(std::max(from, now));
    return;
  }
  const absl::Duration catchup = CatchupWindow(r->schedule());
  const absl::Time updated = UpdateTime(*r);
  absl::Time cursor = from;
  while (auto next = spec->NextScheduled(cursor)) {
    if (next->actual > now) break;
    cursor = next->nominal;
    if (updated > next->actual) continue;  // came before the last update: discarded
    if (now - next->actual > catchup) {
      r->mutable_info()->set_missed_catchup_window(r->info().missed_catchup_window() + 1);
      continue;
    }
    AddStart(r, next->nominal, next->actual, enums::SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, false);
  }
  *r->mutable_last_processed_time() = ToProto(cursor);
}

void BufferBackfills(ScheduleRecord* r, const CompiledSpec* spec) {
  if (spec == nullptr) {
    r->clear_ongoing_backfills();
    return;
  }
  int limit = kBackfillsPerWake;
  while (r->ongoing_backfills_size() > 0 && limit > 0 &&
         r->buffered_starts_size() < kMaxBufferSize / 2) {
    schedv1::BackfillRequest* b = r->mutable_ongoing_backfills(0);
    const absl::Time end = FromProto(b->end_time());
    absl::Time cursor = FromProto(b->start_time());
    bool done = true;
    while (auto next = spec->NextScheduled(cursor)) {
      if (next->actual > end) break;
      AddStart(r, next->nominal, next->actual, b->overlap_policy(), /*manual=*/true);
      cursor = next->nominal;
      if (--limit <= 0) {
        done = false;
        break;
      }
    }
    if (done) {
      r->mutable_ongoing_backfills()->DeleteSubrange(0, 1);
    } else {
      *b->mutable_start_time() = ToProto(cursor);
    }
  }
}

bool HasMoreAllowAllBackfills(const ScheduleRecord& r) {
  return r.ongoing_backfills_size() > 0 &&
         Resolve(r, r.ongoing_backfills(0).overlap_policy()) ==
             enums::SCHEDULE_OVERLAP_POLICY_ALLOW_ALL;
}

BufferDecision TakeFromBuffer(ScheduleRecord* r) {
  BufferDecision out;
  const bool running = r->info().running_workflows_size() > 0;
  std::vector<BufferedStart> overlapping;
  std::optional<BufferedStart> non_overlapping;
  google::protobuf::RepeatedPtrField<BufferedStart> keep;
  int64_t skipped = 0;
  for (const BufferedStart& start : r->buffered_starts()) {
    const enums::ScheduleOverlapPolicy policy = Resolve(*r, start.overlap_policy());
    if (policy == enums::SCHEDULE_OVERLAP_POLICY_ALLOW_ALL) {
      overlapping.push_back(start);
      continue;
    }
    if (!running && !non_overlapping.has_value()) {
      non_overlapping = start;
      continue;
    }
    switch (policy) {
      case enums::SCHEDULE_OVERLAP_POLICY_BUFFER_ONE:
        if (keep.empty()) {
          *keep.Add() = start;
        } else {
          ++skipped;
        }
        break;
      case enums::SCHEDULE_OVERLAP_POLICY_BUFFER_ALL:
        *keep.Add() = start;
        break;
      case enums::SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER:
      case enums::SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER:
        if (running) {
          // Stop the running one; this one starts once it has closed.
          (policy == enums::SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER ? out.cancel_running
                                                                  : out.terminate_running) = true;
          *keep.Add() = start;
        } else {
          non_overlapping = start;  // replaces the one not yet started
        }
        break;
      default:  // SKIP
        ++skipped;
        break;
    }
  }
  if (out.cancel_running || out.terminate_running) overlapping.clear();
  *r->mutable_buffered_starts() = std::move(keep);
  r->mutable_info()->set_overlap_skipped(r->info().overlap_skipped() + skipped);
  out.starts = std::move(overlapping);
  if (non_overlapping.has_value()) {
    out.starts.push_back(*std::move(non_overlapping));
    out.last_is_non_overlapping = true;
  }
  return out;
}

std::string ActionWorkflowId(const std::string& base_id, absl::Time nominal) {
  const absl::Time second = absl::FromUnixSeconds(absl::ToUnixSeconds(nominal));
  return absl::StrCat(base_id, "-", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", second, absl::UTCTimeZone()));
}

wsv1::StartWorkflowExecutionRequest StartRequestFor(const ScheduleRecord& r,
                                                    const BufferedStart& start) {
  const auto& action = r.schedule().action().start_workflow();
  const absl::Time nominal = absl::FromUnixSeconds(absl::ToUnixSeconds(FromProto(start.nominal_time())));
  wsv1::StartWorkflowExecutionRequest req;
  req.set_namespace_(r.namespace_());
  req.set_workflow_id(ActionWorkflowId(action.workflow_id(), nominal));
  *req.mutable_workflow_type() = action.workflow_type();
  *req.mutable_task_queue() = action.task_queue();
  if (action.has_input()) *req.mutable_input() = action.input();
  if (action.has_workflow_execution_timeout()) {
    *req.mutable_workflow_execution_timeout() = action.workflow_execution_timeout();
  }
  if (action.has_workflow_run_timeout()) *req.mutable_workflow_run_timeout() = action.workflow_run_timeout();
  if (action.has_workflow_task_timeout()) {
    *req.mutable_workflow_task_timeout() = action.workflow_task_timeout();
  }
  req.set_identity(absl::StrCat("temporal-scheduler-", r.namespace_(), "-", r.schedule_id()));
  // The same buffered start always makes the same request: a repeated attempt (after a
  // crash between the start and the record's write) finds the run the first one started.
  req.set_request_id(absl::StrCat(r.run_id(), "-", start.sequence()));
  req.set_workflow_id_reuse_policy(start.manual() ? enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
                                                  : enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE);
  if (action.has_retry_policy()) *req.mutable_retry_policy() = action.retry_policy();
  if (action.has_memo()) *req.mutable_memo() = action.memo();
  *req.mutable_search_attributes() = action.search_attributes();
  auto* fields = req.mutable_search_attributes()->mutable_indexed_fields();
  common::Payload when;
  (*when.mutable_metadata())["encoding"] = "json/plain";
  (*when.mutable_metadata())["type"] = "Datetime";
  when.set_data(absl::StrCat(
      "\"", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", nominal, absl::UTCTimeZone()), "\""));
  (*fields)["TemporalScheduledStartTime"] = std::move(when);
  common::Payload by;
  (*by.mutable_metadata())["encoding"] = "json/plain";
  (*by.mutable_metadata())["type"] = "Keyword";
  std::string quoted;
  quoted.push_back('"');
  for (char c : r.schedule_id()) {
    if (c == '"' || c == '\\') {
      quoted.push_back('\\');
      quoted.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&quoted, "\\u%04x", static_cast<int>(c));
    } else {
      quoted.push_back(c);
    }
  }
  quoted.push_back('"');
  by.set_data(quoted);
  (*fields)["TemporalScheduledById"] = std::move(by);
  if (action.has_header()) *req.mutable_header() = action.header();
  if (Resolve(r, start.overlap_policy()) != enums::SCHEDULE_OVERLAP_POLICY_ALLOW_ALL) {
    if (r.has_last_completion_result()) *req.mutable_last_completion_result() = r.last_completion_result();
    if (r.has_continued_failure()) *req.mutable_continued_failure() = r.continued_failure();
  }
  if (action.has_user_metadata()) *req.mutable_user_metadata() = action.user_metadata();
  if (action.has_priority()) *req.mutable_priority() = action.priority();
  return req;
}

void RecordAction(ScheduleRecord* r, const BufferedStart& start, const std::string& workflow_id,
                  const std::string& run_id, absl::Time now, bool non_overlapping) {
  auto* info = r->mutable_info();
  info->set_action_count(info->action_count() + 1);
  schedv1::ScheduleActionResult* result = info->add_recent_actions();
  *result->mutable_schedule_time() = start.actual_time();
  *result->mutable_actual_time() = ToProto(now);
  result->mutable_start_workflow_result()->set_workflow_id(workflow_id);
  result->mutable_start_workflow_result()->set_run_id(run_id);
  result->set_start_workflow_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  KeepTail(info->mutable_recent_actions(), kRecentActionCount);
  if (non_overlapping) {
    auto* running = info->add_running_workflows();
    running->set_workflow_id(workflow_id);
    running->set_run_id(run_id);
  }
}

bool RecordClosed(ScheduleRecord* r, const ClosedRun& closed) {
  auto* info = r->mutable_info();
  auto* running = info->mutable_running_workflows();
  auto it = std::find_if(running->begin(), running->end(), [&](const common::WorkflowExecution& e) {
    return e.workflow_id() == closed.workflow_id;
  });
  if (it == running->end()) return false;
  running->erase(it);
  for (auto& action : *info->mutable_recent_actions()) {
    if (action.start_workflow_result().workflow_id() == closed.workflow_id) {
      action.set_start_workflow_status(closed.status);
      break;
    }
  }
  auto* state = r->mutable_schedule()->mutable_state();
  const bool failed = closed.status == enums::WORKFLOW_EXECUTION_STATUS_FAILED ||
                      closed.status == enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT;
  if (r->schedule().policies().pause_on_failure() && failed && !state->paused()) {
    state->set_paused(true);
    if (closed.status == enums::WORKFLOW_EXECUTION_STATUS_FAILED) {
      state->set_notes(absl::StrCat("paused due to workflow failure: ", closed.workflow_id, ": ",
                                    closed.failure != nullptr ? closed.failure->message() : ""));
    } else {
      state->set_notes(absl::StrCat("paused due to workflow timeout: ", closed.workflow_id));
    }
    r->set_conflict_token(r->conflict_token() + 1);
  }
  if (closed.result != nullptr) {
    *r->mutable_last_completion_result() = *closed.result;
    r->clear_continued_failure();
  } else if (closed.failure != nullptr) {
    *r->mutable_continued_failure() = *closed.failure;
  }
  return true;
}

void ApplyPatch(ScheduleRecord* r, const schedv1::SchedulePatch& patch, absl::Time now) {
  if (patch.has_trigger_immediately()) {
    const auto& trigger = patch.trigger_immediately();
    absl::Time at = now;
    if (trigger.has_scheduled_time() &&
        (trigger.scheduled_time().seconds() != 0 || trigger.scheduled_time().nanos() != 0)) {
      at = FromProto(trigger.scheduled_time());
    }
    AddStart(r, at, at, trigger.overlap_policy(), /*manual=*/true);
  }
  for (const schedv1::BackfillRequest& b : patch.backfill_request()) {
    if (r->ongoing_backfills_size() >= kMaxBufferSize) {
      r->mutable_info()->set_buffer_dropped(r->info().buffer_dropped() + 1);
      continue;
    }
    schedv1::BackfillRequest* added = r->add_ongoing_backfills();
    *added = b;
    // The start is inclusive: actions from it on (NextScheduled is strictly after).
    *added->mutable_start_time() = ToProto(FromProto(b.start_time()) - absl::Milliseconds(1));
  }
  auto* state = r->mutable_schedule()->mutable_state();
  if (!patch.pause().empty()) {
    state->set_paused(true);
    state->set_notes(patch.pause());
    r->set_conflict_token(r->conflict_token() + 1);
  }
  if (!patch.unpause().empty()) {
    state->set_paused(false);
    state->set_notes(patch.unpause());
    r->set_conflict_token(r->conflict_token() + 1);
  }
}

void ApplyUpdate(ScheduleRecord* r, const schedv1::Schedule& schedule,
                 const common::SearchAttributes* search_attributes, absl::Time now) {
  *r->mutable_schedule() = schedule;
  ResolvePolicies(r->mutable_schedule());
  if (search_attributes != nullptr) *r->mutable_search_attributes() = *search_attributes;
  *r->mutable_info()->mutable_update_time() = ToProto(now);
  r->set_conflict_token(r->conflict_token() + 1);
}

std::optional<Wake> NextWake(const ScheduleRecord& r, const CompiledSpec* spec, absl::Time now) {
  if (HasMoreAllowAllBackfills(r)) return Wake{now + absl::Seconds(1)};
  ScheduleRecord probe = r;  // CanTakeScheduledAction takes a mutable record
  const bool can_act = CanTakeScheduledAction(&probe, false, false);
  std::optional<absl::Time> next;
  if (spec != nullptr && can_act) {
    if (auto n = spec->NextScheduled(FromProto(r.last_processed_time()))) next = n->actual;
  }
  if (next.has_value()) return Wake{*next};
  // Nothing more to do by itself: a paused schedule waits for an unpause; one with
  // backfills or starts waiting waits for them; any other is kept for a retention period.
  if (r.schedule().state().paused() || r.ongoing_backfills_size() > 0 ||
      r.buffered_starts_size() > 0 || r.info().running_workflows_size() > 0) {
    return std::nullopt;
  }
  return Wake{LastEvent(r) + kIdleRetention, /*expire=*/true};
}

std::vector<absl::Time> FutureActionTimes(const ScheduleRecord& r, const CompiledSpec* spec,
                                          int n) {
  std::vector<absl::Time> out;
  if (spec == nullptr) return out;
  const auto& state = r.schedule().state();
  if (state.limited_actions()) n = static_cast<int>(std::min<int64_t>(n, state.remaining_actions()));
  const absl::Time updated = UpdateTime(r);
  absl::Time cursor = FromProto(r.last_processed_time());
  int guard = 0;
  while (static_cast<int>(out.size()) < n && ++guard < 100000) {
    auto next = spec->Next(cursor);
    if (!next.has_value()) break;
    cursor = *next;
    if (updated > *next) continue;
    out.push_back(*next);
  }
  return out;
}

schedv1::ScheduleInfo DescribeInfo(const ScheduleRecord& r, const CompiledSpec* spec) {
  schedv1::ScheduleInfo info = r.info();
  for (absl::Time t : FutureActionTimes(r, spec, kFutureActionCount)) {
    *info.add_future_action_times() = ToProto(t);
  }
  info.set_buffer_size(r.buffered_starts_size());
  return info;
}

schedv1::ScheduleListInfo ListInfo(const ScheduleRecord& r, const CompiledSpec* spec) {
  schedv1::ScheduleListInfo out;
  *out.mutable_spec() = r.schedule().spec();
  out.mutable_spec()->clear_timezone_data();
  KeepHead(out.mutable_spec()->mutable_exclude_structured_calendar(), kSpecFieldLengthLimit);
  KeepHead(out.mutable_spec()->mutable_interval(), kSpecFieldLengthLimit);
  KeepHead(out.mutable_spec()->mutable_structured_calendar(), kSpecFieldLengthLimit);
  if (r.schedule().action().has_start_workflow()) {
    *out.mutable_workflow_type() = r.schedule().action().start_workflow().workflow_type();
  }
  out.set_notes(r.schedule().state().notes());
  out.set_paused(r.schedule().state().paused());
  *out.mutable_recent_actions() = r.info().recent_actions();
  KeepTail(out.mutable_recent_actions(), kRecentActionCountForList);
  for (absl::Time t : FutureActionTimes(r, spec, kFutureActionCountForList)) {
    *out.add_future_action_times() = ToProto(t);
  }
  return out;
}

std::string JitterSeed(const ScheduleRecord& r) {
  return absl::StrCat(r.namespace_id(), "-", r.schedule_id());
}

}  // namespace almanac::scheduler
