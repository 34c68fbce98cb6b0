/* store.c - studies and trials in SQLite. WAL mode lets readers run beside a writer; a busy
 * timeout makes a second process wait for the lock instead of failing with "database is locked".
 * Each trial is one INSERT, i.e. one transaction, written when the trial has finished: a search
 * killed at any moment loses at most the trial in flight, and (study, number) is the primary key
 * so no trial can be stored twice.
 *
 * Schema (version 2):
 *   studies(id, space, strategy, evaluator, seed, config, created)
 *   trials(study, number, arch, choices, hash, state, cached, reward, test, params, macs,
 *          eval_s, finished, error, memory, latency_ms)
 *   finals(study, hash, fidelity, valid, test, finished)   -- search --final-top retraining
 *   -- choices: int32 little-endian blob, one per decision
 * Version 1 files (no memory, latency_ms) are migrated on open by ALTER TABLE ADD COLUMN inside
 * one immediate transaction (a second process opening the same old file waits, then finds the
 * columns); their old trials read back with NAN costs, and the file gets PRAGMA user_version 2. */
#include "core/core_int.h"

#include <math.h>
#include <sqlite3.h>
#include <sys/time.h>
#include <time.h>

#define BUSY_TIMEOUT_MS 60000

struct nas_store {
    nas_ctx *ctx;
    sqlite3 *db;
    char *path;
};

static const char *const schema =
    "CREATE TABLE IF NOT EXISTS studies("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, strategy TEXT NOT NULL,"
    " evaluator TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL, created REAL);"
    "CREATE TABLE IF NOT EXISTS trials("
    " study INTEGER NOT NULL REFERENCES studies(id), number INTEGER NOT NULL, arch TEXT NOT NULL,"
    " choices BLOB NOT NULL, hash INTEGER NOT NULL, state TEXT NOT NULL, cached INTEGER NOT NULL,"
    " reward REAL, test REAL, params REAL, macs REAL, eval_s REAL, finished REAL, error TEXT,"
    " memory REAL, latency_ms REAL, PRIMARY KEY(study, number));"
    /* final training of the best architectures (search --final-top), per fidelity; added
     * after version 2 as a table of its own, so older files simply gain it */
    "CREATE TABLE IF NOT EXISTS finals("
    " study INTEGER NOT NULL REFERENCES studies(id), hash INTEGER NOT NULL,"
    " fidelity TEXT NOT NULL, valid REAL, test REAL, finished REAL,"
    " PRIMARY KEY(study, hash, fidelity));";

#define SCHEMA_VERSION 2

static double unix_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static nas_status db_fail(nas_store *st, const char *what) {
    return nas_fail(st->ctx, NAS_ERR_BACKEND, "store %s: %s: %s", st->path, what,
                    sqlite3_errmsg(st->db));
}

/* Run SQL without results, retrying while another process holds the lock beyond the busy
 * handler (journal-mode changes do not always wait). */
static int exec_retry(sqlite3 *db, const char *sql) {
    int rc = SQLITE_BUSY;
    for (int i = 0; i < 600; i++) {
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return rc;
}

/* Does table trials have column `name`? -1 on an SQLite error. */
static int has_column(sqlite3 *db, const char *name) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(trials)", -1, &q, NULL) != SQLITE_OK) {
        return -1;
    }
    int found = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *col = sqlite3_column_text(q, 1);
        found |= col != NULL && strcmp((const char *)col, name) == 0;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? found : -1;
}

/* Bring a version-1 file to version 2 (the costs columns). The check is repeated inside the
 * write transaction so two processes migrating at once add each column once. */
static nas_status migrate(nas_store *st) {
    const int have = has_column(st->db, "latency_ms");
    if (have == 1) {
        return NAS_OK;
    }
    if (have < 0 || exec_retry(st->db, "BEGIN IMMEDIATE;") != SQLITE_OK) {
        return db_fail(st, "checking the schema version");
    }
    int rc = SQLITE_OK;
    if (has_column(st->db, "memory") == 0) {
        rc = sqlite3_exec(st->db, "ALTER TABLE trials ADD COLUMN memory REAL;", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && has_column(st->db, "latency_ms") == 0) {
        rc = sqlite3_exec(st->db, "ALTER TABLE trials ADD COLUMN latency_ms REAL;", NULL, NULL,
                          NULL);
    }
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d;", SCHEMA_VERSION);
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        const nas_status s = db_fail(st, "migrating the schema to version 2 (costs columns)");
        sqlite3_exec(st->db, "ROLLBACK;", NULL, NULL, NULL);
        return s;
    }
    return exec_retry(st->db, "COMMIT;") == SQLITE_OK
               ? NAS_OK
               : db_fail(st, "committing the schema migration");
}

nas_status nas_store_open(nas_ctx *ctx, const char *path, nas_store **out) {
    NAS_CHECK_ARG(ctx, path != NULL && out != NULL);
    *out = NULL;
    nas_store *st = nas_calloc(ctx, 1, sizeof(*st));
    if (st == NULL) {
        return NAS_ERR_NOMEM;
    }
    st->ctx = ctx;
    st->path = nas_strdup(ctx, path);
    if (st->path == NULL) {
        nas_free(ctx, st, sizeof(*st));
        return NAS_ERR_NOMEM;
    }
    nas_status s = NAS_OK;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        s = nas_fail(ctx, NAS_ERR_IO, "store %s: cannot open: %s", path,
                     st->db ? sqlite3_errmsg(st->db) : "out of memory");
    }
    if (s == NAS_OK) {
        sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
        if (exec_retry(st->db, "PRAGMA journal_mode=WAL;") != SQLITE_OK) {
            s = db_fail(st, "setting WAL mode");
        } else if (exec_retry(st->db, "PRAGMA synchronous=NORMAL;") != SQLITE_OK ||
                   exec_retry(st->db, schema) != SQLITE_OK) {
            s = db_fail(st, "creating the schema (is it an SQLite file?)");
        } else {
            s = migrate(st);
        }
    }
    if (s != NAS_OK) {
        nas_store_close(st);
        return s;
    }
    *out = st;
    return NAS_OK;
}

void nas_store_close(nas_store *st) {
    if (st == NULL) {
        return;
    }
    sqlite3_close(st->db);
    nas_free(st->ctx, st->path, strlen(st->path) + 1);
    nas_free(st->ctx, st, sizeof(*st));
}

static nas_status prepare(nas_store *st, const char *sql, sqlite3_stmt **stmt) {
    if (sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL) != SQLITE_OK) {
        return db_fail(st, "preparing a statement");
    }
    return NAS_OK;
}

static void bind_info(sqlite3_stmt *q, const nas_study_info *info) {
    sqlite3_bind_text(q, 1, info->space, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, info->strategy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, info->evaluator, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)info->seed);
    sqlite3_bind_text(q, 5, info->config != NULL ? info->config : "", -1, SQLITE_TRANSIENT);
}

nas_status nas_store_study_new(nas_store *st, const nas_study_info *info, int64_t *id) {
    NAS_CHECK_ARG(st->ctx, info != NULL && info->space != NULL && info->strategy != NULL &&
                               info->evaluator != NULL && id != NULL);
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "INSERT INTO studies(space, strategy, evaluator, seed, config, "
                               "created) VALUES(?, ?, ?, ?, ?, ?)", &q);
    if (s == NAS_OK) {
        bind_info(q, info);
        sqlite3_bind_double(q, 6, unix_now());
        if (sqlite3_step(q) != SQLITE_DONE) {
            s = db_fail(st, "creating a study");
        } else {
            *id = sqlite3_last_insert_rowid(st->db);
        }
    }
    sqlite3_finalize(q);
    return s;
}

nas_status nas_store_study_find(nas_store *st, const nas_study_info *info, int64_t *id) {
    NAS_CHECK_ARG(st->ctx, info != NULL && info->space != NULL && info->strategy != NULL &&
                               info->evaluator != NULL && id != NULL);
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "SELECT id FROM studies WHERE space = ? AND strategy = ? AND "
                               "evaluator = ? AND seed = ? AND config = ? ORDER BY id DESC "
                               "LIMIT 1", &q);
    if (s == NAS_OK) {
        bind_info(q, info);
        const int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            *id = sqlite3_column_int64(q, 0);
        } else if (rc == SQLITE_DONE) {
            s = nas_fail(st->ctx, NAS_ERR_STATE, "store %s: no study with space %s, strategy %s, "
                         "evaluator %s, seed %llu and config '%s' to resume", st->path,
                         info->space, info->strategy, info->evaluator,
                         (unsigned long long)info->seed, info->config ? info->config : "");
        } else {
            s = db_fail(st, "finding the study");
        }
    }
    sqlite3_finalize(q);
    return s;
}

static void bind_real(sqlite3_stmt *q, int i, double v) {
    if (isnan(v) || isinf(v)) {
        sqlite3_bind_null(q, i);
    } else {
        sqlite3_bind_double(q, i, v);
    }
}

nas_status nas_store_trial_add(nas_store *st, int64_t study, const nas_trial *t,
                               const char *arch_text) {
    NAS_CHECK_ARG(st->ctx, t != NULL && arch_text != NULL && t->arch.n >= 0 &&
                               t->arch.n <= NAS_ARCH_MAX_DECISIONS);
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "INSERT INTO trials(study, number, arch, choices, hash, state, "
                               "cached, reward, test, params, macs, eval_s, finished, error, "
                               "memory, latency_ms) "
                               "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &q);
    if (s == NAS_OK) {
        sqlite3_bind_int64(q, 1, study);
        sqlite3_bind_int64(q, 2, t->number);
        sqlite3_bind_text(q, 3, arch_text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(q, 4, t->arch.choice, (int)(t->arch.n * sizeof(int32_t)),
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)t->hash);
        sqlite3_bind_text(q, 6, t->state == NAS_TRIAL_COMPLETE ? "complete" : "failed", -1,
                          SQLITE_STATIC);
        sqlite3_bind_int(q, 7, t->cached);
        bind_real(q, 8, t->reward);
        bind_real(q, 9, t->test);
        bind_real(q, 10, t->params);
        bind_real(q, 11, t->macs);
        bind_real(q, 12, t->eval_s);
        bind_real(q, 13, t->finished_at);
        sqlite3_bind_text(q, 14, t->error, -1, SQLITE_TRANSIENT);
        bind_real(q, 15, t->memory);
        bind_real(q, 16, t->latency_ms);
        const int rc = sqlite3_step(q);
        if (rc == SQLITE_CONSTRAINT) {
            s = nas_fail(st->ctx, NAS_ERR_STATE, "store %s: study %lld already has trial %lld "
                         "(another process on the same study?)", st->path, (long long)study,
                         (long long)t->number);
        } else if (rc != SQLITE_DONE) {
            s = db_fail(st, "writing a trial");
        }
    }
    sqlite3_finalize(q);
    return s;
}

static double column_real(sqlite3_stmt *q, int i) {
    return sqlite3_column_type(q, i) == SQLITE_NULL ? (double)NAN : sqlite3_column_double(q, i);
}

/* Parameters 1-3 of a finals statement: the row's key. */
static void bind_final_key(sqlite3_stmt *q, int64_t study, uint64_t hash, const char *fidelity) {
    sqlite3_bind_int64(q, 1, study);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)hash);
    sqlite3_bind_text(q, 3, fidelity, -1, SQLITE_TRANSIENT);
}

nas_status nas_store_final_put(nas_store *st, int64_t study, uint64_t hash, const char *fidelity,
                               double valid, double test) {
    NAS_CHECK_ARG(st->ctx, fidelity != NULL);
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "INSERT OR REPLACE INTO finals(study, hash, fidelity, valid, test, "
                               "finished) VALUES(?, ?, ?, ?, ?, ?)", &q);
    if (s == NAS_OK) {
        bind_final_key(q, study, hash, fidelity);
        bind_real(q, 4, valid);
        bind_real(q, 5, test);
        sqlite3_bind_double(q, 6, unix_now());
        if (sqlite3_step(q) != SQLITE_DONE) {
            s = db_fail(st, "writing a final-training result");
        }
    }
    sqlite3_finalize(q);
    return s;
}

nas_status nas_store_final_get(nas_store *st, int64_t study, uint64_t hash, const char *fidelity,
                               double *valid, double *test, int *found) {
    NAS_CHECK_ARG(st->ctx, fidelity != NULL && valid != NULL && test != NULL && found != NULL);
    *found = 0;
    *valid = *test = NAN;
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "SELECT valid, test FROM finals WHERE study = ? AND hash = ? AND "
                               "fidelity = ?", &q);
    if (s == NAS_OK) {
        bind_final_key(q, study, hash, fidelity);
        const int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            *valid = column_real(q, 0);
            *test = column_real(q, 1);
            *found = 1;
        } else if (rc != SQLITE_DONE) {
            s = db_fail(st, "reading a final-training result");
        }
    }
    sqlite3_finalize(q);
    return s;
}

void nas_trials_free(nas_ctx *ctx, nas_trial *trials, int64_t n) {
    if (ctx != NULL && trials != NULL) {
        nas_free(ctx, trials, (size_t)nas_max_i64(n, 1) * sizeof(nas_trial));
    }
}

nas_status nas_store_trials(nas_store *st, int64_t study, nas_trial **out, int64_t *n) {
    NAS_CHECK_ARG(st->ctx, out != NULL && n != NULL);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    nas_status s = prepare(st, "SELECT number, choices, hash, state, cached, reward, test, "
                               "params, macs, eval_s, finished, error, memory, latency_ms "
                               "FROM trials WHERE study = ? "
                               "ORDER BY number", &q);
    int64_t cap = 0, count = 0;
    nas_trial *trials = NULL;
    if (s == NAS_OK) {
        sqlite3_bind_int64(q, 1, study);
    }
    for (int rc = SQLITE_ROW; s == NAS_OK;) {
        rc = sqlite3_step(q);
        if (rc == SQLITE_DONE) {
            break;
        }
        if (rc != SQLITE_ROW) {
            s = db_fail(st, "reading trials");
            break;
        }
        if (count == cap) {
            const int64_t ncap = cap ? 2 * cap : 256;
            nas_trial *nt = nas_realloc(st->ctx, trials, (size_t)cap * sizeof(nas_trial),
                                        (size_t)ncap * sizeof(nas_trial));
            if (nt == NULL) {
                s = NAS_ERR_NOMEM;
                break;
            }
            trials = nt;
            cap = ncap;
        }
        nas_trial *t = &trials[count];
        memset(t, 0, sizeof(*t));
        t->number = sqlite3_column_int64(q, 0);
        const int bytes = sqlite3_column_bytes(q, 1);
        if (t->number != count || bytes % 4 != 0 || bytes / 4 > NAS_ARCH_MAX_DECISIONS) {
            s = nas_fail(st->ctx, NAS_ERR_FORMAT, "store %s: study %lld: trial %lld is corrupt "
                         "(expected number %lld, %d choice bytes)", st->path, (long long)study,
                         (long long)t->number, (long long)count, bytes);
            break;
        }
        t->arch.n = bytes / 4;
        if (bytes > 0) {
            memcpy(t->arch.choice, sqlite3_column_blob(q, 1), (size_t)bytes);
        }
        t->hash = (uint64_t)sqlite3_column_int64(q, 2);
        const unsigned char *state = sqlite3_column_text(q, 3);
        t->state = state != NULL && strcmp((const char *)state, "complete") == 0
                       ? NAS_TRIAL_COMPLETE
                       : NAS_TRIAL_FAILED;
        t->cached = sqlite3_column_int(q, 4);
        t->reward = column_real(q, 5);
        t->test = column_real(q, 6);
        t->params = column_real(q, 7);
        t->macs = column_real(q, 8);
        t->eval_s = column_real(q, 9);
        t->finished_at = column_real(q, 10);
        const unsigned char *err = sqlite3_column_text(q, 11);
        snprintf(t->error, sizeof(t->error), "%s", err != NULL ? (const char *)err : "");
        t->memory = column_real(q, 12);
        t->latency_ms = column_real(q, 13);
        count++;
    }
    sqlite3_finalize(q);
    if (s != NAS_OK) {
        nas_trials_free(st->ctx, trials, cap);
        return s;
    }
    if (trials == NULL) { /* an empty study: still hand back a (one-trial) block */
        trials = nas_calloc(st->ctx, 1, sizeof(nas_trial));
        if (trials == NULL) {
            return NAS_ERR_NOMEM;
        }
        cap = 1;
    }
    /* Shrink to the count so the caller frees with n (nas_store_trials_free's contract). */
    if (cap != nas_max_i64(count, 1)) {
        nas_trial *nt = nas_realloc(st->ctx, trials, (size_t)cap * sizeof(nas_trial),
                                    (size_t)nas_max_i64(count, 1) * sizeof(nas_trial));
        if (nt == NULL) {
            nas_trials_free(st->ctx, trials, cap);
            return NAS_ERR_NOMEM;
        }
        trials = nt;
    }
    *out = trials;
    *n = count;
    return NAS_OK;
}
