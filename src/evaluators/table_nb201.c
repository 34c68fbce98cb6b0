/* table_nb201.c - the NAS-Bench-201 table (15,625 cells x the published columns of
 * data/nasbench201/nb201_accuracy.csv) and the `table:DATASET[:EPOCHS]` evaluator on it.
 *
 * The table is read from the CSV once at build time (tools/nb201_convert) and saved as a compact
 * binary file, loaded in about a millisecond:
 *   offset 0   "NASNB201"            magic (8 bytes)
 *          8   u32 version (1), u32 rows (15625), u32 columns C, u32 0
 *         24   C names, 48 bytes each, NUL padded
 *              rows x 6 bytes: the cell's NB201 op codes by official index
 *              C x rows float32: the columns (NAN where the source is empty)
 *        end-4 u32 FNV-1a hash of every byte before it
 * All integers and floats little-endian (the only byte order we build on; checked at load). */
#include "evaluators_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#define ROWS NAS_NB201_CELLS
#define MAX_COLS 32
#define NAME_LEN 48
#define HEADER_BYTES 24

const char *const nas_nb201_op_names[5] = {"none", "skip_connect", "nor_conv_1x1",
                                           "nor_conv_3x3", "avg_pool_3x3"};

struct nas_nb201_table {
    nas_ctx *ctx;
    int n_cols;
    char names[MAX_COLS][NAME_LEN];
    float *cols[MAX_COLS];          /* ROWS floats each */
    uint8_t ops[ROWS][6];           /* by official index */
    int16_t index_of_code[ROWS];    /* code = sum ops[e] * 5^e -> official index */
};

static int64_t ops_code(const int ops[6]) {
    int64_t code = 0;
    for (int e = 5; e >= 0; e--) {
        code = code * 5 + ops[e];
    }
    return code;
}

static nas_status table_alloc(nas_ctx *ctx, nas_nb201_table **out) {
    nas_nb201_table *t = nas_calloc(ctx, 1, sizeof(*t));
    if (t == NULL) {
        return NAS_ERR_NOMEM;
    }
    t->ctx = ctx;
    *out = t;
    return NAS_OK;
}

void nas_nb201_table_free(nas_nb201_table *t) {
    if (t == NULL) {
        return;
    }
    for (int c = 0; c < t->n_cols; c++) {
        nas_free(t->ctx, t->cols[c], ROWS * sizeof(float));
    }
    nas_free(t->ctx, t, sizeof(*t));
}

/* Fill index_of_code; every code must occur exactly once. */
static nas_status table_finish(nas_nb201_table *t, const char *path) {
    for (int64_t i = 0; i < ROWS; i++) {
        t->index_of_code[i] = -1;
    }
    for (int64_t i = 0; i < ROWS; i++) {
        int ops[6];
        nas_nb201_table_ops(t, i, ops);
        const int64_t code = ops_code(ops);
        if (t->index_of_code[code] >= 0) {
            return nas_fail(t->ctx, NAS_ERR_FORMAT, "%s: cells %lld and %d have the same ops",
                            path, (long long)i, t->index_of_code[code]);
        }
        t->index_of_code[code] = (int16_t)i;
    }
    return NAS_OK;
}

/* ------------------------------------------------------------------ CSV */

/* Split one CSV line (no quoting in this file) in place; returns the number of fields. */
static int split_fields(char *line, char **fields, int max) {
    int n = 0;
    for (char *p = line;;) {
        if (n < max) {
            fields[n] = p;
        }
        n++;
        char *c = strchr(p, ',');
        if (c == NULL) {
            break;
        }
        *c = '\0';
        p = c + 1;
    }
    return n;
}

/* Parse "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" into NB201 op codes. */
static int parse_arch_str(const char *s, int ops[6]) {
    static const int expect_src[6] = {0, 0, 1, 0, 1, 2};
    int e = 0;
    for (const char *p = s; *p != '\0' && e <= 6;) {
        if (*p == '|' || *p == '+') {
            p++;
            continue;
        }
        int found = -1;
        for (int o = 0; o < 5; o++) {
            const size_t len = strlen(nas_nb201_op_names[o]);
            if (strncmp(p, nas_nb201_op_names[o], len) == 0 && p[len] == '~') {
                found = o;
                p += len + 1;
                break;
            }
        }
        if (found < 0 || e >= 6 || *p - '0' != expect_src[e]) {
            return -1;
        }
        ops[e++] = found;
        p++;
    }
    return e == 6 ? 0 : -1;
}

static nas_status load_csv(nas_ctx *ctx, const char *path, nas_nb201_table **out) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    nas_nb201_table *t = NULL;
    nas_status st = table_alloc(ctx, &t);
    char line[8192];
    char *fields[64];
    int col_of_field[64], op_field[6] = {-1, -1, -1, -1, -1, -1};
    int idx_field = -1, arch_field = -1, n_fields = 0;
    if (st == NAS_OK && fgets(line, sizeof(line), f) == NULL) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: empty file", path);
    }
    if (st == NAS_OK) {
        line[strcspn(line, "\r\n")] = '\0';
        n_fields = split_fields(line, fields, 64);
        if (n_fields > 64) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: %d columns (at most 64)", path, n_fields);
        }
    }
    for (int i = 0; st == NAS_OK && i < n_fields; i++) {
        col_of_field[i] = -1;
        if (strcmp(fields[i], "index") == 0) {
            idx_field = i;
        } else if (strcmp(fields[i], "arch_str") == 0) {
            arch_field = i;
        } else if (strncmp(fields[i], "op", 2) == 0 && fields[i][2] >= '0' &&
                   fields[i][2] <= '5' && fields[i][3] == '\0') {
            op_field[fields[i][2] - '0'] = i;
        } else if (t->n_cols >= MAX_COLS || strlen(fields[i]) >= NAME_LEN) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: column '%s': too many or too long", path,
                          fields[i]);
        } else {
            strcpy(t->names[t->n_cols], fields[i]);
            t->cols[t->n_cols] = nas_malloc(ctx, ROWS * sizeof(float));
            if (t->cols[t->n_cols] == NULL) {
                st = NAS_ERR_NOMEM;
            }
            col_of_field[i] = t->n_cols++;
        }
    }
    if (st == NAS_OK && (idx_field < 0 || arch_field < 0)) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: header lacks the 'index' or 'arch_str' column",
                      path);
    }
    int64_t rows = 0;
    for (int lineno = 2; st == NAS_OK && fgets(line, sizeof(line), f) != NULL; lineno++) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') {
            continue;
        }
        if (split_fields(line, fields, 64) != n_fields) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: %d fields expected", path, lineno, n_fields);
            break;
        }
        char *end = NULL;
        const long idx = strtol(fields[idx_field], &end, 10);
        int ops[6];
        if (*end != '\0' || idx != rows || rows >= ROWS) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: index '%s', expected %lld", path, lineno,
                          fields[idx_field], (long long)rows);
            break;
        }
        if (parse_arch_str(fields[arch_field], ops) != 0) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: bad arch_str '%s'", path, lineno,
                          fields[arch_field]);
            break;
        }
        for (int e = 0; e < 6; e++) {
            if (op_field[e] >= 0 && atoi(fields[op_field[e]]) != ops[e]) {
                st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: op%d disagrees with arch_str", path,
                              lineno, e);
            }
            t->ops[rows][e] = (uint8_t)ops[e];
        }
        for (int i = 0; st == NAS_OK && i < n_fields; i++) {
            if (col_of_field[i] < 0) {
                continue;
            }
            float v = NAN;
            if (fields[i][0] != '\0') {
                v = strtof(fields[i], &end);
                if (*end != '\0') {
                    st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%d: column %s: '%s' is not a number",
                                  path, lineno, t->names[col_of_field[i]], fields[i]);
                }
            }
            t->cols[col_of_field[i]][rows] = v;
        }
        rows++;
    }
    fclose(f);
    if (st == NAS_OK && rows != ROWS) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: %lld rows, expected %d", path, (long long)rows,
                      ROWS);
    }
    if (st == NAS_OK) {
        st = table_finish(t, path);
    }
    if (st != NAS_OK) {
        nas_nb201_table_free(t);
        return st;
    }
    *out = t;
    return NAS_OK;
}

/* ------------------------------------------------------------------ binary */

static uint32_t fnv1a(uint32_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static void put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}

static uint32_t get_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static size_t binary_size(int n_cols) {
    return HEADER_BYTES + (size_t)n_cols * NAME_LEN + (size_t)ROWS * 6 +
           (size_t)n_cols * ROWS * sizeof(float) + 4;
}

nas_status nas_nb201_table_save(nas_ctx *ctx, const nas_nb201_table *t, const char *path) {
    NAS_CHECK_ARG(ctx, t != NULL && path != NULL);
    const size_t size = binary_size(t->n_cols);
    uint8_t *buf = nas_calloc(ctx, 1, size);
    if (buf == NULL) {
        return NAS_ERR_NOMEM;
    }
    memcpy(buf, "NASNB201", 8);
    put_u32(buf + 8, 1);
    put_u32(buf + 12, ROWS);
    put_u32(buf + 16, (uint32_t)t->n_cols);
    size_t off = HEADER_BYTES;
    for (int c = 0; c < t->n_cols; c++, off += NAME_LEN) {
        memcpy(buf + off, t->names[c], NAME_LEN);
    }
    memcpy(buf + off, t->ops, sizeof(t->ops));
    off += sizeof(t->ops);
    for (int c = 0; c < t->n_cols; c++, off += ROWS * sizeof(float)) {
        memcpy(buf + off, t->cols[c], ROWS * sizeof(float));
    }
    put_u32(buf + off, fnv1a(2166136261u, buf, off));
    /* Write to a temporary name, then rename: a reader never sees half a table. */
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    nas_status st = NAS_OK;
    if (f == NULL) {
        st = nas_fail(ctx, NAS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        const int bad = fwrite(buf, 1, size, f) != size;
        if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
            st = nas_fail(ctx, NAS_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    nas_free(ctx, buf, size);
    return st;
}

static nas_status load_binary(nas_ctx *ctx, const char *path, nas_nb201_table **out) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    uint8_t head[HEADER_BYTES];
    if (fread(head, 1, HEADER_BYTES, f) != HEADER_BYTES || memcmp(head, "NASNB201", 8) != 0) {
        fclose(f);
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s: not an NB201 table (bad magic at offset 0)",
                        path);
    }
    const uint32_t version = get_u32(head + 8), rows = get_u32(head + 12),
                   n_cols = get_u32(head + 16);
    if (version != 1 || rows != ROWS || n_cols == 0 || n_cols > MAX_COLS) {
        fclose(f);
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s: unsupported header (version %u, %u rows, %u "
                        "columns) at offset 8", path, version, rows, n_cols);
    }
    const size_t size = binary_size((int)n_cols);
    uint8_t *buf = nas_malloc(ctx, size);
    if (buf == NULL) {
        fclose(f);
        return NAS_ERR_NOMEM;
    }
    memcpy(buf, head, HEADER_BYTES);
    const size_t got = fread(buf + HEADER_BYTES, 1, size - HEADER_BYTES, f) + HEADER_BYTES;
    const int extra = fgetc(f) != EOF;
    fclose(f);
    nas_nb201_table *t = NULL;
    nas_status st = NAS_OK;
    if (got != size || extra) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: %s at offset %zu (expected %zu bytes)", path,
                      extra ? "trailing bytes" : "truncated", got, size);
    } else if (fnv1a(2166136261u, buf, size - 4) != get_u32(buf + size - 4)) {
        st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: checksum mismatch at offset %zu", path, size - 4);
    }
    if (st == NAS_OK) {
        st = table_alloc(ctx, &t);
    }
    if (st == NAS_OK) {
        size_t off = HEADER_BYTES;
        for (uint32_t c = 0; c < n_cols; c++, off += NAME_LEN) {
            memcpy(t->names[c], buf + off, NAME_LEN);
            t->names[c][NAME_LEN - 1] = '\0';
        }
        memcpy(t->ops, buf + off, sizeof(t->ops));
        off += sizeof(t->ops);
        for (uint32_t c = 0; c < n_cols && st == NAS_OK; c++, off += ROWS * sizeof(float)) {
            t->cols[c] = nas_malloc(ctx, ROWS * sizeof(float));
            if (t->cols[c] == NULL) {
                st = NAS_ERR_NOMEM;
                break;
            }
            t->n_cols++;
            memcpy(t->cols[c], buf + off, ROWS * sizeof(float));
        }
        for (int64_t i = 0; i < ROWS && st == NAS_OK; i++) {
            for (int e = 0; e < 6; e++) {
                if (t->ops[i][e] > 4) {
                    st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: op code %d of cell %lld", path,
                                  t->ops[i][e], (long long)i);
                    break;
                }
            }
        }
        if (st == NAS_OK) {
            st = table_finish(t, path);
        }
    }
    nas_free(ctx, buf, size);
    if (st != NAS_OK) {
        nas_nb201_table_free(t);
        return st;
    }
    *out = t;
    return NAS_OK;
}

/* ------------------------------------------------------------------ lookup of the default file */

static int readable(const char *path) {
    return access(path, R_OK) == 0;
}

/* The first existing of the binary table and the CSV, relative to the working directory, then
 * to the program's directory (bin/, build/<variant>/bin/, build/<variant>/tests/). */
static int default_path(char *out, size_t size) {
    static const char *const rel[] = {
        "build/data/nb201.bin",          "data/nasbench201/nb201_accuracy.csv",
        "../build/data/nb201.bin",       "../../data/nb201.bin",
        "../data/nasbench201/nb201_accuracy.csv", "../../../data/nasbench201/nb201_accuracy.csv",
    };
    const char *env = getenv("NAS_NB201_TABLE");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, size, "%s", env);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        if (readable(rel[i])) {
            snprintf(out, size, "%s", rel[i]);
            return 1;
        }
    }
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return 0;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL) {
        return 0;
    }
    *slash = '\0';
    for (int i = 2; i < (int)(sizeof(rel) / sizeof(rel[0])); i++) {
        snprintf(out, size, "%s/%s", exe, rel[i]);
        if (readable(out)) {
            return 1;
        }
    }
    return 0;
}

nas_status nas_nb201_table_load(nas_ctx *ctx, const char *path, nas_nb201_table **out) {
    NAS_CHECK_ARG(ctx, out != NULL);
    *out = NULL;
    char found[4200];
    if (path == NULL) {
        if (!default_path(found, sizeof(found))) {
            return nas_fail(ctx, NAS_ERR_IO, "NB201 table not found: run `make` (builds "
                            "build/data/nb201.bin) or set NAS_NB201_TABLE to the table or to "
                            "data/nasbench201/nb201_accuracy.csv");
        }
        path = found;
    }
    const size_t len = strlen(path);
    if (len >= 4 && strcmp(path + len - 4, ".csv") == 0) {
        return load_csv(ctx, path, out);
    }
    return load_binary(ctx, path, out);
}

int nas_nb201_table_n_columns(const nas_nb201_table *t) {
    return t->n_cols;
}

const char *nas_nb201_table_column_name(const nas_nb201_table *t, int column) {
    return column >= 0 && column < t->n_cols ? t->names[column] : NULL;
}

int nas_nb201_table_column(const nas_nb201_table *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++) {
        if (strcmp(t->names[c], name) == 0) {
            return c;
        }
    }
    return -1;
}

const float *nas_nb201_table_values(const nas_nb201_table *t, int column) {
    return column >= 0 && column < t->n_cols ? t->cols[column] : NULL;
}

int64_t nas_nb201_table_index(const nas_nb201_table *t, const int ops[6]) {
    for (int e = 0; e < 6; e++) {
        if (ops[e] < 0 || ops[e] > 4) {
            return -1;
        }
    }
    return t->index_of_code[ops_code(ops)];
}

void nas_nb201_table_ops(const nas_nb201_table *t, int64_t index, int ops[6]) {
    for (int e = 0; e < 6; e++) {
        ops[e] = t->ops[index][e];
    }
}

/* ------------------------------------------------------------------ the evaluator */

/* Reward and test of one cell, stored by op code: one small fetch per lookup (the benchmark
 * loop is bound by this load; 8 bytes a cell keep the array at 125 KB). */
typedef struct cell_values {
    float reward, test;
} cell_values;

typedef struct table_eval {
    nas_nb201_table *table;
    cell_values *by_code; /* NAS_NB201_CELLS entries */
    float *params_by_code;
    const float *reward, *test, *params;
    int edge_of[6];       /* decision -> NB201 edge */
    int op_of[6][8];      /* decision, choice -> NB201 op code */
    int n_choices[6];
    int pow5[6];          /* 5^edge_of[d]: the decision's weight in the op code */
} table_eval;

/* Which columns a dataset and epoch count reward and record. The reported test accuracy is
 * always the 200-epoch one (the NB201 protocol: search on a cheap signal, report the final). */
static nas_status pick_columns(nas_evaluator *e, table_eval *te, const char *args) {
    char dataset[64] = "";
    int epochs = 200;
    const char *colon = strchr(args, ':');
    const size_t dlen = colon != NULL ? (size_t)(colon - args) : strlen(args);
    if (dlen == 0 || dlen >= sizeof(dataset)) {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: expected table:DATASET[:EPOCHS] with "
                        "DATASET cifar10, cifar100 or imagenet16", e->spec);
    }
    memcpy(dataset, args, dlen);
    if (colon != NULL) {
        char *end = NULL;
        epochs = (int)strtol(colon + 1, &end, 10);
        if (*end != '\0' || (epochs != 200 && epochs != 12)) {
            return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: EPOCHS must be 200 or 12 (the "
                            "table has those two schedules)", e->spec);
        }
    }
    const char *reward = NULL, *test = NULL;
    if (strcmp(dataset, "cifar10") == 0) {
        reward = epochs == 200 ? "cifar10valid_val_200ep_nwotsrc" : "cifar10valid_val_12ep";
        test = "cifar10_test_200ep";
    } else if (strcmp(dataset, "cifar100") == 0) {
        reward = epochs == 200 ? "sz_cifar100_val_200ep" : "cifar100_val_12ep";
        test = "cifar100_test_200ep";
    } else if (strcmp(dataset, "imagenet16") == 0 || strcmp(dataset, "ImageNet16-120") == 0) {
        reward = epochs == 200 ? "sz_imagenet16_val_200ep" : "imagenet16_val_12ep";
        test = "imagenet16_test_200ep";
    } else {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: unknown dataset '%s' (cifar10, "
                        "cifar100, imagenet16)", e->spec, dataset);
    }
    const int rc = nas_nb201_table_column(te->table, reward);
    const int tc = nas_nb201_table_column(te->table, test);
    const int pc = nas_nb201_table_column(te->table, "params_mb_cifar10");
    if (rc < 0 || tc < 0) {
        return nas_fail(e->ctx, NAS_ERR_FORMAT, "evaluator %s: the table has no column '%s'",
                        e->spec, rc < 0 ? reward : test);
    }
    te->reward = te->table->cols[rc];
    te->test = te->table->cols[tc];
    te->params = pc >= 0 ? te->table->cols[pc] : NULL;
    return NAS_OK;
}

/* Map the space's decisions to NB201 edges and ops through its canonical text: the space must be
 * NB201's (6 decisions whose choices are NB201 op names), in whatever order it lists them. */
static nas_status map_space(nas_evaluator *e, table_eval *te) {
    const nas_space *s = e->space;
    if (nas_space_n_decisions(s) != 6) {
        return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: space %s has %d decisions; the NB201 "
                        "table needs the nb201 space (6 edges)", e->spec, nas_space_name(s),
                        nas_space_n_decisions(s));
    }
    for (int d = 0; d < 6; d++) {
        const int k = nas_space_n_choices(s, d);
        int none_choice = -1;
        te->n_choices[d] = k;
        if (k > 8) {
            return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: decision %d of space %s has %d "
                            "choices", e->spec, d, nas_space_name(s), k);
        }
        for (int c = 0; c < k; c++) {
            te->op_of[d][c] = -1;
            for (int o = 0; o < 5; o++) {
                if (strcmp(nas_space_choice_name(s, d, c), nas_nb201_op_names[o]) == 0) {
                    te->op_of[d][c] = o;
                }
            }
            if (te->op_of[d][c] < 0) {
                return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: choice '%s' of decision %d "
                                "is not an NB201 op", e->spec, nas_space_choice_name(s, d, c), d);
            }
            none_choice = te->op_of[d][c] == 0 ? c : none_choice;
        }
        te->edge_of[d] = d;
        if (none_choice < 0) {
            continue; /* cannot probe without 'none'; keep the NB201 order */
        }
        /* Probe: every decision 'none' but d set to a real op; the text says which edge. */
        int probe_choice = none_choice == 0 ? 1 : 0;
        nas_arch a = {.n = 6};
        for (int d2 = 0; d2 < 6; d2++) {
            for (int c = 0; c < nas_space_n_choices(s, d2); c++) {
                a.choice[d2] = te->op_of[d2][c] == 0 ? c : a.choice[d2];
            }
        }
        a.choice[d] = probe_choice;
        char text[NAS_ARCH_TEXT_MAX];
        int ops[6];
        if (nas_space_encode(s, &a, text, sizeof(text)) != NAS_OK ||
            parse_arch_str(text, ops) != 0) {
            return nas_fail(e->ctx, NAS_ERR_ARG, "evaluator %s: space %s does not write NB201 "
                            "cell strings", e->spec, nas_space_name(s));
        }
        for (int edge = 0; edge < 6; edge++) {
            if (ops[edge] == te->op_of[d][probe_choice]) {
                te->edge_of[d] = edge;
            }
        }
    }
    for (int d = 0; d < 6; d++) {
        te->pow5[d] = 1;
        for (int k = 0; k < te->edge_of[d]; k++) {
            te->pow5[d] *= 5;
        }
    }
    return NAS_OK;
}

static nas_status table_open(nas_evaluator *e, const char *args, const nas_eval_opts *opts) {
    table_eval *te = nas_calloc(e->ctx, 1, sizeof(*te));
    if (te == NULL) {
        return NAS_ERR_NOMEM;
    }
    e->impl = te;
    nas_status st = nas_nb201_table_load(e->ctx, opts != NULL ? opts->data_path : NULL,
                                         &te->table);
    if (st == NAS_OK) {
        st = pick_columns(e, te, args);
    }
    if (st == NAS_OK) {
        st = map_space(e, te);
    }
    if (st == NAS_OK) {
        te->by_code = nas_malloc(e->ctx, ROWS * sizeof(cell_values));
        te->params_by_code = nas_malloc(e->ctx, ROWS * sizeof(float));
        st = te->by_code != NULL && te->params_by_code != NULL ? NAS_OK : NAS_ERR_NOMEM;
    }
    for (int64_t code = 0; st == NAS_OK && code < ROWS; code++) {
        const int64_t i = te->table->index_of_code[code];
        te->by_code[code] = (cell_values){te->reward[i], te->test[i]};
        te->params_by_code[code] = te->params != NULL ? te->params[i] : NAN;
    }
    return st;
}

static nas_status table_eval_arch(nas_evaluator *e, nas_ctx *ctx, const nas_arch *a,
                                  nas_eval_result *out) {
    const table_eval *te = e->impl;
    int64_t code = 0;
    for (int d = 0; d < 6; d++) {
        const int c = a->choice[d];
        if (c < 0 || c >= te->n_choices[d]) {
            return nas_fail(ctx, NAS_ERR_ARG, "evaluator %s: choice %d of decision %d out of "
                            "range", e->spec, c, d);
        }
        code += te->pow5[d] * te->op_of[d][c];
    }
    const cell_values v = te->by_code[code];
    out->reward = v.reward;
    out->test = v.test;
    out->params = 1e6 * (double)te->params_by_code[code];
    out->cost_s = 0.0; /* the table has no training times */
    if (isnan(out->reward)) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "evaluator %s: cell %lld has no value", e->spec,
                        (long long)te->table->index_of_code[code]);
    }
    return NAS_OK;
}

static void table_free(nas_evaluator *e) {
    table_eval *te = e->impl;
    if (te != NULL) {
        nas_free(e->ctx, te->by_code, ROWS * sizeof(cell_values));
        nas_free(e->ctx, te->params_by_code, ROWS * sizeof(float));
        nas_nb201_table_free(te->table);
        nas_free(e->ctx, te, sizeof(*te));
    }
}

const nas_evaluator_vt nas_evaluator_table_vt = {
    .kind = "table",
    .summary = "NAS-Bench-201 lookups: table:cifar10|cifar100|imagenet16[:200|12]",
    .open = table_open,
    .eval = table_eval_arch,
    .free = table_free,
};
