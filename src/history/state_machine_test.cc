// The event rules of the history state machine, one at a time, with no database.

#include "history/state_machine.h"

#include <gtest/gtest.h>

#include "temporal/api/command/v1/message.pb.h"
#include "temporal/api/protocol/v1/message.pb.h"
#include "temporal/api/update/v1/message.pb.h"

namespace almanac::history {
namespace {

namespace enums = temporal::api::enums::v1;
namespace ws = temporal::api::workflowservice::v1;
using temporal::api::command::v1::Command;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

class StateMachineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ws::StartWorkflowExecutionRequest req;
    req.set_workflow_id("wf");
    req.mutable_workflow_type()->set_name("Type");
    req.mutable_task_queue()->set_name("tq");
    req.set_request_id("req-1");
    StartParams params{"ns-id", "run-1", "", kT0};
    Effects fx;
    StartWorkflow(req, params, Limits(), &ms_, &fx);
    start_fx_ = fx;
  }

  // Starts the pending workflow task and returns its token.
  v1::TaskToken StartTask(Effects* fx = nullptr) {
    Effects local;
    auto started = RecordWorkflowTaskStarted(ms_.workflow_task().stamp(), "poll-" + std::to_string(++polls_),
                                             "worker", kT0, &ms_, fx ? fx : &local);
    EXPECT_TRUE(started.ok()) << started.status();
    v1::TaskToken token;
    token.set_stamp(started->stamp);
    token.set_started_event_id(started->started_event_id);
    token.set_scheduled_event_id(started->scheduled_event_id);
    last_started_ = *started;
    return token;
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

  static Command CompleteWorkflow() {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
    return c;
  }

  CompletionOutcome Complete(std::vector<Command> commands, Effects* fx) {
    ws::RespondWorkflowTaskCompletedRequest req;
    for (auto& c : commands) *req.add_commands() = c;
    req.set_identity("worker");
    return CompleteWorkflowTask(req, Limits(), ChainContext(), CompletionContext(), kT0, &ms_, fx);
  }

  static std::vector<enums::EventType> Types(const Effects& fx) {
    std::vector<enums::EventType> out;
    for (const auto& e : fx.events) out.push_back(e.event_type());
    return out;
  }

  static void ExpectDense(const Effects& fx, int64_t first) {
    for (size_t i = 0; i < fx.events.size(); ++i) EXPECT_EQ(fx.events[i].event_id(), first + static_cast<int64_t>(i));
  }

  v1::MutableState ms_;
  Effects start_fx_;
  WorkflowTaskStarted last_started_;
  int polls_ = 0;
};

TEST_F(StateMachineTest, StartWritesStartedAndSchedulesAWorkflowTask) {
  EXPECT_EQ(Types(start_fx_), (std::vector{enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                                           enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  ExpectDense(start_fx_, 1);
  EXPECT_EQ(ms_.next_event_id(), 3);
  ASSERT_EQ(start_fx_.transfer_tasks.size(), 1u);
  EXPECT_EQ(start_fx_.transfer_tasks[0].kind(), v1::TransferTask::KIND_WORKFLOW_TASK);
  EXPECT_EQ(start_fx_.transfer_tasks[0].task_queue(), "tq");
  EXPECT_EQ(ms_.workflow_task().scheduled_event_id(), 2);
  // The default task timeout applies when the request sets none.
  EXPECT_EQ(FromProto(ms_.execution().task_timeout()), absl::Seconds(10));
}

TEST_F(StateMachineTest, StartingAWorkflowTaskWritesStartedAndArmsItsTimeout) {
  Effects fx;
  StartTask(&fx);
  EXPECT_EQ(Types(fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_STARTED}));
  EXPECT_EQ(fx.events[0].event_id(), 3);
  EXPECT_EQ(fx.events[0].workflow_task_started_event_attributes().scheduled_event_id(), 2);
  ASSERT_EQ(fx.timer_tasks.size(), 1u);
  EXPECT_EQ(fx.timer_tasks[0].timeout_type(), enums::TIMEOUT_TYPE_START_TO_CLOSE);
  EXPECT_EQ(FromProto(fx.timer_tasks[0].visibility_time()), kT0 + absl::Seconds(10));
}

TEST_F(StateMachineTest, AStaleStampIsNotFoundAndTheSamePollIsIdempotent) {
  Effects fx;
  auto stale = RecordWorkflowTaskStarted(ms_.workflow_task().stamp() + 1, "p", "w", kT0, &ms_, &fx);
  EXPECT_TRUE(absl::IsNotFound(stale.status()));
  const int64_t stamp = ms_.workflow_task().stamp();
  auto first = RecordWorkflowTaskStarted(stamp, "p", "w", kT0, &ms_, &fx);
  ASSERT_TRUE(first.ok());
  Effects again_fx;
  auto again = RecordWorkflowTaskStarted(stamp, "p", "w", kT0, &ms_, &again_fx);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->started_event_id, first->started_event_id);
  EXPECT_TRUE(again_fx.events.empty());
  auto other = RecordWorkflowTaskStarted(stamp, "other-poll", "w", kT0, &ms_, &again_fx);
  EXPECT_TRUE(absl::IsNotFound(other.status()));
}

TEST_F(StateMachineTest, CompletionWritesCompletedThenCommandEvents) {
  StartTask();
  Effects fx;
  auto outcome = Complete({ScheduleActivity("a1")}, &fx);
  EXPECT_FALSE(outcome.workflow_task_failed);
  EXPECT_EQ(Types(fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                    enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}));
  ExpectDense(fx, 4);
  const auto& sched = fx.events[1].activity_task_scheduled_event_attributes();
  EXPECT_EQ(sched.workflow_task_completed_event_id(), 4);
  EXPECT_EQ(sched.task_queue().name(), "tq");  // defaults to the workflow's queue
  // Defaults and caps: schedule-to-close unset stays unbounded; the retry policy is filled.
  EXPECT_EQ(FromProto(sched.retry_policy().initial_interval()), absl::Seconds(1));
  EXPECT_EQ(sched.retry_policy().backoff_coefficient(), 2.0);
  EXPECT_EQ(FromProto(sched.retry_policy().maximum_interval()), absl::Seconds(100));
  ASSERT_EQ(fx.transfer_tasks.size(), 1u);
  EXPECT_EQ(fx.transfer_tasks[0].kind(), v1::TransferTask::KIND_ACTIVITY_TASK);
  EXPECT_FALSE(ms_.has_workflow_task());
  EXPECT_EQ(ms_.execution().last_completed_workflow_task_started_event_id(), 3);
}

TEST_F(StateMachineTest, ActivityWithoutAnyTimeoutIsRefused) {
  StartTask();
  Command c = ScheduleActivity("a1");
  c.mutable_schedule_activity_task_command_attributes()->clear_start_to_close_timeout();
  Effects fx;
  auto outcome = Complete({c}, &fx);
  EXPECT_TRUE(outcome.workflow_task_failed);
  EXPECT_EQ(Types(fx)[0], enums::EVENT_TYPE_WORKFLOW_TASK_FAILED);
  EXPECT_EQ(fx.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES);
  EXPECT_TRUE(ms_.activities().empty());  // nothing of the refused completion is kept
}

TEST_F(StateMachineTest, ActivityStartedIsWrittenWithItsResult) {
  StartTask();
  Effects fx;
  Complete({ScheduleActivity("a1")}, &fx);
  const int64_t sched = 5;
  const int64_t stamp = ms_.activities().at(sched).stamp();
  Effects start_fx;
  ASSERT_TRUE(RecordActivityTaskStarted(sched, stamp, "p", "w", kT0, &ms_, &start_fx).ok());
  EXPECT_TRUE(start_fx.events.empty());  // nothing in history until the activity ends
  Effects done;
  CompleteActivityTask(sched, {}, "w", kT0, &ms_, &done);
  EXPECT_EQ(Types(done), (std::vector{enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                      enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                      enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  ExpectDense(done, 6);
  EXPECT_EQ(done.events[1].activity_task_completed_event_attributes().started_event_id(), 6);
  EXPECT_EQ(done.events[1].activity_task_completed_event_attributes().scheduled_event_id(), 5);
}

TEST_F(StateMachineTest, EventsArrivingDuringAStartedTaskAreBufferedThenFlushed) {
  StartTask();
  Effects fx;
  Complete({ScheduleActivity("a1"), ScheduleActivity("a2")}, &fx);  // ids 4, 5, 6
  for (int64_t sched : {5, 6}) {
    Effects s;
    ASSERT_TRUE(RecordActivityTaskStarted(sched, ms_.activities().at(sched).stamp(), "p", "w", kT0, &ms_, &s).ok());
  }
  Effects done1;
  CompleteActivityTask(5, {}, "w", kT0, &ms_, &done1);  // no task in flight: written, task scheduled (7, 8, 9)
  StartTask();                                          // started 10
  Effects done2;
  CompleteActivityTask(6, {}, "w", kT0, &ms_, &done2);  // task in flight: buffered
  EXPECT_TRUE(done2.events.empty());
  EXPECT_EQ(ms_.buffered_events_size(), 2);
  Effects fx2;
  auto outcome = Complete({}, &fx2);
  EXPECT_FALSE(outcome.workflow_task_failed);
  EXPECT_EQ(Types(fx2), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                     enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                     enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                     enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  ExpectDense(fx2, 11);
  EXPECT_EQ(fx2.events[2].activity_task_completed_event_attributes().started_event_id(), 12);
  EXPECT_EQ(ms_.buffered_events_size(), 0);
}

TEST_F(StateMachineTest, ClosingWhileEventsWaitIsRefusedAndANewTaskCarriesThem) {
  StartTask();
  Effects fx;
  Complete({ScheduleActivity("a1")}, &fx);
  Effects s;
  ASSERT_TRUE(RecordActivityTaskStarted(5, ms_.activities().at(5).stamp(), "p", "w", kT0, &ms_, &s).ok());
  Effects sched_fx;
  ms_.clear_workflow_task();
  ScheduleWorkflowTask(kT0, &ms_, &sched_fx);  // 6
  StartTask();                                 // 7
  Effects done;
  CompleteActivityTask(5, {}, "w", kT0, &ms_, &done);  // buffered
  Effects fx2;
  auto outcome = Complete({CompleteWorkflow()}, &fx2);
  EXPECT_TRUE(outcome.workflow_task_failed);
  EXPECT_EQ(Types(fx2), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_FAILED,
                                     enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                     enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                     enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_EQ(fx2.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND);
  EXPECT_TRUE(IsRunning(ms_));
  EXPECT_EQ(ms_.workflow_task().attempt(), 1);  // not a worker failure: a normal task
}

TEST_F(StateMachineTest, RetriesAfterAFailureAreTransientUntilOneCompletes) {
  StartTask();  // 3
  temporal::api::failure::v1::Failure failure;
  failure.set_message("boom");
  Effects f1;
  FailWorkflowTask(enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, failure, "w", "",
                   kT0, &ms_, &f1);
  EXPECT_EQ(Types(f1), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_FAILED}));  // 4
  EXPECT_TRUE(ms_.workflow_task().transient());
  EXPECT_EQ(ms_.workflow_task().attempt(), 2);
  EXPECT_EQ(ms_.workflow_task().scheduled_event_id(), 5);
  Effects s2;
  StartTask(&s2);
  EXPECT_TRUE(s2.events.empty());
  ASSERT_EQ(last_started_.transient_events.size(), 2u);
  EXPECT_EQ(last_started_.transient_events[0].event_id(), 5);
  EXPECT_EQ(last_started_.transient_events[1].event_id(), 6);
  Effects f2;
  FailWorkflowTask(enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, failure, "w", "",
                   kT0, &ms_, &f2);
  EXPECT_TRUE(f2.events.empty());  // a transient failure leaves no trace
  EXPECT_EQ(ms_.workflow_task().attempt(), 3);
  StartTask();
  Effects done;
  Complete({CompleteWorkflow()}, &done);
  EXPECT_EQ(Types(done), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                      enums::EVENT_TYPE_WORKFLOW_TASK_STARTED,
                                      enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                      enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}));
  ExpectDense(done, 5);
  EXPECT_EQ(done.events[0].workflow_task_scheduled_event_attributes().attempt(), 3);
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  EXPECT_TRUE(done.closed);
}

TEST_F(StateMachineTest, StickyTaskFallsBackToTheNormalQueueOnScheduleToStartTimeout) {
  StartTask();
  ws::RespondWorkflowTaskCompletedRequest req;
  req.mutable_sticky_attributes()->mutable_worker_task_queue()->set_name("sticky-1");
  *req.mutable_sticky_attributes()->mutable_schedule_to_start_timeout() = ToProto(absl::Seconds(5));
  *req.add_commands() = ScheduleActivity("a1");
  Effects fx;
  CompleteWorkflowTask(req, Limits(), ChainContext(), CompletionContext(), kT0, &ms_, &fx);
  Effects s;
  ASSERT_TRUE(RecordActivityTaskStarted(5, ms_.activities().at(5).stamp(), "p", "w", kT0, &ms_, &s).ok());
  Effects done;
  CompleteActivityTask(5, {}, "w", kT0, &ms_, &done);
  EXPECT_TRUE(ms_.workflow_task().sticky());
  EXPECT_EQ(done.transfer_tasks.back().task_queue(), "sticky-1");
  EXPECT_TRUE(done.transfer_tasks.back().sticky());
  ASSERT_EQ(done.timer_tasks.size(), 1u);
  EXPECT_EQ(done.timer_tasks[0].timeout_type(), enums::TIMEOUT_TYPE_SCHEDULE_TO_START);
  Effects timeout;
  TimeoutWorkflowTask(done.timer_tasks[0], kT0 + absl::Seconds(5), &ms_, &timeout);
  EXPECT_EQ(Types(timeout), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                                         enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_FALSE(ms_.workflow_task().sticky());
  EXPECT_EQ(timeout.transfer_tasks.back().task_queue(), "tq");
  EXPECT_FALSE(timeout.transfer_tasks.back().sticky());
}

TEST_F(StateMachineTest, UserTimerFiresOnceAndAStaleTimerDoesNothing) {
  StartTask();
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_START_TIMER);
  c.mutable_start_timer_command_attributes()->set_timer_id("t1");
  *c.mutable_start_timer_command_attributes()->mutable_start_to_fire_timeout() = ToProto(absl::Seconds(3));
  Effects fx;
  Complete({c}, &fx);
  ASSERT_EQ(fx.timer_tasks.size(), 1u);
  EXPECT_EQ(FromProto(fx.timer_tasks[0].visibility_time()), kT0 + absl::Seconds(3));
  Effects fired;
  FireUserTimer(fx.timer_tasks[0], kT0 + absl::Seconds(3), &ms_, &fired);
  EXPECT_EQ(Types(fired), (std::vector{enums::EVENT_TYPE_TIMER_FIRED,
                                       enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  Effects again;
  FireUserTimer(fx.timer_tasks[0], kT0 + absl::Seconds(4), &ms_, &again);
  EXPECT_TRUE(again.events.empty());
}

TEST_F(StateMachineTest, RetryableActivityFailureRetriesWithoutEvents) {
  StartTask();
  Effects fx;
  Complete({ScheduleActivity("a1")}, &fx);
  Effects s;
  ASSERT_TRUE(RecordActivityTaskStarted(5, ms_.activities().at(5).stamp(), "p", "w", kT0, &ms_, &s).ok());
  temporal::api::failure::v1::Failure failure;
  failure.set_message("flaky");
  failure.mutable_application_failure_info()->set_type("Flaky");
  Effects f;
  FailActivityTask(5, failure, "w", kT0, &ms_, &f);
  EXPECT_TRUE(f.events.empty());
  ASSERT_EQ(ms_.activities().at(5).attempt(), 2);
  ASSERT_EQ(f.timer_tasks.size(), 1u);
  EXPECT_EQ(f.timer_tasks[0].kind(), v1::TimerTask::KIND_ACTIVITY_RETRY);
  EXPECT_EQ(FromProto(f.timer_tasks[0].visibility_time()), kT0 + absl::Seconds(1));
  // The second attempt fails for good: the failure is non-retryable.
  ASSERT_TRUE(RecordActivityTaskStarted(5, ms_.activities().at(5).stamp(), "p2", "w", kT0, &ms_, &s).ok());
  failure.mutable_application_failure_info()->set_non_retryable(true);
  Effects f2;
  FailActivityTask(5, failure, "w", kT0, &ms_, &f2);
  EXPECT_EQ(Types(f2), (std::vector{enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                    enums::EVENT_TYPE_ACTIVITY_TASK_FAILED,
                                    enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_EQ(f2.events[0].activity_task_started_event_attributes().attempt(), 2);
  EXPECT_EQ(f2.events[1].activity_task_failed_event_attributes().retry_state(),
            enums::RETRY_STATE_NON_RETRYABLE_FAILURE);
}

TEST_F(StateMachineTest, TerminateFailsTheStartedTaskAndClosesTheRun) {
  StartTask();
  Effects fx;
  TerminateWorkflow("enough", {}, "admin", kT0, &ms_, &fx);
  EXPECT_EQ(Types(fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_FAILED,
                                    enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED}));
  EXPECT_EQ(fx.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND);
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_TERMINATED);
  EXPECT_FALSE(ms_.has_workflow_task());
  for (const auto& t : fx.transfer_tasks) {
    EXPECT_NE(t.kind(), v1::TransferTask::KIND_WORKFLOW_TASK);  // nothing more is dispatched
  }
  EXPECT_EQ(ms_.close_event().event_type(), enums::EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED);
}

TEST(WorkflowRetryTest, AFailedRunWithARetryPolicyStartsItsSuccessorInTheChain) {
  ws::StartWorkflowExecutionRequest req;
  req.set_workflow_id("wf");
  req.mutable_workflow_type()->set_name("Type");
  req.mutable_task_queue()->set_name("tq");
  req.set_request_id("req-1");
  *req.mutable_retry_policy()->mutable_initial_interval() = ToProto(absl::Seconds(2));
  req.mutable_retry_policy()->set_maximum_attempts(2);
  *req.mutable_workflow_execution_timeout() = ToProto(absl::Minutes(1));
  v1::MutableState ms;
  Effects start;
  StartWorkflow(req, StartParams{"ns", "run-1", "", kT0}, Limits(), &ms, &start);
  const HistoryEvent started = start.events[0];
  Effects s;
  ASSERT_TRUE(RecordWorkflowTaskStarted(ms.workflow_task().stamp(), "p", "w", kT0, &ms, &s).ok());

  ws::RespondWorkflowTaskCompletedRequest fail;
  auto* cmd = fail.add_commands();
  cmd->set_command_type(enums::COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION);
  cmd->mutable_fail_workflow_execution_command_attributes()->mutable_failure()->set_message("no");
  ChainContext chain{&started, "run-2"};
  Effects fx;
  EXPECT_FALSE(CompleteWorkflowTask(fail, Limits(), chain, CompletionContext(), kT0, &ms, &fx).workflow_task_failed);

  const auto& failed = fx.events.back().workflow_execution_failed_event_attributes();
  EXPECT_EQ(failed.retry_state(), enums::RETRY_STATE_IN_PROGRESS);
  EXPECT_EQ(failed.new_execution_run_id(), "run-2");
  EXPECT_EQ(ms.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_FAILED);
  ASSERT_TRUE(fx.new_run.has_value());
  const v1::MutableState& next = fx.new_run->state;
  EXPECT_EQ(next.execution().run_id(), "run-2");
  EXPECT_EQ(next.execution().first_execution_run_id(), "run-1");
  EXPECT_EQ(next.execution().attempt(), 2);
  EXPECT_EQ(next.execution().execution_expiration_time().seconds(),
            ms.execution().execution_expiration_time().seconds());  // the chain's deadline
  ASSERT_EQ(fx.new_run->events.size(), 1u);  // the first task waits for the backoff
  const auto& a = fx.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(fx.new_run->events[0].event_id(), 1);
  EXPECT_EQ(a.attempt(), 2);
  EXPECT_EQ(a.continued_execution_run_id(), "run-1");
  EXPECT_EQ(a.initiator(), enums::CONTINUE_AS_NEW_INITIATOR_RETRY);
  EXPECT_EQ(FromProto(a.first_workflow_task_backoff()), absl::Seconds(2));
  EXPECT_EQ(a.continued_failure().message(), "no");
  bool backoff_timer = false;
  for (const auto& t : fx.timer_tasks) {
    if (t.kind() == v1::TimerTask::KIND_WORKFLOW_BACKOFF) {
      backoff_timer = true;
      EXPECT_EQ(t.run().run_id(), "run-2");
      EXPECT_EQ(FromProto(t.visibility_time()), kT0 + absl::Seconds(2));
    }
  }
  EXPECT_TRUE(backoff_timer);

  // The second attempt is the last one the policy allows.
  v1::MutableState second = next;
  Effects b;
  EndWorkflowBackoff(kT0 + absl::Seconds(2), &second, &b);
  ASSERT_TRUE(RecordWorkflowTaskStarted(second.workflow_task().stamp(), "p", "w", kT0, &second, &s).ok());
  Effects fx2;
  CompleteWorkflowTask(fail, Limits(), ChainContext{&started, "run-3"}, CompletionContext(), kT0, &second, &fx2);
  EXPECT_FALSE(fx2.new_run.has_value());
  EXPECT_EQ(fx2.events.back().workflow_execution_failed_event_attributes().retry_state(),
            enums::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED);
}


// ---- Signals, speculative tasks and updates ------------------------------------------------

namespace messages {

temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes Signal(const std::string& name) {
  temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes a;
  a.set_signal_name(name);
  a.set_identity("client");
  return a;
}

temporal::api::protocol::v1::Message UpdateMessage(const std::string& update_id,
                                                   const google::protobuf::Message& body) {
  temporal::api::protocol::v1::Message m;
  m.set_id(update_id + "/" + body.GetDescriptor()->name());
  m.set_protocol_instance_id(update_id);
  m.mutable_body()->PackFrom(body);
  return m;
}

}  // namespace messages

TEST_F(StateMachineTest, ASignalIsWrittenWithAWorkflowTaskWhenNoneRuns) {
  Effects fx;
  StartTask();
  ASSERT_FALSE(Complete({}, &fx).workflow_task_failed);
  Effects sfx;
  SignalWorkflow(messages::Signal("go"), kT0, &ms_, &sfx);
  EXPECT_EQ(Types(sfx), (std::vector{enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
                                     enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_EQ(sfx.events[0].workflow_execution_signaled_event_attributes().signal_name(), "go");
}

TEST_F(StateMachineTest, ASignalDuringAStartedTaskIsBufferedAndRefusesTheClose) {
  StartTask();
  Effects sfx;
  SignalWorkflow(messages::Signal("late"), kT0, &ms_, &sfx);
  EXPECT_TRUE(sfx.events.empty());
  EXPECT_EQ(ms_.buffered_events_size(), 1);
  Effects fx;
  const CompletionOutcome out = Complete({CompleteWorkflow()}, &fx);
  EXPECT_TRUE(out.workflow_task_failed);
  // The refusal writes WorkflowTaskFailed, then the signal, then a new task carries it.
  EXPECT_EQ(Types(fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_FAILED,
                                    enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
                                    enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_EQ(fx.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND);
  EXPECT_TRUE(IsRunning(ms_));
  EXPECT_EQ(ms_.workflow_task().attempt(), 1);
}

TEST_F(StateMachineTest, ASignalWhileATransientTaskWaitsTurnsItIntoAFirstAttempt) {
  StartTask();
  Effects fx;
  temporal::api::failure::v1::Failure failure;
  failure.set_message("boom");
  FailWorkflowTask(enums::WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, failure,
                   "worker", "", kT0, &ms_, &fx);
  ASSERT_TRUE(ms_.workflow_task().transient());
  const int64_t reserved = ms_.workflow_task().scheduled_event_id();
  Effects sfx;
  SignalWorkflow(messages::Signal("fix"), kT0, &ms_, &sfx);
  EXPECT_EQ(Types(sfx), (std::vector{enums::EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED}));
  EXPECT_EQ(sfx.events[0].event_id(), reserved);
  Effects start_fx;
  StartTask(&start_fx);
  EXPECT_EQ(Types(start_fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_STARTED}));
  EXPECT_EQ(last_started_.attempt, 1);
  EXPECT_TRUE(last_started_.transient_events.empty());
  ExpectDense(start_fx, reserved + 1);
}

TEST_F(StateMachineTest, ASpeculativeTaskThatOnlyRejectsLeavesNoEvents) {
  StartTask();
  Effects fx;
  ASSERT_FALSE(Complete({}, &fx).workflow_task_failed);
  const int64_t next = ms_.next_event_id();
  Effects sched;
  ScheduleSpeculativeWorkflowTask(kT0, &ms_, &sched);
  EXPECT_TRUE(sched.events.empty());
  ASSERT_EQ(sched.transfer_tasks.size(), 1u);
  ASSERT_TRUE(ms_.workflow_task().speculative());
  Effects start_fx;
  StartTask(&start_fx);
  EXPECT_TRUE(start_fx.events.empty());
  EXPECT_EQ(last_started_.transient_events.size(), 2u);

  temporal::api::update::v1::Rejection rejection;
  rejection.mutable_failure()->set_message("no");
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_messages() = messages::UpdateMessage("u1", rejection);
  Effects done;
  const CompletionOutcome out =
      CompleteWorkflowTask(req, Limits(), ChainContext(), CompletionContext(), kT0, &ms_, &done);
  EXPECT_FALSE(out.workflow_task_failed);
  EXPECT_TRUE(done.events.empty());
  EXPECT_EQ(ms_.next_event_id(), next);
  EXPECT_FALSE(ms_.has_workflow_task());
  EXPECT_EQ(out.reset_history_event_id, ms_.execution().last_completed_workflow_task_started_event_id());
  ASSERT_EQ(done.updates.size(), 1u);
  EXPECT_EQ(done.updates[0].kind, UpdateResult::Kind::kRejected);
  EXPECT_EQ(done.updates[0].outcome.failure().message(), "no");
}

TEST_F(StateMachineTest, AnAcceptedAndCompletedUpdateWritesItsEventsInCommandOrder) {
  StartTask();
  Effects fx;
  ASSERT_FALSE(Complete({}, &fx).workflow_task_failed);
  Effects sched;
  ScheduleSpeculativeWorkflowTask(kT0, &ms_, &sched);
  StartTask();
  temporal::api::update::v1::Request request;
  request.mutable_meta()->set_update_id("u1");
  request.mutable_input()->set_name("set");
  temporal::api::update::v1::Acceptance acceptance;
  acceptance.set_accepted_request_message_id("u1/request");
  temporal::api::update::v1::Response response;
  response.mutable_meta()->set_update_id("u1");
  response.mutable_outcome()->mutable_success();
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_messages() = messages::UpdateMessage("u1", acceptance);
  *req.add_messages() = messages::UpdateMessage("u1", response);
  for (const auto& m : req.messages()) {
    Command c;
    c.set_command_type(enums::COMMAND_TYPE_PROTOCOL_MESSAGE);
    c.mutable_protocol_message_command_attributes()->set_message_id(m.id());
    *req.add_commands() = c;
  }
  CompletionContext context;
  context.update_requests["u1"] = request;
  Effects done;
  ASSERT_FALSE(
      CompleteWorkflowTask(req, Limits(), ChainContext(), context, kT0, &ms_, &done).workflow_task_failed);
  // The speculative task's events are kept, as its completion wrote something.
  EXPECT_EQ(Types(done), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                     enums::EVENT_TYPE_WORKFLOW_TASK_STARTED,
                                     enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                     enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                                     enums::EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED}));
  const auto& accepted = done.events[3].workflow_execution_update_accepted_event_attributes();
  EXPECT_EQ(accepted.protocol_instance_id(), "u1");
  EXPECT_EQ(accepted.accepted_request().input().name(), "set");
  const auto& completed = done.events[4].workflow_execution_update_completed_event_attributes();
  EXPECT_EQ(completed.accepted_event_id(), done.events[3].event_id());
  EXPECT_EQ(ms_.updates().at("u1").completed_event_id(), done.events[4].event_id());
  ASSERT_EQ(done.updates.size(), 2u);
  EXPECT_EQ(done.updates[0].kind, UpdateResult::Kind::kAccepted);
  EXPECT_EQ(done.updates[1].kind, UpdateResult::Kind::kCompleted);
}

TEST_F(StateMachineTest, AResponseForAnUpdateNeverAcceptedFailsTheTask) {
  StartTask();
  temporal::api::update::v1::Response response;
  response.mutable_meta()->set_update_id("ghost");
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_messages() = messages::UpdateMessage("ghost", response);
  Effects fx;
  const CompletionOutcome out =
      CompleteWorkflowTask(req, Limits(), ChainContext(), CompletionContext(), kT0, &ms_, &fx);
  EXPECT_TRUE(out.workflow_task_failed);
  EXPECT_EQ(fx.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE);
}

TEST_F(StateMachineTest, WaitingUpdatesRefuseTheCloseAndGetATaskOfTheirOwn) {
  StartTask();
  CompletionContext context;
  context.updates_waiting = true;
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_commands() = CompleteWorkflow();
  Effects fx;
  EXPECT_TRUE(CompleteWorkflowTask(req, Limits(), ChainContext(), context, kT0, &ms_, &fx)
                  .workflow_task_failed);
  EXPECT_EQ(fx.events[0].workflow_task_failed_event_attributes().cause(),
            enums::WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND);
  EXPECT_TRUE(ms_.has_workflow_task());
  // A completion with nothing to close schedules a speculative task for them.
  StartTask();
  ws::RespondWorkflowTaskCompletedRequest empty;
  Effects fx2;
  EXPECT_FALSE(CompleteWorkflowTask(empty, Limits(), ChainContext(), context, kT0, &ms_, &fx2)
                   .workflow_task_failed);
  ASSERT_TRUE(ms_.has_workflow_task());
  EXPECT_TRUE(ms_.workflow_task().speculative());
}

TEST_F(StateMachineTest, SignalingAnotherWorkflowIsInitiatedThenRecordedAsDeliveredOrFailed) {
  StartTask();
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION);
  auto* a = c.mutable_signal_external_workflow_execution_command_attributes();
  a->mutable_execution()->set_workflow_id("target");
  a->set_signal_name("ping");
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_commands() = c;
  CompletionContext context;
  context.namespace_name = "default";
  Effects fx;
  ASSERT_FALSE(
      CompleteWorkflowTask(req, Limits(), ChainContext(), context, kT0, &ms_, &fx).workflow_task_failed);
  ASSERT_EQ(fx.events.size(), 2u);
  const auto& initiated = fx.events[1];
  EXPECT_EQ(initiated.event_type(), enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED);
  EXPECT_EQ(initiated.signal_external_workflow_execution_initiated_event_attributes().namespace_(),
            "default");
  ASSERT_EQ(fx.transfer_tasks.size(), 1u);
  EXPECT_EQ(fx.transfer_tasks[0].kind(), v1::TransferTask::KIND_SIGNAL_EXECUTION);
  EXPECT_EQ(fx.transfer_tasks[0].scheduled_event_id(), initiated.event_id());
  ASSERT_TRUE(ms_.signals_requested().contains(initiated.event_id()));

  Effects failed;
  CompleteExternalSignal(
      initiated,
      enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
      kT0, &ms_, &failed);
  EXPECT_EQ(Types(failed), (std::vector{enums::EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
                                        enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED}));
  EXPECT_EQ(failed.events[0].signal_external_workflow_execution_failed_event_attributes().initiated_event_id(),
            initiated.event_id());
  EXPECT_TRUE(ms_.signals_requested().empty());
  // A repeat of the delivery finds nothing pending and writes nothing.
  Effects again;
  CompleteExternalSignal(initiated, enums::SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_UNSPECIFIED,
                         kT0, &ms_, &again);
  EXPECT_TRUE(again.events.empty());
}

TEST_F(StateMachineTest, ContinueAsNewClosesTheRunAndStartsItsSuccessorInTheChain) {
  ms_.mutable_execution()->mutable_memo()->mutable_fields()->operator[]("owner").set_data("x");
  const HistoryEvent started = start_fx_.events[0];
  StartTask();
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION);
  auto* a = c.mutable_continue_as_new_workflow_execution_command_attributes();
  a->mutable_input()->add_payloads()->set_data("next");
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_commands() = c;
  Effects fx;
  ASSERT_FALSE(CompleteWorkflowTask(req, Limits(), ChainContext{&started, "run-2"},
                                    CompletionContext(), kT0, &ms_, &fx)
                   .workflow_task_failed);
  EXPECT_EQ(Types(fx), (std::vector{enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                    enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW}));
  const auto& cont = fx.events[1].workflow_execution_continued_as_new_event_attributes();
  EXPECT_EQ(cont.new_execution_run_id(), "run-2");
  EXPECT_EQ(cont.workflow_type().name(), "Type");  // unset in the command: the run's own
  EXPECT_EQ(cont.task_queue().name(), "tq");
  EXPECT_EQ(cont.initiator(), enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW);
  EXPECT_EQ(cont.workflow_task_completed_event_id(), fx.events[0].event_id());
  EXPECT_EQ(ms_.execution().status(), enums::WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW);

  ASSERT_TRUE(fx.new_run.has_value());
  const v1::MutableState& next = fx.new_run->state;
  EXPECT_EQ(next.execution().run_id(), "run-2");
  EXPECT_EQ(next.execution().first_execution_run_id(), "run-1");
  EXPECT_EQ(next.execution().attempt(), 1);
  EXPECT_EQ(next.execution().memo().fields().at("owner").data(), "x");  // carried over
  ASSERT_EQ(fx.new_run->events.size(), 2u);  // Started, then its first workflow task
  const auto& s = fx.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(s.input().payloads(0).data(), "next");
  EXPECT_EQ(s.continued_execution_run_id(), "run-1");
  EXPECT_EQ(s.initiator(), enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW);
  EXPECT_EQ(fx.new_run->events[1].event_type(), enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
}

TEST_F(StateMachineTest, ContinueAsNewWaitsForUnseenSignals) {
  const HistoryEvent started = start_fx_.events[0];
  StartTask();
  Effects sfx;
  SignalWorkflow(messages::Signal("late"), kT0, &ms_, &sfx);
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION);
  ws::RespondWorkflowTaskCompletedRequest req;
  *req.add_commands() = c;
  Effects fx;
  EXPECT_TRUE(CompleteWorkflowTask(req, Limits(), ChainContext{&started, "run-2"},
                                   CompletionContext(), kT0, &ms_, &fx)
                  .workflow_task_failed);
  EXPECT_FALSE(fx.new_run.has_value());
  EXPECT_TRUE(IsRunning(ms_));
}

TEST(StartDelayTest, TheFirstTaskWaitsForTheDelayAndSignalsDoNotScheduleOne) {
  ws::StartWorkflowExecutionRequest req;
  req.set_workflow_id("wf");
  req.mutable_workflow_type()->set_name("Type");
  req.mutable_task_queue()->set_name("tq");
  *req.mutable_workflow_start_delay() = ToProto(absl::Seconds(30));
  v1::MutableState ms;
  Effects fx;
  StartWorkflow(req, StartParams{"ns", "run-1", "", kT0}, Limits(), &ms, &fx);
  ASSERT_EQ(fx.events.size(), 1u);  // no WorkflowTaskScheduled yet
  EXPECT_EQ(FromProto(fx.events[0].workflow_execution_started_event_attributes()
                          .first_workflow_task_backoff()),
            absl::Seconds(30));
  EXPECT_EQ(FromProto(ms.execution().execution_time()), kT0 + absl::Seconds(30));
  EXPECT_TRUE(ms.execution().backoff_pending());
  EXPECT_TRUE(fx.transfer_tasks.empty());
  bool backoff = false;
  for (const auto& t : fx.timer_tasks) {
    if (t.kind() == v1::TimerTask::KIND_WORKFLOW_BACKOFF) {
      backoff = true;
      EXPECT_EQ(FromProto(t.visibility_time()), kT0 + absl::Seconds(30));
    }
  }
  EXPECT_TRUE(backoff);

  Effects sfx;
  SignalWorkflow(messages::Signal("early"), kT0 + absl::Seconds(1), &ms, &sfx);
  EXPECT_EQ(sfx.events.size(), 1u);  // recorded, and it waits with the task
  EXPECT_FALSE(ms.has_workflow_task());

  Effects end;
  EndWorkflowBackoff(kT0 + absl::Seconds(30), &ms, &end);
  EXPECT_FALSE(ms.execution().backoff_pending());
  ASSERT_EQ(end.events.size(), 1u);
  EXPECT_EQ(end.events[0].event_type(), enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
}

}  // namespace
}  // namespace almanac::history
