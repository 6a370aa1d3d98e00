#pragma once

// What a StartWorkflowExecution request does to a workflow id that may already have a run:
// Temporal's workflow id reuse policy (against a closed run) and conflict policy (against a
// running one), decided without I/O. The history engine reads the current run, asks
// DecideStart, and carries out the answer under the workflow id's lock.

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "temporal/api/enums/v1/workflow.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::history {

// The workflow id's current run, as the current-run pointer records it.
struct ExistingRun {
  std::string run_id;
  std::string create_request_id;  // the request id of the start that created it
  temporal::api::enums::v1::WorkflowExecutionStatus status =
      temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_UNSPECIFIED;
};

struct StartDecision {
  enum class Action {
    kReturnExisting,        // answer with `run_id` and `started`; create nothing
    kRefuse,                // answer with `error`
    kTerminateThenCreate,   // terminate the running `run_id` with `terminate_reason`, then create
    kCreate,                // create a run; `run_id` is the run it replaces, empty if none
  };
  Action action = Action::kCreate;
  // kReturnExisting: the run to answer with. kTerminateThenCreate and kCreate: the current
  // run the new one replaces (empty when the workflow id has none).
  std::string run_id;
  // kReturnExisting: whether the response says the run was started by this request (true
  // for a repeat of the request that created it, false for USE_EXISTING).
  bool started = false;
  // kRefuse: a kAlreadyExists status carrying WorkflowExecutionAlreadyStartedFailure.
  absl::Status error;
  // kTerminateThenCreate: the reason recorded in the WorkflowExecutionTerminated event.
  std::string terminate_reason;
};

// Decides what `request` does given the workflow id's current run (`current`, nullopt when
// the id has never been used). Rules, in order:
//  1. A request whose request id created the current run is a retry of that start: the
//     current run is returned as started, whatever its status.
//  2. A running current run meets the conflict policy. When it is unspecified, the legacy
//     reuse policy TERMINATE_IF_RUNNING means TERMINATE_EXISTING, anything else FAIL.
//     USE_EXISTING returns it (not started); TERMINATE_EXISTING terminates it, then creates;
//     FAIL (and any unknown value) refuses.
//  3. A closed current run meets the reuse policy: REJECT_DUPLICATE refuses;
//     ALLOW_DUPLICATE_FAILED_ONLY refuses unless the run failed, was terminated, canceled or
//     timed out; any other value (unspecified, ALLOW_DUPLICATE, TERMINATE_IF_RUNNING)
//     creates.
StartDecision DecideStart(const std::optional<ExistingRun>& current,
                          const temporal::api::workflowservice::v1::StartWorkflowExecutionRequest&
                              request);

}  // namespace almanac::history
