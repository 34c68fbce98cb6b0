/* tool_nets.c - drives the standard networks for tests/py_nets_torch.py: builds a network, dumps
 * its initial parameters, batches, step-0 loss and gradients, then runs optimiser steps and
 * dumps the final parameters, so the Python side can replay the same computation in PyTorch.
 *
 *   tool_nets count NET_ARGS            prints "params P" and "macs M" (one example)
 *   tool_nets train NET_ARGS --out FILE [--batch B] [--steps S] [--opt none|sgd|adamw]
 *             [--lr X] [--wd X] [--seed S] [--threads T] [--rebuild] [--eval] [--all-grads]
 *   NET_ARGS: --net nb201|fmnist-cnn|mbv2 [--ops a,b,c,d,e,f (0..4 = none, skip, conv1x1,
 *             conv3x3, pool)] [--C 16] [--N 5] [--width 1.0] [--in C,H,W] [--classes K]
 *
 * Dump format (little endian): records of u32 name length, name, u32 ndim, i64 dims[ndim],
 * f32 data. Records: "x:k" and "y:k" (labels as floats) for every step k, "init:NAME" for every
 * parameter and buffer, "loss:k" per step, "grad0:NAME" for every trainable parameter after the
 * first backward ("gradK:NAME" after every step K with --all-grads), "final:NAME" after the last step. --rebuild records a fresh graph every step
 * (the NAS use case); results must equal a reused graph's. */
#include "nascent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *net, *out, *opt;
    nas_nb201_op ops[6];
    int C, N, batch, steps, threads, rebuild, eval, all_grads;
    double width, lr, wd;
    uint64_t seed;
    nas_model_shape shape;
} opts;

static int parse_ints(const char *s, int *v, int n) {
    for (int i = 0; i < n; i++) {
        char *end;
        v[i] = (int)strtol(s, &end, 10);
        if (end == s || (i < n - 1 && *end != ',') || (i == n - 1 && *end != '\0')) {
            return 0;
        }
        s = end + 1;
    }
    return 1;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.net = "nb201", .opt = "none", .C = 16, .N = 5, .batch = 2, .steps = 1,
                .threads = 2, .width = 1.0, .lr = 0.1, .wd = 5e-4, .seed = 1};
    for (int e = 0; e < 6; e++) {
        o->ops[e] = NAS_NB201_CONV3;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int iv[6];
        if (strcmp(a, "--rebuild") == 0) {
            o->rebuild = 1;
            continue;
        }
        if (strcmp(a, "--all-grads") == 0) {
            o->all_grads = 1;
            continue;
        }
        if (strcmp(a, "--eval") == 0) {
            o->eval = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "tool_nets: %s needs a value\n", a);
            return 0;
        }
        i++;
        if (strcmp(a, "--net") == 0) {
            o->net = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--opt") == 0) {
            o->opt = v;
        } else if (strcmp(a, "--ops") == 0 && parse_ints(v, iv, 6)) {
            for (int e = 0; e < 6; e++) {
                o->ops[e] = (nas_nb201_op)iv[e];
            }
        } else if (strcmp(a, "--in") == 0 && parse_ints(v, iv, 3)) {
            o->shape.in_c = iv[0];
            o->shape.in_h = iv[1];
            o->shape.in_w = iv[2];
        } else if (strcmp(a, "--classes") == 0) {
            o->shape.classes = atoi(v);
        } else if (strcmp(a, "--C") == 0) {
            o->C = atoi(v);
        } else if (strcmp(a, "--N") == 0) {
            o->N = atoi(v);
        } else if (strcmp(a, "--batch") == 0) {
            o->batch = atoi(v);
        } else if (strcmp(a, "--steps") == 0) {
            o->steps = atoi(v);
        } else if (strcmp(a, "--threads") == 0) {
            o->threads = atoi(v);
        } else if (strcmp(a, "--width") == 0) {
            o->width = atof(v);
        } else if (strcmp(a, "--lr") == 0) {
            o->lr = atof(v);
        } else if (strcmp(a, "--wd") == 0) {
            o->wd = atof(v);
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(v, NULL, 10);
        } else {
            fprintf(stderr, "tool_nets: bad option %s %s\n", a, v);
            return 0;
        }
    }
    if (o->shape.classes == 0 && o->shape.in_c != 0) {
        o->shape.classes = 10;
    }
    return 1;
}

static nas_status make_net(nas_ctx *ctx, const opts *o, nas_model **m) {
    if (strcmp(o->net, "nb201") == 0) {
        return nas_net_nb201(ctx, o->ops, o->C, o->N, o->shape, m);
    }
    if (strcmp(o->net, "fmnist-cnn") == 0) {
        return nas_net_fmnist_cnn(ctx, o->shape, m);
    }
    if (strcmp(o->net, "mbv2") == 0) {
        return nas_net_mobilenet_v2(ctx, o->width, o->shape, m);
    }
    return nas_fail(ctx, NAS_ERR_ARG, "unknown net %s", o->net);
}

static void put_record(FILE *f, const char *name, int ndim, const int64_t *dims, const float *x) {
    const uint32_t len = (uint32_t)strlen(name), nd = (uint32_t)ndim;
    int64_t numel = 1;
    fwrite(&len, 4, 1, f);
    fwrite(name, 1, len, f);
    fwrite(&nd, 4, 1, f);
    for (int i = 0; i < ndim; i++) {
        fwrite(&dims[i], 8, 1, f);
        numel *= dims[i];
    }
    fwrite(x, 4, (size_t)numel, f);
}

/* Every parameter (buffers too when `all`) as "<tag>:<name>"; grads when `grad`. */
static void put_params(FILE *f, const nas_params *p, const char *tag, int grad, int all) {
    const float *base = grad ? nas_params_grad(p) : nas_params_data(p);
    for (int64_t i = 0; i < nas_params_count(p); i++) {
        if (!all && (nas_param_flags(p, i) & NAS_PARAM_BUFFER)) {
            continue;
        }
        char name[300];
        int64_t dims[NAS_MAX_DIMS];
        const int nd = nas_param_ndim(p, i);
        for (int d = 0; d < nd; d++) {
            dims[d] = nas_param_dim(p, i, d);
        }
        snprintf(name, sizeof name, "%s:%s", tag, nas_param_name(p, i));
        put_record(f, name, nd, dims, base + nas_param_offset(p, i));
    }
}

typedef struct step_graph {
    nas_graph *g;
    nas_tensor *x, *loss;
} step_graph;

static nas_status build(nas_model *m, const opts *o, step_graph *s, float *x, const int32_t *y) {
    nas_model_shape sh = nas_model_get_shape(m);
    nas_graph_reset(s->g);
    nas_graph_set_training(s->g, !o->eval);
    const int64_t xs[4] = {o->batch, sh.in_c, sh.in_h, sh.in_w};
    s->x = nas_input(s->g, 4, xs, x);
    nas_tensor *logits = nas_model_forward(m, s->g, s->x);
    s->loss = nas_softmax_cross_entropy(s->g, logits, nas_labels(s->g, o->batch, y), 0.0f);
    return nas_graph_status(s->g);
}

static nas_optim *make_optim(nas_params *p, const opts *o) {
    nas_optim_config cfg = {.weight_decay = (float)o->wd, .flags_mask = NAS_PARAM_BUFFER};
    if (strcmp(o->opt, "sgd") == 0) {
        cfg.kind = NAS_OPTIM_SGD;
        cfg.momentum = 0.9f;
        cfg.nesterov = 1;
    } else if (strcmp(o->opt, "adamw") == 0) {
        cfg.kind = NAS_OPTIM_ADAMW;
    } else {
        return NULL;
    }
    nas_optim *opt = NULL;
    return nas_optim_new(p, &cfg, &opt) == NAS_OK ? opt : NULL;
}

static int train(nas_ctx *ctx, nas_model *m, const opts *o) {
    nas_params *p = nas_model_params(m);
    nas_model_shape sh = nas_model_get_shape(m);
    nas_params_init(p, o->seed);
    const int64_t per = (int64_t)sh.in_c * sh.in_h * sh.in_w, n_x = o->batch * per;
    float *x = malloc((size_t)n_x * sizeof(float) * (size_t)o->steps);
    int32_t *y = malloc((size_t)o->batch * sizeof(int32_t) * (size_t)o->steps);
    int32_t *ycur = malloc((size_t)o->batch * sizeof(int32_t)); /* the labels leaf's buffer */
    float *yf = malloc((size_t)o->batch * sizeof(float));
    FILE *f = fopen(o->out, "wb");
    nas_optim *opt = strcmp(o->opt, "none") != 0 ? make_optim(p, o) : NULL;
    step_graph s = {.g = nas_graph_new(ctx)};
    int ok = x != NULL && y != NULL && ycur != NULL && yf != NULL && f != NULL && s.g != NULL &&
             (opt != NULL || strcmp(o->opt, "none") == 0);
    nas_rng r = nas_rng_make(o->seed, 1000);
    for (int k = 0; ok && k < o->steps; k++) {
        char name[32];
        const int64_t xs[4] = {o->batch, sh.in_c, sh.in_h, sh.in_w}, ys = o->batch;
        nas_rng_fill_normal(&r, x + k * n_x, n_x, 0.0f, 1.0f);
        for (int i = 0; i < o->batch; i++) {
            y[k * o->batch + i] = (int32_t)nas_rng_below(&r, sh.classes);
            yf[i] = (float)y[k * o->batch + i];
        }
        snprintf(name, sizeof name, "x:%d", k);
        put_record(f, name, 4, xs, x + k * n_x);
        snprintf(name, sizeof name, "y:%d", k);
        put_record(f, name, 1, &ys, yf);
    }
    if (ok) {
        put_params(f, p, "init", 0, 1);
    }
    for (int k = 0; ok && k < o->steps; k++) {
        if (k == 0 || o->rebuild) {
            ok = build(m, o, &s, x, ycur) == NAS_OK;
        }
        nas_tensor_set_data(s.x, x + k * n_x);
        memcpy(ycur, y + k * o->batch, (size_t)o->batch * sizeof(int32_t));
        nas_params_zero_grad(p);
        ok = ok && nas_graph_forward(s.g) == NAS_OK;
        ok = ok && (o->eval || nas_graph_backward(s.g, s.loss) == NAS_OK);
        if (ok) {
            char name[32];
            const int64_t one = 1;
            snprintf(name, sizeof name, "loss:%d", k);
            put_record(f, name, 1, &one, nas_tensor_data(s.loss));
            if (k == 0 || o->all_grads) {
                char tag[32];
                snprintf(tag, sizeof tag, "grad%d", k);
                put_params(f, p, tag, 1, 0);
            }
        }
        ok = ok && (opt == NULL || nas_optim_step(opt, (float)o->lr) == NAS_OK);
    }
    if (ok) {
        put_params(f, p, "final", 0, 1);
    } else {
        fprintf(stderr, "tool_nets: %s\n", nas_errmsg(ctx));
    }
    if (f != NULL && fclose(f) != 0) {
        ok = 0;
    }
    nas_graph_free(s.g);
    nas_optim_free(opt);
    free(x);
    free(y);
    free(ycur);
    free(yf);
    return ok;
}

int main(int argc, char **argv) {
    opts o;
    if (argc < 2 || !parse(argc, argv, &o)) {
        fprintf(stderr, "usage: tool_nets count|train --net nb201|fmnist-cnn|mbv2 [options]\n");
        return 2;
    }
    nas_set_threads(o.threads);
    nas_ctx *ctx = nas_ctx_new();
    nas_model *m = NULL;
    if (make_net(ctx, &o, &m) != NAS_OK) {
        fprintf(stderr, "tool_nets: %s\n", nas_errmsg(ctx));
        nas_ctx_free(ctx);
        return 1;
    }
    int ok = 1;
    if (strcmp(argv[1], "count") == 0) {
        int64_t macs = 0;
        ok = nas_model_count(m, &macs, NULL) == NAS_OK;
        printf("params %lld\nmacs %lld\n", (long long)nas_model_n_params(m), (long long)macs);
    } else if (strcmp(argv[1], "train") == 0 && o.out != NULL) {
        ok = train(ctx, m, &o);
    } else {
        fprintf(stderr, "tool_nets: unknown command %s (or --out missing)\n", argv[1]);
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "tool_nets: %s\n", nas_errmsg(ctx));
    }
    nas_model_free(m);
    nas_ctx_free(ctx);
    return ok ? 0 : 1;
}
