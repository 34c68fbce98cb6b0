/* conv_naive.c - the naive twin of conv2d: plain loops over every case (stride, padding,
 * dilation, groups). It is the reference the fast paths are tested against and the fallback when
 * oneDNN rejects a case. Each output element is written by one thread in a fixed order, so the
 * results do not depend on the thread count.
 *
 * y[n, o, i, j] = b[o] + sum_{c, a, b} x[n, g*Cg + c, i*sh - ph + a*dh, j*sw - pw + b*dw]
 *                                     * w[o, c, a, b],   g = o / Og, Cg = C / groups
 * dx[n, g*Cg + c, ih, iw] += sum_{o in g, a, b} w[o, c, a, b] * dy[n, o, i, j]  (where ih, iw hit)
 * dw[o, c, a, b] += sum_{n, i, j} x[n, g*Cg + c, ih, iw] * dy[n, o, i, j];  db[o] += sum dy[n, o]
 */
#include "conv_int.h"

nas_conv_geom nas_conv_geom_of(const nas_node *n) {
    const nas_node *x = n->src[0], *w = n->src[1];
    nas_conv_geom c;
    c.N = x->shape[0];
    c.C = x->shape[1];
    c.H = x->shape[2];
    c.W = x->shape[3];
    c.O = w->shape[0];
    c.KH = w->shape[2];
    c.KW = w->shape[3];
    c.OH = n->shape[2];
    c.OW = n->shape[3];
    c.sh = n->iparam[NAS_CONV_IP_SH];
    c.sw = n->iparam[NAS_CONV_IP_SW];
    c.ph = n->iparam[NAS_CONV_IP_PH];
    c.pw = n->iparam[NAS_CONV_IP_PW];
    c.dh = n->iparam[NAS_CONV_IP_DH];
    c.dw = n->iparam[NAS_CONV_IP_DW];
    c.groups = n->iparam[NAS_CONV_IP_GROUPS];
    return c;
}

/* Output columns j whose input column j*s - p + t lies in [0, W): j in [*lo, *hi). */
static void valid_range(int64_t out, int64_t in, int64_t s, int64_t p, int64_t t, int64_t *lo,
                        int64_t *hi) {
    /* j*s >= p - t  and  j*s <= in - 1 + p - t */
    const int64_t a = p - t, b = in - 1 + p - t;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = b < 0 ? 0 : b / s + 1;
    if (*hi > out) {
        *hi = out;
    }
    if (*lo > *hi) {
        *lo = *hi;
    }
}

void nas_conv_naive_forward(const nas_conv_geom *c, const float *x, const float *w,
                            const float *bias, float *y) {
    const int64_t Cg = c->C / c->groups, Og = c->O / c->groups;
    const int64_t plane = c->OH * c->OW, in_plane = c->H * c->W;
    const int64_t NO = c->N * c->O;
    NAS_OMP_FOR
    for (int64_t no = 0; no < NO; no++) {
        const int64_t n = no / c->O, o = no % c->O, g = o / Og;
        float *yp = y + no * plane;
        const float b0 = bias != NULL ? bias[o] : 0.0f;
        for (int64_t e = 0; e < plane; e++) {
            yp[e] = b0;
        }
        for (int64_t ci = 0; ci < Cg; ci++) {
            const float *xp = x + (n * c->C + g * Cg + ci) * in_plane;
            const float *wp = w + (o * Cg + ci) * c->KH * c->KW;
            for (int64_t a = 0; a < c->KH; a++) {
                int64_t i0, i1;
                valid_range(c->OH, c->H, c->sh, c->ph, a * c->dh, &i0, &i1);
                for (int64_t b = 0; b < c->KW; b++) {
                    int64_t j0, j1;
                    valid_range(c->OW, c->W, c->sw, c->pw, b * c->dw, &j0, &j1);
                    const float wv = wp[a * c->KW + b];
                    for (int64_t i = i0; i < i1; i++) {
                        const float *xr =
                            xp + (i * c->sh - c->ph + a * c->dh) * c->W - c->pw + b * c->dw;
                        float *yr = yp + i * c->OW;
                        for (int64_t j = j0; j < j1; j++) {
                            yr[j] += wv * xr[j * c->sw];
                        }
                    }
                }
            }
        }
    }
}

void nas_conv_naive_backward_data(const nas_conv_geom *c, const float *dy, const float *w,
                                  float *dx) {
    const int64_t Cg = c->C / c->groups, Og = c->O / c->groups;
    const int64_t plane = c->OH * c->OW, in_plane = c->H * c->W;
    const int64_t NC = c->N * c->C;
    /* One thread owns each input plane dx[n, ch]: it gathers from the outputs of its group. */
    NAS_OMP_FOR
    for (int64_t nc = 0; nc < NC; nc++) {
        const int64_t n = nc / c->C, ch = nc % c->C, g = ch / Cg, ci = ch % Cg;
        float *dxp = dx + nc * in_plane;
        for (int64_t oo = 0; oo < Og; oo++) {
            const int64_t o = g * Og + oo;
            const float *dyp = dy + (n * c->O + o) * plane;
            const float *wp = w + (o * Cg + ci) * c->KH * c->KW;
            for (int64_t a = 0; a < c->KH; a++) {
                int64_t i0, i1;
                valid_range(c->OH, c->H, c->sh, c->ph, a * c->dh, &i0, &i1);
                for (int64_t b = 0; b < c->KW; b++) {
                    int64_t j0, j1;
                    valid_range(c->OW, c->W, c->sw, c->pw, b * c->dw, &j0, &j1);
                    const float wv = wp[a * c->KW + b];
                    for (int64_t i = i0; i < i1; i++) {
                        float *xr =
                            dxp + (i * c->sh - c->ph + a * c->dh) * c->W - c->pw + b * c->dw;
                        const float *yr = dyp + i * c->OW;
                        for (int64_t j = j0; j < j1; j++) {
                            xr[j * c->sw] += wv * yr[j];
                        }
                    }
                }
            }
        }
    }
}

void nas_conv_naive_backward_weights(const nas_conv_geom *c, const float *x, const float *dy,
                                     float *dw, float *db) {
    const int64_t Cg = c->C / c->groups, Og = c->O / c->groups;
    const int64_t plane = c->OH * c->OW, in_plane = c->H * c->W;
    const int64_t taps = c->KH * c->KW, OC = c->O * Cg;
    /* One thread owns each (o, ci) kernel; sums run in double in a fixed order. */
    NAS_OMP_FOR
    for (int64_t oc = 0; oc < OC; oc++) {
        const int64_t o = oc / Cg, ci = oc % Cg, g = o / Og;
        for (int64_t a = 0; a < c->KH; a++) {
            int64_t i0, i1;
            valid_range(c->OH, c->H, c->sh, c->ph, a * c->dh, &i0, &i1);
            for (int64_t b = 0; b < c->KW; b++) {
                int64_t j0, j1;
                valid_range(c->OW, c->W, c->sw, c->pw, b * c->dw, &j0, &j1);
                double acc = 0.0;
                for (int64_t n = 0; n < c->N; n++) {
                    const float *xp = x + (n * c->C + g * Cg + ci) * in_plane;
                    const float *dyp = dy + (n * c->O + o) * plane;
                    for (int64_t i = i0; i < i1; i++) {
                        const float *xr =
                            xp + (i * c->sh - c->ph + a * c->dh) * c->W - c->pw + b * c->dw;
                        const float *yr = dyp + i * c->OW;
                        float part = 0.0f;
                        for (int64_t j = j0; j < j1; j++) {
                            part += xr[j * c->sw] * yr[j];
                        }
                        acc += (double)part;
                    }
                }
                dw[oc * taps + a * c->KW + b] += (float)acc;
            }
        }
    }
    if (db != NULL) {
        nas_conv_bias_grad(c, dy, db);
    }
}

void nas_conv_bias_grad(const nas_conv_geom *c, const float *dy, float *db) {
    const int64_t plane = c->OH * c->OW;
    NAS_OMP_FOR
    for (int64_t o = 0; o < c->O; o++) {
        double acc = 0.0;
        for (int64_t n = 0; n < c->N; n++) {
            const float *dyp = dy + (n * c->O + o) * plane;
            float part = 0.0f;
            for (int64_t e = 0; e < plane; e++) {
                part += dyp[e];
            }
            acc += (double)part;
        }
        db[o] += (float)acc;
    }
}
