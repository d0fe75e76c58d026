#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // clock_gettime, fdatasync, pthread barriers under a strict -std too
#endif
#include "storage_workloads.h"
#include "../CSQLite/shim.h"
#include "../CLMDB/shim.h"
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <pthread.h>
#include <fcntl.h>
#include <unistd.h>

// MARK: Helpers

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/// xorshift64; never seeded with 0.
static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static uint64_t seed_for(int thread) { return 0x9E3779B97F4A7C15ull * (uint64_t)(thread + 1) ^ 0x2545F4914F6CDD1Dull; }

/// Gives each call's files a name of their own: dir/storage-<engine>-<pid>-<call>.
static void file_path(char *out, size_t size, const char *dir, const char *engine) {
    static int calls;
    snprintf(out, size, "%s/storage-%s-%d-%d", dir, engine, (int)getpid(), __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED));
}

static void remove_with_suffixes(const char *path, const char *const *suffixes) {
    char name[4200];
    for (; *suffixes; suffixes++) {
        snprintf(name, sizeof name, "%s%s", path, *suffixes);
        unlink(name);
    }
}

/// Writes `counter` into the first bytes of `value` (all of them if fewer than 8), so each update
/// stores a different value.
static void stamp(unsigned char *value, int value_bytes, uint64_t counter) {
    memcpy(value, &counter, value_bytes < 8 ? (size_t)value_bytes : 8);
}

static int check_arguments(const char *function, const char *dir, int records, int value_bytes, int count) {
    if (!dir || records < 1 || value_bytes < 0 || count < 1) {
        fprintf(stderr, "%s: needs a directory, records >= 1, value_bytes >= 0 and a positive count\n", function);
        return -1;
    }
    return 0;
}

/// Runs `threads` copies of `worker` (each given its own element of `jobs`, `job_size` bytes
/// apart), started together; returns the seconds from their start until the last one ends.
struct thread_start { pthread_barrier_t barrier; uint64_t start_ns; };

static double run_threads(void *(*worker)(void *), void *jobs, size_t job_size, int threads, struct thread_start *start) {
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    pthread_barrier_init(&start->barrier, NULL, (unsigned)threads + 1);
    int started = 0;
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, worker, (char *)jobs + job_size * (size_t)started) != 0) break;
    if (started < threads) {  // cannot happen for a handful of threads; fail loudly rather than hang
        fprintf(stderr, "pthread_create failed after %d threads\n", started);
        abort();
    }
    start->start_ns = now_ns();
    pthread_barrier_wait(&start->barrier);
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    double seconds = (double)(now_ns() - start->start_ns) / 1e9;
    pthread_barrier_destroy(&start->barrier);
    free(ids);
    return seconds;
}

// MARK: SQLite

static const char *const sqlite_suffixes[] = {"", "-wal", "-shm", "-journal", NULL};

static int sqlite_exec(sqlite3 *db, const char *sql) {
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s\n", sql, message ? message : sqlite3_errmsg(db));
        sqlite3_free(message);
        return -1;
    }
    return 0;
}

/// Opens a connection in WAL mode with the given synchronous level; NULL on failure.
static sqlite3 *sqlite_open(const char *path, int synchronous_full) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "sqlite: open %s: %s\n", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    // journal_mode answers with the mode in effect: check it really is WAL.
    sqlite3_stmt *statement = NULL;
    int wal = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &statement, NULL) == SQLITE_OK
        && sqlite3_step(statement) == SQLITE_ROW
        && strcmp((const char *)sqlite3_column_text(statement, 0), "wal") == 0;
    sqlite3_finalize(statement);
    if (!wal) {
        fprintf(stderr, "sqlite: %s: could not switch to journal_mode=WAL: %s\n", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return NULL;
    }
    if (sqlite_exec(db, synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") != 0) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/// Creates the table and loads `records` rows in one transaction.
static int sqlite_load(sqlite3 *db, int records, int value_bytes, unsigned char *value) {
    if (sqlite_exec(db, "CREATE TABLE kv (key INTEGER PRIMARY KEY, value BLOB)") != 0) return -1;
    if (sqlite_exec(db, "BEGIN") != 0) return -1;
    sqlite3_stmt *insert = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO kv (key, value) VALUES (?1, ?2)", -1, &insert, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: prepare INSERT: %s\n", sqlite3_errmsg(db));
        return -1;
    }
    for (int i = 0; i < records; i++) {
        stamp(value, value_bytes, (uint64_t)i);
        sqlite3_bind_int64(insert, 1, i);
        sqlite3_bind_blob(insert, 2, value, value_bytes, SQLITE_STATIC);
        if (sqlite3_step(insert) != SQLITE_DONE) {
            fprintf(stderr, "sqlite: INSERT: %s\n", sqlite3_errmsg(db));
            sqlite3_finalize(insert);
            return -1;
        }
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    return sqlite_exec(db, "COMMIT");
}

static sqlite3_stmt *sqlite_prepare_update(sqlite3 *db) {
    sqlite3_stmt *update = NULL;
    if (sqlite3_prepare_v3(db, "UPDATE kv SET value = ?1 WHERE key = ?2", -1, SQLITE_PREPARE_PERSISTENT, &update, NULL) != SQLITE_OK) {
        fprintf(stderr, "sqlite: prepare UPDATE: %s\n", sqlite3_errmsg(db));
        return NULL;
    }
    return update;
}

/// One autocommit UPDATE; 0 when committed, 1 when busy (nothing written), -1 on failure.
static int sqlite_update(sqlite3 *db, sqlite3_stmt *update, int64_t key, const unsigned char *value, int value_bytes) {
    sqlite3_bind_blob(update, 1, value, value_bytes, SQLITE_STATIC);
    sqlite3_bind_int64(update, 2, key);
    int rc = sqlite3_step(update);
    sqlite3_reset(update);
    if (rc == SQLITE_DONE) {
        if (sqlite3_changes(db) == 1) return 0;
        fprintf(stderr, "sqlite: UPDATE of key %lld changed %d rows\n", (long long)key, sqlite3_changes(db));
        return -1;
    }
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) return 1;
    fprintf(stderr, "sqlite: UPDATE: %s\n", sqlite3_errstr(rc));
    return -1;
}

double sqlite_update_ns(const char *dir, int records, int value_bytes, int updates, int synchronous_full) {
    if (check_arguments("sqlite_update_ns", dir, records, value_bytes, updates) != 0) return -1;
    char path[4096];
    file_path(path, sizeof path, dir, "sqlite");
    remove_with_suffixes(path, sqlite_suffixes);
    unsigned char *value = calloc(1, (size_t)value_bytes + 1);
    double result = -1;
    sqlite3 *db = sqlite_open(path, synchronous_full);
    sqlite3_stmt *update = NULL;
    if (!db || sqlite_load(db, records, value_bytes, value) != 0 || !(update = sqlite_prepare_update(db))) goto done;
    uint64_t random = seed_for(0);
    uint64_t start = now_ns();
    for (int i = 0; i < updates; i++) {
        stamp(value, value_bytes, (uint64_t)records + (uint64_t)i);
        int64_t key = (int64_t)(next_random(&random) % (uint64_t)records);
        if (sqlite_update(db, update, key, value, value_bytes) != 0) {
            fprintf(stderr, "sqlite_update_ns: update %d failed (nobody else uses %s)\n", i, path);
            goto done;
        }
    }
    result = (double)(now_ns() - start) / updates;
done:
    sqlite3_finalize(update);
    sqlite3_close(db);
    free(value);
    remove_with_suffixes(path, sqlite_suffixes);
    return result;
}

struct sqlite_job {
    const char *path;
    int records, value_bytes, thread;
    uint64_t deadline_ns, commits;
    int failed;
    struct thread_start *start;
};

static void *sqlite_worker(void *argument) {
    struct sqlite_job *job = argument;
    unsigned char *value = calloc(1, (size_t)job->value_bytes + 1);
    sqlite3 *db = sqlite_open(job->path, 1);
    sqlite3_stmt *update = db ? sqlite_prepare_update(db) : NULL;
    if (!update) job->failed = 1;
    pthread_barrier_wait(&job->start->barrier);
    uint64_t deadline = job->start->start_ns + job->deadline_ns;
    uint64_t random = seed_for(job->thread);
    while (!job->failed && now_ns() < deadline) {
        stamp(value, job->value_bytes, ((uint64_t)job->thread << 48) + job->commits);
        int64_t key = (int64_t)(next_random(&random) % (uint64_t)job->records);
        int rc = sqlite_update(db, update, key, value, job->value_bytes);
        if (rc == 0) job->commits++;
        else if (rc < 0) job->failed = 1;
    }
    sqlite3_finalize(update);
    sqlite3_close(db);
    free(value);
    return NULL;
}

double sqlite_update_threads(const char *dir, int records, int value_bytes, int threads, double seconds) {
    if (check_arguments("sqlite_update_threads", dir, records, value_bytes, threads) != 0 || !(seconds > 0)) return -1;
    char path[4096];
    file_path(path, sizeof path, dir, "sqlite");
    remove_with_suffixes(path, sqlite_suffixes);
    double result = -1;
    unsigned char *value = calloc(1, (size_t)value_bytes + 1);
    sqlite3 *db = sqlite_open(path, 1);
    if (!db || sqlite_load(db, records, value_bytes, value) != 0) goto done;
    // The loading connection stays open, so the WAL is not removed between the threads' opens.
    struct thread_start start;
    struct sqlite_job *jobs = calloc((size_t)threads, sizeof *jobs);
    for (int t = 0; t < threads; t++)
        jobs[t] = (struct sqlite_job){path, records, value_bytes, t, (uint64_t)(seconds * 1e9), 0, 0, &start};
    double elapsed = run_threads(sqlite_worker, jobs, sizeof *jobs, threads, &start);
    uint64_t commits = 0;
    int failed = 0;
    for (int t = 0; t < threads; t++) { commits += jobs[t].commits; failed |= jobs[t].failed; }
    free(jobs);
    if (failed) fprintf(stderr, "sqlite_update_threads: a thread failed (message above)\n");
    else result = (double)commits / elapsed;
done:
    sqlite3_close(db);
    free(value);
    remove_with_suffixes(path, sqlite_suffixes);
    return result;
}

// MARK: LMDB

static const char *const lmdb_suffixes[] = {"", "-lock", NULL};

static int lmdb_failed(const char *what, int rc) {
    fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

/// Creates an environment at `path` (a file: MDB_NOSUBDIR) with room for the records many times
/// over, and loads `records` 8-byte integer keys in one transaction.
static int lmdb_open_and_load(const char *path, int records, int value_bytes, unsigned int flags, unsigned char *value,
                              MDB_env **env_out, MDB_dbi *dbi_out) {
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc != 0) return lmdb_failed("mdb_env_create", rc);
    *env_out = env;
    // Copy-on-write keeps old pages until two later transactions end: leave generous room.
    size_t map_size = ((size_t)records * ((size_t)value_bytes + 4096) * 2 + ((size_t)64 << 20) + 4095) & ~(size_t)4095;
    if ((rc = mdb_env_set_mapsize(env, map_size)) != 0) return lmdb_failed("mdb_env_set_mapsize", rc);
    if ((rc = mdb_env_open(env, path, flags | MDB_NOSUBDIR, 0600)) != 0) return lmdb_failed(path, rc);
    MDB_txn *txn = NULL;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0) return lmdb_failed("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, dbi_out)) != 0) { mdb_txn_abort(txn); return lmdb_failed("mdb_dbi_open", rc); }
    for (int i = 0; i < records; i++) {
        uint64_t key = (uint64_t)i;
        stamp(value, value_bytes, key);
        MDB_val k = {sizeof key, &key}, v = {(size_t)value_bytes, value};
        if ((rc = mdb_put(txn, *dbi_out, &k, &v, MDB_APPEND)) != 0) { mdb_txn_abort(txn); return lmdb_failed("mdb_put (load)", rc); }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return lmdb_failed("mdb_txn_commit (load)", rc);
    return 0;
}

/// One write transaction putting one key; 0 when committed, -1 on failure.
static int lmdb_update(MDB_env *env, MDB_dbi dbi, uint64_t key, unsigned char *value, int value_bytes) {
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc != 0) return lmdb_failed("mdb_txn_begin", rc);
    MDB_val k = {sizeof key, &key}, v = {(size_t)value_bytes, value};
    if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) { mdb_txn_abort(txn); return lmdb_failed("mdb_put", rc); }
    if ((rc = mdb_txn_commit(txn)) != 0) return lmdb_failed("mdb_txn_commit", rc);
    return 0;
}

double lmdb_update_ns(const char *dir, int records, int value_bytes, int updates, int nosync) {
    if (check_arguments("lmdb_update_ns", dir, records, value_bytes, updates) != 0) return -1;
    char path[4096];
    file_path(path, sizeof path, dir, "lmdb");
    remove_with_suffixes(path, lmdb_suffixes);
    unsigned char *value = calloc(1, (size_t)value_bytes + 1);
    double result = -1;
    MDB_env *env = NULL;
    MDB_dbi dbi;
    if (lmdb_open_and_load(path, records, value_bytes, nosync ? MDB_NOSYNC : 0, value, &env, &dbi) != 0) goto done;
    uint64_t random = seed_for(0);
    uint64_t start = now_ns();
    for (int i = 0; i < updates; i++) {
        stamp(value, value_bytes, (uint64_t)records + (uint64_t)i);
        if (lmdb_update(env, dbi, next_random(&random) % (uint64_t)records, value, value_bytes) != 0) {
            fprintf(stderr, "lmdb_update_ns: update %d failed\n", i);
            goto done;
        }
    }
    result = (double)(now_ns() - start) / updates;
done:
    if (env) mdb_env_close(env);
    free(value);
    remove_with_suffixes(path, lmdb_suffixes);
    return result;
}

struct lmdb_job {
    MDB_env *env;
    MDB_dbi dbi;
    int records, value_bytes, thread;
    uint64_t deadline_ns, commits;
    int failed;
    struct thread_start *start;
};

static void *lmdb_worker(void *argument) {
    struct lmdb_job *job = argument;
    unsigned char *value = calloc(1, (size_t)job->value_bytes + 1);
    pthread_barrier_wait(&job->start->barrier);
    uint64_t deadline = job->start->start_ns + job->deadline_ns;
    uint64_t random = seed_for(job->thread);
    while (now_ns() < deadline) {
        stamp(value, job->value_bytes, ((uint64_t)job->thread << 48) + job->commits);
        if (lmdb_update(job->env, job->dbi, next_random(&random) % (uint64_t)job->records, value, job->value_bytes) != 0) {
            job->failed = 1;
            break;
        }
        job->commits++;
    }
    free(value);
    return NULL;
}

double lmdb_update_threads(const char *dir, int records, int value_bytes, int threads, double seconds) {
    if (check_arguments("lmdb_update_threads", dir, records, value_bytes, threads) != 0 || !(seconds > 0)) return -1;
    char path[4096];
    file_path(path, sizeof path, dir, "lmdb");
    remove_with_suffixes(path, lmdb_suffixes);
    unsigned char *value = calloc(1, (size_t)value_bytes + 1);
    double result = -1;
    MDB_env *env = NULL;
    MDB_dbi dbi;
    if (lmdb_open_and_load(path, records, value_bytes, 0, value, &env, &dbi) != 0) goto done;
    struct thread_start start;
    struct lmdb_job *jobs = calloc((size_t)threads, sizeof *jobs);
    for (int t = 0; t < threads; t++)
        jobs[t] = (struct lmdb_job){env, dbi, records, value_bytes, t, (uint64_t)(seconds * 1e9), 0, 0, &start};
    double elapsed = run_threads(lmdb_worker, jobs, sizeof *jobs, threads, &start);
    uint64_t commits = 0;
    int failed = 0;
    for (int t = 0; t < threads; t++) { commits += jobs[t].commits; failed |= jobs[t].failed; }
    free(jobs);
    if (failed) fprintf(stderr, "lmdb_update_threads: a thread failed (message above)\n");
    else result = (double)commits / elapsed;
done:
    if (env) mdb_env_close(env);
    free(value);
    remove_with_suffixes(path, lmdb_suffixes);
    return result;
}

// MARK: Disk floor

double storage_fdatasync_ns(const char *dir, int rounds) {
    if (!dir || rounds < 1) { fprintf(stderr, "storage_fdatasync_ns: needs a directory and rounds >= 1\n"); return -1; }
    char path[4096];
    file_path(path, sizeof path, dir, "fdatasync");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { fprintf(stderr, "storage_fdatasync_ns: open %s: %s\n", path, strerror(errno)); return -1; }
    static unsigned char block[4096];
    double result = -1;
    // Preallocate: the block exists and its size is on disk, so each round overwrites data only.
    if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fsync(fd) != 0) {
        fprintf(stderr, "storage_fdatasync_ns: preallocating %s: %s\n", path, strerror(errno));
        goto done;
    }
    uint64_t start = now_ns();
    for (int i = 0; i < rounds; i++) {
        block[0] = (unsigned char)i;
        if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            fprintf(stderr, "storage_fdatasync_ns: round %d: %s\n", i, strerror(errno));
            goto done;
        }
    }
    result = (double)(now_ns() - start) / rounds;
done:
    close(fd);
    unlink(path);
    return result;
}
