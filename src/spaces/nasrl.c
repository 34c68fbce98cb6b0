/* nasrl.c - the NAS-RL macro space of Zoph & Le (2017), SPEC 3.4, sized for Fashion-MNIST:
 * a plain stack of 6 conv layers; per layer the filter height and width (1, 3, 5, 7), the number
 * of filters (24, 36, 48, 64) and the stride (1, 2), and for layer i >= 2 one skip bit per
 * earlier layer j < i - 1 (the anchor points; the previous layer always feeds it). A layer's
 * input is the concatenation of its inputs along channels; Zoph & Le zero-pad smaller inputs to
 * the largest, here larger inputs are subsampled (1x1, stride 2, as often as needed) to the
 * smallest, which keeps every size a conv of this net produces. Each layer is an FH x FW conv
 * (same padding) + BN + ReLU; the head is global pool + linear. The network input is layer -1.
 *
 * Text: layers separated by ',', each `FHxFW/filters/stride`, then `+j` per skip input, e.g.
 * `3x3/36/1,5x3/48/2,3x3/64/1+0`. */
#include "spaces_int.h"

#include <stdio.h>

#define RL_LAYERS 6
#define RL_FIELDS 4 /* fh, fw, filters, stride */

static const char *const size_names[4] = {"1", "3", "5", "7"};
static const char *const filter_names[4] = {"24", "36", "48", "64"};
static const char *const stride_names[2] = {"1", "2"};
static const char *const bit_names[2] = {"0", "1"};
static const int size_values[4] = {1, 3, 5, 7}, filter_values[4] = {24, 36, 48, 64};

/* Decision index of layer l's field f; skip bits follow all layer fields, layer by layer. */
static int field_dec(int l, int f) {
    return l * RL_FIELDS + f;
}

static int skip_dec(int l, int j) {
    /* layers 2.. have l - 1 bits for j = 0 .. l - 2 */
    int base = RL_LAYERS * RL_FIELDS;
    for (int i = 2; i < l; i++) {
        base += i - 1;
    }
    return base + j;
}

static nas_status rl_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    size_t pos = 0;
    nas_status st = NAS_OK;
    for (int l = 0; l < RL_LAYERS && st == NAS_OK; l++) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, "%s%dx%d/%d/%d", l ? "," : "",
                               size_values[a->choice[field_dec(l, 0)]],
                               size_values[a->choice[field_dec(l, 1)]],
                               filter_values[a->choice[field_dec(l, 2)]],
                               a->choice[field_dec(l, 3)] + 1);
        for (int j = 0; j + 1 < l && st == NAS_OK; j++) {
            if (a->choice[skip_dec(l, j)]) {
                st = nas_spaces_append(s->ctx, buf, size, &pos, "+%d", j);
            }
        }
    }
    return st;
}

/* Parse an unsigned integer at *pos (at most 4 digits); -1 if none. */
static int parse_uint(const char *t, size_t *pos) {
    int v = -1;
    for (int n = 0; t[*pos] >= '0' && t[*pos] <= '9'; n++) {
        if (n == 4) {
            return -1;
        }
        v = (v < 0 ? 0 : v * 10) + (t[*pos] - '0');
        (*pos)++;
    }
    return v;
}

static int index_of(const int *values, int n, int v) {
    for (int i = 0; i < n; i++) {
        if (values[i] == v) {
            return i;
        }
    }
    return -1;
}

static nas_status rl_fail(nas_ctx *ctx, size_t at, int layer, const char *what) {
    return nas_fail(ctx, NAS_ERR_FORMAT, "nasrl arch, offset %zu (layer %d): %s", at, layer, what);
}

static nas_status rl_decode(nas_ctx *ctx, const nas_space *s, const char *t, nas_arch *out) {
    (void)s;
    size_t pos = 0;
    for (int l = 0; l < RL_LAYERS; l++) {
        if (l > 0) {
            if (t[pos] != ',') {
                return rl_fail(ctx, pos, l, t[pos] ? "expected ',' before the next layer"
                                                   : "expected 6 layers, the text ends early");
            }
            pos++;
        }
        size_t at = pos;
        const int fh = index_of(size_values, 4, parse_uint(t, &pos));
        if (fh < 0) {
            return rl_fail(ctx, at, l, "filter height must be 1, 3, 5 or 7");
        }
        if (t[pos] != 'x') {
            return rl_fail(ctx, pos, l, "expected 'x' between filter height and width");
        }
        at = ++pos;
        const int fw = index_of(size_values, 4, parse_uint(t, &pos));
        if (fw < 0) {
            return rl_fail(ctx, at, l, "filter width must be 1, 3, 5 or 7");
        }
        if (t[pos] != '/') {
            return rl_fail(ctx, pos, l, "expected '/' before the number of filters");
        }
        at = ++pos;
        const int nf = index_of(filter_values, 4, parse_uint(t, &pos));
        if (nf < 0) {
            return rl_fail(ctx, at, l, "the number of filters must be 24, 36, 48 or 64");
        }
        if (t[pos] != '/') {
            return rl_fail(ctx, pos, l, "expected '/' before the stride");
        }
        at = ++pos;
        const int stride = parse_uint(t, &pos);
        if (stride != 1 && stride != 2) {
            return rl_fail(ctx, at, l, "the stride must be 1 or 2");
        }
        out->choice[field_dec(l, 0)] = fh;
        out->choice[field_dec(l, 1)] = fw;
        out->choice[field_dec(l, 2)] = nf;
        out->choice[field_dec(l, 3)] = stride - 1;
        for (int j = 0; j + 1 < l; j++) {
            out->choice[skip_dec(l, j)] = 0;
        }
        int last = -1;
        while (t[pos] == '+') {
            at = ++pos;
            const int j = parse_uint(t, &pos);
            if (j < 0 || j + 1 >= l) {
                return rl_fail(ctx, at, l, "a skip input must name an earlier layer 0..l-2 "
                                           "(the previous layer always feeds in)");
            }
            if (j <= last) {
                return rl_fail(ctx, at, l, "skip inputs must be listed once, in increasing order");
            }
            out->choice[skip_dec(l, j)] = 1;
            last = j;
        }
    }
    if (t[pos] != '\0') {
        return rl_fail(ctx, pos, RL_LAYERS - 1, "unexpected text after the 6th layer");
    }
    return NAS_OK;
}

/* Subsample x (1x1, stride 2) until it is no larger than h x w. */
static int shrink_to(nas_snet *net, int x, int h) {
    while (net->status == NAS_OK && net->nodes[x].h > h) {
        x = nas_snet_max_pool(net, x, 1, 2, 0);
    }
    return x;
}

static void rl_describe(const nas_space *s, const nas_arch *a, const nas_build_opts *o,
                        nas_snet *net, nas_model_shape *shape_out) {
    (void)s;
        nas_model_shape shape = o->shape;
    shape.in_c = shape.in_c ? shape.in_c : 1;
    shape.in_h = shape.in_h ? shape.in_h : 28;
    shape.in_w = shape.in_w ? shape.in_w : shape.in_h;
    shape.classes = shape.classes ? shape.classes : 10;
    const int layers = o->cells > 0 && o->cells < RL_LAYERS ? o->cells : RL_LAYERS;
    int outs[RL_LAYERS];
    int x = nas_snet_input(net, shape.in_c, shape.in_h, shape.in_w);
    for (int l = 0; l < layers && net->status == NAS_OK; l++) {
        int ins[RL_LAYERS], n = 0;
        ins[n++] = x;
        for (int j = 0; j + 1 < l; j++) {
            if (a->choice[skip_dec(l, j)]) {
                ins[n++] = outs[j];
            }
        }
        int hmin = net->nodes[ins[0]].h;
        for (int i = 1; i < n; i++) {
            hmin = net->nodes[ins[i]].h < hmin ? net->nodes[ins[i]].h : hmin;
        }
        for (int i = 0; i < n; i++) {
            ins[i] = shrink_to(net, ins[i], hmin);
        }
        x = nas_snet_concat(net, n, ins);
        const int fh = size_values[a->choice[field_dec(l, 0)]];
        const int fw = size_values[a->choice[field_dec(l, 1)]];
        const int nf = (int)(filter_values[a->choice[field_dec(l, 2)]] * o->channels_mult + 0.5);
        char name[32];
        snprintf(name, sizeof name, "layers.%d", l);
        char buf[64];
        x = nas_snet_conv_rect(net, x, nf < 1 ? 1 : nf, fh, fw, a->choice[field_dec(l, 3)] + 1,
                               nas_nn_name(buf, sizeof buf, name, "conv"));
        x = nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
        x = nas_snet_act(net, x, NAS_ACT_RELU);
        outs[l] = x;
    }
    x = nas_snet_gap(net, x);
    x = nas_snet_linear(net, x, shape.classes, "classifier");
    *shape_out = shape;
}

static const nas_space_vt rl_vt = {
    .kind = "nasrl",
    .encode = rl_encode,
    .decode = rl_decode,
    .describe = rl_describe,
};

nas_status nas_spaces_open_nasrl(nas_space *s) {
    s->vt = &rl_vt;
    char name[32];
    nas_status st = NAS_OK;
    static const char *const fields[RL_FIELDS] = {"fh", "fw", "filters", "stride"};
    for (int l = 0; l < RL_LAYERS && st == NAS_OK; l++) {
        for (int f = 0; f < RL_FIELDS && st == NAS_OK; f++) {
            snprintf(name, sizeof name, "layer%d.%s", l, fields[f]);
            if (f < 2) {
                st = nas_spaces_add_decision(s, name, 4, size_names, 1);
            } else if (f == 2) {
                st = nas_spaces_add_decision(s, name, 4, filter_names, 1);
            } else {
                st = nas_spaces_add_decision(s, name, 2, stride_names, l % 2);
            }
        }
    }
    for (int l = 2; l < RL_LAYERS && st == NAS_OK; l++) {
        for (int j = 0; j + 1 < l && st == NAS_OK; j++) {
            snprintf(name, sizeof name, "layer%d.skip%d", l, j);
            st = nas_spaces_add_decision(s, name, 2, bit_names, 0);
        }
    }
    return st;
}
