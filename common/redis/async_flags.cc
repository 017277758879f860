#include "common/redis/async_flags.h"

#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/env.h"
#include "common/log/log.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/pool_flags.h"

// Defined in pool_flags.cc: the one --redis and --redis_timeout_ms.
ABSL_DECLARE_FLAG(std::string, redis);
ABSL_DECLARE_FLAG(int, redis_timeout_ms);

ABSL_FLAG(int, redis_loops,
          static_cast<int>(common::config::IntEnvOr("REDIS_LOOPS", 0, 0)),
          "event-loop threads of the asynchronous Redis client; 0 = one per core (env REDIS_LOOPS)");
ABSL_FLAG(int, redis_max_in_flight,
          static_cast<int>(common::config::IntEnvOr("REDIS_MAX_IN_FLIGHT", 1024, 1)),
          "Redis calls in flight per connection before RESOURCE_EXHAUSTED (env REDIS_MAX_IN_FLIGHT)");

ABSL_FLAG(std::string, redis_event_adapter,
          common::config::EnvOr("REDIS_EVENT_ADAPTER", "in_turn"),
          "how the asynchronous Redis client meets libevent: in_turn (commands written in the loop "
          "turn that queued them, persistent read events) or hiredis (hiredis's own adapter's "
          "behaviour, to measure the difference) (env REDIS_EVENT_ADAPTER)");

namespace common::redis {

absl::StatusOr<AsyncClientOptions> AsyncClientOptionsFromFlags() {
  absl::StatusOr<Credentials> credentials = RedisCredentialsFromFlags();
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<AsyncClientOptions> options =
      AsyncClientOptionsFor(absl::GetFlag(FLAGS_redis), *credentials);
  if (!options.ok()) return options.status();
  options->loops = absl::GetFlag(FLAGS_redis_loops);
  options->max_in_flight_per_connection = absl::GetFlag(FLAGS_redis_max_in_flight);
  const std::string adapter = absl::GetFlag(FLAGS_redis_event_adapter);
  if (adapter == "hiredis") {
    options->event_adapter = AsyncClientOptions::EventAdapter::kHiredis;
  } else if (adapter != "in_turn") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--redis_event_adapter (REDIS_EVENT_ADAPTER): '", adapter, "' is not in_turn or hiredis"));
  }
  options->connect_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  absl::Status verified = absl::UnavailableError("no seed");
  for (const Endpoint& seed : options->seeds) {
    verified = VerifyCredentials(seed, options->connect_timeout);
    if (!absl::IsUnavailable(verified)) break;  // answered: accepted or refused
  }
  if (absl::IsUnavailable(verified)) {
    common::log::Warning(absl::StrCat(verified.message(), "; connecting later"));
  } else if (!verified.ok()) {
    return verified;
  }
  return options;
}

}  // namespace common::redis
