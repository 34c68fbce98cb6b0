/* mbnet.c - the stage-wise mobile space (SPEC 3.3), laid out as Once-for-All's MobileNetV3
 * (ofa_mbv3.py): stem conv 3x3 stride 2 h-swish (16); a first MBConv (expand 1, k3, stride 1,
 * ReLU, 16); five stages of widths 24/40/80/112/160, strides 2/2/2/1/2, activations
 * relu/relu/h-swish/h-swish/h-swish, squeeze-excite in the 40, 112 and 160 stages, up to 4 blocks
 * each; 1x1 conv to 960 + BN + h-swish; global pool; 1x1 conv to 1280 (no BN) + h-swish;
 * dropout + linear. Widths go through make_divisible(x * wid, 8); a block's middle width is
 * make_divisible(round(in * e), 8) and its SE width make_divisible(mid / 4, 8).
 *
 * Decisions: ks (3/5/7) and e (3/4/6) for each of the 20 possible layers, d (2/3/4) per stage,
 * the width multiplier and the input resolution. Layers past a stage's depth do not matter: the
 * canonical form resets them to their first choice. Text is JSON
 *   {"ks": [20 ints], "e": [20 ints], "d": [5 ints], "wid": w, "image_size": r}
 * parsed with jansson. Two layouts are registered: "mbnet" (ImageNet: 224 px, 1000 classes) and
 * "mbnet32" (CPU scale: stem and first stage stride 1, 32 px, 10 classes). */
#include "spaces_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>

#define MB_STAGES 5
#define MB_MAX_D  4
#define MB_LAYERS (MB_STAGES * MB_MAX_D)

typedef struct mb_layout {
    const char *kind;
    int stem_width, first_width, stem_stride;
    int width[MB_STAGES], stride[MB_STAGES], se[MB_STAGES];
    nas_act act[MB_STAGES];
    int final_expand, feature;
    int n_res;
    const char *res[8];
    int default_res;
    int classes;
    float dropout;
} mb_layout;

static const char *const ks_names[3] = {"3", "5", "7"};
static const char *const e_names[3] = {"3", "4", "6"};
static const char *const d_names[3] = {"2", "3", "4"};
static const char *const wid_names[2] = {"1.0", "1.2"};
static const double wid_values[2] = {1.0, 1.2};

static const mb_layout ofa_layout = {
    .kind = "mbnet",
    .stem_width = 16, .first_width = 16, .stem_stride = 2,
    .width = {24, 40, 80, 112, 160}, .stride = {2, 2, 2, 1, 2}, .se = {0, 1, 0, 1, 1},
    .act = {NAS_ACT_RELU, NAS_ACT_RELU, NAS_ACT_HSWISH, NAS_ACT_HSWISH, NAS_ACT_HSWISH},
    .final_expand = 960, .feature = 1280,
    .n_res = 7, .res = {"128", "144", "160", "176", "192", "208", "224"}, .default_res = 6,
    .classes = 1000, .dropout = 0.1f,
};

static const mb_layout cifar_layout = {
    .kind = "mbnet32",
    .stem_width = 16, .first_width = 16, .stem_stride = 1,
    .width = {24, 40, 80, 112, 160}, .stride = {1, 2, 2, 1, 2}, .se = {0, 1, 0, 1, 1},
    .act = {NAS_ACT_RELU, NAS_ACT_RELU, NAS_ACT_HSWISH, NAS_ACT_HSWISH, NAS_ACT_HSWISH},
    .final_expand = 960, .feature = 1280,
    .n_res = 3, .res = {"24", "28", "32"}, .default_res = 2,
    .classes = 10, .dropout = 0.1f,
};

/* Decision layout: ks[0..20), e[20..40), d[40..45), wid 45, image_size 46. */
enum { D_KS = 0, D_E = MB_LAYERS, D_D = 2 * MB_LAYERS, D_WID = D_D + MB_STAGES, D_RES, D_COUNT };

static const int ks_values[3] = {3, 5, 7}, e_values[3] = {3, 4, 6}, d_values[3] = {2, 3, 4};

static const mb_layout *layout_of(const nas_space *s) {
    return s->impl;
}

static int mb_active(const nas_space *s, const nas_arch *a, int d) {
    (void)s;
    if (d >= D_D) {
        return 1;
    }
    const int layer = d % MB_LAYERS;
    return layer % MB_MAX_D < d_values[a->choice[D_D + layer / MB_MAX_D]];
}

static void mb_canonical(const nas_space *s, const nas_arch *a, nas_arch *out) {
    *out = *a;
    for (int d = 0; d < D_D; d++) {
        if (!mb_active(s, a, d)) {
            out->choice[d] = 0;
        }
    }
}

static double mb_log10_size(const nas_space *s) {
    double l = log10(2.0) + log10((double)layout_of(s)->n_res);
    for (int st = 0; st < MB_STAGES; st++) {
        double n = 0.0;
        for (int i = 0; i < 3; i++) {
            n += pow(9.0, d_values[i]);
        }
        l += log10(n);
    }
    return l;
}

static nas_status int_list(const nas_space *s, const nas_arch *a, char *buf, size_t size,
                           size_t *pos, const char *key, int first, int n, const int *values) {
    nas_status st = nas_spaces_append(s->ctx, buf, size, pos, "\"%s\": [", key);
    for (int i = 0; i < n && st == NAS_OK; i++) {
        st = nas_spaces_append(s->ctx, buf, size, pos, "%s%d", i ? ", " : "",
                               values[a->choice[first + i]]);
    }
    return st == NAS_OK ? nas_spaces_append(s->ctx, buf, size, pos, "], ") : st;
}

static nas_status mb_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    size_t pos = 0;
    nas_status st = nas_spaces_append(s->ctx, buf, size, &pos, "{");
    if (st == NAS_OK) {
        st = int_list(s, a, buf, size, &pos, "ks", D_KS, MB_LAYERS, ks_values);
    }
    if (st == NAS_OK) {
        st = int_list(s, a, buf, size, &pos, "e", D_E, MB_LAYERS, e_values);
    }
    if (st == NAS_OK) {
        st = int_list(s, a, buf, size, &pos, "d", D_D, MB_STAGES, d_values);
    }
    if (st == NAS_OK) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, "\"wid\": %s, \"image_size\": %s}",
                               wid_names[a->choice[D_WID]],
                               layout_of(s)->res[a->choice[D_RES]]);
    }
    return st;
}

/* Byte offset of "key" in the text (for messages), or 0. */
static size_t key_offset(const char *text, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(text, pat);
    return p != NULL ? (size_t)(p - text) : 0;
}

static nas_status parse_list(nas_ctx *ctx, const char *text, json_t *v, const char *key, int n,
                             const int *values, const char *allowed, int first, nas_arch *out) {
    const size_t off = key_offset(text, key);
    if (!json_is_array(v) || (int)json_array_size(v) != n) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %zu: \"%s\" must be a list of %d "
                        "integers", off, key, n);
    }
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        int found = -1;
        for (int c = 0; c < 3 && json_is_integer(x); c++) {
            if (json_integer_value(x) == values[c]) {
                found = c;
            }
        }
        if (found < 0) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %zu: \"%s\"[%d] is not one "
                            "of %s", off, key, i, allowed);
        }
        out->choice[first + i] = found;
    }
    return NAS_OK;
}

static nas_status mb_decode_json(nas_ctx *ctx, const nas_space *s, const char *text, json_t *root,
                                 nas_arch *out) {
    const mb_layout *L = layout_of(s);
    if (!json_is_object(root)) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset 0: expected a JSON object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "ks") != 0 && strcmp(key, "e") != 0 && strcmp(key, "d") != 0 &&
            strcmp(key, "wid") != 0 && strcmp(key, "image_size") != 0) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %zu: unknown key \"%s\" "
                            "(expected ks, e, d, wid, image_size)", key_offset(text, key), key);
        }
    }
    static const char *const required[5] = {"ks", "e", "d", "wid", "image_size"};
    for (int i = 0; i < 5; i++) {
        if (json_object_get(root, required[i]) == NULL) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch: missing key \"%s\"", required[i]);
        }
    }
    nas_status st = parse_list(ctx, text, json_object_get(root, "ks"), "ks", MB_LAYERS, ks_values,
                               "3, 5, 7", D_KS, out);
    if (st == NAS_OK) {
        st = parse_list(ctx, text, json_object_get(root, "e"), "e", MB_LAYERS, e_values, "3, 4, 6",
                        D_E, out);
    }
    if (st == NAS_OK) {
        st = parse_list(ctx, text, json_object_get(root, "d"), "d", MB_STAGES, d_values, "2, 3, 4",
                        D_D, out);
    }
    if (st != NAS_OK) {
        return st;
    }
    json_t *w = json_object_get(root, "wid");
    out->choice[D_WID] = -1;
    for (int c = 0; c < 2 && json_is_number(w); c++) {
        if (fabs(json_number_value(w) - wid_values[c]) < 1e-9) {
            out->choice[D_WID] = c;
        }
    }
    if (out->choice[D_WID] < 0) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %zu: \"wid\" is not one of 1.0, "
                        "1.2", key_offset(text, "wid"));
    }
    json_t *r = json_object_get(root, "image_size");
    out->choice[D_RES] = -1;
    for (int c = 0; c < L->n_res && json_is_integer(r); c++) {
        if (json_integer_value(r) == atoi(L->res[c])) {
            out->choice[D_RES] = c;
        }
    }
    if (out->choice[D_RES] < 0) {
        char list[128];
        return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %zu: \"image_size\" is not one "
                        "of %s", key_offset(text, "image_size"),
                        nas_spaces_choice_list(s, D_RES, list, sizeof list));
    }
    return NAS_OK;
}

static nas_status mb_decode(nas_ctx *ctx, const nas_space *s, const char *text, nas_arch *out) {
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "mbnet arch, offset %d: %s", err.position, err.text);
    }
    nas_status st = mb_decode_json(ctx, s, text, root, out);
    json_decref(root);
    return st;
}

/* One MBConv block (OFA MBConvLayer + residual when shapes match). */
static int mbconv(nas_snet *net, int x, int cout, int k, double e, int stride, nas_act act, int se,
                  const char *name) {
    char buf[200];
    if (net->status != NAS_OK) {
        return -1;
    }
    const int cin = net->nodes[x].c;
    const int mid = e == 1.0 ? cin : nas_spaces_make_divisible(round(cin * e), 8);
    int y = x;
    if (e != 1.0) {
        y = nas_snet_conv_bn(net, y, mid, 1, 1, 1, act,
                             nas_nn_name(buf, sizeof buf, name, "inverted_bottleneck"));
    }
    y = nas_snet_conv(net, y, mid, k, stride, -1, 1, mid, 0,
                      nas_nn_name(buf, sizeof buf, name, "depth_conv.conv"));
    y = nas_snet_bn(net, y, 1, nas_nn_name(buf, sizeof buf, name, "depth_conv.bn"));
    y = nas_snet_act(net, y, act);
    if (se) {
        y = nas_snet_se(net, y, nas_spaces_make_divisible(mid / 4.0, 8), NAS_ACT_HSIGMOID,
                        nas_nn_name(buf, sizeof buf, name, "depth_conv.se"));
    }
    y = nas_snet_conv_bn(net, y, cout, 1, 1, 1, NAS_ACT_NONE,
                         nas_nn_name(buf, sizeof buf, name, "point_linear"));
    if (stride == 1 && cin == cout) {
        y = nas_snet_add(net, y, x);
    }
    return y;
}

static void mb_describe(const nas_space *s, const nas_arch *a, const nas_build_opts *o,
                        nas_snet *net, nas_model_shape *shape_out) {
    const mb_layout *L = layout_of(s);
    const double wid = wid_values[a->choice[D_WID]] * o->channels_mult;
    const int res = atoi(L->res[a->choice[D_RES]]);
    nas_model_shape shape = o->shape;
    shape.in_c = shape.in_c ? shape.in_c : 3;
    shape.in_h = shape.in_h ? shape.in_h : res;
    shape.in_w = shape.in_w ? shape.in_w : shape.in_h;
    shape.classes = shape.classes ? shape.classes : L->classes;
    char name[64];
    int x = nas_snet_input(net, shape.in_c, shape.in_h, shape.in_w);
    x = nas_snet_conv_bn(net, x, nas_spaces_make_divisible(L->stem_width * wid, 8), 3,
                         L->stem_stride, 1, NAS_ACT_HSWISH, "first_conv");
    x = mbconv(net, x, nas_spaces_make_divisible(L->first_width * wid, 8), 3, 1.0, 1,
               NAS_ACT_RELU, 0, "blocks.0");
    int block = 1;
    for (int st_i = 0; st_i < MB_STAGES; st_i++) {
        int depth = d_values[a->choice[D_D + st_i]];
        if (o->cells > 0) {
            depth = o->cells < depth ? o->cells : depth; /* low fidelity: fewer blocks */
        }
        const int width = nas_spaces_make_divisible(L->width[st_i] * wid, 8);
        for (int i = 0; i < depth; i++) {
            const int layer = st_i * MB_MAX_D + i;
            snprintf(name, sizeof name, "blocks.%d", block++);
            x = mbconv(net, x, width, ks_values[a->choice[D_KS + layer]],
                       e_values[a->choice[D_E + layer]], i == 0 ? L->stride[st_i] : 1,
                       L->act[st_i], L->se[st_i], name);
        }
    }
    x = nas_snet_conv_bn(net, x, nas_spaces_make_divisible(L->final_expand * wid, 8), 1, 1, 1,
                         NAS_ACT_HSWISH, "final_expand_layer");
    x = nas_snet_gap(net, x);
    x = nas_snet_conv(net, x, nas_spaces_make_divisible(L->feature * wid, 8), 1, 1, 0, 1, 1, 0,
                      "feature_mix_layer.conv");
    x = nas_snet_act(net, x, NAS_ACT_HSWISH);
    x = nas_snet_flatten(net, x);
    x = nas_snet_dropout(net, x, L->dropout);
    x = nas_snet_linear(net, x, shape.classes, "classifier.linear");
    *shape_out = shape;
}

static const nas_space_vt mb_vt = {
    .kind = "mbnet",
    .encode = mb_encode,
    .decode = mb_decode,
    .canonical = mb_canonical,
    .active = mb_active,
    .describe = mb_describe,
    .log10_size = mb_log10_size,
};

static nas_status open_layout(nas_space *s, const mb_layout *L) {
    s->vt = &mb_vt;
    s->impl = (void *)(uintptr_t)L; /* static data: nothing to free */
    char name[32];
    nas_status st = NAS_OK;
    for (int l = 0; l < MB_LAYERS && st == NAS_OK; l++) {
        snprintf(name, sizeof name, "ks.%d", l);
        st = nas_spaces_add_decision(s, name, 3, ks_names, 0);
    }
    for (int l = 0; l < MB_LAYERS && st == NAS_OK; l++) {
        snprintf(name, sizeof name, "e.%d", l);
        st = nas_spaces_add_decision(s, name, 3, e_names, 0);
    }
    for (int i = 0; i < MB_STAGES && st == NAS_OK; i++) {
        snprintf(name, sizeof name, "d.%d", i);
        st = nas_spaces_add_decision(s, name, 3, d_names, 2);
    }
    if (st == NAS_OK) {
        st = nas_spaces_add_decision(s, "wid", 2, wid_names, 0);
    }
    if (st == NAS_OK) {
        st = nas_spaces_add_decision(s, "image_size", L->n_res, L->res, L->default_res);
    }
    return st;
}

nas_status nas_spaces_open_mbnet(nas_space *s) {
    return open_layout(s, &ofa_layout);
}

nas_status nas_spaces_open_mbnet32(nas_space *s) {
    return open_layout(s, &cifar_layout);
}
