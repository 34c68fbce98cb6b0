/* test_report.c - the search report's estimator diagnostics in-process: repeats count once and
 * failed trials are dropped, the ground truth of each trial equals the published NB201 CSV (read
 * here by a naive scan of data/nasbench201/nb201_accuracy.csv, not through nascent's table), the
 * figures equal nas_stats_correlate on the arrays built here, best.json carries them, and spaces
 * without a table fall back to the recorded test accuracy or say that nothing is known. The
 * comparison with scipy is tests/py_report.py. */
#include "check.h"
#include "csv_scan.h"
#include "nascent.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

#define N 40

/* N trials of nb201 with a made-up estimator; trials 10..14 repeat 0..4, trial 20 failed. */
static void make_trials(const nas_space *s, nas_trial *t) {
    memset(t, 0, N * sizeof(*t));
    nas_rng r = nas_rng_make(77, 1);
    for (int i = 0; i < N; i++) {
        t[i].number = i;
        t[i].arch.n = 6;
        const int src = i >= 10 && i < 15 ? i - 10 : i;
        nas_rng rr = nas_rng_make(1000 + (uint64_t)src, 1);
        for (int d = 0; d < 6; d++) {
            t[i].arch.choice[d] = (int32_t)nas_rng_below(&rr, 5);
        }
        t[i].hash = nas_space_hash(s, &t[i].arch);
        t[i].cached = src != i;
        t[i].reward = t[i].cached ? t[src].reward : 100.0 * nas_rng_uniform(&r);
        t[i].test = t[i].params = t[i].macs = t[i].memory = t[i].latency_ms = NAN;
    }
    t[20].state = NAS_TRIAL_FAILED;
    t[20].reward = NAN;
}

static void test_nb201_diagnostics(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    CHECK(nas_space_open(ctx, "nb201", &s) == NAS_OK, "space: %s", nas_errmsg(ctx));
    nas_trial t[N];
    make_trials(s, t);
    double truth[N], est[N], tru[N];
    nas_diagnostics d;
    CHECK(nas_search_diagnostics(ctx, s, "proxy:synflow", NULL, t, N, truth, &d) == NAS_OK,
          "diagnostics: %s", nas_errmsg(ctx));
    CHECK(d.have && strstr(d.truth, "cifar10 test") != NULL, "no truth: %s", d.note);
    int64_t m = 0;
    for (int i = 0; i < N; i++) {
        char text[NAS_ARCH_TEXT_MAX];
        nas_space_encode(s, &t[i].arch, text, sizeof(text));
        const double want =
            csv_scan("data/nasbench201/nb201_accuracy.csv", "cifar10_test_200ep", text);
        CHECK(fabs(truth[i] - want) <= 1e-4, "trial %d truth %g, CSV %g", i, truth[i], want);
        if (!t[i].cached) {
            est[m] = t[i].reward;
            tru[m++] = want;
        }
    }
    const double ks[4] = {0.05, 0.10, 0.20, 0.50};
    nas_stats_report ref;
    CHECK(nas_stats_correlate(ctx, est, tru, m, 4, ks, &ref) == NAS_OK, "stats");
    CHECK(d.stats.n == N - 5 - 1 && d.stats.n_dropped == 1, "n %lld dropped %lld",
          (long long)d.stats.n, (long long)d.stats.n_dropped);
    CHECK(fabs(d.stats.kendall_tau - ref.kendall_tau) < 1e-6 &&
              fabs(d.stats.spearman_rho - ref.spearman_rho) < 1e-6,
          "tau %g/%g rho %g/%g", d.stats.kendall_tau, ref.kendall_tau, d.stats.spearman_rho,
          ref.spearman_rho);
    for (int k = 0; k < 4; k++) {
        CHECK(d.stats.at[k].k == ref.at[k].k &&
                  d.stats.at[k].precision_top == ref.at[k].precision_top &&
                  d.stats.at[k].worst_rank == ref.at[k].worst_rank,
              "K %d", k);
    }
    /* The report carries the same numbers. */
    char dir[400], path[500];
    snprintf(dir, sizeof(dir), "%s/rep", tmpdir);
    nas_study_info info = {"nb201", "random", "proxy:synflow", 1, ""};
    CHECK(nas_report_write_opts(ctx, s, &info, t, N, dir, NULL) == NAS_OK, "report: %s",
          nas_errmsg(ctx));
    snprintf(path, sizeof(path), "%s/best.json", dir);
    json_error_t err;
    json_t *o = json_load_file(path, 0, &err);
    json_t *dj = o != NULL ? json_object_get(o, "diagnostics") : NULL;
    CHECK(dj != NULL, "best.json without diagnostics (%s)", err.text);
    if (dj != NULL) {
        CHECK(fabs(json_real_value(json_object_get(dj, "spearman_rho")) - ref.spearman_rho) <
                  1e-9 &&
                  json_integer_value(json_object_get(dj, "n")) == m - 1,
              "best.json diagnostics differ");
    }
    json_decref(o);
    snprintf(path, sizeof(path), "%s/trials.csv", dir);
    CHECK(access(path, R_OK) == 0, "no trials.csv");
    /* An unwritable directory is a clear error. */
    CHECK(nas_report_write_opts(ctx, s, &info, t, N, "/proc/nonexistent/x", NULL) == NAS_ERR_IO &&
              strstr(nas_errmsg(ctx), "/proc/nonexistent/x") != NULL,
          "bad dir: %s", nas_errmsg(ctx));
    nas_clear_error(ctx);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* No table for the space: the recorded test accuracy if any, else nothing (said so). */
static void test_no_table(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    CHECK(nas_space_open(ctx, "nasrl", &s) == NAS_OK, "space: %s", nas_errmsg(ctx));
    nas_trial t[3];
    memset(t, 0, sizeof(t));
    for (int i = 0; i < 3; i++) {
        t[i].number = i;
        t[i].reward = 10.0 * i;
        t[i].test = NAN;
    }
    nas_diagnostics d;
    CHECK(nas_search_diagnostics(ctx, s, "train:cifar10", NULL, t, 3, NULL, &d) == NAS_OK &&
              !d.have && strstr(d.note, "no ground truth") != NULL,
          "have %d note %s", d.have, d.note);
    t[0].test = 1.0;
    t[1].test = 3.0;
    t[2].test = 2.0;
    CHECK(nas_search_diagnostics(ctx, s, "train:cifar10:test", NULL, t, 3, NULL, &d) == NAS_OK &&
              d.have && d.stats.n == 3 && fabs(d.stats.spearman_rho - 0.5) < 1e-12,
          "recorded test: have %d n %lld rho %g", d.have, (long long)d.stats.n,
          d.stats.spearman_rho);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nas_test_report_%d", (int)getpid());
    mkdir(tmpdir, 0777);
    RUN_TEST(test_nb201_diagnostics);
    RUN_TEST(test_no_table);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_report("report");
}
