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
#include "lua/kBenchBeginLua.h"
#include "lua/kBenchFinishLua.h"
#include "lua/kBenchLedgerLibLua.h"
#include "lua/kBenchLedgerPostLua.h"
#include "services/ledger/ledger_rules.h"

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

struct Shas {
  std::string begin, post, finish;
};

}  // namespace

FloorBResult RunFloorB(const FloorBOptions& o) {
  const std::string kp = absl::StrCat("kudos:{", o.org, "}:");
  const std::string lp = absl::StrCat("ledger:{", o.org, "}:");
  Blobs blobs = MakeBlobs(o.org);
  Shas shas;
  {
    Redis redis(o.host, o.port);
    shas.begin = redis.Run({"SCRIPT", "LOAD", kBenchBeginLua}).str;
    shas.finish = redis.Run({"SCRIPT", "LOAD", kBenchFinishLua}).str;
    // The ledger's bounds prelude, as LedgerStore prepends it (ledger_store.cc).
    const std::string ledger_prelude =
        absl::StrCat("local MAX_BALANCE = ", ledger::kMaxBalance, "\nlocal MAX_PENDING = ",
                     ledger::kMaxPendingRedemptionsPerPerson, "\n");
    shas.post = redis
                    .Run({"SCRIPT", "LOAD",
                          ledger_prelude + kBenchLedgerLibLua + "\n" + kBenchLedgerPostLua})
                    .str;
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
  const std::string now_ms = absl::StrCat(absl::ToUnixMillis(now));
  // The kudos service's first reconcile attempt (--reconcile_after_ms, 5 s).
  const std::string reconcile_at_ms = absl::StrCat(absl::ToUnixMillis(now) + 5000);
  const std::string minute_key = absl::StrCat(absl::ToUnixSeconds(now) / 60);
  const std::string week_key = absl::FormatTime("%G-W%V", now, absl::UTCTimeZone());
  const std::string month_key = absl::FormatTime("%Y-%m", now, absl::UTCTimeZone());
  const std::string kudos_fp(64, 'f');
  const std::string transfer_fp(64, 'e');  // the ledger's SHA-256 hex of the transfer
  // The org's idempotency window (retention policy default: 30 days).
  const std::string idempotency_ttl_s = absl::StrCat(30 * 86400);

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
      std::vector<Command> batch;
      for (int k = 0; k < o.depth; ++k, ++n) {
        int gi = static_cast<int>(rng() % o.people);
        int ri = static_cast<int>(rng() % (o.people - 1));
        if (ri >= gi) ++ri;
        const std::string g = Person(gi), r = Person(ri);
        const std::string id = absl::StrFormat("k%02d%016x%08x", thread_index, n, rng() & 0xffffffff);
        const std::string request_id = absl::StrCat("floor-", thread_index, "-", n);
        const std::string feeds = absl::StrCat("feed:all,feed:giver:", g, ",feed:recipient:", r,
                                               ",feed:team:team-012,feed:team:team-056,"
                                               "feed:value:on-time-delivery");
        batch.push_back({"HGET", kp + "person:" + r, "pb"});
        batch.push_back({"HGET", kp + "person:" + g, "pb"});
        batch.push_back({"GET", kp + "settings"});
        batch.push_back({"EVALSHA", shas.begin, "1", kp, "kudos", g, request_id, kudos_fp, id,
                         blobs.record_pb, now_ms, minute_key, "10000", "30", week_key,
                         "1000000000000", "3", "", "1", r, blobs.transfers_pb, blobs.event_pb,
                         feeds, reconcile_at_ms, idempotency_ttl_s});
        batch.push_back({"SADD", "bench:orgs", o.org});
        batch.push_back({"GET", lp + "policy"});
        const std::string transfer_id = id + ":" + r;
        batch.push_back({"EVALSHA", shas.post, "1", lp, now_ms, blobs.ledger_header, month_key,
                         "1000000000", "34560000", "1", "0", transfer_id, transfer_fp,
                         "allowance:" + g, "earned:" + r, "3", blobs.transfer_body, "A", g});
        batch.push_back({"EVALSHA", shas.finish, "1", kp, "kudos", id, "COMMITTED", "0", ""});
        if (thread_index == 0 && n == 0) commands_per_kudos = static_cast<int>(batch.size());
      }
      Clock::time_point sent = Clock::now();
      std::vector<RedisReply> replies = redis.Pipeline(batch);
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
