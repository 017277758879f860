// The HTTP/1.1 + Server-Sent Events gateway in front of the gRPC services.
//
// One libevent loop thread owns every HTTP connection. gRPC calls are made
// with the callback API; their completions are posted back to the loop
// thread through a mutex-protected queue and a user event, so nothing on the
// loop ever blocks on the network. Identical live streams (same org, roles
// and request) share one upstream gRPC watch fanned out to all clients.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/auth/auth.h"
#include "common/ratelimit/rate_limit.h"

namespace gateway {

struct GatewayOptions {
  std::string http_address = "127.0.0.1:8080";
  std::string kudos_address = "127.0.0.1:50052";
  std::string ledger_address = "127.0.0.1:50051";
  std::string leaderboard_address = "127.0.0.1:50053";
  // integrations.v1.HttpIngressService: /slack/, /scim/ and /v1/export/ are
  // forwarded there unchanged (issue 17).
  std::string integrations_address = "127.0.0.1:50054";
  // programs.v1 (issue 18: budgets, awards, celebrations): programs_server.
  std::string programs_address = "127.0.0.1:50055";
  // Allowed portal origins; "*" allows any.
  std::vector<std::string> cors_origins = {"*"};
  // Deadline of unary calls.
  std::chrono::milliseconds call_timeout{5000};
  // Deadline of one upstream watch; renewed transparently when reached.
  std::chrono::milliseconds watch_deadline{std::chrono::minutes(30)};
  std::chrono::milliseconds heartbeat{15000};
  // Longest backoff between upstream watch attempts.
  int max_backoff_ms = 5000;
  // The `retry:` hint sent to EventSource clients.
  int sse_retry_ms = 2000;
  // Open HTTP connections served; past it requests get 503 with Retry-After,
  // and past kConnectionOverflow more the listener pauses.
  int max_connections = 4096;
  // SSE streams one token may hold open at once.
  int max_sse_per_token = 16;
  // Bytes of request bodies the gateway receives at once (each admitted by
  // its Content-Length); past it a body is refused with 503 before it is read.
  size_t max_body_bytes_in_flight = 64 * 1024 * 1024;
  // A client with more output than this waiting is disconnected.
  size_t max_pending_bytes = 256 * 1024;
  // How often upstream health is probed (reported by /healthz, never gating it).
  std::chrono::milliseconds health_interval{2000};
  // Rate limits (per person and token, charged per request the gateway
  // serves itself: every SSE connect) and streams per person.
  common::ratelimit::Options limits;
  common::auth::JwtConfig jwt;
};

class Gateway {
 public:
  explicit Gateway(GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Binds the HTTP listener.
  absl::Status Start();
  // Runs the loop until Stop() or SIGINT/SIGTERM.
  void Run();
  // Thread-safe.
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gateway
