#include "scheduler/spec_parse.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"

namespace almanac::scheduler {
namespace {

using schedule_v1::CalendarSpec;
using schedule_v1::IntervalSpec;
using schedule_v1::Range;
using schedule_v1::StructuredCalendarSpec;
using RangeList = google::protobuf::RepeatedPtrField<Range>;

constexpr std::array<absl::string_view, 12> kMonthNames = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december"};
constexpr std::array<absl::string_view, 7> kWeekdayNames = {
    "sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

// What one calendar field accepts.
struct Field {
  absl::string_view name;
  int min;
  int max;  // for day of week 7, which means Sunday as 0 does
  absl::string_view default_text;
  enum Names { kNumbers, kMonths, kWeekdays } names = kNumbers;
  bool is_year = false;
};

constexpr Field kSecond{"second", 0, 59, "0"};
constexpr Field kMinute{"minute", 0, 59, "0"};
constexpr Field kHour{"hour", 0, 23, "0"};
constexpr Field kDayOfMonth{"day_of_month", 1, 31, "*"};
constexpr Field kMonth{"month", 1, 12, "*", Field::kMonths};
constexpr Field kYear{"year", kMinCalendarYear, kMaxCalendarYear, "*", Field::kNumbers, true};
constexpr Field kDayOfWeek{"day_of_week", 0, 7, "*", Field::kWeekdays};

absl::Status FieldError(absl::string_view where, const Field& field, absl::string_view text,
                        absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(where, ".", field.name, ": \"", text, "\" ", why));
}

std::string Bounds(const Field& field) {
  switch (field.names) {
    case Field::kMonths:
      return "a month (1-12 or a name such as Jan)";
    case Field::kWeekdays:
      return "a day of week (0-7 or a name such as Mon)";
    case Field::kNumbers:
      break;
  }
  return absl::StrCat("a number in [", field.min, ", ", field.max, "]");
}

// Index of the name that `word` abbreviates (at least `min_length` letters), or -1.
int FindName(absl::string_view word, absl::Span<const absl::string_view> names,
             size_t min_length) {
  if (word.size() < min_length) return -1;
  const std::string lower = absl::AsciiStrToLower(word);
  for (size_t i = 0; i < names.size(); ++i) {
    if (absl::StartsWith(names[i], lower)) return static_cast<int>(i);
  }
  return -1;
}

bool AllDigits(absl::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    return absl::ascii_isdigit(static_cast<unsigned char>(ch));
  });
}

// One value: a decimal number, or a month or weekday name (case-insensitive; months need
// three letters, weekdays two, as Temporal requires).
absl::StatusOr<int> ParseValue(absl::string_view text, const Field& field,
                               absl::string_view where) {
  int value = -1;
  if (AllDigits(text)) {
    if (text.size() > 9 || !absl::SimpleAtoi(text, &value)) value = -1;
  } else if (field.names == Field::kMonths) {
    const int i = FindName(text, kMonthNames, 3);
    if (i >= 0) value = i + 1;
  } else if (field.names == Field::kWeekdays) {
    value = FindName(text, kWeekdayNames, 2);
  }
  if (value < field.min || value > field.max) {
    return FieldError(where, field, text, absl::StrCat("is not ", Bounds(field)));
  }
  return value;
}

Range MakeRange(int start, int end, int step) {
  Range r;
  r.set_start(start);
  r.set_end(end);
  r.set_step(step);
  return r;
}

// Day of week accepts 7 for Sunday; the structured form only knows 0.
void AddWeekdayRange(int start, int end, int step, RangeList* out) {
  if (end < 7) {
    *out->Add() = MakeRange(start, end, step);
    return;
  }
  const bool has_sunday_as_7 = (7 - start) % step == 0;
  if (has_sunday_as_7 && step == 1 && start <= 1) {
    *out->Add() = MakeRange(0, 6, 1);
    return;
  }
  if (has_sunday_as_7) *out->Add() = MakeRange(0, 0, 1);
  if (start <= 6) *out->Add() = MakeRange(start, 6, step);
}

// A field: "*", x, x-z, x/y, x-z/y, */y, or a comma-separated list of those. With
// `allow_question_mark` (cron_schedule), "?" means "*".
absl::StatusOr<RangeList> ParseField(absl::string_view text, const Field& field,
                                     absl::string_view where, bool allow_question_mark) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) text = field.default_text;
  const auto is_star = [&](absl::string_view s) {
    return s == "*" || (allow_question_mark && s == "?");
  };
  RangeList out;
  if (field.is_year && is_star(text)) return out;  // all years: the empty list
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) return FieldError(where, field, text, "has an empty list item");
    int step = 1;
    bool has_step = false;
    if (const size_t slash = part.find('/'); slash != absl::string_view::npos) {
      const absl::string_view step_text = part.substr(slash + 1);
      if (!AllDigits(step_text) || step_text.size() > 9 || !absl::SimpleAtoi(step_text, &step) ||
          step < 1) {
        return FieldError(where, field, part, "has a step that is not a positive integer");
      }
      part = part.substr(0, slash);
      has_step = true;
    }
    int start = field.min;
    int end = field.names == Field::kWeekdays ? 6 : field.max;
    if (has_step && field.names == Field::kWeekdays) end = 7;  // "1/2" reaches Sunday as 7
    if (!is_star(part)) {
      const std::vector<absl::string_view> bounds = absl::StrSplit(part, '-');
      if (bounds.size() > 2) return FieldError(where, field, part, "is not a range");
      absl::StatusOr<int> first = ParseValue(bounds[0], field, where);
      if (!first.ok()) return first.status();
      start = *first;
      if (bounds.size() == 2) {
        absl::StatusOr<int> last = ParseValue(bounds[1], field, where);
        if (!last.ok()) return last.status();
        if (*last < start) return FieldError(where, field, part, "ends before it starts");
        end = *last;
      } else if (!has_step) {
        end = start;  // x alone; x/y runs to the field's maximum
      }
    }
    if (field.names == Field::kWeekdays) {
      AddWeekdayRange(start, end, step, &out);
    } else {
      *out.Add() = MakeRange(start, end, step);
    }
  }
  return out;
}

// True when a field's text leaves the field unrestricted in robfig/cron's sense: one of its
// items is "*" or "?" without a step above 1.
bool IsUnrestrictedCronField(absl::string_view text) {
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    const std::pair<absl::string_view, absl::string_view> range_step =
        absl::StrSplit(part, absl::MaxSplits('/', 1));
    if ((range_step.first == "*" || range_step.first == "?") &&
        (range_step.second.empty() || range_step.second == "1")) {
      return true;
    }
  }
  return false;
}

absl::StatusOr<StructuredCalendarSpec> ParseCalendarFields(const CalendarSpec& calendar,
                                                           absl::string_view where,
                                                           bool allow_question_mark) {
  StructuredCalendarSpec out;
  struct Slot {
    const std::string& text;
    const Field& field;
    RangeList* ranges;
  };
  const Slot slots[] = {
      {calendar.second(), kSecond, out.mutable_second()},
      {calendar.minute(), kMinute, out.mutable_minute()},
      {calendar.hour(), kHour, out.mutable_hour()},
      {calendar.day_of_month(), kDayOfMonth, out.mutable_day_of_month()},
      {calendar.month(), kMonth, out.mutable_month()},
      {calendar.year(), kYear, out.mutable_year()},
      {calendar.day_of_week(), kDayOfWeek, out.mutable_day_of_week()},
  };
  for (const Slot& slot : slots) {
    absl::StatusOr<RangeList> ranges =
        ParseField(slot.text, slot.field, where, allow_question_mark);
    if (!ranges.ok()) return ranges.status();
    *slot.ranges = std::move(*ranges);
  }
  if (calendar.comment().size() > kMaxCalendarCommentLength) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".comment: longer than ",
                                                   kMaxCalendarCommentLength, " bytes"));
  }
  out.set_comment(calendar.comment());
  return out;
}

// ---- Cron strings ---------------------------------------------------------------------

absl::Status CronError(absl::string_view where, absl::string_view cron, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": \"", cron, "\" ", why));
}

// The predefined schedules, as their 5-field equivalents.
const char* PredefinedCron(absl::string_view word) {
  struct Predefined {
    absl::string_view name;
    const char* fields;
  };
  static constexpr Predefined kPredefined[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  };
  for (const Predefined& p : kPredefined) {
    if (p.name == word) return p.fields;
  }
  return nullptr;
}

absl::Status ParseEvery(absl::string_view cron, absl::string_view argument, CronDialect dialect,
                        absl::string_view where, ParsedCron* out) {
  const std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(argument, absl::MaxSplits('/', 1));
  if (parts.first.empty()) return CronError(where, cron, "has no interval after @every");
  if (!parts.second.empty() && dialect == CronDialect::kCronSchedule) {
    return CronError(where, cron, "has a phase, which cron_schedule does not take");
  }
  absl::StatusOr<absl::Duration> interval = ParseCronDuration(parts.first);
  if (!interval.ok()) return CronError(where, cron, interval.status().message());
  IntervalSpec spec;
  const absl::Duration seconds = absl::Trunc(*interval, absl::Seconds(1));
  spec.mutable_interval()->set_seconds(absl::ToInt64Seconds(seconds));
  spec.mutable_interval()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(*interval - seconds)));
  if (!parts.second.empty()) {
    absl::StatusOr<absl::Duration> phase = ParseCronDuration(parts.second);
    if (!phase.ok()) return CronError(where, cron, phase.status().message());
    const absl::Duration phase_seconds = absl::Trunc(*phase, absl::Seconds(1));
    spec.mutable_phase()->set_seconds(absl::ToInt64Seconds(phase_seconds));
    spec.mutable_phase()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(*phase - phase_seconds)));
  }
  out->intervals.push_back(std::move(spec));
  return absl::OkStatus();
}

absl::Status ParseCronFields(absl::string_view cron, absl::string_view body,
                             const std::string& comment, CronDialect dialect,
                             absl::string_view where, ParsedCron* out) {
  const std::vector<std::string> fields =
      absl::StrSplit(body, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty());
  CalendarSpec calendar;
  calendar.set_comment(comment);
  const size_t n = fields.size();
  const bool five_only = dialect == CronDialect::kCronSchedule;
  if (n != 5 && (five_only || (n != 6 && n != 7))) {
    return CronError(where, cron,
                     absl::StrCat("has ", n, " fields; want ",
                                  five_only ? "5 (minute hour day-of-month month day-of-week)"
                                            : "5, 6 or 7"));
  }
  size_t i = 0;
  if (n == 7) calendar.set_second(fields[i++]);
  calendar.set_minute(fields[i++]);
  calendar.set_hour(fields[i++]);
  calendar.set_day_of_month(fields[i++]);
  calendar.set_month(fields[i++]);
  calendar.set_day_of_week(fields[i++]);
  calendar.set_year(n >= 6 ? fields[i] : "*");  // second, when absent, defaults to 0

  if (dialect == CronDialect::kCronSchedule) {
    // robfig/cron's standard parser knows day of week 0-6 only: 7 is not Sunday there.
    for (absl::string_view part : absl::StrSplit(calendar.day_of_week(), ',')) {
      part = part.substr(0, part.find('/'));
      for (absl::string_view bound : absl::StrSplit(part, '-')) {
        if (absl::StripAsciiWhitespace(bound) == "7") {
          return CronError(where, cron, "has day of week 7 (cron_schedule takes 0-6)");
        }
      }
    }
  }
  const bool question_mark = dialect == CronDialect::kCronSchedule;
  const bool either_day = dialect == CronDialect::kCronSchedule &&
                          !IsUnrestrictedCronField(calendar.day_of_month()) &&
                          !IsUnrestrictedCronField(calendar.day_of_week());
  if (!either_day) {
    absl::StatusOr<StructuredCalendarSpec> parsed =
        ParseCalendarFields(calendar, where, question_mark);
    if (!parsed.ok()) return parsed.status();
    out->calendars.push_back(std::move(*parsed));
    return absl::OkStatus();
  }
  // Day of month OR day of week: the union of one calendar for each.
  CalendarSpec by_month_day = calendar;
  by_month_day.set_day_of_week("*");
  CalendarSpec by_weekday = calendar;
  by_weekday.set_day_of_month("*");
  for (const CalendarSpec* c : {&by_month_day, &by_weekday}) {
    absl::StatusOr<StructuredCalendarSpec> parsed = ParseCalendarFields(*c, where, question_mark);
    if (!parsed.ok()) return parsed.status();
    out->calendars.push_back(std::move(*parsed));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StructuredCalendarSpec> ParseCalendarSpec(const CalendarSpec& calendar,
                                                         absl::string_view where) {
  return ParseCalendarFields(calendar, where, /*allow_question_mark=*/false);
}

absl::Status ValidateStructuredCalendar(const StructuredCalendarSpec& calendar,
                                        absl::string_view where) {
  struct Slot {
    const RangeList& ranges;
    absl::string_view name;
    int min;
    int max;
  };
  const Slot slots[] = {
      {calendar.second(), "second", 0, 59},
      {calendar.minute(), "minute", 0, 59},
      {calendar.hour(), "hour", 0, 23},
      {calendar.day_of_month(), "day_of_month", 1, 31},
      {calendar.month(), "month", 1, 12},
      {calendar.year(), "year", kMinCalendarYear, kMaxCalendarYear},
      {calendar.day_of_week(), "day_of_week", 0, 6},
  };
  for (const Slot& slot : slots) {
    for (int i = 0; i < slot.ranges.size(); ++i) {
      const Range& r = slot.ranges[i];
      const std::string at = absl::StrCat(where, ".", slot.name, "[", i, "]");
      if (r.start() < slot.min || r.start() > slot.max) {
        return absl::InvalidArgumentError(absl::StrCat(at, ": start ", r.start(),
                                                       " is not in [", slot.min, ", ",
                                                       slot.max, "]"));
      }
      if (r.end() > slot.max) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ": end ", r.end(), " is above ", slot.max));
      }
      if (r.step() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(at, ": step ", r.step(), " is negative"));
      }
    }
  }
  if (calendar.comment().size() > kMaxCalendarCommentLength) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".comment: longer than ",
                                                   kMaxCalendarCommentLength, " bytes"));
  }
  return absl::OkStatus();
}

void NormalizeStructuredCalendar(StructuredCalendarSpec* calendar) {
  for (RangeList* ranges :
       {calendar->mutable_second(), calendar->mutable_minute(), calendar->mutable_hour(),
        calendar->mutable_day_of_month(), calendar->mutable_month(), calendar->mutable_year(),
        calendar->mutable_day_of_week()}) {
    for (Range& r : *ranges) {
      r.set_end(std::max(r.end(), r.start()));
      r.set_step(std::max(r.step(), 1));
    }
  }
}

absl::StatusOr<ParsedCron> ParseCronString(absl::string_view cron, CronDialect dialect,
                                           absl::string_view where) {
  ParsedCron out;
  absl::string_view body = absl::StripAsciiWhitespace(cron);
  if (absl::StartsWith(body, "TZ=") || absl::StartsWith(body, "CRON_TZ=")) {
    const size_t space = body.find_first_of(" \t");
    if (space == absl::string_view::npos) {
      return CronError(where, cron, "has a time zone but no schedule");
    }
    out.timezone_name = std::string(body.substr(body.find('=') + 1, space - body.find('=') - 1));
    if (out.timezone_name.empty()) return CronError(where, cron, "has an empty time zone");
    body = absl::StripLeadingAsciiWhitespace(body.substr(space));
  }
  std::string comment;
  if (dialect == CronDialect::kScheduleSpec) {
    if (const size_t hash = body.find('#'); hash != absl::string_view::npos) {
      comment = std::string(absl::StripAsciiWhitespace(body.substr(hash + 1)));
      body = absl::StripAsciiWhitespace(body.substr(0, hash));
    }
  }
  if (body.empty()) return CronError(where, cron, "is empty");

  if (body[0] == '@') {
    const std::pair<absl::string_view, absl::string_view> word_rest =
        absl::StrSplit(body, absl::MaxSplits(absl::ByAnyChar(" \t"), 1));
    const absl::string_view argument = absl::StripAsciiWhitespace(word_rest.second);
    if (word_rest.first == "@every") {
      if (absl::Status s = ParseEvery(cron, argument, dialect, where, &out); !s.ok()) return s;
      return out;
    }
    const char* fields = PredefinedCron(word_rest.first);
    if (fields == nullptr) {
      return CronError(where, cron,
                       "names an unknown schedule (want @yearly, @annually, @monthly, @weekly, "
                       "@daily, @midnight, @hourly or @every)");
    }
    if (!argument.empty()) return CronError(where, cron, "has text after the schedule name");
    body = fields;
  }
  if (absl::Status s = ParseCronFields(cron, body, comment, dialect, where, &out); !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<absl::Duration> ParseCronDuration(absl::string_view text) {
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a duration such as 90m, 1h30m or 2d"));
  absl::string_view s = text;
  int sign = 1;
  if (absl::ConsumePrefix(&s, "-")) {
    sign = -1;
  } else {
    absl::ConsumePrefix(&s, "+");
  }
  if (s == "0") return absl::ZeroDuration();
  if (s.empty()) return bad;
  struct Unit {
    absl::string_view suffix;
    absl::Duration size;
  };
  // Longest suffixes first, so that "ms" is not read as "m".
  static const Unit kUnits[] = {
      {"ns", absl::Nanoseconds(1)}, {"us", absl::Microseconds(1)},
      {"\xc2\xb5s", absl::Microseconds(1)}, {"\xce\xbcs", absl::Microseconds(1)},
      {"ms", absl::Milliseconds(1)}, {"s", absl::Seconds(1)},
      {"m", absl::Minutes(1)},      {"h", absl::Hours(1)},
      {"d", absl::Hours(24)},
  };
  absl::Duration total;
  while (!s.empty()) {
    size_t digits = 0;
    while (digits < s.size() && (absl::ascii_isdigit(static_cast<unsigned char>(s[digits])) ||
                                 s[digits] == '.')) {
      ++digits;
    }
    const absl::string_view number = s.substr(0, digits);
    s.remove_prefix(digits);
    double value = 0;
    if (number.empty() || number == "." || std::count(number.begin(), number.end(), '.') > 1 ||
        !absl::SimpleAtod(number, &value)) {
      return bad;
    }
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (absl::StartsWith(s, u.suffix)) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return bad;
    s.remove_prefix(unit->suffix.size());
    total += value * unit->size;
    if (total > absl::Hours(24 * 366 * 10000)) return bad;  // also catches overflow to infinity
  }
  return sign * total;
}

}  // namespace almanac::scheduler
