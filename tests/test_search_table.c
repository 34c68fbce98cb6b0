/* test_search_table.c - the NAS-Bench-201 table and the table: evaluator against the published
 * CSV read independently here (plain strtod): every value of the binary table made at build
 * time equals the CSV's (as float); looking up the nb201 space's decoding of each row's arch_str
 * gives that row's columns (reward = cifar10valid_val_200ep_nwotsrc, test = cifar10_test_200ep);
 * the NB201 landmarks (optimum index 6111: 94.373333 test, 91.606667 valid); bad specs and
 * corrupt table files give clear errors. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define CSV "data/nasbench201/nb201_accuracy.csv"
#define BIN "build/data/nb201.bin"
#define ROWS 15625

static char header[4096];
static char (*arch_strs)[128];
static double (*csv_vals)[32];
static char col_names[32][64];
static int n_cols; /* numeric columns, in CSV order */

/* Independent CSV reader: index, arch_str, op0..op5 skipped; every other column numeric. */
static int read_csv(void) {
    FILE *f = fopen(CSV, "r");
    if (f == NULL) {
        return 0;
    }
    char line[8192];
    if (fgets(header, sizeof(header), f) == NULL) {
        fclose(f);
        return 0;
    }
    header[strcspn(header, "\r\n")] = '\0';
    int kind[64], nf = 0;
    char tmp[4096];
    strcpy(tmp, header);
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "index") == 0) {
            kind[nf++] = -1;
        } else if (strcmp(tok, "arch_str") == 0) {
            kind[nf++] = -2;
        } else if (tok[0] == 'o' && tok[1] == 'p' && tok[3] == '\0') {
            kind[nf++] = -3;
        } else {
            snprintf(col_names[n_cols], 64, "%s", tok);
            kind[nf++] = n_cols++;
        }
    }
    int row = 0;
    while (fgets(line, sizeof(line), f) != NULL && row < ROWS) {
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line;
        for (int i = 0; i < nf; i++) {
            char *c = strchr(p, ',');
            if (c != NULL) {
                *c = '\0';
            }
            if (kind[i] == -2) {
                snprintf(arch_strs[row], 128, "%.127s", p);
            } else if (kind[i] >= 0) {
                csv_vals[row][kind[i]] = p[0] ? strtod(p, NULL) : NAN;
            }
            p = c != NULL ? c + 1 : p + strlen(p);
        }
        row++;
    }
    fclose(f);
    return row == ROWS;
}

static void check_table_equals_csv(const char *path) {
    nas_ctx *ctx = nas_ctx_new();
    nas_nb201_table *t = NULL;
    const double t0 = nas_now();
    CHECK(nas_nb201_table_load(ctx, path, &t) == NAS_OK, "%s: %s", path, nas_errmsg(ctx));
    printf("  loaded %s in %.2f ms\n", path, 1e3 * (nas_now() - t0));
    if (t == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    CHECK(nas_nb201_table_n_columns(t) == n_cols, "%d columns, CSV has %d",
          nas_nb201_table_n_columns(t), n_cols);
    int64_t bad = 0;
    for (int c = 0; c < n_cols; c++) {
        const int tc = nas_nb201_table_column(t, col_names[c]);
        CHECK(tc >= 0, "column %s missing", col_names[c]);
        if (tc < 0) {
            continue;
        }
        const float *v = nas_nb201_table_values(t, tc);
        for (int r = 0; r < ROWS; r++) {
            const float want = (float)csv_vals[r][c];
            bad += !(v[r] == want || (isnan(v[r]) && isnan(want)));
        }
    }
    CHECK(bad == 0, "%lld values differ from the CSV", (long long)bad);
    const int c10 = nas_nb201_table_column(t, "cifar10_test_200ep");
    const int v10 = nas_nb201_table_column(t, "cifar10valid_val_200ep_nwotsrc");
    if (c10 >= 0 && v10 >= 0) {
        const float *test = nas_nb201_table_values(t, c10), *val = nas_nb201_table_values(t, v10);
        int64_t best_t = 0, best_v = 0;
        for (int r = 1; r < ROWS; r++) {
            best_t = test[r] > test[best_t] ? r : best_t;
            best_v = val[r] > val[best_v] ? r : best_v;
        }
        CHECK(best_t == 6111 && fabs(test[best_t] - 94.373333) < 1e-4, "test optimum %lld %g",
              (long long)best_t, test[best_t]);
        CHECK(best_v == 6111 && fabs(val[best_v] - 91.606667) < 1e-4, "valid optimum %lld %g",
              (long long)best_v, val[best_v]);
    }
    int ops[6];
    nas_nb201_table_ops(t, 1835, ops);
    CHECK(ops[0] == 1 && ops[5] == 1 && nas_nb201_table_index(t, ops) == 1835,
          "all-skip cell is index 1835");
    nas_nb201_table_free(t);
    nas_ctx_free(ctx);
}

static void test_binary_and_csv(void) {
    check_table_equals_csv(CSV);
    if (access(BIN, R_OK) == 0) {
        check_table_equals_csv(BIN);
    } else {
        CHECK(0, "%s not built (make build makes it)", BIN);
    }
}

/* The evaluator through the nb201 space: decode each row's arch_str, evaluate, compare. */
static void test_evaluator(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_space *s = NULL;
    CHECK(nas_space_open(ctx, "nb201", &s) == NAS_OK, "nb201: %s", nas_errmsg(ctx));
    if (s == NULL) {
        nas_ctx_free(ctx);
        return;
    }
    static const struct {
        const char *spec, *reward, *test;
    } cases[] = {
        {"table:cifar10", "cifar10valid_val_200ep_nwotsrc", "cifar10_test_200ep"},
        {"table:cifar10:12", "cifar10valid_val_12ep", "cifar10_test_200ep"},
        {"table:cifar100", "sz_cifar100_val_200ep", "cifar100_test_200ep"},
        {"table:imagenet16", "sz_imagenet16_val_200ep", "imagenet16_test_200ep"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        nas_evaluator *e = NULL;
        CHECK(nas_evaluator_open(ctx, cases[k].spec, s, NULL, &e) == NAS_OK, "%s: %s",
              cases[k].spec, nas_errmsg(ctx));
        int rc = -1, tc = -1;
        for (int c = 0; c < n_cols; c++) {
            rc = strcmp(col_names[c], cases[k].reward) == 0 ? c : rc;
            tc = strcmp(col_names[c], cases[k].test) == 0 ? c : tc;
        }
        int64_t bad = 0;
        for (int r = 0; e != NULL && r < ROWS; r += 7) {
            nas_arch a;
            nas_eval_result res;
            if (nas_space_decode(ctx, s, arch_strs[r], &a) != NAS_OK ||
                nas_evaluator_eval(e, &a, &res) != NAS_OK) {
                bad++;
                continue;
            }
            bad += res.reward != (double)(float)csv_vals[r][rc] ||
                   res.test != (double)(float)csv_vals[r][tc];
        }
        CHECK(bad == 0, "%s: %lld rows differ", cases[k].spec, (long long)bad);
        nas_evaluator_free(e);
    }
    static const char *const bad_specs[] = {"table:cifar11", "table:cifar10:50", "table",
                                            "tabel:cifar10", "table:cifar10:x"};
    for (size_t k = 0; k < sizeof(bad_specs) / sizeof(bad_specs[0]); k++) {
        nas_evaluator *e = NULL;
        const nas_status st = nas_evaluator_open(ctx, bad_specs[k], s, NULL, &e);
        CHECK(st == NAS_ERR_ARG && e == NULL && nas_errmsg(ctx)[0] != '\0',
              "%s: status %s, message '%s'", bad_specs[k], nas_status_name(st), nas_errmsg(ctx));
    }
    /* The table needs NB201's space. */
    nas_space *darts = NULL;
    if (nas_space_open(ctx, "darts", &darts) == NAS_OK) {
        nas_evaluator *e = NULL;
        CHECK(nas_evaluator_open(ctx, "table:cifar10", darts, NULL, &e) == NAS_ERR_ARG,
              "table on darts accepted");
        nas_space_free(darts);
    }
    nas_space_free(s);
    nas_ctx_free(ctx);
}

static void test_corrupt_files(void) {
    nas_ctx *ctx = nas_ctx_new();
    char path[256];
    snprintf(path, sizeof(path), "/tmp/nas_test_nb201_%d.bin", (int)getpid());
    FILE *in = fopen(BIN, "rb");
    if (in == NULL) {
        CHECK(0, "%s not built", BIN);
        nas_ctx_free(ctx);
        return;
    }
    static unsigned char buf[2 << 20];
    const size_t n = fread(buf, 1, sizeof(buf), in);
    fclose(in);
    struct {
        size_t len;
        long flip;
        const char *expect;
    } cases[] = {{n / 2, -1, "truncated"}, {n, (long)(n / 3), "checksum"}, {n, 0, "magic"}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        FILE *f = fopen(path, "wb");
        if (cases[k].flip >= 0) {
            buf[cases[k].flip] ^= 0x5a;
        }
        fwrite(buf, 1, cases[k].len, f);
        fclose(f);
        if (cases[k].flip >= 0) {
            buf[cases[k].flip] ^= 0x5a;
        }
        nas_nb201_table *t = NULL;
        const nas_status st = nas_nb201_table_load(ctx, path, &t);
        CHECK(st == NAS_ERR_FORMAT && t == NULL && strstr(nas_errmsg(ctx), cases[k].expect) &&
                  strstr(nas_errmsg(ctx), "offset"),
              "case %zu: %s '%s'", k, nas_status_name(st), nas_errmsg(ctx));
        nas_nb201_table_free(t);
    }
    remove(path);
    nas_nb201_table *t = NULL;
    CHECK(nas_nb201_table_load(ctx, "/nonexistent/nb201.bin", &t) == NAS_ERR_IO, "missing file");
    nas_ctx_free(ctx);
}

int main(void) {
    arch_strs = calloc(ROWS, sizeof(*arch_strs));
    csv_vals = calloc(ROWS, sizeof(*csv_vals));
    if (!read_csv()) {
        printf("FAIL cannot read %s (run from the repository root)\n", CSV);
        return check_report("search_table") + 1;
    }
    RUN_TEST(test_binary_and_csv);
    RUN_TEST(test_evaluator);
    RUN_TEST(test_corrupt_files);
    free(arch_strs);
    free(csv_vals);
    return check_report("search_table");
}
