// SQLite and LMDB running pgbench's TPC-B-like bank (workloads.md) for ferrite-bench: scale S is
// S branches, 10*S tellers and 100,000*S accounts, all balances 0, and an append-only history.
// Functions return 0 on success and -1 on an error (with a message on stderr).
#ifndef BANK_PEERS_H
#define BANK_PEERS_H

/// SQLite: tables branches(bid, bbalance), tellers(tid, bid, tbalance), accounts(aid, bid,
/// abalance), history(tid, bid, aid, delta, mtime); WAL; synchronous FULL or NORMAL. One
/// connection per thread.
typedef struct bank_sqlite bank_sqlite;
bank_sqlite *bank_sqlite_open(const char *path, int synchronous_full);
/// Creates the tables and rows (if the database has none).
int bank_sqlite_create(bank_sqlite *db, int scale);
/// The database's scale (0 if it has no bank).
int bank_sqlite_scale(bank_sqlite *db);
/// One transaction: BEGIN IMMEDIATE; the account, teller and branch balances += delta; the
/// account's balance read back; a history row; COMMIT.
int bank_sqlite_transaction(bank_sqlite *db, int aid, int tid, int bid, int delta);
/// Sums of the account, teller, branch balances and of the history deltas, and the history rows.
int bank_sqlite_totals(bank_sqlite *db, long long totals[5]);
void bank_sqlite_close(bank_sqlite *db);

/// LMDB: keys 'a'/'t'/'b' + 4-byte id -> 8-byte balance, 'h' + 8-byte sequence -> history entry.
typedef struct bank_lmdb bank_lmdb;
bank_lmdb *bank_lmdb_open(const char *directory, int nosync);
int bank_lmdb_create(bank_lmdb *db, int scale);
int bank_lmdb_scale(bank_lmdb *db);
int bank_lmdb_transaction(bank_lmdb *db, int aid, int tid, int bid, int delta);
int bank_lmdb_totals(bank_lmdb *db, long long totals[5]);
void bank_lmdb_close(bank_lmdb *db);
#endif
