// PMDK (libpmemobj) doing the operations Ferrite's heap benchmark measures, timed in C.
#ifndef PMDK_WORKLOADS_H
#define PMDK_WORKLOADS_H
#include <stdint.h>
#include <stddef.h>

typedef struct pmdk_pool pmdk_pool;

/// Creates a pool at `path` of `size` bytes with room for `slots` object references.
/// Sets PMEM_IS_PMEM_FORCE=1 first (memory mode on tmpfs). NULL on failure (message on stderr).
pmdk_pool *pmdk_create(const char *path, size_t size, uint64_t slots);
void pmdk_close(pmdk_pool *pool);

/// Each returns the elapsed nanoseconds for `n` operations.
uint64_t pmdk_update1(pmdk_pool *pool, uint64_t n);        // tx { add 8 B field; set }
uint64_t pmdk_update4(pmdk_pool *pool, uint64_t n);        // tx { 4 x (add 8 B field; set) }
uint64_t pmdk_alloc_link(pmdk_pool *pool, uint64_t n);     // tx { zalloc 48 B object; add slot; link }
uint64_t pmdk_free_unlink(pmdk_pool *pool, uint64_t n);    // tx { add slot; free object; unlink }
/// Reads the first field of the `n` objects linked in the slots, `passes` times.
uint64_t pmdk_read(pmdk_pool *pool, uint64_t n, int passes, uint64_t *sum);
/// CLOCK_MONOTONIC in nanoseconds; an opaque call, so the optimizer keeps loads of escaped
/// objects between two timestamps where they are.
uint64_t bench_now_ns(void);

/// The platform's floor for persistence: each of `threads` threads (1 or 2) repeatedly stores to
/// two cache lines of its own in a file mapping at `path`, writes them back (clwb) and fences.
/// Returns the total rounds per second.
double raw_persist_rate(const char *path, int threads, uint64_t rounds);
#endif
