// Crash-safe file writes (see file_write.h).
#include "reconciler/system/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <filesystem>

#include "schema/file_text.h"
#include "schema/unique_fd.h"

namespace edgeplane::sys {
namespace {

// Where a file is written: `name` in the directory open as `dirFd` (AT_FDCWD: `name` is a path),
// shown as `shown` in errors.
struct Place {
  int dirFd;
  const std::string& name;
  const std::string& shown;
};

Result<void> fail(const std::string& what, const Place& at, int e, int* err) {
  ::unlinkat(at.dirFd, at.name.c_str(), 0);
  if (err != nullptr) {
    *err = e;
  }
  return terminal(what + " " + at.shown + ": " + errnoText(e));
}

}  // namespace

namespace {

// writeNewFile at `at`; `sync`: fsync before returning.
Result<void> writeFile(const Place& at, std::string_view data, mode_t mode, int* err, bool sync) {
  if (err != nullptr) {
    *err = 0;
  }
  const UniqueFd f(::openat(at.dirFd, at.name.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (f.get() < 0) {
    const int e = errno;
    if (err != nullptr) {
      *err = e;
    }
    return terminal("create " + at.shown + ": " + errnoText(e));  // not ours: left alone
  }
  if (::fchmod(f.get(), mode) != 0) {
    const int e = errno;
    return fail("chmod", at, e, err);
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(f.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      return fail("write", at, e, err);
    }
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(f.get()) != 0) {
    const int e = errno;
    return fail("sync", at, e, err);
  }
  return {};
}

Result<void> replaceWith(const std::string& path, const std::string& tmp, std::string_view data,
                         mode_t mode, bool sync) {
  ::unlink(tmp.c_str());
  const Place at{AT_FDCWD, tmp, tmp};
  if (auto w = writeFile(at, data, mode, nullptr, sync); !w) {
    return w;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    return fail("replace", at, err, nullptr);
  }
  return {};
}

}  // namespace

Result<void> writeNewFile(const std::string& path, std::string_view data, mode_t mode, int* err) {
  return writeFile({AT_FDCWD, path, path}, data, mode, err, true);
}

Result<void> writeNewFileAt(int dirFd, const std::string& dir, const std::string& name,
                            std::string_view data, mode_t mode) {
  const std::string shown = dir + "/" + name;
  return writeFile({dirFd, name, shown}, data, mode, nullptr, true);
}

Result<void> replaceFile(const std::string& path, const std::string& tmp, std::string_view data,
                         mode_t mode) {
  return replaceWith(path, tmp, data, mode, true);
}

Result<void> replaceFileAsThisProcess(const std::string& path, std::string_view data, mode_t mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto r = replaceWith(path, tmp, data, mode, false);
  if (!r) {
    ::unlink(tmp.c_str());
  }
  return r;
}

void removeTemporaryFilesOfDeadProcesses(const std::string& dir, std::string_view prefix) {
  constexpr std::string_view kTmp = ".tmp.";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t tmp = name.rfind(kTmp);
    if (!name.starts_with(prefix) || tmp == std::string::npos || tmp < prefix.size()) {
      continue;
    }
    const std::string_view digits = std::string_view(name).substr(tmp + kTmp.size());
    pid_t pid = 0;
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
    if (err != std::errc() || end != digits.data() + digits.size() || pid <= 0 ||
        pid == ::getpid()) {
      continue;
    }
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      ::unlink(entry.path().c_str());
    }
  }
}

Result<std::optional<std::string>> readOwnFile(const std::string& path, std::string_view prefix) {
  // O_NONBLOCK: a FIFO planted here must not hang the run (it is refused below).
  const UniqueFd f(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (f.get() < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return std::optional<std::string>();
    }
    if (err == ELOOP) {
      return terminal(path + " is a symbolic link; refusing to read it");
    }
    return terminal("open " + path + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) {
    const int err = errno;
    return terminal("stat " + path + ": " + errnoText(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return terminal(path + " is not a regular file");
  }
  // Sized by fstat, read in one call when the file does not grow meanwhile (after the first
  // prefix.size() bytes, when there is a prefix to check).
  std::string data(static_cast<size_t>(st.st_size) + 1, '\0');
  auto failed = [&path](int err) { return terminal("read " + path + ": " + errnoText(err)); };
  size_t got = 0;
  if (!prefix.empty()) {
    data.resize(std::max(data.size(), prefix.size()));
    if (const int err = readFull(f.get(), data.data(), prefix.size(), got); err != 0) {
      return failed(err);
    }
    if (std::string_view(data.data(), got) != prefix.substr(0, got) || got < prefix.size()) {
      data.resize(got);  // not what the caller is looking for (or all there is): read no further
      return std::optional<std::string>(std::move(data));
    }
  }
  if (const int err = readToEnd(f.get(), data, got); err != 0) {
    return failed(err);
  }
  return std::optional<std::string>(std::move(data));
}

Result<void> fsyncDir(const std::string& dir) {
  const UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0 || ::fsync(d.get()) != 0) {
    const int err = errno;
    return terminal("sync directory " + dir + ": " + errnoText(err));
  }
  return {};
}

}  // namespace edgeplane::sys
