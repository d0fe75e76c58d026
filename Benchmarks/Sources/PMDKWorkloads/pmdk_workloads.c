#include "pmdk_workloads.h"
#include "../CLibPMemObj/shim.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

struct object { uint64_t a, b, c, d, e, f; };  // 48 bytes of fields, like Ferrite's
struct root { uint64_t a, b, c, d; PMEMoid table; uint64_t slots; };

struct pmdk_pool { PMEMobjpool *pop; PMEMoid root; };

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

pmdk_pool *pmdk_create(const char *path, size_t size, uint64_t slots) {
    setenv("PMEM_IS_PMEM_FORCE", "1", 1);
    PMEMobjpool *pop = pmemobj_create(path, "ferrite-bench", size, 0600);
    if (!pop) { fprintf(stderr, "pmemobj_create %s: %s\n", path, pmemobj_errormsg()); return NULL; }
    pmdk_pool *pool = malloc(sizeof *pool);
    pool->pop = pop;
    pool->root = pmemobj_root(pop, sizeof(struct root));
    struct root *r = pmemobj_direct(pool->root);
    TX_BEGIN(pop) {
        pmemobj_tx_add_range(pool->root, 0, sizeof(struct root));
        r->table = pmemobj_tx_zalloc(slots * sizeof(PMEMoid), 1);
        r->slots = slots;
    } TX_ONABORT { fprintf(stderr, "table allocation failed\n"); abort(); } TX_END
    return pool;
}

void pmdk_close(pmdk_pool *pool) { pmemobj_close(pool->pop); free(pool); }

uint64_t pmdk_update1(pmdk_pool *pool, uint64_t n) {
    struct root *r = pmemobj_direct(pool->root);
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        TX_BEGIN(pool->pop) {
            pmemobj_tx_add_range_direct(&r->a, 8);
            r->a = i;
        } TX_END
    }
    return now_ns() - start;
}

uint64_t pmdk_update4(pmdk_pool *pool, uint64_t n) {
    struct root *r = pmemobj_direct(pool->root);
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        TX_BEGIN(pool->pop) {
            pmemobj_tx_add_range_direct(&r->a, 8); r->a = i;
            pmemobj_tx_add_range_direct(&r->b, 8); r->b = i;
            pmemobj_tx_add_range_direct(&r->c, 8); r->c = i;
            pmemobj_tx_add_range_direct(&r->d, 8); r->d = i;
        } TX_END
    }
    return now_ns() - start;
}

uint64_t pmdk_alloc_link(pmdk_pool *pool, uint64_t n) {
    struct root *r = pmemobj_direct(pool->root);
    PMEMoid *table = pmemobj_direct(r->table);
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        TX_BEGIN(pool->pop) {
            PMEMoid object = pmemobj_tx_zalloc(sizeof(struct object), 2);
            ((struct object *)pmemobj_direct(object))->a = i;
            pmemobj_tx_add_range_direct(&table[i], sizeof(PMEMoid));
            table[i] = object;
        } TX_END
    }
    return now_ns() - start;
}

uint64_t pmdk_free_unlink(pmdk_pool *pool, uint64_t n) {
    struct root *r = pmemobj_direct(pool->root);
    PMEMoid *table = pmemobj_direct(r->table);
    uint64_t start = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        TX_BEGIN(pool->pop) {
            pmemobj_tx_add_range_direct(&table[i], sizeof(PMEMoid));
            pmemobj_tx_free(table[i]);
            table[i] = OID_NULL;
        } TX_END
    }
    return now_ns() - start;
}

uint64_t pmdk_read(pmdk_pool *pool, uint64_t n, int passes, uint64_t *sum) {
    struct root *r = pmemobj_direct(pool->root);
    PMEMoid *table = pmemobj_direct(r->table);
    uint64_t total = 0;
    uint64_t start = now_ns();
    for (int p = 0; p < passes; p++)
        for (uint64_t i = 0; i < n; i++) total += ((struct object *)pmemobj_direct(table[i]))->a;
    uint64_t elapsed = now_ns() - start;
    *sum = total;
    return elapsed;
}

uint64_t bench_now_ns(void) { return now_ns(); }

struct raw_job { char *base; uint64_t rounds; };

static void *raw_worker(void *argument) {
    struct raw_job *job = argument;
    for (uint64_t i = 0; i < job->rounds; i++) {
        char *data = job->base + (i % 32) * 1024;
        char *log = job->base + 65536;
        *(volatile uint64_t *)data = i;
        __asm__ volatile(".byte 0x66; xsaveopt %0" : "+m"(*(volatile char *)data));
        *(volatile uint64_t *)log = i;
        __asm__ volatile(".byte 0x66; xsaveopt %0" : "+m"(*(volatile char *)log));
        __asm__ volatile("sfence" ::: "memory");
    }
    return NULL;
}

double raw_persist_rate(const char *path, int threads, uint64_t rounds) {
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4 << 20) != 0) return 0;
    char *base = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return 0;
    for (int i = 0; i < (4 << 20); i += 4096) base[i] = 0;
    struct raw_job jobs[2] = {{base, rounds}, {base + (1 << 20), rounds}};
    pthread_t ids[2];
    uint64_t start = now_ns();
    for (int t = 0; t < threads; t++) pthread_create(&ids[t], NULL, raw_worker, &jobs[t]);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    double seconds = (double)(now_ns() - start) / 1e9;
    munmap(base, 4 << 20);
    unlink(path);
    return (double)rounds * threads / seconds;
}
