/* cifar.c - the CIFAR-10 / CIFAR-100 binary format (data_batch_*.bin, test_batch.bin; train.bin,
 * test.bin). A file is a sequence of records: CIFAR-10 one label byte then 3072 pixel bytes
 * (R, G, B planes of 32x32); CIFAR-100 a coarse and a fine label byte then the pixels. Files may be
 * gzip-compressed. A partial record or a label out of range is an error naming the file and the
 * byte offset. */
#include "data_int.h"

#define CIFAR_PIXELS (3 * 32 * 32)

/* Record size and label checks for one file; returns the record count in *records. */
static nas_status check_file(nas_ctx *ctx, const char *path, const nas_data_file *f, int classes,
                             int64_t *records) {
    const size_t label_bytes = classes == 100 ? 2 : 1;
    const size_t rec = label_bytes + CIFAR_PIXELS;
    if (f->size == 0) {
        return nas_fail(ctx, NAS_ERR_FORMAT, "'%s': empty file (byte offset 0)", path);
    }
    if (f->size % rec != 0) {
        const size_t full = f->size / rec;
        return nas_fail(ctx, NAS_ERR_FORMAT,
                        "'%s': truncated CIFAR-%d file: record %zu at byte offset %zu has %zu of "
                        "%zu bytes",
                        path, classes, full, full * rec, f->size - full * rec, rec);
    }
    const int64_t n = (int64_t)(f->size / rec);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *r = f->bytes + (size_t)i * rec;
        if (classes == 100 && r[0] >= 20) {
            return nas_fail(ctx, NAS_ERR_FORMAT,
                            "'%s': coarse label %u of record %lld at byte offset %zu is outside "
                            "0..19",
                            path, r[0], (long long)i, (size_t)i * rec);
        }
        const uint8_t label = r[label_bytes - 1];
        if (label >= classes) {
            return nas_fail(ctx, NAS_ERR_FORMAT,
                            "'%s': label %u of record %lld at byte offset %zu is outside 0..%d",
                            path, label, (long long)i, (size_t)i * rec + label_bytes - 1,
                            classes - 1);
        }
    }
    *records = n;
    return NAS_OK;
}

nas_status nas_dataset_load_cifar(nas_ctx *ctx, const char *const *paths, int n_paths, int classes,
                                  nas_dataset **out) {
    NAS_CHECK_ARG(ctx, paths != NULL && n_paths > 0 && out != NULL);
    NAS_CHECK_ARG(ctx, classes == 10 || classes == 100);
    *out = NULL;
    const size_t label_bytes = classes == 100 ? 2 : 1;
    const size_t rec = label_bytes + CIFAR_PIXELS;
    /* Files are read twice (count, then copy) so only one of them is in memory at a time. */
    int64_t total = 0;
    nas_status st = NAS_OK;
    for (int k = 0; k < n_paths && st == NAS_OK; k++) {
        nas_data_file f = {0};
        int64_t n = 0;
        st = nas_data_read_file(ctx, paths[k], &f);
        if (st == NAS_OK) {
            st = check_file(ctx, paths[k], &f, classes, &n);
        }
        total += n;
        nas_data_file_free(ctx, &f);
    }
    nas_dataset *d = NULL;
    if (st == NAS_OK) {
        st = nas_data_alloc(ctx, total, 3, 32, 32, classes, &d);
    }
    int64_t at = 0;
    for (int k = 0; k < n_paths && st == NAS_OK; k++) {
        nas_data_file f = {0};
        st = nas_data_read_file(ctx, paths[k], &f);
        const int64_t n = st == NAS_OK ? (int64_t)(f.size / rec) : 0;
        if (st == NAS_OK && at + n > total) {
            st = nas_fail(ctx, NAS_ERR_IO, "'%s' changed while it was being read", paths[k]);
        }
        for (int64_t i = 0; st == NAS_OK && i < n; i++) {
            const uint8_t *r = f.bytes + (size_t)i * rec;
            d->labels[at + i] = r[label_bytes - 1];
            memcpy(d->images + (size_t)(at + i) * CIFAR_PIXELS, r + label_bytes, CIFAR_PIXELS);
        }
        at += n;
        nas_data_file_free(ctx, &f);
    }
    if (st == NAS_OK && at != total) {
        st = nas_fail(ctx, NAS_ERR_IO, "CIFAR files changed while they were being read");
    }
    if (st != NAS_OK) {
        nas_dataset_free(d);
        return st;
    }
    *out = d;
    return NAS_OK;
}
