#include "tests/gateway/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

namespace gwtest {

int Connect(int port, int receive_buffer) {
  // CLOEXEC: services the test restarts (fork+exec) must not inherit it.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Parses "HTTP/1.1 200 OK\r\nName: v\r\n..." into status and headers.
int ParseHead(const std::string& head, std::map<std::string, std::string>* headers) {
  std::istringstream in(head);
  std::string line;
  std::getline(in, line);
  int status = 0;
  size_t space = line.find(' ');
  if (space != std::string::npos) status = std::atoi(line.c_str() + space + 1);
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    (*headers)[Lower(line.substr(0, colon))] = value;
  }
  return status;
}

std::string Dechunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t size = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (size == 0) break;
    out += body.substr(eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return out;
}

std::string Request(const std::string& method, const std::string& target, const std::string& body,
                    const std::map<std::string, std::string>& headers, const char* version,
                    bool close_connection) {
  std::string request = method + " " + target + " " + version + "\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (headers.find("Content-Type") == headers.end()) {
      request += "Content-Type: application/json\r\n";
    }
  }
  if (close_connection) request += "Connection: close\r\n";
  return request + "\r\n" + body;
}

}  // namespace

HttpResponse Http(int port, const std::string& method, const std::string& target,
                  const std::string& body, const std::map<std::string, std::string>& headers) {
  HttpResponse response;
  int fd = Connect(port);
  if (fd < 0) return response;
  timeval timeout{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  WriteAll(fd, Request(method, target, body, headers, "HTTP/1.1", true));
  std::string all;
  char buffer[65536];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) all.append(buffer, n);
  close(fd);
  size_t end = all.find("\r\n\r\n");
  if (end == std::string::npos) return response;
  response.status = ParseHead(all.substr(0, end), &response.headers);
  response.body = all.substr(end + 4);
  if (response.headers["transfer-encoding"] == "chunked") response.body = Dechunk(response.body);
  return response;
}

SseReader::SseReader(int port, const std::string& target,
                     const std::map<std::string, std::string>& headers) {
  fd_ = Connect(port);
  if (fd_ < 0) {
    closed_ = true;
    return;
  }
  WriteAll(fd_, Request("GET", target, "", headers, "HTTP/1.0", false));
  thread_ = std::thread([this] { Loop(); });
}

SseReader::~SseReader() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
}

void SseReader::Loop() {
  char buffer[16384];
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      closed_ = true;
      cv_.notify_all();
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!headers_done_) {
      head_.append(buffer, n);
      size_t end = head_.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      std::map<std::string, std::string> headers;
      status_ = ParseHead(head_.substr(0, end), &headers);
      headers_done_ = true;
      buffer_ = head_.substr(end + 4);
      raw_ = buffer_;
    } else {
      buffer_.append(buffer, n);
      raw_.append(buffer, n);
    }
    size_t pos;
    // Events end with a blank line.
    while ((pos = buffer_.find("\n\n")) != std::string::npos) {
      std::string block = buffer_.substr(0, pos);
      buffer_.erase(0, pos + 2);
      SseEvent event;
      std::istringstream in(block);
      std::string line;
      bool any = false;
      while (std::getline(in, line)) {
        if (line.rfind("event: ", 0) == 0) event.event = line.substr(7), any = true;
        if (line.rfind("data: ", 0) == 0) {
          event.data += (event.data.empty() ? "" : "\n") + line.substr(6);
          any = true;
        }
      }
      if (!any) continue;  // comments, retry hints
      if (event.event.empty()) event.event = "message";
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }
}

SseEvent SseReader::WaitFor(const std::function<bool(const SseEvent&)>& pred,
                            std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  size_t checked = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (; checked < events_.size(); ++checked) {
      if (pred(events_[checked])) return events_[checked];
    }
    if (closed_ || cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; checked < events_.size(); ++checked) {
        if (pred(events_[checked])) return events_[checked];
      }
      return {};
    }
  }
}

int SseReader::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

std::string SseReader::raw() {
  std::lock_guard<std::mutex> lock(mu_);
  return raw_;
}

}  // namespace gwtest
