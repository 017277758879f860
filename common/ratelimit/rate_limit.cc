#include "common/ratelimit/rate_limit.h"

#include <algorithm>
#include <cmath>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config/env.h"

using common::config::DoubleEnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(double, rate_limit_person_rps, DoubleEnvOr("RATE_LIMIT_PERSON_RPS", 50),
          "calls per second per person (org, subject); 0 = unlimited "
          "(env RATE_LIMIT_PERSON_RPS)");
ABSL_FLAG(int64_t, rate_limit_person_burst, IntEnvOr("RATE_LIMIT_PERSON_BURST", 100),
          "calls a person may make at once (env RATE_LIMIT_PERSON_BURST)");
ABSL_FLAG(double, rate_limit_token_rps, DoubleEnvOr("RATE_LIMIT_TOKEN_RPS", 50),
          "calls per second per bearer token; 0 = unlimited (env RATE_LIMIT_TOKEN_RPS)");
ABSL_FLAG(int64_t, rate_limit_token_burst, IntEnvOr("RATE_LIMIT_TOKEN_BURST", 100),
          "calls one token may make at once (env RATE_LIMIT_TOKEN_BURST)");
ABSL_FLAG(int64_t, max_streams_per_person, IntEnvOr("MAX_STREAMS_PER_PERSON", 32),
          "server streams one person may hold open at once; 0 = unlimited "
          "(env MAX_STREAMS_PER_PERSON)");

namespace common::ratelimit {
namespace {
constexpr char kPrefix[] = "rate limit: retry after ";
}  // namespace

Options OptionsFromFlags() {
  Options options;
  options.per_person = {absl::GetFlag(FLAGS_rate_limit_person_rps),
                        absl::GetFlag(FLAGS_rate_limit_person_burst)};
  options.per_token = {absl::GetFlag(FLAGS_rate_limit_token_rps),
                       absl::GetFlag(FLAGS_rate_limit_token_burst)};
  options.max_streams_per_person =
      static_cast<int>(std::min<int64_t>(absl::GetFlag(FLAGS_max_streams_per_person), 1 << 30));
  return options;
}

absl::Status RateLimitedError(absl::Duration retry_after, absl::string_view what) {
  // Round up: a client that waits exactly this long gets through.
  int64_t ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(retry_after, absl::Milliseconds(1))));
  return absl::ResourceExhaustedError(absl::StrCat(kPrefix, ms, " ms (", what, ")"));
}

int64_t RetryAfterMillis(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted) return -1;
  absl::string_view message = status.message();
  if (!absl::ConsumePrefix(&message, kPrefix)) return -1;
  size_t end = message.find(' ');
  int64_t ms = 0;
  if (end == absl::string_view::npos || !absl::SimpleAtoi(message.substr(0, end), &ms)) return -1;
  return ms;
}

namespace {
std::string PersonKey(absl::string_view org, absl::string_view subject) {
  // Claims are C strings: a NUL cannot occur inside either part.
  return absl::StrCat(org, absl::string_view("\0", 1), subject);
}
}  // namespace

StreamSlots::Slot& StreamSlots::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    Release();
    owner_ = other.owner_;
    key_ = std::move(other.key_);
    other.owner_ = nullptr;
  }
  return *this;
}

void StreamSlots::Slot::Release() {
  if (owner_ == nullptr) return;
  absl::MutexLock lock(&owner_->mu_);
  auto it = owner_->open_.find(key_);
  if (it != owner_->open_.end() && --it->second <= 0) owner_->open_.erase(it);
  owner_ = nullptr;
}

absl::StatusOr<StreamSlots::Slot> StreamSlots::Open(absl::string_view org,
                                                    absl::string_view subject) {
  std::string key = PersonKey(org, subject);
  if (per_person_ <= 0) return Slot();
  absl::MutexLock lock(&mu_);
  int& open = open_[key];
  if (open >= per_person_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many open streams: '", subject, "' already holds ", open,
        "; close one first"));
  }
  ++open;
  return Slot(this, std::move(key));
}

int StreamSlots::open(absl::string_view org, absl::string_view subject) const {
  absl::MutexLock lock(&mu_);
  auto it = open_.find(PersonKey(org, subject));
  return it == open_.end() ? 0 : it->second;
}

RateLimiter::Bucket RateLimiter::MakeBucket(Limit limit) {
  Bucket bucket;
  bucket.limit = limit;
  if (limit.enabled()) {
    bucket.interval = absl::Seconds(1) / limit.per_second;
    bucket.tolerance = bucket.interval * (limit.burst - 1);
  }
  return bucket;
}

RateLimiter::RateLimiter(Options options)
    : options_(options),
      person_(MakeBucket(options.per_person)),
      token_(MakeBucket(options.per_token)) {}

absl::Duration RateLimiter::WaitLocked(const Bucket& bucket, const std::string& key,
                                       absl::Time now) {
  if (!bucket.limit.enabled()) return absl::ZeroDuration();
  auto it = bucket.arrival.find(key);
  if (it == bucket.arrival.end() || it->second <= now) return absl::ZeroDuration();
  absl::Duration ahead = it->second - now;  // how far the key ran ahead of its rate
  return ahead > bucket.tolerance ? ahead - bucket.tolerance : absl::ZeroDuration();
}

void RateLimiter::TakeLocked(Bucket& bucket, const std::string& key, absl::Time now) {
  if (!bucket.limit.enabled()) return;
  auto it = bucket.arrival.find(key);
  if (it != bucket.arrival.end()) {
    it->second = std::max(it->second, now) + bucket.interval;
    return;
  }
  if (bucket.arrival.size() >= options_.max_keys) {
    // Keys in the past hold full buckets: forgetting them changes nothing.
    for (auto i = bucket.arrival.begin(); i != bucket.arrival.end();) {
      i = i->second <= now ? bucket.arrival.erase(i) : std::next(i);
    }
    // Still crowded: forget everyone rather than sweep on every call (fail
    // open; the keys are authenticated callers, so this takes many tokens).
    if (bucket.arrival.size() >= options_.max_keys / 2) bucket.arrival.clear();
  }
  bucket.arrival.emplace(key, now + bucket.interval);
}

absl::Status RateLimiter::Acquire(absl::string_view org, absl::string_view subject,
                                  absl::string_view token_key, absl::Time now) {
  std::string person_key = PersonKey(org, subject);
  std::string token(token_key);
  absl::MutexLock lock(&mu_);
  absl::Duration person_wait = WaitLocked(person_, person_key, now);
  absl::Duration token_wait =
      token.empty() ? absl::ZeroDuration() : WaitLocked(token_, token, now);
  if (person_wait > absl::ZeroDuration() || token_wait > absl::ZeroDuration()) {
    bool person_first = person_wait >= token_wait;
    return RateLimitedError(
        std::max(person_wait, token_wait),
        person_first
            ? absl::StrCat("over ", options_.per_person.per_second, " calls/s for '", subject, "'")
            : absl::StrCat("over ", options_.per_token.per_second, " calls/s for this token"));
  }
  TakeLocked(person_, person_key, now);
  if (!token.empty()) TakeLocked(token_, token, now);
  return absl::OkStatus();
}

size_t RateLimiter::size() const {
  absl::MutexLock lock(&mu_);
  return person_.arrival.size() + token_.arrival.size();
}

}  // namespace common::ratelimit
