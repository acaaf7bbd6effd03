// Reading a whole file (see file_text.h).
#include "schema/file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "schema/unique_fd.h"

namespace edgeplane {

Result<std::string> readFileText(const std::filesystem::path& file) {
  auto failed = [&file](int err) {
    return terminal("cannot read " + file.string() + ": " + errnoText(err));
  };
  const UniqueFd f(::open(file.c_str(), O_RDONLY | O_NOCTTY | O_CLOEXEC));
  const int fd = f.get();
  if (fd < 0) {
    return failed(errno);
  }
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
  std::string text(sized ? static_cast<size_t>(st.st_size) + 1 : 4096, '\0');
  if (const int err = readToEnd(fd, text, 0); err != 0) {
    return failed(err);
  }
  return text;
}

int readFull(int fd, char* buf, size_t want, size_t& got) {
  got = 0;
  while (got < want) {
    const ssize_t n = ::read(fd, buf + got, want - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return errno;
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  return 0;
}

int readToEnd(int fd, std::string& text, size_t got) {
  while (true) {
    if (got == text.size()) {
      text.resize(std::max<size_t>(text.size() * 2, 4096));
    }
    const size_t want = text.size() - got;
    size_t n = 0;
    const int err = readFull(fd, text.data() + got, want, n);
    got += n;
    if (err != 0) {
      return err;
    }
    if (n < want) {
      text.resize(got);
      return 0;
    }
  }
}

}  // namespace edgeplane
