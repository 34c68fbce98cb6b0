/* report.c - the search report: DIR/report.html (self-contained HTML with inline SVG plots),
 * DIR/best.json and DIR/trials.csv. Plots: the search trajectory (each trial's reward and the best
 * so far against queries), the distribution of rewards, the Pareto fronts of reward against
 * latency (when the trials carry one), MACs, params and activation memory with the
 * non-dominated trials highlighted, and the estimator diagnostics (nas_search_diagnostics: the
 * reward against the ground truth, Kendall, Spearman, precision at K%). A table of decision rules
 * says which choice dominates each decision among the top trials and how much more often than
 * in all trials (a simple marginal importance), followed by the top trials. */
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

static void plot_trajectory(FILE *f, const nas_trial *t, int64_t n, const char *ylabel,
                            double *tmp) {
    for (int64_t i = 0; i < n; i++) {
        tmp[i] = (double)(i + 1);
    }
    const axis x = make_axis(tmp, n, 0);
    for (int64_t i = 0; i < n; i++) {
        tmp[i] = t[i].state == NAS_TRIAL_COMPLETE ? t[i].reward : (double)NAN;
    }
    const axis y = make_axis(tmp, n, 0);
    svg_open(f, "Search trajectory", &x, &y, "queries", ylabel);
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

/* The costs a report plots against the reward. */
typedef enum cost_kind { COST_PARAMS, COST_MACS, COST_LATENCY, COST_MEMORY } cost_kind;

static double cost_of(const nas_trial *t, cost_kind k) {
    switch (k) {
        case COST_PARAMS: return t->params;
        case COST_MACS: return t->macs;
        case COST_LATENCY: return t->latency_ms;
        default: return t->memory;
    }
}

/* What the reward is, for axis labels: an accuracy for table and training evaluators, else the
 * evaluator's score. */
typedef struct labels {
    char reward[200];
    char latency[200];
} labels;

/* The non-dominated trials (lower cost, higher reward) among complete trials with a positive
 * cost: their indices into idx by ascending cost; returns their count (0 on none or no memory). */
static int64_t front_of(nas_ctx *ctx, const nas_trial *t, int64_t n, cost_kind k, int64_t *idx) {
    const size_t bytes = (size_t)nas_max_i64(n, 1) * sizeof(double);
    double *cost = nas_malloc(ctx, bytes), *value = nas_malloc(ctx, bytes);
    int64_t m = 0;
    if (cost != NULL && value != NULL) {
        for (int64_t i = 0; i < n; i++) {
            const double c = cost_of(&t[i], k);
            const int ok = t[i].state == NAS_TRIAL_COMPLETE && isfinite(c) && c > 0.0 &&
                           isfinite(t[i].reward);
            cost[i] = ok ? c : (double)NAN;
            value[i] = ok ? t[i].reward : (double)NAN;
        }
        m = nas_pareto_front2(ctx, cost, value, n, idx);
    }
    nas_free(ctx, cost, bytes);
    nas_free(ctx, value, bytes);
    return m;
}

/* Scatter of reward against a cost (log axis), the Pareto front as a step line through the
 * non-dominated trials, which are drawn larger and red. */
static void plot_pareto(FILE *f, nas_ctx *ctx, const nas_trial *t, int64_t n, cost_kind k,
                        const labels *lb, double *tmp, int64_t *order) {
    static const char *const names[] = {"params", "MACs", "latency", "activation memory"};
    static const char *const axes[] = {"parameters (log)", "MACs per example (log)",
                                       "latency, ms (log)", "activation peak, bytes (log)"};
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const double c = cost_of(&t[i], k);
        if (t[i].state == NAS_TRIAL_COMPLETE && isfinite(c) && c > 0.0 && isfinite(t[i].reward)) {
            order[m++] = i;
        }
    }
    if (m == 0) {
        fprintf(f, "<p>No %s known for these trials.</p>\n", names[k]);
        return;
    }
    for (int64_t j = 0; j < m; j++) {
        tmp[j] = cost_of(&t[order[j]], k);
    }
    const axis x = make_axis(tmp, m, 1);
    for (int64_t j = 0; j < m; j++) {
        tmp[j] = t[order[j]].reward;
    }
    const axis y = make_axis(tmp, m, 0);
    char title[300];
    snprintf(title, sizeof(title), "Pareto front: reward vs %s", names[k]);
    char xl[300];
    snprintf(xl, sizeof(xl), "%s", axes[k]);
    if (k == COST_LATENCY && lb->latency[0] != '\0') {
        snprintf(xl, sizeof(xl), "latency, ms (log): %s", lb->latency);
    }
    svg_open(f, title, &x, &y, xl, lb->reward);
    for (int64_t j = 0; j < m; j++) {
        const nas_trial *a = &t[order[j]];
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='#36c' fill-opacity='0.5'/>\n",
                px(&x, cost_of(a, k)), py(&y, a->reward));
    }
    const int64_t nf = front_of(ctx, t, n, k, order); /* order is free again */
    fprintf(f, "<polyline fill='none' stroke='#c22' stroke-width='1.5' points='");
    for (int64_t j = 0; j < nf; j++) {
        const nas_trial *a = &t[order[j]];
        if (j > 0) { /* step: the previous reward holds until this cost */
            fprintf(f, "%.1f,%.1f ", px(&x, cost_of(a, k)), py(&y, t[order[j - 1]].reward));
        }
        fprintf(f, "%.1f,%.1f ", px(&x, cost_of(a, k)), py(&y, a->reward));
    }
    fprintf(f, "'/>\n");
    for (int64_t j = 0; j < nf; j++) {
        const nas_trial *a = &t[order[j]];
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='#c22'><title>trial %lld</title>"
                "</circle>\n", px(&x, cost_of(a, k)), py(&y, a->reward), (long long)a->number + 1);
    }
    fprintf(f, "<text x='%d' y='%d' fill='#c22'>non-dominated: %lld</text></svg>\n",
            W - MR - 130, MT + 14, (long long)nf);
}

static void plot_histogram(FILE *f, const nas_trial *t, int64_t n, const char *xlabel,
                           double *tmp) {
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
    svg_open(f, "Distribution of rewards", &x, &y, xlabel, "trials");
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
    fprintf(f, "<h2>Top trials</h2>\n<table><tr><th>trial</th><th>reward</th><th>test</th>"
            "<th>params</th><th>MACs</th><th>memory, B</th><th>latency, ms</th>"
            "<th>architecture</th></tr>\n");
    for (int64_t i = 0; i < m && i < 15; i++) {
        char text[NAS_ARCH_TEXT_MAX];
        if (nas_space_encode(space, &sorted[i]->arch, text, sizeof(text)) != NAS_OK) {
            snprintf(text, sizeof(text), "?");
        }
        fprintf(f, "<tr><td>%lld</td><td>%.4g</td><td>%.3f</td><td>%.4g</td><td>%.4g</td>"
                "<td>%.4g</td><td>%.4g</td><td><code>", (long long)sorted[i]->number + 1,
                sorted[i]->reward, sorted[i]->test, sorted[i]->params, sorted[i]->macs,
                sorted[i]->memory, sorted[i]->latency_ms);
        html_escape(f, text);
        fprintf(f, "</code></td></tr>\n");
    }
    fprintf(f, "</table>\n");
}

/* Scatter of the estimator (reward) against the ground truth, over distinct architectures; a
 * log x axis when the scores are positive and span more than three decades (synflow). */
static void plot_diagnostics(FILE *f, const nas_trial *t, int64_t n, const double *truth,
                             const nas_diagnostics *d, double *tmp, int64_t *order) {
    int64_t m = 0;
    int positive = 1;
    for (int64_t i = 0; i < n; i++) {
        if (!t[i].cached && t[i].state == NAS_TRIAL_COMPLETE && isfinite(t[i].reward) &&
            isfinite(truth[i])) {
            order[m++] = i;
            positive &= t[i].reward > 0.0;
        }
    }
    if (m == 0) {
        return;
    }
    for (int64_t j = 0; j < m; j++) {
        tmp[j] = t[order[j]].reward;
    }
    axis x = make_axis(tmp, m, 0);
    if (positive && x.hi > 0.0 && (x.hi + 1e-300) / fmax(x.lo, 1e-300) > 1e3) {
        x = make_axis(tmp, m, 1);
    }
    for (int64_t j = 0; j < m; j++) {
        tmp[j] = truth[order[j]];
    }
    const axis y = make_axis(tmp, m, 0);
    char xl[240];
    snprintf(xl, sizeof(xl), "estimator: %s%s", d->estimator, x.log ? " (log)" : "");
    svg_open(f, "Estimator against ground truth", &x, &y, xl, d->truth);
    for (int64_t j = 0; j < m; j++) {
        const nas_trial *a = &t[order[j]];
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='#36c' fill-opacity='0.6'/>\n",
                px(&x, a->reward), py(&y, truth[order[j]]));
    }
    fprintf(f, "<text x='%d' y='%d'>Spearman %.3f, Kendall %.3f</text></svg>\n", ML + 8,
            MT + 14, d->stats.spearman_rho, d->stats.kendall_tau);
}

static void write_diagnostics(FILE *f, const nas_diagnostics *d) {
    fprintf(f, "<h2>Estimator diagnostics</h2>\n<p>");
    if (!d->have) {
        html_escape(f, d->note);
        fprintf(f, "</p>\n");
        return;
    }
    fprintf(f, "Estimator <b>");
    html_escape(f, d->estimator);
    fprintf(f, "</b> vs <b>");
    html_escape(f, d->truth);
    fprintf(f, "</b> over %lld distinct architectures (%lld without a value dropped): "
            "Spearman &rho; %.3f, Kendall &tau; %.3f, Pearson r %.3f",
            (long long)d->stats.n, (long long)d->stats.n_dropped, d->stats.spearman_rho,
            d->stats.kendall_tau, d->stats.pearson_r);
    for (int i = 0; i < d->stats.n_k; i++) {
        fprintf(f, ", top-%.0f%% precision %.2f", 100.0 * d->stats.at[i].k_frac,
                d->stats.at[i].precision_top);
    }
    fprintf(f, ".<br><small>");
    html_escape(f, d->note);
    fprintf(f, "</small></p>\n<table><tr><th>K</th><th>k</th><th>precision top-K</th>"
            "<th>precision bottom-K</th><th>best true rank of est. top-K</th>"
            "<th>worst true rank of est. top-K</th></tr>\n");
    for (int i = 0; i < d->stats.n_k; i++) {
        const nas_stats_at_k *a = &d->stats.at[i];
        fprintf(f, "<tr><td>%.0f%%</td><td>%lld</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>"
                "<td>%.3f</td></tr>\n", 100.0 * a->k_frac, (long long)a->k, a->precision_top,
                a->precision_bottom, a->best_rank, a->worst_rank);
    }
    fprintf(f, "</table>\n<p><small>Ranks are fractions: 0 = the best architecture among those "
            "evaluated, 1 = the worst (Ning et al. 2021).</small></p>\n");
}

/* One CSV number: empty when unknown, else enough digits to read back the same double. */
static void csv_num(FILE *f, double v) {
    if (isfinite(v)) {
        fprintf(f, ",%.17g", v);
    } else {
        fputc(',', f);
    }
}

static nas_status write_csv(nas_ctx *ctx, const nas_space *space, const nas_trial *t, int64_t n,
                            const double *truth, const char *path) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    fprintf(f, "trial,arch,state,cached,reward,test,truth,params,macs,memory,latency_ms,"
            "eval_s\n");
    for (int64_t i = 0; i < n; i++) {
        char text[NAS_ARCH_TEXT_MAX];
        if (nas_space_encode(space, &t[i].arch, text, sizeof(text)) != NAS_OK) {
            snprintf(text, sizeof(text), "?");
            nas_clear_error(ctx);
        }
        fprintf(f, "%lld,\"", (long long)t[i].number);
        for (const char *c = text; *c; c++) { /* CSV quoting: double the quotes */
            fputs(*c == '"' ? "\"\"" : (char[2]){*c, 0}, f);
        }
        fprintf(f, "\",%s,%d", t[i].state == NAS_TRIAL_COMPLETE ? "complete" : "failed",
                t[i].cached);
        csv_num(f, t[i].reward);
        csv_num(f, t[i].test);
        csv_num(f, truth != NULL ? truth[i] : (double)NAN);
        csv_num(f, t[i].params);
        csv_num(f, t[i].macs);
        csv_num(f, t[i].memory);
        csv_num(f, t[i].latency_ms);
        csv_num(f, t[i].eval_s);
        fputc('\n', f);
    }
    return fclose(f) == 0 ? NAS_OK : nas_fail(ctx, NAS_ERR_IO, "%s: write failed", path);
}

static json_t *num_or_null(double v) {
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *diagnostics_json(const nas_diagnostics *d) {
    json_t *o = json_object();
    json_object_set_new(o, "estimator", json_string(d->estimator));
    json_object_set_new(o, "truth", d->have ? json_string(d->truth) : json_null());
    json_object_set_new(o, "note", json_string(d->note));
    if (!d->have) {
        return o;
    }
    json_object_set_new(o, "n", json_integer(d->stats.n));
    json_object_set_new(o, "n_dropped", json_integer(d->stats.n_dropped));
    json_object_set_new(o, "kendall_tau", num_or_null(d->stats.kendall_tau));
    json_object_set_new(o, "spearman_rho", num_or_null(d->stats.spearman_rho));
    json_object_set_new(o, "pearson_r", num_or_null(d->stats.pearson_r));
    json_t *ks = json_array();
    for (int i = 0; i < d->stats.n_k; i++) {
        const nas_stats_at_k *a = &d->stats.at[i];
        json_t *k = json_object();
        json_object_set_new(k, "k_frac", json_real(a->k_frac));
        json_object_set_new(k, "k", json_integer(a->k));
        json_object_set_new(k, "precision_top", num_or_null(a->precision_top));
        json_object_set_new(k, "precision_bottom", num_or_null(a->precision_bottom));
        json_object_set_new(k, "best_rank", num_or_null(a->best_rank));
        json_object_set_new(k, "worst_rank", num_or_null(a->worst_rank));
        json_array_append_new(ks, k);
    }
    json_object_set_new(o, "at_k", ks);
    return o;
}

/* The non-dominated trials by the report's main cost: latency when known, else MACs. */
size_t nas_diagnostics_json(const nas_diagnostics *d, char *buf, size_t size) {
    json_t *o = diagnostics_json(d);
    const size_t need = o != NULL ? json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(10)) : 0;
    if (need > 0 && need < size) {
        json_dumpb(o, buf, size, JSON_COMPACT | JSON_REAL_PRECISION(10));
        buf[need] = '\0';
    } else if (size > 0) {
        buf[0] = '\0';
    }
    json_decref(o);
    return need;
}

static json_t *front_json(nas_ctx *ctx, const nas_trial *t, int64_t n, cost_kind k,
                          const labels *lb, int64_t *idx) {
    json_t *o = json_object();
    json_object_set_new(o, "cost", json_string(k == COST_LATENCY ? "latency_ms" : "macs"));
    if (k == COST_LATENCY) {
        json_object_set_new(o, "latency_source", json_string(lb->latency));
    }
    json_t *arr = json_array();
    const int64_t nf = front_of(ctx, t, n, k, idx);
    for (int64_t j = 0; j < nf; j++) {
        json_t *e = json_object();
        json_object_set_new(e, "trial", json_integer(t[idx[j]].number));
        json_object_set_new(e, "reward", num_or_null(t[idx[j]].reward));
        json_object_set_new(e, "cost", num_or_null(cost_of(&t[idx[j]], k)));
        json_array_append_new(arr, e);
    }
    json_object_set_new(o, "trials", arr);
    return o;
}

static nas_status write_best_json(nas_ctx *ctx, const nas_space *space,
                                  const nas_study_info *info, const nas_trial *b, int64_t n,
                                  json_t *diag, json_t *front, const char *path) {
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
    json_object_set_new(o, "best_memory", num_or_null(b ? b->memory : (double)NAN));
    json_object_set_new(o, "best_latency_ms", num_or_null(b ? b->latency_ms : (double)NAN));
    json_object_set_new(o, "diagnostics", diag);
    json_object_set_new(o, "pareto_front", front);
    const int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    return rc == 0 ? NAS_OK : nas_fail(ctx, NAS_ERR_IO, "%s: cannot write", path);
}

/* Axis labels: an accuracy for the table and training evaluators, else the evaluator's score. */
static void make_labels(const nas_study_info *info, const nas_report_opts *opts, labels *lb) {
    const char *e = info->evaluator;
    if (strncmp(e, "table", 5) == 0 || strncmp(e, "train", 5) == 0) {
        snprintf(lb->reward, sizeof(lb->reward), "validation accuracy (reward)");
    } else {
        snprintf(lb->reward, sizeof(lb->reward), "reward: %s", e);
    }
    snprintf(lb->latency, sizeof(lb->latency), "%s",
             opts != NULL && opts->latency_source != NULL ? opts->latency_source : "");
}

static int any_cost(const nas_trial *t, int64_t n, cost_kind k) {
    for (int64_t i = 0; i < n; i++) {
        if (t[i].state == NAS_TRIAL_COMPLETE && isfinite(cost_of(&t[i], k))) {
            return 1;
        }
    }
    return 0;
}

static void write_header(FILE *f, const nas_space *space, const nas_study_info *info,
                         const nas_trial *b, int64_t n, int64_t failed) {
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
    fprintf(f, "</td></tr><tr><th>trials</th><td>%lld (%lld failed)</td></tr>\n", (long long)n,
            (long long)failed);
    if (b != NULL) {
        char text[NAS_ARCH_TEXT_MAX];
        if (nas_space_encode(space, &b->arch, text, sizeof(text)) != NAS_OK) {
            snprintf(text, sizeof(text), "?");
        }
        fprintf(f, "<tr><th>best</th><td><code>");
        html_escape(f, text);
        fprintf(f, "</code><br>reward %.4g, test %.3f, params %.4g, MACs %.4g, memory %.4g B, "
                "latency %.4g ms (trial %lld)</td></tr>\n", b->reward, b->test, b->params,
                b->macs, b->memory, b->latency_ms, (long long)b->number + 1);
    }
    fprintf(f, "</table>\n");
}

nas_status nas_report_write(nas_ctx *ctx, const nas_space *space, const nas_study_info *info,
                            const nas_trial *trials, int64_t n, const char *dir) {
    return nas_report_write_opts(ctx, space, info, trials, n, dir, NULL);
}

nas_status nas_report_write_opts(nas_ctx *ctx, const nas_space *space,
                                 const nas_study_info *info, const nas_trial *trials, int64_t n,
                                 const char *dir, const nas_report_opts *opts) {
    NAS_CHECK_ARG(ctx, space != NULL && info != NULL && dir != NULL && (trials != NULL || n == 0));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    }
    const size_t m_all = (size_t)nas_max_i64(n, 1);
    double *tmp = nas_malloc(ctx, m_all * sizeof(double));
    double *truth = nas_malloc(ctx, m_all * sizeof(double));
    int64_t *order = nas_malloc(ctx, m_all * sizeof(int64_t));
    const nas_trial **sorted = nas_malloc(ctx, m_all * sizeof(nas_trial *));
    nas_diagnostics diag;
    labels lb;
    make_labels(info, opts, &lb);
    nas_status st = tmp && truth && order && sorted ? NAS_OK : NAS_ERR_NOMEM;
    if (st == NAS_OK && opts != NULL && opts->truth != NULL) {
        memcpy(truth, opts->truth, (size_t)n * sizeof(double));
        st = nas_diagnostics_from(ctx, info->evaluator,
                                  opts->truth_label != NULL ? opts->truth_label : "ground truth",
                                  opts->truth_note, trials, n, truth, &diag);
    } else if (st == NAS_OK) {
        st = nas_search_diagnostics(ctx, space, info->evaluator,
                                    opts != NULL ? opts->eval_opts : NULL, trials, n, truth,
                                    &diag);
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/report.html", dir);
    FILE *f = NULL;
    if (st == NAS_OK && (f = fopen(path, "w")) == NULL) {
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
    /* The main trade-off: reward against latency where a latency source gave it, else MACs. */
    const cost_kind main_cost = any_cost(trials, n, COST_LATENCY) ? COST_LATENCY : COST_MACS;
    if (st == NAS_OK) {
        qsort(sorted, (size_t)m, sizeof(*sorted), cmp_reward_desc);
        const nas_trial *b = m > 0 ? sorted[0] : NULL;
        write_header(f, space, info, b, n, failed);
        fprintf(f, "<div>\n");
        plot_trajectory(f, trials, n, lb.reward, tmp);
        plot_histogram(f, trials, n, lb.reward, tmp);
        plot_pareto(f, ctx, trials, n, main_cost, &lb, tmp, order);
        if (main_cost == COST_LATENCY) {
            plot_pareto(f, ctx, trials, n, COST_MACS, &lb, tmp, order);
        }
        plot_pareto(f, ctx, trials, n, COST_PARAMS, &lb, tmp, order);
        if (any_cost(trials, n, COST_MEMORY)) {
            plot_pareto(f, ctx, trials, n, COST_MEMORY, &lb, tmp, order);
        }
        if (diag.have) {
            plot_diagnostics(f, trials, n, truth, &diag, tmp, order);
        }
        fprintf(f, "</div>\n");
        write_diagnostics(f, &diag);
        write_rules(f, space, sorted, m);
        write_top(f, space, sorted, m);
        fprintf(f, "<p>Every trial: <a href='trials.csv'>trials.csv</a></p>\n</body></html>\n");
        if (fclose(f) != 0) {
            st = nas_fail(ctx, NAS_ERR_IO, "%s: write failed", path);
        }
        f = NULL;
        if (st == NAS_OK) {
            snprintf(path, sizeof(path), "%s/best.json", dir);
            st = write_best_json(ctx, space, info, b, n, diagnostics_json(&diag),
                                 front_json(ctx, trials, n, main_cost, &lb, order), path);
        }
        if (st == NAS_OK) {
            snprintf(path, sizeof(path), "%s/trials.csv", dir);
            st = write_csv(ctx, space, trials, n, diag.have ? truth : NULL, path);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    nas_free(ctx, tmp, m_all * sizeof(double));
    nas_free(ctx, truth, m_all * sizeof(double));
    nas_free(ctx, order, m_all * sizeof(int64_t));
    nas_free(ctx, sorted, m_all * sizeof(nas_trial *));
    return st;
}
