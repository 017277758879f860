// The social service's time rules with an injected clock, over a real
// redis-server and a fake ledger (library level, no sleeping): comments and
// reactions live as long as their kudos; a kudos past transfers_live_days is
// not retracted; a retraction whose ledger answer was lost is finished by a
// retry, announced once.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include "common/audit.h"
#include "common/auth/guard.h"
#include "services/kudos/kudos_store.h"
#include "services/kudos/social_service.h"
#include "services/kudos/social_store.h"
#include "tests/harness/process.h"
#include "tests/kudos/social_fake_ledger.h"

namespace kudos {
namespace {

using common::auth::Principal;
using google::protobuf::util::TimeUtil;

constexpr char kOrg[] = "acme";

class SocialClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    common::redis::PoolOptions options;
    options.endpoint.port = redis_.port();
    pool_ = std::make_unique<common::redis::Pool>(options);
    kudos_ = std::make_unique<KudosStore>(*pool_);
    social_ = std::make_unique<SocialStore>(*pool_);
    service_ = std::make_unique<SocialServiceImpl>(guard_, *kudos_, *social_, ledger_,
                                                   SocialOptions{}, [this] { return now_; });
    for (const char* id : {"alice", "bob", "carol"}) {
      kudos::v1::Person person;
      person.set_person_id(id);
      person.set_display_name(id);
      person.set_active(true);
      ASSERT_TRUE(kudos_->PutPerson(kOrg, person, true, "", "root").ok());
    }
  }

  // A committed kudos alice -> bob of 5 points sent at `sent`, as the kudos
  // service stores it (a STRING record holding its KudosSent), and its
  // ledger transfer.
  void Committed(const std::string& kudos_id, absl::Time sent) {
    kudos::v1::KudosSent record;
    kudos::v1::Kudos* kudos = record.mutable_kudos();
    kudos->set_kudos_id(kudos_id);
    kudos->set_giver_id("alice");
    kudos->add_recipient_ids("bob");
    kudos->set_message("thanks");
    kudos->set_points_per_recipient(5);
    kudos->set_state(kudos::v1::KUDOS_STATE_COMMITTED);
    *kudos->mutable_create_time() = TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(sent));
    ASSERT_TRUE(pool_
                    ->Run({"SET", KudosStore::RecordKey(kOrg, RecordKind::kKudos, kudos_id),
                           record.SerializeAsString()})
                    .ok());
    ledger_.accounts["bob"].insert(
        ledger_.accounts["bob"].begin(),
        social_test::Posted(kudos_id + ":bob", kudos_id, ledger::v1::TRANSFER_KIND_KUDOS, "bob",
                            sent));
  }

  static Principal Person(const std::string& id, uint32_t roles = 0) {
    Principal who;
    who.subject = id;
    who.org = kOrg;
    who.roles = roles | static_cast<uint32_t>(common::auth::Role::kMember);
    return who;
  }
  static Principal Admin() {
    return Person("root", static_cast<uint32_t>(common::auth::Role::kAdmin));
  }

  absl::Status Comment(const std::string& kudos_id, const std::string& request_id) {
    kudos::v1::AddCommentRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id(request_id);
    request.set_text("nice");
    kudos::v1::AddCommentResponse response;
    return service_->DoAddComment(Person("carol"), request, response);
  }

  absl::Status Retract(const std::string& kudos_id,
                       kudos::v1::RetractKudosResponse* out = nullptr) {
    kudos::v1::RetractKudosRequest request;
    request.set_kudos_id(kudos_id);
    request.set_request_id("x1");
    request.set_reason("abuse");
    kudos::v1::RetractKudosResponse response;
    absl::Status status = service_->DoRetractKudos(Admin(), request, response);
    if (out != nullptr) *out = response;
    return status;
  }

  int64_t StreamLength(const std::string& key) {
    absl::StatusOr<common::redis::Reply> length = pool_->Run({"XLEN", key});
    EXPECT_TRUE(length.ok()) << length.status();
    return length.ok() ? length->integer : -1;
  }

  harness::RedisServer redis_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::unique_ptr<KudosStore> kudos_;
  std::unique_ptr<SocialStore> social_;
  social_test::FakeLedger ledger_;
  common::auth::Guard guard_{common::auth::Authenticator(common::auth::JwtConfig{})};
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
  std::unique_ptr<SocialServiceImpl> service_;
};

TEST_F(SocialClockTest, Comments_ExpireWithTheKudosLiveWindowAndArchivedKudosTakeNone) {
  const absl::Time sent = now_;
  Committed("k1", sent);
  now_ = sent + absl::Hours(24);
  ASSERT_TRUE(Comment("k1", "c1").ok());
  const int64_t live_until_ms = absl::ToUnixMillis(sent + absl::Hours(24) * 400);  // the default
  for (const std::string& key :
       {SocialStore::CommentsKey(kOrg, "k1"), SocialStore::CommentOrderKey(kOrg, "k1")}) {
    absl::StatusOr<common::redis::Reply> expiry = pool_->Run({"PEXPIRETIME", key});
    ASSERT_TRUE(expiry.ok()) << expiry.status();
    EXPECT_EQ(expiry->integer, live_until_ms) << key;
  }
  now_ = sent + absl::Hours(24) * 400;
  absl::Status late = Comment("k1", "c2");
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_NE(late.message().find("kudos_live_days"), std::string::npos) << late;
}

TEST_F(SocialClockTest, RetractKudos_PastTransfersLiveDaysIsRefusedBeforeAnythingIsMarked) {
  const absl::Time sent = now_;
  Committed("k1", sent);
  now_ = sent + absl::Hours(24) * 400;
  absl::Status refused = Retract("k1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("transfers_live_days"), std::string::npos) << refused;
  absl::StatusOr<bool> marked = social_->IsRetracted(kOrg, "k1");
  ASSERT_TRUE(marked.ok());
  EXPECT_FALSE(*marked);
  EXPECT_EQ(ledger_.list_calls, 0);
  EXPECT_TRUE(ledger_.posts.empty());
}

TEST_F(SocialClockTest, RetractKudos_LedgerAnswerLostThenARetryFinishesAndAnnouncesOnce) {
  Committed("k1", now_);
  now_ += absl::Minutes(5);
  // The directory writes of SetUp are on both streams already.
  const int64_t events = StreamLength(KudosStore::EventStream(kOrg));
  const int64_t audit = StreamLength(common::audit::StreamKey(kOrg));
  ledger_.lose_next_answer = true;
  absl::Status lost = Retract("k1");
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable) << lost;
  EXPECT_EQ(StreamLength(KudosStore::EventStream(kOrg)), events);
  absl::StatusOr<bool> marked = social_->IsRetracted(kOrg, "k1");
  ASSERT_TRUE(marked.ok());
  EXPECT_TRUE(*marked);  // hidden already; the retry finishes the job

  kudos::v1::RetractKudosResponse done;
  ASSERT_TRUE(Retract("k1", &done).ok());
  ASSERT_EQ(done.reversal_transfer_ids_size(), 1);
  EXPECT_EQ(done.reversal_transfer_ids(0), "retract:k1:bob");
  ASSERT_EQ(ledger_.posts.size(), 2u);  // the same reversal id both times
  EXPECT_EQ(ledger_.posts[0].transfers(0).transfer_id(),
            ledger_.posts[1].transfers(0).transfer_id());
  EXPECT_EQ(StreamLength(KudosStore::EventStream(kOrg)), events + 1);
  EXPECT_EQ(StreamLength(common::audit::StreamKey(kOrg)), audit + 1);
  ASSERT_TRUE(Retract("k1").ok());  // and again: DONE, no ledger call
  EXPECT_EQ(ledger_.posts.size(), 2u);
  EXPECT_EQ(StreamLength(KudosStore::EventStream(kOrg)), events + 1);
}

}  // namespace
}  // namespace kudos
