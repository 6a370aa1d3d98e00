#pragma once

// The schedule runner's decisions: pure functions over a schedule's record
// (almanac.v1.ScheduleRecord), with no I/O. The runner that hosts schedules (history's
// schedules.cc) loads a record, calls these, takes the actions they ask for (starting,
// cancelling or terminating workflows), records the outcomes here, and writes the record back
// with its next wake-up, in one transaction.
//
// Semantics are Temporal's scheduler (its workflow-backed implementation, the one its dev
// server runs), with its fixed policies:
//  - Automated actions: every action time in (last_processed_time, now] is taken, unless the
//    schedule is paused or out of actions (then the range is skipped, not counted as missed),
//    the action came before the schedule's last update, or it is later than the catchup
//    window (365 days unset, at least 10 s): then it counts as missed.
//  - Each action is buffered, then the buffer is resolved by its overlap policy (the
//    schedule's, SKIP by default) against the workflows the schedule has running: SKIP
//    drops it, BUFFER_ONE keeps one, BUFFER_ALL keeps all, CANCEL_OTHER and TERMINATE_OTHER
//    stop the running one and start it once that one closes, ALLOW_ALL starts it anyway
//    (and does not track it as running). At most 1000 starts wait in the buffer.
//  - Manual actions (trigger, backfill) ignore pause, limits and the catchup window.
//    Backfills are taken 10 actions per wake-up, using at most half of the buffer.
//  - A started workflow's id is "<action workflow id>-<nominal time, RFC 3339, seconds,
//    UTC>"; it carries TemporalScheduledById and TemporalScheduledStartTime, the last
//    completion result and the last failure (not for ALLOW_ALL starts).
//  - When a tracked run closes: FAILED or TIMED_OUT pauses a pause-on-failure schedule with
//    Temporal's note; COMPLETED records its result as the last completion result and clears
//    the last failure; FAILED records its failure.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "almanac/v1/persistence.pb.h"
#include "scheduler/schedule_spec.h"
#include "temporal/api/schedule/v1/message.pb.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::scheduler {

// Temporal's fixed schedule policies.
inline constexpr absl::Duration kDefaultCatchupWindow = absl::Hours(24 * 365);
inline constexpr absl::Duration kMinCatchupWindow = absl::Seconds(10);
inline constexpr absl::Duration kIdleRetention = absl::Hours(24 * 7);  // a finished schedule
inline constexpr int kFutureActionCount = 10;        // in Describe
inline constexpr int kRecentActionCount = 10;        // in Describe
inline constexpr int kFutureActionCountForList = 5;  // in List
inline constexpr int kRecentActionCountForList = 5;  // in List
inline constexpr int kMaxBufferSize = 1000;
inline constexpr int kBackfillsPerWake = 10;
inline constexpr int kSpecFieldLengthLimit = 10;     // spec entries in List
inline constexpr int kMaxListMatchingTimes = 1000;

// The prefix of a schedule's key among workflow ids, and its visibility row's identity.
inline constexpr char kScheduleWorkflowIdPrefix[] = "temporal-sys-scheduler:";
inline constexpr char kScheduleWorkflowType[] = "temporal-sys-scheduler-workflow";
inline constexpr char kScheduleTaskQueue[] = "temporal-sys-per-ns-tq";
inline constexpr char kNamespaceDivision[] = "TemporalScheduler";
inline constexpr char kMemoFieldInfo[] = "ScheduleInfo";

using ScheduleRecord = ::almanac::v1::ScheduleRecord;
using BufferedStart = ::almanac::v1::ScheduleBufferedStart;
namespace schedv1 = ::temporal::api::schedule::v1;

// Fills in the policies Describe shows: SKIP for an unset overlap policy, the effective
// catchup window.
void ResolvePolicies(schedv1::Schedule* schedule);
absl::Duration CatchupWindow(const schedv1::Schedule& schedule);

// Whether the schedule may take an action now: manual ones always; automated ones unless it
// is paused or out of limited actions. With `decrement`, uses up one limited action.
bool CanTakeScheduledAction(ScheduleRecord* record, bool manual, bool decrement);

// Buffers the automated actions whose times came since last_processed_time, up to `now`,
// and moves last_processed_time on. `spec` null: the spec is invalid, nothing is due.
void BufferDueActions(ScheduleRecord* record, const CompiledSpec* spec, absl::Time now);

// Buffers the next actions of the ongoing backfills (at most kBackfillsPerWake).
void BufferBackfills(ScheduleRecord* record, const CompiledSpec* spec);
bool HasMoreAllowAllBackfills(const ScheduleRecord& record);

// What to do with the buffer now.
struct BufferDecision {
  std::vector<BufferedStart> starts;  // to start now; a non-overlapping one comes last
  bool last_is_non_overlapping = false;
  bool cancel_running = false;
  bool terminate_running = false;
};
// Resolves the buffer against the running workflows by each start's overlap policy. The
// record keeps what must wait; the starts skipped are counted.
BufferDecision TakeFromBuffer(ScheduleRecord* record);

// The workflow a buffered start starts: its id, request (request id derived from the start,
// so that a repeated attempt is the same start) and search attributes.
std::string ActionWorkflowId(const std::string& base_id, absl::Time nominal);
temporal::api::workflowservice::v1::StartWorkflowExecutionRequest StartRequestFor(
    const ScheduleRecord& record, const BufferedStart& start);

// Records a start that happened.
void RecordAction(ScheduleRecord* record, const BufferedStart& start,
                  const std::string& workflow_id, const std::string& run_id, absl::Time now,
                  bool non_overlapping);

// A run the schedule started closed (its chain ended). Returns false when the schedule was
// not tracking it.
struct ClosedRun {
  std::string workflow_id;
  temporal::api::enums::v1::WorkflowExecutionStatus status =
      temporal::api::enums::v1::WORKFLOW_EXECUTION_STATUS_UNSPECIFIED;
  const temporal::api::common::v1::Payloads* result = nullptr;  // COMPLETED
  const temporal::api::failure::v1::Failure* failure = nullptr; // FAILED
};
bool RecordClosed(ScheduleRecord* record, const ClosedRun& closed);

// PatchSchedule: trigger, backfills, pause and unpause (with their notes).
void ApplyPatch(ScheduleRecord* record, const schedv1::SchedulePatch& patch, absl::Time now);
// UpdateSchedule: a new definition (already validated and canonical). `search_attributes`
// null: unchanged; otherwise they replace the schedule's.
void ApplyUpdate(ScheduleRecord* record, const schedv1::Schedule& schedule,
                 const temporal::api::common::v1::SearchAttributes* search_attributes,
                 absl::Time now);

// When the runner must next wake up: the next action's time, a second from now while
// ALLOW_ALL backfills remain, or, for a schedule with nothing left to do, when its idle
// retention ends (`expire`: delete it then). nullopt: only a call or a closing run wakes it.
struct Wake {
  absl::Time time;
  bool expire = false;
};
std::optional<Wake> NextWake(const ScheduleRecord& record, const CompiledSpec* spec,
                             absl::Time now);

// Up to `n` next action times (after the last processed time and the last update, within
// the remaining actions).
std::vector<absl::Time> FutureActionTimes(const ScheduleRecord& record, const CompiledSpec* spec,
                                          int n);
// What DescribeSchedule shows of the schedule's info, and what ListSchedules shows.
schedv1::ScheduleInfo DescribeInfo(const ScheduleRecord& record, const CompiledSpec* spec);
schedv1::ScheduleListInfo ListInfo(const ScheduleRecord& record, const CompiledSpec* spec);

// The jitter seed of a schedule, as Temporal's: "<namespace id>-<schedule id>".
std::string JitterSeed(const ScheduleRecord& record);

}  // namespace almanac::scheduler
