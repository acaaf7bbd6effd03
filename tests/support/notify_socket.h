// A stand-in for the service manager's notification socket ($NOTIFY_SOCKET, sd_notify(3)) in
// tests: a unix datagram socket bound in a test directory that collects what a daemon sends.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace edgeplane::testing {

class NotifySocket {
 public:
  // `path`: a file path, or "@name" for a socket in the abstract namespace (as $NOTIFY_SOCKET
  // spells one; the address is then the name after a NUL byte, with no terminator).
  explicit NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string name = path_.string();
    std::strncpy(addr.sun_path, name.c_str(), sizeof(addr.sun_path) - 1);
    socklen_t length = sizeof(addr);
    if (name.starts_with('@')) {
      addr.sun_path[0] = '\0';
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    }
    bound_ = fd_ >= 0 && name.size() < sizeof(addr.sun_path) &&
             ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), length) == 0;
  }
  ~NotifySocket() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  bool bound() const { return bound_; }
  const std::filesystem::path& path() const { return path_; }
  // Every message received so far, in order (each "KEY=value\n…" as sent).
  const std::vector<std::string>& messages() const { return messages_; }

  // Receives until a message containing `line` (a whole "KEY=value" line) has arrived `count`
  // times in all; false after `timeout`.
  bool waitFor(const std::string& line, size_t count = 1,
               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return receiveUntil([&] { return seen(line) >= count; }, timeout);
  }

  // Receives until `count` messages have arrived in all; false after `timeout`.
  bool waitForMessages(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return receiveUntil([&] { return messages_.size() >= count; }, timeout);
  }

  // How many messages received so far hold `line` as one of their lines.
  size_t seen(const std::string& line) const {
    size_t n = 0;
    for (const std::string& m : messages_) {
      const std::string lines = "\n" + m + "\n";
      if (lines.find("\n" + line + "\n") != std::string::npos) {
        ++n;
      }
    }
    return n;
  }

  // The lines starting with `prefix` ("STATUS=") of every message so far, in order.
  std::vector<std::string> linesStarting(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const std::string& m : messages_) {
      size_t at = 0;
      while (at <= m.size()) {
        size_t end = m.find('\n', at);
        if (end == std::string::npos) {
          end = m.size();
        }
        if (m.compare(at, prefix.size(), prefix) == 0) {
          out.push_back(m.substr(at, end - at));
        }
        at = end + 1;
      }
    }
    return out;
  }

  // The index of the first message at or after `from` holding `line`; -1 when none.
  int indexOf(const std::string& line, size_t from = 0) const {
    for (size_t i = from; i < messages_.size(); ++i) {
      if (("\n" + messages_[i] + "\n").find("\n" + line + "\n") != std::string::npos) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

 private:
  template <typename Done>
  bool receiveUntil(Done done, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (done()) {
        return true;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        messages_.emplace_back(buf, static_cast<size_t>(n));
      }
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  bool bound_ = false;
  std::vector<std::string> messages_;
};

}  // namespace edgeplane::testing
