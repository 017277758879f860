// kudosctl: a command-line client of the platform.
//   kudosctl token --org=demo --as=alice --roles=member,admin
//   kudosctl seed --org=demo
//   kudosctl send --as=alice --to=bob,carol --points=5 --values=teamwork --message="Thanks!"
//   kudosctl leaderboard [--metric=points_received] [--window=week] [--scope=org] [--scope_id=]
//   kudosctl feed | balance --person=bob | streaks --person=bob | badges --person=bob
// Tokens are minted with JWT_KEY, or with the public development secret when
// KUDOS_DEV_INSECURE_DEFAULTS=1 (as scripts/start.sh sets), or given with --token.
#include <grpcpp/grpcpp.h>

#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/config/env.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"

using common::config::EnvOr;

ABSL_FLAG(std::string, kudos, EnvOr("KUDOS_ADDR", "127.0.0.1:50052"), "kudos service");
ABSL_FLAG(std::string, ledger, EnvOr("LEDGER_ADDR", "127.0.0.1:50051"), "ledger service");
ABSL_FLAG(std::string, leaderboard, EnvOr("LEADERBOARD_ADDR", "127.0.0.1:50053"),
          "leaderboard service");
ABSL_FLAG(std::string, org, EnvOr("KUDOS_ORG", "demo"), "org (tenant) of minted tokens");
ABSL_FLAG(std::string, as, "admin", "subject (person id) of minted tokens");
ABSL_FLAG(std::string, roles, "", "roles of minted tokens (default: member; admin for seed)");
ABSL_FLAG(std::string, token, "", "use this bearer token instead of minting one");
ABSL_FLAG(std::string, to, "", "recipients, comma-separated");
ABSL_FLAG(int64_t, points, 5, "points per recipient");
ABSL_FLAG(std::string, values, "teamwork", "values, comma-separated");
ABSL_FLAG(std::string, message, "Thank you!", "kudos message");
ABSL_FLAG(std::string, request_id, "", "idempotency key (default: random)");
ABSL_FLAG(std::string, metric, "points_received", "points_received|kudos_received|kudos_given");
ABSL_FLAG(std::string, window, "week", "day|week|month|quarter|year|all_time");
ABSL_FLAG(std::string, scope, "org", "org|team|value|teams");
ABSL_FLAG(std::string, scope_id, "", "team or value id for team/value scopes");
ABSL_FLAG(std::string, period, "", "period key; empty = current");
ABSL_FLAG(int, top, 10, "entries to show");
ABSL_FLAG(std::string, person, "", "person id");
ABSL_FLAG(int, timeout_ms, 5000, "deadline of each call");

namespace {

// JWT_KEY, else the public development secret, which only services started
// with KUDOS_DEV_INSECURE_DEFAULTS=1 accept.
std::string MintingSecret() {
  std::string key = EnvOr("JWT_KEY", "");
  if (!key.empty()) return key;
  if (EnvOr(common::auth::kDevInsecureDefaultsEnv, "0") != "1") {
    std::cerr << "kudosctl: set JWT_KEY to mint tokens, or " << common::auth::kDevInsecureDefaultsEnv
              << "=1 for the public development secret (services started by scripts/start.sh), "
                 "or pass --token\n";
    std::exit(2);
  }
  return common::auth::kDevJwtSecret;
}

std::string Token(const std::string& default_roles) {
  if (!absl::GetFlag(FLAGS_token).empty()) return absl::GetFlag(FLAGS_token);
  common::auth::TokenRequest request;
  request.org = absl::GetFlag(FLAGS_org);
  request.subject = absl::GetFlag(FLAGS_as);
  std::string roles = absl::GetFlag(FLAGS_roles).empty() ? default_roles : absl::GetFlag(FLAGS_roles);
  request.roles = absl::StrSplit(roles, ',', absl::SkipEmpty());
  auto token = common::auth::MintHs256(request, MintingSecret(), absl::Now());
  if (!token.ok()) {
    std::cerr << token.status() << "\n";
    std::exit(2);
  }
  return *token;
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("authorization", "Bearer " + token);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::GetFlag(FLAGS_timeout_ms)));
  return context;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

int Fail(const std::string& what, const grpc::Status& status) {
  std::cerr << what << " failed: " << status.error_code() << " " << status.error_message() << "\n";
  return 1;
}

int Seed() {
  std::string token = Token("admin");
  auto directory = kudos::v1::DirectoryService::NewStub(Channel(absl::GetFlag(FLAGS_kudos)));
  const std::pair<const char*, const char*> kTeams[] = {{"support", "Customer Support"},
                                                        {"platform", "Platform"}};
  for (const auto& [id, name] : kTeams) {
    kudos::v1::CreateTeamRequest request;
    request.mutable_team()->set_team_id(id);
    request.mutable_team()->set_display_name(name);
    kudos::v1::CreateTeamResponse response;
    grpc::Status status = directory->CreateTeam(Context(token).get(), request, &response);
    if (!status.ok() && status.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return Fail("CreateTeam", status);
    }
  }
  const std::tuple<const char*, const char*, const char*> kPeople[] = {
      {"alice", "Alice Martin", "support"}, {"bob", "Bob Chen", "support"},
      {"carol", "Carol Diaz", "platform"},  {"dave", "Dave Okafor", "platform"},
      {"erin", "Erin Novak", "platform"}};
  for (const auto& [id, name, team] : kPeople) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name(name);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory->CreatePerson(Context(token).get(), request, &response);
    if (!status.ok() && status.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return Fail("CreatePerson", status);
    }
  }
  std::cout << "seeded org '" << absl::GetFlag(FLAGS_org)
            << "': teams support, platform; people alice, bob, carol, dave, erin\n";
  return 0;
}

int Send() {
  auto stub = kudos::v1::KudosService::NewStub(Channel(absl::GetFlag(FLAGS_kudos)));
  kudos::v1::SendKudosRequest request;
  std::string request_id = absl::GetFlag(FLAGS_request_id);
  if (request_id.empty()) request_id = absl::StrCat("cli-", absl::ToUnixNanos(absl::Now()));
  request.set_request_id(request_id);
  for (absl::string_view to : absl::StrSplit(absl::GetFlag(FLAGS_to), ',', absl::SkipEmpty())) {
    request.add_recipient_ids(std::string(to));
  }
  for (absl::string_view value : absl::StrSplit(absl::GetFlag(FLAGS_values), ',', absl::SkipEmpty())) {
    request.add_values(std::string(value));
  }
  request.set_message(absl::GetFlag(FLAGS_message));
  request.set_points_per_recipient(absl::GetFlag(FLAGS_points));
  kudos::v1::SendKudosResponse response;
  grpc::Status status = stub->SendKudos(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("SendKudos", status);
  const auto& kudos = response.kudos();
  std::cout << "kudos " << kudos.kudos_id() << ": " << kudos.giver_id() << " -> "
            << absl::StrJoin(kudos.recipient_ids(), ", ") << " (" << kudos.points_per_recipient()
            << " points each): " << kudos.message() << "\n";
  return 0;
}

template <typename Enum>
bool ParseEnum(const std::string& prefix, const std::string& text,
               bool (*parse)(const std::string&, Enum*), Enum* out) {
  return parse(prefix + absl::AsciiStrToUpper(text), out) || parse(absl::AsciiStrToUpper(text), out);
}

int Leaderboard() {
  leaderboard::v1::GetLeaderboardRequest request;
  leaderboard::v1::Board* board = request.mutable_board();
  leaderboard::v1::Metric metric;
  leaderboard::v1::Window window;
  leaderboard::v1::Scope scope;
  if (!ParseEnum("METRIC_", absl::GetFlag(FLAGS_metric), &leaderboard::v1::Metric_Parse, &metric) ||
      !ParseEnum("WINDOW_", absl::GetFlag(FLAGS_window), &leaderboard::v1::Window_Parse, &window) ||
      !ParseEnum("SCOPE_", absl::GetFlag(FLAGS_scope), &leaderboard::v1::Scope_Parse, &scope)) {
    std::cerr << "unknown --metric, --window or --scope\n";
    return 2;
  }
  board->set_metric(metric);
  board->set_window(window);
  board->set_scope(scope);
  board->set_scope_id(absl::GetFlag(FLAGS_scope_id));
  board->set_period(absl::GetFlag(FLAGS_period));
  request.set_page_size(absl::GetFlag(FLAGS_top));
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::GetLeaderboardResponse response;
  grpc::Status status = stub->GetLeaderboard(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("GetLeaderboard", status);
  std::cout << absl::GetFlag(FLAGS_metric) << " / " << absl::GetFlag(FLAGS_window) << " "
            << response.period() << " / " << absl::GetFlag(FLAGS_scope) << " ("
            << response.total_entries() << " ranked)\n";
  for (const auto& entry : response.entries()) {
    std::cout << "  #" << entry.rank() << "  " << entry.display_name() << " (" << entry.subject_id()
              << ")  " << entry.score() << "\n";
  }
  return 0;
}

int Feed() {
  auto stub = kudos::v1::KudosService::NewStub(Channel(absl::GetFlag(FLAGS_kudos)));
  kudos::v1::ListKudosRequest request;
  request.set_page_size(absl::GetFlag(FLAGS_top));
  kudos::v1::ListKudosResponse response;
  grpc::Status status = stub->ListKudos(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("ListKudos", status);
  for (const auto& kudos : response.kudos()) {
    std::cout << kudos.kudos_id() << "  " << kudos.giver_id() << " -> "
              << absl::StrJoin(kudos.recipient_ids(), ", ") << "  +" << kudos.points_per_recipient()
              << "  [" << absl::StrJoin(kudos.values(), ", ") << "]  " << kudos.message() << "\n";
  }
  return 0;
}

int Balance() {
  std::string person = absl::GetFlag(FLAGS_person).empty() ? absl::GetFlag(FLAGS_as) : absl::GetFlag(FLAGS_person);
  auto stub = ledger::v1::LedgerService::NewStub(Channel(absl::GetFlag(FLAGS_ledger)));
  ledger::v1::GetBalanceRequest request;
  request.mutable_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
  request.mutable_account()->set_person_id(person);
  ledger::v1::GetBalanceResponse response;
  grpc::Status status = stub->GetBalance(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("GetBalance", status);
  std::cout << person << ": earned " << response.balance() << " (held " << response.held()
            << ", available " << response.available() << ")\n";
  ledger::v1::GetAllowanceRequest allowance_request;
  allowance_request.set_person_id(person);
  ledger::v1::GetAllowanceResponse allowance;
  status = stub->GetAllowance(Context(Token("member")).get(), allowance_request, &allowance);
  if (!status.ok()) return Fail("GetAllowance", status);
  std::cout << person << ": allowance " << allowance.remaining_points() << " of "
            << allowance.policy().points_per_period() << " left in " << allowance.period() << "\n";
  return 0;
}

int Streaks() {
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::GetStreaksRequest request;
  request.set_person_id(absl::GetFlag(FLAGS_person));
  leaderboard::v1::GetStreaksResponse response;
  grpc::Status status = stub->GetStreaks(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("GetStreaks", status);
  std::cout << response.person_id() << ": giving " << response.giving().current_days()
            << " days (longest " << response.giving().longest_days() << "), receiving "
            << response.receiving().current_days() << " days (longest "
            << response.receiving().longest_days() << ")\n";
  return 0;
}

int Badges() {
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::ListBadgesRequest request;
  request.set_person_id(absl::GetFlag(FLAGS_person));
  leaderboard::v1::ListBadgesResponse response;
  grpc::Status status = stub->ListBadges(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("ListBadges", status);
  for (const auto& badge : response.badges()) {
    std::cout << badge.badge_id() << "  " << badge.display_name() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "kudosctl <token|seed|send|leaderboard|feed|balance|streaks|badges> [--flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << "usage: kudosctl <token|seed|send|leaderboard|feed|balance|streaks|badges> [--flags]\n";
    return 2;
  }
  std::string command = args[1];
  if (command == "token") {
    std::cout << Token("member") << "\n";
    return 0;
  }
  if (command == "seed") return Seed();
  if (command == "send") return Send();
  if (command == "leaderboard") return Leaderboard();
  if (command == "feed") return Feed();
  if (command == "balance") return Balance();
  if (command == "streaks") return Streaks();
  if (command == "badges") return Badges();
  std::cerr << "unknown command '" << command << "'\n";
  return 2;
}
