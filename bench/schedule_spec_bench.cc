// Times the schedule spec engine (src/scheduler/schedule_spec.h): how long one "next action"
// or one listed action takes, for the spec forms the engine must never walk minute by minute.
//
//   build/src/scheduler/schedule_spec_bench [iterations-scale]
//
// Prints one line per case: nanoseconds per operation, best of five rounds. Figures are
// recorded in docs/performance.md ("Schedule spec engine").

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "google/protobuf/text_format.h"
#include "scheduler/schedule_spec.h"

namespace {

using almanac::scheduler::CompiledSpec;
using almanac::scheduler::ScheduleSpec;

ScheduleSpec SpecOf(const char* text) {
  ScheduleSpec spec;
  if (!google::protobuf::TextFormat::ParseFromString(text, &spec)) {
    std::fprintf(stderr, "bad spec: %s\n", text);
    std::exit(1);
  }
  return spec;
}

CompiledSpec Compile(const ScheduleSpec& spec) {
  absl::StatusOr<CompiledSpec> compiled = almanac::scheduler::CompileSpec(spec, "bench");
  if (!compiled.ok()) {
    std::fprintf(stderr, "compile failed: %s\n", std::string(compiled.status().message()).c_str());
    std::exit(1);
  }
  return *std::move(compiled);
}

CompiledSpec Compile(const char* text) { return Compile(SpecOf(text)); }

// Excludes a whole day of the year (text format would warn: exclude_calendar is deprecated).
ScheduleSpec ExcludingDay(ScheduleSpec spec, const char* month, const char* day) {
  auto* exclusion = spec.add_exclude_calendar();
  exclusion->set_second("*");
  exclusion->set_minute("*");
  exclusion->set_hour("*");
  exclusion->set_month(month);
  exclusion->set_day_of_month(day);
  return spec;
}

// Runs `op` `n` times per round and prints the best round's time per op (per item when `op`
// returns a count of items).
void Measure(const char* name, long n, const std::function<long()>& op) {
  double best = 1e300;
  long items = 0;
  for (int round = 0; round < 5; ++round) {
    items = 0;
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) items += op();
    const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count());
  }
  std::printf("%-58s %10.0f ns/op\n", name, best / static_cast<double>(items));
}

// Next() from a sweep of start times, so that caches and branch predictors see variety.
void MeasureNext(const char* name, const CompiledSpec& spec, long n) {
  const absl::Time base = absl::FromUnixSeconds(1735689600);  // 2025-01-01T00:00:00Z
  long i = 0;
  Measure(name, n, [&] {
    const absl::Time after = base + absl::Seconds((i++ * 7919) % (86400 * 365));
    return spec.Next(after).has_value() ? 1L : 1L;
  });
}

}  // namespace

int main(int argc, char** argv) {
  const long scale = argc > 1 ? std::atol(argv[1]) : 1;
  const long n = 20000 * scale;

  std::printf("Next(): first action after T, T swept over 2025\n");
  MeasureNext("cron \"*/15 * * * *\" (UTC)", Compile(R"pb(cron_string: "*/15 * * * *")pb"), n);
  MeasureNext("cron \"0 0 29 2 *\" (next leap day, up to 4 years)",
              Compile(R"pb(cron_string: "0 0 29 2 *")pb"), n);
  MeasureNext("cron \"0 0 29 2 *\" in America/New_York",
              Compile(R"pb(cron_string: "CRON_TZ=America/New_York 0 0 29 2 *")pb"), n);
  MeasureNext("calendar restricted to 2090 (65 years ahead)",
              Compile(R"pb(cron_string: "0 0 0 1 1 * 2090")pb"), n);
  MeasureNext("calendar restricted to 2090, America/New_York",
              Compile(R"pb(cron_string: "CRON_TZ=America/New_York 0 0 0 1 1 * 2090")pb"), n);
  MeasureNext("calendar 30 2 * * * in New York (DST gap, overlap)",
              Compile(R"pb(cron_string: "CRON_TZ=America/New_York 30 2 * * *")pb"), n);
  MeasureNext("cron \"0 0 30 2 *\" (never: searches to 2100)",
              Compile(R"pb(cron_string: "0 0 30 2 *")pb"), n / 4);
  MeasureNext("interval 1h phase 19m",
              Compile(R"pb(interval { interval { seconds: 3600 } phase { seconds: 1140 } })pb"),
              n);
  ScheduleSpec santiago = SpecOf(R"pb(
    cron_string: "TZ=America/Santiago 0 9 * * Mon-Fri"
    cron_string: "TZ=America/Santiago 30 17 * * Mon-Fri"
    calendar { hour: "12" day_of_week: "Sat" }
    interval { interval { seconds: 21600 } phase { seconds: 600 } }
    jitter { seconds: 300 }
  )pb");
  santiago = ExcludingDay(ExcludingDay(santiago, "Dec", "25"), "Jan", "1");
  MeasureNext("3 calendars + interval + 2 exclusions + jitter, Santiago", Compile(santiago), n);
  MeasureNext("every minute, hours 0-22 excluded (skips 23h at once)",
              Compile(R"pb(
                interval { interval { seconds: 60 } }
                exclude_structured_calendar {
                  second { start: 0 end: 59 }
                  minute { start: 0 end: 59 }
                  hour { start: 0 end: 22 }
                  day_of_month { start: 1 end: 31 }
                  month { start: 1 end: 12 }
                  day_of_week { start: 0 end: 6 }
                }
              )pb"),
              n);

  std::printf("\nBetween(): listing a year of actions, per action listed\n");
  const CompiledSpec hourly_ny =
      Compile(R"pb(cron_string: "CRON_TZ=America/New_York 0 * * * *")pb");
  const absl::Time y2025 = absl::FromUnixSeconds(1735689600);
  const absl::Time y2026 = absl::FromUnixSeconds(1767225600);
  Measure("hourly in New York over 2025 (8760 actions)", std::max(1L, n / 2000),
          [&] { return static_cast<long>(hourly_ny.Between(y2025, y2026, 100000).size()); });
  const CompiledSpec every_5m_jitter =
      Compile(R"pb(cron_string: "*/5 * * * *" jitter { seconds: 120 })pb");
  Measure("every 5 minutes with jitter over 2025 (105120 actions)", std::max(1L, n / 20000),
          [&] { return static_cast<long>(every_5m_jitter.Between(y2025, y2026, 200000).size()); });

  std::printf("\nCompileSpec()\n");
  const ScheduleSpec cron_ny =
      SpecOf(R"pb(cron_string: "CRON_TZ=America/New_York 15 8 * * Mon-Fri")pb");
  Measure("cron string in America/New_York (zone cached)", n / 4, [&] {
    return almanac::scheduler::CompileSpec(cron_ny).ok() ? 1L : 1L;
  });

  // The first compile naming a zone reads it from the tz database; later ones use the cache.
  const char* kZones[] = {"Europe/Paris",     "Asia/Tokyo",        "Australia/Sydney",
                          "America/Chicago",  "America/Sao_Paulo", "Africa/Cairo",
                          "Europe/Moscow",    "Asia/Kolkata",      "Pacific/Auckland",
                          "America/Denver"};
  const auto start = std::chrono::steady_clock::now();
  for (const char* zone : kZones) {
    ScheduleSpec spec = cron_ny;
    spec.clear_cron_string();
    spec.add_cron_string("15 8 * * Mon-Fri");
    spec.set_timezone_name(zone);
    if (!almanac::scheduler::CompileSpec(spec).ok()) std::fprintf(stderr, "%s failed\n", zone);
  }
  const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  std::printf("%-58s %10.0f ns/op\n", "first use of a zone (tz database read, 10 zones)",
              took.count() / 10);
  return 0;
}
