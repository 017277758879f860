#include "services/integrations/directory_sync_scim.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/auth/ids.h"
#include "services/integrations/directory_sync_scim_json.h"

namespace integrations {

using scim::EqFilter;
using scim::FindField;
using scim::ScimStatus;
using scim::Struct;
using scim::Value;

struct ScimHandler::Call {
  std::string method;
  std::string org;
  // "Users", "Groups", "ServiceProviderConfig", ...
  std::string resource;
  // The resource id after it, or "".
  std::string id;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;
  std::string body;
  absl::Time now;
};

struct ScimHandler::Reply {
  int status = 200;
  std::string body;  // JSON, or empty
  std::string etag;
  std::string location;
};

namespace {

using Reply = ScimHandler::Reply;
using Call = ScimHandler::Call;

constexpr char kContentType[] = "application/scim+json";
// Longest userName or group displayName accepted.
constexpr size_t kMaxNameBytes = 256;
// The body bound of any SCIM request.
constexpr size_t kMaxBodyBytes = 256 * 1024;

// ---- HTTP helpers -------------------------------------------------------

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding of a query component.
std::string PercentDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        HexDigit(text[i + 1]) >= 0 && HexDigit(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i] == '+' ? ' ' : text[i]);
    }
  }
  return out;
}

std::map<std::string, std::string> ParseQuery(absl::string_view query) {
  std::map<std::string, std::string> params;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    params[AsciiLower(PercentDecode(kv.first))] = PercentDecode(kv.second);
  }
  return params;
}

v1::HandleResponse ToResponse(const Reply& reply) {
  v1::HandleResponse response;
  response.set_status(reply.status);
  auto header = [&](const std::string& name, const std::string& value) {
    v1::HttpHeader* h = response.add_headers();
    h->set_name(name);
    h->set_value(value);
  };
  if (!reply.body.empty()) header("content-type", kContentType);
  if (!reply.etag.empty()) header("etag", reply.etag);
  if (!reply.location.empty()) header("location", reply.location);
  response.set_body(reply.body);
  return response;
}

int HttpStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kFailedPrecondition: return 412;
    case absl::StatusCode::kResourceExhausted: return 400;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return 503;
    default: return 500;
  }
}

// RFC 7644 §3.12.
v1::HandleResponse ErrorResponse(const absl::Status& status) {
  int http = HttpStatus(status);
  Struct error;
  auto& fields = *error.mutable_fields();
  fields["schemas"].mutable_list_value()->add_values()->set_string_value(scim::kErrorSchema);
  fields["status"].set_string_value(std::to_string(http));
  std::string type = scim::ScimType(status);
  if (type.empty() && status.code() == absl::StatusCode::kAlreadyExists) type = "uniqueness";
  if (type.empty() && status.code() == absl::StatusCode::kResourceExhausted) type = "tooMany";
  if (!type.empty()) fields["scimType"].set_string_value(type);
  fields["detail"].set_string_value(std::string(status.message()));
  Reply reply;
  reply.status = http;
  reply.body = scim::ToJson(error);
  v1::HandleResponse response = ToResponse(reply);
  if (http == 401) {
    v1::HttpHeader* h = response.add_headers();
    h->set_name("www-authenticate");
    h->set_value("Bearer realm=\"scim\"");
  }
  return response;
}

absl::Status InvalidValue(absl::string_view detail) {
  return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidValue", detail);
}

// kudos's refusal of a directory write, as SCIM sees it: a rule broken or a
// reference missing is the client's invalidValue, a taken id its uniqueness.
absl::Status FromDirectory(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return InvalidValue(status.message());
    case absl::StatusCode::kAlreadyExists:
      return ScimStatus(absl::StatusCode::kAlreadyExists, "uniqueness", status.message());
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      // The integrations service's own authorization failed: not the client's fault.
      return absl::InternalError(absl::StrCat("the directory refused the integrations service: ",
                                              status.message()));
    default:
      return status;
  }
}

// kudos's display names: 1..100 characters.
std::string DisplayName(absl::string_view name) {
  std::string out;
  size_t characters = 0;
  for (size_t i = 0; i < name.size() && characters < 100; ++characters) {
    size_t next = i + 1;
    while (next < name.size() && (static_cast<unsigned char>(name[next]) & 0xC0) == 0x80) ++next;
    out.append(name.data() + i, next - i);
    i = next;
  }
  return out;
}

void EnsureSchema(Struct& resource, absl::string_view schema) {
  Value& schemas = (*resource.mutable_fields())[scim::KeyFor(resource, "schemas")];
  if (!schemas.has_list_value()) schemas.mutable_list_value();
  for (const Value& s : schemas.list_value().values()) {
    if (s.has_string_value() && AsciiLower(s.string_value()) == AsciiLower(schema)) return;
  }
  schemas.mutable_list_value()->add_values()->set_string_value(std::string(schema));
}

void RemoveSchema(Struct& resource, absl::string_view schema) {
  Value* schemas = scim::MutableField(resource, "schemas");
  if (schemas == nullptr || !schemas->has_list_value()) return;
  google::protobuf::ListValue kept;
  for (const Value& s : schemas->list_value().values()) {
    if (!(s.has_string_value() && AsciiLower(s.string_value()) == AsciiLower(schema))) {
      *kept.add_values() = s;
    }
  }
  *schemas->mutable_list_value() = std::move(kept);
}

// The attributes kept in our record: what the client sent, without what is
// the server's (id, meta), read-only (groups) or never stored (password).
Struct Stored(Struct resource, bool user) {
  for (const char* name : {"id", "meta", "groups", "password"}) {
    scim::EraseField(resource, name);
  }
  if (!user) scim::EraseField(resource, "members");
  return resource;
}

bool IfMatchHolds(const Call& call, const std::string& etag) {
  auto it = call.headers.find("if-match");
  if (it == call.headers.end()) return true;
  auto bare = [](absl::string_view tag) {
    tag = absl::StripAsciiWhitespace(tag);
    absl::ConsumePrefix(&tag, "W/");
    return std::string(tag);
  };
  for (absl::string_view tag : absl::StrSplit(it->second, ',')) {
    if (absl::StripAsciiWhitespace(tag) == "*" || bare(tag) == bare(etag)) return true;
  }
  return false;
}

absl::Status CheckIfMatch(const Call& call, const std::string& etag) {
  if (IfMatchHolds(call, etag)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "If-Match ", call.headers.at("if-match"), " does not match the current version ", etag));
}

std::string Location(const Call& call, absl::string_view type, absl::string_view id) {
  return absl::StrCat("/scim/", call.org, "/v2/", type, "/", id);
}

void SetMeta(const Call& call, absl::string_view type, const ScimRecord& record,
             const std::string& etag, Struct& resource) {
  Struct& meta = *(*resource.mutable_fields())["meta"].mutable_struct_value();
  auto& fields = *meta.mutable_fields();
  fields["resourceType"].set_string_value(std::string(type));
  fields["created"].set_string_value(record.created);
  fields["lastModified"].set_string_value(record.modified);
  fields["location"].set_string_value(Location(call, type == "User" ? "Users" : "Groups", record.id));
  fields["version"].set_string_value(etag);
}

struct Paging {
  long long start_index = 1;
  long long count = 0;
};

absl::StatusOr<Paging> ParsePaging(const Call& call, long long max_page_size) {
  Paging paging;
  paging.count = max_page_size;
  if (auto it = call.query.find("startindex"); it != call.query.end()) {
    if (!absl::SimpleAtoi(it->second, &paging.start_index)) {
      return InvalidValue("startIndex must be an integer");
    }
    paging.start_index = std::max(1LL, paging.start_index);  // RFC 7644 §3.4.2.4
  }
  if (auto it = call.query.find("count"); it != call.query.end()) {
    if (!absl::SimpleAtoi(it->second, &paging.count)) return InvalidValue("count must be an integer");
    paging.count = std::clamp(paging.count, 0LL, max_page_size);
  }
  return paging;
}

Reply ListReply(std::vector<Struct> resources, long long total, long long start_index) {
  Struct list;
  auto& fields = *list.mutable_fields();
  fields["schemas"].mutable_list_value()->add_values()->set_string_value(scim::kListSchema);
  fields["totalResults"].set_number_value(static_cast<double>(total));
  fields["itemsPerPage"].set_number_value(static_cast<double>(resources.size()));
  fields["startIndex"].set_number_value(static_cast<double>(start_index));
  auto* items = fields["Resources"].mutable_list_value();
  for (Struct& resource : resources) *items->add_values()->mutable_struct_value() = std::move(resource);
  Reply reply;
  reply.body = scim::ToJson(list);
  return reply;
}

Reply ResourceReply(int status, const Struct& resource, const std::string& etag,
                    std::string location = "") {
  Reply reply;
  reply.status = status;
  reply.body = scim::ToJson(resource);
  reply.etag = etag;
  reply.location = std::move(location);
  return reply;
}

// ---- discovery (RFC 7643 §5-7) -----------------------------------------

constexpr char kServiceProviderConfig[] = R"json({
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
  "documentationUri": "https://github.com/kudos-platform/kudos/blob/main/services/integrations/README.md#directory-sync",
  "patch": {"supported": true},
  "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
  "filter": {"supported": true, "maxResults": 200},
  "changePassword": {"supported": false},
  "sort": {"supported": false},
  "etag": {"supported": true},
  "authenticationSchemes": [{
    "type": "oauthbearertoken",
    "name": "Bearer token",
    "description": "A token per org from integrations.v1.DirectorySyncService/CreateScimToken",
    "primary": true
  }],
  "meta": {"resourceType": "ServiceProviderConfig", "location": "/v2/ServiceProviderConfig"}
})json";

constexpr char kResourceTypes[] = R"json({
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
  "totalResults": 2, "itemsPerPage": 2, "startIndex": 1,
  "Resources": [{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "User", "name": "User", "endpoint": "/Users", "description": "A person",
    "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
    "schemaExtensions": [{"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                          "required": false}],
    "meta": {"resourceType": "ResourceType", "location": "/v2/ResourceTypes/User"}
  }, {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
    "id": "Group", "name": "Group", "endpoint": "/Groups", "description": "A team",
    "schema": "urn:ietf:params:scim:schemas:core:2.0:Group",
    "meta": {"resourceType": "ResourceType", "location": "/v2/ResourceTypes/Group"}
  }]
})json";

constexpr char kSchemas[] = R"json({
  "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
  "totalResults": 3, "itemsPerPage": 3, "startIndex": 1,
  "Resources": [{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": "urn:ietf:params:scim:schemas:core:2.0:User", "name": "User", "description": "A person",
    "attributes": [
      {"name": "userName", "type": "string", "multiValued": false, "required": true,
       "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"},
      {"name": "displayName", "type": "string", "multiValued": false, "required": false,
       "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
      {"name": "name", "type": "complex", "multiValued": false, "required": false,
       "mutability": "readWrite", "returned": "default", "subAttributes": [
         {"name": "formatted", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
         {"name": "givenName", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
         {"name": "familyName", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"}]},
      {"name": "emails", "type": "complex", "multiValued": true, "required": false,
       "mutability": "readWrite", "returned": "default", "subAttributes": [
         {"name": "value", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
         {"name": "type", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
         {"name": "primary", "type": "boolean", "multiValued": false, "required": false, "mutability": "readWrite", "returned": "default"}]},
      {"name": "timezone", "type": "string", "multiValued": false, "required": false,
       "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "none"},
      {"name": "active", "type": "boolean", "multiValued": false, "required": false,
       "mutability": "readWrite", "returned": "default"},
      {"name": "groups", "type": "complex", "multiValued": true, "required": false,
       "mutability": "readOnly", "returned": "default", "subAttributes": [
         {"name": "value", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readOnly", "returned": "default", "uniqueness": "none"}]}
    ],
    "meta": {"resourceType": "Schema", "location": "/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User"}
  }, {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": "urn:ietf:params:scim:schemas:core:2.0:Group", "name": "Group", "description": "A team",
    "attributes": [
      {"name": "displayName", "type": "string", "multiValued": false, "required": true,
       "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"},
      {"name": "members", "type": "complex", "multiValued": true, "required": false,
       "mutability": "readWrite", "returned": "default", "subAttributes": [
         {"name": "value", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "immutable", "returned": "default", "uniqueness": "none"},
         {"name": "display", "type": "string", "multiValued": false, "required": false, "caseExact": false, "mutability": "readOnly", "returned": "default", "uniqueness": "none"}]}
    ],
    "meta": {"resourceType": "Schema", "location": "/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group"}
  }, {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
    "id": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "name": "EnterpriseUser",
    "description": "Enterprise User (the manager)",
    "attributes": [
      {"name": "manager", "type": "complex", "multiValued": false, "required": false,
       "mutability": "readWrite", "returned": "default", "subAttributes": [
         {"name": "value", "type": "string", "multiValued": false, "required": false, "caseExact": true, "mutability": "readWrite", "returned": "default", "uniqueness": "none"}]}
    ],
    "meta": {"resourceType": "Schema", "location": "/v2/Schemas/urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}
  }]
})json";

// ---- the per-request work ----------------------------------------------

// One request's view of a user: our record, its stored attributes and the
// person kudos holds.
struct UserState {
  ScimRecord record;
  Struct stored;
  kudos::v1::Person person;
};

struct GroupState {
  ScimRecord record;
  Struct stored;
  std::vector<kudos::v1::Person> members;
};

class Session {
 public:
  Session(ScimStore& store, KudosDirectory& directory, const ScimOptions& options,
          const Call& call)
      : store_(store), directory_(directory), options_(options), call_(call) {}

  // ---- users ----
  absl::StatusOr<Reply> CreateUser();
  absl::StatusOr<Reply> GetUser();
  absl::StatusOr<Reply> ReplaceUser(bool patch);
  absl::StatusOr<Reply> DeleteUser();
  absl::StatusOr<Reply> ListUsers();
  // ---- groups ----
  absl::StatusOr<Reply> CreateGroup();
  absl::StatusOr<Reply> GetGroup();
  absl::StatusOr<Reply> ReplaceGroup(bool patch);
  absl::StatusOr<Reply> DeleteGroup();
  absl::StatusOr<Reply> ListGroups();

 private:
  const std::string& org() const { return call_.org; }
  const std::string& actor() const { return options_.actor; }

  absl::StatusOr<std::optional<UserState>> LoadUser(const std::string& id);
  absl::StatusOr<UserState> RequireUser(const std::string& id);
  // The resource without meta, and with it; the ETag of the first.
  std::pair<Struct, std::string> RenderUser(const UserState& state);
  Struct WithUserMeta(const UserState& state, Struct resource, const std::string& etag);
  absl::StatusOr<kudos::v1::Person> PersonFromUser(const Struct& resource, const std::string& id,
                                                   const std::string& team_id);
  absl::StatusOr<Reply> WriteUser(const std::string& id, const Struct& resource,
                                  const kudos::v1::Person& current, int status);

  absl::StatusOr<std::optional<GroupState>> LoadGroup(const std::string& id);
  absl::StatusOr<GroupState> RequireGroup(const std::string& id);
  std::pair<Struct, std::string> RenderGroup(const GroupState& state);
  Struct WithGroupMeta(const GroupState& state, Struct resource, const std::string& etag);
  absl::StatusOr<std::vector<std::string>> MemberIds(const Struct& resource);
  // Moves the listed people into the team and the others of `current` out of it.
  absl::Status SetMembers(const std::string& team_id, const std::vector<std::string>& wanted,
                          const std::vector<kudos::v1::Person>& current);
  absl::StatusOr<Struct> Body();

  ScimStore& store_;
  KudosDirectory& directory_;
  const ScimOptions& options_;
  const Call& call_;
};

absl::StatusOr<Struct> Session::Body() {
  if (call_.body.size() > kMaxBodyBytes) {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "tooMany",
                      absl::StrCat("body: ", call_.body.size(), " bytes, at most ", kMaxBodyBytes));
  }
  return scim::ParseObject(call_.body);
}

// ---- users ----

absl::StatusOr<std::optional<UserState>> Session::LoadUser(const std::string& id) {
  if (!common::auth::ValidId(id)) return std::nullopt;
  auto record = store_.Get(org(), ScimKind::kUser, id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return std::nullopt;
  auto person = directory_.GetPerson(org(), actor(), id);
  if (!person.ok()) return FromDirectory(person.status());
  // A record whose person is gone is no resource (kudos never deletes people).
  if (!person->has_value()) return std::nullopt;
  UserState state;
  state.record = **record;
  auto stored = scim::ParseObject(state.record.res);
  if (!stored.ok()) return absl::DataLossError("an unreadable SCIM user record");
  state.stored = *std::move(stored);
  state.person = **person;
  return state;
}

absl::StatusOr<UserState> Session::RequireUser(const std::string& id) {
  auto state = LoadUser(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return absl::NotFoundError(absl::StrCat("User '", id, "' does not exist"));
  return **std::move(state);
}

std::pair<Struct, std::string> Session::RenderUser(const UserState& state) {
  Struct resource = Stored(state.stored, /*user=*/true);
  EnsureSchema(resource, scim::kUserSchema);
  auto& fields = *resource.mutable_fields();
  fields["id"].set_string_value(state.person.person_id());
  fields[scim::KeyFor(resource, "active")].set_bool_value(state.person.active());
  // The manager is kudos's: whatever changed it, a read shows it.
  Value* extension = scim::MutableField(resource, scim::kEnterpriseSchema);
  if (state.person.manager_id().empty()) {
    if (extension != nullptr && extension->has_struct_value()) {
      scim::EraseField(*extension->mutable_struct_value(), "manager");
      if (extension->struct_value().fields().empty()) scim::EraseField(resource, scim::kEnterpriseSchema);
    }
    if (scim::FindField(resource, scim::kEnterpriseSchema) == nullptr) {
      RemoveSchema(resource, scim::kEnterpriseSchema);
    }
  } else {
    if (extension == nullptr || !extension->has_struct_value()) {
      extension = &fields[scim::kEnterpriseSchema];
      extension->mutable_struct_value();
    }
    Value* manager = scim::MutableField(*extension->mutable_struct_value(), "manager");
    const Value* value = manager != nullptr && manager->has_struct_value()
                             ? scim::FindField(manager->struct_value(), "value")
                             : nullptr;
    if (value == nullptr || !value->has_string_value() ||
        value->string_value() != state.person.manager_id()) {
      Value fresh;
      (*fresh.mutable_struct_value()->mutable_fields())["value"].set_string_value(
          state.person.manager_id());
      (*extension->mutable_struct_value()->mutable_fields())[scim::KeyFor(
          extension->struct_value(), "manager")] = fresh;
    }
    EnsureSchema(resource, scim::kEnterpriseSchema);
  }
  if (!state.person.team_id().empty()) {
    Value group;
    auto& group_fields = *group.mutable_struct_value()->mutable_fields();
    group_fields["value"].set_string_value(state.person.team_id());
    group_fields["$ref"].set_string_value(Location(call_, "Groups", state.person.team_id()));
    *fields["groups"].mutable_list_value()->add_values() = std::move(group);
  }
  std::string etag = scim::WeakEtag(resource);
  return {std::move(resource), etag};
}

Struct Session::WithUserMeta(const UserState& state, Struct resource, const std::string& etag) {
  SetMeta(call_, "User", state.record, etag, resource);
  return resource;
}

absl::StatusOr<kudos::v1::Person> Session::PersonFromUser(const Struct& resource,
                                                          const std::string& id,
                                                          const std::string& team_id) {
  auto user_name = scim::OptionalString(resource, "userName", "userName");
  if (!user_name.ok()) return user_name.status();
  if (!user_name->has_value() || (*user_name)->empty()) return InvalidValue("userName is required");
  if ((*user_name)->size() > kMaxNameBytes) {
    return InvalidValue(absl::StrCat("userName is longer than ", kMaxNameBytes, " bytes"));
  }
  kudos::v1::Person person;
  person.set_person_id(id);
  person.set_team_id(team_id);
  // displayName, else name.formatted, else "givenName familyName", else userName.
  auto display = scim::OptionalString(resource, "displayName", "displayName");
  if (!display.ok()) return display.status();
  std::string name = display->value_or("");
  const Value* name_value = scim::FindField(resource, "name");
  if (name.empty() && name_value != nullptr && name_value->has_struct_value()) {
    const Struct& parts = name_value->struct_value();
    auto formatted = scim::OptionalString(parts, "formatted", "name.formatted");
    auto given = scim::OptionalString(parts, "givenName", "name.givenName");
    auto family = scim::OptionalString(parts, "familyName", "name.familyName");
    for (const auto* part : {&formatted, &given, &family}) {
      if (!part->ok()) return part->status();
    }
    name = formatted->value_or("");
    if (name.empty()) {
      name = std::string(absl::StripAsciiWhitespace(
          absl::StrCat(given->value_or(""), " ", family->value_or(""))));
    }
  }
  if (name.empty()) name = **user_name;
  person.set_display_name(DisplayName(name));
  auto active = scim::OptionalBool(resource, "active", "active");
  if (!active.ok()) return active.status();
  person.set_active(active->value_or(true));
  auto zone = scim::OptionalString(resource, "timezone", "timezone");
  if (!zone.ok()) return zone.status();
  person.set_time_zone(zone->value_or(""));
  const Value* extension = scim::FindField(resource, scim::kEnterpriseSchema);
  if (extension != nullptr && extension->has_struct_value()) {
    const Value* manager = scim::FindField(extension->struct_value(), "manager");
    std::string manager_id;
    if (manager != nullptr && manager->has_struct_value()) {
      auto value = scim::OptionalString(manager->struct_value(), "value", "manager.value");
      if (!value.ok()) return value.status();
      manager_id = value->value_or("");
    } else if (manager != nullptr && manager->has_string_value()) {
      manager_id = manager->string_value();  // Entra ID's PATCH form
    } else if (manager != nullptr && !manager->has_null_value()) {
      return InvalidValue("manager must be an object with a value");
    }
    if (!manager_id.empty() && !common::auth::ValidId(manager_id)) {
      return InvalidValue(absl::StrCat("manager.value: '", manager_id, "' is not a User id"));
    }
    person.set_manager_id(manager_id);
  }
  return person;
}

absl::StatusOr<Reply> Session::WriteUser(const std::string& id, const Struct& resource,
                                         const kudos::v1::Person& current, int status) {
  // kudos first: a refused person leaves our record as it was.
  absl::StatusOr<kudos::v1::Person> person = PersonFromUser(resource, id, current.team_id());
  if (!person.ok()) return person.status();
  const bool create = status == 201;
  if (current.person_id().empty()) {
    if (absl::Status s = directory_.CreatePerson(org(), actor(), *person); !s.ok()) return FromDirectory(s);
  } else if (person->SerializeAsString() != current.SerializeAsString()) {
    if (absl::Status s = directory_.UpdatePerson(org(), actor(), *person); !s.ok()) return FromDirectory(s);
  }
  std::string user_name = *scim::OptionalString(resource, "userName", "userName").value();
  auto external = scim::OptionalString(resource, "externalId", "externalId");
  if (!external.ok()) return external.status();
  Struct stored = Stored(resource, /*user=*/true);
  absl::Status put = store_.Put(org(), ScimKind::kUser, id, scim::ToJson(stored), user_name,
                                external->value_or(""), create, call_.now);
  if (!put.ok()) return put;
  absl::StatusOr<UserState> state = RequireUser(id);
  if (!state.ok()) return state.status();
  auto [rendered, etag] = RenderUser(*state);
  return ResourceReply(status, WithUserMeta(*state, std::move(rendered), etag), etag,
                       create ? Location(call_, "Users", id) : "");
}

absl::StatusOr<Reply> Session::CreateUser() {
  absl::StatusOr<Struct> body = Body();
  if (!body.ok()) return body.status();
  absl::StatusOr<kudos::v1::Person> checked = PersonFromUser(*body, "x", "");
  if (!checked.ok()) return checked.status();
  std::string user_name = **scim::OptionalString(*body, "userName", "userName");
  auto holder = store_.FindByName(org(), ScimKind::kUser, user_name);
  if (!holder.ok()) return holder.status();
  if (holder->has_value()) {
    return ScimStatus(absl::StatusCode::kAlreadyExists, "uniqueness",
                      absl::StrCat("userName '", user_name, "' is taken by User '", **holder, "'"));
  }
  std::string id = IdFromName(user_name);
  auto other = store_.Get(org(), ScimKind::kUser, id);
  if (!other.ok()) return other.status();
  if (other->has_value()) id = DisambiguatedId(user_name);
  // A person made before SCIM (the API, a CSV import) with this id is
  // adopted: the identity provider takes it over, its history kept.
  auto existing = directory_.GetPerson(org(), actor(), id);
  if (!existing.ok()) return FromDirectory(existing.status());
  return WriteUser(id, *body, existing->value_or(kudos::v1::Person()), 201);
}

absl::StatusOr<Reply> Session::GetUser() {
  absl::StatusOr<UserState> state = RequireUser(call_.id);
  if (!state.ok()) return state.status();
  auto [rendered, etag] = RenderUser(*state);
  if (auto it = call_.headers.find("if-none-match"); it != call_.headers.end() && it->second == etag) {
    Reply not_modified;
    not_modified.status = 304;
    not_modified.etag = etag;
    return not_modified;
  }
  return ResourceReply(200, WithUserMeta(*state, std::move(rendered), etag), etag);
}

absl::StatusOr<Reply> Session::ReplaceUser(bool patch) {
  absl::StatusOr<UserState> state = RequireUser(call_.id);
  if (!state.ok()) return state.status();
  auto [current, etag] = RenderUser(*state);
  if (absl::Status match = CheckIfMatch(call_, etag); !match.ok()) return match;
  absl::StatusOr<Struct> body = Body();
  if (!body.ok()) return body.status();
  Struct resource = *body;
  if (patch) {
    resource = current;
    if (absl::Status applied = scim::ApplyPatch(*body, scim::kUserSchema, resource); !applied.ok()) {
      return applied;
    }
  }
  auto user_name = scim::OptionalString(resource, "userName", "userName");
  if (!user_name.ok()) return user_name.status();
  if (user_name->has_value()) {
    auto holder = store_.FindByName(org(), ScimKind::kUser, **user_name);
    if (!holder.ok()) return holder.status();
    if (holder->has_value() && **holder != call_.id) {
      return ScimStatus(absl::StatusCode::kAlreadyExists, "uniqueness",
                        absl::StrCat("userName '", **user_name, "' is taken by User '", **holder, "'"));
    }
  }
  return WriteUser(call_.id, resource, state->person, 200);
}

absl::StatusOr<Reply> Session::DeleteUser() {
  absl::StatusOr<UserState> state = RequireUser(call_.id);
  if (!state.ok()) return state.status();
  auto [current, etag] = RenderUser(*state);
  if (absl::Status match = CheckIfMatch(call_, etag); !match.ok()) return match;
  // Deactivated, never removed: the person's kudos and points stay.
  if (state->person.active()) {
    kudos::v1::Person person = state->person;
    person.set_active(false);
    if (absl::Status s = directory_.UpdatePerson(org(), actor(), person); !s.ok()) return FromDirectory(s);
  }
  if (absl::Status s = store_.Delete(org(), ScimKind::kUser, call_.id); !s.ok()) return s;
  Reply reply;
  reply.status = 204;
  return reply;
}

absl::StatusOr<std::vector<std::string>> FilteredIds(ScimStore& store, const std::string& org,
                                                     ScimKind kind, const EqFilter& filter) {
  std::optional<std::string> id;
  const std::string name_attribute = kind == ScimKind::kUser ? "username" : "displayname";
  if (filter.attribute == name_attribute) {
    auto found = store.FindByName(org, kind, filter.value);
    if (!found.ok()) return found.status();
    id = *found;
  } else if (filter.attribute == "externalid") {
    auto found = store.FindByExternalId(org, kind, filter.value);
    if (!found.ok()) return found.status();
    id = *found;
  } else if (filter.attribute == "id") {
    id = filter.value;
  } else {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidFilter",
                      absl::StrCat("filtering on '", filter.attribute, "' is not served (",
                                   kind == ScimKind::kUser ? "userName" : "displayName",
                                   ", externalId and id are)"));
  }
  if (!id.has_value()) return std::vector<std::string>();
  return std::vector<std::string>{*id};
}

absl::StatusOr<Reply> Session::ListUsers() {
  absl::StatusOr<Paging> paging = ParsePaging(call_, options_.max_page_size);
  if (!paging.ok()) return paging.status();
  std::vector<std::string> ids;
  long long total = 0;
  if (auto it = call_.query.find("filter"); it != call_.query.end()) {
    absl::StatusOr<EqFilter> filter = scim::ParseEqFilter(it->second);
    if (!filter.ok()) return filter.status();
    auto matched = FilteredIds(store_, org(), ScimKind::kUser, *filter);
    if (!matched.ok()) return matched.status();
    std::vector<std::string> existing;
    for (const std::string& id : *matched) {
      auto state = LoadUser(id);
      if (!state.ok()) return state.status();
      if (state->has_value()) existing.push_back(id);
    }
    total = static_cast<long long>(existing.size());
    for (long long i = paging->start_index - 1; i < total && static_cast<long long>(ids.size()) < paging->count; ++i) {
      ids.push_back(existing[i]);
    }
  } else {
    auto page = store_.Page(org(), ScimKind::kUser, paging->start_index - 1, paging->count);
    if (!page.ok()) return page.status();
    ids = std::move(page->first);
    total = page->second;
  }
  std::vector<Struct> resources;
  for (const std::string& id : ids) {
    auto state = LoadUser(id);
    if (!state.ok()) return state.status();
    if (!state->has_value()) continue;
    auto [rendered, etag] = RenderUser(**state);
    resources.push_back(WithUserMeta(**state, std::move(rendered), etag));
  }
  return ListReply(std::move(resources), total, paging->start_index);
}

// ---- groups ----

absl::StatusOr<std::optional<GroupState>> Session::LoadGroup(const std::string& id) {
  if (!common::auth::ValidId(id)) return std::nullopt;
  auto record = store_.Get(org(), ScimKind::kGroup, id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return std::nullopt;
  GroupState state;
  state.record = **record;
  auto stored = scim::ParseObject(state.record.res);
  if (!stored.ok()) return absl::DataLossError("an unreadable SCIM group record");
  state.stored = *std::move(stored);
  auto members = directory_.ListTeamMembers(org(), actor(), id, options_.max_group_members);
  if (!members.ok()) return FromDirectory(members.status());
  state.members = *std::move(members);
  return state;
}

absl::StatusOr<GroupState> Session::RequireGroup(const std::string& id) {
  auto state = LoadGroup(id);
  if (!state.ok()) return state.status();
  if (!state->has_value()) return absl::NotFoundError(absl::StrCat("Group '", id, "' does not exist"));
  return **std::move(state);
}

std::pair<Struct, std::string> Session::RenderGroup(const GroupState& state) {
  Struct resource = Stored(state.stored, /*user=*/false);
  EnsureSchema(resource, scim::kGroupSchema);
  auto& fields = *resource.mutable_fields();
  fields["id"].set_string_value(state.record.id);
  auto* members = fields["members"].mutable_list_value();
  for (const kudos::v1::Person& person : state.members) {
    auto& member = *members->add_values()->mutable_struct_value()->mutable_fields();
    member["value"].set_string_value(person.person_id());
    member["display"].set_string_value(person.display_name());
  }
  std::string etag = scim::WeakEtag(resource);
  return {std::move(resource), etag};
}

Struct Session::WithGroupMeta(const GroupState& state, Struct resource, const std::string& etag) {
  SetMeta(call_, "Group", state.record, etag, resource);
  if (auto it = call_.query.find("excludedattributes");
      it != call_.query.end() && absl::StrContains(AsciiLower(it->second), "members")) {
    scim::EraseField(resource, "members");
  }
  return resource;
}

absl::StatusOr<std::vector<std::string>> Session::MemberIds(const Struct& resource) {
  std::vector<std::string> ids;
  const Value* members = scim::FindField(resource, "members");
  if (members == nullptr || members->has_null_value()) return ids;
  if (!members->has_list_value()) return InvalidValue("members must be an array");
  if (static_cast<size_t>(members->list_value().values_size()) > options_.max_group_members) {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "tooMany",
                      absl::StrCat("at most ", options_.max_group_members, " members per group"));
  }
  std::set<std::string> seen;
  int index = 0;
  for (const Value& member : members->list_value().values()) {
    std::string field = absl::StrCat("members[", index++, "].value");
    if (!member.has_struct_value()) return InvalidValue(absl::StrCat(field, " is missing"));
    auto value = scim::OptionalString(member.struct_value(), "value", field);
    if (!value.ok()) return value.status();
    if (!value->has_value() || !common::auth::ValidId(**value)) {
      return InvalidValue(absl::StrCat(field, " must be a User id"));
    }
    if (seen.insert(**value).second) ids.push_back(**value);
  }
  return ids;
}

absl::Status Session::SetMembers(const std::string& team_id, const std::vector<std::string>& wanted,
                                 const std::vector<kudos::v1::Person>& current) {
  // Every new member is checked before anything is written.
  std::vector<kudos::v1::Person> joining;
  std::set<std::string> wanted_set(wanted.begin(), wanted.end());
  for (const std::string& id : wanted) {
    auto person = directory_.GetPerson(org(), actor(), id);
    if (!person.ok()) return FromDirectory(person.status());
    if (!person->has_value()) return InvalidValue(absl::StrCat("member '", id, "' is not a User"));
    if ((*person)->team_id() != team_id) joining.push_back(**person);
  }
  for (kudos::v1::Person person : joining) {
    person.set_team_id(team_id);
    if (absl::Status s = directory_.UpdatePerson(org(), actor(), person); !s.ok()) return FromDirectory(s);
  }
  for (kudos::v1::Person person : current) {
    if (wanted_set.count(person.person_id()) > 0) continue;
    person.set_team_id("");
    if (absl::Status s = directory_.UpdatePerson(org(), actor(), person); !s.ok()) return FromDirectory(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GroupName(const Struct& resource) {
  auto name = scim::OptionalString(resource, "displayName", "displayName");
  if (!name.ok()) return name.status();
  if (!name->has_value() || (*name)->empty()) return InvalidValue("displayName is required");
  if ((*name)->size() > kMaxNameBytes) {
    return InvalidValue(absl::StrCat("displayName is longer than ", kMaxNameBytes, " bytes"));
  }
  return **name;
}

absl::StatusOr<Reply> Session::CreateGroup() {
  absl::StatusOr<Struct> body = Body();
  if (!body.ok()) return body.status();
  absl::StatusOr<std::string> name = GroupName(*body);
  if (!name.ok()) return name.status();
  auto external = scim::OptionalString(*body, "externalId", "externalId");
  if (!external.ok()) return external.status();
  absl::StatusOr<std::vector<std::string>> members = MemberIds(*body);
  if (!members.ok()) return members.status();
  auto holder = store_.FindByName(org(), ScimKind::kGroup, *name);
  if (!holder.ok()) return holder.status();
  if (holder->has_value()) {
    return ScimStatus(absl::StatusCode::kAlreadyExists, "uniqueness",
                      absl::StrCat("displayName '", *name, "' is taken by Group '", **holder, "'"));
  }
  std::string id = IdFromName(*name);
  auto other = store_.Get(org(), ScimKind::kGroup, id);
  if (!other.ok()) return other.status();
  if (other->has_value()) id = DisambiguatedId(*name);
  for (const std::string& member : *members) {
    auto person = directory_.GetPerson(org(), actor(), member);
    if (!person.ok()) return FromDirectory(person.status());
    if (!person->has_value()) return InvalidValue(absl::StrCat("member '", member, "' is not a User"));
  }
  kudos::v1::Team team;
  team.set_team_id(id);
  team.set_display_name(DisplayName(*name));
  // A team made before SCIM with this id is adopted (kudos keeps its name).
  absl::Status created = directory_.CreateTeam(org(), actor(), team);
  if (!created.ok() && created.code() != absl::StatusCode::kAlreadyExists) return FromDirectory(created);
  auto current = directory_.ListTeamMembers(org(), actor(), id, options_.max_group_members);
  if (!current.ok()) return FromDirectory(current.status());
  // Members the team already had stay: a create only adds.
  std::vector<std::string> wanted = *members;
  for (const kudos::v1::Person& person : *current) wanted.push_back(person.person_id());
  if (absl::Status set = SetMembers(id, wanted, *current); !set.ok()) return set;
  absl::Status put = store_.Put(org(), ScimKind::kGroup, id, scim::ToJson(Stored(*body, false)), *name,
                                external->value_or(""), /*create=*/true, call_.now);
  if (!put.ok()) return put;
  absl::StatusOr<GroupState> state = RequireGroup(id);
  if (!state.ok()) return state.status();
  auto [rendered, etag] = RenderGroup(*state);
  return ResourceReply(201, WithGroupMeta(*state, std::move(rendered), etag), etag,
                       Location(call_, "Groups", id));
}

absl::StatusOr<Reply> Session::GetGroup() {
  absl::StatusOr<GroupState> state = RequireGroup(call_.id);
  if (!state.ok()) return state.status();
  auto [rendered, etag] = RenderGroup(*state);
  return ResourceReply(200, WithGroupMeta(*state, std::move(rendered), etag), etag);
}

absl::StatusOr<Reply> Session::ReplaceGroup(bool patch) {
  absl::StatusOr<GroupState> state = RequireGroup(call_.id);
  if (!state.ok()) return state.status();
  auto [current, etag] = RenderGroup(*state);
  if (absl::Status match = CheckIfMatch(call_, etag); !match.ok()) return match;
  absl::StatusOr<Struct> body = Body();
  if (!body.ok()) return body.status();
  Struct resource = *body;
  if (patch) {
    resource = current;
    if (absl::Status applied = scim::ApplyPatch(*body, scim::kGroupSchema, resource); !applied.ok()) {
      return applied;
    }
  }
  absl::StatusOr<std::string> name = GroupName(resource);
  if (!name.ok()) return name.status();
  auto external = scim::OptionalString(resource, "externalId", "externalId");
  if (!external.ok()) return external.status();
  absl::StatusOr<std::vector<std::string>> members = MemberIds(resource);
  if (!members.ok()) return members.status();
  auto holder = store_.FindByName(org(), ScimKind::kGroup, *name);
  if (!holder.ok()) return holder.status();
  if (holder->has_value() && **holder != call_.id) {
    return ScimStatus(absl::StatusCode::kAlreadyExists, "uniqueness",
                      absl::StrCat("displayName '", *name, "' is taken by Group '", **holder, "'"));
  }
  if (absl::Status set = SetMembers(call_.id, *members, state->members); !set.ok()) return set;
  absl::Status put = store_.Put(org(), ScimKind::kGroup, call_.id, scim::ToJson(Stored(resource, false)),
                                *name, external->value_or(""), /*create=*/false, call_.now);
  if (!put.ok()) return put;
  absl::StatusOr<GroupState> updated = RequireGroup(call_.id);
  if (!updated.ok()) return updated.status();
  auto [rendered, new_etag] = RenderGroup(*updated);
  return ResourceReply(200, WithGroupMeta(*updated, std::move(rendered), new_etag), new_etag);
}

absl::StatusOr<Reply> Session::DeleteGroup() {
  absl::StatusOr<GroupState> state = RequireGroup(call_.id);
  if (!state.ok()) return state.status();
  auto [current, etag] = RenderGroup(*state);
  if (absl::Status match = CheckIfMatch(call_, etag); !match.ok()) return match;
  // The members leave the team; kudos keeps the team (it has no team delete).
  if (absl::Status set = SetMembers(call_.id, {}, state->members); !set.ok()) return set;
  if (absl::Status s = store_.Delete(org(), ScimKind::kGroup, call_.id); !s.ok()) return s;
  Reply reply;
  reply.status = 204;
  return reply;
}

absl::StatusOr<Reply> Session::ListGroups() {
  absl::StatusOr<Paging> paging = ParsePaging(call_, options_.max_page_size);
  if (!paging.ok()) return paging.status();
  std::vector<std::string> ids;
  long long total = 0;
  if (auto it = call_.query.find("filter"); it != call_.query.end()) {
    absl::StatusOr<EqFilter> filter = scim::ParseEqFilter(it->second);
    if (!filter.ok()) return filter.status();
    auto matched = FilteredIds(store_, org(), ScimKind::kGroup, *filter);
    if (!matched.ok()) return matched.status();
    std::vector<std::string> existing;
    for (const std::string& id : *matched) {
      auto record = store_.Get(org(), ScimKind::kGroup, id);
      if (!record.ok()) return record.status();
      if (record->has_value()) existing.push_back(id);
    }
    total = static_cast<long long>(existing.size());
    for (long long i = paging->start_index - 1; i < total && static_cast<long long>(ids.size()) < paging->count; ++i) {
      ids.push_back(existing[i]);
    }
  } else {
    auto page = store_.Page(org(), ScimKind::kGroup, paging->start_index - 1, paging->count);
    if (!page.ok()) return page.status();
    ids = std::move(page->first);
    total = page->second;
  }
  std::vector<Struct> resources;
  for (const std::string& id : ids) {
    auto state = LoadGroup(id);
    if (!state.ok()) return state.status();
    if (!state->has_value()) continue;
    auto [rendered, etag] = RenderGroup(**state);
    resources.push_back(WithGroupMeta(**state, std::move(rendered), etag));
  }
  return ListReply(std::move(resources), total, paging->start_index);
}

absl::Status MethodNotAllowed(const Call& call) {
  return ScimStatus(absl::StatusCode::kUnimplemented, "",
                    absl::StrCat(call.method, " is not served on /", call.resource,
                                 call.id.empty() ? "" : "/{id}"));
}

}  // namespace

std::string IdFromName(absl::string_view name) {
  std::string id;
  for (char c : name.substr(0, common::auth::kMaxIdLength)) {
    bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    id.push_back(ok ? c : '_');
  }
  return id.empty() ? "x" : id;
}

std::string DisambiguatedId(absl::string_view name) {
  return absl::StrCat(IdFromName(name).substr(0, 47), "-",
                      Sha256Hex(AsciiLower(name)).substr(0, 16));
}

ScimHandler::ScimHandler(ScimStore& store, KudosDirectory& directory, ScimOptions options)
    : store_(store), directory_(directory), options_(std::move(options)) {}

v1::HandleResponse ScimHandler::Handle(const v1::HandleRequest& request, absl::Time now) {
  Call call;
  call.method = absl::AsciiStrToUpper(request.method());
  call.now = now;
  call.body = request.body();
  call.query = ParseQuery(request.query());
  for (const v1::HttpHeader& header : request.headers()) {
    call.headers[AsciiLower(header.name())] = header.value();
  }
  // /scim/{org}/v2/{Resource}[/{id}]
  std::vector<std::string> parts = absl::StrSplit(request.path(), '/', absl::SkipEmpty());
  if (parts.size() < 3 || parts[0] != "scim" || parts[2] != "v2" || parts.size() > 5 ||
      !common::auth::ValidOrgId(parts[1])) {
    return ErrorResponse(absl::NotFoundError(
        absl::StrCat("no SCIM endpoint at ", request.path(), " (the base is /scim/{org}/v2)")));
  }
  call.org = parts[1];
  if (parts.size() > 3) call.resource = parts[3];
  if (parts.size() > 4) call.id = parts[4];
  absl::StatusOr<Reply> reply = Route(call);
  if (!reply.ok()) return ErrorResponse(reply.status());
  return ToResponse(*reply);
}

absl::StatusOr<ScimHandler::Reply> ScimHandler::Route(const Call& call) {
  // The org's bearer token first: nothing about the org is told without it.
  auto header = call.headers.find("authorization");
  absl::string_view token;
  if (header != call.headers.end()) {
    token = absl::StripAsciiWhitespace(header->second);
    if (absl::StartsWithIgnoreCase(token, "bearer ")) {
      token = absl::StripAsciiWhitespace(token.substr(7));
    } else {
      token = "";
    }
  }
  if (token.empty()) {
    return absl::UnauthenticatedError("Authorization: Bearer <SCIM token> is required");
  }
  absl::StatusOr<bool> valid = store_.VerifyToken(call.org, token);
  if (!valid.ok()) return valid.status();
  if (!*valid) return absl::UnauthenticatedError("the bearer token is not a SCIM token of this org");

  if (call.resource == "Users") return Users(call);
  if (call.resource == "Groups") return Groups(call);
  const char* document = call.resource == "ServiceProviderConfig" ? kServiceProviderConfig
                         : call.resource == "ResourceTypes"       ? kResourceTypes
                         : call.resource == "Schemas"             ? kSchemas
                                                                  : nullptr;
  if (document == nullptr || !call.id.empty()) {
    return absl::NotFoundError(absl::StrCat("no SCIM resource type '", call.resource, "'"));
  }
  if (call.method != "GET") return MethodNotAllowed(call);
  Reply reply;
  reply.body = document;
  return reply;
}

absl::StatusOr<ScimHandler::Reply> ScimHandler::Users(const Call& call) {
  Session session(store_, directory_, options_, call);
  if (call.id.empty()) {
    if (call.method == "GET") return session.ListUsers();
    if (call.method == "POST") return session.CreateUser();
    return MethodNotAllowed(call);
  }
  if (call.method == "GET") return session.GetUser();
  if (call.method == "PUT") return session.ReplaceUser(/*patch=*/false);
  if (call.method == "PATCH") return session.ReplaceUser(/*patch=*/true);
  if (call.method == "DELETE") return session.DeleteUser();
  return MethodNotAllowed(call);
}

absl::StatusOr<ScimHandler::Reply> ScimHandler::Groups(const Call& call) {
  Session session(store_, directory_, options_, call);
  if (call.id.empty()) {
    if (call.method == "GET") return session.ListGroups();
    if (call.method == "POST") return session.CreateGroup();
    return MethodNotAllowed(call);
  }
  if (call.method == "GET") return session.GetGroup();
  if (call.method == "PUT") return session.ReplaceGroup(/*patch=*/false);
  if (call.method == "PATCH") return session.ReplaceGroup(/*patch=*/true);
  if (call.method == "DELETE") return session.DeleteGroup();
  return MethodNotAllowed(call);
}

}  // namespace integrations
