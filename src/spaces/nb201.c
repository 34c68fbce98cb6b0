/* nb201.c - the NAS-Bench-201 cell space (SPEC 3.1): 6 edges of a 4-node cell, 5 ops each,
 * 15,625 cells. Text is the NB201 arch_str `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`; the network
 * is nas_net_nb201 (src/nn/nets.c).
 *
 * Isomorphism: two cells are the same function when the output node's expression is the same
 * after these rewrites: skip_connect(e) = e; none(e) = 0 and op(0) = 0 (xautodl's convention for
 * to_unique_str, which treats every op on a zero input as zero); zero terms drop out of a sum and
 * an empty sum is 0; sums are commutative (sorted terms). The canonical form of a class is its
 * member with the smallest enumeration index. xautodl's own rule keeps zero terms inside sums
 * ("#+#"), which leaves some equal functions apart: it gives NB201's published 6,466 classes,
 * ours fewer (the test counts both). */
#include "spaces_int.h"

#include <stdio.h>
#include <stdlib.h>

#define NB201_EDGES 6
#define NB201_OPS   5
#define NB201_SIZE  15625
#define EXPR_MAX    1024

static const char *const op_names[NB201_OPS] = {"none", "skip_connect", "nor_conv_1x1",
                                                "nor_conv_3x3", "avg_pool_3x3"};
/* Edge e goes from node edge_from[e] into node edge_to[e] (NB201 arch_str order). */
static const int edge_from[NB201_EDGES] = {0, 0, 1, 0, 1, 2};
static const int edge_to[NB201_EDGES] = {1, 2, 2, 3, 3, 3};

typedef struct nb201_impl {
    int32_t rep32[NB201_SIZE]; /* index of each cell's class representative */
} nb201_impl;

static int64_t arch_index(const nas_arch *a) {
    int64_t idx = 0;
    for (int e = 0; e < NB201_EDGES; e++) {
        idx = idx * NB201_OPS + a->choice[e];
    }
    return idx;
}

void nas_spaces_nb201_ops(const nas_arch *a, nas_nb201_op ops[6]) {
    for (int e = 0; e < NB201_EDGES; e++) {
        ops[e] = (nas_nb201_op)a->choice[e];
    }
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The output node's expression. keep_zero_terms selects xautodl's rule. */
static void cell_expr(const nas_arch *a, int keep_zero_terms, char *out, size_t size) {
    static const char op_code[NB201_OPS] = {'0', 's', 'a', 'b', 'p'};
    char node[4][EXPR_MAX];
    strcpy(node[0], "x");
    for (int j = 1; j < 4; j++) {
        char terms[3][EXPR_MAX];
        const char *sorted[3];
        int n = 0;
        for (int e = 0; e < NB201_EDGES; e++) {
            if (edge_to[e] != j) {
                continue;
            }
            const int op = a->choice[e];
            const char *src = node[edge_from[e]];
            if (op == NAS_NB201_NONE || strcmp(src, "#") == 0) {
                if (!keep_zero_terms) {
                    continue;
                }
                strcpy(terms[n], "#");
            } else if (op == NAS_NB201_SKIP) {
                snprintf(terms[n], EXPR_MAX, "%s", src);
            } else {
                snprintf(terms[n], EXPR_MAX, "(%s)%c", src, op_code[op]);
            }
            sorted[n] = terms[n];
            n++;
        }
        qsort(sorted, (size_t)n, sizeof(sorted[0]), cmp_str);
        size_t pos = 0;
        node[j][0] = '\0';
        for (int t = 0; t < n; t++) {
            const int k = snprintf(node[j] + pos, EXPR_MAX - pos, "%s%s", t ? "+" : "", sorted[t]);
            pos += k > 0 ? (size_t)k : 0;
            NAS_ASSERT(pos < EXPR_MAX);
        }
        if (n == 0) {
            strcpy(node[j], "#");
        }
    }
    snprintf(out, size, "%s", node[3]);
}

void nas_spaces_nb201_xautodl_str(const nas_arch *a, char *buf, size_t size) {
    cell_expr(a, 1, buf, size);
}

/* FNV-1a, 64 bits. */
static uint64_t fnv64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    }
    return h;
}

typedef struct hash_idx {
    uint64_t h;
    int32_t idx;
} hash_idx;

static int cmp_hash_idx(const void *a, const void *b) {
    const hash_idx *x = a, *y = b;
    if (x->h != y->h) {
        return x->h < y->h ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void index_arch(int64_t idx, nas_arch *a) {
    memset(a, 0, sizeof(*a));
    a->n = NB201_EDGES;
    for (int e = NB201_EDGES - 1; e >= 0; e--) {
        a->choice[e] = (int32_t)(idx % NB201_OPS);
        idx /= NB201_OPS;
    }
}

/* Group the 15,625 cells by expression (via a hash, confirmed by comparing the strings). */
static nas_status build_classes(nas_ctx *ctx, nb201_impl *impl) {
    hash_idx *hi = nas_malloc(ctx, NB201_SIZE * sizeof(hash_idx));
    if (hi == NULL) {
        return NAS_ERR_NOMEM;
    }
    char buf[EXPR_MAX], buf2[EXPR_MAX];
    nas_arch a;
    for (int i = 0; i < NB201_SIZE; i++) {
        index_arch(i, &a);
        cell_expr(&a, 0, buf, sizeof buf);
        hi[i].h = fnv64(buf);
        hi[i].idx = i;
    }
    qsort(hi, NB201_SIZE, sizeof(hash_idx), cmp_hash_idx);
    int32_t rep = -1;
    for (int i = 0; i < NB201_SIZE; i++) {
        if (i == 0 || hi[i].h != hi[i - 1].h) {
            rep = hi[i].idx; /* smallest index of the group: sorted by (hash, index) */
            index_arch(rep, &a);
            cell_expr(&a, 0, buf2, sizeof buf2);
        } else {
            index_arch(hi[i].idx, &a);
            cell_expr(&a, 0, buf, sizeof buf);
            NAS_ASSERT(strcmp(buf, buf2) == 0); /* a 64-bit collision would stop here */
        }
        impl->rep32[hi[i].idx] = rep;
    }
    nas_free(ctx, hi, NB201_SIZE * sizeof(hash_idx));
    return NAS_OK;
}

static void nb201_canonical(const nas_space *s, const nas_arch *a, nas_arch *out) {
    const nb201_impl *impl = s->impl;
    index_arch(impl->rep32[arch_index(a)], out);
}

static nas_status nb201_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    size_t pos = 0;
    nas_status st = NAS_OK;
    for (int j = 1; j < 4 && st == NAS_OK; j++) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, "%s|", j > 1 ? "+" : "");
        for (int e = 0; e < NB201_EDGES && st == NAS_OK; e++) {
            if (edge_to[e] == j) {
                st = nas_spaces_append(s->ctx, buf, size, &pos, "%s~%d|", op_names[a->choice[e]],
                                       edge_from[e]);
            }
        }
    }
    return st;
}

static nas_status expect_char(nas_ctx *ctx, const char *text, size_t *pos, char c) {
    if (text[*pos] != c) {
        char got[16];
        if (text[*pos] == '\0') {
            snprintf(got, sizeof got, "end of text");
        } else {
            snprintf(got, sizeof got, "'%c'", text[*pos]);
        }
        return nas_fail(ctx, NAS_ERR_FORMAT, "nb201 arch, offset %zu: expected '%c', found %s",
                        *pos, c, got);
    }
    (*pos)++;
    return NAS_OK;
}

static nas_status nb201_decode(nas_ctx *ctx, const nas_space *s, const char *text, nas_arch *out) {
    (void)s;
    size_t pos = 0;
    nas_status st = NAS_OK;
    for (int j = 1; j < 4; j++) {
        if (j > 1 && (st = expect_char(ctx, text, &pos, '+')) != NAS_OK) {
            return st;
        }
        if ((st = expect_char(ctx, text, &pos, '|')) != NAS_OK) {
            return st;
        }
        for (int e = 0; e < NB201_EDGES; e++) {
            if (edge_to[e] != j) {
                continue;
            }
            const size_t start = pos;
            while (text[pos] != '\0' && text[pos] != '~' && text[pos] != '|' && text[pos] != '+') {
                pos++;
            }
            const size_t len = pos - start;
            int op = -1;
            for (int k = 0; k < NB201_OPS; k++) {
                if (strlen(op_names[k]) == len && memcmp(op_names[k], text + start, len) == 0) {
                    op = k;
                }
            }
            if (op < 0) {
                return nas_fail(ctx, NAS_ERR_FORMAT,
                                "nb201 arch, offset %zu: unknown op '%.*s' (expected none, "
                                "skip_connect, nor_conv_1x1, nor_conv_3x3 or avg_pool_3x3)",
                                start, (int)(len > 40 ? 40 : len), text + start);
            }
            if ((st = expect_char(ctx, text, &pos, '~')) != NAS_OK) {
                return st;
            }
            if (text[pos] != (char)('0' + edge_from[e]) ||
                (text[pos + 1] >= '0' && text[pos + 1] <= '9')) {
                return nas_fail(ctx, NAS_ERR_FORMAT,
                                "nb201 arch, offset %zu: node %d's input must be ~%d here", pos,
                                j, edge_from[e]);
            }
            pos++;
            if ((st = expect_char(ctx, text, &pos, '|')) != NAS_OK) {
                return st;
            }
            out->choice[e] = op;
        }
    }
    if (text[pos] != '\0') {
        return nas_fail(ctx, NAS_ERR_FORMAT, "nb201 arch, offset %zu: unexpected text after the "
                        "third node", pos);
    }
    return NAS_OK;
}

/* The NB201 network (xautodl TinyNetwork, infer cells) as a netlist: nas_space_count's twin of
 * nas_net_nb201, which builds the trained model. The tests hold the two to equal counts. */
static int nb201_edge(nas_snet *net, int op, int x, int C, const char *name) {
    char buf[200];
    switch (op) {
        case NAS_NB201_SKIP: return x;
        case NAS_NB201_CONV1:
        case NAS_NB201_CONV3: {
            const int k = op == NAS_NB201_CONV3 ? 3 : 1;
            x = nas_snet_act(net, x, NAS_ACT_RELU);
            x = nas_snet_conv(net, x, C, k, 1, (k - 1) / 2, 1, 1, 0,
                              nas_nn_name(buf, sizeof buf, name, "conv"));
            return nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
        }
        case NAS_NB201_POOL3: return nas_snet_avg_pool(net, x, 3, 1, 1, 0);
        default: return -1;
    }
}

static int nb201_cell(nas_snet *net, const nas_arch *a, int x, int C, const char *name) {
    int node[4] = {x, -1, -1, -1};
    char sub[160];
    for (int j = 1; j < 4; j++) {
        int terms[3], n = 0;
        for (int e = 0; e < NB201_EDGES; e++) {
            if (edge_to[e] == j && a->choice[e] != NAS_NB201_NONE) {
                snprintf(sub, sizeof sub, "%s.edge%d", name, e);
                terms[n++] = nb201_edge(net, a->choice[e], node[edge_from[e]], C, sub);
            }
        }
        node[j] = n > 0 ? nas_snet_sum(net, n, terms) : nas_snet_zero(net, x, 1, C);
    }
    return node[3];
}

static int nb201_resblock(nas_snet *net, int x, int cout, const char *name) {
    char buf[200];
    int y = nas_snet_act(net, x, NAS_ACT_RELU);
    y = nas_snet_conv(net, y, cout, 3, 2, 1, 1, 1, 0, nas_nn_name(buf, sizeof buf, name, "a.conv"));
    y = nas_snet_bn(net, y, 1, nas_nn_name(buf, sizeof buf, name, "a.bn"));
    y = nas_snet_act(net, y, NAS_ACT_RELU);
    y = nas_snet_conv(net, y, cout, 3, 1, 1, 1, 1, 0, nas_nn_name(buf, sizeof buf, name, "b.conv"));
    y = nas_snet_bn(net, y, 1, nas_nn_name(buf, sizeof buf, name, "b.bn"));
    int sc = nas_snet_avg_pool(net, x, 2, 2, 0, 1);
    sc = nas_snet_conv(net, sc, cout, 1, 1, 0, 1, 1, 0,
                       nas_nn_name(buf, sizeof buf, name, "downsample"));
    return nas_snet_add(net, y, sc);
}

static nas_model_shape nb201_shape(const nas_build_opts *o) {
    nas_model_shape shape = o->shape;
    shape.in_c = shape.in_c ? shape.in_c : 3;
    shape.in_h = shape.in_h ? shape.in_h : 32;
    shape.in_w = shape.in_w ? shape.in_w : shape.in_h;
    shape.classes = shape.classes ? shape.classes : 10;
    return shape;
}

static int nb201_channels(const nas_build_opts *o) {
    const int C = (int)(16.0 * o->channels_mult + 0.5);
    return C < 1 ? 1 : C;
}

static void nb201_describe(const nas_space *s, const nas_arch *a, const nas_build_opts *o,
                           nas_snet *net, nas_model_shape *shape_out) {
    (void)s;
    const nas_model_shape shape = nb201_shape(o);
    const int N = o->cells > 0 ? o->cells : 5;
    int C = nb201_channels(o);
    char name[48];
    int x = nas_snet_input(net, shape.in_c, shape.in_h, shape.in_w);
    x = nas_snet_conv(net, x, C, 3, 1, 1, 1, 1, 0, "stem.0");
    x = nas_snet_bn(net, x, 1, "stem.1");
    int layer = 0;
    for (int stage = 0; stage < 3; stage++) {
        if (stage > 0) {
            snprintf(name, sizeof name, "cells.%d", layer++);
            x = nb201_resblock(net, x, 2 * C, name);
            C *= 2;
        }
        for (int i = 0; i < N; i++) {
            snprintf(name, sizeof name, "cells.%d", layer++);
            x = nb201_cell(net, a, x, C, name);
        }
    }
    x = nas_snet_bn(net, x, 1, "lastact.0");
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_gap(net, x);
    (void)nas_snet_linear(net, x, shape.classes, "classifier");
    *shape_out = shape;
}

static nas_status nb201_build(nas_ctx *ctx, const nas_space *s, const nas_arch *a,
                              const nas_build_opts *o, nas_model **out) {
    (void)s;
    nas_nb201_op ops[6];
    nas_spaces_nb201_ops(a, ops);
    return nas_net_nb201(ctx, ops, nb201_channels(o), o->cells > 0 ? o->cells : 5,
                         nb201_shape(o), out);
}

static void nb201_free(nas_ctx *ctx, void *impl) {
    nas_free(ctx, impl, impl != NULL ? sizeof(nb201_impl) : 0);
}

static const nas_space_vt nb201_vt = {
    .kind = "nb201",
    .encode = nb201_encode,
    .decode = nb201_decode,
    .canonical = nb201_canonical,
    .describe = nb201_describe,
    .build = nb201_build,
    .free_impl = nb201_free,
};

nas_status nas_spaces_open_nb201(nas_space *s) {
    static const char *const dec_names[NB201_EDGES] = {"edge_1<-0", "edge_2<-0", "edge_2<-1",
                                                       "edge_3<-0", "edge_3<-1", "edge_3<-2"};
    s->vt = &nb201_vt;
    for (int e = 0; e < NB201_EDGES; e++) {
        /* default: the all-nor_conv_3x3 cell */
        nas_status st = nas_spaces_add_decision(s, dec_names[e], NB201_OPS, op_names, 3);
        if (st != NAS_OK) {
            return st;
        }
    }
    nb201_impl *impl = nas_calloc(s->ctx, 1, sizeof(nb201_impl));
    if (impl == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = impl;
    return build_classes(s->ctx, impl);
}
