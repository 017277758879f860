#include "common/redis/redis_client.h"

#include <openssl/evp.h>

#include <thread>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "common/check/check.h"
#include "common/config/secret_file.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace common::redis {
namespace {

constexpr std::chrono::milliseconds kMaxBackoff{1000};
constexpr std::chrono::milliseconds kFirstBackoff{20};

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv;
  tv.tv_sec = ms.count() / 1000;
  tv.tv_usec = (ms.count() % 1000) * 1000;
  return tv;
}

absl::StatusOr<Reply> Convert(const redisReply* raw) { return ReplyFromHiredis(raw); }

}  // namespace

// Converts a hiredis reply; error replies become a Status.
absl::StatusOr<Reply> ReplyFromHiredis(const redisReply* raw) {
  Reply reply;
  switch (raw->type) {
    case REDIS_REPLY_ERROR:
      return StatusFromRedisError(absl::string_view(raw->str, raw->len));
    case REDIS_REPLY_NIL:
      reply.type = Reply::Type::kNil;
      break;
    case REDIS_REPLY_STRING:
      reply.type = Reply::Type::kString;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_STATUS:
      reply.type = Reply::Type::kStatus;
      reply.str.assign(raw->str, raw->len);
      break;
    case REDIS_REPLY_INTEGER:
      reply.type = Reply::Type::kInteger;
      reply.integer = raw->integer;
      break;
    case REDIS_REPLY_ARRAY:
      reply.type = Reply::Type::kArray;
      reply.elements.reserve(raw->elements);
      for (size_t i = 0; i < raw->elements; ++i) {
        // An error nested in an array (e.g. inside EXEC) fails the whole reply.
        absl::StatusOr<Reply> element = Convert(raw->element[i]);
        if (!element.ok()) return element.status();
        reply.elements.push_back(*std::move(element));
      }
      break;
    default:
      return absl::InternalError(absl::StrCat("unexpected Redis reply type ", raw->type));
  }
  return reply;
}

namespace {

std::string Sha1Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

std::string Where(const Endpoint& endpoint) {
  return absl::StrCat(endpoint.host, ":", endpoint.port);
}

constexpr absl::string_view kWhatToSet =
    "set --redis_password_file (env REDIS_PASSWORD_FILE) or REDIS_PASSWORD, and --redis_user "
    "(env REDIS_USERNAME) for an ACL user";

// AUTH [username] password on a fresh context, before any other command.
// UNAUTHENTICATED when Redis refuses; UNAVAILABLE on I/O errors.
absl::Status Authenticate(redisContext* context, const Endpoint& endpoint) {
  const Credentials& credentials = endpoint.credentials;
  if (credentials.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> password = ResolvePassword(credentials);
  if (!password.ok()) return password.status();
  std::vector<const char*> argv = {"AUTH"};
  std::vector<size_t> lens = {4};
  if (!credentials.username.empty()) {
    argv.push_back(credentials.username.data());
    lens.push_back(credentials.username.size());
  }
  argv.push_back(password->data());
  lens.push_back(password->size());
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (reply == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("redis at ", Where(endpoint), ": AUTH failed: ", context->errstr));
  }
  absl::Status status;
  if (reply->type == REDIS_REPLY_ERROR) {
    // Redis's message names the problem (WRONGPASS, no password configured),
    // never the password sent.
    status = absl::UnauthenticatedError(absl::StrCat(
        "redis at ", Where(endpoint), " refused AUTH as user '",
        credentials.username.empty() ? "default" : credentials.username,
        "': ", absl::string_view(reply->str, reply->len), "; check the secret: ", kWhatToSet));
  }
  freeReplyObject(reply);
  return status;
}

// PING after AUTH: NOAUTH means Redis wants credentials none were given for.
absl::Status PingAuthenticated(redisContext* context, const Endpoint& endpoint) {
  auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
  if (reply == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("redis at ", Where(endpoint), ": PING failed: ", context->errstr));
  }
  absl::Status status;
  if (reply->type == REDIS_REPLY_ERROR &&
      absl::StartsWith(absl::string_view(reply->str, reply->len), "NOAUTH")) {
    status = absl::UnauthenticatedError(
        absl::StrCat("redis at ", Where(endpoint), " requires a password: ", kWhatToSet));
  }
  freeReplyObject(reply);
  return status;
}

}  // namespace

absl::StatusOr<std::string> ResolvePassword(const Credentials& credentials) {
  if (credentials.password_file.empty()) return credentials.password;
  return config::ReadSecretFile("the redis password file", credentials.password_file,
                                config::LineEnd::kStrip);
}

absl::Status VerifyCredentials(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  redisContext* context =
      redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, ToTimeval(timeout));
  if (context == nullptr || context->err != 0) {
    std::string why = context != nullptr ? context->errstr : "out of memory";
    if (context != nullptr) redisFree(context);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to redis at ", Where(endpoint), ": ", why));
  }
  redisSetTimeout(context, ToTimeval(timeout));
  absl::Status status = Authenticate(context, endpoint);
  if (status.ok()) status = PingAuthenticated(context, endpoint);
  redisFree(context);
  return status;
}

absl::StatusOr<long long> Reply::AsInteger() const {
  if (type == Type::kInteger) return integer;
  long long value = 0;
  if ((type == Type::kString || type == Type::kStatus) && absl::SimpleAtoi(str, &value)) {
    return value;
  }
  return absl::InternalError("Redis reply is not an integer");
}

absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view address) {
  std::vector<std::string> parts = absl::StrSplit(address, absl::MaxSplits(':', 1));
  Endpoint endpoint;
  if (parts.size() != 2 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &endpoint.port) ||
      endpoint.port <= 0 || endpoint.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis address '", address, "' is not host:port"));
  }
  endpoint.host = parts[0];
  return endpoint;
}

absl::Status StatusFromRedisError(absl::string_view message) {
  static const std::pair<absl::string_view, absl::StatusCode> kCodes[] = {
      {"INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
      {"NOT_FOUND", absl::StatusCode::kNotFound},
      {"ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
      {"PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
      {"FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
      {"RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
      {"ABORTED", absl::StatusCode::kAborted},
      {"OUT_OF_RANGE", absl::StatusCode::kOutOfRange},
      {"UNAVAILABLE", absl::StatusCode::kUnavailable},
  };
  for (const auto& [name, code] : kCodes) {
    if (absl::StartsWith(message, name) && message.size() > name.size() &&
        (message[name.size()] == ' ' || message[name.size()] == ':')) {
      absl::string_view rest = absl::StripLeadingAsciiWhitespace(
          message.substr(name.size() + 1));
      return absl::Status(code, rest);
    }
  }
  // Transient server states, not faults of the command: LOADING / BUSY /
  // MASTERDOWN / TRYAGAIN / CLUSTERDOWN; OOM (maxmemory reached), READONLY (a
  // failover made this node a replica), MISCONF (snapshots failing) and
  // NOREPLICAS clear without the caller changing anything. Callers that retry
  // UNAVAILABLE (the leaderboard consumer) must not dead-letter on them.
  // NOAUTH / WRONGPASS: the deployment's secret and Redis disagree; fixed by
  // an operator, not by dropping the command's data.
  for (absl::string_view transient : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                                      "OOM", "READONLY", "MISCONF", "NOREPLICAS", "NOAUTH",
                                      "WRONGPASS"}) {
    if (absl::StartsWith(message, transient)) {
      return absl::UnavailableError(absl::StrCat("redis: ", message));
    }
  }
  if (absl::StartsWith(message, "NOSCRIPT")) return absl::NotFoundError("NOSCRIPT");
  return absl::InternalError(absl::StrCat("redis: ", message));
}

Connection::Connection(Endpoint endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), timeout_(timeout) {}

Connection::~Connection() {
  if (context_ != nullptr) redisFree(context_);
}

void Connection::Drop(absl::string_view /*why*/) {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

void Connection::SetTimeout(std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  if (context_ != nullptr) redisSetTimeout(context_, ToTimeval(timeout_));
}

absl::Status Connection::EnsureConnected() {
  if (context_ != nullptr) return absl::OkStatus();
  auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    return absl::UnavailableError(absl::StrCat("redis at ", endpoint_.host, ":",
                                               endpoint_.port, " is unreachable; retrying"));
  }
  redisContext* context =
      redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(timeout_));
  if (context == nullptr || context->err != 0) {
    std::string why = context != nullptr ? context->errstr : "out of memory";
    if (context != nullptr) redisFree(context);
    return BackOff(now, absl::StrCat("cannot connect to redis at ", endpoint_.host, ":",
                                     endpoint_.port, ": ", why));
  }
  redisSetTimeout(context, ToTimeval(timeout_));
  // AUTH before any command. A refusal after startup (a password changed
  // under a running service) is UNAVAILABLE: retried like an outage, never a
  // reason for a consumer to dead-letter an entry.
  if (absl::Status auth = Authenticate(context, endpoint_); !auth.ok()) {
    redisFree(context);
    return BackOff(now, auth.message());
  }
  backoff_ = std::chrono::milliseconds(0);
  context_ = context;
  return absl::OkStatus();
}

absl::Status Connection::Connect() { return EnsureConnected(); }

absl::Status Connection::BackOff(std::chrono::steady_clock::time_point now,
                                 absl::string_view why) {
  backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(backoff_ * 2, kMaxBackoff);
  next_attempt_ = now + backoff_;
  return absl::UnavailableError(why);
}

namespace {
void ArgvOf(const Command& command, std::vector<const char*>& argv, std::vector<size_t>& lens) {
  argv.clear();
  lens.clear();
  for (const std::string& arg : command) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
}
}  // namespace

absl::StatusOr<Reply> Connection::Run(const Command& command) {
  absl::StatusOr<std::vector<absl::StatusOr<Reply>>> replies = Pipeline({command});
  if (!replies.ok()) return replies.status();
  return std::move((*replies)[0]);
}

absl::StatusOr<std::vector<absl::StatusOr<Reply>>> Connection::Pipeline(
    const std::vector<Command>& commands) {
  if (absl::Status status = EnsureConnected(); !status.ok()) return status;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const Command& command : commands) {
    ArgvOf(command, argv, lens);
    if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(),
                               lens.data()) != REDIS_OK) {
      std::string why = context_->errstr;
      Drop(why);
      return absl::UnavailableError(absl::StrCat("redis write failed: ", why));
    }
  }
  std::vector<absl::StatusOr<Reply>> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      std::string why = context_->errstr;
      Drop(why);
      return absl::UnavailableError(absl::StrCat("redis read failed: ", why));
    }
    replies.push_back(Convert(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return replies;
}

absl::StatusOr<NodeMode> ReadNodeMode(Connection& connection) {
  absl::StatusOr<Reply> info = connection.Run({"INFO", "cluster"});
  if (info.ok()) return NodeMode{absl::StrContains(info->str, "cluster_enabled:1"), std::nullopt};
  if (!absl::StrContains(info.status().message(), "NOPERM")) return info.status();
  absl::StatusOr<Reply> slots = connection.Run({"CLUSTER", "SLOTS"});
  if (slots.ok() && slots->type == Reply::Type::kArray) return NodeMode{true, *std::move(slots)};
  if (slots.ok() || absl::StrContains(slots.status().message(), "cluster support disabled") ||
      absl::StrContains(slots.status().message(), "NOPERM")) {
    return NodeMode{false, std::nullopt};
  }
  return slots.status();
}

std::string DeclaredKeysGuardLua(absl::string_view script_name) {
  KUDOS_CHECK(absl::c_all_of(script_name,
                             [](char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-'; }),
              "a script name is quoted into Lua as it is");
  // Which arguments of a command are keys (Redis' key specs, for the
  // commands scripts use): all of them, the first two, the destination and
  // `numkeys` sources, the one after a subcommand (XGROUP CREATE <key>), or
  // the first. Commands with no key are listed.
  // The guard runs at every call of every script (Redis keeps no Lua state
  // between calls), so it builds as little as it can per run: the declared
  // keys' set, and a command's kind found once per run by comparing interned
  // names (a table of the kinds built per run cost ~1 µs a call,
  // bench/README.md).
  static constexpr absl::string_view kGuard =
      "local redis = (function(r, keys, script) "
      "local declared = {} for i = 1, #keys do declared[keys[i]] = true end "
      "local function need(k) if not declared[k] then error({err = 'ERR UNDECLARED_KEY script ' "
      ".. script .. ' touched key ' .. tostring(k) .. ' that is not in KEYS; every key a script "
      "reads or writes must be passed in KEYS (slot migration routes by them)'}) end end "
      // 1 every argument, 2 the first two, 3 destination + numkeys sources,
      // 4 numkeys keys first, 5 every other (MSET), 6 the second, 7 none;
      // any other command (0): the first.
      "local function kind_of(u) "
      "if u == 'DEL' or u == 'EXISTS' or u == 'UNLINK' or u == 'MGET' or u == 'TOUCH' "
      "or u == 'SUNION' or u == 'SINTER' or u == 'SDIFF' or u == 'SUNIONSTORE' "
      "or u == 'SINTERSTORE' or u == 'SDIFFSTORE' or u == 'PFCOUNT' or u == 'PFMERGE' then return 1 "
      "elseif u == 'RENAME' or u == 'RENAMENX' or u == 'SMOVE' or u == 'LMOVE' or u == 'RPOPLPUSH' "
      "or u == 'COPY' or u == 'ZRANGESTORE' or u == 'GEOSEARCHSTORE' then return 2 "
      "elseif u == 'ZUNIONSTORE' or u == 'ZINTERSTORE' or u == 'ZDIFFSTORE' then return 3 "
      "elseif u == 'ZUNION' or u == 'ZINTER' or u == 'ZDIFF' or u == 'ZINTERCARD' "
      "or u == 'SINTERCARD' then return 4 "
      "elseif u == 'MSET' or u == 'MSETNX' then return 5 "
      "elseif u == 'XGROUP' or u == 'XINFO' or u == 'OBJECT' or u == 'MEMORY' then return 6 "
      "elseif u == 'TIME' or u == 'PING' or u == 'ECHO' then return 7 end return 0 end "
      "local memo = {} "
      "local function check(kind, ...) local n = select('#', ...) "
      "if kind == 1 then for i = 1, n do need((select(i, ...))) end "
      "elseif kind == 2 then need((select(1, ...))) need((select(2, ...))) "
      "elseif kind == 3 then need((select(1, ...))) for i = 3, 2 + tonumber((select(2, ...))) "
      "do need((select(i, ...))) end "
      "elseif kind == 4 then for i = 2, 1 + tonumber((select(1, ...))) do need((select(i, ...))) end "
      "elseif kind == 5 then for i = 1, n, 2 do need((select(i, ...))) end "
      "elseif kind == 6 then if n > 1 then need((select(2, ...))) end end end "
      "local function guarded(f) return function(cmd, a1, ...) "
      "if a1 == nil then if select('#', ...) > 0 then need(a1) end return f(cmd) end "
      "local kind = memo[cmd] if kind == nil then kind = kind_of(string.upper(cmd)) memo[cmd] = kind end "
      "if kind == 0 then if not declared[a1] then need(a1) end "
      "elseif kind ~= 7 then check(kind, a1, ...) end return f(cmd, a1, ...) end end "
      "return setmetatable({call = guarded(r.call), pcall = guarded(r.pcall)}, {__index = r}) "
      "end)(redis, KEYS, '";
  return absl::StrCat(kGuard, script_name, "') ");
}

Script::Script(std::string name, std::string source)
    : name_(std::move(name)),
      source_(absl::StrCat(DeclaredKeysGuardLua(name_), source)),
      sha_(Sha1Hex(source_)) {}

// Pool: redis_pool.cc.

}  // namespace common::redis
