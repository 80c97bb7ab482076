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

/* Each function, assigned to a pointer of the type the documentation gives: a changed
 * signature fails to compile here. */
static const char *(*const check_version)(void) = moragent_version;
static int32_t (*const check_version_number)(void) = moragent_version_number;
static const char *(*const check_status_string)(moragent_status) = moragent_status_string;
static const char *(*const check_last_error)(void) = moragent_last_error;
static void (*const check_set_log_callback)(moragent_log_fn, void *) = moragent_set_log_callback;
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

int main(void) {
    const void *all[] = {
        (const void *)&check_version, (const void *)&check_version_number, (const void *)&check_status_string,
        (const void *)&check_last_error, (const void *)&check_set_log_callback, (const void *)&check_engine_load,
        (const void *)&check_engine_free, (const void *)&check_engine_get_info, (const void *)&check_tokenize,
        (const void *)&check_detokenize, (const void *)&check_params_default, (const void *)&check_generate,
        (const void *)&check_generation_free, (const void *)&check_token_count, (const void *)&check_ids,
        (const void *)&check_logprobs, (const void *)&check_entropies, (const void *)&check_text,
        (const void *)&check_stop_reason,
    };
    (void)all;
    if (check_version_number() / 1000000 != MORAGENT_VERSION_MAJOR) {
        fprintf(stderr, "header_test: library %s has another major version than header %s\n", check_version(),
                MORAGENT_VERSION);
        return 1;
    }
    return 0;
}
