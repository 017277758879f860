// SCIM 2.0 resources as google.protobuf.Struct (protobuf's JSON parser and
// printer, no other JSON library): parsing, the error statuses with their
// scimType, RFC 7644 §3.4.2.2 "eq" filters and §3.5.2 PATCH operations.
// Plain C++, no gRPC nor Redis.
#pragma once

#include <google/protobuf/struct.pb.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace integrations::scim {

inline constexpr char kUserSchema[] = "urn:ietf:params:scim:schemas:core:2.0:User";
inline constexpr char kGroupSchema[] = "urn:ietf:params:scim:schemas:core:2.0:Group";
inline constexpr char kEnterpriseSchema[] =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
inline constexpr char kPatchOpSchema[] = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
inline constexpr char kListSchema[] = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
inline constexpr char kErrorSchema[] = "urn:ietf:params:scim:api:messages:2.0:Error";

using google::protobuf::Struct;
using google::protobuf::Value;

// A status carrying its SCIM scimType (invalidFilter, invalidValue,
// uniqueness, invalidSyntax, invalidPath, noTarget, mutability, tooMany).
absl::Status ScimStatus(absl::StatusCode code, absl::string_view scim_type,
                        absl::string_view detail);
// The scimType of a status made by ScimStatus, or "".
std::string ScimType(const absl::Status& status);

// A JSON object, or INVALID_ARGUMENT invalidSyntax.
absl::StatusOr<Struct> ParseObject(absl::string_view json);
std::string ToJson(const Struct& object);
// A stable digest of an object's content (deterministic serialization):
// the resource's version, W/"<hex>".
std::string WeakEtag(const Struct& object);

// The key of `object` naming `name` case-insensitively (RFC 7643 §2.1), or nullptr.
const Value* FindField(const Struct& object, absl::string_view name);
Value* MutableField(Struct& object, absl::string_view name);
// The existing key spelled as stored, or `name` itself.
std::string KeyFor(const Struct& object, absl::string_view name);
void EraseField(Struct& object, absl::string_view name);

// A string attribute: nullopt when absent or null; INVALID_ARGUMENT
// invalidValue naming `field` when not a string.
absl::StatusOr<std::optional<std::string>> OptionalString(const Struct& object,
                                                          absl::string_view name,
                                                          absl::string_view field);
// A boolean attribute (also "true"/"false" strings, as Entra ID sends).
absl::StatusOr<std::optional<bool>> OptionalBool(const Struct& object, absl::string_view name,
                                                 absl::string_view field);

// filter=<attribute> eq "<value>": the only form served (RFC 7644
// §3.4.2.2); anything else is INVALID_ARGUMENT invalidFilter.
struct EqFilter {
  // Lower-cased attribute name, e.g. "username".
  std::string attribute;
  std::string value;
};
absl::StatusOr<EqFilter> ParseEqFilter(absl::string_view filter);

// Applies a PatchOp request body (RFC 7644 §3.5.2) to `resource`; the
// resource is unchanged on error. `core_schema` is the resource's core
// schema URN (a path may be prefixed with it).
absl::Status ApplyPatch(const Struct& patch_request, absl::string_view core_schema,
                        Struct& resource);

}  // namespace integrations::scim
