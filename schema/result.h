// Result<T>: a value or an Error, for control-plane code that does not throw; an errno's text
// for messages, and which errnos may pass when tried again.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace edgeplane {

struct Error {
  std::string message;
  // Retryable: the same operation may succeed later (a busy lock, an unreachable remote).
  // Terminal: it will not until something changes (bad config, a newer store schema).
  bool retryable = false;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error terminal(std::string message) {
  return Error{std::move(message), false};
}
inline Error retryable(std::string message) {
  return Error{std::move(message), true};
}

// The text of an errno value ("No such file or directory"), for error messages.
inline std::string errnoText(int err) {
  return std::error_code(err, std::system_category()).message();
}

// Whether a kernel call that failed with `err` may succeed when tried again (the kernel was
// busy, out of buffers or memory for a moment, or the call was interrupted).
inline bool retryableErrno(int err) {
  return err == EAGAIN || err == EBUSY || err == EINTR || err == ENOBUFS || err == ENOMEM ||
         err == ETIMEDOUT || err == ERESTART;
}

}  // namespace edgeplane
