/* test_layout_avx2.c - test_layout.c with oneDNN limited to AVX2: the blocked layouts are then
 * nChw8c (8 channels per block), the layout an AVX2-only machine runs. */
#define LAYOUT_TEST_AVX2 1
#include "test_layout.c"
