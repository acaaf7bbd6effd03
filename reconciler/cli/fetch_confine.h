// Confinement of the fetch child: libgit2 parses a remote's bytes (the smart protocol, packs,
// SSH) in it, so it gives up every capability, sets no_new_privs and enters a seccomp filter
// that refuses what a fetch never needs.
//
// Why these: the agent runs as root with CAP_NET_ADMIN and CAP_SYS_ADMIN (it manages
// namespaces, links and nftables); a parser bug in the fetch would otherwise run with all of
// that. The fetch only needs to read the cache and the SSH key (root's own files: no
// capability needed as their owner), write the cache and open sockets.
#pragma once

#include "schema/result.h"

namespace edgeplane::cli {

// In the calling process, for good: clears the ambient and (when it may) the bounding
// capability sets, sets effective, permitted and inheritable to empty, sets no_new_privs, and
// installs a seccomp filter that fails mount, umount, pivot_root, chroot, ptrace,
// process_vm_*, kexec, module loading, setns, unshare, namespace flags on clone, clone3, bpf,
// perf_event_open, keyctl, reboot, swapon/off, clock and time setting, and syscalls of a
// foreign ABI with EPERM. An error when capabilities or no_new_privs cannot be set (the
// fetch must not run then); a kernel without seccomp (or an architecture this filter does not
// know) runs without the filter.
Result<void> confineFetchProcess();

}  // namespace edgeplane::cli
