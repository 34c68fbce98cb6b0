/* proxy_grad_norm.c - grad_norm (Abdelfattah et al. 2021, zero-cost-nas measures/grad_norm.py):
 * the sum over conv and linear weights W of the L2 norm of dL/dW, L the mean cross-entropy of one
 * minibatch with the network in training mode. Layers: every Conv2d and Linear weight (no biases,
 * no BN parameters), each counted once. Higher = predicted better.
 * Reads the gradient the driver's backward of the loss left in the parameter block. */
#include "proxies_int.h"

#include <math.h>

double nas_proxy_grad_norm(const nas_proxy_pass *ps) {
    const float *grad = nas_params_grad(ps->p);
    double score = 0.0;
    for (nas_param_id id = 0; id < nas_params_count(ps->p); id++) {
        if (!ps->is_weight[id]) {
            continue;
        }
        const float *gw = grad + nas_param_offset(ps->p, id);
        double ss = 0.0;
        for (int64_t i = 0, n = nas_param_numel(ps->p, id); i < n; i++) {
            ss += (double)gw[i] * (double)gw[i];
        }
        score += sqrt(ss);
    }
    return score;
}
