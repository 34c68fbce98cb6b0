/* tool_ops_bench.c - times the hot non-conv ops of an NB201 training step (batch norm in training
 * mode, 3x3 average pooling, ReLU, global average pooling), forward + backward, at the NB201
 * stage shapes for batch 64, and the DARTS search cells' 3x3 pools (stride 1 and 2).
 * bench/bench_ops.py runs it beside the same ops in PyTorch. Prints one line per op and shape: "op
 * NAME SHAPE ms". Not a test (built by mk/ops.mk). Usage: tool_ops_bench [REPS [THREADS [cpu]]];
 * "cpu" times process CPU time instead of wall time (for one thread on a loaded machine). */
#include "nascent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int use_cpu_time; /* 1: process CPU time (robust on a loaded machine with one thread) */

static double now(void) {
    if (!use_cpu_time) {
        return nas_now();
    }
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef nas_tensor *(*build_fn)(nas_graph *g, nas_tensor *x, nas_tensor **extra);

static nas_tensor *b_bn(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    return nas_batch_norm(g, x, p[0], p[1], p[2], p[3], 0.1f, 1e-5f);
}
static nas_tensor *b_avg(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_avg_pool(g, x, 3, 1, 1, 0);
}
static nas_tensor *b_max(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_max_pool(g, x, 3, 1, 1);
}
static nas_tensor *b_avg_s2(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_avg_pool(g, x, 3, 2, 1, 0);
}
static nas_tensor *b_max_s2(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_max_pool(g, x, 3, 2, 1);
}
static nas_tensor *b_relu(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_relu(g, x);
}
static nas_tensor *b_gap(nas_graph *g, nas_tensor *x, nas_tensor **p) {
    (void)p;
    return nas_global_avg_pool(g, x);
}

static double time_op(const char *name, build_fn fn, int64_t N, int64_t C, int64_t H, int reps) {
    nas_ctx *ctx = nas_ctx_new();
    nas_graph *g = nas_graph_new(ctx);
    nas_graph_set_training(g, 1);
    const int64_t xs[4] = {N, C, H, H}, cs[1] = {C};
    const int64_t n = N * C * H * H;
    float *x = malloc((size_t)n * sizeof(float));
    float *vec = malloc(4 * (size_t)C * sizeof(float));
    nas_rng r = nas_rng_make(1, 1);
    nas_rng_fill_normal(&r, x, n, 0.5f, 1.0f);
    nas_rng_fill_uniform(&r, vec, 4 * C, 0.5f, 1.5f);
    nas_tensor *xin = nas_input_grad(g, 4, xs, x);
    nas_tensor *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = i < 2 ? nas_input_grad(g, 1, cs, vec + i * C) : nas_input(g, 1, cs, vec + i * C);
    }
    nas_tensor *y = fn(g, xin, p);
    float *seed = malloc((size_t)nas_tensor_numel(y) * sizeof(float));
    nas_rng_fill_uniform(&r, seed, nas_tensor_numel(y), -1, 1);
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        const double t0 = now();
        if (nas_graph_forward(g) != NAS_OK || nas_graph_backward_from(g, y, seed) != NAS_OK) {
            fprintf(stderr, "%s: %s\n", name, nas_errmsg(ctx));
            exit(1);
        }
        const double t = now() - t0;
        best = t < best ? t : best;
    }
    printf("op %s %lldx%lldx%lldx%lld %.4f\n", name, (long long)N, (long long)C, (long long)H,
           (long long)H, best * 1e3);
    free(x), free(vec), free(seed);
    nas_graph_free(g);
    nas_ctx_free(ctx);
    return best;
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 20;
    nas_set_threads(argc > 2 ? atoi(argv[2]) : 0);
    use_cpu_time = argc > 3 && strcmp(argv[3], "cpu") == 0;
    static const int64_t stages[3][2] = {{16, 32}, {32, 16}, {64, 8}};
    for (int s = 0; s < 3; s++) {
        time_op("bn_train", b_bn, 64, stages[s][0], stages[s][1], reps);
        time_op("avg3x3", b_avg, 64, stages[s][0], stages[s][1], reps);
        time_op("relu", b_relu, 64, stages[s][0], stages[s][1], reps);
    }
    time_op("gap", b_gap, 64, 64, 8, reps);
    /* DARTS search cells (C 16, 32x32): pools on every edge, stride 1 and 2 */
    time_op("max3x3", b_max, 64, 16, 32, reps);
    time_op("avg3x3s2", b_avg_s2, 64, 16, 32, reps);
    time_op("max3x3s2", b_max_s2, 64, 16, 32, reps);
    return 0;
}
