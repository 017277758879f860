#include "services/gateway/gateway_rules.h"

#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "feedback/v1/feedback.pb.h"
#include "integrations/v1/directory_sync.pb.h"
#include "integrations/v1/export.pb.h"
#include "integrations/v1/slack.pb.h"
#include "integrations/v1/webhooks.pb.h"
#include "kudos/v1/kudos.pb.h"
#include "leaderboard/v1/leaderboard.pb.h"
#include "ledger/v1/ledger.pb.h"

namespace gateway {
namespace {

TEST(RoutesTest, EveryRouteNamesARealMethodWithMatchingStreaming) {
  std::set<std::string> seen;
  for (const Route& route : Routes()) {
    const auto* method = FindMethod(route.grpc_method);
    ASSERT_NE(method, nullptr) << route.grpc_method;
    EXPECT_EQ(method->server_streaming(), route.sse) << route.pattern;
    EXPECT_TRUE(seen.insert(route.http_method + " " + route.pattern).second)
        << "duplicate " << route.pattern;
    if (!route.body.empty() && route.body != "*") {
      EXPECT_NE(method->input_type()->FindFieldByName(route.body), nullptr) << route.pattern;
    }
  }
}

TEST(RoutesTest, MatchesLiteralsParamsAndVerbs) {
  RouteMatch m = MatchRoute(Routes(), "POST", "/v1/kudos");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->grpc_method, "/kudos.v1.KudosService/SendKudos");

  m = MatchRoute(Routes(), "GET", "/v1/kudos/k%2D1");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->grpc_method, "/kudos.v1.KudosService/GetKudos");
  ASSERT_EQ(m.path_params.size(), 1u);
  EXPECT_EQ(m.path_params[0].first, "kudos_id");
  EXPECT_EQ(m.path_params[0].second, "k-1");

  m = MatchRoute(Routes(), "POST", "/v1/kudos/abc:boost");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->grpc_method, "/kudos.v1.KudosService/BoostKudos");
  EXPECT_EQ(m.path_params[0].second, "abc");

  m = MatchRoute(Routes(), "PUT", "/v1/people/u1");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.path_params[0].first, "person.person_id");

  m = MatchRoute(Routes(), "GET", "/v1/people/u1/streaks");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->grpc_method, "/leaderboard.v1.LeaderboardService/GetStreaks");
}

TEST(RoutesTest, WrongMethodListsAllowedOnes) {
  RouteMatch m = MatchRoute(Routes(), "DELETE", "/v1/kudos");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"POST", "GET"}));
  m = MatchRoute(Routes(), "GET", "/v1/nope");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.allowed_methods.empty());
  // An empty capture does not match.
  EXPECT_EQ(MatchRoute(Routes(), "GET", "/v1/people//streaks").route, nullptr);
}

// Issue 16: surveys, service requests, invitations and scores (served by the
// kudos binary) and the leaderboard's insights.
TEST(RoutesTest, FeedbackAndInsightsRoutes) {
  struct Case {
    const char* method;
    const char* path;
    const char* rpc;
    std::vector<std::pair<std::string, std::string>> params;
  };
  const Case cases[] = {
      {"POST", "/v1/surveys", "/feedback.v1.FeedbackService/CreateSurvey", {}},
      {"GET", "/v1/surveys", "/feedback.v1.FeedbackService/ListSurveys", {}},
      {"GET", "/v1/surveys/s-1", "/feedback.v1.FeedbackService/GetSurvey", {{"survey_id", "s-1"}}},
      {"POST", "/v1/service-requests", "/feedback.v1.FeedbackService/RecordServiceRequest", {}},
      {"GET", "/v1/invitations", "/feedback.v1.FeedbackService/ListInvitations", {}},
      {"POST", "/v1/invitations/i.9:respond", "/feedback.v1.FeedbackService/SubmitResponse",
       {{"invitation_id", "i.9"}}},
      {"GET", "/v1/teams/t1/service-score", "/feedback.v1.FeedbackService/GetServiceScore",
       {{"team_id", "t1"}}},
      {"GET", "/v1/feedback/settings", "/feedback.v1.FeedbackService/GetFeedbackSettings", {}},
      {"PUT", "/v1/feedback/settings", "/feedback.v1.FeedbackService/UpdateFeedbackSettings", {}},
      {"GET", "/v1/insights", "/leaderboard.v1.LeaderboardService/GetInsights", {}},
      {"GET", "/v1/teams/t1/insights", "/leaderboard.v1.LeaderboardService/GetInsights",
       {{"team_id", "t1"}}},
      {"GET", "/v1/insights/unrecognized", "/leaderboard.v1.LeaderboardService/ListUnrecognized",
       {}},
      {"GET", "/v1/teams/t1/unrecognized", "/leaderboard.v1.LeaderboardService/ListUnrecognized",
       {{"team_id", "t1"}}},
  };
  for (const Case& c : cases) {
    RouteMatch m = MatchRoute(Routes(), c.method, c.path);
    ASSERT_NE(m.route, nullptr) << c.method << " " << c.path;
    EXPECT_EQ(m.route->grpc_method, c.rpc) << c.path;
    EXPECT_EQ(m.path_params, c.params) << c.path;
  }
  // The team list keeps its own route.
  EXPECT_EQ(MatchRoute(Routes(), "GET", "/v1/teams").route->grpc_method,
            "/kudos.v1.DirectoryService/ListTeams");
  EXPECT_EQ(MatchRoute(Routes(), "DELETE", "/v1/teams/t1/service-score").allowed_methods,
            (std::vector<std::string>{"GET"}));
}

TEST(BuildTest, SurveyAnswerAndScoreRequests) {
  // A survey from the Survey itself or the whole request; short enum forms.
  const Route* create = MatchRoute(Routes(), "POST", "/v1/surveys").route;
  ASSERT_NE(create, nullptr);
  feedback::v1::CreateSurveyRequest survey;
  RequestInput input;
  input.body = R"({"teamId":"t1","cadence":"CADENCE_WEEKLY","invitationsPerPeriod":5,
                  "questions":[{"kind":"QUESTION_KIND_CSAT"},
                               {"kind":"QUESTION_KIND_DIMENSION","dimension":"DIMENSION_ON_TIME"}]})";
  ASSERT_TRUE(BuildRequest(*create, input, &survey).ok());
  EXPECT_EQ(survey.survey().team_id(), "t1");
  EXPECT_EQ(survey.survey().questions_size(), 2);
  EXPECT_EQ(survey.survey().questions(1).dimension(), feedback::v1::DIMENSION_ON_TIME);

  // The invitation comes from the path, the answers from the body.
  const RouteMatch respond = MatchRoute(Routes(), "POST", "/v1/invitations/inv-1:respond");
  ASSERT_NE(respond.route, nullptr);
  feedback::v1::SubmitResponseRequest answer;
  input = RequestInput();
  input.path_params = respond.path_params;
  input.body = R"({"requestId":"r1","invitationId":"other",
                  "answers":[{"questionId":"q1","score":5},{"questionId":"q3","text":"quick"}]})";
  ASSERT_TRUE(BuildRequest(*respond.route, input, &answer).ok());
  EXPECT_EQ(answer.invitation_id(), "inv-1");
  ASSERT_EQ(answer.answers_size(), 2);
  EXPECT_EQ(answer.answers(0).score(), 5);
  EXPECT_EQ(answer.answers(1).text(), "quick");

  const RouteMatch score = MatchRoute(Routes(), "GET", "/v1/teams/t1/service-score");
  feedback::v1::GetServiceScoreRequest read;
  input = RequestInput();
  input.path_params = score.path_params;
  input.query_params = {{"window", "week"}, {"period", "2026-W48"}};
  ASSERT_TRUE(BuildRequest(*score.route, input, &read).ok());
  EXPECT_EQ(read.team_id(), "t1");
  EXPECT_EQ(read.window(), feedback::v1::SCORE_WINDOW_WEEK);
  EXPECT_EQ(read.period(), "2026-W48");

  const RouteMatch unrecognized = MatchRoute(Routes(), "GET", "/v1/insights/unrecognized");
  leaderboard::v1::ListUnrecognizedRequest list;
  input = RequestInput();
  input.query_params = {{"team_id", "t1"}, {"days", "14"}, {"page_size", "20"}};
  ASSERT_TRUE(BuildRequest(*unrecognized.route, input, &list).ok());
  EXPECT_EQ(list.team_id(), "t1");
  EXPECT_EQ(list.days(), 14);
  input.query_params = {{"days", "soon"}};
  EXPECT_EQ(BuildRequest(*unrecognized.route, input, &list).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(QueryTest, DecodesPercentAndPlus) {
  auto q = ParseQuery("a=1&b=x%20y+z&b=w&flag&=v&c=%zz");
  ASSERT_EQ(q.size(), 6u);
  EXPECT_EQ(q[1].second, "x y z");
  EXPECT_EQ(q[2], (std::pair<std::string, std::string>("b", "w")));
  EXPECT_EQ(q[3], (std::pair<std::string, std::string>("flag", "")));
  EXPECT_EQ(q[5].second, "%zz");
  EXPECT_EQ(PercentDecode("a+b%2Fc", false), "a+b/c");
}

TEST(FieldTest, EnumsAcceptFullShortAndNumericForms) {
  leaderboard::v1::GetLeaderboardRequest r;
  ASSERT_TRUE(SetFieldFromText(&r, "board.metric", "METRIC_KUDOS_GIVEN").ok());
  EXPECT_EQ(r.board().metric(), leaderboard::v1::METRIC_KUDOS_GIVEN);
  ASSERT_TRUE(SetFieldFromText(&r, "board.metric", "points_received").ok());
  EXPECT_EQ(r.board().metric(), leaderboard::v1::METRIC_POINTS_RECEIVED);
  ASSERT_TRUE(SetFieldFromText(&r, "board.window", "Week").ok());
  EXPECT_EQ(r.board().window(), leaderboard::v1::WINDOW_WEEK);
  ASSERT_TRUE(SetFieldFromText(&r, "board.window", "all-time").ok());
  EXPECT_EQ(r.board().window(), leaderboard::v1::WINDOW_ALL_TIME);
  ASSERT_TRUE(SetFieldFromText(&r, "board.scope", "2").ok());
  EXPECT_EQ(r.board().scope(), leaderboard::v1::SCOPE_TEAM);
  EXPECT_EQ(SetFieldFromText(&r, "board.scope", "galaxy").code(),
            absl::StatusCode::kInvalidArgument);
  kudos::v1::OrgSettings settings;
  ASSERT_TRUE(SetFieldFromText(&settings, "week_start", "sunday").ok());
  EXPECT_EQ(settings.week_start(), common::v1::DAY_OF_WEEK_SUNDAY);
}

TEST(FieldTest, ScalarsRepeatedAndJsonNames) {
  ledger::v1::CreateRedemptionRequest r;
  ASSERT_TRUE(SetFieldFromText(&r, "holdSeconds", "60").ok());
  EXPECT_EQ(r.hold_seconds(), 60);
  EXPECT_EQ(SetFieldFromText(&r, "points", "12x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SetFieldFromText(&r, "nope", "1").code(), absl::StatusCode::kNotFound);
  kudos::v1::SendKudosRequest s;
  ASSERT_TRUE(SetFieldFromText(&s, "recipient_ids", "a").ok());
  ASSERT_TRUE(SetFieldFromText(&s, "recipientIds", "b").ok());
  EXPECT_EQ(s.recipient_ids_size(), 2);
  kudos::v1::Person p;
  ASSERT_TRUE(SetFieldFromText(&p, "active", "true").ok());
  EXPECT_TRUE(p.active());
}

const Route& RouteFor(const std::string& method, const std::string& path,
                      std::vector<std::pair<std::string, std::string>>* params) {
  RouteMatch m = MatchRoute(Routes(), method, path);
  if (m.route == nullptr) throw std::runtime_error("no route " + path);
  *params = m.path_params;
  return *m.route;
}

TEST(BuildTest, LeaderboardFromQueryWithPrefix) {
  RequestInput in;
  const Route& route = RouteFor("GET", "/v1/leaderboard", &in.path_params);
  in.query_params = ParseQuery(
      "metric=kudos_received&window=WINDOW_MONTH&scope=team&scope_id=t1&period=2026-11&page_size=5"
      "&page_token=abc&access_token=ignored");
  leaderboard::v1::GetLeaderboardRequest r;
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.board().metric(), leaderboard::v1::METRIC_KUDOS_RECEIVED);
  EXPECT_EQ(r.board().window(), leaderboard::v1::WINDOW_MONTH);
  EXPECT_EQ(r.board().scope(), leaderboard::v1::SCOPE_TEAM);
  EXPECT_EQ(r.board().scope_id(), "t1");
  EXPECT_EQ(r.board().period(), "2026-11");
  EXPECT_EQ(r.page_size(), 5);
  EXPECT_EQ(r.page_token(), "abc");
}

TEST(BuildTest, UnknownQueryParameterIsInvalidArgument) {
  RequestInput in;
  const Route& route = RouteFor("GET", "/v1/kudos", &in.path_params);
  in.query_params = ParseQuery("colour=red");
  kudos::v1::ListKudosRequest r;
  absl::Status status = BuildRequest(route, in, &r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("colour"), std::string::npos);
  in.query_params = ParseQuery("filter.giver_id=u1&page_size=3");
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.filter().giver_id(), "u1");
  r.Clear();
  in.query_params = ParseQuery("recipientId=u2");  // under the prefix, JSON name
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.filter().recipient_id(), "u2");
}

TEST(BuildTest, BodyWholeCamelOrSnakeAndPathWins) {
  RequestInput in;
  const Route& route = RouteFor("POST", "/v1/kudos/k9:boost", &in.path_params);
  in.body = R"({"kudosId":"other","request_id":"r1","points":3})";
  kudos::v1::BoostKudosRequest r;
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.kudos_id(), "k9");
  EXPECT_EQ(r.request_id(), "r1");
  EXPECT_EQ(r.points(), 3);
  in.body = R"({"points":"nope"})";
  EXPECT_EQ(BuildRequest(route, in, &r).code(), absl::StatusCode::kInvalidArgument);
  in.body = R"({"unknownField":1})";
  EXPECT_EQ(BuildRequest(route, in, &r).code(), absl::StatusCode::kInvalidArgument);
  in.body = "";
  EXPECT_TRUE(BuildRequest(route, in, &r).ok());
}

TEST(BuildTest, BodyFieldAcceptsTheFieldOrTheWholeRequest) {
  RequestInput in;
  const Route& route = RouteFor("PUT", "/v1/people/u7", &in.path_params);
  in.body = R"({"displayName":"Ada","teamId":"t1","active":true})";
  kudos::v1::UpdatePersonRequest r;
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.person().person_id(), "u7");
  EXPECT_EQ(r.person().display_name(), "Ada");
  EXPECT_TRUE(r.person().active());
  r.Clear();
  in.body = R"({"person":{"display_name":"Bea"}})";
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.person().display_name(), "Bea");
  EXPECT_EQ(r.person().person_id(), "u7");
}

TEST(BuildTest, CallerDefaultsAndTheirExceptions) {
  RequestInput in;
  const Route& route = RouteFor("GET", "/v1/balance", &in.path_params);
  in.caller = "u1";
  ledger::v1::GetBalanceRequest r;
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.account().type(), ledger::v1::ACCOUNT_TYPE_EARNED);
  EXPECT_EQ(r.account().person_id(), "u1");
  r.Clear();
  in.query_params = ParseQuery("type=allowance&person_id=u2");
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.account().type(), ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
  EXPECT_EQ(r.account().person_id(), "u2");
  r.Clear();
  in.query_params = ParseQuery("type=issuer");
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.account().type(), ledger::v1::ACCOUNT_TYPE_ISSUER);
  EXPECT_EQ(r.account().person_id(), "");
  r.Clear();
  in.query_params.clear();
  in.caller = "";  // unknown caller: left for the service to refuse
  ASSERT_TRUE(BuildRequest(route, in, &r).ok());
  EXPECT_EQ(r.account().person_id(), "");
}

TEST(JsonTest, LowerCamelCaseAndPrimitivesPrinted) {
  leaderboard::v1::LeaderboardEntry e;
  e.set_subject_id("u1");
  e.set_rank(1);
  std::string json = ToJson(e);
  EXPECT_NE(json.find("\"subjectId\":\"u1\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"score\":\"0\""), std::string::npos) << json;
}

TEST(StatusTest, GrpcToHttp) {
  EXPECT_EQ(HttpStatusFromGrpcCode(3), 400);
  EXPECT_EQ(HttpStatusFromGrpcCode(16), 401);
  EXPECT_EQ(HttpStatusFromGrpcCode(7), 403);
  EXPECT_EQ(HttpStatusFromGrpcCode(5), 404);
  EXPECT_EQ(HttpStatusFromGrpcCode(6), 409);
  EXPECT_EQ(HttpStatusFromGrpcCode(9), 409);
  EXPECT_EQ(HttpStatusFromGrpcCode(8), 429);
  EXPECT_EQ(HttpStatusFromGrpcCode(14), 503);
  EXPECT_EQ(HttpStatusFromGrpcCode(4), 504);
  EXPECT_EQ(HttpStatusFromGrpcCode(13), 500);
  EXPECT_EQ(HttpStatusFromGrpcCode(2), 500);
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(ErrorJson(3, "recipient_ids[0]: \"x\" bad\n"),
            R"({"error":{"code":"INVALID_ARGUMENT","message":"recipient_ids[0]: \"x\" bad\n","httpStatus":400}})");
}

TEST(CorsTest, StarOrListedOrigin) {
  EXPECT_EQ(CorsAllowOrigin({"*"}, "https://a"), "*");
  EXPECT_EQ(CorsAllowOrigin({"https://a", "https://b"}, "https://b"), "https://b");
  EXPECT_EQ(CorsAllowOrigin({"https://a"}, "https://evil"), "");
  EXPECT_EQ(CorsAllowOrigin({"https://a"}, ""), "");
}

TEST(SseTest, Framing) {
  EXPECT_EQ(SseEvent("kudos", "{\"a\":1}"), "event: kudos\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(SseEvent("snapshot", "l1\nl2\r\n"), "event: snapshot\ndata: l1\ndata: l2\ndata: \n\n");
  EXPECT_EQ(SseComment("heartbeat"), ": heartbeat\n\n");
  EXPECT_EQ(SseRetry(2000), "retry: 2000\n\n");
}

// A bare CR ends a line for SSE parsers: relayed upstream text containing one
// must stay inside its comment or data line, never forge an event.
TEST(SseTest, BareCarriageReturnCannotForgeAFieldOrEvent) {
  EXPECT_EQ(SseComment("upstream failed\revent: reauth\rdata: x"),
            ": upstream failed\n: event: reauth\n: data: x\n\n");
  EXPECT_EQ(SseEvent("error", "a\rb\r\nc"), "event: error\ndata: a\ndata: b\ndata: c\n\n");
}

TEST(SseTest, RetryPolicy) {
  EXPECT_TRUE(IsRetryableWatchCode(14));
  EXPECT_TRUE(IsRetryableWatchCode(4));
  EXPECT_TRUE(IsRetryableWatchCode(13));
  EXPECT_FALSE(IsRetryableWatchCode(16));
  EXPECT_FALSE(IsRetryableWatchCode(7));
  EXPECT_EQ(NextBackoffMs(0, 5000), 500);
  EXPECT_EQ(NextBackoffMs(500, 5000), 1000);
  EXPECT_EQ(NextBackoffMs(4000, 5000), 5000);
}

TEST(RequestHeadTest, FindsTheEndAcrossLineEndingsAndResumes) {
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), 27u);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\nHost: x\n\n"), 24u);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n"), absl::string_view::npos);
  // Fed in pieces, the scan resumes at the unfinished line.
  std::string head = "GET / HTTP/1.1\r\nHo";
  size_t resume = 0;
  EXPECT_EQ(FindHeadEnd(head, &resume), absl::string_view::npos);
  EXPECT_EQ(resume, 16u);
  head += "st: x\r\n\r\n";
  EXPECT_EQ(FindHeadEnd(head, &resume), head.size());
}

TEST(RequestHeadTest, BodiesAreJudgedByLengthAndTokenBeforeReading) {
  RequestHead head = ParseRequestHead(
      "POST /v1/kudos HTTP/1.1\r\nauthorization: Bearer abc\r\nContent-Length: 12\r\n\r\n");
  ASSERT_TRUE(head.valid);
  EXPECT_EQ(head.authorization, "Bearer abc");
  EXPECT_EQ(head.content_length, 12);
  EXPECT_EQ(JudgeBody(head, true, 256 * 1024), BodyVerdict::kAdmit);
  EXPECT_EQ(JudgeBody(head, false, 256 * 1024), BodyVerdict::kUnauthenticated);
  EXPECT_EQ(JudgeBody(head, true, 10), BodyVerdict::kTooLarge);
  // No body: nothing to refuse, token or not.
  EXPECT_EQ(JudgeBody(ParseRequestHead("GET / HTTP/1.1\r\n\r\n"), false, 10), BodyVerdict::kAdmit);
  EXPECT_EQ(JudgeBody(ParseRequestHead("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                      true, 10),
            BodyVerdict::kNeedsLength);
  // Lengths that could desynchronise framing are refused.
  for (const char* bad : {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                          "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                          "POST / HTTP/1.1\r\nX: a\r\n  folded: 1\r\n\r\n", "\r\n"}) {
    EXPECT_EQ(JudgeBody(ParseRequestHead(bad), true, 1 << 20), BodyVerdict::kBadRequest) << bad;
  }
}

// libevent 2.1.12 reads a body only for POST, PUT and PATCH
// (evhttp_method_may_have_body): any other method announcing one would have
// those bytes parsed as the next request, so it is refused, never passed on.
TEST(RequestHeadTest, BodiesOnMethodsLibeventReadsNoBodyForAreRefused) {
  for (const char* method : {"GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT", "get",
                             "post", "FOO"}) {
    RequestHead head = ParseRequestHead(
        absl::StrCat(method, " /v1/kudos HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
    ASSERT_TRUE(head.valid) << method;
    EXPECT_EQ(head.method, method);
    EXPECT_EQ(JudgeBody(head, true, 256 * 1024), BodyVerdict::kBodyNotAllowed) << method;
    EXPECT_FALSE(KeepsFraming(BodyVerdict::kBodyNotAllowed));
    EXPECT_EQ(JudgeBody(ParseRequestHead(absl::StrCat(
                            method, " / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")),
                        true, 256 * 1024),
              BodyVerdict::kBodyNotAllowed)
        << method;
    // Without a body the method is libevent's business.
    EXPECT_EQ(JudgeBody(ParseRequestHead(absl::StrCat(
                            method, " / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")),
                        false, 10),
              BodyVerdict::kAdmit)
        << method;
  }
  EXPECT_STREQ(RefusalReason(BodyVerdict::kBodyNotAllowed), "body_not_allowed");
  for (const char* method : {"POST", "PUT", "PATCH"}) {
    EXPECT_TRUE(MethodMayHaveBody(method)) << method;
    EXPECT_EQ(JudgeBody(ParseRequestHead(absl::StrCat(
                            method, " / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")),
                        true, 256 * 1024),
              BodyVerdict::kAdmit)
        << method;
  }
  EXPECT_FALSE(MethodMayHaveBody("GET"));
  EXPECT_FALSE(MethodMayHaveBody("Post"));
  // The request line splits on single spaces, as libevent's does: a method
  // hidden behind extra spaces is no method.
  for (const char* line : {" POST / HTTP/1.1", "POST  / HTTP/1.1", "POST / HTTP/1.1 "}) {
    EXPECT_FALSE(ParseRequestHead(absl::StrCat(line, "\r\nContent-Length: 5\r\n\r\n")).valid)
        << line;
  }
}

TEST(RequestHeadTest, RefusedHeadsCarryTheReasonAndNoBody) {
  EXPECT_EQ(RefusedHead("POST /v1/kudos HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n"
                        "X-Gateway-Refusal: busy\r\n\r\n",
                        "too_large"),
            "POST /v1/kudos HTTP/1.1\r\nHost: h\r\nX-Gateway-Refusal: too_large\r\n"
            "Content-Length: 0\r\n\r\n");
  // A client cannot pose as the gateway's own refusal.
  EXPECT_EQ(StripRefusal("GET / HTTP/1.1\r\nx-gateway-refusal: busy\r\nHost: h\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(RefusedHead("garbage\r\n\r\n", "bad_request"),
            "GET / HTTP/1.1\r\nX-Gateway-Refusal: bad_request\r\nContent-Length: 0\r\n\r\n");
}

TEST(RequestHeadTest, TokenExpiryIsTheExpClaim) {
  common::auth::TokenRequest request;
  request.org = "acme";
  request.subject = "wall";
  request.roles = {"screen"};
  request.ttl = absl::Minutes(3);
  const absl::Time now = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  auto token = common::auth::MintHs256(request, "secret", now);
  ASSERT_TRUE(token.ok());
  auto expiry = TokenExpiry(*token);
  ASSERT_TRUE(expiry.ok()) << expiry.status();
  EXPECT_EQ(*expiry, now + absl::Minutes(3));
  EXPECT_FALSE(TokenExpiry("not.a-jwt").ok());
}

// ---- Raw routes forwarded to the integrations service (issue 17) ----------

TEST(IngressRulesTest, OnlyTheSlackScimAndExportPrefixesAreForwarded) {
  EXPECT_TRUE(IsIngressPath("/slack/acme/commands"));
  EXPECT_TRUE(IsIngressPath("/scim/acme/v2/Users"));
  EXPECT_TRUE(IsIngressPath("/v1/export/kudos"));
  EXPECT_FALSE(IsIngressPath("/slack"));
  EXPECT_FALSE(IsIngressPath("/slackers/x"));
  EXPECT_FALSE(IsIngressPath("/%73lack/acme/commands"));  // raw bytes decide, as the guard sees them
  EXPECT_FALSE(IsIngressPath("/v1/exports"));
  EXPECT_FALSE(IsIngressPath("/v1/kudos"));
  EXPECT_FALSE(IsIngressPath("http://h/slack/acme/commands"));
  EXPECT_EQ(TargetPath("/scim/acme/v2/Users?filter=x"), "/scim/acme/v2/Users");
  EXPECT_EQ(TargetPath("/slack/acme/commands"), "/slack/acme/commands");
  // The guard reads the target from the request line.
  EXPECT_EQ(ParseRequestHead("POST /slack/a/commands?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").target,
            "/slack/a/commands?x=1");
}

TEST(IntegrationsRoutesTest, SlackAdminRoutesBuildTheirRequests) {
  RouteMatch put = MatchRoute(Routes(), "PUT", "/v1/integrations/slack/users/U0BOB");
  ASSERT_NE(put.route, nullptr);
  EXPECT_EQ(put.route->grpc_method, "/integrations.v1.SlackService/PutUserMapping");
  integrations::v1::PutUserMappingRequest mapping;
  RequestInput input;
  input.path_params = put.path_params;
  input.body = "{\"personId\":\"bob\"}";
  ASSERT_TRUE(BuildRequest(*put.route, input, &mapping).ok());
  EXPECT_EQ(mapping.mapping().slack_user_id(), "U0BOB");
  EXPECT_EQ(mapping.mapping().person_id(), "bob");

  RouteMatch del = MatchRoute(Routes(), "DELETE", "/v1/integrations/slack/users/U0BOB");
  ASSERT_NE(del.route, nullptr);
  EXPECT_EQ(del.route->grpc_method, "/integrations.v1.SlackService/DeleteUserMapping");
  integrations::v1::DeleteUserMappingRequest unlink;
  RequestInput del_input;
  del_input.path_params = del.path_params;
  ASSERT_TRUE(BuildRequest(*del.route, del_input, &unlink).ok());
  EXPECT_EQ(unlink.slack_user_id(), "U0BOB");

  RouteMatch set = MatchRoute(Routes(), "PUT", "/v1/integrations/slack/settings");
  ASSERT_NE(set.route, nullptr);
  integrations::v1::SetSlackSettingsRequest settings;
  RequestInput set_input;
  set_input.body =
      "{\"signingSecret\":\"s\",\"responseVisibility\":\"SLACK_RESPONSE_VISIBILITY_EPHEMERAL\"}";
  ASSERT_TRUE(BuildRequest(*set.route, set_input, &settings).ok());
  EXPECT_EQ(settings.settings().signing_secret(), "s");
  EXPECT_EQ(settings.settings().response_visibility(),
            integrations::v1::SLACK_RESPONSE_VISIBILITY_EPHEMERAL);
  for (const char* method : {"GET"}) {
    EXPECT_NE(MatchRoute(Routes(), method, "/v1/integrations/slack/settings").route, nullptr);
    EXPECT_NE(MatchRoute(Routes(), method, "/v1/integrations/slack/users").route, nullptr);
  }
}

TEST(IntegrationsRoutesTest, WebhookRoutesCaptureIdsEvenWithAnEncodedSlash) {
  RouteMatch redeliver = MatchRoute(
      Routes(), "POST",
      "/v1/webhooks/subscriptions/wh_1/deliveries/wh_1.evt_lb_badge.earned%2Falice%2Ffirst:redeliver");
  ASSERT_NE(redeliver.route, nullptr);
  EXPECT_EQ(redeliver.route->grpc_method, "/integrations.v1.WebhookService/Redeliver");
  integrations::v1::RedeliverRequest request;
  RequestInput input;
  input.path_params = redeliver.path_params;
  ASSERT_TRUE(BuildRequest(*redeliver.route, input, &request).ok());
  EXPECT_EQ(request.subscription_id(), "wh_1");
  EXPECT_EQ(request.delivery_id(), "wh_1.evt_lb_badge.earned/alice/first");

  RouteMatch patch = MatchRoute(Routes(), "PATCH", "/v1/webhooks/subscriptions/wh_1");
  ASSERT_NE(patch.route, nullptr);
  EXPECT_EQ(patch.route->grpc_method, "/integrations.v1.WebhookService/UpdateSubscription");
  RouteMatch rotate = MatchRoute(Routes(), "POST", "/v1/webhooks/subscriptions/wh_1:rotateSecret");
  ASSERT_NE(rotate.route, nullptr);
  EXPECT_EQ(rotate.route->grpc_method, "/integrations.v1.WebhookService/RotateSecret");
  RouteMatch deliveries =
      MatchRoute(Routes(), "GET", "/v1/webhooks/subscriptions/wh_1/deliveries");
  ASSERT_NE(deliveries.route, nullptr);
  EXPECT_EQ(deliveries.route->grpc_method, "/integrations.v1.WebhookService/ListDeliveries");
  for (const char* method : {"GET", "DELETE"}) {
    EXPECT_NE(MatchRoute(Routes(), method, "/v1/webhooks/subscriptions/wh_1").route, nullptr);
  }
  EXPECT_NE(MatchRoute(Routes(), "POST", "/v1/webhooks/subscriptions").route, nullptr);
  EXPECT_NE(MatchRoute(Routes(), "GET", "/v1/webhooks/subscriptions").route, nullptr);
}

TEST(RequestBuildTest, TimestampFieldsTakeRfc3339TextFromTheQuery) {
  kudos::v1::KudosEvent event;  // event_time is a google.protobuf.Timestamp
  ASSERT_TRUE(SetFieldFromText(&event, "event_time", "2026-11-01T10:00:00Z").ok());
  EXPECT_EQ(event.event_time().seconds(), 1793527200);
  ASSERT_TRUE(SetFieldFromText(&event, "eventTime", "2026-11-01T12:00:00+02:00").ok());
  EXPECT_EQ(event.event_time().seconds(), 1793527200);
  absl::Status bad = SetFieldFromText(&event, "event_time", "yesterday");
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("RFC 3339"), absl::string_view::npos) << bad;
}

TEST(IngressRulesTest, OnlyTheCsvImportTakesBodiesOver256KiB) {
  EXPECT_EQ(MaxBodyBytesFor("/v1/integrations/directory/import"), 2 * 1024 * 1024);
  EXPECT_EQ(MaxBodyBytesFor("/v1/kudos"), 256 * 1024);
  EXPECT_EQ(MaxBodyBytesFor("/scim/acme/v2/Users"), 256 * 1024);
  EXPECT_EQ(MaxBodyBytesFor("/v1/integrations/directory/import/x"), 256 * 1024);
  EXPECT_EQ(BodyTooLargeMessage("/v1/kudos"), "the body is larger than 256 KiB");
  EXPECT_EQ(BodyTooLargeMessage("/v1/integrations/directory/import"),
            "the body is larger than 2048 KiB");
}

TEST(IntegrationsRoutesTest, DirectorySyncAndAuditRoutesBuildTheirRequests) {
  RouteMatch revoke = MatchRoute(Routes(), "DELETE", "/v1/integrations/scim/tokens/tok_1");
  ASSERT_NE(revoke.route, nullptr);
  EXPECT_EQ(revoke.route->grpc_method, "/integrations.v1.DirectorySyncService/RevokeScimToken");
  integrations::v1::RevokeScimTokenRequest token;
  RequestInput revoke_input;
  revoke_input.path_params = revoke.path_params;
  ASSERT_TRUE(BuildRequest(*revoke.route, revoke_input, &token).ok());
  EXPECT_EQ(token.token_id(), "tok_1");

  RouteMatch import = MatchRoute(Routes(), "POST", "/v1/integrations/directory/import");
  ASSERT_NE(import.route, nullptr);
  integrations::v1::ImportDirectoryCsvRequest csv;
  RequestInput import_input;
  import_input.body = "{\"csv\":\"person_id,display_name\\nbob,Bob\\n\",\"dryRun\":true}";
  ASSERT_TRUE(BuildRequest(*import.route, import_input, &csv).ok());
  EXPECT_EQ(csv.csv(), "person_id,display_name\nbob,Bob\n");
  EXPECT_TRUE(csv.dry_run());
  EXPECT_NE(MatchRoute(Routes(), "POST", "/v1/integrations/scim/tokens").route, nullptr);
  EXPECT_NE(MatchRoute(Routes(), "GET", "/v1/integrations/scim/tokens").route, nullptr);

  RouteMatch audit = MatchRoute(Routes(), "GET", "/v1/audit-entries");
  ASSERT_NE(audit.route, nullptr);
  integrations::v1::ListAuditEntriesRequest entries;
  RequestInput audit_input;
  audit_input.query_params = ParseQuery(
      "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&actor=root&action=create_person"
      "&page_size=50");
  ASSERT_TRUE(BuildRequest(*audit.route, audit_input, &entries).ok());
  EXPECT_EQ(entries.from().seconds(), 1793491200);
  EXPECT_EQ(entries.to().seconds(), 1796083200);
  EXPECT_EQ(entries.actor(), "root");
  EXPECT_EQ(entries.action(), "create_person");
  EXPECT_EQ(entries.page_size(), 50);
}

TEST(IngressRulesTest, RequestKeepsMethodQueryBodyBytesAndLowerCasesHeaderNames) {
  const std::string body("token=x&text=%40bob+5\0\xff", 23);
  integrations::v1::HandleRequest request = BuildIngressRequest(
      "POST", "/scim/acme/v2/Users/u%201", "filter=userName%20eq%20%22bob%22",
      {{"X-Slack-Signature", "v0=ab"}, {"Content-Type", "application/scim+json"}}, body);
  EXPECT_EQ(request.method(), "POST");
  EXPECT_EQ(request.path(), "/scim/acme/v2/Users/u 1");
  EXPECT_EQ(request.query(), "filter=userName%20eq%20%22bob%22");
  ASSERT_EQ(request.headers_size(), 2);
  EXPECT_EQ(request.headers(0).name(), "x-slack-signature");
  EXPECT_EQ(request.headers(0).value(), "v0=ab");
  EXPECT_EQ(request.headers(1).name(), "content-type");
  EXPECT_EQ(request.body(), body);
}

TEST(IngressRulesTest, ResponseDropsFramingHeadersAndRefusesSplittingOrOddStatuses) {
  integrations::v1::HandleResponse response;
  response.set_status(201);
  response.set_body("{\"id\":\"u1\"}");
  auto add = [&](const std::string& name, const std::string& value) {
    integrations::v1::HttpHeader* header = response.add_headers();
    header->set_name(name);
    header->set_value(value);
  };
  add("Content-Type", "application/scim+json");
  add("ETag", "W/\"3\"");
  add("content-length", "999");
  add("Transfer-Encoding", "chunked");
  add("connection", "keep-alive");
  absl::StatusOr<IngressReply> reply = CheckIngressResponse(response);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, "{\"id\":\"u1\"}");
  ASSERT_EQ(reply->headers.size(), 2u);
  EXPECT_EQ(reply->headers[0].first, "Content-Type");
  EXPECT_EQ(reply->headers[1].second, "W/\"3\"");

  integrations::v1::HandleResponse split = response;
  split.mutable_headers(0)->set_value("text/plain\r\nSet-Cookie: a=b");
  EXPECT_FALSE(CheckIngressResponse(split).ok());
  integrations::v1::HandleResponse bad_name = response;
  bad_name.mutable_headers(0)->set_name("Content Type");
  EXPECT_FALSE(CheckIngressResponse(bad_name).ok());
  for (int status : {0, 101, 199, 600}) {
    integrations::v1::HandleResponse odd = response;
    odd.set_status(status);
    EXPECT_FALSE(CheckIngressResponse(odd).ok()) << status;
  }
}

}  // namespace
}  // namespace gateway
