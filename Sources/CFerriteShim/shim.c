#define _GNU_SOURCE
#include <sched.h>
#include "ferrite_shim.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

ferrite_flush_kind ferrite_detect_flush_kind(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        if (ebx & (1u << 24)) return FERRITE_FLUSH_CLWB;
        if (ebx & (1u << 23)) return FERRITE_FLUSH_CLFLUSHOPT;
    }
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (edx & (1u << 19))) return FERRITE_FLUSH_CLFLUSH;
    return FERRITE_FLUSH_NONE;
#else
    return FERRITE_FLUSH_NONE;
#endif
}

void ferrite_flush_range(ferrite_flush_kind kind, const void *address, size_t length) {
    if (length == 0) return;
    uintptr_t line = (uintptr_t)address & ~(uintptr_t)(FERRITE_CACHE_LINE - 1);
    uintptr_t end = (uintptr_t)address + length;
#if defined(__x86_64__) || defined(__i386__)
    switch (kind) {
    case FERRITE_FLUSH_CLWB:
        for (; line < end; line += FERRITE_CACHE_LINE)
            __asm__ volatile(".byte 0x66; xsaveopt %0" : "+m"(*(volatile char *)line));
        return;
    case FERRITE_FLUSH_CLFLUSHOPT:
        for (; line < end; line += FERRITE_CACHE_LINE)
            __asm__ volatile(".byte 0x66; clflush %0" : "+m"(*(volatile char *)line));
        return;
    case FERRITE_FLUSH_CLFLUSH:
        for (; line < end; line += FERRITE_CACHE_LINE)
            __asm__ volatile("clflush %0" : "+m"(*(volatile char *)line));
        return;
    default:
        break;
    }
#endif
    (void)line; (void)end; (void)kind;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void ferrite_store_fence(void) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("sfence" ::: "memory");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

int ferrite_map_sync_flags(void) { return MAP_SHARED_VALIDATE | MAP_SYNC; }
int ferrite_map_shared_flag(void) { return MAP_SHARED; }

int ferrite_map_fixed(void *address, size_t length, int fd, int try_sync, int *synced) {
    *synced = 0;
    if (try_sync) {
        void *p = mmap(address, length, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd, 0);
        if (p != MAP_FAILED) { *synced = 1; return 0; }
    }
    void *p = mmap(address, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
    return p == MAP_FAILED ? errno : 0;
}

int ferrite_populate_read(void *address, size_t length) {
    return madvise(address, length, 22 /* MADV_POPULATE_READ */) == 0 ? 0 : errno;
}

int ferrite_populate_write(void *address, size_t length) {
    return madvise(address, length, 23 /* MADV_POPULATE_WRITE */) == 0 ? 0 : errno;
}

void *ferrite_reserve_address_space(size_t length) {
    void *p = mmap(NULL, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void ferrite_release_address_space(void *address, size_t length) { munmap(address, length); }

size_t ferrite_diff_words(const uint64_t *a, const uint64_t *b, size_t words, uint64_t *out, size_t capacity) {
    size_t found = 0;
    for (size_t i = 0; i < words; i++) {
        if (a[i] != b[i]) {
            if (found < capacity) out[found] = i;
            found++;
        }
    }
    return found;
}

uint64_t ferrite_monotonic_nanoseconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ferrite_yield(void) { sched_yield(); }

#if defined(__linux__)
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void ferrite_futex_wait(uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void ferrite_futex_wake_all(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
void ferrite_futex_wait(uint32_t *word, uint32_t expected) {
    while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == expected) sched_yield();
}
void ferrite_futex_wake_all(uint32_t *word) { (void)word; }
#endif
