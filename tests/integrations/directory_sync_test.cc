// Directory sync end to end: a real redis-server, the real ledger, kudos,
// integrations and gateway binaries over real gRPC and HTTP. SCIM requests
// go over HTTP through the gateway's /scim/ passthrough (without a gateway in
// the build: straight to integrations.v1.HttpIngressService/Handle, as the
// gateway would forward them); the CSV import through DirectorySyncService.
#include <gtest/gtest.h>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "common/redis/redis_client.h"
#include "integrations/v1/directory_sync.grpc.pb.h"
#include "integrations/v1/http_ingress.grpc.pb.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "services/integrations/directory_sync_csv.h"
#include "services/integrations/directory_sync_scim_store.h"
#include "services/integrations/slack_user_map.h"
#include "tests/harness/loopback.h"
#include "tests/harness/process.h"
#ifdef GATEWAY_BINARY
#include "tests/gateway/http_client.h"
#endif
#include "tests/harness/tokens.h"

namespace {

using google::protobuf::Struct;
using google::protobuf::Value;
using harness::Context;
using harness::MintToken;
using integrations::v1::DirectorySyncService;
using integrations::v1::HandleRequest;
using integrations::v1::HandleResponse;
using integrations::v1::HttpIngressService;

constexpr char kOrg[] = "acme";
constexpr char kUserSchema[] = "urn:ietf:params:scim:schemas:core:2.0:User";
constexpr char kEnterprise[] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

// RFC 7644 §3.3's example request.
constexpr char kBjensen[] = R"({
  "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
  "userName":"bjensen",
  "externalId":"bjensen",
  "name":{"formatted":"Ms. Barbara J Jensen III","familyName":"Jensen","givenName":"Barbara"}
})";

struct Http {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  Struct json;
};

Struct Parse(const std::string& text) {
  Struct json;
  if (!text.empty()) {
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(text, &json).ok()) << text;
  }
  return json;
}

const std::string& Str(const Struct& json, const std::string& key) {
  static const std::string kEmpty;
  auto it = json.fields().find(key);
  return it == json.fields().end() ? kEmpty : it->second.string_value();
}

std::string UserBody(const std::string& user_name, const std::string& manager = "") {
  std::string body = R"({"schemas":[")" + std::string(kUserSchema) + R"("],"userName":")" +
                     user_name + R"(","displayName":"Person )" + user_name + R"(","active":true)";
  if (!manager.empty()) {
    body += R"(,")" + std::string(kEnterprise) + R"(":{"manager":{"value":")" + manager + R"("}})";
  }
  return body + "}";
}

std::string Patch(const std::string& operations) {
  return R"({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":)" +
         operations + "}";
}

class DirectorySyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redis_ = std::make_unique<harness::RedisServer>();
    ledger_ = std::make_unique<harness::Service>(LEDGER_BINARY, redis_->address());
    kudos_ = std::make_unique<harness::Service>(
        KUDOS_BINARY, redis_->address(),
        std::vector<std::string>{"--ledger=" + ledger_->address(), "--survey_interval_s=0"});
    integrations_ = std::make_unique<harness::Service>(
        INTEGRATIONS_BINARY, redis_->address(),
        std::vector<std::string>{"--kudos=" + kudos_->address(), "--ledger=" + ledger_->address()});
    auto kudos_channel = grpc::CreateChannel(kudos_->address(), grpc::InsecureChannelCredentials());
    directory_ = kudos::v1::DirectoryService::NewStub(kudos_channel);
    kudos_stub_ = kudos::v1::KudosService::NewStub(kudos_channel);
    auto channel = grpc::CreateChannel(integrations_->address(), grpc::InsecureChannelCredentials());
    ingress_ = HttpIngressService::NewStub(channel);
#ifdef GATEWAY_BINARY
    const std::string unused = "127.0.0.1:" + std::to_string(harness::FreePort());
    gateway_ = std::make_unique<harness::Service>(
        GATEWAY_BINARY, redis_->address(),
        std::vector<std::string>{"--integrations=" + integrations_->address(),
                                 "--kudos=" + kudos_->address(), "--ledger=" + ledger_->address(),
                                 "--leaderboard=" + unused});
#endif
    sync_ = DirectorySyncService::NewStub(channel);
    admin_ = MintToken(kOrg, "root", {"admin"});
    common::redis::PoolOptions options;
    options.endpoint.port = redis_->port();
    options.size = 2;
    pool_ = std::make_unique<common::redis::Pool>(options);
    scim_token_ = NewScimToken(kOrg);
  }

  std::string NewScimToken(const std::string& org) {
    integrations::v1::CreateScimTokenRequest request;
    request.set_description("okta");
    integrations::v1::CreateScimTokenResponse response;
    grpc::Status status =
        sync_->CreateScimToken(Context(MintToken(org, "root", {"admin"})).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.base_path(), "/scim/" + org + "/v2");
    last_token_id_ = response.token_id();
    return response.token();
  }

  Http Call(const std::string& method, const std::string& path, const std::string& body = "",
            std::map<std::string, std::string> headers = {}, const std::string* token = nullptr) {
    if (headers.count("authorization") == 0) {
      headers["authorization"] = "Bearer " + (token != nullptr ? *token : scim_token_);
    }
    if (!body.empty()) headers["content-type"] = "application/scim+json";
    const std::string target = "/scim/" + std::string(kOrg) + "/v2" + path;
    Http http;
#ifdef GATEWAY_BINARY
    gwtest::HttpResponse response = gwtest::Http(gateway_->port(), method, target, body, headers);
    http.status = response.status;
    http.headers = response.headers;
    http.body = response.body;
#else
    HandleRequest request;
    request.set_method(method);
    size_t question = target.find('?');
    request.set_path(target.substr(0, question));
    if (question != std::string::npos) request.set_query(target.substr(question + 1));
    for (const auto& [name, value] : headers) {
      auto* header = request.add_headers();
      header->set_name(name);
      header->set_value(value);
    }
    request.set_body(body);
    HandleResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status status = ingress_->Handle(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    http.status = response.status();
    for (const auto& header : response.headers()) http.headers[header.name()] = header.value();
    http.body = response.body();
#endif
    http.json = Parse(http.body);
    return http;
  }

  std::optional<kudos::v1::Person> Person(const std::string& id) {
    kudos::v1::GetPersonRequest request;
    request.set_person_id(id);
    kudos::v1::GetPersonResponse response;
    grpc::Status status = directory_->GetPerson(Context(admin_).get(), request, &response);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) return std::nullopt;
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.person();
  }

  // Directory changes kudos recorded (its event stream counts every write).
  long long DirectoryEvents() {
    auto reply = pool_->Run({"XLEN", "kudos:{acme}:events"});
    EXPECT_TRUE(reply.ok());
    return reply.ok() ? reply->integer : -1;
  }

  void ExpectScimError(const Http& http, int status, const std::string& scim_type) {
    EXPECT_EQ(http.status, status) << http.body;
    ASSERT_TRUE(http.json.fields().count("schemas")) << http.body;
    EXPECT_EQ(http.json.fields().at("schemas").list_value().values(0).string_value(),
              "urn:ietf:params:scim:api:messages:2.0:Error");
    EXPECT_EQ(Str(http.json, "status"), std::to_string(status));
    if (!scim_type.empty()) {
      EXPECT_EQ(Str(http.json, "scimType"), scim_type) << http.body;
    }
  }

  grpc::Status Import(const std::string& csv, bool dry_run,
                      integrations::v1::ImportDirectoryCsvResponse* response,
                      const std::string& token = "") {
    integrations::v1::ImportDirectoryCsvRequest request;
    request.set_csv(csv);
    request.set_dry_run(dry_run);
    return sync_->ImportDirectoryCsv(Context(token.empty() ? admin_ : token, std::chrono::seconds(60)).get(),
                                     request, response);
  }

  std::unique_ptr<harness::RedisServer> redis_;
  std::unique_ptr<harness::Service> ledger_;
  std::unique_ptr<harness::Service> kudos_;
  std::unique_ptr<harness::Service> integrations_;
  std::unique_ptr<harness::Service> gateway_;
  std::unique_ptr<kudos::v1::DirectoryService::Stub> directory_;
  std::unique_ptr<kudos::v1::KudosService::Stub> kudos_stub_;
  std::unique_ptr<HttpIngressService::Stub> ingress_;
  std::unique_ptr<DirectorySyncService::Stub> sync_;
  std::unique_ptr<common::redis::Pool> pool_;
  std::string admin_;
  std::string scim_token_;
  std::string last_token_id_;
};

TEST_F(DirectorySyncTest, Scim_RfcCreateUserMakesThePersonAndGetReturnsWhatWasPut) {
  Http created = Call("POST", "/Users", kBjensen);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Str(created.json, "id"), "bjensen");
  EXPECT_EQ(created.headers["location"], "/scim/acme/v2/Users/bjensen");
  EXPECT_EQ(created.headers["content-type"], "application/scim+json");
  ASSERT_FALSE(created.headers["etag"].empty());
  EXPECT_EQ(created.headers["etag"].substr(0, 3), "W/\"");
  std::optional<kudos::v1::Person> person = Person("bjensen");
  ASSERT_TRUE(person.has_value());
  EXPECT_EQ(person->display_name(), "Ms. Barbara J Jensen III");
  EXPECT_TRUE(person->active());

  Http got = Call("GET", "/Users/bjensen");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Str(got.json, "userName"), "bjensen");
  EXPECT_EQ(Str(got.json, "externalId"), "bjensen");
  EXPECT_EQ(got.json.fields().at("name").struct_value().fields().at("givenName").string_value(),
            "Barbara");
  EXPECT_TRUE(got.json.fields().at("active").bool_value());
  const Struct& meta = got.json.fields().at("meta").struct_value();
  EXPECT_EQ(Str(meta, "resourceType"), "User");
  EXPECT_EQ(Str(meta, "version"), got.headers["etag"]);
  EXPECT_EQ(got.headers["etag"], created.headers["etag"]);
}

TEST_F(DirectorySyncTest, Scim_PasswordIsNeverStoredNorReturned) {
  Http created = Call("POST", "/Users", R"({"userName":"pat","password":"t1meMa$heen"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json.fields().count("password"), 0u);
  EXPECT_EQ(Call("GET", "/Users/pat").body.find("t1meMa"), std::string::npos);
  auto stored = pool_->Run({"HGET", "integrations:{acme}:scim:user:pat", "res"});
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(stored->str.empty());
  EXPECT_EQ(stored->str.find("t1meMa"), std::string::npos);
}

TEST_F(DirectorySyncTest, Scim_SameUserNameTwiceIsUniquenessAndChangesNothing) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  long long events = DirectoryEvents();
  ExpectScimError(Call("POST", "/Users", UserBody("BJensen")), 409, "uniqueness");
  EXPECT_EQ(DirectoryEvents(), events);
}

TEST_F(DirectorySyncTest, Scim_FilterUserNameEqAndExternalIdEqFindTheUser) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  ASSERT_EQ(Call("POST", "/Users", UserBody("other")).status, 201);
  // RFC 7644 §3.4.2.2, as an identity provider sends it.
  Http found = Call("GET", "/Users?filter=userName%20eq%20%22bjensen%22");
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(found.json.fields().at("schemas").list_value().values(0).string_value(),
            "urn:ietf:params:scim:api:messages:2.0:ListResponse");
  EXPECT_EQ(found.json.fields().at("totalResults").number_value(), 1);
  ASSERT_EQ(found.json.fields().at("Resources").list_value().values_size(), 1);
  EXPECT_EQ(Str(found.json.fields().at("Resources").list_value().values(0).struct_value(), "id"),
            "bjensen");
  Http by_external = Call("GET", "/Users?filter=externalId+eq+%22bjensen%22");
  EXPECT_EQ(by_external.json.fields().at("totalResults").number_value(), 1);
  Http none = Call("GET", "/Users?filter=userName%20eq%20%22nobody%22");
  ASSERT_EQ(none.status, 200);
  EXPECT_EQ(none.json.fields().at("totalResults").number_value(), 0);
}

TEST_F(DirectorySyncTest, Scim_UnknownFilterIs400InvalidFilter) {
  ExpectScimError(Call("GET", "/Users?filter=userName%20co%20%22b%22"), 400, "invalidFilter");
  ExpectScimError(Call("GET", "/Users?filter=emails%20eq%20%22b%40x%22"), 400, "invalidFilter");
  ExpectScimError(Call("GET", "/Groups?filter=displayName%20eq%20%22a%22%20or%20id%20eq%20%22b%22"),
                  400, "invalidFilter");
}

TEST_F(DirectorySyncTest, Scim_PagingWithStartIndexAndCountCoversEveryUserOnce) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Call("POST", "/Users", UserBody("u" + std::to_string(i))).status, 201);
  std::multiset<std::string> seen;
  for (int start : {1, 3, 5}) {
    Http page = Call("GET", "/Users?startIndex=" + std::to_string(start) + "&count=2");
    ASSERT_EQ(page.status, 200) << page.body;
    EXPECT_EQ(page.json.fields().at("totalResults").number_value(), 5);
    EXPECT_EQ(page.json.fields().at("startIndex").number_value(), start);
    EXPECT_EQ(page.json.fields().at("itemsPerPage").number_value(), start == 5 ? 1 : 2);
    for (const Value& user : page.json.fields().at("Resources").list_value().values()) {
      seen.insert(Str(user.struct_value(), "id"));
    }
  }
  EXPECT_EQ(seen, (std::multiset<std::string>{"u0", "u1", "u2", "u3", "u4"}));
  Http count_only = Call("GET", "/Users?count=0");
  EXPECT_EQ(count_only.json.fields().at("totalResults").number_value(), 5);
  EXPECT_EQ(count_only.json.fields().at("itemsPerPage").number_value(), 0);
}

TEST_F(DirectorySyncTest, Scim_PatchReplaceActiveFalseDeactivatesAndKudosToThemIsRefused) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  ASSERT_EQ(Call("POST", "/Users", UserBody("alice")).status, 201);
  // Entra ID's form: no path, a value object.
  Http patched = Call("PATCH", "/Users/bjensen", Patch(R"([{"op":"replace","value":{"active":false}}])"));
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_FALSE(patched.json.fields().at("active").bool_value());
  EXPECT_FALSE(Person("bjensen")->active());

  kudos::v1::SendKudosRequest request;
  request.set_request_id("k1");
  request.add_recipient_ids("bjensen");
  request.set_message("Thanks for the quick fix");
  request.add_values("teamwork");
  request.set_points_per_recipient(5);
  kudos::v1::SendKudosResponse response;
  grpc::Status sent = kudos_stub_->SendKudos(Context(MintToken(kOrg, "alice")).get(), request, &response);
  EXPECT_EQ(sent.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << sent.error_message();
  EXPECT_NE(sent.error_message().find("not active"), std::string::npos);

  // Okta's form reactivates.
  Http back = Call("PATCH", "/Users/bjensen", Patch(R"([{"op":"replace","path":"active","value":true}])"));
  ASSERT_EQ(back.status, 200) << back.body;
  EXPECT_TRUE(Person("bjensen")->active());
}

TEST_F(DirectorySyncTest, Scim_RfcPatchExamplesAddReplaceRemove) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  // §3.5.2.1: add without a path.
  Http added = Call("PATCH", "/Users/bjensen", Patch(R"([{"op":"add","value":{
      "emails":[{"value":"babs@jensen.org","type":"home"}],"nickName":"Babs"}}])"));
  ASSERT_EQ(added.status, 200) << added.body;
  // §3.5.2.3: replace a sub-attribute and a filtered element's sub-attribute.
  Http replaced = Call("PATCH", "/Users/bjensen", Patch(R"([
      {"op":"replace","path":"name.formatted","value":"Babs Jensen"},
      {"op":"replace","path":"emails[type eq \"home\"].value","value":"babs@example.org"}])"));
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(Person("bjensen")->display_name(), "Babs Jensen");
  Http got = Call("GET", "/Users/bjensen");
  EXPECT_EQ(Str(got.json, "nickName"), "Babs");
  const auto& emails = got.json.fields().at("emails").list_value().values();
  ASSERT_EQ(emails.size(), 1);
  EXPECT_EQ(Str(emails[0].struct_value(), "value"), "babs@example.org");
  // §3.5.2.2: remove a filtered element.
  Http removed = Call("PATCH", "/Users/bjensen",
                      Patch(R"([{"op":"remove","path":"emails[type eq \"home\"]"}])"));
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_TRUE(removed.json.fields().at("emails").list_value().values().empty());
}

TEST_F(DirectorySyncTest, Scim_IfMatchMismatchIs412AndChangesNothing) {
  Http created = Call("POST", "/Users", kBjensen);
  ASSERT_EQ(created.status, 201);
  std::string etag = created.headers["etag"];
  long long events = DirectoryEvents();
  Http refused = Call("PUT", "/Users/bjensen", UserBody("bjensen"), {{"if-match", "W/\"0000000000000000\""}});
  ExpectScimError(refused, 412, "");
  EXPECT_EQ(DirectoryEvents(), events);
  EXPECT_EQ(Call("GET", "/Users/bjensen").headers["etag"], etag);
  ExpectScimError(Call("PATCH", "/Users/bjensen", Patch(R"([{"op":"replace","value":{"active":false}}])"),
                       {{"if-match", "W/\"0000000000000000\""}}),
                  412, "");
  EXPECT_TRUE(Person("bjensen")->active());

  Http replaced = Call("PUT", "/Users/bjensen", UserBody("bjensen"), {{"if-match", etag}});
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_NE(replaced.headers["etag"], etag);
  EXPECT_EQ(Person("bjensen")->display_name(), "Person bjensen");
  // A PUT replaces: the RFC example's name and externalId are gone.
  Http got = Call("GET", "/Users/bjensen");
  EXPECT_EQ(got.json.fields().count("name"), 0u);
  EXPECT_EQ(got.json.fields().count("externalId"), 0u);
}

TEST_F(DirectorySyncTest, Scim_ManagerFromTheEnterpriseExtension) {
  ASSERT_EQ(Call("POST", "/Users", UserBody("boss")).status, 201);
  Http created = Call("POST", "/Users", UserBody("report", "boss"));
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Person("report")->manager_id(), "boss");
  const Struct& extension = created.json.fields().at(kEnterprise).struct_value();
  EXPECT_EQ(Str(extension.fields().at("manager").struct_value(), "value"), "boss");
  // Removing the manager by path.
  Http removed = Call("PATCH", "/Users/report", Patch(std::string(R"([{"op":"remove","path":")") +
                                                       kEnterprise + R"(:manager"}])"));
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(Person("report")->manager_id(), "");
  // An unknown manager is the client's invalidValue; nothing is made.
  long long events = DirectoryEvents();
  ExpectScimError(Call("POST", "/Users", UserBody("orphan", "nobody")), 400, "invalidValue");
  EXPECT_FALSE(Person("orphan").has_value());
  EXPECT_EQ(Call("GET", "/Users?filter=userName%20eq%20%22orphan%22").json.fields().at("totalResults").number_value(), 0);
  EXPECT_EQ(DirectoryEvents(), events);
}

TEST_F(DirectorySyncTest, Scim_GroupsAreTeamsAndPatchMovesMembers) {
  for (const char* name : {"ann", "ben", "cid"}) ASSERT_EQ(Call("POST", "/Users", UserBody(name)).status, 201);
  Http group = Call("POST", "/Groups", R"({"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "displayName":"Tour Guides","members":[{"value":"ann"},{"value":"ben"}]})");
  ASSERT_EQ(group.status, 201) << group.body;
  std::string id = Str(group.json, "id");
  EXPECT_EQ(id, "Tour_Guides");
  EXPECT_EQ(Person("ann")->team_id(), id);
  EXPECT_EQ(Person("ben")->team_id(), id);
  EXPECT_EQ(group.json.fields().at("members").list_value().values_size(), 2);
  // RFC 7644 §3.5.2.1 (add a member) and §3.5.2.2 (remove one by filter).
  Http patched = Call("PATCH", "/Groups/" + id, Patch(R"([
      {"op":"add","path":"members","value":[{"display":"cid","value":"cid"}]},
      {"op":"remove","path":"members[value eq \"ann\"]"}])"));
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(Person("cid")->team_id(), id);
  EXPECT_EQ(Person("ann")->team_id(), "");
  std::set<std::string> members;
  for (const Value& m : patched.json.fields().at("members").list_value().values()) {
    members.insert(Str(m.struct_value(), "value"));
  }
  EXPECT_EQ(members, (std::set<std::string>{"ben", "cid"}));
  // The user shows its group.
  Http ben = Call("GET", "/Users/ben");
  EXPECT_EQ(Str(ben.json.fields().at("groups").list_value().values(0).struct_value(), "value"), id);
  // A member that is no User: invalidValue, nothing moved.
  ExpectScimError(Call("PATCH", "/Groups/" + id,
                       Patch(R"([{"op":"add","path":"members","value":[{"value":"ghost"}]},
                                 {"op":"remove","path":"members[value eq \"ben\"]"}])")),
                  400, "invalidValue");
  EXPECT_EQ(Person("ben")->team_id(), id);
  Http by_name = Call("GET", "/Groups?filter=displayName%20eq%20%22Tour%20Guides%22&excludedAttributes=members");
  ASSERT_EQ(by_name.status, 200) << by_name.body;
  EXPECT_EQ(by_name.json.fields().at("totalResults").number_value(), 1);
  EXPECT_EQ(by_name.json.fields().at("Resources").list_value().values(0).struct_value().fields().count("members"), 0u);
  // Deleting the group empties the team.
  EXPECT_EQ(Call("DELETE", "/Groups/" + id).status, 204);
  EXPECT_EQ(Person("ben")->team_id(), "");
  EXPECT_EQ(Call("GET", "/Groups/" + id).status, 404);
}

TEST_F(DirectorySyncTest, Scim_DeleteDeactivatesKeepsThePersonAndTheUserIsGone) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  EXPECT_EQ(Call("DELETE", "/Users/bjensen").status, 204);
  ASSERT_TRUE(Person("bjensen").has_value());
  EXPECT_FALSE(Person("bjensen")->active());
  ExpectScimError(Call("GET", "/Users/bjensen"), 404, "");
  // Provisioned again: the same person comes back active, its history kept.
  Http again = Call("POST", "/Users", kBjensen);
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(Str(again.json, "id"), "bjensen");
  EXPECT_TRUE(Person("bjensen")->active());
}

TEST_F(DirectorySyncTest, Scim_BadTokenIs401AndChangesNothing) {
  long long events = DirectoryEvents();
  std::string wrong = "scim_not-a-token";
  ExpectScimError(Call("POST", "/Users", kBjensen, {}, &wrong), 401, "");
  ExpectScimError(Call("GET", "/Users", "", {{"authorization", "Basic abc"}}), 401, "");
  // A token of another org is no token here.
  std::string other = NewScimToken("globex");
  ExpectScimError(Call("POST", "/Users", kBjensen, {}, &other), 401, "");
  EXPECT_EQ(Call("POST", "/Users", kBjensen, {}, &other).headers["www-authenticate"], "Bearer realm=\"scim\"");
  EXPECT_EQ(DirectoryEvents(), events);
  EXPECT_FALSE(Person("bjensen").has_value());
  // A revoked token stops working.
  std::string revoked = NewScimToken(kOrg);
  ASSERT_EQ(Call("GET", "/Users", "", {}, &revoked).status, 200);
  integrations::v1::RevokeScimTokenRequest request;
  request.set_token_id(last_token_id_);
  integrations::v1::RevokeScimTokenResponse response;
  ASSERT_TRUE(sync_->RevokeScimToken(Context(admin_).get(), request, &response).ok());
  ExpectScimError(Call("GET", "/Users", "", {}, &revoked), 401, "");
  EXPECT_EQ(Call("GET", "/Users").status, 200);
}

TEST_F(DirectorySyncTest, Scim_MalformedBodyIs400InvalidSyntaxAndChangesNothing) {
  ASSERT_EQ(Call("POST", "/Users", kBjensen).status, 201);
  long long events = DirectoryEvents();
  ExpectScimError(Call("POST", "/Users", R"({"userName": "x",)"), 400, "invalidSyntax");
  ExpectScimError(Call("PUT", "/Users/bjensen", "[1]"), 400, "invalidSyntax");
  ExpectScimError(Call("PATCH", "/Users/bjensen", R"({"Operations": "nope"})"), 400, "invalidSyntax");
  ExpectScimError(Call("POST", "/Users", R"({"displayName":"no userName"})"), 400, "invalidValue");
  ExpectScimError(Call("POST", "/Users", R"({"userName":"x","active":"maybe"})"), 400, "invalidValue");
  EXPECT_EQ(DirectoryEvents(), events);
  EXPECT_FALSE(Person("x").has_value());
}

TEST_F(DirectorySyncTest, Scim_DiscoveryEndpointsAnswerValidScim) {
  Http config = Call("GET", "/ServiceProviderConfig");
  ASSERT_EQ(config.status, 200) << config.body;
  EXPECT_TRUE(config.json.fields().at("patch").struct_value().fields().at("supported").bool_value());
  EXPECT_TRUE(config.json.fields().at("etag").struct_value().fields().at("supported").bool_value());
  Http types = Call("GET", "/ResourceTypes");
  ASSERT_EQ(types.status, 200);
  EXPECT_EQ(types.json.fields().at("totalResults").number_value(), 2);
  Http schemas = Call("GET", "/Schemas");
  ASSERT_EQ(schemas.status, 200);
  EXPECT_EQ(schemas.json.fields().at("Resources").list_value().values_size(), 3);
  ExpectScimError(Call("GET", "/Nope"), 404, "");
}

TEST_F(DirectorySyncTest, ScimTokens_AtMostFivePerOrgAndOnlyAdminsMakeThem) {
  // SetUp made one.
  for (int i = 0; i < 4; ++i) NewScimToken(kOrg);
  integrations::v1::CreateScimTokenRequest request;
  integrations::v1::CreateScimTokenResponse response;
  grpc::Status sixth = sync_->CreateScimToken(Context(admin_).get(), request, &response);
  EXPECT_EQ(sixth.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(sixth.error_message().find("at most 5"), std::string::npos) << sixth.error_message();
  grpc::Status member = sync_->CreateScimToken(Context(MintToken(kOrg, "bob")).get(), request, &response);
  EXPECT_EQ(member.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  integrations::v1::ListScimTokensResponse listed;
  ASSERT_TRUE(sync_->ListScimTokens(Context(admin_).get(), {}, &listed).ok());
  EXPECT_EQ(listed.tokens_size(), 5);
  // The store keeps digests only: no token text anywhere in Redis.
  auto stored = pool_->Run({"HVALS", "integrations:{acme}:scim:tokens"});
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->elements.size(), 5u);
  for (const auto& digest : stored->elements) {
    EXPECT_EQ(digest.str.size(), 64u);
    EXPECT_EQ(digest.str.find_first_not_of("0123456789abcdef"), std::string::npos);
  }
}

TEST_F(DirectorySyncTest, ScimStore_UserBoundIsHit) {
  integrations::ScimLimits limits;
  limits.max_users = 2;
  integrations::ScimStore store(*pool_, limits);
  absl::Time now = absl::Now();
  ASSERT_TRUE(store.Put(kOrg, integrations::ScimKind::kUser, "a", "{}", "a", "", true, now).ok());
  ASSERT_TRUE(store.Put(kOrg, integrations::ScimKind::kUser, "b", "{}", "b", "", true, now).ok());
  absl::Status third = store.Put(kOrg, integrations::ScimKind::kUser, "c", "{}", "c", "", true, now);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  // Replacing an existing one is no new resource.
  EXPECT_TRUE(store.Put(kOrg, integrations::ScimKind::kUser, "b", "{}", "b2", "", false, now).ok());
}

TEST_F(DirectorySyncTest, ScimStore_GroupBoundIsHit) {
  integrations::ScimLimits limits;
  limits.max_groups = 1;
  integrations::ScimStore store(*pool_, limits);
  absl::Time now = absl::Now();
  ASSERT_TRUE(store.Put(kOrg, integrations::ScimKind::kGroup, "g1", "{}", "G1", "", true, now).ok());
  absl::Status second = store.Put(kOrg, integrations::ScimKind::kGroup, "g2", "{}", "G2", "", true, now);
  EXPECT_EQ(second.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(second.message().find("at most 1"), absl::string_view::npos) << second;
}

TEST_F(DirectorySyncTest, Scim_MembersPastTheBoundAndABodyPastTheBoundAreRefused) {
  ASSERT_EQ(Call("POST", "/Users", UserBody("ann")).status, 201);
  long long events = DirectoryEvents();
  std::string members;
  for (int i = 0; i <= 10000; ++i) members += std::string(i ? "," : "") + "{\"value\":\"p" + std::to_string(i) + "\"}";
  ExpectScimError(Call("POST", "/Groups", R"({"displayName":"Big","members":[)" + members + "]}"), 400,
                  "tooMany");
  // Straight to the ingress (the gateway itself stops bodies past 256 KiB).
  HandleRequest request;
  request.set_method("POST");
  request.set_path("/scim/acme/v2/Users");
  auto* header = request.add_headers();
  header->set_name("authorization");
  header->set_value("Bearer " + scim_token_);
  request.set_body(R"({"userName":"big","nickName":")" + std::string(256 * 1024, 'x') + R"("})");
  HandleResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ASSERT_TRUE(ingress_->Handle(&context, request, &response).ok());
  EXPECT_EQ(response.status(), 400);
  EXPECT_NE(response.body().find("tooMany"), std::string::npos) << response.body();
  EXPECT_EQ(DirectoryEvents(), events);
  EXPECT_FALSE(Person("big").has_value());
  EXPECT_EQ(Call("GET", "/Groups?count=0").json.fields().at("totalResults").number_value(), 0);
}

constexpr char kCsv[] =
    "kind,person_id,display_name,team_id,manager_id,time_zone,active\n"
    "team,,Engineering,eng,,,\n"
    "person,carol,Carol C,eng,dave,Europe/Paris,true\n"
    "person,dave,\"Dave, the boss\",eng,,,\n"
    "person,erin,Erin E,,dave,,false\n";

TEST_F(DirectorySyncTest, Csv_DryRunReportsEveryRowAndChangesNothing) {
  long long events = DirectoryEvents();
  integrations::v1::ImportDirectoryCsvResponse report;
  grpc::Status status = Import(std::string(kCsv) + "person,bad id,X,,,,\nperson,fay,Fay,nope,,,\n", true, &report);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(report.dry_run());
  ASSERT_EQ(report.rows_size(), 6);
  std::vector<int> lines;
  for (const auto& row : report.rows()) lines.push_back(row.row());
  EXPECT_EQ(lines, (std::vector<int>{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(report.rows(0).action(), integrations::v1::IMPORT_ACTION_CREATED);
  EXPECT_EQ(report.rows(1).action(), integrations::v1::IMPORT_ACTION_CREATED);
  EXPECT_EQ(report.rows(4).action(), integrations::v1::IMPORT_ACTION_ERROR);
  EXPECT_NE(report.rows(4).message().find("person_id"), std::string::npos) << report.rows(4).message();
  EXPECT_EQ(report.rows(5).action(), integrations::v1::IMPORT_ACTION_ERROR);
  EXPECT_NE(report.rows(5).message().find("team 'nope'"), std::string::npos) << report.rows(5).message();
  EXPECT_EQ(report.created(), 4);
  EXPECT_EQ(report.errors(), 2);
  EXPECT_EQ(DirectoryEvents(), events);
  EXPECT_FALSE(Person("dave").has_value());
}

TEST_F(DirectorySyncTest, Csv_RealRunWritesAndReimportingTheSameFileChangesNothing) {
  integrations::v1::ImportDirectoryCsvResponse first;
  ASSERT_TRUE(Import(kCsv, false, &first).ok());
  EXPECT_EQ(first.created(), 4);
  EXPECT_EQ(first.errors(), 0);
  std::optional<kudos::v1::Person> carol = Person("carol");
  ASSERT_TRUE(carol.has_value());
  EXPECT_EQ(carol->manager_id(), "dave");
  EXPECT_EQ(carol->team_id(), "eng");
  EXPECT_EQ(carol->time_zone(), "Europe/Paris");
  EXPECT_EQ(Person("dave")->display_name(), "Dave, the boss");
  EXPECT_FALSE(Person("erin")->active());

  long long events = DirectoryEvents();
  integrations::v1::ImportDirectoryCsvResponse second;
  ASSERT_TRUE(Import(kCsv, false, &second).ok());
  EXPECT_EQ(second.unchanged(), 4);
  EXPECT_EQ(second.created() + second.updated() + second.errors(), 0);
  EXPECT_EQ(DirectoryEvents(), events);

  // One change: one update naming the field.
  integrations::v1::ImportDirectoryCsvResponse third;
  std::string changed = kCsv;
  changed.replace(changed.find("Erin E,,dave,,false"), 19, "Erin E,,dave,,true");
  ASSERT_TRUE(Import(changed, false, &third).ok());
  EXPECT_EQ(third.updated(), 1);
  EXPECT_EQ(third.rows(3).message(), "active");
  EXPECT_TRUE(Person("erin")->active());
}

TEST_F(DirectorySyncTest, Csv_PastTheRowBoundIsInvalidArgumentNamingTheLimit) {
  std::string csv = "person_id,display_name\n";
  for (int i = 0; i < 5001; ++i) csv += "p" + std::to_string(i) + ",P\n";
  long long events = DirectoryEvents();
  integrations::v1::ImportDirectoryCsvResponse report;
  grpc::Status status = Import(csv, false, &report);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("at most 5000"), std::string::npos) << status.error_message();
  EXPECT_EQ(DirectoryEvents(), events);
  std::string big(integrations::kMaxCsvBytes + 1, 'x');
  status = Import(big, true, &report);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("at most 1048576"), std::string::npos) << status.error_message();
}

TEST_F(DirectorySyncTest, Csv_ExactlyTheRowBoundIsAcceptedAndAppliedOnce) {
  std::string csv = "kind,person_id,display_name,team_id\nteam,,Sales,sales\n";
  for (int i = 0; i < 4999; ++i) csv += "person,p" + std::to_string(i) + ",Person " + std::to_string(i) + ",sales\n";
  integrations::v1::ImportDirectoryCsvResponse report;
  auto started = std::chrono::steady_clock::now();
  grpc::Status status = Import(csv, false, &report);
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(report.created(), 5000);
  EXPECT_EQ(report.errors(), 0);
  std::printf("5000-row import: %lld ms\n", static_cast<long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
  started = std::chrono::steady_clock::now();
  ASSERT_TRUE(Import(csv, false, &report).ok());
  elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(report.unchanged(), 5000);
  std::printf("5000-row re-import (unchanged): %lld ms\n", static_cast<long long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()));
}

TEST_F(DirectorySyncTest, Csv_SlackUserIdLinksTheSlackUserOnceAndADryRunLinksNothing) {
  const std::string csv =
      "person_id,display_name,slack_user_id\n"
      "gus,Gus G,U0GUS\n"
      "hal,Hal H,\n";
  integrations::v1::ImportDirectoryCsvResponse report;
  ASSERT_TRUE(Import(csv, true, &report).ok());
  EXPECT_EQ(report.created(), 2);
  std::vector<std::string> ids = {"U0GUS"};
  auto linked = integrations::LookupSlackUsers(*pool_, kOrg, ids);
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_FALSE((*linked)[0].has_value());

  ASSERT_TRUE(Import(csv, false, &report).ok());
  EXPECT_EQ(report.created(), 2);
  linked = integrations::LookupSlackUsers(*pool_, kOrg, ids);
  ASSERT_TRUE(linked.ok());
  ASSERT_TRUE((*linked)[0].has_value());
  EXPECT_EQ(*(*linked)[0], "gus");
  ASSERT_TRUE(Import(csv, false, &report).ok());
  EXPECT_EQ(report.unchanged(), 2);

  // Moving the link to hal is an update of hal's row, naming the column.
  ASSERT_TRUE(Import("person_id,display_name,slack_user_id\nhal,Hal H,U0GUS\n", false, &report).ok());
  EXPECT_EQ(report.updated(), 1);
  EXPECT_EQ(report.rows(0).message(), "slack_user_id");
  linked = integrations::LookupSlackUsers(*pool_, kOrg, ids);
  EXPECT_EQ(*(*linked)[0], "hal");
  // The same Slack user twice in one file: the second row is an error.
  ASSERT_TRUE(Import("person_id,display_name,slack_user_id\ngus,Gus G,U1\nhal,Hal H,U1\n", true, &report).ok());
  EXPECT_EQ(report.rows(1).action(), integrations::v1::IMPORT_ACTION_ERROR);
  EXPECT_NE(report.rows(1).message().find("slack_user_id"), std::string::npos);
}

#ifdef GATEWAY_BINARY
// The admin RPCs through the gateway's JSON routes, with the admin's JWT.
TEST_F(DirectorySyncTest, Gateway_AdminMakesAScimTokenAndImportsCsvOverJson) {
  const std::map<std::string, std::string> admin = {{"authorization", "Bearer " + admin_},
                                                    {"content-type", "application/json"}};
  gwtest::HttpResponse made = gwtest::Http(gateway_->port(), "POST", "/v1/integrations/scim/tokens",
                                           R"({"description":"entra"})", admin);
  ASSERT_EQ(made.status, 200) << made.body;
  Struct token = Parse(made.body);
  EXPECT_EQ(Str(token, "basePath"), "/scim/acme/v2");
  std::string scim = Str(token, "token");
  Http listed = Call("GET", "/Users", "", {}, &scim);
  EXPECT_EQ(listed.status, 200) << listed.body;
  gwtest::HttpResponse tokens = gwtest::Http(gateway_->port(), "GET", "/v1/integrations/scim/tokens", "", admin);
  ASSERT_EQ(tokens.status, 200) << tokens.body;
  EXPECT_EQ(tokens.body.find(scim), std::string::npos);  // never read back

  long long events = DirectoryEvents();
  gwtest::HttpResponse dry = gwtest::Http(gateway_->port(), "POST", "/v1/integrations/directory/import",
                                          R"({"csv":"person_id,display_name\nivy,Ivy\n","dryRun":true})", admin);
  ASSERT_EQ(dry.status, 200) << dry.body;
  EXPECT_EQ(Parse(dry.body).fields().at("created").number_value(), 1);
  EXPECT_EQ(DirectoryEvents(), events);
  gwtest::HttpResponse member = gwtest::Http(
      gateway_->port(), "POST", "/v1/integrations/directory/import",
      R"({"csv":"person_id,display_name\nivy,Ivy\n"})",
      {{"authorization", "Bearer " + MintToken(kOrg, "bob")}, {"content-type", "application/json"}});
  EXPECT_EQ(member.status, 403) << member.body;
  EXPECT_FALSE(Person("ivy").has_value());
}
#endif

TEST_F(DirectorySyncTest, Csv_OnlyAdminsImportAndAnUnknownColumnIsRefused) {
  integrations::v1::ImportDirectoryCsvResponse report;
  EXPECT_EQ(Import(kCsv, true, &report, MintToken(kOrg, "bob")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status status = Import("person_id,display_name,email\np,P,x@y\n", true, &report);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("email"), std::string::npos);
}

}  // namespace
