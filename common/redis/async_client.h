// The asynchronous, cluster-aware Redis client (README.md beside this file).
//
// A few loop threads (about one per core), each running a libevent loop with
// hiredis's async API. Each loop holds one connection per Redis node, and
// that connection carries every call in flight on the loop: the commands of
// concurrent calls are appended to hiredis's output buffer in the same loop
// turn and written together (automatic pipelining); replies come back in
// order. Calls are continuation-style: a callback fires exactly once, on a
// loop thread, with the reply, an error, or DEADLINE_EXCEEDED, so a later
// coroutine or reactor layer can wrap it.
//
// Errors are absl::Status exactly as redis_client.h maps them (the same
// ReplyFromHiredis/StatusFromRedisError): UNAVAILABLE for I/O and connection
// problems, the code a script names ("NOT_FOUND ..."), INTERNAL otherwise;
// plus DEADLINE_EXCEEDED (the call's deadline passed), RESOURCE_EXHAUSTED
// (a bound below was hit) and INVALID_ARGUMENT (keys of one call span
// cluster slots, refused before sending).
//
// Standalone or Redis Cluster is detected (`INFO cluster`); on a cluster,
// each call goes to the primary of its keys' slot (CRC16 of the {hash tag}),
// following MOVED (slot map refreshed), ASK (ASKING + retry on the named
// node), TRYAGAIN/CLUSTERDOWN (backoff, retried within the deadline).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"

namespace common::redis {

using Deadline = std::chrono::steady_clock::time_point;
inline Deadline DeadlineIn(std::chrono::milliseconds timeout) {
  return std::chrono::steady_clock::now() + timeout;
}

using PipelineReplies = std::vector<absl::StatusOr<Reply>>;
using ReplyCallback = absl::AnyInvocable<void(absl::StatusOr<Reply>) &&>;
using PipelineCallback = absl::AnyInvocable<void(absl::StatusOr<PipelineReplies>) &&>;

struct AsyncClientOptions {
  // One address (standalone, or one node of a cluster) or several seed nodes.
  std::vector<Endpoint> seeds;
  // AUTH [username] password on every connection to every node.
  Credentials credentials;
  // Loop threads; 0 = one per core.
  int loops = 0;
  // Calls in flight on one connection (sent, last reply not read) before a
  // new call is refused with RESOURCE_EXHAUSTED (UNAVAILABLE when the oldest
  // of them is already past its deadline: the node is not answering).
  int max_in_flight_per_connection = 1024;
  // Bytes waiting in one connection's output buffer before a new call is
  // refused with RESOURCE_EXHAUSTED.
  size_t max_pending_write_bytes = 16 << 20;
  // Calls handed to one loop and not yet started (RESOURCE_EXHAUSTED past it).
  int max_queued_calls_per_loop = 65536;
  // A TCP connect + AUTH that takes longer fails (UNAVAILABLE) and backs off.
  std::chrono::milliseconds connect_timeout{2000};
  // Reconnect backoff after a failed connect: first, doubling up to max.
  std::chrono::milliseconds first_backoff{20};
  std::chrono::milliseconds max_backoff{1000};
  // MOVED/ASK redirects followed by one call before it fails (INTERNAL).
  int max_redirects = 5;
  // How a connection meets libevent. kInTurn (default): a persistent read
  // event, and commands written in the loop turn that queued them (no
  // epoll_ctl pair per reply, no turn spent waiting for writability).
  // kHiredis: hiredis's own libevent adapter's behaviour (the read event
  // re-armed after every reply, the write event armed for every write), kept
  // to measure the difference (env REDIS_EVENT_ADAPTER=hiredis).
  enum class EventAdapter { kInTurn, kHiredis };
  EventAdapter event_adapter = EventAdapter::kInTurn;
  // How long the constructor waits to detect standalone/cluster (INFO
  // cluster + CLUSTER SLOTS); an unreachable Redis is not an error: detection
  // is retried in the background and calls go to the first seed meanwhile.
  std::chrono::milliseconds detect_timeout{2000};
};

// INVALID_ARGUMENT unless `addresses` is "host:port" or "h1:p1,h2:p2,...";
// the seeds carry `credentials`.
absl::StatusOr<AsyncClientOptions> AsyncClientOptionsFor(absl::string_view addresses,
                                                         Credentials credentials = {});

class AsyncClient {
 public:
  enum class Mode { kUnknown, kStandalone, kCluster };

  explicit AsyncClient(AsyncClientOptions options);
  // Stops the loops; calls still running end with UNAVAILABLE ("client
  // shutting down") before it returns. Never destroy it from a loop thread.
  ~AsyncClient();
  AsyncClient(const AsyncClient&) = delete;
  AsyncClient& operator=(const AsyncClient&) = delete;

  // One command. `done` runs exactly once, on a loop thread; it must not
  // block (hand long work elsewhere); it may start further calls.
  void Run(Command command, Deadline deadline, ReplyCallback done);

  // Several commands sent back to back, in order, on one connection (all
  // their keys in one slot on a cluster: INVALID_ARGUMENT otherwise). A
  // command that fails gives its error in place; losing the connection fails
  // the whole call (UNAVAILABLE), as Pool::Pipeline. A pipeline with MULTI
  // is redirected as a whole; otherwise commands redirected by MOVED/ASK/
  // TRYAGAIN are re-sent, in their order, to the named node.
  void Pipeline(std::vector<Command> commands, Deadline deadline, PipelineCallback done);

  // EVALSHA of `script` (which must outlive the call: keep Script objects as
  // members); on NOSCRIPT, SCRIPT LOAD on the same node and one retry.
  void EvalSha(const Script& script, std::vector<std::string> keys,
               std::vector<std::string> args, Deadline deadline, ReplyCallback done);

  // Blocking wrappers for tests and tools (never on a loop thread).
  absl::StatusOr<Reply> RunSync(Command command, std::chrono::milliseconds timeout);
  absl::StatusOr<PipelineReplies> PipelineSync(std::vector<Command> commands,
                                               std::chrono::milliseconds timeout);
  absl::StatusOr<Reply> EvalShaSync(const Script& script, std::vector<std::string> keys,
                                    std::vector<std::string> args,
                                    std::chrono::milliseconds timeout);

  Mode mode() const;
  // The address ("host:port") serving `slot`, as the client's map says now.
  std::string NodeForSlot(int slot) const;

  struct Stats {
    uint64_t connects = 0;           // connections opened (all loops, all nodes)
    uint64_t calls = 0;              // calls started
    uint64_t largest_batch = 0;      // most calls started in one loop turn
    uint64_t moved = 0;              // MOVED replies followed
    uint64_t asked = 0;              // ASK replies followed
    uint64_t retried = 0;            // TRYAGAIN/CLUSTERDOWN retries
    uint64_t script_loads = 0;       // SCRIPT LOADs after NOSCRIPT
    uint64_t topology_refreshes = 0; // slot maps read from the cluster
    // Writes of a connected socket's queued commands: in the loop turn that
    // queued them, or after waiting for the socket to be writable (the
    // kernel's buffer was full: Redis is not reading).
    uint64_t writes_in_turn = 0;
    uint64_t writes_on_writable = 0;
  };
  Stats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace common::redis
