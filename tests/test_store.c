/* test_store.c - the SQLite store and resume: trials round-trip (NaN included), a trial cannot
 * be written twice, final-training results round-trip, `nascent search` killed with SIGKILL
 * mid-search and rerun with --resume ends with exactly the trials of an uninterrupted run, a
 * resume that the strategy does not reproduce (a stored trial altered) exits 4 and stores
 * nothing, and two processes searching into one store file both succeed. The CLI runs are real
 * processes (fork/exec of bin/nascent). */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static char tmpdir[256];

static const char *nascent_bin(void) {
    const char *b = getenv("NAS_BIN");
    return b != NULL && b[0] != '\0' ? b : "bin/nascent";
}

static void test_roundtrip(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[512];
    snprintf(path, sizeof(path), "%s/rt.db", tmpdir);
    nas_store *st = NULL;
    CHECK(nas_store_open(ctx, path, &st) == NAS_OK, "open: %s", nas_errmsg(ctx));
    nas_study_info info = {"nb201", "re", "table:cifar10", 7, "params="};
    int64_t id = -1, found = -2;
    CHECK(nas_store_study_new(st, &info, &id) == NAS_OK, "study: %s", nas_errmsg(ctx));
    CHECK(nas_store_study_find(st, &info, &found) == NAS_OK && found == id, "find %lld %lld",
          (long long)found, (long long)id);
    nas_study_info other = info;
    other.seed = 8;
    CHECK(nas_store_study_find(st, &other, &found) == NAS_ERR_STATE, "other seed found");
    /* final-training results: NaN kept, keyed by hash and fidelity, replaced on a second put */
    double fv = 0.0, ft = 0.0;
    int have = -1;
    const uint64_t big = 0xfedcba9876543210ull; /* above INT64_MAX: stored as a negative int64 */
    CHECK(nas_store_final_put(st, id, big, "epochs=5;data_fraction=1", NAN, 91.5) == NAS_OK &&
              nas_store_final_get(st, id, big, "epochs=5;data_fraction=1", &fv, &ft, &have) ==
                  NAS_OK,
          "final put/get: %s", nas_errmsg(ctx));
    CHECK(have == 1 && isnan(fv) && ft == 91.5, "final read back: found %d valid %g test %g", have,
          fv, ft);
    CHECK(nas_store_final_get(st, id, big, "epochs=1;data_fraction=1", &fv, &ft, &have) == NAS_OK &&
              have == 0 && isnan(ft),
          "another fidelity found (%d)", have);
    CHECK(nas_store_final_put(st, id, big, "epochs=5;data_fraction=1", 90.0, 92.0) == NAS_OK &&
              nas_store_final_get(st, id, big, "epochs=5;data_fraction=1", &fv, &ft, &have) ==
                  NAS_OK &&
              fv == 90.0 && ft == 92.0,
          "final result not replaced: %g %g", fv, ft);
    nas_trial t[3];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 3; i++) {
        t[i].number = i;
        t[i].arch.n = 6;
        for (int d = 0; d < 6; d++) {
            t[i].arch.choice[d] = (i + d) % 5;
        }
        t[i].hash = 0xfedcba9876543210ull + (uint64_t)i;
        t[i].reward = 90.0 + i;
        t[i].test = 93.5 - i;
        t[i].params = 1e6;
        t[i].macs = NAN;
        t[i].eval_s = 0.25;
    }
    t[2].state = NAS_TRIAL_FAILED;
    t[2].reward = NAN;
    snprintf(t[2].error, sizeof(t[2].error), "diverged");
    for (int i = 0; i < 3; i++) {
        CHECK(nas_store_trial_add(st, id, &t[i], "x") == NAS_OK, "add %d: %s", i, nas_errmsg(ctx));
    }
    CHECK(nas_store_trial_add(st, id, &t[1], "x") == NAS_ERR_STATE, "a repeat must fail");
    nas_trial *back = NULL;
    int64_t n = 0;
    CHECK(nas_store_trials(st, id, &back, &n) == NAS_OK && n == 3, "read %lld", (long long)n);
    for (int i = 0; i < 3 && back != NULL && n == 3; i++) {
        CHECK(back[i].number == i && back[i].hash == t[i].hash && back[i].arch.n == 6 &&
                  memcmp(back[i].arch.choice, t[i].arch.choice, 6 * sizeof(int32_t)) == 0,
              "trial %d arch/hash", i);
        CHECK(back[i].state == t[i].state, "trial %d state", i);
        CHECK(i == 2 ? isnan(back[i].reward) : back[i].reward == t[i].reward, "reward %d", i);
        CHECK(isnan(back[i].macs) && back[i].params == 1e6 && back[i].test == t[i].test,
              "metrics %d", i);
    }
    CHECK(n == 3 && strcmp(back[2].error, "diverged") == 0, "error text");
    nas_trials_free(ctx, back, n);
    nas_store_close(st);
    /* Not an SQLite file: a clear error, no crash. */
    snprintf(path, sizeof(path), "%s/junk.db", tmpdir);
    FILE *f = fopen(path, "w");
    fputs("this is not a database, just some text that is long enough to have a header.....", f);
    fclose(f);
    st = NULL;
    CHECK(nas_store_open(ctx, path, &st) != NAS_OK && st == NULL, "junk file accepted");
    CHECK(strstr(nas_errmsg(ctx), "junk.db") != NULL, "message names the file: %s",
          nas_errmsg(ctx));
    nas_ctx_free(ctx);
}

/* Run bin/nascent search with the given store and extra args; returns the pid. */
static pid_t spawn_search(const char *store, const char *strategy, const char *seed,
                          const char *queries, int resume) {
    const pid_t pid = fork();
    if (pid == 0) {
        const int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        const char *argv[20] = {nascent_bin(), "search", "--space", "nb201", "--strategy",
                                strategy, "--evaluator", "table:cifar10", "--queries", queries,
                                "--seed", seed, "--store", store, "--quiet",
                                resume ? "--resume" : NULL, NULL};
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Trials of the (only or last) study of a store. */
static int64_t load_trials(nas_ctx *ctx, const char *path, const char *strategy, uint64_t seed,
                           const char *config, nas_trial **out) {
    nas_store *st = NULL;
    int64_t id = -1, n = -1;
    *out = NULL;
    nas_study_info info = {"nb201", strategy, "table:cifar10", seed, config};
    if (nas_store_open(ctx, path, &st) == NAS_OK && nas_store_study_find(st, &info, &id) == NAS_OK &&
        nas_store_trials(st, id, out, &n) == NAS_OK) {
        nas_store_close(st);
        return n;
    }
    nas_store_close(st);
    return -1;
}

/* The study config text nascent search writes for default fidelity flags. */
static const char *default_config = "params=;epochs=0;data_fraction=0;resolution=0;"
                                    "channels_mult=0;cells=0;batch=0;data=";

static int64_t count_rows(nas_ctx *ctx, const char *path, const char *strategy, uint64_t seed) {
    nas_trial *t = NULL;
    const int64_t n = load_trials(ctx, path, strategy, seed, default_config, &t);
    nas_trials_free(ctx, t, n > 0 ? n : 1);
    nas_clear_error(ctx);
    return n;
}

static void test_kill_resume(void) {
    nas_ctx *ctx = nas_ctx_new();
    char full[512], killed[512];
    snprintf(full, sizeof(full), "%s/full.db", tmpdir);
    snprintf(killed, sizeof(killed), "%s/killed.db", tmpdir);
    const char *queries = "3000";
    CHECK(wait_exit(spawn_search(full, "re", "11", queries, 0)) == 0, "uninterrupted run failed");
    /* Kill -9 once some trials are stored, twice, then resume to the end. */
    int kills = 0;
    for (int round = 0; round < 2; round++) {
        const pid_t pid = spawn_search(killed, "re", "11", queries, round > 0);
        int64_t n = 0;
        for (int spin = 0; spin < 20000; spin++) {
            n = count_rows(ctx, killed, "re", 11);
            if (n >= 300 * (round + 1)) {
                break;
            }
            usleep(2000);
        }
        if (kill(pid, SIGKILL) == 0) {
            kills++;
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) {
            kills += 10;
        }
    }
    CHECK(kills >= 11, "the search was not killed mid-run (kills %d): the test proves nothing",
          kills);
    CHECK(wait_exit(spawn_search(killed, "re", "11", queries, 1)) == 0, "resume failed");
    nas_trial *a = NULL, *b = NULL;
    const int64_t na = load_trials(ctx, full, "re", 11, default_config, &a);
    const int64_t nb = load_trials(ctx, killed, "re", 11, default_config, &b);
    CHECK(na == 3000 && nb == 3000, "trial counts %lld %lld", (long long)na, (long long)nb);
    int64_t diff = 0;
    for (int64_t i = 0; i < na && i < nb; i++) {
        diff += a[i].hash != b[i].hash || a[i].reward != b[i].reward || a[i].number != i ||
                b[i].number != i;
    }
    CHECK(diff == 0, "%lld trials differ between the killed+resumed and the uninterrupted run",
          (long long)diff);
    nas_trials_free(ctx, a, na > 0 ? na : 1);
    nas_trials_free(ctx, b, nb > 0 ? nb : 1);
    nas_ctx_free(ctx);
}

/* A stored study that the strategy does not replay (trial 5's hash altered, as a study of
 * another version would differ): exit code 4, nothing added, the altered row kept. */
static void test_resume_mismatch(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[512];
    snprintf(path, sizeof(path), "%s/mismatch.db", tmpdir);
    CHECK(wait_exit(spawn_search(path, "re", "12", "40", 0)) == 0, "the first run failed");
    sqlite3 *db = NULL;
    const int ok = sqlite3_open(path, &db) == SQLITE_OK &&
                   sqlite3_exec(db, "UPDATE trials SET hash = hash + 1 WHERE number = 5", NULL,
                                NULL, NULL) == SQLITE_OK &&
                   sqlite3_changes(db) == 1;
    sqlite3_close(db);
    CHECK(ok, "could not alter trial 5 of %s", path);
    const int rc = wait_exit(spawn_search(path, "re", "12", "60", 1));
    CHECK(rc == 4, "resume of an altered study: exit %d, want 4", rc);
    nas_trial *t = NULL;
    const int64_t n = load_trials(ctx, path, "re", 12, default_config, &t);
    CHECK(n == 40, "%lld trials after the refused resume, want the 40 stored", (long long)n);
    nas_trials_free(ctx, t, n > 0 ? n : 1);
    nas_ctx_free(ctx);
}

static void test_two_processes(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[512];
    snprintf(path, sizeof(path), "%s/shared.db", tmpdir);
    const pid_t p1 = spawn_search(path, "random", "1", "1500", 0);
    const pid_t p2 = spawn_search(path, "re", "2", "1500", 0);
    const int r1 = wait_exit(p1), r2 = wait_exit(p2);
    CHECK(r1 == 0 && r2 == 0, "exit codes %d %d", r1, r2);
    CHECK(count_rows(ctx, path, "random", 1) == 1500, "random study incomplete");
    CHECK(count_rows(ctx, path, "re", 2) == 1500, "re study incomplete");
    nas_ctx_free(ctx);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nas_test_store_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    RUN_TEST(test_roundtrip);
    if (access(nascent_bin(), X_OK) == 0) {
        RUN_TEST(test_kill_resume);
        RUN_TEST(test_resume_mismatch);
        RUN_TEST(test_two_processes);
    } else {
        printf("skip: %s not built\n", nascent_bin());
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        printf("note: could not remove %s\n", tmpdir);
    }
    return check_report("store");
}
