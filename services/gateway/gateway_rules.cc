#include "services/gateway/gateway_rules.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "feedback/v1/feedback.pb.h"
#include "kudos/v1/kudos.pb.h"
#include "kudos/v1/social.pb.h"
#include "integrations/v1/directory_sync.pb.h"
#include "integrations/v1/export.pb.h"
#include "integrations/v1/http_ingress.pb.h"
#include "integrations/v1/slack.pb.h"
#include "integrations/v1/webhooks.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "ledger/v1/rewards.pb.h"
#include "programs/v1/awards.pb.h"
#include "programs/v1/celebrations.pb.h"

namespace gateway {

namespace pb = google::protobuf;

namespace {

// Referencing one message per file links the generated descriptors in, so
// the generated pool knows every service.
void EnsureDescriptorsLinked() {
  static const bool linked = [] {
    kudos::v1::SendKudosRequest::descriptor();
    kudos::v1::AddCommentRequest::descriptor();
    ledger::v1::GetBalanceRequest::descriptor();
    ledger::v1::RedeemRewardItemRequest::descriptor();
    leaderboard::v1::GetLeaderboardRequest::descriptor();
    feedback::v1::CreateSurveyRequest::descriptor();
    integrations::v1::HandleRequest::descriptor();
    integrations::v1::SetSlackSettingsRequest::descriptor();
    integrations::v1::CreateSubscriptionRequest::descriptor();
    integrations::v1::CreateScimTokenRequest::descriptor();
    integrations::v1::ListAuditEntriesRequest::descriptor();
    programs::v1::CreateBudgetRequest::descriptor();
    programs::v1::SetBirthdayRequest::descriptor();
    return true;
  }();
  (void)linked;
}

const pb::FieldDescriptor* FindField(const pb::Descriptor* descriptor, absl::string_view name) {
  const pb::FieldDescriptor* field = descriptor->FindFieldByName(std::string(name));
  if (field != nullptr) return field;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i)->json_name() == name) return descriptor->field(i);
  }
  return nullptr;
}

std::string UpperSnake(absl::string_view camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    char c = camel[i];
    if (absl::ascii_isupper(c) && i > 0) out.push_back('_');
    out.push_back(absl::ascii_toupper(c));
  }
  return out;
}

const pb::EnumValueDescriptor* ParseEnum(const pb::EnumDescriptor* type, absl::string_view text) {
  if (const auto* value = type->FindValueByName(std::string(text))) return value;
  std::string upper = absl::AsciiStrToUpper(text);
  std::replace(upper.begin(), upper.end(), '-', '_');
  if (const auto* value = type->FindValueByName(upper)) return value;
  std::string prefix = UpperSnake(type->name()) + "_";
  if (type->value_count() > 0) {
    absl::string_view first = type->value(0)->name();
    if (absl::ConsumeSuffix(&first, "UNSPECIFIED")) prefix = std::string(first);
  }
  if (const auto* value = type->FindValueByName(prefix + upper)) return value;
  int number = 0;
  if (absl::SimpleAtoi(text, &number)) return type->FindValueByNumber(number);
  return nullptr;
}

// Walks to the message holding the last component of `path`. With create
// false, returns nullptr when an intermediate message is unset.
pb::Message* Walk(pb::Message* message, const std::vector<std::string>& parts, bool create,
                  const pb::FieldDescriptor** last, absl::Status* status) {
  pb::Message* current = message;
  for (size_t i = 0; i < parts.size(); ++i) {
    const pb::FieldDescriptor* field = FindField(current->GetDescriptor(), parts[i]);
    if (field == nullptr) {
      *status = absl::NotFoundError(absl::StrCat("no field '", parts[i], "' in ",
                                                 current->GetDescriptor()->full_name()));
      return nullptr;
    }
    if (i + 1 == parts.size()) {
      *last = field;
      return current;
    }
    if (field->is_repeated() || field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      *status = absl::InvalidArgumentError(absl::StrCat("'", parts[i], "' is not a message"));
      return nullptr;
    }
    const pb::Reflection* reflection = current->GetReflection();
    if (!create && !reflection->HasField(*current, field)) return nullptr;
    current = reflection->MutableMessage(current, field);
  }
  *status = absl::InvalidArgumentError("empty field path");
  return nullptr;
}

// The text of a singular scalar field ("" when unset), enum names for enums.
std::string FieldText(pb::Message* message, absl::string_view path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  const pb::FieldDescriptor* field = nullptr;
  absl::Status status;
  pb::Message* holder = Walk(message, parts, /*create=*/false, &field, &status);
  if (holder == nullptr || field == nullptr || field->is_repeated()) return "";
  const pb::Reflection* r = holder->GetReflection();
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(*holder, field);
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnum(*holder, field)->name();
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(r->GetInt32(*holder, field));
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(r->GetInt64(*holder, field));
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(*holder, field) ? "true" : "false";
    default:
      return "";
  }
}

bool IsUnset(pb::Message* message, absl::string_view path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  const pb::FieldDescriptor* field = nullptr;
  absl::Status status;
  pb::Message* holder = Walk(message, parts, /*create=*/false, &field, &status);
  if (holder == nullptr) return status.ok();  // an unset parent: unset
  const pb::Reflection* r = holder->GetReflection();
  if (field->is_repeated()) return r->FieldSize(*holder, field) == 0;
  if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    return !r->HasField(*holder, field);
  }
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(*holder, field).empty();
    case pb::FieldDescriptor::CPPTYPE_ENUM:
      return r->GetEnumValue(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      return r->GetInt64(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return !r->GetBool(*holder, field);
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return r->GetDouble(*holder, field) == 0;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      return r->GetFloat(*holder, field) == 0;
    default:
      return true;
  }
}

absl::Status ParseJsonInto(absl::string_view json, pb::Message* message) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  options.case_insensitive_enum_parsing = false;
  auto status = pb::util::JsonStringToMessage(pb::StringPiece(json.data(), json.size()), message,
                                              options);
  if (status.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("body: ", std::string(status.message().data(), status.message().size())));
}

}  // namespace

const pb::MethodDescriptor* FindMethod(absl::string_view grpc_method) {
  EnsureDescriptorsLinked();
  if (!absl::ConsumePrefix(&grpc_method, "/")) return nullptr;
  size_t slash = grpc_method.find('/');
  if (slash == absl::string_view::npos) return nullptr;
  const pb::ServiceDescriptor* service = pb::DescriptorPool::generated_pool()->FindServiceByName(
      std::string(grpc_method.substr(0, slash)));
  if (service == nullptr) return nullptr;
  return service->FindMethodByName(std::string(grpc_method.substr(slash + 1)));
}

std::string PercentDecode(absl::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size() &&
        absl::ascii_isxdigit(text[i + 1]) && absl::ascii_isxdigit(text[i + 2])) {
      auto hex = [](char h) {
        return absl::ascii_isdigit(h) ? h - '0' : absl::ascii_tolower(h) - 'a' + 10;
      };
      out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    absl::string_view key = part.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : part.substr(eq + 1);
    out.emplace_back(PercentDecode(key, true), PercentDecode(value, true));
  }
  return out;
}

RouteMatch MatchRoute(const std::vector<Route>& routes, absl::string_view method,
                      absl::string_view path) {
  RouteMatch result;
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  for (const Route& route : routes) {
    std::vector<absl::string_view> pattern = absl::StrSplit(route.pattern, '/');
    if (pattern.size() != segments.size()) continue;
    std::vector<std::pair<std::string, std::string>> params;
    bool ok = true;
    for (size_t i = 0; i < pattern.size() && ok; ++i) {
      absl::string_view p = pattern[i];
      absl::string_view s = segments[i];
      if (!p.empty() && p.front() == '{') {
        size_t close = p.find('}');
        absl::string_view name = p.substr(1, close - 1);
        absl::string_view verb = p.substr(close + 1);  // "" or ":boost"
        if (!verb.empty()) {
          if (!absl::ConsumeSuffix(&s, verb)) ok = false;
        }
        std::string value = PercentDecode(s, false);
        if (value.empty()) ok = false;
        params.emplace_back(std::string(name), std::move(value));
      } else if (p != s) {
        ok = false;
      }
    }
    if (!ok) continue;
    if (route.http_method != method) {
      result.allowed_methods.push_back(route.http_method);
      continue;
    }
    result.route = &route;
    result.path_params = std::move(params);
    result.allowed_methods.clear();
    return result;
  }
  return result;
}

absl::Status SetFieldFromText(pb::Message* message, absl::string_view path,
                              absl::string_view value) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  const pb::FieldDescriptor* field = nullptr;
  absl::Status status;
  pb::Message* holder = Walk(message, parts, /*create=*/true, &field, &status);
  if (holder == nullptr) return status;
  const pb::Reflection* r = holder->GetReflection();
  const bool repeated = field->is_repeated();
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "': '", value, "' is not ", what));
  };
  switch (field->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      repeated ? r->AddString(holder, field, std::string(value))
               : r->SetString(holder, field, std::string(value));
      return absl::OkStatus();
    case pb::FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an integer");
      repeated ? r->AddInt32(holder, field, v) : r->SetInt32(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an integer");
      repeated ? r->AddInt64(holder, field, v) : r->SetInt64(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an unsigned integer");
      repeated ? r->AddUInt32(holder, field, v) : r->SetUInt32(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) return bad("an unsigned integer");
      repeated ? r->AddUInt64(holder, field, v) : r->SetUInt64(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) return bad("a number");
      if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_DOUBLE) {
        repeated ? r->AddDouble(holder, field, v) : r->SetDouble(holder, field, v);
      } else {
        repeated ? r->AddFloat(holder, field, static_cast<float>(v))
                 : r->SetFloat(holder, field, static_cast<float>(v));
      }
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!absl::SimpleAtob(value, &v)) return bad("true or false");
      repeated ? r->AddBool(holder, field, v) : r->SetBool(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* v = ParseEnum(field->enum_type(), value);
      if (v == nullptr) return bad(absl::StrCat("a ", field->enum_type()->name()));
      repeated ? r->AddEnum(holder, field, v) : r->SetEnum(holder, field, v);
      return absl::OkStatus();
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      // A Timestamp takes RFC 3339 text ("2026-11-01T00:00:00Z"), as in JSON.
      if (field->message_type()->full_name() == "google.protobuf.Timestamp" && !repeated) {
        pb::Timestamp time;
        if (!pb::util::TimeUtil::FromString(std::string(value), &time)) {
          return bad("an RFC 3339 time (e.g. 2026-11-01T00:00:00Z)");
        }
        r->MutableMessage(holder, field)->CopyFrom(time);
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is a message; name one of its fields"));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("'", path, "' cannot be set from text"));
}

absl::Status BuildRequest(const Route& route, const RequestInput& input, pb::Message* message) {
  // Body.
  if (!route.body.empty()) {
    absl::string_view body = absl::StripAsciiWhitespace(input.body);
    if (body.empty()) body = "{}";
    if (route.body == "*") {
      absl::Status status = ParseJsonInto(body, message);
      if (!status.ok()) return status;
    } else {
      const pb::FieldDescriptor* field = FindField(message->GetDescriptor(), route.body);
      if (field == nullptr || field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        return absl::InternalError(absl::StrCat("route body field '", route.body, "' is invalid"));
      }
      pb::Message* sub = message->GetReflection()->MutableMessage(message, field);
      absl::Status status = ParseJsonInto(body, sub);
      if (!status.ok()) {
        // Also accept the whole request, {"person": {...}}.
        message->Clear();
        if (!ParseJsonInto(body, message).ok()) return status;
      }
    }
  }
  // Query parameters.
  for (const auto& [name, value] : input.query_params) {
    if (name == "access_token") continue;
    absl::Status status = SetFieldFromText(message, name, value);
    if (absl::IsNotFound(status) && !route.query_prefix.empty()) {
      status = SetFieldFromText(message, absl::StrCat(route.query_prefix, ".", name), value);
    }
    if (absl::IsNotFound(status)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown query parameter '", name, "'"));
    }
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("query parameter ", name, ": ", status.message()));
    }
  }
  // Path parameters.
  for (const auto& [name, value] : input.path_params) {
    absl::Status status = SetFieldFromText(message, name, value);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("path ", name, ": ", status.message()));
    }
  }
  // Defaults for what is still unset.
  for (const FieldDefault& d : route.defaults) {
    if (!IsUnset(message, d.field)) continue;
    if (!d.unless_field.empty()) {
      std::string current = FieldText(message, d.unless_field);
      if (std::find(d.unless_values.begin(), d.unless_values.end(), current) !=
          d.unless_values.end()) {
        continue;
      }
    }
    std::string value = d.value == "{caller}" ? input.caller : d.value;
    if (value.empty()) continue;
    absl::Status status = SetFieldFromText(message, d.field, value);
    if (!status.ok()) return absl::InternalError(status.message());
  }
  return absl::OkStatus();
}

std::string ToJson(const pb::Message& message) {
  pb::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = false;
  std::string out;
  auto status = pb::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) return "{}";
  return out;
}

int HttpStatusFromGrpcCode(int code) {
  switch (code) {
    case 0:  // OK
      return 200;
    case 3:  // INVALID_ARGUMENT
    case 11:  // OUT_OF_RANGE
      return 400;
    case 16:  // UNAUTHENTICATED
      return 401;
    case 7:  // PERMISSION_DENIED
      return 403;
    case 5:  // NOT_FOUND
      return 404;
    case 6:  // ALREADY_EXISTS
    case 9:  // FAILED_PRECONDITION: the state conflicts with the request
    case 10:  // ABORTED
      return 409;
    case 8:  // RESOURCE_EXHAUSTED
      return 429;
    case 12:  // UNIMPLEMENTED
      return 501;
    case 14:  // UNAVAILABLE
      return 503;
    case 4:  // DEADLINE_EXCEEDED
      return 504;
    default:
      return 500;
  }
}

std::string GrpcCodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",         "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code > 16) return "UNKNOWN";
  return kNames[code];
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
          out += buffer;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += "\"";
  return out;
}

std::string ErrorJsonWithHttp(int grpc_code, absl::string_view message, int http_status) {
  return absl::StrCat("{\"error\":{\"code\":", JsonQuote(GrpcCodeName(grpc_code)),
                      ",\"message\":", JsonQuote(message), ",\"httpStatus\":", http_status, "}}");
}

std::string ErrorJson(int grpc_code, absl::string_view message) {
  return ErrorJsonWithHttp(grpc_code, message, HttpStatusFromGrpcCode(grpc_code));
}

std::string CorsAllowOrigin(const std::vector<std::string>& allowed, absl::string_view origin) {
  for (const std::string& entry : allowed) {
    if (entry == "*") return "*";
  }
  if (origin.empty()) return "";
  for (const std::string& entry : allowed) {
    if (entry == origin) return entry;
  }
  return "";
}

namespace {
// SSE parsers end a line at CRLF, LF or a bare CR: text relayed from upstream
// (error messages) must not start a field or an event of its own.
std::string SseLines(absl::string_view text) {
  std::string lf = absl::StrReplaceAll(text, {{"\r\n", "\n"}});
  return absl::StrReplaceAll(lf, {{"\r", "\n"}});
}
}  // namespace

std::string SseEvent(absl::string_view event, absl::string_view data) {
  std::string out;
  out.reserve(data.size() + event.size() + 16);
  if (!event.empty()) absl::StrAppend(&out, "event: ", event, "\n");
  for (absl::string_view line : absl::StrSplit(SseLines(data), '\n')) {
    absl::StrAppend(&out, "data: ", line, "\n");
  }
  out += "\n";
  return out;
}

std::string SseComment(absl::string_view text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(SseLines(text), '\n')) {
    absl::StrAppend(&out, ": ", line, "\n");
  }
  out += "\n";
  return out;
}

std::string SseRetry(int milliseconds) { return absl::StrCat("retry: ", milliseconds, "\n\n"); }

bool IsRetryableWatchCode(int code) {
  switch (code) {
    case 3:   // INVALID_ARGUMENT
    case 5:   // NOT_FOUND
    case 7:   // PERMISSION_DENIED
    case 12:  // UNIMPLEMENTED
    case 16:  // UNAUTHENTICATED
      return false;
    default:
      return true;
  }
}

int NextBackoffMs(int previous_ms, int max_ms) {
  if (previous_ms <= 0) return std::min(500, max_ms);
  return std::min(previous_ms * 2, max_ms);
}

// ---- Request heads ---------------------------------------------------------

namespace {

// Splits a head into lines (without their "\r\n"/"\n"), the blank one excluded.
std::vector<absl::string_view> HeadLines(absl::string_view head) {
  std::vector<absl::string_view> lines;
  while (!head.empty()) {
    size_t eol = head.find('\n');
    absl::string_view line = head.substr(0, eol);
    absl::ConsumeSuffix(&line, "\r");
    if (line.empty()) break;
    lines.push_back(line);
    if (eol == absl::string_view::npos) break;
    head.remove_prefix(eol + 1);
  }
  return lines;
}

bool HeaderIs(absl::string_view line, absl::string_view name) {
  return line.size() > name.size() && line[name.size()] == ':' &&
         absl::EqualsIgnoreCase(line.substr(0, name.size()), name);
}

absl::string_view HeaderValue(absl::string_view line) {
  return absl::StripAsciiWhitespace(line.substr(line.find(':') + 1));
}

}  // namespace

size_t FindHeadEnd(absl::string_view bytes, size_t* resume) {
  size_t start = resume != nullptr ? *resume : 0;
  while (start < bytes.size()) {
    size_t eol = bytes.find('\n', start);
    if (eol == absl::string_view::npos) break;
    absl::string_view line = bytes.substr(start, eol - start);
    absl::ConsumeSuffix(&line, "\r");
    // A blank line ends the head (at the start: a bad head of its own).
    if (line.empty()) return eol + 1;
    start = eol + 1;
  }
  if (resume != nullptr) *resume = start;
  return absl::string_view::npos;
}

RequestHead ParseRequestHead(absl::string_view head) {
  RequestHead out;
  std::vector<absl::string_view> lines = HeadLines(head);
  if (lines.empty()) return out;
  // Exactly "METHOD SP target SP version", as libevent's parser takes it
  // (strsep on single spaces): the method read here is the one it sees.
  std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
  if (request_line.size() != 3 || request_line[0].empty() || request_line[1].empty() ||
      !absl::StartsWith(request_line[2], "HTTP/")) {
    return out;
  }
  out.method = std::string(request_line[0]);
  out.target = std::string(request_line[1]);
  bool has_length = false;
  bool has_authorization = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    // Folded (obsolete) continuation lines could hide a header: refused.
    if (line.front() == ' ' || line.front() == '\t' || line.find(':') == absl::string_view::npos) {
      return out;
    }
    if (HeaderIs(line, "Content-Length")) {
      int64_t length = 0;
      absl::string_view text = HeaderValue(line);
      bool digits = !text.empty() && text.size() <= 18 &&
                    std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
      if (!digits || !absl::SimpleAtoi(text, &length) ||
          (has_length && length != out.content_length)) {
        out.bad_length = true;
      }
      out.content_length = length;
      has_length = true;
    } else if (HeaderIs(line, "Transfer-Encoding")) {
      out.chunked = true;
    } else if (HeaderIs(line, "Authorization") && !has_authorization) {
      out.authorization = std::string(HeaderValue(line));
      has_authorization = true;
    }
  }
  out.valid = true;
  return out;
}

bool MethodMayHaveBody(absl::string_view method) {
  return method == "POST" || method == "PUT" || method == "PATCH";
}

BodyVerdict JudgeBody(const RequestHead& head, bool token_verified, int64_t max_body_bytes) {
  if (!head.valid || head.bad_length) return BodyVerdict::kBadRequest;
  if ((head.content_length > 0 || head.chunked) && !MethodMayHaveBody(head.method)) {
    return BodyVerdict::kBodyNotAllowed;
  }
  if (head.chunked) return BodyVerdict::kNeedsLength;
  if (head.content_length == 0) return BodyVerdict::kAdmit;
  if (head.content_length > max_body_bytes) return BodyVerdict::kTooLarge;
  if (!token_verified) return BodyVerdict::kUnauthenticated;
  return BodyVerdict::kAdmit;
}

const char* RefusalReason(BodyVerdict verdict) {
  switch (verdict) {
    case BodyVerdict::kAdmit: return "";
    case BodyVerdict::kTooLarge: return "too_large";
    case BodyVerdict::kUnauthenticated: return "unauthenticated";
    case BodyVerdict::kNeedsLength: return "needs_length";
    case BodyVerdict::kBadRequest: return "bad_request";
    case BodyVerdict::kBodyNotAllowed: return "body_not_allowed";
  }
  return "bad_request";
}

bool KeepsFraming(BodyVerdict verdict) {
  return verdict == BodyVerdict::kAdmit || verdict == BodyVerdict::kTooLarge ||
         verdict == BodyVerdict::kUnauthenticated;
}

std::string StripRefusal(absl::string_view head) {
  std::vector<absl::string_view> lines = HeadLines(head);
  std::string out;
  for (absl::string_view line : lines) {
    if (HeaderIs(line, kRefusalHeader)) continue;
    absl::StrAppend(&out, line, "\r\n");
  }
  out += "\r\n";
  return out;
}

std::string RefusedHead(absl::string_view head, absl::string_view reason) {
  std::vector<absl::string_view> lines = HeadLines(head);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (i > 0 && (HeaderIs(line, kRefusalHeader) || HeaderIs(line, "Content-Length") ||
                  HeaderIs(line, "Transfer-Encoding") || line.front() == ' ' ||
                  line.front() == '\t' || line.find(':') == absl::string_view::npos)) {
      continue;
    }
    absl::StrAppend(&out, line, "\r\n");
  }
  // A head without a request line still becomes a request the handler answers.
  if (lines.empty() || !ParseRequestHead(head).valid) out = "GET / HTTP/1.1\r\n";
  absl::StrAppend(&out, kRefusalHeader, ": ", reason, "\r\nContent-Length: 0\r\n\r\n");
  return out;
}

// ---- Raw routes forwarded to the integrations service ----------------------

bool IsIngressPath(absl::string_view raw_path) {
  for (absl::string_view prefix : {"/slack/", "/scim/", "/v1/export/"}) {
    if (absl::StartsWith(raw_path, prefix)) return true;
  }
  return false;
}

int64_t MaxBodyBytesFor(absl::string_view raw_path) {
  return raw_path == kDirectoryImportPath ? kMaxImportBodyBytes : kMaxBodyBytes;
}

std::string BodyTooLargeMessage(absl::string_view raw_path) {
  return absl::StrCat("the body is larger than ", MaxBodyBytesFor(raw_path) / 1024, " KiB");
}

absl::string_view TargetPath(absl::string_view target) {
  return target.substr(0, target.find('?'));
}

integrations::v1::HandleRequest BuildIngressRequest(
    absl::string_view method, absl::string_view raw_path, absl::string_view raw_query,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string body) {
  integrations::v1::HandleRequest request;
  request.set_method(std::string(method));
  request.set_path(PercentDecode(raw_path, /*plus_as_space=*/false));
  request.set_query(std::string(raw_query));
  for (const auto& [name, value] : headers) {
    integrations::v1::HttpHeader* header = request.add_headers();
    header->set_name(absl::AsciiStrToLower(name));
    header->set_value(value);
  }
  request.set_body(std::move(body));
  return request;
}

namespace {

// RFC 9110 token characters: what a header name may hold.
bool IsHeaderName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && absl::string_view("!#$%&'*+-.^_`|~").find(c) ==
                                       absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

// Visible ASCII, space and tab; anything else (CR, LF) could end the header.
bool IsHeaderValue(absl::string_view value) {
  for (char c : value) {
    if (c != '\t' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<IngressReply> CheckIngressResponse(
    const integrations::v1::HandleResponse& response) {
  if (response.status() < 200 || response.status() > 599) {
    return absl::InternalError(
        absl::StrCat("the integrations service answered HTTP status ", response.status()));
  }
  IngressReply reply;
  reply.status = response.status();
  for (const integrations::v1::HttpHeader& header : response.headers()) {
    if (!IsHeaderName(header.name()) || !IsHeaderValue(header.value())) {
      return absl::InternalError(absl::StrCat(
          "the integrations service answered a malformed header ", JsonQuote(header.name())));
    }
    const std::string name = absl::AsciiStrToLower(header.name());
    if (name == "content-length" || name == "transfer-encoding" || name == "connection") {
      continue;
    }
    reply.headers.emplace_back(header.name(), header.value());
  }
  reply.body = response.body();
  return reply;
}

absl::StatusOr<absl::Time> TokenExpiry(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  std::string payload;
  if (parts.size() != 3 || !absl::WebSafeBase64Unescape(parts[1], &payload)) {
    return absl::InvalidArgumentError("token: not a JWT");
  }
  pb::Struct claims;
  if (!pb::util::JsonStringToMessage(payload, &claims).ok()) {
    return absl::InvalidArgumentError("token: the payload is not JSON");
  }
  auto exp = claims.fields().find("exp");
  if (exp == claims.fields().end() || !exp->second.has_number_value()) {
    return absl::InvalidArgumentError("token: no numeric exp claim");
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(exp->second.number_value()));
}

}  // namespace gateway
