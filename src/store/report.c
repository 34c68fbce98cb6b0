/* report.c - the search report: DIR/report.html (self-contained HTML with inline SVG plots) and
 * DIR/best.json. Plots: the search trajectory (each trial's reward and the best so far against
 * queries), the Pareto fronts of reward against params and against MACs (where known), and the
 * distribution of rewards. A table of decision rules says which choice dominates each decision
 * among the top trials and how much more often than in all trials (a simple marginal
 * importance), followed by the top trials. */
#include "core/core_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#define W 560
#define H 340
#define ML 64 /* margins: left, right, top, bottom */
#define MR 16
#define MT 34
#define MB 46

typedef struct axis {
    double lo, hi;
    int log;
} axis;

static double ax_t(const axis *a, double v) {
    if (a->log) {
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    }
    return (v - a->lo) / (a->hi - a->lo);
}

static double px(const axis *a, double v) {
    return ML + ax_t(a, v) * (W - ML - MR);
}

static double py(const axis *a, double v) {
    return H - MB - ax_t(a, v) * (H - MT - MB);
}

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '&': fputs("&amp;", f); break;
            case '"': fputs("&quot;", f); break;
            default: fputc(*s, f);
        }
    }
}

/* Range of values with a little padding; log axes need positive values. */
static axis make_axis(const double *v, int64_t n, int log_scale) {
    axis a = {INFINITY, -INFINITY, log_scale};
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(v[i]) && (!log_scale || v[i] > 0.0)) {
            a.lo = fmin(a.lo, v[i]);
            a.hi = fmax(a.hi, v[i]);
        }
    }
    if (!(a.lo <= a.hi)) {
        a.lo = 0.0;
        a.hi = 1.0;
    }
    if (log_scale) {
        a.lo /= 1.2;
        a.hi *= 1.2;
    } else {
        const double pad = a.hi > a.lo ? 0.04 * (a.hi - a.lo) : 1.0;
        a.lo -= pad;
        a.hi += pad;
    }
    return a;
}

static void svg_open(FILE *f, const char *title, const axis *x, const axis *y, const char *xl,
                     const char *yl) {
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "font-family='sans-serif' font-size='11'>\n", W, H);
    fprintf(f, "<text x='%d' y='18' font-size='14' font-weight='bold'>", ML);
    html_escape(f, title);
    fprintf(f, "</text>\n<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n",
            ML, MT, W - ML - MR, H - MT - MB);
    for (int k = 0; k <= 4; k++) { /* 5 ticks per axis */
        const double t = k / 4.0;
        const double xv = x->log ? pow(10.0, log10(x->lo) + t * (log10(x->hi) - log10(x->lo)))
                                 : x->lo + t * (x->hi - x->lo);
        const double yv = y->lo + t * (y->hi - y->lo);
        fprintf(f, "<text x='%.1f' y='%d' text-anchor='middle'>%.4g</text>\n", px(x, xv),
                H - MB + 14, xv);
        fprintf(f, "<text x='%d' y='%.1f' text-anchor='end'>%.4g</text>\n", ML - 4,
                py(y, yv) + 4, yv);
        fprintf(f, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#eee'/>\n", ML + 1,
                W - MR - 1, py(y, yv), py(y, yv));
    }
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>", (ML + W - MR) / 2, H - 8);
    html_escape(f, xl);
    fprintf(f, "</text>\n<text x='14' y='%d' text-anchor='middle' transform='rotate(-90 14 %d)'>",
            (MT + H - MB) / 2, (MT + H - MB) / 2);
    html_escape(f, yl);
    fprintf(f, "</text>\n");
}

static void plot_trajectory(FILE *f, const nas_trial *t, int64_t n, double *tmp) {
    for (int64_t i = 0; i < n; i++) {
        tmp[i] = (double)(i + 1);
    }
    const axis x = make_axis(tmp, n, 0);
    for (int64_t i = 0; i < n; i++) {
        tmp[i] = t[i].state == NAS_TRIAL_COMPLETE ? t[i].reward : (double)NAN;
    }
    const axis y = make_axis(tmp, n, 0);
    svg_open(f, "Search trajectory", &x, &y, "queries", "validation accuracy (reward)");
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(tmp[i])) {
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2' fill='#9bb'/>\n", px(&x, i + 1.0),
                    py(&y, tmp[i]));
        }
    }
    fprintf(f, "<polyline fill='none' stroke='#c22' stroke-width='2' points='");
    double best = NAN;
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(tmp[i]) && !(tmp[i] <= best)) {
            best = tmp[i];
        }
        if (isfinite(best)) {
            fprintf(f, "%.1f,%.1f ", px(&x, i + 1.0), py(&y, best));
        }
    }
    fprintf(f, "'/>\n<text x='%d' y='%d' fill='#c22'>best so far</text></svg>\n", W - MR - 80,
            MT + 14);
}

/* Scatter of reward against a cost, Pareto front (higher reward, lower cost) as a step line. */
static void plot_pareto(FILE *f, const nas_trial *t, int64_t n, int use_macs, double *tmp,
                        int64_t *order) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double c = use_macs ? t[i].macs : t[i].params;
        if (t[i].state == NAS_TRIAL_COMPLETE && isfinite(c) && c > 0.0) {
            order[m++] = i;
        }
    }
    if (m == 0) {
        fprintf(f, "<p>No %s known for these trials.</p>\n", use_macs ? "MACs" : "params");
        return;
    }
    for (int64_t k = 0; k < m; k++) {
        tmp[k] = use_macs ? t[order[k]].macs : t[order[k]].params;
    }
    const axis x = make_axis(tmp, m, 1);
    for (int64_t k = 0; k < m; k++) {
        tmp[k] = t[order[k]].reward;
    }
    const axis y = make_axis(tmp, m, 0);
    svg_open(f, use_macs ? "Pareto front: accuracy vs MACs" : "Pareto front: accuracy vs params",
             &x, &y, use_macs ? "MACs per example (log)" : "parameters (log)",
             "validation accuracy");
    /* Sort by cost (insertion sort: hundreds of points), ties by reward descending. */
    for (int64_t k = 1; k < m; k++) {
        const int64_t v = order[k];
        int64_t j = k;
        for (; j > 0; j--) {
            const nas_trial *a = &t[order[j - 1]], *b = &t[v];
            const double ca = use_macs ? a->macs : a->params, cb = use_macs ? b->macs : b->params;
            if (ca < cb || (ca == cb && a->reward >= b->reward)) {
                break;
            }
            order[j] = order[j - 1];
        }
        order[j] = v;
    }
    fprintf(f, "<polyline fill='none' stroke='#c22' stroke-width='2' points='");
    double best = -INFINITY;
    for (int64_t k = 0; k < m; k++) {
        const nas_trial *a = &t[order[k]];
        if (a->reward > best) {
            const double c = use_macs ? a->macs : a->params;
            if (isfinite(best)) {
                fprintf(f, "%.1f,%.1f ", px(&x, c), py(&y, best));
            }
            best = a->reward;
            fprintf(f, "%.1f,%.1f ", px(&x, c), py(&y, best));
        }
    }
    fprintf(f, "'/>\n");
    for (int64_t k = 0; k < m; k++) {
        const nas_trial *a = &t[order[k]];
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='#36c' fill-opacity='0.6'/>\n",
                px(&x, use_macs ? a->macs : a->params), py(&y, a->reward));
    }
    fprintf(f, "</svg>\n");
}

static void plot_histogram(FILE *f, const nas_trial *t, int64_t n, double *tmp) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (t[i].state == NAS_TRIAL_COMPLETE && isfinite(t[i].reward)) {
            tmp[m++] = t[i].reward;
        }
    }
    if (m == 0) {
        return;
    }
    axis x = make_axis(tmp, m, 0);
    enum { BINS = 24 };
    int64_t count[BINS] = {0}, top = 1;
    for (int64_t k = 0; k < m; k++) {
        int b = (int)(ax_t(&x, tmp[k]) * BINS);
        b = b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
        count[b]++;
        top = count[b] > top ? count[b] : top;
    }
    const axis y = {0.0, (double)top * 1.05, 0};
    svg_open(f, "Distribution of rewards", &x, &y, "validation accuracy", "trials");
    for (int b = 0; b < BINS; b++) {
        const double x0 = x.lo + (x.hi - x.lo) * b / BINS, x1 = x.lo + (x.hi - x.lo) * (b + 1) / BINS;
        fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#36c'/>\n",
                px(&x, x0) + 0.5, py(&y, (double)count[b]), px(&x, x1) - px(&x, x0) - 1.0,
                py(&y, 0.0) - py(&y, (double)count[b]));
    }
    fprintf(f, "</svg>\n");
}

static int cmp_reward_desc(const void *a, const void *b) {
    const nas_trial *x = *(const nas_trial *const *)a, *y = *(const nas_trial *const *)b;
    if (x->reward != y->reward) {
        return x->reward > y->reward ? -1 : 1;
    }
    return x->number < y->number ? -1 : x->number > y->number;
}

/* Decision rules: for each decision the choice most frequent in the top 5% (at least 5 trials),
 * its share there and in all complete trials. Sorted by the difference (importance). */
static void write_rules(FILE *f, const nas_space *space, const nas_trial **sorted, int64_t m) {
    const int64_t top = m / 20 > 5 ? m / 20 : (m < 5 ? m : 5);
    const int n_dec = nas_space_n_decisions(space);
    if (top == 0) {
        return;
    }
    typedef struct rule {
        int d, c;
        double top_share, all_share;
    } rule;
    rule rules[NAS_ARCH_MAX_DECISIONS];
    for (int d = 0; d < n_dec; d++) {
        int64_t cnt_top[64] = {0}, cnt_all[64] = {0};
        const int k = nas_space_n_choices(space, d);
        for (int64_t i = 0; i < m; i++) {
            const int c = sorted[i]->arch.choice[d];
            if (c >= 0 && c < 64) {
                cnt_all[c]++;
                cnt_top[c] += i < top;
            }
        }
        int best = 0;
        for (int c = 1; c < k && c < 64; c++) {
            best = cnt_top[c] > cnt_top[best] ? c : best;
        }
        rules[d] = (rule){d, best, (double)cnt_top[best] / (double)top,
                          (double)cnt_all[best] / (double)m};
    }
    for (int i = 1; i < n_dec; i++) { /* insertion sort by importance */
        const rule r = rules[i];
        int j = i;
        for (; j > 0 && rules[j - 1].top_share - rules[j - 1].all_share <
                            r.top_share - r.all_share; j--) {
            rules[j] = rules[j - 1];
        }
        rules[j] = r;
    }
    fprintf(f, "<h2>Decision rules (top %lld of %lld trials)</h2>\n<table><tr><th>decision</th>"
            "<th>choice</th><th>share in top</th><th>share in all</th><th>importance</th></tr>\n",
            (long long)top, (long long)m);
    for (int i = 0; i < n_dec; i++) {
        fprintf(f, "<tr><td>");
        html_escape(f, nas_space_decision_name(space, rules[i].d));
        fprintf(f, "</td><td>");
        html_escape(f, nas_space_choice_name(space, rules[i].d, rules[i].c));
        fprintf(f, "</td><td>%.0f%%</td><td>%.0f%%</td><td>%+.2f</td></tr>\n",
                100.0 * rules[i].top_share, 100.0 * rules[i].all_share,
                rules[i].top_share - rules[i].all_share);
    }
    fprintf(f, "</table>\n");
}

static void write_top(FILE *f, const nas_space *space, const nas_trial **sorted, int64_t m) {
    fprintf(f, "<h2>Top trials</h2>\n<table><tr><th>trial</th><th>valid</th><th>test</th>"
            "<th>params</th><th>MACs</th><th>architecture</th></tr>\n");
    for (int64_t i = 0; i < m && i < 15; i++) {
        char text[NAS_ARCH_TEXT_MAX];
        if (nas_space_encode(space, &sorted[i]->arch, text, sizeof(text)) != NAS_OK) {
            snprintf(text, sizeof(text), "?");
        }
        fprintf(f, "<tr><td>%lld</td><td>%.3f</td><td>%.3f</td><td>%.4g</td><td>%.4g</td>"
                "<td><code>", (long long)sorted[i]->number + 1, sorted[i]->reward,
                sorted[i]->test, sorted[i]->params, sorted[i]->macs);
        html_escape(f, text);
        fprintf(f, "</code></td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

static json_t *num_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static nas_status write_best_json(nas_ctx *ctx, const nas_space *space,
                                  const nas_study_info *info, const nas_trial *b, int64_t n,
                                  const char *path) {
    char text[NAS_ARCH_TEXT_MAX] = "";
    if (b != NULL && nas_space_encode(space, &b->arch, text, sizeof(text)) != NAS_OK) {
        text[0] = '\0';
        nas_clear_error(ctx);
    }
    json_t *o = json_object();
    json_object_set_new(o, "space", json_string(info->space));
    json_object_set_new(o, "strategy", json_string(info->strategy));
    json_object_set_new(o, "evaluator", json_string(info->evaluator));
    json_object_set_new(o, "seed", json_integer((json_int_t)info->seed));
    json_object_set_new(o, "queries", json_integer(n));
    json_object_set_new(o, "best_arch", b ? json_string(text) : json_null());
    json_object_set_new(o, "best_trial", b ? json_integer(b->number) : json_null());
    json_object_set_new(o, "best_valid", num_or_null(b ? b->reward : (double)NAN));
    json_object_set_new(o, "best_test", num_or_null(b ? b->test : (double)NAN));
    json_object_set_new(o, "best_params", num_or_null(b ? b->params : (double)NAN));
    json_object_set_new(o, "best_macs", num_or_null(b ? b->macs : (double)NAN));
    const int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    return rc == 0 ? NAS_OK : nas_fail(ctx, NAS_ERR_IO, "%s: cannot write", path);
}

nas_status nas_report_write(nas_ctx *ctx, const nas_space *space, const nas_study_info *info,
                            const nas_trial *trials, int64_t n, const char *dir) {
    NAS_CHECK_ARG(ctx, space != NULL && info != NULL && dir != NULL && (trials != NULL || n == 0));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    }
    const size_t m_all = (size_t)nas_max_i64(n, 1);
    double *tmp = nas_malloc(ctx, m_all * sizeof(double));
    int64_t *order = nas_malloc(ctx, m_all * sizeof(int64_t));
    const nas_trial **sorted = nas_malloc(ctx, m_all * sizeof(nas_trial *));
    char path[4200];
    snprintf(path, sizeof(path), "%s/report.html", dir);
    FILE *f = tmp && order && sorted ? fopen(path, "w") : NULL;
    nas_status st = NAS_OK;
    if (tmp == NULL || order == NULL || sorted == NULL) {
        st = NAS_ERR_NOMEM;
    } else if (f == NULL) {
        st = nas_fail(ctx, NAS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    int64_t m = 0, failed = 0;
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        if (trials[i].state == NAS_TRIAL_COMPLETE && isfinite(trials[i].reward)) {
            sorted[m++] = &trials[i];
        } else {
            failed++;
        }
    }
    if (st == NAS_OK) {
        qsort(sorted, (size_t)m, sizeof(*sorted), cmp_reward_desc);
        const nas_trial *b = m > 0 ? sorted[0] : NULL;
        fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>nascent search "
                "report</title>\n<style>body{font-family:sans-serif;max-width:1180px;margin:1em "
                "auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
                "font-size:13px}svg{margin:4px}</style></head><body>\n<h1>Search report</h1>\n");
        fprintf(f, "<table><tr><th>space</th><td>");
        html_escape(f, info->space);
        fprintf(f, "</td></tr><tr><th>strategy</th><td>");
        html_escape(f, info->strategy);
        fprintf(f, "</td></tr><tr><th>evaluator</th><td>");
        html_escape(f, info->evaluator);
        fprintf(f, "</td></tr><tr><th>seed</th><td>%llu</td></tr><tr><th>config</th><td>",
                (unsigned long long)info->seed);
        html_escape(f, info->config != NULL ? info->config : "");
        fprintf(f, "</td></tr><tr><th>trials</th><td>%lld (%lld failed)</td></tr>\n",
                (long long)n, (long long)failed);
        if (b != NULL) {
            char text[NAS_ARCH_TEXT_MAX];
            if (nas_space_encode(space, &b->arch, text, sizeof(text)) != NAS_OK) {
                snprintf(text, sizeof(text), "?");
            }
            fprintf(f, "<tr><th>best</th><td><code>");
            html_escape(f, text);
            fprintf(f, "</code><br>validation %.3f, test %.3f, params %.4g, MACs %.4g (trial "
                    "%lld)</td></tr>\n", b->reward, b->test, b->params, b->macs,
                    (long long)b->number + 1);
        }
        fprintf(f, "</table>\n<div>\n");
        plot_trajectory(f, trials, n, tmp);
        plot_histogram(f, trials, n, tmp);
        plot_pareto(f, trials, n, 0, tmp, order);
        plot_pareto(f, trials, n, 1, tmp, order);
        fprintf(f, "</div>\n");
        write_rules(f, space, sorted, m);
        write_top(f, space, sorted, m);
        fprintf(f, "</body></html>\n");
        if (fclose(f) != 0) {
            st = nas_fail(ctx, NAS_ERR_IO, "%s: write failed", path);
        }
        f = NULL;
        if (st == NAS_OK) {
            snprintf(path, sizeof(path), "%s/best.json", dir);
            st = write_best_json(ctx, space, info, b, n, path);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    nas_free(ctx, tmp, m_all * sizeof(double));
    nas_free(ctx, order, m_all * sizeof(int64_t));
    nas_free(ctx, sorted, m_all * sizeof(nas_trial *));
    return st;
}
