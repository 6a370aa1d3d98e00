// The calendar matcher on wall-clock time, with no time zone. Dates are written as civil
// times; expected values are worked out from the calendar by hand.

#include "scheduler/calendar_matcher.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "google/protobuf/text_format.h"
#include "scheduler/spec_parse.h"

namespace almanac::scheduler {
namespace {

using temporal::api::schedule::v1::CalendarSpec;
using temporal::api::schedule::v1::StructuredCalendarSpec;

// Local seconds of a civil time "YYYY-MM-DDTHH:MM:SS".
int64_t L(const std::string& civil) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_sec, civil + "Z", &t, &err)) << civil << ": " << err;
  return absl::ToUnixSeconds(t);
}

std::string Civil(absl::optional<int64_t> local) {
  if (!local) return "none";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(*local), absl::UTCTimeZone());
}

CalendarMatcher Matcher(const std::string& calendar_text) {
  CalendarSpec cal;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(calendar_text, &cal));
  absl::StatusOr<StructuredCalendarSpec> s = ParseCalendarSpec(cal, "calendar");
  EXPECT_TRUE(s.ok()) << s.status();
  return CalendarMatcher(*s);
}

TEST(NextMatchTest, AtOrAfter) {
  const CalendarMatcher m = Matcher(R"pb(hour: "12")pb");
  EXPECT_EQ(Civil(m.NextMatch(L("2025-01-01T12:00:00"))), "2025-01-01T12:00:00");  // itself
  EXPECT_EQ(Civil(m.NextMatch(L("2025-01-01T12:00:01"))), "2025-01-02T12:00:00");
  EXPECT_EQ(Civil(m.NextMatch(L("2025-12-31T23:00:00"))), "2026-01-01T12:00:00");
}

TEST(NextMatchTest, CarriesThroughEveryField) {
  // Second 30 of minute 59 of hour 23 on 31 December: from just after one, a year later.
  const CalendarMatcher m =
      Matcher(R"pb(second: "30" minute: "59" hour: "23" day_of_month: "31" month: "12")pb");
  EXPECT_EQ(Civil(m.NextMatch(L("2025-12-31T23:59:31"))), "2026-12-31T23:59:30");
}

TEST(NextMatchTest, DayOfMonthAndWeekTogether) {
  // The last Sunday of October is a Sunday in 25-31; in 2025 it is the 26th, in 2026 the 25th.
  const CalendarMatcher m = Matcher(R"pb(day_of_month: "25-31" month: "10" day_of_week: "Sun")pb");
  EXPECT_EQ(Civil(m.NextMatch(L("2025-01-01T00:00:00"))), "2025-10-26T00:00:00");
  EXPECT_EQ(Civil(m.NextMatch(L("2025-10-26T00:00:01"))), "2026-10-25T00:00:00");
}

TEST(NextMatchTest, YearsAndTheEndOf2100) {
  const CalendarMatcher every_day = Matcher(R"pb()pb");
  EXPECT_EQ(Civil(every_day.NextMatch(L("2100-12-31T00:00:00"))), "2100-12-31T00:00:00");
  EXPECT_EQ(Civil(every_day.NextMatch(L("2100-12-31T00:00:01"))), "none");
  // Unrestricted years match before 2000 too.
  EXPECT_EQ(Civil(every_day.NextMatch(L("1970-01-01T00:00:01"))), "1970-01-02T00:00:00");
  // Restricted years start no earlier than 2000.
  const CalendarMatcher y2077 = Matcher(R"pb(year: "2077" month: "Feb" day_of_month: "3")pb");
  EXPECT_EQ(Civil(y2077.NextMatch(L("1970-01-01T00:00:00"))), "2077-02-03T00:00:00");
  EXPECT_EQ(Civil(y2077.NextMatch(L("2077-02-03T00:00:01"))), "none");
}

TEST(MatchesTest, EveryField) {
  const CalendarMatcher m = Matcher(
      R"pb(second: "5" minute: "10" hour: "15" day_of_month: "20" month: "Jun" year: "2025"
           day_of_week: "Fri")pb");
  EXPECT_TRUE(m.Matches(L("2025-06-20T15:10:05")));  // 2025-06-20 is a Friday
  EXPECT_FALSE(m.Matches(L("2025-06-20T15:10:06")));
  EXPECT_FALSE(m.Matches(L("2026-06-20T15:10:05")));  // a Saturday, and another year
  EXPECT_FALSE(m.Matches(L("2025-07-20T15:10:05")));
}

TEST(MatchesTest, EmptyFieldMatchesNothing) {
  StructuredCalendarSpec s;
  s.add_second()->set_start(0);
  s.add_hour()->set_start(0);  // no minute ranges
  const CalendarMatcher m(s);
  EXPECT_TRUE(m.MatchesNothing());
  EXPECT_EQ(Civil(m.NextMatch(L("2025-01-01T00:00:00"))), "none");
}

struct RunEndCase {
  const char* name;
  const char* calendar;  // CalendarSpec text
  const char* at;        // a matching civil time
  const char* want;      // the first later time that does not match, or "none"
};
void PrintTo(const RunEndCase& c, std::ostream* os) { *os << "\"" << c.name << "\""; }


class RunEndTest : public ::testing::TestWithParam<RunEndCase> {};

TEST_P(RunEndTest, FirstNonMatch) {
  const RunEndCase& c = GetParam();
  const CalendarMatcher m = Matcher(c.calendar);
  ASSERT_TRUE(m.Matches(L(c.at))) << c.at;
  EXPECT_EQ(Civil(m.RunEnd(L(c.at))), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Runs, RunEndTest,
    ::testing::Values(
        RunEndCase{"SingleSecond", R"pb(hour: "3")pb", "2025-01-01T03:00:00",
                   "2025-01-01T03:00:01"},
        RunEndCase{"FirstHalfOfEachMinute", R"pb(second: "0-29" minute: "*" hour: "*")pb",
                   "2025-01-01T10:00:05", "2025-01-01T10:00:30"},
        RunEndCase{"WholeHour", R"pb(second: "*" minute: "*" hour: "3")pb",
                   "2025-01-01T03:10:00", "2025-01-01T04:00:00"},
        RunEndCase{"HoursAcrossMidnight", R"pb(second: "*" minute: "*" hour: "22,23,0,1")pb",
                   "2025-01-31T22:30:00", "2025-02-01T02:00:00"},
        RunEndCase{"ChristmasDay",
                   R"pb(second: "*" minute: "*" hour: "*" month: "12" day_of_month: "25")pb",
                   "2025-12-25T08:00:00", "2025-12-26T00:00:00"},
        // 2025-01-04 is a Saturday: the weekend ends on Monday the 6th.
        RunEndCase{"Weekend", R"pb(second: "*" minute: "*" hour: "*" day_of_week: "Sat,Sun")pb",
                   "2025-01-04T10:00:00", "2025-01-06T00:00:00"},
        // Days 1-30 of every month: April has no 31st, so the run goes on to 31 May.
        RunEndCase{"DaysOneToThirty",
                   R"pb(second: "*" minute: "*" hour: "*" day_of_month: "1-30")pb",
                   "2025-04-15T00:00:00", "2025-05-31T00:00:00"},
        RunEndCase{"Months", R"pb(second: "*" minute: "*" hour: "*" month: "11-12,1")pb",
                   "2025-11-15T00:00:00", "2026-02-01T00:00:00"},
        RunEndCase{"Years", R"pb(second: "*" minute: "*" hour: "*" year: "2026-2027")pb",
                   "2026-03-01T00:00:00", "2028-01-01T00:00:00"},
        RunEndCase{"ThroughTheEnd", R"pb(second: "*" minute: "*" hour: "*" year: "2099-2100")pb",
                   "2099-03-01T00:00:00", "none"},
        RunEndCase{"Everything", R"pb(second: "*" minute: "*" hour: "*")pb",
                   "2030-01-01T00:00:00", "none"}),
    [](const ::testing::TestParamInfo<RunEndCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace almanac::scheduler
