// Waiting on behaviour, not on time: polls a condition until it holds or a
// generous deadline passes (this machine is shared and noisy, so the
// deadline is a bound for failures, never what a passing test waits).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace harness {

inline bool Eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace harness
