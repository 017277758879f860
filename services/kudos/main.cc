// kudos_server: recognition (KudosService), the directory (DirectoryService)
// and the feedback from the people each team served (feedback.v1.FeedbackService,
// services/feedback: it needs the directory this service owns).
#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "common/auth/guard.h"
#include "common/config/env.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/redis/async_flags.h"
#include "common/redis/pool_flags.h"
#include "services/feedback/feedback_sampler.h"
#include "services/feedback/feedback_service.h"
#include "services/feedback/feedback_store.h"
#include "services/kudos/kudos_archive.h"
#include "services/kudos/kudos_service.h"
#include "services/kudos/social_service.h"

using common::config::EnvOr;
using common::config::IntEnvOr;

ABSL_FLAG(std::string, listen, EnvOr("LISTEN", "127.0.0.1:50052"), "gRPC address to serve on");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service host:port");
ABSL_FLAG(int, ledger_timeout_ms, 3000, "deadline of each call to the ledger");
ABSL_FLAG(int, reconcile_after_ms, 5000,
          "a kudos still PENDING this long after it began is finished by the reconciler");
ABSL_FLAG(int, reconcile_backoff_ms, static_cast<int>(IntEnvOr("RECONCILE_BACKOFF_MS", 2000, 1)),
          "wait after a record's first failed reconcile attempt; doubles with each attempt");
ABSL_FLAG(int, reconcile_max_backoff_ms,
          static_cast<int>(IntEnvOr("RECONCILE_MAX_BACKOFF_MS", 300000, 1)),
          "longest wait between two reconcile attempts of a record");
ABSL_FLAG(int, reconcile_max_attempts, static_cast<int>(IntEnvOr("RECONCILE_MAX_ATTEMPTS", 10, 1)),
          "failed attempts after which a record goes to kudos:{org}:deadletter");
ABSL_FLAG(int, reconcile_max_dead_letters,
          static_cast<int>(IntEnvOr("RECONCILE_MAX_DEAD_LETTERS", 10000, 1)),
          "entries kept in each org's kudos:{org}:deadletter stream (the oldest are trimmed)");
ABSL_FLAG(int, max_feed_streams, static_cast<int>(IntEnvOr("MAX_FEED_STREAMS", 1000, 1)),
          "open WatchFeed streams on this replica (callback streams: no handler thread each)");
ABSL_FLAG(int, archive_interval_s, static_cast<int>(IntEnvOr("ARCHIVE_INTERVAL_S", 3600, 0)),
          "seconds between retention sweeps of every org (kudos past kudos_live_days to the "
          "archive, audit past audit_days trimmed); 0 = off");
ABSL_FLAG(int, survey_interval_s, static_cast<int>(IntEnvOr("SURVEY_INTERVAL_S", 300, 0)),
          "seconds between feedback sweeps (each survey's invitations for its current period, "
          "created once across replicas); 0 = off");
ABSL_FLAG(bool, write_request_keys, false,
          "also write a request key per kudos (kudosreq:<giver>:<request_id>), as versions before "
          "record-keyed kudos did: on only while replicas of such a version still serve "
          "(a rolling upgrade, docs/retention-kudos.md); each key costs 136 B of Redis");
ABSL_FLAG(bool, write_record_keys, false,
          "write each committed kudos under its own key (kudos:<id>), as versions before the "
          "record buckets did, instead of its bucket: on only while replicas of such a version "
          "still serve (a rolling upgrade, docs/retention-kudos.md); each key costs about 80 B of "
          "Redis more");
ABSL_FLAG(bool, feedback_consumer, true,
          "record who each team served from kudos:{org}:events (consumer group 'feedback'); "
          "off only where another kudos replica consumes: once the group exists, the "
          "leaderboard's compaction never trims the stream past it, so if every replica is off "
          "the stream grows until one is on again (or the group is removed: XGROUP DESTROY)");
ABSL_FLAG(int, call_timeout_ms, static_cast<int>(IntEnvOr("CALL_TIMEOUT_MS", 5000, 1)),
          "longest a unary call's Redis and ledger calls may take together when the client's "
          "deadline is later (or unset); each ledger call is also bounded by --ledger_timeout_ms");
ABSL_FLAG(int, max_calls_in_flight, static_cast<int>(IntEnvOr("MAX_CALLS_IN_FLIGHT", 4096, 1)),
          "unary calls served at once by each service of this replica (KudosService and "
          "DirectoryService count their own; callback calls hold no thread, so the thread quota "
          "does not bound them); past it a call is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_feed_orgs, static_cast<int>(IntEnvOr("MAX_FEED_ORGS", 100, 1)),
          "orgs with live feed watchers on this replica (each holds one Redis connection)");

ABSL_FLAG(int, directory_cache_max_age_ms,
          static_cast<int>(IntEnvOr("DIRECTORY_CACHE_MAX_AGE_MS", 10000, 0)),
          "SendKudos validates against the org's settings and people cached by this replica for "
          "at most this long (exact: a directory write since is caught by the begin script's "
          "version check, services/kudos/directory_cache.h); 0 = read them for every kudos");
ABSL_FLAG(int, directory_cache_max_people,
          static_cast<int>(IntEnvOr("DIRECTORY_CACHE_MAX_PEOPLE", 200000, 0)),
          "people the directory cache keeps over all orgs");
ABSL_FLAG(int, directory_cache_max_orgs,
          static_cast<int>(IntEnvOr("DIRECTORY_CACHE_MAX_ORGS", 1000, 0)),
          "orgs the directory cache keeps");
ABSL_FLAG(int, directory_cache_warm_up_misses,
          static_cast<int>(IntEnvOr("DIRECTORY_CACHE_WARM_UP_MISSES", 32, 0)),
          "after this many directory cache misses of an org (per cache entry), its whole "
          "directory is read at once; 0 = never");
ABSL_FLAG(int, directory_cache_max_people_warmed,
          static_cast<int>(IntEnvOr("DIRECTORY_CACHE_MAX_PEOPLE_WARMED", 20000, 0)),
          "orgs with more people than this are never read whole into the directory cache");

ABSL_FLAG(int, max_comments_per_kudos,
          static_cast<int>(IntEnvOr("MAX_COMMENTS_PER_KUDOS", 200, 1)),
          "comments one kudos keeps; past it AddComment is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_reactions_per_kudos,
          static_cast<int>(IntEnvOr("MAX_REACTIONS_PER_KUDOS", 1000, 1)),
          "reactions (person, emoji) one kudos keeps; past it AddReaction is RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_open_reports_per_org,
          static_cast<int>(IntEnvOr("MAX_OPEN_REPORTS_PER_ORG", 1000, 1)),
          "open reports per org; past it ReportKudos is RESOURCE_EXHAUSTED until admins close some");
ABSL_FLAG(int, max_closed_reports_per_org,
          static_cast<int>(IntEnvOr("MAX_CLOSED_REPORTS_PER_ORG", 10000, 1)),
          "closed reports kept per org (the newest; none older than the org's audit_days)");

namespace {

kudos::SocialOptions SocialOptionsFromFlags() {
  kudos::SocialOptions options;
  options.limits.max_comments_per_kudos = std::max(1, absl::GetFlag(FLAGS_max_comments_per_kudos));
  options.limits.max_reactions_per_kudos =
      std::max(1, absl::GetFlag(FLAGS_max_reactions_per_kudos));
  options.limits.max_open_reports_per_org =
      std::max(1, absl::GetFlag(FLAGS_max_open_reports_per_org));
  options.limits.max_closed_reports_per_org =
      std::max(1, absl::GetFlag(FLAGS_max_closed_reports_per_org));
  return options;
}

kudos::ReconcilerOptions ReconcilerOptionsFromFlags() {
  kudos::ReconcilerOptions options;
  options.first_attempt_after = absl::Milliseconds(absl::GetFlag(FLAGS_reconcile_after_ms));
  options.backoff.first_ms = std::max(1, absl::GetFlag(FLAGS_reconcile_backoff_ms));
  options.backoff.max_ms =
      std::max<int64_t>(options.backoff.first_ms, absl::GetFlag(FLAGS_reconcile_max_backoff_ms));
  options.backoff.max_attempts = std::max(1, absl::GetFlag(FLAGS_reconcile_max_attempts));
  options.backoff.max_dead_letters = std::max(1, absl::GetFlag(FLAGS_reconcile_max_dead_letters));
  return options;
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
  common::redis::Pool pool(*pool_options);  // background work: reconciler, sweeps, feedback
  // The RPC handlers' Redis: a few event loops, every call pipelined.
  absl::StatusOr<common::redis::AsyncClientOptions> async_options =
      common::redis::AsyncClientOptionsFromFlags();
  if (!async_options.ok()) {
    common::log::Error(async_options.status().ToString());
    return 2;
  }
  common::redis::AsyncClient redis(*async_options);

  common::auth::JwtConfig jwt = common::auth::JwtConfigFromEnvironment();
  // Authentication and the general API rate limits (--rate_limit_* flags).
  common::auth::Guard auth(common::auth::Authenticator(jwt),
                           common::ratelimit::OptionsFromFlags());
  std::unique_ptr<kudos::LedgerClient> ledger = kudos::MakeGrpcLedgerClient(
      {absl::GetFlag(FLAGS_ledger), jwt.service_secret, absl::GetFlag(FLAGS_ledger_timeout_ms)});
  kudos::DirectoryCacheOptions directory_cache;
  directory_cache.max_age = absl::Milliseconds(std::max(0, absl::GetFlag(FLAGS_directory_cache_max_age_ms)));
  directory_cache.max_people =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_directory_cache_max_people)));
  directory_cache.max_orgs =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_directory_cache_max_orgs)));
  directory_cache.misses_before_warm_up =
      std::max(0, absl::GetFlag(FLAGS_directory_cache_warm_up_misses));
  directory_cache.max_people_warmed =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_directory_cache_max_people_warmed)));
  kudos::KudosStore store(pool, &redis, directory_cache);
  store.set_write_request_keys(absl::GetFlag(FLAGS_write_request_keys));
  store.set_write_record_keys(absl::GetFlag(FLAGS_write_record_keys));
  kudos::KudosWorkflow workflow(store, *ledger, ReconcilerOptionsFromFlags());
  kudos::FeedHubOptions feed_options;
  feed_options.redis = pool_options->endpoint;
  feed_options.pool = &pool;  // each org's reader on its slot's node (a cluster)
  feed_options.max_watchers = absl::GetFlag(FLAGS_max_feed_streams);
  feed_options.max_orgs = absl::GetFlag(FLAGS_max_feed_orgs);
  kudos::FeedHub feeds(feed_options);
  common::grpc_util::UnaryOptions call_options = kudos::KudosServiceImpl::KudosCallOptions();
  call_options.default_timeout = std::chrono::milliseconds(absl::GetFlag(FLAGS_call_timeout_ms));
  call_options.max_calls_in_flight = absl::GetFlag(FLAGS_max_calls_in_flight);
  kudos::KudosServiceImpl kudos_service(auth, store, workflow, feeds, call_options);
  kudos::DirectoryServiceImpl directory_service(auth, store, *ledger, call_options);
  // Comments, reactions, reports and retraction (issue 18), on the blocking pool.
  kudos::SocialStore social_store(pool);
  std::unique_ptr<kudos::SocialLedger> social_ledger = kudos::MakeGrpcSocialLedger(
      {absl::GetFlag(FLAGS_ledger), jwt.service_secret, absl::GetFlag(FLAGS_ledger_timeout_ms)});
  kudos::SocialServiceImpl social_service(auth, store, social_store, *social_ledger,
                                          SocialOptionsFromFlags());
  feedback::FeedbackStore feedback_store(pool);
  feedback::Directory feedback_directory(store);
  // The respondent tags' key: derived from the service secret, never in Redis.
  feedback::FeedbackServiceImpl feedback_service(auth, feedback_store, feedback_directory,
                                                 "feedback-respondents:" + jwt.service_secret);

  // The reconciler finishes kudos whose caller crashed or gave up mid-way.
  std::atomic<bool> stopping{false};
  std::thread reconciler([&] {
    while (!stopping.load()) {
      absl::StatusOr<int> finished = workflow.ReconcileOnce();
      if (finished.ok() && *finished > 0) {
        common::log::Info(absl::StrCat("reconciler finished ", *finished, " pending records"));
      }
      for (int i = 0; i < 10 && !stopping.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });

  // The retention sweep: bounded work per org per run; an org with more old
  // kudos than one run takes is swept again after a second, not an interval.
  kudos::Archiver archiver(pool, store);
  const int archive_interval_s = absl::GetFlag(FLAGS_archive_interval_s);
  std::thread sweeper([&] {
    if (archive_interval_s <= 0) return;
    while (!stopping.load()) {
      kudos::ArchiveStats stats =
          archiver.RunAllOrgs(absl::Now(), [&] { return stopping.load(); });
      if (stats.kudos_archived > 0 || stats.audit_entries_trimmed > 0) {
        common::log::Info(absl::StrCat("retention sweep: ", stats.kudos_archived, " kudos archived (",
                                       stats.bytes_written, " bytes), ", stats.audit_entries_trimmed,
                                       " audit entries trimmed"));
      }
      const int wait_s = stats.more ? 1 : archive_interval_s;
      for (int i = 0; i < wait_s * 10 && !stopping.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });

  // Feedback: who each team served (a consumer group on the kudos events)
  // and each survey period's invitations (the sweep).
  feedback::ServedConsumer served(feedback_store, store);
  std::thread feedback_consumer([&] {
    if (absl::GetFlag(FLAGS_feedback_consumer)) served.Run(stopping);
  });
  feedback::Sampler sampler(feedback_store, feedback_directory);
  const int survey_interval_s = absl::GetFlag(FLAGS_survey_interval_s);
  std::thread survey_sweeper([&] {
    if (survey_interval_s <= 0) return;
    while (!stopping.load()) {
      feedback::SweepStats stats = sampler.RunAllOrgs(absl::Now(), [&] { return stopping.load(); });
      if (stats.invitations > 0) {
        common::log::Info(absl::StrCat("feedback sweep: ", stats.invitations, " invitations for ",
                                       stats.surveys_swept, " survey periods"));
      }
      for (int i = 0; i < survey_interval_s * 10 && !stopping.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });

  common::grpc_util::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_listen);
  options.service_name = "kudos";
  options.services = {&kudos_service, &directory_service, &feedback_service, &social_service};
  options.on_shutdown = [&] {
    stopping.store(true);
    feeds.Shutdown();
  };
  absl::Status status = common::grpc_util::RunServer(options);
  stopping.store(true);
  reconciler.join();
  sweeper.join();
  feedback_consumer.join();
  survey_sweeper.join();
  if (!status.ok()) {
    common::log::Error(status.ToString());
    return 1;
  }
  return 0;
}
