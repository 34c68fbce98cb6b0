/* test_strategies.c - the search strategies through their ask/tell interface:
 *  - on the minimal 1458-architecture example space with a synthetic objective (per-decision
 *    terms plus pairwise interactions, its optimum found here by brute-force enumeration), every
 *    strategy reaches the optimum: grid and random within |S| queries (no repeats), the others in
 *    a median of at most |S|/4 queries over 5 seeds ("far faster than enumeration");
 *  - on NAS-Bench-201 (table:cifar10, 150 queries, 20 seeds) every strategy's mean test accuracy
 *    of the found architecture beats random search's;
 *  - a search stopped and resumed from the store replays into exactly the uninterrupted trials;
 *  - several asks before the tells (asynchronous use), exhaustion, bad names and parameters. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static const char *const smart[] = {"re", "ls", "reinforce", "bo", "pnas"};
static const int n_smart = 5;

/* ------------------------------------------------------------------ synthetic objective */

static double weight(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^
                 (c + 7) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    z *= 0xD6E8FEB86659FD93ull;
    z ^= z >> 29;
    return (double)(z >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* f(a) = 50 + sum_d 4 w(d, c_d) + sum_d 2 w(d, c_d, c_{d+1}): a rugged but learnable landscape,
 * evaluated on the canonical form so isomorphic architectures score alike. */
static double objective(const nas_space *s, const nas_arch *raw) {
    nas_arch a;
    nas_space_canonical(s, raw, &a);
    double f = 50.0;
    for (int d = 0; d < a.n; d++) {
        f += 4.0 * weight((uint64_t)d, (uint64_t)a.choice[d], 0);
        if (d + 1 < a.n) {
            f += 2.0 * weight((uint64_t)d + 100, (uint64_t)a.choice[d],
                              (uint64_t)a.choice[d + 1] + 1);
        }
    }
    return f;
}

static nas_space *open_minimal(nas_ctx *ctx) {
    nas_space *s = NULL;
    if (nas_space_open(ctx, "examples/spaces/minimal.json", &s) != NAS_OK) {
        printf("  note: minimal.json: %s\n", nas_errmsg(ctx));
        return NULL;
    }
    return s;
}

/* Queries until the optimum value is first seen (0 if never within `limit`). */
static int64_t queries_to_optimum(nas_ctx *ctx, const nas_space *s, const char *name,
                                  uint64_t seed, double best, int64_t limit) {
    nas_strategy *st = NULL;
    const nas_strategy_opts o = {seed, 150, NULL};
    if (nas_strategy_new(ctx, name, s, &o, &st) != NAS_OK) {
        printf("  %s: %s\n", name, nas_errmsg(ctx));
        return -1;
    }
    int64_t found = 0;
    for (int64_t q = 1; q <= limit; q++) {
        nas_arch a;
        if (nas_strategy_ask(st, &a) != NAS_OK) {
            break;
        }
        const double f = objective(s, &a);
        if (f >= best) {
            found = q;
            break;
        }
        if (nas_strategy_tell(st, &a, f) != NAS_OK) {
            break;
        }
    }
    nas_strategy_free(st);
    return found;
}

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_minimal_optimum(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_minimal(ctx);
    CHECK(s != NULL, "the minimal example space must open");
    if (s == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    const int64_t size = nas_space_size(s);
    CHECK(size == 1458, "minimal space has %lld architectures", (long long)size);
    double best = -1.0;
    for (int64_t i = 0; i < size; i++) { /* brute force: the reference optimum */
        nas_arch a;
        if (nas_space_enumerate(s, i, &a) == NAS_OK) {
            const double f = objective(s, &a);
            best = f > best ? f : best;
        }
    }
    const char *const plain[] = {"grid", "random"};
    for (int k = 0; k < 2; k++) {
        const int64_t q = queries_to_optimum(ctx, s, plain[k], 3, best, size);
        printf("  %-9s optimum after %lld queries (|S| = %lld)\n", plain[k], (long long)q,
               (long long)size);
        CHECK(q > 0 && q <= size, "%s did not find the optimum in |S| queries", plain[k]);
    }
    for (int k = 0; k < n_smart; k++) {
        int64_t q[5];
        for (int seed = 0; seed < 5; seed++) {
            q[seed] = queries_to_optimum(ctx, s, smart[k], (uint64_t)seed, best, size);
            q[seed] = q[seed] <= 0 ? size + 1 : q[seed]; /* never found counts as worst */
        }
        qsort(q, 5, sizeof(q[0]), cmp_i64);
        printf("  %-9s optimum after median %lld queries (seeds: %lld..%lld)\n", smart[k],
               (long long)q[2], (long long)q[0], (long long)q[4]);
        CHECK(q[2] <= size / 4, "%s: median %lld queries to the optimum, more than |S|/4",
              smart[k], (long long)q[2]);
    }
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* ------------------------------------------------------------------ NB201 against random */

static double mean_test(nas_ctx *ctx, const nas_space *s, nas_evaluator *e, const char *name,
                        int64_t seeds) {
    const int64_t cp = 150;
    const nas_bench_opts o = {150, seeds, 1000, NULL, 1, &cp};
    double test[64], valid[64];
    if (nas_benchmark_run(ctx, s, name, e, &o, test, valid, NULL) != NAS_OK) {
        printf("  %s: %s\n", name, nas_errmsg(ctx));
        return NAN;
    }
    double m = 0.0;
    for (int64_t i = 0; i < seeds; i++) {
        m += test[i];
    }
    return m / (double)seeds;
}

static void test_nb201_beats_random(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    nas_evaluator *e = NULL;
    CHECK(nas_space_open(ctx, "nb201", &s) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(s && nas_evaluator_open(ctx, "table:cifar10", s, NULL, &e) == NAS_OK, "%s",
          nas_errmsg(ctx));
    if (e != NULL) {
        const double r = mean_test(ctx, s, e, "random", 20);
        printf("  random    150 queries, 20 seeds: mean test %.3f\n", r);
        CHECK(r > 93.0 && r < 94.37, "random's mean %.3f is not plausible", r);
        for (int k = 0; k < n_smart; k++) {
            const double m = mean_test(ctx, s, e, smart[k], 20);
            printf("  %-9s 150 queries, 20 seeds: mean test %.3f\n", smart[k], m);
            CHECK(m > r, "%s (%.3f) does not beat random (%.3f)", smart[k], m, r);
        }
    }
    nas_evaluator_free(e);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* ------------------------------------------------------------------ resume by replay */

static int64_t run(nas_ctx *ctx, const nas_space *s, nas_evaluator *e, nas_store *store,
                   int64_t study, const char *name, int64_t queries, int resume, nas_trial **t) {
    nas_strategy *st = NULL;
    const nas_strategy_opts o = {5, 150, NULL};
    int64_t n = -1;
    const nas_search_opts so = {queries, resume, NULL, NULL};
    if (nas_strategy_new(ctx, name, s, &o, &st) != NAS_OK ||
        nas_search_run(ctx, s, st, e, store, study, &so, t, &n) != NAS_OK) {
        printf("  %s: %s\n", name, nas_errmsg(ctx));
        n = -1;
    }
    nas_strategy_free(st);
    return n;
}

static void test_resume_replay(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    nas_evaluator *e = NULL;
    char path[256];
    snprintf(path, sizeof(path), "/tmp/nas_test_strategies_%d.db", (int)getpid());
    nas_store *store = NULL;
    CHECK(nas_space_open(ctx, "nb201", &s) == NAS_OK &&
              nas_evaluator_open(ctx, "table:cifar10", s, NULL, &e) == NAS_OK &&
              nas_store_open(ctx, path, &store) == NAS_OK,
          "%s", nas_errmsg(ctx));
    const char *const names[] = {"random", "re", "ls", "reinforce", "bo", "pnas"};
    for (int k = 0; store != NULL && k < 6; k++) {
        nas_study_info info = {"nb201", names[k], "table:cifar10", 5, ""};
        int64_t study = 0;
        nas_trial *full = NULL, *part = NULL, *rest = NULL;
        const int64_t nf = run(ctx, s, e, NULL, 0, names[k], 120, 0, &full);
        CHECK(nas_store_study_new(store, &info, &study) == NAS_OK, "%s", nas_errmsg(ctx));
        const int64_t np = run(ctx, s, e, store, study, names[k], 47, 0, &part);
        const int64_t nr = run(ctx, s, e, store, study, names[k], 120, 1, &rest);
        CHECK(nf == 120 && np == 47 && nr == 120, "%s: %lld %lld %lld trials", names[k],
              (long long)nf, (long long)np, (long long)nr);
        int64_t diff = 0;
        for (int64_t i = 0; i < nf && i < nr; i++) {
            diff += full[i].hash != rest[i].hash || full[i].reward != rest[i].reward;
        }
        CHECK(diff == 0, "%s: %lld trials differ after resume", names[k], (long long)diff);
        nas_trials_free(ctx, full, nf > 0 ? nf : 1);
        nas_trials_free(ctx, part, np > 0 ? np : 1);
        nas_trials_free(ctx, rest, nr > 0 ? nr : 1);
    }
    nas_store_close(store);
    nas_evaluator_free(e);
    nas_space_free(s);
    nas_ctx_free(ctx);
    remove(path);
    char side[300];
    snprintf(side, sizeof(side), "%s-wal", path);
    remove(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    remove(side);
}

/* ------------------------------------------------------------------ interface details */

static void test_async_and_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_minimal(ctx);
    if (s == NULL) {
        CHECK(0, "minimal space");
        nas_ctx_free(ctx);
        return;
    }
    CHECK(nas_strategy_count() >= 7, "%d strategies", nas_strategy_count());
    /* The single-objective strategies (nsga2 needs a cost callback: tested with hardware). */
    static const char *const names[] = {"grid", "random", "re", "ls", "reinforce", "bo", "pnas"};
    for (int k = 0; k < 7; k++) {
        const char *name = names[k];
        int listed = 0;
        for (int i = 0; i < nas_strategy_count(); i++) {
            listed |= strcmp(nas_strategy_name_at(i), name) == 0;
        }
        CHECK(listed, "%s is not in the registry", name);
        nas_strategy *st = NULL;
        const nas_strategy_opts o = {1, 100, NULL};
        if (nas_strategy_new(ctx, name, s, &o, &st) != NAS_OK) {
            CHECK(0, "%s: %s", name, nas_errmsg(ctx));
            continue;
        }
        /* Rounds of 4 asks, then their 4 tells (out of order), 40 times. */
        int64_t repeats = 0, fails = 0;
        nas_arch seen[160];
        int n_seen = 0;
        for (int round = 0; round < 40; round++) {
            nas_arch a[4];
            for (int i = 0; i < 4; i++) {
                fails += nas_strategy_ask(st, &a[i]) != NAS_OK;
                for (int j = 0; j < n_seen; j++) {
                    repeats += nas_space_hash(s, &seen[j]) == nas_space_hash(s, &a[i]);
                }
                seen[n_seen++] = a[i];
            }
            for (int i = 3; i >= 0; i--) {
                fails += nas_strategy_tell(st, &a[i], objective(s, &a[i])) != NAS_OK;
            }
        }
        CHECK(fails == 0, "%s: %lld failed asks/tells: %s", name, (long long)fails,
              nas_errmsg(ctx));
        CHECK(repeats == 0, "%s proposed %lld repeats in 160 asks", name, (long long)repeats);
        nas_strategy_free(st);
    }
    /* grid and random end cleanly when the space is exhausted. */
    const char *const finite[] = {"grid", "random"};
    for (int k = 0; k < 2; k++) {
        nas_strategy *st = NULL;
        const nas_strategy_opts o = {2, 0, NULL};
        CHECK(nas_strategy_new(ctx, finite[k], s, &o, &st) == NAS_OK, "%s", nas_errmsg(ctx));
        int64_t n = 0;
        nas_arch a;
        while (st != NULL && n < 5000 && nas_strategy_ask(st, &a) == NAS_OK) {
            nas_strategy_tell(st, &a, 1.0);
            n++;
        }
        CHECK(n <= 1458 && n > 0, "%s asked %lld times", finite[k], (long long)n);
        nas_strategy_free(st);
    }
    nas_strategy *st = NULL;
    CHECK(nas_strategy_new(ctx, "evolution", s, NULL, &st) == NAS_ERR_ARG &&
              strstr(nas_errmsg(ctx), "evolution") != NULL,
          "unknown strategy: %s", nas_errmsg(ctx));
    const nas_strategy_opts bad1 = {1, 0, "populaton=5"}, bad2 = {1, 0, "population=x"},
                            bad3 = {1, 0, "sample=20,population=5"};
    CHECK(nas_strategy_new(ctx, "re", s, &bad1, &st) == NAS_ERR_ARG &&
              strstr(nas_errmsg(ctx), "populaton") != NULL,
          "misspelt parameter: %s", nas_errmsg(ctx));
    CHECK(nas_strategy_new(ctx, "re", s, &bad2, &st) == NAS_ERR_ARG &&
              strstr(nas_errmsg(ctx), "population") != NULL,
          "bad value: %s", nas_errmsg(ctx));
    CHECK(nas_strategy_new(ctx, "re", s, &bad3, &st) == NAS_ERR_ARG, "sample > population");
    CHECK(st == NULL, "no strategy on error");
    nas_space_free(s);
    nas_ctx_free(ctx);
}

int main(void) {
    /* One thread: the runs are independent of the thread count, and on a loaded machine a team
     * of threads spinning at barriers around tiny predictor graphs costs more than it saves. */
    nas_set_threads(1);
    RUN_TEST(test_async_and_errors);
    RUN_TEST(test_minimal_optimum);
    RUN_TEST(test_resume_replay);
    RUN_TEST(test_nb201_beats_random);
    return check_report("strategies");
}
