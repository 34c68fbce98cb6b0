/* cmd_info.c - `nascent info`: the hardware numbers of one architecture (params, MACs, peak
 * activation memory, from the built network), its canonical text and its stable hash.
 *   nascent info --space S --arch TEXT [--classes N] [--input CxHxW] [--channels-mult F]
 *                [--cells N] [--aux] [--search-net] [--json]
 * Bad architecture text prints the parser's message with a caret under the offending token and
 * exits with 2. */
#include "cli_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: nascent info --space S --arch TEXT [--classes N] [--input CxHxW]\n"
            "                    [--channels-mult F] [--cells N] [--aux] [--search-net] [--json]\n"
            "  --space   nb201, darts, mbnet, nasrl or a JSON space file\n"
            "  --arch    the architecture's text, or 'default'\n");
}

/* The parser's message, and the text with a caret under "offset N" when the message has one. */
static void print_decode_error(const char *text, const char *msg) {
    fprintf(stderr, "nascent info: bad --arch: %s\n", msg);
    const char *at = strstr(msg, "offset ");
    if (at == NULL || strchr(text, '\n') != NULL || strlen(text) > 300) {
        return;
    }
    const long off = strtol(at + 7, NULL, 10);
    if (off < 0 || (size_t)off > strlen(text)) {
        return;
    }
    fprintf(stderr, "  %s\n  %*s^\n", text, (int)off, "");
}

static int parse_input(const char *s, nas_model_shape *shape) {
    int c, h, w;
    char end;
    if (sscanf(s, "%dx%dx%d%c", &c, &h, &w, &end) != 3 || c < 1 || h < 1 || w < 1 ||
        c > 4096 || h > 8192 || w > 8192) {
        return 0;
    }
    shape->in_c = c;
    shape->in_h = h;
    shape->in_w = w;
    return 1;
}

int cmd_info(int argc, char **argv) {
    const char *space_name = NULL, *arch_text = NULL;
    int json = 0;
    nas_build_opts opts;
    memset(&opts, 0, sizeof(opts));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has_val = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--aux") == 0) {
            opts.aux_head = 1;
        } else if (strcmp(a, "--search-net") == 0) {
            opts.search_net = 1;
        } else if (strcmp(a, "--space") == 0 && has_val) {
            space_name = argv[++i];
        } else if (strcmp(a, "--arch") == 0 && has_val) {
            arch_text = argv[++i];
        } else if (strcmp(a, "--classes") == 0 && has_val) {
            char *end;
            const long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 1000000) {
                fprintf(stderr, "nascent info: --classes wants a positive integer, got '%s'\n",
                        argv[i]);
                return 2;
            }
            opts.shape.classes = (int)v;
        } else if (strcmp(a, "--cells") == 0 && has_val) {
            char *end;
            const long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 1000) {
                fprintf(stderr, "nascent info: --cells wants an integer 1..1000, got '%s'\n",
                        argv[i]);
                return 2;
            }
            opts.cells = (int)v;
        } else if (strcmp(a, "--channels-mult") == 0 && has_val) {
            char *end;
            const double v = strtod(argv[++i], &end);
            if (*end != '\0' || !(v > 0.0 && v <= 64.0)) {
                fprintf(stderr, "nascent info: --channels-mult wants a number in (0, 64], got "
                                "'%s'\n", argv[i]);
                return 2;
            }
            opts.channels_mult = v;
        } else if (strcmp(a, "--input") == 0 && has_val) {
            if (!parse_input(argv[++i], &opts.shape)) {
                fprintf(stderr, "nascent info: --input wants CxHxW (e.g. 3x32x32), got '%s'\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "nascent info: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (space_name == NULL || arch_text == NULL) {
        fprintf(stderr, "nascent info: --space and --arch are required\n");
        usage(stderr);
        return 2;
    }
    nas_ctx *ctx = nas_ctx_new();
    if (ctx == NULL) {
        fprintf(stderr, "nascent info: out of memory\n");
        return 1;
    }
    int rc = 0;
    nas_space *space = NULL;
    nas_model *model = NULL;
    nas_arch arch, canon;
    static char text[NAS_ARCH_TEXT_MAX], canon_text[NAS_ARCH_TEXT_MAX];
    nas_status st = nas_space_open(ctx, space_name, &space);
    if (st != NAS_OK) {
        fprintf(stderr, "nascent info: %s\n", nas_errmsg(ctx));
        rc = st == NAS_ERR_NOMEM || st == NAS_ERR_IO ? 1 : 2;
        goto done;
    }
    st = nas_space_decode(ctx, space, arch_text, &arch);
    if (st != NAS_OK) {
        print_decode_error(arch_text, nas_errmsg(ctx));
        rc = 2;
        goto done;
    }
    nas_space_canonical(space, &arch, &canon);
    if (nas_space_encode(space, &arch, text, sizeof text) != NAS_OK ||
        nas_space_encode(space, &canon, canon_text, sizeof canon_text) != NAS_OK) {
        fprintf(stderr, "nascent info: %s\n", nas_errmsg(ctx));
        rc = 1;
        goto done;
    }
    opts.no_init = 1; /* only shapes matter here */
    st = nas_space_build(ctx, space, &arch, &opts, &model);
    int64_t macs = 0;
    size_t peak = 0;
    if (st == NAS_OK) {
        st = nas_model_count(model, &macs, &peak);
    }
    if (st != NAS_OK) {
        fprintf(stderr, "nascent info: building the network: %s\n", nas_errmsg(ctx));
        rc = st == NAS_ERR_NOMEM ? 1 : 2;
        goto done;
    }
    const nas_model_shape shape = nas_model_get_shape(model);
    const long long params = (long long)nas_model_n_params(model);
    const unsigned long long hash = (unsigned long long)nas_space_hash(space, &arch);
    if (json) {
        printf("{\"space\": ");
        cli_json_string(stdout, nas_space_name(space));
        printf(", \"arch\": ");
        cli_json_string(stdout, text);
        printf(", \"canonical\": ");
        cli_json_string(stdout, canon_text);
        printf(", \"hash\": \"%016llx\", \"params\": %lld, \"macs\": %lld, "
               "\"activation_bytes_peak\": %zu, \"input\": [%d, %d, %d], \"classes\": %d}\n",
               hash, params, (long long)macs, peak, shape.in_c, shape.in_h, shape.in_w,
               shape.classes);
    } else {
        printf("space        %s\narch         %s\ncanonical    %s\nhash         %016llx\n"
               "input        %dx%dx%d, %d classes\nparams       %lld\nmacs         %lld\n"
               "activations  %zu bytes (inference peak)\n",
               nas_space_name(space), text, canon_text, hash, shape.in_c, shape.in_h, shape.in_w,
               shape.classes, params, (long long)macs, peak);
    }
done:
    nas_model_free(model);
    nas_space_free(space);
    nas_ctx_free(ctx);
    return rc;
}
