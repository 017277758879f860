// Hardening of the kudos service (issue #12, findings 6, 12, 14 and the
// service-principal check), against a real redis-server, the real ledger and
// the real kudos binary over loopback gRPC. Each test starts its own
// deployment so the flags under test (caps, reconciler backoff) are its own.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/auth/guard.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"
#include "tests/harness/eventually.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;
using grpc::StatusCode;

constexpr char kOrg[] = "hard-acme";
constexpr char kOtherOrg[] = "hard-globex";

using harness::Eventually;

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token,
                                         std::chrono::milliseconds timeout = 5s) {
  return harness::Context(token, timeout);
}

// One open WatchFeed stream.
struct Watch {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<kv1::WatchFeedResponse>> reader;

  // Ends the stream and returns its status.
  grpc::Status Close() {
    context->TryCancel();
    kv1::WatchFeedResponse ignored;
    while (reader->Read(&ignored)) {
    }
    return reader->Finish();
  }
};

class KudosHardeningTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> kudos_args = {}) {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_args.push_back("--ledger=" + ledger_->address());
    kudos_args.push_back("--ledger_timeout_ms=1500");
    kudos_ = std::make_unique<harness::Service>(KUDOS_BINARY, redis_->address(), kudos_args);
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = kv1::KudosService::NewStub(channel);
    directory_ = kv1::DirectoryService::NewStub(channel);
    common::redis::PoolOptions pool_options;
    pool_options.endpoint.port = redis_->port();
    pool_options.size = 4;
    pool_ = std::make_unique<common::redis::Pool>(pool_options);
    for (const char* org : {kOrg, kOtherOrg}) Seed(org);
  }

  void Seed(const std::string& org) {
    const std::string admin = harness::MintToken(org, "root", {"admin"});
    kv1::CreateTeamRequest team;
    team.mutable_team()->set_team_id("core");
    team.mutable_team()->set_display_name("Core");
    kv1::CreateTeamResponse team_response;
    ASSERT_TRUE(directory_->CreateTeam(Ctx(admin).get(), team, &team_response).ok());
    for (const char* id : {"alice", "bob", "carol"}) {
      kv1::CreatePersonRequest create;
      create.mutable_person()->set_person_id(id);
      create.mutable_person()->set_display_name(id);
      create.mutable_person()->set_team_id("core");
      create.mutable_person()->set_active(true);
      kv1::CreatePersonResponse response;
      grpc::Status status = directory_->CreatePerson(Ctx(admin).get(), create, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  grpc::Status Send(const std::string& org, const std::string& giver,
                    const std::string& request_id, const std::string& recipient,
                    kv1::Kudos* kudos = nullptr, const std::string& token = "") {
    kv1::SendKudosRequest request;
    request.set_request_id(request_id);
    request.add_recipient_ids(recipient);
    request.set_message("thanks for the quick follow-up");
    request.add_values("teamwork");
    request.set_points_per_recipient(1);
    kv1::SendKudosResponse response;
    grpc::Status status = kudos_stub_->SendKudos(
        Ctx(token.empty() ? harness::MintToken(org, giver) : token).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  // The org's feed, newest first.
  std::vector<kv1::Kudos> Feed(const std::string& org) {
    kv1::ListKudosRequest request;
    request.set_page_size(100);
    kv1::ListKudosResponse response;
    grpc::Status status =
        kudos_stub_->ListKudos(Ctx(harness::MintToken(org, "alice")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.kudos().begin(), response.kudos().end()};
  }

  Watch OpenWatch(const std::string& org, const std::string& subject) {
    Watch watch;
    watch.context = Ctx(harness::MintToken(org, subject), 30s);
    watch.reader = kudos_stub_->WatchFeed(watch.context.get(), kv1::WatchFeedRequest());
    return watch;
  }

  // The status a fresh watch ends with, or OK while it stays open for `wait`.
  grpc::Status Probe(const std::string& org, const std::string& subject,
                     std::multimap<std::string, std::string>* trailers = nullptr,
                     std::chrono::milliseconds wait = 1500ms) {
    auto context = Ctx(harness::MintToken(org, subject), wait);
    auto reader = kudos_stub_->WatchFeed(context.get(), kv1::WatchFeedRequest());
    kv1::WatchFeedResponse message;
    while (reader->Read(&message)) {
    }
    grpc::Status status = reader->Finish();
    // Copied out: the string_refs point into `context`, gone on return.
    if (trailers != nullptr) {
      for (const auto& [key, value] : context->GetServerTrailingMetadata()) {
        trailers->emplace(std::string(key.data(), key.size()),
                          std::string(value.data(), value.size()));
      }
    }
    return status.error_code() == StatusCode::DEADLINE_EXCEEDED ? grpc::Status::OK : status;
  }

  // Redis clients whose last command was a stream read (the feed readers).
  int StreamReaders() {
    auto list = pool_->Run({"CLIENT", "LIST"});
    if (!list.ok()) return -1;
    int readers = 0;
    for (absl::string_view line : absl::StrSplit(list->str, '\n')) {
      if (absl::StrContains(line, " cmd=xread ")) ++readers;
    }
    return readers;
  }

  // Whether some client is blocked in XREAD right now.
  bool ReaderBlocked() {
    auto list = pool_->Run({"CLIENT", "LIST"});
    if (!list.ok()) return false;
    for (absl::string_view line : absl::StrSplit(list->str, '\n')) {
      if (absl::StrContains(line, " cmd=xread ") && absl::StrContains(line, " flags=b ")) {
        return true;
      }
    }
    return false;
  }

  // A PENDING kudos record whose stored transfers cannot be parsed: it can
  // never settle. Due long ago, so it is first in line.
  void WriteUnsettleableRecord(const std::string& org, const std::string& id) {
    const std::string prefix = "kudos:{" + org + "}:";
    ASSERT_TRUE(pool_
                    ->Run({"HSET", prefix + "kudos:" + id, "pb", "", "state", "PENDING",
                           "transfers", std::string("\xff\xff\xff\xff", 4), "feeds", "feed:all",
                           "event", "", "points", "0", "seq", "1"})
                    .ok());
    ASSERT_TRUE(pool_->Run({"ZADD", prefix + "pending", "1000", "kudos:" + id}).ok());
  }

  // A kudos left PENDING: the ledger is down while it is sent.
  void SendWhileLedgerDown(const std::string& org, const std::string& request_id) {
    ledger_->Stop();
    grpc::Status status = Send(org, "alice", request_id, "bob");
    EXPECT_EQ(status.error_code(), StatusCode::UNAVAILABLE) << status.error_message();
    ledger_->Start();
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_, kudos_;
  std::unique_ptr<kv1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<kv1::DirectoryService::Stub> directory_;
  std::unique_ptr<common::redis::Pool> pool_;
};

// ---- finding 6: one reader per org, bounded watchers ---------------------------------

// Many watchers of one org share one Redis stream reader (each used to hold
// its own connection, so ~300 members x 32 streams reached maxclients and
// broke every tenant), and each still gets every kudos.
TEST_F(KudosHardeningTest, WatchFeed_WatchersOfAnOrgShareOneRedisReader) {
  Start();
  std::vector<Watch> watches;
  for (int i = 0; i < 12; ++i) watches.push_back(OpenWatch(kOrg, i % 2 ? "alice" : "bob"));
  watches.push_back(OpenWatch(kOtherOrg, "alice"));
  for (Watch& watch : watches) watch.reader->WaitForInitialMetadata();
  // One reader per org with watchers, however many watchers.
  EXPECT_TRUE(Eventually([&] { return StreamReaders() == 2; }, 10s)) << StreamReaders();
  kv1::Kudos sent;
  ASSERT_TRUE(Send(kOrg, "alice", "fan-out", "carol", &sent).ok());
  for (size_t i = 0; i + 1 < watches.size(); ++i) {
    kv1::WatchFeedResponse update;
    ASSERT_TRUE(watches[i].reader->Read(&update)) << i;
    EXPECT_EQ(update.kudos().kudos_id(), sent.kudos_id()) << i;
  }
  EXPECT_LE(StreamReaders(), 2);
  for (Watch& watch : watches) watch.Close();
}

// An open watch holds no handler thread: with a server quota of 8 threads,
// 24 watchers stay open, each gets a kudos, and unary calls still run (each
// sync stream used to hold one of those threads until it ended).
TEST_F(KudosHardeningTest, WatchFeed_StreamsHoldNoHandlerThreads) {
  setenv("GRPC_MAX_THREADS", "8", 1);  // inherited by the services started here
  Start();
  unsetenv("GRPC_MAX_THREADS");
  std::vector<Watch> watches;
  for (int i = 0; i < 24; ++i) watches.push_back(OpenWatch(kOrg, absl::StrCat("watcher-", i)));
  for (Watch& watch : watches) watch.reader->WaitForInitialMetadata();
  EXPECT_EQ(Feed(kOrg).size(), 0u);  // a unary call gets a thread
  kv1::Kudos sent;
  grpc::Status status = Send(kOrg, "alice", "while-watched", "bob", &sent);
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  for (size_t i = 0; i < watches.size(); ++i) {
    kv1::WatchFeedResponse update;
    ASSERT_TRUE(watches[i].reader->Read(&update)) << i << ": " << watches[i].Close().error_message();
    EXPECT_EQ(update.kudos().kudos_id(), sent.kudos_id()) << i;
  }
  for (Watch& watch : watches) watch.Close();
}

// A client that opens a watch and never reads gets its stream ended with
// ABORTED once it is 256 kudos behind, rather than the server buffering
// without bound; a watcher that reads gets every kudos.
TEST_F(KudosHardeningTest, WatchFeed_AStreamThatDoesNotReadIsEndedNotBuffered) {
  Start();
  Watch idle = OpenWatch(kOrg, "alice");
  Watch reading = OpenWatch(kOrg, "bob");
  idle.reader->WaitForInitialMetadata();
  reading.reader->WaitForInitialMetadata();
  common::redis::Connection append({"127.0.0.1", redis_->port()}, 10s);
  const int kEvents = 600;
  std::atomic<int> received{0};
  std::thread reader([&] {  // keeps up while the kudos arrive
    kv1::WatchFeedResponse update;
    while (received < kEvents && reading.reader->Read(&update)) ++received;
  });
  const std::string message(16 * 1024, 'x');  // fills the idle stream's flow-control window
  for (int i = 0; i < kEvents; ++i) {
    kv1::KudosEvent event;
    event.set_org_id(kOrg);
    event.mutable_kudos_sent()->mutable_kudos()->set_kudos_id(absl::StrCat("k", i));
    event.mutable_kudos_sent()->mutable_kudos()->set_message(message);
    auto added = append.Run({"XADD", "kudos:{" + std::string(kOrg) + "}:events", "*", "event",
                             event.SerializeAsString()});
    EXPECT_TRUE(added.ok()) << added.status();
    // In batches the reading watcher keeps up with, however slow the machine.
    if ((i + 1) % 100 == 0 && !Eventually([&] { return received.load() > i; })) break;
  }
  if (received.load() < kEvents) reading.context->TryCancel();  // the thread ends either way
  // The reading watcher got every kudos, so the idle one was offered them
  // all: far past its bound.
  reader.join();
  EXPECT_EQ(received.load(), kEvents);
  kv1::WatchFeedResponse update;
  int idle_received = 0;
  while (idle.reader->Read(&update)) ++idle_received;
  grpc::Status ended = idle.reader->Finish();
  EXPECT_EQ(ended.error_code(), StatusCode::ABORTED) << ended.error_message();
  EXPECT_TRUE(absl::StrContains(ended.error_message(), "behind")) << ended.error_message();
  EXPECT_LT(idle_received, kEvents);
  reading.Close();
}

// Past the replica's cap on feed streams a watch is refused at once with
// RESOURCE_EXHAUSTED and retry information; closing one frees its place.
TEST_F(KudosHardeningTest, WatchFeed_RefusesStreamsPastTheReplicasCap) {
  Start({"--max_feed_streams=3"});
  std::vector<Watch> watches;
  for (const char* who : {"alice", "bob", "carol"}) watches.push_back(OpenWatch(kOrg, who));
  for (Watch& watch : watches) watch.reader->WaitForInitialMetadata();
  std::multimap<std::string, std::string> trailers;
  grpc::Status refused = Probe(kOtherOrg, "alice", &trailers);
  EXPECT_EQ(refused.error_code(), StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), "retry after"))
      << refused.error_message();
  EXPECT_EQ(trailers.count(common::auth::kRetryAfterMetadata), 1u);
  watches[0].Close();
  EXPECT_TRUE(Eventually([&] { return Probe(kOtherOrg, "alice").ok(); }, 10s));
  for (size_t i = 1; i < watches.size(); ++i) watches[i].Close();
}

// The orgs with a reader on one replica are capped: a new org is refused
// with RESOURCE_EXHAUSTED while watchers of the org already served still
// get in; once that org's watchers leave, its reader stops and frees the place.
TEST_F(KudosHardeningTest, WatchFeed_RefusesOrgsPastTheReplicasReaderCap) {
  Start({"--max_feed_orgs=1"});
  Watch first = OpenWatch(kOrg, "alice");
  first.reader->WaitForInitialMetadata();
  grpc::Status other = Probe(kOtherOrg, "alice");
  EXPECT_EQ(other.error_code(), StatusCode::RESOURCE_EXHAUSTED) << other.error_message();
  EXPECT_TRUE(Probe(kOrg, "bob").ok());  // the same org shares its reader
  first.Close();
  EXPECT_TRUE(Eventually([&] { return Probe(kOtherOrg, "alice").ok(); }, 15s));
}

// ---- finding 14: the first read skips nothing ---------------------------------------------

// A kudos appended right after the watcher's first blocking read times out
// is delivered. To place the append there, a script keeps Redis busy past the
// read's timeout while the append waits behind it: Redis then times the read
// out first and runs the append before anything the watcher sends next (the
// old code pinned its position with XREVRANGE at that moment and skipped it).
TEST_F(KudosHardeningTest, WatchFeed_FirstReadSkipsNothingAppendedAfterItsTimeout) {
  Start();
  Watch watch = OpenWatch(kOrg, "alice");
  ASSERT_TRUE(Eventually([&] { return ReaderBlocked(); }, 10s));
  common::redis::Connection busy({"127.0.0.1", redis_->port()}, 10s);
  common::redis::Connection append({"127.0.0.1", redis_->port()}, 10s);
  std::thread hold([&] {
    auto reply = busy.Run({"EVAL",
                           "local t = redis.call('TIME') local start = t[1] * 1000 + t[2] / 1000 "
                           "repeat local n = redis.call('TIME') "
                           "until n[1] * 1000 + n[2] / 1000 - start >= 1500 return 1",
                           "0"});
    EXPECT_TRUE(reply.ok()) << reply.status();
  });
  std::this_thread::sleep_for(200ms);  // the script is running
  kv1::KudosEvent event;
  event.set_org_id(kOrg);
  kv1::Kudos* kudos = event.mutable_kudos_sent()->mutable_kudos();
  kudos->set_kudos_id("k-right-after-the-timeout");
  kudos->set_giver_id("alice");
  kudos->add_recipient_ids("bob");
  kudos->set_state(kv1::KUDOS_STATE_COMMITTED);
  auto added = append.Run(
      {"XADD", "kudos:{" + std::string(kOrg) + "}:events", "*", "event", event.SerializeAsString()});
  hold.join();
  ASSERT_TRUE(added.ok()) << added.status();
  // Then an ordinary kudos, so the stream has something after it either way.
  kv1::Kudos later;
  ASSERT_TRUE(Send(kOrg, "alice", "later", "carol", &later).ok());
  std::vector<std::string> received;
  kv1::WatchFeedResponse update;
  while (received.size() < 2 && watch.reader->Read(&update)) {
    received.push_back(update.kudos().kudos_id());
    if (update.kudos().kudos_id() == later.kudos_id()) break;
  }
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received[0], "k-right-after-the-timeout");
  watch.Close();
}

// ---- finding 12: the reconciler ---------------------------------------------------------------

// Records that never settle are retried with backoff instead of holding the
// head of the queue: a younger pending kudos behind 120 of them is finished.
TEST_F(KudosHardeningTest, Reconciler_RecordsThatNeverSettleDoNotBlockYoungerOnes) {
  Start({"--reconcile_after_ms=300"});
  for (int i = 0; i < 120; ++i) WriteUnsettleableRecord(kOrg, absl::StrCat("kjunk", i));
  SendWhileLedgerDown(kOrg, "abandoned");
  ASSERT_TRUE(Feed(kOrg).empty());
  EXPECT_TRUE(Eventually([&] { return Feed(kOrg).size() == 1; }, 30s));
}

// One org whose records cannot even be listed (its pending index is of the
// wrong type) does not stop the pass: other orgs are still reconciled.
TEST_F(KudosHardeningTest, Reconciler_OneOrgsErrorDoesNotStopOtherOrgs) {
  Start({"--reconcile_after_ms=300"});
  for (int i = 0; i < 30; ++i) {
    const std::string org = absl::StrCat("broken-", i);
    ASSERT_TRUE(pool_->Run(common::redis::RegisterOrgCommand(org)).ok());
    ASSERT_TRUE(pool_->Run(common::redis::IndexOrgSlotCommand(org)).ok());
    ASSERT_TRUE(pool_->Run({"SET", "kudos:{" + org + "}:pending", "not a sorted set"}).ok());
  }
  SendWhileLedgerDown(kOrg, "abandoned");
  EXPECT_TRUE(Eventually([&] { return Feed(kOrg).size() == 1; }, 30s));
}

// After --reconcile_max_attempts failed attempts a record leaves the queue for
// the org's dead-letter stream, with the reason; it stays PENDING (its
// outcome is unknown, so nothing is released or committed) for a client
// retry or an operator.
TEST_F(KudosHardeningTest, Reconciler_DeadLettersARecordAfterMaxAttemptsWithTheReason) {
  Start({"--reconcile_after_ms=100", "--reconcile_backoff_ms=100",
         "--reconcile_max_attempts=3"});
  WriteUnsettleableRecord(kOrg, "kdead");
  const std::string prefix = "kudos:{" + std::string(kOrg) + "}:";
  ASSERT_TRUE(Eventually([&] {
    auto length = pool_->Run({"XLEN", prefix + "deadletter"});
    return length.ok() && length->integer == 1;
  }));
  auto entries = pool_->Run({"XRANGE", prefix + "deadletter", "-", "+"});
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->elements.size(), 1u);
  std::map<std::string, std::string> fields;
  const auto& list = entries->elements[0].elements[1].elements;
  for (size_t i = 0; i + 1 < list.size(); i += 2) fields[list[i].str] = list[i + 1].str;
  EXPECT_EQ(fields["kind"], "kudos");
  EXPECT_EQ(fields["id"], "kdead");
  EXPECT_EQ(fields["attempts"], "3");
  EXPECT_TRUE(absl::StrContains(fields["reason"], "cannot be parsed")) << fields["reason"];
  auto pending = pool_->Run({"ZSCORE", prefix + "pending", "kudos:kdead"});
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->is_nil());
  auto state = pool_->Run({"HGET", prefix + "kudos:kdead", "state"});
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->str, "PENDING");
  auto attempts = pool_->Run({"HGET", prefix + "kudos:kdead", "reconcile_attempts"});
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ(attempts->str, "3");
}

// The dead-letter stream is capped per org: the newest entries are kept.
TEST_F(KudosHardeningTest, Reconciler_DeadLetterStreamKeepsOnlyTheNewestEntries) {
  Start({"--reconcile_after_ms=100", "--reconcile_max_attempts=1",
         "--reconcile_max_dead_letters=3"});
  for (int i = 0; i < 5; ++i) WriteUnsettleableRecord(kOrg, absl::StrCat("kcap", i));
  const std::string prefix = "kudos:{" + std::string(kOrg) + "}:";
  // Every record was dead-lettered (none left in the queue)...
  ASSERT_TRUE(Eventually([&] {
    auto queued = pool_->Run({"ZCARD", prefix + "pending"});
    return queued.ok() && queued->integer == 0;
  }));
  // ...and the stream holds the newest three.
  auto length = pool_->Run({"XLEN", prefix + "deadletter"});
  ASSERT_TRUE(length.ok());
  EXPECT_EQ(length->integer, 3);
}

// ---- service principals ------------------------------------------------------------------------

// A service token other than the kudos service (the gateway, say) carries no
// person or admin rights in the kudos service, whatever roles it lists; a
// refusal changes nothing.
TEST_F(KudosHardeningTest, ServicePrincipals_CannotActAsAPersonOrAdmin) {
  Start();
  auto service_token = [](const std::string& subject, std::vector<std::string> roles) {
    common::auth::TokenRequest request;
    request.subject = subject;
    request.org = kOrg;
    request.roles = std::move(roles);
    request.audience = common::auth::kServiceAudience;
    auto token = common::auth::MintHs256(request, common::auth::kDevServiceSecret, absl::Now());
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? *token : std::string();
  };
  const std::vector<std::pair<std::string, std::string>> tokens = {
      {"gateway [service]", service_token("gateway", {"service"})},
      {"gateway [service, admin]", service_token("gateway", {"service", "admin"})},
      {"alice [service, member]", service_token("alice", {"service", "member"})},
  };
  const size_t feed_before = Feed(kOrg).size();
  for (const auto& [what, token] : tokens) {
    // A service token is either refused outright (the auth layer refuses
    // services with person roles) or denied the action.
    auto refused = [&](const grpc::Status& status) {
      return status.error_code() == StatusCode::PERMISSION_DENIED ||
             status.error_code() == StatusCode::UNAUTHENTICATED;
    };
    grpc::Status send = Send(kOrg, "alice", "svc-" + what, "bob", nullptr, token);
    EXPECT_TRUE(refused(send)) << what << ": SendKudos " << send.error_code();

    kv1::CreatePersonRequest create;
    create.mutable_person()->set_person_id("mallory");
    create.mutable_person()->set_display_name("mallory");
    create.mutable_person()->set_active(true);
    kv1::CreatePersonResponse created;
    grpc::Status person = directory_->CreatePerson(Ctx(token).get(), create, &created);
    EXPECT_TRUE(refused(person)) << what << ": CreatePerson " << person.error_code();

    kv1::CreateTeamRequest team;
    team.mutable_team()->set_team_id("shadow");
    team.mutable_team()->set_display_name("shadow");
    kv1::CreateTeamResponse team_response;
    grpc::Status team_status = directory_->CreateTeam(Ctx(token).get(), team, &team_response);
    EXPECT_TRUE(refused(team_status)) << what << ": CreateTeam " << team_status.error_code();

    kv1::UpdateOrgSettingsRequest settings;
    settings.mutable_settings()->set_max_points(1000);
    kv1::UpdateOrgSettingsResponse settings_response;
    grpc::Status settings_status =
        directory_->UpdateOrgSettings(Ctx(token).get(), settings, &settings_response);
    EXPECT_TRUE(refused(settings_status))
        << what << ": UpdateOrgSettings " << settings_status.error_code();
  }
  EXPECT_EQ(Feed(kOrg).size(), feed_before);
  kv1::GetPersonRequest get;
  get.set_person_id("mallory");
  kv1::GetPersonResponse got;
  EXPECT_EQ(directory_->GetPerson(Ctx(harness::MintToken(kOrg, "root", {"admin"})).get(), get, &got)
                .error_code(),
            StatusCode::NOT_FOUND);
}

}  // namespace
