// The one shape of every unary RPC on the gRPC callback API:
// authenticate -> validate -> run (asynchronous steps) -> map status ->
// Finish once. No handler blocks a thread: the body validates and queues
// steps; each step starts asynchronous work (the AsyncClient, an async stub)
// and calls its `done`; the call finishes when the last step ends, at the
// first error (mapped with ToGrpcStatus, message kept), when the client has
// cancelled (checked before every step), or when the call's deadline passed.
//
//   class MyService : public v1::My::CallbackService {
//     grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
//                                   const v1::GetRequest* request,
//                                   v1::GetResponse* response) override {
//       return calls_.Serve(context, [=](Call& call) -> absl::Status {
//         if (request->id().empty()) return absl::InvalidArgumentError("id: is required");
//         auto state = std::make_shared<Thing>();
//         call.Then([=, &call](Done done) {
//               store_.Get(call.principal().org, request->id(), call.deadline(),
//                          Into(state.get(), std::move(done)));
//             })
//             .Then([=]() -> absl::Status {
//               *response->mutable_thing() = *state;
//               return absl::OkStatus();
//             });
//         return absl::OkStatus();
//       });
//     }
//     UnaryCalls calls_{guard, UnaryOptions{"my", 2000ms, 4096}};
//   };
//
// `call`, `request` and `response` stay valid until the call finishes, so
// steps may capture them by reference/pointer.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/auth/guard.h"
#include "common/check/check.h"
#include "common/grpc/status.h"
#include "common/grpc/steps.h"

namespace common::grpc_util {

using SteadyDeadline = std::chrono::steady_clock::time_point;

struct UnaryOptions {
  std::string service_name = "service";  // for messages
  // The deadline of every outgoing call (Redis, a downstream service) is
  // min(the client's deadline, call start + default_timeout).
  std::chrono::milliseconds default_timeout{2000};
  // Calls served at once by this replica (the callback API holds no thread
  // per call, so the resource quota's thread bound does not count them);
  // past it a call is RESOURCE_EXHAUSTED at once.
  int max_calls_in_flight = 4096;
};

class UnaryCalls;

// One call in flight; the body and its steps see it.
class Call {
 public:
  const auth::Principal& principal() const { return principal_; }
  grpc::CallbackServerContext& context() const { return *context_; }
  // For Redis calls: min(the client's deadline, start + default_timeout).
  SteadyDeadline deadline() const { return deadline_; }
  // The same deadline on an outgoing gRPC call.
  void SetDeadline(grpc::ClientContext& client) const;
  // True once the client cancelled or its deadline passed.
  bool cancelled() const { return context_->IsCancelled(); }

  // Appends a step (see steps.h): `void(Done)` or `absl::Status()`. Only
  // in the body: once the steps run, a later one would never run.
  template <typename F>
  Call& Then(F step) {
    KUDOS_CHECK(!steps_started_, "steps are added by the body, before they start");
    steps_.Then(std::move(step));
    return *this;
  }

 private:
  friend class UnaryCalls;
  Call(UnaryCalls& calls, grpc::CallbackServerContext* context, SteadyDeadline deadline);
  // Ends the call with `status` (mapped); exactly once.
  void Finish(const absl::Status& status);
  // Before each step: the client gone or the deadline past ends the call.
  absl::Status Interrupted() const;

  UnaryCalls& calls_;
  grpc::CallbackServerContext* context_;
  grpc::ServerUnaryReactor* reactor_;
  SteadyDeadline deadline_;
  auth::Principal principal_;
  Sequence steps_;
  bool steps_started_ = false;
  std::atomic<bool> finished_{false};
};

class UnaryCalls {
 public:
  // `check` (optional) runs after authentication, e.g. the org id's shape.
  using PrincipalCheck = std::function<absl::Status(const auth::Principal&)>;
  using Body = absl::AnyInvocable<absl::Status(Call&) &&>;

  UnaryCalls(auth::Guard guard, UnaryOptions options, PrincipalCheck check = nullptr);
  UnaryCalls(const UnaryCalls&) = delete;
  UnaryCalls& operator=(const UnaryCalls&) = delete;

  // The whole handler: returns the reactor gRPC waits on.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* context, Body body);

  const auth::Guard& guard() const { return guard_; }
  const UnaryOptions& options() const { return options_; }

  struct Stats {
    int64_t started = 0;   // calls accepted (past the in-flight bound)
    int64_t finished = 0;  // of those, finished
    int64_t refused = 0;   // refused by the in-flight bound
    int64_t in_flight = 0;
  };
  Stats stats() const;

 private:
  friend class Call;
  void Finished();

  auth::Guard guard_;
  UnaryOptions options_;
  PrincipalCheck check_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> started_{0};
  std::atomic<int64_t> finished_{0};
  std::atomic<int64_t> refused_{0};
};

// The steady-clock deadline of a call: min(the client's, now + timeout).
inline SteadyDeadline CallDeadline(const grpc::ServerContextBase& context,
                                   std::chrono::milliseconds timeout) {
  const auto steady_now = std::chrono::steady_clock::now();
  const auto system_now = std::chrono::system_clock::now();
  // No client deadline reads as time_point::max(): the service's own bound.
  const std::chrono::system_clock::time_point client = context.deadline();
  if (client >= system_now + timeout) return steady_now + timeout;
  if (client <= system_now) return steady_now;
  return steady_now +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(client - system_now);
}

inline Call::Call(UnaryCalls& calls, grpc::CallbackServerContext* context,
                  SteadyDeadline deadline)
    : calls_(calls), context_(context), reactor_(context->DefaultReactor()), deadline_(deadline) {}

inline void Call::SetDeadline(grpc::ClientContext& client) const {
  client.set_deadline(std::chrono::system_clock::now() +
                      (deadline_ - std::chrono::steady_clock::now()));
}

inline absl::Status Call::Interrupted() const {
  if (context_->IsCancelled()) {
    return absl::CancelledError("the call was cancelled (by the client, or its deadline passed)");
  }
  if (std::chrono::steady_clock::now() >= deadline_) {
    return absl::DeadlineExceededError(absl::StrCat(
        calls_.options().service_name, ": the call's deadline passed before it could finish"));
  }
  return absl::OkStatus();
}

inline void Call::Finish(const absl::Status& status) {
  KUDOS_CHECK(!finished_.exchange(true), "a call is finished exactly once");
  // Counted before gRPC sees the answer: once the reactor is finished the
  // server may complete its shutdown and destroy the service.
  calls_.Finished();
  reactor_->Finish(ToGrpcStatus(status));
}

inline UnaryCalls::UnaryCalls(auth::Guard guard, UnaryOptions options, PrincipalCheck check)
    : guard_(std::move(guard)), options_(std::move(options)), check_(std::move(check)) {
  KUDOS_CHECK(options_.max_calls_in_flight > 0 && options_.default_timeout.count() > 0,
              "a service bounds its calls in flight and their time");
}

inline grpc::ServerUnaryReactor* UnaryCalls::Serve(grpc::CallbackServerContext* context,
                                                   Body body) {
  if (in_flight_.fetch_add(1) >= options_.max_calls_in_flight) {
    in_flight_.fetch_sub(1);
    refused_.fetch_add(1);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat(options_.service_name, ": ", options_.max_calls_in_flight,
                     " calls in flight, the most one replica serves at once; retry shortly")));
    return reactor;
  }
  started_.fetch_add(1);
  std::shared_ptr<Call> call(
      new Call(*this, context, CallDeadline(*context, options_.default_timeout)));
  grpc::ServerUnaryReactor* reactor = call->reactor_;
  absl::Status accepted = [&]() -> absl::Status {
    absl::StatusOr<auth::Principal> principal = guard_.Authenticate(*context);
    if (!principal.ok()) return principal.status();
    if (check_) {
      if (absl::Status s = check_(*principal); !s.ok()) return s;
    }
    call->principal_ = *std::move(principal);
    return std::move(body)(*call);
  }();
  if (!accepted.ok()) {
    call->Finish(accepted);
    return reactor;
  }
  Sequence steps = std::move(call->steps_);
  call->steps_started_ = true;
  Call* raw = call.get();  // alive while the sequence holds `call` below
  std::move(steps).Run([raw] { return raw->Interrupted(); },
                       [call](absl::Status status) { call->Finish(status); });
  return reactor;
}

inline void UnaryCalls::Finished() {
  finished_.fetch_add(1);
  int64_t left = in_flight_.fetch_sub(1) - 1;
  KUDOS_CHECK(left >= 0, "calls in flight never go below zero");
}

inline UnaryCalls::Stats UnaryCalls::stats() const {
  Stats stats;
  stats.started = started_.load();
  stats.finished = finished_.load();
  stats.refused = refused_.load();
  stats.in_flight = in_flight_.load();
  return stats;
}

}  // namespace common::grpc_util
