// Floor (b): Redis doing the Redis work of one kudos, without the services.
#pragma once

#include <string>

namespace bench {

struct FloorBOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string org = "floorb";
  int people = 10000;
  int connections = 2;  // one thread each
  int depth = 16;       // kudos per pipelined batch
  double warmup_s = 1;
  double duration_s = 8;
};

struct FloorBResult {
  double kudos_per_s = 0;
  double commands_per_s = 0;
  double scripts_per_s = 0;
  int64_t kudos = 0;
  int64_t error_replies = 0;
  std::string first_error;
  int commands_per_kudos = 0;
  double batch_p50_ms = 0, batch_p99_ms = 0;
};

// Per kudos (one recipient), exactly the commands the kudos and ledger
// services send, in their order, with payloads of the real sizes:
//   kudos:  GET settings; HGET person:<recipient> pb, HGET person:<giver> pb;
//           EVALSHA begin_recognition; HMGET the record (Settle)
//   ledger: GET policy; SADD (stand-in for the org registry key of the org's
//           slot, common/redis/org_registry.h); EVALSHA post (lib+post)
//   kudos:  EVALSHA finish_recognition; HMGET record + LRANGE boosts (GetKudos)
// pipelined across `depth` independent kudos per batch.
FloorBResult RunFloorB(const FloorBOptions& options);

}  // namespace bench
