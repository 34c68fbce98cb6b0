/* layout_int.h - blocked layouts inside the ops (layout.c decides which nodes are blocked).
 *
 * A tensor [N, C, H, W] in nChw{B}c stores element (n, c, p), p = h W + w, at
 * ((n C / B + c / B) P + p) B + c % B with P = H W: tile t = n C / B + c / B, the B channels
 * c0 = (t mod C / B) B .. c0 + B - 1 of example n, is [P][B] at offset t B P, its B channels in
 * the vector lanes of each pixel. Kernels walk the tiles and keep B a constant (8 or 16) by
 * calling an always-inlined per-tile body from a switch on B. */
#ifndef NAS_LAYOUT_INT_H
#define NAS_LAYOUT_INT_H

#include "ops_int.h"

/* The largest block size oneDNN uses for f32 activations (AVX-512). */
#define NAS_BLOCK_MAX 16

#define NAS_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Blocked node planning (layout.c): sets n->block on every node (0 unless blocked layouts are
 * on and the node qualifies) and sizes the conv nodes' aux. Called by the planner before it
 * places buffers. */
nas_status nas_layout_plan(nas_graph *g);

#endif
