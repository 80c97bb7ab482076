/*
 * An example router plugin. Its kind "round_robin" sends step t of every episode to expert
 * (t / period) mod K, so each expert serves `period` consecutive steps in turn; with K = 0 every
 * step goes to the base model. Configuration JSON: {"period": N} with N from 1 to 1000000
 * (default 1).
 *
 * A plugin includes moragent.h but does not link libmoragent: the library hands it a registrar
 * and calls it only through the functions it registers.
 *
 * Build, from the repository root:
 *   cc -std=c99 -Wall -Wextra -shared -fPIC -I include examples/c/plugins/round_robin.c -o round_robin.so
 * (or `make -C examples/c`, which builds examples/c/build/round_robin.so). Then, from a host:
 *   moragent_plugin_load("./round_robin.so");
 *   moragent_router_create_kind("round_robin", "{\"period\": 2}", expert_count, &router);
 */
#include "moragent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t period;
} round_robin;

/* Reads the optional "period" member of a flat JSON object. The library passes only
 * well-formed JSON, so a key search and a number parse suffice for this one-field config. */
static int parse_period(const char *json, size_t *period, char *error, size_t capacity) {
    *period = 1;
    const char *key = strstr(json, "\"period\"");
    if (!key) return 0;
    const char *colon = strchr(key + 8, ':');
    char *end = NULL;
    double value = colon ? strtod(colon + 1, &end) : 0.0;
    if (!colon || end == colon + 1 || value < 1 || value > 1000000 || value != (double)(size_t)value) {
        snprintf(error, capacity, "\"period\" must be an integer from 1 to 1000000");
        return -1;
    }
    *period = (size_t)value;
    return 0;
}

static void *create(const char *config_json, size_t expert_count, char *error, size_t error_capacity) {
    (void)expert_count;
    round_robin *state = (round_robin *)malloc(sizeof *state);
    if (!state) {
        snprintf(error, error_capacity, "out of memory");
        return NULL;
    }
    if (parse_period(config_json, &state->period, error, error_capacity) != 0) {
        free(state);
        return NULL;
    }
    return state;
}

static int decide(void *state, const moragent_step_features *features, float *weights, size_t expert_count) {
    const round_robin *r = (const round_robin *)state;
    if (expert_count > 0) weights[(features->step / r->period) % expert_count] = 1.0f;
    return 0;
}

static void destroy(void *state) { free(state); }

/* The entry point (of type moragent_plugin_register_fn), declared before its definition. */
MORAGENT_PLUGIN_EXPORT int moragent_plugin_register(moragent_plugin_registrar *registrar);

MORAGENT_PLUGIN_EXPORT int moragent_plugin_register(moragent_plugin_registrar *registrar) {
    moragent_router_kind kind;
    memset(&kind, 0, sizeof kind);
    kind.struct_size = sizeof kind;
    kind.api_version = MORAGENT_PLUGIN_API_VERSION;
    kind.name = "round_robin";
    kind.create = create;
    kind.decide = decide;
    kind.end_episode = NULL; /* it keeps nothing per episode */
    kind.destroy = destroy;
    return registrar->register_router(registrar, &kind);
}
