// Development tokens for tests, signed with the dev secret the services
// default to.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/auth/auth.h"

namespace harness {

std::string MintToken(const std::string& org, const std::string& subject,
                      std::vector<std::string> roles = {"member"});

// A client context carrying the token and a deadline.
std::unique_ptr<grpc::ClientContext> Context(
    const std::string& token, std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace harness
