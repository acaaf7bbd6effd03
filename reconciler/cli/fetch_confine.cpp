// The fetch child's capabilities, no_new_privs and seccomp filter (see fetch_confine.h).
#include "reconciler/cli/fetch_confine.h"

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace edgeplane::cli {

namespace {

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kAuditArch = 0;  // unknown here: no filter
#endif

#if defined(__SANITIZE_ADDRESS__)
#define EDGEPLANE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDGEPLANE_ASAN 1
#endif
#endif

// Syscalls a fetch never makes; those an architecture lacks are left out.
constexpr long kDenied[] = {
#ifdef SYS_mount
    SYS_mount,
#endif
#ifdef SYS_umount2
    SYS_umount2,
#endif
#ifdef SYS_pivot_root
    SYS_pivot_root,
#endif
#ifdef SYS_chroot
    SYS_chroot,
#endif
// An ASan build's LeakSanitizer stops the process's threads with ptrace at exit; only there
// is ptrace left allowed (capabilities and no_new_privs still hold).
#if defined(SYS_ptrace) && !defined(EDGEPLANE_ASAN)
    SYS_ptrace,
#endif
#ifdef SYS_process_vm_readv
    SYS_process_vm_readv,
#endif
#ifdef SYS_process_vm_writev
    SYS_process_vm_writev,
#endif
#ifdef SYS_kexec_load
    SYS_kexec_load,
#endif
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
#ifdef SYS_init_module
    SYS_init_module,
#endif
#ifdef SYS_finit_module
    SYS_finit_module,
#endif
#ifdef SYS_delete_module
    SYS_delete_module,
#endif
#ifdef SYS_setns
    SYS_setns,
#endif
#ifdef SYS_unshare
    SYS_unshare,
#endif
#ifdef SYS_bpf
    SYS_bpf,
#endif
#ifdef SYS_perf_event_open
    SYS_perf_event_open,
#endif
#ifdef SYS_keyctl
    SYS_keyctl,
#endif
#ifdef SYS_add_key
    SYS_add_key,
#endif
#ifdef SYS_request_key
    SYS_request_key,
#endif
#ifdef SYS_reboot
    SYS_reboot,
#endif
#ifdef SYS_swapon
    SYS_swapon,
#endif
#ifdef SYS_swapoff
    SYS_swapoff,
#endif
#ifdef SYS_open_by_handle_at
    SYS_open_by_handle_at,
#endif
#ifdef SYS_userfaultfd
    SYS_userfaultfd,
#endif
#ifdef SYS_fsopen
    SYS_fsopen,
#endif
#ifdef SYS_fsmount
    SYS_fsmount,
#endif
#ifdef SYS_move_mount
    SYS_move_mount,
#endif
#ifdef SYS_open_tree
    SYS_open_tree,
#endif
#ifdef SYS_settimeofday
    SYS_settimeofday,
#endif
#ifdef SYS_clock_settime
    SYS_clock_settime,
#endif
#ifdef SYS_adjtimex
    SYS_adjtimex,
#endif
#ifdef SYS_clock_adjtime
    SYS_clock_adjtime,
#endif
#ifdef SYS_acct
    SYS_acct,
#endif
#ifdef SYS_iopl
    SYS_iopl,
#endif
#ifdef SYS_ioperm
    SYS_ioperm,
#endif
};

constexpr uint32_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

sock_filter stmt(uint16_t code, uint32_t k) {
  return BPF_STMT(code, k);
}
sock_filter jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

// The program: foreign ABI -> EPERM; a denied number -> EPERM; clone with a namespace flag ->
// EPERM; clone3 -> ENOSYS (its flags sit behind a pointer; libc falls back to clone); else
// allow.
std::vector<sock_filter> filterProgram() {
  const uint32_t deny = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  std::vector<sock_filter> p;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, deny));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
#if defined(__x86_64__)
  // x32 syscalls share the arch value and set bit 30 of the number.
  p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, deny));
#endif
  for (long nr : kDenied) {
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1));
    p.push_back(stmt(BPF_RET | BPF_K, deny));
  }
#ifdef SYS_clone3
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(SYS_clone3), 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)));
#endif
  // clone: its flags are the first argument on x86_64 and aarch64 (low 32 bits).
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(SYS_clone), 0, 3));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  p.push_back(jump(BPF_JMP | BPF_JSET | BPF_K, kNamespaceFlags, 0, 1));
  p.push_back(stmt(BPF_RET | BPF_K, deny));
  p.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return p;
}

Result<void> dropCapabilities() {
  // Ambient first (they would come back on exec); EINVAL: a kernel without ambient sets.
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    const int err = errno;
    if (err != EINVAL) {
      return retryable("clearing the ambient capabilities: " + errnoText(err));
    }
  }
  // Shrinking the bounding set needs CAP_SETPCAP (EPERM without it); a process without it
  // has nothing to gain back anyway, as no_new_privs keeps exec from granting any.
  for (unsigned long cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      const int err = errno;
      if (err != EPERM) {
        return retryable("dropping capability " + std::to_string(cap) +
                         " from the bounding set: " + errnoText(err));
      }
    }
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) {
    const int err = errno;
    return retryable("dropping every capability (capset): " + errnoText(err));
  }
  return {};
}

}  // namespace

Result<void> confineFetchProcess() {
  // Not dumpable: once without capabilities, a uid-0 process is otherwise open to every other
  // uid-0 process (the proxy) through /proc/<pid>: its environment (the Git password), its
  // memory, and its root, through which the directories the proxy's unit hides are reached.
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    const int err = errno;
    return retryable("clearing the dumpable flag: " + errnoText(err));
  }
  if (auto dropped = dropCapabilities(); !dropped) {
    return dropped;
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    const int err = errno;
    return retryable("setting no_new_privs: " + errnoText(err));
  }
  if (kAuditArch == 0) {
    return {};
  }
  std::vector<sock_filter> program = filterProgram();
  sock_fprog prog{static_cast<unsigned short>(program.size()), program.data()};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    const int err = errno;
    if (err == EINVAL) {
      return {};  // a kernel built without seccomp filters
    }
    return retryable("installing the seccomp filter: " + errnoText(err));
  }
  return {};
}

}  // namespace edgeplane::cli
