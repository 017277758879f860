// SSE load test (not run by ctest): N Server-Sent Events clients on
// loopback, K kudos sent through the HTTP API, and each client's delay from
// the send to receiving that kudos on its stream (p50/p99/max).
//
// By default it starts its own redis-server, services and gateway (real
// processes, like the integration tests); --gateway=host:port uses a running
// platform instead (then --admin_org must be an org it may set up).
//
//   sse_load --clients=1000 --kudos=20 --interval_ms=250
//
// Bounded: at most 5,000 clients, 1,000 kudos and --max_seconds overall.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/gateway/http_client.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

ABSL_FLAG(int, clients, 1000, "concurrent SSE clients (at most 5000)");
ABSL_FLAG(int, kudos, 20, "kudos to send (at most 1000)");
ABSL_FLAG(int, interval_ms, 250, "pause between two kudos");
ABSL_FLAG(int, max_seconds, 120, "hard limit on the whole run");
ABSL_FLAG(std::string, gateway, "", "host:port of a running gateway; empty starts a platform");
ABSL_FLAG(std::string, org, "load-org", "org of the tokens");
ABSL_FLAG(std::string, stream, "/v1/stream/feed",
          "SSE route: /v1/stream/feed, /v1/stream/screen?team=load, or "
          "/v1/stream/leaderboard?metric=points_received&window=week&scope=org");

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Client {
  int fd = -1;
  bool headers = false;
  int status = 0;
  std::string buffer;
  std::vector<int64_t> received_ns;  // per kudos index, 0 = not yet
  int count = 0;
};

int ConnectNonBlocking(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p / 100.0 * (values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n_clients = std::clamp(absl::GetFlag(FLAGS_clients), 1, 5000);
  const int n_kudos = std::clamp(absl::GetFlag(FLAGS_kudos), 1, 1000);
  const auto hard_deadline = Clock::now() + std::chrono::seconds(absl::GetFlag(FLAGS_max_seconds));
  const std::string org = absl::GetFlag(FLAGS_org);
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  // The platform.
  std::unique_ptr<harness::RedisServer> redis;
  std::unique_ptr<harness::Service> ledger, kudos, leaderboard, gateway;
  int port = 0;
  if (absl::GetFlag(FLAGS_gateway).empty()) {
    redis = std::make_unique<harness::RedisServer>();
    ledger = std::make_unique<harness::Service>(LEDGER_BINARY, redis->address());
    kudos = std::make_unique<harness::Service>(KUDOS_BINARY, redis->address(),
                                               std::vector<std::string>{"--ledger=" + ledger->address()});
    leaderboard = std::make_unique<harness::Service>(LEADERBOARD_BINARY, redis->address());
    gateway = std::make_unique<harness::Service>(
        GATEWAY_BINARY, redis->address(),
        std::vector<std::string>{"--kudos=" + kudos->address(), "--ledger=" + ledger->address(),
                                 "--leaderboard=" + leaderboard->address()});
    port = gateway->port();
  } else {
    std::string address = absl::GetFlag(FLAGS_gateway);
    if (!absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) {
      std::fprintf(stderr, "--gateway: host:port\n");
      return 2;
    }
  }

  // Directory: a team, five givers and five recipients; generous limits.
  const auto admin = std::map<std::string, std::string>{
      {"Authorization", "Bearer " + harness::MintToken(org, "load-admin", {"admin"})}};
  gwtest::Http(port, "POST", "/v1/teams", R"({"teamId":"load","displayName":"Load"})", admin);
  for (int i = 0; i < 5; ++i) {
    for (const char* role : {"giver", "recipient"}) {
      std::string id = absl::StrCat(role, i);
      gwtest::Http(port, "POST", "/v1/people",
                   absl::StrCat(R"({"personId":")", id, R"(","displayName":")", id,
                                R"(","teamId":"load","active":true})"),
                   admin);
    }
  }
  gwtest::HttpResponse settings = gwtest::Http(
      port, "PUT", "/v1/settings",
      R"({"timeZone":"UTC","allowance":{"pointsPerPeriod":"1000000","period":"ALLOWANCE_PERIOD_MONTH"},)"
      R"("minPoints":"1","maxPoints":"50","weeklyPairCapPoints":"1000000","maxKudosPerMinute":1000})",
      admin);
  if (settings.status != 200) {
    std::fprintf(stderr, "settings not raised (%d); rotating givers instead\n", settings.status);
  }

  // N SSE clients, one epoll thread. One screen token per client: the
  // gateway caps the streams of one token (a wall of screens, one each).
  const std::string stream = absl::GetFlag(FLAGS_stream);
  // Leaderboard streams: the first snapshot after a send counts as its update
  // (use --interval_ms above the service's coalescing window).
  const bool snapshots = stream.find("leaderboard") != std::string::npos;
  auto request_of = [&](int i) {
    return absl::StrCat("GET ", stream, stream.find('?') == std::string::npos ? "?" : "&",
                        "access_token=",
                        harness::MintToken(org, absl::StrCat("load-screen-", i), {"screen"}),
                        " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  };
  int epoll = epoll_create1(0);
  std::vector<Client> clients(n_clients);
  auto connect_start = Clock::now();
  for (int i = 0; i < n_clients; ++i) {
    Client& c = clients[i];
    c.received_ns.assign(n_kudos, 0);
    c.fd = ConnectNonBlocking(port);
    if (c.fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u32 = i;
    epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
    if (i % 200 == 199) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  std::vector<std::atomic<int64_t>> sent_ns(n_kudos);
  for (auto& s : sent_ns) s = 0;
  std::atomic<bool> sending_done{false};
  std::atomic<int> latest_sent{-1};
  std::atomic<int> sent_ok{0};
  std::vector<double> post_ms;

  std::string nonce = std::to_string(NowNs() % 1000000);
  std::string marker = "\"message\":\"load-" + nonce + "-";
  int connected = 0;
  std::vector<epoll_event> events(512);
  std::thread sender;
  bool started_sender = false;
  char buffer[65536];
  while (Clock::now() < hard_deadline) {
    int ready = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 20);
    const int64_t now = NowNs();
    for (int e = 0; e < ready; ++e) {
      Client& c = clients[events[e].data.u32];
      if (events[e].events & EPOLLOUT) {
        const std::string request = request_of(static_cast<int>(events[e].data.u32));
        send(c.fd, request.data(), request.size(), MSG_NOSIGNAL);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = events[e].data.u32;
        epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &ev);
      }
      if (!(events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
      ssize_t got;
      while ((got = recv(c.fd, buffer, sizeof(buffer), 0)) > 0) c.buffer.append(buffer, got);
      if (got == 0) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.fd = -1;
      }
      if (!c.headers) {
        size_t end = c.buffer.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        c.headers = true;
        c.status = std::atoi(c.buffer.c_str() + c.buffer.find(' ') + 1);
        if (c.status == 200) ++connected;
        c.buffer.erase(0, end + 4);
      }
      size_t pos;
      while ((pos = c.buffer.find("\n\n")) != std::string::npos) {
        size_t snap = c.buffer.find("event: snapshot");
        if (snapshots && snap != std::string::npos && snap < pos) {
          int index = latest_sent.load();
          if (index >= 0 && c.received_ns[index] == 0 && now > sent_ns[index].load()) {
            c.received_ns[index] = now;
            ++c.count;
          }
        }
        size_t at = c.buffer.find(marker);
        if (!snapshots && at != std::string::npos && at < pos) {
          int index = std::atoi(c.buffer.c_str() + at + marker.size());
          if (index >= 0 && index < n_kudos && c.received_ns[index] == 0) {
            c.received_ns[index] = now;
            ++c.count;
          }
        }
        c.buffer.erase(0, pos + 2);
      }
    }
    if (!started_sender && connected == n_clients) {
      started_sender = true;
      double connect_ms =
          std::chrono::duration<double, std::milli>(Clock::now() - connect_start).count();
      std::printf("%d SSE clients connected in %.0f ms\n", connected, connect_ms);
      std::fflush(stdout);
      sender = std::thread([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // upstream watch opens
        for (int k = 0; k < n_kudos && Clock::now() < hard_deadline; ++k) {
          std::string giver = absl::StrCat("giver", k % 5);
          std::string body = absl::StrCat(
              R"({"requestId":"load-)", nonce, "-", k, R"(","recipientIds":["recipient)", k % 5,
              R"("],"message":"load-)", nonce, "-", k, R"(","values":["teamwork"],)",
              R"("pointsPerRecipient":1})");
          auto headers = std::map<std::string, std::string>{
              {"Authorization", "Bearer " + harness::MintToken(org, giver)}};
          int64_t start = NowNs();
          sent_ns[k] = start;
          latest_sent = k;
          gwtest::HttpResponse r = gwtest::Http(port, "POST", "/v1/kudos", body, headers);
          post_ms.push_back((NowNs() - start) / 1e6);
          if (r.status == 200) {
            ++sent_ok;
          } else {
            std::fprintf(stderr, "kudos %d: HTTP %d %s\n", k, r.status, r.body.c_str());
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_interval_ms)));
        }
        sending_done = true;
      });
    }
    if (sending_done) {
      bool all = true;
      for (const Client& c : clients) all = all && c.count >= sent_ok.load();
      if (all) break;
      static auto grace_end = Clock::now() + std::chrono::seconds(10);
      if (Clock::now() > grace_end) break;
    }
  }
  if (sender.joinable()) sender.join();

  // Figures.
  std::vector<double> delays_ms;
  int64_t missing = 0;
  for (const Client& c : clients) {
    for (int k = 0; k < n_kudos; ++k) {
      if (sent_ns[k] == 0) continue;
      if (c.received_ns[k] == 0) {
        ++missing;
      } else {
        delays_ms.push_back((c.received_ns[k] - sent_ns[k]) / 1e6);
      }
    }
  }
  int within = 0;
  for (double d : delays_ms) within += d <= 250.0 ? 1 : 0;
  std::printf("clients: %d connected of %d; kudos sent: %d of %d\n", connected, n_clients,
              sent_ok.load(), n_kudos);
  std::printf("deliveries: %zu received, %lld missing\n", delays_ms.size(),
              static_cast<long long>(missing));
  std::printf("send -> SSE delivery (ms): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
              Percentile(delays_ms, 50), Percentile(delays_ms, 90), Percentile(delays_ms, 99),
              delays_ms.empty() ? 0.0 : *std::max_element(delays_ms.begin(), delays_ms.end()));
  std::printf("POST /v1/kudos (ms): p50 %.1f  p99 %.1f\n", Percentile(post_ms, 50),
              Percentile(post_ms, 99));
  std::printf("within 250 ms: %.2f%%\n",
              delays_ms.empty() ? 0.0 : 100.0 * within / delays_ms.size());
  for (Client& c : clients) {
    if (c.fd >= 0) close(c.fd);
  }
  close(epoll);
  const bool ok = missing == 0 && connected == n_clients && sent_ok.load() == n_kudos;
  std::printf("%s\n", ok ? "OK" : "INCOMPLETE");
  return ok ? 0 : 1;
}
