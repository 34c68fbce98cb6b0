/* tool_spaces.c - drives a search space's network for tests/py_spaces_torch.py: builds an
 * architecture, initialises its parameters from a seed, runs one batch through the trainer's own
 * loss graph (nas_train_graph_build: cross-entropy, plus NAS_AUX_LOSS_WEIGHT times the auxiliary
 * head's when the model has one and the graph trains), backward, and dumps everything the Python
 * side needs to replay the batch in PyTorch. Not a test by itself (built by mk/spaces.mk).
 *
 *   tool_spaces --space S --arch TEXT --out FILE [--cells N] [--mult F] [--search-net] [--aux]
 *               [--input C,H,W] [--classes K] [--batch B] [--seed S] [--eval] [--synflow]
 *
 * Dump format (little endian): records of u32 name length, name, u32 ndim, i64 dims[ndim], f32
 * data. Records: "param:NAME" for every parameter and buffer (in declaration order) before the
 * step, "x", "y" (labels as floats), "logits", "aux" (when recorded), "loss", "grad:NAME" for
 * every trainable parameter (training mode only), and with --synflow "synflow" (the proxy's score
 * of the initial weights, nas_proxies_score). */
#include "evaluators/train_int.h"
#include "nascent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(FILE *f, const char *name, int ndim, const int64_t *dims, const float *x) {
    const uint32_t len = (uint32_t)strlen(name), nd = (uint32_t)ndim;
    int64_t n = 1;
    fwrite(&len, 4, 1, f);
    fwrite(name, 1, len, f);
    fwrite(&nd, 4, 1, f);
    for (int i = 0; i < ndim; i++) {
        fwrite(&dims[i], 8, 1, f);
        n *= dims[i];
    }
    fwrite(x, 4, (size_t)n, f);
}

static void put_tensor(FILE *f, const char *name, const nas_tensor *t) {
    int64_t dims[4];
    for (int i = 0; i < nas_tensor_ndim(t); i++) {
        dims[i] = nas_tensor_dim(t, i);
    }
    put(f, name, nas_tensor_ndim(t), dims, nas_tensor_data(t));
}

static void put_params(FILE *f, const nas_params *p, int grad) {
    for (int64_t i = 0; i < nas_params_count(p); i++) {
        if (grad && (nas_param_flags(p, i) & NAS_PARAM_BUFFER)) {
            continue;
        }
        char name[300];
        int64_t dims[4];
        const int nd = nas_param_ndim(p, i);
        for (int d = 0; d < nd; d++) {
            dims[d] = nas_param_dim(p, i, d);
        }
        snprintf(name, sizeof name, "%s:%s", grad ? "grad" : "param", nas_param_name(p, i));
        put(f, name, nd, dims,
            (grad ? nas_params_grad(p) : nas_params_data(p)) + nas_param_offset(p, i));
    }
}

static int fail(nas_ctx *ctx, const char *what) {
    fprintf(stderr, "tool_spaces: %s: %s\n", what, nas_errmsg(ctx));
    return 1;
}

int main(int argc, char **argv) {
    const char *space = NULL, *arch = "default", *out = NULL;
    nas_build_opts o;
    memset(&o, 0, sizeof o);
    int batch = 2, training = 1, synflow = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--aux") == 0) {
            o.aux_head = 1;
        } else if (strcmp(a, "--search-net") == 0) {
            o.search_net = 1;
        } else if (strcmp(a, "--eval") == 0) {
            training = 0;
        } else if (strcmp(a, "--synflow") == 0) {
            synflow = 1;
        } else if (i + 1 >= argc) {
            fprintf(stderr, "tool_spaces: %s needs a value\n", a);
            return 2;
        } else if (strcmp(a, "--space") == 0) {
            space = argv[++i];
        } else if (strcmp(a, "--arch") == 0) {
            arch = argv[++i];
        } else if (strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--cells") == 0) {
            o.cells = atoi(argv[++i]);
        } else if (strcmp(a, "--mult") == 0) {
            o.channels_mult = atof(argv[++i]);
        } else if (strcmp(a, "--classes") == 0) {
            o.shape.classes = atoi(argv[++i]);
        } else if (strcmp(a, "--batch") == 0) {
            batch = atoi(argv[++i]);
        } else if (strcmp(a, "--seed") == 0) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--input") == 0) {
            if (sscanf(v, "%d,%d,%d", &o.shape.in_c, &o.shape.in_h, &o.shape.in_w) != 3) {
                fprintf(stderr, "tool_spaces: --input C,H,W\n");
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "tool_spaces: unknown option %s\n", a);
            return 2;
        }
    }
    if (space == NULL || out == NULL || batch < 1) {
        fprintf(stderr, "usage: tool_spaces --space S --arch TEXT --out FILE [options]\n");
        return 2;
    }
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    nas_model *m = NULL;
    nas_arch a;
    if (nas_space_open(ctx, space, &s) != NAS_OK) {
        return fail(ctx, "open");
    }
    if (nas_space_decode(ctx, s, arch, &a) != NAS_OK ||
        nas_space_build(ctx, s, &a, &o, &m) != NAS_OK) {
        return fail(ctx, "build");
    }
    nas_params *p = nas_model_params(m);
    nas_params_init(p, seed);
    const nas_model_shape sh = nas_model_get_shape(m);
    const int64_t xs[4] = {batch, sh.in_c, sh.in_h, sh.in_w};
    const int64_t nx = xs[0] * xs[1] * xs[2] * xs[3];
    float *x = malloc((size_t)nx * sizeof(float)), *yf = malloc((size_t)batch * sizeof(float));
    int32_t *y = malloc((size_t)batch * sizeof(int32_t));
    nas_rng rng = nas_rng_make(seed, 7);
    nas_rng_fill_uniform(&rng, x, nx, -1.0f, 1.0f);
    for (int i = 0; i < batch; i++) {
        y[i] = (int32_t)(nas_rng_u64(&rng) % (uint64_t)sh.classes);
        yf[i] = (float)y[i];
    }
    FILE *f = fopen(out, "wb");
    if (f == NULL) {
        fprintf(stderr, "tool_spaces: cannot write %s\n", out);
        return 1;
    }
    put_params(f, p, 0);
    if (synflow) {
        nas_proxies *pr = NULL;
        double scores[NAS_PROXY_COUNT] = {0};
        if (nas_proxies_new(ctx, &pr) != NAS_OK ||
            nas_proxies_score(pr, m, NULL, NULL, 1, 1u << NAS_PROXY_SYNFLOW, scores) != NAS_OK) {
            return fail(ctx, "synflow");
        }
        const float v = (float)scores[NAS_PROXY_SYNFLOW];
        const int64_t one = 1;
        put(f, "synflow", 1, &one, &v);
        nas_proxies_free(pr);
    }
    put(f, "x", 4, xs, x);
    const int64_t nb = batch;
    put(f, "y", 1, &nb, yf);
    nas_train_graph tg;
    memset(&tg, 0, sizeof tg);
    double loss = 0.0;
    int64_t correct = 0;
    if (nas_train_graph_build(ctx, m, &tg, batch, batch, training, 0.0f) != NAS_OK ||
        nas_train_graph_run(&tg, x, y, batch, &loss, &correct) != NAS_OK) {
        return fail(ctx, "forward");
    }
    put_tensor(f, "logits", tg.logits);
    nas_tensor *aux = nas_model_aux_logits(m, tg.g);
    if (aux != NULL) {
        put_tensor(f, "aux", aux);
    }
    put_tensor(f, "loss", tg.loss);
    if (training) {
        nas_params_zero_grad(p);
        if (nas_graph_backward(tg.g, tg.loss) != NAS_OK) {
            return fail(ctx, "backward");
        }
        put_params(f, p, 1);
    }
    fclose(f);
    nas_train_graph_free(ctx, &tg);
    nas_model_free(m);
    nas_space_free(s);
    nas_ctx_free(ctx);
    free(x);
    free(yf);
    free(y);
    return 0;
}
