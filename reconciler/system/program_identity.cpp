// Which build of edgeplane this is (see program_identity.h).
#include "reconciler/system/program_identity.h"

#include <elf.h>
#include <link.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "edgeplane_version.h"
#include "schema/encoding.h"

namespace edgeplane::sys {
namespace {

std::string executableBuildId() {
  std::string id;
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* out = static_cast<std::string*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_NOTE) {
            continue;
          }
          const auto* p = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
          const uint8_t* end = p + ph.p_memsz;
          while (end - p >= static_cast<std::ptrdiff_t>(sizeof(ElfW(Nhdr)))) {
            ElfW(Nhdr) nh;
            std::memcpy(&nh, p, sizeof(nh));
            const uint8_t* name = p + sizeof(nh);
            const uint8_t* desc = name + ((nh.n_namesz + 3) & ~3U);
            if (desc > end || static_cast<size_t>(end - desc) < nh.n_descsz) {
              break;
            }
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                std::memcmp(name, "GNU", 4) == 0) {
              *out = toHex(desc, nh.n_descsz);
              return 1;
            }
            const size_t skip = (nh.n_descsz + 3) & ~3U;
            if (static_cast<size_t>(end - desc) < skip) {
              break;
            }
            p = desc + skip;
          }
        }
        return 1;  // the first object is the executable: stop there
      },
      &id);
  return id;
}

std::string computeIdentity() {
  std::string id = executableBuildId();
  if (id.empty()) {
    struct stat st {};
    if (::stat("/proc/self/exe", &st) == 0) {
      id = "size " + std::to_string(st.st_size) + " mtime " + std::to_string(st.st_mtim.tv_sec) +
           "." + std::to_string(st.st_mtim.tv_nsec);
    }
  }
  return std::string(EDGEPLANE_VERSION) + " build " + id;
}

}  // namespace

std::string programIdentity() {
  static const std::string identity = computeIdentity();
  return identity;
}

}  // namespace edgeplane::sys
