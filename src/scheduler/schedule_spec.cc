#include "scheduler/schedule_spec.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "scheduler/calendar_matcher.h"
#include "scheduler/civil.h"
#include "scheduler/spec_parse.h"
#include "scheduler/zone_rules.h"

namespace almanac::scheduler {
namespace {

using schedule_v1::IntervalSpec;
using schedule_v1::StructuredCalendarSpec;

// No action after 2100-12-31T23:59:59Z; searches start no earlier than 0001-01-01.
constexpr int64_t kLastActionSecond =
    DaysFromCivil(kMaxCalendarYear + 1, 1, 1) * kSecondsPerDay - 1;
constexpr int64_t kFirstSearchSecond = DaysFromCivil(1, 1, 1) * kSecondsPerDay;
// google.protobuf.Duration's own limit: 10000 years.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;
// Bound on exclusion skips per search. Each skip passes a whole run of excluded time, so only
// a spec whose every remaining time is excluded, one short run at a time, gets near it; the
// search then reports no further action.
constexpr int kMaxExclusionSkips = 100'000;

struct Interval {
  int64_t every = 1;  // seconds
  int64_t phase = 0;  // seconds, in [0, every)
};

int64_t FloorSeconds(absl::Time t) {
  if (t <= absl::FromUnixSeconds(kFirstSearchSecond)) return kFirstSearchSecond;
  if (t > absl::FromUnixSeconds(kLastActionSecond)) return kLastActionSecond + 1;
  return absl::ToUnixSeconds(t);
}

int64_t CeilSeconds(absl::Time t) {
  const int64_t s = FloorSeconds(t);
  return absl::FromUnixSeconds(s) < t ? s + 1 : s;
}

}  // namespace

struct CompiledSpec::State {
  ScheduleSpec canonical;
  std::shared_ptr<const ZoneRules> zone;
  std::vector<CalendarMatcher> calendars;
  std::vector<Interval> intervals;
  std::vector<CalendarMatcher> exclusions;
  int64_t first_second = kFirstSearchSecond;  // start_time, rounded up
  int64_t last_second = kLastActionSecond;    // end_time, rounded down
  absl::Duration jitter;
  uint64_t jitter_seed = 0;

  absl::optional<int64_t> NextNominal(int64_t from) const;
  absl::optional<int64_t> NextUnexcluded(int64_t from) const;
  absl::optional<int64_t> ExclusionEnd(const CalendarMatcher& exclusion, int64_t at) const;
  absl::optional<int64_t> NextCalendarTime(const CalendarMatcher& calendar, int64_t from) const;
  absl::Duration JitterOf(int64_t nominal, absl::optional<int64_t> following) const;
  ScheduledTime Schedule(int64_t nominal, absl::optional<int64_t> following) const;
};

namespace {

// ---- Searching ----------------------------------------------------------------------------

absl::optional<int64_t> NextIntervalTime(const Interval& iv, int64_t from) {
  // The first epoch + n * every + phase at or after `from`.
  return FloorDiv(from - iv.phase + iv.every - 1, iv.every) * iv.every + iv.phase;
}

void KeepEarliest(absl::optional<int64_t> candidate, absl::optional<int64_t>* best) {
  if (candidate && (!*best || *candidate < **best)) *best = candidate;
}

// ---- Jitter -------------------------------------------------------------------------------

// Stable across processes and builds: the runner recomputes jitter after a restart.
uint64_t Fnv1a(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (char ch : bytes) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

absl::optional<int64_t> CompiledSpec::State::NextCalendarTime(const CalendarMatcher& calendar,
                                                              int64_t from) const {
  // Search the wall-clock range of each offset period in turn. A wall-clock match found for
  // one period stays the answer for the next period whenever that period's range starts
  // between the last search's start and the match, so most periods cost one lookup.
  int64_t t = from;
  int64_t searched_from = 0;  // wall-clock time the last search started from
  int64_t settled = 0;        // from here on no period reaches back before searched_from
  absl::optional<int64_t> match;
  for (;;) {
    const ZoneRules::Period period = zone->PeriodAt(t);
    const int64_t local = t + period.offset;
    if (!match || local < searched_from || local > *match) {
      match = calendar.NextMatch(local);
      if (!match) return absl::nullopt;
      searched_from = local;
      settled = t + (period.offset - zone->min_offset());
    }
    const int64_t at = *match - period.offset;
    if (at < period.end) return at;
    // The match lies beyond this period: its wall-clock time is not here. Once offset changes
    // can no longer bring back wall-clock times before searched_from, no instant earlier than
    // `match - max_offset` can match (its wall-clock time would lie in [searched_from, match),
    // where the search found nothing), so the periods in between are skipped.
    t = period.end;
    if (t >= settled) t = std::max(t, *match - zone->max_offset());
  }
}

absl::optional<int64_t> CompiledSpec::State::ExclusionEnd(const CalendarMatcher& exclusion,
                                                          int64_t at) const {
  for (;;) {
    const ZoneRules::Period period = zone->PeriodAt(at);
    const absl::optional<int64_t> local_end = exclusion.RunEnd(at + period.offset);
    if (!local_end) return absl::nullopt;
    const int64_t end = *local_end - period.offset;
    if (end < period.end) return end;
    // Excluded to the end of the period; after the offset change, maybe beyond.
    at = period.end;
    if (!exclusion.Matches(at + zone->OffsetAt(at))) return at;
  }
}

absl::optional<int64_t> CompiledSpec::State::NextUnexcluded(int64_t from) const {
  from = std::max(from, first_second);
  for (int skip = 0; skip < kMaxExclusionSkips; ++skip) {
    absl::optional<int64_t> nominal;
    for (const CalendarMatcher& calendar : calendars) {
      KeepEarliest(NextCalendarTime(calendar, from), &nominal);
    }
    for (const Interval& interval : intervals) {
      KeepEarliest(NextIntervalTime(interval, from), &nominal);
    }
    if (!nominal || *nominal > last_second) return absl::nullopt;
    if (exclusions.empty()) return nominal;

    const int64_t local = *nominal + zone->OffsetAt(*nominal);
    int64_t excluded_until = *nominal;
    for (const CalendarMatcher& exclusion : exclusions) {
      if (!exclusion.Matches(local)) continue;
      const absl::optional<int64_t> end = ExclusionEnd(exclusion, *nominal);
      if (!end) return absl::nullopt;
      excluded_until = std::max(excluded_until, *end);
    }
    if (excluded_until == *nominal) return nominal;
    from = excluded_until;
  }
  return absl::nullopt;
}

absl::optional<int64_t> CompiledSpec::State::NextNominal(int64_t from) const {
  if (from > last_second) return absl::nullopt;
  return NextUnexcluded(from);
}

absl::Duration CompiledSpec::State::JitterOf(int64_t nominal,
                                             absl::optional<int64_t> following) const {
  absl::Duration max = jitter;
  if (following) max = std::min(max, absl::Seconds(*following - nominal));
  const int64_t max_ms = absl::ToInt64Milliseconds(max);
  if (max_ms <= 0) return absl::ZeroDuration();
  const uint64_t hash = SplitMix64(jitter_seed ^ SplitMix64(static_cast<uint64_t>(nominal)));
  // The high half of hash * max_ms: uniform in [0, max_ms).
  const auto ms = static_cast<int64_t>((static_cast<unsigned __int128>(hash) * max_ms) >> 64);
  return absl::Milliseconds(ms);
}

ScheduledTime CompiledSpec::State::Schedule(int64_t nominal,
                                            absl::optional<int64_t> following) const {
  const absl::Time t = absl::FromUnixSeconds(nominal);
  return {t, t + JitterOf(nominal, following)};
}

// ---- CompiledSpec -------------------------------------------------------------------------

absl::optional<ScheduledTime> CompiledSpec::NextScheduled(absl::Time after) const {
  const absl::optional<int64_t> nominal = state_->NextNominal(FloorSeconds(after) + 1);
  if (!nominal) return absl::nullopt;
  absl::optional<int64_t> following;
  if (state_->jitter > absl::ZeroDuration()) following = state_->NextNominal(*nominal + 1);
  return state_->Schedule(*nominal, following);
}

absl::optional<absl::Time> CompiledSpec::Next(absl::Time after) const {
  const absl::optional<ScheduledTime> next = NextScheduled(after);
  if (!next) return absl::nullopt;
  return next->actual;
}

std::vector<ScheduledTime> CompiledSpec::ScheduledBetween(absl::Time from, absl::Time to,
                                                          size_t limit) const {
  std::vector<ScheduledTime> out;
  if (to < from || limit == 0) return out;
  absl::optional<int64_t> nominal = state_->NextNominal(CeilSeconds(from));
  while (nominal && out.size() < limit) {
    const absl::optional<int64_t> following = state_->NextNominal(*nominal + 1);
    const ScheduledTime st = state_->Schedule(*nominal, following);
    if (st.actual > to) break;  // actual times increase: none later is in range
    out.push_back(st);
    nominal = following;
  }
  return out;
}

std::vector<absl::Time> CompiledSpec::Between(absl::Time from, absl::Time to,
                                              size_t limit) const {
  std::vector<absl::Time> out;
  for (const ScheduledTime& st : ScheduledBetween(from, to, limit)) out.push_back(st.actual);
  return out;
}

ScheduleSpec CompiledSpec::Canonical() const { return state_->canonical; }

// ---- Compiling ----------------------------------------------------------------------------

namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::StatusOr<absl::Duration> DurationOf(const google::protobuf::Duration& d,
                                          absl::string_view field) {
  const bool same_sign =
      (d.seconds() >= 0 && d.nanos() >= 0) || (d.seconds() <= 0 && d.nanos() <= 0);
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 || !same_sign ||
      d.seconds() > kMaxDurationSeconds || d.seconds() < -kMaxDurationSeconds) {
    return Invalid(field, "is not a valid duration");
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::StatusOr<absl::Time> TimeOf(const google::protobuf::Timestamp& ts, absl::string_view field) {
  // google.protobuf.Timestamp's range: 0001-01-01 to 9999-12-31.
  constexpr int64_t kMin = DaysFromCivil(1, 1, 1) * kSecondsPerDay;
  constexpr int64_t kMax = DaysFromCivil(10000, 1, 1) * kSecondsPerDay - 1;
  if (ts.nanos() < 0 || ts.nanos() >= 1'000'000'000 || ts.seconds() < kMin || ts.seconds() > kMax) {
    return Invalid(field, "is not a valid timestamp");
  }
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::StatusOr<Interval> CompileInterval(const IntervalSpec& spec, absl::string_view field) {
  absl::StatusOr<absl::Duration> every =
      DurationOf(spec.interval(), absl::StrCat(field, ".interval"));
  if (!every.ok()) return every.status();
  absl::StatusOr<absl::Duration> phase = DurationOf(spec.phase(), absl::StrCat(field, ".phase"));
  if (!phase.ok()) return phase.status();
  // Both are truncated to whole seconds before any calculation.
  Interval iv{absl::ToInt64Seconds(*every), absl::ToInt64Seconds(*phase)};
  if (iv.every < 1) return Invalid(field, "interval must be at least 1s");
  if (iv.phase < 0) return Invalid(field, "phase must not be negative");
  if (iv.phase >= iv.every) return Invalid(field, "phase must be shorter than the interval");
  return iv;
}

absl::StatusOr<std::shared_ptr<const ZoneRules>> LoadZone(const ScheduleSpec& spec) {
  if (spec.timezone_data().empty()) return LoadZoneRules(spec.timezone_name());
  absl::StatusOr<ZoneRules> rules = ParseTzif(spec.timezone_data());
  if (!rules.ok()) return rules.status();
  return std::make_shared<const ZoneRules>(std::move(*rules));
}

// Moves the string forms of `spec` into its structured forms, validating everything.
absl::StatusOr<ScheduleSpec> Canonicalize(const ScheduleSpec& spec) {
  ScheduleSpec out = spec;
  out.clear_calendar();
  out.clear_cron_string();
  out.clear_exclude_calendar();

  for (int i = 0; i < spec.structured_calendar_size(); ++i) {
    if (absl::Status s = ValidateStructuredCalendar(spec.structured_calendar(i),
                                                    absl::StrCat("structured_calendar[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  for (int i = 0; i < spec.calendar_size(); ++i) {
    absl::StatusOr<StructuredCalendarSpec> parsed =
        ParseCalendarSpec(spec.calendar(i), absl::StrCat("calendar[", i, "]"));
    if (!parsed.ok()) return parsed.status();
    *out.add_structured_calendar() = std::move(*parsed);
  }

  absl::optional<std::string> cron_zone;  // every cron string must name the same zone, or none
  for (int i = 0; i < spec.cron_string_size(); ++i) {
    const std::string where = absl::StrCat("cron_string[", i, "]");
    absl::StatusOr<ParsedCron> parsed =
        ParseCronString(spec.cron_string(i), CronDialect::kScheduleSpec, where);
    if (!parsed.ok()) return parsed.status();
    if (cron_zone && *cron_zone != parsed->timezone_name) {
      return Invalid(where, "its time zone differs from the other cron strings'");
    }
    cron_zone = parsed->timezone_name;
    for (auto& c : parsed->calendars) *out.add_structured_calendar() = std::move(c);
    for (auto& iv : parsed->intervals) *out.add_interval() = std::move(iv);
  }
  if (cron_zone && !cron_zone->empty()) {
    if (!spec.timezone_data().empty() ||
        (!spec.timezone_name().empty() && spec.timezone_name() != *cron_zone)) {
      return Invalid("cron_string", "its CRON_TZ/TZ conflicts with timezone_name or timezone_data");
    }
    out.set_timezone_name(*cron_zone);
  }

  for (int i = 0; i < spec.exclude_structured_calendar_size(); ++i) {
    if (absl::Status s =
            ValidateStructuredCalendar(spec.exclude_structured_calendar(i),
                                       absl::StrCat("exclude_structured_calendar[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  for (int i = 0; i < spec.exclude_calendar_size(); ++i) {
    absl::StatusOr<StructuredCalendarSpec> parsed =
        ParseCalendarSpec(spec.exclude_calendar(i), absl::StrCat("exclude_calendar[", i, "]"));
    if (!parsed.ok()) return parsed.status();
    *out.add_exclude_structured_calendar() = std::move(*parsed);
  }
  for (auto& c : *out.mutable_structured_calendar()) NormalizeStructuredCalendar(&c);
  for (auto& c : *out.mutable_exclude_structured_calendar()) NormalizeStructuredCalendar(&c);
  return out;
}

}  // namespace

// Builds the engine for a canonical spec (whose calendars are already validated).
struct SpecCompiler {
  static absl::StatusOr<CompiledSpec> Compile(ScheduleSpec canonical, absl::string_view seed) {
    auto state = std::make_shared<CompiledSpec::State>();
    absl::StatusOr<std::shared_ptr<const ZoneRules>> zone = LoadZone(canonical);
    if (!zone.ok()) return zone.status();
    state->zone = std::move(*zone);
    for (int i = 0; i < canonical.interval_size(); ++i) {
      absl::StatusOr<Interval> iv =
          CompileInterval(canonical.interval(i), absl::StrCat("interval[", i, "]"));
      if (!iv.ok()) return iv.status();
      state->intervals.push_back(*iv);
    }
    for (const StructuredCalendarSpec& c : canonical.structured_calendar()) {
      CalendarMatcher matcher(c);
      if (!matcher.MatchesNothing()) state->calendars.push_back(matcher);
    }
    for (const StructuredCalendarSpec& c : canonical.exclude_structured_calendar()) {
      CalendarMatcher matcher(c);
      if (!matcher.MatchesNothing()) state->exclusions.push_back(matcher);
    }
    if (canonical.has_start_time()) {
      absl::StatusOr<absl::Time> start = TimeOf(canonical.start_time(), "start_time");
      if (!start.ok()) return start.status();
      state->first_second = CeilSeconds(*start);
    }
    if (canonical.has_end_time()) {
      absl::StatusOr<absl::Time> end = TimeOf(canonical.end_time(), "end_time");
      if (!end.ok()) return end.status();
      state->last_second = std::min(FloorSeconds(*end), kLastActionSecond);
    }
    if (canonical.has_jitter()) {
      absl::StatusOr<absl::Duration> jitter = DurationOf(canonical.jitter(), "jitter");
      if (!jitter.ok()) return jitter.status();
      if (*jitter < absl::ZeroDuration()) return Invalid("jitter", "must not be negative");
      state->jitter = *jitter;
    }
    state->jitter_seed = SplitMix64(Fnv1a(seed));
    state->canonical = std::move(canonical);
    return CompiledSpec(std::move(state));
  }

  static bool HasIntervals(const CompiledSpec& spec) { return !spec.state_->intervals.empty(); }
};

absl::StatusOr<CompiledSpec> CompileSpec(const ScheduleSpec& spec, absl::string_view jitter_seed) {
  absl::StatusOr<ScheduleSpec> canonical = Canonicalize(spec);
  if (!canonical.ok()) return canonical.status();
  return SpecCompiler::Compile(std::move(*canonical), jitter_seed);
}

absl::StatusOr<CompiledSpec> CompileCron(absl::string_view cron_schedule, absl::Time every_anchor) {
  if (!cron_schedule.empty() && absl::ascii_isspace(static_cast<unsigned char>(cron_schedule[0]))) {
    return absl::InvalidArgumentError(
        absl::StrCat("cron_schedule: \"", cron_schedule, "\" starts with a space"));
  }
  absl::StatusOr<ParsedCron> parsed =
      ParseCronString(cron_schedule, CronDialect::kCronSchedule, "cron_schedule");
  if (!parsed.ok()) return parsed.status();
  ScheduleSpec spec;
  spec.set_timezone_name(parsed->timezone_name);
  for (auto& c : parsed->calendars) {
    NormalizeStructuredCalendar(&c);
    *spec.add_structured_calendar() = std::move(c);
  }
  for (IntervalSpec& iv : parsed->intervals) {
    // Temporal's cron workflows step @every from the first run's start, in whole seconds
    // (the interval rounded down, and at least one second).
    iv.mutable_interval()->set_seconds(std::max<int64_t>(1, iv.interval().seconds()));
    iv.mutable_interval()->set_nanos(0);
    const int64_t every = iv.interval().seconds();
    if (every >= 1) iv.mutable_phase()->set_seconds(FloorMod(FloorSeconds(every_anchor), every));
    *spec.add_interval() = std::move(iv);
  }
  absl::StatusOr<CompiledSpec> compiled = SpecCompiler::Compile(std::move(spec), "");
  if (!compiled.ok()) return compiled.status();
  if (SpecCompiler::HasIntervals(*compiled)) return compiled;
  if (!compiled->Next(absl::UnixEpoch()).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cron_schedule: \"", cron_schedule, "\" matches no time"));
  }
  return compiled;
}

}  // namespace almanac::scheduler
