/* test_optim.c - optimisers, schedules, gradient clipping, weight files and checkpoints.
 *
 * The optimisers, schedules and clipping are compared with PyTorch 1.13 (torch.optim,
 * torch.optim.lr_scheduler, torch.nn.utils.clip_grad_norm_) run from this test through
 * /usr/bin/python3 on the same float32 parameters and gradient sequence: the C side writes the
 * inputs and the case list to a temporary directory, one Python run writes every reference
 * result, and the checks compare. Weight files are checked by round trips and by damaging files
 * (every truncation point, every flipped byte, foreign files, mismatched models). A counting and
 * failing allocator checks that a step allocates nothing and that allocation failures leak
 * nothing. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ----------------------------------------------------------------------- test allocator */

typedef struct test_alloc {
    long calls;      /* allocator calls so far */
    long fail_at;    /* the call index that fails (-1: none) */
    long live;       /* blocks outstanding */
    long long bytes; /* bytes outstanding */
} test_alloc;

static void *ta_fn(void *user, void *ptr, size_t old_size, size_t new_size) {
    test_alloc *ta = user;
    const long call = ta->calls++;
    if (new_size == 0) {
        if (ptr != NULL) {
            ta->live--;
            ta->bytes -= (long long)old_size;
        }
        free(ptr);
        return NULL;
    }
    if (call == ta->fail_at) {
        return NULL;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, (new_size + 63) & ~(size_t)63) != 0) {
        return NULL;
    }
    if (ptr != NULL) {
        memcpy(p, ptr, old_size < new_size ? old_size : new_size);
        free(ptr);
        ta->bytes -= (long long)old_size;
    } else {
        ta->live++;
    }
    ta->bytes += (long long)new_size;
    return p;
}

/* ----------------------------------------------------------------------- the test model */

typedef struct entry_spec {
    const char *name;
    int ndim;
    int64_t shape[4];
    int flags;
} entry_spec;

/* Odd sizes (vector bodies and tails), a NO_DECAY entry, a buffer and an architecture weight
 * that the network optimiser must not touch, and an entry large enough that the update runs in
 * several parallel chunks with a chunk boundary inside it. */
static const entry_spec specs[] = {
    {"w1", 2, {5, 7}, NAS_PARAM_TRAINABLE},        {"b1", 1, {5}, NAS_PARAM_NO_DECAY},
    {"bn.running_mean", 1, {4}, NAS_PARAM_BUFFER}, {"w2", 4, {3, 5, 2, 2}, NAS_PARAM_TRAINABLE},
    {"alpha", 2, {2, 3}, NAS_PARAM_ARCH},          {"big", 2, {3, 4001}, NAS_PARAM_TRAINABLE},
    {"big.bias", 1, {3}, NAS_PARAM_NO_DECAY},
};
#define N_SPECS  ((int)(sizeof(specs) / sizeof(specs[0])))
#define N_STEPS  10
#define NET_MASK (NAS_PARAM_BUFFER | NAS_PARAM_ARCH)

static int is_net(int flags) {
    return (flags & NET_MASK) == 0;
}

static int64_t spec_numel(const entry_spec *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++) {
        n *= s->shape[d];
    }
    return n;
}

static int64_t compact_total(int net_only) {
    int64_t n = 0;
    for (int i = 0; i < N_SPECS; i++) {
        n += !net_only || is_net(specs[i].flags) ? spec_numel(&specs[i]) : 0;
    }
    return n;
}

/* Parameters per specs[], values N(0, 1) from `seed` (not the init rules: any values do). */
static nas_params *make_params(nas_ctx *ctx, uint64_t seed) {
    nas_params *p = nas_params_new(ctx);
    if (p == NULL) {
        return NULL;
    }
    nas_rng r = nas_rng_make(seed, 0);
    for (int i = 0; i < N_SPECS; i++) {
        nas_param_id id;
        if (nas_params_add(p, specs[i].name, specs[i].ndim, specs[i].shape, NAS_INIT_ZEROS,
                           specs[i].flags, 0, &id) != NAS_OK) {
            nas_params_free(p);
            return NULL;
        }
    }
    for (int i = 0; i < N_SPECS; i++) {
        nas_rng_fill_normal(&r, nas_params_data(p) + nas_param_offset(p, i), spec_numel(&specs[i]),
                            0.0f, 1.0f);
    }
    return p;
}

/* Copy the block (data or grad) of all entries, or of the network entries only, packed. */
static void gather(const nas_params *p, const float *block, int net_only, float *out) {
    int64_t at = 0;
    for (int i = 0; i < N_SPECS; i++) {
        if (net_only && !is_net(specs[i].flags)) {
            continue;
        }
        memcpy(out + at, block + nas_param_offset(p, i), (size_t)spec_numel(&specs[i]) * 4);
        at += spec_numel(&specs[i]);
    }
}

static void scatter(nas_params *p, float *block, const float *in) {
    int64_t at = 0;
    for (int i = 0; i < N_SPECS; i++) {
        memcpy(block + nas_param_offset(p, i), in + at, (size_t)spec_numel(&specs[i]) * 4);
        at += spec_numel(&specs[i]);
    }
}

/* -------------------------------------------------------------------- the PyTorch reference */

typedef struct optim_case {
    const char *label;
    nas_optim_config cfg;
} optim_case;

static const optim_case optim_cases[] = {
    {"sgd", {.kind = NAS_OPTIM_SGD}},
    {"sgd-momentum", {.kind = NAS_OPTIM_SGD, .momentum = 0.9f}},
    {"sgd-nesterov-wd",
     {.kind = NAS_OPTIM_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 5e-4f}},
    {"sgd-momentum-wd", {.kind = NAS_OPTIM_SGD, .momentum = 0.8f, .weight_decay = 1e-2f}},
    {"adam", {.kind = NAS_OPTIM_ADAM}},
    {"adam-l2", {.kind = NAS_OPTIM_ADAM, .weight_decay = 1e-2f, .beta1 = 0.8f, .beta2 = 0.99f}},
    {"adamw", {.kind = NAS_OPTIM_ADAMW, .weight_decay = 1e-2f}},
    {"adamw-wd-eps",
     {.kind = NAS_OPTIM_ADAMW, .weight_decay = 0.1f, .beta1 = 0.5f, .beta2 = 0.95f, .eps = 1e-6f}},
};
#define N_OPTIM ((int)(sizeof(optim_cases) / sizeof(optim_cases[0])))

static const nas_sched sched_cases[] = {
    {.kind = NAS_SCHED_CONSTANT, .base_lr = 0.05f},
    {.kind = NAS_SCHED_COSINE, .base_lr = 0.1f, .min_lr = 0.0f, .total_steps = 50},
    {.kind = NAS_SCHED_COSINE, .base_lr = 0.025f, .min_lr = 0.001f, .total_steps = 37},
    {.kind = NAS_SCHED_STEP, .base_lr = 0.1f, .step_size = 7, .gamma = 0.3f},
    {.kind = NAS_SCHED_COSINE, .base_lr = 0.1f, .total_steps = 40, .warmup_steps = 5},
    {.kind = NAS_SCHED_STEP, .base_lr = 0.2f, .step_size = 4, .gamma = 0.5f, .warmup_steps = 6},
    {.kind = NAS_SCHED_CONSTANT, .base_lr = 0.01f, .warmup_steps = 3},
};
#define N_SCHED     ((int)(sizeof(sched_cases) / sizeof(sched_cases[0])))
#define SCHED_STEPS 50 /* every case is compared over steps [0, 50) (cosine up to its T_max) */

static const float clip_cases[] = {1.0f, 25.0f, 1e6f};
#define N_CLIP ((int)(sizeof(clip_cases) / sizeof(clip_cases[0])))

static const char *ref_script =
    "import sys, numpy as np, torch\n"
    "torch.set_num_threads(1)\n"
    "d = sys.argv[1]\n"
    "lines = open(d + '/setup.txt').read().split('\\n')\n"
    "pos = 0\n"
    "def nxt():\n"
    "    global pos\n"
    "    pos += 1\n"
    "    return lines[pos - 1].split()\n"
    "n_ent = int(nxt()[0])\n"
    "ents = []\n"
    "for _ in range(n_ent):\n"
    "    name, numel, flags = nxt()\n"
    "    ents.append((name, int(numel), int(flags)))\n"
    "total = sum(e[1] for e in ents)\n"
    "steps = int(nxt()[0])\n"
    "lrs = [float(x) for x in nxt()]\n"
    "params0 = np.fromfile(d + '/params.bin', dtype=np.float32)\n"
    "grads = np.fromfile(d + '/grads.bin', dtype=np.float32).reshape(steps, total)\n"
    "offs = np.cumsum([0] + [e[1] for e in ents])\n"
    "net = [i for i, e in enumerate(ents) if e[2] & 5 == 0]\n"
    "def tensors(vec):\n"
    "    return [torch.from_numpy(vec[offs[i]:offs[i + 1]].copy()) for i in net]\n"
    "out = []\n"
    "for _ in range(int(nxt()[0])):\n"
    "    kind, mom, nest, wd, b1, b2, eps = nxt()\n"
    "    mom, wd, b1, b2, eps = float(mom), float(wd), float(b1), float(b2), float(eps)\n"
    "    ps = [t.requires_grad_(True) for t in tensors(params0)]\n"
    "    dec = [p for p, i in zip(ps, net) if ents[i][2] & 2 == 0]\n"
    "    nod = [p for p, i in zip(ps, net) if ents[i][2] & 2 != 0]\n"
    "    groups = [{'params': dec, 'weight_decay': wd}, {'params': nod, 'weight_decay': 0.0}]\n"
    "    if kind == 'sgd':\n"
    "        opt = torch.optim.SGD(groups, lr=lrs[0], momentum=mom, nesterov=nest == '1', "
    "foreach=False)\n"
    "    elif kind == 'adam':\n"
    "        opt = torch.optim.Adam(groups, lr=lrs[0], betas=(b1, b2), eps=eps, foreach=False)\n"
    "    else:\n"
    "        opt = torch.optim.AdamW(groups, lr=lrs[0], betas=(b1, b2), eps=eps, foreach=False)\n"
    "    for s in range(steps):\n"
    "        for p, g in zip(ps, tensors(grads[s])):\n"
    "            p.grad = g\n"
    "        for gr in opt.param_groups:\n"
    "            gr['lr'] = lrs[s]\n"
    "        opt.step()\n"
    "        out.append(np.concatenate([p.detach().numpy() for p in ps]))\n"
    "np.concatenate(out).astype(np.float32).tofile(d + '/optim_out.bin')\n"
    "sched_out = []\n"
    "for _ in range(int(nxt()[0])):\n"
    "    kind, base, lo, total_steps, step_size, gamma, warm, n = nxt()\n"
    "    base, lo, gamma = float(base), float(lo), float(gamma)\n"
    "    total_steps, step_size, warm, n = int(total_steps), int(step_size), int(warm), int(n)\n"
    "    w = torch.zeros(1, requires_grad=True)\n"
    "    opt = torch.optim.SGD([w], lr=base)\n"
    "    sch = []\n"
    "    if warm > 1:\n"
    "        sch.append(torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, "
    "end_factor=1.0, total_iters=warm - 1))\n"
    "    if kind == '1':\n"
    "        sch.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, "
    "eta_min=lo))\n"
    "    elif kind == '2':\n"
    "        sch.append(torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma))\n"
    "    for s in range(n):\n"
    "        sched_out.append(opt.param_groups[0]['lr'])\n"
    "        opt.step()\n"
    "        for sc in sch:\n"
    "            sc.step()\n"
    "np.array(sched_out, dtype=np.float64).tofile(d + '/sched_out.bin')\n"
    "clip_out = []\n"
    "for _ in range(int(nxt()[0])):\n"
    "    max_norm = float(nxt()[0])\n"
    "    ps = [t.requires_grad_(True) for t in tensors(params0)]\n"
    "    for p, g in zip(ps, tensors(grads[0] * 3)):\n"
    "        p.grad = g\n"
    "    norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)\n"
    "    clip_out.append(np.concatenate([[float(norm)], np.concatenate([p.grad.numpy() for p in "
    "ps]).astype(np.float64)]))\n"
    "np.concatenate(clip_out).tofile(d + '/clip_out.bin')\n"
    "print('reference done')\n";

/* The shared inputs and the reference results, filled once by run_reference. */
static struct {
    int ok;
    char dir[64];
    float *params0; /* compact, all entries */
    float *grads;   /* N_STEPS x compact, all entries */
    float lrs[N_STEPS];
    float *optim_out;  /* N_OPTIM x N_STEPS x compact net entries */
    double *sched_out; /* N_SCHED x SCHED_STEPS */
    double *clip_out;  /* N_CLIP x (1 + compact net) */
} ref;

static int write_file(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        return -1;
    }
    const size_t w = fwrite(buf, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static void *read_whole(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len + 1);
    if (buf != NULL && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void *read_expect(const char *dir, const char *name, size_t bytes) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t n = 0;
    void *buf = read_whole(path, &n);
    CHECK(buf != NULL && n == bytes, "%s: %zu bytes, expected %zu", path, n, bytes);
    if (buf != NULL && n != bytes) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

static void write_setup(FILE *f) {
    fprintf(f, "%d\n", N_SPECS);
    for (int i = 0; i < N_SPECS; i++) {
        fprintf(f, "%s %lld %d\n", specs[i].name, (long long)spec_numel(&specs[i]), specs[i].flags);
    }
    fprintf(f, "%d\n", N_STEPS);
    for (int s = 0; s < N_STEPS; s++) {
        fprintf(f, "%.17g ", (double)ref.lrs[s]);
    }
    fprintf(f, "\n%d\n", N_OPTIM);
    for (int c = 0; c < N_OPTIM; c++) {
        /* torch gets the float32 hyper-parameters exactly, with our defaults filled in */
        const nas_optim_config *k = &optim_cases[c].cfg;
        const char *kind = k->kind == NAS_OPTIM_SGD    ? "sgd"
                           : k->kind == NAS_OPTIM_ADAM ? "adam"
                                                       : "adamw";
        fprintf(f, "%s %.17g %d %.17g %.17g %.17g %.17g\n", kind, (double)k->momentum, k->nesterov,
                (double)k->weight_decay, (double)(k->beta1 != 0.0f ? k->beta1 : 0.9f),
                (double)(k->beta2 != 0.0f ? k->beta2 : 0.999f),
                (double)(k->eps != 0.0f ? k->eps : 1e-8f));
    }
    fprintf(f, "%d\n", N_SCHED);
    for (int c = 0; c < N_SCHED; c++) {
        const nas_sched *s = &sched_cases[c];
        fprintf(f, "%d %.17g %.17g %lld %lld %.17g %lld %d\n", (int)s->kind, (double)s->base_lr,
                (double)s->min_lr, (long long)s->total_steps, (long long)s->step_size,
                (double)s->gamma, (long long)s->warmup_steps, SCHED_STEPS);
    }
    fprintf(f, "%d\n", N_CLIP);
    for (int c = 0; c < N_CLIP; c++) {
        fprintf(f, "%.17g\n", (double)clip_cases[c]);
    }
}

static void run_reference(void) {
    const int64_t total = compact_total(0), net = compact_total(1);
    strcpy(ref.dir, "/tmp/nas_test_optim_XXXXXX");
    CHECK(mkdtemp(ref.dir) != NULL, "mkdtemp");
    ref.params0 = malloc((size_t)total * 4);
    ref.grads = malloc((size_t)total * N_STEPS * 4);
    nas_rng r = nas_rng_make(2024, 7);
    nas_rng_fill_normal(&r, ref.params0, total, 0.0f, 1.0f);
    nas_rng_fill_normal(&r, ref.grads, total * N_STEPS, 0.0f, 1.0f);
    for (int s = 0; s < N_STEPS; s++) {
        ref.lrs[s] = 0.05f * (1.0f + 0.3f * (float)s); /* a changing lr: per-step values matter */
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/setup.txt", ref.dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f == NULL) {
        return;
    }
    write_setup(f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/params.bin", ref.dir);
    CHECK(write_file(path, ref.params0, (size_t)total * 4) == 0, "write %s", path);
    snprintf(path, sizeof(path), "%s/grads.bin", ref.dir);
    CHECK(write_file(path, ref.grads, (size_t)total * N_STEPS * 4) == 0, "write %s", path);
    snprintf(path, sizeof(path), "%s/ref.py", ref.dir);
    CHECK(write_file(path, ref_script, strlen(ref_script)) == 0, "write %s", path);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/ref.py %s", ref.dir, ref.dir);
    const int rc = system(cmd);
    CHECK(rc == 0, "the PyTorch reference failed (exit %d): %s", rc, cmd);
    if (rc != 0) {
        return;
    }
    ref.optim_out = read_expect(ref.dir, "optim_out.bin", (size_t)N_OPTIM * N_STEPS * net * 4);
    ref.sched_out = read_expect(ref.dir, "sched_out.bin", (size_t)N_SCHED * SCHED_STEPS * 8);
    ref.clip_out = read_expect(ref.dir, "clip_out.bin", (size_t)N_CLIP * (1 + net) * 8);
    ref.ok = ref.optim_out != NULL && ref.sched_out != NULL && ref.clip_out != NULL;
}

static void free_reference(void) {
    const char *names[] = {"setup.txt",     "params.bin",    "grads.bin",   "ref.py",
                           "optim_out.bin", "sched_out.bin", "clip_out.bin"};
    char path[128];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", ref.dir, names[i]);
        unlink(path);
    }
    rmdir(ref.dir);
    free(ref.params0);
    free(ref.grads);
    free(ref.optim_out);
    free(ref.sched_out);
    free(ref.clip_out);
}

/* Relative error with a floor so values near zero are judged absolutely (1e-3 scale). */
static double rel_err(double a, double b) {
    return fabs(a - b) / fmax(fabs(b), 1e-3);
}

/* Run one optimiser case on params0 and the gradient sequence; out gets the compact network
 * values after every step; the buffer and alpha must come out exactly as they went in. */
static void run_case(const nas_optim_config *cfg, float *out) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = make_params(ctx, 1);
    const int64_t total = compact_total(0), net = compact_total(1);
    scatter(p, nas_params_data(p), ref.params0);
    nas_optim_config c = *cfg;
    c.flags_mask = NET_MASK;
    c.flags_value = 0;
    nas_optim *o = NULL;
    CHECK(nas_optim_new(p, &c, &o) == NAS_OK, "optim_new: %s", nas_errmsg(ctx));
    if (o == NULL) {
        nas_params_free(p);
        nas_ctx_free(ctx);
        return;
    }
    CHECK(nas_optim_n_updated(o) == net, "updates %lld floats, expected %lld",
          (long long)nas_optim_n_updated(o), (long long)net);
    float *all = malloc((size_t)total * 4);
    for (int s = 0; s < N_STEPS; s++) {
        scatter(p, nas_params_grad(p), ref.grads + (size_t)s * total);
        CHECK(nas_optim_step(o, ref.lrs[s]) == NAS_OK, "step: %s", nas_errmsg(ctx));
        gather(p, nas_params_data(p), 1, out + (size_t)s * net);
    }
    CHECK(nas_optim_steps(o) == N_STEPS, "steps %lld", (long long)nas_optim_steps(o));
    gather(p, nas_params_data(p), 0, all);
    int64_t at = 0;
    for (int i = 0; i < N_SPECS; i++) {
        if (!is_net(specs[i].flags)) {
            CHECK(memcmp(all + at, ref.params0 + at, (size_t)spec_numel(&specs[i]) * 4) == 0,
                  "%s (flags %d) changed", specs[i].name, specs[i].flags);
        }
        at += spec_numel(&specs[i]);
    }
    free(all);
    nas_optim_free(o);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

static void test_optim_vs_torch(void) {
    CHECK(ref.ok, "no PyTorch reference");
    if (!ref.ok) {
        return;
    }
    const int64_t net = compact_total(1);
    float *out = malloc((size_t)N_STEPS * net * 4);
    for (int c = 0; c < N_OPTIM; c++) {
        run_case(&optim_cases[c].cfg, out);
        const float *want = ref.optim_out + (size_t)c * N_STEPS * net;
        double worst = 0.0;
        int64_t exact = 0, worst_at = 0;
        for (int64_t i = 0; i < N_STEPS * net; i++) {
            const double e = rel_err(out[i], want[i]);
            exact += out[i] == want[i];
            if (e > worst) {
                worst = e;
                worst_at = i;
            }
        }
        printf("  %-16s max rel err %.3g, bit-exact %lld/%lld\n", optim_cases[c].label, worst,
               (long long)exact, (long long)(N_STEPS * net));
        CHECK(worst <= 1e-5, "%s: step %lld value %lld: ours %.9g torch %.9g (rel %.3g)",
              optim_cases[c].label, (long long)(worst_at / net), (long long)(worst_at % net),
              (double)out[worst_at], (double)want[worst_at], worst);
    }
    free(out);
}

/* Same results with 1 and 2 threads, bit for bit. */
static void test_optim_threads(void) {
    CHECK(ref.ok, "no PyTorch reference");
    if (!ref.ok) {
        return;
    }
    const int64_t net = compact_total(1);
    float *a = malloc((size_t)N_STEPS * net * 4), *b = malloc((size_t)N_STEPS * net * 4);
    const int saved = nas_get_threads();
    for (int c = 0; c < N_OPTIM; c++) {
        nas_set_threads(1);
        run_case(&optim_cases[c].cfg, a);
        nas_set_threads(2);
        run_case(&optim_cases[c].cfg, b);
        CHECK(memcmp(a, b, (size_t)N_STEPS * net * 4) == 0, "%s differs between 1 and 2 threads",
              optim_cases[c].label);
    }
    nas_set_threads(saved);
    free(a);
    free(b);
}

static void test_sched_vs_torch(void) {
    CHECK(ref.ok, "no PyTorch reference");
    if (!ref.ok) {
        return;
    }
    for (int c = 0; c < N_SCHED; c++) {
        const nas_sched *sc = &sched_cases[c];
        for (int s = 0; s < SCHED_STEPS; s++) {
            if (sc->kind == NAS_SCHED_COSINE && s > sc->total_steps) {
                break; /* torch's cosine rises again after T_max; ours holds eta_min */
            }
            const double want = ref.sched_out[c * SCHED_STEPS + s];
            const double got = (double)nas_sched_lr(&sched_cases[c], s);
            CHECK(fabs(got - want) <= 1e-6 * fabs(want) + 1e-12,
                  "schedule %d step %d: %.9g vs torch %.9g", c, s, got, want);
        }
    }
    /* Past its period the cosine schedule stays at eta_min (documented; torch would rise again). */
    const nas_sched cos = {
        .kind = NAS_SCHED_COSINE, .base_lr = 0.1f, .min_lr = 0.002f, .total_steps = 10};
    CHECK(nas_sched_lr(&cos, 10) == 0.002f && nas_sched_lr(&cos, 25) == 0.002f,
          "cosine after T_max");
}

static void test_clip_vs_torch(void) {
    CHECK(ref.ok, "no PyTorch reference");
    if (!ref.ok) {
        return;
    }
    const int64_t total = compact_total(0), net = compact_total(1);
    float *g = malloc((size_t)total * 4), *all = malloc((size_t)total * 4);
    for (int c = 0; c < N_CLIP; c++) {
        nas_ctx *ctx = nas_ctx_new();
        nas_params *p = make_params(ctx, 1);
        for (int64_t i = 0; i < total; i++) {
            g[i] = 3.0f * ref.grads[i];
        }
        scatter(p, nas_params_grad(p), g);
        const double norm = nas_clip_grad_norm(p, NET_MASK, 0, clip_cases[c]);
        const double *want = ref.clip_out + (size_t)c * (1 + net);
        CHECK(rel_err(norm, want[0]) < 1e-6, "clip %g: norm %.9g vs torch %.9g",
              (double)clip_cases[c], norm, want[0]);
        gather(p, nas_params_grad(p), 0, all);
        int64_t at = 0, k = 0;
        double worst = 0.0;
        for (int i = 0; i < N_SPECS; i++) {
            for (int64_t j = 0; j < spec_numel(&specs[i]); j++, at++) {
                if (is_net(specs[i].flags)) {
                    worst = fmax(worst, rel_err(all[at], want[1 + k++]));
                } else {
                    CHECK(all[at] == g[at], "clip touched %s", specs[i].name);
                }
            }
        }
        CHECK(worst < 1e-5, "clip %g: clipped gradients rel err %.3g", (double)clip_cases[c],
              worst);
        nas_params_free(p);
        nas_ctx_free(ctx);
    }
    free(g);
    free(all);
    /* The norm does not depend on the thread count. */
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = make_params(ctx, 1);
    scatter(p, nas_params_grad(p), ref.grads);
    const int saved = nas_get_threads();
    nas_set_threads(1);
    const double n1 = nas_clip_grad_norm(p, NET_MASK, 0, 1e9);
    nas_set_threads(2);
    const double n2 = nas_clip_grad_norm(p, NET_MASK, 0, 1e9);
    nas_set_threads(saved);
    CHECK(n1 == n2, "norm with 1 thread %.17g, with 2 threads %.17g", n1, n2);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

/* --------------------------------------------------------------- allocation discipline */

static void test_step_no_alloc(void) {
    test_alloc ta = {.fail_at = -1};
    nas_ctx *ctx = nas_ctx_new_with_allocator(ta_fn, &ta);
    nas_params *p = make_params(ctx, 3);
    for (int c = 0; c < N_OPTIM; c++) {
        nas_optim_config cfg = optim_cases[c].cfg;
        nas_optim *o = NULL;
        CHECK(nas_optim_new(p, &cfg, &o) == NAS_OK, "optim_new: %s", nas_errmsg(ctx));
        const long before = ta.calls;
        for (int s = 0; s < 3; s++) {
            nas_rng r = nas_rng_make(5, (uint64_t)s);
            nas_rng_fill_normal(&r, nas_params_grad(p), nas_params_total(p), 0.0f, 1.0f);
            nas_clip_grad_norm(p, NET_MASK, 0, 1.0);
            CHECK(nas_optim_step(o, 0.01f) == NAS_OK, "step: %s", nas_errmsg(ctx));
        }
        CHECK(ta.calls == before, "%s: step/clip made %ld allocator calls", optim_cases[c].label,
              ta.calls - before);
        nas_optim_free(o);
    }
    nas_params_free(p);
    CHECK(ta.live == 1, "%ld blocks outstanding (only the context should be)", ta.live);
    nas_ctx_free(ctx);
}

/* Fail each allocation nas_optim_new makes in turn: NAS_ERR_NOMEM, nothing leaked. */
static void test_optim_new_nomem(void) {
    test_alloc ta = {.fail_at = -1};
    nas_ctx *ctx = nas_ctx_new_with_allocator(ta_fn, &ta);
    nas_params *p = make_params(ctx, 3);
    const nas_optim_config cfgs[] = {{.kind = NAS_OPTIM_SGD, .momentum = 0.9f},
                                     {.kind = NAS_OPTIM_ADAMW}};
    for (int c = 0; c < 2; c++) {
        int failures = 0;
        for (long k = 0; k < 20; k++) {
            const long live = ta.live, bytes = (long)ta.bytes;
            ta.fail_at = ta.calls + k;
            nas_optim *o = NULL;
            const nas_status st = nas_optim_new(p, &cfgs[c], &o);
            ta.fail_at = -1;
            if (st == NAS_OK) {
                nas_optim_free(o);
                CHECK(ta.live == live && ta.bytes == bytes, "optim_free leaked");
                break;
            }
            failures++;
            CHECK(st == NAS_ERR_NOMEM, "failure %ld gave %s", k, nas_status_name(st));
            CHECK(o == NULL, "out set on failure");
            CHECK(ta.live == live && ta.bytes == bytes,
                  "failure at allocation %ld leaked %ld blocks", k, ta.live - live);
        }
        CHECK(failures >= 2, "only %d allocations were failed", failures);
    }
    nas_params_free(p);
    nas_ctx_free(ctx);
}

static void test_optim_args(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = make_params(ctx, 3);
    nas_optim *o = NULL;
    const nas_optim_config bad[] = {
        {.kind = NAS_OPTIM_SGD, .nesterov = 1},
        {.kind = NAS_OPTIM_SGD, .momentum = -0.5f},
        {.kind = NAS_OPTIM_ADAM, .beta1 = 1.0f},
        {.kind = NAS_OPTIM_ADAMW, .weight_decay = -1.0f},
        {.kind = (nas_optim_kind)7},
        {.kind = NAS_OPTIM_SGD, .flags_mask = NAS_PARAM_ARCH, .flags_value = NAS_PARAM_BUFFER},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(nas_optim_new(p, &bad[i], &o) == NAS_ERR_ARG && o == NULL, "bad config %zu accepted",
              i);
        CHECK(strstr(nas_errmsg(ctx), "optim_new") != NULL, "message: %s", nas_errmsg(ctx));
    }
    const nas_optim_config ok = {.kind = NAS_OPTIM_SGD, .momentum = 0.9f};
    CHECK(nas_optim_new(p, &ok, &o) == NAS_OK, "good config: %s", nas_errmsg(ctx));
    CHECK(nas_optim_step(o, NAN) == NAS_ERR_ARG, "NaN lr accepted");
    CHECK(nas_optim_step(o, -1.0f) == NAS_ERR_ARG, "negative lr accepted");
    int64_t shape[1] = {3};
    nas_param_id id;
    nas_params_add(p, "late", 1, shape, NAS_INIT_ZEROS, 0, 0, &id);
    CHECK(nas_optim_step(o, 0.1f) == NAS_ERR_STATE, "a step after adding a parameter must fail");
    nas_optim_free(o);
    nas_optim_free(NULL);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

/* The DARTS split: an Adam on the architecture weights only and an SGD on the rest. */
static void test_arch_optimiser(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *p = make_params(ctx, 9);
    const int64_t total = nas_params_total(p);
    float *before = malloc((size_t)total * 4);
    memcpy(before, nas_params_data(p), (size_t)total * 4);
    const nas_optim_config cfg = {.kind = NAS_OPTIM_ADAM,
                                  .weight_decay = 1e-3f,
                                  .flags_mask = NAS_PARAM_ARCH,
                                  .flags_value = NAS_PARAM_ARCH};
    nas_optim *o = NULL;
    CHECK(nas_optim_new(p, &cfg, &o) == NAS_OK, "arch optim: %s", nas_errmsg(ctx));
    CHECK(nas_optim_n_updated(o) == 6, "arch optimiser updates %lld floats",
          (long long)nas_optim_n_updated(o));
    for (int64_t i = 0; i < total; i++) {
        nas_params_grad(p)[i] = 1.0f;
    }
    nas_optim_step(o, 0.1f);
    for (int i = 0; i < N_SPECS; i++) {
        const float *a = nas_params_data(p) + nas_param_offset(p, i),
                    *b = before + nas_param_offset(p, i);
        const int changed = memcmp(a, b, (size_t)spec_numel(&specs[i]) * 4) != 0;
        CHECK(changed == (specs[i].flags == NAS_PARAM_ARCH), "%s changed=%d", specs[i].name,
              changed);
    }
    /* Adam's first step moves each weight by lr * sign(g) (up to eps and decay). */
    const float *alpha = nas_params_data(p) + nas_param_offset(p, 4),
                *a0 = before + nas_param_offset(p, 4);
    for (int k = 0; k < 6; k++) {
        CHECK(fabs((a0[k] - alpha[k]) - 0.1) < 1e-5, "alpha[%d] moved %g", k,
              (double)(a0[k] - alpha[k]));
    }
    free(before);
    nas_optim_free(o);
    nas_params_free(p);
    nas_ctx_free(ctx);
}

/* -------------------------------------------------------------------------- weight files */

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

/* A small model: few entries, so every byte of its file can be damaged in turn. */
static nas_params *small_params(nas_ctx *ctx, uint64_t seed, const char *second_name,
                                int64_t second_cols) {
    nas_params *p = nas_params_new(ctx);
    nas_param_id id;
    int64_t s1[2] = {3, 2}, s2[2] = {2, second_cols}, s3[1] = {2};
    nas_params_add(p, "conv.weight", 2, s1, NAS_INIT_ZEROS, 0, 0, &id);
    nas_params_add(p, second_name, 2, s2, NAS_INIT_ZEROS, 0, 0, &id);
    nas_params_add(p, "bn.running_var", 1, s3, NAS_INIT_ZEROS, NAS_PARAM_BUFFER, 0, &id);
    nas_rng r = nas_rng_make(seed, 1);
    nas_rng_fill_normal(&r, nas_params_data(p), nas_params_total(p), 0.0f, 1.0f);
    return p;
}

static int params_equal(const nas_params *a, const nas_params *b) {
    if (nas_params_count(a) != nas_params_count(b)) {
        return 0;
    }
    for (int64_t i = 0; i < nas_params_count(a); i++) {
        if (memcmp(nas_params_data(a) + nas_param_offset(a, i),
                   nas_params_data(b) + nas_param_offset(b, i),
                   (size_t)nas_param_numel(a, i) * 4) != 0) {
            return 0;
        }
    }
    return 1;
}

static int no_temp_files_left(void) {
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -q '\\.tmp\\.'", tmpdir);
    return system(cmd) != 0;
}

static void test_weights_roundtrip(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *a = make_params(ctx, 11), *b = make_params(ctx, 12);
    CHECK(!params_equal(a, b), "different seeds must differ");
    CHECK(nas_weights_save(a, tmp_path("w.bin")) == NAS_OK, "save: %s", nas_errmsg(ctx));
    CHECK(nas_weights_save(a, tmp_path("w.bin")) == NAS_OK, "save over an existing file: %s",
          nas_errmsg(ctx));
    CHECK(nas_weights_load(b, tmp_path("w.bin")) == NAS_OK, "load: %s", nas_errmsg(ctx));
    CHECK(params_equal(a, b), "round trip is not exact");
    CHECK(no_temp_files_left(), "temporary files left in %s", tmpdir);
    /* File size: header + tables + floats + CRC, nothing else. */
    struct stat sb;
    stat(tmp_path("w.bin"), &sb);
    int64_t tables = 0;
    for (int i = 0; i < N_SPECS; i++) {
        tables += 4 + (int64_t)strlen(specs[i].name) + 4 + 8 * specs[i].ndim;
    }
    CHECK((int64_t)sb.st_size == 64 + tables + 4 * compact_total(0) + 4, "file size %lld",
          (long long)sb.st_size);
    /* Entries in another order still load (matched by name). */
    nas_params *c = nas_params_new(ctx);
    for (int i = N_SPECS - 1; i >= 0; i--) {
        nas_param_id id;
        nas_params_add(c, specs[i].name, specs[i].ndim, specs[i].shape, NAS_INIT_ZEROS,
                       specs[i].flags, 0, &id);
    }
    CHECK(nas_weights_load(c, tmp_path("w.bin")) == NAS_OK, "reordered load: %s", nas_errmsg(ctx));
    for (int i = 0; i < N_SPECS; i++) {
        const nas_param_id j = nas_params_find(c, specs[i].name);
        CHECK(memcmp(nas_params_data(c) + nas_param_offset(c, j),
                     nas_params_data(a) + nas_param_offset(a, i),
                     (size_t)spec_numel(&specs[i]) * 4) == 0,
              "reordered %s", specs[i].name);
    }
    CHECK(nas_weights_save(a, "/nonexistent-dir/w.bin") == NAS_ERR_IO &&
              strstr(nas_errmsg(ctx), "/nonexistent-dir/w.bin") != NULL,
          "unwritable path: %s", nas_errmsg(ctx));
    CHECK(nas_weights_load(a, tmp_path("missing.bin")) == NAS_ERR_IO &&
              strstr(nas_errmsg(ctx), "missing.bin") != NULL,
          "missing file: %s", nas_errmsg(ctx));
    nas_params_free(a);
    nas_params_free(b);
    nas_params_free(c);
    nas_ctx_free(ctx);
}

/* Load `bytes` written to a scratch file into p; returns the status. */
static nas_status load_bytes(nas_params *p, const unsigned char *bytes, size_t n) {
    write_file(tmp_path("damaged.bin"), bytes, n);
    return nas_weights_load(p, tmp_path("damaged.bin"));
}

static void test_weights_truncated(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *a = small_params(ctx, 1, "fc.weight", 3), *b = small_params(ctx, 2, "fc.weight", 3);
    nas_weights_save(a, tmp_path("small.bin"));
    size_t n = 0;
    unsigned char *bytes = read_whole(tmp_path("small.bin"), &n);
    CHECK(bytes != NULL && n > 100, "small file of %zu bytes", n);
    nas_params *b0 = small_params(ctx, 2, "fc.weight", 3);
    int bad = 0;
    for (size_t cut = 0; cut < n && bytes != NULL; cut++) {
        const nas_status st = load_bytes(b, bytes, cut);
        char want[64];
        snprintf(want, sizeof(want), "byte offset %zu ", cut);
        const char *msg = nas_errmsg(ctx);
        if (st != NAS_ERR_FORMAT || strstr(msg, want) == NULL || strstr(msg, "truncated") == NULL ||
            strstr(msg, "damaged.bin") == NULL) {
            if (bad++ < 5) {
                CHECK(0, "cut at %zu: %s: %s", cut, nas_status_name(st), msg);
            }
        }
    }
    CHECK(bad == 0, "%d of %zu cut points misreported", bad, n);
    CHECK(params_equal(b, b0), "failed loads changed the parameters");
    CHECK(load_bytes(b, bytes, n) == NAS_OK && params_equal(a, b), "the whole file loads: %s",
          nas_errmsg(ctx));
    /* Bytes appended: an error naming the offset. */
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, bytes, n);
    memset(longer + n, 0, 3);
    CHECK(load_bytes(b, longer, n + 3) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "unexpected bytes") != NULL,
          "trailing bytes: %s", nas_errmsg(ctx));
    free(longer);
    free(bytes);
    nas_params_free(a);
    nas_params_free(b);
    nas_params_free(b0);
    nas_ctx_free(ctx);
}

static void test_weights_corrupt(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *a = small_params(ctx, 1, "fc.weight", 3), *b = small_params(ctx, 2, "fc.weight", 3);
    nas_params *b0 = small_params(ctx, 2, "fc.weight", 3);
    nas_weights_save(a, tmp_path("small.bin"));
    size_t n = 0;
    unsigned char *bytes = read_whole(tmp_path("small.bin"), &n);
    int bad = 0;
    for (size_t i = 0; i < n && bytes != NULL; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            bytes[i] ^= (unsigned char)(1u << bit);
            const nas_status st = load_bytes(b, bytes, n);
            bytes[i] ^= (unsigned char)(1u << bit);
            const char *msg = nas_errmsg(ctx);
            const char *want = i < 8    ? "not a nascent weight file"
                               : i < 12 ? "version"
                                        : "checksum";
            if (st != NAS_ERR_FORMAT || strstr(msg, want) == NULL) {
                if (bad++ < 5) {
                    CHECK(0, "flip byte %zu bit %d: %s: %s (wanted '%s')", i, bit,
                          nas_status_name(st), msg, want);
                }
            }
        }
    }
    CHECK(bad == 0, "%d flips misreported", bad);
    CHECK(params_equal(b, b0), "failed loads changed the parameters");
    /* A future version, with a valid header checksum. */
    if (bytes != NULL) {
        unsigned char *v = malloc(n);
        memcpy(v, bytes, n);
        v[8] = 2;
        const uint32_t crc = (uint32_t)crc32(0, v, 56);
        for (int k = 0; k < 4; k++) {
            v[56 + k] = (unsigned char)(crc >> (8 * k));
        }
        CHECK(load_bytes(b, v, n) == NAS_ERR_FORMAT && strstr(nas_errmsg(ctx), "version 2") != NULL,
              "version 2: %s", nas_errmsg(ctx));
        free(v);
    }
    /* Foreign files. */
    const char *text = "{\"epoch\": 3, \"this\": \"is JSON, not weights\"}\n";
    CHECK(load_bytes(b, (const unsigned char *)text, strlen(text)) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "not a nascent weight file") != NULL,
          "JSON file: %s", nas_errmsg(ctx));
    const unsigned char png[16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n',
                                   0,    0,   0,   13,  'I',  'H',  'D',  'R'};
    CHECK(load_bytes(b, png, sizeof(png)) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "not a nascent weight file") != NULL,
          "PNG file: %s", nas_errmsg(ctx));
    CHECK(params_equal(b, b0), "failed loads changed the parameters");
    free(bytes);
    nas_params_free(a);
    nas_params_free(b);
    nas_params_free(b0);
    nas_ctx_free(ctx);
}

static void test_weights_mismatch(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *a = small_params(ctx, 1, "fc.weight", 3);
    nas_weights_save(a, tmp_path("small.bin"));
    nas_params *renamed = small_params(ctx, 2, "head.weight", 3);
    CHECK(nas_weights_load(renamed, tmp_path("small.bin")) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "'head.weight'") != NULL,
          "renamed: %s", nas_errmsg(ctx));
    nas_params *reshaped = small_params(ctx, 2, "fc.weight", 4);
    CHECK(nas_weights_load(reshaped, tmp_path("small.bin")) == NAS_ERR_SHAPE &&
              strstr(nas_errmsg(ctx), "'fc.weight'") != NULL &&
              strstr(nas_errmsg(ctx), "[2, 3]") != NULL &&
              strstr(nas_errmsg(ctx), "[2, 4]") != NULL,
          "reshaped: %s", nas_errmsg(ctx));
    /* A model with one parameter fewer: the file's extra one is named. */
    nas_params *fewer = nas_params_new(ctx);
    nas_param_id id;
    int64_t s1[2] = {3, 2}, s2[2] = {2, 3};
    nas_params_add(fewer, "conv.weight", 2, s1, NAS_INIT_ZEROS, 0, 0, &id);
    nas_params_add(fewer, "fc.weight", 2, s2, NAS_INIT_ZEROS, 0, 0, &id);
    CHECK(nas_weights_load(fewer, tmp_path("small.bin")) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "'bn.running_var'") != NULL,
          "fewer: %s", nas_errmsg(ctx));
    /* One more: the missing one is named. */
    nas_params *more = small_params(ctx, 2, "fc.weight", 3);
    int64_t s3[1] = {5};
    nas_params_add(more, "extra.bias", 1, s3, NAS_INIT_ZEROS, 0, 0, &id);
    CHECK(nas_weights_load(more, tmp_path("small.bin")) == NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "'extra.bias'") != NULL,
          "more: %s", nas_errmsg(ctx));
    nas_params_free(a);
    nas_params_free(renamed);
    nas_params_free(reshaped);
    nas_params_free(fewer);
    nas_params_free(more);
    nas_ctx_free(ctx);
}

/* ---------------------------------------------------------------------------- checkpoints */

static void test_checkpoint_roundtrip(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_params *a = make_params(ctx, 21), *b = make_params(ctx, 22);
    float x[7] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f, 65504.0f}, y[3] = {9, 8, 7};
    const char *names[2] = {"optim.state", "rng"};
    const float *xs[2] = {x, y};
    const int64_t lens[2] = {7, 3};
    const char *meta = "{\"epoch\": 4, \"seed\": 7, \"rng_counter\": 123456789012}";
    CHECK(nas_checkpoint_save(a, tmp_path("ck.bin"), meta, 2, names, xs, lens) == NAS_OK,
          "save: %s", nas_errmsg(ctx));
    float x2[7] = {0}, y2[3] = {0};
    float *outs[2] = {x2, y2};
    char *meta2 = NULL;
    CHECK(nas_checkpoint_load(b, tmp_path("ck.bin"), 2, names, outs, lens, &meta2) == NAS_OK,
          "load: %s", nas_errmsg(ctx));
    CHECK(params_equal(a, b), "params");
    CHECK(memcmp(x, x2, sizeof(x)) == 0 && memcmp(y, y2, sizeof(y)) == 0, "extras");
    CHECK(meta2 != NULL && strcmp(meta2, meta) == 0, "meta: %s", meta2 ? meta2 : "(null)");
    if (meta2 != NULL) {
        nas_free(ctx, meta2, strlen(meta2) + 1);
    }
    /* Only some extras requested, in another order. */
    const char *one[1] = {"rng"};
    float *outs1[1] = {y2};
    const int64_t len1[1] = {3};
    CHECK(nas_checkpoint_load(b, tmp_path("ck.bin"), 1, one, outs1, len1, NULL) == NAS_OK,
          "subset: %s", nas_errmsg(ctx));
    /* A weights-only reader takes the checkpoint. */
    CHECK(nas_weights_load(b, tmp_path("ck.bin")) == NAS_OK, "weights_load of a checkpoint: %s",
          nas_errmsg(ctx));
    /* Missing extra, wrong length: named errors, nothing written. */
    const char *missing[1] = {"optim.exp_avg"};
    CHECK(nas_checkpoint_load(b, tmp_path("ck.bin"), 1, missing, outs1, len1, &meta2) ==
                  NAS_ERR_FORMAT &&
              strstr(nas_errmsg(ctx), "'optim.exp_avg'") != NULL && meta2 == NULL,
          "missing extra: %s", nas_errmsg(ctx));
    const int64_t wrong[1] = {4};
    y2[0] = -1.0f;
    CHECK(nas_checkpoint_load(b, tmp_path("ck.bin"), 1, one, outs1, wrong, NULL) == NAS_ERR_SHAPE &&
              strstr(nas_errmsg(ctx), "'rng'") != NULL && y2[0] == -1.0f,
          "wrong length: %s", nas_errmsg(ctx));
    /* A weights file read as a checkpoint gives empty metadata. */
    nas_weights_save(a, tmp_path("w2.bin"));
    CHECK(nas_checkpoint_load(b, tmp_path("w2.bin"), 0, NULL, NULL, NULL, &meta2) == NAS_OK &&
              meta2 != NULL && meta2[0] == '\0',
          "empty meta");
    if (meta2 != NULL) {
        nas_free(ctx, meta2, 1);
    }
    nas_params_free(a);
    nas_params_free(b);
    nas_ctx_free(ctx);
}

/* Stop after 4 steps, checkpoint params + optimiser state, resume in fresh objects: the final
 * weights equal those of an uninterrupted run, bit for bit. */
static void test_checkpoint_resume(void) {
    for (int c = 0; c < N_OPTIM; c++) {
        nas_ctx *ctx = nas_ctx_new();
        nas_params *p = make_params(ctx, 31), *q = make_params(ctx, 99);
        nas_optim *o = NULL, *o2 = NULL;
        nas_optim_new(p, &optim_cases[c].cfg, &o);
        nas_optim_new(q, &optim_cases[c].cfg, &o2);
        for (int s = 0; s < 8; s++) {
            if (s == 4) {
                int64_t n = 0;
                const float *st = nas_optim_state(o, &n);
                const char *nm[1] = {"optim"};
                char meta[64];
                snprintf(meta, sizeof(meta), "{\"steps\": %lld}", (long long)nas_optim_steps(o));
                CHECK(nas_checkpoint_save(p, tmp_path("resume.bin"), meta, 1, nm, &st, &n) ==
                          NAS_OK,
                      "save: %s", nas_errmsg(ctx));
                char *m = NULL;
                float *st2 = nas_optim_state(o2, &n);
                CHECK(nas_checkpoint_load(q, tmp_path("resume.bin"), 1, nm, &st2, &n, &m) == NAS_OK,
                      "load: %s", nas_errmsg(ctx));
                long long steps = -1;
                if (m != NULL) {
                    sscanf(m, "{\"steps\": %lld}", &steps);
                    nas_free(ctx, m, strlen(m) + 1);
                }
                nas_optim_set_steps(o2, steps);
            }
            nas_rng r = nas_rng_make(77, (uint64_t)s);
            nas_rng_fill_normal(&r, nas_params_grad(p), nas_params_total(p), 0.0f, 1.0f);
            memcpy(nas_params_grad(q), nas_params_grad(p), (size_t)nas_params_total(p) * 4);
            nas_optim_step(o, 0.01f * (float)(s + 1));
            if (s >= 4) {
                nas_optim_step(o2, 0.01f * (float)(s + 1));
            }
        }
        CHECK(params_equal(p, q), "%s: resumed run differs", optim_cases[c].label);
        nas_optim_free(o);
        nas_optim_free(o2);
        nas_params_free(p);
        nas_params_free(q);
        nas_ctx_free(ctx);
    }
}

/* Every allocation of save and load failed in turn: NAS_ERR_NOMEM, no leak, p unchanged. */
static void test_weights_nomem(void) {
    test_alloc ta = {.fail_at = -1};
    nas_ctx *ctx = nas_ctx_new_with_allocator(ta_fn, &ta);
    nas_params *a = small_params(ctx, 1, "fc.weight", 3), *b = small_params(ctx, 2, "fc.weight", 3);
    nas_params *b0 = small_params(ctx, 2, "fc.weight", 3);
    const char *nm[1] = {"x"};
    float x[2] = {1, 2};
    const float *xs[1] = {x};
    float *outs[1] = {x};
    const int64_t len[1] = {2};
    int failures = 0;
    for (long k = 0; k < 20; k++) {
        const long live = ta.live;
        ta.fail_at = ta.calls + k;
        const nas_status st = nas_checkpoint_save(a, tmp_path("oom.bin"), "m", 1, nm, xs, len);
        ta.fail_at = -1;
        CHECK(ta.live == live, "save failure %ld leaked", k);
        if (st == NAS_OK) {
            break;
        }
        failures++;
        CHECK(st == NAS_ERR_NOMEM, "save failure %ld: %s", k, nas_status_name(st));
    }
    for (long k = 0; k < 20; k++) {
        const long live = ta.live;
        char *meta = NULL;
        ta.fail_at = ta.calls + k;
        const nas_status st = nas_checkpoint_load(b, tmp_path("oom.bin"), 1, nm, outs, len, &meta);
        ta.fail_at = -1;
        if (st == NAS_OK) {
            CHECK(meta != NULL && strcmp(meta, "m") == 0, "meta");
            nas_free(ctx, meta, 2);
            CHECK(ta.live == live, "load leaked");
            break;
        }
        failures++;
        CHECK(st == NAS_ERR_NOMEM, "load failure %ld: %s", k, nas_status_name(st));
        CHECK(ta.live == live, "load failure %ld leaked %ld blocks", k, ta.live - live);
        CHECK(params_equal(b, b0), "a failed load changed the parameters");
    }
    CHECK(failures >= 4, "only %d allocations failed", failures);
    CHECK(params_equal(a, b), "final load");
    CHECK(no_temp_files_left(), "temporary files left");
    nas_params_free(a);
    nas_params_free(b);
    nas_params_free(b0);
    nas_ctx_free(ctx);
}

int main(void) {
    /* tmpfs when there is one: the saves fsync, which costs a disk round trip elsewhere. */
    struct stat sb;
    const char *base =
        stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/nas_test_weights_XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    run_reference();
    RUN_TEST(test_optim_vs_torch);
    RUN_TEST(test_optim_threads);
    RUN_TEST(test_sched_vs_torch);
    RUN_TEST(test_clip_vs_torch);
    RUN_TEST(test_step_no_alloc);
    RUN_TEST(test_optim_new_nomem);
    RUN_TEST(test_optim_args);
    RUN_TEST(test_arch_optimiser);
    RUN_TEST(test_weights_roundtrip);
    RUN_TEST(test_weights_truncated);
    RUN_TEST(test_weights_corrupt);
    RUN_TEST(test_weights_mismatch);
    RUN_TEST(test_checkpoint_roundtrip);
    RUN_TEST(test_checkpoint_resume);
    RUN_TEST(test_weights_nomem);
    free_reference();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return check_report("optim");
}
