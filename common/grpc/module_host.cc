#include "common/grpc/module_host.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/auth.h"
#include "common/check/check.h"
#include "common/log/log.h"

namespace common::grpc_util {
namespace {
// Orgs whose service token is cached at once; past it the cache starts over.
constexpr size_t kMaxCachedTokens = 10000;
}  // namespace

ModuleHost::ModuleHost(std::string service_name, std::string service_secret)
    : service_name_(std::move(service_name)), service_secret_(std::move(service_secret)) {}

ModuleHost::~ModuleHost() { Shutdown(); }

absl::StatusOr<std::string> ModuleHost::ServiceAuthorization(absl::string_view org) {
  absl::Time now = absl::Now();
  absl::MutexLock lock(&token_mutex_);
  auto it = tokens_.find(org);
  if (it != tokens_.end() &&
      now - it->second.second < common::auth::kServiceTokenTtl - absl::Minutes(1)) {
    return it->second.first;
  }
  absl::StatusOr<std::string> token =
      common::auth::MintServiceToken(service_name_, org, service_secret_, now);
  if (!token.ok()) return token.status();
  if (tokens_.size() >= kMaxCachedTokens) tokens_.clear();
  std::string value = absl::StrCat("Bearer ", *token);
  tokens_[std::string(org)] = {value, now};
  return value;
}

void ModuleHost::AddService(std::unique_ptr<grpc::Service> service) {
  KUDOS_CHECK(service != nullptr, "a module added no service object");
  services_.push_back(std::move(service));
}

void ModuleHost::AddWorker(std::string name, std::function<void(const absl::Notification&)> run) {
  KUDOS_CHECK(threads_.empty(), "workers are added before StartWorkers");
  workers_.push_back({std::move(name), std::move(run)});
}

std::vector<grpc::Service*> ModuleHost::services() const {
  std::vector<grpc::Service*> out;
  out.reserve(services_.size());
  for (const auto& service : services_) out.push_back(service.get());
  return out;
}

void ModuleHost::StartWorkers() {
  KUDOS_CHECK(threads_.empty(), "StartWorkers runs once");
  for (const Worker& worker : workers_) {
    common::log::Info(absl::StrCat(service_name_, ": starting worker ", worker.name));
    threads_.emplace_back([this, &worker] { worker.run(stop_); });
  }
}

void ModuleHost::StopWorkers() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

void ModuleHost::Shutdown() {
  StopWorkers();
  kept_.clear();
}

}  // namespace common::grpc_util
