// AsyncClient against a real standalone redis-server on loopback. No timed
// assertions: deadlines only bound failures (harness::Eventually).
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "common/redis/async_client.h"
#include "common/redis/async_flags.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"

ABSL_DECLARE_FLAG(std::string, redis);

namespace common::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

AsyncClientOptions OptionsFor(const harness::RedisServer& server, int loops = 1,
                              Credentials credentials = {}) {
  absl::StatusOr<AsyncClientOptions> options =
      AsyncClientOptionsFor(server.address(), std::move(credentials));
  EXPECT_TRUE(options.ok());
  options->loops = loops;
  return *options;
}

Connection Direct(const harness::RedisServer& server, Credentials credentials = {}) {
  Endpoint endpoint;
  endpoint.port = server.port();
  endpoint.credentials = std::move(credentials);
  return Connection(endpoint, seconds(10));
}

long long InfoField(Connection& connection, const std::string& section, absl::string_view field) {
  absl::StatusOr<Reply> info = connection.Run({"INFO", section});
  if (!info.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    if (absl::ConsumePrefix(&line, field) && absl::ConsumePrefix(&line, ":")) {
      long long value = -1;
      if (absl::SimpleAtoi(line, &value)) return value;
    }
  }
  return -1;
}

// SIGCONT on scope exit, so a failed assertion never leaves Redis stopped.
class Paused {
 public:
  explicit Paused(pid_t pid) : pid_(pid) { kill(pid_, SIGSTOP); }
  ~Paused() { Resume(); }
  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

// Collects the answers of many asynchronous calls.
class Answers {
 public:
  explicit Answers(int expected) : expected_(expected) {}
  ReplyCallback Callback() {
    return [this](absl::StatusOr<Reply> reply) {
      std::lock_guard<std::mutex> lock(mu_);
      replies_.push_back(std::move(reply));
      if (static_cast<int>(replies_.size()) == expected_) done_.set_value();
    };
  }
  // Generous bound for a failure; a passing run waits only for the answers.
  bool Wait() { return done_.get_future().wait_for(seconds(60)) == std::future_status::ready; }
  std::vector<absl::StatusOr<Reply>> replies() {
    std::lock_guard<std::mutex> lock(mu_);
    return replies_;
  }

 private:
  int expected_;
  std::mutex mu_;
  std::vector<absl::StatusOr<Reply>> replies_;
  std::promise<void> done_;
};

TEST(AsyncClientTest, DetectsStandaloneAndMapsRepliesAsThePool) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server));
  EXPECT_EQ(client.mode(), AsyncClient::Mode::kStandalone);
  ASSERT_TRUE(client.RunSync({"SET", "k", "v"}, seconds(10)).ok());
  EXPECT_EQ(client.RunSync({"GET", "k"}, seconds(10))->str, "v");
  EXPECT_TRUE(client.RunSync({"GET", "missing"}, seconds(10))->is_nil());
  absl::StatusOr<PipelineReplies> replies = client.PipelineSync(
      {{"INCR", "n"}, {"INCR", "n"}, {"GET", "k"}, {"HGET", "k", "f"}}, seconds(10));
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_EQ(*(*replies)[1]->AsInteger(), 2);
  EXPECT_EQ((*replies)[2]->str, "v");
  // A wrong-type error stays in its place (INTERNAL, as Pool::Pipeline).
  EXPECT_EQ((*replies)[3].status().code(), absl::StatusCode::kInternal);
  // Keys of several slots are fine on a standalone server.
  EXPECT_TRUE(client.PipelineSync({{"SET", "{a}x", "1"}, {"SET", "{b}x", "1"}}, seconds(10)).ok());

  Script fail("fail", "return redis.error_reply('RESOURCE_EXHAUSTED allowance: 5 left')");
  absl::StatusOr<Reply> failed = client.EvalShaSync(fail, {}, {}, seconds(10));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(failed.status().message(), "allowance: 5 left");
  Script found("notfound", "return redis.error_reply('NOT_FOUND person bob')");
  EXPECT_EQ(client.EvalShaSync(found, {}, {}, seconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client.RunSync({"NOSUCHCOMMAND"}, seconds(10)).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(client.PipelineSync({}, seconds(10)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AsyncClientTest, ConcurrentCallsShareOneConnectionAndAreWrittenTogether) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server, /*loops=*/1));
  // 1,000 at once: within the in-flight bound (1,024 by default).
  constexpr int kThreads = 4, kPerThread = 250, kCalls = kThreads * kPerThread;
  Answers answers(kCalls);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        client.Run({"INCR", "counter"}, DeadlineIn(seconds(30)), answers.Callback());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE(answers.Wait());
  std::set<long long> seen;
  for (const auto& reply : answers.replies()) {
    ASSERT_TRUE(reply.ok()) << reply.status();
    seen.insert(*reply->AsInteger());
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kCalls));
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), kCalls);
  AsyncClient::Stats stats = client.stats();
  EXPECT_EQ(stats.connects, 1u) << "one loop: one connection carries every call";
  EXPECT_GT(stats.largest_batch, 1u) << "concurrent calls are appended in one loop turn";
  Connection direct = Direct(server);
  // Ours and this one (the mode probe's connection is closed).
  EXPECT_TRUE(harness::Eventually([&] { return InfoField(direct, "clients", "connected_clients") == 2; }));
}

// Runs kCalls sequential calls and one continuation's call (started from a
// reply callback) on a connected one-loop client; returns the stats' change.
AsyncClient::Stats WriteStatsOfSequentialCalls(AsyncClientOptions::EventAdapter adapter,
                                               const harness::RedisServer& server, int calls) {
  AsyncClientOptions options = OptionsFor(server, /*loops=*/1);
  options.event_adapter = adapter;
  AsyncClient client(options);
  EXPECT_TRUE(client.RunSync({"DEL", "sequential"}, seconds(10)).ok());  // connected
  const AsyncClient::Stats before = client.stats();
  for (int i = 0; i < calls; ++i) {
    absl::StatusOr<Reply> reply = client.RunSync({"INCR", "sequential"}, seconds(10));
    EXPECT_TRUE(reply.ok()) << reply.status();
    if (reply.ok()) {
      EXPECT_EQ(*reply->AsInteger(), i + 1);
    }
  }
  std::promise<absl::StatusOr<Reply>> chained;
  client.Run({"INCR", "sequential"}, DeadlineIn(seconds(10)),
             [&client, &chained](absl::StatusOr<Reply> first) {
               if (!first.ok()) return chained.set_value(first.status());
               client.Run({"GET", "sequential"}, DeadlineIn(seconds(10)),
                          [&chained](absl::StatusOr<Reply> second) {
                            chained.set_value(std::move(second));
                          });
             });
  absl::StatusOr<Reply> last = chained.get_future().get();
  EXPECT_TRUE(last.ok()) << last.status();
  if (last.ok()) {
    EXPECT_EQ(last->str, std::to_string(calls + 1));
  }
  const AsyncClient::Stats after = client.stats();
  AsyncClient::Stats delta;
  delta.writes_in_turn = after.writes_in_turn - before.writes_in_turn;
  delta.writes_on_writable = after.writes_on_writable - before.writes_on_writable;
  return delta;
}

// A connected socket takes a call's command in the loop turn that queued
// it: no turn spent waiting for writability (and no epoll_ctl pair per
// call). hiredis's own adapter behaviour, kept for measurements, waits for
// writability on every write.
TEST(AsyncClientTest, CommandsAreWrittenInTheTurnThatQueuedThemWithoutWaitingForWritability) {
  harness::RedisServer server;
  constexpr int kCalls = 200;
  const AsyncClient::Stats in_turn =
      WriteStatsOfSequentialCalls(AsyncClientOptions::EventAdapter::kInTurn, server, kCalls);
  EXPECT_EQ(in_turn.writes_on_writable, 0u);
  EXPECT_GE(in_turn.writes_in_turn, static_cast<uint64_t>(kCalls + 2));
  const AsyncClient::Stats hiredis =
      WriteStatsOfSequentialCalls(AsyncClientOptions::EventAdapter::kHiredis, server, kCalls);
  EXPECT_GE(hiredis.writes_on_writable, static_cast<uint64_t>(kCalls + 2));
  EXPECT_EQ(hiredis.writes_in_turn, 0u);
}

TEST(AsyncClientTest, DeadlinesFireWhileRedisIsStoppedAndCallsRecoverOnSigcont) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server, /*loops=*/2));
  ASSERT_TRUE(client.RunSync({"SET", "k", "v"}, seconds(10)).ok());
  Connection direct = Direct(server);
  pid_t pid = static_cast<pid_t>(InfoField(direct, "server", "process_id"));
  ASSERT_GT(pid, 0);
  {
    Paused paused(pid);
    constexpr int kCalls = 50;
    Answers answers(kCalls);
    for (int i = 0; i < kCalls; ++i) {
      if (i % 2 == 0) {
        client.Run({"GET", "k"}, DeadlineIn(milliseconds(300)), answers.Callback());
      } else {
        client.Pipeline({{"GET", "k"}, {"INCR", "n"}}, DeadlineIn(milliseconds(300)),
                        [cb = answers.Callback()](absl::StatusOr<PipelineReplies> r) mutable {
                          std::move(cb)(r.ok() ? absl::StatusOr<Reply>(Reply{}) : r.status());
                        });
      }
    }
    ASSERT_TRUE(answers.Wait()) << "calls hung while redis was stopped";
    for (const auto& reply : answers.replies()) {
      EXPECT_TRUE(absl::IsDeadlineExceeded(reply.status()) || absl::IsUnavailable(reply.status()))
          << reply.status();
    }
  }
  // SIGCONT: the same client serves again, no restart.
  EXPECT_TRUE(harness::Eventually([&] {
    absl::StatusOr<Reply> reply = client.RunSync({"GET", "k"}, seconds(5));
    return reply.ok() && reply->str == "v";
  }));
}

TEST(AsyncClientTest, ReconnectsAfterRedisRestarts) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server));
  ASSERT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
  server.Restart();
  // The first calls may see the dropped connection (UNAVAILABLE); later ones reconnect.
  EXPECT_TRUE(harness::Eventually([&] {
    absl::StatusOr<Reply> reply = client.RunSync({"SET", "after", "restart"}, seconds(5));
    if (!reply.ok()) {
      EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
    }
    return reply.ok();
  }));
  EXPECT_GE(client.stats().connects, 2u);
}

TEST(AsyncClientTest, ScriptIsReloadedAfterScriptFlush) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server));
  Script script("echo", "return {KEYS[1], ARGV[1]}");
  absl::StatusOr<Reply> first = client.EvalShaSync(script, {"key"}, {"a"}, seconds(10));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->elements[1].str, "a");
  EXPECT_EQ(client.stats().script_loads, 1u);  // the first call: NOSCRIPT, then loaded
  ASSERT_TRUE(client.RunSync({"SCRIPT", "FLUSH"}, seconds(10)).ok());
  absl::StatusOr<Reply> second = client.EvalShaSync(script, {"key"}, {"b"}, seconds(10));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->elements[1].str, "b");
  EXPECT_EQ(client.stats().script_loads, 2u);
  ASSERT_TRUE(client.EvalShaSync(script, {"key"}, {"c"}, seconds(10)).ok());
  EXPECT_EQ(client.stats().script_loads, 2u);  // loaded: called by SHA
}

TEST(AsyncClientTest, AuthenticatesOnEveryConnect) {
  harness::RedisServer server({"--requirepass", "s3cret", "--user", "alice", "on", ">alicepw",
                               "~*", "&*", "+@all"});
  Credentials good;
  good.password = "s3cret";
  AsyncClient client(OptionsFor(server, 1, good));
  ASSERT_TRUE(client.RunSync({"SET", "k", "v"}, seconds(10)).ok());
  server.Restart();  // a new connection: AUTH again
  EXPECT_TRUE(harness::Eventually([&] { return client.RunSync({"GET", "k"}, seconds(5)).ok(); }));

  Credentials user;
  user.username = "alice";
  user.password = "alicepw";
  AsyncClient as_alice(OptionsFor(server, 1, user));
  EXPECT_TRUE(as_alice.RunSync({"PING"}, seconds(10)).ok());

  // Refused or missing credentials: UNAVAILABLE (retried like an outage,
  // as Connection does), never a reply.
  Credentials wrong;
  wrong.password = "nope";
  AsyncClient refused(OptionsFor(server, 1, wrong));
  absl::StatusOr<Reply> denied = refused.RunSync({"GET", "k"}, seconds(10));
  EXPECT_TRUE(absl::IsUnavailable(denied.status())) << denied.status();
  AsyncClient anonymous(OptionsFor(server, 1));
  absl::StatusOr<Reply> noauth = anonymous.RunSync({"GET", "k"}, seconds(10));
  EXPECT_TRUE(absl::IsUnavailable(noauth.status())) << noauth.status();
}

// Least privilege: an ACL user may be denied INFO. The client still learns
// the mode (CLUSTER SLOTS: "cluster support disabled") instead of never
// detecting one and answering every call UNAVAILABLE.
TEST(AsyncClientTest, AUserDeniedInfoStillDetectsTheModeAndServesCalls) {
  harness::RedisServer server({"--user", "noinfo", "on", ">noinfo-pw", "~*", "&*", "+@all", "-info"});
  Credentials user;
  user.username = "noinfo";
  user.password = "noinfo-pw";
  AsyncClient client(OptionsFor(server, 1, user));
  ASSERT_TRUE(client.RunSync({"SET", "k", "v"}, seconds(10)).ok());
  EXPECT_EQ(client.mode(), AsyncClient::Mode::kStandalone);
  EXPECT_EQ(client.RunSync({"GET", "k"}, seconds(10))->str, "v");
  EXPECT_FALSE(client.RunSync({"INFO"}, seconds(10)).ok()) << "the user is denied INFO";
}

TEST(AsyncClientTest, InFlightCallsPerConnectionAreBounded) {
  harness::RedisServer server;
  AsyncClientOptions options = OptionsFor(server, /*loops=*/1);
  options.max_in_flight_per_connection = 4;
  AsyncClient client(options);
  ASSERT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
  // BLPOP holds the connection: the calls behind it stay in flight.
  Answers held(4);
  client.Run({"BLPOP", "queue", "0"}, DeadlineIn(seconds(60)), held.Callback());
  for (int i = 0; i < 3; ++i) client.Run({"PING"}, DeadlineIn(seconds(60)), held.Callback());
  absl::StatusOr<Reply> fifth = client.RunSync({"PING"}, seconds(60));
  EXPECT_EQ(fifth.status().code(), absl::StatusCode::kResourceExhausted) << fifth.status();
  Connection direct = Direct(server);
  ASSERT_TRUE(direct.Run({"LPUSH", "queue", "x"}).ok());
  ASSERT_TRUE(held.Wait());
  for (const auto& reply : held.replies()) EXPECT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
}

// A stopped Redis stops reading: the kernel's socket buffers fill, then
// hiredis's output buffer; past max_pending_write_bytes a call is refused
// instead of the buffer growing without bound.
TEST(AsyncClientTest, PendingWritesPerConnectionAreBounded) {
  harness::RedisServer server;
  AsyncClientOptions options = OptionsFor(server, /*loops=*/1);
  options.max_pending_write_bytes = 1 << 20;
  AsyncClient client(options);
  ASSERT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
  Connection direct = Direct(server);
  pid_t pid = static_cast<pid_t>(InfoField(direct, "server", "process_id"));
  ASSERT_GT(pid, 0);
  const std::string value(1 << 20, 'x');
  std::vector<std::future<absl::StatusOr<Reply>>> accepted;
  bool refused = false;
  {
    Paused paused(pid);
    for (int i = 0; i < 200 && !refused; ++i) {
      auto promise = std::make_shared<std::promise<absl::StatusOr<Reply>>>();
      std::future<absl::StatusOr<Reply>> future = promise->get_future();
      client.Run({"SET", "big" + std::to_string(i), value}, DeadlineIn(seconds(60)),
                 [promise](absl::StatusOr<Reply> reply) { promise->set_value(std::move(reply)); });
      // A refusal answers at once; an accepted call waits for SIGCONT.
      if (future.wait_for(milliseconds(100)) == std::future_status::ready) {
        absl::StatusOr<Reply> reply = future.get();
        ASSERT_EQ(reply.status().code(), absl::StatusCode::kResourceExhausted) << reply.status();
        EXPECT_NE(reply.status().message().find("bytes waiting"), absl::string_view::npos);
        refused = true;
      } else {
        accepted.push_back(std::move(future));
      }
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(accepted.empty());
  for (auto& future : accepted) {
    ASSERT_EQ(future.wait_for(seconds(60)), std::future_status::ready);
    absl::StatusOr<Reply> reply = future.get();
    EXPECT_TRUE(reply.ok()) << reply.status();
  }
  EXPECT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
}

TEST(AsyncClientTest, EveryCallbackFiresExactlyOnceAcrossDeadlinesAndReplies) {
  harness::RedisServer server;
  AsyncClient client(OptionsFor(server, /*loops=*/2));
  ASSERT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
  constexpr int kCalls = 2000;  // 1,000 per loop: within the in-flight bound
  std::atomic<int> fired{0};
  Answers answers(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    // Deadlines from already passed to a few ms: replies and timers race.
    client.Run({"INCR", "n"}, DeadlineIn(milliseconds(i % 4)),
               [&fired, cb = answers.Callback()](absl::StatusOr<Reply> reply) mutable {
                 fired.fetch_add(1);
                 std::move(cb)(std::move(reply));
               });
  }
  ASSERT_TRUE(answers.Wait());
  EXPECT_EQ(fired.load(), kCalls);  // a second firing would abort (KUDOS_CHECK)
  for (const auto& reply : answers.replies()) {
    EXPECT_TRUE(reply.ok() || absl::IsDeadlineExceeded(reply.status())) << reply.status();
  }
}

TEST(AsyncClientTest, DestroyingTheClientAnswersEveryCall) {
  harness::RedisServer server;
  Answers answers(3);
  {
    AsyncClient client(OptionsFor(server, /*loops=*/1));
    ASSERT_TRUE(client.RunSync({"PING"}, seconds(10)).ok());
    client.Run({"BLPOP", "never", "0"}, DeadlineIn(seconds(600)), answers.Callback());
    client.Run({"GET", "k"}, DeadlineIn(seconds(600)), answers.Callback());
    client.Run({"GET", "k"}, DeadlineIn(seconds(600)), answers.Callback());
  }
  ASSERT_TRUE(answers.Wait());
  for (const auto& reply : answers.replies()) {
    EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
  }
}

TEST(AsyncClientTest, UnreachableRedisIsUnavailableAndTheModeIsDetectedOnceItAnswers) {
  int port = harness::FreePort();
  absl::StatusOr<AsyncClientOptions> options =
      AsyncClientOptionsFor("127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(options.ok());
  options->loops = 1;
  options->detect_timeout = milliseconds(200);
  AsyncClient client(*options);
  EXPECT_EQ(client.mode(), AsyncClient::Mode::kUnknown);
  absl::StatusOr<Reply> reply = client.RunSync({"PING"}, seconds(10));
  EXPECT_TRUE(absl::IsUnavailable(reply.status())) << reply.status();
}

TEST(AsyncClientTest, FlagsTakeOneAddressOrASeedListAndCheckCredentialsOnTheFirstThatAnswers) {
  harness::RedisServer server({"--requirepass", "s3cret"});
  int dead = harness::FreePort();
  absl::SetFlag(&FLAGS_redis, "127.0.0.1:" + std::to_string(dead) + "," + server.address());
  absl::StatusOr<AsyncClientOptions> refused = AsyncClientOptionsFromFlags();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  absl::SetFlag(&FLAGS_redis, "127.0.0.1:" + std::to_string(dead));
  absl::StatusOr<AsyncClientOptions> later = AsyncClientOptionsFromFlags();
  ASSERT_TRUE(later.ok()) << later.status();  // unreachable: connecting later
  EXPECT_EQ(later->seeds.size(), 1u);
  absl::SetFlag(&FLAGS_redis, "not an address");
  EXPECT_EQ(AsyncClientOptionsFromFlags().status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace common::redis
