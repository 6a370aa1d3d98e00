#pragma once

// A StructuredCalendarSpec compiled to bit sets and matched against wall-clock time, given
// as local seconds (see civil.h). Searches jump field by field (year, month, day, hour,
// minute, second) with bit operations; they never step through time second by second or
// minute by minute, so the next match of "0 0 29 2 *" or of a single far year is found in a
// few dozen operations. No match is ever found after kMaxCalendarYear.
//
// Time zones are not its concern: the spec engine maps local seconds to absolute time.
// Immutable after construction: thread-safe.

#include <array>
#include <cstdint>

#include "absl/types/optional.h"
#include "scheduler/civil.h"
#include "temporal/api/schedule/v1/message.pb.h"

namespace almanac::scheduler {

class CalendarMatcher {
 public:
  // `calendar` must have passed ValidateStructuredCalendar.
  explicit CalendarMatcher(const temporal::api::schedule::v1::StructuredCalendarSpec& calendar);

  // True when some field other than year has no range: the calendar matches nothing.
  bool MatchesNothing() const;

  bool Matches(const CivilFields& civil) const;
  bool Matches(int64_t local_seconds) const {
    return Matches(CivilFromLocalSeconds(local_seconds));
  }

  // The first matching local second at or after `from`; nullopt when none is left before the
  // end of kMaxCalendarYear.
  absl::optional<int64_t> NextMatch(int64_t from) const;

  // For a matching `at`, the first later local second that does not match: the end of the
  // run of consecutive matching seconds that contains `at`. nullopt when the run lasts to the
  // end of kMaxCalendarYear. Used to skip an exclusion in one step.
  absl::optional<int64_t> RunEnd(int64_t at) const;

 private:
  // Fields from the least to the most significant.
  enum Level { kSecond, kMinute, kHour, kDay, kMonth, kYear, kLevels };

  bool YearMatches(int64_t year) const;
  absl::optional<int64_t> NextYear(int64_t year) const;  // first matching year >= year
  uint32_t DayMask(int64_t year, int month) const;       // bit d: day d matches
  int FirstNonMatch(const CivilFields& c, Level level, int after) const;
  // Sets the fields below `level` to their first value.
  static void ResetBelow(CivilFields& c, Level level);
  // Moves to the start of the next unit of `level` (carrying into the levels above).
  static void Advance(CivilFields& c, Level level);

  uint64_t second_ = 0;        // bits 0-59
  uint64_t minute_ = 0;        // bits 0-59
  uint32_t hour_ = 0;          // bits 0-23
  uint32_t day_of_month_ = 0;  // bits 1-31
  uint32_t month_ = 0;         // bits 1-12
  uint32_t day_of_week_ = 0;   // bits 0-6, 0 = Sunday
  // Days (bits 1-31) whose day of month and day of week both match, for a month starting on
  // each weekday.
  std::array<uint32_t, 7> days_by_first_weekday_{};
  bool all_years_ = true;
  std::array<uint64_t, 2> years_{};  // bit y - kMinCalendarYear
  Level lowest_restricted_ = kLevels;  // the lowest level not matching every value
};

}  // namespace almanac::scheduler
