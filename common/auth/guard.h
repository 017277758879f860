// The one call at the top of every handler: authenticate the bearer token
// and charge the call to the caller's rate limits (per person and per
// token). Services (service-signed tokens) are not limited.
//
//   absl::StatusOr<Principal> who = guard_.Authenticate(*context);
//   if (!who.ok()) return ToGrpcStatus(who.status());
//
// A refused call is UNAUTHENTICATED (token) or RESOURCE_EXHAUSTED with
// "rate limit: retry after N ms" and the trailing metadata `retry-after-ms`
// and `grpc-retry-pushback-ms` (both N), which gRPC's retry policy honours.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/ratelimit/rate_limit.h"

namespace common::auth {

inline constexpr char kRetryAfterMetadata[] = "retry-after-ms";
inline constexpr char kRetryPushbackMetadata[] = "grpc-retry-pushback-ms";

class Guard {
 public:
  // Without options: no rate limit (unit tests). Copies share one limiter.
  explicit Guard(Authenticator authenticator);
  Guard(Authenticator authenticator, ratelimit::Options limits);

  // Authenticates and rate-limits; on RESOURCE_EXHAUSTED the retry
  // metadata is already added to `context`'s trailers.
  absl::StatusOr<Principal> Authenticate(grpc::ServerContextBase& context) const;
  // For server streams, after Authenticate: a slot among the person's open
  // streams (hold it until the stream ends), or RESOURCE_EXHAUSTED "too many
  // open streams". Services are never limited.
  absl::StatusOr<ratelimit::StreamSlots::Slot> OpenStream(const Principal& principal) const;
  // The same without a gRPC context (tests, other transports).
  absl::StatusOr<Principal> Check(absl::string_view bearer_token, absl::Time now) const;

  const Authenticator& authenticator() const { return authenticator_; }
  const ratelimit::RateLimiter* limiter() const { return limiter_.get(); }

 private:
  Authenticator authenticator_;
  std::shared_ptr<ratelimit::RateLimiter> limiter_;
  std::shared_ptr<ratelimit::StreamSlots> streams_;
};

// A short stable key for a token in the per-token bucket (a SHA-256 prefix).
std::string TokenKey(absl::string_view token);

}  // namespace common::auth
