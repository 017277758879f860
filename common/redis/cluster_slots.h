// Redis Cluster key routing, as the Redis Cluster specification defines it:
// the slot of a key is CRC16 (XMODEM) of the key, or of its hash tag (the
// part between the first '{' and the next '}', when that part is not empty),
// modulo 16384. Every key of an org carries the tag {org}, so an org's keys,
// pipelines and scripts live in one slot. Used by AsyncClient (async_client.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/redis/redis_client.h"

namespace common::redis {

inline constexpr int kClusterSlots = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0): "123456789" -> 0x31C3.
uint16_t Crc16(absl::string_view data);

// The cluster slot of a key, honouring {hash tags}.
int KeySlot(absl::string_view key);

// The keys a command names (argument positions of the usual commands: the
// first argument for single-key commands; every argument of DEL, MGET,
// EXISTS, ...; every other one of MSET; the `numkeys` keys of EVAL/EVALSHA/
// FCALL; the streams of XREAD/XREADGROUP; none for PING, INFO, SCRIPT,
// CLUSTER, MULTI, EXEC, ...). Views into `command`.
std::vector<absl::string_view> KeysOf(const Command& command);

// The one slot every key of `commands` lies in; nullopt when they name no
// key. INVALID_ARGUMENT when their keys span slots (CROSSSLOT on a cluster),
// naming two keys and their slots.
absl::StatusOr<std::optional<int>> SlotOf(const std::vector<Command>& commands);

// "host:port" or a comma-separated list of seed nodes "h1:p1,h2:p2" (spaces
// around commas ignored). INVALID_ARGUMENT when empty or any part is not host:port.
absl::StatusOr<std::vector<Endpoint>> ParseSeeds(absl::string_view addresses);

// What a cluster node asked for instead of answering a command.
struct Redirect {
  enum class Kind { kNone, kMoved, kAsk, kRetry };
  Kind kind = Kind::kNone;
  int slot = -1;
  std::string address;
};

// From a command's error (StatusFromRedisError keeps Redis's text after
// "redis: "): MOVED/ASK with the slot and address, TRYAGAIN/CLUSTERDOWN as
// kRetry, anything else kNone. `asked_host` completes an address Redis gave
// as ":port".
Redirect RedirectOf(const absl::StatusOr<Reply>& reply, absl::string_view asked_host);

}  // namespace common::redis
