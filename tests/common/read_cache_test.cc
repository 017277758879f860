// The per-replica read cache (common/grpc/read_cache.h): staleness bounded by
// the ttl from the fetch's start (the clock injected), invalidation per group
// (fetches in flight then neither stored nor joined), single-flight of
// concurrent identical reads, and every bound hit. Fetches are answered by
// hand, as a Redis loop would answer them later.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc/read_cache.h"

namespace {

using namespace std::chrono_literals;
using Cache = common::grpc_util::ReadCache<std::string>;
using Clock = Cache::Clock;

// A fetch answered later by the test, and the answers the calls got.
struct Harness {
  explicit Harness(common::grpc_util::ReadCacheOptions options) : cache(options) {}
  // The deadline of a read that has none of its own.
  static constexpr Clock::time_point kNoDeadline = Clock::time_point::max() - 1h;

  // Starts a read of `key` (group "org"), returning the index of its answer slot.
  size_t Read(const std::string& key, Clock::time_point now,
              Clock::time_point deadline = kNoDeadline,
              const std::string& group = "org") {
    size_t index = answers.size();
    answers.emplace_back();
    cache.Get(
        group, key, now, deadline,
        [this](Cache::Fetched fetched) { pending.push_back(std::move(fetched)); },
        [this, index](absl::StatusOr<Cache::Value> got) {
          ASSERT_FALSE(answers[index].has_value()) << "answered twice";
          answers[index] = got.ok() ? absl::StatusOr<std::string>(**got)
                                    : absl::StatusOr<std::string>(got.status());
        });
    return index;
  }
  // A read of `key` in `group` with no deadline of its own.
  size_t ReadIn(const std::string& group, const std::string& key, Clock::time_point now) {
    return Read(key, now, kNoDeadline, group);
  }
  // Caches `value` for `key`: a read at `now` answered at once (none other pending).
  void Seed(const std::string& key, const std::string& value, Clock::time_point now,
            const std::string& group = "org") {
    ASSERT_TRUE(pending.empty()) << "Seed answers its own fetch";
    ReadIn(group, key, now);
    Answer(value);
  }
  // Answers the oldest fetch not yet answered.
  void Answer(absl::StatusOr<std::string> value) {
    ASSERT_FALSE(pending.empty());
    Cache::Fetched fetched = std::move(pending.front());
    pending.erase(pending.begin());
    std::move(fetched)(std::move(value));
  }

  Cache cache;
  std::vector<Cache::Fetched> pending;
  std::vector<std::optional<absl::StatusOr<std::string>>> answers;
};

// The value a call got, or what it got instead.
std::string Val(const std::optional<absl::StatusOr<std::string>>& answer) {
  if (!answer.has_value()) return "<no answer yet>";
  if (!answer->ok()) return "<error: " + answer->status().ToString() + ">";
  return **answer;
}

common::grpc_util::ReadCacheOptions Options(std::chrono::milliseconds ttl, size_t max_keys = 16,
                                            size_t max_waiters = 16) {
  common::grpc_util::ReadCacheOptions options;
  options.ttl = ttl;
  options.max_keys = max_keys;
  options.max_waiters_per_fetch = max_waiters;
  return options;
}

TEST(ReadCacheTest, ServesAValueWithoutFetchingOnlyWhileItsFetchStartedLessThanTtlAgo) {
  Harness h(Options(100ms));
  const Clock::time_point t0 = Clock::now();
  size_t first = h.Read("k", t0);
  ASSERT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("v1"));
  ASSERT_EQ(Val(h.answers[first]), "v1");

  // Within the ttl, counted from the fetch's start: no fetch.
  size_t hit = h.Read("k", t0 + 99ms);
  EXPECT_TRUE(h.pending.empty());
  ASSERT_TRUE(h.answers[hit].has_value());
  EXPECT_EQ(Val(h.answers[hit]), "v1");

  // At the ttl: fetched again, and the new value is what later reads see.
  size_t expired = h.Read("k", t0 + 100ms);
  ASSERT_EQ(h.pending.size(), 1u);
  EXPECT_FALSE(h.answers[expired].has_value());
  h.Answer(std::string("v2"));
  EXPECT_EQ(Val(h.answers[expired]), "v2");
  EXPECT_EQ(Val(h.answers[h.Read("k", t0 + 150ms)]), "v2");
  EXPECT_EQ(h.cache.stats().hits, 2u);
  EXPECT_EQ(h.cache.stats().fetches, 2u);
}

TEST(ReadCacheTest, ConcurrentIdenticalReadsShareOneFetchAndOtherKeysFetchTheirOwn) {
  Harness h(Options(100ms));
  const Clock::time_point t0 = Clock::now();
  std::vector<size_t> same;
  for (int i = 0; i < 5; ++i) same.push_back(h.Read("k", t0 + std::chrono::milliseconds(i)));
  size_t other = h.Read("other", t0);
  ASSERT_EQ(h.pending.size(), 2u);
  h.Answer(std::string("shared"));
  for (size_t i : same) EXPECT_EQ(Val(h.answers[i]), "shared");
  EXPECT_FALSE(h.answers[other].has_value());
  h.Answer(std::string("own"));
  EXPECT_EQ(Val(h.answers[other]), "own");
  EXPECT_EQ(h.cache.stats().joined, 4u);
}

TEST(ReadCacheTest, InvalidateDropsTheGroupsValuesAndItsFetchInFlightIsNeitherStoredNorJoined) {
  Harness h(Options(10s));
  const Clock::time_point t0 = Clock::now();
  h.Seed("k", "old", t0);
  h.Seed("k2", "org2's", t0, "org2");

  // A change: the next read fetches although the ttl has not passed.
  h.cache.Invalidate("org");
  size_t after = h.Read("k", t0 + 1ms);
  ASSERT_EQ(h.pending.size(), 1u);
  // Another org's value stays.
  EXPECT_EQ(Val(h.answers[h.ReadIn("org2", "k2", t0 + 1ms)]), "org2's");

  // Invalidated while that fetch is in flight: a new read does not join it...
  h.cache.Invalidate("org");
  size_t later = h.Read("k", t0 + 2ms);
  ASSERT_EQ(h.pending.size(), 2u);
  // ...and its answer (read before the change) is given to its own caller only.
  h.Answer(std::string("before the change"));
  EXPECT_EQ(Val(h.answers[after]), "before the change");
  EXPECT_FALSE(h.answers[later].has_value());
  h.Answer(std::string("after the change"));
  EXPECT_EQ(Val(h.answers[later]), "after the change");
  EXPECT_EQ(Val(h.answers[h.Read("k", t0 + 3ms)]), "after the change");
  EXPECT_TRUE(h.pending.empty());
}

// A writer's bracket: from BeginWrite the group's reads fetch on their own
// (a value from before is not served, nothing read meanwhile is stored or
// joined, even a fetch begun before); after EndWrite the cache serves again,
// and another group is served throughout.
TEST(ReadCacheTest, BetweenBeginWriteAndEndWriteTheGroupsReadsAreNeitherServedNorStored) {
  Harness h(Options(10s));
  const Clock::time_point t0 = Clock::now();
  h.Seed("k", "before", t0);
  h.Seed("k2", "org2's", t0, "org2");
  size_t in_flight = h.Read("k3", t0);  // begun before the writes

  h.cache.BeginWrite("org");
  h.cache.BeginWrite("org");  // nested: a second batch of the org
  size_t during = h.Read("k", t0 + 1ms);
  size_t during_too = h.Read("k", t0 + 1ms);
  ASSERT_EQ(h.pending.size(), 3u) << "each read during the writes fetches alone";
  EXPECT_EQ(Val(h.answers[h.ReadIn("org2", "k2", t0 + 1ms)]), "org2's");
  h.Answer(std::string("k3 before"));
  EXPECT_EQ(Val(h.answers[in_flight]), "k3 before");
  h.Answer(std::string("during 1"));
  h.Answer(std::string("during 2"));
  EXPECT_EQ(Val(h.answers[during]), "during 1");
  EXPECT_EQ(Val(h.answers[during_too]), "during 2");
  h.cache.EndWrite("org");
  h.Read("k", t0 + 2ms);
  EXPECT_EQ(h.pending.size(), 1u) << "one write of the org still open";
  h.Answer(std::string("still writing"));

  h.cache.EndWrite("org");
  size_t after = h.Read("k", t0 + 3ms);
  size_t k3 = h.Read("k3", t0 + 3ms);
  ASSERT_EQ(h.pending.size(), 2u) << "nothing read before or during the writes is served";
  h.Answer(std::string("after"));
  h.Answer(std::string("k3 after"));
  EXPECT_EQ(Val(h.answers[after]), "after");
  EXPECT_EQ(Val(h.answers[k3]), "k3 after");
  EXPECT_EQ(Val(h.answers[h.Read("k", t0 + 4ms)]), "after");
  EXPECT_TRUE(h.pending.empty()) << "served again once the writes ended";
}

TEST(ReadCacheTest, AnErrorReachesEveryWaiterAndIsNotCached) {
  Harness h(Options(10s));
  const Clock::time_point t0 = Clock::now();
  size_t a = h.Read("k", t0);
  size_t b = h.Read("k", t0);
  h.Answer(absl::UnavailableError("redis down"));
  EXPECT_EQ(h.answers[a]->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(h.answers[b]->status().code(), absl::StatusCode::kUnavailable);
  size_t again = h.Read("k", t0 + 1ms);
  ASSERT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("back"));
  EXPECT_EQ(Val(h.answers[again]), "back");
}

TEST(ReadCacheTest, AReaderWithAnEarlierDeadlineThanTheFetchInFlightFetchesAlone) {
  Harness h(Options(10s));
  const Clock::time_point t0 = Clock::now();
  size_t leader = h.Read("k", t0, t0 + 2s);
  size_t hurried = h.Read("k", t0, t0 + 1s);  // would wait past its deadline
  ASSERT_EQ(h.pending.size(), 2u);
  h.Answer(std::string("leader's"));
  h.Answer(std::string("its own"));
  EXPECT_EQ(Val(h.answers[leader]), "leader's");
  EXPECT_EQ(Val(h.answers[hurried]), "its own");
  EXPECT_EQ(h.cache.stats().uncached, 1u);
}

TEST(ReadCacheTest, PastMaxKeysAReadFetchesUncachedUntilExpiredValuesArePurged) {
  Harness h(Options(100ms, /*max_keys=*/2));
  const Clock::time_point t0 = Clock::now();
  h.Read("a", t0);
  h.Read("b", t0);
  h.Answer(std::string("A"));
  h.Answer(std::string("B"));
  EXPECT_EQ(h.cache.size(), 2u);
  size_t third = h.Read("c", t0 + 1ms);
  h.Answer(std::string("C"));
  EXPECT_EQ(Val(h.answers[third]), "C");
  EXPECT_EQ(h.cache.size(), 2u);
  EXPECT_EQ(h.cache.stats().uncached, 1u);
  // Not cached: read again, fetched again.
  h.Read("c", t0 + 2ms);
  ASSERT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("C"));
  // Once a and b expired they are purged and c takes a slot.
  h.Read("c", t0 + 200ms);
  h.Answer(std::string("C2"));
  EXPECT_EQ(Val(h.answers[h.Read("c", t0 + 201ms)]), "C2");
  EXPECT_TRUE(h.pending.empty());
  EXPECT_LE(h.cache.size(), 2u);
}

TEST(ReadCacheTest, PastMaxWaitersAReadFetchesAlone) {
  Harness h(Options(10s, 16, /*max_waiters=*/2));
  const Clock::time_point t0 = Clock::now();
  h.Read("k", t0);
  h.Read("k", t0);   // joins: 2 waiters
  h.Read("k", t0);   // the bound: alone
  EXPECT_EQ(h.pending.size(), 2u);
  EXPECT_EQ(h.cache.stats().joined, 1u);
  EXPECT_EQ(h.cache.stats().uncached, 1u);
  h.Answer(std::string("x"));
  h.Answer(std::string("y"));
  for (const auto& answer : h.answers) EXPECT_TRUE(answer.has_value());
}

TEST(ReadCacheTest, ZeroTtlSharesAFetchInFlightAndKeepsNothingOnceAnswered) {
  Harness h(Options(0ms));
  const Clock::time_point t0 = Clock::now();
  size_t a = h.Read("k", t0);
  size_t b = h.Read("k", t0);  // arrives while a's read is in flight
  ASSERT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("1"));
  EXPECT_EQ(Val(h.answers[a]), "1");
  EXPECT_EQ(Val(h.answers[b]), "1");
  EXPECT_EQ(h.cache.size(), 0u);
  // The same instant, after the answer: read again.
  size_t c = h.Read("k", t0);
  ASSERT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("2"));
  EXPECT_EQ(Val(h.answers[c]), "2");
  EXPECT_EQ(h.cache.stats().hits, 0u);
}

TEST(ReadCacheTest, AFetchThatDropsItsCallbackAnswersEveryWaiterWithInternal) {
  Harness h(Options(10s));
  const Clock::time_point t0 = Clock::now();
  size_t a = h.Read("k", t0);
  size_t b = h.Read("k", t0);
  h.pending.clear();  // the fetch forgot to answer
  EXPECT_EQ(h.answers[a]->status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(h.answers[b]->status().code(), absl::StatusCode::kInternal);
  // The key is fetched again, not stuck in flight.
  h.Read("k", t0 + 1ms);
  EXPECT_EQ(h.pending.size(), 1u);
  h.Answer(std::string("ok"));
}

}  // namespace
