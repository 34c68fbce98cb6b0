/* threads.c - thread count for OpenMP regions; OpenBLAS is pinned to one thread so the two
 * thread pools do not fight over the cores (PERF_NOTES: it halved PyTorch's step time). */
#include "core_int.h"

#include <cblas.h>

static int thread_count = 0;

void nas_set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) {
        n = omp_get_num_procs();
    }
    omp_set_num_threads(n);
#endif
    thread_count = n;
    openblas_set_num_threads(1);
}

int nas_get_threads(void) {
    return thread_count > 0 ? thread_count : nas_max_threads();
}
