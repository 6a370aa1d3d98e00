#include "frontend/validation.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "scheduler/schedule_spec.h"

namespace almanac::frontend {

namespace {

absl::Status CheckId(const std::string& value, const char* field, const ValidationLimits& limits) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is not set on request."));
  if (value.size() > limits.max_id_length) {
    return absl::InvalidArgumentError(absl::StrCat(field, " exceeds length limit of ",
                                                   limits.max_id_length, " bytes."));
  }
  return absl::OkStatus();
}

absl::Status CheckDuration(const google::protobuf::Duration& d, const char* field) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must not be negative."));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateNamespaceName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("Namespace is not set on request.");
  if (name.size() > 255) return absl::InvalidArgumentError("Namespace exceeds length limit.");
  return absl::OkStatus();
}

absl::Status ValidateBlob(size_t size, const char* /*what*/, const ValidationLimits& limits) {
  if (size > limits.max_blob_size) {
    return absl::InvalidArgumentError("Blob data size exceeds limit.");  // Temporal's words
  }
  return absl::OkStatus();
}

absl::Status ValidateTaskQueue(const temporal::api::taskqueue::v1::TaskQueue& tq,
                               const ValidationLimits& limits) {
  return CheckId(tq.name(), "TaskQueue", limits);
}

absl::Status ValidateExecution(const temporal::api::common::v1::WorkflowExecution& e,
                               const ValidationLimits& limits) {
  absl::Status st = CheckId(e.workflow_id(), "WorkflowId", limits);
  if (!st.ok()) return st;
  if (e.run_id().size() > limits.max_id_length) {
    return absl::InvalidArgumentError("RunId exceeds length limit.");
  }
  // Run ids are UUIDs, as Temporal requires of any run id it is given.
  if (!e.run_id().empty() && !IsUuid(e.run_id())) return absl::InvalidArgumentError("Invalid RunId.");
  return absl::OkStatus();
}

absl::Status ValidateStart(const temporal::api::workflowservice::v1::StartWorkflowExecutionRequest& r,
                           const ValidationLimits& limits) {
  for (absl::Status st : {CheckId(r.workflow_id(), "WorkflowId", limits),
                          CheckId(r.workflow_type().name(), "WorkflowType", limits),
                          ValidateTaskQueue(r.task_queue(), limits),
                          CheckDuration(r.workflow_execution_timeout(), "WorkflowExecutionTimeout"),
                          CheckDuration(r.workflow_run_timeout(), "WorkflowRunTimeout"),
                          CheckDuration(r.workflow_task_timeout(), "WorkflowTaskTimeout"),
                          ValidateBlob(r.input().ByteSizeLong(), "Input", limits)}) {
    if (!st.ok()) return st;
  }
  if (r.request_id().size() > limits.max_id_length) {
    return absl::InvalidArgumentError("RequestId exceeds length limit.");
  }
  if (r.has_workflow_start_delay()) {
    if (!r.cron_schedule().empty()) {
      return absl::InvalidArgumentError(
          "CronSchedule and WorkflowStartDelay may not be used together.");
    }
    if (r.workflow_start_delay().seconds() < 0 || r.workflow_start_delay().nanos() < 0) {
      return absl::InvalidArgumentError("An invalid WorkflowStartDelaySeconds is set on request.");
    }
  }
  if (!r.cron_schedule().empty() && !scheduler::CompileCron(r.cron_schedule()).ok()) {
    return absl::InvalidArgumentError("invalid CronSchedule.");
  }
  return absl::OkStatus();
}

absl::Status ValidateSignal(const std::string& signal_name, size_t input_size,
                            const ValidationLimits& limits) {
  if (signal_name.empty()) return absl::InvalidArgumentError("SignalName is not set on request.");
  if (signal_name.size() > limits.max_id_length) {
    return absl::InvalidArgumentError("SignalName length exceeds limit.");
  }
  return ValidateBlob(input_size, "Signal input", limits);
}

absl::Status ValidateUpdate(temporal::api::workflowservice::v1::UpdateWorkflowExecutionRequest* r,
                            const ValidationLimits& limits) {
  absl::Status st = ValidateExecution(r->workflow_execution(), limits);
  if (!st.ok()) return st;
  auto* u = r->mutable_request();
  if (!u->has_meta()) return absl::InvalidArgumentError("Update meta is not set on request.");
  if (u->meta().update_id().size() > limits.max_id_length) {
    return absl::InvalidArgumentError("UpdateId length exceeds limit.");
  }
  if (!u->has_input()) return absl::InvalidArgumentError("Update input is not set on request.");
  if (u->input().name().empty()) return absl::InvalidArgumentError("Update name is not set on request.");
  st = ValidateBlob(u->input().args().ByteSizeLong(), "Update input", limits);
  if (!st.ok()) return st;
  namespace enums = temporal::api::enums::v1;
  auto* policy = r->mutable_wait_policy();
  if (policy->lifecycle_stage() == enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_UNSPECIFIED) {
    policy->set_lifecycle_stage(enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED);
  }
  if (policy->lifecycle_stage() == enums::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED) {
    return absl::PermissionDeniedError(
        "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is not "
        "supported.");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::TaskToken> ParseQueryTaskToken(const std::string& bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("Task token not set on request.");
  v1::TaskToken token;
  if (!token.ParseFromString(bytes) || token.namespace_id().empty() || token.query_id().empty()) {
    return absl::InvalidArgumentError("Error deserializing task token.");
  }
  return token;
}

absl::StatusOr<v1::TaskToken> ParseTaskToken(const std::string& bytes, bool activity) {
  if (bytes.empty()) return absl::InvalidArgumentError("Task token not set on request.");
  v1::TaskToken token;
  if (!token.ParseFromString(bytes) || token.namespace_id().empty() ||
      token.workflow_id().empty() || token.run_id().empty() || token.scheduled_event_id() <= 0 ||
      token.is_activity() != activity) {
    return absl::InvalidArgumentError("Error deserializing task token.");
  }
  return token;
}

}  // namespace almanac::frontend
