/* idx.c - IDX files (MNIST, Fashion-MNIST), gzip-compressed or plain, read through zlib.
 *
 * Format (big-endian): two zero bytes, a type byte (0x08 = unsigned byte, the only type these
 * datasets use), the number of dimensions, one u32 per dimension, then the values. Images are
 * 3-d [n, h, w], labels 1-d [n]. Every error names the file and the byte offset (in the
 * decompressed data) where the problem is. */
#include "data_int.h"

#include <errno.h>
#include <zlib.h>

#define READ_CHUNK (1u << 20)

void nas_data_file_free(nas_ctx *ctx, nas_data_file *f) {
    if (f != NULL) {
        nas_free(ctx, f->bytes, f->cap);
        f->bytes = NULL;
        f->size = f->cap = 0;
    }
}

static nas_status grow(nas_ctx *ctx, nas_data_file *f, size_t need) {
    if (need <= f->cap) {
        return NAS_OK;
    }
    size_t cap = f->cap ? f->cap : 4 * READ_CHUNK;
    while (cap < need) {
        cap *= 2;
    }
    uint8_t *p = nas_realloc(ctx, f->bytes, f->cap, cap);
    if (p == NULL) {
        return nas_fail(ctx, NAS_ERR_NOMEM, "out of memory reading a %zu-byte file", need);
    }
    f->bytes = p;
    f->cap = cap;
    return NAS_OK;
}

nas_status nas_data_read_file(nas_ctx *ctx, const char *path, nas_data_file *out) {
    NAS_CHECK_ARG(ctx, path != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL) {
        return nas_fail(ctx, NAS_ERR_IO, "cannot open '%s': %s", path,
                        errno ? strerror(errno) : "out of memory");
    }
    gzbuffer(gz, 256u * 1024u);
    nas_status st = NAS_OK;
    for (;;) {
        st = grow(ctx, out, out->size + READ_CHUNK);
        if (st != NAS_OK) {
            break;
        }
        const int got = gzread(gz, out->bytes + out->size, READ_CHUNK);
        if (got < 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            st = nas_fail(ctx, NAS_ERR_FORMAT,
                          "'%s': corrupt or truncated gzip data after byte offset %zu of the "
                          "decompressed data: %s",
                          path, out->size, msg);
            break;
        }
        out->size += (size_t)got;
        if (got < (int)READ_CHUNK) {
            /* zlib reports a gzip stream cut short only through gzerror after a short read */
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            if (zerr != Z_OK && zerr != Z_STREAM_END) {
                st = nas_fail(ctx, NAS_ERR_FORMAT,
                              "'%s': truncated gzip data at byte offset %zu of the decompressed "
                              "data: %s",
                              path, out->size, msg);
            }
            break;
        }
    }
    gzclose(gz);
    if (st != NAS_OK) {
        nas_data_file_free(ctx, out);
    }
    return st;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Check the IDX header of f: unsigned-byte values with `ndim` dimensions. dims[] receives them;
 * *data_at is the offset of the first value. */
static nas_status idx_header(nas_ctx *ctx, const char *path, const nas_data_file *f, int ndim,
                             uint32_t dims[3], size_t *data_at) {
    if (f->size < 4) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': truncated IDX header at byte offset %zu (a file of %zu bytes)", path,
                        f->size, f->size);
    }
    if (f->bytes[0] != 0 || f->bytes[1] != 0) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': not an IDX file: bad magic 0x%02x%02x at byte offset 0 (expected "
                        "0x0000)",
                        path, f->bytes[0], f->bytes[1]);
    }
    if (f->bytes[2] != 0x08) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': IDX value type 0x%02x at byte offset 2 is not unsigned byte (0x08)",
                        path, f->bytes[2]);
    }
    if (f->bytes[3] != ndim) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': IDX file has %d dimensions (byte offset 3), expected %d", path,
                        f->bytes[3], ndim);
    }
    const size_t header = 4 + 4 * (size_t)ndim;
    if (f->size < header) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': truncated IDX header at byte offset %zu (needs %zu bytes)", path,
                        f->size, header);
    }
    uint64_t values = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(f->bytes + 4 + 4 * i);
        if (dims[i] == 0 || (i > 0 && dims[i] > 4096)) {
            return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': IDX dimension %d is %u (byte offset %d)",
                            path, i, dims[i], 4 + 4 * i);
        }
        values *= dims[i];
    }
    if (f->size < header + values) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': truncated at byte offset %zu: the header promises %llu values "
                        "ending at offset %llu",
                        path, f->size, (unsigned long long)values,
                        (unsigned long long)(header + values));
    }
    if (f->size > header + values) {
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': %zu unexpected trailing bytes at byte offset %llu after the %llu "
                        "values the header declares",
                        path, f->size - (size_t)(header + values),
                        (unsigned long long)(header + values), (unsigned long long)values);
    }
    *data_at = header;
    return NAS_OK;
}

nas_status nas_dataset_load_idx(nas_ctx *ctx, const char *images, const char *labels, int classes,
                                nas_dataset **out) {
    NAS_CHECK_ARG(ctx, images != NULL && labels != NULL && out != NULL);
    NAS_CHECK_ARG(ctx, classes > 0 && classes <= 256);
    *out = NULL;
    nas_data_file fi = {0}, fl = {0};
    uint32_t di[3] = {0}, dl[3] = {0};
    size_t at_i = 0, at_l = 0;
    nas_status st = nas_data_read_file(ctx, images, &fi);
    if (st == NAS_OK) {
        st = idx_header(ctx, images, &fi, 3, di, &at_i);
    }
    if (st == NAS_OK) {
        st = nas_data_read_file(ctx, labels, &fl);
    }
    if (st == NAS_OK) {
        st = idx_header(ctx, labels, &fl, 1, dl, &at_l);
    }
    if (st == NAS_OK && dl[0] != di[0]) {
        st = nas_fail(ctx, NAS_ERR_FORMAT,
                      "'%s' has %u labels (byte offset 4) but '%s' has %u images", labels, dl[0],
                      images, di[0]);
    }
    for (uint32_t i = 0; st == NAS_OK && i < dl[0]; i++) {
        if (fl.bytes[at_l + i] >= classes) {
            st = nas_fail(ctx, NAS_ERR_FORMAT,
                          "'%s': label %u of example %u at byte offset %zu is outside 0..%d", labels,
                          fl.bytes[at_l + i], i, at_l + i, classes - 1);
        }
    }
    nas_dataset *d = NULL;
    if (st == NAS_OK) {
        st = nas_data_alloc(ctx, di[0], 1, (int)di[1], (int)di[2], classes, &d);
    }
    if (st == NAS_OK) {
        memcpy(d->images, fi.bytes + at_i, (size_t)di[0] * di[1] * di[2]);
        for (uint32_t i = 0; i < dl[0]; i++) {
            d->labels[i] = fl.bytes[at_l + i];
        }
        *out = d;
    }
    nas_data_file_free(ctx, &fi);
    nas_data_file_free(ctx, &fl);
    return st;
}
