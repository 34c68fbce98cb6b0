/* weights.c - weight files and training checkpoints: one binary format for both.
 *
 * A file holds every entry of a nas_params (weights, BN running statistics, architecture
 * weights), optionally followed by named float arrays the caller adds (optimiser state) and a
 * metadata string (JSON with epoch, seed, RNG counters, ...). A weights file is a checkpoint
 * with no extras and empty metadata, so nas_weights_load reads checkpoints too.
 *
 * Layout, version 1. Integers are unsigned little-endian; floats IEEE-754 binary32
 * little-endian; strings are UTF-8 without a terminating NUL.
 *
 *   offset size  field
 *   0      8     magic 89 4E 41 53 0D 0A 1A 0A ("\x89NAS\r\n\x1a\n", PNG style: a text-mode
 *                transfer or a 7-bit channel breaks it visibly)
 *   8      4     u32 version = 1
 *   12     4     u32 flags = 0 (reserved)
 *   16     8     u64 file_size: bytes in the whole file, trailer included
 *   24     8     u64 n_params: parameter entries
 *   32     8     u64 n_floats: floats of parameter data (sum of the entries' element counts)
 *   40     8     u64 n_extra: extra arrays
 *   48     8     u64 meta_bytes: length of the metadata string
 *   56     4     u32 header CRC-32 of bytes [0, 56)
 *   60     4     zero padding
 *   64           parameter table, n_params records:
 *                  u32 name_len (1..NAME_MAX_BYTES), name, u32 ndim (1..4), ndim x u64 dims
 *                extra table, n_extra records:
 *                  u32 name_len (1..NAME_MAX_BYTES), name, u64 count (floats)
 *                metadata: meta_bytes bytes
 *                parameter data: each entry's floats in table order (row-major, no padding)
 *                extra data: each array's floats in table order
 *   file_size-4  u32 CRC-32 (zlib's crc32, polynomial 0xEDB88320) of bytes [0, file_size - 4)
 *
 * Loading checks, in order: the magic ("not a nascent weight file"), the version, the header
 * CRC, that the file is as long as the header says (a shorter file is reported as truncated
 * with the byte offset where the data ran out), the file CRC, the tables, and finally that
 * every parameter of the target nas_params is in the file with the same shape (and nothing
 * else is). Only then are values copied, so a failed load leaves the parameters untouched.
 *
 * Saving is atomic: the file is written to a temporary file in the same directory, flushed,
 * fsync'ed and renamed over the destination, so a crash leaves the old file or the new one. */
#include "tensor/tensor_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define WEIGHTS_VERSION 1
#define HEADER_BYTES    64
#define HEADER_CRC_AT   56
#define NAME_MAX_BYTES  4096

static const unsigned char magic[8] = {0x89, 'N', 'A', 'S', '\r', '\n', 0x1a, '\n'};

/* ------------------------------------------------------------------------- little helpers */

static uint32_t crc_update(uint32_t crc, const void *buf, size_t n) {
    const unsigned char *b = buf;
    while (n > 0) { /* zlib takes uInt lengths */
        const size_t part = n > (1u << 30) ? (1u << 30) : n;
        crc = (uint32_t)crc32(crc, b, (uInt)part);
        b += part;
        n -= part;
    }
    return crc;
}

static void put_u32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_u64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint32_t get_u32(const unsigned char *b) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)b[i] << (8 * i);
    }
    return v;
}

static uint64_t get_u64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    return v;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BIG_ENDIAN 1
#else
#define HOST_BIG_ENDIAN 0
#endif

/* Copy n little-endian floats from src (bytes) to dst. */
static void floats_from_le(float *dst, const unsigned char *src, int64_t n) {
    if (n == 0) {
        return; /* dst may be NULL (an empty optimiser state) */
    }
    if (!HOST_BIG_ENDIAN) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t u = get_u32(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

/* ------------------------------------------------------------------------------- writing */

typedef struct writer {
    nas_ctx *ctx;
    FILE *f;
    const char *path; /* the destination, for messages */
    uint32_t crc;
    uint64_t written;
    int failed;
} writer;

static void w_bytes(writer *w, const void *buf, size_t n) {
    if (w->failed || n == 0) {
        return;
    }
    if (fwrite(buf, 1, n, w->f) != n) {
        w->failed = errno != 0 ? errno : EIO;
        return;
    }
    w->crc = crc_update(w->crc, buf, n);
    w->written += n;
}

static void w_u32(writer *w, uint32_t v) {
    unsigned char b[4];
    put_u32(b, v);
    w_bytes(w, b, 4);
}

static void w_u64(writer *w, uint64_t v) {
    unsigned char b[8];
    put_u64(b, v);
    w_bytes(w, b, 8);
}

static void w_floats(writer *w, const float *x, int64_t n) {
    if (!HOST_BIG_ENDIAN) {
        w_bytes(w, x, (size_t)n * sizeof(float));
        return;
    }
    unsigned char buf[1024];
    for (int64_t i = 0; i < n;) {
        const int64_t m = nas_min_i64(n - i, (int64_t)sizeof(buf) / 4);
        for (int64_t k = 0; k < m; k++) {
            uint32_t u;
            memcpy(&u, &x[i + k], 4);
            put_u32(buf + 4 * k, u);
        }
        w_bytes(w, buf, (size_t)m * 4);
        i += m;
    }
}

/* What one file holds: the parameters, the extras and the metadata. */
typedef struct file_contents {
    const nas_params *p;
    int n_extra;
    const char *const *extra_names;
    const float *const *extra;
    const int64_t *extra_len;
    const char *meta;
    size_t meta_bytes;
} file_contents;

static uint64_t file_size_of(const file_contents *fc) {
    uint64_t size = HEADER_BYTES + 4;
    const nas_params *p = fc->p;
    for (int64_t i = 0; i < p->n_entries; i++) {
        const nas_param_entry *e = &p->entries[i];
        size += 4 + strlen(e->name) + 4 + 8 * (uint64_t)e->ndim + 4 * (uint64_t)e->numel;
    }
    for (int i = 0; i < fc->n_extra; i++) {
        size += 4 + strlen(fc->extra_names[i]) + 8 + 4 * (uint64_t)fc->extra_len[i];
    }
    return size + fc->meta_bytes;
}

static int64_t params_floats(const nas_params *p) {
    int64_t n = 0;
    for (int64_t i = 0; i < p->n_entries; i++) {
        n += p->entries[i].numel;
    }
    return n;
}

static void write_contents(writer *w, const file_contents *fc) {
    const nas_params *p = fc->p;
    unsigned char h[HEADER_BYTES];
    memset(h, 0, sizeof(h));
    memcpy(h, magic, 8);
    put_u32(h + 8, WEIGHTS_VERSION);
    put_u32(h + 12, 0);
    put_u64(h + 16, file_size_of(fc));
    put_u64(h + 24, (uint64_t)p->n_entries);
    put_u64(h + 32, (uint64_t)params_floats(p));
    put_u64(h + 40, (uint64_t)fc->n_extra);
    put_u64(h + 48, (uint64_t)fc->meta_bytes);
    put_u32(h + HEADER_CRC_AT, crc_update(0, h, HEADER_CRC_AT));
    w_bytes(w, h, sizeof(h));
    for (int64_t i = 0; i < p->n_entries; i++) {
        const nas_param_entry *e = &p->entries[i];
        const size_t len = strlen(e->name);
        w_u32(w, (uint32_t)len);
        w_bytes(w, e->name, len);
        w_u32(w, (uint32_t)e->ndim);
        for (int d = 0; d < e->ndim; d++) {
            w_u64(w, (uint64_t)e->shape[d]);
        }
    }
    for (int i = 0; i < fc->n_extra; i++) {
        const size_t len = strlen(fc->extra_names[i]);
        w_u32(w, (uint32_t)len);
        w_bytes(w, fc->extra_names[i], len);
        w_u64(w, (uint64_t)fc->extra_len[i]);
    }
    w_bytes(w, fc->meta, fc->meta_bytes);
    for (int64_t i = 0; i < p->n_entries; i++) {
        w_floats(w, p->data + p->entries[i].offset, p->entries[i].numel);
    }
    for (int i = 0; i < fc->n_extra; i++) {
        w_floats(w, fc->extra[i], fc->extra_len[i]);
    }
    unsigned char t[4];
    put_u32(t, w->crc);
    w_bytes(w, t, 4);
}

/* Make the rename durable: fsync the directory holding path (best effort). */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        strcpy(dir, ".");
    } else if ((size_t)(slash - path) + 1 < sizeof(dir)) {
        const size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    } else {
        return;
    }
    const int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static nas_status save_file(nas_ctx *ctx, const file_contents *fc, const char *path) {
    const size_t tmp_size = strlen(path) + 16;
    char *tmp = nas_malloc(ctx, tmp_size);
    if (tmp == NULL) {
        return NAS_ERR_NOMEM;
    }
    snprintf(tmp, tmp_size, "%s.tmp.XXXXXX", path);
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        const int err = errno;
        nas_free(ctx, tmp, tmp_size);
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(err));
    }
    (void)fchmod(fd, 0644);
    writer w = {.ctx = ctx, .f = fdopen(fd, "wb"), .path = path};
    if (w.f == NULL) {
        w.failed = errno;
        close(fd);
    } else {
        write_contents(&w, fc);
        if (!w.failed && fflush(w.f) != 0) {
            w.failed = errno;
        }
        if (!w.failed && fsync(fileno(w.f)) != 0) {
            w.failed = errno;
        }
        if (fclose(w.f) != 0 && !w.failed) {
            w.failed = errno;
        }
    }
    if (!w.failed && rename(tmp, path) != 0) {
        w.failed = errno;
    }
    if (w.failed) {
        unlink(tmp);
        nas_free(ctx, tmp, tmp_size);
        return nas_fail(ctx, NAS_ERR_IO, "%s: write failed after %llu bytes: %s", path,
                        (unsigned long long)w.written, strerror(w.failed));
    }
    nas_free(ctx, tmp, tmp_size);
    sync_parent_dir(path);
    return NAS_OK;
}

static nas_status check_name(nas_ctx *ctx, const char *what, const char *name) {
    const size_t len = strlen(name);
    if (len == 0 || len > NAME_MAX_BYTES) {
        return nas_fail(ctx, NAS_ERR_ARG, "%s: name of %zu bytes (must be 1..%d)", what, len,
                        NAME_MAX_BYTES);
    }
    return NAS_OK;
}

nas_status nas_checkpoint_save(const nas_params *p, const char *path, const char *meta, int n_extra,
                               const char *const *extra_names, const float *const *extra,
                               const int64_t *extra_len) {
    if (p == NULL) {
        return NAS_ERR_ARG;
    }
    nas_ctx *ctx = p->ctx;
    NAS_CHECK_ARG(ctx, path != NULL && n_extra >= 0);
    NAS_CHECK_ARG(ctx, n_extra == 0 || (extra_names != NULL && extra != NULL && extra_len != NULL));
    for (int64_t i = 0; i < p->n_entries; i++) {
        nas_status st = check_name(ctx, "checkpoint_save: parameter", p->entries[i].name);
        if (st != NAS_OK) {
            return st;
        }
    }
    for (int i = 0; i < n_extra; i++) {
        NAS_CHECK_ARG(ctx, extra_names[i] != NULL && extra_len[i] >= 0);
        NAS_CHECK_ARG(ctx, extra_len[i] == 0 || extra[i] != NULL);
        nas_status st = check_name(ctx, "checkpoint_save: extra array", extra_names[i]);
        if (st != NAS_OK) {
            return st;
        }
    }
    const file_contents fc = {.p = p,
                              .n_extra = n_extra,
                              .extra_names = extra_names,
                              .extra = extra,
                              .extra_len = extra_len,
                              .meta = meta != NULL ? meta : "",
                              .meta_bytes = meta != NULL ? strlen(meta) : 0};
    return save_file(ctx, &fc, path);
}

nas_status nas_weights_save(const nas_params *p, const char *path) {
    return nas_checkpoint_save(p, path, NULL, 0, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------------- reading */

/* A bounded cursor over the file's bytes; running past the end is a format error naming the
 * offset (it cannot happen in a file whose length and CRC check out unless the writer lied). */
typedef struct reader {
    nas_ctx *ctx;
    const char *path;
    const unsigned char *b;
    uint64_t size, at;
} reader;

static nas_status r_need(reader *r, uint64_t n, const char *what) {
    if (n > r->size - r->at) {
        return nas_fail(r->ctx, NAS_ERR_FORMAT,
                        "%s: malformed file: %s at byte offset %llu runs past the data", r->path,
                        what, (unsigned long long)r->at);
    }
    return NAS_OK;
}

static nas_status r_u32(reader *r, uint32_t *v, const char *what) {
    nas_status st = r_need(r, 4, what);
    if (st == NAS_OK) {
        *v = get_u32(r->b + r->at);
        r->at += 4;
    }
    return st;
}

static nas_status r_u64(reader *r, uint64_t *v, const char *what) {
    nas_status st = r_need(r, 8, what);
    if (st == NAS_OK) {
        *v = get_u64(r->b + r->at);
        r->at += 8;
    }
    return st;
}

/* A name: *name points into the buffer (not NUL-terminated), *len its length. */
static nas_status r_name(reader *r, const char **name, uint32_t *len, const char *what) {
    const uint64_t at = r->at;
    nas_status st = r_u32(r, len, what);
    if (st != NAS_OK) {
        return st;
    }
    if (*len == 0 || *len > NAME_MAX_BYTES) {
        return nas_fail(r->ctx, NAS_ERR_FORMAT,
                        "%s: malformed file: %s at byte offset %llu has a name of %u bytes",
                        r->path, what, (unsigned long long)at, *len);
    }
    st = r_need(r, *len, what);
    if (st == NAS_OK) {
        *name = (const char *)(r->b + r->at);
        r->at += *len;
    }
    return st;
}

/* One parsed table record. */
typedef struct file_entry {
    const char *name;
    uint32_t name_len;
    int ndim;
    int64_t shape[NAS_MAX_DIMS];
    int64_t numel;
    uint64_t data_at; /* byte offset of its floats */
} file_entry;

typedef struct parsed {
    uint64_t file_size, n_params, n_floats, n_extra, meta_bytes;
    file_entry *params, *extras; /* one allocation: n_params + n_extra records */
    const char *meta;
} parsed;

static nas_status truncated(nas_ctx *ctx, const char *path, uint64_t got, const char *where) {
    return nas_fail(ctx, NAS_ERR_FORMAT, "%s: truncated file: data ran out at byte offset %llu %s",
                    path, (unsigned long long)got, where);
}

/* Check the fixed header in h (the first min(size, 64) bytes of a file of `size` bytes). */
static nas_status check_header(nas_ctx *ctx, const char *path, const unsigned char *h,
                               uint64_t size, parsed *ps) {
    const size_t have = size < 8 ? (size_t)size : 8;
    if (memcmp(h, magic, have) != 0) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: not a nascent weight file (it does not start with the magic bytes "
                        "89 4E 41 53 0D 0A 1A 0A)",
                        path);
    }
    if (size < 12) {
        return truncated(ctx, path, size, "(in the header)");
    }
    const uint32_t version = get_u32(h + 8);
    if (version != WEIGHTS_VERSION) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: weight file version %u, this build reads version %d", path, version,
                        WEIGHTS_VERSION);
    }
    if (size < HEADER_BYTES) {
        return truncated(ctx, path, size, "(in the header)");
    }
    const uint32_t hcrc = get_u32(h + HEADER_CRC_AT), want = crc_update(0, h, HEADER_CRC_AT);
    if (hcrc != want) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: header checksum mismatch (stored %08x, computed %08x): the file is "
                        "corrupt",
                        path, hcrc, want);
    }
    ps->file_size = get_u64(h + 16);
    ps->n_params = get_u64(h + 24);
    ps->n_floats = get_u64(h + 32);
    ps->n_extra = get_u64(h + 40);
    ps->meta_bytes = get_u64(h + 48);
    /* Each parameter record takes at least 17 bytes, each extra record 13: bounding the counts
     * by the file size keeps a crafted header from asking for huge tables. */
    const uint64_t fs = ps->file_size;
    if (fs < HEADER_BYTES + 4 || ps->n_params > fs / 17 || ps->n_extra > fs / 13 ||
        ps->meta_bytes > fs || ps->n_floats > fs / 4 ||
        17 * ps->n_params + 13 * ps->n_extra + ps->meta_bytes + 4 * ps->n_floats >
            fs - HEADER_BYTES - 4) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: malformed header: file_size %llu, %llu parameters, %llu floats, "
                        "%llu extras, %llu metadata bytes do not fit together",
                        path, (unsigned long long)ps->file_size, (unsigned long long)ps->n_params,
                        (unsigned long long)ps->n_floats, (unsigned long long)ps->n_extra,
                        (unsigned long long)ps->meta_bytes);
    }
    if (size < ps->file_size) {
        char where[96];
        snprintf(where, sizeof(where), "(the header says the file has %llu bytes)",
                 (unsigned long long)ps->file_size);
        return truncated(ctx, path, size, where);
    }
    if (size > ps->file_size) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: %llu unexpected bytes after the end of the data at byte offset %llu",
                        path, (unsigned long long)(size - ps->file_size),
                        (unsigned long long)ps->file_size);
    }
    return NAS_OK;
}

static nas_status parse_param_record(reader *r, file_entry *fe) {
    const uint64_t at = r->at;
    nas_status st = r_name(r, &fe->name, &fe->name_len, "parameter record");
    uint32_t ndim = 0;
    if (st == NAS_OK) {
        st = r_u32(r, &ndim, "parameter record");
    }
    if (st != NAS_OK) {
        return st;
    }
    if (ndim < 1 || ndim > NAS_MAX_DIMS) {
        return nas_fail(r->ctx, NAS_ERR_FORMAT,
                        "%s: malformed file: parameter '%.*s' at byte offset %llu has %u "
                        "dimensions",
                        r->path, (int)fe->name_len, fe->name, (unsigned long long)at, ndim);
    }
    fe->ndim = (int)ndim;
    fe->numel = 1;
    for (int d = 0; d < NAS_MAX_DIMS; d++) {
        uint64_t v = 1;
        if (d < fe->ndim && (st = r_u64(r, &v, "parameter shape")) != NAS_OK) {
            return st;
        }
        if (v == 0 || v > r->size || (uint64_t)fe->numel * v > r->size) {
            return nas_fail(r->ctx, NAS_ERR_FORMAT,
                            "%s: malformed file: parameter '%.*s' at byte offset %llu has "
                            "dimension %d of size %llu",
                            r->path, (int)fe->name_len, fe->name, (unsigned long long)at, d,
                            (unsigned long long)v);
        }
        fe->shape[d] = (int64_t)v;
        fe->numel *= (int64_t)v;
    }
    return NAS_OK;
}

static nas_status parse_tables(reader *r, parsed *ps) {
    r->at = HEADER_BYTES;
    nas_status st = NAS_OK;
    uint64_t floats = 0;
    for (uint64_t i = 0; i < ps->n_params && st == NAS_OK; i++) {
        st = parse_param_record(r, &ps->params[i]);
        floats += st == NAS_OK ? (uint64_t)ps->params[i].numel : 0;
    }
    for (uint64_t i = 0; i < ps->n_extra && st == NAS_OK; i++) {
        file_entry *fe = &ps->extras[i];
        memset(fe, 0, sizeof(*fe));
        uint64_t count = 0;
        st = r_name(r, &fe->name, &fe->name_len, "extra array record");
        if (st == NAS_OK && (st = r_u64(r, &count, "extra array record")) == NAS_OK) {
            if (count > r->size / 4) {
                return nas_fail(r->ctx, NAS_ERR_FORMAT,
                                "%s: malformed file: extra array '%.*s' of %llu floats", r->path,
                                (int)fe->name_len, fe->name, (unsigned long long)count);
            }
            fe->numel = (int64_t)count;
            fe->ndim = 1;
            fe->shape[0] = fe->numel;
        }
    }
    if (st == NAS_OK && floats != ps->n_floats) {
        return nas_fail(r->ctx, NAS_ERR_FORMAT,
                        "%s: malformed file: the parameter table holds %llu floats, the header "
                        "says %llu",
                        r->path, (unsigned long long)floats, (unsigned long long)ps->n_floats);
    }
    if (st == NAS_OK && (st = r_need(r, ps->meta_bytes, "metadata")) == NAS_OK) {
        ps->meta = (const char *)(r->b + r->at);
        r->at += ps->meta_bytes;
    }
    for (uint64_t i = 0; i < ps->n_params + ps->n_extra && st == NAS_OK; i++) {
        file_entry *fe = &ps->params[i]; /* extras follow params in the same array */
        if ((st = r_need(r, 4 * (uint64_t)fe->numel, "float data")) == NAS_OK) {
            fe->data_at = r->at;
            r->at += 4 * (uint64_t)fe->numel;
        }
    }
    if (st == NAS_OK && r->at != r->size - 4) {
        return nas_fail(r->ctx, NAS_ERR_FORMAT,
                        "%s: malformed file: the data ends at byte offset %llu, the checksum is "
                        "at %llu",
                        r->path, (unsigned long long)r->at, (unsigned long long)(r->size - 4));
    }
    return st;
}

static void format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && at < size; d++) {
        at += (size_t)snprintf(buf + at, size - at, d ? ", %lld" : "%lld", (long long)shape[d]);
    }
    if (at < size) {
        snprintf(buf + at, size - at, "]");
    }
}

static int name_is(const file_entry *fe, const char *name) {
    return strlen(name) == fe->name_len && memcmp(name, fe->name, fe->name_len) == 0;
}

/* Map every parameter of p to its file record (*map[i] = record index). */
static nas_status match_params(nas_ctx *ctx, const char *path, const nas_params *p,
                               const parsed *ps, int64_t *map) {
    for (int64_t i = 0; i < p->n_entries; i++) {
        const nas_param_entry *e = &p->entries[i];
        int64_t k = -1;
        if ((uint64_t)i < ps->n_params && name_is(&ps->params[i], e->name)) {
            k = i; /* same order: the common case, no search */
        }
        for (uint64_t j = 0; j < ps->n_params && k < 0; j++) {
            if (name_is(&ps->params[j], e->name)) {
                k = (int64_t)j;
            }
        }
        if (k < 0) {
            return nas_fail(ctx, NAS_ERR_FORMAT,
                            "%s: parameter '%s' of the model is not in the file", path, e->name);
        }
        const file_entry *fe = &ps->params[k];
        int same = fe->ndim == e->ndim;
        for (int d = 0; d < e->ndim && same; d++) {
            same = fe->shape[d] == e->shape[d];
        }
        if (!same) {
            char a[128], b[128];
            format_shape(a, sizeof(a), fe->ndim, fe->shape);
            format_shape(b, sizeof(b), e->ndim, e->shape);
            return nas_fail(ctx, NAS_ERR_SHAPE,
                            "%s: parameter '%s' has shape %s in the file but %s in the model", path,
                            e->name, a, b);
        }
        map[i] = k;
    }
    if (ps->n_params != (uint64_t)p->n_entries) {
        /* Every model parameter was found, so some file record is unused: name it. */
        for (uint64_t j = 0; j < ps->n_params; j++) {
            int used = 0;
            for (int64_t i = 0; i < p->n_entries && !used; i++) {
                used = map[i] == (int64_t)j;
            }
            if (!used) {
                return nas_fail(ctx, NAS_ERR_FORMAT,
                                "%s: the file has parameter '%.*s' that the model lacks (file: "
                                "%llu parameters, model: %lld)",
                                path, (int)ps->params[j].name_len, ps->params[j].name,
                                (unsigned long long)ps->n_params, (long long)p->n_entries);
            }
        }
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s: the file has %llu parameters, the model %lld",
                        path, (unsigned long long)ps->n_params, (long long)p->n_entries);
    }
    return NAS_OK;
}

static const file_entry *find_extra(const parsed *ps, const char *name) {
    for (uint64_t j = 0; j < ps->n_extra; j++) {
        if (name_is(&ps->extras[j], name)) {
            return &ps->extras[j];
        }
    }
    return NULL;
}

/* Read the whole file into a buffer after checking its header, length and checksum. */
static nas_status read_file(nas_ctx *ctx, const char *path, unsigned char **buf, parsed *ps) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return nas_fail(ctx, NAS_ERR_IO, "%s: not a regular file", path);
    }
    const uint64_t size = (uint64_t)sb.st_size;
    unsigned char h[HEADER_BYTES];
    const size_t hn = size < HEADER_BYTES ? (size_t)size : HEADER_BYTES;
    if (fread(h, 1, hn, f) != hn) {
        fclose(f);
        return nas_fail(ctx, NAS_ERR_IO, "%s: read error in the header", path);
    }
    nas_status st = check_header(ctx, path, h, size, ps);
    if (st != NAS_OK) {
        fclose(f);
        return st;
    }
    if (size > SIZE_MAX) {
        fclose(f);
        return nas_fail(ctx, NAS_ERR_NOMEM, "%s: %llu bytes do not fit in memory", path,
                        (unsigned long long)size);
    }
    unsigned char *b = nas_malloc(ctx, (size_t)size);
    if (b == NULL) {
        fclose(f);
        return NAS_ERR_NOMEM;
    }
    memcpy(b, h, HEADER_BYTES);
    const size_t rest = (size_t)size - HEADER_BYTES;
    const size_t got = fread(b + HEADER_BYTES, 1, rest, f);
    fclose(f);
    if (got != rest) { /* the file shrank under us */
        nas_free(ctx, b, (size_t)size);
        return truncated(ctx, path, HEADER_BYTES + got, "(while reading)");
    }
    const uint32_t stored = get_u32(b + size - 4), want = crc_update(0, b, (size_t)size - 4);
    if (stored != want) {
        nas_free(ctx, b, (size_t)size);
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                        path, stored, want);
    }
    *buf = b;
    return NAS_OK;
}

nas_status nas_checkpoint_load(nas_params *p, const char *path, int n_extra,
                               const char *const *extra_names, float *const *extra,
                               const int64_t *extra_len, char **meta) {
    if (p == NULL) {
        return NAS_ERR_ARG;
    }
    nas_ctx *ctx = p->ctx;
    if (meta != NULL) {
        *meta = NULL;
    }
    NAS_CHECK_ARG(ctx, path != NULL && n_extra >= 0);
    NAS_CHECK_ARG(ctx, n_extra == 0 || (extra_names != NULL && extra != NULL && extra_len != NULL));
    parsed ps;
    memset(&ps, 0, sizeof(ps));
    unsigned char *b = NULL;
    nas_status st = read_file(ctx, path, &b, &ps);
    if (st != NAS_OK) {
        return st;
    }
    /* At least one record each, so the sizes freed are the sizes allocated. */
    const size_t fe_bytes = (size_t)(ps.n_params + ps.n_extra + 1) * sizeof(file_entry);
    const size_t map_bytes = (size_t)(p->n_entries + 1) * sizeof(int64_t);
    ps.params = nas_malloc(ctx, fe_bytes);
    int64_t *map = nas_malloc(ctx, map_bytes);
    char *meta_copy = NULL;
    if (ps.params == NULL || map == NULL) {
        st = NAS_ERR_NOMEM;
        goto done;
    }
    ps.extras = ps.params + ps.n_params;
    reader r = {.ctx = ctx, .path = path, .b = b, .size = ps.file_size, .at = 0};
    if ((st = parse_tables(&r, &ps)) != NAS_OK ||
        (st = match_params(ctx, path, p, &ps, map)) != NAS_OK) {
        goto done;
    }
    for (int i = 0; i < n_extra; i++) {
        const file_entry *fe = find_extra(&ps, extra_names[i]);
        if (fe == NULL) {
            st = nas_fail(ctx, NAS_ERR_FORMAT, "%s: the file has no extra array '%s'", path,
                          extra_names[i]);
            goto done;
        }
        if (fe->numel != extra_len[i]) {
            st = nas_fail(ctx, NAS_ERR_SHAPE,
                          "%s: extra array '%s' has %lld floats in the file, %lld expected", path,
                          extra_names[i], (long long)fe->numel, (long long)extra_len[i]);
            goto done;
        }
    }
    if (meta != NULL) {
        meta_copy = nas_malloc(ctx, (size_t)ps.meta_bytes + 1);
        if (meta_copy == NULL) {
            st = NAS_ERR_NOMEM;
            goto done;
        }
        memcpy(meta_copy, ps.meta, (size_t)ps.meta_bytes);
        meta_copy[ps.meta_bytes] = '\0';
    }
    /* Everything checks out: copy. */
    for (int64_t i = 0; i < p->n_entries; i++) {
        const file_entry *fe = &ps.params[map[i]];
        floats_from_le(p->data + p->entries[i].offset, b + fe->data_at, fe->numel);
    }
    for (int i = 0; i < n_extra; i++) {
        const file_entry *fe = find_extra(&ps, extra_names[i]);
        floats_from_le(extra[i], b + fe->data_at, fe->numel);
    }
    if (meta != NULL) {
        *meta = meta_copy;
    }
done:
    nas_free(ctx, map, map_bytes);
    nas_free(ctx, ps.params, fe_bytes);
    nas_free(ctx, b, (size_t)ps.file_size);
    return st;
}

nas_status nas_weights_load(nas_params *p, const char *path) {
    return nas_checkpoint_load(p, path, 0, NULL, NULL, NULL, NULL);
}
