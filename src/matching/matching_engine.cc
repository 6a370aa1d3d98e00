#include "matching/matching_engine.h"

#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "spdlog/spdlog.h"

namespace almanac::matching {

namespace enums = temporal::api::enums::v1;
using persistence::TaskQueueKey;
using persistence::TaskQueueKind;

// One long poll. Whoever holds `claimed` owns the poller and must answer it or park it
// again; `expired` marks a deadline passed or a client gone while someone else owned it.
struct MatchingEngine::Poller {
  uint64_t id = 0;
  std::string namespace_id;
  std::string identity;
  std::string request_id;
  double rate_per_second = 100000;  // the worker's own limit, as DescribeTaskQueue shows it
  temporal::api::common::v1::WorkerVersionCapabilities capabilities;
  temporal::api::deployment::v1::WorkerDeploymentOptions deployment;
  bool workflow = true;
  absl::Time deadline;
  WorkflowPollCallback workflow_done;
  ActivityPollCallback activity_done;
  std::atomic<bool> claimed{true};
  std::atomic<bool> expired{false};
  std::atomic<bool> answered{false};
  DeadlineQueue::Id alarm = 0;  // the expiry alarm, cancelled once answered

  void AnswerEmpty() {
    if (answered.exchange(true)) return;
    if (workflow) {
      workflow_done(wsv1::PollWorkflowTaskQueueResponse());
    } else {
      activity_done(wsv1::PollActivityTaskQueueResponse());
    }
  }
};

// A query task: in memory only, handed to the next poller ahead of the queue's backlog.
struct MatchingEngine::QueryTask {
  std::string key;  // in queries_
  wsv1::PollWorkflowTaskQueueResponse task;
  QueryTaskCallback done;
  std::atomic<bool> finished{false};
  DeadlineQueue::Id alarm = 0;
};

struct MatchingEngine::TaskQueue {
  TaskQueueKey key;
  bool sticky = false;
  absl::Mutex mu;
  std::deque<std::shared_ptr<Poller>> pollers ABSL_GUARDED_BY(mu);  // parked, maybe expired
  std::deque<BacklogTask> backlog ABSL_GUARDED_BY(mu);              // in-memory window
  std::deque<std::shared_ptr<QueryTask>> queries ABSL_GUARDED_BY(mu);  // waiting for a poller
  bool db_has_more ABSL_GUARDED_BY(mu) = false;  // the store may hold tasks not in memory
  bool loading ABSL_GUARDED_BY(mu) = false;
  uint64_t db_only_adds ABSL_GUARDED_BY(mu) = 0;  // tasks written but not kept in memory
  int64_t max_read_task_id ABSL_GUARDED_BY(mu) = 0;
  absl::Time last_poll ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  // The workers that polled lately, by identity, for DescribeTaskQueue.
  struct SeenPoller {
    absl::Time last_access;
    double rate_per_second = 0;
    temporal::api::common::v1::WorkerVersionCapabilities capabilities;
    temporal::api::deployment::v1::WorkerDeploymentOptions deployment;
  };
  absl::flat_hash_map<std::string, SeenPoller> seen_pollers ABSL_GUARDED_BY(mu);
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  // Ids of durable backlog tasks read into memory and not yet handed out for good: the
  // lowest bounds the ack level. Every backlog task not in memory has an id above
  // max_read_task_id.
  std::set<int64_t> outstanding ABSL_GUARDED_BY(mu);
  int64_t deleted_up_to ABSL_GUARDED_BY(mu) = 0;
  bool flush_scheduled ABSL_GUARDED_BY(mu) = false;
  absl::Mutex lease_mu;  // serializes leasing, task id allocation and backlog writes
  int64_t range_id ABSL_GUARDED_BY(lease_mu) = 0;
  int64_t next_seq ABSL_GUARDED_BY(lease_mu) = 1;

  // Every backlog task up to this id is handed out or obsolete.
  int64_t AckLevel() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return outstanding.empty() ? max_read_task_id : *outstanding.begin() - 1;
  }

  // Takes the first parked poller that nobody owns yet.
  std::shared_ptr<Poller> ClaimPoller() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    while (!pollers.empty()) {
      auto p = std::move(pollers.front());
      pollers.pop_front();
      if (!p->claimed.exchange(true)) return p;
    }
    return nullptr;
  }
};

MatchingEngine::MatchingEngine(persistence::TaskQueueStore* store, history::HistoryClient* history,
                               Clock* clock, DeadlineQueue* deadlines, Executor* executor,
                               MatchingOptions options)
    : store_(store),
      history_(history),
      clock_(clock),
      deadlines_(deadlines),
      executor_(executor),
      options_(options) {}

MatchingEngine::~MatchingEngine() = default;

std::shared_ptr<MatchingEngine::TaskQueue> MatchingEngine::Queue(const TaskQueueKey& key,
                                                                 bool sticky) {
  const std::string name = absl::StrCat(key.namespace_id, "\x1f", key.name, "\x1f",
                                        static_cast<int>(key.kind));
  absl::MutexLock lock(&mu_);
  auto& q = queues_[name];
  if (!q) {
    q = std::make_shared<TaskQueue>();
    q->key = key;
    q->sticky = sticky;
    absl::MutexLock qlock(&q->mu);
    q->db_has_more = !sticky;  // a durable queue may have a backlog from before a restart
  }
  return q;
}

absl::Status MatchingEngine::AddWorkflowTask(const std::string& namespace_id,
                                             const std::string& task_queue, bool sticky,
                                             const v1::TaskQueueTask& task) {
  return AddTask({namespace_id, task_queue, TaskQueueKind::kWorkflow}, sticky, task);
}

absl::Status MatchingEngine::AddActivityTask(const std::string& namespace_id,
                                             const std::string& task_queue,
                                             const v1::TaskQueueTask& task) {
  return AddTask({namespace_id, task_queue, TaskQueueKind::kActivity}, false, task);
}

absl::Status MatchingEngine::AddTask(const TaskQueueKey& key, bool sticky,
                                     const v1::TaskQueueTask& given) {
  v1::TaskQueueTask task = given;
  if (!task.has_create_time()) {
    const absl::Time now = clock_->Now();
    task.mutable_create_time()->set_seconds(absl::ToUnixSeconds(now));
    task.mutable_create_time()->set_nanos(
        static_cast<int32_t>((now - absl::FromUnixSeconds(absl::ToUnixSeconds(now))) /
                             absl::Nanoseconds(1)));
  }
  auto q = Queue(key, sticky);
  std::shared_ptr<Poller> poller;
  {
    absl::MutexLock lock(&q->mu);
    if (sticky && (q->shut_down || (q->pollers.empty() &&
                                    clock_->Now() - q->last_poll > options_.sticky_poller_gone))) {
      return absl::FailedPreconditionError("sticky worker unavailable");
    }
    poller = q->ClaimPoller();
    if (!poller && sticky) {
      q->backlog.push_back({0, task});
      return absl::OkStatus();
    }
  }
  if (poller) {
    // Sync match: the task never touches the store, unless recording its start fails.
    absl::Status delivered = Deliver(q, std::move(poller), {0, task});
    if (delivered.ok() || sticky) return absl::OkStatus();  // a sticky task stays in memory
    // Keep it in the durable backlog below; if that fails too, history retries the task.
  }
  absl::Status st;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Held across the write on purpose: the backlog is paged in by task id, so one queue's
    // writes must commit, and join the in-memory window, in id order. It serializes backlog
    // writes of one queue (sync matches never get here); a batching writer is the way to
    // lift that.
    absl::MutexLock lease(&q->lease_mu);
    if (q->range_id == 0) {
      auto range = store_->LeaseQueue(key);
      if (!range.ok()) return range.status();
      q->range_id = *range;
      q->next_seq = 1;
    }
    const int64_t task_id = (q->range_id << 32) | q->next_seq++;
    st = store_->AddTask(key, q->range_id, task_id, task);
    if (absl::IsFailedPrecondition(st)) {
      q->range_id = 0;  // the lease moved on: take a new one
      continue;
    }
    if (!st.ok()) return st;  // the row may exist; a duplicate is dropped when handed out
    absl::MutexLock lock(&q->mu);
    if (!q->db_has_more && static_cast<int>(q->backlog.size()) < options_.backlog_window) {
      q->backlog.push_back({task_id, task});
      q->outstanding.insert(task_id);
      q->max_read_task_id = std::max(q->max_read_task_id, task_id);
    } else {
      q->db_has_more = true;
      ++q->db_only_adds;
    }
    poller = q->backlog.empty() ? nullptr : q->ClaimPoller();
    break;
  }
  if (!st.ok()) return st;
  // A poller may have parked while the task was being written.
  if (poller) executor_->Post([this, q, poller] { Serve(q, poller); });
  return absl::OkStatus();
}

uint64_t MatchingEngine::PollWorkflowTaskQueue(const std::string& namespace_id,
                                               const wsv1::PollWorkflowTaskQueueRequest& request,
                                               absl::Time deadline, WorkflowPollCallback done) {
  auto p = std::make_shared<Poller>();
  p->namespace_id = namespace_id;
  p->identity = request.identity();
  p->capabilities = request.worker_version_capabilities();
  p->deployment = request.deployment_options();
  if (p->capabilities.build_id().empty()) p->capabilities.set_build_id(p->deployment.build_id());
  p->workflow = true;
  p->deadline = deadline;
  p->workflow_done = std::move(done);
  const bool sticky = request.task_queue().kind() == enums::TASK_QUEUE_KIND_STICKY;
  return Poll({namespace_id, request.task_queue().name(), TaskQueueKind::kWorkflow}, sticky, p);
}

uint64_t MatchingEngine::PollActivityTaskQueue(const std::string& namespace_id,
                                               const wsv1::PollActivityTaskQueueRequest& request,
                                               absl::Time deadline, ActivityPollCallback done) {
  auto p = std::make_shared<Poller>();
  p->namespace_id = namespace_id;
  p->identity = request.identity();
  p->capabilities = request.worker_version_capabilities();
  p->deployment = request.deployment_options();
  if (p->capabilities.build_id().empty()) p->capabilities.set_build_id(p->deployment.build_id());
  if (request.has_task_queue_metadata() && request.task_queue_metadata().has_max_tasks_per_second()) {
    p->rate_per_second = request.task_queue_metadata().max_tasks_per_second().value();
  }
  p->workflow = false;
  p->deadline = deadline;
  p->activity_done = std::move(done);
  return Poll({namespace_id, request.task_queue().name(), TaskQueueKind::kActivity}, false, p);
}

uint64_t MatchingEngine::Poll(const TaskQueueKey& key, bool sticky, std::shared_ptr<Poller> poller) {
  auto q = Queue(key, sticky);
  {
    absl::MutexLock lock(&q->mu);
    const absl::Time now = clock_->Now();
    if (q->seen_pollers.size() >= kMaxSeenPollers) PruneSeenPollers(q.get(), now);
    if (q->seen_pollers.size() < kMaxSeenPollers) {
      q->seen_pollers[poller->identity] = {now, poller->rate_per_second, poller->capabilities,
                                           poller->deployment};
    }
  }
  poller->request_id = NewUuid();
  {
    absl::MutexLock lock(&mu_);
    poller->id = next_poll_id_++;
    polls_[poller->id] = poller;
  }
  const uint64_t id = poller->id;
  std::weak_ptr<Poller> weak = poller;
  poller->alarm = deadlines_->Schedule(poller->deadline - options_.poll_answer_margin, [weak] {
    auto p = weak.lock();
    if (!p) return;
    p->expired = true;
    if (!p->claimed.exchange(true)) p->AnswerEmpty();
  });
  // However the poll is answered, forget it then: its id and its alarm.
  const DeadlineQueue::Id alarm = poller->alarm;
  if (poller->workflow) {
    poller->workflow_done = [this, id, alarm, done = std::move(poller->workflow_done)](
                                absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse> r) {
      Forget(id, alarm);
      done(std::move(r));
    };
  } else {
    poller->activity_done = [this, id, alarm, done = std::move(poller->activity_done)](
                                absl::StatusOr<wsv1::PollActivityTaskQueueResponse> r) {
      Forget(id, alarm);
      done(std::move(r));
    };
  }
  executor_->Post([this, q, poller] { Serve(q, poller); });
  return id;
}

void MatchingEngine::Forget(uint64_t poll_id, DeadlineQueue::Id alarm) {
  deadlines_->Cancel(alarm);
  absl::MutexLock lock(&mu_);
  polls_.erase(poll_id);
}

void MatchingEngine::CancelPoll(uint64_t poll_id) {
  std::shared_ptr<Poller> p;
  {
    absl::MutexLock lock(&mu_);
    auto it = polls_.find(poll_id);
    if (it == polls_.end()) return;
    p = it->second.lock();
    polls_.erase(it);
  }
  if (!p) return;
  p->expired = true;
  if (!p->claimed.exchange(true)) p->AnswerEmpty();
}

void MatchingEngine::ShutdownWorker(const std::string& namespace_id,
                                    const std::string& sticky_queue) {
  auto q = Queue({namespace_id, sticky_queue, TaskQueueKind::kWorkflow}, true);
  std::vector<std::shared_ptr<Poller>> parked;
  {
    absl::MutexLock lock(&q->mu);
    q->shut_down = true;
    while (auto p = q->ClaimPoller()) parked.push_back(std::move(p));
  }
  for (auto& p : parked) p->AnswerEmpty();
}

void MatchingEngine::DispatchQueryTask(const std::string& namespace_id,
                                       const std::string& task_queue, bool sticky,
                                       const std::string& query_id,
                                       wsv1::PollWorkflowTaskQueueResponse task,
                                       absl::Time deadline, QueryTaskCallback done) {
  auto q = Queue({namespace_id, task_queue, TaskQueueKind::kWorkflow}, sticky);
  auto query = std::make_shared<QueryTask>();
  query->key = absl::StrCat(namespace_id, "\x1f", query_id);
  query->task = std::move(task);
  query->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    queries_[query->key] = query;
  }
  std::weak_ptr<QueryTask> weak = query;
  query->alarm = deadlines_->Schedule(deadline, [this, weak] {
    if (auto qt = weak.lock()) {
      FinishQuery(qt, absl::DeadlineExceededError("no worker answered the query in time"));
    }
  });
  std::shared_ptr<Poller> poller;
  bool unavailable = false;
  {
    absl::MutexLock lock(&q->mu);
    unavailable = sticky && (q->shut_down || (q->pollers.empty() && clock_->Now() - q->last_poll >
                                                                       options_.sticky_poller_gone));
    if (!unavailable) {
      poller = q->ClaimPoller();
      if (!poller) q->queries.push_back(query);
    }
  }
  if (unavailable) {
    FinishQuery(query, absl::FailedPreconditionError("sticky worker unavailable"));
    return;
  }
  if (poller && !poller->answered.exchange(true)) poller->workflow_done(query->task);
}

absl::Status MatchingEngine::RespondQueryTaskCompleted(
    const std::string& namespace_id, const std::string& query_id,
    const wsv1::RespondQueryTaskCompletedRequest& request) {
  std::shared_ptr<QueryTask> query;
  {
    absl::MutexLock lock(&mu_);
    auto it = queries_.find(absl::StrCat(namespace_id, "\x1f", query_id));
    if (it != queries_.end()) query = it->second;
  }
  if (!query) return absl::NotFoundError("query task not found, or already expired");
  FinishQuery(query, request);
  return absl::OkStatus();
}

void MatchingEngine::FinishQuery(const std::shared_ptr<QueryTask>& query,
                                 absl::StatusOr<wsv1::RespondQueryTaskCompletedRequest> result) {
  if (query->finished.exchange(true)) return;
  deadlines_->Cancel(query->alarm);
  {
    absl::MutexLock lock(&mu_);
    queries_.erase(query->key);
  }
  query->done(std::move(result));
}

void MatchingEngine::Serve(std::shared_ptr<TaskQueue> q, std::shared_ptr<Poller> poller) {
  for (;;) {
    BacklogTask task;
    std::shared_ptr<QueryTask> query;
    bool load = false;
    {
      absl::MutexLock lock(&q->mu);
      q->last_poll = clock_->Now();
      if (q->sticky) q->shut_down = false;
      while (!q->queries.empty() && q->queries.front()->finished) q->queries.pop_front();
      if (poller->expired || clock_->Now() >= poller->deadline - options_.poll_answer_margin) {
        // fall through to answer empty below
      } else if (!q->queries.empty()) {
        query = std::move(q->queries.front());
        q->queries.pop_front();
      } else if (!q->backlog.empty()) {
        task = std::move(q->backlog.front());
        q->backlog.pop_front();
      } else if (q->db_has_more && !q->loading) {
        q->loading = true;
        load = true;
      } else {
        poller->claimed = false;
        q->pollers.push_back(poller);
        // The deadline may have passed while we owned the poller: its alarm then skipped it.
        if (!poller->expired) return;
        if (poller->claimed.exchange(true)) return;  // someone else took it meanwhile
        q->pollers.pop_back();
      }
    }
    if (load) {
      LoadBacklog(q);
      continue;
    }
    if (query) {
      // Its caller may have given up meanwhile; the worker's answer then finds no one.
      if (!poller->answered.exchange(true)) poller->workflow_done(query->task);
      return;
    }
    if (task.task.has_run()) {
      // On failure Deliver keeps the task in memory for the next poll.
      Deliver(q, poller, std::move(task)).IgnoreError();
      return;
    }
    poller->AnswerEmpty();
    return;
  }
}

absl::Status MatchingEngine::Deliver(std::shared_ptr<TaskQueue> q,
                                     std::shared_ptr<Poller> poller, BacklogTask task) {
  history::RecordTaskStartedRequest req;
  req.namespace_id = q->key.namespace_id;
  req.task = task.task;
  req.poll_request_id = poller->request_id;
  req.identity = poller->identity;
  req.from_sticky_queue = q->sticky;
  absl::Status st;
  if (poller->workflow) {
    auto resp = history_->RecordWorkflowTaskStarted(req);
    st = resp.status();
    if (resp.ok()) {
      if (task.task_id != 0) Handled(q, task.task_id);
      if (!poller->answered.exchange(true)) poller->workflow_done(std::move(*resp));
      return absl::OkStatus();
    }
  } else {
    auto resp = history_->RecordActivityTaskStarted(req);
    st = resp.status();
    if (resp.ok()) {
      if (task.task_id != 0) Handled(q, task.task_id);
      if (!poller->answered.exchange(true)) poller->activity_done(std::move(*resp));
      return absl::OkStatus();
    }
  }
  if (absl::IsNotFound(st)) {
    // The run or task moved on: drop the task and serve the poller the next one.
    if (task.task_id != 0) Handled(q, task.task_id);
    Serve(std::move(q), std::move(poller));
    return absl::OkStatus();
  }
  spdlog::warn("recording a task as started failed, the task is kept for a later poll: {}",
               st.ToString());
  if (task.task_id != 0 || q->sticky) {
    // Back to the front of memory: a durable task, or a sticky one (never written).
    absl::MutexLock lock(&q->mu);
    q->backlog.push_front(std::move(task));
  }
  // A task of a durable queue that was never written (sync match) is kept by the caller.
  poller->AnswerEmpty();
  return st;
}

void MatchingEngine::Handled(const std::shared_ptr<TaskQueue>& q, int64_t task_id) {
  absl::MutexLock lock(&q->mu);
  q->outstanding.erase(task_id);
  if (q->flush_scheduled || q->AckLevel() <= q->deleted_up_to) return;
  q->flush_scheduled = true;
  deadlines_->Schedule(clock_->Now() + options_.ack_flush_interval,
                       [this, q] { executor_->Post([this, q] { FlushAcks(q); }); });
}

void MatchingEngine::FlushAcks(const std::shared_ptr<TaskQueue>& q) {
  int64_t ack;
  {
    absl::MutexLock lock(&q->mu);
    q->flush_scheduled = false;
    ack = q->AckLevel();
    if (ack <= q->deleted_up_to) return;
  }
  absl::Status st;
  {
    absl::MutexLock lease(&q->lease_mu);
    if (q->range_id == 0) {
      auto range = store_->LeaseQueue(q->key);
      st = range.status();
      if (range.ok()) {
        q->range_id = *range;
        q->next_seq = 1;
      }
    }
    if (st.ok()) st = store_->DeleteTasksUpTo(q->key, q->range_id, ack);
    if (absl::IsFailedPrecondition(st)) q->range_id = 0;
  }
  absl::MutexLock lock(&q->mu);
  if (st.ok()) {
    q->deleted_up_to = std::max(q->deleted_up_to, ack);
  } else {
    spdlog::warn("deleting handed-out tasks of {}: {}", q->key.name, st.ToString());
  }
  if (!q->flush_scheduled && q->AckLevel() > q->deleted_up_to) {
    // Retry a failed delete, or take what was handed out meanwhile.
    q->flush_scheduled = true;
    deadlines_->Schedule(clock_->Now() + options_.ack_flush_interval,
                         [this, q] { executor_->Post([this, q] { FlushAcks(q); }); });
  }
}

void MatchingEngine::LoadBacklog(const std::shared_ptr<TaskQueue>& q) {
  int64_t after;
  uint64_t adds_before;
  {
    absl::MutexLock lock(&q->mu);
    after = q->max_read_task_id;
    adds_before = q->db_only_adds;
  }
  auto tasks = store_->ListTasks(q->key, after, options_.backlog_window);
  absl::MutexLock lock(&q->mu);
  q->loading = false;
  if (!tasks.ok()) {
    spdlog::warn("reading the backlog of {}: {}", q->key.name, tasks.status().ToString());
    q->db_has_more = false;  // a later add sets it again; avoids a hot retry loop
    return;
  }
  for (auto& t : *tasks) {
    if (t.task_id <= q->max_read_task_id) continue;
    q->max_read_task_id = t.task_id;
    q->outstanding.insert(t.task_id);
    q->backlog.push_back({t.task_id, std::move(t.task)});
  }
  if (static_cast<int>(tasks->size()) < options_.backlog_window && q->db_only_adds == adds_before) {
    q->db_has_more = false;
  }
}

absl::StatusOr<MatchingClient::QueueDescription> MatchingEngine::DescribeTaskQueue(
    const std::string& namespace_id, const std::string& task_queue, bool activity) {
  const TaskQueueKey key{namespace_id, task_queue,
                         activity ? TaskQueueKind::kActivity : TaskQueueKind::kWorkflow};
  auto q = Queue(key, /*sticky=*/false);
  QueueDescription out;
  int64_t read_level;
  bool db_has_more;
  {
    absl::MutexLock lock(&q->mu);
    const absl::Time now = clock_->Now();
    PruneSeenPollers(q.get(), now);
    for (const auto& [identity, seen] : q->seen_pollers) {
      temporal::api::taskqueue::v1::PollerInfo info;
      info.set_identity(identity);
      const absl::Time t = seen.last_access;
      info.mutable_last_access_time()->set_seconds(absl::ToUnixSeconds(t));
      info.mutable_last_access_time()->set_nanos(static_cast<int32_t>(
          (t - absl::FromUnixSeconds(absl::ToUnixSeconds(t))) / absl::Nanoseconds(1)));
      info.set_rate_per_second(seen.rate_per_second);
      if (seen.capabilities.ByteSizeLong() > 0) {
        *info.mutable_worker_version_capabilities() = seen.capabilities;
      }
      if (seen.deployment.worker_versioning_mode() ==
          temporal::api::enums::v1::WORKER_VERSIONING_MODE_VERSIONED) {
        *info.mutable_deployment_options() = seen.deployment;
      }
      out.pollers.push_back(std::move(info));
    }
    for (const BacklogTask& t : q->backlog) {
      if (t.task_id != 0) ++out.backlog_count;
    }
    if (!q->backlog.empty() && q->backlog.front().task.has_create_time()) {
      const auto& c = q->backlog.front().task.create_time();
      out.backlog_age = std::max(absl::ZeroDuration(),
                                 now - (absl::FromUnixSeconds(c.seconds()) + absl::Nanoseconds(c.nanos())));
    }
    read_level = q->max_read_task_id;
    db_has_more = q->db_has_more;
    out.read_level = read_level;
    out.ack_level = q->AckLevel();
  }
  std::sort(out.pollers.begin(), out.pollers.end(), [](const auto& a, const auto& b) {
    return a.last_access_time().seconds() != b.last_access_time().seconds()
               ? a.last_access_time().seconds() > b.last_access_time().seconds()
               : a.last_access_time().nanos() > b.last_access_time().nanos();
  });
  if (db_has_more) {
    // Tasks written beyond the in-memory window: counted in the store, and the oldest read
    // from it when none is in memory.
    auto more = store_->CountTasks(key, read_level);
    if (!more.ok()) return more.status();
    if (out.backlog_count == 0 && *more > 0) {
      auto first = store_->ListTasks(key, read_level, 1);
      if (!first.ok()) return first.status();
      if (!first->empty() && first->front().task.has_create_time()) {
        const auto& c = first->front().task.create_time();
        out.backlog_age = std::max(absl::ZeroDuration(),
                                   clock_->Now() - (absl::FromUnixSeconds(c.seconds()) +
                                                    absl::Nanoseconds(c.nanos())));
      }
    }
    out.backlog_count += *more;
  }
  return out;
}

void MatchingEngine::PruneSeenPollers(TaskQueue* q, absl::Time now) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  absl::erase_if(q->seen_pollers,
                 [&](const auto& entry) { return now - entry.second.last_access > kSeenPollerTtl; });
}

}  // namespace almanac::matching
