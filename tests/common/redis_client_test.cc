#include "common/redis/redis_client.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "tests/harness/process.h"

namespace common::redis {
namespace {

PoolOptions OptionsFor(const harness::RedisServer& server) {
  PoolOptions options;
  options.endpoint.port = server.port();
  options.size = 2;
  options.timeout = std::chrono::milliseconds(500);
  return options;
}

TEST(RedisClientTest, RunsCommandsAndPipelines) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  ASSERT_TRUE(pool.Run({"SET", "k", "v"}).ok());
  auto replies = pool.Pipeline({{"INCR", "n"}, {"INCR", "n"}, {"GET", "k"}, {"HGET", "k", "f"}});
  ASSERT_TRUE(replies.ok());
  EXPECT_EQ(*(*replies)[1]->AsInteger(), 2);
  EXPECT_EQ((*replies)[2]->str, "v");
  // A wrong-type error stays in its slot; the rest of the pipeline succeeds.
  EXPECT_EQ((*replies)[3].status().code(), absl::StatusCode::kInternal);
}

TEST(RedisClientTest, ScriptIsReloadedAfterScriptFlush) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  Script script("echo", "return ARGV[1]");
  ASSERT_EQ(pool.Eval(script, {}, {"a"})->str, "a");
  ASSERT_TRUE(pool.Run({"SCRIPT", "FLUSH"}).ok());
  ASSERT_EQ(pool.Eval(script, {}, {"b"})->str, "b");
}

TEST(RedisClientTest, ScriptErrorNamingACodeBecomesThatStatus) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  Script script("fail", "return redis.error_reply('RESOURCE_EXHAUSTED allowance: 5 left')");
  absl::StatusOr<Reply> reply = pool.Eval(script, {}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(reply.status().message(), "allowance: 5 left");
}

// Slot migration routes a script by its declared keys only, so a key built
// inside the script would be read on whichever node the script landed on.
// The guard makes such a key an error the first time any test runs the path.
TEST(RedisClientTest, Script_TouchingAKeyNotInKEYSFailsBeforeTheCall) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  Script sneaky("sneaky", "redis.call('SET', KEYS[1], 1) return redis.call('SET', KEYS[1] .. ':x', 1)");
  absl::StatusOr<Reply> reply = pool.Eval(sneaky, {"org:{a}:k"}, {});
  ASSERT_FALSE(reply.ok());
  EXPECT_TRUE(absl::StrContains(reply.status().message(), "UNDECLARED_KEY")) << reply.status();
  EXPECT_TRUE(absl::StrContains(reply.status().message(), "org:{a}:k:x")) << reply.status();
  EXPECT_EQ(pool.Run({"EXISTS", "org:{a}:k:x"})->integer, 0);
  // redis.pcall is guarded the same way.
  Script sneaky_pcall("sneaky_pcall", "return redis.pcall('GET', 'elsewhere')");
  EXPECT_FALSE(pool.Eval(sneaky_pcall, {"org:{a}:k"}, {}).ok());
}

TEST(RedisClientTest, Script_DeclaredKeysPassEveryKeyPositionOfMultiKeyCommands) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  Script multi("multi",
               "redis.call('ZADD', KEYS[1], 1, 'a') redis.call('ZADD', KEYS[2], 2, 'a') "
               "redis.call('ZUNIONSTORE', KEYS[3], 2, KEYS[1], KEYS[2]) "
               "redis.call('RENAME', KEYS[3], KEYS[4]) redis.call('MSET', KEYS[5], 1, KEYS[6], 2) "
               "local t = redis.call('TIME') "
               "return {redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[4]), redis.call('ZSCORE', KEYS[4], 'a'), "
               "redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[6])}");
  absl::StatusOr<Reply> reply = pool.Eval(
      multi, {"{a}1", "{a}2", "{a}3", "{a}4", "{a}5", "{a}6"}, {});
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->elements[0].integer, 3);
  EXPECT_EQ(reply->elements[1].str, "3");
  EXPECT_EQ(reply->elements[2].integer, 5);
  // A source key of ZUNIONSTORE left out of KEYS is caught too.
  Script union_undeclared("union_undeclared",
                          "return redis.call('ZUNIONSTORE', KEYS[1], 2, KEYS[1], '{a}other')");
  EXPECT_FALSE(pool.Eval(union_undeclared, {"{a}1"}, {}).ok());
  // Subcommand first, key second: XGROUP CREATE <key>.
  Script group("group", "return redis.pcall('XGROUP', 'CREATE', KEYS[1], 'g', '$', 'MKSTREAM')");
  EXPECT_TRUE(pool.Eval(group, {"{a}stream"}, {}).ok());
  Script group_undeclared("group_undeclared",
                          "return redis.pcall('XGROUP', 'CREATE', '{a}other', 'g', '$', 'MKSTREAM')");
  absl::StatusOr<Reply> refused = pool.Eval(group_undeclared, {"{a}stream"}, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "UNDECLARED_KEY")) << refused.status();
}

// A full Redis (maxmemory) or a node demoted by a failover is a server state
// that clears, not a bad command: UNAVAILABLE, which the leaderboard consumer
// waits out instead of dead-lettering every org's entries.
TEST(RedisClientTest, OutOfMemoryAndReadOnlyAreUnavailableNotInternal) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  ASSERT_TRUE(pool.Run({"SET", "filler", std::string(4096, 'x')}).ok());
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "maxmemory", "1"}).ok());
  absl::StatusOr<Reply> full = pool.Run({"SET", "another", "value"});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kUnavailable) << full.status();
  Script write("write", "return redis.call('SET', KEYS[1], 'v')");
  absl::StatusOr<Reply> scripted = pool.Eval(write, {"k"}, {});
  ASSERT_FALSE(scripted.ok());
  EXPECT_EQ(scripted.status().code(), absl::StatusCode::kUnavailable) << scripted.status();
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "maxmemory", "0"}).ok());

  EXPECT_EQ(StatusFromRedisError("READONLY You can't write against a read only replica.").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromRedisError("ERR unknown command 'FOO'").code(),
            absl::StatusCode::kInternal);
}

TEST(RedisClientTest, ReconnectsAfterRedisRestart) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));
  ASSERT_TRUE(pool.Run({"PING"}).ok());
  server.Restart();
  // The first call may see the dropped connection; later ones reconnect.
  absl::StatusOr<Reply> reply = pool.Run({"PING"});
  for (int attempt = 0; attempt < 50 && !reply.ok(); ++attempt) {
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reply = pool.Run({"PING"});
  }
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->str, "PONG");
}

TEST(RedisClientTest, UnreachableRedisIsUnavailable) {
  PoolOptions options;
  options.endpoint.port = harness::FreePort();
  Pool pool(options);
  absl::StatusOr<Reply> reply = pool.Run({"PING"});
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable);
}

// Standalone is detected on first use and served as before: one server, no
// slot checks, no extra connection for the detection, no topology reads.
TEST(RedisClientTest, StandaloneIsDetectedAndServedAsBefore) {
  harness::RedisServer server;
  Connection observer(OptionsFor(server).endpoint, std::chrono::seconds(5));
  auto connections_received = [&] {
    absl::StatusOr<Reply> info = observer.Run({"INFO", "stats"});
    EXPECT_TRUE(info.ok()) << info.status();
    for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
      long long total = 0;
      if (absl::ConsumePrefix(&line, "total_connections_received:") &&
          absl::SimpleAtoi(line, &total)) {
        return total;
      }
    }
    return -1LL;
  };
  const long long before = connections_received();
  Pool pool(OptionsFor(server));
  EXPECT_EQ(pool.mode(), Pool::Mode::kStandalone);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(pool.Run({"INCR", "n"}).ok());
  EXPECT_EQ(connections_received(), before + 1) << "the detection's connection serves the calls";
  EXPECT_EQ(pool.Primaries(), std::vector<std::string>({server.address()}));
  EXPECT_EQ(pool.NodeForSlot(1234), server.address());
  // Keys of two slots in one call: fine on one server, as always.
  auto replies = pool.Pipeline({{"SET", "{a}:x", "1"}, {"SET", "{b}:x", "2"}});
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_TRUE((*replies)[1].ok());
  absl::StatusOr<Reply> on = pool.RunOn(server.address(), {"GET", "{b}:x"});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_EQ(on->str, "2");
  EXPECT_EQ(pool.stats().topology_refreshes, 0u);
}

TEST(RedisClientTest, ASeedListFindsTheStandaloneServerThatAnswers) {
  harness::RedisServer server;
  absl::StatusOr<PoolOptions> options = PoolOptionsFor(
      "127.0.0.1:" + std::to_string(harness::FreePort()) + ", " + server.address());
  ASSERT_TRUE(options.ok()) << options.status();
  options->timeout = std::chrono::milliseconds(500);
  Pool pool(*options);
  EXPECT_EQ(pool.mode(), Pool::Mode::kStandalone);
  EXPECT_EQ(pool.Primaries(), std::vector<std::string>({server.address()}));
  ASSERT_TRUE(pool.Run({"SET", "k", "v"}).ok());
  EXPECT_EQ(pool.Run({"GET", "k"})->str, "v");
  EXPECT_EQ(PoolOptionsFor("127.0.0.1").status().code(), absl::StatusCode::kInvalidArgument);
}

// A blocking command longer than the pool's timeout: RunWithTimeout.
TEST(RedisClientTest, RunWithTimeoutServesABlockingCommandLongerThanThePoolTimeout) {
  harness::RedisServer server;
  Pool pool(OptionsFor(server));  // 500 ms
  absl::StatusOr<Reply> waited =
      pool.RunWithTimeout({"BLPOP", "nothing", "1"}, std::chrono::seconds(10));
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_TRUE(waited->is_nil());
  // The connection is back on the pool's own timeout afterwards.
  ASSERT_TRUE(pool.Run({"PING"}).ok());
}

}  // namespace
}  // namespace common::redis
