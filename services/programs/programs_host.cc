#include "services/programs/programs_host.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/check/check.h"
#include "common/log/log.h"

namespace programs {
namespace {
// Orgs whose service token is cached at once; past it the cache starts over.
constexpr size_t kMaxCachedTokens = 10000;
}  // namespace

Host::Host(HostOptions options, common::redis::Pool& pool, common::auth::Guard guard)
    : options_(std::move(options)),
      pool_(pool),
      guard_(std::move(guard)),
      org_registry_(pool),
      ledger_(grpc::CreateChannel(options_.upstreams.ledger, grpc::InsecureChannelCredentials())),
      kudos_(grpc::CreateChannel(options_.upstreams.kudos, grpc::InsecureChannelCredentials())) {}

Host::~Host() { StopWorkers(); }

absl::StatusOr<std::string> Host::ServiceAuthorization(absl::string_view org) {
  absl::Time now = absl::Now();
  absl::MutexLock lock(&token_mutex_);
  auto it = tokens_.find(org);
  if (it != tokens_.end() &&
      now - it->second.second < common::auth::kServiceTokenTtl - absl::Minutes(1)) {
    return it->second.first;
  }
  absl::StatusOr<std::string> token =
      common::auth::MintServiceToken(kServiceName, org, options_.service_secret, now);
  if (!token.ok()) return token.status();
  if (tokens_.size() >= kMaxCachedTokens) tokens_.clear();
  std::string value = absl::StrCat("Bearer ", *token);
  tokens_[std::string(org)] = {value, now};
  return value;
}

void Host::AddService(std::unique_ptr<grpc::Service> service) {
  KUDOS_CHECK(service != nullptr, "a module added no service object");
  services_.push_back(std::move(service));
}

void Host::AddWorker(std::string name, std::function<void(const absl::Notification&)> run) {
  KUDOS_CHECK(threads_.empty(), "workers are added before StartWorkers");
  workers_.push_back({std::move(name), std::move(run)});
}

std::vector<grpc::Service*> Host::services() const {
  std::vector<grpc::Service*> out;
  out.reserve(services_.size());
  for (const auto& service : services_) out.push_back(service.get());
  return out;
}

void Host::StartWorkers() {
  KUDOS_CHECK(threads_.empty(), "StartWorkers runs once");
  for (const Worker& worker : workers_) {
    common::log::Info(absl::StrCat("programs: starting worker ", worker.name));
    threads_.emplace_back([this, &worker] { worker.run(stop_); });
  }
}

void Host::StopWorkers() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

}  // namespace programs
