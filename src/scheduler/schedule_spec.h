#pragma once

// The schedule spec engine: when is the next action?
//
// Turns a Temporal ScheduleSpec (temporal.api.schedule.v1) into action times: the union of its
// calendars (structured, CalendarSpec strings and cron strings) and intervals, minus the times
// its exclusions match, within [start_time, end_time], each delayed by its jitter. Calendars
// are read in the spec's time zone (UTC by default). The schedule runner, the Schedule RPCs
// (ListScheduleMatchingTimes, backfill, DescribeSchedule's future action times) and cron
// workflows (cron_schedule) all compute times here.
//
// Semantics, as ScheduleSpec's comments and Temporal's server define them:
//  - Action times are whole seconds. Intervals match epoch + n * interval + phase.
//  - A calendar matches a wall-clock time literally: a time skipped by a DST change never
//    matches, and a time repeated by one matches twice (once in each offset).
//  - Calendar fields match years 2000 to 2100 only, and no action time comes after
//    2100-12-31T23:59:59Z, whatever its form.
//  - start_time and end_time are inclusive bounds on nominal times.
//  - Jitter delays each nominal time by a pseudo-random amount in [0, max), where max is the
//    smaller of the spec's jitter and the time until the next nominal time, at millisecond
//    granularity. It depends only on the nominal time and the jitter seed, so the same action
//    gets the same delay after a restart, and actions stay in order.
//
// Pure computation: the only I/O is loading the tz database (cached). A CompiledSpec is
// immutable and cheap to copy; all of its methods are thread-safe.

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "temporal/api/schedule/v1/message.pb.h"

namespace almanac::scheduler {

using ScheduleSpec = temporal::api::schedule::v1::ScheduleSpec;

struct SpecCompiler;  // schedule_spec.cc

// One action of a spec.
struct ScheduledTime {
  absl::Time nominal;  // the time the spec matches, before jitter
  absl::Time actual;   // nominal plus its jitter: when the action is due
};

class CompiledSpec {
 public:
  // The first action whose nominal time is strictly after `after`, with its jitter applied.
  // nullopt when the spec has no action left (end_time passed, exclusions cover everything
  // left, or the year 2100 is over).
  absl::optional<absl::Time> Next(absl::Time after) const;
  absl::optional<ScheduledTime> NextScheduled(absl::Time after) const;

  // The actions whose nominal time is at or after `from` and whose actual (jittered) time is
  // at or before `to`, in order, at most `limit` of them. Empty when to < from.
  std::vector<absl::Time> Between(absl::Time from, absl::Time to, size_t limit) const;
  std::vector<ScheduledTime> ScheduledBetween(absl::Time from, absl::Time to,
                                              size_t limit) const;

  // The spec in the structured form DescribeSchedule returns: calendar, cron_string and
  // exclude_calendar compiled into structured_calendar, interval and
  // exclude_structured_calendar (and a CRON_TZ into timezone_name), every Range with an
  // explicit end and step. Compiling it again gives the same action times. A copy, so that
  // it can outlive this object.
  ScheduleSpec Canonical() const;

 private:
  friend struct SpecCompiler;
  struct State;
  explicit CompiledSpec(std::shared_ptr<const State> state) : state_(std::move(state)) {}

  std::shared_ptr<const State> state_;
};

// Validates and compiles a spec. `jitter_seed` varies the jitter between schedules that share
// a spec (Temporal seeds it with the schedule's identity); it does not matter without jitter.
// Fails with kInvalidArgument, naming the field, when the spec is malformed: a cron string
// without 5, 6 or 7 fields, a value out of range or an unknown month or weekday name, an
// interval under one second or a phase not in [0, interval), a negative jitter, an unknown
// time zone or unreadable timezone_data, cron strings whose time zones disagree with each
// other or with timezone_name/timezone_data.
absl::StatusOr<CompiledSpec> CompileSpec(const ScheduleSpec& spec,
                                         absl::string_view jitter_seed = "");

// Compiles a workflow's cron_schedule as Temporal's cron workflows read it: a classic 5-field
// cron string (where a day matches when either a restricted day of month or a restricted day
// of week does), a predefined schedule (@yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly) or @every <duration>, optionally after CRON_TZ= or TZ=. Temporal counts
// @every from the first run's start: pass it as `every_anchor` (the Unix epoch otherwise).
// Fails with kInvalidArgument when the string is malformed or matches no time at all
// ("0 0 30 2 *").
absl::StatusOr<CompiledSpec> CompileCron(absl::string_view cron_schedule,
                                         absl::Time every_anchor = absl::UnixEpoch());

}  // namespace almanac::scheduler
