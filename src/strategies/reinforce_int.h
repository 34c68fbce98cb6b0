/* reinforce_int.h - state shared by the REINFORCE strategy (reinforce.c) and its LSTM controller
 * (reinforce_lstm.c). */
#ifndef NAS_REINFORCE_INT_H
#define NAS_REINFORCE_INT_H

#include "strategies_int.h"

typedef enum rl_kind { RL_CATEGORICAL = 0, RL_LSTM } rl_kind;

typedef struct rl_lstm rl_lstm; /* the LSTM controller's parameters, optimiser and graph */

typedef struct rl_state {
    rl_kind kind;
    double lr, baseline_decay, entropy;
    int hidden;
    int n_dec, n_logits;
    double *logits;  /* categorical: all decisions' logits, concatenated */
    double baseline, scale2;
    int64_t n_rewards;
    nas_archmap seen;
    rl_lstm *lstm;
} rl_state;

nas_status nas_rl_lstm_init(nas_strategy *s, rl_state *r);
nas_status nas_rl_lstm_sample(nas_strategy *s, rl_state *r, nas_arch *out);
nas_status nas_rl_lstm_update(nas_strategy *s, rl_state *r, const nas_arch *a, double adv);
void nas_rl_lstm_free(nas_strategy *s, rl_state *r);

#endif
