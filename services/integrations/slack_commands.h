// The slash command endpoint, POST /slack/{org}/commands, forwarded by the
// gateway through HttpIngressService: verifies Slack's signature with the
// org's signing secret, maps the Slack users to people, sends the kudos as
// the mapped giver (a delegated token: kudos checks it like the giver's own)
// and answers in Slack's JSON: in_channel (or ephemeral, per settings) on
// success, an ephemeral message that says what to fix otherwise.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "integrations/v1/http_ingress.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/integrations/host.h"
#include "services/integrations/slack_command.h"
#include "services/integrations/slack_store.h"

namespace integrations {

// Slack shows an answer only when it comes within 3 s: the kudos call gets
// at most this much (less when the host's call_timeout is shorter).
inline constexpr std::chrono::milliseconds kSlackKudosDeadline{2500};

// The kudos request id of a Slack command: the same for Slack's retries of
// one command (same team and trigger; the body when there is no trigger),
// different for every new command.
std::string SlackRequestId(absl::string_view team_id, absl::string_view trigger_id,
                           absl::string_view body);

// Slack's text escapes (&amp; &lt; &gt;) undone, for the stored message.
std::string SlackUnescape(absl::string_view text);
// Text escaped for Slack's mrkdwn.
std::string SlackEscape(absl::string_view text);

// The ephemeral text for a refused kudos: kudos's field names turned into
// what the Slack user wrote (recipient_ids[1] -> @carol, values[0] -> #x).
std::string SlackErrorText(const absl::Status& status, const KudosCommand& command,
                           const std::vector<std::string>& values);

class SlackCommandHandler {
 public:
  SlackCommandHandler(Host& host, std::shared_ptr<grpc::Channel> kudos_channel);

  v1::HandleResponse Handle(const v1::HandleRequest& request, absl::Time now);

 private:
  v1::HandleResponse Command(absl::string_view org, const v1::HandleRequest& request,
                             absl::Time now);
  // The verified command's answer (always 200 with Slack's JSON).
  v1::HandleResponse Answer(absl::string_view org, const SlackConfig& config,
                            const std::vector<std::pair<std::string, std::string>>& form,
                            absl::string_view body, absl::Time now);
  struct Resolved {
    std::string giver;                   // person id
    kudos::v1::SendKudosRequest request;  // recipients, values, points
  };
  absl::StatusOr<Resolved> Resolve(absl::string_view org, const v1::SlackSettings& settings,
                                   const std::string& giver_slack_id,
                                   const KudosCommand& command);
  absl::StatusOr<kudos::v1::Kudos> SendKudos(absl::string_view org, absl::string_view giver,
                                             const kudos::v1::SendKudosRequest& request,
                                             absl::Time now);

  Host& host_;
  SlackStore store_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_;
};

}  // namespace integrations
