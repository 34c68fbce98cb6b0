/* user.c - search spaces described by a JSON file (SPEC 3.5), parsed with jansson.
 *
 *   {"name": "minimal", "input": [3, 32, 32], "classes": 10, "dropout": 0.0,
 *    "decisions": [{"name": "k1", "choices": [1, 3, 5], "default": 3}, ...],
 *    "network": [{"block": "conv", "out": "$c1", "kernel": "$k1"}, "$stem", ...]}
 *
 * A decision's choices are numbers, strings, block objects (named by their "name" key), lists of
 * blocks, or null (no block). In the network, a value "$d" stands for decision d's choice: any
 * number or activation field of a block, a whole block, or a "repeat" count. After the network
 * comes the head: global average pool, dropout, linear to the classes.
 *
 * Blocks ("block": kind, then its keys; all optional unless marked):
 *   conv        out*, kernel (3), stride (1), groups (1), act ("relu"), bn (true), bias (false)
 *   dwsep       out*, kernel (3), stride (1), act ("relu"): depthwise + BN + act, 1x1 + BN + act
 *   bottleneck  out*, mid*, stride (1), act ("relu"): ResNet 1x1-3x3-1x1, projection shortcut
 *   resnext     out*, mid*, groups* , stride (1), act ("relu"): grouped 3x3 bottleneck
 *   mbconv      out*, expand (6), kernel (3), stride (1), act ("relu6"), se (0 = none, else the
 *               SE width ratio of the middle width): MobileNetV2 inverted bottleneck
 *   shuffle     out*, groups* , stride (1), act ("relu"): ShuffleNet unit (grouped 1x1, channel
 *               shuffle, depthwise 3x3, grouped 1x1; stride 2 concatenates an avg-pooled input)
 *   se          ratio (0.25), gate ("sigmoid")
 *   pool        type* ("max" or "avg"), kernel (3), stride (2)
 *   skip        (nothing: the identity)
 *   attention   heads*: multi-head self-attention over the H*W positions with a residual,
 *               x + MHA(x as tokens [N, HW, C]) as torch.nn.MultiheadAttention(C, heads,
 *               batch_first=True); heads must divide the channels (nas_snet_attention)
 * Every block takes "repeat" (1; stride applies to the first copy) and "name".
 * Unknown keys and bad values are errors naming the key and its line in the file.
 *
 * Architecture text: `name=choice,name=choice,...` in decision order (choice names as above). */
#include "spaces_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PATH_MAX_DEPTH 24

typedef struct path_elem {
    const char *key; /* object key, or NULL for an array index */
    size_t index;
} path_elem;

/* Validation state: where we are in the file, for messages. */
typedef struct ucheck {
    nas_space *s;
    const char *text; /* the file's bytes */
    const char *file;
    path_elem path[PATH_MAX_DEPTH];
    int depth;
} ucheck;

typedef struct user_impl {
    json_t *root;
    json_t *choices[NAS_ARCH_MAX_DECISIONS]; /* borrowed from root */
    int in_c, in_h, in_w, classes;
    float dropout;
} user_impl;

/* ---------------------------------------------------------------------- locating lines */

/* A minimal skipper over (already valid) JSON, only to find where a path's value starts. */
static size_t skip_ws(const char *t, size_t i) {
    while (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r') {
        i++;
    }
    return i;
}

static size_t skip_value(const char *t, size_t i);

static size_t skip_string(const char *t, size_t i) {
    i++; /* opening quote */
    while (t[i] != '\0' && t[i] != '"') {
        i += t[i] == '\\' && t[i + 1] != '\0' ? 2 : 1;
    }
    return t[i] == '"' ? i + 1 : i;
}

static size_t skip_container(const char *t, size_t i, char close) {
    i = skip_ws(t, i + 1);
    while (t[i] != '\0' && t[i] != close) {
        if (close == '}') {
            i = skip_ws(t, skip_string(t, i));
            i = t[i] == ':' ? skip_ws(t, i + 1) : i;
        }
        i = skip_ws(t, skip_value(t, i));
        i = t[i] == ',' ? skip_ws(t, i + 1) : i;
        if (t[i] != '\0' && t[i] != close && t[i] != '"' && close == '}') {
            break; /* malformed: stop rather than loop */
        }
    }
    return t[i] == close ? i + 1 : i;
}

static size_t skip_value(const char *t, size_t i) {
    if (t[i] == '"') {
        return skip_string(t, i);
    }
    if (t[i] == '{') {
        return skip_container(t, i, '}');
    }
    if (t[i] == '[') {
        return skip_container(t, i, ']');
    }
    const size_t start = i;
    while (t[i] != '\0' && strchr(",]} \t\r\n", t[i]) == NULL) {
        i++;
    }
    return i > start ? i : i + (t[i] != '\0');
}

/* Offset of the value (or, for the last element, the key) at the path; the best prefix found. */
static size_t locate(const char *t, const path_elem *path, int depth) {
    size_t i = skip_ws(t, 0), found = i;
    for (int d = 0; d < depth; d++) {
        if (path[d].key != NULL && t[i] == '{') {
            size_t j = skip_ws(t, i + 1);
            const size_t klen = strlen(path[d].key);
            int hit = 0;
            while (t[j] == '"') {
                const size_t kstart = j + 1, kend = skip_string(t, j) - 1;
                j = skip_ws(t, kend + 1);
                j = t[j] == ':' ? skip_ws(t, j + 1) : j;
                if (kend - kstart == klen && memcmp(t + kstart, path[d].key, klen) == 0) {
                    found = d == depth - 1 ? kstart - 1 : j;
                    i = j;
                    hit = 1;
                    break;
                }
                j = skip_ws(t, skip_value(t, j));
                j = t[j] == ',' ? skip_ws(t, j + 1) : j;
            }
            if (!hit) {
                return found;
            }
        } else if (path[d].key == NULL && t[i] == '[') {
            size_t j = skip_ws(t, i + 1);
            for (size_t k = 0; k < path[d].index && t[j] != ']' && t[j] != '\0'; k++) {
                j = skip_ws(t, skip_value(t, j));
                j = t[j] == ',' ? skip_ws(t, j + 1) : j;
            }
            i = found = j;
        } else {
            return found;
        }
    }
    return found;
}

static int line_of(const char *t, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off && t[i] != '\0'; i++) {
        line += t[i] == '\n';
    }
    return line;
}

/* "key" of the innermost object on the path (for messages). */
static const char *path_key(const ucheck *u) {
    for (int d = u->depth - 1; d >= 0; d--) {
        if (u->path[d].key != NULL) {
            return u->path[d].key;
        }
    }
    return "(top level)";
}

static nas_status ufail(ucheck *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static nas_status ufail(ucheck *u, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const int line = line_of(u->text, locate(u->text, u->path, u->depth));
    return nas_fail(u->s->ctx, NAS_ERR_FORMAT, "%s:%d: \"%s\": %s", u->file, line, path_key(u),
                    msg);
}

static void push_key(ucheck *u, const char *key) {
    NAS_ASSERT(u->depth < PATH_MAX_DEPTH);
    u->path[u->depth].key = key;
    u->path[u->depth].index = 0;
    u->depth++;
}

static void push_index(ucheck *u, size_t index) {
    NAS_ASSERT(u->depth < PATH_MAX_DEPTH);
    u->path[u->depth].key = NULL;
    u->path[u->depth].index = index;
    u->depth++;
}

/* ------------------------------------------------------------------------- block schema */

typedef enum { V_INT, V_REPEAT, V_NUM, V_BOOL, V_ACT, V_POOL, V_STR } vkind;

typedef struct key_spec {
    const char *key;
    vkind kind;
    int required;
} key_spec;

typedef struct block_spec {
    const char *kind;
    key_spec keys[8];
} block_spec;

static const block_spec blocks[] = {
    {"conv", {{"out", V_INT, 1}, {"kernel", V_INT, 0}, {"stride", V_INT, 0}, {"groups", V_INT, 0},
              {"act", V_ACT, 0}, {"bn", V_BOOL, 0}, {"bias", V_BOOL, 0}}},
    {"dwsep", {{"out", V_INT, 1}, {"kernel", V_INT, 0}, {"stride", V_INT, 0}, {"act", V_ACT, 0}}},
    {"bottleneck", {{"out", V_INT, 1}, {"mid", V_INT, 1}, {"stride", V_INT, 0}, {"act", V_ACT, 0}}},
    {"resnext", {{"out", V_INT, 1}, {"mid", V_INT, 1}, {"groups", V_INT, 1}, {"stride", V_INT, 0},
                 {"act", V_ACT, 0}}},
    {"mbconv", {{"out", V_INT, 1}, {"expand", V_NUM, 0}, {"kernel", V_INT, 0},
                {"stride", V_INT, 0}, {"act", V_ACT, 0}, {"se", V_NUM, 0}}},
    {"shuffle", {{"out", V_INT, 1}, {"groups", V_INT, 1}, {"stride", V_INT, 0}, {"act", V_ACT, 0}}},
    {"se", {{"ratio", V_NUM, 0}, {"gate", V_ACT, 0}}},
    {"pool", {{"type", V_POOL, 1}, {"kernel", V_INT, 0}, {"stride", V_INT, 0}}},
    {"skip", {{NULL, V_INT, 0}}},
    {"attention", {{"heads", V_INT, 1}}},
};

static const block_spec *find_block(const char *kind) {
    for (size_t i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++) {
        if (strcmp(blocks[i].kind, kind) == 0) {
            return &blocks[i];
        }
    }
    return NULL;
}

static int find_decision(const nas_space *s, const char *name) {
    for (int d = 0; d < s->n_dec; d++) {
        if (strcmp(s->dec[d].name, name) == 0) {
            return d;
        }
    }
    return -1;
}

/* "$name" reference: the decision index, -1 when v is not a reference, -2 when unknown. */
static int ref_of(const nas_space *s, const json_t *v) {
    if (!json_is_string(v) || json_string_value(v)[0] != '$') {
        return -1;
    }
    const int d = find_decision(s, json_string_value(v) + 1);
    return d >= 0 ? d : -2;
}

static nas_status check_scalar(ucheck *u, const json_t *v, vkind kind);

/* A value that may be a reference: every choice of the referenced decision must fit. */
static nas_status check_value(ucheck *u, const json_t *v, vkind kind) {
    const int d = ref_of(u->s, v);
    if (d == -2) {
        return ufail(u, "reference %s names no decision", json_string_value(v));
    }
    if (d >= 0) {
        const user_impl *impl = u->s->impl;
        for (size_t c = 0; c < json_array_size(impl->choices[d]); c++) {
            nas_status st = check_scalar(u, json_array_get(impl->choices[d], c), kind);
            if (st != NAS_OK) {
                return ufail(u, "choice %zu of decision %s does not fit here", c,
                             u->s->dec[d].name);
            }
        }
        return NAS_OK;
    }
    return check_scalar(u, v, kind);
}

static nas_status check_scalar(ucheck *u, const json_t *v, vkind kind) {
    switch (kind) {
        case V_INT:
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 65536) {
                return ufail(u, "expected an integer 0..65536 or a \"$decision\"");
            }
            return NAS_OK;
        case V_REPEAT:
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100) {
                return ufail(u, "expected a repeat count 0..100 or a \"$decision\"");
            }
            return NAS_OK;
        case V_NUM:
            if (!json_is_number(v) || !(json_number_value(v) >= 0.0) ||
                json_number_value(v) > 1000.0) {
                return ufail(u, "expected a number 0..1000 or a \"$decision\"");
            }
            return NAS_OK;
        case V_BOOL:
            return json_is_boolean(v) ? NAS_OK : ufail(u, "expected true or false");
        case V_ACT:
            if (!json_is_string(v) || nas_nn_act_from_name(json_string_value(v)) < 0) {
                return ufail(u, "expected an activation (none, relu, relu6, hswish, hsigmoid, "
                                "sigmoid, swish, tanh)");
            }
            return NAS_OK;
        case V_POOL:
            if (!json_is_string(v) || (strcmp(json_string_value(v), "max") != 0 &&
                                       strcmp(json_string_value(v), "avg") != 0)) {
                return ufail(u, "expected \"max\" or \"avg\"");
            }
            return NAS_OK;
        case V_STR:
            return json_is_string(v) ? NAS_OK : ufail(u, "expected a string");
    }
    return NAS_ERR_ARG;
}

static nas_status check_layer(ucheck *u, const json_t *v, int allow_ref);

static nas_status check_block(ucheck *u, const json_t *b) {
    const json_t *kind = json_object_get(b, "block");
    if (!json_is_string(kind)) {
        return ufail(u, "a block needs \"block\": one of conv, dwsep, bottleneck, resnext, "
                        "mbconv, shuffle, se, pool, skip, attention");
    }
    const block_spec *spec = find_block(json_string_value(kind));
    if (spec == NULL) {
        push_key(u, "block");
        return ufail(u, "unknown block kind \"%s\" (expected conv, dwsep, bottleneck, resnext, "
                        "mbconv, shuffle, se, pool, skip, attention)", json_string_value(kind));
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)b, key, v) {
        push_key(u, key);
        nas_status st = NAS_OK;
        if (strcmp(key, "block") == 0) {
        } else if (strcmp(key, "name") == 0) {
            st = check_scalar(u, v, V_STR);
        } else if (strcmp(key, "repeat") == 0) {
            st = check_value(u, v, V_REPEAT);
        } else {
            const key_spec *ks = NULL;
            for (int i = 0; i < 8 && spec->keys[i].key != NULL; i++) {
                if (strcmp(spec->keys[i].key, key) == 0) {
                    ks = &spec->keys[i];
                }
            }
            if (ks == NULL) {
                st = ufail(u, "unknown key for a %s block", spec->kind);
            } else {
                st = check_value(u, v, ks->kind);
            }
        }
        u->depth--;
        if (st != NAS_OK) {
            return st;
        }
    }
    for (int i = 0; i < 8 && spec->keys[i].key != NULL; i++) {
        if (spec->keys[i].required && json_object_get(b, spec->keys[i].key) == NULL) {
            return ufail(u, "a %s block needs \"%s\"", spec->kind, spec->keys[i].key);
        }
    }
    return NAS_OK;
}

/* A network element: a block, a list of blocks, null, or (in the network) a "$decision". */
static nas_status check_layer(ucheck *u, const json_t *v, int allow_ref) {
    if (json_is_null(v)) {
        return NAS_OK;
    }
    if (json_is_object(v)) {
        return check_block(u, v);
    }
    if (json_is_array(v)) {
        if (u->depth + 4 >= PATH_MAX_DEPTH) {
            return ufail(u, "lists of blocks nested too deeply");
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            push_index(u, i);
            nas_status st = check_layer(u, json_array_get(v, i), allow_ref);
            u->depth--;
            if (st != NAS_OK) {
                return st;
            }
        }
        return NAS_OK;
    }
    const int d = allow_ref ? ref_of(u->s, v) : -1;
    if (d == -2) {
        return ufail(u, "reference %s names no decision", json_string_value(v));
    }
    if (d >= 0) {
        const user_impl *impl = u->s->impl;
        for (size_t c = 0; c < json_array_size(impl->choices[d]); c++) {
            const json_t *ch = json_array_get(impl->choices[d], c);
            if (!json_is_null(ch) && !json_is_object(ch) && !json_is_array(ch)) {
                return ufail(u, "decision %s's choices are not blocks", u->s->dec[d].name);
            }
        }
        return NAS_OK;
    }
    return ufail(u, "expected a block object, a list of blocks, null or a \"$decision\"");
}

/* --------------------------------------------------------------------------- decisions */

static nas_status choice_name(ucheck *u, const json_t *c, char *buf, size_t size) {
    if (json_is_integer(c)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(c));
    } else if (json_is_real(c)) {
        snprintf(buf, size, "%g", json_real_value(c));
    } else if (json_is_string(c)) {
        snprintf(buf, size, "%s", json_string_value(c));
    } else if (json_is_null(c)) {
        snprintf(buf, size, "none");
    } else if (json_is_object(c) && json_is_string(json_object_get(c, "name"))) {
        snprintf(buf, size, "%s", json_string_value(json_object_get(c, "name")));
    } else {
        return ufail(u, "a block (or list) choice needs a \"name\" (lists: their first block's)");
    }
    if (buf[0] == '\0' || strpbrk(buf, ",=") != NULL || strlen(buf) > 60) {
        return ufail(u, "choice name '%s' must be 1..60 characters without ',' or '='", buf);
    }
    return NAS_OK;
}

static nas_status open_decision(ucheck *u, const json_t *dj) {
    if (!json_is_object(dj)) {
        return ufail(u, "a decision is an object {\"name\", \"choices\", \"default\"}");
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)dj, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "choices") != 0 &&
            strcmp(key, "default") != 0) {
            push_key(u, key);
            return ufail(u, "unknown key in a decision (expected name, choices, default)");
        }
    }
    const json_t *name = json_object_get(dj, "name");
    const json_t *choices = json_object_get(dj, "choices");
    push_key(u, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) > 60 || strpbrk(json_string_value(name), ",=$ ") != NULL) {
        return ufail(u, "a decision needs a name of 1..60 characters without ',', '=', '$', ' '");
    }
    if (find_decision(u->s, json_string_value(name)) >= 0) {
        return ufail(u, "decision %s is defined twice", json_string_value(name));
    }
    u->depth--;
    push_key(u, "choices");
    const size_t n = json_array_size(choices);
    if (!json_is_array(choices) || n == 0 || n > 256) {
        return ufail(u, "expected a list of 1..256 choices");
    }
    char names[256][64];
    const char *ptrs[256];
    for (size_t c = 0; c < n; c++) {
        const json_t *cj = json_array_get(choices, c);
        push_index(u, c);
        nas_status st = choice_name(u, json_is_array(cj) && json_array_size(cj) > 0
                                           ? json_array_get(cj, 0) : cj,
                                    names[c], sizeof names[c]);
        if (st == NAS_OK && (json_is_object(cj) || json_is_array(cj))) {
            st = check_layer(u, cj, 0);
        }
        u->depth--;
        if (st != NAS_OK) {
            return st;
        }
        for (size_t k = 0; k < c; k++) {
            if (strcmp(names[k], names[c]) == 0) {
                push_index(u, c);
                return ufail(u, "two choices are named '%s'", names[c]);
            }
        }
        ptrs[c] = names[c];
    }
    u->depth--;
    int def = 0;
    const json_t *dv = json_object_get(dj, "default");
    if (dv != NULL) {
        def = -1;
        for (size_t c = 0; c < n; c++) {
            const json_t *cj = json_array_get(choices, c);
            if (json_equal((json_t *)dv, (json_t *)cj) ||
                (json_is_string(dv) && strcmp(json_string_value(dv), names[c]) == 0) ||
                (json_is_number(dv) && json_is_number(cj) &&
                 json_number_value(dv) == json_number_value(cj))) {
                def = (int)c;
                break;
            }
        }
        if (def < 0) {
            push_key(u, "default");
            return ufail(u, "the default is not one of the choices");
        }
    }
    user_impl *impl = u->s->impl;
    impl->choices[u->s->n_dec] = (json_t *)choices;
    return nas_spaces_add_decision(u->s, json_string_value(name), (int)n, ptrs, def);
}

static nas_status open_top(ucheck *u, json_t *root) {
    user_impl *impl = u->s->impl;
    if (!json_is_object(root)) {
        return ufail(u, "a space file is a JSON object");
    }
    const char *key;
    json_t *v;
    static const char *const keys[] = {"name", "description", "input", "classes", "dropout",
                                       "decisions", "network"};
    json_object_foreach(root, key, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            known |= strcmp(key, keys[i]) == 0;
        }
        if (!known) {
            push_key(u, key);
            return ufail(u, "unknown key (expected name, description, input, classes, dropout, "
                            "decisions, network)");
        }
    }
    impl->in_c = 3;
    impl->in_h = impl->in_w = 32;
    impl->classes = 10;
    const json_t *in = json_object_get(root, "input");
    if (in != NULL) {
        push_key(u, "input");
        for (size_t i = 0; i < 3; i++) {
            const json_t *x = json_array_get(in, i);
            if (json_array_size(in) != 3 || !json_is_integer(x) || json_integer_value(x) < 1 ||
                json_integer_value(x) > 4096) {
                return ufail(u, "expected [C, H, W] with integers 1..4096");
            }
        }
        impl->in_c = (int)json_integer_value(json_array_get(in, 0));
        impl->in_h = (int)json_integer_value(json_array_get(in, 1));
        impl->in_w = (int)json_integer_value(json_array_get(in, 2));
        u->depth--;
    }
    const json_t *cl = json_object_get(root, "classes");
    if (cl != NULL) {
        push_key(u, "classes");
        if (!json_is_integer(cl) || json_integer_value(cl) < 1 ||
            json_integer_value(cl) > 1000000) {
            return ufail(u, "expected an integer 1..1000000");
        }
        impl->classes = (int)json_integer_value(cl);
        u->depth--;
    }
    const json_t *dr = json_object_get(root, "dropout");
    if (dr != NULL) {
        push_key(u, "dropout");
        if (!json_is_number(dr) || !(json_number_value(dr) >= 0.0 && json_number_value(dr) < 1.0)) {
            return ufail(u, "expected a number in [0, 1)");
        }
        impl->dropout = (float)json_number_value(dr);
        u->depth--;
    }
    const json_t *nm = json_object_get(root, "name");
    if (nm != NULL && !json_is_string(nm)) {
        push_key(u, "name");
        return ufail(u, "expected a string");
    }
    const json_t *decs = json_object_get(root, "decisions");
    push_key(u, "decisions");
    if (!json_is_array(decs)) {
        return ufail(u, "expected a list of decisions");
    }
    for (size_t i = 0; i < json_array_size(decs); i++) {
        push_index(u, i);
        nas_status st = open_decision(u, json_array_get(decs, i));
        if (st != NAS_OK) {
            return st;
        }
        u->depth--;
    }
    u->depth--;
    const json_t *net = json_object_get(root, "network");
    push_key(u, "network");
    if (!json_is_array(net) || json_array_size(net) == 0) {
        return ufail(u, "expected a non-empty list of blocks");
    }
    nas_status st = check_layer(u, net, 1);
    u->depth--;
    return st;
}

/* ------------------------------------------------------------------------------ text */

static nas_status user_encode(const nas_space *s, const nas_arch *a, char *buf, size_t size) {
    size_t pos = 0;
    buf[0] = '\0';
    nas_status st = NAS_OK;
    for (int d = 0; d < s->n_dec && st == NAS_OK; d++) {
        st = nas_spaces_append(s->ctx, buf, size, &pos, "%s%s=%s", d ? "," : "", s->dec[d].name,
                               s->dec[d].choices[a->choice[d]]);
    }
    return st;
}

static nas_status user_decode(nas_ctx *ctx, const nas_space *s, const char *text, nas_arch *out) {
    size_t pos = 0;
    for (int d = 0; d < s->n_dec; d++) {
        out->choice[d] = -1;
    }
    while (text[pos] != '\0') {
        const size_t kstart = pos;
        while (text[pos] != '\0' && text[pos] != '=' && text[pos] != ',') {
            pos++;
        }
        int d = -1;
        for (int i = 0; i < s->n_dec; i++) {
            if (strlen(s->dec[i].name) == pos - kstart &&
                memcmp(s->dec[i].name, text + kstart, pos - kstart) == 0) {
                d = i;
            }
        }
        if (d < 0 || text[pos] != '=') {
            return nas_fail(ctx, NAS_ERR_FORMAT, "%s arch, offset %zu: '%.*s' is not a decision "
                            "name followed by '='", s->name, kstart,
                            (int)((pos - kstart) > 40 ? 40 : pos - kstart), text + kstart);
        }
        if (out->choice[d] >= 0) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "%s arch, offset %zu: decision %s given twice",
                            s->name, kstart, s->dec[d].name);
        }
        const size_t vstart = ++pos;
        while (text[pos] != '\0' && text[pos] != ',') {
            pos++;
        }
        const int c = nas_spaces_find_choice(s, d, text + vstart, pos - vstart);
        if (c < 0) {
            char list[256];
            return nas_fail(ctx, NAS_ERR_FORMAT, "%s arch, offset %zu: '%.*s' is not a choice of "
                            "%s (%s)", s->name, vstart,
                            (int)((pos - vstart) > 40 ? 40 : pos - vstart), text + vstart,
                            s->dec[d].name, nas_spaces_choice_list(s, d, list, sizeof list));
        }
        out->choice[d] = c;
        if (text[pos] == ',') {
            pos++;
            if (text[pos] == '\0') {
                return nas_fail(ctx, NAS_ERR_FORMAT, "%s arch, offset %zu: text ends after ','",
                                s->name, pos);
            }
        }
    }
    for (int d = 0; d < s->n_dec; d++) {
        if (out->choice[d] < 0) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "%s arch, offset %zu: decision %s is missing",
                            s->name, pos, s->dec[d].name);
        }
    }
    return NAS_OK;
}

/* ------------------------------------------------------------------------------ network */

typedef struct ubuild {
    nas_snet *net;
    const nas_space *s;
    const nas_arch *a;
    const nas_build_opts *o;
    int counter; /* block number, for parameter names */
} ubuild;

/* Resolve "$d" to the chosen value. */
static const json_t *resolve(const ubuild *b, const json_t *v) {
    const int d = ref_of(b->s, v);
    if (d < 0) {
        return v;
    }
    const user_impl *impl = b->s->impl;
    return json_array_get(impl->choices[d], (size_t)b->a->choice[d]);
}

static double num(const ubuild *b, const json_t *blk, const char *key, double def) {
    const json_t *v = resolve(b, json_object_get(blk, key));
    return json_is_number(v) ? json_number_value(v) : def;
}

static int inum(const ubuild *b, const json_t *blk, const char *key, int def) {
    return (int)num(b, blk, key, def);
}

static nas_act act_of(const ubuild *b, const json_t *blk, const char *key, nas_act def) {
    const json_t *v = resolve(b, json_object_get(blk, key));
    return json_is_string(v) ? (nas_act)nas_nn_act_from_name(json_string_value(v)) : def;
}

static int width(const ubuild *b, int c) {
    const int w = (int)lround(c * b->o->channels_mult);
    return w < 1 ? 1 : w;
}

static int build_block(ubuild *b, const json_t *blk, int x, int stride_override) {
    nas_snet *net = b->net;
    char name[48], buf[200];
    snprintf(name, sizeof name, "layers.%d", b->counter++);
    const char *kind = json_string_value(json_object_get(blk, "block"));
    const int stride = stride_override > 0 ? stride_override : inum(b, blk, "stride", 1);
    if (net->status != NAS_OK) {
        return -1;
    }
    const int cin = net->nodes[x].c;
    if (strcmp(kind, "skip") == 0) {
        return x;
    }
    if (strcmp(kind, "conv") == 0) {
        const json_t *bn = json_object_get(blk, "bn"), *bias = json_object_get(blk, "bias");
        const int use_bn = bn == NULL || json_is_true(bn);
        const int k = inum(b, blk, "kernel", 3);
        int y = nas_snet_conv(net, x, width(b, inum(b, blk, "out", 0)), k, stride, -1, 1,
                              inum(b, blk, "groups", 1), json_is_true(bias),
                              nas_nn_name(buf, sizeof buf, name, "conv"));
        if (use_bn) {
            y = nas_snet_bn(net, y, 1, nas_nn_name(buf, sizeof buf, name, "bn"));
        }
        return nas_snet_act(net, y, act_of(b, blk, "act", NAS_ACT_RELU));
    }
    if (strcmp(kind, "dwsep") == 0) {
        const nas_act act = act_of(b, blk, "act", NAS_ACT_RELU);
        int y = nas_snet_conv_bn(net, x, cin, inum(b, blk, "kernel", 3), stride, cin, act,
                                 nas_nn_name(buf, sizeof buf, name, "dw"));
        return nas_snet_conv_bn(net, y, width(b, inum(b, blk, "out", 0)), 1, 1, 1, act,
                                nas_nn_name(buf, sizeof buf, name, "pw"));
    }
    if (strcmp(kind, "bottleneck") == 0 || strcmp(kind, "resnext") == 0) {
        const nas_act act = act_of(b, blk, "act", NAS_ACT_RELU);
        const int out = width(b, inum(b, blk, "out", 0)), mid = width(b, inum(b, blk, "mid", 0));
        const int groups = strcmp(kind, "resnext") == 0 ? inum(b, blk, "groups", 1) : 1;
        int y = nas_snet_conv_bn(net, x, mid, 1, 1, 1, act, nas_nn_name(buf, sizeof buf, name, "a"));
        y = nas_snet_conv_bn(net, y, mid, 3, stride, groups, act,
                             nas_nn_name(buf, sizeof buf, name, "b"));
        y = nas_snet_conv_bn(net, y, out, 1, 1, 1, NAS_ACT_NONE,
                             nas_nn_name(buf, sizeof buf, name, "c"));
        int sc = x;
        if (stride != 1 || cin != out) {
            sc = nas_snet_conv_bn(net, x, out, 1, stride, 1, NAS_ACT_NONE,
                                  nas_nn_name(buf, sizeof buf, name, "downsample"));
        }
        return nas_snet_act(net, nas_snet_add(net, y, sc), act);
    }
    if (strcmp(kind, "mbconv") == 0) {
        const nas_act act = act_of(b, blk, "act", NAS_ACT_RELU6);
        const double e = num(b, blk, "expand", 6.0), se = num(b, blk, "se", 0.0);
        const int out = width(b, inum(b, blk, "out", 0));
        const int mid = (int)lround(cin * e);
        int y = x;
        if (mid != cin) {
            y = nas_snet_conv_bn(net, y, mid, 1, 1, 1, act,
                                 nas_nn_name(buf, sizeof buf, name, "expand"));
        }
        y = nas_snet_conv_bn(net, y, mid, inum(b, blk, "kernel", 3), stride, mid, act,
                             nas_nn_name(buf, sizeof buf, name, "dw"));
        if (se > 0.0) {
            const int sw = (int)lround(mid * se);
            y = nas_snet_se(net, y, sw < 1 ? 1 : sw, NAS_ACT_SIGMOID,
                            nas_nn_name(buf, sizeof buf, name, "se"));
        }
        y = nas_snet_conv_bn(net, y, out, 1, 1, 1, NAS_ACT_NONE,
                             nas_nn_name(buf, sizeof buf, name, "project"));
        return stride == 1 && cin == out ? nas_snet_add(net, y, x) : y;
    }
    if (strcmp(kind, "shuffle") == 0) {
        const nas_act act = act_of(b, blk, "act", NAS_ACT_RELU);
        const int g = inum(b, blk, "groups", 1), out = width(b, inum(b, blk, "out", 0));
        const int branch = stride == 1 ? out : out - cin;
        if (g < 1) {
            net->status = nas_fail(net->ctx, NAS_ERR_SHAPE, "%s: shuffle unit with %d groups",
                                   name, g);
            return -1;
        }
        const int mid = out / 4 < g ? g : out / 4 / g * g;
        if (branch < 1 || (stride == 1 && cin != out)) {
            net->status = nas_fail(net->ctx, NAS_ERR_SHAPE, "%s: shuffle unit from %d to %d "
                                   "channels at stride %d (stride 1 keeps the width, stride 2 "
                                   "must widen)", name, cin, out, stride);
            return -1;
        }
        int y = nas_snet_conv_bn(net, x, mid, 1, 1, g, act, nas_nn_name(buf, sizeof buf, name, "g1"));
        y = nas_snet_shuffle(net, y, g);
        y = nas_snet_conv_bn(net, y, mid, 3, stride, mid, NAS_ACT_NONE,
                             nas_nn_name(buf, sizeof buf, name, "dw"));
        y = nas_snet_conv_bn(net, y, branch, 1, 1, g, NAS_ACT_NONE,
                             nas_nn_name(buf, sizeof buf, name, "g2"));
        if (stride == 1) {
            return nas_snet_act(net, nas_snet_add(net, y, x), act);
        }
        const int xs[2] = {nas_snet_avg_pool(net, x, 3, stride, 1, 1), y};
        return nas_snet_act(net, nas_snet_concat(net, 2, xs), act);
    }
    if (strcmp(kind, "se") == 0) {
        const int sw = (int)lround(cin * num(b, blk, "ratio", 0.25));
        return nas_snet_se(net, x, sw < 1 ? 1 : sw, act_of(b, blk, "gate", NAS_ACT_SIGMOID),
                           nas_nn_name(buf, sizeof buf, name, "se"));
    }
    if (strcmp(kind, "pool") == 0) {
        const int k = inum(b, blk, "kernel", 3);
        const int s = stride_override > 0 ? stride_override : inum(b, blk, "stride", 2);
        const json_t *type = resolve(b, json_object_get(blk, "type"));
        return strcmp(json_string_value(type), "max") == 0
                   ? nas_snet_max_pool(net, x, k, s, (k - 1) / 2)
                   : nas_snet_avg_pool(net, x, k, s, (k - 1) / 2, 0);
    }
    if (strcmp(kind, "attention") == 0) {
        return nas_snet_attention(net, x, inum(b, blk, "heads", 1),
                                  nas_nn_name(buf, sizeof buf, name, "attn"));
    }
    net->status = nas_fail(net->ctx, NAS_ERR_UNSUPPORTED, "%s: block \"%s\" has no builder", name,
                           kind);
    return -1;
}

static int build_layer(ubuild *b, const json_t *v, int x) {
    v = resolve(b, v);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && x >= 0; i++) {
            x = build_layer(b, json_array_get(v, i), x);
        }
        return x;
    }
    if (!json_is_object(v)) {
        return x; /* null: no block */
    }
    const int repeat = inum(b, v, "repeat", 1);
    for (int r = 0; r < repeat && x >= 0; r++) {
        x = build_block(b, v, x, r > 0 ? 1 : 0);
    }
    return x;
}

static void user_describe(const nas_space *s, const nas_arch *a, const nas_build_opts *o,
                        nas_snet *net, nas_model_shape *shape_out) {
    const user_impl *impl = s->impl;
    nas_model_shape shape = o->shape;
    shape.in_c = shape.in_c ? shape.in_c : impl->in_c;
    shape.in_h = shape.in_h ? shape.in_h : impl->in_h;
    shape.in_w = shape.in_w ? shape.in_w : (o->shape.in_h ? shape.in_h : impl->in_w);
    shape.classes = shape.classes ? shape.classes : impl->classes;
    ubuild b = {.net = net, .s = s, .a = a, .o = o};
    int x = nas_snet_input(net, shape.in_c, shape.in_h, shape.in_w);
    x = build_layer(&b, json_object_get(impl->root, "network"), x);
    x = nas_snet_gap(net, x);
    x = nas_snet_flatten(net, x);
    x = nas_snet_dropout(net, x, impl->dropout);
    x = nas_snet_linear(net, x, shape.classes, "classifier");
    *shape_out = shape;
}

static void user_free(nas_ctx *ctx, void *p) {
    user_impl *impl = p;
    if (impl == NULL) {
        return;
    }
    json_decref(impl->root);
    nas_free(ctx, impl, sizeof(user_impl));
}

static const nas_space_vt user_vt = {
    .kind = "json",
    .encode = user_encode,
    .decode = user_decode,
    .describe = user_describe,
    .free_impl = user_free,
};

/* Read a whole file (NUL-terminated) through the context's allocator. */
static nas_status read_file(nas_ctx *ctx, const char *path, char **out, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot open the space file", path);
    }
    size_t cap = 4096, n = 0;
    char *buf = nas_malloc(ctx, cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1 || cap > ((size_t)64 << 20)) {
            break;
        }
        char *nb = nas_realloc(ctx, buf, cap, cap * 2);
        if (nb == NULL) {
            nas_free(ctx, buf, cap);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    const int err = ferror(f);
    fclose(f);
    if (buf == NULL) {
        return NAS_ERR_NOMEM;
    }
    if (err) {
        nas_free(ctx, buf, cap);
        return nas_fail(ctx, NAS_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *size = cap;
    return NAS_OK;
}

nas_status nas_spaces_open_json_text(nas_space *s, const char *text, const char *file) {
    s->vt = &user_vt;
    user_impl *impl = nas_calloc(s->ctx, 1, sizeof(user_impl));
    if (impl == NULL) {
        return NAS_ERR_NOMEM;
    }
    s->impl = impl;
    json_error_t err;
    impl->root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (impl->root == NULL) {
        return nas_fail(s->ctx, NAS_ERR_FORMAT, "%s:%d:%d: %s", file, err.line, err.column,
                        err.text);
    }
    ucheck u = {.s = s, .text = text, .file = file};
    nas_status st = open_top(&u, impl->root);
    if (st == NAS_OK && s->n_dec == 0) {
        st = nas_fail(s->ctx, NAS_ERR_FORMAT, "%s: the space has no decisions", file);
    }
    return st;
}

nas_status nas_spaces_open_json(nas_space *s, const char *path) {
    char *text = NULL;
    size_t cap = 0;
    nas_status st = read_file(s->ctx, path, &text, &cap);
    if (st != NAS_OK) {
        return st;
    }
    st = nas_spaces_open_json_text(s, text, path);
    nas_free(s->ctx, text, cap);
    return st;
}
