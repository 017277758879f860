#include "tests/integrations/webhooks_receiver.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace webhooks_test {

Receiver::Receiver() {
  base_ = event_base_new();
  http_ = evhttp_new(base_);
  if (base_ == nullptr || http_ == nullptr) throw std::runtime_error("receiver: libevent");
  evhttp_set_gencb(http_, &Receiver::OnRequest, this);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
  if (bound == nullptr) throw std::runtime_error("receiver: bind 127.0.0.1:0");
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);
  responder_ = [](const ReceivedRequest&, int) { return Answer{}; };
  tick_ = event_new(base_, -1, EV_PERSIST, &Receiver::OnTick, this);
  timeval every = {0, 10000};
  event_add(tick_, &every);
  thread_ = std::thread([this] { event_base_dispatch(base_); });
}

Receiver::~Receiver() {
  stop_ = true;
  thread_.join();
  // Held requests whose sender went away are freed with their connections.
  event_free(tick_);
  evhttp_free(http_);
  event_base_free(base_);
}

std::string Receiver::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void Receiver::SetResponder(Responder responder) {
  std::lock_guard<std::mutex> lock(mu_);
  responder_ = std::move(responder);
}

std::vector<ReceivedRequest> Receiver::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t Receiver::Count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

void Receiver::ReleaseHeld(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  release_status_ = status;
}

void Receiver::OnRequest(evhttp_request* request, void* arg) {
  auto* self = static_cast<Receiver*>(arg);
  ReceivedRequest received;
  received.path = evhttp_request_get_uri(request);
  evkeyvalq* headers = evhttp_request_get_input_headers(request);
  for (evkeyval* header = headers->tqh_first; header != nullptr; header = header->next.tqe_next) {
    received.headers[absl::AsciiStrToLower(header->key)] = header->value;
  }
  evbuffer* input = evhttp_request_get_input_buffer(request);
  size_t size = evbuffer_get_length(input);
  received.body.assign(reinterpret_cast<const char*>(evbuffer_pullup(input, -1)), size);
  Answer answer;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    int index = static_cast<int>(self->requests_.size());
    answer = self->responder_(received, index);
    self->requests_.push_back(std::move(received));
  }
  if (answer.hold) {
    self->held_.push_back(request);
    self->held_count_ = static_cast<int>(self->held_.size());
    return;
  }
  evhttp_send_reply(request, answer.status, "answer", nullptr);
}

void Receiver::OnTick(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Receiver*>(arg);
  if (self->stop_) {
    event_base_loopbreak(self->base_);
    return;
  }
  int status = 0;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    status = self->release_status_;
    self->release_status_ = 0;
  }
  if (status == 0) return;
  // A request whose sender timed out and closed is freed by the reply.
  for (evhttp_request* request : self->held_) evhttp_send_reply(request, status, "released", nullptr);
  self->held_.clear();
  self->held_count_ = 0;
}

std::string ExpectedSignature(const std::string& secret, const std::string& id,
                              const std::string& timestamp, const std::string& body) {
  const std::string prefix = "whsec_";
  if (secret.compare(0, prefix.size(), prefix) != 0) return "not a whsec_ secret";
  std::string key;
  if (!absl::Base64Unescape(secret.substr(prefix.size()), &key)) return "not base64";
  std::string content = id + "." + timestamp + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &length);
  return "v1," + absl::Base64Escape(std::string(reinterpret_cast<char*>(mac), length));
}

}  // namespace webhooks_test
