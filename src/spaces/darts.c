/* darts.c - the DARTS / NASNet cell space (SPEC 3.2): a normal and a reduction cell, each with
 * 4 intermediate nodes summing 2 ops on 2 earlier states. Decisions per cell and node k:
 * (op, input) twice, input in 0..k+1. Text is the DARTS genotype
 *   Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
 *            reduce_concat=[2, 3, 4, 5])
 * and the network is DARTS's NetworkCIFAR (model.py of quark0/darts): stem conv 3x3 to 3C + BN,
 * `cells` cells with reductions at 1/3 and 2/3 of the depth, global pool, linear; optional
 * auxiliary head (AuxiliaryHeadCIFAR) after the second reduction, whose logits training reads
 * through nas_model_aux_logits.
 *
 * Canonical form: a node's two edges commute, so each pair is put in order; an edge whose op is
 * `none` feeds nothing, so its input is set to 0. */
#include "spaces_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#define DARTS_OPS   8
#define DARTS_NODES 4
#define DARTS_PER_CELL (DARTS_NODES * 4) /* (op, input) x 2 per node */

enum { OP_NONE = 0, OP_MAX, OP_AVG, OP_SKIP, OP_SEP3, OP_SEP5, OP_DIL3, OP_DIL5 };

static const char *const op_names[DARTS_OPS] = {
    "none",         "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"};
static const char *const cell_names[2] = {"normal", "reduce"};

/* Decision index of (cell, node, edge, is_input). */
static int dec_index(int cell, int node, int edge, int is_input) {
    return cell * DARTS_PER_CELL + node * 4 + edge * 2 + is_input;
}

/* ------------------------------------------------------------------------------ text */

static nas_status darts_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    size_t pos = 0;
    nas_status st = nas_spaces_append(s->ctx, buf, size, &pos, "Genotype(");
    for (int cell = 0; cell < 2 && st == NAS_OK; cell++) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, "%s%s=[", cell ? ", " : "",
                               cell_names[cell]);
        for (int k = 0; k < DARTS_NODES && st == NAS_OK; k++) {
            for (int e = 0; e < 2 && st == NAS_OK; e++) {
                st = nas_spaces_append(s->ctx, buf, size, &pos, "%s('%s', %d)",
                                       k + e > 0 ? ", " : "",
                                       op_names[a->choice[dec_index(cell, k, e, 0)]],
                                       (int)a->choice[dec_index(cell, k, e, 1)]);
            }
        }
        if (st == NAS_OK) {
            st = nas_spaces_append(s->ctx, buf, size, &pos, "], %s_concat=[2, 3, 4, 5]",
                                   cell_names[cell]);
        }
    }
    if (st == NAS_OK) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, ")");
    }
    return st;
}

/* A tiny lexer over the genotype text: identifiers, quoted strings, integers, punctuation. */
typedef enum { TK_END, TK_IDENT, TK_STRING, TK_INT, TK_PUNCT, TK_BAD } tok_kind;

typedef struct lexer {
    nas_ctx *ctx;
    const char *text;
    size_t pos;
    tok_kind kind;
    size_t start, len; /* the token (for strings: inside the quotes) */
    long value;
} lexer;

static void next_token(lexer *lx) {
    const char *t = lx->text;
    while (t[lx->pos] == ' ' || t[lx->pos] == '\t' || t[lx->pos] == '\n' || t[lx->pos] == '\r') {
        lx->pos++;
    }
    lx->start = lx->pos;
    const char c = t[lx->pos];
    if (c == '\0') {
        lx->kind = TK_END;
        lx->len = 0;
    } else if (isalpha((unsigned char)c) || c == '_') {
        while (isalnum((unsigned char)t[lx->pos]) || t[lx->pos] == '_') {
            lx->pos++;
        }
        lx->kind = TK_IDENT;
        lx->len = lx->pos - lx->start;
    } else if (isdigit((unsigned char)c)) {
        lx->value = 0;
        while (isdigit((unsigned char)t[lx->pos])) {
            if (lx->value < 1000000) {
                lx->value = lx->value * 10 + (t[lx->pos] - '0');
            }
            lx->pos++;
        }
        lx->kind = TK_INT;
        lx->len = lx->pos - lx->start;
    } else if (c == '\'' || c == '"') {
        lx->pos++;
        lx->start = lx->pos;
        while (t[lx->pos] != '\0' && t[lx->pos] != c) {
            lx->pos++;
        }
        if (t[lx->pos] == '\0') {
            lx->kind = TK_BAD;
            lx->start--;
            lx->len = 1;
            return;
        }
        lx->kind = TK_STRING;
        lx->len = lx->pos - lx->start;
        lx->pos++;
    } else {
        lx->kind = strchr("()[],=", c) != NULL ? TK_PUNCT : TK_BAD;
        lx->len = 1;
        lx->pos++;
    }
}

static nas_status lex_error(lexer *lx, const char *expected) {
    if (lx->kind == TK_END) {
        return nas_fail(lx->ctx, NAS_ERR_FORMAT, "darts genotype, offset %zu: expected %s, found "
                        "end of text", lx->start, expected);
    }
    const size_t at = lx->kind == TK_STRING ? lx->start - 1 : lx->start;
    const size_t len = lx->kind == TK_STRING ? lx->len + 2 : lx->len;
    return nas_fail(lx->ctx, NAS_ERR_FORMAT, "darts genotype, offset %zu: expected %s, found '%.*s'",
                    at, expected, (int)(len > 40 ? 40 : len), lx->text + at);
}

static int is_punct(const lexer *lx, char c) {
    return lx->kind == TK_PUNCT && lx->text[lx->start] == c;
}

static nas_status expect_punct(lexer *lx, char c) {
    if (!is_punct(lx, c)) {
        char what[8] = {'\'', c, '\'', '\0'};
        return lex_error(lx, what);
    }
    next_token(lx);
    return NAS_OK;
}

static nas_status expect_ident(lexer *lx, const char *word) {
    if (lx->kind != TK_IDENT || lx->len != strlen(word) ||
        memcmp(lx->text + lx->start, word, lx->len) != 0) {
        char what[64];
        snprintf(what, sizeof what, "'%s'", word);
        return lex_error(lx, what);
    }
    next_token(lx);
    return NAS_OK;
}

/* [('op', i), ...] with exactly 8 pairs, into the decisions of `cell`. */
static nas_status parse_edges(lexer *lx, int cell, nas_arch *out) {
    nas_status st = expect_punct(lx, '[');
    for (int k = 0; k < DARTS_NODES && st == NAS_OK; k++) {
        for (int e = 0; e < 2 && st == NAS_OK; e++) {
            if (k + e > 0 && (st = expect_punct(lx, ',')) != NAS_OK) {
                break;
            }
            if ((st = expect_punct(lx, '(')) != NAS_OK) {
                break;
            }
            if (lx->kind != TK_STRING) {
                st = lex_error(lx, "a quoted op name");
                break;
            }
            int op = -1;
            for (int i = 0; i < DARTS_OPS; i++) {
                if (strlen(op_names[i]) == lx->len &&
                    memcmp(op_names[i], lx->text + lx->start, lx->len) == 0) {
                    op = i;
                }
            }
            if (op < 0) {
                st = lex_error(lx, "an op (none, max_pool_3x3, avg_pool_3x3, skip_connect, "
                                   "sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5)");
                break;
            }
            next_token(lx);
            if ((st = expect_punct(lx, ',')) != NAS_OK) {
                break;
            }
            if (lx->kind != TK_INT || lx->value > k + 1) {
                char what[64];
                snprintf(what, sizeof what, "an input state 0..%d for node %d", k + 1, k + 2);
                st = lex_error(lx, what);
                break;
            }
            out->choice[dec_index(cell, k, e, 0)] = op;
            out->choice[dec_index(cell, k, e, 1)] = (int32_t)lx->value;
            next_token(lx);
            st = expect_punct(lx, ')');
        }
    }
    if (st == NAS_OK && is_punct(lx, ',')) {
        return lex_error(lx, "']' after 8 (op, input) pairs");
    }
    return st == NAS_OK ? expect_punct(lx, ']') : st;
}

/* [2, 3, 4, 5] or range(2, 6): the only concat the space has. */
static nas_status parse_concat(lexer *lx) {
    nas_status st;
    if (lx->kind == TK_IDENT) {
        if ((st = expect_ident(lx, "range")) != NAS_OK || (st = expect_punct(lx, '(')) != NAS_OK) {
            return st;
        }
        if (lx->kind != TK_INT || lx->value != 2) {
            return lex_error(lx, "2 (cells concatenate nodes 2..5)");
        }
        next_token(lx);
        if ((st = expect_punct(lx, ',')) != NAS_OK) {
            return st;
        }
        if (lx->kind != TK_INT || lx->value != 6) {
            return lex_error(lx, "6 (cells concatenate nodes 2..5)");
        }
        next_token(lx);
        return expect_punct(lx, ')');
    }
    if ((st = expect_punct(lx, '[')) != NAS_OK) {
        return st;
    }
    for (int v = 2; v <= 5; v++) {
        if (v > 2 && (st = expect_punct(lx, ',')) != NAS_OK) {
            return st;
        }
        if (lx->kind != TK_INT || lx->value != v) {
            char what[48];
            snprintf(what, sizeof what, "%d (cells concatenate nodes 2..5)", v);
            return lex_error(lx, what);
        }
        next_token(lx);
    }
    return expect_punct(lx, ']');
}

static nas_status darts_decode(nas_ctx *ctx, const nas_space *s, const char *text,
                               nas_arch *out) {
    (void)s;
    lexer lx = {.ctx = ctx, .text = text};
    next_token(&lx);
    nas_status st = expect_ident(&lx, "Genotype");
    if (st == NAS_OK) {
        st = expect_punct(&lx, '(');
    }
    for (int cell = 0; cell < 2 && st == NAS_OK; cell++) {
        char key[32];
        if (cell > 0 && (st = expect_punct(&lx, ',')) != NAS_OK) {
            break;
        }
        if ((st = expect_ident(&lx, cell_names[cell])) != NAS_OK ||
            (st = expect_punct(&lx, '=')) != NAS_OK || (st = parse_edges(&lx, cell, out)) != NAS_OK ||
            (st = expect_punct(&lx, ',')) != NAS_OK) {
            break;
        }
        snprintf(key, sizeof key, "%s_concat", cell_names[cell]);
        if ((st = expect_ident(&lx, key)) != NAS_OK || (st = expect_punct(&lx, '=')) != NAS_OK) {
            break;
        }
        st = parse_concat(&lx);
    }
    if (st == NAS_OK) {
        st = expect_punct(&lx, ')');
    }
    if (st == NAS_OK && lx.kind != TK_END) {
        st = lex_error(&lx, "end of text");
    }
    return st;
}

/* ------------------------------------------------------------------------ canonical form */

static void darts_canonical(const nas_space *s, const nas_arch *a, nas_arch *out) {
    (void)s;
    *out = *a;
    for (int cell = 0; cell < 2; cell++) {
        for (int k = 0; k < DARTS_NODES; k++) {
            int op[2], in[2];
            for (int e = 0; e < 2; e++) {
                op[e] = a->choice[dec_index(cell, k, e, 0)];
                in[e] = op[e] == OP_NONE ? 0 : a->choice[dec_index(cell, k, e, 1)];
            }
            const int swap = in[0] > in[1] || (in[0] == in[1] && op[0] > op[1]);
            for (int e = 0; e < 2; e++) {
                const int f = swap ? 1 - e : e;
                out->choice[dec_index(cell, k, e, 0)] = op[f];
                out->choice[dec_index(cell, k, e, 1)] = in[f];
            }
        }
    }
}

static int darts_active(const nas_space *s, const nas_arch *a, int d) {
    (void)s;
    return (d % 2) == 0 || a->choice[d - 1] != OP_NONE; /* the input of a none edge is moot */
}

/* ------------------------------------------------------------------------------ network */

static int relu_conv_bn(nas_snet *net, int x, int cout, int k, int stride, int pad, int dilation,
                        int groups, const char *name) {
    char buf[200];
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_conv(net, x, cout, k, stride, pad, dilation, groups, 0,
                      nas_nn_name(buf, sizeof buf, name, "conv"));
    return nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
}

/* DARTS FactorizedReduce: ReLU, two 1x1 stride-2 convs to cout/2, concat, BN; the second conv
 * reads x[:, :, 1:, 1:] (a one-pixel shift, so the two halves sample interleaved pixels). The
 * shifted input is H x W with a zero last row and column (ConstantPad2d((0, 1, 0, 1)) then
 * [1:, 1:]): for even H, W the stride-2 conv reads exactly the pixels of the reference's
 * conv_2(x[:, :, 1:, 1:]); for odd sizes, where the reference's halves differ in size and its
 * concat fails, both halves get ceil(H / 2) x ceil(W / 2). */
static int factorized_reduce(nas_snet *net, int x, int cout, const char *name) {
    char buf[200];
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    int y[2];
    y[0] = nas_snet_conv(net, x, cout / 2, 1, 2, 0, 1, 1, 0,
                         nas_nn_name(buf, sizeof buf, name, "conv_1"));
    const int shifted = net->status == NAS_OK ? nas_snet_crop(net, x, 1, 1, net->nodes[x].h,
                                                              net->nodes[x].w) : -1;
    y[1] = nas_snet_conv(net, shifted, cout / 2, 1, 2, 0, 1, 1, 0,
                         nas_nn_name(buf, sizeof buf, name, "conv_2"));
    return nas_snet_bn(net, nas_snet_concat(net, 2, y), 1, nas_nn_name(buf, sizeof buf, name, "bn"));
}

static int sep_conv(nas_snet *net, int x, int C, int k, int stride, const char *name) {
    char buf[200];
    const int pad = (k - 1) / 2;
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_conv(net, x, C, k, stride, pad, 1, C, 0, nas_nn_name(buf, sizeof buf, name, "dw1"));
    x = nas_snet_conv(net, x, C, 1, 1, 0, 1, 1, 0, nas_nn_name(buf, sizeof buf, name, "pw1"));
    x = nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn1"));
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_conv(net, x, C, k, 1, pad, 1, C, 0, nas_nn_name(buf, sizeof buf, name, "dw2"));
    x = nas_snet_conv(net, x, C, 1, 1, 0, 1, 1, 0, nas_nn_name(buf, sizeof buf, name, "pw2"));
    return nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn2"));
}

static int dil_conv(nas_snet *net, int x, int C, int k, int stride, const char *name) {
    char buf[200];
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_conv(net, x, C, k, stride, k - 1, 2, C, 0, nas_nn_name(buf, sizeof buf, name, "dw"));
    x = nas_snet_conv(net, x, C, 1, 1, 0, 1, 1, 0, nas_nn_name(buf, sizeof buf, name, "pw"));
    return nas_snet_bn(net, x, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
}

static int edge_op(nas_snet *net, int op, int x, int C, int stride, const char *name) {
    switch (op) {
        case OP_NONE: return nas_snet_zero(net, x, stride, C);
        case OP_MAX: return nas_snet_max_pool(net, x, 3, stride, 1);
        case OP_AVG: return nas_snet_avg_pool(net, x, 3, stride, 1, 0);
        case OP_SKIP: return stride == 1 ? x : factorized_reduce(net, x, C, name);
        case OP_SEP3: return sep_conv(net, x, C, 3, stride, name);
        case OP_SEP5: return sep_conv(net, x, C, 5, stride, name);
        case OP_DIL3: return dil_conv(net, x, C, 3, stride, name);
        case OP_DIL5: return dil_conv(net, x, C, 5, stride, name);
    }
    return -1;
}

/* One cell on states s0 (two cells back) and s1 (previous); returns the concat. */
static int cell_build(nas_snet *net, const nas_arch *a, int reduction, int reduction_prev, int s0,
                      int s1, int C, const char *name) {
    char buf[200], sub[160];
    const int cell = reduction ? 1 : 0;
    int states[2 + DARTS_NODES];
    states[0] = reduction_prev ? factorized_reduce(net, s0, C, nas_nn_name(buf, sizeof buf, name,
                                                                           "preprocess0"))
                               : relu_conv_bn(net, s0, C, 1, 1, 0, 1, 1,
                                              nas_nn_name(buf, sizeof buf, name, "preprocess0"));
    states[1] = relu_conv_bn(net, s1, C, 1, 1, 0, 1, 1,
                             nas_nn_name(buf, sizeof buf, name, "preprocess1"));
    for (int k = 0; k < DARTS_NODES && net->status == NAS_OK; k++) {
        int h[2];
        for (int e = 0; e < 2; e++) {
            const int op = a->choice[dec_index(cell, k, e, 0)];
            const int in = a->choice[dec_index(cell, k, e, 1)];
            const int stride = reduction && in < 2 ? 2 : 1;
            snprintf(sub, sizeof sub, "ops.%d", 2 * k + e);
            h[e] = edge_op(net, op, states[in], C, stride, nas_nn_name(buf, sizeof buf, name, sub));
        }
        states[2 + k] = nas_snet_add(net, h[0], h[1]);
    }
    return nas_snet_concat(net, DARTS_NODES, states + 2);
}

/* DARTS AuxiliaryHeadCIFAR (assumes an 8x8 input) as the netlist's auxiliary branch. */
static void aux_head(nas_snet *net, int x, int classes) {
    nas_snet_aux_begin(net);
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    x = nas_snet_avg_pool(net, x, 5, 3, 0, 0);
    x = nas_snet_conv_bn(net, x, 128, 1, 1, 1, NAS_ACT_RELU, "auxiliary_head.0");
    char buf[64];
    x = nas_snet_conv(net, x, 768, 2, 1, 0, 1, 1, 0, nas_nn_name(buf, sizeof buf,
                                                                 "auxiliary_head.1", "conv"));
    x = nas_snet_bn(net, x, 1, "auxiliary_head.1.bn");
    x = nas_snet_act(net, x, NAS_ACT_RELU);
    nas_snet_aux_end(net, nas_snet_linear(net, x, classes, "auxiliary_head.classifier"));
}

static void darts_describe(const nas_space *s, const nas_arch *a, const nas_build_opts *o,
                        nas_snet *net, nas_model_shape *shape_out) {
    (void)s;
    nas_model_shape shape = o->shape;
    shape.in_c = shape.in_c ? shape.in_c : 3;
    shape.in_h = shape.in_h ? shape.in_h : 32;
    shape.in_w = shape.in_w ? shape.in_w : shape.in_h;
    shape.classes = shape.classes ? shape.classes : 10;
    const int layers = o->cells > 0 ? o->cells : o->search_net ? 8 : 20;
    int C = (int)((o->search_net ? 16 : 36) * o->channels_mult + 0.5);
    C = C < 2 ? 2 : C + (C & 1); /* factorised reduce halves C */
    int x = nas_snet_input(net, shape.in_c, shape.in_h, shape.in_w);
    int C_curr = 3 * C;
    x = nas_snet_conv(net, x, C_curr, 3, 1, 1, 1, 1, 0, "stem.0");
    x = nas_snet_bn(net, x, 1, "stem.1");
    int s0 = x, s1 = x, reduction_prev = 0, aux_in = -1;
    C_curr = C;
    for (int i = 0; i < layers && net->status == NAS_OK; i++) {
        const int reduction = i == layers / 3 || i == 2 * layers / 3;
        if (reduction) {
            C_curr *= 2;
        }
        char name[32];
        snprintf(name, sizeof name, "cells.%d", i);
        const int y = cell_build(net, a, reduction, reduction_prev, s0, s1, C_curr, name);
        reduction_prev = reduction;
        s0 = s1;
        s1 = y;
        if (i == 2 * layers / 3) {
            aux_in = y;
        }
    }
    int logits_in = s1;
    if (o->aux_head && aux_in >= 0) {
        /* recorded in training mode only, returned by nas_model_aux_logits; the main head is
         * recorded last (the model's output) */
        aux_head(net, aux_in, shape.classes);
    }
    x = nas_snet_gap(net, logits_in);
    x = nas_snet_linear(net, x, shape.classes, "classifier");
    *shape_out = shape;
}

static const nas_space_vt darts_vt = {
    .kind = "darts",
    .encode = darts_encode,
    .decode = darts_decode,
    .canonical = darts_canonical,
    .active = darts_active,
    .describe = darts_describe,
};

nas_status nas_spaces_open_darts(nas_space *s) {
    static const char *const inputs[6] = {"0", "1", "2", "3", "4", "5"};
    /* default: DARTS_V2 (genotypes.py of the DARTS code) */
    static const int v2[2][8][2] = {
        {{OP_SEP3, 0}, {OP_SEP3, 1}, {OP_SEP3, 0}, {OP_SEP3, 1},
         {OP_SEP3, 1}, {OP_SKIP, 0}, {OP_SKIP, 0}, {OP_DIL3, 2}},
        {{OP_MAX, 0}, {OP_MAX, 1}, {OP_SKIP, 2}, {OP_MAX, 1},
         {OP_MAX, 0}, {OP_SKIP, 2}, {OP_SKIP, 2}, {OP_MAX, 1}}};
    s->vt = &darts_vt;
    for (int cell = 0; cell < 2; cell++) {
        for (int k = 0; k < DARTS_NODES; k++) {
            for (int e = 0; e < 2; e++) {
                char name[48];
                snprintf(name, sizeof name, "%s.node%d.edge%d.op", cell_names[cell], k + 2, e);
                nas_status st = nas_spaces_add_decision(s, name, DARTS_OPS, op_names,
                                                        v2[cell][2 * k + e][0]);
                if (st != NAS_OK) {
                    return st;
                }
                snprintf(name, sizeof name, "%s.node%d.edge%d.input", cell_names[cell], k + 2, e);
                st = nas_spaces_add_decision(s, name, k + 2, inputs, v2[cell][2 * k + e][1]);
                if (st != NAS_OK) {
                    return st;
                }
            }
        }
    }
    return NAS_OK;
}
