// The unary-call helper of the callback API (common/grpc/unary.h, steps.h),
// in this process behind RunServer over real gRPC on loopback: every path
// finishes the call exactly once (an error in any step, a cancelled call
// between steps, a deadline, a dropped step), statuses map as ToGrpcStatus,
// outgoing deadlines are min(client, service), and calls in flight are
// bounded. Asynchronous steps complete on a worker thread standing in for a
// Redis loop.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/grpc/status.h"
#include "common/grpc/steps.h"
#include "common/grpc/unary.h"
#include "kudos/v1/kudos.grpc.pb.h"
#include "tests/harness/loopback.h"
#include "tests/harness/tokens.h"

namespace {

using namespace std::chrono_literals;
namespace kv1 = kudos::v1;
using common::grpc_util::Call;
using common::grpc_util::Done;
using common::grpc_util::Sequence;
using common::grpc_util::UnaryCalls;
using common::grpc_util::UnaryOptions;

// One thread running posted work in order: the stand-in for a Redis loop.
class Worker {
 public:
  Worker() : thread_([this] { Run(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> work) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(work));
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      std::function<void()> work = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      work();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// Re-posts itself on the worker until `ready()` (bounded: 60 s), then
// completes `done` with OK: an asynchronous wait that holds no thread.
void WhenReady(Worker& worker, std::function<bool()> ready, Done done,
               std::chrono::steady_clock::time_point give_up =
                   std::chrono::steady_clock::now() + 60s) {
  auto shared = std::make_shared<Done>(std::move(done));
  worker.Post([&worker, ready = std::move(ready), shared, give_up]() mutable {
    if (ready() || std::chrono::steady_clock::now() > give_up) {
      return std::move(*shared)(absl::OkStatus());
    }
    std::this_thread::sleep_for(2ms);
    WhenReady(worker, std::move(ready), std::move(*shared), give_up);
  });
}

using Body = std::function<absl::Status(Call&, const kv1::ListKudosRequest*,
                                        kv1::ListKudosResponse*)>;

// ListKudos on the callback API through whichever UnaryCalls and body the
// running test set.
class TestService : public kv1::KudosService::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListKudos(grpc::CallbackServerContext* context,
                                      const kv1::ListKudosRequest* request,
                                      kv1::ListKudosResponse* response) override {
    UnaryCalls* calls;
    Body body;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls = calls_;
      body = body_;
    }
    return calls->Serve(context, [body, request, response](Call& call) {
      return body(call, request, response);
    });
  }
  void Set(UnaryCalls* calls, Body body) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_ = calls;
    body_ = std::move(body);
  }

 private:
  std::mutex mu_;
  UnaryCalls* calls_ = nullptr;
  Body body_;
};

common::auth::Guard DevGuard(common::ratelimit::Options limits = {{0, 0}, {0, 0}, 0}) {
  common::auth::JwtConfig config;
  config.key = common::auth::kDevJwtSecret;
  config.service_secret = common::auth::kDevServiceSecret;
  return common::auth::Guard(common::auth::Authenticator(config), limits);
}

UnaryOptions Options(std::chrono::milliseconds timeout, int max_in_flight = 64) {
  UnaryOptions options;
  options.service_name = "unary_test";
  options.default_timeout = timeout;
  options.max_calls_in_flight = max_in_flight;
  return options;
}

class UnaryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    service_ = new TestService();
    port_ = harness::FreePort();
    server_ = new std::thread([] {
      common::grpc_util::ServerOptions options;
      options.address = "127.0.0.1:" + std::to_string(port_);
      options.service_name = "grpc_unary_test";
      options.services = {service_};
      options.shutdown_grace = 500ms;
      absl::Status status = common::grpc_util::RunServer(options);
      EXPECT_TRUE(status.ok()) << status;
    });
    ASSERT_TRUE(harness::WaitForPort(port_, 15s));
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    common::grpc_util::RequestShutdown();
    server_->join();
    delete server_;
    delete channel_;
    delete service_;
  }

  void SetUp() override { token_ = harness::MintToken("acme", "alice"); }

  grpc::Status List(kv1::ListKudosResponse* response = nullptr,
                    std::chrono::milliseconds timeout = 30s, const std::string* token = nullptr,
                    std::multimap<grpc::string_ref, grpc::string_ref>* trailers = nullptr,
                    std::unique_ptr<grpc::ClientContext>* keep = nullptr) {
    auto stub = kv1::KudosService::NewStub(*channel_);
    auto context = harness::Context(token == nullptr ? token_ : *token, timeout);
    kv1::ListKudosResponse ignored;
    grpc::Status status = stub->ListKudos(context.get(), kv1::ListKudosRequest(),
                                          response == nullptr ? &ignored : response);
    if (trailers != nullptr) *trailers = context->GetServerTrailingMetadata();
    if (keep != nullptr) *keep = std::move(context);
    return status;
  }

  // Every accepted call of `calls` has finished (polled: the last Finish
  // may land just after the client saw its answer).
  static bool AllFinished(const UnaryCalls& calls) {
    for (int i = 0; i < 3000; ++i) {
      UnaryCalls::Stats stats = calls.stats();
      if (stats.finished == stats.started && stats.in_flight == 0) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  static TestService* service_;
  static int port_;
  static std::thread* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
  std::string token_;
  Worker worker_;
};
TestService* UnaryTest::service_ = nullptr;
int UnaryTest::port_ = 0;
std::thread* UnaryTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* UnaryTest::channel_ = nullptr;

TEST_F(UnaryTest, Unary_AnUnauthenticatedCallNeverRunsTheBody) {
  UnaryCalls calls(DevGuard(), Options(10s));
  std::atomic<int> bodies{0};
  service_->Set(&calls, [&](Call&, auto, auto) {
    ++bodies;
    return absl::OkStatus();
  });
  std::string forged = "not-a-token";
  grpc::Status status = List(nullptr, 30s, &forged);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(bodies.load(), 0);
  EXPECT_TRUE(AllFinished(calls));
  EXPECT_EQ(calls.stats().finished, 1);
}

TEST_F(UnaryTest, Unary_StatusesOfTheBodyAndOfAsyncStepsMapAsToGrpcStatus) {
  UnaryCalls calls(DevGuard(), Options(10s));
  for (int code = 1; code <= 16; ++code) {
    absl::Status error(static_cast<absl::StatusCode>(code), absl::StrCat("failure ", code));
    grpc::Status expected = common::grpc_util::ToGrpcStatus(error);
    for (bool in_step : {false, true}) {
      service_->Set(&calls, [&, error, in_step](Call& call, auto, auto) {
        if (!in_step) return error;
        call.Then([&, error](Done done) {
          auto shared = std::make_shared<Done>(std::move(done));
          worker_.Post([shared, error] { std::move(*shared)(error); });
        });
        return absl::OkStatus();
      });
      grpc::Status status = List();
      EXPECT_EQ(status.error_code(), expected.error_code()) << code << " step " << in_step;
      EXPECT_EQ(status.error_message(), expected.error_message()) << code;
    }
  }
  EXPECT_TRUE(AllFinished(calls));
  EXPECT_EQ(calls.stats().finished, 2 * 16);
}

TEST_F(UnaryTest, Unary_AnErrorInAnyStepEndsTheCallThereAndFinishesItOnce) {
  UnaryCalls calls(DevGuard(), Options(10s));
  // Three steps: asynchronous, synchronous, asynchronous; the fail-th fails.
  for (int fail = 0; fail <= 3; ++fail) {
    auto ran = std::make_shared<std::vector<int>>();
    service_->Set(&calls, [&, ran, fail](Call& call, auto, kv1::ListKudosResponse* response) {
      auto outcome = [ran, fail](int step) {
        ran->push_back(step);
        return step == fail ? absl::FailedPreconditionError(absl::StrCat("step ", step))
                            : absl::OkStatus();
      };
      call.Then([&, outcome](Done done) {
            auto shared = std::make_shared<Done>(std::move(done));
            worker_.Post([shared, outcome] { std::move(*shared)(outcome(0)); });
          })
          .Then([outcome]() { return outcome(1); })
          .Then([&, outcome, response](Done done) {
            auto shared = std::make_shared<Done>(std::move(done));
            worker_.Post([shared, outcome, response] {
              response->set_next_page_token("filled by the last step");
              std::move(*shared)(outcome(2));
            });
          });
      return absl::OkStatus();
    });
    kv1::ListKudosResponse response;
    grpc::Status status = List(&response);
    if (fail == 3) {
      EXPECT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(response.next_page_token(), "filled by the last step");
      EXPECT_EQ(*ran, (std::vector<int>{0, 1, 2}));
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
      EXPECT_EQ(status.error_message(), absl::StrCat("step ", fail));
      EXPECT_EQ(static_cast<int>(ran->size()), fail + 1) << "no step runs after the failing one";
    }
  }
  EXPECT_TRUE(AllFinished(calls));
  EXPECT_EQ(calls.stats().finished, 4);
}

TEST_F(UnaryTest, Unary_ACallCancelledBetweenStepsStopsBeforeItsNextStep) {
  UnaryCalls calls(DevGuard(), Options(60s));
  std::atomic<bool> first_started{false};
  std::atomic<bool> second_ran{false};
  service_->Set(&calls, [&](Call& call, auto, auto) {
    call.Then([&](Done done) {
          first_started = true;
          // Ends only once the client has gone.
          WhenReady(worker_, [&call] { return call.cancelled(); }, std::move(done));
        })
        .Then([&]() {
          second_ran = true;
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
  auto stub = kv1::KudosService::NewStub(*channel_);
  auto context = harness::Context(token_, 30s);
  kv1::ListKudosRequest request;
  kv1::ListKudosResponse response;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> result;
  stub->async()->ListKudos(context.get(), &request, &response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    result = status;
    cv.notify_all();
  });
  for (int i = 0; i < 3000 && !first_started; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(first_started);
  context->TryCancel();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 60s, [&] { return result.has_value(); }));
  }
  EXPECT_EQ(result->error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(AllFinished(calls));
  EXPECT_FALSE(second_ran) << "a cancelled call ran its next step";
  EXPECT_EQ(calls.stats().finished, 1);
}

TEST_F(UnaryTest, Unary_OutgoingDeadlineIsTheEarlierOfTheClientsAndTheServices) {
  UnaryCalls calls(DevGuard(), Options(60s));
  std::chrono::steady_clock::duration budget{};
  std::chrono::system_clock::duration grpc_budget{};
  service_->Set(&calls, [&](Call& call, auto, auto) {
    budget = call.deadline() - std::chrono::steady_clock::now();
    grpc::ClientContext outgoing;
    call.SetDeadline(outgoing);
    grpc_budget = outgoing.deadline() - std::chrono::system_clock::now();
    return absl::OkStatus();
  });
  // gRPC carries the client's deadline as a rounded timeout: a little slack.
  constexpr auto kSlack = 100ms;
  // The client's 5 s is the earlier.
  ASSERT_TRUE(List(nullptr, 5s).ok());
  EXPECT_GT(budget, 0s);
  EXPECT_LE(budget, 5s + kSlack);
  EXPECT_LE(grpc_budget, 5s + kSlack);
  // The service's 60 s is the earlier.
  ASSERT_TRUE(List(nullptr, 600s).ok());
  EXPECT_GT(budget, 5s + kSlack);
  EXPECT_LE(budget, 60s);
  EXPECT_LE(grpc_budget, 60s + kSlack);
  EXPECT_TRUE(AllFinished(calls));
}

TEST_F(UnaryTest, Unary_ADeadlinePassedBetweenStepsIsDeadlineExceeded) {
  // The service's own bound is short; the client waits far longer.
  UnaryCalls calls(DevGuard(), Options(300ms));
  std::atomic<bool> second_ran{false};
  service_->Set(&calls, [&](Call& call, auto, auto) {
    call.Then([&](Done done) {
          WhenReady(worker_,
                    [&call] { return std::chrono::steady_clock::now() >= call.deadline(); },
                    std::move(done));
        })
        .Then([&]() {
          second_ran = true;
          return absl::OkStatus();
        });
    return absl::OkStatus();
  });
  grpc::Status status = List(nullptr, 60s);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_NE(status.error_message().find("unary_test"), std::string::npos)
      << status.error_message();
  EXPECT_FALSE(second_ran);
  EXPECT_TRUE(AllFinished(calls));
}

TEST_F(UnaryTest, Unary_AStepThatDropsItsDoneEndsInternalNotAHang) {
  UnaryCalls calls(DevGuard(), Options(60s));
  service_->Set(&calls, [&](Call& call, auto, auto) {
    call.Then([&](Done done) {
      worker_.Post([dropped = std::make_shared<Done>(std::move(done))] {});
    });
    return absl::OkStatus();
  });
  grpc::Status status = List(nullptr, 60s);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(status.error_message().find("without reporting its result"), std::string::npos)
      << status.error_message();
  EXPECT_TRUE(AllFinished(calls));
}

TEST_F(UnaryTest, Unary_CallsInFlightAreBoundedAndServedAgainOnceTheyFinish) {
  constexpr int kBound = 3;
  UnaryCalls calls(DevGuard(), Options(60s, kBound));
  std::atomic<bool> release{false};
  std::atomic<int> holding{0};
  service_->Set(&calls, [&](Call& call, auto, auto) {
    call.Then([&](Done done) {
      ++holding;
      WhenReady(worker_, [&] { return release.load(); }, std::move(done));
    });
    return absl::OkStatus();
  });
  std::vector<std::thread> held;
  std::atomic<int> held_ok{0};
  for (int i = 0; i < kBound; ++i) {
    held.emplace_back([&] {
      if (List(nullptr, 60s).ok()) ++held_ok;
    });
  }
  for (int i = 0; i < 3000 && holding < kBound; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(holding.load(), kBound);
  grpc::Status refused = List(nullptr, 60s);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("3 calls in flight"), std::string::npos)
      << refused.error_message();
  release = true;
  for (std::thread& t : held) t.join();
  EXPECT_EQ(held_ok.load(), kBound);
  EXPECT_TRUE(List(nullptr, 60s).ok());
  EXPECT_TRUE(AllFinished(calls));
  EXPECT_EQ(calls.stats().refused, 1);
}

TEST_F(UnaryTest, Unary_ARateLimitRefusalKeepsItsRetryTrailers) {
  common::ratelimit::Options limits;
  limits.per_person = {1, 1};
  limits.per_token = {0, 0};
  UnaryCalls calls(DevGuard(limits), Options(10s));
  service_->Set(&calls, [&](Call&, auto, auto) { return absl::OkStatus(); });
  ASSERT_TRUE(List().ok());
  // The trailers are views into the call's context: keep it alive.
  std::multimap<grpc::string_ref, grpc::string_ref> trailers;
  std::unique_ptr<grpc::ClientContext> context;
  grpc::Status refused = List(nullptr, 30s, nullptr, &trailers, &context);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(trailers.count(common::auth::kRetryAfterMetadata), 1u);
  EXPECT_TRUE(AllFinished(calls));
}

TEST(SequenceTest, SynchronousStepsRunInALoopNotARecursion) {
  // Deep enough to overflow the stack if each step recursed into the next.
  constexpr int kSteps = 200000;
  int ran = 0;
  Sequence steps;
  for (int i = 0; i < kSteps; ++i) {
    steps.Then([&ran](Done done) {
      ++ran;
      std::move(done)(absl::OkStatus());
    });
  }
  std::optional<absl::Status> result;
  std::move(steps).Run([&](absl::Status status) { result = status; });
  ASSERT_TRUE(result.has_value());
  EXPECT_TRUE(result->ok());
  EXPECT_EQ(ran, kSteps);
}

TEST(SequenceTest, ForEachStopsAtTheFirstErrorAndFinishesOnce) {
  std::vector<size_t> seen;
  int finished = 0;
  absl::Status result;
  Sequence steps;
  steps.Then(common::grpc_util::ForEach(10, [&](size_t i, Done done) {
    seen.push_back(i);
    std::move(done)(i == 4 ? absl::DataLossError("chunk 4") : absl::OkStatus());
  }));
  steps.Then([&]() {
    seen.push_back(100);
    return absl::OkStatus();
  });
  std::move(steps).Run([&](absl::Status status) {
    ++finished;
    result = status;
  });
  EXPECT_EQ(seen, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(finished, 1);
  EXPECT_EQ(result.code(), absl::StatusCode::kDataLoss);
}

TEST(SequenceTest, IntoStoresTheValueOrPassesTheError) {
  int value = 0;
  absl::Status seen;
  common::grpc_util::Into(&value, [&](absl::Status s) { seen = s; })(absl::StatusOr<int>(7));
  EXPECT_EQ(value, 7);
  EXPECT_TRUE(seen.ok());
  common::grpc_util::Into(&value, [&](absl::Status s) { seen = s; })(
      absl::StatusOr<int>(absl::UnavailableError("redis")));
  EXPECT_EQ(value, 7);
  EXPECT_EQ(seen.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
