#include "common/redis/redis_client.h"

#include <gtest/gtest.h>

#include <thread>

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

}  // namespace
}  // namespace common::redis
