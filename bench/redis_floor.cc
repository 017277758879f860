#include "bench/redis_floor.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "bench/bench_env.h"
#include "kudos/v1/kudos.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "common/check/check.h"
#include "common/redis/redis_client.h"
#include "lua/kBenchBeginLua.h"
#include "lua/kBenchFinishLua.h"
#include "services/kudos/kudos_store.h"
#include "services/ledger/ledger_store.h"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using Command = std::vector<std::string>;

std::string Person(int i) { return absl::StrFormat("p%05d", i); }

// Payloads of the sizes the services store (built from the real messages).
struct Blobs {
  std::string settings_pb, person_pb, policy_pb;
  std::string record_pb, transfers_pb, event_pb, ledger_header, transfer_body;
};

Blobs MakeBlobs(const std::string& org) {
  Blobs b;
  kudos::v1::OrgSettings settings;
  settings.set_time_zone("UTC");
  for (const char* v : {"on-time-delivery", "consistent-follow-up", "clear-communication",
                        "service-mindset", "goals-accomplished", "empathy", "teamwork"}) {
    auto* value = settings.add_values();
    value->set_value_id(v);
    value->set_display_name(v);
  }
  settings.mutable_allowance()->set_points_per_period(1000000000);
  settings.set_max_points(1000000);
  settings.set_min_points(1);
  settings.set_weekly_pair_cap_points(1000000000000);
  settings.set_max_kudos_per_minute(10000);
  b.settings_pb = settings.SerializeAsString();
  kudos::v1::Person person;
  person.set_person_id("p01234");
  person.set_display_name("Person 01234");
  person.set_team_id("team-012");
  person.set_active(true);
  b.person_pb = person.SerializeAsString();
  common::v1::AllowancePolicy policy;
  policy.set_points_per_period(1000000000);
  policy.set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  policy.set_time_zone("UTC");
  b.policy_pb = policy.SerializeAsString();

  kudos::v1::Kudos kudos;
  kudos.set_kudos_id("k0123456789abcdef01234567");
  kudos.set_giver_id("p01234");
  kudos.add_recipient_ids("p05678");
  kudos.set_message("Thanks for the on-time delivery and the clear follow-up!");
  kudos.add_values("on-time-delivery");
  kudos.set_points_per_recipient(3);
  kudos.mutable_create_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  kudos.mutable_create_time()->set_nanos(123456789);
  kudos.set_state(kudos::v1::KUDOS_STATE_PENDING);

  ledger::v1::Transfer transfer;
  transfer.set_transfer_id("k0123456789abcdef01234567:p05678");
  transfer.mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  transfer.mutable_debit_account()->set_person_id("p01234");
  transfer.mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  transfer.mutable_credit_account()->set_person_id("p05678");
  transfer.set_amount(3);
  transfer.set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  transfer.set_reference("k0123456789abcdef01234567");
  (*transfer.mutable_tags())["giver"] = "p01234";
  (*transfer.mutable_tags())["team"] = "team-056";
  (*transfer.mutable_tags())["values"] = "on-time-delivery";
  ledger::v1::PostTransfersRequest transfers;
  transfers.set_linked(true);
  *transfers.add_transfers() = transfer;
  b.transfers_pb = transfers.SerializeAsString();
  *transfer.mutable_post_time() = kudos.create_time();
  b.transfer_body = transfer.SerializeAsString();

  kudos::v1::KudosEvent event;
  event.set_org_id(org);
  *event.mutable_event_time() = kudos.create_time();
  auto* sent = event.mutable_kudos_sent();
  *sent->mutable_kudos() = kudos;
  sent->mutable_kudos()->set_state(kudos::v1::KUDOS_STATE_COMMITTED);
  sent->set_giver_team_id("team-012");
  (*sent->mutable_recipient_team_ids())["p05678"] = "team-056";
  b.event_pb = event.SerializeAsString();
  // The record is the KudosSent (kudos_workflow.cc), pending until finished.
  kudos::v1::KudosSent record = *sent;
  record.mutable_kudos()->set_state(kudos::v1::KUDOS_STATE_PENDING);
  b.record_pb = record.SerializeAsString();

  ledger::v1::LedgerEvent header;
  header.mutable_transfers_posted()->set_org_id(org);
  *header.mutable_transfers_posted()->mutable_post_time() = kudos.create_time();
  b.ledger_header = header.SerializeAsString();
  return b;
}

// The scripts as the services load them: the key guard in front of each.
struct Scripts {
  common::redis::Script begin{"begin_recognition", kBenchBeginLua};
  common::redis::Script finish{"finish_recognition", kBenchFinishLua};
  const common::redis::Script& post = ledger::LedgerStore::PostScript();
};

// EVALSHA of `script` with `keys` and `args`, as one command.
Command EvalSha(const common::redis::Script& script, const std::vector<std::string>& keys,
                const std::vector<std::string>& args) {
  Command command = {"EVALSHA", script.sha(), absl::StrCat(keys.size())};
  command.insert(command.end(), keys.begin(), keys.end());
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

}  // namespace

FloorBResult RunFloorB(const FloorBOptions& o) {
  const std::string kp = absl::StrCat("kudos:{", o.org, "}:");
  const std::string lp = absl::StrCat("ledger:{", o.org, "}:");
  Blobs blobs = MakeBlobs(o.org);
  const Scripts scripts;
  {
    Redis redis(o.host, o.port);
    for (const common::redis::Script* script : {&scripts.begin, &scripts.finish, &scripts.post}) {
      if (redis.Run({"SCRIPT", "LOAD", script->source()}).str != script->sha()) {
        throw std::runtime_error("floor b: SCRIPT LOAD of " + script->name() + " failed");
      }
    }
    std::vector<Command> setup = {{"SET", kp + "settings", blobs.settings_pb},
                                  {"SET", lp + "policy", blobs.policy_pb}};
    for (int i = 0; i < o.people; ++i) {
      setup.push_back({"HSET", kp + "person:" + Person(i), "pb", blobs.person_pb, "team",
                       absl::StrFormat("team-%03d", i % 100)});
      if (setup.size() >= 1000) {
        redis.Pipeline(setup);
        setup.clear();
      }
    }
    redis.Pipeline(setup);
  }

  const absl::Time now = absl::Now();
  // The kudos service's first reconcile attempt (--reconcile_after_ms, 5 s).
  const int64_t reconcile_at_ms = absl::ToUnixMillis(now) + 5000;
  const std::string minute_key = absl::StrCat(absl::ToUnixSeconds(now) / 60);
  const std::string week_key = absl::FormatTime("%G-W%V", now, absl::UTCTimeZone());
  const std::string month_key = absl::FormatTime("%Y-%m", now, absl::UTCTimeZone());
  // The org's idempotency window (retention policy default: 30 days).
  const int64_t idempotency_ttl_s = 30 * 86400;
  ledger::v1::Transfer transfer_template;
  if (!transfer_template.ParseFromString(blobs.transfer_body)) {
    throw std::runtime_error("floor b: transfer body does not parse");
  }

  std::atomic<int64_t> kudos_total{0}, errors_total{0};
  std::mutex mu;
  std::string first_error;
  std::vector<uint32_t> batch_us;
  int commands_per_kudos = 0;

  Clock::time_point t0 = Clock::now();
  Clock::time_point measure_from =
      t0 + std::chrono::microseconds(static_cast<int64_t>(o.warmup_s * 1e6));
  Clock::time_point end =
      measure_from + std::chrono::microseconds(static_cast<int64_t>(o.duration_s * 1e6));

  auto worker = [&](int thread_index) {
    Redis redis(o.host, o.port);
    std::mt19937_64 rng(thread_index * 7919 + 17);
    std::vector<uint32_t> local_batch_us;
    int64_t local_kudos = 0, local_errors = 0;
    std::string local_error;
    int64_t n = 0;
    while (Clock::now() < end) {
      // What the kudos service, then the ledger, send per kudos; finish needs
      // the seq begin answered, so it goes in a second round trip.
      constexpr size_t kCommandsBeforeFinish = 2, kBeginIndex = 0;
      std::vector<Command> batch;
      std::vector<kudos::BeginRecognition> begins;
      for (int k = 0; k < o.depth; ++k, ++n) {
        int gi = static_cast<int>(rng() % o.people);
        int ri = static_cast<int>(rng() % (o.people - 1));
        if (ri >= gi) ++ri;
        const std::string g = Person(gi), r = Person(ri);
        kudos::BeginRecognition b;
        b.actor = g;
        b.request_id = absl::StrCat("floor-", thread_index, "-", n);
        b.fingerprint = std::string(64, 'f');
        b.record_id = absl::StrFormat("k%02d%016x%08x", thread_index, n, rng() & 0xffffffff);
        b.record_pb = blobs.record_pb;
        b.now_ms = absl::ToUnixMillis(now);
        b.minute_key = minute_key;
        b.rate_limit = 10000;
        b.retry_after_seconds = 30;
        b.week_key = week_key;
        b.pair_cap = 1000000000000;
        b.points = 3;
        b.recipients = {r};
        b.transfers_pb = blobs.transfers_pb;
        b.event_pb = blobs.event_pb;
        b.feeds = {"feed:all", "feed:giver:" + g, "feed:recipient:" + r, "feed:team:team-012",
                   "feed:team:team-056", "feed:value:on-time-delivery"};
        b.reconcile_at_ms = reconcile_at_ms;
        b.idempotency_ttl_s = idempotency_ttl_s;
        // The kudos service validates against its directory cache (settings
        // and people read once per replica) and begin checks the directory's
        // version: "0" is what it passes while the org has no version key.
        b.directory_version = "0";
        batch.push_back(EvalSha(scripts.begin, kudos::KudosStore::BeginKeys(o.org, b),
                                kudos::KudosStore::BeginArgs(b)));
        std::vector<std::pair<int, ledger::v1::Transfer>> transfers(1, {0, transfer_template});
        ledger::v1::Transfer& transfer = transfers[0].second;
        transfer.set_transfer_id(b.record_id + ":" + r);
        transfer.mutable_debit_account()->set_person_id(g);
        transfer.mutable_credit_account()->set_person_id(r);
        transfer.set_reference(b.record_id);
        batch.push_back(EvalSha(
            // The ledger's allowance inputs come from its cache and post.lua
            // reads the org's allowance version and registers the org itself:
            // in a bench key, so the live leaderboard does not pick it up.
            scripts.post, ledger::LedgerStore::PostKeys(o.org, transfers, month_key, "bench:orgs"),
            ledger::LedgerStore::PostArgs(o.org, transfers, /*linked=*/true, now, month_key,
                                          1000000000)));
        begins.push_back(std::move(b));
        KUDOS_CHECK(batch.size() == begins.size() * kCommandsBeforeFinish, "begin is command 1 of 2");
      }
      Clock::time_point sent = Clock::now();
      std::vector<RedisReply> replies = redis.Pipeline(batch);
      std::vector<Command> finishes;
      for (size_t k = 0; k < begins.size(); ++k) {
        // begin's reply: {'NEW', id, fingerprint, seq}.
        const RedisReply& begun = replies[k * kCommandsBeforeFinish + kBeginIndex];
        const std::string seq = begun.elements.size() == 4 ? begun.elements[3].str : "";
        const kudos::FinishFields fields = kudos::KudosStore::FinishFieldsOf(begins[k], seq);
        finishes.push_back(EvalSha(
            scripts.finish,
            kudos::KudosStore::FinishKeys(o.org, kudos::RecordKind::kKudos, begins[k].record_id,
                                          fields),
            kudos::KudosStore::FinishArgs(kudos::RecordKind::kKudos, begins[k].record_id,
                                          /*commit=*/true, absl::OkStatus(), fields)));
      }
      if (thread_index == 0 && n == o.depth) {
        commands_per_kudos = static_cast<int>((batch.size() + finishes.size()) / begins.size());
      }
      std::vector<RedisReply> finished = redis.Pipeline(finishes);
      replies.insert(replies.end(), finished.begin(), finished.end());
      Clock::time_point done = Clock::now();
      if (done < measure_from || done > end) continue;
      local_kudos += o.depth;
      local_batch_us.push_back(static_cast<uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(done - sent).count()));
      for (const RedisReply& reply : replies) {
        if (reply.is_error()) {
          ++local_errors;
          if (local_error.empty()) local_error = reply.str;
        }
      }
    }
    kudos_total += local_kudos;
    errors_total += local_errors;
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.empty()) first_error = local_error;
    batch_us.insert(batch_us.end(), local_batch_us.begin(), local_batch_us.end());
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < o.connections; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();

  FloorBResult result;
  result.kudos = kudos_total.load();
  result.error_replies = errors_total.load();
  result.first_error = first_error;
  result.commands_per_kudos = commands_per_kudos;
  result.kudos_per_s = static_cast<double>(result.kudos) / o.duration_s;
  result.commands_per_s = result.kudos_per_s * commands_per_kudos;
  result.scripts_per_s = result.kudos_per_s * 3;
  Percentiles p = ComputePercentiles(std::move(batch_us));
  result.batch_p50_ms = p.p50_ms;
  result.batch_p99_ms = p.p99_ms;
  return result;
}

}  // namespace bench
