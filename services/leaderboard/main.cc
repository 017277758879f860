// leaderboard_server: flags and wiring only.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/redis/async_client.h"
#include "common/redis/async_flags.h"
#include "common/redis/pool_flags.h"
#include "services/leaderboard/blocking_worker.h"
#include "services/leaderboard/consumer_health.h"
#include "services/leaderboard/insights_consumer.h"
#include "services/leaderboard/insights_service.h"
#include "services/leaderboard/insights_store.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_service.h"
#include "services/leaderboard/leaderboard_store.h"
#include "services/leaderboard/leaderboard_watch.h"
#include "services/leaderboard/seasons.h"

namespace {

std::string DefaultConsumerName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "leaderboard-1";
  return absl::StrCat("leaderboard-", host);
}
}  // namespace

ABSL_FLAG(std::string, listen, common::config::EnvOr("LISTEN", "127.0.0.1:50053"),
          "gRPC listen address (env LISTEN)");
ABSL_FLAG(std::string, consumer_name,
          common::config::EnvOr("LEADERBOARD_CONSUMER", DefaultConsumerName()),
          "consumer name in the streams' consumer group; stable per replica so a restarted "
          "replica resumes its own pending entries (env LEADERBOARD_CONSUMER)");
ABSL_FLAG(int, claim_min_idle_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_CLAIM_MIN_IDLE_MS", 30000, 1)),
          "pending entries idle this long at another consumer are claimed "
          "(env LEADERBOARD_CLAIM_MIN_IDLE_MS)");

ABSL_FLAG(int, consumer_max_attempts,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_CONSUMER_MAX_ATTEMPTS", 5, 1)),
          "failures of one entry before it goes to its org's dead-letter stream "
          "(env LEADERBOARD_CONSUMER_MAX_ATTEMPTS)");
ABSL_FLAG(int, consumer_max_backoff_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_CONSUMER_MAX_BACKOFF_MS", 5000, 100)),
          "longest wait before an org whose entries failed is retried "
          "(env LEADERBOARD_CONSUMER_MAX_BACKOFF_MS)");
ABSL_FLAG(int, consumer_stall_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_CONSUMER_STALL_MS", 30000, 100)),
          "health name kudos.leaderboard.v1.Consumer turns NOT_SERVING after this long with "
          "entries waiting and none applied (env LEADERBOARD_CONSUMER_STALL_MS)");
ABSL_FLAG(int, rebuild_min_interval_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_REBUILD_MIN_INTERVAL_MS", 60000, 0)),
          "one RebuildProjections per org per interval; 0 = unlimited "
          "(env LEADERBOARD_REBUILD_MIN_INTERVAL_MS)");

ABSL_FLAG(int, compact_interval_ms,
          static_cast<int>(common::config::IntEnvOr(
              "LEADERBOARD_COMPACT_INTERVAL_MS",
              leaderboard::Compactor::Options{}.interval.count(), 100)),
          "how often orgs are considered for compaction (snapshot + trimmed streams; env "
          "LEADERBOARD_COMPACT_INTERVAL_MS)");
ABSL_FLAG(int, compact_min_entries,
          static_cast<int>(common::config::IntEnvOr(
              "LEADERBOARD_COMPACT_MIN_ENTRIES", leaderboard::Compactor::Options{}.min_entries, 1)),
          "an org is compacted once its two streams hold this many entries (env "
          "LEADERBOARD_COMPACT_MIN_ENTRIES)");
ABSL_FLAG(int64_t, compact_min_bytes,
          common::config::IntEnvOr("LEADERBOARD_COMPACT_MIN_BYTES",
                                   leaderboard::Compactor::Options{}.min_bytes, 1),
          "an org is compacted once its two streams hold more bytes than this and than its "
          "snapshot, and entries the snapshot does not cover (env LEADERBOARD_COMPACT_MIN_BYTES)");

// Insights (issue 16): their own consumer group on kudos:{org}:events.
ABSL_FLAG(bool, insights_consumer,
          common::config::EnvOr("INSIGHTS_CONSUMER", "1") != "0",
          "run the insights consumer (group \"insights\"); off: the figures stop moving, the "
          "group keeps its place (env INSIGHTS_CONSUMER=0)");
ABSL_FLAG(int, insights_batch,
          static_cast<int>(common::config::IntEnvOr("INSIGHTS_BATCH", 200, 1)),
          "entries per insights apply script (env INSIGHTS_BATCH)");
ABSL_FLAG(int64_t, insights_max_pairs_per_period,
          common::config::IntEnvOr("INSIGHTS_MAX_PAIRS_PER_PERIOD", 200000, 1),
          "distinct giver->recipient pairs counted per org and written period (day, week, "
          "month; quarters and years sum their months); past it unique givers and reciprocity "
          "say pairs_truncated (env INSIGHTS_MAX_PAIRS_PER_PERIOD)");
ABSL_FLAG(int64_t, insights_unrecognized_limit,
          common::config::IntEnvOr("INSIGHTS_UNRECOGNIZED_LIMIT", 1000, 1),
          "most people ListUnrecognized lists over all pages, oldest first "
          "(env INSIGHTS_UNRECOGNIZED_LIMIT)");

// Issue 13: the RPCs on the callback API; bounds of what they may hold.
ABSL_FLAG(int, max_calls_in_flight,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_MAX_CALLS_IN_FLIGHT", 4096, 1)),
          "unary calls served at once by this replica; past it RESOURCE_EXHAUSTED "
          "(env LEADERBOARD_MAX_CALLS_IN_FLIGHT)");
ABSL_FLAG(int, rebuild_workers,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_REBUILD_WORKERS", 2, 1)),
          "RebuildProjections run at once on this replica (their own threads, off the gRPC "
          "callback threads; env LEADERBOARD_REBUILD_WORKERS)");
ABSL_FLAG(int, rebuild_queue,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_REBUILD_QUEUE", 8, 0)),
          "RebuildProjections waiting for a rebuild worker; past it RESOURCE_EXHAUSTED "
          "(env LEADERBOARD_REBUILD_QUEUE)");
ABSL_FLAG(int, insights_workers,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_INSIGHTS_WORKERS", 4, 1)),
          "threads serving GetInsights and ListUnrecognized (their reads use the blocking pool; "
          "env LEADERBOARD_INSIGHTS_WORKERS)");
ABSL_FLAG(int, insights_queue,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_INSIGHTS_QUEUE", 256, 0)),
          "insights calls waiting for a worker; past it RESOURCE_EXHAUSTED "
          "(env LEADERBOARD_INSIGHTS_QUEUE)");

// Issue 18: seasons and their prizes.
ABSL_FLAG(std::string, ledger, common::config::EnvOr("LEDGER_ADDR", "127.0.0.1:50051"),
          "ledger service host:port, where season prizes are posted (\"\" = none: prizes "
          "wait; env LEDGER_ADDR)");
ABSL_FLAG(int, ledger_timeout_ms,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_LEDGER_TIMEOUT_MS", 3000, 1)),
          "deadline of each call to the ledger (env LEADERBOARD_LEDGER_TIMEOUT_MS)");
ABSL_FLAG(int, max_seasons_per_org,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_MAX_SEASONS_PER_ORG", 20, 1)),
          "seasons an org keeps (closed ones leave 90 days after their end); past it "
          "CreateSeason is RESOURCE_EXHAUSTED (env LEADERBOARD_MAX_SEASONS_PER_ORG)");
ABSL_FLAG(int, max_season_members,
          static_cast<int>(common::config::IntEnvOr("LEADERBOARD_MAX_SEASON_MEMBERS", 1000, 1)),
          "member_ids of a season and people who join one, at most each "
          "(env LEADERBOARD_MAX_SEASON_MEMBERS)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<common::redis::PoolOptions> pool_options =
      common::redis::PoolOptionsFromFlags();
  if (!pool_options.ok()) {
    common::log::Error(pool_options.status().ToString());
    return 2;
  }
  common::redis::Pool pool(*pool_options);
  // The RPC handlers' reads: a few loop threads, pipelined (--redis_loops).
  absl::StatusOr<common::redis::AsyncClientOptions> async_options =
      common::redis::AsyncClientOptionsFromFlags();
  if (!async_options.ok()) {
    common::log::Error(async_options.status().ToString());
    return 2;
  }
  common::redis::AsyncClient async_redis(*async_options);

  leaderboard::Store store(pool, &async_redis);
  leaderboard::SeasonLimits season_limits;
  season_limits.max_seasons_per_org = std::max(1, absl::GetFlag(FLAGS_max_seasons_per_org));
  season_limits.max_members = std::max(1, absl::GetFlag(FLAGS_max_season_members));
  leaderboard::SeasonStore seasons(pool, season_limits);
  store.set_seasons(&seasons);
  common::auth::JwtConfig jwt = common::auth::JwtConfigFromEnvironment();
  leaderboard::RebuildOptions rebuild_options;
  rebuild_options.min_interval =
      std::chrono::milliseconds(std::max(0, absl::GetFlag(FLAGS_rebuild_min_interval_ms)));
  leaderboard::Projector projector(store, rebuild_options);
  leaderboard::Watchers watchers(store);
  watchers.Start();

  leaderboard::ConsumerOptions consumer_options;
  consumer_options.endpoint = pool_options->endpoint;
  consumer_options.consumer_name = absl::GetFlag(FLAGS_consumer_name);
  consumer_options.claim_min_idle = std::chrono::milliseconds(absl::GetFlag(FLAGS_claim_min_idle_ms));
  consumer_options.retries.max_attempts = std::max(1, absl::GetFlag(FLAGS_consumer_max_attempts));
  consumer_options.retries.max_backoff =
      std::chrono::milliseconds(std::max(1, absl::GetFlag(FLAGS_consumer_max_backoff_ms)));
  consumer_options.retries.min_backoff =
      std::min(consumer_options.retries.min_backoff, consumer_options.retries.max_backoff);
  leaderboard::SeasonCloser season_closer(
      store, seasons,
      leaderboard::MakeLedgerPrizePayer(
          absl::GetFlag(FLAGS_ledger), jwt.service_secret,
          absl::Milliseconds(std::max(1, absl::GetFlag(FLAGS_ledger_timeout_ms)))),
      consumer_options.events.top_n, consumer_options.events.max_len,
      consumer_options.events.close_grace);
  consumer_options.seasons = &season_closer;
  consumer_options.on_writes = [&watchers](const std::string& org, bool begin) {
    if (begin) {
      watchers.pages().BeginWrite(org);
    } else {
      watchers.pages().EndWrite(org);
    }
  };
  leaderboard::Consumer consumer(
      store, projector, consumer_options,
      [&watchers](const std::string& org, const std::vector<std::string>& touched) {
        watchers.Touched(org, touched);
      });
  consumer.Start();
  leaderboard::Compactor::Options compact_options;
  compact_options.interval =
      std::chrono::milliseconds(std::max(100, absl::GetFlag(FLAGS_compact_interval_ms)));
  compact_options.min_entries = std::max(1, absl::GetFlag(FLAGS_compact_min_entries));
  compact_options.min_bytes = std::max<int64_t>(1, absl::GetFlag(FLAGS_compact_min_bytes));
  leaderboard::Compactor compactor(store, projector, compact_options);
  compactor.Start();
  leaderboard::insights::InsightsStore insights_store(pool);
  leaderboard::insights::ConsumerOptions insights_options;
  insights_options.consumer_name = absl::GetFlag(FLAGS_consumer_name);
  insights_options.claim_min_idle = consumer_options.claim_min_idle;
  insights_options.max_backoff = consumer_options.retries.max_backoff;
  insights_options.min_backoff = std::min(insights_options.min_backoff, insights_options.max_backoff);
  insights_options.batch = std::max(1, absl::GetFlag(FLAGS_insights_batch));
  insights_options.pair_cap = std::max<int64_t>(1, absl::GetFlag(FLAGS_insights_max_pairs_per_period));
  leaderboard::insights::Consumer insights_consumer(store, insights_store, insights_options);
  if (absl::GetFlag(FLAGS_insights_consumer)) insights_consumer.Start();
  leaderboard::insights::Reader insights_reader(store, insights_store,
                                                absl::GetFlag(FLAGS_insights_unrecognized_limit));
  auto health = std::make_shared<leaderboard::HealthBoard>();
  leaderboard::InstallHealthService(health);
  leaderboard::ConsumerHealthMonitor consumer_health(
      health, [&consumer] { return consumer.SinceProgress(); },
      std::chrono::milliseconds(std::max(1, absl::GetFlag(FLAGS_consumer_stall_ms))));

  leaderboard::BlockingWorker rebuild_worker(absl::GetFlag(FLAGS_rebuild_workers),
                                             absl::GetFlag(FLAGS_rebuild_queue));
  leaderboard::BlockingWorker insights_worker(absl::GetFlag(FLAGS_insights_workers),
                                              absl::GetFlag(FLAGS_insights_queue));
  common::grpc_util::UnaryOptions unary_options;
  unary_options.service_name = "leaderboard";
  // Redis waits of a call: at most the client's deadline and the Redis timeout.
  unary_options.default_timeout = pool_options->timeout;
  unary_options.max_calls_in_flight = absl::GetFlag(FLAGS_max_calls_in_flight);
  leaderboard::LeaderboardServiceImpl service(
      common::auth::Guard(common::auth::Authenticator(jwt), common::ratelimit::OptionsFromFlags()),
      store, projector, watchers, insights_reader,
      leaderboard::ServiceWorkers{&rebuild_worker, &insights_worker}, unary_options, &seasons);
  common::grpc_util::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_listen);
  options.service_name = "leaderboard";
  options.services = {&service};
  options.on_shutdown = [&] {
    watchers.Shutdown();
    consumer_health.Stop();
    compactor.Stop();
    insights_consumer.Stop();
    consumer.Stop();
  };
  absl::Status status = common::grpc_util::RunServer(options);
  if (!status.ok()) {
    common::log::Error(std::string(status.message()));
    return 1;
  }
  return 0;
}
