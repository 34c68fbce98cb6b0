/* device_table.c - reads a device-latency table (CSV with a header: an architecture column such
 * as arch_str, then one column per device setting, values in ms), e.g. data/nb201_latency/
 * nb201_latency_ms.csv from the HELP / HW-NAS-Bench authors. Errors name the file and line. */
#include "hardware_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct nas_device_table {
    nas_ctx *ctx;
    int64_t n, cap; /* rows used / allocated */
    char **arch;    /* n strings */
    double *ms;     /* n values of the chosen column */
};

void nas_device_table_free(nas_device_table *t) {
    if (t == NULL) {
        return;
    }
    for (int64_t i = 0; i < t->n; i++) {
        nas_free(t->ctx, t->arch[i], strlen(t->arch[i]) + 1);
    }
    nas_free(t->ctx, t->arch, (size_t)t->cap * sizeof(char *));
    nas_free(t->ctx, t->ms, (size_t)t->cap * sizeof(double));
    nas_free(t->ctx, t, sizeof(nas_device_table));
}

/* Index of `name` among the comma-separated fields of header line h; -1 if absent. */
static int column_of(char *h, const char *name) {
    int col = 0;
    for (char *save = NULL, *tok = strtok_r(h, ",\r\n", &save); tok != NULL;
         tok = strtok_r(NULL, ",\r\n", &save), col++) {
        if (strcmp(tok, name) == 0) {
            return col;
        }
    }
    return -1;
}

/* Field `col` of a CSV line without quotes (fields are split in place). */
static char *field(char *line, int col) {
    char *p = line;
    for (int c = 0; c < col; c++) {
        p = strchr(p, ',');
        if (p == NULL) {
            return NULL;
        }
        p++;
    }
    char *end = strpbrk(p, ",\r\n");
    if (end != NULL) {
        *end = '\0';
    }
    return p;
}

static nas_status add_row(nas_device_table *t, const char *arch, double ms) {
    if (t->n == t->cap) {
        /* both arrays always have t->cap slots, so the table frees them with that size */
        const int64_t c = t->cap == 0 ? 1024 : 2 * t->cap;
        char **a = nas_calloc(t->ctx, (size_t)c, sizeof(char *));
        double *m = nas_calloc(t->ctx, (size_t)c, sizeof(double));
        if (a == NULL || m == NULL) {
            nas_free(t->ctx, a, (size_t)c * sizeof(char *));
            nas_free(t->ctx, m, (size_t)c * sizeof(double));
            return NAS_ERR_NOMEM;
        }
        if (t->n > 0) {
            memcpy(a, t->arch, (size_t)t->n * sizeof(char *));
            memcpy(m, t->ms, (size_t)t->n * sizeof(double));
        }
        nas_free(t->ctx, t->arch, (size_t)t->cap * sizeof(char *));
        nas_free(t->ctx, t->ms, (size_t)t->cap * sizeof(double));
        t->arch = a;
        t->ms = m;
        t->cap = c;
    }
    t->arch[t->n] = nas_strdup(t->ctx, arch);
    if (t->arch[t->n] == NULL) {
        return NAS_ERR_NOMEM;
    }
    t->ms[t->n++] = ms;
    return NAS_OK;
}

#define LINE_MAX_BYTES 16384

/* Read one line into buf; NAS_ERR_FORMAT if it does not fit. Returns 0 at end of file. */
static int read_line(FILE *f, char *buf, size_t size, int *too_long) {
    if (fgets(buf, (int)size, f) == NULL) {
        return 0;
    }
    *too_long = strchr(buf, '\n') == NULL && !feof(f);
    return 1;
}

nas_status nas_device_table_load(nas_ctx *ctx, const char *path, const char *arch_column,
                                 const char *device_column, nas_device_table **out) {
    NAS_CHECK_ARG(ctx, path != NULL && arch_column != NULL && device_column != NULL && out != NULL);
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: %s", path, strerror(errno));
    }
    static _Thread_local char line[LINE_MAX_BYTES], copy[LINE_MAX_BYTES];
    nas_device_table *t = nas_calloc(ctx, 1, sizeof(nas_device_table));
    nas_status st = t == NULL ? NAS_ERR_NOMEM : NAS_OK;
    int arch_col = -1, dev_col = -1, too_long = 0;
    int64_t lineno = 1;
    if (st == NAS_OK) {
        t->ctx = ctx;
        if (!read_line(f, line, sizeof line, &too_long) || too_long) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:1: missing or overlong header", path);
        } else {
            memcpy(copy, line, sizeof line);
            arch_col = column_of(copy, arch_column);
            memcpy(copy, line, sizeof line);
            dev_col = column_of(copy, device_column);
            if (arch_col < 0 || dev_col < 0) {
                st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:1: no column \"%s\"", path,
                              arch_col < 0 ? arch_column : device_column);
            }
        }
    }
    while (st == NAS_OK && read_line(f, line, sizeof line, &too_long)) {
        lineno++;
        if (too_long) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%lld: line longer than %d bytes", path,
                          (long long)lineno, LINE_MAX_BYTES);
            break;
        }
        if (line[0] == '\n' || line[0] == '\0') {
            continue;
        }
        memcpy(copy, line, sizeof line);
        char *arch = field(copy, arch_col);
        char *val = field(line, dev_col);
        char *end = NULL;
        const double ms = val != NULL ? strtod(val, &end) : 0.0;
        if (arch == NULL || val == NULL || end == val || *end != '\0') {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s:%lld: missing or non-numeric \"%s\"", path,
                          (long long)lineno, device_column);
        } else {
            st = add_row(t, arch, ms);
        }
    }
    fclose(f);
    if (st != NAS_OK) {
        nas_device_table_free(t);
        return st;
    }
    *out = t;
    return NAS_OK;
}

int64_t nas_device_table_rows(const nas_device_table *t) {
    return t->n;
}

const char *nas_device_table_arch(const nas_device_table *t, int64_t i) {
    NAS_ASSERT(i >= 0 && i < t->n);
    return t->arch[i];
}

double nas_device_table_ms(const nas_device_table *t, int64_t i) {
    NAS_ASSERT(i >= 0 && i < t->n);
    return t->ms[i];
}
