// The per-slot org registry (common/redis/org_registry.h, issue 14): the tag
// table, registration inside an org's own script, discovery over a real
// standalone redis-server and over a real 3-primary cluster (orgs on three
// primaries, a slot moved under the registry, a stalled node), the legacy
// `platform:orgs` set, the refresh interval and the bound on orgs.
#include "common/redis/org_registry.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "services/kudos/kudos_store.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#include "tests/harness/redis_cluster.h"

namespace common::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A clock the test moves by hand.
struct FakeClock {
  std::atomic<int64_t> ms{0};
  std::function<steady_clock::time_point()> Now() {
    return [this] { return steady_clock::time_point(milliseconds(ms.load())); };
  }
};

PoolOptions OptionsFor(const std::string& address, milliseconds timeout = milliseconds(2000)) {
  absl::StatusOr<PoolOptions> options = PoolOptionsFor(address);
  EXPECT_TRUE(options.ok()) << options.status();
  options->timeout = timeout;
  options->acquire_timeout = timeout;
  return *options;
}

OrgRegistryOptions ManualClock(FakeClock& clock) {
  OrgRegistryOptions options;
  options.now = clock.Now();
  return options;
}

std::vector<std::string> Sorted(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  return values;
}

// A field of INFO's answer (e.g. "used_cpu_user" of INFO cpu) on one node.
double InfoNumber(Connection& connection, const std::string& section, const std::string& field) {
  absl::StatusOr<Reply> info = connection.Run({"INFO", section});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return 0;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ':');
    double value = 0;
    if (kv.first == field && absl::SimpleAtod(kv.second, &value)) return value;
  }
  return 0;
}

// How many SMEMBERS the node ran since its last CONFIG RESETSTAT.
int64_t SmembersCalls(Connection& connection) {
  absl::StatusOr<Reply> info = connection.Run({"INFO", "commandstats"});
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    int64_t calls = 0;
    if (absl::ConsumePrefix(&line, "cmdstat_smembers:calls=") &&
        absl::SimpleAtoi(line.substr(0, line.find(',')), &calls)) {
      return calls;
    }
  }
  return 0;
}

// This thread's CPU time so far.
double ThreadCpuMs() {
  struct rusage usage {};
  getrusage(RUSAGE_THREAD, &usage);
  auto ms = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double RedisCpuMs(Connection& connection) {
  return 1000 * (InfoNumber(connection, "cpu", "used_cpu_user") +
                 InfoNumber(connection, "cpu", "used_cpu_sys"));
}

// ---------------------------------------------------------------------------
// Keys and tags.

TEST(OrgRegistryKeys, EverySlotHasATagOfAtMostThreeCharactersThatHashesBackToIt) {
  std::set<std::string> distinct;
  for (int slot = 0; slot < kClusterSlots; ++slot) {
    const std::string& tag = SlotTag(slot);
    ASSERT_FALSE(tag.empty()) << slot;
    ASSERT_LE(tag.size(), 3u) << slot;
    ASSERT_EQ(tag.find_first_of("{}"), std::string::npos) << slot;
    ASSERT_EQ(KeySlot(absl::StrCat("{", tag, "}")), slot) << tag;
    ASSERT_EQ(KeySlot(SlotRegistryKey(slot)), slot) << SlotRegistryKey(slot);
    distinct.insert(tag);
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kClusterSlots));
  // Redis Cluster's well-known tag of slot 0.
  EXPECT_EQ(SlotTag(0), "06S");
  EXPECT_EQ(SlotRegistryKey(0), "platform:orgs:{06S}");
}

TEST(OrgRegistryKeys, TheRegistryKeyOfAnOrgLiesInTheSlotOfEveryKeyOfTheOrg) {
  for (const std::string org : {"acme", "demo", "zeta", "a}b", "x{y", "o-1_2.3"}) {
    const int slot = KeySlot(absl::StrCat("kudos:{", org, "}:settings"));
    EXPECT_EQ(OrgSlot(org), slot) << org;
    EXPECT_EQ(KeySlot(OrgRegistryKey(org)), slot) << org;
    EXPECT_EQ(KeySlot(absl::StrCat("ledger:{", org, "}:outbox")), slot) << org;
    EXPECT_EQ(KeySlot(absl::StrCat("audit:{", org, "}")), slot) << org;
    const Command add = RegisterOrgCommand(org);
    EXPECT_EQ(add, (Command{"SADD", OrgRegistryKey(org), org}));
    absl::StatusOr<std::optional<int>> one_slot =
        SlotOf({{"SET", absl::StrCat("kudos:{", org, "}:settings"), "x"}, add});
    ASSERT_TRUE(one_slot.ok()) << one_slot.status();
    EXPECT_EQ(**one_slot, slot);
  }
}

// ---------------------------------------------------------------------------
// Standalone.

class OrgRegistryStandaloneTest : public ::testing::Test {
 protected:
  OrgRegistryStandaloneTest() : pool_(OptionsFor(redis_.address())) {}

  // As the writers do: the registration and, beside it, the slot's hint.
  void Register(const std::string& org) {
    absl::StatusOr<Reply> added = pool_.Run(RegisterOrgCommand(org));
    ASSERT_TRUE(added.ok()) << added.status();
    absl::StatusOr<Reply> hinted = pool_.Run(IndexOrgSlotCommand(org));
    ASSERT_TRUE(hinted.ok()) << hinted.status();
  }

  harness::RedisServer redis_;
  Pool pool_;
  FakeClock clock_;
};

TEST_F(OrgRegistryStandaloneTest, FindsOrgsRegisteredInManySlotsAndTheLegacySet) {
  std::vector<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    expected.push_back(absl::StrCat("org", i));
    Register(expected.back());
  }
  // Registered before issue 14: only in the global set; "org7" in both.
  ASSERT_TRUE(pool_.Run({"SADD", kLegacyOrgsKey, "legacy-a", "legacy-b", "org7"}).ok());
  expected.push_back("legacy-a");
  expected.push_back("legacy-b");

  OrgRegistry registry(pool_, ManualClock(clock_));
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  EXPECT_EQ(*orgs, Sorted(expected));
  std::set<int> slots;
  for (int i = 0; i < 300; ++i) slots.insert(OrgSlot(absl::StrCat("org", i)));
  EXPECT_GT(slots.size(), 250u) << "the orgs spread over many slots";
}

TEST_F(OrgRegistryStandaloneTest, OneDiscoveryReadsEverySlotOnceInBoundedPipelines) {
  Register("acme");
  OrgRegistryOptions options = ManualClock(clock_);
  options.slots_per_pipeline = 1000;
  OrgRegistry registry(pool_, options);
  Connection admin(*ParseEndpoint(redis_.address()), milliseconds(2000));
  ASSERT_TRUE(admin.Run({"CONFIG", "RESETSTAT"}).ok());
  const double cpu_before_ms = RedisCpuMs(admin);
  const double client_before_ms = ThreadCpuMs();
  const auto started = steady_clock::now();
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  const auto wall_ms =
      std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - started).count() /
      1000.0;
  const double client_ms = ThreadCpuMs() - client_before_ms;
  const double cpu_ms = RedisCpuMs(admin) - cpu_before_ms;
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  EXPECT_EQ(*orgs, std::vector<std::string>{"acme"});
  EXPECT_EQ(SmembersCalls(admin), kClusterSlots + 1);  // + the hint
  OrgRegistry::Stats stats = registry.stats();
  EXPECT_EQ(stats.slots_read, static_cast<uint64_t>(kClusterSlots));
  EXPECT_EQ(stats.commands, static_cast<uint64_t>(kClusterSlots) + 2);  // + hint, legacy SSCAN
  EXPECT_EQ(stats.discoveries, 1u);
  EXPECT_EQ(stats.failed_slots, 0u);
  // Printed for the report (the machine is shared: not asserted).
  std::printf(
      "org registry discovery, standalone, %d empty slots: redis cpu %.2f ms, client cpu %.2f ms, "
      "wall %.2f ms\n",
      kClusterSlots, cpu_ms, client_ms, wall_ms);

  // The next ones read the slots known to hold orgs, the hinted ones and a
  // window of the others.
  ASSERT_TRUE(admin.Run({"CONFIG", "RESETSTAT"}).ok());
  const double next_cpu_before_ms = RedisCpuMs(admin);
  clock_.ms += 1000;
  ASSERT_TRUE(registry.Orgs().ok());
  const double next_cpu_ms = RedisCpuMs(admin) - next_cpu_before_ms;
  EXPECT_LE(SmembersCalls(admin), 1 + 1 + options.scan_window_slots);
  EXPECT_GE(SmembersCalls(admin), 1 + options.scan_window_slots);
  std::printf("org registry discovery after the first (window %d slots): redis cpu %.2f ms\n",
              options.scan_window_slots, next_cpu_ms);
}

TEST_F(OrgRegistryStandaloneTest, AHintedOrgIsFoundByTheNextDiscoveryWithoutReadingEverySlot) {
  Register("acme");
  OrgRegistryOptions options = ManualClock(clock_);
  options.scan_window_slots = 16;
  OrgRegistry registry(pool_, options);
  ASSERT_EQ(*registry.Orgs(), std::vector<std::string>{"acme"});
  const uint64_t first_read = registry.stats().slots_read;
  Register("zeta");
  clock_.ms += 1000;
  EXPECT_EQ(*registry.Orgs(), (std::vector<std::string>{"acme", "zeta"}));
  EXPECT_LE(registry.stats().slots_read - first_read, 2u + 16u);
}

TEST_F(OrgRegistryStandaloneTest, AnOrgWhoseHintWasLostIsFoundWithinOneFullPassAndHinted) {
  OrgRegistryOptions options = ManualClock(clock_);
  options.scan_window_slots = 2048;  // a full pass every 8 discoveries
  OrgRegistry registry(pool_, options);
  ASSERT_TRUE(registry.Orgs()->empty());
  ASSERT_TRUE(pool_.Run(RegisterOrgCommand("unhinted")).ok());  // the writer died before its hint
  int discoveries = 0;
  bool found = false;
  while (!found && discoveries < kClusterSlots / options.scan_window_slots) {
    clock_.ms += 1000;
    ++discoveries;
    found = *registry.Orgs() == std::vector<std::string>{"unhinted"};
  }
  EXPECT_TRUE(found) << "within " << discoveries << " discoveries";
  // Healed: the slot is hinted for every process now.
  absl::StatusOr<Reply> hinted =
      pool_.Run({"SISMEMBER", kOrgSlotsKey, absl::StrCat(OrgSlot("unhinted"))});
  ASSERT_TRUE(hinted.ok());
  EXPECT_EQ(hinted->integer, 1);
}

TEST_F(OrgRegistryStandaloneTest, EveryCallerWithinTheRefreshIntervalSharesOneDiscovery) {
  Register("acme");
  OrgRegistryOptions options = ManualClock(clock_);
  options.refresh = milliseconds(1000);
  OrgRegistry registry(pool_, options);
  std::vector<std::thread> loops;
  std::atomic<int> answered{0};
  for (int i = 0; i < 8; ++i) {
    loops.emplace_back([&] {
      absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
      if (orgs.ok() && *orgs == std::vector<std::string>{"acme"}) ++answered;
    });
  }
  for (std::thread& loop : loops) loop.join();
  EXPECT_EQ(answered.load(), 8);
  EXPECT_EQ(registry.stats().discoveries, 1u);
  EXPECT_EQ(registry.stats().cached_answers, 7u);

  Register("zeta");
  clock_.ms = 999;
  EXPECT_EQ(*registry.Orgs(), std::vector<std::string>{"acme"});
  clock_.ms = 1000;
  EXPECT_EQ(*registry.Orgs(), (std::vector<std::string>{"acme", "zeta"}));
  EXPECT_EQ(registry.stats().discoveries, 2u);
}

TEST_F(OrgRegistryStandaloneTest, AnswersAtMostMaxOrgsAndSaysSo) {
  std::vector<std::string> all;
  for (int i = 0; i < 25; ++i) {
    all.push_back(absl::StrCat("org", i));
    Register(all.back());
  }
  OrgRegistryOptions options = ManualClock(clock_);
  options.max_orgs = 10;
  OrgRegistry registry(pool_, options);
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  all = Sorted(all);
  EXPECT_EQ(*orgs, std::vector<std::string>(all.begin(), all.begin() + 10));
  EXPECT_TRUE(registry.stats().truncated);

  options.max_orgs = 25;
  OrgRegistry roomy(pool_, options);
  EXPECT_EQ(*roomy.Orgs(), all);
  EXPECT_FALSE(roomy.stats().truncated);
}

TEST_F(OrgRegistryStandaloneTest, RedisAwayAfterOneDiscoveryKeepsTheOrgsLastRead) {
  Register("acme");
  OrgRegistryOptions options = ManualClock(clock_);
  OrgRegistry registry(pool_, options);
  ASSERT_EQ(*registry.Orgs(), std::vector<std::string>{"acme"});
  // A pool on a port nobody listens on: nothing was ever read there.
  Pool nowhere(OptionsFor(absl::StrCat("127.0.0.1:", harness::FreePort()), milliseconds(300)));
  OrgRegistry lost(nowhere, options);
  absl::StatusOr<std::vector<std::string>> none = lost.Orgs();
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnavailable) << none.status();
  // The failure is reused within the interval too (no retry storm).
  EXPECT_EQ(lost.Orgs().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(lost.stats().discoveries, 1u);
}

// ---------------------------------------------------------------------------
// A real 3-primary cluster, one for the suite (it takes seconds to form).

class OrgRegistryClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new harness::RedisCluster();
    // One org per primary: the slot of {org} decides.
    for (int i = 0; orgs_.size() < 3 && i < 1000; ++i) {
      std::string org = absl::StrCat("corp", i);
      int primary = cluster_->PrimaryOfSlot(OrgSlot(org));
      if (!orgs_.count(primary)) orgs_[primary] = org;
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void TearDown() override {
    // Leave the cluster whole for the next test (a paused node resumed).
    for (int node = 0; node < cluster_->size(); ++node) {
      if (cluster_->running(node)) cluster_->Resume(node);
    }
    ASSERT_TRUE(cluster_->WaitUntilStable());
    for (int node = 0; node < cluster_->size(); ++node) {
      ASSERT_TRUE(cluster_->Command(node, {"FLUSHALL"}).ok());
    }
  }

  // Through one seed only: the pool finds the other primaries itself.
  static PoolOptions OneSeed(milliseconds timeout = milliseconds(2000)) {
    return OptionsFor(cluster_->address(0), timeout);
  }
  std::vector<std::string> AllOrgs() const {
    std::vector<std::string> all;
    for (const auto& [primary, org] : orgs_) all.push_back(org);
    return Sorted(all);
  }

  static harness::RedisCluster* cluster_;
  static std::map<int, std::string> orgs_;  // primary -> an org whose slot it serves
  FakeClock clock_;
};
harness::RedisCluster* OrgRegistryClusterTest::cluster_ = nullptr;
std::map<int, std::string> OrgRegistryClusterTest::orgs_;

TEST_F(OrgRegistryClusterTest, AnOrgsScriptRegistersItInItsOwnSlotAndTheGlobalSetIsRefused) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed());
  Script per_slot("per_slot",
                  "redis.call('SET', KEYS[1], ARGV[1]) "
                  "return redis.call('SADD', KEYS[2], ARGV[1])");
  // How the scripts registered orgs before: an undeclared key of another slot.
  Script global("global",
                "redis.call('SET', KEYS[1], ARGV[1]) "
                "return redis.call('SADD', 'platform:orgs', ARGV[1])");
  for (const auto& [primary, org] : orgs_) {
    const std::string settings = absl::StrCat("kudos:{", org, "}:settings");
    absl::StatusOr<Reply> added = pool.Eval(per_slot, {settings, OrgRegistryKey(org)}, {org});
    ASSERT_TRUE(added.ok()) << org << ": " << added.status();
    EXPECT_EQ(added->integer, 1);
    absl::StatusOr<Reply> members = cluster_->Command(primary, {"SMEMBERS", OrgRegistryKey(org)});
    ASSERT_TRUE(members.ok()) << members.status();
    ASSERT_EQ(members->elements.size(), 1u);
    EXPECT_EQ(members->elements[0].str, org);
    // Refused everywhere: by the script key guard (an undeclared key), even
    // on the one node that also serves the global set's slot, where Redis
    // alone ("non local key") would have let it through.
    absl::StatusOr<Reply> old_way = pool.Eval(global, {settings}, {org});
    EXPECT_FALSE(old_way.ok()) << org;
    EXPECT_TRUE(absl::StrContains(old_way.status().message(), "UNDECLARED_KEY")) << old_way.status();
  }
}

TEST_F(OrgRegistryClusterTest, TheKudosScriptsRegisterOrgsOnThreePrimariesAndTheStoreFindsThem) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed());
  kudos::KudosStore store(pool);
  for (const auto& [primary, org] : orgs_) {
    kudos::v1::OrgSettings settings;
    settings.set_time_zone("UTC");
    absl::Status put = store.PutSettings(org, settings, "event", "admin");
    ASSERT_TRUE(put.ok()) << org << ": " << put;
    kudos::v1::Team team;
    team.set_team_id("t1");
    absl::Status team_put = store.PutTeam(org, team, "event", "admin");
    ASSERT_TRUE(team_put.ok()) << org << ": " << team_put;
  }
  absl::StatusOr<std::vector<std::string>> orgs = store.Orgs();
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  EXPECT_EQ(*orgs, AllOrgs());
}

TEST_F(OrgRegistryClusterTest, DiscoversOrgsOnEveryPrimaryReadingEachSlotOnItsOwnNode) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed());
  for (const auto& [primary, org] : orgs_) ASSERT_TRUE(pool.Run(RegisterOrgCommand(org)).ok());
  ASSERT_TRUE(pool.Run({"SADD", kLegacyOrgsKey, "legacy"}).ok());
  std::vector<std::unique_ptr<Connection>> nodes;
  std::vector<double> cpu_before_ms;
  for (int node = 0; node < cluster_->size(); ++node) {
    nodes.push_back(std::make_unique<Connection>(*ParseEndpoint(cluster_->address(node)),
                                                 milliseconds(2000)));
    ASSERT_TRUE(nodes.back()->Run({"CONFIG", "RESETSTAT"}).ok());
    cpu_before_ms.push_back(RedisCpuMs(*nodes.back()));
  }
  OrgRegistry registry(pool, ManualClock(clock_));
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  std::vector<std::string> expected = AllOrgs();
  expected.push_back("legacy");
  EXPECT_EQ(*orgs, Sorted(expected));
  EXPECT_EQ(registry.stats().failed_slots, 0u);
  EXPECT_EQ(registry.stats().rerouted_slots, 0u) << "every slot read on the node that serves it";
  // Each primary answered exactly the reads of the slots it serves.
  double total_calls = 0;
  for (int node = 0; node < cluster_->size(); ++node) {
    const int64_t calls = SmembersCalls(*nodes[node]);
    int served = 0;
    for (int slot = 0; slot < kClusterSlots; ++slot) served += pool.NodeForSlot(slot) == cluster_->address(node);
    // + the hint's read on the node of its slot.
    served += pool.NodeForSlot(KeySlot(kOrgSlotsKey)) == cluster_->address(node);
    EXPECT_EQ(calls, served) << cluster_->address(node);
    total_calls += static_cast<double>(calls);
    std::printf("org registry discovery, cluster node %s: %lld slots read, redis cpu %.2f ms\n",
                cluster_->address(node).c_str(), static_cast<long long>(calls),
                RedisCpuMs(*nodes[node]) - cpu_before_ms[node]);
  }
  EXPECT_EQ(total_calls, kClusterSlots + 1);
}

TEST_F(OrgRegistryClusterTest, ASlotMovedSinceTheSlotMapWasReadIsReadOnItsNewNode) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed());
  OrgRegistry registry(pool, ManualClock(clock_));
  for (const auto& [primary, org] : orgs_) ASSERT_TRUE(pool.Run(RegisterOrgCommand(org)).ok());
  ASSERT_EQ(*registry.Orgs(), AllOrgs());  // the pool's slot map is read now
  const auto& [from, moved] = *orgs_.begin();
  const int to = (from + 1) % 3;
  cluster_->MigrateSlot(OrgSlot(moved), to);
  ASSERT_TRUE(cluster_->WaitUntilStable());
  // Written on the new node, which the registry's slot map does not know yet.
  ASSERT_TRUE(cluster_->Command(to, {"SADD", OrgRegistryKey(moved), "moved-too"}).ok());
  clock_.ms += 1000;
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  // Put the slot back for the next test.
  cluster_->MigrateSlot(OrgSlot(moved), from);
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  EXPECT_EQ(*orgs, Sorted([&] {
              std::vector<std::string> all = AllOrgs();
              all.push_back("moved-too");
              return all;
            }()));
  EXPECT_EQ(registry.stats().failed_slots, 0u);
}

TEST_F(OrgRegistryClusterTest, AStalledNodeKeepsItsOrgsAsLastReadAndTheOthersAreStillFound) {
  ASSERT_EQ(orgs_.size(), 3u);
  Pool pool(OneSeed(milliseconds(300)));
  OrgRegistry registry(pool, ManualClock(clock_));
  for (const auto& [primary, org] : orgs_) ASSERT_TRUE(pool.Run(RegisterOrgCommand(org)).ok());
  ASSERT_EQ(*registry.Orgs(), AllOrgs());
  // A primary that holds neither the hint nor the legacy set.
  int stalled = -1;
  for (const auto& [primary, org] : orgs_) {
    if (primary != cluster_->PrimaryOfSlot(KeySlot(kOrgSlotsKey)) &&
        primary != cluster_->PrimaryOfSlot(KeySlot(kLegacyOrgsKey))) {
      stalled = primary;
    }
  }
  ASSERT_GE(stalled, 0) << "two keys cannot occupy three primaries";
  const std::string stalled_org = orgs_[stalled];
  // A new org on a node that still answers.
  std::string fresh;
  for (int i = 0; fresh.empty() && i < 1000; ++i) {
    std::string candidate = absl::StrCat("new", i);
    if (cluster_->PrimaryOfSlot(OrgSlot(candidate)) != stalled) fresh = candidate;
  }
  ASSERT_TRUE(pool.Run(RegisterOrgCommand(fresh)).ok());
  ASSERT_TRUE(pool.Run(IndexOrgSlotCommand(fresh)).ok());
  cluster_->Pause(stalled);
  clock_.ms += 1000;
  absl::StatusOr<std::vector<std::string>> orgs = registry.Orgs();
  cluster_->Resume(stalled);
  ASSERT_TRUE(orgs.ok()) << orgs.status();
  std::vector<std::string> expected = AllOrgs();
  expected.push_back(fresh);
  EXPECT_EQ(*orgs, Sorted(expected)) << stalled_org << " kept as last read";
  EXPECT_GE(registry.stats().failed_slots, 1u);
}

}  // namespace
}  // namespace common::redis
