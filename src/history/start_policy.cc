#include "history/start_policy.h"

#include "absl/strings/str_cat.h"
#include "common/status_details.h"

namespace almanac::history {

namespace {

namespace enums = temporal::api::enums::v1;

StartDecision ReturnExisting(const ExistingRun& current, bool started) {
  StartDecision d;
  d.action = StartDecision::Action::kReturnExisting;
  d.run_id = current.run_id;
  d.started = started;
  return d;
}

StartDecision Refuse(const ExistingRun& current, const std::string& message) {
  StartDecision d;
  d.action = StartDecision::Action::kRefuse;
  d.error = AlreadyStarted(message, current.create_request_id, current.run_id);
  return d;
}

StartDecision Create(const std::string& previous_run_id) {
  StartDecision d;
  d.action = StartDecision::Action::kCreate;
  d.run_id = previous_run_id;
  return d;
}

enums::WorkflowIdConflictPolicy EffectiveConflictPolicy(
    const temporal::api::workflowservice::v1::StartWorkflowExecutionRequest& request) {
  if (request.workflow_id_conflict_policy() != enums::WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED) {
    return request.workflow_id_conflict_policy();
  }
  // Before conflict policies existed, the reuse policy said what to do with a running run.
  return request.workflow_id_reuse_policy() == enums::WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING
             ? enums::WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
             : enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL;
}

}  // namespace

StartDecision DecideStart(
    const std::optional<ExistingRun>& current,
    const temporal::api::workflowservice::v1::StartWorkflowExecutionRequest& request) {
  if (!current.has_value()) return Create("");
  const std::string& wid = request.workflow_id();
  if (current->create_request_id == request.request_id()) {
    return ReturnExisting(*current, /*started=*/true);
  }
  if (current->status == enums::WORKFLOW_EXECUTION_STATUS_RUNNING) {
    switch (EffectiveConflictPolicy(request)) {
      case enums::WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
        return ReturnExisting(*current, /*started=*/false);
      case enums::WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING: {
        StartDecision d;
        d.action = StartDecision::Action::kTerminateThenCreate;
        d.run_id = current->run_id;
        d.terminate_reason = "TerminateIfRunning WorkflowIdReusePolicy";
        return d;
      }
      default:
        return Refuse(*current, absl::StrCat("Workflow execution is already running. WorkflowId: ",
                                             wid, ", RunId: ", current->run_id, "."));
    }
  }
  const auto reuse = request.workflow_id_reuse_policy();
  const bool failed_like = current->status == enums::WORKFLOW_EXECUTION_STATUS_FAILED ||
                           current->status == enums::WORKFLOW_EXECUTION_STATUS_TERMINATED ||
                           current->status == enums::WORKFLOW_EXECUTION_STATUS_CANCELED ||
                           current->status == enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT;
  if (reuse == enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE ||
      (reuse == enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY && !failed_like)) {
    return Refuse(*current,
                  absl::StrCat("Workflow execution already finished and the workflow id reuse "
                               "policy does not allow another run. WorkflowId: ",
                               wid, ", RunId: ", current->run_id, "."));
  }
  return Create(current->run_id);
}

}  // namespace almanac::history
