// Parsing of CalendarSpec fields, cron strings and durations into canonical structured
// ranges, written as "start-end/step" lists. Expected ranges follow from the CalendarSpec
// comment's grammar (x, x-z, x/y, *, lists; 7 and 0 are both Sunday).

#include "scheduler/spec_parse.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"

namespace almanac::scheduler {
namespace {

using schedule_v1::CalendarSpec;
using schedule_v1::StructuredCalendarSpec;

std::string Ranges(const google::protobuf::RepeatedPtrField<schedule_v1::Range>& rs) {
  std::string out;
  for (const auto& r : rs) {
    absl::StrAppend(&out, out.empty() ? "" : ",", r.start(), "-", r.end(), "/", r.step());
  }
  return out;
}

enum class F { kSecond, kMinute, kHour, kDayOfMonth, kMonth, kYear, kDayOfWeek };

struct FieldCase {
  F field;
  const char* text;
  const char* want;  // canonical ranges
};
void PrintTo(const FieldCase& c, std::ostream* os) { *os << "\"" << c.text << "\""; }


class FieldTest : public ::testing::TestWithParam<FieldCase> {};

TEST_P(FieldTest, Canonical) {
  const FieldCase& c = GetParam();
  CalendarSpec cal;
  switch (c.field) {
    case F::kSecond: cal.set_second(c.text); break;
    case F::kMinute: cal.set_minute(c.text); break;
    case F::kHour: cal.set_hour(c.text); break;
    case F::kDayOfMonth: cal.set_day_of_month(c.text); break;
    case F::kMonth: cal.set_month(c.text); break;
    case F::kYear: cal.set_year(c.text); break;
    case F::kDayOfWeek: cal.set_day_of_week(c.text); break;
  }
  absl::StatusOr<StructuredCalendarSpec> s = ParseCalendarSpec(cal, "calendar");
  ASSERT_TRUE(s.ok()) << s.status();
  const google::protobuf::RepeatedPtrField<schedule_v1::Range>* ranges[] = {
      &s->second(), &s->minute(), &s->hour(), &s->day_of_month(),
      &s->month(),  &s->year(),   &s->day_of_week()};
  EXPECT_EQ(Ranges(*ranges[static_cast<int>(c.field)]), c.want) << "\"" << c.text << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Fields, FieldTest,
    ::testing::Values(
        // Defaults: second, minute and hour 0; the rest every value; year "*" is no list.
        FieldCase{F::kSecond, "", "0-0/1"}, FieldCase{F::kMinute, "", "0-0/1"},
        FieldCase{F::kHour, "", "0-0/1"}, FieldCase{F::kDayOfMonth, "", "1-31/1"},
        FieldCase{F::kMonth, "", "1-12/1"}, FieldCase{F::kYear, "", ""},
        FieldCase{F::kDayOfWeek, "", "0-6/1"},
        // Single values, ranges, lists, steps.
        FieldCase{F::kHour, " 9 ", "9-9/1"}, FieldCase{F::kHour, "11-14", "11-14/1"},
        FieldCase{F::kHour, "1, 2", "1-1/1,2-2/1"},
        FieldCase{F::kMinute, "*/15", "0-59/15"},
        FieldCase{F::kMinute, "5/20", "5-59/20"},  // x/y runs to the maximum
        FieldCase{F::kMinute, "1-5/2,8", "1-5/2,8-8/1"},
        FieldCase{F::kDayOfMonth, "1,15", "1-1/1,15-15/1"},
        FieldCase{F::kYear, "2022", "2022-2022/1"},
        FieldCase{F::kYear, "2030-2040/5", "2030-2040/5"},
        FieldCase{F::kYear, "*/50", "2000-2100/50"},
        // Month names: case-insensitive, three letters or more.
        FieldCase{F::kMonth, "Jan,Apr,Jul,Oct", "1-1/1,4-4/1,7-7/1,10-10/1"},
        FieldCase{F::kMonth, "january-MARCH", "1-3/1"},
        FieldCase{F::kMonth, "sep", "9-9/1"}, FieldCase{F::kMonth, "Dec/1", "12-12/1"},
        // Weekday names, two letters or more; 7 is Sunday, written 0.
        FieldCase{F::kDayOfWeek, "Mon-Fri", "1-5/1"},
        FieldCase{F::kDayOfWeek, "sa,SU", "6-6/1,0-0/1"},
        FieldCase{F::kDayOfWeek, "7", "0-0/1"},
        FieldCase{F::kDayOfWeek, "5-7", "0-0/1,5-6/1"},  // Fri, Sat, Sun
        FieldCase{F::kDayOfWeek, "0-7", "0-6/1"}, FieldCase{F::kDayOfWeek, "1-7", "0-6/1"},
        FieldCase{F::kDayOfWeek, "1/2", "0-0/1,1-6/2"},  // 1, 3, 5, 7
        FieldCase{F::kDayOfWeek, "*/2", "0-6/2"},        // 0, 2, 4, 6
        FieldCase{F::kDayOfWeek, "4-7/2", "4-6/2"}));    // 4, 6 (7 is not reached)

TEST(CronStringTest, TimeZoneCommentAndFields) {
  absl::StatusOr<ParsedCron> p = ParseCronString(
      "  CRON_TZ=Europe/Paris 0 30 9 * * Mon-Fri 2030 # standup  ", CronDialect::kScheduleSpec,
      "cron_string[0]");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->timezone_name, "Europe/Paris");
  ASSERT_EQ(p->calendars.size(), 1u);
  const StructuredCalendarSpec& s = p->calendars[0];
  EXPECT_EQ(Ranges(s.second()), "0-0/1");
  EXPECT_EQ(Ranges(s.minute()), "30-30/1");
  EXPECT_EQ(Ranges(s.hour()), "9-9/1");
  EXPECT_EQ(Ranges(s.day_of_week()), "1-5/1");
  EXPECT_EQ(Ranges(s.year()), "2030-2030/1");
  EXPECT_EQ(s.comment(), "standup");
}

TEST(CronStringTest, PredefinedEquivalents) {
  // The seed's table: @yearly = 0 0 1 1 *, @monthly = 0 0 1 * *, @weekly = 0 0 * * 0,
  // @daily = 0 0 * * *, @hourly = 0 * * * *.
  struct Case {
    const char* name;
    const char* minute;
    const char* hour;
    const char* day;
    const char* month;
    const char* weekday;
  };
  for (const Case& c : {Case{"@yearly", "0-0/1", "0-0/1", "1-1/1", "1-1/1", "0-6/1"},
                        Case{"@annually", "0-0/1", "0-0/1", "1-1/1", "1-1/1", "0-6/1"},
                        Case{"@monthly", "0-0/1", "0-0/1", "1-1/1", "1-12/1", "0-6/1"},
                        Case{"@weekly", "0-0/1", "0-0/1", "1-31/1", "1-12/1", "0-0/1"},
                        Case{"@daily", "0-0/1", "0-0/1", "1-31/1", "1-12/1", "0-6/1"},
                        Case{"@midnight", "0-0/1", "0-0/1", "1-31/1", "1-12/1", "0-6/1"},
                        Case{"@hourly", "0-0/1", "0-23/1", "1-31/1", "1-12/1", "0-6/1"}}) {
    absl::StatusOr<ParsedCron> p = ParseCronString(c.name, CronDialect::kScheduleSpec, "cron");
    ASSERT_TRUE(p.ok()) << c.name << ": " << p.status();
    ASSERT_EQ(p->calendars.size(), 1u);
    const StructuredCalendarSpec& s = p->calendars[0];
    EXPECT_EQ(Ranges(s.minute()), c.minute) << c.name;
    EXPECT_EQ(Ranges(s.hour()), c.hour) << c.name;
    EXPECT_EQ(Ranges(s.day_of_month()), c.day) << c.name;
    EXPECT_EQ(Ranges(s.month()), c.month) << c.name;
    EXPECT_EQ(Ranges(s.day_of_week()), c.weekday) << c.name;
  }
}

TEST(CronStringTest, EveryBecomesAnInterval) {
  absl::StatusOr<ParsedCron> p =
      ParseCronString("TZ=UTC @every 1h30m/15m", CronDialect::kScheduleSpec, "cron");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->calendars.empty());
  ASSERT_EQ(p->intervals.size(), 1u);
  EXPECT_EQ(p->intervals[0].interval().seconds(), 5400);
  EXPECT_EQ(p->intervals[0].phase().seconds(), 900);
  EXPECT_EQ(p->timezone_name, "UTC");
}

TEST(CronStringTest, CronScheduleDialect) {
  // Both days restricted: two calendars, one per day field.
  absl::StatusOr<ParsedCron> p = ParseCronString("0 0 1,15 * Fri", CronDialect::kCronSchedule, "c");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->calendars.size(), 2u);
  EXPECT_EQ(Ranges(p->calendars[0].day_of_month()), "1-1/1,15-15/1");
  EXPECT_EQ(Ranges(p->calendars[0].day_of_week()), "0-6/1");
  EXPECT_EQ(Ranges(p->calendars[1].day_of_month()), "1-31/1");
  EXPECT_EQ(Ranges(p->calendars[1].day_of_week()), "5-5/1");
  // "?" is "*", so the rule does not apply.
  p = ParseCronString("0 0 ? * Fri", CronDialect::kCronSchedule, "c");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->calendars.size(), 1u);
  // In a schedule's cron_string "?" is not a value.
  EXPECT_FALSE(ParseCronString("0 0 ? * Fri", CronDialect::kScheduleSpec, "c").ok());
}

TEST(DurationTest, GoSyntaxPlusDays) {
  struct Case {
    const char* text;
    absl::Duration want;
  };
  for (const Case& c : {Case{"90m", absl::Minutes(90)}, Case{"1h30m", absl::Minutes(90)},
                        Case{"1.5h", absl::Minutes(90)}, Case{"2d", absl::Hours(48)},
                        Case{"1d12h", absl::Hours(36)}, Case{"0", absl::ZeroDuration()},
                        Case{"300ms", absl::Milliseconds(300)}, Case{"45s", absl::Seconds(45)},
                        Case{"7us", absl::Microseconds(7)},
                        Case{"7\xc2\xb5s", absl::Microseconds(7)},
                        Case{"-5m", absl::Minutes(-5)}, Case{"+5m", absl::Minutes(5)}}) {
    absl::StatusOr<absl::Duration> d = ParseCronDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.text;
  }
  for (const char* bad : {"", "h", "5", "1x", "1..5h", "inf", "5 m", "m5", "1h 30m", "-"}) {
    EXPECT_FALSE(ParseCronDuration(bad).ok()) << "\"" << bad << "\"";
  }
}

TEST(ValidateTest, RangesAgainstFieldBounds) {
  StructuredCalendarSpec ok;
  ok.add_second()->set_start(59);
  ok.add_minute()->set_start(0);
  ok.add_hour()->set_start(23);
  auto* dom = ok.add_day_of_month();
  dom->set_start(1);
  dom->set_end(31);
  ok.add_month()->set_start(12);
  ok.add_year()->set_start(2100);
  ok.add_day_of_week()->set_start(6);
  EXPECT_TRUE(ValidateStructuredCalendar(ok, "s").ok());

  StructuredCalendarSpec bad = ok;
  bad.mutable_hour(0)->set_start(24);
  EXPECT_EQ(ValidateStructuredCalendar(bad, "s").message(),
            "s.hour[0]: start 24 is not in [0, 23]");
  bad = ok;
  bad.mutable_month(0)->set_start(0);
  EXPECT_FALSE(ValidateStructuredCalendar(bad, "s").ok());
  bad = ok;
  bad.mutable_year(0)->set_end(2101);
  EXPECT_EQ(ValidateStructuredCalendar(bad, "s").message(), "s.year[0]: end 2101 is above 2100");
}

TEST(NormalizeTest, ExplicitEndAndStep) {
  StructuredCalendarSpec s;
  s.add_hour()->set_start(5);  // end 0, step 0
  auto* r = s.add_minute();
  r->set_start(10);
  r->set_end(3);  // below start: the start alone
  NormalizeStructuredCalendar(&s);
  EXPECT_EQ(Ranges(s.hour()), "5-5/1");
  EXPECT_EQ(Ranges(s.minute()), "10-10/1");
}

}  // namespace
}  // namespace almanac::scheduler
