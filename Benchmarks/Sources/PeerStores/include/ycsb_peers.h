// SQLite and LMDB as YCSB stores for ferrite-bench, driven from Swift one operation at a time.
// A record is a key and 10 fields of YCSB_FIELD_BYTES bytes. Every function returns 0 on success,
// 1 when the key is missing (reads and updates), and -1 on an error (with a message on stderr).
#ifndef YCSB_PEERS_H
#define YCSB_PEERS_H
#include <stddef.h>

#define YCSB_FIELDS 10
#define YCSB_FIELD_BYTES 100
#define YCSB_RECORD_BYTES (YCSB_FIELDS * YCSB_FIELD_BYTES)

/// One SQLite connection (one per thread) to a database of one table (YCSB's JDBC schema):
/// usertable(YCSB_KEY TEXT PRIMARY KEY, FIELD0 BLOB, ..., FIELD9 BLOB), journal_mode=WAL,
/// synchronous=FULL (durable) when `synchronous_full`, else NORMAL; busy_timeout 30 s; prepared
/// statements; every operation its own autocommit transaction unless inside ycsb_sqlite_begin/commit.
typedef struct ycsb_sqlite ycsb_sqlite;
ycsb_sqlite *ycsb_sqlite_open(const char *path, int synchronous_full);
int ycsb_sqlite_begin(ycsb_sqlite *db);
int ycsb_sqlite_commit(ycsb_sqlite *db);
int ycsb_sqlite_insert(ycsb_sqlite *db, const char *key, size_t key_length, const void *record);
int ycsb_sqlite_read(ycsb_sqlite *db, const char *key, size_t key_length, void *record);
int ycsb_sqlite_update(ycsb_sqlite *db, const char *key, size_t key_length, int field, const void *value);
/// Reads up to `count` records in key order from `key`; returns how many, or -1.
int ycsb_sqlite_scan(ycsb_sqlite *db, const char *key, size_t key_length, int count, void *record);
void ycsb_sqlite_close(ycsb_sqlite *db);

/// One LMDB environment shared by all threads (map size `map_bytes`), one database of
/// key -> the 1,000 bytes of the record. Default flags (durable: data and meta page synced at
/// every commit), or MDB_NOSYNC when `nosync` (not durable). Writes are serialized by LMDB.
typedef struct ycsb_lmdb ycsb_lmdb;
ycsb_lmdb *ycsb_lmdb_open(const char *directory, size_t map_bytes, int nosync);
/// Inserts `count` records (keys and records laid out back to back) in one write transaction.
int ycsb_lmdb_insert_batch(ycsb_lmdb *db, const char *const *keys, const size_t *key_lengths, const void *records, int count);
int ycsb_lmdb_insert(ycsb_lmdb *db, const char *key, size_t key_length, const void *record);
int ycsb_lmdb_read(ycsb_lmdb *db, const char *key, size_t key_length, void *record);
/// Rewrites one field: read and put in one write transaction.
int ycsb_lmdb_update(ycsb_lmdb *db, const char *key, size_t key_length, int field, const void *value);
int ycsb_lmdb_scan(ycsb_lmdb *db, const char *key, size_t key_length, int count, void *record);
void ycsb_lmdb_close(ycsb_lmdb *db);
#endif
