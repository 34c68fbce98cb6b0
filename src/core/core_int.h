/* core_int.h - internals of the core module shared by every module above it: the context
 * layout, argument checks and OpenMP helpers. Nothing here is public API. */
#ifndef NAS_CORE_INT_H
#define NAS_CORE_INT_H

#include "nascent.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#define NAS_ERRMSG_MAX 1024
#define NAS_SPARES     2 /* a model's parameter and gradient blocks */

struct nas_ctx {
    nas_alloc_fn alloc; /* every allocation of the library goes through here */
    void *alloc_user;
    nas_status last_status;
    char errmsg[NAS_ERRMSG_MAX];
    void *backend;      /* the conv backend's cache (oneDNN engine, primitives); owned */
    void (*backend_free)(nas_ctx *ctx, void *backend);
    /* Large blocks freed for reuse (nas_keep_spare): a parameter block per architecture scored
     * otherwise costs fresh pages each time. Owned; NULL where empty. */
    void *spare[NAS_SPARES];
    size_t spare_bytes[NAS_SPARES];
};

/* Return NAS_ERR_ARG with a message naming the failed condition and function. */
#define NAS_CHECK_ARG(ctx, cond)                                                                   \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return nas_fail((ctx), NAS_ERR_ARG, "%s: bad argument: %s", __func__, #cond);          \
    } while (0)

nas_status nas_vfail(nas_ctx *ctx, nas_status code, const char *fmt, va_list ap);

/* Ask for transparent huge pages over a large block's aligned interior (arenas; a hint only). */
void nas_mem_advise_large(void *ptr, size_t bytes);
/* Keep a freed block of `bytes` (allocated with nas_malloc) for reuse instead of freeing it: the
 * context then owns it (it may free a smaller spare to make room, or the block itself when it is
 * below NAS_SPARE_MIN). */
void nas_keep_spare(nas_ctx *ctx, void *ptr, size_t bytes);
/* The smallest kept block of at least `bytes` (its size in *got), taken out of the context's
 * keeping; NULL when none fits. Its contents are stale. */
void *nas_take_spare(nas_ctx *ctx, size_t bytes, size_t *got);

/* OpenMP: parallel loops only when compiled with OpenMP. Reductions are done per thread into
 * fixed slots and combined in thread order, so results depend only on the thread count. */
/* Loops over fewer elements than this run on one thread: waking the team costs more than the
 * work (batch-1 inference, the late low-resolution stages, small parameter tensors). Results do
 * not depend on it. */
#define NAS_PAR_MIN 32768

/* An AVX-512 copy of a function beside the x86-64-v3 one the build makes, picked at load time
 * (batch-norm statistics: double-precision sums bound by AVX2's 4 lanes; random fills). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NAS_AVX512_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define NAS_AVX512_CLONES
#endif

#ifdef _OPENMP
#include <omp.h>
#define NAS_PRAGMA(text)    _Pragma(#text)
#define NAS_OMP_FOR_IF(cond) NAS_PRAGMA(omp parallel for schedule(static) if (parallel : cond))
#define NAS_OMP_FOR        _Pragma("omp parallel for schedule(static)")
/* for iterations of very different cost (one per graph node) */
#define NAS_OMP_FOR_DYNAMIC_IF(cond)                                                               \
    NAS_PRAGMA(omp parallel for schedule(dynamic, 4) if (parallel : cond))
#define NAS_OMP_FOR_COLLAPSE2 _Pragma("omp parallel for collapse(2) schedule(static)")
#define NAS_OMP_PARALLEL   _Pragma("omp parallel")
static inline int nas_thread_id(void) {
    return omp_get_thread_num();
}
static inline int nas_thread_count(void) {
    return omp_get_num_threads();
}
static inline int nas_max_threads(void) {
    return omp_get_max_threads();
}
#else
#define NAS_OMP_FOR_IF(cond)
#define NAS_OMP_FOR
#define NAS_OMP_FOR_DYNAMIC_IF(cond)
#define NAS_OMP_FOR_COLLAPSE2
#define NAS_OMP_PARALLEL
static inline int nas_thread_id(void) {
    return 0;
}
static inline int nas_thread_count(void) {
    return 1;
}
static inline int nas_max_threads(void) {
    return 1;
}
#endif

/* Split [0, n) into `parts` contiguous ranges; range `i` is [*begin, *end). */
static inline void nas_split_range(int64_t n, int parts, int i, int64_t *begin, int64_t *end) {
    const int64_t base = n / parts, extra = n % parts;
    *begin = i * base + (i < extra ? i : extra);
    *end = *begin + base + (i < extra ? 1 : 0);
}

static inline int64_t nas_min_i64(int64_t a, int64_t b) {
    return a < b ? a : b;
}
static inline int64_t nas_max_i64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

/* Philox4x32-10 block: 4 random words from (key, counter). */
void nas_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* The blocks of counters first .. first + 7: out[w][j] = word w of block first + j. */
void nas_philox4x32_x8(uint64_t key, uint64_t counter_hi, uint64_t first, uint32_t out[4][8]);
/* The same for the 16 counters first .. first + 15 (AVX-512 where the machine has it). */
void nas_philox4x32_x16(uint64_t key, uint64_t counter_hi, uint64_t first, uint32_t out[4][16]);

#endif
