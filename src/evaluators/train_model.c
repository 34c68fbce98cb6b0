/* train_model.c - build the model a training run (or a checkpoint) describes: a standard network
 * by name or a search space's architecture with the low-fidelity knobs (channel multiplier,
 * cells). The model is tried once on the input shape so an architecture that cannot run on it
 * (a pool shrinking the image below 1x1, ...) is a clear error here, not deep inside training. */
#include "evaluators/train_int.h"

#include <stdio.h>

static nas_status build_net(nas_ctx *ctx, const nas_model_desc *d, nas_model_shape shape,
                            nas_model **out) {
    if (strcmp(d->net, "fmnist-cnn") == 0) {
        return nas_net_fmnist_cnn(ctx, shape, out);
    }
    if (strcmp(d->net, "mobilenet-v2") == 0) {
        return nas_net_mobilenet_v2(ctx, d->channels_mult > 0 ? d->channels_mult : 1.0, shape,
                                    out);
    }
    return nas_fail(ctx, NAS_ERR_ARG, "unknown network '%s' (known: fmnist-cnn, mobilenet-v2)",
                    d->net);
}

static nas_status build_arch(nas_ctx *ctx, const nas_model_desc *d, nas_model_shape shape,
                             nas_model **out) {
    nas_space *s = NULL;
    nas_status st = nas_space_open(ctx, d->space, &s);
    if (st != NAS_OK) {
        return st;
    }
    if (d->aux_head && strcmp(nas_space_name(s), "darts") != 0) {
        nas_space_free(s);
        return nas_fail(ctx, NAS_ERR_ARG, "an auxiliary head exists only in the darts space, not "
                        "in '%s'", d->space);
    }
    nas_arch a;
    st = nas_space_decode(ctx, s, d->arch, &a);
    if (st == NAS_OK) {
        nas_build_opts o;
        memset(&o, 0, sizeof(o));
        o.shape = shape;
        o.channels_mult = d->channels_mult;
        o.cells = d->cells;
        o.aux_head = d->aux_head;
        st = nas_space_build(ctx, s, &a, &o, out);
    }
    nas_space_free(s);
    return st;
}

nas_status nas_model_build_desc(nas_ctx *ctx, const nas_model_desc *d, nas_model_shape shape,
                                nas_model **out) {
    NAS_CHECK_ARG(ctx, d != NULL && out != NULL);
    *out = NULL;
    nas_status st;
    if (d->net != NULL) {
        st = build_net(ctx, d, shape, out);
    } else if (d->space != NULL && d->arch != NULL) {
        st = build_arch(ctx, d, shape, out);
    } else {
        return nas_fail(ctx, NAS_ERR_ARG, "model: give a network name or a space and an arch");
    }
    if (st != NAS_OK) {
        return st;
    }
    int64_t macs = 0;
    st = nas_model_count(*out, &macs, NULL);
    if (st != NAS_OK) {
        char why[NAS_ERRMSG_MAX / 2];
        snprintf(why, sizeof(why), "%s", nas_errmsg(ctx));
        nas_model_free(*out);
        *out = NULL;
        return nas_fail(ctx, st == NAS_ERR_NOMEM ? st : NAS_ERR_SHAPE,
                        "the architecture cannot be built for %dx%dx%d inputs: %s", shape.in_c,
                        shape.in_h, shape.in_w, why);
    }
    return NAS_OK;
}
