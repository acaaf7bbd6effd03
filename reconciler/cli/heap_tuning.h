// The heap of a one-shot command (plan, apply, validate, …): grown in large steps, never given
// back before exit, and backed by transparent huge pages where the kernel allows it.
#pragma once

namespace edgeplane::cli {

// Tunes malloc for a process that builds its whole working set once and then exits. At 10k
// forwards a plan touches some 20 MiB of heap; with 4 KiB pages that is ~5000 page faults,
// which on a virtual machine cost more than the run's own work. After this call:
//   - every thread allocates from the main arena (one heap, one advice);
//   - allocations below 32 MiB come from that heap, not from a fresh mmap each (a vector that
//     doubles reuses what its old buffer left instead of faulting in new pages);
//   - the heap grows at least 32 MiB at a time and is not trimmed while the run lasts;
//   - its first 48 MiB or so are advised MADV_HUGEPAGE, so with transparent huge pages at
//     "madvise" or "always" a 2 MiB region is faulted in once.
// Not for long-lived processes (the agent, the proxy): they would keep their peak heap.
// With the kernel's default THP defrag setting ("madvise"), a fault in the advised region may
// compact memory first when no free 2 MiB page is at hand; `defer` in
// /sys/kernel/mm/transparent_hugepage/defrag leaves that to the kernel's threads instead.
// Nothing is changed when the environment sets malloc up (GLIBC_TUNABLES with glibc.malloc.*,
// MALLOC_ARENA_MAX and the like): `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` keeps glibc's
// defaults. Where malloc is not glibc's (AddressSanitizer) the settings do nothing, and the
// 16 MiB block that grows the heap is that allocator's.
void tuneHeapForOneShotRun();

}  // namespace edgeplane::cli
