// Fuzzes token verification (common::auth::Authenticator::Verify): the JWT
// parser (libjwt), our claim checks and the verified-token cache.
// Input: a mode byte, then
//   mode 0: a raw token;
//   mode 1/2: "<header JSON>\n<payload JSON>", signed here with the person
//   key (1) or the service secret (2), so the claims reach the checks behind
//   the signature.
// Invariants: an accepted token names a valid org and a subject; verifying
// it again (now from the cache) gives the same principal.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/check/check.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/fuzz_keys.h"

namespace {

using fuzz::kPersonKey;
using fuzz::kServiceSecret;
const absl::Time kNow = absl::FromUnixSeconds(fuzz::kNowUnixSeconds);

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

std::string SignHs256(absl::string_view header, absl::string_view payload, absl::string_view key) {
  std::string signing_input = Base64Url(header) + "." + Base64Url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_size);
  return signing_input + "." +
         Base64Url(absl::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

const common::auth::Authenticator& Verifier() {
  static const common::auth::Authenticator* authenticator = [] {
    common::auth::JwtConfig config;
    config.algorithm = "HS256";
    config.key = kPersonKey;
    config.service_secret = kServiceSecret;
    return new common::auth::Authenticator(config);
  }();
  return *authenticator;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::QuietProtobuf();
  fuzz::Input input(data, size);
  uint8_t mode = input.Byte() % 3;
  std::string token;
  if (mode == 0) {
    token = input.Rest();
  } else {
    std::string header = input.Field();
    std::string payload = input.Rest();
    token = SignHs256(header, payload, mode == 1 ? kPersonKey : kServiceSecret);
  }
  absl::StatusOr<common::auth::Principal> first = Verifier().Verify(token, kNow);
  if (!first.ok()) {
    KUDOS_CHECK(first.status().code() == absl::StatusCode::kUnauthenticated,
                "a refused token is UNAUTHENTICATED");
    return 0;
  }
  KUDOS_CHECK(common::auth::ValidOrgId(first->org), "an accepted token names a valid org");
  KUDOS_CHECK(first->roles != 0, "an accepted token carries a known role");
  absl::StatusOr<common::auth::Principal> again = Verifier().Verify(token, kNow);
  KUDOS_CHECK(again.ok(), "a token accepted once is accepted again (cache)");
  KUDOS_CHECK(again->subject == first->subject && again->org == first->org &&
                  again->roles == first->roles,
              "the cache returns the principal the token verified as");
  return 0;
}
