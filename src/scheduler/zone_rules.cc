#include "scheduler/zone_rules.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/civil.h"

namespace almanac::scheduler {

ZoneRules::ZoneRules(int32_t initial_offset, const std::vector<Change>& changes)
    : initial_offset_(initial_offset), min_offset_(initial_offset), max_offset_(initial_offset) {
  int32_t current = initial_offset;
  for (const Change& c : changes) {
    // Two changes at one instant: the later one in the list wins.
    if (!changes_.empty() && changes_.back().at == c.at) {
      changes_.pop_back();
      current = changes_.empty() ? initial_offset_ : changes_.back().offset;
    }
    if (c.offset == current) continue;
    changes_.push_back(c);
    current = c.offset;
  }
  for (const Change& c : changes_) {
    min_offset_ = std::min(min_offset_, c.offset);
    max_offset_ = std::max(max_offset_, c.offset);
  }
}

ZoneRules::Period ZoneRules::PeriodAt(int64_t unix_seconds) const {
  // The first change strictly after the instant ends its period.
  auto next = std::upper_bound(changes_.begin(), changes_.end(), unix_seconds,
                               [](int64_t t, const Change& c) { return t < c.at; });
  Period p;
  p.end = next == changes_.end() ? kMaxSeconds : next->at;
  if (next == changes_.begin()) {
    p.offset = initial_offset_;
    p.begin = kMinSeconds;
  } else {
    p.offset = std::prev(next)->offset;
    p.begin = std::prev(next)->at;
  }
  return p;
}

namespace {

constexpr int64_t kTableEnd = DaysFromCivil(kZoneRulesEndYear + 1, 1, 1) * kSecondsPerDay;

// RFC 8536: offsets SHOULD lie in (-25h, +26h). Anything beyond is refused so that the
// engine's searches can rely on small offsets.
constexpr int32_t kMinOffset = -89999;
constexpr int32_t kMaxOffset = 93599;

absl::Status InvalidTzif(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("timezone_data is not valid TZif data: ", why));
}

// ---- Zone names -------------------------------------------------------------------------

// IANA names are ASCII letters, digits and "_+-" in '/'-separated parts. Refusing anything
// else keeps a spec from naming files outside the tz database ("../", "/etc/…", "file:…").
bool IsWellFormedZoneName(absl::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
    for (char ch : part) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '+' &&
          ch != '-' && ch != '.') {
        return false;
      }
    }
  }
  return true;
}

ZoneRules RulesFromAbsl(const absl::TimeZone& tz) {
  std::vector<ZoneRules::Change> changes;
  absl::TimeZone::CivilTransition transition;
  absl::Time t = absl::InfinitePast();
  while (tz.NextTransition(t, &transition)) {
    const absl::Time at = tz.At(transition.to).trans;
    if (at <= t || absl::ToUnixSeconds(at) > kTableEnd) break;
    changes.push_back({absl::ToUnixSeconds(at), tz.At(at).offset});
    t = at;
  }
  const absl::Time before_first =
      changes.empty() ? absl::UnixEpoch() : absl::FromUnixSeconds(changes.front().at - 1);
  return ZoneRules(tz.At(before_first).offset, changes);
}

class ZoneCache {
 public:
  std::shared_ptr<const ZoneRules> Find(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = zones_.find(name);
    return it == zones_.end() ? nullptr : it->second;
  }
  void Put(const std::string& name, std::shared_ptr<const ZoneRules> rules) {
    absl::MutexLock lock(&mu_);
    zones_.emplace(name, std::move(rules));
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const ZoneRules>> zones_ ABSL_GUARDED_BY(mu_);
};

ZoneCache& Cache() {
  static auto* cache = new ZoneCache();  // never destroyed: used until exit
  return *cache;
}

// ---- TZif -------------------------------------------------------------------------------

class ByteReader {
 public:
  explicit ByteReader(absl::string_view data) : data_(data) {}
  bool Has(size_t n) const { return data_.size() - pos_ >= n; }
  size_t remaining() const { return data_.size() - pos_; }
  absl::string_view Take(size_t n) {
    absl::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t BigEndian(size_t width) {
    uint64_t v = 0;
    for (char ch : Take(width)) v = (v << 8) | static_cast<unsigned char>(ch);
    return v;
  }
  int64_t Signed(size_t width) {
    const uint64_t v = BigEndian(width);
    if (width == 8) return static_cast<int64_t>(v);
    return static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(v)));
  }

 private:
  absl::string_view data_;
  size_t pos_ = 0;
};

struct TzifHeader {
  char version = 0;
  uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;

  // Size of the data block that follows, with `time_size`-byte transition times.
  size_t BlockSize(size_t time_size) const {
    return size_t{timecnt} * time_size + timecnt + size_t{typecnt} * 6 + charcnt +
           size_t{leapcnt} * (time_size + 4) + isstdcnt + isutcnt;
  }
};

absl::StatusOr<TzifHeader> ReadHeader(ByteReader& in) {
  if (!in.Has(44)) return InvalidTzif("truncated header");
  if (in.Take(4) != "TZif") return InvalidTzif("missing TZif magic");
  TzifHeader h;
  h.version = in.Take(1)[0];
  if (h.version != 0 && (h.version < '2' || h.version > '9')) {
    return InvalidTzif("unknown version");
  }
  in.Take(15);
  h.isutcnt = static_cast<uint32_t>(in.BigEndian(4));
  h.isstdcnt = static_cast<uint32_t>(in.BigEndian(4));
  h.leapcnt = static_cast<uint32_t>(in.BigEndian(4));
  h.timecnt = static_cast<uint32_t>(in.BigEndian(4));
  h.typecnt = static_cast<uint32_t>(in.BigEndian(4));
  h.charcnt = static_cast<uint32_t>(in.BigEndian(4));
  if (h.typecnt == 0 || h.typecnt > 256) return InvalidTzif("bad local time type count");
  return h;
}

struct TzifBlock {
  int32_t initial_offset = 0;
  std::vector<ZoneRules::Change> changes;
};

absl::StatusOr<TzifBlock> ReadBlock(ByteReader& in, const TzifHeader& h, size_t time_size) {
  if (!in.Has(h.BlockSize(time_size))) return InvalidTzif("truncated data block");
  std::vector<int64_t> times(h.timecnt);
  for (int64_t& t : times) t = in.Signed(time_size);
  std::vector<uint8_t> type_of(h.timecnt);
  for (uint8_t& i : type_of) i = static_cast<uint8_t>(in.BigEndian(1));
  std::vector<int32_t> offsets(h.typecnt);
  for (int32_t& off : offsets) {
    const int64_t utoff = in.Signed(4);
    in.Take(2);  // isdst, desigidx: the engine needs offsets only
    if (utoff < kMinOffset || utoff > kMaxOffset) return InvalidTzif("UTC offset out of range");
    off = static_cast<int32_t>(utoff);
  }
  in.Take(h.charcnt + size_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt);

  TzifBlock block;
  block.initial_offset = offsets[0];
  for (uint32_t i = 0; i < h.timecnt; ++i) {
    if (type_of[i] >= h.typecnt) return InvalidTzif("transition names an unknown type");
    if (i > 0 && times[i] < times[i - 1]) return InvalidTzif("transitions out of order");
    block.changes.push_back({times[i], offsets[type_of[i]]});
  }
  return block;
}

// ---- POSIX TZ strings (the TZif footer) ---------------------------------------------------

// A rule date: Jn (1-365, no leap day), n (0-365, zero-based) or Mm.w.d.
struct RuleDate {
  enum Kind { kJulianNoLeap, kZeroBased, kMonthWeekDay } kind = kMonthWeekDay;
  int day = 0;  // Jn or n
  int month = 0, week = 0, weekday = 0;
  int32_t time = 2 * 3600;  // local seconds after midnight, may be negative or > 24h

  // Days since 1970-01-01 of this date in `year`.
  int64_t Day(int64_t year) const {
    const int64_t jan1 = DaysFromCivil(year, 1, 1);
    switch (kind) {
      case kJulianNoLeap:
        return jan1 + day - 1 + (IsLeapYear(year) && day >= 60 ? 1 : 0);
      case kZeroBased:
        return jan1 + day;
      case kMonthWeekDay: {
        const int64_t first = DaysFromCivil(year, month, 1);
        const int first_weekday = WeekdayFromDays(first);
        int d = 1 + (weekday - first_weekday + 7) % 7 + 7 * (week - 1);
        while (d > DaysInMonth(year, month)) d -= 7;  // week 5: the last such weekday
        return first + d - 1;
      }
    }
    return jan1;
  }
};

struct PosixTz {
  int32_t std_offset = 0;  // seconds east of UTC
  bool has_dst = false;
  int32_t dst_offset = 0;
  RuleDate start, end;  // start of DST (in standard time) and its end (in DST)
};

class PosixTzParser {
 public:
  explicit PosixTzParser(absl::string_view s) : s_(s) {}

  absl::StatusOr<PosixTz> Parse() {
    PosixTz tz;
    int32_t west = 0;
    if (!Name() || !Offset(/*max_hours=*/24, &west)) return Bad();
    tz.std_offset = -west;
    if (Done()) return tz;
    if (!Name()) return Bad();
    tz.has_dst = true;
    tz.dst_offset = tz.std_offset + 3600;
    if (!Done() && Peek() != ',') {
      if (!Offset(24, &west)) return Bad();
      tz.dst_offset = -west;
    }
    if (Done()) {
      // No rule: the US rule, as tzcode and Go assume.
      tz.start = {RuleDate::kMonthWeekDay, 0, 3, 2, 0};
      tz.end = {RuleDate::kMonthWeekDay, 0, 11, 1, 0};
      return tz;
    }
    if (!Eat(',') || !Date(&tz.start) || !Eat(',') || !Date(&tz.end) || !Done()) return Bad();
    if (tz.std_offset < kMinOffset || tz.std_offset > kMaxOffset ||
        tz.dst_offset < kMinOffset || tz.dst_offset > kMaxOffset) {
      return Bad();
    }
    return tz;
  }

 private:
  absl::Status Bad() const { return InvalidTzif(absl::StrCat("bad TZ footer \"", s_, "\"")); }
  bool Done() const { return pos_ == s_.size(); }
  char Peek() const { return Done() ? '\0' : s_[pos_]; }
  bool Eat(char ch) {
    if (Peek() != ch) return false;
    ++pos_;
    return true;
  }

  // <+0330> or at least three letters.
  bool Name() {
    if (Eat('<')) {
      const size_t close = s_.find('>', pos_);
      if (close == absl::string_view::npos || close == pos_) return false;
      pos_ = close + 1;
      return true;
    }
    const size_t begin = pos_;
    while (absl::ascii_isalpha(static_cast<unsigned char>(Peek()))) ++pos_;
    return pos_ - begin >= 3;
  }

  bool Number(int max, int* out) {
    const size_t begin = pos_;
    int v = 0;
    while (absl::ascii_isdigit(static_cast<unsigned char>(Peek())) && pos_ - begin < 4) {
      v = v * 10 + (s_[pos_++] - '0');
    }
    if (pos_ == begin || v > max) return false;
    *out = v;
    return true;
  }

  // [+-]hh[:mm[:ss]], in seconds.
  bool Offset(int max_hours, int32_t* out) {
    const int sign = Eat('-') ? -1 : (Eat('+'), 1);
    int h = 0, m = 0, sec = 0;
    if (!Number(max_hours, &h)) return false;
    if (Eat(':') && (!Number(59, &m) || (Eat(':') && !Number(59, &sec)))) return false;
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }

  bool Date(RuleDate* d) {
    if (Eat('J')) {
      d->kind = RuleDate::kJulianNoLeap;
      if (!Number(365, &d->day) || d->day < 1) return false;
    } else if (Eat('M')) {
      d->kind = RuleDate::kMonthWeekDay;
      if (!Number(12, &d->month) || d->month < 1 || !Eat('.') || !Number(5, &d->week) ||
          d->week < 1 || !Eat('.') || !Number(6, &d->weekday)) {
        return false;
      }
    } else {
      d->kind = RuleDate::kZeroBased;
      if (!Number(365, &d->day)) return false;
    }
    d->time = 2 * 3600;
    // RFC 8536 extends the time to -167..167 hours.
    return !Eat('/') || Offset(167, &d->time);
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

// Offset changes the footer rule makes in [first_year, kZoneRulesEndYear].
std::vector<ZoneRules::Change> ExpandRule(const PosixTz& tz, int64_t first_year) {
  std::vector<ZoneRules::Change> out;
  for (int64_t year = first_year; year <= kZoneRulesEndYear; ++year) {
    const int64_t start = tz.start.Day(year) * kSecondsPerDay + tz.start.time - tz.std_offset;
    const int64_t end = tz.end.Day(year) * kSecondsPerDay + tz.end.time - tz.dst_offset;
    // Listed in time order; at a tie the DST start comes last, so that a rule covering the
    // whole year ("J1/0,J365/25") reads as permanent DST.
    if (end <= start) {
      out.push_back({end, tz.std_offset});
      out.push_back({start, tz.dst_offset});
    } else {
      out.push_back({start, tz.dst_offset});
      out.push_back({end, tz.std_offset});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const ZoneRules::Change& a,
                                              const ZoneRules::Change& b) { return a.at < b.at; });
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ZoneRules>> LoadZoneRules(absl::string_view name) {
  static const auto* utc = new std::shared_ptr<const ZoneRules>(std::make_shared<ZoneRules>(0));
  if (name.empty()) return *utc;
  const std::string key(name);
  if (auto cached = Cache().Find(key)) return cached;
  absl::TimeZone tz;
  // "localtime" would follow the server's configuration, not the spec.
  if (!IsWellFormedZoneName(name) || name == "localtime" || !absl::LoadTimeZone(key, &tz)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown time zone \"", name, "\""));
  }
  auto rules = std::make_shared<const ZoneRules>(RulesFromAbsl(tz));
  Cache().Put(key, rules);
  return rules;
}

absl::StatusOr<ZoneRules> ParseTzif(absl::string_view data) {
  ByteReader in(data);
  absl::StatusOr<TzifHeader> header = ReadHeader(in);
  if (!header.ok()) return header.status();
  if (header->version == 0) {
    absl::StatusOr<TzifBlock> block = ReadBlock(in, *header, 4);
    if (!block.ok()) return block.status();
    return ZoneRules(block->initial_offset, block->changes);
  }

  // Version 2+: skip the 32-bit block, read the 64-bit one and the footer.
  if (!in.Has(header->BlockSize(4))) return InvalidTzif("truncated data block");
  in.Take(header->BlockSize(4));
  header = ReadHeader(in);
  if (!header.ok()) return header.status();
  absl::StatusOr<TzifBlock> block = ReadBlock(in, *header, 8);
  if (!block.ok()) return block.status();

  absl::string_view rest = in.Take(in.remaining());
  if (rest.empty() || rest[0] != '\n') return InvalidTzif("missing footer");
  const size_t close = rest.find('\n', 1);
  if (close == absl::string_view::npos) return InvalidTzif("unterminated footer");
  const absl::string_view footer = rest.substr(1, close - 1);
  if (footer.empty()) return ZoneRules(block->initial_offset, block->changes);

  absl::StatusOr<PosixTz> tz = PosixTzParser(footer).Parse();
  if (!tz.ok()) return tz.status();
  std::vector<ZoneRules::Change> changes = block->changes;
  int32_t initial = block->initial_offset;
  if (changes.empty()) initial = tz->std_offset;  // the footer governs all time
  const int64_t last = changes.empty() ? ZoneRules::kMinSeconds : changes.back().at;
  if (!tz->has_dst) {
    // RFC 8536 requires the footer to agree with the last transition, which then holds.
    return changes.empty() ? ZoneRules(tz->std_offset) : ZoneRules(initial, changes);
  }
  const int64_t first_year =
      changes.empty() ? 1900 : CivilFromLocalSeconds(last).year;
  for (const ZoneRules::Change& c : ExpandRule(*tz, first_year)) {
    if (c.at > last) changes.push_back(c);
  }
  return ZoneRules(initial, changes);
}

}  // namespace almanac::scheduler
