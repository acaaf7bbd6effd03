#include "reconciler/net/module_file.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include "schema/encoding.h"

namespace edgeplane::net {
namespace {

// Why `st` (of a directory when `dir`) is not to be trusted; "" when it is.
std::string distrust(const struct stat& st, bool dir) {
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return dir ? "not a directory" : "not a regular file";
  }
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return "owned by uid " + std::to_string(st.st_uid) + ", neither root nor this user";
  }
  const bool sticky = dir && (st.st_mode & S_ISVTX) != 0;
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && !sticky) {
    return "writable by its group or others";
  }
  return "";
}

// Reads exactly `n` bytes at `offset`; false when the file is shorter or unreadable.
bool readAt(int fd, void* buf, size_t n, uint64_t offset) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return true;
}

template <typename Ehdr, typename Phdr>
Result<std::string> buildIdOf(int fd) {
  Ehdr eh{};
  if (!readAt(fd, &eh, sizeof eh, 0) || eh.e_phentsize != sizeof(Phdr) || eh.e_phnum > 4096) {
    return terminal("a malformed ELF header");
  }
  std::vector<Phdr> ph(eh.e_phnum);
  if (!readAt(fd, ph.data(), ph.size() * sizeof(Phdr), eh.e_phoff)) {
    return terminal("a malformed ELF program header table");
  }
  for (const Phdr& p : ph) {
    if (p.p_type != PT_NOTE || p.p_filesz > 65536) {
      continue;
    }
    std::vector<unsigned char> notes(p.p_filesz);
    if (!readAt(fd, notes.data(), notes.size(), p.p_offset)) {
      return terminal("a malformed ELF note segment");
    }
    const size_t align = p.p_align == 8 ? 8 : 4;
    auto up = [align](size_t n) { return (n + align - 1) / align * align; };
    for (size_t at = 0; at + 12 <= notes.size();) {
      uint32_t namesz = 0;
      uint32_t descsz = 0;
      uint32_t type = 0;
      std::memcpy(&namesz, &notes[at], 4);
      std::memcpy(&descsz, &notes[at + 4], 4);
      std::memcpy(&type, &notes[at + 8], 4);
      const size_t name = at + 12;
      const size_t desc = name + up(namesz);
      if (namesz > notes.size() || descsz > notes.size() || desc + descsz > notes.size()) {
        break;  // malformed: the rest of this segment is not read
      }
      if (type == NT_GNU_BUILD_ID && namesz == 4 && std::memcmp(&notes[name], "GNU", 4) == 0 &&
          descsz > 0) {
        return toHex(&notes[desc], descsz);
      }
      at = desc + up(descsz);
    }
  }
  return terminal("no GNU build ID");
}

}  // namespace

Result<int> openTrustedFile(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return terminal(path + ": not an absolute path");
  }
  int dir = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    const int err = errno;
    return terminal("/: " + errnoText(err));
  }
  std::string walked;
  size_t at = 1;
  for (;;) {
    struct stat st {};
    if (::fstat(dir, &st) != 0) {
      const int err = errno;
      ::close(dir);
      return terminal((walked.empty() ? "/" : walked) + ": " + errnoText(err));
    }
    const bool isFile = at > path.size();
    if (std::string why = distrust(st, !isFile); !why.empty()) {
      ::close(dir);
      return terminal((walked.empty() ? "/" : walked) + ": " + why +
                      "; refused on the way to code to load: " + path);
    }
    if (isFile) {
      return dir;
    }
    const size_t end = std::min(path.find('/', at), path.size());
    const std::string name = path.substr(at, end - at);
    at = end + 1;
    if (name.empty() || name == "." || name == "..") {
      ::close(dir);
      return terminal(path + ": not a normalised path");
    }
    walked += "/" + name;
    const bool last = at > path.size();
    const int next =
        ::openat(dir, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? 0 : O_DIRECTORY));
    const int err = errno;
    ::close(dir);
    if (next < 0) {
      return terminal(walked + ": " +
                      (err == ELOOP || (err == ENOTDIR && !last)
                           ? "a symbolic link or not a directory"
                           : errnoText(err)));
    }
    dir = next;
  }
}

Result<std::string> gnuBuildId(int fd) {
  unsigned char ident[EI_NIDENT] = {};
  if (!readAt(fd, ident, sizeof ident, 0) || std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
    return terminal("not an ELF file");
  }
  if (ident[EI_DATA] != (std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB)) {
    return terminal("an ELF file of another byte order");
  }
  if (ident[EI_CLASS] == ELFCLASS64) {
    return buildIdOf<Elf64_Ehdr, Elf64_Phdr>(fd);
  }
  if (ident[EI_CLASS] == ELFCLASS32) {
    return buildIdOf<Elf32_Ehdr, Elf32_Phdr>(fd);
  }
  return terminal("an ELF file of an unknown class");
}

}  // namespace edgeplane::net
