#include "absl/strings/string_view.h"
#include "common/custom_search_attributes.h"
#include "persistence/search_attributes.h"
#include "history/history_engine.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_details.h"
#include "history/start_policy.h"
#include "spdlog/spdlog.h"

namespace almanac::history {

namespace enums = temporal::api::enums::v1;
using persistence::ExecutionMutation;

namespace {

// Whether events change what visibility shows of a run beyond its start and close: its
// search attributes or memo.
bool ChangesVisibility(const std::vector<HistoryEvent>& events) {
  for (const HistoryEvent& e : events) {
    if (e.event_type() == enums::EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES ||
        e.event_type() == enums::EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED) {
      return true;
    }
  }
  return false;
}

// FNV-1a: a hash that never changes between builds, since shard ids are persisted.
uint64_t StableHash(absl::string_view a, absl::string_view b) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](absl::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(a);
  mix(absl::string_view("\0", 1));
  mix(b);
  return h;
}

v1::RunKey RunOfToken(const v1::TaskToken& token) {
  return MakeRunKey(token.namespace_id(), token.workflow_id(), token.run_id());
}

}  // namespace

HistoryEngine::HistoryEngine(persistence::Stores* stores, NamespaceRegistry* namespaces,
                             Clock* clock, DeadlineQueue* deadlines, Executor* executor,
                             HistoryOptions options)
    : stores_(stores),
      namespaces_(namespaces),
      clock_(clock),
      deadlines_(deadlines),
      executor_(executor),
      options_(std::move(options)) {}

HistoryEngine::~HistoryEngine() { Stop(); }

int32_t HistoryEngine::ShardOf(const std::string& namespace_id,
                               const std::string& workflow_id) const {
  return static_cast<int32_t>(StableHash(namespace_id, workflow_id) %
                              static_cast<uint64_t>(options_.num_shards));
}

HistoryEngine::ContextRef::~ContextRef() {
  absl::MutexLock lock(&stripe_->mu);
  if (--ctx_->users > 0 || ctx_->waiting.load() > 0) return;
  auto it = stripe_->contexts.find(key_);
  if (it != stripe_->contexts.end() && it->second == ctx_) stripe_->contexts.erase(it);
}

std::unique_ptr<HistoryEngine::ContextRef> HistoryEngine::Context(const std::string& namespace_id,
                                                                  const std::string& workflow_id) {
  const uint64_t h = StableHash(namespace_id, workflow_id);
  Stripe& stripe = stripes_[h % kStripes];
  std::string key = absl::StrCat(namespace_id, "/", workflow_id);
  absl::MutexLock lock(&stripe.mu);
  auto& ctx = stripe.contexts[key];
  if (!ctx) ctx = std::make_shared<WorkflowContext>();
  ++ctx->users;
  return std::make_unique<ContextRef>(&stripe, std::move(key), ctx);
}

ShardContext& HistoryEngine::ShardFor(const std::string& namespace_id,
                                      const std::string& workflow_id) const {
  return *shards_.at(ShardOf(namespace_id, workflow_id));
}

std::string HistoryEngine::RunCacheKey(const v1::RunKey& run) {
  return absl::StrCat(run.namespace_id(), "\x1f", run.workflow_id(), "\x1f", run.run_id());
}

absl::StatusOr<std::shared_ptr<CachedRun>> HistoryEngine::LoadRun(WorkflowContext* ctx,
                                                                  ShardContext& shard,
                                                                  const v1::RunKey& run) {
  if (!shard.owned()) return shard.NotOwnedError();
  const std::string key = RunCacheKey(run);
  if (auto cached = shard.cache().Get(key)) return cached;
  auto loaded = stores_->executions->GetMutableState(shard.id(), run);
  if (!loaded.ok()) {
    if (absl::IsNotFound(loaded.status())) {
      return WorkflowNotFound(absl::StrCat("workflow execution not found for workflow ID \"",
                                           run.workflow_id(), "\" and run ID \"", run.run_id(),
                                           "\""));
    }
    return loaded.status();
  }
  auto cached = std::make_shared<CachedRun>();
  cached->state = std::move(*loaded);
  shard.cache().Put(key, cached);
  return cached;
}

absl::StatusOr<std::string> HistoryEngine::ResolveRunId(const std::string& namespace_id,
                                                        const std::string& workflow_id,
                                                        const std::string& run_id) {
  if (!run_id.empty()) return run_id;
  ShardContext& shard = ShardFor(namespace_id, workflow_id);
  if (!shard.owned()) return shard.NotOwnedError();
  auto current = stores_->executions->GetCurrentRun(shard.id(), namespace_id, workflow_id);
  if (absl::IsNotFound(current.status())) {
    return WorkflowNotFound(absl::StrCat("workflow not found for ID: ", workflow_id));
  }
  if (!current.ok()) return current.status();
  return current->run_id;
}

absl::Status HistoryEngine::OnRun(const std::string& namespace_id, const std::string& workflow_id,
                                  const std::string& run_id,
                                  const std::function<absl::Status(const std::string&)>& attempt) {
  if (!run_id.empty()) return attempt(run_id);
  auto current = ResolveRunId(namespace_id, workflow_id, "");
  if (!current.ok()) return current.status();
  constexpr int kFollows = 8;  // a chain that moves on faster than this is left to the caller
  for (int i = 0;; ++i) {
    absl::Status st = attempt(*current);
    if (!absl::IsNotFound(st) || i == kFollows) return st;
    auto now_current = ResolveRunId(namespace_id, workflow_id, "");
    if (!now_current.ok() || *now_current == *current) return st;
    current = std::move(now_current);
  }
}

absl::Status HistoryEngine::UpdateRun(const v1::RunKey& run, const MutationFn& fn) {
  auto ctx = Context(run.namespace_id(), run.workflow_id());
  absl::MutexLock lock(&(*ctx)->mu);
  return UpdateRunLocked(ctx->get(), run, fn);
}

absl::StatusOr<ChainContext> HistoryEngine::ChainFor(ShardContext& shard, CachedRun* cached,
                                                     ChainNeed need) {
  ChainContext chain;
  const v1::MutableState& ms = cached->state;
  if (need == ChainNeed::kIfRetryPolicy && !ms.execution().has_retry_policy() &&
      ms.execution().cron_schedule().empty()) {
    return chain;
  }
  if (!cached->started_event) {
    temporal::api::history::v1::History first;
    const v1::RunKey run =
        MakeRunKey(ms.execution().namespace_id(), ms.execution().workflow_id(), ms.execution().run_id());
    absl::Status st = stores_->executions->ReadHistory(shard.id(), run, 1, 2, 1, &first);
    if (!st.ok()) return st;
    if (first.events_size() != 1) return absl::DataLossError("the run's first event is missing");
    cached->started_event = std::make_unique<HistoryEvent>(std::move(*first.mutable_events(0)));
  }
  chain.started_event = cached->started_event.get();
  chain.next_run_id = NewUuid();
  return chain;
}

absl::Status HistoryEngine::UpdateRunWithChain(const v1::RunKey& run, const ChainMutationFn& fn) {
  auto ctx = Context(run.namespace_id(), run.workflow_id());
  absl::MutexLock lock(&(*ctx)->mu);
  return UpdateRunLocked(ctx->get(), run, nullptr, ChainNeed::kIfRetryPolicy, &fn);
}

absl::Status HistoryEngine::UpdateRunLocked(WorkflowContext* ctx, const v1::RunKey& run,
                                            const MutationFn& fn, ChainNeed chain_need,
                                            const ChainMutationFn* chain_fn,
                                            const std::string& request_id) {
  ShardContext& shard = ShardFor(run.namespace_id(), run.workflow_id());
  constexpr int kAttempts = 4;
  absl::Status st;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto cached = LoadRun(ctx, shard, run);
    if (!cached.ok()) return cached.status();
    const v1::MutableState& current = (*cached)->state;
    v1::MutableState next = current;
    const int64_t version = next.db_version();
    Effects fx;
    bool write = true;
    if (chain_need != ChainNeed::kNone) {
      auto chain = ChainFor(shard, cached->get(), chain_need);
      if (!chain.ok()) return chain.status();
      st = (*chain_fn)(*chain, &next, &fx, &write);
    } else {
      st = fn(&next, &fx, &write);
    }
    if (!st.ok() || !write) return st;
    if (!fx.events.empty()) {
      const bool was_over_warn = HistoryOverWarnLimits(options_.limits, current);
      if (EnforceHistoryLimits(options_.limits, clock_->Now(), &next, &fx)) {
        spdlog::warn("terminated {}/{}: its history passed the limits ({} events, {} bytes)",
                     run.workflow_id(), run.run_id(), next.next_event_id() - 1,
                     next.execution().history_size_bytes());
      } else if (!was_over_warn && HistoryOverWarnLimits(options_.limits, next)) {
        spdlog::warn("history of {}/{} passed the warning limits ({} events, {} bytes)",
                     run.workflow_id(), run.run_id(), next.next_event_id() - 1,
                     next.execution().history_size_bytes());
      }
    }
    WriteOptions options;
    if (fx.closed) options.current = ExecutionMutation::Current::kUpdate;
    options.request_id = request_id;
    st = Commit(ctx, shard, *cached, std::move(next), std::move(fx), options, version);
    if (!absl::IsAborted(st)) return st;
    // Another writer moved the run on: Commit dropped the cached copy; reload and retry.
  }
  return absl::UnavailableError(absl::StrCat("workflow state kept changing: ", st.message()));
}

absl::Status HistoryEngine::Commit(WorkflowContext* ctx, ShardContext& shard,
                                   std::shared_ptr<CachedRun> cached, v1::MutableState next,
                                   Effects fx, const WriteOptions& options,
                                   int64_t expected_db_version) {
  next.set_db_version(expected_db_version + 1);
  next.set_storage_format(1);
  absl::Status st = shard.AssignTaskIds(&fx.transfer_tasks, &fx.timer_tasks);
  if (!st.ok()) return st;
  ExecutionMutation m;
  m.shard_id = shard.id();
  m.state = &next;
  m.base = cached ? &cached->state : nullptr;  // what the store holds: write only the changes
  m.create = options.create;
  m.expected_db_version = expected_db_version;
  m.events.reserve(fx.events.size());
  for (const auto& e : fx.events) m.events.push_back(&e);
  m.batch_starts = fx.batch_starts;
  m.transfer_tasks = fx.transfer_tasks;
  m.timer_tasks = fx.timer_tasks;
  m.current = options.current;
  m.previous_run_id = options.previous_run_id;
  m.write_visibility = options.create || fx.closed || ChangesVisibility(fx.events);
  if (!options.request_id.empty()) {
    m.request_ids.push_back({options.request_id, next.execution().run_id(),
                             clock_->Now() + kRequestIdRetention});
  }
  if (fx.new_run.has_value()) {
    fx.new_run->state.set_db_version(1);
    fx.new_run->state.set_storage_format(1);
    m.new_run_state = &fx.new_run->state;
    for (const auto& e : fx.new_run->events) m.new_run_events.push_back(&e);
  }
  const std::string run_id = next.execution().run_id();
  const std::string next_ns = next.execution().namespace_id();
  const std::string next_wid = next.execution().workflow_id();
  const std::string key = RunCacheKey(MakeRunKey(next_ns, next_wid, run_id));
  st = shard.Fenced([&](int64_t range_id) {
    m.range_id = range_id;
    return stores_->executions->Apply(m);
  });
  // A write refused because the shard is no longer ours certainly wrote nothing.
  const ShardContext::Outcome outcome =
      shard.owned() ? ShardContext::OutcomeOf(st) : ShardContext::Outcome::kNotCommitted;
  std::vector<v1::TransferTask> run_transfer;
  std::vector<v1::TimerTask> run_timers;
  shard.Resolve(outcome, fx.transfer_tasks, fx.timer_tasks, &run_transfer, &run_timers);
  if (!st.ok()) {
    // Read the run afresh next time: the store may hold this write or not.
    shard.cache().Erase(key);
    if (outcome == ShardContext::Outcome::kUnknown) {
      return absl::UnavailableError(
          absl::StrCat("the outcome of the write is unknown, retry: ", st.message()));
    }
    return st;
  }
  const bool wake = !fx.events.empty() || fx.closed;
  if (!cached) cached = std::make_shared<CachedRun>();
  RememberScheduledEvents(cached.get(), fx, !IsRunning(next));
  cached->state = std::move(next);
  shard.cache().Put(key, std::move(cached));
  if (fx.new_run.has_value()) {
    const auto& info = fx.new_run->state.execution();
    auto successor = std::make_shared<CachedRun>();
    successor->state = std::move(fx.new_run->state);
    shard.cache().Put(RunCacheKey(MakeRunKey(info.namespace_id(), info.workflow_id(), info.run_id())),
                      std::move(successor));
  }
  if (wake) WakeWaiters(ctx, run_id);
  if (!fx.updates.empty() || fx.closed) {
    ResolveUpdates(ctx, MakeRunKey(next_ns, next_wid, run_id), fx.updates, fx.closed,
                   fx.new_run.has_value());
  }
  RunReleased(std::move(run_transfer), std::move(run_timers));
  return absl::OkStatus();
}

void HistoryEngine::WakeWaiters(WorkflowContext* ctx, const std::string& run_id) {
  auto it = ctx->runs.find(run_id);
  if (it == ctx->runs.end()) return;
  for (auto& w : it->second.waiters) {
    if (!w->fired.exchange(true)) executor_->Post(w->wake);
  }
  it->second.waiters.clear();
  DropRunContextIfEmpty(ctx, run_id);
}

void HistoryEngine::RememberScheduledEvents(CachedRun* cached, const Effects& fx, bool closed) {
  if (closed) {
    cached->scheduled_events.clear();
    cached->started_event.reset();
    return;
  }
  for (const HistoryEvent& e : fx.events) {
    int64_t done = 0;
    switch (e.event_type()) {
      case enums::EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        if (e.ByteSizeLong() <= kCachedEventLimit) cached->scheduled_events[e.event_id()] = e;
        continue;
      case enums::EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        done = e.activity_task_completed_event_attributes().scheduled_event_id();
        break;
      case enums::EVENT_TYPE_ACTIVITY_TASK_FAILED:
        done = e.activity_task_failed_event_attributes().scheduled_event_id();
        break;
      case enums::EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        done = e.activity_task_timed_out_event_attributes().scheduled_event_id();
        break;
      case enums::EVENT_TYPE_ACTIVITY_TASK_CANCELED:
        done = e.activity_task_canceled_event_attributes().scheduled_event_id();
        break;
      default:
        continue;
    }
    cached->scheduled_events.erase(done);
  }
}

absl::StatusOr<v1::MutableState> HistoryEngine::CreateRunLocked(
    WorkflowContext* ctx, ShardContext& shard, const std::string& namespace_id,
    const wsv1::StartWorkflowExecutionRequest& request, const std::string& run_id,
    const std::string& previous_run_id,
    const temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes* signal,
    const ParentInfo* parent, const std::string& scheduled_by) {
  v1::MutableState ms;
  Effects fx;
  StartParams params;
  params.namespace_id = namespace_id;
  params.run_id = run_id;
  params.now = clock_->Now();
  params.signal = signal;
  params.parent = parent;
  params.scheduled_by = scheduled_by;
  StartWorkflow(request, params, options_.limits, &ms, &fx);
  WriteOptions options;
  options.create = true;
  options.current = ExecutionMutation::Current::kCreate;
  options.previous_run_id = previous_run_id;
  options.request_id = request.request_id();
  v1::MutableState copy = ms;
  absl::Status st = Commit(ctx, shard, nullptr, std::move(ms), std::move(fx), options, 0);
  if (!st.ok()) return st;
  return copy;
}

absl::StatusOr<wsv1::StartWorkflowExecutionResponse> HistoryEngine::StartWorkflowExecution(
    const std::string& namespace_id, const wsv1::StartWorkflowExecutionRequest& request) {
  auto ctx = Context(namespace_id, request.workflow_id());
  absl::MutexLock lock(&(*ctx)->mu);
  return StartLocked(ctx->get(), namespace_id, request, nullptr);
}

absl::StatusOr<wsv1::StartWorkflowExecutionResponse> HistoryEngine::StartLocked(
    WorkflowContext* ctx, const std::string& namespace_id,
    const wsv1::StartWorkflowExecutionRequest& given,
    const temporal::api::history::v1::WorkflowExecutionSignaledEventAttributes* signal,
    const ParentInfo* parent, const std::string& scheduled_by) {
  // Search attributes are checked against the namespace and stored with their types.
  std::optional<wsv1::StartWorkflowExecutionRequest> typed;
  if (!given.search_attributes().indexed_fields().empty()) {
    auto ns = namespaces_->GetById(namespace_id);
    if (!ns.ok()) return ns.status();
    typed = given;
    absl::Status valid = persistence::ValidateSearchAttributes(
        SearchAttributeSchemaOf(*ns), ns->info().name(), {}, typed->mutable_search_attributes());
    if (valid.ok()) valid = persistence::CheckSearchAttributeSizes({}, given.search_attributes());
    if (!valid.ok()) return valid;
  }
  const wsv1::StartWorkflowExecutionRequest& request = typed.has_value() ? *typed : given;
  const std::string& wid = request.workflow_id();
  ShardContext& shard = ShardFor(namespace_id, wid);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!shard.owned()) return shard.NotOwnedError();
    std::optional<ExistingRun> existing;
    auto current = stores_->executions->GetCurrentRun(shard.id(), namespace_id, wid);
    if (current.ok() && !request.request_id().empty() &&
        current->create_request_id != request.request_id()) {
      // A retried start (same request id) answers with the run the first one started, even
      // when another run has become current since. A workflow id with no run at all has
      // applied no request, so a first start pays for no lookup.
      auto applied = stores_->executions->FindRequestId(shard.id(), namespace_id, wid,
                                                        request.request_id(), clock_->Now());
      if (!applied.ok()) return applied.status();
      if (applied->has_value()) {
        wsv1::StartWorkflowExecutionResponse resp;
        resp.set_run_id(**applied);
        resp.set_started(true);
        return resp;
      }
    }
    if (current.ok()) {
      existing = ExistingRun{current->run_id, current->create_request_id,
                             static_cast<enums::WorkflowExecutionStatus>(current->status)};
    } else if (!absl::IsNotFound(current.status())) {
      return current.status();
    }
    const StartDecision decision = DecideStart(existing, request);
    const std::string run_id = NewUuid();
    switch (decision.action) {
      case StartDecision::Action::kReturnExisting: {
        wsv1::StartWorkflowExecutionResponse resp;
        resp.set_run_id(decision.run_id);
        resp.set_started(decision.started);
        return resp;
      }
      case StartDecision::Action::kRefuse:
        return decision.error;
      case StartDecision::Action::kTerminateThenCreate: {
        const absl::Time now = clock_->Now();
        absl::Status st = UpdateRunLocked(
            ctx, MakeRunKey(namespace_id, wid, decision.run_id),
            [&](v1::MutableState* ms, Effects* fx, bool* write) {
              // Temporal's record of it: its reason, the new run, and the server as the actor.
              temporal::api::common::v1::Payloads details;
              auto* p = details.add_payloads();
              (*p->mutable_metadata())["encoding"] = "json/plain";
              p->set_data(absl::StrCat("\"terminated by new runID: ", run_id, "\""));
              TerminateWorkflow(decision.terminate_reason, details, "history-service", now, ms,
                                fx);
              *write = fx->closed;
              return absl::OkStatus();
            });
        if (!st.ok()) return st;
        break;
      }
      case StartDecision::Action::kCreate:
        break;
    }
    const std::string& previous_run_id = decision.run_id;
    auto created =
        CreateRunLocked(ctx, shard, namespace_id, request, run_id, previous_run_id, signal, parent,
                        scheduled_by);
    if (absl::IsAlreadyExists(created.status())) continue;  // lost a race: look again
    if (!created.ok()) return created.status();
    wsv1::StartWorkflowExecutionResponse resp;
    resp.set_run_id(created->execution().run_id());
    resp.set_started(true);
    return resp;
  }
  return absl::UnavailableError("the workflow id's current run kept changing; retry");
}

absl::StatusOr<wsv1::PollWorkflowTaskQueueResponse> HistoryEngine::RecordWorkflowTaskStarted(
    const RecordTaskStartedRequest& request) {
  const v1::RunKey& run = request.task.run();
  const int32_t shard = ShardOf(run.namespace_id(), run.workflow_id());
  WorkflowTaskStarted started;
  v1::ExecutionInfo info;
  const absl::Time now = clock_->Now();
  wsv1::PollWorkflowTaskQueueResponse resp;
  {
    auto ctx = Context(run.namespace_id(), run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    absl::Status st =
        UpdateRunLocked(ctx->get(), run, [&](v1::MutableState* ms, Effects* fx, bool* write) {
          auto r = history::RecordWorkflowTaskStarted(request.task.stamp(), request.poll_request_id,
                                                      request.identity, now, ms, fx,
                                                      options_.limits);
          if (!r.ok()) return r.status();
          started = std::move(*r);
          info = ms->execution();
          *write = !fx->events.empty() || !fx->timer_tasks.empty();
          return absl::OkStatus();
        });
    if (!st.ok()) return st;
    AttachMessages(ctx->get(), run.run_id(), started.stamp, started.started_event_id, &resp);
  }

  v1::TaskToken token;
  token.set_namespace_id(run.namespace_id());
  token.set_workflow_id(run.workflow_id());
  token.set_run_id(run.run_id());
  token.set_scheduled_event_id(started.scheduled_event_id);
  token.set_started_event_id(started.started_event_id);
  token.set_attempt(started.attempt);
  token.set_stamp(started.stamp);
  resp.set_task_token(token.SerializeAsString());
  resp.mutable_workflow_execution()->set_workflow_id(run.workflow_id());
  resp.mutable_workflow_execution()->set_run_id(run.run_id());
  resp.mutable_workflow_type()->set_name(info.workflow_type());
  resp.set_previous_started_event_id(started.previous_started_event_id);
  resp.set_started_event_id(started.started_event_id);
  resp.set_attempt(started.attempt);
  *resp.mutable_scheduled_time() = ToProto(started.scheduled_time);
  *resp.mutable_started_time() = ToProto(started.started_time);
  resp.mutable_workflow_execution_task_queue()->set_name(info.task_queue());
  resp.mutable_workflow_execution_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);

  // Events up to the started event are immutable once written, so they are read without
  // holding the run's lock. A sticky worker gets only what it has not seen.
  const int64_t last_written =
      started.transient_events.empty() ? started.started_event_id : started.scheduled_event_id - 1;
  int64_t first = 1;
  if (request.from_sticky_queue && started.sticky && started.previous_started_event_id > 0) {
    first = started.previous_started_event_id + 1;
  }
  // A transient task's events must end the history the worker sees, so its history is
  // never split into pages.
  absl::Status st =
      FillHistory(shard, run, first, last_written, started.transient_events.empty(), &resp);
  if (!st.ok()) return st;
  for (auto& e : started.transient_events) *resp.mutable_history()->add_events() = std::move(e);
  return resp;
}

absl::Status HistoryEngine::FillHistory(int32_t shard_id, const v1::RunKey& run, int64_t first,
                                        int64_t last, bool paged,
                                        wsv1::PollWorkflowTaskQueueResponse* resp) {
  if (last < first) return absl::OkStatus();
  absl::Status st = stores_->executions->ReadHistory(
      shard_id, run, first, last + 1, paged ? options_.history_page_size : 0,
      resp->mutable_history());
  if (!st.ok()) return st;
  const int64_t read_up_to = first + resp->history().events_size() - 1;
  if (read_up_to < last) {
    v1::HistoryPageToken next;
    next.set_run_id(run.run_id());
    next.set_next_event_id(read_up_to + 1);
    next.set_last_event_id(last);
    resp->set_next_page_token(next.SerializeAsString());
  }
  return absl::OkStatus();
}

absl::StatusOr<wsv1::PollActivityTaskQueueResponse> HistoryEngine::RecordActivityTaskStarted(
    const RecordTaskStartedRequest& request) {
  const v1::RunKey& run = request.task.run();
  const int32_t shard = ShardOf(run.namespace_id(), run.workflow_id());
  v1::ActivityInfo ai;
  v1::ExecutionInfo info;
  const absl::Time now = clock_->Now();
  HistoryEvent scheduled_event;
  bool cached = false;
  {
    auto ctx = Context(run.namespace_id(), run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    absl::Status st = UpdateRunLocked(ctx->get(), run, [&](v1::MutableState* ms, Effects* fx, bool* write) {
      auto r = history::RecordActivityTaskStarted(request.task.scheduled_event_id(),
                                                  request.task.stamp(), request.poll_request_id,
                                                  request.identity, now, ms, fx);
      if (!r.ok()) return r.status();
      ai = std::move(*r);
      info = ms->execution();
      *write = !fx->timer_tasks.empty() || FromProto(ai.started_time()) == now;
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    if (auto entry = ShardFor(run.namespace_id(), run.workflow_id()).cache().Get(RunCacheKey(run))) {
      if (auto it = entry->scheduled_events.find(ai.scheduled_event_id());
          it != entry->scheduled_events.end()) {
        scheduled_event = it->second;
        cached = true;
      }
    }
  }
  if (!cached) {
    // Input and header live in the scheduled event; the state keeps only what it needs.
    temporal::api::history::v1::History scheduled;
    absl::Status st = stores_->executions->ReadHistory(shard, run, ai.scheduled_event_id(),
                                                       ai.scheduled_event_id() + 1, 1, &scheduled);
    if (!st.ok()) return st;
    if (scheduled.events_size() != 1) return absl::DataLossError("activity scheduled event missing");
    scheduled_event = std::move(*scheduled.mutable_events(0));
  }
  const auto& attrs = scheduled_event.activity_task_scheduled_event_attributes();

  wsv1::PollActivityTaskQueueResponse resp;
  v1::TaskToken token;
  token.set_namespace_id(run.namespace_id());
  token.set_workflow_id(run.workflow_id());
  token.set_run_id(run.run_id());
  token.set_scheduled_event_id(ai.scheduled_event_id());
  token.set_attempt(ai.attempt());
  token.set_activity_id(ai.activity_id());
  token.set_stamp(ai.stamp());
  token.set_is_activity(true);
  resp.set_task_token(token.SerializeAsString());
  auto ns = namespaces_->GetById(run.namespace_id());
  if (ns.ok()) resp.set_workflow_namespace(ns->info().name());
  resp.mutable_workflow_type()->set_name(info.workflow_type());
  resp.mutable_workflow_execution()->set_workflow_id(run.workflow_id());
  resp.mutable_workflow_execution()->set_run_id(run.run_id());
  *resp.mutable_activity_type() = attrs.activity_type();
  resp.set_activity_id(ai.activity_id());
  if (attrs.has_header()) *resp.mutable_header() = attrs.header();
  if (attrs.has_input()) *resp.mutable_input() = attrs.input();
  if (ai.has_heartbeat_details()) *resp.mutable_heartbeat_details() = ai.heartbeat_details();
  *resp.mutable_scheduled_time() = ai.first_scheduled_time();
  *resp.mutable_current_attempt_scheduled_time() = ai.scheduled_time();
  *resp.mutable_started_time() = ai.started_time();
  resp.set_attempt(ai.attempt());
  *resp.mutable_schedule_to_close_timeout() = ai.schedule_to_close_timeout();
  *resp.mutable_start_to_close_timeout() = ai.start_to_close_timeout();
  *resp.mutable_heartbeat_timeout() = ai.heartbeat_timeout();
  *resp.mutable_retry_policy() = ai.retry_policy();
  if (attrs.has_priority()) *resp.mutable_priority() = attrs.priority();
  return resp;
}

absl::StatusOr<wsv1::RespondWorkflowTaskCompletedResponse> HistoryEngine::RespondWorkflowTaskCompleted(
    const v1::TaskToken& token, const wsv1::RespondWorkflowTaskCompletedRequest& request) {
  CompletionOutcome outcome;
  const absl::Time now = clock_->Now();
  const v1::RunKey run = RunOfToken(token);
  std::vector<std::string> queries_to_send;
  {
    auto ctx = Context(run.namespace_id(), run.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    CompletionContext context = CompletionContextFor(ctx->get(), run, token.stamp());
    // The namespaces that child workflow commands name, resolved here: the state machine
    // does no lookups.
    for (const auto& c : request.commands()) {
      if (c.command_type() != enums::COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION) continue;
      const std::string& name = c.start_child_workflow_execution_command_attributes().namespace_();
      if (name.empty() || context.namespace_ids.contains(name)) continue;
      auto ns = namespaces_->GetByName(name);
      if (ns.ok()) context.namespace_ids[name] = ns->info().id();
    }
    bool task_pending = false;
    const ChainMutationFn fn = [&](const ChainContext& chain, v1::MutableState* ms, Effects* fx,
                                   bool*) {
      absl::Status valid = ValidateWorkflowTaskToken(token, *ms);
      if (!valid.ok()) return valid;
      outcome = CompleteWorkflowTask(request, options_.limits, chain, context, now, ms, fx);
      task_pending = IsRunning(*ms) && ms->has_workflow_task();
      return absl::OkStatus();
    };
    // A continue-as-new surely starts a successor, which repeats this run's first event.
    ChainNeed need = ChainNeed::kIfRetryPolicy;
    for (const auto& c : request.commands()) {
      if (c.command_type() == enums::COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION) {
        need = ChainNeed::kAlways;
      }
    }
    absl::Status st = UpdateRunLocked(ctx->get(), run, nullptr, need, &fn);
    if (!st.ok()) return st;
    if (!outcome.workflow_task_failed) {
      queries_to_send = SettleAfterCompletion(ctx->get(), run, token.stamp(), request,
                                              task_pending);
    }
  }
  if (!queries_to_send.empty()) DispatchWaitingQueries(run, queries_to_send);
  if (outcome.workflow_task_failed) {
    return absl::InvalidArgumentError(
        absl::StrCat("the workflow task's commands were refused: ", outcome.failure_message));
  }
  wsv1::RespondWorkflowTaskCompletedResponse resp;
  resp.set_reset_history_event_id(outcome.reset_history_event_id);
  return resp;
}

absl::Status HistoryEngine::RespondWorkflowTaskFailed(
    const v1::TaskToken& token, const wsv1::RespondWorkflowTaskFailedRequest& request) {
  const absl::Time now = clock_->Now();
  return UpdateRun(RunOfToken(token), [&](v1::MutableState* ms, Effects* fx, bool*) {
    absl::Status valid = ValidateWorkflowTaskToken(token, *ms);
    if (!valid.ok()) return valid;
    FailWorkflowTask(request.cause(), request.failure(), request.identity(),
                     request.binary_checksum(), now, ms, fx);
    return absl::OkStatus();
  });
}

absl::Status HistoryEngine::RespondActivityTaskCompleted(
    const v1::TaskToken& token, const wsv1::RespondActivityTaskCompletedRequest& request) {
  const absl::Time now = clock_->Now();
  return UpdateRun(RunOfToken(token), [&](v1::MutableState* ms, Effects* fx, bool*) {
    auto ai = FindStartedActivity(token, ms);
    if (!ai.ok()) return ai.status();
    CompleteActivityTask(token.scheduled_event_id(), request.result(), request.identity(), now,
                         ms, fx);
    return absl::OkStatus();
  });
}

absl::Status HistoryEngine::RespondActivityTaskFailed(
    const v1::TaskToken& token, const wsv1::RespondActivityTaskFailedRequest& request) {
  const absl::Time now = clock_->Now();
  return UpdateRun(RunOfToken(token), [&](v1::MutableState* ms, Effects* fx, bool*) {
    auto ai = FindStartedActivity(token, ms);
    if (!ai.ok()) return ai.status();
    if (request.has_last_heartbeat_details()) {
      *(*ai)->mutable_heartbeat_details() = request.last_heartbeat_details();
    }
    FailActivityTask(token.scheduled_event_id(), request.failure(), request.identity(), now, ms,
                     fx);
    return absl::OkStatus();
  });
}

absl::Status HistoryEngine::RespondActivityTaskCanceled(
    const v1::TaskToken& token, const wsv1::RespondActivityTaskCanceledRequest& request) {
  const absl::Time now = clock_->Now();
  return UpdateRun(RunOfToken(token), [&](v1::MutableState* ms, Effects* fx, bool*) {
    auto ai = FindStartedActivity(token, ms);
    if (!ai.ok()) return ai.status();
    if (!(*ai)->cancel_requested()) {
      return absl::InvalidArgumentError(
          "Unable to mark activity as canceled without activity being requested for "
          "cancellation.");
    }
    CancelActivityTask(token.scheduled_event_id(), request.details(), request.identity(), now,
                       ms, fx);
    return absl::OkStatus();
  });
}

absl::StatusOr<bool> HistoryEngine::RecordActivityTaskHeartbeat(
    const v1::TaskToken& token, const wsv1::RecordActivityTaskHeartbeatRequest& request) {
  // A heartbeat writes one small row, not the run's state: the cached state takes the
  // details in memory, and the next state write (or a reload) carries them.
  const v1::RunKey run = RunOfToken(token);
  ShardContext& shard = ShardFor(run.namespace_id(), run.workflow_id());
  const absl::Time now = clock_->Now();
  auto ctx = Context(run.namespace_id(), run.workflow_id());
  absl::MutexLock lock(&(*ctx)->mu);
  auto cached = LoadRun(ctx->get(), shard, run);
  if (!cached.ok()) return cached.status();
  v1::MutableState* ms = &(*cached)->state;
  auto ai = FindStartedActivity(token, ms);
  if (!ai.ok()) return ai.status();
  absl::Status st = shard.Fenced([&](int64_t range_id) {
    return stores_->executions->RecordHeartbeat(shard.id(), range_id, run,
                                                token.scheduled_event_id(), now, request.details());
  });
  if (!st.ok()) {
    // Whether the row was written is not known: the cached details may be ahead of the store.
    shard.cache().Erase(RunCacheKey(run));
    if (ShardContext::OutcomeOf(st) == ShardContext::Outcome::kUnknown) {
      return absl::UnavailableError(
          absl::StrCat("the outcome of the heartbeat is unknown, retry: ", st.message()));
    }
    return st;
  }
  return HeartbeatActivity(token.scheduled_event_id(), request.details(), now, ms);
}

absl::StatusOr<v1::TaskToken> HistoryEngine::ActivityTokenById(const std::string& namespace_id,
                                                               const std::string& workflow_id,
                                                               const std::string& run_id,
                                                               const std::string& activity_id) {
  auto resolved = ResolveRunId(namespace_id, workflow_id, run_id);
  if (!resolved.ok()) return resolved.status();
  auto ctx = Context(namespace_id, workflow_id);
  absl::MutexLock lock(&(*ctx)->mu);
  auto cached = LoadRun(ctx->get(), ShardFor(namespace_id, workflow_id),
                        MakeRunKey(namespace_id, workflow_id, *resolved));
  if (!cached.ok()) return cached.status();
  const v1::MutableState& ms = (*cached)->state;
  if (!IsRunning(ms)) return WorkflowNotFound("workflow execution already completed");
  for (const auto& [sched, ai] : ms.activities()) {
    if (ai.activity_id() != activity_id) continue;
    if (!ai.has_started_time()) {
      return WorkflowNotFound(absl::StrCat("activity ", activity_id, " is not started"));
    }
    v1::TaskToken token;
    token.set_namespace_id(namespace_id);
    token.set_workflow_id(workflow_id);
    token.set_run_id(*resolved);
    token.set_scheduled_event_id(sched);
    token.set_attempt(ai.attempt());
    token.set_activity_id(activity_id);
    token.set_stamp(ai.stamp());
    token.set_is_activity(true);
    return token;
  }
  return WorkflowNotFound(absl::StrCat("no pending activity with id ", activity_id));
}

absl::Status HistoryEngine::RequestCancelWorkflowExecution(
    const std::string& namespace_id, const wsv1::RequestCancelWorkflowExecutionRequest& request) {
  const auto& exec = request.workflow_execution();
  temporal::api::history::v1::WorkflowExecutionCancelRequestedEventAttributes a;
  a.set_cause(request.reason());
  a.set_identity(request.identity());
  return CancelRun(namespace_id, exec.workflow_id(), exec.run_id(), std::move(a), false,
                   request.first_execution_run_id());
}

absl::Status HistoryEngine::TerminateWorkflowExecution(
    const std::string& namespace_id, const wsv1::TerminateWorkflowExecutionRequest& request) {
  const auto& exec = request.workflow_execution();
  return TerminateRun(namespace_id, exec.workflow_id(), exec.run_id(),
                      request.first_execution_run_id(), request.reason(), request.details(),
                      request.identity(), nullptr);
}

absl::StatusOr<wsv1::DescribeWorkflowExecutionResponse> HistoryEngine::DescribeWorkflowExecution(
    const std::string& namespace_id, const wsv1::DescribeWorkflowExecutionRequest& request) {
  const auto& exec = request.execution();
  auto run_id = ResolveRunId(namespace_id, exec.workflow_id(), exec.run_id());
  if (!run_id.ok()) return run_id.status();
  const v1::RunKey run = MakeRunKey(namespace_id, exec.workflow_id(), *run_id);
  v1::MutableState ms;
  {
    auto ctx = Context(namespace_id, exec.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto loaded = LoadRun(ctx->get(), ShardFor(namespace_id, exec.workflow_id()), run);
    if (!loaded.ok()) return loaded.status();
    ms = (*loaded)->state;
  }
  const v1::ExecutionInfo& info = ms.execution();
  wsv1::DescribeWorkflowExecutionResponse resp;
  auto* config = resp.mutable_execution_config();
  config->mutable_task_queue()->set_name(info.task_queue());
  config->mutable_task_queue()->set_kind(enums::TASK_QUEUE_KIND_NORMAL);
  if (info.has_execution_timeout()) *config->mutable_workflow_execution_timeout() = info.execution_timeout();
  if (info.has_run_timeout()) *config->mutable_workflow_run_timeout() = info.run_timeout();
  *config->mutable_default_workflow_task_timeout() = info.task_timeout();

  auto* wi = resp.mutable_workflow_execution_info();
  wi->mutable_execution()->set_workflow_id(info.workflow_id());
  wi->mutable_execution()->set_run_id(info.run_id());
  wi->mutable_type()->set_name(info.workflow_type());
  *wi->mutable_start_time() = info.start_time();
  *wi->mutable_execution_time() = info.execution_time();
  if (info.has_close_time()) *wi->mutable_close_time() = info.close_time();
  wi->set_status(info.status());
  wi->set_history_length(ms.next_event_id() - 1);
  wi->set_history_size_bytes(info.history_size_bytes());
  wi->set_state_transition_count(ms.db_version());
  wi->set_task_queue(info.task_queue());
  wi->set_first_run_id(info.first_execution_run_id());
  if (info.has_memo()) *wi->mutable_memo() = info.memo();
  if (info.has_search_attributes()) *wi->mutable_search_attributes() = info.search_attributes();
  if (info.has_last_reset_time()) {
    *resp.mutable_workflow_extended_info()->mutable_last_reset_time() = info.last_reset_time();
  }
  if (!info.reset_run_id().empty()) {
    resp.mutable_workflow_extended_info()->set_reset_run_id(info.reset_run_id());
  }
  if (!info.parent_workflow_id().empty()) {
    wi->set_parent_namespace_id(info.parent_namespace_id());
    wi->mutable_parent_execution()->set_workflow_id(info.parent_workflow_id());
    wi->mutable_parent_execution()->set_run_id(info.parent_run_id());
  }
  if (!info.root_workflow_id().empty()) {
    wi->mutable_root_execution()->set_workflow_id(info.root_workflow_id());
    wi->mutable_root_execution()->set_run_id(info.root_run_id());
  }
  for (const auto& [id, child] : ms.children()) {
    auto* pc = resp.add_pending_children();
    pc->set_workflow_id(child.workflow_id());
    pc->set_run_id(child.run_id());
    pc->set_workflow_type_name(child.workflow_type());
    pc->set_initiated_id(id);
    pc->set_parent_close_policy(child.parent_close_policy());
  }
  if (info.has_close_time()) {
    *wi->mutable_execution_duration() =
        ToProto(FromProto(info.close_time()) - FromProto(info.execution_time()));
  }
  for (const auto& [id, ai] : ms.activities()) {
    auto* pa = resp.add_pending_activities();
    pa->set_activity_id(ai.activity_id());
    pa->mutable_activity_type()->set_name(ai.activity_type());
    pa->set_state(ai.has_started_time() ? enums::PENDING_ACTIVITY_STATE_STARTED
                                        : enums::PENDING_ACTIVITY_STATE_SCHEDULED);
    if (ai.cancel_requested()) pa->set_state(enums::PENDING_ACTIVITY_STATE_CANCEL_REQUESTED);
    if (ai.has_heartbeat_details()) *pa->mutable_heartbeat_details() = ai.heartbeat_details();
    if (ai.has_last_heartbeat_time()) *pa->mutable_last_heartbeat_time() = ai.last_heartbeat_time();
    if (ai.has_started_time()) *pa->mutable_last_started_time() = ai.started_time();
    pa->set_attempt(ai.attempt());
    pa->set_maximum_attempts(ai.retry_policy().maximum_attempts());
    *pa->mutable_scheduled_time() = ai.scheduled_time();
    if (ai.has_last_failure()) *pa->mutable_last_failure() = ai.last_failure();
    pa->set_last_worker_identity(ai.started_identity());
  }
  if (ms.has_workflow_task()) {
    const auto& wft = ms.workflow_task();
    auto* pw = resp.mutable_pending_workflow_task();
    pw->set_state(wft.started_event_id() != 0 ? enums::PENDING_WORKFLOW_TASK_STATE_STARTED
                                               : enums::PENDING_WORKFLOW_TASK_STATE_SCHEDULED);
    *pw->mutable_scheduled_time() = wft.scheduled_time();
    if (wft.started_event_id() != 0) *pw->mutable_started_time() = wft.started_time();
    pw->set_attempt(wft.attempt());
  }
  return resp;
}

void HistoryEngine::GetWorkflowExecutionHistory(
    const std::string& namespace_id, const wsv1::GetWorkflowExecutionHistoryRequest& request,
    absl::Time deadline, HistoryCallback done) {
  ReadHistory(namespace_id, request, deadline, std::make_shared<HistoryCallback>(std::move(done)));
}

void HistoryEngine::ReadHistory(const std::string& namespace_id,
                                const wsv1::GetWorkflowExecutionHistoryRequest& request,
                                absl::Time deadline, std::shared_ptr<HistoryCallback> done) {
  v1::HistoryPageToken token;
  if (!request.next_page_token().empty() && !token.ParseFromString(request.next_page_token())) {
    (*done)(absl::InvalidArgumentError("invalid next_page_token"));
    return;
  }
  const auto& exec = request.execution();
  std::string run_id = exec.run_id();
  if (run_id.empty()) run_id = token.run_id();
  auto resolved = ResolveRunId(namespace_id, exec.workflow_id(), run_id);
  if (!resolved.ok()) {
    (*done)(resolved.status());
    return;
  }
  const v1::RunKey run = MakeRunKey(namespace_id, exec.workflow_id(), *resolved);
  ShardContext& shard = ShardFor(namespace_id, exec.workflow_id());
  const bool close_only =
      request.history_event_filter_type() == enums::HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT;
  const int64_t first = token.next_event_id() > 0 ? token.next_event_id() : 1;

  // What the answer needs of the state, copied under the lock.
  int64_t next_event_id = 0;
  bool running = false;
  HistoryEvent close_event;
  {
    auto ctx = Context(namespace_id, exec.workflow_id());
    absl::MutexLock lock(&(*ctx)->mu);
    auto loaded = LoadRun(ctx->get(), shard, run);
    if (!loaded.ok()) {
      (*done)(loaded.status());
      return;
    }
    const v1::MutableState& state = (*loaded)->state;
    const bool closed = !IsRunning(state);
    const bool ready = close_only ? closed : (state.next_event_id() > first || closed);
    if (request.wait_new_event() && !ready) {
      if (clock_->Now() >= deadline) {
        wsv1::GetWorkflowExecutionHistoryResponse resp;
        v1::HistoryPageToken again;
        again.set_run_id(run.run_id());
        again.set_next_event_id(first);
        resp.set_next_page_token(again.SerializeAsString());
        (*done)(std::move(resp));
        return;
      }
      // Park in the run's context until a commit on this run, or until the deadline, then
      // answer. The context outlives any cache eviction while the waiter is in it.
      auto waiter = std::make_shared<Waiter>();
      auto req = std::make_shared<wsv1::GetWorkflowExecutionHistoryRequest>(request);
      req->mutable_execution()->set_run_id(run.run_id());
      waiter->wake = [this, namespace_id, req, deadline, done] {
        ReadHistory(namespace_id, *req, deadline, done);
      };
      RunContextOf(ctx->get(), run.run_id()).waiters.push_back(waiter);
      deadlines_->Schedule(deadline, [this, waiter, namespace_id, req, done] {
        if (waiter->fired.exchange(true)) return;
        executor_->Post([this, waiter, namespace_id, req, done] {
          RemoveWaiter(namespace_id, req->execution().workflow_id(), req->execution().run_id(),
                       waiter);
          // The deadline passed: answer with nothing new and a token to poll again.
          ReadHistory(namespace_id, *req, absl::InfinitePast(), done);
        });
      });
      return;
    }
    next_event_id = state.next_event_id();
    running = !closed;
    if (state.has_close_event()) close_event = state.close_event();
  }

  wsv1::GetWorkflowExecutionHistoryResponse resp;
  if (close_only) {
    if (!running) *resp.mutable_history()->add_events() = std::move(close_event);
    (*done)(std::move(resp));
    return;
  }
  const int64_t last = token.last_event_id() > 0 ? token.last_event_id() : next_event_id - 1;
  const int page = request.maximum_page_size() > 0
                       ? std::min(request.maximum_page_size(), 10 * options_.history_page_size)
                       : options_.history_page_size;
  absl::Status st =
      stores_->executions->ReadHistory(shard.id(), run, first, last + 1, page, resp.mutable_history());
  if (!st.ok()) {
    (*done)(st);
    return;
  }
  const int64_t read_up_to = first + resp.history().events_size() - 1;
  if (read_up_to < last) {
    v1::HistoryPageToken next;
    next.set_run_id(run.run_id());
    next.set_next_event_id(read_up_to + 1);
    next.set_last_event_id(last);
    resp.set_next_page_token(next.SerializeAsString());
  } else if (request.wait_new_event() && running) {
    // Following a running history: the next call waits for events after these.
    v1::HistoryPageToken next;
    next.set_run_id(run.run_id());
    next.set_next_event_id(read_up_to + 1);
    resp.set_next_page_token(next.SerializeAsString());
  }
  (*done)(std::move(resp));
}

void HistoryEngine::RemoveWaiter(const std::string& namespace_id, const std::string& workflow_id,
                                 const std::string& run_id, const std::shared_ptr<Waiter>& waiter) {
  auto ctx = Context(namespace_id, workflow_id);
  absl::MutexLock lock(&(*ctx)->mu);
  auto it = (*ctx)->runs.find(run_id);
  if (it == (*ctx)->runs.end()) return;  // a commit woke the run's waiters meanwhile
  auto& waiters = it->second.waiters;
  auto pos = std::find(waiters.begin(), waiters.end(), waiter);
  if (pos == waiters.end()) return;
  waiters.erase(pos);
  DropRunContextIfEmpty(ctx->get(), run_id);
}

}  // namespace almanac::history
