#include "services/gateway/gateway_server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
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
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "kudos/v1/kudos.pb.h"
#include <google/protobuf/util/time_util.h>
#include "services/gateway/gateway_rules.h"
#include "services/gateway/static_screen.h"  // generated from static/screen.html

namespace gateway {

namespace pb = google::protobuf;

namespace {

constexpr size_t kMaxBodyBytes = 256 * 1024;
// A client this far behind stops receiving events (heartbeats still go).
constexpr size_t kMaxPendingBytes = 4 * 1024 * 1024;

const char* ReasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
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
  std::string authorization;  // the newest member's
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

struct SseClient {
  Gateway::Impl* impl = nullptr;
  evhttp_request* req = nullptr;
  evhttp_connection* conn = nullptr;
  std::vector<std::pair<std::shared_ptr<WatchGroup>, std::string>> subs;
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

struct HealthCheck {
  evhttp_request* req = nullptr;
  bool gone = false;
  int pending = 0;
  std::map<std::string, std::string> results;
  bool all_serving = true;
};

class Gateway::Impl {
 public:
  explicit Impl(GatewayOptions options)
      : options_(std::move(options)), auth_(options_.jwt) {}
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
  static void OnHealthClosed(evhttp_connection*, void* arg);
  static void OnSseClosed(evhttp_connection*, void* arg);
  static void OnRetryTimer(evutil_socket_t, short, void* arg);

  void Handle(evhttp_request* req);
  void Reply(evhttp_request* req, int code, absl::string_view content_type,
             absl::string_view body);
  void ReplyError(evhttp_request* req, int grpc_code, absl::string_view message) {
    Reply(req, HttpStatusFromGrpcCode(grpc_code), "application/json",
          ErrorJson(grpc_code, message));
  }
  void ReplyIndex(evhttp_request* req);
  void StartHealth(evhttp_request* req);
  void StartUnary(evhttp_request* req, const Route& route, const RequestInput& input,
                  const std::string& authorization);
  void FinishUnary(const std::shared_ptr<UnaryCall>& call, const grpc::Status& status);
  void StartSse(evhttp_request* req, const Route* route, const RequestInput& input,
                const std::string& authorization);
  void Subscribe(SseClient* client, const std::string& principal_key,
                 const std::string& grpc_method, const std::string& event,
                 const pb::Message& request, const std::string& authorization,
                 const std::string& tag, bool replay_last);
  void StartStream(const std::shared_ptr<WatchGroup>& group);
  void CatchUpFeed(const std::shared_ptr<WatchGroup>& group);
  void DeliverKudos(const std::shared_ptr<WatchGroup>& group, const kudos::v1::Kudos& kudos);
  static void OnCatchupTimer(evutil_socket_t, short, void* arg);
  void RemoveClient(SseClient* client);
  void Send(SseClient* client, absl::string_view data, bool droppable);
  std::string Frame(const WatchGroup& group, const std::string& tag, const std::string& json);
  Upstream* UpstreamFor(absl::string_view grpc_method);

  GatewayOptions options_;
  common::auth::Authenticator auth_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  evconnlistener* listener_ = nullptr;
  event* wake_ = nullptr;
  event* heartbeat_ = nullptr;
  event* sigint_ = nullptr;
  event* sigterm_ = nullptr;

  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::function<void()>> queue_;

  Upstream kudos_, ledger_, leaderboard_;
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
  void Begin() {
    if (!group_->authorization.empty()) {
      context_.AddMetadata("authorization", group_->authorization);
    }
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

  evthread_use_pthreads();
  base_ = event_base_new();
  if (base_ == nullptr) return absl::InternalError("event_base_new failed");
  wake_ = event_new(base_, -1, 0, &Impl::OnWake, this);
  http_ = evhttp_new(base_);
  evhttp_set_gencb(http_, &Impl::OnRequest, this);
  // Up to 1 MiB is read and refused with a JSON 413; beyond, libevent
  // answers 413 itself.
  evhttp_set_max_body_size(http_, 4 * kMaxBodyBytes);
  evhttp_set_max_headers_size(http_, 64 * 1024);
  evhttp_set_timeout(http_, 60);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                        EVHTTP_REQ_HEAD | EVHTTP_REQ_PATCH);
  // Bodies over the limit get a 413 while the rest of the upload is drained.
  evhttp_set_flags(http_, EVHTTP_SERVER_LINGERING_CLOSE);

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
                                 ", leaderboard ", options_.leaderboard_address));
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
  for (SseClient* client : clients) self->Send(client, beat, /*droppable=*/false);
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
  if (absl::StartsWith(grpc_method, "/kudos.v1.")) return &kudos_;
  if (absl::StartsWith(grpc_method, "/ledger.v1.")) return &ledger_;
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
  if (method == "OPTIONS") {
    evhttp_add_header(out, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    evhttp_add_header(out, "Access-Control-Allow-Headers",
                      "Authorization, Content-Type, Last-Event-ID");
    evhttp_add_header(out, "Access-Control-Max-Age", "600");
    Reply(req, 204, "", "");
    return;
  }

  if (method == "GET" && path == "/") return ReplyIndex(req);
  if (method == "GET" && path == "/healthz") return StartHealth(req);
  if (method == "GET" && path == "/favicon.ico") return Reply(req, 204, "", "");
  if (method == "GET" && (path == "/screen" || path == "/screen/")) {
    return Reply(req, 200, "text/html; charset=utf-8", kScreenHtml);
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
  if (body_length > kMaxBodyBytes) {
    return Reply(req, 413, "application/json",
                 ErrorJsonWithHttp(8, "the body is larger than 256 KiB", 413));
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
      "\"screenStream\":\"/v1/stream/screen?access_token=<token>&team=<team id>&top_n=10\",",
      "\"routes\":[", routes, "]}");
  Reply(req, 200, "application/json", body);
}

void Gateway::Impl::StartHealth(evhttp_request* req) {
  auto check = std::make_shared<HealthCheck>();
  check->req = req;
  check->pending = 3;
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), &Impl::OnHealthClosed,
                                check.get());
  for (Upstream* upstream : {&kudos_, &ledger_, &leaderboard_}) {
    struct Call {
      grpc::ClientContext context;
      grpc::ByteBuffer request = ToByteBuffer("");
      grpc::ByteBuffer response;
    };
    auto call = std::make_shared<Call>();
    common::grpc_util::SetDeadline(call->context, std::chrono::milliseconds(2000));
    ++outstanding_;
    upstream->stub->UnaryCall(
        &call->context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &call->request,
        &call->response, [this, call, check, name = upstream->name](grpc::Status status) {
          std::string result;
          if (status.ok()) {
            // HealthCheckResponse{status = 1 (SERVING)} is the bytes 08 01.
            std::string bytes = Dump(call->response);
            result = bytes == std::string("\x08\x01", 2) ? "SERVING" : "NOT_SERVING";
          } else {
            result = absl::StrCat(GrpcCodeName(status.error_code()), ": ",
                                  status.error_message());
          }
          Post([this, check, name, result] {
            check->results[name] = result;
            if (result != "SERVING") check->all_serving = false;
            if (--check->pending > 0 || check->gone) return;
            evhttp_connection_set_closecb(evhttp_request_get_connection(check->req), nullptr,
                                          nullptr);
            std::string upstreams;
            for (const auto& [n, r] : check->results) {
              absl::StrAppend(&upstreams, upstreams.empty() ? "" : ",", JsonQuote(n), ":",
                              JsonQuote(r));
            }
            Reply(check->req, check->all_serving ? 200 : 503, "application/json",
                  absl::StrCat("{\"status\":", check->all_serving ? "\"SERVING\"" : "\"DEGRADED\"",
                               ",\"upstreams\":{", upstreams, "},\"sseClients\":",
                               clients_.size(), ",\"upstreamWatches\":", groups_.size(), "}"));
          });
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

void Gateway::Impl::OnHealthClosed(evhttp_connection*, void* arg) {
  auto* check = static_cast<HealthCheck*>(arg);
  check->gone = true;
  FreeIfDetached(check->req);
  check->req = nullptr;
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

// ---- Server-Sent Events ----------------------------------------------------

void Gateway::Impl::StartSse(evhttp_request* req, const Route* route, const RequestInput& input,
                             const std::string& authorization) {
  absl::string_view token = authorization;
  if (!absl::ConsumePrefix(&token, "Bearer ") && !absl::ConsumePrefix(&token, "bearer ")) {
    return ReplyError(req, 16, "a bearer token is required (Authorization or ?access_token=)");
  }
  // Clients share upstream watches, so the gateway checks the token itself
  // and keys the sharing by org and roles.
  auto principal = auth_.Verify(token, absl::Now());
  if (!principal.ok()) return ReplyError(req, 16, principal.status().message());
  const std::string principal_key = absl::StrCat(principal->org, "|", principal->roles);

  // Build every request first, so bad parameters are a plain 400.
  struct Want {
    std::string grpc_method, event, tag;
    std::unique_ptr<pb::Message> request;
    bool replay;
  };
  std::vector<Want> wants;
  if (route != nullptr) {
    const pb::MethodDescriptor* method = methods_[route->grpc_method];
    std::unique_ptr<pb::Message> request = NewMessage(method->input_type());
    absl::Status built = BuildRequest(*route, input, request.get());
    if (!built.ok()) return ReplyError(req, static_cast<int>(built.code()), built.message());
    bool replay = route->sse_event == "snapshot";
    wants.push_back({route->grpc_method, route->sse_event, "", std::move(request), replay});
  } else {
    // The team screen: org and team boards for this week and month, and
    // the feed, over one connection.
    std::string team, metric = "METRIC_POINTS_RECEIVED";
    int top_n = 10;
    bool feed = true;
    for (const auto& [name, value] : input.query_params) {
      if (name == "team" || name == "team_id") team = value;
      if (name == "metric") metric = value;
      if (name == "feed") feed = value != "0" && value != "false";
      if ((name == "top_n" || name == "topN") && (!absl::SimpleAtoi(value, &top_n) || top_n < 1 ||
                                                   top_n > 100)) {
        return ReplyError(req, 3, "top_n: must be 1..100");
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
    for (const Board& board : boards) {
      auto request = std::make_unique<leaderboard::v1::WatchLeaderboardRequest>();
      request->set_top_n(top_n);
      absl::Status status = SetFieldFromText(request.get(), "board.metric", metric);
      if (!status.ok()) return ReplyError(req, 3, status.message());
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
  }

  evkeyvalq* out = evhttp_request_get_output_headers(req);
  evhttp_add_header(out, "Content-Type", "text/event-stream; charset=utf-8");
  evhttp_add_header(out, "Cache-Control", "no-cache");
  evhttp_add_header(out, "X-Accel-Buffering", "no");
  evhttp_send_reply_start(req, 200, "OK");
  auto owned = std::make_unique<SseClient>();
  SseClient* client = owned.get();
  client->impl = this;
  client->req = req;
  client->conn = evhttp_request_get_connection(req);
  clients_[client] = std::move(owned);
  evhttp_connection_set_closecb(client->conn, &Impl::OnSseClosed, client);
  // No read timeout on a stream; heartbeats keep writes flowing.
  if (bufferevent* bev = evhttp_connection_get_bufferevent(client->conn)) {
    timeval write_timeout{60, 0};
    bufferevent_set_timeouts(bev, nullptr, &write_timeout);
  }
  Send(client, SseRetry(options_.sse_retry_ms) + SseComment("connected"), false);
  for (Want& want : wants) {
    Subscribe(client, principal_key, want.grpc_method, want.event, *want.request, authorization,
              want.tag, want.replay);
  }
}

void Gateway::Impl::Subscribe(SseClient* client, const std::string& principal_key,
                              const std::string& grpc_method, const std::string& event,
                              const pb::Message& request, const std::string& authorization,
                              const std::string& tag, bool replay_last) {
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
    group->replay_last = replay_last;
    group->is_feed = grpc_method == "/kudos.v1.KudosService/WatchFeed";
    group->since_ms = absl::ToUnixMillis(absl::Now());
  }
  group->authorization = authorization;  // the freshest token renews the watch
  group->members.emplace_back(client, tag);
  client->subs.emplace_back(group, tag);
  if (fresh) {
    StartStream(group);
  } else if (group->replay_last && !group->last_json.empty()) {
    Send(client, Frame(*group, tag, group->last_json), false);
  }
}

void Gateway::Impl::StartStream(const std::shared_ptr<WatchGroup>& group) {
  group->generation++;
  group->got_message = false;
  group->stream = new WatchStream(this, group, group->generation);
  group->stream->Begin();
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
  if (!group->authorization.empty()) call->context.AddMetadata("authorization", group->authorization);
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
  if (!group->Remember(kudos.kudos_id())) return;
  group->since_ms = std::max(group->since_ms, google::protobuf::util::TimeUtil::TimestampToMilliseconds(
                                                  kudos.create_time()));
  kudos::v1::WatchFeedResponse response;
  *response.mutable_kudos() = kudos;
  std::string frame = SseEvent(group->sse_event, ToJson(response));
  auto members = group->members;
  for (const auto& [client, tag] : members) Send(client, frame, true);
}

std::string Gateway::Impl::Frame(const WatchGroup& group, const std::string& tag,
                                 const std::string& json) {
  if (tag.empty()) return SseEvent(group.sse_event, json);
  return SseEvent(group.sse_event, absl::StrCat("{\"board\":", JsonQuote(tag), ",\"snapshot\":",
                                            json, "}"));
}

void Gateway::Impl::Send(SseClient* client, absl::string_view data, bool droppable) {
  if (droppable) {
    if (bufferevent* bev = evhttp_connection_get_bufferevent(client->conn)) {
      if (evbuffer_get_length(bufferevent_get_output(bev)) > kMaxPendingBytes) return;
    }
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
    if (feed.ParseFromString(bytes)) DeliverKudos(group, feed.kudos());
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
    Send(client, it->second, true);
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
    for (const auto& [client, tag] : members) Send(client, frame, true);
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
  clients_.erase(client);
}

Gateway::Gateway(GatewayOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Gateway::~Gateway() = default;
absl::Status Gateway::Start() { return impl_->Start(); }
void Gateway::Run() { impl_->Run(); }
void Gateway::Stop() { impl_->Stop(); }

}  // namespace gateway
