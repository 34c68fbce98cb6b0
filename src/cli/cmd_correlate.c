/* cmd_correlate.c - `nascent correlate`: rank correlation and the estimator diagnostics of Ning
 * et al. (Kendall tau-b, Spearman rho, Pearson r, precision at top/bottom K%, best/worst ranking
 * at K) between two numeric columns of CSV files, paired by row or joined on a key column.
 *
 *   nascent correlate --a FILE.csv:COL --b FILE.csv:COL [--join KEY] [--k PCT[,PCT...]] [--json]
 *
 * COL is a header name (or a 1-based column number when no header has that name); --join KEY_A=KEY_B
 * joins on differently named key columns. --a is the
 * estimate, --b the ground truth. Empty cells and nan/NA/null are missing: the pair is dropped and
 * counted. Anything else that is not a number is an error naming file, line and column. */
#include "cli_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 4096

/* One CSV file in memory: the text, split in place into fields. */
typedef struct csv_file {
    const char *path;
    char *text;
    int64_t n_rows;     /* data rows (header excluded) */
    int n_cols;
    char **header;      /* n_cols names */
    char ***rows;       /* rows[r][c] */
    int64_t *line;      /* file line of each data row */
} csv_file;

static void csv_free(csv_file *f) {
    if (f->rows != NULL) {
        for (int64_t r = 0; r < f->n_rows; r++) {
            free(f->rows[r]);
        }
    }
    free(f->rows);
    free(f->line);
    free(f->header);
    free(f->text);
    memset(f, 0, sizeof(*f));
}

static char *read_all(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "nascent correlate: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    const int err = ferror(fp);
    fclose(fp);
    if (buf == NULL || err) {
        fprintf(stderr, "nascent correlate: cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Split one record starting at *p into fields (in place; quotes with "" escapes are removed).
 * Advances *p past the record's line end and *line by the lines consumed. Returns the field
 * count, or -1 on a malformed quote (message printed). */
static int split_record(const char *path, char **p, int64_t *line, char **fields) {
    char *s = *p, *out = s;
    int n = 0;
    fields[n++] = out;
    for (;;) {
        if (*s == '"' && out == fields[n - 1]) {
            s++;
            for (;;) {
                if (*s == '\0') {
                    fprintf(stderr, "%s:%lld: unterminated quoted field\n", path, (long long)*line);
                    return -1;
                }
                if (*s == '"' && s[1] == '"') {
                    *out++ = '"';
                    s += 2;
                } else if (*s == '"') {
                    s++;
                    break;
                } else {
                    if (*s == '\n') {
                        (*line)++;
                    }
                    *out++ = *s++;
                }
            }
            continue;
        }
        if (*s == ',') {
            *out++ = '\0';
            s++;
            if (n == MAX_FIELDS) {
                fprintf(stderr, "%s:%lld: more than %d fields\n", path, (long long)*line, MAX_FIELDS);
                return -1;
            }
            fields[n++] = out;
            continue;
        }
        if (*s == '\0' || *s == '\n' || (*s == '\r' && (s[1] == '\n' || s[1] == '\0'))) {
            /* out may equal s: step over the line end before terminating the field */
            if (*s == '\r') {
                s++;
            }
            if (*s == '\n') {
                s++;
            }
            *out = '\0';
            *p = s;
            return n;
        }
        *out++ = *s++;
    }
}

static int csv_load(const char *path, csv_file *f) {
    memset(f, 0, sizeof(*f));
    f->path = path;
    f->text = read_all(path);
    if (f->text == NULL) {
        return -1;
    }
    char **fields = malloc(MAX_FIELDS * sizeof(char *));
    int64_t cap = 1024;
    f->rows = malloc((size_t)cap * sizeof(char **));
    f->line = malloc((size_t)cap * sizeof(int64_t));
    if (fields == NULL || f->rows == NULL || f->line == NULL) {
        fprintf(stderr, "nascent correlate: out of memory reading %s\n", path);
        free(fields);
        return -1;
    }
    char *p = f->text;
    int64_t line = 1;
    if (strncmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3; /* UTF-8 byte order mark */
    }
    int rc = 0;
    while (*p != '\0') {
        const int64_t at = line;
        const int n = split_record(path, &p, &line, fields);
        line++;
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 1 && fields[0][0] == '\0') {
            continue; /* blank line */
        }
        if (f->header == NULL) {
            f->n_cols = n;
            f->header = malloc((size_t)n * sizeof(char *));
            if (f->header == NULL) {
                rc = -1;
                break;
            }
            memcpy(f->header, fields, (size_t)n * sizeof(char *));
            continue;
        }
        if (n != f->n_cols) {
            fprintf(stderr, "%s:%lld: %d fields, but the header has %d\n", path, (long long)at, n,
                    f->n_cols);
            rc = -1;
            break;
        }
        if (f->n_rows == cap) {
            cap *= 2;
            char ***nr = realloc(f->rows, (size_t)cap * sizeof(char **));
            int64_t *nl = nr != NULL ? realloc(f->line, (size_t)cap * sizeof(int64_t)) : NULL;
            if (nr != NULL) {
                f->rows = nr;
            }
            if (nl == NULL) {
                rc = -1;
                break;
            }
            f->line = nl;
        }
        char **row = malloc((size_t)n * sizeof(char *));
        if (row == NULL) {
            rc = -1;
            break;
        }
        memcpy(row, fields, (size_t)n * sizeof(char *));
        f->rows[f->n_rows] = row;
        f->line[f->n_rows] = at;
        f->n_rows++;
    }
    free(fields);
    if (rc == 0 && f->header == NULL) {
        fprintf(stderr, "%s: empty file (no header line)\n", path);
        rc = -1;
    }
    return rc;
}

/* Column index of `name` (header name, else 1-based number); -1 with a message if absent. */
static int csv_column(const csv_file *f, const char *name) {
    for (int c = 0; c < f->n_cols; c++) {
        if (strcmp(f->header[c], name) == 0) {
            return c;
        }
    }
    char *end;
    const long k = strtol(name, &end, 10);
    if (*name != '\0' && *end == '\0' && k >= 1 && k <= f->n_cols) {
        return (int)k - 1;
    }
    fprintf(stderr, "%s: no column '%s' (columns:", f->path, name);
    for (int c = 0; c < f->n_cols && c < 40; c++) {
        fprintf(stderr, " %s", f->header[c]);
    }
    fprintf(stderr, "%s)\n", f->n_cols > 40 ? " ..." : "");
    return -1;
}

static int is_missing(const char *s) {
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return *s == '\0' || strcasecmp(s, "nan") == 0 || strcasecmp(s, "na") == 0 ||
           strcasecmp(s, "null") == 0 || strcasecmp(s, "none") == 0;
}

/* Parse row r, column c of f as a number (NAN when missing); -1 on text that is not a number. */
static int csv_number(const csv_file *f, int64_t r, int c, double *v) {
    const char *s = f->rows[r][c];
    if (is_missing(s)) {
        *v = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (*end == ' ' || *end == '\t') {
        end++;
    }
    if (end == s || *end != '\0') {
        fprintf(stderr, "%s:%lld: column %d ('%s'): '%s' is not a number\n", f->path,
                (long long)f->line[r], c + 1, f->header[c], s);
        return -1;
    }
    return 0;
}

/* "FILE:COL" split at the last ':'. */
static int split_spec(const char *spec, char *path, size_t size, const char **col) {
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon == spec || colon[1] == '\0' || (size_t)(colon - spec) >= size) {
        fprintf(stderr, "nascent correlate: '%s' is not FILE.csv:COLUMN\n", spec);
        return -1;
    }
    memcpy(path, spec, (size_t)(colon - spec));
    path[colon - spec] = '\0';
    *col = colon + 1;
    return 0;
}

typedef struct key_row {
    const char *key;
    int64_t row;
} key_row;

static int cmp_key(const void *x, const void *y) {
    const key_row *p = x, *q = y;
    const int c = strcmp(p->key, q->key);
    return c != 0 ? c : (p->row < q->row ? -1 : (p->row > q->row));
}

/* Sorted (key, row) index of column kc of f; NULL on a duplicate key when unique is set (message
 * printed). */
static key_row *key_index(const csv_file *f, int kc, int unique) {
    key_row *idx = malloc((size_t)(f->n_rows > 0 ? f->n_rows : 1) * sizeof(key_row));
    if (idx == NULL) {
        return NULL;
    }
    for (int64_t r = 0; r < f->n_rows; r++) {
        idx[r] = (key_row){f->rows[r][kc], r};
    }
    qsort(idx, (size_t)f->n_rows, sizeof(key_row), cmp_key);
    for (int64_t r = 1; unique && r < f->n_rows; r++) {
        if (strcmp(idx[r].key, idx[r - 1].key) == 0) {
            fprintf(stderr, "%s:%lld: key '%s' already on line %lld\n", f->path,
                    (long long)f->line[idx[r].row], idx[r].key, (long long)f->line[idx[r - 1].row]);
            free(idx);
            return NULL;
        }
    }
    return idx;
}

/* Pair the values: by row, or joined on `join`. Fills *xa, *xb (malloc'd), *n, *unmatched. */
static int pair_values(const csv_file *fa, int ca, const csv_file *fb, int cb, const char *join,
                       double **xa, double **xb, int64_t *n, int64_t *unmatched) {
    const int64_t cap = fa->n_rows > 0 ? fa->n_rows : 1;
    *xa = malloc((size_t)cap * sizeof(double));
    *xb = malloc((size_t)cap * sizeof(double));
    *n = *unmatched = 0;
    if (*xa == NULL || *xb == NULL) {
        return -1;
    }
    if (join == NULL) {
        if (fa->n_rows != fb->n_rows) {
            fprintf(stderr, "nascent correlate: %s has %lld rows but %s has %lld: pair them with "
                    "--join KEY\n", fa->path, (long long)fa->n_rows, fb->path, (long long)fb->n_rows);
            return -1;
        }
        for (int64_t r = 0; r < fa->n_rows; r++) {
            if (csv_number(fa, r, ca, *xa + r) != 0 || csv_number(fb, r, cb, *xb + r) != 0) {
                return -1;
            }
        }
        *n = fa->n_rows;
        return 0;
    }
    /* KEY, or KEY_A=KEY_B when the two files name the key column differently */
    char key_a[256];
    const char *eq = strchr(join, '=');
    snprintf(key_a, sizeof key_a, "%.*s", eq != NULL ? (int)(eq - join) : (int)strlen(join), join);
    const int ka = csv_column(fa, key_a), kb = ka >= 0 ? csv_column(fb, eq != NULL ? eq + 1 : join) : -1;
    if (ka < 0 || kb < 0) {
        return -1;
    }
    /* many-to-one: file a may list a key several times (a sample drawn with replacement), file
     * b (the ground truth) only once */
    key_row *ia = key_index(fa, ka, 0), *ib = ia != NULL ? key_index(fb, kb, 1) : NULL;
    /* matched rows of file b, indexed by row of file a (-1: no match), so the pairs come out in
     * file a's row order whatever the keys' sort order */
    int64_t *match = malloc((size_t)cap * sizeof(int64_t));
    int rc = ia != NULL && ib != NULL && match != NULL ? 0 : -1;
    for (int64_t r = 0; rc == 0 && r < fa->n_rows; r++) {
        match[r] = -1;
    }
    int64_t i = 0, j = 0, matched = 0, b_used = 0;
    int b_hit = 0;
    while (rc == 0 && i < fa->n_rows && j < fb->n_rows) {
        const int c = strcmp(ia[i].key, ib[j].key);
        if (c == 0) {
            match[ia[i].row] = ib[j].row;
            matched++;
            b_used += !b_hit;
            b_hit = 1;
            i++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
            b_hit = 0;
        }
    }
    for (int64_t r = 0; rc == 0 && r < fa->n_rows; r++) {
        if (match[r] >= 0) {
            if (csv_number(fa, r, ca, *xa + *n) != 0 || csv_number(fb, match[r], cb, *xb + *n) != 0) {
                rc = -1;
            }
            (*n)++;
        }
    }
    *unmatched = (fa->n_rows - matched) + (fb->n_rows - b_used);
    free(match);
    free(ia);
    free(ib);
    return rc;
}

static void json_num(FILE *out, double v) {
    if (isfinite(v)) {
        fprintf(out, "%.17g", v);
    } else {
        fputs("null", out);
    }
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: nascent correlate --a FILE.csv:COL --b FILE.csv:COL [--join KEY]\n"
            "                         [--k PCT[,PCT...]] [--json]\n"
            "  --a     the estimate (a proxy, short training, a predictor), higher = better\n"
            "  --b     the ground truth (e.g. final test accuracy), higher = better\n"
            "  --join  pair rows whose KEY column is equal (default: pair by row order);\n"
            "          KEY_A=KEY_B when the files name it differently\n"
            "  --k     the K%% of the top/bottom figures (default 1,5,10,50)\n"
            "  --json  one JSON object instead of text\n");
}

static int parse_ks(const char *s, double *ks, int *n_k) {
    *n_k = 0;
    while (*s != '\0') {
        char *end;
        const double v = strtod(s, &end);
        if (end == s || !(v > 0.0 && v <= 100.0) || *n_k == NAS_STATS_MAX_K) {
            fprintf(stderr, "nascent correlate: --k wants up to %d percentages in (0, 100], got '%s'\n",
                    NAS_STATS_MAX_K, s);
            return -1;
        }
        ks[(*n_k)++] = v / 100.0;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') {
            fprintf(stderr, "nascent correlate: bad --k list near '%s'\n", end);
            return -1;
        }
    }
    return *n_k > 0 ? 0 : -1;
}

static void print_report(const char *sa, const char *sb, const nas_stats_report *r,
                         int64_t unmatched, int json) {
    if (json) {
        printf("{\"a\": ");
        cli_json_string(stdout, sa);
        printf(", \"b\": ");
        cli_json_string(stdout, sb);
        printf(", \"n\": %lld, \"dropped\": %lld, \"unmatched\": %lld, ", (long long)r->n,
               (long long)r->n_dropped, (long long)unmatched);
        printf("\"kendall_tau\": ");
        json_num(stdout, r->kendall_tau);
        printf(", \"spearman_rho\": ");
        json_num(stdout, r->spearman_rho);
        printf(", \"pearson_r\": ");
        json_num(stdout, r->pearson_r);
        printf(", \"at_k\": [");
        for (int i = 0; i < r->n_k; i++) {
            const nas_stats_at_k *a = &r->at[i];
            printf("%s{\"k_pct\": %g, \"k\": %lld, \"precision_top\": ", i ? ", " : "",
                   a->k_frac * 100.0, (long long)a->k);
            json_num(stdout, a->precision_top);
            printf(", \"precision_bottom\": ");
            json_num(stdout, a->precision_bottom);
            printf(", \"best_rank\": ");
            json_num(stdout, a->best_rank);
            printf(", \"worst_rank\": ");
            json_num(stdout, a->worst_rank);
            printf("}");
        }
        printf("]}\n");
        return;
    }
    printf("a: %s\nb: %s\n", sa, sb);
    printf("pairs %lld (dropped %lld missing, %lld unmatched)\n", (long long)r->n,
           (long long)r->n_dropped, (long long)unmatched);
    printf("kendall_tau  %.4f\nspearman_rho %.4f\npearson_r    %.4f\n", r->kendall_tau,
           r->spearman_rho, r->pearson_r);
    printf("%6s %7s %9s %9s %9s %9s\n", "K%", "k", "P@top", "P@bottom", "BR@K", "WR@K");
    for (int i = 0; i < r->n_k; i++) {
        const nas_stats_at_k *a = &r->at[i];
        printf("%6g %7lld %9.4f %9.4f %9.4f %9.4f\n", a->k_frac * 100.0, (long long)a->k,
               a->precision_top, a->precision_bottom, a->best_rank, a->worst_rank);
    }
}

int cmd_correlate(int argc, char **argv) {
    const char *spec_a = NULL, *spec_b = NULL, *join = NULL;
    int json = 0, n_k = 4;
    double ks[NAS_STATS_MAX_K] = {0.01, 0.05, 0.10, 0.50};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const int has = i + 1 < argc;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
        } else if (strcmp(o, "--a") == 0 && has) {
            spec_a = argv[++i];
        } else if (strcmp(o, "--b") == 0 && has) {
            spec_b = argv[++i];
        } else if (strcmp(o, "--join") == 0 && has) {
            join = argv[++i];
        } else if (strcmp(o, "--k") == 0 && has) {
            if (parse_ks(argv[++i], ks, &n_k) != 0) {
                return 2;
            }
        } else {
            fprintf(stderr, "nascent correlate: unknown or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (spec_a == NULL || spec_b == NULL) {
        fprintf(stderr, "nascent correlate: --a and --b are required\n");
        usage(stderr);
        return 2;
    }
    char path_a[4096], path_b[4096];
    const char *col_a, *col_b;
    if (split_spec(spec_a, path_a, sizeof path_a, &col_a) != 0 ||
        split_spec(spec_b, path_b, sizeof path_b, &col_b) != 0) {
        return 2;
    }
    csv_file fa, fb;
    memset(&fb, 0, sizeof fb);
    int rc = 2;
    double *xa = NULL, *xb = NULL;
    int64_t n = 0, unmatched = 0;
    if (csv_load(path_a, &fa) == 0 && csv_load(path_b, &fb) == 0) {
        const int ca = csv_column(&fa, col_a), cb = ca >= 0 ? csv_column(&fb, col_b) : -1;
        if (ca >= 0 && cb >= 0 &&
            pair_values(&fa, ca, &fb, cb, join, &xa, &xb, &n, &unmatched) == 0) {
            nas_ctx *ctx = nas_ctx_new();
            nas_stats_report rep;
            if (ctx == NULL) {
                rc = 1;
            } else if (nas_stats_correlate(ctx, xa, xb, n, n_k, ks, &rep) != NAS_OK) {
                fprintf(stderr, "nascent correlate: %s\n", nas_errmsg(ctx));
                rc = 1;
            } else {
                print_report(spec_a, spec_b, &rep, unmatched, json);
                rc = 0;
            }
            nas_ctx_free(ctx);
        }
    }
    free(xa);
    free(xb);
    csv_free(&fa);
    csv_free(&fb);
    return rc;
}
