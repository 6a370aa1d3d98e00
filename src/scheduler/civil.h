#pragma once

// Proleptic Gregorian calendar arithmetic on plain integers, for the spec engine's inner loops.
//
// A "local second" is a count of seconds since 1970-01-01T00:00:00 of some civil (wall clock)
// time, with no time zone attached: UTC seconds plus the zone's offset. Calendar searches run on
// local seconds and are mapped back to absolute time with the zone's offset periods.
//
// Pure functions, no state: thread-safe.

#include <cstdint>

namespace almanac::scheduler {

inline constexpr int64_t kSecondsPerDay = 86400;

// A broken-down civil time. Months are 1-12, days 1-31, weekday 0-6 with 0 = Sunday.
struct CivilFields {
  int64_t year = 1970;
  int month = 1;
  int day = 1;
  int hour = 0;
  int minute = 0;
  int second = 0;
};

constexpr bool IsLeapYear(int64_t year) {
  return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
}

constexpr int DaysInMonth(int64_t year, int month) {
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

constexpr int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

constexpr int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// Days since 1970-01-01 of a civil date. Counts in 400-year eras of 146097 days, with the
// year starting on March 1 so that the leap day falls at its end.
constexpr int64_t DaysFromCivil(int64_t year, int month, int day) {
  const int64_t y = year - (month <= 2 ? 1 : 0);
  const int64_t era = FloorDiv(y, 400);
  const int64_t year_of_era = y - era * 400;                        // [0, 399]
  const int64_t month_from_march = month > 2 ? month - 3 : month + 9;  // [0, 11]
  const int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;  // 719468: days from 0000-03-01 to 1970-01-01
}

// Weekday of a day count since 1970-01-01 (a Thursday). 0 = Sunday.
constexpr int WeekdayFromDays(int64_t days) { return static_cast<int>(FloorMod(days + 4, 7)); }

constexpr int64_t LocalSecondsFromCivil(const CivilFields& c) {
  return DaysFromCivil(c.year, c.month, c.day) * kSecondsPerDay + c.hour * 3600 + c.minute * 60 +
         c.second;
}

// The inverse of DaysFromCivil plus the time of day.
constexpr CivilFields CivilFromLocalSeconds(int64_t local_seconds) {
  const int64_t days = FloorDiv(local_seconds, kSecondsPerDay);
  const int64_t second_of_day = local_seconds - days * kSecondsPerDay;
  const int64_t shifted = days + 719468;
  const int64_t era = FloorDiv(shifted, 146097);
  const int64_t day_of_era = shifted - era * 146097;  // [0, 146096]
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_from_march = (5 * day_of_year + 2) / 153;
  CivilFields c;
  c.day = static_cast<int>(day_of_year - (153 * month_from_march + 2) / 5 + 1);
  c.month = static_cast<int>(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
  c.year = year_of_era + era * 400 + (c.month <= 2 ? 1 : 0);
  c.hour = static_cast<int>(second_of_day / 3600);
  c.minute = static_cast<int>(second_of_day / 60 % 60);
  c.second = static_cast<int>(second_of_day % 60);
  return c;
}

static_assert(DaysFromCivil(1970, 1, 1) == 0);
static_assert(DaysFromCivil(2000, 3, 1) == 11017);
static_assert(WeekdayFromDays(DaysFromCivil(2025, 1, 1)) == 3);  // a Wednesday
static_assert(CivilFromLocalSeconds(951782400).month == 2);     // 2000-02-29
static_assert(CivilFromLocalSeconds(951782400).day == 29);

}  // namespace almanac::scheduler
