// kudos gateway: HTTP/JSON + Server-Sent Events in front of the gRPC
// services, and the team screen page. Flags and wiring only.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/auth/auth.h"
#include "common/config/env.h"
#include "common/log/log.h"
#include "common/ratelimit/rate_limit.h"
#include "services/gateway/gateway_server.h"

using common::config::EnvOr;

ABSL_FLAG(std::string, http, EnvOr("HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address");
ABSL_FLAG(std::string, listen, "", "alias of --http (the test harness passes --listen)");
ABSL_FLAG(std::string, redis, "", "ignored: the gateway keeps no state in Redis");
ABSL_FLAG(std::string, kudos, EnvOr("KUDOS_ADDR", "127.0.0.1:50052"), "kudos service");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service");
ABSL_FLAG(std::string, leaderboard, EnvOr("LEADERBOARD_ADDR", "127.0.0.1:50053"),
          "leaderboard service");
ABSL_FLAG(std::string, integrations, EnvOr("INTEGRATIONS_ADDR", "127.0.0.1:50054"),
          "integrations service: /slack/, /scim/ and /v1/export/ are forwarded to it");
ABSL_FLAG(std::string, programs, EnvOr("PROGRAMS_ADDR", "127.0.0.1:50055"),
          "programs service: budgets, awards and celebrations (/v1/budgets, /v1/awards, "
          "/v1/celebrations)");
ABSL_FLAG(std::string, cors_origin, EnvOr("CORS_ORIGIN", "*"),
          "allowed portal origins, comma-separated, or *");
ABSL_FLAG(int, call_timeout_ms, std::atoi(EnvOr("CALL_TIMEOUT_MS", "5000").c_str()),
          "deadline of unary upstream calls");
ABSL_FLAG(int, heartbeat_ms, std::atoi(EnvOr("SSE_HEARTBEAT_MS", "15000").c_str()),
          "SSE heartbeat comment interval");
ABSL_FLAG(int, sse_retry_ms, 2000, "retry hint sent to EventSource clients");
ABSL_FLAG(int, max_backoff_ms, 5000, "longest wait between upstream watch attempts");
using common::config::IntEnvOr;

ABSL_FLAG(int, max_connections, static_cast<int>(IntEnvOr("MAX_CONNECTIONS", 4096)),
          "HTTP connections served at once; past it requests get 503 with Retry-After");
ABSL_FLAG(int, max_sse_per_token, static_cast<int>(IntEnvOr("MAX_SSE_PER_TOKEN", 16)),
          "SSE streams one token may hold open (0 = unlimited)");
ABSL_FLAG(int64_t, max_body_bytes_in_flight,
          IntEnvOr("MAX_BODY_BYTES_IN_FLIGHT", int64_t{64} * 1024 * 1024),
          "request body bytes received at once; past it bodies get 503 before being read");
ABSL_FLAG(int, sse_max_pending_bytes,
          static_cast<int>(IntEnvOr("SSE_MAX_PENDING_BYTES", 262144)),
          "an SSE client with more output waiting is disconnected");
ABSL_FLAG(int, health_interval_ms, static_cast<int>(IntEnvOr("HEALTH_INTERVAL_MS", 2000)),
          "how often upstream health is probed for /healthz");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  // One descriptor per SSE client: lift the soft limit to the hard one.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  gateway::GatewayOptions options;
  options.http_address = absl::GetFlag(FLAGS_listen).empty() ? absl::GetFlag(FLAGS_http)
                                                              : absl::GetFlag(FLAGS_listen);
  options.kudos_address = absl::GetFlag(FLAGS_kudos);
  options.ledger_address = absl::GetFlag(FLAGS_ledger);
  options.leaderboard_address = absl::GetFlag(FLAGS_leaderboard);
  options.integrations_address = absl::GetFlag(FLAGS_integrations);
  options.programs_address = absl::GetFlag(FLAGS_programs);
  options.cors_origins = absl::StrSplit(absl::GetFlag(FLAGS_cors_origin), ',', absl::SkipEmpty());
  options.call_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_call_timeout_ms));
  options.heartbeat = std::chrono::milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  options.sse_retry_ms = absl::GetFlag(FLAGS_sse_retry_ms);
  options.max_backoff_ms = absl::GetFlag(FLAGS_max_backoff_ms);
  options.max_connections = std::max(1, absl::GetFlag(FLAGS_max_connections));
  options.max_sse_per_token = std::max(0, absl::GetFlag(FLAGS_max_sse_per_token));
  options.max_body_bytes_in_flight = static_cast<size_t>(
      std::max<int64_t>(256 * 1024, absl::GetFlag(FLAGS_max_body_bytes_in_flight)));
  options.max_pending_bytes =
      static_cast<size_t>(std::max(4096, absl::GetFlag(FLAGS_sse_max_pending_bytes)));
  options.health_interval =
      std::chrono::milliseconds(std::max(100, absl::GetFlag(FLAGS_health_interval_ms)));
  options.limits = common::ratelimit::OptionsFromFlags();
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      static_cast<rlim_t>(options.max_connections) + 256 > limit.rlim_cur) {
    common::log::Warning(absl::StrCat("gateway: --max_connections=", options.max_connections,
                                      " is near the descriptor limit ", limit.rlim_cur,
                                      "; accept errors will pause accepting"));
  }
  options.jwt = common::auth::JwtConfigFromEnvironment();
  // Only the services the integrations service calls accept delegated tokens;
  // the internet-facing gateway never does, not even with the development secret.
  options.jwt.delegating_services.clear();
  options.jwt.delegation_secret.clear();

  auto* server = new gateway::Gateway(options);
  absl::Status status = server->Start();
  if (!status.ok()) {
    common::log::Error(absl::StrCat("gateway: ", status.ToString()));
    return 1;
  }
  server->Run();
  common::log::Info("gateway: stopped");
  // Open streams end with the process; no need to unwind gRPC first.
  std::_Exit(0);
}
