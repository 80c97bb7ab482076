/*
 * Exercises the 0.3 functions of moragent.h: token-level top-k routers and Mixture-of-Roles
 * routers, through moragent_policy_create and moragent_policy_step, with the step result
 * accessors moragent_step_result_token_experts and moragent_step_result_roles; bad calls (NULL
 * experts, top_k 0 or above K, bad moragent_mor_params, wrong router kinds) must give the
 * documented status and a message.
 *
 * Usage: token_roles_test MODELS_DIR ADAPTERS_DIR SCRATCH_DIR
 *   MODELS_DIR: the fixture models folder (qwen2-tiny and llama-tiny are used);
 *   ADAPTERS_DIR: the fixture PEFT adapters of qwen2-tiny (expert0, expert1, expert2);
 *   SCRATCH_DIR: an empty folder. Prints "token_roles: N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static moragent_policy *make_policy(const moragent_engine *engine, const moragent_experts *experts, moragent_router *router,
                                    const char *template_text) {
    moragent_generation_params sampling;
    sampling.struct_size = sizeof sampling;
    moragent_generation_params_default(&sampling);
    sampling.max_new_tokens = 8;
    sampling.ignore_eos = 1;
    moragent_policy_params params;
    params.struct_size = sizeof params;
    moragent_policy_params_default(&params);
    params.sampling = &sampling;
    params.first_step_template = template_text;
    moragent_policy *policy = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_create(engine, experts, router, &params, &policy));
    return policy;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODELS_DIR ADAPTERS_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    char *qwen2 = path_join(argv[1], "qwen2-tiny"), *llama = path_join(argv[1], "llama-tiny");
    char *adapter0 = path_join(argv[2], "expert0"), *adapter1 = path_join(argv[2], "expert1");
    char *adapter2 = path_join(argv[2], "expert2");
    char *saved = path_join(argv[3], "roles.safetensors"), *missing = path_join(argv[3], "missing.safetensors");

    CHECK(MORAGENT_VERSION_MINOR >= 3 && moragent_version_number() == MORAGENT_VERSION_NUMBER);

    moragent_engine *engine = NULL, *llama_engine = NULL;
    EXPECT(MORAGENT_OK, moragent_engine_load(qwen2, &engine));
    EXPECT(MORAGENT_OK, moragent_engine_load(llama, &llama_engine));

    /* Three experts with trained (non-zero) B, so the routes matter. */
    moragent_experts *experts = NULL, *empty = NULL, *llama_experts = NULL;
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 0, NULL, 0, &experts));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(experts, adapter0));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(experts, adapter1));
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(experts, adapter2));
    EXPECT(MORAGENT_OK, moragent_experts_create(engine, 0, NULL, 0, &empty));
    EXPECT(MORAGENT_OK, moragent_experts_create(llama_engine, 2, NULL, 0, &llama_experts));

    /* ---- token routers ---- */
    moragent_router *token = NULL, *bad = (moragent_router *)(uintptr_t)1;
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_token(NULL, 1, 1, 0, &bad));
    CHECK(bad == NULL);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_token(experts, 0, 1, 0, &bad));
    MESSAGE_HAS("top_k");
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_token(experts, 4, 1, 0, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_token(experts, (size_t)-1, 1, 0, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_token(empty, 1, 1, 0, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_token(experts, 1, 1, 0, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_token((const moragent_experts *)engine, 1, 1, 0, &bad));
    EXPECT(MORAGENT_OK, moragent_router_create_token(experts, 2, 1, 7, &token));
    size_t count = 0;
    EXPECT(MORAGENT_OK, moragent_router_expert_count(token, &count));
    CHECK(count == 3);
    /* The router snapshots the set: adding an expert later changes nothing. */
    EXPECT(MORAGENT_OK, moragent_experts_load_peft(experts, adapter0));
    EXPECT(MORAGENT_OK, moragent_router_expert_count(token, &count));
    CHECK(count == 3);
    /* Not a step router: no trajectory over it, no phase/roles save. */
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_trajectory(token, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(token, saved));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_roles_save(token, saved));

    /* A token-routed policy: experts may be NULL; a token router of another model is refused. */
    moragent_policy *policy = make_policy(engine, NULL, token, NULL), *none = NULL;
    moragent_router *llama_token = NULL;
    EXPECT(MORAGENT_OK, moragent_router_create_token(llama_experts, 1, 0, 0, &llama_token));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, NULL, llama_token, NULL, &none));
    CHECK(none == NULL);
    moragent_router_free(llama_token);

    moragent_step_result *a = NULL, *b = NULL;
    EXPECT(MORAGENT_OK, moragent_policy_step(policy, 1, "You are in the kitchen.", "heat an egg", &a));
    moragent_policy *again = make_policy(engine, experts, token, NULL);
    EXPECT(MORAGENT_OK, moragent_policy_step(again, 1, "You are in the kitchen.", "heat an egg", &b));
    const int32_t *ids = NULL, *ids_b = NULL, *chosen = NULL, *chosen_b = NULL, *roles = NULL;
    size_t n_ids = 0, n_ids_b = 0, tokens = 0, tokens_b = 0, per_token = 0, per_token_b = 0, n_roles = 99;
    EXPECT(MORAGENT_OK, moragent_step_result_ids(a, &ids, &n_ids));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(b, &ids_b, &n_ids_b));
    EXPECT(MORAGENT_OK, moragent_step_result_token_experts(a, &chosen, &tokens, &per_token));
    EXPECT(MORAGENT_OK, moragent_step_result_token_experts(b, &chosen_b, &tokens_b, &per_token_b));
    CHECK(n_ids == 8 && tokens == n_ids && per_token == 2);
    CHECK(n_ids == n_ids_b && memcmp(ids, ids_b, n_ids * sizeof *ids) == 0);
    CHECK(tokens == tokens_b && memcmp(chosen, chosen_b, tokens * per_token * sizeof *chosen) == 0);
    int in_range = 1, varies = 0;
    for (size_t i = 0; i < tokens * per_token; i++) in_range &= chosen[i] >= 0 && chosen[i] < 3;
    for (size_t i = 1; i < tokens; i++) varies |= chosen[i * per_token] != chosen[0];
    CHECK(in_range);
    CHECK(varies);
    const float *probabilities = NULL;
    size_t n_probabilities = 0;
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(a, &probabilities, &n_probabilities));
    CHECK(n_probabilities == 3 && fabsf(probabilities[0] + probabilities[1] + probabilities[2] - 1.0f) < 1e-4f);
    int32_t expert = -100;
    EXPECT(MORAGENT_OK, moragent_step_result_expert(a, &expert));
    CHECK(expert >= 0 && expert < 3);
    EXPECT(MORAGENT_OK, moragent_step_result_roles(a, &roles, &n_roles));
    CHECK(roles != NULL && n_roles == 0);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_token_experts(a, &chosen, &tokens, NULL));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_step_result_roles(a, NULL, &n_roles));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_step_result_roles(NULL, &roles, &n_roles));
    moragent_step_result_free(a);
    moragent_step_result_free(b);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(policy, 1, 1.0, 1));
    moragent_policy_free(again);
    moragent_policy_free(policy);

    /* ---- Mixture-of-Roles parameters ---- */
    moragent_mor_params mor;
    memset(&mor, 0xFF, sizeof mor);
    mor.struct_size = sizeof mor;
    EXPECT(MORAGENT_OK, moragent_mor_params_default(&mor));
    CHECK(mor.routed_counts[0] == 4 && mor.routed_counts[1] == 4 && mor.routed_counts[2] == 3);
    CHECK(mor.top_k[0] == 3 && mor.top_k[1] == 3 && mor.top_k[2] == 2 && mor.rank == 16 && mor.scale == 1.0f);
    CHECK(mor.shared_gate == 0 && mor.target_modules == 0x7F);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_mor_params_default(NULL));
    moragent_mor_params wrong = mor;
    wrong.struct_size = 8;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_mor_params_default(&wrong));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    CHECK(bad == NULL);
    wrong = mor; wrong.top_k[0] = 5;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.top_k[1] = 0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.rank = 0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    MESSAGE_HAS("rank");
    wrong = mor; wrong.rank = (size_t)1 << 40;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.scale = NAN;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.target_modules = 0;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.target_modules = 1u << 9;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.routed_counts[2] = (size_t)-1;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    wrong = mor; wrong.routed_counts[0] = 60000; wrong.top_k[0] = 1;
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &wrong, 0, &bad));
    MESSAGE_HAS("parameters");
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_create_roles(NULL, &mor, 0, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_roles(engine, &mor, 0, NULL));

    /* ---- Mixture-of-Roles routers and policies ---- */
    moragent_router *roles_router = NULL, *loaded = NULL, *llama_roles = NULL;
    mor.routed_counts[0] = mor.routed_counts[1] = mor.routed_counts[2] = 2;
    mor.top_k[0] = mor.top_k[1] = mor.top_k[2] = 1;
    mor.rank = 4;
    EXPECT(MORAGENT_OK, moragent_router_create_roles(engine, &mor, 3, &roles_router));
    EXPECT(MORAGENT_OK, moragent_router_create_roles(engine, NULL, 3, &bad));
    moragent_router_free(bad);
    EXPECT(MORAGENT_OK, moragent_router_expert_count(roles_router, &count));
    CHECK(count == 3);
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_create_trajectory(roles_router, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_phase_save(roles_router, saved));
    EXPECT(MORAGENT_OK, moragent_router_roles_save(roles_router, saved));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_router_roles_save(roles_router, NULL));
    EXPECT(MORAGENT_OK, moragent_router_roles_load(engine, saved, &loaded));
    EXPECT(MORAGENT_ERROR_IO, moragent_router_roles_load(engine, missing, &bad));
    EXPECT(MORAGENT_ERROR_MALFORMED_FILE, moragent_router_roles_load(llama_engine, saved, &bad));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_roles_load(NULL, saved, &bad));
    EXPECT(MORAGENT_OK, moragent_router_create_roles(llama_engine, &mor, 3, &llama_roles));
    EXPECT(MORAGENT_ERROR_INVALID_ARGUMENT, moragent_policy_create(engine, NULL, llama_roles, NULL, &none));
    moragent_router_free(llama_roles);

    /* The prompt ends with a hand-over marker: every generated token is the executor's. */
    const char *marker_template = "Task: {goal}\n{observation}";
    policy = make_policy(engine, NULL, roles_router, marker_template);
    moragent_policy *from_file = make_policy(engine, experts, loaded, marker_template);
    EXPECT(MORAGENT_OK, moragent_policy_step(policy, 0, "Thought: call it. Next Role: Executor", "g", &a));
    EXPECT(MORAGENT_OK, moragent_policy_step(from_file, 0, "Thought: call it. Next Role: Executor", "g", &b));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(a, &ids, &n_ids));
    EXPECT(MORAGENT_OK, moragent_step_result_ids(b, &ids_b, &n_ids_b));
    CHECK(n_ids == n_ids_b && memcmp(ids, ids_b, n_ids * sizeof *ids) == 0);
    EXPECT(MORAGENT_OK, moragent_step_result_roles(a, &roles, &n_roles));
    CHECK(n_roles == n_ids && n_roles == 8);
    int all_executor = 1;
    for (size_t i = 0; i < n_roles; i++) all_executor &= roles[i] == MORAGENT_ROLE_EXECUTOR;
    CHECK(all_executor);
    EXPECT(MORAGENT_OK, moragent_step_result_expert(a, &expert));
    CHECK(expert == MORAGENT_ROLE_EXECUTOR);
    EXPECT(MORAGENT_OK, moragent_step_result_probabilities(a, &probabilities, &n_probabilities));
    CHECK(n_probabilities == 3 && probabilities[1] == 1.0f);
    EXPECT(MORAGENT_OK, moragent_step_result_token_experts(a, &chosen, &tokens, &per_token));
    CHECK(chosen != NULL && tokens == 0 && per_token == 0);
    moragent_step_result_free(a);
    moragent_step_result_free(b);
    /* Without a marker the reasoner writes. */
    EXPECT(MORAGENT_OK, moragent_policy_step(policy, 1, "Thought: look around.", "g", &a));
    EXPECT(MORAGENT_OK, moragent_step_result_roles(a, &roles, &n_roles));
    int all_reasoner = n_roles == 8;
    for (size_t i = 0; i < n_roles; i++) all_reasoner &= roles[i] == MORAGENT_ROLE_REASONER;
    CHECK(all_reasoner);
    moragent_step_result_free(a);
    EXPECT(MORAGENT_OK, moragent_policy_end_episode(policy, 1, 0.0, 0));

    moragent_policy_free(from_file);
    moragent_policy_free(policy);
    EXPECT(MORAGENT_OK, moragent_router_free(loaded));
    EXPECT(MORAGENT_OK, moragent_router_free(roles_router));
    EXPECT(MORAGENT_OK, moragent_router_free(token));
    EXPECT(MORAGENT_ERROR_INVALID_HANDLE, moragent_router_free(token));
    moragent_experts_free(experts);
    moragent_experts_free(empty);
    moragent_experts_free(llama_experts);
    moragent_engine_free(engine);
    moragent_engine_free(llama_engine);
    free(qwen2); free(llama); free(adapter0); free(adapter1); free(adapter2); free(saved); free(missing);
    printf("token_roles: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
