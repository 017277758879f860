// Bounded history (issue #15), kudos side, against a real redis-server, the
// real ledger and kudos services over real gRPC, and the kudos library's
// Archiver with an injected `now`: idempotency keys expire with the retry
// window, finished records keep only what reads need, old kudos move to the
// compressed archive and read back exactly as before, the audit stream is
// trimmed by age, and the retention policy travels to the ledger.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/audit.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "services/kudos/kudos_archive.h"
#include "services/kudos/kudos_rules.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/eventually.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;
using kudos::v1::DirectoryService;
using kudos::v1::KudosService;

constexpr char kOrg[] = "acme";
const std::string kPrefix = "kudos:{acme}:";

kudos::ArchiverOptions Options(int batch_kudos, int max_batches_per_run, int chunk_kudos) {
  kudos::ArchiverOptions options;
  options.batch_kudos = batch_kudos;
  options.max_batches_per_run = max_batches_per_run;
  options.chunk_kudos = chunk_kudos;
  return options;
}

std::unique_ptr<common::redis::Pool> MakePool(int port) {
  common::redis::PoolOptions options;
  options.endpoint.port = port;
  options.size = 4;
  return std::make_unique<common::redis::Pool>(options);
}

class RetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        // The reconciler waits: a PENDING kudos stays so until the test retries it.
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--archive_interval_s=0",
                                 "--reconcile_after_ms=600000"});
    auto channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    kudos_stub_ = KudosService::NewStub(channel);
    directory_ = DirectoryService::NewStub(channel);
    admin_ = MintToken(kOrg, "root", {"admin"});
    pool_ = MakePool(redis_->port());
    store_ = std::make_unique<kudos::KudosStore>(*pool_);
    CreateTeam("eng");
    CreateTeam("ops");
    for (const char* id : {"alice", "bob", "carol", "dave"}) CreatePerson(id, "eng");
    for (const char* id : {"olga", "pete"}) CreatePerson(id, "ops");
    CreatePerson("nina", "");
    UpdateSettings([](kudos::v1::OrgSettings& s) { s.set_max_kudos_per_minute(10000); });
  }

  void CreateTeam(const std::string& id) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name("Team " + id);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status = directory_->CreateTeam(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void CreatePerson(const std::string& id, const std::string& team) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name("Person " + id);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory_->CreatePerson(Context(admin_).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status TryUpdateSettings(const std::function<void(kudos::v1::OrgSettings&)>& change) {
    kudos::v1::GetOrgSettingsResponse current;
    grpc::Status got = directory_->GetOrgSettings(Context(admin_).get(), {}, &current);
    if (!got.ok()) return got;
    kudos::v1::UpdateOrgSettingsRequest request;
    *request.mutable_settings() = current.settings();
    change(*request.mutable_settings());
    kudos::v1::UpdateOrgSettingsResponse response;
    return directory_->UpdateOrgSettings(Context(admin_).get(), request, &response);
  }

  void UpdateSettings(const std::function<void(kudos::v1::OrgSettings&)>& change) {
    grpc::Status status = TryUpdateSettings(change);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  grpc::Status Send(const std::string& giver, const std::string& request_id,
                    std::vector<std::string> recipients, const std::string& value,
                    kudos::v1::Kudos* kudos = nullptr, int64_t points = 1) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(request_id);
    for (const auto& r : recipients) request.add_recipient_ids(r);
    request.set_message("Thanks for " + request_id + ", that follow-up saved our release!");
    request.add_values(value);
    request.set_points_per_recipient(points);
    kudos::v1::SendKudosResponse response;
    grpc::Status status =
        kudos_stub_->SendKudos(Context(MintToken(kOrg, giver)).get(), request, &response);
    if (kudos != nullptr) *kudos = response.kudos();
    return status;
  }

  // `count` kudos among everyone, varied givers, recipients, teams, values.
  std::vector<std::string> SendMany(int count, const std::string& tag) {
    const std::vector<std::string> people = {"alice", "bob", "carol", "dave", "olga", "pete", "nina"};
    const std::vector<std::string> values = {"teamwork", "empathy", "service-mindset"};
    std::vector<std::string> ids;
    for (int i = 0; i < count; ++i) {
      const std::string& giver = people[i % people.size()];
      std::vector<std::string> recipients = {people[(i + 1 + i / 7) % people.size()]};
      if (recipients[0] == giver) recipients[0] = people[(i + 2) % people.size()];
      if (i % 3 == 0) {
        const std::string& second = people[(i + 3) % people.size()];
        if (second != giver && second != recipients[0]) recipients.push_back(second);
      }
      kudos::v1::Kudos kudos;
      grpc::Status status = Send(giver, absl::StrCat(tag, i), recipients, values[i % values.size()], &kudos);
      EXPECT_TRUE(status.ok()) << status.error_message();
      ids.push_back(kudos.kudos_id());
    }
    return ids;
  }

  grpc::Status Boost(const std::string& booster, const std::string& kudos_id,
                     const std::string& request_id) {
    kudos::v1::BoostKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_points(1);
    kudos::v1::BoostKudosResponse response;
    return kudos_stub_->BoostKudos(Context(MintToken(kOrg, booster)).get(), request, &response);
  }

  std::string GetKudosBytes(const std::string& id) {
    kudos::v1::GetKudosRequest request;
    request.set_kudos_id(id);
    kudos::v1::GetKudosResponse response;
    grpc::Status status =
        kudos_stub_->GetKudos(Context(MintToken(kOrg, "alice")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << id << ": " << status.error_message();
    return response.kudos().SerializeAsString();
  }

  // Every page of a listing, each kudos serialized.
  std::vector<std::string> ListAll(const kudos::v1::KudosFilter& filter, int page_size) {
    std::vector<std::string> all;
    std::string token;
    for (int pages = 0; pages < 1000; ++pages) {
      kudos::v1::ListKudosRequest request;
      *request.mutable_filter() = filter;
      request.set_page_size(page_size);
      request.set_page_token(token);
      kudos::v1::ListKudosResponse response;
      grpc::Status status =
          kudos_stub_->ListKudos(Context(MintToken(kOrg, "bob")).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_LE(response.kudos_size(), page_size);
      for (const auto& k : response.kudos()) all.push_back(k.SerializeAsString());
      token = response.next_page_token();
      if (token.empty()) break;
    }
    return all;
  }

  // What every read returns: GetKudos of each id and every listing the
  // filters read, at two page sizes.
  std::map<std::string, std::vector<std::string>> Snapshot(const std::vector<std::string>& ids) {
    std::map<std::string, std::vector<std::string>> reads;
    for (const std::string& id : ids) reads["get " + id] = {GetKudosBytes(id)};
    std::vector<std::pair<std::string, kudos::v1::KudosFilter>> filters = {{"all", {}}};
    for (const char* person : {"alice", "bob", "olga", "nina"}) {
      kudos::v1::KudosFilter by_giver, by_recipient;
      by_giver.set_giver_id(person);
      by_recipient.set_recipient_id(person);
      filters.push_back({std::string("giver ") + person, by_giver});
      filters.push_back({std::string("recipient ") + person, by_recipient});
    }
    kudos::v1::KudosFilter by_team, by_value;
    by_team.set_team_id("ops");
    by_value.set_value("empathy");
    filters.push_back({"team ops", by_team});
    filters.push_back({"value empathy", by_value});
    for (const auto& [name, filter] : filters) {
      for (int page_size : {3, 100}) reads[absl::StrCat(name, " /", page_size)] = ListAll(filter, page_size);
    }
    return reads;
  }

  // The record id a request key names, in either form (find_request).
  std::string RequestRecordId(const std::string& giver, const std::string& request_id) {
    auto earlier = store_->FindRequest(kOrg, kudos::RecordKind::kKudos, giver, request_id);
    EXPECT_TRUE(earlier.ok()) << earlier.status();
    EXPECT_TRUE(earlier.ok() && earlier->has_value()) << giver << " " << request_id;
    return earlier.ok() && earlier->has_value() ? (*earlier)->record_id : "";
  }

  int64_t Integer(const common::redis::Command& command) {
    auto reply = pool_->Run(command);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->integer : -1;
  }

  // A record-keyed kudos from alice to bob, begun at the store (no ledger).
  kudos::BeginRecognition RecordKeyedBegin(const std::string& request_id,
                                           const std::string& fingerprint) {
    kudos::BeginRecognition begin;
    begin.kind = kudos::RecordKind::kKudos;
    begin.actor = "alice";
    begin.request_id = request_id;
    begin.fingerprint = fingerprint;
    begin.record_id = kudos::KudosIdOfRequest(kOrg, "alice", request_id);
    begin.record_pb = "pb";
    begin.now_ms = absl::ToUnixMillis(absl::Now());
    begin.minute_key = std::to_string(begin.now_ms / 60000);
    begin.rate_limit = 1000;
    begin.retry_after_seconds = 1;
    begin.week_key = "2026-W48";
    begin.pair_cap = 1000;
    begin.recipients = {"bob"};
    begin.event_pb = "event";
    begin.reconcile_at_ms = begin.now_ms + 60000;
    begin.idempotency_ttl_s = 86400;
    begin.record_keyed = true;
    return begin;
  }

  // A committed kudos's bucket and its field there (KudosStore::RecordBucketKey).
  std::string Bucket(const std::string& id) { return kudos::KudosStore::RecordBucketKey(kOrg, id); }
  std::string Field(const std::string& id) { return kudos::KudosStore::FeedMember(id); }

  // Whether the kudos has a live record: its bucket's field, or its own key
  // (PENDING, ABORTED, or committed before the buckets).
  bool Live(const std::string& id) {
    return Integer({"HEXISTS", Bucket(id), Field(id)}) == 1 ||
           Integer({"EXISTS", kPrefix + "kudos:" + id}) == 1;
  }

  // Moves a committed kudos from its bucket to its own key, as a version
  // before the buckets stored it, with `value` there.
  void MoveToOwnKey(const std::string& id, const std::string& value) {
    ASSERT_EQ(Integer({"HDEL", Bucket(id), Field(id)}), 1) << id;
    ASSERT_TRUE(pool_->Run({"SET", kPrefix + "kudos:" + id, value}).ok());
  }

  std::set<std::string> Fields(const std::string& key) {
    auto reply = pool_->Run({"HKEYS", key});
    EXPECT_TRUE(reply.ok()) << reply.status();
    std::set<std::string> fields;
    if (reply.ok()) {
      for (const auto& f : reply->elements) fields.insert(f.str);
    }
    return fields;
  }

  std::vector<std::string> Keys(const std::string& pattern) {
    // A test's small redis only; on a cluster, the node serving the org.
    auto reply =
        pool_->RunOn(pool_->NodeForSlot(common::redis::KeySlot(kOrg)), {"KEYS", pattern});
    std::vector<std::string> keys;
    if (reply.ok()) {
      for (const auto& k : reply->elements) keys.push_back(k.str);
    }
    return keys;
  }

  // Each kudos's seq: its score in feed:all, whose entries are packed ids.
  std::map<std::string, std::string> SeqsInFeedAll(const std::vector<std::string>& ids) {
    std::map<std::string, std::string> seq_of;
    for (const std::string& id : ids) {
      auto seq = pool_->Run({"ZSCORE", kPrefix + "feed:all", kudos::KudosStore::FeedMember(id)});
      EXPECT_TRUE(seq.ok() && !seq->is_nil()) << id;
      if (seq.ok()) seq_of[id] = seq->str;
    }
    return seq_of;
  }

  // Archives everything old as of `now` (bounded runs).
  int64_t ArchiveAll(kudos::Archiver& archiver, absl::Time now) {
    int64_t archived = 0;
    for (int run = 0; run < 100; ++run) {
      auto stats = archiver.RunOnce(kOrg, now);
      EXPECT_TRUE(stats.ok()) << stats.status();
      if (!stats.ok()) break;
      archived += stats->kudos_archived;
      if (!stats->more) break;
    }
    return archived;
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<KudosService::Stub> kudos_stub_;
  std::unique_ptr<DirectoryService::Stub> directory_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::unique_ptr<kudos::KudosStore> store_;
  std::string admin_;
};

// ---- retention policy ---------------------------------------------------------------------------

TEST_F(RetentionTest, Settings_ReturnTheRetentionDefaultsAndRefuseALiveWindowShorterThanTheRetryWindow) {
  kudos::v1::GetOrgSettingsResponse got;
  ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &got).ok());
  EXPECT_EQ(got.settings().retention().idempotency_days(), 30);
  EXPECT_EQ(got.settings().retention().kudos_live_days(), 400);
  EXPECT_EQ(got.settings().retention().transfers_live_days(), 400);
  EXPECT_EQ(got.settings().retention().audit_days(), 400);
  grpc::Status refused = TryUpdateSettings([](kudos::v1::OrgSettings& s) {
    s.mutable_retention()->set_idempotency_days(30);
    s.mutable_retention()->set_kudos_live_days(10);
  });
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(refused.error_message(), "settings.retention.kudos_live_days"))
      << refused.error_message();
  refused = TryUpdateSettings([](kudos::v1::OrgSettings& s) { s.mutable_retention()->set_audit_days(4000); });
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(refused.error_message(), "settings.retention.audit_days"))
      << refused.error_message();
  UpdateSettings([](kudos::v1::OrgSettings& s) {
    s.mutable_retention()->set_kudos_live_days(90);
    s.mutable_retention()->set_audit_days(0);
  });
  ASSERT_TRUE(directory_->GetOrgSettings(Context(admin_).get(), {}, &got).ok());
  EXPECT_EQ(got.settings().retention().kudos_live_days(), 90);
  EXPECT_EQ(got.settings().retention().audit_days(), 400);
}

// A stand-in ledger that records the policy pushes it receives.
class RecordingLedger final : public ledger::v1::LedgerService::Service {
 public:
  grpc::Status SetAllowancePolicy(grpc::ServerContext*,
                                  const ledger::v1::SetAllowancePolicyRequest* request,
                                  ledger::v1::SetAllowancePolicyResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    pushes_.push_back(*request);
    *response->mutable_policy() = request->policy();
    *response->mutable_retention() = request->retention();
    return grpc::Status::OK;
  }
  std::vector<ledger::v1::SetAllowancePolicyRequest> pushes() {
    std::lock_guard<std::mutex> lock(mu_);
    return pushes_;
  }

 private:
  std::mutex mu_;
  std::vector<ledger::v1::SetAllowancePolicyRequest> pushes_;
};

TEST(RetentionPushTest, UpdateOrgSettings_PushesTheRetentionPolicyWithTheAllowancePolicy) {
  harness::RedisServer redis;
  RecordingLedger recording;
  const int port = harness::FreePort();
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials());
  builder.RegisterService(&recording);
  std::unique_ptr<grpc::Server> fake_ledger = builder.BuildAndStart();
  ASSERT_NE(fake_ledger, nullptr);
  harness::Service kudos(KUDOS_BINARY, redis.address(),
                         {"--ledger=127.0.0.1:" + std::to_string(port), "--archive_interval_s=0"});
  auto directory = DirectoryService::NewStub(
      grpc::CreateChannel(kudos.address(), grpc::InsecureChannelCredentials()));
  kudos::v1::UpdateOrgSettingsRequest request;
  request.mutable_settings()->mutable_retention()->set_idempotency_days(14);
  request.mutable_settings()->mutable_retention()->set_transfers_live_days(800);
  kudos::v1::UpdateOrgSettingsResponse response;
  grpc::Status status = directory->UpdateOrgSettings(
      Context(MintToken(kOrg, "root", {"admin"})).get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto pushes = recording.pushes();
  ASSERT_EQ(pushes.size(), 1u);
  // Sent with the defaults filled in, as stored.
  EXPECT_EQ(pushes[0].retention().idempotency_days(), 14);
  EXPECT_EQ(pushes[0].retention().kudos_live_days(), 400);
  EXPECT_EQ(pushes[0].retention().transfers_live_days(), 800);
  EXPECT_EQ(pushes[0].retention().audit_days(), 400);
  EXPECT_EQ(pushes[0].retention().SerializeAsString(),
            response.settings().retention().SerializeAsString());
  EXPECT_EQ(pushes[0].policy().points_per_period(), 100);
  fake_ledger->Shutdown();
}

// ---- idempotency keys and finished records ------------------------------------------------------

// Since issue 15's record-keyed round a kudos's id follows from its request
// (KudosIdOfRequest): the record answers a retry, and no request key is kept.
TEST_F(RetentionTest, IdempotencyKey_TheRecordAnswersRetriesAndNoRequestKeyIsKept) {
  kudos::v1::Kudos first, retried;
  ASSERT_TRUE(Send("alice", "r1", {"bob"}, "teamwork", &first).ok());
  EXPECT_EQ(first.kudos_id(), kudos::KudosIdOfRequest(kOrg, "alice", "r1"));
  EXPECT_EQ(Integer({"EXISTS", kPrefix + "kudosreq:alice:r1"}), 0);
  ASSERT_TRUE(Send("alice", "r1", {"bob"}, "teamwork", &retried).ok());
  EXPECT_EQ(retried.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(RequestRecordId("alice", "r1"), first.kudos_id());
  // A different kudos under the same request_id is refused, naming the first.
  grpc::Status taken = Send("alice", "r1", {"carol"}, "teamwork");
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(taken.error_message().find(first.kudos_id()), std::string::npos) << taken.error_message();
  // Another giver's same request_id is another kudos.
  kudos::v1::Kudos other;
  ASSERT_TRUE(Send("bob", "r1", {"alice"}, "teamwork", &other).ok());
  EXPECT_NE(other.kudos_id(), first.kudos_id());
  EXPECT_EQ(Integer({"EXISTS", kPrefix + "kudosreq:bob:r1"}), 0);
  // A refused kudos keeps its fingerprint with its error, and expires with
  // the window, which follows the org's policy: a retry gets the refusal,
  // a different kudos under its request_id ALREADY_EXISTS.
  UpdateSettings([](kudos::v1::OrgSettings& s) { s.mutable_retention()->set_idempotency_days(2); });
  ASSERT_TRUE(Send("dave", "x1", {"bob", "olga"}, "teamwork", nullptr, 50).ok());
  grpc::Status refused = Send("dave", "x2", {"carol"}, "teamwork", nullptr, 50);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  const std::string aborted = kPrefix + "kudos:" + kudos::KudosIdOfRequest(kOrg, "dave", "x2");
  EXPECT_EQ(Fields(aborted), (std::set<std::string>{"state", "error_code", "error_message", "fp"}));
  const int64_t aborted_ttl_s = Integer({"TTL", aborted});
  EXPECT_GT(aborted_ttl_s, 2 * 86400 - 600);
  EXPECT_LE(aborted_ttl_s, 2 * 86400);
  EXPECT_EQ(Send("dave", "x2", {"carol"}, "teamwork", nullptr, 50).error_code(), refused.error_code());
  EXPECT_EQ(Send("dave", "x2", {"bob"}, "teamwork", nullptr, 50).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // Boost request ids keep their keys, with the window.
  ASSERT_TRUE(Boost("carol", first.kudos_id(), "b1").ok());
  const int64_t boost_ttl_s = Integer({"TTL", kPrefix + "boostreq:carol:b1"});
  EXPECT_GT(boost_ttl_s, 2 * 86400 - 600);
  EXPECT_LE(boost_ttl_s, 2 * 86400);
}

// Request keys written by versions before record-keyed kudos (a STRING of the
// fingerprint and the id packed, a hash {id, fp} with 16 bytes or all 64 hex
// digits), naming a kudos whose id does not follow from its request, still
// answer retries and refuse a different kudos under the same request_id.
TEST_F(RetentionTest, IdempotencyKey_RequestKeysWrittenBeforeStillAnswerRetries) {
  kudos::v1::Kudos first, retried;
  ASSERT_TRUE(Send("alice", "r1", {"bob"}, "teamwork", &first).ok());
  // "old1" as a previous version sent it: its key names the kudos above.
  const std::string key = kPrefix + "kudosreq:alice:old1";
  kudos::v1::SendKudosRequest request;
  request.set_request_id("old1");
  request.add_recipient_ids("bob");
  request.set_message("Thanks for old1, that follow-up saved our release!");
  request.add_values("teamwork");
  request.set_points_per_recipient(1);
  const std::string full = kudos::SendFingerprint(request);
  const std::string short_fp = kudos::KudosStore::StoredFingerprint(full);
  ASSERT_EQ(short_fp.size(), 16u);
  const std::string packed = kudos::KudosStore::PackedRequestValue(first.kudos_id(), short_fp);
  ASSERT_EQ(packed.size(), 28u);
  ASSERT_TRUE(pool_->Run({"SET", key, packed, "EX", "3600"}).ok());
  EXPECT_EQ(RequestRecordId("alice", "old1"), first.kudos_id());
  ASSERT_TRUE(Send("alice", "old1", {"bob"}, "teamwork", &retried).ok());
  EXPECT_EQ(retried.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(Send("alice", "old1", {"carol"}, "teamwork").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  for (const std::string& fp : {short_fp, full}) {
    ASSERT_TRUE(pool_->Run({"DEL", key}).ok());
    ASSERT_TRUE(pool_->Run({"HSET", key, "id", first.kudos_id(), "fp", fp}).ok());
    ASSERT_TRUE(pool_->Run({"EXPIRE", key, "3600"}).ok());
    EXPECT_EQ(RequestRecordId("alice", "old1"), first.kudos_id());
    ASSERT_TRUE(Send("alice", "old1", {"bob"}, "teamwork", &retried).ok());
    EXPECT_EQ(retried.SerializeAsString(), first.SerializeAsString());
    EXPECT_EQ(Send("alice", "old1", {"carol"}, "teamwork").error_code(),
              grpc::StatusCode::ALREADY_EXISTS);
  }
  // No record was made under old1's own id.
  EXPECT_FALSE(Live(kudos::KudosIdOfRequest(kOrg, "alice", "old1")));
  // A boost's id does not pack: its request key stays the hash.
  ASSERT_TRUE(Boost("carol", first.kudos_id(), "b1").ok());
  auto type = pool_->Run({"TYPE", kPrefix + "boostreq:carol:b1"});
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(type->str, "hash");
}

// During a rolling upgrade (--write_request_keys) a record-keyed kudos writes
// the packed request key too, for replicas that read only request keys.
TEST_F(RetentionTest, IdempotencyKey_WrittenAlongsideTheRecordOnlyWhenAskedFor) {
  for (bool write : {false, true}) {
    const std::string request_id = write ? "w1" : "w0";
    kudos::BeginRecognition begin = RecordKeyedBegin(request_id, std::string(64, 'a'));
    begin.write_request_key = write;
    auto outcome = store_->Begin(kOrg, begin);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_TRUE(outcome->is_new);
    const std::string key = kPrefix + "kudosreq:alice:" + request_id;
    EXPECT_EQ(Integer({"EXISTS", key}), write ? 1 : 0);
    // Either way a second begin finds the PENDING record, nothing new.
    auto again = store_->Begin(kOrg, begin);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->is_new);
    EXPECT_EQ(again->record_id, begin.record_id);
    EXPECT_EQ(again->fingerprint, begin.fingerprint);
  }
}

// Committed kudos are fields of kRecordBuckets hashes per org, not a key
// each. During a rolling upgrade (--write_record_keys) they go to their own
// key instead, which a version before the buckets reads; either way a
// second begin and a second finish find the committed record.
TEST_F(RetentionTest, RecordBuckets_ACommittedKudosIsABucketFieldOrItsOwnKeyOnlyWhenAskedFor) {
  for (bool write : {false, true}) {
    const std::string request_id = write ? "k1" : "k0";
    kudos::BeginRecognition begin = RecordKeyedBegin(request_id, std::string(64, 'b'));
    auto outcome = store_->Begin(kOrg, begin);
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    ASSERT_TRUE(outcome->is_new);
    store_->set_write_record_keys(write);
    const kudos::FinishFields fields = kudos::KudosStore::FinishFieldsOf(begin, outcome->seq);
    auto finished = store_->Finish(kOrg, kudos::RecordKind::kKudos, begin.record_id, true,
                                   absl::OkStatus(), fields);
    store_->set_write_record_keys(false);
    ASSERT_TRUE(finished.ok()) << finished.status();
    EXPECT_EQ(*finished, "COMMITTED");
    const std::string own_key = kPrefix + "kudos:" + begin.record_id;
    EXPECT_EQ(Integer({"HEXISTS", Bucket(begin.record_id), Field(begin.record_id)}), write ? 0 : 1);
    EXPECT_EQ(pool_->Run({"TYPE", own_key})->str, write ? "string" : "none");
    EXPECT_TRUE(Live(begin.record_id));
    auto again = store_->Begin(kOrg, begin);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->is_new) << "a retry finds the committed record";
    EXPECT_EQ(again->record_id, begin.record_id);
    auto finished_again = store_->Finish(kOrg, kudos::RecordKind::kKudos, begin.record_id, true,
                                         absl::OkStatus(), fields);
    ASSERT_TRUE(finished_again.ok()) << finished_again.status();
    EXPECT_EQ(*finished_again, "COMMITTED");
    auto record = store_->GetRecord(kOrg, kudos::RecordKind::kKudos, begin.record_id);
    ASSERT_TRUE(record.ok()) << record.status();
    ASSERT_TRUE(record->has_value());
    EXPECT_EQ((*record)->state, "COMMITTED");
  }
  // The buckets are the bound: no other key holds a committed kudos.
  std::set<std::string> buckets;
  for (int i = 0; i < 400; ++i) {
    buckets.insert(Bucket(kudos::KudosIdOfRequest(kOrg, "alice", absl::StrCat("r", i))));
  }
  EXPECT_EQ(buckets.size(), static_cast<size_t>(kudos::KudosStore::kRecordBuckets));
}

TEST_F(RetentionTest, CommittedRecord_KeepsNoCommitOnlyFieldsAndReadsBackByteIdentical) {
  kudos::v1::Kudos sent;
  ASSERT_TRUE(Send("alice", "r1", {"bob", "olga"}, "teamwork", &sent).ok());
  // The record is the kudos and its teams, nothing else (no transfers,
  // event, feeds, caps or reconcile fields): a field of its bucket, no key
  // of its own.
  const std::string record = kPrefix + "kudos:" + sent.kudos_id();
  EXPECT_EQ(Integer({"EXISTS", record}), 0);
  auto value = pool_->Run({"HGET", Bucket(sent.kudos_id()), Field(sent.kudos_id())});
  ASSERT_TRUE(value.ok());
  // The marker, the request's fingerprint (8 bytes), then the KudosSent
  // without the id its key names (StoredRecordPb): a version before this one
  // cannot parse it.
  const size_t header = 1 + kudos::KudosStore::kRecordFingerprintBytes;
  ASSERT_GT(value->str.size(), header);
  EXPECT_EQ(value->str[0], kudos::KudosStore::kFingerprintInMarker);
  kudos::v1::KudosSent stored;
  EXPECT_FALSE(stored.ParseFromString(value->str));
  ASSERT_TRUE(stored.ParseFromString(value->str.substr(header)));
  EXPECT_EQ(stored.kudos().kudos_id(), "");
  stored.mutable_kudos()->set_kudos_id(sent.kudos_id());
  EXPECT_EQ(stored.kudos().SerializeAsString(), sent.SerializeAsString());
  EXPECT_EQ(stored.giver_team_id(), "eng");
  EXPECT_EQ(stored.recipient_team_ids().at("olga"), "ops");
  // A committed kudos stays until archived.
  EXPECT_EQ(Integer({"TTL", Bucket(sent.kudos_id())}), -1);
  EXPECT_EQ(GetKudosBytes(sent.kudos_id()), sent.SerializeAsString());
  const int64_t bucket_bytes = Integer({"MEMORY", "USAGE", Bucket(sent.kudos_id())});
  std::printf("committed kudos record: %lld bytes of Redis memory (MEMORY USAGE of its bucket)\n",
              static_cast<long long>(bucket_bytes));
  EXPECT_LT(bucket_bytes, 400);  // was ~1,900 with the commit-only blobs
  // As versions before wrote it, under its own key: with the id, without
  // it, and with the fingerprint: read alike.
  MoveToOwnKey(sent.kudos_id(), stored.SerializeAsString());
  EXPECT_EQ(GetKudosBytes(sent.kudos_id()), sent.SerializeAsString());
  ASSERT_TRUE(pool_->Run({"SET", record, kudos::KudosStore::kIdLeftOutMarker +
                                             value->str.substr(header)}).ok());
  EXPECT_EQ(GetKudosBytes(sent.kudos_id()), sent.SerializeAsString());
  ASSERT_TRUE(pool_->Run({"SET", record, value->str}).ok());
  EXPECT_EQ(GetKudosBytes(sent.kudos_id()), sent.SerializeAsString());
  // Its retry finds it there too, and another payload is refused.
  kudos::v1::Kudos retried;
  ASSERT_TRUE(Send("alice", "r1", {"bob", "olga"}, "teamwork", &retried).ok());
  EXPECT_EQ(retried.SerializeAsString(), sent.SerializeAsString());
  EXPECT_EQ(Send("alice", "r1", {"bob"}, "teamwork").error_code(), grpc::StatusCode::ALREADY_EXISTS);

  // A committed boost keeps only its state, for retries within the window.
  ASSERT_TRUE(Boost("carol", sent.kudos_id(), "b1").ok());
  auto boost_ids = Keys(kPrefix + "boost:*");
  ASSERT_EQ(boost_ids.size(), 1u);
  EXPECT_EQ(Fields(boost_ids[0]), (std::set<std::string>{"state"}));
  EXPECT_GT(Integer({"TTL", boost_ids[0]}), 0);
  ASSERT_TRUE(Boost("carol", sent.kudos_id(), "b1").ok());  // retry: same answer, no new boost
  kudos::v1::GetKudosRequest get;
  get.set_kudos_id(sent.kudos_id());
  kudos::v1::GetKudosResponse got;
  ASSERT_TRUE(kudos_stub_->GetKudos(Context(MintToken(kOrg, "bob")).get(), get, &got).ok());
  EXPECT_EQ(got.kudos().boosts_size(), 1);

  // An aborted kudos keeps its state and error, and expires with the window.
  kudos::v1::Kudos big;
  ASSERT_TRUE(Send("dave", "x1", {"bob", "olga"}, "teamwork", &big, 50).ok());
  grpc::Status refused = Send("dave", "x2", {"carol"}, "teamwork", nullptr, 50);
  ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  const std::string aborted_record = kPrefix + "kudos:" + RequestRecordId("dave", "x2");
  EXPECT_EQ(Fields(aborted_record),
            (std::set<std::string>{"state", "error_code", "error_message", "fp"}));
  EXPECT_GT(Integer({"TTL", aborted_record}), 0);
  grpc::Status again = Send("dave", "x2", {"carol"}, "teamwork", nullptr, 50);
  EXPECT_EQ(again.error_code(), refused.error_code());
}

// ---- archive ------------------------------------------------------------------------------------

TEST_F(RetentionTest, Archive_500DaysLaterEveryReadReturnsExactlyWhatItReturnedBefore) {
  std::vector<std::string> ids = SendMany(40, "r");
  // ids[1]: bob to carol.
  ASSERT_TRUE(Boost("nina", ids[1], "b1").ok());
  ASSERT_TRUE(Boost("olga", ids[1], "b2").ok());
  const auto before = Snapshot(ids);
  ASSERT_EQ(before.at("all /100").size(), 40u);

  // Small chunks: several chunks per month, more than one page scans.
  kudos::Archiver archiver(*pool_, *store_, Options(7, 2, 2));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 399), 0);  // still live
  const absl::Time later = absl::Now() + absl::Hours(24) * 500;
  // One run does bounded work (2 batches of 7) and says more is left.
  auto first = archiver.RunOnce(kOrg, later);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->kudos_archived, 14);
  EXPECT_TRUE(first->more);
  EXPECT_GT(first->bytes_written, 0);
  EXPECT_EQ(ArchiveAll(archiver, later), 26);
  for (const std::string& id : ids) {
    EXPECT_FALSE(Live(id)) << id;
  }
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "feed:all"}), 0);
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "feed:recipient:bob"}), 0);
  EXPECT_EQ(Integer({"EXISTS", kPrefix + "boosts:" + ids[1]}), 0);
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "archive:chunks"}), 20);

  EXPECT_EQ(Snapshot(ids), before);
  // A second run finds nothing to do and changes nothing.
  auto again = archiver.RunOnce(kOrg, later);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kudos_archived, 0);
  EXPECT_EQ(again->bytes_written, 0);
  EXPECT_EQ(Snapshot(ids), before);

  // An archived kudos can still be boosted; the boost reads back with it.
  // ids[5]: pete to nina.
  grpc::Status boosted = Boost("alice", ids[5], "b3");
  ASSERT_TRUE(boosted.ok()) << boosted.error_message();
  kudos::v1::GetKudosRequest get;
  get.set_kudos_id(ids[5]);
  kudos::v1::GetKudosResponse got;
  ASSERT_TRUE(kudos_stub_->GetKudos(Context(MintToken(kOrg, "bob")).get(), get, &got).ok());
  ASSERT_EQ(got.kudos().boosts_size(), 1);
  EXPECT_EQ(got.kudos().boosts(0).booster_id(), "alice");
  // The request_id of an archived kudos names it still: a new kudos under it
  // is refused (the archive keeps no fingerprint), and nothing is written.
  // ids[0]: alice's "r0".
  ASSERT_EQ(ids[0], kudos::KudosIdOfRequest(kOrg, "alice", "r0"));
  grpc::Status reused = Send("alice", "r0", {"bob"}, "teamwork");
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(reused.error_message().find("archived"), std::string::npos) << reused.error_message();
  EXPECT_FALSE(Live(ids[0]));
  // An unknown id is still NOT_FOUND.
  get.set_kudos_id("k0000000000000000deadbeef");
  EXPECT_EQ(kudos_stub_->GetKudos(Context(MintToken(kOrg, "bob")).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Before 334bb16 a committed kudos was a hash {pb: the Kudos as begun
// (PENDING), state: COMMITTED, teams: "a,b"}, older ones with the commit
// blobs too; after an upgrade those read, boost and archive like STRINGs.
TEST_F(RetentionTest, UpgradedHashRecord_ReadsBoostsAndArchivesExactlyLikeAStringRecord) {
  std::vector<std::string> ids = SendMany(12, "u");
  const auto before = Snapshot(ids);
  for (size_t i = 0; i < ids.size(); i += 2) {  // every other one, as the old scripts left it
    const std::string record = kPrefix + "kudos:" + ids[i];
    auto value = pool_->Run({"HGET", Bucket(ids[i]), Field(ids[i])});
    ASSERT_TRUE(value.ok()) << value.status();
    ASSERT_EQ(Integer({"HDEL", Bucket(ids[i]), Field(ids[i])}), 1);
    absl::StatusOr<kudos::v1::KudosSent> parsed = kudos::KudosStore::ParseStoredRecord(ids[i], value->str);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const kudos::v1::KudosSent& sent = *parsed;
    std::set<std::string> teams = {sent.giver_team_id()};
    for (const auto& [recipient, team] : sent.recipient_team_ids()) teams.insert(team);
    teams.erase("");
    std::string teams_field;
    for (const std::string& team : teams) teams_field += (teams_field.empty() ? "" : ",") + team;
    kudos::v1::Kudos begun = sent.kudos();
    begun.set_state(kudos::v1::KUDOS_STATE_PENDING);
    ASSERT_TRUE(pool_->Run({"DEL", record}).ok());
    common::redis::Command hset = {"HSET", record, "pb", begun.SerializeAsString(), "state", "COMMITTED"};
    if (!teams_field.empty()) {
      hset.push_back("teams");
      hset.push_back(teams_field);
    }
    if (i % 4 == 0) {  // older still: the commit blobs stayed
      for (const char* blob : {"event", "transfers", "feeds"}) {
        hset.push_back(blob);
        hset.push_back("x");
      }
    }
    ASSERT_TRUE(pool_->Run(hset).ok());
    auto type = pool_->Run({"TYPE", record});
    ASSERT_TRUE(type.ok());
    ASSERT_EQ(type->str, "hash");
  }
  EXPECT_EQ(Snapshot(ids), before);

  // An old record can be boosted; the boost reads back with it.
  grpc::Status boosted = Boost("carol", ids[0], "ub1");
  ASSERT_TRUE(boosted.ok()) << boosted.error_message();
  const auto boosted_before = Snapshot(ids);
  EXPECT_NE(boosted_before, before);

  kudos::Archiver archiver(*pool_, *store_, Options(5, 4, 3));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), 12);
  for (const std::string& id : ids) {
    EXPECT_FALSE(Live(id)) << id;
  }
  EXPECT_EQ(Snapshot(ids), boosted_before);
}

// A kudos begun before 334bb16 and committed after it holds the Kudos
// itself as pb, not a KudosSent: it commits as the hash it was then, and
// reads and archives like any other.
TEST_F(RetentionTest, UpgradedPendingRecord_CommitsAfterTheUpgradeAndReadsLikeAStringRecord) {
  ledger_->Stop();
  grpc::Status pending = Send("alice", "up1", {"bob", "olga"}, "teamwork");
  ASSERT_EQ(pending.error_code(), grpc::StatusCode::UNAVAILABLE) << pending.error_message();
  const std::string id = RequestRecordId("alice", "up1");
  const std::string record = kPrefix + "kudos:" + id;
  auto pb = pool_->Run({"HGET", record, "pb"});
  ASSERT_TRUE(pb.ok() && !pb->is_nil());
  absl::StatusOr<kudos::v1::KudosSent> sent = kudos::KudosStore::ParseStoredRecord(id, pb->str);
  ASSERT_TRUE(sent.ok()) << sent.status();
  kudos::v1::Kudos begun = sent->kudos();  // the old workflow's pb: the Kudos, its id first
  begun.set_state(kudos::v1::KUDOS_STATE_PENDING);
  ASSERT_TRUE(pool_->Run({"HSET", record, "pb", begun.SerializeAsString()}).ok());  // as the old workflow wrote it
  ledger_->Start();
  kudos::v1::Kudos committed;
  ASSERT_TRUE(harness::Eventually(
      [&] { return Send("alice", "up1", {"bob", "olga"}, "teamwork", &committed).ok(); }));
  kudos::v1::Kudos expected = begun;
  expected.set_state(kudos::v1::KUDOS_STATE_COMMITTED);
  EXPECT_EQ(committed.SerializeAsString(), expected.SerializeAsString());
  auto type = pool_->Run({"TYPE", record});
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(type->str, "hash");
  EXPECT_EQ(Fields(record), (std::set<std::string>{"pb", "state", "teams"}));
  const auto before = Snapshot({id});
  EXPECT_EQ(before.at("get " + id).at(0), expected.SerializeAsString());
  EXPECT_EQ(before.at("team ops /100").size(), 1u);
  kudos::Archiver archiver(*pool_, *store_, Options(5, 4, 3));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), 1);
  EXPECT_EQ(Integer({"EXISTS", record}), 0);
  EXPECT_EQ(Snapshot({id}), before);
}

// A listing that read a feed entry just before the archive moved its kudos
// (the entry left in the live ZSET stands for that moment) reads the kudos
// from the archive: neither dropped nor listed twice.
TEST_F(RetentionTest, Archive_AFeedEntryReadBeforeItsKudosWasArchivedStillListsItOnce) {
  std::vector<std::string> ids = SendMany(8, "f");
  ASSERT_TRUE(Boost("nina", ids[2], "fb1").ok());
  const auto before = Snapshot(ids);
  const std::string raced = ids[2];
  auto seq = pool_->Run({"ZSCORE", kPrefix + "feed:all", kudos::KudosStore::FeedMember(raced)});
  ASSERT_TRUE(seq.ok() && !seq->is_nil());
  kudos::Archiver archiver(*pool_, *store_, Options(5, 4, 3));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), 8);
  ASSERT_TRUE(
      pool_->Run({"ZADD", kPrefix + "feed:all", seq->str, kudos::KudosStore::FeedMember(raced)}).ok());
  EXPECT_EQ(Snapshot(ids), before);  // feed:all lists it once
  // A feed the archive does not list it in: only the live entry finds it
  // (here in the form written before feed members were packed: the id).
  ASSERT_TRUE(pool_->Run({"ZADD", kPrefix + "feed:value:raced", seq->str, raced}).ok());
  auto page = store_->ListFeed(kOrg, "feed:value:raced", "", 10);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->kudos.size(), 1u);
  EXPECT_EQ(page->kudos[0].SerializeAsString(), before.at("get " + raced).at(0));
  EXPECT_EQ(page->kudos[0].boosts_size(), 1);
}

TEST_F(RetentionTest, Archive_PagesContinueFromLiveKudosIntoArchivedOnesInTheSameOrder) {
  std::vector<std::string> old_ids = SendMany(20, "old");
  // Everything sent before this instant is old 400 days later.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const absl::Time boundary = absl::Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::vector<std::string> new_ids = SendMany(15, "new");
  std::vector<std::string> ids = old_ids;
  ids.insert(ids.end(), new_ids.begin(), new_ids.end());
  const auto before = Snapshot(ids);
  kudos::Archiver archiver(*pool_, *store_, Options(6, 8, 4));
  EXPECT_EQ(ArchiveAll(archiver, boundary + absl::Hours(24) * 400), 20);
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "feed:all"}), 15);
  EXPECT_EQ(Snapshot(ids), before);
  for (const std::string& id : new_ids) EXPECT_TRUE(Live(id)) << id;
}

TEST_F(RetentionTest, Archive_NeverTakesAPendingKudosWhichReadsInItsPlaceOnceCommitted) {
  std::vector<std::string> ids = SendMany(10, "a");
  ledger_->Stop();
  grpc::Status pending = Send("alice", "p1", {"bob"}, "teamwork");
  ASSERT_EQ(pending.error_code(), grpc::StatusCode::UNAVAILABLE) << pending.error_message();
  ledger_->Start();
  // Until the kudos service reconnects to the ledger (same request_id: one kudos).
  kudos::v1::Kudos probe;
  ASSERT_TRUE(harness::Eventually([&] { return Send("olga", "probe", {"pete"}, "empathy", &probe).ok(); }));
  std::vector<std::string> after = SendMany(5, "b");
  const std::string pending_id = RequestRecordId("alice", "p1");
  kudos::Archiver archiver(*pool_, *store_, Options(4, 8, 3));
  const absl::Time later = absl::Now() + absl::Hours(24) * 500;
  EXPECT_EQ(ArchiveAll(archiver, later), 16);
  auto state = pool_->Run({"HGET", kPrefix + "kudos:" + pending_id, "state"});
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->str, "PENDING");
  kudos::v1::GetKudosRequest get;
  get.set_kudos_id(pending_id);
  kudos::v1::GetKudosResponse got;
  EXPECT_EQ(kudos_stub_->GetKudos(Context(MintToken(kOrg, "bob")).get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The retry commits it: it reads between the kudos sent before and after it.
  kudos::v1::Kudos committed;
  grpc::Status retried = Send("alice", "p1", {"bob"}, "teamwork", &committed);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(GetKudosBytes(committed.kudos_id()), committed.SerializeAsString());
  std::vector<std::string> expected;
  for (auto it = after.rbegin(); it != after.rend(); ++it) expected.push_back(*it);
  expected.push_back(probe.kudos_id());
  expected.push_back(committed.kudos_id());
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) expected.push_back(*it);
  for (int page_size : {1, 4, 100}) {
    std::vector<std::string> listed;
    for (const std::string& bytes : ListAll({}, page_size)) {
      kudos::v1::Kudos k;
      ASSERT_TRUE(k.ParseFromString(bytes));
      listed.push_back(k.kudos_id());
    }
    EXPECT_EQ(listed, expected) << "page size " << page_size;
  }
  // Committed below the archive's top, it stays live (documented).
  EXPECT_EQ(ArchiveAll(archiver, later), 0);
  EXPECT_TRUE(Live(committed.kudos_id()));
}

// The ids ListKudos returns for `filter`, every page of `page_size`.
std::vector<std::string> IdsOf(const std::vector<std::string>& listed) {
  std::vector<std::string> ids;
  for (const std::string& bytes : listed) {
    kudos::v1::Kudos k;
    EXPECT_TRUE(k.ParseFromString(bytes));
    ids.push_back(k.kudos_id());
  }
  return ids;
}

// A feed past 128 entries keeps its newest in its head ZSET and moves the
// oldest 64 at a time to sealed chunks, so every feed ZSET stays a listpack;
// a kudos committed late lands in the chunk whose range holds it and lists
// in its place; feeds stored as one ZSET each (before the chunks) read
// alike and are sealed down by new kudos; the archive empties heads,
// chunks and chunk lists, and every read is the same before and after.
TEST_F(RetentionTest, Feeds_PastAHeadOf128SealChunksThatListArchiveAndUpgradeExactly) {
  std::vector<std::string> first = SendMany(20, "a");
  ledger_->Stop();
  grpc::Status pending = Send("alice", "p1", {"bob"}, "teamwork");
  ASSERT_EQ(pending.error_code(), grpc::StatusCode::UNAVAILABLE) << pending.error_message();
  ledger_->Start();
  kudos::v1::Kudos probe;
  ASSERT_TRUE(harness::Eventually([&] { return Send("olga", "probe", {"pete"}, "empathy", &probe).ok(); }));
  std::vector<std::string> second = SendMany(300, "b");
  EXPECT_GE(Integer({"ZCARD", kPrefix + "feed:all#"}), 4);
  EXPECT_LE(Integer({"ZCARD", kPrefix + "feed:all"}), 128);
  // Committed now, below every sealed chunk's range but the first: it waits
  // in the head, listed in its place, until sealing moves it to its chunk.
  kudos::v1::Kudos late;
  grpc::Status retried = Send("alice", "p1", {"bob"}, "teamwork", &late);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  std::vector<std::string> all = first;
  all.push_back(late.kudos_id());
  all.push_back(probe.kudos_id());
  all.insert(all.end(), second.begin(), second.end());
  std::vector<std::string> newest_first(all.rbegin(), all.rend());
  for (int page_size : {1, 7, 100}) {
    EXPECT_EQ(IdsOf(ListAll({}, page_size)), newest_first) << "page size " << page_size;
  }
  std::vector<std::string> more = SendMany(70, "m");
  all.insert(all.end(), more.begin(), more.end());
  newest_first.assign(all.rbegin(), all.rend());
  for (int page_size : {1, 100}) {
    EXPECT_EQ(IdsOf(ListAll({}, page_size)), newest_first) << "page size " << page_size;
  }
  auto in_head =
      pool_->Run({"ZSCORE", kPrefix + "feed:all", kudos::KudosStore::FeedMember(late.kudos_id())});
  ASSERT_TRUE(in_head.ok());
  EXPECT_TRUE(in_head->is_nil());
  // Chunks hold disjoint ranges (previous max, own max], the head the rest.
  for (const std::string& dir : Keys(kPrefix + "feed:*#")) {
    auto chunks = pool_->Run({"ZRANGE", dir, "0", "-1", "WITHSCORES"});
    ASSERT_TRUE(chunks.ok());
    double previous = 0;
    for (size_t c = 0; c + 1 < chunks->elements.size(); c += 2) {
      const double max = std::stod(chunks->elements[c + 1].str);
      auto entries = pool_->Run({"ZRANGE", dir + chunks->elements[c].str, "0", "-1", "WITHSCORES"});
      ASSERT_TRUE(entries.ok());
      for (size_t i = 0; i + 1 < entries->elements.size(); i += 2) {
        const double seq = std::stod(entries->elements[i + 1].str);
        EXPECT_GT(seq, previous) << dir << chunks->elements[c].str;
        EXPECT_LE(seq, max) << dir << chunks->elements[c].str;
      }
      previous = max;
    }
    auto head_min = pool_->Run({"ZRANGE", dir.substr(0, dir.size() - 1), "0", "0", "WITHSCORES"});
    ASSERT_TRUE(head_min.ok());
    if (head_min->elements.size() == 2) {
      EXPECT_GT(std::stod(head_min->elements[1].str), previous) << dir;
    }
  }
  int feeds = 0;
  for (const std::string& key : Keys(kPrefix + "feed:*")) {
    auto encoding = pool_->Run({"OBJECT", "ENCODING", key});
    ASSERT_TRUE(encoding.ok());
    EXPECT_EQ(encoding->str, "listpack") << key;
    ++feeds;
  }
  EXPECT_GT(feeds, 20);
  const auto chunked = Snapshot(all);

  // The previous version's form: each feed one ZSET (a skiplist past 128).
  for (const std::string& dir : Keys(kPrefix + "feed:*#")) {
    const std::string head = dir.substr(0, dir.size() - 1);
    auto chunks = pool_->Run({"ZRANGE", dir, "0", "-1"});
    ASSERT_TRUE(chunks.ok());
    for (const auto& chunk : chunks->elements) {
      auto entries = pool_->Run({"ZRANGE", dir + chunk.str, "0", "-1", "WITHSCORES"});
      ASSERT_TRUE(entries.ok());
      common::redis::Command zadd = {"ZADD", head};
      for (size_t i = 0; i + 1 < entries->elements.size(); i += 2) {
        zadd.push_back(entries->elements[i + 1].str);
        zadd.push_back(entries->elements[i].str);
      }
      if (zadd.size() > 2) {
        ASSERT_TRUE(pool_->Run(zadd).ok());
      }
      ASSERT_TRUE(pool_->Run({"DEL", dir + chunk.str}).ok());
    }
    ASSERT_TRUE(pool_->Run({"DEL", dir}).ok());
  }
  EXPECT_GT(Integer({"ZCARD", kPrefix + "feed:all"}), 300);
  EXPECT_EQ(Snapshot(all), chunked);

  // New kudos seal the big heads down, 64 entries a commit.
  std::vector<std::string> third = SendMany(40, "c");
  all.insert(all.end(), third.begin(), third.end());
  EXPECT_LE(Integer({"ZCARD", kPrefix + "feed:all"}), 128);
  newest_first.assign(all.rbegin(), all.rend());
  for (int page_size : {7, 100}) {
    EXPECT_EQ(IdsOf(ListAll({}, page_size)), newest_first) << "page size " << page_size;
  }
  const auto before = Snapshot(all);

  kudos::Archiver archiver(*pool_, *store_, Options(64, 8, 50));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), static_cast<int64_t>(all.size()));
  EXPECT_EQ(Keys(kPrefix + "feed:*"), std::vector<std::string>());
  EXPECT_EQ(Snapshot(all), before);
}

// Issue 15 (memory): an id NewId gave is a feed member of 13 bytes, not 25.
// An entry written before the packing (the id itself) still lists, seals
// into a chunk and leaves with its kudos's archive.
TEST_F(RetentionTest, Feeds_KeepNewIdsPackedAndStillListSealAndArchiveEntriesWrittenAsIds) {
  using kudos::KudosStore;
  const std::string new_id = "k0123456789abcdef01234567";
  EXPECT_EQ(KudosStore::FeedMember(new_id).size(), 13u);
  EXPECT_EQ(KudosStore::KudosIdOfFeedMember(KudosStore::FeedMember(new_id)), new_id);
  for (const std::string other : {"kf1", "k0123456789ABCDEF01234567", "b0123456789abcdef01234567",
                                  "k0123456789abcdef0123456", "k0123456789abcdef012345678"}) {
    EXPECT_EQ(KudosStore::FeedMember(other), other);
    EXPECT_EQ(KudosStore::KudosIdOfFeedMember(other), other);
  }
  std::vector<std::string> ids = SendMany(12, "p");
  for (const std::string& id : ids) {
    auto as_id = pool_->Run({"ZSCORE", kPrefix + "feed:all", id});
    auto packed = pool_->Run({"ZSCORE", kPrefix + "feed:all", KudosStore::FeedMember(id)});
    ASSERT_TRUE(as_id.ok() && packed.ok());
    EXPECT_TRUE(as_id->is_nil()) << id;
    EXPECT_FALSE(packed->is_nil()) << id;
  }
  const auto packed_reads = Snapshot(ids);

  // Every feed entry of every other kudos back in the form written before
  // the packing (the id), same seq: feed:all's packed member, the other
  // feeds' seq (Feeds_OtherThanAll...).
  std::map<std::string, std::string> seq_of = SeqsInFeedAll(ids);
  int rewritten = 0;
  for (const std::string& head : Keys(kPrefix + "feed:*")) {
    for (size_t i = 0; i < ids.size(); i += 2) {
      const std::string& seq = seq_of[ids[i]];
      const int removed = static_cast<int>(
          Integer({"ZREM", head, KudosStore::FeedMember(ids[i])}) + Integer({"ZREM", head, seq}));
      if (removed == 0) continue;
      ASSERT_TRUE(pool_->Run({"ZADD", head, seq, ids[i]}).ok());
      ++rewritten;
    }
  }
  EXPECT_GE(rewritten, 6 * 4);  // feed:all, giver, recipient, value at least
  EXPECT_EQ(Snapshot(ids), packed_reads);

  // Past a head of 128 the oldest 64, both forms, seal into a chunk.
  std::vector<std::string> more = SendMany(120, "q");
  ids.insert(ids.end(), more.begin(), more.end());
  EXPECT_GE(Integer({"ZCARD", kPrefix + "feed:all#"}), 1);
  const auto before = Snapshot(ids);
  kudos::Archiver archiver(*pool_, *store_, Options(64, 8, 50));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(Keys(kPrefix + "feed:*"), std::vector<std::string>());
  EXPECT_EQ(Snapshot(ids), before);
}

// Issue 15 (memory): a public kudos's entry in its giver, recipient, team
// and value feeds is its seq alone (member = score, a listpack integer),
// read as the id feed:all holds at that seq; feed:all keeps the packed id.
// Entries written before (the packed id, the id) read alike; both forms
// list through sealed chunks of feed:all and of a value's feed, and archive
// leaving no feed key.
TEST_F(RetentionTest, Feeds_OtherThanAllHoldPublicKudosBySeqAndListSealAndArchiveAlike) {
  using kudos::KudosStore;
  std::vector<std::string> ids = SendMany(14, "s");
  std::map<std::string, std::string> seq_of = SeqsInFeedAll(ids);
  int by_seq = 0;
  for (const std::string& head : Keys(kPrefix + "feed:*")) {
    if (head == kPrefix + "feed:all") continue;
    auto entries = pool_->Run({"ZRANGE", head, "0", "-1", "WITHSCORES"});
    ASSERT_TRUE(entries.ok());
    for (size_t i = 0; i + 1 < entries->elements.size(); i += 2) {
      EXPECT_EQ(entries->elements[i].str, entries->elements[i + 1].str) << head;
      ++by_seq;
    }
  }
  EXPECT_GE(by_seq, 14 * 3);  // giver, recipients, value at least
  const auto by_seq_reads = Snapshot(ids);

  // Half the kudos back in the forms written before: the packed id, the id.
  for (const std::string& head : Keys(kPrefix + "feed:*")) {
    if (head == kPrefix + "feed:all") continue;
    for (size_t i = 0; i < ids.size(); i += 2) {
      const std::string& seq = seq_of[ids[i]];
      if (Integer({"ZREM", head, seq}) == 0) continue;
      const std::string member = i % 4 == 0 ? KudosStore::FeedMember(ids[i]) : ids[i];
      ASSERT_TRUE(pool_->Run({"ZADD", head, seq, member}).ok());
    }
  }
  EXPECT_EQ(Snapshot(ids), by_seq_reads);

  // Past 128 entries both the feeds and feed:all seal chunks: an entry
  // resolves through feed:all's chunk holding its seq.
  std::vector<std::string> more = SendMany(400, "t");
  ids.insert(ids.end(), more.begin(), more.end());
  EXPECT_GE(Integer({"ZCARD", kPrefix + "feed:all#"}), 4);
  EXPECT_FALSE(Keys(kPrefix + "feed:value:*#").empty());
  std::vector<kudos::v1::Kudos> everything;
  for (const std::string& bytes : ListAll({}, 100)) {
    everything.emplace_back();
    ASSERT_TRUE(everything.back().ParseFromString(bytes));
  }
  ASSERT_EQ(everything.size(), ids.size());
  for (const char* person : {"alice", "olga"}) {
    std::vector<std::string> given, received;
    for (const kudos::v1::Kudos& k : everything) {
      if (k.giver_id() == person) given.push_back(k.SerializeAsString());
      if (std::count(k.recipient_ids().begin(), k.recipient_ids().end(), person) > 0) {
        received.push_back(k.SerializeAsString());
      }
    }
    kudos::v1::KudosFilter by_giver, by_recipient;
    by_giver.set_giver_id(person);
    by_recipient.set_recipient_id(person);
    for (int page_size : {1, 9, 100}) {
      EXPECT_EQ(ListAll(by_giver, page_size), given) << person << " /" << page_size;
      EXPECT_EQ(ListAll(by_recipient, page_size), received) << person << " /" << page_size;
    }
  }
  std::vector<std::string> valued;  // past 128: sealed chunks of its own
  for (const kudos::v1::Kudos& k : everything) {
    if (std::count(k.values().begin(), k.values().end(), "empathy") > 0) {
      valued.push_back(k.SerializeAsString());
    }
  }
  kudos::v1::KudosFilter by_value;
  by_value.set_value("empathy");
  EXPECT_GT(valued.size(), 128u);
  for (int page_size : {7, 100}) EXPECT_EQ(ListAll(by_value, page_size), valued) << page_size;
  const auto before = Snapshot(ids);

  kudos::Archiver archiver(*pool_, *store_, Options(64, 8, 50));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(Keys(kPrefix + "feed:*"), std::vector<std::string>());
  EXPECT_EQ(Snapshot(ids), before);
  // An entry feed:all no longer holds (left by a previous version's archive
  // run, which removes ids only) lists its kudos once, from the archive.
  ASSERT_TRUE(pool_->Run({"ZADD", kPrefix + "feed:giver:alice", seq_of[ids[0]], seq_of[ids[0]]}).ok());
  EXPECT_EQ(Snapshot(ids), before);
}

TEST_F(RetentionTest, Archive_AListingDecodesABoundedNumberOfChunksPerPageAndContinuesBelowThem) {
  kudos::v1::Kudos rare;
  ASSERT_TRUE(Send("nina", "rare", {"bob"}, "empathy", &rare).ok());
  for (int i = 0; i < 2 * kudos::KudosStore::kMaxChunksPerPage + 2; ++i) {
    ASSERT_TRUE(Send("alice", absl::StrCat("r", i), {"bob"}, "teamwork").ok());
  }
  kudos::Archiver archiver(*pool_, *store_, Options(8, 8, 2));
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500),
            2 * kudos::KudosStore::kMaxChunksPerPage + 3);
  // nina's kudos is in the oldest chunk, below the chunks one call decodes.
  auto page = store_->ListFeed(kOrg, "feed:giver:nina", "", 20);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->kudos.empty());
  ASSERT_FALSE(page->next_cursor.empty());
  page = store_->ListFeed(kOrg, "feed:giver:nina", page->next_cursor, 20);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->kudos.size(), 1u);
  EXPECT_EQ(page->kudos[0].SerializeAsString(), rare.SerializeAsString());
  EXPECT_TRUE(page->next_cursor.empty());
  kudos::v1::KudosFilter by_nina;
  by_nina.set_giver_id("nina");
  EXPECT_EQ(ListAll(by_nina, 20), std::vector<std::string>{rare.SerializeAsString()});
}

TEST_F(RetentionTest, Archive_TwoReplicasRunningAtOnceArchiveEachKudosOnce) {
  std::vector<std::string> ids = SendMany(60, "r");
  const auto before = Snapshot(ids);
  const absl::Time later = absl::Now() + absl::Hours(24) * 500;
  std::atomic<int64_t> archived{0}, conflicts{0};
  std::atomic<bool> done{false};
  // The lock expiring under a slow replica, over and over: both replicas
  // run at once and the script's conflict check alone keeps them apart.
  std::thread lock_breaker([&] {
    auto pool = MakePool(redis_->port());
    while (!done.load()) {
      (void)pool->Run({"DEL", kPrefix + "archive:lock"});
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  auto replica = [&] {
    auto pool = MakePool(redis_->port());
    kudos::KudosStore store(*pool);
    kudos::Archiver archiver(*pool, store, Options(5, 1, 8));
    // Until the other replica or this one has archived everything.
    EXPECT_TRUE(harness::Eventually([&] {
      auto stats = archiver.RunOnce(kOrg, later);
      EXPECT_TRUE(stats.ok()) << stats.status();
      if (stats.ok()) {
        archived += stats->kudos_archived;
        conflicts += stats->conflicts;
      }
      auto live = pool->Run({"ZCARD", kPrefix + "feed:all"});
      return live.ok() && live->integer == 0;
    }));
  };
  std::thread first(replica), second(replica);
  first.join();
  second.join();
  done.store(true);
  lock_breaker.join();
  EXPECT_EQ(archived.load(), 60);
  std::printf("two replicas: %lld batches refused as conflicts\n", static_cast<long long>(conflicts.load()));
  EXPECT_EQ(Snapshot(ids), before);
  // Exactly one index record per kudos.
  auto index = pool_->Run({"HVALS", kPrefix + "archive:index"});
  ASSERT_TRUE(index.ok());
  size_t records = 0;
  for (const auto& value : index->elements) records += value.str.size() / kudos::kIndexRecordBytes;
  EXPECT_EQ(records, 60u);
}

TEST_F(RetentionTest, Archive_SweepOfEveryOrgSkipsAnOrgThatFailsAndArchivesTheOthers) {
  std::vector<std::string> ids = SendMany(5, "r");
  // An org whose settings cannot be read (listed first or not, it must not stop the sweep).
  ASSERT_TRUE(pool_->Run(common::redis::RegisterOrgCommand("broken")).ok());
  ASSERT_TRUE(pool_->Run(common::redis::IndexOrgSlotCommand("broken")).ok());
  ASSERT_TRUE(pool_->Run({"SET", "kudos:{broken}:settings", std::string("\xff\xff\xff", 3)}).ok());
  kudos::Archiver archiver(*pool_, *store_);
  EXPECT_FALSE(archiver.RunOnce("broken", absl::Now()).ok());
  const absl::Time later = absl::Now() + absl::Hours(24) * 500;
  // A sweep told to stop (shutdown) takes no further org.
  EXPECT_EQ(archiver.RunAllOrgs(later, [] { return true; }).kudos_archived, 0);
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "feed:all"}), 5);
  kudos::ArchiveStats total = archiver.RunAllOrgs(later);
  EXPECT_EQ(total.kudos_archived, 5);
  EXPECT_EQ(Integer({"ZCARD", kPrefix + "feed:all"}), 0);
}

TEST_F(RetentionTest, Archive_TakesFewBytesPerArchivedKudosAllKeysIncluded) {
  std::vector<std::string> ids = SendMany(300, "r");
  kudos::Archiver archiver(*pool_, *store_);
  EXPECT_EQ(ArchiveAll(archiver, absl::Now() + absl::Hours(24) * 500), 300);
  int64_t bytes = 0;
  for (const std::string& key : Keys(kPrefix + "archive:*")) {
    bytes += Integer({"MEMORY", "USAGE", key, "SAMPLES", "0"});
  }
  std::printf("archive: %lld bytes of Redis memory for 300 kudos = %.1f B per archived kudos\n",
              static_cast<long long>(bytes), static_cast<double>(bytes) / 300);
  EXPECT_LT(bytes / 300, 400);  // loose: the bench reports the real figure
  EXPECT_EQ(GetKudosBytes(ids[123]).empty(), false);
}

// ---- audit --------------------------------------------------------------------------------------

TEST_F(RetentionTest, Audit_EntriesOlderThanAuditDaysAreTrimmed) {
  const std::string audit = common::audit::StreamKey(kOrg);
  auto entries = pool_->Run({"XRANGE", audit, "-", "+"});
  ASSERT_TRUE(entries.ok());
  const size_t total = entries->elements.size();
  ASSERT_GE(total, 9u);  // teams, people, settings
  // Cut in the middle: entries from that one's millisecond on stay.
  const std::string middle_id = entries->elements[total / 2].elements[0].str;
  const int64_t middle_ms = std::stoll(middle_id.substr(0, middle_id.find('-')));
  size_t kept = 0;
  for (const auto& entry : entries->elements) {
    const std::string& id = entry.elements[0].str;
    if (std::stoll(id.substr(0, id.find('-'))) >= middle_ms) ++kept;
  }
  kudos::Archiver archiver(*pool_, *store_);
  auto stats = archiver.RunOnce(kOrg, absl::FromUnixMillis(middle_ms) + absl::Hours(24) * 400);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->audit_entries_trimmed, static_cast<int64_t>(total - kept));
  EXPECT_EQ(Integer({"XLEN", audit}), static_cast<int64_t>(kept));
  EXPECT_LT(kept, total);
}

}  // namespace
