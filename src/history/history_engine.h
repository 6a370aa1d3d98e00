#pragma once

// HistoryEngine: the in-process HistoryClient. Owns every run's mutable state and history.
//
// Shards: each owned shard has a ShardContext (shard_context.h) holding its lease, the
// fencing of its writes, its task ids, its run cache and its queues' ack levels. A shard
// that another node takes is unloaded: its runs answer kUnavailable from then on.
//
// Concurrency: mutations of one workflow id are serialized by that id's WorkflowContext
// mutex (held across the store write, so a run's transactions never interleave); different
// ids proceed in parallel. There is no engine-wide lock on the request path: the context
// map is split into stripes, each with its own mutex, held only to find, insert or drop a
// context. A context lives while a request uses it or something waits on one of its runs
// (RunContext), so a waiter is never dropped; the run states themselves live in the shard's
// LRU cache, which can evict them at any time.
//
// Each mutation runs the pure state machine on a copy of the cached state and writes the
// events, the state (conditioned on db_version) and the tasks in one transaction. The cache
// is updated only after the commit; on a version conflict the run is reloaded and the
// mutation retried; on an unknown outcome it is reloaded on next use and the shard's queues
// are rescanned. Tasks go to the in-memory queue processors right after the commit.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/deadline_queue.h"
#include "common/executor.h"
#include "common/namespace_registry.h"
#include "history/history_client.h"
#include "history/run_cache.h"
#include "history/shard_context.h"
#include "history/state_machine.h"
#include "matching/matching_client.h"
#include "persistence/stores.h"
#include "scheduler/schedule_spec.h"
#include "temporal/api/query/v1/message.pb.h"

namespace almanac::history {

inline v1::RunKey MakeRunKey(const std::string& namespace_id, const std::string& workflow_id,
                             const std::string& run_id) {
  v1::RunKey key;
  key.set_namespace_id(namespace_id);
  key.set_workflow_id(workflow_id);
  key.set_run_id(run_id);
  return key;
}

struct HistoryOptions {
  int num_shards = 4;
  size_t cache_entries = 100000;           // runs whose state stays cached, over all shards
  size_t cache_bytes = size_t{1} << 30;    // their memory bound, over all shards
  int history_page_size = 256;    // events per page when the request names none
  absl::Duration timer_window = absl::Minutes(5);  // timers kept in memory ahead of now
  absl::Duration lease_renew_interval = absl::Seconds(5);
  absl::Duration ack_flush_interval = absl::Seconds(1);
  absl::Duration rescan_interval = absl::Seconds(30);  // a full rescan of each shard's queues
  std::string owner;                       // this node's name in the shard leases
  int64_t max_task_sequence = (int64_t{1} << 32) - 1;  // lowered only by tests
  Limits limits;
};

class HistoryEngine final : public HistoryClient {
 public:
  HistoryEngine(persistence::Stores* stores, NamespaceRegistry* namespaces, Clock* clock,
                DeadlineQueue* deadlines, Executor* executor, HistoryOptions options);
  ~HistoryEngine() override;

  // Wires matching, which history dispatches tasks to. Must precede Start.
  void SetMatching(matching::MatchingClient* matching) { matching_ = matching; }

  // Acquires the shards and starts the queue processors, reading back pending tasks.
  absl::Status Start();
  // Stops dispatching; pending tasks stay in the store for the next start.
  void Stop();

  absl::StatusOr<wsv1::StartWorkflowExecutionResponse> StartWorkflowExecution(
      const std::string& namespace_id, const wsv1::StartWorkflowExecutionRequest& request) override;
  absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse> RecordWorkflowTaskStarted(
      const RecordTaskStartedRequest& request) override;
  absl::StatusOr<wsv1::PollActivityTaskQueueResponse> RecordActivityTaskStarted(
      const RecordTaskStartedRequest& request) override;
  absl::StatusOr<wsv1::RespondWorkflowTaskCompletedResponse> RespondWorkflowTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskCompletedRequest& request) override;
  absl::Status RespondWorkflowTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondWorkflowTaskFailedRequest& request) override;
  absl::Status RespondActivityTaskCompleted(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCompletedRequest& request) override;
  absl::Status RespondActivityTaskFailed(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskFailedRequest& request) override;
  absl::Status RespondActivityTaskCanceled(
      const v1::TaskToken& token, const wsv1::RespondActivityTaskCanceledRequest& request) override;
  absl::StatusOr<bool> RecordActivityTaskHeartbeat(
      const v1::TaskToken& token, const wsv1::RecordActivityTaskHeartbeatRequest& request) override;
  absl::Status RequestCancelWorkflowExecution(
      const std::string& namespace_id,
      const wsv1::RequestCancelWorkflowExecutionRequest& request) override;
  absl::Status TerminateWorkflowExecution(
      const std::string& namespace_id, const wsv1::TerminateWorkflowExecutionRequest& request) override;
  absl::StatusOr<v1::TaskToken> ActivityTokenById(const std::string& namespace_id,
                                                  const std::string& workflow_id,
                                                  const std::string& run_id,
                                                  const std::string& activity_id) override;
  absl::StatusOr<wsv1::ResetWorkflowExecutionResponse> ResetWorkflowExecution(
      const std::string& namespace_id, const wsv1::ResetWorkflowExecutionRequest& request) override;
  absl::StatusOr<wsv1::DescribeWorkflowExecutionResponse> DescribeWorkflowExecution(
      const std::string& namespace_id, const wsv1::DescribeWorkflowExecutionRequest& request) override;
  void GetWorkflowExecutionHistory(const std::string& namespace_id,
                                   const wsv1::GetWorkflowExecutionHistoryRequest& request,
                                   absl::Time deadline, HistoryCallback done) override;
  absl::Status SignalWorkflowExecution(const std::string& namespace_id,
                                       const wsv1::SignalWorkflowExecutionRequest& request) override;
  absl::StatusOr<wsv1::SignalWithStartWorkflowExecutionResponse> SignalWithStartWorkflowExecution(
      const std::string& namespace_id,
      const wsv1::SignalWithStartWorkflowExecutionRequest& request) override;
  void QueryWorkflow(const std::string& namespace_id, const wsv1::QueryWorkflowRequest& request,
                     absl::Time deadline, QueryCallback done) override;
  void UpdateWorkflowExecution(const std::string& namespace_id,
                               const wsv1::UpdateWorkflowExecutionRequest& request,
                               absl::Time deadline, UpdateCallback done) override;
  void PollWorkflowExecutionUpdate(const std::string& namespace_id,
                                   const wsv1::PollWorkflowExecutionUpdateRequest& request,
                                   absl::Time deadline, PollUpdateCallback done) override;
  void UpdateWithStart(const std::string& namespace_id,
                       const wsv1::StartWorkflowExecutionRequest& start,
                       const wsv1::UpdateWorkflowExecutionRequest& update, absl::Time deadline,
                       UpdateWithStartCallback done) override;

  // Schedules (schedules.cc). The frontend validates and canonicalizes what it passes.
  absl::Status CreateSchedule(v1::ScheduleRecord record,
                              const temporal::api::schedule::v1::SchedulePatch* initial_patch) override;
  absl::StatusOr<v1::ScheduleRecord> DescribeSchedule(const std::string& namespace_id,
                                                      const std::string& schedule_id) override;
  absl::Status UpdateSchedule(const std::string& namespace_id, const std::string& schedule_id,
                              const temporal::api::schedule::v1::Schedule& schedule,
                              const temporal::api::common::v1::SearchAttributes* search_attributes,
                              int64_t conflict_token) override;
  absl::Status PatchSchedule(const std::string& namespace_id, const std::string& schedule_id,
                             const temporal::api::schedule::v1::SchedulePatch& patch) override;
  absl::Status DeleteSchedule(const std::string& namespace_id,
                              const std::string& schedule_id) override;

  int32_t ShardOf(const std::string& namespace_id, const std::string& workflow_id) const;
  // The context of an owned shard, for tests and benchmarks. Valid between Start and Stop.
  ShardContext* shard(int32_t shard_id) const { return shards_.at(shard_id).get(); }

 private:
  // A long poll on one run's history, woken by the commit that makes its answer ready.
  struct Waiter {
    std::atomic<bool> fired{false};
    std::function<void()> wake;
  };

  // Where an update stands, as its callers see it (messages.cc).
  struct UpdateStatus {
    temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage stage;
    std::optional<temporal::api::update::v1::Outcome> outcome;  // once completed
  };
  using UpdateStatusCallback = std::function<void(absl::StatusOr<UpdateStatus>)>;
  struct UpdateWaiter {
    std::atomic<bool> fired{false};
    temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage wanted;
    UpdateStatusCallback done;
  };
  // An update in flight: admitted, sent to a worker in a workflow task, or accepted (then
  // also in the state's `updates`). Lives in memory only: a caller whose update is lost with
  // the process retries it, and an accepted one is found again in the state.
  struct PendingUpdate {
    enum class Stage { kAdmitted, kSent, kAccepted };
    temporal::api::update::v1::Request request;
    Stage stage = Stage::kAdmitted;
    int64_t sent_stamp = 0;  // the workflow task that carried it
    std::vector<std::shared_ptr<UpdateWaiter>> waiters;
  };
  // A query waiting for a workflow task to carry it.
  struct PendingQuery {
    temporal::api::query::v1::WorkflowQuery query;
    std::shared_ptr<std::atomic<bool>> answered;
    QueryCallback done;
    absl::Time deadline;
    int64_t sent_stamp = 0;  // the workflow task that carried it, 0 before one did
  };

  // What waits on one run. Never evicted while it holds anything.
  struct RunContext {
    std::vector<std::shared_ptr<Waiter>> waiters;
    std::map<std::string, PendingUpdate> updates;  // by update id
    std::map<std::string, PendingQuery> queries;   // by query id
    bool empty() const { return waiters.empty() && updates.empty() && queries.empty(); }
  };

  // One workflow id: the lock that serializes mutations of its runs, and their contexts.
  struct WorkflowContext {
    absl::Mutex mu;
    std::map<std::string, RunContext> runs ABSL_GUARDED_BY(mu);  // stable references
    // Run contexts holding anything; the workflow context is dropped only when none remain.
    std::atomic<int> waiting{0};
    int users = 0;  // references held (ContextRef); guarded by the stripe's mutex
  };

  struct Stripe {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<WorkflowContext>> contexts ABSL_GUARDED_BY(mu);
  };

  // A reference to a workflow id's context; the context is dropped when the last reference
  // goes and nothing waits.
  class ContextRef {
   public:
    ContextRef(Stripe* stripe, std::string key, std::shared_ptr<WorkflowContext> ctx)
        : stripe_(stripe), key_(std::move(key)), ctx_(std::move(ctx)) {}
    ContextRef(const ContextRef&) = delete;
    ContextRef& operator=(const ContextRef&) = delete;
    ~ContextRef();
    WorkflowContext* get() const { return ctx_.get(); }
    WorkflowContext* operator->() const { return ctx_.get(); }

   private:
    Stripe* stripe_;
    std::string key_;
    std::shared_ptr<WorkflowContext> ctx_;
  };

  // The largest ActivityTaskScheduled event kept in memory.
  static constexpr size_t kCachedEventLimit = 16 * 1024;

  // How a mutation changes the current-run pointer and visibility.
  struct WriteOptions {
    bool create = false;
    persistence::ExecutionMutation::Current current = persistence::ExecutionMutation::Current::kNone;
    std::string previous_run_id;
    std::string request_id;  // remembered for de-duplication (kRequestIdRetention)
  };

  // How long a start's request id is remembered for de-duplication.
  static constexpr absl::Duration kRequestIdRetention = absl::Hours(24);

  // A mutation: edits the state copy and fills the effects. Returns an error to abort
  // without writing; sets *write to false when nothing changed.
  using MutationFn = std::function<absl::Status(v1::MutableState*, Effects*, bool* write)>;
  // A mutation that may close the run, and so may start its successor.
  using ChainMutationFn =
      std::function<absl::Status(const ChainContext&, v1::MutableState*, Effects*, bool* write)>;

  static std::string RunCacheKey(const v1::RunKey& run);
  // Keeps the cached run's scheduled events in step with a committed mutation.
  static void RememberScheduledEvents(CachedRun* cached, const Effects& fx, bool closed);
  std::unique_ptr<ContextRef> Context(const std::string& namespace_id,
                                      const std::string& workflow_id);
  ShardContext& ShardFor(const std::string& namespace_id, const std::string& workflow_id) const;
  // Returns the cached run, loading it if needed. kUnavailable when the shard is not ours.
  absl::StatusOr<std::shared_ptr<CachedRun>> LoadRun(WorkflowContext* ctx, ShardContext& shard,
                                                     const v1::RunKey& run)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Resolves an empty run id to the workflow id's current run.
  absl::StatusOr<std::string> ResolveRunId(const std::string& namespace_id,
                                           const std::string& workflow_id,
                                           const std::string& run_id);
  // Calls `attempt` with the run named (empty: the current one). When the current run
  // answers NotFound because it closed after it was looked up, and another run has become
  // current meanwhile (its retry, continue-as-new or cron successor), the attempt is made on
  // that one, as Temporal re-checks the current run under its lock.
  absl::Status OnRun(const std::string& namespace_id, const std::string& workflow_id,
                     const std::string& run_id,
                     const std::function<absl::Status(const std::string&)>& attempt);
  // What a mutation that may close the run needs to start its successor. Reads the run's
  // first event only when the run has a retry policy.
  // Which mutations read the run's first event for a successor: those that may retry the
  // run (it has a retry policy), or those that surely start one (continue-as-new).
  enum class ChainNeed { kNone, kIfRetryPolicy, kAlways };
  absl::StatusOr<ChainContext> ChainFor(ShardContext& shard, CachedRun* cached, ChainNeed need)
      ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Runs `fn` on the run under its workflow lock and commits what it produced.
  absl::Status UpdateRun(const v1::RunKey& run, const MutationFn& fn);
  absl::Status UpdateRunWithChain(const v1::RunKey& run, const ChainMutationFn& fn);
  absl::Status UpdateRunLocked(WorkflowContext* ctx, const v1::RunKey& run, const MutationFn& fn,
                               ChainNeed chain = ChainNeed::kNone,
                               const ChainMutationFn* chain_fn = nullptr,
                               const std::string& request_id = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Writes a new or changed state with its effects in one transaction, then updates the
  // cache, wakes waiters and hands the tasks to the queue processors. `cached` is the run's
  // cache entry (null for a new run).
  absl::Status Commit(WorkflowContext* ctx, ShardContext& shard, std::shared_ptr<CachedRun> cached,
                      v1::MutableState next, Effects fx, const WriteOptions& options,
                      int64_t expected_db_version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Wakes what waits on the run.
  void WakeWaiters(WorkflowContext* ctx, const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);

  absl::StatusOr<v1::MutableState> CreateRunLocked(
      WorkflowContext* ctx, ShardContext& shard, const std::string& namespace_id,
      const wsv1::StartWorkflowExecutionRequest& request, const std::string& run_id,
      const std::string& previous_run_id,
      const temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes* signal = nullptr,
      const ParentInfo* parent = nullptr, const std::string& scheduled_by = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Starts a run under the id policies, with the workflow id's lock held; `signal` becomes
  // its first event after WorkflowExecutionStarted; `parent` makes it a child.
  absl::StatusOr<wsv1::StartWorkflowExecutionResponse> StartLocked(
      WorkflowContext* ctx, const std::string& namespace_id,
      const wsv1::StartWorkflowExecutionRequest& request,
      const temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes* signal,
      const ParentInfo* parent = nullptr, const std::string& scheduled_by = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Terminates a run (empty run id: the current one). A non-empty `first_run_id` requires
  // the run to belong to the chain that run started; `parent` requires it to be that run's
  // child.
  absl::Status TerminateRun(const std::string& namespace_id, const std::string& workflow_id,
                            const std::string& run_id, const std::string& first_run_id,
                            const std::string& reason,
                            const temporal::api::common::v1::Payloads& details,
                            const std::string& identity,
                            const temporal::api::common::v1::WorkflowExecution* parent);
  // One event of a run's history.
  absl::StatusOr<HistoryEvent> ReadEvent(const v1::RunKey& run, int64_t event_id);

  // Child workflows (children.cc).
  // Starts the child a StartChildWorkflowExecution command asked for and records the outcome
  // on the parent (a transfer task of the parent).
  absl::Status ProcessStartChild(const v1::TransferTask& task);
  // Tells a closed child's parent how its chain ended (the child's close transfer task).
  absl::Status ProcessChildClosed(const v1::TransferTask& task);
  // Terminates or asks to cancel a closed parent's child, as its parent close policy says.
  absl::Status ApplyParentClosePolicy(const v1::RunKey& parent,
                                      const v1::ChildExecutionInfo& child);

  // Signals and cancels (messages.cc).
  // Records a signal on a run (empty run id: the current one); its request id
  // de-duplicates it. With `child_only`, the sender (the external execution) must be the
  // run's parent.
  absl::Status SignalRun(const std::string& namespace_id, const std::string& workflow_id,
                         const std::string& run_id,
                         temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes attrs,
                         bool child_only);
  // SignalRun on one resolved run.
  absl::Status SignalRunOnce(
      const std::string& namespace_id, const std::string& workflow_id, const std::string& run_id,
      const temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes& attrs,
      bool child_only);
  absl::Status CancelRun(const std::string& namespace_id, const std::string& workflow_id,
                         const std::string& run_id,
                         temporal::api::history::v1::WorkflowExecutionCancelRequestedEventAttributes attrs,
                         bool child_only, const std::string& first_run_id = "");
  // Delivers a SignalExternalWorkflowExecution or RequestCancelExternalWorkflowExecution
  // command (a transfer task) and records the outcome on the sending run.
  absl::Status ProcessExternalRequest(const v1::TransferTask& task);

  // Updates and queries (messages.cc).
  RunContext& RunContextOf(WorkflowContext* ctx, const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  void DropRunContextIfEmpty(WorkflowContext* ctx, const std::string& run_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Admits or finds an update and calls `done` when it reaches `wanted` or at `deadline`.
  void WaitForUpdate(const std::string& namespace_id, const v1::RunKey& run,
                     const std::string& update_id,
                     const temporal::api::update::v1::Request* request,
                     temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage wanted,
                     absl::Time deadline, UpdateStatusCallback done);
  // What admitting (or finding) an update led to: an error, an answer now, a completed
  // update whose outcome is read from history, or a waiter parked on it.
  struct Admission {
    absl::Status error;
    std::optional<UpdateStatus> answer;
    int64_t completed_event_id = 0;
    std::shared_ptr<UpdateWaiter> waiter;
  };
  Admission AdmitUpdateLocked(WorkflowContext* ctx, const v1::RunKey& run,
                              const std::string& update_id,
                              const temporal::api::update::v1::Request* request,
                              temporal::api::enums::v1::UpdateWorkflowExecutionLifecycleStage wanted,
                              const UpdateStatusCallback& done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Answers an admission, reading a completed outcome or parking until its deadline.
  void AwaitUpdate(Admission admission, const std::string& namespace_id, const v1::RunKey& run,
                   const std::string& update_id, absl::Time deadline, UpdateStatusCallback done);
  // Temporal's per-run update limits: in flight, and distinct updates over the run's life.
  absl::Status CheckUpdateLimits(const v1::MutableState& ms, const RunContext& rc) const;
  template <typename Response>
  static std::function<void(absl::StatusOr<UpdateStatus>)> AnswerWith(
      const v1::RunKey& run, const std::string& update_id,
      std::function<void(absl::StatusOr<Response>)> done);
  // Hands the run's pending updates and queries to the workflow task being started.
  void AttachMessages(WorkflowContext* ctx, const std::string& run_id, int64_t stamp,
                      int64_t started_event_id, wsv1::PollWorkflowTaskQueueResponse* resp)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // What a completion of the task with `stamp` needs to know of the run's updates.
  CompletionContext CompletionContextFor(WorkflowContext* ctx, const v1::RunKey& run,
                                         int64_t stamp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Moves the run's updates on after a committed mutation: what the worker accepted,
  // rejected or completed, and, when the run closed, every update still in flight.
  // When the run closed, queries waiting for a workflow task go to a worker as query tasks.
  void ResolveUpdates(WorkflowContext* ctx, const v1::RunKey& run,
                      const std::vector<UpdateResult>& results, bool closed, bool continued)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // After a completion of the task with `stamp`: answers the queries it answered, rejects
  // the updates it ignored, and returns the queries that must now go to a worker alone.
  std::vector<std::string> SettleAfterCompletion(
      WorkflowContext* ctx, const v1::RunKey& run, int64_t stamp,
      const wsv1::RespondWorkflowTaskCompletedRequest& request, bool task_pending)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ctx->mu);
  // Sends a query to a worker as a query task (sticky queue first), for a run with no
  // workflow task pending, or closed.
  void DispatchQuery(const std::string& namespace_id, const v1::RunKey& run,
                     const std::string& query_id, temporal::api::query::v1::WorkflowQuery query,
                     absl::Time deadline, QueryCallback done);
  // Re-sends queries left waiting on the run after its workflow task ended.
  void DispatchWaitingQueries(const v1::RunKey& run, const std::vector<std::string>& query_ids);
  // Reads history [first, last] into a poll response, in pages when `paged`.
  absl::Status FillHistory(int32_t shard_id, const v1::RunKey& run, int64_t first, int64_t last,
                           bool paged, wsv1::PollWorkflowTaskQueueResponse* resp);

  // History reads and long polls.
  void ReadHistory(const std::string& namespace_id,
                   const wsv1::GetWorkflowExecutionHistoryRequest& request, absl::Time deadline,
                   std::shared_ptr<HistoryCallback> done);
  // Drops a long poll whose deadline passed from its run's context.
  void RemoveWaiter(const std::string& namespace_id, const std::string& workflow_id,
                    const std::string& run_id, const std::shared_ptr<Waiter>& waiter);

  // Schedules (schedules.cc).
  // How a run a schedule started ended: its status and close event.
  struct ScheduledRunEnd {
    temporal::api::enums::v1::WorkflowExecutionStatus status =
        temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_UNSPECIFIED;
    HistoryEvent close_event;
  };
  static v1::MutableState ScheduleVisibility(const v1::ScheduleRecord& record,
                                             const scheduler::CompiledSpec* spec);
  // Writes the record (and its next wake-up and visibility row, unless deleting).
  absl::Status CommitSchedule(ShardContext& shard, v1::ScheduleRecord* record,
                              persistence::ScheduleMutation::Kind kind, absl::Time now,
                              bool retry_soon = false);
  absl::StatusOr<v1::ScheduleRecord> ReadSchedule(ShardContext& shard,
                                                  const std::string& namespace_id,
                                                  const std::string& schedule_id);
  // Runs `fn` on the schedule under its lock, then (with `step`) takes what is due, and
  // commits.
  absl::Status MutateSchedule(const std::string& namespace_id, const std::string& schedule_id,
                              const std::function<absl::Status(v1::ScheduleRecord*, absl::Time)>& fn,
                              bool step);
  // Takes the actions due: buffers them, resolves the buffer and starts, cancels or
  // terminates workflows. Sets *retry_soon when a start failed for a passing reason.
  void StepSchedule(v1::ScheduleRecord* record, absl::Time now, bool* retry_soon);
  // nullopt while the chain that `first_run_id` started is running (or its state is unknown).
  std::optional<ScheduledRunEnd> ScheduledRunEndOf(const std::string& namespace_id,
                                                   const std::string& workflow_id,
                                                   const std::string& first_run_id);
  static void RecordScheduledRunEnd(v1::ScheduleRecord* record, const std::string& workflow_id,
                                    const ScheduledRunEnd& end);
  absl::Status ProcessScheduleWake(const v1::TimerTask& task);
  // A run a schedule started closed at the end of its chain (its close transfer task).
  absl::Status ProcessScheduledRunClosed(const v1::RunKey& run, const std::string& schedule_id);

  // Queue processors (queues.cc).
  void DispatchTransfer(v1::TransferTask task);
  void ProcessTransfer(const v1::TransferTask& task);
  void ScheduleTimer(const v1::TimerTask& task);
  void ProcessTimer(const v1::TimerTask& task);
  void RetryLater(std::function<void()> fn);
  // A shard's periodic work: lease renewal, ack flushes, rescans and timer paging. Runs
  // every kTickInterval until the shard is lost or the engine stops.
  void ShardTick(int32_t shard_id);
  // Reads back a shard's pending tasks: transfer tasks above its ack level and timers in
  // its window (a full rescan), or only the timers of the window's next stretch.
  absl::Status ScanShard(ShardContext& shard, bool full);
  // Runs the tasks a committed write released.
  void RunReleased(std::vector<v1::TransferTask> transfer, std::vector<v1::TimerTask> timers);

  persistence::Stores* const stores_;
  NamespaceRegistry* const namespaces_;
  Clock* const clock_;
  DeadlineQueue* const deadlines_;
  Executor* const executor_;
  const HistoryOptions options_;
  matching::MatchingClient* matching_ = nullptr;

  static constexpr int kStripes = 64;
  Stripe stripes_[kStripes];
  std::vector<std::unique_ptr<ShardContext>> shards_;
  // Per shard: when the lease was last renewed and the queues last fully rescanned.
  struct ShardClock {
    absl::Time last_renew;
    absl::Time last_flush;
    absl::Time last_full_scan;
    absl::Time last_request_id_sweep;
  };
  std::vector<ShardClock> shard_clocks_;  // touched only by the shard's tick
  std::atomic<bool> stopping_{false};
};

}  // namespace almanac::history
