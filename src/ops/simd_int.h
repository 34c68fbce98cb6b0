/* simd_int.h - loop pragmas for the element-wise and reduction kernels of the op families.
 * The release build is -O2, where GCC's "very cheap" vectoriser skips most loops whose trip
 * count is not a known multiple of the vector width; `omp simd` asks for vectorisation
 * explicitly (and states the buffers of one loop do not overlap). A simd reduction adds its
 * vector lanes in a fixed order chosen at compile time, so results still depend only on the
 * binary and the thread count. Without OpenMP they expand to nothing. */
#ifndef NAS_SIMD_INT_H
#define NAS_SIMD_INT_H

#include "core/core_int.h"

#ifdef _OPENMP
#define NAS_SIMD            _Pragma("omp simd")
#define NAS_SIMD_SUM2(a, b) NAS_PRAGMA(omp simd reduction(+ : a, b))
#define NAS_SIMD_SUM1(a)    NAS_PRAGMA(omp simd reduction(+ : a))
#define NAS_OMP_FOR_SIMD    _Pragma("omp parallel for simd schedule(simd : static)")
#define NAS_OMP_FOR_SIMD_IF(cond)                                                                  \
    NAS_PRAGMA(omp parallel for simd schedule(simd : static) if (parallel : cond))
#else
#define NAS_SIMD
#define NAS_SIMD_SUM2(a, b)
#define NAS_SIMD_SUM1(a)
#define NAS_OMP_FOR_SIMD
#define NAS_OMP_FOR_SIMD_IF(cond)
#endif

#endif
