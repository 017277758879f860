// Loopback ports for tests and bench/: no GoogleTest here, so bench/ links
// it too (target test_support).
#pragma once

#include <chrono>

namespace harness {

// A free TCP port on 127.0.0.1 (bound once to port 0, then released).
int FreePort();

// Blocks until something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, std::chrono::milliseconds timeout);

}  // namespace harness
