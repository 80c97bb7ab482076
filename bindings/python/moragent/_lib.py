"""Raw ctypes bindings, one per declaration of ``include/moragent.h``, in the header's order.

Each binding repeats its C declaration in a comment, so the two can be compared line by line.
Nothing here checks arguments or turns statuses into exceptions: that is ``_handles`` and the
package's job. Loading the library happens at import; see ``load_library``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Optional

# ---- loading ---------------------------------------------------------------------------------

LIBRARY_FILE = "libmoragent.so"


def openblas_core_type(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[str]:
    """The OpenBLAS kernel family this CPU should run, judged from its flags, or None.

    Debian's OpenBLAS 0.3.21 picks kernels from the CPU model number and falls back to the
    generic SSE3 ``Prescott`` ones on CPUs newer than itself (measured 2.5x slower than
    ``SkylakeX`` on an AVX-512 Xeon). ``OPENBLAS_CORETYPE`` overrides the choice, but OpenBLAS
    reads it only when it is loaded, so it must be set before ``libmoragent.so`` (which pulls
    OpenBLAS in) is.
    """
    try:
        with open(cpuinfo_path, encoding="ascii", errors="replace") as f:
            flags_line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return None
    flags = set(flags_line.split(":", 1)[-1].split())
    if {"avx512f", "avx512bw", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def library_candidates() -> list:
    """Where the library is looked for: ``$MORAGENT_LIBRARY`` alone when it is set (the file
    itself or the folder holding it: an explicit choice must not fall back to another copy),
    else the package folder, then the system loader's search."""
    configured = os.environ.get("MORAGENT_LIBRARY")
    if configured:
        return [os.path.join(configured, LIBRARY_FILE) if os.path.isdir(configured) else configured]
    candidates = []
    packaged = os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_FILE)
    if os.path.exists(packaged):
        candidates.append(packaged)
    system = ctypes.util.find_library("moragent")
    if system:
        candidates.append(system)
    return candidates


def load_library() -> ctypes.CDLL:
    """Sets ``OPENBLAS_CORETYPE`` if unset, loads the first library found, and checks that its
    major version is the one these bindings were written for."""
    if "OPENBLAS_CORETYPE" not in os.environ:
        core = openblas_core_type()
        if core:
            os.environ["OPENBLAS_CORETYPE"] = core
    candidates = library_candidates()
    if not candidates:
        raise ImportError("moragent: libmoragent.so not found; set MORAGENT_LIBRARY to its path, copy it into "
                          f"{os.path.dirname(os.path.abspath(__file__))}, or install it where the system loader looks")
    errors = []
    for path in candidates:
        try:
            library = ctypes.CDLL(path)
            break
        except OSError as error:
            errors.append(f"{path}: {error}")
    else:
        raise ImportError("moragent: could not load libmoragent.so: " + "; ".join(errors))
    library.moragent_version_number.restype = c_int32
    library.moragent_version_number.argtypes = []
    number = library.moragent_version_number()
    if number // 1_000_000 != MORAGENT_VERSION_MAJOR:
        raise ImportError(f"moragent: {path} is version {number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}, "
                          f"these bindings need major version {MORAGENT_VERSION_MAJOR}")
    return library


# ---- Version ---------------------------------------------------------------------------------

# #define MORAGENT_VERSION_MAJOR 0 / MINOR 4 / PATCH 0
MORAGENT_VERSION_MAJOR = 0
MORAGENT_VERSION_MINOR = 4
MORAGENT_VERSION_PATCH = 0
MORAGENT_VERSION = "0.4.0"
MORAGENT_VERSION_NUMBER = MORAGENT_VERSION_MAJOR * 1000000 + MORAGENT_VERSION_MINOR * 1000 + MORAGENT_VERSION_PATCH

lib = load_library()


def _bind(name: str, argtypes: list, restype):
    function = getattr(lib, name)
    function.argtypes = argtypes
    function.restype = restype
    return function


# const char *moragent_version(void);
moragent_version = _bind("moragent_version", [], c_char_p)

# int32_t moragent_version_number(void);
moragent_version_number = _bind("moragent_version_number", [], c_int32)

# ---- Errors ----------------------------------------------------------------------------------

# typedef enum moragent_status { ... } moragent_status;
moragent_status = c_int
MORAGENT_OK = 0
MORAGENT_ERROR_INVALID_ARGUMENT = -1
MORAGENT_ERROR_INVALID_HANDLE = -2
MORAGENT_ERROR_IO = -3
MORAGENT_ERROR_MALFORMED_FILE = -4
MORAGENT_ERROR_UNSUPPORTED = -5
MORAGENT_ERROR_BUFFER_TOO_SMALL = -6
MORAGENT_ERROR_ABORTED = -7
MORAGENT_ERROR_INTERNAL = -8
MORAGENT_ERROR_CALLBACK = -9
MORAGENT_ERROR_BUSY = -10

# const char *moragent_status_string(moragent_status status);
moragent_status_string = _bind("moragent_status_string", [moragent_status], c_char_p)

# const char *moragent_last_error(void);
moragent_last_error = _bind("moragent_last_error", [], c_char_p)

# ---- Logging ---------------------------------------------------------------------------------

# typedef enum moragent_log_level { DEBUG = 0, INFO = 1, WARNING = 2, ERROR = 3 } moragent_log_level;
moragent_log_level = c_int
MORAGENT_LOG_LEVEL_DEBUG = 0
MORAGENT_LOG_LEVEL_INFO = 1
MORAGENT_LOG_LEVEL_WARNING = 2
MORAGENT_LOG_LEVEL_ERROR = 3

# typedef void (*moragent_log_fn)(moragent_log_level level, const char *message, void *user);
moragent_log_fn = CFUNCTYPE(None, moragent_log_level, c_char_p, c_void_p)

# void moragent_set_log_callback(moragent_log_fn callback, void *user);
moragent_set_log_callback = _bind("moragent_set_log_callback", [moragent_log_fn, c_void_p], None)

# ---- Memory: the buffer cache ----------------------------------------------------------------

# void moragent_buffer_cache_set_limit(uint64_t bytes);
moragent_buffer_cache_set_limit = _bind("moragent_buffer_cache_set_limit", [c_uint64], None)
# uint64_t moragent_buffer_cache_kept_bytes(void);
moragent_buffer_cache_kept_bytes = _bind("moragent_buffer_cache_kept_bytes", [], c_uint64)

# ---- Engine ----------------------------------------------------------------------------------

# typedef struct moragent_engine moragent_engine;   (handled as an opaque address)
moragent_engine_p = c_void_p


# typedef struct moragent_engine_info {
#     size_t struct_size; const char *architecture; size_t vocabulary_size;
#     size_t tokenizer_vocabulary_size; size_t hidden_size; size_t layer_count;
#     size_t max_position_embeddings; uint64_t parameter_count;
# } moragent_engine_info;
class moragent_engine_info(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("architecture", c_char_p),
        ("vocabulary_size", c_size_t),
        ("tokenizer_vocabulary_size", c_size_t),
        ("hidden_size", c_size_t),
        ("layer_count", c_size_t),
        ("max_position_embeddings", c_size_t),
        ("parameter_count", c_uint64),
    ]


# moragent_status moragent_engine_load(const char *model_dir, moragent_engine **out_engine);
moragent_engine_load = _bind("moragent_engine_load", [c_char_p, POINTER(moragent_engine_p)], moragent_status)

# moragent_status moragent_engine_free(moragent_engine *engine);
moragent_engine_free = _bind("moragent_engine_free", [moragent_engine_p], moragent_status)

# moragent_status moragent_engine_get_info(const moragent_engine *engine, moragent_engine_info *info);
moragent_engine_get_info = _bind("moragent_engine_get_info", [moragent_engine_p, POINTER(moragent_engine_info)],
                                 moragent_status)

# ---- Tokenization ----------------------------------------------------------------------------

# moragent_status moragent_tokenize(const moragent_engine *engine, const char *text, size_t text_len,
#                                   int32_t *ids, size_t capacity, size_t *out_count);
moragent_tokenize = _bind("moragent_tokenize",
                          [moragent_engine_p, c_char_p, c_size_t, POINTER(c_int32), c_size_t, POINTER(c_size_t)],
                          moragent_status)

# moragent_status moragent_detokenize(const moragent_engine *engine, const int32_t *ids, size_t id_count,
#                                     char *text, size_t capacity, size_t *out_length);
moragent_detokenize = _bind("moragent_detokenize",
                            [moragent_engine_p, POINTER(c_int32), c_size_t, POINTER(c_char), c_size_t,
                             POINTER(c_size_t)],
                            moragent_status)

# ---- Generation ------------------------------------------------------------------------------

# typedef struct moragent_generation moragent_generation;   (handled as an opaque address)
moragent_generation_p = c_void_p

# typedef enum moragent_stop_reason { MAX_NEW_TOKENS = 0, STOP_TOKEN = 1, STOP_STRING = 2 } moragent_stop_reason;
moragent_stop_reason = c_int
MORAGENT_STOP_REASON_MAX_NEW_TOKENS = 0
MORAGENT_STOP_REASON_STOP_TOKEN = 1
MORAGENT_STOP_REASON_STOP_STRING = 2


# typedef struct moragent_generation_params {
#     size_t struct_size; float temperature; float top_p; size_t top_k; uint64_t seed;
#     size_t max_new_tokens; const char *const *stop_strings; size_t stop_string_count;
#     const int32_t *stop_token_ids; size_t stop_token_count; int32_t ignore_eos;
# } moragent_generation_params;
class moragent_generation_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("temperature", c_float),
        ("top_p", c_float),
        ("top_k", c_size_t),
        ("seed", c_uint64),
        ("max_new_tokens", c_size_t),
        ("stop_strings", POINTER(c_char_p)),
        ("stop_string_count", c_size_t),
        ("stop_token_ids", POINTER(c_int32)),
        ("stop_token_count", c_size_t),
        ("ignore_eos", c_int32),
    ]


# moragent_status moragent_generation_params_default(moragent_generation_params *params);
moragent_generation_params_default = _bind("moragent_generation_params_default",
                                           [POINTER(moragent_generation_params)], moragent_status)

# typedef int (*moragent_progress_fn)(size_t tokens_done, size_t tokens_total, void *user);
moragent_progress_fn = CFUNCTYPE(c_int, c_size_t, c_size_t, c_void_p)

# moragent_status moragent_generate(const moragent_engine *engine, const int32_t *prompt, size_t prompt_len,
#                                   const moragent_generation_params *params,
#                                   moragent_progress_fn progress, void *user,
#                                   moragent_generation **out_generation);
moragent_generate = _bind("moragent_generate",
                          [moragent_engine_p, POINTER(c_int32), c_size_t, POINTER(moragent_generation_params),
                           moragent_progress_fn, c_void_p, POINTER(moragent_generation_p)],
                          moragent_status)

# moragent_status moragent_generation_free(moragent_generation *generation);
moragent_generation_free = _bind("moragent_generation_free", [moragent_generation_p], moragent_status)

# moragent_status moragent_generation_token_count(const moragent_generation *generation, size_t *out_count);
moragent_generation_token_count = _bind("moragent_generation_token_count",
                                        [moragent_generation_p, POINTER(c_size_t)], moragent_status)

# moragent_status moragent_generation_ids(const moragent_generation *generation, const int32_t **out_ids);
moragent_generation_ids = _bind("moragent_generation_ids",
                                [moragent_generation_p, POINTER(POINTER(c_int32))], moragent_status)

# moragent_status moragent_generation_logprobs(const moragent_generation *generation, const float **out_logprobs);
moragent_generation_logprobs = _bind("moragent_generation_logprobs",
                                     [moragent_generation_p, POINTER(POINTER(c_float))], moragent_status)

# moragent_status moragent_generation_entropies(const moragent_generation *generation, const float **out_entropies);
moragent_generation_entropies = _bind("moragent_generation_entropies",
                                      [moragent_generation_p, POINTER(POINTER(c_float))], moragent_status)

# moragent_status moragent_generation_text(const moragent_generation *generation, const char **out_text,
#                                          size_t *out_length);
moragent_generation_text = _bind("moragent_generation_text",
                                 [moragent_generation_p, POINTER(POINTER(c_char)), POINTER(c_size_t)],
                                 moragent_status)

# moragent_status moragent_generation_stop_reason(const moragent_generation *generation,
#                                                 moragent_stop_reason *out_reason);
moragent_generation_stop_reason = _bind("moragent_generation_stop_reason",
                                        [moragent_generation_p, POINTER(moragent_stop_reason)], moragent_status)

# ---- Expert sets (0.2) -----------------------------------------------------------------------

# typedef struct moragent_experts moragent_experts;   (handled as an opaque address)
moragent_experts_p = c_void_p

# typedef enum moragent_module { Q = 1 << 0, K = 1 << 1, V = 1 << 2, O = 1 << 3, GATE = 1 << 4, UP = 1 << 5,
#                                DOWN = 1 << 6 } moragent_module;
moragent_module = c_int
MORAGENT_MODULE_Q = 1 << 0
MORAGENT_MODULE_K = 1 << 1
MORAGENT_MODULE_V = 1 << 2
MORAGENT_MODULE_O = 1 << 3
MORAGENT_MODULE_GATE = 1 << 4
MORAGENT_MODULE_UP = 1 << 5
MORAGENT_MODULE_DOWN = 1 << 6


# typedef struct moragent_lora_params {
#     size_t struct_size; size_t rank; float alpha; int32_t use_rslora; uint32_t target_modules;
# } moragent_lora_params;
class moragent_lora_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("rank", c_size_t),
        ("alpha", c_float),
        ("use_rslora", c_int32),
        ("target_modules", c_uint32),
    ]


# moragent_status moragent_lora_params_default(moragent_lora_params *params);
moragent_lora_params_default = _bind("moragent_lora_params_default", [POINTER(moragent_lora_params)], moragent_status)

# moragent_status moragent_experts_create(const moragent_engine *engine, size_t count,
#                                         const moragent_lora_params *params, uint64_t seed,
#                                         moragent_experts **out_experts);
moragent_experts_create = _bind("moragent_experts_create",
                                [moragent_engine_p, c_size_t, POINTER(moragent_lora_params), c_uint64,
                                 POINTER(moragent_experts_p)], moragent_status)

# moragent_status moragent_experts_free(moragent_experts *experts);
moragent_experts_free = _bind("moragent_experts_free", [moragent_experts_p], moragent_status)

# moragent_status moragent_experts_count(const moragent_experts *experts, size_t *out_count);
moragent_experts_count = _bind("moragent_experts_count", [moragent_experts_p, POINTER(c_size_t)], moragent_status)

# moragent_status moragent_experts_load_peft(moragent_experts *experts, const char *dir);
moragent_experts_load_peft = _bind("moragent_experts_load_peft", [moragent_experts_p, c_char_p], moragent_status)

# moragent_status moragent_experts_save_peft(const moragent_experts *experts, size_t index, const char *dir);
moragent_experts_save_peft = _bind("moragent_experts_save_peft", [moragent_experts_p, c_size_t, c_char_p],
                                   moragent_status)

# ---- Routers (0.2) ---------------------------------------------------------------------------

# typedef struct moragent_router moragent_router;   (handled as an opaque address)
moragent_router_p = c_void_p


# typedef struct moragent_step_features {
#     size_t struct_size; int64_t episode; size_t step; const char *observation; const char *goal;
#     size_t history_count;
# } moragent_step_features;
class moragent_step_features(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("episode", c_int64),
        ("step", c_size_t),
        ("observation", c_char_p),
        ("goal", c_char_p),
        ("history_count", c_size_t),
    ]


# typedef int (*moragent_router_fn)(const moragent_step_features *features, float *weights_out, size_t expert_count,
#                                   void *user);
moragent_router_fn = CFUNCTYPE(c_int, POINTER(moragent_step_features), POINTER(c_float), c_size_t, c_void_p)

# moragent_status moragent_router_create_fixed(size_t expert_count, int32_t expert, moragent_router **out_router);
moragent_router_create_fixed = _bind("moragent_router_create_fixed", [c_size_t, c_int32, POINTER(moragent_router_p)],
                                     moragent_status)


# typedef struct moragent_phase_router_params {
#     size_t struct_size; size_t expert_count; size_t attention_dim; size_t attention_heads; size_t lstm_hidden;
#     size_t lstm_layers; size_t history_length; size_t mlp_hidden; int32_t pooled_goal;
#     float initial_temperature; float final_temperature; size_t anneal_updates;
# } moragent_phase_router_params;
class moragent_phase_router_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("expert_count", c_size_t),
        ("attention_dim", c_size_t),
        ("attention_heads", c_size_t),
        ("lstm_hidden", c_size_t),
        ("lstm_layers", c_size_t),
        ("history_length", c_size_t),
        ("mlp_hidden", c_size_t),
        ("pooled_goal", c_int32),
        ("initial_temperature", c_float),
        ("final_temperature", c_float),
        ("anneal_updates", c_size_t),
    ]


# moragent_status moragent_phase_router_params_default(moragent_phase_router_params *params);
moragent_phase_router_params_default = _bind("moragent_phase_router_params_default",
                                             [POINTER(moragent_phase_router_params)], moragent_status)

# moragent_status moragent_router_create_phase(size_t model_hidden_size,
#                                              const moragent_phase_router_params *params, uint64_t seed,
#                                              moragent_router **out_router);
moragent_router_create_phase = _bind("moragent_router_create_phase",
                                     [c_size_t, POINTER(moragent_phase_router_params), c_uint64,
                                      POINTER(moragent_router_p)], moragent_status)

# moragent_status moragent_router_phase_save(const moragent_router *router, const char *path);
moragent_router_phase_save = _bind("moragent_router_phase_save", [moragent_router_p, c_char_p], moragent_status)

# moragent_status moragent_router_phase_load(const char *path, moragent_router **out_router);
moragent_router_phase_load = _bind("moragent_router_phase_load", [c_char_p, POINTER(moragent_router_p)],
                                   moragent_status)

# moragent_status moragent_router_create_trajectory(moragent_router *inner, moragent_router **out_router);
moragent_router_create_trajectory = _bind("moragent_router_create_trajectory",
                                          [moragent_router_p, POINTER(moragent_router_p)], moragent_status)

# moragent_status moragent_router_create_callback(size_t expert_count, moragent_router_fn fn, void *user,
#                                                 moragent_router **out_router);
moragent_router_create_callback = _bind("moragent_router_create_callback",
                                        [c_size_t, moragent_router_fn, c_void_p, POINTER(moragent_router_p)],
                                        moragent_status)

# moragent_status moragent_router_free(moragent_router *router);
moragent_router_free = _bind("moragent_router_free", [moragent_router_p], moragent_status)

# moragent_status moragent_router_expert_count(const moragent_router *router, size_t *out_count);
moragent_router_expert_count = _bind("moragent_router_expert_count", [moragent_router_p, POINTER(c_size_t)],
                                     moragent_status)

# ---- Router plugins (0.2) --------------------------------------------------------------------

# #define MORAGENT_PLUGIN_API_VERSION 1
MORAGENT_PLUGIN_API_VERSION = 1
# #define MORAGENT_PLUGIN_ENTRY_POINT "moragent_plugin_register"
MORAGENT_PLUGIN_ENTRY_POINT = b"moragent_plugin_register"


# typedef struct moragent_router_kind {
#     size_t struct_size; uint32_t api_version; const char *name;
#     void *(*create)(const char *config_json, size_t expert_count, char *error, size_t error_capacity);
#     int (*decide)(void *state, const moragent_step_features *features, float *weights, size_t expert_count);
#     void (*end_episode)(void *state, int64_t episode);
#     void (*destroy)(void *state);
# } moragent_router_kind;
# (Plugins are shared objects written in C; like every declaration, these are mirrored 1:1.)
class moragent_router_kind(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("api_version", c_uint32),
        ("name", c_char_p),
        ("create", CFUNCTYPE(c_void_p, c_char_p, c_size_t, POINTER(c_char), c_size_t)),
        ("decide", CFUNCTYPE(c_int, c_void_p, POINTER(moragent_step_features), POINTER(c_float), c_size_t)),
        ("end_episode", CFUNCTYPE(None, c_void_p, c_int64)),
        ("destroy", CFUNCTYPE(None, c_void_p)),
    ]


# struct moragent_plugin_registrar {
#     size_t struct_size; uint32_t api_version;
#     int (*register_router)(moragent_plugin_registrar *registrar, const moragent_router_kind *kind);
# };
class moragent_plugin_registrar(Structure):
    pass


moragent_plugin_registrar._fields_ = [
    ("struct_size", c_size_t),
    ("api_version", c_uint32),
    ("register_router", CFUNCTYPE(c_int, POINTER(moragent_plugin_registrar), POINTER(moragent_router_kind))),
]

# int moragent_plugin_register(moragent_plugin_registrar *registrar);   (defined by plugins, not the library)

# moragent_status moragent_plugin_load(const char *path);
moragent_plugin_load = _bind("moragent_plugin_load", [c_char_p], moragent_status)

# moragent_status moragent_router_create_kind(const char *name, const char *config_json,
#                                             size_t expert_count, moragent_router **out_router);
moragent_router_create_kind = _bind("moragent_router_create_kind",
                                    [c_char_p, c_char_p, c_size_t, POINTER(moragent_router_p)], moragent_status)

# ---- Policies (0.2) --------------------------------------------------------------------------

# typedef struct moragent_policy moragent_policy;   (handled as an opaque address)
moragent_policy_p = c_void_p
# typedef struct moragent_step_result moragent_step_result;   (handled as an opaque address)
moragent_step_result_p = c_void_p


# typedef struct moragent_policy_params {
#     size_t struct_size; const moragent_generation_params *sampling; const char *first_step_template;
#     const char *later_step_template; const char *history_entry_template; size_t history_length;
#     int32_t chatml;
# } moragent_policy_params;
class moragent_policy_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("sampling", POINTER(moragent_generation_params)),
        ("first_step_template", c_char_p),
        ("later_step_template", c_char_p),
        ("history_entry_template", c_char_p),
        ("history_length", c_size_t),
        ("chatml", c_int32),
    ]


# moragent_status moragent_policy_params_default(moragent_policy_params *params);
moragent_policy_params_default = _bind("moragent_policy_params_default", [POINTER(moragent_policy_params)],
                                       moragent_status)

# moragent_status moragent_policy_create(const moragent_engine *engine, const moragent_experts *experts,
#                                        moragent_router *router, const moragent_policy_params *params,
#                                        moragent_policy **out_policy);
moragent_policy_create = _bind("moragent_policy_create",
                               [moragent_engine_p, moragent_experts_p, moragent_router_p,
                                POINTER(moragent_policy_params), POINTER(moragent_policy_p)], moragent_status)

# moragent_status moragent_policy_free(moragent_policy *policy);
moragent_policy_free = _bind("moragent_policy_free", [moragent_policy_p], moragent_status)

# moragent_status moragent_policy_step(moragent_policy *policy, int64_t episode, const char *observation,
#                                      const char *goal, moragent_step_result **out_result);
moragent_policy_step = _bind("moragent_policy_step",
                             [moragent_policy_p, c_int64, c_char_p, c_char_p, POINTER(moragent_step_result_p)],
                             moragent_status)

# moragent_status moragent_policy_step_batch(moragent_policy *policy, size_t count, const int64_t *episodes,
#                                            const char *const *observations, const char *const *goals,
#                                            moragent_step_result **out_results);
moragent_policy_step_batch = _bind("moragent_policy_step_batch",
                                   [moragent_policy_p, c_size_t, POINTER(c_int64), POINTER(c_char_p), POINTER(c_char_p),
                                    POINTER(moragent_step_result_p)], moragent_status)

# moragent_status moragent_policy_end_episode(moragent_policy *policy, int64_t episode, double reward,
#                                             int32_t success);
moragent_policy_end_episode = _bind("moragent_policy_end_episode", [moragent_policy_p, c_int64, c_double, c_int32],
                                    moragent_status)

# moragent_status moragent_policy_trace_jsonl(const moragent_policy *policy, char *buffer, size_t capacity,
#                                             size_t *out_length);
moragent_policy_trace_jsonl = _bind("moragent_policy_trace_jsonl",
                                    [moragent_policy_p, POINTER(c_char), c_size_t, POINTER(c_size_t)],
                                    moragent_status)

# moragent_status moragent_policy_clear_ended(moragent_policy *policy);
moragent_policy_clear_ended = _bind("moragent_policy_clear_ended", [moragent_policy_p], moragent_status)

# moragent_status moragent_step_result_free(moragent_step_result *result);
moragent_step_result_free = _bind("moragent_step_result_free", [moragent_step_result_p], moragent_status)

# moragent_status moragent_step_result_action(const moragent_step_result *result, const char **out_text,
#                                             size_t *out_length);
moragent_step_result_action = _bind("moragent_step_result_action",
                                    [moragent_step_result_p, POINTER(POINTER(c_char)), POINTER(c_size_t)],
                                    moragent_status)

# moragent_status moragent_step_result_response(const moragent_step_result *result, const char **out_text,
#                                               size_t *out_length);
moragent_step_result_response = _bind("moragent_step_result_response",
                                      [moragent_step_result_p, POINTER(POINTER(c_char)), POINTER(c_size_t)],
                                      moragent_status)

# moragent_status moragent_step_result_action_valid(const moragent_step_result *result, int32_t *out_valid);
moragent_step_result_action_valid = _bind("moragent_step_result_action_valid",
                                          [moragent_step_result_p, POINTER(c_int32)], moragent_status)

# moragent_status moragent_step_result_ids(const moragent_step_result *result, const int32_t **out_ids,
#                                          size_t *out_count);
moragent_step_result_ids = _bind("moragent_step_result_ids",
                                 [moragent_step_result_p, POINTER(POINTER(c_int32)), POINTER(c_size_t)],
                                 moragent_status)

# moragent_status moragent_step_result_logprobs(const moragent_step_result *result, const float **out_logprobs,
#                                               size_t *out_count);
moragent_step_result_logprobs = _bind("moragent_step_result_logprobs",
                                      [moragent_step_result_p, POINTER(POINTER(c_float)), POINTER(c_size_t)],
                                      moragent_status)

# moragent_status moragent_step_result_prompt_ids(const moragent_step_result *result, const int32_t **out_ids,
#                                                 size_t *out_count);
moragent_step_result_prompt_ids = _bind("moragent_step_result_prompt_ids",
                                        [moragent_step_result_p, POINTER(POINTER(c_int32)), POINTER(c_size_t)],
                                        moragent_status)

# moragent_status moragent_step_result_expert(const moragent_step_result *result, int32_t *out_expert);
moragent_step_result_expert = _bind("moragent_step_result_expert", [moragent_step_result_p, POINTER(c_int32)],
                                    moragent_status)

# moragent_status moragent_step_result_probabilities(const moragent_step_result *result,
#                                                    const float **out_probabilities, size_t *out_count);
moragent_step_result_probabilities = _bind("moragent_step_result_probabilities",
                                           [moragent_step_result_p, POINTER(POINTER(c_float)), POINTER(c_size_t)],
                                           moragent_status)

# moragent_status moragent_step_result_timing(const moragent_step_result *result, double *out_routing_seconds,
#                                             double *out_generation_seconds);
moragent_step_result_timing = _bind("moragent_step_result_timing",
                                    [moragent_step_result_p, POINTER(c_double), POINTER(c_double)], moragent_status)

# ---- 0.3: token and Mixture-of-Roles routers ------------------------------------------------

# moragent_status moragent_router_create_token(const moragent_experts *experts, size_t top_k, int32_t per_layer,
#                                              uint64_t seed, moragent_router **out_router);
moragent_router_create_token = _bind("moragent_router_create_token",
                                     [moragent_experts_p, c_size_t, c_int32, c_uint64, POINTER(moragent_router_p)],
                                     moragent_status)

# typedef enum moragent_role { ... } moragent_role;
MORAGENT_ROLE_REASONER = 0
MORAGENT_ROLE_EXECUTOR = 1
MORAGENT_ROLE_SUMMARIZER = 2


# typedef struct moragent_mor_params { ... } moragent_mor_params;
class moragent_mor_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("routed_counts", c_size_t * 3),
        ("top_k", c_size_t * 3),
        ("rank", c_size_t),
        ("scale", c_float),
        ("shared_gate", c_int32),
        ("target_modules", c_uint32),
    ]


# moragent_status moragent_mor_params_default(moragent_mor_params *params);
moragent_mor_params_default = _bind("moragent_mor_params_default", [POINTER(moragent_mor_params)], moragent_status)

# moragent_status moragent_router_create_roles(const moragent_engine *engine, const moragent_mor_params *params,
#                                              uint64_t seed, moragent_router **out_router);
moragent_router_create_roles = _bind("moragent_router_create_roles",
                                     [moragent_engine_p, POINTER(moragent_mor_params), c_uint64,
                                      POINTER(moragent_router_p)], moragent_status)

# moragent_status moragent_router_roles_save(const moragent_router *router, const char *path);
moragent_router_roles_save = _bind("moragent_router_roles_save", [moragent_router_p, c_char_p], moragent_status)

# moragent_status moragent_router_roles_load(const moragent_engine *engine, const char *path,
#                                            moragent_router **out_router);
moragent_router_roles_load = _bind("moragent_router_roles_load", [moragent_engine_p, c_char_p, POINTER(moragent_router_p)],
                                   moragent_status)

# moragent_status moragent_step_result_roles(const moragent_step_result *result, const int32_t **out_roles,
#                                            size_t *out_count);
moragent_step_result_roles = _bind("moragent_step_result_roles",
                                   [moragent_step_result_p, POINTER(POINTER(c_int32)), POINTER(c_size_t)], moragent_status)

# moragent_status moragent_step_result_token_experts(const moragent_step_result *result, const int32_t **out_experts,
#                                                    size_t *out_count, size_t *out_per_token);
moragent_step_result_token_experts = _bind("moragent_step_result_token_experts",
                                           [moragent_step_result_p, POINTER(POINTER(c_int32)), POINTER(c_size_t),
                                            POINTER(c_size_t)], moragent_status)

# ---- Reinforcement learning (0.4) ------------------------------------------------------------

# moragent_status moragent_policy_begin_episode(moragent_policy *policy, int64_t episode, int64_t group);
moragent_policy_begin_episode = _bind("moragent_policy_begin_episode", [moragent_policy_p, c_int64, c_int64], moragent_status)

# moragent_status moragent_policy_step_reward(moragent_policy *policy, int64_t episode, double reward);
moragent_policy_step_reward = _bind("moragent_policy_step_reward", [moragent_policy_p, c_int64, c_double], moragent_status)

# moragent_status moragent_policy_recorded_steps(const moragent_policy *policy, size_t *out_steps);
moragent_policy_recorded_steps = _bind("moragent_policy_recorded_steps", [moragent_policy_p, POINTER(c_size_t)], moragent_status)

# typedef struct moragent_trainer moragent_trainer;   (handled as an opaque address)
moragent_trainer_p = c_void_p

# typedef enum moragent_advantage { GRPO = 0, RLOO = 1, GIGPO = 2, PPO = 3 } moragent_advantage;
MORAGENT_ADVANTAGE_GRPO, MORAGENT_ADVANTAGE_RLOO, MORAGENT_ADVANTAGE_GIGPO, MORAGENT_ADVANTAGE_PPO = 0, 1, 2, 3


# typedef struct moragent_trainer_params { ... } moragent_trainer_params;   (fields in header order)
class moragent_trainer_params(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("advantage", c_int32),
        ("normalize_by_std", c_int32),
        ("per_trajectory_statistics", c_int32),
        ("gamma", c_double),
        ("gae_lambda", c_double),
        ("step_weight", c_double),
        ("similarity_threshold", c_double),
        ("invalid_action_penalty", c_double),
        ("learning_rate", c_float),
        ("weight_decay", c_float),
        ("max_grad_norm", c_float),
        ("warmup_updates", c_int32),
        ("total_updates", c_int32),
        ("cosine", c_int32),
        ("clip_low", c_float),
        ("clip_high", c_float),
        ("dual_clip", c_float),
        ("sequence_mean", c_int32),
        ("kl_coefficient", c_float),
        ("train_router", c_int32),
        ("balance_coefficient", c_float),
        ("switch_coefficient", c_float),
        ("switch_lambda", c_float),
        ("diversity_coefficient", c_float),
        ("diversity_interval", c_int32),
        ("diversity_samples", c_int32),
        ("diversity_buffer", c_int32),
        ("diversity_margin", c_float),
        ("mini_batches", c_int32),
        ("epochs", c_int32),
        ("chunk_steps", c_int32),
        ("seed", c_uint64),
        ("metrics_path", c_char_p),
        ("rollout_capacity", c_size_t),
        ("router_learning_rate_scale", c_float),
        ("recompute_activations", c_int32),
    ]


# moragent_status moragent_trainer_params_default(moragent_trainer_params *params);
moragent_trainer_params_default = _bind("moragent_trainer_params_default", [POINTER(moragent_trainer_params)], moragent_status)

# moragent_status moragent_trainer_create(moragent_policy *policy, const moragent_trainer_params *params,
#                                         moragent_trainer **out_trainer);
moragent_trainer_create = _bind("moragent_trainer_create",
                                [moragent_policy_p, POINTER(moragent_trainer_params), POINTER(moragent_trainer_p)],
                                moragent_status)

# moragent_status moragent_trainer_free(moragent_trainer *trainer);
moragent_trainer_free = _bind("moragent_trainer_free", [moragent_trainer_p], moragent_status)

# moragent_status moragent_trainer_update(moragent_trainer *trainer, moragent_progress_fn progress, void *user);
moragent_trainer_update = _bind("moragent_trainer_update", [moragent_trainer_p, moragent_progress_fn, c_void_p], moragent_status)

# moragent_status moragent_trainer_last_stats(const moragent_trainer *trainer, char *buffer, size_t capacity,
#                                             size_t *out_length);
moragent_trainer_last_stats = _bind("moragent_trainer_last_stats",
                                    [moragent_trainer_p, POINTER(c_char), c_size_t, POINTER(c_size_t)], moragent_status)

# moragent_status moragent_trainer_save(moragent_trainer *trainer, const char *path);
moragent_trainer_save = _bind("moragent_trainer_save", [moragent_trainer_p, c_char_p], moragent_status)

# moragent_status moragent_trainer_load(moragent_trainer *trainer, const char *path);
moragent_trainer_load = _bind("moragent_trainer_load", [moragent_trainer_p, c_char_p], moragent_status)

# moragent_status moragent_trainer_export_expert(moragent_trainer *trainer, size_t expert, const char *folder);
moragent_trainer_export_expert = _bind("moragent_trainer_export_expert", [moragent_trainer_p, c_size_t, c_char_p],
                                       moragent_status)

# ---- Supervised training of Mixture-of-Roles (0.4) -------------------------------------------

# typedef struct moragent_sft_trainer moragent_sft_trainer;   (handled as an opaque address)
moragent_sft_trainer_p = c_void_p

# moragent_status moragent_sft_trainer_create(const moragent_engine *engine, const char *config_json,
#                                             moragent_sft_trainer **out_trainer);
moragent_sft_trainer_create = _bind("moragent_sft_trainer_create", [moragent_engine_p, c_char_p, POINTER(moragent_sft_trainer_p)],
                                    moragent_status)

# moragent_status moragent_sft_trainer_free(moragent_sft_trainer *trainer);
moragent_sft_trainer_free = _bind("moragent_sft_trainer_free", [moragent_sft_trainer_p], moragent_status)

# moragent_status moragent_sft_trainer_step(moragent_sft_trainer *trainer, const char *batch_jsonl);
moragent_sft_trainer_step = _bind("moragent_sft_trainer_step", [moragent_sft_trainer_p, c_char_p], moragent_status)

# moragent_status moragent_sft_trainer_evaluate(moragent_sft_trainer *trainer, const char *jsonl,
#                                               double *out_cross_entropy);
moragent_sft_trainer_evaluate = _bind("moragent_sft_trainer_evaluate", [moragent_sft_trainer_p, c_char_p, POINTER(c_double)],
                                      moragent_status)

# moragent_status moragent_sft_trainer_last_stats(const moragent_sft_trainer *trainer, char *buffer,
#                                                 size_t capacity, size_t *out_length);
moragent_sft_trainer_last_stats = _bind("moragent_sft_trainer_last_stats",
                                        [moragent_sft_trainer_p, POINTER(c_char), c_size_t, POINTER(c_size_t)], moragent_status)

# moragent_status moragent_sft_trainer_save(moragent_sft_trainer *trainer, const char *path);
moragent_sft_trainer_save = _bind("moragent_sft_trainer_save", [moragent_sft_trainer_p, c_char_p], moragent_status)
