// The Standard Webhooks signature (https://www.standardwebhooks.com/):
// webhook-signature = "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)),
// where the key is the base64-decoded part of the secret after "whsec_".
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace integrations::webhooks {

inline constexpr char kSecretPrefix[] = "whsec_";

// "whsec_" + base64 of 32 random bytes (OpenSSL's RAND_bytes).
absl::StatusOr<std::string> NewSigningSecret();

// "v1,<base64 signature>"; INVALID_ARGUMENT when `secret` is not a whsec_ secret.
absl::StatusOr<std::string> Sign(absl::string_view secret, absl::string_view event_id,
                                 int64_t timestamp_s, absl::string_view body);

}  // namespace integrations::webhooks
