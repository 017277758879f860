// The gateway's domain logic, free of HTTP and gRPC plumbing: the route
// table and its matcher, building a gRPC request message from path, query
// and body by protobuf reflection, gRPC status -> HTTP status, JSON error
// bodies, CORS decisions and Server-Sent Events framing.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "integrations/v1/http_ingress.pb.h"

namespace gateway {

// A field default applied when the request leaves the field unset.
// value "{caller}" stands for the token's subject (skipped when unknown).
// unless_field/unless_values: skip the default when that field's value (as
// text, enum names for enums) is one of unless_values.
struct FieldDefault {
  std::string field;
  std::string value;
  std::string unless_field;
  std::vector<std::string> unless_values;
};

// One HTTP route onto one gRPC method. Declared once in Routes().
struct Route {
  std::string http_method;  // GET, POST, PUT
  // Segments are literals, "{field.path}" or "{field.path}:verb" (last
  // segment only). Captured segments fill the named request field.
  std::string pattern;
  // Full gRPC method, "/kudos.v1.KudosService/SendKudos".
  std::string grpc_method;
  // "" no body, "*" the body is the whole request message, otherwise the
  // body is this (message) field of the request.
  std::string body;
  // Query names that are not request fields are looked up under this
  // message field too ("board" lets ?metric= fill board.metric).
  std::string query_prefix;
  std::vector<FieldDefault> defaults;
  // Server-streaming route served as Server-Sent Events; each message is
  // one event named sse_event.
  bool sse = false;
  std::string sse_event;
  std::string summary;
};

// The route table (static, built once).
const std::vector<Route>& Routes();

// "/kudos.v1.KudosService/SendKudos" -> its method descriptor in the
// generated pool, or nullptr.
const google::protobuf::MethodDescriptor* FindMethod(absl::string_view grpc_method);

struct RouteMatch {
  const Route* route = nullptr;
  // field path -> captured (percent-decoded) value
  std::vector<std::pair<std::string, std::string>> path_params;
  // Set when the path matched some route but not with this method.
  std::vector<std::string> allowed_methods;
};

// Matches method + path (no query) against routes.
RouteMatch MatchRoute(const std::vector<Route>& routes, absl::string_view method,
                      absl::string_view path);

// Percent-decoding; plus_as_space for query strings.
std::string PercentDecode(absl::string_view text, bool plus_as_space);

// "a=1&b=x%20y&b=z" -> {{a,1},{b,x y},{b,z}} in order.
std::vector<std::pair<std::string, std::string>> ParseQuery(absl::string_view query);

// Sets one field, addressed by a dotted path of proto or JSON names
// ("filter.giver_id", "filter.giverId", "board.metric"), from text. Enums
// accept full names, short forms ("points_received", "week") in any case,
// or numbers. Repeated fields get the value appended.
absl::Status SetFieldFromText(google::protobuf::Message* message, absl::string_view path,
                              absl::string_view value);

struct RequestInput {
  std::vector<std::pair<std::string, std::string>> path_params;
  std::vector<std::pair<std::string, std::string>> query_params;
  std::string body;
  std::string caller;  // token subject, "" when unknown
};

// Builds the request message of `route` into `message` (already the right
// type): body (proto JSON, lowerCamelCase or original names), then query
// params, then path params, then defaults for what is still unset.
// INVALID_ARGUMENT naming the parameter on bad input.
absl::Status BuildRequest(const Route& route, const RequestInput& input,
                          google::protobuf::Message* message);

// Proto3 JSON of a message (lowerCamelCase names, unset scalars printed).
std::string ToJson(const google::protobuf::Message& message);

// gRPC status code (numeric) -> HTTP status. FAILED_PRECONDITION and ABORTED
// are 409 Conflict (see README).
int HttpStatusFromGrpcCode(int code);
// "INVALID_ARGUMENT"
std::string GrpcCodeName(int code);
// {"error":{"code":"INVALID_ARGUMENT","message":"...","httpStatus":400}}
std::string ErrorJson(int grpc_code, absl::string_view message);
std::string ErrorJsonWithHttp(int grpc_code, absl::string_view message, int http_status);

// JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

// The Access-Control-Allow-Origin to send for a request's Origin header, or
// "" for none. allowed may hold "*".
std::string CorsAllowOrigin(const std::vector<std::string>& allowed, absl::string_view origin);

// Server-Sent Events framing.
std::string SseEvent(absl::string_view event, absl::string_view data);
std::string SseComment(absl::string_view text);
std::string SseRetry(int milliseconds);

// gRPC codes an SSE watch keeps retrying (the service may come back).
bool IsRetryableWatchCode(int code);

// The backoff after `previous_ms` (0 at first): 500 ms doubling up to max_ms.
int NextBackoffMs(int previous_ms, int max_ms);

// ---- Request heads, judged before any body byte is read ----------------
//
// The gateway's connection guard reads each request's head (request line
// and headers) itself, so a body is refused (and discarded, never buffered)
// before libevent reads it: too large by Content-Length, or sent without a
// verified token. A refused request reaches the HTTP layer without its body
// and with the refusal header, which the handler answers.

inline constexpr char kRefusalHeader[] = "X-Gateway-Refusal";
// The longest head held while waiting for its end (an API's heads are a
// few hundred bytes; this bounds what an unauthenticated connection holds).
inline constexpr size_t kMaxHeadBytes = 16 * 1024;

struct RequestHead {
  bool valid = false;          // a request line and well-formed headers
  std::string method;          // the request line's method, as sent
  std::string target;          // the request line's target, as sent (path and query)
  std::string authorization;   // the first Authorization header
  int64_t content_length = 0;  // 0 when absent
  bool chunked = false;        // any Transfer-Encoding
  bool bad_length = false;     // unparsable or conflicting Content-Length
};

// The offset just past the head's blank line, or npos while incomplete.
// Lines end in "\n" with an optional "\r", as libevent reads them. With
// `resume`, the scan starts there and, when incomplete, leaves it at the
// start of the unfinished line (so bytes arriving one by one cost O(n)).
size_t FindHeadEnd(absl::string_view bytes, size_t* resume = nullptr);
RequestHead ParseRequestHead(absl::string_view head);

enum class BodyVerdict {
  kAdmit,
  kTooLarge,         // 413, the body is discarded
  kUnauthenticated,  // 401, the body is discarded
  kNeedsLength,      // 411: chunked bodies have no length to judge first
  kBadRequest,       // 400: the head does not parse
  kBodyNotAllowed,   // 400: a body on a method libevent reads no body for
};
// Whether libevent 2.1.12 reads a request body for this method
// (evhttp_method_may_have_body: POST, PUT and PATCH, matched exactly as its
// request-line parser does). For any other method it treats the request as
// complete after the head, so bytes announced as a body would be parsed as
// the next request: such a head is refused (kBodyNotAllowed), never passed.
bool MethodMayHaveBody(absl::string_view method);
// token_verified: the head's Authorization is a bearer token the gateway
// verified. A request without a body is always admitted here.
BodyVerdict JudgeBody(const RequestHead& head, bool token_verified, int64_t max_body_bytes);
// The refusal reason sent in kRefusalHeader ("too_large", ...).
const char* RefusalReason(BodyVerdict verdict);
// Whether the connection can go on after the refused request (its body has
// a known length to discard).
bool KeepsFraming(BodyVerdict verdict);

// The head with any client-sent kRefusalHeader removed.
std::string StripRefusal(absl::string_view head);
// The head as a bodyless request carrying kRefusalHeader: reason.
std::string RefusedHead(absl::string_view head, absl::string_view reason);

// ---- Raw routes forwarded to the integrations service (issue 17) ---------
//
// Protocols that are not ours (Slack's slash command, SCIM 2.0) and the
// NDJSON export authenticate themselves inside the integrations service, so
// the gateway checks no token on them: it forwards the request unchanged to
// integrations.v1.HttpIngressService/Handle and writes its answer back.

// The largest request body the gateway takes on a path (raw, as sent): 256
// KiB, and 2 MiB for the CSV directory import (a 1 MiB CSV, JSON-escaped).
inline constexpr int64_t kMaxBodyBytes = 256 * 1024;
inline constexpr int64_t kMaxImportBodyBytes = 2 * 1024 * 1024;
inline constexpr char kDirectoryImportPath[] = "/v1/integrations/directory/import";
int64_t MaxBodyBytesFor(absl::string_view raw_path);
// "the body is larger than 256 KiB"
std::string BodyTooLargeMessage(absl::string_view raw_path);

inline constexpr char kIngressMethod[] = "/integrations.v1.HttpIngressService/Handle";

// Whether a request's raw path (as sent, before percent-decoding) is one of
// the forwarded prefixes: /slack/, /scim/, /v1/export/. The connection guard
// (admitting a body without a bearer token) and the handler (forwarding)
// both decide on these same raw bytes, so they always agree.
bool IsIngressPath(absl::string_view raw_path);
// The path of a request target ("/a/b?x=1" -> "/a/b").
absl::string_view TargetPath(absl::string_view target);

// The forwarded request: the path percent-decoded (the query stays raw),
// header names lower-cased, every header in order, the body's exact bytes.
integrations::v1::HandleRequest BuildIngressRequest(
    absl::string_view method, absl::string_view raw_path, absl::string_view raw_query,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string body);

// An upstream answer checked before it is written back: a status in
// 200..599 and headers that are HTTP tokens with values free of control
// characters (no response splitting). Content-Length, Transfer-Encoding and
// Connection are the gateway's own framing and are dropped.
struct IngressReply {
  int status = 502;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};
absl::StatusOr<IngressReply> CheckIngressResponse(const integrations::v1::HandleResponse& response);

// The exp claim of a JWT whose signature was already verified.
absl::StatusOr<absl::Time> TokenExpiry(absl::string_view token);

}  // namespace gateway
