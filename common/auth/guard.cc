#include "common/auth/guard.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace common::auth {

Guard::Guard(Authenticator authenticator) : authenticator_(std::move(authenticator)) {}

Guard::Guard(Authenticator authenticator, ratelimit::Options limits)
    : authenticator_(std::move(authenticator)),
      limiter_(std::make_shared<ratelimit::RateLimiter>(limits)),
      streams_(std::make_shared<ratelimit::StreamSlots>(limits.max_streams_per_person)) {}

absl::StatusOr<ratelimit::StreamSlots::Slot> Guard::OpenStream(const Principal& principal) const {
  if (streams_ == nullptr || principal.is_service()) return ratelimit::StreamSlots::Slot();
  return streams_->Open(principal.org, principal.subject);
}

std::string TokenKey(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), 16);
}

absl::StatusOr<Principal> Guard::Check(absl::string_view bearer_token, absl::Time now) const {
  absl::StatusOr<Principal> principal = authenticator_.Verify(bearer_token, now);
  if (!principal.ok() || limiter_ == nullptr || principal->is_service()) return principal;
  absl::Status allowed =
      limiter_->Acquire(principal->org, principal->subject, TokenKey(bearer_token), now);
  if (!allowed.ok()) return allowed;
  return principal;
}

absl::StatusOr<Principal> Guard::Authenticate(grpc::ServerContextBase& context) const {
  absl::StatusOr<absl::string_view> token = Authenticator::BearerToken(context);
  if (!token.ok()) return token.status();
  absl::StatusOr<Principal> principal = Check(*token, absl::Now());
  if (int64_t ms = ratelimit::RetryAfterMillis(principal.status()); ms >= 0) {
    context.AddTrailingMetadata(kRetryAfterMetadata, absl::StrCat(ms));
    context.AddTrailingMetadata(kRetryPushbackMetadata, absl::StrCat(ms));
  }
  return principal;
}

}  // namespace common::auth
