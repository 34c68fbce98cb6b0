/* test_data.c - the data module: IDX files (gzip and plain) and CIFAR-10/100 binary files written
 * by the test itself (so the expected bytes are known independently of the parser), their error
 * messages for truncated, corrupt and mislabelled files (file name and byte offset), the seeded
 * train/validation split, resizing against a naive box filter, and the loader: normalisation,
 * shuffling, crop + flip checked against every possible shift, and prefetching on/off giving
 * identical batches. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const uint8_t *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* IDX images [n, h, w] and labels [n] with known pseudo-random content. */
static size_t make_idx_images(uint8_t *buf, uint32_t n, uint32_t h, uint32_t w) {
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 8;
    buf[3] = 3;
    be32(buf + 4, n);
    be32(buf + 8, h);
    be32(buf + 12, w);
    for (size_t i = 0; i < (size_t)n * h * w; i++) {
        buf[16 + i] = (uint8_t)((i * 2654435761u) >> 24);
    }
    return 16 + (size_t)n * h * w;
}

static size_t make_idx_labels(uint8_t *buf, uint32_t n, int classes) {
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 8;
    buf[3] = 1;
    be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        buf[8 + i] = (uint8_t)((i * 7 + 3) % (uint32_t)classes);
    }
    return 8 + n;
}

static int contains(const char *hay, const char *needle) {
    return strstr(hay, needle) != NULL;
}

static void test_idx_roundtrip(void) {
    nas_ctx *ctx = nas_ctx_new();
    static uint8_t img[16 + 50 * 28 * 28], lab[8 + 50];
    const size_t ni = make_idx_images(img, 50, 28, 28), nl = make_idx_labels(lab, 50, 10);
    for (int gz = 0; gz < 2; gz++) {
        char pi[300], pl[300];
        path_of(pi, sizeof(pi), gz ? "img.gz" : "img.idx");
        path_of(pl, sizeof(pl), gz ? "lab.gz" : "lab.idx");
        write_bytes(pi, img, ni, gz);
        write_bytes(pl, lab, nl, gz);
        nas_dataset *d = NULL;
        nas_status st = nas_dataset_load_idx(ctx, pi, pl, 10, &d);
        CHECK(st == NAS_OK, "load (gz=%d): %s", gz, nas_errmsg(ctx));
        if (d == NULL) {
            continue;
        }
        nas_model_shape s = nas_dataset_shape(d);
        CHECK(nas_dataset_size(d) == 50 && s.in_c == 1 && s.in_h == 28 && s.in_w == 28 &&
                  s.classes == 10,
              "shape %lld %d %d %d", (long long)nas_dataset_size(d), s.in_c, s.in_h, s.in_w);
        CHECK(memcmp(nas_dataset_image(d, 0), img + 16, 50 * 28 * 28) == 0, "pixels differ");
        for (int i = 0; i < 50; i++) {
            CHECK(nas_dataset_label(d, i) == lab[8 + i], "label %d", i);
        }
        nas_dataset_free(d);
    }
    nas_ctx_free(ctx);
}

/* Expect loading to fail with NAS_ERR_FORMAT and a message naming `file` and `offset_text`. */
static void expect_idx_error(nas_ctx *ctx, const char *pi, const char *pl, const char *file,
                             const char *offset_text, const char *what) {
    nas_dataset *d = NULL;
    nas_status st = nas_dataset_load_idx(ctx, pi, pl, 10, &d);
    CHECK(st == NAS_ERR_FORMAT && d == NULL, "%s: status %s", what, nas_status_name(st));
    CHECK(contains(nas_errmsg(ctx), file), "%s: message does not name the file: %s", what,
          nas_errmsg(ctx));
    CHECK(contains(nas_errmsg(ctx), offset_text), "%s: message lacks '%s': %s", what, offset_text,
          nas_errmsg(ctx));
    nas_dataset_free(d);
}

static void test_idx_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    static uint8_t img[16 + 20 * 28 * 28], lab[8 + 20];
    const size_t ni = make_idx_images(img, 20, 28, 28), nl = make_idx_labels(lab, 20, 10);
    char pi[300], pl[300], bad[300];
    path_of(pi, sizeof(pi), "ok_img.idx");
    path_of(pl, sizeof(pl), "ok_lab.idx");
    write_bytes(pi, img, ni, 0);
    write_bytes(pl, lab, nl, 0);

    /* truncated pixel data, plain and gzip: offset = bytes present */
    path_of(bad, sizeof(bad), "trunc_img.idx");
    write_bytes(bad, img, ni - 100, 0);
    char off[64];
    snprintf(off, sizeof(off), "byte offset %zu", ni - 100);
    expect_idx_error(ctx, bad, pl, bad, off, "truncated plain");
    path_of(bad, sizeof(bad), "trunc_img.gz");
    write_bytes(bad, img, ni - 100, 1);
    expect_idx_error(ctx, bad, pl, bad, off, "truncated inside gzip");

    /* a gzip stream cut short (the compressed file itself truncated) */
    {
        char full[300];
        path_of(full, sizeof(full), "full_img.gz");
        write_bytes(full, img, ni, 1);
        FILE *f = fopen(full, "rb");
        static uint8_t comp[32 * 1024];
        const size_t n = fread(comp, 1, sizeof(comp), f);
        fclose(f);
        path_of(bad, sizeof(bad), "cut_img.gz");
        write_bytes(bad, comp, n / 2, 0);
        expect_idx_error(ctx, bad, pl, bad, "byte offset", "gzip stream cut");
    }

    /* bad magic, wrong type, wrong dimension count */
    static uint8_t copy[sizeof(img)];
    memcpy(copy, img, ni);
    copy[1] = 7;
    path_of(bad, sizeof(bad), "magic.idx");
    write_bytes(bad, copy, ni, 0);
    expect_idx_error(ctx, bad, pl, bad, "byte offset 0", "bad magic");
    memcpy(copy, img, ni);
    copy[2] = 0x0d;
    write_bytes(bad, copy, ni, 0);
    expect_idx_error(ctx, bad, pl, bad, "byte offset 2", "float type");
    expect_idx_error(ctx, pl, pl, pl, "byte offset 3", "labels given as images");

    /* trailing garbage */
    memcpy(copy, img, ni);
    path_of(bad, sizeof(bad), "trail.idx");
    write_bytes(bad, copy, ni - 10, 0); /* placeholder overwritten below */
    {
        static uint8_t longer[sizeof(img) + 5];
        memcpy(longer, img, ni);
        write_bytes(bad, longer, ni + 5, 0);
        snprintf(off, sizeof(off), "byte offset %zu", ni);
        expect_idx_error(ctx, bad, pl, bad, off, "trailing bytes");
    }

    /* a label out of range: example 13 gets label 12 */
    static uint8_t lab2[sizeof(lab)];
    memcpy(lab2, lab, nl);
    lab2[8 + 13] = 12;
    path_of(bad, sizeof(bad), "badlabel.idx");
    write_bytes(bad, lab2, nl, 0);
    expect_idx_error(ctx, pi, bad, bad, "byte offset 21", "label out of range");

    /* count mismatch */
    static uint8_t lab3[8 + 19];
    make_idx_labels(lab3, 19, 10);
    path_of(bad, sizeof(bad), "short_labels.idx");
    write_bytes(bad, lab3, 8 + 19, 0);
    expect_idx_error(ctx, pi, bad, bad, "19", "count mismatch");

    /* a missing file is an I/O error naming it */
    nas_dataset *d = NULL;
    path_of(bad, sizeof(bad), "does_not_exist.idx");
    CHECK(nas_dataset_load_idx(ctx, bad, pl, 10, &d) == NAS_ERR_IO &&
              contains(nas_errmsg(ctx), "does_not_exist"),
          "missing file: %s", nas_errmsg(ctx));
    nas_ctx_free(ctx);
}

/* CIFAR records: label byte(s) then 3072 pixels; pixel value depends on (record, position). */
static size_t make_cifar(uint8_t *buf, int n, int classes, int salt) {
    const size_t lb = classes == 100 ? 2 : 1, rec = lb + 3072;
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * rec;
        if (classes == 100) {
            r[0] = (uint8_t)((i + salt) % 20);
        }
        r[lb - 1] = (uint8_t)((i * 3 + salt) % classes);
        for (int p = 0; p < 3072; p++) {
            r[lb + p] = (uint8_t)((p * 31 + i * 17 + salt * 5) & 0xff);
        }
    }
    return (size_t)n * rec;
}

static void test_cifar(void) {
    nas_ctx *ctx = nas_ctx_new();
    static uint8_t a[7 * 3074], b[5 * 3074];
    for (int v = 0; v < 2; v++) {
        const int classes = v ? 100 : 10;
        const size_t lb = v ? 2 : 1, rec = lb + 3072;
        const size_t na = make_cifar(a, 7, classes, 1), nb = make_cifar(b, 5, classes, 2);
        char pa[300], pb[300];
        path_of(pa, sizeof(pa), v ? "c100_a.bin" : "c10_a.bin");
        path_of(pb, sizeof(pb), v ? "c100_b.bin.gz" : "c10_b.bin.gz");
        write_bytes(pa, a, na, 0);
        write_bytes(pb, b, nb, 1);
        const char *paths[2] = {pa, pb};
        nas_dataset *d = NULL;
        CHECK(nas_dataset_load_cifar(ctx, paths, 2, classes, &d) == NAS_OK, "load cifar%d: %s",
              classes, nas_errmsg(ctx));
        if (d != NULL) {
            nas_model_shape s = nas_dataset_shape(d);
            CHECK(nas_dataset_size(d) == 12 && s.in_c == 3 && s.in_h == 32 && s.classes == classes,
                  "cifar%d shape", classes);
            for (int i = 0; i < 12; i++) {
                const uint8_t *r = i < 7 ? a + (size_t)i * rec : b + (size_t)(i - 7) * rec;
                CHECK(nas_dataset_label(d, i) == r[lb - 1], "cifar%d label %d", classes, i);
                CHECK(memcmp(nas_dataset_image(d, i), r + lb, 3072) == 0, "cifar%d image %d",
                      classes, i);
            }
        }
        nas_dataset_free(d);

        /* truncated: the last record is cut 1000 bytes short */
        char bad[300];
        path_of(bad, sizeof(bad), v ? "c100_trunc.bin" : "c10_trunc.bin");
        write_bytes(bad, a, na - 1000, 0);
        const char *bp[1] = {bad};
        d = NULL;
        nas_status st = nas_dataset_load_cifar(ctx, bp, 1, classes, &d);
        char off[64];
        snprintf(off, sizeof(off), "byte offset %zu", 6 * rec);
        CHECK(st == NAS_ERR_FORMAT && d == NULL && contains(nas_errmsg(ctx), bad) &&
                  contains(nas_errmsg(ctx), off),
              "truncated cifar%d: %s", classes, nas_errmsg(ctx));

        /* a label out of range in record 4 */
        a[4 * rec + lb - 1] = (uint8_t)(classes + 3);
        write_bytes(bad, a, na, 0);
        st = nas_dataset_load_cifar(ctx, bp, 1, classes, &d);
        snprintf(off, sizeof(off), "byte offset %zu", 4 * rec + lb - 1);
        CHECK(st == NAS_ERR_FORMAT && contains(nas_errmsg(ctx), bad) &&
                  contains(nas_errmsg(ctx), off),
              "bad label cifar%d: %s", classes, nas_errmsg(ctx));
    }
    nas_ctx_free(ctx);
}

/* nas_dataset_open on a directory in the CIFAR-10 layout written here. */
static void test_open_cifar_dir(void) {
    nas_ctx *ctx = nas_ctx_new();
    char dir[300], p[400];
    path_of(dir, sizeof(dir), "cifar10");
    mkdir(dir, 0755);
    snprintf(p, sizeof(p), "%s/cifar-10-batches-bin", dir);
    mkdir(p, 0755);
    static uint8_t a[9 * 3073];
    for (int k = 1; k <= 2; k++) {
        snprintf(p, sizeof(p), "%s/cifar-10-batches-bin/data_batch_%d.bin", dir, k);
        write_bytes(p, a, make_cifar(a, 9, 10, k), 0);
    }
    snprintf(p, sizeof(p), "%s/cifar-10-batches-bin/test_batch.bin", dir);
    write_bytes(p, a, make_cifar(a, 4, 10, 9), 0);
    nas_dataset *tr = NULL, *te = NULL;
    CHECK(nas_dataset_open(ctx, "cifar10", dir, 0, &tr) == NAS_OK, "open train: %s",
          nas_errmsg(ctx));
    CHECK(nas_dataset_open(ctx, "cifar10", dir, 1, &te) == NAS_OK, "open test: %s",
          nas_errmsg(ctx));
    CHECK(tr != NULL && nas_dataset_size(tr) == 18, "train size");
    CHECK(te != NULL && nas_dataset_size(te) == 4, "test size");
    if (tr != NULL) {
        float m[4], s[4];
        nas_dataset_normalisation(tr, m, s);
        CHECK(fabsf(m[0] - 0.4914f) < 1e-6f && nas_dataset_augment_default(tr) == 1,
              "cifar10 defaults");
    }
    nas_dataset_free(tr);
    nas_dataset_free(te);
    nas_dataset *d = NULL;
    CHECK(nas_dataset_open(ctx, "cifar100", dir, 0, &d) == NAS_ERR_IO &&
              contains(nas_errmsg(ctx), "train.bin"),
          "missing cifar100: %s", nas_errmsg(ctx));
    CHECK(nas_dataset_open(ctx, "imagenet", dir, 0, &d) == NAS_ERR_ARG, "unknown name");
    nas_ctx_free(ctx);
}

/* The real Fashion-MNIST files: sizes, and the first labels read directly through zlib. */
static void test_fashion_mnist(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    if (access(dir, R_OK) != 0) {
        printf("skip: %s missing\n", dir);
        return;
    }
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *tr = NULL, *te = NULL;
    CHECK(nas_dataset_open(ctx, "fashion-mnist", NULL, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(nas_dataset_open(ctx, "fashion-mnist", NULL, 1, &te) == NAS_OK, "%s", nas_errmsg(ctx));
    if (tr != NULL && te != NULL) {
        CHECK(nas_dataset_size(tr) == 60000 && nas_dataset_size(te) == 10000, "sizes");
        gzFile f = gzopen("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", "rb");
        static uint8_t raw[8 + 10000];
        const int got = gzread(f, raw, sizeof(raw));
        gzclose(f);
        CHECK(got == (int)sizeof(raw), "raw read");
        int bad = 0;
        for (int i = 0; i < 10000; i++) {
            bad += nas_dataset_label(te, i) != raw[8 + i];
        }
        CHECK(bad == 0, "%d test labels differ", bad);
    }
    nas_dataset_free(tr);
    nas_dataset_free(te);
    nas_ctx_free(ctx);
}

static void test_split(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_index_list tr, va, tr2, va2, trh, vah;
    CHECK(nas_dataset_split(ctx, 1000, 0.1, 1.0, 5, &tr, &va) == NAS_OK, "split");
    CHECK(tr.n == 900 && va.n == 100, "sizes %lld %lld", (long long)tr.n, (long long)va.n);
    static char seen[1000];
    memset(seen, 0, sizeof(seen));
    for (int64_t i = 0; i < tr.n; i++) {
        seen[tr.idx[i]]++;
        CHECK(i == 0 || tr.idx[i] > tr.idx[i - 1], "train ascending");
    }
    for (int64_t i = 0; i < va.n; i++) {
        seen[va.idx[i]]++;
    }
    int ok = 1;
    for (int i = 0; i < 1000; i++) {
        ok &= seen[i] == 1;
    }
    CHECK(ok, "train and validation partition [0, n)");
    /* the validation part is not simply the head or tail */
    CHECK(va.idx[0] < 900 && va.idx[99] >= 100, "validation drawn at random");
    CHECK(nas_dataset_split(ctx, 1000, 0.1, 1.0, 5, &tr2, &va2) == NAS_OK, "split again");
    CHECK(memcmp(va.idx, va2.idx, 100 * sizeof(int64_t)) == 0, "same seed, same split");
    /* a fraction keeps the same validation set and takes a subset of the training set */
    CHECK(nas_dataset_split(ctx, 1000, 0.1, 0.25, 5, &trh, &vah) == NAS_OK, "fraction");
    CHECK(trh.n == 225 && vah.n == 100, "fraction sizes %lld", (long long)trh.n);
    memset(seen, 0, sizeof(seen));
    for (int64_t i = 0; i < tr.n; i++) {
        seen[tr.idx[i]] = 1;
    }
    int subset = 1;
    for (int64_t i = 0; i < trh.n; i++) {
        subset &= seen[trh.idx[i]];
    }
    CHECK(subset && memcmp(va.idx, vah.idx, 100 * sizeof(int64_t)) == 0, "fraction is a subset");
    nas_index_list_free(ctx, &tr2);
    nas_index_list_free(ctx, &va2);
    CHECK(nas_dataset_split(ctx, 1000, 0.1, 1.0, 6, &tr2, &va2) == NAS_OK, "other seed");
    CHECK(memcmp(va.idx, va2.idx, 100 * sizeof(int64_t)) != 0, "other seed, other split");
    nas_index_list_free(ctx, &trh);
    nas_index_list_free(ctx, &vah);
    CHECK(nas_dataset_split(ctx, 10, 1.0, 1.0, 0, &trh, &vah) == NAS_ERR_ARG, "fraction 1");
    nas_index_list_free(ctx, &tr);
    nas_index_list_free(ctx, &va);
    nas_index_list_free(ctx, &tr2);
    nas_index_list_free(ctx, &va2);
    nas_index_list_free(ctx, &trh);
    nas_index_list_free(ctx, &vah);
    nas_ctx_free(ctx);
}

/* A small 3-channel dataset (CIFAR format, 40 images) for the loader tests. */
static nas_dataset *small_cifar(nas_ctx *ctx, int n) {
    static uint8_t a[64 * 3073];
    char p[300];
    path_of(p, sizeof(p), "loader.bin");
    write_bytes(p, a, make_cifar(a, n, 10, 3), 0);
    const char *paths[1] = {p};
    nas_dataset *d = NULL;
    nas_dataset_load_cifar(ctx, paths, 1, 10, &d);
    return d;
}

static void test_resize(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *d = small_cifar(ctx, 4), *h = NULL, *u = NULL;
    CHECK(d != NULL && nas_dataset_resize(d, 16, &h) == NAS_OK, "resize 16: %s", nas_errmsg(ctx));
    if (h != NULL) {
        int bad = 0;
        for (int i = 0; i < 4; i++) {
            const uint8_t *s = nas_dataset_image(d, i), *o = nas_dataset_image(h, i);
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < 16; y++) {
                    for (int x = 0; x < 16; x++) {
                        const uint8_t *q = s + c * 1024 + 2 * y * 32 + 2 * x;
                        const double mean = (q[0] + q[1] + q[32] + q[33]) / 4.0;
                        bad += fabs(o[c * 256 + y * 16 + x] - mean) > 0.5 + 1e-6;
                    }
                }
            }
            CHECK(nas_dataset_label(h, i) == nas_dataset_label(d, i), "label kept");
        }
        CHECK(bad == 0, "%d pixels differ from the 2x2 mean", bad);
        CHECK(nas_dataset_shape(h).in_h == 16, "shape");
    }
    /* 16 -> 32 bilinear, then back to 16 by area: a smooth round trip stays close */
    CHECK(h != NULL && nas_dataset_resize(h, 24, &u) == NAS_OK, "resize up");
    if (u != NULL) {
        /* upsampling a constant image keeps it constant: check the first row's corner pixels
         * stay within the source range */
        const uint8_t *s = nas_dataset_image(h, 0), *o = nas_dataset_image(u, 0);
        CHECK(o[0] == s[0], "corner kept: %d vs %d", o[0], s[0]);
    }
    nas_dataset *bad = NULL;
    CHECK(nas_dataset_resize(d, 0, &bad) == NAS_ERR_ARG, "resolution 0");
    nas_dataset_free(u);
    nas_dataset_free(h);
    nas_dataset_free(d);
    nas_ctx_free(ctx);
}

/* Does `out` (normalised image) equal src padded by p, cropped at (dy, dx), maybe flipped, for
 * some choice? Returns the number of matching choices. */
static int matching_shifts(const uint8_t *src, const float *out, int p, const float mean[3],
                           const float std[3]) {
    int matches = 0;
    for (int flip = 0; flip < 2; flip++) {
        for (int dy = 0; dy <= 2 * p; dy++) {
            for (int dx = 0; dx <= 2 * p; dx++) {
                int same = 1;
                for (int c = 0; c < 3 && same; c++) {
                    for (int y = 0; y < 32 && same; y++) {
                        for (int x = 0; x < 32 && same; x++) {
                            const int sy = y + dy - p, sx = (flip ? 31 - x : x) + dx - p;
                            const int v = sy >= 0 && sy < 32 && sx >= 0 && sx < 32
                                              ? src[c * 1024 + sy * 32 + sx]
                                              : 0;
                            const double want = (v / 255.0 - mean[c]) / std[c];
                            same = fabs(out[c * 1024 + y * 32 + x] - want) < 1e-5;
                        }
                    }
                }
                matches += same;
            }
        }
    }
    return matches;
}

static void test_loader_basic(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *d = small_cifar(ctx, 40);
    nas_data_opts o;
    nas_data_opts_default(d, &o);
    o.prefetch = 0;
    nas_loader *l = NULL;
    CHECK(nas_loader_new(d, NULL, 0, 16, &o, &l) == NAS_OK, "loader: %s", nas_errmsg(ctx));
    CHECK(nas_loader_batches(l) == 3, "3 batches (last partial)");
    nas_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    int64_t seen = 0, b;
    while ((b = nas_loader_next(l, &x, &y)) > 0) {
        for (int64_t j = 0; j < b; j++) {
            const int64_t i = seen + j;
            const uint8_t *s = nas_dataset_image(d, i);
            CHECK(y[j] == nas_dataset_label(d, i), "label %lld", (long long)i);
            for (int c = 0; c < 3; c++) {
                const double want = (s[c * 1024 + 5] / 255.0 - o.mean[c]) / o.std[c];
                CHECK(fabs(x[j * 3072 + c * 1024 + 5] - want) < 1e-5, "normalised %lld", (long long)i);
            }
        }
        seen += b;
    }
    CHECK(seen == 40, "epoch covers all examples: %lld", (long long)seen);
    nas_loader_free(l);
    o.drop_last = 1;
    CHECK(nas_loader_new(d, NULL, 0, 16, &o, &l) == NAS_OK && nas_loader_batches(l) == 2,
          "drop_last");
    nas_loader_free(l);

    /* shuffled + augmented: each epoch is a permutation; each image a padded crop (+flip) */
    o.drop_last = 0;
    o.shuffle = 1;
    o.pad_crop = 4;
    o.flip = 1;
    o.seed = 11;
    const int64_t idx[5] = {3, 8, 9, 20, 39};
    CHECK(nas_loader_new(d, idx, 5, 2, &o, &l) == NAS_OK, "subset loader");
    int flips_or_shifts = 0;
    for (int e = 0; e < 3; e++) {
        nas_loader_start_epoch(l, e);
        int count[40] = {0};
        while ((b = nas_loader_next(l, &x, &y)) > 0) {
            for (int64_t j = 0; j < b; j++) {
                /* find the source by label and pixel match */
                int found = 0;
                for (int k = 0; k < 5 && !found; k++) {
                    const int m = matching_shifts(nas_dataset_image(d, idx[k]), x + j * 3072, 4,
                                                  o.mean, o.std);
                    if (m > 0 && y[j] == nas_dataset_label(d, idx[k])) {
                        found = 1;
                        count[idx[k]]++;
                        flips_or_shifts +=
                            matching_shifts(nas_dataset_image(d, idx[k]), x + j * 3072, 0, o.mean,
                                            o.std) == 0;
                    }
                }
                CHECK(found, "epoch %d: batch image is no crop/flip of a subset image", e);
            }
        }
        CHECK(count[3] == 1 && count[8] == 1 && count[9] == 1 && count[20] == 1 && count[39] == 1,
              "epoch %d is a permutation of the subset", e);
    }
    CHECK(flips_or_shifts >= 10, "augmentation changed only %d of 15 images", flips_or_shifts);
    nas_loader_free(l);
    nas_dataset_free(d);
    nas_ctx_free(ctx);
}

/* Prefetching on and off give bit-identical batches, epochs in any order. */
static void test_prefetch_identical(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *d = small_cifar(ctx, 64);
    nas_data_opts o;
    nas_data_opts_default(d, &o);
    o.shuffle = 1;
    o.pad_crop = 4;
    o.flip = 1;
    o.seed = 3;
    nas_loader *a = NULL, *b = NULL;
    o.prefetch = 0;
    CHECK(nas_loader_new(d, NULL, 0, 10, &o, &a) == NAS_OK, "a");
    o.prefetch = 1;
    CHECK(nas_loader_new(d, NULL, 0, 10, &o, &b) == NAS_OK, "b");
    const int64_t epochs[4] = {0, 1, 5, 1};
    int differ = 0, batches = 0;
    for (int ei = 0; ei < 4; ei++) {
        nas_loader_start_epoch(a, epochs[ei]);
        nas_loader_start_epoch(b, epochs[ei]);
        const float *xa, *xb;
        const int32_t *ya, *yb;
        int64_t na, nb;
        do {
            na = nas_loader_next(a, &xa, &ya);
            nb = nas_loader_next(b, &xb, &yb);
            CHECK(na == nb, "batch sizes %lld %lld", (long long)na, (long long)nb);
            if (na > 0 && na == nb) {
                differ += memcmp(xa, xb, (size_t)na * 3072 * sizeof(float)) != 0 ||
                          memcmp(ya, yb, (size_t)na * sizeof(int32_t)) != 0;
                batches++;
            }
        } while (na > 0 && nb > 0);
        if (ei == 1) {
            /* abandon an epoch half-way: the next start must still be clean */
            nas_loader_start_epoch(b, 9);
            nas_loader_next(b, &xb, &yb);
        }
    }
    CHECK(differ == 0 && batches == 28, "%d of %d batches differ", differ, batches);
    /* different epochs differ */
    nas_loader_start_epoch(a, 0);
    const float *x0;
    const int32_t *y0;
    nas_loader_next(a, &x0, &y0);
    static float first[10 * 3072];
    memcpy(first, x0, sizeof(first));
    nas_loader_start_epoch(a, 1);
    nas_loader_next(a, &x0, &y0);
    CHECK(memcmp(first, x0, sizeof(first)) != 0, "epochs 0 and 1 start alike");
    nas_loader_free(a);
    nas_loader_free(b);
    nas_dataset_free(d);
    nas_ctx_free(ctx);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nas_test_data_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    RUN_TEST(test_idx_roundtrip);
    RUN_TEST(test_idx_errors);
    RUN_TEST(test_cifar);
    RUN_TEST(test_open_cifar_dir);
    RUN_TEST(test_fashion_mnist);
    RUN_TEST(test_split);
    RUN_TEST(test_resize);
    RUN_TEST(test_loader_basic);
    RUN_TEST(test_prefetch_identical);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        printf("note: could not remove %s\n", tmpdir);
    }
    return check_report("test_data");
}
