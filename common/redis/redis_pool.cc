// Pool (redis_client.h): the blocking client, standalone or Redis Cluster.
//
// Standalone: one NodePool, each call on one of its connections, exactly as
// before the pool knew clusters (the mode check is one atomic load).
// Cluster: a NodePool per node, a copy-on-write slot map, each call routed by
// its keys' slot; MOVED patches the map at once and asks the refresh thread
// for a full CLUSTER SLOTS, so no caller ever waits on another node.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/check/check.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"

namespace common::redis {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using Replies = std::vector<absl::StatusOr<Reply>>;

// TRYAGAIN / CLUSTERDOWN / a refused node: retried after this, doubling.
constexpr milliseconds kFirstRetryBackoff{10};
constexpr milliseconds kMaxRetryBackoff{200};
// No seed answered: the next detection not before this, doubling.
constexpr milliseconds kFirstDetectBackoff{20};
constexpr milliseconds kMaxDetectBackoff{1000};
// A burst of MOVED is one CLUSTER SLOTS; a quiet map is re-read now and then.
constexpr milliseconds kMinRefreshInterval{100};
constexpr milliseconds kPeriodicRefresh{60000};
// A refresh must not stall on a paused node for a whole call timeout.
constexpr milliseconds kMaxRefreshTimeout{1000};

std::string AddressOf(const Endpoint& endpoint) {
  return absl::StrCat(endpoint.host, ":", endpoint.port);
}

bool IsNoScript(const absl::StatusOr<Reply>& reply) {
  return !reply.ok() && reply.status().code() == absl::StatusCode::kNotFound &&
         reply.status().message() == "NOSCRIPT";
}

bool HasMulti(const std::vector<Command>& commands) {
  for (const Command& command : commands) {
    if (!command.empty() && absl::EqualsIgnoreCase(command[0], "MULTI")) return true;
  }
  return false;
}

bool IsScriptLoad(const std::vector<Command>& commands) {
  return commands.size() == 1 && commands[0].size() >= 2 &&
         absl::EqualsIgnoreCase(commands[0][0], "SCRIPT") &&
         absl::EqualsIgnoreCase(commands[0][1], "LOAD");
}

// Who serves what. Immutable once published (copy on write).
struct Topology {
  Pool::Mode mode = Pool::Mode::kUnknown;
  std::vector<std::string> primaries;  // cluster: "host:port"; else the one server
  std::vector<int16_t> owner;          // cluster: slot -> index in primaries, -1 = not known

  int IndexOf(const std::string& address) {
    for (size_t i = 0; i < primaries.size(); ++i) {
      if (primaries[i] == address) return static_cast<int>(i);
    }
    primaries.push_back(address);
    return static_cast<int>(primaries.size() - 1);
  }
};

// A cluster's map from a CLUSTER SLOTS reply: [start, end, [host, port, id],
// replicas...] per range. `asked_host` stands in for a node that does not
// know its own address ("" or "?").
std::shared_ptr<Topology> TopologyOf(const Reply& slots, absl::string_view asked_host) {
  auto topology = std::make_shared<Topology>();
  topology->mode = Pool::Mode::kCluster;
  topology->owner.assign(kClusterSlots, -1);
  for (const Reply& range : slots.elements) {
    if (range.elements.size() < 3 || range.elements[2].elements.size() < 2) continue;
    const Reply& primary = range.elements[2];
    std::string host = primary.elements[0].str;
    if (host.empty() || host == "?") host = std::string(asked_host);
    int index = topology->IndexOf(absl::StrCat(host, ":", primary.elements[1].integer));
    for (long long s = std::max(0LL, range.elements[0].integer);
         s <= range.elements[1].integer && s < kClusterSlots; ++s) {
      topology->owner[s] = static_cast<int16_t>(index);
    }
  }
  return topology;
}

// The nodes that answered this thread's NOSCRIPTs since its last SCRIPT
// LOAD, so that the SCRIPT LOAD a caller sends next (keyless) reaches every
// node the script is missing on (bounded: each node once).
thread_local const void* noscript_pool = nullptr;
thread_local std::vector<std::string> noscript_nodes;

void NoteNoScript(const void* pool, const std::string& node) {
  if (noscript_pool != pool) noscript_nodes.clear();
  noscript_pool = pool;
  if (std::find(noscript_nodes.begin(), noscript_nodes.end(), node) == noscript_nodes.end()) {
    noscript_nodes.push_back(node);
  }
}

}  // namespace

// The bounded connections to one node.
class NodePool {
 public:
  NodePool(Endpoint endpoint, const PoolOptions& options, bool name_in_errors)
      : endpoint_(std::move(endpoint)),
        address_(AddressOf(endpoint_)),
        size_(options.size),
        timeout_(options.timeout),
        acquire_timeout_(options.acquire_timeout),
        name_in_errors_(name_in_errors) {}

  const std::string& address() const { return address_; }

  absl::StatusOr<std::unique_ptr<Connection>> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    auto deadline = Clock::now() + acquire_timeout_;
    while (idle_.empty() && created_ >= size_) {
      if (available_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
          created_ >= size_) {
        return absl::UnavailableError(
            name_in_errors_
                ? absl::StrCat("all redis connections to ", address_, " are busy (", size_,
                               " per node)")
                : "all redis connections are busy");
      }
    }
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return connection;
    }
    ++created_;
    return std::make_unique<Connection>(endpoint_, timeout_);
  }

  void Release(std::unique_ptr<Connection> connection) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle_.push_back(std::move(connection));
    }
    available_.notify_one();
  }

  // A connection opened elsewhere (mode detection) joins the pool when
  // there is room, so detecting costs no extra connection.
  void Adopt(std::unique_ptr<Connection> connection) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (created_ >= size_) return;
      ++created_;
      idle_.push_back(std::move(connection));
    }
    available_.notify_one();
  }

 private:
  const Endpoint endpoint_;
  const std::string address_;
  const int size_;
  const milliseconds timeout_;
  const milliseconds acquire_timeout_;
  const bool name_in_errors_;
  std::mutex mu_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  int created_ = 0;
};

// A connection of a NodePool, given back when it goes out of scope.
class Lease {
 public:
  Lease(NodePool* pool, std::unique_ptr<Connection> connection)
      : pool_(pool), connection_(std::move(connection)) {}
  ~Lease() { pool_->Release(std::move(connection_)); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection* operator->() { return connection_.get(); }

 private:
  NodePool* pool_;
  std::unique_ptr<Connection> connection_;
};

class Pool::Impl {
 public:
  explicit Impl(const PoolOptions& options);
  ~Impl();

  absl::StatusOr<Replies> Call(const std::vector<Command>& commands, milliseconds io_timeout,
                               std::string* ran_on);
  absl::StatusOr<Replies> CallOn(const std::string& node, const std::vector<Command>& commands);
  absl::StatusOr<Reply> Eval(const Script& script, const Command& command);
  std::vector<std::string> Primaries();
  Mode mode();
  std::string NodeForSlot(int slot);
  Stats stats() const;

 private:
  // How one group of commands sent to one node ended.
  enum class Sent { kAnswered, kRefused, kFailed };

  Mode Detected();
  bool Detect();
  absl::StatusOr<NodePool*> NodeFor(const std::string& address);
  std::shared_ptr<const Topology> topology() const;
  void Publish(std::shared_ptr<const Topology> next);
  std::string RouteOf(std::optional<int> slot, int attempt);
  absl::StatusOr<Replies> Direct(NodePool* node, const std::vector<Command>& commands,
                                 milliseconds io_timeout);
  absl::StatusOr<Replies> LoadWhereMissing(const std::vector<Command>& commands);
  absl::StatusOr<Replies> Routed(const std::vector<Command>& commands, milliseconds io_timeout,
                                 std::string* ran_on);
  struct Send {
    size_t index;
    std::string address;  // empty: route by the slot map again
    bool asking;
  };
  Sent SendGroup(const std::string& address, const std::vector<Send>& group,
                 const std::vector<Command>& commands, bool transactional,
                 milliseconds io_timeout, Replies& replies, absl::Status& failure);
  void OnMoved(int slot, const std::string& address);
  void RequestRefresh();
  void RefreshThread();
  bool Refresh();
  void StartRefreshThread();

  const PoolOptions options_;
  std::vector<Endpoint> seeds_;

  std::atomic<Mode> mode_{Mode::kUnknown};
  // Standalone (or not known yet): every call goes to this node.
  std::atomic<NodePool*> direct_{nullptr};

  mutable std::mutex mu_;  // guards the fields below
  std::shared_ptr<const Topology> topology_;
  absl::flat_hash_map<std::string, std::unique_ptr<NodePool>> nodes_;  // never erased
  bool refresh_requested_ = false;
  bool stopping_ = false;
  std::condition_variable refresh_cv_;
  std::thread refresh_thread_;

  std::mutex detect_mu_;  // one detection at a time; guards the next two
  Clock::time_point next_detect_{};
  milliseconds detect_backoff_{0};

  // Owned by the refresh thread: its connection to the node that answered last.
  std::unique_ptr<Connection> refresh_connection_;

  struct Counters {
    std::atomic<uint64_t> moved{0}, asked{0}, retried{0}, script_loads{0}, refreshes{0};
  } counters_;
};

Pool::Impl::Impl(const PoolOptions& options) : options_(options) {
  seeds_.push_back(options_.endpoint);
  for (Endpoint seed : options_.more_seeds) {
    seed.credentials = options_.endpoint.credentials;
    seeds_.push_back(std::move(seed));
  }
  auto unknown = std::make_shared<Topology>();
  unknown->primaries.push_back(AddressOf(seeds_[0]));
  topology_ = std::move(unknown);
  auto first = std::make_unique<NodePool>(seeds_[0], options_, /*name_in_errors=*/false);
  direct_.store(first.get());
  nodes_[first->address()] = std::move(first);
  // hiredis write()s to its sockets: a node that went away must be an
  // UNAVAILABLE, not a SIGPIPE that ends the process.
  struct sigaction current;
  if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
}

Pool::Impl::~Impl() {
  if (noscript_pool == this) {  // a later pool at this address must not inherit them
    noscript_pool = nullptr;
    noscript_nodes.clear();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  refresh_cv_.notify_all();
  if (refresh_thread_.joinable()) refresh_thread_.join();
}

std::shared_ptr<const Topology> Pool::Impl::topology() const {
  std::lock_guard<std::mutex> lock(mu_);
  return topology_;
}

// Under mu_.
void Pool::Impl::Publish(std::shared_ptr<const Topology> next) { topology_ = std::move(next); }

absl::StatusOr<NodePool*> Pool::Impl::NodeFor(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(address);
  if (it != nodes_.end()) return it->second.get();
  if (static_cast<int>(nodes_.size()) >= options_.max_nodes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("redis pool: already connected to ", nodes_.size(),
                     " nodes (max_nodes); not opening connections to ", address));
  }
  absl::StatusOr<Endpoint> endpoint = ParseEndpoint(address);
  if (!endpoint.ok()) {
    return absl::InternalError(
        absl::StrCat("redis cluster named a node that is not host:port: '", address, "'"));
  }
  endpoint->credentials = options_.endpoint.credentials;
  auto node = std::make_unique<NodePool>(*std::move(endpoint), options_, /*name_in_errors=*/true);
  NodePool* raw = node.get();
  nodes_[address] = std::move(node);
  return raw;
}

// ------------------------------------------------------------ detection

Pool::Mode Pool::Impl::Detected() {
  Mode mode = mode_.load(std::memory_order_acquire);
  if (mode != Mode::kUnknown) return mode;
  // Calls that arrive during a detection wait for it (bounded by the seeds'
  // timeouts): sent to the first seed instead, a cluster would answer MOVED.
  std::lock_guard<std::mutex> lock(detect_mu_);
  mode = mode_.load(std::memory_order_acquire);
  if (mode != Mode::kUnknown || Clock::now() < next_detect_) return mode;
  if (Detect()) {
    detect_backoff_ = milliseconds(0);
    return mode_.load(std::memory_order_acquire);
  }
  detect_backoff_ = detect_backoff_.count() == 0 ? kFirstDetectBackoff
                                                 : std::min(detect_backoff_ * 2, kMaxDetectBackoff);
  next_detect_ = Clock::now() + detect_backoff_;
  return Mode::kUnknown;
}

// The first seed that tells its mode (ReadNodeMode); a cluster's map from
// its CLUSTER SLOTS.
bool Pool::Impl::Detect() {
  for (const Endpoint& seed : seeds_) {
    auto connection = std::make_unique<Connection>(seed, options_.timeout);
    absl::StatusOr<NodeMode> told = ReadNodeMode(*connection);
    if (!told.ok()) continue;
    absl::StatusOr<NodePool*> node = NodeFor(AddressOf(seed));
    if (!node.ok()) continue;
    if (!told->cluster) {
      auto standalone = std::make_shared<Topology>();
      standalone->mode = Mode::kStandalone;
      standalone->primaries.push_back(AddressOf(seed));
      {
        std::lock_guard<std::mutex> lock(mu_);
        Publish(std::move(standalone));
      }
      (*node)->Adopt(std::move(connection));
      direct_.store(*node, std::memory_order_release);
      mode_.store(Mode::kStandalone, std::memory_order_release);
      return true;
    }
    absl::StatusOr<Reply> slots = told->slots.has_value() ? *std::move(told->slots)
                                                          : connection->Run({"CLUSTER", "SLOTS"});
    if (!slots.ok() || slots->type != Reply::Type::kArray) continue;
    counters_.refreshes.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      Publish(TopologyOf(*slots, seed.host));
    }
    (*node)->Adopt(std::move(connection));
    mode_.store(Mode::kCluster, std::memory_order_release);
    StartRefreshThread();
    return true;
  }
  return false;
}

// ------------------------------------------------------------ refresh

void Pool::Impl::StartRefreshThread() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!refresh_thread_.joinable() && !stopping_) {
    refresh_thread_ = std::thread([this] { RefreshThread(); });
  }
}

void Pool::Impl::RequestRefresh() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_requested_ = true;
  }
  refresh_cv_.notify_one();
}

void Pool::Impl::OnMoved(int slot, const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Topology& now = *topology_;
    if (now.mode == Mode::kCluster &&
        (now.owner[slot] < 0 || now.primaries[now.owner[slot]] != address)) {
      auto patched = std::make_shared<Topology>(now);
      patched->owner[slot] = static_cast<int16_t>(patched->IndexOf(address));
      Publish(std::move(patched));
    }
    refresh_requested_ = true;
  }
  refresh_cv_.notify_one();
}

void Pool::Impl::RefreshThread() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    refresh_cv_.wait_for(lock, kPeriodicRefresh,
                         [&] { return stopping_ || refresh_requested_; });
    if (stopping_) break;
    refresh_requested_ = false;
    lock.unlock();
    Refresh();
    lock.lock();
    // At most one refresh per interval: a burst of MOVED is one CLUSTER SLOTS.
    refresh_cv_.wait_for(lock, kMinRefreshInterval, [&] { return stopping_; });
  }
}

// CLUSTER SLOTS from the node that answered last, else the seeds and the
// known primaries in turn. A node that fails is skipped, not waited for
// again (the refresh connection's timeout is short).
bool Pool::Impl::Refresh() {
  const milliseconds timeout = std::min(options_.timeout, kMaxRefreshTimeout);
  std::vector<Endpoint> candidates;
  if (refresh_connection_ != nullptr) candidates.push_back(refresh_connection_->endpoint());
  candidates.insert(candidates.end(), seeds_.begin(), seeds_.end());
  for (const std::string& address : topology()->primaries) {
    absl::StatusOr<Endpoint> endpoint = ParseEndpoint(address);
    if (!endpoint.ok()) continue;
    endpoint->credentials = options_.endpoint.credentials;
    candidates.push_back(*std::move(endpoint));
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    const bool reuse = i == 0 && refresh_connection_ != nullptr;
    if (!reuse) refresh_connection_ = std::make_unique<Connection>(candidates[i], timeout);
    absl::StatusOr<Reply> slots = refresh_connection_->Run({"CLUSTER", "SLOTS"});
    if (!slots.ok() || slots->type != Reply::Type::kArray || slots->elements.empty()) {
      refresh_connection_.reset();
      continue;
    }
    counters_.refreshes.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    Publish(TopologyOf(*slots, candidates[i].host));
    return true;
  }
  return false;
}

// ------------------------------------------------------------ calls

absl::StatusOr<Replies> Pool::Impl::Call(const std::vector<Command>& commands,
                                         milliseconds io_timeout, std::string* ran_on) {
  if (Detected() != Mode::kCluster) {
    // Standalone, or no seed answered yet: the one server, as always.
    NodePool* node = direct_.load(std::memory_order_acquire);
    if (ran_on != nullptr) *ran_on = node->address();
    return Direct(node, commands, io_timeout);
  }
  if (noscript_pool == this && IsScriptLoad(commands)) return LoadWhereMissing(commands);
  return Routed(commands, io_timeout, ran_on);
}

// A caller's keyless SCRIPT LOAD after NOSCRIPTs: on each node that answered
// them (the first failure ends it), the SHA answered as Redis answers it.
absl::StatusOr<Replies> Pool::Impl::LoadWhereMissing(const std::vector<Command>& commands) {
  std::vector<std::string> nodes = std::move(noscript_nodes);
  noscript_nodes.clear();
  noscript_pool = nullptr;
  std::optional<absl::StatusOr<Replies>> loaded;
  for (const std::string& node : nodes) {
    absl::StatusOr<Replies> here = CallOn(node, commands);
    if (absl::IsFailedPrecondition(here.status())) continue;  // no longer a primary
    if (!here.ok() || !(*here)[0].ok()) return here;
    loaded = std::move(here);
  }
  if (!loaded.has_value()) return Routed(commands, milliseconds(0), nullptr);
  return *std::move(loaded);
}

absl::StatusOr<Replies> Pool::Impl::Direct(NodePool* node, const std::vector<Command>& commands,
                                           milliseconds io_timeout) {
  absl::StatusOr<std::unique_ptr<Connection>> connection = node->Acquire();
  if (!connection.ok()) return connection.status();
  Lease lease(node, *std::move(connection));
  if (io_timeout.count() == 0) return lease->Pipeline(commands);
  lease->SetTimeout(io_timeout);
  absl::StatusOr<Replies> replies = lease->Pipeline(commands);
  lease->SetTimeout(options_.timeout);
  return replies;
}

absl::StatusOr<Replies> Pool::Impl::CallOn(const std::string& node,
                                           const std::vector<Command>& commands) {
  const Mode mode = Detected();
  std::shared_ptr<const Topology> now = topology();
  if (std::find(now->primaries.begin(), now->primaries.end(), node) == now->primaries.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis node ", node, " is not a primary now (primaries: ",
                     absl::StrJoin(now->primaries, ","), "); call Primaries() again"));
  }
  absl::StatusOr<NodePool*> pool = NodeFor(node);
  if (!pool.ok()) return pool.status();
  absl::StatusOr<Replies> replies = Direct(*pool, commands, milliseconds(0));
  if (mode == Mode::kCluster && !replies.ok()) RequestRefresh();  // a failover, perhaps
  return replies;
}

// The node for the next attempt: the slot's primary; for keyless commands
// any primary (the next one on each attempt, so a dead one is passed by).
std::string Pool::Impl::RouteOf(std::optional<int> slot, int attempt) {
  std::shared_ptr<const Topology> now = topology();
  if (now->primaries.empty()) return AddressOf(seeds_[0]);
  if (slot.has_value() && now->owner[*slot] >= 0) return now->primaries[now->owner[*slot]];
  if (slot.has_value()) return now->primaries[0];  // not mapped yet: MOVED tells
  return now->primaries[static_cast<size_t>(attempt) % now->primaries.size()];
}

absl::StatusOr<Replies> Pool::Impl::Routed(const std::vector<Command>& commands,
                                           milliseconds io_timeout, std::string* ran_on) {
  absl::StatusOr<std::optional<int>> slot = SlotOf(commands);
  if (!slot.ok()) return slot.status();  // CROSSSLOT: refused before sending
  const bool transactional = HasMulti(commands);
  const Clock::time_point retry_until = Clock::now() + options_.timeout;
  Replies replies(commands.size(), absl::UnknownError("redis: not sent"));
  int attempt = 0;
  std::vector<Send> pending;
  const std::string first = RouteOf(*slot, attempt);
  for (size_t i = 0; i < commands.size(); ++i) pending.push_back({i, first, false});
  int redirects = 0;
  milliseconds backoff = kFirstRetryBackoff;
  // Each round sends the pending commands, grouped by node, and collects
  // those a node redirected; bounded by max_redirects and by retry_until.
  for (;;) {
    std::vector<Send> next;
    bool redirected = false;
    bool retry = false;
    absl::Status refused;
    std::vector<std::string> order;
    for (const Send& send : pending) {
      if (std::find(order.begin(), order.end(), send.address) == order.end()) {
        order.push_back(send.address);
      }
    }
    for (const std::string& address : order) {
      std::vector<Send> group;
      for (const Send& send : pending) {
        if (send.address == address) group.push_back(send);
      }
      absl::Status failure;
      Sent sent = SendGroup(address, group, commands, transactional, io_timeout, replies, failure);
      if (sent == Sent::kFailed) return failure;
      if (sent == Sent::kRefused) {
        // Nothing sent: safe to send again once the map says where.
        for (const Send& send : group) next.push_back({send.index, "", false});
        refused = failure;
        retry = true;
        continue;
      }
      if (ran_on != nullptr) *ran_on = address;
      const absl::string_view host = absl::string_view(address).substr(0, address.rfind(':'));
      for (const Send& send : group) {
        Redirect redirect = RedirectOf(replies[send.index], host);
        switch (redirect.kind) {
          case Redirect::Kind::kNone:
            if (IsNoScript(replies[send.index])) NoteNoScript(this, address);
            break;
          case Redirect::Kind::kMoved:
            counters_.moved.fetch_add(1, std::memory_order_relaxed);
            OnMoved(redirect.slot, redirect.address);
            next.push_back({send.index, redirect.address, false});
            redirected = true;
            break;
          case Redirect::Kind::kAsk:
            counters_.asked.fetch_add(1, std::memory_order_relaxed);
            next.push_back({send.index, redirect.address, true});
            redirected = true;
            break;
          case Redirect::Kind::kRetry:
            next.push_back({send.index, "", false});
            retry = true;
            break;
        }
      }
    }
    if (next.empty()) return replies;
    if (transactional) {
      // Redis discarded the whole MULTI (EXECABORT): send all of it again, to
      // where the first redirected command goes.
      Send lead = next.front();
      next.clear();
      for (size_t i = 0; i < commands.size(); ++i) next.push_back({i, lead.address, lead.asking});
    }
    if (redirected && ++redirects > options_.max_redirects) {
      return refused.ok() ? absl::StatusOr<Replies>(std::move(replies)) : refused;
    }
    if (retry) {
      if (Clock::now() + backoff > retry_until) {
        return refused.ok() ? absl::StatusOr<Replies>(std::move(replies)) : refused;
      }
      counters_.retried.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, kMaxRetryBackoff);
    }
    ++attempt;
    for (Send& send : next) {
      if (send.address.empty()) send.address = RouteOf(*slot, attempt);
    }
    pending = std::move(next);
  }
}

// One node's share of a round, back to back on one connection, ASKING before
// each command the node must accept while importing (before MULTI only, for a
// transaction: ASKING holds for the whole MULTI/EXEC). kRefused: nothing was
// sent (no connection). kFailed: `failure` ends the call.
Pool::Impl::Sent Pool::Impl::SendGroup(const std::string& address, const std::vector<Send>& group,
                                       const std::vector<Command>& commands, bool transactional,
                                       milliseconds io_timeout, Replies& replies,
                                       absl::Status& failure) {
  absl::StatusOr<NodePool*> node = NodeFor(address);
  if (!node.ok()) {
    failure = node.status();
    return Sent::kFailed;
  }
  absl::StatusOr<std::unique_ptr<Connection>> connection = (*node)->Acquire();
  if (!connection.ok()) {
    failure = connection.status();
    return Sent::kFailed;
  }
  Lease lease(*node, *std::move(connection));
  if (absl::Status connected = lease->Connect(); !connected.ok()) {
    RequestRefresh();  // a failed primary: its replica may serve the slot by now
    failure = connected;
    return Sent::kRefused;
  }
  static const Command kAsking = {"ASKING"};
  std::vector<Command> batch;
  std::vector<int> reply_of;  // batch position -> index in `commands`, -1 for ASKING
  batch.reserve(group.size() * 2);
  for (const Send& send : group) {
    const bool multi = !commands[send.index].empty() &&
                       absl::EqualsIgnoreCase(commands[send.index][0], "MULTI");
    if (send.asking && (!transactional || multi)) {
      batch.push_back(kAsking);
      reply_of.push_back(-1);
    }
    batch.push_back(commands[send.index]);
    reply_of.push_back(static_cast<int>(send.index));
  }
  if (io_timeout.count() != 0) lease->SetTimeout(io_timeout);
  absl::StatusOr<Replies> answered = lease->Pipeline(batch);
  if (io_timeout.count() != 0) lease->SetTimeout(options_.timeout);
  if (!answered.ok()) {
    RequestRefresh();  // the node may be gone; the call may have been applied: not re-sent
    failure = answered.status();
    return Sent::kFailed;
  }
  KUDOS_CHECK(answered->size() == batch.size(), "one reply per command sent");
  for (size_t k = 0; k < batch.size(); ++k) {
    if (reply_of[k] >= 0) replies[reply_of[k]] = std::move((*answered)[k]);
  }
  return Sent::kAnswered;
}

absl::StatusOr<Reply> Pool::Impl::Eval(const Script& script, const Command& command) {
  // Standalone as always: one SCRIPT LOAD and one retry. A cluster may move
  // the slot between the load and the retry: one more.
  const int max_loads = mode_.load(std::memory_order_acquire) == Mode::kCluster ? 2 : 1;
  for (int loads = 0;; ++loads) {
    std::string ran_on;
    absl::StatusOr<Replies> replies = Call({command}, milliseconds(0), &ran_on);
    if (!replies.ok()) return replies.status();
    absl::StatusOr<Reply> reply = std::move((*replies)[0]);
    if (!IsNoScript(reply) || loads == max_loads) return reply;
    counters_.script_loads.fetch_add(1, std::memory_order_relaxed);
    noscript_pool = nullptr;  // loaded here, not by a caller's SCRIPT LOAD
    noscript_nodes.clear();
    absl::StatusOr<Replies> loaded =
        mode_.load(std::memory_order_acquire) == Mode::kCluster
            ? CallOn(ran_on, {{"SCRIPT", "LOAD", script.source()}})
            : Call({{"SCRIPT", "LOAD", script.source()}}, milliseconds(0), nullptr);
    if (!loaded.ok()) return loaded.status();
    if (!(*loaded)[0].ok()) return (*loaded)[0].status();
    if ((*loaded)[0]->str != script.sha()) {
      return absl::InternalError(absl::StrCat("script ", script.name(), " loaded with SHA ",
                                              (*loaded)[0]->str, ", expected ", script.sha()));
    }
  }
}

std::vector<std::string> Pool::Impl::Primaries() {
  Detected();
  return topology()->primaries;
}

Pool::Mode Pool::Impl::mode() { return Detected(); }

std::string Pool::Impl::NodeForSlot(int slot) {
  Detected();
  std::shared_ptr<const Topology> now = topology();
  if (now->mode == Mode::kCluster && slot >= 0 && slot < kClusterSlots && now->owner[slot] >= 0) {
    return now->primaries[now->owner[slot]];
  }
  return now->mode == Mode::kCluster ? "" : now->primaries[0];
}

Pool::Stats Pool::Impl::stats() const {
  Stats stats;
  stats.moved = counters_.moved.load(std::memory_order_relaxed);
  stats.asked = counters_.asked.load(std::memory_order_relaxed);
  stats.retried = counters_.retried.load(std::memory_order_relaxed);
  stats.script_loads = counters_.script_loads.load(std::memory_order_relaxed);
  stats.topology_refreshes = counters_.refreshes.load(std::memory_order_relaxed);
  return stats;
}

// ------------------------------------------------------------ Pool

absl::StatusOr<PoolOptions> PoolOptionsFor(absl::string_view addresses, Credentials credentials) {
  absl::StatusOr<std::vector<Endpoint>> seeds = ParseSeeds(addresses);
  if (!seeds.ok()) return seeds.status();
  PoolOptions options;
  options.endpoint = (*seeds)[0];
  options.endpoint.credentials = credentials;
  for (size_t i = 1; i < seeds->size(); ++i) {
    options.more_seeds.push_back((*seeds)[i]);
    options.more_seeds.back().credentials = credentials;
  }
  return options;
}

Pool::Pool(PoolOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

Pool::~Pool() = default;

absl::StatusOr<Reply> Pool::Run(const Command& command) {
  absl::StatusOr<Replies> replies = impl_->Call({command}, milliseconds(0), nullptr);
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

absl::StatusOr<Reply> Pool::RunWithTimeout(const Command& command, milliseconds io_timeout) {
  if (io_timeout.count() <= 0) {
    return absl::InvalidArgumentError("redis RunWithTimeout: the timeout must be positive");
  }
  absl::StatusOr<Replies> replies = impl_->Call({command}, io_timeout, nullptr);
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

absl::StatusOr<Replies> Pool::Pipeline(const std::vector<Command>& commands) {
  return impl_->Call(commands, milliseconds(0), nullptr);
}

absl::StatusOr<Reply> Pool::Eval(const Script& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) {
  Command command;
  command.reserve(3 + keys.size() + args.size());
  command.push_back("EVALSHA");
  command.push_back(script.sha());
  command.push_back(std::to_string(keys.size()));
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  return impl_->Eval(script, command);
}

std::vector<std::string> Pool::Primaries() { return impl_->Primaries(); }

absl::StatusOr<Reply> Pool::RunOn(const std::string& node, const Command& command) {
  absl::StatusOr<Replies> replies = impl_->CallOn(node, {command});
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

absl::StatusOr<Replies> Pool::PipelineOn(const std::string& node,
                                         const std::vector<Command>& commands) {
  return impl_->CallOn(node, commands);
}

Pool::Mode Pool::mode() { return impl_->mode(); }

std::string Pool::NodeForSlot(int slot) { return impl_->NodeForSlot(slot); }

Pool::Stats Pool::stats() const { return impl_->stats(); }

}  // namespace common::redis
