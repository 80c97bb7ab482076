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
 * - Handles. `moragent_engine`, `moragent_generation`, `moragent_experts`, `moragent_router`,
 *   `moragent_policy` and `moragent_step_result` are opaque. The library keeps a registry
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
 *   may be used by many threads at once; a generation or step result is read-only and may be read
 *   by many threads at once; an expert set and a router may be shared by many threads (the
 *   library serialises what must be); a policy is used by one thread at a time (a second,
 *   overlapping call fails with MORAGENT_ERROR_BUSY). Freeing an object while another thread is
 *   still using it is a caller error.
 * - Objects that hold others keep their own references: a policy keeps its engine, experts and
 *   router alive, a trajectory router its inner router, so the caller may free its handles of
 *   those as soon as it no longer calls them directly.
 * - Callbacks the host passes (log, progress, router) must return normally: no longjmp, no C++
 *   exception across the library. They may call into the library, except where a function says
 *   otherwise.
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
 * implements every function and struct field this header declares.
 * 0.1.0: version, errors, logging, engine, tokenization, generation.
 * 0.2.0 added: expert sets, routers (fixed, phase, trajectory, callback), router plugins,
 * policies and step results; the status codes MORAGENT_ERROR_CALLBACK and MORAGENT_ERROR_BUSY.
 * 0.3.0 added: token-level top-k routers (moragent_router_create_token) and Mixture-of-Roles
 * routers (moragent_mor_params, moragent_mor_params_default, moragent_router_create_roles,
 * moragent_router_roles_save, moragent_router_roles_load), usable by moragent_policy_create;
 * the step result accessors moragent_step_result_roles and moragent_step_result_token_experts. */
#define MORAGENT_VERSION_MAJOR 0
#define MORAGENT_VERSION_MINOR 4
#define MORAGENT_VERSION_PATCH 0
#define MORAGENT_VERSION "0.4.0"
/* MAJOR * 1000000 + MINOR * 1000 + PATCH, so versions compare as integers (0.3.0 -> 3000). */
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
    MORAGENT_ERROR_INTERNAL = -8,
    /* (0.2) A callback of the host (a router callback) or a function of a plugin reported a
     * failure (a non-zero return) or gave back what its contract forbids (a NaN or negative
     * weight). The message names the callback and what it did. */
    MORAGENT_ERROR_CALLBACK = -9,
    /* (0.2) The object is in use by another call that has not returned: a policy serves one
     * call at a time, from any thread, and a second overlapping call (from another thread, or
     * from a callback inside the first) is refused instead of corrupting its state. */
    MORAGENT_ERROR_BUSY = -10
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
 * Memory: the buffer cache
 * ------------------------------------------------------------------------------------------- */

/* (0.4) The library keeps large buffers (256 KiB and up) it no longer uses, to hand them to the
 * next tensor of about the same size instead of returning them to the system and faulting them
 * in again: a training step allocates the same buffers every time (on a 0.5B model about
 * 140,000 page faults per LoRA step are saved). What is kept plus what is in use never exceeds
 * the most the library had in use at once by more than a quarter (different sizes peak at
 * different moments of a step, so holding exactly the peak would free buffers the same step
 * needs again); the cache holds that memory after a step. The limit starts at 4 GiB.
 *
 * Sets the most bytes kept at once. A lower limit frees the longest-kept buffers at once until
 * what is kept fits; 0 frees everything kept and keeps nothing from then on (every large buffer
 * goes back to the system as it is released). Values above what the platform can address are
 * taken as no limit.
 * Returns: nothing. Cannot fail. Any thread, also while other threads use the library. */
MORAGENT_API void moragent_buffer_cache_set_limit(uint64_t bytes);

/* (0.4) The bytes held now in kept buffers (not in use by anything).
 * Returns: the count. Cannot fail. Any thread. */
MORAGENT_API uint64_t moragent_buffer_cache_kept_bytes(void);

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

/* Frees an engine. Generations made from it stay valid (they hold their own copies), and so do
 * policies using it (they keep the engine alive).
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

/* ---------------------------------------------------------------------------------------------
 * Expert sets (0.2): K LoRA experts over one base model
 * ------------------------------------------------------------------------------------------- */

/* An expert set: K LoRA experts, each `y = W x + s * B (A x)` on the projections it targets,
 * with `s = alpha / r` (or `alpha / sqrt(r)` with rsLoRA). Experts are addressed by index,
 * 0 first, in the order they were created or loaded. */
typedef struct moragent_experts moragent_experts;

/* The projections of a decoder layer a LoRA expert may adapt, as bits of
 * moragent_lora_params.target_modules (Hugging Face names: q_proj ... down_proj). */
typedef enum moragent_module {
    MORAGENT_MODULE_Q = 1 << 0,
    MORAGENT_MODULE_K = 1 << 1,
    MORAGENT_MODULE_V = 1 << 2,
    MORAGENT_MODULE_O = 1 << 3,
    MORAGENT_MODULE_GATE = 1 << 4,
    MORAGENT_MODULE_UP = 1 << 5,
    MORAGENT_MODULE_DOWN = 1 << 6
} moragent_module;

/* The shape of new experts. Fill it with moragent_lora_params_default, then change fields. */
typedef struct moragent_lora_params {
    /* sizeof(moragent_lora_params), set by the caller. */
    size_t struct_size;
    /* The rank r of every adapted projection, from 1 to 65536. Default 32 (PA-MoE's). */
    size_t rank;
    /* lora_alpha, finite. Default 64. */
    float alpha;
    /* Non-zero: rsLoRA scaling alpha / sqrt(r) instead of alpha / r. Default 0. */
    int32_t use_rslora;
    /* The adapted projections: a non-zero OR of moragent_module values (other bits are
     * refused). Default MORAGENT_MODULE_Q | MORAGENT_MODULE_V. */
    uint32_t target_modules;
} moragent_lora_params;

/* Fills `params` with the defaults documented on each field. The caller sets
 * `params->struct_size = sizeof *params` first; it is kept as it is.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size wrong).
 * Any thread. */
MORAGENT_API moragent_status moragent_lora_params_default(moragent_lora_params *params);

/* Creates `count` new experts shaped for `engine`'s model, initialised as PEFT does (A
 * Kaiming-uniform from `seed + index`, B zero, so each starts equal to the base model).
 * `count`: from 0 (an empty set, to fill with moragent_experts_load_peft) to 65536.
 * `params`: read during the call; NULL means the defaults.
 * `out_experts`: receives the set, which the caller owns and frees with moragent_experts_free;
 * NULL on failure. The set keeps only the model's shapes, not the engine.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`engine`); MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_experts` NULL, count above 65536, struct_size wrong, rank 0 or above 65536, alpha not
 * finite, target_modules 0 or with unknown bits, a set of more than 2^31 parameters).
 * Any thread. */
MORAGENT_API moragent_status moragent_experts_create(const moragent_engine *engine, size_t count,
                                                     const moragent_lora_params *params, uint64_t seed,
                                                     moragent_experts **out_experts);

/* Frees the caller's handle of an expert set. Policies created from it keep the experts they
 * took. NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (nothing is freed). Any thread. */
MORAGENT_API moragent_status moragent_experts_free(moragent_experts *experts);

/* The number of experts in the set.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_count` NULL). Any thread. */
MORAGENT_API moragent_status moragent_experts_count(const moragent_experts *experts, size_t *out_count);

/* Reads a Hugging Face PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) and
 * appends it as the last expert, index count - 1. Its ranks, alpha, rsLoRA flag and targets come
 * from the folder; every tensor must fit the set's model. Policies created earlier do not see it.
 * `dir`: NUL-terminated UTF-8 path, read during the call.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`dir`
 * NULL or not UTF-8, tensors that do not fit the model, a set already holding 65536 experts);
 * MORAGENT_ERROR_IO (folder or file missing); MORAGENT_ERROR_MALFORMED_FILE (bad JSON,
 * tensors or keys; the message names the file); MORAGENT_ERROR_UNSUPPORTED (DoRA, LoRA biases,
 * fan-in-fan-out, a peft_type other than LORA). On failure the set is unchanged.
 * Any thread; calls on one set are serialised. */
MORAGENT_API moragent_status moragent_experts_load_peft(moragent_experts *experts, const char *dir);

/* Writes expert `index` as a PEFT LoRA folder (created if missing; its parent must exist),
 * each file written atomically, so PEFT (and moragent_experts_load_peft) can read it back.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`dir`
 * NULL or not UTF-8, `index` not below the count); MORAGENT_ERROR_IO (cannot create or write).
 * Any thread. */
MORAGENT_API moragent_status moragent_experts_save_peft(const moragent_experts *experts, size_t index,
                                                        const char *dir);

/* ---------------------------------------------------------------------------------------------
 * Routers (0.2): which expert serves each environment step
 * ------------------------------------------------------------------------------------------- */

/* A step router: once per environment step it chooses the base model, one expert, or a
 * weighted mixture of experts, among K. Every kind below is a moragent_router, freed with
 * moragent_router_free. A router may be shared by several policies, also on several threads: its
 * decisions are made one at a time. Routers that keep per-episode state (trajectory routers,
 * plugins) key it by episode number alone, so policies that share one should not reuse episode
 * numbers. Expert counts are at most 65536. */
typedef struct moragent_router moragent_router;

/* What a router is told about the step at hand, borrowed for the duration of one call. */
typedef struct moragent_step_features {
    /* sizeof(moragent_step_features) as the library knows it: a callback built against a newer
     * header reads fields beyond the ones it was given only when this says they are there. */
    size_t struct_size;
    /* The episode number the policy was given. */
    int64_t episode;
    /* The step index in the episode, 0 first. */
    size_t step;
    /* The current observation and the goal: NUL-terminated UTF-8, owned by the library, valid
     * only during the call. */
    const char *observation;
    const char *goal;
    /* The number of earlier steps of the episode the policy remembers (equal to `step`). */
    size_t history_count;
} moragent_step_features;

/* A router written by the host: writes one weight per expert into `weights_out` (which holds
 * `expert_count` floats, all 0 on entry; never NULL) and returns 0. One positive weight routes
 * the step to that expert; several give a mixture, normalised to sum to 1; all zero route to the
 * base model. Weights must be finite and >= 0. A non-zero return, or a NaN, infinite or negative
 * weight, fails the step with MORAGENT_ERROR_CALLBACK. `features` is valid only during the call.
 * Called on the thread that called moragent_policy_step, once per step, never by two threads
 * at once for one router. It may call into the library (stepping the policy that called it
 * fails with MORAGENT_ERROR_BUSY); but since each router decides one step at a time, stepping
 * from inside it a policy whose router another thread's callback is waiting to use, while that
 * callback steps a policy of this router, deadlocks. */
typedef int (*moragent_router_fn)(const moragent_step_features *features, float *weights_out, size_t expert_count,
                                  void *user);

/* A router that sends every step to `expert`, or to the base model when `expert` is -1 (the
 * PA-MoE K = 0 / single-LoRA baselines).
 * `out_router`: receives the router, which the caller owns and frees with
 * moragent_router_free; NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`out_router` NULL, expert_count above
 * 65536, `expert` not -1 and not in [0, expert_count)). Any thread. */
MORAGENT_API moragent_status moragent_router_create_fixed(size_t expert_count, int32_t expert,
                                                          moragent_router **out_router);

/* The shape and schedule of a PA-MoE phase router: softmax(MLP([cross-attention of the
 * observation's encoding over the goal; LSTM over the last steps]) / temperature), argmax.
 * Fill it with moragent_phase_router_params_default, then change fields. */
typedef struct moragent_phase_router_params {
    /* sizeof(moragent_phase_router_params), set by the caller. */
    size_t struct_size;
    /* K, at least 1. Default 4. */
    size_t expert_count;
    /* Width of the goal cross-attention, a positive multiple of attention_heads. Default 256. */
    size_t attention_dim;
    /* Heads of the goal cross-attention, at least 1. Default 4. */
    size_t attention_heads;
    /* LSTM hidden size, at least 1. Default 256. */
    size_t lstm_hidden;
    /* LSTM layers, 1 to 64. Default 3. */
    size_t lstm_layers;
    /* Past steps the LSTM reads (zero-padded at an episode's start), 0 to 4096. Default 5. */
    size_t history_length;
    /* Hidden width of the MLP head, at least 1. Default 256. */
    size_t mlp_hidden;
    /* Non-zero: attend to the goal's pooled encoding instead of its per-token states. Default 0. */
    int32_t pooled_goal;
    /* The softmax temperature starts at initial_temperature and moves linearly to
     * final_temperature over anneal_updates training updates; both finite and > 0.
     * Defaults 2, 0.5 and 3000. */
    float initial_temperature;
    float final_temperature;
    size_t anneal_updates;
} moragent_phase_router_params;

/* Fills `params` with the defaults documented on each field (the paper's settings). The caller
 * sets `params->struct_size = sizeof *params` first; it is kept as it is.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size wrong).
 * Any thread. */
MORAGENT_API moragent_status moragent_phase_router_params_default(moragent_phase_router_params *params);

/* A new phase router with seeded random parameters, for base models of width
 * `model_hidden_size` (moragent_engine_info.hidden_size of the engine it will route for:
 * moragent_policy_create refuses another width).
 * `params`: read during the call; NULL means the defaults.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`out_router` NULL, model_hidden_size 0
 * or above 65536, struct_size wrong, a field outside its documented range, a router of more
 * than 2^31 parameters). Any thread. */
MORAGENT_API moragent_status moragent_router_create_phase(size_t model_hidden_size,
                                                          const moragent_phase_router_params *params, uint64_t seed,
                                                          moragent_router **out_router);

/* Writes a phase router (parameters, shape, temperature) to one safetensors file, atomically.
 * `path`: NUL-terminated UTF-8, read during the call.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`path`
 * NULL or not UTF-8, a router that is not a phase router); MORAGENT_ERROR_IO. Any thread. */
MORAGENT_API moragent_status moragent_router_phase_save(const moragent_router *router, const char *path);

/* Reads a phase router written by moragent_router_phase_save.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (NULL pointer, path not UTF-8);
 * MORAGENT_ERROR_IO; MORAGENT_ERROR_MALFORMED_FILE (not a phase router file, shapes or
 * metadata wrong; the message names the file). Any thread. */
MORAGENT_API moragent_status moragent_router_phase_load(const char *path, moragent_router **out_router);

/* PA-MoE's trajectory-level baseline: `inner` decides at each episode's first step and that
 * decision is kept for the whole episode (forgotten when the episode ends).
 * `inner`: any live router. The trajectory router keeps its own reference to it, so the caller
 * may free its `inner` handle right after this call; the inner router still sees end of
 * episode notifications through the trajectory router.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`inner`); MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_router` NULL). Any thread. */
MORAGENT_API moragent_status moragent_router_create_trajectory(moragent_router *inner, moragent_router **out_router);

/* A router whose decisions the host computes in `fn` (see moragent_router_fn), called with
 * `user` as its last argument.
 * Lifetime: `fn` and `user` must stay valid until the router is gone, that is until the
 * caller's handle and every policy and trajectory router created with it are freed; the library
 * never frees `user`.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`fn` or `out_router` NULL,
 * expert_count above 65536). Any thread. */
MORAGENT_API moragent_status moragent_router_create_callback(size_t expert_count, moragent_router_fn fn, void *user,
                                                             moragent_router **out_router);

/* Frees the caller's handle of a router. The router itself lives on while a policy or a
 * trajectory router uses it. NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (nothing is freed). Any thread. */
MORAGENT_API moragent_status moragent_router_free(moragent_router *router);

/* K, the number of experts the router chooses among (for a Mixture-of-Roles router, 3: its
 * step decisions are over the three roles; its LoRAs are internal to it).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_count` NULL). Any thread. */
MORAGENT_API moragent_status moragent_router_expert_count(const moragent_router *router, size_t *out_count);

/* ---------------------------------------------------------------------------------------------
 * Token and Mixture-of-Roles routers (0.3)
 *
 * Two router kinds that route inside the forward pass instead of once per step. They are
 * moragent_router handles (freed with moragent_router_free, shareable by several policies on
 * several threads: their parameters are read-only once made) and are used through
 * moragent_policy_create; they cannot be the inner router of a trajectory router
 * (MORAGENT_ERROR_INVALID_ARGUMENT).
 * ------------------------------------------------------------------------------------------- */

/* A token-level top-k router (Switch/Mixtral style): every token of a step's forward goes
 * through a bias-free linear gate over the layer's normed hidden state, softmax, the `top_k`
 * best experts kept with their weights renormalised. With `per_layer` non-zero each layer has
 * its own gate; with 0 one gate at layer 0 decides for every layer. Gates are seeded from `seed`.
 * The router is bound to the experts `experts` holds now: it keeps its own reference to them
 * (experts added to the set later are not routed), so the caller may free `experts` afterwards.
 * In a policy, the step's decision is the experts' mean layer-0 routing weights over the step's
 * generated tokens (moragent_step_result_probabilities) and the most used expert
 * (moragent_step_result_expert; ties: larger mean weight, then lower index); the per-token
 * choices are in moragent_step_result_token_experts.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`experts` NULL or not live);
 * MORAGENT_ERROR_INVALID_ARGUMENT (`out_router` NULL, an empty set, `top_k` 0 or above the
 * set's expert count, gates of more than 2^31 parameters). Any thread. */
MORAGENT_API moragent_status moragent_router_create_token(const moragent_experts *experts, size_t top_k, int32_t per_layer,
                                                          uint64_t seed, moragent_router **out_router);

/* The roles of MoRAgent's Mixture-of-Roles, as moragent_step_result_roles reports them. */
typedef enum moragent_role {
    MORAGENT_ROLE_REASONER = 0,
    MORAGENT_ROLE_EXECUTOR = 1,
    MORAGENT_ROLE_SUMMARIZER = 2
} moragent_role;

/* The shape of a Mixture-of-Roles adapter: per role (indexed by moragent_role), a shared LoRA
 * always on plus `routed_counts[role]` LoRAs of which a per-module router keeps `top_k[role]`
 * per token. Fill it with moragent_mor_params_default, then change fields. */
typedef struct moragent_mor_params {
    /* sizeof(moragent_mor_params), set by the caller. */
    size_t struct_size;
    /* Routed LoRAs per role, each at most 65536. Default {4, 4, 3} (the paper's "5-5-4"). */
    size_t routed_counts[3];
    /* LoRAs kept per token, per role: from 1 to routed_counts[role], or 0 when that is 0.
     * Default {3, 3, 2}. */
    size_t top_k[3];
    /* Rank of every LoRA, from 1 to 65536. Default 16. */
    size_t rank;
    /* Scale of every LoRA delta, finite. Default 1 (the released code applies no alpha/r). */
    float scale;
    /* Non-zero: the shared LoRA is multiplied by a learned sigmoid gate. Default 0. */
    int32_t shared_gate;
    /* The adapted projections: a non-zero OR of moragent_module values. Default all seven. */
    uint32_t target_modules;
} moragent_mor_params;

/* Fills `params` with the defaults. Set `params->struct_size` first.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size wrong).
 * Any thread. */
MORAGENT_API moragent_status moragent_mor_params_default(moragent_mor_params *params);

/* A Mixture-of-Roles router with its own LoRAs, made for `engine`'s model (PEFT init: LoRA A
 * seeded from `seed`, B zero, so it leaves the base model unchanged until trained or loaded).
 * In a policy, a step's generation follows the role gate: the role active before the response
 * is that of the last hand-over marker ("Next Role: Executor", "Next Role: Summarizer",
 * "Next Role: Reasoner") in the prompt, the reasoner before any; markers the model writes hand
 * over inside the step. The step's probabilities are the shares of the generated tokens each
 * role wrote (3 values), its expert the role that wrote the most (-1 when nothing was
 * generated); moragent_step_result_roles gives the role of every generated token. The router
 * keeps no reference to `engine`.
 * `params`: read during the call; NULL means the defaults.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`engine`); MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_router` NULL, struct_size wrong, a count, top-k, rank or scale outside its documented
 * range, target_modules 0 or with unknown bits, more than 2^31 parameters). Any thread. */
MORAGENT_API moragent_status moragent_router_create_roles(const moragent_engine *engine, const moragent_mor_params *params,
                                                          uint64_t seed, moragent_router **out_router);

/* Writes a Mixture-of-Roles router (LoRAs, routers, gates, shape) to one safetensors file,
 * atomically.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`path`
 * NULL or not UTF-8, a router that is not a Mixture-of-Roles router); MORAGENT_ERROR_IO. Any
 * thread. */
MORAGENT_API moragent_status moragent_router_roles_save(const moragent_router *router, const char *path);

/* Reads a Mixture-of-Roles router written by moragent_router_roles_save, for `engine`'s model
 * (no reference to `engine` is kept).
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`engine`); MORAGENT_ERROR_INVALID_ARGUMENT
 * (`path` NULL or not UTF-8, `out_router` NULL); MORAGENT_ERROR_IO; MORAGENT_ERROR_MALFORMED_FILE
 * (not a Mixture-of-Roles file, a shape that does not fit the engine's model, sizes beyond the
 * limits of moragent_router_create_roles). Any thread. */
MORAGENT_API moragent_status moragent_router_roles_load(const moragent_engine *engine, const char *path,
                                                        moragent_router **out_router);

/* ---------------------------------------------------------------------------------------------
 * Router plugins (0.2): router kinds loaded from shared objects at run time
 * ------------------------------------------------------------------------------------------- */

/* A plugin is a shared object that includes this header (it need not link libmoragent) and
 * defines `moragent_plugin_register` (of type moragent_plugin_register_fn, below; the library
 * itself does not export it). moragent_plugin_load calls it once with a
 * registrar, and the plugin calls `registrar->register_router` once per router kind it offers.
 * The vtable is versioned: a kind states the MORAGENT_PLUGIN_API_VERSION it was compiled
 * against, and the library refuses any version other than its own. */
#define MORAGENT_PLUGIN_API_VERSION 1

/* The symbol every plugin exports, as a string for dlsym. */
#define MORAGENT_PLUGIN_ENTRY_POINT "moragent_plugin_register"

/* A router kind: the functions a plugin provides, copied by the library at registration (the
 * struct itself may be temporary; `name` is copied too). Each function is called by the library
 * only, never on two threads at once for one state, and must return normally. */
typedef struct moragent_router_kind {
    /* sizeof(moragent_router_kind), set by the plugin. */
    size_t struct_size;
    /* MORAGENT_PLUGIN_API_VERSION as the plugin's copy of this header defines it. */
    uint32_t api_version;
    /* The kind's name for moragent_router_create_kind: 1 to 64 characters from [A-Za-z0-9_.-],
     * unique in the process. */
    const char *name;
    /* Makes the state of one router from `config_json` (well-formed JSON, "{}" when the caller
     * passed NULL; valid during the call) for `expert_count` experts. Returns a non-NULL state
     * on success (any non-NULL pointer when the kind keeps none), or NULL after writing a
     * NUL-terminated reason of at most `error_capacity` bytes into `error`. Required. */
    void *(*create)(const char *config_json, size_t expert_count, char *error, size_t error_capacity);
    /* The router's decision for one step: as moragent_router_fn, with the state in place of
     * the user pointer. Called on the thread that called moragent_policy_step. Required. */
    int (*decide)(void *state, const moragent_step_features *features, float *weights, size_t expert_count);
    /* Told that `episode` ended (moragent_policy_end_episode), on the calling thread. May be
     * NULL. */
    void (*end_episode)(void *state, int64_t episode);
    /* Frees a state once its router is gone (the last handle, policy or trajectory router that
     * held it was freed), on whichever thread freed that last holder. Required. */
    void (*destroy)(void *state);
} moragent_router_kind;

/* What moragent_plugin_load hands the plugin's entry point; valid only during that call. */
typedef struct moragent_plugin_registrar moragent_plugin_registrar;
struct moragent_plugin_registrar {
    /* sizeof(moragent_plugin_registrar) as the library knows it. */
    size_t struct_size;
    /* The library's MORAGENT_PLUGIN_API_VERSION: a plugin may check it before registering. */
    uint32_t api_version;
    /* Registers one kind; returns 0, or non-zero when the kind is refused (the load then fails
     * with the reason, whatever the entry point returns). */
    int (*register_router)(moragent_plugin_registrar *registrar, const moragent_router_kind *kind);
};

/* Marks a plugin's definition of its entry point for export from the shared object. */
#define MORAGENT_PLUGIN_EXPORT MORAGENT_API

/* The type of the entry point a plugin defines (libmoragent does not):
 *     MORAGENT_PLUGIN_EXPORT int moragent_plugin_register(moragent_plugin_registrar *registrar)
 * registers the plugin's kinds and returns 0, or returns non-zero to refuse loading. Only its
 * type is declared here, so the library's exported symbols and this header's functions agree;
 * a plugin may check its definition with `moragent_plugin_register_fn check = moragent_plugin_register;`. */
typedef int (*moragent_plugin_register_fn)(moragent_plugin_registrar *registrar);

/* Loads a plugin: dlopen(path, RTLD_NOW | RTLD_LOCAL), looks up MORAGENT_PLUGIN_ENTRY_POINT,
 * calls it on the calling thread, and adds the kinds it registered to the process-wide
 * registry. All or nothing: when anything fails, none of its kinds are registered and the
 * library is closed again. A loaded plugin stays loaded until the process ends.
 * `path`: NUL-terminated UTF-8; as for dlopen, a name without '/' is searched for by the
 * dynamic loader.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`path` NULL or not UTF-8, the plugin
 * already loaded, a kind name already registered); MORAGENT_ERROR_IO (no such file);
 * MORAGENT_ERROR_MALFORMED_FILE (not a loadable shared object, no entry point, a kind with a
 * wrong struct_size, a bad name or a required function NULL, no kind registered);
 * MORAGENT_ERROR_UNSUPPORTED (a kind built for another plugin API version);
 * MORAGENT_ERROR_CALLBACK (the entry point returned non-zero). The message names the file.
 * Any thread; loads are serialised. */
MORAGENT_API moragent_status moragent_plugin_load(const char *path);

/* A router of a kind a plugin registered.
 * `name`: the kind's name; `config_json`: NUL-terminated UTF-8 JSON handed to the kind's
 * create function (NULL means "{}"); both read during the call.
 * `out_router`: receives the router (caller-owned, moragent_router_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (NULL `name` or `out_router`, a name no
 * plugin registered, config_json not UTF-8 or not well-formed JSON, expert_count above 65536,
 * the kind's create refused the configuration: the message carries its reason).
 * Any thread. */
MORAGENT_API moragent_status moragent_router_create_kind(const char *name, const char *config_json,
                                                         size_t expert_count, moragent_router **out_router);

/* ---------------------------------------------------------------------------------------------
 * Policies (0.2): an engine, experts and a router acting in a text environment
 * ------------------------------------------------------------------------------------------- */

/* A policy: for each environment step it asks its router for a route, renders a prompt from the
 * goal, the observation and the episode's history, and generates a response through the routed
 * experts; the action is the text between the first <action> and </action>. It remembers each
 * episode's steps until they are cleared. One call at a time (MORAGENT_ERROR_BUSY otherwise),
 * from any thread. */
typedef struct moragent_policy moragent_policy;

/* What one step produced: read-only, freed with moragent_step_result_free. */
typedef struct moragent_step_result moragent_step_result;

/* How a policy samples and prompts. Fill it with moragent_policy_params_default, then change
 * fields. Pointers in it are read during moragent_policy_create only. */
typedef struct moragent_policy_params {
    /* sizeof(moragent_policy_params), set by the caller. */
    size_t struct_size;
    /* How each response is sampled, as for moragent_generate (validated the same way). NULL
     * means the policy defaults: temperature 1, top_p 1, top_k 0, seed 0, 64 new tokens, stop at
     * the model's EOS or the string "</action>". A caller's own parameters replace all of these:
     * list "</action>" in stop_strings to keep stopping after the action. Step t of episode e is
     * sampled with a seed derived from (seed, e, t), so runs repeat. Default NULL. */
    const moragent_generation_params *sampling;
    /* The prompt of an episode's first step, of later steps, and of one history record
     * (NUL-terminated UTF-8; NULL means the built-in ReAct-style template). Placeholders:
     * {goal}, {observation}, {step} (1-based), {step_count}, {history_length}, {history}; in the
     * history record {k}, {observation}, {action}. Defaults NULL. */
    const char *first_step_template;
    const char *later_step_template;
    const char *history_entry_template;
    /* How many past steps {history} shows. Default 5. */
    size_t history_length;
    /* Non-zero: wrap the prompt as one ChatML user turn followed by the assistant header, as
     * Qwen2 chat models expect. Default 0. */
    int32_t chatml;
} moragent_policy_params;

/* Fills `params` with the defaults documented on each field. The caller sets
 * `params->struct_size = sizeof *params` first; it is kept as it is.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size wrong).
 * Any thread. */
MORAGENT_API moragent_status moragent_policy_params_default(moragent_policy_params *params);

/* Creates a policy. It keeps its own references to `engine` and `router`, and takes the experts
 * `experts` holds now (experts loaded into the set later are not seen by it), so the caller may
 * free all three handles afterwards.
 * `engine` must have a tokenizer; the experts must fit its model; the router must choose among
 * as many experts as the set holds, and a phase router (also inside a trajectory router) must
 * have been made for the engine's hidden size.
 * (0.3) `experts` by router kind: for step routers (fixed, phase, trajectory, callback, plugin
 * kinds) the set the router chooses among, required. For a token router it is ignored and may be
 * NULL (the router routes the experts it was created with, which must fit the engine's model).
 * For a Mixture-of-Roles router it is ignored and may be NULL (the router owns its LoRAs, which
 * must have been made for a model of the engine's shapes).
 * `params`: read during the call; NULL means the defaults.
 * `out_policy`: receives the policy (caller-owned, moragent_policy_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (`engine`, `router`, or `experts` for a
 * step router); MORAGENT_ERROR_INVALID_ARGUMENT (`out_policy` NULL, struct_size wrong, an engine without
 * tokenizer.json, experts of another model's shapes, expert counts that differ, a phase router
 * of another width, a template not UTF-8, sampling parameters refused as moragent_generate
 * refuses them). Any thread. */
MORAGENT_API moragent_status moragent_policy_create(const moragent_engine *engine, const moragent_experts *experts,
                                                    moragent_router *router, const moragent_policy_params *params,
                                                    moragent_policy **out_policy);

/* Frees a policy and the episodes it remembers; step results stay valid. NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (nothing is freed). Any thread, once no
 * other call on the policy is running. */
MORAGENT_API moragent_status moragent_policy_free(moragent_policy *policy);

/* Takes the next step of `episode` (any number; its first step starts it): routes, then
 * generates. The router and its callback run on the calling thread.
 * `observation`, `goal`: NUL-terminated UTF-8, read during the call.
 * `out_result`: receives the result (caller-owned, moragent_step_result_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (NULL
 * pointer, text not UTF-8, an episode that has ended and was not cleared);
 * MORAGENT_ERROR_CALLBACK (the router callback or plugin failed or wrote a bad weight);
 * MORAGENT_ERROR_BUSY (another call on the policy is running). On failure the episode is
 * unchanged. */
MORAGENT_API moragent_status moragent_policy_step(moragent_policy *policy, int64_t episode, const char *observation,
                                                  const char *goal, moragent_step_result **out_result);

/* Takes the next step of `count` distinct episodes at once: each is routed as
 * moragent_policy_step routes it (in array order, on the calling thread), then all prompts are
 * prefilled and decoded as one batch, each with its own route and sampling seed. The seed is the
 * one the episode's step has alone, so the results equal `count` calls of moragent_policy_step
 * up to the float rounding of the batched products; the batch makes better use of them (a host
 * stepping a group of environments in lockstep). Each result's generation time is the batch's.
 * `episodes`, `observations`, `goals`: arrays of `count` (count >= 1); the texts NUL-terminated
 * UTF-8, read during the call.
 * `out_results`: an array of `count` pointers; each receives a caller-owned result
 * (moragent_step_result_free), in the order of `episodes`; all are NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (a NULL
 * array, `count` 0, an episode named twice or ended and not cleared, text not UTF-8, a rollout
 * record without room for `count` more steps); MORAGENT_ERROR_CALLBACK; MORAGENT_ERROR_BUSY.
 * On failure no episode changes. */
MORAGENT_API moragent_status moragent_policy_step_batch(moragent_policy *policy, size_t count, const int64_t *episodes,
                                                        const char *const *observations, const char *const *goals,
                                                        moragent_step_result **out_results);

/* Ends `episode` with its return and outcome (`success` non-zero for success): it takes no more
 * steps, appears in the trace, and its router is told (a trajectory router forgets its choice).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`reward`
 * NaN or infinite, an episode that took no step or has already ended); MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_end_episode(moragent_policy *policy, int64_t episode, double reward,
                                                         int32_t success);

/* The routing trace: one JSON object per ended episode not yet cleared, in the order they
 * ended, separated by "\n" (no trailing newline; "" when there is none):
 * {"episode": E, "steps": N, "experts": [k or null per step (null: base model or mixture)],
 *  "switches": S (consecutive steps routed differently), "reward": R, "success": true|false}.
 * Buffer convention as moragent_detokenize: on success `buffer` receives the text and a NUL,
 * so it needs *out_length + 1 bytes; NULL is allowed when capacity is 0; `out_length` receives
 * the length without the NUL on success and on MORAGENT_ERROR_BUFFER_TOO_SMALL (then nothing is
 * written).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_BUFFER_TOO_SMALL; MORAGENT_ERROR_INVALID_HANDLE;
 * MORAGENT_ERROR_INVALID_ARGUMENT (`out_length` NULL, NULL buffer with a non-zero capacity, a
 * capacity above SIZE_MAX / 2); MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_trace_jsonl(const moragent_policy *policy, char *buffer, size_t capacity,
                                                         size_t *out_length);

/* Forgets every ended episode (after a trainer has consumed them); their numbers may be used
 * again. Episodes still running are kept.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_clear_ended(moragent_policy *policy);

/* Frees a step result and everything its accessors returned. NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (nothing is freed). Any thread, once no
 * other thread reads the result. */
MORAGENT_API moragent_status moragent_step_result_free(moragent_step_result *result);

/* The accessors below read a step result. Each returns MORAGENT_OK, or
 * MORAGENT_ERROR_INVALID_HANDLE, or MORAGENT_ERROR_INVALID_ARGUMENT when a required out pointer
 * is NULL. Strings and arrays they return are owned by the result and valid until
 * moragent_step_result_free; arrays are never NULL (even when empty). Any thread. */

/* The action: the trimmed text between the first <action> and the next </action> of the
 * response, or, when the response has no such pair, its last 30 characters (see
 * moragent_step_result_action_valid). NUL-terminated; `out_length` (may be NULL) receives its
 * length in bytes without the NUL. */
MORAGENT_API moragent_status moragent_step_result_action(const moragent_step_result *result, const char **out_text,
                                                         size_t *out_length);

/* The whole generated response, as moragent_generation_text gives it. */
MORAGENT_API moragent_status moragent_step_result_response(const moragent_step_result *result, const char **out_text,
                                                           size_t *out_length);

/* 1 when the response held a well-formed <action>...</action>, else 0. */
MORAGENT_API moragent_status moragent_step_result_action_valid(const moragent_step_result *result,
                                                               int32_t *out_valid);

/* The generated token ids and their count. */
MORAGENT_API moragent_status moragent_step_result_ids(const moragent_step_result *result, const int32_t **out_ids,
                                                      size_t *out_count);

/* log p of each generated id under the routed model's unmodified distribution (as
 * moragent_generation_logprobs); as many as there are ids. */
MORAGENT_API moragent_status moragent_step_result_logprobs(const moragent_step_result *result,
                                                           const float **out_logprobs, size_t *out_count);

/* The token ids of the rendered prompt and their count. */
MORAGENT_API moragent_status moragent_step_result_prompt_ids(const moragent_step_result *result,
                                                             const int32_t **out_ids, size_t *out_count);

/* The expert that served the step, or -1 for the base model or a mixture (the probabilities tell
 * which: all zero for the base model). */
MORAGENT_API moragent_status moragent_step_result_expert(const moragent_step_result *result, int32_t *out_expert);

/* The router's distribution over the K experts (one-hot for a fixed router, the normalised
 * weights for a callback or plugin) and K. */
MORAGENT_API moragent_status moragent_step_result_probabilities(const moragent_step_result *result,
                                                                const float **out_probabilities, size_t *out_count);

/* Wall-clock seconds the step spent routing and generating (both out pointers required). For
 * token and Mixture-of-Roles routers routing happens inside generation: routing time is 0. */
MORAGENT_API moragent_status moragent_step_result_timing(const moragent_step_result *result,
                                                         double *out_routing_seconds,
                                                         double *out_generation_seconds);

/* (0.3) The role (a moragent_role value: 0, 1 or 2) of every generated token of a step of a
 * Mixture-of-Roles policy, one per id of moragent_step_result_ids; empty (count 0) for other
 * routers. A marker's own tokens belong to the role that wrote it. Both out pointers required;
 * the array (never NULL) is owned by the result. Returns as the accessors above. */
MORAGENT_API moragent_status moragent_step_result_roles(const moragent_step_result *result, const int32_t **out_roles,
                                                        size_t *out_count);

/* (0.3) The experts a token router's layer-0 gate chose for every generated token (at the
 * position whose logits sampled it): `*out_count` tokens of `*out_per_token` (the router's
 * top_k) expert indices each, row-major, best first. Empty (both counts 0) for other routers.
 * All three out pointers required; the array (never NULL) is owned by the result. Returns as
 * the accessors above. */
MORAGENT_API moragent_status moragent_step_result_token_experts(const moragent_step_result *result,
                                                                const int32_t **out_experts, size_t *out_count,
                                                                size_t *out_per_token);

/* ---- Reinforcement learning (0.4) -------------------------------------------------------
 * A policy records what an update needs at every step (prompt and response token ids, their
 * log-probabilities at sampling time, the route, the router's distribution and, for a phase
 * router, the router's inputs). A trainer bound to the policy turns the ended episodes into one
 * update (advantages -> clipped surrogate + PA-MoE's routing terms -> backward -> AdamW) and
 * then releases them, so memory stays bounded by the steps taken between updates. */

/* (0.4) Starts `episode` as one rollout of `group` (the rollouts of one task instance, n per
 * group, default 8 in PA-MoE: GRPO, RLOO and GiGPO compare the episodes of a group). An episode
 * that starts with moragent_policy_step instead is a group of its own.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (the
 * episode has already begun); MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_begin_episode(moragent_policy *policy, int64_t episode, int64_t group);

/* (0.4) Adds `reward` to the latest step of `episode`: a reward the environment gave for that
 * step (GiGPO and GAE discount step rewards; GRPO and RLOO use the episode's total). The
 * episode's final return still goes to moragent_policy_end_episode, which adds it to the last
 * step; an episode's return is the sum of both.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`reward`
 * NaN or infinite, an episode that took no step or has ended); MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_step_reward(moragent_policy *policy, int64_t episode, double reward);

/* (0.4) The number of steps recorded and not yet consumed by an update.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_steps` NULL); MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_policy_recorded_steps(const moragent_policy *policy, size_t *out_steps);

/* (0.4) A trainer: the optimiser state and settings of the RL updates of one policy. */
typedef struct moragent_trainer moragent_trainer;

/* (0.4) The advantage estimators (DESIGN.md §6). */
typedef enum moragent_advantage {
    MORAGENT_ADVANTAGE_GRPO = 0,  /* group-normalised episode return */
    MORAGENT_ADVANTAGE_RLOO = 1,  /* leave-one-out baseline within the group */
    MORAGENT_ADVANTAGE_GIGPO = 2, /* GiGPO: episode- plus step-level (anchor state) advantage */
    MORAGENT_ADVANTAGE_PPO = 3    /* GAE over a value head on the base's pooled prompt state */
} moragent_advantage;

/* (0.4) How a trainer updates. Fill it with moragent_trainer_params_default, then change
 * fields. Pointers in it are read during moragent_trainer_create only. */
typedef struct moragent_trainer_params {
    /* sizeof(moragent_trainer_params), set by the caller. */
    size_t struct_size;
    /* A moragent_advantage. Default MORAGENT_ADVANTAGE_GIGPO. */
    int32_t advantage;
    /* GRPO and GiGPO: non-zero divides by the group's (unbiased) standard deviation, 0 only
     * subtracts the mean. Default 1. */
    int32_t normalize_by_std;
    /* Non-zero: group statistics over trajectories (GiGPO paper's Eq. 3); 0: over every step
     * row (verl-agent's default). Default 0. */
    int32_t per_trajectory_statistics;
    /* Discount of GiGPO's step returns and of GAE. Default 0.95. */
    double gamma;
    /* GAE's lambda. Default 0.95. */
    double gae_lambda;
    /* Weight of GiGPO's step-level advantage. Default 1. */
    double step_weight;
    /* GiGPO anchor states: 0 groups identical observations only; a value in (0, 1] also groups
     * observations whose similarity ratio reaches it (e.g. 0.95). Default 0. */
    double similarity_threshold;
    /* Subtracted from the score of a step whose response held no <action>...</action>.
     * Default 0.1. */
    double invalid_action_penalty;
    /* AdamW: peak learning rate (1e-4), decoupled weight decay (0), global-norm clip (1). */
    float learning_rate;
    float weight_decay;
    float max_grad_norm;
    /* Learning-rate schedule over updates: linear warm-up over `warmup_updates` (0), then
     * constant when `total_updates` is 0 (default), else decay to 0 at `total_updates`, cosine
     * when `cosine` is non-zero (default 1), linear otherwise. */
    int32_t warmup_updates;
    int32_t total_updates;
    int32_t cosine;
    /* Clipped surrogate: ratio clip range [1 - clip_low, 1 + clip_high] (0.2, 0.2), dual clip
     * constant for negative advantages (3; 0 switches it off). */
    float clip_low;
    float clip_high;
    float dual_clip;
    /* Non-zero: mean over responses of per-response token means; 0: token mean over the batch
     * (verl's default). Default 0. */
    int32_t sequence_mean;
    /* Coefficient of the k3 KL to the base model (the policy with its LoRA switched off).
     * Default 0 (no reference forward). */
    float kl_coefficient;
    /* Non-zero trains the router (a phase router, also inside a trajectory router, by the
     * straight-through estimator; a token router's gates). Default 1. */
    int32_t train_router;
    /* PA-MoE's routing terms: balance (0.001), switching (1, with lambda_s 0.05 inside). */
    float balance_coefficient;
    float switch_coefficient;
    float switch_lambda;
    /* PA-MoE's diversity term: coefficient (0.01; 0 switches it off), every `diversity_interval`
     * updates (100), over `diversity_samples` states (64) drawn from per-expert buffers of the
     * last `diversity_buffer` (1000) pairs, hinge margin (0.1). */
    float diversity_coefficient;
    int32_t diversity_interval;
    int32_t diversity_samples;
    int32_t diversity_buffer;
    float diversity_margin;
    /* Optimiser steps per update (the batch split in order; 1) and passes over it (1). */
    int32_t mini_batches;
    int32_t epochs;
    /* Steps per forward/backward pass: bounds activation memory (32). Each pass runs as two
       halves of about equal tokens on two threads when OpenBLAS may use two. */
    int32_t chunk_steps;
    /* Seeds the trainer's own draws (the diversity states). Default 0. */
    uint64_t seed;
    /* A file each update's statistics are appended to as one JSON line; NULL for none
     * (default). */
    const char *metrics_path;
    /* The most steps the policy records before moragent_policy_step refuses more (65536). */
    size_t rollout_capacity;
    /* The router's learning rate as a multiple of `learning_rate` (1). The straight-through
     * gradient reinforces the expert a router already prefers, so a router trained as fast as
     * small experts can collapse onto one before they differ; 0.1 is a safer start there. */
    float router_learning_rate_scale;
    /* Non-zero: every forward keeps only each decoder layer's input and the backward recomputes
     * the layer's other activations from it: per layer and token, hidden_size floats are kept
     * instead of 2 * (hidden_size + (heads + kv_heads) * head_dim + intermediate_size), for about
     * one more forward per pass; the update is the same bit for bit. 0 keeps every activation.
     * Default 0. */
    int32_t recompute_activations;
} moragent_trainer_params;

/* (0.4) Fills `params` with the defaults documented on each field; struct_size is kept.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_ARGUMENT (`params` NULL, struct_size wrong).
 * Any thread. */
MORAGENT_API moragent_status moragent_trainer_params_default(moragent_trainer_params *params);

/* (0.4) Creates a trainer for `policy` (step or token routing; Mixture-of-Roles policies are
 * trained supervised). The trainer keeps its own reference to the policy; the caller may free
 * the policy handle, but every call on either is then serialised through the policy (one at a
 * time, MORAGENT_ERROR_BUSY otherwise). It trains the experts the policy holds, which are the
 * same experts as those of the moragent_experts handle the policy was made from: saving that
 * handle with moragent_experts_save_peft exports the trained experts.
 * `params`: read during the call; NULL means the defaults.
 * `out_trainer`: receives the trainer (caller-owned, moragent_trainer_free); NULL on failure.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT
 * (`out_trainer` NULL, struct_size wrong, a value out of range, a Mixture-of-Roles policy,
 * `metrics_path` not UTF-8); MORAGENT_ERROR_BUSY. Any thread. */
MORAGENT_API moragent_status moragent_trainer_create(moragent_policy *policy, const moragent_trainer_params *params,
                                                     moragent_trainer **out_trainer);

/* (0.4) Frees a trainer (not its policy). NULL is a no-op.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE (nothing is freed). Any thread, once no
 * other call on the trainer is running. */
MORAGENT_API moragent_status moragent_trainer_free(moragent_trainer *trainer);

/* (0.4) One update from every ended episode the policy recorded since the last update, then
 * releases them (their trace too: read moragent_policy_trace_jsonl before). The statistics are
 * kept for moragent_trainer_last_stats and appended to the metrics file when one was given.
 * `progress`, `user`: optional; called after every forward/backward pass with (passes done,
 * passes total); returning non-zero aborts with MORAGENT_ERROR_ABORTED.
 * A refused update changes no parameter and keeps the episodes (with several mini-batches, an
 * abort after the first optimiser step keeps the steps taken).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_ABORTED;
 * MORAGENT_ERROR_INVALID_ARGUMENT (no ended episode, a group with one episode for GRPO, RLOO or
 * GiGPO, a non-finite advantage or gradient); MORAGENT_ERROR_IO (the metrics file);
 * MORAGENT_ERROR_BUSY. The thread that owns the policy. */
MORAGENT_API moragent_status moragent_trainer_update(moragent_trainer *trainer, moragent_progress_fn progress, void *user);

/* (0.4) The last update's statistics as one JSON object ("{}" before the first update):
 * update, episodes, steps, tokens, success_rate, mean_return, mean_length,
 * switches_per_episode, expert_utilisation (hard share of steps per expert),
 * expert_probability (mean router probability per expert), expert_entropy_bits (mean sampling
 * entropy of each expert's action tokens, null for an unused expert), loss, policy_loss,
 * balance_loss, switch_loss, diversity_loss, value_loss, reference_kl, approx_kl,
 * clip_fraction, entropy, grad_norm, advantage_mean, advantage_std, temperature (the phase
 * router's during the rollouts, 0 without one), learning_rate, seconds.
 * Buffer convention as moragent_policy_trace_jsonl.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_BUFFER_TOO_SMALL; MORAGENT_ERROR_INVALID_HANDLE;
 * MORAGENT_ERROR_INVALID_ARGUMENT; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_trainer_last_stats(const moragent_trainer *trainer, char *buffer, size_t capacity,
                                                         size_t *out_length);

/* (0.4) Saves the trainer's whole state as a policy bundle folder at `path` (DESIGN.md §8):
 * manifest.json (format version, counters, RNG state), experts.safetensors, router.safetensors
 * (a phase router), trainer.safetensors (optimiser moments, token-router gates, value head),
 * samples.json (the diversity buffers). Written to a staging folder, fsynced, then swapped in
 * atomically: a crash at any moment leaves the previous bundle whole at `path`. One writer per
 * path at a time.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`path`
 * NULL or not UTF-8); MORAGENT_ERROR_IO; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_trainer_save(moragent_trainer *trainer, const char *path);

/* (0.4) Restores a bundle written by moragent_trainer_save into `trainer`, its policy's experts
 * and router. The trainer must have been created with the same settings over a policy of the
 * same shapes; then the next update equals the one the saved trainer would have made (given
 * the same episodes). Everything is checked before anything changes.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT;
 * MORAGENT_ERROR_IO (missing file); MORAGENT_ERROR_MALFORMED_FILE (a file that is not what it
 * should be, or saved for other experts, router or estimator; the message names it);
 * MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_trainer_load(moragent_trainer *trainer, const char *path);

/* (0.4) Writes expert `expert` of the trainer's policy as a PEFT adapter folder (atomically per
 * file), loadable by PEFT and by moragent_experts_load_peft.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`expert`
 * out of range, `folder` NULL or not UTF-8); MORAGENT_ERROR_IO; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_trainer_export_expert(moragent_trainer *trainer, size_t expert, const char *folder);

/* ---- Supervised training of Mixture-of-Roles (0.4) -----------------------------------------
 * The batch-level form of `moragent train sft`: the host feeds batches of role-annotated
 * conversations (JSON lines, the format of examples/sft/train.jsonl: system prompt, user, tool
 * and assistant turns, each assistant segment labelled reasoner, executor or summarizer) and
 * gets one AdamW step per batch (cross-entropy on the assistant tokens, the role gate taken from
 * the labels, + 1e-3 load balancing + 1e-4 orthogonality by default). */

/* (0.4) A Mixture-of-Roles SFT trainer: a fresh mixture of role-grouped LoRAs on an engine. */
typedef struct moragent_sft_trainer moragent_sft_trainer;

/* (0.4) Creates a trainer on `engine` (kept alive by the trainer) from a JSON object with the
 * keys of `moragent train sft` configurations, all optional here: epochs and batch_size are
 * ignored (the host batches), max_length (512), learning_rate (5e-5), weight_decay, warmup_steps,
 * schedule ("constant" | "linear" | "cosine"), planned_steps (steps the schedule spans; default
 * 1), clip_norm (1), seed, routed_counts ([4,4,3]), top_k ([3,3,2]), rank (16), scale (1),
 * shared_gate, target_modules, load_balancing_coefficient (1e-3), orthogonality_coefficient
 * (1e-4), recompute_activations (false; true keeps only each layer's input for the backward,
 * which recomputes the rest: less memory, about one more forward per step, the same update).
 * Unknown keys are errors. `config_json`: NUL-terminated UTF-8 (NULL: "{}").
 * `out_trainer`: receives the trainer (caller-owned, moragent_sft_trainer_free).
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (NULL
 * out pointer, an engine without tokenizer.json, values out of range);
 * MORAGENT_ERROR_MALFORMED_FILE (`config_json` not a JSON object, an unknown key or a bad value;
 * the message names it). Any thread. */
MORAGENT_API moragent_status moragent_sft_trainer_create(const moragent_engine *engine, const char *config_json,
                                                         moragent_sft_trainer **out_trainer);

/* (0.4) Frees a trainer. NULL is a no-op. Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE.
 * Any thread, once no other call on it is running. */
MORAGENT_API moragent_status moragent_sft_trainer_free(moragent_sft_trainer *trainer);

/* (0.4) One AdamW step on `batch_jsonl` (one conversation per line, blank lines skipped). The
 * step's statistics are kept for moragent_sft_trainer_last_stats. A refused step changes nothing.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (NULL or
 * non-UTF-8 text, an empty batch, a batch without assistant tokens, non-finite gradients);
 * MORAGENT_ERROR_MALFORMED_FILE (a line that is not a conversation: the message names the line);
 * MORAGENT_ERROR_BUSY. One call at a time per trainer, from any thread. */
MORAGENT_API moragent_status moragent_sft_trainer_step(moragent_sft_trainer *trainer, const char *batch_jsonl);

/* (0.4) The mean cross-entropy per assistant token of `jsonl` under the current mixture (no
 * update), into `*out_cross_entropy`. Returns as moragent_sft_trainer_step. */
MORAGENT_API moragent_status moragent_sft_trainer_evaluate(moragent_sft_trainer *trainer, const char *jsonl,
                                                           double *out_cross_entropy);

/* (0.4) The last step's statistics as one JSON object ("{}" before the first step): step, loss,
 * cross_entropy, load_balancing, orthogonality, grad_norm, lr (the learning rate used), tokens. Buffer
 * convention as moragent_policy_trace_jsonl.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_BUFFER_TOO_SMALL; MORAGENT_ERROR_INVALID_HANDLE;
 * MORAGENT_ERROR_INVALID_ARGUMENT; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_sft_trainer_last_stats(const moragent_sft_trainer *trainer, char *buffer,
                                                             size_t capacity, size_t *out_length);

/* (0.4) Writes the mixture (one safetensors file, atomically): moragent_router_roles_load reads it
 * into a Mixture-of-Roles router for a policy.
 * Returns: MORAGENT_OK; MORAGENT_ERROR_INVALID_HANDLE; MORAGENT_ERROR_INVALID_ARGUMENT (`path`
 * NULL or not UTF-8); MORAGENT_ERROR_IO; MORAGENT_ERROR_BUSY. */
MORAGENT_API moragent_status moragent_sft_trainer_save(moragent_sft_trainer *trainer, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* MORAGENT_H */
