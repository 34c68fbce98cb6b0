/* dataset.c - in-memory datasets: opening the named ones from their directories, accessors,
 * resolution down-sampling (a fidelity knob) and the seeded train/validation split with a data
 * fraction (another knob). Images stay uint8 until the loader normalises a batch, which keeps
 * CIFAR-10 at 150 MB instead of 600. */
#include "data_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

nas_status nas_data_alloc(nas_ctx *ctx, int64_t n, int c, int h, int w, int classes,
                          nas_dataset **out) {
    *out = NULL;
    if (n <= 0 || c <= 0 || c > NAS_DATA_MAX_C || h <= 0 || w <= 0) {
        return nas_fail(ctx, NAS_ERR_ARG, "dataset: bad shape %lld x %d x %d x %d", (long long)n, c,
                        h, w);
    }
    nas_dataset *d = nas_calloc(ctx, 1, sizeof(nas_dataset));
    if (d == NULL) {
        return NAS_ERR_NOMEM;
    }
    d->ctx = ctx;
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->classes = classes;
    d->images = nas_malloc(ctx, (size_t)n * (size_t)(c * h * w));
    d->labels = nas_malloc(ctx, (size_t)n * sizeof(int32_t));
    for (int i = 0; i < NAS_DATA_MAX_C; i++) {
        d->mean[i] = 0.5f;
        d->std[i] = 0.5f;
    }
    if (d->images == NULL || d->labels == NULL) {
        nas_dataset_free(d);
        return nas_fail(ctx, NAS_ERR_NOMEM, "dataset: out of memory for %lld images",
                        (long long)n);
    }
    *out = d;
    return NAS_OK;
}

void nas_dataset_free(nas_dataset *d) {
    if (d == NULL) {
        return;
    }
    nas_free(d->ctx, d->images, (size_t)d->n * (size_t)(d->c * d->h * d->w));
    nas_free(d->ctx, d->labels, (size_t)d->n * sizeof(int32_t));
    nas_free(d->ctx, d, sizeof(nas_dataset));
}

int64_t nas_dataset_size(const nas_dataset *d) {
    return d->n;
}

nas_model_shape nas_dataset_shape(const nas_dataset *d) {
    return (nas_model_shape){d->c, d->h, d->w, d->classes};
}

const char *nas_dataset_name(const nas_dataset *d) {
    return d->name;
}

const uint8_t *nas_dataset_image(const nas_dataset *d, int64_t i) {
    return d->images + (size_t)i * (size_t)(d->c * d->h * d->w);
}

int32_t nas_dataset_label(const nas_dataset *d, int64_t i) {
    return d->labels[i];
}

void nas_dataset_normalisation(const nas_dataset *d, float mean[4], float std[4]) {
    for (int i = 0; i < NAS_DATA_MAX_C; i++) {
        mean[i] = d->mean[i];
        std[i] = d->std[i];
    }
}

int nas_dataset_augment_default(const nas_dataset *d) {
    return d->augment_default;
}

/* Known datasets: where their files live and how to normalise them (the usual statistics of the
 * training sets, as torchvision recipes use them). */
typedef struct known_dataset {
    const char *name;
    const char *alias;
    const char *default_dir;
    const char *subdir; /* the directory the official archive unpacks to */
    int classes, channels;
    float mean[3], std[3];
    int augment;
} known_dataset;

static const known_dataset known[] = {
    {"fashion-mnist", "fmnist", "/usr/share/datasets/fashion-mnist", NULL, 10, 1,
     {0.2860f}, {0.3530f}, 0},
    {"mnist", NULL, "/usr/share/datasets/mnist", NULL, 10, 1, {0.1307f}, {0.3081f}, 0},
    {"cifar10", "cifar-10", "data/cifar10", "cifar-10-batches-bin", 10, 3,
     {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, 1},
    {"cifar100", "cifar-100", "data/cifar100", "cifar-100-binary", 100, 3,
     {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, 1},
};
static const int n_known = (int)(sizeof(known) / sizeof(known[0]));

static const known_dataset *find_known(const char *name) {
    for (int i = 0; i < n_known; i++) {
        if (strcmp(name, known[i].name) == 0 ||
            (known[i].alias != NULL && strcmp(name, known[i].alias) == 0)) {
            return &known[i];
        }
    }
    return NULL;
}

const char *nas_dataset_default_dir(const char *name) {
    const known_dataset *k = find_known(name);
    return k != NULL ? k->default_dir : NULL;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int dir_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* dir/base or dir/base.gz, whichever exists (into buf); 0 if neither. */
static int find_file(char *buf, size_t size, const char *dir, const char *base) {
    snprintf(buf, size, "%s/%s", dir, base);
    if (file_exists(buf)) {
        return 1;
    }
    snprintf(buf, size, "%s/%s.gz", dir, base);
    return file_exists(buf);
}

static nas_status open_idx(nas_ctx *ctx, const known_dataset *k, const char *dir, int test,
                           nas_dataset **out) {
    char images[1024], labels[1024];
    const char *prefix = test ? "t10k" : "train";
    char base[64];
    snprintf(base, sizeof(base), "%s-images-idx3-ubyte", prefix);
    if (!find_file(images, sizeof(images), dir, base)) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: no %s or %s.gz in '%s'%s", k->name, base, base, dir,
                        strcmp(k->name, "fashion-mnist") == 0
                            ? " (install Debian's dataset-fashion-mnist)"
                            : "");
    }
    snprintf(base, sizeof(base), "%s-labels-idx1-ubyte", prefix);
    if (!find_file(labels, sizeof(labels), dir, base)) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: no %s or %s.gz in '%s'", k->name, base, base, dir);
    }
    return nas_dataset_load_idx(ctx, images, labels, k->classes, out);
}

#define CIFAR_MAX_FILES 5

static nas_status open_cifar(nas_ctx *ctx, const known_dataset *k, const char *dir, int test,
                             nas_dataset **out) {
    char sub[1024];
    snprintf(sub, sizeof(sub), "%s/%s", dir, k->subdir);
    if (dir_exists(sub)) {
        dir = sub;
    }
    char paths[CIFAR_MAX_FILES][1024];
    const char *ptrs[CIFAR_MAX_FILES];
    int n = 0;
    if (k->classes == 100) {
        if (find_file(paths[0], sizeof(paths[0]), dir, test ? "test.bin" : "train.bin")) {
            n = 1;
        }
    } else if (test) {
        n = find_file(paths[0], sizeof(paths[0]), dir, "test_batch.bin");
    } else {
        /* data_batch_1.bin .. data_batch_5.bin, as many as are present in sequence */
        for (; n < CIFAR_MAX_FILES; n++) {
            char base[32];
            snprintf(base, sizeof(base), "data_batch_%d.bin", n + 1);
            if (!find_file(paths[n], sizeof(paths[n]), dir, base)) {
                break;
            }
        }
    }
    if (n == 0) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: no %s file in '%s' (expected %s)", k->name,
                        test ? "test" : "training", dir,
                        k->classes == 100 ? (test ? "test.bin" : "train.bin")
                                          : (test ? "test_batch.bin" : "data_batch_1.bin ..."));
    }
    for (int i = 0; i < n; i++) {
        ptrs[i] = paths[i];
    }
    return nas_dataset_load_cifar(ctx, ptrs, n, k->classes, out);
}

nas_status nas_dataset_open(nas_ctx *ctx, const char *name, const char *dir, int test,
                            nas_dataset **out) {
    NAS_CHECK_ARG(ctx, name != NULL && out != NULL);
    *out = NULL;
    const known_dataset *k = find_known(name);
    if (k == NULL) {
        return nas_fail(ctx, NAS_ERR_ARG,
                        "unknown dataset '%s' (known: fashion-mnist, mnist, cifar10, cifar100)",
                        name);
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = k->default_dir;
    }
    if (!dir_exists(dir)) {
        return nas_fail(ctx, NAS_ERR_IO, "%s: data directory '%s' does not exist", k->name, dir);
    }
    nas_status st = k->subdir == NULL ? open_idx(ctx, k, dir, test, out)
                                      : open_cifar(ctx, k, dir, test, out);
    if (st != NAS_OK) {
        return st;
    }
    nas_dataset *d = *out;
    if (d->c != k->channels) {
        nas_dataset_free(d);
        *out = NULL;
        return nas_fail(ctx, NAS_ERR_FORMAT, "%s: images have %d channels, expected %d", k->name,
                        d->c, k->channels);
    }
    snprintf(d->name, sizeof(d->name), "%s", k->name);
    for (int c = 0; c < k->channels; c++) {
        d->mean[c] = k->mean[c];
        d->std[c] = k->std[c];
    }
    d->augment_default = k->augment;
    return NAS_OK;
}

/* Resampling weights along one axis from `in` to `out` samples: area averaging when shrinking
 * (each output covers in/out inputs, fractional at the borders), bilinear with half-pixel
 * centres when growing. Output i takes taps [first[i], first[i] + count[i]) with weights
 * w[i * max_taps + t]. */
typedef struct axis_weights {
    int *first, *count;
    float *w;
    int max_taps;
} axis_weights;

static nas_status axis_make(nas_ctx *ctx, int in, int out, axis_weights *a) {
    const double scale = (double)in / out;
    a->max_taps = scale > 1.0 ? (int)ceil(scale) + 1 : 2;
    a->first = nas_calloc(ctx, (size_t)out, sizeof(int));
    a->count = nas_calloc(ctx, (size_t)out, sizeof(int));
    a->w = nas_calloc(ctx, (size_t)out * (size_t)a->max_taps, sizeof(float));
    if (a->first == NULL || a->count == NULL || a->w == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int i = 0; i < out; i++) {
        float *w = a->w + (size_t)i * (size_t)a->max_taps;
        if (scale >= 1.0) {
            const double lo = i * scale, hi = (i + 1) * scale;
            int j = (int)floor(lo);
            a->first[i] = j;
            for (; j < in && j < hi; j++) {
                const double cover = fmin(hi, j + 1.0) - fmax(lo, (double)j);
                if (cover > 1e-12) {
                    w[a->count[i]++] = (float)(cover / scale);
                } else if (a->count[i] == 0) {
                    a->first[i] = j + 1;
                }
            }
        } else {
            double src = (i + 0.5) * scale - 0.5;
            src = src < 0 ? 0 : src;
            int j = (int)floor(src);
            j = j > in - 1 ? in - 1 : j;
            const double frac = src - j;
            a->first[i] = j;
            w[0] = (float)(1.0 - frac);
            a->count[i] = 1;
            if (j + 1 < in) {
                w[1] = (float)frac;
                a->count[i] = 2;
            }
        }
    }
    return NAS_OK;
}

static void axis_free(nas_ctx *ctx, axis_weights *a, int out) {
    nas_free(ctx, a->first, a->first ? (size_t)out * sizeof(int) : 0);
    nas_free(ctx, a->count, a->count ? (size_t)out * sizeof(int) : 0);
    nas_free(ctx, a->w, a->w ? (size_t)out * (size_t)a->max_taps * sizeof(float) : 0);
}

/* One channel plane h x w -> r x r through a float row buffer tmp [h * r]. */
static void resize_plane(const uint8_t *src, int h, int w, uint8_t *dst, int r,
                         const axis_weights *ax, const axis_weights *ay, float *tmp) {
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < r; x++) {
            const float *wt = ax->w + (size_t)x * (size_t)ax->max_taps;
            float s = 0.0f;
            for (int t = 0; t < ax->count[x]; t++) {
                s += wt[t] * (float)src[y * w + ax->first[x] + t];
            }
            tmp[y * r + x] = s;
        }
    }
    for (int y = 0; y < r; y++) {
        const float *wt = ay->w + (size_t)y * (size_t)ay->max_taps;
        for (int x = 0; x < r; x++) {
            float s = 0.0f;
            for (int t = 0; t < ay->count[y]; t++) {
                s += wt[t] * tmp[(ay->first[y] + t) * r + x];
            }
            const float v = nearbyintf(s);
            dst[y * r + x] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    }
}

nas_status nas_dataset_resize(const nas_dataset *d, int r, nas_dataset **out) {
    NAS_CHECK_ARG(d->ctx, out != NULL);
    nas_ctx *ctx = d->ctx;
    *out = NULL;
    if (r < 1 || r > 1024) {
        return nas_fail(ctx, NAS_ERR_ARG, "resolution %d is outside 1..1024", r);
    }
    nas_dataset *o = NULL;
    nas_status st = nas_data_alloc(ctx, d->n, d->c, r, r, d->classes, &o);
    if (st != NAS_OK) {
        return st;
    }
    memcpy(o->name, d->name, sizeof(o->name));
    memcpy(o->mean, d->mean, sizeof(o->mean));
    memcpy(o->std, d->std, sizeof(o->std));
    o->augment_default = d->augment_default;
    memcpy(o->labels, d->labels, (size_t)d->n * sizeof(int32_t));
    axis_weights ax = {0}, ay = {0};
    float *tmp = nas_malloc(ctx, (size_t)d->h * (size_t)r * sizeof(float));
    if (tmp == NULL || axis_make(ctx, d->w, r, &ax) != NAS_OK ||
        axis_make(ctx, d->h, r, &ay) != NAS_OK) {
        st = nas_fail(ctx, NAS_ERR_NOMEM, "resize: out of memory");
    }
    const int64_t planes = d->n * d->c;
    for (int64_t p = 0; st == NAS_OK && p < planes; p++) {
        resize_plane(d->images + (size_t)p * (size_t)(d->h * d->w), d->h, d->w,
                     o->images + (size_t)p * (size_t)(r * r), r, &ax, &ay, tmp);
    }
    nas_free(ctx, tmp, tmp ? (size_t)d->h * (size_t)r * sizeof(float) : 0);
    axis_free(ctx, &ax, r);
    axis_free(ctx, &ay, r);
    if (st != NAS_OK) {
        nas_dataset_free(o);
        return st;
    }
    *out = o;
    return NAS_OK;
}

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

nas_status nas_dataset_split(nas_ctx *ctx, int64_t n, double valid_fraction, double data_fraction,
                             uint64_t seed, nas_index_list *train, nas_index_list *valid) {
    NAS_CHECK_ARG(ctx, n > 0 && train != NULL && valid != NULL);
    memset(train, 0, sizeof(*train));
    memset(valid, 0, sizeof(*valid));
    if (!(valid_fraction >= 0.0 && valid_fraction < 1.0)) {
        return nas_fail(ctx, NAS_ERR_ARG, "validation fraction %g is outside [0, 1)",
                        valid_fraction);
    }
    if (!(data_fraction > 0.0 && data_fraction <= 1.0)) {
        return nas_fail(ctx, NAS_ERR_ARG, "data fraction %g is outside (0, 1]", data_fraction);
    }
    const int64_t n_valid = (int64_t)llround(valid_fraction * (double)n);
    const int64_t n_rest = n - n_valid;
    int64_t n_train = (int64_t)llround(data_fraction * (double)n_rest);
    n_train = n_train < 1 ? 1 : n_train;
    if (n_rest < 1) {
        return nas_fail(ctx, NAS_ERR_ARG, "validation fraction %g leaves no training examples",
                        valid_fraction);
    }
    int64_t *perm = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    if (perm == NULL) {
        return NAS_ERR_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        perm[i] = i;
    }
    nas_rng r = nas_rng_make(seed, NAS_DATA_STREAM_SPLIT);
    nas_rng_shuffle(&r, perm, n);
    /* validation = the first n_valid of the permutation, training = a prefix of the rest (so a
     * smaller fraction is a subset of a larger one with the same seed) */
    train->idx = nas_malloc(ctx, (size_t)n_train * sizeof(int64_t));
    valid->idx = n_valid > 0 ? nas_malloc(ctx, (size_t)n_valid * sizeof(int64_t)) : NULL;
    if (train->idx == NULL || (n_valid > 0 && valid->idx == NULL)) {
        nas_free(ctx, perm, (size_t)n * sizeof(int64_t));
        nas_index_list_free(ctx, train);
        nas_index_list_free(ctx, valid);
        return NAS_ERR_NOMEM;
    }
    if (n_valid > 0) {
        memcpy(valid->idx, perm, (size_t)n_valid * sizeof(int64_t));
    }
    memcpy(train->idx, perm + n_valid, (size_t)n_train * sizeof(int64_t));
    valid->n = n_valid;
    train->n = n_train;
    nas_free(ctx, perm, (size_t)n * sizeof(int64_t));
    /* ascending order: the epoch shuffle then decides the order alone */
    qsort(train->idx, (size_t)train->n, sizeof(int64_t), cmp_i64);
    if (valid->n > 0) {
        qsort(valid->idx, (size_t)valid->n, sizeof(int64_t), cmp_i64);
    }
    return NAS_OK;
}

void nas_index_list_free(nas_ctx *ctx, nas_index_list *l) {
    if (l != NULL && l->idx != NULL) {
        nas_free(ctx, l->idx, (size_t)l->n * sizeof(int64_t));
    }
    if (l != NULL) {
        l->idx = NULL;
        l->n = 0;
    }
}
