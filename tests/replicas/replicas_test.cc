// Two replicas of every service against ONE redis-server (issue 14, item 4):
// two kudos, two ledger and two leaderboard processes, real binaries over
// real gRPC. Each kudos replica calls its own ledger replica; each
// leaderboard replica is its own consumer in the streams' consumer groups.
// Every test drives a bounded SendKudos load through both kudos replicas and
// checks what the replicas share: nothing applied twice, nothing lost,
// boards equal to a rebuild of the same events, balances equal to the
// acknowledged kudos, VerifyLedger clean.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/types/optional.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/ledger/ledger_keys.h"
#include "services/ledger/ledger_rules.h"
#include "tests/harness/eventually.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/ledger/stored_transfer.h"

namespace {

using namespace std::chrono_literals;
using harness::Context;
using harness::Eventually;
using harness::MintToken;
namespace kv1 = kudos::v1;
namespace lv1 = ledger::v1;
namespace bv1 = leaderboard::v1;

constexpr char kOrg[] = "rep";
constexpr int kPeople = 10;  // p0..p9; p0..p4 in team eng, p5..p9 in ops
const char* const kValues[] = {"teamwork", "empathy"};

std::string Person(int i) { return "p" + std::to_string(i); }
std::string TeamOf(const std::string& person) {
  return std::stoi(person.substr(1)) < kPeople / 2 ? "eng" : "ops";
}

// A kudos the platform acknowledged (SendKudos OK), or found committed.
struct Acked {
  std::string kudos_id;
  std::string giver;
  std::vector<std::string> recipients;
  int64_t points = 0;
  std::vector<std::string> values;
};

// A request whose answer was not OK and that the client did not retry.
struct Unknown {
  std::string request_id;
  std::string giver;
  grpc::StatusCode code;
};

// The pid of a child of this test process listening on `port` (the harness
// keeps its children's pids private; SIGSTOP/SIGCONT need one).
pid_t ChildListeningOn(int port) {
  const std::string wanted = "--listen=127.0.0.1:" + std::to_string(port);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* entry = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != getpid()) continue;
    std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
    std::string arg;
    while (std::getline(cmdline, arg, '\0')) {
      if (arg == wanted) found = pid;
    }
    if (found > 0) break;
  }
  closedir(proc);
  return found;
}

using Board = std::map<std::string, int64_t>;  // subject -> score

bv1::Board MakeBoard(bv1::Metric metric, bv1::Scope scope, const std::string& scope_id = "") {
  bv1::Board board;
  board.set_metric(metric);
  board.set_window(bv1::WINDOW_ALL_TIME);
  board.set_scope(scope);
  board.set_scope_id(scope_id);
  return board;
}

// Every board the tests compare, by a readable name.
std::vector<std::pair<std::string, bv1::Board>> Boards() {
  std::vector<std::pair<std::string, bv1::Board>> boards = {
      {"points/org", MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_ORG)},
      {"received/org", MakeBoard(bv1::METRIC_KUDOS_RECEIVED, bv1::SCOPE_ORG)},
      {"given/org", MakeBoard(bv1::METRIC_KUDOS_GIVEN, bv1::SCOPE_ORG)},
      {"points/teams", MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_TEAMS)},
      {"points/team:eng", MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_TEAM, "eng")},
      {"points/team:ops", MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_TEAM, "ops")},
  };
  for (const char* value : kValues) {
    boards.push_back({std::string("points/value:") + value,
                      MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_VALUE, value)});
  }
  return boards;
}

using Boardset = std::map<std::string, Board>;

// The boards the acknowledged kudos make, computed directly.
Boardset Expected(const std::vector<Acked>& acked) {
  Boardset out;
  for (const auto& [name, board] : Boards()) out[name];  // every board, even empty
  for (const Acked& k : acked) {
    out["given/org"][k.giver] += 1;
    for (const std::string& r : k.recipients) {
      out["points/org"][r] += k.points;
      out["received/org"][r] += 1;
      out["points/teams"][TeamOf(r)] += k.points;
      out["points/team:" + TeamOf(r)][r] += k.points;
      for (const std::string& v : k.values) out["points/value:" + v][r] += k.points;
    }
  }
  return out;
}

std::string Show(const Board& board) {
  std::string out = "{";
  for (const auto& [subject, score] : board) out += subject + ":" + std::to_string(score) + " ";
  return out + "}";
}

std::string Show(const Boardset& boards) {
  std::string out;
  for (const auto& [name, board] : boards) out += "  " + name + " " + Show(board) + "\n";
  return out;
}

// A WatchLeaderboard stream on one replica, read by its own thread.
class Watcher {
 public:
  Watcher(bv1::LeaderboardService::Stub* stub, const std::string& token, const bv1::Board& board) {
    context_.AddMetadata("authorization", "Bearer " + token);
    context_.set_deadline(std::chrono::system_clock::now() + 120s);
    bv1::WatchLeaderboardRequest request;
    *request.mutable_board() = board;
    request.set_top_n(50);
    reader_ = stub->WatchLeaderboard(&context_, request);
    thread_ = std::thread([this] {
      bv1::WatchLeaderboardResponse response;
      while (reader_->Read(&response)) {
        Board board;
        for (const auto& e : response.entries()) board[e.subject_id()] = e.score();
        std::lock_guard<std::mutex> lock(mu_);
        // All-time points only grow: a score going down is an update seen
        // out of order or a double count undone.
        for (const auto& [subject, score] : latest_) {
          auto it = board.find(subject);
          if (it == board.end() || it->second < score) {
            regressions_.push_back(Show(latest_) + " -> " + Show(board));
            break;
          }
        }
        latest_ = std::move(board);
        ++messages_;
      }
    });
  }
  ~Watcher() { Stop(); }

  grpc::Status Stop() {
    if (thread_.joinable()) {
      context_.TryCancel();
      thread_.join();
      status_ = reader_->Finish();
    }
    return status_;
  }
  Board latest() {
    std::lock_guard<std::mutex> lock(mu_);
    return latest_;
  }
  int messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  std::vector<std::string> regressions() {
    std::lock_guard<std::mutex> lock(mu_);
    return regressions_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<bv1::WatchLeaderboardResponse>> reader_;
  std::thread thread_;
  std::mutex mu_;
  Board latest_;
  int messages_ = 0;
  std::vector<std::string> regressions_;
  grpc::Status status_;
};

struct Options {
  int ledger_archive_interval_s = 0;
  int kudos_archive_interval_s = 0;
};

// How a load treats a failed SendKudos.
struct LoadPolicy {
  std::string tag;
  int threads = 4;
  int per_thread = 75;
  // Retry a failed call on the other replica with the same request id.
  bool retry_failures = true;
  // Every n-th acknowledged kudos is sent again on the other replica with
  // the same request id (a client that lost the answer): same kudos back.
  int resend_every = 5;
};

struct LoadResult {
  std::vector<Acked> acked;
  std::vector<Unknown> unknown;
  std::vector<std::string> resend_mismatches;
  int retries = 0;
};

class ReplicaTest : public ::testing::Test {
 protected:
  void Start(Options options = {}) {
    redis_ = std::make_unique<harness::RedisServer>();
    for (int i = 0; i < 2; ++i) {
      ledgers_[i] = std::make_unique<harness::Service>(
          LEDGER_BINARY, redis_->address(),
          std::vector<std::string>{"--archive_interval_s=" +
                                   std::to_string(options.ledger_archive_interval_s)});
    }
    for (int i = 0; i < 2; ++i) {
      kudos_[i] = std::make_unique<harness::Service>(
          KUDOS_BINARY, redis_->address(),
          std::vector<std::string>{
              "--ledger=" + ledgers_[i]->address(), "--ledger_timeout_ms=1500",
              "--reconcile_after_ms=1000", "--reconcile_backoff_ms=200",
              "--reconcile_max_backoff_ms=1000", "--reconcile_max_attempts=50",
              "--archive_interval_s=" + std::to_string(options.kudos_archive_interval_s),
              "--survey_interval_s=0"});
    }
    for (int i = 0; i < 2; ++i) {
      boards_[i] = std::make_unique<harness::Service>(
          LEADERBOARD_BINARY, redis_->address(),
          std::vector<std::string>{"--consumer_name=replica-" + std::to_string(i),
                                   "--claim_min_idle_ms=2000", "--rebuild_min_interval_ms=0"});
    }
    for (int i = 0; i < 2; ++i) {
      auto kudos_channel =
          grpc::CreateChannel(kudos_[i]->address(), grpc::InsecureChannelCredentials());
      kudos_stub_[i] = kv1::KudosService::NewStub(kudos_channel);
      directory_[i] = kv1::DirectoryService::NewStub(kudos_channel);
      ledger_stub_[i] = lv1::LedgerService::NewStub(
          grpc::CreateChannel(ledgers_[i]->address(), grpc::InsecureChannelCredentials()));
      board_stub_[i] = bv1::LeaderboardService::NewStub(
          grpc::CreateChannel(boards_[i]->address(), grpc::InsecureChannelCredentials()));
    }
    common::redis::PoolOptions pool_options;
    pool_options.endpoint.port = redis_->port();
    pool_options.size = 2;
    pool_ = std::make_unique<common::redis::Pool>(pool_options);

    admin_ = MintToken(kOrg, "root", {"admin"});
    Seed();
  }

  void TearDown() override {
    // Whatever a test froze must not outlive it.
    for (pid_t pid : stopped_) kill(pid, SIGCONT);
  }

  void Seed() {
    // Settings through replica 0, the directory through both.
    kv1::GetOrgSettingsResponse current;
    grpc::Status got = directory_[0]->GetOrgSettings(Context(admin_).get(), {}, &current);
    ASSERT_TRUE(got.ok()) << got.error_message();
    kv1::UpdateOrgSettingsRequest update;
    *update.mutable_settings() = current.settings();
    update.mutable_settings()->set_time_zone("UTC");
    update.mutable_settings()->mutable_allowance()->set_points_per_period(1000000000);
    update.mutable_settings()->mutable_allowance()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
    update.mutable_settings()->set_min_points(1);
    update.mutable_settings()->set_max_points(1000);
    update.mutable_settings()->set_weekly_pair_cap_points(1000000000);
    update.mutable_settings()->set_max_kudos_per_minute(10000);
    kv1::UpdateOrgSettingsResponse updated;
    grpc::Status status = directory_[0]->UpdateOrgSettings(Context(admin_).get(), update, &updated);
    ASSERT_TRUE(status.ok()) << status.error_message();
    int n = 0;
    for (const char* team : {"eng", "ops"}) {
      kv1::CreateTeamRequest request;
      request.mutable_team()->set_team_id(team);
      request.mutable_team()->set_display_name(std::string("Team ") + team);
      kv1::CreateTeamResponse response;
      status = directory_[n++ % 2]->CreateTeam(Context(admin_).get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    for (int i = 0; i < kPeople; ++i) {
      kv1::CreatePersonRequest request;
      request.mutable_person()->set_person_id(Person(i));
      request.mutable_person()->set_display_name("Person " + Person(i));
      request.mutable_person()->set_team_id(TeamOf(Person(i)));
      request.mutable_person()->set_active(true);
      kv1::CreatePersonResponse response;
      status = directory_[i % 2]->CreatePerson(Context(admin_).get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  kv1::SendKudosRequest Request(const std::string& request_id, int thread, int i) {
    kv1::SendKudosRequest request;
    request.set_request_id(request_id);
    const int giver = thread;
    const int first = (giver + 1 + (i * 7) % (kPeople - 1)) % kPeople;
    request.add_recipient_ids(Person(first));
    if (i % 3 == 0) {
      int second = (first + 1) % kPeople;
      if (second == giver) second = (second + 1) % kPeople;
      if (second != first) request.add_recipient_ids(Person(second));
    }
    request.set_message("Thanks for the follow-up, load " + request_id);
    request.add_values(kValues[i % 2]);
    if (i % 5 == 0) request.add_values(kValues[(i + 1) % 2]);
    request.set_points_per_recipient(1 + i % 5);
    return request;
  }

  grpc::Status Send(int replica, const std::string& giver, const kv1::SendKudosRequest& request,
                    kv1::Kudos* kudos) {
    kv1::SendKudosResponse response;
    grpc::Status status = kudos_stub_[replica]->SendKudos(
        Context(MintToken(kOrg, giver), 5s).get(), request, &response);
    if (status.ok()) *kudos = response.kudos();
    return status;
  }

  static Acked FromKudos(const kv1::Kudos& kudos) {
    Acked a;
    a.kudos_id = kudos.kudos_id();
    a.giver = kudos.giver_id();
    a.recipients.assign(kudos.recipient_ids().begin(), kudos.recipient_ids().end());
    a.points = kudos.points_per_recipient();
    a.values.assign(kudos.values().begin(), kudos.values().end());
    return a;
  }

  // A bounded load from policy.threads givers (p0..), spread over both kudos
  // replicas; `sent` counts calls answered (any status), so a test can act
  // in the middle. `alive[r]` false: replica r is skipped from then on.
  LoadResult RunLoad(const LoadPolicy& policy, std::atomic<int>* sent,
                     const std::atomic<bool>* alive) {
    LoadResult result;
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < policy.threads; ++t) {
      threads.emplace_back([&, t] {
        const std::string giver = Person(t);
        for (int i = 0; i < policy.per_thread; ++i) {
          const std::string request_id = policy.tag + "-" + std::to_string(t) + "-" + std::to_string(i);
          kv1::SendKudosRequest request = Request(request_id, t, i);
          int replica = (t + i) % 2;
          if (alive != nullptr && !alive[replica].load()) replica = 1 - replica;
          kv1::Kudos kudos;
          grpc::Status status = Send(replica, giver, request, &kudos);
          sent->fetch_add(1);
          int attempts = 1;
          while (!status.ok() && policy.retry_failures && attempts < 6) {
            replica = 1 - replica;
            if (alive != nullptr && !alive[replica].load()) replica = 1 - replica;
            std::this_thread::sleep_for(100ms);
            status = Send(replica, giver, request, &kudos);
            ++attempts;
            std::lock_guard<std::mutex> lock(mu);
            ++result.retries;
          }
          if (!status.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            result.unknown.push_back({request_id, giver, status.error_code()});
            continue;
          }
          if (policy.resend_every > 0 && i % policy.resend_every == 0) {
            int other = 1 - replica;
            if (alive == nullptr || alive[other].load()) {
              kv1::Kudos again;
              grpc::Status resent = Send(other, giver, request, &again);
              if (!resent.ok() || again.kudos_id() != kudos.kudos_id()) {
                std::lock_guard<std::mutex> lock(mu);
                result.resend_mismatches.push_back(
                    request_id + ": first " + kudos.kudos_id() + ", again on replica " +
                    std::to_string(other) + " " + again.kudos_id() + " (" +
                    std::to_string(resent.error_code()) + " " + resent.error_message() + ")");
              }
            }
          }
          std::lock_guard<std::mutex> lock(mu);
          result.acked.push_back(FromKudos(kudos));
        }
      });
    }
    for (auto& thread : threads) thread.join();
    return result;
  }

  // Every entry of `board` read through leaderboard replica `replica`.
  absl::optional<Board> ReadBoard(int replica, const bv1::Board& board) {
    bv1::GetLeaderboardRequest request;
    *request.mutable_board() = board;
    request.set_page_size(100);
    bv1::GetLeaderboardResponse response;
    grpc::Status status =
        board_stub_[replica]->GetLeaderboard(Context(admin_).get(), request, &response);
    if (!status.ok()) return absl::nullopt;
    Board out;
    for (const auto& e : response.entries()) out[e.subject_id()] = e.score();
    return out;
  }

  absl::optional<Boardset> ReadBoards(int replica) {
    Boardset out;
    for (const auto& [name, board] : Boards()) {
      absl::optional<Board> read = ReadBoard(replica, board);
      if (!read) return absl::nullopt;
      out[name] = *read;
    }
    return out;
  }

  // GetRank of every person on the all-time points board agrees with `expected`.
  bool RanksAgree(int replica, const Board& expected) {
    for (int i = 0; i < kPeople; ++i) {
      bv1::GetRankRequest request;
      *request.mutable_board() = MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_ORG);
      request.set_subject_id(Person(i));
      bv1::GetRankResponse response;
      if (!board_stub_[replica]->GetRank(Context(admin_).get(), request, &response).ok()) {
        return false;
      }
      auto it = expected.find(Person(i));
      if (it == expected.end()) {
        if (response.ranked()) return false;
      } else if (!response.ranked() || response.entry().score() != it->second) {
        return false;
      }
    }
    return true;
  }

  // Both leaderboard replicas serve `expected` (polled: they catch up).
  void ExpectBothCatchUpTo(const Boardset& expected, const std::string& when) {
    Boardset last[2];
    bool caught_up = Eventually(
        [&] {
          for (int r = 0; r < 2; ++r) {
            absl::optional<Boardset> read = ReadBoards(r);
            if (!read) return false;
            last[r] = *read;
            if (last[r] != expected) return false;
          }
          return RanksAgree(0, expected.at("points/org")) && RanksAgree(1, expected.at("points/org"));
        },
        45s);
    EXPECT_TRUE(caught_up) << when << ": expected\n"
                           << Show(expected) << "replica 0 serves\n"
                           << Show(last[0]) << "replica 1 serves\n"
                           << Show(last[1]);
  }

  grpc::Status Rebuild(int replica, bv1::RebuildProjectionsResponse* response) {
    return board_stub_[replica]->RebuildProjections(Context(admin_, 60s).get(), {}, response);
  }

  // A fresh rebuild on `replica` leaves every board as it was.
  void ExpectRebuildChangesNothing(int replica, const Boardset& expected) {
    bv1::RebuildProjectionsResponse response;
    grpc::Status status = Rebuild(replica, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (int r = 0; r < 2; ++r) {
      absl::optional<Boardset> after = ReadBoards(r);
      ASSERT_TRUE(after.has_value());
      EXPECT_EQ(*after, expected) << "after a rebuild on replica " << replica << ", replica " << r
                                  << " serves\n"
                                  << Show(*after) << "expected\n"
                                  << Show(expected);
    }
  }

  int64_t Earned(const std::string& person, int replica = 0) {
    lv1::GetBalanceRequest request;
    request.mutable_account()->set_type(lv1::ACCOUNT_TYPE_EARNED);
    request.mutable_account()->set_person_id(person);
    lv1::GetBalanceResponse response;
    grpc::Status status = ledger_stub_[replica]->GetBalance(Context(admin_).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.balance();
  }

  std::vector<lv1::Transfer> Transfers(const std::string& person, int replica = 0) {
    std::vector<lv1::Transfer> all;
    std::string token;
    for (int page = 0; page < 100; ++page) {
      lv1::ListTransfersRequest request;
      request.mutable_account()->set_type(lv1::ACCOUNT_TYPE_EARNED);
      request.mutable_account()->set_person_id(person);
      request.set_page_size(500);
      request.set_page_token(token);
      lv1::ListTransfersResponse response;
      grpc::Status status =
          ledger_stub_[replica]->ListTransfers(Context(admin_).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.transfers().begin(), response.transfers().end());
      token = response.next_page_token();
      if (!status.ok() || token.empty()) break;
    }
    return all;
  }

  lv1::VerifyLedgerResponse Verify(int replica = 0) {
    lv1::VerifyLedgerResponse response;
    grpc::Status status =
        ledger_stub_[replica]->VerifyLedger(Context(admin_, 30s).get(), {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // Every committed kudos in the org's feed, read through `replica`.
  std::vector<kv1::Kudos> Feed(int replica = 0) {
    std::vector<kv1::Kudos> all;
    std::string token;
    for (int page = 0; page < 1000; ++page) {
      kv1::ListKudosRequest request;
      request.set_page_size(100);
      request.set_page_token(token);
      kv1::ListKudosResponse response;
      grpc::Status status =
          kudos_stub_[replica]->ListKudos(Context(admin_).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      all.insert(all.end(), response.kudos().begin(), response.kudos().end());
      token = response.next_page_token();
      if (!status.ok() || token.empty()) break;
    }
    return all;
  }

  int64_t PendingRecords() {
    auto reply = pool_->Run({"ZCARD", std::string("kudos:{") + kOrg + "}:pending"});
    return reply.ok() ? reply->integer : -1;
  }

  // The ledger holds exactly `acked`: each acknowledged kudos charged once
  // per recipient (balances, ListTransfers through both replicas), nothing
  // charged without a kudos, VerifyLedger clean.
  void ExpectLedgerHoldsExactly(const std::vector<Acked>& acked) {
    std::map<std::string, int64_t> earned;
    std::map<std::string, std::multiset<std::string>> references;  // person -> kudos ids
    int64_t transfers = 0;
    for (const Acked& k : acked) {
      for (const std::string& r : k.recipients) {
        earned[r] += k.points;
        references[r].insert(k.kudos_id);
        ++transfers;
      }
    }
    for (int replica = 0; replica < 2; ++replica) {
      if (!ledgers_[replica]) continue;
      for (int i = 0; i < kPeople; ++i) {
        const std::string person = Person(i);
        EXPECT_EQ(Earned(person, replica), earned[person]) << person << " via ledger " << replica;
        std::multiset<std::string> listed;
        for (const lv1::Transfer& t : Transfers(person, replica)) listed.insert(t.reference());
        EXPECT_EQ(listed, references[person]) << person << " via ledger " << replica;
      }
    }
    lv1::VerifyLedgerResponse verify = Verify();
    EXPECT_TRUE(verify.consistent()) << verify.DebugString();
    EXPECT_EQ(verify.transfer_count(), transfers);
  }

  // The feed holds each acknowledged kudos once and nothing else.
  void ExpectFeedHoldsExactly(const std::vector<Acked>& acked) {
    std::multiset<std::string> want, got;
    for (const Acked& k : acked) want.insert(k.kudos_id);
    for (const kv1::Kudos& k : Feed()) got.insert(k.kudos_id());
    EXPECT_EQ(got, want);
  }

  void Stop(int pid) {
    ASSERT_GT(pid, 0);
    ASSERT_EQ(kill(pid, SIGSTOP), 0);
    stopped_.push_back(pid);
  }
  void Continue(int pid) {
    kill(pid, SIGCONT);
    stopped_.erase(std::remove(stopped_.begin(), stopped_.end(), pid), stopped_.end());
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledgers_[2], kudos_[2], boards_[2];
  std::unique_ptr<kv1::KudosService::Stub> kudos_stub_[2];
  std::unique_ptr<kv1::DirectoryService::Stub> directory_[2];
  std::unique_ptr<lv1::LedgerService::Stub> ledger_stub_[2];
  std::unique_ptr<bv1::LeaderboardService::Stub> board_stub_[2];
  std::unique_ptr<common::redis::Pool> pool_;
  std::string admin_;
  std::vector<pid_t> stopped_;
};

// 1. Both kudos replicas take the load (some calls sent twice, on either
// replica, with one request id); both leaderboard replicas consume the two
// streams as one consumer group each. Every board equals the acknowledged
// kudos and a rebuild of the same events; balances equal the acknowledged
// kudos.
TEST_F(ReplicaTest, ConsumerGroups_SplitTheWorkWithNothingAppliedTwice) {
  ASSERT_NO_FATAL_FAILURE(Start());
  LoadPolicy policy;
  policy.tag = "split";
  std::atomic<int> sent{0};
  LoadResult load = RunLoad(policy, &sent, nullptr);
  EXPECT_TRUE(load.resend_mismatches.empty()) << load.resend_mismatches.front();
  EXPECT_TRUE(load.unknown.empty()) << load.unknown.size() << " kudos never acknowledged";
  ASSERT_EQ(load.acked.size(), 300u);
  std::cout << "acknowledged " << load.acked.size() << " kudos, " << load.retries
            << " retries\n";

  Boardset expected = Expected(load.acked);
  ExpectBothCatchUpTo(expected, "after the load");
  // Both leaderboard consumers are in each stream's group (both read it). On
  // a loaded machine one replica may find the org a little later than the
  // load takes: wait for it rather than race it.
  for (const char* stream : {"kudos:{rep}:events", "ledger:{rep}:outbox"}) {
    std::set<std::string> consumers;
    EXPECT_TRUE(harness::Eventually(
        [&] {
          auto reply = pool_->Run({"XINFO", "CONSUMERS", stream, "leaderboard"});
          if (!reply.ok()) return false;
          consumers.clear();
          for (const auto& consumer : reply->elements) {
            for (size_t i = 0; i + 1 < consumer.elements.size(); i += 2) {
              if (consumer.elements[i].str == "name") consumers.insert(consumer.elements[i + 1].str);
            }
          }
          return consumers == std::set<std::string>{"replica-0", "replica-1"};
        },
        std::chrono::seconds(30)))
        << stream << ": " << consumers.size() << " consumers";
  }
  ExpectRebuildChangesNothing(0, expected);
  ExpectRebuildChangesNothing(1, expected);
  ExpectLedgerHoldsExactly(load.acked);
  ExpectFeedHoldsExactly(load.acked);
}

// 2. One kudos replica's ledger is frozen (SIGSTOP) in the middle of the
// load, so its calls hang with PENDING records, then that kudos replica is
// killed with SIGKILL and the frozen ledger resumes (its queued calls may
// still apply). The client does not retry: the surviving kudos replica's
// reconciler finishes every pending record, each charged exactly once.
TEST_F(ReplicaTest, Reconcilers_NeverFinishOneRecordTwice) {
  ASSERT_NO_FATAL_FAILURE(Start());
  LoadPolicy policy;
  policy.tag = "recon";
  policy.retry_failures = false;
  policy.resend_every = 0;
  std::atomic<int> sent{0};
  std::atomic<bool> alive[2] = {{true}, {true}};
  LoadResult load;
  std::thread loader([&] { load = RunLoad(policy, &sent, alive); });

  ASSERT_TRUE(Eventually([&] { return sent.load() >= 100; }, 50s));
  const pid_t frozen_ledger = ChildListeningOn(ledgers_[1]->port());
  Stop(frozen_ledger);
  // Calls of kudos replica 1 now hang on the ledger: records stay PENDING.
  bool pending = Eventually([&] { return PendingRecords() >= 2; }, 20s);
  kudos_[1]->Kill();
  alive[1] = false;
  std::cout << "kudos replica 1 killed with " << PendingRecords() << " pending records\n";
  Continue(frozen_ledger);
  loader.join();
  EXPECT_TRUE(pending) << "no record was left pending";

  // Every record is finished by the survivor's reconciler.
  EXPECT_TRUE(Eventually([&] { return PendingRecords() == 0; }, 40s))
      << PendingRecords() << " records still pending";

  // What happened to the unacknowledged requests: each is committed once or
  // never happened. The feed is the truth of what committed.
  std::vector<kv1::Kudos> feed = Feed();
  std::map<std::string, kv1::Kudos> committed;
  for (const kv1::Kudos& k : feed) {
    EXPECT_TRUE(committed.emplace(k.kudos_id(), k).second) << "twice in the feed: " << k.kudos_id();
    EXPECT_EQ(k.state(), kv1::KUDOS_STATE_COMMITTED);
  }
  for (const Acked& k : load.acked) {
    EXPECT_EQ(committed.count(k.kudos_id), 1u) << "acknowledged but not committed: " << k.kudos_id;
  }
  EXPECT_LE(committed.size(), load.acked.size() + load.unknown.size());
  std::cout << "acknowledged " << load.acked.size() << ", unanswered " << load.unknown.size()
            << ", committed " << committed.size() << "\n";
  EXPECT_GT(load.unknown.size(), 0u);

  // Every committed kudos (acknowledged or finished by the reconciler) is
  // charged exactly once; nothing is charged without a kudos.
  std::vector<Acked> all;
  for (const auto& [id, k] : committed) all.push_back(FromKudos(k));
  ExpectLedgerHoldsExactly(all);
  ExpectFeedHoldsExactly(all);
  // And the boards count each once.
  Boardset expected = Expected(all);
  ExpectBothCatchUpTo(expected, "after the reconcilers");
  ExpectRebuildChangesNothing(1, expected);

  // A late client retry of an unanswered request returns the finished
  // kudos (or makes the kudos that never began), never a second charge.
  std::vector<Acked> after_retries = all;
  for (const Unknown& u : load.unknown) {
    const std::string& id = u.request_id;
    const int t = std::stoi(id.substr(id.find('-') + 1));
    const int i = std::stoi(id.substr(id.rfind('-') + 1));
    kv1::Kudos kudos;
    grpc::Status status = Send(0, u.giver, Request(id, t, i), &kudos);
    ASSERT_TRUE(status.ok()) << id << ": " << status.error_message();
    if (committed.count(kudos.kudos_id()) == 0) after_retries.push_back(FromKudos(kudos));
  }
  ExpectLedgerHoldsExactly(after_retries);
}

// 3. A WatchLeaderboard on either leaderboard replica sees the updates the
// other replica applies: both watchers end on the final standings, and no
// watcher ever sees a score go down.
TEST_F(ReplicaTest, WatchLeaderboard_OnEitherReplicaSeesEveryUpdate) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const bv1::Board points = MakeBoard(bv1::METRIC_POINTS_RECEIVED, bv1::SCOPE_ORG);
  const std::string screen = MintToken(kOrg, "screen-1", {"screen"});
  Watcher first(board_stub_[0].get(), screen, points);
  Watcher second(board_stub_[1].get(), screen, points);
  ASSERT_TRUE(Eventually([&] { return first.messages() > 0 && second.messages() > 0; }, 20s))
      << "no initial snapshot";

  // Rounds: each round's kudos go through one kudos replica, and both
  // watchers must show that round's standings before the next round starts,
  // so every update (not only the last) reaches both replicas' watchers.
  std::vector<Acked> acked;
  for (int round = 0; round < 6; ++round) {
    LoadPolicy policy;
    policy.tag = "watch" + std::to_string(round);
    policy.threads = 2 + round % 3;
    policy.per_thread = 10;
    policy.resend_every = 0;
    std::atomic<bool> alive[2] = {{round % 2 == 0}, {round % 2 == 1}};
    std::atomic<int> sent{0};
    LoadResult load = RunLoad(policy, &sent, alive);
    ASSERT_TRUE(load.unknown.empty()) << "round " << round;
    acked.insert(acked.end(), load.acked.begin(), load.acked.end());
    const Board want = Expected(acked).at("points/org");
    const auto sent_at = std::chrono::steady_clock::now();
    EXPECT_TRUE(Eventually([&] { return first.latest() == want; }, 20s))
        << "round " << round << ": watcher on replica 0 shows " << Show(first.latest())
        << ", expected " << Show(want);
    EXPECT_TRUE(Eventually([&] { return second.latest() == want; }, 20s))
        << "round " << round << ": watcher on replica 1 shows " << Show(second.latest())
        << ", expected " << Show(want);
    // Printed, never asserted: how long the last acknowledged kudos of the
    // round took to reach both watchers.
    std::cout << "round " << round << ": both watchers current after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - sent_at)
                     .count()
              << " ms\n";
  }
  Boardset expected = Expected(acked);
  ExpectBothCatchUpTo(expected, "after the rounds");
  ExpectRebuildChangesNothing(0, expected);
  const Board& want = expected.at("points/org");
  EXPECT_EQ(first.latest(), want);
  EXPECT_EQ(second.latest(), want);
  std::cout << "watchers saw " << first.messages() << " and " << second.messages()
            << " updates\n";
  EXPECT_TRUE(first.regressions().empty()) << first.regressions().front();
  EXPECT_TRUE(second.regressions().empty()) << second.regressions().front();
  first.Stop();
  second.Stop();
}

// 4. RebuildProjections on replica 0, again and again, while both replicas
// consume a load: after the load both catch up to the acknowledged kudos,
// and a fresh rebuild changes nothing.
TEST_F(ReplicaTest, RebuildProjections_OnOneReplicaWhileTheOtherConsumesIsSafe) {
  ASSERT_NO_FATAL_FAILURE(Start());
  LoadPolicy policy;
  policy.tag = "rebuild";
  std::atomic<int> sent{0};
  LoadResult load;
  std::thread loader([&] { load = RunLoad(policy, &sent, nullptr); });
  int rebuilds_ok = 0;
  std::vector<std::string> refused;
  // Rebuild while the load runs (bounded: at most 10 rebuilds).
  for (int n = 0; n < 10 && sent.load() < policy.threads * policy.per_thread; ++n) {
    Eventually([&] { return sent.load() >= 30 * (n + 1); }, 20s);
    bv1::RebuildProjectionsResponse response;
    grpc::Status status = Rebuild(0, &response);
    if (status.ok()) {
      ++rebuilds_ok;
    } else {
      refused.push_back(std::to_string(status.error_code()) + " " + status.error_message());
    }
  }
  loader.join();
  std::cout << rebuilds_ok << " rebuilds under load, " << refused.size() << " refused\n";
  for (const std::string& r : refused) std::cout << "  refused: " << r << "\n";
  EXPECT_GT(rebuilds_ok, 0);
  ASSERT_TRUE(load.unknown.empty());
  EXPECT_TRUE(load.resend_mismatches.empty()) << load.resend_mismatches.front();

  Boardset expected = Expected(load.acked);
  ExpectBothCatchUpTo(expected, "after rebuilds under load");
  ExpectRebuildChangesNothing(1, expected);
  ExpectRebuildChangesNothing(0, expected);
  ExpectLedgerHoldsExactly(load.acked);
}

// 5. Both ledger replicas archive every second and both kudos replicas
// sweep every second, during a load; the oldest transfers are backdated two
// years so that there is something to archive. Nothing is archived twice:
// the checkpoint holds exactly the backdated transfers, VerifyLedger is
// clean, ListTransfers through either replica lists each transfer once.
TEST_F(ReplicaTest, Sweeps_InBothReplicasArchiveNothingTwice) {
  Options options;
  options.ledger_archive_interval_s = 1;
  options.kudos_archive_interval_s = 1;
  ASSERT_NO_FATAL_FAILURE(Start(options));
  LoadPolicy policy;
  policy.tag = "sweep";
  std::atomic<int> sent{0};
  LoadResult load;
  std::thread loader([&] { load = RunLoad(policy, &sent, nullptr); });

  // Backdate the first transfers of the journal while the load runs.
  constexpr int kBackdated = 40;
  const std::string prefix = std::string("ledger:{") + kOrg + "}:";
  ASSERT_TRUE(Eventually(
      [&] {
        auto len = pool_->Run({"LLEN", prefix + "journal"});
        return len.ok() && len->integer >= kBackdated + 10;
      },
      40s));
  const int64_t two_years_ago =
      std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count() -
      2 * 365 * 24 * 3600;
  // The first ids read at once: the archivers run meanwhile (every second) and
  // pop the journal's head as soon as a backdated prefix exists, so an index
  // read per step would slide past transfers never backdated.
  auto head = pool_->Run({"LRANGE", prefix + "journal", "0", std::to_string(kBackdated - 1)});
  ASSERT_TRUE(head.ok()) << head.status();
  ASSERT_EQ(head->elements.size(), static_cast<size_t>(kBackdated));
  for (const common::redis::Reply& line : head->elements) {
    const std::string id = ledger_test::JournalTransferId(line.str);
    // Its bucket's field (services/ledger/scripts/lib.lua, read_tx), written
    // back whole with the new post time.
    const std::string bucket = ledger::keys::TransferBucketKey(kOrg, id);
    const std::string field = ledger::IndexMember(id);
    auto stored = pool_->Run({"HGET", bucket, field});
    ASSERT_TRUE(stored.ok()) << bucket;
    std::optional<ledger_test::StoredTransfer> parsed = ledger_test::ParseStoredTransfer(id, stored->str);
    ASSERT_TRUE(parsed.has_value()) << bucket << " " << id;
    parsed->transfer.mutable_post_time()->set_seconds(two_years_ago);
    ASSERT_TRUE(
        pool_->Run({"HSET", bucket, field, ledger_test::WholeStoredTransfer(stored->str, *parsed)})
            .ok());
  }
  loader.join();
  ASSERT_TRUE(load.unknown.empty());
  EXPECT_TRUE(load.resend_mismatches.empty()) << load.resend_mismatches.front();

  // Both archivers fold the backdated prefix, once.
  std::string count;
  EXPECT_TRUE(Eventually(
      [&] {
        auto reply = pool_->Run({"HGET", prefix + "ckpt", "count"});
        count = reply.ok() ? reply->str : "";
        return count == std::to_string(kBackdated);
      },
      30s))
      << "checkpoint count " << count;
  // A few more rounds of both replicas change nothing.
  std::this_thread::sleep_for(2500ms);
  auto reply = pool_->Run({"HGET", prefix + "ckpt", "count"});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->str, std::to_string(kBackdated));
  auto journal = pool_->Run({"LLEN", prefix + "journal"});
  ASSERT_TRUE(journal.ok());
  int64_t transfers = 0;
  for (const Acked& k : load.acked) transfers += static_cast<int64_t>(k.recipients.size());
  EXPECT_EQ(journal->integer, transfers - kBackdated);

  ExpectLedgerHoldsExactly(load.acked);
  ExpectFeedHoldsExactly(load.acked);
  Boardset expected = Expected(load.acked);
  ExpectBothCatchUpTo(expected, "after the sweeps");
  ExpectRebuildChangesNothing(0, expected);
}

}  // namespace
