// Attacks on the HTTP/SSE gateway (issue 12, findings 3, 5 and 8), against
// the real platform: redis-server, ledger, kudos, leaderboard and gateways
// as processes, raw HTTP over loopback sockets (so a test can send half a
// request, never read, or hold connections open).
//
// KUDOS_GATEWAY_BINARY, when set, replaces the gateway under test (to run
// these cases against an older build and watch them fail).
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kOrg[] = "gw-hard";

std::string GatewayBinary() {
  const char* override_binary = std::getenv("KUDOS_GATEWAY_BINARY");
  return override_binary != nullptr && *override_binary != '\0' ? override_binary
                                                                 : GATEWAY_BINARY;
}

// An older gateway (KUDOS_GATEWAY_BINARY) may not know the flags whose
// behaviour is tested: it is told to ignore them.
void AddCompatibilityFlag(std::vector<std::string>& args) {
  if (GatewayBinary() == GATEWAY_BINARY) return;
  args.push_back("--undefok=health_interval_ms,max_connections,max_sse_per_token,"
                 "sse_max_pending_bytes,max_streams_per_person,rate_limit_person_rps,"
                 "rate_limit_person_burst,max_body_bytes_in_flight");
}

// ---- raw HTTP over loopback -------------------------------------------------

using gwtest::Connect;
using gwtest::WriteAll;

struct Response {
  int status = 0;  // 0: no complete response before the deadline
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// Parses a complete response (head + Content-Length body) from the start of
// `raw`, or returns false while it is incomplete. `consumed`: its length.
bool ParseResponse(const std::string& raw, Response* out, size_t* consumed = nullptr) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  Response response;
  size_t line_end = raw.find("\r\n");
  size_t space = raw.find(' ');
  if (space == std::string::npos || space > line_end) return false;
  response.status = std::atoi(raw.c_str() + space + 1);
  size_t pos = line_end + 2;
  while (pos < head_end) {
    size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string value = line.substr(colon + 1);
      response.headers[absl::AsciiStrToLower(line.substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(value));
    }
    pos = eol + 2;
  }
  size_t length = 0;
  if (auto it = response.headers.find("content-length"); it != response.headers.end()) {
    length = std::strtoul(it->second.c_str(), nullptr, 10);
  }
  if (raw.size() < head_end + 4 + length) return false;
  response.body = raw.substr(head_end + 4, length);
  *out = std::move(response);
  if (consumed != nullptr) *consumed = head_end + 4 + length;
  return true;
}

// Reads from fd until a complete response arrives, the peer closes, or the
// deadline passes. Pipelined responses can arrive in one read: `pending`
// carries the bytes past this response to the next call on the same fd.
Response ReadResponse(int fd, std::chrono::milliseconds timeout, std::string* pending) {
  std::string& raw = *pending;
  Response response;
  const auto deadline = Clock::now() + timeout;
  char chunk[16384];
  while (Clock::now() < deadline) {
    if (size_t consumed = 0; ParseResponse(raw, &response, &consumed)) {
      raw.erase(0, consumed);
      return response;
    }
    pollfd p{fd, POLLIN, 0};
    int left_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (poll(&p, 1, std::max(1, left_ms)) <= 0) continue;
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) break;
    raw.append(chunk, static_cast<size_t>(n));
  }
  ParseResponse(raw, &response);
  return response;
}

Response ReadResponse(int fd, std::chrono::milliseconds timeout) {
  std::string pending;
  return ReadResponse(fd, timeout, &pending);
}

// Sends `raw_request` on a fresh connection and reads the answer.
Response Exchange(int port, const std::string& raw_request,
                  std::chrono::milliseconds timeout = 10s) {
  int fd = Connect(port);
  if (fd < 0) return {};
  Response response;
  if (WriteAll(fd, raw_request)) response = ReadResponse(fd, timeout);
  close(fd);
  return response;
}

std::string RequestText(const std::string& method, const std::string& target,
                        const std::string& body, const std::string& token) {
  std::string text = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                  "Connection: close\r\n");
  if (!token.empty()) absl::StrAppend(&text, "Authorization: Bearer ", token, "\r\n");
  if (!body.empty()) {
    absl::StrAppend(&text, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&text, "\r\n", body);
  return text;
}

Response Http(int port, const std::string& method, const std::string& target,
              const std::string& body = "", const std::string& token = "") {
  return Exchange(port, RequestText(method, target, body, token));
}

// Everything the peer sends until it closes (or the deadline passes).
std::string ReadUntilClosed(int fd, std::chrono::milliseconds timeout, bool* closed) {
  std::string raw;
  *closed = false;
  const auto deadline = Clock::now() + timeout;
  char chunk[16384];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    raw.append(chunk, static_cast<size_t>(n));
  }
  return raw;
}

int CountOf(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// The pid of the gateway child listening on `port` (harness::Service passes
// --listen=127.0.0.1:<port>), or -1.
pid_t GatewayPid(int port) {
  const std::string wanted = absl::StrCat("--listen=127.0.0.1:", port);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream file(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    size_t at = cmdline.find(wanted);
    if (at != std::string::npos && (at == 0 || cmdline[at - 1] == '\0') &&
        at + wanted.size() <= cmdline.size() &&
        (at + wanted.size() == cmdline.size() || cmdline[at + wanted.size()] == '\0')) {
      found = pid;
      break;
    }
  }
  closedir(proc);
  return found;
}

// VmRSS of `pid` in KiB, or -1.
long VmRssKib(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// An SSE stream read on a background thread into one string.
class Stream {
 public:
  // read = false: a slow reader that never reads (its receive buffer small).
  Stream(int port, const std::string& target, bool read = true)
      : fd_(Connect(port, read ? 0 : 2048)) {
    if (fd_ < 0) return;
    WriteAll(fd_, absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                               "Accept: text/event-stream\r\n\r\n"));
    if (read) thread_ = std::thread([this] { Loop(); });
  }
  ~Stream() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  std::string raw() {
    std::lock_guard<std::mutex> lock(mu_);
    return raw_;
  }
  size_t size() { return raw().size(); }
  // Writes on the stream's own socket; false once the gateway closed it or
  // no byte could be sent for 10 s.
  bool Send(const std::string& data) {
    if (fd_ < 0) return false;
    timeval limit{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    return WriteAll(fd_, data);
  }
  int status() {
    std::string text = raw();
    if (text.rfind("HTTP/1.1 ", 0) != 0) return 0;
    return std::atoi(text.c_str() + 9);
  }
  bool closed() const { return closed_; }
  // Waits until `needle` appears at or after offset `from`.
  bool WaitFor(const std::string& needle, std::chrono::milliseconds timeout, size_t from = 0) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      std::string text = raw();
      if (text.size() > from && text.find(needle, from) != std::string::npos) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  bool WaitClosed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline && !closed_) std::this_thread::sleep_for(50ms);
    return closed_;
  }

 private:
  void Loop() {
    char chunk[16384];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        closed_ = true;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      raw_.append(chunk, static_cast<size_t>(n));
    }
  }
  int fd_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::mutex mu_;
  std::string raw_;
};

std::string ShortToken(const std::string& subject, absl::Duration ttl,
                       std::vector<std::string> roles = {"screen"}) {
  common::auth::TokenRequest request;
  request.org = kOrg;
  request.subject = subject;
  request.roles = std::move(roles);
  request.ttl = ttl;
  auto token = common::auth::MintHs256(request, common::auth::kDevJwtSecret, absl::Now());
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : "";
}

int JsonInt(const std::string& json, const std::string& name) {
  size_t at = json.find("\"" + name + "\":");
  return at == std::string::npos ? -1 : std::atoi(json.c_str() + at + name.size() + 3);
}

// ---- the platform ------------------------------------------------------------

class GatewayHardeningTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    redis_ = new harness::RedisServer();
    ledger_ = new harness::Service(LEDGER_BINARY, redis_->address());
    kudos_ = new harness::Service(KUDOS_BINARY, redis_->address(),
                                  {"--ledger=" + ledger_->address()});
    leaderboard_ = new harness::Service(LEADERBOARD_BINARY, redis_->address());
    auto seeder = StartGateway({});
    admin_ = harness::MintToken(kOrg, "root", {"admin"});
    const int port = seeder->port();
    ASSERT_EQ(Http(port, "POST", "/v1/teams", R"({"teamId":"t1","displayName":"One"})", admin_)
                  .status,
              200);
    for (const char* person : {"alice", "bob", "carol"}) {
      Response r = Http(port, "POST", "/v1/people",
                        absl::StrCat(R"({"personId":")", person, R"(","displayName":")", person,
                                     R"(","teamId":"t1","active":true})"),
                        admin_);
      ASSERT_EQ(r.status, 200) << r.body;
    }
    // Room for the slow-reader case's many kudos.
    Response settings = Http(
        port, "PUT", "/v1/settings",
        R"({"maxKudosPerMinute":10000,"weeklyPairCapPoints":100000,"minPoints":1,)"
        R"("maxPoints":50,"allowance":{"pointsPerPeriod":100000,"period":"ALLOWANCE_PERIOD_MONTH"}})",
        admin_);
    ASSERT_EQ(settings.status, 200) << settings.body;
    Response policy = Http(port, "PUT", "/v1/allowance/policy",
                           R"({"pointsPerPeriod":100000,"period":"ALLOWANCE_PERIOD_MONTH"})",
                           admin_);
    ASSERT_EQ(policy.status, 200) << policy.body;
  }
  static void TearDownTestSuite() {
    delete leaderboard_;
    delete kudos_;
    delete ledger_;
    delete redis_;
  }

  static std::unique_ptr<harness::Service> StartGateway(std::vector<std::string> flags) {
    std::vector<std::string> args = {"--kudos=" + kudos_->address(),
                                     "--ledger=" + ledger_->address(),
                                     "--leaderboard=" + leaderboard_->address(),
                                     "--heartbeat_ms=300", "--max_backoff_ms=1000",
                                     "--health_interval_ms=200"};
    args.insert(args.end(), flags.begin(), flags.end());
    AddCompatibilityFlag(args);
    auto gateway = std::make_unique<harness::Service>(GatewayBinary(), redis_->address(), args);
    WaitServing(gateway->port());
    return gateway;
  }
  static void WaitServing(int port) {
    for (int i = 0; i < 100; ++i) {
      if (Http(port, "GET", "/").status == 200) return;
      std::this_thread::sleep_for(50ms);
    }
  }
  static Response SendKudos(int port, const std::string& giver, const std::string& request_id,
                            const std::string& message = "Thanks") {
    const std::string recipient = giver == "bob" ? "carol" : "bob";
    return Http(port, "POST", "/v1/kudos",
                absl::StrCat(R"({"requestId":")", request_id, R"(","recipientIds":[")", recipient,
                             R"("],"message":")", message,
                             R"(","values":["teamwork"],"pointsPerRecipient":1})"),
                harness::MintToken(kOrg, giver));
  }
  static int SseClients(int port) { return JsonInt(Http(port, "GET", "/healthz").body, "sseClients"); }

  static harness::RedisServer* redis_;
  static harness::Service *ledger_, *kudos_, *leaderboard_;
  static std::string admin_;
};

harness::RedisServer* GatewayHardeningTest::redis_ = nullptr;
harness::Service* GatewayHardeningTest::ledger_ = nullptr;
harness::Service* GatewayHardeningTest::kudos_ = nullptr;
harness::Service* GatewayHardeningTest::leaderboard_ = nullptr;
std::string GatewayHardeningTest::admin_;

const char kBoard[] =
    "/v1/stream/leaderboard?metric=points_received&window=week&scope=org&top_n=5&access_token=";

// ---- finding 3: the shared watch's credential, per-client expiry and charges

TEST_F(GatewayHardeningTest,
       SharedWatch_LongLivedClientKeepsUpdatesAfterAShortTokenExpiresAndTheLeaderboardRestarts) {
  auto gateway = StartGateway({});
  Stream long_lived(gateway->port(), kBoard + harness::MintToken(kOrg, "wall-long", {"screen"}));
  ASSERT_TRUE(long_lived.WaitFor("event: snapshot", 30s)) << long_lived.raw();
  // Joins last: the old gateway renewed the shared watch with its token.
  Stream short_lived(gateway->port(), kBoard + ShortToken("wall-short", absl::Seconds(4)));
  ASSERT_TRUE(short_lived.WaitFor("event: snapshot", 30s)) << short_lived.raw();
  std::this_thread::sleep_for(5s);  // the short token has expired

  const size_t mark = long_lived.size();
  leaderboard_->Restart();
  ASSERT_EQ(SendKudos(gateway->port(), "alice", "lb-restart-shared").status, 200);
  EXPECT_TRUE(long_lived.WaitFor("event: snapshot", 20s, mark))
      << long_lived.raw().substr(mark);
  EXPECT_EQ(long_lived.raw().find("UNAUTHENTICATED", mark), std::string::npos)
      << long_lived.raw().substr(mark);
}

TEST_F(GatewayHardeningTest, Sse_EachClientIsClosedWithReauthAtItsOwnTokenExpiry) {
  auto gateway = StartGateway({});
  Stream long_lived(gateway->port(), kBoard + harness::MintToken(kOrg, "wall-a", {"screen"}));
  Stream short_lived(gateway->port(), kBoard + ShortToken("wall-b", absl::Seconds(3)));
  ASSERT_TRUE(short_lived.WaitFor("event: snapshot", 30s)) << short_lived.raw();
  ASSERT_TRUE(long_lived.WaitFor("event: snapshot", 30s)) << long_lived.raw();

  EXPECT_TRUE(short_lived.WaitFor("event: reauth", 30s)) << short_lived.raw();
  EXPECT_TRUE(short_lived.WaitClosed(30s));
  EXPECT_NE(short_lived.raw().find("UNAUTHENTICATED"), std::string::npos);
  // The other member of the same watch streams on.
  const size_t mark = long_lived.size();
  EXPECT_TRUE(long_lived.WaitFor(": heartbeat", 30s, mark));
  EXPECT_FALSE(long_lived.closed());
  EXPECT_EQ(long_lived.raw().find("event: reauth"), std::string::npos);
}

TEST_F(GatewayHardeningTest, Sse_StreamSlotsAreChargedToEachPerson) {
  auto gateway = StartGateway({"--max_streams_per_person=2"});
  const int port = gateway->port();
  Stream first(port, kBoard + harness::MintToken(kOrg, "alice"));
  Stream second(port, kBoard + harness::MintToken(kOrg, "alice"));
  ASSERT_TRUE(first.WaitFor("event: snapshot", 30s)) << first.raw();
  ASSERT_TRUE(second.WaitFor("event: snapshot", 30s)) << second.raw();

  Response third = Http(port, "GET", kBoard + harness::MintToken(kOrg, "alice"));
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_NE(third.body.find("RESOURCE_EXHAUSTED"), std::string::npos) << third.body;
  EXPECT_FALSE(third.headers["retry-after"].empty());
  // Another person on the same board is not charged for alice's streams.
  Stream bob(port, kBoard + harness::MintToken(kOrg, "bob"));
  EXPECT_TRUE(bob.WaitFor("event: snapshot", 30s)) << bob.raw();
}

TEST_F(GatewayHardeningTest, Sse_ConnectsAreChargedToEachPersonsRateLimit) {
  auto gateway = StartGateway({"--rate_limit_person_rps=0.2", "--rate_limit_person_burst=2"});
  const int port = gateway->port();
  // Each connect is charged to its own person, though all share one watch.
  for (int i = 0; i < 2; ++i) {
    Response streamed = Exchange(
        port, absl::StrCat("GET ", kBoard, harness::MintToken(kOrg, "carol"),
                           " HTTP/1.0\r\nHost: h\r\n\r\n"),
        1s);
    EXPECT_NE(streamed.status, 429) << streamed.body;
  }
  Response limited = Http(port, "GET", kBoard + harness::MintToken(kOrg, "carol"));
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_NE(limited.body.find("rate limit"), std::string::npos) << limited.body;
  EXPECT_FALSE(limited.headers["retry-after"].empty());
  Stream bob(port, kBoard + harness::MintToken(kOrg, "bob"));
  EXPECT_TRUE(bob.WaitFor("event: snapshot", 30s)) << bob.raw();
}

// ---- finding 5: bodies, connections, SSE clients per token, slow readers ----

TEST_F(GatewayHardeningTest, Body_OverTheLimitByContentLengthIsRefusedBeforeItIsSent) {
  auto gateway = StartGateway({});
  // Headers only: the 10 MiB body is never sent, so only a refusal judged
  // on Content-Length can answer.
  const std::string head = absl::StrCat(
      "POST /v1/kudos HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ",
      harness::MintToken(kOrg, "alice"), "\r\nContent-Type: application/json\r\n",
      "Content-Length: 10485760\r\n\r\n");
  Response response = Exchange(gateway->port(), head, 30s);
  EXPECT_EQ(response.status, 413) << response.body;
  EXPECT_NE(response.body.find("RESOURCE_EXHAUSTED"), std::string::npos) << response.body;
}

TEST_F(GatewayHardeningTest, Body_WithoutAValidTokenIsRefusedBeforeItIsSent) {
  auto gateway = StartGateway({});
  for (const std::string& authorization : {std::string(""),
                                          std::string("Authorization: Bearer not-a-jwt\r\n")}) {
    const std::string head = absl::StrCat("POST /v1/kudos HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                                          authorization,
                                          "Content-Type: application/json\r\n"
                                          "Content-Length: 200000\r\n\r\n");
    Response response = Exchange(gateway->port(), head, 30s);
    EXPECT_EQ(response.status, 401) << authorization << response.body;
    EXPECT_NE(response.body.find("UNAUTHENTICATED"), std::string::npos) << response.body;
  }
  // A refused body of known length is discarded and the connection goes on.
  int fd = Connect(gateway->port());
  ASSERT_GE(fd, 0);
  const std::string body(1000, 'x');
  ASSERT_TRUE(WriteAll(fd, absl::StrCat("POST /v1/kudos HTTP/1.1\r\nHost: h\r\nContent-Length: ",
                                        body.size(), "\r\n\r\n", body,
                                        "GET / HTTP/1.1\r\nHost: h\r\n\r\n")));
  std::string pending;  // both answers may arrive in one read
  EXPECT_EQ(ReadResponse(fd, 30s, &pending).status, 401);
  EXPECT_EQ(ReadResponse(fd, 30s, &pending).status, 200);
  close(fd);
}

TEST_F(GatewayHardeningTest, Body_BytesArrivingAtOnceAreBoundedAcrossConnections) {
  auto gateway = StartGateway({"--max_body_bytes_in_flight=300000"});
  const int port = gateway->port();
  const std::string token = harness::MintToken(kOrg, "alice");
  auto head = [&](size_t length) {
    return absl::StrCat("POST /v1/kudos HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer ", token,
                        "\r\nContent-Type: application/json\r\nContent-Length: ", length,
                        "\r\n\r\n");
  };
  // A slow upload holds 200,000 bytes of the budget...
  int slow = Connect(port);
  ASSERT_GE(slow, 0);
  ASSERT_TRUE(WriteAll(slow, head(200000) + std::string(1000, ' ')));
  // ...so another 200,000-byte body is refused before it is sent.
  Response refused = Exchange(port, head(200000), 30s);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers["retry-after"], "1");
  EXPECT_NE(refused.body.find("bytes of request bodies"), std::string::npos) << refused.body;
  // The slow upload completes (an invalid kudos: 400) and frees its share.
  ASSERT_TRUE(WriteAll(slow, std::string(199000, ' ')));
  EXPECT_EQ(ReadResponse(slow, 30s).status, 400);
  close(slow);
  Response after = Http(port, "POST", "/v1/kudos", std::string(200000, ' '), token);
  EXPECT_EQ(after.status, 400) << after.body;
}

TEST_F(GatewayHardeningTest, Head_LargerThanTheLimitIsRefusedWith431) {
  auto gateway = StartGateway({});
  const std::string head = absl::StrCat("GET / HTTP/1.1\r\nHost: h\r\nX-Padding: ",
                                        std::string(20 * 1024, 'p'), "\r\n\r\n");
  Response response = Exchange(gateway->port(), head, 30s);
  EXPECT_EQ(response.status, 431) << response.body;
  EXPECT_NE(response.body.find("request head is larger than 16 KiB"), std::string::npos)
      << response.body;
}

TEST_F(GatewayHardeningTest, Connections_PastTheCapAreRefusedWith503AndServedAgainAfter) {
  auto gateway = StartGateway({"--max_connections=8"});
  const int port = gateway->port();
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  Response refused = Http(port, "GET", "/healthz");
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.headers["retry-after"], "1");
  EXPECT_NE(refused.body.find("UNAVAILABLE"), std::string::npos) << refused.body;
  for (int fd : idle) close(fd);
  Response served;
  for (int i = 0; i < 100 && served.status != 200; ++i) {
    served = Http(port, "GET", "/healthz");
    if (served.status != 200) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(served.status, 200) << served.body;
}

TEST_F(GatewayHardeningTest, Accept_SurvivesRunningOutOfDescriptors) {
#ifdef KUDOS_SANITIZED
  // The sanitizer runtimes need descriptors of their own: UBSan probes memory
  // through a pipe, so with none left its vptr check reports valid gRPC
  // objects as invalid and aborts. The plain build runs this test.
  GTEST_SKIP() << "running a sanitized process out of descriptors tests the sanitizer";
#endif
  // A gateway limited to 64 descriptors, under a cap it cannot reach.
  const int port = harness::FreePort();
  std::vector<std::string> args = {
      "--nofile=64:64", GatewayBinary(), "--http=127.0.0.1:" + std::to_string(port),
      "--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
      "--leaderboard=" + leaderboard_->address(), "--max_connections=1000"};
  AddCompatibilityFlag(args);
  harness::Process gateway("/usr/bin/prlimit", args, {{"KUDOS_DEV_INSECURE_DEFAULTS", "1"}});
  gateway.Start();
  WaitServing(port);
  std::vector<int> held;
  for (int i = 0; i < 100; ++i) {
    int fd = Connect(port);
    if (fd >= 0) held.push_back(fd);
  }
  std::this_thread::sleep_for(500ms);  // the gateway hits EMFILE meanwhile
  for (int fd : held) close(fd);
  Response served;
  for (int i = 0; i < 100 && served.status != 200; ++i) {
    served = Http(port, "GET", "/healthz", "", "");
    if (served.status != 200) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(served.status, 200) << served.body;
}

TEST_F(GatewayHardeningTest, Sse_ClientsPerTokenAreCapped) {
  auto gateway = StartGateway({"--max_sse_per_token=3"});
  const int port = gateway->port();
  const std::string token = harness::MintToken(kOrg, "wall-cap", {"screen"});
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<Stream>(port, kBoard + token));
    ASSERT_TRUE(streams.back()->WaitFor("event: snapshot", 30s)) << streams.back()->raw();
  }
  Response refused = Http(port, "GET", kBoard + token);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_NE(refused.body.find("maximum of 3 open streams"), std::string::npos) << refused.body;
  EXPECT_FALSE(refused.headers["retry-after"].empty());
  // Another token of the same screen wall is its own count.
  Stream other(port, kBoard + harness::MintToken(kOrg, "wall-cap-2", {"screen"}));
  EXPECT_TRUE(other.WaitFor("event: snapshot", 30s));
  // A closed stream frees its place.
  streams.pop_back();
  bool again = false;
  for (int i = 0; i < 50 && !again; ++i) {
    Stream retry(port, kBoard + token);
    again = retry.WaitFor("event: snapshot", 2s);
  }
  EXPECT_TRUE(again);
}

TEST_F(GatewayHardeningTest, Sse_SlowReaderIsDisconnectedPastThePendingLimit) {
  auto gateway = StartGateway({"--sse_max_pending_bytes=16384"});
  const int port = gateway->port();
  const std::string feed = "/v1/stream/feed?access_token=";
  Stream fast(port, feed + harness::MintToken(kOrg, "wall-fast", {"screen"}));
  Stream slow(port, feed + harness::MintToken(kOrg, "wall-slow", {"screen"}), /*read=*/false);
  ASSERT_TRUE(fast.WaitFor(": connected", 30s));
  int clients = 0;
  for (int i = 0; i < 100 && clients != 2; ++i) {
    clients = SseClients(port);
    if (clients != 2) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(clients, 2);
  // Each kudos is a ~1.3 KB event; a few hundred KB overflow every buffer.
  const std::string message(900, 'm');
  int sent = 0;
  for (int batch = 0; batch < 40 && clients == 2; ++batch) {
    for (int i = 0; i < 10; ++i, ++sent) {
      const char* giver = sent % 2 == 0 ? "alice" : "carol";
      ASSERT_EQ(SendKudos(port, giver, absl::StrCat("slow-", sent), message).status, 200);
    }
    clients = SseClients(port);
  }
  for (int i = 0; i < 100 && clients != 1; ++i) {
    std::this_thread::sleep_for(50ms);
    clients = SseClients(port);
  }
  EXPECT_EQ(clients, 1) << "after " << sent << " kudos";
  // The fast reader got everything.
  EXPECT_TRUE(fast.WaitFor(absl::StrCat("slow-", sent - 1), 30s) ||
              fast.WaitFor("event: kudos", 1s));
  EXPECT_FALSE(fast.closed());
}

// ---- review of the guard: bodies libevent never reads, input on SSE ---------

// libevent 2.1.12 reads a body only for POST, PUT and PATCH: a GET (HEAD,
// DELETE, OPTIONS) announcing one has those bytes parsed as the next
// request. The guard once admitted such a "body" with a valid token, so a
// request hidden in it skipped the guard, and its body, charged to nobody,
// aborted the gateway. Now the head is refused and the connection closed.
TEST_F(GatewayHardeningTest, Body_OnAMethodWithoutBodiesIsRefusedNotSmuggledAsARequest) {
  auto gateway = StartGateway({});
  const int port = gateway->port();
  const std::string token = harness::MintToken(kOrg, "alice");
  for (const std::string method : {"GET", "DELETE", "OPTIONS", "HEAD"}) {
    SCOPED_TRACE(method);
    const std::string marker =
        absl::StrCat("smuggled-", method, "-", absl::ToUnixMicros(absl::Now()));
    const std::string kudos =
        absl::StrCat(R"({"requestId":")", marker, R"(","recipientIds":["bob"],"message":")",
                     marker, R"(","values":["teamwork"],"pointsPerRecipient":1})");
    const std::string smuggled = absl::StrCat(
        "POST /v1/kudos HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer ", token,
        "\r\nContent-Type: application/json\r\nContent-Length: ", kudos.size(), "\r\n\r\n",
        kudos);
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(WriteAll(fd, absl::StrCat(method, " /healthz HTTP/1.1\r\nHost: h\r\n",
                                          "Authorization: Bearer ", token,
                                          "\r\nContent-Length: ", smuggled.size(), "\r\n\r\n",
                                          smuggled)));
    bool closed = false;
    const std::string raw = ReadUntilClosed(fd, 30s, &closed);
    close(fd);
    EXPECT_EQ(raw.rfind("HTTP/1.1 400 ", 0), 0u) << raw;
    EXPECT_EQ(CountOf(raw, "HTTP/1.1 "), 1) << raw;  // nothing answered the hidden request
    EXPECT_TRUE(closed);
    if (method != "HEAD") {
      EXPECT_NE(raw.find("carry no body"), std::string::npos) << raw;
    }
    // The gateway is still up, and the hidden kudos was never sent.
    Response health = Http(port, "GET", "/healthz");
    ASSERT_EQ(health.status, 200) << "the gateway died: " << health.body;
    Response listed =
        Http(port, "GET", "/v1/kudos?filter.giver_id=alice&page_size=50", "", admin_);
    ASSERT_EQ(listed.status, 200) << listed.body;
    EXPECT_EQ(listed.body.find(marker), std::string::npos) << listed.body;
  }
  // Content-Length: 0 on a GET stays an ordinary request.
  Response plain = Exchange(port, "GET /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n");
  EXPECT_EQ(plain.status, 200) << plain.body;
}

// After evhttp_send_reply_start libevent keeps reading an SSE connection with
// no read callback: complete heads sent on it once piled up without limit.
TEST_F(GatewayHardeningTest, Sse_InputOnAStreamIsNotBuffered) {
  auto gateway = StartGateway({});
  const int port = gateway->port();
  const pid_t pid = GatewayPid(port);
  ASSERT_GT(pid, 0);
  Stream stream(port, kBoard + harness::MintToken(kOrg, "wall-talker", {"screen"}));
  ASSERT_TRUE(stream.WaitFor("event: snapshot", 30s)) << stream.raw();
  ASSERT_EQ(Http(port, "GET", "/healthz").status, 200);
  const long before = VmRssKib(pid);
  ASSERT_GT(before, 0);
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string heads;
  heads.reserve(16 * 1024 * 1024 + head.size());
  while (heads.size() < 16 * 1024 * 1024) heads += head;
  const bool all_sent = stream.Send(heads);  // false once the gateway closed the stream
  // The gateway's loop got past this connection's input.
  Response health = Http(port, "GET", "/healthz");
  ASSERT_EQ(health.status, 200) << health.body;
  const long after = VmRssKib(pid);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed chunks resident (its quarantine), so RSS says nothing
  // here; the stream closed below pins the bound. Whether every byte was
  // accepted says nothing either: the kernel may take all 16 MiB into the
  // gateway socket's receive buffer (tcp_rmem's max is 32 MiB on Debian's
  // defaults) before the gateway reads its bound's worth and closes (a CI
  // run saw all of it accepted after the gateway closed at 69,632 bytes).
  std::printf("all sent: %d; VmRSS %ld -> %ld KiB\n", all_sent ? 1 : 0, before, after);
#else
  EXPECT_LT(after - before, 4 * 1024) << "VmRSS " << before << " -> " << after
                                      << " KiB; all sent: " << all_sent;
#endif
  // A client talking on a stream is closed; the heads were never answered.
  EXPECT_TRUE(stream.WaitClosed(30s));
  EXPECT_EQ(stream.raw().find("\"status\":\"SERVING\""), std::string::npos);
}

// ---- finding 8: readiness is the gateway's own -------------------------------

TEST_F(GatewayHardeningTest, Readiness_StaysUpAndKudosFlowWhileTheLeaderboardIsDown) {
  auto gateway = StartGateway({});
  const int port = gateway->port();
  leaderboard_->Stop();
  Response health;
  for (int i = 0; i < 100; ++i) {
    health = Http(port, "GET", "/healthz");
    if (health.body.find("\"leaderboard\":\"UNAVAILABLE") != std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_NE(health.body.find("\"leaderboard\":\"UNAVAILABLE"), std::string::npos) << health.body;
  EXPECT_NE(health.body.find("\"kudos\":\"SERVING\""), std::string::npos) << health.body;
  Response sent = SendKudos(port, "alice", "while-leaderboard-down");
  EXPECT_EQ(sent.status, 200) << sent.body;
  leaderboard_->Start();
}

}  // namespace
