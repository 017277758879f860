#include "bench/slot_memory.h"

#include <stdexcept>
#include <unordered_set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bench {

std::string KeyClass(const std::string& key) {
  const size_t open = key.find('{');
  const size_t close = open == std::string::npos ? std::string::npos : key.find('}', open);
  if (close == std::string::npos) {
    const size_t first = key.find(':');
    const size_t second = first == std::string::npos ? first : key.find(':', first + 1);
    return key.substr(0, second);
  }
  std::string prefix = key.substr(0, open);  // "kudos:"
  if (!prefix.empty() && prefix.back() == ':') prefix.pop_back();
  if (close + 1 >= key.size() || key[close + 1] != ':') return prefix;
  const size_t start = close + 2;
  const size_t end = key.find(':', start);
  return absl::StrCat(prefix, ":", key.substr(start, end == std::string::npos ? end : end - start));
}

int64_t SlotMemory::BytesWithPrefix(const std::string& prefix) const {
  int64_t total = 0;
  for (const auto& [name, memory] : by_class) {
    if (absl::StartsWith(name, prefix)) total += memory.bytes;
  }
  return total;
}

std::string SlotMemory::Json() const {
  bench::Json classes;
  for (const auto& [name, memory] : by_class) {
    classes.Raw(name, bench::Json().Int("keys", memory.keys).Int("bytes", memory.bytes).str());
  }
  return bench::Json()
      .Int("keys", keys)
      .Int("bytes", bytes)
      .Int("expired_by_as_of_keys", expired_by_as_of_keys)
      .Int("expired_by_as_of_bytes", expired_by_as_of_bytes)
      .Raw("by_class", classes.str())
      .str();
}

namespace {

// MEMORY USAGE and PEXPIRETIME of each key, pipelined.
void Measure(Redis& redis, const std::vector<std::string>& keys, std::optional<int64_t> as_of_unix_ms,
             SlotMemory& out) {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(keys.size() * 2);
  for (const std::string& key : keys) {
    commands.push_back({"MEMORY", "USAGE", key, "SAMPLES", "0"});
    commands.push_back({"PEXPIRETIME", key});
  }
  std::vector<RedisReply> replies = redis.Pipeline(commands);
  for (size_t i = 0; i < keys.size(); ++i) {
    const RedisReply& usage = replies[2 * i];
    const RedisReply& expiry = replies[2 * i + 1];
    if (usage.is_error() || expiry.is_error()) {
      throw std::runtime_error(absl::StrCat("MEMORY USAGE/PEXPIRETIME ", keys[i], ": ", usage.str,
                                            expiry.str));
    }
    if (usage.type == REDIS_REPLY_NIL) continue;  // gone since SCAN returned it
    // PEXPIRETIME: -1 no expiry, -2 no key.
    const bool expired_by_then =
        as_of_unix_ms && expiry.integer >= 0 && expiry.integer <= *as_of_unix_ms;
    if (expired_by_then) {
      ++out.expired_by_as_of_keys;
      out.expired_by_as_of_bytes += usage.integer;
      continue;
    }
    ++out.keys;
    out.bytes += usage.integer;
    KeyClassMemory& c = out.by_class[KeyClass(keys[i])];
    ++c.keys;
    c.bytes += usage.integer;
  }
}

}  // namespace

SlotMemory MeasureSlot(Redis& redis, const std::string& org, std::optional<int64_t> as_of_unix_ms,
                       int64_t max_keys) {
  SlotMemory out;
  // Braces are literal in SCAN's glob; only `{org}` itself matches (not `{org2}`).
  const std::string pattern = absl::StrCat("*{", org, "}*");
  std::string cursor = "0";
  // SCAN may return a key more than once (while the keyspace rehashes).
  std::unordered_set<std::string> seen;
  do {
    RedisReply page = redis.Run({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (page.is_error() || page.elements.size() != 2) {
      throw std::runtime_error("SCAN: " + page.str);
    }
    cursor = page.elements[0].str;
    std::vector<std::string> keys;
    for (const RedisReply& key : page.elements[1].elements) {
      if (seen.insert(key.str).second) keys.push_back(key.str);
    }
    if (static_cast<int64_t>(seen.size()) > max_keys) {
      throw std::runtime_error(absl::StrCat("org ", org, " has more than ", max_keys, " keys"));
    }
    Measure(redis, keys, as_of_unix_ms, out);
  } while (cursor != "0");
  return out;
}

}  // namespace bench
