// Attacks on how services authenticate and how their gRPC edge answers
// (issue #12 findings 1, 10 and 15), against the real binaries:
// - no service runs on the public development secrets unless told it is a
//   development start, and says so loudly;
// - a service token is only ever a service, never an org's admin;
// - a token can never name an org the services then refuse;
// - a request that does not parse gets INVALID_ARGUMENT naming the cause.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/raw_call.h"
#include "tests/harness/tokens.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;
namespace lv1 = ledger::v1;
namespace bv1 = leaderboard::v1;
using grpc::StatusCode;

// Private secrets, as an operator would set them (32+ bytes, distinct).
constexpr char kJwtKey[] = "test-private-jwt-key-0123456789abcdef";
constexpr char kServiceSecret[] = "test-private-service-secret-0123456789";
constexpr char kDevFlag[] = "KUDOS_DEV_INSECURE_DEFAULTS";

// A production-like start: explicit secrets, no development flag.
std::map<std::string, std::string> ProductionEnv() {
  return {{kDevFlag, "0"},
          {"JWT_KEY", kJwtKey},
          {"JWT_KEY_FILE", ""},
          {"SERVICE_TOKEN_SECRET", kServiceSecret}};
}

std::string MintWith(const std::string& org, const std::string& subject,
                     std::vector<std::string> roles, const std::string& secret,
                     const std::string& audience = "kudos-api") {
  common::auth::TokenRequest request;
  request.org = org;
  request.subject = subject;
  request.roles = std::move(roles);
  request.audience = audience;
  auto token = common::auth::MintHs256(request, secret, absl::Now());
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Every service binary this build has.
std::vector<std::pair<std::string, std::string>> ServiceBinaries() {
  std::vector<std::pair<std::string, std::string>> binaries = {
      {"ledger", LEDGER_BINARY}, {"kudos", KUDOS_BINARY}, {"leaderboard", LEADERBOARD_BINARY}};
#ifdef GATEWAY_BINARY
  binaries.emplace_back("gateway", GATEWAY_BINARY);
#endif
  return binaries;
}

// Starts `binary` with `env` on a free port and reports how it went: its
// exit status if it exited (nullopt if it listened or still ran after 20 s;
// then it is stopped), and what it logged.
struct StartOutcome {
  std::optional<int> exit_status;
  std::string log;
};

StartOutcome TryStart(const std::string& binary, const std::string& redis_address,
                      std::map<std::string, std::string> env) {
  char path[] = "/tmp/kudos-auth-start-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  int port = harness::FreePort();
  std::map<std::string, std::string> full_env = harness::DevServiceEnv();
  for (auto& [key, value] : env) full_env[key] = value;
  harness::Process process(binary,
                           {absl::StrCat("--listen=127.0.0.1:", port), "--redis=" + redis_address},
                           full_env);
  process.set_output_file(path);
  process.Start();
  StartOutcome outcome;
  // Until it exits or listens (then it runs), within a generous deadline.
  bool listening = false;
  for (int i = 0; i < 200 && !outcome.exit_status && !listening; ++i) {
    outcome.exit_status = process.WaitForExit(100ms);
    listening = !outcome.exit_status && harness::WaitForPort(port, 1ms);
  }
  if (!outcome.exit_status) process.Stop();
  outcome.log = ReadFile(path);
  unlink(path);
  return outcome;
}

class AuthStartupTest : public ::testing::Test {
 protected:
  harness::RedisServer redis_;
};

// Finding 1: an unset key never falls back to a public secret.
TEST_F(AuthStartupTest, Services_RefuseToStartWithoutExplicitSecrets) {
  struct Case {
    std::string what;
    std::map<std::string, std::string> env;
    std::string log_names;  // what the refusal tells the operator to set
  };
  const std::vector<Case> cases = {
      {"no key at all", {{kDevFlag, "0"}, {"JWT_KEY", ""}, {"JWT_KEY_FILE", ""},
                         {"SERVICE_TOKEN_SECRET", ""}}, "JWT_KEY"},
      {"JWT_KEY but no service secret", {{kDevFlag, "0"}, {"JWT_KEY", kJwtKey},
                                         {"JWT_KEY_FILE", ""}, {"SERVICE_TOKEN_SECRET", ""}},
       "SERVICE_TOKEN_SECRET"},
      {"service secret equal to JWT_KEY", {{kDevFlag, "0"}, {"JWT_KEY", kJwtKey},
                                           {"JWT_KEY_FILE", ""}, {"SERVICE_TOKEN_SECRET", kJwtKey}},
       "SERVICE_TOKEN_SECRET"},
      {"the public development secrets set explicitly",
       {{kDevFlag, "0"}, {"JWT_KEY", common::auth::kDevJwtSecret}, {"JWT_KEY_FILE", ""},
        {"SERVICE_TOKEN_SECRET", common::auth::kDevServiceSecret}},
       "public development secret"},
  };
  for (const auto& [name, binary] : ServiceBinaries()) {
    for (const Case& c : cases) {
      StartOutcome outcome = TryStart(binary, redis_.address(), c.env);
      ASSERT_TRUE(outcome.exit_status.has_value()) << name << " kept running with " << c.what;
      EXPECT_NE(*outcome.exit_status, 0) << name << " with " << c.what;
      EXPECT_NE(outcome.log.find("refusing to start"), std::string::npos)
          << name << " with " << c.what << ":\n" << outcome.log;
      EXPECT_NE(outcome.log.find(c.log_names), std::string::npos)
          << name << " with " << c.what << ":\n" << outcome.log;
    }
  }
}

// The development flag is explicit and loud.
TEST_F(AuthStartupTest, Services_StartOnDevelopmentSecretsOnlyWithTheFlagAndSaySoLoudly) {
  for (const auto& [name, binary] : ServiceBinaries()) {
    StartOutcome outcome = TryStart(binary, redis_.address(),
                                    {{kDevFlag, "1"}, {"JWT_KEY", ""}, {"JWT_KEY_FILE", ""},
                                     {"SERVICE_TOKEN_SECRET", ""}});
    EXPECT_FALSE(outcome.exit_status.has_value()) << name << " did not run:\n" << outcome.log;
    EXPECT_NE(outcome.log.find("DEVELOPMENT MODE"), std::string::npos) << name << outcome.log;
    EXPECT_NE(outcome.log.find("PUBLIC development secrets"), std::string::npos) << name;
    StartOutcome typo = TryStart(binary, redis_.address(), {{kDevFlag, "yes"}});
    ASSERT_TRUE(typo.exit_status.has_value()) << name << " ran with " << kDevFlag << "=yes";
    EXPECT_NE(typo.log.find(kDevFlag), std::string::npos) << typo.log;
  }
}

// Services started as in production, plus stubs.
class ProductionLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_.address(),
                                                 std::vector<std::string>{}, ProductionEnv());
    stub_ = lv1::LedgerService::NewStub(
        grpc::CreateChannel(ledger_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Adjust(const std::string& token, const std::string& request_id) {
    lv1::AdjustBalanceRequest request;
    request.set_request_id(request_id);
    request.set_person_id("alice");
    request.set_amount(1000);
    request.set_reason("forged");
    lv1::AdjustBalanceResponse response;
    return stub_->AdjustBalance(harness::Context(token).get(), request, &response);
  }

  // alice's earned balance in `org`, read by a real admin of that org.
  int64_t EarnedBalance(const std::string& org) {
    lv1::GetBalanceRequest request;
    request.mutable_account()->set_type(lv1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id("alice");
    lv1::GetBalanceResponse response;
    grpc::Status status = stub_->GetBalance(
        harness::Context(MintWith(org, "root", {"admin"}, kJwtKey)).get(), request, &response);
    EXPECT_TRUE(status.ok() || status.error_code() == StatusCode::NOT_FOUND)
        << status.error_message();
    return status.ok() ? response.balance() : 0;
  }

  harness::RedisServer redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<lv1::LedgerService::Stub> stub_;
};

// Finding 1, the attack: {roles:[service,admin], org:victim,
// aud:kudos-internal} credited 10^12 points. Signed with the public
// development service secret or even with the real one, it credits nothing.
TEST_F(ProductionLedgerTest, ForgedServiceAdminToken_CreditsNothing) {
  const std::string victim = "victim";
  const std::vector<std::pair<std::string, std::string>> forged = {
      {"public dev service secret",
       MintWith(victim, "kudos", {"service", "admin"}, common::auth::kDevServiceSecret,
                common::auth::kServiceAudience)},
      {"public dev JWT secret",
       MintWith(victim, "mallory", {"admin"}, common::auth::kDevJwtSecret)},
      {"the real service secret with an extra admin role",
       MintWith(victim, "kudos", {"service", "admin"}, kServiceSecret,
                common::auth::kServiceAudience)},
      {"the real service secret with admin only",
       MintWith(victim, "kudos", {"admin"}, kServiceSecret, common::auth::kServiceAudience)},
  };
  int attempt = 0;
  for (const auto& [what, token] : forged) {
    grpc::Status status = Adjust(token, absl::StrCat("forged-", attempt++));
    EXPECT_EQ(status.error_code(), StatusCode::UNAUTHENTICATED) << what << ": "
                                                               << status.error_message();
  }
  // A genuine service token is a service, not an admin: still refused.
  auto service = common::auth::MintServiceToken("kudos", victim, kServiceSecret, absl::Now());
  ASSERT_TRUE(service.ok());
  EXPECT_EQ(Adjust(*service, "service-adjust").error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(EarnedBalance(victim), 0);
  // The org's real admin can still adjust (the refusals are not blanket).
  ASSERT_TRUE(Adjust(MintWith(victim, "root", {"admin"}, kJwtKey), "real-admin").ok());
  EXPECT_EQ(EarnedBalance(victim), 1000);
}

// Finding 10: one id rule. A 64-character org works on every service; a
// 65-character one is refused at the token by every service alike (it used
// to create people in kudos and then fail on every board).
TEST(OrgIdRuleTest, OneOrgRule_TokenOrgsAreAcceptedOrRefusedAlikeByEveryService) {
  harness::RedisServer redis;
  harness::Service ledger(LEDGER_BINARY, redis.address());
  harness::Service kudos(KUDOS_BINARY, redis.address(), {"--ledger=" + ledger.address()});
  harness::Service board(LEADERBOARD_BINARY, redis.address());
  auto directory = kv1::DirectoryService::NewStub(
      grpc::CreateChannel(kudos.address(), grpc::InsecureChannelCredentials()));
  auto boards = bv1::LeaderboardService::NewStub(
      grpc::CreateChannel(board.address(), grpc::InsecureChannelCredentials()));
  auto create_person = [&](const std::string& org) {
    kv1::CreatePersonRequest request;
    request.mutable_person()->set_person_id("alice");
    request.mutable_person()->set_display_name("Alice");
    request.mutable_person()->set_active(true);
    kv1::CreatePersonResponse response;
    return directory->CreatePerson(
        harness::Context(harness::MintToken(org, "root", {"admin"})).get(), request, &response);
  };
  auto read_board = [&](const std::string& org) {
    bv1::GetLeaderboardRequest request;
    request.mutable_board()->set_metric(bv1::METRIC_POINTS_RECEIVED);
    request.mutable_board()->set_window(bv1::WINDOW_ALL_TIME);
    request.mutable_board()->set_scope(bv1::SCOPE_ORG);
    bv1::GetLeaderboardResponse response;
    return boards->GetLeaderboard(
        harness::Context(harness::MintToken(org, "alice", {"member"})).get(), request, &response);
  };
  const std::string longest(64, 'o');
  grpc::Status created = create_person(longest);
  EXPECT_TRUE(created.ok()) << created.error_message();
  grpc::Status read = read_board(longest);
  EXPECT_TRUE(read.ok()) << read.error_message();
  const std::string too_long(65, 'o');
  EXPECT_EQ(create_person(too_long).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(read_board(too_long).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(create_person(std::string(70, 'o')).error_code(), StatusCode::UNAUTHENTICATED);
}

// Finding 15: raw bytes that are not a valid request, sent through a generic
// stub to the real kudos service.
class UnparseableRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_.address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_.address(), std::vector<std::string>{"--ledger=" + ledger_->address()});
    board_ = std::make_unique<harness::Service>(LEADERBOARD_BINARY, redis_.address());
    channel_ = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    board_channel_ = grpc::CreateChannel(board_->address(), grpc::InsecureChannelCredentials());
  }

  grpc::Status SendRaw(const std::string& method, const std::string& bytes) {
    return SendRawTo(channel_, method, bytes);
  }

  static grpc::Status SendRawTo(std::shared_ptr<grpc::Channel> channel, const std::string& method,
                                const std::string& bytes) {
    auto context = harness::Context(harness::MintToken("acme", "alice", {"member"}));
    return harness::RawUnaryCall(channel, context.get(), method, bytes, 30s);
  }

  harness::RedisServer redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<harness::Service> board_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<grpc::Channel> board_channel_;
};

// A length-delimited field on the wire: tag, length, bytes.
std::string LengthDelimited(int field, const std::string& bytes) {
  std::string out;
  out.push_back(static_cast<char>(field << 3 | 2));
  out.push_back(static_cast<char>(bytes.size()));
  return out + bytes;
}

TEST_F(UnparseableRequestTest, InvalidUtf8StringField_IsInvalidArgumentNamingTheField) {
  // SendKudosRequest.message (field 3) holding bytes that are not UTF-8.
  std::string request = LengthDelimited(1, "req-1") + LengthDelimited(2, "bob") +
                        LengthDelimited(3, std::string("thanks \xff\xfe", 9));
  grpc::Status status = SendRaw("/kudos.v1.KudosService/SendKudos", request);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("kudos.v1.SendKudosRequest.message"), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("UTF-8"), std::string::npos) << status.error_message();
}

TEST_F(UnparseableRequestTest, InvalidUtf8_IsInvalidArgumentOnSyncAndCallbackMethodsAlike) {
  // {board: {scope_id: <not UTF-8>}}: GetLeaderboard runs on the sync
  // server, WatchLeaderboard on the callback API.
  std::string board = LengthDelimited(4, std::string("\xff\xfe", 2));
  std::string request = LengthDelimited(1, board);
  for (const char* method : {"/leaderboard.v1.LeaderboardService/GetLeaderboard",
                             "/leaderboard.v1.LeaderboardService/WatchLeaderboard"}) {
    grpc::Status status = SendRawTo(board_channel_, method, request);
    EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT)
        << method << ": " << status.error_message();
    EXPECT_NE(status.error_message().find("leaderboard.v1.Board.scope_id"), std::string::npos)
        << method << ": " << status.error_message();
  }
}

TEST_F(UnparseableRequestTest, MalformedEncoding_IsInvalidArgumentNamingTheRequestType) {
  // A length that runs past the end of the message.
  std::string truncated = std::string("\x1a\x40", 2) + "short";
  grpc::Status status = SendRaw("/kudos.v1.KudosService/SendKudos", truncated);
  EXPECT_EQ(status.error_code(), StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("kudos.v1.SendKudosRequest"), std::string::npos)
      << status.error_message();
  grpc::Status other = SendRaw("/kudos.v1.KudosService/ListKudos", truncated);
  EXPECT_EQ(other.error_code(), StatusCode::INVALID_ARGUMENT) << other.error_message();
  EXPECT_NE(other.error_message().find("kudos.v1.ListKudosRequest"), std::string::npos)
      << other.error_message();
  // A request that parses is answered as before.
  grpc::Status fine = SendRaw("/kudos.v1.KudosService/ListKudos", "");
  EXPECT_TRUE(fine.ok()) << fine.error_message();
}

}  // namespace
