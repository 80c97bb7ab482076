/*
 * moragent.h — the C interface of libmoragent.
 *
 * This header is the contract: the Swift sources under Sources/MoRAgentC implement it, and the
 * Python, Lua and C bindings are written against it. It is hand-written and C99-clean (it also
 * compiles as C++), and it changes only by growing: new functions are added, a function whose
 * meaning must change gets a new name (`_v2`), and parameter structs gain fields at their end only.
 *
 * Conventions, for every function below:
 *
 * - Status. A function that can fail returns a `moragent_status`: MORAGENT_OK (0) or a negative
 *   code. On failure `moragent_last_error()` describes what went wrong, on the calling thread.
 *   On failure, out-parameters that return handles are set to NULL (when the out pointer itself is
 *   not NULL) and caller buffers are left untouched unless the function says otherwise.
 * - Caller input never crashes the process: NULL pointers, lengths whose byte size overflows,
 *   invalid UTF-8, NaN or infinite floats, wrong `struct_size` values and handles that are not
 *   live are reported as errors. What cannot be detected is memory the caller describes wrongly
 *   (a pointer to fewer elements than the length says) and, in rare cases, a freed handle whose
 *   address was reused by a new one (see "Handles").
 * - Handles. `moragent_engine` and `moragent_generation` are opaque. The library keeps a registry
 *   of the handles it has returned and not yet freed; passing any other pointer, or NULL where a
 *   handle is required, gives MORAGENT_ERROR_INVALID_HANDLE. This detection is best effort: once a handle is freed, its
 *   address may be handed out again for a new handle, and the stale pointer then designates the
 *   new object. Freeing NULL is a no-op that returns MORAGENT_OK.
 * - Parameter structs begin with `size_t struct_size`, which the caller sets to
 *   `sizeof(the struct)` as its own copy of this header declares it. They travel by pointer, never
 *   by value. The library rejects a `struct_size` smaller than the struct's first published size,
 *   or above 65536 (no version will be that large, so it is taken for a field left unset), with
 *   MORAGENT_ERROR_INVALID_ARGUMENT. It accepts any size in between, reading and writing only the
 *   fields it knows: a program built against a newer header runs against an older library, and
 *   the newer fields are simply not used.
 * - Strings are UTF-8. Strings the library returns are NUL-terminated and owned by the library;
 *   each function says until when they stay valid. Text passed with an explicit length need not be
 *   NUL-terminated and may contain NUL bytes.
 * - Threads. Every function may be called from any thread. An engine is immutable once loaded and
 *   may be used by many threads at once; a generation is read-only and may be read by many
 *   threads at once. Freeing an object while another thread is still using it is a caller error.
 * - Nothing is printed. Diagnostics go to the log callback, if the host sets one.
 */
#ifndef MORAGENT_H
#define MORAGENT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MORAGENT_API __attribute__((visibility("default")))
#else
#define MORAGENT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */

/* The version of this header. Semantic versioning: a library with the same major version
 * implements every function and struct field this header declares. */
#define MORAGENT_VERSION_MAJOR 0
#define MORAGENT_VERSION_MINOR 1
#define MORAGENT_VERSION_PATCH 0
#define MORAGENT_VERSION "0.1.0"
/* MAJOR * 1000000 + MINOR * 1000 + PATCH, so versions compare as integers (0.1.0 -> 1000). */
#define MORAGENT_VERSION_NUMBER \
    (MORAGENT_VERSION_MAJOR * 1000000 + MORAGENT_VERSION_MINOR * 1000 + MORAGENT_VERSION_PATCH)

/* The version of the loaded library, as "MAJOR.MINOR.PATCH".
 * Returns: a static string, valid for the life of the process. Cannot fail. Any thread. */
MORAGENT_API const char *moragent_version(void);

/* The version of the loaded library as MAJOR * 1000000 + MINOR * 1000 + PATCH. Bindings compare
 * its major part (value / 1000000) with MORAGENT_VERSION_MAJOR of the header they were written
 * against, and refuse to run on a mismatch.
 * Returns: the number. Cannot fail. Any thread. */
MORAGENT_API int32_t moragent_version_number(void);

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* What a fallible function returns. New codes may be added (always negative); treat any code
 * you do not know as a failure. */
typedef enum moragent_status {
    MORAGENT_OK = 0,
    /* A value outside what the function accepts: NULL where a pointer is required, a length
     * too large, invalid UTF-8, a NaN, a wrong struct_size, a token id outside the vocabulary... */
    MORAGENT_ERROR_INVALID_ARGUMENT = -1,
    /* A handle that is not live: NULL, never returned by this library, already freed, or of
     * another kind (an engine passed where a generation is expected). */
    MORAGENT_ERROR_INVALID_HANDLE = -2,
    /* A file or folder could not be opened, mapped or read. The message names it. */
    MORAGENT_ERROR_IO = -3,
    /* A file was read but its content is wrong. The message names the file and the problem. */
    MORAGENT_ERROR_MALFORMED_FILE = -4,
    /* A model, tokenizer or option this library does not implement. */
    MORAGENT_ERROR_UNSUPPORTED = -5,
    /* A caller buffer is too small; the function reports the size it needs. */
    MORAGENT_ERROR_BUFFER_TOO_SMALL = -6,
    /* The caller's progress callback asked to stop. */
    MORAGENT_ERROR_ABORTED = -7,
    /* A failure inside the library that no caller input explains; please report it. */
    MORAGENT_ERROR_INTERNAL = -8
} moragent_status;

/* A short, static English name of a status ("ok", "invalid argument", ...), for messages.
 * Returns: a static string, valid for the life of the process ("unknown status" for a code this
 * library does not define). Cannot fail. Any thread. */
MORAGENT_API const char *moragent_status_string(moragent_status status);

/* What went wrong in the most recent call on this thread that returned a moragent_status.
 * A call that returns MORAGENT_OK clears it; a failing call sets it to a message that names the
 * function and the problem (and the file, for file errors). The calls that return no status
 * (version queries, moragent_status_string, moragent_last_error, moragent_set_log_callback)
 * leave it as it is.
 * Returns: a NUL-terminated string, never NULL ("" when the last call succeeded or none was
 * made), owned by the library and valid until the next call into the library on this thread.
 * Cannot fail. Any thread; each thread has its own message. */
MORAGENT_API const char *moragent_last_error(void);

/* ---------------------------------------------------------------------------------------------
 * Logging
 * ------------------------------------------------------------------------------------------- */

typedef enum moragent_log_level {
    MORAGENT_LOG_LEVEL_DEBUG = 0,
    MORAGENT_LOG_LEVEL_INFO = 1,
    MORAGENT_LOG_LEVEL_WARNING = 2,
    MORAGENT_LOG_LEVEL_ERROR = 3
} moragent_log_level;

/* Receives one log line (no trailing newline). `message` is owned by the library and valid only
 * during the call. The callback runs on whichever thread made the library call that logs; calls
 * are serialised, so it is never entered by two threads at once. It must return normally (no
 * longjmp, no C++ exception across it). */
typedef void (*moragent_log_fn)(moragent_log_level level, const char *message, void *user);

/* Sets the process-wide log callback and its user pointer; NULL silences the library, which is
 * the initial state. The library logs, at INFO, one line per engine loaded (architecture, sizes
 * and the OpenBLAS kernel family in use); at WARNING, when OpenBLAS chose generic kernels on a
 * CPU that supports better ones (set OPENBLAS_CORETYPE before the library loads to fix that);
 * at DEBUG, one line per generation (tokens generated, stop reason).
 * When this function returns, the previous callback is no longer running on any other thread
 * and will not be called again, so its user data may be released.
 * Returns: nothing. Cannot fail. Any thread, including from inside the callback. */
MORAGENT_API void moragent_set_log_callback(moragent_log_fn callback, void *user);

/* ---------------------------------------------------------------------------------------------
 * Engine: a frozen base model and its tokenizer
 * ------------------------------------------------------------------------------------------- */

typedef struct moragent_engine moragent_engine;

/* Loads a Hugging Face model folder: config.json, model.safetensors (or the shards named by
 * model.safetensors.index.json; F32, F16 or BF16) and, when present, tokenizer.json.
 * Supported architectures: LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM.
 * `model_dir`: a NUL-terminated UTF-8 path, read during the call only.
 * `out_engine`: receives the new engine, which the caller owns and frees with
 * moragent_engine_free; set to NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (NULL pointer, path not UTF-8);
 * MORAGENT_ERROR_IO (folder or file missing or unreadable); MORAGENT_ERROR_MALFORMED_FILE
 * (config.json, weights or tokenizer.json wrong); MORAGENT_ERROR_UNSUPPORTED (architecture,
 * RoPE type or tokenizer component this library does not implement).
 * Any thread. */
MORAGENT_API moragent_status moragent_engine_load(const char *model_dir, moragent_engine **out_engine);

/* Frees an engine. Generations made from it stay valid (they hold their own copies).
 * NULL is a no-op. The engine must not be in use by another thread.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE when `engine` is not a live engine (for
 * example freed twice), in which case nothing is freed. Any thread. */
MORAGENT_API moragent_status moragent_engine_free(moragent_engine *engine);

/* Shapes and names of a loaded engine. */
typedef struct moragent_engine_info {
    /* Set by the caller to sizeof(moragent_engine_info) before the call; the library sets it to
     * the number of bytes it filled (never more than the caller's value). */
    size_t struct_size;
    /* The Hugging Face architecture name, e.g. "Qwen2ForCausalLM". Owned by the engine, valid
     * until the engine is freed. */
    const char *architecture;
    /* Rows of the embedding and of the logits: token ids are valid in [0, vocabulary_size). */
    size_t vocabulary_size;
    /* One more than the largest id tokenizer.json knows; 0 when the folder has no tokenizer. */
    size_t tokenizer_vocabulary_size;
    /* Model width. */
    size_t hidden_size;
    /* Number of decoder layers. */
    size_t layer_count;
    /* The longest context config.json declares (generation may go past it, with degrading
     * quality, as in transformers). */
    size_t max_position_embeddings;
    /* Number of weights, a tied embedding counted once. */
    uint64_t parameter_count;
} moragent_engine_info;

/* Describes an engine.
 * `info`: caller-owned; `info->struct_size` must be set (see the struct).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`info`
 * NULL or its struct_size too small). Any thread. */
MORAGENT_API moragent_status moragent_engine_get_info(const moragent_engine *engine, moragent_engine_info *info);

/* ---------------------------------------------------------------------------------------------
 * Tokenization
 * ------------------------------------------------------------------------------------------- */

/* Encodes UTF-8 text into token ids with the engine's tokenizer.json, without adding special
 * tokens (no BOS); special tokens written in the text are recognised.
 * `text`, `text_len`: the text's bytes (NULL is allowed when text_len is 0), read during the call.
 * `ids`, `capacity`: caller-owned room for `capacity` ids (NULL is allowed when capacity is 0,
 * to ask for the count first).
 * `out_count`: receives the number of ids the text encodes to, on success and on
 * MORAGENT_ERROR_BUFFER_TOO_SMALL (then nothing is written to `ids`).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_BUFFER_TOO_SMALL; MORAGENT_ERROR_INVALID_HANDLE;
 * MORAGENT_ERROR_INVALID_ARGUMENT (NULL pointer with a non-zero length, `out_count` NULL,
 * invalid UTF-8, a length whose byte size overflows, an engine without tokenizer.json).
 * Any thread, concurrently on one engine. */
MORAGENT_API moragent_status moragent_tokenize(const moragent_engine *engine, const char *text, size_t text_len,
                                               int32_t *ids, size_t capacity, size_t *out_count);

/* Decodes token ids into UTF-8 text, special tokens included. As in Hugging Face tokenizers,
 * ids the tokenizer does not know are skipped and byte sequences that are not UTF-8 become
 * U+FFFD, so any ids decode.
 * `ids`, `id_count`: read during the call (NULL is allowed when id_count is 0).
 * `text`, `capacity`: caller-owned buffer; on success it receives the text and a terminating NUL,
 * so it needs at least *out_length + 1 bytes. NULL is allowed when capacity is 0.
 * `out_length`: receives the text's length in bytes, not counting the NUL (the text itself may
 * contain NUL bytes), on success and on MORAGENT_ERROR_BUFFER_TOO_SMALL (then nothing is written
 * to `text`).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_BUFFER_TOO_SMALL; MORAGENT_ERROR_INVALID_HANDLE;
 * MORAGENT_ERROR_INVALID_ARGUMENT (NULL pointer with a non-zero length, `out_length` NULL, a
 * length whose byte size overflows, an engine without tokenizer.json).
 * Any thread, concurrently on one engine. */
MORAGENT_API moragent_status moragent_detokenize(const moragent_engine *engine, const int32_t *ids, size_t id_count,
                                                 char *text, size_t capacity, size_t *out_length);

/* ---------------------------------------------------------------------------------------------
 * Generation
 * ------------------------------------------------------------------------------------------- */

typedef struct moragent_generation moragent_generation;

/* Why a generation ended. */
typedef enum moragent_stop_reason {
    /* It produced max_new_tokens tokens. */
    MORAGENT_STOP_REASON_MAX_NEW_TOKENS = 0,
    /* It produced a stop token, which is kept as the last id. */
    MORAGENT_STOP_REASON_STOP_TOKEN = 1,
    /* Its text came to contain a stop string; the text is cut right after it. */
    MORAGENT_STOP_REASON_STOP_STRING = 2
} moragent_stop_reason;

/* How to pick tokens and when to stop. Fill it with moragent_generation_params_default, then
 * change fields. Pointers in it are read during moragent_generate only. */
typedef struct moragent_generation_params {
    /* sizeof(moragent_generation_params), set by the caller. */
    size_t struct_size;
    /* Softmax temperature, finite and >= 0; 0 means greedy (argmax). Default 0. */
    float temperature;
    /* Nucleus sampling: keep the most likely tokens whose mass reaches top_p, in (0, 1];
     * 1 keeps all. Default 1. */
    float top_p;
    /* Keep the top_k most likely tokens; 0 keeps all. Default 0. */
    size_t top_k;
    /* Seed of the sampler: the same seed, prompt and parameters give the same tokens. Default 0. */
    uint64_t seed;
    /* Most tokens to generate. Default 64. */
    size_t max_new_tokens;
    /* Generation stops once the generated text contains one of these strings (NUL-terminated,
     * UTF-8, non-empty; the engine must have a tokenizer). NULL is allowed when the count is 0.
     * Default none. */
    const char *const *stop_strings;
    size_t stop_string_count;
    /* Token ids that end generation. When stop_token_count is 0, the model's EOS ids from
     * config.json are used unless ignore_eos is non-zero; a non-empty list replaces them (list
     * them too to keep them). NULL is allowed when the count is 0. Default none. */
    const int32_t *stop_token_ids;
    size_t stop_token_count;
    /* Non-zero: with an empty stop_token_ids list, no token ends generation. Default 0. */
    int32_t ignore_eos;
} moragent_generation_params;

/* Fills `params` with the defaults documented on each field (greedy, 64 tokens, stop at EOS).
 * The caller sets `params->struct_size = sizeof *params` first: the library fills the fields it
 * knows that fit in that size and keeps struct_size as it is.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size too small).
 * Any thread. */
MORAGENT_API moragent_status moragent_generation_params_default(moragent_generation_params *params);

/* Called by moragent_generate on the calling thread: once before the prompt is processed
 * (tokens_done 0) and after every generated token, with tokens_total = max_new_tokens.
 * Generation may end before tokens_done reaches tokens_total (stop token or string). Returning
 * non-zero stops generation: moragent_generate then returns MORAGENT_ERROR_ABORTED. The callback
 * may call into the library, except to free the engine being used; it must return normally. */
typedef int (*moragent_progress_fn)(size_t tokens_done, size_t tokens_total, void *user);

/* Generates a continuation of a prompt of token ids.
 * `prompt`, `prompt_len`: at least one id, each in [0, vocabulary_size); read during the call.
 * `params`: read during the call; NULL means the defaults.
 * `progress`, `user`: optional progress/abort callback (NULL for none) and the pointer it gets.
 * `out_generation`: receives the result, which the caller owns and frees with
 * moragent_generation_free; set to NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_ABORTED;
 * MORAGENT_ERROR_INVALID_ARGUMENT (NULL pointer, empty prompt, an id outside the vocabulary,
 * struct_size too small, temperature or top_p NaN, infinite or out of range, a count or length
 * above SIZE_MAX / 2 or whose byte size overflows, a NULL, empty or non-UTF-8 stop string, stop
 * strings on an engine without tokenizer.json).
 * Any thread, concurrently on one engine (each call decodes with its own cache). */
MORAGENT_API moragent_status moragent_generate(const moragent_engine *engine, const int32_t *prompt, size_t prompt_len,
                                               const moragent_generation_params *params,
                                               moragent_progress_fn progress, void *user,
                                               moragent_generation **out_generation);

/* Frees a generation and everything its accessors returned. NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE when `generation` is not live (nothing is
 * freed). Any thread, once no other thread reads the generation. */
MORAGENT_API moragent_status moragent_generation_free(moragent_generation *generation);

/* The accessors below read a finished generation. Each returns MORAGENT_OK, or
 * MORAGENT_ERROR_INVALID_HANDLE, or MORAGENT_ERROR_INVALID_ARGUMENT when an out pointer is NULL.
 * Arrays and strings they return are owned by the generation and valid until
 * moragent_generation_free; arrays have moragent_generation_token_count elements and are never
 * NULL (even when empty). Any thread. */

/* The number of generated tokens (a final stop token included). */
MORAGENT_API moragent_status moragent_generation_token_count(const moragent_generation *generation, size_t *out_count);

/* The generated token ids. */
MORAGENT_API moragent_status moragent_generation_ids(const moragent_generation *generation, const int32_t **out_ids);

/* log p of each generated id under the model's unmodified distribution (temperature 1, no
 * top-k/top-p): the quantity a policy-gradient update compares against. */
MORAGENT_API moragent_status moragent_generation_logprobs(const moragent_generation *generation,
                                                          const float **out_logprobs);

/* The entropy, in nats, of the unmodified distribution at each step. */
MORAGENT_API moragent_status moragent_generation_entropies(const moragent_generation *generation,
                                                           const float **out_entropies);

/* The generated text, special tokens skipped, NUL-terminated; cut right after a stop string
 * when one ended generation; "" when the engine has no tokenizer. `out_length` (may be NULL)
 * receives its length in bytes without the NUL (the text may contain NUL bytes). */
MORAGENT_API moragent_status moragent_generation_text(const moragent_generation *generation, const char **out_text,
                                                      size_t *out_length);

/* Why generation ended. */
MORAGENT_API moragent_status moragent_generation_stop_reason(const moragent_generation *generation,
                                                             moragent_stop_reason *out_reason);

#ifdef __cplusplus
}
#endif

#endif /* MORAGENT_H */
