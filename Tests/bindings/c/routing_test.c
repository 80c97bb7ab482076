/*
 * Exercises the 0.2 functions of moragent.h: expert sets, routers (fixed, phase, trajectory,
 * callback), router plugins, policies and step results. Good calls are checked for what they
 * return (routes actually change the generated tokens, callbacks see the step's features, a
 * plugin's decisions cycle as configured, traces count switches); a table of bad calls (NULLs,
 * sizes, freed and mistyped handles, invalid UTF-8, out-of-range experts, NaN rewards and
 * weights, failing callbacks, broken plugins) must give the documented status and a message
 * while the process carries on; overlapping calls on one policy give MORAGENT_ERROR_BUSY.
 *
 * Usage: routing_test MODELS_DIR ADAPTERS_DIR PLUGIN_DIR SCRATCH_DIR
 *   MODELS_DIR: the fixture models folder (qwen2-tiny and llama-tiny are used);
 *   ADAPTERS_DIR: the fixture PEFT adapters of qwen2-tiny (expert0, expert1, expert2);
 *   PLUGIN_DIR: round_robin.so and the test_plugin variants, as run.sh builds them;
 *   SCRATCH_DIR: an empty folder. Prints "routing: N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void write_bytes(const char *path, const void *data, size_t length) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fwrite(data, 1, length, f);
    fclose(f);
}

/* ---- router callbacks ------------------------------------------------------------------------ */

/* What a callback saw, and how it answers. */
typedef struct {
    int calls;
    moragent_step_features last; /* strings copied below */
    char observation[256], goal[256];
    int fail_with;      /* non-zero: return it */
    int write_nan;      /* write NaN as expert 0's weight */
    int write_negative; /* write -1 */
    const float *fixed; /* when set, these weights */
    int by_episode;     /* route to expert episode mod K instead of step mod K */
    /* Re-entrance: call these on the policy from inside the callback and record the statuses. */
    moragent_policy *reenter;
    moragent_policy *other_policy; /* a policy sharing this router: its step must work */
    moragent_status reenter_step, reenter_trace, reenter_end, other_step;
    /* Threads: announce being inside, then wait to be released. */
    pthread_mutex_t *mutex;
    pthread_cond_t *cond;
    int *inside, *release;
} callback_state;

static int route(const moragent_step_features *features, float *weights, size_t expert_count, void *user) {
    callback_state *s = (callback_state *)user;
    s->calls++;
    s->last = *features;
    snprintf(s->observation, sizeof s->observation, "%s", features->observation);
    snprintf(s->goal, sizeof s->goal, "%s", features->goal);
    if (s->reenter) {
        moragent_step_result *r = NULL;
        size_t length = 0;
        s->reenter_step = moragent_policy_step(s->reenter, 99, "again", "g", &r);
        s->reenter_trace = moragent_policy_trace_jsonl(s->reenter, NULL, 0, &length);
        s->reenter_end = moragent_policy_end_episode(s->reenter, 99, 0.0, 0);
        moragent_policy *other = s->other_policy;
        s->other_policy = NULL; /* its step calls this callback too: recurse only once */
        if (other) {
            moragent_policy *self = s->reenter;
            s->reenter = NULL;
            s->other_step = moragent_policy_step(other, 7, "nested", "g", &r);
            moragent_step_result_free(r);
            s->reenter = self;
        }
    }
    if (s->mutex) {
        pthread_mutex_lock(s->mutex);
        *s->inside = 1;
        pthread_cond_broadcast(s->cond);
        while (!*s->release) pthread_cond_wait(s->cond, s->mutex);
        pthread_mutex_unlock(s->mutex);
    }
    if (s->fail_with) return s->fail_with;
    if (expert_count == 0) return 0;
    if (s->write_nan) weights[0] = nanf("");
    if (s->write_negative) weights[expert_count - 1] = -1.0f;
    if (s->write_nan || s->write_negative) return 0;
    if (s->fixed) {
        for (size_t k = 0; k < expert_count; k++) weights[k] = s->fixed[k];
        return 0;
    }
    size_t index = s->by_episode ? (size_t)features->episode : features->step;
    weights[index % expert_count] = 1.0f;
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static moragent_generation_params short_sampling(void) {
    moragent_generation_params p;
    p.struct_size = sizeof p;
    moragent_generation_params_default(&p);
    p.max_new_tokens = 4;
    p.ignore_eos = 1;
    return p;
}

/* A policy with greedy 4-token steps (so tests are quick and repeatable). */
static moragent_policy *make_policy(const moragent_engine *engine, const moragent_experts *experts,
                                    moragent_router *router, const moragent_generation_params *sampling) {
    moragent_policy_params params;
    params.struct_size = sizeof params;
    moragent_policy_params_default(&params);
    params.sampling = sampling;
    moragent_policy *policy = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, router, &params, &policy));
    return policy;
}

static moragent_step_result *step(moragent_policy *policy, int64_t episode, const char *observation) {
    moragent_step_result *result = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_step(policy, episode, observation, "find the key", &result));
    return result;
}

static int32_t expert_of(const moragent_step_result *result) {
    int32_t expert = -100;
    moragent_step_result_expert(result, &expert);
    return expert;
}

/* Steps `episode` `n` times with the same observation; writes each step's expert. */
static void run_episode(moragent_policy *policy, int64_t episode, int n, int32_t *experts) {
    for (int t = 0; t < n; t++) {
        moragent_step_result *r = step(policy, episode, "You are in the hall.");
        experts[t] = expert_of(r);
        moragent_step_result_free(r);
    }
}

/* The trace as a malloc'ed string (NULL on failure). */
static char *trace(const moragent_policy *policy) {
    size_t length = 0;
    moragent_status status = moragent_policy_trace_jsonl(policy, NULL, 0, &length);
    if (status != MORAGENT_ERROR_BUFFER_TOO_SMALL) return NULL;
    char *text = (char *)malloc(length + 1);
    if (moragent_policy_trace_jsonl(policy, text, length + 1, &length) != MORAGENT_OK) {
        free(text);
        return NULL;
    }
    return text;
}

static int ids_equal(const moragent_step_result *a, const moragent_step_result *b) {
    const int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    moragent_step_result_ids(a, &ia, &na);
    moragent_step_result_ids(b, &ib, &nb);
    return na == nb && memcmp(ia, ib, na * sizeof *ia) == 0;
}

/* Same ids with bit-identical log-probabilities: the same model computed them. (The fixture
 * adapters shift the distribution too little to change four greedy tokens, but every logprob.) */
static int same_model(const moragent_step_result *a, const moragent_step_result *b) {
    const float *la = NULL, *lb = NULL;
    size_t na = 0, nb = 0;
    moragent_step_result_logprobs(a, &la, &na);
    moragent_step_result_logprobs(b, &lb, &nb);
    return ids_equal(a, b) && na == nb && memcmp(la, lb, na * sizeof *la) == 0;
}

/* The text of the prompt a step was given. */
static char *prompt_text(const moragent_engine *engine, const moragent_step_result *result) {
    const int32_t *ids = NULL;
    size_t count = 0, length = 0;
    moragent_step_result_prompt_ids(result, &ids, &count);
    moragent_detokenize(engine, ids, count, NULL, 0, &length);
    char *text = (char *)malloc(length + 1);
    moragent_detokenize(engine, ids, count, text, length + 1, &length);
    return text;
}

/* ---- threads: an overlapping call on one policy is refused ----------------------------------- */

typedef struct {
    moragent_policy *policy;
    moragent_status status;
} step_job;

static void *step_in_thread(void *argument) {
    step_job *job = (step_job *)argument;
    moragent_step_result *result = NULL;
    job->status = moragent_policy_step(job->policy, 5, "from a thread", "g", &result);
    moragent_step_result_free(result);
    return NULL;
}

/* Test-plugin counters, read through dlsym. */
typedef int (*counter_fn)(void);

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODELS_DIR ADAPTERS_DIR PLUGIN_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    const char *models = argv[1], *adapters = argv[2], *plugins = argv[3], *scratch = argv[4];
    char *qwen2 = path_join(models, "qwen2-tiny"), *llama = path_join(models, "llama-tiny");
    char *adapter0 = path_join(adapters, "expert0"), *adapter1 = path_join(adapters, "expert1");

    CHECK(MORAGENT_VERSION_MINOR >= 2 && moragent_version_number() == MORAGENT_VERSION_NUMBER);
    CHECK(strcmp(moragent_status_string(MORAGENT_ERROR_CALLBACK), "callback failed") == 0);
    CHECK(strcmp(moragent_status_string(MORAGENT_ERROR_BUSY), "busy") == 0);

    moragent_engine *engine = NULL, *llama_engine = NULL;
    EXPECT(MORAGENT_OK, moragent_engine_load(qwen2, &engine));
    EXPECT(MORAGENT_OK, moragent_engine_load(llama, &llama_engine));
    moragent_engine_info info;
    info.struct_size = sizeof info;
    EXPECT(MORAGENT_OK, moragent_engine_get_info(engine, &info));

    /* ---- parameter defaults ---- */
    moragent_lora_params lora;
    memset(&lora, 0xFF, sizeof lora);
    lora.struct_size = sizeof lora;
    EXPECT(MORAGENT_OK, moragent_lora_params_default(&lora));
    CHECK(lora.struct_size == sizeof lora && lora.rank == 32 && lora.alpha == 64.0f && lora.use_rslora == 0);
    CHECK(lora.target_modules == (MORAGENT_MODULE_Q | MORAGENT_MODULE_V));
    /* A caller with a newer, larger struct: accepted, and nothing past this version's fields is written. */
    union {
        moragent_lora_params params;
        unsigned char bytes[sizeof(moragent_lora_params) + 32];
    } newer;
    memset(&newer, 0xAB, sizeof newer);
    newer.params.struct_size = sizeof newer;
    EXPECT(MORAGENT_OK, moragent_lora_params_default(&newer.params));
    CHECK(newer.params.struct_size == sizeof newer && newer.params.rank == 32);
    CHECK(newer.bytes[sizeof(moragent_lora_params)] == 0xAB);

    moragent_phase_router_params phase_params;
    memset(&phase_params, 0xFF, sizeof phase_params);
    phase_params.struct_size = sizeof phase_params;
    EXPECT(MORAGENT_OK, moragent_phase_router_params_default(&phase_params));
    CHECK(phase_params.expert_count == 4 && phase_params.attention_dim == 256 && phase_params.attention_heads == 4);
    CHECK(phase_params.lstm_hidden == 256 && phase_params.lstm_layers == 3 && phase_params.history_length == 5);
    CHECK(phase_params.mlp_hidden == 256 && phase_params.pooled_goal == 0 && phase_params.anneal_updates == 3000);
    CHECK(phase_params.initial_temperature == 2.0f && phase_params.final_temperature == 0.5f);

    moragent_policy_params policy_params;
    memset(&policy_params, 0xFF, sizeof policy_params);
    policy_params.struct_size = sizeof policy_params;
    EXPECT(MORAGENT_OK, moragent_policy_params_default(&policy_params));
    CHECK(policy_params.sampling == NULL && policy_params.first_step_template == NULL);
    CHECK(policy_params.later_step_template == NULL && policy_params.history_entry_template == NULL);
    CHECK(policy_params.history_length == 5 && policy_params.chatml == 0);

    /* ---- expert sets ---- */
    moragent_experts *experts = NULL, *empty = NULL, *all_modules = NULL, *llama_experts = NULL;
    size_t count = 0;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 2, NULL, 1, &experts));
    EXPECT(MORAGENT_OK, moragent_experts_count(experts, &count));
    CHECK(count == 2);
    moragent_lora_params small = lora;
    small.rank = 4;
    small.alpha = 8.0f;
    small.use_rslora = 1;
    small.target_modules = MORAGENT_MODULE_Q | MORAGENT_MODULE_K | MORAGENT_MODULE_V | MORAGENT_MODULE_O |
                           MORAGENT_MODULE_GATE | MORAGENT_MODULE_UP | MORAGENT_MODULE_DOWN;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 3, &small, 9, &all_modules));
    EXPECT(MORAGENT_OK, moragent_experts_count(all_modules, &count));
    CHECK(count == 3);
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 0, NULL, 0, &empty));
    EXPECT(MORAGENT_OK, moragent_experts_count(empty, &count));
    CHECK(count == 0);
    EXPECT(MORAGENT_OK, moragent_experts_create(llama_engine, 1, NULL, 0, &llama_experts));

    /* PEFT: load appends; save writes it back bit for bit. */
    moragent_experts *peft = NULL;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 0, NULL, 0, &peft));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(peft, adapter0));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(peft, adapter1));
    EXPECT(MORAGENT_OK, moragent_experts_count(peft, &count));
    CHECK(count == 2);
    char *saved = path_join(scratch, "saved-expert0");
    EXPECT(MORAGENT_OK, moragent_experts_save_peft(peft, 0, saved));
    char *saved_weights = path_join(saved, "adapter_model.safetensors");
    char *fixture_weights = path_join(adapter0, "adapter_model.safetensors");
    CHECK(same_file(saved_weights, fixture_weights));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(empty, saved));
    EXPECT(MORAGENT_OK, moragent_experts_count(empty, &count));
    CHECK(count == 1);
    /* A created expert saves too (B = 0), and loads back. */
    char *saved_new = path_join(scratch, "saved-new");
    EXPECT(MORAGENT_OK, moragent_experts_save_peft(all_modules, 2, saved_new));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(empty, saved_new));
    EXPECT(MORAGENT_OK, moragent_experts_count(empty, &count));
    CHECK(count == 2);

    /* ---- routes change what is generated ---- */
    moragent_generation_params sampling = short_sampling();
    moragent_router *to_base = NULL, *to_peft0 = NULL, *to_peft1 = NULL, *to_new = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(2, -1, &to_base));
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(2, 0, &to_peft0));
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(2, 1, &to_peft1));
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(2, 1, &to_new));
    EXPECT(MORAGENT_OK, moragent_router_expert_count(to_peft1, &count));
    CHECK(count == 2);
    moragent_policy *base_policy = make_policy(engine, peft, to_base, &sampling);
    moragent_policy *peft0_policy = make_policy(engine, peft, to_peft0, &sampling);
    moragent_policy *peft1_policy = make_policy(engine, peft, to_peft1, &sampling);
    moragent_policy *new_policy = make_policy(engine, experts, to_new, &sampling); /* fresh experts: B = 0 */
    moragent_step_result *base_step = step(base_policy, 0, "You are in the hall.");
    moragent_step_result *peft0_step = step(peft0_policy, 0, "You are in the hall.");
    moragent_step_result *peft1_step = step(peft1_policy, 0, "You are in the hall.");
    moragent_step_result *new_step = step(new_policy, 0, "You are in the hall.");
    CHECK(expert_of(base_step) == -1 && expert_of(peft0_step) == 0 && expert_of(peft1_step) == 1);
    CHECK(!same_model(base_step, peft0_step) && !same_model(peft0_step, peft1_step));
    CHECK(same_model(base_step, new_step)); /* an expert with B = 0 is the base model */
    const float *probabilities = NULL;
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(base_step, &probabilities, &count));
    CHECK(count == 2 && probabilities[0] == 0.0f && probabilities[1] == 0.0f);
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(peft1_step, &probabilities, &count));
    CHECK(count == 2 && probabilities[0] == 0.0f && probabilities[1] == 1.0f);

    /* ---- step result accessors ---- */
    const char *text = NULL, *response = NULL;
    size_t text_length = 0, response_length = 0, id_count = 0, logprob_count = 0, prompt_count = 0;
    const int32_t *ids = NULL, *prompt_ids = NULL;
    const float *logprobs = NULL;
    int32_t valid = -1;
    double routing_seconds = -1, generation_seconds = -1;
    EXPECT(MORAGENT_OK, moragent_step_result_action(peft0_step, &text, &text_length));
    EXPECT(MORAGENT_OK, moragent_step_result_response(peft0_step, &response, &response_length));
    EXPECT(MORAGENT_OK, moragent_step_result_action_valid(peft0_step, &valid));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(peft0_step, &ids, &id_count));
    EXPECT(MORAGENT_OK, moragent_step_result_logprobs(peft0_step, &logprobs, &logprob_count));
    EXPECT(MORAGENT_OK, moragent_step_result_prompt_ids(peft0_step, &prompt_ids, &prompt_count));
    EXPECT(MORAGENT_OK, moragent_step_result_timing(peft0_step, &routing_seconds, &generation_seconds));
    EXPECT(MORAGENT_OK, moragent_step_result_action(peft0_step, &text, NULL));
    CHECK(text != NULL && strlen(text) == text_length && text_length <= response_length);
    CHECK(response != NULL && strlen(response) == response_length);
    CHECK(valid == 0); /* four random tokens hold no <action></action> */
    CHECK(id_count == 4 && logprob_count == 4 && ids != NULL && logprobs != NULL);
    int sane = 1;
    for (size_t i = 0; i < id_count; i++) sane &= ids[i] >= 0 && (size_t)ids[i] < info.vocabulary_size && logprobs[i] <= 0;
    CHECK(sane);
    CHECK(prompt_count > 10 && routing_seconds >= 0 && generation_seconds > 0);
    char *prompt = prompt_text(engine, peft0_step);
    CHECK(strstr(prompt, "Your task is to: find the key") != NULL && strstr(prompt, "You are in the hall.") != NULL);
    free(prompt);

    /* ---- policy parameters: templates, history, ChatML, default sampling ---- */
    moragent_router *fixed3 = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(2, 0, &fixed3));
    moragent_policy_params custom;
    custom.struct_size = sizeof custom;
    EXPECT(MORAGENT_OK, moragent_policy_params_default(&custom));
    custom.sampling = &sampling;
    custom.first_step_template = "FIRST goal={goal} obs={observation}";
    custom.later_step_template = "LATER {step}/{step_count} [{history}] obs={observation}";
    custom.history_entry_template = "({k}:{observation})";
    custom.history_length = 1;
    moragent_policy *templated = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, fixed3, &custom, &templated));
    moragent_step_result *r1 = NULL, *r2 = NULL, *r3 = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_step(templated, 1, "hall", "key", &r1));
    EXPECT(MORAGENT_OK, moragent_policy_step(templated, 1, "kitchen", "key", &r2));
    EXPECT(MORAGENT_OK, moragent_policy_step(templated, 1, "garden", "key", &r3));
    char *p1 = prompt_text(engine, r1), *p3 = prompt_text(engine, r3);
    CHECK(strcmp(p1, "FIRST goal=key obs=hall") == 0);
    CHECK(strcmp(p3, "LATER 3/2 [(2:kitchen)] obs=garden") == 0);
    free(p1);
    free(p3);
    moragent_step_result_free(r1);
    moragent_step_result_free(r2);
    moragent_step_result_free(r3);
    custom.chatml = 1;
    moragent_policy *chat = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, fixed3, &custom, &chat));
    EXPECT(MORAGENT_OK, moragent_policy_step(chat, 1, "hall", "key", &r1));
    p1 = prompt_text(engine, r1);
    CHECK(strcmp(p1, "<|im_start|>user\nFIRST goal=key obs=hall<|im_end|>\n<|im_start|>assistant\n") == 0);
    free(p1);
    moragent_step_result_free(r1);
    /* NULL params: 64 sampled tokens at most, stopping at EOS or "</action>". */
    moragent_policy *defaults = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, fixed3, NULL, &defaults));
    EXPECT(MORAGENT_OK, moragent_policy_step(defaults, 0, "hall", "key", &r1));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(r1, &ids, &id_count));
    CHECK(id_count >= 1 && id_count <= 64);
    moragent_step_result_free(r1);

    /* Same policy settings, same episode and step: the same tokens (sampled with derived seeds). */
    moragent_policy *twin = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, fixed3, NULL, &twin));
    EXPECT(MORAGENT_OK, moragent_policy_step(twin, 0, "hall", "key", &r2));
    EXPECT(MORAGENT_OK, moragent_policy_step(defaults, 1, "hall", "key", &r3));
    EXPECT(MORAGENT_OK, moragent_policy_step(twin, 1, "hall", "key", &r1));
    CHECK(same_model(r1, r3));
    moragent_step_result_free(r1);
    moragent_step_result_free(r2);
    moragent_step_result_free(r3);

    /* A batch of steps: the same tokens as one call per episode; a bad batch changes nothing
       and leaves every result NULL. */
    {
        int64_t episodes[2] = {40, 41}, twice[2] = {42, 42};
        const char *observations[2] = {"hall", "You see a long corridor."};
        const char *goals[2] = {"key", "door"};
        moragent_step_result *batch[2] = {NULL, NULL};
        EXPECT(MORAGENT_OK, moragent_policy_step_batch(twin, 2, episodes, observations, goals, batch));
        for (int i = 0; i < 2; i++) {
            moragent_step_result *alone = NULL;
            EXPECT(MORAGENT_OK, moragent_policy_step(defaults, episodes[i], observations[i], goals[i], &alone));
            CHECK(ids_equal(alone, batch[i]));
            moragent_step_result_free(alone);
            moragent_step_result_free(batch[i]);
        }
        batch[0] = batch[1] = (moragent_step_result *)(uintptr_t)1;
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step_batch(twin, 2, twice, observations, goals, batch));
        MESSAGE_HAS("twice");
        CHECK(batch[0] == NULL && batch[1] == NULL);
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step_batch(twin, 2, NULL, observations, goals, batch));
        EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step_batch(twin, 0, episodes, observations, goals, batch));
        MESSAGE_HAS("no steps");
    }

    /* ---- the callback router: features, alternation, failures, mixtures ---- */
    callback_state cb;
    memset(&cb, 0, sizeof cb);
    moragent_router *alternating = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_callback(2, route, &cb, &alternating));
    moragent_policy *alternate = make_policy(engine, peft, alternating, &sampling);
    int32_t experts_seen[6];
    run_episode(alternate, 3, 4, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 1 && experts_seen[2] == 0 && experts_seen[3] == 1);
    CHECK(cb.calls == 4 && cb.last.struct_size == sizeof(moragent_step_features) && cb.last.episode == 3);
    CHECK(cb.last.step == 3 && cb.last.history_count == 3);
    CHECK(strcmp(cb.observation, "You are in the hall.") == 0 && strcmp(cb.goal, "find the key") == 0);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(alternate, 3, 0.5, 1));
    char *jsonl = trace(alternate);
    CHECK(jsonl != NULL &&
          strcmp(jsonl, "{\"episode\":3,\"steps\":4,\"experts\":[0,1,0,1],\"switches\":3,\"reward\":0.5,\"success\":true}") == 0);
    free(jsonl);
    /* Negative episode numbers are episodes like any other. */
    run_episode(alternate, -8, 1, experts_seen);
    CHECK(cb.last.episode == -8 && experts_seen[0] == 0);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(alternate, -8, -1.0, 0));

    /* A failing callback fails the step and leaves the episode as it was. */
    cb.fail_with = 5;
    moragent_step_result *no_result = (moragent_step_result *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_CALLBACK, moragent_policy_step(alternate, 4, "o", "g", &no_result));
    MESSAGE_HAS("router callback returned 5");
    CHECK(no_result == NULL);
    cb.fail_with = 0;
    cb.write_nan = 1;
    EXPECT(MORAGENT_ERROR_CALLBACK, moragent_policy_step(alternate, 4, "o", "g", &no_result));
    MESSAGE_HAS("nan");
    cb.write_nan = 0;
    cb.write_negative = 1;
    EXPECT(MORAGENT_ERROR_CALLBACK, moragent_policy_step(alternate, 4, "o", "g", &no_result));
    MESSAGE_HAS("-1.0 as the weight of expert 1");
    cb.write_negative = 0;
    EXPECT(MORAGENT_OK, moragent_policy_step(alternate, 4, "o", "g", &r1));
    CHECK(cb.last.step == 0); /* the failed attempts took no step */
    moragent_step_result_free(r1);
    /* A mixture: weights 1 and 3 are normalised, and no single expert is reported. */
    const float mixture[] = {1.0f, 3.0f}, none[] = {0.0f, 0.0f};
    cb.fixed = mixture;
    EXPECT(MORAGENT_OK, moragent_policy_step(alternate, 4, "o", "g", &r1));
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(r1, &probabilities, &count));
    CHECK(expert_of(r1) == -1 && count == 2 && probabilities[0] == 0.25f && probabilities[1] == 0.75f);
    moragent_step_result_free(r1);
    cb.fixed = none;
    EXPECT(MORAGENT_OK, moragent_policy_step(alternate, 4, "o", "g", &r1));
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(r1, &probabilities, &count));
    CHECK(expert_of(r1) == -1 && probabilities[0] == 0.0f && probabilities[1] == 0.0f);
    moragent_step_result_free(r1);
    cb.fixed = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(alternate, 4, 1.0, 1));
    jsonl = trace(alternate);
    CHECK(jsonl != NULL && strstr(jsonl, "\n{\"episode\":4,\"steps\":3,\"experts\":[0,null,null],\"switches\":2,") != NULL);
    free(jsonl);

    /* ---- overlapping calls: re-entering from the callback, another thread ---- */
    moragent_router *shared = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_callback(2, route, &cb, &shared));
    moragent_policy *busy = make_policy(engine, peft, shared, &sampling);
    moragent_policy *sharing = make_policy(engine, peft, shared, &sampling);
    cb.reenter = busy;
    cb.other_policy = sharing;
    EXPECT(MORAGENT_OK, moragent_policy_step(busy, 0, "o", "g", &r1));
    CHECK(cb.reenter_step == MORAGENT_ERROR_BUSY && cb.reenter_trace == MORAGENT_ERROR_BUSY);
    CHECK(cb.reenter_end == MORAGENT_ERROR_BUSY);
    CHECK(cb.other_step == MORAGENT_OK); /* a second policy on the same router, same thread */
    moragent_step_result_free(r1);
    cb.reenter = NULL;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(busy, 99, 0.0, 0)); /* never stepped */

    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int inside = 0, release = 0;
    cb.mutex = &mutex;
    cb.cond = &cond;
    cb.inside = &inside;
    cb.release = &release;
    step_job job = {busy, MORAGENT_ERROR_INTERNAL};
    pthread_t thread;
    pthread_create(&thread, NULL, step_in_thread, &job);
    pthread_mutex_lock(&mutex);
    while (!inside) pthread_cond_wait(&cond, &mutex);
    pthread_mutex_unlock(&mutex);
    size_t trace_length = 0;
    EXPECT(MORAGENT_ERROR_BUSY, moragent_policy_step(busy, 6, "o", "g", &no_result));
    MESSAGE_HAS("policy is in use");
    EXPECT(MORAGENT_ERROR_BUSY, moragent_policy_trace_jsonl(busy, NULL, 0, &trace_length));
    EXPECT(MORAGENT_ERROR_BUSY, moragent_policy_clear_ended(busy));
    pthread_mutex_lock(&mutex);
    release = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mutex);
    pthread_join(thread, NULL);
    CHECK(job.status == MORAGENT_OK);
    cb.mutex = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_step(busy, 6, "o", "g", &r1)); /* free again */
    moragent_step_result_free(r1);

    /* ---- trajectory routers: the first decision holds for the episode ---- */
    callback_state by_episode;
    memset(&by_episode, 0, sizeof by_episode);
    by_episode.by_episode = 1;
    moragent_router *inner = NULL, *trajectory = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_callback(2, route, &by_episode, &inner));
    EXPECT(MORAGENT_OK, moragent_router_create_trajectory(inner, &trajectory));
    EXPECT(MORAGENT_OK, moragent_router_free(inner)); /* the trajectory router keeps its own reference */
    EXPECT(MORAGENT_OK, moragent_router_expert_count(trajectory, &count));
    CHECK(count == 2);
    moragent_policy *per_episode = make_policy(engine, peft, trajectory, &sampling);
    run_episode(per_episode, 1, 3, experts_seen);
    CHECK(experts_seen[0] == 1 && experts_seen[1] == 1 && experts_seen[2] == 1 && by_episode.calls == 1);
    run_episode(per_episode, 2, 2, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 0 && by_episode.calls == 2);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(per_episode, 1, 1.0, 1));
    run_episode(per_episode, 2, 1, experts_seen);
    CHECK(by_episode.calls == 2); /* episode 2 keeps its choice */

    /* ---- phase routers: create, route, save, load ---- */
    moragent_phase_router_params tiny = phase_params;
    tiny.expert_count = 2;
    tiny.attention_dim = 16;
    tiny.attention_heads = 2;
    tiny.lstm_hidden = 8;
    tiny.lstm_layers = 2;
    tiny.mlp_hidden = 8;
    moragent_router *phase = NULL, *loaded = NULL, *pooled = NULL, *narrow = NULL, *narrow_trajectory = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_phase(info.hidden_size, &tiny, 3, &phase));
    EXPECT(MORAGENT_OK, moragent_router_expert_count(phase, &count));
    CHECK(count == 2);
    char *phase_path = path_join(scratch, "phase.safetensors");
    EXPECT(MORAGENT_OK, moragent_router_phase_save(phase, phase_path));
    EXPECT(MORAGENT_OK, moragent_router_phase_load(phase_path, &loaded));
    moragent_policy *phased = make_policy(engine, peft, phase, &sampling);
    moragent_policy *reloaded = make_policy(engine, peft, loaded, &sampling);
    const char *observations[] = {"You are in the hall.", "You see a locked door.", "The kitchen has a drawer."};
    int phase_agrees = 1, phase_sums = 1;
    for (int t = 0; t < 3; t++) {
        EXPECT(MORAGENT_OK, moragent_policy_step(phased, 0, observations[t], "find the key", &r1));
        EXPECT(MORAGENT_OK, moragent_policy_step(reloaded, 0, observations[t], "find the key", &r2));
        const float *pa = NULL, *pb = NULL;
        size_t na = 0, nb = 0;
        moragent_step_result_probabilities(r1, &pa, &na);
        moragent_step_result_probabilities(r2, &pb, &nb);
        phase_agrees &= na == 2 && nb == 2 && memcmp(pa, pb, 2 * sizeof *pa) == 0 && expert_of(r1) == expert_of(r2);
        phase_sums &= fabsf(pa[0] + pa[1] - 1.0f) < 1e-5f && expert_of(r1) == (pa[1] > pa[0] ? 1 : 0);
        moragent_step_result_free(r1);
        moragent_step_result_free(r2);
    }
    CHECK(phase_agrees);
    CHECK(phase_sums);
    tiny.pooled_goal = 1;
    tiny.history_length = 0;
    EXPECT(MORAGENT_OK, moragent_router_create_phase(info.hidden_size, &tiny, 3, &pooled));
    moragent_policy *pooled_policy = make_policy(engine, peft, pooled, &sampling);
    EXPECT(MORAGENT_OK, moragent_policy_step(pooled_policy, 0, "", "", &r1)); /* empty texts encode to zeros */
    moragent_step_result_free(r1);
    EXPECT(MORAGENT_OK, moragent_router_create_phase(32, NULL, 3, &narrow));
    EXPECT(MORAGENT_OK, moragent_router_create_trajectory(narrow, &narrow_trajectory));
    /* Files that are not phase routers, or claim sizes the file cannot back. */
    char *not_router = path_join(scratch, "not-router.safetensors");
    const char no_meta[] = "\x02\x00\x00\x00\x00\x00\x00\x00{}";
    write_bytes(not_router, no_meta, sizeof no_meta - 1);
    char *huge_router = path_join(scratch, "huge-router.safetensors");
    const char huge_json[] =
        "{\"__metadata__\":{\"moragent\":\"{\\\"format\\\":\\\"moragent.phase_router\\\",\\\"version\\\":1,"
        "\\\"model_hidden_size\\\":64,\\\"expert_count\\\":4,\\\"attention_dimension\\\":1099511627776,"
        "\\\"attention_heads\\\":4,\\\"lstm_hidden_size\\\":8,\\\"lstm_layers\\\":1,\\\"history_length\\\":5,"
        "\\\"mlp_hidden_size\\\":8,\\\"pooled_goal\\\":false,\\\"initial_temperature\\\":2,"
        "\\\"final_temperature\\\":0.5,\\\"anneal_updates\\\":10,\\\"temperature\\\":2}\"}}";
    char huge_file[1024];
    size_t huge_length = strlen(huge_json);
    for (int i = 0; i < 8; i++) huge_file[i] = (char)((uint64_t)huge_length >> (8 * i));
    memcpy(huge_file + 8, huge_json, huge_length);
    write_bytes(huge_router, huge_file, huge_length + 8);
    char *missing_router = path_join(scratch, "no-such-router.safetensors");
    moragent_router *not_loaded = (moragent_router *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_router_phase_load(huge_router, &not_loaded));
    MESSAGE_HAS("huge-router.safetensors");
    CHECK(not_loaded == NULL);

    /* ---- plugins ---- */
    char *round_robin = path_join(plugins, "round_robin.so"), *probe = path_join(plugins, "test_plugin.so");
    char *wrong_version = path_join(plugins, "test_plugin_WRONG_VERSION.so");
    char *no_entry = path_join(plugins, "test_plugin_NO_ENTRY.so");
    char *failing_entry = path_join(plugins, "test_plugin_FAILING_ENTRY.so");
    char *duplicate = path_join(plugins, "test_plugin_DUPLICATE.so");
    char *null_decide = path_join(plugins, "test_plugin_NULL_DECIDE.so");
    char *bad_name = path_join(plugins, "test_plugin_BAD_NAME.so");
    char *no_kinds = path_join(plugins, "test_plugin_NO_KINDS.so");
    char *missing_plugin = path_join(plugins, "no_such_plugin.so");
    char *not_elf = path_join(qwen2, "config.json");
    moragent_router *not_made = (moragent_router *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", NULL, 3, &not_made));
    MESSAGE_HAS("registered: none");
    CHECK(not_made == NULL);
    EXPECT(MORAGENT_OK, moragent_plugin_load(round_robin));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_plugin_load(round_robin));
    MESSAGE_HAS("already loaded");
    EXPECT(MORAGENT_ERROR_UNSUPPORTED, moragent_plugin_load(wrong_version));
    MESSAGE_HAS("test_plugin_WRONG_VERSION.so");
    MESSAGE_HAS("plugin API version 999");
    EXPECT(MORAGENT_ERROR_IO, moragent_plugin_load(missing_plugin));
    MESSAGE_HAS("no_such_plugin.so");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_plugin_load(no_entry));
    MESSAGE_HAS("moragent_plugin_register");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_plugin_load(not_elf));
    MESSAGE_HAS("config.json");
    EXPECT(MORAGENT_ERROR_CALLBACK, moragent_plugin_load(failing_entry));
    MESSAGE_HAS("returned 7");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_plugin_load(duplicate));
    MESSAGE_HAS("\"dup\" is already registered");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_plugin_load(null_decide));
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_plugin_load(bad_name));
    MESSAGE_HAS("has space");
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_plugin_load(no_kinds));
    MESSAGE_HAS("no router kind");
    /* Failed loads registered nothing. */
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("failing_entry", NULL, 2, &not_made));
    MESSAGE_HAS("registered: round_robin)");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("dup", NULL, 2, &not_made));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("wrong_version", NULL, 2, &not_made));

    /* round_robin with period 2 over 3 experts: 0 0 1 1 2 2, then again from 0 next episode. */
    moragent_experts *three = NULL;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 3, &small, 2, &three));
    moragent_router *cycling = NULL, *period1 = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_kind("round_robin", "{\"period\": 2}", 3, &cycling));
    EXPECT(MORAGENT_OK, moragent_router_create_kind("round_robin", NULL, 3, &period1));
    EXPECT(MORAGENT_OK, moragent_router_expert_count(cycling, &count));
    CHECK(count == 3);
    moragent_policy *cycled = make_policy(engine, three, cycling, &sampling);
    run_episode(cycled, 0, 6, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 0 && experts_seen[2] == 1 && experts_seen[3] == 1 &&
          experts_seen[4] == 2 && experts_seen[5] == 2);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(cycled, 0, 0.0, 0));
    run_episode(cycled, 1, 3, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 0 && experts_seen[2] == 1);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(cycled, 1, 2.0, 1));
    jsonl = trace(cycled);
    CHECK(jsonl != NULL &&
          strcmp(jsonl, "{\"episode\":0,\"steps\":6,\"experts\":[0,0,1,1,2,2],\"switches\":2,\"reward\":0,\"success\":false}\n"
                        "{\"episode\":1,\"steps\":3,\"experts\":[0,0,1],\"switches\":1,\"reward\":2,\"success\":true}") == 0);
    free(jsonl);
    moragent_policy *cycled1 = make_policy(engine, three, period1, &sampling);
    run_episode(cycled1, 0, 4, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 1 && experts_seen[2] == 2 && experts_seen[3] == 0);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", "{\"period\": 0}", 3, &not_made));
    MESSAGE_HAS("refused the configuration: \"period\" must be an integer");

    /* The probe plugin: what the library calls, and when. */
    EXPECT(MORAGENT_OK, moragent_plugin_load(probe));
    void *probe_library = dlopen(probe, RTLD_NOW);
    CHECK(probe_library != NULL);
    counter_fn live_states = (counter_fn)(uintptr_t)dlsym(probe_library, "test_probe_live_states");
    counter_fn ended_episodes = (counter_fn)(uintptr_t)dlsym(probe_library, "test_probe_ended_episodes");
    counter_fn register_late = (counter_fn)(uintptr_t)dlsym(probe_library, "test_probe_register_late");
    long long (*last_ended)(void) = (long long (*)(void))(uintptr_t)dlsym(probe_library, "test_probe_last_ended");
    size_t (*last_expert_count)(void) = (size_t (*)(void))(uintptr_t)dlsym(probe_library, "test_probe_last_expert_count");
    CHECK(live_states && ended_episodes && register_late && last_ended && last_expert_count);
    CHECK(register_late() != 0); /* the registrar is refused once the load has returned */
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("late", NULL, 2, &not_made));
    moragent_router *probe_router = NULL, *probe_trajectory = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_kind("test_probe", "{\"mode\": \"ok\"}", 2, &probe_router));
    CHECK(live_states() == 1 && last_expert_count() == 2);
    EXPECT(MORAGENT_OK, moragent_router_create_trajectory(probe_router, &probe_trajectory));
    moragent_policy *probed = make_policy(engine, peft, probe_router, &sampling);
    moragent_policy *probed_trajectory = make_policy(engine, peft, probe_trajectory, &sampling);
    run_episode(probed, 11, 2, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 1);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(probed, 11, 1.0, 1));
    CHECK(ended_episodes() == 1 && last_ended() == 11);
    run_episode(probed_trajectory, 12, 2, experts_seen);
    CHECK(experts_seen[0] == 0 && experts_seen[1] == 0);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(probed_trajectory, 12, 1.0, 1));
    CHECK(ended_episodes() == 2 && last_ended() == 12); /* told through the trajectory router */
    /* The state lives while anything holds the router, and is destroyed with the last holder. */
    EXPECT(MORAGENT_OK, moragent_router_free(probe_router));
    EXPECT(MORAGENT_OK, moragent_policy_free(probed));
    CHECK(live_states() == 1);
    EXPECT(MORAGENT_OK, moragent_router_free(probe_trajectory));
    run_episode(probed_trajectory, 13, 1, experts_seen);
    EXPECT(MORAGENT_OK, moragent_policy_free(probed_trajectory));
    CHECK(live_states() == 0);
    /* Faulty decisions and refused configurations. */
    const char *modes[] = {"{\"mode\": \"fail\"}", "{\"mode\": \"nan\"}", "{\"mode\": \"negative\"}"};
    const char *mode_messages[] = {"returned 3", "nan", "-1.0"};
    for (int i = 0; i < 3; i++) {
        moragent_router *faulty = NULL;
        EXPECT(MORAGENT_OK, moragent_router_create_kind("test_probe", modes[i], 2, &faulty));
        moragent_policy *faulty_policy = make_policy(engine, peft, faulty, &sampling);
        EXPECT(MORAGENT_ERROR_CALLBACK, moragent_policy_step(faulty_policy, 0, "o", "g", &no_result));
        check(strstr(moragent_last_error(), "decide function of router kind \"test_probe\"") != NULL &&
                  strstr(moragent_last_error(), mode_messages[i]) != NULL,
              __LINE__, modes[i]);
        moragent_policy_free(faulty_policy);
        moragent_router_free(faulty);
    }
    moragent_router *mixing = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_kind("test_probe", "{\"mode\": \"mixture\"}", 3, &mixing));
    moragent_policy *mixed = make_policy(engine, three, mixing, &sampling);
    EXPECT(MORAGENT_OK, moragent_policy_step(mixed, 0, "o", "g", &r1));
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(r1, &probabilities, &count));
    CHECK(expert_of(r1) == -1 && count == 3 && fabsf(probabilities[2] - 0.5f) < 1e-6f);
    moragent_step_result_free(r1);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("test_probe", "{\"mode\": \"refuse\"}", 2, &not_made));
    MESSAGE_HAS("refused the configuration: refused as asked");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("test_probe", "{\"mode\": \"long_error\"}", 2, &not_made));
    CHECK(strstr(moragent_last_error(), "xxxxxxxx") != NULL && strlen(moragent_last_error()) < 1024 + 200);
    CHECK(not_made == NULL && live_states() == 1); /* `mixing` alone */

    /* ---- episodes: ending, clearing, traces, lifetimes ---- */
    EXPECT(MORAGENT_OK, moragent_policy_clear_ended(alternate));
    EXPECT(MORAGENT_OK, moragent_policy_trace_jsonl(alternate, (char *)experts_seen, 1, &trace_length));
    CHECK(trace_length == 0 && ((char *)experts_seen)[0] == '\0');
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_policy_trace_jsonl(alternate, NULL, 0, &trace_length));
    CHECK(trace_length == 0);
    run_episode(alternate, 3, 1, experts_seen); /* a cleared episode number starts again */
    CHECK(cb.last.step == 0);
    run_episode(alternate, 20, 1, experts_seen);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(alternate, 3, 1.0, 1));
    EXPECT(MORAGENT_OK, moragent_policy_clear_ended(alternate));
    run_episode(alternate, 20, 1, experts_seen); /* a running episode survives clearing */
    CHECK(cb.last.step == 1);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(alternate, 20, NAN, 1));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(alternate, 20, INFINITY, 1));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(alternate, 21, 1.0, 1));
    MESSAGE_HAS("episode 21 has taken no step");
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(alternate, 20, 1.0, 1));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(alternate, 20, 1.0, 1));
    MESSAGE_HAS("already ended");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 20, "o", "g", &no_result));
    MESSAGE_HAS("episode 20 has ended");
    char small_buffer[8];
    memset(small_buffer, 'z', sizeof small_buffer);
    EXPECT(MORAGENT_ERROR_BUFFER_TOO_SMALL, moragent_policy_trace_jsonl(alternate, small_buffer, sizeof small_buffer, &trace_length));
    CHECK(trace_length > sizeof small_buffer && small_buffer[0] == 'z');

    /* A policy outlives the handles it was made from; its experts are the ones it took. */
    moragent_experts *temporary = NULL;
    moragent_router *temporary_router = NULL;
    moragent_engine *temporary_engine = NULL;
    EXPECT(MORAGENT_OK, moragent_engine_load(qwen2, &temporary_engine));
    EXPECT(MORAGENT_OK, moragent_experts_create(temporary_engine, 1, &small, 4, &temporary));
    EXPECT(MORAGENT_OK, moragent_router_create_fixed(1, 0, &temporary_router));
    moragent_policy *orphan = make_policy(temporary_engine, temporary, temporary_router, &sampling);
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(temporary, adapter0)); /* not seen by the policy */
    moragent_policy *mismatch = (moragent_policy *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(temporary_engine, temporary, temporary_router, NULL, &mismatch));
    MESSAGE_HAS("the router chooses among 1 experts but the set has 2");
    CHECK(mismatch == NULL);
    EXPECT(MORAGENT_OK, moragent_engine_free(temporary_engine));
    EXPECT(MORAGENT_OK, moragent_experts_free(temporary));
    EXPECT(MORAGENT_OK, moragent_router_free(temporary_router));
    moragent_step_result *kept = step(orphan, 0, "still here");
    CHECK(expert_of(kept) == 0);
    EXPECT(MORAGENT_OK, moragent_policy_free(orphan));
    EXPECT(MORAGENT_OK, moragent_step_result_action(kept, &text, &text_length)); /* results outlive policies */
    EXPECT(MORAGENT_OK, moragent_step_result_free(kept));
    moragent_step_result *freed_result = kept;
    moragent_policy *freed_policy = orphan;
    moragent_experts *freed_experts = temporary;
    moragent_router *freed_router = temporary_router;

    /* ---- the table of bad calls: status expected, call ---- */
    char *bad_adapter = path_join(scratch, "bad-adapter");
    char *bad_adapter_config = path_join(bad_adapter, "adapter_config.json");
    mkdir(bad_adapter, 0755);
    write_bytes(bad_adapter_config, "{\"peft_type\": \"LORA\", \"r\": ", 27);
    moragent_experts *out_experts = NULL;
    moragent_router *out_router = NULL;
    moragent_policy *out_policy = NULL;
    moragent_step_result *out_result = NULL;
    moragent_lora_params l_small = lora, l_rank0 = lora, l_rank_big = lora, l_alpha_nan = lora, l_no_modules = lora,
                         l_unknown_bits = lora, l_rank_huge = lora;
    l_small.struct_size = sizeof lora - 1;
    l_rank0.rank = 0;
    l_rank_big.rank = 65537;
    l_rank_huge.rank = (size_t)-1;
    l_alpha_nan.alpha = nanf("");
    l_no_modules.target_modules = 0;
    l_unknown_bits.target_modules = MORAGENT_MODULE_Q | 0x80;
    moragent_phase_router_params ph_small = tiny, ph_k0 = tiny, ph_heads = tiny, ph_heads0 = tiny, ph_layers = tiny,
                                 ph_history = tiny, ph_nan = tiny, ph_temp0 = tiny, ph_huge = tiny, ph_neg = tiny;
    ph_small.struct_size = 8;
    ph_k0.expert_count = 0;
    ph_heads.attention_heads = 3; /* 16 is not a multiple of 3 */
    ph_heads0.attention_heads = 0;
    ph_layers.lstm_layers = 65;
    ph_history.history_length = 4097;
    ph_nan.initial_temperature = nanf("");
    ph_temp0.final_temperature = 0.0f;
    ph_huge.attention_dim = (size_t)1 << 40;
    ph_neg.mlp_hidden = (size_t)-1;
    moragent_policy_params pp_small = custom, pp_bad_template = custom, pp_history = custom, pp_bad_sampling = custom;
    moragent_generation_params nan_sampling = sampling;
    nan_sampling.temperature = nanf("");
    pp_small.struct_size = 4;
    pp_bad_template.later_step_template = "\xff bad";
    pp_history.history_length = (size_t)-1;
    pp_bad_sampling.sampling = &nan_sampling;
    moragent_policy *router_as_policy = (moragent_policy *)alternating;
    moragent_router *policy_as_router = (moragent_router *)alternate;
    moragent_experts *engine_as_experts = (moragent_experts *)engine;
    moragent_engine *experts_as_engine = (moragent_engine *)experts;
    moragent_step_result *policy_as_result = (moragent_step_result *)alternate;
    int local = 0;
    moragent_router *not_a_handle = (moragent_router *)&local;
    int32_t i32 = 0;
    double seconds = 0;
    size_t out_count = 0;
    const int32_t *out_ids = NULL;
    const float *out_floats = NULL;
    const char *out_text = NULL;

#define BAD_CALLS(X)                                                                                                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_lora_params_default(NULL))                                           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_lora_params_default(&l_small))                                       \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_phase_router_params_default(NULL))                                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_phase_router_params_default(&ph_small))                              \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_params_default(NULL))                                         \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_params_default(&pp_small))                                    \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_create(NULL, 1, NULL, 0, &out_experts))                        \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_create(experts_as_engine, 1, NULL, 0, &out_experts))           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, NULL, 0, NULL))                            \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 65537, NULL, 0, &out_experts))                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, (size_t)-1, NULL, 0, &out_experts))           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_small, 0, &out_experts))                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_rank0, 0, &out_experts))                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_rank_big, 0, &out_experts))             \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_rank_huge, 0, &out_experts))            \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_alpha_nan, 0, &out_experts))            \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_no_modules, 0, &out_experts))           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 1, &l_unknown_bits, 0, &out_experts))         \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_create(engine, 65536, &l_rank_big, 0, &out_experts))         \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_free(freed_experts))                                           \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_free(engine_as_experts))                                       \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_count(NULL, &out_count))                                       \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_count(freed_experts, &out_count))                              \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_count(experts, NULL))                                        \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_load_peft(NULL, adapter0))                                     \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_load_peft(freed_experts, adapter0))                            \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_load_peft(experts, NULL))                                    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_load_peft(experts, "\xc3\x28"))                              \
    X(MORAGENT_ERROR_IO, moragent_experts_load_peft(experts, missing_plugin))                                        \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_load_peft(llama_experts, adapter0))                          \
    X(MORAGENT_ERROR_IO, moragent_experts_load_peft(experts, qwen2))                                                 \
    X(MORAGENT_ERROR_MALFORMED_FILE, moragent_experts_load_peft(experts, bad_adapter))                               \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_save_peft(NULL, 0, saved))                                     \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_save_peft(experts, 2, saved))                                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_save_peft(experts, (size_t)-1, saved))                       \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_save_peft(experts, 0, NULL))                                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_experts_save_peft(experts, 0, "\xed\xa0\x80"))                       \
    X(MORAGENT_ERROR_IO, moragent_experts_save_peft(experts, 0, "/nonexistent-dir/sub/expert"))                      \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_fixed(2, 2, &out_router))                              \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_fixed(2, -2, &out_router))                             \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_fixed(0, 0, &out_router))                              \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_fixed(65537, -1, &out_router))                         \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_fixed(2, 0, NULL))                                     \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(0, &tiny, 0, &out_router))                       \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(65537, &tiny, 0, &out_router))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &tiny, 0, NULL))                             \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_small, 0, &out_router))                  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_k0, 0, &out_router))                     \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_heads, 0, &out_router))                  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_heads0, 0, &out_router))                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_layers, 0, &out_router))                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_history, 0, &out_router))                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_nan, 0, &out_router))                    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_temp0, 0, &out_router))                  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_huge, 0, &out_router))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_phase(64, &ph_neg, 0, &out_router))                    \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_phase_save(NULL, phase_path))                                   \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_phase_save(freed_router, phase_path))                           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(alternating, phase_path))                          \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(trajectory, phase_path))                           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(phase, NULL))                                      \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(phase, "\xff"))                                    \
    X(MORAGENT_ERROR_IO, moragent_router_phase_save(phase, "/nonexistent-dir/phase.safetensors"))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_load(NULL, &out_router))                                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_load(phase_path, NULL))                                 \
    X(MORAGENT_ERROR_IO, moragent_router_phase_load(missing_router, &out_router))                                    \
    X(MORAGENT_ERROR_MALFORMED_FILE, moragent_router_phase_load(not_router, &out_router))                            \
    X(MORAGENT_ERROR_MALFORMED_FILE, moragent_router_phase_load(huge_router, &out_router))                           \
    X(MORAGENT_ERROR_MALFORMED_FILE, moragent_router_phase_load(not_elf, &out_router))                               \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_trajectory(NULL, &out_router))                           \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_trajectory(freed_router, &out_router))                   \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_trajectory(policy_as_router, &out_router))               \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_trajectory(phase, NULL))                               \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_callback(2, NULL, NULL, &out_router))                  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_callback(2, route, &cb, NULL))                         \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_callback(65537, route, &cb, &out_router))              \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_free(freed_router))                                             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_free(not_a_handle))                                             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_free(policy_as_router))                                         \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_expert_count(NULL, &out_count))                                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_expert_count(phase, NULL))                                    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_plugin_load(NULL))                                                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_plugin_load("\xc0\x80.so"))                                          \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind(NULL, NULL, 2, &out_router))                      \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", NULL, 2, NULL))                    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", "{\"period\": ", 2, &out_router))  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", "\"\xff\"", 2, &out_router))       \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("round_robin", NULL, 65537, &out_router))         \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("no_such_kind", NULL, 2, &out_router))            \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_kind("\xff", NULL, 2, &out_router))                    \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(NULL, experts, to_peft0, NULL, &out_policy))             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(engine, NULL, to_peft0, NULL, &out_policy))              \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(engine, experts, NULL, NULL, &out_policy))               \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(engine, freed_experts, to_peft0, NULL, &out_policy))     \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(engine, experts, freed_router, NULL, &out_policy))       \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_create(engine, engine_as_experts, to_peft0, NULL, &out_policy)) \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, to_peft0, NULL, NULL))                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, three, to_peft0, NULL, &out_policy))           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, llama_experts, fixed3, NULL, &out_policy))     \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, narrow, NULL, &out_policy))           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, narrow_trajectory, NULL, &out_policy)) \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, to_peft0, &pp_small, &out_policy))    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, to_peft0, &pp_bad_template, &out_policy)) \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, to_peft0, &pp_history, &out_policy))  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, experts, to_peft0, &pp_bad_sampling, &out_policy)) \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_free(freed_policy))                                             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_free(router_as_policy))                                         \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_step(NULL, 0, "o", "g", &out_result))                           \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_step(freed_policy, 0, "o", "g", &out_result))                   \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_step(router_as_policy, 0, "o", "g", &out_result))               \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 0, NULL, "g", &out_result))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 0, "o", NULL, &out_result))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 0, "o", "g", NULL))                           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 0, "ab\xff", "g", &out_result))               \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_step(alternate, 0, "o", "\xe2\x82", &out_result))             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_end_episode(NULL, 0, 1.0, 1))                                   \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_end_episode(freed_policy, 0, 1.0, 1))                           \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_end_episode(alternate, 20, -INFINITY, 1))                     \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_trace_jsonl(NULL, NULL, 0, &out_count))                         \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_trace_jsonl(router_as_policy, NULL, 0, &out_count))             \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_trace_jsonl(alternate, NULL, 0, NULL))                        \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_trace_jsonl(alternate, NULL, 16, &out_count))                 \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_trace_jsonl(alternate, small_buffer, (size_t)-1, &out_count)) \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_clear_ended(NULL))                                              \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_clear_ended(freed_policy))                                      \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_free(freed_result))                                        \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_free(policy_as_result))                                    \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_action(NULL, &out_text, NULL))                             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_action(freed_result, &out_text, NULL))                     \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_action(peft0_step, NULL, NULL))                          \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_response(policy_as_result, &out_text, NULL))               \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_response(peft0_step, NULL, &out_count))                  \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_action_valid(NULL, &i32))                                  \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_action_valid(peft0_step, NULL))                          \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_ids(freed_result, &out_ids, &out_count))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_ids(peft0_step, NULL, &out_count))                       \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_ids(peft0_step, &out_ids, NULL))                         \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_logprobs(NULL, &out_floats, &out_count))                   \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_logprobs(peft0_step, &out_floats, NULL))                 \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_prompt_ids(NULL, &out_ids, &out_count))                    \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_prompt_ids(peft0_step, NULL, &out_count))                \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_expert(freed_result, &i32))                                \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_expert(peft0_step, NULL))                                \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_probabilities(NULL, &out_floats, &out_count))              \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_probabilities(peft0_step, NULL, &out_count))             \
    X(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_timing(NULL, &seconds, &seconds))                          \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_timing(peft0_step, NULL, &seconds))                      \
    X(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_timing(peft0_step, &seconds, NULL))

#define RUN_BAD_CALL(expected, call) EXPECT(expected, call);
    BAD_CALLS(RUN_BAD_CALL)
#undef RUN_BAD_CALL

    /* Failed calls cleared their handle out-parameters; what the table misused still works. */
    CHECK(out_experts == NULL && out_router == NULL && out_policy == NULL && out_result == NULL);
    EXPECT(MORAGENT_OK, moragent_experts_count(experts, &count));
    CHECK(count == 2);
    EXPECT(MORAGENT_OK, moragent_policy_step(alternate, 30, "o", "g", &r1));
    moragent_step_result_free(r1);

    /* ---- frees: live handles once, NULL always ---- */
    moragent_step_result *results[] = {base_step, peft0_step, peft1_step, new_step};
    for (size_t i = 0; i < sizeof results / sizeof *results; i++) EXPECT(MORAGENT_OK, moragent_step_result_free(results[i]));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_free(base_step));
    moragent_policy *policies[] = {base_policy, peft0_policy, peft1_policy, new_policy, templated, chat, defaults, twin,
                                   alternate, busy, sharing, per_episode, phased, reloaded, pooled_policy, cycled, cycled1,
                                   mixed};
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) EXPECT(MORAGENT_OK, moragent_policy_free(policies[i]));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_policy_free(alternate));
    moragent_router *routers[] = {to_base, to_peft0, to_peft1, to_new, fixed3, alternating, shared, trajectory, phase,
                                  loaded, pooled, narrow, narrow_trajectory, cycling, period1, mixing};
    for (size_t i = 0; i < sizeof routers / sizeof *routers; i++) EXPECT(MORAGENT_OK, moragent_router_free(routers[i]));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_free(phase));
    moragent_experts *sets[] = {experts, empty, all_modules, llama_experts, peft, three};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) EXPECT(MORAGENT_OK, moragent_experts_free(sets[i]));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_experts_free(experts));
    EXPECT(MORAGENT_OK, moragent_experts_free(NULL));
    EXPECT(MORAGENT_OK, moragent_router_free(NULL));
    EXPECT(MORAGENT_OK, moragent_policy_free(NULL));
    EXPECT(MORAGENT_OK, moragent_step_result_free(NULL));
    EXPECT(MORAGENT_OK, moragent_engine_free(engine));
    EXPECT(MORAGENT_OK, moragent_engine_free(llama_engine));
    dlclose(probe_library);

    printf("routing: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
