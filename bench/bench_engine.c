/* bench_engine.c - times the engine on the standard networks (bench/bench_engine.sh runs it beside
 * the PyTorch peer bench/bench_engine_torch.py and prints the ratios).
 *
 *   bench_engine [--reps R] [--threads T] [--only NAME] [--profile NAME --seconds S]
 *
 * Cases (batch 64 unless named b1; 3x32x32 inputs, 10 classes; medians of R runs after warm-up):
 *   nb201_train_b64          NB201 all-nor_conv_3x3 (C=16, N=5) training step: graph recorded anew
 *                            every step (the NAS use case: a new architecture each step), forward,
 *                            backward, SGD-Nesterov step (momentum 0.9, weight decay 5e-4)
 *   nb201_train_b64_reuse    the same step on one recorded graph
 *   nb201_infer_b64          eval mode, gradients off, forward only (graph reused)
 *   nb201_infer_b1           batch 1, the faster of 1 and 2 threads (as the peer)
 *   mbv2_train_b64           MobileNetV2 (32x32) training step, graph recorded every step
 * and the overheads of a new NB201 network: model construction + init, graph recording, planning.
 * Output lines: "ours NAME MS" (milliseconds), "info ..." for the rest. --profile NAME loops that
 * case for S seconds (for perf record). */
#include "nascent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench {
    nas_ctx *ctx;
    nas_model *m;
    nas_graph *g;
    nas_optim *opt;
    nas_tensor *x, *loss, *logits;
    float *xdata;
    int32_t *labels;
    int batch, train;
} bench;

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static void die(nas_ctx *ctx, const char *what) {
    fprintf(stderr, "bench_engine: %s: %s\n", what, nas_errmsg(ctx));
    exit(1);
}

static nas_model *make_model(nas_ctx *ctx, const char *net) {
    nas_model *m = NULL;
    const nas_model_shape shape = {3, 32, 32, 10};
    nas_status st;
    if (strcmp(net, "nb201") == 0) {
        const nas_nb201_op ops[6] = {NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3,
                                     NAS_NB201_CONV3, NAS_NB201_CONV3, NAS_NB201_CONV3};
        st = nas_net_nb201(ctx, ops, 16, 5, shape, &m);
    } else {
        st = nas_net_mobilenet_v2(ctx, 1.0, shape, &m);
    }
    if (st != NAS_OK) {
        die(ctx, net);
    }
    nas_params_init(nas_model_params(m), 1);
    return m;
}

/* Record the step's graph: logits, and the loss when training. */
static void record(bench *b) {
    nas_graph_reset(b->g);
    nas_graph_set_training(b->g, b->train);
    nas_graph_set_grad_enabled(b->g, b->train);
    nas_graph_set_blocked_layouts(b->g, 1); /* nothing reads intermediate activations */
    const int64_t xs[4] = {b->batch, 3, 32, 32};
    b->x = nas_input(b->g, 4, xs, b->xdata);
    b->logits = nas_model_forward(b->m, b->g, b->x);
    b->loss = b->train ? nas_softmax_cross_entropy(b->g, b->logits,
                                                   nas_labels(b->g, b->batch, b->labels), 0.0f)
                       : NULL;
    if (nas_graph_status(b->g) != NAS_OK) {
        die(b->ctx, "record");
    }
}

static void setup(bench *b, nas_ctx *ctx, const char *net, int batch, int train) {
    memset(b, 0, sizeof(*b));
    b->ctx = ctx;
    b->m = make_model(ctx, net);
    b->g = nas_graph_new(ctx);
    b->batch = batch;
    b->train = train;
    b->xdata = malloc((size_t)batch * 3 * 32 * 32 * sizeof(float));
    b->labels = malloc((size_t)batch * sizeof(int32_t));
    nas_rng r = nas_rng_make(7, 0);
    nas_rng_fill_normal(&r, b->xdata, (int64_t)batch * 3 * 32 * 32, 0.0f, 1.0f);
    for (int i = 0; i < batch; i++) {
        b->labels[i] = (int32_t)nas_rng_below(&r, 10);
    }
    if (train) {
        const nas_optim_config cfg = {.kind = NAS_OPTIM_SGD, .momentum = 0.9f, .nesterov = 1,
                                      .weight_decay = 5e-4f, .flags_mask = NAS_PARAM_BUFFER};
        if (nas_optim_new(nas_model_params(b->m), &cfg, &b->opt) != NAS_OK) {
            die(ctx, "optimiser");
        }
    }
    record(b);
}

static void teardown(bench *b) {
    nas_optim_free(b->opt);
    nas_graph_free(b->g);
    nas_model_free(b->m);
    free(b->xdata);
    free(b->labels);
}

/* One step; rebuild records the graph first. */
static void step(bench *b, int rebuild) {
    if (rebuild) {
        record(b);
    }
    if (b->train) {
        nas_params_zero_grad(nas_model_params(b->m));
    }
    if (nas_graph_forward(b->g) != NAS_OK) {
        die(b->ctx, "forward");
    }
    if (b->train) {
        if (nas_graph_backward(b->g, b->loss) != NAS_OK) {
            die(b->ctx, "backward");
        }
        /* small lr: the weights stay sane however many steps are timed */
        if (nas_optim_step(b->opt, 1e-4f) != NAS_OK) {
            die(b->ctx, "optimiser step");
        }
    }
}

static double time_steps(bench *b, int rebuild, int reps, int warmup) {
    double *t = malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < warmup; i++) {
        step(b, rebuild);
    }
    for (int i = 0; i < reps; i++) {
        const double t0 = nas_now();
        step(b, rebuild);
        t[i] = nas_now() - t0;
    }
    const double med = median(t, reps);
    free(t);
    return med * 1e3;
}

typedef struct bcase {
    const char *name, *net;
    int batch, train, rebuild;
} bcase;

static const bcase cases[] = {
    {"nb201_train_b64", "nb201", 64, 1, 1},
    {"nb201_train_b64_reuse", "nb201", 64, 1, 0},
    {"nb201_infer_b64", "nb201", 64, 0, 0},
    {"nb201_infer_b1", "nb201", 1, 0, 0},
    {"mbv2_train_b64", "mbv2", 64, 1, 1},
    {"mbv2_infer_b64", "mbv2", 64, 0, 0},
    {"mbv2_infer_b1", "mbv2", 1, 0, 0},
};

static double run_case(nas_ctx *ctx, const bcase *c, int reps, int threads) {
    bench b;
    nas_set_threads(threads);
    setup(&b, ctx, c->net, c->batch, c->train);
    const int r = c->batch == 1 ? reps * 10 : reps;
    const double ms = time_steps(&b, c->rebuild, r, c->batch == 1 ? 20 : 3);
    teardown(&b);
    return ms;
}

/* Construction + init of a new NB201 net, graph recording (training graph with loss) and
 * planning, in microseconds. Planning is timed through the activation-peak query (the same
 * liveness pass the inference planner runs) and through a first forward at batch 1 minus a
 * steady one. */
static void overheads(nas_ctx *ctx, int reps) {
    double *t = malloc((size_t)reps * sizeof(double));
    for (int i = 0; i < reps; i++) {
        const double t0 = nas_now();
        nas_model *m = make_model(ctx, "nb201");
        t[i] = nas_now() - t0;
        nas_model_free(m);
    }
    printf("info nb201_new_model_us %.1f\n", median(t, reps) * 1e6);
    bench b;
    setup(&b, ctx, "nb201", 64, 1);
    for (int i = 0; i < reps; i++) {
        const double t0 = nas_now();
        record(&b);
        t[i] = nas_now() - t0;
    }
    printf("info nb201_record_graph_us %.1f (nodes %lld)\n", median(t, reps) * 1e6,
           (long long)nas_graph_n_nodes(b.g));
    for (int i = 0; i < reps; i++) {
        const double t0 = nas_now();
        (void)nas_graph_activation_peak(b.g);
        t[i] = nas_now() - t0;
    }
    printf("info nb201_plan_liveness_us %.1f\n", median(t, reps) * 1e6);
    teardown(&b);
    free(t);
}

int main(int argc, char **argv) {
    int reps = 10, threads = 2;
    double seconds = 20;
    const char *only = NULL, *profile = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--reps") == 0) {
            reps = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--only") == 0) {
            only = argv[i + 1];
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = argv[i + 1];
        } else if (strcmp(argv[i], "--seconds") == 0) {
            seconds = atof(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: bench_engine [--reps R] [--threads T] [--only NAME] "
                            "[--profile NAME --seconds S]\n");
            return 2;
        }
    }
    reps = reps < 1 ? 1 : reps;
    nas_ctx *ctx = nas_ctx_new();
    const int n_cases = (int)(sizeof(cases) / sizeof(cases[0]));
    if (profile != NULL) {
        for (int i = 0; i < n_cases; i++) {
            if (strcmp(cases[i].name, profile) == 0) {
                bench b;
                nas_set_threads(threads);
                setup(&b, ctx, cases[i].net, cases[i].batch, cases[i].train);
                long n = 0;
                for (const double t0 = nas_now(); nas_now() - t0 < seconds; n++) {
                    step(&b, cases[i].rebuild);
                }
                printf("info profiled %s: %ld steps\n", profile, n);
                teardown(&b);
            }
        }
        nas_ctx_free(ctx);
        return 0;
    }
    printf("info threads %d reps %d\n", threads, reps);
    for (int i = 0; i < n_cases; i++) {
        const bcase *c = &cases[i];
        if (only != NULL && strstr(c->name, only) == NULL) {
            continue;
        }
        if (c->batch == 1) {
            const double t1 = run_case(ctx, c, reps, 1), t2 = run_case(ctx, c, reps, 2);
            printf("info %s 1 thread %.3f ms, 2 threads %.3f ms\n", c->name, t1, t2);
            printf("ours %s %.4f\n", c->name, t1 < t2 ? t1 : t2);
        } else {
            printf("ours %s %.4f\n", c->name, run_case(ctx, c, reps, threads));
        }
        fflush(stdout);
    }
    if (only == NULL || strstr("overheads", only) != NULL) {
        nas_set_threads(threads);
        overheads(ctx, 200);
    }
    nas_ctx_free(ctx);
    return 0;
}
