// Straight-line asynchronous code without coroutines (C++17): a Sequence of
// steps run one after another, each step ending by calling its `done` once,
// from any thread (a Redis loop, a gRPC callback). The first error ends the
// sequence; `finish` runs exactly once on every path: after the last step,
// at the first error, when `interrupt` says stop (a cancelled call), or when
// a step drops its `done` without calling it (INTERNAL, never a hang).
//
//   auto state = std::make_shared<State>();
//   Sequence steps;
//   steps.Then([=](Done done) { store.GetPolicy(org, deadline, Into(&state->policy, std::move(done))); })
//        .Then([=]() -> absl::Status { return Check(state->policy); })     // synchronous
//        .Then([=](Done done) { store.Spent(org, who, deadline, Into(&state->spent, std::move(done))); });
//   std::move(steps).Run(std::move(finish));
//
// A step that completes synchronously does not grow the stack: the runner
// picks its result up in a loop, so a thousand-step sequence over a blocking
// client is as deep as a one-step one.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/check/check.h"

namespace common::grpc_util {

// Called exactly once by a step: OK to go on, an error to end with it.
using Done = absl::AnyInvocable<void(absl::Status) &&>;
// A step: starts its work and calls `done` when it ends.
using Step = absl::AnyInvocable<void(Done) &&>;
// Asked before each step: a non-OK status ends the sequence with it.
using Interrupt = absl::AnyInvocable<absl::Status()>;

// Adapts `done` to a StatusOr<T> callback (the AsyncClient's, a store's):
// the value goes to *target, then done(OK); an error goes to done.
template <typename T>
absl::AnyInvocable<void(absl::StatusOr<T>) &&> Into(T* target, Done done) {
  return [target, done = std::move(done)](absl::StatusOr<T> result) mutable {
    if (!result.ok()) return std::move(done)(result.status());
    *target = *std::move(result);
    std::move(done)(absl::OkStatus());
  };
}

// The same for a callback that carries only a status.
inline absl::AnyInvocable<void(absl::Status) &&> Into(Done done) { return done; }

class Sequence {
 public:
  Sequence() = default;
  Sequence(Sequence&&) = default;
  Sequence& operator=(Sequence&&) = default;

  // Appends a step: `void(Done)` (asynchronous) or `absl::Status()`
  // (synchronous: validation, filling a response).
  template <typename F>
  Sequence& Then(F step) {
    if constexpr (std::is_invocable_v<F, Done>) {
      steps_.push_back(Step(std::move(step)));
    } else {
      static_assert(std::is_invocable_r_v<absl::Status, F>,
                    "a step is void(Done) or absl::Status()");
      steps_.push_back(Step([step = std::move(step)](Done done) mutable {
        std::move(done)(std::move(step)());
      }));
    }
    return *this;
  }

  bool empty() const { return steps_.empty(); }

  // Runs the steps; `finish` gets OK after the last one or the first error.
  void Run(Done finish) && { std::move(*this).Run(nullptr, std::move(finish)); }
  // The same, asking `interrupt` (when set) before each step.
  void Run(Interrupt interrupt, Done finish) &&;

 private:
  std::vector<Step> steps_;
};

namespace steps_internal {

// Runs the steps; shared by the `done` of the step in flight, so it lives
// exactly as long as someone may still report a result.
class Runner : public std::enable_shared_from_this<Runner> {
 public:
  Runner(std::vector<Step> steps, Interrupt interrupt, Done finish)
      : steps_(std::move(steps)), interrupt_(std::move(interrupt)), finish_(std::move(finish)) {}

  // A step that dropped its `done` unanswered left nobody to finish: finish
  // here, so the caller never hangs.
  ~Runner() {
    if (finish_) {
      std::move(finish_)(absl::InternalError(
          "a step of the call ended without reporting its result (a bug: it dropped its done)"));
    }
  }

  void Loop() {
    std::shared_ptr<Runner> self = shared_from_this();
    while (true) {
      if (next_ == steps_.size()) return End(absl::OkStatus());
      if (interrupt_) {
        if (absl::Status stop = interrupt_(); !stop.ok()) return End(stop);
      }
      Step step = std::move(steps_[next_++]);
      state_.store(kRunning);
      std::move(step)([self](absl::Status status) { self->Completed(std::move(status)); });
      // The step completed inside the call: go on here instead of recursing.
      if (state_.exchange(kReturned) != kCompleted) return;
      if (!result_.ok()) return End(result_);
    }
  }

 private:
  enum State { kRunning, kReturned, kCompleted };

  void Completed(absl::Status status) {
    result_ = std::move(status);
    // Still inside the step call: Loop picks the result up.
    if (state_.exchange(kCompleted) == kRunning) return;
    if (!result_.ok()) return End(result_);
    Loop();
  }

  void End(absl::Status status) {
    KUDOS_CHECK(finish_ != nullptr, "a sequence finishes exactly once");
    Done finish = std::move(finish_);
    finish_ = nullptr;
    steps_.clear();  // what later steps captured is released now
    std::move(finish)(std::move(status));
  }

  std::vector<Step> steps_;
  size_t next_ = 0;
  Interrupt interrupt_;
  Done finish_;
  absl::Status result_;
  std::atomic<int> state_{kRunning};
};

}  // namespace steps_internal

inline void Sequence::Run(Interrupt interrupt, Done finish) && {
  KUDOS_CHECK(finish != nullptr, "a sequence reports its end");
  auto runner = std::make_shared<steps_internal::Runner>(std::move(steps_), std::move(interrupt),
                                                        std::move(finish));
  steps_.clear();
  runner->Loop();
}

// One step that runs body(i, done) for i = 0 .. count-1, one after another,
// and ends at the first error (count 0: OK at once).
inline Step ForEach(size_t count, absl::AnyInvocable<void(size_t, Done)> body) {
  return [count, body = std::move(body)](Done done) mutable {
    auto shared = std::make_shared<absl::AnyInvocable<void(size_t, Done)>>(std::move(body));
    Sequence each;
    for (size_t i = 0; i < count; ++i) {
      each.Then([shared, i](Done step_done) { (*shared)(i, std::move(step_done)); });
    }
    std::move(each).Run(std::move(done));
  };
}

}  // namespace common::grpc_util
