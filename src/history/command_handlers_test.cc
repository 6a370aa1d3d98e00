// Each command handler on its own: what it refuses (cause and message, which the worker
// sees) and what it writes when it accepts.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "history/state_machine.h"
#include "history/state_machine_internal.h"
#include "temporal/api/command/v1/message.pb.h"

namespace almanac::history::internal {
namespace {

namespace enums = temporal::api::enums::v1;
namespace ws = temporal::api::workflowservice::v1;
using temporal::api::command::v1::Command;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
// The id the completion's WorkflowTaskCompleted event would have: the run's events are
// Started (1), WorkflowTaskScheduled (2), WorkflowTaskStarted (3).
constexpr int64_t kCompletedId = 4;

class CommandHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ws::StartWorkflowExecutionRequest req;
    req.set_workflow_id("wf");
    req.mutable_workflow_type()->set_name("Type");
    req.mutable_task_queue()->set_name("tq");
    req.set_request_id("req-1");
    Effects fx;
    StartWorkflow(req, StartParams{"ns-id", "run-1", "", kT0}, Limits(), &ms_, &fx);
    ASSERT_TRUE(
        RecordWorkflowTaskStarted(ms_.workflow_task().stamp(), "poll", "worker", kT0, &ms_, &fx)
            .ok());
    // What the completion does before its commands: WorkflowTaskCompleted is written and the
    // task is over.
    ms_.set_next_event_id(kCompletedId + 1);
    ms_.clear_workflow_task();
    request_.set_identity("worker");
  }

  CommandContext Context() {
    return CommandContext{request_, limits_, chain_, kT0, kCompletedId, &ms_, &fx_};
  }

  // Runs `command` through its handler, as the completion does.
  std::optional<CommandError> Run(const Command& command, CommandContext* ctx = nullptr) {
    CommandContext local = Context();
    return ApplyCommand(command, ctx != nullptr ? ctx : &local);
  }

  static Command ScheduleActivity(const std::string& id) {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK);
    auto* a = c.mutable_schedule_activity_task_command_attributes();
    a->set_activity_id(id);
    a->mutable_activity_type()->set_name("Act");
    *a->mutable_start_to_close_timeout() = ToProto(absl::Seconds(10));
    return c;
  }

  static Command StartTimer(const std::string& id, absl::Duration d) {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_START_TIMER);
    c.mutable_start_timer_command_attributes()->set_timer_id(id);
    *c.mutable_start_timer_command_attributes()->mutable_start_to_fire_timeout() = ToProto(d);
    return c;
  }

  static Command OfType(enums::CommandType type) {
    Command c;
    c.set_command_type(type);
    return c;
  }

  static temporal::api::common::v1::Payloads Blob(size_t n) {
    temporal::api::common::v1::Payloads p;
    p.add_payloads()->set_data(std::string(n, 'x'));
    return p;
  }

  // Makes the run look as if an event arrived while its workflow task was running.
  void BufferAnEvent() {
    HistoryEvent e;
    e.set_event_type(enums::EVENT_TYPE_TIMER_FIRED);
    *ms_.add_buffered_events() = e;
  }

  static void ExpectRefused(const std::optional<CommandError>& err,
                            enums::WorkflowTaskFailedCause cause, const std::string& message) {
    ASSERT_TRUE(err.has_value()) << "accepted; expected: " << message;
    EXPECT_EQ(enums::WorkflowTaskFailedCause_Name(err->cause),
              enums::WorkflowTaskFailedCause_Name(cause));
    EXPECT_EQ(err->message, message);
  }

  v1::MutableState ms_;
  Effects fx_;
  ws::RespondWorkflowTaskCompletedRequest request_;
  Limits limits_;
  ChainContext chain_;
};

// ---- Dispatch ------------------------------------------------------------------------

TEST_F(CommandHandlersTest, EachImplementedCommandTypeHasItsOwnHandler) {
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK), &HandleScheduleActivityTask);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK),
            &HandleRequestCancelActivityTask);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_START_TIMER), &HandleStartTimer);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_CANCEL_TIMER), &HandleCancelTimer);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_RECORD_MARKER), &HandleRecordMarker);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
            &HandleUpsertWorkflowSearchAttributes);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION),
            &HandleCompleteWorkflowExecution);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION), &HandleFailWorkflowExecution);
  EXPECT_EQ(HandlerFor(enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION),
            &HandleCancelWorkflowExecution);
}

TEST_F(CommandHandlersTest, CommandsNotImplementedYetAreRefusedByName) {
  for (auto type : {enums::COMMAND_TYPE_UNSPECIFIED}) {
    EXPECT_EQ(HandlerFor(type), &HandleUnsupportedCommand);
    ExpectRefused(Run(OfType(type)), enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                  "command " + enums::CommandType_Name(type) +
                      " is not supported by this server yet");
  }
  EXPECT_TRUE(fx_.events.empty());
}

TEST_F(CommandHandlersTest, NoCommandMayFollowTheOneThatClosedTheRun) {
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(OfType(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION), &ctx).has_value());
  EXPECT_TRUE(ctx.closed);
  ExpectRefused(Run(StartTimer("t1", absl::Seconds(1)), &ctx),
                enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                "a command follows the one that closed the workflow");
}

// ---- ScheduleActivityTask ------------------------------------------------------------

TEST_F(CommandHandlersTest, ScheduleActivityRefusesBadAttributes) {
  const auto bad = enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES;
  ExpectRefused(Run(ScheduleActivity("")), bad, "ActivityId and ActivityType are required");

  Command no_type = ScheduleActivity("a1");
  no_type.mutable_schedule_activity_task_command_attributes()->clear_activity_type();
  ExpectRefused(Run(no_type), bad, "ActivityId and ActivityType are required");

  limits_.max_id_length = 5;
  ExpectRefused(Run(ScheduleActivity("abcdef")), bad, "ActivityId exceeds length limit");
  limits_ = Limits();

  limits_.blob_size_error = 16;
  Command big = ScheduleActivity("a1");
  *big.mutable_schedule_activity_task_command_attributes()->mutable_input() = Blob(64);
  ExpectRefused(Run(big), bad, "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.");
  limits_ = Limits();

  Command negative = ScheduleActivity("a1");
  *negative.mutable_schedule_activity_task_command_attributes()->mutable_heartbeat_timeout() =
      ToProto(absl::Seconds(-1));
  ExpectRefused(Run(negative), bad, "activity timeouts must not be negative");

  Command unbounded = ScheduleActivity("a1");
  unbounded.mutable_schedule_activity_task_command_attributes()->clear_start_to_close_timeout();
  ExpectRefused(Run(unbounded), bad,
                "A valid StartToClose or ScheduleToCloseTimeout is not set on "
                "ScheduleActivityTaskCommand.");
  EXPECT_TRUE(ms_.activities().empty());
}

TEST_F(CommandHandlersTest, ScheduleActivityRefusesADuplicateIdAndTooManyPending) {
  ASSERT_FALSE(Run(ScheduleActivity("a1")).has_value());
  ExpectRefused(Run(ScheduleActivity("a1")),
                enums::WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
                "activity id already in use: a1");
  limits_.max_pending_activities = 1;
  ExpectRefused(Run(ScheduleActivity("a2")),
                enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
                "the run has 1 pending activities, the limit");
}

TEST_F(CommandHandlersTest, PendingChildSignalAndCancelLimitsRefuseOneMore) {
  Command child;
  child.set_command_type(enums::COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION);
  child.mutable_start_child_workflow_execution_command_attributes()->set_workflow_id("kid");
  child.mutable_start_child_workflow_execution_command_attributes()->mutable_workflow_type()
      ->set_name("Kid");
  Command signal;
  signal.set_command_type(enums::COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION);
  signal.mutable_signal_external_workflow_execution_command_attributes()->mutable_execution()
      ->set_workflow_id("other");
  signal.mutable_signal_external_workflow_execution_command_attributes()->set_signal_name("s");
  Command cancel;
  cancel.set_command_type(enums::COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION);
  cancel.mutable_request_cancel_external_workflow_execution_command_attributes()
      ->set_workflow_id("other");
  for (const Command* c : {&child, &signal, &cancel}) ASSERT_FALSE(Run(*c).has_value());
  limits_.max_pending_children = 1;
  limits_.max_pending_signals = 1;
  limits_.max_pending_cancel_requests = 1;
  ExpectRefused(Run(child), enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
                "the run has 1 pending child workflows, the limit");
  ExpectRefused(Run(signal), enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
                "the run has 1 pending signals to other workflows, the limit");
  ExpectRefused(Run(cancel),
                enums::WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
                "the run has 1 pending cancellation requests to other workflows, the limit");
}

TEST_F(CommandHandlersTest, ScheduleActivityWritesScheduledAndDispatchesTheFirstAttempt) {
  Command c = ScheduleActivity("a1");
  auto* a = c.mutable_schedule_activity_task_command_attributes();
  *a->mutable_schedule_to_close_timeout() = ToProto(absl::Minutes(1));
  *a->mutable_schedule_to_start_timeout() = ToProto(absl::Seconds(5));
  *a->mutable_heartbeat_timeout() = ToProto(absl::Minutes(5));  // capped to start-to-close
  a->mutable_header()->mutable_fields()->operator[]("k").set_data("v");
  *a->mutable_input() = Blob(3);
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  EXPECT_FALSE(ctx.new_task_due);

  ASSERT_EQ(fx_.events.size(), 1u);
  const HistoryEvent& e = fx_.events[0];
  EXPECT_EQ(e.event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
  EXPECT_EQ(e.event_id(), kCompletedId + 1);
  const auto& ea = e.activity_task_scheduled_event_attributes();
  EXPECT_EQ(ea.activity_id(), "a1");
  EXPECT_EQ(ea.task_queue().name(), "tq");
  EXPECT_EQ(ea.task_queue().kind(), enums::TASK_QUEUE_KIND_NORMAL);
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  EXPECT_EQ(ea.header().fields().at("k").data(), "v");
  EXPECT_EQ(ea.input().payloads(0).data(), "xxx");
  EXPECT_EQ(FromProto(ea.start_to_close_timeout()), absl::Seconds(10));
  EXPECT_EQ(FromProto(ea.heartbeat_timeout()), absl::Seconds(10));
  EXPECT_EQ(FromProto(ea.retry_policy().initial_interval()), absl::Seconds(1));

  const v1::ActivityInfo& ai = ms_.activities().at(e.event_id());
  EXPECT_EQ(ai.activity_id(), "a1");
  EXPECT_EQ(ai.attempt(), 1);
  EXPECT_EQ(ai.stamp(), ms_.execution().next_stamp());
  ASSERT_EQ(fx_.transfer_tasks.size(), 1u);
  EXPECT_EQ(fx_.transfer_tasks[0].kind(), v1::TransferTask::KIND_ACTIVITY_TASK);
  EXPECT_EQ(fx_.transfer_tasks[0].scheduled_event_id(), e.event_id());
  EXPECT_EQ(fx_.transfer_tasks[0].stamp(), ai.stamp());
  ASSERT_EQ(fx_.timer_tasks.size(), 2u);
  EXPECT_EQ(fx_.timer_tasks[0].timeout_type(), enums::TIMEOUT_TYPE_SCHEDULE_TO_START);
  EXPECT_EQ(FromProto(fx_.timer_tasks[0].visibility_time()), kT0 + absl::Seconds(5));
  EXPECT_EQ(fx_.timer_tasks[1].timeout_type(), enums::TIMEOUT_TYPE_SCHEDULE_TO_CLOSE);
  EXPECT_EQ(FromProto(fx_.timer_tasks[1].visibility_time()), kT0 + absl::Minutes(1));
}

TEST_F(CommandHandlersTest, TheRunTimeoutBoundsAnActivityThatSetsNoTimeout) {
  *ms_.mutable_execution()->mutable_run_timeout() = ToProto(absl::Minutes(2));
  Command c = ScheduleActivity("a1");
  c.mutable_schedule_activity_task_command_attributes()->clear_start_to_close_timeout();
  ASSERT_FALSE(Run(c).has_value());
  const auto& ea = fx_.events[0].activity_task_scheduled_event_attributes();
  EXPECT_EQ(FromProto(ea.schedule_to_close_timeout()), absl::Minutes(2));
  EXPECT_EQ(FromProto(ea.start_to_close_timeout()), absl::Minutes(2));
  EXPECT_EQ(FromProto(ea.schedule_to_start_timeout()), absl::Minutes(2));
}

// ---- RequestCancelActivityTask -------------------------------------------------------

TEST_F(CommandHandlersTest, RequestCancelActivityRefusesAnUnknownActivity) {
  Command c = OfType(enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK);
  c.mutable_request_cancel_activity_task_command_attributes()->set_scheduled_event_id(42);
  ExpectRefused(Run(c), enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
                "no pending activity with scheduled event id 42");
}

TEST_F(CommandHandlersTest, RequestCancelOfAnActivityNotStartedCancelsItAtOnce) {
  ASSERT_FALSE(Run(ScheduleActivity("a1")).has_value());  // 5
  Command c = OfType(enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK);
  c.mutable_request_cancel_activity_task_command_attributes()->set_scheduled_event_id(5);
  fx_.events.clear();
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  ASSERT_EQ(fx_.events.size(), 2u);
  EXPECT_EQ(fx_.events[0].event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
  EXPECT_EQ(fx_.events[0].activity_task_cancel_requested_event_attributes()
                .workflow_task_completed_event_id(),
            kCompletedId);
  EXPECT_EQ(fx_.events[1].event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED);
  EXPECT_EQ(fx_.events[1].activity_task_canceled_event_attributes().scheduled_event_id(), 5);
  EXPECT_EQ(
      fx_.events[1].activity_task_canceled_event_attributes().latest_cancel_requested_event_id(),
      fx_.events[0].event_id());
  EXPECT_TRUE(ms_.activities().empty());
  EXPECT_TRUE(ctx.new_task_due);  // the worker must learn it was canceled
}

TEST_F(CommandHandlersTest, RequestCancelOfAStartedActivityOnlyMarksIt) {
  ASSERT_FALSE(Run(ScheduleActivity("a1")).has_value());  // 5
  Effects s;
  ASSERT_TRUE(
      RecordActivityTaskStarted(5, ms_.activities().at(5).stamp(), "p", "w", kT0, &ms_, &s).ok());
  Command c = OfType(enums::COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK);
  c.mutable_request_cancel_activity_task_command_attributes()->set_scheduled_event_id(5);
  fx_.events.clear();
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  ASSERT_EQ(fx_.events.size(), 1u);
  EXPECT_EQ(fx_.events[0].event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED);
  EXPECT_TRUE(ms_.activities().at(5).cancel_requested());
  EXPECT_EQ(ms_.activities().at(5).cancel_requested_event_id(), fx_.events[0].event_id());
  EXPECT_FALSE(ctx.new_task_due);
}

// ---- StartTimer and CancelTimer ------------------------------------------------------

TEST_F(CommandHandlersTest, StartTimerRefusesBadAttributes) {
  ExpectRefused(Run(StartTimer("", absl::Seconds(1))),
                enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES, "TimerId is not set");
  ExpectRefused(Run(StartTimer("t1", absl::ZeroDuration())),
                enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
                "StartToFireTimeout must be positive");
  ExpectRefused(Run(StartTimer("t1", absl::Seconds(-3))),
                enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES,
                "StartToFireTimeout must be positive");
  ASSERT_FALSE(Run(StartTimer("t1", absl::Seconds(1))).has_value());
  ExpectRefused(Run(StartTimer("t1", absl::Seconds(1))),
                enums::WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
                "timer id already in use: t1");
}

TEST_F(CommandHandlersTest, StartTimerWritesStartedAndArmsTheTimer) {
  ASSERT_FALSE(Run(StartTimer("t1", absl::Seconds(3))).has_value());
  ASSERT_EQ(fx_.events.size(), 1u);
  const auto& ea = fx_.events[0].timer_started_event_attributes();
  EXPECT_EQ(ea.timer_id(), "t1");
  EXPECT_EQ(FromProto(ea.start_to_fire_timeout()), absl::Seconds(3));
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  const v1::TimerInfo& ti = ms_.timers().at("t1");
  EXPECT_EQ(ti.started_event_id(), fx_.events[0].event_id());
  EXPECT_EQ(FromProto(ti.expiry_time()), kT0 + absl::Seconds(3));
  ASSERT_EQ(fx_.timer_tasks.size(), 1u);
  EXPECT_EQ(fx_.timer_tasks[0].kind(), v1::TimerTask::KIND_USER_TIMER);
  EXPECT_EQ(fx_.timer_tasks[0].timer_id(), "t1");
  EXPECT_EQ(fx_.timer_tasks[0].event_id(), fx_.events[0].event_id());
  EXPECT_EQ(FromProto(fx_.timer_tasks[0].visibility_time()), kT0 + absl::Seconds(3));
}

TEST_F(CommandHandlersTest, CancelTimerRefusesAnUnknownTimerAndCancelsAPendingOne) {
  Command cancel = OfType(enums::COMMAND_TYPE_CANCEL_TIMER);
  cancel.mutable_cancel_timer_command_attributes()->set_timer_id("t1");
  ExpectRefused(Run(cancel), enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
                "no pending timer with id t1");
  ASSERT_FALSE(Run(StartTimer("t1", absl::Seconds(3))).has_value());
  ASSERT_FALSE(Run(cancel).has_value());
  ASSERT_EQ(fx_.events.size(), 2u);
  const auto& ea = fx_.events[1].timer_canceled_event_attributes();
  EXPECT_EQ(ea.timer_id(), "t1");
  EXPECT_EQ(ea.started_event_id(), fx_.events[0].event_id());
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  EXPECT_EQ(ea.identity(), "worker");
  EXPECT_TRUE(ms_.timers().empty());
}

// ---- RecordMarker and UpsertWorkflowSearchAttributes ---------------------------------

TEST_F(CommandHandlersTest, RecordMarkerRefusesNoNameAndOversizedDetails) {
  Command c = OfType(enums::COMMAND_TYPE_RECORD_MARKER);
  ExpectRefused(Run(c), enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
                "MarkerName is not set");
  c.mutable_record_marker_command_attributes()->set_marker_name("Version");
  limits_.blob_size_error = 16;
  (*c.mutable_record_marker_command_attributes()->mutable_details())["a"] = Blob(10);
  (*c.mutable_record_marker_command_attributes()->mutable_details())["b"] = Blob(10);
  ExpectRefused(Run(c), enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
                "RecordMarkerCommandAttributes.Details exceeds size limit.");
  EXPECT_TRUE(fx_.events.empty());
}

TEST_F(CommandHandlersTest, RecordMarkerWritesWhatTheCommandCarries) {
  Command c = OfType(enums::COMMAND_TYPE_RECORD_MARKER);
  auto* a = c.mutable_record_marker_command_attributes();
  a->set_marker_name("LocalActivity");
  (*a->mutable_details())["data"] = Blob(4);
  a->mutable_header()->mutable_fields()->operator[]("h").set_data("v");
  a->mutable_failure()->set_message("activity failed");
  ASSERT_FALSE(Run(c).has_value());
  ASSERT_EQ(fx_.events.size(), 1u);
  const auto& ea = fx_.events[0].marker_recorded_event_attributes();
  EXPECT_EQ(ea.marker_name(), "LocalActivity");
  EXPECT_EQ(ea.details().at("data").payloads(0).data(), "xxxx");
  EXPECT_EQ(ea.header().fields().at("h").data(), "v");
  EXPECT_EQ(ea.failure().message(), "activity failed");
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
}

TEST_F(CommandHandlersTest, UpsertSearchAttributesMergesIntoTheRunsAttributes) {
  auto* fields = ms_.mutable_execution()->mutable_search_attributes()->mutable_indexed_fields();
  (*fields)["Kept"].set_data("old");
  (*fields)["Replaced"].set_data("old");
  Command c = OfType(enums::COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES);
  auto* upsert = c.mutable_upsert_workflow_search_attributes_command_attributes()
                     ->mutable_search_attributes()
                     ->mutable_indexed_fields();
  (*upsert)["Replaced"].set_data("new");
  (*upsert)["Added"].set_data("new");
  ASSERT_FALSE(Run(c).has_value());
  ASSERT_EQ(fx_.events.size(), 1u);
  const auto& ea = fx_.events[0].upsert_workflow_search_attributes_event_attributes();
  EXPECT_EQ(ea.search_attributes().indexed_fields_size(), 2);  // only what the command named
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  const auto& now = ms_.execution().search_attributes().indexed_fields();
  EXPECT_EQ(now.at("Kept").data(), "old");
  EXPECT_EQ(now.at("Replaced").data(), "new");
  EXPECT_EQ(now.at("Added").data(), "new");
}

// ---- Closing commands ----------------------------------------------------------------

TEST_F(CommandHandlersTest, ClosingCommandsAreRefusedWhileEventsWait) {
  BufferAnEvent();
  for (auto type : {enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
                    enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
                    enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION}) {
    CommandContext ctx = Context();
    ExpectRefused(Run(OfType(type), &ctx), enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                  "UnhandledCommand");
    EXPECT_FALSE(ctx.closed);
  }
  EXPECT_TRUE(IsRunning(ms_));
  EXPECT_TRUE(fx_.events.empty());
}

TEST_F(CommandHandlersTest, OversizedResultAndFailureAreRefused) {
  limits_.blob_size_error = 16;
  Command complete = OfType(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
  *complete.mutable_complete_workflow_execution_command_attributes()->mutable_result() = Blob(64);
  ExpectRefused(Run(complete),
                enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES,
                "CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit.");
  Command fail = OfType(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  fail.mutable_fail_workflow_execution_command_attributes()->mutable_failure()->set_message(
      std::string(64, 'x'));
  ExpectRefused(Run(fail), enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
                "FailWorkflowExecutionCommandAttributes.Failure exceeds size limit.");
  EXPECT_TRUE(IsRunning(ms_));
}

TEST_F(CommandHandlersTest, CompleteWorkflowClosesTheRunWithItsResult) {
  ASSERT_FALSE(Run(ScheduleActivity("a1")).has_value());
  Command c = OfType(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
  *c.mutable_complete_workflow_execution_command_attributes()->mutable_result() = Blob(2);
  fx_ = Effects();
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  EXPECT_TRUE(ctx.closed);
  EXPECT_TRUE(fx_.closed);
  ASSERT_EQ(fx_.events.size(), 1u);
  const auto& ea = fx_.events[0].workflow_execution_completed_event_attributes();
  EXPECT_EQ(ea.result().payloads(0).data(), "xx");
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  EXPECT_EQ(ea.new_execution_run_id(), "");
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  EXPECT_EQ(FromProto(ms_.execution().close_time()), kT0);
  EXPECT_EQ(ms_.close_event().event_id(), fx_.events[0].event_id());
  EXPECT_TRUE(ms_.activities().empty());  // nothing stays pending on a closed run
  EXPECT_TRUE(fx_.transfer_tasks.empty());  // closing writes no task that would do nothing
  EXPECT_TRUE(fx_.closed);
  EXPECT_FALSE(fx_.new_run.has_value());
}

TEST_F(CommandHandlersTest, FailWorkflowWithoutARetryPolicyEndsTheChain) {
  Command c = OfType(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  c.mutable_fail_workflow_execution_command_attributes()->mutable_failure()->set_message("no");
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  EXPECT_TRUE(ctx.closed);
  ASSERT_EQ(fx_.events.size(), 1u);
  const auto& ea = fx_.events[0].workflow_execution_failed_event_attributes();
  EXPECT_EQ(ea.failure().message(), "no");
  EXPECT_EQ(ea.retry_state(), enums::RETRY_STATE_RETRY_POLICY_NOT_SET);
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  EXPECT_EQ(ea.new_execution_run_id(), "");
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_FAILED);
  EXPECT_FALSE(fx_.new_run.has_value());
}

TEST_F(CommandHandlersTest, FailWorkflowWithARetryPolicyButNoChainCannotRetry) {
  ms_.mutable_execution()->mutable_retry_policy()->set_maximum_attempts(3);
  Command c = OfType(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  ASSERT_FALSE(Run(c).has_value());
  EXPECT_EQ(fx_.events[0].workflow_execution_failed_event_attributes().retry_state(),
            enums::RETRY_STATE_INTERNAL_SERVER_ERROR);
  EXPECT_FALSE(fx_.new_run.has_value());
}

TEST_F(CommandHandlersTest, FailWorkflowWithARetryPolicyStartsTheRetry) {
  ms_.mutable_execution()->mutable_retry_policy()->set_maximum_attempts(3);
  HistoryEvent started;
  started.set_event_type(enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED);
  chain_ = ChainContext{&started, "run-2"};
  Command c = OfType(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  c.mutable_fail_workflow_execution_command_attributes()->mutable_failure()->set_message("no");
  ASSERT_FALSE(Run(c).has_value());
  const auto& ea = fx_.events[0].workflow_execution_failed_event_attributes();
  EXPECT_EQ(ea.retry_state(), enums::RETRY_STATE_IN_PROGRESS);
  EXPECT_EQ(ea.new_execution_run_id(), "run-2");
  ASSERT_TRUE(fx_.new_run.has_value());
  EXPECT_EQ(fx_.new_run->state.execution().attempt(), 2);
}

TEST_F(CommandHandlersTest, CancelWorkflowClosesTheRunWithItsDetails) {
  Command c = OfType(enums::COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION);
  *c.mutable_cancel_workflow_execution_command_attributes()->mutable_details() = Blob(1);
  CommandContext ctx = Context();
  ASSERT_FALSE(Run(c, &ctx).has_value());
  EXPECT_TRUE(ctx.closed);
  const auto& ea = fx_.events[0].workflow_execution_canceled_event_attributes();
  EXPECT_EQ(ea.details().payloads(0).data(), "x");
  EXPECT_EQ(ea.workflow_task_completed_event_id(), kCompletedId);
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_CANCELED);
}

// ---- Through the completion ----------------------------------------------------------

TEST(CompletionCommandsTest, ARefusedCommandFailsTheTaskAndNothingOfTheCompletionIsKept) {
  ws::StartWorkflowExecutionRequest start;
  start.set_workflow_id("wf");
  start.mutable_workflow_type()->set_name("Type");
  start.mutable_task_queue()->set_name("tq");
  start.set_request_id("req-1");
  v1::MutableState ms;
  Effects fx;
  StartWorkflow(start, StartParams{"ns-id", "run-1", "", kT0}, Limits(), &ms, &fx);
  ASSERT_TRUE(
      RecordWorkflowTaskStarted(ms.workflow_task().stamp(), "p", "w", kT0, &ms, &fx).ok());

  ws::RespondWorkflowTaskCompletedRequest req;
  req.set_identity("worker");
  for (int i = 0; i < 2; ++i) {
    Command* c = req.add_commands();
    c->set_command_type(enums::COMMAND_TYPE_START_TIMER);
    c->mutable_start_timer_command_attributes()->set_timer_id("t1");
    *c->mutable_start_timer_command_attributes()->mutable_start_to_fire_timeout() =
        ToProto(absl::Seconds(1));
  }
  Effects done;
  const CompletionOutcome outcome = CompleteWorkflowTask(req, Limits(), ChainContext(), CompletionContext(), kT0, &ms,
                                                         &done);
  EXPECT_TRUE(outcome.workflow_task_failed);
  EXPECT_EQ(outcome.failure_message, "timer id already in use: t1");
  ASSERT_FALSE(done.events.empty());
  const auto& failed = done.events[0].workflow_task_failed_event_attributes();
  EXPECT_EQ(failed.cause(), enums::WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID);
  // As Temporal writes it: the cause's short name, then the reason.
  EXPECT_EQ(failed.failure().message(), "StartTimerDuplicateId: timer id already in use: t1");
  EXPECT_EQ(failed.identity(), "worker");
  EXPECT_TRUE(ms.timers().empty());  // the first, accepted, timer is dropped too
  for (const auto& t : done.timer_tasks) EXPECT_NE(t.kind(), v1::TimerTask::KIND_USER_TIMER);
}

}  // namespace
}  // namespace almanac::history::internal
