/* test_spaces.c - search spaces: NB201 params of all 15,625 cells against the published table,
 * MACs against NB201 / Suite-Zero, the reference networks' sizes measured with PyTorch
 * (PERF_NOTES, DARTS's own printout), text round trips of 10,000 random architectures per
 * space, mutation, neighbours, enumeration, isomorphism classes (NB201's published 6,466 under
 * xautodl's rule), stable hashes, parser errors that point at the token, JSON space errors that
 * name the key and line, and counting without weights equal to the built models' counts. */
#include "check.h"
#include "nascent.h"
#include "spaces/spaces_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const all_spaces[] = {"nb201", "darts", "mbnet", "mbnet32", "nasrl",
                                         "examples/spaces/minimal.json",
                                         "examples/spaces/mobilenetv2_32.json"};
#define N_SPACES ((int)(sizeof(all_spaces) / sizeof(all_spaces[0])))

static nas_space *open_space(nas_ctx *ctx, const char *name) {
    nas_space *s = NULL;
    nas_status st = nas_space_open(ctx, name, &s);
    CHECK(st == NAS_OK, "open %s: %s", name, nas_errmsg(ctx));
    return s;
}

static int same_arch(const nas_arch *a, const nas_arch *b) {
    return a->n == b->n && memcmp(a->choice, b->choice, (size_t)a->n * sizeof(int32_t)) == 0;
}

/* ------------------------------------------------------------------------------- NB201 */

static void arch_from_ops(const char *ops, nas_arch *a) {
    memset(a, 0, sizeof(*a));
    a->n = 6;
    for (int e = 0; e < 6; e++) {
        a->choice[e] = ops[e] - '0';
    }
}

static int count_op(const nas_arch *a, int op) {
    int n = 0;
    for (int e = 0; e < 6; e++) {
        n += a->choice[e] == op;
    }
    return n;
}

/* params for all 15,625 cells = params_mb_cifar10 * 1e6, compared at the table's 6 decimals.
 * The table is not self-consistent: an NB201 network's parameters depend only on how many
 * edges are nor_conv_1x1 and how many nor_conv_3x3 (the other ops have none), yet 204 rows
 * disagree with the other rows of their (n1x1, n3x3) group (and, for the 11 of them that
 * NAS-Bench-Suite-Zero also lists, with Suite-Zero's params). So: every row whose table value
 * is its group's majority value must equal our count exactly, our count must equal the
 * majority of every group, and the minority rows are reported. */
typedef struct group_votes {
    char value[8][16];
    int votes[8];
    int n;
} group_votes;

static void vote(group_votes *g, const char *v) {
    for (int i = 0; i < g->n; i++) {
        if (strcmp(g->value[i], v) == 0) {
            g->votes[i]++;
            return;
        }
    }
    if (g->n < 8) {
        memcpy(g->value[g->n], v, sizeof g->value[0]);
        g->votes[g->n++] = 1;
    }
}

static const char *majority(const group_votes *g) {
    int best = 0;
    for (int i = 1; i < g->n; i++) {
        best = g->votes[i] > g->votes[best] ? i : best;
    }
    return g->n > 0 ? g->value[best] : "";
}

static void test_nb201_params_all(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    FILE *f = fopen("data/spaces/nb201_params.csv", "r");
    CHECK(f != NULL, "data/spaces/nb201_params.csv missing (run from the repo root)");
    if (f == NULL || s == NULL) {
        nas_space_free(s);
        nas_ctx_free(ctx);
        return;
    }
    static char table[15625][16], ours[15625][16];
    static int group[15625];
    group_votes votes[7 * 7];
    memset(votes, 0, sizeof votes);
    char line[256];
    int rows = 0;
    CHECK(fgets(line, sizeof line, f) != NULL, "header");
    while (fgets(line, sizeof line, f) != NULL) {
        int index;
        char ops[16], mb[16];
        if (sscanf(line, "%d,%6s,%15s", &index, ops, mb) != 3 || index < 0 || index >= 15625) {
            continue;
        }
        nas_arch a;
        arch_from_ops(ops, &a);
        int64_t params = -1;
        CHECK(nas_space_count(ctx, s, &a, NULL, &params, NULL) == NAS_OK, "count %d", index);
        snprintf(ours[index], sizeof ours[0], "%.6f", (double)params / 1e6);
        memcpy(table[index], mb, sizeof table[0]);
        group[index] = count_op(&a, NAS_NB201_CONV1) * 7 + count_op(&a, NAS_NB201_CONV3);
        vote(&votes[group[index]], mb);
        rows++;
    }
    fclose(f);
    CHECK(rows == 15625, "%d rows", rows);
    int equal = 0, minority = 0;
    for (int i = 0; i < 15625; i++) {
        const char *maj = majority(&votes[group[i]]);
        CHECK(strcmp(ours[i], maj) == 0, "index %d: ours %s, table majority of its group %s", i,
              ours[i], maj);
        if (strcmp(table[i], maj) == 0) {
            CHECK(strcmp(ours[i], table[i]) == 0, "index %d: ours %s, table %s", i, ours[i],
                  table[i]);
            equal += strcmp(ours[i], table[i]) == 0;
        } else {
            minority++;
        }
    }
    printf("  nb201 params: %d of %d cells equal the table; %d rows disagree with their own "
           "group's majority and are skipped\n", equal, rows, minority);
    CHECK(minority < 300, "%d minority rows", minority);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* Suite-Zero flops (MFLOPs) = MACs + 3 per conv-output element + 9 per pool-output element (see
 * data/spaces/README.md); params equal the `params` column; our decoder reads its arch_str. */
static void test_nb201_flops_sample(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    FILE *f = fopen("data/spaces/nb201_flops_sample.csv", "r");
    CHECK(f != NULL, "data/spaces/nb201_flops_sample.csv missing");
    if (f == NULL || s == NULL) {
        nas_space_free(s);
        nas_ctx_free(ctx);
        return;
    }
    char line[512];
    int rows = 0;
    CHECK(fgets(line, sizeof line, f) != NULL, "header");
    while (fgets(line, sizeof line, f) != NULL) {
        char ds[32], arch_str[256];
        int index;
        double flops, params_mb;
        if (sscanf(line, "%31[^,],%d,%255[^,],%lf,%lf", ds, &index, arch_str, &flops,
                   &params_mb) != 5 ||
            strcmp(ds, "cifar10") != 0) {
            continue;
        }
        nas_arch a;
        CHECK(nas_space_decode(ctx, s, arch_str, &a) == NAS_OK, "decode %s: %s", arch_str,
              nas_errmsg(ctx));
        char text[256];
        CHECK(nas_space_encode(s, &a, text, sizeof text) == NAS_OK && strcmp(text, arch_str) == 0,
              "encode %s", arch_str);
        int64_t params = 0, macs = 0;
        CHECK(nas_space_count(ctx, s, &a, NULL, &params, &macs) == NAS_OK, "count");
        const int64_t extra = 160832 + 430080 * (int64_t)(count_op(&a, NAS_NB201_CONV1) +
                                                          count_op(&a, NAS_NB201_CONV3)) +
                              1290240 * (int64_t)count_op(&a, NAS_NB201_POOL3);
        CHECK(llround(flops * 1e6) == macs + extra, "%s: flops %.6f M, MACs %lld + extra %lld",
              arch_str, flops, (long long)macs, (long long)extra);
        CHECK(llround(params_mb * 1e6) == params, "%s: params %lld vs %.6f M", arch_str,
              (long long)params, params_mb);
        rows++;
    }
    fclose(f);
    CHECK(rows == 724, "%d cifar10 rows", rows);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* All-nor_conv_3x3 (PyTorch here: 1,531,546 params, 220,119,680 MACs), through nas_net_nb201
 * and through counting; plus a second cell from PERF_NOTES. */
static void test_nb201_reference_cells(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    static const struct {
        const char *text;
        int64_t params, macs;
    } cells[] = {
        {"|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
         "nor_conv_3x3~2|", 1531546, 220119680},
        {"|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|"
         "nor_conv_3x3~2|", 344346, 47104640},
    };
    for (int i = 0; i < 2 && s != NULL; i++) {
        nas_arch a;
        CHECK(nas_space_decode(ctx, s, cells[i].text, &a) == NAS_OK, "decode");
        int64_t p = 0, m = 0;
        CHECK(nas_space_count(ctx, s, &a, NULL, &p, &m) == NAS_OK, "count");
        CHECK(p == cells[i].params && m == cells[i].macs, "count %lld %lld", (long long)p,
              (long long)m);
        nas_model *model = NULL;
        CHECK(nas_space_build(ctx, s, &a, NULL, &model) == NAS_OK, "build: %s", nas_errmsg(ctx));
        if (model != NULL) {
            int64_t macs = 0;
            size_t peak = 0;
            CHECK(nas_model_count(model, &macs, &peak) == NAS_OK, "model count");
            CHECK(nas_model_n_params(model) == cells[i].params, "built params %lld",
                  (long long)nas_model_n_params(model));
            CHECK(macs == cells[i].macs, "built macs %lld", (long long)macs);
            CHECK(peak > 0, "peak");
        }
        nas_model_free(model);
    }
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static int cmp_i32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b) {
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* enumerate gives 15,625 distinct cells; isomorphism classes: xautodl's rule gives NB201's
 * published 6,466; our canonical form merges further (printed). */
static void test_nb201_enumerate_and_classes(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    if (s == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    CHECK(nas_space_size(s) == 15625, "size %lld", (long long)nas_space_size(s));
    const int n = 15625;
    uint64_t *h = calloc(n, sizeof(uint64_t)), *x = calloc(n, sizeof(uint64_t));
    int32_t *codes = calloc(n, sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        nas_arch a, c;
        CHECK(nas_space_enumerate(s, i, &a) == NAS_OK, "enumerate %d", i);
        int code = 0;
        for (int e = 0; e < 6; e++) {
            code = code * 5 + a.choice[e];
        }
        codes[i] = code;
        h[i] = nas_space_hash(s, &a);
        nas_space_canonical(s, &a, &c);
        CHECK(nas_space_hash(s, &c) == h[i], "hash of the canonical form");
        nas_arch cc;
        nas_space_canonical(s, &c, &cc);
        CHECK(same_arch(&c, &cc), "canonical is idempotent");
        char buf[1024];
        nas_spaces_nb201_xautodl_str(&a, buf, sizeof buf);
        uint64_t f = 0xcbf29ce484222325ULL;
        for (const char *p = buf; *p; p++) {
            f = (f ^ (uint8_t)*p) * 0x100000001b3ULL;
        }
        x[i] = f;
    }
    int distinct_codes = 1, classes = 1, xclasses = 1;
    qsort(codes, n, sizeof(int32_t), cmp_i32);
    qsort(h, n, sizeof(uint64_t), cmp_u64);
    qsort(x, n, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < n; i++) {
        distinct_codes += codes[i] != codes[i - 1];
        classes += h[i] != h[i - 1];
        xclasses += x[i] != x[i - 1];
    }
    CHECK(distinct_codes == 15625, "%d distinct cells", distinct_codes);
    CHECK(xclasses == 6466, "xautodl rule: %d classes (NB201 paper: 6,466)", xclasses);
    CHECK(classes < xclasses && classes > 1000, "%d canonical classes", classes);
    printf("  nb201: 15,625 cells, %d canonical classes (xautodl to_unique_str rule: %d)\n",
           classes, xclasses);
    free(h);
    free(x);
    free(codes);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* Known isomorphisms map to one canonical form. */
static void test_nb201_isomorphisms(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    static const char *const pairs[][2] = {
        /* node 1 feeds nothing but a none edge: its input op does not matter */
        {"|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"},
        /* nodes 1 and 2 swap roles when 2<-1 is none */
        {"|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|none~0|nor_conv_3x3~1|skip_connect~2|",
         "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"},
        /* the output is zero either way */
        {"|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|",
         "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
    };
    for (int i = 0; i < 3 && s != NULL; i++) {
        nas_arch a, b;
        CHECK(nas_space_decode(ctx, s, pairs[i][0], &a) == NAS_OK, "decode");
        CHECK(nas_space_decode(ctx, s, pairs[i][1], &b) == NAS_OK, "decode");
        CHECK(nas_space_hash(s, &a) == nas_space_hash(s, &b), "pair %d should be isomorphic", i);
    }
    nas_arch a, b;
    CHECK(nas_space_decode(ctx, s, "default", &a) == NAS_OK, "default");
    CHECK(nas_space_decode(ctx, s, pairs[0][0], &b) == NAS_OK, "decode");
    CHECK(nas_space_hash(s, &a) != nas_space_hash(s, &b), "different cells, different hashes");
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* ---------------------------------------------------------------- every space, generic */

static void test_roundtrip_all(void) {
    nas_ctx *ctx = nas_ctx_new();
    static char text[NAS_ARCH_TEXT_MAX], text2[NAS_ARCH_TEXT_MAX];
    for (int k = 0; k < N_SPACES; k++) {
        nas_space *s = open_space(ctx, all_spaces[k]);
        if (s == NULL) {
            continue;
        }
        nas_rng r = nas_rng_make(42, (uint64_t)k);
        int fails = 0;
        for (int i = 0; i < 10000 && fails < 3; i++) {
            nas_arch a, b;
            nas_space_sample(s, &r, &a);
            if (nas_space_encode(s, &a, text, sizeof text) != NAS_OK) {
                CHECK(0, "%s: encode: %s", all_spaces[k], nas_errmsg(ctx));
                fails++;
                continue;
            }
            const nas_status st = nas_space_decode(ctx, s, text, &b);
            const int ok = st == NAS_OK && same_arch(&a, &b) &&
                           nas_space_encode(s, &b, text2, sizeof text2) == NAS_OK &&
                           strcmp(text, text2) == 0;
            if (!ok) {
                CHECK(0, "%s: round trip of '%s': %s", all_spaces[k], text, nas_errmsg(ctx));
                fails++;
            }
        }
        nas_arch d;
        CHECK(nas_space_decode(ctx, s, "default", &d) == NAS_OK, "%s default", all_spaces[k]);
        nas_space_free(s);
    }
    nas_ctx_free(ctx);
}

static void test_mutate_neighbours(void) {
    nas_ctx *ctx = nas_ctx_new();
    for (int k = 0; k < N_SPACES; k++) {
        nas_space *s = open_space(ctx, all_spaces[k]);
        if (s == NULL) {
            continue;
        }
        nas_rng r = nas_rng_make(7, (uint64_t)k);
        const int n = nas_space_n_decisions(s);
        for (int i = 0; i < 1000; i++) {
            nas_arch a, b;
            nas_space_sample(s, &r, &a);
            nas_space_mutate(s, &r, &a, &b);
            int diff = 0, which = -1;
            for (int d = 0; d < n; d++) {
                if (a.choice[d] != b.choice[d]) {
                    diff++;
                    which = d;
                }
            }
            CHECK(diff == 1, "%s: mutate changed %d decisions", all_spaces[k], diff);
            if (diff == 1) {
                CHECK(b.choice[which] >= 0 && b.choice[which] < nas_space_n_choices(s, which),
                      "valid choice");
                /* a change that matters: the canonical forms differ unless isomorphic (nb201) */
                if (strcmp(all_spaces[k], "nb201") != 0 && strcmp(all_spaces[k], "darts") != 0) {
                    CHECK(nas_space_hash(s, &a) != nas_space_hash(s, &b),
                          "%s: mutation of %s did not change the architecture", all_spaces[k],
                          nas_space_decision_name(s, which));
                }
            }
        }
        /* neighbours: each differs in one decision, all distinct, count = sum of (choices-1)
         * over the decisions that matter (all of them for nb201) */
        nas_arch a;
        nas_space_sample(s, &r, &a);
        const int64_t nn = nas_space_neighbours(s, &a, NULL, 0);
        nas_arch *nb = calloc((size_t)nn + 1, sizeof(nas_arch));
        CHECK(nas_space_neighbours(s, &a, nb, nn) == nn, "neighbours");
        for (int64_t i = 0; i < nn; i++) {
            int diff = 0;
            for (int d = 0; d < n; d++) {
                diff += nb[i].choice[d] != a.choice[d];
            }
            CHECK(diff == 1, "neighbour %lld differs in %d", (long long)i, diff);
            for (int64_t j = 0; j < i && i < 200; j++) {
                CHECK(!same_arch(&nb[i], &nb[j]), "duplicate neighbour");
            }
        }
        if (strcmp(all_spaces[k], "nb201") == 0) {
            CHECK(nn == 24, "nb201 neighbours %lld", (long long)nn);
        }
        free(nb);
        /* features: one 1 per active decision */
        const int64_t nf = nas_space_n_features(s);
        float *feat = calloc((size_t)nf, sizeof(float));
        nas_space_features(s, &a, feat);
        double sum = 0;
        for (int64_t i = 0; i < nf; i++) {
            sum += feat[i];
        }
        CHECK(sum >= 1 && sum <= n, "features sum %g", sum);
        free(feat);
        nas_space_free(s);
    }
    nas_ctx_free(ctx);
}

static void test_hash_stable(void) {
    nas_ctx *ctx = nas_ctx_new();
    for (int k = 0; k < N_SPACES; k++) {
        nas_space *s1 = open_space(ctx, all_spaces[k]), *s2 = open_space(ctx, all_spaces[k]);
        if (s1 == NULL || s2 == NULL) {
            nas_space_free(s1);
            nas_space_free(s2);
            continue;
        }
        nas_rng r1 = nas_rng_make(3, 0), r2 = nas_rng_make(3, 0);
        for (int i = 0; i < 200; i++) {
            nas_arch a, b, c;
            nas_space_sample(s1, &r1, &a);
            nas_space_sample(s2, &r2, &b);
            CHECK(nas_space_hash(s1, &a) == nas_space_hash(s2, &b), "same arch, same hash");
            nas_space_canonical(s1, &a, &c);
            CHECK(nas_space_hash(s1, &a) == nas_space_hash(s1, &c), "canonical hash");
        }
        nas_space_free(s1);
        nas_space_free(s2);
    }
    nas_ctx_free(ctx);
}

/* Counting without weights equals the built model's parameter count and the graph's MACs. */
static void test_count_matches_build(void) {
    nas_ctx *ctx = nas_ctx_new();
    for (int k = 0; k < N_SPACES; k++) {
        nas_space *s = open_space(ctx, all_spaces[k]);
        if (s == NULL) {
            continue;
        }
        /* full-size nets only for the small spaces: initialising weights is what costs time */
        const int small = strstr(all_spaces[k], "minimal") != NULL ||
                          strcmp(all_spaces[k], "nasrl") == 0;
        nas_rng r = nas_rng_make(11, (uint64_t)k);
        for (int i = small ? 0 : 1; i < (small ? 4 : 2); i++) {
            nas_arch a;
            nas_space_sample(s, &r, &a);
            nas_build_opts o;
            memset(&o, 0, sizeof o);
            o.no_init = i != 2; /* one initialised build per space is enough */
            if (i == 1) {
                o.channels_mult = 0.5;
                o.cells = 2;
                o.shape.classes = 7;
            }
            int64_t p = 0, m = 0;
            CHECK(nas_space_count(ctx, s, &a, &o, &p, &m) == NAS_OK, "%s count: %s",
                  all_spaces[k], nas_errmsg(ctx));
            nas_model *model = NULL;
            CHECK(nas_space_build(ctx, s, &a, &o, &model) == NAS_OK, "%s build: %s",
                  all_spaces[k], nas_errmsg(ctx));
            if (model == NULL) {
                continue;
            }
            int64_t macs = 0;
            CHECK(nas_model_count(model, &macs, NULL) == NAS_OK, "%s model count: %s",
                  all_spaces[k], nas_errmsg(ctx));
            CHECK(nas_model_n_params(model) == p, "%s: built %lld params, counted %lld",
                  all_spaces[k], (long long)nas_model_n_params(model), (long long)p);
            CHECK(macs == m, "%s: graph %lld MACs, counted %lld", all_spaces[k], (long long)macs,
                  (long long)m);
            CHECK(nas_model_get_shape(model).classes == (i == 1 ? 7 : nas_model_get_shape(model)
                                                                      .classes),
                  "classes option");
            nas_model_free(model);
        }
        nas_space_free(s);
    }
    nas_ctx_free(ctx);
}

/* ------------------------------------------------------------------ reference networks */

static void test_darts_v2(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "darts");
    const char *v2 =
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
        "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
        "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
        "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
        "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=range(2, 6))";
    nas_arch a, d;
    CHECK(s != NULL && nas_space_decode(ctx, s, v2, &a) == NAS_OK, "decode: %s", nas_errmsg(ctx));
    CHECK(s != NULL && nas_space_decode(ctx, s, "default", &d) == NAS_OK && same_arch(&a, &d),
          "default is DARTS_V2");
    int64_t p = 0;
    nas_build_opts o;
    memset(&o, 0, sizeof o);
    CHECK(s != NULL && nas_space_count(ctx, s, &a, &o, &p, NULL) == NAS_OK, "count");
    CHECK(p == 3349342, "DARTS_V2 C=36 20 cells: %lld params (reference code: 3,349,342)",
          (long long)p);
    o.aux_head = 1;
    CHECK(s != NULL && nas_space_count(ctx, s, &a, &o, &p, NULL) == NAS_OK, "count aux");
    CHECK(p == 3349342 + 476426, "with the auxiliary head: %lld", (long long)p);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static void test_json_spaces(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "examples/spaces/minimal.json");
    CHECK(s != NULL && nas_space_size(s) == 1458, "|S| = %lld",
          s ? (long long)nas_space_size(s) : -1LL);
    CHECK(s != NULL && nas_space_n_decisions(s) == 7, "7 decisions");
    nas_space_free(s);
    s = open_space(ctx, "examples/spaces/mobilenetv2_32.json");
    nas_arch a;
    CHECK(s != NULL && nas_space_decode(ctx, s, "default", &a) == NAS_OK, "default");
    int64_t p = 0, m = 0;
    CHECK(s != NULL && nas_space_count(ctx, s, &a, NULL, &p, &m) == NAS_OK, "count: %s",
          nas_errmsg(ctx));
    /* PyTorch (PERF_NOTES.md): 2,236,682 params, 87,976,448 MACs */
    CHECK(p == 2236682 && m == 87976448, "MobileNetV2-32: %lld params, %lld MACs", (long long)p,
          (long long)m);
    nas_dag_node dag[512];
    const int64_t nd = s ? nas_space_dag(ctx, s, &a, NULL, dag, 512) : -1;
    CHECK(nd > 50 && nd <= 512, "dag of %lld nodes", (long long)nd);
    /* spatial sizes run 32-32-32-16-8-8-4-4: the last conv sees 4x4 */
    int last_conv = -1;
    for (int64_t i = 0; i < nd && i < 512; i++) {
        if (strcmp(dag[i].op, "conv") == 0) {
            last_conv = (int)i;
        }
    }
    CHECK(last_conv >= 0 && dag[last_conv].h == 4 && dag[last_conv].c == 1280, "last conv");
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* --------------------------------------------------------------------------- errors */

static void expect_decode_error(nas_ctx *ctx, nas_space *s, const char *text, int offset) {
    nas_arch a;
    const nas_status st = nas_space_decode(ctx, s, text, &a);
    char want[32];
    snprintf(want, sizeof want, "offset %d", offset);
    CHECK(st == NAS_ERR_FORMAT, "'%s' gave %s", text, nas_status_name(st));
    CHECK(strstr(nas_errmsg(ctx), want) != NULL, "'%s': message '%s' lacks '%s'", text,
          nas_errmsg(ctx), want);
}

static void test_decode_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = open_space(ctx, "nb201");
    expect_decode_error(ctx, s, "|nor_conv_3x3~0|+|nor_conv_3x4~0|nor_conv_3x3~1|+|", 18);
    expect_decode_error(ctx, s, "|none~0|+|none~1|", 15);
    expect_decode_error(ctx, s, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|x", 47);
    expect_decode_error(ctx, s, "", 0);
    nas_space_free(s);
    s = open_space(ctx, "darts");
    expect_decode_error(ctx, s, "Genotype(normal=[('sep_conv_9x9', 0)", 18);
    expect_decode_error(ctx, s, "Genotype(normal=[('sep_conv_3x3', 2)", 34);
    expect_decode_error(ctx, s, "Genotyp", 0);
    nas_space_free(s);
    s = open_space(ctx, "mbnet");
    expect_decode_error(ctx, s, "{\"ks\": [3,", 10);
    expect_decode_error(ctx, s, "{\"ks\": [3], \"zz\": 1}", 12);
    nas_space_free(s);
    s = open_space(ctx, "nasrl");
    expect_decode_error(ctx, s, "3x3/36/1,3x4/36/1", 11);
    nas_space_free(s);
    s = open_space(ctx, "examples/spaces/minimal.json");
    expect_decode_error(ctx, s, "stem=conv3x3,c1=33", 16);
    expect_decode_error(ctx, s, "stem=conv3x3,cx=32", 13);
    nas_space_free(s);
    nas_ctx_free(ctx);
}

/* Write text to a temporary JSON file and open it; returns the status, message in ctx. */
static nas_status open_json_text(nas_ctx *ctx, const char *text) {
    char path[] = "/tmp/nas_test_space_XXXXXX.json";
    const int fd = mkstemps(path, 5);
    if (fd < 0) {
        return NAS_ERR_IO;
    }
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    nas_space *s = NULL;
    const nas_status st = nas_space_open(ctx, path, &s);
    nas_space_free(s);
    remove(path);
    return st;
}

static void expect_json_error(nas_ctx *ctx, const char *text, const char *line_key) {
    const nas_status st = open_json_text(ctx, text);
    CHECK(st == NAS_ERR_FORMAT, "gave %s", nas_status_name(st));
    CHECK(strstr(nas_errmsg(ctx), line_key) != NULL, "message '%s' lacks '%s'", nas_errmsg(ctx),
          line_key);
}

static void test_json_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    const char *good = "{\n \"decisions\": [\n  {\"name\": \"c\", \"choices\": [8, 16]}\n ],\n"
                       " \"network\": [\n  {\"block\": \"conv\", \"out\": \"$c\"}\n ]\n}\n";
    CHECK(open_json_text(ctx, good) == NAS_OK, "good: %s", nas_errmsg(ctx));
    expect_json_error(ctx, "{\n \"decisions\": [],\n \"netwrk\": []\n}\n", ":3: \"netwrk\"");
    expect_json_error(ctx,
                      "{\n \"decisions\": [\n  {\"name\": \"c\", \"choices\": [8, 16]}\n ],\n"
                      " \"network\": [\n  {\"block\": \"conv\", \"out\": \"$c\"},\n"
                      "  {\"block\": \"conv\", \"out\": 8, \"kernal\": 3}\n ]\n}\n",
                      ":7: \"kernal\"");
    expect_json_error(ctx,
                      "{\n \"decisions\": [\n  {\"name\": \"c\", \"choices\": [8, 16]}\n ],\n"
                      " \"network\": [\n  {\"block\": \"conv\",\n   \"out\": \"$d\"}\n ]\n}\n",
                      ":7: \"out\"");
    expect_json_error(ctx,
                      "{\n \"decisions\": [\n  {\"name\": \"c\", \"choices\": [8, 16],\n"
                      "   \"default\": 12}\n ],\n \"network\": [{\"block\": \"skip\"}]\n}\n",
                      ":4: \"default\"");
    expect_json_error(ctx, "{\n \"decisions\": [\n  {\"name\": \"c\", \"choices\": [8, 16]}\n ],\n"
                           " \"network\": [\n  {\"block\": \"conv\", \"out\": -3}\n ]\n}\n",
                      ":6: \"out\"");
    expect_json_error(ctx, "{\n \"decisions\": [\n  {\"name\": \"c\",, }\n", ":3:");
    nas_space *s = NULL;
    CHECK(nas_space_open(ctx, "/nonexistent/space.json", &s) == NAS_ERR_IO, "missing file");
    CHECK(nas_space_open(ctx, "nb2011", &s) == NAS_ERR_ARG, "unknown space");
    nas_ctx_free(ctx);
}

#define TIMED(fn)                                                                                  \
    do {                                                                                           \
        const double t0_ = nas_now();                                                              \
        RUN_TEST(fn);                                                                              \
        printf("     (%.2f s)\n", nas_now() - t0_);                                                \
    } while (0)

int main(void) {
    TIMED(test_nb201_params_all);
    TIMED(test_nb201_flops_sample);
    TIMED(test_nb201_reference_cells);
    TIMED(test_nb201_enumerate_and_classes);
    TIMED(test_nb201_isomorphisms);
    TIMED(test_roundtrip_all);
    TIMED(test_mutate_neighbours);
    TIMED(test_hash_stable);
    TIMED(test_count_matches_build);
    TIMED(test_darts_v2);
    TIMED(test_json_spaces);
    TIMED(test_decode_errors);
    TIMED(test_json_errors);
    return check_report("spaces");
}
