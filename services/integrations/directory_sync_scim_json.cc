#include "services/integrations/directory_sync_scim_json.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/integrations/directory_sync_scim_store.h"

namespace integrations::scim {
namespace {

constexpr char kScimTypePayload[] = "scimType";
// Operations in one PATCH request.
constexpr int kMaxPatchOperations = 1000;

absl::Status InvalidValue(absl::string_view detail) {
  return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidValue", detail);
}
absl::Status InvalidPath(absl::string_view detail) {
  return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidPath", detail);
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '$';
}

// path = [schema-urn ":"] attr [ "[" filter "]" ] [ "." sub ]   (RFC 7644 §3.5.2)
struct PatchPath {
  // "" = the resource itself, else the extension schema's object.
  std::string container;
  std::string attribute;
  std::optional<EqFilter> filter;
  std::string sub_attribute;
};

absl::StatusOr<PatchPath> ParsePath(absl::string_view path, absl::string_view core_schema) {
  PatchPath parsed;
  std::string lower = AsciiLower(path);
  std::string core_prefix = AsciiLower(core_schema) + ":";
  std::string enterprise = AsciiLower(kEnterpriseSchema);
  if (absl::StartsWith(lower, core_prefix)) {
    path.remove_prefix(core_prefix.size());
  } else if (lower == enterprise) {
    parsed.attribute = kEnterpriseSchema;
    return parsed;
  } else if (absl::StartsWith(lower, enterprise + ":")) {
    parsed.container = kEnterpriseSchema;
    path.remove_prefix(enterprise.size() + 1);
  } else if (absl::StartsWith(lower, "urn:")) {
    return InvalidPath(absl::StrCat("path '", path, "': unknown schema"));
  }
  size_t end = 0;
  while (end < path.size() && IsNameChar(path[end])) ++end;
  parsed.attribute = std::string(path.substr(0, end));
  if (parsed.attribute.empty()) return InvalidPath(absl::StrCat("path '", path, "' names no attribute"));
  path.remove_prefix(end);
  if (absl::StartsWith(path, "[")) {
    size_t close = path.find(']');
    if (close == absl::string_view::npos) return InvalidPath("path: '[' without ']'");
    absl::StatusOr<EqFilter> filter = ParseEqFilter(path.substr(1, close - 1));
    if (!filter.ok()) return InvalidPath(absl::StrCat("path filter: ", filter.status().message()));
    parsed.filter = *std::move(filter);
    path.remove_prefix(close + 1);
  }
  if (absl::StartsWith(path, ".")) {
    path.remove_prefix(1);
    end = 0;
    while (end < path.size() && IsNameChar(path[end])) ++end;
    parsed.sub_attribute = std::string(path.substr(0, end));
    if (parsed.sub_attribute.empty()) return InvalidPath("path: '.' names no sub-attribute");
    path.remove_prefix(end);
  }
  if (!path.empty()) return InvalidPath(absl::StrCat("path: unexpected '", path, "'"));
  return parsed;
}

bool ValuesEqual(const Value& a, const Value& b) {
  // Multi-valued elements are the same when their "value" sub-attributes are.
  if (a.has_struct_value() && b.has_struct_value()) {
    const Value* va = FindField(a.struct_value(), "value");
    const Value* vb = FindField(b.struct_value(), "value");
    if (va != nullptr && vb != nullptr) {
      return google::protobuf::util::MessageDifferencer::Equals(*va, *vb);
    }
  }
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

bool Matches(const Value& element, const EqFilter& filter) {
  if (!element.has_struct_value()) return false;
  for (const auto& [key, value] : element.struct_value().fields()) {
    if (AsciiLower(key) != filter.attribute) continue;
    if (value.has_string_value()) return value.string_value() == filter.value;
    if (value.has_bool_value()) return (value.bool_value() ? "true" : "false") == filter.value;
  }
  return false;
}

// add/replace of `value` at container[name] (RFC 7644 §3.5.2.1, §3.5.2.3):
// add appends to a multi-valued attribute; a complex value merges its
// sub-attributes into the existing one.
void SetAttribute(Struct& container, absl::string_view name, const Value& value, bool add) {
  Value* existing = MutableField(container, name);
  if (existing != nullptr && add && existing->has_list_value()) {
    std::vector<Value> incoming;
    if (value.has_list_value()) {
      incoming.assign(value.list_value().values().begin(), value.list_value().values().end());
    } else {
      incoming.push_back(value);
    }
    for (const Value& element : incoming) {
      bool present = false;
      for (const Value& old : existing->list_value().values()) present |= ValuesEqual(old, element);
      if (!present) *existing->mutable_list_value()->add_values() = element;
    }
    return;
  }
  if (existing != nullptr && existing->has_struct_value() && value.has_struct_value()) {
    for (const auto& [key, sub] : value.struct_value().fields()) {
      SetAttribute(*existing->mutable_struct_value(), key, sub, add);
    }
    return;
  }
  (*container.mutable_fields())[KeyFor(container, name)] = value;
}

void RemoveElements(Value& list, const std::function<bool(const Value&)>& remove) {
  google::protobuf::ListValue kept;
  for (const Value& element : list.list_value().values()) {
    if (!remove(element)) *kept.add_values() = element;
  }
  *list.mutable_list_value() = std::move(kept);
}

absl::Status Remove(Struct& container, const PatchPath& path, const Value* value) {
  Value* target = MutableField(container, path.attribute);
  if (target == nullptr) return absl::OkStatus();  // already absent
  if (path.filter.has_value()) {
    if (!target->has_list_value()) return InvalidPath(absl::StrCat(path.attribute, " is not multi-valued"));
    if (path.sub_attribute.empty()) {
      RemoveElements(*target, [&](const Value& e) { return Matches(e, *path.filter); });
      return absl::OkStatus();
    }
    for (Value& element : *target->mutable_list_value()->mutable_values()) {
      if (Matches(element, *path.filter)) EraseField(*element.mutable_struct_value(), path.sub_attribute);
    }
    return absl::OkStatus();
  }
  if (!path.sub_attribute.empty()) {
    if (target->has_struct_value()) EraseField(*target->mutable_struct_value(), path.sub_attribute);
    return absl::OkStatus();
  }
  // {"op":"remove","path":"members","value":[{"value":"id"}]} (as Entra ID
  // sends): only the listed elements go.
  if (value != nullptr && value->has_list_value() && target->has_list_value()) {
    RemoveElements(*target, [&](const Value& e) {
      for (const Value& gone : value->list_value().values()) {
        if (ValuesEqual(e, gone)) return true;
      }
      return false;
    });
    return absl::OkStatus();
  }
  EraseField(container, path.attribute);
  return absl::OkStatus();
}

absl::Status AddOrReplace(Struct& container, const PatchPath& path, const Value& value, bool add) {
  if (path.filter.has_value()) {
    Value* target = MutableField(container, path.attribute);
    bool matched = false;
    if (target != nullptr && target->has_list_value()) {
      for (Value& element : *target->mutable_list_value()->mutable_values()) {
        if (!Matches(element, *path.filter)) continue;
        matched = true;
        if (!path.sub_attribute.empty()) {
          SetAttribute(*element.mutable_struct_value(), path.sub_attribute, value, add);
        } else if (value.has_struct_value()) {
          for (const auto& [key, sub] : value.struct_value().fields()) {
            SetAttribute(*element.mutable_struct_value(), key, sub, add);
          }
        } else {
          return InvalidValue(absl::StrCat(path.attribute, "[...]: the value must be an object"));
        }
      }
    }
    if (!matched && !path.sub_attribute.empty()) {
      // `emails[type eq "work"].value` on a user without a work email: Entra
      // ID sends this to set one, so the element is made (filter + value).
      if (target == nullptr) {
        target = &(*container.mutable_fields())[path.attribute];
        target->mutable_list_value();
      }
      if (!target->has_list_value()) {
        return InvalidPath(absl::StrCat(path.attribute, " is not multi-valued"));
      }
      auto& element = *target->mutable_list_value()->add_values()->mutable_struct_value()->mutable_fields();
      element[path.filter->attribute].set_string_value(path.filter->value);
      element[path.sub_attribute] = value;
      return absl::OkStatus();
    }
    if (!matched) {
      return ScimStatus(absl::StatusCode::kInvalidArgument, "noTarget",
                        absl::StrCat(path.attribute, ": no element matches the filter"));
    }
    return absl::OkStatus();
  }
  if (!path.sub_attribute.empty()) {
    Value* target = MutableField(container, path.attribute);
    if (target == nullptr) {
      target = &(*container.mutable_fields())[path.attribute];
      target->mutable_struct_value();
    }
    if (!target->has_struct_value()) {
      return InvalidPath(absl::StrCat(path.attribute, " is not a complex attribute"));
    }
    SetAttribute(*target->mutable_struct_value(), path.sub_attribute, value, add);
    return absl::OkStatus();
  }
  SetAttribute(container, path.attribute, value, add);
  return absl::OkStatus();
}

absl::Status ApplyOperation(absl::string_view op, absl::string_view path_text, const Value* value,
                            absl::string_view core_schema, Struct& resource) {
  absl::StatusOr<PatchPath> path = ParsePath(path_text, core_schema);
  if (!path.ok()) return path.status();
  Struct* container = &resource;
  if (!path->container.empty()) {
    Value* extension = MutableField(resource, path->container);
    if (extension == nullptr) {
      if (op == "remove") return absl::OkStatus();
      extension = &(*resource.mutable_fields())[path->container];
      extension->mutable_struct_value();
    }
    if (!extension->has_struct_value()) return InvalidValue(absl::StrCat(path->container, " is not an object"));
    container = extension->mutable_struct_value();
  }
  if (op == "remove") return Remove(*container, *path, value);
  if (value == nullptr) return InvalidValue(absl::StrCat("op ", op, " on '", path_text, "' has no value"));
  return AddOrReplace(*container, *path, *value, op == "add");
}

}  // namespace

absl::Status ScimStatus(absl::StatusCode code, absl::string_view scim_type,
                        absl::string_view detail) {
  absl::Status status(code, detail);
  if (!scim_type.empty()) status.SetPayload(kScimTypePayload, absl::Cord(scim_type));
  return status;
}

std::string ScimType(const absl::Status& status) {
  auto type = status.GetPayload(kScimTypePayload);
  return type.has_value() ? std::string(*type) : std::string();
}

absl::StatusOr<Struct> ParseObject(absl::string_view json) {
  Struct object;
  google::protobuf::util::JsonParseOptions options;
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &object, options);
  if (!parsed.ok()) {
    return ScimStatus(
        absl::StatusCode::kInvalidArgument, "invalidSyntax",
        absl::StrCat("the body is not a JSON object: ",
                     absl::string_view(parsed.message().data(), parsed.message().size())));
  }
  return object;
}

std::string ToJson(const Struct& object) {
  std::string json;
  // A Struct always prints.
  (void)google::protobuf::util::MessageToJsonString(object, &json);
  return json;
}

std::string WeakEtag(const Struct& object) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    object.SerializeToCodedStream(&coded);
  }
  return absl::StrCat("W/\"", Sha256Hex(bytes).substr(0, 16), "\"");
}

const Value* FindField(const Struct& object, absl::string_view name) {
  auto exact = object.fields().find(std::string(name));
  if (exact != object.fields().end()) return &exact->second;
  std::string lower = AsciiLower(name);
  for (const auto& [key, value] : object.fields()) {
    if (AsciiLower(key) == lower) return &value;
  }
  return nullptr;
}

Value* MutableField(Struct& object, absl::string_view name) {
  std::string key = KeyFor(object, name);
  auto it = object.mutable_fields()->find(key);
  return it == object.mutable_fields()->end() ? nullptr : &it->second;
}

std::string KeyFor(const Struct& object, absl::string_view name) {
  if (object.fields().contains(std::string(name))) return std::string(name);
  std::string lower = AsciiLower(name);
  for (const auto& [key, unused] : object.fields()) {
    if (AsciiLower(key) == lower) return key;
  }
  return std::string(name);
}

void EraseField(Struct& object, absl::string_view name) {
  object.mutable_fields()->erase(KeyFor(object, name));
}

absl::StatusOr<std::optional<std::string>> OptionalString(const Struct& object,
                                                          absl::string_view name,
                                                          absl::string_view field) {
  const Value* value = FindField(object, name);
  if (value == nullptr || value->has_null_value()) return std::nullopt;
  if (!value->has_string_value()) return InvalidValue(absl::StrCat(field, " must be a string"));
  return value->string_value();
}

absl::StatusOr<std::optional<bool>> OptionalBool(const Struct& object, absl::string_view name,
                                                 absl::string_view field) {
  const Value* value = FindField(object, name);
  if (value == nullptr || value->has_null_value()) return std::nullopt;
  if (value->has_bool_value()) return value->bool_value();
  if (value->has_string_value()) {
    std::string text = AsciiLower(value->string_value());
    if (text == "true") return true;
    if (text == "false") return false;
  }
  return InvalidValue(absl::StrCat(field, " must be true or false"));
}

absl::StatusOr<EqFilter> ParseEqFilter(absl::string_view filter) {
  auto invalid = [&](absl::string_view why) {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidFilter",
                      absl::StrCat("filter '", filter, "': ", why,
                                   " (served: <attribute> eq \"<value>\")"));
  };
  absl::string_view rest = absl::StripAsciiWhitespace(filter);
  size_t end = 0;
  while (end < rest.size() && (IsNameChar(rest[end]) || rest[end] == '.')) ++end;
  if (end == 0) return invalid("no attribute");
  EqFilter parsed;
  parsed.attribute = AsciiLower(rest.substr(0, end));
  rest = absl::StripLeadingAsciiWhitespace(rest.substr(end));
  size_t op_end = 0;
  while (op_end < rest.size() && absl::ascii_isalpha(static_cast<unsigned char>(rest[op_end]))) ++op_end;
  if (AsciiLower(rest.substr(0, op_end)) != "eq") return invalid("only the operator eq is served");
  rest = absl::StripAsciiWhitespace(rest.substr(op_end));
  if (rest.size() < 2 || rest.front() != '"' || rest.back() != '"') {
    return invalid("the value must be a quoted string");
  }
  absl::string_view inner = rest.substr(1, rest.size() - 2);
  for (size_t i = 0; i < inner.size(); ++i) {
    char c = inner[i];
    if (c == '"') return invalid("unexpected '\"' (logical operators are not served)");
    if (c == '\\') {
      if (++i >= inner.size()) return invalid("dangling '\\'");
      c = inner[i];
      if (c != '"' && c != '\\' && c != '/') return invalid("unsupported escape");
    }
    parsed.value.push_back(c);
  }
  return parsed;
}

absl::Status ApplyPatch(const Struct& patch_request, absl::string_view core_schema,
                        Struct& resource) {
  const Value* operations = FindField(patch_request, "Operations");
  if (operations == nullptr || !operations->has_list_value() ||
      operations->list_value().values().empty()) {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidSyntax",
                      "a PatchOp body needs a non-empty \"Operations\" array");
  }
  if (operations->list_value().values_size() > kMaxPatchOperations) {
    return ScimStatus(absl::StatusCode::kInvalidArgument, "tooMany",
                      absl::StrCat("at most ", kMaxPatchOperations, " operations per PATCH"));
  }
  Struct patched = resource;
  int index = 0;
  for (const Value& operation : operations->list_value().values()) {
    std::string where = absl::StrCat("Operations[", index++, "]");
    if (!operation.has_struct_value()) {
      return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidSyntax",
                        absl::StrCat(where, " is not an object"));
    }
    const Struct& fields = operation.struct_value();
    absl::StatusOr<std::optional<std::string>> op = OptionalString(fields, "op", where + ".op");
    if (!op.ok()) return op.status();
    std::string name = AsciiLower(op->value_or(""));
    if (name != "add" && name != "replace" && name != "remove") {
      return ScimStatus(absl::StatusCode::kInvalidArgument, "invalidSyntax",
                        absl::StrCat(where, ".op must be add, replace or remove"));
    }
    absl::StatusOr<std::optional<std::string>> path = OptionalString(fields, "path", where + ".path");
    if (!path.ok()) return path.status();
    const Value* value = FindField(fields, "value");
    if (path->has_value() && !(*path)->empty()) {
      absl::Status applied = ApplyOperation(name, **path, value, core_schema, patched);
      if (!applied.ok()) return applied;
      continue;
    }
    if (name == "remove") {
      return ScimStatus(absl::StatusCode::kInvalidArgument, "noTarget",
                        absl::StrCat(where, ": remove needs a path"));
    }
    if (value == nullptr || !value->has_struct_value()) {
      return InvalidValue(absl::StrCat(where, ": without a path the value must be an object"));
    }
    // Each key of the value is a path of its own ("active", "name.givenName", a schema URN).
    for (const auto& [key, sub] : value->struct_value().fields()) {
      absl::Status applied = ApplyOperation(name, key, &sub, core_schema, patched);
      if (!applied.ok()) return applied;
    }
  }
  resource = std::move(patched);
  return absl::OkStatus();
}

}  // namespace integrations::scim
