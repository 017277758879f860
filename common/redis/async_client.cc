#include "common/redis/async_client.h"

// clang-format off
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>
// clang-format on
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/log/log.h"
#include "common/redis/cluster_slots.h"

namespace common::redis {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string AddressOf(const Endpoint& endpoint) {
  return absl::StrCat(endpoint.host, ":", endpoint.port);
}

timeval TimevalOf(Clock::duration duration) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(duration).count();
  if (us < 0) us = 0;
  timeval tv;
  tv.tv_sec = us / 1000000;
  tv.tv_usec = us % 1000000;
  return tv;
}

// What the client knows of the deployment: a standalone server, or which
// node serves each slot. Immutable once published (copy on write).
struct Topology {
  AsyncClient::Mode mode = AsyncClient::Mode::kUnknown;
  std::string standalone;          // the server (standalone), or the first seed (unknown)
  std::vector<std::string> nodes;  // cluster primaries, "host:port"
  std::vector<int16_t> owner;      // slot -> index in nodes; -1 = not known (cluster only)

  const std::string& Route(std::optional<int> slot) const {
    if (mode == AsyncClient::Mode::kCluster && !nodes.empty()) {
      if (slot.has_value() && owner[*slot] >= 0) return nodes[owner[*slot]];
      return nodes[0];  // no key, or a slot not mapped yet: MOVED tells
    }
    return standalone;
  }
  int IndexOf(const std::string& address) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i] == address) return static_cast<int>(i);
    }
    nodes.push_back(address);
    return static_cast<int>(nodes.size() - 1);
  }
};

// Asserts the one property every caller relies on: a call's callback fires
// exactly once (KUDOS_CHECK: the process stops rather than answer twice).
class OnceFlag {
 public:
  void Fire() {
    KUDOS_CHECK(!fired_, "a Redis call's callback fires exactly once");
    fired_ = true;
  }
  bool fired() const { return fired_; }

 private:
  bool fired_ = false;
};

bool ErrorStartsWith(const redisReply* reply, absl::string_view prefix) {
  return reply->type == REDIS_REPLY_ERROR &&
         absl::StartsWith(absl::string_view(reply->str, reply->len), prefix);
}

}  // namespace

class Loop;
class NodeConn;

// One call from submission to its callback. Owned by its loop: `refs` counts
// the loop's reference (until the callback fired) and every command still
// queued in hiredis for it (hiredis always calls back: a reply, or NULL when
// the connection goes).
struct Call {
  enum class Kind { kRun, kPipeline, kEval };
  Kind kind = Kind::kRun;
  std::vector<Command> commands;
  const Script* script = nullptr;
  Deadline deadline;
  ReplyCallback reply_done;
  PipelineCallback pipeline_done;
  absl::Status cross_slot;  // keys span slots: refused on a cluster
  absl::Status refused;     // refused whatever the mode (a bound, no commands)
  std::optional<int> slot;
  bool transactional = false;  // holds MULTI: redirected as a whole

  Loop* loop = nullptr;
  // Timers embedded in the call (event_assign): no allocation per call.
  event deadline_timer;
  event retry_timer;
  bool deadline_armed = false;
  bool retry_assigned = false;
  OnceFlag once;
  int refs = 1;
  uint32_t attempt = 0;
  int outstanding = 0;
  std::vector<std::optional<absl::StatusOr<Reply>>> results;

  // What the current attempt's replies asked for.
  std::vector<int> redo;
  std::string redo_target;  // empty: route by slot again
  bool redo_asking = false;
  bool redo_script_load = false;
  bool redo_backoff = false;
  bool redirected = false;  // MOVED/ASK seen in this attempt
  int redirects = 0;
  milliseconds retry_backoff{0};
  bool script_reloaded = false;
  bool asking = false;  // the current attempt was sent after ASKING
  absl::Status script_load_status;
  std::string node;

  ~Call() {
    KUDOS_CHECK(once.fired(), "a Redis call is never dropped without its callback");
    DisarmTimers();
  }
  void DisarmTimers() {
    if (deadline_armed) event_del(&deadline_timer);
    if (retry_assigned) event_del(&retry_timer);
    deadline_armed = false;
  }
};

struct WireRef {
  enum class Kind { kUser, kAsking, kScriptLoad };
  Call* call;
  uint32_t attempt;
  Kind kind;
  int index;
  bool last = false;  // the attempt's last command on this connection
};

class AsyncClient::Impl {
 public:
  explicit Impl(AsyncClientOptions options);
  ~Impl();

  void Submit(std::unique_ptr<Call> call);
  std::shared_ptr<const Topology> topology() const { return std::atomic_load(&topology_); }
  // Bumped by every Publish: loops re-read the topology only when it moved.
  uint64_t topology_version() const { return topology_version_.load(std::memory_order_acquire); }
  // Known standalone: calls skip computing their keys' slot.
  bool standalone() const { return standalone_.load(std::memory_order_relaxed); }
  void OnMoved(int slot, const std::string& address);
  void RequestRefresh();

  const AsyncClientOptions options;
  struct Counters {
    std::atomic<uint64_t> connects{0}, calls{0}, largest_batch{0}, moved{0}, asked{0},
        retried{0}, script_loads{0}, topology_refreshes{0}, writes_in_turn{0},
        writes_on_writable{0};
  } counters;

 private:
  friend class AsyncClient;
  // Reads INFO cluster (+ CLUSTER SLOTS) from the first node that answers.
  bool Detect(milliseconds timeout);
  void Publish(std::shared_ptr<const Topology> topology) {
    standalone_.store(topology->mode == Mode::kStandalone, std::memory_order_relaxed);
    std::atomic_store(&topology_, std::move(topology));
    topology_version_.fetch_add(1, std::memory_order_release);
  }
  void TopologyThread();

  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> next_loop_{0};
  std::shared_ptr<const Topology> topology_;
  std::atomic<uint64_t> topology_version_{0};
  std::atomic<bool> standalone_{false};
  std::mutex mu_;  // topology writers, refresh requests
  std::condition_variable refresh_cv_;
  bool refresh_requested_ = false;
  bool stopping_ = false;
  std::thread topology_thread_;
};

namespace {
thread_local Loop* current_loop = nullptr;
}  // namespace

// One connection to one node, owned by one loop; every call of that loop to
// that node shares it.
class NodeConn {
 public:
  NodeConn(Loop* loop, std::string address, Endpoint endpoint)
      : loop_(loop), address_(std::move(address)), endpoint_(std::move(endpoint)) {}
  ~NodeConn();

  // Admits one more call (connecting first when needed), or says why not.
  absl::Status Admit(Clock::time_point now);
  redisAsyncContext* context() const { return context_; }
  const std::string& address() const { return address_; }
  void Sent(Deadline deadline) { in_flight_.push_back(deadline); }
  void Answered() {
    if (!in_flight_.empty()) in_flight_.pop_front();
  }

  // hiredis's event hooks (our libevent adapter, below).
  static void Attach(redisAsyncContext* context, event_base* base, bool in_turn);
  static void AddRead(void* privdata);
  static void DelRead(void* privdata);
  static void AddWrite(void* privdata);
  static void DelWrite(void* privdata);
  static void Cleanup(void* privdata);
  static void OnReadable(evutil_socket_t, short, void* arg);
  static void OnWritable(evutil_socket_t, short, void* arg);

  static void OnConnect(const redisAsyncContext* ac, int status);
  static void OnDisconnect(const redisAsyncContext* ac, int status);
  static void OnAuth(redisAsyncContext* ac, void* reply, void* privdata);
  static void OnConnectTimeout(evutil_socket_t, short, void* arg);

 private:
  absl::Status Connect(Clock::time_point now);
  absl::Status BackOff(Clock::time_point now, absl::string_view why);
  void Ready();

  Loop* loop_;
  std::string address_;
  Endpoint endpoint_;
  redisAsyncContext* context_ = nullptr;
  event* connect_timer_ = nullptr;
  std::deque<Deadline> in_flight_;  // one per call sent, oldest first
  Clock::time_point next_attempt_{};
  milliseconds backoff_{0};

 public:
  // Set while Loop::OnFlush writes this connection's buffer: a write that
  // could not finish then waits for the socket (the write event).
  bool flushing = false;
  // Queued in the loop's flush list.
  bool flush_queued = false;
};

class Loop {
 public:
  explicit Loop(AsyncClient::Impl* client);
  ~Loop();

  void Post(std::unique_ptr<Call> call);
  void Stop();
  // Writes `conn`'s output buffer later in this loop turn (after the
  // callbacks running now, which may append more), without waiting for the
  // socket's writability and without an epoll_ctl per write.
  void ScheduleFlush(NodeConn* conn);
  event_base* base() const { return base_; }
  AsyncClient::Impl* client() const { return client_; }

  // The call paths, all on this loop's thread.
  void Start(Call* call);
  void Send(Call* call, std::string target, std::vector<int> indices, bool asking,
            bool script_load);
  void Finish(Call* call, absl::StatusOr<Reply> reply);
  void Finish(Call* call, absl::StatusOr<PipelineReplies> replies);
  void Release(Call* call) {
    if (--call->refs == 0) delete call;
  }
  static void OnReply(redisAsyncContext* ac, void* reply, void* privdata);

 private:
  static void OnWake(evutil_socket_t, short, void* arg);
  static void OnFlush(evutil_socket_t, short, void* arg);
  static void OnDeadline(evutil_socket_t, short, void* arg);
  static void OnRetry(evutil_socket_t, short, void* arg);
  void Main();
  void Drain(std::vector<std::unique_ptr<Call>>& batch);
  void Handle(NodeConn* conn, WireRef* ref, redisReply* reply, const char* errstr);
  void Advance(Call* call);
  void Resend(Call* call);
  void FinishStatus(Call* call, absl::Status status);
  NodeConn* Conn(const std::string& address);
  const Topology& topology() {
    uint64_t version = client_->topology_version();
    if (topology_ == nullptr || version != topology_seen_) {
      topology_seen_ = version;
      topology_ = client_->topology();
    }
    return *topology_;
  }

  AsyncClient::Impl* client_;
  event_base* base_;
  int wake_fd_;
  event* wake_event_;
  event* flush_event_;
  std::vector<NodeConn*> flush_;  // connections with commands to write this turn
  std::mutex mu_;
  std::vector<std::unique_ptr<Call>> queue_;
  bool stopping_ = false;
  bool wake_pending_ = false;
  std::unordered_map<std::string, std::unique_ptr<NodeConn>> conns_;
  std::unordered_set<Call*> live_;
  std::shared_ptr<const Topology> topology_;
  uint64_t topology_seen_ = 0;
  std::thread thread_;
};

// ------------------------------------------------------- libevent adapter
// hiredis's own libevent adapter (adapters/libevent.h), changed where it cost
// syscalls on every call: the read event is persistent (hiredis re-arms it
// after each read: an epoll_ctl pair per reply), and a connected socket's
// commands are written in the loop turn that queued them
// (Loop::ScheduleFlush) instead of arming the write event and waiting a turn
// for writability (two more epoll_ctl and an epoll_wait). Only a write the
// socket did not take whole, or a connect in progress, arms the write event.

namespace {
struct LoopEvents {
  redisAsyncContext* context;
  event* read_event;
  event* write_event;
  bool persistent_read = true;  // EventAdapter::kInTurn
  bool reading = false;
  bool writing = false;
};
}  // namespace

void NodeConn::Attach(redisAsyncContext* context, event_base* base, bool in_turn) {
  KUDOS_CHECK(context->ev.data == nullptr, "one event adapter per hiredis context");
  auto* events = new LoopEvents{context, nullptr, nullptr};
  events->persistent_read = in_turn;
  const int fd = context->c.fd;
  events->read_event = event_new(base, fd, in_turn ? EV_READ | EV_PERSIST : EV_READ,
                                 &NodeConn::OnReadable, events);
  events->write_event = event_new(base, fd, EV_WRITE, &NodeConn::OnWritable, events);
  context->ev.addRead = &NodeConn::AddRead;
  context->ev.delRead = &NodeConn::DelRead;
  context->ev.addWrite = &NodeConn::AddWrite;
  context->ev.delWrite = &NodeConn::DelWrite;
  context->ev.cleanup = &NodeConn::Cleanup;
  context->ev.data = events;
  AddRead(events);
  // Writable once the non-blocking connect completes (hiredis then checks it).
  event_add(events->write_event, nullptr);
  events->writing = true;
}

void NodeConn::AddRead(void* privdata) {
  auto* events = static_cast<LoopEvents*>(privdata);
  if (events->reading) return;
  event_add(events->read_event, nullptr);
  events->reading = true;
}

void NodeConn::DelRead(void* privdata) {
  auto* events = static_cast<LoopEvents*>(privdata);
  if (!events->reading) return;
  event_del(events->read_event);
  events->reading = false;
}

void NodeConn::AddWrite(void* privdata) {
  auto* events = static_cast<LoopEvents*>(privdata);
  if (events->writing) return;  // the armed write event writes everything queued
  auto* conn = static_cast<NodeConn*>(events->context->data);
  const bool connected = (events->context->c.flags & REDIS_CONNECTED) != 0;
  if (events->persistent_read && connected && !conn->flushing &&
      conn->context_ == events->context) {
    conn->loop_->ScheduleFlush(conn);
    return;
  }
  event_add(events->write_event, nullptr);
  events->writing = true;
}

void NodeConn::DelWrite(void* privdata) {
  auto* events = static_cast<LoopEvents*>(privdata);
  if (!events->writing) return;
  event_del(events->write_event);
  events->writing = false;
}

void NodeConn::Cleanup(void* privdata) {
  auto* events = static_cast<LoopEvents*>(privdata);
  event_free(events->read_event);
  event_free(events->write_event);
  delete events;
}

void NodeConn::OnReadable(evutil_socket_t, short, void* arg) {
  auto* events = static_cast<LoopEvents*>(arg);
  if (!events->persistent_read) events->reading = false;  // fired: no longer armed
  redisAsyncHandleRead(events->context);
}

void NodeConn::OnWritable(evutil_socket_t, short, void* arg) {
  auto* events = static_cast<LoopEvents*>(arg);
  events->writing = false;  // not persistent: fired means no longer armed
  auto* conn = static_cast<NodeConn*>(events->context->data);
  if ((events->context->c.flags & REDIS_CONNECTED) != 0) {
    conn->loop_->client()->counters.writes_on_writable.fetch_add(1, std::memory_order_relaxed);
  }
  redisAsyncHandleWrite(events->context);
}

// ---------------------------------------------------------------- NodeConn

NodeConn::~NodeConn() {
  if (context_ != nullptr) {
    redisAsyncContext* context = context_;
    context_ = nullptr;
    redisAsyncFree(context);  // pending commands called back with NULL
  }
  if (connect_timer_ != nullptr) event_free(connect_timer_);
  connect_timer_ = nullptr;
}

absl::Status NodeConn::BackOff(Clock::time_point now, absl::string_view why) {
  const AsyncClientOptions& options = loop_->client()->options;
  backoff_ = backoff_.count() == 0 ? options.first_backoff
                                   : std::min(backoff_ * 2, options.max_backoff);
  next_attempt_ = now + backoff_;
  return absl::UnavailableError(why);
}

absl::Status NodeConn::Admit(Clock::time_point now) {
  if (context_ == nullptr) {
    if (absl::Status connected = Connect(now); !connected.ok()) return connected;
  }
  const AsyncClientOptions& options = loop_->client()->options;
  if (static_cast<int>(in_flight_.size()) >= options.max_in_flight_per_connection) {
    if (in_flight_.front() < now) {
      return absl::UnavailableError(absl::StrCat(
          "redis at ", address_, " is not answering: ", in_flight_.size(),
          " calls in flight, the oldest past its deadline"));
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "redis at ", address_, ": ", in_flight_.size(),
        " calls in flight on the connection (the bound)"));
  }
  if (sdslen(context_->c.obuf) > options.max_pending_write_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "redis at ", address_, ": ", sdslen(context_->c.obuf),
        " bytes waiting to be written (the bound is ", options.max_pending_write_bytes, ")"));
  }
  return absl::OkStatus();
}

absl::Status NodeConn::Connect(Clock::time_point now) {
  if (now < next_attempt_) {
    return absl::UnavailableError(
        absl::StrCat("redis at ", address_, " is unreachable; retrying"));
  }
  const AsyncClientOptions& options = loop_->client()->options;
  std::string password;
  if (!options.credentials.empty()) {
    absl::StatusOr<std::string> resolved = ResolvePassword(options.credentials);
    if (!resolved.ok()) return BackOff(now, resolved.status().message());
    password = *std::move(resolved);
  }
  redisAsyncContext* context = redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port);
  if (context == nullptr || context->err != 0) {
    std::string why = context != nullptr ? context->errstr : "out of memory";
    if (context != nullptr) redisAsyncFree(context);
    return BackOff(now, absl::StrCat("cannot connect to redis at ", address_, ": ", why));
  }
  context->data = this;
  Attach(context, loop_->base(),
         options.event_adapter == AsyncClientOptions::EventAdapter::kInTurn);
  redisAsyncSetConnectCallback(context, &NodeConn::OnConnect);
  redisAsyncSetDisconnectCallback(context, &NodeConn::OnDisconnect);
  context_ = context;
  loop_->client()->counters.connects.fetch_add(1, std::memory_order_relaxed);
  // AUTH is the first command on the wire; every command queued behind it
  // runs authenticated (or gets NOAUTH: UNAVAILABLE, as Connection's).
  if (!options.credentials.empty()) {
    std::vector<const char*> argv = {"AUTH"};
    std::vector<size_t> lens = {4};
    if (!options.credentials.username.empty()) {
      argv.push_back(options.credentials.username.data());
      lens.push_back(options.credentials.username.size());
    }
    argv.push_back(password.data());
    lens.push_back(password.size());
    redisAsyncCommandArgv(context, &NodeConn::OnAuth, nullptr, static_cast<int>(argv.size()),
                          argv.data(), lens.data());
  }
  if (connect_timer_ == nullptr) {
    connect_timer_ = event_new(loop_->base(), -1, 0, &NodeConn::OnConnectTimeout, this);
  }
  timeval tv = TimevalOf(options.connect_timeout);
  event_add(connect_timer_, &tv);
  return absl::OkStatus();
}

void NodeConn::Ready() {
  backoff_ = milliseconds(0);
  if (connect_timer_ != nullptr) event_del(connect_timer_);
}

void NodeConn::OnConnect(const redisAsyncContext* ac, int status) {
  auto* conn = static_cast<NodeConn*>(ac->data);
  if (status != REDIS_OK) {
    // hiredis frees the context after this returns; its commands get NULL.
    conn->context_ = nullptr;
    if (conn->connect_timer_ != nullptr) event_del(conn->connect_timer_);
    (void)conn->BackOff(Clock::now(), "connect failed");
    return;
  }
  redisEnableKeepAlive(const_cast<redisContext*>(&ac->c));  // a dead peer is noticed
  if (conn->loop_->client()->options.credentials.empty()) conn->Ready();
}

void NodeConn::OnDisconnect(const redisAsyncContext* ac, int /*status*/) {
  auto* conn = static_cast<NodeConn*>(ac->data);
  if (conn->context_ == ac) conn->context_ = nullptr;
  if (conn->connect_timer_ != nullptr) event_del(conn->connect_timer_);
  // Commands of the lost connection were called back with NULL before this;
  // the next call reconnects (immediately; backoff only after failed connects).
  conn->in_flight_.clear();
}

void NodeConn::OnAuth(redisAsyncContext* ac, void* reply, void* /*privdata*/) {
  auto* conn = static_cast<NodeConn*>(ac->data);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr) return;  // the connection went; its callbacks say so
  if (r->type == REDIS_REPLY_ERROR) {
    // Redis's message names the problem (WRONGPASS, ...), never the password.
    common::log::Warning(absl::StrCat("redis at ", conn->address_, " refused AUTH: ",
                                      absl::string_view(r->str, r->len)));
    (void)conn->BackOff(Clock::now(), "AUTH refused");
    if (conn->connect_timer_ != nullptr) event_del(conn->connect_timer_);
    redisAsyncDisconnect(ac);  // after the queued commands' NOAUTH replies
    return;
  }
  conn->Ready();
}

void NodeConn::OnConnectTimeout(evutil_socket_t, short, void* arg) {
  auto* conn = static_cast<NodeConn*>(arg);
  if (conn->context_ == nullptr) return;
  redisAsyncContext* context = conn->context_;
  conn->context_ = nullptr;
  (void)conn->BackOff(Clock::now(), "connect timed out");
  redisAsyncFree(context);  // its commands: NULL replies, UNAVAILABLE
  conn->in_flight_.clear();
}

// -------------------------------------------------------------------- Loop

Loop::Loop(AsyncClient::Impl* client)
    : client_(client),
      base_(event_base_new()),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  KUDOS_CHECK(base_ != nullptr && wake_fd_ >= 0, "an event loop for the Redis client");
  wake_event_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &Loop::OnWake, this);
  event_add(wake_event_, nullptr);
  flush_event_ = event_new(base_, -1, 0, &Loop::OnFlush, this);
  thread_ = std::thread([this] { Main(); });
}

Loop::~Loop() {
  Stop();
  if (thread_.joinable()) thread_.join();
  event_free(wake_event_);
  event_free(flush_event_);
  event_base_free(base_);
  close(wake_fd_);
}

void Loop::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  ssize_t written = write(wake_fd_, &one, sizeof(one));
  (void)written;
}

void Loop::Post(std::unique_ptr<Call> call) {
  bool wake = false;
  bool too_late = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    too_late = stopping_ && current_loop != this;
    if (!too_late) {
      if (static_cast<int>(queue_.size()) >= client_->options.max_queued_calls_per_loop &&
          call->refused.ok()) {
        call->refused = absl::ResourceExhaustedError(absl::StrCat(
            "redis client: ", queue_.size(), " calls waiting for their loop (the bound)"));
      }
      queue_.push_back(std::move(call));
      wake = !wake_pending_;
      wake_pending_ = true;
    }
  }
  if (too_late) {
    // Nothing will run it any more: answered on the caller's thread.
    call->loop = this;
    call->once.Fire();
    absl::Status down = absl::UnavailableError("redis client shutting down");
    if (call->kind == Call::Kind::kPipeline) {
      std::move(call->pipeline_done)(down);
    } else {
      std::move(call->reply_done)(down);
    }
    return;
  }
  if (!wake) return;
  if (current_loop == this) {
    event_active(wake_event_, EV_READ, 0);
  } else {
    uint64_t one = 1;
    ssize_t written = write(wake_fd_, &one, sizeof(one));
    (void)written;
  }
}

void Loop::ScheduleFlush(NodeConn* conn) {
  if (conn->flush_queued) return;
  conn->flush_queued = true;
  flush_.push_back(conn);
  // Runs after the callbacks active now, in this turn: one write for every
  // command they append.
  if (flush_.size() == 1) event_active(flush_event_, EV_WRITE, 0);
}

void Loop::OnFlush(evutil_socket_t, short, void* arg) {
  auto* loop = static_cast<Loop*>(arg);
  std::vector<NodeConn*> conns;
  conns.swap(loop->flush_);  // callbacks of a failed write may queue more
  for (NodeConn* conn : conns) {
    conn->flush_queued = false;
    redisAsyncContext* context = conn->context();
    if (context == nullptr || (context->c.flags & REDIS_CONNECTED) == 0) continue;
    loop->client_->counters.writes_in_turn.fetch_add(1, std::memory_order_relaxed);
    conn->flushing = true;
    redisAsyncHandleWrite(context);  // may disconnect: `conn` stays, its context goes
    conn->flushing = false;
  }
}

void Loop::OnWake(evutil_socket_t fd, short, void* arg) {
  auto* loop = static_cast<Loop*>(arg);
  uint64_t value;
  ssize_t got = read(fd, &value, sizeof(value));
  (void)got;
  std::vector<std::unique_ptr<Call>> batch;
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(loop->mu_);
    batch.swap(loop->queue_);
    loop->wake_pending_ = false;
    stopping = loop->stopping_;
  }
  loop->Drain(batch);
  if (stopping) event_base_loopbreak(loop->base_);
}

void Loop::Drain(std::vector<std::unique_ptr<Call>>& batch) {
  uint64_t size = batch.size();
  auto& largest = client_->counters.largest_batch;
  uint64_t seen = largest.load(std::memory_order_relaxed);
  while (size > seen && !largest.compare_exchange_weak(seen, size)) {
  }
  client_->counters.calls.fetch_add(size, std::memory_order_relaxed);
  for (std::unique_ptr<Call>& call : batch) {
    call->loop = this;
    Call* raw = call.release();
    live_.insert(raw);
    Start(raw);
  }
}

void Loop::Main() {
  current_loop = this;
  event_base_dispatch(base_);
  // Shutting down: every call still queued or running ends UNAVAILABLE
  // (callbacks may post more: drained until none is left).
  for (;;) {
    std::vector<std::unique_ptr<Call>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(queue_);
    }
    if (batch.empty() && live_.empty()) break;
    for (std::unique_ptr<Call>& call : batch) {
      call->loop = this;
      Call* raw = call.release();
      live_.insert(raw);
      FinishStatus(raw, absl::UnavailableError("redis client shutting down"));
    }
    std::vector<Call*> running(live_.begin(), live_.end());
    for (Call* call : running) {
      FinishStatus(call, absl::UnavailableError("redis client shutting down"));
    }
  }
  flush_.clear();
  conns_.clear();  // frees the contexts: the calls' outstanding commands are released
  current_loop = nullptr;
}

NodeConn* Loop::Conn(const std::string& address) {
  auto it = conns_.find(address);
  if (it != conns_.end()) return it->second.get();
  Endpoint endpoint;
  absl::StatusOr<Endpoint> parsed = ParseEndpoint(address);
  if (parsed.ok()) endpoint = *parsed;
  auto conn = std::make_unique<NodeConn>(this, address, endpoint);
  NodeConn* raw = conn.get();
  conns_.emplace(address, std::move(conn));
  return raw;
}

void Loop::Start(Call* call) {
  if (!call->refused.ok()) {
    FinishStatus(call, call->refused);
    return;
  }
  if (!call->cross_slot.ok() && topology().mode == AsyncClient::Mode::kCluster) {
    FinishStatus(call, call->cross_slot);
    return;
  }
  auto now = Clock::now();
  if (call->deadline <= now) {
    FinishStatus(call, absl::DeadlineExceededError("redis call: deadline already passed"));
    return;
  }
  event_assign(&call->deadline_timer, base_, -1, 0, &Loop::OnDeadline, call);
  timeval tv = TimevalOf(call->deadline - now);
  event_add(&call->deadline_timer, &tv);
  call->deadline_armed = true;
  std::vector<int> all(call->commands.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  Send(call, "", std::move(all), false, false);
}

void Loop::Send(Call* call, std::string target, std::vector<int> indices, bool asking,
                bool script_load) {
  const Topology& topology = this->topology();
  if (target.empty()) target = topology.Route(call->slot);
  NodeConn* conn = Conn(target);
  if (absl::Status admitted = conn->Admit(Clock::now()); !admitted.ok()) {
    if (absl::IsUnavailable(admitted) && topology.mode == AsyncClient::Mode::kCluster) {
      client_->RequestRefresh();  // a node gone: a failover may have moved its slots
    }
    FinishStatus(call, std::move(admitted));
    return;
  }
  ++call->attempt;
  call->asking = asking;
  call->node = target;
  call->outstanding = 0;
  call->redo.clear();
  call->redo_target.clear();
  call->redo_asking = call->redo_script_load = call->redo_backoff = call->redirected = false;

  redisAsyncContext* context = conn->context();
  WireRef* last = nullptr;
  bool failed = false;
  auto append = [&](WireRef::Kind kind, int index, const Command& command) {
    if (failed) return;
    absl::InlinedVector<const char*, 16> argv;
    absl::InlinedVector<size_t, 16> lens;
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lens.push_back(arg.size());
    }
    auto* ref = new WireRef{call, call->attempt, kind, index};
    if (redisAsyncCommandArgv(context, &Loop::OnReply, ref, static_cast<int>(argv.size()),
                              argv.data(), lens.data()) != REDIS_OK) {
      delete ref;
      failed = true;
      return;
    }
    ++call->refs;
    ++call->outstanding;
    last = ref;
  };
  static const Command kAsking = {"ASKING"};
  if (asking && call->transactional) append(WireRef::Kind::kAsking, -1, kAsking);
  for (int index : indices) {
    if (script_load) {
      append(WireRef::Kind::kScriptLoad, index, {"SCRIPT", "LOAD", call->script->source()});
    }
    if (asking && !call->transactional) append(WireRef::Kind::kAsking, -1, kAsking);
    append(WireRef::Kind::kUser, index, call->commands[index]);
  }
  if (last != nullptr) {
    last->last = true;
    conn->Sent(call->deadline);
  }
  if (failed) {
    FinishStatus(call, absl::UnavailableError(absl::StrCat(
                           "redis at ", target, ": write failed: ",
                           context->errstr != nullptr ? context->errstr : "disconnecting")));
  }
}

void Loop::OnReply(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* ref = static_cast<WireRef*>(privdata);
  auto* conn = static_cast<NodeConn*>(ac->data);
  Call* call = ref->call;
  if (ref->last) conn->Answered();
  if (!call->once.fired() && ref->attempt == call->attempt) {
    call->loop->Handle(conn, ref, static_cast<redisReply*>(reply), ac->errstr);
  }
  delete ref;
  call->loop->Release(call);
}

void Loop::Handle(NodeConn* conn, WireRef* ref, redisReply* reply, const char* why) {
  Call* call = ref->call;
  if (reply == nullptr) {
    if (topology().mode == AsyncClient::Mode::kCluster) client_->RequestRefresh();
    FinishStatus(call, absl::UnavailableError(
                           absl::StrCat("redis at ", conn->address(), ": connection lost: ",
                                        why && *why ? why : "connection closed")));
    return;
  }
  --call->outstanding;
  switch (ref->kind) {
    case WireRef::Kind::kAsking:
      break;
    case WireRef::Kind::kScriptLoad: {
      absl::StatusOr<Reply> loaded = ReplyFromHiredis(reply);
      if (!loaded.ok()) {
        call->script_load_status = loaded.status();
      } else if (loaded->str != call->script->sha()) {
        call->script_load_status = absl::InternalError(
            absl::StrCat("script ", call->script->name(), " loaded with SHA ", loaded->str,
                         ", expected ", call->script->sha()));
      }
      break;
    }
    case WireRef::Kind::kUser: {
      const int index = ref->index;
      bool moved = ErrorStartsWith(reply, "MOVED ");
      bool ask = ErrorStartsWith(reply, "ASK ");
      if (moved || ask) {
        // "MOVED <slot> <host>:<port>"
        std::vector<absl::string_view> parts =
            absl::StrSplit(absl::string_view(reply->str, reply->len), ' ');
        int slot = -1;
        if (parts.size() == 3 && absl::SimpleAtoi(parts[1], &slot) && slot >= 0 &&
            slot < kClusterSlots) {
          std::string address(parts[2]);
          if (moved) {
            client_->OnMoved(slot, address);
            client_->counters.moved.fetch_add(1, std::memory_order_relaxed);
          } else {
            client_->counters.asked.fetch_add(1, std::memory_order_relaxed);
          }
          if (!call->redirected) {
            call->redirected = true;
            call->redo_target = address;
            call->redo_asking = ask;
          }
          call->redo.push_back(index);
        }
        call->results[index] = ReplyFromHiredis(reply);
      } else if (ErrorStartsWith(reply, "TRYAGAIN") || ErrorStartsWith(reply, "CLUSTERDOWN")) {
        call->redo_backoff = true;
        call->redo.push_back(index);
        call->results[index] = ReplyFromHiredis(reply);
      } else if (ErrorStartsWith(reply, "NOSCRIPT") && call->script != nullptr) {
        if (!call->script_load_status.ok()) {
          call->results[index] = call->script_load_status;
        } else if (!call->script_reloaded) {
          call->script_reloaded = true;
          call->redo_script_load = true;
          call->redo_target = conn->address();
          call->redo_asking = call->asking;
          call->redo.push_back(index);
          call->results[index] = ReplyFromHiredis(reply);
        } else {
          call->results[index] = ReplyFromHiredis(reply);
        }
      } else {
        call->results[index] = ReplyFromHiredis(reply);
      }
      break;
    }
  }
  if (call->outstanding == 0) Advance(call);
}

void Loop::Advance(Call* call) {
  if (call->redo.empty()) {
    if (call->kind == Call::Kind::kPipeline) {
      PipelineReplies replies;
      replies.reserve(call->results.size());
      for (auto& result : call->results) {
        replies.push_back(result.has_value() ? *std::move(result)
                                             : absl::InternalError("redis: no reply"));
      }
      Finish(call, absl::StatusOr<PipelineReplies>(std::move(replies)));
    } else {
      Finish(call, call->results[0].has_value() ? *std::move(call->results[0])
                                                : absl::InternalError("redis: no reply"));
    }
    return;
  }
  if (call->transactional) {
    // MULTI ... EXEC was discarded (EXECABORT): the whole transaction again.
    call->redo.resize(call->commands.size());
    for (size_t i = 0; i < call->redo.size(); ++i) call->redo[i] = static_cast<int>(i);
  }
  if (call->redirected && ++call->redirects > client_->options.max_redirects) {
    call->redo.clear();  // the redirect errors stay in place (INTERNAL)
    Advance(call);
    return;
  }
  if (call->redo_backoff && !call->redirected) {
    const milliseconds first(10), max(200);
    call->retry_backoff =
        call->retry_backoff.count() == 0 ? first : std::min(call->retry_backoff * 2, max);
    if (Clock::now() + call->retry_backoff >= call->deadline) {
      call->redo.clear();  // no time left: TRYAGAIN/CLUSTERDOWN as UNAVAILABLE
      Advance(call);
      return;
    }
    client_->counters.retried.fetch_add(1, std::memory_order_relaxed);
    if (!call->retry_assigned) {
      event_assign(&call->retry_timer, base_, -1, 0, &Loop::OnRetry, call);
      call->retry_assigned = true;
    }
    timeval tv = TimevalOf(call->retry_backoff);
    event_add(&call->retry_timer, &tv);
    return;
  }
  Resend(call);
}

void Loop::Resend(Call* call) {
  std::vector<int> indices = std::move(call->redo);
  std::string target = call->redo_backoff && !call->redirected ? "" : call->redo_target;
  bool asking = call->redo_asking;
  bool script_load = call->redo_script_load;
  if (script_load) client_->counters.script_loads.fetch_add(1, std::memory_order_relaxed);
  for (int index : indices) call->results[index].reset();
  Send(call, std::move(target), std::move(indices), asking, script_load);
}

void Loop::OnRetry(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<Call*>(arg);
  if (call->once.fired()) return;
  call->loop->Resend(call);
}

void Loop::OnDeadline(evutil_socket_t, short, void* arg) {
  auto* call = static_cast<Call*>(arg);
  if (call->once.fired()) return;
  call->loop->FinishStatus(
      call, absl::DeadlineExceededError(absl::StrCat(
                "redis call to ", call->node.empty() ? "redis" : call->node,
                " passed its deadline")));
}

void Loop::FinishStatus(Call* call, absl::Status status) {
  if (call->kind == Call::Kind::kPipeline) {
    Finish(call, absl::StatusOr<PipelineReplies>(std::move(status)));
  } else {
    Finish(call, absl::StatusOr<Reply>(std::move(status)));
  }
}

void Loop::Finish(Call* call, absl::StatusOr<Reply> reply) {
  call->once.Fire();
  call->DisarmTimers();
  live_.erase(call);
  std::move(call->reply_done)(std::move(reply));
  Release(call);
}

void Loop::Finish(Call* call, absl::StatusOr<PipelineReplies> replies) {
  call->once.Fire();
  call->DisarmTimers();
  live_.erase(call);
  std::move(call->pipeline_done)(std::move(replies));
  Release(call);
}

// ------------------------------------------------------------------ Impl

AsyncClient::Impl::Impl(AsyncClientOptions opts) : options(std::move(opts)) {
  KUDOS_CHECK(!options.seeds.empty(), "an AsyncClient needs at least one Redis address");
  // hiredis write()s to its sockets: a Redis that went away must be an
  // UNAVAILABLE, not a SIGPIPE that kills the process. Only the default
  // disposition is replaced (a handler the process installed stays).
  struct sigaction current {};
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  auto initial = std::make_shared<Topology>();
  initial->standalone = AddressOf(options.seeds[0]);
  Publish(std::move(initial));
  Detect(options.detect_timeout);
  int loops = options.loops > 0 ? options.loops
                                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int i = 0; i < loops; ++i) loops_.push_back(std::make_unique<Loop>(this));
  topology_thread_ = std::thread([this] { TopologyThread(); });
}

AsyncClient::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  refresh_cv_.notify_all();
  topology_thread_.join();
  for (auto& loop : loops_) loop->Stop();
  loops_.clear();
}

void AsyncClient::Impl::Submit(std::unique_ptr<Call> call) {
  if (!standalone()) {  // a cluster, or not known yet: the slot routes the call
    absl::StatusOr<std::optional<int>> slot = SlotOf(call->commands);
    if (slot.ok()) {
      call->slot = *slot;
    } else {
      call->cross_slot = slot.status();
    }
    for (const Command& command : call->commands) {
      if (!command.empty() && absl::EqualsIgnoreCase(command[0], "MULTI")) {
        call->transactional = true;
      }
    }
  }
  call->results.resize(call->commands.size());
  Loop* loop = nullptr;
  if (current_loop != nullptr && current_loop->client() == this) {
    loop = current_loop;  // a continuation stays on its loop
  } else {
    loop = loops_[next_loop_.fetch_add(1, std::memory_order_relaxed) % loops_.size()].get();
  }
  loop->Post(std::move(call));
}

void AsyncClient::Impl::RequestRefresh() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_requested_ = true;
  }
  refresh_cv_.notify_one();
}

void AsyncClient::Impl::OnMoved(int slot, const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::shared_ptr<const Topology> now = topology();
    if (now->mode != Mode::kCluster || now->owner[slot] < 0 ||
        now->nodes[now->owner[slot]] != address) {
      auto patched = std::make_shared<Topology>(*now);
      if (patched->mode != Mode::kCluster) {
        patched->mode = Mode::kCluster;  // only a cluster answers MOVED
        patched->owner.assign(kClusterSlots, -1);
      }
      patched->owner[slot] = static_cast<int16_t>(patched->IndexOf(address));
      Publish(std::move(patched));
    }
    refresh_requested_ = true;
  }
  refresh_cv_.notify_one();
}

bool AsyncClient::Impl::Detect(milliseconds timeout) {
  std::vector<std::string> candidates;
  {
    std::shared_ptr<const Topology> now = topology();
    candidates = now->nodes;
  }
  for (const Endpoint& seed : options.seeds) {
    std::string address = AddressOf(seed);
    if (std::find(candidates.begin(), candidates.end(), address) == candidates.end()) {
      candidates.push_back(address);
    }
  }
  for (const std::string& address : candidates) {
    absl::StatusOr<Endpoint> endpoint = ParseEndpoint(address);
    if (!endpoint.ok()) continue;
    endpoint->credentials = options.credentials;
    Connection connection(*endpoint, std::min(timeout, options.connect_timeout));
    absl::StatusOr<NodeMode> told = ReadNodeMode(connection);
    if (!told.ok()) continue;
    auto next = std::make_shared<Topology>();
    if (!told->cluster) {
      next->mode = Mode::kStandalone;
      next->standalone = address;
      std::lock_guard<std::mutex> lock(mu_);
      Publish(std::move(next));
      return true;
    }
    absl::StatusOr<Reply> slots = told->slots.has_value() ? *std::move(told->slots)
                                                          : connection.Run({"CLUSTER", "SLOTS"});
    if (!slots.ok() || slots->type != Reply::Type::kArray) continue;
    next->mode = Mode::kCluster;
    next->standalone = address;
    next->owner.assign(kClusterSlots, -1);
    for (const Reply& range : slots->elements) {
      // [start, end, [host, port, id, ...], replicas...]
      if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
      const Reply& primary = range.elements[2];
      std::string host = primary.elements[0].str;
      if (host.empty() || host == "?") host = endpoint->host;
      std::string node = absl::StrCat(host, ":", primary.elements[1].integer);
      int index = next->IndexOf(node);
      for (long long s = range.elements[0].integer;
           s <= range.elements[1].integer && s < kClusterSlots; ++s) {
        if (s >= 0) next->owner[s] = static_cast<int16_t>(index);
      }
    }
    counters.topology_refreshes.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    Publish(std::move(next));
    return true;
  }
  return false;
}

void AsyncClient::Impl::TopologyThread() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    bool unknown = topology()->mode == Mode::kUnknown;
    refresh_cv_.wait_for(lock, unknown ? milliseconds(500) : milliseconds(60000),
                         [&] { return stopping_ || refresh_requested_; });
    if (stopping_) break;
    bool cluster = topology()->mode == Mode::kCluster;
    if (!refresh_requested_ && !unknown && !cluster) continue;
    refresh_requested_ = false;
    lock.unlock();
    Detect(options.connect_timeout);
    lock.lock();
    // At most one refresh per 100 ms: a burst of MOVED is one refresh.
    refresh_cv_.wait_for(lock, milliseconds(100), [&] { return stopping_; });
  }
}

// ------------------------------------------------------------- AsyncClient

absl::StatusOr<AsyncClientOptions> AsyncClientOptionsFor(absl::string_view addresses,
                                                         Credentials credentials) {
  absl::StatusOr<std::vector<Endpoint>> seeds = ParseSeeds(addresses);
  if (!seeds.ok()) return seeds.status();
  AsyncClientOptions options;
  options.seeds = *std::move(seeds);
  for (Endpoint& seed : options.seeds) seed.credentials = credentials;
  options.credentials = std::move(credentials);
  return options;
}

AsyncClient::AsyncClient(AsyncClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

AsyncClient::~AsyncClient() {
  KUDOS_CHECK(current_loop == nullptr || current_loop->client() != impl_.get(),
              "an AsyncClient is never destroyed from its own loop");
  impl_.reset();
}

void AsyncClient::Run(Command command, Deadline deadline, ReplyCallback done) {
  auto call = std::make_unique<Call>();
  call->kind = Call::Kind::kRun;
  call->commands.push_back(std::move(command));
  call->deadline = deadline;
  call->reply_done = std::move(done);
  impl_->Submit(std::move(call));
}

void AsyncClient::Pipeline(std::vector<Command> commands, Deadline deadline,
                           PipelineCallback done) {
  auto call = std::make_unique<Call>();
  call->kind = Call::Kind::kPipeline;
  call->commands = std::move(commands);
  call->deadline = deadline;
  call->pipeline_done = std::move(done);
  if (call->commands.empty()) {
    // Nothing to send; answered on a loop like every call.
    call->refused = absl::InvalidArgumentError("redis pipeline without commands");
  }
  impl_->Submit(std::move(call));
}

void AsyncClient::EvalSha(const Script& script, std::vector<std::string> keys,
                          std::vector<std::string> args, Deadline deadline,
                          ReplyCallback done) {
  auto call = std::make_unique<Call>();
  call->kind = Call::Kind::kEval;
  Command command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(script.sha());
  command.push_back(std::to_string(keys.size()));
  for (std::string& key : keys) command.push_back(std::move(key));
  for (std::string& arg : args) command.push_back(std::move(arg));
  call->commands.push_back(std::move(command));
  call->script = &script;
  call->deadline = deadline;
  call->reply_done = std::move(done);
  impl_->Submit(std::move(call));
}

namespace {
void CheckNotOnALoop(const AsyncClient::Impl* client) {
  KUDOS_CHECK(current_loop == nullptr || current_loop->client() != client,
              "a blocking Redis wrapper is never called on the client's own loop (it would wait "
              "for itself)");
}
}  // namespace

absl::StatusOr<Reply> AsyncClient::RunSync(Command command, milliseconds timeout) {
  CheckNotOnALoop(impl_.get());
  std::promise<absl::StatusOr<Reply>> promise;
  std::future<absl::StatusOr<Reply>> future = promise.get_future();
  Run(std::move(command), DeadlineIn(timeout),
      [&promise](absl::StatusOr<Reply> reply) { promise.set_value(std::move(reply)); });
  return future.get();
}

absl::StatusOr<PipelineReplies> AsyncClient::PipelineSync(std::vector<Command> commands,
                                                          milliseconds timeout) {
  CheckNotOnALoop(impl_.get());
  std::promise<absl::StatusOr<PipelineReplies>> promise;
  auto future = promise.get_future();
  Pipeline(std::move(commands), DeadlineIn(timeout),
           [&promise](absl::StatusOr<PipelineReplies> replies) {
             promise.set_value(std::move(replies));
           });
  return future.get();
}

absl::StatusOr<Reply> AsyncClient::EvalShaSync(const Script& script,
                                               std::vector<std::string> keys,
                                               std::vector<std::string> args,
                                               milliseconds timeout) {
  CheckNotOnALoop(impl_.get());
  std::promise<absl::StatusOr<Reply>> promise;
  auto future = promise.get_future();
  EvalSha(script, std::move(keys), std::move(args), DeadlineIn(timeout),
          [&promise](absl::StatusOr<Reply> reply) { promise.set_value(std::move(reply)); });
  return future.get();
}

AsyncClient::Mode AsyncClient::mode() const { return impl_->topology()->mode; }

std::string AsyncClient::NodeForSlot(int slot) const {
  return impl_->topology()->Route(slot);
}

AsyncClient::Stats AsyncClient::stats() const {
  const Impl::Counters& c = impl_->counters;
  Stats stats;
  stats.connects = c.connects.load();
  stats.calls = c.calls.load();
  stats.largest_batch = c.largest_batch.load();
  stats.moved = c.moved.load();
  stats.asked = c.asked.load();
  stats.retried = c.retried.load();
  stats.script_loads = c.script_loads.load();
  stats.topology_refreshes = c.topology_refreshes.load();
  stats.writes_in_turn = c.writes_in_turn.load();
  stats.writes_on_writable = c.writes_on_writable.load();
  return stats;
}

}  // namespace common::redis
