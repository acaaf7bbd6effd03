// Owner-only secret files (see secret_file.h).
#include "schema/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "schema/file_text.h"
#include "schema/mode_text.h"
#include "schema/unique_fd.h"

namespace edgeplane {
namespace {

// Bytes wiped before they are freed.
struct WipedBuffer {
  std::string bytes;
  ~WipedBuffer() { ::explicit_bzero(bytes.data(), bytes.size()); }
};

}  // namespace

Result<std::string> readSecretFile(const std::filesystem::path& file, std::string_view what) {
  const std::string name = std::string(what) + " " + file.string();
  auto unsafe = [&name](const struct stat& st) -> std::optional<Error> {
    if (!S_ISREG(st.st_mode)) {
      return terminal(name + " is not a regular file");
    }
    if ((st.st_mode & 0077) != 0) {
      return terminal(name + " has mode " + modeText(st.st_mode & 07777) +
                      "; it must be readable by its owner only (chmod 600)");
    }
    return std::nullopt;
  };
  // Checked by name first, so that nothing but a regular file is ever opened (opening a FIFO
  // releases its writer, opening a device can act on it), then again on the descriptor: the
  // file read is the one checked.
  struct stat named {};
  if (::stat(file.c_str(), &named) != 0) {
    const int err = errno;
    return terminal(name + ": " + errnoText(err));
  }
  if (auto why = unsafe(named)) {
    return *why;
  }
  const UniqueFd f(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (f.get() < 0) {
    const int err = errno;
    return terminal(name + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) {
    const int err = errno;
    return terminal(name + ": " + errnoText(err));
  }
  if (st.st_dev != named.st_dev || st.st_ino != named.st_ino) {
    return terminal(name + " was replaced while it was being read; try again");
  }
  if (auto why = unsafe(st)) {
    return *why;
  }
  // One buffer, never grown (a reallocation would free a copy unwiped); one byte over the limit
  // tells a file that is larger, whatever fstat said.
  WipedBuffer buf{std::string(kMaxSecretFileBytes + 1, '\0')};
  size_t got = 0;
  if (const int err = readFull(f.get(), buf.bytes.data(), buf.bytes.size(), got); err != 0) {
    return terminal(name + ": cannot read it: " + errnoText(err));
  }
  if (got > kMaxSecretFileBytes) {
    return terminal(name + " is larger than " + std::to_string(kMaxSecretFileBytes) +
                    " bytes; it is not a secret file");
  }
  std::string_view text(buf.bytes.data(), got);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (text.empty()) {
    return terminal(name + " is empty");
  }
  return std::string(text);
}

}  // namespace edgeplane
