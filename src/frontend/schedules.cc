#include "frontend/schedules.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/custom_search_attributes.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "persistence/search_attributes.h"
#include "persistence/visibility_query.h"
#include "scheduler/schedule_machine.h"
#include "scheduler/schedule_spec.h"

namespace almanac::frontend {
namespace {

namespace ws = temporal::api::workflowservice::v1;
namespace schedv1 = temporal::api::schedule::v1;
namespace common = temporal::api::common::v1;
namespace enums = temporal::api::enums::v1;

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  out.set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(out.seconds())) / absl::Nanoseconds(1)));
  return out;
}

// Temporal keeps these of a schedule's search attributes to itself.
void CleanSearchAttributes(common::SearchAttributes* attributes) {
  auto* fields = attributes->mutable_indexed_fields();
  for (const char* name : {"TemporalSchedulePaused", "TemporalScheduleInfoJSON", "BinaryChecksums",
                           "BuildIds", "TemporalNamespaceDivision"}) {
    fields->erase(name);
  }
}

// The schedule's spec as Temporal returns it: what CleanSpec drops (the time zone's data).
void CleanSpec(schedv1::ScheduleSpec* spec) { spec->clear_timezone_data(); }

std::string ConflictToken(int64_t token) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(token & 0xff);
    token >>= 8;
  }
  return out;
}

int64_t ParseConflictToken(const std::string& bytes) {
  if (bytes.size() < 8) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return static_cast<int64_t>(v);
}

}  // namespace

absl::StatusOr<v1::NamespaceRecord> ScheduleCalls::Namespace(const std::string& name) const {
  if (name.empty()) return absl::InvalidArgumentError("Namespace is empty.");
  absl::Status st = ValidateNamespaceName(name);
  if (!st.ok()) return st;
  return namespaces_->GetByName(name);
}

absl::Status ScheduleCalls::CheckSearchAttributes(const v1::NamespaceRecord& ns,
                                                  common::SearchAttributes* attributes) const {
  if (attributes->indexed_fields().empty()) return absl::OkStatus();
  absl::Status st = persistence::ValidateSearchAttributes(SearchAttributeSchemaOf(ns),
                                                          ns.info().name(), {}, attributes);
  if (!st.ok()) return st;
  return persistence::CheckSearchAttributeSizes({}, *attributes);
}

absl::Status ScheduleCalls::PrepareSchedule(const v1::NamespaceRecord& ns,
                                            schedv1::Schedule* schedule) const {
  for (const auto& interval : schedule->spec().interval()) {
    // Temporal checks the durations are valid protobuf durations first.
    for (const google::protobuf::Duration* d : {&interval.interval(), &interval.phase()}) {
      const bool valid = d->seconds() >= -315576000000 && d->seconds() <= 315576000000 &&
                         d->nanos() > -1000000000 && d->nanos() < 1000000000 &&
                         !((d->seconds() > 0 && d->nanos() < 0) || (d->seconds() < 0 && d->nanos() > 0));
      if (!valid) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Invalid schedule spec: ", d == &interval.interval() ? "interval" : "phase",
            " is not a valid duration"));
      }
    }
  }
  auto compiled = scheduler::CompileSpec(schedule->spec());
  if (!compiled.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Invalid schedule spec: ", compiled.status().message()));
  }
  *schedule->mutable_spec() = compiled->Canonical();
  if (!schedule->action().has_start_workflow()) return absl::OkStatus();
  auto* start = schedule->mutable_action()->mutable_start_workflow();
  // The id it gets with an action time appended must be a valid workflow id.
  const std::string with_time = absl::StrCat(start->workflow_id(), "-2009-11-10T23:00:00Z");
  if (start->workflow_id().empty()) return absl::InvalidArgumentError("WorkflowId is not set on request.");
  if (with_time.size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("WorkflowId length exceeds limit.");
  }
  if (start->workflow_type().name().empty()) {
    return absl::InvalidArgumentError("WorkflowType is not set on request.");
  }
  if (start->workflow_type().name().size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("WorkflowType length exceeds limit.");
  }
  absl::Status st = ValidateTaskQueue(start->task_queue(), limits_);
  if (!st.ok()) return st;
  ws::StartWorkflowExecutionRequest probe;
  probe.set_workflow_id(start->workflow_id());
  *probe.mutable_workflow_type() = start->workflow_type();
  *probe.mutable_task_queue() = start->task_queue();
  *probe.mutable_workflow_execution_timeout() = start->workflow_execution_timeout();
  *probe.mutable_workflow_run_timeout() = start->workflow_run_timeout();
  *probe.mutable_workflow_task_timeout() = start->workflow_task_timeout();
  *probe.mutable_input() = start->input();
  st = ValidateStart(probe, limits_);
  if (!st.ok()) return st;
  if (!start->cron_schedule().empty()) {
    return absl::InvalidArgumentError("Scheduled workflow must not contain CronSchedule");
  }
  if (start->workflow_id_reuse_policy() != enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED &&
      start->workflow_id_reuse_policy() != enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE) {
    return absl::InvalidArgumentError("Scheduled workflow must not contain WorkflowIDReusePolicy");
  }
  // The action's search attributes are checked now and typed when each run starts.
  common::SearchAttributes attributes = start->search_attributes();
  return CheckSearchAttributes(ns, &attributes);
}

absl::Status ScheduleCalls::Create(const ws::CreateScheduleRequest& req,
                                   ws::CreateScheduleResponse* resp) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  const std::string key = absl::StrCat(scheduler::kScheduleWorkflowIdPrefix, req.schedule_id());
  if (key.size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("WorkflowId length exceeds limit.");
  }
  if (req.request_id().empty()) return absl::InvalidArgumentError("RequestId is not set on request.");
  if (req.request_id().size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("RequestId length exceeds limit.");
  }
  v1::ScheduleRecord record;
  record.set_namespace_id(ns->info().id());
  record.set_namespace_(ns->info().name());
  record.set_schedule_id(req.schedule_id());
  record.set_identity(req.identity());
  *record.mutable_schedule() = req.schedule();
  absl::Status st = PrepareSchedule(*ns, record.mutable_schedule());
  if (!st.ok()) return st;
  if (req.has_memo()) *record.mutable_memo() = req.memo();
  *record.mutable_search_attributes() = req.search_attributes();
  st = CheckSearchAttributes(*ns, record.mutable_search_attributes());
  if (!st.ok()) return st;
  st = history_->CreateSchedule(std::move(record),
                                req.has_initial_patch() ? &req.initial_patch() : nullptr);
  if (absl::IsAlreadyExists(st)) return AlreadyStarted(std::string(st.message()), "", "");
  if (!st.ok()) return st;
  resp->set_conflict_token(ConflictToken(1));
  return absl::OkStatus();
}

absl::Status ScheduleCalls::Describe(const ws::DescribeScheduleRequest& req,
                                     ws::DescribeScheduleResponse* resp) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  auto record = history_->DescribeSchedule(ns->info().id(), req.schedule_id());
  if (!record.ok()) return record.status();
  if (record->deleted()) return WorkflowNotFound("schedule not found");
  auto compiled = scheduler::CompileSpec(record->schedule().spec(), scheduler::JitterSeed(*record));
  *resp->mutable_schedule() = record->schedule();
  CleanSpec(resp->mutable_schedule()->mutable_spec());
  *resp->mutable_info() = scheduler::DescribeInfo(*record, compiled.ok() ? &*compiled : nullptr);
  if (!compiled.ok()) {
    resp->mutable_info()->set_invalid_schedule_error(std::string(compiled.status().message()));
  }
  if (record->memo().fields_size() > 0) *resp->mutable_memo() = record->memo();
  if (record->search_attributes().indexed_fields_size() > 0) {
    *resp->mutable_search_attributes() = record->search_attributes();
  }
  resp->set_conflict_token(ConflictToken(record->conflict_token()));
  return absl::OkStatus();
}

absl::Status ScheduleCalls::Update(const ws::UpdateScheduleRequest& req) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  if (req.request_id().size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("RequestId length exceeds limit.");
  }
  schedv1::Schedule schedule = req.schedule();
  absl::Status st = PrepareSchedule(*ns, &schedule);
  if (!st.ok()) return st;
  std::optional<common::SearchAttributes> attributes;
  if (req.has_search_attributes()) {
    attributes = req.search_attributes();
    st = CheckSearchAttributes(*ns, &*attributes);
    if (!st.ok()) return st;
  }
  if (req.has_memo()) {
    return absl::FailedPreconditionError(
        "memo updates are not supported on workflow-backed schedules");
  }
  return history_->UpdateSchedule(ns->info().id(), req.schedule_id(), schedule,
                                  attributes.has_value() ? &*attributes : nullptr,
                                  ParseConflictToken(req.conflict_token()));
}

absl::Status ScheduleCalls::Patch(const ws::PatchScheduleRequest& req) {
  if (!req.has_patch()) return absl::InvalidArgumentError("Patch is not set on request.");
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  if (req.request_id().size() > limits_.max_id_length) {
    return absl::InvalidArgumentError("RequestId length exceeds limit.");
  }
  return history_->PatchSchedule(ns->info().id(), req.schedule_id(), req.patch());
}

absl::Status ScheduleCalls::Delete(const ws::DeleteScheduleRequest& req) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  return history_->DeleteSchedule(ns->info().id(), req.schedule_id());
}

absl::Status ScheduleCalls::MatchingTimes(const ws::ListScheduleMatchingTimesRequest& req,
                                          ws::ListScheduleMatchingTimesResponse* resp) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  auto record = history_->DescribeSchedule(ns->info().id(), req.schedule_id());
  if (!record.ok()) return record.status();
  if (record->deleted()) {
    // Temporal answers with its query of the closed scheduler workflow's failure.
    return absl::FailedPreconditionError("Workflow execution closed before WorkflowTaskStarted event");
  }
  if (!req.has_start_time() || !req.has_end_time()) {
    return absl::InvalidArgumentError("missing or invalid query");
  }
  auto compiled = scheduler::CompileSpec(record->schedule().spec(), scheduler::JitterSeed(*record));
  if (!compiled.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid schedule: ", compiled.status().message()));
  }
  const absl::Time end = FromProto(req.end_time());
  absl::Time t = FromProto(req.start_time());
  for (int i = 0; i < scheduler::kMaxListMatchingTimes; ++i) {
    auto next = compiled->Next(t);
    if (!next.has_value() || *next > end) break;
    t = *next;
    *resp->add_start_time() = ToProto(t);
  }
  return absl::OkStatus();
}

absl::Status ScheduleCalls::List(const ws::ListSchedulesRequest& req,
                                 ws::ListSchedulesResponse* resp) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  int page_size = req.maximum_page_size();
  if (page_size <= 0 || page_size > 1000) page_size = 1000;
  persistence::VisibilityQueryOptions options;
  options.dialect = visibility_->dialect();
  options.kind = persistence::VisibilityQueryKind::kList;
  options.first_placeholder = persistence::VisibilityStore::kFirstQueryPlaceholder;
  options.allow_order_by = false;
  options.schedule_id_prefix = scheduler::kScheduleWorkflowIdPrefix;
  auto compiled =
      persistence::CompileVisibilityQuery(req.query(), SearchAttributeSchemaOf(*ns), options);
  if (!compiled.ok()) return compiled.status();
  // Only schedules (their rows carry Temporal's namespace division), and only live ones.
  const std::string only_schedules = absl::StrCat("namespace_division = '",
                                                  scheduler::kNamespaceDivision, "' AND status = 1");
  compiled->where = compiled->where.empty() ? only_schedules
                                            : absl::StrCat(only_schedules, " AND ", compiled->where);
  auto page = visibility_->List(ns->info().id(), *compiled, page_size, req.next_page_token());
  if (!page.ok()) return page.status();
  for (auto& e : page->executions) {
    schedv1::ScheduleListEntry* entry = resp->add_schedules();
    entry->set_schedule_id(std::string(
        absl::StripPrefix(e.execution().workflow_id(), scheduler::kScheduleWorkflowIdPrefix)));
    auto* fields = e.mutable_memo()->mutable_fields();
    if (auto it = fields->find(scheduler::kMemoFieldInfo); it != fields->end()) {
      if (!entry->mutable_info()->ParseFromString(it->second.data())) entry->clear_info();
      fields->erase(it);
    }
    if (!fields->empty()) *entry->mutable_memo() = e.memo();
    CleanSearchAttributes(e.mutable_search_attributes());
    if (!e.search_attributes().indexed_fields().empty()) {
      *entry->mutable_search_attributes() = e.search_attributes();
    }
  }
  resp->set_next_page_token(page->next_page_token);
  return absl::OkStatus();
}

absl::Status ScheduleCalls::Count(const ws::CountSchedulesRequest& req,
                                  ws::CountSchedulesResponse* resp) {
  auto ns = Namespace(req.namespace_());
  if (!ns.ok()) return ns.status();
  persistence::VisibilityQueryOptions options;
  options.dialect = visibility_->dialect();
  options.kind = persistence::VisibilityQueryKind::kCount;
  options.first_placeholder = persistence::VisibilityStore::kFirstQueryPlaceholder;
  options.allow_order_by = false;
  options.schedule_id_prefix = scheduler::kScheduleWorkflowIdPrefix;
  auto compiled =
      persistence::CompileVisibilityQuery(req.query(), SearchAttributeSchemaOf(*ns), options);
  if (!compiled.ok()) return compiled.status();
  const std::string only_schedules = absl::StrCat("namespace_division = '",
                                                  scheduler::kNamespaceDivision, "' AND status = 1");
  compiled->where = compiled->where.empty() ? only_schedules
                                            : absl::StrCat(only_schedules, " AND ", compiled->where);
  compiled->group_by.clear();
  auto count = visibility_->CountRuns(ns->info().id(), *compiled);
  if (!count.ok()) return count.status();
  resp->set_count(count->count);
  return absl::OkStatus();
}

}  // namespace almanac::frontend
