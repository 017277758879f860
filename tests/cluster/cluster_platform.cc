#include "tests/cluster/cluster_platform.h"

#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/redis/cluster_slots.h"
#include "tests/harness/eventually.h"
#include "tests/harness/tokens.h"

namespace cluster_test {
namespace {

using namespace std::chrono_literals;
using harness::Context;
using harness::MintToken;
namespace kv1 = kudos::v1;
namespace lv1 = ledger::v1;
namespace bv1 = leaderboard::v1;

std::string Admin(const std::string& org) { return MintToken(org, "root", {"admin"}); }

std::string MakeTempDir() {
  char pattern[] = "/tmp/kudos-test-kudosctl-XXXXXX";
  char* dir = mkdtemp(pattern);
  if (dir == nullptr) throw std::runtime_error("mkdtemp failed");
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

template <typename ServiceApi>
std::unique_ptr<typename ServiceApi::Stub> StubFor(const harness::Service& service) {
  return ServiceApi::NewStub(
      grpc::CreateChannel(service.address(), grpc::InsecureChannelCredentials()));
}

// Every primary has its replica online (first sync done): before that a
// ledger WAIT 1 could only time out.
bool ReplicasOnline(harness::RedisCluster& cluster, int primaries) {
  return harness::Eventually(
      [&] {
        for (int node = 0; node < primaries; ++node) {
          absl::StatusOr<common::redis::Reply> info = cluster.Command(node, {"INFO", "replication"});
          if (!info.ok() || !absl::StrContains(info->str, "state=online")) return false;
        }
        return true;
      },
      std::chrono::seconds(60));
}

}  // namespace

std::string OrgOnPrimary(harness::RedisCluster& cluster, int primary, const std::string& prefix) {
  for (int i = 0; i < 10000; ++i) {
    std::string org = prefix + std::to_string(i);
    if (cluster.PrimaryOfSlot(common::redis::KeySlot(org)) == primary) return org;
  }
  throw std::runtime_error("no org name found for the primary");
}

const std::vector<std::string>& SeededPeople() {
  static const std::vector<std::string> kPeople = {"alice", "bob",  "carol", "dave",
                                                   "erin",  "frank", "gina"};
  return kPeople;
}

Platform::Platform(PlatformOptions options) : ctl_dir_(MakeTempDir()) {
  harness::RedisCluster::Options cluster_options;
  cluster_options.replicas_per_primary = options.replicas_per_primary;
  cluster_ = std::make_unique<harness::RedisCluster>(cluster_options);
  if (options.replicas_per_primary > 0 && !ReplicasOnline(*cluster_, 3)) {
    throw std::runtime_error("the replicas did not finish their first sync");
  }
  // Every node as a seed, as a deployment would give them.
  const std::string seeds = cluster_->seeds();
  ledger_service_ =
      std::make_unique<harness::Service>(LEDGER_BINARY, seeds, std::vector<std::string>{},
                                         options.ledger_env);
  kudos_service_ = std::make_unique<harness::Service>(
      KUDOS_BINARY, seeds,
      std::vector<std::string>{"--ledger=" + ledger_service_->address(),
                               "--ledger_timeout_ms=1500", "--reconcile_after_ms=1000",
                               "--reconcile_backoff_ms=200", "--reconcile_max_backoff_ms=1000",
                               "--reconcile_max_attempts=50", "--survey_interval_s=0"});
  board_service_ = std::make_unique<harness::Service>(
      LEADERBOARD_BINARY, seeds,
      std::vector<std::string>{"--consumer_name=cluster-0", "--rebuild_min_interval_ms=0"});
  auto kudos_channel =
      grpc::CreateChannel(kudos_service_->address(), grpc::InsecureChannelCredentials());
  kudos_stub_ = kv1::KudosService::NewStub(kudos_channel);
  directory_ = kv1::DirectoryService::NewStub(kudos_channel);
  ledger_stub_ = StubFor<lv1::LedgerService>(*ledger_service_);
  board_stub_ = StubFor<bv1::LeaderboardService>(*board_service_);
}

Platform::~Platform() {
  // Services before the cluster they talk to.
  board_service_.reset();
  kudos_service_.reset();
  ledger_service_.reset();
  cluster_.reset();
  std::string command = "rm -rf '" + ctl_dir_ + "'";
  if (std::system(command.c_str()) != 0) std::perror("rm");
}

CtlResult Platform::Kudosctl(const std::string& org, std::vector<std::string> args) {
  args.push_back("--org=" + org);
  args.push_back("--kudos=" + kudos_service_->address());
  args.push_back("--ledger=" + ledger_service_->address());
  args.push_back("--leaderboard=" + board_service_->address());
  const std::string output = ctl_dir_ + "/run-" + std::to_string(ctl_runs_++) + ".log";
  harness::Process ctl(KUDOSCTL_BINARY, args, {{"KUDOS_DEV_INSECURE_DEFAULTS", "1"}});
  ctl.set_output_file(output);
  ctl.Start();
  CtlResult result;
  result.exit_code = ctl.WaitForExit(30s).value_or(-1);
  result.output = ReadFile(output);
  return result;
}

void RaiseLimits(Platform& platform, const std::string& org) {
  kv1::GetOrgSettingsResponse current;
  grpc::Status got = platform.directory().GetOrgSettings(Context(Admin(org)).get(), {}, &current);
  if (!got.ok()) throw std::runtime_error("GetOrgSettings: " + got.error_message());
  kv1::UpdateOrgSettingsRequest update;
  *update.mutable_settings() = current.settings();
  update.mutable_settings()->mutable_allowance()->set_points_per_period(1000000000);
  update.mutable_settings()->mutable_allowance()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  update.mutable_settings()->set_min_points(1);
  update.mutable_settings()->set_max_points(1000);
  update.mutable_settings()->set_weekly_pair_cap_points(1000000000);
  update.mutable_settings()->set_max_kudos_per_minute(10000);
  kv1::UpdateOrgSettingsResponse updated;
  grpc::Status status =
      platform.directory().UpdateOrgSettings(Context(Admin(org)).get(), update, &updated);
  if (!status.ok()) throw std::runtime_error("UpdateOrgSettings: " + status.error_message());
}

namespace {

kv1::SendKudosRequest LoadRequest(const std::string& request_id, int thread, int i) {
  const std::vector<std::string>& people = SeededPeople();
  const int n = static_cast<int>(people.size());
  kv1::SendKudosRequest request;
  request.set_request_id(request_id);
  // Never the giver (people[thread]): one of the other n-1, rotating.
  const int recipient = (thread + 1 + i % (n - 1)) % n;
  request.add_recipient_ids(people[recipient]);
  request.set_message("Thanks for the follow-up, " + request_id);
  request.add_values("teamwork");
  request.set_points_per_recipient(1 + i % 5);
  return request;
}

struct ThreadOutcome {
  std::vector<kv1::Kudos> acknowledged;
  std::vector<std::string> unacknowledged;
  std::vector<Attempt> attempts;
  int retries = 0;
};

// One request until acknowledged or its budget is spent; backs off between tries.
void SendUntilAcknowledged(Platform& platform, const LoadOptions& options, int thread, int i,
                           std::atomic<int>* answered, ThreadOutcome* out) {
  const std::string giver = SeededPeople()[thread];
  const std::string request_id = absl::StrCat(options.tag, "-", thread, "-", i);
  const kv1::SendKudosRequest request = LoadRequest(request_id, thread, i);
  const auto give_up = std::chrono::steady_clock::now() + options.per_request_budget;
  auto backoff = 20ms;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    Attempt seen;
    seen.start = std::chrono::steady_clock::now();
    kv1::SendKudosResponse response;
    grpc::Status status = platform.kudos().SendKudos(
        Context(MintToken(options.org, giver), 5s).get(), request, &response);
    seen.end = std::chrono::steady_clock::now();
    seen.ok = status.ok();
    out->attempts.push_back(seen);
    answered->fetch_add(1);
    if (status.ok()) {
      out->acknowledged.push_back(response.kudos());
      return;
    }
    if (seen.end >= give_up) break;
    ++out->retries;
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 500ms);
  }
  out->unacknowledged.push_back(request_id);
}

}  // namespace

LoadResult RunLoad(Platform& platform, const LoadOptions& options, std::atomic<int>* answered) {
  if (options.threads < 1 || options.threads >= static_cast<int>(SeededPeople().size())) {
    throw std::invalid_argument("load threads: 1..people-1");
  }
  std::vector<ThreadOutcome> outcomes(options.threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < options.threads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < options.per_thread; ++i) {
        SendUntilAcknowledged(platform, options, t, i, answered, &outcomes[t]);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  LoadResult result;
  result.sent = options.threads * options.per_thread;
  for (ThreadOutcome& outcome : outcomes) {
    result.acknowledged.insert(result.acknowledged.end(), outcome.acknowledged.begin(),
                               outcome.acknowledged.end());
    result.unacknowledged.insert(result.unacknowledged.end(), outcome.unacknowledged.begin(),
                                 outcome.unacknowledged.end());
    result.attempts.insert(result.attempts.end(), outcome.attempts.begin(),
                           outcome.attempts.end());
    result.retries += outcome.retries;
  }
  return result;
}

int64_t UnavailabilityWindowMs(const std::vector<Attempt>& attempts) {
  std::optional<std::chrono::steady_clock::time_point> first_failure;
  for (const Attempt& a : attempts) {
    if (!a.ok && (!first_failure || a.end < *first_failure)) first_failure = a.end;
  }
  if (!first_failure) return 0;
  std::optional<std::chrono::steady_clock::time_point> recovered;
  for (const Attempt& a : attempts) {
    if (a.ok && a.start >= *first_failure && (!recovered || a.end < *recovered)) {
      recovered = a.end;
    }
  }
  if (!recovered) return -1;  // never recovered within the load
  return std::chrono::duration_cast<std::chrono::milliseconds>(*recovered - *first_failure)
      .count();
}

namespace {

// Every EARNED transfer of `person`, by its reference (the kudos id).
std::multiset<std::string> EarnedReferences(Platform& platform, const std::string& org,
                                            const std::string& person, bool* ok) {
  std::multiset<std::string> references;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    lv1::ListTransfersRequest request;
    request.mutable_account()->set_type(lv1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    request.set_page_size(500);
    request.set_page_token(token);
    lv1::ListTransfersResponse response;
    grpc::Status status =
        platform.ledger().ListTransfers(Context(Admin(org), 10s).get(), request, &response);
    if (!status.ok()) {
      *ok = false;
      return references;
    }
    for (const lv1::Transfer& t : response.transfers()) references.insert(t.reference());
    token = response.next_page_token();
    if (token.empty()) break;
  }
  return references;
}

std::multiset<std::string> FeedIds(Platform& platform, const std::string& org, bool* ok) {
  std::multiset<std::string> ids;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    kv1::ListKudosRequest request;
    request.set_page_size(100);
    request.set_page_token(token);
    kv1::ListKudosResponse response;
    grpc::Status status =
        platform.kudos().ListKudos(Context(Admin(org), 10s).get(), request, &response);
    if (!status.ok()) {
      *ok = false;
      return ids;
    }
    for (const kv1::Kudos& k : response.kudos()) ids.insert(k.kudos_id());
    token = response.next_page_token();
    if (token.empty()) break;
  }
  return ids;
}

// Adds to `audit` what `got` holds against `want` (both: kudos ids).
void Compare(const std::string& where, const std::multiset<std::string>& want,
             const std::multiset<std::string>& got, std::set<std::string>* lost,
             std::set<std::string>* duplicated, Audit* audit) {
  for (const std::string& id : want) {
    if (got.count(id) < want.count(id) && lost->insert(id).second) {
      audit->details.push_back(where + ": acknowledged " + id + " missing");
    }
  }
  for (const std::string& id : got) {
    if (got.count(id) > want.count(id) && duplicated->insert(id).second) {
      audit->details.push_back(where + ": " + id + " counted " + std::to_string(got.count(id)) +
                               " times, acknowledged " + std::to_string(want.count(id)));
    }
  }
}

}  // namespace

Audit AuditLedgerAndFeed(Platform& platform, const std::string& org,
                         const std::vector<kv1::Kudos>& acknowledged) {
  Audit audit;
  std::set<std::string> lost, duplicated;
  std::map<std::string, std::multiset<std::string>> want_by_person;
  std::multiset<std::string> want_feed;
  for (const kv1::Kudos& k : acknowledged) {
    want_feed.insert(k.kudos_id());
    for (const std::string& r : k.recipient_ids()) want_by_person[r].insert(k.kudos_id());
  }
  bool ok = true;
  for (const std::string& person : SeededPeople()) {
    std::multiset<std::string> got = EarnedReferences(platform, org, person, &ok);
    Compare("ledger " + person, want_by_person[person], got, &lost, &duplicated, &audit);
  }
  Compare("feed", want_feed, FeedIds(platform, org, &ok), &lost, &duplicated, &audit);
  if (!ok) audit.details.push_back("a ListTransfers or ListKudos read failed");
  audit.lost = static_cast<int>(lost.size());
  audit.duplicated = static_cast<int>(duplicated.size());
  return audit;
}

Boards ExpectedBoards(const std::vector<kv1::Kudos>& acknowledged) {
  Boards boards = {{"points", {}}, {"received", {}}, {"given", {}}};
  for (const kv1::Kudos& k : acknowledged) {
    boards["given"][k.giver_id()] += 1;
    for (const std::string& r : k.recipient_ids()) {
      boards["points"][r] += k.points_per_recipient();
      boards["received"][r] += 1;
    }
  }
  return boards;
}

bool ReadBoards(Platform& platform, const std::string& org, Boards* out) {
  const std::pair<const char*, bv1::Metric> kMetrics[] = {
      {"points", bv1::METRIC_POINTS_RECEIVED},
      {"received", bv1::METRIC_KUDOS_RECEIVED},
      {"given", bv1::METRIC_KUDOS_GIVEN}};
  Boards boards;
  for (const auto& [name, metric] : kMetrics) {
    bv1::GetLeaderboardRequest request;
    request.mutable_board()->set_metric(metric);
    request.mutable_board()->set_window(bv1::WINDOW_ALL_TIME);
    request.mutable_board()->set_scope(bv1::SCOPE_ORG);
    request.set_page_size(100);
    bv1::GetLeaderboardResponse response;
    grpc::Status status =
        platform.leaderboard().GetLeaderboard(Context(Admin(org)).get(), request, &response);
    if (!status.ok()) return false;
    auto& board = boards[name];
    for (const auto& entry : response.entries()) board[entry.subject_id()] = entry.score();
  }
  *out = std::move(boards);
  return true;
}

std::string Show(const Boards& boards) {
  std::string out;
  for (const auto& [name, board] : boards) {
    out += "  " + name + " {";
    for (const auto& [subject, score] : board) out += subject + ":" + std::to_string(score) + " ";
    out += "}\n";
  }
  return out;
}

void PrintFigures(const std::string& name, const LoadResult& load, const Audit& audit,
                  int64_t window_ms) {
  std::cout << "CLUSTER-FIGURES " << name << " sent=" << load.sent
            << " acknowledged=" << load.acknowledged.size() << " lost=" << audit.lost
            << " duplicated=" << audit.duplicated << " window_ms=" << window_ms
            << " retries=" << load.retries << std::endl;
}

}  // namespace cluster_test
