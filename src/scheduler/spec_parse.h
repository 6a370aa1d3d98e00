#pragma once

// The string forms of a ScheduleSpec, parsed into its structured forms: CalendarSpec fields,
// cron strings (ScheduleSpec.cron_string and a workflow's cron_schedule) and the durations of
// `@every`. Also the validation of StructuredCalendarSpec ranges.
//
// Parsed ranges come out in the canonical form that DescribeSchedule shows: every Range has an
// explicit end (>= start) and step (>= 1); day of week 7 becomes 0 (Sunday); a year of "*"
// is the empty list (all years).
//
// Pure functions: thread-safe. Failures are kInvalidArgument with a message that names the
// offending field (`where`) and text.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "temporal/api/schedule/v1/message.pb.h"

namespace almanac::scheduler {

namespace schedule_v1 = temporal::api::schedule::v1;

// Calendar fields only match years in this range (Temporal's limits too).
inline constexpr int kMinCalendarYear = 2000;
inline constexpr int kMaxCalendarYear = 2100;
// Longest accepted calendar comment, in bytes.
inline constexpr size_t kMaxCalendarCommentLength = 200;

// Fills defaults into a CalendarSpec (second, minute and hour 0; the rest "*") and parses it.
absl::StatusOr<schedule_v1::StructuredCalendarSpec> ParseCalendarSpec(
    const schedule_v1::CalendarSpec& calendar, absl::string_view where);

// Checks every range against its field's bounds (second and minute 0-59, hour 0-23, day of
// month 1-31, month 1-12, year 2000-2100, day of week 0-6), and that steps are not negative.
// As the Range comment says, an end below its start means the start alone.
absl::Status ValidateStructuredCalendar(const schedule_v1::StructuredCalendarSpec& calendar,
                                        absl::string_view where);

// Writes the implicit values of a valid calendar's ranges out: end = max(end, start),
// step = max(step, 1).
void NormalizeStructuredCalendar(schedule_v1::StructuredCalendarSpec* calendar);

// Which cron grammar a string follows.
enum class CronDialect {
  // ScheduleSpec.cron_string: 5, 6 or 7 fields, "# comment", @every <interval>[/<phase>].
  kScheduleSpec,
  // A workflow's cron_schedule, as Temporal parses it (robfig/cron's standard parser): 5
  // fields, "?" for "*", and when both day of month and day of week are restricted a day
  // matches either one (the classic cron rule), expressed as two calendars.
  kCronSchedule,
};

// One cron string, parsed.
struct ParsedCron {
  std::vector<schedule_v1::StructuredCalendarSpec> calendars;  // empty for @every
  std::vector<schedule_v1::IntervalSpec> intervals;            // @every
  std::string timezone_name;                                   // from CRON_TZ= or TZ=
};
absl::StatusOr<ParsedCron> ParseCronString(absl::string_view cron, CronDialect dialect,
                                           absl::string_view where);

// Parses a duration as Go's time.ParseDuration does, plus a "d" (24h) unit: a sequence of
// decimal numbers with units ns, us, µs, ms, s, m, h, d ("90m", "1h30m", "1.5h", "3d"), or
// "0". An optional leading sign is accepted.
absl::StatusOr<absl::Duration> ParseCronDuration(absl::string_view text);

}  // namespace almanac::scheduler
