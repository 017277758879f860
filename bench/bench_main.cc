// kudos_bench: starts its own redis-server (loopback, free port), the
// ledger, kudos and leaderboard services and the bench echo servers, runs
// every scenario of issue 8, prints one JSON report per scenario and a
// summary table. See bench/README.md.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench/bench_cluster.h"
#include "bench/bench_env.h"
#include "bench/loadgen.h"
#include "bench/redis_floor.h"
#include "bench/slot_memory.h"
#include "bench/v1/bench.grpc.pb.h"
#include "lua/kBenchApplyEventLua.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "leaderboard/v1/leaderboard.grpc.pb.h"
#include "ledger/v1/ledger.grpc.pb.h"
#include "ledger/v1/ledger.pb.h"
#include "common/auth/auth.h"
#include "common/redis/cluster_slots.h"
#include "common/redis/redis_client.h"
#include "services/kudos/kudos_archive.h"
#include "services/kudos/kudos_store.h"
#include "services/leaderboard/apply_batch.h"
#include "services/leaderboard/leaderboard_consumer.h"
#include "services/leaderboard/leaderboard_rules.h"
#include "services/ledger/ledger_archive.h"

ABSL_FLAG(std::string, out_dir, "/tmp/kudos-bench", "logs, redis data and report.json go here");
ABSL_FLAG(std::string, scenarios, "all",
          "comma-separated subset of floor_a,floor_b,send_kudos,leaderboard,watch,rebuild,archive");
ABSL_FLAG(double, duration_s, 10, "measured seconds of each load scenario");
ABSL_FLAG(double, warmup_s, 1, "unmeasured seconds before each load scenario");
ABSL_FLAG(int, concurrency, 32, "calls in flight (closed loop)");
ABSL_FLAG(int, channels, 2, "gRPC connections of the load generator");
ABSL_FLAG(int, people, 10000, "people of the SendKudos org");
ABSL_FLAG(int, teams, 100, "teams of the SendKudos org");
ABSL_FLAG(int, board_people, 1000000, "entries of each leaderboard board");
ABSL_FLAG(int, rank_neighbors, 2, "GetRank neighbors above and below");
ABSL_FLAG(int, watchers, 1000, "WatchLeaderboard streams");
ABSL_FLAG(int, watch_channels, 8, "connections the watch streams are spread over");
ABSL_FLAG(double, watch_duration_s, 15, "seconds of probes while watchers listen");
ABSL_FLAG(int, probe_interval_ms, 250, "a probe kudos every this many ms");
ABSL_FLAG(std::string, watch_load_fractions, "0.5,0.25",
          "background SendKudos rates as shares of the peak; the first is the target's (half), "
          "the others are for information");
ABSL_FLAG(int, rebuild_events, 200000, "stream entries replayed by RebuildProjections");
ABSL_FLAG(int, retained_people, 400, "people of the small org whose memory per kudos is measured");
ABSL_FLAG(int, retained_teams, 20, "teams of the small org");
ABSL_FLAG(int, retained_kudos, 4000, "kudos sent in the small org (memory per kudos, archive)");
ABSL_FLAG(int, archive_days_ahead, 500,
          "the archivers' `now` is this many days ahead (past the default 400-day retention)");
ABSL_FLAG(int, floor_c_batch, 400,
          "stream entries per apply_event.lua call in floor (c) (the consumer reads 200 per stream)");
ABSL_FLAG(int, floor_b_depth, 16, "kudos per pipelined batch in floor (b)");
ABSL_FLAG(int, floor_b_connections, 2, "connections (threads) of floor (b)");
ABSL_FLAG(bool, redis_aof, false, "run redis-server with appendonly yes (appendfsync everysec)");
ABSL_FLAG(std::string, redis_server, BENCH_REDIS_SERVER, "redis-server binary");
ABSL_FLAG(std::string, redis_config, BENCH_REDIS_PLATFORM_CONF,
          "config file every redis-server of the bench loads before its options (the platform's "
          "scripts/redis-platform.conf, as production); empty = Redis's defaults");
ABSL_FLAG(std::string, redis_cli, BENCH_REDIS_CLI, "redis-cli binary (forms the cluster scenario's cluster)");
ABSL_FLAG(int, cluster_primaries, 3, "primaries of send_kudos_cluster's local Redis Cluster");
ABSL_FLAG(int, cluster_orgs, 30, "orgs of send_kudos_cluster, spread evenly over the primaries by slot");
ABSL_FLAG(int, cluster_people, 200, "people per org of send_kudos_cluster");
ABSL_FLAG(int, cluster_teams, 10, "teams per org of send_kudos_cluster");
ABSL_FLAG(std::string, wait_replicas_compared, "0,1,1:8",
          "ledger_wait: the --redis_wait_replicas values compared, each optionally with the "
          "ledger's --redis_loops after a colon (one ledger_server each, one primary + one "
          "replica)");
ABSL_FLAG(std::string, echo_binary, BENCH_ECHO_BINARY, "bench_echo_server binary");
ABSL_FLAG(std::string, ledger_binary, BENCH_LEDGER_BINARY, "ledger_server binary");
ABSL_FLAG(std::string, kudos_binary, BENCH_KUDOS_BINARY, "kudos_server binary");
ABSL_FLAG(std::string, leaderboard_binary, BENCH_LEADERBOARD_BINARY, "leaderboard_server binary");

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
namespace kv1 = kudos::v1;
namespace lv1 = leaderboard::v1;

constexpr char kOrg[] = "benchorg";       // SendKudos, watch
constexpr char kBoardOrg[] = "benchlb";   // 1,000,000-entry boards
constexpr char kRebuildOrg[] = "benchrb"; // rebuild
constexpr char kSmallOrg[] = "benchmem";  // memory per kudos retained, archive
constexpr int64_t kProbePoints = 1000;
const std::vector<std::string> kValues = {"on-time-delivery", "consistent-follow-up",
                                          "clear-communication", "service-mindset",
                                          "goals-accomplished", "empathy", "teamwork"};

std::string PersonId(int i) { return absl::StrFormat("p%05d", i); }
std::string TeamId(int i) { return absl::StrFormat("team-%03d", i); }

void Log(const std::string& line) {
  std::cerr << absl::FormatTime("%H:%M:%S ", absl::Now(), absl::LocalTimeZone()) << line
            << std::endl;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string Pct(double ratio) { return absl::StrFormat("%.1f%%", ratio * 100); }
std::string Verdict(bool met) { return met ? "met" : "MISSED"; }

// CPU microseconds per operation of each process during one measured load.
struct CpuRow {
  std::string scenario;
  std::string unit;  // what one operation is: "call", "kudos", "event", ...
  double ops = 0;
  double ops_per_s = 0;
  std::map<std::string, double> usec_per_op;  // process -> µs
};

// Everything scenarios share.
struct Bench {
  std::string redis_host = "127.0.0.1";
  int redis_port = 0;
  std::string echo_callback, echo_sync, ledger, kudos, leaderboard;
  std::vector<std::string> reports;  // one JSON object per scenario
  std::vector<Row> rows;
  // Figures later scenarios compare with.
  double floor_a = 0, floor_a_sync = 0, floor_b = 0, send_peak = 0;
  // send_kudos's figures, next to which send_kudos_cluster reports its own.
  double send_p99_ms = 0, send_redis_cpu_us = 0;
  std::string out_dir;
  bool org_ready = false;
  std::vector<std::string> tokens;  // per person of kOrg
  // Processes whose CPU time is reported (name, pid); 0 = this process.
  std::vector<std::pair<std::string, pid_t>> processes;
  std::vector<CpuRow> cpu_rows;  // CPU per operation, one per measured load

  void Report(const std::string& scenario, const std::string& json) {
    std::string line = Json().Str("scenario", scenario).Raw("report", json).str();
    std::cout << line << std::endl;
    reports.push_back(line);
  }
};

// CPU seconds (user + system) of a process so far; -1 when unknown.
double CpuSeconds(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/stat") : absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15 (1-based).
  if (fields.size() < 13) return -1;
  double utime = 0, stime = 0;
  if (!absl::SimpleAtod(fields[11], &utime) || !absl::SimpleAtod(fields[12], &stime)) return -1;
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds each process used between construction and Take(): where the
// machine's two cores went during a load.
struct CpuUse {
  double wall_s = 0;
  std::vector<std::pair<std::string, double>> seconds;  // process -> CPU seconds
};

class CpuMeter {
 public:
  explicit CpuMeter(const Bench& b) : processes_(b.processes), t0_(Clock::now()) {
    for (const auto& [name, pid] : processes_) start_.push_back(CpuSeconds(pid));
  }
  CpuUse Take() const {
    CpuUse use;
    use.wall_s = Seconds(t0_);
    for (size_t i = 0; i < processes_.size(); ++i) {
      use.seconds.emplace_back(processes_[i].first, CpuSeconds(processes_[i].second) - start_[i]);
    }
    return use;
  }
  // Cores used by each process (those above 0.005 cores) and in all.
  std::string Json() const { return CoresJson(Take()); }

  static std::string CoresJson(const CpuUse& use) {
    bench::Json json;
    double total = 0;
    for (const auto& [name, seconds] : use.seconds) {
      total += seconds;
      if (seconds / use.wall_s >= 0.005) json.Num(name, seconds / use.wall_s);
    }
    json.Num("total", total / use.wall_s);
    return json.str();
  }

 private:
  std::vector<std::pair<std::string, pid_t>> processes_;
  std::vector<double> start_;
  Clock::time_point t0_;
};

// CPU microseconds per operation of each process (= cores x 1e6 / ops per
// second over the meter's interval), recorded for the CPU table and returned
// as JSON. `ops`: operations done while the meter ran (warm-up included).
std::string CpuPerOp(Bench& b, const std::string& scenario, const std::string& unit, double ops,
                     const CpuUse& use) {
  CpuRow row{scenario, unit, ops, use.wall_s > 0 ? ops / use.wall_s : 0, {}};
  bench::Json json;
  json.Str("unit", unit).Num("ops", ops).Num("ops_per_s", row.ops_per_s);
  double total = 0;
  for (const auto& [name, seconds] : use.seconds) {
    const double usec = ops > 0 ? seconds * 1e6 / ops : 0;
    total += usec;
    row.usec_per_op[name] += usec;
    json.Num(name, usec);
  }
  json.Num("total", total);
  b.cpu_rows.push_back(std::move(row));
  return json.str();
}

// Redis commands (INFO commandstats) between construction and Json(units):
// calls and server-side microseconds per unit of work (a kudos, an event).
class RedisMeter {
 public:
  explicit RedisMeter(const Bench& b)
      : redis_(b.redis_host, b.redis_port), start_(Snapshot()) {
    for (const auto& [name, pid] : b.processes) {
      if (name == "redis") pid_ = pid;
    }
    cpu_start_ = CpuSeconds(pid_);
  }
  struct Use {
    double commands_per_unit = 0;
    double script_usec_per_unit = 0;
    double redis_cpu_usec_per_unit = 0;
    std::string json;
  };
  std::string Json(double units) { return Take(units).json; }
  Use Take(double units) {
    std::map<std::string, std::pair<double, double>> end = Snapshot();
    std::vector<std::pair<double, std::string>> by_calls;
    double calls = 0, script_usec = 0;
    double cpu_us = (CpuSeconds(pid_) - cpu_start_) * 1e6;
    for (const auto& [cmd, v] : end) {
      auto it = start_.find(cmd);
      double c = v.first - (it == start_.end() ? 0 : it->second.first);
      double u = v.second - (it == start_.end() ? 0 : it->second.second);
      if (c <= 0 || cmd == "info") continue;
      calls += c;
      if (cmd == "evalsha" || cmd == "eval") script_usec += u;
      by_calls.emplace_back(c, absl::StrFormat("\"%s\":%.2f", cmd, c / units));
    }
    std::sort(by_calls.rbegin(), by_calls.rend());
    std::vector<std::string> top;
    for (size_t i = 0; i < by_calls.size() && i < 12; ++i) top.push_back(by_calls[i].second);
    Use use{calls / units, script_usec / units, cpu_us / units, ""};
    use.json = bench::Json()
                   // Commands run inside scripts are counted too.
                   .Num("commands_per_unit", use.commands_per_unit)
                   // Server time inside scripts (their inner commands included).
                   .Num("script_usec_per_unit", use.script_usec_per_unit)
                   // redis-server's whole CPU time (user + system, syscalls included).
                   .Num("redis_cpu_usec_per_unit", use.redis_cpu_usec_per_unit)
                   .Raw("calls_per_unit", absl::StrCat("{", absl::StrJoin(top, ","), "}"))
                   .str();
    return use;
  }

 private:
  // command -> (calls, usec); commands run inside scripts count too.
  std::map<std::string, std::pair<double, double>> Snapshot() {
    std::map<std::string, std::pair<double, double>> out;
    RedisReply info = redis_.Run({"INFO", "commandstats"});
    for (absl::string_view line : absl::StrSplit(info.str, "\r\n")) {
      if (!absl::ConsumePrefix(&line, "cmdstat_")) continue;
      std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 1));
      double calls = 0, usec = 0;
      for (absl::string_view field : absl::StrSplit(parts.second, ',')) {
        if (absl::ConsumePrefix(&field, "calls=")) (void)absl::SimpleAtod(field, &calls);
        if (absl::ConsumePrefix(&field, "usec=")) (void)absl::SimpleAtod(field, &usec);
      }
      out[std::string(parts.first)] = {calls, usec};
    }
    return out;
  }
  Redis redis_;
  std::map<std::string, std::pair<double, double>> start_;
  pid_t pid_ = -1;
  double cpu_start_ = 0;
};

LoadOptions Load(const std::string& name, int concurrency = 0) {
  LoadOptions o;
  o.name = name;
  o.concurrency = concurrency > 0 ? concurrency : absl::GetFlag(FLAGS_concurrency);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  return o;
}

template <typename Stub>
std::vector<std::unique_ptr<Stub>> Stubs(const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<std::unique_ptr<Stub>> stubs;
  for (const auto& channel : channels) stubs.push_back(std::make_unique<Stub>(channel));
  return stubs;
}

// ---------------------------------------------------------------- floor (a)

LoadResult EchoLoad(const std::string& address, const std::string& name) {
  auto channels = MakeChannels(address, absl::GetFlag(FLAGS_channels));
  auto stubs = Stubs<bench::v1::Echo::Stub>(channels);
  struct Call {
    grpc::ClientContext context;
    google::protobuf::Empty request, response;
  };
  return RunLoad(Load(name), [&](int slot, int64_t, Done done) {
    auto call = std::make_shared<Call>();
    call->context.set_deadline(DeadlineIn(5));
    stubs[slot % stubs.size()]->async()->Ping(&call->context, &call->request, &call->response,
                                              [call, done](grpc::Status s) { done(s); });
  });
}

void FloorA(Bench& b) {
  CpuMeter cpu_callback(b);
  LoadResult callback = EchoLoad(b.echo_callback, "floor_a_echo_callback");
  CpuUse callback_use = cpu_callback.Take();
  b.floor_a = callback.throughput;
  b.Report("floor_a", Json()
                          .Raw("load", ToJson(callback))
                          .Raw("cpu_cores", CpuMeter::CoresJson(callback_use))
                          .Raw("cpu_usec_per_op",
                               CpuPerOp(b, "floor_a", "call", callback.started, callback_use))
                          .str());
  CpuMeter cpu_sync(b);
  LoadResult sync = EchoLoad(b.echo_sync, "floor_a_echo_sync");
  CpuUse sync_use = cpu_sync.Take();
  b.floor_a_sync = sync.throughput;
  b.Report("floor_a_sync",
           Json()
               .Raw("load", ToJson(sync))
               .Raw("cpu_cores", CpuMeter::CoresJson(sync_use))
               .Raw("cpu_usec_per_op", CpuPerOp(b, "floor_a_sync", "call", sync.started, sync_use))
               .str());
  b.rows.push_back({"floor_a", "echo (callback server) calls/s", callback.throughput, "/s", "", "",
                    "", absl::StrFormat("p99 %.2f ms", callback.p99_ms)});
  b.rows.push_back({"floor_a_sync", "echo (sync server) calls/s", sync.throughput, "/s", "", "",
                    "", absl::StrFormat("p99 %.2f ms", sync.p99_ms)});
}

// ---------------------------------------------------------------- floor (b)

void FloorB(Bench& b) {
  FloorBOptions o;
  o.host = b.redis_host;
  o.port = b.redis_port;
  o.people = absl::GetFlag(FLAGS_people);
  o.depth = absl::GetFlag(FLAGS_floor_b_depth);
  o.connections = absl::GetFlag(FLAGS_floor_b_connections);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  CpuMeter cpu(b);
  FloorBResult r = RunFloorB(o);
  CpuUse use = cpu.Take();
  std::string cpu_json = CpuMeter::CoresJson(use);
  // Kudos are counted in the measured window only: per kudos = cores / rate.
  std::string per_op_json =
      CpuPerOp(b, "floor_b", "kudos", r.kudos_per_s * use.wall_s, use);
  b.floor_b = r.kudos_per_s;
  b.Report("floor_b", Json()
                          .Str("name", "floor_b_redis_kudos_work")
                          .Int("connections", o.connections)
                          .Int("kudos_per_batch", o.depth)
                          .Num("seconds", o.duration_s)
                          .Int("kudos", r.kudos)
                          .Num("kudos_per_s", r.kudos_per_s)
                          .Int("commands_per_kudos", r.commands_per_kudos)
                          .Num("commands_per_s", r.commands_per_s)
                          .Num("scripts_per_s", r.scripts_per_s)
                          .Num("batch_p50_ms", r.batch_p50_ms)
                          .Num("batch_p99_ms", r.batch_p99_ms)
                          .Int("error_replies", r.error_replies)
                          .Str("first_error", r.first_error)
                          .Raw("cpu_cores", cpu_json)
                          .Raw("cpu_usec_per_op", per_op_json)
                          .str());
  b.rows.push_back({"floor_b", "Redis work of one kudos, pipelined (kudos/s)", r.kudos_per_s, "/s",
                    "", "", "",
                    r.error_replies ? absl::StrCat(r.error_replies, " error replies") : "info"});
}

// ---------------------------------------------------------------- the org

// Teams, people (p00000.., plus "probe" and "probe-giver"), settings that
// keep a load clear of caps and rate limits (the retention policy left at
// its defaults); returns a member token per person p00000...
std::vector<std::string> SetUpDirectory(Bench& b, const std::string& org, int people, int teams,
                                        const std::string& report_name) {
  const std::string admin_token = MintToken(org, "bench-admin", {"admin"});
  auto channel = MakeChannels(b.kudos, 1)[0];
  auto directory = kv1::DirectoryService::NewStub(channel);

  kv1::UpdateOrgSettingsRequest settings_request;
  kv1::OrgSettings* settings = settings_request.mutable_settings();
  settings->set_time_zone("UTC");
  settings->mutable_allowance()->set_points_per_period(1000000000);
  settings->mutable_allowance()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  settings->set_min_points(1);
  settings->set_max_points(1000000);
  settings->set_weekly_pair_cap_points(1000000000000);
  settings->set_max_kudos_per_minute(10000);
  kv1::UpdateOrgSettingsResponse settings_response;
  grpc::ClientContext context;
  Authorize(context, admin_token, 10);
  grpc::Status status = directory->UpdateOrgSettings(&context, settings_request, &settings_response);
  if (!status.ok()) throw std::runtime_error("UpdateOrgSettings: " + status.error_message());

  auto channels = MakeChannels(b.kudos, 2);
  auto stubs = Stubs<kv1::DirectoryService::Stub>(channels);
  // The services limit calls per person (common/ratelimit, 50/s by
  // default): the setup is spread over many admins, as the loads are over
  // many people and screens.
  std::vector<std::string> admins;
  for (int i = 0; i < 256; ++i) admins.push_back(MintToken(org, absl::StrCat("bench-admin-", i), {"admin"}));
  auto bounded = [&](const std::string& name, int64_t count) {
    LoadOptions o = Load(name);
    o.warmup_s = 0;
    o.duration_s = 300;
    o.max_requests = count;
    return o;
  };
  struct TeamCall {
    grpc::ClientContext context;
    kv1::CreateTeamRequest request;
    kv1::CreateTeamResponse response;
  };
  Clock::time_point t0 = Clock::now();
  LoadResult team_result = RunLoad(bounded("setup_create_team", teams), [&](int slot, int64_t seq, Done done) {
    auto call = std::make_shared<TeamCall>();
    Authorize(call->context, admins[seq % admins.size()], 10);
    call->request.mutable_team()->set_team_id(TeamId(static_cast<int>(seq)));
    call->request.mutable_team()->set_display_name(absl::StrCat("Team ", seq));
    stubs[slot % stubs.size()]->async()->CreateTeam(&call->context, &call->request,
                                                    &call->response,
                                                    [call, done](grpc::Status s) { done(s); });
  });
  struct PersonCall {
    grpc::ClientContext context;
    kv1::CreatePersonRequest request;
    kv1::CreatePersonResponse response;
  };
  LoadResult person_result =
      RunLoad(bounded("setup_create_person", people + 2), [&](int slot, int64_t seq, Done done) {
        auto call = std::make_shared<PersonCall>();
        Authorize(call->context, admins[seq % admins.size()], 10);
        kv1::Person* person = call->request.mutable_person();
        if (seq < people) {
          person->set_person_id(PersonId(static_cast<int>(seq)));
          person->set_display_name(absl::StrCat("Person ", seq));
          person->set_team_id(TeamId(static_cast<int>(seq % teams)));
        } else {
          person->set_person_id(seq == people ? "probe" : "probe-giver");
          person->set_display_name(person->person_id());
        }
        person->set_active(true);
        stubs[slot % stubs.size()]->async()->CreatePerson(&call->context, &call->request,
                                                          &call->response,
                                                          [call, done](grpc::Status s) { done(s); });
      });
  std::vector<std::string> tokens;
  for (int i = 0; i < people; ++i) tokens.push_back(MintToken(org, PersonId(i), {"member"}));
  b.Report(report_name, Json()
                        .Str("org", org)
                        .Num("seconds", Seconds(t0))
                        .Raw("create_team", ToJson(team_result))
                        .Raw("create_person", ToJson(person_result))
                        .str());
  if (person_result.errors > 0 || team_result.errors > 0) {
    throw std::runtime_error("org setup failed: " + person_result.first_error +
                             team_result.first_error);
  }
  return tokens;
}

void SetUpOrg(Bench& b) {
  if (b.org_ready) return;
  b.tokens = SetUpDirectory(b, kOrg, absl::GetFlag(FLAGS_people), absl::GetFlag(FLAGS_teams), "setup");
  b.org_ready = true;
}

// ---------------------------------------------------------------- catch-up

// Entries of the org's two streams the leaderboard group has not acknowledged
// (lag + pending), or -1 when the group does not exist yet.
int64_t Backlog(Redis& redis, const std::string& org) {
  int64_t total = 0;
  for (const std::string& stream : {leaderboard::KudosStream(org), leaderboard::LedgerStream(org)}) {
    RedisReply groups = redis.Run({"XINFO", "GROUPS", stream});
    if (groups.is_error() || groups.elements.empty()) return -1;
    for (const RedisReply& group : groups.elements) {
      for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
        const std::string& field = group.elements[i].str;
        const RedisReply& value = group.elements[i + 1];
        if (field == "pending") total += value.integer;
        if (field == "lag") total += value.type == REDIS_REPLY_INTEGER ? value.integer : 0;
      }
    }
  }
  return total;
}

// Waits (bounded) until the leaderboard consumed everything of `org`.
std::string WaitForConsumer(Bench& b, double timeout_s, const std::string& org = kOrg) {
  Redis redis(b.redis_host, b.redis_port);
  Clock::time_point t0 = Clock::now();
  int64_t first = Backlog(redis, org);
  int64_t now = first;
  while (Seconds(t0) < timeout_s) {
    now = Backlog(redis, org);
    if (now == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  double took = Seconds(t0);
  return Json()
      .Int("backlog_entries", first)
      .Num("seconds_to_drain", took)
      .Int("left", now)
      .Num("drain_entries_per_s", took > 0.05 && first > 0 ? (first - std::max<int64_t>(now, 0)) / took : 0)
      .str();
}

// ---------------------------------------------------------------- SendKudos

// Random giver (their own member token) -> random other person of the org
// the tokens belong to. `on_sent` (optional) sees each accepted kudos, from
// the completion threads.
struct SendKudosLoad {
  Bench& b;
  const std::vector<std::string>& tokens;
  std::function<void(int giver, const kv1::Kudos&)> on_sent;
  std::vector<std::unique_ptr<kv1::KudosService::Stub>> stubs;
  std::vector<std::mt19937_64> rngs;
  std::string run_id = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  std::atomic<int64_t> counter{0};

  SendKudosLoad(Bench& bench, int slots) : SendKudosLoad(bench, slots, bench.tokens) {}
  SendKudosLoad(Bench& bench, int slots, const std::vector<std::string>& org_tokens)
      : b(bench), tokens(org_tokens) {
    stubs = Stubs<kv1::KudosService::Stub>(MakeChannels(b.kudos, absl::GetFlag(FLAGS_channels)));
    for (int i = 0; i < slots; ++i) rngs.emplace_back(1000 + i);
  }

  void Start(int slot, Done done) {
    struct Call {
      grpc::ClientContext context;
      kv1::SendKudosRequest request;
      kv1::SendKudosResponse response;
    };
    auto call = std::make_shared<Call>();
    std::mt19937_64& rng = rngs[slot];
    const int people = static_cast<int>(tokens.size());
    int giver = static_cast<int>(rng() % people);
    int recipient = static_cast<int>(rng() % (people - 1));
    if (recipient >= giver) ++recipient;
    Authorize(call->context, tokens[giver], 5);
    kv1::SendKudosRequest& r = call->request;
    r.set_request_id(absl::StrCat("bench-", run_id, "-", counter.fetch_add(1)));
    r.add_recipient_ids(PersonId(recipient));
    r.set_message("Thanks for the on-time delivery and the clear follow-up!");
    r.add_values(kValues[rng() % kValues.size()]);
    r.set_points_per_recipient(1 + static_cast<int64_t>(rng() % 5));
    stubs[slot % stubs.size()]->async()->SendKudos(
        &call->context, &call->request, &call->response, [this, call, giver, done](grpc::Status s) {
          if (s.ok() && on_sent) on_sent(giver, call->response.kudos());
          done(s);
        });
  }
};

// Stops a child process (SIGSTOP) while in scope: the leaderboard during a
// write load, so Redis's figures are the write path's alone and the
// consumer's work is measured apart when it catches up after SIGCONT.
class PausedProcess {
 public:
  PausedProcess(const Bench& b, const std::string& name) {
    for (const auto& [n, pid] : b.processes) {
      if (n == name && pid > 0 && kill(pid, SIGSTOP) == 0) pid_ = pid;
    }
  }
  ~PausedProcess() { Resume(); }
  PausedProcess(const PausedProcess&) = delete;
  PausedProcess& operator=(const PausedProcess&) = delete;
  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// A write load with the consumer paused, then the consumer's catch-up:
// CPU and Redis work of each, per kudos.
struct WriteAndCatchUp {
  LoadResult load;
  RedisMeter::Use write_redis, catchup_redis;
  std::string write_cpu_cores, write_cpu_per_op, catchup, catchup_cpu_cores, catchup_cpu_per_op;
  std::map<std::string, double> write_usec_per_kudos;  // process -> CPU µs per kudos during the load

  std::string Json() const {
    return bench::Json()
        .Raw("load", ToJson(load))
        .Raw("cpu_cores", write_cpu_cores)
        .Raw("cpu_usec_per_kudos", write_cpu_per_op)
        .Raw("redis_per_kudos_during_load", write_redis.json)
        .Raw("leaderboard_catch_up", catchup)
        .Raw("catch_up_cpu_cores", catchup_cpu_cores)
        .Raw("catch_up_cpu_usec_per_kudos", catchup_cpu_per_op)
        .Raw("redis_per_kudos_consumer_catch_up", catchup_redis.json)
        .str();
  }
};

WriteAndCatchUp RunWriteAndCatchUp(Bench& b, const std::string& scenario, const std::string& org,
                                   const LoadOptions& o, SendKudosLoad& load) {
  WriteAndCatchUp out;
  {
    PausedProcess paused(b, "leaderboard");
    CpuMeter cpu(b);
    RedisMeter redis_meter(b);
    out.load = RunLoad(o, [&](int slot, int64_t, Done done) { load.Start(slot, std::move(done)); });
    CpuUse use = cpu.Take();
    // Every kudos started is done by now (drained), warm-up included.
    const double kudos = static_cast<double>(std::max<int64_t>(1, out.load.started));
    out.write_redis = redis_meter.Take(kudos);
    out.write_cpu_cores = CpuMeter::CoresJson(use);
    out.write_cpu_per_op = CpuPerOp(b, scenario, "kudos", kudos, use);
    out.write_usec_per_kudos = b.cpu_rows.back().usec_per_op;
  }
  CpuMeter catchup_cpu(b);
  RedisMeter catchup_redis(b);
  out.catchup = WaitForConsumer(b, 300, org);
  CpuUse use = catchup_cpu.Take();
  const double kudos = static_cast<double>(std::max<int64_t>(1, out.load.started));
  out.catchup_redis = catchup_redis.Take(kudos);
  out.catchup_cpu_cores = CpuMeter::CoresJson(use);
  out.catchup_cpu_per_op = CpuPerOp(b, scenario + " catch-up", "kudos", kudos, use);
  return out;
}

// The leaderboard compactor's pass over `org`, as the service makes it every
// --compact_interval_ms (10 minutes by default: long before a real org of
// 400 people has sent 4,000 kudos): the service's own decision
// (Compactor::CompactIfDue, the service's default options) and compaction,
// run in this process against the bench's Redis. ABORTED while the running
// service compacts the org: retried, at most 100 times.
std::string CompactIfDue(Bench& b, const std::string& org) {
  absl::StatusOr<common::redis::PoolOptions> options =
      common::redis::PoolOptionsFor(absl::StrCat(b.redis_host, ":", b.redis_port));
  if (!options.ok()) throw std::runtime_error(options.status().ToString());
  options->size = 2;
  options->timeout = std::chrono::milliseconds(10000);
  common::redis::Pool pool(*options);
  leaderboard::Store store(pool);
  leaderboard::Projector projector(store);
  leaderboard::Compactor compactor(store, projector, leaderboard::Compactor::Options{});
  absl::StatusOr<std::optional<leaderboard::Projector::CompactResult>> result;
  for (int attempt = 0; attempt < 100; ++attempt) {
    result = compactor.CompactIfDue(org);
    if (result.ok() || result.status().code() != absl::StatusCode::kAborted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!result.ok()) return Json().Str("error", result.status().ToString()).str();
  if (!result->has_value()) return Json().Bool("due", false).str();
  return Json()
      .Bool("due", true)
      .Int("events_read", (*result)->events_read)
      .Int("trimmed", (*result)->trimmed)
      .str();
}

// The issue's memory shape: a small org (400 people, 4,000 kudos by
// default) written through the API, the consumer caught up, then every key
// of the org's slot measured. Kept for the archive scenario.
struct SmallOrg {
  bool ready = false;
  std::vector<std::string> tokens;
  SlotMemory directory;  // after setup, before any kudos
  SlotMemory caught_up;  // after the kudos and the consumer's catch-up
  SlotMemory retained;   // then after the leaderboard's compactor's pass
  int64_t kudos = 0;     // accepted
  double bytes_per_kudos = 0;  // retained
  std::string compaction;      // what the compactor's pass did
  std::vector<std::pair<int, std::string>> sample;  // (giver, kudos id), spread over the run
  WriteAndCatchUp figures;
  std::string json;
};

SmallOrg& EnsureSmallOrg(Bench& b) {
  static SmallOrg s;
  if (s.ready) return s;
  const int people = absl::GetFlag(FLAGS_retained_people);
  const int64_t kudos = absl::GetFlag(FLAGS_retained_kudos);
  s.tokens = SetUpDirectory(b, kSmallOrg, people, absl::GetFlag(FLAGS_retained_teams), "setup_small_org");
  WaitForConsumer(b, 120, kSmallOrg);
  Redis redis(b.redis_host, b.redis_port);
  s.directory = MeasureSlot(redis, kSmallOrg);

  LoadOptions o = Load("send_kudos_small_org");
  o.warmup_s = 0;
  o.duration_s = 300;
  o.max_requests = kudos;
  SendKudosLoad load(b, o.concurrency, s.tokens);
  std::mutex mu;
  std::atomic<int64_t> accepted{0};
  const int64_t every = std::max<int64_t>(1, kudos / 20);
  load.on_sent = [&](int giver, const kv1::Kudos& k) {
    if (accepted.fetch_add(1) % every != 0) return;
    std::lock_guard<std::mutex> lock(mu);
    s.sample.emplace_back(giver, k.kudos_id());
  };
  s.figures = RunWriteAndCatchUp(b, "send_kudos (small org)", kSmallOrg, o, load);
  s.kudos = accepted.load();
  if (s.kudos == 0) throw std::runtime_error("small org: no kudos accepted: " + s.figures.load.first_error);
  s.caught_up = MeasureSlot(redis, kSmallOrg);
  s.compaction = CompactIfDue(b, kSmallOrg);
  s.retained = MeasureSlot(redis, kSmallOrg);
  s.bytes_per_kudos = static_cast<double>(s.retained.bytes) / static_cast<double>(s.kudos);
  s.json = Json()
               .Str("org", kSmallOrg)
               .Int("people", people)
               .Int("kudos", s.kudos)
               .Str("measured_as", "SCAN MATCH *{org}* + MEMORY USAGE key SAMPLES 0, every key of the org's slot, "
                                   "after the consumer caught up and the leaderboard's compactor's pass")
               .Num("bytes_per_kudos", s.bytes_per_kudos)
               .Num("bytes_per_kudos_above_directory",
                    static_cast<double>(s.retained.bytes - s.directory.bytes) / static_cast<double>(s.kudos))
               .Num("bytes_per_kudos_before_compaction",
                    static_cast<double>(s.caught_up.bytes) / static_cast<double>(s.kudos))
               .Raw("compaction", s.compaction)
               .Raw("directory_only", s.directory.Json())
               .Raw("after_catch_up", s.caught_up.Json())
               .Raw("after_compaction", s.retained.Json())
               .Raw("write_and_catch_up", s.figures.Json())
               .str();
  s.ready = true;
  return s;
}

// Floor (d): the consumer's board increments alone (RunFloorD, below).
struct FloorD {
  double redis_usec_per_kudos = 0;
  double zincrby_per_kudos = 0;
  std::string json;
};
FloorD RunFloorD(Bench& b, int kudos);
constexpr int kFloorDKudos = 20000;  // about a 10 s SendKudos run's

void SendKudos(Bench& b) {
  SetUpOrg(b);
  WaitForConsumer(b, 120);  // the directory's events, before anything is measured
  LoadOptions o = Load("send_kudos");
  SendKudosLoad load(b, o.concurrency);
  WriteAndCatchUp f = RunWriteAndCatchUp(b, "send_kudos", kOrg, o, load);
  const LoadResult& r = f.load;
  b.send_peak = r.throughput;
  b.send_p99_ms = r.p99_ms;
  b.send_redis_cpu_us = f.write_redis.redis_cpu_usec_per_unit;
  SmallOrg& small = EnsureSmallOrg(b);
  const FloorD floor_d = RunFloorD(b, kFloorDKudos);
  b.Report("send_kudos", Json()
                             .Raw("load", ToJson(r))
                             .Int("people", static_cast<int64_t>(b.tokens.size()))
                             .Num("floor_a", b.floor_a)
                             .Num("ratio_to_floor_a", b.floor_a > 0 ? r.throughput / b.floor_a : 0)
                             .Num("floor_b", b.floor_b)
                             .Num("ratio_to_floor_b", b.floor_b > 0 ? r.throughput / b.floor_b : 0)
                             .Str("leaderboard_during_load", "paused (SIGSTOP); its work is the catch-up")
                             .Raw("cpu_cores", f.write_cpu_cores)
                             .Raw("cpu_usec_per_kudos", f.write_cpu_per_op)
                             .Raw("leaderboard_catch_up", f.catchup)
                             .Raw("catch_up_cpu_cores", f.catchup_cpu_cores)
                             .Raw("catch_up_cpu_usec_per_kudos", f.catchup_cpu_per_op)
                             .Raw("redis_per_kudos_during_load", f.write_redis.json)
                             .Raw("redis_per_kudos_consumer_catch_up", f.catchup_redis.json)
                             .Raw("floor_d", floor_d.json)
                             .Num("redis_bytes_per_kudos_retained", small.bytes_per_kudos)
                             .Raw("retained", small.json)
                             .str());
  // Issue 13's targets: the Redis work of a kudos bounds the write path, so
  // throughput is judged against floor (b); floor (a) stays as information.
  const double ratio_b = b.floor_b > 0 ? r.throughput / b.floor_b : 0;
  b.rows.push_back({"send_kudos", "throughput at 32 in flight", r.throughput, "/s",
                    absl::StrFormat("floor_b %.0f/s", b.floor_b), Pct(ratio_b), ">= 50% of floor_b",
                    Verdict(ratio_b >= 0.5)});
  b.rows.push_back({"send_kudos", "p99 latency at 32 in flight", r.p99_ms, "ms", "", "",
                    "< 10 ms", Verdict(r.p99_ms < 10)});
  b.rows.push_back({"send_kudos", "share of floor_a (gRPC echo)", r.throughput, "/s",
                    absl::StrFormat("floor_a %.0f/s", b.floor_a),
                    Pct(b.floor_a > 0 ? r.throughput / b.floor_a : 0), "", "info"});
  const auto service_us = [&](const char* process) {
    auto it = f.write_usec_per_kudos.find(process);
    return it == f.write_usec_per_kudos.end() ? 0.0 : it->second;
  };
  b.rows.push_back({"send_kudos", "kudos service CPU per kudos", service_us("kudos"), "us", "", "",
                    "<= 200 us", Verdict(service_us("kudos") <= 200)});
  b.rows.push_back({"send_kudos", "ledger CPU per kudos", service_us("ledger"), "us", "", "",
                    "<= 100 us", Verdict(service_us("ledger") <= 100)});
  const double write_us = f.write_redis.redis_cpu_usec_per_unit;
  const double catchup_us = f.catchup_redis.redis_cpu_usec_per_unit;
  b.rows.push_back({"send_kudos", "Redis CPU per kudos, write path", write_us, "us",
                    absl::StrFormat("%.1f commands", f.write_redis.commands_per_unit), "",
                    "<= 200 us", Verdict(write_us <= 200)});
  b.rows.push_back({"send_kudos", "Redis CPU per kudos, consumer catching up", catchup_us, "us",
                    absl::StrFormat("%.1f commands", f.catchup_redis.commands_per_unit), "",
                    "<= 100 us", Verdict(catchup_us <= 100)});
  b.rows.push_back({"send_kudos", "... its board increments alone, native ZINCRBY (floor d)",
                    floor_d.redis_usec_per_kudos, "us",
                    absl::StrFormat("%.1f ZINCRBY", floor_d.zincrby_per_kudos),
                    Pct(catchup_us > 0 ? floor_d.redis_usec_per_kudos / catchup_us : 0), "", "info"});
  b.rows.push_back({"send_kudos", absl::StrFormat("Redis bytes per kudos retained (%d people, %d kudos)",
                                                  absl::GetFlag(FLAGS_retained_people), small.kudos),
                    small.bytes_per_kudos, "B", "all keys of the slot", "", "<= 1,000 B",
                    Verdict(small.bytes_per_kudos <= 1000)});
  if (r.errors > 0) {
    b.rows.push_back({"send_kudos", "errors", static_cast<double>(r.errors), "", "", "", "0",
                      r.first_error.substr(0, 60)});
  }
}

// ---------------------------------------------------------------- boards

lv1::Board OrgBoard(lv1::Window window) {
  lv1::Board board;
  board.set_metric(lv1::METRIC_POINTS_RECEIVED);
  board.set_window(window);
  board.set_scope(lv1::SCOPE_ORG);
  return board;
}

std::string BoardMember(int i) { return absl::StrFormat("m%07d", i); }

// Fills one board per window with `n` members (ZADD, 1000 per command,
// pipelined) and measures used_memory per entry.
std::string PopulateBoards(Bench& b, int n, std::vector<Row>& rows) {
  Redis redis(b.redis_host, b.redis_port);
  leaderboard::OrgCalendar calendar =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  std::mt19937_64 rng(42);
  std::vector<std::string> per_window;
  int64_t total_bytes = 0, total_entries = 0;
  for (lv1::Window window : leaderboard::AllWindows()) {
    auto resolved = leaderboard::ResolveBoard(kBoardOrg, OrgBoard(window), calendar, absl::Now());
    if (!resolved.ok()) throw std::runtime_error(std::string(resolved.status().message()));
    Clock::time_point t0 = Clock::now();
    int64_t before = redis.UsedMemory();
    std::vector<std::vector<std::string>> batch;
    for (int i = 0; i < n;) {
      std::vector<std::string> zadd = {"ZADD", resolved->key};
      for (int j = 0; j < 1000 && i < n; ++j, ++i) {
        // Scores like a busy board: many small totals, a long tail, ties.
        int64_t score = 1 + static_cast<int64_t>(std::pow(static_cast<double>(rng() % 1000000) / 1e6, 3) * 20000);
        zadd.push_back(absl::StrCat(score));
        zadd.push_back(BoardMember(i));
      }
      batch.push_back(std::move(zadd));
      if (batch.size() == 16) {
        for (const RedisReply& r : redis.Pipeline(batch)) {
          if (r.is_error()) throw std::runtime_error("ZADD: " + r.str);
        }
        batch.clear();
      }
    }
    redis.Pipeline(batch);
    std::optional<absl::Time> expiry = leaderboard::BoardExpiry(window, resolved->period);
    if (expiry) redis.Run({"EXPIREAT", resolved->key, absl::StrCat(absl::ToUnixSeconds(*expiry))});
    int64_t after = redis.UsedMemory();
    double per_entry = static_cast<double>(after - before) / n;
    total_bytes += after - before;
    total_entries += n;
    std::string name(leaderboard::WindowName(window));
    RedisReply encoding = redis.Run({"OBJECT", "ENCODING", resolved->key});
    per_window.push_back(Json()
                             .Str("window", name)
                             .Str("key", resolved->key)
                             .Str("encoding", encoding.str)
                             .Int("entries", n)
                             .Int("used_memory_delta", after - before)
                             .Num("bytes_per_entry", per_entry)
                             .Num("populate_seconds", Seconds(t0))
                             .str());
    rows.push_back({"memory", absl::StrCat("bytes per entry, ", name, " board"), per_entry, "B",
                    "", "", "<= 150 B", Verdict(per_entry <= 150)});
  }
  double average = static_cast<double>(total_bytes) / static_cast<double>(total_entries);
  rows.push_back({"memory", "bytes per entry, all 6 windows", average, "B", "", "", "<= 150 B",
                  Verdict(average <= 150)});
  return Json()
      .Int("people", n)
      .Int("boards", static_cast<int64_t>(per_window.size()))
      .Int("used_memory_delta_total", total_bytes)
      .Num("bytes_per_entry_per_board", average)
      .Raw("boards_detail", absl::StrCat("[", absl::StrJoin(per_window, ","), "]"))
      .str();
}

// ---------------------------------------------------------------- ListKudos

// A team's feed, newest 20 first, read by random members of the org after
// SendKudos filled it (about 400 entries a team at the default sizes, most
// past its head): each entry is a kudos's seq, read as its id through
// feed:all's head or sealed chunks (docs/retention-kudos.md).
void ListKudos(Bench& b) {
  SetUpOrg(b);
  const int teams = absl::GetFlag(FLAGS_teams);
  auto stubs = Stubs<kv1::KudosService::Stub>(MakeChannels(b.kudos, absl::GetFlag(FLAGS_channels)));
  struct ListCall {
    grpc::ClientContext context;
    kv1::ListKudosRequest request;
    kv1::ListKudosResponse response;
  };
  // Shared with the calls' callbacks, which may outlive the scenario when a
  // call is still in flight at its end.
  auto listed = std::make_shared<std::atomic<int64_t>>(0);
  CpuMeter cpu(b);
  LoadResult r = RunLoad(Load("list_kudos"), [&](int slot, int64_t seq, Done done) {
    auto call = std::make_shared<ListCall>();
    Authorize(call->context, b.tokens[(seq * 7919) % b.tokens.size()], 5);
    call->request.mutable_filter()->set_team_id(TeamId(static_cast<int>(seq % teams)));
    call->request.set_page_size(20);
    stubs[slot % stubs.size()]->async()->ListKudos(
        &call->context, &call->request, &call->response, [call, listed, done](grpc::Status s) {
          *listed += call->response.kudos_size();
          done(s);
        });
  });
  CpuUse use = cpu.Take();
  const double ratio = b.floor_a > 0 ? r.throughput / b.floor_a : 0;
  const double per_call = r.started > 0 ? static_cast<double>(listed->load()) / r.started : 0;
  b.Report("list_kudos", Json()
                             .Raw("load", ToJson(r))
                             .Num("kudos_per_page", per_call)
                             .Raw("cpu_cores", CpuMeter::CoresJson(use))
                             .Raw("cpu_usec_per_op", CpuPerOp(b, "list_kudos", "call", r.started, use))
                             .Num("floor_a", b.floor_a)
                             .Num("ratio_to_floor_a", ratio)
                             .str());
  b.rows.push_back({"list_kudos", "ListKudos of a team, newest 20, at 32 in flight", r.throughput, "/s",
                    absl::StrFormat("floor_a %.0f/s", b.floor_a), Pct(ratio), "", "info"});
  b.rows.push_back({"list_kudos", "kudos per page", per_call, "", "", "", "",
                    r.errors ? absl::StrCat(r.errors, " errors: ", r.first_error.substr(0, 40)) : "info"});
  b.rows.push_back({"list_kudos", "p99 latency", r.p99_ms, "ms", "", "", "", "info"});
}

void Leaderboard(Bench& b) {
  const int n = absl::GetFlag(FLAGS_board_people);
  std::vector<Row> memory_rows;
  std::string memory = PopulateBoards(b, n, memory_rows);
  b.Report("memory", memory);

  // Many screens, so the per-person API limit (50/s) is not what is measured.
  std::vector<std::string> screens;
  for (int i = 0; i < 1000; ++i) screens.push_back(MintToken(kBoardOrg, absl::StrCat("screen-", i), {"screen"}));
  auto stubs = Stubs<lv1::LeaderboardService::Stub>(
      MakeChannels(b.leaderboard, absl::GetFlag(FLAGS_channels)));
  struct TopCall {
    grpc::ClientContext context;
    lv1::GetLeaderboardRequest request;
    lv1::GetLeaderboardResponse response;
  };
  CpuMeter top_cpu(b);
  LoadResult top = RunLoad(Load("get_leaderboard_top10"), [&](int slot, int64_t seq, Done done) {
    auto call = std::make_shared<TopCall>();
    Authorize(call->context, screens[seq % screens.size()], 5);
    *call->request.mutable_board() = OrgBoard(lv1::WINDOW_WEEK);
    call->request.set_page_size(10);
    stubs[slot % stubs.size()]->async()->GetLeaderboard(
        &call->context, &call->request, &call->response, [call, done](grpc::Status s) {
          if (s.ok() && call->response.entries_size() != 10) {
            s = grpc::Status(grpc::StatusCode::INTERNAL, "top 10 did not return 10 entries");
          }
          done(s);
        });
  });
  std::vector<std::mt19937_64> rngs;
  for (int i = 0; i < absl::GetFlag(FLAGS_concurrency); ++i) rngs.emplace_back(7 + i);
  const int neighbors = absl::GetFlag(FLAGS_rank_neighbors);
  struct RankCall {
    grpc::ClientContext context;
    lv1::GetRankRequest request;
    lv1::GetRankResponse response;
  };
  CpuUse top_use = top_cpu.Take();
  std::string top_cpu_json = CpuMeter::CoresJson(top_use);
  std::string top_per_op_json = CpuPerOp(b, "get_leaderboard_top10", "call", top.started, top_use);
  CpuMeter rank_cpu(b);
  LoadResult rank = RunLoad(Load("get_rank"), [&](int slot, int64_t seq, Done done) {
    auto call = std::make_shared<RankCall>();
    Authorize(call->context, screens[seq % screens.size()], 5);
    *call->request.mutable_board() = OrgBoard(lv1::WINDOW_WEEK);
    call->request.set_subject_id(BoardMember(static_cast<int>(rngs[slot]() % n)));
    call->request.set_neighbors(neighbors);
    stubs[slot % stubs.size()]->async()->GetRank(
        &call->context, &call->request, &call->response, [call, done](grpc::Status s) {
          if (s.ok() && !call->response.ranked()) {
            s = grpc::Status(grpc::StatusCode::INTERNAL, "subject not ranked");
          }
          done(s);
        });
  });
  CpuUse rank_use = rank_cpu.Take();
  std::string rank_cpu_json = CpuMeter::CoresJson(rank_use);
  std::string rank_per_op_json = CpuPerOp(b, "get_rank", "call", rank.started, rank_use);
  for (const auto& [name, r] : {std::pair<std::string, LoadResult*>{"get_leaderboard_top10", &top},
                                {"get_rank", &rank}}) {
    double ratio = b.floor_a > 0 ? r->throughput / b.floor_a : 0;
    b.Report(name, Json()
                       .Raw("load", ToJson(*r))
                       .Raw("cpu_cores", r == &top ? top_cpu_json : rank_cpu_json)
                       .Raw("cpu_usec_per_op", r == &top ? top_per_op_json : rank_per_op_json)
                       .Int("board_entries", n)
                       .Num("floor_a", b.floor_a)
                       .Num("ratio_to_floor_a", ratio)
                       .str());
    b.rows.push_back({name, "throughput at 32 in flight, 1M board", r->throughput, "/s",
                      absl::StrFormat("floor_a %.0f/s", b.floor_a), Pct(ratio),
                      ">= 50% of floor_a", ratio >= 0.5 ? "met" : "MISSED"});
    b.rows.push_back({name, "p99 latency", r->p99_ms, "ms", "", "", "", 
                      r->errors ? absl::StrCat(r->errors, " errors: ", r->first_error.substr(0, 40)) : "info"});
  }
  b.rows.insert(b.rows.end(), memory_rows.begin(), memory_rows.end());
}

// ---------------------------------------------------------------- watch

struct WatchShared {
  std::vector<std::atomic<int64_t>> probe_sent_ns;  // probe base + i -> send time
  int64_t base = 0;  // probes sent by earlier watch runs
  std::atomic<int> first_snapshots{0};
  std::atomic<int> finished{0};
  WatchShared(int max_probes, int64_t base_k) : probe_sent_ns(max_probes + 2), base(base_k) {
    for (auto& t : probe_sent_ns) t.store(0);
  }
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

class Watcher : public grpc::ClientReadReactor<lv1::WatchLeaderboardResponse> {
 public:
  Watcher(lv1::LeaderboardService::Stub* stub, const std::string& token, lv1::Window window,
          WatchShared* shared, double deadline_s)
      : shared_(shared) {
    Authorize(context_, token, deadline_s);
    *request_.mutable_board() = OrgBoard(window);
    request_.set_top_n(10);
    stub->async()->WatchLeaderboard(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    int64_t now = NowNs();
    ++snapshots_;
    int64_t k = 0;
    for (const auto& entry : response_.entries()) {
      if (entry.subject_id() == "probe") k = entry.score() / kProbePoints;
    }
    if (snapshots_ == 1) {
      last_k_ = k;
      shared_->first_snapshots.fetch_add(1);
    } else {
      for (int64_t j = last_k_ + 1; j <= k; ++j) {
        int64_t i = j - shared_->base;
        if (i > 0 && i < static_cast<int64_t>(shared_->probe_sent_ns.size())) {
          int64_t sent = shared_->probe_sent_ns[i].load();
          if (sent > 0) delays_us_.push_back(static_cast<uint32_t>((now - sent) / 1000));
        }
      }
      if (k > last_k_) last_k_ = k;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    status_ = status;
    shared_->finished.fetch_add(1);
  }

  void Cancel() { context_.TryCancel(); }
  const std::vector<uint32_t>& delays() const { return delays_us_; }
  int64_t snapshots() const { return snapshots_; }
  const grpc::Status& status() const { return status_; }

 private:
  WatchShared* shared_;
  grpc::ClientContext context_;
  lv1::WatchLeaderboardRequest request_;
  lv1::WatchLeaderboardResponse response_;
  int64_t snapshots_ = 0;
  int64_t last_k_ = 0;
  std::vector<uint32_t> delays_us_;
  grpc::Status status_;
};

int64_t g_probes_total = 0;  // probe k has put the probe's score at k * kProbePoints

void WatchAt(Bench& b, double fraction, bool target);

void Watch(Bench& b) {
  SetUpOrg(b);
  WaitForConsumer(b, 120);
  if (b.send_peak <= 0) {
    LoadOptions o = Load("send_kudos_peak_probe");
    o.duration_s = 5;
    SendKudosLoad load(b, o.concurrency);
    b.send_peak = RunLoad(o, [&](int slot, int64_t, Done done) { load.Start(slot, std::move(done)); }).throughput;
    WaitForConsumer(b, 120);
  }
  bool first = true;
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_watch_load_fractions), ',')) {
    double fraction = 0;
    if (!absl::SimpleAtod(text, &fraction) || fraction <= 0) continue;
    WatchAt(b, fraction, first);
    first = false;
  }
}

void WatchAt(Bench& b, double fraction, bool target) {
  const int watchers = absl::GetFlag(FLAGS_watchers);
  const double watch_s = absl::GetFlag(FLAGS_watch_duration_s);
  const int interval_ms = absl::GetFlag(FLAGS_probe_interval_ms);
  const int max_probes = static_cast<int>(watch_s * 1000 / interval_ms) + 2;
  WatchShared shared(max_probes, g_probes_total);
  auto stubs = Stubs<lv1::LeaderboardService::Stub>(
      MakeChannels(b.leaderboard, absl::GetFlag(FLAGS_watch_channels)));
  const auto& windows = leaderboard::AllWindows();
  std::vector<std::unique_ptr<Watcher>> list;
  Clock::time_point t0 = Clock::now();
  for (int i = 0; i < watchers; ++i) {
    list.push_back(std::make_unique<Watcher>(stubs[i % stubs.size()].get(),
                                             MintToken(kOrg, absl::StrCat("screen-", i), {"screen"}),
                                             windows[i % windows.size()], &shared,
                                             watch_s + 120));
  }
  while (shared.first_snapshots.load() + shared.finished.load() < watchers && Seconds(t0) < 30) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double connect_s = Seconds(t0);
  int connected = shared.first_snapshots.load();
  Log(absl::StrCat("watch: ", connected, " of ", watchers, " streams have their first snapshot after ",
                   connect_s, " s"));

  // Probes: probe-giver sends kProbePoints to "probe", who then leads every
  // watched board with score k * kProbePoints after probe k.
  std::atomic<bool> probing{true};
  std::atomic<int> probes_sent{0};
  std::string probe_error;
  std::thread prober([&] {
    auto stub = kv1::KudosService::NewStub(MakeChannels(b.kudos, 1)[0]);
    std::string token = MintToken(kOrg, "probe-giver", {"member"});
    Clock::time_point start = Clock::now();
    for (int k = 1; k <= max_probes - 1 && probing.load(); ++k) {
      std::this_thread::sleep_until(start + std::chrono::milliseconds(interval_ms * k));
      if (!probing.load()) break;
      shared.probe_sent_ns[k].store(NowNs());
      ++g_probes_total;
      kv1::SendKudosRequest request;
      request.set_request_id(absl::StrCat("probe-", absl::ToUnixMillis(absl::Now()), "-", k));
      request.add_recipient_ids("probe");
      request.set_message("probe");
      request.add_values(kValues[0]);
      request.set_points_per_recipient(kProbePoints);
      kv1::SendKudosResponse response;
      grpc::ClientContext context;
      Authorize(context, token, 5);
      grpc::Status status = stub->SendKudos(&context, request, &response);
      if (!status.ok()) {
        probe_error = absl::StrCat("probe ", k, ": ", CodeName(status.error_code()), " ",
                                   status.error_message());
        break;
      }
      probes_sent.store(k);
    }
  });

  LoadOptions o = Load("send_kudos_background", 64);
  o.rate = b.send_peak * fraction;
  o.duration_s = watch_s;
  o.warmup_s = 0;
  SendKudosLoad load(b, o.concurrency);
  CpuMeter cpu(b);
  LoadResult background =
      RunLoad(o, [&](int slot, int64_t, Done done) { load.Start(slot, std::move(done)); });
  probing.store(false);
  prober.join();
  CpuUse use = cpu.Take();
  std::string cpu_json = CpuMeter::CoresJson(use);
  const std::string report_name =
      target ? "watch" : absl::StrFormat("watch_at_%.2f_of_peak", fraction);
  // Per kudos sent (background and probes); the streams' reads are in it.
  std::string per_op_json = CpuPerOp(b, report_name, "kudos",
                                     static_cast<double>(background.started + probes_sent.load()), use);
  // Late updates still count for a while (they are bounded by the wait).
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (auto& w : list) w->Cancel();
  Clock::time_point cancel_at = Clock::now();
  while (shared.finished.load() < watchers && Seconds(cancel_at) < 15) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::vector<uint32_t> all;
  int64_t snapshots = 0;
  std::map<std::string, int64_t> ends;
  for (auto& w : list) {
    all.insert(all.end(), w->delays().begin(), w->delays().end());
    snapshots += w->snapshots();
    ends[CodeName(w->status().error_code())]++;
  }
  const int64_t probes = probes_sent.load();
  const int64_t expected = probes * connected;
  Percentiles p = ComputePercentiles(all);
  std::vector<std::string> end_codes;
  for (const auto& [code, count] : ends) end_codes.push_back(absl::StrFormat("\"%s\":%d", code, count));
  b.Report(report_name, Json()
                        .Num("load_fraction_of_peak", fraction)
                        .Int("watchers", watchers)
                        .Int("connected", connected)
                        .Num("connect_seconds", connect_s)
                        .Int("probes", probes)
                        .Str("probe_error", probe_error)
                        .Int("delay_samples", p.count)
                        .Int("missed_updates", expected - p.count)
                        .Int("snapshots_received", snapshots)
                        .Raw("update_delay_ms", Json()
                                                    .Num("mean", p.mean_ms)
                                                    .Num("p50", p.p50_ms)
                                                    .Num("p90", p.p90_ms)
                                                    .Num("p99", p.p99_ms)
                                                    .Num("p999", p.p999_ms)
                                                    .Num("max", p.max_ms)
                                                    .str())
                        .Num("send_kudos_peak", b.send_peak)
                        .Raw("background_load", ToJson(background))
                        .Raw("cpu_cores", cpu_json)
                        .Raw("cpu_usec_per_op", per_op_json)
                        .Raw("stream_end_codes", absl::StrCat("{", absl::StrJoin(end_codes, ","), "}"))
                        .str());
  std::string row = target ? "watch" : absl::StrFormat("watch (%.0f%% of peak)", fraction * 100);
  b.rows.push_back({row, absl::StrFormat("p99 update delay, %d streams, %.0f%% of peak", watchers,
                                         fraction * 100),
                    p.p99_ms,
                    "ms", "", "", target ? "< 250 ms" : "",
                    !target ? absl::StrFormat("info; p50 %.0f ms", p.p50_ms)
                            : (p.count > 0 && p.p99_ms < 250 ? "met" : "MISSED")});
  b.rows.push_back({row, "background SendKudos achieved", background.throughput, "/s",
                    absl::StrFormat("target %.0f/s", o.rate), Pct(o.rate > 0 ? background.throughput / o.rate : 0),
                    absl::StrFormat("%.0f%% of peak", fraction * 100), absl::StrFormat("p99 %.1f ms", background.p99_ms)});
  b.rows.push_back({row, "updates missed (probes x streams - samples)",
                    static_cast<double>(expected - p.count), "", "", "", target ? "0" : "",
                    target ? Verdict(probes > 0 && p.count >= expected) : "info"});
  WaitForConsumer(b, 120);
}

// ---------------------------------------------------------------- rebuild

// Fills the rebuild org's two streams with `n` entries shaped like the
// services' (KudosSent on kudos:{org}:events, TransfersPosted with the
// linked transfer on ledger:{org}:outbox), event times spread over 90 days.
// The org is never registered (no common::redis::RegisterOrgCommand for it),
// so the live consumer leaves it alone.
// One kudos as the services write it: KudosSent on the kudos stream and
// TransfersPosted (the linked transfer) on the ledger outbox; event time
// within the last 90 days.
// `spread_s`: how far back event times go (0: all at now_s, as SendKudos's).
std::pair<kv1::KudosEvent, ledger::v1::LedgerEvent> MakeEventPair(std::mt19937_64& rng,
                                                                  const std::string& org, int i,
                                                                  int64_t now_s, int64_t seq,
                                                                  int64_t spread_s = 90 * 86400) {
  const int people = absl::GetFlag(FLAGS_people);
  const int teams = absl::GetFlag(FLAGS_teams);
    int giver = static_cast<int>(rng() % people);
    int recipient = static_cast<int>(rng() % (people - 1));
    if (recipient >= giver) ++recipient;
    const std::string g = PersonId(giver), r = PersonId(recipient);
    const std::string kid = absl::StrFormat("k%016x%08x", rng(), static_cast<uint32_t>(i));
    const std::string value = kValues[rng() % kValues.size()];
    const int64_t points = 1 + static_cast<int64_t>(rng() % 5);
    google::protobuf::Timestamp when;
    when.set_seconds(now_s - (spread_s > 0 ? static_cast<int64_t>(rng() % spread_s) : 0));
    kv1::KudosEvent event;
    event.set_org_id(org);
    *event.mutable_event_time() = when;
    kv1::KudosSent* sent = event.mutable_kudos_sent();
    kv1::Kudos* kudos = sent->mutable_kudos();
    kudos->set_kudos_id(kid);
    kudos->set_giver_id(g);
    kudos->add_recipient_ids(r);
    kudos->set_message("Thanks for the on-time delivery and the clear follow-up!");
    kudos->add_values(value);
    kudos->set_points_per_recipient(points);
    *kudos->mutable_create_time() = when;
    kudos->set_state(kv1::KUDOS_STATE_COMMITTED);
    sent->set_giver_team_id(TeamId(giver % teams));
    (*sent->mutable_recipient_team_ids())[r] = TeamId(recipient % teams);

    ledger::v1::LedgerEvent posted;
    auto* tp = posted.mutable_transfers_posted();
    tp->set_org_id(org);
    *tp->mutable_post_time() = when;
    ledger::v1::Transfer* t = tp->add_transfers();
    t->set_transfer_id(kid + ":" + r);
    t->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
    t->mutable_debit_account()->set_person_id(g);
    t->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    t->mutable_credit_account()->set_person_id(r);
    t->set_amount(points);
    t->set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
    t->set_reference(kid);
    (*t->mutable_tags())["giver"] = g;
    (*t->mutable_tags())["team"] = TeamId(recipient % teams);
    (*t->mutable_tags())["values"] = value;
    *t->mutable_post_time() = when;
    t->set_sequence(seq);
  return {std::move(event), std::move(posted)};
}

std::string FillStreams(Bench& b, int n) {
  Redis redis(b.redis_host, b.redis_port);
  std::mt19937_64 rng(99);
  const std::string kudos_stream = leaderboard::KudosStream(kRebuildOrg);
  const std::string ledger_stream = leaderboard::LedgerStream(kRebuildOrg);
  const int64_t now_s = absl::ToUnixSeconds(absl::Now());
  Clock::time_point t0 = Clock::now();
  std::vector<std::vector<std::string>> batch;
  int64_t seq = 0;
  for (int i = 0; i < n; i += 2) {
    auto [event, posted] = MakeEventPair(rng, kRebuildOrg, i, now_s, ++seq);
    batch.push_back({"XADD", kudos_stream, "*", "event", event.SerializeAsString()});
    batch.push_back({"XADD", ledger_stream, "*", "event", posted.SerializeAsString()});
    if (batch.size() >= 1000) {
      redis.Pipeline(batch);
      batch.clear();
    }
  }
  redis.Pipeline(batch);
  int64_t klen = redis.Run({"XLEN", kudos_stream}).integer;
  int64_t llen = redis.Run({"XLEN", ledger_stream}).integer;
  return Json()
      .Int("kudos_entries", klen)
      .Int("ledger_entries", llen)
      .Num("xadd_seconds", Seconds(t0))
      .str();
}

// Floor (c): Redis alone doing the leaderboard consumer's apply work for
// entries like the rebuild's: planned by the service's own planners
// (PlanKudosEvent / PlanLedgerEvent) and sent as the consumer sends an org's
// batch (leaderboard::BuildBatchCall: one apply_event.lua call per batch,
// increments summed per (board, member), exactly once by the org's marks),
// --floor_c_batch entries per call (the consumer reads up to 200 per stream),
// calls pipelined `kFloorCDepth` deep on one connection. Not in it: the
// consumer's people lookups, streak reads and XACK.
constexpr int kFloorCDepth = 4;

std::string FloorC(Bench& b, int n, double* events_per_s, int64_t* not_applied) {
  Redis redis(b.redis_host, b.redis_port);
  // As the consumer loads it: the declared-keys guard in front.
  const common::redis::Script apply_event("leaderboard_apply_event", kBenchApplyEventLua);
  const std::string sha = redis.Run({"SCRIPT", "LOAD", apply_event.source()}).str;
  const std::string org = "benchfc";
  leaderboard::OrgCalendar calendar =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  std::mt19937_64 rng(99);
  const int64_t now_s = absl::ToUnixSeconds(absl::Now());
  Clock::time_point t0 = Clock::now();
  std::vector<leaderboard::ApplyPlan> plans;
  plans.reserve(n);
  for (int i = 0; i < n; i += 2) {
    // Stream ids as XADD gives them: one millisecond, increasing sequence.
    const std::string id = absl::StrCat(now_s * 1000, "-", i / 2);
    auto [event, posted] = MakeEventPair(rng, org, i, now_s, i / 2 + 1);
    plans.push_back(leaderboard::PlanKudosEvent(org, "k:" + id, event, calendar,
                                                [](const std::string&) { return std::string(); }));
    plans.push_back(leaderboard::PlanLedgerEvent(org, "l:" + id, posted, calendar));
  }
  std::vector<std::vector<std::string>> commands;
  const size_t per_call = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_floor_c_batch)));
  for (size_t at = 0; at < plans.size(); at += per_call) {
    std::vector<const leaderboard::ApplyPlan*> batch;
    for (size_t i = at; i < std::min(plans.size(), at + per_call); ++i) batch.push_back(&plans[i]);
    absl::StatusOr<leaderboard::BatchCall> call =
        leaderboard::BuildBatchCall(org, batch, "", leaderboard::AppliedBefore{});
    if (!call.ok()) throw std::runtime_error("BuildBatchCall: " + call.status().ToString());
    std::vector<std::string> command = {"EVALSHA", sha, absl::StrCat(call->keys.size())};
    command.insert(command.end(), call->keys.begin(), call->keys.end());
    command.insert(command.end(), call->args.begin(), call->args.end());
    commands.push_back(std::move(command));
  }
  double plan_s = Seconds(t0);
  int64_t errors = 0;
  std::string first_error;
  auto check = [&](const RedisReply& reply) {
    // Applied: [1, ...]; anything else (an error, a refusal) is not.
    const bool applied = reply.type == REDIS_REPLY_ARRAY && !reply.elements.empty() &&
                         reply.elements[0].integer == 1;
    if (!applied && errors++ == 0) first_error = reply.is_error() ? reply.str : "refused";
  };
  CpuMeter cpu(b);
  Clock::time_point t1 = Clock::now();
  size_t read = 0;
  for (size_t i = 0; i < commands.size(); ++i) {
    redis.Append(commands[i]);
    if (i + 1 - read >= kFloorCDepth) check(redis.Read()), ++read;
  }
  for (; read < commands.size(); ++read) check(redis.Read());
  double apply_s = Seconds(t1);
  CpuUse use = cpu.Take();
  *events_per_s = apply_s > 0 ? plans.size() / apply_s : 0;
  *not_applied = errors;
  return Json()
      .Int("entries", static_cast<int64_t>(plans.size()))
      .Num("plan_usec_per_entry", plan_s * 1e6 / std::max<size_t>(1, plans.size()))
      .Num("apply_seconds", apply_s)
      .Num("events_per_s", *events_per_s)
      .Int("entries_per_call", static_cast<int64_t>(per_call))
      .Int("calls_in_flight", kFloorCDepth)
      .Int("calls", static_cast<int64_t>(commands.size()))
      .Int("calls_not_applied", errors)
      .Str("first_error", first_error)
      .Raw("cpu_cores", CpuMeter::CoresJson(use))
      .Raw("cpu_usec_per_op", CpuPerOp(b, "floor_c", "event", static_cast<double>(plans.size()), use))
      .str();
}

// Floor (d): the consumer's board increments alone. `kudos` kudos shaped as
// SendKudos sends them (its people and teams, all at now), planned by the
// service's own planners, their increments summed per (board, member) over
// batches of `floor_c_batch` entries as the consumer sums them, then sent as
// native ZINCRBY pipelined 1,000 deep on one connection: nothing else of the
// consumer (no script, no guards, no streaks, badges or insights). What a
// kudos costs Redis there is a lower bound of the catch-up's figure.
FloorD RunFloorD(Bench& b, int kudos) {
  Redis redis(b.redis_host, b.redis_port);
  const std::string org = "benchfd";
  const leaderboard::OrgCalendar calendar =
      leaderboard::CalendarFromSettings(leaderboard::DefaultSettings());
  std::mt19937_64 rng(7);
  const int64_t now_s = absl::ToUnixSeconds(absl::Now());
  const size_t per_batch = static_cast<size_t>(std::max(2, absl::GetFlag(FLAGS_floor_c_batch)));
  std::vector<std::vector<std::string>> commands;
  std::map<std::pair<std::string, std::string>, int64_t> sums;  // (board, member) -> total
  auto flush = [&] {
    for (const auto& [pair, total] : sums) {
      commands.push_back({"ZINCRBY", pair.first, absl::StrCat(total), pair.second});
    }
    sums.clear();
  };
  auto add = [&](const leaderboard::ApplyPlan& plan) {
    const std::vector<std::string>& a = plan.args;
    for (size_t i = 2; i < a.size();) {
      absl::StatusOr<size_t> width = leaderboard::ApplyOpWidth(a, i);
      if (!width.ok()) throw std::runtime_error("plan: " + width.status().ToString());
      if (a[i] == "Z") {
        const std::string& board = plan.keys.at(std::stoul(a[i + 1]) - 1);
        sums[{board, a[i + 2]}] += std::stoll(a[i + 3]);
      }
      i += *width;
    }
  };
  size_t entries = 0;
  for (int i = 0; i < kudos; ++i) {
    auto [event, posted] = MakeEventPair(rng, org, 2 * i, now_s, i + 1, /*spread_s=*/0);
    const std::string id = absl::StrCat(now_s * 1000, "-", i);
    add(leaderboard::PlanKudosEvent(org, "k:" + id, event, calendar,
                                    [](const std::string&) { return std::string(); }, false));
    add(leaderboard::PlanLedgerEvent(org, "l:" + id, posted, calendar));
    entries += 2;
    if (entries % per_batch == 0) flush();
  }
  flush();
  CpuMeter cpu(b);
  RedisMeter redis_meter(b);
  constexpr size_t kDepth = 1000;
  int64_t errors = 0;
  for (size_t at = 0; at < commands.size(); at += kDepth) {
    std::vector<std::vector<std::string>> chunk(
        commands.begin() + at, commands.begin() + std::min(commands.size(), at + kDepth));
    for (const RedisReply& reply : redis.Pipeline(chunk)) errors += reply.is_error() ? 1 : 0;
  }
  const RedisMeter::Use redis_use = redis_meter.Take(std::max(1, kudos));
  CpuUse use = cpu.Take();
  FloorD d;
  d.redis_usec_per_kudos = redis_use.redis_cpu_usec_per_unit;
  d.zincrby_per_kudos = static_cast<double>(commands.size()) / std::max(1, kudos);
  d.json = Json()
               .Int("kudos", kudos)
               .Int("entries_per_batch", static_cast<int64_t>(per_batch))
               .Int("zincrby", static_cast<int64_t>(commands.size()))
               .Num("zincrby_per_kudos", d.zincrby_per_kudos)
               .Int("errors", errors)
               .Num("redis_usec_per_kudos", d.redis_usec_per_kudos)
               .Num("redis_usec_per_zincrby",
                    d.redis_usec_per_kudos / std::max(1e-9, d.zincrby_per_kudos))
               .Raw("cpu_cores", CpuMeter::CoresJson(use))
               .str();
  return d;
}

void Rebuild(Bench& b) {
  double floor_c = 0;
  int64_t floor_c_errors = 0;
  std::string floor_c_json = FloorC(b, absl::GetFlag(FLAGS_rebuild_events), &floor_c, &floor_c_errors);
  b.Report("floor_c", floor_c_json);
  b.rows.push_back({"floor_c", "Redis applying apply_event.lua as the consumer does", floor_c,
                    "events/s", "", "", "",
                    floor_c_errors ? absl::StrCat(floor_c_errors, " not applied") : "info"});
  const int n = absl::GetFlag(FLAGS_rebuild_events);
  std::string fill = FillStreams(b, n);
  auto stub = lv1::LeaderboardService::NewStub(MakeChannels(b.leaderboard, 1)[0]);
  lv1::RebuildProjectionsRequest request;
  lv1::RebuildProjectionsResponse response;
  grpc::ClientContext context;
  Authorize(context, MintToken(kRebuildOrg, "bench-admin", {"admin"}), 600);
  Clock::time_point t0 = Clock::now();
  CpuMeter cpu(b);
  RedisMeter redis_meter(b);
  grpc::Status status = stub->RebuildProjections(&context, request, &response);
  double wall = Seconds(t0);
  CpuUse use = cpu.Take();
  std::string cpu_json = CpuMeter::CoresJson(use);
  std::string per_op_json =
      CpuPerOp(b, "rebuild", "event", static_cast<double>(response.events_applied()), use);
  std::string redis_json = redis_meter.Json(std::max<double>(1, response.events_applied()));
  double per_s = response.duration_ms() > 0
                     ? response.events_applied() / (response.duration_ms() / 1000.0)
                     : 0;
  double per_s_wall = wall > 0 ? response.events_applied() / wall : 0;
  b.Report("rebuild", Json()
                          .Raw("streams", fill)
                          .Str("status", status.ok() ? "OK" : CodeName(status.error_code()) + ": " + status.error_message())
                          .Int("events_applied", response.events_applied())
                          .Int("duration_ms", response.duration_ms())
                          .Num("client_seconds", wall)
                          .Num("events_per_s", per_s)
                          .Num("events_per_s_client", per_s_wall)
                          .Raw("cpu_cores", cpu_json)
                          .Raw("cpu_usec_per_op", per_op_json)
                          .Raw("redis_per_event", redis_json)
                          .Num("floor_c", floor_c)
                          .str());
  b.rows.push_back({"rebuild", absl::StrFormat("RebuildProjections, %d entries", n), per_s_wall,
                    "events/s", absl::StrFormat("floor_c %.0f/s", floor_c),
                    floor_c > 0 ? Pct(per_s_wall / floor_c) : "", ">= 100,000/s",
                    status.ok() ? (per_s_wall >= 100000 ? "met" : "MISSED")
                                : "FAILED " + CodeName(status.error_code())});
}

// ---------------------------------------------------------------- archive

// Runs an archiver's RunOnce until a run archives nothing (each run does
// bounded work), at most 10,000 runs and 300 s.
struct ArchiveRuns {
  int64_t runs = 0;
  int64_t archived = 0;       // kudos (kudos archiver) or transfers (ledger archiver)
  int64_t bytes_written = 0;  // as the archiver reports it
  std::string error;
  std::string Json() const {
    return bench::Json()
        .Int("runs", runs)
        .Int("archived", archived)
        .Int("bytes_written", bytes_written)
        .Str("error", error)
        .str();
  }
};

// One bounded RunOnce: what it archived, or that another replica's sweep
// (the running service's own) held the org's lock.
struct ArchiveRun {
  int64_t archived = 0;
  int64_t bytes_written = 0;
  bool lock_busy = false;
};

ArchiveRuns RunUntilDone(const std::function<absl::StatusOr<ArchiveRun>()>& run_once) {
  ArchiveRuns out;
  Clock::time_point t0 = Clock::now();
  while (out.runs < 10000 && Seconds(t0) < 300) {
    absl::StatusOr<ArchiveRun> run = run_once();
    ++out.runs;
    if (!run.ok()) {
      out.error = run.status().ToString();
      break;
    }
    out.archived += run->archived;
    out.bytes_written += run->bytes_written;
    if (run->lock_busy) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (run->archived == 0) break;
  }
  return out;
}

ArchiveRuns RunKudosArchiver(common::redis::Pool& pool, const std::string& org, absl::Time now) {
  kudos::KudosStore store(pool);
  kudos::Archiver archiver(pool, store);
  return RunUntilDone([&]() -> absl::StatusOr<ArchiveRun> {
    absl::StatusOr<kudos::ArchiveStats> stats = archiver.RunOnce(org, now);
    if (!stats.ok()) return stats.status();
    return ArchiveRun{stats->kudos_archived, stats->bytes_written, stats->lock_busy};
  });
}

ArchiveRuns RunLedgerArchiver(common::redis::Pool& pool, const std::string& org, absl::Time now) {
  ledger::Archiver archiver(pool);
  return RunUntilDone([&]() -> absl::StatusOr<ArchiveRun> {
    absl::StatusOr<ledger::ArchiveStats> stats = archiver.RunOnce(org, now);
    if (!stats.ok()) return stats.status();
    // A run that lost a race to another replica archived nothing: retry.
    return ArchiveRun{stats->transfers_archived, stats->bytes_written,
                      stats->lock_busy || stats->raced};
  });
}

// The leaderboard's compaction of the org (snapshot, then XTRIM of both
// streams below what it and every group cover), as its background
// compactor would have run it long before the archivers' `now`. ABORTED
// while a replica (the running service) compacts: retried, at most 100 times.
std::string CompactStreams(common::redis::Pool& pool, const std::string& org) {
  leaderboard::Store store(pool);
  leaderboard::Projector projector(store);
  absl::StatusOr<leaderboard::Projector::CompactResult> result;
  for (int attempt = 0; attempt < 100; ++attempt) {
    result = projector.Compact(org);
    if (result.ok() || result.status().code() != absl::StatusCode::kAborted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!result.ok()) return Json().Str("error", result.status().ToString()).str();
  return Json().Int("events_read", result->events_read).Int("trimmed", result->trimmed).str();
}

// The small org's kudos and transfers archived by the services' own
// archivers (kudos::Archiver, ledger::Archiver, run in this process against
// the bench's Redis, as a replica's sweep would) with `now`
// --archive_days_ahead days ahead; then the org's slot measured again (keys
// that would have expired by then set apart) and a sample of the archived
// kudos read back through GetKudos and compared with their answers before.
void Archive(Bench& b) {
  SmallOrg& small = EnsureSmallOrg(b);
  Redis redis(b.redis_host, b.redis_port);
  auto stub = kv1::KudosService::NewStub(MakeChannels(b.kudos, 1)[0]);
  auto get_kudos = [&](const std::pair<int, std::string>& sample, std::string* answer) {
    kv1::GetKudosRequest request;
    request.set_kudos_id(sample.second);
    kv1::GetKudosResponse response;
    grpc::ClientContext context;
    Authorize(context, small.tokens[sample.first], 10);
    grpc::Status status = stub->GetKudos(&context, request, &response);
    *answer = response.SerializeAsString();
    return status;
  };
  std::vector<std::string> before(small.sample.size());
  for (size_t i = 0; i < small.sample.size(); ++i) {
    grpc::Status status = get_kudos(small.sample[i], &before[i]);
    if (!status.ok()) throw std::runtime_error("GetKudos before archiving: " + status.error_message());
  }
  const SlotMemory live = MeasureSlot(redis, kSmallOrg);
  const absl::Time now = absl::Now() + absl::Hours(24 * absl::GetFlag(FLAGS_archive_days_ahead));

  common::redis::PoolOptions options;
  options.endpoint.host = b.redis_host;
  options.endpoint.port = b.redis_port;
  options.size = 4;
  options.timeout = std::chrono::milliseconds(10000);
  common::redis::Pool pool(options);
  CpuMeter cpu(b);
  RedisMeter redis_meter(b);
  ArchiveRuns kudos_runs = RunKudosArchiver(pool, kSmallOrg, now);
  ArchiveRuns ledger_runs = RunLedgerArchiver(pool, kSmallOrg, now);
  const std::string compaction = CompactStreams(pool, kSmallOrg);
  CpuUse use = cpu.Take();
  const double kudos_archived = static_cast<double>(std::max<int64_t>(1, kudos_runs.archived));
  std::string redis_json = redis_meter.Json(kudos_archived);
  std::string per_op_json = CpuPerOp(b, "archive", "kudos", kudos_archived, use);
  const SlotMemory archived = MeasureSlot(redis, kSmallOrg, absl::ToUnixMillis(now));

  int64_t identical = 0;
  std::string first_mismatch;
  for (size_t i = 0; i < small.sample.size(); ++i) {
    std::string after;
    grpc::Status status = get_kudos(small.sample[i], &after);
    if (status.ok() && after == before[i]) {
      ++identical;
    } else if (first_mismatch.empty()) {
      first_mismatch = small.sample[i].second + ": " +
                       (status.ok() ? "answer differs" : CodeName(status.error_code()) + " " + status.error_message());
    }
  }
  // History kept per archived kudos: the org's slot after archiving minus
  // its projections (lb:/lbctl: keys: boards are the "keep" row's figure)
  // and minus what the directory alone held before any kudos.
  auto without_projections = [](const SlotMemory& m) { return m.bytes - m.BytesWithPrefix("lb"); };
  const double history_bytes =
      static_cast<double>(without_projections(archived) - without_projections(small.directory));
  const double per_kudos = history_bytes / kudos_archived;
  // Where the history per archived kudos is, for the table.
  auto delta_per_kudos = [&](const std::vector<std::string>& prefixes) {
    int64_t bytes = 0;
    for (const std::string& prefix : prefixes) {
      bytes += archived.BytesWithPrefix(prefix) - small.directory.BytesWithPrefix(prefix);
    }
    return static_cast<double>(bytes) / kudos_archived;
  };
  const double kudos_archive = delta_per_kudos({"kudos:archive"});
  const double ledger_archive = delta_per_kudos({"ledger:arch", "ledger:ckpt"});
  const double streams = delta_per_kudos({"kudos:events", "ledger:outbox", "audit"});
  b.Report("archive", Json()
                          .Str("org", kSmallOrg)
                          .Int("kudos_sent", small.kudos)
                          .Int("days_ahead", absl::GetFlag(FLAGS_archive_days_ahead))
                          .Raw("kudos_archiver", kudos_runs.Json())
                          .Raw("ledger_archiver", ledger_runs.Json())
                          .Raw("leaderboard_compaction", compaction)
                          .Num("redis_bytes_per_archived_kudos", per_kudos)
                          .Num("history_bytes", history_bytes)
                          .Num("kudos_archive_bytes_per_kudos", kudos_archive)
                          .Num("ledger_archive_bytes_per_kudos", ledger_archive)
                          .Num("stream_bytes_per_kudos", streams)
                          .Num("all_keys_bytes_per_kudos_after", static_cast<double>(archived.bytes) / kudos_archived)
                          .Int("get_kudos_sampled", static_cast<int64_t>(small.sample.size()))
                          .Int("get_kudos_identical", identical)
                          .Str("first_mismatch", first_mismatch)
                          .Raw("cpu_cores", CpuMeter::CoresJson(use))
                          .Raw("cpu_usec_per_op", per_op_json)
                          .Raw("redis_per_archived_kudos", redis_json)
                          .Raw("directory_only", small.directory.Json())
                          .Raw("before_archive", live.Json())
                          .Raw("after_archive", archived.Json())
                          .str());
  const bool ran = kudos_runs.error.empty() && ledger_runs.error.empty() && kudos_runs.archived > 0;
  b.rows.push_back({"archive", absl::StrFormat("Redis bytes per archived kudos (%d kudos)", kudos_runs.archived),
                    per_kudos, "B", "history, all keys", "", "<= 200 B",
                    ran ? Verdict(per_kudos <= 200)
                        : "FAILED " + (kudos_runs.error + " " + ledger_runs.error).substr(0, 40)});
  b.rows.push_back({"archive", "... of which the kudos archive (chunks, index)", kudos_archive, "B",
                    "", "", "", "info"});
  b.rows.push_back({"archive", "... of which the ledger archive and checkpoint", ledger_archive, "B",
                    "", "", "", "info"});
  b.rows.push_back({"archive", "... of which streams (events, outbox, audit) after the trim", streams,
                    "B", "", "", "", "info"});
  b.rows.push_back({"archive", "... of which the rest (live keys left)",
                    per_kudos - kudos_archive - ledger_archive - streams, "B", "", "", "", "info"});
  b.rows.push_back({"archive", "GetKudos of archived kudos, same answer", static_cast<double>(identical), "",
                    absl::StrFormat("of %d sampled", small.sample.size()), "", "all",
                    Verdict(!small.sample.empty() && identical == static_cast<int64_t>(small.sample.size()))});
  b.rows.push_back({"archive", "transfers archived by the ledger", static_cast<double>(ledger_runs.archived), "",
                    "", "", "", "info"});
}

// ---------------------------------------------------------------- cluster

// One service binary on a free loopback port against `redis` (one address
// or a seed list), its log in the out dir; recorded for the CPU figures.
std::string StartService(Bench& b, std::vector<std::unique_ptr<Child>>& children,
                         const std::string& name, const std::string& binary,
                         const std::string& redis, std::vector<std::string> extra) {
  int port = FreePort();
  std::vector<std::string> args = {absl::StrCat("--listen=127.0.0.1:", port), "--redis=" + redis};
  args.insert(args.end(), extra.begin(), extra.end());
  children.push_back(std::make_unique<Child>(binary, args, b.out_dir + "/" + name + ".log"));
  b.processes.emplace_back(name, children.back()->pid());
  Log(absl::StrCat(name, " pid ", children.back()->pid()));
  if (!WaitForPort(port, std::chrono::seconds(20))) {
    throw std::runtime_error(name + " did not start; see " + b.out_dir + "/" + name + ".log");
  }
  return absl::StrCat("127.0.0.1:", port);
}

// `count` org ids whose {org} slots spread evenly over the cluster's
// primaries (round robin by node), with the node of each.
std::vector<std::pair<std::string, int>> OrgsSpreadOverNodes(LocalCluster& cluster, int count) {
  std::vector<std::vector<std::string>> by_node(cluster.size());
  const size_t per_node = static_cast<size_t>((count + cluster.size() - 1) / cluster.size());
  for (int i = 0; i < 100000; ++i) {
    std::string org = absl::StrFormat("bcl%04d", i);
    int node = cluster.NodeOfSlot(common::redis::KeySlot(org));
    if (node >= 0 && by_node[node].size() < per_node) by_node[node].push_back(org);
    size_t have = 0;
    for (const auto& orgs : by_node) have += orgs.size();
    if (have >= per_node * by_node.size()) break;
  }
  std::vector<std::pair<std::string, int>> out;
  for (size_t k = 0; k < per_node && static_cast<int>(out.size()) < count; ++k) {
    for (int node = 0; node < cluster.size() && static_cast<int>(out.size()) < count; ++node) {
      if (k < by_node[node].size()) out.emplace_back(by_node[node][k], node);
    }
  }
  if (static_cast<int>(out.size()) < count) throw std::runtime_error("could not spread the orgs");
  return out;
}

// The leaderboard group's backlog of every org (each on its node), summed;
// -1 when some org has no group yet. Waits (bounded) until it is 0.
struct ClusterCatchUp {
  bool caught_up = false;
  int64_t left = -1;
  double seconds = 0;
};
ClusterCatchUp WaitForClusterConsumer(LocalCluster& cluster,
                                      const std::vector<std::pair<std::string, int>>& orgs,
                                      double timeout_s) {
  ClusterCatchUp out;
  Clock::time_point t0 = Clock::now();
  std::vector<std::unique_ptr<Redis>> nodes;
  for (int node = 0; node < cluster.size(); ++node) {
    nodes.push_back(std::make_unique<Redis>("127.0.0.1", cluster.port(node)));
  }
  // Gives up early when the backlog has not shrunk for 30 s (a consumer
  // that cannot read the cluster's streams would otherwise hold the run).
  int64_t best = -1;
  Clock::time_point progressed = Clock::now();
  while (true) {
    int64_t total = 0;
    for (const auto& [org, node] : orgs) {
      int64_t backlog = Backlog(*nodes[node], org);
      if (backlog < 0) {
        total = -1;
        break;
      }
      total += backlog;
    }
    out.left = total;
    if (total >= 0 && (best < 0 || total < best)) {
      best = total;
      progressed = Clock::now();
    }
    if (total == 0 || Seconds(t0) >= timeout_s || Seconds(progressed) >= 30) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  out.caught_up = out.left == 0;
  out.seconds = Seconds(t0);
  return out;
}

// SendKudos in random orgs of the cluster: random giver (their own token)
// -> random other person of the same org. Counts acknowledged kudos per org.
struct ClusterSendKudosLoad {
  const std::vector<std::vector<std::string>>& tokens;  // per org
  std::vector<std::unique_ptr<kv1::KudosService::Stub>> stubs;
  std::vector<std::mt19937_64> rngs;
  std::vector<std::atomic<int64_t>> acknowledged;  // per org
  std::string run_id = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  std::atomic<int64_t> counter{0};

  ClusterSendKudosLoad(const std::string& kudos, int slots,
                       const std::vector<std::vector<std::string>>& org_tokens)
      : tokens(org_tokens), acknowledged(org_tokens.size()) {
    stubs = Stubs<kv1::KudosService::Stub>(MakeChannels(kudos, absl::GetFlag(FLAGS_channels)));
    for (int i = 0; i < slots; ++i) rngs.emplace_back(2000 + i);
    for (auto& count : acknowledged) count = 0;
  }

  void Start(int slot, Done done) {
    struct Call {
      grpc::ClientContext context;
      kv1::SendKudosRequest request;
      kv1::SendKudosResponse response;
    };
    auto call = std::make_shared<Call>();
    std::mt19937_64& rng = rngs[slot];
    const size_t org = rng() % tokens.size();
    const int people = static_cast<int>(tokens[org].size());
    int giver = static_cast<int>(rng() % people);
    int recipient = static_cast<int>(rng() % (people - 1));
    if (recipient >= giver) ++recipient;
    Authorize(call->context, tokens[org][giver], 5);
    kv1::SendKudosRequest& r = call->request;
    r.set_request_id(absl::StrCat("bench-cl-", run_id, "-", counter.fetch_add(1)));
    r.add_recipient_ids(PersonId(recipient));
    r.set_message("Thanks for the on-time delivery and the clear follow-up!");
    r.add_values(kValues[rng() % kValues.size()]);
    r.set_points_per_recipient(1 + static_cast<int64_t>(rng() % 5));
    stubs[slot % stubs.size()]->async()->SendKudos(
        &call->context, &call->request, &call->response, [this, call, org, done](grpc::Status s) {
          if (s.ok()) acknowledged[org].fetch_add(1);
          done(s);
        });
  }
};

// Issue 14, item 7: the same SendKudos load as send_kudos, on a local
// 3-primary Redis Cluster with 30 orgs spread over the nodes by slot, the
// real services pointed at the seed list. Throughput, p99, Redis CPU per
// kudos per node (each node's own CPU time), the share of kudos and of
// Redis CPU per node, next to send_kudos's standalone figures of this run.
void SendKudosCluster(Bench& b) {
  const std::string dir = b.out_dir + "/cluster";
  LocalCluster cluster(absl::GetFlag(FLAGS_redis_server), absl::GetFlag(FLAGS_redis_cli),
                       absl::GetFlag(FLAGS_redis_config), dir, absl::GetFlag(FLAGS_cluster_primaries));
  Bench c;  // this scenario's processes: the cluster's nodes and its own services
  c.out_dir = dir;
  c.processes.emplace_back("bench", 0);
  for (int node = 0; node < cluster.size(); ++node) {
    c.processes.emplace_back(absl::StrCat("redis", node), cluster.pid(node));
  }
  std::vector<std::unique_ptr<Child>> children;
  c.ledger = StartService(c, children, "ledger", absl::GetFlag(FLAGS_ledger_binary), cluster.seeds(), {});
  c.kudos = StartService(c, children, "kudos", absl::GetFlag(FLAGS_kudos_binary), cluster.seeds(),
                         {"--ledger=" + c.ledger});
  c.leaderboard = StartService(c, children, "leaderboard", absl::GetFlag(FLAGS_leaderboard_binary),
                               cluster.seeds(), {"--consumer_name=bench"});
  Log("cluster " + cluster.seeds());

  const std::vector<std::pair<std::string, int>> orgs =
      OrgsSpreadOverNodes(cluster, absl::GetFlag(FLAGS_cluster_orgs));
  std::vector<std::vector<std::string>> tokens;
  Clock::time_point setup_t0 = Clock::now();
  for (const auto& [org, node] : orgs) {
    tokens.push_back(SetUpDirectory(c, org, absl::GetFlag(FLAGS_cluster_people),
                                    absl::GetFlag(FLAGS_cluster_teams), "setup_cluster_org"));
  }
  const double setup_s = Seconds(setup_t0);
  const ClusterCatchUp directory = WaitForClusterConsumer(cluster, orgs, 60);

  // What the nodes burn with no load (cluster bus, cron, the services'
  // background loops and org discovery): the base under the per-kudos figure.
  double idle_redis_cores = 0;
  {
    PausedProcess paused(c, "leaderboard");
    CpuMeter idle(c);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    CpuUse use = idle.Take();
    for (const auto& [name, seconds] : use.seconds) {
      if (absl::StartsWith(name, "redis")) idle_redis_cores += seconds / use.wall_s;
    }
  }
  LoadOptions o = Load("send_kudos_cluster");
  ClusterSendKudosLoad load(c.kudos, o.concurrency, tokens);
  LoadResult r;
  CpuUse use;
  {
    // As send_kudos: the consumer paused, Redis's work is the write path's.
    PausedProcess paused(c, "leaderboard");
    CpuMeter cpu(c);
    r = RunLoad(o, [&](int slot, int64_t, Done done) { load.Start(slot, std::move(done)); });
    use = cpu.Take();
  }
  const ClusterCatchUp catch_up = WaitForClusterConsumer(cluster, orgs, 300);
  const double kudos = static_cast<double>(std::max<int64_t>(1, r.started));
  const std::string cpu_per_op = CpuPerOp(b, "send_kudos_cluster", "kudos", kudos, use);

  // Per node: kudos acknowledged in its orgs, its Redis CPU.
  std::vector<int64_t> node_kudos(cluster.size(), 0);
  std::vector<double> node_cpu_s(cluster.size(), 0);
  int64_t acknowledged = 0;
  for (size_t i = 0; i < orgs.size(); ++i) {
    node_kudos[orgs[i].second] += load.acknowledged[i].load();
    acknowledged += load.acknowledged[i].load();
  }
  double redis_cpu_s = 0;
  for (const auto& [name, seconds] : use.seconds) {
    for (int node = 0; node < cluster.size(); ++node) {
      if (name == absl::StrCat("redis", node)) node_cpu_s[node] = seconds;
    }
    if (absl::StartsWith(name, "redis")) redis_cpu_s += seconds;
  }
  const double redis_us_per_kudos = redis_cpu_s * 1e6 / kudos;
  const double redis_us_per_kudos_above_idle =
      std::max(0.0, redis_cpu_s - idle_redis_cores * use.wall_s) * 1e6 / kudos;
  std::vector<std::string> nodes_json;
  double max_share = 0, min_share = 1;
  for (int node = 0; node < cluster.size(); ++node) {
    const double share = acknowledged > 0 ? static_cast<double>(node_kudos[node]) / acknowledged : 0;
    const double cpu_share = redis_cpu_s > 0 ? node_cpu_s[node] / redis_cpu_s : 0;
    max_share = std::max(max_share, share);
    min_share = std::min(min_share, share);
    // CPU per kudos of the whole load (what the node adds to each kudos) and
    // per kudos whose org it holds.
    const double us_per_kudos = node_cpu_s[node] * 1e6 / kudos;
    const double us_per_own_kudos =
        node_kudos[node] > 0 ? node_cpu_s[node] * 1e6 / static_cast<double>(node_kudos[node]) : 0;
    nodes_json.push_back(Json()
                             .Int("node", node)
                             .Int("port", cluster.port(node))
                             .Int("orgs", std::count_if(orgs.begin(), orgs.end(),
                                                        [&](const auto& o) { return o.second == node; }))
                             .Int("kudos", node_kudos[node])
                             .Num("kudos_share", share)
                             .Num("redis_cpu_share", cpu_share)
                             .Num("redis_cpu_usec_per_kudos_of_load", us_per_kudos)
                             .Num("redis_cpu_usec_per_own_kudos", us_per_own_kudos)
                             .str());
    b.rows.push_back({"send_kudos_cluster",
                      absl::StrFormat("node %d: Redis CPU per kudos of its orgs; kudos share", node),
                      us_per_own_kudos, "us", absl::StrFormat("%.1f%% of kudos", share * 100),
                      absl::StrFormat("%.1f%% cpu", cpu_share * 100), "", "info"});
  }
  std::vector<std::string> org_names;
  for (const auto& [org, node] : orgs) org_names.push_back(absl::StrCat(org, "@", node));
  b.Report("send_kudos_cluster",
           Json()
               .Int("primaries", cluster.size())
               .Str("seeds", cluster.seeds())
               .Raw("orgs", "[\"" + absl::StrJoin(org_names, "\",\"") + "\"]")
               .Int("people_per_org", absl::GetFlag(FLAGS_cluster_people))
               .Num("setup_seconds", setup_s)
               .Bool("directory_consumed_before_load", directory.caught_up)
               .Raw("load", ToJson(r))
               .Int("acknowledged", acknowledged)
               .Str("leaderboard_during_load", "paused (SIGSTOP); its work is the catch-up")
               .Bool("consumer_caught_up_after", catch_up.caught_up)
               .Int("consumer_backlog_left", catch_up.left)
               .Num("consumer_catch_up_seconds", catch_up.seconds)
               .Raw("cpu_cores", CpuMeter::CoresJson(use))
               .Raw("cpu_usec_per_kudos", cpu_per_op)
               .Num("redis_cpu_usec_per_kudos_all_nodes", redis_us_per_kudos)
               .Num("redis_idle_cores_all_nodes", idle_redis_cores)
               .Num("redis_cpu_usec_per_kudos_above_idle", redis_us_per_kudos_above_idle)
               .Raw("nodes", "[" + absl::StrJoin(nodes_json, ",") + "]")
               .Num("kudos_share_max_over_min", min_share > 0 ? max_share / min_share : 0)
               .Num("standalone_throughput", b.send_peak)
               .Num("standalone_p99_ms", b.send_p99_ms)
               .Num("standalone_redis_cpu_usec_per_kudos", b.send_redis_cpu_us)
               .str());
  const std::string standalone =
      b.send_peak > 0 ? absl::StrFormat("standalone %.0f/s", b.send_peak) : "standalone not run";
  // Appended after the per-node rows: put the headline rows first.
  std::vector<Row> head;
  head.push_back({"send_kudos_cluster",
                  absl::StrFormat("throughput at %d in flight, %d primaries, %d orgs",
                                  o.concurrency, cluster.size(), static_cast<int>(orgs.size())),
                  r.throughput, "/s", standalone,
                  b.send_peak > 0 ? Pct(r.throughput / b.send_peak) : "", "", "info"});
  head.push_back({"send_kudos_cluster", "p99 latency", r.p99_ms, "ms",
                  b.send_peak > 0 ? absl::StrFormat("standalone %.1f ms", b.send_p99_ms) : "", "",
                  "", "info"});
  head.push_back({"send_kudos_cluster", "Redis CPU per kudos, write path, all nodes",
                  redis_us_per_kudos, "us",
                  b.send_peak > 0 ? absl::StrFormat("standalone %.1f us", b.send_redis_cpu_us) : "",
                  "", "", "info"});
  head.push_back({"send_kudos_cluster", "... above the nodes' idle CPU (measured 3 s before)",
                  redis_us_per_kudos_above_idle, "us",
                  absl::StrFormat("idle %.3f cores", idle_redis_cores), "", "", "info"});
  head.push_back({"send_kudos_cluster", "kudos share, busiest / least busy node",
                  min_share > 0 ? max_share / min_share : 0, "x", "", "", "", "info"});
  head.push_back({"send_kudos_cluster", "leaderboard caught up after the load",
                  static_cast<double>(catch_up.caught_up), "",
                  absl::StrFormat("backlog left %d", catch_up.left), "", "1", Verdict(catch_up.caught_up)});
  if (r.errors > 0) {
    head.push_back({"send_kudos_cluster", "errors", static_cast<double>(r.errors), "", "", "", "0",
                    r.first_error.substr(0, 60)});
  }
  b.rows.insert(b.rows.end() - cluster.size(), head.begin(), head.end());
  for (auto it = children.rbegin(); it != children.rend(); ++it) (*it)->Stop();
}

// ---------------------------------------------------------------- ledger WAIT

// A redis-server's arguments: the platform's config file (--redis_config),
// then the scenario's options.
std::vector<std::string> RedisArgs(std::vector<std::string> options) {
  return RedisServerArgs(absl::GetFlag(FLAGS_redis_config), std::move(options));
}

// A redis-server replicating `primary_port` (no RDB/AOF), ready once its
// link to the primary is up (the first full sync done).
std::unique_ptr<Child> StartReplica(const std::string& dir, int port, int primary_port) {
  std::system(("mkdir -p '" + dir + "' && rm -f '" + dir + "'/*").c_str());
  auto replica = std::make_unique<Child>(
      absl::GetFlag(FLAGS_redis_server),
      RedisArgs({"--port", absl::StrCat(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--replicaof",
                 "127.0.0.1", absl::StrCat(primary_port)}),
      dir + ".log");
  if (!WaitForPort(port, std::chrono::seconds(10))) throw std::runtime_error("replica did not start");
  Clock::time_point t0 = Clock::now();
  Redis redis("127.0.0.1", port);
  while (!absl::StrContains(redis.Run({"INFO", "replication"}).str, "master_link_status:up")) {
    if (Seconds(t0) > 60) throw std::runtime_error("replica did not sync within 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return replica;
}

// PostTransfers (one KUDOS transfer each, the kudos service's token) closed
// loop against one ledger_server; the org's allowance set high first.
LoadResult PostTransfersLoad(const std::string& ledger, const std::string& org,
                             const std::string& name) {
  auto admin = ledger::v1::LedgerService::NewStub(MakeChannels(ledger, 1)[0]);
  ledger::v1::SetAllowancePolicyRequest policy;
  policy.mutable_policy()->set_points_per_period(1000000000000);
  policy.mutable_policy()->set_period(common::v1::ALLOWANCE_PERIOD_MONTH);
  ledger::v1::SetAllowancePolicyResponse policy_response;
  grpc::ClientContext context;
  Authorize(context, MintToken(org, "bench-admin", {"admin"}), 10);
  grpc::Status status = admin->SetAllowancePolicy(&context, policy, &policy_response);
  if (!status.ok()) throw std::runtime_error("SetAllowancePolicy: " + status.error_message());
  absl::StatusOr<std::string> token = common::auth::MintServiceToken(
      "kudos", org, common::auth::kDevServiceSecret, absl::Now());
  if (!token.ok()) throw std::runtime_error(std::string(token.status().message()));
  LoadOptions o = Load(name);
  auto stubs = Stubs<ledger::v1::LedgerService::Stub>(MakeChannels(ledger, absl::GetFlag(FLAGS_channels)));
  std::vector<std::mt19937_64> rngs;
  for (int i = 0; i < o.concurrency; ++i) rngs.emplace_back(3000 + i);
  const std::string run_id = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  return RunLoad(o, [&](int slot, int64_t seq, Done done) {
    struct Call {
      grpc::ClientContext context;
      ledger::v1::PostTransfersRequest request;
      ledger::v1::PostTransfersResponse response;
    };
    auto call = std::make_shared<Call>();
    std::mt19937_64& rng = rngs[slot];
    int giver = static_cast<int>(rng() % 1000);
    int recipient = static_cast<int>(rng() % 999);
    if (recipient >= giver) ++recipient;
    Authorize(call->context, *token, 5);
    call->request.set_linked(true);
    ledger::v1::Transfer* t = call->request.add_transfers();
    t->set_transfer_id(absl::StrCat("bw-", run_id, "-", seq));
    t->mutable_debit_account()->set_type(ledger::v1::ACCOUNT_TYPE_ALLOWANCE);
    t->mutable_debit_account()->set_person_id(PersonId(giver));
    t->mutable_credit_account()->set_type(ledger::v1::ACCOUNT_TYPE_EARNED);
    t->mutable_credit_account()->set_person_id(PersonId(recipient));
    t->set_amount(1 + static_cast<int64_t>(rng() % 5));
    t->set_kind(ledger::v1::TRANSFER_KIND_KUDOS);
    t->set_reference(absl::StrCat("kudos-", seq));
    (*t->mutable_tags())["giver"] = PersonId(giver);
    stubs[slot % stubs.size()]->async()->PostTransfers(
        &call->context, &call->request, &call->response, [call, done](grpc::Status s) { done(s); });
  });
}

// Issue 14, item 5: what the ledger's write concern costs. One primary and
// one replica on loopback; one ledger_server per --redis_wait_replicas value
// (0 = off, 1 = every write script WAITs for the replica), each loaded alone
// with PostTransfers: transfers/s, p99, CPU per transfer of each process.
void LedgerWait(Bench& b) {
  const std::string dir = b.out_dir + "/wait";
  std::system(("mkdir -p '" + dir + "'").c_str());
  const int primary_port = FreePort();
  Child primary(absl::GetFlag(FLAGS_redis_server),
                RedisArgs({"--port", absl::StrCat(primary_port), "--bind", "127.0.0.1", "--dir", dir,
                           "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel",
                           "warning"}),
                dir + "/primary.log");
  if (!WaitForPort(primary_port, std::chrono::seconds(10))) throw std::runtime_error("primary did not start");
  std::unique_ptr<Child> replica = StartReplica(dir + "/replica", FreePort(), primary_port);
  const std::string primary_address = absl::StrCat("127.0.0.1:", primary_port);
  std::vector<std::string> runs_json;
  std::vector<std::pair<std::string, LoadResult>> runs;  // label, load
  for (absl::string_view setting : absl::StrSplit(absl::GetFlag(FLAGS_wait_replicas_compared), ',')) {
    // "replicas" or "replicas:loops": WAIT holds the connection it is sent
    // on, so more loops (connections) mean more WAITs in flight.
    std::pair<std::string, std::string> parts = absl::StrSplit(setting, absl::MaxSplits(':', 1));
    const std::string& wait = parts.first;
    std::vector<std::string> flags = {"--redis_wait_replicas=" + wait};
    std::string label = "WAIT " + wait;
    if (!parts.second.empty()) {
      flags.push_back("--redis_loops=" + parts.second);
      label += ", " + parts.second + " loops";
    }
    Bench w;
    w.out_dir = dir;
    w.processes = {{"bench", 0}, {"redis", primary.pid()}, {"redis_replica", replica->pid()}};
    std::vector<std::unique_ptr<Child>> children;
    const std::string ledger = StartService(w, children, "ledger", absl::GetFlag(FLAGS_ledger_binary),
                                            primary_address, flags);
    CpuMeter cpu(w);
    LoadResult r = PostTransfersLoad(ledger, absl::StrCat("benchwait", runs_json.size()),
                                     absl::StrCat("ledger_wait", runs_json.size()));
    CpuUse use = cpu.Take();
    const double transfers = static_cast<double>(std::max<int64_t>(1, r.started));
    std::string per_op = CpuPerOp(b, "ledger_wait (" + label + ")", "transfer", transfers, use);
    runs_json.push_back(Json()
                            .Str("redis_wait_replicas", wait)
                            .Str("redis_loops", parts.second.empty() ? "default" : parts.second)
                            .Raw("load", ToJson(r))
                            .Raw("cpu_cores", CpuMeter::CoresJson(use))
                            .Raw("cpu_usec_per_transfer", per_op)
                            .str());
    runs.emplace_back(label, r);
    for (auto it = children.rbegin(); it != children.rend(); ++it) (*it)->Stop();
  }
  b.Report("ledger_wait", Json()
                              .Str("setup", "one primary + one replica (loopback), one ledger_server per setting")
                              .Raw("runs", "[" + absl::StrJoin(runs_json, ",") + "]")
                              .str());
  // The first setting (WAIT 0 by default) is the base the others compare with.
  const double base = runs.empty() ? 0 : runs[0].second.throughput;
  for (const auto& [label, r] : runs) {
    b.rows.push_back({"ledger_wait", absl::StrFormat("PostTransfers/s at %d in flight, %s", r.concurrency, label),
                      r.throughput, "/s", absl::StrFormat("%s %.0f/s", runs[0].first, base),
                      base > 0 ? Pct(r.throughput / base) : "", "", absl::StrFormat("p99 %.1f ms", r.p99_ms)});
    if (r.errors > 0) {
      b.rows.push_back({"ledger_wait", "errors, " + label, static_cast<double>(r.errors),
                        "", "", "", "0", r.first_error.substr(0, 60)});
    }
  }
}

// ---------------------------------------------------------------- table

std::string Table(const std::vector<Row>& rows) {
  std::string out = absl::StrFormat("| %-22s | %-60s | %12s | %-20s | %-7s | %-18s | %-18s |\n",
                                    "scenario", "metric", "value", "floor", "ratio", "target",
                                    "result");
  out += absl::StrFormat("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(24, '-'), std::string(62, '-'),
                         std::string(14, '-'), std::string(22, '-'), std::string(9, '-'),
                         std::string(20, '-'), std::string(20, '-'));
  for (const Row& r : rows) {
    out += absl::StrFormat("| %-22s | %-60s | %12s | %-20s | %-7s | %-18s | %-18s |\n", r.scenario,
                           r.metric, absl::StrFormat("%.1f %s", r.value, r.unit), r.floor, r.ratio,
                           r.target, r.verdict);
  }
  return out;
}

// CPU microseconds per operation of each process, one line per measured load.
std::string CpuTable(const std::vector<CpuRow>& rows) {
  const std::vector<std::string> columns = {"redis", "kudos", "ledger", "leaderboard", "echo",
                                            "bench"};
  std::string out = absl::StrFormat("| %-32s | %-6s | %10s |", "CPU us per op: scenario", "op", "ops/s");
  std::string rule = absl::StrFormat("|%s|%s|%s|", std::string(34, '-'), std::string(8, '-'),
                                     std::string(12, '-'));
  for (const std::string& c : columns) {
    out += absl::StrFormat(" %11s |", c);
    rule += std::string(13, '-') + "|";
  }
  out += absl::StrFormat(" %9s |\n", "total");
  rule += std::string(11, '-') + "|\n";
  out += rule;
  for (const CpuRow& r : rows) {
    out += absl::StrFormat("| %-32s | %-6s | %10.0f |", r.scenario, r.unit, r.ops_per_s);
    double total = 0;
    for (const std::string& c : columns) {
      double usec = 0;
      for (const auto& [name, v] : r.usec_per_op) {
        // The cluster scenario's nodes (redis0, redis1, ...) add up in "redis".
        if (name == c || ((c == "echo" || c == "redis") && absl::StartsWith(name, c))) usec += v;
      }
      total += usec;
      out += absl::StrFormat(" %11.1f |", usec);
    }
    out += absl::StrFormat(" %9.1f |\n", total);
  }
  return out;
}

int Main() {
  const std::string out_dir = absl::GetFlag(FLAGS_out_dir);
  std::system(("mkdir -p '" + out_dir + "/redis' && rm -f '" + out_dir + "'/*.log '" + out_dir +
               "'/redis/*")
                  .c_str());
  std::set<std::string> wanted;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_scenarios), ',')) {
    wanted.insert(std::string(s));
  }
  auto want = [&](const std::string& s) { return wanted.count("all") || wanted.count(s); };

  Bench b;
  b.out_dir = out_dir;
  b.redis_port = FreePort();
  std::vector<std::string> redis_args = {
      "--port", absl::StrCat(b.redis_port), "--bind", "127.0.0.1", "--dir", out_dir + "/redis",
      "--save", "", "--daemonize", "no", "--loglevel", "warning"};
  if (absl::GetFlag(FLAGS_redis_aof)) {
    redis_args.insert(redis_args.end(), {"--appendonly", "yes", "--appendfsync", "everysec"});
  } else {
    redis_args.insert(redis_args.end(), {"--appendonly", "no"});
  }
  Child redis(absl::GetFlag(FLAGS_redis_server), RedisArgs(redis_args), out_dir + "/redis.log");
  if (!WaitForPort(b.redis_port, std::chrono::seconds(10))) {
    Log("redis-server did not start; see " + out_dir + "/redis.log");
    return 1;
  }
  const std::string redis_address = absl::StrCat("127.0.0.1:", b.redis_port);
  b.processes.emplace_back("bench", 0);
  b.processes.emplace_back("redis", redis.pid());
  std::vector<std::unique_ptr<Child>> children;
  auto start = [&](const std::string& name, const std::string& binary,
                   std::vector<std::string> extra) {
    return StartService(b, children, name, binary, redis_address, std::move(extra));
  };
  try {
    b.echo_callback = start("echo_callback", absl::GetFlag(FLAGS_echo_binary), {"--model=callback"});
    b.echo_sync = start("echo_sync", absl::GetFlag(FLAGS_echo_binary), {"--model=sync"});
    b.ledger = start("ledger", absl::GetFlag(FLAGS_ledger_binary), {});
    b.kudos = start("kudos", absl::GetFlag(FLAGS_kudos_binary), {"--ledger=" + b.ledger});
    b.leaderboard = start("leaderboard", absl::GetFlag(FLAGS_leaderboard_binary),
                          {"--consumer_name=bench"});
    Log(absl::StrCat("redis ", redis_address, ", ledger ", b.ledger, ", kudos ", b.kudos,
                     ", leaderboard ", b.leaderboard));
    Clock::time_point t0 = Clock::now();
    struct Step {
      std::string name;
      void (*run)(Bench&);
    };
    const std::vector<Step> steps = {{"floor_a", FloorA},   {"floor_b", FloorB},
                                     {"send_kudos", SendKudos},
                                     {"list_kudos", ListKudos},
                                     {"send_kudos_cluster", SendKudosCluster},
                                     {"ledger_wait", LedgerWait},
                                     {"leaderboard", Leaderboard},
                                     {"watch", Watch},       {"rebuild", Rebuild},
                                     {"archive", Archive}};
    for (const Step& step : steps) {
      if (!want(step.name)) continue;
      Log("scenario " + step.name);
      Clock::time_point s0 = Clock::now();
      try {
        step.run(b);
      } catch (const std::exception& e) {
        Log("scenario " + step.name + " failed: " + e.what());
        b.Report(step.name, Json().Str("error", e.what()).str());
        b.rows.push_back({step.name, "scenario failed", 0, "", "", "", "", "FAILED"});
      }
      Log(absl::StrFormat("scenario %s took %.1f s", step.name, Seconds(s0)));
    }
    std::string table = Table(b.rows) + "\n" + CpuTable(b.cpu_rows);
    std::cout << "\n" << table << std::flush;
    std::ofstream(out_dir + "/report.json") << "[\n" << absl::StrJoin(b.reports, ",\n") << "\n]\n";
    std::ofstream(out_dir + "/table.md") << table;
    Log(absl::StrFormat("all scenarios took %.1f s; report in %s/report.json", Seconds(t0), out_dir));
  } catch (const std::exception& e) {
    Log(std::string("bench failed: ") + e.what());
    return 1;
  }
  for (auto it = children.rbegin(); it != children.rend(); ++it) (*it)->Stop();
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return bench::Main();
}
