/* cmd_latency.c - `nascent latency`: measure an architecture's latency in nascent's engine on
 * this machine, build and evaluate per-layer lookup tables, fit and evaluate learned latency
 * predictors on a device table. */
#include "cli_int.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TABLE "data/nb201_latency/nb201_latency_ms.csv"

typedef struct latency_opts {
    const char *space, *arch, *lut_out, *lut_in, *eval_lut, *fit, *table_col, *table_file;
    const char *predictor_out, *predictor_in;
    int batch, threads, repeats, archs, patience, samples, json, classes, in_c, in_h, in_w;
    long long measure; /* --fit-predictor on this many architectures measured here */
    long long train;
    unsigned long long seed;
} latency_opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage:\n"
            "  nascent latency --space S --arch TEXT [--batch B] [--threads T] [--repeats N]\n"
            "                  [--lut LUT.json] [--predictor P.json] [--input CxHxW] [--classes N] [--json]\n"
            "  nascent latency --build-lut --space S --out LUT.json [--batch B] [--archs N] [--repeats N]\n"
            "                  [--patience P]   (times up to N sampled architectures that bring a new\n"
            "                  layer; stops after P samples in a row bring none)\n"
            "  nascent latency --eval-lut LUT.json --space S [--samples N] [--repeats N] [--json]\n"
            "  nascent latency --fit-predictor linear|mlp --space nb201 --table COLUMN [--table-file CSV]\n"
            "                  [--train N] [--seed S] [--out P.json] [--json]\n"
            "  nascent latency --fit-predictor linear|mlp --space S --measure N --train K [--repeats R]\n"
            "                  [--seed S] [--out P.json] [--json]   (measures N distinct sampled\n"
            "                  architectures here, fits on K of them, scores on the other N - K)\n"
            "Measures median latency (ms) after warm-up in nascent's engine on this machine; a LUT sums\n"
            "per-layer times; predictors are fitted on a device column of %s\n"
            "or on latency measured here.\n",
            DEFAULT_TABLE);
}

static int parse_input(const char *s, latency_opts *o) {
    return sscanf(s, "%dx%dx%d", &o->in_c, &o->in_h, &o->in_w) == 3 && o->in_c > 0 &&
           o->in_h > 0 && o->in_w > 0;
}

static int parse(int argc, char **argv, latency_opts *o) {
    static const struct option longs[] = {
        {"space", required_argument, 0, 's'},      {"arch", required_argument, 0, 'a'},
        {"batch", required_argument, 0, 'b'},      {"threads", required_argument, 0, 't'},
        {"repeats", required_argument, 0, 'r'},    {"build-lut", no_argument, 0, 'B'},
        {"out", required_argument, 0, 'o'},        {"lut", required_argument, 0, 'l'},
        {"eval-lut", required_argument, 0, 'E'},   {"archs", required_argument, 0, 'A'},
        {"samples", required_argument, 0, 'n'},    {"fit-predictor", required_argument, 0, 'F'},
        {"table", required_argument, 0, 'T'},      {"table-file", required_argument, 0, 'C'},
        {"train", required_argument, 0, 'N'},      {"seed", required_argument, 0, 'S'},
        {"predictor", required_argument, 0, 'P'},  {"input", required_argument, 0, 'i'},
        {"classes", required_argument, 0, 'c'},    {"json", no_argument, 0, 'j'},
        {"patience", required_argument, 0, 'p'},   {"measure", required_argument, 0, 'M'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int build_lut = 0, c;
    *o = (latency_opts){.batch = 1, .repeats = 30, .archs = 60, .patience = 100, .samples = 200, .train = 900,
                        .table_file = DEFAULT_TABLE};
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 's': o->space = optarg; break;
            case 'a': o->arch = optarg; break;
            case 'b': o->batch = atoi(optarg); break;
            case 't': o->threads = atoi(optarg); break;
            case 'r': o->repeats = atoi(optarg); break;
            case 'B': build_lut = 1; break;
            case 'o': o->lut_out = optarg; o->predictor_out = optarg; break;
            case 'l': o->lut_in = optarg; break;
            case 'E': o->eval_lut = optarg; break;
            case 'A': o->archs = atoi(optarg); break;
            case 'p': o->patience = atoi(optarg); break;
            case 'n': o->samples = atoi(optarg); break;
            case 'F': o->fit = optarg; break;
            case 'T': o->table_col = optarg; break;
            case 'C': o->table_file = optarg; break;
            case 'N': o->train = atoll(optarg); break;
            case 'M': o->measure = atoll(optarg); break;
            case 'S': o->seed = strtoull(optarg, NULL, 10); break;
            case 'P': o->predictor_in = optarg; break;
            case 'i':
                if (!parse_input(optarg, o)) {
                    fprintf(stderr, "nascent latency: --input wants CxHxW, got '%s'\n", optarg);
                    return -1;
                }
                break;
            case 'c': o->classes = atoi(optarg); break;
            case 'j': o->json = 1; break;
            case 'h': usage(stdout); exit(0);
            default: usage(stderr); return -1;
        }
    }
    if (!build_lut) {
        o->lut_out = NULL;
    }
    if (o->fit == NULL) {
        o->predictor_out = NULL;
    }
    if (o->batch < 1 || o->repeats < 1 || o->archs < 1 || o->patience < 1 || o->samples < 2) {
        fprintf(stderr, "nascent latency: --batch, --repeats, --archs, --patience must be >= 1, "
                "--samples >= 2\n");
        return -1;
    }
    if (o->space == NULL) {
        fprintf(stderr, "nascent latency: --space is required\n");
        return -1;
    }
    return 0;
}

static int fail(nas_ctx *ctx, const char *what) {
    fprintf(stderr, "nascent latency: %s: %s\n", what, nas_errmsg(ctx));
    return 1;
}

static nas_build_opts build_opts(const latency_opts *o) {
    nas_build_opts b = {0};
    b.shape = (nas_model_shape){o->in_c, o->in_h, o->in_w, o->classes};
    return b;
}

static void print_error_stats(const char *what, const nas_latency_error *e, int json) {
    if (json) {
        printf("{\"estimate\": \"%s\", \"spearman\": %.4f, \"kendall\": %.4f, \"mape\": %.2f, "
               "\"n_train\": %lld, \"n_test\": %lld, \"n_uncovered\": %lld}\n",
               what, e->spearman, e->kendall, e->mape, (long long)e->n_train, (long long)e->n_test,
               (long long)e->n_uncovered);
    } else {
        printf("%s: spearman %.4f  kendall %.4f  MAPE %.2f%%  (train %lld, test %lld, skipped %lld "
               "with layers the LUT lacks)\n", what, e->spearman, e->kendall, e->mape,
               (long long)e->n_train, (long long)e->n_test, (long long)e->n_uncovered);
    }
}

static int run_build_lut(nas_ctx *ctx, nas_space *space, const latency_opts *o) {
    const nas_build_opts b = build_opts(o);
    nas_lut *lut = NULL;
    if (nas_lut_build(ctx, space, &b, o->batch, o->archs, o->patience, o->repeats, o->seed, &lut) !=
        NAS_OK) {
        return fail(ctx, "building the LUT");
    }
    const nas_status st = nas_lut_save(lut, o->lut_out);
    printf("LUT: %lld layers at batch %d written to %s\n", (long long)nas_lut_size(lut), o->batch,
           o->lut_out);
    nas_lut_free(lut);
    return st == NAS_OK ? 0 : fail(ctx, "writing the LUT");
}

static int run_eval_lut(nas_ctx *ctx, nas_space *space, const latency_opts *o) {
    nas_lut *lut = NULL;
    if (nas_lut_load(ctx, o->eval_lut, &lut) != NAS_OK) {
        return fail(ctx, "reading the LUT");
    }
    const nas_build_opts b = build_opts(o);
    nas_latency_error e;
    const nas_status st = nas_lut_evaluate(lut, ctx, space, &b, o->samples, o->repeats, o->seed, &e);
    nas_lut_free(lut);
    if (st != NAS_OK) {
        return fail(ctx, "evaluating the LUT");
    }
    print_error_stats("lut", &e, o->json);
    return 0;
}

static int run_fit(nas_ctx *ctx, nas_space *space, const latency_opts *o) {
    nas_latpred_kind kind;
    if (strcmp(o->fit, "linear") == 0) {
        kind = NAS_LATPRED_LINEAR;
    } else if (strcmp(o->fit, "mlp") == 0) {
        kind = NAS_LATPRED_MLP;
    } else {
        fprintf(stderr, "nascent latency: --fit-predictor takes linear or mlp, not '%s'\n", o->fit);
        return 2;
    }
    if ((o->table_col == NULL) == (o->measure == 0)) {
        fprintf(stderr, "nascent latency: --fit-predictor needs one of --table COLUMN (e.g. "
                "gold_6226) or --measure N\n");
        return 2;
    }
    nas_latpred *p = NULL;
    nas_latency_error e;
    nas_status st;
    if (o->measure > 0) {
        if (o->train >= o->measure) {
            fprintf(stderr, "nascent latency: --train %lld must be below --measure %lld (the rest "
                    "are the test set)\n", o->train, o->measure);
            return 2;
        }
        const nas_build_opts b = build_opts(o);
        st = nas_latpred_evaluate_measured(ctx, space, &b, kind, o->train, o->measure - o->train,
                                           o->repeats, o->seed, &p, &e);
    } else {
        nas_device_table *t = NULL;
        if (nas_device_table_load(ctx, o->table_file, "arch_str", o->table_col, &t) != NAS_OK) {
            fprintf(stderr, "nascent latency: %s\n", nas_errmsg(ctx));
            return 2;
        }
        st = nas_latpred_evaluate_table(ctx, space, t, kind, o->train, o->seed, &p, &e);
        nas_device_table_free(t);
    }
    if (st != NAS_OK) {
        return fail(ctx, "fitting the predictor");
    }
    print_error_stats(o->fit, &e, o->json);
    if (o->predictor_out != NULL) {
        st = nas_latpred_save(p, o->predictor_out);
    }
    nas_latpred_free(p);
    return st == NAS_OK ? 0 : fail(ctx, "writing the predictor");
}

static int run_measure(nas_ctx *ctx, nas_space *space, const latency_opts *o) {
    if (o->arch == NULL) {
        fprintf(stderr, "nascent latency: --arch is required to measure\n");
        return 2;
    }
    nas_arch a;
    if (nas_space_decode(ctx, space, o->arch, &a) != NAS_OK) {
        fprintf(stderr, "nascent latency: %s\n", nas_errmsg(ctx));
        return 2;
    }
    const nas_build_opts b = build_opts(o);
    nas_model *m = NULL;
    if (nas_space_build(ctx, space, &a, &b, &m) != NAS_OK) {
        fprintf(stderr, "nascent latency: %s\n", nas_errmsg(ctx));
        return 2;
    }
    nas_params_init(nas_model_params(m), o->seed);
    nas_latency_result r;
    double lut_ms = -1.0, pred_ms = -1.0;
    nas_status st = nas_latency_measure(ctx, m, o->batch, o->repeats, 3, &r);
    if (st == NAS_OK && o->lut_in != NULL) {
        nas_lut *lut = NULL;
        st = nas_lut_load(ctx, o->lut_in, &lut);
        if (st == NAS_OK && nas_lut_batch(lut) != o->batch) {
            st = nas_fail(ctx, NAS_ERR_ARG, "%s was built for batch %d, not %d", o->lut_in,
                          nas_lut_batch(lut), o->batch);
        }
        if (st == NAS_OK) {
            st = nas_lut_estimate(lut, m, &lut_ms);
        }
        nas_lut_free(lut);
    }
    if (st == NAS_OK && o->predictor_in != NULL) {
        nas_latpred *p = NULL;
        st = nas_latpred_load(ctx, o->predictor_in, &p);
        if (st == NAS_OK && nas_latpred_n_features(p) != nas_space_n_features(space)) {
            st = nas_fail(ctx, NAS_ERR_ARG, "%s expects %lld features, space %s has %lld",
                          o->predictor_in, (long long)nas_latpred_n_features(p),
                          nas_space_name(space), (long long)nas_space_n_features(space));
        }
        float feats[4096];
        if (st == NAS_OK && nas_space_n_features(space) > 4096) {
            st = nas_fail(ctx, NAS_ERR_UNSUPPORTED, "too many features for a predictor");
        }
        if (st == NAS_OK) {
            nas_space_features(space, &a, feats);
            st = nas_latpred_predict(p, feats, &pred_ms);
        }
        nas_latpred_free(p);
    }
    nas_model_free(m);
    if (st != NAS_OK) {
        return fail(ctx, "latency");
    }
    if (o->json) {
        printf("{\"median_ms\": %.4f, \"p10_ms\": %.4f, \"p90_ms\": %.4f, \"min_ms\": %.4f, "
               "\"batch\": %d, \"threads\": %d, \"repeats\": %d, \"peak_bytes\": %zu",
               r.median_ms, r.p10_ms, r.p90_ms, r.min_ms, r.batch, nas_get_threads(), r.repeats,
               r.peak_bytes);
        if (lut_ms >= 0) {
            printf(", \"lut_ms\": %.4f", lut_ms);
        }
        if (pred_ms >= 0) {
            printf(", \"predicted_ms\": %.4f", pred_ms);
        }
        printf("}\n");
    } else {
        printf("latency %.3f ms median (p10 %.3f, p90 %.3f) over %d runs, batch %d, %d threads, "
               "peak memory %.2f MB\n", r.median_ms, r.p10_ms, r.p90_ms, r.repeats, r.batch,
               nas_get_threads(), (double)r.peak_bytes / 1e6);
        if (lut_ms >= 0) {
            printf("LUT estimate %.3f ms\n", lut_ms);
        }
        if (pred_ms >= 0) {
            printf("predicted %.3f ms\n", pred_ms);
        }
    }
    return 0;
}

int cmd_latency(int argc, char **argv) {
    latency_opts o;
    if (parse(argc, argv, &o) != 0) {
        return 2;
    }
    nas_set_threads(o.threads);
    nas_ctx *ctx = nas_ctx_new();
    nas_space *space = NULL;
    if (ctx == NULL || nas_space_open(ctx, o.space, &space) != NAS_OK) {
        fprintf(stderr, "nascent latency: %s\n", ctx ? nas_errmsg(ctx) : "out of memory");
        nas_ctx_free(ctx);
        return 2;
    }
    int rc;
    if (o.lut_out != NULL) {
        rc = run_build_lut(ctx, space, &o);
    } else if (o.eval_lut != NULL) {
        rc = run_eval_lut(ctx, space, &o);
    } else if (o.fit != NULL) {
        rc = run_fit(ctx, space, &o);
    } else {
        rc = run_measure(ctx, space, &o);
    }
    nas_space_free(space);
    nas_ctx_free(ctx);
    return rc;
}
