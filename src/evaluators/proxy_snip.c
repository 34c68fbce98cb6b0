/* proxy_snip.c - snip (Lee et al. 2019 as a proxy in zero-cost-nas measures/snip.py): the sum
 * over conv and linear weights of |dL/dW * W|, L the mean cross-entropy of one minibatch with the
 * network in training mode. zero-cost-nas multiplies each weight by a mask of ones and takes
 * |dL/dmask|, which is |dL/dW * W|. Layers: every Conv2d and Linear weight, each counted once.
 * Higher = predicted better. Reads the gradient of the driver's backward of the loss. */
#include "proxies_int.h"

#include <math.h>

double nas_proxy_snip(const nas_proxy_pass *ps) {
    const float *grad = nas_params_grad(ps->p), *data = nas_params_data(ps->p);
    double score = 0.0;
    for (nas_param_id id = 0; id < nas_params_count(ps->p); id++) {
        if (!ps->is_weight[id]) {
            continue;
        }
        const int64_t off = nas_param_offset(ps->p, id);
        double s = 0.0;
        for (int64_t i = 0, n = nas_param_numel(ps->p, id); i < n; i++) {
            s += fabs((double)grad[off + i] * (double)data[off + i]);
        }
        score += s;
    }
    return score;
}
