#include "services/gateway/gateway_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <sys/socket.h>
#include <google/protobuf/message.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <deque>
#include <set>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/auth/guard.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "feedback/v1/feedback.pb.h"
#include "integrations/v1/http_ingress.pb.h"
#include "kudos/v1/kudos.pb.h"
#include <google/protobuf/util/time_util.h>
#include "services/gateway/gateway_rules.h"
#include "services/gateway/static_insights.h"  // generated from static/insights.html
#include "services/gateway/static_screen.h"  // generated from static/screen.html

namespace gateway {

namespace pb = google::protobuf;

namespace {

// Connections accepted past max_connections (each answered 503) before the
// listener pauses and leaves the rest in the kernel's backlog.
constexpr int kConnectionOverflow = 64;
// How long accepting pauses after accept() fails (EMFILE and the like).
constexpr int kAcceptPauseMs = 200;
// Kernel send buffer of an SSE socket: backpressure shows in the gateway's
// own pending count early instead of hiding megabytes per client.
constexpr int kSseSocketSendBuffer = 64 * 1024;
// Input a client may send on its SSE connection (which reads nothing more:
// it is discarded) before the stream is closed.
constexpr size_t kSseMaxDiscardedInput = 64 * 1024;

const char* ReasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 411: return "Length Required";
    case 431: return "Request Header Fields Too Large";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

std::string Dump(const grpc::ByteBuffer& buffer) {
  std::string out;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices) {
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

const char* MethodName(evhttp_cmd_type type) {
  switch (type) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
  }
}

bool IsPrintableAscii(absl::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

std::unique_ptr<pb::Message> NewMessage(const pb::Descriptor* type) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(type)->New());
}

// The gateway that owns a listener (evhttp holds the listener's own
// callback argument, so its error callback finds the gateway here).
std::mutex listener_owners_mu;
std::map<evconnlistener*, Gateway::Impl*>& ListenerOwners() {
  static auto* owners = new std::map<evconnlistener*, Gateway::Impl*>();
  return *owners;
}

}  // namespace

class WatchStream;

struct Upstream {
  std::string name;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
};

struct SseClient;

// One upstream watch shared by every SSE client asking for the same thing
// with the same org and roles. Lives on the loop thread only.
struct WatchGroup {
  Gateway::Impl* impl = nullptr;
  std::string key;
  std::string grpc_method;
  std::string sse_event;
  const pb::Descriptor* response_type = nullptr;
  Upstream* upstream = nullptr;
  std::string request_bytes;
  std::string org;  // every member's org (part of the key)
  bool replay_last = false;
  std::string last_json;
  std::vector<std::pair<SseClient*, std::string>> members;  // client, tag
  WatchStream* stream = nullptr;
  uint64_t generation = 0;
  int backoff_ms = 0;
  bool got_message = false;
  event* retry_timer = nullptr;
  // Feed groups: kudos already delivered (ids, bounded) and the newest
  // create_time seen, so a catch-up after an upstream reconnect sends only
  // what the outage hid.
  bool is_feed = false;
  bool needs_catchup = false;
  std::deque<std::string> recent_order;
  std::set<std::string> recent_ids;
  int64_t since_ms = 0;
  event* catchup_timer = nullptr;
  ~WatchGroup() {
    if (retry_timer != nullptr) event_free(retry_timer);
    if (catchup_timer != nullptr) event_free(catchup_timer);
  }
  // True when the id is new (and remembers it).
  bool Remember(const std::string& id) {
    if (!recent_ids.insert(id).second) return false;
    recent_order.push_back(id);
    if (recent_order.size() > 512) {
      recent_ids.erase(recent_order.front());
      recent_order.pop_front();
    }
    return true;
  }
};

// One SSE connection. Its own token decides how long it streams, and its
// own person and token are charged for it, whoever else shares its watches.
struct SseClient {
  Gateway::Impl* impl = nullptr;
  uint64_t id = 0;  // unique for the process: a posted close finds the right client
  evhttp_request* req = nullptr;
  evhttp_connection* conn = nullptr;
  std::vector<std::pair<std::shared_ptr<WatchGroup>, std::string>> subs;
  std::string org;
  std::string subject;
  // A person (not a screen-only or service token): gets their own survey
  // invitations on a feed stream.
  bool person = false;
  std::string token;      // without "Bearer "
  std::string token_key;  // common::auth::TokenKey(token)
  absl::Time expires = absl::InfiniteFuture();
  event* expiry_timer = nullptr;
  common::ratelimit::StreamSlots::Slot slot;
  bool closing = false;  // no more writes; a close is on its way
  ~SseClient() {
    if (expiry_timer != nullptr) event_free(expiry_timer);
  }
};

// Per connection: sees every byte read before libevent parses it, holds an
// incomplete request head back, and judges each complete head (body size,
// token) before a byte of its body is buffered. Also counts the connection:
// it holds a reference to the bufferevent, released once libevent freed it.
struct ConnectionGuard {
  enum class Mode { kHead, kPass, kDiscard, kDiscardAll };
  Gateway::Impl* impl = nullptr;
  bufferevent* bev = nullptr;
  evbuffer_cb_entry* input_cb = nullptr;
  Mode mode = Mode::kHead;
  int64_t remaining = 0;  // body bytes left to pass or discard
  // Admitted bodies not yet handed to a handler, oldest first (pipelining).
  std::deque<int64_t> charged_bodies;
  std::string head;       // an incomplete head, not yet given to libevent
  size_t head_scan = 0;   // where FindHeadEnd resumes in `head`
  bool over_capacity = false;
  // Set once the connection streams SSE: libevent keeps reading it with no
  // read callback, so every byte that arrives is dropped here, and a client
  // that keeps talking past kSseMaxDiscardedInput is closed.
  SseClient* sse_client = nullptr;
  uint64_t sse_client_id = 0;
  size_t sse_discarded = 0;
};

// One upstream stream an SSE client asks for (a screen asks for several).
struct SseWant {
  std::string grpc_method, event, tag;
  std::unique_ptr<pb::Message> request;
  bool replay;  // a joining client gets the group's latest message at once
};

struct UnaryCall {
  Gateway::Impl* impl = nullptr;
  evhttp_request* req = nullptr;
  bool gone = false;
  const pb::Descriptor* response_type = nullptr;
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
};

class Gateway::Impl {
 public:
  explicit Impl(GatewayOptions options)
      : options_(std::move(options)),
        auth_(options_.jwt),
        limiter_(options_.limits),
        slots_(options_.limits.max_streams_per_person) {}
  ~Impl();

  absl::Status Start();
  void Run() { event_base_dispatch(base_); }
  void Stop() {
    Post([this] { event_base_loopbreak(base_); });
  }

  // Runs `fn` on the loop thread. Safe from any thread.
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
      if (closed_) return;
    }
    event_active(wake_, EV_READ, 0);
  }

  void OnWatchMessage(const std::shared_ptr<WatchGroup>& group, uint64_t generation,
                      const std::string& bytes);
  void OnWatchDone(const std::shared_ptr<WatchGroup>& group, uint64_t generation,
                   WatchStream* stream, const grpc::Status& status);

  const GatewayOptions& options() const { return options_; }

 private:
  static void OnWake(evutil_socket_t, short, void* arg);
  static void OnRequest(evhttp_request* req, void* arg);
  static void OnSignal(evutil_socket_t, short, void* arg);
  static void OnHeartbeat(evutil_socket_t, short, void* arg);
  static void OnUnaryClosed(evhttp_connection*, void* arg);
  static void OnSseClosed(evhttp_connection*, void* arg);
  static void OnRetryTimer(evutil_socket_t, short, void* arg);
  static void OnTokenTimer(evutil_socket_t, short, void* arg);
  static void OnHealthTimer(evutil_socket_t, short, void* arg);
  static void OnResumeTimer(evutil_socket_t, short, void* arg);
  static void OnAcceptError(evconnlistener* listener, void* arg);
  static bufferevent* OnNewConnection(event_base* base, void* arg);
  static void OnInput(evbuffer* input, const evbuffer_cb_info* info, void* arg);
  static void OnSweepTimer(evutil_socket_t, short, void* arg);

  void Handle(evhttp_request* req);
  void Reply(evhttp_request* req, int code, absl::string_view content_type,
             absl::string_view body);
  void ReplyError(evhttp_request* req, int grpc_code, absl::string_view message) {
    Reply(req, HttpStatusFromGrpcCode(grpc_code), "application/json",
          ErrorJson(grpc_code, message));
  }
  void ReplyIndex(evhttp_request* req);
  void ReplyRefusal(evhttp_request* req, absl::string_view reason);
  void ReplyRetryLater(evhttp_request* req, const absl::Status& status);
  void ReplyHealth(evhttp_request* req);
  void ProbeUpstreams();
  std::string Screen(ConnectionGuard& guard, absl::string_view fresh);
  std::string JudgeHead(ConnectionGuard& guard, absl::string_view head);
  bool ReleaseBody(evhttp_request* req, size_t body_length);
  void DiscardStreamInput(ConnectionGuard& guard, evbuffer* input);
  void ReleaseCharges(ConnectionGuard& guard);
  void PauseAccepting(int resume_after_ms);
  void SweepClosedConnections();
  void StartUnary(evhttp_request* req, const Route& route, const RequestInput& input,
                  const std::string& authorization);
  void FinishUnary(const std::shared_ptr<UnaryCall>& call, const grpc::Status& status);
  void StartIngress(evhttp_request* req, const std::string& method, const std::string& raw_path,
                    const char* raw_query);
  void FinishIngress(const std::shared_ptr<UnaryCall>& call, const grpc::Status& status);
  void StartSse(evhttp_request* req, const Route* route, const RequestInput& input,
                const std::string& authorization);
  absl::StatusOr<std::vector<SseWant>> RouteWants(const Route& route, const RequestInput& input);
  absl::StatusOr<std::vector<SseWant>> ScreenWants(const RequestInput& input);
  void StartStreaming(evhttp_request* req, std::unique_ptr<SseClient> client,
                      const std::string& principal_key, const std::vector<SseWant>& wants);
  absl::Status ChargeStream(SseClient& client);
  void Subscribe(SseClient* client, const std::string& principal_key,
                 const std::string& grpc_method, const std::string& event,
                 const pb::Message& request, const std::string& tag, bool replay_last);
  std::string UpstreamAuthorization(const WatchGroup& group);
  void CheckToken(SseClient* client);
  void Reauthenticate(SseClient* client);
  void EndClient(SseClient* client, bool flush_first);
  void CloseLater(SseClient* client);
  size_t PendingBytes(const SseClient* client) const;
  void StartStream(const std::shared_ptr<WatchGroup>& group);
  void CatchUpFeed(const std::shared_ptr<WatchGroup>& group);
  void DeliverKudos(const std::shared_ptr<WatchGroup>& group, const kudos::v1::Kudos& kudos);
  void DeliverInvitation(const std::shared_ptr<WatchGroup>& group,
                         const feedback::v1::Invitation& invitation);
  static void OnCatchupTimer(evutil_socket_t, short, void* arg);
  void RemoveClient(SseClient* client);
  void Send(SseClient* client, absl::string_view data);
  std::string Frame(const WatchGroup& group, const std::string& tag, const std::string& json);
  Upstream* UpstreamFor(absl::string_view grpc_method);

  GatewayOptions options_;
  common::auth::Authenticator auth_;
  common::ratelimit::RateLimiter limiter_;
  common::ratelimit::StreamSlots slots_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  evconnlistener* listener_ = nullptr;
  event* wake_ = nullptr;
  event* heartbeat_ = nullptr;
  event* sigint_ = nullptr;
  event* sigterm_ = nullptr;
  event* health_timer_ = nullptr;
  event* resume_timer_ = nullptr;
  event* sweep_timer_ = nullptr;

  int connections_ = 0;  // open HTTP connections (loop thread)
  std::unordered_map<ConnectionGuard*, std::unique_ptr<ConnectionGuard>> guards_;
  std::unordered_map<bufferevent*, ConnectionGuard*> guard_by_bev_;
  // Bytes of admitted bodies still arriving or waiting for their handler.
  int64_t body_bytes_in_flight_ = 0;
  bool accept_paused_ = false;
  uint64_t next_client_id_ = 1;
  std::unordered_map<std::string, int> sse_per_token_;  // token key -> open streams
  // Upstream name -> its last probed health ("SERVING", or why not).
  std::map<std::string, std::string> upstream_health_ = {
      {"kudos", "UNKNOWN"}, {"ledger", "UNKNOWN"}, {"leaderboard", "UNKNOWN"},
      {"integrations", "UNKNOWN"}, {"programs", "UNKNOWN"}};

  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::function<void()>> queue_;

  Upstream kudos_, ledger_, leaderboard_, integrations_, programs_;
  std::atomic<int> outstanding_{0};

 public:
  std::atomic<int> streams_{0};  // upstream watches not yet done

 private:
  std::unordered_map<std::string, std::shared_ptr<WatchGroup>> groups_;
  std::unordered_map<SseClient*, std::unique_ptr<SseClient>> clients_;
  std::map<std::string, const pb::MethodDescriptor*> methods_;
};

// An upstream server-streaming call made generically: a bidi reactor over
// raw bytes that writes the one request and reads until the stream ends.
class WatchStream : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  WatchStream(Gateway::Impl* impl, std::shared_ptr<WatchGroup> group, uint64_t generation)
      : impl_(impl), group_(std::move(group)), generation_(generation) {}

  // Loop thread.
  void Begin(const std::string& authorization) {
    if (!authorization.empty()) context_.AddMetadata("authorization", authorization);
    common::grpc_util::SetDeadline(context_, impl_->options().watch_deadline);
    request_ = ToByteBuffer(group_->request_bytes);
    group_->upstream->stub->PrepareBidiStreamingCall(&context_, group_->grpc_method,
                                                     grpc::StubOptions(), this);
    impl_->streams_++;
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&incoming_);
    StartCall();
  }
  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::string bytes = Dump(incoming_);
    impl_->Post([impl = impl_, group = group_, generation = generation_,
                 bytes = std::move(bytes)] { impl->OnWatchMessage(group, generation, bytes); });
    StartRead(&incoming_);
  }
  void OnDone(const grpc::Status& status) override {
    Gateway::Impl* impl = impl_;  // `this` may be deleted once posted
    impl->Post([impl = impl_, group = group_, generation = generation_, self = this, status] {
      impl->OnWatchDone(group, generation, self, status);
    });
    impl->streams_--;
  }

 private:
  Gateway::Impl* impl_;
  std::shared_ptr<WatchGroup> group_;
  uint64_t generation_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer incoming_;
};

Gateway::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  for (auto& [key, group] : groups_) {
    if (group->stream != nullptr) group->stream->Cancel();
  }
  // Let in-flight calls and watches report before anything goes away.
  for (int i = 0; i < 200 && (outstanding_.load() > 0 || streams_.load() > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (listener_ != nullptr) {
    std::lock_guard<std::mutex> lock(listener_owners_mu);
    ListenerOwners().erase(listener_);
  }
  // Freeing the HTTP server runs the close callbacks of open connections,
  // which still need the clients, groups and queued calls.
  if (http_ != nullptr) evhttp_free(http_);
  clients_.clear();
  groups_.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.clear();
  }
  if (heartbeat_ != nullptr) event_free(heartbeat_);
  if (health_timer_ != nullptr) event_free(health_timer_);
  if (resume_timer_ != nullptr) event_free(resume_timer_);
  if (sweep_timer_ != nullptr) event_free(sweep_timer_);
  accept_paused_ = false;    // the listener went with evhttp_free
  SweepClosedConnections();  // evhttp_free freed every connection
  if (sigint_ != nullptr) event_free(sigint_);
  if (sigterm_ != nullptr) event_free(sigterm_);
  if (wake_ != nullptr) event_free(wake_);
  if (base_ != nullptr) event_base_free(base_);
}

absl::Status Gateway::Impl::Start() {
  // Routes are checked against the protos once.
  for (const Route& route : Routes()) {
    const pb::MethodDescriptor* method = FindMethod(route.grpc_method);
    if (method == nullptr) {
      return absl::InternalError(absl::StrCat("route ", route.pattern, ": unknown method ",
                                              route.grpc_method));
    }
    if (method->server_streaming() != route.sse || method->client_streaming()) {
      return absl::InternalError(absl::StrCat("route ", route.pattern, ": streaming mismatch"));
    }
    methods_[route.grpc_method] = method;
  }
  for (const char* name : {"/leaderboard.v1.LeaderboardService/WatchLeaderboard",
                           "/kudos.v1.KudosService/WatchFeed"}) {
    methods_[name] = FindMethod(name);
  }

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  auto connect = [&](Upstream& upstream, const std::string& name, const std::string& address) {
    upstream.name = name;
    upstream.address = address;
    upstream.channel =
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    upstream.stub = std::make_unique<grpc::GenericStub>(upstream.channel);
  };
  connect(kudos_, "kudos", options_.kudos_address);
  connect(ledger_, "ledger", options_.ledger_address);
  connect(leaderboard_, "leaderboard", options_.leaderboard_address);
  connect(integrations_, "integrations", options_.integrations_address);
  connect(programs_, "programs", options_.programs_address);

  evthread_use_pthreads();
  base_ = event_base_new();
  if (base_ == nullptr) return absl::InternalError("event_base_new failed");
  wake_ = event_new(base_, -1, 0, &Impl::OnWake, this);
  http_ = evhttp_new(base_);
  evhttp_set_gencb(http_, &Impl::OnRequest, this);
  // The connection guard refuses larger bodies by Content-Length before
  // reading them; this is libevent's own backstop.
  evhttp_set_max_body_size(http_, std::max(kMaxBodyBytes, kMaxImportBodyBytes));
  // Room for the guard's refusal header on a head at the guard's limit.
  evhttp_set_max_headers_size(http_, kMaxHeadBytes + 1024);
  evhttp_set_bevcb(http_, &Impl::OnNewConnection, this);
  evhttp_set_timeout(http_, 60);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                        EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);

  sockaddr_storage address{};
  int length = sizeof(address);
  if (evutil_parse_sockaddr_port(options_.http_address.c_str(),
                                 reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--http: cannot parse '",
                                                   options_.http_address, "'"));
  }
  // A deep backlog: a wall of screens reconnecting at once must not see SYN drops.
  listener_ = evconnlistener_new_bind(
      base_, nullptr, nullptr, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
      4096, reinterpret_cast<sockaddr*>(&address), length);
  if (listener_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.http_address, ": ",
                                               evutil_socket_error_to_string(
                                                   EVUTIL_SOCKET_ERROR())));
  }
  evhttp_bind_listener(http_, listener_);
  // Out of descriptors (EMFILE): pause accepting briefly instead of spinning.
  {
    std::lock_guard<std::mutex> lock(listener_owners_mu);
    ListenerOwners()[listener_] = this;
  }
  evconnlistener_set_error_cb(listener_, &Impl::OnAcceptError);
  resume_timer_ = evtimer_new(base_, &Impl::OnResumeTimer, this);
  sweep_timer_ = event_new(base_, -1, EV_PERSIST, &Impl::OnSweepTimer, this);
  timeval sweep_every{0, 50 * 1000};
  event_add(sweep_timer_, &sweep_every);
  health_timer_ = event_new(base_, -1, EV_PERSIST, &Impl::OnHealthTimer, this);
  const int64_t health_ms = options_.health_interval.count();
  timeval health_every{static_cast<time_t>(health_ms / 1000),
                       static_cast<suseconds_t>((health_ms % 1000) * 1000)};
  event_add(health_timer_, &health_every);
  ProbeUpstreams();

  heartbeat_ = event_new(base_, -1, EV_PERSIST, &Impl::OnHeartbeat, this);
  timeval interval{static_cast<time_t>(options_.heartbeat.count() / 1000),
                   static_cast<suseconds_t>((options_.heartbeat.count() % 1000) * 1000)};
  event_add(heartbeat_, &interval);
  sigint_ = evsignal_new(base_, SIGINT, &Impl::OnSignal, this);
  sigterm_ = evsignal_new(base_, SIGTERM, &Impl::OnSignal, this);
  event_add(sigint_, nullptr);
  event_add(sigterm_, nullptr);
  common::log::Info(absl::StrCat("gateway: HTTP on ", options_.http_address, "; kudos ",
                                 options_.kudos_address, ", ledger ", options_.ledger_address,
                                 ", leaderboard ", options_.leaderboard_address,
                                 ", integrations ", options_.integrations_address,
                                 ", programs ", options_.programs_address));
  return absl::OkStatus();
}

void Gateway::Impl::OnWake(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    batch.swap(self->queue_);
  }
  for (auto& fn : batch) fn();
}

void Gateway::Impl::OnSignal(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  common::log::Info("gateway: signal received, stopping");
  event_base_loopbreak(self->base_);
}

void Gateway::Impl::OnHeartbeat(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  std::vector<SseClient*> clients;
  clients.reserve(self->clients_.size());
  for (auto& [client, owned] : self->clients_) clients.push_back(client);
  const std::string beat = SseComment("heartbeat");
  for (SseClient* client : clients) {
    // Each beat also re-checks the client's token: one no longer valid
    // (expired, or refused by the current keys) stops streaming.
    self->CheckToken(client);
    if (self->clients_.count(client) != 0) self->Send(client, beat);
  }
}

// ---- Connections: the cap, accept errors and the request-head filter --------

bufferevent* Gateway::Impl::OnNewConnection(event_base* base, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
  if (bev == nullptr) return nullptr;
  auto guard = std::make_unique<ConnectionGuard>();
  guard->impl = self;
  guard->bev = bev;
  guard->over_capacity = self->connections_ >= self->options_.max_connections;
  guard->input_cb = evbuffer_add_cb(bufferevent_get_input(bev), &Impl::OnInput, guard.get());
  bufferevent_incref(bev);  // released by SweepClosedConnections
  self->guard_by_bev_[bev] = guard.get();
  self->guards_[guard.get()] = std::move(guard);
  ++self->connections_;
  if (self->connections_ >= self->options_.max_connections + kConnectionOverflow) {
    self->PauseAccepting(/*resume_after_ms=*/0);
  }
  return bev;
}

namespace {
// libevent clears every callback of a bufferevent it frees; while it serves
// a connection the event callback is always set.
bool FreedByLibevent(bufferevent* bev) {
  bufferevent_event_cb event_cb = nullptr;
  bufferevent_getcb(bev, nullptr, nullptr, &event_cb, nullptr);
  return event_cb == nullptr;
}
}  // namespace

void Gateway::Impl::OnSweepTimer(evutil_socket_t, short, void* arg) {
  static_cast<Impl*>(arg)->SweepClosedConnections();
}

void Gateway::Impl::SweepClosedConnections() {
  for (auto it = guards_.begin(); it != guards_.end();) {
    ConnectionGuard* guard = it->first;
    if (!FreedByLibevent(guard->bev)) {
      ++it;
      continue;
    }
    evbuffer_remove_cb_entry(bufferevent_get_input(guard->bev), guard->input_cb);
    ReleaseCharges(*guard);  // bodies that never reached a handler
    guard_by_bev_.erase(guard->bev);
    bufferevent_decref(guard->bev);  // the last reference: closes the socket
    it = guards_.erase(it);
    --connections_;
  }
  KUDOS_CHECK(connections_ == static_cast<int>(guards_.size()),
              "every open connection has exactly one guard");
  if (accept_paused_ && resume_timer_ != nullptr && !evtimer_pending(resume_timer_, nullptr) &&
      connections_ < options_.max_connections + kConnectionOverflow) {
    accept_paused_ = false;
    evconnlistener_enable(listener_);
  }
}

// resume_after_ms 0: until connections drop below the overflow mark.
void Gateway::Impl::PauseAccepting(int resume_after_ms) {
  if (!accept_paused_) evconnlistener_disable(listener_);
  accept_paused_ = true;
  if (resume_after_ms > 0) {
    timeval delay{resume_after_ms / 1000, (resume_after_ms % 1000) * 1000};
    evtimer_add(resume_timer_, &delay);
  }
}

void Gateway::Impl::OnResumeTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Impl*>(arg);
  if (self->connections_ >= self->options_.max_connections + kConnectionOverflow) return;
  self->accept_paused_ = false;
  evconnlistener_enable(self->listener_);
}

void Gateway::Impl::OnAcceptError(evconnlistener* listener, void*) {
  Impl* self = nullptr;
  {
    std::lock_guard<std::mutex> lock(listener_owners_mu);
    auto it = ListenerOwners().find(listener);
    if (it != ListenerOwners().end()) self = it->second;
  }
  if (self == nullptr) return;
  const int error = EVUTIL_SOCKET_ERROR();
  common::log::Warning(absl::StrCat("gateway: accept failed (", evutil_socket_error_to_string(error),
                                    ", ", self->connections_, " connections open); pausing ",
                                    kAcceptPauseMs, " ms"));
  self->PauseAccepting(kAcceptPauseMs);
}

// Runs inside the socket read, before libevent parses: the bytes just read
// (the buffer's tail) are replaced by what libevent may see of them.
void Gateway::Impl::OnInput(evbuffer* input, const evbuffer_cb_info* info, void* arg) {
  auto* guard = static_cast<ConnectionGuard*>(arg);
  const size_t added = info->n_added;
  if (added == 0) return;
  if (guard->sse_client != nullptr) return guard->impl->DiscardStreamInput(*guard, input);
  using Mode = ConnectionGuard::Mode;
  if (guard->mode == Mode::kPass && guard->remaining >= static_cast<int64_t>(added)) {
    guard->remaining -= static_cast<int64_t>(added);  // body bytes: left as they are
    if (guard->remaining == 0) guard->mode = Mode::kHead;
    return;
  }
  evbuffer_cb_clear_flags(input, guard->input_cb, EVBUFFER_CB_ENABLED);
  const size_t total = evbuffer_get_length(input);
  KUDOS_CHECK(total >= added, "the bytes just read are the buffer's tail");
  evbuffer* earlier = evbuffer_new();
  evbuffer_remove_buffer(input, earlier, total - added);
  std::string fresh(added, '\0');
  evbuffer_remove(input, fresh.data(), added);
  const std::string out =
      FreedByLibevent(guard->bev) ? std::string() : guard->impl->Screen(*guard, fresh);
  evbuffer_add_buffer(input, earlier);
  evbuffer_add(input, out.data(), out.size());
  evbuffer_free(earlier);
  evbuffer_cb_set_flags(input, guard->input_cb, EVBUFFER_CB_ENABLED);
}

// An SSE connection is never parsed again (its reply ends it): what the
// client sends is dropped at once, and past a small cap the stream closes.
void Gateway::Impl::DiscardStreamInput(ConnectionGuard& guard, evbuffer* input) {
  evbuffer_cb_clear_flags(input, guard.input_cb, EVBUFFER_CB_ENABLED);
  guard.sse_discarded += evbuffer_get_length(input);
  evbuffer_drain(input, evbuffer_get_length(input));
  evbuffer_cb_set_flags(input, guard.input_cb, EVBUFFER_CB_ENABLED);
  if (guard.sse_discarded <= kSseMaxDiscardedInput) return;
  auto it = clients_.find(guard.sse_client);
  if (it == clients_.end() || it->second->id != guard.sse_client_id || it->second->closing) {
    return;  // already ending
  }
  common::log::Warning(absl::StrCat("gateway: SSE client ", guard.sse_client_id, " sent ",
                                    guard.sse_discarded, " bytes on its stream; closing it"));
  CloseLater(guard.sse_client);
}

// The state machine over the bytes as they arrive: heads are held until
// complete and judged, bodies passed or discarded by their Content-Length.
std::string Gateway::Impl::Screen(ConnectionGuard& guard, absl::string_view fresh) {
  using Mode = ConnectionGuard::Mode;
  std::string out;
  // Bounded: every pass consumes input.
  while (!fresh.empty()) {
    if (guard.mode == Mode::kDiscardAll) return out;
    if (guard.mode == Mode::kPass || guard.mode == Mode::kDiscard) {
      KUDOS_CHECK(guard.remaining > 0, "a body mode has bytes left to pass or discard");
      const size_t n = std::min<size_t>(fresh.size(), static_cast<size_t>(guard.remaining));
      if (guard.mode == Mode::kPass) out.append(fresh.data(), n);
      fresh.remove_prefix(n);
      guard.remaining -= static_cast<int64_t>(n);
      if (guard.remaining == 0) guard.mode = Mode::kHead;
      continue;
    }
    KUDOS_CHECK(guard.head.size() < kMaxHeadBytes, "a held head stays under the limit");
    const size_t before = guard.head.size();
    const size_t take = std::min(fresh.size(), kMaxHeadBytes - before);
    guard.head.append(fresh.data(), take);
    const size_t end = FindHeadEnd(guard.head, &guard.head_scan);
    if (end != absl::string_view::npos) {
      KUDOS_CHECK(end > before, "a head completes only with new bytes");
      fresh.remove_prefix(end - before);
      const std::string head = guard.head.substr(0, end);
      guard.head.clear();
      guard.head_scan = 0;
      out += JudgeHead(guard, head);
      continue;
    }
    fresh.remove_prefix(take);
    if (guard.head.size() >= kMaxHeadBytes) {
      // Only the request line goes on: the rest is what was too large.
      out += RefusedHead(guard.head.substr(0, guard.head.find('\n') + 1), "head_too_large");
      guard.head.clear();
      guard.mode = Mode::kDiscardAll;
    }
  }
  return out;
}

std::string Gateway::Impl::JudgeHead(ConnectionGuard& guard, absl::string_view head) {
  using Mode = ConnectionGuard::Mode;
  const RequestHead parsed = ParseRequestHead(head);
  // Forwarded routes authenticate inside the integrations service (a Slack
  // signature over the exact body, a SCIM token): their bodies are admitted
  // without a JWT, bounded like every other body.
  bool token_verified = IsIngressPath(TargetPath(parsed.target));
  if (!token_verified && parsed.content_length > 0 && MethodMayHaveBody(parsed.method)) {
    absl::string_view token = parsed.authorization;
    token_verified = (absl::ConsumePrefix(&token, "Bearer ") ||
                      absl::ConsumePrefix(&token, "bearer ")) &&
                     auth_.Verify(token, absl::Now()).ok();
  }
  const BodyVerdict verdict =
      JudgeBody(parsed, token_verified, MaxBodyBytesFor(TargetPath(parsed.target)));
  const bool bodies_full =
      verdict == BodyVerdict::kAdmit && parsed.content_length > 0 &&
      body_bytes_in_flight_ + parsed.content_length >
          static_cast<int64_t>(options_.max_body_bytes_in_flight);
  if (!guard.over_capacity && verdict == BodyVerdict::kAdmit && !bodies_full) {
    guard.remaining = parsed.content_length;
    guard.mode = guard.remaining > 0 ? Mode::kPass : Mode::kHead;
    if (parsed.content_length > 0) {
      guard.charged_bodies.push_back(parsed.content_length);
      body_bytes_in_flight_ += parsed.content_length;
    }
    return StripRefusal(head);
  }
  if (bodies_full && !guard.over_capacity) {
    guard.remaining = parsed.content_length;  // discarded; the connection goes on
    guard.mode = Mode::kDiscard;
    return RefusedHead(head, "bodies_busy");
  }
  // A refused body of known length is discarded as it arrives and the
  // connection goes on; otherwise the reply closes it.
  const bool framed = !guard.over_capacity && KeepsFraming(verdict);
  guard.remaining = framed ? parsed.content_length : 0;
  guard.mode = !framed ? Mode::kDiscardAll
                       : (guard.remaining > 0 ? Mode::kDiscard : Mode::kHead);
  return RefusedHead(head, guard.over_capacity ? "busy" : RefusalReason(verdict));
}

void Gateway::Impl::ReplyRefusal(evhttp_request* req, absl::string_view reason) {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  if (reason == "too_large") {
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
    return Reply(req, 413, "application/json",
                 ErrorJsonWithHttp(8, BodyTooLargeMessage(path != nullptr ? path : ""), 413));
  }
  if (reason == "unauthenticated") {
    return ReplyError(req, 16,
                      "a valid bearer token (Authorization header) must come with a request "
                      "body; the body was not read");
  }
  evhttp_add_header(out, "Connection", "close");
  // UNAVAILABLE for a second: a gateway-wide bound is full, nothing of the client's.
  auto busy = [&](absl::string_view what_is_full) {
    evhttp_add_header(out, "Retry-After", "1");
    evhttp_add_header(out, "Retry-After-Ms", "1000");
    return Reply(req, 503, "application/json",
                 ErrorJson(14, absl::StrCat(what_is_full, "; retry after 1000 ms")));
  };
  if (reason == "bodies_busy") {
    return busy(absl::StrCat("the gateway is receiving its maximum of ",
                             options_.max_body_bytes_in_flight, " bytes of request bodies"));
  }
  if (reason == "busy") {
    return busy(absl::StrCat("the gateway holds its maximum of ", options_.max_connections,
                             " connections"));
  }
  if (reason == "head_too_large") {
    return Reply(req, 431, "application/json",
                 ErrorJsonWithHttp(3, absl::StrCat("the request head is larger than ", kMaxHeadBytes / 1024, " KiB"), 431));
  }
  if (reason == "body_not_allowed") {
    return Reply(req, 400, "application/json",
                 ErrorJson(3, "this method's requests carry no body here: a Content-Length "
                              "above 0 or a Transfer-Encoding is refused (only POST, PUT and "
                              "PATCH take a body); the connection is closed"));
  }
  if (reason == "needs_length") {
    return Reply(req, 411, "application/json",
                 ErrorJsonWithHttp(3, "a request body needs a Content-Length (chunked uploads "
                                      "are not accepted)", 411));
  }
  ReplyError(req, 3, "the request head does not parse (request line, headers or Content-Length)");
}

// The handler has the body: it no longer counts as arriving. False when the
// body is not the one the guard admitted next on this connection: the guard
// and libevent framed the bytes differently (reachable from the network if
// their parsers ever disagree), so nothing more on the connection is
// trusted: its charges are released, further input is dropped, and the
// caller refuses the request and closes the connection.
bool Gateway::Impl::ReleaseBody(evhttp_request* req, size_t body_length) {
  if (body_length == 0) return true;
  bufferevent* bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
  auto it = guard_by_bev_.find(bev);
  if (it == guard_by_bev_.end()) return true;
  ConnectionGuard& guard = *it->second;
  if (guard.charged_bodies.empty() ||
      guard.charged_bodies.front() != static_cast<int64_t>(body_length)) {
    common::log::Warning(absl::StrCat(
        "gateway: a request body of ", body_length, " bytes does not match the length its head "
        "announced (", guard.charged_bodies.empty() ? std::string("none")
                                                    : absl::StrCat(guard.charged_bodies.front()),
        "); refusing it and closing the connection"));
    ReleaseCharges(guard);
    guard.mode = ConnectionGuard::Mode::kDiscardAll;
    guard.remaining = 0;
    guard.head.clear();
    guard.head_scan = 0;
    return false;
  }
  body_bytes_in_flight_ -= guard.charged_bodies.front();
  guard.charged_bodies.pop_front();
  KUDOS_CHECK(body_bytes_in_flight_ >= 0, "released bodies were charged");
  return true;
}

void Gateway::Impl::ReleaseCharges(ConnectionGuard& guard) {
  for (int64_t bytes : guard.charged_bodies) body_bytes_in_flight_ -= bytes;
  guard.charged_bodies.clear();
  KUDOS_CHECK(body_bytes_in_flight_ >= 0, "released bodies were charged");
}

void Gateway::Impl::ReplyRetryLater(evhttp_request* req, const absl::Status& status) {
  int64_t retry_ms = common::ratelimit::RetryAfterMillis(status);
  if (retry_ms < 0) retry_ms = 1000;
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Retry-After", absl::StrCat((retry_ms + 999) / 1000).c_str());
  evhttp_add_header(out, "Retry-After-Ms", absl::StrCat(retry_ms).c_str());
  ReplyError(req, static_cast<int>(status.code()), status.message());
}

void Gateway::Impl::OnRequest(evhttp_request* req, void* arg) {
  static_cast<Impl*>(arg)->Handle(req);
}

void Gateway::Impl::Reply(evhttp_request* req, int code, absl::string_view content_type,
                          absl::string_view body) {
  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  if (!content_type.empty()) {
    evhttp_add_header(headers, "Content-Type", std::string(content_type).c_str());
  }
  evhttp_add_header(headers, "Cache-Control", "no-store");
  evbuffer* buffer = evbuffer_new();
  evbuffer_add(buffer, body.data(), body.size());
  evhttp_send_reply(req, code, ReasonPhrase(code), buffer);
  evbuffer_free(buffer);
}

Upstream* Gateway::Impl::UpstreamFor(absl::string_view grpc_method) {
  // The feedback service is hosted by the kudos binary.
  if (absl::StartsWith(grpc_method, "/kudos.v1.") ||
      absl::StartsWith(grpc_method, "/feedback.v1.")) {
    return &kudos_;
  }
  if (absl::StartsWith(grpc_method, "/ledger.v1.")) return &ledger_;
  if (absl::StartsWith(grpc_method, "/integrations.v1.")) return &integrations_;
  if (absl::StartsWith(grpc_method, "/programs.v1.")) return &programs_;
  return &leaderboard_;
}

void Gateway::Impl::Handle(evhttp_request* req) {
  const std::string method = MethodName(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  std::string path = raw_path != nullptr && *raw_path != '\0' ? raw_path : "/";
  const char* raw_query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  evkeyvalq* in = evhttp_request_get_input_headers(req);
  evkeyvalq* out = evhttp_request_get_output_headers(req);

  const char* origin = evhttp_find_header(in, "Origin");
  std::string allow = CorsAllowOrigin(options_.cors_origins, origin != nullptr ? origin : "");
  if (!allow.empty()) {
    evhttp_add_header(out, "Access-Control-Allow-Origin", allow.c_str());
    if (allow != "*") evhttp_add_header(out, "Vary", "Origin");
  }
  // Set only by the connection guard (a client's own copy is stripped).
  if (const char* refusal = evhttp_find_header(in, kRefusalHeader)) {
    return ReplyRefusal(req, refusal);
  }
  if (!ReleaseBody(req, evbuffer_get_length(evhttp_request_get_input_buffer(req)))) {
    evhttp_add_header(out, "Connection", "close");
    return ReplyError(req, 3, "the request's body does not match its head; the connection is "
                              "closed");
  }
  if (method == "OPTIONS") {
    evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    evhttp_add_header(out, "Access-Control-Allow-Headers",
                      "Authorization, Content-Type, Last-Event-ID");
    evhttp_add_header(out, "Access-Control-Max-Age", "600");
    Reply(req, 204, "", "");
    return;
  }

  if (IsIngressPath(path)) return StartIngress(req, method, path, raw_query);
  if (method == "GET" && path == "/") return ReplyIndex(req);
  if (method == "GET" && path == "/healthz") return ReplyHealth(req);
  if (method == "GET" && path == "/favicon.ico") return Reply(req, 204, "", "");
  if (method == "GET" && (path == "/screen" || path == "/screen/")) {
    return Reply(req, 200, "text/html; charset=utf-8", kScreenHtml);
  }
  if (method == "GET" && (path == "/insights" || path == "/insights/")) {
    return Reply(req, 200, "text/html; charset=utf-8", kInsightsHtml);
  }

  RequestInput input;
  if (raw_query != nullptr) input.query_params = ParseQuery(raw_query);
  const bool screen_stream = path == "/v1/stream/screen";
  RouteMatch match;
  if (!screen_stream) {
    match = MatchRoute(Routes(), method, path);
    if (match.route == nullptr) {
      if (!match.allowed_methods.empty()) {
        std::string allowed;
        for (const auto& m : match.allowed_methods) {
          absl::StrAppend(&allowed, allowed.empty() ? "" : ", ", m);
        }
        evhttp_add_header(out, "Allow", allowed.c_str());
        return Reply(req, 405, "application/json",
                     ErrorJsonWithHttp(12, absl::StrCat(method, " ", path, " is not allowed"),
                                       405));
      }
      return ReplyError(req, 5, absl::StrCat("no route for ", method, " ", path));
    }
  } else if (method != "GET") {
    return Reply(req, 405, "application/json", ErrorJsonWithHttp(12, "use GET", 405));
  }
  const bool sse = screen_stream || match.route->sse;

  evbuffer* body = evhttp_request_get_input_buffer(req);
  size_t body_length = evbuffer_get_length(body);
  if (static_cast<int64_t>(body_length) > MaxBodyBytesFor(path)) {
    return Reply(req, 413, "application/json",
                 ErrorJsonWithHttp(8, BodyTooLargeMessage(path), 413));
  }
  input.body.resize(body_length);
  if (body_length > 0) evbuffer_copyout(body, input.body.data(), body_length);
  input.path_params = match.path_params;

  std::string authorization;
  if (const char* header = evhttp_find_header(in, "Authorization")) authorization = header;
  if (authorization.empty() && sse) {
    // EventSource cannot send headers: SSE routes also take ?access_token=.
    for (const auto& [name, value] : input.query_params) {
      if (name == "access_token" && !value.empty()) authorization = "Bearer " + value;
    }
  }
  if (!IsPrintableAscii(authorization)) {
    return ReplyError(req, 16, "the authorization header holds invalid characters");
  }
  absl::string_view token = authorization;
  if (absl::ConsumePrefix(&token, "Bearer ") || absl::ConsumePrefix(&token, "bearer ")) {
    auto principal = auth_.Verify(token, absl::Now());
    if (principal.ok()) input.caller = principal->subject;
  }
  if (sse) return StartSse(req, screen_stream ? nullptr : match.route, input, authorization);
  StartUnary(req, *match.route, input, authorization);
}

void Gateway::Impl::ReplyIndex(evhttp_request* req) {
  std::string routes;
  for (const Route& route : Routes()) {
    absl::StrAppend(&routes, routes.empty() ? "" : ",", "{\"method\":", JsonQuote(route.http_method),
                    ",\"path\":", JsonQuote(route.pattern), ",\"rpc\":",
                    JsonQuote(route.grpc_method), ",\"summary\":", JsonQuote(route.summary),
                    route.sse ? ",\"sse\":true" : "", "}");
  }
  std::string body = absl::StrCat(
      "{\"service\":\"kudos-gateway\",\"health\":\"/healthz\",",
      "\"screen\":\"/screen?token=<screen token>&team=<team id>\",",
      "\"insights\":\"/insights?token=<manager token>&team=<team id>&window=month\",",
      "\"screenStream\":\"/v1/stream/screen?access_token=<token>&team=<team id>&top_n=10\",",
      "\"forwarded\":[\"/slack/\",\"/scim/\",\"/v1/export/\"],",
      "\"routes\":[", routes, "]}");
  Reply(req, 200, "application/json", body);
}

// Readiness is the gateway's own: this answer comes from its loop, so a 200
// means it accepts, parses and forwards. Upstreams are reported beside it
// from the last probe (an outage of one fails only the routes that need it).
void Gateway::Impl::ReplyHealth(evhttp_request* req) {
  std::string upstreams;
  for (const auto& [name, result] : upstream_health_) {
    absl::StrAppend(&upstreams, upstreams.empty() ? "" : ",", JsonQuote(name), ":",
                    JsonQuote(result));
  }
  Reply(req, 200, "application/json",
        absl::StrCat("{\"status\":\"SERVING\",\"upstreams\":{", upstreams,
                     "},\"sseClients\":", clients_.size(), ",\"upstreamWatches\":",
                     groups_.size(), ",\"connections\":", connections_, "}"));
}

void Gateway::Impl::OnHealthTimer(evutil_socket_t, short, void* arg) {
  static_cast<Impl*>(arg)->ProbeUpstreams();
}

void Gateway::Impl::ProbeUpstreams() {
  for (Upstream* upstream : {&kudos_, &ledger_, &leaderboard_, &integrations_, &programs_}) {
    struct Call {
      grpc::ClientContext context;
      grpc::ByteBuffer request = ToByteBuffer("");
      grpc::ByteBuffer response;
    };
    auto call = std::make_shared<Call>();
    // Shorter than the probe interval, so probes never pile up.
    common::grpc_util::SetDeadline(
        call->context, std::min(std::chrono::milliseconds(1000), options_.health_interval));
    ++outstanding_;
    upstream->stub->UnaryCall(
        &call->context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &call->request,
        &call->response, [this, call, name = upstream->name](grpc::Status status) {
          std::string result;
          if (status.ok()) {
            // HealthCheckResponse{status = 1 (SERVING)} is the bytes 08 01.
            std::string bytes = Dump(call->response);
            result = bytes == std::string("\x08\x01", 2) ? "SERVING" : "NOT_SERVING";
          } else {
            result = absl::StrCat(GrpcCodeName(status.error_code()), ": ",
                                  status.error_message());
          }
          Post([this, name, result] { upstream_health_[name] = result; });
          --outstanding_;
        });
  }
}

// A client that disconnects before its reply leaves evhttp with a request
// detached from any connection (evhttp_request_get_connection == nullptr):
// the request is then ours to free. When the whole server is being freed the
// request is still attached and evhttp frees it itself.
static void FreeIfDetached(evhttp_request* req) {
  if (req != nullptr && evhttp_request_get_connection(req) == nullptr) evhttp_request_free(req);
}

void Gateway::Impl::StartUnary(evhttp_request* req, const Route& route, const RequestInput& input,
                               const std::string& authorization) {
  const pb::MethodDescriptor* method = methods_[route.grpc_method];
  std::unique_ptr<pb::Message> request = NewMessage(method->input_type());
  absl::Status built = BuildRequest(route, input, request.get());
  if (!built.ok()) return ReplyError(req, static_cast<int>(built.code()), built.message());

  auto call = std::make_shared<UnaryCall>();
  call->impl = this;
  call->req = req;
  call->response_type = method->output_type();
  if (!authorization.empty()) call->context.AddMetadata("authorization", authorization);
  common::grpc_util::SetDeadline(call->context, options_.call_timeout);
  call->request = ToByteBuffer(request->SerializeAsString());
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), &Impl::OnUnaryClosed,
                                call.get());
  ++outstanding_;
  UpstreamFor(route.grpc_method)
      ->stub->UnaryCall(&call->context, route.grpc_method, grpc::StubOptions(), &call->request,
                        &call->response, [this, call](grpc::Status status) {
                          Post([this, call, status] { FinishUnary(call, status); });
                          --outstanding_;
                        });
}

void Gateway::Impl::OnUnaryClosed(evhttp_connection*, void* arg) {
  auto* call = static_cast<UnaryCall*>(arg);
  call->gone = true;
  FreeIfDetached(call->req);
  call->req = nullptr;
  call->context.TryCancel();
}

void Gateway::Impl::FinishUnary(const std::shared_ptr<UnaryCall>& call,
                                const grpc::Status& status) {
  if (call->gone) return;
  evhttp_connection_set_closecb(evhttp_request_get_connection(call->req), nullptr, nullptr);
  if (!status.ok()) {
    return ReplyError(call->req, status.error_code(), status.error_message());
  }
  std::unique_ptr<pb::Message> response = NewMessage(call->response_type);
  if (!response->ParseFromString(Dump(call->response))) {
    return ReplyError(call->req, 13, "the upstream response could not be parsed");
  }
  Reply(call->req, 200, "application/json", ToJson(*response));
}

// ---- Raw routes forwarded to the integrations service ----------------------

// The request goes as it came (method, path, query, headers, body bytes) to
// integrations.v1.HttpIngressService/Handle; its answer comes back as is.
void Gateway::Impl::StartIngress(evhttp_request* req, const std::string& method,
                                 const std::string& raw_path, const char* raw_query) {
  evbuffer* body = evhttp_request_get_input_buffer(req);
  const size_t body_length = evbuffer_get_length(body);
  if (static_cast<int64_t>(body_length) > MaxBodyBytesFor(raw_path)) {
    return Reply(req, 413, "application/json",
                 ErrorJsonWithHttp(8, BodyTooLargeMessage(raw_path), 413));
  }
  std::string bytes(body_length, '\0');
  if (body_length > 0) evbuffer_copyout(body, bytes.data(), body_length);
  std::vector<std::pair<std::string, std::string>> headers;
  evkeyvalq* in = evhttp_request_get_input_headers(req);
  for (evkeyval* header = in->tqh_first; header != nullptr; header = header->next.tqe_next) {
    headers.emplace_back(header->key, header->value);
  }
  integrations::v1::HandleRequest request = BuildIngressRequest(
      method, raw_path, raw_query != nullptr ? raw_query : "", headers, std::move(bytes));

  auto call = std::make_shared<UnaryCall>();
  call->impl = this;
  call->req = req;
  call->response_type = integrations::v1::HandleResponse::descriptor();
  common::grpc_util::SetDeadline(call->context, options_.call_timeout);
  call->request = ToByteBuffer(request.SerializeAsString());
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), &Impl::OnUnaryClosed,
                                call.get());
  ++outstanding_;
  integrations_.stub->UnaryCall(&call->context, kIngressMethod, grpc::StubOptions(),
                                &call->request, &call->response,
                                [this, call](grpc::Status status) {
                                  Post([this, call, status] { FinishIngress(call, status); });
                                  --outstanding_;
                                });
}

void Gateway::Impl::FinishIngress(const std::shared_ptr<UnaryCall>& call,
                                  const grpc::Status& status) {
  if (call->gone) return;
  evhttp_connection_set_closecb(evhttp_request_get_connection(call->req), nullptr, nullptr);
  if (!status.ok()) {
    return ReplyError(call->req, status.error_code(),
                      absl::StrCat("integrations: ", status.error_message()));
  }
  integrations::v1::HandleResponse response;
  if (!response.ParseFromString(Dump(call->response))) {
    return Reply(call->req, 502, "application/json",
                 ErrorJsonWithHttp(13, "the integrations service's answer does not parse", 502));
  }
  absl::StatusOr<IngressReply> reply = CheckIngressResponse(response);
  if (!reply.ok()) {
    common::log::Warning(absl::StrCat("gateway: ", reply.status().message()));
    return Reply(call->req, 502, "application/json",
                 ErrorJsonWithHttp(13, reply.status().message(), 502));
  }
  evkeyvalq* out = evhttp_request_get_output_headers(call->req);
  for (const auto& [name, value] : reply->headers) {
    evhttp_add_header(out, name.c_str(), value.c_str());
  }
  evbuffer* buffer = evbuffer_new();
  evbuffer_add(buffer, reply->body.data(), reply->body.size());
  evhttp_send_reply(call->req, reply->status, ReasonPhrase(reply->status), buffer);
  evbuffer_free(buffer);
}

// ---- Server-Sent Events ----------------------------------------------------

void Gateway::Impl::StartSse(evhttp_request* req, const Route* route, const RequestInput& input,
                             const std::string& authorization) {
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return ReplyError(req, 16, "a bearer token is required (Authorization or ?access_token=)");
  }
  // Clients share upstream watches, so the gateway checks the token itself
  // and keys the sharing by org and roles.
  const absl::Time now = absl::Now();
  auto principal = auth_.Verify(token, now);
  if (!principal.ok()) return ReplyError(req, 16, principal.status().message());
  absl::StatusOr<absl::Time> expires = TokenExpiry(token);
  if (!expires.ok()) return ReplyError(req, 16, expires.status().message());
  // The upstream watch runs under the gateway's identity, so this client's
  // own person and token are charged here, for this stream.
  const std::string token_key = common::auth::TokenKey(token);
  if (absl::Status allowed = limiter_.Acquire(principal->org, principal->subject, token_key, now);
      !allowed.ok()) {
    return ReplyRetryLater(req, allowed);
  }
  // Every request is built first, so bad parameters are a plain 400.
  absl::StatusOr<std::vector<SseWant>> wants =
      route != nullptr ? RouteWants(*route, input) : ScreenWants(input);
  if (!wants.ok()) {
    return ReplyError(req, static_cast<int>(wants.status().code()), wants.status().message());
  }

  auto client = std::make_unique<SseClient>();
  client->impl = this;
  client->id = next_client_id_++;
  client->org = principal->org;
  client->subject = principal->subject;
  client->person = !principal->is_screen_only() && !principal->is_service();
  client->token = std::string(token);
  client->token_key = token_key;
  client->expires = *expires;
  if (absl::Status charged = ChargeStream(*client); !charged.ok()) {
    return ReplyRetryLater(req, charged);
  }
  ++sse_per_token_[token_key];
  StartStreaming(req, std::move(client), absl::StrCat(principal->org, "|", principal->roles),
                 *wants);
}

absl::StatusOr<std::vector<SseWant>> Gateway::Impl::RouteWants(const Route& route,
                                                                const RequestInput& input) {
  const pb::MethodDescriptor* method = methods_[route.grpc_method];
  std::unique_ptr<pb::Message> request = NewMessage(method->input_type());
  absl::Status built = BuildRequest(route, input, request.get());
  if (!built.ok()) return built;
  std::vector<SseWant> wants;
  wants.push_back({route.grpc_method, route.sse_event, "", std::move(request),
                   route.sse_event == "snapshot"});
  return wants;
}

// The team screen: org and team boards for this week and month, and the
// feed, over one connection.
absl::StatusOr<std::vector<SseWant>> Gateway::Impl::ScreenWants(const RequestInput& input) {
  std::string team, metric = "METRIC_POINTS_RECEIVED";
  int top_n = 10;
  bool feed = true;
  for (const auto& [name, value] : input.query_params) {
    if (name == "team" || name == "team_id") team = value;
    if (name == "metric") metric = value;
    if (name == "feed") feed = value != "0" && value != "false";
    if ((name == "top_n" || name == "topN") &&
        (!absl::SimpleAtoi(value, &top_n) || top_n < 1 || top_n > 100)) {
      return absl::InvalidArgumentError("top_n: must be 1..100");
    }
  }
  struct Board {
    const char* tag;
    const char* scope;
    const char* window;
  };
  std::vector<Board> boards = {{"org_week", "SCOPE_ORG", "WINDOW_WEEK"},
                               {"org_month", "SCOPE_ORG", "WINDOW_MONTH"}};
  if (!team.empty()) {
    boards.push_back({"team_week", "SCOPE_TEAM", "WINDOW_WEEK"});
    boards.push_back({"team_month", "SCOPE_TEAM", "WINDOW_MONTH"});
  }
  std::vector<SseWant> wants;
  for (const Board& board : boards) {
    auto request = std::make_unique<leaderboard::v1::WatchLeaderboardRequest>();
    request->set_top_n(top_n);
    absl::Status status = SetFieldFromText(request.get(), "board.metric", metric);
    if (!status.ok()) return absl::InvalidArgumentError(status.message());
    SetFieldFromText(request.get(), "board.scope", board.scope).IgnoreError();
    SetFieldFromText(request.get(), "board.window", board.window).IgnoreError();
    if (absl::StartsWith(board.tag, "team")) request->mutable_board()->set_scope_id(team);
    wants.push_back({"/leaderboard.v1.LeaderboardService/WatchLeaderboard", "snapshot",
                     board.tag, std::move(request), true});
  }
  if (feed) {
    wants.push_back({"/kudos.v1.KudosService/WatchFeed", "kudos", "",
                     std::make_unique<kudos::v1::WatchFeedRequest>(), false});
  }
  return wants;
}

// The client was charged: its stream starts and joins (or opens) its watches.
void Gateway::Impl::StartStreaming(evhttp_request* req, std::unique_ptr<SseClient> owned,
                                   const std::string& principal_key,
                                   const std::vector<SseWant>& wants) {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
  evhttp_add_header(out, "Cache-Control", "no-cache");
  evhttp_add_header(out, "X-Accel-Buffering", "no");
  // Ending the stream (a reauth) ends the connection too.
  evhttp_add_header(out, "Connection", "close");
  evhttp_send_reply_start(req, 200, "OK");
  SseClient* client = owned.get();
  client->req = req;
  client->conn = evhttp_request_get_connection(req);
  clients_[client] = std::move(owned);
  evhttp_connection_set_closecb(client->conn, &Impl::OnSseClosed, client);
  // No read timeout on a stream; heartbeats keep writes flowing.
  if (bufferevent* bev = evhttp_connection_get_bufferevent(client->conn)) {
    // libevent reads on with no read callback: the guard drops what comes.
    if (auto guard = guard_by_bev_.find(bev); guard != guard_by_bev_.end()) {
      guard->second->sse_client = client;
      guard->second->sse_client_id = client->id;
      guard->second->head.clear();
      guard->second->head_scan = 0;
    }
    timeval write_timeout{60, 0};
    bufferevent_set_timeouts(bev, nullptr, &write_timeout);
    const evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd >= 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSseSocketSendBuffer, sizeof(kSseSocketSendBuffer));
    }
  }
  client->expiry_timer = evtimer_new(base_, &Impl::OnTokenTimer, client);
  Send(client, SseRetry(options_.sse_retry_ms) + SseComment("connected"));
  for (const SseWant& want : wants) {
    Subscribe(client, principal_key, want.grpc_method, want.event, *want.request, want.tag,
              want.replay);
  }
  CheckToken(client);  // last: arms the timer at the token's expiry (or ends the client)
}

// A slot among the person's streams and one of the token's (both released
// with the client), or RESOURCE_EXHAUSTED with retry information.
absl::Status Gateway::Impl::ChargeStream(SseClient& client) {
  auto open = sse_per_token_.find(client.token_key);
  if (options_.max_sse_per_token > 0 && open != sse_per_token_.end() &&
      open->second >= options_.max_sse_per_token) {
    return common::ratelimit::RateLimitedError(
        absl::Seconds(1), absl::StrCat("this token already holds its maximum of ",
                                       options_.max_sse_per_token,
                                       " open streams; close one first"));
  }
  absl::StatusOr<common::ratelimit::StreamSlots::Slot> slot =
      slots_.Open(client.org, client.subject);
  if (!slot.ok()) {
    return common::ratelimit::RateLimitedError(absl::Seconds(1), slot.status().message());
  }
  client.slot = std::move(*slot);
  return absl::OkStatus();
}

void Gateway::Impl::OnTokenTimer(evutil_socket_t, short, void* arg) {
  auto* client = static_cast<SseClient*>(arg);
  client->impl->CheckToken(client);
}

// Ends the stream with `event: reauth` once the client's token is no longer
// valid; otherwise (re)arms the timer at its expiry.
void Gateway::Impl::CheckToken(SseClient* client) {
  if (client->closing) return;
  const absl::Time now = absl::Now();
  if (now >= client->expires || !auth_.Verify(client->token, now).ok()) {
    return Reauthenticate(client);
  }
  // At most a day ahead (timeval range); the timer re-checks when it fires.
  const absl::Duration left = std::min(client->expires - now, absl::Hours(24));
  timeval delay = absl::ToTimeval(left + absl::Milliseconds(1));
  evtimer_add(client->expiry_timer, &delay);
}

void Gateway::Impl::Reauthenticate(SseClient* client) {
  Send(client, SseEvent("reauth", ErrorJson(16, "the stream's token expired or is no longer "
                                                "valid: reconnect with a fresh token")));
  if (!client->closing) EndClient(client, /*flush_first=*/true);
}

// Removes the client now; its connection is flushed and closed, or closed
// at once (a slow reader's backlog is dropped).
void Gateway::Impl::EndClient(SseClient* client, bool flush_first) {
  evhttp_request* req = client->req;
  evhttp_connection* conn = client->conn;
  evhttp_connection_set_closecb(conn, nullptr, nullptr);
  RemoveClient(client);
  if (flush_first) {
    evhttp_send_reply_end(req);  // Connection: close ends the connection after it
  } else {
    evhttp_connection_free(conn);
  }
}

// Closes the client from the loop, outside whatever callback found it must go.
void Gateway::Impl::CloseLater(SseClient* client) {
  client->closing = true;
  Post([this, client, id = client->id] {
    auto it = clients_.find(client);
    if (it != clients_.end() && it->second->id == id) EndClient(client, /*flush_first=*/false);
  });
}

size_t Gateway::Impl::PendingBytes(const SseClient* client) const {
  bufferevent* bev = evhttp_connection_get_bufferevent(client->conn);
  if (bev == nullptr) return 0;
  size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
  if (bufferevent* socket = bufferevent_get_underlying(bev)) {
    pending += evbuffer_get_length(bufferevent_get_output(socket));
  }
  return pending;
}

void Gateway::Impl::Subscribe(SseClient* client, const std::string& principal_key,
                              const std::string& grpc_method, const std::string& event,
                              const pb::Message& request, const std::string& tag,
                              bool replay_last) {
  std::string bytes;
  request.SerializeToString(&bytes);
  std::string key = absl::StrCat(principal_key, "\n", grpc_method, "\n", bytes);
  std::shared_ptr<WatchGroup>& group = groups_[key];
  bool fresh = group == nullptr;
  if (fresh) {
    group = std::make_shared<WatchGroup>();
    group->impl = this;
    group->key = key;
    group->grpc_method = grpc_method;
    group->sse_event = event;
    group->response_type = methods_[grpc_method]->output_type();
    group->upstream = UpstreamFor(grpc_method);
    group->request_bytes = bytes;
    group->org = client->org;
    group->replay_last = replay_last;
    group->is_feed = grpc_method == "/kudos.v1.KudosService/WatchFeed";
    group->since_ms = absl::ToUnixMillis(absl::Now());
  }
  // The key starts with the org: a client never joins another org's watch.
  KUDOS_CHECK(group->org == client->org, "a watch group serves one org");
  group->members.emplace_back(client, tag);
  client->subs.emplace_back(group, tag);
  if (fresh) {
    StartStream(group);
  } else if (group->replay_last && !group->last_json.empty()) {
    Send(client, Frame(*group, tag, group->last_json));
  }
}

// The upstream watch's credential: a service token of the gateway for the
// group's org, minted per (re)watch, so no member's expiry or departure
// breaks it. Without a service secret: the member token valid longest.
std::string Gateway::Impl::UpstreamAuthorization(const WatchGroup& group) {
  if (!options_.jwt.service_secret.empty()) {
    absl::StatusOr<std::string> token = common::auth::MintServiceToken(
        "gateway", group.org, options_.jwt.service_secret, absl::Now());
    if (token.ok()) return "Bearer " + *token;
    common::log::Warning(absl::StrCat("gateway: cannot mint a service token: ",
                                      token.status().ToString()));
  }
  const SseClient* longest = nullptr;
  for (const auto& [client, tag] : group.members) {
    if (longest == nullptr || client->expires > longest->expires) longest = client;
  }
  if (longest == nullptr) return "";
  KUDOS_CHECK(longest->org == group.org, "a group's credential is one of its own org");
  return "Bearer " + longest->token;
}

void Gateway::Impl::StartStream(const std::shared_ptr<WatchGroup>& group) {
  group->generation++;
  group->got_message = false;
  group->stream = new WatchStream(this, group, group->generation);
  group->stream->Begin(UpstreamAuthorization(*group));
  if (group->is_feed && group->needs_catchup) {
    // Kudos sent while the watch was down are not in a new watch (it starts
    // at "now"): list them now and once more after the watch has settled.
    group->needs_catchup = false;
    CatchUpFeed(group);
    if (group->catchup_timer == nullptr) {
      group->catchup_timer = evtimer_new(base_, &Impl::OnCatchupTimer, group.get());
    }
    timeval later{1, 0};
    evtimer_add(group->catchup_timer, &later);
  }
}

void Gateway::Impl::OnCatchupTimer(evutil_socket_t, short, void* arg) {
  auto* raw = static_cast<WatchGroup*>(arg);
  Impl* self = raw->impl;
  auto it = self->groups_.find(raw->key);
  if (it == self->groups_.end() || it->second.get() != raw) return;
  self->CatchUpFeed(it->second);
}

void Gateway::Impl::CatchUpFeed(const std::shared_ptr<WatchGroup>& group) {
  kudos::v1::WatchFeedRequest watch;
  if (!watch.ParseFromString(group->request_bytes)) return;
  kudos::v1::ListKudosRequest list;
  *list.mutable_filter() = watch.filter();
  list.set_page_size(50);
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
  };
  auto call = std::make_shared<Call>();
  const std::string authorization = UpstreamAuthorization(*group);
  if (!authorization.empty()) call->context.AddMetadata("authorization", authorization);
  common::grpc_util::SetDeadline(call->context, options_.call_timeout);
  call->request = ToByteBuffer(list.SerializeAsString());
  ++outstanding_;
  kudos_.stub->UnaryCall(
      &call->context, "/kudos.v1.KudosService/ListKudos", grpc::StubOptions(), &call->request,
      &call->response, [this, call, group](grpc::Status status) {
        if (status.ok()) {
          Post([this, call, group] {
            kudos::v1::ListKudosResponse response;
            if (!response.ParseFromString(Dump(call->response))) return;
            // Oldest first, only what is newer than the last delivered.
            for (int i = response.kudos_size() - 1; i >= 0; --i) {
              const kudos::v1::Kudos& kudos = response.kudos(i);
              if (kudos.state() != kudos::v1::KUDOS_STATE_COMMITTED) continue;
              int64_t created = google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                  kudos.create_time());
              if (created + 2000 < group->since_ms) continue;
              DeliverKudos(group, kudos);
            }
          });
        }
        --outstanding_;
      });
}

void Gateway::Impl::DeliverKudos(const std::shared_ptr<WatchGroup>& group,
                                 const kudos::v1::Kudos& kudos) {
  // A watch group is shared by many clients; without a service secret it
  // reads with one member's token, which may see that member's private or
  // (as an admin) retracted kudos. Neither is for the others (issue 18).
  if (kudos.visibility() == kudos::v1::KUDOS_VISIBILITY_PRIVATE || kudos.retracted()) return;
  if (!group->Remember(kudos.kudos_id())) return;
  group->since_ms = std::max(group->since_ms, google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                                                  kudos.create_time()));
  kudos::v1::WatchFeedResponse response;
  *response.mutable_kudos() = kudos;
  std::string frame = SseEvent(group->sse_event, ToJson(response));
  auto members = group->members;
  for (const auto& [client, tag] : members) Send(client, frame);
}

// A survey invitation is personal: the shared watch (under the gateway's
// service identity) receives every invitation of the org with its invitee,
// and only that person's own SSE clients get it, as `event: invitation`.
// Screens, services, other people and an invitation without an invitee get
// nothing.
void Gateway::Impl::DeliverInvitation(const std::shared_ptr<WatchGroup>& group,
                                      const feedback::v1::Invitation& invitation) {
  if (invitation.person_id().empty() || invitation.invitation_id().empty()) return;
  if (!group->Remember("invitation\n" + invitation.invitation_id())) return;
  kudos::v1::WatchFeedResponse response;
  *response.mutable_invitation() = invitation;
  const std::string frame = SseEvent("invitation", ToJson(response));
  auto members = group->members;
  for (const auto& [client, tag] : members) {
    if (client->person && client->subject == invitation.person_id()) Send(client, frame);
  }
}

std::string Gateway::Impl::Frame(const WatchGroup& group, const std::string& tag,
                                 const std::string& json) {
  if (tag.empty()) return SseEvent(group.sse_event, json);
  return SseEvent(group.sse_event, absl::StrCat("{\"board\":", JsonQuote(tag), ",\"snapshot\":",
                                            json, "}"));
}

void Gateway::Impl::Send(SseClient* client, absl::string_view data) {
  if (client->closing) return;
  // A reader this far behind would grow memory without bound: it goes, and
  // EventSource reconnects it to fresh state when it can keep up.
  if (PendingBytes(client) + data.size() > options_.max_pending_bytes) {
    common::log::Info(absl::StrCat("gateway: SSE client of ", client->org,
                                   " disconnected: more than ", options_.max_pending_bytes,
                                   " bytes pending"));
    return CloseLater(client);
  }
  evbuffer* buffer = evbuffer_new();
  evbuffer_add(buffer, data.data(), data.size());
  evhttp_send_reply_chunk(client->req, buffer);
  evbuffer_free(buffer);
}

void Gateway::Impl::OnWatchMessage(const std::shared_ptr<WatchGroup>& group, uint64_t generation,
                                   const std::string& bytes) {
  if (generation != group->generation) return;
  group->backoff_ms = 0;
  group->got_message = true;
  if (group->is_feed) {
    kudos::v1::WatchFeedResponse feed;
    if (!feed.ParseFromString(bytes)) return;
    if (feed.has_invitation()) return DeliverInvitation(group, feed.invitation());
    if (feed.has_kudos()) DeliverKudos(group, feed.kudos());
    return;
  }
  std::unique_ptr<pb::Message> message = NewMessage(group->response_type);
  if (!message->ParseFromString(bytes)) return;
  std::string json = ToJson(*message);
  if (group->replay_last) group->last_json = json;
  std::map<std::string, std::string> frames;  // tag -> frame, built once
  auto members = group->members;
  for (const auto& [client, tag] : members) {
    auto it = frames.find(tag);
    if (it == frames.end()) it = frames.emplace(tag, Frame(*group, tag, json)).first;
    Send(client, it->second);
  }
}

void Gateway::Impl::OnWatchDone(const std::shared_ptr<WatchGroup>& group, uint64_t generation,
                                WatchStream* stream, const grpc::Status& status) {
  if (group->stream == stream) group->stream = nullptr;
  delete stream;
  if (group->members.empty()) {
    auto it = groups_.find(group->key);
    if (it != groups_.end() && it->second == group) groups_.erase(it);
    return;
  }
  if (generation != group->generation) return;
  const int code = status.error_code();
  // A watch that reached its own deadline after working is renewed at once.
  const bool renew = (code == grpc::StatusCode::DEADLINE_EXCEEDED || code == grpc::StatusCode::OK) &&
                     group->got_message;
  int delay_ms = 0;
  group->needs_catchup = true;  // also after a renewal: the gap is tiny but real
  if (!renew) {
    const bool first_failure = group->backoff_ms == 0;
    group->backoff_ms = IsRetryableWatchCode(code)
                            ? NextBackoffMs(group->backoff_ms, options_.max_backoff_ms)
                            : options_.max_backoff_ms;
    delay_ms = group->backoff_ms;
    std::string note = absl::StrCat("upstream ", GrpcCodeName(code), ": ", status.error_message(),
                                    "; retrying in ", delay_ms, " ms");
    if (first_failure) {
      common::log::Warning(absl::StrCat("gateway: watch ", group->grpc_method, " ended: ", note));
    }
    std::string frame = SseComment(note);
    if (!IsRetryableWatchCode(code)) frame += SseEvent("error", ErrorJson(code, status.error_message()));
    auto members = group->members;
    for (const auto& [client, tag] : members) Send(client, frame);
  }
  if (group->retry_timer == nullptr) {
    group->retry_timer = evtimer_new(base_, &Impl::OnRetryTimer, group.get());
  }
  timeval delay{delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(group->retry_timer, &delay);
}

void Gateway::Impl::OnRetryTimer(evutil_socket_t, short, void* arg) {
  auto* raw = static_cast<WatchGroup*>(arg);
  // A group without members is erased (freeing this timer), so it is live
  // and still in the map.
  Impl* self = raw->impl;
  auto it = self->groups_.find(raw->key);
  if (it == self->groups_.end() || it->second.get() != raw) return;
  self->StartStream(it->second);
}

void Gateway::Impl::OnSseClosed(evhttp_connection*, void* arg) {
  auto* client = static_cast<SseClient*>(arg);
  evhttp_request* req = client->req;
  client->impl->RemoveClient(client);
  FreeIfDetached(req);
}

void Gateway::Impl::RemoveClient(SseClient* client) {
  for (auto& [group, tag] : client->subs) {
    auto& members = group->members;
    for (auto it = members.begin(); it != members.end(); ++it) {
      if (it->first == client) {
        members.erase(it);
        break;
      }
    }
    if (members.empty()) {
      if (group->stream != nullptr) group->stream->Cancel();
      auto found = groups_.find(group->key);
      if (found != groups_.end() && found->second == group) groups_.erase(found);
      if (group->retry_timer != nullptr) evtimer_del(group->retry_timer);
      if (group->catchup_timer != nullptr) evtimer_del(group->catchup_timer);
    }
  }
  auto open = sse_per_token_.find(client->token_key);
  KUDOS_CHECK(open != sse_per_token_.end() && open->second > 0,
              "a client's stream was counted for its token when it started");
  if (--open->second == 0) sse_per_token_.erase(open);
  clients_.erase(client);
}

Gateway::Gateway(GatewayOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Gateway::~Gateway() = default;
absl::Status Gateway::Start() { return impl_->Start(); }
void Gateway::Run() { impl_->Run(); }
void Gateway::Stop() { impl_->Stop(); }

}  // namespace gateway
