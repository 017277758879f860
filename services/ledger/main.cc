// ledger_server: the points ledger (LedgerService) and the rewards catalog
// (RewardsService, issue 18). Flags and wiring only.
#include <functional>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/redis/async_flags.h"
#include "common/redis/pool_flags.h"
#include "services/ledger/ledger_archive.h"
#include "services/ledger/ledger_service.h"
#include "services/ledger/ledger_store.h"
#include "services/ledger/rewards_service.h"
#include "services/ledger/rewards_store.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50051"), "gRPC address to serve on");
ABSL_FLAG(int64_t, archive_interval_s, IntEnvOr("ARCHIVE_INTERVAL_S", 3600),
          "seconds between archive rounds over every org (transfers older than the org's "
          "transfers_live_days fold into its checkpoint); 0 = off");
ABSL_FLAG(int64_t, max_calls_in_flight, IntEnvOr("LEDGER_MAX_CALLS_IN_FLIGHT", 4096),
          "unary calls served at once by this replica; past it RESOURCE_EXHAUSTED "
          "(env LEDGER_MAX_CALLS_IN_FLIGHT)");
ABSL_FLAG(int64_t, archive_max_transfers_per_run, IntEnvOr("ARCHIVE_MAX_TRANSFERS_PER_RUN", 5000),
          "transfers one archive run folds per org (the rest waits for the next round)");
ABSL_FLAG(bool, write_transfer_keys, false,
          "write each new transfer under its own key (tx:<id>), as versions before the transfer "
          "buckets did, instead of its bucket: on only while replicas of such a version still "
          "serve (a rolling upgrade, docs/retention-ledger.md); each key costs about 100 B of Redis "
          "more");

namespace {

// Every replica runs the rounds; the per-org lock and the checkpoint's
// compare-and-set make concurrent rounds safe.
void ArchiveLoop(common::redis::Pool& pool, absl::Duration interval, int64_t per_run,
                 absl::Notification& stop) {
  ledger::ArchiveOptions options;
  options.max_transfers_per_run = static_cast<int>(per_run);
  ledger::Archiver archiver(pool, options);
  while (!stop.WaitForNotificationWithTimeout(interval)) {
    ledger::RoundStats round =
        archiver.RunRound(absl::Now(), [&] { return stop.HasBeenNotified(); });
    if (round.archived > 0 || round.failed > 0) {
      common::log::Info(absl::StrCat("archive round: ", round.orgs, " orgs, ", round.archived,
                                     " transfers archived, ", round.failed, " orgs failed"));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<common::redis::PoolOptions> pool_options =
      common::redis::PoolOptionsFromFlags();
  if (!pool_options.ok()) {
    common::log::Error(pool_options.status().ToString());
    return 2;
  }
  // The archiver (a background sweep, not an RPC) keeps the blocking pool.
  common::redis::Pool pool(*pool_options);
  // Every RPC: the asynchronous client (--redis_loops loop threads, the same
  // --redis and AUTH flags), outliving the server below.
  absl::StatusOr<common::redis::AsyncClientOptions> async_options =
      common::redis::AsyncClientOptionsFromFlags();
  if (!async_options.ok()) {
    common::log::Error(async_options.status().ToString());
    return 2;
  }
  common::redis::AsyncClient redis(*async_options);
  int64_t max_calls_in_flight = absl::GetFlag(FLAGS_max_calls_in_flight);
  if (max_calls_in_flight < 1 || max_calls_in_flight > 1000000) {
    common::log::Error("--max_calls_in_flight must be 1..1000000");
    return 2;
  }

  common::auth::Authenticator auth(common::auth::JwtConfigFromEnvironment());
  // --redis_wait_replicas / --redis_wait_timeout_ms: WAIT after each write script (ledger_store.h).
  absl::StatusOr<ledger::WriteConcern> write_concern = ledger::WriteConcernFromFlags();
  if (!write_concern.ok()) {
    common::log::Error(write_concern.status().ToString());
    return 2;
  }
  ledger::LedgerStore store(redis, *write_concern, absl::GetFlag(FLAGS_write_transfer_keys));
  ledger::LedgerServiceOptions service_options;
  // A call's Redis deadline when the client's is later: --redis_timeout_ms.
  service_options.call_timeout = pool_options->timeout;
  service_options.max_calls_in_flight = static_cast<int>(max_calls_in_flight);
  // Rate limits: --rate_limit_* flags (common/ratelimit/rate_limit.h).
  ledger::LedgerServiceImpl service(
      common::auth::Guard(auth, common::ratelimit::OptionsFromFlags()), store, service_options);
  // The rewards catalog (issue 18): same Redis client, limits, bounds and
  // write concern (its write scripts go through the ledger store).
  ledger::RewardsStore rewards_store(redis, store);
  ledger::RewardsServiceOptions rewards_options;
  rewards_options.call_timeout = pool_options->timeout;
  rewards_options.max_calls_in_flight = static_cast<int>(max_calls_in_flight);
  ledger::RewardsServiceImpl rewards(
      common::auth::Guard(auth, common::ratelimit::OptionsFromFlags()), rewards_store,
      rewards_options);

  common::grpc_util::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_listen);
  options.service_name = "ledger";
  options.services = {&service, &rewards};
  // The largest valid PostTransfers (100 transfers with 16 tags of 256-byte
  // keys and values each) is about 1 MB; leave room so a valid request is
  // never refused by the transport with RESOURCE_EXHAUSTED, which callers
  // would mistake for an allowance refusal.
  options.max_receive_message_bytes = 2 * 1024 * 1024;
  int64_t archive_interval_s = absl::GetFlag(FLAGS_archive_interval_s);
  int64_t archive_per_run = absl::GetFlag(FLAGS_archive_max_transfers_per_run);
  if (archive_interval_s < 0 || archive_per_run < 1 || archive_per_run > 1000000) {
    common::log::Error(
        "--archive_interval_s must be >= 0 and --archive_max_transfers_per_run 1..1000000");
    return 2;
  }
  absl::Notification stop_archive;
  std::thread archive_thread;
  if (archive_interval_s > 0) {
    archive_thread = std::thread(ArchiveLoop, std::ref(pool), absl::Seconds(archive_interval_s),
                                 archive_per_run, std::ref(stop_archive));
  }
  absl::Status status = common::grpc_util::RunServer(options);
  stop_archive.Notify();
  if (archive_thread.joinable()) archive_thread.join();
  if (!status.ok()) {
    common::log::Error(status.ToString());
    return 1;
  }
  return 0;
}
