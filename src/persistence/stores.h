#pragma once

// The typed stores over which every role persists its data. Each is an interface with one SQL
// implementation (sql/sql_stores.cc) over a SqlDriver, so the same code runs on SQLite and
// PostgreSQL; one conformance suite (store_conformance_test.cc) runs against both.
// Every store is thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "persistence/driver.h"
#include "persistence/visibility_query.h"
#include "temporal/api/history/v1/message.pb.h"
#include "temporal/api/workflow/v1/message.pb.h"

namespace almanac::persistence {

class ClusterMetadataStore {
 public:
  struct Metadata {
    std::string cluster_id;
    int num_shards = 0;
  };
  virtual ~ClusterMetadataStore() = default;
  // Returns the stored metadata, creating it with `defaults` on first use. The shard count
  // is fixed when the store is created: later calls return the stored one.
  virtual absl::StatusOr<Metadata> GetOrCreate(const Metadata& defaults) = 0;
};

class NamespaceStore {
 public:
  virtual ~NamespaceStore() = default;
  // Fails with kAlreadyExists when the name or id is taken.
  virtual absl::Status Create(const v1::NamespaceRecord& record) = 0;
  // Fails with kNotFound when absent.
  virtual absl::StatusOr<v1::NamespaceRecord> GetByName(const std::string& name) = 0;
  virtual absl::StatusOr<v1::NamespaceRecord> GetById(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<v1::NamespaceRecord>> List() = 0;
  // Replaces the record with the same id. Fails with kNotFound when absent.
  virtual absl::Status Update(const v1::NamespaceRecord& record) = 0;
};

// A position in a shard's timer queue: timer tasks are ordered by (visibility time, task id).
struct TimerKey {
  int64_t time_micros = 0;
  int64_t task_id = 0;
  friend bool operator<(const TimerKey& a, const TimerKey& b) {
    return a.time_micros != b.time_micros ? a.time_micros < b.time_micros : a.task_id < b.task_id;
  }
  friend bool operator==(const TimerKey& a, const TimerKey& b) {
    return a.time_micros == b.time_micros && a.task_id == b.task_id;
  }
  friend bool operator<=(const TimerKey& a, const TimerKey& b) { return !(b < a); }
};

// A shard's lease and where its queue processors left off.
struct ShardInfo {
  int64_t range_id = 0;
  int64_t transfer_ack_level = 0;  // every transfer task with an id up to this one is done
  TimerKey timer_ack_level;        // every timer task up to this position is done
};

class ShardStore {
 public:
  virtual ~ShardStore() = default;
  // Takes ownership of a shard from whoever held it: increments its range_id, records
  // `owner`, and returns the lease with the persisted ack levels, creating the row if needed.
  // Writes fenced by an older range_id fail from then on.
  virtual absl::StatusOr<ShardInfo> AcquireShard(int32_t shard_id, const std::string& owner) = 0;
  // Confirms the lease at `now`. kFailedPrecondition when the range_id moved on: another
  // node took the shard.
  virtual absl::Status RenewShard(int32_t shard_id, int64_t range_id, const std::string& owner,
                                  absl::Time now) = 0;
  // Moves a lease to the next range_id (when its task-id sequence is used up) and returns
  // it. kFailedPrecondition when the range_id is no longer `range_id`.
  virtual absl::StatusOr<int64_t> RenewRange(int32_t shard_id, int64_t range_id) = 0;
};

// The current run of a workflow id.
struct CurrentRun {
  std::string run_id;
  std::string create_request_id;
  int32_t status = 0;  // temporal.api.enums.v1.WorkflowExecutionStatus
};

// A request id applied to a run, kept for de-duplication until it expires.
struct RequestIdRecord {
  std::string request_id;
  std::string run_id;
  absl::Time expire_at;
};

// Everything one mutation of one run writes, in one transaction.
struct ExecutionMutation {
  int32_t shard_id = 0;
  int64_t range_id = 0;  // the shard lease the writer holds; a newer one fails the write
  const v1::MutableState* state = nullptr;  // state.db_version is the version to write
  // The run's state as the store holds it (what the writer read, at expected_db_version).
  // The pending items (activities, timers, buffered events) are written as the difference
  // from it: only the rows that changed. Null, or a state stored before schema version 4
  // (storage_format 0): every item is written.
  const v1::MutableState* base = nullptr;
  bool create = false;                      // a new run: no row may exist yet
  int64_t expected_db_version = 0;          // for an update: the version read
  // The new events, dense and in order; empty when the mutation writes none.
  std::vector<const temporal::api::history::v1::HistoryEvent*> events;
  // Ids of events among `events` (not the first) that begin a batch of their own; empty:
  // the events are one batch. A reset run keeps its base run's batches this way.
  std::vector<int64_t> batch_starts;
  std::vector<v1::TransferTask> transfer_tasks;
  std::vector<v1::TimerTask> timer_tasks;

  // How the workflow id's current-run pointer changes.
  // A run that succeeds this one in its chain (a retry; later continue-as-new and cron),
  // created in the same transaction. It becomes the current run (`current` must be kUpdate).
  const v1::MutableState* new_run_state = nullptr;
  std::vector<const temporal::api::history::v1::HistoryEvent*> new_run_events;

  enum class Current {
    kNone,    // unchanged
    kUpdate,  // this run is current: update its status (or hand over to new_run_state)
    kCreate,  // this run becomes current; replaces `previous_run_id` (empty: no current row)
  };
  Current current = Current::kNone;
  std::string previous_run_id;
  bool write_visibility = false;
  // Request ids to remember for the workflow id, until they expire.
  std::vector<RequestIdRecord> request_ids;
};

class ExecutionStore {
 public:
  virtual ~ExecutionStore() = default;

  // Applies a mutation atomically. Fails, writing nothing, with:
  //  kFailedPrecondition when the shard's range_id moved on (this node lost the shard);
  //  kAborted when the run's db_version is not `expected_db_version` (stale cache);
  //  kAlreadyExists when creating a run whose id exists, or when the current-run pointer
  //  is not `previous_run_id`.
  virtual absl::Status Apply(const ExecutionMutation& mutation) = 0;

  // Fails with kNotFound when the workflow id has no run.
  virtual absl::StatusOr<CurrentRun> GetCurrentRun(int32_t shard_id,
                                                   const std::string& namespace_id,
                                                   const std::string& workflow_id) = 0;
  // The run a request id was applied to, if it is remembered and not expired.
  virtual absl::StatusOr<std::optional<std::string>> FindRequestId(
      int32_t shard_id, const std::string& namespace_id, const std::string& workflow_id,
      const std::string& request_id, absl::Time now) = 0;
  // Forgets the shard's request ids that expired before `now`. Fenced like Apply.
  virtual absl::Status DeleteExpiredRequestIds(int32_t shard_id, int64_t range_id,
                                               absl::Time now) = 0;

  // Fails with kNotFound when the run does not exist. Heartbeats recorded since the state
  // was last written are merged into its activities.
  virtual absl::StatusOr<v1::MutableState> GetMutableState(int32_t shard_id,
                                                           const v1::RunKey& run) = 0;

  // Records an activity's latest heartbeat durably, without rewriting the run's state.
  // Rows of a run are deleted when the run closes. Fenced like Apply: kFailedPrecondition
  // when the shard's range_id moved on.
  virtual absl::Status RecordHeartbeat(int32_t shard_id, int64_t range_id, const v1::RunKey& run,
                                       int64_t scheduled_event_id, absl::Time time,
                                       const temporal::api::common::v1::Payloads& details) = 0;
  // Appends to `out` the run's events with ids in [first_event_id, next_event_id), in order,
  // at most `max_events` (0: no limit). Reads only the event batches it needs: the cost of a
  // page does not grow with the history's length.
  // The first event ids of the run's event batches (the events written together) that
  // start in [first_event_id, next_event_id), in order.
  virtual absl::StatusOr<std::vector<int64_t>> ListHistoryBatchStarts(
      int32_t shard_id, const v1::RunKey& run, int64_t first_event_id,
      int64_t next_event_id) = 0;
  virtual absl::Status ReadHistory(int32_t shard_id, const v1::RunKey& run,
                                   int64_t first_event_id, int64_t next_event_id,
                                   int max_events,
                                   temporal::api::history::v1::History* out) = 0;

  // Transfer tasks of a shard with task_id > after, in order.
  virtual absl::StatusOr<std::vector<v1::TransferTask>> ListTransferTasks(int32_t shard_id,
                                                                          int64_t after,
                                                                          int limit) = 0;
  // Records the shard's ack levels and deletes every task at or below them, in one
  // transaction fenced by `range_id` (kFailedPrecondition when it moved on).
  virtual absl::Status CompleteTasks(int32_t shard_id, int64_t range_id,
                                     int64_t transfer_ack_level, TimerKey timer_ack_level) = 0;
  // Timer tasks of a shard due before `until`, after (time, task_id) `after`, in order.
  virtual absl::StatusOr<std::vector<v1::TimerTask>> ListTimerTasks(
      int32_t shard_id, absl::Time after_time, int64_t after_task_id, absl::Time until,
      int limit) = 0;
};

enum class TaskQueueKind : int32_t { kWorkflow = 1, kActivity = 2 };

struct TaskQueueKey {
  std::string namespace_id;
  std::string name;
  TaskQueueKind kind = TaskQueueKind::kWorkflow;
};

// The durable backlog of task queues.
class TaskQueueStore {
 public:
  struct StoredTask {
    int64_t task_id = 0;
    v1::TaskQueueTask task;
  };
  virtual ~TaskQueueStore() = default;
  // Leases a task queue: increments and returns its range_id, creating the row if needed.
  virtual absl::StatusOr<int64_t> LeaseQueue(const TaskQueueKey& queue) = 0;
  // Adds a task, fenced by the lease; kFailedPrecondition when the lease moved on.
  virtual absl::Status AddTask(const TaskQueueKey& queue, int64_t range_id, int64_t task_id,
                               const v1::TaskQueueTask& task) = 0;
  // Tasks with task_id > after, in order.
  virtual absl::StatusOr<std::vector<StoredTask>> ListTasks(const TaskQueueKey& queue,
                                                           int64_t after, int limit) = 0;
  // How many tasks have task_id > after.
  virtual absl::StatusOr<int64_t> CountTasks(const TaskQueueKey& queue, int64_t after) = 0;
  // Deletes every task with task_id <= `ack_level`, fenced by the lease (kFailedPrecondition
  // when it moved on).
  virtual absl::Status DeleteTasksUpTo(const TaskQueueKey& queue, int64_t range_id,
                                       int64_t ack_level) = 0;
};

// Visibility: one row per run with its built-in attributes, memo and search attributes, which
// ExecutionStore::Apply writes in the mutation's transaction (write_visibility), and an index
// of the search attributes. Read with the list filter compiled by CompileVisibilityQuery for
// dialect(), with first_placeholder = kFirstQueryPlaceholder.
class VisibilityStore {
 public:
  static constexpr int kFirstQueryPlaceholder = 2;  // $1 is the namespace id

  struct Page {
    std::vector<temporal::api::workflow::v1::WorkflowExecutionInfo> executions;
    std::string next_page_token;  // empty on the last page
  };
  struct Count {
    int64_t count = 0;
    // With GROUP BY ExecutionStatus: each status present, with its count, by status.
    std::vector<std::pair<int32_t, int64_t>> groups;
  };

  virtual ~VisibilityStore() = default;
  virtual Dialect dialect() const = 0;
  // The namespace's runs that match `query`, in its order, at most page_size of them, after
  // the page that returned `page_token`. kInvalidArgument for a token that is not one of
  // this query's.
  virtual absl::StatusOr<Page> List(const std::string& namespace_id,
                                    const CompiledVisibilityQuery& query, int page_size,
                                    const std::string& page_token) = 0;
  virtual absl::StatusOr<Count> CountRuns(const std::string& namespace_id,
                                          const CompiledVisibilityQuery& query) = 0;
};

// Schedules: one record per schedule, owned by a history shard, written with the shard's
// timer tasks (its wake-ups) and its visibility row in one transaction.
struct ScheduleMutation {
  int32_t shard_id = 0;
  int64_t range_id = 0;  // the shard lease the writer holds; a newer one fails the write
  enum class Kind { kCreate, kUpdate, kDelete };
  Kind kind = Kind::kUpdate;
  // The record to write; record->db_version is the version written. For kDelete, the record
  // being deleted (its keys and run id).
  const v1::ScheduleRecord* record = nullptr;
  int64_t expected_db_version = 0;  // kUpdate and kDelete: the version read
  std::vector<v1::TimerTask> timer_tasks;
  // kCreate and kUpdate: the schedule's visibility row, written as a run's (null: unchanged).
  const v1::MutableState* visibility = nullptr;
  // kUpdate: delete the record's visibility row instead (a deleted schedule's).
  bool delete_visibility = false;
};

class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;
  // Applies a mutation atomically. Fails, writing nothing, with kFailedPrecondition when the
  // shard's range_id moved on; kAlreadyExists when creating a schedule whose id exists;
  // kAborted when the stored db_version is not the expected one (or the row is gone).
  virtual absl::Status Apply(const ScheduleMutation& mutation) = 0;
  // kNotFound when absent.
  virtual absl::StatusOr<v1::ScheduleRecord> Get(int32_t shard_id, const std::string& namespace_id,
                                                 const std::string& schedule_id) = 0;
};

// All the stores over one database.
struct Stores {
  std::unique_ptr<SqlDriver> driver;
  std::unique_ptr<ClusterMetadataStore> cluster;
  std::unique_ptr<NamespaceStore> namespaces;
  std::unique_ptr<ShardStore> shards;
  std::unique_ptr<ExecutionStore> executions;
  std::unique_ptr<TaskQueueStore> task_queues;
  std::unique_ptr<VisibilityStore> visibility;
  std::unique_ptr<ScheduleStore> schedules;
};

// Builds the SQL stores over `driver` (which they then own). The schema must be current.
std::unique_ptr<Stores> NewSqlStores(std::unique_ptr<SqlDriver> driver);

// Timestamps are stored as microseconds since the Unix epoch.
int64_t ToMicros(absl::Time t);
absl::Time FromMicros(int64_t micros);

}  // namespace almanac::persistence
