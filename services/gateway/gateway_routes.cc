// The route table: every HTTP route of the gateway, declared once. The
// server executes them generically (services/gateway/gateway_server.cc).
#include "services/gateway/gateway_rules.h"

namespace gateway {
namespace {

constexpr char kKudos[] = "/kudos.v1.KudosService/";
constexpr char kDirectory[] = "/kudos.v1.DirectoryService/";
// Comments, reactions, reports and retraction (issue 18), served by kudos_server.
constexpr char kSocial[] = "/kudos.v1.KudosSocialService/";
constexpr char kLedger[] = "/ledger.v1.LedgerService/";
// The rewards catalog (issue 18), served by ledger_server.
constexpr char kRewards[] = "/ledger.v1.RewardsService/";
// Program budgets and awards (issue 18), served by programs_server.
constexpr char kBudgets[] = "/programs.v1.BudgetService/";
constexpr char kAwards[] = "/programs.v1.AwardService/";
// Automatic celebrations (issue 18), served by programs_server.
constexpr char kCelebrations[] = "/programs.v1.CelebrationsService/";
constexpr char kBoards[] = "/leaderboard.v1.LeaderboardService/";
// Served by the kudos binary (services/feedback): routed to the kudos upstream.
constexpr char kFeedback[] = "/feedback.v1.FeedbackService/";
// Served by integrations_server (issue 17): routed to the --integrations upstream.
constexpr char kSlack[] = "/integrations.v1.SlackService/";
constexpr char kWebhooks[] = "/integrations.v1.WebhookService/";
constexpr char kDirectorySync[] = "/integrations.v1.DirectorySyncService/";
constexpr char kExport[] = "/integrations.v1.ExportService/";

Route R(std::string method, std::string pattern, std::string grpc, std::string body,
        std::string summary, std::string query_prefix = "",
        std::vector<FieldDefault> defaults = {}) {
  Route route;
  route.http_method = std::move(method);
  route.pattern = std::move(pattern);
  route.grpc_method = std::move(grpc);
  route.body = std::move(body);
  route.summary = std::move(summary);
  route.query_prefix = std::move(query_prefix);
  route.defaults = std::move(defaults);
  return route;
}

Route Sse(std::string pattern, std::string grpc, std::string event, std::string summary,
          std::string query_prefix) {
  Route route = R("GET", std::move(pattern), std::move(grpc), "", std::move(summary),
                  std::move(query_prefix));
  route.sse = true;
  route.sse_event = std::move(event);
  return route;
}

std::string S(const char* service, const char* method) { return std::string(service) + method; }

// The caller's own account unless the query names an org account.
std::vector<FieldDefault> CallerEarnedAccount() {
  return {{"account.type", "ACCOUNT_TYPE_EARNED", "", {}},
          {"account.person_id", "{caller}", "account.type",
           {"ACCOUNT_TYPE_ISSUER", "ACCOUNT_TYPE_REWARDS"}}};
}

std::vector<Route> Build() {
  return {
      // Kudos.
      R("POST", "/v1/kudos", S(kKudos, "SendKudos"), "*", "send a kudos"),
      R("GET", "/v1/kudos", S(kKudos, "ListKudos"), "", "list kudos, newest first", "filter"),
      R("GET", "/v1/kudos/{kudos_id}", S(kKudos, "GetKudos"), "", "one kudos"),
      R("POST", "/v1/kudos/{kudos_id}:boost", S(kKudos, "BoostKudos"), "*", "boost a kudos"),
      R("POST", "/v1/kudos/{kudos_id}/comments", S(kSocial, "AddComment"), "*",
        "comment on a kudos one can see (request_id, text)"),
      R("GET", "/v1/kudos/{kudos_id}/comments", S(kSocial, "ListComments"), "",
        "a kudos' comments, oldest first"),
      R("DELETE", "/v1/kudos/{kudos_id}/comments/{comment_id}", S(kSocial, "DeleteComment"), "",
        "author or admin: delete a comment"),
      R("POST", "/v1/kudos/{kudos_id}/reactions", S(kSocial, "AddReaction"), "*",
        "react to a kudos with an allowed emoji (one per person and emoji)"),
      R("DELETE", "/v1/kudos/{kudos_id}/reactions/{emoji}", S(kSocial, "RemoveReaction"), "",
        "take back one's reaction"),
      R("GET", "/v1/kudos/{kudos_id}/reactions", S(kSocial, "GetReactions"), "",
        "reaction counts of a kudos"),
      R("POST", "/v1/kudos/{kudos_id}:report", S(kSocial, "ReportKudos"), "*",
        "report a kudos to the admins (reason)"),
      R("GET", "/v1/reports", S(kSocial, "ListReports"), "", "admin: reports, open ones first"),
      R("POST", "/v1/reports/{report_id}:dismiss", S(kSocial, "DismissReport"), "*",
        "admin: dismiss a report (note)"),
      R("POST", "/v1/kudos/{kudos_id}:retract", S(kSocial, "RetractKudos"), "*",
        "admin: retract a kudos; the ledger reverses its points (request_id, reason)"),
      // Boards, streaks, badges, insights.
      R("GET", "/v1/leaderboard", S(kBoards, "GetLeaderboard"), "", "a leaderboard page",
        "board"),
      R("GET", "/v1/leaderboard/rank", S(kBoards, "GetRank"), "", "a subject's rank", "board",
        {{"subject_id", "{caller}", "", {}}}),
      // Seasons and closed periods (issue 18 part 5).
      R("POST", "/v1/seasons", S(kBoards, "CreateSeason"), "season",
        "admin: a time-boxed board (start, end, people or teams, optional join, prizes)"),
      R("GET", "/v1/seasons", S(kBoards, "ListSeasons"), "", "the org's seasons"),
      R("GET", "/v1/seasons/{season_id}", S(kBoards, "GetSeason"), "", "one season"),
      R("POST", "/v1/seasons/{season_id}:join", S(kBoards, "JoinSeason"), "*",
        "join a season that requires it"),
      R("GET", "/v1/seasons/{board.season_id}/leaderboard", S(kBoards, "GetLeaderboard"), "",
        "a season's leaderboard page", "board"),
      R("GET", "/v1/leaderboard/closed-periods", S(kBoards, "ListPeriodEvents"), "",
        "closed periods with their final top N and prizes, newest first"),
      R("GET", "/v1/people/{person_id}/streaks", S(kBoards, "GetStreaks"), "",
        "giving and receiving streaks"),
      R("GET", "/v1/people/{person_id}/badges", S(kBoards, "ListBadges"), "", "badges earned"),
      R("GET", "/v1/insights", S(kBoards, "GetInsights"), "",
        "manager/admin: recognition insights (team_id, window, period; empty team: the org)"),
      R("GET", "/v1/teams/{team_id}/insights", S(kBoards, "GetInsights"), "",
        "manager/admin: a team's recognition insights (window, period)"),
      R("GET", "/v1/insights/unrecognized", S(kBoards, "ListUnrecognized"), "",
        "manager/admin: people not recognized for `days` days, oldest first (team_id, days)"),
      R("GET", "/v1/teams/{team_id}/unrecognized", S(kBoards, "ListUnrecognized"), "",
        "manager/admin: a team's people not recognized for `days` days, oldest first"),
      R("POST", "/v1/admin/rebuild-projections", S(kBoards, "RebuildProjections"), "*",
        "admin: rebuild rankings, streaks and badges"),
      // Ledger.
      R("GET", "/v1/balance", S(kLedger, "GetBalance"), "",
        "a balance (default: the caller's earned points)", "account", CallerEarnedAccount()),
      R("GET", "/v1/people/{account.person_id}/balance", S(kLedger, "GetBalance"), "",
        "a person's earned balance", "account", CallerEarnedAccount()),
      R("GET", "/v1/transfers", S(kLedger, "ListTransfers"), "",
        "transfers of an account (default: the caller's earned)", "account",
        CallerEarnedAccount()),
      R("GET", "/v1/allowance", S(kLedger, "GetAllowance"), "", "the caller's allowance", "",
        {{"person_id", "{caller}", "", {}}}),
      R("PUT", "/v1/allowance/policy", S(kLedger, "SetAllowancePolicy"), "policy",
        "admin: the allowance policy"),
      // Allowance rules, profiles and boosts (issue 18 part 2).
      R("GET", "/v1/people/{person_id}/allowance", S(kLedger, "GetAllowance"), "",
        "a person's allowance and what made it (self or admin)"),
      R("PUT", "/v1/allowance/rules/{rule.rule_id}", S(kLedger, "SetAllowanceRule"), "rule",
        "admin: create or replace an allowance rule (by role, team or manager)"),
      R("DELETE", "/v1/allowance/rules/{rule_id}", S(kLedger, "DeleteAllowanceRule"), "",
        "admin: delete an allowance rule"),
      R("GET", "/v1/allowance/rules", S(kLedger, "ListAllowanceRules"), "",
        "admin: the org's allowance rules"),
      R("PUT", "/v1/allowance/profiles/{profile.person_id}", S(kLedger, "SetAllowanceProfile"),
        "profile", "admin: what rules match a person on (roles, team, direct reports)"),
      R("GET", "/v1/allowance/profiles/{person_id}", S(kLedger, "GetAllowanceProfile"), "",
        "a person's allowance profile"),
      R("POST", "/v1/people/{person_id}/allowance/boosts", S(kLedger, "GrantAllowanceBoost"), "*",
        "admin: extra allowance for one period or every period until end_time (request_id)"),
      R("GET", "/v1/people/{person_id}/allowance/boosts", S(kLedger, "ListAllowanceBoosts"), "",
        "a person's allowance boosts"),
      R("POST", "/v1/people/{person_id}/allowance/boosts/{boost_id}:cancel",
        S(kLedger, "CancelAllowanceBoost"), "*", "admin: cancel an allowance boost"),
      R("POST", "/v1/redemptions", S(kLedger, "CreateRedemption"), "*", "redeem points"),
      R("POST", "/v1/redemptions/{redemption_id}:fulfill", S(kLedger, "FulfillRedemption"), "*",
        "fulfill a redemption"),
      R("POST", "/v1/redemptions/{redemption_id}:cancel", S(kLedger, "CancelRedemption"), "*",
        "cancel a redemption"),
      R("POST", "/v1/admin/adjust", S(kLedger, "AdjustBalance"), "*",
        "admin: a correcting transfer"),
      R("POST", "/v1/admin/verify-ledger", S(kLedger, "VerifyLedger"), "*",
        "admin: recompute every balance"),
      // Rewards catalog (issue 18), served by the ledger.
      R("GET", "/v1/rewards/items", S(kRewards, "ListRewardItems"), "",
        "the active reward catalog (page_size, page_token; admins: include_inactive)"),
      R("POST", "/v1/rewards/items", S(kRewards, "CreateRewardItem"), "item",
        "admin: add a reward item (itemId, name, description, pricePoints, stock or unlimited, "
        "active)"),
      R("GET", "/v1/rewards/items/{item_id}", S(kRewards, "GetRewardItem"), "",
        "one reward item"),
      R("PUT", "/v1/rewards/items/{item.item_id}", S(kRewards, "UpdateRewardItem"), "item",
        "admin: replace a reward item's name, description, price, stock, active"),
      R("POST", "/v1/rewards/items/{item_id}:archive", S(kRewards, "ArchiveRewardItem"), "*",
        "admin: archive a reward item (no more redemptions)"),
      R("POST", "/v1/rewards/items/{item_id}:redeem", S(kRewards, "RedeemRewardItem"), "*",
        "redeem an item: holds points and stock (requestId, quantity)"),
      R("GET", "/v1/rewards/settings", S(kRewards, "GetRewardSettings"), "",
        "the org's currency name and points-to-money rate"),
      R("PUT", "/v1/rewards/settings", S(kRewards, "UpdateRewardSettings"), "settings",
        "admin: currency name, ISO 4217 code, money nanos per point"),
      R("POST", "/v1/rewards/custom", S(kRewards, "RequestCustomReward"), "*",
        "ask for a reward outside the catalog (requestId, name, description, points)"),
      R("GET", "/v1/rewards/redemptions", S(kRewards, "ListRewardRedemptions"), "",
        "reward redemptions, newest first (members: their own; admins: person_id, open_only)"),
      R("GET", "/v1/rewards/redemptions/{redemption_id}", S(kRewards, "GetRewardRedemption"), "",
        "one reward redemption (the owner or an admin)"),
      R("POST", "/v1/rewards/redemptions/{redemption_id}:approve",
        S(kRewards, "ApproveCustomReward"), "*", "admin: approve a custom reward (holds points)"),
      R("POST", "/v1/rewards/redemptions/{redemption_id}:fulfill",
        S(kRewards, "FulfillRewardRedemption"), "*", "admin: fulfil (points taken)"),
      R("POST", "/v1/rewards/redemptions/{redemption_id}:decline",
        S(kRewards, "DeclineRewardRedemption"), "*",
        "admin: decline with a reason (points and stock return)"),
      R("POST", "/v1/rewards/redemptions/{redemption_id}:cancel",
        S(kRewards, "CancelRewardRedemption"), "*",
        "the owner or an admin: withdraw (points and stock return)"),
      R("GET", "/v1/rewards/liability", S(kRewards, "GetRewardLiability"), "",
        "admin: points earned and not yet redeemed, held apart, in points and money"),
      // Program budgets and awards (issue 18), served by programs_server.
      R("POST", "/v1/budgets", S(kBudgets, "CreateBudget"), "budget",
        "admin: a budget (budgetId, name, kind, ownerIds, amountPerPeriod, refresh, timeZone)"),
      R("GET", "/v1/budgets", S(kBudgets, "ListBudgets"), "",
        "budgets (admins: all; others: the ones they own), with spent and remaining"),
      R("GET", "/v1/budgets/{budget_id}", S(kBudgets, "GetBudget"), "",
        "admin or owner: one budget in its current period"),
      R("PUT", "/v1/budgets/{budget.budget_id}", S(kBudgets, "UpdateBudget"), "*",
        "admin: replace name, owners, amount (requestId, budget)"),
      R("GET", "/v1/budgets/{budget_id}/history", S(kBudgets, "ListBudgetHistory"), "",
        "admin or owner: a budget's history, newest first (page_size)"),
      R("POST", "/v1/awards", S(kAwards, "CreateAward"), "award",
        "admin or the budget's owner: an award (window, nominators, stages, winners, points)"),
      R("GET", "/v1/awards", S(kAwards, "ListAwards"), "", "awards, newest first"),
      R("GET", "/v1/awards/{award_id}", S(kAwards, "GetAward"), "", "one award and its winners"),
      R("POST", "/v1/awards/{award_id}/nominations", S(kAwards, "Nominate"), "*",
        "nominate a person (requestId, nomineeId, reason)"),
      R("GET", "/v1/awards/{award_id}/nominations", S(kAwards, "ListNominations"), "",
        "nominations (approvers, owners, admins: all; others: their own)"),
      R("POST", "/v1/awards/{award_id}/nominations/{nomination_id}:approve",
        S(kAwards, "ApproveNomination"), "*", "an approver of the stage (requestId, stage)"),
      R("POST", "/v1/awards/{award_id}/nominations/{nomination_id}:decline",
        S(kAwards, "DeclineNomination"), "*", "an approver of the stage (requestId, stage)"),
      R("POST", "/v1/awards/{award_id}:selectWinners", S(kAwards, "SelectWinners"), "*",
        "admin or the budget's owner: winners paid from the budget (requestId, winnerIds)"),
      // Celebrations (issue 18), served by programs_server.
      R("GET", "/v1/celebrations", S(kCelebrations, "ListCelebrations"), "",
        "the org's recent birthdays and work anniversaries, newest first (page_size, page_token)"),
      R("GET", "/v1/celebrations/settings", S(kCelebrations, "GetCelebrationSettings"), "",
        "the org's birthday points and anniversary points per tenure year"),
      R("PUT", "/v1/celebrations/settings", S(kCelebrations, "UpdateCelebrationSettings"),
        "settings", "admin: birthdayPoints, anniversaryPointsPerYear (0..1000 each)"),
      R("GET", "/v1/celebrations/profiles/{person_id}", S(kCelebrations, "GetCelebrationProfile"),
        "", "a person's birthday, hire date, opt-out and next celebrations (themself or an admin)"),
      R("PUT", "/v1/celebrations/profiles/{person_id}/birthday", S(kCelebrations, "SetBirthday"),
        "birthday", "set a birthday {month, day} (themself or an admin)"),
      R("PUT", "/v1/celebrations/profiles/{person_id}/hire-date", S(kCelebrations, "SetHireDate"),
        "hire_date", "admin: set a hire date {year, month, day}"),
      R("PUT", "/v1/celebrations/profiles/{person_id}/opt-out",
        S(kCelebrations, "SetCelebrationOptOut"), "*",
        "opt out of or back into celebrations {optedOut} (themself or an admin)"),
      // Directory.
      R("POST", "/v1/people", S(kDirectory, "CreatePerson"), "person", "admin: add a person"),
      R("GET", "/v1/people", S(kDirectory, "ListPeople"), "", "people of the org"),
      R("GET", "/v1/people/{person_id}", S(kDirectory, "GetPerson"), "", "one person"),
      R("PUT", "/v1/people/{person.person_id}", S(kDirectory, "UpdatePerson"), "person",
        "admin: replace a person; a member: only their own hidden_from_leaderboards"),
      R("POST", "/v1/teams", S(kDirectory, "CreateTeam"), "team", "admin: add a team"),
      R("GET", "/v1/teams", S(kDirectory, "ListTeams"), "", "teams of the org"),
      R("GET", "/v1/settings", S(kDirectory, "GetOrgSettings"), "", "org settings"),
      R("PUT", "/v1/settings", S(kDirectory, "UpdateOrgSettings"), "settings",
        "admin: replace org settings"),
      // Feedback from the people a team served (issue 16).
      R("POST", "/v1/surveys", S(kFeedback, "CreateSurvey"), "survey",
        "admin or the team's manager: a service survey about one team"),
      R("GET", "/v1/surveys", S(kFeedback, "ListSurveys"), "", "surveys (one team's: team_id)"),
      R("GET", "/v1/surveys/{survey_id}", S(kFeedback, "GetSurvey"), "", "one survey"),
      R("POST", "/v1/service-requests", S(kFeedback, "RecordServiceRequest"), "*",
        "the caller got a piece of work from a team or person"),
      R("GET", "/v1/invitations", S(kFeedback, "ListInvitations"), "",
        "the caller's open survey invitations"),
      R("POST", "/v1/invitations/{invitation_id}:respond", S(kFeedback, "SubmitResponse"), "*",
        "answer an invitation (request_id, answers)"),
      R("GET", "/v1/teams/{team_id}/service-score", S(kFeedback, "GetServiceScore"), "",
        "manager/admin: a team's service score (window, period, survey_id)"),
      R("GET", "/v1/feedback/settings", S(kFeedback, "GetFeedbackSettings"), "",
        "the org's feedback settings (anonymity threshold, weekly cap)"),
      R("PUT", "/v1/feedback/settings", S(kFeedback, "UpdateFeedbackSettings"), "settings",
        "admin: replace the org's feedback settings"),
      // Integrations (issue 17), admins only. Slack's own requests (/slack/) and
      // SCIM (/scim/) are forwarded raw, not through this table.
      R("POST", "/v1/webhooks/subscriptions", S(kWebhooks, "CreateSubscription"), "*",
        "admin: subscribe an https endpoint to events (returns the signing secret once)"),
      R("GET", "/v1/webhooks/subscriptions", S(kWebhooks, "ListSubscriptions"), "",
        "admin: the org's webhook subscriptions"),
      R("GET", "/v1/webhooks/subscriptions/{subscription_id}", S(kWebhooks, "GetSubscription"), "",
        "admin: one webhook subscription"),
      R("PATCH", "/v1/webhooks/subscriptions/{subscription_id}",
        S(kWebhooks, "UpdateSubscription"), "*",
        "admin: change url, event_types, paused (false resumes), description (update_mask)"),
      R("DELETE", "/v1/webhooks/subscriptions/{subscription_id}",
        S(kWebhooks, "DeleteSubscription"), "", "admin: drop a webhook subscription"),
      R("POST", "/v1/webhooks/subscriptions/{subscription_id}:rotateSecret",
        S(kWebhooks, "RotateSecret"), "*", "admin: a new signing secret, returned once"),
      R("GET", "/v1/webhooks/subscriptions/{subscription_id}/deliveries",
        S(kWebhooks, "ListDeliveries"), "",
        "admin: a subscription's delivery log (page_size, page_token)"),
      R("POST", "/v1/webhooks/subscriptions/{subscription_id}/deliveries/{delivery_id}:redeliver",
        S(kWebhooks, "Redeliver"), "*",
        "admin: send a delivered or dead-lettered delivery again"),
      R("POST", "/v1/integrations/scim/tokens", S(kDirectorySync, "CreateScimToken"), "*",
        "admin: a SCIM bearer token for the org's identity provider (shown once)"),
      R("GET", "/v1/integrations/scim/tokens", S(kDirectorySync, "ListScimTokens"), "",
        "admin: the org's SCIM tokens (never the tokens themselves)"),
      R("DELETE", "/v1/integrations/scim/tokens/{token_id}", S(kDirectorySync, "RevokeScimToken"),
        "", "admin: revoke a SCIM token"),
      R("POST", kDirectoryImportPath, S(kDirectorySync, "ImportDirectoryCsv"), "*",
        "admin: import people and teams from CSV (csv, dry_run; body up to 2 MiB)"),
      R("GET", "/v1/audit-entries", S(kExport, "ListAuditEntries"), "",
        "admin: the org's audit trail, oldest first (from, to as RFC 3339, actor, action, "
        "page_size, page_token)"),
      R("GET", "/v1/integrations/slack/settings", S(kSlack, "GetSlackSettings"), "",
        "admin: the Slack app's settings (never the signing secret)"),
      R("PUT", "/v1/integrations/slack/settings", S(kSlack, "SetSlackSettings"), "settings",
        "admin: the Slack app's settings (signing secret write-only; empty keeps it)"),
      R("GET", "/v1/integrations/slack/users", S(kSlack, "ListUserMappings"), "",
        "admin: Slack users linked to people (page_size, page_token)"),
      R("PUT", "/v1/integrations/slack/users/{mapping.slack_user_id}", S(kSlack, "PutUserMapping"),
        "mapping", "admin: link a Slack user to a person (body: personId)"),
      R("DELETE", "/v1/integrations/slack/users/{slack_user_id}", S(kSlack, "DeleteUserMapping"),
        "", "admin: unlink a Slack user"),
      // Live streams (Server-Sent Events).
      Sse("/v1/stream/leaderboard", S(kBoards, "WatchLeaderboard"), "snapshot",
          "SSE: leaderboard snapshots (metric, window, scope, scope_id, top_n)", "board"),
      Sse("/v1/stream/feed", S(kKudos, "WatchFeed"), "kudos",
          "SSE: new kudos (event kudos) and the caller's survey invitations (event invitation)",
          "filter"),
  };
}

}  // namespace

const std::vector<Route>& Routes() {
  static const std::vector<Route>* routes = new std::vector<Route>(Build());
  return *routes;
}

}  // namespace gateway
