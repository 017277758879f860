#include "common/redis/org_registry.h"

#include <algorithm>
#include <array>
#include <map>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/check/check.h"
#include "common/config/env.h"
#include "common/log/log.h"
#include "common/redis/cluster_slots.h"

ABSL_FLAG(int, org_registry_refresh_ms,
          static_cast<int>(common::config::IntEnvOr("ORG_REGISTRY_REFRESH_MS", 1000, 1)),
          "how long one discovery of the orgs (a read of every cluster slot's registry key) is "
          "reused by the process's background loops (env ORG_REGISTRY_REFRESH_MS)");
ABSL_FLAG(int, org_registry_scan_window,
          static_cast<int>(common::config::IntEnvOr("ORG_REGISTRY_SCAN_WINDOW", 512, 1)),
          "cluster slots each discovery reads besides those known or hinted to hold orgs, in "
          "turn: an org whose hint was lost is found within 16384 / this discoveries "
          "(env ORG_REGISTRY_SCAN_WINDOW)");
ABSL_FLAG(int, org_registry_max_orgs,
          static_cast<int>(common::config::IntEnvOr("ORG_REGISTRY_MAX_ORGS", 1000000, 1)),
          "orgs one discovery returns at most; past it the rest are left out and a warning "
          "is logged (env ORG_REGISTRY_MAX_ORGS)");

namespace common::redis {
namespace {

// 1..3 characters of these cover every slot (after 73,033 candidates).
constexpr absl::string_view kTagAlphabet =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr int kMaxTagLength = 3;

int TagSlot(absl::string_view tag) { return Crc16(tag) & (kClusterSlots - 1); }

// Visits every string of `length` characters of the alphabet, in order,
// until `visit` returns false.
template <typename Visit>
bool ForEachTag(int length, const Visit& visit) {
  std::string tag(static_cast<size_t>(length), kTagAlphabet[0]);
  std::array<size_t, kMaxTagLength> digit{};
  while (true) {
    if (!visit(tag)) return false;
    int position = length - 1;
    while (position >= 0 && ++digit[position] == kTagAlphabet.size()) {
      digit[position] = 0;
      tag[position] = kTagAlphabet[0];
      --position;
    }
    if (position < 0) return true;
    tag[position] = kTagAlphabet[digit[position]];
  }
}

std::vector<std::string> BuildTagTable() {
  std::vector<std::string> tags(kClusterSlots);
  int found = 0;
  for (int length = 1; length <= kMaxTagLength && found < kClusterSlots; ++length) {
    ForEachTag(length, [&](const std::string& tag) {
      std::string& entry = tags[TagSlot(tag)];
      if (entry.empty()) {
        entry = tag;
        ++found;
      }
      return found < kClusterSlots;
    });
  }
  KUDOS_CHECK(found == kClusterSlots, "the tag alphabet covers every cluster slot");
  return tags;
}

std::vector<std::string> Members(const Reply& reply) {
  std::vector<std::string> members;
  members.reserve(reply.elements.size());
  for (const Reply& member : reply.elements) members.push_back(member.str);
  return members;
}

}  // namespace

const std::string& SlotTag(int slot) {
  static const std::vector<std::string>* const kTags =
      new std::vector<std::string>(BuildTagTable());
  KUDOS_CHECK(slot >= 0 && slot < kClusterSlots, "a cluster slot is 0..16383");
  return (*kTags)[slot];
}

int OrgSlot(absl::string_view org) { return KeySlot(absl::StrCat("{", org, "}")); }

std::string SlotRegistryKey(int slot) {
  return absl::StrCat(kLegacyOrgsKey, ":{", SlotTag(slot), "}");
}

std::string OrgRegistryKey(absl::string_view org) { return SlotRegistryKey(OrgSlot(org)); }

Command RegisterOrgCommand(absl::string_view org) {
  return {"SADD", OrgRegistryKey(org), std::string(org)};
}

Command IndexOrgSlotCommand(absl::string_view org) {
  return {"SADD", kOrgSlotsKey, absl::StrCat(OrgSlot(org))};
}

namespace {

// A cluster's answer that the slot is elsewhere or moving ("redis: MOVED
// 866 127.0.0.1:7001", StatusFromRedisError's form): the routed pool follows
// it. Not I/O failures: re-sending a dead node's commands one by one would
// wait out a timeout each.
bool Redirected(const absl::Status& status) {
  absl::string_view message = status.message();
  absl::ConsumePrefix(&message, "redis: ");
  for (absl::string_view redirect : {"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"}) {
    if (absl::StartsWith(message, redirect)) return true;
  }
  return false;
}

// The one slot of the keys of `command` (number `index` of a call).
absl::StatusOr<int> OneSlot(const Command& command, size_t index) {
  std::vector<absl::string_view> keys = KeysOf(command);
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("PipelineByNode: command ", index, " (",
                                                   command.empty() ? "" : command[0],
                                                   ") names no key"));
  }
  const int slot = KeySlot(keys[0]);
  for (absl::string_view key : keys) {
    if (KeySlot(key) != slot) {
      return absl::InvalidArgumentError(absl::StrCat("PipelineByNode: command ", index,
                                                     " names keys of two slots: '", keys[0],
                                                     "' and '", key, "'"));
    }
  }
  return slot;
}

// Sends the commands at `indexes` to `node` in chunks; stops at the first I/O failure, which
// then answers the rest of the node's commands.
void SendToNode(Pool& pool, const std::string& node, const std::vector<Command>& commands,
                const std::vector<size_t>& indexes, size_t chunk,
                std::vector<absl::StatusOr<Reply>>& out) {
  for (size_t first = 0; first < indexes.size(); first += chunk) {
    const size_t count = std::min(chunk, indexes.size() - first);
    std::vector<Command> sent;
    sent.reserve(count);
    for (size_t i = 0; i < count; ++i) sent.push_back(commands[indexes[first + i]]);
    absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = pool.PipelineOn(node, sent);
    if (!replies.ok()) {
      for (size_t i = first; i < indexes.size(); ++i) out[indexes[i]] = replies.status();
      return;
    }
    KUDOS_CHECK(replies->size() == count, "one reply per pipelined command");
    for (size_t i = 0; i < count; ++i) out[indexes[first + i]] = std::move((*replies)[i]);
  }
}

}  // namespace

absl::StatusOr<std::vector<absl::StatusOr<Reply>>> PipelineByNode(
    Pool& pool, const std::vector<Command>& commands, int chunk, int max_rerouted,
    uint64_t* rerouted) {
  KUDOS_CHECK(chunk >= 1 && max_rerouted >= 0, "bounded, non-empty chunks");
  std::map<std::string, std::vector<size_t>> by_node;
  // Slots repeat (many orgs per slot): one lookup each.
  std::vector<std::string> node_of_slot(kClusterSlots);
  for (size_t i = 0; i < commands.size(); ++i) {
    absl::StatusOr<int> slot = OneSlot(commands[i], i);
    if (!slot.ok()) return slot.status();
    std::string& node = node_of_slot[*slot];
    if (node.empty()) node = pool.NodeForSlot(*slot);
    by_node[node].push_back(i);
  }
  std::vector<absl::StatusOr<Reply>> out(commands.size(), absl::UnknownError("not sent"));
  for (const auto& [node, indexes] : by_node) {
    SendToNode(pool, node, commands, indexes, static_cast<size_t>(chunk), out);
  }
  int resent = 0;
  for (size_t i = 0; i < commands.size() && resent < max_rerouted; ++i) {
    if (out[i].ok() || !Redirected(out[i].status())) continue;
    ++resent;
    out[i] = pool.Run(commands[i]);
  }
  if (rerouted != nullptr) *rerouted += static_cast<uint64_t>(resent);
  return out;
}

OrgRegistryOptions OrgRegistryOptionsFromFlags() {
  OrgRegistryOptions options;
  options.refresh = std::chrono::milliseconds(absl::GetFlag(FLAGS_org_registry_refresh_ms));
  options.max_orgs = absl::GetFlag(FLAGS_org_registry_max_orgs);
  options.scan_window_slots = absl::GetFlag(FLAGS_org_registry_scan_window);
  return options;
}

OrgRegistry::OrgRegistry(Pool& pool, OrgRegistryOptions options)
    : pool_(pool), options_(std::move(options)), slot_orgs_(kClusterSlots) {
  KUDOS_CHECK(options_.slots_per_pipeline >= 1 && options_.max_orgs >= 1 &&
                  options_.scan_window_slots >= 1,
              "registry reads and answers are bounded by positive limits");
}

OrgRegistry::Stats OrgRegistry::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::StatusOr<std::vector<std::string>> OrgRegistry::Orgs() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = options_.now();
  if (have_cache_ && now - read_at_ < options_.refresh) {
    ++stats_.cached_answers;
    if (!cached_status_.ok()) return cached_status_;
    return cached_;
  }
  absl::StatusOr<std::vector<std::string>> orgs = Discover();
  have_cache_ = true;
  // A failure is reused too: callers retry after `refresh`, not in a loop.
  read_at_ = now;
  cached_status_ = orgs.status();
  if (orgs.ok()) cached_ = *orgs;
  return orgs;
}

absl::StatusOr<std::vector<std::string>> OrgRegistry::Discover() {
  ++stats_.discoveries;
  absl::Status first_failure;
  std::vector<char> hinted;
  bool hint_read = false;
  const int slots_read = ReadSlots(SlotsToRead(hinted, hint_read), first_failure);
  first_pass_done_ = true;
  if (hint_read) HealHint(hinted);
  absl::Status legacy = ReadLegacy();
  if (!legacy.ok() && first_failure.ok()) first_failure = legacy;
  if (slots_read > 0) ever_read_ = true;
  if (!ever_read_) {
    return absl::UnavailableError(
        absl::StrCat("org registry: no Redis node could be read: ", first_failure.message()));
  }
  return Collect();
}

std::vector<int> OrgRegistry::SlotsToRead(std::vector<char>& hinted, bool& hint_read) {
  hinted.assign(kClusterSlots, 0);
  ++stats_.commands;
  absl::StatusOr<Reply> hint = pool_.Run({"SMEMBERS", kOrgSlotsKey});
  hint_read = hint.ok();
  if (hint.ok()) {
    for (const Reply& member : hint->elements) {
      int slot = -1;
      if (absl::SimpleAtoi(member.str, &slot) && slot >= 0 && slot < kClusterSlots) hinted[slot] = 1;
    }
  } else {
    // Only a hint: the known slots and the window are still read.
    common::log::Warning(absl::StrCat("org registry: reading ", kOrgSlotsKey, ": ",
                                      hint.status().ToString()));
  }
  std::vector<int> slots;
  if (!first_pass_done_) {
    slots.resize(kClusterSlots);
    for (int slot = 0; slot < kClusterSlots; ++slot) slots[slot] = slot;
    return slots;
  }
  std::vector<char> wanted = hinted;
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (!slot_orgs_[slot].empty()) wanted[slot] = 1;
  }
  const int window = std::min(options_.scan_window_slots, kClusterSlots);
  for (int i = 0; i < window; ++i) wanted[(window_start_ + i) % kClusterSlots] = 1;
  window_start_ = (window_start_ + window) % kClusterSlots;
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (wanted[slot]) slots.push_back(slot);
  }
  return slots;
}

int OrgRegistry::ReadSlots(const std::vector<int>& slots, absl::Status& first_failure) {
  std::vector<Command> reads;
  reads.reserve(slots.size());
  for (int slot : slots) reads.push_back({"SMEMBERS", SlotRegistryKey(slot)});
  stats_.commands += reads.size();
  stats_.slots_read += reads.size();
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies =
      PipelineByNode(pool_, reads, options_.slots_per_pipeline, options_.max_rerouted_slots,
                     &stats_.rerouted_slots);
  KUDOS_CHECK(replies.ok(), "every registry key names one slot");
  KUDOS_CHECK(replies->size() == reads.size(), "one reply per registry key");
  int read = 0;
  int failed = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    absl::StatusOr<Reply>& reply = (*replies)[i];
    if (!reply.ok()) {
      if (first_failure.ok()) first_failure = reply.status();
      ++failed;
      continue;  // keeps its orgs as last read
    }
    slot_orgs_[slots[i]] = Members(*reply);
    ++read;
  }
  stats_.failed_slots += failed;
  if (failed > 0) {
    common::log::Warning(absl::StrCat("org registry: ", failed, " of ", slots.size(),
                                      " slots unreadable (", first_failure.ToString(),
                                      "); their orgs as last read are kept"));
  }
  return read;
}

void OrgRegistry::HealHint(const std::vector<char>& hinted) {
  Command add = {"SADD", kOrgSlotsKey};
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    if (!hinted[slot] && !slot_orgs_[slot].empty()) add.push_back(absl::StrCat(slot));
  }
  if (add.size() == 2) return;
  ++stats_.commands;
  // A failure leaves the hint as it was: the windows still find those slots.
  absl::StatusOr<Reply> added = pool_.Run(add);
  if (!added.ok()) {
    common::log::Warning(absl::StrCat("org registry: healing ", kOrgSlotsKey, ": ",
                                      added.status().ToString()));
  }
}

absl::Status OrgRegistry::ReadLegacy() {
  std::vector<std::string> orgs;
  std::string cursor = "0";
  // SSCAN pages of ~1000; bounded even if a page keeps coming back empty.
  const int max_pages = options_.max_orgs / 1000 + 16;
  for (int page = 0; page < max_pages; ++page) {
    ++stats_.commands;
    absl::StatusOr<Reply> reply = pool_.Run({"SSCAN", kLegacyOrgsKey, cursor, "COUNT", "1000"});
    if (!reply.ok()) return reply.status();
    if (reply->elements.size() != 2) {
      return absl::InternalError(absl::StrCat("org registry: SSCAN ", kLegacyOrgsKey,
                                              " answered ", reply->elements.size(),
                                              " elements, not 2"));
    }
    std::vector<std::string> members = Members(reply->elements[1]);
    orgs.insert(orgs.end(), members.begin(), members.end());
    cursor = reply->elements[0].str;
    if (cursor == "0") break;
  }
  legacy_orgs_ = std::move(orgs);
  return absl::OkStatus();
}

std::vector<std::string> OrgRegistry::Collect() {
  std::vector<std::string> orgs = legacy_orgs_;
  for (const std::vector<std::string>& slot : slot_orgs_) {
    orgs.insert(orgs.end(), slot.begin(), slot.end());
  }
  std::sort(orgs.begin(), orgs.end());
  orgs.erase(std::unique(orgs.begin(), orgs.end()), orgs.end());
  const bool truncated = orgs.size() > static_cast<size_t>(options_.max_orgs);
  if (truncated) {
    if (!stats_.truncated) {
      common::log::Warning(absl::StrCat("org registry: ", orgs.size(),
                                        " orgs registered, more than --org_registry_max_orgs (",
                                        options_.max_orgs, "): the rest are left out"));
    }
    orgs.resize(static_cast<size_t>(options_.max_orgs));
  }
  stats_.truncated = truncated;
  return orgs;
}

}  // namespace common::redis
