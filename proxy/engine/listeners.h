// Listening sockets and small socket options shared by the engine and the handlers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::proxy {

// One SO_REUSEPORT listening socket per worker on the same address: the first binds (port 0
// picks one), the rest join its port, so the kernel spreads connections over them. `port`
// receives the bound port.
Result<std::vector<int>> openListeners(const Endpoint& address, int count, uint16_t& port);

void setNoDelay(int fd);
// An abortive close (RST) on close(): for connections refused at once (no TIME_WAIT).
void setLingerZero(int fd);

}  // namespace edgeplane::proxy
