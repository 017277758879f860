#include "services/integrations/webhooks_signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/check/check.h"

namespace integrations::webhooks {

absl::StatusOr<std::string> NewSigningSecret() {
  unsigned char key[32];
  if (RAND_bytes(key, sizeof(key)) != 1) {
    return absl::UnavailableError("webhooks: no random bytes for a signing secret");
  }
  return absl::StrCat(kSecretPrefix,
                      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(key), sizeof(key))));
}

absl::StatusOr<std::string> Sign(absl::string_view secret, absl::string_view event_id,
                                 int64_t timestamp_s, absl::string_view body) {
  if (!absl::ConsumePrefix(&secret, kSecretPrefix)) {
    return absl::InvalidArgumentError("webhooks: a signing secret starts with whsec_");
  }
  std::string key;
  if (!absl::Base64Unescape(secret, &key) || key.empty()) {
    return absl::InvalidArgumentError("webhooks: a signing secret is whsec_ + base64");
  }
  std::string content = absl::StrCat(event_id, ".", timestamp_s, ".", body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  unsigned char* done = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                             reinterpret_cast<const unsigned char*>(content.data()), content.size(),
                             mac, &mac_length);
  KUDOS_CHECK(done != nullptr && mac_length == 32, "HMAC-SHA256 gives 32 bytes");
  return absl::StrCat("v1,", absl::Base64Escape(absl::string_view(
                                 reinterpret_cast<char*>(mac), mac_length)));
}

}  // namespace integrations::webhooks
