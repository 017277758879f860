#include "services/leaderboard/projection_image.h"

#include <algorithm>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <zstd.h>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/seasons.h"

namespace leaderboard {

namespace {

absl::Status Malformed(absl::string_view why) {
  return absl::InternalError(absl::StrCat("apply_event: malformed plan: ", why));
}

// A score that is an integer a double holds exactly (magnitude below 2^53):
// board totals, guard and day times.
bool IsIntegral(double score) {
  constexpr double kExact = 9007199254740992.0;  // 2^53
  return score > -kExact && score < kExact && score == static_cast<double>(static_cast<int64_t>(score));
}

// A score's IEEE-754 bits (RDB's binary doubles, the snapshots' other scores).
uint64_t BitsOf(double score) {
  uint64_t bits = 0;
  std::memcpy(&bits, &score, sizeof bits);
  return bits;
}

// Redis prints scores with %.17g; the same text makes the same double.
// Board scores are integer totals: those print as integers (the same double,
// without a printf per member).
std::string ScoreText(double score) {
  if (IsIntegral(score)) return absl::StrCat(static_cast<int64_t>(score));
  return absl::StrFormat("%.17g", score);
}

// The all-values badge's check (the V op; holds_every_value in the apply
// script): `set` (a person's values, ValuesKey; nullptr: none) holds every
// value of the catalog, each as its ValueMember or (sets written before
// issue 15's packing) its id. value_at(0), value_at(1), ...: those pairs.
template <typename ValueAt>
bool HoldsEveryValue(const absl::flat_hash_set<std::string>* set, int64_t count,
                     const ValueAt& value_at) {
  for (int64_t j = 0; j + 1 < count; j += 2) {
    if (set == nullptr || (!set->contains(value_at(j)) && !set->contains(value_at(j + 1)))) {
      return false;
    }
  }
  return true;
}

// ---- Redis's DUMP format (rdb.c, cluster.c's RESTORE): a type byte, the
// object, the RDB version (2 bytes) and a CRC64 (Jones, reflected) of all
// that (8 bytes), both little-endian. Only the plain types, which every
// RDB version since 8 (Redis 4.0) loads; Redis picks the compact encodings
// itself on load (listpack, intset), as it does for ZADD/SADD/HSET.
constexpr unsigned char kRdbTypeString = 0;
constexpr unsigned char kRdbTypeSet = 2;
constexpr unsigned char kRdbTypeHash = 4;
constexpr unsigned char kRdbTypeZset2 = 5;  // scores as binary doubles
constexpr uint16_t kRdbVersion = 9;         // Redis 5.0 and later accept it

struct Crc64Table {
  uint64_t entries[8][256];
  Crc64Table() {
    constexpr uint64_t kPoly = 0x95ac9329ac4bc9b5ULL;  // 0xad93d23594c935a9 reflected
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t crc = i;
      for (int bit = 0; bit < 8; ++bit) crc = (crc & 1) ? (crc >> 1) ^ kPoly : crc >> 1;
      entries[0][i] = crc;
    }
    for (int t = 1; t < 8; ++t) {
      for (int i = 0; i < 256; ++i) {
        entries[t][i] = (entries[t - 1][i] >> 8) ^ entries[0][entries[t - 1][i] & 0xff];
      }
    }
  }
};

// Slicing by 8: payloads of a large org's image add up to tens of MB.
uint64_t Crc64(const std::string& data) {
  static const Crc64Table table;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint64_t crc = 0;
  while (n >= 8) {
    uint64_t word = 0;
    for (int i = 0; i < 8; ++i) word |= static_cast<uint64_t>(p[i]) << (8 * i);
    crc ^= word;
    crc = table.entries[7][crc & 0xff] ^ table.entries[6][(crc >> 8) & 0xff] ^
          table.entries[5][(crc >> 16) & 0xff] ^ table.entries[4][(crc >> 24) & 0xff] ^
          table.entries[3][(crc >> 32) & 0xff] ^ table.entries[2][(crc >> 40) & 0xff] ^
          table.entries[1][(crc >> 48) & 0xff] ^ table.entries[0][crc >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = table.entries[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

void DumpLength(std::string& out, uint64_t n) {
  if (n < 64) {
    out.push_back(static_cast<char>(n));
  } else if (n < 16384) {
    out.push_back(static_cast<char>(0x40 | (n >> 8)));
    out.push_back(static_cast<char>(n & 0xff));
  } else if (n <= 0xffffffffULL) {
    out.push_back(static_cast<char>(0x80));
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  } else {
    out.push_back(static_cast<char>(0x81));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
}

void DumpString(std::string& out, const std::string& text) {
  DumpLength(out, text.size());
  out.append(text);
}

void DumpLittleEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

std::string ProjectionImage::DumpPayload(const Value& value) {
  std::string out;
  switch (value.kind) {
    case Value::Kind::kString:
      out.reserve(value.str.size() + 16);
      out.push_back(static_cast<char>(kRdbTypeString));
      DumpString(out, value.str);
      break;
    case Value::Kind::kHash:
      out.push_back(static_cast<char>(kRdbTypeHash));
      DumpLength(out, value.hash.size());
      for (const auto& [field, text] : value.hash) {
        DumpString(out, field);
        DumpString(out, text);
      }
      break;
    case Value::Kind::kSet:
      out.push_back(static_cast<char>(kRdbTypeSet));
      DumpLength(out, value.set.size());
      for (const std::string& member : value.set) DumpString(out, member);
      break;
    case Value::Kind::kZset:
      out.reserve(16 + value.zset.size() * 24);
      out.push_back(static_cast<char>(kRdbTypeZset2));
      DumpLength(out, value.zset.size());
      for (const auto& [member, score] : value.zset) {
        DumpString(out, member);
        DumpLittleEndian(out, BitsOf(score), 8);
      }
      break;
  }
  DumpLittleEndian(out, kRdbVersion, 2);
  DumpLittleEndian(out, Crc64(out), 8);
  return out;
}

ProjectionImage::Value& ProjectionImage::Slot(const std::string& key, Value::Kind kind) {
  auto [it, inserted] = keys_.try_emplace(key);
  if (inserted) it->second.kind = kind;
  return it->second;
}

int ProjectionImage::UpgradeDerivedBoards(const std::string& org) {
  std::vector<std::string> derived;
  for (const auto& [key, value] : keys_) {
    std::optional<DerivedBoard> board = ParseDerivedBoard(key);
    if (board.has_value() && board->org == org) derived.push_back(key);
  }
  if (derived.empty()) return 0;
  for (const std::string& key : derived) keys_.erase(key);
  ForgetSlots();
  const std::string years_key = YearsKey(org);
  if (keys_.count(years_key) > 0) return static_cast<int>(derived.size());
  // lb:{org}:<metric>:year:<year>:org
  const std::string prefix = Prefix(org);
  std::vector<std::string> years;
  for (const auto& [key, value] : keys_) {
    if (value.kind != Value::Kind::kZset || !absl::StartsWith(key, prefix) ||
        !absl::EndsWith(key, ":org")) {
      continue;
    }
    absl::string_view rest = absl::string_view(key).substr(prefix.size());
    size_t at = rest.find(":year:");
    if (at == absl::string_view::npos) continue;
    absl::string_view year = rest.substr(at + 6);
    year.remove_suffix(4);  // ":org"
    if (!year.empty() && year.find(':') == absl::string_view::npos) years.emplace_back(year);
  }
  if (!years.empty()) {
    Value& set = Slot(years_key, Value::Kind::kSet);
    for (const std::string& year : years) set.set.insert(year);
  }
  return static_cast<int>(derived.size());
}

int64_t ProjectionImage::SplitLegacyGuards(const std::string& org) {
  int64_t moved = 0;
  for (char stream : kGuardStreams) {
    auto it = keys_.find(LegacyGuardKey(org, stream));
    if (it == keys_.end()) continue;
    Value legacy = std::move(it->second);
    keys_.erase(it);
    ForgetSlots();
    guard_log_.clear();
    if (legacy.kind != Value::Kind::kZset) continue;
    for (const auto& [id, score] : legacy.zset) {
      Value& bucket = Slot(GuardKey(org, stream, id), Value::Kind::kZset);
      auto [at, added] = bucket.zset.try_emplace(id, score);
      if (!added) at->second = std::max(at->second, score);  // ZADD GT, as the live split
      ++moved;
    }
  }
  return moved;
}

const ProjectionImage::Value* ProjectionImage::Find(const std::string& key,
                                                    Value::Kind kind) const {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.kind != kind) return nullptr;
  return &it->second;
}

void ProjectionImage::HSetNx(const std::string& key, const std::string& field,
                             const std::string& value) {
  Slot(key, Value::Kind::kHash).hash.try_emplace(field, value);
}

absl::StatusOr<bool> ProjectionImage::Apply(const ApplyPlan& plan,
                                             const std::vector<uint32_t>* key_ids) {
  NamedBoards();
  const std::vector<std::string>& args = plan.args;
  if (plan.keys.empty() || args.size() < 2) return Malformed("no applied set or dedupe id");
  if (key_ids != nullptr && key_ids->size() != plan.keys.size()) return Malformed("key ids");
  // Each of the plan's keys is looked up once (values have stable addresses);
  // with interned ids, once per rebuild (the id's slot remembers it).
  std::vector<Value*> slots(plan.keys.size(), nullptr);
  auto interned = [&](size_t k) -> Value** {
    if (key_ids == nullptr) return nullptr;
    uint32_t id = (*key_ids)[k];
    if (id >= interned_.size()) interned_.resize(id + 1, nullptr);
    return &interned_[id];
  };
  auto slot = [&](size_t k, Value::Kind kind) -> Value& {
    if (slots[k] == nullptr) {
      Value** known = interned(k);
      slots[k] = known != nullptr && *known != nullptr ? *known : &Slot(plan.keys[k], kind);
      if (known != nullptr) *known = slots[k];
    }
    return *slots[k];
  };
  auto find = [&](size_t k, Value::Kind kind) -> const Value* {
    Value* value = slots[k];
    if (value == nullptr) {
      Value** known = interned(k);
      if (known != nullptr && *known != nullptr) {
        value = *known;
      } else {
        auto it = keys_.find(plan.keys[k]);
        if (it == keys_.end()) return nullptr;
        value = &it->second;
        if (known != nullptr) *known = value;
      }
      slots[k] = value;
    }
    return value->kind == kind ? value : nullptr;
  };
  auto erase = [&](size_t k) {
    keys_.erase(plan.keys[k]);
    slots[k] = nullptr;
    if (Value** known = interned(k)) *known = nullptr;
    if (!compact_slots_.empty()) compact_slots_.clear();  // may name the key
  };
  auto sadd = [&](size_t k, const std::string& member) {
    return slot(k, Value::Kind::kSet).set.insert(member).second;
  };
  auto hsetnx = [&](size_t k, const std::string& field, const std::string& value) {
    slot(k, Value::Kind::kHash).hash.try_emplace(field, value);
  };
  // The 0-based index of the key named by args[at] (1-based, as in Lua).
  auto key = [&](size_t at, size_t* k) {
    int index = 0;
    if (at >= args.size() || !absl::SimpleAtoi(args[at], &index) || index < 1 ||
        static_cast<size_t>(index) > plan.keys.size()) {
      return false;
    }
    *k = static_cast<size_t>(index - 1);
    return true;
  };
  auto need = [&](size_t i, size_t count) { return i + count <= args.size(); };
  // Exactly once per entry: at or below its stream's mark it was applied.
  char stream = 0;
  std::string entry_id;
  if (!plan.EntryId(&stream, &entry_id)) return Malformed("entry id");
  std::string& mark = slot(0, Value::Kind::kHash).hash[std::string(1, stream)];
  if (!mark.empty() && !StreamIdLess(mark, entry_id)) return false;
  std::optional<int64_t> ms = StreamIdMs(entry_id);
  if (!ms.has_value()) return Malformed("entry id");
  const int64_t entry_ms = *ms;
  mark = entry_id;
  bool skip = false;
  size_t i = 2;
  size_t k = 0, k2 = 0;
  while (i < args.size()) {
    const std::string& op = args[i];
    if (op == "G") {
      int64_t window = 0;
      if (!need(i, 4) || !key(i + 2, &k) || !absl::SimpleAtoi(args[i + 3], &window)) {
        return Malformed("G");
      }
      skip = !args[i + 1].empty() && !Guard(plan.keys[k], slot(k, Value::Kind::kZset),
                                            args[i + 1], entry_ms, entry_ms - window);
      if (slots[k]->zset.empty()) erase(k);  // Redis drops an empty key
      i += 4;
    } else if (op == "Z") {
      if (!need(i, 5) || !key(i + 1, &k)) return Malformed("Z");
      int64_t expire_at = 0;
      if (!absl::SimpleAtoi(args[i + 4], &expire_at)) return Malformed("Z expiry");
      // A board's expiry is set when it is created and depends only on its
      // period: one already past is deleted at once, whatever it held, so
      // the increment leaves nothing (an old replay skips the work).
      if (!skip && (expire_at == 0 || expire_at > now_unix_seconds_)) {
        double increment = std::strtod(args[i + 3].c_str(), nullptr);
        Value& board = slot(k, Value::Kind::kZset);
        double& score = board.zset[args[i + 2]];
        score += increment;
        // EXPIREAT ... NX, only when the member was new (see the script).
        bool erased = false;
        if (args[i + 4] != "0" && score == increment && board.expire_at == 0) {
          int64_t at = 0;
          if (!absl::SimpleAtoi(args[i + 4], &at)) return Malformed("Z expiry");
          // In the past, Redis deletes the key at once.
          if (at <= now_unix_seconds_) {
            erase(k);
            erased = true;
          } else {
            board.expire_at = at;
          }
        }
        // A retraction took back all a member had: it leaves the board.
        if (!erased && score == 0) {
          board.zset.erase(args[i + 2]);
          if (board.zset.empty()) erase(k);
        }
      }
      i += 5;
    } else if (op == "S") {
      if (!need(i, 3) || !key(i + 1, &k)) return Malformed("S");
      if (!skip) sadd(k, args[i + 2]);
      i += 3;
    } else if (op == "R") {
      if (!need(i, 3) || !key(i + 1, &k)) return Malformed("R");
      if (!skip && find(k, Value::Kind::kSet) != nullptr) {
        Value& set = *slots[k];  // find() keeps it in the slot
        set.set.erase(args[i + 2]);
        if (set.set.empty()) erase(k);  // Redis drops an empty key
      }
      i += 3;
    } else if (op == "H") {
      if (!need(i, 4) || !key(i + 1, &k)) return Malformed("H");
      if (!skip) slot(k, Value::Kind::kHash).hash[args[i + 2]] = args[i + 3];
      i += 4;
    } else if (op == "N") {
      if (!need(i, 4) || !key(i + 1, &k)) return Malformed("N");
      if (!skip) hsetnx(k, args[i + 2], args[i + 3]);
      i += 4;
    } else if (op == "P") {
      if (!need(i, 3) || !key(i + 1, &k)) return Malformed("P");
      if (!skip) {
        // SET replaces the value and drops any expiry.
        Value& value = slot(k, Value::Kind::kString);
        value = Value();
        value.str = args[i + 2];
        calendar_.reset();
      }
      i += 3;
    } else if (op == "D") {
      if (!need(i, 2) || !key(i + 1, &k)) return Malformed("D");
      if (!skip) {
        erase(k);
        calendar_.reset();
      }
      i += 2;
    } else if (op == "T") {
      if (!need(i, 7) || !key(i + 1, &k) || !key(i + 4, &k2)) return Malformed("T");
      if (!skip) {
        double score = 0;
        if (const Value* board = find(k2, Value::Kind::kZset)) {
          auto it = board->zset.find(args[i + 5]);
          if (it != board->zset.end()) score = it->second;
        }
        if (score >= std::strtod(args[i + 6].c_str(), nullptr)) {
          hsetnx(k, args[i + 2], args[i + 3]);
        }
      }
      i += 7;
    } else if (op == "V") {
      int count = 0;
      if (!need(i, 6) || !key(i + 1, &k) || !key(i + 4, &k2) ||
          !absl::SimpleAtoi(args[i + 5], &count) || count < 0 || count % 2 != 0 ||
          !need(i, 6 + count)) {
        return Malformed("V");
      }
      if (!skip) {
        const Value* set = find(k2, Value::Kind::kSet);
        if (HoldsEveryValue(set == nullptr ? nullptr : &set->set, count,
                            [&](int64_t j) -> const std::string& {
                              return args[i + 6 + static_cast<size_t>(j)];
                            })) {
          hsetnx(k, args[i + 2], args[i + 3]);
        }
      }
      i += 6 + count;
    } else {
      return Malformed(absl::StrCat("unknown operation ", op));
    }
  }
  return true;
}

// ---------------------------------------------------------------- compact plans

void ProjectionImage::ForgetSlots() {
  interned_.clear();
  compact_slots_.clear();
}

void ProjectionImage::ResetNames() {
  NamedBoards();  // the ids below are this planner's
  member_ids_.clear();
  member_ids_atoms_ = 0;
  local_names_.clear();
  atom_aliases_.clear();
  compact_keys_.clear();
  compact_atoms_.clear();
  compact_slots_.clear();
}

void ProjectionImage::AddNames(std::vector<std::string> keys, std::vector<std::string> atoms) {
  for (std::string& key : keys) compact_keys_.push_back(std::move(key));
  for (std::string& atom : atoms) {
    // A member of a board switched to ids before the planner named it: the
    // atom stands for the local id its name already has.
    if (!local_names_.empty()) {
      auto it = member_ids_.find(atom);
      if (it != member_ids_.end() && (it->second & kLocalId) != 0) {
        atom_aliases_.emplace(static_cast<uint32_t>(compact_atoms_.size()), it->second);
      }
    }
    compact_atoms_.push_back(std::move(atom));
  }
}

ProjectionImage::Value* ProjectionImage::CompactSlot(uint32_t id, Value::Kind kind) {
  KUDOS_CHECK(id < compact_keys_.size(), "a plan's ids are named (AddNames) before it is applied");
  if (id >= compact_slots_.size()) compact_slots_.resize(compact_keys_.size(), nullptr);
  Value*& value = compact_slots_[id];
  if (value == nullptr) value = &Slot(compact_keys_[id], kind);
  return value;
}

ProjectionImage::Value* ProjectionImage::CompactFind(uint32_t id, Value::Kind kind) {
  KUDOS_CHECK(id < compact_keys_.size(), "a plan's ids are named (AddNames) before it is applied");
  if (id >= compact_slots_.size()) compact_slots_.resize(compact_keys_.size(), nullptr);
  Value*& value = compact_slots_[id];
  if (value == nullptr) {
    auto it = keys_.find(compact_keys_[id]);
    if (it == keys_.end()) return nullptr;
    value = &it->second;
  }
  return value->kind == kind ? value : nullptr;
}

void ProjectionImage::CompactErase(uint32_t id) {
  keys_.erase(compact_keys_[id]);
  if (id < compact_slots_.size()) compact_slots_[id] = nullptr;
  if (!interned_.empty()) interned_.clear();  // may name the key
}

uint32_t ProjectionImage::MemberId(const std::string& name) {
  for (; member_ids_atoms_ < compact_atoms_.size(); ++member_ids_atoms_) {
    member_ids_.try_emplace(compact_atoms_[member_ids_atoms_],
                            static_cast<uint32_t>(member_ids_atoms_));
  }
  auto [it, added] = member_ids_.try_emplace(name, 0);
  if (added) {
    KUDOS_CHECK(local_names_.size() < kLocalId, "member ids stay below 2^32");
    it->second = kLocalId | static_cast<uint32_t>(local_names_.size());
    local_names_.push_back(name);
  }
  return it->second;
}

uint32_t ProjectionImage::CanonicalId(uint32_t atom) const {
  if (atom_aliases_.empty()) return atom;
  auto it = atom_aliases_.find(atom);
  return it == atom_aliases_.end() ? atom : it->second;
}

const std::string& ProjectionImage::MemberName(uint32_t id) const {
  return (id & kLocalId) != 0 ? local_names_[id & ~kLocalId] : compact_atoms_[id];
}

void ProjectionImage::ToIds(Value& board) {
  board.zset_ids.reserve(board.zset.size());
  for (const auto& [name, score] : board.zset) board.zset_ids.emplace(MemberId(name), score);
  board.zset.clear();
  board.by_ids = true;
  ++boards_by_ids_;
}

void ProjectionImage::NamedBoards() {
  if (boards_by_ids_ == 0) return;
  std::vector<Value*> boards;
  for (auto& [key, value] : keys_) {
    if (value.by_ids) boards.push_back(&value);
  }
  // Names back into each board: independent boards, so on two threads.
  auto name = [&](size_t from, size_t to) {
    for (size_t b = from; b < to; ++b) {
      Value& board = *boards[b];
      board.zset.reserve(board.zset_ids.size());
      for (const auto& [id, score] : board.zset_ids) board.zset.emplace(MemberName(id), score);
      board.zset_ids = {};
      board.by_ids = false;
    }
  };
  const size_t half = boards.size() / 2;
  std::thread other([&] { name(half, boards.size()); });
  name(0, half);
  other.join();
  boards_by_ids_ = 0;
}

absl::StatusOr<bool> ProjectionImage::ApplyCompact(const CompactPlan& plan,
                                                   const OrgCalendar& calendar) {
  absl::StatusOr<bool> applied = ApplyCompactOps(plan);
  if (!applied.ok()) return applied;
  for (const CompactPlan::StreakCheck& check : plan.streak_checks) {
    KUDOS_CHECK(check.days_key < compact_keys_.size() && check.badges_key < compact_keys_.size(),
                "a plan's ids are named (AddNames) before it is applied");
    const Value* set = CompactFind(check.days_key, Value::Kind::kSet);
    // A streak counts active days only: fewer days than the badge's never reach it.
    if (set == nullptr || set->set.size() < static_cast<size_t>(kGivingStreakBadgeDays)) continue;
    // Earned before: the HSETNX below would change nothing.
    if (const Value* badges = CompactFind(check.badges_key, Value::Kind::kHash);
        badges != nullptr && badges->hash.contains(kGivingStreakBadge)) {
      continue;
    }
    std::vector<absl::CivilDay> days;
    for (const std::string& text : set->set) {
      absl::StatusOr<absl::CivilDay> day = ParseDay(text);
      if (day.ok()) days.push_back(*day);
    }
    if (ReachesGivingStreakBadge(days, calendar, check.day)) {
      CompactSlot(check.badges_key, Value::Kind::kHash)
          ->hash.try_emplace(kGivingStreakBadge, absl::StrCat(absl::ToUnixMillis(check.time)));
    }
  }
  return applied;
}

absl::StatusOr<bool> ProjectionImage::ApplyCompactOps(const CompactPlan& plan) {
  // Exactly once per entry: at or below its stream's mark it was applied.
  std::string& mark = CompactSlot(0, Value::Kind::kHash)->hash[std::string(1, plan.stream)];
  if (!mark.empty() && !StreamIdLess(mark, plan.entry_id)) return false;
  std::optional<int64_t> ms = StreamIdMs(plan.entry_id);
  if (!ms.has_value() || plan.entry_id.empty()) return Malformed("entry id");
  const int64_t entry_ms = *ms;
  mark = plan.entry_id;
  const std::vector<std::string>& atoms = compact_atoms_;
  bool skip = false;
  for (size_t i = 0; i < plan.ops.size(); ++i) {
    if (!plan.error.empty() && i == plan.error_at) return Malformed(plan.error);
    const CompactOp& op = plan.ops[i];
    KUDOS_CHECK(op.key < compact_keys_.size() && op.key2 < compact_keys_.size() &&
                    op.atom < atoms.size() && op.atom2 < std::max(atoms.size(), plan.lists.size() + 1) &&
                    (op.text < plan.texts.size() || plan.texts.empty()),
                "a plan's ids are named (AddNames) before it is applied");
    switch (op.code) {
      case CompactOp::kGuard: {
        Value* seen = CompactSlot(op.key, Value::Kind::kZset);
        const std::string& id = plan.texts[op.text];
        skip = !id.empty() && !Guard(compact_keys_[op.key], *seen, id, entry_ms, entry_ms - op.number);
        if (seen->zset.empty()) CompactErase(op.key);  // Redis drops an empty key
        break;
      }
      case CompactOp::kZincr: {
        // As Apply: a board whose expiry is past leaves nothing.
        if (skip || (op.expire_at != 0 && op.expire_at <= now_unix_seconds_)) break;
        const double increment = static_cast<double>(op.number);
        Value* board = CompactSlot(op.key, Value::Kind::kZset);
        if (!board->by_ids) ToIds(*board);
        auto it = board->zset_ids.try_emplace(CanonicalId(op.atom), 0.0).first;
        double& score = it->second;
        score += increment;
        // EXPIREAT ... NX, only when the member was new (see the script).
        if (op.expire_at != 0 && score == increment && board->expire_at == 0) {
          board->expire_at = op.expire_at;  // in the future: checked above
        }
        // A retraction took back all a member had: it leaves the board.
        if (score == 0) {
          board->zset_ids.erase(it);
          if (board->zset_ids.empty()) CompactErase(op.key);
        }
        break;
      }
      case CompactOp::kSadd:
        if (!skip) CompactSlot(op.key, Value::Kind::kSet)->set.insert(atoms[op.atom]);
        break;
      case CompactOp::kSrem:
        if (skip) break;
        if (Value* set = CompactFind(op.key, Value::Kind::kSet)) {
          set->set.erase(atoms[op.atom]);
          if (set->set.empty()) CompactErase(op.key);  // Redis drops an empty key
        }
        break;
      case CompactOp::kHset:
        if (!skip) CompactSlot(op.key, Value::Kind::kHash)->hash[atoms[op.atom]] = plan.texts[op.text];
        break;
      case CompactOp::kHsetnx:
        if (!skip) {
          CompactSlot(op.key, Value::Kind::kHash)->hash.try_emplace(atoms[op.atom], plan.texts[op.text]);
        }
        break;
      case CompactOp::kSet:
        if (!skip) {
          // SET replaces the value and drops any expiry.
          Value* value = CompactSlot(op.key, Value::Kind::kString);
          *value = Value();
          value->str = plan.texts[op.text];
          calendar_.reset();
        }
        break;
      case CompactOp::kDel:
        if (!skip) {
          CompactErase(op.key);
          calendar_.reset();
        }
        break;
      case CompactOp::kThreshold:
        if (!skip) {
          double score = 0;
          if (const Value* board = CompactFind(op.key2, Value::Kind::kZset)) {
            if (board->by_ids) {
              auto it = board->zset_ids.find(CanonicalId(op.atom2));
              if (it != board->zset_ids.end()) score = it->second;
            } else {
              auto it = board->zset.find(atoms[op.atom2]);
              if (it != board->zset.end()) score = it->second;
            }
          }
          if (score >= static_cast<double>(op.number)) {
            CompactSlot(op.key, Value::Kind::kHash)->hash.try_emplace(atoms[op.atom], plan.texts[op.text]);
          }
        }
        break;
      case CompactOp::kAllValues:
        if (!skip) {
          KUDOS_CHECK(op.number >= 0 && op.atom2 + static_cast<size_t>(op.number) <= plan.lists.size(),
                      "a V op's values are in its plan's lists");
          const Value* set = CompactFind(op.key2, Value::Kind::kSet);
          if (HoldsEveryValue(set == nullptr ? nullptr : &set->set, op.number,
                              [&](int64_t j) -> const std::string& {
                                return atoms[plan.lists[op.atom2 + j]];
                              })) {
            CompactSlot(op.key, Value::Kind::kHash)->hash.try_emplace(atoms[op.atom], plan.texts[op.text]);
          }
        }
        break;
    }
  }
  return true;
}

bool ProjectionImage::Guard(const std::string& key, Value& seen, const std::string& logical_id,
                            int64_t entry_ms, int64_t oldest_ms) {
  // Ids applied before the window behind this entry leave (ZREMRANGEBYSCORE),
  // in either score form (GuardSeconds). A stream's entry times only grow:
  // the oldest are at the log's front.
  std::deque<std::pair<int64_t, std::string>>& log = guard_log_[key];
  if (log.empty() && !seen.zset.empty()) {  // an image parsed from a snapshot
    for (const auto& [member, score] : seen.zset) log.emplace_back(GuardSeconds(score), member);
    std::sort(log.begin(), log.end());
  }
  const int64_t cut_s = GuardCutSeconds(oldest_ms);
  while (!log.empty() && log.front().first < cut_s) {
    auto it = seen.zset.find(log.front().second);
    if (it != seen.zset.end() && GuardSeconds(it->second) == log.front().first) seen.zset.erase(it);
    log.pop_front();
  }
  // As apply_event.lua: the packed member, or the text a snapshot of a
  // version before the packing holds (still within the window: trimmed above).
  std::string member = GuardMember(logical_id);
  if (member != logical_id && seen.zset.find(logical_id) != seen.zset.end()) return false;
  const int64_t score = GuardScore(entry_ms);
  auto [it, added] = seen.zset.try_emplace(member, static_cast<double>(score));
  if (added) log.emplace_back(GuardSeconds(static_cast<double>(score)), std::move(member));
  return added;
}

absl::StatusOr<OrgCalendar> ProjectionImage::Calendar(const std::string& org) {
  std::string key = SettingsKey(org);
  if (calendar_.has_value() && calendar_->first == key) return calendar_->second;
  const Value* stored = Find(key, Value::Kind::kString);
  absl::StatusOr<kudos::v1::OrgSettings> settings =
      ParseStoredSettings(org, stored == nullptr ? nullptr : &stored->str);
  if (!settings.ok()) return settings.status();
  calendar_.emplace(key, CalendarFromSettings(*settings));
  return calendar_->second;
}

std::map<std::string, kudos::v1::Person> ProjectionImage::People(
    const std::string& org, const std::vector<std::string>& ids) {
  std::map<std::string, kudos::v1::Person> out;
  const Value* people = Find(PeopleKey(org), Value::Kind::kHash);
  if (people == nullptr) return out;
  for (const std::string& id : ids) {
    auto it = people->hash.find(id);
    kudos::v1::Person person;
    if (it != people->hash.end() && person.ParseFromString(it->second)) out[id] = std::move(person);
  }
  return out;
}

void ProjectionImage::CheckGivingStreak(const std::string& org, const OrgCalendar& calendar,
                                        const ApplyPlan::StreakCheck& check) {
  std::vector<absl::CivilDay> days;
  const Value* set = Find(DaysKey(org, "giving", check.person), Value::Kind::kSet);
  // A streak counts active days only: fewer days than the badge's never reach it.
  if (set == nullptr || set->set.size() < static_cast<size_t>(kGivingStreakBadgeDays)) return;
  for (const std::string& text : set->set) {
    absl::StatusOr<absl::CivilDay> day = ParseDay(text);
    if (day.ok()) days.push_back(*day);
  }
  if (ReachesGivingStreakBadge(days, calendar, check.day)) {
    HSetNx(BadgesKey(org, check.person), kGivingStreakBadge,
           absl::StrCat(absl::ToUnixMillis(check.time)));
  }
}

absl::Status ProjectionImage::Write(common::redis::Pool& pool, int batch,
                                    const std::function<absl::Status()>& between_batches) {
  return WriteAs(
      pool, batch, between_batches, [](const std::string& key) { return key; },
      [](const std::string& name, const Value& value) -> common::redis::Command {
        if (value.expire_at == 0) return {};
        return {"EXPIREAT", name, absl::StrCat(value.expire_at)};
      },
      /*expire_first=*/false);
}

absl::StatusOr<std::vector<StagedKey>> ProjectionImage::Stage(
    common::redis::Pool& pool, const std::string& prefix, std::chrono::milliseconds ttl, int batch,
    const std::function<absl::Status()>& between_batches, int connections) {
  NamedBoards();
  KUDOS_CHECK(ttl.count() > 0, "staged keys expire (a crashed rebuild leaves no garbage)");
  KUDOS_CHECK(batch >= 1 && connections >= 1, "staging sends bounded pipelines on a few connections");
  std::vector<StagedKey> staged;
  std::vector<const Value*> values;
  std::vector<size_t> weights;  // commands each key takes, roughly
  staged.reserve(keys_.size());
  values.reserve(keys_.size());
  size_t total_weight = 0;
  for (const auto& [key, value] : keys_) {
    staged.push_back({absl::StrCat(prefix, staged.size()), key, value.expire_at});
    values.push_back(&value);
    size_t members = value.hash.size() + value.set.size() + value.zset.size();
    weights.push_back(2 + members / 64);
    total_weight += weights.back();
  }
  // Contiguous shards of about equal weight, one connection each: the
  // commands of one are built while Redis runs another's.
  std::vector<std::pair<size_t, size_t>> shards;
  size_t begin = 0, weight = 0;
  for (size_t i = 0; i < staged.size(); ++i) {
    weight += weights[i];
    if (weight * static_cast<size_t>(connections) >= total_weight * (shards.size() + 1) ||
        i + 1 == staged.size()) {
      shards.emplace_back(begin, i + 1);
      begin = i + 1;
    }
  }
  // The lock refresh, at most once a second whichever shard asks.
  std::mutex refresh_mu;
  auto last_refresh = std::chrono::steady_clock::now();
  auto refresh = [&]() -> absl::Status {
    if (!between_batches) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(refresh_mu);
    auto now = std::chrono::steady_clock::now();
    if (now - last_refresh < std::chrono::seconds(1)) return absl::OkStatus();
    last_refresh = now;
    return between_batches();
  };
  const std::string pexpire_ms = absl::StrCat(ttl.count());
  // One RESTORE per key when Redis takes it (a probe first, in the org's
  // slot): a key and its ttl in one command, its members loaded without a
  // command argument each (about half the Redis CPU of ZADD + PEXPIRE).
  bool by_restore = stage_by_restore_;
  if (by_restore) {
    Value probe;
    probe.kind = Value::Kind::kSet;
    probe.set.insert("probe");
    const std::string probe_key = prefix + "restore-probe";
    absl::StatusOr<std::vector<absl::StatusOr<common::redis::Reply>>> replies = pool.Pipeline(
        {{"RESTORE", probe_key, pexpire_ms, DumpPayload(probe), "REPLACE"}, {"UNLINK", probe_key}});
    if (!replies.ok()) return replies.status();
    if (!(*replies)[0].ok()) {
      by_restore = false;
      common::log::Info(absl::StrCat("leaderboard: staging without RESTORE (",
                                     (*replies)[0].status().message(), ")"));
    }
  }
  staged_by_restore_ = by_restore;
  // Bytes per pipeline too: a RESTORE carries a whole key.
  constexpr size_t kMaxPipelineBytes = 4 << 20;
  auto stage_shard = [&](size_t from, size_t to) -> absl::Status {
    std::vector<common::redis::Command> pending;
    size_t pending_bytes = 0;
    auto flush = [&]() -> absl::Status {
      if (pending.empty()) return absl::OkStatus();
      absl::StatusOr<std::vector<absl::StatusOr<common::redis::Reply>>> replies =
          pool.Pipeline(pending);
      pending.clear();
      pending_bytes = 0;
      if (!replies.ok()) return replies.status();
      for (const absl::StatusOr<common::redis::Reply>& reply : *replies) {
        if (!reply.ok()) return reply.status();
      }
      return refresh();
    };
    for (size_t i = from; i < to; ++i) {
      if (by_restore) {
        std::string payload = DumpPayload(*values[i]);
        pending_bytes += payload.size();
        pending.push_back({"RESTORE", staged[i].staging, pexpire_ms, std::move(payload)});
        if (pending.size() >= static_cast<size_t>(batch) || pending_bytes >= kMaxPipelineBytes) {
          if (absl::Status s = flush(); !s.ok()) return s;
        }
        continue;
      }
      std::vector<common::redis::Command> commands = Commands(staged[i].staging, *values[i]);
      for (size_t c = 0; c < commands.size(); ++c) {
        pending.push_back(std::move(commands[c]));
        // The expiry right after the key's first command, in the same pipeline.
        if (c == 0) pending.push_back({"PEXPIRE", staged[i].staging, pexpire_ms});
        if (pending.size() >= static_cast<size_t>(batch)) {
          if (absl::Status s = flush(); !s.ok()) return s;
        }
      }
    }
    return flush();
  };
  std::vector<absl::Status> results(shards.size());
  std::vector<std::thread> threads;
  for (size_t s = 1; s < shards.size(); ++s) {
    threads.emplace_back([&, s] { results[s] = stage_shard(shards[s].first, shards[s].second); });
  }
  if (!shards.empty()) results[0] = stage_shard(shards[0].first, shards[0].second);
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& status : results) {
    if (!status.ok()) return status;
  }
  return staged;
}

std::vector<common::redis::Command> ProjectionImage::Commands(const std::string& name,
                                                             const Value& value) {
  constexpr size_t kMembersPerCommand = 500;
  std::vector<common::redis::Command> out;
  // `verb name item...` commands of at most kMembersPerCommand items each.
  auto chunked = [&](const char* verb, const auto& items, auto append) {
    common::redis::Command command = {verb, name};
    size_t count = 0;
    for (const auto& item : items) {
      append(command, item);
      if (++count == kMembersPerCommand) {
        out.push_back(std::move(command));
        command = {verb, name};
        count = 0;
      }
    }
    if (count > 0) out.push_back(std::move(command));
  };
  switch (value.kind) {
    case Value::Kind::kString:
      out.push_back({"SET", name, value.str});
      break;
    case Value::Kind::kHash:
      chunked("HSET", value.hash, [](common::redis::Command& c, const auto& f) {
        c.push_back(f.first);
        c.push_back(f.second);
      });
      break;
    case Value::Kind::kSet:
      chunked("SADD", value.set, [](common::redis::Command& c, const auto& m) { c.push_back(m); });
      break;
    case Value::Kind::kZset:
      chunked("ZADD", value.zset, [](common::redis::Command& c, const auto& m) {
        c.push_back(ScoreText(m.second));
        c.push_back(m.first);
      });
      break;
  }
  return out;
}

absl::Status ProjectionImage::WriteAs(
    common::redis::Pool& pool, int batch, const std::function<absl::Status()>& between_batches,
    const std::function<std::string(const std::string&)>& name_of,
    const std::function<common::redis::Command(const std::string&, const Value&)>& expiry,
    bool expire_first) {
  NamedBoards();
  std::vector<common::redis::Command> pending;
  auto flush = [&]() -> absl::Status {
    if (pending.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<absl::StatusOr<common::redis::Reply>>> replies =
        pool.Pipeline(pending);
    pending.clear();
    if (!replies.ok()) return replies.status();
    for (const absl::StatusOr<common::redis::Reply>& reply : *replies) {
      if (!reply.ok()) return reply.status();
    }
    return between_batches ? between_batches() : absl::OkStatus();
  };
  // A flush only after a command that may end a pipeline: a staged key and
  // its expiry always travel together.
  auto add = [&](common::redis::Command command, bool may_flush) -> absl::Status {
    pending.push_back(std::move(command));
    if (may_flush && pending.size() >= static_cast<size_t>(batch)) return flush();
    return absl::OkStatus();
  };
  for (const auto& [key, value] : keys_) {
    std::string name = name_of(key);
    std::vector<common::redis::Command> commands = Commands(name, value);
    common::redis::Command expire = expiry(name, value);
    for (size_t i = 0; i < commands.size(); ++i) {
      bool expire_now = !expire.empty() && (expire_first ? i == 0 : i + 1 == commands.size());
      if (absl::Status s = add(std::move(commands[i]), !expire_now); !s.ok()) return s;
      if (expire_now) {
        if (absl::Status s = add(std::move(expire), true); !s.ok()) return s;
      }
    }
  }
  return flush();
}

// ---------------------------------------------------------------- snapshot

namespace {

// LBS2 since issue 15's round of 2026-12-01 (LBS1 before; Parse reads
// both): varint lengths, keys and members sorted, a zset's members then its
// scores as varint differences. Sorted person ids and small integer totals
// compress far better: the bench's 400-person snapshot 218 -> ~116 KB.
constexpr char kSnapshotMagicV1[] = "LBS1";
constexpr char kSnapshotMagic[] = "LBS2";
// zstd's level for snapshots. They are written by the background compactor
// and kept in Redis for good, so bytes count more than its CPU: on the
// bench's 400-person snapshot (1.38 MB raw, LBS1), level 3 gave 287 KB in
// 10 ms, 12 gave 218 KB in 130 ms (Redis's allocation 320 -> 224 KiB, as
// for 19 at 1.6 s). Reading (decompression) costs the same at every level.
constexpr int kSnapshotZstdLevel = 12;
// A zset's scores in LBS2: every one an integer of magnitude below 2^53
// (board totals, guard and day times), as zigzag varints of the difference
// with the one before; else each as its IEEE-754 bits.
constexpr char kScoresIntegerDeltas = 0;
constexpr char kScoresDoubles = 1;

void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void PutString(std::string& out, absl::string_view value) {
  PutVarint(out, value.size());
  out.append(value.data(), value.size());
}
uint64_t ZigZag(int64_t value) {
  return (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
}
int64_t UnZigZag(uint64_t value) {
  return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
}
// A container's entries sorted by key (the maps are hash maps).
template <typename Map>
std::vector<const typename Map::value_type*> SortedEntries(const Map& map) {
  std::vector<const typename Map::value_type*> sorted;
  sorted.reserve(map.size());
  for (const auto& entry : map) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  return sorted;
}

void PutZset(std::string& out, const absl::flat_hash_map<std::string, double>& zset) {
  const auto sorted = SortedEntries(zset);
  PutVarint(out, sorted.size());
  bool integral = true;
  for (const auto* entry : sorted) {
    PutString(out, entry->first);
    integral = integral && IsIntegral(entry->second);
  }
  out.push_back(integral ? kScoresIntegerDeltas : kScoresDoubles);
  int64_t previous = 0;
  for (const auto* entry : sorted) {
    if (integral) {
      const auto score = static_cast<int64_t>(entry->second);
      PutVarint(out, ZigZag(score - previous));  // |difference| < 2^54: no overflow
      previous = score;
    } else {
      DumpLittleEndian(out, BitsOf(entry->second), 8);
    }
  }
}

// Reads LBS1 (every number a u64, little-endian) or LBS2 (varints).
class Reader {
 public:
  Reader(const std::string& bytes, size_t at, bool varints)
      : bytes_(bytes), at_(at), varints_(varints) {}
  bool Number(uint64_t* value) { return varints_ ? Varint(value) : Fixed64(value); }
  bool Fixed64(uint64_t* value) {
    if (at_ + 8 > bytes_.size()) return false;
    *value = 0;
    for (int i = 0; i < 8; ++i) {
      *value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes_[at_ + i])) << (8 * i);
    }
    at_ += 8;
    return true;
  }
  bool Varint(uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64 && at_ < bytes_.size(); shift += 7) {
      const auto byte = static_cast<unsigned char>(bytes_[at_++]);
      *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }
  bool Byte(char* value) {
    if (at_ >= bytes_.size()) return false;
    *value = bytes_[at_++];
    return true;
  }
  bool String(std::string* value) {
    uint64_t size = 0;
    if (!Number(&size) || size > bytes_.size() - at_) return false;
    value->assign(bytes_, at_, size);
    at_ += size;
    return true;
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const std::string& bytes_;
  size_t at_ = 0;
  const bool varints_;
};

absl::Status NotASnapshot(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("leaderboard snapshot: ", why));
}

double FromBits(uint64_t bits) {
  double score = 0;
  std::memcpy(&score, &bits, sizeof score);
  return score;
}

// A hash, set or zset's body in LBS1: `count` entries, each whole.
// (`Value` is ProjectionImage::Value.)
template <typename Value>
bool ReadEntriesV1(Reader& in, uint64_t count, Value& value) {
  using Kind = typename Value::Kind;
  for (uint64_t i = 0; i < count; ++i) {
    std::string first, second;
    uint64_t bits = 0;
    if (!in.String(&first)) return false;
    bool added = false;
    if (value.kind == Kind::kHash) {
      added = in.String(&second) && value.hash.emplace(first, second).second;
    } else if (value.kind == Kind::kSet) {
      added = value.set.insert(first).second;
    } else {
      added = in.Fixed64(&bits) && value.zset.emplace(first, FromBits(bits)).second;
    }
    if (!added) return false;
  }
  return true;
}

// The same in LBS2: a hash's fields then its values, a set's members, a
// zset's members then its scores (PutZset).
template <typename Value>
bool ReadEntriesV2(Reader& in, uint64_t count, Value& value) {
  using Kind = typename Value::Kind;
  // Grown as entries are read, not sized by `count`: a forged count runs out
  // of bytes (DATA_LOSS) before it can ask for more memory than they hold.
  std::vector<std::string> firsts;
  firsts.reserve(std::min<uint64_t>(count, 4096));
  for (uint64_t i = 0; i < count; ++i) {
    if (!in.String(&firsts.emplace_back())) return false;
  }
  if (value.kind == Kind::kSet) {
    for (std::string& member : firsts) {
      if (!value.set.insert(std::move(member)).second) return false;
    }
    return true;
  }
  char form = 0;
  if (value.kind == Kind::kZset && (!in.Byte(&form) || (form != kScoresIntegerDeltas && form != kScoresDoubles))) {
    return false;
  }
  int64_t previous = 0;
  for (std::string& first : firsts) {
    bool added = false;
    if (value.kind == Kind::kHash) {
      std::string second;
      added = in.String(&second) && value.hash.emplace(std::move(first), std::move(second)).second;
    } else {
      uint64_t number = 0;
      const bool read = form == kScoresDoubles ? in.Fixed64(&number) : in.Varint(&number);
      double score = FromBits(number);
      if (read && form == kScoresIntegerDeltas) {
        previous = static_cast<int64_t>(static_cast<uint64_t>(previous) + static_cast<uint64_t>(UnZigZag(number)));
        score = static_cast<double>(previous);
      }
      added = read && value.zset.emplace(std::move(first), score).second;
    }
    if (!added) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> ProjectionImage::Serialize() const {
  KUDOS_CHECK(boards_by_ids_ == 0, "a replay gives its boards their names back (NamedBoards)");
  std::string raw = kSnapshotMagic;
  PutVarint(raw, keys_.size());
  for (const auto* key : SortedEntries(keys_)) {
    const Value& value = key->second;
    PutString(raw, key->first);
    PutVarint(raw, static_cast<uint64_t>(value.kind));
    PutVarint(raw, static_cast<uint64_t>(value.expire_at));
    switch (value.kind) {
      case Value::Kind::kString:
        PutString(raw, value.str);
        break;
      case Value::Kind::kHash: {
        const auto sorted = SortedEntries(value.hash);
        PutVarint(raw, sorted.size());
        for (const auto* field : sorted) PutString(raw, field->first);
        for (const auto* field : sorted) PutString(raw, field->second);
        break;
      }
      case Value::Kind::kSet: {
        std::vector<absl::string_view> members(value.set.begin(), value.set.end());
        std::sort(members.begin(), members.end());
        PutVarint(raw, members.size());
        for (absl::string_view member : members) PutString(raw, member);
        break;
      }
      case Value::Kind::kZset:
        PutZset(raw, value.zset);
        break;
    }
  }
  std::string compressed(ZSTD_compressBound(raw.size()), '\0');
  size_t size = ZSTD_compress(compressed.data(), compressed.size(), raw.data(), raw.size(),
                              kSnapshotZstdLevel);
  if (ZSTD_isError(size)) {
    return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(size)));
  }
  compressed.resize(size);
  return compressed;
}

absl::StatusOr<ProjectionImage> ProjectionImage::Parse(const std::string& compressed,
                                                       absl::Time now) {
  unsigned long long size = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  // Bounded: a snapshot is one org's projection (rejects a forged frame size).
  constexpr unsigned long long kMaxBytes = 4ull << 30;
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxBytes) {
    return NotASnapshot("not a zstd frame with its size");
  }
  std::string raw(size, '\0');
  size_t got = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(got) || got != size) return NotASnapshot("does not decompress");
  const bool v2 = raw.compare(0, 4, kSnapshotMagic) == 0;
  if (!v2 && raw.compare(0, 4, kSnapshotMagicV1) != 0) return NotASnapshot("no magic");
  Reader in(raw, 4, /*varints=*/v2);
  ProjectionImage image(now);
  uint64_t keys = 0;
  if (!in.Number(&keys)) return NotASnapshot("truncated");
  for (uint64_t k = 0; k < keys; ++k) {
    std::string name;
    uint64_t kind = 0, expire_at = 0, count = 0;
    if (!in.String(&name) || !in.Number(&kind) || !in.Number(&expire_at) || kind > 3) {
      return NotASnapshot("truncated key");
    }
    Value& value = image.Slot(name, static_cast<Value::Kind>(kind));
    value.expire_at = static_cast<int64_t>(expire_at);
    bool ok = true;
    if (value.kind == Value::Kind::kString) {
      ok = in.String(&value.str);
    } else if (!in.Number(&count)) {
      ok = false;
    } else {
      ok = v2 ? ReadEntriesV2(in, count, value) : ReadEntriesV1(in, count, value);
    }
    if (!ok) return NotASnapshot(absl::StrCat("malformed key ", name));
  }
  if (!in.done()) return NotASnapshot("trailing bytes");
  // Boards whose retention ended since: Redis has deleted them.
  for (auto it = image.keys_.begin(); it != image.keys_.end();) {
    if (it->second.expire_at != 0 && it->second.expire_at <= image.now_unix_seconds_) {
      image.keys_.erase(it++);
    } else {
      ++it;
    }
  }
  return image;
}

std::string ProjectionImage::Mark(const std::string& org, char stream) const {
  const Value* marks = Find(MarksKey(org), Value::Kind::kHash);
  if (marks == nullptr) return "";
  auto it = marks->hash.find(std::string(1, stream));
  return it == marks->hash.end() ? "" : it->second;
}

std::map<std::string, kudos::v1::Person> ProjectionImage::AllPeople(const std::string& org) const {
  std::map<std::string, kudos::v1::Person> out;
  const Value* people = Find(PeopleKey(org), Value::Kind::kHash);
  if (people == nullptr) return out;
  for (const auto& [id, bytes] : people->hash) {
    kudos::v1::Person person;
    if (person.ParseFromString(bytes)) out[id] = std::move(person);
  }
  return out;
}

// ---------------------------------------------------------------- the rebuild's replay

namespace {

// What the planning thread hands the applying one: plans, the calendar each
// was planned with, and the names of the ids first given in them.
struct ReplayChunk {
  std::vector<CompactPlan> plans;
  std::vector<std::shared_ptr<const OrgCalendar>> calendars;
  std::vector<std::string> new_keys, new_atoms;
};

// Reads both streams merged in stream-id order and plans every entry,
// keeping its own copy of the directory the plans need (the settings and
// people the entries before it left: only these events write them).
class ReplayPlanner {
 public:
  ReplayPlanner(Store& store, std::string org, std::function<absl::Status()> refresh)
      : store_(store), org_(std::move(org)), refresh_(std::move(refresh)), planner_(org_),
        calendar_(std::make_shared<OrgCalendar>(CalendarFromSettings(DefaultSettings()))) {}

  // Continues from the image: its directory, after its marks.
  absl::Status Seed(ProjectionImage& image) {
    if (store_.seasons() != nullptr) {
      // Today's definitions plan the whole history, as they plan live.
      absl::StatusOr<std::shared_ptr<const SeasonSet>> seasons = store_.seasons()->Load(org_);
      if (!seasons.ok()) return seasons.status();
      seasons_ = *std::move(seasons);
    }
    absl::StatusOr<OrgCalendar> calendar = image.Calendar(org_);
    if (!calendar.ok()) return calendar.status();
    calendar->seasons = seasons_;
    calendar_ = std::make_shared<OrgCalendar>(*std::move(calendar));
    people_ = image.AllPeople(org_);
    for (Cursor& c : cursors_) {
      std::string mark = image.Mark(org_, c.stream);
      if (!mark.empty()) c.after = mark;
    }
    return absl::OkStatus();
  }
  void StopAfter(const std::string& kudos, const std::string& ledger) {
    cursors_[0].until = kudos;
    cursors_[1].until = ledger;
  }

  // Plans the next chunk (up to kChunk entries); no plans at the end.
  absl::StatusOr<ReplayChunk> Next() {
    ReplayChunk out;
    out.plans.reserve(kChunk);
    while (out.plans.size() < kChunk) {
      for (Cursor& c : cursors_) {
        if (absl::Status s = Fill(c); !s.ok()) return s;
      }
      Cursor* next = nullptr;
      for (Cursor& c : cursors_) {
        if (c.done) continue;
        if (next == nullptr || StreamIdLess(c.buffer[c.at].id, next->buffer[next->at].id)) {
          next = &c;
        }
      }
      if (next == nullptr) break;
      absl::Status planned = Plan(*next, next->buffer[next->at++], out);
      if (!planned.ok()) return planned;
    }
    const std::vector<std::string>& keys = planner_.keys();
    const std::vector<std::string>& atoms = planner_.atoms();
    out.new_keys.assign(keys.begin() + static_cast<std::ptrdiff_t>(keys_sent_), keys.end());
    out.new_atoms.assign(atoms.begin() + static_cast<std::ptrdiff_t>(atoms_sent_), atoms.end());
    keys_sent_ = keys.size();
    atoms_sent_ = atoms.size();
    return out;
  }

 private:
  static constexpr size_t kChunk = 512;
  struct Cursor {
    Cursor(char s, std::string stream) : stream(s), key(std::move(stream)) {}
    char stream;  // 'k' | 'l'
    std::string key;
    std::string after = "-";
    std::vector<StreamEntry> buffer;
    size_t at = 0;
    bool done = false;
    std::string until;  // "" = the stream's end
  };

  absl::Status Fill(Cursor& c) {
    if (c.done || c.at < c.buffer.size()) return absl::OkStatus();
    if (!c.until.empty() && !StreamIdLess(c.after, c.until) && c.after != "-") {
      c.done = true;
      return absl::OkStatus();
    }
    absl::StatusOr<std::vector<StreamEntry>> batch = store_.Range(c.key, c.after, 2000);
    if (!batch.ok()) return batch.status();
    c.buffer = *std::move(batch);
    c.at = 0;
    if (!c.until.empty()) {  // the entries after `until` are not covered
      auto beyond = std::find_if(c.buffer.begin(), c.buffer.end(), [&](const StreamEntry& e) {
        return StreamIdLess(c.until, e.id);
      });
      c.buffer.erase(beyond, c.buffer.end());
    }
    if (c.buffer.empty()) {
      c.done = true;
    } else {
      c.after = c.buffer.back().id;
    }
    return refresh_();
  }

  absl::Status Plan(const Cursor& c, const StreamEntry& entry, ReplayChunk& out) {
    out.calendars.push_back(calendar_);
    if (c.stream == 'l') {
      ledger_event_.Clear();
      if (!ledger_event_.ParseFromString(entry.event)) {
        Unparsable(entry, c.key);
        ledger_event_.Clear();  // applied as nothing: the mark moves past it, as live
      }
      out.plans.push_back(planner_.PlanLedger(entry.id, ledger_event_, *calendar_));
      return absl::OkStatus();
    }
    kudos::v1::KudosEvent& event = kudos_event_;
    event.Clear();
    if (!event.ParseFromString(entry.event)) {
      Unparsable(entry, c.key);
      event.Clear();
    }
    out.plans.push_back(planner_.PlanKudos(entry.id, event, *calendar_, [&](const std::string& id) {
      auto it = people_.find(id);
      return it == people_.end() ? std::string() : it->second.time_zone();
    }));
    // The directory the next entries are planned with, as the image holds it.
    if (event.has_org_settings_changed()) {
      std::string stored = event.org_settings_changed().settings().SerializeAsString();
      absl::StatusOr<kudos::v1::OrgSettings> settings = ParseStoredSettings(org_, &stored);
      if (!settings.ok()) return settings.status();
      OrgCalendar calendar = CalendarFromSettings(*settings);
      calendar.seasons = seasons_;
      calendar_ = std::make_shared<OrgCalendar>(std::move(calendar));
    } else if (event.has_person_changed() &&
               ValidId(event.person_changed().person().person_id())) {
      kudos::v1::Person& person = people_[event.person_changed().person().person_id()];
      person.ParseFromString(event.person_changed().person().SerializeAsString());
    }
    return absl::OkStatus();
  }

  void Unparsable(const StreamEntry& entry, const std::string& stream) {
    common::log::Warning(
        absl::StrCat("leaderboard: skipping unparsable entry ", entry.id, " of ", stream));
  }

  Store& store_;
  std::string org_;
  std::function<absl::Status()> refresh_;
  RebuildPlanner planner_;
  size_t keys_sent_ = 0, atoms_sent_ = 0;
  Cursor cursors_[2] = {Cursor('k', KudosStream(org_)), Cursor('l', LedgerStream(org_))};
  std::shared_ptr<const OrgCalendar> calendar_;
  std::shared_ptr<const SeasonSet> seasons_;
  std::map<std::string, kudos::v1::Person> people_;
  // Reused across entries (their fields' memory too).
  kudos::v1::KudosEvent kudos_event_;
  ledger::v1::LedgerEvent ledger_event_;
};

// Chunks from the planning thread to the applying one, at most kDepth waiting.
class ChunkQueue {
 public:
  static constexpr size_t kDepth = 8;
  // False when the applier gave up (stop the producer).
  bool Push(absl::StatusOr<ReplayChunk> chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [&] { return chunks_.size() < kDepth || closed_; });
    if (closed_) return false;
    chunks_.push_back(std::move(chunk));
    ready_.notify_one();
    return true;
  }
  absl::StatusOr<ReplayChunk> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait(lock, [&] { return !chunks_.empty(); });
    absl::StatusOr<ReplayChunk> chunk = std::move(chunks_.front());
    chunks_.pop_front();
    space_.notify_one();
    return chunk;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    space_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<absl::StatusOr<ReplayChunk>> chunks_;
  bool closed_ = false;
};

}  // namespace

absl::Status ReplayStreams(Store& store, ProjectionImage& image, const std::string& org,
                           const std::function<absl::Status()>& refresh,
                           const std::pair<std::string, std::string>& until,
                           ReplayCounts& counts) {
  ReplayPlanner planner(store, org, refresh);
  if (absl::Status s = planner.Seed(image); !s.ok()) return s;
  image.ResetNames();  // this planner's ids
  planner.StopAfter(until.first, until.second);
  ChunkQueue queue;
  // An error or the end is a chunk too (an error, or one without plans).
  std::thread planning([&] {
    while (true) {
      absl::StatusOr<ReplayChunk> chunk = planner.Next();
      bool last = !chunk.ok() || chunk->plans.empty();
      if (!queue.Push(std::move(chunk)) || last) return;
    }
  });
  absl::Status applied = absl::OkStatus();
  while (applied.ok()) {
    absl::StatusOr<ReplayChunk> chunk = queue.Pop();
    if (!chunk.ok()) {
      applied = chunk.status();
      break;
    }
    if (chunk->plans.empty()) break;
    KUDOS_CHECK(chunk->calendars.size() == chunk->plans.size(), "a calendar per plan");
    image.AddNames(std::move(chunk->new_keys), std::move(chunk->new_atoms));
    for (size_t i = 0; i < chunk->plans.size(); ++i) {
      absl::StatusOr<bool> one = image.ApplyCompact(chunk->plans[i], *chunk->calendars[i]);
      if (!one.ok()) {
        applied = one.status();
        break;
      }
      ++counts.events_read;
      if (*one) ++counts.events_applied;
    }
  }
  queue.Close();
  planning.join();
  image.NamedBoards();
  return applied;
}

}  // namespace leaderboard
