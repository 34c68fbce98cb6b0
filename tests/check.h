/* check.h - the tiny test harness: CHECK records a failed condition with a message; RUN_TEST runs
 * one test function and counts it passed when none of its CHECKs failed. check_report prints the
 * line tests/run_tests.sh sums up ("RESULT name passed=P failed=F"). */
#ifndef NAS_CHECK_H
#define NAS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_tests_passed, check_tests_failed, check_failures_now;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (check_failures_now < 20) {                                                         \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                    \
                fprintf(stderr, __VA_ARGS__);                                                      \
                fputc('\n', stderr);                                                               \
            }                                                                                      \
            check_failures_now++;                                                                  \
        }                                                                                          \
    } while (0)

#define RUN_TEST(fn)                                                                               \
    do {                                                                                           \
        check_failures_now = 0;                                                                    \
        fn();                                                                                      \
        if (check_failures_now == 0) {                                                             \
            check_tests_passed++;                                                                  \
            printf("ok   %s\n", #fn);                                                              \
        } else {                                                                                   \
            check_tests_failed++;                                                                  \
            printf("FAIL %s (%d failed checks)\n", #fn, check_failures_now);                       \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

/* An allocator for nas_ctx_new_with_allocator that counts its calls (tests of "a steady-state
 * step does not allocate"). user points to a check_alloc_counter. */
typedef struct check_alloc_counter {
    long calls;
} check_alloc_counter;

static inline void *check_counting_alloc(void *user, void *ptr, size_t old_size, size_t new_size) {
    __atomic_add_fetch(&((check_alloc_counter *)user)->calls, 1, __ATOMIC_SEQ_CST);
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, (new_size + 63) & ~(size_t)63) != 0) {
        return NULL;
    }
    if (ptr != NULL) {
        memcpy(p, ptr, old_size < new_size ? old_size : new_size);
        free(ptr);
    }
    return p;
}

/* max |a - b| / max(max |b|, floor): two arrays of values of one kind compared as a whole (the
 * floor keeps near-zero references from turning rounding into large relative errors). */
static inline double check_normwise_err(const float *a, const float *b, long long n,
                                        double floor) {
    double d = 0.0, m = floor;
    for (long long i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

static inline int check_report(const char *suite) {
    printf("RESULT %s passed=%d failed=%d\n", suite, check_tests_passed, check_tests_failed);
    return check_tests_failed == 0 ? 0 : 1;
}

#endif
