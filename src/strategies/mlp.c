/* mlp.c - the performance predictor of the predictor-based strategies (bo, pnas): an ensemble of
 * small multi-layer perceptrons on the space's feature vectors (one-hot choices), built and
 * trained with the engine (nas_linear, nas_relu, Adam). All members live in one parameter block
 * and one graph whose loss is the sum of the members' mean squared errors: their gradients are
 * independent, so this is exactly separate training, with one graph run per step for all.
 * Members differ by their initialisation (parameter streams of one seed). Targets are
 * standardised; predictions are returned in the targets' units. */
#include "strategies_int.h"

#define MAX_LAYERS 4

struct nas_mlp_ensemble {
    nas_ctx *ctx;
    nas_mlp_config cfg;
    int64_t n_features;
    nas_params *params;
    /* per member, per linear layer (hidden layers + output): weight and bias ids */
    nas_param_id *w, *b;
    double y_mean, y_std;
};

static int n_linear(const nas_mlp_config *c) {
    return c->layers + 1;
}

nas_status nas_mlp_ensemble_new(nas_ctx *ctx, int64_t n_features, const nas_mlp_config *cfg,
                                nas_mlp_ensemble **out) {
    NAS_CHECK_ARG(ctx, cfg != NULL && out != NULL && n_features > 0 && cfg->members > 0 &&
                           cfg->members <= 64 && cfg->hidden > 0 && cfg->layers >= 1 && cfg->layers <= MAX_LAYERS);
    *out = NULL;
    nas_mlp_ensemble *e = nas_calloc(ctx, 1, sizeof(*e));
    if (e == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->ctx = ctx;
    e->cfg = *cfg;
    e->n_features = n_features;
    e->y_std = 1.0;
    const int L = n_linear(cfg);
    const size_t ids = (size_t)cfg->members * (size_t)L;
    e->w = nas_malloc(ctx, ids * sizeof(nas_param_id));
    e->b = nas_malloc(ctx, ids * sizeof(nas_param_id));
    e->params = nas_params_new(ctx);
    nas_status st = e->w && e->b && e->params ? NAS_OK : NAS_ERR_NOMEM;
    for (int m = 0; m < cfg->members && st == NAS_OK; m++) {
        int64_t in = n_features;
        for (int l = 0; l < L && st == NAS_OK; l++) {
            const int64_t o = l == L - 1 ? 1 : cfg->hidden;
            const int64_t wshape[2] = {o, in}, bshape[1] = {o};
            char name[64];
            snprintf(name, sizeof(name), "m%d.l%d.w", m, l);
            st = nas_params_add(e->params, name, 2, wshape, NAS_INIT_TORCH_DEFAULT,
                                NAS_PARAM_TRAINABLE, 0, &e->w[m * L + l]);
            if (st == NAS_OK) {
                snprintf(name, sizeof(name), "m%d.l%d.b", m, l);
                st = nas_params_add(e->params, name, 1, bshape, NAS_INIT_TORCH_BIAS,
                                    NAS_PARAM_NO_DECAY, in, &e->b[m * L + l]);
            }
            in = o;
        }
    }
    if (st != NAS_OK) {
        nas_mlp_ensemble_free(e);
        return st;
    }
    *out = e;
    return NAS_OK;
}

void nas_mlp_ensemble_free(nas_mlp_ensemble *e) {
    if (e == NULL) {
        return;
    }
    const size_t ids = (size_t)e->cfg.members * (size_t)n_linear(&e->cfg);
    nas_params_free(e->params);
    nas_free(e->ctx, e->w, ids * sizeof(nas_param_id));
    nas_free(e->ctx, e->b, ids * sizeof(nas_param_id));
    nas_free(e->ctx, e, sizeof(*e));
}

/* Record member m's forward pass of x [n, F] -> [n, 1]. */
static nas_tensor *member_forward(nas_mlp_ensemble *e, nas_graph *g, int m, nas_tensor *x) {
    const int L = n_linear(&e->cfg);
    nas_tensor *h = x;
    for (int l = 0; l < L; l++) {
        h = nas_linear(g, h, nas_param(g, e->params, e->w[m * L + l]),
                       nas_param(g, e->params, e->b[m * L + l]));
        if (l < L - 1) {
            h = nas_relu(g, h);
        }
    }
    return h;
}

static nas_status fit(nas_mlp_ensemble *e, const float *x, const float *y, int64_t n,
                      uint64_t seed) {
    NAS_CHECK_ARG(e->ctx, x != NULL && y != NULL && n > 0);
    nas_ctx *ctx = e->ctx;
    /* Standardise the targets; clip far-low outliers (failed or degenerate architectures) so
     * they do not flatten the scale of the good region. */
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mean += (double)y[i];
    }
    mean /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        var += ((double)y[i] - mean) * ((double)y[i] - mean);
    }
    e->y_mean = mean;
    e->y_std = n > 1 && var > 0.0 ? sqrt(var / (double)(n - 1)) : 1.0;
    float *yt = nas_malloc(ctx, (size_t)n * sizeof(float));
    if (yt == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        const double z = ((double)y[i] - e->y_mean) / e->y_std;
        yt[i] = (float)(z < -3.0 ? -3.0 : z);
    }
    nas_params_init(e->params, seed);
    const nas_optim_config oc = {.kind = NAS_OPTIM_ADAM, .weight_decay = e->cfg.weight_decay};
    nas_optim *opt = NULL;
    nas_status st = nas_optim_new(e->params, &oc, &opt);
    nas_graph *g = st == NAS_OK ? nas_graph_new(ctx) : NULL;
    if (st == NAS_OK && g == NULL) {
        st = NAS_ERR_NOMEM;
    }
    if (st == NAS_OK) {
        const int64_t xs[2] = {n, e->n_features}, ys[2] = {n, 1};
        nas_tensor *xt = nas_input(g, 2, xs, (float *)x);
        nas_tensor *target = nas_scale(g, nas_input(g, 2, ys, yt), -1.0f);
        nas_tensor *loss = NULL;
        for (int m = 0; m < e->cfg.members; m++) {
            nas_tensor *d = nas_add(g, member_forward(e, g, m, xt), target);
            nas_tensor *l = nas_mean_all(g, nas_mul(g, d, d));
            loss = loss == NULL ? l : nas_add(g, loss, l);
        }
        st = nas_graph_status(g);
        for (int step = 0; st == NAS_OK && step < e->cfg.epochs; step++) {
            nas_params_zero_grad(e->params);
            st = nas_graph_forward(g);
            if (st == NAS_OK) {
                st = nas_graph_backward(g, loss);
            }
            if (st == NAS_OK) {
                st = nas_optim_step(opt, e->cfg.lr);
            }
        }
    }
    nas_graph_free(g);
    nas_optim_free(opt);
    nas_free(ctx, yt, (size_t)n * sizeof(float));
    return st;
}

static nas_status predict(nas_mlp_ensemble *e, const float *x, int64_t n, float *mean,
                          float *std) {
    NAS_CHECK_ARG(e->ctx, x != NULL && n > 0 && mean != NULL);
    nas_graph *g = nas_graph_new(e->ctx);
    if (g == NULL) {
        return NAS_ERR_NOMEM;
    }
    nas_graph_set_grad_enabled(g, 0);
    const int M = e->cfg.members;
    nas_tensor *out[64];
    const int64_t xs[2] = {n, e->n_features};
    nas_tensor *xt = nas_input(g, 2, xs, (float *)x);
    for (int m = 0; m < M && m < 64; m++) {
        out[m] = member_forward(e, g, m, xt);
    }
    nas_status st = nas_graph_status(g);
    if (st == NAS_OK) {
        st = nas_graph_forward(g);
    }
    for (int64_t i = 0; st == NAS_OK && i < n; i++) {
        double s = 0.0, s2 = 0.0;
        for (int m = 0; m < M && m < 64; m++) {
            const double v = (double)nas_tensor_data(out[m])[i];
            s += v;
            s2 += v * v;
        }
        const double mu = s / M, var = s2 / M - mu * mu;
        mean[i] = (float)(e->y_mean + e->y_std * mu);
        if (std != NULL) {
            std[i] = (float)(e->y_std * sqrt(var > 0.0 ? var : 0.0));
        }
    }
    nas_graph_free(g);
    return st;
}

nas_status nas_mlp_ensemble_fit(nas_mlp_ensemble *e, const float *x, const float *y, int64_t n,
                                uint64_t seed) {
    nas_status st = NAS_OK;
    NAS_OMP_SERIAL
    st = fit(e, x, y, n, seed);
    return st;
}

nas_status nas_mlp_ensemble_predict(nas_mlp_ensemble *e, const float *x, int64_t n, float *mean,
                                    float *std) {
    nas_status st = NAS_OK;
    NAS_OMP_SERIAL
    st = predict(e, x, n, mean, std);
    return st;
}
