// The spec engine against hand-computed action times.
//
// Expected times are literals worked out by hand from the calendar (and, for time zones,
// from the tz database's published rules, double-checked with `zdump -v`), never copied from
// the engine's output. Local times are written with their UTC offset so that each row shows
// its derivation: "2025-03-10T02:30:00-04:00" is 02:30 New York daylight time.

#include "scheduler/schedule_spec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace almanac::scheduler {
namespace {

using temporal::api::schedule::v1::StructuredCalendarSpec;

constexpr const char* kNone = "none";

absl::Time T(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) {
    ADD_FAILURE() << "bad time literal " << rfc3339 << ": " << err;
  }
  return t;
}

// RFC 3339 in UTC with a "Z" suffix (and a fraction only when there is one).
std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

ScheduleSpec SpecOf(const std::string& text) {
  ScheduleSpec spec;
  if (!google::protobuf::TextFormat::ParseFromString(text, &spec)) {
    ADD_FAILURE() << "bad spec text: " << text;
  }
  return spec;
}

CompiledSpec MustCompile(const ScheduleSpec& spec, absl::string_view seed = "") {
  absl::StatusOr<CompiledSpec> compiled = CompileSpec(spec, seed);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  return *std::move(compiled);
}

// Calls Next repeatedly from `after` and compares with `want` (kNone: no further action).
void ExpectChain(const CompiledSpec& spec, absl::Time after, const std::vector<std::string>& want) {
  absl::Time t = after;
  for (const std::string& w : want) {
    const absl::optional<absl::Time> got = spec.Next(t);
    if (w == kNone) {
      EXPECT_FALSE(got.has_value()) << "after " << Utc(t) << " got " << Utc(*got);
      return;
    }
    ASSERT_TRUE(got.has_value()) << "after " << Utc(t) << " want " << w;
    EXPECT_EQ(Utc(*got), Utc(T(w))) << "after " << Utc(t) << " want " << w;
    t = *got;
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- Next: one row per form ---------------------------------------------------------------

struct NextCase {
  const char* name;
  const char* spec;   // ScheduleSpec in protobuf text format
  const char* after;  // RFC 3339
  std::vector<std::string> want;
};
void PrintTo(const NextCase& c, std::ostream* os) { *os << "\"" << c.name << "\""; }


class NextTest : public ::testing::TestWithParam<NextCase> {};

TEST_P(NextTest, Chain) {
  const NextCase& c = GetParam();
  ExpectChain(MustCompile(SpecOf(c.spec)), T(c.after), c.want);
}

const NextCase kNextCases[] = {
    // ---- cron strings: 5, 6 and 7 fields ----
    {"Cron5DailyAt0815", R"pb(cron_string: "15 8 * * *")pb", "2025-01-01T00:00:00Z",
     {"2025-01-01T08:15:00Z", "2025-01-02T08:15:00Z"}},
    {"Cron5Every15Minutes", R"pb(cron_string: "*/15 * * * *")pb", "2025-01-01T00:07:30Z",
     {"2025-01-01T00:15:00Z", "2025-01-01T00:30:00Z", "2025-01-01T00:45:00Z",
      "2025-01-01T01:00:00Z"}},
    // Hours 8-18 step 4 are 8, 12, 16.
    {"Cron5HourRangeWithStep", R"pb(cron_string: "0 8-18/4 * * *")pb", "2025-01-01T13:00:00Z",
     {"2025-01-01T16:00:00Z", "2025-01-02T08:00:00Z"}},
    // 6 fields: the sixth is the year.
    {"Cron6WithYear", R"pb(cron_string: "0 12 * * * 2026")pb", "2025-06-01T00:00:00Z",
     {"2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"}},
    // 7 fields: second first, year last.
    {"Cron7WithSecondAndYear", R"pb(cron_string: "30 0 12 * * * 2026")pb",
     "2025-06-01T00:00:00Z", {"2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"}},
    // 2025-01-03 is a Friday; the next weekdays are Mon 6th and Tue 7th.
    {"Cron5WeekdayNames", R"pb(cron_string: "0 9 * * Mon-Fri")pb", "2025-01-03T10:00:00Z",
     {"2025-01-06T09:00:00Z", "2025-01-07T09:00:00Z"}},
    // 7 is Sunday as 0 is; 2025-01-05 and 12 are Sundays.
    {"Cron5SundayAsSeven", R"pb(cron_string: "0 0 * * 7")pb", "2025-01-01T00:00:00Z",
     {"2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"}},
    // Day of month AND day of week (no cron "or"): Fridays the 13th. In 2025 only June; in
    // 2026 February, March and November.
    {"Cron5FridayThe13th", R"pb(cron_string: "0 0 13 * 5")pb", "2025-01-01T00:00:00Z",
     {"2025-06-13T00:00:00Z", "2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z",
      "2026-11-13T00:00:00Z"}},
    {"CronTrailingComment", R"pb(cron_string: "0 6 * * * # wake up")pb", "2025-01-01T00:00:00Z",
     {"2025-01-01T06:00:00Z"}},

    // ---- leap years and month ends ----
    // Leap days after 2025: 2028 and 2032.
    {"LeapDay", R"pb(cron_string: "0 0 29 2 *")pb", "2025-01-01T00:00:00Z",
     {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
    // 2100 is not a leap year (divisible by 100, not by 400), and calendars end with 2100.
    {"LeapDayNoneAfter2096", R"pb(cron_string: "0 0 29 2 *")pb", "2096-02-29T00:00:00Z",
     {kNone}},
    // Only months with 31 days: May, July, August, October, December.
    {"MonthEnd31", R"pb(cron_string: "0 0 31 * *")pb", "2025-04-01T00:00:00Z",
     {"2025-05-31T00:00:00Z", "2025-07-31T00:00:00Z", "2025-08-31T00:00:00Z",
      "2025-10-31T00:00:00Z", "2025-12-31T00:00:00Z", "2026-01-31T00:00:00Z"}},
    {"February30Never", R"pb(cron_string: "0 0 30 2 *")pb", "2025-01-01T00:00:00Z", {kNone}},
    // 28 February is the last day of a common year's February, 29th in a leap year.
    {"LastDaysOfFebruary", R"pb(cron_string: "0 0 28,29 2 *")pb", "2027-03-01T00:00:00Z",
     {"2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00Z"}},

    // ---- predefined schedules ----
    {"Yearly", R"pb(cron_string: "@yearly")pb", "2025-03-01T00:00:00Z",
     {"2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
    {"Annually", R"pb(cron_string: "@annually")pb", "2025-03-01T00:00:00Z",
     {"2026-01-01T00:00:00Z"}},
    {"Monthly", R"pb(cron_string: "@monthly")pb", "2025-01-15T00:00:00Z",
     {"2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z"}},
    // 2025-01-01 is a Wednesday: the next Sunday is the 5th.
    {"Weekly", R"pb(cron_string: "@weekly")pb", "2025-01-01T00:00:00Z",
     {"2025-01-05T00:00:00Z", "2025-01-12T00:00:00Z"}},
    {"Daily", R"pb(cron_string: "@daily")pb", "2025-01-01T10:00:00Z",
     {"2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"}},
    {"Midnight", R"pb(cron_string: "@midnight")pb", "2025-01-01T10:00:00Z",
     {"2025-01-02T00:00:00Z"}},
    {"Hourly", R"pb(cron_string: "@hourly")pb", "2025-01-01T10:30:00Z",
     {"2025-01-01T11:00:00Z", "2025-01-01T12:00:00Z"}},

    // ---- @every and intervals, aligned to the Unix epoch ----
    // 2025-01-01T00:00:00Z is 1735689600 s = 321424 * 5400 s, so 90-minute steps fall on it.
    {"Every90Minutes", R"pb(cron_string: "@every 90m")pb", "2025-01-01T00:00:00Z",
     {"2025-01-01T01:30:00Z", "2025-01-01T03:00:00Z"}},
    // Every 6 hours at the start of the 5th hour: 05, 11, 17, 23 (days are whole 6h steps).
    {"EveryWithPhase", R"pb(cron_string: "@every 6h/5h")pb", "2025-01-01T00:00:00Z",
     {"2025-01-01T05:00:00Z", "2025-01-01T11:00:00Z", "2025-01-01T17:00:00Z",
      "2025-01-01T23:00:00Z", "2025-01-02T05:00:00Z"}},
    // The IntervalSpec comment: 28 days with phase 0 matches 2022-02-17T00:00:00Z (and so
    // not 2022-01-20 + 1s..); with phase 3d5h23m, 2022-02-20T05:23:00Z.
    {"IntervalProtoExample", R"pb(interval { interval { seconds: 2419200 } })pb",
     "2022-02-01T00:00:00Z", {"2022-02-17T00:00:00Z", "2022-03-17T00:00:00Z"}},
    {"IntervalProtoExampleWithPhase",
     R"pb(interval {
            interval { seconds: 2419200 }
            phase { seconds: 278580 }
          })pb",
     "2022-02-01T00:00:00Z", {"2022-02-20T05:23:00Z"}},
    // Every hour at 19 minutes past.
    {"IntervalHourlyPhase19m",
     R"pb(interval {
            interval { seconds: 3600 }
            phase { seconds: 1140 }
          })pb",
     "2025-01-01T10:05:00Z", {"2025-01-01T10:19:00Z", "2025-01-01T11:19:00Z"}},
    // Strictly after: a fraction of a second past a match moves to the next one.
    {"IntervalAfterFractionalSecond", R"pb(interval { interval { seconds: 3600 } })pb",
     "2025-01-01T10:00:00.5Z", {"2025-01-01T11:00:00Z"}},
    {"IntervalJustBefore", R"pb(interval { interval { seconds: 3600 } })pb",
     "2025-01-01T09:59:59.999Z", {"2025-01-01T10:00:00Z"}},
    // Interval and phase are truncated to whole seconds: 1.9s is 1s.
    {"IntervalTruncatedToSeconds", R"pb(interval { interval { seconds: 1 nanos: 900000000 } })pb",
     "2025-01-01T00:00:00Z", {"2025-01-01T00:00:01Z", "2025-01-01T00:00:02Z"}},
    // Intervals ignore the time zone: New York's DST start (07:00Z) changes nothing.
    {"IntervalIgnoresTimeZone",
     R"pb(interval { interval { seconds: 3600 } } timezone_name: "America/New_York")pb",
     "2025-03-09T06:30:00Z", {"2025-03-09T07:00:00Z", "2025-03-09T08:00:00Z"}},

    // ---- calendar specs given as strings ----
    // The seed's example: Jan/Apr/Jul/Oct, 1st and 15th, 11:00 to 14:00, 2022 only.
    {"CalendarSeedExample",
     R"pb(calendar {
            year: "2022"
            month: "Jan,Apr,Jul,Oct"
            day_of_month: "1,15"
            hour: "11-14"
          })pb",
     "2022-01-01T12:30:00Z",
     {"2022-01-01T13:00:00Z", "2022-01-01T14:00:00Z", "2022-01-15T11:00:00Z",
      "2022-01-15T12:00:00Z", "2022-01-15T13:00:00Z", "2022-01-15T14:00:00Z",
      "2022-04-01T11:00:00Z"}},
    {"CalendarSeedExampleEndsWithItsYear",
     R"pb(calendar {
            year: "2022"
            month: "Jan,Apr,Jul,Oct"
            day_of_month: "1,15"
            hour: "11-14"
          })pb",
     "2022-10-15T14:00:00Z", {kNone}},
    // All defaults: hour, minute and second 0, the rest "*": every midnight.
    {"CalendarDefaultsToMidnight", R"pb(calendar {})pb", "2025-01-01T00:00:00Z",
     {"2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"}},
    // Names are case-insensitive abbreviations: "tu" Tuesday, "THURS" Thursday.
    // 2025-01-01 is a Wednesday.
    {"CalendarWeekdayAbbreviations", R"pb(calendar { day_of_week: "tu,THURS" hour: "18" })pb",
     "2025-01-01T00:00:00Z",
     {"2025-01-02T18:00:00Z", "2025-01-07T18:00:00Z", "2025-01-09T18:00:00Z"}},
    {"CalendarMonthFullName", R"pb(calendar { month: "september" day_of_month: "1" })pb",
     "2025-01-01T00:00:00Z", {"2025-09-01T00:00:00Z", "2026-09-01T00:00:00Z"}},
    // "5/20": 5, 25, 45.
    {"CalendarStepFromValue", R"pb(calendar { minute: "5/20" hour: "*" })pb",
     "2025-01-01T00:30:00Z",
     {"2025-01-01T00:45:00Z", "2025-01-01T01:05:00Z", "2025-01-01T01:25:00Z"}},
    {"CalendarSeconds", R"pb(calendar { second: "10,40" minute: "*" hour: "*" })pb",
     "2025-01-01T00:00:10Z", {"2025-01-01T00:00:40Z", "2025-01-01T00:01:10Z"}},
    // A single far year is one jump away.
    {"YearFarAhead", R"pb(cron_string: "0 0 0 1 1 * 2090")pb", "2025-01-01T00:00:00Z",
     {"2090-01-01T00:00:00Z", kNone}},

    // ---- structured calendars ----
    // A Range with only start is that value (end and step default).
    {"StructuredSingleValues",
     R"pb(structured_calendar {
            second { start: 0 }
            minute { start: 30 }
            hour { start: 9 }
            day_of_month { start: 1 end: 31 }
            month { start: 1 end: 12 }
            day_of_week { start: 0 end: 6 }
          })pb",
     "2025-01-01T00:00:00Z", {"2025-01-01T09:30:00Z", "2025-01-02T09:30:00Z"}},
    // Hours 0-23 step 6: 0, 6, 12, 18; an end below its start means the start alone.
    {"StructuredStepAndEndBelowStart",
     R"pb(structured_calendar {
            second { start: 0 }
            minute { start: 0 }
            hour { start: 0 end: 23 step: 6 }
            day_of_month { start: 10 end: 2 }
            month { start: 1 end: 12 }
            day_of_week { start: 0 end: 6 }
          })pb",
     "2025-01-10T07:00:00Z",
     {"2025-01-10T12:00:00Z", "2025-01-10T18:00:00Z", "2025-02-10T00:00:00Z"}},
    // "For all fields besides year, at least one Range must be present to match anything."
    {"StructuredMissingFieldMatchesNothing",
     R"pb(structured_calendar { hour { start: 9 } })pb", "2025-01-01T00:00:00Z", {kNone}},
    {"StructuredYears",
     R"pb(structured_calendar {
            second { start: 0 }
            minute { start: 0 }
            hour { start: 0 }
            day_of_month { start: 1 }
            month { start: 6 }
            year { start: 2030 end: 2040 step: 5 }
            day_of_week { start: 0 end: 6 }
          })pb",
     "2025-01-01T00:00:00Z",
     {"2030-06-01T00:00:00Z", "2035-06-01T00:00:00Z", "2040-06-01T00:00:00Z", kNone}},

    // ---- several calendars and intervals: their union, each time once ----
    {"UnionOfCalendarAndInterval",
     R"pb(cron_string: "0 12 * * *" interval { interval { seconds: 28800 } })pb",
     "2025-01-01T00:00:00Z",
     {"2025-01-01T08:00:00Z", "2025-01-01T12:00:00Z", "2025-01-01T16:00:00Z",
      "2025-01-02T00:00:00Z"}},
    {"UnionCountsSharedTimesOnce",
     R"pb(cron_string: "0 8 * * *"
          calendar { hour: "8" }
          interval { interval { seconds: 28800 } })pb",
     "2025-01-01T00:00:00Z",
     {"2025-01-01T08:00:00Z", "2025-01-01T16:00:00Z", "2025-01-02T00:00:00Z"}},

    // ---- time zones ----
    // The seed: 8:15 New York time. DST starts 2025-03-09 02:00 EST (07:00Z): 13:15Z before,
    // 12:15Z after.
    {"CronTzNewYork", R"pb(cron_string: "CRON_TZ=America/New_York 15 8 * * *")pb",
     "2025-03-07T00:00:00Z",
     {"2025-03-07T08:15:00-05:00", "2025-03-08T08:15:00-05:00", "2025-03-09T08:15:00-04:00",
      "2025-03-10T08:15:00-04:00"}},
    {"TimezoneNameField", R"pb(cron_string: "15 8 * * *" timezone_name: "America/New_York")pb",
     "2025-03-08T14:00:00Z", {"2025-03-09T08:15:00-04:00"}},
    // Spring forward: 2025-03-09 has no 02:30 in New York (02:00 EST jumps to 03:00 EDT).
    {"NewYorkSpringGapSkipped", R"pb(cron_string: "TZ=America/New_York 30 2 * * *")pb",
     "2025-03-07T12:00:00Z", {"2025-03-08T02:30:00-05:00", "2025-03-10T02:30:00-04:00"}},
    // Fall back: 2025-11-02 has two 01:30s (01:59:59 EDT is followed by 01:00:00 EST).
    {"NewYorkFallOverlapTwice", R"pb(cron_string: "CRON_TZ=America/New_York 30 1 * * *")pb",
     "2025-11-01T00:00:00Z",
     {"2025-11-01T01:30:00-04:00", "2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00",
      "2025-11-03T01:30:00-05:00"}},
    // The whole repeated hour matches twice, in order.
    {"NewYorkRepeatedHour",
     R"pb(calendar { minute: "0,30" hour: "1" } timezone_name: "America/New_York")pb",
     "2025-11-02T00:00:00-04:00",
     {"2025-11-02T01:00:00-04:00", "2025-11-02T01:30:00-04:00", "2025-11-02T01:00:00-05:00",
      "2025-11-02T01:30:00-05:00", "2025-11-03T01:00:00-05:00"}},
    // Starting inside the second 01:xx: the first copy is in the past.
    {"NewYorkStartInSecondCopy",
     R"pb(calendar { minute: "*/20" hour: "1" } timezone_name: "America/New_York")pb",
     "2025-11-02T01:10:00-05:00",
     {"2025-11-02T01:20:00-05:00", "2025-11-02T01:40:00-05:00", "2025-11-03T01:00:00-05:00"}},
    // Hourly on the hour across the spring gap: 01:00 EST, then 03:00 EDT (02:00 is skipped).
    {"NewYorkHourlyAcrossGap", R"pb(cron_string: "CRON_TZ=America/New_York 0 * * * *")pb",
     "2025-03-09T00:30:00-05:00",
     {"2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"}},
    // Santiago's DST starts at midnight: 2025-09-07 00:00 -04 jumps to 01:00 -03, so that day
    // has no midnight.
    {"SantiagoMidnightGap", R"pb(cron_string: "CRON_TZ=America/Santiago 0 0 * * *")pb",
     "2025-09-05T12:00:00Z",
     {"2025-09-06T00:00:00-04:00", "2025-09-08T00:00:00-03:00", "2025-09-09T00:00:00-03:00"}},
    // Santiago's DST ends at midnight: 2025-04-06 00:00 -03 goes back to 2025-04-05 23:00
    // -04, so 23:30 on Saturday the 5th happens twice.
    {"SantiagoOverlapBeforeMidnight", R"pb(cron_string: "CRON_TZ=America/Santiago 30 23 * * *")pb",
     "2025-04-04T12:00:00Z",
     {"2025-04-04T23:30:00-03:00", "2025-04-05T23:30:00-03:00", "2025-04-05T23:30:00-04:00",
      "2025-04-06T23:30:00-04:00"}},
    // Midnight right after the overlap happens once, in -04: 00:00 -03 on the 6th is the
    // instant the clocks go back, so it reads 23:00 -04 on the 5th.
    {"SantiagoMidnightAfterOverlap", R"pb(cron_string: "CRON_TZ=America/Santiago 0 0 * * *")pb",
     "2025-04-05T12:00:00Z", {"2025-04-06T00:00:00-04:00", "2025-04-07T00:00:00-04:00"}},
    // A single far date, in a DST zone: 2090-12-25 12:00 EST.
    {"FarDateInNewYork", R"pb(cron_string: "CRON_TZ=America/New_York 0 0 12 25 12 * 2090")pb",
     "2025-01-01T00:00:00Z", {"2090-12-25T12:00:00-05:00", kNone}},

    // ---- exclusions ----
    // CalendarSpec defaults apply to exclusions too: this one excludes 00:00:00 only.
    {"ExclusionDefaultsAreMidnightOnly",
     R"pb(interval { interval { seconds: 43200 } }
          exclude_calendar { month: "12" day_of_month: "25" })pb",
     "2025-12-24T13:00:00Z", {"2025-12-25T12:00:00Z", "2025-12-26T00:00:00Z"}},
    // Every minute, except hours 0-22: one step over the excluded hours, not 1380.
    {"ExclusionSkipsWholeRun",
     R"pb(interval { interval { seconds: 60 } }
          exclude_structured_calendar {
            second { start: 0 end: 59 }
            minute { start: 0 end: 59 }
            hour { start: 0 end: 22 }
            day_of_month { start: 1 end: 31 }
            month { start: 1 end: 12 }
            day_of_week { start: 0 end: 6 }
          })pb",
     "2025-01-01T00:00:00Z",
     {"2025-01-01T23:00:00Z", "2025-01-01T23:01:00Z"}},
    {"ExclusionSkipsToNextDay",
     R"pb(interval { interval { seconds: 60 } }
          exclude_structured_calendar {
            second { start: 0 end: 59 }
            minute { start: 0 end: 59 }
            hour { start: 0 end: 22 }
            day_of_month { start: 1 end: 31 }
            month { start: 1 end: 12 }
            day_of_week { start: 0 end: 6 }
          })pb",
     "2025-01-01T23:59:00Z", {"2025-01-02T23:00:00Z"}},
    // A whole excluded year.
    {"ExclusionOfAYear",
     R"pb(cron_string: "0 0 * * *"
          exclude_calendar { second: "*" minute: "*" hour: "*" year: "2026" })pb",
     "2025-12-31T00:00:00Z", {"2027-01-01T00:00:00Z"}},
    // Weekends excluded from an hourly spec: from Friday 23:00, Monday 00:00.
    // (2025-01-03 is a Friday.)
    {"ExclusionOfWeekends",
     R"pb(cron_string: "0 * * * *"
          exclude_calendar { second: "*" minute: "*" hour: "*" day_of_week: "Sat,Sun" })pb",
     "2025-01-03T22:30:00Z", {"2025-01-03T23:00:00Z", "2025-01-06T00:00:00Z"}},
    // Exclusions are matched in the spec's zone: New York's hour 1 on 2025-11-02 covers both
    // copies of it, 05:00Z and 06:00Z.
    {"ExclusionInZoneCoversBothCopies",
     R"pb(cron_string: "0 * * * *"
          timezone_name: "America/New_York"
          exclude_calendar { second: "*" minute: "*" hour: "1" })pb",
     "2025-11-02T00:30:00-04:00", {"2025-11-02T02:00:00-05:00"}},
    // Every even second, with every even second excluded: no action, ever. Each skip passes
    // one second, so the search stops at its skip bound, which gives the same answer.
    {"EveryActionExcludedOneByOne",
     R"pb(interval { interval { seconds: 2 } }
          exclude_calendar { second: "*/2" minute: "*" hour: "*" })pb",
     "2025-01-01T00:00:00Z", {kNone}},
    {"EverythingExcluded",
     R"pb(interval { interval { seconds: 3600 } }
          exclude_calendar { second: "*" minute: "*" hour: "*" })pb",
     "2025-01-01T00:00:00Z", {kNone}},

    // ---- start and end bounds, both inclusive ----
    {"StartTimeInclusive",
     R"pb(interval { interval { seconds: 3600 } } start_time { seconds: 1735725600 })pb",
     // start_time 1735725600 = 2025-01-01T10:00:00Z
     "2025-01-01T00:00:00Z", {"2025-01-01T10:00:00Z"}},
    {"StartTimeFractionRoundsUp",
     R"pb(interval { interval { seconds: 3600 } }
          start_time { seconds: 1735725600 nanos: 500000000 })pb",
     "2025-01-01T00:00:00Z", {"2025-01-01T11:00:00Z"}},
    {"EndTimeInclusive",
     R"pb(interval { interval { seconds: 3600 } } end_time { seconds: 1735732800 })pb",
     // end_time 1735732800 = 2025-01-01T12:00:00Z
     "2025-01-01T10:30:00Z", {"2025-01-01T11:00:00Z", "2025-01-01T12:00:00Z", kNone}},
    {"EndBeforeStart",
     R"pb(interval { interval { seconds: 3600 } }
          start_time { seconds: 1735732800 }
          end_time { seconds: 1735725600 })pb",
     "2025-01-01T00:00:00Z", {kNone}},
    // Nothing after 2100.
    {"IntervalsEndWith2100", R"pb(interval { interval { seconds: 86400 } })pb",
     "2100-12-30T12:00:00Z", {"2100-12-31T00:00:00Z", kNone}},
};

INSTANTIATE_TEST_SUITE_P(Forms, NextTest, ::testing::ValuesIn(kNextCases),
                         [](const ::testing::TestParamInfo<NextCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- Between ------------------------------------------------------------------------------

TEST(BetweenTest, BothEndsInclusive) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(interval { interval { seconds: 3600 } })pb"));
  std::vector<std::string> got;
  for (absl::Time t : spec.Between(T("2025-01-01T10:00:00Z"), T("2025-01-01T13:00:00Z"), 100)) {
    got.push_back(Utc(t));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z",
                                           "2025-01-01T12:00:00Z", "2025-01-01T13:00:00Z"}));
}

TEST(BetweenTest, LimitAndEmptyRanges) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(interval { interval { seconds: 3600 } })pb"));
  EXPECT_EQ(spec.Between(T("2025-01-01T10:00:00Z"), T("2025-01-02T00:00:00Z"), 2).size(), 2u);
  EXPECT_TRUE(spec.Between(T("2025-01-01T10:00:00Z"), T("2025-01-02T00:00:00Z"), 0).empty());
  EXPECT_TRUE(spec.Between(T("2025-01-01T13:00:00Z"), T("2025-01-01T10:00:00Z"), 9).empty());
  // A fractional start excludes the whole second it is in.
  const std::vector<absl::Time> got =
      spec.Between(T("2025-01-01T10:00:00.5Z"), T("2025-01-01T11:30:00Z"), 9);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(Utc(got[0]), "2025-01-01T11:00:00Z");
}

// "Each Monday at noon except for holidays" (the seed's example of exclusions).
TEST(BetweenTest, NoonExceptHolidays) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    calendar { hour: "12" comment: "noon every day" }
    exclude_calendar { second: "*" minute: "*" hour: "*" month: "Dec" day_of_month: "25" }
    exclude_structured_calendar {
      second { start: 0 end: 59 }
      minute { start: 0 end: 59 }
      hour { start: 0 end: 23 }
      day_of_month { start: 1 }
      month { start: 1 }
      day_of_week { start: 0 end: 6 }
    }
  )pb"));
  std::vector<std::string> got;
  for (absl::Time t : spec.Between(T("2025-12-24T00:00:00Z"), T("2026-01-03T12:00:00Z"), 100)) {
    got.push_back(Utc(t));
  }
  EXPECT_EQ(got, (std::vector<std::string>{
                     "2025-12-24T12:00:00Z", "2025-12-26T12:00:00Z", "2025-12-27T12:00:00Z",
                     "2025-12-28T12:00:00Z", "2025-12-29T12:00:00Z", "2025-12-30T12:00:00Z",
                     "2025-12-31T12:00:00Z", "2026-01-02T12:00:00Z", "2026-01-03T12:00:00Z"}));
}

// A year of an hourly New York calendar: 8760 hours, minus the skipped 02:00 in March,
// plus the repeated 01:00 in November.
TEST(BetweenTest, YearOfHoursInNewYork) {
  const CompiledSpec spec =
      MustCompile(SpecOf(R"pb(cron_string: "CRON_TZ=America/New_York 0 * * * *")pb"));
  const std::vector<absl::Time> got =
      spec.Between(T("2025-01-01T00:00:00-05:00"), T("2025-12-31T23:00:00-05:00"), 100000);
  EXPECT_EQ(got.size(), 8760u);
  // The instants are exactly the UTC hours of the year: none twice, none missing.
  std::set<absl::Time> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), got.size());
  EXPECT_EQ(Utc(got.front()), "2025-01-01T05:00:00Z");
  EXPECT_EQ(Utc(got.back()), "2026-01-01T04:00:00Z");
}

// ---- Jitter -------------------------------------------------------------------------------

TEST(JitterTest, WithinMaximumAndSpread) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    interval { interval { seconds: 3600 } }
    jitter { seconds: 600 }
  )pb"),
                                        "namespace/schedule-a");
  const std::vector<ScheduledTime> got =
      spec.ScheduledBetween(T("2025-01-01T00:00:00Z"), T("2025-01-09T23:30:00Z"), 1000);
  ASSERT_EQ(got.size(), 216u);  // 9 days of hours; the last, 23:00, is due by 23:10
  std::set<absl::Duration> delays;
  for (const ScheduledTime& st : got) {
    const absl::Duration delay = st.actual - st.nominal;
    EXPECT_GE(delay, absl::ZeroDuration());
    EXPECT_LT(delay, absl::Minutes(10));
    EXPECT_EQ(delay, absl::Trunc(delay, absl::Milliseconds(1)));  // millisecond granularity
    EXPECT_EQ(absl::ToUnixSeconds(st.nominal) % 3600, 0);
    delays.insert(delay);
  }
  EXPECT_GT(delays.size(), 200u);  // pseudo-random, not constant
}

TEST(JitterTest, BoundedByTimeUntilNextAction) {
  // One minute apart, up to an hour of jitter: each action still comes before the next.
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    interval { interval { seconds: 60 } }
    jitter { seconds: 3600 }
  )pb"));
  const std::vector<ScheduledTime> got =
      spec.ScheduledBetween(T("2025-01-01T00:00:00Z"), T("2025-01-01T05:00:00Z"), 1000);
  ASSERT_GT(got.size(), 290u);
  absl::Duration longest;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LT(got[i].actual - got[i].nominal, absl::Seconds(60));
    if (i > 0) {
      EXPECT_LT(got[i - 1].actual, got[i].actual);
    }
    longest = std::max(longest, got[i].actual - got[i].nominal);
  }
  EXPECT_GT(longest, absl::Seconds(50));  // the bound is the gap, not something smaller
}

TEST(JitterTest, LastActionBoundedOnlyByMaximum) {
  // The last action before end_time has no next action to bound it: its jitter can exceed
  // the 60 s spacing. Across 20 seeds, each has a 59/60 chance of doing so.
  int over_a_minute = 0;
  for (int seed = 0; seed < 20; ++seed) {
    const CompiledSpec spec = MustCompile(SpecOf(R"pb(
      interval { interval { seconds: 60 } }
      jitter { seconds: 3600 }
      end_time { seconds: 1735732800 }
    )pb"),
                                          absl::StrCat("seed-", seed));
    const absl::optional<ScheduledTime> last = spec.NextScheduled(T("2025-01-01T11:59:30Z"));
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(Utc(last->nominal), "2025-01-01T12:00:00Z");
    EXPECT_LT(last->actual - last->nominal, absl::Hours(1));
    if (last->actual - last->nominal > absl::Minutes(1)) ++over_a_minute;
  }
  EXPECT_GT(over_a_minute, 15);
}

TEST(JitterTest, DeterministicPerSeed) {
  const ScheduleSpec text = SpecOf(R"pb(
    cron_string: "*/5 * * * *"
    jitter { seconds: 240 }
  )pb");
  const auto times = [&](absl::string_view seed) {
    return MustCompile(text, seed).Between(T("2025-01-01T00:00:00Z"), T("2025-01-01T04:00:00Z"),
                                           1000);
  };
  EXPECT_EQ(times("a"), times("a"));
  EXPECT_NE(times("a"), times("b"));
}

TEST(JitterTest, ZeroJitterIsNominal) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(interval { interval { seconds: 60 } })pb"));
  for (const ScheduledTime& st :
       spec.ScheduledBetween(T("2025-01-01T00:00:00Z"), T("2025-01-01T01:00:00Z"), 100)) {
    EXPECT_EQ(st.actual, st.nominal);
  }
}

TEST(JitterTest, NextReturnsJitteredTimeOfNextNominal) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    interval { interval { seconds: 3600 } }
    jitter { seconds: 1800 }
  )pb"));
  const absl::optional<ScheduledTime> st = spec.NextScheduled(T("2025-01-01T10:00:00Z"));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(Utc(st->nominal), "2025-01-01T11:00:00Z");
  EXPECT_EQ(spec.Next(T("2025-01-01T10:00:00Z")), st->actual);
  // Asking again from the jittered time gives the following action.
  const absl::optional<ScheduledTime> following = spec.NextScheduled(st->actual);
  ASSERT_TRUE(following.has_value());
  EXPECT_EQ(Utc(following->nominal), "2025-01-01T12:00:00Z");
}

// ---- Time zone data carried in the spec ----------------------------------------------------

// A TZif v2 file with no transitions and the footer "<+03>-3<+04>,M3.5.0,M10.5.0/3": UTC+3,
// and UTC+4 from the last Sunday of March at 02:00 to the last Sunday of October at 03:00.
std::string TestZoneTzif() {
  std::string out;
  const auto u32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
  };
  const auto header = [&](uint32_t typecnt, uint32_t charcnt) {
    out += "TZif2";
    out += std::string(15, '\0');
    u32(0), u32(0), u32(0), u32(0), u32(typecnt), u32(charcnt);
  };
  header(1, 4);  // v1 block: one type, UTC+3
  u32(3 * 3600), out.push_back(0), out.push_back(0), out += std::string("+03", 4);
  header(1, 4);  // v2 block, the same
  u32(3 * 3600), out.push_back(0), out.push_back(0), out += std::string("+03", 4);
  out += "\n<+03>-3<+04>,M3.5.0,M10.5.0/3\n";
  return out;
}

TEST(TimezoneDataTest, RulesFromTheFooter) {
  ScheduleSpec spec = SpecOf(R"pb(cron_string: "30 2 * * *" timezone_name: "Test/Zone")pb");
  spec.set_timezone_data(TestZoneTzif());
  // 2025: DST from Sun 30 March 02:00 +03 to Sun 26 October 03:00 +04 (the last Sundays).
  // 30 March has no 02:30; 26 October has two.
  ExpectChain(MustCompile(spec), T("2025-03-28T12:00:00Z"),
              {"2025-03-29T02:30:00+03:00", "2025-03-31T02:30:00+04:00"});
  ExpectChain(MustCompile(spec), T("2025-10-24T12:00:00Z"),
              {"2025-10-25T02:30:00+04:00", "2025-10-26T02:30:00+04:00",
               "2025-10-26T02:30:00+03:00", "2025-10-27T02:30:00+03:00"});
}

TEST(TimezoneDataTest, SystemFileBytesMatchTheNamedZone) {
  const std::string tzif = ReadFile("/usr/share/zoneinfo/America/New_York");
  ASSERT_FALSE(tzif.empty());
  ScheduleSpec by_data = SpecOf(R"pb(cron_string: "30 1,2 * * *")pb");
  by_data.set_timezone_data(tzif);
  ScheduleSpec by_name =
      SpecOf(R"pb(cron_string: "30 1,2 * * *" timezone_name: "America/New_York")pb");
  const absl::Time from = T("2024-01-01T00:00:00Z");
  const absl::Time to = T("2031-01-01T00:00:00Z");
  const std::vector<absl::Time> a = MustCompile(by_data).Between(from, to, 100000);
  const std::vector<absl::Time> b = MustCompile(by_name).Between(from, to, 100000);
  EXPECT_EQ(a.size(), 2u * 2557);  // 2557 days in 2024-2030; each year skips one, repeats one
  EXPECT_EQ(a, b);
}

// ---- Canonical form -----------------------------------------------------------------------

std::string Ranges(
    const google::protobuf::RepeatedPtrField<temporal::api::schedule::v1::Range>& rs) {
  std::string out;
  for (const auto& r : rs) {
    absl::StrAppend(&out, out.empty() ? "" : ",", r.start(), "-", r.end(), "/", r.step());
  }
  return out;
}

TEST(CanonicalTest, CalendarStringsBecomeStructured) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    calendar {
      year: "2022"
      month: "Jan,Apr,Jul,Oct"
      day_of_month: "1,15"
      hour: "11-14"
      comment: "quarterly"
    }
  )pb"));
  const ScheduleSpec c = spec.Canonical();
  EXPECT_EQ(c.calendar_size(), 0);
  ASSERT_EQ(c.structured_calendar_size(), 1);
  const StructuredCalendarSpec& s = c.structured_calendar(0);
  EXPECT_EQ(Ranges(s.second()), "0-0/1");
  EXPECT_EQ(Ranges(s.minute()), "0-0/1");
  EXPECT_EQ(Ranges(s.hour()), "11-14/1");
  EXPECT_EQ(Ranges(s.day_of_month()), "1-1/1,15-15/1");
  EXPECT_EQ(Ranges(s.month()), "1-1/1,4-4/1,7-7/1,10-10/1");
  EXPECT_EQ(Ranges(s.year()), "2022-2022/1");
  EXPECT_EQ(Ranges(s.day_of_week()), "0-6/1");
  EXPECT_EQ(s.comment(), "quarterly");
}

TEST(CanonicalTest, CronStringsBecomeCalendarsIntervalsAndZone) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    cron_string: "CRON_TZ=America/New_York 15 8 * * 1-5 # weekday mornings"
    cron_string: "CRON_TZ=America/New_York @every 90m/15m"
    exclude_calendar { day_of_week: "sat" }
    start_time { seconds: 1735689600 }
    jitter { seconds: 30 }
  )pb"));
  const ScheduleSpec c = spec.Canonical();
  EXPECT_EQ(c.cron_string_size(), 0);
  EXPECT_EQ(c.exclude_calendar_size(), 0);
  EXPECT_EQ(c.timezone_name(), "America/New_York");
  ASSERT_EQ(c.structured_calendar_size(), 1);
  EXPECT_EQ(Ranges(c.structured_calendar(0).hour()), "8-8/1");
  EXPECT_EQ(Ranges(c.structured_calendar(0).minute()), "15-15/1");
  EXPECT_EQ(Ranges(c.structured_calendar(0).day_of_week()), "1-5/1");
  EXPECT_EQ(Ranges(c.structured_calendar(0).year()), "");
  EXPECT_EQ(c.structured_calendar(0).comment(), "weekday mornings");
  ASSERT_EQ(c.interval_size(), 1);
  EXPECT_EQ(c.interval(0).interval().seconds(), 5400);
  EXPECT_EQ(c.interval(0).phase().seconds(), 900);
  ASSERT_EQ(c.exclude_structured_calendar_size(), 1);
  EXPECT_EQ(Ranges(c.exclude_structured_calendar(0).day_of_week()), "6-6/1");
  EXPECT_EQ(c.start_time().seconds(), 1735689600);
  EXPECT_EQ(c.jitter().seconds(), 30);
}

TEST(CanonicalTest, StructuredRangesGetExplicitEndAndStep) {
  const CompiledSpec spec = MustCompile(SpecOf(R"pb(
    structured_calendar {
      second { start: 0 }
      minute { start: 5 end: 2 }
      hour { start: 0 end: 23 step: 6 }
      day_of_month { start: 1 end: 31 }
      month { start: 1 end: 12 }
      day_of_week { start: 0 end: 6 }
    }
  )pb"));
  const StructuredCalendarSpec s = spec.Canonical().structured_calendar(0);
  EXPECT_EQ(Ranges(s.second()), "0-0/1");
  EXPECT_EQ(Ranges(s.minute()), "5-5/1");
  EXPECT_EQ(Ranges(s.hour()), "0-23/6");
}

TEST(CanonicalTest, CompilingTheCanonicalFormChangesNothing) {
  const ScheduleSpec original = SpecOf(R"pb(
    cron_string: "TZ=America/Santiago 0 0,12 * * Mon-Fri"
    calendar { minute: "*/20" hour: "9-17" day_of_week: "7" }
    interval { interval { seconds: 5400 } phase { seconds: 60 } }
    exclude_calendar { second: "*" minute: "*" hour: "*" month: "feb" }
  )pb");
  const CompiledSpec first = MustCompile(original);
  const CompiledSpec second = MustCompile(first.Canonical());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(first.Canonical(),
                                                                 second.Canonical()));
  const absl::Time from = T("2025-01-01T00:00:00Z");
  const absl::Time to = T("2025-12-31T00:00:00Z");
  EXPECT_EQ(first.Between(from, to, 100000), second.Between(from, to, 100000));
}

// ---- Errors -------------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  const char* spec;
  const char* message;  // a substring of the error
};
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << "\"" << c.name << "\""; }


class ErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ErrorTest, InvalidArgument) {
  const ErrorCase& c = GetParam();
  const absl::StatusOr<CompiledSpec> compiled = CompileSpec(SpecOf(c.spec));
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(compiled.status().message().find(c.message), absl::string_view::npos)
      << compiled.status();
}

const ErrorCase kErrorCases[] = {
    {"CronFourFields", R"pb(cron_string: "* * * *")pb", "has 4 fields; want 5, 6 or 7"},
    {"CronEightFields", R"pb(cron_string: "0 0 0 * * * * 2030")pb", "has 8 fields"},
    {"CronOnlyTimeZone", R"pb(cron_string: "CRON_TZ=America/New_York")pb", "no schedule"},
    {"CronEmpty", R"pb(cron_string: "  ")pb", "is empty"},
    {"MinuteOutOfRange", R"pb(cron_string: "60 * * * *")pb",
     "minute: \"60\" is not a number in [0, 59]"},
    {"HourOutOfRange", R"pb(cron_string: "0 24 * * *")pb", "hour: \"24\""},
    {"DayOfMonthZero", R"pb(cron_string: "0 0 0 * *")pb", "day_of_month: \"0\""},
    {"DayOfMonth32", R"pb(cron_string: "0 0 32 * *")pb", "day_of_month: \"32\""},
    {"Month13", R"pb(cron_string: "0 0 1 13 *")pb", "month: \"13\" is not a month"},
    {"UnknownMonthName", R"pb(calendar { month: "Smarch" })pb", "calendar[0].month: \"Smarch\""},
    {"MonthNameTooShort", R"pb(calendar { month: "Ju" })pb", "month: \"Ju\""},
    {"DayOfWeek8", R"pb(cron_string: "0 0 * * 8")pb", "day_of_week: \"8\""},
    {"WeekdayNameTooShort", R"pb(calendar { day_of_week: "T" })pb", "day_of_week: \"T\""},
    {"YearBefore2000", R"pb(calendar { year: "1999" })pb",
     "year: \"1999\" is not a number in [2000, 2100]"},
    {"YearAfter2100", R"pb(cron_string: "0 0 0 1 1 * 2101")pb", "year: \"2101\""},
    {"ZeroStep", R"pb(cron_string: "*/0 * * * *")pb", "step that is not a positive integer"},
    {"NonNumericStep", R"pb(calendar { minute: "1/x" })pb", "step that is not a positive integer"},
    {"TooManyDashes", R"pb(calendar { hour: "1-2-3" })pb", "is not a range"},
    {"RangeBackwards", R"pb(calendar { hour: "5-3" })pb", "ends before it starts"},
    {"EmptyListItem", R"pb(calendar { hour: "1,,2" })pb", "empty list item"},
    {"UnknownPredefined", R"pb(cron_string: "@fortnightly")pb", "unknown schedule"},
    {"PredefinedWithExtraText", R"pb(cron_string: "@daily 5")pb", "text after the schedule name"},
    {"EveryWithoutInterval", R"pb(cron_string: "@every")pb", "no interval after @every"},
    {"EveryZero", R"pb(cron_string: "@every 0s")pb", "interval must be at least 1s"},
    {"EveryNegative", R"pb(cron_string: "@every -5m")pb", "interval must be at least 1s"},
    {"EveryBadDuration", R"pb(cron_string: "@every 5 minutes")pb", "is not a duration"},
    {"EveryPhaseNotShorter", R"pb(cron_string: "@every 1h/2h")pb", "phase must be shorter"},
    {"IntervalMissing", R"pb(interval {})pb", "interval[0]: interval must be at least 1s"},
    {"IntervalUnderASecond", R"pb(interval { interval { nanos: 500000000 } })pb", "at least 1s"},
    {"IntervalNegative", R"pb(interval { interval { seconds: -60 } })pb", "at least 1s"},
    {"PhaseNegative", R"pb(interval { interval { seconds: 60 } phase { seconds: -1 } })pb",
     "phase must not be negative"},
    {"PhaseEqualsInterval", R"pb(interval { interval { seconds: 60 } phase { seconds: 60 } })pb",
     "phase must be shorter"},
    {"DurationMixedSigns", R"pb(interval { interval { seconds: 60 nanos: -1 } })pb",
     "not a valid duration"},
    {"UnknownTimeZone", R"pb(cron_string: "0 0 * * *" timezone_name: "Mars/Olympus_Mons")pb",
     "unknown time zone \"Mars/Olympus_Mons\""},
    {"TimeZonePathTraversal", R"pb(timezone_name: "../../../etc/passwd")pb", "unknown time zone"},
    {"TimeZoneFilePrefix", R"pb(timezone_name: "file:/etc/passwd")pb", "unknown time zone"},
    {"TimeZoneAbsolutePath", R"pb(timezone_name: "/usr/share/zoneinfo/UTC")pb",
     "unknown time zone"},
    {"UnknownCronTimeZone", R"pb(cron_string: "CRON_TZ=Nowhere/Town 0 0 * * *")pb",
     "unknown time zone \"Nowhere/Town\""},
    {"CronTimeZonesDisagree",
     R"pb(cron_string: "CRON_TZ=America/New_York 0 9 * * *" cron_string: "0 17 * * *")pb",
     "cron_string[1]: its time zone differs"},
    {"CronTimeZoneVersusName",
     R"pb(cron_string: "TZ=America/New_York 0 9 * * *" timezone_name: "Europe/Paris")pb",
     "conflicts with timezone_name"},
    {"CronTimeZoneVersusData",
     R"pb(cron_string: "TZ=America/New_York 0 9 * * *" timezone_data: "TZif")pb",
     "conflicts with timezone_name or timezone_data"},
    {"GarbageTimezoneData", R"pb(timezone_data: "not a tz file")pb", "not valid TZif data"},
    {"StructuredSecondOutOfRange", R"pb(structured_calendar { second { start: 60 } })pb",
     "structured_calendar[0].second[0]: start 60 is not in [0, 59]"},
    {"StructuredEndOutOfRange", R"pb(structured_calendar { day_of_month { start: 1 end: 32 } })pb",
     "day_of_month[0]: end 32 is above 31"},
    {"StructuredNegativeStep", R"pb(structured_calendar { hour { start: 1 end: 5 step: -1 } })pb",
     "step -1 is negative"},
    {"StructuredWeekday7", R"pb(structured_calendar { day_of_week { start: 7 } })pb",
     "day_of_week[0]: start 7 is not in [0, 6]"},
    {"StructuredYear1999", R"pb(structured_calendar { year { start: 1999 } })pb",
     "year[0]: start 1999"},
    {"ExclusionValidated", R"pb(exclude_structured_calendar { month { start: 13 } })pb",
     "exclude_structured_calendar[0].month[0]"},
    {"ExcludeCalendarParsed", R"pb(exclude_calendar { hour: "25" })pb", "exclude_calendar[0].hour"},
    {"NegativeJitter", R"pb(jitter { seconds: -1 })pb", "jitter: must not be negative"},
    {"BadStartTime", R"pb(start_time { seconds: 0 nanos: -5 })pb",
     "start_time: is not a valid timestamp"},
};

INSTANTIATE_TEST_SUITE_P(Malformed, ErrorTest, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ErrorTest, CommentLongerThan200Bytes) {
  ScheduleSpec spec;
  spec.add_calendar()->set_comment(std::string(200, 'x'));
  EXPECT_TRUE(CompileSpec(spec).ok());
  spec.mutable_calendar(0)->set_comment(std::string(201, 'x'));
  const absl::Status status = CompileSpec(spec).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "calendar[0].comment: longer than 200 bytes");
}

// ---- Cross-check against a naive scan -----------------------------------------------------

// A seeded randomized check, besides the hand-computed tables: around real DST transitions,
// the engine's actions equal those found by testing every 30 seconds, with absl's own zone
// conversion and the Range definitions read directly (no bit sets, no offset periods).
bool InRanges(const google::protobuf::RepeatedPtrField<temporal::api::schedule::v1::Range>& ranges,
              int64_t v, bool empty_matches_all) {
  if (ranges.empty()) return empty_matches_all;
  for (const auto& r : ranges) {
    const int64_t end = std::max(r.end(), r.start());
    const int64_t step = std::max(r.step(), 1);
    if (v >= r.start() && v <= end && (v - r.start()) % step == 0) return true;
  }
  return false;
}

bool NaiveMatches(const StructuredCalendarSpec& c, const absl::CivilSecond& t) {
  const int weekday = (static_cast<int>(absl::GetWeekday(absl::CivilDay(t))) + 1) % 7;  // Sun 0
  return InRanges(c.year(), t.year(), true) && InRanges(c.month(), t.month(), false) &&
         InRanges(c.day_of_month(), t.day(), false) && InRanges(c.day_of_week(), weekday, false) &&
         InRanges(c.hour(), t.hour(), false) && InRanges(c.minute(), t.minute(), false) &&
         InRanges(c.second(), t.second(), false);
}

class NaiveScanTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NaiveScanTest, SameActionsAroundEveryTransition) {
  const std::string zone_name = GetParam();
  absl::TimeZone tz;
  ASSERT_TRUE(absl::LoadTimeZone(zone_name, &tz));
  // Windows of four days around each offset change of 2025-2026, plus one quiet week.
  std::vector<absl::Time> centers = {T("2025-07-10T00:00:00Z")};
  absl::TimeZone::CivilTransition tr;
  for (absl::Time t = T("2025-01-01T00:00:00Z");
       tz.NextTransition(t, &tr) && tz.At(tr.to).trans < T("2027-01-01T00:00:00Z");) {
    t = tz.At(tr.to).trans;
    centers.push_back(t);
  }
  std::mt19937 rng(20250101);
  const auto subset = [&](int lo, int hi, int picks, auto* ranges) {
    for (int i = 0; i < picks; ++i) {
      auto* r = ranges->Add();
      r->set_start(std::uniform_int_distribution<int>(lo, hi)(rng));
      if (rng() % 3 == 0) {
        r->set_end(std::min(hi, r->start() + std::uniform_int_distribution<int>(0, 5)(rng)));
      }
    }
  };
  const auto random_calendar = [&](bool whole_minutes) {
    StructuredCalendarSpec c;
    if (whole_minutes) {
      auto* r = c.add_second();
      r->set_start(0);
      r->set_end(59);
      r->set_step(30);
    } else {
      c.add_second()->set_start(rng() % 2 == 0 ? 0 : 30);
    }
    subset(0, 59, 1 + rng() % 4, c.mutable_minute());
    subset(0, 3, 1 + rng() % 2, c.mutable_hour());  // transitions happen at night
    subset(0, 23, rng() % 3, c.mutable_hour());
    auto* days = c.add_day_of_month();
    days->set_start(1);
    days->set_end(31);
    auto* months = c.add_month();
    months->set_start(1);
    months->set_end(12);
    if (rng() % 3 == 0) {
      subset(0, 6, 1 + rng() % 4, c.mutable_day_of_week());
    } else {
      auto* r = c.add_day_of_week();
      r->set_start(0);
      r->set_end(6);
    }
    return c;
  };
  size_t compared = 0;
  for (int round = 0; round < 12; ++round) {
    ScheduleSpec spec;
    spec.set_timezone_name(zone_name);
    for (int i = 0; i < 1 + round % 3; ++i) {
      *spec.add_structured_calendar() = random_calendar(false);
    }
    if (round % 2 == 1) *spec.add_exclude_structured_calendar() = random_calendar(true);
    const CompiledSpec compiled = MustCompile(spec);
    for (absl::Time center : centers) {
      const absl::Time from = center - absl::Hours(48);
      const absl::Time to = center + absl::Hours(48);
      std::vector<absl::Time> want;
      for (absl::Time t = from; t <= to; t += absl::Seconds(30)) {
        const absl::CivilSecond civil = absl::ToCivilSecond(t, tz);
        bool match = false;
        for (const auto& c : spec.structured_calendar()) match = match || NaiveMatches(c, civil);
        for (const auto& c : spec.exclude_structured_calendar()) {
          match = match && !NaiveMatches(c, civil);
        }
        if (match) want.push_back(t);
      }
      ASSERT_EQ(compiled.Between(from, to, 1000000), want)
          << zone_name << " round " << round << " around " << Utc(center) << "\n"
          << spec.DebugString();
      compared += want.size();
    }
  }
  EXPECT_GT(compared, 300 * centers.size());  // the random calendars do match, often
}

INSTANTIATE_TEST_SUITE_P(Zones, NaiveScanTest,
                         ::testing::Values("UTC", "America/New_York", "America/Santiago",
                                           "Australia/Lord_Howe", "Europe/London"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (ch == '/') ch = '_';
                           }
                           return name;
                         });

// ---- Cron workflows (cron_schedule) --------------------------------------------------------

CompiledSpec MustCompileCron(absl::string_view cron, absl::Time anchor = absl::UnixEpoch()) {
  absl::StatusOr<CompiledSpec> compiled = CompileCron(cron, anchor);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  return *std::move(compiled);
}

TEST(CronScheduleTest, ClassicFiveFields) {
  ExpectChain(MustCompileCron("15 8 * * *"), T("2025-01-01T09:00:00Z"),
              {"2025-01-02T08:15:00Z", "2025-01-03T08:15:00Z"});
}

TEST(CronScheduleTest, DayOfMonthOrDayOfWeek) {
  // Classic cron: when both are restricted, either matches. June 2025 starts on a Sunday:
  // Fridays 6, 13, 20, 27; then Friday 4 and 11 July, Sunday 13 July, Friday 18 July.
  ExpectChain(MustCompileCron("0 0 13 * 5"), T("2025-06-01T00:00:00Z"),
              {"2025-06-06T00:00:00Z", "2025-06-13T00:00:00Z", "2025-06-20T00:00:00Z",
               "2025-06-27T00:00:00Z", "2025-07-04T00:00:00Z", "2025-07-11T00:00:00Z",
               "2025-07-13T00:00:00Z", "2025-07-18T00:00:00Z"});
  const ScheduleSpec canonical = MustCompileCron("0 0 13 * 5").Canonical();
  EXPECT_EQ(canonical.structured_calendar_size(), 2);
}

TEST(CronScheduleTest, StarDayKeepsAnd) {
  // Day of month "*" leaves only the weekday: Mondays (2025-01-06 is the first).
  ExpectChain(MustCompileCron("0 0 * * MON"), T("2025-01-01T00:00:00Z"),
              {"2025-01-06T00:00:00Z", "2025-01-13T00:00:00Z"});
  ExpectChain(MustCompileCron("0 0 ? * mon"), T("2025-01-01T00:00:00Z"), {"2025-01-06T00:00:00Z"});
}

TEST(CronScheduleTest, PredefinedAndTimeZone) {
  ExpectChain(MustCompileCron("@weekly"), T("2025-01-01T00:00:00Z"), {"2025-01-05T00:00:00Z"});
  // Midnight in New York is 05:00Z in January.
  ExpectChain(MustCompileCron("CRON_TZ=America/New_York @daily"), T("2025-01-01T12:00:00Z"),
              {"2025-01-02T00:00:00-05:00"});
  ExpectChain(MustCompileCron("TZ=America/New_York 15 8 * * *"), T("2025-07-01T00:00:00Z"),
              {"2025-07-01T08:15:00-04:00"});
}

TEST(CronScheduleTest, EveryCountsFromTheAnchor) {
  // A chain started at 10:17:23.5 runs every hour at 17:23 past (the start, in whole seconds).
  const absl::Time start = T("2025-01-01T10:17:23.5Z");
  ExpectChain(MustCompileCron("@every 1h", start), start,
              {"2025-01-01T11:17:23Z", "2025-01-01T12:17:23Z"});
  // Without an anchor, the Unix epoch.
  ExpectChain(MustCompileCron("@every 1h"), start, {"2025-01-01T11:00:00Z"});
}

TEST(CronScheduleTest, Rejected) {
  for (const char* bad : {
           "0 0 * * * 2030",    // six fields
           "0 0 * * * # note",  // no comments in cron_schedule
           "@every 1h/10m",     // no phase either
           "0 0 30 2 *",        // never matches
           "* * *",
           "",
       }) {
    const absl::StatusOr<CompiledSpec> compiled = CompileCron(bad);
    EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument) << "\"" << bad << "\"";
  }
  EXPECT_NE(CompileCron("0 0 30 2 *").status().message().find("matches no time"),
            absl::string_view::npos);
  EXPECT_NE(CompileCron("0 0 * * * 2030").status().message().find("want 5"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace almanac::scheduler
