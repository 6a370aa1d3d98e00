// Offset tables from the system tz database and from TZif bytes. Transition instants are
// the published rules worked out by hand (and checked against `zdump -v`).

#include "scheduler/zone_rules.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "scheduler/civil.h"

namespace almanac::scheduler {
namespace {

int64_t U(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339 << ": " << err;
  return absl::ToUnixSeconds(t);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<const ZoneRules> MustLoad(absl::string_view name) {
  absl::StatusOr<std::shared_ptr<const ZoneRules>> rules = LoadZoneRules(name);
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *rules : std::make_shared<ZoneRules>();
}

// Builds TZif bytes: a v1 header and block, then (for version '2'+) the same data in 64-bit
// form and the footer.
struct Tzif {
  char version = '2';
  std::vector<std::pair<int64_t, uint8_t>> transitions;  // time, type index
  std::vector<int32_t> offsets = {0};                    // one type per offset
  std::string footer;

  std::string Bytes() const {
    std::string out;
    const auto be = [&](uint64_t v, int bytes) {
      for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
    };
    const auto block = [&](int time_size) {
      out += "TZif";
      out.push_back(version);
      out += std::string(15, '\0');
      be(0, 4), be(0, 4), be(0, 4);  // isutcnt, isstdcnt, leapcnt
      be(transitions.size(), 4), be(offsets.size(), 4), be(4, 4);
      for (const auto& t : transitions) be(static_cast<uint64_t>(t.first), time_size);
      for (const auto& t : transitions) be(t.second, 1);
      for (int32_t off : offsets) be(static_cast<uint32_t>(off), 4), be(0, 1), be(0, 1);
      out += std::string("ABC", 4);
    };
    block(4);
    if (version != 0) {
      block(8);
      out += "\n" + footer + "\n";
    }
    return out;
  }
};

TEST(LoadZoneRulesTest, NewYork2025) {
  const auto ny = MustLoad("America/New_York");
  // DST from 2025-03-09 02:00 EST (07:00Z) to 2025-11-02 02:00 EDT (06:00Z).
  ZoneRules::Period p = ny->PeriodAt(U("2025-07-01T00:00:00Z"));
  EXPECT_EQ(p.offset, -4 * 3600);
  EXPECT_EQ(p.begin, U("2025-03-09T07:00:00Z"));
  EXPECT_EQ(p.end, U("2025-11-02T06:00:00Z"));
  p = ny->PeriodAt(U("2025-03-09T06:59:59Z"));
  EXPECT_EQ(p.offset, -5 * 3600);
  EXPECT_EQ(p.end, U("2025-03-09T07:00:00Z"));
  EXPECT_EQ(ny->OffsetAt(U("2025-11-02T06:00:00Z")), -5 * 3600);
  // Changes are tabulated through 2101: 2101-03-13 is the second Sunday of March.
  EXPECT_EQ(ny->OffsetAt(U("2101-03-13T06:59:59Z")), -5 * 3600);
  EXPECT_EQ(ny->OffsetAt(U("2101-03-13T07:00:00Z")), -4 * 3600);
}

TEST(LoadZoneRulesTest, UtcAndEmptyName) {
  for (const char* name : {"", "UTC", "Etc/UTC"}) {
    const auto utc = MustLoad(name);
    const ZoneRules::Period p = utc->PeriodAt(U("2025-07-01T00:00:00Z"));
    EXPECT_EQ(p.offset, 0) << name;
    EXPECT_EQ(p.begin, ZoneRules::kMinSeconds) << name;
    EXPECT_EQ(p.end, ZoneRules::kMaxSeconds) << name;
  }
}

TEST(LoadZoneRulesTest, CachedAndShared) {
  EXPECT_EQ(MustLoad("Europe/Paris").get(), MustLoad("Europe/Paris").get());
}

TEST(LoadZoneRulesTest, RefusesUnknownAndMalformedNames) {
  for (const char* name : {"Mars/Olympus_Mons", "../etc/passwd", "/etc/localtime",
                           "file:/etc/passwd", "America//New_York", "localtime", "America/"}) {
    const auto rules = LoadZoneRules(name);
    EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

// The system's TZif files, read by our parser, agree with absl's reading of the same zone
// at every instant from 1970 to the end of 2101 (checked every 6 hours and around each
// change).
class SystemTzifTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SystemTzifTest, AgreesWithTheDatabase) {
  const std::string name = GetParam();
  const std::string data = ReadFile("/usr/share/zoneinfo/" + name);
  ASSERT_FALSE(data.empty()) << name;
  absl::StatusOr<ZoneRules> parsed = ParseTzif(data);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const auto loaded = MustLoad(name);
  const int64_t end = DaysFromCivil(kZoneRulesEndYear + 1, 1, 1) * kSecondsPerDay;
  for (int64_t t = 0; t < end; t += 6 * 3600) {
    ASSERT_EQ(parsed->OffsetAt(t), loaded->OffsetAt(t)) << name << " at " << t;
  }
  for (const ZoneRules::Change& c : loaded->changes()) {
    if (c.at < 0) continue;
    for (int64_t t : {c.at - 1, c.at}) {
      ASSERT_EQ(parsed->OffsetAt(t), loaded->OffsetAt(t)) << name << " at " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zones, SystemTzifTest,
                         ::testing::Values("America/New_York", "America/Santiago",
                                           "Europe/London", "Australia/Lord_Howe",
                                           "Asia/Kolkata", "Africa/Casablanca"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (ch == '/') ch = '_';
                           }
                           return name;
                         });

TEST(ParseTzifTest, FooterRuleNorthern) {
  // UTC+3, UTC+4 from the last Sunday of March 02:00 to the last Sunday of October 03:00.
  // 2024: 31 March and 27 October; 2025: 30 March and 26 October.
  Tzif tzif;
  tzif.offsets = {3 * 3600};
  tzif.footer = "<+03>-3<+04>,M3.5.0,M10.5.0/3";
  absl::StatusOr<ZoneRules> z = ParseTzif(tzif.Bytes());
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->PeriodAt(U("2024-06-01T00:00:00Z")).begin, U("2024-03-31T02:00:00+03:00"));
  EXPECT_EQ(z->PeriodAt(U("2024-06-01T00:00:00Z")).end, U("2024-10-27T03:00:00+04:00"));
  EXPECT_EQ(z->PeriodAt(U("2025-06-01T00:00:00Z")).begin, U("2025-03-29T23:00:00Z"));
  EXPECT_EQ(z->PeriodAt(U("2025-06-01T00:00:00Z")).end, U("2025-10-25T23:00:00Z"));
  EXPECT_EQ(z->OffsetAt(U("2025-06-01T00:00:00Z")), 4 * 3600);
  EXPECT_EQ(z->OffsetAt(U("2025-12-01T00:00:00Z")), 3 * 3600);
}

TEST(ParseTzifTest, FooterRuleSouthernWithMidnightTimes) {
  // Santiago's footer: -04, -03 from the first Sunday on or after 2 September at 00:00
  // (written as Saturday 24:00) to the first Sunday on or after 2 April at 00:00 -03.
  // 2025: 7 September and 6 April.
  Tzif tzif;
  tzif.offsets = {-4 * 3600};
  tzif.footer = "<-04>4<-03>,M9.1.6/24,M4.1.6/24";
  absl::StatusOr<ZoneRules> z = ParseTzif(tzif.Bytes());
  ASSERT_TRUE(z.ok()) << z.status();
  const ZoneRules::Period winter = z->PeriodAt(U("2025-06-01T00:00:00Z"));
  EXPECT_EQ(winter.offset, -4 * 3600);
  EXPECT_EQ(winter.begin, U("2025-04-06T00:00:00-03:00"));
  EXPECT_EQ(winter.end, U("2025-09-07T00:00:00-04:00"));
}

TEST(ParseTzifTest, ExplicitTransitionsThenFooter) {
  // +05:30 until 2030-01-01T00:00:00Z, then +06:00 for good.
  Tzif tzif;
  tzif.offsets = {19800, 21600};
  tzif.transitions = {{U("2030-01-01T00:00:00Z"), 1}};
  tzif.footer = "<+06>-6";
  absl::StatusOr<ZoneRules> z = ParseTzif(tzif.Bytes());
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->OffsetAt(U("2029-12-31T23:59:59Z")), 19800);
  EXPECT_EQ(z->OffsetAt(U("2030-01-01T00:00:00Z")), 21600);
  EXPECT_EQ(z->OffsetAt(U("2090-01-01T00:00:00Z")), 21600);
}

TEST(ParseTzifTest, VersionOne) {
  Tzif tzif;
  tzif.version = 0;
  tzif.offsets = {-3600, 0};
  tzif.transitions = {{U("2000-01-01T00:00:00Z"), 1}};
  absl::StatusOr<ZoneRules> z = ParseTzif(tzif.Bytes());
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->OffsetAt(U("1999-06-01T00:00:00Z")), -3600);
  EXPECT_EQ(z->OffsetAt(U("2001-06-01T00:00:00Z")), 0);
}

TEST(ParseTzifTest, PermanentDaylightTime) {
  // DST from 1 January 00:00 to 31 December 25:00, i.e. all year: always UTC-4.
  Tzif tzif;
  tzif.offsets = {-5 * 3600};
  tzif.footer = "EST5EDT,0/0,J365/25";
  absl::StatusOr<ZoneRules> z = ParseTzif(tzif.Bytes());
  ASSERT_TRUE(z.ok()) << z.status();
  for (const char* t : {"2030-01-01T12:00:00Z", "2030-06-01T00:00:00Z", "2030-12-31T12:00:00Z",
                        "2031-01-01T04:30:00Z"}) {
    EXPECT_EQ(z->OffsetAt(U(t)), -4 * 3600) << t;
  }
}

TEST(ParseTzifTest, RefusesMalformedData) {
  Tzif bad_index;
  bad_index.transitions = {{0, 3}};  // only one type
  Tzif bad_footer;
  bad_footer.footer = "EST5EDT,M13.1.0,M11.1.0";
  Tzif huge_offset;
  huge_offset.offsets = {30 * 3600};
  const std::string good = Tzif().Bytes();
  for (const std::string& data :
       {std::string(), std::string("TZif"), std::string("JUNK") + good.substr(4),
        good.substr(0, good.size() - 8), bad_index.Bytes(), bad_footer.Bytes(),
        huge_offset.Bytes()}) {
    const absl::StatusOr<ZoneRules> z = ParseTzif(data);
    EXPECT_EQ(z.status().code(), absl::StatusCode::kInvalidArgument) << data.size();
  }
}

}  // namespace
}  // namespace almanac::scheduler
