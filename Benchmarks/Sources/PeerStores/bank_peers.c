#include "bank_peers.h"
#include <lmdb.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// MARK: SQLite

struct bank_sqlite {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *rollback, *account, *read, *teller, *branch, *history;
};

static int bank_sqlite_failed(bank_sqlite *s, const char *what) {
    fprintf(stderr, "sqlite bank: %s: %s\n", what, sqlite3_errmsg(s->db));
    return -1;
}

bank_sqlite *bank_sqlite_open(const char *path, int synchronous_full) {
    bank_sqlite *s = calloc(1, sizeof *s);
    if (sqlite3_open(path, &s->db) != SQLITE_OK) { bank_sqlite_failed(s, "open"); free(s); return NULL; }
    sqlite3_busy_timeout(s->db, 60000);
    char setup[512];
    snprintf(setup, sizeof setup,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             "CREATE TABLE IF NOT EXISTS branches(bid INTEGER PRIMARY KEY, bbalance INTEGER);"
             "CREATE TABLE IF NOT EXISTS tellers(tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER);"
             "CREATE TABLE IF NOT EXISTS accounts(aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER);"
             "CREATE TABLE IF NOT EXISTS history(tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime INTEGER);",
             synchronous_full ? "FULL" : "NORMAL");
    for (int attempt = 0; sqlite3_exec(s->db, setup, NULL, NULL, NULL) != SQLITE_OK; attempt++) {
        if (attempt == 100) { bank_sqlite_failed(s, "setup"); bank_sqlite_close(s); return NULL; }
    }
    const char *sql[] = {
        "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK",
        "UPDATE accounts SET abalance = abalance + ?1 WHERE aid = ?2",
        "SELECT abalance FROM accounts WHERE aid = ?1",
        "UPDATE tellers SET tbalance = tbalance + ?1 WHERE tid = ?2",
        "UPDATE branches SET bbalance = bbalance + ?1 WHERE bid = ?2",
        "INSERT INTO history VALUES(?1, ?2, ?3, ?4, ?5)",
    };
    sqlite3_stmt **statements[] = { &s->begin, &s->commit, &s->rollback, &s->account, &s->read, &s->teller, &s->branch, &s->history };
    for (int i = 0; i < 8; i++) {
        if (sqlite3_prepare_v2(s->db, sql[i], -1, statements[i], NULL) != SQLITE_OK) { bank_sqlite_failed(s, sql[i]); bank_sqlite_close(s); return NULL; }
    }
    return s;
}

int bank_sqlite_scale(bank_sqlite *s) {
    sqlite3_stmt *count;
    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM branches", -1, &count, NULL) != SQLITE_OK) return bank_sqlite_failed(s, "count");
    int scale = sqlite3_step(count) == SQLITE_ROW ? sqlite3_column_int(count, 0) : 0;
    sqlite3_finalize(count);
    return scale;
}

int bank_sqlite_create(bank_sqlite *s, int scale) {
    if (bank_sqlite_scale(s) > 0) return 0;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) return bank_sqlite_failed(s, "begin");
    char sql[160];
    for (int b = 0; b < scale; b++) { snprintf(sql, sizeof sql, "INSERT INTO branches VALUES(%d, 0)", b); sqlite3_exec(s->db, sql, NULL, NULL, NULL); }
    for (int t = 0; t < 10 * scale; t++) { snprintf(sql, sizeof sql, "INSERT INTO tellers VALUES(%d, %d, 0)", t, t / 10); sqlite3_exec(s->db, sql, NULL, NULL, NULL); }
    sqlite3_stmt *insert;
    sqlite3_prepare_v2(s->db, "INSERT INTO accounts VALUES(?1, ?2, 0)", -1, &insert, NULL);
    for (int a = 0; a < 100000 * scale; a++) {
        sqlite3_bind_int(insert, 1, a);
        sqlite3_bind_int(insert, 2, a / 100000);
        if (sqlite3_step(insert) != SQLITE_DONE) { sqlite3_finalize(insert); return bank_sqlite_failed(s, "insert account"); }
        sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : bank_sqlite_failed(s, "commit");
}

static int run(bank_sqlite *s, sqlite3_stmt *statement, int expected) {
    int rc = sqlite3_step(statement);
    sqlite3_reset(statement);
    return rc == expected ? 0 : -1;
}

int bank_sqlite_transaction(bank_sqlite *s, int aid, int tid, int bid, int delta) {
    if (run(s, s->begin, SQLITE_DONE)) return bank_sqlite_failed(s, "begin");
    sqlite3_bind_int(s->account, 1, delta); sqlite3_bind_int(s->account, 2, aid);
    sqlite3_bind_int(s->read, 1, aid);
    sqlite3_bind_int(s->teller, 1, delta); sqlite3_bind_int(s->teller, 2, tid);
    sqlite3_bind_int(s->branch, 1, delta); sqlite3_bind_int(s->branch, 2, bid);
    sqlite3_bind_int(s->history, 1, tid); sqlite3_bind_int(s->history, 2, bid); sqlite3_bind_int(s->history, 3, aid);
    sqlite3_bind_int(s->history, 4, delta); sqlite3_bind_int64(s->history, 5, (sqlite3_int64)time(NULL));
    if (run(s, s->account, SQLITE_DONE) || run(s, s->read, SQLITE_ROW) || run(s, s->teller, SQLITE_DONE)
        || run(s, s->branch, SQLITE_DONE) || run(s, s->history, SQLITE_DONE) || run(s, s->commit, SQLITE_DONE)) {
        int failed = bank_sqlite_failed(s, "transaction");
        run(s, s->rollback, SQLITE_DONE);
        return failed;
    }
    return 0;
}

int bank_sqlite_totals(bank_sqlite *s, long long totals[5]) {
    const char *sql[] = { "SELECT total(abalance) FROM accounts", "SELECT total(tbalance) FROM tellers",
                          "SELECT total(bbalance) FROM branches", "SELECT total(delta) FROM history", "SELECT count(*) FROM history" };
    for (int i = 0; i < 5; i++) {
        sqlite3_stmt *statement;
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &statement, NULL) != SQLITE_OK) return bank_sqlite_failed(s, sql[i]);
        totals[i] = sqlite3_step(statement) == SQLITE_ROW ? (long long)sqlite3_column_double(statement, 0) : 0;
        sqlite3_finalize(statement);
    }
    return 0;
}

void bank_sqlite_close(bank_sqlite *s) {
    if (!s) return;
    sqlite3_stmt *statements[] = { s->begin, s->commit, s->rollback, s->account, s->read, s->teller, s->branch, s->history };
    for (int i = 0; i < 8; i++) sqlite3_finalize(statements[i]);
    sqlite3_close(s->db);
    free(s);
}

// MARK: LMDB

struct bank_lmdb {
    MDB_env *env;
    MDB_dbi dbi;
};

static int bank_lmdb_failed(int rc, const char *what) {
    fprintf(stderr, "lmdb bank: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

bank_lmdb *bank_lmdb_open(const char *directory, int nosync) {
    bank_lmdb *l = calloc(1, sizeof *l);
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_env_create(&l->env)) || (rc = mdb_env_set_mapsize(l->env, (size_t)64 << 30))
        || (rc = mdb_env_open(l->env, directory, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0), 0644))
        || (rc = mdb_txn_begin(l->env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) || (rc = mdb_txn_commit(txn))) {
        bank_lmdb_failed(rc, "open");
        free(l);
        return NULL;
    }
    return l;
}

static void key5(char key[5], char kind, int id) {
    key[0] = kind;
    key[1] = (char)(id >> 24); key[2] = (char)(id >> 16); key[3] = (char)(id >> 8); key[4] = (char)id;
}

int bank_lmdb_scale(bank_lmdb *l) {
    MDB_txn *txn;
    MDB_stat stat;
    if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) return 0;
    char key[5];
    int scale = 0;
    MDB_val k = { 5, key }, v;
    for (;;) {
        key5(key, 'b', scale);
        if (mdb_get(txn, l->dbi, &k, &v)) break;
        scale++;
    }
    (void)stat;
    mdb_txn_abort(txn);
    return scale;
}

int bank_lmdb_create(bank_lmdb *l, int scale) {
    if (bank_lmdb_scale(l) > 0) return 0;
    long long zero = 0;
    char key[5];
    int rc;
    for (int start = 0; start < 100000 * scale; start += 100000) {
        MDB_txn *txn;
        if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn))) return bank_lmdb_failed(rc, "begin");
        for (int a = start; a < start + 100000; a++) {
            key5(key, 'a', a);
            MDB_val k = { 5, key }, v = { 8, &zero };
            if ((rc = mdb_put(txn, l->dbi, &k, &v, MDB_APPEND))) { mdb_txn_abort(txn); return bank_lmdb_failed(rc, "put account"); }
        }
        if ((rc = mdb_txn_commit(txn))) return bank_lmdb_failed(rc, "commit");
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn))) return bank_lmdb_failed(rc, "begin");
    for (int t = 0; t < 10 * scale; t++) { key5(key, 't', t); MDB_val k = { 5, key }, v = { 8, &zero }; mdb_put(txn, l->dbi, &k, &v, 0); }
    for (int b = 0; b < scale; b++) { key5(key, 'b', b); MDB_val k = { 5, key }, v = { 8, &zero }; mdb_put(txn, l->dbi, &k, &v, 0); }
    return (rc = mdb_txn_commit(txn)) ? bank_lmdb_failed(rc, "commit") : 0;
}

static int add(MDB_txn *txn, MDB_dbi dbi, char kind, int id, int delta) {
    char key[5];
    key5(key, kind, id);
    MDB_val k = { 5, key }, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc) return rc;
    long long balance;
    memcpy(&balance, v.mv_data, 8);
    balance += delta;
    MDB_val n = { 8, &balance };
    return mdb_put(txn, dbi, &k, &n, 0);
}

int bank_lmdb_transaction(bank_lmdb *l, int aid, int tid, int bid, int delta) {
    MDB_txn *txn;
    int rc;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn))) return bank_lmdb_failed(rc, "begin");
    if ((rc = add(txn, l->dbi, 'a', aid, delta)) || (rc = add(txn, l->dbi, 't', tid, delta)) || (rc = add(txn, l->dbi, 'b', bid, delta))) {
        mdb_txn_abort(txn);
        return bank_lmdb_failed(rc, "update");
    }
    // The history key: 'h' + the next sequence number, kept under key "n".
    unsigned long long sequence = 0, next;
    MDB_val nk = { 1, "n" }, nv;
    if ((rc = mdb_get(txn, l->dbi, &nk, &nv)) == 0) memcpy(&sequence, nv.mv_data, 8);
    else if (rc != MDB_NOTFOUND) { mdb_txn_abort(txn); return bank_lmdb_failed(rc, "sequence"); }
    next = sequence + 1;
    MDB_val nn = { 8, &next };
    if ((rc = mdb_put(txn, l->dbi, &nk, &nn, 0))) { mdb_txn_abort(txn); return bank_lmdb_failed(rc, "sequence"); }
    char key[9];
    key[0] = 'h';
    for (int i = 8; i >= 1; i--) { key[i] = (char)(sequence & 0xFF); sequence >>= 8; }
    long long entry[5] = { tid, bid, aid, delta, (long long)time(NULL) };
    MDB_val hk = { 9, key }, hv = { sizeof entry, entry };
    if ((rc = mdb_put(txn, l->dbi, &hk, &hv, 0))) { mdb_txn_abort(txn); return bank_lmdb_failed(rc, "history"); }
    return (rc = mdb_txn_commit(txn)) ? bank_lmdb_failed(rc, "commit") : 0;
}

int bank_lmdb_totals(bank_lmdb *l, long long totals[5]) {
    MDB_txn *txn;
    MDB_cursor *cursor;
    int rc;
    memset(totals, 0, 5 * sizeof *totals);
    if ((rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn)) || (rc = mdb_cursor_open(txn, l->dbi, &cursor))) return bank_lmdb_failed(rc, "totals");
    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        long long value[5];
        memcpy(value, v.mv_data, v.mv_size < sizeof value ? v.mv_size : sizeof value);
        switch (((char *)k.mv_data)[0]) {
        case 'a': totals[0] += value[0]; break;
        case 't': totals[1] += value[0]; break;
        case 'b': totals[2] += value[0]; break;
        case 'h': totals[3] += value[3]; totals[4]++; break;
        }
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    return 0;
}

void bank_lmdb_close(bank_lmdb *l) {
    if (!l) return;
    mdb_env_close(l->env);
    free(l);
}
