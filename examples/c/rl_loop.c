/*
 * An RL loop: a PA-MoE policy (3 LoRA experts chosen per step by a small phase router) plays a
 * mini household world and learns from it with GiGPO. Each update plays one task instance 4
 * times (a group: GiGPO compares the rollouts of one instance, step by step where they meet the
 * same observation), episodes of at most 6 steps, then makes one update from them; 3 updates,
 * one line of statistics each. At the end it saves the trainer as a policy bundle and reloads
 * it into a fresh trainer.
 *
 * The loop, per episode:  moragent_policy_begin_episode -> (moragent_policy_step -> world) * ->
 * moragent_policy_end_episode; per update: moragent_trainer_update -> moragent_trainer_last_stats.
 *
 * The world is the "pick" task of examples/household in its mini size (one kitchen, 3 or 4
 * receptacles, the same sentences and commands), without the appliances pick never needs, and
 * drawn from a Park-Miller generator so that examples/lua/rl_loop.lua plays the same worlds.
 * With the random-weight test model success stays near zero: this shows the wiring.
 *
 * Build and run from the repository root, after `swift build`:
 *   make -C examples/c LIB_DIR=$PWD/.build/debug
 *   examples/c/build/rl_loop Tests/MoRAgentTests/Fixtures/models/qwen2-tiny
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include "moragent.h"

#include <ctype.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXPERTS = 3, UPDATES = 3, TASKS_PER_UPDATE = 1, GROUP_SIZE = 4, MAX_STEPS = 6 };

/* Prints the failed call's status and message, and exits. */
static void check(moragent_status status, const char *what) {
    if (status != MORAGENT_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, moragent_status_string(status), moragent_last_error());
        exit(1);
    }
}

/* ---- the world ------------------------------------------------------------------------------ */

/* Park-Miller "minimal standard" generator: products stay below 2^53, so Lua's doubles agree. */
static unsigned long long lcg_state;
static int draw(int n) {
    lcg_state = lcg_state * 48271 % 2147483647;
    return (int)(lcg_state % (unsigned long long)n);
}

/* The mini world's receptacle kinds in listing order, one of each ("cabinet 1"); cabinet and
 * drawer are containers (they start closed), countertop and sinkbasin are always present. */
static const char *const receptacles[] = {"cabinet", "countertop", "drawer", "shelf", "sinkbasin"};
static const char *const prepositions[] = {"in", "on", "in", "on", "in"};
static const int containers[] = {1, 0, 1, 0, 0};
static const char *const object_kinds[] = {"apple", "egg", "knife", "mug", "plate", "potato", "tomato"};
enum { KINDS = 5, OBJECT_KINDS = 7, MAX_OBJECTS = 3, SINKBASIN = 4 };

typedef struct {
    int present[KINDS];                               /* which receptacles the kitchen has */
    int objects, kind[MAX_OBJECTS], start[MAX_OBJECTS]; /* ascending kinds; object 0.. "kind 1" */
    int target, destination;                          /* an object index, a receptacle */
    char goal[64];
} task;

/* A task laid out as examples/household's make_task(size="mini", task_type="pick") lays it out:
 * 1 or 2 optional receptacles, a destination other than the sinkbasin, the target elsewhere, 1 or
 * 2 distractors of other kinds anywhere. Draws are retried until they fit, the same in Lua. */
static task make_task(void) {
    static const int optional[] = {0, 2, 3};
    task t = {{0, 1, 0, 0, 1}, 0, {0}, {0}, 0, 0, ""};
    for (int extra = 1 + draw(2); extra > 0;) {
        int r = optional[draw(3)];
        if (!t.present[r]) t.present[r] = 1, extra--;
    }
    do t.destination = draw(SINKBASIN); while (!t.present[t.destination]);
    int chosen[OBJECT_KINDS] = {0}, target = draw(OBJECT_KINDS); /* 1: the target, 2: a distractor */
    chosen[target] = 1;
    for (int extra = 1 + draw(2); extra > 0;) {
        int k = draw(OBJECT_KINDS);
        if (!chosen[k]) chosen[k] = 2, extra--;
    }
    for (int k = 0; k < OBJECT_KINDS; k++) {
        if (!chosen[k]) continue;
        int where;
        do where = draw(KINDS); while (!t.present[where] || (chosen[k] == 1 && where == t.destination));
        if (chosen[k] == 1) t.target = t.objects;
        t.kind[t.objects] = k, t.start[t.objects++] = where;
    }
    snprintf(t.goal, sizeof t.goal, "put some %s %s %s", object_kinds[target], prepositions[t.destination],
             receptacles[t.destination]); /* goals name kinds: any receptacle of the kind will do */
    return t;
}

typedef struct {
    const task *t;
    int location, held;     /* a receptacle, an object; -1 for none */
    int at[MAX_OBJECTS];    /* each object's receptacle, -1 while held */
    int open[KINDS];        /* a container's inside is reachable once opened */
    int steps, won;
} world;

/* Appends printf-style text to a buffer of `size` bytes. */
static void say(char *out, size_t size, const char *format, ...) {
    size_t used = strlen(out);
    va_list args;
    va_start(args, format);
    vsnprintf(out + used, size - used, format, args);
    va_end(args);
}

/* "a apple 1 , a egg 1" or "nothing" (ALFWorld writes "a" before every name). */
static void list_objects(const world *w, int r, char *out, size_t size) {
    int any = 0;
    for (int i = 0; i < w->t->objects; i++) {
        if (w->at[i] != r) continue;
        say(out, size, "%sa %s 1", any++ ? " , " : "", object_kinds[w->t->kind[i]]);
    }
    if (!any) say(out, size, "nothing");
}

/* What a receptacle shows: a closed container hides its contents. */
static void status(const world *w, int r, char *out, size_t size) {
    if (containers[r] && !w->open[r]) {
        say(out, size, "the %s 1 is closed .", receptacles[r]);
        return;
    }
    if (containers[r]) say(out, size, "the %s 1 is open . ", receptacles[r]);
    if (strcmp(prepositions[r], "in") == 0) say(out, size, "in it , you see ");
    else say(out, size, "on the %s 1 , you see ", receptacles[r]);
    list_objects(w, r, out, size);
    say(out, size, " .");
}

static void room(const world *w, char *out, size_t size) {
    say(out, size, "you are in the kitchen . you see ");
    int any = 0;
    for (int r = 0; r < KINDS; r++) if (w->t->present[r]) say(out, size, "%sa %s 1", any++ ? " , " : "", receptacles[r]);
    say(out, size, " .");
}

/* Every observation ends with what the player holds. */
static void hold(const world *w, char *out, size_t size) {
    if (w->held < 0) say(out, size, " you hold nothing .");
    else say(out, size, " you hold %s 1 .", object_kinds[w->t->kind[w->held]]);
}

static void reset(world *w, const task *t, char *observation, size_t size) {
    memset(w, 0, sizeof *w);
    w->t = t, w->location = w->held = -1;
    for (int i = 0; i < t->objects; i++) w->at[i] = t->start[i];
    observation[0] = '\0';
    room(w, observation, size);
    hold(w, observation, size);
}

/* Plays one command (any text; matched after collapsing spaces and lowercasing, as
 * HouseholdEnv.step does) and writes the observation; returns the reward, 1 on the winning step. */
static double step(world *w, const char *action, char *observation, size_t size) {
    char c[128] = "", line[160];
    for (const char *p = action; *p && strlen(c) < sizeof c - 2; p++) { /* normalise */
        if (!isspace((unsigned char)*p)) say(c, sizeof c, "%c", tolower((unsigned char)*p));
        else if (c[0] && c[strlen(c) - 1] != ' ') strcat(c, " ");
    }
    if (c[0] && c[strlen(c) - 1] == ' ') c[strlen(c) - 1] = '\0';
    w->steps++;
    observation[0] = '\0';
    int here = w->location, reachable = here >= 0 && (!containers[here] || w->open[here]);
    /* The admissible commands of this state (as HouseholdEnv lists them), each tried in turn. */
    if (strcmp(c, "look") == 0) {
        room(w, observation, size);
        if (here >= 0) {
            say(observation, size, " you are at %s 1 . ", receptacles[here]);
            status(w, here, observation, size);
        }
    } else if (strcmp(c, "inventory") == 0) {
        /* the suffix only */
    } else {
        for (int r = 0; r < KINDS && !observation[0]; r++) {
            if (!w->t->present[r]) continue;
            snprintf(line, sizeof line, "go to %s 1", receptacles[r]);
            if (r != here && strcmp(c, line) == 0) {
                w->location = r;
                say(observation, size, "you arrive at %s 1 . ", receptacles[r]);
                status(w, r, observation, size);
            }
        }
        if (here >= 0 && containers[here]) {
            snprintf(line, sizeof line, "%s %s 1", w->open[here] ? "close" : "open", receptacles[here]);
            if (strcmp(c, line) == 0) {
                w->open[here] = !w->open[here];
                if (w->open[here]) {
                    say(observation, size, "you open the %s 1 . ", receptacles[here]);
                    status(w, here, observation, size);
                } else {
                    say(observation, size, "you close the %s 1 .", receptacles[here]);
                }
            }
        }
        for (int i = 0; reachable && i < w->t->objects && !observation[0]; i++) {
            const char *name = object_kinds[w->t->kind[i]];
            if (w->held < 0 && w->at[i] == here) {
                snprintf(line, sizeof line, "take %s 1 from %s 1", name, receptacles[here]);
                if (strcmp(c, line) == 0) {
                    w->at[i] = -1, w->held = i;
                    say(observation, size, "you pick up the %s 1 from the %s 1 .", name, receptacles[here]);
                }
            } else if (w->held == i) {
                snprintf(line, sizeof line, "put %s 1 %s %s 1", name, prepositions[here], receptacles[here]);
                if (strcmp(c, line) == 0) {
                    w->at[i] = here, w->held = -1;
                    say(observation, size, "you put the %s 1 %s the %s 1 .", name, prepositions[here], receptacles[here]);
                }
            }
        }
        if (!observation[0]) say(observation, size, "nothing happens .");
    }
    hold(w, observation, size);
    if (observation[0] == ' ') memmove(observation, observation + 1, strlen(observation));
    w->won = w->at[w->t->target] == w->t->destination;
    return w->won ? 1.0 : 0.0;
}

/* ---- the policy and its trainer ------------------------------------------------------------- */

/* A policy of fresh experts and a small phase router, and a GiGPO trainer bound to it. Called
 * twice with the same seeds: trainers of equal shapes and settings can load each other's bundles. */
static moragent_trainer *make_trainer(moragent_engine *engine, moragent_policy **out_policy) {
    moragent_engine_info info;
    info.struct_size = sizeof info;
    check(moragent_engine_get_info(engine, &info), "moragent_engine_get_info");
    moragent_lora_params lora;
    lora.struct_size = sizeof lora;
    check(moragent_lora_params_default(&lora), "moragent_lora_params_default");
    lora.rank = 4;
    lora.alpha = 8.0f;
    moragent_experts *experts = NULL;
    check(moragent_experts_create(engine, EXPERTS, &lora, 1, &experts), "moragent_experts_create");
    /* PA-MoE's router, shrunk: its temperature anneals from 2 to 0.5 over the 3 updates. */
    moragent_phase_router_params phase;
    phase.struct_size = sizeof phase;
    check(moragent_phase_router_params_default(&phase), "moragent_phase_router_params_default");
    phase.expert_count = EXPERTS;
    phase.attention_dim = 16;
    phase.attention_heads = 2;
    phase.lstm_hidden = 16;
    phase.lstm_layers = 2;
    phase.history_length = 3;
    phase.mlp_hidden = 16;
    phase.anneal_updates = UPDATES;
    moragent_router *router = NULL;
    check(moragent_router_create_phase(info.hidden_size, &phase, 7, &router), "moragent_router_create_phase");
    /* RL samples (temperature 1); each step's seed derives from (seed, episode, step). */
    moragent_generation_params sampling;
    sampling.struct_size = sizeof sampling;
    check(moragent_generation_params_default(&sampling), "moragent_generation_params_default");
    const char *stop[] = {"</action>"};
    sampling.temperature = 1.0f;
    sampling.seed = 1;
    sampling.max_new_tokens = 12;
    sampling.stop_strings = stop;
    sampling.stop_string_count = 1;
    moragent_policy_params params;
    params.struct_size = sizeof params;
    check(moragent_policy_params_default(&params), "moragent_policy_params_default");
    params.sampling = &sampling;
    /* A compact prompt with the last step as history: short prompts keep the example quick. */
    params.first_step_template = "Task: {goal}\nObservation: {observation}\nAction inside <action> </action>:";
    params.later_step_template =
        "Task: {goal}\nLast: {history}\nObservation: {observation}\nAction inside <action> </action>:";
    params.history_entry_template = "{observation} > {action}";
    params.history_length = 1;
    check(moragent_policy_create(engine, experts, router, &params, out_policy), "moragent_policy_create");
    moragent_router_free(router); /* the policy keeps what it needs */
    moragent_experts_free(experts);

    moragent_trainer_params settings;
    settings.struct_size = sizeof settings;
    check(moragent_trainer_params_default(&settings), "moragent_trainer_params_default");
    settings.advantage = MORAGENT_ADVANTAGE_GIGPO;
    settings.learning_rate = 1e-3f;
    moragent_trainer *trainer = NULL;
    check(moragent_trainer_create(*out_policy, &settings, &trainer), "moragent_trainer_create");
    return trainer;
}

/* The number after "key": in the flat statistics object; NaN for null. */
static double statistic(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr(json, pattern);
    char *end = NULL;
    double value = at ? strtod(at + strlen(pattern), &end) : NAN;
    return at && end != at + strlen(pattern) ? value : NAN;
}

/* The last update's statistics (malloc'ed), by the library's buffer convention: ask the size
 * with an empty buffer, then fetch. */
static char *last_stats(const moragent_trainer *trainer) {
    size_t length = 0;
    moragent_status status = moragent_trainer_last_stats(trainer, NULL, 0, &length);
    if (status != MORAGENT_ERROR_BUFFER_TOO_SMALL) check(status, "moragent_trainer_last_stats");
    char *json = (char *)malloc(length + 1);
    check(moragent_trainer_last_stats(trainer, json, length + 1, &length), "moragent_trainer_last_stats");
    return json;
}

static int same_file(const char *a, const char *b) {
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    for (int same = x && y; ; ) {
        int cx = same ? fgetc(x) : EOF, cy = same ? fgetc(y) : EOF;
        same = same && cx == cy;
        if (cx == EOF || !same) {
            if (x) fclose(x);
            if (y) fclose(y);
            return same;
        }
    }
}

static int remove_entry(const char *path, const struct stat *s, int flag, struct FTW *f) {
    (void)s, (void)flag, (void)f;
    return remove(path);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    printf("libmoragent %s\n", moragent_version());
    moragent_engine *engine = NULL;
    check(moragent_engine_load(argv[1], &engine), "moragent_engine_load");
    moragent_policy *policy = NULL;
    moragent_trainer *trainer = make_trainer(engine, &policy);
    lcg_state = 2024;

    for (int update = 0; update < UPDATES; update++) {
        for (int i = 0; i < TASKS_PER_UPDATE; i++) {
            int64_t group = update * TASKS_PER_UPDATE + i;
            task t = make_task();
            for (int j = 0; j < GROUP_SIZE; j++) {
                int64_t episode = group * GROUP_SIZE + j;
                char observation[512];
                world w;
                reset(&w, &t, observation, sizeof observation);
                check(moragent_policy_begin_episode(policy, episode, group), "moragent_policy_begin_episode");
                double reward = 0;
                while (!w.won && w.steps < MAX_STEPS) {
                    moragent_step_result *result = NULL;
                    check(moragent_policy_step(policy, episode, observation, t.goal, &result), "moragent_policy_step");
                    /* The text between <action> and </action>; a response without them gives its tail,
                     * which the world answers with "nothing happens ." (and GiGPO penalises). */
                    const char *action = NULL;
                    check(moragent_step_result_action(result, &action, NULL), "moragent_step_result_action");
                    reward += step(&w, action, observation, sizeof observation);
                    moragent_step_result_free(result);
                }
                check(moragent_policy_end_episode(policy, episode, reward, w.won), "moragent_policy_end_episode");
            }
        }
        /* One update from the episodes ended since the last, which the policy then releases. */
        check(moragent_trainer_update(trainer, NULL, NULL), "moragent_trainer_update");
        char *json = last_stats(trainer);
        printf("update %.0f: success %.3f, mean return %.3f, switches/episode %.2f, episodes %.0f\n",
               statistic(json, "update"), statistic(json, "success_rate"), statistic(json, "mean_return"),
               statistic(json, "switches_per_episode"), statistic(json, "episodes"));
        free(json);
    }

    /* Save everything (experts, router, optimiser moments, counters), reload it into a fresh
     * trainer of the same shapes, and check the two hold the same experts. */
    char folder[] = "/tmp/rl_loop.XXXXXX", path[3][64];
    if (!mkdtemp(folder)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path[0], sizeof path[0], "%s/bundle", folder);
    snprintf(path[1], sizeof path[1], "%s/trained", folder);
    snprintf(path[2], sizeof path[2], "%s/reloaded", folder);
    check(moragent_trainer_save(trainer, path[0]), "moragent_trainer_save");
    moragent_policy *fresh_policy = NULL;
    moragent_trainer *fresh = make_trainer(engine, &fresh_policy);
    check(moragent_trainer_load(fresh, path[0]), "moragent_trainer_load");
    check(moragent_trainer_export_expert(trainer, 0, path[1]), "moragent_trainer_export_expert");
    check(moragent_trainer_export_expert(fresh, 0, path[2]), "moragent_trainer_export_expert");
    char a[96], b[96];
    snprintf(a, sizeof a, "%s/adapter_model.safetensors", path[1]);
    snprintf(b, sizeof b, "%s/adapter_model.safetensors", path[2]);
    printf("bundle reloaded into a fresh trainer: expert 0 %s\n", same_file(a, b) ? "identical" : "DIFFERS");
    nftw(folder, remove_entry, 8, FTW_DEPTH | FTW_PHYS);

    moragent_trainer_free(fresh);
    moragent_policy_free(fresh_policy);
    moragent_trainer_free(trainer);
    moragent_policy_free(policy);
    moragent_engine_free(engine);
    return 0;
}
