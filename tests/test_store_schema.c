/* test_store_schema.c - stores written with the version-1 schema (no per-trial memory and
 * latency columns) still open, read and resume: the test makes such a file with the old CREATE
 * TABLE statements and raw INSERTs (not through nascent), opens it with nas_store_open (which
 * migrates it), resumes the search with costs, and compares with an uninterrupted run on a fresh
 * store: the same architectures and rewards, old trials with NAN costs, new ones with the latency
 * of the device column read straight from data/nb201_latency/nb201_latency_ms.csv. */
#include "check.h"
#include "csv_scan.h"
#include "nascent.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUERIES 60
#define FIRST 25 /* trials the old file holds before the resume */

static char tmpdir[256];

static const char *const old_schema =
    "CREATE TABLE IF NOT EXISTS studies("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, strategy TEXT NOT NULL,"
    " evaluator TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL, created REAL);"
    "CREATE TABLE IF NOT EXISTS trials("
    " study INTEGER NOT NULL REFERENCES studies(id), number INTEGER NOT NULL, arch TEXT NOT NULL,"
    " choices BLOB NOT NULL, hash INTEGER NOT NULL, state TEXT NOT NULL, cached INTEGER NOT NULL,"
    " reward REAL, test REAL, params REAL, macs REAL, eval_s REAL, finished REAL, error TEXT,"
    " PRIMARY KEY(study, number));";

/* Run (or resume) `queries` trials of random search on nb201 with table latency costs. */
static nas_status run(nas_ctx *ctx, nas_store *store, int64_t study, int64_t queries, int resume,
                      nas_trial **t, int64_t *n) {
    nas_space *space = NULL;
    nas_strategy *s = NULL;
    nas_evaluator *e = NULL;
    nas_cost_model *cm = NULL;
    const nas_strategy_opts so = {.seed = 9, .budget = QUERIES};
    nas_status st = nas_space_open(ctx, "nb201", &space);
    if (st == NAS_OK) {
        st = nas_strategy_new(ctx, "re", space, &so, &s);
    }
    if (st == NAS_OK) {
        st = nas_evaluator_open(ctx, "table:cifar10", space, NULL, &e);
    }
    if (st == NAS_OK) {
        st = nas_cost_model_new(ctx, space, NULL, "table:gold_6226", &cm);
    }
    if (st == NAS_OK) {
        const nas_search_opts o = {.queries = queries, .resume = resume};
        st = nas_search_run_costs(ctx, space, s, e, store, study, &o, cm, NAS_COST_LATENCY, t, n);
    }
    nas_cost_model_free(cm);
    nas_evaluator_free(e);
    nas_strategy_free(s);
    nas_space_free(space);
    return st;
}

/* Write the first `count` trials into a version-1 file with plain SQL. */
static int write_old_file(const char *path, const nas_trial *t, int64_t count) {
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, old_schema, 0, 0, 0) != SQLITE_OK ||
        sqlite3_exec(db, "INSERT INTO studies(space, strategy, evaluator, seed, config, created) "
                     "VALUES('nb201', 're', 'table:cifar10', 9, '', 0);", 0, 0, 0) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "INSERT INTO trials VALUES(1, ?, 'x', ?, ?, 'complete', ?, ?, ?, ?, ?, "
                       "0.0, 0.0, '')", -1, &q, NULL);
    int ok = q != NULL;
    for (int64_t i = 0; ok && i < count; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, i);
        sqlite3_bind_blob(q, 2, t[i].arch.choice, (int)(t[i].arch.n * 4), SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)t[i].hash);
        sqlite3_bind_int(q, 4, t[i].cached);
        sqlite3_bind_double(q, 5, t[i].reward);
        sqlite3_bind_double(q, 6, t[i].test);
        sqlite3_bind_double(q, 7, t[i].params);
        sqlite3_bind_null(q, 8);
        ok = sqlite3_step(q) == SQLITE_DONE;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return ok;
}

static int file_has_latency_column(const char *path, int *version) {
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    int found = 0;
    *version = -1;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA table_info(trials)", -1, &q, NULL) == SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            found |= strcmp((const char *)sqlite3_column_text(q, 1), "latency_ms") == 0;
        }
    }
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW) {
        *version = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return found;
}

static void test_old_schema_resume(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_trial *ref = NULL, *got = NULL;
    int64_t nref = 0, ngot = 0;
    /* The reference: an uninterrupted run without a store. */
    CHECK(run(ctx, NULL, 0, QUERIES, 0, &ref, &nref) == NAS_OK && nref == QUERIES, "run: %s",
          nas_errmsg(ctx));
    char path[512];
    snprintf(path, sizeof(path), "%s/old.db", tmpdir);
    CHECK(write_old_file(path, ref, FIRST), "cannot write the version-1 file");
    int version = 0;
    CHECK(!file_has_latency_column(path, &version), "the old file already has latency_ms");
    nas_store *store = NULL;
    CHECK(nas_store_open(ctx, path, &store) == NAS_OK, "open old file: %s", nas_errmsg(ctx));
    nas_study_info info = {"nb201", "re", "table:cifar10", 9, ""};
    int64_t study = -1;
    CHECK(store != NULL && nas_store_study_find(store, &info, &study) == NAS_OK && study == 1,
          "old study not found: %s", nas_errmsg(ctx));
    nas_trial *old = NULL;
    int64_t nold = 0;
    CHECK(store != NULL && nas_store_trials(store, study, &old, &nold) == NAS_OK &&
              nold == FIRST,
          "old trials: %lld, %s", (long long)nold, nas_errmsg(ctx));
    for (int64_t i = 0; old != NULL && i < nold; i++) {
        CHECK(old[i].hash == ref[i].hash && old[i].reward == ref[i].reward &&
                  isnan(old[i].latency_ms) && isnan(old[i].memory) && isnan(old[i].macs),
              "old trial %lld read back wrong", (long long)i);
    }
    nas_trials_free(ctx, old, nold);
    CHECK(store != NULL && run(ctx, store, study, QUERIES, 1, &got, &ngot) == NAS_OK &&
              ngot == QUERIES,
          "resume on the old file: %lld trials, %s", (long long)ngot, nas_errmsg(ctx));
    nas_store_close(store);
    CHECK(file_has_latency_column(path, &version) && version == 2,
          "file not migrated (user_version %d)", version);
    /* Read back everything from the (now migrated) file. */
    store = NULL;
    nas_trial *back = NULL;
    int64_t nback = 0;
    CHECK(nas_store_open(ctx, path, &store) == NAS_OK &&
              nas_store_trials(store, study, &back, &nback) == NAS_OK && nback == QUERIES,
          "reopen: %s", nas_errmsg(ctx));
    nas_store_close(store);
    nas_space *space = NULL;
    nas_space_open(ctx, "nb201", &space);
    int64_t lat_ok = 0, lat_new = 0;
    for (int64_t i = 0; back != NULL && i < nback && i < nref; i++) {
        CHECK(back[i].hash == ref[i].hash && back[i].reward == ref[i].reward,
              "trial %lld differs from the uninterrupted run", (long long)i);
        if (i < FIRST) {
            CHECK(isnan(back[i].latency_ms), "old trial %lld got a latency", (long long)i);
            continue;
        }
        char text[NAS_ARCH_TEXT_MAX];
        nas_space_encode(space, &back[i].arch, text, sizeof(text));
        const double want =
            csv_scan("data/nb201_latency/nb201_latency_ms.csv", "gold_6226", text);
        lat_new++;
        if (back[i].cached) { /* a repeat reuses its first trial's result, costs included */
            lat_ok += isnan(back[i].latency_ms) || fabs(back[i].latency_ms - want) <= 1e-9 * want;
            continue;
        }
        lat_ok += fabs(back[i].latency_ms - want) <= 1e-9 * want;
        CHECK(fabs(back[i].latency_ms - want) <= 1e-9 * want && fabs(ref[i].latency_ms - want) <=
                  1e-9 * want,
              "trial %lld latency %.9g (reference run %.9g), CSV %.9g", (long long)i,
              back[i].latency_ms, ref[i].latency_ms, want);
    }
    CHECK(lat_new == QUERIES - FIRST && lat_ok == lat_new, "%lld of %lld new latencies right",
          (long long)lat_ok, (long long)lat_new);
    nas_space_free(space);
    nas_trials_free(ctx, back, nback);
    nas_trials_free(ctx, ref, nref);
    nas_trials_free(ctx, got, ngot);
    nas_ctx_free(ctx);
}

/* Two stores opened on one old file: the migration runs once, both keep working. */
static void test_double_open(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[512];
    snprintf(path, sizeof(path), "%s/twice.db", tmpdir);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK &&
              sqlite3_exec(db, old_schema, 0, 0, 0) == SQLITE_OK, "old schema");
    sqlite3_close(db);
    nas_store *a = NULL, *b = NULL;
    CHECK(nas_store_open(ctx, path, &a) == NAS_OK, "first open: %s", nas_errmsg(ctx));
    CHECK(nas_store_open(ctx, path, &b) == NAS_OK, "second open: %s", nas_errmsg(ctx));
    nas_study_info info = {"nb201", "random", "table:cifar10", 1, ""};
    int64_t id = -1;
    nas_trial t;
    memset(&t, 0, sizeof(t));
    t.arch.n = 6;
    t.reward = 50.0;
    t.test = t.params = t.macs = NAN;
    t.memory = 1234.0;
    t.latency_ms = 3.5;
    CHECK(b != NULL && nas_store_study_new(b, &info, &id) == NAS_OK &&
              nas_store_trial_add(b, id, &t, "x") == NAS_OK,
          "write through the second store: %s", nas_errmsg(ctx));
    nas_trial *back = NULL;
    int64_t n = 0;
    CHECK(a != NULL && nas_store_trials(a, id, &back, &n) == NAS_OK && n == 1 &&
              back[0].memory == 1234.0 && back[0].latency_ms == 3.5 && isnan(back[0].macs),
          "costs round trip: %s", nas_errmsg(ctx));
    nas_trials_free(ctx, back, n);
    nas_store_close(a);
    nas_store_close(b);
    nas_ctx_free(ctx);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nas_test_store_schema_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    RUN_TEST(test_old_schema_resume);
    RUN_TEST(test_double_open);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_report("store_schema");
}
