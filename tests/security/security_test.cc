// Attack tests against the real platform: redis-server, ledger, kudos and
// leaderboard as processes, two orgs (A and B) seeded through the public APIs
// with admin tokens. Every attack case asserts the exact status code and that
// nothing changed: neither Redis (every persistent key, every stream's
// length) nor what the APIs show (balances, feeds, boards, the directory).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/auth/guard.h"
#include "common/redis/redis_client.h"
#include "feedback/v1/feedback.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/harness/eventually.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;
namespace lv1 = ledger::v1;
namespace bv1 = leaderboard::v1;
namespace fv1 = feedback::v1;
using grpc::StatusCode;

constexpr char kOrgA[] = "sec-org-a";
constexpr char kOrgB[] = "sec-org-b";

// The authorization metadata value; nullopt sends none.
using Auth = std::optional<std::string>;

Auth Bearer(const std::string& token) { return "Bearer " + token; }

std::unique_ptr<grpc::ClientContext> Ctx(const Auth& auth,
                                         std::chrono::milliseconds timeout = 5s) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (auth) context->AddMetadata("authorization", *auth);
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  return context;
}

template <typename Stub, typename Req, typename Resp>
grpc::Status Call(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Auth& auth, const Req& request, Resp* response = nullptr) {
  Resp local;
  auto context = Ctx(auth);
  return (stub->*method)(context.get(), request, response ? response : &local);
}

// A server stream: OK once a first message arrives, else the stream's status.
template <typename Stub, typename Req, typename Resp>
grpc::Status FirstMessage(
    Stub* stub,
    std::unique_ptr<grpc::ClientReader<Resp>> (Stub::*method)(grpc::ClientContext*, const Req&),
    const Auth& auth, const Req& request, std::chrono::milliseconds timeout = 3s) {
  auto context = Ctx(auth, timeout);
  std::unique_ptr<grpc::ClientReader<Resp>> reader = (stub->*method)(context.get(), request);
  Resp message;
  if (reader->Read(&message)) {
    context->TryCancel();
    while (reader->Read(&message)) {
    }
    reader->Finish();
    return grpc::Status::OK;
  }
  return reader->Finish();
}

std::string Mint(const std::string& org, const std::string& subject,
                 std::vector<std::string> roles) {
  return harness::MintToken(org, subject, std::move(roles));
}

std::string MintWith(common::auth::TokenRequest request, const std::string& secret,
                     absl::Time now = absl::Now()) {
  auto token = common::auth::MintHs256(request, secret, now);
  if (!token.ok()) throw std::runtime_error(std::string(token.status().message()));
  return *token;
}

common::auth::TokenRequest Request(const std::string& org, const std::string& subject,
                                   std::vector<std::string> roles) {
  common::auth::TokenRequest request;
  request.org = org;
  request.subject = subject;
  request.roles = std::move(roles);
  return request;
}

std::string B64(const std::string& text) {
  std::string out;
  absl::WebSafeBase64Escape(text, &out);
  return out;
}

using harness::Eventually;

bv1::Board AllTimePoints() {
  bv1::Board board;
  board.set_metric(bv1::METRIC_POINTS_RECEIVED);
  board.set_window(bv1::WINDOW_ALL_TIME);
  board.set_scope(bv1::SCOPE_ORG);
  return board;
}

lv1::Account Earned(const std::string& person) {
  lv1::Account account;
  account.set_type(lv1::ACCOUNT_TYPE_EARNED);
  account.set_person_id(person);
  return account;
}

lv1::Account Allowance(const std::string& person) {
  lv1::Account account;
  account.set_type(lv1::ACCOUNT_TYPE_ALLOWANCE);
  account.set_person_id(person);
  return account;
}

// One set of stubs for one deployment of the three services.
struct Stubs {
  std::unique_ptr<kv1::KudosService::Stub> kudos;
  std::unique_ptr<kv1::DirectoryService::Stub> directory;
  std::unique_ptr<lv1::LedgerService::Stub> ledger;
  std::unique_ptr<bv1::LeaderboardService::Stub> board;
  // Hosted by the kudos binary, same address.
  std::unique_ptr<fv1::FeedbackService::Stub> feedback;

  static std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(-1);
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  void Connect(const std::string& kudos_address, const std::string& ledger_address,
               const std::string& board_address) {
    auto k = Channel(kudos_address);
    kudos = kv1::KudosService::NewStub(k);
    directory = kv1::DirectoryService::NewStub(k);
    feedback = fv1::FeedbackService::NewStub(k);
    ledger = lv1::LedgerService::NewStub(Channel(ledger_address));
    board = bv1::LeaderboardService::NewStub(Channel(board_address));
  }
};

// The seeded state of one org.
struct Org {
  std::string id;
  std::string admin, alice, bob, carol, screen;  // tokens
  std::string kudos_id;                          // alice -> bob
  int64_t points = 0;
  std::string only_here;                         // a person only this org has
  std::string survey_id;                         // a survey about team core
};

// The platform, started once per test binary process.
class Platform : public ::testing::Environment {
 public:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    // The main deployment: no API rate limit, so snapshots never trip it.
    const std::vector<std::string> unlimited = {"--rate_limit_person_rps=0",
                                                "--rate_limit_token_rps=0"};
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address(), unlimited);
    std::vector<std::string> kudos_args = unlimited;
    kudos_args.push_back("--ledger=" + ledger_->address());
    kudos_ = std::make_unique<harness::Service>(KUDOS_BINARY, redis_->address(), kudos_args);
    std::vector<std::string> board_args = unlimited;
    board_args.push_back("--consumer_name=sec-main");
    board_ = std::make_unique<harness::Service>(LEADERBOARD_BINARY, redis_->address(), board_args);
    stubs_.Connect(kudos_->address(), ledger_->address(), board_->address());

    common::redis::PoolOptions pool_options;
    pool_options.endpoint.port = redis_->port();
    pool_options.size = 2;
    pool_ = std::make_unique<common::redis::Pool>(pool_options);

    a_ = Seed(kOrgA, 5, "only-a");
    b_ = Seed(kOrgB, 7, "only-b");
    // The leaderboard has applied both orgs' kudos.
    for (const Org* org : {&a_, &b_}) {
      bool applied = Eventually([&] {
        bv1::GetLeaderboardRequest request;
        *request.mutable_board() = AllTimePoints();
        bv1::GetLeaderboardResponse response;
        return Call(stubs_.board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                    Bearer(org->admin), request, &response)
                   .ok() &&
               response.entries_size() == 3;
      });
      if (!applied) throw std::runtime_error("the leaderboard did not apply the seeded kudos");
    }
    // Creating people queued them for the ledger's allowance profiles
    // (kudos:{org}:profile_sync), which the kudos reconciler mirrors on its own
    // clock, about once a second. Wait for that too: landing during an attack
    // case, it would read as the attack's doing.
    for (const Org* org : {&a_, &b_}) {
      const std::string queue = "kudos:{" + org->id + "}:profile_sync";
      bool mirrored = Eventually([&] {
        absl::StatusOr<common::redis::Reply> queued = pool_->Run({"EXISTS", queue});
        return queued.ok() && queued->integer == 0;
      });
      if (!mirrored) throw std::runtime_error("the kudos service did not mirror " + queue);
    }
  }

  void TearDown() override {
    stubs_ = Stubs();
    board_.reset();
    kudos_.reset();
    ledger_.reset();
    pool_.reset();
    redis_.reset();
  }

  static Platform* Get() { return instance_; }
  static void Register() { instance_ = new Platform(); }

  Stubs& stubs() { return stubs_; }
  const Org& a() const { return a_; }
  const Org& b() const { return b_; }
  common::redis::Pool& pool() { return *pool_; }
  harness::RedisServer& redis() { return *redis_; }
  harness::Service& ledger() { return *ledger_; }
  harness::Service& kudos() { return *kudos_; }
  harness::Service& board() { return *board_; }

 private:
  void Check(const grpc::Status& status, const std::string& what) {
    if (!status.ok()) {
      throw std::runtime_error(absl::StrCat("seeding: ", what, ": ", status.error_code(), " ",
                                            status.error_message()));
    }
  }

  Org Seed(const std::string& org_id, int64_t points, const std::string& only_here) {
    Org org;
    org.id = org_id;
    org.admin = Mint(org_id, "root", {"admin"});
    org.alice = Mint(org_id, "alice", {"member"});
    org.bob = Mint(org_id, "bob", {"member"});
    org.carol = Mint(org_id, "carol", {"member", "manager"});
    org.screen = Mint(org_id, "lobby-tv", {"screen"});
    org.points = points;
    org.only_here = only_here;
    Auth admin = Bearer(org.admin);

    kv1::CreateTeamRequest team;
    team.mutable_team()->set_team_id("core");
    team.mutable_team()->set_display_name("Core " + org_id);
    Check(Call(stubs_.directory.get(), &kv1::DirectoryService::Stub::CreateTeam, admin, team),
          "CreateTeam");
    for (const std::string& person : {std::string("carol"), std::string("alice"),
                                      std::string("bob"), only_here}) {
      kv1::CreatePersonRequest create;
      create.mutable_person()->set_person_id(person);
      create.mutable_person()->set_display_name(person + " of " + org_id);
      create.mutable_person()->set_team_id("core");
      if (person != "carol") create.mutable_person()->set_manager_id("carol");
      create.mutable_person()->set_active(true);
      Check(Call(stubs_.directory.get(), &kv1::DirectoryService::Stub::CreatePerson, admin, create),
            "CreatePerson " + person);
    }
    kv1::SendKudosRequest send;
    send.set_request_id("seed-1");
    send.add_recipient_ids("bob");
    send.set_message("thanks for the follow-up in " + org_id);
    send.add_values("teamwork");
    send.set_points_per_recipient(points);
    kv1::SendKudosResponse sent;
    Check(Call(stubs_.kudos.get(), &kv1::KudosService::Stub::SendKudos, Bearer(org.alice), send,
               &sent),
          "SendKudos");
    org.kudos_id = sent.kudos().kudos_id();
    if (sent.kudos().state() != kv1::KUDOS_STATE_COMMITTED) {
      throw std::runtime_error("seeded kudos not committed");
    }
    // The person only this org has receives too (from carol).
    kv1::SendKudosRequest other;
    other.set_request_id("seed-2");
    other.add_recipient_ids(only_here);
    other.set_message("welcome to " + org_id);
    other.add_values("empathy");
    other.set_points_per_recipient(points + 1);
    Check(Call(stubs_.kudos.get(), &kv1::KudosService::Stub::SendKudos, Bearer(org.carol), other),
          "SendKudos 2");
    // A second kudos from alice, so her allowance account has two pages.
    kv1::SendKudosRequest third;
    third.set_request_id("seed-3");
    third.add_recipient_ids("carol");
    third.set_message("thanks again in " + org_id);
    third.add_values("service-mindset");
    third.set_points_per_recipient(1);
    Check(Call(stubs_.kudos.get(), &kv1::KudosService::Stub::SendKudos, Bearer(org.alice), third),
          "SendKudos 3");
    // A survey, so survey reads have something to reach (or not, across orgs).
    fv1::CreateSurveyRequest survey;
    survey.mutable_survey()->set_team_id("core");
    survey.mutable_survey()->add_questions()->set_kind(fv1::QUESTION_KIND_CSAT);
    survey.mutable_survey()->set_cadence(fv1::CADENCE_WEEKLY);
    survey.mutable_survey()->set_invitations_per_period(5);
    fv1::CreateSurveyResponse created;
    Check(Call(stubs_.feedback.get(), &fv1::FeedbackService::Stub::CreateSurvey, admin, survey,
               &created),
          "CreateSurvey");
    org.survey_id = created.survey().survey_id();
    return org;
  }

  static Platform* instance_;
  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_, kudos_, board_;
  std::unique_ptr<common::redis::Pool> pool_;
  Stubs stubs_;
  Org a_, b_;
};
Platform* Platform::instance_ = nullptr;

// ---- what "nothing changed" means ----------------------------------------------

// Every persistent Redis key with a digest of its value (streams: length and
// last id, since a consumer group's bookkeeping changes on every read), and
// what the APIs show each org's admin.
struct Snapshot {
  std::map<std::string, std::string> redis;
  std::map<std::string, std::string> api;
  bool operator==(const Snapshot& other) const {
    return redis == other.redis && api == other.api;
  }
};

std::string Diff(const std::map<std::string, std::string>& before,
                 const std::map<std::string, std::string>& after) {
  std::ostringstream out;
  for (const auto& [key, value] : before) {
    auto it = after.find(key);
    if (it == after.end()) out << "  removed: " << absl::CEscape(key) << "\n";
    else if (it->second != value) out << "  changed: " << absl::CEscape(key) << "\n";
  }
  for (const auto& [key, value] : after) {
    if (!before.count(key)) out << "  added: " << absl::CEscape(key) << "\n";
  }
  return out.str();
}

std::string Diff(const Snapshot& before, const Snapshot& after) {
  return Diff(before.redis, after.redis) + Diff(before.api, after.api);
}

std::map<std::string, std::string> RedisState(common::redis::Pool& pool) {
  std::map<std::string, std::string> state;
  auto keys = pool.Run({"KEYS", "*"});
  if (!keys.ok()) throw std::runtime_error("KEYS failed");
  for (const auto& key : keys->elements) {
    auto ttl = pool.Run({"PTTL", key.str});
    // Expiring keys come and go (rate limits, idempotency), except feedback's:
    // served sets, invitations and responses expire after days, and an
    // attack must not add one.
    const bool feedback = key.str.rfind("feedback:", 0) == 0;
    if (!ttl.ok() || (ttl->integer != -1 && !feedback)) continue;
    auto type = pool.Run({"TYPE", key.str});
    if (!type.ok()) continue;
    if (type->str == "stream") {
      auto length = pool.Run({"XLEN", key.str});
      auto last = pool.Run({"XREVRANGE", key.str, "+", "-", "COUNT", "1"});
      std::string last_id =
          last.ok() && !last->elements.empty() ? last->elements[0].elements[0].str : "";
      state[key.str] = absl::StrCat("stream ", length.ok() ? length->integer : -1, " ", last_id);
    } else {
      auto dump = pool.Run({"DUMP", key.str});
      state[key.str] = dump.ok() ? dump->str : "?";
    }
  }
  return state;
}

std::map<std::string, std::string> ApiState(Stubs& stubs, const Org& org) {
  std::map<std::string, std::string> state;
  Auth admin = Bearer(org.admin);
  auto put = [&](const std::string& name, const grpc::Status& status,
                 const google::protobuf::Message& message) {
    state[absl::StrCat(org.id, " ", name)] =
        status.ok() ? message.SerializeAsString() : absl::StrCat("error ", status.error_code());
  };
  for (const std::string& person : {std::string("alice"), std::string("bob"),
                                    std::string("carol"), org.only_here}) {
    lv1::GetBalanceRequest earned;
    *earned.mutable_account() = Earned(person);
    lv1::GetBalanceResponse earned_response;
    put("balance earned " + person,
        Call(stubs.ledger.get(), &lv1::LedgerService::Stub::GetBalance, admin, earned,
             &earned_response),
        earned_response);
    lv1::GetBalanceRequest allowance;
    *allowance.mutable_account() = Allowance(person);
    lv1::GetBalanceResponse allowance_response;
    put("balance allowance " + person,
        Call(stubs.ledger.get(), &lv1::LedgerService::Stub::GetBalance, admin, allowance,
             &allowance_response),
        allowance_response);
  }
  lv1::VerifyLedgerResponse verify;
  put("verify",
      Call(stubs.ledger.get(), &lv1::LedgerService::Stub::VerifyLedger, admin,
           lv1::VerifyLedgerRequest(), &verify),
      verify);
  kv1::ListKudosRequest feed;
  feed.set_page_size(100);
  kv1::ListKudosResponse feed_response;
  put("feed", Call(stubs.kudos.get(), &kv1::KudosService::Stub::ListKudos, admin, feed, &feed_response),
      feed_response);
  kv1::ListPeopleResponse people;
  put("people",
      Call(stubs.directory.get(), &kv1::DirectoryService::Stub::ListPeople, admin,
           kv1::ListPeopleRequest(), &people),
      people);
  kv1::ListTeamsResponse teams;
  put("teams",
      Call(stubs.directory.get(), &kv1::DirectoryService::Stub::ListTeams, admin,
           kv1::ListTeamsRequest(), &teams),
      teams);
  kv1::GetOrgSettingsResponse settings;
  put("settings",
      Call(stubs.directory.get(), &kv1::DirectoryService::Stub::GetOrgSettings, admin,
           kv1::GetOrgSettingsRequest(), &settings),
      settings);
  fv1::ListSurveysResponse surveys;
  put("surveys",
      Call(stubs.feedback.get(), &fv1::FeedbackService::Stub::ListSurveys, admin,
           fv1::ListSurveysRequest(), &surveys),
      surveys);
  fv1::GetFeedbackSettingsResponse feedback_settings;
  put("feedback settings",
      Call(stubs.feedback.get(), &fv1::FeedbackService::Stub::GetFeedbackSettings, admin,
           fv1::GetFeedbackSettingsRequest(), &feedback_settings),
      feedback_settings);
  bv1::GetLeaderboardRequest board;
  *board.mutable_board() = AllTimePoints();
  board.set_page_size(100);
  bv1::GetLeaderboardResponse board_response;
  put("board",
      Call(stubs.board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard, admin, board,
           &board_response),
      board_response);
  return state;
}

Snapshot Take() {
  Platform& p = *Platform::Get();
  Snapshot snapshot;
  snapshot.redis = RedisState(p.pool());
  for (const Org* org : {&p.a(), &p.b()}) {
    auto api = ApiState(p.stubs(), *org);
    snapshot.api.insert(api.begin(), api.end());
  }
  return snapshot;
}

// ---- the table -----------------------------------------------------------------------

struct Case {
  std::string name;
  StatusCode expected;
  std::function<grpc::Status()> call;
};

class AttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The state is at rest (the leaderboard has consumed everything): two
    // snapshots 200 ms apart agree before any attack.
    baseline_ = Take();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(200ms);
      Snapshot again = Take();
      if (again == baseline_) return;
      if (i == 49) FAIL() << "state changes on its own:\n" << Diff(baseline_, again);
      baseline_ = again;
    }
  }

  void Run(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      grpc::Status status = c.call();
      EXPECT_EQ(status.error_code(), c.expected)
          << c.name << ": got " << status.error_code() << " '" << status.error_message() << "'";
      Snapshot after = Take();
      EXPECT_TRUE(after == baseline_) << c.name << " changed something:\n" << Diff(baseline_, after);
    }
  }

  Stubs& s() { return Platform::Get()->stubs(); }
  const Org& A() { return Platform::Get()->a(); }
  const Org& B() { return Platform::Get()->b(); }

  // One representative call per RPC, parameterized by the caller.
  std::vector<std::pair<std::string, std::function<grpc::Status(const Auth&)>>> EveryRpc() {
    std::vector<std::pair<std::string, std::function<grpc::Status(const Auth&)>>> rpcs;
    Stubs* st = &s();
    std::string kudos_id = A().kudos_id;
    rpcs.emplace_back("SendKudos", [st](const Auth& auth) {
      kv1::SendKudosRequest r;
      r.set_request_id("attack-send");
      r.add_recipient_ids("bob");
      r.set_message("x");
      r.add_values("teamwork");
      r.set_points_per_recipient(3);
      return Call(st->kudos.get(), &kv1::KudosService::Stub::SendKudos, auth, r);
    });
    rpcs.emplace_back("GetKudos", [st, kudos_id](const Auth& auth) {
      kv1::GetKudosRequest r;
      r.set_kudos_id(kudos_id);
      return Call(st->kudos.get(), &kv1::KudosService::Stub::GetKudos, auth, r);
    });
    rpcs.emplace_back("ListKudos", [st](const Auth& auth) {
      return Call(st->kudos.get(), &kv1::KudosService::Stub::ListKudos, auth,
                  kv1::ListKudosRequest());
    });
    rpcs.emplace_back("BoostKudos", [st, kudos_id](const Auth& auth) {
      kv1::BoostKudosRequest r;
      r.set_kudos_id(kudos_id);
      r.set_request_id("attack-boost");
      r.set_points(2);
      return Call(st->kudos.get(), &kv1::KudosService::Stub::BoostKudos, auth, r);
    });
    rpcs.emplace_back("WatchFeed", [st](const Auth& auth) {
      return FirstMessage(st->kudos.get(), &kv1::KudosService::Stub::WatchFeed, auth,
                          kv1::WatchFeedRequest(), 1500ms);
    });
    rpcs.emplace_back("CreatePerson", [st](const Auth& auth) {
      kv1::CreatePersonRequest r;
      r.mutable_person()->set_person_id("mallory");
      r.mutable_person()->set_display_name("Mallory");
      r.mutable_person()->set_active(true);
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::CreatePerson, auth, r);
    });
    rpcs.emplace_back("UpdatePerson", [st](const Auth& auth) {
      kv1::UpdatePersonRequest r;
      r.mutable_person()->set_person_id("bob");
      r.mutable_person()->set_display_name("pwned");
      r.mutable_person()->set_active(false);
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::UpdatePerson, auth, r);
    });
    rpcs.emplace_back("GetPerson", [st](const Auth& auth) {
      kv1::GetPersonRequest r;
      r.set_person_id("bob");
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::GetPerson, auth, r);
    });
    rpcs.emplace_back("ListPeople", [st](const Auth& auth) {
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListPeople, auth,
                  kv1::ListPeopleRequest());
    });
    rpcs.emplace_back("CreateTeam", [st](const Auth& auth) {
      kv1::CreateTeamRequest r;
      r.mutable_team()->set_team_id("evil");
      r.mutable_team()->set_display_name("Evil");
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::CreateTeam, auth, r);
    });
    rpcs.emplace_back("ListTeams", [st](const Auth& auth) {
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListTeams, auth,
                  kv1::ListTeamsRequest());
    });
    rpcs.emplace_back("GetOrgSettings", [st](const Auth& auth) {
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::GetOrgSettings, auth,
                  kv1::GetOrgSettingsRequest());
    });
    rpcs.emplace_back("UpdateOrgSettings", [st](const Auth& auth) {
      kv1::UpdateOrgSettingsRequest r;
      r.mutable_settings()->set_max_points(1000000);
      return Call(st->directory.get(), &kv1::DirectoryService::Stub::UpdateOrgSettings, auth, r);
    });
    rpcs.emplace_back("PostTransfers", [st](const Auth& auth) {
      lv1::PostTransfersRequest r;
      lv1::Transfer* t = r.add_transfers();
      t->set_transfer_id("attack-transfer");
      *t->mutable_debit_account() = Allowance("bob");
      *t->mutable_credit_account() = Earned("alice");
      t->set_amount(1000);
      t->set_kind(lv1::TRANSFER_KIND_KUDOS);
      r.set_linked(true);
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::PostTransfers, auth, r);
    });
    rpcs.emplace_back("GetBalance", [st](const Auth& auth) {
      lv1::GetBalanceRequest r;
      *r.mutable_account() = Earned("bob");
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::GetBalance, auth, r);
    });
    rpcs.emplace_back("ListTransfers", [st](const Auth& auth) {
      lv1::ListTransfersRequest r;
      *r.mutable_account() = Earned("bob");
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers, auth, r);
    });
    rpcs.emplace_back("GetAllowance", [st](const Auth& auth) {
      lv1::GetAllowanceRequest r;
      r.set_person_id("bob");
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::GetAllowance, auth, r);
    });
    rpcs.emplace_back("SetAllowancePolicy", [st](const Auth& auth) {
      lv1::SetAllowancePolicyRequest r;
      r.mutable_policy()->set_points_per_period(1000000);
      r.mutable_policy()->set_period(common::v1::ALLOWANCE_PERIOD_DAY);
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::SetAllowancePolicy, auth, r);
    });
    rpcs.emplace_back("CreateRedemption", [st](const Auth& auth) {
      lv1::CreateRedemptionRequest r;
      r.set_request_id("attack-redeem");
      r.set_person_id("bob");
      r.set_reward("mug");
      r.set_points(1);
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::CreateRedemption, auth, r);
    });
    rpcs.emplace_back("AdjustBalance", [st](const Auth& auth) {
      lv1::AdjustBalanceRequest r;
      r.set_request_id("attack-adjust");
      r.set_person_id("alice");
      r.set_amount(1000);
      r.set_reason("because");
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::AdjustBalance, auth, r);
    });
    rpcs.emplace_back("VerifyLedger", [st](const Auth& auth) {
      return Call(st->ledger.get(), &lv1::LedgerService::Stub::VerifyLedger, auth,
                  lv1::VerifyLedgerRequest());
    });
    rpcs.emplace_back("GetLeaderboard", [st](const Auth& auth) {
      bv1::GetLeaderboardRequest r;
      *r.mutable_board() = AllTimePoints();
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard, auth, r);
    });
    rpcs.emplace_back("GetRank", [st](const Auth& auth) {
      bv1::GetRankRequest r;
      *r.mutable_board() = AllTimePoints();
      r.set_subject_id("bob");
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetRank, auth, r);
    });
    rpcs.emplace_back("WatchLeaderboard", [st](const Auth& auth) {
      bv1::WatchLeaderboardRequest r;
      *r.mutable_board() = AllTimePoints();
      return FirstMessage(st->board.get(), &bv1::LeaderboardService::Stub::WatchLeaderboard, auth,
                          r);
    });
    rpcs.emplace_back("GetStreaks", [st](const Auth& auth) {
      bv1::GetStreaksRequest r;
      r.set_person_id("bob");
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetStreaks, auth, r);
    });
    rpcs.emplace_back("ListBadges", [st](const Auth& auth) {
      bv1::ListBadgesRequest r;
      r.set_person_id("bob");
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::ListBadges, auth, r);
    });
    rpcs.emplace_back("GetInsights", [st](const Auth& auth) {
      bv1::GetInsightsRequest r;
      r.set_team_id("core");
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetInsights, auth, r);
    });
    rpcs.emplace_back("ListUnrecognized", [st](const Auth& auth) {
      bv1::ListUnrecognizedRequest r;
      r.set_team_id("core");
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::ListUnrecognized, auth, r);
    });
    rpcs.emplace_back("RebuildProjections", [st](const Auth& auth) {
      return Call(st->board.get(), &bv1::LeaderboardService::Stub::RebuildProjections, auth,
                  bv1::RebuildProjectionsRequest());
    });
    AddFeedbackRpcs(rpcs);
    return rpcs;
  }

  // feedback.v1.FeedbackService, hosted by the kudos binary.
  void AddFeedbackRpcs(
      std::vector<std::pair<std::string, std::function<grpc::Status(const Auth&)>>>& rpcs) {
    Stubs* st = &s();
    std::string survey_id = A().survey_id;
    rpcs.emplace_back("CreateSurvey", [st](const Auth& auth) {
      fv1::CreateSurveyRequest r;
      r.mutable_survey()->set_team_id("core");
      r.mutable_survey()->add_questions()->set_kind(fv1::QUESTION_KIND_RECOMMEND);
      r.mutable_survey()->set_cadence(fv1::CADENCE_MONTHLY);
      r.mutable_survey()->set_invitations_per_period(100);
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::CreateSurvey, auth, r);
    });
    rpcs.emplace_back("GetSurvey", [st, survey_id](const Auth& auth) {
      fv1::GetSurveyRequest r;
      r.set_survey_id(survey_id);
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::GetSurvey, auth, r);
    });
    rpcs.emplace_back("ListSurveys", [st](const Auth& auth) {
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::ListSurveys, auth,
                  fv1::ListSurveysRequest());
    });
    // For someone else (bob): admins only.
    rpcs.emplace_back("RecordServiceRequest", [st](const Auth& auth) {
      fv1::RecordServiceRequestRequest r;
      r.set_provider_team_id("core");
      r.set_customer_id("bob");
      r.set_work_item_url("https://tickets.example/1");
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::RecordServiceRequest, auth, r);
    });
    rpcs.emplace_back("ListInvitations", [st](const Auth& auth) {
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::ListInvitations, auth,
                  fv1::ListInvitationsRequest());
    });
    // An invitation the caller does not have.
    rpcs.emplace_back("SubmitResponse", [st](const Auth& auth) {
      fv1::SubmitResponseRequest r;
      r.set_request_id("attack-answer");
      r.set_invitation_id("not-yours");
      fv1::Answer* answer = r.add_answers();
      answer->set_question_id("q1");
      answer->set_score(5);
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::SubmitResponse, auth, r);
    });
    rpcs.emplace_back("GetServiceScore", [st](const Auth& auth) {
      fv1::GetServiceScoreRequest r;
      r.set_team_id("core");
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::GetServiceScore, auth, r);
    });
    rpcs.emplace_back("GetFeedbackSettings", [st](const Auth& auth) {
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::GetFeedbackSettings, auth,
                  fv1::GetFeedbackSettingsRequest());
    });
    rpcs.emplace_back("UpdateFeedbackSettings", [st](const Auth& auth) {
      fv1::UpdateFeedbackSettingsRequest r;
      r.mutable_settings()->set_anonymity_threshold(3);
      return Call(st->feedback.get(), &fv1::FeedbackService::Stub::UpdateFeedbackSettings, auth, r);
    });
  }

  Snapshot baseline_;
};

// Every RPC of every service refuses every kind of bad credential with
// UNAUTHENTICATED, before touching anything.
TEST_F(AttackTest, BadCredentialsAreUnauthenticatedOnEveryRpc) {
  const std::string admin_claims_secret = "not-the-platform-secret";
  absl::Time now = absl::Now();
  common::auth::TokenRequest admin = Request(kOrgA, "root", {"admin"});
  common::auth::TokenRequest expired = admin;
  expired.ttl = absl::Seconds(30);
  common::auth::TokenRequest audience = admin;
  audience.audience = "another-api";
  common::auth::TokenRequest issuer = admin;
  issuer.issuer = "evil-issuer";
  common::auth::TokenRequest braces = Request("sec-org-a}:x{sec-org-b", "root", {"admin"});
  common::auth::TokenRequest no_org = Request("", "root", {"admin"});
  common::auth::TokenRequest no_roles = Request(kOrgA, "root", {"superuser"});
  // The payload of an admin token under the signature of a member token.
  std::string member = Mint(kOrgA, "alice", {"member"});
  std::string admin_token = Mint(kOrgA, "alice", {"admin"});
  std::vector<std::string> m = absl::StrSplit(member, '.');
  std::vector<std::string> a = absl::StrSplit(admin_token, '.');
  std::string spliced = absl::StrCat(m[0], ".", a[1], ".", m[2]);
  std::string none = B64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + a[1] + ".";
  std::string none_hs = B64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + a[1] + ".";

  const std::vector<std::pair<std::string, Auth>> bad = {
      {"no token", std::nullopt},
      {"empty bearer", std::string("Bearer ")},
      {"garbage token", Bearer("garbage")},
      {"three garbage parts", Bearer("a.b.c")},
      {"not a bearer scheme", "Basic " + B64("root:root")},
      {"token without scheme", Mint(kOrgA, "root", {"admin"})},
      {"wrong signature", Bearer(MintWith(admin, admin_claims_secret))},
      {"expired", Bearer(MintWith(expired, common::auth::kDevJwtSecret, now - absl::Minutes(5)))},
      {"wrong audience", Bearer(MintWith(audience, common::auth::kDevJwtSecret))},
      {"wrong issuer", Bearer(MintWith(issuer, common::auth::kDevJwtSecret))},
      {"alg none", Bearer(none)},
      {"HS256 without signature", Bearer(none_hs)},
      {"admin payload under a member signature", Bearer(spliced)},
      {"org breaking the hash tag", Bearer(MintWith(braces, common::auth::kDevJwtSecret))},
      {"no org", Bearer(MintWith(no_org, common::auth::kDevJwtSecret))},
      {"no known role", Bearer(MintWith(no_roles, common::auth::kDevJwtSecret))},
  };
  std::vector<Case> cases;
  for (const auto& [rpc, call] : EveryRpc()) {
    for (const auto& [what, auth] : bad) {
      cases.push_back({rpc + " with " + what, StatusCode::UNAUTHENTICATED,
                       [call = call, auth = auth] { return call(auth); }});
    }
  }
  Run(cases);
}

// A person token cannot claim to be a service; a service token needs the
// service secret.
TEST_F(AttackTest, ForgedServiceIdentityIsUnauthenticated) {
  common::auth::TokenRequest person_as_service = Request(kOrgA, "kudos", {"service"});
  common::auth::TokenRequest internal_audience = person_as_service;
  internal_audience.audience = common::auth::kServiceAudience;
  common::auth::TokenRequest mixed = Request(kOrgA, "kudos", {"admin", "service"});
  const std::vector<std::pair<std::string, Auth>> forged = {
      {"person token with roles [service]",
       Bearer(MintWith(person_as_service, common::auth::kDevJwtSecret))},
      {"person token with roles [admin, service]",
       Bearer(MintWith(mixed, common::auth::kDevJwtSecret))},
      {"service audience signed with the user secret",
       Bearer(MintWith(internal_audience, common::auth::kDevJwtSecret))},
      {"service token signed with a wrong secret",
       Bearer(*common::auth::MintServiceToken("kudos", kOrgA, "guessed-service-secret",
                                              absl::Now()))},
      {"service token signed with the user secret",
       Bearer(*common::auth::MintServiceToken("kudos", kOrgA, common::auth::kDevJwtSecret,
                                              absl::Now()))},
  };
  std::vector<Case> cases;
  for (const auto& [rpc, call] : EveryRpc()) {
    if (rpc != "PostTransfers" && rpc != "SetAllowancePolicy" && rpc != "GetBalance" &&
        rpc != "AdjustBalance" && rpc != "CreatePerson" && rpc != "CreateSurvey" &&
        rpc != "UpdateFeedbackSettings" && rpc != "ListUnrecognized") {
      continue;
    }
    for (const auto& [what, auth] : forged) {
      cases.push_back({rpc + " with " + what, StatusCode::UNAUTHENTICATED,
                       [call = call, auth = auth] { return call(auth); }});
    }
  }
  Run(cases);
}

// Screens read boards and the feed; they write nothing and read nothing
// personal.
TEST_F(AttackTest, ScreenTokensCannotWrite) {
  Auth screen = Bearer(A().screen);
  std::map<std::string, StatusCode> expected = {
      {"SendKudos", StatusCode::PERMISSION_DENIED},
      {"BoostKudos", StatusCode::PERMISSION_DENIED},
      {"CreatePerson", StatusCode::PERMISSION_DENIED},
      {"UpdatePerson", StatusCode::PERMISSION_DENIED},
      {"CreateTeam", StatusCode::PERMISSION_DENIED},
      {"UpdateOrgSettings", StatusCode::PERMISSION_DENIED},
      {"PostTransfers", StatusCode::PERMISSION_DENIED},
      {"GetBalance", StatusCode::PERMISSION_DENIED},
      {"ListTransfers", StatusCode::PERMISSION_DENIED},
      {"GetAllowance", StatusCode::PERMISSION_DENIED},
      {"SetAllowancePolicy", StatusCode::PERMISSION_DENIED},
      {"CreateRedemption", StatusCode::PERMISSION_DENIED},
      {"AdjustBalance", StatusCode::PERMISSION_DENIED},
      {"VerifyLedger", StatusCode::PERMISSION_DENIED},
      {"GetInsights", StatusCode::PERMISSION_DENIED},
      {"ListUnrecognized", StatusCode::PERMISSION_DENIED},
      {"RebuildProjections", StatusCode::PERMISSION_DENIED},
      // Screens read nothing of feedback.
      {"CreateSurvey", StatusCode::PERMISSION_DENIED},
      {"GetSurvey", StatusCode::PERMISSION_DENIED},
      {"ListSurveys", StatusCode::PERMISSION_DENIED},
      {"RecordServiceRequest", StatusCode::PERMISSION_DENIED},
      {"ListInvitations", StatusCode::PERMISSION_DENIED},
      {"SubmitResponse", StatusCode::PERMISSION_DENIED},
      {"GetServiceScore", StatusCode::PERMISSION_DENIED},
      {"GetFeedbackSettings", StatusCode::PERMISSION_DENIED},
      {"UpdateFeedbackSettings", StatusCode::PERMISSION_DENIED},
      // What a screen is for.
      {"ListKudos", StatusCode::OK},
      {"GetLeaderboard", StatusCode::OK},
      {"WatchLeaderboard", StatusCode::OK},
  };
  std::vector<Case> cases;
  for (const auto& [rpc, call] : EveryRpc()) {
    auto it = expected.find(rpc);
    if (it == expected.end()) continue;
    cases.push_back({"screen " + rpc, it->second, [call = call, screen] { return call(screen); }});
    expected.erase(it);
  }
  EXPECT_TRUE(expected.empty());
  Run(cases);
}

// Members act as themselves only: no admin actions, no one else's accounts.
TEST_F(AttackTest, MembersCannotDoAdminWorkOrReadOthersAccounts) {
  Auth alice = Bearer(A().alice);
  std::map<std::string, StatusCode> expected = {
      {"CreatePerson", StatusCode::PERMISSION_DENIED},
      {"UpdatePerson", StatusCode::PERMISSION_DENIED},
      {"CreateTeam", StatusCode::PERMISSION_DENIED},
      {"UpdateOrgSettings", StatusCode::PERMISSION_DENIED},
      {"PostTransfers", StatusCode::PERMISSION_DENIED},  // the ledger directly
      {"GetBalance", StatusCode::PERMISSION_DENIED},     // bob's
      {"ListTransfers", StatusCode::PERMISSION_DENIED},  // bob's
      {"GetAllowance", StatusCode::PERMISSION_DENIED},   // bob's
      {"SetAllowancePolicy", StatusCode::PERMISSION_DENIED},
      {"CreateRedemption", StatusCode::PERMISSION_DENIED},  // for bob
      {"AdjustBalance", StatusCode::PERMISSION_DENIED},
      {"VerifyLedger", StatusCode::PERMISSION_DENIED},
      {"GetInsights", StatusCode::PERMISSION_DENIED},
      {"ListUnrecognized", StatusCode::PERMISSION_DENIED},
      {"RebuildProjections", StatusCode::PERMISSION_DENIED},
      // Surveys, scores and settings are for managers and admins.
      {"CreateSurvey", StatusCode::PERMISSION_DENIED},
      {"GetSurvey", StatusCode::PERMISSION_DENIED},
      {"ListSurveys", StatusCode::PERMISSION_DENIED},
      {"RecordServiceRequest", StatusCode::PERMISSION_DENIED},  // for bob
      {"SubmitResponse", StatusCode::NOT_FOUND},                // not alice's invitation
      {"GetServiceScore", StatusCode::PERMISSION_DENIED},
      {"GetFeedbackSettings", StatusCode::PERMISSION_DENIED},
      {"UpdateFeedbackSettings", StatusCode::PERMISSION_DENIED},
      // Her own invitations (none).
      {"ListInvitations", StatusCode::OK},
  };
  std::vector<Case> cases;
  for (const auto& [rpc, call] : EveryRpc()) {
    auto it = expected.find(rpc);
    if (it == expected.end()) continue;
    cases.push_back({"member " + rpc, it->second, [call = call, alice] { return call(alice); }});
    expected.erase(it);
  }
  EXPECT_TRUE(expected.empty());
  // Org accounts and redemptions are admin business too.
  Stubs* st = &s();
  for (auto type : {lv1::ACCOUNT_TYPE_ISSUER, lv1::ACCOUNT_TYPE_REWARDS}) {
    cases.push_back({absl::StrCat("member reads org account ", type),
                     StatusCode::PERMISSION_DENIED, [st, alice, type] {
                       lv1::GetBalanceRequest r;
                       r.mutable_account()->set_type(type);
                       return Call(st->ledger.get(), &lv1::LedgerService::Stub::GetBalance, alice,
                                   r);
                     }});
  }
  cases.push_back({"member fulfills a redemption", StatusCode::PERMISSION_DENIED, [st, alice] {
                     lv1::FulfillRedemptionRequest r;
                     r.set_redemption_id("r1");
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::FulfillRedemption,
                                 alice, r);
                   }});
  cases.push_back({"member posts a transfer to themself", StatusCode::PERMISSION_DENIED,
                   [st, alice] {
                     lv1::PostTransfersRequest r;
                     lv1::Transfer* t = r.add_transfers();
                     t->set_transfer_id("self");
                     lv1::Account issuer;
                     issuer.set_type(lv1::ACCOUNT_TYPE_ISSUER);
                     *t->mutable_debit_account() = issuer;
                     *t->mutable_credit_account() = Earned("alice");
                     t->set_amount(1);
                     t->set_kind(lv1::TRANSFER_KIND_ADJUSTMENT);
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::PostTransfers, alice,
                                 r);
                   }});
  // A manager sees insights of teams they manage only; org-wide is admin only.
  Auth bob = Bearer(A().bob);
  cases.push_back({"member without manager role asks for org insights",
                   StatusCode::PERMISSION_DENIED, [st, bob] {
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetInsights, bob,
                                 bv1::GetInsightsRequest());
                   }});
  Auth carol = Bearer(A().carol);
  cases.push_back({"manager asks for org-wide insights", StatusCode::PERMISSION_DENIED, [st, carol] {
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetInsights,
                                 carol, bv1::GetInsightsRequest());
                   }});
  Auth manager_elsewhere = Bearer(Mint(kOrgA, "alice", {"member", "manager"}));
  cases.push_back({"manager of no one in the team", StatusCode::PERMISSION_DENIED,
                   [st, manager_elsewhere] {
                     bv1::GetInsightsRequest r;
                     r.set_team_id("core");
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetInsights,
                                 manager_elsewhere, r);
                   }});
  cases.push_back({"manager lists unrecognized people org-wide", StatusCode::PERMISSION_DENIED,
                   [st, carol] {
                     return Call(st->board.get(),
                                 &bv1::LeaderboardService::Stub::ListUnrecognized, carol,
                                 bv1::ListUnrecognizedRequest());
                   }});
  cases.push_back({"manager of no one lists the team's unrecognized people",
                   StatusCode::PERMISSION_DENIED, [st, manager_elsewhere] {
                     bv1::ListUnrecognizedRequest r;
                     r.set_team_id("core");
                     return Call(st->board.get(),
                                 &bv1::LeaderboardService::Stub::ListUnrecognized,
                                 manager_elsewhere, r);
                   }});
  // Feedback: a manager of another team neither creates surveys nor reads
  // scores of this one; managers never change the settings.
  cases.push_back({"manager of no one creates a survey of the team", StatusCode::PERMISSION_DENIED,
                   [st, manager_elsewhere] {
                     fv1::CreateSurveyRequest r;
                     r.mutable_survey()->set_team_id("core");
                     r.mutable_survey()->add_questions()->set_kind(fv1::QUESTION_KIND_CSAT);
                     r.mutable_survey()->set_cadence(fv1::CADENCE_WEEKLY);
                     r.mutable_survey()->set_invitations_per_period(1);
                     return Call(st->feedback.get(), &fv1::FeedbackService::Stub::CreateSurvey,
                                 manager_elsewhere, r);
                   }});
  cases.push_back({"manager of no one reads the team's service score",
                   StatusCode::PERMISSION_DENIED, [st, manager_elsewhere] {
                     fv1::GetServiceScoreRequest r;
                     r.set_team_id("core");
                     return Call(st->feedback.get(),
                                 &fv1::FeedbackService::Stub::GetServiceScore, manager_elsewhere,
                                 r);
                   }});
  std::string survey_id = A().survey_id;
  cases.push_back({"manager of no one reads the team's survey", StatusCode::PERMISSION_DENIED,
                   [st, manager_elsewhere, survey_id] {
                     fv1::GetSurveyRequest r;
                     r.set_survey_id(survey_id);
                     return Call(st->feedback.get(), &fv1::FeedbackService::Stub::GetSurvey,
                                 manager_elsewhere, r);
                   }});
  cases.push_back({"manager changes the feedback settings", StatusCode::PERMISSION_DENIED,
                   [st, carol] {
                     fv1::UpdateFeedbackSettingsRequest r;
                     r.mutable_settings()->set_anonymity_threshold(3);
                     return Call(st->feedback.get(),
                                 &fv1::FeedbackService::Stub::UpdateFeedbackSettings, carol, r);
                   }});
  // And what members may do, for contrast: their own balance.
  cases.push_back({"member reads own balance", StatusCode::OK, [st, bob] {
                     lv1::GetBalanceRequest r;
                     *r.mutable_account() = Earned("bob");
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::GetBalance, bob, r);
                   }});
  Run(cases);
}

// The org comes from the token: org A's tokens never see or touch org B.
TEST_F(AttackTest, OrgAReachesNothingOfOrgB) {
  Stubs* st = &s();
  const Org& a = A();
  const Org& b = B();
  std::vector<Case> cases;
  for (const auto& [who, token] : std::vector<std::pair<std::string, std::string>>{
           {"member", a.alice}, {"admin", a.admin}, {"screen", a.screen}}) {
    Auth auth = Bearer(token);
    std::string b_kudos = b.kudos_id;
    cases.push_back({"A " + who + " GetKudos of B's kudos", StatusCode::NOT_FOUND,
                     [st, auth, b_kudos] {
                       kv1::GetKudosRequest r;
                       r.set_kudos_id(b_kudos);
                       return Call(st->kudos.get(), &kv1::KudosService::Stub::GetKudos, auth, r);
                     }});
  }
  Auth alice = Bearer(a.alice);
  Auth admin = Bearer(a.admin);
  std::string b_kudos = b.kudos_id;
  cases.push_back({"A member boosts B's kudos", StatusCode::NOT_FOUND, [st, alice, b_kudos] {
                     kv1::BoostKudosRequest r;
                     r.set_kudos_id(b_kudos);
                     r.set_request_id("cross-boost");
                     r.set_points(2);
                     return Call(st->kudos.get(), &kv1::KudosService::Stub::BoostKudos, alice, r);
                   }});
  cases.push_back({"A member reads B's person", StatusCode::NOT_FOUND, [st, alice] {
                     kv1::GetPersonRequest r;
                     r.set_person_id("only-b");
                     return Call(st->directory.get(), &kv1::DirectoryService::Stub::GetPerson,
                                 alice, r);
                   }});
  cases.push_back({"A admin updates B's person", StatusCode::NOT_FOUND, [st, admin] {
                     kv1::UpdatePersonRequest r;
                     r.mutable_person()->set_person_id("only-b");
                     r.mutable_person()->set_display_name("moved");
                     r.mutable_person()->set_active(false);
                     return Call(st->directory.get(), &kv1::DirectoryService::Stub::UpdatePerson,
                                 admin, r);
                   }});
  cases.push_back({"A member sends kudos to B's person", StatusCode::NOT_FOUND, [st, alice] {
                     kv1::SendKudosRequest r;
                     r.set_request_id("cross-send");
                     r.add_recipient_ids("only-b");
                     r.set_message("hi");
                     r.add_values("teamwork");
                     r.set_points_per_recipient(1);
                     return Call(st->kudos.get(), &kv1::KudosService::Stub::SendKudos, alice, r);
                   }});
  cases.push_back({"A member streaks of B's person", StatusCode::NOT_FOUND, [st, alice] {
                     bv1::GetStreaksRequest r;
                     r.set_person_id("only-b");
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetStreaks,
                                 alice, r);
                   }});
  // Feedback: B's survey and B's people are unknown in A.
  std::string b_survey = b.survey_id;
  cases.push_back({"A admin reads B's survey", StatusCode::NOT_FOUND, [st, admin, b_survey] {
                     fv1::GetSurveyRequest r;
                     r.set_survey_id(b_survey);
                     return Call(st->feedback.get(), &fv1::FeedbackService::Stub::GetSurvey, admin,
                                 r);
                   }});
  cases.push_back({"A admin reads a score of B's survey", StatusCode::NOT_FOUND,
                   [st, admin, b_survey] {
                     fv1::GetServiceScoreRequest r;
                     r.set_team_id("core");
                     r.set_survey_id(b_survey);
                     return Call(st->feedback.get(),
                                 &fv1::FeedbackService::Stub::GetServiceScore, admin, r);
                   }});
  cases.push_back({"A admin records B's person as a provider", StatusCode::NOT_FOUND, [st, admin] {
                     fv1::RecordServiceRequestRequest r;
                     r.set_provider_person_id("only-b");
                     r.set_customer_id("alice");
                     return Call(st->feedback.get(),
                                 &fv1::FeedbackService::Stub::RecordServiceRequest, admin, r);
                   }});
  cases.push_back({"A admin records B's person as a customer", StatusCode::NOT_FOUND, [st, admin] {
                     fv1::RecordServiceRequestRequest r;
                     r.set_provider_team_id("core");
                     r.set_customer_id("only-b");
                     return Call(st->feedback.get(),
                                 &fv1::FeedbackService::Stub::RecordServiceRequest, admin, r);
                   }});
  // B's leaderboard page token in A: bound to B's board.
  bv1::GetLeaderboardRequest first;
  *first.mutable_board() = AllTimePoints();
  first.set_page_size(1);
  bv1::GetLeaderboardResponse b_page;
  ASSERT_TRUE(Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                   Bearer(b.admin), first, &b_page)
                  .ok());
  ASSERT_FALSE(b_page.next_page_token().empty());
  std::string b_token = b_page.next_page_token();
  cases.push_back({"A admin pages with B's board token", StatusCode::INVALID_ARGUMENT,
                   [st, admin, b_token] {
                     bv1::GetLeaderboardRequest r;
                     *r.mutable_board() = AllTimePoints();
                     r.set_page_token(b_token);
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                                 admin, r);
                   }});
  Run(cases);

  // Reads succeed but show A's data only.
  kv1::ListKudosRequest feed;
  feed.set_page_size(100);
  kv1::ListKudosResponse feed_a;
  ASSERT_TRUE(Call(st->kudos.get(), &kv1::KudosService::Stub::ListKudos, alice, feed, &feed_a).ok());
  ASSERT_EQ(feed_a.kudos_size(), 3);
  for (const auto& kudos : feed_a.kudos()) {
    EXPECT_NE(kudos.kudos_id(), b.kudos_id);
    EXPECT_NE(kudos.message().find(kOrgA), std::string::npos) << kudos.message();
  }
  kv1::ListPeopleResponse people;
  ASSERT_TRUE(Call(st->directory.get(), &kv1::DirectoryService::Stub::ListPeople, alice,
                   kv1::ListPeopleRequest(), &people)
                  .ok());
  std::vector<std::string> ids;
  for (const auto& person : people.people()) ids.push_back(person.person_id());
  EXPECT_EQ(absl::StrJoin(ids, ","), "alice,bob,carol,only-a");
  fv1::ListSurveysResponse surveys;
  ASSERT_TRUE(Call(st->feedback.get(), &fv1::FeedbackService::Stub::ListSurveys, admin,
                   fv1::ListSurveysRequest(), &surveys)
                  .ok());
  ASSERT_EQ(surveys.surveys_size(), 1);
  EXPECT_EQ(surveys.surveys(0).survey_id(), a.survey_id);
  lv1::GetBalanceRequest balance;
  *balance.mutable_account() = Earned("bob");
  lv1::GetBalanceResponse bob_a;
  ASSERT_TRUE(Call(st->ledger.get(), &lv1::LedgerService::Stub::GetBalance, Bearer(a.bob), balance,
                   &bob_a)
                  .ok());
  EXPECT_EQ(bob_a.balance(), a.points);
  *balance.mutable_account() = Earned("only-b");
  lv1::GetBalanceResponse only_b;
  ASSERT_TRUE(
      Call(st->ledger.get(), &lv1::LedgerService::Stub::GetBalance, admin, balance, &only_b).ok());
  EXPECT_EQ(only_b.balance(), 0) << "org A's admin sees an org B balance";
  bv1::GetLeaderboardRequest board;
  *board.mutable_board() = AllTimePoints();
  bv1::GetLeaderboardResponse board_a;
  ASSERT_TRUE(Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard, alice, board,
                   &board_a)
                  .ok());
  ASSERT_EQ(board_a.entries_size(), 3);
  for (const auto& entry : board_a.entries()) {
    EXPECT_NE(entry.subject_id(), "only-b");
    EXPECT_NE(entry.display_name().find(kOrgA), std::string::npos) << entry.display_name();
  }
  EXPECT_EQ(board_a.entries(0).subject_id(), "only-a");
  EXPECT_EQ(board_a.entries(0).score(), a.points + 1);
  EXPECT_EQ(board_a.entries(1).subject_id(), "bob");
  EXPECT_EQ(board_a.entries(1).score(), a.points);
  EXPECT_EQ(board_a.entries(2).subject_id(), "carol");
  EXPECT_EQ(board_a.entries(2).score(), 1);
}

// Requests over a server's limit are refused by the transport.
TEST_F(AttackTest, OversizedMessagesAreResourceExhausted) {
  Stubs* st = &s();
  Auth alice = Bearer(A().alice);
  Auth admin = Bearer(A().admin);
  std::vector<Case> cases;
  for (const auto& [who, auth] : std::vector<std::pair<std::string, Auth>>{
           {"member", alice}, {"anonymous", std::nullopt}}) {
    cases.push_back({who + " SendKudos of 300 KiB", StatusCode::RESOURCE_EXHAUSTED, [st, auth] {
                       kv1::SendKudosRequest r;
                       r.set_request_id("big");
                       r.add_recipient_ids("bob");
                       r.set_message(std::string(300 * 1024, 'x'));
                       r.add_values("teamwork");
                       r.set_points_per_recipient(1);
                       return Call(st->kudos.get(), &kv1::KudosService::Stub::SendKudos, auth, r);
                     }});
    cases.push_back({who + " CreatePerson of 1 MiB", StatusCode::RESOURCE_EXHAUSTED, [st, auth] {
                       kv1::CreatePersonRequest r;
                       r.mutable_person()->set_person_id("big");
                       r.mutable_person()->set_display_name(std::string(1 << 20, 'x'));
                       return Call(st->directory.get(),
                                   &kv1::DirectoryService::Stub::CreatePerson, auth, r);
                     }});
    cases.push_back({who + " PostTransfers of 3 MiB", StatusCode::RESOURCE_EXHAUSTED, [st, auth] {
                       lv1::PostTransfersRequest r;
                       for (int i = 0; i < 3; ++i) {
                         lv1::Transfer* t = r.add_transfers();
                         t->set_transfer_id(absl::StrCat("big", i));
                         (*t->mutable_tags())["x"] = std::string(1 << 20, 'x');
                       }
                       return Call(st->ledger.get(), &lv1::LedgerService::Stub::PostTransfers,
                                   auth, r);
                     }});
    cases.push_back({who + " GetLeaderboard of 300 KiB", StatusCode::RESOURCE_EXHAUSTED,
                     [st, auth] {
                       bv1::GetLeaderboardRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.mutable_board()->set_scope_id(std::string(300 * 1024, 'x'));
                       return Call(st->board.get(),
                                   &bv1::LeaderboardService::Stub::GetLeaderboard, auth, r);
                     }});
    cases.push_back({who + " WatchLeaderboard of 300 KiB", StatusCode::RESOURCE_EXHAUSTED,
                     [st, auth] {
                       bv1::WatchLeaderboardRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.mutable_board()->set_period(std::string(300 * 1024, 'x'));
                       return FirstMessage(st->board.get(),
                                           &bv1::LeaderboardService::Stub::WatchLeaderboard, auth,
                                           r);
                     }});
  }
  // Just under the limits is not a transport matter: the services answer.
  cases.push_back({"SendKudos of 200 KiB reaches validation", StatusCode::INVALID_ARGUMENT,
                   [st, alice] {
                     kv1::SendKudosRequest r;
                     r.set_request_id("big");
                     r.add_recipient_ids("bob");
                     r.set_message(std::string(200 * 1024, 'x'));
                     r.add_values("teamwork");
                     r.set_points_per_recipient(1);
                     return Call(st->kudos.get(), &kv1::KudosService::Stub::SendKudos, alice, r);
                   }});
  cases.push_back({"PostTransfers of 1.5 MiB by a member reaches the permission check",
                   StatusCode::PERMISSION_DENIED, [st, alice] {
                     lv1::PostTransfersRequest r;
                     lv1::Transfer* t = r.add_transfers();
                     t->set_transfer_id("big");
                     (*t->mutable_tags())["x"] = std::string(1536 * 1024, 'x');
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::PostTransfers, alice,
                                 r);
                   }});
  Run(cases);
}

// Every list RPC refuses page sizes over its maximum (and negative ones).
TEST_F(AttackTest, HugePageSizesAreInvalidArgument) {
  Stubs* st = &s();
  Auth admin = Bearer(A().admin);
  std::vector<Case> cases;
  for (int64_t size : {int64_t{-1}, int64_t{1001}, int64_t{1} << 30, int64_t{2147483647}}) {
    int32_t n = static_cast<int32_t>(size);
    std::string suffix = absl::StrCat(" page_size ", n);
    cases.push_back({"ListKudos" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, n] {
                       kv1::ListKudosRequest r;
                       r.set_page_size(n);
                       return Call(st->kudos.get(), &kv1::KudosService::Stub::ListKudos, admin, r);
                     }});
    cases.push_back({"ListPeople" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, n] {
                       kv1::ListPeopleRequest r;
                       r.set_page_size(n);
                       return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListPeople,
                                   admin, r);
                     }});
    cases.push_back({"ListTeams" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, n] {
                       kv1::ListTeamsRequest r;
                       r.set_page_size(n);
                       return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListTeams,
                                   admin, r);
                     }});
    cases.push_back({"ListTransfers" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, n] {
                       lv1::ListTransfersRequest r;
                       *r.mutable_account() = Earned("bob");
                       r.set_page_size(n);
                       return Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers,
                                   admin, r);
                     }});
    cases.push_back({"GetLeaderboard" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, n] {
                       bv1::GetLeaderboardRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.set_page_size(n);
                       return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                                   admin, r);
                     }});
    cases.push_back({"WatchLeaderboard top_n " + std::to_string(n), StatusCode::INVALID_ARGUMENT,
                     [st, admin, n] {
                       bv1::WatchLeaderboardRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.set_top_n(n);
                       return FirstMessage(st->board.get(),
                                           &bv1::LeaderboardService::Stub::WatchLeaderboard, admin,
                                           r);
                     }});
    cases.push_back({"GetRank neighbors " + std::to_string(n), StatusCode::INVALID_ARGUMENT,
                     [st, admin, n] {
                       bv1::GetRankRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.set_subject_id("bob");
                       r.set_neighbors(n);
                       return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetRank, admin,
                                   r);
                     }});
  }
  // Just over each documented maximum.
  cases.push_back({"ListKudos page_size 101", StatusCode::INVALID_ARGUMENT, [st, admin] {
                     kv1::ListKudosRequest r;
                     r.set_page_size(101);
                     return Call(st->kudos.get(), &kv1::KudosService::Stub::ListKudos, admin, r);
                   }});
  cases.push_back({"ListTransfers page_size 501", StatusCode::INVALID_ARGUMENT, [st, admin] {
                     lv1::ListTransfersRequest r;
                     *r.mutable_account() = Earned("bob");
                     r.set_page_size(501);
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers, admin,
                                 r);
                   }});
  cases.push_back({"GetLeaderboard page_size 101", StatusCode::INVALID_ARGUMENT, [st, admin] {
                     bv1::GetLeaderboardRequest r;
                     *r.mutable_board() = AllTimePoints();
                     r.set_page_size(101);
                     return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                                 admin, r);
                   }});
  Run(cases);
}

// Every paginated RPC refuses page tokens it did not make.
TEST_F(AttackTest, MalformedPageTokensAreInvalidArgument) {
  Stubs* st = &s();
  Auth admin = Bearer(A().admin);
  const std::vector<std::string> tokens = {
      "!!!not-base64!!!", B64("hello"), B64(std::string(40, '\xff')), std::string(600, 'A'),
      B64("kt1:") + "%%", "-1", B64(std::string("\0\0\0", 3))};
  std::vector<Case> cases;
  for (const std::string& token : tokens) {
    std::string suffix = " page_token '" + absl::CEscape(token.substr(0, 24)) + "'";
    cases.push_back({"ListKudos" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, token] {
                       kv1::ListKudosRequest r;
                       r.set_page_token(token);
                       return Call(st->kudos.get(), &kv1::KudosService::Stub::ListKudos, admin, r);
                     }});
    cases.push_back({"ListPeople" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, token] {
                       kv1::ListPeopleRequest r;
                       r.set_page_token(token);
                       return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListPeople,
                                   admin, r);
                     }});
    cases.push_back({"ListTeams" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, token] {
                       kv1::ListTeamsRequest r;
                       r.set_page_token(token);
                       return Call(st->directory.get(), &kv1::DirectoryService::Stub::ListTeams,
                                   admin, r);
                     }});
    cases.push_back({"ListTransfers" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, token] {
                       lv1::ListTransfersRequest r;
                       *r.mutable_account() = Earned("bob");
                       r.set_page_token(token);
                       return Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers,
                                   admin, r);
                     }});
    cases.push_back({"GetLeaderboard" + suffix, StatusCode::INVALID_ARGUMENT, [st, admin, token] {
                       bv1::GetLeaderboardRequest r;
                       *r.mutable_board() = AllTimePoints();
                       r.set_page_token(token);
                       return Call(st->board.get(), &bv1::LeaderboardService::Stub::GetLeaderboard,
                                   admin, r);
                     }});
  }
  // A real token of another account or board is refused too.
  lv1::ListTransfersRequest first;
  *first.mutable_account() = Allowance("alice");
  first.set_page_size(1);
  lv1::ListTransfersResponse page;
  ASSERT_TRUE(Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers, admin, first, &page)
                  .ok());
  ASSERT_FALSE(page.next_page_token().empty());
  std::string alice_token = page.next_page_token();
  cases.push_back({"ListTransfers with another account's token", StatusCode::INVALID_ARGUMENT,
                   [st, admin, alice_token] {
                     lv1::ListTransfersRequest r;
                     *r.mutable_account() = Earned("bob");
                     r.set_page_token(alice_token);
                     return Call(st->ledger.get(), &lv1::LedgerService::Stub::ListTransfers, admin,
                                 r);
                   }});
  Run(cases);
}

// ---- rate limits -----------------------------------------------------------------------

// A second deployment of each service with tiny limits, sharing the Redis.
class RateLimitTest : public ::testing::Test {
 protected:
  static harness::Service Start(const char* binary, std::vector<std::string> args) {
    Platform& p = *Platform::Get();
    return harness::Service(binary, p.redis().address(), std::move(args));
  }

  // The status and the trailing metadata of one GetOrgSettings call.
  struct Result {
    grpc::Status status;
    std::multimap<std::string, std::string> trailers;
  };
  template <typename Stub, typename Req, typename Resp>
  static Result CallWithTrailers(Stub* stub,
                                 grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&,
                                                              Resp*),
                                 const Auth& auth, const Req& request) {
    Resp response;
    auto context = Ctx(auth);
    Result result;
    result.status = (stub->*method)(context.get(), request, &response);
    for (const auto& [key, value] : context->GetServerTrailingMetadata()) {
      result.trailers.emplace(std::string(key.data(), key.size()),
                              std::string(value.data(), value.size()));
    }
    return result;
  }

  // The refusal carries the retry information, in the message and trailers.
  static int64_t ExpectRateLimited(const Result& result, const std::string& what) {
    EXPECT_EQ(result.status.error_code(), StatusCode::RESOURCE_EXHAUSTED)
        << what << ": " << result.status.error_message();
    int64_t message_ms = -1;
    const std::string prefix = "rate limit: retry after ";
    EXPECT_EQ(result.status.error_message().rfind(prefix, 0), 0u)
        << what << ": " << result.status.error_message();
    if (result.status.error_message().rfind(prefix, 0) == 0) {
      message_ms = std::stoll(result.status.error_message().substr(prefix.size()));
    }
    auto it = result.trailers.find(common::auth::kRetryAfterMetadata);
    EXPECT_NE(it, result.trailers.end()) << what << ": no retry-after-ms trailer";
    int64_t trailer_ms = it == result.trailers.end() ? -2 : std::stoll(it->second);
    EXPECT_EQ(trailer_ms, message_ms) << what;
    EXPECT_GT(trailer_ms, 0) << what;
    EXPECT_LE(trailer_ms, 1000) << what;  // 1 call/s
    return trailer_ms;
  }
};

TEST_F(RateLimitTest, EveryServiceRefusesAPersonOverTheLimitWithRetryInformation) {
  Platform& p = *Platform::Get();
  const std::vector<std::string> tiny = {"--rate_limit_person_rps=1",
                                         "--rate_limit_person_burst=3"};
  harness::Service ledger = Start(LEDGER_BINARY, tiny);
  std::vector<std::string> kudos_args = tiny;
  kudos_args.push_back("--ledger=" + p.ledger().address());
  harness::Service kudos = Start(KUDOS_BINARY, kudos_args);
  std::vector<std::string> board_args = tiny;
  board_args.push_back("--consumer_name=sec-limited");
  harness::Service board = Start(LEADERBOARD_BINARY, board_args);
  Stubs st;
  st.Connect(kudos.address(), ledger.address(), board.address());
  Snapshot before = Take();

  const Org& a = Platform::Get()->a();
  Auth bob = Bearer(a.bob);
  lv1::GetBalanceRequest balance;
  *balance.mutable_account() = Earned("bob");
  bv1::WatchLeaderboardRequest watch;
  *watch.mutable_board() = AllTimePoints();
  std::vector<std::pair<std::string, std::function<Result()>>> calls = {
      {"kudos GetOrgSettings",
       [&] {
         return CallWithTrailers(st.directory.get(), &kv1::DirectoryService::Stub::GetOrgSettings,
                                 bob, kv1::GetOrgSettingsRequest());
       }},
      {"ledger GetBalance",
       [&] {
         return CallWithTrailers(st.ledger.get(), &lv1::LedgerService::Stub::GetBalance, bob,
                                 balance);
       }},
      {"leaderboard WatchLeaderboard (callback API)",
       [&] {
         auto context = Ctx(bob, 3s);
         auto reader = st.board->WatchLeaderboard(context.get(), watch);
         bv1::WatchLeaderboardResponse message;
         Result result;
         if (reader->Read(&message)) {
           context->TryCancel();
           while (reader->Read(&message)) {
           }
           reader->Finish();
           return result;  // OK
         }
         result.status = reader->Finish();
         for (const auto& [key, value] : context->GetServerTrailingMetadata()) {
           result.trailers.emplace(std::string(key.data(), key.size()),
                                   std::string(value.data(), value.size()));
         }
         return result;
       }},
  };
  for (const auto& [what, call] : calls) {
    // The burst passes, the next call is refused, and after the advertised
    // wait the caller gets through again.
    for (int i = 0; i < 3; ++i) {
      Result ok = call();
      ASSERT_TRUE(ok.status.ok()) << what << " call " << i << ": " << ok.status.error_message();
    }
    Result refused = call();
    int64_t wait_ms = ExpectRateLimited(refused, what);
    auto pushback = refused.trailers.find(common::auth::kRetryPushbackMetadata);
    // gRPC's own retry pushback: the client's retry machinery may consume it.
    if (pushback != refused.trailers.end()) {
      EXPECT_EQ(std::stoll(pushback->second), wait_ms);
    } else {
      std::cout << "note: " << what << ": grpc-retry-pushback-ms not visible to the client\n";
    }
    if (what == "ledger GetBalance") {
      // The same person through another token shares the person's bucket.
      Result other_token = CallWithTrailers(
          st.ledger.get(), &lv1::LedgerService::Stub::GetBalance,
          Bearer(MintWith(Request(kOrgA, "bob", {"member"}), common::auth::kDevJwtSecret,
                          absl::Now() - absl::Seconds(1))),
          balance);
      ExpectRateLimited(other_token, "bob's second token");
      // Another person of the same org is not affected.
      Result alice = CallWithTrailers(st.ledger.get(), &lv1::LedgerService::Stub::GetBalance,
                                      Bearer(a.alice), [] {
                                        lv1::GetBalanceRequest r;
                                        *r.mutable_account() = Earned("alice");
                                        return r;
                                      }());
      EXPECT_TRUE(alice.status.ok()) << alice.status.error_message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms + 20));
    Result again = call();
    EXPECT_TRUE(again.status.ok()) << what << " after waiting: " << again.status.error_message();
  }
  // Services are never limited.
  std::string service = *common::auth::MintServiceToken("kudos", kOrgA,
                                                         common::auth::kDevServiceSecret,
                                                         absl::Now());
  for (int i = 0; i < 20; ++i) {
    lv1::GetAllowanceRequest allowance;
    allowance.set_person_id("bob");
    Result result = CallWithTrailers(st.ledger.get(), &lv1::LedgerService::Stub::GetAllowance,
                                     Bearer(service), allowance);
    ASSERT_TRUE(result.status.ok()) << "service call " << i << ": " << result.status.error_message();
  }
  // Refusals change nothing.
  Snapshot after = Take();
  EXPECT_TRUE(after == before) << Diff(before, after);
}

TEST_F(RateLimitTest, PerTokenLimitStopsOneTokenNotThePerson) {
  Platform& p = *Platform::Get();
  std::vector<std::string> args = {"--rate_limit_person_rps=0", "--rate_limit_token_rps=1",
                                   "--rate_limit_token_burst=2", "--ledger=" + p.ledger().address()};
  harness::Service kudos = Start(KUDOS_BINARY, args);
  Stubs st;
  st.Connect(kudos.address(), p.ledger().address(), p.board().address());
  Auth first = Bearer(Platform::Get()->a().alice);
  for (int i = 0; i < 2; ++i) {
    Result ok = CallWithTrailers(st.kudos.get(), &kv1::KudosService::Stub::ListKudos, first,
                                 kv1::ListKudosRequest());
    ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  }
  Result refused = CallWithTrailers(st.kudos.get(), &kv1::KudosService::Stub::ListKudos, first,
                                    kv1::ListKudosRequest());
  ExpectRateLimited(refused, "kudos ListKudos, one token");
  EXPECT_NE(refused.status.error_message().find("token"), std::string::npos);
  // Alice's other token (another iat) is its own bucket.
  Auth second = Bearer(MintWith(Request(kOrgA, "alice", {"member"}), common::auth::kDevJwtSecret,
                                absl::Now() - absl::Seconds(3)));
  ASSERT_NE(*second, *first);
  Result other = CallWithTrailers(st.kudos.get(), &kv1::KudosService::Stub::ListKudos, second,
                                  kv1::ListKudosRequest());
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
}

// Each kudos feed watcher holds a thread and a Redis connection: one person
// cannot hold more than --max_streams_per_person of them.
TEST_F(RateLimitTest, OpenStreamsPerPersonAreCapped) {
  Platform& p = *Platform::Get();
  harness::Service kudos = Start(
      KUDOS_BINARY, {"--max_streams_per_person=2", "--ledger=" + p.ledger().address()});
  Stubs st;
  st.Connect(kudos.address(), p.ledger().address(), p.board().address());
  Auth alice = Bearer(p.a().alice);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<kv1::WatchFeedResponse>>> streams;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(Ctx(alice, 30s));
    streams.push_back(st.kudos->WatchFeed(contexts.back().get(), kv1::WatchFeedRequest()));
  }
  std::this_thread::sleep_for(500ms);  // both handlers hold their slot
  // A third is refused at once; a watcher that is accepted just waits.
  auto probe = [&](const Auth& auth) {
    return FirstMessage(st.kudos.get(), &kv1::KudosService::Stub::WatchFeed, auth,
                        kv1::WatchFeedRequest(), 1500ms);
  };
  grpc::Status third = probe(alice);
  EXPECT_EQ(third.error_code(), StatusCode::RESOURCE_EXHAUSTED) << third.error_message();
  // Other people are not affected.
  EXPECT_EQ(probe(Bearer(p.a().bob)).error_code(), StatusCode::DEADLINE_EXCEEDED);
  // Closing one frees its slot (the handler notices within its 1 s read).
  contexts[0]->TryCancel();
  streams[0]->Finish();
  EXPECT_TRUE(Eventually(
      [&] { return probe(alice).error_code() == StatusCode::DEADLINE_EXCEEDED; }, 10s));
  contexts[1]->TryCancel();
  streams[1]->Finish();
}

// ---- audit -------------------------------------------------------------------------------

TEST(AuditTest, AdminActionsAreAuditedInTheirOrgsStreamOnly) {
  Platform& p = *Platform::Get();
  Stubs& st = p.stubs();
  const Org& a = p.a();
  Auth admin = Bearer(a.admin);
  auto length = [&](const std::string& org) {
    auto reply = p.pool().Run({"XLEN", "audit:{" + org + "}"});
    return reply.ok() ? reply->integer : -1;
  };
  long long a_before = length(kOrgA), b_before = length(kOrgB);
  // Seeding was audited: team, four people per org.
  EXPECT_GE(a_before, 5);
  EXPECT_GE(b_before, 5);

  kv1::CreateTeamRequest team;
  team.mutable_team()->set_team_id("audited");
  team.mutable_team()->set_display_name("Audited");
  ASSERT_TRUE(Call(st.directory.get(), &kv1::DirectoryService::Stub::CreateTeam, admin, team).ok());
  kv1::GetOrgSettingsResponse settings;
  ASSERT_TRUE(Call(st.directory.get(), &kv1::DirectoryService::Stub::GetOrgSettings, admin,
                   kv1::GetOrgSettingsRequest(), &settings)
                  .ok());
  kv1::UpdateOrgSettingsRequest update;
  *update.mutable_settings() = settings.settings();
  update.mutable_settings()->set_max_points(40);
  ASSERT_TRUE(
      Call(st.directory.get(), &kv1::DirectoryService::Stub::UpdateOrgSettings, admin, update).ok());
  lv1::AdjustBalanceRequest adjust;
  adjust.set_request_id("audit-adjust");
  adjust.set_person_id("alice");
  adjust.set_amount(3);
  adjust.set_reason("welcome bonus");
  grpc::Status adjusted = Call(st.ledger.get(), &lv1::LedgerService::Stub::AdjustBalance, admin, adjust);
  ASSERT_TRUE(adjusted.ok()) << adjusted.error_message();
  grpc::Status rebuilt = Call(st.board.get(), &bv1::LeaderboardService::Stub::RebuildProjections,
                              admin, bv1::RebuildProjectionsRequest());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error_message();

  auto entries = p.pool().Run({"XRANGE", "audit:{" + std::string(kOrgA) + "}", "-", "+"});
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(static_cast<long long>(entries->elements.size()), a_before + 4);
  std::vector<std::map<std::string, std::string>> recent;
  for (size_t i = a_before; i < entries->elements.size(); ++i) {
    std::map<std::string, std::string> fields;
    const auto& list = entries->elements[i].elements[1].elements;
    for (size_t j = 0; j + 1 < list.size(); j += 2) fields[list[j].str] = list[j + 1].str;
    recent.push_back(fields);
  }
  std::vector<std::string> actions;
  for (const auto& fields : recent) {
    EXPECT_EQ(fields.at("actor"), "root");                       // who
    EXPECT_FALSE(fields.at("action").empty());                    // what
    EXPECT_FALSE(fields.at("target").empty());                    // to what
    EXPECT_EQ(fields.at("time").rfind("20", 0), 0u) << fields.at("time");  // when
    EXPECT_TRUE(fields.count("reason"));                          // why
    actions.push_back(fields.at("action"));
  }
  EXPECT_EQ(recent[0].at("target"), "audited");
  EXPECT_NE(recent[2].at("target").find("alice"), std::string::npos) << recent[2].at("target");
  EXPECT_EQ(recent[2].at("reason"), "welcome bonus");
  EXPECT_NE(recent[3].at("reason").find("replayed"), std::string::npos);
  EXPECT_EQ(actions.size(), 4u) << absl::StrJoin(actions, ",");
  // Nothing of org A's admin landed in org B's trail.
  EXPECT_EQ(length(kOrgB), b_before);
}

// ---- shutdown ----------------------------------------------------------------------------

// SIGTERM with clients connected (an idle channel and an open stream) stops
// a service well within the harness' 3 s grace, and the stream ends with
// UNAVAILABLE rather than being cut.
TEST(ShutdownTest, ServicesStopPromptlyWithClientsConnected) {
  Platform& p = *Platform::Get();
  for (const char* binary : {LEDGER_BINARY, KUDOS_BINARY, LEADERBOARD_BINARY}) {
    std::vector<std::string> args;
    if (std::string(binary) == KUDOS_BINARY) args = {"--ledger=" + p.ledger().address()};
    if (std::string(binary) == LEADERBOARD_BINARY) args = {"--consumer_name=sec-shutdown"};
    harness::Service service(binary, p.redis().address(), args);
    Stubs st;
    st.Connect(service.address(), service.address(), service.address());
    Auth alice = Bearer(p.a().alice);
    // An idle connection: one call done, channel kept open.
    if (std::string(binary) == LEDGER_BINARY) {
      lv1::GetBalanceRequest r;
      *r.mutable_account() = Earned("alice");
      ASSERT_TRUE(Call(st.ledger.get(), &lv1::LedgerService::Stub::GetBalance, alice, r).ok());
    }
    // An open stream.
    std::unique_ptr<grpc::ClientContext> stream_context;
    std::thread reader;
    grpc::Status stream_status;
    if (std::string(binary) != LEDGER_BINARY) {
      stream_context = Ctx(alice, 20s);
      reader = std::thread([&, binary] {
        if (std::string(binary) == KUDOS_BINARY) {
          auto stream = st.kudos->WatchFeed(stream_context.get(), kv1::WatchFeedRequest());
          kv1::WatchFeedResponse message;
          while (stream->Read(&message)) {
          }
          stream_status = stream->Finish();
        } else {
          bv1::WatchLeaderboardRequest request;
          *request.mutable_board() = AllTimePoints();
          auto stream = st.board->WatchLeaderboard(stream_context.get(), request);
          bv1::WatchLeaderboardResponse message;
          while (stream->Read(&message)) {
          }
          stream_status = stream->Finish();
        }
      });
      std::this_thread::sleep_for(500ms);  // the stream is established
    }
    auto started = std::chrono::steady_clock::now();
    service.Stop();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    EXPECT_LT(took.count(), 2500) << binary << " took " << took.count() << " ms to stop";
    if (reader.joinable()) {
      reader.join();
      EXPECT_EQ(stream_status.error_code(), StatusCode::UNAVAILABLE)
          << binary << ": " << stream_status.error_message();
    }
  }
}

const bool kRegistered = [] {
  Platform::Register();
  ::testing::AddGlobalTestEnvironment(Platform::Get());
  return true;
}();

}  // namespace
