// The flags every service reads its Redis connection from (each default
// from the environment): --redis (REDIS_ADDR: host:port, or a comma-separated
// list of a cluster's seed nodes), --redis_pool_size (REDIS_POOL_SIZE,
// connections per node), --redis_timeout_ms (REDIS_TIMEOUT_MS), and the
// credentials: --redis_user (REDIS_USERNAME), --redis_password_file
// (REDIS_PASSWORD_FILE) or the password itself in REDIS_PASSWORD (an
// environment variable only: a flag would show in `ps`). No credentials:
// no AUTH (a local development Redis). Defined in pool_flags.cc, linked only
// into binaries that call PoolOptionsFromFlags.
#pragma once

#include "absl/status/statusor.h"
#include "common/redis/redis_client.h"

namespace common::redis {

// The pool's options, with the credentials checked against Redis once, so a
// missing or wrong secret is a startup error naming what to set instead of
// every call failing later (on the first seed that answers).
// INVALID_ARGUMENT when --redis is not host:port[,host:port...],
// --redis_user has no password, or both a password file and REDIS_PASSWORD
// are set; FAILED_PRECONDITION when the password file cannot be read;
// UNAUTHENTICATED when Redis refuses the credentials or requires some. An
// unreachable Redis is not an error (logged; connections are retried).
absl::StatusOr<PoolOptions> PoolOptionsFromFlags();

// The credentials of --redis_user / --redis_password_file / REDIS_PASSWORD,
// checked as PoolOptionsFromFlags checks them (the file read once now), not
// yet against Redis. Shared with AsyncClientOptionsFromFlags (async_flags.h).
absl::StatusOr<Credentials> RedisCredentialsFromFlags();

}  // namespace common::redis
