// kudosctl: a command-line client of the platform.
//   kudosctl token --org=demo --as=alice --roles=member,admin
//   kudosctl seed --org=demo
//   kudosctl send --as=alice --to=bob,carol --points=5 --values=teamwork --message="Thanks!"
//   kudosctl leaderboard [--metric=points_received] [--window=week] [--scope=org] [--scope_id=]
//   kudosctl feed | balance --person=bob | streaks --person=bob | badges --person=bob
// Operators (admin tokens), e.g. after a Redis failover (docs/cluster.md):
//   kudosctl verify     # VerifyLedger of the org: exit 1 unless consistent
//   kudosctl rebuild    # RebuildProjections of the org's boards
// Issue 16 (a manager's flow: tools/README.md):
//   kudosctl survey create --as=dave --team=platform [--cadence=weekly] [--per_period=10]
//                          [--questions=csat,recommend,text,on_time,follow_up,clarity,respect]
//   kudosctl survey list [--team=] | survey settings [--threshold=3] [--weekly_cap=3]
//   kudosctl survey request --as=alice --team=platform [--url=https://...]   (a service request)
//   kudosctl survey invitations --as=alice
//   kudosctl survey answer --as=alice [--invitation=ID | --team=T] --csat=5 --recommend=9 --on_time=4 --comment="..."
//   kudosctl survey results --as=dave --team=platform [--window=month] [--period=]
//   kudosctl insights --as=dave --team=platform [--window=month] [--period=]
//   kudosctl unrecognized --as=dave --team=platform [--days=30]
// Tokens are minted with JWT_KEY, or with the public development secret when
// KUDOS_DEV_INSECURE_DEFAULTS=1 (as scripts/start.sh sets), or given with --token.
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <iostream>
#include <map>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/config/env.h"
#include "feedback/v1/feedback.grpc.pb.h"
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
// Surveys and insights (issue 16).
ABSL_FLAG(std::string, team, "", "team id (survey, insights, unrecognized)");
ABSL_FLAG(std::string, cadence, "weekly", "survey cadence: weekly|biweekly|monthly");
ABSL_FLAG(int, per_period, 10, "survey invitations per period (1..100)");
ABSL_FLAG(std::string, questions, "csat,recommend,text,on_time,follow_up,clarity,respect",
          "survey questions: csat, recommend, text and the dimensions on_time, follow_up, "
          "clarity, respect");
ABSL_FLAG(std::string, invitation, "",
          "invitation id (default: the oldest open one, of --team's surveys if given)");
ABSL_FLAG(int, csat, -1, "answer to the CSAT question, 1..5 (-1: skip)");
ABSL_FLAG(int, recommend, -1, "answer to the recommend question, 0..10 (-1: skip)");
ABSL_FLAG(int, on_time, -1, "answer to the on-time dimension, 1..5 (-1: skip)");
ABSL_FLAG(int, follow_up, -1, "answer to the follow-up dimension, 1..5 (-1: skip)");
ABSL_FLAG(int, clarity, -1, "answer to the clarity dimension, 1..5 (-1: skip)");
ABSL_FLAG(int, respect, -1, "answer to the respect dimension, 1..5 (-1: skip)");
ABSL_FLAG(std::string, comment, "", "answer to the free-text question (empty: skip)");
ABSL_FLAG(std::string, url, "", "work-item URL of a service request");
ABSL_FLAG(std::string, provider, "", "person who did the work (service request; else --team)");
ABSL_FLAG(int, threshold, 0, "survey settings: anonymity threshold (>= 3; 0: unchanged)");
ABSL_FLAG(int, weekly_cap, 0, "survey settings: invitations per person per week (0: unchanged)");
ABSL_FLAG(int, days, 30, "unrecognized: at least this many days without kudos");

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
  // erin leads platform and manages both teams (manager_id of their
  // members), so `--as=erin` is a manager's view of either.
  const std::tuple<const char*, const char*, const char*, const char*> kPeople[] = {
      {"erin", "Erin Novak", "platform", ""},       {"alice", "Alice Martin", "support", "erin"},
      {"bob", "Bob Chen", "support", "erin"},       {"frank", "Frank Li", "support", "erin"},
      {"gina", "Gina Rossi", "support", "erin"},    {"carol", "Carol Diaz", "platform", "erin"},
      {"dave", "Dave Okafor", "platform", "erin"}};
  for (const auto& [id, name, team, manager] : kPeople) {
    kudos::v1::CreatePersonRequest request;
    request.mutable_person()->set_person_id(id);
    request.mutable_person()->set_display_name(name);
    request.mutable_person()->set_team_id(team);
    request.mutable_person()->set_manager_id(manager);
    request.mutable_person()->set_active(true);
    kudos::v1::CreatePersonResponse response;
    grpc::Status status = directory->CreatePerson(Context(token).get(), request, &response);
    if (!status.ok() && status.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return Fail("CreatePerson", status);
    }
  }
  std::cout << "seeded org '" << absl::GetFlag(FLAGS_org)
            << "': teams support (alice, bob, frank, gina), platform (carol, dave, erin); "
               "erin manages both\n";
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

// VerifyLedger: exit 0 only when the org's ledger is consistent.
int Verify() {
  auto stub = ledger::v1::LedgerService::NewStub(Channel(absl::GetFlag(FLAGS_ledger)));
  ledger::v1::VerifyLedgerResponse response;
  grpc::Status status = stub->VerifyLedger(Context(Token("admin")).get(), {}, &response);
  if (!status.ok()) return Fail("VerifyLedger", status);
  std::cout << "ledger of '" << absl::GetFlag(FLAGS_org) << "': "
            << (response.consistent() ? "consistent" : "INCONSISTENT") << ", "
            << response.transfer_count() << " transfers, sum of balances "
            << response.sum_of_balances() << "\n";
  for (const auto& difference : response.differences()) {
    std::cout << "  " << difference.ShortDebugString() << "\n";
  }
  for (const auto& account : response.negative_earned_accounts()) {
    std::cout << "  negative earned: " << account.ShortDebugString() << "\n";
  }
  return response.consistent() ? 0 : 1;
}

int Rebuild() {
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::RebuildProjectionsResponse response;
  grpc::Status status = stub->RebuildProjections(Context(Token("admin")).get(), {}, &response);
  if (!status.ok()) return Fail("RebuildProjections", status);
  std::cout << "rebuilt the boards of '" << absl::GetFlag(FLAGS_org) << "' from "
            << response.events_applied() << " events in " << response.duration_ms() << " ms\n";
  return 0;
}

// ---- surveys (feedback.v1, hosted by the kudos binary) and insights ----------

// Managers and admins read scores and insights; members answer.
std::string ManagerToken() { return Token("member,manager"); }

std::unique_ptr<feedback::v1::FeedbackService::Stub> FeedbackStub() {
  return feedback::v1::FeedbackService::NewStub(Channel(absl::GetFlag(FLAGS_kudos)));
}

std::string Lower(std::string text) { return absl::AsciiStrToLower(text); }

// "QUESTION_KIND_CSAT" -> "csat", "DIMENSION_ON_TIME" -> "on_time".
std::string Short(const std::string& name, absl::string_view prefix) {
  absl::string_view rest = name;
  if (absl::StartsWith(rest, prefix)) rest.remove_prefix(prefix.size());
  return Lower(std::string(rest));
}

std::string QuestionLabel(const feedback::v1::Question& q) {
  if (q.kind() == feedback::v1::QUESTION_KIND_DIMENSION) {
    return Short(feedback::v1::Dimension_Name(q.dimension()), "DIMENSION_");
  }
  return Short(feedback::v1::QuestionKind_Name(q.kind()), "QUESTION_KIND_");
}

void PrintSurvey(const feedback::v1::Survey& survey) {
  std::vector<std::string> questions;
  for (const auto& q : survey.questions()) {
    questions.push_back(absl::StrCat(q.question_id(), "=", QuestionLabel(q)));
  }
  std::cout << "survey " << survey.survey_id() << "  team " << survey.team_id() << "  "
            << Short(feedback::v1::Cadence_Name(survey.cadence()), "CADENCE_") << ", "
            << survey.invitations_per_period() << " invitations per period  ["
            << absl::StrJoin(questions, ", ") << "]\n";
}

int SurveyCreate() {
  feedback::v1::CreateSurveyRequest request;
  feedback::v1::Survey* survey = request.mutable_survey();
  survey->set_team_id(absl::GetFlag(FLAGS_team));
  feedback::v1::Cadence cadence;
  if (!ParseEnum("CADENCE_", absl::GetFlag(FLAGS_cadence), &feedback::v1::Cadence_Parse, &cadence)) {
    std::cerr << "--cadence: weekly, biweekly or monthly\n";
    return 2;
  }
  survey->set_cadence(cadence);
  survey->set_invitations_per_period(absl::GetFlag(FLAGS_per_period));
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_questions), ',', absl::SkipEmpty())) {
    feedback::v1::Question* q = survey->add_questions();
    feedback::v1::QuestionKind kind;
    feedback::v1::Dimension dimension;
    if (ParseEnum("QUESTION_KIND_", std::string(name), &feedback::v1::QuestionKind_Parse, &kind) &&
        kind != feedback::v1::QUESTION_KIND_DIMENSION) {
      q->set_kind(kind);
    } else if (ParseEnum("DIMENSION_", std::string(name), &feedback::v1::Dimension_Parse,
                         &dimension)) {
      q->set_kind(feedback::v1::QUESTION_KIND_DIMENSION);
      q->set_dimension(dimension);
    } else {
      std::cerr << "--questions: unknown question '" << name
                << "' (csat, recommend, text, on_time, follow_up, clarity, respect)\n";
      return 2;
    }
  }
  feedback::v1::CreateSurveyResponse response;
  grpc::Status status = FeedbackStub()->CreateSurvey(Context(ManagerToken()).get(), request, &response);
  if (!status.ok()) return Fail("CreateSurvey", status);
  PrintSurvey(response.survey());
  return 0;
}

int SurveyList() {
  feedback::v1::ListSurveysRequest request;
  request.set_team_id(absl::GetFlag(FLAGS_team));
  feedback::v1::ListSurveysResponse response;
  grpc::Status status = FeedbackStub()->ListSurveys(Context(ManagerToken()).get(), request, &response);
  if (!status.ok()) return Fail("ListSurveys", status);
  if (response.surveys().empty()) std::cout << "no surveys\n";
  for (const auto& survey : response.surveys()) PrintSurvey(survey);
  return 0;
}

int SurveySettings() {
  auto stub = FeedbackStub();
  std::string token = Token("admin");
  feedback::v1::GetFeedbackSettingsResponse current;
  grpc::Status status = stub->GetFeedbackSettings(Context(token).get(), {}, &current);
  if (!status.ok()) return Fail("GetFeedbackSettings", status);
  feedback::v1::FeedbackSettings settings = current.settings();
  if (absl::GetFlag(FLAGS_threshold) != 0 || absl::GetFlag(FLAGS_weekly_cap) != 0) {
    if (absl::GetFlag(FLAGS_threshold) != 0) {
      settings.set_anonymity_threshold(absl::GetFlag(FLAGS_threshold));
    }
    if (absl::GetFlag(FLAGS_weekly_cap) != 0) {
      settings.set_max_invitations_per_person_per_week(absl::GetFlag(FLAGS_weekly_cap));
    }
    feedback::v1::UpdateFeedbackSettingsRequest update;
    *update.mutable_settings() = settings;
    feedback::v1::UpdateFeedbackSettingsResponse updated;
    status = stub->UpdateFeedbackSettings(Context(token).get(), update, &updated);
    if (!status.ok()) return Fail("UpdateFeedbackSettings", status);
    settings = updated.settings();
  }
  std::cout << "feedback settings: anonymity threshold " << settings.anonymity_threshold()
            << ", at most " << settings.max_invitations_per_person_per_week()
            << " invitations per person per week, kept " << settings.retention_days()
            << " days\n";
  return 0;
}

int SurveyRequest() {
  feedback::v1::RecordServiceRequestRequest request;
  request.set_provider_team_id(absl::GetFlag(FLAGS_team));
  request.set_provider_person_id(absl::GetFlag(FLAGS_provider));
  request.set_work_item_url(absl::GetFlag(FLAGS_url));
  request.set_customer_id(absl::GetFlag(FLAGS_person));
  feedback::v1::RecordServiceRequestResponse response;
  grpc::Status status =
      FeedbackStub()->RecordServiceRequest(Context(Token("member")).get(), request, &response);
  if (!status.ok()) return Fail("RecordServiceRequest", status);
  std::string customer =
      absl::GetFlag(FLAGS_person).empty() ? absl::GetFlag(FLAGS_as) : absl::GetFlag(FLAGS_person);
  std::cout << customer << " was served by team " << response.team_id()
            << (absl::GetFlag(FLAGS_url).empty() ? "" : " (" + absl::GetFlag(FLAGS_url) + ")")
            << "\n";
  return 0;
}

absl::StatusOr<std::vector<feedback::v1::Invitation>> OpenInvitations(
    feedback::v1::FeedbackService::Stub& stub, const std::string& token) {
  feedback::v1::ListInvitationsResponse response;
  grpc::Status status = stub.ListInvitations(Context(token).get(), {}, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return std::vector<feedback::v1::Invitation>(response.invitations().begin(),
                                               response.invitations().end());
}

int SurveyInvitations() {
  auto stub = FeedbackStub();
  auto invitations = OpenInvitations(*stub, Token("member"));
  if (!invitations.ok()) {
    std::cerr << "ListInvitations failed: " << invitations.status() << "\n";
    return 1;
  }
  if (invitations->empty()) std::cout << "no open invitations\n";
  for (const auto& inv : *invitations) {
    std::vector<std::string> questions;
    for (const auto& q : inv.questions()) questions.push_back(QuestionLabel(q));
    std::cout << "invitation " << inv.invitation_id() << "  how was the service of "
              << (inv.team_display_name().empty() ? inv.team_id() : inv.team_display_name())
              << "?  period " << inv.period() << ", closes "
              << absl::FormatTime("%Y-%m-%d %H:%M UTC",
                                  absl::FromUnixSeconds(inv.closes_at().seconds()),
                                  absl::UTCTimeZone())
              << "  [" << absl::StrJoin(questions, ", ") << "]\n";
  }
  return 0;
}

int SurveyAnswer() {
  auto stub = FeedbackStub();
  std::string token = Token("member");
  auto invitations = OpenInvitations(*stub, token);
  if (!invitations.ok()) {
    std::cerr << "ListInvitations failed: " << invitations.status() << "\n";
    return 1;
  }
  const feedback::v1::Invitation* invitation = nullptr;
  // The named invitation, else the oldest open one (of --team's surveys).
  for (const auto& inv : *invitations) {
    const bool named = !absl::GetFlag(FLAGS_invitation).empty();
    if ((named && inv.invitation_id() == absl::GetFlag(FLAGS_invitation)) ||
        (!named && (absl::GetFlag(FLAGS_team).empty() || inv.team_id() == absl::GetFlag(FLAGS_team)))) {
      invitation = &inv;
      break;
    }
  }
  feedback::v1::SubmitResponseRequest request;
  std::string request_id = absl::GetFlag(FLAGS_request_id);
  if (request_id.empty()) request_id = absl::StrCat("cli-", absl::ToUnixNanos(absl::Now()));
  request.set_request_id(request_id);
  if (invitation == nullptr) {
    if (absl::GetFlag(FLAGS_invitation).empty()) {
      std::cerr << absl::GetFlag(FLAGS_as) << " has no open invitation"
                << (absl::GetFlag(FLAGS_team).empty() ? "" : " about team " + absl::GetFlag(FLAGS_team))
                << "\n";
      return 1;
    }
    // Not open (answered, closed or someone else's): the service says which.
    request.set_invitation_id(absl::GetFlag(FLAGS_invitation));
  } else {
    request.set_invitation_id(invitation->invitation_id());
  }
  const std::map<std::string, int> scores = {
      {"csat", absl::GetFlag(FLAGS_csat)},       {"recommend", absl::GetFlag(FLAGS_recommend)},
      {"on_time", absl::GetFlag(FLAGS_on_time)}, {"follow_up", absl::GetFlag(FLAGS_follow_up)},
      {"clarity", absl::GetFlag(FLAGS_clarity)}, {"respect", absl::GetFlag(FLAGS_respect)}};
  std::vector<std::string> given;
  if (invitation != nullptr) {
    for (const auto& q : invitation->questions()) {
      const std::string label = QuestionLabel(q);
      if (label == "text") {
        if (absl::GetFlag(FLAGS_comment).empty()) continue;
        auto* answer = request.add_answers();
        answer->set_question_id(q.question_id());
        answer->set_text(absl::GetFlag(FLAGS_comment));
        given.push_back("comment");
        continue;
      }
      auto it = scores.find(label);
      if (it == scores.end() || it->second < 0) continue;
      auto* answer = request.add_answers();
      answer->set_question_id(q.question_id());
      answer->set_score(it->second);
      given.push_back(absl::StrCat(label, "=", it->second));
    }
  }
  feedback::v1::SubmitResponseResponse response;
  grpc::Status status = stub->SubmitResponse(Context(token).get(), request, &response);
  if (!status.ok()) return Fail("SubmitResponse", status);
  std::cout << "answered " << response.invitation_id() << " (team " << response.team_id()
            << ", " << response.period() << "): " << absl::StrJoin(given, ", ") << "\n";
  return 0;
}

std::string Signed(double value, int digits) {
  std::string text = absl::StrFormat("%.*f", digits, value);
  return value > 0 ? "+" + text : text;
}

int SurveyResults() {
  feedback::v1::GetServiceScoreRequest request;
  request.set_team_id(absl::GetFlag(FLAGS_team));
  feedback::v1::ScoreWindow window;
  if (!ParseEnum("SCORE_WINDOW_", absl::GetFlag(FLAGS_window), &feedback::v1::ScoreWindow_Parse,
                 &window)) {
    std::cerr << "--window: week, month or quarter\n";
    return 2;
  }
  request.set_window(window);
  request.set_period(absl::GetFlag(FLAGS_period));
  feedback::v1::GetServiceScoreResponse response;
  grpc::Status status =
      FeedbackStub()->GetServiceScore(Context(ManagerToken()).get(), request, &response);
  if (!status.ok()) return Fail("GetServiceScore", status);
  const auto& s = response.score();
  std::cout << "service score of team " << s.team_id() << ", "
            << Short(feedback::v1::ScoreWindow_Name(s.window()), "SCORE_WINDOW_") << " "
            << s.period() << "\n";
  if (s.below_threshold()) {
    std::cout << "  no score: fewer than " << s.threshold()
              << " answers (the anonymity threshold); nothing is shown below it\n";
    return 0;
  }
  std::cout << "  responses " << s.responses() << "\n";
  if (s.csat_responses() > 0) {
    std::cout << absl::StrFormat("  CSAT %.2f of 5 (%d answers; 1..5: %s)\n", s.csat_mean(),
                                 s.csat_responses(), absl::StrJoin(s.csat_distribution(), "/"));
  }
  if (s.recommend_responses() > 0) {
    std::cout << "  net score " << Signed(s.net_score(), 0) << " (" << s.promoters()
              << " promoters, " << s.passives() << " passives, " << s.detractors()
              << " detractors)\n";
  }
  for (const auto& d : s.dimensions()) {
    std::cout << absl::StrFormat("  %-10s %.2f (%d answers)\n",
                                 Short(feedback::v1::Dimension_Name(d.dimension()), "DIMENSION_"),
                                 d.mean(), d.responses());
  }
  if (s.has_trend()) {
    std::cout << "  vs " << s.trend().previous_period() << ": CSAT "
              << Signed(s.trend().csat_mean_delta(), 2) << ", net score "
              << Signed(s.trend().net_score_delta(), 0) << ", responses "
              << Signed(s.trend().responses_delta(), 0) << "\n";
  }
  for (const auto& comment : s.comments()) std::cout << "  \"" << comment << "\"\n";
  return 0;
}

int Survey(const std::vector<char*>& args) {
  std::string sub = args.size() > 2 ? args[2] : "";
  if (sub == "create") return SurveyCreate();
  if (sub == "list") return SurveyList();
  if (sub == "settings") return SurveySettings();
  if (sub == "request") return SurveyRequest();
  if (sub == "invitations") return SurveyInvitations();
  if (sub == "answer") return SurveyAnswer();
  if (sub == "results") return SurveyResults();
  std::cerr << "usage: kudosctl survey <create|list|settings|request|invitations|answer|results>\n";
  return 2;
}

int Insights() {
  leaderboard::v1::GetInsightsRequest request;
  request.set_team_id(absl::GetFlag(FLAGS_team));
  leaderboard::v1::Window window;
  if (!ParseEnum("WINDOW_", absl::GetFlag(FLAGS_window), &leaderboard::v1::Window_Parse, &window)) {
    std::cerr << "unknown --window\n";
    return 2;
  }
  request.set_window(window);
  request.set_period(absl::GetFlag(FLAGS_period));
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::GetInsightsResponse response;
  grpc::Status status = stub->GetInsights(Context(ManagerToken()).get(), request, &response);
  if (!status.ok()) return Fail("GetInsights", status);
  const auto& f = response.current();
  const auto& t = response.trend();
  const bool trend = response.has_previous();
  auto delta = [&](double d, const char* unit, int digits) {
    return trend ? absl::StrCat(" (", Signed(d, digits), unit, " vs ", response.previous().period(),
                                ")")
                 : std::string();
  };
  std::cout << "insights of " << (response.team_id().empty() ? "the org" : "team " + response.team_id())
            << ", " << Short(leaderboard::v1::Window_Name(response.window()), "WINDOW_") << " "
            << f.period() << ": " << f.member_count() << " members\n";
  std::cout << absl::StrFormat("  participation  %5.1f%%  %d gave", f.participation_percent(),
                               f.giving_count())
            << delta(t.participation_percent(), " pts", 1) << "\n";
  std::cout << absl::StrFormat("  reach          %5.1f%%  %d recognized", f.reach_percent(),
                               f.receiving_count())
            << delta(t.reach_percent(), " pts", 1) << "\n";
  std::cout << absl::StrFormat("  concentration  Gini %.2f, top 10%% get %.1f%% of %d points",
                               f.points_gini(), f.top10_points_percent(), f.points_received())
            << delta(t.points_gini(), "", 2) << "\n";
  std::cout << absl::StrFormat("  cross-team     %5.1f%%  %d of %d kudos received",
                               f.cross_team_percent(), f.cross_team_kudos(), f.kudos_received())
            << delta(t.cross_team_percent(), " pts", 1) << "\n";
  std::cout << absl::StrFormat("  unique givers  mean %.2f, median %.1f per person [%s]",
                               f.unique_givers_mean(), f.unique_givers_median(),
                               absl::StrJoin(f.unique_givers_histogram(), " "))
            << "\n";
  std::vector<std::string> used;
  for (const auto& v : f.values()) {
    if (v.kudos_count() > 0) used.push_back(absl::StrCat(v.value_id(), " ", v.kudos_count()));
  }
  std::cout << absl::StrFormat("  values         %d of %d used (%.1f%%)", f.values_used(),
                               f.values_in_catalog(), f.values_coverage_percent())
            << (used.empty() ? "" : ": " + absl::StrJoin(used, ", ")) << "\n";
  if (f.reciprocity_flags().empty()) {
    std::cout << "  reciprocity    no flagged pair\n";
  }
  for (const auto& r : f.reciprocity_flags()) {
    std::cout << "  reciprocity    " << r.person_a() << " <-> " << r.person_b() << ": " << r.a_to_b()
              << " and " << r.b_to_a() << " kudos (of " << r.a_given() << " and " << r.b_given()
              << " given)\n";
  }
  if (f.pairs_truncated()) std::cout << "  (pair counters reached their bound)\n";
  return 0;
}

int Unrecognized() {
  leaderboard::v1::ListUnrecognizedRequest request;
  request.set_team_id(absl::GetFlag(FLAGS_team));
  request.set_days(absl::GetFlag(FLAGS_days));
  request.set_page_size(std::min(absl::GetFlag(FLAGS_top) <= 0 ? 50 : absl::GetFlag(FLAGS_top), 200));
  auto stub = leaderboard::v1::LeaderboardService::NewStub(Channel(absl::GetFlag(FLAGS_leaderboard)));
  leaderboard::v1::ListUnrecognizedResponse response;
  grpc::Status status = stub->ListUnrecognized(Context(ManagerToken()).get(), request, &response);
  if (!status.ok()) return Fail("ListUnrecognized", status);
  std::cout << response.total_count() << (response.truncated() ? "+" : "")
            << " not recognized for " << request.days() << " days or more"
            << (request.team_id().empty() ? "" : " in team " + request.team_id())
            << ", oldest first\n";
  for (const auto& p : response.people()) {
    std::cout << "  " << p.display_name() << " (" << p.person_id() << ")  "
              << (p.days_since_recognized() < 0 ? std::string("never recognized")
                                                : absl::StrCat(p.days_since_recognized(), " days"))
              << "\n";
  }
  if (!response.next_page_token().empty()) std::cout << "  ... more (raise --top)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "kudosctl <token|seed|send|leaderboard|feed|balance|streaks|badges|survey|insights|unrecognized|verify|rebuild> [--flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << "usage: kudosctl <token|seed|send|leaderboard|feed|balance|streaks|badges|survey|insights|unrecognized|verify|rebuild> [--flags]\n";
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
  if (command == "survey") return Survey(args);
  if (command == "insights") return Insights();
  if (command == "unrecognized") return Unrecognized();
  if (command == "verify") return Verify();
  if (command == "rebuild") return Rebuild();
  std::cerr << "unknown command '" << command << "'\n";
  return 2;
}
