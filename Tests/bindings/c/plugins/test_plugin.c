/*
 * Router plugins for the binding tests, one source built into several shared objects by
 * Tests/bindings/c/run.sh (and by the Python and Lua tests), each variant chosen by a macro:
 *
 *   (none)          kind "test_probe": decides by its config's "mode" and counts what the
 *                   library calls, for the tests to read through the exported test_probe_*
 *                   functions
 *   WRONG_VERSION   a kind that declares plugin API version 999
 *   NO_ENTRY        no moragent_plugin_register at all
 *   FAILING_ENTRY   registers kind "failing_entry", then returns 7
 *   DUPLICATE       registers kind "dup" twice
 *   NULL_DECIDE     a kind without its required decide function
 *   BAD_NAME        a kind named "has space"
 *   NO_KINDS        returns 0 without registering anything
 */
#include "moragent.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef NO_ENTRY

typedef enum { MODE_OK, MODE_FAIL, MODE_NAN, MODE_NEGATIVE, MODE_MIXTURE } probe_mode;

typedef struct {
    probe_mode mode;
} probe;

static int live_states, created_states, ended_episodes, decisions;
static long long last_ended = -1;
static size_t last_expert_count;
static moragent_plugin_registrar *saved_registrar;

/* Modes by name; "refuse" and "long_error" make create fail. */
static void *create(const char *config_json, size_t expert_count, char *error, size_t error_capacity) {
    last_expert_count = expert_count;
    if (strstr(config_json, "\"refuse\"")) {
        snprintf(error, error_capacity, "refused as asked");
        return NULL;
    }
    if (strstr(config_json, "\"long_error\"")) {
        memset(error, 'x', error_capacity); /* no NUL anywhere: the library must stop at the capacity */
        return NULL;
    }
    probe *p = (probe *)malloc(sizeof *p);
    p->mode = strstr(config_json, "\"fail\"")       ? MODE_FAIL
              : strstr(config_json, "\"nan\"")      ? MODE_NAN
              : strstr(config_json, "\"negative\"") ? MODE_NEGATIVE
              : strstr(config_json, "\"mixture\"")  ? MODE_MIXTURE
                                                    : MODE_OK;
    live_states++;
    created_states++;
    return p;
}

/* MODE_OK routes step t to expert t mod K; MODE_MIXTURE weighs all experts 1, 2, 3, ... */
static int decide(void *state, const moragent_step_features *features, float *weights, size_t expert_count) {
    const probe *p = (const probe *)state;
    decisions++;
    if (p->mode == MODE_FAIL) return 3;
    if (expert_count == 0) return 0;
    if (p->mode == MODE_NAN) weights[0] = nanf("");
    else if (p->mode == MODE_NEGATIVE) weights[expert_count - 1] = -1.0f;
    else if (p->mode == MODE_MIXTURE) for (size_t k = 0; k < expert_count; k++) weights[k] = (float)(k + 1);
    else weights[features->step % expert_count] = 1.0f;
    return 0;
}

static void end_episode(void *state, int64_t episode) {
    (void)state;
    ended_episodes++;
    last_ended = (long long)episode;
}

static void destroy(void *state) {
    live_states--;
    free(state);
}

/* Counters for the tests (looked up with dlsym or ctypes). */
MORAGENT_API int test_probe_live_states(void) { return live_states; }
MORAGENT_API int test_probe_created_states(void) { return created_states; }
MORAGENT_API int test_probe_ended_episodes(void) { return ended_episodes; }
MORAGENT_API long long test_probe_last_ended(void) { return last_ended; }
MORAGENT_API int test_probe_decisions(void) { return decisions; }
MORAGENT_API size_t test_probe_last_expert_count(void) { return last_expert_count; }

static moragent_router_kind make_kind(const char *name) {
    moragent_router_kind kind;
    memset(&kind, 0, sizeof kind);
    kind.struct_size = sizeof kind;
    kind.api_version = MORAGENT_PLUGIN_API_VERSION;
    kind.name = name;
    kind.create = create;
    kind.decide = decide;
    kind.end_episode = end_episode;
    kind.destroy = destroy;
    return kind;
}

/* Calls the registrar kept from the load after the load has returned: must be refused. */
MORAGENT_API int test_probe_register_late(void) {
    moragent_router_kind kind = make_kind("late");
    return saved_registrar ? saved_registrar->register_router(saved_registrar, &kind) : -100;
}

/* The entry point (of type moragent_plugin_register_fn), declared before its definition. */
MORAGENT_PLUGIN_EXPORT int moragent_plugin_register(moragent_plugin_registrar *registrar);

MORAGENT_PLUGIN_EXPORT int moragent_plugin_register(moragent_plugin_registrar *registrar) {
    saved_registrar = registrar;
    if (registrar->api_version != MORAGENT_PLUGIN_API_VERSION) return 1;
#if defined(WRONG_VERSION)
    moragent_router_kind kind = make_kind("wrong_version");
    kind.api_version = 999;
    return registrar->register_router(registrar, &kind);
#elif defined(FAILING_ENTRY)
    moragent_router_kind kind = make_kind("failing_entry");
    registrar->register_router(registrar, &kind);
    return 7;
#elif defined(DUPLICATE)
    moragent_router_kind kind = make_kind("dup");
    registrar->register_router(registrar, &kind);
    return registrar->register_router(registrar, &kind);
#elif defined(NULL_DECIDE)
    moragent_router_kind kind = make_kind("null_decide");
    kind.decide = NULL;
    return registrar->register_router(registrar, &kind);
#elif defined(BAD_NAME)
    moragent_router_kind kind = make_kind("has space");
    return registrar->register_router(registrar, &kind);
#elif defined(NO_KINDS)
    return 0;
#else
    moragent_router_kind kind = make_kind("test_probe");
    return registrar->register_router(registrar, &kind);
#endif
}

#else

MORAGENT_API int not_a_plugin(void) { return 0; }

#endif
