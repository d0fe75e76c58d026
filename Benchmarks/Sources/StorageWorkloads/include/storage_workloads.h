// SQLite and LMDB doing the durable single-record updates Ferrite's storage benchmark measures,
// timed in C. Each call creates fresh files of its own in `dir`, loads `records` records (keys
// 0..records-1, `value_bytes`-byte values, one transaction), measures, and removes its files.
// Keys are drawn from a xorshift generator with a fixed seed, so every run updates the same keys.
// On failure a message goes to stderr and the result is negative.
#ifndef STORAGE_WORKLOADS_H
#define STORAGE_WORKLOADS_H

/// SQLite, journal_mode=WAL, one table (key INTEGER PRIMARY KEY, value BLOB): `updates` UPDATEs of
/// one random existing row with a new value, each its own autocommit transaction, through one
/// prepared statement. synchronous=FULL when `synchronous_full` (the WAL is synced at every commit:
/// durable), else NORMAL (synced only at checkpoints: a commit may be lost on power failure).
/// Returns the mean nanoseconds per update.
double sqlite_update_ns(const char *dir, int records, int value_bytes, int updates, int synchronous_full);

/// LMDB, 8-byte integer keys (MDB_INTEGERKEY): `updates` write transactions, each one mdb_put of a
/// random existing key with a new value. Default flags (durable: the data file and then the meta
/// page are synced at every commit), or MDB_NOSYNC when `nosync` (not durable).
/// Returns the mean nanoseconds per update.
double lmdb_update_ns(const char *dir, int records, int value_bytes, int updates, int nosync);

/// For context: `threads` threads each committing durable single-row updates of random keys for
/// `seconds`, one connection per thread (WAL, synchronous=FULL, busy_timeout 10 s).
/// Returns the total commits per second.
double sqlite_update_threads(const char *dir, int records, int value_bytes, int threads, double seconds);

/// For context: `threads` threads sharing one durable environment, each committing one-put write
/// transactions of random keys for `seconds` (LMDB serializes write transactions).
/// Returns the total commits per second.
double lmdb_update_threads(const char *dir, int records, int value_bytes, int threads, double seconds);

/// The disk's floor for a durable commit: `rounds` times, pwrite 4 KiB at offset 0 of a
/// preallocated file in `dir` and fdatasync it. Returns the mean nanoseconds per round.
double storage_fdatasync_ns(const char *dir, int rounds);
#endif
