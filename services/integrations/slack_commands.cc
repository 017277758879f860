#include "services/integrations/slack_commands.h"

#include <openssl/sha.h>

#include <algorithm>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/auth/auth.h"
#include "common/auth/ids.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "services/integrations/slack_signature.h"
#include "services/integrations/slack_user_map.h"

namespace integrations {
namespace {

constexpr char kLinkHint[] =
    "ask an admin to link it to your person id (SlackService.PutUserMapping, or through "
    "directory sync)";

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::BytesToHexString(absl::string_view(&c, 1)));
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

void AddHeader(v1::HandleResponse& response, absl::string_view name, absl::string_view value) {
  v1::HttpHeader* header = response.add_headers();
  header->set_name(std::string(name));
  header->set_value(std::string(value));
}

// A refusal before the command is verified: not Slack's JSON (Slack shows
// the status), text that says what is wrong.
v1::HandleResponse Plain(int status, absl::string_view text) {
  v1::HandleResponse response;
  response.set_status(status);
  AddHeader(response, "content-type", "text/plain; charset=utf-8");
  response.set_body(std::string(text));
  return response;
}

// Slack's answer to a verified command.
v1::HandleResponse SlackMessage(bool in_channel, absl::string_view text) {
  v1::HandleResponse response;
  response.set_status(200);
  AddHeader(response, "content-type", "application/json");
  response.set_body(absl::StrCat("{\"response_type\":",
                                 in_channel ? "\"in_channel\"" : "\"ephemeral\"",
                                 ",\"text\":", JsonQuote(text), "}"));
  return response;
}

v1::HandleResponse Ephemeral(absl::string_view text) { return SlackMessage(false, text); }

std::string HeaderValue(const v1::HandleRequest& request, absl::string_view name) {
  for (const v1::HttpHeader& header : request.headers()) {
    if (header.name() == name) return header.value();
  }
  return "";
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

// "<@U1|bob>, @carol and <@U3>"
std::string JoinRecipients(const KudosCommand& command) {
  std::vector<std::string> names;
  for (const SlackRecipient& recipient : command.recipients) {
    names.push_back(recipient.as_written);
  }
  if (names.size() == 1) return names[0];
  std::string last = names.back();
  names.pop_back();
  return absl::StrCat(absl::StrJoin(names, ", "), " and ", last);
}

std::string SuccessText(absl::string_view giver_slack_id, const KudosCommand& command,
                        const kudos::v1::Kudos& kudos) {
  std::vector<std::string> tags;
  for (const std::string& value : kudos.values()) tags.push_back(absl::StrCat("#", value));
  const int64_t points = kudos.points_per_recipient();
  return absl::StrCat("<@", giver_slack_id, "> gave ", points, points == 1 ? " point" : " points",
                      kudos.recipient_ids_size() > 1 ? " each" : "", " to ",
                      JoinRecipients(command), " for ", absl::StrJoin(tags, " "), ": ",
                      SlackEscape(kudos.message()));
}

// "recipient_ids[1]: ..." -> index 1 and the text after the field.
std::optional<std::pair<size_t, std::string>> IndexedField(absl::string_view message,
                                                          absl::string_view field) {
  if (!absl::ConsumePrefix(&message, field) || !absl::ConsumePrefix(&message, "[")) return {};
  size_t close = message.find("]: ");
  size_t index = 0;
  if (close == absl::string_view::npos || !absl::SimpleAtoi(message.substr(0, close), &index)) {
    return {};
  }
  return std::make_pair(index, std::string(message.substr(close + 3)));
}

}  // namespace

std::string SlackRequestId(absl::string_view team_id, absl::string_view trigger_id,
                           absl::string_view body) {
  const std::string basis = trigger_id.empty()
                                ? absl::StrCat("body\n", body)
                                : absl::StrCat("trigger\n", team_id, "\n", trigger_id);
  return absl::StrCat("slack-", Sha256Hex(basis).substr(0, 40));
}

std::string SlackUnescape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}});
}

std::string SlackEscape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

std::string SlackErrorText(const absl::Status& status, const KudosCommand& command,
                           const std::vector<std::string>& values) {
  std::string detail(status.message());
  if (auto field = IndexedField(detail, "recipient_ids")) {
    if (field->first < command.recipients.size()) {
      detail = absl::StrCat(command.recipients[field->first].as_written, ": ", field->second);
    }
  } else if (auto value = IndexedField(detail, "values")) {
    if (value->first < values.size()) {
      detail = absl::StrCat("#", values[value->first], ": ", value->second);
    }
  } else if (absl::StartsWith(detail, "points_per_recipient: ")) {
    detail = absl::StrCat("points: ", detail.substr(strlen("points_per_recipient: ")));
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return absl::StrCat("Your kudos was not sent: ", detail, ". ", kSlackUsage);
    case absl::StatusCode::kResourceExhausted:
      return absl::StrCat("Your kudos was not sent: ", detail,
                          ". Your allowance or rate limit is used up for now; try again later.");
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return absl::StrCat("Your kudos was not sent: ", detail);
    case absl::StatusCode::kDeadlineExceeded:
      return "The platform did not answer in time: your kudos may still arrive. Check the "
             "feed before sending it again.";
    default:
      return absl::StrCat("Your kudos was not sent: the platform is unavailable (", detail,
                          "). Try again in a minute.");
  }
}

SlackCommandHandler::SlackCommandHandler(Host& host, std::shared_ptr<grpc::Channel> kudos_channel)
    : host_(host), store_(host.pool()), kudos_(kudos::v1::KudosService::NewStub(kudos_channel)) {}

v1::HandleResponse SlackCommandHandler::Handle(const v1::HandleRequest& request, absl::Time now) {
  absl::string_view path = request.path();
  const bool slack = absl::ConsumePrefix(&path, "/slack/");
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (!slack || parts.size() != 2 || parts[1] != "commands" ||
      !common::auth::ValidOrgId(parts[0])) {
    v1::HandleResponse response = Plain(404, "");
    response.mutable_headers(0)->set_value("application/json");
    response.set_body(absl::StrCat("{\"error\":", JsonQuote(absl::StrCat(
                                                      "no Slack endpoint at ", request.path(),
                                                      "; slash commands go to "
                                                      "POST /slack/{org}/commands")),
                                   "}"));
    return response;
  }
  if (request.method() != "POST") {
    v1::HandleResponse response = Plain(405, "slash commands are POSTed by Slack");
    AddHeader(response, "allow", "POST");
    return response;
  }
  return Command(parts[0], request, now);
}

v1::HandleResponse SlackCommandHandler::Command(absl::string_view org,
                                                const v1::HandleRequest& request,
                                                absl::Time now) {
  absl::StatusOr<SlackConfig> config = store_.Load(org);
  if (!config.ok()) {
    common::log::Warning(absl::StrCat("slack: settings of ", org, ": ", config.status().ToString()));
    return Plain(503, "the platform is unavailable; try again in a minute");
  }
  if (config->signing_secret.empty()) {
    return Plain(401, absl::StrCat("no Slack signing secret is set for org ", org,
                                   ": an admin sets it with SlackService.SetSlackSettings"));
  }
  // Nothing is read from the body before its signature holds.
  absl::Status verified = VerifySlackSignature(
      config->signing_secret, HeaderValue(request, "x-slack-request-timestamp"),
      HeaderValue(request, "x-slack-signature"), request.body(), now);
  if (!verified.ok()) return Plain(401, verified.message());
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> form =
      ParseForm(request.body());
  if (!form.ok()) return Plain(400, form.status().message());
  return Answer(org, *config, *form, request.body(), now);
}

v1::HandleResponse SlackCommandHandler::Answer(
    absl::string_view org, const SlackConfig& config,
    const std::vector<std::pair<std::string, std::string>>& form, absl::string_view body,
    absl::Time now) {
  const v1::SlackSettings& settings = config.settings;
  const std::string team_id = FormValue(form, "team_id");
  if (!settings.team_id().empty() && team_id != settings.team_id()) {
    return Ephemeral(absl::StrCat("This Slack workspace (", team_id,
                                  ") is not the one linked to the kudos org; ask an admin."));
  }
  absl::StatusOr<KudosCommand> command = ParseKudosText(FormValue(form, "text"));
  if (!command.ok()) return Ephemeral(command.status().message());
  const std::string giver_slack_id = FormValue(form, "user_id");
  absl::StatusOr<Resolved> resolved = Resolve(org, settings, giver_slack_id, *command);
  if (!resolved.ok()) return Ephemeral(resolved.status().message());
  kudos::v1::SendKudosRequest& send = resolved->request;
  send.set_request_id(SlackRequestId(team_id, FormValue(form, "trigger_id"), body));
  send.set_message(SlackUnescape(command->message));

  absl::StatusOr<kudos::v1::Kudos> kudos = SendKudos(org, resolved->giver, send, now);
  if (!kudos.ok()) {
    const std::vector<std::string> values(send.values().begin(), send.values().end());
    return Ephemeral(SlackErrorText(kudos.status(), *command, values));
  }
  const bool in_channel =
      settings.response_visibility() != v1::SLACK_RESPONSE_VISIBILITY_EPHEMERAL;
  return SlackMessage(in_channel, SuccessText(giver_slack_id, *command, *kudos));
}

// The giver and recipients as people (one HMGET), the values and points
// with the org's Slack defaults. An error's message is the ephemeral text.
absl::StatusOr<SlackCommandHandler::Resolved> SlackCommandHandler::Resolve(
    absl::string_view org, const v1::SlackSettings& settings, const std::string& giver_slack_id,
    const KudosCommand& command) {
  if (!common::auth::ValidId(giver_slack_id)) {
    return absl::InvalidArgumentError("Slack sent no user_id with the command.");
  }
  std::vector<std::string> slack_ids = {giver_slack_id};
  for (const SlackRecipient& recipient : command.recipients) {
    if (!recipient.slack_user_id.empty()) slack_ids.push_back(recipient.slack_user_id);
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> people =
      LookupSlackUsers(host_.pool(), org, slack_ids);
  if (!people.ok()) {
    return absl::UnavailableError(SlackErrorText(people.status(), command, {}));
  }
  KUDOS_CHECK(people->size() == slack_ids.size(), "one lookup per Slack user asked");
  if (!(*people)[0].has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Link your Slack user first: your Slack user ", giver_slack_id,
        " is not linked to a person of the org; ", kLinkHint, "."));
  }
  Resolved resolved;
  resolved.giver = *(*people)[0];
  size_t next = 1;
  for (const SlackRecipient& recipient : command.recipients) {
    if (recipient.slack_user_id.empty()) {
      resolved.request.add_recipient_ids(recipient.person_id);
      continue;
    }
    const std::optional<std::string>& person = (*people)[next++];
    if (!person.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          recipient.as_written,
          " is not linked to a person of the org: ask an admin to link their Slack user "
          "(SlackService.PutUserMapping)."));
    }
    resolved.request.add_recipient_ids(*person);
  }
  std::vector<std::string> values = command.values;
  if (values.empty() && !settings.default_value_id().empty()) {
    values.push_back(settings.default_value_id());
  }
  if (values.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Name a value with #, e.g. #teamwork. ", kSlackUsage));
  }
  for (const std::string& value : values) resolved.request.add_values(value);
  const int64_t points = command.points.value_or(settings.default_points());
  if (!command.points.has_value() && points == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Name the points per recipient, e.g. 5. ", kSlackUsage));
  }
  resolved.request.set_points_per_recipient(points);
  return resolved;
}

absl::StatusOr<kudos::v1::Kudos> SlackCommandHandler::SendKudos(
    absl::string_view org, absl::string_view giver, const kudos::v1::SendKudosRequest& request,
    absl::Time now) {
  // Kudos takes the giver from the token: a token of this service acting for
  // the giver, as a member only.
  absl::StatusOr<std::string> token = common::auth::MintDelegatedToken(
      "integrations", org, giver, {"member"}, host_.options().delegation_secret, now);
  if (!token.ok()) return token.status();
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  common::grpc_util::SetDeadline(context,
                                 std::min(host_.options().call_timeout, kSlackKudosDeadline));
  kudos::v1::SendKudosResponse response;
  grpc::Status status = kudos_->SendKudos(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        status.error_message());
  }
  return response.kudos();
}

}  // namespace integrations
