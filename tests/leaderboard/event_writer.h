// Test helper: writes events exactly as the producers do. kudos XADDs
// kudos.v1.KudosEvent to kudos:{org}:events, the ledger XADDs
// ledger.v1.LedgerEvent to ledger:{org}:outbox (field "event"), and both
// register the org in its slot's registry and hint the slot
// (common/redis/org_registry.h).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "kudos/v1/kudos.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace lbtest {

class EventWriter {
 public:
  EventWriter(const std::string& redis_address, std::string org);

  common::redis::Pool& pool() { return *pool_; }
  const std::string& org() const { return org_; }

  // XADD; returns the entry id.
  std::string Kudos(const kudos::v1::KudosEvent& event);
  std::string Ledger(const ledger::v1::LedgerEvent& event);
  // Resets the consumer group of both streams so every entry is delivered again.
  void ReplayAll(const std::string& group = "leaderboard");

 private:
  std::string Add(const std::string& stream, const std::string& payload);
  std::unique_ptr<common::redis::Pool> pool_;
  std::string org_;
};

kudos::v1::KudosEvent PersonEvent(const std::string& id, const std::string& name,
                                  const std::string& team, const std::string& manager = "",
                                  const std::string& time_zone = "", bool active = true);
kudos::v1::KudosEvent TeamEvent(const std::string& id, const std::string& name);
kudos::v1::KudosEvent SettingsEvent(const kudos::v1::OrgSettings& settings);

struct Recipient {
  std::string id;
  std::string team;
};

kudos::v1::KudosEvent SentEvent(const std::string& org, const std::string& kudos_id,
                                const std::string& giver, const std::string& giver_team,
                                const std::vector<Recipient>& recipients,
                                const std::vector<std::string>& values, int64_t points,
                                absl::Time time);
kudos::v1::KudosEvent BoostedEvent(const std::string& org, const std::string& kudos_id,
                                   const std::string& booster,
                                   const std::vector<Recipient>& recipients,
                                   const std::vector<std::string>& values, int64_t points,
                                   absl::Time time);
// One transfer per recipient, as kudos posts them (kind KUDOS or BOOST).
ledger::v1::LedgerEvent TransfersEvent(const std::string& org, const std::string& reference,
                                       const std::string& transfer_prefix,
                                       ledger::v1::TransferKind kind, const std::string& giver,
                                       const std::vector<Recipient>& recipients,
                                       const std::vector<std::string>& values, int64_t points,
                                       absl::Time time);

// The keys matching a SCAN pattern (at most 10,000 pages of 1,000); a
// failed SCAN is a test failure, and what was read so far is returned.
std::vector<std::string> ScanKeys(common::redis::Pool& pool, const std::string& pattern);

// Every lb:{org}:* key of a Redis with its type, content (sorted where Redis
// does not order it) and expiry, as text: equal dumps, equal projections.
std::map<std::string, std::string> DumpProjections(common::redis::Pool& pool,
                                                   const std::string& org);

}  // namespace lbtest
