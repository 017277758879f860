#include "common/redis/cluster_slots.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace common::redis {
namespace {

constexpr std::array<uint16_t, 256> MakeCrcTable() {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    uint16_t crc = static_cast<uint16_t>(i << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint16_t, 256> kCrcTable = MakeCrcTable();

bool Is(absl::string_view name, absl::string_view upper) {
  return absl::EqualsIgnoreCase(name, upper);
}

}  // namespace

uint16_t Crc16(absl::string_view data) {
  uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc = static_cast<uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ byte) & 0xff]);
  }
  return crc;
}

int KeySlot(absl::string_view key) {
  size_t open = key.find('{');
  if (open != absl::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != absl::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & (kClusterSlots - 1);
}

std::vector<absl::string_view> KeysOf(const Command& command) {
  std::vector<absl::string_view> keys;
  if (command.empty()) return keys;
  const std::string& name = command[0];
  const size_t n = command.size();
  auto range = [&](size_t first, size_t end, size_t step) {
    for (size_t i = first; i < end && i < n; i += step) keys.push_back(command[i]);
  };
  for (absl::string_view keyless :
       {"PING", "ECHO", "INFO", "SCRIPT", "CLUSTER", "TIME", "DBSIZE", "FLUSHALL", "FLUSHDB",
        "CONFIG", "CLIENT", "COMMAND", "AUTH", "HELLO", "SELECT", "ASKING", "READONLY",
        "READWRITE", "WAIT", "MULTI", "EXEC", "DISCARD", "UNWATCH", "SLOWLOG", "LASTSAVE",
        "SAVE", "BGSAVE", "BGREWRITEAOF", "ROLE", "LATENCY", "ACL", "FUNCTION", "RANDOMKEY",
        "SCAN", "KEYS", "PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "DEBUG", "MONITOR", "SHUTDOWN",
        "SWAPDB", "MODULE", "LOLWUT", "RESET"}) {
    if (Is(name, keyless)) return keys;
  }
  if (Is(name, "EVAL") || Is(name, "EVALSHA") || Is(name, "EVAL_RO") || Is(name, "EVALSHA_RO") ||
      Is(name, "FCALL") || Is(name, "FCALL_RO")) {
    size_t numkeys = 0;
    if (n > 2 && absl::SimpleAtoi(command[2], &numkeys)) range(3, 3 + numkeys, 1);
    return keys;
  }
  for (absl::string_view all : {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "WATCH", "SINTER",
                                "SUNION", "SDIFF", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE",
                                "PFCOUNT", "PFMERGE", "RENAME", "RENAMENX", "RPOPLPUSH"}) {
    if (Is(name, all)) {
      range(1, n, 1);
      return keys;
    }
  }
  if (Is(name, "MSET") || Is(name, "MSETNX")) {
    range(1, n, 2);
    return keys;
  }
  if (Is(name, "SMOVE") || Is(name, "LMOVE") || Is(name, "BLMOVE") || Is(name, "COPY") ||
      Is(name, "BRPOPLPUSH")) {
    range(1, 3, 1);
    return keys;
  }
  if (Is(name, "BLPOP") || Is(name, "BRPOP") || Is(name, "BZPOPMIN") || Is(name, "BZPOPMAX")) {
    range(1, n - 1, 1);
    return keys;
  }
  if (Is(name, "ZUNIONSTORE") || Is(name, "ZINTERSTORE") || Is(name, "ZDIFFSTORE")) {
    range(1, 2, 1);
    size_t numkeys = 0;
    if (n > 2 && absl::SimpleAtoi(command[2], &numkeys)) range(3, 3 + numkeys, 1);
    return keys;
  }
  if (Is(name, "ZUNION") || Is(name, "ZINTER") || Is(name, "ZDIFF") || Is(name, "SINTERCARD") ||
      Is(name, "ZINTERCARD") || Is(name, "LMPOP") || Is(name, "ZMPOP")) {
    size_t numkeys = 0;
    if (n > 1 && absl::SimpleAtoi(command[1], &numkeys)) range(2, 2 + numkeys, 1);
    return keys;
  }
  if (Is(name, "XREAD") || Is(name, "XREADGROUP")) {
    for (size_t i = 1; i < n; ++i) {
      if (Is(command[i], "STREAMS")) {
        size_t rest = n - i - 1;
        range(i + 1, i + 1 + rest / 2, 1);
        break;
      }
    }
    return keys;
  }
  if (Is(name, "OBJECT") || Is(name, "MEMORY") || Is(name, "XINFO") || Is(name, "XGROUP")) {
    range(2, 3, 1);
    return keys;
  }
  range(1, 2, 1);  // the usual single-key command: GET, SET, HSET, ZADD, XADD, ...
  return keys;
}

absl::StatusOr<std::optional<int>> SlotOf(const std::vector<Command>& commands) {
  std::optional<int> slot;
  absl::string_view first_key;
  for (const Command& command : commands) {
    for (absl::string_view key : KeysOf(command)) {
      int key_slot = KeySlot(key);
      if (!slot.has_value()) {
        slot = key_slot;
        first_key = key;
      } else if (*slot != key_slot) {
        return absl::InvalidArgumentError(absl::StrCat(
            "keys span cluster slots (CROSSSLOT, refused before sending): '", first_key,
            "' is in slot ", *slot, ", '", key, "' in slot ", key_slot,
            "; tag every key of one call with the same {hash tag}"));
      }
    }
  }
  return slot;
}

absl::StatusOr<std::vector<Endpoint>> ParseSeeds(absl::string_view addresses) {
  std::vector<Endpoint> seeds;
  for (absl::string_view part : absl::StrSplit(addresses, ',')) {
    part = absl::StripAsciiWhitespace(part);
    absl::StatusOr<Endpoint> endpoint = ParseEndpoint(part);
    if (!endpoint.ok()) return endpoint.status();
    seeds.push_back(*std::move(endpoint));
  }
  if (seeds.empty()) return absl::InvalidArgumentError("no redis address given");
  return seeds;
}

}  // namespace common::redis
