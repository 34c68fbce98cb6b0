/* data_int.h - internals of the data module: the in-memory dataset (uint8 images, int32 labels)
 * shared by the file readers (idx.c, cifar.c), the dataset operations (dataset.c) and the batch
 * loader (loader.c). */
#ifndef NAS_DATA_INT_H
#define NAS_DATA_INT_H

#include "core/core_int.h"

#define NAS_DATA_NAME_MAX 32
#define NAS_DATA_MAX_C    4

/* Philox streams of the data pipeline (the key is the run's seed). Each use gets its own range
 * so shuffles, augmentation and splits never share random numbers. */
#define NAS_DATA_STREAM_SPLIT   0x5350ULL               /* train/validation split */
#define NAS_DATA_STREAM_SHUFFLE (1ULL << 40)            /* + epoch */
#define NAS_DATA_STREAM_AUGMENT (2ULL << 40)            /* + epoch; counter = position */

struct nas_dataset {
    nas_ctx *ctx;
    char name[NAS_DATA_NAME_MAX]; /* "fashion-mnist", "cifar10", ... or "" */
    int64_t n;
    int c, h, w;
    int classes;
    uint8_t *images; /* [n, c, h, w] */
    int32_t *labels; /* [n] */
    float mean[NAS_DATA_MAX_C], std[NAS_DATA_MAX_C]; /* default normalisation of pixel/255 */
    int augment_default; /* random crop (pad 4) + flip by default (CIFAR) */
};

/* A whole file in memory, gunzipped when it is gzip (zlib reads plain files unchanged). */
typedef struct nas_data_file {
    uint8_t *bytes;
    size_t size, cap;
} nas_data_file;

nas_status nas_data_read_file(nas_ctx *ctx, const char *path, nas_data_file *out);
void nas_data_file_free(nas_ctx *ctx, nas_data_file *f);

/* An empty dataset with room for n examples of c x h x w (images and labels allocated). */
nas_status nas_data_alloc(nas_ctx *ctx, int64_t n, int c, int h, int w, int classes,
                          nas_dataset **out);

#endif
