// Slack's request signing (https://api.slack.com/authentication/verifying-requests-from-slack):
// X-Slack-Signature = "v0=" + hex(HMAC-SHA256(signing secret,
// "v0:" + X-Slack-Request-Timestamp + ":" + the raw body)), and the
// timestamp within five minutes of now, so a captured request cannot be
// replayed later.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace integrations {

// How far a request's timestamp may lie from now, either way.
inline constexpr absl::Duration kSlackMaxClockSkew = absl::Minutes(5);

// "v0=" + lower-case hex HMAC-SHA256 over "v0:<timestamp>:<body>".
std::string SlackSignature(absl::string_view signing_secret, absl::string_view timestamp,
                           absl::string_view body);

// UNAUTHENTICATED naming what is wrong (missing header, timestamp not a
// number, stale or future timestamp, signature mismatch); the signatures are
// compared in constant time.
absl::Status VerifySlackSignature(absl::string_view signing_secret,
                                  absl::string_view timestamp_header,
                                  absl::string_view signature_header, absl::string_view body,
                                  absl::Time now);

}  // namespace integrations
