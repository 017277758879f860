// FeedHub (services/kudos/feed_hub.h) against a real redis-server: one reader
// per org, pinned before the first watcher returns, bounded queues, caps, and
// one org's failure kept to that org.
#include "services/kudos/feed_hub.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "common/redis/redis_client.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/process.h"
#include "tests/harness/eventually.h"

namespace kudos {
namespace {

using namespace std::chrono_literals;

using harness::Eventually;

class FeedHubTest : public ::testing::Test {
 protected:
  FeedHubTest() : connection_({"127.0.0.1", redis_.port()}, 5s) {}

  FeedHubOptions Options() {
    FeedHubOptions options;
    options.redis = {"127.0.0.1", redis_.port()};
    options.block = 200ms;
    return options;
  }

  // Appends a committed kudos to the org's event stream, as the commit does.
  void Append(const std::string& org, const std::string& kudos_id) {
    kudos::v1::KudosEvent event;
    event.set_org_id(org);
    event.mutable_kudos_sent()->mutable_kudos()->set_kudos_id(kudos_id);
    auto reply = connection_.Run(
        {"XADD", KudosStore::EventStream(org), "*", "event", event.SerializeAsString()});
    ASSERT_TRUE(reply.ok()) << reply.status();
  }

  // Kudos ids the watcher gets until `count` arrived or a deadline passed.
  static absl::StatusOr<std::vector<std::string>> Receive(FeedHub::Watcher& watcher, size_t count) {
    std::vector<std::string> ids;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (ids.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto events = watcher.Next(100ms);
      if (!events.ok()) return events.status();
      for (const SharedEvent& event : *events) ids.push_back(event->kudos_sent().kudos().kudos_id());
    }
    return ids;
  }

  harness::RedisServer redis_;
  common::redis::Connection connection_;
};

TEST_F(FeedHubTest, Watch_DeliversEverythingAppendedAfterItReturnsAndNothingBefore) {
  Append("acme", "k-before");
  FeedHub hub(Options());
  auto watcher = hub.Watch("acme");
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  Append("acme", "k-after-1");  // right away: the position was pinned already
  Append("acme", "k-after-2");
  auto ids = Receive(**watcher, 2);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (std::vector<std::string>{"k-after-1", "k-after-2"}));
}

TEST_F(FeedHubTest, Watch_OrgsShareOneReaderAndItStopsWhenTheLastWatcherLeaves) {
  FeedHub hub(Options());
  auto first = hub.Watch("acme");
  auto second = hub.Watch("acme");
  auto other = hub.Watch("globex");
  ASSERT_TRUE(first.ok() && second.ok() && other.ok());
  EXPECT_EQ(hub.orgs(), 2);
  EXPECT_EQ(hub.watchers(), 3);
  Append("acme", "k1");
  for (auto* watcher : {&*first, &*second}) {
    auto ids = Receive(**watcher, 1);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(*ids, std::vector<std::string>{"k1"});
  }
  first->reset();
  second->reset();
  EXPECT_TRUE(Eventually([&] { return hub.orgs() == 1; }));
  EXPECT_EQ(hub.watchers(), 1);
}

TEST_F(FeedHubTest, Watch_RefusesWatchersAndOrgsPastTheCapsWithRetryInformation) {
  FeedHubOptions options = Options();
  options.max_watchers = 2;
  options.max_orgs = 1;
  FeedHub hub(options);
  auto first = hub.Watch("acme");
  ASSERT_TRUE(first.ok());
  auto other_org = hub.Watch("globex");
  EXPECT_EQ(other_org.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(other_org.status().message().find("retry after 1000 ms"), absl::string_view::npos)
      << other_org.status();
  auto second = hub.Watch("acme");
  ASSERT_TRUE(second.ok());
  auto third = hub.Watch("acme");
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(hub.watchers(), 2);
  EXPECT_EQ(hub.orgs(), 1);
}

TEST_F(FeedHubTest, Watcher_ThatFallsBehindIsEndedWithoutHoldingUpOthers) {
  FeedHubOptions options = Options();
  options.max_queued_per_watcher = 5;
  FeedHub hub(options);
  auto slow = hub.Watch("acme");
  auto fast = hub.Watch("acme");
  ASSERT_TRUE(slow.ok() && fast.ok());
  std::vector<std::string> fast_ids;
  for (int i = 0; i < 12; ++i) {
    Append("acme", "k" + std::to_string(i));
    // The fast watcher keeps up; the slow one never reads.
    auto ids = Receive(**fast, 1);
    ASSERT_TRUE(ids.ok()) << ids.status();
    fast_ids.insert(fast_ids.end(), ids->begin(), ids->end());
  }
  EXPECT_EQ(fast_ids.size(), 12u);
  auto behind = (*slow)->Next(10ms);
  EXPECT_EQ(behind.status().code(), absl::StatusCode::kAborted) << behind.status();
}

TEST_F(FeedHubTest, OneOrgsBrokenStreamEndsOnlyThatOrgsWatchers) {
  FeedHub hub(Options());
  auto good = hub.Watch("acme");
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(connection_.Run({"SET", KudosStore::EventStream("broken"), "x"}).ok());
  auto broken = hub.Watch("broken");
  EXPECT_FALSE(broken.ok());
  Append("acme", "k1");
  auto ids = Receive(**good, 1);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, std::vector<std::string>{"k1"});
}

TEST_F(FeedHubTest, Shutdown_EndsWatchersWithUnavailable) {
  FeedHub hub(Options());
  auto watcher = hub.Watch("acme");
  ASSERT_TRUE(watcher.ok());
  hub.Shutdown();
  EXPECT_EQ((*watcher)->Next(5s).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub.Watch("acme").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kudos
