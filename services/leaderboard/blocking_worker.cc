#include "services/leaderboard/blocking_worker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/check/check.h"

namespace leaderboard {

BlockingWorker::BlockingWorker(int threads, int max_queued) : max_queued_(max_queued) {
  KUDOS_CHECK(threads >= 1 && max_queued >= 0, "a worker has a thread and a bounded queue");
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

BlockingWorker::~BlockingWorker() { Stop(); }

absl::Status BlockingWorker::Submit(Task task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("the server is shutting down");
  // A task waits only while no thread is idle; the idle ones take it at once.
  int waiting = static_cast<int>(queue_.size()) - idle_;
  if (waiting >= max_queued_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "too many long-running calls on this replica (", threads_.size(), " running, ",
        max_queued_, " waiting); retry later"));
  }
  queue_.push_back(std::move(task));
  return absl::OkStatus();
}

void BlockingWorker::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
  threads_.clear();
}

void BlockingWorker::Loop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      mu_.Await(absl::Condition(
          +[](BlockingWorker* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      --idle_;
      if (queue_.empty()) return;  // stopping, nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

}  // namespace leaderboard
