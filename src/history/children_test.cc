// Child workflows and cron in the pure layer: the StartChildWorkflowExecution command, the
// parent's records of its child (started, failed to start, closed), the parent close policy
// tasks a closing parent leaves, the close notification a child leaves (and takes back when
// its chain goes on), and a cron workflow's successor runs.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "history/state_machine.h"
#include "history/state_machine_internal.h"

namespace almanac::history::internal {
namespace {

namespace enums = temporal::api::enums::v1;
namespace ws = temporal::api::workflowservice::v1;
using api::command::v1::Command;

// 2023-11-14T22:13:20Z.
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

class ChildrenTest : public ::testing::Test {
 protected:
  // Starts run-1 of "parent" and completes its first workflow task with `commands`.
  void StartParent(const std::string& cron = "") {
    request_.set_workflow_id("parent");
    request_.mutable_workflow_type()->set_name("Parent");
    request_.mutable_task_queue()->set_name("tq");
    request_.set_cron_schedule(cron);
    Effects fx;
    StartWorkflow(request_, StartParams{"ns-id", "run-1", "", kT0}, Limits(), &ms_, &fx);
    started_ = fx.events[0];
    chain_ = ChainContext{&started_, "run-2"};
  }

  // Starts the pending workflow task and completes it with `commands`.
  CompletionOutcome Complete(const std::vector<Command>& commands, absl::Time at) {
    Effects fx;
    if (!ms_.has_workflow_task()) ScheduleWorkflowTask(at, &ms_, &fx);
    if (ms_.workflow_task().started_event_id() == 0) {
      auto started = RecordWorkflowTaskStarted(ms_.workflow_task().stamp(), "poll", "worker", at,
                                               &ms_, &fx);
      EXPECT_TRUE(started.ok());
    }
    ws::RespondWorkflowTaskCompletedRequest req;
    for (const auto& c : commands) *req.add_commands() = c;
    CompletionContext context;
    context.namespace_name = "default";
    fx_ = Effects();
    return CompleteWorkflowTask(req, Limits(), chain_, context, at, &ms_, &fx_);
  }

  static Command StartChild(const std::string& id,
                            enums::ParentClosePolicy policy = enums::PARENT_CLOSE_POLICY_UNSPECIFIED) {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION);
    auto* a = c.mutable_start_child_workflow_execution_command_attributes();
    a->set_workflow_id(id);
    a->mutable_workflow_type()->set_name("Child");
    a->set_parent_close_policy(policy);
    return c;
  }

  static Command Complete() {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
    c.mutable_complete_workflow_execution_command_attributes()->mutable_result()->add_payloads()
        ->set_data("done");
    return c;
  }

  const HistoryEvent* Find(enums::EventType type) const {
    for (const auto& e : fx_.events) {
      if (e.event_type() == type) return &e;
    }
    return nullptr;
  }

  int CountTasks(v1::TransferTask::Kind kind) const {
    int n = 0;
    for (const auto& t : fx_.transfer_tasks) n += t.kind() == kind ? 1 : 0;
    return n;
  }

  ws::StartWorkflowExecutionRequest request_;
  v1::MutableState ms_;
  HistoryEvent started_;
  ChainContext chain_;
  Effects fx_;
};

TEST_F(ChildrenTest, StartChildWritesTheInitiatedEventWithTemporalsDefaults) {
  StartParent();
  ASSERT_FALSE(Complete({StartChild("kid")}, kT0).workflow_task_failed);
  const HistoryEvent* e = Find(enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED);
  ASSERT_NE(e, nullptr);
  const auto& a = e->start_child_workflow_execution_initiated_event_attributes();
  EXPECT_EQ(a.namespace_(), "default");
  EXPECT_EQ(a.namespace_id(), "ns-id");
  EXPECT_EQ(a.task_queue().name(), "tq");  // the parent's
  EXPECT_EQ(a.parent_close_policy(), enums::PARENT_CLOSE_POLICY_TERMINATE);
  EXPECT_EQ(a.workflow_id_reuse_policy(), enums::WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE);
  EXPECT_EQ(FromProto(a.workflow_task_timeout()), absl::Seconds(10));
  ASSERT_EQ(ms_.children_size(), 1);
  const v1::ChildExecutionInfo& child = ms_.children().at(e->event_id());
  EXPECT_EQ(child.workflow_id(), "kid");
  EXPECT_TRUE(child.run_id().empty());
  EXPECT_EQ(child.create_request_id(), "run-1:child:" + std::to_string(e->event_id()));
  ASSERT_EQ(CountTasks(v1::TransferTask::KIND_START_CHILD), 1);
}

TEST_F(ChildrenTest, StartChildRefusesAMissingWorkflowId) {
  StartParent();
  Command no_id = StartChild("");
  CompletionOutcome out = Complete({no_id}, kT0);
  EXPECT_TRUE(out.workflow_task_failed);
  EXPECT_EQ(out.failure_message,
            "Required field WorkflowId is not set on StartChildWorkflowExecutionCommand. "
            "WorkflowType=Child Namespace=default");
  EXPECT_EQ(ms_.children_size(), 0);
}

TEST_F(ChildrenTest, TheParentRecordsItsChildsStartAndEnd) {
  StartParent();
  ASSERT_FALSE(Complete({StartChild("kid")}, kT0).workflow_task_failed);
  const HistoryEvent initiated = *Find(enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED);
  Effects fx;
  ASSERT_TRUE(RecordChildStarted(initiated, "kid-run-1", kT0, &ms_, &fx));
  EXPECT_FALSE(RecordChildStarted(initiated, "kid-run-1", kT0, &ms_, &fx));  // a repeat
  ASSERT_EQ(fx.events.size(), 2u);  // Started, then the task that delivers it
  const int64_t started_id = fx.events[0].event_id();
  EXPECT_EQ(ms_.children().at(initiated.event_id()).started_event_id(), started_id);

  HistoryEvent closed = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, kT0);
  closed.mutable_workflow_execution_failed_event_attributes()->mutable_failure()->set_message("x");
  closed.mutable_workflow_execution_failed_event_attributes()->set_retry_state(
      enums::RETRY_STATE_RETRY_POLICY_NOT_SET);
  api::common::v1::WorkflowExecution kid;
  kid.set_workflow_id("kid");
  kid.set_run_id("kid-run-3");  // the chain's last run reports
  Effects done;
  // A workflow that reused the id is not this child.
  EXPECT_FALSE(RecordChildClosed(initiated.event_id(), kid, "other-run", closed, nullptr, kT0,
                                 &ms_, &done));
  ASSERT_TRUE(RecordChildClosed(initiated.event_id(), kid, "kid-run-1", closed, nullptr, kT0,
                                &ms_, &done));
  EXPECT_EQ(ms_.children_size(), 0);
  ASSERT_FALSE(done.events.empty());
  const auto& a = done.events[0].child_workflow_execution_failed_event_attributes();
  EXPECT_EQ(a.failure().message(), "x");
  EXPECT_EQ(a.workflow_execution().run_id(), "kid-run-3");
  EXPECT_EQ(a.started_event_id(), started_id);
  EXPECT_EQ(a.initiated_event_id(), initiated.event_id());
  EXPECT_EQ(a.workflow_type().name(), "Child");
}

TEST_F(ChildrenTest, AChildThatEndedBeforeItsStartWasRecordedGetsBothEventsInOrder) {
  StartParent();
  ASSERT_FALSE(Complete({StartChild("kid")}, kT0).workflow_task_failed);
  const HistoryEvent initiated = *Find(enums::EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED);
  // The parent's next workflow task is running: both events wait in the buffer.
  Effects fx;
  ScheduleWorkflowTask(kT0, &ms_, &fx);
  ASSERT_TRUE(RecordWorkflowTaskStarted(ms_.workflow_task().stamp(), "p", "w", kT0, &ms_, &fx).ok());
  HistoryEvent closed = NewEvent(enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, kT0);
  api::common::v1::WorkflowExecution kid;
  kid.set_workflow_id("kid");
  kid.set_run_id("kid-run-1");
  EXPECT_FALSE(RecordChildClosed(initiated.event_id(), kid, "kid-run-1", closed, nullptr, kT0,
                                 &ms_, &fx));  // needs the initiated event
  ASSERT_TRUE(RecordChildClosed(initiated.event_id(), kid, "kid-run-1", closed, &initiated, kT0,
                                &ms_, &fx));
  ASSERT_EQ(ms_.buffered_events_size(), 2);
  // The worker's completion flushes them: Completed names Started's id.
  ASSERT_FALSE(Complete({}, kT0).workflow_task_failed);
  const HistoryEvent* started = Find(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED);
  const HistoryEvent* completed = Find(enums::EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED);
  ASSERT_NE(started, nullptr);
  ASSERT_NE(completed, nullptr);
  EXPECT_EQ(completed->child_workflow_execution_completed_event_attributes().started_event_id(),
            started->event_id());
  EXPECT_LT(started->event_id(), completed->event_id());
}

TEST_F(ChildrenTest, AClosingParentLeavesOnePolicyTaskPerChildNotAbandoned) {
  StartParent();
  ASSERT_FALSE(Complete({StartChild("t", enums::PARENT_CLOSE_POLICY_TERMINATE),
                         StartChild("c", enums::PARENT_CLOSE_POLICY_REQUEST_CANCEL),
                         StartChild("a", enums::PARENT_CLOSE_POLICY_ABANDON)},
                        kT0)
                   .workflow_task_failed);
  ASSERT_FALSE(Complete({Complete()}, kT0 + absl::Seconds(1)).workflow_task_failed);
  EXPECT_TRUE(fx_.closed);
  EXPECT_EQ(ms_.children_size(), 0);
  std::vector<std::string> targets;
  for (const auto& t : fx_.transfer_tasks) {
    if (t.kind() != v1::TransferTask::KIND_PARENT_CLOSE_POLICY) continue;
    targets.push_back(t.child().workflow_id());
    EXPECT_EQ(t.run().run_id(), "run-1");
    EXPECT_NE(t.child().parent_close_policy(), enums::PARENT_CLOSE_POLICY_ABANDON);
  }
  std::sort(targets.begin(), targets.end());
  EXPECT_EQ(targets, (std::vector<std::string>{"c", "t"}));
  // The parent has no parent: no close notification.
  EXPECT_EQ(CountTasks(v1::TransferTask::KIND_CLOSE_EXECUTION), 0);
}

TEST_F(ChildrenTest, AChildTellsItsParentOnlyWhenItsChainEnds) {
  ParentInfo parent{"default", "ns-id", "parent", "run-1", 5, "root", "root-run"};
  request_.set_workflow_id("kid");
  request_.mutable_workflow_type()->set_name("Child");
  request_.mutable_task_queue()->set_name("tq");
  request_.set_cron_schedule("@every 10s");
  StartParams params{"ns-id", "kid-1", "", kT0};
  params.parent = &parent;
  Effects fx;
  StartWorkflow(request_, params, Limits(), &ms_, &fx);
  const auto& sa = fx.events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(sa.parent_workflow_execution().run_id(), "run-1");
  EXPECT_EQ(sa.parent_initiated_event_id(), 5);
  EXPECT_EQ(sa.root_workflow_execution().workflow_id(), "root");
  started_ = fx.events[0];
  chain_ = ChainContext{&started_, "kid-2"};
  EndWorkflowBackoff(kT0 + absl::Seconds(10), &ms_, &fx);

  // A cron run's end starts the next run: no word to the parent yet.
  ASSERT_FALSE(Complete({Complete()}, kT0 + absl::Seconds(10)).workflow_task_failed);
  ASSERT_TRUE(fx_.new_run.has_value());
  EXPECT_EQ(CountTasks(v1::TransferTask::KIND_CLOSE_EXECUTION), 0);
  const v1::ExecutionInfo& next = fx_.new_run->state.execution();
  EXPECT_EQ(next.parent_run_id(), "run-1");
  EXPECT_EQ(next.parent_initiated_event_id(), 5);
  EXPECT_EQ(next.root_run_id(), "root-run");
  EXPECT_EQ(next.cron_schedule(), "@every 10s");

  // Terminated, the chain ends: the parent hears of it.
  ms_ = fx_.new_run->state;
  fx_ = Effects();
  TerminateWorkflow("stop", {}, "me", kT0 + absl::Seconds(30), &ms_, &fx_);
  EXPECT_FALSE(fx_.new_run.has_value());
  EXPECT_EQ(CountTasks(v1::TransferTask::KIND_CLOSE_EXECUTION), 1);
}

TEST_F(ChildrenTest, CronBackoffFollowsTemporalsRule) {
  // The first run waits for the schedule's first time after the start, in whole seconds.
  EXPECT_EQ(CronBackoff("@every 2s", kT0, kT0), absl::Seconds(2));
  EXPECT_EQ(CronBackoff("* * * * *", kT0, kT0), absl::Seconds(40));  // 22:13:20 -> 22:14:00
  EXPECT_EQ(CronBackoff("* * * * *", kT0, kT0 + absl::Milliseconds(500)),
            absl::Seconds(40));  // 39.5 s rounds up
  // A run that ended after several schedule times skips to the first one not yet past.
  EXPECT_EQ(CronBackoff("* * * * *", kT0, kT0 + absl::Minutes(3)), absl::Seconds(40));
  // A run that ended before its own scheduled time waits for it.
  EXPECT_EQ(CronBackoff("* * * * *", kT0 + absl::Seconds(40), kT0), absl::Seconds(40));
  EXPECT_EQ(CronBackoff("CRON_TZ=Asia/Kolkata 0 4 * * *", kT0, kT0),
            absl::Minutes(16) + absl::Seconds(40));  // 03:43:20 IST -> 04:00 IST
  EXPECT_FALSE(CronBackoff("", kT0, kT0).has_value());
  EXPECT_FALSE(CronBackoff("not a cron", kT0, kT0).has_value());
  EXPECT_FALSE(CronBackoff("0 0 30 2 *", kT0, kT0).has_value());  // never
}

TEST_F(ChildrenTest, ACronRunPassesOnItsResultAndAFailedOneItsFailure) {
  StartParent("@every 5s");
  EXPECT_EQ(FromProto(started_.workflow_execution_started_event_attributes()
                          .first_workflow_task_backoff()),
            absl::Seconds(5));
  const absl::Time due = kT0 + absl::Seconds(5);
  Effects fx;
  EndWorkflowBackoff(due, &ms_, &fx);
  ASSERT_FALSE(Complete({Complete()}, due + absl::Seconds(1)).workflow_task_failed);
  ASSERT_TRUE(fx_.new_run.has_value());
  const auto& next = fx_.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(next.initiator(), enums::CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE);
  EXPECT_EQ(next.last_completion_result().payloads(0).data(), "done");
  EXPECT_EQ(next.attempt(), 1);
  EXPECT_EQ(FromProto(next.first_workflow_task_backoff()), absl::Seconds(4));
  EXPECT_EQ(next.cron_schedule(), "@every 5s");
  EXPECT_EQ(fx_.new_run->state.execution().cron_schedule(), "@every 5s");

  // The next run fails: the one after it still gets "done", and the failure.
  ms_ = fx_.new_run->state;
  started_ = fx_.new_run->events[0];
  chain_ = ChainContext{&started_, "run-3"};
  EndWorkflowBackoff(due + absl::Seconds(5), &ms_, &fx);
  Command fail;
  fail.set_command_type(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  fail.mutable_fail_workflow_execution_command_attributes()->mutable_failure()->set_message("boom");
  ASSERT_FALSE(Complete({fail}, due + absl::Seconds(6)).workflow_task_failed);
  ASSERT_TRUE(fx_.new_run.has_value());
  const auto& third = fx_.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(third.continued_failure().message(), "boom");
  EXPECT_EQ(third.last_completion_result().payloads(0).data(), "done");
  EXPECT_EQ(fx_.events.back().workflow_execution_failed_event_attributes().new_execution_run_id(),
            "run-3");
}

TEST_F(ChildrenTest, CancelAndTerminateEndACron) {
  StartParent("@every 5s");
  Effects fx;
  EndWorkflowBackoff(kT0 + absl::Seconds(5), &ms_, &fx);
  Command cancel;
  cancel.set_command_type(enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION);
  cancel.mutable_cancel_workflow_execution_command_attributes();
  ASSERT_FALSE(Complete({cancel}, kT0 + absl::Seconds(6)).workflow_task_failed);
  EXPECT_TRUE(fx_.closed);
  EXPECT_FALSE(fx_.new_run.has_value());
}

}  // namespace
}  // namespace almanac::history::internal
