// Loopback ports for tests and bench/: no GoogleTest here, so bench/ links
// it too (target test_support).
#pragma once

#include <chrono>
#include <vector>

namespace harness {

// A free TCP port on 127.0.0.1 (bound once to port 0, then released).
int FreePort();

// `count` distinct free ports: all held bound at once before any is released,
// so no two are the same (FreePort twice may return one port twice).
std::vector<int> FreePorts(int count);

// Blocks until something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

}  // namespace harness
