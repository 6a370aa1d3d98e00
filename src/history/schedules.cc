// The history engine hosts schedules: each is a record (almanac.v1.ScheduleRecord) owned by
// the shard of (namespace id, "temporal-sys-scheduler:" + schedule id), written with its next
// wake-up (a timer task) and its visibility row in one transaction, fenced by the shard's
// lease. The scheduler role's pure machine (scheduler/schedule_machine.h) makes every
// decision; this file loads records, takes the actions the machine asks for (starting,
// cancelling and terminating workflows through the engine's own paths) and commits.
//
// A schedule is touched under its key's workflow lock, so its calls, wake-ups and the closes
// of its runs are serialized. It costs nothing in memory while it sleeps: its record is read
// from the store each time.
//
// Crash safety: a wake-up's timer task is acknowledged only after the step it triggered
// committed, so a crash in between repeats the step. A repeated step makes the same starts
// (each buffered start has a request id of its own), which the engine de-duplicates, so no
// action is doubled; the record's last_processed_time moves only in the commit that records
// the actions, so none is skipped.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "history/history_engine.h"
#include "history/state_machine_internal.h"
#include "persistence/search_attributes.h"
#include "scheduler/schedule_machine.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;
namespace common = temporal::api::common::v1;
namespace schedv1 = temporal::api::schedule::v1;
using persistence::ScheduleMutation;

namespace {

std::string ScheduleKey(const std::string& schedule_id) {
  return absl::StrCat(scheduler::kScheduleWorkflowIdPrefix, schedule_id);
}

common::Payload JsonPayload(std::string json, absl::string_view type) {
  common::Payload p;
  (*p.mutable_metadata())["encoding"] = "json/plain";
  (*p.mutable_metadata())["type"] = std::string(type);
  p.set_data(std::move(json));
  return p;
}

// As Temporal answers for a schedule it has no scheduler workflow for.
absl::Status ScheduleNotFound(const std::string& schedule_id) {
  return WorkflowNotFound(absl::StrCat("workflow not found for ID: ", ScheduleKey(schedule_id)));
}

// Errors after which a start is worth another attempt.
bool Transient(const absl::Status& st) {
  return absl::IsUnavailable(st) || absl::IsAborted(st) || absl::IsDeadlineExceeded(st) ||
         absl::IsInternal(st) || absl::IsResourceExhausted(st);
}

}  // namespace

// The schedule's row in visibility, as a run's: what ListSchedules reads.
v1::MutableState HistoryEngine::ScheduleVisibility(const v1::ScheduleRecord& r,
                                                   const scheduler::CompiledSpec* spec) {
  v1::MutableState ms;
  auto* info = ms.mutable_execution();
  info->set_namespace_id(r.namespace_id());
  info->set_workflow_id(ScheduleKey(r.schedule_id()));
  info->set_run_id(r.run_id());
  info->set_workflow_type(scheduler::kScheduleWorkflowType);
  info->set_task_queue(scheduler::kScheduleTaskQueue);
  *info->mutable_start_time() = r.info().create_time();
  *info->mutable_execution_time() = r.info().create_time();
  info->set_status(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  *info->mutable_memo() = r.memo();
  common::Payload list_info;
  (*list_info.mutable_metadata())["encoding"] = "binary/plain";
  list_info.set_data(scheduler::ListInfo(r, spec).SerializeAsString());
  (*info->mutable_memo()->mutable_fields())[scheduler::kMemoFieldInfo] = std::move(list_info);
  *info->mutable_search_attributes() = r.search_attributes();
  auto* fields = info->mutable_search_attributes()->mutable_indexed_fields();
  (*fields)["TemporalSchedulePaused"] =
      JsonPayload(r.schedule().state().paused() ? "true" : "false", "Bool");
  (*fields)["TemporalNamespaceDivision"] =
      JsonPayload(absl::StrCat("\"", scheduler::kNamespaceDivision, "\""), "Keyword");
  ms.set_next_event_id(1);
  return ms;
}

absl::Status HistoryEngine::CommitSchedule(ShardContext& shard, v1::ScheduleRecord* r,
                                           ScheduleMutation::Kind kind, absl::Time now,
                                           bool retry_soon) {
  std::optional<scheduler::CompiledSpec> spec;
  if (kind != ScheduleMutation::Kind::kDelete) {
    auto compiled = scheduler::CompileSpec(r->schedule().spec(), scheduler::JitterSeed(*r));
    if (compiled.ok()) spec = *std::move(compiled);
  }
  const scheduler::CompiledSpec* spec_ptr = spec.has_value() ? &*spec : nullptr;
  std::vector<v1::TransferTask> no_transfer;
  std::vector<v1::TimerTask> timers;
  if (kind != ScheduleMutation::Kind::kDelete) {
    std::optional<scheduler::Wake> wake =
        r->deleted() ? std::optional(scheduler::Wake{FromProto(r->purge_time()), true})
                     : scheduler::NextWake(*r, spec_ptr, now);
    // Starts that failed for a passing reason are tried again a second from now.
    if (retry_soon && (!wake.has_value() || wake->time > now + absl::Seconds(1))) {
      wake = scheduler::Wake{now + absl::Seconds(1)};
    }
    const bool same = wake.has_value() && r->has_wake_time() &&
                      FromProto(r->wake_time()) == wake->time;
    if (!wake.has_value()) {
      r->clear_wake_time();
    } else if (!same) {
      r->set_wake_stamp(r->wake_stamp() + 1);
      *r->mutable_wake_time() = ToProto(wake->time);
      v1::TimerTask t;
      t.set_kind(v1::TimerTask::KIND_SCHEDULE_WAKE);
      *t.mutable_run() = MakeRunKey(r->namespace_id(), ScheduleKey(r->schedule_id()), r->run_id());
      *t.mutable_visibility_time() = ToProto(wake->time);
      t.set_stamp(r->wake_stamp());
      timers.push_back(std::move(t));
    }
  }
  const int64_t expected = r->db_version();
  if (kind != ScheduleMutation::Kind::kDelete) r->set_db_version(expected + 1);
  absl::Status st = shard.AssignTaskIds(&no_transfer, &timers);
  if (!st.ok()) return st;
  v1::MutableState visibility;
  ScheduleMutation m;
  m.shard_id = shard.id();
  m.kind = kind;
  m.record = r;
  m.expected_db_version = expected;
  m.timer_tasks = timers;
  if (r->deleted()) {
    m.delete_visibility = kind == ScheduleMutation::Kind::kUpdate;
  } else if (kind != ScheduleMutation::Kind::kDelete) {
    visibility = ScheduleVisibility(*r, spec_ptr);
    m.visibility = &visibility;
  }
  st = shard.Fenced([&](int64_t range_id) {
    m.range_id = range_id;
    return stores_->schedules->Apply(m);
  });
  const ShardContext::Outcome outcome =
      shard.owned() ? ShardContext::OutcomeOf(st) : ShardContext::Outcome::kNotCommitted;
  std::vector<v1::TransferTask> run_transfer;
  std::vector<v1::TimerTask> run_timers;
  shard.Resolve(outcome, no_transfer, timers, &run_transfer, &run_timers);
  if (!st.ok()) {
    if (outcome == ShardContext::Outcome::kUnknown) {
      return absl::UnavailableError(
          absl::StrCat("the outcome of the write is unknown, retry: ", st.message()));
    }
    return st;
  }
  RunReleased(std::move(run_transfer), std::move(run_timers));
  return absl::OkStatus();
}

std::optional<HistoryEngine::ScheduledRunEnd> HistoryEngine::ScheduledRunEndOf(
    const std::string& namespace_id, const std::string& workflow_id,
    const std::string& first_run_id) {
  auto ctx = Context(namespace_id, workflow_id);
  absl::MutexLock lock(&(*ctx)->mu);
  ShardContext& shard = ShardFor(namespace_id, workflow_id);
  auto current = stores_->executions->GetCurrentRun(shard.id(), namespace_id, workflow_id);
  ScheduledRunEnd end;
  if (absl::IsNotFound(current.status())) return end;  // gone: certainly not running
  if (!current.ok()) return std::nullopt;              // unknown: take it as running
  auto cached = LoadRun(ctx->get(), shard, MakeRunKey(namespace_id, workflow_id, current->run_id));
  if (!cached.ok()) return absl::IsNotFound(cached.status()) ? std::optional(end) : std::nullopt;
  const v1::MutableState& ms = (*cached)->state;
  if (ms.execution().first_execution_run_id() != first_run_id) return end;  // another chain
  if (IsRunning(ms)) return std::nullopt;
  end.status = ms.execution().status();
  if (ms.has_close_event()) end.close_event = ms.close_event();
  return end;
}

void HistoryEngine::RecordScheduledRunEnd(v1::ScheduleRecord* r, const std::string& workflow_id,
                                          const ScheduledRunEnd& end) {
  scheduler::ClosedRun closed;
  closed.workflow_id = workflow_id;
  closed.status = end.status;
  if (end.close_event.has_workflow_execution_completed_event_attributes()) {
    closed.result = &end.close_event.workflow_execution_completed_event_attributes().result();
  } else if (end.close_event.has_workflow_execution_failed_event_attributes()) {
    closed.failure = &end.close_event.workflow_execution_failed_event_attributes().failure();
  }
  scheduler::RecordClosed(r, closed);
}

void HistoryEngine::StepSchedule(v1::ScheduleRecord* r, absl::Time now, bool* retry_soon) {
  auto compiled = scheduler::CompileSpec(r->schedule().spec(), scheduler::JitterSeed(*r));
  const scheduler::CompiledSpec* spec = compiled.ok() ? &*compiled : nullptr;
  scheduler::BufferDueActions(r, spec, now);
  scheduler::BufferBackfills(r, spec);
  if (!r->schedule().action().has_start_workflow()) {
    r->clear_buffered_starts();
    return;
  }
  for (int round = 0; round < 100 && r->buffered_starts_size() > 0; ++round) {
    // Make sure the runs it counts as running still are (a lost report of a close would
    // otherwise hold the schedule back for good).
    std::vector<std::pair<std::string, std::string>> running;
    for (const auto& e : r->info().running_workflows()) running.emplace_back(e.workflow_id(), e.run_id());
    for (const auto& [wid, rid] : running) {
      if (auto end = ScheduledRunEndOf(r->namespace_id(), wid, rid)) RecordScheduledRunEnd(r, wid, *end);
    }
    scheduler::BufferDecision decision = scheduler::TakeFromBuffer(r);
    bool try_again = false;
    for (size_t i = 0; i < decision.starts.size(); ++i) {
      const scheduler::BufferedStart& start = decision.starts[i];
      if (!scheduler::CanTakeScheduledAction(r, start.manual(), /*decrement=*/true)) {
        try_again = true;
        continue;
      }
      auto request = scheduler::StartRequestFor(*r, start);
      absl::StatusOr<wsv1::StartWorkflowExecutionResponse> started;
      {
        auto ctx = Context(r->namespace_id(), request.workflow_id());
        absl::MutexLock lock(&(*ctx)->mu);
        started = StartLocked(ctx->get(), r->namespace_id(), request, nullptr, nullptr,
                              r->schedule_id());
      }
      if (!started.ok()) {
        if (Transient(started.status())) {
          // Keep it for the next attempt, a second from now.
          *r->mutable_buffered_starts()->Add() = start;
          r->mutable_buffered_starts()->SwapElements(0, r->buffered_starts_size() - 1);
          *retry_soon = true;
        } else {
          spdlog::warn("schedule {}: start of {} failed: {}", r->schedule_id(),
                       request.workflow_id(), started.status().ToString());
        }
        continue;
      }
      const bool non_overlapping = decision.last_is_non_overlapping && i + 1 == decision.starts.size();
      scheduler::RecordAction(r, start, request.workflow_id(), started->run_id(), clock_->Now(),
                              non_overlapping);
    }
    if (decision.cancel_running || decision.terminate_running) {
      for (const auto& e : r->info().running_workflows()) {
        const std::string identity = absl::StrCat("temporal-scheduler-", r->namespace_(), "-",
                                                  r->schedule_id());
        absl::Status st;
        if (decision.terminate_running) {
          wsv1::TerminateWorkflowExecutionRequest req;
          req.set_namespace_(r->namespace_());
          req.mutable_workflow_execution()->set_workflow_id(e.workflow_id());
          req.set_first_execution_run_id(e.run_id());
          req.set_reason("terminated by schedule overlap policy");
          req.set_identity(identity);
          st = TerminateWorkflowExecution(r->namespace_id(), req);
        } else {
          wsv1::RequestCancelWorkflowExecutionRequest req;
          req.set_namespace_(r->namespace_());
          req.mutable_workflow_execution()->set_workflow_id(e.workflow_id());
          req.set_first_execution_run_id(e.run_id());
          req.set_reason("cancelled by schedule overlap policy");
          req.set_identity(identity);
          req.set_request_id(NewUuid());
          st = RequestCancelWorkflowExecution(r->namespace_id(), req);
        }
        if (!st.ok() && !absl::IsNotFound(st)) {
          spdlog::warn("schedule {}: stopping {} failed: {}", r->schedule_id(), e.workflow_id(),
                       st.ToString());
        }
      }
    }
    if (!try_again) break;
  }
}

absl::Status HistoryEngine::CreateSchedule(v1::ScheduleRecord record,
                                           const schedv1::SchedulePatch* initial_patch) {
  const std::string key = ScheduleKey(record.schedule_id());
  auto ctx = Context(record.namespace_id(), key);
  absl::MutexLock lock(&(*ctx)->mu);
  ShardContext& shard = ShardFor(record.namespace_id(), key);
  if (!shard.owned()) return shard.NotOwnedError();
  const absl::Time now = clock_->Now();
  record.set_run_id(NewUuid());
  record.set_db_version(0);
  record.set_conflict_token(1);
  *record.mutable_info()->mutable_create_time() = ToProto(now);
  *record.mutable_last_processed_time() = ToProto(now);
  scheduler::ResolvePolicies(record.mutable_schedule());
  // A deleted schedule's id may be taken again (Temporal starts its scheduler workflow with
  // ALLOW_DUPLICATE): the new record replaces the old one.
  ScheduleMutation::Kind kind = ScheduleMutation::Kind::kCreate;
  auto existing = stores_->schedules->Get(shard.id(), record.namespace_id(), record.schedule_id());
  if (existing.ok()) {
    if (!existing->deleted()) {
      return absl::AlreadyExistsError(
          absl::StrCat("schedule \"", record.schedule_id(), "\" is already registered"));
    }
    kind = ScheduleMutation::Kind::kUpdate;
    record.set_db_version(existing->db_version());
    record.set_wake_stamp(existing->wake_stamp());
    // Its old visibility row went with the delete.
  } else if (!absl::IsNotFound(existing.status())) {
    return existing.status();
  }
  if (initial_patch != nullptr) scheduler::ApplyPatch(&record, *initial_patch, now);
  bool retry_soon = false;
  StepSchedule(&record, now, &retry_soon);
  absl::Status st = CommitSchedule(shard, &record, kind, now, retry_soon);
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(
        absl::StrCat("schedule \"", record.schedule_id(), "\" is already registered"));
  }
  return st;
}

absl::StatusOr<v1::ScheduleRecord> HistoryEngine::ReadSchedule(ShardContext& shard,
                                                               const std::string& namespace_id,
                                                               const std::string& schedule_id) {
  if (!shard.owned()) return shard.NotOwnedError();
  auto record = stores_->schedules->Get(shard.id(), namespace_id, schedule_id);
  if (absl::IsNotFound(record.status())) return ScheduleNotFound(schedule_id);
  return record;
}

absl::Status HistoryEngine::MutateSchedule(
    const std::string& namespace_id, const std::string& schedule_id,
    const std::function<absl::Status(v1::ScheduleRecord*, absl::Time)>& fn, bool step) {
  const std::string key = ScheduleKey(schedule_id);
  auto ctx = Context(namespace_id, key);
  absl::MutexLock lock(&(*ctx)->mu);
  ShardContext& shard = ShardFor(namespace_id, key);
  auto record = ReadSchedule(shard, namespace_id, schedule_id);
  if (!record.ok()) return record.status();
  if (record->deleted()) return WorkflowNotFound("workflow execution already completed");
  const absl::Time now = clock_->Now();
  absl::Status st = fn(&*record, now);
  if (!st.ok()) return st;
  bool retry_soon = false;
  if (step) StepSchedule(&*record, now, &retry_soon);
  return CommitSchedule(shard, &*record, ScheduleMutation::Kind::kUpdate, now, retry_soon);
}

absl::StatusOr<v1::ScheduleRecord> HistoryEngine::DescribeSchedule(const std::string& namespace_id,
                                                                   const std::string& schedule_id) {
  const std::string key = ScheduleKey(schedule_id);
  return ReadSchedule(ShardFor(namespace_id, key), namespace_id, schedule_id);
}

absl::Status HistoryEngine::UpdateSchedule(const std::string& namespace_id,
                                           const std::string& schedule_id,
                                           const schedv1::Schedule& schedule,
                                           const common::SearchAttributes* search_attributes,
                                           int64_t conflict_token) {
  return MutateSchedule(
      namespace_id, schedule_id,
      [&](v1::ScheduleRecord* r, absl::Time now) {
        // A stale conflict token makes the update a no-op, as Temporal's scheduler ignores it.
        if (conflict_token != 0 && conflict_token != r->conflict_token()) return absl::OkStatus();
        // Time up to now is processed under the schedule as it was.
        auto compiled = scheduler::CompileSpec(r->schedule().spec(), scheduler::JitterSeed(*r));
        scheduler::BufferDueActions(r, compiled.ok() ? &*compiled : nullptr, now);
        scheduler::ApplyUpdate(r, schedule, search_attributes, now);
        return absl::OkStatus();
      },
      /*step=*/true);
}

absl::Status HistoryEngine::PatchSchedule(const std::string& namespace_id,
                                          const std::string& schedule_id,
                                          const schedv1::SchedulePatch& patch) {
  return MutateSchedule(
      namespace_id, schedule_id,
      [&](v1::ScheduleRecord* r, absl::Time now) {
        // Time up to now is processed under the schedule as it was.
        auto compiled = scheduler::CompileSpec(r->schedule().spec(), scheduler::JitterSeed(*r));
        scheduler::BufferDueActions(r, compiled.ok() ? &*compiled : nullptr, now);
        scheduler::ApplyPatch(r, patch, now);
        return absl::OkStatus();
      },
      /*step=*/true);
}

absl::Status HistoryEngine::DeleteSchedule(const std::string& namespace_id,
                                           const std::string& schedule_id) {
  const std::string key = ScheduleKey(schedule_id);
  auto ctx = Context(namespace_id, key);
  absl::MutexLock lock(&(*ctx)->mu);
  ShardContext& shard = ShardFor(namespace_id, key);
  auto record = ReadSchedule(shard, namespace_id, schedule_id);
  if (!record.ok()) return record.status();
  if (record->deleted()) return WorkflowNotFound("workflow execution already completed");
  // Kept, taking no action and listed nowhere, for the namespace's retention (as Temporal
  // keeps the terminated scheduler workflow), then purged.
  const absl::Time now = clock_->Now();
  absl::Duration retention = absl::Hours(24);
  if (auto ns = namespaces_->GetById(namespace_id);
      ns.ok() && ns->config().has_workflow_execution_retention_ttl()) {
    retention = FromProto(ns->config().workflow_execution_retention_ttl());
  }
  record->set_deleted(true);
  *record->mutable_purge_time() = ToProto(now + retention);
  record->clear_buffered_starts();
  record->clear_ongoing_backfills();
  return CommitSchedule(shard, &*record, ScheduleMutation::Kind::kUpdate, now);
}

absl::Status HistoryEngine::ProcessScheduleWake(const v1::TimerTask& task) {
  const std::string& namespace_id = task.run().namespace_id();
  const std::string schedule_id(
      absl::StripPrefix(task.run().workflow_id(), scheduler::kScheduleWorkflowIdPrefix));
  const std::string& key = task.run().workflow_id();
  auto ctx = Context(namespace_id, key);
  absl::MutexLock lock(&(*ctx)->mu);
  ShardContext& shard = ShardFor(namespace_id, key);
  auto record = ReadSchedule(shard, namespace_id, schedule_id);
  if (absl::IsNotFound(record.status())) return absl::OkStatus();
  if (!record.ok()) return record.status();
  if (record->run_id() != task.run().run_id() || record->wake_stamp() != task.stamp()) {
    return absl::OkStatus();  // a wake-up that another replaced
  }
  const absl::Time now = clock_->Now();
  if (record->deleted()) {
    if (FromProto(record->purge_time()) > now) return absl::OkStatus();
    return CommitSchedule(shard, &*record, ScheduleMutation::Kind::kDelete, now);
  }
  auto compiled = scheduler::CompileSpec(record->schedule().spec(), scheduler::JitterSeed(*record));
  const auto wake = scheduler::NextWake(*record, compiled.ok() ? &*compiled : nullptr, now);
  if (wake.has_value() && wake->expire && wake->time <= now) {
    // Done for a retention period: the schedule goes, as Temporal's does.
    return CommitSchedule(shard, &*record, ScheduleMutation::Kind::kDelete, now);
  }
  bool retry_soon = false;
  StepSchedule(&*record, now, &retry_soon);
  return CommitSchedule(shard, &*record, ScheduleMutation::Kind::kUpdate, now, retry_soon);
}

absl::Status HistoryEngine::ProcessScheduledRunClosed(const v1::RunKey& run,
                                                      const std::string& schedule_id) {
  std::optional<ScheduledRunEnd> end;
  std::string first_run_id;
  {
    auto ctx = Context(run.namespace_id(), run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto cached = LoadRun(ctx->get(), ShardFor(run.namespace_id(), run.workflow_id()), run);
    if (absl::IsNotFound(cached.status())) return absl::OkStatus();
    if (!cached.ok()) return cached.status();
    const v1::MutableState& ms = (*cached)->state;
    if (IsRunning(ms)) return absl::OkStatus();
    ScheduledRunEnd e;
    e.status = ms.execution().status();
    if (ms.has_close_event()) e.close_event = ms.close_event();
    end = std::move(e);
  }
  absl::Status st = MutateSchedule(
      run.namespace_id(), schedule_id,
      [&](v1::ScheduleRecord* r, absl::Time) {
        RecordScheduledRunEnd(r, run.workflow_id(), *end);
        return absl::OkStatus();
      },
      /*step=*/true);
  if (absl::IsNotFound(st)) return absl::OkStatus();  // the schedule was deleted
  return st;
}

}  // namespace almanac::history
