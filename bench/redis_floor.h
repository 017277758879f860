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
// services send, in their order, with payloads of the real sizes, once their
// directory and allowance caches are warm (issue 13):
//   kudos:  EVALSHA begin_recognition (checks the directory's version)
//   ledger: EVALSHA post (lib+post: reads the allowance version, registers
//           the org in a stand-in for its slot's registry key)
//   kudos:  EVALSHA finish_recognition
// pipelined across `depth` independent kudos per batch.
FloorBResult RunFloorB(const FloorBOptions& options);

}  // namespace bench
