// The one Redis client every service uses: a pool of hiredis connections
// with timeouts, reconnect with backoff, pipelining and Lua scripts called by
// SHA (reloaded on NOSCRIPT). Every failure is an absl::Status:
// UNAVAILABLE for I/O and connection problems (retryable), the code a script
// names for domain errors ("NOT_FOUND ..."), INTERNAL for anything else.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace common::redis {

// A Redis reply as a plain value, detached from hiredis memory.
struct Reply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus };
  Type type = Type::kNil;
  std::string str;
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_nil() const { return type == Type::kNil; }
  // The integer of an integer reply, or the parsed digits of a string reply.
  absl::StatusOr<long long> AsInteger() const;
};

// Who a connection authenticates as: AUTH [username] password on every
// (re)connect, before any command. No password: no AUTH (local dev Redis).
// Never defaulted in the source: from --redis_password_file / REDIS_PASSWORD
// and --redis_user / REDIS_USERNAME (pool_flags.h).
struct Credentials {
  std::string username;  // an ACL user; empty = Redis's default user
  std::string password;
  // Takes the place of `password` when set; read at each connect, so a
  // rotated Kubernetes Secret is picked up by the next reconnect.
  std::string password_file;

  bool empty() const { return password.empty() && password_file.empty(); }
};

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  // Carried with the address so every Connection made from an Endpoint (the
  // pool's, the feed readers', the leaderboard consumer's) authenticates.
  Credentials credentials = {};
};
// Parses "host:port".
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view address);

// The password of `credentials` (the file's content without a trailing
// newline, or the password itself). FAILED_PRECONDITION when the file cannot
// be read or is empty; the message names the file, never the password.
absl::StatusOr<std::string> ResolvePassword(const Credentials& credentials);

// A startup check: connects once, authenticates and PINGs. UNAUTHENTICATED
// when Redis refuses the credentials or requires some and none are set (the
// message says what to set); UNAVAILABLE when Redis cannot be reached (not a
// credentials problem: connections are retried later); FAILED_PRECONDITION
// when the password file cannot be read.
absl::Status VerifyCredentials(const Endpoint& endpoint, std::chrono::milliseconds timeout);

using Command = std::vector<std::string>;

// One connection; not thread-safe. Reconnects lazily, with exponential
// backoff between failed attempts so a dead Redis is not hammered; each new
// connection authenticates first (a refusal is UNAVAILABLE, retried likewise).
class Connection {
 public:
  Connection(Endpoint endpoint, std::chrono::milliseconds timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  absl::StatusOr<Reply> Run(const Command& command);
  // Sends all commands in one write, then reads every reply. A command that
  // fails gives its error in place; an I/O failure fails the whole call.
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> Pipeline(
      const std::vector<Command>& commands);
  // For blocking commands such as XREADGROUP BLOCK.
  void SetTimeout(std::chrono::milliseconds timeout);

 private:
  absl::Status EnsureConnected();
  // UNAVAILABLE with `why`, and the next attempt pushed back.
  absl::Status BackOff(std::chrono::steady_clock::time_point now, absl::string_view why);
  void Drop(absl::string_view why);

  Endpoint endpoint_;
  std::chrono::milliseconds timeout_;
  redisContext* context_ = nullptr;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{0};
};

// A Lua script, loaded once per server and then called by SHA.
class Script {
 public:
  Script(std::string name, std::string source);
  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  const std::string& sha() const { return sha_; }

 private:
  std::string name_;
  std::string source_;
  std::string sha_;  // SHA1 of source, as Redis names it
};

struct PoolOptions {
  Endpoint endpoint;
  int size = 8;
  std::chrono::milliseconds timeout{2000};
  // How long a caller waits for a free connection.
  std::chrono::milliseconds acquire_timeout{2000};
};

class Pool {
 public:
  explicit Pool(PoolOptions options);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  absl::StatusOr<Reply> Run(const Command& command);
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> Pipeline(
      const std::vector<Command>& commands);
  // EVALSHA, falling back to SCRIPT LOAD + EVALSHA when Redis answers
  // NOSCRIPT (first call, or after a restart or SCRIPT FLUSH).
  absl::StatusOr<Reply> Eval(const Script& script,
                             const std::vector<std::string>& keys,
                             const std::vector<std::string>& args);

  const PoolOptions& options() const { return options_; }

 private:
  class Lease;
  absl::StatusOr<std::unique_ptr<Connection>> Acquire();
  void Release(std::unique_ptr<Connection> connection);

  PoolOptions options_;
  std::mutex mu_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int created_ = 0;
};

// Turns a Redis error message into a Status: a leading gRPC code name
// ("NOT_FOUND: ..." or "NOT_FOUND ...") becomes that code.
absl::Status StatusFromRedisError(absl::string_view message);

// A hiredis reply as a Reply, detached from hiredis memory; an error reply
// (also one nested in an array) becomes StatusFromRedisError of its message.
// The one mapping shared by Connection/Pool and AsyncClient (async_client.h).
absl::StatusOr<Reply> ReplyFromHiredis(const redisReply* raw);

}  // namespace common::redis
