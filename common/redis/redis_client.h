// The blocking Redis client every service's background work uses: a pool of
// hiredis connections with timeouts, reconnect with backoff, pipelining and
// Lua scripts called by SHA (reloaded on NOSCRIPT). Standalone or Redis
// Cluster is detected on first use; on a cluster each call goes to the
// primary of its keys' slot, with a bounded pool per node (README.md beside
// this file). Every failure is an absl::Status: UNAVAILABLE for I/O and
// connection problems (retryable), the code a script names for domain errors
// ("NOT_FOUND ..."), INTERNAL for anything else, INVALID_ARGUMENT for keys
// of one call spanning cluster slots (refused before sending).
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
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
  // Connects (and authenticates) now unless connected: OK means a command
  // sent next reaches the server's socket; UNAVAILABLE means nothing was
  // sent (refused, unreachable, in backoff), so any command is safe to retry
  // elsewhere.
  absl::Status Connect();
  const Endpoint& endpoint() const { return endpoint_; }

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

// How a node describes itself, for mode detection: a cluster node (with the
// CLUSTER SLOTS it answered when that was what told) or a standalone server.
struct NodeMode {
  bool cluster = false;
  std::optional<Reply> slots;
};
// INFO cluster first; an ACL user denied INFO is asked CLUSTER SLOTS instead
// (a map: cluster; "cluster support disabled", or denied too: standalone, as
// before). Any other failure (unreachable, LOADING) is returned: try another
// seed or later.
absl::StatusOr<NodeMode> ReadNodeMode(Connection& connection);

// The Lua text put before every script: one line (so the script's own
// line numbers in Redis' error messages stay right) that shadows `redis`
// with a table whose call/pcall check their key arguments against KEYS.
std::string DeclaredKeysGuardLua(absl::string_view script_name);

// A Lua script, loaded once per server and then called by SHA. Every key it
// reads or writes must be in KEYS: Redis Cluster routes, ASKs and TRYAGAINs
// a script by its declared keys only, so a key built inside the script would
// be read on whichever node the script landed on while its slot migrates.
// Enforced: the script runs behind DeclaredKeysGuardLua, which fails any
// redis.call or redis.pcall on a key not in KEYS (ERR UNDECLARED_KEY).
class Script {
 public:
  Script(std::string name, std::string source);
  const std::string& name() const { return name_; }
  // What Redis runs: the given source behind the guard.
  const std::string& source() const { return source_; }
  const std::string& sha() const { return sha_; }

 private:
  std::string name_;
  std::string source_;
  std::string sha_;  // SHA1 of source, as Redis names it
};

struct PoolOptions {
  // The server (standalone), or the first seed node of a cluster. Its
  // credentials are every node's.
  Endpoint endpoint;
  // Further seed nodes, tried in order after `endpoint` when detecting the
  // mode and reading the cluster's slot map (PoolOptionsFor parses a list).
  std::vector<Endpoint> more_seeds = {};
  // Connections per node (standalone: the pool's size).
  int size = 8;
  // Timeout of each connect and each read/write; on a cluster also the time
  // a call keeps retrying TRYAGAIN/CLUSTERDOWN/a refused node within.
  std::chrono::milliseconds timeout{2000};
  // How long a caller waits for a free connection (of the node it needs).
  std::chrono::milliseconds acquire_timeout{2000};
  // Cluster: MOVED/ASK redirects one call follows; past it the redirect's
  // error stays in place (INTERNAL).
  int max_redirects = 5;
  // Cluster: distinct nodes the pool keeps connections to; a redirect to
  // yet another node is RESOURCE_EXHAUSTED.
  int max_nodes = 1000;
};

// The options for "host:port" (standalone, or one node of a cluster) or a
// comma-separated list of seed nodes "h1:p1,h2:p2" (ParseSeeds in
// cluster_slots.h); every node authenticates with `credentials`.
// INVALID_ARGUMENT when an address is not host:port.
absl::StatusOr<PoolOptions> PoolOptionsFor(absl::string_view addresses,
                                           Credentials credentials = {});

// Thread-safe. Standalone: one bounded set of connections, each call on one
// of them (as before this pool knew clusters). Cluster: a bounded set per
// node, and each call routed by the slot of its keys (all keys of one call in
// one slot, else INVALID_ARGUMENT naming two of them, nothing sent), MOVED
// and ASK followed (at most max_redirects), TRYAGAIN/CLUSTERDOWN and a
// refused node retried with backoff within `timeout` while the slot map is
// refreshed in the background. A call whose connection fails after sending
// is UNAVAILABLE, never re-sent (it may have been applied).
class Pool {
 public:
  enum class Mode { kUnknown, kStandalone, kCluster };

  explicit Pool(PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  absl::StatusOr<Reply> Run(const Command& command);
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> Pipeline(
      const std::vector<Command>& commands);
  // EVALSHA, falling back to SCRIPT LOAD + EVALSHA when Redis answers
  // NOSCRIPT (first call, or after a restart or SCRIPT FLUSH; on a cluster,
  // SCRIPT LOAD goes to the node that answered NOSCRIPT).
  absl::StatusOr<Reply> Eval(const Script& script,
                             const std::vector<std::string>& keys,
                             const std::vector<std::string>& args);
  // Run with `io_timeout` instead of options().timeout for this call's
  // read (blocking commands such as XREADGROUP ... BLOCK, long scripts). It
  // holds one connection of its node's pool only.
  absl::StatusOr<Reply> RunWithTimeout(const Command& command,
                                       std::chrono::milliseconds io_timeout);

  // Per node, for work that discovers what each node holds. The current
  // primaries ("host:port"; the one server when standalone, or the first
  // seed while no seed has answered yet).
  std::vector<std::string> Primaries();
  // A command (or pipeline) on `node`, one of Primaries(), as it is: no
  // routing, no redirects followed. FAILED_PRECONDITION when `node` is not a
  // primary now (call Primaries() again).
  absl::StatusOr<Reply> RunOn(const std::string& node, const Command& command);
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> PipelineOn(
      const std::string& node, const std::vector<Command>& commands);

  // Standalone or cluster, detected on first use (kUnknown while no seed
  // has answered).
  Mode mode();
  // The primary serving `slot` as the pool's map says now (the server when
  // standalone).
  std::string NodeForSlot(int slot);

  struct Stats {
    uint64_t moved = 0;               // MOVED replies followed
    uint64_t asked = 0;               // ASK replies followed
    uint64_t retried = 0;             // TRYAGAIN/CLUSTERDOWN/refused-node retries
    uint64_t script_loads = 0;        // SCRIPT LOADs after NOSCRIPT
    uint64_t topology_refreshes = 0;  // slot maps read from the cluster
  };
  Stats stats() const;

  const PoolOptions& options() const { return options_; }

  class Impl;

 private:
  PoolOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Turns a Redis error message into a Status: a leading gRPC code name
// ("NOT_FOUND: ..." or "NOT_FOUND ...") becomes that code.
absl::Status StatusFromRedisError(absl::string_view message);

// A hiredis reply as a Reply, detached from hiredis memory; an error reply
// (also one nested in an array) becomes StatusFromRedisError of its message.
// The one mapping shared by Connection/Pool and AsyncClient (async_client.h).
absl::StatusOr<Reply> ReplyFromHiredis(const redisReply* raw);

}  // namespace common::redis
