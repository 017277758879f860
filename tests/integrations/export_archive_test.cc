// Area "export" (issue 17): kudos moved to the archive (issue 15) come
// through the export like live ones. The kudos archiver runs in the test
// with an injected `now` (kudos::Archiver::RunOnce) against the same Redis
// the real kudos binary serves.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/redis/redis_client.h"
#include "integrations/v1/export.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/kudos/kudos_archive.h"
#include "services/kudos/kudos_rules.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/process.h"
#include "tests/harness/tokens.h"

namespace {

using harness::Context;
using harness::MintToken;

constexpr char kOrg[] = "acme";

google::protobuf::Timestamp At(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}

TEST(ExportArchiveTest, ExportKudos_ArchivedMonthsComeThroughLikeLiveKudos) {
  harness::RedisServer redis;
  harness::Service ledger(LEDGER_BINARY, redis.address());
  harness::Service kudos(KUDOS_BINARY, redis.address(),
                         {"--ledger=" + ledger.address(), "--archive_interval_s=0"});
  harness::Service integrations(INTEGRATIONS_BINARY, redis.address(),
                                {"--kudos=" + kudos.address(), "--ledger=" + ledger.address()});
  auto channel = grpc::CreateChannel(kudos.address(), grpc::InsecureChannelCredentials());
  auto kudos_stub = kudos::v1::KudosService::NewStub(channel);
  auto directory = kudos::v1::DirectoryService::NewStub(channel);
  auto exporter = integrations::v1::ExportService::NewStub(
      grpc::CreateChannel(integrations.address(), grpc::InsecureChannelCredentials()));
  const std::string admin = MintToken(kOrg, "root", {"admin"});
  for (const char* id : {"alice", "bob", "carol"}) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name(id);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory->CreatePerson(Context(admin).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  std::set<std::string> sent;
  const std::vector<std::string> people = {"alice", "bob", "carol"};
  for (int i = 0; i < 6; ++i) {
    kudos::v1::SendKudosRequest request;
    request.set_request_id(absl::StrCat("a", i));
    request.add_recipient_ids(people[(i + 1) % 3]);
    request.set_message("Thanks for delivering on time");
    request.add_values("teamwork");
    request.set_points_per_recipient(1);
    kudos::v1::SendKudosResponse response;
    grpc::Status status =
        kudos_stub->SendKudos(Context(MintToken(kOrg, people[i % 3])).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    sent.insert(response.kudos().kudos_id());
  }
  const absl::Time sent_at = absl::Now();

  // Archive them: `now` past the default live window.
  common::redis::PoolOptions options;
  options.endpoint.port = redis.port();
  options.size = 2;
  common::redis::Pool pool(options);
  kudos::KudosStore store(pool);
  kudos::ArchiverOptions archive_options;
  archive_options.chunk_kudos = 4;  // more than one chunk
  kudos::Archiver archiver(pool, store, archive_options);
  int64_t archived = 0;
  for (int run = 0; run < 20; ++run) {
    absl::StatusOr<kudos::ArchiveStats> stats =
        archiver.RunOnce(kOrg, sent_at + absl::Hours(24 * (kudos::kDefaultKudosLiveDays + 2)));
    ASSERT_TRUE(stats.ok()) << stats.status();
    archived += stats->kudos_archived;
    if (!stats->more) break;
  }
  ASSERT_EQ(archived, static_cast<int64_t>(sent.size()));

  integrations::v1::ExportRequest request;
  request.set_kind(integrations::v1::EXPORT_KIND_KUDOS);
  *request.mutable_from() = At(sent_at - absl::Hours(1));
  *request.mutable_to() = At(sent_at + absl::Hours(1));
  request.set_page_size(4);
  std::multiset<std::string> exported;
  for (int page = 0; page < 20; ++page) {
    integrations::v1::ExportResponse response;
    grpc::Status status = exporter->Export(Context(admin).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> lines = absl::StrSplit(response.ndjson(), '\n', absl::SkipEmpty());
    for (const std::string& line : lines) {
      kudos::v1::Kudos kudos;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &kudos).ok()) << line;
      kudos::v1::GetKudosRequest get;
      get.set_kudos_id(kudos.kudos_id());
      kudos::v1::GetKudosResponse got;
      ASSERT_TRUE(kudos_stub->GetKudos(Context(admin).get(), get, &got).ok());
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(kudos, got.kudos())) << line;
      exported.insert(kudos.kudos_id());
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  EXPECT_EQ(exported.size(), sent.size());
  EXPECT_EQ(std::set<std::string>(exported.begin(), exported.end()), sent);
}

}  // namespace
