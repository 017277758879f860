#include "services/programs/programs_host.h"

namespace programs {

Host::Host(HostOptions options, common::redis::Pool& pool, common::auth::Guard guard)
    : ModuleHost(kServiceName, options.service_secret),
      options_(std::move(options)),
      pool_(pool),
      guard_(std::move(guard)),
      org_registry_(pool),
      ledger_(grpc::CreateChannel(options_.upstreams.ledger, grpc::InsecureChannelCredentials())),
      kudos_(grpc::CreateChannel(options_.upstreams.kudos, grpc::InsecureChannelCredentials())) {}

// Workers and kept objects use the pool, the registry and the channels.
Host::~Host() { Shutdown(); }

}  // namespace programs
