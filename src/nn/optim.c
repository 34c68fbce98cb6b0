/* optim.c - optimisers over a nas_params block: SGD (momentum, Nesterov, L2 weight decay), Adam
 * (L2 weight decay) and AdamW (decoupled weight decay), with PyTorch 1.13's torch.optim update
 * rules reproduced operation by operation (same float32 roundings, same fused multiply-adds as
 * ATen's AVX2 kernels, same double-precision scalars for bias correction), so a run matches
 * torch.optim to the last bit or nearly so.
 *
 * The parameters an optimiser updates are the entries whose flags match (flags & mask) == value,
 * never buffers. At nas_optim_new they are listed as "spans" (block offset, state offset, length,
 * decay on/off) and their state is laid out compactly in one flat block: SGD with momentum keeps
 * one buffer [n], Adam/AdamW keep exp_avg [n] then exp_avg_sq [n], n being the number of updated
 * floats. nas_optim_step walks fixed chunks of that compact index space in parallel; it never
 * allocates (a steady-state training step makes no allocator call). */
#include "tensor/tensor_int.h"

#include <math.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define OPTIM_AVX2 1
#else
#define OPTIM_AVX2 0
#endif

/* Floats per parallel work item: large enough to amortise the fork, small enough to balance. */
#define OPTIM_CHUNK 8192

typedef struct optim_span {
    int64_t data_off;  /* into p->data / p->grad */
    int64_t state_off; /* into the compact index space [0, n) */
    int64_t numel;
    int decay; /* 0 for NAS_PARAM_NO_DECAY entries */
} optim_span;

struct nas_optim {
    nas_ctx *ctx;
    nas_params *p;
    nas_optim_config cfg; /* defaults filled in */
    int64_t n_entries;    /* p's entry count at creation: adding entries later is an error */
    optim_span *spans;
    int64_t n_spans;
    int64_t n;    /* updated floats */
    float *state; /* n_state floats, see the file comment */
    int64_t n_state;
    int64_t steps; /* completed steps */
};

/* The per-step scalars, computed once in double as torch.optim does in Python and rounded to
 * float where ATen rounds a Python scalar to the tensor's dtype. */
typedef struct step_consts {
    float lr_neg; /* -lr: param.add_(d_p, alpha=-lr) */
    float wd;     /* weight_decay as an alpha */
    float momentum;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float bc2_sqrt; /* sqrt(1 - beta2^t) */
    float eps;
    float step_size_neg; /* -lr / (1 - beta1^t) */
    float adamw_scale;   /* 1 - lr * weight_decay */
    int first;           /* SGD: the momentum buffer starts as a copy of d_p */
} step_consts;

static int span_matches(int flags, int mask, int value) {
    return (flags & NAS_PARAM_BUFFER) == 0 && (flags & mask) == value;
}

static nas_status check_config(nas_ctx *ctx, const nas_optim_config *c) {
    if (c->kind != NAS_OPTIM_SGD && c->kind != NAS_OPTIM_ADAM && c->kind != NAS_OPTIM_ADAMW) {
        return nas_fail(ctx, NAS_ERR_ARG, "optim_new: unknown optimiser kind %d", (int)c->kind);
    }
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay)) {
        return nas_fail(ctx, NAS_ERR_ARG, "optim_new: weight_decay %g must be finite and >= 0",
                        (double)c->weight_decay);
    }
    if (c->kind == NAS_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f) || !isfinite(c->momentum)) {
            return nas_fail(ctx, NAS_ERR_ARG, "optim_new: momentum %g must be finite and >= 0",
                            (double)c->momentum);
        }
        if (c->nesterov && c->momentum == 0.0f) {
            return nas_fail(ctx, NAS_ERR_ARG, "optim_new: Nesterov momentum needs momentum > 0");
        }
        return NAS_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f)) {
        return nas_fail(ctx, NAS_ERR_ARG, "optim_new: betas (%g, %g) must lie in [0, 1)",
                        (double)c->beta1, (double)c->beta2);
    }
    if (!(c->eps > 0.0f) || !isfinite(c->eps)) {
        return nas_fail(ctx, NAS_ERR_ARG, "optim_new: eps %g must be finite and > 0",
                        (double)c->eps);
    }
    return NAS_OK;
}

static nas_optim_config with_defaults(const nas_optim_config *cfg) {
    nas_optim_config c = *cfg;
    if (c.kind != NAS_OPTIM_SGD) {
        c.beta1 = c.beta1 == 0.0f ? 0.9f : c.beta1;
        c.beta2 = c.beta2 == 0.0f ? 0.999f : c.beta2;
        c.eps = c.eps == 0.0f ? 1e-8f : c.eps;
    }
    return c;
}

static int64_t state_floats(const nas_optim_config *c, int64_t n) {
    if (c->kind == NAS_OPTIM_SGD) {
        return c->momentum != 0.0f ? n : 0;
    }
    return 2 * n;
}

nas_status nas_optim_new(nas_params *p, const nas_optim_config *cfg, nas_optim **out) {
    if (p == NULL || out == NULL) {
        return NAS_ERR_ARG;
    }
    nas_ctx *ctx = p->ctx;
    *out = NULL;
    NAS_CHECK_ARG(ctx, cfg != NULL);
    const nas_optim_config c = with_defaults(cfg);
    nas_status st = check_config(ctx, &c);
    if (st != NAS_OK) {
        return st;
    }
    if ((c.flags_value & ~c.flags_mask) != 0) {
        return nas_fail(ctx, NAS_ERR_ARG,
                        "optim_new: flags_value 0x%x has bits outside flags_mask 0x%x: nothing "
                        "could match",
                        (unsigned)c.flags_value, (unsigned)c.flags_mask);
    }
    int64_t n_spans = 0, n = 0;
    for (int64_t i = 0; i < p->n_entries; i++) {
        if (span_matches(p->entries[i].flags, c.flags_mask, c.flags_value)) {
            n_spans++;
            n += p->entries[i].numel;
        }
    }
    nas_optim *o = nas_calloc(ctx, 1, sizeof(nas_optim));
    if (o == NULL) {
        return NAS_ERR_NOMEM;
    }
    o->ctx = ctx;
    o->p = p;
    o->cfg = c;
    o->n_entries = p->n_entries;
    o->n = n;
    o->n_state = state_floats(&c, n);
    o->n_spans = n_spans;
    if (n_spans > 0) {
        o->spans = nas_malloc(ctx, (size_t)n_spans * sizeof(optim_span));
        if (o->spans == NULL) {
            nas_optim_free(o);
            return NAS_ERR_NOMEM;
        }
    }
    if (o->n_state > 0) {
        o->state = nas_calloc(ctx, (size_t)o->n_state, sizeof(float));
        if (o->state == NULL) {
            nas_optim_free(o);
            return NAS_ERR_NOMEM;
        }
    }
    int64_t k = 0, off = 0;
    for (int64_t i = 0; i < p->n_entries; i++) {
        const nas_param_entry *e = &p->entries[i];
        if (span_matches(e->flags, c.flags_mask, c.flags_value)) {
            o->spans[k++] = (optim_span){.data_off = e->offset,
                                         .state_off = off,
                                         .numel = e->numel,
                                         .decay = (e->flags & NAS_PARAM_NO_DECAY) == 0};
            off += e->numel;
        }
    }
    *out = o;
    return NAS_OK;
}

void nas_optim_free(nas_optim *o) {
    if (o == NULL) {
        return;
    }
    nas_ctx *ctx = o->ctx;
    nas_free(ctx, o->state, (size_t)o->n_state * sizeof(float));
    nas_free(ctx, o->spans, (size_t)o->n_spans * sizeof(optim_span));
    nas_free(ctx, o, sizeof(nas_optim));
}

/* ------------------------------------------------------------------------------ update rules */
/* Each rule updates floats [i0, i1) of one span. w, g: the span's params and grads; s0 (and s1):
 * its state. Comments quote the torch.optim line each statement reproduces; ATen's add with an
 * alpha is vec::fmadd(b, alpha, a), hence the fmaf calls. */

/* The AVX2 bodies below perform the same IEEE operations in the same order as the scalar
 * loops (mul, add, fma, sqrt and div are correctly rounded in both), so results are identical
 * bit for bit whatever the split between vector body and scalar tail. */
static void sgd_range(const step_consts *k, float *w, const float *g, float *buf, int64_t n,
                      int decay, int momentum, int nesterov) {
    const float wd = decay ? k->wd : 0.0f;
    int64_t i = 0;
#if OPTIM_AVX2
    const __m256 vwd = _mm256_set1_ps(wd), vmom = _mm256_set1_ps(k->momentum);
    const __m256 vlr = _mm256_set1_ps(k->lr_neg);
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = _mm256_loadu_ps(w + i);
        __m256 d = _mm256_loadu_ps(g + i);
        if (wd != 0.0f) {
            d = _mm256_fmadd_ps(wv, vwd, d);
        }
        if (momentum) {
            const __m256 b =
                k->first ? d : _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(buf + i), vmom), d);
            _mm256_storeu_ps(buf + i, b);
            d = nesterov ? _mm256_fmadd_ps(b, vmom, d) : b;
        }
        _mm256_storeu_ps(w + i, _mm256_fmadd_ps(d, vlr, wv));
    }
#endif
    for (; i < n; i++) {
        float d = g[i];
        if (wd != 0.0f) {
            d = fmaf(w[i], wd, d); /* d_p = d_p.add(param, alpha=weight_decay) */
        }
        if (momentum) {
            float b;
            if (k->first) {
                b = d; /* buf = torch.clone(d_p) */
            } else {
                b = buf[i] * k->momentum + d; /* buf.mul_(momentum).add_(d_p, alpha=1) */
            }
            buf[i] = b;
            d = nesterov ? fmaf(b, k->momentum, d) : b; /* d_p = d_p.add(buf, alpha=momentum) */
        }
        w[i] = fmaf(d, k->lr_neg, w[i]); /* param.add_(d_p, alpha=-lr) */
    }
}

static void adam_range(const step_consts *k, float *w, const float *g, float *m, float *v,
                       int64_t n, int decay, int adamw) {
    const float wd = decay ? k->wd : 0.0f;
    const float scale = decay ? k->adamw_scale : 1.0f;
    int64_t i = 0;
#if OPTIM_AVX2
    const __m256 vwd = _mm256_set1_ps(wd), vscale = _mm256_set1_ps(scale);
    const __m256 b1 = _mm256_set1_ps(k->beta1), omb1 = _mm256_set1_ps(k->one_minus_beta1);
    const __m256 b2 = _mm256_set1_ps(k->beta2), omb2 = _mm256_set1_ps(k->one_minus_beta2);
    const __m256 bc2 = _mm256_set1_ps(k->bc2_sqrt), eps = _mm256_set1_ps(k->eps);
    const __m256 ssn = _mm256_set1_ps(k->step_size_neg);
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i), wi = _mm256_loadu_ps(w + i);
        if (adamw) {
            wi = _mm256_mul_ps(wi, vscale);
        } else if (wd != 0.0f) {
            gi = _mm256_fmadd_ps(wi, vwd, gi);
        }
        const __m256 mi = _mm256_fmadd_ps(gi, omb1, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
        const __m256 vi =
            _mm256_fmadd_ps(_mm256_mul_ps(omb2, gi), gi, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
        const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
        _mm256_storeu_ps(w + i, _mm256_add_ps(wi, _mm256_div_ps(_mm256_mul_ps(ssn, mi), denom)));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
    }
#endif
    for (; i < n; i++) {
        float gi = g[i], wi = w[i];
        if (adamw) {
            wi = wi * scale; /* param.mul_(1 - lr * weight_decay) */
        } else if (wd != 0.0f) {
            gi = fmaf(wi, wd, gi); /* grad = grad.add(param, alpha=weight_decay) */
        }
        /* exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1) */
        const float mi = fmaf(gi, k->one_minus_beta1, m[i] * k->beta1);
        /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2) */
        const float vi = fmaf(k->one_minus_beta2 * gi, gi, v[i] * k->beta2);
        /* denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
        const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
        /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        w[i] = wi + (k->step_size_neg * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

/* Update the compact index range [b, e): find the span holding b, then walk. */
static void update_range(const nas_optim *o, const step_consts *k, int64_t b, int64_t e) {
    float *data = o->p->data;
    const float *grad = o->p->grad;
    int64_t lo = 0, hi = o->n_spans - 1;
    while (lo < hi) { /* the last span with state_off <= b */
        const int64_t mid = (lo + hi + 1) / 2;
        if (o->spans[mid].state_off <= b) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    for (int64_t s = lo; s < o->n_spans && b < e; s++) {
        const optim_span *sp = &o->spans[s];
        const int64_t i0 = b - sp->state_off;
        const int64_t i1 = nas_min_i64(sp->numel, e - sp->state_off);
        if (i1 <= i0) {
            continue;
        }
        float *w = data + sp->data_off + i0;
        const float *g = grad + sp->data_off + i0;
        const int64_t len = i1 - i0, at = sp->state_off + i0;
        if (o->cfg.kind == NAS_OPTIM_SGD) {
            const int mom = o->cfg.momentum != 0.0f;
            sgd_range(k, w, g, mom ? o->state + at : NULL, len, sp->decay, mom, o->cfg.nesterov);
        } else {
            adam_range(k, w, g, o->state + at, o->state + o->n + at, len, sp->decay,
                       o->cfg.kind == NAS_OPTIM_ADAMW);
        }
        b += len;
    }
}

static step_consts make_consts(const nas_optim *o, float lr) {
    const nas_optim_config *c = &o->cfg;
    step_consts k;
    memset(&k, 0, sizeof(k));
    const double lr_d = (double)lr, wd_d = (double)c->weight_decay;
    k.lr_neg = (float)-lr_d;
    k.wd = c->weight_decay;
    k.momentum = c->momentum;
    k.first = o->steps == 0;
    if (c->kind != NAS_OPTIM_SGD) {
        const double b1 = (double)c->beta1, b2 = (double)c->beta2;
        const double t = (double)(o->steps + 1); /* step_t += 1 comes first */
        k.beta1 = c->beta1;
        k.beta2 = c->beta2;
        k.one_minus_beta1 = (float)(1.0 - b1);
        k.one_minus_beta2 = (float)(1.0 - b2);
        k.bc2_sqrt = (float)sqrt(1.0 - pow(b2, t));
        k.step_size_neg = (float)-(lr_d / (1.0 - pow(b1, t)));
        k.eps = c->eps;
        k.adamw_scale = (float)(1.0 - lr_d * wd_d);
    }
    return k;
}

nas_status nas_optim_step(nas_optim *o, float lr) {
    if (o == NULL) {
        return NAS_ERR_ARG;
    }
    if (!(lr >= 0.0f) || !isfinite(lr)) {
        return nas_fail(o->ctx, NAS_ERR_ARG, "optim_step: learning rate %g must be finite and >= 0",
                        (double)lr);
    }
    if (o->p->n_entries != o->n_entries) {
        return nas_fail(o->ctx, NAS_ERR_STATE,
                        "optim_step: the parameter block had %lld entries when the optimiser was "
                        "made and has %lld now; make the optimiser after adding every parameter",
                        (long long)o->n_entries, (long long)o->p->n_entries);
    }
    const step_consts k = make_consts(o, lr);
    const int64_t n_chunks = (o->n + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
    if (n_chunks <= 1) {
        update_range(o, &k, 0, o->n);
    } else {
        NAS_OMP_FOR
        for (int64_t c = 0; c < n_chunks; c++) {
            update_range(o, &k, c * OPTIM_CHUNK, nas_min_i64(o->n, (c + 1) * OPTIM_CHUNK));
        }
    }
    o->steps++;
    return NAS_OK;
}

float *nas_optim_state(const nas_optim *o, int64_t *n) {
    if (n != NULL) {
        *n = o->n_state;
    }
    return o->state;
}

int64_t nas_optim_steps(const nas_optim *o) {
    return o->steps;
}

void nas_optim_set_steps(nas_optim *o, int64_t steps) {
    NAS_ASSERT(steps >= 0);
    o->steps = steps;
}

void nas_optim_reset(nas_optim *o) {
    if (o->n_state > 0) {
        memset(o->state, 0, (size_t)o->n_state * sizeof(float));
    }
    o->steps = 0;
}

int64_t nas_optim_n_updated(const nas_optim *o) {
    return o->n;
}
