#pragma once

// The UTC offsets of one time zone over time, as the spec engine needs them.
//
// Calendar specs are matched against wall-clock time. The engine splits the time line into
// offset periods (intervals of constant UTC offset) and searches each period's wall-clock
// range in turn: a wall-clock time repeated by a "fall back" lies in two periods and matches
// twice, one skipped by a "spring forward" lies in none and never matches. That is the
// behaviour ScheduleSpec's comments specify.
//
// A ZoneRules is an immutable table of offset changes; it is built either from the system tz
// database (LoadZoneRules, through absl::LoadTimeZone) or from TZif bytes carried in a spec
// (ParseTzif). Both cover every change up to the end of kZoneRulesEndYear, after which the
// last offset holds. Immutable: every method is thread-safe.

#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace almanac::scheduler {

// Offset changes are tabulated through this year; calendar matching stops in 2100.
inline constexpr int64_t kZoneRulesEndYear = 2101;

class ZoneRules {
 public:
  // A maximal interval [begin, end) of Unix seconds with one UTC offset. begin and end are
  // kMinSeconds / kMaxSeconds when unbounded.
  struct Period {
    int32_t offset = 0;  // seconds east of UTC: local seconds = Unix seconds + offset
    int64_t begin = 0;
    int64_t end = 0;
  };
  static constexpr int64_t kMinSeconds = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max();

  // One offset for all time (UTC when zero).
  explicit ZoneRules(int32_t fixed_offset = 0)
      : initial_offset_(fixed_offset), min_offset_(fixed_offset), max_offset_(fixed_offset) {}

  // `initial_offset` holds before the first change; `changes` must be sorted by time.
  // Consecutive changes to the same offset are merged.
  struct Change {
    int64_t at = 0;  // Unix seconds from which `offset` holds
    int32_t offset = 0;
  };
  ZoneRules(int32_t initial_offset, const std::vector<Change>& changes);

  // The offset period containing `unix_seconds`.
  Period PeriodAt(int64_t unix_seconds) const;
  int32_t OffsetAt(int64_t unix_seconds) const { return PeriodAt(unix_seconds).offset; }

  int32_t initial_offset() const { return initial_offset_; }
  const std::vector<Change>& changes() const { return changes_; }
  // The smallest and largest offsets the zone ever has.
  int32_t min_offset() const { return min_offset_; }
  int32_t max_offset() const { return max_offset_; }

 private:
  int32_t initial_offset_;
  std::vector<Change> changes_;
  int32_t min_offset_;
  int32_t max_offset_;
};

// Loads an IANA zone ("America/New_York", "UTC") from the system tz database. The empty name
// is UTC. Results are cached for the life of the process, so a tz database update is seen
// after a restart (as with absl's own cache). Thread-safe.
// Fails with kInvalidArgument for a malformed or unknown name.
absl::StatusOr<std::shared_ptr<const ZoneRules>> LoadZoneRules(absl::string_view name);

// Parses a TZif file (RFC 8536, versions 1 to 4) such as /usr/share/zoneinfo/Europe/Paris,
// including its POSIX TZ footer, which gives the offsets after the last listed change. Leap
// second records are ignored: Unix time has none. Fails with kInvalidArgument when the data
// is not well-formed TZif.
absl::StatusOr<ZoneRules> ParseTzif(absl::string_view data);

}  // namespace almanac::scheduler
