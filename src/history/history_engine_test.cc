// The history engine through its public API, on a manual clock, over the real SQLite store
// in memory, with a recording fake of matching. Engine work is asynchronous (the executor
// and the deadline queue), so the tests wait for conditions with a deadline, and prove a
// negative ("not yet") only after Settle() has run everything due at the current time.

#include "history/history_engine.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/deadline_queue.h"
#include "common/executor.h"
#include "common/ids.h"
#include "common/namespace_registry.h"
#include "common/status_details.h"
#include "matching/matching_client.h"
#include "persistence/schema.h"
#include "persistence/stores.h"
#include "temporal/api/command/v1/message.pb.h"
#include "temporal/api/common/v1/message.pb.h"
#include "temporal/api/errordetails/v1/message.pb.h"
#include "temporal/api/failure/v1/message.pb.h"
#include "temporal/api/update/v1/message.pb.h"

namespace almanac::history {
namespace {

namespace enums = temporal::api::enums::v1;
using temporal::api::command::v1::Command;
using temporal::api::common::v1::Payloads;
using temporal::api::history::v1::History;

constexpr char kNamespaceId[] = "ns-id";
constexpr char kTaskQueue[] = "tq";
constexpr int kExecutorThreads = 4;
const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// Matching as history sees it: records every task history dispatches and accepts it. The
// tests play the poller, taking recorded tasks to RecordWorkflowTaskStarted and
// RecordActivityTaskStarted themselves, so polls are never used.
class RecordingMatching final : public matching::MatchingClient {
 public:
  absl::StatusOr<QueueDescription> DescribeTaskQueue(const std::string&, const std::string&,
                                                     bool) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status AddWorkflowTask(const std::string& namespace_id, const std::string& task_queue,
                               bool sticky, const v1::TaskQueueTask& task) override {
    absl::MutexLock lock(&mu_);
    workflow_tasks_.push_back(task);
    return absl::OkStatus();
  }
  absl::Status AddActivityTask(const std::string& namespace_id, const std::string& task_queue,
                               const v1::TaskQueueTask& task) override {
    absl::MutexLock lock(&mu_);
    activity_tasks_.push_back(task);
    return absl::OkStatus();
  }

  uint64_t PollWorkflowTaskQueue(const std::string&, const wsv1::PollWorkflowTaskQueueRequest&,
                                 absl::Time, WorkflowPollCallback done) override {
    done(absl::UnimplementedError("the test plays the poller"));
    return 0;
  }
  uint64_t PollActivityTaskQueue(const std::string&, const wsv1::PollActivityTaskQueueRequest&,
                                 absl::Time, ActivityPollCallback done) override {
    done(absl::UnimplementedError("the test plays the poller"));
    return 0;
  }
  void CancelPoll(uint64_t) override {}
  void ShutdownWorker(const std::string&, const std::string&) override {}
  void DispatchQueryTask(const std::string&, const std::string&, bool, const std::string&,
                         wsv1::PollWorkflowTaskQueueResponse, absl::Time,
                         QueryTaskCallback done) override {
    done(absl::UnimplementedError("the test plays the poller"));
  }
  absl::Status RespondQueryTaskCompleted(const std::string&, const std::string&,
                                         const wsv1::RespondQueryTaskCompletedRequest&) override {
    return absl::UnimplementedError("the test plays the poller");
  }

  // The tasks dispatched so far for one run, in dispatch order.
  std::vector<v1::TaskQueueTask> WorkflowTasksOf(const std::string& run_id) const {
    absl::MutexLock lock(&mu_);
    return Of(workflow_tasks_, run_id);
  }
  std::vector<v1::TaskQueueTask> ActivityTasksOf(const std::string& run_id) const {
    absl::MutexLock lock(&mu_);
    return Of(activity_tasks_, run_id);
  }

 private:
  static std::vector<v1::TaskQueueTask> Of(const std::vector<v1::TaskQueueTask>& all,
                                           const std::string& run_id) {
    std::vector<v1::TaskQueueTask> out;
    for (const auto& t : all) {
      if (t.run().run_id() == run_id) out.push_back(t);
    }
    return out;
  }

  mutable absl::Mutex mu_;
  std::vector<v1::TaskQueueTask> workflow_tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::TaskQueueTask> activity_tasks_ ABSL_GUARDED_BY(mu_);
};

// Polls `cond` every few milliseconds until it holds or 5 s of real time pass.
template <typename Cond>
bool WaitFor(Cond cond) {
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (absl::Now() < until) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return cond();
}

// Holds every executor thread at once: when all have arrived, each has finished whatever it
// took from the FIFO queue before its sentinel.
class ExecutorBarrier {
 public:
  explicit ExecutorBarrier(int threads) : threads_(threads) {}
  void ArriveAndWait() {
    absl::MutexLock lock(&mu_);
    ++arrived_;
    mu_.AwaitWithTimeout(absl::Condition(this, &ExecutorBarrier::AllArrived), absl::Seconds(5));
  }
  bool WaitAll() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &ExecutorBarrier::AllArrived),
                                absl::Seconds(5));
  }

 private:
  bool AllArrived() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return arrived_ == threads_; }

  const int threads_;
  absl::Mutex mu_;
  int arrived_ ABSL_GUARDED_BY(mu_) = 0;
};

// What a GetWorkflowExecutionHistory call answered; `done` fires once it has.
struct HistoryAnswer {
  absl::Notification done;
  absl::StatusOr<wsv1::GetWorkflowExecutionHistoryResponse> response;
};

std::vector<enums::EventType> Types(const History& history) {
  std::vector<enums::EventType> out;
  for (const auto& e : history.events()) out.push_back(e.event_type());
  return out;
}

void ExpectDense(const History& history) {
  for (int i = 0; i < history.events_size(); ++i) {
    EXPECT_EQ(history.events(i).event_id(), i + 1) << "at position " << i;
  }
}

Payloads PayloadsOf(const std::string& data) {
  Payloads p;
  p.add_payloads()->set_data(data);
  return p;
}

v1::TaskToken TokenOf(const std::string& bytes) {
  v1::TaskToken token;
  EXPECT_TRUE(token.ParseFromString(bytes));
  return token;
}

Command ScheduleActivity(const std::string& activity_id, absl::Duration start_to_close,
                         int maximum_attempts = 0) {
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK);
  auto* a = c.mutable_schedule_activity_task_command_attributes();
  a->set_activity_id(activity_id);
  a->mutable_activity_type()->set_name("Act");
  *a->mutable_start_to_close_timeout() = ToProto(start_to_close);
  *a->mutable_input() = PayloadsOf("input");
  auto* retry = a->mutable_retry_policy();
  *retry->mutable_initial_interval() = ToProto(absl::Seconds(1));
  retry->set_backoff_coefficient(2.0);
  retry->set_maximum_attempts(maximum_attempts);
  return c;
}

Command StartTimer(const std::string& timer_id, absl::Duration fire_after) {
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_START_TIMER);
  auto* a = c.mutable_start_timer_command_attributes();
  a->set_timer_id(timer_id);
  *a->mutable_start_to_fire_timeout() = ToProto(fire_after);
  return c;
}

Command CompleteWorkflow(const std::string& result) {
  Command c;
  c.set_command_type(enums::COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION);
  *c.mutable_complete_workflow_execution_command_attributes()->mutable_result() =
      PayloadsOf(result);
  return c;
}

class HistoryEngineTest : public ::testing::Test {
 protected:
  // Small on purpose: one cached run per shard, so most requests reload from the store.
  static HistoryOptions Options() {
    HistoryOptions options;
    options.num_shards = 2;
    options.cache_entries = 2;
    options.ack_flush_interval = absl::Milliseconds(400);
    options.owner = "test-node";
    return options;
  }

  HistoryEngineTest()
      : clock_(kT0),
        deadlines_(std::make_unique<DeadlineQueue>(&clock_)),
        executor_(std::make_unique<Executor>(kExecutorThreads)) {}

  void SetUp() override {
    auto driver = persistence::NewSqliteDriver({"", true, 1});
    ASSERT_TRUE(driver.ok()) << driver.status();
    ASSERT_TRUE(persistence::MigrateSchema(driver->get()).ok());
    stores_ = persistence::NewSqlStores(std::move(*driver));
    namespaces_ = std::make_unique<NamespaceRegistry>(stores_->namespaces.get());
    v1::NamespaceRecord record;
    record.mutable_info()->set_id(kNamespaceId);
    record.mutable_info()->set_name("default");
    ASSERT_TRUE(namespaces_->Register(record).ok());
    engine_ = std::make_unique<HistoryEngine>(stores_.get(), namespaces_.get(), &clock_,
                                              deadlines_.get(), executor_.get(), Options());
    engine_->SetMatching(&matching_);
    ASSERT_TRUE(engine_->Start().ok());
  }

  // The server's order: nothing new is scheduled, queued work drains while the engine and
  // the store still exist, then they go.
  void TearDown() override {
    if (engine_) engine_->Stop();
    deadlines_->Stop();
    executor_.reset();
    engine_.reset();
    namespaces_.reset();
    stores_.reset();
  }

  // Moves the manual clock and wakes the deadline queue to notice.
  void Advance(absl::Duration d) {
    clock_.Advance(d);
    deadlines_->Poke();
  }

  // Returns once every deadline due at the current (manual) time has run, and the executor
  // has finished the work they posted and the work that posted in turn (a fired timer
  // commits, then dispatches its workflow task): only then does "nothing happened" mean
  // "nothing was due".
  bool Settle() {
    for (int round = 0; round < 3; ++round) {
      auto reached = std::make_shared<absl::Notification>();
      deadlines_->Schedule(clock_.Now(), [reached] { reached->Notify(); });
      deadlines_->Poke();
      if (!reached->WaitForNotificationWithTimeout(absl::Seconds(5))) return false;
      auto barrier = std::make_shared<ExecutorBarrier>(kExecutorThreads);
      for (int i = 0; i < kExecutorThreads; ++i) {
        executor_->Post([barrier] { barrier->ArriveAndWait(); });
      }
      if (!barrier->WaitAll()) return false;
    }
    return true;
  }

  static wsv1::StartWorkflowExecutionRequest StartRequest(const std::string& workflow_id,
                                                          const std::string& request_id) {
    wsv1::StartWorkflowExecutionRequest req;
    req.set_workflow_id(workflow_id);
    req.mutable_workflow_type()->set_name("Type");
    req.mutable_task_queue()->set_name(kTaskQueue);
    req.set_request_id(request_id);
    req.set_identity("client");
    return req;
  }

  // Starts a workflow and returns its run id (empty on failure, which is reported).
  std::string StartWorkflow(const std::string& workflow_id) {
    auto resp = engine_->StartWorkflowExecution(kNamespaceId, StartRequest(workflow_id, NewUuid()));
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->run_id() : "";
  }

  // A workflow id of the shard, unused so far (ids are assigned to shards by hash).
  std::string WorkflowIdOnShard(int32_t shard, const std::string& prefix) {
    for (;;) {
      std::string id = absl::StrCat(prefix, "-", next_id_++);
      if (engine_->ShardOf(kNamespaceId, id) == shard) return id;
    }
  }

  // The run's n-th (from 1) workflow task once history has dispatched it to matching.
  std::optional<v1::TaskQueueTask> AwaitWorkflowTask(const std::string& run_id, size_t n) {
    if (!WaitFor([&] { return matching_.WorkflowTasksOf(run_id).size() >= n; })) return {};
    return matching_.WorkflowTasksOf(run_id)[n - 1];
  }
  std::optional<v1::TaskQueueTask> AwaitActivityTask(const std::string& run_id, size_t n) {
    if (!WaitFor([&] { return matching_.ActivityTasksOf(run_id).size() >= n; })) return {};
    return matching_.ActivityTasksOf(run_id)[n - 1];
  }

  static RecordTaskStartedRequest Record(const v1::TaskQueueTask& task) {
    RecordTaskStartedRequest req;
    req.namespace_id = kNamespaceId;
    req.task = task;
    req.poll_request_id = NewUuid();
    req.identity = "worker";
    return req;
  }

  absl::Status CompleteWorkflowTask(const wsv1::PollWorkflowTaskQueueResponse& poll,
                                    const std::vector<Command>& commands) {
    wsv1::RespondWorkflowTaskCompletedRequest req;
    for (const auto& c : commands) *req.add_commands() = c;
    req.set_identity("worker");
    return engine_->RespondWorkflowTaskCompleted(TokenOf(poll.task_token()), req).status();
  }

  // Plays a worker for the run's n-th workflow task: waits for it to reach matching, records
  // it started and completes it with `commands`.
  absl::Status RunWorkflowTask(const std::string& run_id, size_t n,
                               const std::vector<Command>& commands) {
    auto task = AwaitWorkflowTask(run_id, n);
    if (!task) return absl::DeadlineExceededError(absl::StrCat("no workflow task #", n));
    auto poll = engine_->RecordWorkflowTaskStarted(Record(*task));
    if (!poll.ok()) return poll.status();
    return CompleteWorkflowTask(*poll, commands);
  }

  // Waits for the run's n-th activity task and records it started.
  absl::StatusOr<wsv1::PollActivityTaskQueueResponse> StartActivityTask(const std::string& run_id,
                                                                         size_t n) {
    auto task = AwaitActivityTask(run_id, n);
    if (!task) return absl::DeadlineExceededError(absl::StrCat("no activity task #", n));
    return engine_->RecordActivityTaskStarted(Record(*task));
  }

  // Issues a history request; the answer may come later (a long poll).
  std::shared_ptr<HistoryAnswer> RequestHistory(const wsv1::GetWorkflowExecutionHistoryRequest& req,
                                                absl::Time deadline) {
    auto answer = std::make_shared<HistoryAnswer>();
    engine_->GetWorkflowExecutionHistory(
        kNamespaceId, req, deadline,
        [answer](absl::StatusOr<wsv1::GetWorkflowExecutionHistoryResponse> resp) {
          answer->response = std::move(resp);
          answer->done.Notify();
        });
    return answer;
  }

  // The run's whole history (one page: these histories are short).
  absl::StatusOr<History> ReadHistory(const std::string& workflow_id, const std::string& run_id) {
    wsv1::GetWorkflowExecutionHistoryRequest req;
    req.mutable_execution()->set_workflow_id(workflow_id);
    req.mutable_execution()->set_run_id(run_id);
    auto answer = RequestHistory(req, clock_.Now());
    if (!answer->done.WaitForNotificationWithTimeout(absl::Seconds(5))) {
      return absl::DeadlineExceededError("no answer");
    }
    if (!answer->response.ok()) return answer->response.status();
    return answer->response->history();
  }

  absl::StatusOr<wsv1::DescribeWorkflowExecutionResponse> Describe(const std::string& workflow_id,
                                                                  const std::string& run_id) {
    wsv1::DescribeWorkflowExecutionRequest req;
    req.mutable_execution()->set_workflow_id(workflow_id);
    req.mutable_execution()->set_run_id(run_id);
    return engine_->DescribeWorkflowExecution(kNamespaceId, req);
  }

  ManualClock clock_;
  std::unique_ptr<DeadlineQueue> deadlines_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<persistence::Stores> stores_;
  std::unique_ptr<NamespaceRegistry> namespaces_;
  RecordingMatching matching_;
  std::unique_ptr<HistoryEngine> engine_;
  int next_id_ = 0;
};

TEST_F(HistoryEngineTest, AWorkflowWithOneActivityRunsToCompletion) {
  const std::string run = StartWorkflow("wf");

  auto wft = AwaitWorkflowTask(run, 1);
  ASSERT_TRUE(wft) << "the first workflow task never reached matching";
  auto poll = engine_->RecordWorkflowTaskStarted(Record(*wft));
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_EQ(Types(poll->history()), (std::vector{enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                                                 enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                                 enums::EVENT_TYPE_WORKFLOW_TASK_STARTED}));
  ExpectDense(poll->history());
  EXPECT_EQ(poll->started_event_id(), 3);
  ASSERT_TRUE(CompleteWorkflowTask(*poll, {ScheduleActivity("a1", absl::Seconds(30))}).ok());

  auto activity = StartActivityTask(run, 1);
  ASSERT_TRUE(activity.ok()) << activity.status();
  EXPECT_EQ(activity->activity_id(), "a1");
  EXPECT_EQ(activity->attempt(), 1);
  EXPECT_EQ(activity->input().payloads(0).data(), "input");
  wsv1::RespondActivityTaskCompletedRequest done;
  *done.mutable_result() = PayloadsOf("activity result");
  done.set_identity("worker");
  ASSERT_TRUE(engine_->RespondActivityTaskCompleted(TokenOf(activity->task_token()), done).ok());

  // The activity's result schedules the next workflow task, which sees the whole history.
  wft = AwaitWorkflowTask(run, 2);
  ASSERT_TRUE(wft) << "the activity's completion dispatched no workflow task";
  poll = engine_->RecordWorkflowTaskStarted(Record(*wft));
  ASSERT_TRUE(poll.ok()) << poll.status();
  EXPECT_EQ(poll->previous_started_event_id(), 3);
  EXPECT_EQ(poll->history().events_size(), 9);
  ASSERT_TRUE(CompleteWorkflowTask(*poll, {CompleteWorkflow("done")}).ok());

  auto history = ReadHistory("wf", run);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(Types(*history), (std::vector{enums::EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_STARTED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                          enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
                                          enums::EVENT_TYPE_ACTIVITY_TASK_STARTED,
                                          enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_STARTED,
                                          enums::EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                                          enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED}));
  ExpectDense(*history);
  const auto& completed = history->events(6).activity_task_completed_event_attributes();
  EXPECT_EQ(completed.scheduled_event_id(), 5);
  EXPECT_EQ(completed.started_event_id(), 6);
  EXPECT_EQ(completed.result().payloads(0).data(), "activity result");
  const auto& closed = history->events(10).workflow_execution_completed_event_attributes();
  EXPECT_EQ(closed.result().payloads(0).data(), "done");

  auto described = Describe("wf", run);
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(described->workflow_execution_info().status(),
            enums::WORKFLOW_EXECUTION_STATUS_COMPLETED);
  EXPECT_EQ(described->workflow_execution_info().history_length(), 11);
  EXPECT_TRUE(described->pending_activities().empty());
}

TEST_F(HistoryEngineTest, AUserTimerFiresOnlyWhenTheClockPassesIt) {
  const std::string run = StartWorkflow("wf");
  ASSERT_TRUE(RunWorkflowTask(run, 1, {StartTimer("t1", absl::Seconds(30))}).ok());

  // Just before the timer is due: nothing fires, whatever was due has run.
  Advance(absl::Seconds(30) - absl::Milliseconds(1));
  ASSERT_TRUE(Settle());
  EXPECT_EQ(matching_.WorkflowTasksOf(run).size(), 1u);
  auto history = ReadHistory("wf", run);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->events(history->events_size() - 1).event_type(),
            enums::EVENT_TYPE_TIMER_STARTED);

  Advance(absl::Milliseconds(1));
  ASSERT_TRUE(AwaitWorkflowTask(run, 2)) << "the fired timer dispatched no workflow task";
  history = ReadHistory("wf", run);
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->events_size(), 7);
  EXPECT_EQ(history->events(5).event_type(), enums::EVENT_TYPE_TIMER_FIRED);
  EXPECT_EQ(history->events(5).timer_fired_event_attributes().timer_id(), "t1");
  EXPECT_EQ(history->events(5).timer_fired_event_attributes().started_event_id(), 5);
  EXPECT_EQ(absl::FromUnixSeconds(history->events(5).event_time().seconds()),
            kT0 + absl::Seconds(30));
  EXPECT_EQ(history->events(6).event_type(), enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
  ExpectDense(*history);
}

TEST_F(HistoryEngineTest, AFailedAttemptRetriesAfterItsBackoffAndTheLastTimesOut) {
  const std::string run = StartWorkflow("wf");
  // Two attempts, one second apart; each attempt may run ten seconds.
  ASSERT_TRUE(RunWorkflowTask(run, 1, {ScheduleActivity("a1", absl::Seconds(10), 2)}).ok());

  auto first = StartActivityTask(run, 1);
  ASSERT_TRUE(first.ok()) << first.status();
  wsv1::RespondActivityTaskFailedRequest fail;
  fail.mutable_failure()->set_message("boom");
  fail.mutable_failure()->mutable_application_failure_info()->set_type("Boom");
  fail.set_identity("worker");
  ASSERT_TRUE(engine_->RespondActivityTaskFailed(TokenOf(first->task_token()), fail).ok());

  // The backoff has not passed: no second attempt yet.
  Advance(absl::Milliseconds(999));
  ASSERT_TRUE(Settle());
  EXPECT_EQ(matching_.ActivityTasksOf(run).size(), 1u);

  Advance(absl::Milliseconds(1));
  auto second = StartActivityTask(run, 2);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->attempt(), 2);
  auto described = Describe("wf", run);
  ASSERT_TRUE(described.ok()) << described.status();
  ASSERT_EQ(described->pending_activities_size(), 1);
  EXPECT_EQ(described->pending_activities(0).attempt(), 2);
  EXPECT_EQ(described->pending_activities(0).last_failure().message(), "boom");

  // A retried attempt writes no events: the failure shows only in the next attempt's.
  auto history = ReadHistory("wf", run);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->events_size(), 5);

  // The last attempt outlives its start-to-close timeout: retries are exhausted.
  Advance(absl::Seconds(10));
  ASSERT_TRUE(AwaitWorkflowTask(run, 2)) << "the timeout dispatched no workflow task";
  history = ReadHistory("wf", run);
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->events_size(), 8);
  ExpectDense(*history);
  EXPECT_EQ(history->events(5).event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_STARTED);
  EXPECT_EQ(history->events(5).activity_task_started_event_attributes().attempt(), 2);
  EXPECT_EQ(history->events(5).activity_task_started_event_attributes().last_failure().message(),
            "boom");
  ASSERT_EQ(history->events(6).event_type(), enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT);
  const auto& timed_out = history->events(6).activity_task_timed_out_event_attributes();
  EXPECT_EQ(timed_out.scheduled_event_id(), 5);
  EXPECT_EQ(timed_out.started_event_id(), 6);
  EXPECT_EQ(timed_out.retry_state(), enums::RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED);
  // Temporal's text, which SDKs show and users match on.
  EXPECT_EQ(timed_out.failure().message(), "activity StartToClose timeout");
  EXPECT_EQ(timed_out.failure().timeout_failure_info().timeout_type(),
            enums::TIMEOUT_TYPE_START_TO_CLOSE);
  EXPECT_EQ(timed_out.failure().cause().message(), "boom");
  EXPECT_EQ(history->events(7).event_type(), enums::EVENT_TYPE_WORKFLOW_TASK_SCHEDULED);
}

TEST_F(HistoryEngineTest, AResultLongPollIsAnsweredWhenTheRunClosesThoughItsRunWasEvicted) {
  const std::string run = StartWorkflow("waited");
  const int32_t shard = engine_->ShardOf(kNamespaceId, "waited");

  wsv1::GetWorkflowExecutionHistoryRequest req;
  req.mutable_execution()->set_workflow_id("waited");
  req.mutable_execution()->set_run_id(run);
  req.set_wait_new_event(true);
  req.set_history_event_filter_type(enums::HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT);
  auto answer = RequestHistory(req, kT0 + absl::Hours(1));
  EXPECT_FALSE(answer->done.HasBeenNotified()) << "answered before the run closed";

  // Other runs, several on the waited run's shard, go through the one-entry cache.
  std::vector<std::pair<std::string, std::string>> others;
  for (int i = 0; i < 4; ++i) {
    for (const std::string& id :
         {WorkflowIdOnShard(shard, "same-shard"), WorkflowIdOnShard(1 - shard, "other-shard")}) {
      others.emplace_back(id, StartWorkflow(id));
    }
  }
  for (const auto& [id, other_run] : others) {
    auto task = AwaitWorkflowTask(other_run, 1);
    ASSERT_TRUE(task);
    ASSERT_TRUE(engine_->RecordWorkflowTaskStarted(Record(*task)).ok());
    ASSERT_TRUE(Describe(id, other_run).ok());
  }
  EXPECT_LE(engine_->shard(shard)->cache().size(), 1u);
  ASSERT_TRUE(Settle());
  EXPECT_FALSE(answer->done.HasBeenNotified()) << "answered before the run closed";

  // Starting the workflow task writes an event, which wakes the poll; it is not the close,
  // so the poll parks again. Completing the run answers it.
  ASSERT_TRUE(RunWorkflowTask(run, 1, {CompleteWorkflow("result")}).ok());
  ASSERT_TRUE(answer->done.WaitForNotificationWithTimeout(absl::Seconds(5)))
      << "the long poll was lost";
  ASSERT_TRUE(answer->response.ok()) << answer->response.status();
  const History& history = answer->response->history();
  ASSERT_EQ(history.events_size(), 1);
  EXPECT_EQ(history.events(0).event_type(), enums::EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED);
  const auto& closed = history.events(0).workflow_execution_completed_event_attributes();
  EXPECT_EQ(closed.result().payloads(0).data(), "result");
}

TEST_F(HistoryEngineTest, HandledTasksAreDeletedFromTheStoreOnceTheAckLevelIsFlushed) {
  const int32_t shard = engine_->ShardOf(kNamespaceId, "wf");
  auto transfer_rows = [&] {
    auto rows = stores_->executions->ListTransferTasks(shard, 0, 100);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? rows->size() : size_t{999};
  };
  auto timer_rows = [&] {
    auto rows = stores_->executions->ListTimerTasks(shard, absl::UnixEpoch(), 0,
                                                    absl::InfiniteFuture(), 100);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? *rows : std::vector<v1::TimerTask>{};
  };

  const std::string run = StartWorkflow("wf");
  ASSERT_TRUE(RunWorkflowTask(run, 1, {StartTimer("t1", absl::Seconds(1))}).ok());
  // The clock has not moved, so no shard tick has run: every task written is still stored.
  EXPECT_EQ(transfer_rows(), 1u);         // the first workflow task's dispatch
  EXPECT_EQ(timer_rows().size(), 2u);     // the user timer and the workflow task's timeout
  Advance(absl::Seconds(1));
  ASSERT_TRUE(RunWorkflowTask(run, 2, {CompleteWorkflow("done")}).ok());

  // Every handled task is marked done in memory; the next flush deletes it by range.
  ASSERT_TRUE(Settle());
  Advance(Options().ack_flush_interval);
  EXPECT_TRUE(WaitFor([&] { return transfer_rows() == 0; })) << "transfer rows not deleted";
  EXPECT_TRUE(WaitFor([&] { return timer_rows().size() == 2; })) << "the fired timer's row stays";
  // The two workflow task timeouts are still ahead: their rows stay until they fire.
  for (const auto& t : timer_rows()) {
    EXPECT_EQ(t.kind(), v1::TimerTask::KIND_WORKFLOW_TASK_TIMEOUT);
    EXPECT_GT(FromProto(t.visibility_time()), clock_.Now());
  }

  // Past them, they fire and do nothing (their tasks completed, the run is closed); the
  // next flush deletes them.
  v1::RunKey key;
  key.set_namespace_id(kNamespaceId);
  key.set_workflow_id("wf");
  key.set_run_id(run);
  auto closed = stores_->executions->GetMutableState(shard, key);
  ASSERT_TRUE(closed.ok()) << closed.status();
  Advance(absl::Seconds(11));
  ASSERT_TRUE(Settle());
  Advance(Options().ack_flush_interval);
  EXPECT_TRUE(WaitFor([&] { return timer_rows().empty(); })) << "timer rows not deleted";
  auto after = stores_->executions->GetMutableState(shard, key);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->db_version(), closed->db_version())
      << "a timeout of a workflow task that had completed rewrote the run";
}

TEST_F(HistoryEngineTest, AShardTakenByAnotherNodeAnswersUnavailableAndNothingStale) {
  const std::string lost_id = WorkflowIdOnShard(0, "lost");
  const std::string run = StartWorkflow(lost_id);
  auto task = AwaitWorkflowTask(run, 1);
  ASSERT_TRUE(task);
  auto poll = engine_->RecordWorkflowTaskStarted(Record(*task));
  ASSERT_TRUE(poll.ok()) << poll.status();

  ASSERT_TRUE(stores_->shards->AcquireShard(0, "other").ok());

  absl::Status st = CompleteWorkflowTask(*poll, {CompleteWorkflow("done")});
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_FALSE(engine_->shard(0)->owned());
  // The refused write left the store as it was.
  v1::RunKey key;
  key.set_namespace_id(kNamespaceId);
  key.set_workflow_id(lost_id);
  key.set_run_id(run);
  auto stored = stores_->executions->GetMutableState(0, key);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->next_event_id(), 4);
  EXPECT_EQ(stored->execution().status(), enums::WORKFLOW_EXECUTION_STATUS_RUNNING);

  // Reads do not answer from what this node still remembers of the shard.
  auto described = Describe(lost_id, run);
  EXPECT_TRUE(absl::IsUnavailable(described.status())) << described.status();
  auto history = ReadHistory(lost_id, run);
  EXPECT_TRUE(absl::IsUnavailable(history.status())) << history.status();
  auto restart = engine_->StartWorkflowExecution(kNamespaceId, StartRequest(lost_id, NewUuid()));
  EXPECT_TRUE(absl::IsUnavailable(restart.status())) << restart.status();

  // The other shard is unaffected.
  EXPECT_TRUE(engine_->shard(1)->owned());
  const std::string kept = StartWorkflow(WorkflowIdOnShard(1, "kept"));
  EXPECT_TRUE(AwaitWorkflowTask(kept, 1));
}

TEST_F(HistoryEngineTest, AStartIsDeduplicatedByRequestIdAndRefusedWhileTheRunIsOpen) {
  auto first = engine_->StartWorkflowExecution(kNamespaceId, StartRequest("wf", "request-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->started());

  // A retried start (same request id) answers with the run the first one started.
  auto retried = engine_->StartWorkflowExecution(kNamespaceId, StartRequest("wf", "request-1"));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->run_id(), first->run_id());

  auto second = engine_->StartWorkflowExecution(kNamespaceId, StartRequest("wf", "request-2"));
  ASSERT_TRUE(absl::IsAlreadyExists(second.status())) << second.status();
  auto detail = second.status().GetPayload(absl::StrCat(
      kTypeUrlPrefix,
      temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure::descriptor()
          ->full_name()));
  ASSERT_TRUE(detail.has_value()) << "the SDKs need WorkflowExecutionAlreadyStartedFailure";
  temporal::api::errordetails::v1::WorkflowExecutionAlreadyStartedFailure failure;
  ASSERT_TRUE(failure.ParseFromString(std::string(*detail)));
  EXPECT_EQ(failure.run_id(), first->run_id());
  EXPECT_EQ(failure.start_request_id(), "request-1");

  // Only one run was created, and only one workflow task dispatched.
  ASSERT_TRUE(AwaitWorkflowTask(first->run_id(), 1));
  ASSERT_TRUE(Settle());
  EXPECT_EQ(matching_.WorkflowTasksOf(first->run_id()).size(), 1u);
}

TEST_F(HistoryEngineTest, AHeartbeatRecordsDetailsThatDescribeShows) {
  const std::string run = StartWorkflow("wf");
  const int32_t shard = engine_->ShardOf(kNamespaceId, "wf");
  ASSERT_TRUE(RunWorkflowTask(run, 1, {ScheduleActivity("a1", absl::Seconds(30))}).ok());
  auto activity = StartActivityTask(run, 1);
  ASSERT_TRUE(activity.ok()) << activity.status();

  Advance(absl::Seconds(2));
  wsv1::RecordActivityTaskHeartbeatRequest heartbeat;
  *heartbeat.mutable_details() = PayloadsOf("progress 42");
  heartbeat.set_identity("worker");
  auto cancel_requested =
      engine_->RecordActivityTaskHeartbeat(TokenOf(activity->task_token()), heartbeat);
  ASSERT_TRUE(cancel_requested.ok()) << cancel_requested.status();
  EXPECT_FALSE(*cancel_requested);

  auto expect_heartbeat_shown = [&](const char* when) {
    auto described = Describe("wf", run);
    ASSERT_TRUE(described.ok()) << described.status();
    ASSERT_EQ(described->pending_activities_size(), 1) << when;
    const auto& pending = described->pending_activities(0);
    EXPECT_EQ(pending.activity_id(), "a1") << when;
    EXPECT_EQ(pending.state(), enums::PENDING_ACTIVITY_STATE_STARTED) << when;
    ASSERT_EQ(pending.heartbeat_details().payloads_size(), 1) << when;
    EXPECT_EQ(pending.heartbeat_details().payloads(0).data(), "progress 42") << when;
    EXPECT_EQ(FromProto(pending.last_heartbeat_time()), kT0 + absl::Seconds(2)) << when;
  };
  expect_heartbeat_shown("from the cached run");
  // A heartbeat does not rewrite the run's state: once the run leaves the cache, its
  // details come back from the heartbeat row merged at load.
  StartWorkflow(WorkflowIdOnShard(shard, "evicts"));
  expect_heartbeat_shown("from the store");
}

// A query on a run whose workflow task is pending rides on that task and is answered by the
// worker's completion; nothing is written for it.
TEST_F(HistoryEngineTest, AQueryRidesOnThePendingWorkflowTask) {
  const std::string wid = "query-wf";
  const std::string run_id = StartWorkflow(wid);
  wsv1::QueryWorkflowRequest query;
  query.mutable_execution()->set_workflow_id(wid);
  query.mutable_query()->set_query_type("state");
  absl::Notification answered;
  absl::StatusOr<wsv1::QueryWorkflowResponse> answer;
  engine_->QueryWorkflow(kNamespaceId, query, kT0 + absl::Minutes(1),
                         [&](absl::StatusOr<wsv1::QueryWorkflowResponse> r) {
                           answer = std::move(r);
                           answered.Notify();
                         });
  auto task = AwaitWorkflowTask(run_id, 1);
  ASSERT_TRUE(task.has_value());
  auto poll = engine_->RecordWorkflowTaskStarted(Record(*task));
  ASSERT_TRUE(poll.ok()) << poll.status();
  ASSERT_EQ(poll->queries_size(), 1);
  const std::string query_id = poll->queries().begin()->first;
  EXPECT_EQ(poll->queries().begin()->second.query_type(), "state");

  wsv1::RespondWorkflowTaskCompletedRequest req;
  auto& result = (*req.mutable_query_results())[query_id];
  result.set_result_type(temporal::api::enums::v1::QUERY_RESULT_TYPE_ANSWERED);
  result.mutable_answer()->add_payloads()->set_data("42");
  ASSERT_TRUE(engine_->RespondWorkflowTaskCompleted(TokenOf(poll->task_token()), req).ok());
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->query_result().payloads(0).data(), "42");
}

// An update on an idle run gets a speculative workflow task; the worker's rejection leaves
// the history as it was and tells the worker to reset to the last kept started event.
TEST_F(HistoryEngineTest, ARejectedUpdateOnAnIdleRunLeavesNoEvents) {
  const std::string wid = "update-wf";
  const std::string run_id = StartWorkflow(wid);
  ASSERT_TRUE(RunWorkflowTask(run_id, 1, {}).ok());
  wsv1::DescribeWorkflowExecutionRequest describe;
  describe.mutable_execution()->set_workflow_id(wid);
  auto before = engine_->DescribeWorkflowExecution(kNamespaceId, describe);
  ASSERT_TRUE(before.ok());

  wsv1::UpdateWorkflowExecutionRequest update;
  update.mutable_workflow_execution()->set_workflow_id(wid);
  update.mutable_request()->mutable_meta()->set_update_id("u1");
  update.mutable_request()->mutable_input()->set_name("set");
  update.mutable_wait_policy()->set_lifecycle_stage(
      temporal::api::enums::v1::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED);
  absl::Notification answered;
  absl::StatusOr<wsv1::UpdateWorkflowExecutionResponse> answer;
  engine_->UpdateWorkflowExecution(kNamespaceId, update, kT0 + absl::Seconds(10),
                                   [&](absl::StatusOr<wsv1::UpdateWorkflowExecutionResponse> r) {
                                     answer = std::move(r);
                                     answered.Notify();
                                   });
  auto task = AwaitWorkflowTask(run_id, 2);
  ASSERT_TRUE(task.has_value());
  auto poll = engine_->RecordWorkflowTaskStarted(Record(*task));
  ASSERT_TRUE(poll.ok()) << poll.status();
  ASSERT_EQ(poll->messages_size(), 1);
  EXPECT_EQ(poll->messages(0).protocol_instance_id(), "u1");
  EXPECT_EQ(poll->messages(0).id(), "u1/request");

  temporal::api::update::v1::Rejection rejection;
  rejection.mutable_failure()->set_message("not now");
  wsv1::RespondWorkflowTaskCompletedRequest req;
  auto* m = req.add_messages();
  m->set_id("u1/reject");
  m->set_protocol_instance_id("u1");
  m->mutable_body()->PackFrom(rejection);
  auto done = engine_->RespondWorkflowTaskCompleted(TokenOf(poll->task_token()), req);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->reset_history_event_id(), 3);
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(5)));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->stage(),
            temporal::api::enums::v1::UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED);
  EXPECT_EQ(answer->outcome().failure().message(), "not now");
  auto after = engine_->DescribeWorkflowExecution(kNamespaceId, describe);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->workflow_execution_info().history_length(),
            before->workflow_execution_info().history_length());
}

}  // namespace
}  // namespace almanac::history
