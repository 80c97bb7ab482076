/*
 * An agent loop: a policy of 3 LoRA experts routed by a PA-MoE phase router acts in a toy text
 * world, "find the key": three rooms (hall, kitchen, study), a brass key in the study, a locked
 * front door in the hall. Each step the policy reads the observation and writes an action; an
 * action the world does not admit (with the random-weight test model, nearly all of them) is
 * taken as "look" and counted. Two episodes of at most 6 steps, then the routing trace.
 *
 * examples/python/agent_loop.py and examples/lua/agent_loop.lua run the same world with the
 * same seeds and print the same lines (scripts/test-bindings.sh compares them).
 *
 * Build and run from the repository root, after `swift build`:
 *   make -C examples/c LIB_DIR=$PWD/.build/debug
 *   examples/c/build/agent_loop Tests/MoRAgentTests/Fixtures/models/qwen2-tiny
 */
#include "moragent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the failed call's status and message, and exits. */
static void check(moragent_status status, const char *what) {
    if (status != MORAGENT_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, moragent_status_string(status), moragent_last_error());
        exit(1);
    }
}

/* ---- the world ------------------------------------------------------------------------------ */

enum { HALL, KITCHEN, STUDY, ROOMS };
static const char *const room_names[ROOMS] = {"hall", "kitchen", "study"};
static const char goal[] = "find the brass key and open the front door";
enum { MAX_STEPS = 6, MAX_ACTIONS = 4 };

typedef struct {
    int room, key_in_study, carrying_key, door_open;
} world;

/* The actions the world admits in its current state. */
static int admissible(const world *w, char actions[MAX_ACTIONS][32]) {
    int n = 0;
    snprintf(actions[n++], 32, "look");
    if (w->room == HALL) {
        snprintf(actions[n++], 32, "go to kitchen");
        snprintf(actions[n++], 32, "go to study");
        if (w->carrying_key) snprintf(actions[n++], 32, "open door");
    } else {
        snprintf(actions[n++], 32, "go to hall");
        if (w->room == STUDY && w->key_in_study) snprintf(actions[n++], 32, "take key");
    }
    return n;
}

static void observe(const world *w, char *out, size_t capacity) {
    static const char *const sights[ROOMS] = {"a locked front door", "a table and a drawer", "a desk"};
    snprintf(out, capacity, "You are in the %s. You see %s%s. You can go to: %s.%s", room_names[w->room],
             sights[w->room], w->room == STUDY && w->key_in_study ? " with a brass key on it" : "",
             w->room == HALL ? "kitchen, study" : "hall", w->carrying_key ? " You carry a brass key." : "");
}

static void apply(world *w, const char *action) {
    if (strncmp(action, "go to ", 6) == 0) {
        for (int r = 0; r < ROOMS; r++) if (strcmp(action + 6, room_names[r]) == 0) w->room = r;
    } else if (strcmp(action, "take key") == 0) {
        w->key_in_study = 0;
        w->carrying_key = 1;
    } else if (strcmp(action, "open door") == 0) {
        w->door_open = 1;
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

static void print_trace(const moragent_policy *policy, const char *prefix) {
    size_t length = 0;
    moragent_status status = moragent_policy_trace_jsonl(policy, NULL, 0, &length);
    if (status != MORAGENT_ERROR_BUFFER_TOO_SMALL) check(status, "moragent_policy_trace_jsonl");
    char *text = (char *)malloc(length + 1);
    check(moragent_policy_trace_jsonl(policy, text, length + 1, &length), "moragent_policy_trace_jsonl");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) printf("%strace: %s\n", prefix, line);
    free(text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    printf("libmoragent %s\n", moragent_version());
    moragent_engine *engine = NULL;
    check(moragent_engine_load(argv[1], &engine), "moragent_engine_load");
    moragent_engine_info info;
    info.struct_size = sizeof info;
    check(moragent_engine_get_info(engine, &info), "moragent_engine_get_info");

    /* Three fresh experts (B = 0: they start as the base model; training makes them differ). */
    moragent_lora_params lora;
    lora.struct_size = sizeof lora;
    check(moragent_lora_params_default(&lora), "moragent_lora_params_default");
    lora.rank = 8;
    lora.alpha = 16.0f;
    moragent_experts *experts = NULL;
    check(moragent_experts_create(engine, 3, &lora, 1, &experts), "moragent_experts_create");

    /* A small phase router for this model's width. Untrained, its random weights favour one
     * expert throughout; training (not in the C API yet) makes its choice follow the phases. */
    moragent_phase_router_params phase;
    phase.struct_size = sizeof phase;
    check(moragent_phase_router_params_default(&phase), "moragent_phase_router_params_default");
    phase.expert_count = 3;
    phase.attention_dim = 64;
    phase.lstm_hidden = 64;
    phase.lstm_layers = 2;
    phase.mlp_hidden = 64;
    moragent_router *router = NULL;
    check(moragent_router_create_phase(info.hidden_size, &phase, 7, &router), "moragent_router_create_phase");

    moragent_generation_params sampling;
    sampling.struct_size = sizeof sampling;
    check(moragent_generation_params_default(&sampling), "moragent_generation_params_default");
    const char *stop[] = {"</action>"};
    sampling.temperature = 0.7f;
    sampling.seed = 1;
    sampling.max_new_tokens = 24;
    sampling.stop_strings = stop;
    sampling.stop_string_count = 1;
    moragent_policy_params params;
    params.struct_size = sizeof params;
    check(moragent_policy_params_default(&params), "moragent_policy_params_default");
    params.sampling = &sampling;
    moragent_policy *policy = NULL;
    check(moragent_policy_create(engine, experts, router, &params, &policy), "moragent_policy_create");
    /* The policy holds what it needs. */
    moragent_router_free(router);
    moragent_experts_free(experts);
    printf("experts: 3, router: phase (hidden %zu)\n", info.hidden_size);

    for (int episode = 0; episode < 2; episode++) {
        world w = {episode == 0 ? HALL : KITCHEN, 1, 0, 0};
        int steps = 0, invalid = 0;
        while (steps < MAX_STEPS && !w.door_open) {
            char observation[256], actions[MAX_ACTIONS][32];
            observe(&w, observation, sizeof observation);
            moragent_step_result *result = NULL;
            check(moragent_policy_step(policy, episode, observation, goal, &result), "moragent_policy_step");
            const char *proposed = NULL;
            int32_t expert = -1, valid = 0;
            check(moragent_step_result_action(result, &proposed, NULL), "moragent_step_result_action");
            check(moragent_step_result_action_valid(result, &valid), "moragent_step_result_action_valid");
            check(moragent_step_result_expert(result, &expert), "moragent_step_result_expert");
            const float *probabilities = NULL;
            size_t k = 0;
            check(moragent_step_result_probabilities(result, &probabilities, &k), "moragent_step_result_probabilities");
            /* A malformed response, or an action this state does not admit, is taken as "look". */
            int n = admissible(&w, actions), chosen = -1;
            for (int i = 0; valid && i < n; i++) if (strcmp(proposed, actions[i]) == 0) chosen = i;
            const char *taken = chosen >= 0 ? actions[chosen] : "look";
            invalid += chosen < 0;
            steps++;
            char expert_name[16];
            snprintf(expert_name, sizeof expert_name, expert < 0 ? "base" : "%d", (int)expert);
            printf("episode %d step %d: expert %s (p = %.3f %.3f %.3f), action \"%s\"%s\n", episode, steps, expert_name,
                   probabilities[0], probabilities[1], probabilities[2], taken,
                   chosen >= 0 ? "" : " (the model's was not admissible)");
            apply(&w, taken);
            moragent_step_result_free(result);
        }
        check(moragent_policy_end_episode(policy, episode, w.door_open ? 1.0 : 0.0, w.door_open),
              "moragent_policy_end_episode");
        printf("episode %d: reward %d, %d of %d actions not admissible\n", episode, w.door_open, invalid, steps);
    }
    print_trace(policy, "");

    moragent_policy_free(policy);
    moragent_engine_free(engine);
    return 0;
}
