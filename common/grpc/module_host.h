// What a service binary made of modules (integrations, programs) shares: the
// gRPC services its modules register, their background workers (one thread
// each, stopped together), objects that must live as long as the host, and
// the service token it calls other services with, cached per org.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

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

namespace common::grpc_util {

class ModuleHost {
 public:
  // `service_name` names the binary in its logs and in the tokens it mints
  // with `service_secret` (common::auth::MintServiceToken).
  ModuleHost(std::string service_name, std::string service_secret);
  virtual ~ModuleHost();
  ModuleHost(const ModuleHost&) = delete;
  ModuleHost& operator=(const ModuleHost&) = delete;

  // "authorization" metadata value for a call to another service on behalf
  // of `org` ("Bearer <token>"), cached until shortly before it expires.
  absl::StatusOr<std::string> ServiceAuthorization(absl::string_view org);

  // Served by the gRPC server; owned by the host.
  void AddService(std::unique_ptr<grpc::Service> service);
  // A background loop run on its own thread from StartWorkers() until
  // StopWorkers(); it returns soon after `stop` is notified.
  void AddWorker(std::string name, std::function<void(const absl::Notification& stop)> run);
  // Something that must live as long as the host (a store, a sweep).
  void Keep(std::shared_ptr<void> object) { kept_.push_back(std::move(object)); }

  std::vector<grpc::Service*> services() const;
  void StartWorkers();
  void StopWorkers();
  // StopWorkers, then drops what was kept. A derived host calls it first in
  // its destructor, while the members its workers and kept objects use are
  // still alive; the destructor here runs it again (a no-op by then).
  void Shutdown();

 private:
  struct Worker {
    std::string name;
    std::function<void(const absl::Notification&)> run;
  };
  const std::string service_name_;
  const std::string service_secret_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::vector<Worker> workers_;
  std::vector<std::thread> threads_;
  absl::Notification stop_;
  std::vector<std::shared_ptr<void>> kept_;
  absl::Mutex token_mutex_;
  // org -> (authorization value, minted at); bounded by kMaxCachedTokens.
  absl::flat_hash_map<std::string, std::pair<std::string, absl::Time>> tokens_
      ABSL_GUARDED_BY(token_mutex_);
};

}  // namespace common::grpc_util
