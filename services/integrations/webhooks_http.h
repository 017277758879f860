// Many HTTP POSTs in flight on one thread, through libcurl's multi
// interface: each with its own timeout, so a slow receiver holds only its
// own request. Not thread-safe: one dispatcher thread owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace integrations::webhooks {

struct HttpPost {
  std::string url;
  std::string body;
  // "name: value" lines.
  std::vector<std::string> headers;
  std::chrono::milliseconds timeout{10000};
  // Plain http as well as https (development only).
  bool allow_http = false;
  // Handed back with the result.
  uint64_t tag = 0;
};

struct HttpResult {
  uint64_t tag = 0;
  // 2xx.
  bool ok = false;
  // 0 when no response came back.
  int http_status = 0;
  // Empty when ok, e.g. "HTTP 500", "timeout after 10000 ms".
  std::string error;
};

class HttpSender {
 public:
  HttpSender();
  ~HttpSender();
  HttpSender(const HttpSender&) = delete;
  HttpSender& operator=(const HttpSender&) = delete;

  // Starts the request; INTERNAL if curl refuses it (nothing started).
  absl::Status Start(HttpPost post);
  // Waits up to `wait` for network activity (or just waits when idle),
  // moves every transfer on, and returns those that finished.
  std::vector<HttpResult> Poll(std::chrono::milliseconds wait);
  size_t in_flight() const { return transfers_.size(); }

 private:
  struct Transfer;
  void* multi_;  // CURLM*
  absl::flat_hash_map<void*, std::unique_ptr<Transfer>> transfers_;  // by CURL*
};

}  // namespace integrations::webhooks
