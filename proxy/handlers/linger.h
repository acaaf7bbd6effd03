// Lingering before a close: what a client still sends is read and dropped, since closing a
// socket with unread bytes resets the connection and can destroy the answer already sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace edgeplane::proxy {

enum class Drained : uint8_t {
  WouldBlock,  // nothing more to read now: wait for the next event
  Ended,       // the client closed, or the read failed
  Limit,       // `total` passed the limit
};

// Reads `fd` into `scratch` and drops it, until one of Drained's ends; `total` counts the bytes
// read (across calls when the caller keeps it).
Drained drainReadable(int fd, std::span<uint8_t> scratch, size_t& total, size_t limit);

}  // namespace edgeplane::proxy
