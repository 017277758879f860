// Issue 12, finding 2 (one org stops every org's leaderboards) and the
// consumer part of finding 8 (a wedged consumer is visible in health).
// A real redis-server and the real leaderboard_server; events are XADDed
// exactly as the ledger writes them. Two orgs: `acme` (healthy) and
// `victim` (its rebuild lock held, its directory corrupt, or rebuilt).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/harness/eventually.h"

namespace {

using namespace std::chrono_literals;
namespace bv1 = leaderboard::v1;

constexpr char kAcme[] = "acme";
constexpr char kVictim[] = "victim";

using harness::Eventually;

std::string LedgerStream(const std::string& org) { return "ledger:{" + org + "}:outbox"; }
std::string KudosStream(const std::string& org) { return "kudos:{" + org + "}:events"; }
std::string AllTimeBoardKey(const std::string& org) {
  return "lb:{" + org + "}:points_received:all:all:org";
}

// A TransfersPosted of `points` to `person`, as kudos has the ledger post it.
std::string TransferPayload(const std::string& org, const std::string& id,
                            const std::string& person, int64_t points) {
  ledger::v1::LedgerEvent event;
  auto* posted = event.mutable_transfers_posted();
  posted->set_org_id(org);
  int64_t now = absl::ToUnixSeconds(absl::Now());
  posted->mutable_post_time()->set_seconds(now);
  auto* t = posted->add_transfers();
  t->set_transfer_id(id + ":" + person);
  t->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  t->mutable_debit_account()->set_person_id("giver");
  t->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  t->mutable_credit_account()->set_person_id(person);
  t->set_amount(points);
  t->set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  t->set_reference(id);
  (*t->mutable_tags())["giver"] = "giver";
  t->mutable_post_time()->set_seconds(now);
  return event.SerializeAsString();
}

class IsolationTest : public ::testing::Test {
 protected:
  IsolationTest() {
    common::redis::PoolOptions options;
    options.endpoint = *common::redis::ParseEndpoint(redis_.address());
    options.size = 2;
    pool_ = std::make_unique<common::redis::Pool>(options);
  }

  // The service with test-sized limits (environment, so that a binary
  // without them still starts: the reproductions ran against it).
  void StartLeaderboard(std::map<std::string, std::string> env = {}) {
    env.emplace("LEADERBOARD_CONSUMER_MAX_BACKOFF_MS", "200");
    env.emplace("LEADERBOARD_CONSUMER_MAX_ATTEMPTS", "3");
    env.emplace("LEADERBOARD_REBUILD_MIN_INTERVAL_MS", "0");
    server_ = std::make_unique<harness::Service>(LEADERBOARD_BINARY, redis_.address(),
                                                 std::vector<std::string>{}, env);
    stub_ = bv1::LeaderboardService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  std::string Transfer(const std::string& org, const std::string& person, int64_t points) {
    std::string id = absl::StrCat("T", ++seq_);
    auto replies = pool_->Pipeline(
        {common::redis::RegisterOrgCommand(org),
         {"XADD", LedgerStream(org), "*", "event", TransferPayload(org, id, person, points)}});
    EXPECT_TRUE(replies.ok() && (*replies)[1].ok());
    EXPECT_TRUE(pool_->Run(common::redis::IndexOrgSlotCommand(org)).ok());
    return replies.ok() && (*replies)[1].ok() ? (*replies)[1]->str : "";
  }

  // The all-time points of `person` read through the API (-1: not ranked or failed).
  int64_t Score(const std::string& org, const std::string& person) {
    bv1::GetRankRequest request;
    request.mutable_board()->set_metric(bv1::METRIC_POINTS_RECEIVED);
    request.mutable_board()->set_window(bv1::WINDOW_ALL_TIME);
    request.mutable_board()->set_scope(bv1::SCOPE_ORG);
    request.set_subject_id(person);
    bv1::GetRankResponse response;
    auto context = harness::Context(harness::MintToken(org, "reader", {"member"}));
    grpc::Status status = stub_->GetRank(context.get(), request, &response);
    if (!status.ok() || !response.ranked()) return -1;
    return response.entry().score();
  }

  int64_t Integer(const common::redis::Command& command) {
    auto reply = pool_->Run(command);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->integer : -1;
  }

  int64_t Pending(const std::string& stream) {
    auto reply = pool_->Run({"XPENDING", stream, "leaderboard"});
    if (!reply.ok() || reply->elements.empty()) return -1;
    return reply->elements[0].integer;
  }

  grpc::Status Rebuild(const std::string& org, bv1::RebuildProjectionsResponse* response,
                       grpc::ClientContext* context = nullptr) {
    std::unique_ptr<grpc::ClientContext> own;
    if (context == nullptr) {
      own = harness::Context(harness::MintToken(org, "boss", {"admin"}), 60s);
      context = own.get();
    }
    return stub_->RebuildProjections(context, {}, response);
  }

  // grpc.health.v1.Health/Check of `service` (hand-encoded: the request is
  // field 1, the response's status field 1: 1 SERVING, 2 NOT_SERVING).
  std::string Health(const std::string& service) {
    grpc::GenericStub stub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    std::string bytes = std::string(1, '\x0a') + static_cast<char>(service.size()) + service;
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 5s);
    std::promise<grpc::Status> done;
    stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                   &response, [&](grpc::Status status) { done.set_value(status); });
    grpc::Status status = done.get_future().get();
    if (!status.ok()) return absl::StrCat("error ", status.error_code());
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return "undecodable";
    std::string body;
    for (const grpc::Slice& s : slices) body.append(reinterpret_cast<const char*>(s.begin()), s.size());
    if (body == std::string("\x08\x01", 2)) return "SERVING";
    if (body == std::string("\x08\x02", 2)) return "NOT_SERVING";
    return "unknown";
  }

  harness::RedisServer redis_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::unique_ptr<harness::Service> server_;
  std::unique_ptr<bv1::LeaderboardService::Stub> stub_;
  int seq_ = 0;
};

// The reproduction of the issue: a rebuild lock held on `victim` (an admin
// calling RebuildProjections, or a crashed rebuild) froze every org.
TEST_F(IsolationTest, Consumer_HeldRebuildLockOnOneOrgDoesNotFreezeAnotherOrgsBoards) {
  StartLeaderboard();
  Transfer(kAcme, "ann", 1);
  Transfer(kVictim, "vic", 1);
  ASSERT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 1 && Score(kVictim, "vic") == 1; }));

  ASSERT_TRUE(pool_->Run({"SET", "lbctl:{victim}:rebuild", "someone-else", "PX", "60000"}).ok());
  Transfer(kVictim, "vic", 10);
  ASSERT_TRUE(Eventually([&] { return Pending(LedgerStream(kVictim)) == 1; }));
  Transfer(kAcme, "ann", 5);
  EXPECT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 6; }, 5s))
      << "acme's board froze while victim's rebuild lock was held";
  EXPECT_EQ(Score(kVictim, "vic"), 1);  // victim waits; its entry is not lost

  ASSERT_TRUE(pool_->Run({"DEL", "lbctl:{victim}:rebuild"}).ok());
  EXPECT_TRUE(Eventually([&] { return Score(kVictim, "vic") == 11; }, 10s));
  EXPECT_TRUE(Eventually([&] { return Pending(LedgerStream(kVictim)) == 0; }));
  // Waiting on a rebuild is not a failure of the entry: nothing dead-lettered.
  EXPECT_EQ(Integer({"XLEN", "lbctl:{victim}:deadletter"}), 0);
}

// An org whose entries always fail (here its directory copy is corrupt) is
// retried with backoff, then each entry goes to the org's dead-letter stream
// with the reason; other orgs move all along.
TEST_F(IsolationTest, Consumer_AlwaysFailingOrgIsDeadLetteredWhileOthersMove) {
  StartLeaderboard();
  Transfer(kAcme, "ann", 1);
  ASSERT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 1; }));
  ASSERT_TRUE(pool_->Run({"SET", "lb:{victim}:dir:settings", "\xff\xff not a proto"}).ok());
  std::vector<std::string> poisoned;
  for (int i = 0; i < 3; ++i) poisoned.push_back(Transfer(kVictim, "vic", 7));
  ASSERT_TRUE(Eventually([&] { return Pending(LedgerStream(kVictim)) >= 1; }));
  for (int i = 0; i < 5; ++i) Transfer(kAcme, "ann", 1);
  EXPECT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 6; }, 5s))
      << "acme's board froze behind victim's failing entries";

  // After the attempts, every poisoned entry is dead-lettered (and acked).
  ASSERT_TRUE(Eventually([&] { return Integer({"XLEN", "lbctl:{victim}:deadletter"}) == 3; }));
  EXPECT_TRUE(Eventually([&] { return Pending(LedgerStream(kVictim)) == 0; }));
  auto letters = pool_->Run({"XRANGE", "lbctl:{victim}:deadletter", "-", "+"});
  ASSERT_TRUE(letters.ok());
  ASSERT_EQ(letters->elements.size(), 3u);
  for (size_t i = 0; i < letters->elements.size(); ++i) {
    std::map<std::string, std::string> fields;
    const auto& pairs = letters->elements[i].elements[1].elements;
    for (size_t f = 0; f + 1 < pairs.size(); f += 2) fields[pairs[f].str] = pairs[f + 1].str;
    EXPECT_EQ(fields["stream"], LedgerStream(kVictim));
    EXPECT_EQ(fields["id"], poisoned[i]);
    EXPECT_EQ(fields["attempts"], "3");
    EXPECT_NE(fields["reason"].find("corrupt"), std::string::npos) << fields["reason"];
    EXPECT_FALSE(fields["event"].empty());
  }
  // The dead-letter stream is bounded (MAXLEN) and in victim's slot only.
  auto info = pool_->Run({"XINFO", "STREAM", "lbctl:{victim}:deadletter"});
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(Integer({"EXISTS", "lbctl:{acme}:deadletter"}), 0);
  // Acme still moves afterwards.
  Transfer(kAcme, "ann", 1);
  EXPECT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 7; }, 5s));
}

// A second rebuild within the org's interval is refused with retry
// information and changes nothing; another org's rebuild is not limited by it.
TEST_F(IsolationTest, RebuildProjections_SecondWithinTheIntervalIsResourceExhaustedWithRetryAfter) {
  StartLeaderboard({{"LEADERBOARD_REBUILD_MIN_INTERVAL_MS", "60000"}});
  Transfer(kVictim, "vic", 3);
  Transfer(kAcme, "ann", 2);
  ASSERT_TRUE(Eventually([&] { return Score(kVictim, "vic") == 3 && Score(kAcme, "ann") == 2; }));
  bv1::RebuildProjectionsResponse response;
  ASSERT_TRUE(Rebuild(kVictim, &response).ok());
  int64_t audits = Integer({"XLEN", "audit:{victim}"});

  auto context = harness::Context(harness::MintToken(kVictim, "boss", {"admin"}), 30s);
  grpc::Status refused = Rebuild(kVictim, &response, context.get());
  EXPECT_EQ(refused.error_code(), grpc::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("retry after"), std::string::npos)
      << refused.error_message();
  auto trailers = context->GetServerTrailingMetadata();
  auto retry = trailers.find("retry-after-ms");
  ASSERT_NE(retry, trailers.end());
  int64_t retry_after_ms = std::stoll(std::string(retry->second.data(), retry->second.size()));
  EXPECT_GT(retry_after_ms, 0);
  EXPECT_LE(retry_after_ms, 60000);
  // State unchanged: no audit entry, the board as it was, no lock left.
  EXPECT_EQ(Integer({"XLEN", "audit:{victim}"}), audits);
  EXPECT_EQ(Score(kVictim, "vic"), 3);
  EXPECT_EQ(Integer({"EXISTS", "lbctl:{victim}:rebuild"}), 0);
  // Another org has its own budget.
  EXPECT_TRUE(Rebuild(kAcme, &response).ok());
}

// Readers never see an org's boards empty while its rebuild runs, and a
// rebuild killed partway leaves the old boards in place.
TEST_F(IsolationTest, RebuildProjections_BoardsAreNeverEmptyDuringOrAfterAKilledRebuild) {
  StartLeaderboard();
  constexpr int kPeople = 3000;
  std::vector<common::redis::Command> adds;
  for (int i = 0; i < kPeople; ++i) {
    adds.push_back({"XADD", LedgerStream(kVictim), "*", "event",
                    TransferPayload(kVictim, absl::StrCat("B", i), absl::StrCat("p", i), 1)});
  }
  adds.push_back(common::redis::RegisterOrgCommand(kVictim));
  ASSERT_TRUE(pool_->Pipeline(adds).ok());
  ASSERT_TRUE(pool_->Run(common::redis::IndexOrgSlotCommand(kVictim)).ok());
  ASSERT_TRUE(Eventually([&] { return Integer({"ZCARD", AllTimeBoardKey(kVictim)}) == kPeople; },
                         60s));

  std::atomic<bool> done{false};
  std::atomic<int64_t> smallest{kPeople};
  std::thread watcher([&] {
    common::redis::PoolOptions options;
    options.endpoint = *common::redis::ParseEndpoint(redis_.address());
    options.size = 1;
    common::redis::Pool reader(options);
    for (int i = 0; i < 2000000 && !done.load(); ++i) {
      auto card = reader.Run({"ZCARD", AllTimeBoardKey(kVictim)});
      if (card.ok() && card->integer < smallest.load()) smallest.store(card->integer);
    }
  });
  for (int round = 0; round < 3; ++round) {
    bv1::RebuildProjectionsResponse response;
    grpc::Status status = Rebuild(kVictim, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  done.store(true);
  watcher.join();
  EXPECT_EQ(smallest.load(), kPeople) << "a reader saw the board with only " << smallest.load()
                                      << " entries during a rebuild";

  // Killed while writing the new image: the old boards stay whole.
  std::thread rebuild([&] {
    bv1::RebuildProjectionsResponse response;
    Rebuild(kVictim, &response);  // fails: the server dies under it
  });
  // Polled without pause: staging lasts a few tens of milliseconds.
  bool staged = false;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!staged && std::chrono::steady_clock::now() < deadline) {
    auto keys = pool_->Run({"KEYS", "lbstage:{victim}:*"});
    staged = keys.ok() && !keys->elements.empty();
  }
  server_->Kill();
  rebuild.join();
  EXPECT_TRUE(staged) << "the rebuild never staged its image";
  EXPECT_EQ(Integer({"ZCARD", AllTimeBoardKey(kVictim)}), kPeople);
  // What a killed rebuild staged expires on its own.
  auto keys = pool_->Run({"KEYS", "lbstage:{victim}:*"});
  ASSERT_TRUE(keys.ok());
  for (const auto& key : keys->elements) EXPECT_GT(Integer({"PTTL", key.str}), 0) << key.str;
}

// The rebuild of one org holds no lock the consumer needs, except for its
// final swap: another org's boards move while it runs.
TEST_F(IsolationTest, RebuildProjections_OfOneOrgDoesNotPauseAnotherOrgsBoards) {
  // Victim's history is already consumed (its group starts at the end), so
  // only the rebuild replays it.
  constexpr int kEntries = 100000;
  std::vector<common::redis::Command> adds;
  for (int i = 0; i < kEntries; ++i) {
    adds.push_back({"XADD", LedgerStream(kVictim), "*", "event",
                    TransferPayload(kVictim, absl::StrCat("H", i), absl::StrCat("p", i % 500), 1)});
    if (adds.size() == 5000) {
      ASSERT_TRUE(pool_->Pipeline(adds).ok());
      adds.clear();
    }
  }
  for (const std::string& stream : {LedgerStream(kVictim), KudosStream(kVictim)}) {
    ASSERT_TRUE(pool_->Run({"XGROUP", "CREATE", stream, "leaderboard", "$", "MKSTREAM"}).ok());
  }
  ASSERT_TRUE(pool_->Run(common::redis::RegisterOrgCommand(kVictim)).ok());
  ASSERT_TRUE(pool_->Run(common::redis::IndexOrgSlotCommand(kVictim)).ok());
  StartLeaderboard();
  Transfer(kAcme, "ann", 1);
  ASSERT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 1; }));

  std::atomic<bool> rebuilt{false};
  std::thread rebuild([&] {
    bv1::RebuildProjectionsResponse response;
    grpc::Status status = Rebuild(kVictim, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.events_applied(), kEntries);
    rebuilt.store(true);
  });
  ASSERT_TRUE(Eventually([&] { return Integer({"EXISTS", "lbctl:{victim}:rebuild"}) == 1; }));
  Transfer(kAcme, "ann", 1);
  bool moved = Eventually([&] { return Score(kAcme, "ann") == 2 || rebuilt.load(); }, 60s);
  bool moved_during_rebuild = moved && !rebuilt.load() && Score(kAcme, "ann") == 2;
  rebuild.join();
  EXPECT_TRUE(moved_during_rebuild) << "acme's board waited for victim's rebuild";
  EXPECT_TRUE(Eventually([&] { return Score(kAcme, "ann") == 2; }));
  EXPECT_EQ(Integer({"ZCARD", AllTimeBoardKey(kVictim)}), 500);
}

// Finding 8: the leaderboard keeps serving reads while its consumer makes no
// progress on a backlog, and says so under the health service name
// kudos.leaderboard.v1.Consumer.
TEST_F(IsolationTest, ConsumerHealth_NotServingWhileABacklogMakesNoProgressAndReadsStayServed) {
  StartLeaderboard({{"LEADERBOARD_CONSUMER_STALL_MS", "1000"}});
  Transfer(kVictim, "vic", 1);
  ASSERT_TRUE(Eventually([&] { return Score(kVictim, "vic") == 1; }));
  ASSERT_TRUE(Eventually([&] { return Health("kudos.leaderboard.v1.Consumer") == "SERVING"; }));
  EXPECT_EQ(Health(""), "SERVING");

  // Wedged: the only org with work cannot apply it.
  ASSERT_TRUE(pool_->Run({"SET", "lbctl:{victim}:rebuild", "someone-else", "PX", "60000"}).ok());
  Transfer(kVictim, "vic", 1);
  EXPECT_TRUE(
      Eventually([&] { return Health("kudos.leaderboard.v1.Consumer") == "NOT_SERVING"; }, 15s));
  EXPECT_EQ(Health(""), "SERVING");    // the server (reads) is fine
  EXPECT_EQ(Score(kVictim, "vic"), 1);  // and reads are served

  ASSERT_TRUE(pool_->Run({"DEL", "lbctl:{victim}:rebuild"}).ok());
  EXPECT_TRUE(Eventually([&] { return Score(kVictim, "vic") == 2; }));
  EXPECT_TRUE(Eventually([&] { return Health("kudos.leaderboard.v1.Consumer") == "SERVING"; }));
  EXPECT_EQ(Health("no.such.Service"), absl::StrCat("error ", grpc::NOT_FOUND));
}

}  // namespace
