#include "services/integrations/webhooks_http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"

namespace integrations::webhooks {
namespace {

// A receiver's answer body is not needed: read and dropped.
size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    KUDOS_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK, "libcurl initializes");
  });
}

bool IsPublicIpv4(uint32_t host_order) {
  auto in = [host_order](uint32_t net, int bits) {
    return (host_order >> (32 - bits)) == (net >> (32 - bits));
  };
  return !(in(0x00000000, 8) ||   // unspecified, "this network"
           in(0x0A000000, 8) ||   // 10/8
           in(0x64400000, 10) ||  // 100.64/10, carrier-grade NAT
           in(0x7F000000, 8) ||   // loopback
           in(0xA9FE0000, 16) ||  // link-local
           in(0xAC100000, 12) ||  // 172.16/12
           in(0xC0A80000, 16) ||  // 192.168/16
           in(0xE0000000, 4) ||   // multicast
           in(0xF0000000, 4));    // reserved, broadcast
}

bool IsPublicIpv6(const in6_addr& address) {
  const uint8_t* b = address.s6_addr;
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kMappedPrefix, 12) == 0) {
    uint32_t v4 = (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) | b[15];
    return IsPublicIpv4(v4);
  }
  static const uint8_t kZero[15] = {};
  if (std::memcmp(b, kZero, 15) == 0) return false;  // :: and ::1
  if (b[0] == 0xff) return false;                    // multicast
  if ((b[0] & 0xfe) == 0xfc) return false;           // fc00::/7 unique-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // fe80::/10 link-local
  return true;
}

}  // namespace

bool IsPublicAddress(const sockaddr* address) {
  if (address == nullptr) return false;
  if (address->sa_family == AF_INET) {
    sockaddr_in v4;
    std::memcpy(&v4, address, sizeof(v4));
    return IsPublicIpv4(ntohl(v4.sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    sockaddr_in6 v6;
    std::memcpy(&v6, address, sizeof(v6));
    return IsPublicIpv6(v6.sin6_addr);
  }
  return false;
}

struct HttpSender::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  uint64_t tag = 0;
  std::chrono::milliseconds timeout{0};
  bool allow_private_addresses = false;
  // Set when a resolved address was refused (the error says only that).
  bool address_refused = false;
  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

namespace {
// At connect time, on the address curl resolved: a DNS name (or a rebinding
// one) cannot lead to an address the URL check would refuse.
curl_socket_t OpenSocket(void* transfer_ptr, curlsocktype purpose, curl_sockaddr* address) {
  auto* transfer = static_cast<HttpSender::Transfer*>(transfer_ptr);
  if (purpose == CURLSOCKTYPE_IPCXN && !transfer->allow_private_addresses &&
      !IsPublicAddress(&address->addr)) {
    transfer->address_refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}
}  // namespace

HttpSender::HttpSender() {
  GlobalInit();
  multi_ = curl_multi_init();
  KUDOS_CHECK(multi_ != nullptr, "libcurl gives a multi handle");
}

HttpSender::~HttpSender() {
  for (auto& [easy, transfer] : transfers_) {
    curl_multi_remove_handle(static_cast<CURLM*>(multi_), static_cast<CURL*>(easy));
  }
  transfers_.clear();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

absl::Status HttpSender::Start(HttpPost post) {
  auto transfer = std::make_unique<Transfer>();
  transfer->easy = curl_easy_init();
  if (transfer->easy == nullptr) return absl::InternalError("webhooks: curl_easy_init failed");
  transfer->body = std::move(post.body);
  transfer->tag = post.tag;
  transfer->timeout = post.timeout;
  transfer->allow_private_addresses = post.allow_private_addresses;
  for (const std::string& header : post.headers) {
    curl_slist* next = curl_slist_append(transfer->headers, header.c_str());
    if (next == nullptr) return absl::InternalError("webhooks: curl_slist_append failed");
    transfer->headers = next;
  }
  CURL* easy = transfer->easy;
  bool ok = curl_easy_setopt(easy, CURLOPT_URL, post.url.c_str()) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, post.allow_http ? "http,https" : "https") ==
                CURLE_OK &&
            // Never follow a redirect: the subscription names the receiver.
            curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_POST, 1L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->body.data()) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(transfer->body.size())) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(post.timeout.count())) ==
                CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &OpenSocket) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, transfer.get()) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Discard) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_USERAGENT, "kudos-webhooks/1") == CURLE_OK;
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("webhooks: curl refused the request to ", post.url));
  if (curl_multi_add_handle(static_cast<CURLM*>(multi_), easy) != CURLM_OK) {
    return absl::InternalError("webhooks: curl_multi_add_handle failed");
  }
  transfers_[easy] = std::move(transfer);
  return absl::OkStatus();
}

std::vector<HttpResult> HttpSender::Poll(std::chrono::milliseconds wait) {
  CURLM* multi = static_cast<CURLM*>(multi_);
  int running = 0;
  curl_multi_perform(multi, &running);
  curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
  curl_multi_perform(multi, &running);
  std::vector<HttpResult> results;
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL* easy = message->easy_handle;
    auto it = transfers_.find(easy);
    KUDOS_CHECK(it != transfers_.end(), "every finished transfer is one this sender started");
    HttpResult result;
    result.tag = it->second->tag;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    result.http_status = static_cast<int>(status);
    CURLcode code = message->data.result;
    if (code == CURLE_OK) {
      result.ok = status >= 200 && status < 300;
      if (!result.ok) result.error = absl::StrCat("HTTP ", status);
    } else if (it->second->address_refused) {
      result.error = "address not allowed";
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
      result.error = absl::StrCat("timeout after ", it->second->timeout.count(), " ms");
    } else {
      result.error = curl_easy_strerror(code);
    }
    curl_multi_remove_handle(multi, easy);
    transfers_.erase(it);
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace integrations::webhooks
