/*
 * Header test: moragent.h must compile cleanly, on its own, as C99 and as C++17 with
 * -Wall -Wextra -Werror -pedantic (run.sh builds this file both ways), and its declarations must
 * have the types the documentation promises. Each check below fails the build when it breaks;
 * main() then confirms the program links and the library agrees with the header's version.
 */
#include "moragent.h"

#include <stdio.h>

/* A compile-time assertion usable in C99 and C++ (an array of negative size does not compile). */
#define HEADER_ASSERT(name, condition) typedef char header_assert_##name[(condition) ? 1 : -1]

HEADER_ASSERT(version_number, MORAGENT_VERSION_NUMBER ==
              MORAGENT_VERSION_MAJOR * 1000000 + MORAGENT_VERSION_MINOR * 1000 + MORAGENT_VERSION_PATCH);
HEADER_ASSERT(ok_is_zero, MORAGENT_OK == 0);
HEADER_ASSERT(errors_negative, MORAGENT_ERROR_INVALID_ARGUMENT < 0 && MORAGENT_ERROR_INVALID_HANDLE < 0 &&
              MORAGENT_ERROR_IO < 0 && MORAGENT_ERROR_MALFORMED_FILE < 0 && MORAGENT_ERROR_UNSUPPORTED < 0 &&
              MORAGENT_ERROR_BUFFER_TOO_SMALL < 0 && MORAGENT_ERROR_ABORTED < 0 && MORAGENT_ERROR_INTERNAL < 0);
/* struct_size must lead every parameter struct: the library reads it before anything else. */
HEADER_ASSERT(params_size_first, offsetof(moragent_generation_params, struct_size) == 0);
HEADER_ASSERT(info_size_first, offsetof(moragent_engine_info, struct_size) == 0);
HEADER_ASSERT(status_is_int_sized, sizeof(moragent_status) == sizeof(int));
/* 0.2 */
HEADER_ASSERT(new_errors_negative, MORAGENT_ERROR_CALLBACK == -9 && MORAGENT_ERROR_BUSY == -10);
HEADER_ASSERT(lora_size_first, offsetof(moragent_lora_params, struct_size) == 0);
HEADER_ASSERT(phase_size_first, offsetof(moragent_phase_router_params, struct_size) == 0);
HEADER_ASSERT(policy_size_first, offsetof(moragent_policy_params, struct_size) == 0);
HEADER_ASSERT(features_size_first, offsetof(moragent_step_features, struct_size) == 0);
HEADER_ASSERT(kind_size_first, offsetof(moragent_router_kind, struct_size) == 0);
HEADER_ASSERT(registrar_size_first, offsetof(moragent_plugin_registrar, struct_size) == 0);
/* The library reads a kind's api_version before anything else that may change between versions. */
HEADER_ASSERT(kind_version_second, offsetof(moragent_router_kind, api_version) == sizeof(size_t));
HEADER_ASSERT(plugin_api_version, MORAGENT_PLUGIN_API_VERSION == 1);
HEADER_ASSERT(module_bits, (MORAGENT_MODULE_Q | MORAGENT_MODULE_K | MORAGENT_MODULE_V | MORAGENT_MODULE_O |
                            MORAGENT_MODULE_GATE | MORAGENT_MODULE_UP | MORAGENT_MODULE_DOWN) == 0x7F);
/* 0.4 */
HEADER_ASSERT(trainer_size_first, offsetof(moragent_trainer_params, struct_size) == 0);
HEADER_ASSERT(advantages, MORAGENT_ADVANTAGE_GRPO == 0 && MORAGENT_ADVANTAGE_RLOO == 1 && MORAGENT_ADVANTAGE_GIGPO == 2 &&
              MORAGENT_ADVANTAGE_PPO == 3);
HEADER_ASSERT(version_0_4, MORAGENT_VERSION_NUMBER >= 4000);
/* The plugin entry point is declared (not defined by the library): its type, unevaluated. */
HEADER_ASSERT(entry_returns_int, sizeof(((moragent_plugin_register_fn)0)((moragent_plugin_registrar *)0)) == sizeof(int));

/* Each function, assigned to a pointer of the type the documentation gives: a changed
 * signature fails to compile here. */
static const char *(*const check_version)(void) = moragent_version;
static int32_t (*const check_version_number)(void) = moragent_version_number;
static const char *(*const check_status_string)(moragent_status) = moragent_status_string;
static const char *(*const check_last_error)(void) = moragent_last_error;
static void (*const check_set_log_callback)(moragent_log_fn, void *) = moragent_set_log_callback;
static void (*const check_cache_set_limit)(uint64_t) = moragent_buffer_cache_set_limit;
static uint64_t (*const check_cache_kept)(void) = moragent_buffer_cache_kept_bytes;
static moragent_status (*const check_policy_step_batch)(moragent_policy *, size_t, const int64_t *, const char *const *,
                                                        const char *const *, moragent_step_result **) =
    moragent_policy_step_batch;
static moragent_status (*const check_engine_load)(const char *, moragent_engine **) = moragent_engine_load;
static moragent_status (*const check_engine_free)(moragent_engine *) = moragent_engine_free;
static moragent_status (*const check_engine_get_info)(const moragent_engine *, moragent_engine_info *) =
    moragent_engine_get_info;
static moragent_status (*const check_tokenize)(const moragent_engine *, const char *, size_t, int32_t *, size_t,
                                               size_t *) = moragent_tokenize;
static moragent_status (*const check_detokenize)(const moragent_engine *, const int32_t *, size_t, char *, size_t,
                                                 size_t *) = moragent_detokenize;
static moragent_status (*const check_params_default)(moragent_generation_params *) =
    moragent_generation_params_default;
static moragent_status (*const check_generate)(const moragent_engine *, const int32_t *, size_t,
                                               const moragent_generation_params *, moragent_progress_fn, void *,
                                               moragent_generation **) = moragent_generate;
static moragent_status (*const check_generation_free)(moragent_generation *) = moragent_generation_free;
static moragent_status (*const check_token_count)(const moragent_generation *, size_t *) =
    moragent_generation_token_count;
static moragent_status (*const check_ids)(const moragent_generation *, const int32_t **) = moragent_generation_ids;
static moragent_status (*const check_logprobs)(const moragent_generation *, const float **) =
    moragent_generation_logprobs;
static moragent_status (*const check_entropies)(const moragent_generation *, const float **) =
    moragent_generation_entropies;
static moragent_status (*const check_text)(const moragent_generation *, const char **, size_t *) =
    moragent_generation_text;
static moragent_status (*const check_stop_reason)(const moragent_generation *, moragent_stop_reason *) =
    moragent_generation_stop_reason;

static moragent_status (*const check_lora_default)(moragent_lora_params *) = moragent_lora_params_default;
static moragent_status (*const check_experts_create)(const moragent_engine *, size_t, const moragent_lora_params *, uint64_t,
                                                     moragent_experts **) = moragent_experts_create;
static moragent_status (*const check_experts_free)(moragent_experts *) = moragent_experts_free;
static moragent_status (*const check_experts_count)(const moragent_experts *, size_t *) = moragent_experts_count;
static moragent_status (*const check_experts_load_peft)(moragent_experts *, const char *) = moragent_experts_load_peft;
static moragent_status (*const check_experts_save_peft)(const moragent_experts *, size_t, const char *) =
    moragent_experts_save_peft;
static moragent_status (*const check_router_fixed)(size_t, int32_t, moragent_router **) = moragent_router_create_fixed;
static moragent_status (*const check_phase_default)(moragent_phase_router_params *) = moragent_phase_router_params_default;
static moragent_status (*const check_router_phase)(size_t, const moragent_phase_router_params *, uint64_t,
                                                   moragent_router **) = moragent_router_create_phase;
static moragent_status (*const check_phase_save)(const moragent_router *, const char *) = moragent_router_phase_save;
static moragent_status (*const check_phase_load)(const char *, moragent_router **) = moragent_router_phase_load;
static moragent_status (*const check_router_trajectory)(moragent_router *, moragent_router **) =
    moragent_router_create_trajectory;
static moragent_status (*const check_router_callback)(size_t, moragent_router_fn, void *, moragent_router **) =
    moragent_router_create_callback;
static moragent_status (*const check_router_free)(moragent_router *) = moragent_router_free;
static moragent_status (*const check_router_count)(const moragent_router *, size_t *) = moragent_router_expert_count;
static moragent_status (*const check_plugin_load)(const char *) = moragent_plugin_load;
static moragent_status (*const check_router_kind)(const char *, const char *, size_t, moragent_router **) =
    moragent_router_create_kind;
static moragent_status (*const check_policy_default)(moragent_policy_params *) = moragent_policy_params_default;
static moragent_status (*const check_policy_create)(const moragent_engine *, const moragent_experts *, moragent_router *,
                                                    const moragent_policy_params *, moragent_policy **) =
    moragent_policy_create;
static moragent_status (*const check_policy_free)(moragent_policy *) = moragent_policy_free;
static moragent_status (*const check_policy_step)(moragent_policy *, int64_t, const char *, const char *,
                                                  moragent_step_result **) = moragent_policy_step;
static moragent_status (*const check_policy_end)(moragent_policy *, int64_t, double, int32_t) =
    moragent_policy_end_episode;
static moragent_status (*const check_policy_trace)(const moragent_policy *, char *, size_t, size_t *) =
    moragent_policy_trace_jsonl;
static moragent_status (*const check_policy_clear)(moragent_policy *) = moragent_policy_clear_ended;
static moragent_status (*const check_result_free)(moragent_step_result *) = moragent_step_result_free;
static moragent_status (*const check_result_action)(const moragent_step_result *, const char **, size_t *) =
    moragent_step_result_action;
static moragent_status (*const check_result_response)(const moragent_step_result *, const char **, size_t *) =
    moragent_step_result_response;
static moragent_status (*const check_result_valid)(const moragent_step_result *, int32_t *) =
    moragent_step_result_action_valid;
static moragent_status (*const check_result_ids)(const moragent_step_result *, const int32_t **, size_t *) =
    moragent_step_result_ids;
static moragent_status (*const check_result_logprobs)(const moragent_step_result *, const float **, size_t *) =
    moragent_step_result_logprobs;
static moragent_status (*const check_result_prompt_ids)(const moragent_step_result *, const int32_t **, size_t *) =
    moragent_step_result_prompt_ids;
static moragent_status (*const check_result_expert)(const moragent_step_result *, int32_t *) =
    moragent_step_result_expert;
static moragent_status (*const check_result_probabilities)(const moragent_step_result *, const float **, size_t *) =
    moragent_step_result_probabilities;
static moragent_status (*const check_result_timing)(const moragent_step_result *, double *, double *) =
    moragent_step_result_timing;
/* 0.3 */
static moragent_status (*const check_router_token)(const moragent_experts *, size_t, int32_t, uint64_t, moragent_router **) =
    moragent_router_create_token;
static moragent_status (*const check_mor_default)(moragent_mor_params *) = moragent_mor_params_default;
static moragent_status (*const check_router_roles)(const moragent_engine *, const moragent_mor_params *, uint64_t,
                                                   moragent_router **) = moragent_router_create_roles;
static moragent_status (*const check_roles_save)(const moragent_router *, const char *) = moragent_router_roles_save;
static moragent_status (*const check_roles_load)(const moragent_engine *, const char *, moragent_router **) =
    moragent_router_roles_load;
static moragent_status (*const check_result_roles)(const moragent_step_result *, const int32_t **, size_t *) =
    moragent_step_result_roles;
static moragent_status (*const check_result_token_experts)(const moragent_step_result *, const int32_t **, size_t *,
                                                           size_t *) = moragent_step_result_token_experts;
/* 0.4 */
static moragent_status (*const check_begin_episode)(moragent_policy *, int64_t, int64_t) = moragent_policy_begin_episode;
static moragent_status (*const check_recorded_steps)(const moragent_policy *, size_t *) = moragent_policy_recorded_steps;
static moragent_status (*const check_step_reward)(moragent_policy *, int64_t, double) = moragent_policy_step_reward;
static moragent_status (*const check_trainer_default)(moragent_trainer_params *) = moragent_trainer_params_default;
static moragent_status (*const check_trainer_create)(moragent_policy *, const moragent_trainer_params *,
                                                     moragent_trainer **) = moragent_trainer_create;
static moragent_status (*const check_trainer_free)(moragent_trainer *) = moragent_trainer_free;
static moragent_status (*const check_trainer_update)(moragent_trainer *, moragent_progress_fn, void *) =
    moragent_trainer_update;
static moragent_status (*const check_trainer_stats)(const moragent_trainer *, char *, size_t, size_t *) =
    moragent_trainer_last_stats;
static moragent_status (*const check_trainer_save)(moragent_trainer *, const char *) = moragent_trainer_save;
static moragent_status (*const check_trainer_load)(moragent_trainer *, const char *) = moragent_trainer_load;
static moragent_status (*const check_trainer_export)(moragent_trainer *, size_t, const char *) =
    moragent_trainer_export_expert;
static moragent_status (*const check_sft_create)(const moragent_engine *, const char *, moragent_sft_trainer **) =
    moragent_sft_trainer_create;
static moragent_status (*const check_sft_free)(moragent_sft_trainer *) = moragent_sft_trainer_free;
static moragent_status (*const check_sft_step)(moragent_sft_trainer *, const char *) = moragent_sft_trainer_step;
static moragent_status (*const check_sft_evaluate)(moragent_sft_trainer *, const char *, double *) =
    moragent_sft_trainer_evaluate;
static moragent_status (*const check_sft_stats)(const moragent_sft_trainer *, char *, size_t, size_t *) =
    moragent_sft_trainer_last_stats;
static moragent_status (*const check_sft_save)(moragent_sft_trainer *, const char *) = moragent_sft_trainer_save;
/* Every field of the trainer parameters, with the type the documentation gives. */
static const moragent_trainer_params check_trainer_params = {
    sizeof(moragent_trainer_params), MORAGENT_ADVANTAGE_GIGPO, 1, 0, 0.95, 0.95, 1.0, 0.0, 0.1, 1e-4f, 0.0f, 1.0f, 0, 0,
    1, 0.2f, 0.2f, 3.0f, 0, 0.0f, 1, 0.001f, 1.0f, 0.05f, 0.01f, 100, 64, 1000, 0.1f, 1, 1, 32, 0, (const char *)0,
    65536, 1.0f, 0};

/* The callback and vtable types, filled with functions of the documented signatures. */
static int router_fn(const moragent_step_features *features, float *weights, size_t expert_count, void *user) {
    (void)features, (void)weights, (void)expert_count, (void)user;
    return 0;
}
static void *kind_create(const char *config_json, size_t expert_count, char *error, size_t error_capacity) {
    (void)config_json, (void)expert_count, (void)error, (void)error_capacity;
    return 0;
}
static int kind_decide(void *state, const moragent_step_features *features, float *weights, size_t expert_count) {
    return router_fn(features, weights, expert_count, state);
}
static void kind_end_episode(void *state, int64_t episode) { (void)state, (void)episode; }
static void kind_destroy(void *state) { (void)state; }
static int registrar_register(moragent_plugin_registrar *registrar, const moragent_router_kind *kind) {
    (void)registrar, (void)kind;
    return 0;
}
static const moragent_router_fn check_router_fn = router_fn;
static const moragent_router_kind check_kind = {sizeof(moragent_router_kind), MORAGENT_PLUGIN_API_VERSION, "kind",
                                                kind_create, kind_decide, kind_end_episode, kind_destroy};
static const moragent_plugin_registrar check_registrar = {sizeof(moragent_plugin_registrar),
                                                          MORAGENT_PLUGIN_API_VERSION, registrar_register};

int main(void) {
    const void *all[] = {
        (const void *)&check_version, (const void *)&check_version_number, (const void *)&check_status_string,
        (const void *)&check_last_error, (const void *)&check_set_log_callback, (const void *)&check_engine_load,
        (const void *)&check_engine_free, (const void *)&check_engine_get_info, (const void *)&check_tokenize,
        (const void *)&check_detokenize, (const void *)&check_params_default, (const void *)&check_generate,
        (const void *)&check_generation_free, (const void *)&check_token_count, (const void *)&check_ids,
        (const void *)&check_logprobs, (const void *)&check_entropies, (const void *)&check_text,
        (const void *)&check_stop_reason, (const void *)&check_lora_default, (const void *)&check_experts_create,
        (const void *)&check_experts_free, (const void *)&check_experts_count, (const void *)&check_experts_load_peft,
        (const void *)&check_experts_save_peft, (const void *)&check_router_fixed, (const void *)&check_phase_default,
        (const void *)&check_router_phase, (const void *)&check_phase_save, (const void *)&check_phase_load,
        (const void *)&check_router_trajectory, (const void *)&check_router_callback, (const void *)&check_router_free,
        (const void *)&check_router_count, (const void *)&check_plugin_load, (const void *)&check_router_kind,
        (const void *)&check_policy_default, (const void *)&check_policy_create, (const void *)&check_policy_free,
        (const void *)&check_policy_step, (const void *)&check_policy_end, (const void *)&check_policy_trace,
        (const void *)&check_policy_clear, (const void *)&check_result_free, (const void *)&check_result_action,
        (const void *)&check_result_response, (const void *)&check_result_valid, (const void *)&check_result_ids,
        (const void *)&check_result_logprobs, (const void *)&check_result_prompt_ids, (const void *)&check_result_expert,
        (const void *)&check_result_probabilities, (const void *)&check_result_timing, (const void *)&check_router_fn,
        (const void *)&check_kind, (const void *)&check_registrar, (const void *)&check_begin_episode,
        (const void *)&check_recorded_steps, (const void *)&check_step_reward, (const void *)&check_trainer_default, (const void *)&check_trainer_create,
        (const void *)&check_trainer_free, (const void *)&check_trainer_update, (const void *)&check_trainer_stats,
        (const void *)&check_trainer_save, (const void *)&check_trainer_load, (const void *)&check_trainer_export,
        (const void *)&check_trainer_params, (const void *)&check_sft_create, (const void *)&check_sft_free,
        (const void *)&check_sft_step, (const void *)&check_sft_evaluate, (const void *)&check_sft_stats,
        (const void *)&check_sft_save, (const void *)&check_router_token, (const void *)&check_mor_default,
        (const void *)&check_router_roles, (const void *)&check_roles_save, (const void *)&check_roles_load,
        (const void *)&check_result_roles, (const void *)&check_result_token_experts,
        (const void *)&check_cache_set_limit, (const void *)&check_cache_kept, (const void *)&check_policy_step_batch,
    };
    (void)all;
    if (check_version_number() / 1000000 != MORAGENT_VERSION_MAJOR) {
        fprintf(stderr, "header_test: library %s has another major version than header %s\n", check_version(),
                MORAGENT_VERSION);
        return 1;
    }
    return 0;
}
