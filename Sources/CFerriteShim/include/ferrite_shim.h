// Ferrite's C shim: the few things Swift cannot say directly.
// Cache-line write-back instructions, store fences, CPU feature detection,
// atomic read-modify-write on words of a mapped pool, and mmap flags that
// Glibc's Swift overlay does not export.
#ifndef FERRITE_SHIM_H
#define FERRITE_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The cache-line write-back instruction this CPU offers, best first.
typedef enum {
    FERRITE_FLUSH_NONE = 0,       // not x86: a full memory barrier stands in
    FERRITE_FLUSH_CLFLUSH = 1,    // serialising, evicts the line
    FERRITE_FLUSH_CLFLUSHOPT = 2, // unordered, evicts the line
    FERRITE_FLUSH_CLWB = 3,       // unordered, keeps the line cached
} ferrite_flush_kind;

/// Detects, with CPUID, the best write-back instruction available.
ferrite_flush_kind ferrite_detect_flush_kind(void);

/// Writes back every cache line overlapping [address, address + length) with the given instruction.
void ferrite_flush_range(ferrite_flush_kind kind, const void *address, size_t length);

/// Orders all earlier write-backs and stores of this thread before later ones (sfence).
void ferrite_store_fence(void);

/// The size of a cache line assumed by the flush loops.
#define FERRITE_CACHE_LINE 64

static inline uint64_t ferrite_atomic_fetch_or_u64(void *address, uint64_t mask) {
    return __atomic_fetch_or((uint64_t *)address, mask, __ATOMIC_ACQ_REL);
}
static inline uint64_t ferrite_atomic_fetch_and_u64(void *address, uint64_t mask) {
    return __atomic_fetch_and((uint64_t *)address, mask, __ATOMIC_ACQ_REL);
}
static inline uint64_t ferrite_atomic_load_u64(const void *address) {
    return __atomic_load_n((const uint64_t *)address, __ATOMIC_ACQUIRE);
}
static inline void ferrite_atomic_store_u64(void *address, uint64_t value) {
    __atomic_store_n((uint64_t *)address, value, __ATOMIC_RELEASE);
}
static inline uint64_t ferrite_atomic_fetch_add_u64(void *address, uint64_t value) {
    return __atomic_fetch_add((uint64_t *)address, value, __ATOMIC_ACQ_REL);
}
static inline int ferrite_atomic_cas_u64(void *address, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n((uint64_t *)address, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int ferrite_atomic_cas_ptr(void **address, void *expected, void *desired) {
    return __atomic_compare_exchange_n(address, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline void *ferrite_atomic_load_ptr(void **address) {
    return __atomic_load_n(address, __ATOMIC_ACQUIRE);
}

/// Orders the loads before it against the loads after it (a seqlock reader's second check).
static inline void ferrite_load_fence(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
/// Orders the stores and loads before it before the stores after it (a seqlock writer, after
/// marking the version odd and before changing the data).
static inline void ferrite_release_fence(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/// A spin-wait hint to the CPU.
static inline void ferrite_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Sleeps while `*word == expected` (a futex): returns when woken, at once if the word differs,
/// or spuriously. Waiters on one word need no mutex to wake, unlike a condition variable's.
void ferrite_futex_wait(uint32_t *word, uint32_t expected);
/// Wakes every thread sleeping on `word`.
void ferrite_futex_wake_all(uint32_t *word);
static inline uint32_t ferrite_atomic_load_u32(const void *address) {
    return __atomic_load_n((const uint32_t *)address, __ATOMIC_ACQUIRE);
}
static inline void ferrite_atomic_add_u32(void *address, uint32_t value) {
    __atomic_fetch_add((uint32_t *)address, value, __ATOMIC_ACQ_REL);
}

/// Gives the CPU to another thread (a waiter that has spun long enough).
void ferrite_yield(void);

/// A test-and-set spinlock on a word: for short critical sections that are almost never
/// contended (one compare-and-swap to take, one release store to give back).
static inline void ferrite_spin_lock(void *word) {
    uint64_t expected = 0;
    while (!__atomic_compare_exchange_n((uint64_t *)word, &expected, 1, 1, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        expected = 0;
        while (__atomic_load_n((uint64_t *)word, __ATOMIC_RELAXED) != 0) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
}
static inline void ferrite_spin_unlock(void *word) { __atomic_store_n((uint64_t *)word, 0, __ATOMIC_RELEASE); }

/// mmap flags for DAX mappings (Linux); 0 where the platform has none.
int ferrite_map_sync_flags(void);
/// The plain MAP_SHARED flag.
int ferrite_map_shared_flag(void);

/// Maps `length` bytes of `fd` at exactly `address` (MAP_FIXED). With `try_sync`, first tries
/// MAP_SHARED_VALIDATE | MAP_SYNC (DAX). Returns 0 on success, with *synced set to 1 when the
/// MAP_SYNC mapping succeeded; returns errno on failure.
int ferrite_map_fixed(void *address, size_t length, int fd, int try_sync, int *synced);

/// Reserves `length` bytes of address space, inaccessible, backed by nothing. NULL on failure.
void *ferrite_reserve_address_space(size_t length);
/// Maps the pages of [address, address + length) in advance, readable (madvise
/// MADV_POPULATE_READ, Linux 5.14+). Returns 0, or errno (EINVAL on older kernels).
int ferrite_populate_read(void *address, size_t length);
/// Maps the pages of [address, address + length) in advance, writable, as a write would
/// (madvise MADV_POPULATE_WRITE, Linux 5.14+): a private mapping's pages get their private
/// copies. The bytes do not change. Returns 0, or errno (EINVAL on older kernels).
int ferrite_populate_write(void *address, size_t length);
/// Releases a reservation made by ferrite_reserve_address_space.
void ferrite_release_address_space(void *address, size_t length);

/// Writes into `out` the indexes of the 8-byte words that differ between `a` and `b`
/// (both `words` long), at most `capacity` of them. Returns how many differ in total.
size_t ferrite_diff_words(const uint64_t *a, const uint64_t *b, size_t words, uint64_t *out, size_t capacity);

/// Copies `words` aligned 8-byte words with one 8-byte load and store each, so that a word
/// another thread stores concurrently is copied either whole-old or whole-new, never torn
/// (memcpy makes no such promise). Storage mode captures lines and pages this way.
static inline void ferrite_copy_words(void *target, const void *source, size_t words) {
    uint64_t *out = (uint64_t *)target;
    const uint64_t *in = (const uint64_t *)source;
    for (size_t i = 0; i < words; i++) out[i] = __atomic_load_n(in + i, __ATOMIC_RELAXED);
}

/// A monotonic clock in nanoseconds (CLOCK_MONOTONIC).
uint64_t ferrite_monotonic_nanoseconds(void);

#ifdef __cplusplus
}
#endif
#endif
