// Successor runs: what a retry carries over from the run it follows, and how a spec's
// initiator and overrides shape the successor (the ground continue-as-new and cron will
// stand on).

#include <gtest/gtest.h>

#include <string>

#include "history/state_machine.h"
#include "history/state_machine_internal.h"

namespace almanac::history::internal {
namespace {

namespace enums = temporal::api::enums::v1;
namespace ws = temporal::api::workflowservice::v1;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

class SuccessorRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    request_.set_workflow_id("wf");
    request_.mutable_workflow_type()->set_name("Type");
    request_.mutable_task_queue()->set_name("tq");
    request_.set_request_id("req-1");
    request_.set_identity("starter");
    request_.mutable_input()->add_payloads()->set_data("input");
    (*request_.mutable_header()->mutable_fields())["h"].set_data("header");
    (*request_.mutable_memo()->mutable_fields())["m"].set_data("memo");
    (*request_.mutable_search_attributes()->mutable_indexed_fields())["S"].set_data("sa");
    *request_.mutable_retry_policy()->mutable_initial_interval() = ToProto(absl::Seconds(2));
    request_.mutable_retry_policy()->set_maximum_attempts(5);
    *request_.mutable_workflow_execution_timeout() = ToProto(absl::Hours(1));
    *request_.mutable_workflow_run_timeout() = ToProto(absl::Minutes(10));
  }

  // Starts run-1, whose WorkflowExecutionStarted the chain keeps.
  void Start() {
    Effects fx;
    StartWorkflow(request_, StartParams{"ns-id", "run-1", "", kT0}, Limits(), &ms_, &fx);
    started_ = fx.events[0];
    chain_ = ChainContext{&started_, "run-2"};
  }

  // Closes run-1 at `at` with a bare closing event of `type`, as a closing command would.
  void CloseWith(enums::EventType type, enums::WorkflowExecutionStatus status, absl::Time at) {
    ms_.clear_workflow_task();
    Append(NewEvent(type, at), &ms_, &fx_);
    Close(status, at, &ms_, &fx_);
  }

  static const v1::TimerTask* FindTimer(const Effects& fx, v1::TimerTask::Kind kind,
                                        const std::string& run_id) {
    for (const auto& t : fx.timer_tasks) {
      if (t.kind() == kind && t.run().run_id() == run_id) return &t;
    }
    return nullptr;
  }

  ws::StartWorkflowExecutionRequest request_;
  v1::MutableState ms_;
  HistoryEvent started_;
  ChainContext chain_;
  Effects fx_;
};

TEST_F(SuccessorRunTest, ARetryCarriesTheRunsInputSettingsAndChain) {
  Start();
  const absl::Time closed_at = kT0 + absl::Minutes(10);
  // The run timed out: a timeout has no failure to carry.
  v1::TimerTask timeout = NewTimer(v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT, closed_at, ms_);
  TimeoutWorkflow(timeout, chain_, closed_at, &ms_, &fx_);

  ASSERT_TRUE(fx_.closed);
  const HistoryEvent& closing = fx_.events.back();
  ASSERT_EQ(closing.event_type(), enums::EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT);
  EXPECT_EQ(closing.workflow_execution_timed_out_event_attributes().retry_state(),
            enums::RETRY_STATE_IN_PROGRESS);
  EXPECT_EQ(closing.workflow_execution_timed_out_event_attributes().new_execution_run_id(),
            "run-2");
  EXPECT_EQ(ms_.close_event().workflow_execution_timed_out_event_attributes()
                .new_execution_run_id(),
            "run-2");  // the stored close event names the successor too

  ASSERT_TRUE(fx_.new_run.has_value());
  const v1::ExecutionInfo& next = fx_.new_run->state.execution();
  const v1::ExecutionInfo& prev = ms_.execution();
  EXPECT_EQ(next.namespace_id(), "ns-id");
  EXPECT_EQ(next.workflow_id(), "wf");
  EXPECT_EQ(next.run_id(), "run-2");
  EXPECT_EQ(next.first_execution_run_id(), "run-1");
  EXPECT_EQ(next.original_execution_run_id(), "run-2");
  EXPECT_EQ(next.create_request_id(), "run-2");
  EXPECT_EQ(next.status(), enums::WORKFLOW_EXECUTION_STATUS_RUNNING);
  EXPECT_EQ(next.attempt(), 2);
  EXPECT_EQ(next.workflow_type(), "Type");
  EXPECT_EQ(next.task_queue(), "tq");
  EXPECT_EQ(FromProto(next.execution_timeout()), absl::Hours(1));
  EXPECT_EQ(FromProto(next.run_timeout()), absl::Minutes(10));
  EXPECT_EQ(next.task_timeout().seconds(), prev.task_timeout().seconds());
  EXPECT_EQ(FromProto(next.execution_expiration_time()), kT0 + absl::Hours(1));
  EXPECT_EQ(FromProto(next.start_time()), closed_at);
  EXPECT_EQ(FromProto(next.execution_time()), closed_at + absl::Seconds(2));
  EXPECT_EQ(next.memo().fields().at("m").data(), "memo");
  EXPECT_EQ(next.search_attributes().indexed_fields().at("S").data(), "sa");
  EXPECT_EQ(next.retry_policy().maximum_attempts(), 5);

  // The successor's history: its started event only, until the backoff ends.
  ASSERT_EQ(fx_.new_run->events.size(), 1u);
  const HistoryEvent& first = fx_.new_run->events[0];
  EXPECT_EQ(first.event_id(), 1);
  EXPECT_EQ(fx_.new_run->state.next_event_id(), 2);
  EXPECT_EQ(FromProto(first.event_time()), closed_at);
  const auto& a = first.workflow_execution_started_event_attributes();
  EXPECT_EQ(a.workflow_type().name(), "Type");
  EXPECT_EQ(a.task_queue().name(), "tq");
  EXPECT_EQ(a.input().payloads(0).data(), "input");
  EXPECT_EQ(a.header().fields().at("h").data(), "header");
  EXPECT_EQ(a.memo().fields().at("m").data(), "memo");
  EXPECT_EQ(a.search_attributes().indexed_fields().at("S").data(), "sa");
  EXPECT_EQ(a.identity(), "starter");
  EXPECT_EQ(a.attempt(), 2);
  EXPECT_EQ(a.first_execution_run_id(), "run-1");
  EXPECT_EQ(a.continued_execution_run_id(), "run-1");
  EXPECT_EQ(a.original_execution_run_id(), "run-2");
  EXPECT_EQ(a.initiator(), enums::CONTINUE_AS_NEW_INITIATOR_RETRY);
  EXPECT_FALSE(a.has_continued_failure());
  EXPECT_FALSE(a.has_last_completion_result());
  EXPECT_EQ(FromProto(a.first_workflow_task_backoff()), absl::Seconds(2));
  EXPECT_EQ(FromProto(a.workflow_execution_expiration_time()), kT0 + absl::Hours(1));

  // Its first workflow task waits for the backoff; its run timeout counts from there.
  EXPECT_FALSE(fx_.new_run->state.has_workflow_task());
  const v1::TimerTask* backoff = FindTimer(fx_, v1::TimerTask::KIND_WORKFLOW_BACKOFF, "run-2");
  ASSERT_NE(backoff, nullptr);
  EXPECT_EQ(FromProto(backoff->visibility_time()), closed_at + absl::Seconds(2));
  const v1::TimerTask* run_timeout =
      FindTimer(fx_, v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT, "run-2");
  ASSERT_NE(run_timeout, nullptr);
  EXPECT_EQ(FromProto(run_timeout->visibility_time()),
            closed_at + absl::Seconds(2) + absl::Minutes(10));
  for (const auto& t : fx_.transfer_tasks) {
    EXPECT_NE(t.kind(), v1::TransferTask::KIND_WORKFLOW_TASK);
  }
}

TEST_F(SuccessorRunTest, TheChainsExpirationBoundsTheSuccessorsRunTimeout) {
  Start();
  const absl::Time closed_at = kT0 + absl::Minutes(55);
  CloseWith(enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, enums::WORKFLOW_EXECUTION_STATUS_FAILED,
            closed_at);
  BuildSuccessorRun(RetrySuccessor(chain_, nullptr, absl::Seconds(2)), chain_, closed_at, &ms_,
                    &fx_);
  const v1::TimerTask* run_timeout =
      FindTimer(fx_, v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT, "run-2");
  ASSERT_NE(run_timeout, nullptr);
  EXPECT_EQ(FromProto(run_timeout->visibility_time()), kT0 + absl::Hours(1));
}

TEST_F(SuccessorRunTest, ARetryCarriesItsFailureButNotTheLastCompletionResult) {
  Start();
  started_.mutable_workflow_execution_started_event_attributes()
      ->mutable_last_completion_result()
      ->add_payloads()
      ->set_data("previous result");
  CloseWith(enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, enums::WORKFLOW_EXECUTION_STATUS_FAILED,
            kT0);
  api::failure::v1::Failure failure;
  failure.set_message("boom");
  const SuccessorSpec spec = RetrySuccessor(chain_, &failure, absl::Seconds(3));
  EXPECT_EQ(spec.initiator, enums::CONTINUE_AS_NEW_INITIATOR_RETRY);
  EXPECT_EQ(spec.backoff, absl::Seconds(3));
  BuildSuccessorRun(spec, chain_, kT0, &ms_, &fx_);

  EXPECT_EQ(fx_.events.back().workflow_execution_failed_event_attributes().new_execution_run_id(),
            "run-2");
  const auto& a = fx_.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(a.continued_failure().message(), "boom");
  // As in Temporal: a retried run (of a cron, say) does not see the result its run was given.
  EXPECT_FALSE(a.has_last_completion_result());
}

TEST_F(SuccessorRunTest, WithoutBackoffTheFirstWorkflowTaskIsScheduledAtOnce) {
  Start();
  CloseWith(enums::EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, enums::WORKFLOW_EXECUTION_STATUS_FAILED,
            kT0);
  BuildSuccessorRun(RetrySuccessor(chain_, nullptr, absl::ZeroDuration()), chain_, kT0, &ms_,
                    &fx_);
  ASSERT_EQ(fx_.new_run->events.size(), 2u);
  EXPECT_EQ(fx_.new_run->events[1].event_type(), enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
  EXPECT_EQ(fx_.new_run->events[1].event_id(), 2);
  EXPECT_EQ(FindTimer(fx_, v1::TimerTask::KIND_WORKFLOW_BACKOFF, "run-2"), nullptr);
  bool dispatched = false;
  for (const auto& t : fx_.transfer_tasks) {
    if (t.kind() == v1::TransferTask::KIND_WORKFLOW_TASK) {
      dispatched = true;
      EXPECT_EQ(t.run().run_id(), "run-2");
      EXPECT_EQ(t.task_queue(), "tq");
    }
  }
  EXPECT_TRUE(dispatched);
}

TEST_F(SuccessorRunTest, ContinueAsNewAndCronStartAtAttemptOne) {
  for (auto initiator : {enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
                         enums::CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
                         enums::CONTINUE_AS_NEW_INITIATOR_RETRY}) {
    SCOPED_TRACE(enums::ContinueAsNewInitiator_Name(initiator));
    ms_.Clear();
    fx_ = Effects();
    Start();
    ms_.mutable_execution()->set_attempt(3);
    CloseWith(enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
              enums::WORKFLOW_EXECUTION_STATUS_COMPLETED, kT0);
    SuccessorSpec spec;
    spec.initiator = initiator;
    BuildSuccessorRun(spec, chain_, kT0, &ms_, &fx_);
    const int32_t expected = initiator == enums::CONTINUE_AS_NEW_INITIATOR_RETRY ? 4 : 1;
    EXPECT_EQ(fx_.new_run->state.execution().attempt(), expected);
    const auto& a = fx_.new_run->events[0].workflow_execution_started_event_attributes();
    EXPECT_EQ(a.attempt(), expected);
    EXPECT_EQ(a.initiator(), initiator);
    // Every successor stays in the chain.
    EXPECT_EQ(fx_.new_run->state.execution().first_execution_run_id(), "run-1");
    EXPECT_EQ(FromProto(fx_.new_run->state.execution().execution_expiration_time()),
              kT0 + absl::Hours(1));
    EXPECT_EQ(
        fx_.events.back().workflow_execution_completed_event_attributes().new_execution_run_id(),
        "run-2");
  }
}

TEST_F(SuccessorRunTest, OverridesReplaceWhatTheSuccessorInherits) {
  Start();
  // A continued-as-new run closes with its own event, which names the successor.
  CloseWith(enums::EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            enums::WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, kT0);
  SuccessorSpec spec;
  spec.initiator = enums::CONTINUE_AS_NEW_INITIATOR_WORKFLOW;
  spec.workflow_type = "Type2";
  spec.task_queue = "tq2";
  spec.input.emplace().add_payloads()->set_data("new input");
  spec.run_timeout = absl::Minutes(3);
  spec.task_timeout = absl::Seconds(7);
  spec.memo.emplace();  // empty: the successor has no memo
  (*spec.search_attributes.emplace().mutable_indexed_fields())["S"].set_data("sa2");
  (*spec.header.emplace().mutable_fields())["h"].set_data("header2");
  spec.last_completion_result.emplace().add_payloads()->set_data("result");
  BuildSuccessorRun(spec, chain_, kT0, &ms_, &fx_);

  EXPECT_EQ(fx_.events.back()
                .workflow_execution_continued_as_new_event_attributes()
                .new_execution_run_id(),
            "run-2");
  const v1::ExecutionInfo& next = fx_.new_run->state.execution();
  EXPECT_EQ(next.workflow_type(), "Type2");
  EXPECT_EQ(next.task_queue(), "tq2");
  EXPECT_EQ(FromProto(next.run_timeout()), absl::Minutes(3));
  EXPECT_EQ(FromProto(next.task_timeout()), absl::Seconds(7));
  EXPECT_FALSE(next.has_memo());
  EXPECT_EQ(next.search_attributes().indexed_fields().at("S").data(), "sa2");
  EXPECT_EQ(next.retry_policy().maximum_attempts(), 5);  // not overridden: inherited

  const auto& a = fx_.new_run->events[0].workflow_execution_started_event_attributes();
  EXPECT_EQ(a.workflow_type().name(), "Type2");
  EXPECT_EQ(a.task_queue().name(), "tq2");
  EXPECT_EQ(a.input().payloads(0).data(), "new input");
  EXPECT_EQ(FromProto(a.workflow_run_timeout()), absl::Minutes(3));
  EXPECT_EQ(FromProto(a.workflow_task_timeout()), absl::Seconds(7));
  EXPECT_FALSE(a.has_memo());
  EXPECT_EQ(a.search_attributes().indexed_fields().at("S").data(), "sa2");
  EXPECT_EQ(a.header().fields().at("h").data(), "header2");
  EXPECT_EQ(a.last_completion_result().payloads(0).data(), "result");
  EXPECT_FALSE(a.has_continued_failure());
  EXPECT_EQ(a.retry_policy().maximum_attempts(), 5);

  // No backoff: its first workflow task goes to the new queue at once.
  ASSERT_EQ(fx_.new_run->events.size(), 2u);
  EXPECT_EQ(fx_.new_run->state.workflow_task().task_queue(), "tq2");
  const v1::TimerTask* run_timeout =
      FindTimer(fx_, v1::TimerTask::KIND_WORKFLOW_RUN_TIMEOUT, "run-2");
  ASSERT_NE(run_timeout, nullptr);
  EXPECT_EQ(FromProto(run_timeout->visibility_time()), kT0 + absl::Minutes(3));
}

}  // namespace
}  // namespace almanac::history::internal
