/*
 * Loads a model folder, tokenizes a prompt, and prints a greedy and a sampled continuation.
 *
 * Build and run from the repository root, after `swift build`:
 *   make -C examples/c LIB_DIR=$PWD/.build/debug
 *   examples/c/build/generate Tests/MoRAgentTests/Fixtures/models/qwen2-tiny "You are in the kitchen. > go to"
 * or in one line:
 *   cc -std=c99 -I include examples/c/generate.c -L .build/debug -lmoragent -Wl,-rpath,$PWD/.build/debug -o generate
 * With libmoragent installed and moragent.pc on PKG_CONFIG_PATH: cc generate.c $(pkg-config --cflags --libs moragent)
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

static void log_line(moragent_log_level level, const char *message, void *user) {
    (void)user;
    fprintf(stderr, "[moragent %d] %s\n", (int)level, message);
}

static const char *stop_reason_name(moragent_stop_reason reason) {
    switch (reason) {
    case MORAGENT_STOP_REASON_MAX_NEW_TOKENS: return "max_new_tokens";
    case MORAGENT_STOP_REASON_STOP_TOKEN: return "stop_token";
    case MORAGENT_STOP_REASON_STOP_STRING: return "stop_string";
    }
    return "unknown";
}

static void print_continuation(const char *label, const moragent_generation *generation) {
    const char *text = NULL;
    size_t length = 0, count = 0;
    moragent_stop_reason reason;
    check(moragent_generation_text(generation, &text, &length), "moragent_generation_text");
    check(moragent_generation_token_count(generation, &count), "moragent_generation_token_count");
    check(moragent_generation_stop_reason(generation, &reason), "moragent_generation_stop_reason");
    printf("%s (%zu tokens, stop reason %s): %.*s\n", label, count, stop_reason_name(reason), (int)length, text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [PROMPT]\n", argv[0]);
        return 2;
    }
    const char *prompt_text = argc > 2 ? argv[2] : "You are in the kitchen. > go to";
    printf("libmoragent %s\n", moragent_version());
    moragent_set_log_callback(log_line, NULL);

    moragent_engine *engine = NULL;
    check(moragent_engine_load(argv[1], &engine), "moragent_engine_load");

    /* Ask for the id count first, then tokenize into a buffer of that size. */
    size_t count = 0;
    moragent_status status = moragent_tokenize(engine, prompt_text, strlen(prompt_text), NULL, 0, &count);
    if (status != MORAGENT_ERROR_BUFFER_TOO_SMALL) check(status, "moragent_tokenize");
    int32_t *prompt = (int32_t *)malloc((count ? count : 1) * sizeof *prompt);
    check(moragent_tokenize(engine, prompt_text, strlen(prompt_text), prompt, count, &count), "moragent_tokenize");
    printf("prompt: %s -> %zu ids\n", prompt_text, count);

    moragent_generation_params params;
    params.struct_size = sizeof params;
    check(moragent_generation_params_default(&params), "moragent_generation_params_default");
    params.max_new_tokens = 24;

    moragent_generation *greedy = NULL;
    check(moragent_generate(engine, prompt, count, &params, NULL, NULL, &greedy), "moragent_generate");
    print_continuation("greedy", greedy);

    params.temperature = 0.8f;
    params.top_p = 0.95f;
    params.seed = 1;
    moragent_generation *sampled = NULL;
    check(moragent_generate(engine, prompt, count, &params, NULL, NULL, &sampled), "moragent_generate");
    print_continuation("sampled", sampled);

    moragent_generation_free(sampled);
    moragent_generation_free(greedy);
    free(prompt);
    moragent_engine_free(engine);
    return 0;
}
