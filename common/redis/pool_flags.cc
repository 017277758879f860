#include "common/redis/pool_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/env.h"
#include "common/log/log.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, redis, EnvOr("REDIS_ADDR", "127.0.0.1:6379"),
          "Redis host:port, or a comma-separated list of a cluster's seed nodes "
          "(host:port,host:port; standalone or cluster is detected) (env REDIS_ADDR)");
ABSL_FLAG(int, redis_pool_size, static_cast<int>(IntEnvOr("REDIS_POOL_SIZE", 16, 1)),
          "Redis connections in the pool (env REDIS_POOL_SIZE)");
ABSL_FLAG(int, redis_timeout_ms, static_cast<int>(IntEnvOr("REDIS_TIMEOUT_MS", 2000, 1)),
          "timeout of each Redis call (env REDIS_TIMEOUT_MS)");
ABSL_FLAG(std::string, redis_user, EnvOr("REDIS_USERNAME", ""),
          "Redis ACL user to AUTH as; empty = the default user (env REDIS_USERNAME)");
ABSL_FLAG(std::string, redis_password_file, EnvOr("REDIS_PASSWORD_FILE", ""),
          "file holding the Redis password, read at each connect (env REDIS_PASSWORD_FILE); "
          "or the password itself in env REDIS_PASSWORD; neither = no AUTH");

namespace common::redis {
namespace {

absl::StatusOr<Credentials> CredentialsFromFlags() {
  Credentials credentials;
  credentials.username = absl::GetFlag(FLAGS_redis_user);
  credentials.password_file = absl::GetFlag(FLAGS_redis_password_file);
  credentials.password = EnvOr("REDIS_PASSWORD", "");
  if (!credentials.password_file.empty() && !credentials.password.empty()) {
    return absl::InvalidArgumentError(
        "redis credentials: set --redis_password_file (REDIS_PASSWORD_FILE) or REDIS_PASSWORD, "
        "not both");
  }
  if (!credentials.username.empty() && credentials.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redis credentials: --redis_user needs a password: set --redis_password_file "
        "(REDIS_PASSWORD_FILE) or REDIS_PASSWORD for user '",
        credentials.username, "'"));
  }
  // Read once now so an unreadable file is a startup error, not an outage.
  if (absl::StatusOr<std::string> password = ResolvePassword(credentials); !password.ok()) {
    return password.status();
  }
  return credentials;
}

}  // namespace

absl::StatusOr<Credentials> RedisCredentialsFromFlags() { return CredentialsFromFlags(); }

absl::StatusOr<PoolOptions> PoolOptionsFromFlags() {
  absl::StatusOr<Credentials> credentials = CredentialsFromFlags();
  if (!credentials.ok()) return credentials.status();
  absl::StatusOr<PoolOptions> options =
      PoolOptionsFor(absl::GetFlag(FLAGS_redis), *std::move(credentials));
  if (!options.ok()) return options.status();
  options->size = absl::GetFlag(FLAGS_redis_pool_size);
  options->timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_redis_timeout_ms));
  // The credentials are checked on the first seed that answers.
  absl::Status verified = VerifyCredentials(options->endpoint, options->timeout);
  for (size_t i = 0; absl::IsUnavailable(verified) && i < options->more_seeds.size(); ++i) {
    verified = VerifyCredentials(options->more_seeds[i], options->timeout);
  }
  if (absl::IsUnavailable(verified)) {
    common::log::Warning(absl::StrCat(verified.message(), "; connecting later"));
  } else if (!verified.ok()) {
    return verified;
  }
  return options;
}

}  // namespace common::redis
