/* test_rng.c - the 8- and 16-lane Philox paths (nas_philox4x32_x8, and nas_philox4x32_x16, used
 * by the uniform and normal fills: AVX-512 where the machine has it, else two 8-lane calls)
 * against the one-block-at-a-time twin nas_philox4x32: random keys, streams and counters,
 * including counters whose low word wraps inside the group; the fills against a scalar
 * re-implementation of their documented formula on odd lengths and starting counters; the
 * draws of a fill split in two calls equal one call; the known-answer test vectors of Philox4x32-10
 * (Random123's kat_vectors) pin the scalar twin itself. */
#include "check.h"
#include "core/core_int.h"
#include "nascent.h"

#include <math.h>
#include <stdlib.h>

static double u53_of(uint32_t hi, uint32_t lo) {
    return (double)((((uint64_t)hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

/* Random123 kat_vectors, philox4x32 10 rounds: counter (c0..c3), key (k0, k1) -> output. */
static void test_philox_known_answers(void) {
    uint32_t out[4];
    nas_philox4x32(0, 0, 0, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu &&
              out[3] == 0x9b00dbd8u,
          "zero vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    nas_philox4x32(0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull, out);
    CHECK(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u &&
              out[3] == 0x6d5451fdu,
          "all-ones vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    /* counter 243f6a88 85a308d3 13198a2e 03707344, key a4093822 299f31d0 */
    nas_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u &&
              out[3] == 0x24126ea1u,
          "pi vector: %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
}

/* Lanes [w][j] (row stride `stride`) equal the scalar blocks first + j, j < count. */
static int lanes_match(const uint32_t *lanes, int stride, int count, uint64_t key, uint64_t stream,
                       uint64_t first) {
    int same = 1;
    for (int j = 0; j < count; j++) {
        uint32_t b[4];
        nas_philox4x32(key, stream, first + (uint64_t)j, b);
        for (int w = 0; w < 4; w++) {
            same &= lanes[w * stride + j] == b[w];
        }
    }
    return same;
}

static void test_lanes_match_scalar(void) {
    srand(7);
    for (int t = 0; t < 2000; t++) {
        const uint64_t key = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        const uint64_t stream = ((uint64_t)rand() << 31) ^ (uint64_t)rand();
        uint64_t first = ((uint64_t)rand() << 32) ^ (uint64_t)rand();
        if (t % 4 == 0) {
            first = (first | 0xffffffffull) - (uint64_t)(rand() % 16); /* low word wraps */
        }
        if (t == 1) {
            first = UINT64_MAX - 3; /* the 64-bit counter itself wraps */
        }
        uint32_t lanes8[4][8], lanes16[4][16];
        nas_philox4x32_x8(key, stream, first, lanes8);
        nas_philox4x32_x16(key, stream, first, lanes16);
        CHECK(lanes_match(&lanes8[0][0], 8, 8, key, stream, first) &&
                  lanes_match(&lanes16[0][0], 16, 16, key, stream, first),
              "case %d: key %llx stream %llx first %llx", t, (unsigned long long)key,
              (unsigned long long)stream, (unsigned long long)first);
    }
}

static void test_fills_match_formula(void) {
    const int64_t lengths[] = {1, 7, 9, 31, 1001, 40003};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const int64_t n = lengths[li];
        float *u = malloc((size_t)n * sizeof(float)), *z = malloc((size_t)n * sizeof(float));
        nas_rng ru = nas_rng_make(11 + (uint64_t)li, 5), rz = nas_rng_make(3, 9 + (uint64_t)li);
        ru.counter = 0xfffffffdull + 13 * (uint64_t)li; /* odd start across the low-word wrap */
        rz.counter = 5 * (uint64_t)li;
        const uint64_t cu = ru.counter, cz = rz.counter;
        nas_rng_fill_uniform(&ru, u, n, -0.5f, 2.0f);
        nas_rng_fill_normal(&rz, z, n, 1.0f, 3.0f);
        CHECK(ru.counter == cu + (uint64_t)n && rz.counter == cz + (uint64_t)n,
              "counters advance by n = %lld", (long long)n);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t b[4];
            nas_philox4x32(11 + (uint64_t)li, 5, cu + (uint64_t)i, b);
            const float eu = -0.5f + 2.5f * (float)u53_of(b[1], b[0]);
            nas_philox4x32(3, 9 + (uint64_t)li, cz + (uint64_t)i, b);
            const double r = sqrt(-2.0 * log(1.0 - u53_of(b[1], b[0])));
            const float ez = 1.0f + 3.0f * (float)(r * cos(6.283185307179586 * u53_of(b[3], b[2])));
            bad += u[i] != eu || z[i] != ez;
        }
        CHECK(bad == 0, "n = %lld: %lld draws differ from the formula", (long long)n,
              (long long)bad);
        free(u);
        free(z);
    }
}

static void test_split_fill_equals_one_fill(void) {
    enum { N = 1237, CUT = 403 };
    float a[N], b[N];
    nas_rng r1 = nas_rng_make(42, 1), r2 = nas_rng_make(42, 1);
    nas_rng_fill_uniform(&r1, a, N, 0.0f, 1.0f);
    nas_rng_fill_uniform(&r2, b, CUT, 0.0f, 1.0f);
    nas_rng_fill_uniform(&r2, b + CUT, N - CUT, 0.0f, 1.0f);
    CHECK(memcmp(a, b, sizeof a) == 0, "a fill split at %d differs from one fill", CUT);
    double mean = 0.0;
    for (int i = 0; i < N; i++) {
        mean += a[i] / N;
    }
    CHECK(fabs(mean - 0.5) < 0.05, "mean of U(0, 1) draws %g", mean);
}

int main(void) {
    RUN_TEST(test_philox_known_answers);
    RUN_TEST(test_lanes_match_scalar);
    RUN_TEST(test_fills_match_formula);
    RUN_TEST(test_split_fill_equals_one_fill);
    return check_report("rng");
}
