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

struct sockaddr;

namespace integrations::webhooks {

struct HttpPost {
  std::string url;
  std::string body;
  // "name: value" lines.
  std::vector<std::string> headers;
  std::chrono::milliseconds timeout{10000};
  // Plain http as well as https (development only).
  bool allow_http = false;
  // Connect to loopback, private, link-local, multicast addresses too
  // (development); otherwise such a connection fails "address not allowed".
  bool allow_private_addresses = false;
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

// False for loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10),
// link-local, unique-local, unspecified, multicast and reserved addresses:
// a webhook must not reach into the network it is sent from.
bool IsPublicAddress(const sockaddr* address);

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

 // One request's curl handle and buffers (public for curl's callbacks).
  struct Transfer;

 private:
  void* multi_;  // CURLM*
  absl::flat_hash_map<void*, std::unique_ptr<Transfer>> transfers_;  // by CURL*
};

}  // namespace integrations::webhooks
