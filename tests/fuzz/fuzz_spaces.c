/* fuzz_spaces.c - libFuzzer harness for the search spaces' text parsers and the JSON space
 * loader. Built once per target with -DFUZZ_TARGET=n (mk/spaces.mk): 0 nb201 text, 1 darts
 * genotype, 2 mbnet JSON, 3 nasrl text, 4 JSON space files. Parsers must fail cleanly (a status
 * and a message) on any input; whatever parses must round-trip through encode, and a JSON
 * space's architectures must count (or fail) without crashing. */
#include "nascent.h"
#include "spaces/spaces_int.h"

#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_TARGET
#define FUZZ_TARGET 0
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(nas_ctx *ctx, const nas_space *s, const nas_arch *a) {
    static char text[NAS_ARCH_TEXT_MAX];
    nas_arch b;
    if (nas_space_encode(s, a, text, sizeof text) != NAS_OK) {
        return; /* too long for the buffer: an error, not a crash */
    }
    if (nas_space_decode(ctx, s, text, &b) != NAS_OK || b.n != a->n ||
        memcmp(a->choice, b.choice, (size_t)a->n * sizeof(int32_t)) != 0) {
        abort();
    }
    (void)nas_space_hash(s, a);
}

static nas_space *cached[4];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static nas_ctx *ctx;
    if (ctx == NULL) {
        ctx = nas_ctx_new();
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (FUZZ_TARGET < 4) {
        static const char *const names[4] = {"nb201", "darts", "mbnet", "nasrl"};
        if (cached[FUZZ_TARGET] == NULL &&
            nas_space_open(ctx, names[FUZZ_TARGET], &cached[FUZZ_TARGET]) != NAS_OK) {
            abort();
        }
        nas_arch a;
        if (nas_space_decode(ctx, cached[FUZZ_TARGET], text, &a) == NAS_OK) {
            roundtrip(ctx, cached[FUZZ_TARGET], &a);
        } else if (nas_errmsg(ctx)[0] == '\0') {
            abort(); /* a failure must say why */
        }
    } else {
        nas_space *s = NULL;
        if (nas_spaces_open_json_string(ctx, text, &s) == NAS_OK) {
            nas_rng r = nas_rng_make(size, 0);
            for (int i = 0; i < 4; i++) {
                nas_arch a;
                nas_space_sample(s, &r, &a);
                roundtrip(ctx, s, &a);
                int64_t params, macs;
                (void)nas_space_count(ctx, s, &a, NULL, &params, &macs);
            }
            nas_space_free(s);
        } else if (nas_errmsg(ctx)[0] == '\0') {
            abort();
        }
    }
    free(text);
    return 0;
}
