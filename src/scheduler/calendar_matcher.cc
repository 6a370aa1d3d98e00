#include "scheduler/calendar_matcher.h"

#include <algorithm>
#include <bit>

#include "scheduler/spec_parse.h"

namespace almanac::scheduler {
namespace {

using temporal::api::schedule::v1::Range;
using RangeList = google::protobuf::RepeatedPtrField<Range>;

constexpr uint64_t Bits(int first, int last) {
  return ((last >= 63 ? 0 : uint64_t{1} << (last + 1)) - 1) & ~((uint64_t{1} << first) - 1);
}
constexpr uint64_t kSixtyValues = Bits(0, 59);
constexpr uint64_t kHours = Bits(0, 23);
constexpr uint64_t kMonthDays = Bits(1, 31);
constexpr uint64_t kMonths = Bits(1, 12);
constexpr uint64_t kWeekdays = Bits(0, 6);

// The smallest set bit at or above `from`, or -1.
int NextBit(uint64_t mask, int from) {
  if (from >= 64) return -1;
  const uint64_t rest = mask >> from;
  return rest == 0 ? -1 : from + std::countr_zero(rest);
}

// Calls `add` for every value of the ranges (which passed validation).
template <typename Add>
void ForEachValue(const RangeList& ranges, Add add) {
  for (const Range& r : ranges) {
    const int end = std::max(r.end(), r.start());
    const int step = std::max(r.step(), 1);
    for (int v = r.start(); v <= end; v += step) add(v);
  }
}

uint64_t MaskOf(const RangeList& ranges) {
  uint64_t mask = 0;
  ForEachValue(ranges, [&](int v) { mask |= uint64_t{1} << v; });
  return mask;
}

uint64_t DaysOfMonth(int64_t year, int month) { return Bits(1, DaysInMonth(year, month)); }

}  // namespace

CalendarMatcher::CalendarMatcher(
    const temporal::api::schedule::v1::StructuredCalendarSpec& calendar)
    : second_(MaskOf(calendar.second())),
      minute_(MaskOf(calendar.minute())),
      hour_(static_cast<uint32_t>(MaskOf(calendar.hour()))),
      day_of_month_(static_cast<uint32_t>(MaskOf(calendar.day_of_month()))),
      month_(static_cast<uint32_t>(MaskOf(calendar.month()))),
      day_of_week_(static_cast<uint32_t>(MaskOf(calendar.day_of_week()))),
      all_years_(calendar.year().empty()) {
  ForEachValue(calendar.year(), [&](int year) {
    const int bit = year - kMinCalendarYear;
    years_[bit / 64] |= uint64_t{1} << (bit % 64);
  });
  for (int first_weekday = 0; first_weekday < 7; ++first_weekday) {
    uint32_t days = 0;
    for (int day = 1; day <= 31; ++day) {
      const int weekday = (first_weekday + day - 1) % 7;
      if ((day_of_week_ >> weekday & 1) != 0) days |= uint32_t{1} << day;
    }
    days_by_first_weekday_[first_weekday] = days & day_of_month_;
  }
  const bool full[] = {
      second_ == kSixtyValues,
      minute_ == kSixtyValues,
      hour_ == kHours,
      day_of_month_ == kMonthDays && day_of_week_ == kWeekdays,
      month_ == kMonths,
      all_years_,
  };
  lowest_restricted_ = kLevels;
  for (int level = kSecond; level < kLevels; ++level) {
    if (!full[level]) {
      lowest_restricted_ = static_cast<Level>(level);
      break;
    }
  }
}

bool CalendarMatcher::MatchesNothing() const {
  return second_ == 0 || minute_ == 0 || hour_ == 0 || day_of_month_ == 0 || month_ == 0 ||
         day_of_week_ == 0 || (!all_years_ && years_[0] == 0 && years_[1] == 0);
}

bool CalendarMatcher::YearMatches(int64_t year) const {
  if (year > kMaxCalendarYear) return false;
  if (all_years_) return true;
  if (year < kMinCalendarYear) return false;
  const int64_t bit = year - kMinCalendarYear;
  return (years_[bit / 64] >> (bit % 64) & 1) != 0;
}

absl::optional<int64_t> CalendarMatcher::NextYear(int64_t year) const {
  if (year > kMaxCalendarYear) return absl::nullopt;
  if (all_years_) return year;
  int bit = static_cast<int>(std::max<int64_t>(year, kMinCalendarYear) - kMinCalendarYear);
  if (bit < 64) {
    const int found = NextBit(years_[0], bit);
    if (found >= 0) return kMinCalendarYear + found;
    bit = 64;
  }
  const int found = NextBit(years_[1], bit - 64);
  if (found < 0) return absl::nullopt;
  return kMinCalendarYear + 64 + found;
}

uint32_t CalendarMatcher::DayMask(int64_t year, int month) const {
  const int first_weekday = WeekdayFromDays(DaysFromCivil(year, month, 1));
  return static_cast<uint32_t>(days_by_first_weekday_[first_weekday] & DaysOfMonth(year, month));
}

bool CalendarMatcher::Matches(const CivilFields& c) const {
  const int weekday = WeekdayFromDays(DaysFromCivil(c.year, c.month, c.day));
  return YearMatches(c.year) && (month_ >> c.month & 1) != 0 &&
         (day_of_month_ >> c.day & 1) != 0 && (day_of_week_ >> weekday & 1) != 0 &&
         (hour_ >> c.hour & 1) != 0 && (minute_ >> c.minute & 1) != 0 &&
         (second_ >> c.second & 1) != 0;
}

void CalendarMatcher::ResetBelow(CivilFields& c, Level level) {
  if (level > kSecond) c.second = 0;
  if (level > kMinute) c.minute = 0;
  if (level > kHour) c.hour = 0;
  if (level > kDay) c.day = 1;
  if (level > kMonth) c.month = 1;
}

void CalendarMatcher::Advance(CivilFields& c, Level level) {
  ResetBelow(c, level);
  switch (level) {
    case kSecond:
      if (++c.second < 60) return;
      c.second = 0;
      [[fallthrough]];
    case kMinute:
      if (++c.minute < 60) return;
      c.minute = 0;
      [[fallthrough]];
    case kHour:
      if (++c.hour < 24) return;
      c.hour = 0;
      [[fallthrough]];
    case kDay:
      if (++c.day <= DaysInMonth(c.year, c.month)) return;
      c.day = 1;
      [[fallthrough]];
    case kMonth:
      if (++c.month <= 12) return;
      c.month = 1;
      [[fallthrough]];
    case kYear:
      ++c.year;
      return;
    case kLevels:
      return;
  }
}

absl::optional<int64_t> CalendarMatcher::NextMatch(int64_t from) const {
  if (MatchesNothing()) return absl::nullopt;
  CivilFields c = CivilFromLocalSeconds(from);
  // Each pass fixes the fields from the year down; a field with no match left carries into
  // the one above and the pass starts again from there.
  for (;;) {
    const absl::optional<int64_t> year = NextYear(c.year);
    if (!year) return absl::nullopt;
    if (*year != c.year) c = CivilFields{*year, 1, 1, 0, 0, 0};

    const int month = NextBit(month_, c.month);
    if (month < 0) {
      Advance(c, kYear);
      continue;
    }
    if (month != c.month) c = CivilFields{c.year, month, 1, 0, 0, 0};

    const int day = NextBit(DayMask(c.year, c.month), c.day);
    if (day < 0) {
      Advance(c, kMonth);
      continue;
    }
    if (day != c.day) c = CivilFields{c.year, c.month, day, 0, 0, 0};

    const int hour = NextBit(hour_, c.hour);
    if (hour < 0) {
      Advance(c, kDay);
      continue;
    }
    if (hour != c.hour) c = CivilFields{c.year, c.month, c.day, hour, 0, 0};

    const int minute = NextBit(minute_, c.minute);
    if (minute < 0) {
      Advance(c, kHour);
      continue;
    }
    if (minute != c.minute) c = CivilFields{c.year, c.month, c.day, c.hour, minute, 0};

    const int second = NextBit(second_, c.second);
    if (second < 0) {
      Advance(c, kMinute);
      continue;
    }
    c.second = second;
    return LocalSecondsFromCivil(c);
  }
}

int CalendarMatcher::FirstNonMatch(const CivilFields& c, Level level, int after) const {
  switch (level) {
    case kSecond:
      return NextBit(~second_ & kSixtyValues, after + 1);
    case kMinute:
      return NextBit(~minute_ & kSixtyValues, after + 1);
    case kHour:
      return NextBit(~hour_ & kHours, after + 1);
    case kDay:
      return NextBit(~uint64_t{DayMask(c.year, c.month)} & DaysOfMonth(c.year, c.month),
                     after + 1);
    case kMonth:
      return NextBit(~month_ & kMonths, after + 1);
    case kYear:
    case kLevels:
      break;
  }
  return -1;
}

absl::optional<int64_t> CalendarMatcher::RunEnd(int64_t at) const {
  const Level level = lowest_restricted_;
  if (level == kLevels) return absl::nullopt;  // matches every second
  CivilFields c = CivilFromLocalSeconds(at);
  if (level == kYear) {
    for (int64_t year = c.year + 1; year <= kMaxCalendarYear; ++year) {
      if (!YearMatches(year)) return LocalSecondsFromCivil(CivilFields{year, 1, 1, 0, 0, 0});
    }
    return absl::nullopt;
  }
  // Every value of the levels below `level` matches, so the run ends either at a value of
  // `level` that does not match, or where a carry into a higher level reaches a time that
  // does not match. Months and days can take a few units to find such a value; the bound is
  // generous.
  for (int unit = 0; unit < 64; ++unit) {
    int* const field[] = {&c.second, &c.minute, &c.hour, &c.day, &c.month};
    const int value = FirstNonMatch(c, level, *field[level]);
    if (value >= 0) {
      ResetBelow(c, level);
      *field[level] = value;
      return LocalSecondsFromCivil(c);
    }
    Advance(c, static_cast<Level>(level + 1));
    if (c.year > kMaxCalendarYear) return absl::nullopt;
    if (!Matches(c)) return LocalSecondsFromCivil(c);
  }
  // Unreachable for valid calendars; a matching time is a safe (if short) answer, since the
  // caller checks again from there.
  return LocalSecondsFromCivil(c);
}

}  // namespace almanac::scheduler
