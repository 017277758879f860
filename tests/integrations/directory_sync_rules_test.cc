// Directory sync's plain parts without servers: SCIM filters, PATCH
// operations (RFC 7644 §3.5.2's examples), ids from names, the CSV reader.
#include <gtest/gtest.h>

#include "services/integrations/directory_sync_csv.h"
#include "services/integrations/directory_sync_scim.h"
#include "services/integrations/directory_sync_scim_json.h"

namespace integrations {
namespace {

using scim::Struct;

Struct Json(const std::string& text) {
  absl::StatusOr<Struct> parsed = scim::ParseObject(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : Struct();
}

TEST(ScimFilter, UserNameEqParsesTheQuotedValueCaseInsensitiveAttributeAndOperator) {
  absl::StatusOr<scim::EqFilter> filter = scim::ParseEqFilter("UserName EQ \"bjensen@example.com\"");
  ASSERT_TRUE(filter.ok()) << filter.status();
  EXPECT_EQ(filter->attribute, "username");
  EXPECT_EQ(filter->value, "bjensen@example.com");
  filter = scim::ParseEqFilter(R"(externalId eq "a\"b")");
  ASSERT_TRUE(filter.ok());
  EXPECT_EQ(filter->value, "a\"b");
}

TEST(ScimFilter, OtherOperatorsAndLogicalExpressionsAreInvalidFilter) {
  for (const char* text : {"userName co \"b\"", "userName sw \"b\"", "userName pr",
                           "userName eq \"a\" and active eq \"true\"", "userName eq b", ""}) {
    absl::StatusOr<scim::EqFilter> filter = scim::ParseEqFilter(text);
    ASSERT_FALSE(filter.ok()) << text;
    EXPECT_EQ(filter.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(scim::ScimType(filter.status()), "invalidFilter") << text;
  }
}

TEST(ScimPatch, RfcAddWithoutPathMergesAttributesAndAppendsToMultiValued) {
  Struct user = Json(R"({"userName":"bjensen","emails":[{"value":"bjensen@example.com","type":"work"}]})");
  // RFC 7644 §3.5.2.1.
  Struct patch = Json(R"({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations":[{"op":"add","value":{"emails":[{"value":"babs@jensen.org","type":"home"}],
                                       "nickname":"Babs"}}]})");
  ASSERT_TRUE(scim::ApplyPatch(patch, scim::kUserSchema, user).ok());
  EXPECT_EQ(user.fields().at("emails").list_value().values_size(), 2);
  EXPECT_EQ(user.fields().at("nickname").string_value(), "Babs");
}

TEST(ScimPatch, RfcReplaceAndRemoveWithValuePathsAndSubAttributes) {
  Struct user = Json(R"({"userName":"bjensen","name":{"givenName":"Barbara"},
    "emails":[{"value":"w@example.com","type":"work"},{"value":"h@example.com","type":"home"}]})");
  Struct patch = Json(R"({"Operations":[
    {"op":"Replace","path":"name.givenName","value":"Babs"},
    {"op":"replace","path":"emails[type eq \"work\"].value","value":"w2@example.com"},
    {"op":"remove","path":"emails[type eq \"home\"]"}]})");
  absl::Status applied = scim::ApplyPatch(patch, scim::kUserSchema, user);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(user.fields().at("name").struct_value().fields().at("givenName").string_value(), "Babs");
  const auto& emails = user.fields().at("emails").list_value().values();
  ASSERT_EQ(emails.size(), 1);
  EXPECT_EQ(emails[0].struct_value().fields().at("value").string_value(), "w2@example.com");
}

TEST(ScimPatch, ReplaceActiveFalseWithoutPathAndEnterpriseManagerPath) {
  Struct user = Json(R"({"userName":"bjensen","active":true})");
  Struct patch = Json(R"({"Operations":[{"op":"replace","value":{"active":false}},
    {"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
     "value":{"value":"boss"}}]})");
  ASSERT_TRUE(scim::ApplyPatch(patch, scim::kUserSchema, user).ok());
  EXPECT_FALSE(user.fields().at("active").bool_value());
  EXPECT_EQ(user.fields()
                .at(scim::kEnterpriseSchema)
                .struct_value()
                .fields()
                .at("manager")
                .struct_value()
                .fields()
                .at("value")
                .string_value(),
            "boss");
}

TEST(ScimPatch, AFilteredSubAttributeWithNoMatchMakesTheElementAsEntraExpects) {
  Struct user = Json(R"({"userName":"bjensen"})");
  Struct patch = Json(R"({"Operations":[
    {"op":"Replace","path":"emails[type eq \"work\"].value","value":"b@example.com"},
    {"op":"Add","path":"emails[type eq \"work\"].primary","value":true}]})");
  absl::Status applied = scim::ApplyPatch(patch, scim::kUserSchema, user);
  ASSERT_TRUE(applied.ok()) << applied;
  const auto& emails = user.fields().at("emails").list_value().values();
  ASSERT_EQ(emails.size(), 1);
  EXPECT_EQ(emails[0].struct_value().fields().at("type").string_value(), "work");
  EXPECT_EQ(emails[0].struct_value().fields().at("value").string_value(), "b@example.com");
  EXPECT_TRUE(emails[0].struct_value().fields().at("primary").bool_value());
}

TEST(ScimPatch, RemoveMembersByFilterAndByValueList) {
  Struct group = Json(R"({"displayName":"g","members":[{"value":"a"},{"value":"b"},{"value":"c"}]})");
  Struct patch = Json(R"({"Operations":[{"op":"remove","path":"members[value eq \"a\"]"},
    {"op":"Remove","path":"members","value":[{"value":"c"}]}]})");
  ASSERT_TRUE(scim::ApplyPatch(patch, scim::kGroupSchema, group).ok());
  const auto& members = group.fields().at("members").list_value().values();
  ASSERT_EQ(members.size(), 1);
  EXPECT_EQ(members[0].struct_value().fields().at("value").string_value(), "b");
}

TEST(ScimPatch, ABadOperationLeavesTheResourceUnchanged) {
  Struct user = Json(R"({"userName":"bjensen","emails":[{"value":"w@example.com","type":"work"}]})");
  const std::string before = scim::ToJson(user);
  Struct patch = Json(R"({"Operations":[{"op":"replace","path":"displayName","value":"B"},
    {"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"x"}}]})");
  absl::Status applied = scim::ApplyPatch(patch, scim::kUserSchema, user);
  EXPECT_EQ(scim::ScimType(applied), "noTarget");
  EXPECT_EQ(scim::ToJson(user), before);
  for (const char* bad : {R"({"Operations":[]})", R"({"Operations":[{"op":"move","path":"a"}]})",
                          R"({"Operations":[{"op":"remove"}]})",
                          R"({"Operations":[{"op":"add","path":"urn:x:y:z","value":1}]})"}) {
    EXPECT_FALSE(scim::ApplyPatch(Json(bad), scim::kUserSchema, user).ok()) << bad;
  }
  EXPECT_EQ(scim::ToJson(user), before);
}

TEST(ScimPatch, MoreThanAThousandOperationsIsTooMany) {
  std::string operations;
  for (int i = 0; i <= 1000; ++i) {
    operations += std::string(i ? "," : "") + R"({"op":"replace","path":"nickName","value":"x"})";
  }
  Struct user = Json(R"({"userName":"bjensen"})");
  absl::Status applied = scim::ApplyPatch(Json(R"({"Operations":[)" + operations + "]}"), scim::kUserSchema, user);
  EXPECT_EQ(scim::ScimType(applied), "tooMany");
  EXPECT_NE(applied.message().find("at most 1000"), absl::string_view::npos);
  EXPECT_EQ(user.fields().count("nickName"), 0u);
}

TEST(ScimJson, MalformedBodyIsInvalidSyntax) {
  for (const char* bad : {"{", "[1,2]", "not json", "{\"a\":}"}) {
    absl::StatusOr<Struct> parsed = scim::ParseObject(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(scim::ScimType(parsed.status()), "invalidSyntax");
  }
}

TEST(ScimIds, UserNamesBecomeValidPersonIds) {
  EXPECT_EQ(IdFromName("bjensen@example.com"), "bjensen_example.com");
  EXPECT_EQ(IdFromName("Barbara Jensen"), "Barbara_Jensen");
  EXPECT_EQ(IdFromName(std::string(100, 'a')).size(), 64u);
  EXPECT_EQ(IdFromName(""), "x");
  std::string other = DisambiguatedId("bjensen@example.com");
  EXPECT_NE(other, IdFromName("bjensen@example.com"));
  EXPECT_LE(other.size(), 64u);
  EXPECT_EQ(other, DisambiguatedId("bjensen@example.com"));  // stable
}

TEST(Csv, QuotedFieldsEscapedQuotesCrLfAndBlankLines) {
  absl::StatusOr<std::vector<CsvRecord>> records =
      ParseCsv("a,b\r\n\"x, \"\"y\"\"\",\"multi\nline\"\n\nlast,\n");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[1].fields[0], "x, \"y\"");
  EXPECT_EQ((*records)[1].fields[1], "multi\nline");
  EXPECT_EQ((*records)[2].line, 5);
  EXPECT_EQ((*records)[2].fields[1], "");
  EXPECT_FALSE(ParseCsv("a,\"open\n").ok());
}

}  // namespace
}  // namespace integrations
