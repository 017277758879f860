// The registry of orgs (issue 14): one Redis set per cluster slot, living
// IN that slot, so an org's own scripts can register it (a key of the org's
// slot, passed in KEYS) and nothing ever touches a key of another slot.
//
//   platform:orgs:{<tag>}   SET of the org ids whose {org} hash tag falls in
//                           the slot of <tag>; <tag> is SlotTag(slot), a
//                           short string whose CRC16 slot is that slot.
//   platform:orgs:slots     SET of slot numbers that hold orgs: a hint written
//                           by writers beside a registration (a separate
//                           call: another slot) and healed by discovery.
//   platform:orgs           the legacy global SET (before issue 14): still
//                           read, never written, so an upgraded standalone
//                           deployment loses no org.
//
// Discovery (OrgRegistry::Orgs) reads registry keys on the primary serving
// each slot, pipelined per node in bounded chunks: every slot the first time,
// then the slots known to hold orgs, the hinted ones and a window of the
// others in turn (a full pass every 16384 / scan_window_slots discoveries),
// so a lost hint costs latency, never an org. The answer is cached for a
// short interval so every loop of a process shares one read.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/redis_client.h"

namespace common::redis {

// The global set of orgs from before the per-slot registry.
inline constexpr char kLegacyOrgsKey[] = "platform:orgs";

// The short tag (at most 3 characters of [0-9a-z]) whose slot is `slot`
// (0..16383): KeySlot("{" + SlotTag(slot) + "}") == slot. The table is
// computed once, on first use.
const std::string& SlotTag(int slot);

// The cluster slot of an org's keys (kudos:{org}:..., ledger:{org}:...).
// Orgs are non-empty (they come from verified tokens).
int OrgSlot(absl::string_view org);

// platform:orgs:{<tag>}: the registry set of the org's slot.
std::string OrgRegistryKey(absl::string_view org);
// The registry key of `slot`.
std::string SlotRegistryKey(int slot);

// SADD <OrgRegistryKey(org)> org: alone, in a pipeline of the org's keys,
// or (the same SADD) inside one of the org's scripts given the key in KEYS.
Command RegisterOrgCommand(absl::string_view org);

// The hint of the slots holding orgs, and SADD of the org's slot to it: sent
// as its own call (another slot) beside a registration, or once the SADD of
// RegisterOrgCommand answered 1 (a new org). Without it the org is still
// found, within one full pass of the discovery's windows.
inline constexpr char kOrgSlotsKey[] = "platform:orgs:slots";
Command IndexOrgSlotCommand(absl::string_view org);

// Many single-slot commands (of many orgs) as one pipeline per node, each
// command to the primary of its slot, `chunk` commands per round trip; a
// command answered with a redirect (MOVED, ASK, TRYAGAIN: its slot moved or
// is moving) is re-sent routed, at most `max_rerouted` of them. Replies and
// errors in place, in the order of `commands`; a node that cannot be reached
// fails only its own commands (the rest of its chunks are not sent).
// INVALID_ARGUMENT, nothing sent, when a command names no key or keys of two
// slots. On a standalone server: one pipeline in chunks. `rerouted`, when
// given, is increased by the commands re-sent routed.
absl::StatusOr<std::vector<absl::StatusOr<Reply>>> PipelineByNode(
    Pool& pool, const std::vector<Command>& commands, int chunk = 512, int max_rerouted = 1024,
    uint64_t* rerouted = nullptr);

struct OrgRegistryOptions {
  // A discovery is reused this long by every caller of Orgs().
  std::chrono::milliseconds refresh{1000};
  // Registry keys read per pipelined round trip to a node.
  int slots_per_pipeline = 1024;
  // Orgs one discovery returns at most (sorted: the first ones); past it a
  // warning names the flag and stats().truncated is set.
  int max_orgs = 1000000;
  // Slots read per discovery besides the known and hinted ones, in turn.
  int scan_window_slots = 512;
  // Slots whose registry key one discovery may re-read routed (after MOVED,
  // ASK, TRYAGAIN in a node's pipeline: the slot moved or is moving).
  int max_rerouted_slots = 1024;
  // Injected by tests; steady_clock::now otherwise.
  std::function<std::chrono::steady_clock::time_point()> now = [] {
    return std::chrono::steady_clock::now();
  };
};

// --org_registry_refresh_ms (env ORG_REGISTRY_REFRESH_MS, 1000),
// --org_registry_scan_window (env ORG_REGISTRY_SCAN_WINDOW, 512),
// --org_registry_max_orgs (env ORG_REGISTRY_MAX_ORGS, 1000000).
OrgRegistryOptions OrgRegistryOptionsFromFlags();

// Thread-safe; one per process (share it among the loops that need it).
class OrgRegistry {
 public:
  explicit OrgRegistry(Pool& pool, OrgRegistryOptions options = OrgRegistryOptionsFromFlags());
  OrgRegistry(const OrgRegistry&) = delete;
  OrgRegistry& operator=(const OrgRegistry&) = delete;

  // Every registered org (per-slot registries and the legacy set), sorted,
  // unique. Within `refresh` of the last discovery, that discovery's answer.
  // A node that cannot be read keeps the orgs it held at the last discovery
  // that read it (the others are still found); UNAVAILABLE only when
  // nothing was ever read.
  absl::StatusOr<std::vector<std::string>> Orgs();

  struct Stats {
    uint64_t discoveries = 0;     // reads of the registry
    uint64_t cached_answers = 0;  // Orgs() answered from the last discovery
    uint64_t commands = 0;        // commands sent (slot reads, hint read and heal, legacy SSCAN)
    uint64_t slots_read = 0;      // registry keys read
    uint64_t rerouted_slots = 0;  // slots re-read routed after a redirect
    uint64_t failed_slots = 0;    // slot reads that failed (their last known orgs kept)
    bool truncated = false;       // the last discovery hit max_orgs
  };
  Stats stats() const;

 private:
  absl::StatusOr<std::vector<std::string>> Discover();
  // This discovery's slots: all the first time; then those known to hold
  // orgs, the hinted ones (read into `hinted`) and the next window.
  std::vector<int> SlotsToRead(std::vector<char>& hinted, bool& hint_read);
  // Reads the registry keys of `slots` into slot_orgs_; the slots read.
  int ReadSlots(const std::vector<int>& slots, absl::Status& first_failure);
  // Adds the slots found holding orgs but not hinted to the hint.
  void HealHint(const std::vector<char>& hinted);
  absl::Status ReadLegacy();
  std::vector<std::string> Collect();

  Pool& pool_;
  const OrgRegistryOptions options_;
  mutable std::mutex mu_;  // held through a discovery: concurrent callers wait and share it
  bool have_cache_ = false;
  std::chrono::steady_clock::time_point read_at_;
  absl::Status cached_status_;
  std::vector<std::string> cached_;
  // The last orgs read per slot, and from the legacy set.
  std::vector<std::vector<std::string>> slot_orgs_;
  std::vector<std::string> legacy_orgs_;
  bool ever_read_ = false;
  bool first_pass_done_ = false;
  int window_start_ = 0;
  Stats stats_;
};

}  // namespace common::redis
