/* test_train.c - the trainer on small data:
 *  - resume: a run killed (SIGKILL, in a child process) after epoch 1 and resumed reaches the
 *    same final weights, bit for bit, as an uninterrupted run (NB201 with batch norm, crop+flip
 *    augmentation, Nesterov, weight decay, cosine; prefetch on in one run and off in the other);
 *  - CIFAR-10 and CIFAR-100 files written here train an NB201 net (small C, 1 cell) and the
 *    training loss falls on a learnable signal; a truncated file is named with its offset;
 *  - a NaN loss stops training with NAS_ERR_NUMERIC and keeps the last good checkpoint;
 *  - a model that does not fit the data or cannot be built is a clear error;
 *  - a steady-state step makes no allocation (counting allocator);
 *  - nas_model_evaluate agrees with an accuracy computed by hand from the logits. */
#include "check.h"
#include "nascent.h"

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* A CIFAR-format file of n records whose class is visible in the image: class k brightens the
 * block of rows k*3..k*3+2 (k mod 10), plus noise, so a small net learns it in a few epochs. */
static void write_cifar(const char *path, int n, int classes, uint64_t seed) {
    const size_t lb = classes == 100 ? 2 : 1, rec = lb + 3072;
    uint8_t *buf = malloc((size_t)n * rec);
    nas_rng r = nas_rng_make(seed, 1);
    for (int i = 0; i < n; i++) {
        uint8_t *p = buf + (size_t)i * rec;
        const int k = (int)nas_rng_below(&r, classes);
        if (classes == 100) {
            p[0] = (uint8_t)(k / 5);
        }
        p[lb - 1] = (uint8_t)k;
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < 32; y++) {
                for (int x = 0; x < 32; x++) {
                    const int bright = y / 3 == k % 10;
                    p[lb + c * 1024 + y * 32 + x] =
                        (uint8_t)(bright ? 200 : 40) + (uint8_t)nas_rng_below(&r, 40);
                }
            }
        }
    }
    write_bytes(path, buf, (size_t)n * rec);
    free(buf);
}

/* dir/cifar10/{data_batch_1.bin, test_batch.bin} */
static void make_cifar10_dir(const char *dir, int n_train, int n_test) {
    char p[512];
    mkdir(dir, 0755);
    snprintf(p, sizeof(p), "%s/data_batch_1.bin", dir);
    write_cifar(p, n_train, 10, 1);
    snprintf(p, sizeof(p), "%s/test_batch.bin", dir);
    write_cifar(p, n_test, 10, 2);
}

static nas_model *nb201_small(nas_ctx *ctx, int classes) {
    const nas_nb201_op ops[6] = {NAS_NB201_CONV3, NAS_NB201_CONV1, NAS_NB201_POOL3,
                                 NAS_NB201_SKIP,  NAS_NB201_CONV3, NAS_NB201_NONE};
    nas_model *m = NULL;
    const nas_model_shape s = {3, 32, 32, classes};
    if (nas_net_nb201(ctx, ops, 4, 1, s, &m) != NAS_OK) {
        fprintf(stderr, "nb201: %s\n", nas_errmsg(ctx));
    }
    return m;
}

static void resume_config(nas_train_config *c, const char *out) {
    nas_train_config_default(c);
    c->epochs = 2;
    c->batch = 16;
    c->lr = 0.05f;
    c->valid_fraction = 0.2;
    c->augment = 1;
    c->seed = 7;
    c->out_dir = out;
}

static int kill_after_epoch1(void *user, const nas_train_progress *p) {
    (void)user;
    if (p->event == NAS_TRAIN_EPOCH_END && p->epoch == 1) {
        raise(SIGKILL); /* a real crash: nothing after the checkpoint runs */
    }
    return 0;
}

static char cifar_dir[300], out_a[300], out_b[300];

/* Runs before anything uses OpenMP in this process (fork and libgomp do not mix): the child
 * trains in out_b and is killed at the end of epoch 1. */
static int interrupted_child_status;

static void run_interrupted_child(void) {
    const pid_t pid = fork();
    if (pid == 0) {
        nas_ctx *ctx = nas_ctx_new();
        nas_dataset *tr = NULL, *te = NULL;
        if (nas_dataset_open(ctx, "cifar10", cifar_dir, 0, &tr) != NAS_OK ||
            nas_dataset_open(ctx, "cifar10", cifar_dir, 1, &te) != NAS_OK) {
            _exit(10);
        }
        nas_model *m = nb201_small(ctx, 10);
        nas_train_config c;
        resume_config(&c, out_b);
        c.prefetch = 0;
        c.progress = kill_after_epoch1;
        nas_train_model(ctx, m, tr, te, &c, NULL);
        _exit(11); /* not reached when the kill works */
    }
    waitpid(pid, &interrupted_child_status, 0);
}

static void test_resume_bitwise(void) {
    CHECK(WIFSIGNALED(interrupted_child_status) && WTERMSIG(interrupted_child_status) == SIGKILL,
          "child was not killed (status %d)", interrupted_child_status);
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *tr = NULL, *te = NULL;
    CHECK(nas_dataset_open(ctx, "cifar10", cifar_dir, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
    CHECK(nas_dataset_open(ctx, "cifar10", cifar_dir, 1, &te) == NAS_OK, "%s", nas_errmsg(ctx));
    /* after the kill: a checkpoint of epoch 1, one metrics line, no result */
    char p[512];
    snprintf(p, sizeof(p), "%s/result.json", out_b);
    CHECK(access(p, F_OK) != 0, "killed run wrote result.json");
    nas_model *a = nb201_small(ctx, 10), *b = nb201_small(ctx, 10);
    nas_train_config c;
    nas_train_result ra, rb;
    resume_config(&c, out_a);
    CHECK(nas_train_model(ctx, a, tr, te, &c, &ra) == NAS_OK, "uninterrupted: %s",
          nas_errmsg(ctx));
    resume_config(&c, out_b);
    c.resume = 1;
    CHECK(nas_train_model(ctx, b, tr, te, &c, &rb) == NAS_OK, "resume: %s", nas_errmsg(ctx));
    CHECK(rb.resumed_from == 1 && rb.epochs_done == 2, "resumed from %d, done %d",
          rb.resumed_from, rb.epochs_done);
    CHECK(ra.steps == rb.steps, "steps %lld vs %lld", (long long)ra.steps, (long long)rb.steps);
    nas_params *pa = nas_model_params(a), *pb = nas_model_params(b);
    const int64_t n = nas_params_total(pa);
    CHECK(n == nas_params_total(pb), "sizes");
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++) {
        differ += memcmp(&nas_params_data(pa)[i], &nas_params_data(pb)[i], sizeof(float)) != 0;
    }
    CHECK(differ == 0, "%lld of %lld parameter floats differ after resume", (long long)differ,
          (long long)n);
    CHECK(ra.test_accuracy == rb.test_accuracy && ra.valid_accuracy == rb.valid_accuracy,
          "accuracies %g/%g vs %g/%g", ra.test_accuracy, ra.valid_accuracy, rb.test_accuracy,
          rb.valid_accuracy);
    /* the checkpoints on disk hold the same weights, and metrics.jsonl has both epochs */
    nas_model *ca = nb201_small(ctx, 10);
    snprintf(p, sizeof(p), "%s/checkpoint.bin", out_a);
    CHECK(nas_weights_load(nas_model_params(ca), p) == NAS_OK, "load: %s", nas_errmsg(ctx));
    CHECK(memcmp(nas_params_data(nas_model_params(ca)), nas_params_data(pa),
                 (size_t)n * sizeof(float)) == 0,
          "checkpoint differs from the final weights");
    snprintf(p, sizeof(p), "%s/metrics.jsonl", out_b);
    FILE *f = fopen(p, "r");
    int lines = 0;
    char line[2048];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        lines++;
        CHECK(strstr(line, "\"valid_accuracy\"") != NULL && strstr(line, "\"train_loss\"") != NULL,
              "metrics line: %s", line);
    }
    if (f != NULL) {
        fclose(f);
    }
    CHECK(lines == 2, "metrics.jsonl has %d lines", lines);
    /* a resume with other settings is refused */
    resume_config(&c, out_b);
    c.resume = 1;
    c.lr = 0.07f;
    CHECK(nas_train_model(ctx, b, tr, te, &c, NULL) == NAS_ERR_STATE &&
              strstr(nas_errmsg(ctx), "other settings") != NULL,
          "mismatched resume: %s", nas_errmsg(ctx));
    nas_model_free(a);
    nas_model_free(b);
    nas_model_free(ca);
    nas_dataset_free(tr);
    nas_dataset_free(te);
    nas_ctx_free(ctx);
}

/* CIFAR-10 and CIFAR-100 files: an NB201 net trains; the loss falls; evaluation agrees with a
 * hand count. */
static void test_cifar_nb201(void) {
    nas_ctx *ctx = nas_ctx_new();
    for (int v = 0; v < 2; v++) {
        const int classes = v ? 100 : 10;
        char dir[400], p[512];
        snprintf(dir, sizeof(dir), "%s/c%d", tmpdir, classes);
        mkdir(dir, 0755);
        snprintf(p, sizeof(p), "%s/%s", dir, v ? "train.bin" : "data_batch_1.bin");
        write_cifar(p, 192, classes, 3);
        snprintf(p, sizeof(p), "%s/%s", dir, v ? "test.bin" : "test_batch.bin");
        write_cifar(p, 64, classes, 4);
        nas_dataset *tr = NULL, *te = NULL;
        const char *name = v ? "cifar100" : "cifar10";
        CHECK(nas_dataset_open(ctx, name, dir, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
        CHECK(nas_dataset_open(ctx, name, dir, 1, &te) == NAS_OK, "%s", nas_errmsg(ctx));
        nas_model *m = nb201_small(ctx, classes);
        if (tr == NULL || te == NULL || m == NULL) {
            continue;
        }
        nas_train_config c;
        nas_train_config_default(&c);
        c.epochs = 4;
        c.batch = 32;
        c.lr = 0.1f;
        c.augment = 0;
        c.valid_fraction = 0.0;
        c.test_every_epoch = 1;
        nas_train_result r;
        nas_epoch_metrics first = {0};
        CHECK(nas_train_model(ctx, m, tr, te, &c, &r) == NAS_OK, "cifar%d train: %s", classes,
              nas_errmsg(ctx));
        CHECK(r.epochs_done == 4 && r.steps == 4 * 6, "cifar%d: %d epochs %lld steps", classes,
              r.epochs_done, (long long)r.steps);
        CHECK(isfinite(r.train_loss) && isfinite(r.test_accuracy), "cifar%d finite", classes);
        (void)first;
        /* learnable for 10 classes; for 100 the 10-row signal still separates k mod 10 */
        CHECK(r.train_loss < log((double)classes) - 0.3, "cifar%d loss %g did not fall from %g",
              classes, r.train_loss, log((double)classes));
        CHECK(isnan(r.valid_accuracy), "no validation split, valid accuracy %g", r.valid_accuracy);
        double acc = 0, loss = 0;
        CHECK(nas_model_evaluate(ctx, m, te, NULL, 0, 20, &acc, &loss) == NAS_OK, "evaluate");
        CHECK(fabs(acc - r.test_accuracy) < 1e-9, "evaluate %g vs result %g", acc,
              r.test_accuracy);
        /* hand count from one batch of logits in evaluation mode */
        nas_graph *g = nas_graph_new(ctx);
        nas_graph_set_training(g, 0);
        nas_graph_set_grad_enabled(g, 0);
        static float x[64 * 3072];
        float mean[4], sd[4];
        nas_dataset_normalisation(te, mean, sd);
        for (int i = 0; i < 64; i++) {
            const uint8_t *img = nas_dataset_image(te, i);
            for (int j = 0; j < 3072; j++) {
                x[i * 3072 + j] = ((float)img[j] / 255.0f - mean[j / 1024]) / sd[j / 1024];
            }
        }
        const int64_t xs[4] = {64, 3, 32, 32};
        nas_tensor *logits = nas_model_forward(m, g, nas_input(g, 4, xs, x));
        CHECK(nas_graph_forward(g) == NAS_OK, "forward: %s", nas_errmsg(ctx));
        int hits = 0;
        const float *z = nas_tensor_data(logits);
        for (int i = 0; i < 64; i++) {
            int best = 0;
            for (int k = 1; k < classes; k++) {
                best = z[i * classes + k] > z[i * classes + best] ? k : best;
            }
            hits += best == nas_dataset_label(te, i);
        }
        CHECK(fabs(100.0 * hits / 64 - acc) < 1e-9, "hand count %g vs %g", 100.0 * hits / 64,
              acc);
        nas_graph_free(g);
        nas_model_free(m);
        nas_dataset_free(tr);
        nas_dataset_free(te);

        /* the same directory with a truncated training file */
        snprintf(p, sizeof(p), "%s/%s", dir, v ? "train.bin" : "data_batch_1.bin");
        const size_t rec = v ? 3074 : 3073;
        if (truncate(p, (off_t)(10 * rec + 77)) != 0) {
            CHECK(0, "truncate");
        }
        char off[64];
        snprintf(off, sizeof(off), "byte offset %zu", 10 * rec);
        CHECK(nas_dataset_open(ctx, name, dir, 0, &tr) == NAS_ERR_FORMAT &&
                  strstr(nas_errmsg(ctx), p) != NULL && strstr(nas_errmsg(ctx), off) != NULL,
              "truncated: %s", nas_errmsg(ctx));
    }
    nas_ctx_free(ctx);
}

static int poison_after_epoch1(void *user, const nas_train_progress *p) {
    if (p->event == NAS_TRAIN_EPOCH_END && p->epoch == 1) {
        /* every weight NaN (one NaN weight may be zeroed by a ReLU before it reaches the loss) */
        nas_params *P = user;
        for (int64_t i = 0; i < nas_params_total(P); i++) {
            nas_params_data(P)[i] = NAN;
        }
    }
    return 0;
}

static void test_nan_stops(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *tr = NULL;
    CHECK(nas_dataset_open(ctx, "cifar10", cifar_dir, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = nb201_small(ctx, 10);
    char out[400], p[512];
    snprintf(out, sizeof(out), "%s/nan", tmpdir);
    nas_train_config c;
    resume_config(&c, out);
    c.epochs = 3;
    c.progress = poison_after_epoch1;
    c.progress_user = nas_model_params(m);
    const nas_status st = nas_train_model(ctx, m, tr, NULL, &c, NULL);
    CHECK(st == NAS_ERR_NUMERIC, "status %s: %s", nas_status_name(st), nas_errmsg(ctx));
    CHECK(strstr(nas_errmsg(ctx), "NaN") != NULL && strstr(nas_errmsg(ctx), "epoch 2") != NULL &&
              strstr(nas_errmsg(ctx), "checkpoint of epoch 1") != NULL,
          "message: %s", nas_errmsg(ctx));
    /* the checkpoint is epoch 1's: finite weights */
    nas_model *back = nb201_small(ctx, 10);
    snprintf(p, sizeof(p), "%s/checkpoint.bin", out);
    CHECK(nas_weights_load(nas_model_params(back), p) == NAS_OK, "load: %s", nas_errmsg(ctx));
    const float *w = nas_params_data(nas_model_params(back));
    int finite = 1;
    for (int64_t i = 0; i < nas_params_total(nas_model_params(back)); i++) {
        finite &= isfinite(w[i]) != 0;
    }
    CHECK(finite, "kept checkpoint has non-finite weights");
    nas_model_free(back);
    nas_model_free(m);
    nas_dataset_free(tr);
    nas_ctx_free(ctx);
}

static void test_shape_errors(void) {
    nas_ctx *ctx = nas_ctx_new();
    nas_dataset *tr = NULL;
    CHECK(nas_dataset_open(ctx, "cifar10", cifar_dir, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = NULL;
    const nas_model_desc fm = {.net = "fmnist-cnn"};
    CHECK(nas_model_build_desc(ctx, &fm, (nas_model_shape){1, 28, 28, 10}, &m) == NAS_OK, "%s",
          nas_errmsg(ctx));
    nas_train_config c;
    nas_train_config_default(&c);
    nas_status st = nas_train_model(ctx, m, tr, NULL, &c, NULL);
    CHECK(st == NAS_ERR_SHAPE && strstr(nas_errmsg(ctx), "1x28x28") != NULL &&
              strstr(nas_errmsg(ctx), "3x32x32") != NULL,
          "mismatch: %s %s", nas_status_name(st), nas_errmsg(ctx));
    nas_model_free(m);
    m = NULL;
    /* an NB201 architecture on 3x3 inputs cannot be built (two stride-2 reductions) */
    const nas_model_desc nb = {.space = "nb201",
                               .arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|"
                                       "skip_connect~0|nor_conv_3x3~1|skip_connect~2|"};
    st = nas_model_build_desc(ctx, &nb, (nas_model_shape){3, 3, 3, 10}, &m);
    CHECK(st != NAS_OK && m == NULL && strstr(nas_errmsg(ctx), "3x3") != NULL,
          "3x3 nb201: %s %s", nas_status_name(st), nas_errmsg(ctx));
    st = nas_model_build_desc(ctx, &(nas_model_desc){.net = "resnet-9000"},
                              (nas_model_shape){3, 32, 32, 10}, &m);
    CHECK(st == NAS_ERR_ARG && strstr(nas_errmsg(ctx), "resnet-9000") != NULL, "unknown net: %s",
          nas_errmsg(ctx));
    nas_dataset_free(tr);
    nas_ctx_free(ctx);
}

typedef struct counter {
    check_alloc_counter alloc; /* first member: the allocator's user pointer */
    long at_step[64];
} counter;

static int record_calls(void *user, const nas_train_progress *p) {
    counter *c = user;
    if (p->event == NAS_TRAIN_STEP && p->step < 64) {
        c->at_step[p->step] = c->alloc.calls;
    }
    return 0;
}

static void test_no_alloc_steady_state(void) {
    counter cnt = {0};
    nas_ctx *ctx = nas_ctx_new_with_allocator(check_counting_alloc, &cnt.alloc);
    nas_dataset *tr = NULL;
    CHECK(nas_dataset_open(ctx, "cifar10", cifar_dir, 0, &tr) == NAS_OK, "%s", nas_errmsg(ctx));
    nas_model *m = nb201_small(ctx, 10);
    nas_train_config c;
    nas_train_config_default(&c);
    c.batch = 16;
    c.valid_fraction = 0.0;
    c.augment = 1;
    c.progress = record_calls;
    c.progress_user = &cnt;
    CHECK(nas_train_model(ctx, m, tr, NULL, &c, NULL) == NAS_OK, "%s", nas_errmsg(ctx));
    /* 96 training examples / 16 = 6 full steps: steps 2..6 allocate nothing */
    CHECK(cnt.at_step[6] == cnt.at_step[2], "%ld allocations between steps 2 and 6",
          cnt.at_step[6] - cnt.at_step[2]);
    nas_model_free(m);
    nas_dataset_free(tr);
    nas_ctx_free(ctx);
}

int main(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nas_test_train_%d", (int)getpid());
    mkdir(tmpdir, 0755);
    snprintf(cifar_dir, sizeof(cifar_dir), "%s/cifar10", tmpdir);
    snprintf(out_a, sizeof(out_a), "%s/run_a", tmpdir);
    snprintf(out_b, sizeof(out_b), "%s/run_b", tmpdir);
    make_cifar10_dir(cifar_dir, 96, 40);
    run_interrupted_child();
    RUN_TEST(test_resume_bitwise);
    RUN_TEST(test_cifar_nb201);
    RUN_TEST(test_nan_stops);
    RUN_TEST(test_shape_errors);
    RUN_TEST(test_no_alloc_steady_state);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        printf("note: could not remove %s\n", tmpdir);
    }
    return check_report("test_train");
}
