// Redis memory of everything one org keeps: every key of the org's `{org}`
// hash-tag slot, found with SCAN MATCH and sized with MEMORY USAGE (SAMPLES 0,
// i.e. every element counted). Per key rather than used_memory deltas: the
// bench's Redis also holds other orgs, the services' clients, script caches
// and allocator slack that move while a scenario runs, and only per-key sizes
// can be split by what they are (records, feeds, streams, boards, archive).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "bench/bench_env.h"

namespace bench {

struct KeyClassMemory {
  int64_t keys = 0;
  int64_t bytes = 0;
};

struct SlotMemory {
  int64_t keys = 0;
  int64_t bytes = 0;
  // By key class: the key's prefix and its first segment after the tag,
  // e.g. "kudos:{acme}:k:123" -> "kudos:k", "lb:{acme}:points:..." -> "lb:points".
  std::map<std::string, KeyClassMemory> by_class;
  // Keys whose expiry lies at or before `as_of` (when given): they would be
  // gone by then, so they are counted here and not in keys/bytes.
  int64_t expired_by_as_of_keys = 0;
  int64_t expired_by_as_of_bytes = 0;

  // Bytes of the classes starting with `prefix` (e.g. "lb:").
  int64_t BytesWithPrefix(const std::string& prefix) const;
  std::string Json() const;
};

// "kudos:{acme}:k:123" -> "kudos:k"; keys without a tag keep their text up to
// the second ':'.
std::string KeyClass(const std::string& key);

// Every key tagged `{org}`. `as_of_unix_ms`: a simulated "now" (e.g. a sweep
// run 500 days ahead): keys that would have expired by then are set apart.
// Bounded: at most `max_keys` keys (throws beyond, so a figure never silently
// covers part of the slot).
SlotMemory MeasureSlot(Redis& redis, const std::string& org,
                       std::optional<int64_t> as_of_unix_ms = std::nullopt,
                       int64_t max_keys = 5000000);

}  // namespace bench
