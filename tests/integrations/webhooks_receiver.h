// A webhook receiver for tests: an HTTP server on 127.0.0.1 (libevent's
// evhttp on its own thread) that records every request and answers as the
// test says — a status code now, or hold the request until the test
// releases it (a slow receiver; a held request past the sender's timeout
// is a timeout).
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace webhooks_test {

struct ReceivedRequest {
  std::string path;
  // Lower-case names.
  std::map<std::string, std::string> headers;
  std::string body;
};

struct Answer {
  bool hold = false;
  int status = 200;
};

class Receiver {
 public:
  // `index`: how many requests came before this one.
  using Responder = std::function<Answer(const ReceivedRequest&, int index)>;

  Receiver();
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::string Url(const std::string& path = "/hook") const;
  void SetResponder(Responder responder);
  void AnswerAll(int status) {
    SetResponder([status](const ReceivedRequest&, int) { return Answer{false, status}; });
  }
  std::vector<ReceivedRequest> Requests() const;
  size_t Count() const;
  // Answers every held request with `status` (on the loop thread, soon).
  void ReleaseHeld(int status);
  int held() const { return held_count_.load(); }

 private:
  static void OnRequest(evhttp_request* request, void* self);
  static void OnTick(evutil_socket_t, short, void* self);

  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* tick_ = nullptr;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<ReceivedRequest> requests_;
  Responder responder_;
  int release_status_ = 0;  // under mu_: > 0 when a release is asked for
  std::vector<evhttp_request*> held_;  // loop thread only
  std::atomic<int> held_count_{0};
};

// HMAC-SHA256 "v1,<base64>" over id.timestamp.body with the base64-decoded
// part of a whsec_ secret: the receiver's side of the Standard Webhooks
// scheme, written here independently of the service's code.
std::string ExpectedSignature(const std::string& secret, const std::string& id,
                              const std::string& timestamp, const std::string& body);

}  // namespace webhooks_test
