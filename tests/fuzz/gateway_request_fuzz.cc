// Fuzzes the gateway's request handling short of the network: route
// matching, query parsing and percent-decoding, building the gRPC request
// from path, query and JSON body by reflection, JSON and SSE framing, CORS.
// Input lines: method, path (with an optional ?query), Origin header, then
// the body (the rest).
// Invariants: a bad request is INVALID_ARGUMENT (never another code: that
// would mean a broken route table); a match fills only its route's fields;
// error bodies and SSE frames stay well-formed.
#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/check/check.h"
#include "services/gateway/gateway_rules.h"
#include "services/kudos/kudos_rules.h"
#include "tests/fuzz/fuzz_input.h"

namespace pb = google::protobuf;

namespace {

bool ValidUtf8(absl::string_view text) { return kudos::Utf8Length(text).ok(); }

// The error body a client gets parses as JSON whenever its text is UTF-8.
void CheckErrorJson(absl::string_view message) {
  std::string body = gateway::ErrorJson(3, message);
  if (!ValidUtf8(message)) return;
  pb::Struct parsed;
  KUDOS_CHECK(pb::util::JsonStringToMessage(body, &parsed).ok(), "an error body is valid JSON");
  KUDOS_CHECK(parsed.fields().at("error").struct_value().fields().at("message").string_value() ==
                  message,
              "the error body carries the message unchanged");
}

// One SSE frame: a single blank line, at its end, so data cannot end the
// event early or start another one.
void CheckSseFrame(absl::string_view event, absl::string_view data) {
  std::string frame = gateway::SseEvent(event, data);
  KUDOS_CHECK(absl::EndsWith(frame, "\n\n"), "an SSE frame ends with a blank line");
  KUDOS_CHECK(frame.find("\n\n") == frame.size() - 2, "an SSE frame holds one event");
}

void BuildAndPrint(const gateway::Route& route, gateway::RequestInput input) {
  const pb::MethodDescriptor* method = gateway::FindMethod(route.grpc_method);
  KUDOS_CHECK(method != nullptr, "every route names a method of a linked service");
  std::unique_ptr<pb::Message> request(
      pb::MessageFactory::generated_factory()->GetPrototype(method->input_type())->New());
  absl::Status built = gateway::BuildRequest(route, input, request.get());
  if (!built.ok()) {
    KUDOS_CHECK(built.code() == absl::StatusCode::kInvalidArgument,
                "a request the client got wrong is INVALID_ARGUMENT");
    CheckErrorJson(built.message());
    return;
  }
  std::string json = gateway::ToJson(*request);
  if (route.sse) {
    CheckSseFrame(route.sse_event, json);
    KUDOS_CHECK(json.find('\r') == std::string::npos, "JSON data carries no raw CR into SSE");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::QuietProtobuf();
  fuzz::Input input(data, size);
  std::string method = input.Field();
  std::string target = input.Field();
  std::string origin = input.Field();
  std::string body = input.Rest();

  size_t question = target.find('?');
  std::string path = target.substr(0, question);
  gateway::RequestInput request;
  if (question != std::string::npos) {
    request.query_params = gateway::ParseQuery(target.substr(question + 1));
  }
  request.body = body;
  request.caller = "alice";

  gateway::RouteMatch match = gateway::MatchRoute(gateway::Routes(), method, path);
  if (match.route == nullptr) {
    for (const std::string& allowed : match.allowed_methods) {
      KUDOS_CHECK(allowed != method, "a method listed as allowed would have matched");
    }
    CheckErrorJson(absl::StrCat("no route for ", method, " ", path));
  } else {
    KUDOS_CHECK(match.route->http_method == method, "a match has the request's method");
    for (const auto& [field, value] : match.path_params) {
      KUDOS_CHECK(!value.empty(), "a captured path segment is never empty");
    }
    request.path_params = match.path_params;
    BuildAndPrint(*match.route, request);
  }

  std::string allow = gateway::CorsAllowOrigin({"https://portal.example", "*"}, origin);
  std::string exact = gateway::CorsAllowOrigin({"https://portal.example"}, origin);
  KUDOS_CHECK(exact.empty() || exact == "https://portal.example",
              "CORS allows only a listed origin");
  (void)allow;
  CheckSseFrame(method, body);
  return 0;
}
