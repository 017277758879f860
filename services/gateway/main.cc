// kudos gateway: HTTP/JSON + Server-Sent Events in front of the gRPC
// services, and the team screen page. Flags and wiring only.
#include <signal.h>
#include <sys/resource.h>

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
#include "services/gateway/gateway_server.h"

using common::config::EnvOr;

ABSL_FLAG(std::string, http, EnvOr("HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address");
ABSL_FLAG(std::string, listen, "", "alias of --http (the test harness passes --listen)");
ABSL_FLAG(std::string, redis, "", "ignored: the gateway keeps no state in Redis");
ABSL_FLAG(std::string, kudos, EnvOr("KUDOS_ADDR", "127.0.0.1:50052"), "kudos service");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service");
ABSL_FLAG(std::string, leaderboard, EnvOr("LEADERBOARD_ADDR", "127.0.0.1:50053"),
          "leaderboard service");
ABSL_FLAG(std::string, cors_origin, EnvOr("CORS_ORIGIN", "*"),
          "allowed portal origins, comma-separated, or *");
ABSL_FLAG(int, call_timeout_ms, std::atoi(EnvOr("CALL_TIMEOUT_MS", "5000").c_str()),
          "deadline of unary upstream calls");
ABSL_FLAG(int, heartbeat_ms, std::atoi(EnvOr("SSE_HEARTBEAT_MS", "15000").c_str()),
          "SSE heartbeat comment interval");
ABSL_FLAG(int, sse_retry_ms, 2000, "retry hint sent to EventSource clients");
ABSL_FLAG(int, max_backoff_ms, 5000, "longest wait between upstream watch attempts");

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
  options.cors_origins = absl::StrSplit(absl::GetFlag(FLAGS_cors_origin), ',', absl::SkipEmpty());
  options.call_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_call_timeout_ms));
  options.heartbeat = std::chrono::milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));
  options.sse_retry_ms = absl::GetFlag(FLAGS_sse_retry_ms);
  options.max_backoff_ms = absl::GetFlag(FLAGS_max_backoff_ms);
  options.jwt = common::auth::JwtConfigFromEnvironment();

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
