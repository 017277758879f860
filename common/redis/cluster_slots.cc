#include "common/redis/cluster_slots.h"

#include <algorithm>
#include <array>

#include "absl/container/flat_hash_map.h"
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

// Where a command's keys are.
enum class KeyRule {
  kNone,         // PING, INFO, SCRIPT, MULTI, ...
  kFirst,        // GET k, SET k v, HSET k ...: the usual command
  kAll,          // DEL k1 k2 ...
  kPairs,        // MSET k1 v1 k2 v2
  kFirstTwo,     // SMOVE src dst member, LMOVE, COPY
  kAllButLast,   // BLPOP k1 k2 timeout
  kNumKeysAt2,   // EVAL script numkeys k...
  kDestNumKeys,  // ZUNIONSTORE dest numkeys k...
  kNumKeysAt1,   // ZUNION numkeys k...
  kStreams,      // XREAD ... STREAMS s1 s2 id1 id2
  kSecond,       // OBJECT ENCODING k, XINFO STREAM k, XGROUP CREATE k
};

const absl::flat_hash_map<std::string, KeyRule>& Rules() {
  static const auto* rules = [] {
    auto* map = new absl::flat_hash_map<std::string, KeyRule>;
    for (const char* name :
         {"PING", "ECHO", "INFO", "SCRIPT", "CLUSTER", "TIME", "DBSIZE", "FLUSHALL", "FLUSHDB",
          "CONFIG", "CLIENT", "COMMAND", "AUTH", "HELLO", "SELECT", "ASKING", "READONLY",
          "READWRITE", "WAIT", "MULTI", "EXEC", "DISCARD", "UNWATCH", "SLOWLOG", "LASTSAVE",
          "SAVE", "BGSAVE", "BGREWRITEAOF", "ROLE", "LATENCY", "ACL", "FUNCTION", "RANDOMKEY",
          "SCAN", "KEYS", "PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "DEBUG", "MONITOR", "SHUTDOWN",
          "SWAPDB", "MODULE", "LOLWUT", "RESET"}) {
      (*map)[name] = KeyRule::kNone;
    }
    for (const char* name : {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}) {
      (*map)[name] = KeyRule::kNumKeysAt2;
    }
    for (const char* name : {"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH", "WATCH", "SINTER",
                             "SUNION", "SDIFF", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE",
                             "PFCOUNT", "PFMERGE", "RENAME", "RENAMENX", "RPOPLPUSH"}) {
      (*map)[name] = KeyRule::kAll;
    }
    for (const char* name : {"MSET", "MSETNX"}) (*map)[name] = KeyRule::kPairs;
    for (const char* name : {"SMOVE", "LMOVE", "BLMOVE", "COPY", "BRPOPLPUSH"}) {
      (*map)[name] = KeyRule::kFirstTwo;
    }
    for (const char* name : {"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"}) {
      (*map)[name] = KeyRule::kAllButLast;
    }
    for (const char* name : {"ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"}) {
      (*map)[name] = KeyRule::kDestNumKeys;
    }
    for (const char* name :
         {"ZUNION", "ZINTER", "ZDIFF", "SINTERCARD", "ZINTERCARD", "LMPOP", "ZMPOP"}) {
      (*map)[name] = KeyRule::kNumKeysAt1;
    }
    for (const char* name : {"XREAD", "XREADGROUP"}) (*map)[name] = KeyRule::kStreams;
    for (const char* name : {"OBJECT", "MEMORY", "XINFO", "XGROUP"}) {
      (*map)[name] = KeyRule::kSecond;
    }
    return map;
  }();
  return *rules;
}

KeyRule RuleOf(absl::string_view name) {
  char upper[24];
  if (name.size() >= sizeof(upper)) return KeyRule::kFirst;
  for (size_t i = 0; i < name.size(); ++i) upper[i] = absl::ascii_toupper(name[i]);
  auto it = Rules().find(absl::string_view(upper, name.size()));
  return it == Rules().end() ? KeyRule::kFirst : it->second;
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
  const size_t n = command.size();
  auto range = [&](size_t first, size_t end, size_t step) {
    for (size_t i = first; i < end && i < n; i += step) keys.push_back(command[i]);
  };
  size_t numkeys = 0;
  auto numkeys_at = [&](size_t at) {
    return n > at && absl::SimpleAtoi(command[at], &numkeys) && (numkeys = std::min(numkeys, n), true);
  };
  switch (RuleOf(command[0])) {
    case KeyRule::kNone:
      break;
    case KeyRule::kFirst:
      range(1, 2, 1);
      break;
    case KeyRule::kAll:
      range(1, n, 1);
      break;
    case KeyRule::kPairs:
      range(1, n, 2);
      break;
    case KeyRule::kFirstTwo:
      range(1, 3, 1);
      break;
    case KeyRule::kAllButLast:
      range(1, n - 1, 1);
      break;
    case KeyRule::kNumKeysAt2:
      if (numkeys_at(2)) range(3, 3 + numkeys, 1);
      break;
    case KeyRule::kDestNumKeys:
      range(1, 2, 1);
      if (numkeys_at(2)) range(3, 3 + numkeys, 1);
      break;
    case KeyRule::kNumKeysAt1:
      if (numkeys_at(1)) range(2, 2 + numkeys, 1);
      break;
    case KeyRule::kStreams:
      for (size_t i = 1; i < n; ++i) {
        if (Is(command[i], "STREAMS")) {
          size_t rest = n - i - 1;
          range(i + 1, i + 1 + rest / 2, 1);
          break;
        }
      }
      break;
    case KeyRule::kSecond:
      range(2, 3, 1);
      break;
  }
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

Redirect RedirectOf(const absl::StatusOr<Reply>& reply, absl::string_view asked_host) {
  Redirect redirect;
  if (reply.ok()) return redirect;
  absl::string_view message = reply.status().message();
  if (!absl::ConsumePrefix(&message, "redis: ")) return redirect;
  if (absl::StartsWith(message, "TRYAGAIN") || absl::StartsWith(message, "CLUSTERDOWN")) {
    redirect.kind = Redirect::Kind::kRetry;
    return redirect;
  }
  Redirect::Kind kind = Redirect::Kind::kNone;
  if (absl::ConsumePrefix(&message, "MOVED ")) kind = Redirect::Kind::kMoved;
  if (absl::ConsumePrefix(&message, "ASK ")) kind = Redirect::Kind::kAsk;
  if (kind == Redirect::Kind::kNone) return redirect;
  std::vector<absl::string_view> parts = absl::StrSplit(message, ' ');
  int slot = -1;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &slot) || slot < 0 ||
      slot >= kClusterSlots || parts[1].empty()) {
    return redirect;  // not a redirect we understand: the error stays
  }
  redirect.kind = kind;
  redirect.slot = slot;
  redirect.address = absl::StartsWith(parts[1], ":") ? absl::StrCat(asked_host, parts[1])
                                                      : std::string(parts[1]);
  return redirect;
}

}  // namespace common::redis
