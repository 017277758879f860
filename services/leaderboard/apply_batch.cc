#include "services/leaderboard/apply_batch.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "services/leaderboard/leaderboard_events.h"

namespace leaderboard {

using common::redis::Reply;

namespace {

std::optional<std::pair<uint64_t, uint64_t>> ParseId(const std::string& id) {
  std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(id, absl::MaxSplits('-', 1));
  uint64_t ms = 0, seq = 0;
  if (!absl::SimpleAtoi(parts.first, &ms) || !absl::SimpleAtoi(parts.second, &seq)) {
    return std::nullopt;
  }
  return std::make_pair(ms, seq);
}

absl::Status Malformed(absl::string_view why) {
  return absl::InternalError(absl::StrCat("apply_event: malformed plan: ", why));
}

// The call's KEYS: nine fixed ones (scripts/apply_event.lua), then each
// other key once.
class KeyTable {
 public:
  KeyTable(const std::string& org, std::vector<std::string>* keys) : keys_(keys) {
    *keys_ = {MarksKey(org), RebuildLockKey(org), AppliedKey(org), KudosStream(org),
              LedgerStream(org), DerivedGenerationKey(org)};
    for (char stream : kGuardStreams) keys_->push_back(LegacyGuardKey(org, stream));
    for (size_t i = 0; i < keys_->size(); ++i) index_[(*keys_)[i]] = i + 1;
  }
  // The call's index (1-based, as text) of the plan's key named by `arg`.
  absl::StatusOr<std::string> Map(const ApplyPlan& plan, const std::string& arg) {
    absl::StatusOr<std::string> key = KeyOf(plan, arg);
    if (!key.ok()) return key.status();
    return Add(*key);
  }
  // The call's index of `key`, added when new.
  std::string Add(const std::string& key) {
    auto [it, added] = index_.try_emplace(key, keys_->size() + 1);
    if (added) keys_->push_back(key);
    return absl::StrCat(it->second);
  }
  // The key at a call index made by Map or Add.
  const std::string& Name(const std::string& index) const {
    size_t k = 0;
    KUDOS_CHECK(absl::SimpleAtoi(index, &k) && k >= 1 && k <= keys_->size(),
                "a call index names one of the call's keys");
    return (*keys_)[k - 1];
  }
  static absl::StatusOr<std::string> KeyOf(const ApplyPlan& plan, const std::string& arg) {
    size_t k = 0;
    if (!absl::SimpleAtoi(arg, &k) || k < 1 || k > plan.keys.size()) {
      return Malformed(absl::StrCat("key index '", arg, "'"));
    }
    return plan.keys[k - 1];
  }

 private:
  std::vector<std::string>* keys_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// The width of the plan operation at a[i] (apply_batch.h, leaderboard_rules.h).
absl::StatusOr<size_t> OpWidth(const std::vector<std::string>& a, size_t i) {
  const std::string& op = a[i];
  size_t width = op == "G" ? 4 : op == "Z" ? 5 : op == "S" || op == "R" || op == "P" ? 3
                 : op == "H" || op == "N" ? 4 : op == "D" ? 2 : op == "T" ? 7
                 : op == "E" ? 8 : 0;
  size_t count = 0;
  if (op == "V") {
    // Pairs (ValueMember, the value id): an even count.
    if (i + 6 > a.size() || !absl::SimpleAtoi(a[i + 5], &count) || count % 2 != 0) {
      return Malformed("V");
    }
    width = 6 + count;
  }
  if (width == 0) return Malformed(absl::StrCat("unknown operation ", op));
  if (i + width > a.size()) return Malformed(op);
  return width;
}

// A plan's "E" op (leaderboard_events.h AddEmitOp): its changes append events.
struct EmitContext {
  std::string cause;  // kudos id
  int64_t ms = 0;
};

// The batch's events section (ARGV, before the group): "0", or "1", the
// stream's index, max len, freezes per month, work days, holidays.
struct EventsSection {
  std::string stream_index;
  std::string max_len, freezes, work_days, holidays;
};

// The operations of the included plans, in order, reduced to what changes
// the outcome (see the header).
class OpsBuilder {
 public:
  OpsBuilder(const std::string& org, KeyTable& keys, const AppliedBefore& before)
      : org_(org), keys_(keys) {
    for (const auto& [id, score] : before.seen_guards) applied_at_[id] = score;
  }

  // `entry_ms`: when the plan's entry was appended (its guards' time).
  absl::Status Add(const ApplyPlan& plan, int64_t entry_ms) {
    const std::vector<std::string>& a = plan.args;
    absl::StatusOr<std::optional<EmitContext>> emit = FindEmit(plan);
    if (!emit.ok()) return emit.status();
    emit_ = *std::move(emit);
    bool skip = false;
    size_t i = 2;
    while (i < a.size()) {
      const std::string& op = a[i];
      absl::StatusOr<size_t> measured = OpWidth(a, i);
      if (!measured.ok()) return measured.status();
      size_t width = *measured;
      if (op == "E") {
        // Read by FindEmit: the batch's section and the plan's context.
      } else if (op == "G") {
        absl::StatusOr<bool> s = Guard(plan, a[i + 1], a[i + 2], a[i + 3], entry_ms);
        if (!s.ok()) return s.status();
        skip = *s;
      } else if (!skip) {
        if (absl::Status s = Op(plan, i, width); !s.ok()) return s;
      }
      i += width;
    }
    return absl::OkStatus();
  }

  // ARGV from the guards on (after the entry ids); the boards incremented
  // into `boards`, their expiry marked known ("=") when `known` knows it.
  absl::Status Append(std::vector<std::string>& args, const KnownExpiries* known, int64_t now_s,
                      absl::flat_hash_map<std::string, BatchCall::Board>& boards) {
    for (const std::string& key : deleted_) {
      if (zkeys_.contains(key)) return Malformed("a board deleted and incremented in one batch");
    }
    args.push_back(absl::StrCat(guards_.size() / 5));
    args.insert(args.end(), guards_.begin(), guards_.end());
    args.push_back(absl::StrCat(trims_.size()));
    for (const auto& [key, below] : trims_) args.insert(args.end(), {key, absl::StrCat(below)});
    args.push_back(absl::StrCat(ops_.size()));
    args.insert(args.end(), ops_.begin(), ops_.end());
    // Increments grouped per board (its key and expiry sent once, not per
    // member: fewer arguments for Redis to read into the script), the
    // members count badges read in groups of their own (the script keeps
    // their scores before the batch).
    struct Group {
      std::string board_index, expire;
      bool read = false;
      std::vector<std::pair<const Pair*, int64_t>> sums;  // (board, member), total
    };
    std::vector<Group> groups;
    absl::flat_hash_map<std::pair<std::string, bool>, size_t> group_of;
    for (const auto& pair : order_) {
      const Total& total = totals_.at(pair);
      const std::string& board = keys_.Name(pair.first);
      int64_t expire_at = 0;
      if (!absl::SimpleAtoi(total.expire_at, &expire_at) || expire_at < 0) {
        return Malformed("Z expiry");
      }
      BatchCall::Board& seen = boards[board];
      seen.expire_at = expire_at;
      seen.only_added = seen.only_added && total.sum > 0;
      const bool read = read_.count(pair) > 0;
      auto [at, added] = group_of.try_emplace({pair.first, read}, groups.size());
      if (added) {
        bool is_known = expire_at > 0 && known != nullptr && known->Knows(board, expire_at, now_s);
        groups.push_back({pair.first, is_known ? absl::StrCat("=", total.expire_at) : total.expire_at,
                          read, {}});
      }
      groups[at->second].sums.emplace_back(&pair, total.sum);
    }
    args.push_back(absl::StrCat(groups.size()));
    for (const Group& group : groups) {
      args.insert(args.end(), {group.board_index, group.expire, group.read ? "1" : "0",
                               absl::StrCat(group.sums.size())});
      for (const auto& [pair, sum] : group.sums) {
        args.insert(args.end(), {pair->second, absl::StrCat(sum)});
      }
    }
    args.push_back(absl::StrCat(thresholds_.size() / 8));
    args.insert(args.end(), thresholds_.begin(), thresholds_.end());
    // The board generation the "=" expiries were learnt at.
    args.push_back(known != nullptr ? known->generation : "");
    if (!events_.has_value()) {
      args.push_back("0");
    } else {
      args.insert(args.end(), {"1", events_->stream_index, events_->max_len, events_->freezes,
                               events_->work_days, events_->holidays});
    }
    return absl::OkStatus();
  }

 private:
  using Pair = std::pair<std::string, std::string>;  // (call key index, member)

  // The plan's "E" op, if any; the first one also sets the batch's section.
  absl::StatusOr<std::optional<EmitContext>> FindEmit(const ApplyPlan& plan) {
    const std::vector<std::string>& a = plan.args;
    for (size_t i = 2; i < a.size();) {
      absl::StatusOr<size_t> width = OpWidth(a, i);
      if (!width.ok()) return width.status();
      if (a[i] == "E") {
        EmitContext emit;
        if (!absl::SimpleAtoi(a[i + 4], &emit.ms)) return Malformed("E ms");
        emit.cause = a[i + 3];
        if (!events_.has_value()) {
          absl::StatusOr<std::string> stream = keys_.Map(plan, a[i + 1]);
          if (!stream.ok()) return stream.status();
          if (keys_.KeyOf(plan, a[i + 1]).value() != EventsStream(org_)) {
            return Malformed("E stream");
          }
          events_ = EventsSection{*stream, a[i + 2], a[i + 5], a[i + 6], a[i + 7]};
        }
        return std::optional<EmitContext>(std::move(emit));
      }
      i += *width;
    }
    return std::optional<EmitContext>();
  }

  // The person whose key `key` is, when it starts with `prefix` (org's).
  std::optional<std::string> Owner(const std::string& key, absl::string_view prefix) const {
    std::string full = absl::StrCat(Prefix(org_), prefix);
    if (!absl::StartsWith(key, full) || key.size() == full.size()) return std::nullopt;
    return key.substr(full.size());
  }

  // The badge event of a badge op on `badges_key`, "" when not emitting.
  std::string BadgeEvent(const std::string& badges_key, const std::string& badge,
                         const std::string& ms_text) const {
    std::optional<std::string> person = Owner(badges_key, "badges:");
    int64_t ms = 0;
    if (!emit_.has_value() || !person.has_value() || !absl::SimpleAtoi(ms_text, &ms)) return "";
    KUDOS_CHECK(BadgesKey(org_, *person) == badges_key, "a badge event names the key's person");
    return BadgeEarnedEvent(org_, *person, badge, ms, emit_->cause);
  }

  // S on a person's active days, emitting: "Y" (the day, its streak event
  // and, for giving, the giving-streak badge). False: an ordinary S.
  bool StreakOp(const std::string& days_key, const std::string& k, const std::string& day_text) {
    if (!emit_.has_value()) return false;
    for (const char* kind : {"giving", "receiving"}) {
      std::optional<std::string> person = Owner(days_key, absl::StrCat("days:", kind, ":"));
      absl::StatusOr<absl::CivilDay> day = ParseDay(day_text);
      if (!person.has_value() || !day.ok()) continue;
      KUDOS_CHECK(DaysKey(org_, kind, *person) == days_key, "a streak event names the key's person");
      bool giving = std::string(kind) == "giving";
      std::string ms = absl::StrCat(emit_->ms);
      ops_.insert(ops_.end(),
                  {"Y", k, day_text,
                   StreakExtendedEventPrefix(org_, kind, *person, *day, emit_->ms, emit_->cause),
                   giving ? keys_.Add(BadgesKey(org_, *person)) : "0", kGivingStreakBadge,
                   absl::StrCat(kGivingStreakBadgeDays), ms,
                   giving ? BadgeEarnedEvent(org_, *person, kGivingStreakBadge, emit_->ms,
                                             emit_->cause)
                          : ""});
      return true;
    }
    return false;
  }
  struct Total {
    int64_t sum = 0;
    std::string expire_at;
  };

  // True: skip the group (its logical id was applied within the window).
  // As ProjectionImage: ids older than the window behind this entry are gone.
  absl::StatusOr<bool> Guard(const ApplyPlan& plan, const std::string& id,
                             const std::string& key_arg, const std::string& window_text,
                             int64_t entry_ms) {
    if (id.empty()) return false;
    int64_t window = 0;
    if (!absl::SimpleAtoi(window_text, &window) || window < 0) return Malformed("G window");
    absl::StatusOr<std::string> k = keys_.Map(plan, key_arg);
    if (!k.ok()) return k.status();
    const int64_t cut_s = GuardCutSeconds(entry_ms - window);
    int64_t& below = trims_[*k];
    below = std::max(below, cut_s);
    std::string member = GuardMember(id);
    auto it = applied_at_.find(member);
    if (it != applied_at_.end() && GuardSeconds(static_cast<double>(it->second)) >= cut_s) return true;
    const int64_t score = GuardScore(entry_ms);
    applied_at_[member] = score;
    std::string text_id = member == id ? "" : id;
    guards_.insert(guards_.end(), {std::move(member), *k, absl::StrCat(score), absl::StrCat(cut_s),
                                   std::move(text_id)});
    return false;
  }

  absl::Status Op(const ApplyPlan& plan, size_t i, size_t width) {
    const std::vector<std::string>& a = plan.args;
    const std::string& op = a[i];
    absl::StatusOr<std::string> k = keys_.Map(plan, a[i + 1]);
    if (!k.ok()) return k.status();
    if (op == "Z") return Increment(*k, a[i + 2], a[i + 3], a[i + 4]);
    if (op == "T") {
      absl::StatusOr<std::string> board = keys_.Map(plan, a[i + 4]);
      if (!board.ok()) return board.status();
      auto it = totals_.find(Pair(*board, a[i + 5]));
      int64_t cum = it == totals_.end() ? 0 : it->second.sum;
      // Its score after the batch is not the entry's: keep the one before.
      read_.insert(Pair(*board, a[i + 5]));
      thresholds_.insert(thresholds_.end(),
                         {*k, a[i + 2], a[i + 3], *board, a[i + 5], a[i + 6], absl::StrCat(cum),
                          BadgeEvent(plan.keys[std::stoul(a[i + 1]) - 1], a[i + 2], a[i + 3])});
      return absl::OkStatus();
    }
    // Members and HSETNX fields already written in this batch change nothing.
    if (op == "S" && !written_.insert(Pair(*k, "s " + a[i + 2])).second) return absl::OkStatus();
    if (op == "N" && !written_.insert(Pair(*k, "h " + a[i + 2])).second) return absl::OkStatus();
    if (op == "H") written_.insert(Pair(*k, "h " + a[i + 2]));
    if (op == "R") written_.erase(Pair(*k, "s " + a[i + 2]));  // an SADD after it counts
    if (op == "D" || op == "P") Forget(*k);
    if (op == "D") deleted_.insert(*k);
    const std::string& key = plan.keys[std::stoul(a[i + 1]) - 1];  // checked by Map
    if (op == "S" && StreakOp(key, *k, a[i + 2])) return absl::OkStatus();
    std::string event = op == "N" || op == "V" ? BadgeEvent(key, a[i + 2], a[i + 3]) : "";
    if (!event.empty()) {
      // B = N, U = V, each appending its event when it wrote the badge.
      ops_.push_back(op == "N" ? "B" : "U");
      ops_.insert(ops_.end(), a.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                  a.begin() + static_cast<std::ptrdiff_t>(i + width));
      ops_[ops_.size() - width + 1] = *k;
      if (op == "V") {
        absl::StatusOr<std::string> set = keys_.Map(plan, a[i + 4]);
        if (!set.ok()) return set.status();
        ops_[ops_.size() - width + 4] = *set;
      }
      ops_.push_back(std::move(event));
      return absl::OkStatus();
    }
    ops_.push_back(op);
    ops_.push_back(*k);
    for (size_t j = 2; j < width; ++j) {
      if (op == "V" && j == 4) {
        absl::StatusOr<std::string> set = keys_.Map(plan, a[i + j]);
        if (!set.ok()) return set.status();
        ops_.push_back(*set);
      } else {
        ops_.push_back(a[i + j]);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Increment(const std::string& k, const std::string& member,
                         const std::string& amount, const std::string& expire_at) {
    int64_t increment = 0;
    // Negative: a retraction; a total of 0 is still sent (the script removes
    // a member left at 0, as the image does entry by entry).
    if (!absl::SimpleAtoi(amount, &increment) || increment == 0) return Malformed("Z amount");
    Pair pair(k, member);
    auto [it, added] = totals_.try_emplace(pair);
    if (added) {
      order_.push_back(pair);
      it->second.expire_at = expire_at;
    }
    it->second.sum += increment;
    zkeys_.insert(k);
    return absl::OkStatus();
  }

  void Forget(const std::string& k) {
    for (auto it = written_.begin(); it != written_.end();) {
      if (it->first == k) {
        written_.erase(it++);  // erasing leaves the other iterators valid
      } else {
        ++it;
      }
    }
  }

  std::string org_;
  KeyTable& keys_;
  std::optional<EmitContext> emit_;  // the current plan's
  std::optional<EventsSection> events_;
  // Logical id -> its guard's score (GuardSeconds reads it): stored, or
  // earlier in the batch.
  absl::flat_hash_map<std::string, int64_t> applied_at_;
  std::vector<std::string> guards_;
  std::map<std::string, int64_t> trims_;  // guard key -> the cut (GuardCutSeconds) its guards leave below
  std::vector<std::string> ops_;
  // Hashed, not ordered: a batch looks up hundreds of (board key index,
  // member) pairs, and ordered maps of string pairs were a tenth of the
  // consumer's CPU (perf, 2026-11-30). order_ keeps the first-seen order.
  absl::flat_hash_map<Pair, Total> totals_;
  std::vector<Pair> order_;
  std::vector<std::string> thresholds_;
  absl::flat_hash_set<Pair> read_;  // incremented pairs a count badge reads
  absl::flat_hash_set<Pair> written_;
  absl::flat_hash_set<std::string> zkeys_;
  absl::flat_hash_set<std::string> deleted_;
};

}  // namespace

absl::StatusOr<size_t> ApplyOpWidth(const std::vector<std::string>& a, size_t i) {
  if (i >= a.size()) return Malformed("an operation past the end");
  return OpWidth(a, i);
}

bool StreamIdLess(const std::string& a, const std::string& b) {
  std::optional<std::pair<uint64_t, uint64_t>> x = ParseId(a), y = ParseId(b);
  return x.has_value() && y.has_value() && *x < *y;
}

std::optional<int64_t> StreamIdMs(const std::string& id) {
  std::optional<std::pair<uint64_t, uint64_t>> parsed = ParseId(id);
  if (!parsed.has_value() || parsed->first > (uint64_t{1} << 52)) return std::nullopt;
  return static_cast<int64_t>(parsed->first);
}

bool KnownExpiries::Knows(const std::string& board, int64_t expire_at, int64_t now_s) const {
  // A board whose expiry is near may lapse and be made again, without it.
  constexpr int64_t kMarginS = 3600;
  auto it = boards.find(board);
  return it != boards.end() && it->second == expire_at && expire_at > now_s + kMarginS;
}

void LearnExpiries(const BatchCall& call, const std::string& generation, KnownExpiries* known) {
  if (known->generation != generation) {
    known->boards.clear();
    known->generation = generation;
  }
  for (const auto& [board, seen] : call.boards) {
    if (seen.expire_at > 0 && seen.only_added) known->boards[board] = seen.expire_at;
  }
}

size_t BoundExpiries(KnownExpiries* known, size_t max_boards, int64_t now_s) {
  if (known->boards.size() <= max_boards) return known->boards.size();
  for (auto it = known->boards.begin(); it != known->boards.end();) {
    if (it->second <= now_s) {
      known->boards.erase(it++);
    } else {
      ++it;
    }
  }
  if (known->boards.size() > max_boards) known->boards.clear();
  return known->boards.size();
}

absl::StatusOr<BatchCall> BuildBatchCall(const std::string& org,
                                         const std::vector<const ApplyPlan*>& plans,
                                         const std::string& rebuild_token,
                                         const AppliedBefore& before,
                                         const KnownExpiries* known, int64_t now_s) {
  BatchCall call;
  call.included.assign(plans.size(), false);
  KeyTable keys(org, &call.keys);
  OpsBuilder ops(org, keys, before);
  std::vector<std::string> ids[2];  // kudos, ledger
  for (size_t p = 0; p < plans.size(); ++p) {
    const ApplyPlan& plan = *plans[p];
    char stream = 0;
    std::string id;
    if (!plan.EntryId(&stream, &id) || !StreamIdMs(id).has_value()) {
      return Malformed(absl::StrCat("entry id '", plan.args.empty() ? "" : plan.args[0], "'"));
    }
    if (plan.keys.size() < 2 || plan.keys[0] != MarksKey(org)) return Malformed("marks key");
    const std::optional<std::string>& mark = stream == 'k' ? before.mark_k : before.mark_l;
    if ((mark.has_value() && !StreamIdLess(*mark, id)) ||
        before.stale_entries.contains(plan.args[0])) {
      continue;  // applied before
    }
    std::vector<std::string>& list = ids[stream == 'k' ? 0 : 1];
    if (!list.empty() && !StreamIdLess(list.back(), id)) {
      return absl::InternalError(absl::StrCat("apply_event: entries out of order: ", id,
                                              " after ", list.back()));
    }
    list.push_back(id);
    call.included[p] = true;
    ++call.entries;
    if (absl::Status s = ops.Add(plan, *StreamIdMs(id)); !s.ok()) return s;
  }
  call.args.push_back(rebuild_token);
  for (const std::vector<std::string>& list : ids) {
    call.args.push_back(absl::StrCat(list.size()));
    call.args.insert(call.args.end(), list.begin(), list.end());
  }
  if (absl::Status s = ops.Append(call.args, known, now_s, call.boards); !s.ok()) return s;
  for (const std::string& key : call.keys) {
    KUDOS_CHECK(absl::StrContains(key, absl::StrCat("{", org, "}")),
                "an org's batch touches only keys in its own slot");
  }
  return call;
}

absl::StatusOr<bool> ParseBatchReply(const Reply& reply, AppliedBefore* before,
                                     std::string* generation) {
  if (reply.type != Reply::Type::kArray || reply.elements.empty()) {
    return absl::InternalError("apply_event: unexpected reply shape");
  }
  if (reply.elements[0].integer == 1) {
    if (reply.elements.size() != 2) return absl::InternalError("apply_event: unexpected reply");
    if (generation != nullptr) *generation = reply.elements[1].str;
    return true;
  }
  if (reply.elements.size() != 5) return absl::InternalError("apply_event: unexpected refusal");
  auto mark = [](const Reply& r) -> std::optional<std::string> {
    if (r.str.empty()) return std::nullopt;
    return r.str;
  };
  before->mark_k = mark(reply.elements[1]);
  before->mark_l = mark(reply.elements[2]);
  for (const Reply& id : reply.elements[3].elements) before->stale_entries.insert(id.str);
  const std::vector<Reply>& seen = reply.elements[4].elements;
  for (size_t i = 0; i + 1 < seen.size(); i += 2) {
    int64_t score = 0;
    if (!absl::SimpleAtoi(seen[i + 1].str, &score)) {
      return absl::InternalError("apply_event: unexpected guard score");
    }
    before->seen_guards[seen[i].str] = score;
  }
  return false;
}

}  // namespace leaderboard
