// The workflow id reuse and conflict policies of StartWorkflowExecution, decided without
// a store.

#include "history/start_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_details.h"
#include "temporal/api/errordetails/v1/message.pb.h"

namespace almanac::history {
namespace {

namespace enums = temporal::api::enums::v1;
namespace ws = temporal::api::workflowservice::v1;
using Action = StartDecision::Action;

const std::vector<enums::WorkflowIdReusePolicy> kReusePolicies = {
    enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED,
    enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
    enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
    enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
    enums::WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING,
};

const std::vector<enums::WorkflowExecutionStatus> kClosedStatuses = {
    enums::WORKFLOW_EXECUTION_STATUS_COMPLETED,  enums::WORKFLOW_EXECUTION_STATUS_FAILED,
    enums::WORKFLOW_EXECUTION_STATUS_CANCELED,   enums::WORKFLOW_EXECUTION_STATUS_TERMINATED,
    enums::WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
};

ws::StartWorkflowExecutionRequest Request(
    enums::WorkflowIdReusePolicy reuse = enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED,
    enums::WorkflowIdConflictPolicy conflict = enums::WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED) {
  ws::StartWorkflowExecutionRequest req;
  req.set_workflow_id("wf");
  req.set_request_id("req-new");
  req.set_workflow_id_reuse_policy(reuse);
  req.set_workflow_id_conflict_policy(conflict);
  return req;
}

ExistingRun Current(enums::WorkflowExecutionStatus status) {
  return ExistingRun{"run-1", "req-old", status};
}

// A refusal is kAlreadyExists with the exact message the SDKs have always seen, and the
// detail that names the run in the way.
void ExpectAlreadyStarted(const StartDecision& d, const std::string& message) {
  ASSERT_EQ(d.action, Action::kRefuse);
  EXPECT_EQ(d.error.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(d.error.message(), message);
  auto payload = d.error.GetPayload(absl::StrCat(
      kTypeUrlPrefix,
      temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure::descriptor()
          ->full_name()));
  ASSERT_TRUE(payload.has_value());
  temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure detail;
  ASSERT_TRUE(detail.ParseFromString(std::string(*payload)));
  EXPECT_EQ(detail.start_request_id(), "req-old");
  EXPECT_EQ(detail.run_id(), "run-1");
}

constexpr char kRunningMessage[] =
    "Workflow execution is already running. WorkflowId: wf, RunId: run-1.";
constexpr char kClosedMessage[] =
    "Workflow execution already finished and the workflow id reuse policy does not allow "
    "another run. WorkflowId: wf, RunId: run-1.";

TEST(StartPolicyTest, AnUnusedWorkflowIdCreatesAFirstRun) {
  for (auto reuse : kReusePolicies) {
    const StartDecision d = DecideStart(std::nullopt, Request(reuse));
    EXPECT_EQ(d.action, Action::kCreate);
    EXPECT_EQ(d.run_id, "");  // nothing to replace
  }
}

TEST(StartPolicyTest, TheSameRequestIdReturnsItsRunAsStartedWhateverItsStatusAndPolicy) {
  std::vector<enums::WorkflowExecutionStatus> statuses = kClosedStatuses;
  statuses.push_back(enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  for (auto status : statuses) {
    for (auto reuse : {enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
                       enums::WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING}) {
      for (auto conflict : {enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL,
                            enums::WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING}) {
        SCOPED_TRACE(absl::StrCat(enums::WorkflowExecutionStatus_Name(status), " ",
                                  enums::WorkflowIdReusePolicy_Name(reuse), " ",
                                  enums::WorkflowIdConflictPolicy_Name(conflict)));
        ws::StartWorkflowExecutionRequest req = Request(reuse, conflict);
        req.set_request_id("req-old");
        const StartDecision d = DecideStart(Current(status), req);
        ASSERT_EQ(d.action, Action::kReturnExisting);
        EXPECT_EQ(d.run_id, "run-1");
        EXPECT_TRUE(d.started);
      }
    }
  }
}

TEST(StartPolicyTest, EveryReusePolicyAgainstEveryClosedStatus) {
  auto failed_like = [](enums::WorkflowExecutionStatus s) {
    return s == enums::WORKFLOW_EXECUTION_STATUS_FAILED ||
           s == enums::WORKFLOW_EXECUTION_STATUS_CANCELED ||
           s == enums::WORKFLOW_EXECUTION_STATUS_TERMINATED ||
           s == enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT;
  };
  for (auto reuse : kReusePolicies) {
    for (auto status : kClosedStatuses) {
      SCOPED_TRACE(absl::StrCat(enums::WorkflowIdReusePolicy_Name(reuse), " after ",
                                enums::WorkflowExecutionStatus_Name(status)));
      // The conflict policy concerns running runs only.
      for (auto conflict : {enums::WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED,
                            enums::WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING}) {
        const StartDecision d = DecideStart(Current(status), Request(reuse, conflict));
        const bool refused =
            reuse == enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE ||
            (reuse == enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY &&
             !failed_like(status));
        if (refused) {
          ExpectAlreadyStarted(d, kClosedMessage);
        } else {
          EXPECT_EQ(d.action, Action::kCreate);
          EXPECT_EQ(d.run_id, "run-1");  // the new run replaces it as current
        }
      }
    }
  }
}

TEST(StartPolicyTest, FailedOnlyAllowsExactlyTheUnsuccessfulEndings) {
  const auto reuse = enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY;
  EXPECT_EQ(DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED), Request(reuse)).action,
            Action::kRefuse);
  EXPECT_EQ(
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW), Request(reuse)).action,
      Action::kRefuse);
  for (auto status : {enums::WORKFLOW_EXECUTION_STATUS_FAILED,
                      enums::WORKFLOW_EXECUTION_STATUS_CANCELED,
                      enums::WORKFLOW_EXECUTION_STATUS_TERMINATED,
                      enums::WORKFLOW_EXECUTION_STATUS_TIMED_OUT}) {
    EXPECT_EQ(DecideStart(Current(status), Request(reuse)).action, Action::kCreate)
        << enums::WorkflowExecutionStatus_Name(status);
  }
}

TEST(StartPolicyTest, ARunningRunIsRefusedUnderFailOrAnUnspecifiedConflictPolicy) {
  for (auto conflict : {enums::WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED,
                        enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL}) {
    for (auto reuse : {enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED,
                       enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
                       enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
                       enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE}) {
      SCOPED_TRACE(absl::StrCat(enums::WorkflowIdConflictPolicy_Name(conflict), " ",
                                enums::WorkflowIdReusePolicy_Name(reuse)));
      ExpectAlreadyStarted(
          DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING), Request(reuse, conflict)),
          kRunningMessage);
    }
  }
}

TEST(StartPolicyTest, UseExistingReturnsTheRunningRunAsNotStarted) {
  const StartDecision d =
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING),
                  Request(enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
                          enums::WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING));
  ASSERT_EQ(d.action, Action::kReturnExisting);
  EXPECT_EQ(d.run_id, "run-1");
  EXPECT_FALSE(d.started);
}

TEST(StartPolicyTest, TerminateExistingTerminatesTheRunningRunThenCreates) {
  const StartDecision d =
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING),
                  Request(enums::WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED,
                          enums::WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING));
  ASSERT_EQ(d.action, Action::kTerminateThenCreate);
  EXPECT_EQ(d.run_id, "run-1");
  EXPECT_EQ(d.terminate_reason, "TerminateIfRunning WorkflowIdReusePolicy");
}

TEST(StartPolicyTest, LegacyTerminateIfRunningReusePolicyActsAsTerminateExisting) {
  const auto legacy = enums::WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING;
  const StartDecision running =
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING), Request(legacy));
  ASSERT_EQ(running.action, Action::kTerminateThenCreate);
  EXPECT_EQ(running.run_id, "run-1");
  EXPECT_EQ(running.terminate_reason, "TerminateIfRunning WorkflowIdReusePolicy");
  // Against a closed run it allows another, like ALLOW_DUPLICATE.
  const StartDecision closed =
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_COMPLETED), Request(legacy));
  EXPECT_EQ(closed.action, Action::kCreate);
  EXPECT_EQ(closed.run_id, "run-1");
  // An explicit conflict policy takes precedence over the legacy reuse policy.
  ExpectAlreadyStarted(
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING),
                  Request(legacy, enums::WORKFLOW_ID_CONFLICT_POLICY_FAIL)),
      kRunningMessage);
  const StartDecision use_existing =
      DecideStart(Current(enums::WORKFLOW_EXECUTION_STATUS_RUNNING),
                  Request(legacy, enums::WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING));
  EXPECT_EQ(use_existing.action, Action::kReturnExisting);
  EXPECT_FALSE(use_existing.started);
}

}  // namespace
}  // namespace almanac::history
