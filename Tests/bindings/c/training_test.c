/*
 * Exercises the 0.4 functions of moragent.h (reinforcement learning): the documented defaults
 * of moragent_trainer_params, trainers over phase-routed policies, updates and their statistics
 * (the buffer convention of moragent_trainer_last_stats, the metrics file), refusals that lose
 * nothing (no episode, a group of one, NaN rewards, episodes ended twice, an aborted update),
 * calls made from inside an update's progress callback (refused as busy), and policy bundles:
 * save -> load -> the next update bit-identical to the saved trainer's own, compared through
 * the exported PEFT adapters byte for byte.
 *
 * Usage: training_test MODEL_DIR SCRATCH_DIR
 *   MODEL_DIR: the qwen2-tiny fixture; SCRATCH_DIR: an empty folder.
 * Prints "training: N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static moragent_engine *engine;
static const char *scratch;

/* A policy of 2 fresh experts under a small seeded phase router, sampling 3 tokens (no stop
 * string) from a short prompt; `expert_count` other than 2 gives a policy of other shapes. */
static moragent_policy *make_policy(size_t expert_count) {
    moragent_engine_info info;
    info.struct_size = sizeof info;
    moragent_engine_get_info(engine, &info);
    moragent_lora_params lora;
    lora.struct_size = sizeof lora;
    moragent_lora_params_default(&lora);
    lora.rank = 4;
    lora.alpha = 8.0f;
    moragent_experts *experts = NULL;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, expert_count, &lora, 1, &experts));
    moragent_phase_router_params phase;
    phase.struct_size = sizeof phase;
    moragent_phase_router_params_default(&phase);
    phase.expert_count = expert_count;
    phase.attention_dim = 8;
    phase.attention_heads = 2;
    phase.lstm_hidden = 6;
    phase.lstm_layers = 2;
    phase.history_length = 2;
    phase.mlp_hidden = 8;
    phase.anneal_updates = 10;
    moragent_router *router = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_phase(info.hidden_size, &phase, 3, &router));
    moragent_generation_params sampling;
    sampling.struct_size = sizeof sampling;
    moragent_generation_params_default(&sampling);
    sampling.temperature = 1.0f;
    sampling.max_new_tokens = 3;
    sampling.seed = 5;
    moragent_policy_params params;
    params.struct_size = sizeof params;
    moragent_policy_params_default(&params);
    params.sampling = &sampling;
    params.first_step_template = "{goal}: {observation} ->";
    params.later_step_template = "{goal}: {history} {observation} ->";
    params.history_entry_template = "{observation} {action}";
    params.history_length = 1;
    moragent_policy *policy = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, router, &params, &policy));
    moragent_router_free(router);
    moragent_experts_free(experts);
    return policy;
}

/* The defaults with `advantage`, learning rate 1e-2 (updates that visibly move the experts). */
static moragent_trainer_params settings(int32_t advantage) {
    moragent_trainer_params p;
    p.struct_size = sizeof p;
    moragent_trainer_params_default(&p);
    p.advantage = advantage;
    p.learning_rate = 1e-2f;
    return p;
}

static moragent_trainer *make_trainer(moragent_policy *policy, const moragent_trainer_params *params) {
    moragent_trainer *trainer = NULL;
    EXPECT(MORAGENT_OK, moragent_trainer_create(policy, params, &trainer));
    return trainer;
}

/* One step of `episode`; returns its first token id. */
static int32_t step(moragent_policy *policy, int64_t episode, const char *observation) {
    moragent_step_result *result = NULL;
    const int32_t *ids = NULL;
    size_t count = 0;
    EXPECT(MORAGENT_OK, moragent_policy_step(policy, episode, observation, "find the even token", &result));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(result, &ids, &count));
    int32_t first = count > 0 ? ids[0] : -1;
    moragent_step_result_free(result);
    return first;
}

/* `groups` groups of `n` two-step episodes, numbered from `first` (groups too); reward 1 when the
 * first token id of the last step is even, so the groups' returns differ. */
static void play(moragent_policy *policy, int64_t first, int groups, int n) {
    for (int g = 0; g < groups; g++) {
        for (int j = 0; j < n; j++) {
            int64_t episode = first + g * n + j;
            EXPECT(MORAGENT_OK, moragent_policy_begin_episode(policy, episode, first + g));
            int won = 0;
            for (int t = 0; t < 2; t++) {
                char observation[32];
                snprintf(observation, sizeof observation, "room %d step %d", g, t);
                won = step(policy, episode, observation) % 2 == 0;
            }
            EXPECT(MORAGENT_OK, moragent_policy_end_episode(policy, episode, won ? 1.0 : 0.0, won));
        }
    }
}

static size_t recorded(const moragent_policy *policy) {
    size_t steps = (size_t)-1;
    EXPECT(MORAGENT_OK, moragent_policy_recorded_steps(policy, &steps));
    return steps;
}

/* The last statistics (malloc'ed), fetched with the size the library reports. */
static char *stats_of(const moragent_trainer *trainer) {
    size_t length = 0;
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_trainer_last_stats(trainer, NULL, 0, &length));
    char *json = (char *)malloc(length + 1);
    EXPECT(MORAGENT_OK, moragent_trainer_last_stats(trainer, json, length + 1, &length));
    return json;
}

/* The statistics without their wall-clock "seconds" (in place). */
static char *timeless(char *json) {
    char *seconds = strstr(json, ",\"seconds\":");
    if (seconds) strcpy(seconds, "}");
    return json;
}

/* A whole file (malloc'ed), its size in *size; NULL when it cannot be read. */
static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = (char *)malloc((size_t)n + 1);
    *size = fread(data, 1, (size_t)n, f);
    data[*size] = '\0';
    fclose(f);
    return data;
}

/* Whether two exported PEFT adapters are byte for byte the same (weights and config). */
static int same_adapter(const char *a, const char *b) {
    int same = 1;
    const char *files[] = {"adapter_model.safetensors", "adapter_config.json"};
    for (int i = 0; i < 2; i++) {
        char *pa = path_join(a, files[i]), *pb = path_join(b, files[i]);
        size_t na = 0, nb = 0;
        char *da = read_file(pa, &na), *db = read_file(pb, &nb);
        same = same && da && db && na == nb && memcmp(da, db, na) == 0;
        free(da), free(db), free(pa), free(pb);
    }
    return same;
}

/* Exports expert `k` into scratch/`name`. */
static void export_to(moragent_trainer *trainer, size_t k, const char *name) {
    char *folder = path_join(scratch, name);
    EXPECT(MORAGENT_OK, moragent_trainer_export_expert(trainer, k, folder));
    free(folder);
}

static int same_exports(const char *a, const char *b) {
    char *pa = path_join(scratch, a), *pb = path_join(scratch, b);
    int same = same_adapter(pa, pb);
    free(pa), free(pb);
    return same;
}

/* Progress callbacks: one that counts, one that aborts, one that calls back into the library. */
typedef struct {
    size_t calls, last_done, last_total;
} progress_count;

static int count_progress(size_t done, size_t total, void *user) {
    progress_count *c = (progress_count *)user;
    c->calls++, c->last_done = done, c->last_total = total;
    return 0;
}

static int abort_progress(size_t done, size_t total, void *user) {
    (void)done, (void)total, (void)user;
    return 1;
}

typedef struct {
    moragent_policy *policy;
    moragent_trainer *trainer;
    moragent_status steps, stats, begin, save;
} reentry;

static int reentrant_progress(size_t done, size_t total, void *user) {
    reentry *r = (reentry *)user;
    size_t n = 0;
    char *bundle = path_join(scratch, "busy-bundle");
    (void)done, (void)total;
    r->steps = moragent_policy_recorded_steps(r->policy, &n);
    r->stats = moragent_trainer_last_stats(r->trainer, NULL, 0, &n);
    r->begin = moragent_policy_begin_episode(r->policy, 999, 999);
    r->save = moragent_trainer_save(r->trainer, bundle);
    free(bundle);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    scratch = argv[2];
    CHECK(MORAGENT_VERSION_MINOR >= 4 && moragent_version_number() == MORAGENT_VERSION_NUMBER);
    EXPECT(MORAGENT_OK, moragent_engine_load(argv[1], &engine));

    /* ---- moragent_trainer_params: the documented defaults ---- */
    moragent_trainer_params p;
    memset(&p, 0x5A, sizeof p);
    p.struct_size = sizeof p;
    EXPECT(MORAGENT_OK, moragent_trainer_params_default(&p));
    CHECK(p.struct_size == sizeof p);
    CHECK(p.advantage == MORAGENT_ADVANTAGE_GIGPO && p.normalize_by_std == 1 && p.per_trajectory_statistics == 0);
    CHECK(p.gamma == 0.95 && p.gae_lambda == 0.95 && p.step_weight == 1.0 && p.similarity_threshold == 0.0);
    CHECK(p.invalid_action_penalty == 0.1);
    CHECK(p.learning_rate == 1e-4f && p.weight_decay == 0.0f && p.max_grad_norm == 1.0f);
    CHECK(p.warmup_updates == 0 && p.total_updates == 0 && p.cosine == 1);
    CHECK(p.clip_low == 0.2f && p.clip_high == 0.2f && p.dual_clip == 3.0f);
    CHECK(p.sequence_mean == 0 && p.kl_coefficient == 0.0f && p.train_router == 1);
    CHECK(p.balance_coefficient == 0.001f && p.switch_coefficient == 1.0f && p.switch_lambda == 0.05f);
    CHECK(p.diversity_coefficient == 0.01f && p.diversity_interval == 100 && p.diversity_samples == 64);
    CHECK(p.diversity_buffer == 1000 && p.diversity_margin == 0.1f);
    CHECK(p.mini_batches == 1 && p.epochs == 1 && p.chunk_steps == 32 && p.seed == 0);
    CHECK(p.metrics_path == NULL && p.rollout_capacity == 65536 && p.router_learning_rate_scale == 1.0f);
    CHECK(p.recompute_activations == 0);

    /* A newer caller's larger struct: the library fills what it knows and keeps struct_size. */
    struct {
        moragent_trainer_params params;
        unsigned char newer[24];
    } grown;
    memset(&grown, 0xAB, sizeof grown);
    grown.params.struct_size = sizeof grown;
    EXPECT(MORAGENT_OK, moragent_trainer_params_default(&grown.params));
    CHECK(grown.params.struct_size == sizeof grown && grown.params.rollout_capacity == 65536);
    int untouched = 1;
    for (size_t i = 0; i < sizeof grown.newer; i++) untouched &= grown.newer[i] == 0xAB;
    CHECK(untouched);
    /* Wrong sizes and NULL: refused, and the struct is left as it was. */
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_params_default(NULL));
    size_t wrong_sizes[] = {0, 8, sizeof p - 8, 65537, (size_t)-1};
    for (size_t i = 0; i < sizeof wrong_sizes / sizeof *wrong_sizes; i++) {
        moragent_trainer_params wrong, copy;
        memset(&wrong, 0x5A, sizeof wrong);
        wrong.struct_size = wrong_sizes[i];
        copy = wrong;
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_params_default(&wrong));
        MESSAGE_HAS("struct_size");
        CHECK(memcmp(&wrong, &copy, sizeof wrong) == 0);
    }

    /* ---- moragent_trainer_create ---- */
    moragent_policy *policy = make_policy(2);
    moragent_trainer_params good = settings(MORAGENT_ADVANTAGE_GIGPO);
    moragent_trainer *bad = (moragent_trainer *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_create(NULL, &good, &bad));
    CHECK(bad == NULL);
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_create((moragent_policy *)(void *)engine, &good, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &good, NULL));
    moragent_trainer_params wrong = good;
    wrong.struct_size = 8;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    MESSAGE_HAS("struct_size");
    wrong.struct_size = 65537;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    int32_t bad_advantages[] = {-1, 4, 1000};
    for (size_t i = 0; i < 3; i++) {
        wrong = good, wrong.advantage = bad_advantages[i];
        bad = (moragent_trainer *)(uintptr_t)1;
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
        MESSAGE_HAS("advantage");
        CHECK(bad == NULL);
    }
    wrong = good, wrong.mini_batches = 0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    MESSAGE_HAS("mini_batches");
    wrong = good, wrong.gamma = NAN;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    MESSAGE_HAS("gamma");
    wrong = good, wrong.gae_lambda = 1.5;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    wrong = good, wrong.learning_rate = INFINITY;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    MESSAGE_HAS("learning_rate");
    wrong = good, wrong.clip_low = -0.2f;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    wrong = good, wrong.similarity_threshold = 2.0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    wrong = good, wrong.metrics_path = "metrics\xff.jsonl";
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    wrong = good, wrong.rollout_capacity = 0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(policy, &wrong, &bad));
    /* NULL params: the defaults. */
    moragent_trainer *defaults = NULL;
    EXPECT(MORAGENT_OK, moragent_trainer_create(policy, NULL, &defaults));
    EXPECT(MORAGENT_OK, moragent_trainer_free(defaults));
    /* Mixture-of-Roles policies are trained supervised. */
    moragent_mor_params mor;
    mor.struct_size = sizeof mor;
    moragent_mor_params_default(&mor);
    mor.routed_counts[0] = mor.routed_counts[1] = mor.routed_counts[2] = 1;
    mor.top_k[0] = mor.top_k[1] = mor.top_k[2] = 1;
    mor.rank = 2;
    moragent_router *roles = NULL;
    moragent_policy *roles_policy = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_roles(engine, &mor, 0, &roles));
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, NULL, roles, NULL, &roles_policy));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_create(roles_policy, &good, &bad));
    MESSAGE_HAS("Mixture-of-Roles");
    moragent_policy_free(roles_policy);
    moragent_router_free(roles);

    /* ---- episodes, and updates refused without losing anything ---- */
    moragent_trainer *trainer = make_trainer(policy, &good);
    size_t steps = 0;
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_begin_episode(NULL, 0, 0));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_begin_episode((moragent_policy *)(void *)trainer, 0, 0));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_recorded_steps(NULL, &steps));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_recorded_steps(policy, NULL));
    CHECK(recorded(policy) == 0);
    char *json = stats_of(trainer);
    CHECK(strcmp(json, "{}") == 0);
    free(json);

    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_update(NULL, NULL, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_update((moragent_trainer *)(void *)policy, NULL, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_update(trainer, NULL, NULL));
    MESSAGE_HAS("no ended episode");

    EXPECT(MORAGENT_OK, moragent_policy_begin_episode(policy, 0, 0));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_begin_episode(policy, 0, 0));
    step(policy, 0, "o");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_update(trainer, NULL, NULL)); /* still running */
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(policy, 0, NAN, 0));
    MESSAGE_HAS("not finite");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(policy, 0, -INFINITY, 0));
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(policy, 0, 1.0, 1));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(policy, 0, 1.0, 1));
    MESSAGE_HAS("already ended");
    export_to(trainer, 0, "before");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_update(trainer, NULL, NULL));
    MESSAGE_HAS("group 0 has one episode");
    CHECK(recorded(policy) == 1);
    export_to(trainer, 0, "after-refusal");
    CHECK(same_exports("before", "after-refusal"));

    /* An aborted update changes nothing and keeps the episodes. */
    EXPECT(MORAGENT_OK, moragent_policy_begin_episode(policy, 1, 0));
    step(policy, 1, "o");
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(policy, 1, 0.0, 0));
    CHECK(recorded(policy) == 2);
    EXPECT(MORAGENT_ERROR_ABORTED, moragent_trainer_update(trainer, abort_progress, NULL));
    MESSAGE_HAS("progress callback");
    CHECK(recorded(policy) == 2);
    export_to(trainer, 0, "after-abort");
    CHECK(same_exports("before", "after-abort"));
    json = stats_of(trainer);
    CHECK(strcmp(json, "{}") == 0);
    free(json);

    /* Inside an update, the policy and its trainer are busy. */
    reentry inside = {policy, trainer, MORAGENT_OK, MORAGENT_OK, MORAGENT_OK, MORAGENT_OK};
    EXPECT(MORAGENT_OK, moragent_trainer_update(trainer, reentrant_progress, &inside));
    CHECK(inside.steps == MORAGENT_ERROR_BUSY && inside.stats == MORAGENT_ERROR_BUSY);
    CHECK(inside.begin == MORAGENT_ERROR_BUSY && inside.save == MORAGENT_ERROR_BUSY);
    CHECK(recorded(policy) == 0);
    export_to(trainer, 0, "after-update");
    CHECK(!same_exports("before", "after-update"));

    /* ---- moragent_trainer_last_stats: the buffer convention ---- */
    size_t length = 0, again = 0;
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_trainer_last_stats(trainer, NULL, 0, &length));
    CHECK(length > 100);
    char small[16];
    memset(small, 'x', sizeof small);
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_trainer_last_stats(trainer, small, sizeof small, &again));
    MESSAGE_HAS("capacity");
    int kept = again == length;
    for (size_t i = 0; i < sizeof small; i++) kept &= small[i] == 'x';
    CHECK(kept);
    char *buffer = (char *)malloc(length + 1);
    memset(buffer, 'x', length + 1);
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_trainer_last_stats(trainer, buffer, length, &again));
    CHECK(again == length && buffer[0] == 'x');
    EXPECT(MORAGENT_OK, moragent_trainer_last_stats(trainer, buffer, length + 1, &again));
    CHECK(again == length && buffer[length] == '\0' && strlen(buffer) == length);
    CHECK(strncmp(buffer, "{\"update\":1,\"episodes\":2,\"steps\":2,", 35) == 0);
    CHECK(strstr(buffer, "\"expert_utilisation\":[") && strstr(buffer, "\"switches_per_episode\":"));
    CHECK(strstr(buffer, "\"temperature\":2,") && buffer[length - 1] == '}');
    free(buffer);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_last_stats(trainer, NULL, 5, &length));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_last_stats(trainer, small, sizeof small, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_last_stats(trainer, small, (size_t)-1, &length));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_last_stats(NULL, small, sizeof small, &length));

    /* Progress after every forward/backward pass; the next update is number 2. */
    play(policy, 10, 2, 2);
    CHECK(recorded(policy) == 8);
    progress_count counted = {0, 0, 0};
    EXPECT(MORAGENT_OK, moragent_trainer_update(trainer, count_progress, &counted));
    CHECK(counted.calls > 0 && counted.last_done == counted.calls && counted.last_total >= counted.last_done);
    json = stats_of(trainer);
    CHECK(strncmp(json, "{\"update\":2,\"episodes\":4,\"steps\":8,", 35) == 0);
    free(json);

    /* ---- export_expert ---- */
    char *folder = path_join(scratch, "exported");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_export_expert(trainer, 2, folder));
    MESSAGE_HAS("outside");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_export_expert(trainer, 0, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_export_expert(trainer, 0, "bad\xff"));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_export_expert(NULL, 0, folder));
    EXPECT(MORAGENT_OK, moragent_trainer_export_expert(trainer, 1, folder));
    /* What it writes is a PEFT folder moragent_experts_load_peft reads. */
    moragent_experts *reread = NULL;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 0, NULL, 0, &reread));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(reread, folder));
    moragent_experts_free(reread);
    free(folder);

    /* ---- every estimator; PPO also learns from a group of one ---- */
    int32_t estimators[] = {MORAGENT_ADVANTAGE_GRPO, MORAGENT_ADVANTAGE_RLOO, MORAGENT_ADVANTAGE_PPO};
    for (size_t i = 0; i < 3; i++) {
        moragent_policy *each = make_policy(2);
        moragent_trainer_params s = settings(estimators[i]);
        moragent_trainer *t = make_trainer(each, &s);
        play(each, 0, 2, 2);
        EXPECT(MORAGENT_OK, moragent_trainer_update(t, NULL, NULL));
        if (estimators[i] == MORAGENT_ADVANTAGE_PPO) {
            play(each, 100, 1, 1);
            EXPECT(MORAGENT_OK, moragent_trainer_update(t, NULL, NULL));
        } else {
            play(each, 100, 1, 1);
            EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_update(t, NULL, NULL));
            MESSAGE_HAS("one episode");
        }
        moragent_trainer_free(t);
        moragent_policy_free(each);
    }

    /* ---- the metrics file and the rollout capacity ---- */
    {
        moragent_policy *each = make_policy(2);
        moragent_trainer_params s = settings(MORAGENT_ADVANTAGE_GIGPO);
        char *metrics = path_join(scratch, "metrics.jsonl");
        s.metrics_path = metrics;
        s.rollout_capacity = 8;
        moragent_trainer *t = make_trainer(each, &s);
        free(metrics); /* read during create only */
        play(each, 0, 2, 2);
        moragent_step_result *result = (moragent_step_result *)(uintptr_t)1;
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(each, 50, "o", "g", &result));
        MESSAGE_HAS("rollout record is full");
        CHECK(result == NULL && recorded(each) == 8);
        EXPECT(MORAGENT_OK, moragent_trainer_update(t, NULL, NULL));
        play(each, 10, 2, 2);
        EXPECT(MORAGENT_OK, moragent_trainer_update(t, NULL, NULL));
        metrics = path_join(scratch, "metrics.jsonl");
        size_t size = 0;
        char *lines = read_file(metrics, &size);
        CHECK(lines && strncmp(lines, "{\"update\":1,", 12) == 0);
        char *second = lines ? strchr(lines, '\n') : NULL;
        CHECK(second && strncmp(second + 1, "{\"update\":2,", 12) == 0 && lines[size - 1] == '\n');
        CHECK(second && strchr(second + 1, '\n') == lines + size - 1);
        free(lines), free(metrics);
        moragent_trainer_free(t);
        moragent_policy_free(each);
    }

    /* ---- bundles: save -> load -> the same next update, bit for bit ---- */
    moragent_trainer_params resumable = settings(MORAGENT_ADVANTAGE_GIGPO);
    resumable.diversity_interval = 1; /* the diversity buffers and draws are part of the state */
    resumable.diversity_samples = 2;
    moragent_policy *saved_policy = make_policy(2);
    moragent_trainer *saved = make_trainer(saved_policy, &resumable);
    char *bundle = path_join(scratch, "bundle");
    play(saved_policy, 0, 2, 2);
    EXPECT(MORAGENT_OK, moragent_trainer_update(saved, NULL, NULL));
    EXPECT(MORAGENT_OK, moragent_trainer_save(saved, bundle));
    const char *bundle_files[] = {"manifest.json", "experts.safetensors", "router.safetensors", "trainer.safetensors",
                                  "samples.json"};
    for (size_t i = 0; i < 5; i++) {
        char *file = path_join(bundle, bundle_files[i]);
        size_t size = 0;
        char *data = read_file(file, &size);
        check(data != NULL && size > 0, __LINE__, bundle_files[i]);
        free(data), free(file);
    }
    play(saved_policy, 20, 2, 2);
    EXPECT(MORAGENT_OK, moragent_trainer_update(saved, NULL, NULL));
    char *expected = timeless(stats_of(saved));
    export_to(saved, 0, "expected0");
    export_to(saved, 1, "expected1");

    moragent_policy *resumed_policy = make_policy(2);
    moragent_trainer *resumed = make_trainer(resumed_policy, &resumable);
    EXPECT(MORAGENT_OK, moragent_trainer_load(resumed, bundle));
    json = stats_of(resumed);
    CHECK(strcmp(json, "{}") == 0);
    free(json);
    play(resumed_policy, 20, 2, 2);
    EXPECT(MORAGENT_OK, moragent_trainer_update(resumed, NULL, NULL));
    char *got = timeless(stats_of(resumed));
    CHECK(strcmp(got, expected) == 0 && strncmp(got, "{\"update\":2,", 12) == 0);
    export_to(resumed, 0, "resumed0");
    export_to(resumed, 1, "resumed1");
    CHECK(same_exports("expected0", "resumed0"));
    CHECK(same_exports("expected1", "resumed1"));
    free(expected), free(got);

    /* Bundles that do not fit, and bad paths. */
    char *missing = path_join(scratch, "missing"), *orphan = path_join(scratch, "no/such/parent/bundle");
    moragent_trainer_params grpo = settings(MORAGENT_ADVANTAGE_GRPO);
    moragent_policy *other_policy = make_policy(2), *wider_policy = make_policy(3);
    moragent_trainer *other = make_trainer(other_policy, &grpo), *wider = make_trainer(wider_policy, &resumable);
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_trainer_load(other, bundle));
    MESSAGE_HAS("estimator");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_trainer_load(wider, bundle));
    EXPECT(MORAGENT_ERROR_IO, moragent_trainer_load(other, missing));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_load(other, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_load(NULL, bundle));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_save(other, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_trainer_save(other, "bundle\xff"));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_save(NULL, bundle));
    EXPECT(MORAGENT_ERROR_IO, moragent_trainer_save(other, orphan));
    /* A refused load changes nothing: the trainer still saves what it had. */
    export_to(wider, 2, "wider-before");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_trainer_load(wider, bundle));
    export_to(wider, 2, "wider-after");
    CHECK(same_exports("wider-before", "wider-after"));
    free(missing), free(orphan);

    /* ---- freeing: a trainer keeps its policy; freeing a trainer leaves the policy ---- */
    EXPECT(MORAGENT_OK, moragent_trainer_free(NULL));
    EXPECT(MORAGENT_OK, moragent_policy_free(resumed_policy));
    EXPECT(MORAGENT_OK, moragent_trainer_save(resumed, bundle));
    EXPECT(MORAGENT_OK, moragent_trainer_free(resumed));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_free(resumed));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_save(resumed, bundle));
    EXPECT(MORAGENT_OK, moragent_trainer_free(saved));
    CHECK(step(saved_policy, 500, "still here") >= 0);
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_trainer_free((moragent_trainer *)(void *)saved_policy));
    free(bundle);

    moragent_trainer_free(other);
    moragent_trainer_free(wider);
    moragent_trainer_free(trainer);
    moragent_policy_free(other_policy);
    moragent_policy_free(wider_policy);
    moragent_policy_free(saved_policy);
    moragent_policy_free(policy);
    moragent_engine_free(engine);
    printf("training: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
