/* reinforce.c - REINFORCE (Williams 1992; Zoph & Le 2017): a policy over the decisions is
 * sampled for each ask and updated after each tell with the policy gradient
 *   grad = A * grad log pi(a) + entropy * grad H(pi),   A = (reward - baseline) / scale,
 * where the baseline is a moving average of rewards (decay `baseline`) and scale a moving RMS of
 * reward - baseline (so the learning rate does not depend on the reward's units).
 * Controllers: `categorical` (independent softmax per decision, plain SGD on the logits) and
 * `lstm` (an LSTM emitting the decisions in sequence, each choice fed back as the next input,
 * trained with Adam through the engine: src/strategies/reinforce_lstm.c).
 * Repeats are avoided: a sample already proposed is redrawn (up to 32 times, 8 with the LSTM,
 * then a uniform unseen one); the update still uses whatever architecture was evaluated. */
#include "reinforce_int.h"

#include <stdlib.h>

static nas_status rl_init(nas_strategy *s) {
    static const char *const known[] = {"controller", "lr", "baseline", "entropy", "hidden",
                                        NULL};
    nas_status st = nas_strategy_params_check(s, known);
    char controller[32] = "lstm";
    double lr = -1.0, baseline = 0.9, entropy = 1e-3;
    int64_t hidden = 32;
    if (st == NAS_OK) {
        st = nas_strategy_param_str(s, "controller", controller, sizeof(controller));
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_double(s, "lr", 0.0, 100.0, &lr);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_double(s, "baseline", 0.0, 1.0, &baseline);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_double(s, "entropy", 0.0, 100.0, &entropy);
    }
    if (st == NAS_OK) {
        st = nas_strategy_param_int(s, "hidden", 1, 4096, &hidden);
    }
    if (st != NAS_OK) {
        return st;
    }
    rl_state *r = nas_calloc(s->ctx, 1, sizeof(*r));
    if (r == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = r;
    if (strcmp(controller, "categorical") == 0) {
        r->kind = RL_CATEGORICAL;
    } else if (strcmp(controller, "lstm") == 0) {
        r->kind = RL_LSTM;
    } else {
        return nas_fail(s->ctx, NAS_ERR_ARG, "strategy reinforce: controller=%s is not "
                        "categorical or lstm", controller);
    }
    r->lr = lr >= 0.0 ? lr : (r->kind == RL_CATEGORICAL ? 0.2 : 0.005);
    r->baseline_decay = baseline;
    r->entropy = entropy;
    r->hidden = (int)hidden;
    r->n_dec = nas_space_n_decisions(s->space);
    for (int d = 0; d < r->n_dec; d++) {
        r->n_logits += nas_space_n_choices(s->space, d);
    }
    r->logits = nas_calloc(s->ctx, (size_t)r->n_logits, sizeof(double));
    if (r->logits == NULL) {
        return NAS_ERR_NOMEM;
    }
    st = nas_archmap_init(&r->seen, s->ctx, s->budget > 0 ? s->budget : 256);
    if (st == NAS_OK && r->kind == RL_LSTM) {
        st = nas_rl_lstm_init(s, r);
    }
    return st;
}

/* Softmax of n logits into p; returns the entropy. */
static double softmax(const double *z, int n, double *p) {
    double mx = z[0], sum = 0.0, h = 0.0;
    for (int c = 1; c < n; c++) {
        mx = z[c] > mx ? z[c] : mx;
    }
    for (int c = 0; c < n; c++) {
        p[c] = exp(z[c] - mx);
        sum += p[c];
    }
    for (int c = 0; c < n; c++) {
        p[c] /= sum;
        h -= p[c] > 0.0 ? p[c] * log(p[c]) : 0.0;
    }
    return h;
}

static int draw(nas_rng *rng, const double *p, int n) {
    double u = nas_rng_uniform(rng);
    for (int c = 0; c < n - 1; c++) {
        u -= p[c];
        if (u < 0.0) {
            return c;
        }
    }
    return n - 1;
}

static nas_status categorical_sample(nas_strategy *s, rl_state *r, nas_arch *out) {
    double p[256];
    out->n = r->n_dec;
    int off = 0;
    for (int d = 0; d < r->n_dec; d++) {
        const int k = nas_space_n_choices(s->space, d);
        if (k > 256) {
            return nas_fail(s->ctx, NAS_ERR_UNSUPPORTED, "strategy reinforce: decision %d has %d "
                            "choices (at most 256)", d, k);
        }
        softmax(r->logits + off, k, p);
        out->choice[d] = draw(&s->rng, p, k);
        off += k;
    }
    return NAS_OK;
}

static nas_status rl_ask(nas_strategy *s, nas_arch *out) {
    rl_state *r = s->impl;
    const int tries = r->kind == RL_LSTM ? 8 : 32; /* an LSTM sample costs T graph runs */
    for (int t = 0; t < tries; t++) {
        const nas_status st = r->kind == RL_LSTM ? nas_rl_lstm_sample(s, r, out)
                                                 : categorical_sample(s, r, out);
        if (st != NAS_OK) {
            return st;
        }
        int added = 0;
        const nas_status st2 = nas_archmap_put(&r->seen, nas_space_hash(s->space, out), NAN, &added);
        if (st2 != NAS_OK || added) {
            return st2;
        }
    }
    return nas_strategy_sample_unseen(s, &r->seen, out);
}

/* One SGD step on the independent logits: d log pi / dz_c = 1[c = a] - p_c and
 * dH / dz_c = -p_c (log p_c + H). */
static void categorical_update(nas_strategy *s, rl_state *r, const nas_arch *a, double adv) {
    double p[256];
    int off = 0;
    for (int d = 0; d < r->n_dec; d++) {
        const int k = nas_space_n_choices(s->space, d);
        const double h = softmax(r->logits + off, k, p);
        for (int c = 0; c < k; c++) {
            const double glp = (c == a->choice[d] ? 1.0 : 0.0) - p[c];
            const double gh = p[c] > 0.0 ? -p[c] * (log(p[c]) + h) : 0.0;
            r->logits[off + c] += r->lr * (adv * glp + r->entropy * gh);
        }
        off += k;
    }
}

static nas_status rl_tell(nas_strategy *s, const nas_arch *a, double reward) {
    rl_state *r = s->impl;
    nas_status st = nas_archmap_put(&r->seen, nas_space_hash(s->space, a), reward, NULL);
    if (st != NAS_OK || isnan(reward)) {
        return st; /* a failed evaluation teaches nothing about the reward's scale */
    }
    if (r->n_rewards == 0) {
        r->baseline = reward;
        r->scale2 = 0.0;
    }
    const double diff = reward - r->baseline;
    r->n_rewards++;
    /* The first reward only sets the baseline; the scale needs a second one. */
    if (r->n_rewards > 1) {
        r->scale2 = r->n_rewards == 2 ? diff * diff
                                      : r->baseline_decay * r->scale2 +
                                            (1.0 - r->baseline_decay) * diff * diff;
        const double adv = diff / (sqrt(r->scale2) + 1e-8);
        if (r->kind == RL_LSTM) {
            st = nas_rl_lstm_update(s, r, a, adv);
        } else {
            categorical_update(s, r, a, adv);
        }
    }
    r->baseline = r->baseline_decay * r->baseline + (1.0 - r->baseline_decay) * reward;
    return st;
}

static void rl_free(nas_strategy *s) {
    rl_state *r = s->impl;
    if (r == NULL) {
        return;
    }
    nas_rl_lstm_free(s, r);
    nas_free(s->ctx, r->logits, (size_t)r->n_logits * sizeof(double));
    nas_archmap_deinit(&r->seen);
    nas_free(s->ctx, r, sizeof(*r));
}

const nas_strategy_vt nas_strategy_reinforce_vt = {
    .name = "reinforce",
    .summary = "REINFORCE policy gradient (controller=lstm|categorical, lr=0.005 (lstm) / 0.2, "
               "baseline=0.9, entropy=0.001, hidden=32)",
    .init = rl_init,
    .ask = rl_ask,
    .tell = rl_tell,
    .free = rl_free,
};
