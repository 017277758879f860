#include "bench/bench_env.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace bench {

Child::Child(std::string binary, std::vector<std::string> args, std::string log_path) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    // Services refuse the public development secrets the bench's tokens are
    // signed with unless told this is development.
    setenv("KUDOS_DEV_INSECURE_DEFAULTS", "1", 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    std::perror(("exec " + binary).c_str());
    _exit(127);
  }
  pid_ = pid;
}

Child::~Child() { Stop(); }

void Child::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

// ---------------------------------------------------------------- redis

namespace {
RedisReply Convert(const redisReply* r) {
  RedisReply out;
  out.type = r->type;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}
}  // namespace

Redis::Redis(const std::string& host, int port) {
  context_ = redisConnect(host.c_str(), port);
  if (context_ == nullptr || context_->err) {
    throw std::runtime_error(absl::StrCat("redis connect ", host, ":", port, ": ",
                                          context_ ? context_->errstr : "no memory"));
  }
}

Redis::~Redis() {
  if (context_) redisFree(context_);
}

void Redis::Append(const std::vector<std::string>& command) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& part : command) {
    argv.push_back(part.data());
    lens.push_back(part.size());
  }
  if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
      REDIS_OK) {
    throw std::runtime_error(absl::StrCat("redis append: ", context_->errstr));
  }
}

RedisReply Redis::Read() {
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    throw std::runtime_error(absl::StrCat("redis read: ", context_->errstr));
  }
  RedisReply reply = Convert(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return reply;
}

RedisReply Redis::Run(const std::vector<std::string>& command) {
  Append(command);
  return Read();
}

std::vector<RedisReply> Redis::Pipeline(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& command : commands) Append(command);
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) replies.push_back(Read());
  return replies;
}

int64_t Redis::UsedMemory() {
  RedisReply info = Run({"INFO", "memory"});
  for (absl::string_view line : absl::StrSplit(info.str, "\r\n")) {
    if (absl::ConsumePrefix(&line, "used_memory:")) {
      int64_t v = 0;
      if (absl::SimpleAtoi(line, &v)) return v;
    }
  }
  return -1;
}

// ---------------------------------------------------------------- JSON

std::string Escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) out += absl::StrFormat("\\u%04x", c);
    else out += c;
  }
  return out;
}

Json& Json::Str(absl::string_view key, absl::string_view value) {
  fields_.push_back(absl::StrCat("\"", key, "\":\"", Escape(value), "\""));
  return *this;
}
Json& Json::Num(absl::string_view key, double value) {
  fields_.push_back(absl::StrFormat("\"%s\":%.3f", key, value));
  return *this;
}
Json& Json::Int(absl::string_view key, int64_t value) {
  fields_.push_back(absl::StrFormat("\"%s\":%d", key, value));
  return *this;
}
Json& Json::Bool(absl::string_view key, bool value) {
  fields_.push_back(absl::StrCat("\"", key, "\":", value ? "true" : "false"));
  return *this;
}
Json& Json::Raw(absl::string_view key, absl::string_view json) {
  fields_.push_back(absl::StrCat("\"", key, "\":", json));
  return *this;
}
std::string Json::str() const { return absl::StrCat("{", absl::StrJoin(fields_, ","), "}"); }

// ---------------------------------------------------------------- tokens

void Authorize(grpc::ClientContext& context, const std::string& token, double timeout_s) {
  context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(DeadlineIn(timeout_s));
}

std::vector<std::string> RedisServerArgs(const std::string& config,
                                         std::vector<std::string> options) {
  if (!config.empty()) options.insert(options.begin(), config);
  return options;
}

}  // namespace bench
