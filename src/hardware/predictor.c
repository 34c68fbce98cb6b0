/* predictor.c - learned latency predictors on an architecture's feature vector (the space's
 * one-hot encoding of each decision's choice):
 *   linear: ridge regression, y = w . x + b, solved with LAPACK's dposv (OpenBLAS ships it).
 *     On cell spaces this is a layer-wise additive model: each decision's choice adds its time.
 *   mlp: two hidden ReLU layers trained with Adam on the engine (full batch), which can learn
 *     interactions between decisions (e.g. a 'none' edge cutting a conv off the output path).
 * Both fit log(latency) standardised, so errors are relative, and predict in milliseconds.
 * Saved as JSON: {"format": "nascent-latpred-1", "kind", "d", "hidden", "y_mean", "y_std",
 * "weights": [...]} (linear: d weights then the bias; mlp: the parameter block). */
#include "hardware_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>

/* LAPACK (in OpenBLAS): solve A x = B for symmetric positive definite A, column major. */
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
                   double *b, const int *ldb, int *info);

#define MLP_HIDDEN 128
#define MLP_STEPS  600
#define MLP_LR     3e-3f

struct nas_latpred {
    nas_ctx *ctx;
    nas_latpred_kind kind;
    int64_t d;
    double y_mean, y_std;
    double *linear_w; /* d + 1 (bias last) */
    nas_params *mlp;  /* fc1, fc2, fc3 */
    nas_linear_block fc[3];
    nas_graph *g;     /* inference graph for one example, reused */
    float *x1;        /* its input buffer [1, d] */
};

static nas_latpred *latpred_new(nas_ctx *ctx, nas_latpred_kind kind, int64_t d) {
    nas_latpred *p = nas_calloc(ctx, 1, sizeof(nas_latpred));
    if (p == NULL) {
        return NULL;
    }
    p->ctx = ctx;
    p->kind = kind;
    p->d = d;
    p->y_std = 1.0;
    p->x1 = nas_calloc(ctx, (size_t)d, sizeof(float));
    if (p->x1 == NULL) {
        nas_free(ctx, p, sizeof(nas_latpred));
        return NULL;
    }
    return p;
}

void nas_latpred_free(nas_latpred *p) {
    if (p == NULL) {
        return;
    }
    nas_free(p->ctx, p->linear_w, p->linear_w ? (size_t)(p->d + 1) * sizeof(double) : 0);
    nas_params_free(p->mlp);
    nas_graph_free(p->g);
    nas_free(p->ctx, p->x1, (size_t)p->d * sizeof(float));
    nas_free(p->ctx, p, sizeof(nas_latpred));
}

/* Standardised log targets: t_i = (log y_i - mean) / std. */
static nas_status standardise(nas_latpred *p, const double *y, int64_t n, float *t) {
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!(y[i] > 0.0) || !isfinite(y[i])) {
            return nas_fail(p->ctx, NAS_ERR_NUMERIC, "latpred: latency %lld is %g (must be > 0)",
                            (long long)i, y[i]);
        }
        mean += log(y[i]) / (double)n;
    }
    for (int64_t i = 0; i < n; i++) {
        var += (log(y[i]) - mean) * (log(y[i]) - mean) / (double)n;
    }
    p->y_mean = mean;
    p->y_std = var > 1e-24 ? sqrt(var) : 1.0;
    for (int64_t i = 0; i < n; i++) {
        t[i] = (float)((log(y[i]) - mean) / p->y_std);
    }
    return NAS_OK;
}

/* Ridge: (X1^T X1 + lambda I') w = X1^T t with X1 = [X, 1]; the bias is not penalised. */
static nas_status fit_linear(nas_latpred *p, const float *X, const float *t, int64_t n) {
    const int64_t d1 = p->d + 1;
    const double lambda = 1e-3 * (double)n;
    double *A = nas_calloc(p->ctx, (size_t)(d1 * d1), sizeof(double));
    p->linear_w = nas_calloc(p->ctx, (size_t)d1, sizeof(double));
    if (A == NULL || p->linear_w == NULL) {
        nas_free(p->ctx, A, A ? (size_t)(d1 * d1) * sizeof(double) : 0);
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        const float *x = X + i * p->d;
        for (int64_t a = 0; a < d1; a++) {
            const double xa = a < p->d ? (double)x[a] : 1.0;
            p->linear_w[a] += xa * (double)t[i];
            for (int64_t b = 0; b < d1; b++) {
                A[a * d1 + b] += xa * (b < p->d ? (double)x[b] : 1.0);
            }
        }
    }
    for (int64_t a = 0; a < p->d; a++) {
        A[a * d1 + a] += lambda;
    }
    const int nn = (int)d1, one = 1;
    int info = 0;
    dposv_("U", &nn, &one, A, &nn, p->linear_w, &nn, &info);
    nas_free(p->ctx, A, (size_t)(d1 * d1) * sizeof(double));
    if (info != 0) {
        return nas_fail(p->ctx, NAS_ERR_NUMERIC, "latpred: ridge system is singular (info %d)", info);
    }
    return NAS_OK;
}

static nas_status mlp_declare(nas_latpred *p) {
    p->mlp = nas_params_new(p->ctx);
    if (p->mlp == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_status st = nas_nn_linear_init(p->mlp, "fc1", p->d, MLP_HIDDEN, &p->fc[0]);
    if (st == NAS_OK) {
        st = nas_nn_linear_init(p->mlp, "fc2", MLP_HIDDEN, MLP_HIDDEN, &p->fc[1]);
    }
    if (st == NAS_OK) {
        st = nas_nn_linear_init(p->mlp, "fc3", MLP_HIDDEN, 1, &p->fc[2]);
    }
    return st;
}

static nas_tensor *mlp_forward(nas_latpred *p, nas_graph *g, nas_tensor *x) {
    nas_tensor *h = nas_relu(g, nas_nn_linear_forward(g, p->mlp, &p->fc[0], x));
    h = nas_relu(g, nas_nn_linear_forward(g, p->mlp, &p->fc[1], h));
    return nas_nn_linear_forward(g, p->mlp, &p->fc[2], h);
}

/* Full-batch Adam on the mean squared error of the standardised log latency. */
static nas_status fit_mlp(nas_latpred *p, const float *X, float *t, int64_t n, uint64_t seed) {
    nas_status st = mlp_declare(p);
    if (st != NAS_OK) {
        return st;
    }
    nas_params_init(p->mlp, seed);
    nas_optim *opt = NULL;
    const nas_optim_config cfg = {.kind = NAS_OPTIM_ADAMW, .weight_decay = 1e-4f,
                                  .flags_mask = NAS_PARAM_BUFFER, .flags_value = 0};
    st = nas_optim_new(p->mlp, &cfg, &opt);
    nas_graph *g = nas_graph_new(p->ctx);
    if (st == NAS_OK && g == NULL) {
        st = NAS_ERR_NOMEM;
    }
    if (st == NAS_OK) {
        const int64_t xs[2] = {n, p->d}, ys[2] = {n, 1};
        nas_tensor *pred = mlp_forward(p, g, nas_input(g, 2, xs, (float *)X));
        nas_tensor *diff = nas_add(g, pred, nas_scale(g, nas_input(g, 2, ys, t), -1.0f));
        nas_tensor *loss = nas_mean_all(g, nas_mul(g, diff, diff));
        st = nas_graph_status(g);
        const nas_sched sched = {.kind = NAS_SCHED_COSINE, .base_lr = MLP_LR, .total_steps = MLP_STEPS};
        for (int step = 0; st == NAS_OK && step < MLP_STEPS; step++) {
            nas_params_zero_grad(p->mlp);
            st = nas_graph_forward(g);
            if (st == NAS_OK) {
                st = nas_graph_backward(g, loss);
            }
            if (st == NAS_OK) {
                st = nas_optim_step(opt, nas_sched_lr(&sched, step));
            }
        }
    }
    nas_graph_free(g);
    nas_optim_free(opt);
    return st;
}

nas_status nas_latpred_fit(nas_ctx *ctx, nas_latpred_kind kind, const float *X, const double *y,
                           int64_t n, int64_t d, uint64_t seed, nas_latpred **out) {
    NAS_CHECK_ARG(ctx, X != NULL && y != NULL && out != NULL && n >= 2 && d >= 1);
    NAS_CHECK_ARG(ctx, kind == NAS_LATPRED_LINEAR || kind == NAS_LATPRED_MLP);
    *out = NULL;
    nas_latpred *p = latpred_new(ctx, kind, d);
    float *t = nas_malloc(ctx, (size_t)n * sizeof(float));
    nas_status st = (p == NULL || t == NULL) ? NAS_ERR_NOMEM : standardise(p, y, n, t);
    if (st == NAS_OK) {
        st = kind == NAS_LATPRED_LINEAR ? fit_linear(p, X, t, n) : fit_mlp(p, X, t, n, seed);
    }
    nas_free(ctx, t, (size_t)n * sizeof(float));
    if (st != NAS_OK) {
        nas_latpred_free(p);
        return st;
    }
    *out = p;
    return NAS_OK;
}

/* The standardised prediction for one feature vector. */
static nas_status predict_std(nas_latpred *p, const float *x, double *z) {
    if (p->kind == NAS_LATPRED_LINEAR) {
        double s = p->linear_w[p->d];
        for (int64_t a = 0; a < p->d; a++) {
            s += p->linear_w[a] * (double)x[a];
        }
        *z = s;
        return NAS_OK;
    }
    if (p->g == NULL) {
        p->g = nas_graph_new(p->ctx);
        if (p->g == NULL) {
            return NAS_ERR_NOMEM;
        }
        const int64_t xs[2] = {1, p->d};
        nas_graph_set_grad_enabled(p->g, 0);
        mlp_forward(p, p->g, nas_input(p->g, 2, xs, p->x1));
    }
    memcpy(p->x1, x, (size_t)p->d * sizeof(float));
    const nas_status st = nas_graph_forward(p->g);
    if (st == NAS_OK) {
        const nas_node *last = nas_graph_node(p->g, nas_graph_n_nodes(p->g) - 1);
        *z = (double)last->data[0];
    }
    return st;
}

nas_status nas_latpred_predict(nas_latpred *p, const float *x, double *ms) {
    double z = 0.0;
    const nas_status st = predict_std(p, x, &z);
    *ms = exp(z * p->y_std + p->y_mean);
    return st;
}

int64_t nas_latpred_n_features(const nas_latpred *p) {
    return p->d;
}

nas_status nas_latpred_save(const nas_latpred *p, const char *path) {
    json_t *root = json_object(), *w = json_array();
    json_object_set_new(root, "format", json_string("nascent-latpred-1"));
    json_object_set_new(root, "kind", json_string(p->kind == NAS_LATPRED_LINEAR ? "linear" : "mlp"));
    json_object_set_new(root, "d", json_integer(p->d));
    json_object_set_new(root, "hidden", json_integer(MLP_HIDDEN));
    json_object_set_new(root, "y_mean", json_real(p->y_mean));
    json_object_set_new(root, "y_std", json_real(p->y_std));
    if (p->kind == NAS_LATPRED_LINEAR) {
        for (int64_t a = 0; a <= p->d; a++) {
            json_array_append_new(w, json_real(p->linear_w[a]));
        }
    } else {
        for (int64_t a = 0; a < nas_params_total(p->mlp); a++) {
            json_array_append_new(w, json_real((double)nas_params_data(p->mlp)[a]));
        }
    }
    json_object_set_new(root, "weights", w);
    const int rc = json_dump_file(root, path, JSON_COMPACT);
    json_decref(root);
    return rc == 0 ? NAS_OK : nas_fail(p->ctx, NAS_ERR_IO, "latpred: cannot write %s", path);
}

nas_status nas_latpred_load(nas_ctx *ctx, const char *path, nas_latpred **out) {
    NAS_CHECK_ARG(ctx, path != NULL && out != NULL);
    *out = NULL;
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (root == NULL) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: %s", path, err.line, err.text);
    }
    const json_t *fmt = json_object_get(root, "format"), *kind = json_object_get(root, "kind");
    const json_t *d = json_object_get(root, "d"), *w = json_object_get(root, "weights");
    const json_t *hidden = json_object_get(root, "hidden");
    nas_status st = NAS_OK;
    nas_latpred *p = NULL;
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "nascent-latpred-1") != 0 ||
        !json_is_string(kind) || !json_is_integer(d) || json_integer_value(d) < 1 ||
        !json_is_array(w)) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: not a nascent latency predictor (format, kind, d or "
                      "weights missing)", path);
    } else {
        const int linear = strcmp(json_string_value(kind), "linear") == 0;
        p = latpred_new(ctx, linear ? NAS_LATPRED_LINEAR : NAS_LATPRED_MLP, json_integer_value(d));
        st = p == NULL ? NAS_ERR_NOMEM : NAS_OK;
        if (st == NAS_OK && !linear && (strcmp(json_string_value(kind), "mlp") != 0 ||
                                        json_integer_value(hidden) != MLP_HIDDEN)) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: unknown predictor kind or hidden size", path);
        }
        if (st == NAS_OK && linear) {
            p->linear_w = nas_calloc(ctx, (size_t)(p->d + 1), sizeof(double));
            st = p->linear_w == NULL ? NAS_ERR_NOMEM : NAS_OK;
        } else if (st == NAS_OK) {
            st = mlp_declare(p);
        }
        const size_t want = st != NAS_OK ? 0
                            : linear    ? (size_t)(p->d + 1)
                                        : (size_t)nas_params_total(p->mlp);
        if (st == NAS_OK && json_array_size(w) != want) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: \"weights\" has %zu values, expected %zu", path,
                          json_array_size(w), want);
        }
        for (size_t i = 0; st == NAS_OK && i < want; i++) {
            const double v = json_number_value(json_array_get(w, i));
            if (linear) {
                p->linear_w[i] = v;
            } else {
                nas_params_data(p->mlp)[i] = (float)v;
            }
        }
        if (st == NAS_OK) {
            p->y_mean = json_number_value(json_object_get(root, "y_mean"));
            p->y_std = json_number_value(json_object_get(root, "y_std"));
        }
    }
    json_decref(root);
    if (st != NAS_OK) {
        nas_latpred_free(p);
        return st;
    }
    *out = p;
    return NAS_OK;
}
