/* reinforce_lstm.c - the LSTM controller of REINFORCE (Zoph & Le 2017), built on the engine: at
 * step t the LSTM reads a one-hot of the previous decision's choice (a start token at t = 0;
 * the input weights act as the choice embeddings), and a per-decision linear head turns its
 * hidden state into the logits of decision t. Sampling runs T one-step graphs (decision t's head
 * on one LSTM step, state carried in buffers); an update runs the T-step graph on the told
 * architecture with the surrogate loss  sum_t <logits_t, G_t>, where G_t is the analytic
 * gradient of -(A log pi + entropy H) with respect to logits_t:
 *   G = -(A (onehot - p) - entropy p (log p + H)),
 * so backward gives exactly the policy gradient; Adam then takes one step. */
#include "reinforce_int.h"

struct rl_lstm {
    nas_params *p;
    nas_optim *opt;
    nas_graph *g;         /* the T-step graph with the surrogate loss (updates) */
    nas_graph **step;     /* [T] one-step graphs for sampling: (x, h, c) -> (h', c', logits) */
    nas_tensor **step_h, **step_c, **step_logits;
    float *sx, *sh, *sc;  /* the one-step graphs' inputs: [n_in], [H], [H] */
    int T, H, n_in, n_out;
    int *offset;          /* decision d's first index among all choices */
    float *x;             /* [T, n_in] one-hot inputs */
    float *zeros;         /* [H] initial h and c */
    float *G;             /* [n_out] surrogate gradients, decision after decision */
    nas_tensor **logits;  /* [T] */
    nas_tensor *loss;
};

static size_t lstm_floats(const rl_lstm *l) {
    return (size_t)l->T * (size_t)l->n_in;
}

static nas_status build(nas_strategy *s, rl_state *r, rl_lstm *l) {
    const int T = l->T, H = l->H;
    nas_param_id w_ih, w_hh, b;
    const int64_t sih[2] = {4 * H, l->n_in}, shh[2] = {4 * H, H}, sb[1] = {4 * H};
    nas_status st = nas_params_add(l->p, "lstm.w_ih", 2, sih, NAS_INIT_TORCH_DEFAULT,
                                   NAS_PARAM_TRAINABLE, 0, &w_ih);
    if (st == NAS_OK) {
        st = nas_params_add(l->p, "lstm.w_hh", 2, shh, NAS_INIT_TORCH_DEFAULT,
                            NAS_PARAM_TRAINABLE, 0, &w_hh);
    }
    if (st == NAS_OK) {
        st = nas_params_add(l->p, "lstm.b", 1, sb, NAS_INIT_TORCH_BIAS, NAS_PARAM_NO_DECAY, H,
                            &b);
    }
    nas_param_id *wo = nas_malloc(s->ctx, (size_t)T * 2 * sizeof(nas_param_id));
    if (wo == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int t = 0; st == NAS_OK && t < T; t++) {
        const int k = nas_space_n_choices(s->space, t);
        const int64_t sw[2] = {k, H}, sbo[1] = {k};
        char name[64];
        snprintf(name, sizeof(name), "head%d.w", t);
        st = nas_params_add(l->p, name, 2, sw, NAS_INIT_TORCH_DEFAULT, NAS_PARAM_TRAINABLE, 0,
                            &wo[2 * t]);
        if (st == NAS_OK) {
            snprintf(name, sizeof(name), "head%d.b", t);
            st = nas_params_add(l->p, name, 1, sbo, NAS_INIT_TORCH_BIAS, NAS_PARAM_NO_DECAY, H,
                                &wo[2 * t + 1]);
        }
    }
    if (st == NAS_OK) {
        nas_params_init(l->p, s->seed ^ 0x4c53544dull);
        const nas_optim_config oc = {.kind = NAS_OPTIM_ADAM};
        st = nas_optim_new(l->p, &oc, &l->opt);
    }
    /* One-step graphs for sampling: decision t's head on one LSTM step from buffers. */
    for (int t = 0; st == NAS_OK && t < T; t++) {
        nas_graph *g = l->step[t];
        nas_graph_set_grad_enabled(g, 0);
        const int64_t sx[2] = {1, l->n_in}, sh[2] = {1, H};
        nas_tensor *c2 = NULL;
        l->step_h[t] = nas_lstm_cell(g, nas_input(g, 2, sx, l->sx), nas_input(g, 2, sh, l->sh),
                                     nas_input(g, 2, sh, l->sc), nas_param(g, l->p, w_ih),
                                     nas_param(g, l->p, w_hh), nas_param(g, l->p, b), &c2);
        l->step_c[t] = c2;
        l->step_logits[t] = nas_linear(g, l->step_h[t], nas_param(g, l->p, wo[2 * t]),
                                       nas_param(g, l->p, wo[2 * t + 1]));
        st = nas_graph_status(g);
    }
    if (st == NAS_OK) {
        nas_graph *g = l->g;
        const int64_t sh[2] = {1, H};
        nas_tensor *h = nas_input(g, 2, sh, l->zeros), *c = nas_input(g, 2, sh, l->zeros);
        nas_tensor *wih = nas_param(g, l->p, w_ih), *whh = nas_param(g, l->p, w_hh),
                   *bias = nas_param(g, l->p, b);
        nas_tensor *loss = NULL;
        for (int t = 0; t < T; t++) {
            const int64_t sx[2] = {1, l->n_in};
            nas_tensor *x = nas_input(g, 2, sx, l->x + (size_t)t * l->n_in);
            nas_tensor *c2 = NULL;
            h = nas_lstm_cell(g, x, h, c, wih, whh, bias, &c2);
            c = c2;
            l->logits[t] = nas_linear(g, h, nas_param(g, l->p, wo[2 * t]),
                                      nas_param(g, l->p, wo[2 * t + 1]));
            const int64_t sgk[2] = {1, nas_space_n_choices(s->space, t)};
            nas_tensor *gt = nas_input(g, 2, sgk, l->G + l->offset[t]);
            nas_tensor *term = nas_sum_all(g, nas_mul(g, l->logits[t], gt));
            loss = loss == NULL ? term : nas_add(g, loss, term);
        }
        l->loss = loss;
        st = nas_graph_status(g);
    }
    nas_free(s->ctx, wo, (size_t)T * 2 * sizeof(nas_param_id));
    (void)r;
    return st;
}

nas_status nas_rl_lstm_init(nas_strategy *s, rl_state *r) {
    rl_lstm *l = nas_calloc(s->ctx, 1, sizeof(*l));
    if (l == NULL) {
        return NAS_ERR_NOMEM;
    }
    r->lstm = l;
    l->T = r->n_dec;
    l->H = r->hidden;
    l->n_out = r->n_logits;
    l->n_in = r->n_logits + 1;
    l->offset = nas_malloc(s->ctx, (size_t)l->T * sizeof(int));
    l->x = nas_calloc(s->ctx, lstm_floats(l), sizeof(float));
    l->zeros = nas_calloc(s->ctx, (size_t)l->H, sizeof(float));
    l->G = nas_calloc(s->ctx, (size_t)l->n_out, sizeof(float));
    l->logits = nas_calloc(s->ctx, (size_t)l->T, sizeof(nas_tensor *));
    l->p = nas_params_new(s->ctx);
    l->g = nas_graph_new(s->ctx);
    l->step = nas_calloc(s->ctx, (size_t)l->T, sizeof(nas_graph *));
    l->step_h = nas_calloc(s->ctx, (size_t)l->T, sizeof(nas_tensor *));
    l->step_c = nas_calloc(s->ctx, (size_t)l->T, sizeof(nas_tensor *));
    l->step_logits = nas_calloc(s->ctx, (size_t)l->T, sizeof(nas_tensor *));
    l->sx = nas_calloc(s->ctx, (size_t)l->n_in, sizeof(float));
    l->sh = nas_calloc(s->ctx, (size_t)l->H, sizeof(float));
    l->sc = nas_calloc(s->ctx, (size_t)l->H, sizeof(float));
    if (!l->offset || !l->x || !l->zeros || !l->G || !l->logits || !l->p || !l->g || !l->step ||
        !l->step_h || !l->step_c || !l->step_logits || !l->sx || !l->sh || !l->sc) {
        return NAS_ERR_NOMEM;
    }
    for (int t = 0; t < l->T; t++) {
        l->step[t] = nas_graph_new(s->ctx);
        if (l->step[t] == NULL) {
            return NAS_ERR_NOMEM;
        }
    }
    for (int t = 0, off = 0; t < l->T; t++) {
        l->offset[t] = off;
        off += nas_space_n_choices(s->space, t);
    }
    return build(s, r, l);
}

void nas_rl_lstm_free(nas_strategy *s, rl_state *r) {
    rl_lstm *l = r->lstm;
    if (l == NULL) {
        return;
    }
    nas_graph_free(l->g);
    for (int t = 0; l->step != NULL && t < l->T; t++) {
        nas_graph_free(l->step[t]);
    }
    nas_free(s->ctx, l->step, (size_t)l->T * sizeof(nas_graph *));
    nas_free(s->ctx, l->step_h, (size_t)l->T * sizeof(nas_tensor *));
    nas_free(s->ctx, l->step_c, (size_t)l->T * sizeof(nas_tensor *));
    nas_free(s->ctx, l->step_logits, (size_t)l->T * sizeof(nas_tensor *));
    nas_free(s->ctx, l->sx, (size_t)l->n_in * sizeof(float));
    nas_free(s->ctx, l->sh, (size_t)l->H * sizeof(float));
    nas_free(s->ctx, l->sc, (size_t)l->H * sizeof(float));
    nas_optim_free(l->opt);
    nas_params_free(l->p);
    nas_free(s->ctx, l->offset, (size_t)l->T * sizeof(int));
    nas_free(s->ctx, l->x, lstm_floats(l) * sizeof(float));
    nas_free(s->ctx, l->zeros, (size_t)l->H * sizeof(float));
    nas_free(s->ctx, l->G, (size_t)l->n_out * sizeof(float));
    nas_free(s->ctx, l->logits, (size_t)l->T * sizeof(nas_tensor *));
    nas_free(s->ctx, l, sizeof(*l));
    r->lstm = NULL;
}

/* One-hot inputs for the choices of a: start token, then each decision's choice. */
static void set_inputs(rl_lstm *l, const nas_arch *a, int upto) {
    memset(l->x, 0, lstm_floats(l) * sizeof(float));
    l->x[0] = 1.0f;
    for (int t = 1; t < upto && t < l->T; t++) {
        l->x[(size_t)t * l->n_in + 1 + l->offset[t - 1] + a->choice[t - 1]] = 1.0f;
    }
}

/* Softmax of decision t's logits into p (k entries); returns the entropy. */
static double probs(const nas_tensor *logits, int k, double *p) {
    const float *z = nas_tensor_data(logits);
    double mx = (double)z[0], sum = 0.0, h = 0.0;
    for (int c = 1; c < k; c++) {
        mx = (double)z[c] > mx ? (double)z[c] : mx;
    }
    for (int c = 0; c < k; c++) {
        p[c] = exp((double)z[c] - mx);
        sum += p[c];
    }
    for (int c = 0; c < k; c++) {
        p[c] /= sum;
        h -= p[c] > 0.0 ? p[c] * log(p[c]) : 0.0;
    }
    return h;
}

static nas_status sample(nas_strategy *s, rl_state *r, nas_arch *out) {
    rl_lstm *l = r->lstm;
    double p[256];
    out->n = l->T;
    for (int t = 0; t < l->T; t++) {
        const int k = nas_space_n_choices(s->space, t);
        if (k > 256) {
            return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED, "strategy reinforce: decision %d has "
                            "%d choices (at most 256)", t, k);
        }
        /* Input: the start token, then the previous choice; state from the previous step. */
        memset(l->sx, 0, (size_t)l->n_in * sizeof(float));
        l->sx[t == 0 ? 0 : 1 + l->offset[t - 1] + out->choice[t - 1]] = 1.0f;
        if (t == 0) {
            memset(l->sh, 0, (size_t)l->H * sizeof(float));
            memset(l->sc, 0, (size_t)l->H * sizeof(float));
        } else {
            memcpy(l->sh, nas_tensor_data(l->step_h[t - 1]), (size_t)l->H * sizeof(float));
            memcpy(l->sc, nas_tensor_data(l->step_c[t - 1]), (size_t)l->H * sizeof(float));
        }
        const nas_status st = nas_graph_forward(l->step[t]);
        if (st != NAS_OK) {
            return st;
        }
        probs(l->step_logits[t], k, p);
        double u = nas_rng_uniform(&s->rng);
        int c = k - 1;
        for (int j = 0; j < k - 1; j++) {
            u -= p[j];
            if (u < 0.0) {
                c = j;
                break;
            }
        }
        out->choice[t] = c;
    }
    return NAS_OK;
}

static nas_status update(nas_strategy *s, rl_state *r, const nas_arch *a, double adv) {
    rl_lstm *l = r->lstm;
    double p[256];
    set_inputs(l, a, l->T);
    nas_status st = nas_graph_forward(l->g);
    for (int t = 0; st == NAS_OK && t < l->T; t++) {
        const int k = nas_space_n_choices(s->space, t);
        const double h = probs(l->logits[t], k, p);
        for (int c = 0; c < k; c++) {
            const double glp = (c == a->choice[t] ? 1.0 : 0.0) - p[c];
            const double gh = p[c] > 0.0 ? -p[c] * (log(p[c]) + h) : 0.0;
            l->G[l->offset[t] + c] = (float)-(adv * glp + r->entropy * gh);
        }
    }
    if (st == NAS_OK) {
        nas_params_zero_grad(l->p);
        st = nas_graph_backward(l->g, l->loss);
    }
    if (st == NAS_OK) {
        st = nas_optim_step(l->opt, (float)r->lr);
    }
    return st;
}

/* The controller's graphs are tiny: run them on one thread (see NAS_OMP_SERIAL). */
nas_status nas_rl_lstm_sample(nas_strategy *s, rl_state *r, nas_arch *out) {
    nas_status st = NAS_OK;
    NAS_OMP_SERIAL
    st = sample(s, r, out);
    return st;
}

nas_status nas_rl_lstm_update(nas_strategy *s, rl_state *r, const nas_arch *a, double adv) {
    nas_status st = NAS_OK;
    NAS_OMP_SERIAL
    st = update(s, r, a, adv);
    return st;
}
