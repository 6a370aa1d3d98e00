#include "scheduler/schedule_machine.h"

#include "gtest/gtest.h"

namespace almanac::scheduler {
namespace {

namespace enums = temporal::api::enums::v1;

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}

absl::Time T(int64_t seconds) { return absl::FromUnixSeconds(1700000000 + seconds); }

// A schedule every `every` seconds, created at T(0).
ScheduleRecord Every(int every, enums::ScheduleOverlapPolicy policy =
                                    enums::SCHEDULE_OVERLAP_POLICY_UNSPECIFIED) {
  ScheduleRecord r;
  r.set_namespace_id("ns-id");
  r.set_namespace_("default");
  r.set_schedule_id("sched");
  r.set_run_id("run");
  r.mutable_schedule()->mutable_spec()->add_interval()->mutable_interval()->set_seconds(every);
  r.mutable_schedule()->mutable_policies()->set_overlap_policy(policy);
  auto* start = r.mutable_schedule()->mutable_action()->mutable_start_workflow();
  start->set_workflow_id("wf");
  start->mutable_workflow_type()->set_name("Type");
  start->mutable_task_queue()->set_name("tq");
  ResolvePolicies(r.mutable_schedule());
  *r.mutable_info()->mutable_create_time() = Ts(T(0));
  *r.mutable_last_processed_time() = Ts(T(0));
  return r;
}

CompiledSpec SpecOf(const ScheduleRecord& r) {
  return *CompileSpec(r.schedule().spec(), JitterSeed(r));
}

TEST(ScheduleMachine, BuffersEachDueActionOnce) {
  ScheduleRecord r = Every(10);
  CompiledSpec spec = SpecOf(r);
  // T(0) is 1700000000, a multiple of 10: the next actions are T(10), T(20), T(30).
  BufferDueActions(&r, &spec, T(35));
  ASSERT_EQ(r.buffered_starts_size(), 3);
  EXPECT_EQ(r.buffered_starts(0).nominal_time().seconds(), Ts(T(10)).seconds());
  EXPECT_EQ(r.buffered_starts(2).nominal_time().seconds(), Ts(T(30)).seconds());
  EXPECT_EQ(r.buffered_starts(1).sequence(), 1);
  BufferDueActions(&r, &spec, T(36));  // nothing new
  EXPECT_EQ(r.buffered_starts_size(), 3);
  auto wake = NextWake(r, &spec, T(36));
  ASSERT_TRUE(wake.has_value());
  EXPECT_EQ(wake->time, T(40));
}

TEST(ScheduleMachine, MissedCatchupWindowAndPause) {
  ScheduleRecord r = Every(10);
  r.mutable_schedule()->mutable_policies()->mutable_catchup_window()->set_seconds(15);
  CompiledSpec spec = SpecOf(r);
  BufferDueActions(&r, &spec, T(100));  // T(10)..T(80) are more than 15 s late
  EXPECT_EQ(r.info().missed_catchup_window(), 8);
  EXPECT_EQ(r.buffered_starts_size(), 2);  // T(90), T(100)
  r.mutable_schedule()->mutable_state()->set_paused(true);
  BufferDueActions(&r, &spec, T(200));
  EXPECT_EQ(r.buffered_starts_size(), 2);
  EXPECT_EQ(r.info().missed_catchup_window(), 8);  // paused time is not missed
  EXPECT_FALSE(NextWake(r, &spec, T(200)).has_value());
}

TEST(ScheduleMachine, CatchupWindowHasAMinimumOfTenSeconds) {
  ScheduleRecord r = Every(1);
  r.mutable_schedule()->mutable_policies()->mutable_catchup_window()->set_seconds(1);
  EXPECT_EQ(CatchupWindow(r.schedule()), absl::Seconds(10));
}

TEST(ScheduleMachine, OverlapPolicies) {
  auto decide = [](enums::ScheduleOverlapPolicy policy, bool running, int buffered) {
    ScheduleRecord r = Every(10, policy);
    if (running) r.mutable_info()->add_running_workflows()->set_workflow_id("wf-old");
    CompiledSpec spec = SpecOf(r);
    BufferDueActions(&r, &spec, T(10 * buffered));
    BufferDecision d = TakeFromBuffer(&r);
    return std::make_pair(d, r);
  };
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_SKIP, true, 3);
    EXPECT_TRUE(d.starts.empty());
    EXPECT_EQ(r.info().overlap_skipped(), 3);
    EXPECT_EQ(r.buffered_starts_size(), 0);
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_SKIP, false, 3);
    ASSERT_EQ(d.starts.size(), 1u);  // the first; the others overlap it
    EXPECT_TRUE(d.last_is_non_overlapping);
    EXPECT_EQ(r.info().overlap_skipped(), 2);
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, true, 3);
    EXPECT_TRUE(d.starts.empty());
    EXPECT_EQ(r.buffered_starts_size(), 1);
    EXPECT_EQ(r.info().overlap_skipped(), 2);
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_BUFFER_ALL, true, 3);
    EXPECT_TRUE(d.starts.empty());
    EXPECT_EQ(r.buffered_starts_size(), 3);
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER, true, 1);
    EXPECT_TRUE(d.terminate_running);
    EXPECT_TRUE(d.starts.empty());
    EXPECT_EQ(r.buffered_starts_size(), 1);
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER, false, 3);
    ASSERT_EQ(d.starts.size(), 1u);  // the latest replaces the ones not yet started
    EXPECT_EQ(d.starts[0].nominal_time().seconds(), Ts(T(30)).seconds());
  }
  {
    auto [d, r] = decide(enums::SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, true, 3);
    EXPECT_EQ(d.starts.size(), 3u);
    EXPECT_FALSE(d.last_is_non_overlapping);
  }
}

TEST(ScheduleMachine, StartRequestAndRecordedAction) {
  ScheduleRecord r = Every(10);
  CompiledSpec spec = SpecOf(r);
  BufferDueActions(&r, &spec, T(10));
  ASSERT_EQ(r.buffered_starts_size(), 1);
  auto req = StartRequestFor(r, r.buffered_starts(0));
  EXPECT_EQ(req.workflow_id(), "wf-2023-11-14T22:13:30Z");
  EXPECT_EQ(req.request_id(), "run-0");
  EXPECT_EQ(req.workflow_id_reuse_policy(), enums::WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE);
  EXPECT_EQ(req.search_attributes().indexed_fields().at("TemporalScheduledById").data(), "\"sched\"");
  EXPECT_EQ(req.search_attributes().indexed_fields().at("TemporalScheduledStartTime").data(),
            "\"2023-11-14T22:13:30Z\"");
  BufferDecision d = TakeFromBuffer(&r);
  RecordAction(&r, d.starts[0], req.workflow_id(), "run-a", T(10), true);
  EXPECT_EQ(r.info().action_count(), 1);
  EXPECT_EQ(r.info().running_workflows_size(), 1);

  temporal::api::failure::v1::Failure failure;
  failure.set_message("boom");
  r.mutable_schedule()->mutable_policies()->set_pause_on_failure(true);
  ClosedRun closed{req.workflow_id(), enums::WORKFLOW_EXECUTION_STATUS_FAILED, nullptr, &failure};
  EXPECT_TRUE(RecordClosed(&r, closed));
  EXPECT_EQ(r.info().running_workflows_size(), 0);
  EXPECT_TRUE(r.schedule().state().paused());
  EXPECT_EQ(r.schedule().state().notes(),
            "paused due to workflow failure: wf-2023-11-14T22:13:30Z: boom");
  EXPECT_EQ(r.continued_failure().message(), "boom");
  EXPECT_FALSE(RecordClosed(&r, closed));  // no longer tracked
}

TEST(ScheduleMachine, LimitedActionsAndFutureTimes) {
  ScheduleRecord r = Every(10);
  r.mutable_schedule()->mutable_state()->set_limited_actions(true);
  r.mutable_schedule()->mutable_state()->set_remaining_actions(2);
  CompiledSpec spec = SpecOf(r);
  EXPECT_EQ(FutureActionTimes(r, &spec, 10).size(), 2u);
  EXPECT_TRUE(CanTakeScheduledAction(&r, false, true));
  EXPECT_TRUE(CanTakeScheduledAction(&r, false, true));
  EXPECT_FALSE(CanTakeScheduledAction(&r, false, true));
  EXPECT_TRUE(CanTakeScheduledAction(&r, true, true));  // manual actions are not limited
  EXPECT_TRUE(FutureActionTimes(r, &spec, 10).empty());
}

TEST(ScheduleMachine, BackfillIsInclusiveAndPaced) {
  ScheduleRecord r = Every(10);
  CompiledSpec spec = SpecOf(r);
  temporal::api::schedule::v1::SchedulePatch patch;
  auto* b = patch.add_backfill_request();
  *b->mutable_start_time() = Ts(T(-200));
  *b->mutable_end_time() = Ts(T(-10));
  b->set_overlap_policy(enums::SCHEDULE_OVERLAP_POLICY_ALLOW_ALL);
  ApplyPatch(&r, patch, T(0));
  BufferBackfills(&r, &spec);
  EXPECT_EQ(r.buffered_starts_size(), kBackfillsPerWake);  // T(-200)..T(-110)
  EXPECT_EQ(r.buffered_starts(0).nominal_time().seconds(), Ts(T(-200)).seconds());
  EXPECT_TRUE(r.buffered_starts(0).manual());
  EXPECT_TRUE(HasMoreAllowAllBackfills(r));
  r.clear_buffered_starts();
  BufferBackfills(&r, &spec);
  EXPECT_EQ(r.buffered_starts_size(), 10);  // T(-100)..T(-10), inclusive
  EXPECT_EQ(r.buffered_starts(9).nominal_time().seconds(), Ts(T(-10)).seconds());
  r.clear_buffered_starts();
  BufferBackfills(&r, &spec);  // the last round finds nothing left and ends the backfill
  EXPECT_EQ(r.buffered_starts_size(), 0);
  EXPECT_FALSE(HasMoreAllowAllBackfills(r));
}

TEST(ScheduleMachine, IdleScheduleExpiresAfterRetention) {
  ScheduleRecord r = Every(10);
  r.mutable_schedule()->mutable_state()->set_limited_actions(true);
  r.mutable_schedule()->mutable_state()->set_remaining_actions(0);
  CompiledSpec spec = SpecOf(r);
  auto wake = NextWake(r, &spec, T(5));
  ASSERT_TRUE(wake.has_value());
  EXPECT_TRUE(wake->expire);
  EXPECT_EQ(wake->time, T(0) + kIdleRetention);
}

}  // namespace
}  // namespace almanac::scheduler
