#include "services/integrations/slack_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/check/check.h"

namespace integrations {

std::string SlackSignature(absl::string_view signing_secret, absl::string_view timestamp,
                           absl::string_view body) {
  const std::string base = absl::StrCat("v0:", timestamp, ":", body);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  const unsigned char* out =
      HMAC(EVP_sha256(), signing_secret.data(), static_cast<int>(signing_secret.size()),
           reinterpret_cast<const unsigned char*>(base.data()), base.size(), digest,
           &digest_length);
  KUDOS_CHECK(out != nullptr && digest_length == 32, "HMAC-SHA256 gives 32 bytes");
  return absl::StrCat(
      "v0=", absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(digest),
                                                      digest_length)));
}

absl::Status VerifySlackSignature(absl::string_view signing_secret,
                                  absl::string_view timestamp_header,
                                  absl::string_view signature_header, absl::string_view body,
                                  absl::Time now) {
  if (timestamp_header.empty() || signature_header.empty()) {
    return absl::UnauthenticatedError(
        "X-Slack-Request-Timestamp and X-Slack-Signature are required (a Slack-signed request)");
  }
  int64_t seconds = 0;
  if (timestamp_header.size() > 12 ||
      !std::all_of(timestamp_header.begin(), timestamp_header.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(timestamp_header, &seconds)) {
    return absl::UnauthenticatedError("X-Slack-Request-Timestamp: not a Unix time in seconds");
  }
  if (absl::AbsDuration(now - absl::FromUnixSeconds(seconds)) > kSlackMaxClockSkew) {
    return absl::UnauthenticatedError(
        "X-Slack-Request-Timestamp: more than 5 minutes from now (a replayed or delayed "
        "request; check the clock)");
  }
  const std::string expected = SlackSignature(signing_secret, timestamp_header, body);
  if (signature_header.size() != expected.size() ||
      CRYPTO_memcmp(signature_header.data(), expected.data(), expected.size()) != 0) {
    return absl::UnauthenticatedError(
        "X-Slack-Signature does not match the org's signing secret");
  }
  return absl::OkStatus();
}

}  // namespace integrations
