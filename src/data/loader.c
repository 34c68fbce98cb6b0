/* loader.c - minibatches for training and evaluation: per-epoch shuffling, random crop with
 * padding, horizontal flip and normalisation into float NCHW batches, optionally assembled on a
 * background thread while the caller trains on the previous batch.
 *
 * Reproducibility: the order of epoch e is a Philox shuffle under (seed, SHUFFLE + e) and the
 * augmentation of the example at position i of epoch e uses draw i of stream (seed, AUGMENT + e).
 * So every batch is a pure function of (seed, epoch, batch index): prefetching on or off, a
 * resumed run and an uninterrupted one all see the same batches.
 *
 * Threading: two batch slots. The worker fills batch k into slot k % 2 once batch k - 2 has been
 * released (the caller releases a batch by asking for the next one); it never allocates and never
 * touches the context, which belongs to the caller's thread. */
#include "data_int.h"

#include <pthread.h>

#define N_SLOTS 2

struct nas_loader {
    nas_ctx *ctx;
    const nas_dataset *d;
    nas_data_opts opts;
    int64_t *base;  /* the examples this loader draws from, [n] */
    int64_t *order; /* this epoch's order, [n] */
    int64_t n;
    int batch;
    int64_t n_batches;
    int64_t epoch;
    size_t image_floats; /* c * h * w */
    float lut[NAS_DATA_MAX_C][256]; /* normalised value of each pixel byte per channel */

    float *x[N_SLOTS];
    int32_t *y[N_SLOTS];
    int64_t slot_batch[N_SLOTS]; /* which batch the slot holds, -1 if none */
    int slot_ready[N_SLOTS];

    /* thread state (under mu) */
    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, active, busy;
    int64_t claimed;  /* batches the worker has started */
    int64_t consumed; /* batches handed to the caller */
    int64_t released; /* batches the caller is done with */
};

int64_t nas_loader_batches(const nas_loader *l) {
    return l->n_batches;
}

int64_t nas_loader_size(const nas_loader *l) {
    return l->n;
}

static int64_t batch_count(const nas_loader *l, int64_t k) {
    const int64_t left = l->n - k * l->batch;
    return left < l->batch ? left : l->batch;
}

/* Normalise one image with crop offset (dy, dx) into the padded frame and optional flip. */
static void copy_image(const nas_loader *l, const uint8_t *src, float *dst, int dy, int dx,
                       int flip) {
    const nas_dataset *d = l->d;
    const int H = d->h, W = d->w, p = l->opts.pad_crop;
    for (int c = 0; c < d->c; c++) {
        const float *lut = l->lut[c];
        const uint8_t *s = src + (size_t)c * (size_t)(H * W);
        float *o = dst + (size_t)c * (size_t)(H * W);
        if (p == 0 && !flip) {
            for (int i = 0; i < H * W; i++) {
                o[i] = lut[s[i]];
            }
            continue;
        }
        for (int y = 0; y < H; y++) {
            const int sy = y + dy - p;
            for (int x = 0; x < W; x++) {
                const int sx = (flip ? W - 1 - x : x) + dx - p;
                const int inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
                o[y * W + x] = lut[inside ? s[sy * W + sx] : 0]; /* padding is black, as torchvision */
            }
        }
    }
}

/* Batch k of the current epoch into slot s. Pure function of (seed, epoch, k). */
static void fill_batch(nas_loader *l, int64_t k, int s) {
    const int64_t cnt = batch_count(l, k);
    const int p = l->opts.pad_crop;
    const int augment = p > 0 || l->opts.flip;
    for (int64_t j = 0; j < cnt; j++) {
        const int64_t pos = k * l->batch + j;
        const int64_t i = l->order[pos];
        int dy = p, dx = p, flip = 0;
        if (augment) {
            nas_rng r = nas_rng_make(l->opts.seed, NAS_DATA_STREAM_AUGMENT + (uint64_t)l->epoch);
            r.counter = (uint64_t)pos;
            const uint64_t u = nas_rng_u64(&r);
            if (p > 0) {
                dy = (int)((u & 0xffff) % (uint64_t)(2 * p + 1));
                dx = (int)(((u >> 16) & 0xffff) % (uint64_t)(2 * p + 1));
            }
            flip = l->opts.flip ? (int)((u >> 32) & 1) : 0;
        }
        copy_image(l, nas_dataset_image(l->d, i), l->x[s] + (size_t)j * l->image_floats, dy, dx,
                   flip);
        l->y[s][j] = l->d->labels[i];
    }
}

static void *worker_main(void *arg) {
    nas_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop &&
               !(l->active && l->claimed < l->n_batches && l->claimed < l->released + N_SLOTS)) {
            pthread_cond_wait(&l->cv, &l->mu);
        }
        if (l->stop) {
            break;
        }
        const int64_t k = l->claimed++;
        const int s = (int)(k % N_SLOTS);
        l->busy = 1;
        pthread_mutex_unlock(&l->mu);
        fill_batch(l, k, s);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        l->slot_batch[s] = k;
        l->slot_ready[s] = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void free_buffers(nas_loader *l) {
    const size_t xb = (size_t)l->batch * l->image_floats * sizeof(float);
    for (int s = 0; s < N_SLOTS; s++) {
        nas_free(l->ctx, l->x[s], l->x[s] ? xb : 0);
        nas_free(l->ctx, l->y[s], l->y[s] ? (size_t)l->batch * sizeof(int32_t) : 0);
    }
    nas_free(l->ctx, l->base, l->base ? (size_t)l->n * sizeof(int64_t) : 0);
    nas_free(l->ctx, l->order, l->order ? (size_t)l->n * sizeof(int64_t) : 0);
}

void nas_loader_free(nas_loader *l) {
    if (l == NULL) {
        return;
    }
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    free_buffers(l);
    nas_free(l->ctx, l, sizeof(nas_loader));
}

static nas_status check_opts(nas_ctx *ctx, const nas_dataset *d, const nas_data_opts *o) {
    for (int c = 0; c < d->c; c++) {
        if (!(o->std[c] > 0.0f) || o->mean[c] != o->mean[c]) {
            return nas_fail(ctx, NAS_ERR_ARG, "loader: bad normalisation mean %g std %g (channel %d)",
                            (double)o->mean[c], (double)o->std[c], c);
        }
    }
    if (o->pad_crop < 0 || o->pad_crop > d->h || o->pad_crop > d->w) {
        return nas_fail(ctx, NAS_ERR_ARG, "loader: crop padding %d does not fit %dx%d images",
                        o->pad_crop, d->h, d->w);
    }
    return NAS_OK;
}

void nas_data_opts_default(const nas_dataset *d, nas_data_opts *o) {
    memset(o, 0, sizeof(*o));
    for (int c = 0; c < NAS_DATA_MAX_C; c++) {
        o->mean[c] = d->mean[c];
        o->std[c] = d->std[c];
    }
    o->prefetch = 1;
}

nas_status nas_loader_new(const nas_dataset *d, const int64_t *idx, int64_t n, int batch,
                          const nas_data_opts *opts, nas_loader **out) {
    nas_ctx *ctx = d->ctx;
    NAS_CHECK_ARG(ctx, opts != NULL && out != NULL && batch > 0);
    *out = NULL;
    if (idx == NULL) {
        n = d->n;
    }
    if (n <= 0) {
        return nas_fail(ctx, NAS_ERR_ARG, "loader: no examples to draw from");
    }
    nas_status st = check_opts(ctx, d, opts);
    if (st != NAS_OK) {
        return st;
    }
    nas_loader *l = nas_calloc(ctx, 1, sizeof(nas_loader));
    if (l == NULL) {
        return NAS_ERR_NOMEM;
    }
    l->ctx = ctx;
    l->d = d;
    l->opts = *opts;
    l->n = n;
    l->batch = batch;
    l->image_floats = (size_t)d->c * (size_t)d->h * (size_t)d->w;
    l->n_batches = opts->drop_last ? n / batch : (n + batch - 1) / batch;
    if (l->n_batches == 0) {
        nas_free(ctx, l, sizeof(nas_loader));
        return nas_fail(ctx, NAS_ERR_ARG,
                        "loader: %lld examples make no full batch of %d (drop_last)",
                        (long long)n, batch);
    }
    l->base = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    l->order = nas_malloc(ctx, (size_t)n * sizeof(int64_t));
    for (int s = 0; s < N_SLOTS; s++) {
        l->x[s] = nas_malloc(ctx, (size_t)batch * l->image_floats * sizeof(float));
        l->y[s] = nas_malloc(ctx, (size_t)batch * sizeof(int32_t));
        l->slot_batch[s] = -1;
    }
    if (l->base == NULL || l->order == NULL || l->x[0] == NULL || l->x[1] == NULL ||
        l->y[0] == NULL || l->y[1] == NULL) {
        free_buffers(l);
        nas_free(ctx, l, sizeof(nas_loader));
        return nas_fail(ctx, NAS_ERR_NOMEM, "loader: out of memory for batches of %d", batch);
    }
    for (int64_t i = 0; i < n; i++) {
        l->base[i] = idx != NULL ? idx[i] : i;
        if (l->base[i] < 0 || l->base[i] >= d->n) {
            const int64_t bad = l->base[i];
            free_buffers(l);
            nas_free(ctx, l, sizeof(nas_loader));
            return nas_fail(ctx, NAS_ERR_ARG, "loader: index %lld at %lld is outside the dataset",
                            (long long)bad, (long long)i);
        }
    }
    memcpy(l->order, l->base, (size_t)n * sizeof(int64_t));
    for (int c = 0; c < d->c; c++) {
        for (int v = 0; v < 256; v++) {
            /* the same float operations as (x / 255 - mean) / std in PyTorch */
            l->lut[c][v] = ((float)v / 255.0f - opts->mean[c]) / opts->std[c];
        }
    }
    if (opts->prefetch) {
        if (pthread_mutex_init(&l->mu, NULL) != 0) {
            free_buffers(l);
            nas_free(ctx, l, sizeof(nas_loader));
            return nas_fail(ctx, NAS_ERR_BACKEND, "loader: pthread_mutex_init failed");
        }
        pthread_cond_init(&l->cv, NULL);
        if (pthread_create(&l->thread, NULL, worker_main, l) != 0) {
            pthread_cond_destroy(&l->cv);
            pthread_mutex_destroy(&l->mu);
            free_buffers(l);
            nas_free(ctx, l, sizeof(nas_loader));
            return nas_fail(ctx, NAS_ERR_BACKEND, "loader: cannot start the prefetch thread");
        }
        l->threaded = 1;
    }
    l->epoch = -1;
    *out = l;
    return NAS_OK;
}

void nas_loader_start_epoch(nas_loader *l, int64_t epoch) {
    if (l->threaded) {
        /* stop the worker from claiming more and wait for the batch it is filling */
        pthread_mutex_lock(&l->mu);
        l->active = 0;
        while (l->busy) {
            pthread_cond_wait(&l->cv, &l->mu);
        }
        pthread_mutex_unlock(&l->mu);
    }
    memcpy(l->order, l->base, (size_t)l->n * sizeof(int64_t));
    if (l->opts.shuffle) {
        nas_rng r = nas_rng_make(l->opts.seed, NAS_DATA_STREAM_SHUFFLE + (uint64_t)epoch);
        nas_rng_shuffle(&r, l->order, l->n);
    }
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
    }
    l->epoch = epoch;
    l->claimed = l->consumed = l->released = 0;
    for (int s = 0; s < N_SLOTS; s++) {
        l->slot_ready[s] = 0;
        l->slot_batch[s] = -1;
    }
    if (l->threaded) {
        l->active = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

int64_t nas_loader_next(nas_loader *l, const float **x, const int32_t **y) {
    if (l->epoch < 0) {
        nas_loader_start_epoch(l, 0);
    }
    if (!l->threaded) {
        if (l->consumed >= l->n_batches) {
            return 0;
        }
        const int64_t k = l->consumed++;
        fill_batch(l, k, 0);
        *x = l->x[0];
        *y = l->y[0];
        return batch_count(l, k);
    }
    pthread_mutex_lock(&l->mu);
    l->released = l->consumed;
    pthread_cond_broadcast(&l->cv);
    if (l->consumed >= l->n_batches) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    const int64_t k = l->consumed;
    const int s = (int)(k % N_SLOTS);
    while (!(l->slot_ready[s] && l->slot_batch[s] == k)) {
        pthread_cond_wait(&l->cv, &l->mu);
    }
    l->slot_ready[s] = 0;
    l->consumed++;
    pthread_mutex_unlock(&l->mu);
    *x = l->x[s];
    *y = l->y[s];
    return batch_count(l, k);
}
