#include "ycsb_peers.h"
#include <lmdb.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// MARK: SQLite

struct ycsb_sqlite {
    sqlite3 *db;
    sqlite3_stmt *insert, *read, *scan, *begin, *commit;
    sqlite3_stmt *update[YCSB_FIELDS];
};

static int sqlite_failed(sqlite3 *db, const char *what) {
    fprintf(stderr, "sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "no connection");
    return -1;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **statement) {
    return sqlite3_prepare_v2(db, sql, -1, statement, NULL) == SQLITE_OK ? 0 : sqlite_failed(db, sql);
}

ycsb_sqlite *ycsb_sqlite_open(const char *path, int synchronous_full) {
    ycsb_sqlite *s = calloc(1, sizeof *s);
    if (sqlite3_open(path, &s->db) != SQLITE_OK) { sqlite_failed(s->db, "open"); free(s); return NULL; }
    sqlite3_busy_timeout(s->db, 30000);
    char setup[1024];
    snprintf(setup, sizeof setup,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
             "CREATE TABLE IF NOT EXISTS usertable(YCSB_KEY TEXT PRIMARY KEY, FIELD0 BLOB, FIELD1 BLOB, FIELD2 BLOB,"
             " FIELD3 BLOB, FIELD4 BLOB, FIELD5 BLOB, FIELD6 BLOB, FIELD7 BLOB, FIELD8 BLOB, FIELD9 BLOB);",
             synchronous_full ? "FULL" : "NORMAL");
    for (int attempt = 0; sqlite3_exec(s->db, setup, NULL, NULL, NULL) != SQLITE_OK; attempt++) {
        if (attempt == 100) { sqlite_failed(s->db, "setup"); ycsb_sqlite_close(s); return NULL; }
    }
    char sql[256];
    int failed = prepare(s->db, "INSERT INTO usertable VALUES(?,?,?,?,?,?,?,?,?,?,?)", &s->insert)
        || prepare(s->db, "SELECT FIELD0,FIELD1,FIELD2,FIELD3,FIELD4,FIELD5,FIELD6,FIELD7,FIELD8,FIELD9 FROM usertable WHERE YCSB_KEY=?", &s->read)
        || prepare(s->db, "SELECT FIELD0,FIELD1,FIELD2,FIELD3,FIELD4,FIELD5,FIELD6,FIELD7,FIELD8,FIELD9 FROM usertable WHERE YCSB_KEY>=? ORDER BY YCSB_KEY LIMIT ?", &s->scan)
        || prepare(s->db, "BEGIN IMMEDIATE", &s->begin) || prepare(s->db, "COMMIT", &s->commit);
    for (int f = 0; f < YCSB_FIELDS && !failed; f++) {
        snprintf(sql, sizeof sql, "UPDATE usertable SET FIELD%d=? WHERE YCSB_KEY=?", f);
        failed = prepare(s->db, sql, &s->update[f]);
    }
    if (failed) { ycsb_sqlite_close(s); return NULL; }
    return s;
}

static int step_done(ycsb_sqlite *s, sqlite3_stmt *statement, const char *what) {
    int rc = sqlite3_step(statement);
    sqlite3_reset(statement);
    return rc == SQLITE_DONE ? 0 : sqlite_failed(s->db, what);
}

int ycsb_sqlite_begin(ycsb_sqlite *s) { return step_done(s, s->begin, "begin"); }
int ycsb_sqlite_commit(ycsb_sqlite *s) { return step_done(s, s->commit, "commit"); }

int ycsb_sqlite_insert(ycsb_sqlite *s, const char *key, size_t key_length, const void *record) {
    sqlite3_bind_text(s->insert, 1, key, (int)key_length, SQLITE_STATIC);
    for (int f = 0; f < YCSB_FIELDS; f++) {
        sqlite3_bind_blob(s->insert, f + 2, (const char *)record + f * YCSB_FIELD_BYTES, YCSB_FIELD_BYTES, SQLITE_STATIC);
    }
    return step_done(s, s->insert, "insert");
}

static void copy_row(sqlite3_stmt *statement, char *record) {
    for (int f = 0; f < YCSB_FIELDS; f++) {
        int bytes = sqlite3_column_bytes(statement, f);
        memcpy(record + f * YCSB_FIELD_BYTES, sqlite3_column_blob(statement, f), bytes < YCSB_FIELD_BYTES ? bytes : YCSB_FIELD_BYTES);
    }
}

int ycsb_sqlite_read(ycsb_sqlite *s, const char *key, size_t key_length, void *record) {
    sqlite3_bind_text(s->read, 1, key, (int)key_length, SQLITE_STATIC);
    int rc = sqlite3_step(s->read), result;
    if (rc == SQLITE_ROW) { copy_row(s->read, record); result = 0; } else if (rc == SQLITE_DONE) { result = 1; } else { result = sqlite_failed(s->db, "read"); }
    sqlite3_reset(s->read);
    return result;
}

int ycsb_sqlite_update(ycsb_sqlite *s, const char *key, size_t key_length, int field, const void *value) {
    sqlite3_stmt *statement = s->update[field];
    sqlite3_bind_blob(statement, 1, value, YCSB_FIELD_BYTES, SQLITE_STATIC);
    sqlite3_bind_text(statement, 2, key, (int)key_length, SQLITE_STATIC);
    if (step_done(s, statement, "update")) return -1;
    return sqlite3_changes(s->db) == 1 ? 0 : 1;
}

int ycsb_sqlite_scan(ycsb_sqlite *s, const char *key, size_t key_length, int count, void *record) {
    sqlite3_bind_text(s->scan, 1, key, (int)key_length, SQLITE_STATIC);
    sqlite3_bind_int(s->scan, 2, count);
    int rows = 0, rc;
    while ((rc = sqlite3_step(s->scan)) == SQLITE_ROW) { copy_row(s->scan, record); rows++; }
    sqlite3_reset(s->scan);
    return rc == SQLITE_DONE ? rows : sqlite_failed(s->db, "scan");
}

void ycsb_sqlite_close(ycsb_sqlite *s) {
    if (!s) return;
    sqlite3_finalize(s->insert); sqlite3_finalize(s->read); sqlite3_finalize(s->scan);
    sqlite3_finalize(s->begin); sqlite3_finalize(s->commit);
    for (int f = 0; f < YCSB_FIELDS; f++) sqlite3_finalize(s->update[f]);
    sqlite3_close(s->db);
    free(s);
}

// MARK: LMDB

struct ycsb_lmdb {
    MDB_env *env;
    MDB_dbi dbi;
};

static int lmdb_failed(int rc, const char *what) {
    fprintf(stderr, "lmdb: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

ycsb_lmdb *ycsb_lmdb_open(const char *directory, size_t map_bytes, int nosync) {
    ycsb_lmdb *l = calloc(1, sizeof *l);
    int rc;
    MDB_txn *txn;
    if ((rc = mdb_env_create(&l->env)) || (rc = mdb_env_set_mapsize(l->env, map_bytes)) || (rc = mdb_env_set_maxreaders(l->env, 126))
        || (rc = mdb_env_open(l->env, directory, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0), 0644))
        || (rc = mdb_txn_begin(l->env, NULL, 0, &txn))) {
        lmdb_failed(rc, "open");
        if (l->env) mdb_env_close(l->env);
        free(l);
        return NULL;
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) || (rc = mdb_txn_commit(txn))) { lmdb_failed(rc, "open database"); free(l); return NULL; }
    return l;
}

int ycsb_lmdb_insert_batch(ycsb_lmdb *l, const char *const *keys, const size_t *key_lengths, const void *records, int count) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc) return lmdb_failed(rc, "begin");
    for (int i = 0; i < count; i++) {
        MDB_val k = { key_lengths[i], (void *)keys[i] }, v = { YCSB_RECORD_BYTES, (char *)records + (size_t)i * YCSB_RECORD_BYTES };
        if ((rc = mdb_put(txn, l->dbi, &k, &v, 0))) { mdb_txn_abort(txn); return lmdb_failed(rc, "put"); }
    }
    return (rc = mdb_txn_commit(txn)) ? lmdb_failed(rc, "commit") : 0;
}

int ycsb_lmdb_insert(ycsb_lmdb *l, const char *key, size_t key_length, const void *record) {
    const char *keys[1] = { key };
    size_t lengths[1] = { key_length };
    return ycsb_lmdb_insert_batch(l, keys, lengths, record, 1);
}

int ycsb_lmdb_read(ycsb_lmdb *l, const char *key, size_t key_length, void *record) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_failed(rc, "begin read");
    MDB_val k = { key_length, (void *)key }, v;
    rc = mdb_get(txn, l->dbi, &k, &v);
    if (rc == 0) memcpy(record, v.mv_data, v.mv_size < YCSB_RECORD_BYTES ? v.mv_size : YCSB_RECORD_BYTES);
    mdb_txn_abort(txn);
    return rc == 0 ? 0 : rc == MDB_NOTFOUND ? 1 : lmdb_failed(rc, "get");
}

int ycsb_lmdb_update(ycsb_lmdb *l, const char *key, size_t key_length, int field, const void *value) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc) return lmdb_failed(rc, "begin");
    MDB_val k = { key_length, (void *)key }, v;
    if ((rc = mdb_get(txn, l->dbi, &k, &v))) { mdb_txn_abort(txn); return rc == MDB_NOTFOUND ? 1 : lmdb_failed(rc, "get"); }
    char record[YCSB_RECORD_BYTES];
    memcpy(record, v.mv_data, YCSB_RECORD_BYTES);
    memcpy(record + field * YCSB_FIELD_BYTES, value, YCSB_FIELD_BYTES);
    MDB_val n = { YCSB_RECORD_BYTES, record };
    if ((rc = mdb_put(txn, l->dbi, &k, &n, 0))) { mdb_txn_abort(txn); return lmdb_failed(rc, "put"); }
    return (rc = mdb_txn_commit(txn)) ? lmdb_failed(rc, "commit") : 0;
}

int ycsb_lmdb_scan(ycsb_lmdb *l, const char *key, size_t key_length, int count, void *record) {
    MDB_txn *txn;
    MDB_cursor *cursor;
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_failed(rc, "begin read");
    if ((rc = mdb_cursor_open(txn, l->dbi, &cursor))) { mdb_txn_abort(txn); return lmdb_failed(rc, "cursor"); }
    MDB_val k = { key_length, (void *)key }, v;
    int rows = 0;
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && rows < count) {
        memcpy(record, v.mv_data, v.mv_size < YCSB_RECORD_BYTES ? v.mv_size : YCSB_RECORD_BYTES);
        rows++;
        rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    return rc == 0 || rc == MDB_NOTFOUND ? rows : lmdb_failed(rc, "scan");
}

void ycsb_lmdb_close(ycsb_lmdb *l) {
    if (!l) return;
    mdb_env_close(l->env);
    free(l);
}
