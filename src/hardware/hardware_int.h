/* hardware_int.h - internals of the hardware module: latency measurement, per-layer lookup
 * tables and latency predictors. */
#ifndef NAS_HARDWARE_INT_H
#define NAS_HARDWARE_INT_H

#include "nn/nn_int.h"

/* Median of x[0..n) (sorts x in place). */
double nas_hw_median(double *x, int64_t n);
/* The q-quantile (0..1) of sorted x[0..n), linear interpolation. */
double nas_hw_quantile_sorted(const double *x, int64_t n, double q);

#endif
