// The programs service's host (issue 18): what each area (awards and budgets,
// celebrations) is given, and where it registers its gRPC services and its
// background workers. Each area adds itself in its own Add<Area>(Host&)
// (programs_modules.h), so the areas never edit one another's files.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/auth/auth.h"
#include "common/auth/guard.h"
#include "common/grpc/module_host.h"
#include "common/redis/org_registry.h"
#include "common/redis/redis_client.h"

namespace programs {

// The service name in this service's tokens (MintServiceToken): the ledger
// lets "programs" post AWARD and CELEBRATION transfers.
inline constexpr char kServiceName[] = "programs";

struct Upstreams {
  std::string kudos = "127.0.0.1:50052";
  std::string ledger = "127.0.0.1:50051";
};

struct HostOptions {
  Upstreams upstreams;
  // Deadline of every call to another service.
  std::chrono::milliseconds call_timeout{5000};
  // Signs this service's tokens for calls to kudos and ledger.
  std::string service_secret;
  // Period of each area's sweep (awards: finishing half-done payments).
  std::chrono::milliseconds sweep_interval{5000};
};

class Host : public common::grpc_util::ModuleHost {
 public:
  Host(HostOptions options, common::redis::Pool& pool, common::auth::Guard guard);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const HostOptions& options() const { return options_; }
  common::redis::Pool& pool() { return pool_; }
  // The org discovery every sweep shares (one per process).
  common::redis::OrgRegistry& org_registry() { return org_registry_; }
  const common::auth::Guard& guard() const { return guard_; }
  // One channel per upstream, shared by the areas.
  std::shared_ptr<grpc::Channel> ledger_channel() const { return ledger_; }
  std::shared_ptr<grpc::Channel> kudos_channel() const { return kudos_; }
  // ServiceAuthorization, AddService, AddWorker, Keep, StartWorkers: ModuleHost.

 private:
  HostOptions options_;
  common::redis::Pool& pool_;
  common::auth::Guard guard_;
  common::redis::OrgRegistry org_registry_;
  std::shared_ptr<grpc::Channel> ledger_;
  std::shared_ptr<grpc::Channel> kudos_;
};

}  // namespace programs
