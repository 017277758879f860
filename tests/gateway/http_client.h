// A tiny HTTP/1.1 client over loopback sockets for the gateway tests, and a
// Server-Sent Events reader that collects events on a background thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gwtest {

// A socket connected to 127.0.0.1:port (CLOEXEC: services a test restarts
// must not inherit it), or -1. receive_buffer > 0 shrinks the socket's
// receive buffer before connecting (slow-reader tests).
int Connect(int port, int receive_buffer = 0);
// Sends all of `data`; false once the peer closed or the send timed out.
bool WriteAll(int fd, const std::string& data);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One request on a fresh connection (Connection: close). status 0 when the
// connection failed.
HttpResponse Http(int port, const std::string& method, const std::string& target,
                  const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {});

struct SseEvent {
  std::string event;  // "message" when unnamed
  std::string data;
};

// GET target as an HTTP/1.0 stream (no chunking), parsed into events.
class SseReader {
 public:
  SseReader(int port, const std::string& target,
            const std::map<std::string, std::string>& headers = {});
  ~SseReader();
  // Waits until an event satisfies pred; returns it (event empty on timeout).
  SseEvent WaitFor(const std::function<bool(const SseEvent&)>& pred,
                   std::chrono::milliseconds timeout);
  int status();           // HTTP status once headers arrived, else 0
  std::string raw();      // everything after the headers
  bool closed() const { return closed_; }

 private:
  void Loop();
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::string head_;
  std::string buffer_;  // unparsed
  std::string raw_;
  int status_ = 0;
  bool headers_done_ = false;
  std::vector<SseEvent> events_;
};

}  // namespace gwtest
