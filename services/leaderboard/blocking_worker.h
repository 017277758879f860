// A fixed set of threads for work that must not run on a gRPC callback
// thread or a Redis loop thread: long-running calls (RebuildProjections
// replays a whole org) and reads still written against the blocking Pool.
// Bounded twice: `threads` run at once, at most `max_queued` wait; past
// that Submit refuses with RESOURCE_EXHAUSTED and the task never runs.
#pragma once

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace leaderboard {

class BlockingWorker {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  BlockingWorker(int threads, int max_queued);
  // Stop(): the tasks already accepted run first.
  ~BlockingWorker();
  BlockingWorker(const BlockingWorker&) = delete;
  BlockingWorker& operator=(const BlockingWorker&) = delete;

  // OK: `task` runs exactly once on a worker thread. RESOURCE_EXHAUSTED
  // (every thread busy and the queue full) or UNAVAILABLE (stopping): it
  // never runs.
  absl::Status Submit(Task task);
  // Refuses new tasks, runs the accepted ones, joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  const int max_queued_;
  absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace leaderboard
