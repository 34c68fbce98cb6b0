/* ctx.c - the context: error messages and the allocator hook every allocation goes through. */
#include "core_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

/* Default allocator: 64-byte aligned so SIMD kernels and oneDNN get aligned buffers. */
static void *default_alloc(void *user, void *ptr, size_t old_size, size_t new_size) {
    (void)user;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    void *p = NULL;
    const size_t rounded = (new_size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded) != 0) {
        return NULL;
    }
    if (ptr != NULL) {
        memcpy(p, ptr, old_size < new_size ? old_size : new_size);
        free(ptr);
    }
    return p;
}

nas_ctx *nas_ctx_new_with_allocator(nas_alloc_fn fn, void *user) {
    if (fn == NULL) {
        return NULL;
    }
    nas_ctx *ctx = fn(user, NULL, 0, sizeof(nas_ctx));
    if (ctx == NULL) {
        return NULL;
    }
    memset(ctx, 0, sizeof(*ctx));
    ctx->alloc = fn;
    ctx->alloc_user = user;
    return ctx;
}

nas_ctx *nas_ctx_new(void) {
    return nas_ctx_new_with_allocator(default_alloc, NULL);
}

void nas_ctx_free(nas_ctx *ctx) {
    if (ctx == NULL) {
        return;
    }
    for (int i = 0; i < NAS_SPARES; i++) {
        nas_free(ctx, ctx->spare[i], ctx->spare_bytes[i]);
    }
    if (ctx->backend_free != NULL) {
        ctx->backend_free(ctx, ctx->backend);
    }
    ctx->alloc(ctx->alloc_user, ctx, sizeof(nas_ctx), 0);
}

const char *nas_errmsg(const nas_ctx *ctx) {
    return ctx == NULL ? "no context" : ctx->errmsg;
}

void nas_clear_error(nas_ctx *ctx) {
    if (ctx != NULL) {
        ctx->errmsg[0] = '\0';
        ctx->last_status = NAS_OK;
    }
}

const char *nas_status_name(nas_status st) {
    switch (st) {
        case NAS_OK: return "NAS_OK";
        case NAS_ERR_ARG: return "NAS_ERR_ARG";
        case NAS_ERR_NOMEM: return "NAS_ERR_NOMEM";
        case NAS_ERR_IO: return "NAS_ERR_IO";
        case NAS_ERR_FORMAT: return "NAS_ERR_FORMAT";
        case NAS_ERR_SHAPE: return "NAS_ERR_SHAPE";
        case NAS_ERR_NUMERIC: return "NAS_ERR_NUMERIC";
        case NAS_ERR_UNSUPPORTED: return "NAS_ERR_UNSUPPORTED";
        case NAS_ERR_INFEASIBLE: return "NAS_ERR_INFEASIBLE";
        case NAS_ERR_STATE: return "NAS_ERR_STATE";
        case NAS_ERR_BACKEND: return "NAS_ERR_BACKEND";
        case NAS_ERR_MISMATCH: return "NAS_ERR_MISMATCH";
    }
    return "NAS_ERR_UNKNOWN";
}

nas_status nas_vfail(nas_ctx *ctx, nas_status code, const char *fmt, va_list ap) {
    if (ctx != NULL) {
        vsnprintf(ctx->errmsg, sizeof(ctx->errmsg), fmt, ap);
        ctx->last_status = code;
    }
    return code;
}

nas_status nas_fail(nas_ctx *ctx, nas_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    nas_vfail(ctx, code, fmt, ap);
    va_end(ap);
    return code;
}

void *nas_malloc(nas_ctx *ctx, size_t size) {
    if (size == 0) {
        size = 1;
    }
    void *p = ctx->alloc(ctx->alloc_user, NULL, 0, size);
    if (p == NULL) {
        nas_fail(ctx, NAS_ERR_NOMEM, "out of memory allocating %zu bytes", size);
    }
    return p;
}

void *nas_calloc(nas_ctx *ctx, size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) {
        nas_fail(ctx, NAS_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = nas_malloc(ctx, count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}

void *nas_realloc(nas_ctx *ctx, void *ptr, size_t old_size, size_t new_size) {
    if (new_size == 0) {
        new_size = 1;
    }
    void *p = ctx->alloc(ctx->alloc_user, ptr, ptr == NULL ? 0 : old_size, new_size);
    if (p == NULL) {
        nas_fail(ctx, NAS_ERR_NOMEM, "out of memory growing %zu to %zu bytes", old_size, new_size);
    }
    return p;
}

void nas_free(nas_ctx *ctx, void *ptr, size_t size) {
    if (ptr != NULL) {
        ctx->alloc(ctx->alloc_user, ptr, size, 0);
    }
}

/* Transparent huge pages for the 2 MiB-aligned interior of a large block. A graph's arena is
 * hundreds of MB whose first touch otherwise costs one 4 KiB page fault each (~400,000 for a
 * batch-64 NB201 backward: seconds of system time); with huge pages it is ~800 faults, and the
 * TLB covers the working set. Only a hint: the kernel may ignore it, and it changes no value. */
void nas_mem_advise_large(void *ptr, size_t bytes) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    const uintptr_t begin = ((uintptr_t)ptr + huge - 1) & ~(huge - 1);
    const uintptr_t end = ((uintptr_t)ptr + bytes) & ~(huge - 1);
    if (ptr != NULL && end > begin) {
        (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE);
    }
#else
    (void)ptr;
    (void)bytes;
#endif
}

enum { NAS_SPARE_MIN = 1 << 20 }; /* smaller blocks come back cheaply from malloc */

void nas_keep_spare(nas_ctx *ctx, void *ptr, size_t bytes) {
    if (ptr == NULL) {
        return;
    }
    int slot = -1;
    for (int i = 0; i < NAS_SPARES && bytes >= NAS_SPARE_MIN; i++) {
        if (ctx->spare[i] == NULL) {
            slot = i;
            break;
        }
        const int smaller = ctx->spare_bytes[i] < bytes;
        if (smaller && (slot < 0 || ctx->spare_bytes[i] < ctx->spare_bytes[slot])) {
            slot = i; /* the smallest spare smaller than this block */
        }
    }
    if (slot < 0) {
        nas_free(ctx, ptr, bytes);
        return;
    }
    nas_free(ctx, ctx->spare[slot], ctx->spare_bytes[slot]);
    ctx->spare[slot] = ptr;
    ctx->spare_bytes[slot] = bytes;
}

void *nas_take_spare(nas_ctx *ctx, size_t bytes, size_t *got) {
    int best = -1;
    for (int i = 0; i < NAS_SPARES; i++) {
        if (ctx->spare[i] != NULL && ctx->spare_bytes[i] >= bytes &&
            (best < 0 || ctx->spare_bytes[i] < ctx->spare_bytes[best])) {
            best = i;
        }
    }
    if (best < 0) {
        return NULL;
    }
    void *p = ctx->spare[best];
    *got = ctx->spare_bytes[best];
    ctx->spare[best] = NULL;
    ctx->spare_bytes[best] = 0;
    return p;
}

char *nas_strdup(nas_ctx *ctx, const char *s) {
    const size_t n = strlen(s) + 1;
    char *p = nas_malloc(ctx, n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

static void default_abort(const char *file, int line, const char *msg) {
    fprintf(stderr, "nascent: internal error at %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    abort();
}

static nas_abort_fn abort_handler = default_abort;

void nas_set_abort_handler(nas_abort_fn fn) {
    abort_handler = fn != NULL ? fn : default_abort;
}

void nas_abort(const char *file, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    abort_handler(file, line, msg);
    abort(); /* a handler that returns must not resume broken code */
}

double nas_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
