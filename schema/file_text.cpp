// Reading a whole file (see file_text.h).
#include "schema/file_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
  size_t got = 0;
  int err = 0;
  while (true) {
    if (got == text.size()) {
      text.resize(text.size() * 2);
    }
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      err = n < 0 ? errno : 0;
      break;
    }
    got += static_cast<size_t>(n);
  }
  if (err != 0) {
    return failed(err);
  }
  text.resize(got);
  return text;
}

}  // namespace edgeplane
