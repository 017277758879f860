// Writes the generated part of the seed corpus (tokens, page tokens and
// serialized protobuf events/requests, which are awkward to write by hand):
//   make_seeds <repo>/tests/fuzz/corpus
// Deterministic; re-run after a format change and commit the result.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "kudos/v1/kudos.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "services/kudos/kudos_rules.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/ledger/ledger_rules.h"
#include "tests/fuzz/fuzz_keys.h"

namespace {

std::filesystem::path root;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(root / target);
  std::ofstream out(root / target / ("seed-" + name), std::ios::binary);
  out << bytes;
}

std::string Record(bool is_ledger, const std::string& bytes) {
  std::string out(1, is_ledger ? '\1' : '\0');
  out.push_back(static_cast<char>(bytes.size() >> 8));
  out.push_back(static_cast<char>(bytes.size() & 0xff));
  return out + bytes;
}

void SetTime(google::protobuf::Timestamp* ts, long seconds) { ts->set_seconds(seconds); }

void Tokens(absl::Time now) {
  common::auth::TokenRequest member{"alice", "acme", {"member"}};
  Write("token", "member", std::string(1, '\0') + *common::auth::MintHs256(member, fuzz::kPersonKey, now));
  common::auth::TokenRequest admin{"root", "acme", {"admin", "manager"}};
  Write("token", "admin", std::string(1, '\0') +
                              *common::auth::MintHs256(admin, fuzz::kPersonKey, now));
  Write("token", "service",
        std::string(1, '\0') +
            *common::auth::MintServiceToken("kudos", "acme", fuzz::kServiceSecret, now));
  common::auth::TokenRequest expired{"alice", "acme", {"member"}};
  expired.ttl = absl::Seconds(1);
  Write("token", "expired", std::string(1, '\0') +
                                *common::auth::MintHs256(expired, fuzz::kPersonKey,
                                                         now - absl::Hours(1)));
}

void PageTokens() {
  leaderboard::PageToken board{'f', 42, "bob", "2026-W46",
                               "lb:{acme}:points_received:week:2026-W46:org"};
  Write("page_token", "leaderboard", std::string(1, '\0') + leaderboard::EncodePageToken(board));
  board.direction = 'B';
  board.score = -7;
  Write("page_token", "leaderboard-before",
        std::string(1, '\0') + leaderboard::EncodePageToken(board));
  Write("page_token", "kudos", "\1" + kudos::EncodePageToken("1234"));
  Write("page_token", "ledger", "\2" + ledger::EncodePageToken(17, "earned:alice"));
}

void StreamEvents() {
  kudos::v1::KudosEvent sent;
  sent.set_org_id("acme");
  SetTime(sent.mutable_event_time(), fuzz::kNowUnixSeconds);
  kudos::v1::Kudos* kudos = sent.mutable_kudos_sent()->mutable_kudos();
  kudos->set_kudos_id("k1");
  kudos->set_giver_id("alice");
  kudos->add_recipient_ids("bob");
  kudos->add_recipient_ids("carol");
  kudos->set_message("Thanks!");
  kudos->add_values("teamwork");
  kudos->set_points_per_recipient(5);
  SetTime(kudos->mutable_create_time(), fuzz::kNowUnixSeconds);
  (*sent.mutable_kudos_sent()->mutable_recipient_team_ids())["bob"] = "blue";
  sent.mutable_kudos_sent()->set_giver_team_id("red");

  kudos::v1::KudosEvent person;
  person.set_org_id("acme");
  kudos::v1::Person* p = person.mutable_person_changed()->mutable_person();
  p->set_person_id("bob");
  p->set_team_id("blue");
  p->set_time_zone("Europe/Paris");
  p->set_active(true);

  kudos::v1::KudosEvent settings;
  settings.set_org_id("acme");
  *settings.mutable_org_settings_changed()->mutable_settings() = *kudos::NormalizeOrgSettings({});
  settings.mutable_org_settings_changed()->mutable_settings()->set_time_zone("America/New_York");

  kudos::v1::KudosEvent boosted;
  boosted.set_org_id("acme");
  SetTime(boosted.mutable_event_time(), fuzz::kNowUnixSeconds + 60);
  boosted.mutable_kudos_boosted()->set_kudos_id("k1");
  boosted.mutable_kudos_boosted()->add_recipient_ids("bob");
  boosted.mutable_kudos_boosted()->add_values("teamwork");

  ledger::v1::LedgerEvent posted;
  posted.mutable_transfers_posted()->set_org_id("acme");
  SetTime(posted.mutable_transfers_posted()->mutable_post_time(), fuzz::kNowUnixSeconds);
  ledger::v1::Transfer* t = posted.mutable_transfers_posted()->add_transfers();
  t->set_transfer_id("k1:bob");
  *t->mutable_debit_account() = ledger::PersonAccount(ledger::v1::ACCOUNT_TYPE_ALLOWANCE, "alice");
  *t->mutable_credit_account() = ledger::PersonAccount(ledger::v1::ACCOUNT_TYPE_EARNED, "bob");
  t->set_amount(5);
  t->set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
  t->set_reference("k1");
  (*t->mutable_tags())["values"] = "teamwork,empathy";
  (*t->mutable_tags())["team"] = "blue";
  (*t->mutable_tags())["giver"] = "alice";

  Write("stream_event", "kudos-sent", Record(false, sent.SerializeAsString()));
  Write("stream_event", "transfers-posted", Record(true, posted.SerializeAsString()));
  Write("stream_event", "directory-then-kudos",
        Record(false, settings.SerializeAsString()) + Record(false, person.SerializeAsString()) +
            Record(false, sent.SerializeAsString()) + Record(true, posted.SerializeAsString()) +
            Record(false, boosted.SerializeAsString()));
  Write("stream_event", "same-entry-twice",
        Record(false, sent.SerializeAsString()) + Record(false, sent.SerializeAsString()));

  // ledger_args: org line, 8 bytes of sequence, a transfer.
  std::string sequence("\0\0\0\0\0\0\0\x2a", 8);
  Write("ledger_args", "kudos-transfer", "acme\n" + sequence + t->SerializeAsString());
  ledger::v1::Transfer boost = *t;
  boost.set_kind(ledger::v1::TRANSFER_KIND_BOOST);
  boost.set_amount(ledger::kMaxAmount);
  boost.clear_tags();
  Write("ledger_args", "boost-max-amount", "org.with-dots_1\n" + sequence + boost.SerializeAsString());
}

void KudosRequests() {
  kudos::v1::SendKudosRequest request;
  request.set_request_id("r-1");
  request.add_recipient_ids("bob");
  request.add_recipient_ids("carol");
  request.set_message("Thank you for the on-time delivery ✓");
  request.add_values("teamwork");
  request.add_values("empathy");
  request.set_points_per_recipient(5);
  Write("kudos_args", "send", std::string(1, '\0') + request.SerializeAsString());
  request.add_recipient_ids("dave");
  Write("kudos_args", "send-inactive", std::string(1, '\0') + request.SerializeAsString());
  kudos::v1::OrgSettings settings = *kudos::NormalizeOrgSettings({});
  settings.set_time_zone("Asia/Kolkata");
  settings.set_allow_zero_points(true);
  settings.set_min_points(0);
  common::v1::Date* holiday = settings.add_holidays();
  holiday->set_year(2026);
  holiday->set_month(12);
  holiday->set_day(25);
  Write("kudos_args", "settings", "\1" + settings.SerializeAsString());
  Write("kudos_args", "settings-empty", "\1");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <tests/fuzz/corpus>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  Tokens(absl::FromUnixSeconds(fuzz::kNowUnixSeconds));
  PageTokens();
  StreamEvents();
  KudosRequests();
  return 0;
}
