// Redis AUTH (issue #14 item 3): every connection of the shared client
// authenticates (password, or ACL user + password) on every (re)connect before
// any command; services started with the right secret serve calls, without it
// or with a wrong one they exit at startup with a message naming what to set.
// Real redis-servers started with requirepass / an ACL user, the real binaries.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/eventually.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using namespace std::chrono_literals;
using common::redis::Credentials;
using common::redis::Pool;
using common::redis::PoolOptions;
using common::redis::Reply;
using harness::Eventually;

constexpr char kPassword[] = "s3cret-redis-password";
constexpr char kAclUser[] = "kudos-app";
constexpr char kAclPassword[] = "acl-user-password";

// redis-server arguments: the default user needs kPassword.
std::vector<std::string> RequirePass() { return {"--requirepass", kPassword}; }
// An ACL user with every command and key, and the default user switched off.
std::vector<std::string> AclUser() {
  return {"--user", kAclUser, "on", std::string(">") + kAclPassword, "~*", "&*", "+@all",
          "--user", "default", "off"};
}

// A file holding `content`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char pattern[] = "/tmp/kudos-redis-secret-XXXXXX";
    int fd = mkstemp(pattern);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = pattern;
    Write(content);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  void Write(const std::string& content) { std::ofstream(path_, std::ios::trunc) << content; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

PoolOptions OptionsFor(const harness::RedisServer& redis, Credentials credentials) {
  PoolOptions options;
  options.endpoint.port = redis.port();
  options.endpoint.credentials = std::move(credentials);
  options.size = 2;
  options.timeout = 1000ms;
  return options;
}

Credentials Password(const std::string& password) {
  Credentials credentials;
  credentials.password = password;
  return credentials;
}

// Closes every client connection but the caller's (CLIENT KILL skips itself).
void KillOtherClients(Pool& admin) {
  ASSERT_TRUE(admin.Run({"CLIENT", "KILL", "TYPE", "normal"}).ok());
}

// --- the client library ------------------------------------------------------

TEST(RedisAuthTest, Pool_AuthenticatesOnEveryReconnectBeforeAnyCommand) {
  harness::RedisServer redis(RequirePass());
  Pool pool(OptionsFor(redis, Password(kPassword)));
  Pool admin(OptionsFor(redis, Password(kPassword)));
  ASSERT_TRUE(pool.Run({"SET", "k", "1"}).ok());

  KillOtherClients(admin);
  // The first call may meet the closed socket; the reconnect authenticates.
  EXPECT_TRUE(Eventually([&] { return pool.Run({"INCR", "k"}).ok(); }));

  redis.Restart();
  EXPECT_TRUE(Eventually([&] { return pool.Run({"SET", "after-restart", "1"}).ok(); }));
  // Scripts too (EVALSHA, then SCRIPT LOAD on NOSCRIPT after the restart).
  common::redis::Script script("echo", "return ARGV[1]");
  absl::StatusOr<Reply> echoed = pool.Eval(script, {}, {"hi"});
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(echoed->str, "hi");
}

TEST(RedisAuthTest, Pool_AuthenticatesAsTheAclUserWithUsernameAndPassword) {
  harness::RedisServer redis(AclUser());
  Credentials credentials = Password(kAclPassword);
  credentials.username = kAclUser;
  Pool pool(OptionsFor(redis, credentials));
  absl::StatusOr<Reply> who = pool.Run({"ACL", "WHOAMI"});
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->str, kAclUser);
}

TEST(RedisAuthTest, PasswordFile_IsReadAgainAtEachConnectSoARotatedSecretIsPickedUp) {
  harness::RedisServer redis(RequirePass());
  TempFile file(std::string(kPassword) + "\n");  // a trailing newline is not part of it
  Credentials from_file;
  from_file.password_file = file.path();
  Pool pool(OptionsFor(redis, from_file));
  ASSERT_TRUE(pool.Run({"PING"}).ok());

  // Rotate: Redis takes the new password (open connections stay
  // authenticated), the mounted Secret is rewritten, connections are cut.
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "requirepass", "rotated-password"}).ok());
  file.Write("rotated-password");
  Pool admin(OptionsFor(redis, Password("rotated-password")));
  KillOtherClients(admin);
  EXPECT_TRUE(Eventually([&] { return pool.Run({"PING"}).ok(); }));
}

TEST(RedisAuthTest, VerifyCredentials_NamesAMissingOrRefusedSecretAndNeverEchoesIt) {
  harness::RedisServer redis(RequirePass());
  common::redis::Endpoint endpoint{"127.0.0.1", redis.port()};

  absl::Status missing = common::redis::VerifyCredentials(endpoint, 1000ms);
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated) << missing;
  EXPECT_TRUE(absl::StrContains(missing.message(), "requires a password")) << missing;
  EXPECT_TRUE(absl::StrContains(missing.message(), "REDIS_PASSWORD")) << missing;

  endpoint.credentials = Password("not-the-password");
  absl::Status wrong = common::redis::VerifyCredentials(endpoint, 1000ms);
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated) << wrong;
  EXPECT_TRUE(absl::StrContains(wrong.message(), "refused")) << wrong;
  EXPECT_FALSE(absl::StrContains(wrong.message(), "not-the-password")) << wrong;

  endpoint.credentials = Password(kPassword);
  EXPECT_TRUE(common::redis::VerifyCredentials(endpoint, 1000ms).ok());

  // A Redis that is not up yet is not a credentials problem: services start
  // and connect later, as without a password.
  common::redis::Endpoint nobody{"127.0.0.1", harness::FreePort(), Password(kPassword)};
  EXPECT_EQ(common::redis::VerifyCredentials(nobody, 1000ms).code(),
            absl::StatusCode::kUnavailable);
}

TEST(RedisAuthTest, RefusedAuthAfterStartup_IsUnavailableSoCallersRetryInsteadOfDeadLettering) {
  harness::RedisServer redis(RequirePass());
  Pool pool(OptionsFor(redis, Password(kPassword)));
  ASSERT_TRUE(pool.Run({"CONFIG", "SET", "requirepass", "changed-behind-our-back"}).ok());
  Pool admin(OptionsFor(redis, Password("changed-behind-our-back")));
  KillOtherClients(admin);
  absl::Status status;
  ASSERT_TRUE(Eventually([&] {
    status = pool.Run({"PING"}).status();
    return absl::StrContains(status.message(), "AUTH");
  }));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_FALSE(absl::StrContains(status.message(), kPassword)) << status;
}

// A Redis that started wanting a password after the service connected
// answers NOAUTH to its new connections: a deployment fault, retried, never
// INTERNAL (which the leaderboard consumer would dead-letter entries over).
TEST(RedisAuthTest, NoAuthReply_IsUnavailableNotInternal) {
  harness::RedisServer redis(RequirePass());
  Pool pool(OptionsFor(redis, Credentials()));
  absl::Status status = pool.Run({"SET", "k", "v"}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "NOAUTH")) << status;
}

// --- the service binaries ----------------------------------------------------

const std::vector<std::string>& RedisBinaries() {
  static const std::vector<std::string> binaries = {LEDGER_BINARY, KUDOS_BINARY,
                                                    LEADERBOARD_BINARY};
  return binaries;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts `binary` against `redis` and expects it to exit non-zero on its own
// with a log line containing `expected`.
void ExpectStartupRefusal(const std::string& binary, const harness::RedisServer& redis,
                          std::vector<std::string> args,
                          std::map<std::string, std::string> env, const std::string& expected) {
  TempFile log("");
  args.insert(args.begin(), {"--listen=127.0.0.1:" + std::to_string(harness::FreePort()),
                             "--redis=" + redis.address()});
  std::map<std::string, std::string> merged = harness::DevServiceEnv();
  for (const auto& [key, value] : env) merged[key] = value;
  harness::Process process(binary, args, merged);
  process.set_output_file(log.path());
  process.Start();
  std::optional<int> exit_code = process.WaitForExit(30s);
  ASSERT_TRUE(exit_code.has_value()) << binary << " did not exit; log: " << ReadAll(log.path());
  EXPECT_NE(*exit_code, 0) << binary;
  std::string output = ReadAll(log.path());
  EXPECT_TRUE(absl::StrContains(output, expected)) << binary << " logged: " << output;
  EXPECT_FALSE(absl::StrContains(output, "wrong-password")) << binary << " echoed the secret";
}

TEST(RedisAuthServiceTest, Services_WithoutOrWithAWrongRedisPassword_ExitAtStartupSayingWhatToSet) {
  harness::RedisServer redis(RequirePass());
  TempFile wrong("wrong-password");
  for (const std::string& binary : RedisBinaries()) {
    ExpectStartupRefusal(binary, redis, {}, {}, "requires a password");
    ExpectStartupRefusal(binary, redis, {"--redis_password_file=" + wrong.path()}, {}, "refused");
    ExpectStartupRefusal(binary, redis, {}, {{"REDIS_PASSWORD", "wrong-password"}}, "refused");
  }
}

TEST(RedisAuthServiceTest, Services_WithAnUnreadableOrAmbiguousSecret_ExitAtStartup) {
  harness::RedisServer redis(RequirePass());
  TempFile right(kPassword);
  ExpectStartupRefusal(LEDGER_BINARY, redis, {"--redis_password_file=/nonexistent/redis-password"},
                       {}, "/nonexistent/redis-password");
  ExpectStartupRefusal(LEDGER_BINARY, redis, {"--redis_password_file=" + right.path()},
                       {{"REDIS_PASSWORD", kPassword}}, "not both");
  ExpectStartupRefusal(LEDGER_BINARY, redis, {"--redis_user=" + std::string(kAclUser)}, {},
                       "--redis_user needs a password");
}

// The three Redis services on a password-protected Redis (ledger and kudos
// from a file, the leaderboard from the environment): a kudos is sent, the
// ledger posts it, the leaderboard's consumer (its own connection) ranks it,
// and the kudos feed reader (another connection of its own) streams kudos.
TEST(RedisAuthServiceTest, Services_WithTheRedisPassword_SendAKudosRankItAndStreamTheFeed) {
  harness::RedisServer redis(RequirePass());
  TempFile secret(kPassword);
  const std::string from_file = "--redis_password_file=" + secret.path();
  harness::Service ledger(LEDGER_BINARY, redis.address(), {from_file});
  harness::Service kudos(KUDOS_BINARY, redis.address(),
                         {from_file, "--ledger=" + ledger.address()});
  harness::Service leaderboard(LEADERBOARD_BINARY, redis.address(), {},
                               {{"REDIS_PASSWORD", kPassword}});

  auto kudos_channel = grpc::CreateChannel(kudos.address(), grpc::InsecureChannelCredentials());
  auto directory = kudos::v1::DirectoryService::NewStub(kudos_channel);
  auto kudos_stub = kudos::v1::KudosService::NewStub(kudos_channel);
  const std::string org = "auth-acme";
  const std::string admin = harness::MintToken(org, "root", {"admin"});
  for (const char* id : {"alice", "bob"}) {
    kudos::v1::CreatePersonRequest create;
    create.mutable_person()->set_person_id(id);
    create.mutable_person()->set_display_name(id);
    create.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse created;
    grpc::Status status =
        directory->CreatePerson(harness::Context(admin).get(), create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  kudos::v1::SendKudosRequest send;
  send.set_request_id("auth-1");
  send.add_recipient_ids("bob");
  send.set_message("thanks for the quick follow-up");
  send.add_values("teamwork");
  send.set_points_per_recipient(3);
  kudos::v1::SendKudosResponse sent;
  grpc::Status status =
      kudos_stub->SendKudos(harness::Context(harness::MintToken(org, "alice")).get(), send, &sent);
  ASSERT_TRUE(status.ok()) << status.error_message();

  auto ledger_stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(ledger.address(), grpc::InsecureChannelCredentials()));
  ledger::v1::GetBalanceRequest balance_request;
  balance_request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  balance_request.mutable_account()->set_person_id("bob");
  ledger::v1::GetBalanceResponse balance;
  status = ledger_stub->GetBalance(harness::Context(harness::MintToken(org, "bob")).get(),
                                   balance_request, &balance);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(balance.balance(), 3);

  auto board_stub = leaderboard::v1::LeaderboardService::NewStub(
      grpc::CreateChannel(leaderboard.address(), grpc::InsecureChannelCredentials()));
  leaderboard::v1::GetLeaderboardRequest board_request;
  board_request.mutable_board()->set_metric(leaderboard::v1::METRIC_POINTS_RECEIVED);
  board_request.mutable_board()->set_window(leaderboard::v1::WINDOW_WEEK);
  board_request.mutable_board()->set_scope(leaderboard::v1::SCOPE_ORG);
  const std::string member = harness::MintToken(org, "alice");
  EXPECT_TRUE(Eventually([&] {
    leaderboard::v1::GetLeaderboardResponse board;
    grpc::Status read =
        board_stub->GetLeaderboard(harness::Context(member).get(), board_request, &board);
    return read.ok() && board.entries_size() == 1 && board.entries(0).subject_id() == "bob" &&
           board.entries(0).score() == 3;
  }));

  // WatchFeed delivers kudos sent after it started; its start is not
  // observable, so kudos are sent until one arrives (bounded).
  auto watch_context = harness::Context(member, 60s);
  auto watch = kudos_stub->WatchFeed(watch_context.get(), kudos::v1::WatchFeedRequest());
  std::promise<std::string> first;
  std::thread reader([&] {
    kudos::v1::WatchFeedResponse message;
    first.set_value(watch->Read(&message) ? message.kudos().message() : "stream ended");
  });
  std::future<std::string> arrived = first.get_future();
  for (int i = 0; i < 100 && arrived.wait_for(200ms) != std::future_status::ready; ++i) {
    send.set_request_id("auth-feed-" + std::to_string(i));
    kudos_stub->SendKudos(harness::Context(harness::MintToken(org, "alice")).get(), send, &sent);
  }
  EXPECT_EQ(arrived.get(), "thanks for the quick follow-up");
  watch_context->TryCancel();
  reader.join();
}

TEST(RedisAuthServiceTest, Services_AsAnAclUser_ServeACall) {
  harness::RedisServer redis(AclUser());
  TempFile secret(kAclPassword);
  harness::Service ledger(LEDGER_BINARY, redis.address(),
                          {"--redis_user=" + std::string(kAclUser),
                           "--redis_password_file=" + secret.path()});
  auto stub = ledger::v1::LedgerService::NewStub(
      grpc::CreateChannel(ledger.address(), grpc::InsecureChannelCredentials()));
  ledger::v1::GetBalanceRequest request;
  request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  request.mutable_account()->set_person_id("alice");
  ledger::v1::GetBalanceResponse response;
  grpc::Status status = stub->GetBalance(
      harness::Context(harness::MintToken("auth-acl", "alice")).get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
