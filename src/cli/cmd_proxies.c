/* cmd_proxies.c - `nascent proxies`: zero-cost proxy scores of one architecture (JSON) or of many
 * (CSV), from one minibatch at initialisation.
 *
 *   nascent proxies --space S --arch TEXT [--proxy NAME[,NAME...]|all] [--dataset D|--synthetic]
 *                   [--batch B] [--seed S] [--json]
 *   nascent proxies --space S --sample N|--all --out FILE.csv [same options]
 *
 * Weights are initialised from --seed (nas_params_init) and the minibatch is drawn from --seed
 * (the first shuffled batch of the training split, or Gaussian inputs and uniform labels with
 * --synthetic, the default), so scores are reproducible. A dataset whose images do not have the
 * network's input shape (Fashion-MNIST 1x28x28 into the 3x32x32 CIFAR networks) is zero-padded
 * (or centre-cropped) and its channels repeated. One workspace is reused for all architectures.
 * --out appends to a file an earlier run of the same command left (resume; see open_results). */
#include "cli_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct proxy_opts {
    const char *space, *arch, *dataset, *data_dir, *out, *export_dir;
    int64_t sample; /* -1: off */
    int all, json, batch, threads, repeat;
    uint64_t seed;
    uint32_t mask;
    nas_build_opts build;
} proxy_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: nascent proxies --space S --arch TEXT [options] [--json]\n"
            "       nascent proxies --space S --sample N|--all --out FILE.csv [options]\n"
            "options:\n"
            "  --proxy NAME[,NAME...]|all   grad_norm snip grasp fisher synflow jacob_cov nwot\n"
            "                               params macs (default all)\n"
            "  --dataset D | --synthetic    minibatch from a dataset (fashion-mnist, cifar10, ...)\n"
            "                               or seeded Gaussian inputs (default)\n"
            "  --data-dir DIR               the dataset's directory (default: its usual place)\n"
            "  --batch B                    minibatch size (default 64)\n"
            "  --seed S                     weights and minibatch seed (default 42)\n"
            "  --channels-mult X, --cells N network size knobs of the space\n"
            "  --threads T                  threads (default: all cores)\n"
            "  --repeat R                   single architecture: build and score R times and\n"
            "                               report the median seconds per architecture\n"
            "  --export DIR                 also write DIR/weights.nas, DIR/x.f32, DIR/y.i32\n"
            "                               (single architecture; for the PyTorch check)\n"
            "  --out FILE.csv               many architectures; a FILE an earlier run of the same\n"
            "                               command left is resumed, not overwritten\n");
}

static int parse_mask(const char *s, uint32_t *mask) {
    *mask = 0;
    if (strcmp(s, "all") == 0) {
        *mask = NAS_PROXY_ALL;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        const int p = nas_proxy_from_name(tok);
        if (p < 0) {
            fprintf(stderr, "nascent proxies: unknown proxy '%s' (known:", tok);
            for (int i = 0; i < NAS_PROXY_COUNT; i++) {
                fprintf(stderr, " %s", nas_proxy_name((nas_proxy)i));
            }
            fprintf(stderr, ")\n");
            return -1;
        }
        *mask |= 1u << p;
    }
    return *mask != 0 ? 0 : -1;
}

static int parse_i64(const char *opt, const char *s, int64_t lo, int64_t *v) {
    char *end;
    errno = 0;
    const long long x = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || x < lo) {
        fprintf(stderr, "nascent proxies: %s wants an integer >= %lld, got '%s'\n", opt,
                (long long)lo, s);
        return -1;
    }
    *v = x;
    return 0;
}

static int parse_args(int argc, char **argv, proxy_opts *o) {
    memset(o, 0, sizeof(*o));
    o->sample = -1;
    o->batch = 64;
    o->seed = 42;
    o->mask = NAS_PROXY_ALL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has = i + 1 < argc;
        int64_t v = 0;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (strcmp(a, "--synthetic") == 0) {
            o->dataset = NULL;
        } else if (strcmp(a, "--all") == 0) {
            o->all = 1;
        } else if (!has) {
            fprintf(stderr, "nascent proxies: unknown option or missing value: '%s'\n", a);
            return -1;
        } else if (strcmp(a, "--space") == 0) {
            o->space = argv[++i];
        } else if (strcmp(a, "--arch") == 0) {
            o->arch = argv[++i];
        } else if (strcmp(a, "--dataset") == 0) {
            o->dataset = argv[++i];
        } else if (strcmp(a, "--data-dir") == 0) {
            o->data_dir = argv[++i];
        } else if (strcmp(a, "--out") == 0) {
            o->out = argv[++i];
        } else if (strcmp(a, "--export") == 0) {
            o->export_dir = argv[++i];
        } else if (strcmp(a, "--proxy") == 0) {
            if (parse_mask(argv[++i], &o->mask) != 0) {
                return -1;
            }
        } else if (strcmp(a, "--sample") == 0) {
            if (parse_i64(a, argv[++i], 1, &o->sample) != 0) {
                return -1;
            }
        } else if (strcmp(a, "--batch") == 0) {
            if (parse_i64(a, argv[++i], 2, &v) != 0 || v > 4096) {
                fprintf(stderr, "nascent proxies: --batch must be in 2..4096\n");
                return -1;
            }
            o->batch = (int)v;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_i64(a, argv[++i], 0, &v) != 0) {
                return -1;
            }
            o->seed = (uint64_t)v;
        } else if (strcmp(a, "--repeat") == 0) {
            if (parse_i64(a, argv[++i], 1, &v) != 0) {
                return -1;
            }
            o->repeat = (int)v;
        } else if (strcmp(a, "--threads") == 0) {
            if (parse_i64(a, argv[++i], 0, &v) != 0) {
                return -1;
            }
            o->threads = (int)v;
        } else if (strcmp(a, "--cells") == 0) {
            if (parse_i64(a, argv[++i], 1, &v) != 0) {
                return -1;
            }
            o->build.cells = (int)v;
        } else if (strcmp(a, "--channels-mult") == 0) {
            char *end;
            o->build.channels_mult = strtod(argv[++i], &end);
            if (*end != '\0' || !(o->build.channels_mult > 0.0)) {
                fprintf(stderr, "nascent proxies: --channels-mult wants a positive number\n");
                return -1;
            }
        } else {
            fprintf(stderr, "nascent proxies: unknown option '%s'\n", a);
            return -1;
        }
    }
    if (o->space == NULL) {
        fprintf(stderr, "nascent proxies: --space is required\n");
        return -1;
    }
    const int modes = (o->arch != NULL) + (o->sample > 0) + o->all;
    if (modes != 1) {
        fprintf(stderr, "nascent proxies: give exactly one of --arch, --sample N, --all\n");
        return -1;
    }
    if (o->arch == NULL && o->out == NULL) {
        fprintf(stderr, "nascent proxies: --sample and --all write a CSV: give --out FILE.csv\n");
        return -1;
    }
    return 0;
}

/* The minibatch in the network's input shape. */
typedef struct batch_data {
    float *x;
    int32_t *y;
    int64_t n;
} batch_data;

/* Copy an image of shape (dc, dh, dw) into (c, h, w): channels repeated, spatial centre-padded
 * with zeros or centre-cropped. */
static void fit_image(const float *src, int dc, int dh, int dw, float *dst, int c, int h, int w) {
    const int oy = (h - dh) / 2, ox = (w - dw) / 2;
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (int64_t)(ch % dc) * dh * dw;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                const int sy = y - oy, sx = x - ox;
                dst[((int64_t)ch * h + y) * w + x] =
                    sy >= 0 && sy < dh && sx >= 0 && sx < dw ? s[sy * dw + sx] : 0.0f;
            }
        }
    }
}

static int load_batch(nas_ctx *ctx, const proxy_opts *o, nas_model_shape sh, batch_data *b) {
    const int64_t per = (int64_t)sh.in_c * sh.in_h * sh.in_w;
    b->n = o->batch;
    b->x = malloc((size_t)(b->n * per) * sizeof(float));
    b->y = malloc((size_t)b->n * sizeof(int32_t));
    if (b->x == NULL || b->y == NULL) {
        fprintf(stderr, "nascent proxies: out of memory for the minibatch\n");
        return 1;
    }
    if (o->dataset == NULL) {
        nas_rng rx = nas_rng_make(o->seed, 1001), ry = nas_rng_make(o->seed, 1002);
        nas_rng_fill_normal(&rx, b->x, b->n * per, 0.0f, 1.0f);
        for (int64_t i = 0; i < b->n; i++) {
            b->y[i] = (int32_t)nas_rng_below(&ry, sh.classes);
        }
        return 0;
    }
    nas_dataset *d = NULL;
    nas_loader *l = NULL;
    nas_status st = nas_dataset_open(ctx, o->dataset, o->data_dir, 0, &d);
    if (st == NAS_OK) {
        nas_data_opts opts;
        nas_data_opts_default(d, &opts);
        opts.shuffle = 1;
        opts.prefetch = 0;
        opts.seed = o->seed;
        st = nas_loader_new(d, NULL, 0, o->batch, &opts, &l);
    }
    if (st != NAS_OK) {
        fprintf(stderr, "nascent proxies: %s\n", nas_errmsg(ctx));
        nas_loader_free(l);
        nas_dataset_free(d);
        return st == NAS_ERR_ARG || st == NAS_ERR_FORMAT || st == NAS_ERR_IO ? 2 : 1;
    }
    const nas_model_shape ds = nas_dataset_shape(d);
    nas_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    const int64_t got = nas_loader_next(l, &x, &y);
    int rc = 0;
    if (got < b->n) {
        fprintf(stderr, "nascent proxies: dataset %s has fewer than %d examples\n", o->dataset,
                o->batch);
        rc = 2;
    } else if (ds.classes > sh.classes) {
        fprintf(stderr, "nascent proxies: dataset %s has %d classes, the network %d\n", o->dataset,
                ds.classes, sh.classes);
        rc = 2;
    } else {
        const int64_t dper = (int64_t)ds.in_c * ds.in_h * ds.in_w;
        for (int64_t i = 0; i < b->n; i++) {
            fit_image(x + i * dper, ds.in_c, ds.in_h, ds.in_w, b->x + i * per, sh.in_c, sh.in_h,
                      sh.in_w);
            b->y[i] = y[i];
        }
    }
    nas_loader_free(l);
    nas_dataset_free(d);
    return rc;
}

static int write_raw(const char *dir, const char *name, const void *p, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, bytes, f) != bytes) {
        fprintf(stderr, "nascent proxies: cannot write %s: %s\n", path, strerror(errno));
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Build and initialise the network of architecture a. */
static nas_status build(nas_ctx *ctx, const nas_space *s, const nas_arch *a, const proxy_opts *o,
                        nas_model **m) {
    nas_status st = nas_space_build(ctx, s, a, &o->build, m);
    if (st == NAS_OK) {
        nas_params_init(nas_model_params(*m), o->seed);
    }
    return st;
}

static void print_json(const double *scores, uint32_t mask, const char *arch, double seconds) {
    printf("{\"arch\": ");
    cli_json_string(stdout, arch);
    printf(", \"seconds\": %.6f", seconds);
    for (int i = 0; i < NAS_PROXY_COUNT; i++) {
        if (mask & (1u << i)) {
            printf(", \"%s\": ", nas_proxy_name((nas_proxy)i));
            if (scores[i] == scores[i] && scores[i] - scores[i] == 0.0) {
                printf("%.17g", scores[i]);
            } else {
                printf("null");
            }
        }
    }
    printf("}\n");
}

static int score_one(nas_ctx *ctx, const nas_space *s, nas_proxies *pr, const proxy_opts *o,
                     const batch_data *b) {
    nas_arch a;
    if (nas_space_decode(ctx, s, o->arch, &a) != NAS_OK) {
        fprintf(stderr, "nascent proxies: %s\n", nas_errmsg(ctx));
        return 2;
    }
    nas_model *m = NULL;
    double scores[NAS_PROXY_COUNT] = {0};
    double times[64];
    const int reps = o->repeat > 1 ? (o->repeat < 64 ? o->repeat : 64) : 1;
    nas_status st = NAS_OK;
    for (int r = 0; r < reps - 1 && st == NAS_OK; r++) {
        const double t0 = nas_now();
        st = build(ctx, s, &a, o, &m);
        if (st == NAS_OK) {
            st = nas_proxies_score(pr, m, b->x, b->y, b->n, o->mask, scores);
        }
        nas_model_free(m);
        m = NULL;
        times[r] = nas_now() - t0;
    }
    const double t_last = nas_now();
    if (st == NAS_OK) {
        st = build(ctx, s, &a, o, &m);
    }
    if (st == NAS_OK && o->export_dir != NULL) {
        char path[4096];
        snprintf(path, sizeof path, "%s/weights.nas", o->export_dir);
        const nas_model_shape sh = nas_model_get_shape(m);
        const int64_t per = (int64_t)sh.in_c * sh.in_h * sh.in_w;
        st = nas_weights_save(nas_model_params(m), path);
        if (st == NAS_OK &&
            (write_raw(o->export_dir, "x.f32", b->x, (size_t)(b->n * per) * sizeof(float)) != 0 ||
             write_raw(o->export_dir, "y.i32", b->y, (size_t)b->n * sizeof(int32_t)) != 0)) {
            nas_model_free(m);
            return 1;
        }
    }
    if (st == NAS_OK) {
        st = nas_proxies_score(pr, m, b->x, b->y, b->n, o->mask, scores);
    }
    times[reps - 1] = nas_now() - t_last;
    nas_model_free(m);
    if (st != NAS_OK) {
        fprintf(stderr, "nascent proxies: %s: %s\n", o->arch, nas_errmsg(ctx));
        return 1;
    }
    /* median seconds per architecture (insertion sort of at most 64) */
    for (int i = 1; i < reps; i++) {
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            const double t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    }
    const double median = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    char text[NAS_ARCH_TEXT_MAX];
    if (nas_space_encode(s, &a, text, sizeof text) != NAS_OK) {
        snprintf(text, sizeof text, "%s", o->arch);
    }
    if (o->json) {
        print_json(scores, o->mask, text, median);
    } else {
        for (int i = 0; i < NAS_PROXY_COUNT; i++) {
            if (o->mask & (1u << i)) {
                printf("%-10s %.10g\n", nas_proxy_name((nas_proxy)i), scores[i]);
            }
        }
        printf("%-10s %.6f\n", "seconds", median);
    }
    return 0;
}

/* The rows of an earlier run of the same command in the CSV file: complete lines only. */
typedef struct done_rows {
    char **lines; /* row i without its newline, i = 0 .. n - 1 */
    int64_t n;
} done_rows;

static void done_rows_free(done_rows *d) {
    for (int64_t i = 0; i < d->n; i++) {
        free(d->lines[i]);
    }
    free(d->lines);
    d->lines = NULL;
    d->n = 0;
}

/* Open the results file for appending. A new file gets the header; an existing one must have
 * the same header (else exit code 2, the file untouched) and keeps its complete rows 0, 1, ...
 * (an interrupted run's partial last line is cut off), which the loop then skips: a killed or
 * extended run resumes instead of overwriting finished scores. */
static int open_results(const char *path, const char *header, FILE **out, done_rows *d) {
    *out = NULL;
    FILE *f = fopen(path, "r+");
    if (f == NULL && errno == ENOENT) {
        f = fopen(path, "w");
        if (f != NULL && fputs(header, f) >= 0 && fflush(f) == 0) {
            *out = f;
            return 0;
        }
    }
    if (f == NULL) {
        fprintf(stderr, "nascent proxies: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len = getline(&line, &cap, f);
    if (len < 0 && !ferror(f)) { /* empty: killed before the header was written */
        free(line);
        if (fputs(header, f) < 0 || fflush(f) != 0) {
            fprintf(stderr, "nascent proxies: cannot write %s: %s\n", path, strerror(errno));
            fclose(f);
            return 1;
        }
        *out = f;
        return 0;
    }
    if (len < 0 || strcmp(line, header) != 0) {
        fprintf(stderr, "nascent proxies: %s exists with other columns than this run's (%.*s): "
                "delete it or choose another --out\n", path, (int)strlen(header) - 1, header);
        free(line);
        fclose(f);
        return 2;
    }
    long keep = ftell(f);
    while ((len = getline(&line, &cap, f)) > 0 && line[len - 1] == '\n') {
        char *end = NULL;
        const long long idx = strtoll(line, &end, 10);
        if (end == line || *end != ',' || idx != d->n) {
            break;
        }
        char **grown = realloc(d->lines, (size_t)(d->n + 1) * sizeof(char *));
        if (grown == NULL) {
            break; /* out of memory: the rows not kept are scored again */
        }
        d->lines = grown;
        line[len - 1] = '\0';
        if ((d->lines[d->n] = strdup(line)) == NULL) {
            break;
        }
        d->n++;
        keep = ftell(f);
    }
    free(line);
    if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0 || fseek(f, keep, SEEK_SET) != 0) {
        fprintf(stderr, "nascent proxies: cannot resume %s: %s\n", path, strerror(errno));
        fclose(f);
        return 1;
    }
    *out = f;
    return 0;
}

/* "i,<arch as a CSV field>," - how row i of this run begins (malloc'd). */
static char *row_prefix(int64_t i, const char *text) {
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    if (m == NULL) {
        return NULL;
    }
    fprintf(m, "%lld,", (long long)i);
    cli_csv_field(m, text);
    fputc(',', m);
    fclose(m);
    return buf;
}

/* Row i of an earlier run must be this run's architecture i (same --seed, --sample / --all). */
static int check_done_row(const char *path, const done_rows *d, int64_t i, const char *text) {
    char *prefix = row_prefix(i, text);
    const int same = prefix != NULL && strncmp(d->lines[i], prefix, strlen(prefix)) == 0;
    free(prefix);
    if (!same) {
        fprintf(stderr, "nascent proxies: row %lld of %s is not this run's architecture %lld (%s); "
                "was it written with another --seed, --sample or --all? Delete it or choose "
                "another --out\n", (long long)i, path, (long long)i, text);
        return 2;
    }
    return 0;
}

static int score_many(nas_ctx *ctx, const nas_space *s, nas_proxies *pr, const proxy_opts *o,
                      const batch_data *b) {
    char header[512];
    int hl = snprintf(header, sizeof header, "index,arch");
    for (int i = 0; i < NAS_PROXY_COUNT; i++) {
        if (o->mask & (1u << i)) {
            hl += snprintf(header + hl, sizeof header - (size_t)hl, ",%s",
                           nas_proxy_name((nas_proxy)i));
        }
    }
    snprintf(header + hl, sizeof header - (size_t)hl, ",seconds\n");
    const int64_t n = o->all ? nas_space_size(s) : o->sample;
    if (n < 0) {
        fprintf(stderr, "nascent proxies: --all: the space is too large to enumerate\n");
        return 2;
    }
    FILE *f = NULL;
    done_rows done = {NULL, 0};
    int rc = open_results(o->out, header, &f, &done);
    if (rc != 0) {
        return rc;
    }
    if (done.n > 0) {
        fprintf(stderr, "proxies: %s has %lld rows already; resuming\n", o->out, (long long)done.n);
    }
    nas_rng rng = nas_rng_make(o->seed, 1003);
    const double t_start = nas_now();
    for (int64_t i = 0; i < n && rc == 0; i++) {
        nas_arch a;
        if (o->all) {
            if (nas_space_enumerate(s, i, &a) != NAS_OK) {
                fprintf(stderr, "nascent proxies: %s\n", nas_errmsg(ctx));
                rc = 1;
                break;
            }
        } else {
            nas_space_sample(s, &rng, &a);
        }
        char text[NAS_ARCH_TEXT_MAX];
        nas_space_encode(s, &a, text, sizeof text);
        if (i < done.n) {
            rc = check_done_row(o->out, &done, i, text);
            continue;
        }
        nas_model *m = NULL;
        double scores[NAS_PROXY_COUNT] = {0};
        const double t0 = nas_now();
        nas_status st = build(ctx, s, &a, o, &m);
        if (st == NAS_OK) {
            st = nas_proxies_score(pr, m, b->x, b->y, b->n, o->mask, scores);
        }
        const double secs = nas_now() - t0;
        nas_model_free(m);
        if (st != NAS_OK) {
            fprintf(stderr, "nascent proxies: %s: %s\n", text, nas_errmsg(ctx));
            rc = 1;
            break;
        }
        fprintf(f, "%lld,", (long long)i);
        cli_csv_field(f, text);
        for (int k = 0; k < NAS_PROXY_COUNT; k++) {
            if (o->mask & (1u << k)) {
                fprintf(f, ",%.10g", scores[k]);
            }
        }
        fprintf(f, ",%.6f\n", secs);
        fflush(f); /* a killed run keeps every finished row */
        if ((i + 1) % 500 == 0 && !o->json) {
            fprintf(stderr, "proxies: %lld/%lld architectures, %.1f s\n", (long long)(i + 1),
                    (long long)n, nas_now() - t_start);
        }
    }
    done_rows_free(&done);
    if (fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "nascent proxies: cannot write %s\n", o->out);
        rc = 1;
    }
    return rc;
}

int cmd_proxies(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    }
    proxy_opts o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    nas_set_threads(o.threads);
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        return 1;
    }
    nas_space *s = NULL;
    nas_proxies *pr = NULL;
    batch_data b = {NULL, NULL, 0};
    int rc = 0;
    if (nas_space_open(ctx, o.space, &s) != NAS_OK || nas_proxies_new(ctx, &pr) != NAS_OK) {
        fprintf(stderr, "nascent proxies: %s\n", nas_errmsg(ctx));
        rc = 2;
    }
    if (rc == 0) {
        /* the input shape of the space's networks under these options (the default architecture
         * exists in every space; enumerate does not, e.g. mbnet) */
        nas_arch a;
        nas_model *m = NULL;
        if (nas_space_decode(ctx, s, "default", &a) != NAS_OK ||
            nas_space_build(ctx, s, &a, &o.build, &m) != NAS_OK) {
            fprintf(stderr, "nascent proxies: %s\n", nas_errmsg(ctx));
            rc = 2;
        } else {
            rc = load_batch(ctx, &o, nas_model_get_shape(m), &b);
        }
        nas_model_free(m);
    }
    if (rc == 0) {
        rc = o.arch != NULL ? score_one(ctx, s, pr, &o, &b) : score_many(ctx, s, pr, &o, &b);
    }
    free(b.x);
    free(b.y);
    nas_proxies_free(pr);
    nas_space_free(s);
    nas_ctx_free(ctx);
    return rc;
}
