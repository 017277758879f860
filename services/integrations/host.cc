#include "services/integrations/host.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/check/check.h"

namespace integrations {

Host::Host(HostOptions options, common::redis::Pool& pool, common::auth::Guard guard)
    : ModuleHost("integrations", options.service_secret),
      options_(std::move(options)),
      pool_(pool),
      guard_(std::move(guard)) {}

// Workers and kept objects use the pool and the HTTP routes.
Host::~Host() { Shutdown(); }

void Host::AddHttpRoute(std::string path_prefix, HttpHandler handler) {
  KUDOS_CHECK(absl::StartsWith(path_prefix, "/"), "HTTP route prefixes start with '/'");
  for (const auto& [prefix, unused] : http_routes_) {
    KUDOS_CHECK(prefix != path_prefix, "two modules registered the same HTTP route");
  }
  http_routes_.emplace_back(std::move(path_prefix), std::move(handler));
}

const HttpHandler* Host::FindHttpRoute(absl::string_view path) const {
  const HttpHandler* best = nullptr;
  size_t best_length = 0;
  for (const auto& [prefix, handler] : http_routes_) {
    if (absl::StartsWith(path, prefix) && prefix.size() > best_length) {
      best = &handler;
      best_length = prefix.size();
    }
  }
  return best;
}

}  // namespace integrations
