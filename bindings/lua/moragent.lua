-- LuaJIT FFI bindings for libmoragent (include/moragent.h).
--
--   local moragent = require("moragent")
--   local engine = moragent.load("Tests/MoRAgentTests/Fixtures/models/qwen2-tiny")
--   local out = engine:generate("You are in the kitchen. > go to", { max_new_tokens = 16 })
--   print(out.text, out.stop_reason)
--
-- The library is $MORAGENT_LIBRARY when set (the file, or the folder holding it), else the one
-- next to this file, else what the system loader finds. Handles are freed by ffi.gc when
-- collected, or at once with :free(). Failures raise an error value with fields `status` (the C
-- code), `name` and `message` (moragent_last_error()), whose tostring is the message.
--
-- Lua runs on one thread: progress, log and router callbacks are Lua functions, so do not share
-- an engine with other threads of the host while a Lua log callback is set, and step a policy
-- with a Lua router only from Lua.
--
-- Agents (0.2):
--   local experts = moragent.experts(engine, 2, { rank = 4 })
--   local router = moragent.callback_router(2, function(f) return f.step % 2 == 0 and { 1, 0 } or { 0, 1 } end)
--   local policy = moragent.policy(engine, experts, router, { max_new_tokens = 16 })
--   local step = policy:step(0, "You are in the hall.", "find the key")   -- step.expert, step.action, ...
--   policy:end_episode(0, 1.0, true); print(policy:trace())
--
-- Reinforcement learning (0.4):
--   local trainer = moragent.trainer(policy, { advantage = "gigpo", learning_rate = 1e-4 })
--   policy:begin_episode(7, 1)   -- episode 7, one rollout of group (task instance) 1; then step, end_episode
--   local stats = trainer:update()   -- stats.update, stats.success_rate, ..., stats.json (the text)
--   trainer:save("bundle"); trainer:export_expert(0, "expert0")

local ffi = require("ffi")

ffi.cdef [[
/* Version */
const char *moragent_version(void);
int32_t moragent_version_number(void);

/* Errors */
typedef enum moragent_status {
    MORAGENT_OK = 0,
    MORAGENT_ERROR_INVALID_ARGUMENT = -1,
    MORAGENT_ERROR_INVALID_HANDLE = -2,
    MORAGENT_ERROR_IO = -3,
    MORAGENT_ERROR_MALFORMED_FILE = -4,
    MORAGENT_ERROR_UNSUPPORTED = -5,
    MORAGENT_ERROR_BUFFER_TOO_SMALL = -6,
    MORAGENT_ERROR_ABORTED = -7,
    MORAGENT_ERROR_INTERNAL = -8,
    MORAGENT_ERROR_CALLBACK = -9,
    MORAGENT_ERROR_BUSY = -10
} moragent_status;
const char *moragent_status_string(moragent_status status);
const char *moragent_last_error(void);

/* Logging */
typedef enum moragent_log_level {
    MORAGENT_LOG_LEVEL_DEBUG = 0,
    MORAGENT_LOG_LEVEL_INFO = 1,
    MORAGENT_LOG_LEVEL_WARNING = 2,
    MORAGENT_LOG_LEVEL_ERROR = 3
} moragent_log_level;
typedef void (*moragent_log_fn)(moragent_log_level level, const char *message, void *user);
void moragent_set_log_callback(moragent_log_fn callback, void *user);

/* Memory: the buffer cache */
void moragent_buffer_cache_set_limit(uint64_t bytes);
uint64_t moragent_buffer_cache_kept_bytes(void);

/* Engine */
typedef struct moragent_engine moragent_engine;
moragent_status moragent_engine_load(const char *model_dir, moragent_engine **out_engine);
moragent_status moragent_engine_free(moragent_engine *engine);
typedef struct moragent_engine_info {
    size_t struct_size;
    const char *architecture;
    size_t vocabulary_size;
    size_t tokenizer_vocabulary_size;
    size_t hidden_size;
    size_t layer_count;
    size_t max_position_embeddings;
    uint64_t parameter_count;
} moragent_engine_info;
moragent_status moragent_engine_get_info(const moragent_engine *engine, moragent_engine_info *info);

/* Tokenization */
moragent_status moragent_tokenize(const moragent_engine *engine, const char *text, size_t text_len,
                                  int32_t *ids, size_t capacity, size_t *out_count);
moragent_status moragent_detokenize(const moragent_engine *engine, const int32_t *ids, size_t id_count,
                                    char *text, size_t capacity, size_t *out_length);

/* Generation */
typedef struct moragent_generation moragent_generation;
typedef enum moragent_stop_reason {
    MORAGENT_STOP_REASON_MAX_NEW_TOKENS = 0,
    MORAGENT_STOP_REASON_STOP_TOKEN = 1,
    MORAGENT_STOP_REASON_STOP_STRING = 2
} moragent_stop_reason;
typedef struct moragent_generation_params {
    size_t struct_size;
    float temperature;
    float top_p;
    size_t top_k;
    uint64_t seed;
    size_t max_new_tokens;
    const char *const *stop_strings;
    size_t stop_string_count;
    const int32_t *stop_token_ids;
    size_t stop_token_count;
    int32_t ignore_eos;
} moragent_generation_params;
moragent_status moragent_generation_params_default(moragent_generation_params *params);
typedef int (*moragent_progress_fn)(size_t tokens_done, size_t tokens_total, void *user);
moragent_status moragent_generate(const moragent_engine *engine, const int32_t *prompt, size_t prompt_len,
                                  const moragent_generation_params *params,
                                  moragent_progress_fn progress, void *user,
                                  moragent_generation **out_generation);
moragent_status moragent_generation_free(moragent_generation *generation);
moragent_status moragent_generation_token_count(const moragent_generation *generation, size_t *out_count);
moragent_status moragent_generation_ids(const moragent_generation *generation, const int32_t **out_ids);
moragent_status moragent_generation_logprobs(const moragent_generation *generation, const float **out_logprobs);
moragent_status moragent_generation_entropies(const moragent_generation *generation, const float **out_entropies);
moragent_status moragent_generation_text(const moragent_generation *generation, const char **out_text,
                                         size_t *out_length);
moragent_status moragent_generation_stop_reason(const moragent_generation *generation,
                                                moragent_stop_reason *out_reason);

/* Expert sets (0.2) */
typedef struct moragent_experts moragent_experts;
typedef enum moragent_module {
    MORAGENT_MODULE_Q = 1, MORAGENT_MODULE_K = 2, MORAGENT_MODULE_V = 4, MORAGENT_MODULE_O = 8,
    MORAGENT_MODULE_GATE = 16, MORAGENT_MODULE_UP = 32, MORAGENT_MODULE_DOWN = 64
} moragent_module;
typedef struct moragent_lora_params {
    size_t struct_size;
    size_t rank;
    float alpha;
    int32_t use_rslora;
    uint32_t target_modules;
} moragent_lora_params;
moragent_status moragent_lora_params_default(moragent_lora_params *params);
moragent_status moragent_experts_create(const moragent_engine *engine, size_t count,
                                        const moragent_lora_params *params, uint64_t seed,
                                        moragent_experts **out_experts);
moragent_status moragent_experts_free(moragent_experts *experts);
moragent_status moragent_experts_count(const moragent_experts *experts, size_t *out_count);
moragent_status moragent_experts_load_peft(moragent_experts *experts, const char *dir);
moragent_status moragent_experts_save_peft(const moragent_experts *experts, size_t index, const char *dir);

/* Routers (0.2) */
typedef struct moragent_router moragent_router;
typedef struct moragent_step_features {
    size_t struct_size;
    int64_t episode;
    size_t step;
    const char *observation;
    const char *goal;
    size_t history_count;
} moragent_step_features;
typedef int (*moragent_router_fn)(const moragent_step_features *features, float *weights_out, size_t expert_count,
                                  void *user);
moragent_status moragent_router_create_fixed(size_t expert_count, int32_t expert, moragent_router **out_router);
typedef struct moragent_phase_router_params {
    size_t struct_size;
    size_t expert_count;
    size_t attention_dim;
    size_t attention_heads;
    size_t lstm_hidden;
    size_t lstm_layers;
    size_t history_length;
    size_t mlp_hidden;
    int32_t pooled_goal;
    float initial_temperature;
    float final_temperature;
    size_t anneal_updates;
} moragent_phase_router_params;
moragent_status moragent_phase_router_params_default(moragent_phase_router_params *params);
moragent_status moragent_router_create_phase(size_t model_hidden_size,
                                             const moragent_phase_router_params *params, uint64_t seed,
                                             moragent_router **out_router);
moragent_status moragent_router_phase_save(const moragent_router *router, const char *path);
moragent_status moragent_router_phase_load(const char *path, moragent_router **out_router);
moragent_status moragent_router_create_trajectory(moragent_router *inner, moragent_router **out_router);
moragent_status moragent_router_create_callback(size_t expert_count, moragent_router_fn fn, void *user,
                                                moragent_router **out_router);
moragent_status moragent_router_free(moragent_router *router);
moragent_status moragent_router_expert_count(const moragent_router *router, size_t *out_count);

/* Router plugins (0.2) */
moragent_status moragent_plugin_load(const char *path);
moragent_status moragent_router_create_kind(const char *name, const char *config_json,
                                            size_t expert_count, moragent_router **out_router);

/* Policies (0.2) */
typedef struct moragent_policy moragent_policy;
typedef struct moragent_step_result moragent_step_result;
typedef struct moragent_policy_params {
    size_t struct_size;
    const moragent_generation_params *sampling;
    const char *first_step_template;
    const char *later_step_template;
    const char *history_entry_template;
    size_t history_length;
    int32_t chatml;
} moragent_policy_params;
moragent_status moragent_policy_params_default(moragent_policy_params *params);
moragent_status moragent_policy_create(const moragent_engine *engine, const moragent_experts *experts,
                                       moragent_router *router, const moragent_policy_params *params,
                                       moragent_policy **out_policy);
moragent_status moragent_policy_free(moragent_policy *policy);
moragent_status moragent_policy_step(moragent_policy *policy, int64_t episode, const char *observation,
                                     const char *goal, moragent_step_result **out_result);
moragent_status moragent_policy_step_batch(moragent_policy *policy, size_t count, const int64_t *episodes,
                                           const char *const *observations, const char *const *goals,
                                           moragent_step_result **out_results);
moragent_status moragent_policy_end_episode(moragent_policy *policy, int64_t episode, double reward,
                                            int32_t success);
moragent_status moragent_policy_trace_jsonl(const moragent_policy *policy, char *buffer, size_t capacity,
                                            size_t *out_length);
moragent_status moragent_policy_clear_ended(moragent_policy *policy);
moragent_status moragent_step_result_free(moragent_step_result *result);
moragent_status moragent_step_result_action(const moragent_step_result *result, const char **out_text,
                                            size_t *out_length);
moragent_status moragent_step_result_response(const moragent_step_result *result, const char **out_text,
                                              size_t *out_length);
moragent_status moragent_step_result_action_valid(const moragent_step_result *result, int32_t *out_valid);
moragent_status moragent_step_result_ids(const moragent_step_result *result, const int32_t **out_ids,
                                         size_t *out_count);
moragent_status moragent_step_result_logprobs(const moragent_step_result *result, const float **out_logprobs,
                                              size_t *out_count);
moragent_status moragent_step_result_prompt_ids(const moragent_step_result *result, const int32_t **out_ids,
                                                size_t *out_count);
moragent_status moragent_step_result_expert(const moragent_step_result *result, int32_t *out_expert);
moragent_status moragent_step_result_probabilities(const moragent_step_result *result,
                                                   const float **out_probabilities, size_t *out_count);
moragent_status moragent_step_result_timing(const moragent_step_result *result, double *out_routing_seconds,
                                            double *out_generation_seconds);

/* Reinforcement learning (0.4) */
moragent_status moragent_policy_begin_episode(moragent_policy *policy, int64_t episode, int64_t group);
moragent_status moragent_policy_step_reward(moragent_policy *policy, int64_t episode, double reward);
moragent_status moragent_policy_recorded_steps(const moragent_policy *policy, size_t *out_steps);
typedef struct moragent_trainer moragent_trainer;
typedef enum moragent_advantage {
    MORAGENT_ADVANTAGE_GRPO = 0,
    MORAGENT_ADVANTAGE_RLOO = 1,
    MORAGENT_ADVANTAGE_GIGPO = 2,
    MORAGENT_ADVANTAGE_PPO = 3
} moragent_advantage;
typedef struct moragent_trainer_params {
    size_t struct_size;
    int32_t advantage;
    int32_t normalize_by_std;
    int32_t per_trajectory_statistics;
    double gamma;
    double gae_lambda;
    double step_weight;
    double similarity_threshold;
    double invalid_action_penalty;
    float learning_rate;
    float weight_decay;
    float max_grad_norm;
    int32_t warmup_updates;
    int32_t total_updates;
    int32_t cosine;
    float clip_low;
    float clip_high;
    float dual_clip;
    int32_t sequence_mean;
    float kl_coefficient;
    int32_t train_router;
    float balance_coefficient;
    float switch_coefficient;
    float switch_lambda;
    float diversity_coefficient;
    int32_t diversity_interval;
    int32_t diversity_samples;
    int32_t diversity_buffer;
    float diversity_margin;
    int32_t mini_batches;
    int32_t epochs;
    int32_t chunk_steps;
    uint64_t seed;
    const char *metrics_path;
    size_t rollout_capacity;
    float router_learning_rate_scale;
    int32_t recompute_activations;
} moragent_trainer_params;
moragent_status moragent_trainer_params_default(moragent_trainer_params *params);
moragent_status moragent_trainer_create(moragent_policy *policy, const moragent_trainer_params *params,
                                        moragent_trainer **out_trainer);
moragent_status moragent_trainer_free(moragent_trainer *trainer);
moragent_status moragent_trainer_update(moragent_trainer *trainer, moragent_progress_fn progress, void *user);
moragent_status moragent_trainer_last_stats(const moragent_trainer *trainer, char *buffer, size_t capacity,
                                            size_t *out_length);
moragent_status moragent_trainer_save(moragent_trainer *trainer, const char *path);
moragent_status moragent_trainer_load(moragent_trainer *trainer, const char *path);
moragent_status moragent_trainer_export_expert(moragent_trainer *trainer, size_t expert, const char *folder);

/* libc, to set OPENBLAS_CORETYPE before the library (and OpenBLAS with it) loads */
int setenv(const char *name, const char *value, int overwrite);
char *getenv(const char *name);
]]

local M = {}

M.VERSION_MAJOR, M.VERSION_MINOR, M.VERSION_PATCH = 0, 4, 0
M.VERSION = "0.4.0"

-- The OpenBLAS kernel family this CPU should run, from its /proc/cpuinfo flags, or nil.
-- Why: Debian's OpenBLAS 0.3.21 takes CPUs newer than itself for old ones and runs its generic
-- kernels, ~2.5x slower; OPENBLAS_CORETYPE overrides that but is read only when OpenBLAS loads.
function M.openblas_core_type(cpuinfo_path)
  local f = io.open(cpuinfo_path or "/proc/cpuinfo", "r")
  if not f then return nil end
  local flags = {}
  for line in f:lines() do
    if line:match("^flags") then
      for flag in line:gmatch("%S+") do flags[flag] = true end
      break
    end
  end
  f:close()
  if flags.avx512f and flags.avx512bw and flags.avx512vl then return "SkylakeX" end
  if flags.avx2 and flags.fma then return "Haswell" end
  return nil
end

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Where the library is: $MORAGENT_LIBRARY alone when set (file or folder), else beside this
-- file, else the system loader's search path ("moragent").
local function library_path()
  local configured = os.getenv("MORAGENT_LIBRARY")
  if configured and configured ~= "" then
    if file_exists(configured .. "/libmoragent.so") then return configured .. "/libmoragent.so" end
    return configured
  end
  local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  if file_exists(here .. "libmoragent.so") then return here .. "libmoragent.so" end
  return "moragent"
end

if ffi.C.getenv("OPENBLAS_CORETYPE") == nil then
  local core = M.openblas_core_type()
  if core then ffi.C.setenv("OPENBLAS_CORETYPE", core, 0) end
end

local lib = ffi.load(library_path())
M.lib = lib

do
  local number = lib.moragent_version_number()
  if math.floor(number / 1000000) ~= M.VERSION_MAJOR then
    error(string.format("moragent: library version %s, these bindings need major version %d",
                        ffi.string(lib.moragent_version()), M.VERSION_MAJOR))
  end
end

-- ---- errors -------------------------------------------------------------------------------

local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end
M.Error = Error

-- Raises the error for a failed status with the thread's last message.
local function check(status)
  if status ~= 0 then
    error(setmetatable({
      status = tonumber(status),
      name = ffi.string(lib.moragent_status_string(status)),
      message = ffi.string(lib.moragent_last_error()),
    }, Error), 2)
  end
end

-- An error the Lua layer raises itself, for values the FFI would convert silently.
local function invalid_argument(message)
  error(setmetatable({ status = -1, name = "invalid argument", message = message }, Error), 3)
end

function M.version() return ffi.string(lib.moragent_version()) end

-- ---- logging ------------------------------------------------------------------------------

local log_callback -- the FFI callback; freed when replaced

-- Sends library log lines to fn(level, message) (0 debug .. 3 error); nil silences it.
function M.set_log_callback(fn)
  local previous = log_callback
  log_callback = nil
  if fn then
    log_callback = ffi.cast("moragent_log_fn", function(level, message)
      pcall(fn, tonumber(level), ffi.string(message))
    end)
  end
  lib.moragent_set_log_callback(log_callback, nil)
  if previous then previous:free() end
end

-- ---- conversions --------------------------------------------------------------------------

local function int32_array(values, what)
  local n = #values
  local array = ffi.new("int32_t[?]", math.max(n, 1))
  for i = 1, n do
    local v = values[i]
    if type(v) ~= "number" or v ~= math.floor(v) or v < -2147483648 or v > 2147483647 then
      invalid_argument(string.format("%s[%d] = %s is not a 32-bit integer token id", what, i, tostring(v)))
    end
    array[i - 1] = v
  end
  return array, n
end

-- A Lua string passed as a C string: a NUL inside would silently cut it, so it is refused.
local function c_string(s, what)
  if type(s) ~= "string" then invalid_argument(what .. " must be a string, got " .. type(s)) end
  if s:find("\0", 1, true) then invalid_argument(what .. " must not contain NUL bytes (C strings end there)") end
  return s
end

local function size_value(v, what)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v >= 2 ^ 53 then
    invalid_argument(string.format("%s must be a non-negative integer, got %s", what, tostring(v)))
  end
  return v
end

-- ---- memory -------------------------------------------------------------------------------

-- Sets the most bytes of large, unused buffers the library keeps for its next tensors (4 GiB at
-- start; kept plus in use never exceeds the most it had in use at once). A lower limit frees at
-- once; 0 frees everything kept and keeps nothing. Process-wide.
function M.set_buffer_cache_limit(bytes)
  lib.moragent_buffer_cache_set_limit(size_value(bytes, "the buffer cache limit"))
end

-- The bytes the library holds now in kept buffers (in use by nothing).
function M.buffer_cache_kept_bytes() return tonumber(lib.moragent_buffer_cache_kept_bytes()) end

-- ---- engine -------------------------------------------------------------------------------

local Engine = {}
Engine.__index = Engine

-- Loads a model folder. The engine is freed when collected, or by :free().
function M.load(model_dir)
  local out = ffi.new("moragent_engine *[1]")
  check(lib.moragent_engine_load(model_dir, out))
  return setmetatable({ handle = ffi.gc(out[0], lib.moragent_engine_free) }, Engine)
end
-- The load may log through a Lua callback: a C call that re-enters Lua must not run in a trace.
jit.off(M.load)

-- Frees the engine now; later calls raise an "invalid handle" error. Freeing twice is harmless.
function Engine:free()
  if self.handle ~= nil then
    local handle = ffi.gc(self.handle, nil)
    self.handle = nil
    check(lib.moragent_engine_free(handle))
  end
end

function Engine:info()
  local info = ffi.new("moragent_engine_info")
  info.struct_size = ffi.sizeof("moragent_engine_info")
  check(lib.moragent_engine_get_info(self.handle, info))
  return {
    architecture = ffi.string(info.architecture),
    vocabulary_size = tonumber(info.vocabulary_size),
    tokenizer_vocabulary_size = tonumber(info.tokenizer_vocabulary_size),
    hidden_size = tonumber(info.hidden_size),
    layer_count = tonumber(info.layer_count),
    max_position_embeddings = tonumber(info.max_position_embeddings),
    parameter_count = tonumber(info.parameter_count),
  }
end

-- The first buffer size tried for `n` bytes or ids: enough for byte-level BPE (at most one id
-- per byte) and tokens of up to 16 bytes; when it is not, the library reports the size needed
-- and the call is made once more.
function M.initial_capacity(n) return n + 16 end

-- The token ids of a UTF-8 string (no special tokens added), as a 1-based table.
function Engine:tokenize(text)
  local count = ffi.new("size_t[1]")
  local function attempt(capacity)
    local ids = ffi.new("int32_t[?]", math.max(capacity, 1))
    return lib.moragent_tokenize(self.handle, text, #text, ids, capacity, count), ids
  end
  local status, ids = attempt(M.initial_capacity(#text))
  if status == lib.MORAGENT_ERROR_BUFFER_TOO_SMALL then status, ids = attempt(tonumber(count[0])) end
  check(status)
  local out = {}
  for i = 1, tonumber(count[0]) do out[i] = ids[i - 1] end
  return out
end

-- The text of a table of ids, special tokens included; unknown ids are skipped.
function Engine:detokenize(ids)
  local array, n = int32_array(ids, "ids")
  local length = ffi.new("size_t[1]")
  local function attempt(capacity)
    local text = ffi.new("char[?]", math.max(capacity, 1))
    return lib.moragent_detokenize(self.handle, array, n, text, capacity, length), text
  end
  local status, text = attempt(M.initial_capacity(16 * n))
  if status == lib.MORAGENT_ERROR_BUFFER_TOO_SMALL then status, text = attempt(tonumber(length[0]) + 1) end
  check(status)
  return ffi.string(text, length[0])
end

local stop_reasons = { [0] = "max_new_tokens", [1] = "stop_token", [2] = "stop_string" }

-- Reads a generation into a Lua table and frees it.
local function collect(generation)
  local count, ids = ffi.new("size_t[1]"), ffi.new("const int32_t *[1]")
  local logprobs, entropies = ffi.new("const float *[1]"), ffi.new("const float *[1]")
  local text, length, reason = ffi.new("const char *[1]"), ffi.new("size_t[1]"), ffi.new("moragent_stop_reason[1]")
  check(lib.moragent_generation_token_count(generation, count))
  check(lib.moragent_generation_ids(generation, ids))
  check(lib.moragent_generation_logprobs(generation, logprobs))
  check(lib.moragent_generation_entropies(generation, entropies))
  check(lib.moragent_generation_text(generation, text, length))
  check(lib.moragent_generation_stop_reason(generation, reason))
  local out = { ids = {}, logprobs = {}, entropies = {}, text = ffi.string(text[0], length[0]),
                stop_reason = stop_reasons[tonumber(reason[0])] }
  for i = 1, tonumber(count[0]) do
    out.ids[i], out.logprobs[i], out.entropies[i] = ids[0][i - 1], logprobs[0][i - 1], entropies[0][i - 1]
  end
  return out
end

-- Generates a continuation of `prompt` (a string, tokenized first, or a table of ids).
-- opts: max_new_tokens (64), temperature (0: greedy), top_k (0), top_p (1), seed (0),
-- stop (table of strings), stop_token_ids (table; replaces the model's EOS), ignore_eos (false),
-- progress = function(done, total) returning true to stop (raises an "aborted" error).
-- Returns { ids, text, logprobs, entropies, stop_reason }.
-- A filled moragent_generation_params from opts (see Engine:generate) and the arrays its
-- pointers refer to, which the caller keeps referenced while the params are in use.
local function generation_params(opts)
  local params = ffi.new("moragent_generation_params")
  params.struct_size = ffi.sizeof("moragent_generation_params")
  check(lib.moragent_generation_params_default(params))
  if opts.max_new_tokens ~= nil then params.max_new_tokens = size_value(opts.max_new_tokens, "max_new_tokens") end
  if opts.top_k ~= nil then params.top_k = size_value(opts.top_k, "top_k") end
  if opts.seed ~= nil then params.seed = size_value(opts.seed, "seed") end
  if opts.temperature ~= nil then params.temperature = opts.temperature end
  if opts.top_p ~= nil then params.top_p = opts.top_p end
  local stop = opts.stop or {}
  local stop_strings = ffi.new("const char *[?]", math.max(#stop, 1))
  for i = 1, #stop do stop_strings[i - 1] = stop[i] end -- the strings stay referenced by `stop`
  params.stop_strings, params.stop_string_count = stop_strings, #stop
  local stop_ids, stop_count = int32_array(opts.stop_token_ids or {}, "stop_token_ids")
  params.stop_token_ids, params.stop_token_count = stop_ids, stop_count
  params.ignore_eos = opts.ignore_eos and 1 or 0
  return params, { stop, stop_strings, stop_ids }
end

-- A C progress callback that calls fn(done, total), a true result asking to stop (nil when fn
-- is nil), and a function returning the error fn raised, if any. An error inside the callback
-- cannot cross C: it is caught, the call is stopped, and the caller re-raises it. The caller
-- frees the callback once the C call returns.
local function progress_callback(fn)
  if not fn then return nil, function() return nil end end
  local raised
  local callback = ffi.cast("moragent_progress_fn", function(done, total)
    local ok, stop_now = pcall(fn, tonumber(done), tonumber(total))
    if not ok then raised = stop_now; return 1 end
    return stop_now and 1 or 0
  end)
  return callback, function() return raised end
end

function Engine:generate(prompt, opts)
  opts = opts or {}
  if type(prompt) == "string" then prompt = self:tokenize(prompt) end
  local prompt_ids, prompt_len = int32_array(prompt, "prompt")
  local params, keep = generation_params(opts)

  local callback, raised = progress_callback(opts.progress)
  local out = ffi.new("moragent_generation *[1]")
  local status = lib.moragent_generate(self.handle, prompt_ids, prompt_len, params, callback, nil, out)
  local _ = keep
  if callback then callback:free() end
  if raised() ~= nil then error(raised(), 0) end
  check(status)
  local generation = ffi.gc(out[0], lib.moragent_generation_free)
  local ok, result = pcall(collect, generation)
  check(lib.moragent_generation_free(ffi.gc(generation, nil)))
  if not ok then error(result, 0) end
  return result
end
-- The progress callback re-enters Lua from C: keep this call out of compiled traces.
jit.off(Engine.generate)

M.Engine = Engine

-- ---- expert sets (0.2) -------------------------------------------------------------------

-- Frees an object's handle now with its C free function; freeing twice is harmless.
local function free_handle(self, free)
  if self.handle ~= nil then
    local handle = ffi.gc(self.handle, nil)
    self.handle = nil
    check(free(handle))
  end
end

local modules = {
  q_proj = lib.MORAGENT_MODULE_Q, k_proj = lib.MORAGENT_MODULE_K, v_proj = lib.MORAGENT_MODULE_V,
  o_proj = lib.MORAGENT_MODULE_O, gate_proj = lib.MORAGENT_MODULE_GATE, up_proj = lib.MORAGENT_MODULE_UP,
  down_proj = lib.MORAGENT_MODULE_DOWN,
}

local ExpertSet = {}
ExpertSet.__index = ExpertSet
M.ExpertSet = ExpertSet

-- `count` new LoRA experts shaped for `engine` (B = 0: each starts as the base model).
-- opts: rank (32), alpha (64), use_rslora (false), target_modules ({ "q_proj", "v_proj" }), seed (0).
function M.experts(engine, count, opts)
  opts = opts or {}
  local params = ffi.new("moragent_lora_params")
  params.struct_size = ffi.sizeof("moragent_lora_params")
  check(lib.moragent_lora_params_default(params))
  if opts.rank ~= nil then params.rank = size_value(opts.rank, "rank") end
  if opts.alpha ~= nil then params.alpha = opts.alpha end
  params.use_rslora = opts.use_rslora and 1 or 0
  if opts.target_modules ~= nil then
    local bits = 0
    for _, name in ipairs(opts.target_modules) do
      if not modules[name] then invalid_argument("unknown target module " .. tostring(name)) end
      bits = bit.bor(bits, modules[name])
    end
    params.target_modules = bits
  end
  local out = ffi.new("moragent_experts *[1]")
  check(lib.moragent_experts_create(engine.handle, size_value(count or 0, "count"), params,
                                    size_value(opts.seed or 0, "seed"), out))
  return setmetatable({ handle = ffi.gc(out[0], lib.moragent_experts_free) }, ExpertSet)
end

function ExpertSet:free() free_handle(self, lib.moragent_experts_free) end

function ExpertSet:count()
  local count = ffi.new("size_t[1]")
  check(lib.moragent_experts_count(self.handle, count))
  return tonumber(count[0])
end

-- Appends the PEFT LoRA adapter in folder `dir`; returns its index (0-based, as in C).
function ExpertSet:load_peft(dir)
  check(lib.moragent_experts_load_peft(self.handle, dir))
  return self:count() - 1
end

function ExpertSet:save_peft(index, dir)
  check(lib.moragent_experts_save_peft(self.handle, size_value(index, "index"), dir))
end

-- ---- routers (0.2) -----------------------------------------------------------------------

local Router = {}
Router.__index = Router
M.Router = Router

-- A router object owning `handle`; `keep` holds what the C router relies on (a callback, an
-- inner router object) for as long as this object lives.
local function router_object(handle, keep)
  return setmetatable({ handle = ffi.gc(handle, lib.moragent_router_free), keep = keep }, Router)
end

-- Calls a router constructor with `...` (which may hold nils: a NULL user or config) and an
-- out-parameter; returns the new handle.
local function made_router(call, ...)
  local out = ffi.new("moragent_router *[1]")
  local n = select("#", ...)
  local args = { ... }
  args[n + 1] = out
  check(call(unpack(args, 1, n + 1)))
  return out[0]
end

-- Frees the caller's handle now. Policies and trajectory routers made with the router keep
-- using it, and a Lua callback stays alive until this object is collected.
function Router:free() free_handle(self, lib.moragent_router_free) end

function Router:expert_count()
  local count = ffi.new("size_t[1]")
  check(lib.moragent_router_expert_count(self.handle, count))
  return tonumber(count[0])
end

-- Every step to `expert` (0-based), or to the base model when `expert` is nil.
function M.fixed_router(expert_count, expert)
  local e = expert == nil and -1 or expert
  if type(e) ~= "number" or e ~= math.floor(e) or e < -2147483648 or e > 2147483647 then
    invalid_argument("expert must be nil or a 32-bit integer, got " .. tostring(expert))
  end
  return router_object(made_router(lib.moragent_router_create_fixed, size_value(expert_count, "expert_count"), e))
end

-- PA-MoE's phase router for engines of width `model_hidden_size`. opts: expert_count (4),
-- attention_dim (256), attention_heads (4), lstm_hidden (256), lstm_layers (3),
-- history_length (5), mlp_hidden (256), pooled_goal (false), initial_temperature (2),
-- final_temperature (0.5), anneal_updates (3000), seed (0).
function M.phase_router(model_hidden_size, opts)
  opts = opts or {}
  local params = ffi.new("moragent_phase_router_params")
  params.struct_size = ffi.sizeof("moragent_phase_router_params")
  check(lib.moragent_phase_router_params_default(params))
  for _, name in ipairs({ "expert_count", "attention_dim", "attention_heads", "lstm_hidden", "lstm_layers",
                          "history_length", "mlp_hidden", "anneal_updates" }) do
    if opts[name] ~= nil then params[name] = size_value(opts[name], name) end
  end
  params.pooled_goal = opts.pooled_goal and 1 or 0
  if opts.initial_temperature ~= nil then params.initial_temperature = opts.initial_temperature end
  if opts.final_temperature ~= nil then params.final_temperature = opts.final_temperature end
  return router_object(made_router(lib.moragent_router_create_phase, size_value(model_hidden_size, "model_hidden_size"),
                                   params, size_value(opts.seed or 0, "seed")))
end

-- Reads a phase router written by Router:save_phase.
function M.load_phase_router(path)
  return router_object(made_router(lib.moragent_router_phase_load, path))
end

function Router:save_phase(path) check(lib.moragent_router_phase_save(self.handle, path)) end

-- PA-MoE's trajectory baseline: `inner`'s first decision of each episode holds for the episode.
function M.trajectory_router(inner)
  return router_object(made_router(lib.moragent_router_create_trajectory, inner.handle), { inner })
end

-- The error a Lua router function raised during the current step, re-raised by Policy:step.
local pending_router_error

-- A router written in Lua: fn(features) returns a table of `expert_count` non-negative weights
-- (one positive: that expert; several: a mixture; all zero: the base model). features:
-- { episode, step, observation, goal, history_count }. An error fn raises is re-raised by
-- Policy:step; a NaN or negative weight raises a "callback failed" error.
function M.callback_router(expert_count, fn)
  local callback = ffi.cast("moragent_router_fn", function(features, weights, count)
    local ok, err = pcall(function()
      local answer = fn({
        episode = tonumber(features.episode), step = tonumber(features.step),
        observation = ffi.string(features.observation), goal = ffi.string(features.goal),
        history_count = tonumber(features.history_count),
      })
      if type(answer) ~= "table" or #answer ~= tonumber(count) then
        error(string.format("the router function returned %s weights for %d experts",
                            type(answer) == "table" and tostring(#answer) or type(answer), tonumber(count)), 0)
      end
      for k = 1, #answer do
        if type(answer[k]) ~= "number" then error("weight " .. k .. " is not a number", 0) end
        weights[k - 1] = answer[k]
      end
    end)
    if ok then return 0 end
    if pending_router_error == nil then pending_router_error = err end
    return 1
  end)
  -- The C router may call the callback for as long as anything holds it, which Lua cannot see:
  -- the callback is freed when this router object (which policies and trajectory routers made
  -- from it reference) is collected, not by Router:free.
  ffi.gc(callback, function(c) c:free() end)
  local handle = made_router(lib.moragent_router_create_callback, size_value(expert_count, "expert_count"), callback, nil)
  return router_object(handle, { callback })
end

-- Loads a router plugin (a shared object) and registers its router kinds for the process.
function M.load_plugin(path) check(lib.moragent_plugin_load(path)) end

-- A router of a kind a plugin registered; config_json is a JSON string (nil: "{}").
function M.router_from_kind(name, config_json, expert_count)
  return router_object(made_router(lib.moragent_router_create_kind, name, config_json,
                                   size_value(expert_count, "expert_count")))
end

-- ---- policies (0.2) ----------------------------------------------------------------------

local Policy = {}
Policy.__index = Policy
M.Policy = Policy

-- A policy over `engine`, `experts` and `router`. opts: the sampling options of Engine:generate
-- (defaults here: temperature 1, max_new_tokens 64, stop { "</action>" }), first_step_template,
-- later_step_template, history_entry_template (nil: built in), history_length (5), chatml (false).
function M.policy(engine, experts, router, opts)
  opts = opts or {}
  local sampling_opts = {}
  for k, v in pairs(opts) do sampling_opts[k] = v end
  if sampling_opts.temperature == nil then sampling_opts.temperature = 1 end
  if sampling_opts.stop == nil then sampling_opts.stop = { "</action>" } end
  local sampling, keep = generation_params(sampling_opts)
  local params = ffi.new("moragent_policy_params")
  params.struct_size = ffi.sizeof("moragent_policy_params")
  check(lib.moragent_policy_params_default(params))
  params.sampling = sampling
  for _, name in ipairs({ "first_step_template", "later_step_template", "history_entry_template" }) do
    if opts[name] ~= nil then params[name] = c_string(opts[name], name) end
  end
  if opts.history_length ~= nil then params.history_length = size_value(opts.history_length, "history_length") end
  params.chatml = opts.chatml and 1 or 0
  local out = ffi.new("moragent_policy *[1]")
  check(lib.moragent_policy_create(engine.handle, experts.handle, router.handle, params, out))
  local _ = keep
  return setmetatable({ handle = ffi.gc(out[0], lib.moragent_policy_free), router = router }, Policy)
end

function Policy:free() free_handle(self, lib.moragent_policy_free) end

local function array_out(call, result, ctype)
  local pointer, count = ffi.new(ctype .. "[1]"), ffi.new("size_t[1]")
  check(call(result, pointer, count))
  local out = {}
  for i = 1, tonumber(count[0]) do out[i] = tonumber(pointer[0][i - 1]) end
  return out
end

local function text_out(call, result)
  local text, length = ffi.new("const char *[1]"), ffi.new("size_t[1]")
  check(call(result, text, length))
  return ffi.string(text[0], length[0])
end

-- Reads a step result into a Lua table (expert nil for the base model or a mixture).
local function read_step(result)
  local expert, valid = ffi.new("int32_t[1]"), ffi.new("int32_t[1]")
  local routing, generation = ffi.new("double[1]"), ffi.new("double[1]")
  check(lib.moragent_step_result_expert(result, expert))
  check(lib.moragent_step_result_action_valid(result, valid))
  check(lib.moragent_step_result_timing(result, routing, generation))
  return {
    action = text_out(lib.moragent_step_result_action, result),
    response = text_out(lib.moragent_step_result_response, result),
    action_valid = valid[0] ~= 0,
    expert = expert[0] >= 0 and tonumber(expert[0]) or nil,
    probabilities = array_out(lib.moragent_step_result_probabilities, result, "const float *"),
    ids = array_out(lib.moragent_step_result_ids, result, "const int32_t *"),
    logprobs = array_out(lib.moragent_step_result_logprobs, result, "const float *"),
    prompt_ids = array_out(lib.moragent_step_result_prompt_ids, result, "const int32_t *"),
    routing_seconds = routing[0], generation_seconds = generation[0],
  }
end

-- An int64_t argument: an integer Lua number (exact below 2^53).
local function int64_value(v, what)
  if type(v) ~= "number" or v ~= math.floor(v) or math.abs(v) >= 2 ^ 53 then
    invalid_argument(what .. " must be an integer, got " .. tostring(v))
  end
  return v
end

local function episode_value(episode) return int64_value(episode, "episode") end

-- The next step of `episode` (its first step starts it); returns { action, response,
-- action_valid, expert, probabilities, ids, logprobs, prompt_ids, routing_seconds,
-- generation_seconds }.
function Policy:step(episode, observation, goal)
  local out = ffi.new("moragent_step_result *[1]")
  pending_router_error = nil
  local status = lib.moragent_policy_step(self.handle, episode_value(episode), c_string(observation, "observation"),
                                          c_string(goal, "goal"), out)
  local raised = pending_router_error
  pending_router_error = nil
  if raised ~= nil then error(raised, 0) end
  check(status)
  local result = ffi.gc(out[0], lib.moragent_step_result_free)
  local ok, step = pcall(read_step, result)
  check(lib.moragent_step_result_free(ffi.gc(result, nil)))
  if not ok then error(step, 0) end
  return step
end
-- A Lua router re-enters Lua from C: keep this call out of compiled traces.
jit.off(Policy.step)

-- The next step of several distinct episodes at once, given as a list of
-- { episode, observation, goal }: each routed as Policy:step routes it, in order, then all
-- prompts prefilled and decoded as one batch, each episode sampling with the seed it has alone.
-- Returns the steps in order (as Policy:step returns them); on error no episode changes.
function Policy:step_batch(steps)
  local n = #steps
  local episodes = ffi.new("int64_t[?]", math.max(n, 1))
  local observations = ffi.new("const char *[?]", math.max(n, 1))
  local goals = ffi.new("const char *[?]", math.max(n, 1))
  local texts = {}  -- keeps the strings alive during the call
  for i, s in ipairs(steps) do
    episodes[i - 1] = episode_value(s[1])
    texts[2 * i - 1], texts[2 * i] = c_string(s[2], "observation"), c_string(s[3], "goal")
    observations[i - 1], goals[i - 1] = texts[2 * i - 1], texts[2 * i]
  end
  local out = ffi.new("moragent_step_result *[?]", math.max(n, 1))
  pending_router_error = nil
  local status = lib.moragent_policy_step_batch(self.handle, n, episodes, observations, goals, out)
  local raised = pending_router_error
  pending_router_error = nil
  if raised ~= nil then error(raised, 0) end
  check(status)
  local results = {}
  for i = 1, n do results[i] = ffi.gc(out[i - 1], lib.moragent_step_result_free) end
  local read = {}
  local ok, err = pcall(function() for i = 1, n do read[i] = read_step(results[i]) end end)
  for i = 1, n do check(lib.moragent_step_result_free(ffi.gc(results[i], nil))) end
  if not ok then error(err, 0) end
  return read
end
jit.off(Policy.step_batch)

function Policy:end_episode(episode, reward, success)
  check(lib.moragent_policy_end_episode(self.handle, episode_value(episode), reward, success and 1 or 0))
end

-- The routing trace: one JSON object per ended episode, one per line.
function Policy:trace()
  local length = ffi.new("size_t[1]")
  local status = lib.moragent_policy_trace_jsonl(self.handle, nil, 0, length)
  if status ~= lib.MORAGENT_ERROR_BUFFER_TOO_SMALL then check(status) end
  local text = ffi.new("char[?]", tonumber(length[0]) + 1)
  check(lib.moragent_policy_trace_jsonl(self.handle, text, tonumber(length[0]) + 1, length))
  return ffi.string(text, length[0])
end

function Policy:clear_ended() check(lib.moragent_policy_clear_ended(self.handle)) end

-- ---- reinforcement learning (0.4) --------------------------------------------------------

-- Starts `episode` as one rollout of `group` (the rollouts of one task instance, which GRPO,
-- RLOO and GiGPO compare). An episode started by Policy:step alone is a group of its own.
function Policy:begin_episode(episode, group)
  check(lib.moragent_policy_begin_episode(self.handle, episode_value(episode), int64_value(group, "group")))
end

-- Adds a reward the environment gave for the latest step of `episode` (the final return still
-- goes to Policy:end_episode).
function Policy:step_reward(episode, reward)
  check(lib.moragent_policy_step_reward(self.handle, episode_value(episode), reward))
end

-- The number of steps recorded for the next update and not yet consumed by one.
function Policy:recorded_steps()
  local steps = ffi.new("size_t[1]")
  check(lib.moragent_policy_recorded_steps(self.handle, steps))
  return tonumber(steps[0])
end

local Trainer = {}
Trainer.__index = Trainer
M.Trainer = Trainer

-- The advantage estimators by name (moragent_advantage).
M.ADVANTAGES = {
  grpo = lib.MORAGENT_ADVANTAGE_GRPO, rloo = lib.MORAGENT_ADVANTAGE_RLOO,
  gigpo = lib.MORAGENT_ADVANTAGE_GIGPO, ppo = lib.MORAGENT_ADVANTAGE_PPO,
}

-- The settable fields of moragent_trainer_params and what each takes: "flag" (a boolean, or an
-- integer: non-zero is on), "int32", "size" (a non-negative integer) or "number". The FFI would
-- truncate 1.5 or wrap 2^40 into an int32_t silently, so integers are checked here.
local trainer_fields = {
  normalize_by_std = "flag", per_trajectory_statistics = "flag", gamma = "number", gae_lambda = "number",
  step_weight = "number", similarity_threshold = "number", invalid_action_penalty = "number",
  learning_rate = "number", weight_decay = "number", max_grad_norm = "number", warmup_updates = "int32",
  total_updates = "int32", cosine = "flag", clip_low = "number", clip_high = "number", dual_clip = "number",
  sequence_mean = "flag", kl_coefficient = "number", train_router = "flag", balance_coefficient = "number",
  switch_coefficient = "number", switch_lambda = "number", diversity_coefficient = "number",
  diversity_interval = "int32", diversity_samples = "int32", diversity_buffer = "int32",
  diversity_margin = "number", mini_batches = "int32", epochs = "int32", chunk_steps = "int32", seed = "size",
  rollout_capacity = "size", router_learning_rate_scale = "number", recompute_activations = "flag",
}

local function trainer_value(kind, v, name)
  if kind == "flag" and type(v) == "boolean" then return v and 1 or 0 end
  if kind == "number" then
    if type(v) ~= "number" then invalid_argument(name .. " must be a number, got " .. type(v)) end
    return v -- NaN and infinities pass: the library refuses them with a message naming the field
  end
  if kind == "size" then return size_value(v, name) end
  if type(v) ~= "number" or v ~= math.floor(v) or v < -2 ^ 31 or v >= 2 ^ 31 then
    invalid_argument(name .. " must be a 32-bit integer, got " .. tostring(v))
  end
  return v
end

-- A trainer of `policy` (step or token routing). settings: advantage ("grpo", "rloo", "gigpo"
-- (default) or "ppo"), metrics_path (a file each update appends its statistics to, one JSON
-- line), and any field of moragent_trainer_params by name, e.g. learning_rate (1e-4),
-- diversity_interval (100); see include/moragent.h for every field and its default.
function M.trainer(policy, settings)
  local params = ffi.new("moragent_trainer_params")
  params.struct_size = ffi.sizeof("moragent_trainer_params")
  check(lib.moragent_trainer_params_default(params))
  local metrics_path -- referenced until the call returns: params only points to it
  for name, value in pairs(settings or {}) do
    if name == "advantage" then
      if M.ADVANTAGES[value] == nil then
        invalid_argument("advantage must be grpo, rloo, gigpo or ppo, got " .. tostring(value))
      end
      params.advantage = M.ADVANTAGES[value]
    elseif name == "metrics_path" then
      metrics_path = c_string(value, "metrics_path")
      params.metrics_path = metrics_path
    elseif trainer_fields[name] then
      params[name] = trainer_value(trainer_fields[name], value, name)
    else
      invalid_argument("unknown trainer setting " .. tostring(name))
    end
  end
  local out = ffi.new("moragent_trainer *[1]")
  check(lib.moragent_trainer_create(policy.handle, params, out))
  local _ = metrics_path
  return setmetatable({ handle = ffi.gc(out[0], lib.moragent_trainer_free), policy = policy }, Trainer)
end

-- Frees the trainer now (not its policy); freeing twice is harmless.
function Trainer:free() free_handle(self, lib.moragent_trainer_free) end

-- A JSON value of the statistics: a number, or NaN for null (a value JSON cannot hold, or the
-- entropy of an expert that served no step).
local function stats_number(text)
  if text == "null" then return 0 / 0 end
  return tonumber(text)
end

-- Decodes the statistics JSON of moragent_trainer_last_stats without a JSON library. The object
-- is flat and its values are numbers, null or arrays of those, which two patterns find: each
-- key becomes a field (update, episodes, steps, success_rate, mean_return,
-- switches_per_episode, expert_utilisation = { ... }, ...; null as NaN), and `json` keeps the
-- text as the library wrote it.
function M.decode_stats(json)
  local stats = { json = json }
  for key, value in json:gmatch('"([%w_]+)":([%w%.%+%-]+)') do stats[key] = stats_number(value) end
  for key, body in json:gmatch('"([%w_]+)":(%b[])') do
    local values = {}
    for item in body:sub(2, -2):gmatch("[^,]+") do values[#values + 1] = stats_number(item) end
    stats[key] = values
  end
  return stats
end

-- The last update's statistics as M.decode_stats gives them ({ json = "{}" } before the first).
function Trainer:last_stats()
  local length = ffi.new("size_t[1]")
  local status = lib.moragent_trainer_last_stats(self.handle, nil, 0, length)
  if status ~= lib.MORAGENT_ERROR_BUFFER_TOO_SMALL then check(status) end
  local text = ffi.new("char[?]", tonumber(length[0]) + 1)
  check(lib.moragent_trainer_last_stats(self.handle, text, tonumber(length[0]) + 1, length))
  return M.decode_stats(ffi.string(text, length[0]))
end

-- One update from every episode the policy ended since the last one, which it then releases;
-- returns the statistics (as Trainer:last_stats). progress(done, total) is called after every
-- forward/backward pass; returning true stops the update with an "aborted" error, and a
-- stopped or refused update changes nothing and keeps the episodes.
function Trainer:update(progress)
  local callback, raised = progress_callback(progress)
  local status = lib.moragent_trainer_update(self.handle, callback, nil)
  if callback then callback:free() end
  if raised() ~= nil then error(raised(), 0) end
  check(status)
  return self:last_stats()
end
-- The progress callback re-enters Lua from C: keep this call out of compiled traces.
jit.off(Trainer.update)

-- Saves the whole training state (experts, router, optimiser, counters) as a policy bundle
-- folder; a crash while saving leaves the previous bundle at `path` whole.
function Trainer:save(path) check(lib.moragent_trainer_save(self.handle, c_string(path, "path"))) end

-- Restores a bundle saved by a trainer with the same settings over a policy of the same shapes:
-- the next update is then the one the saved trainer would have made.
function Trainer:load(path) check(lib.moragent_trainer_load(self.handle, c_string(path, "path"))) end

-- Writes expert `k` (0-based) of the policy as a PEFT adapter folder.
function Trainer:export_expert(k, folder)
  check(lib.moragent_trainer_export_expert(self.handle, size_value(k, "expert"), c_string(folder, "folder")))
end

return M
