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
-- Lua runs on one thread: progress and log callbacks are Lua functions, so do not share an
-- engine with other threads of the host while a Lua log callback is set.

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
    MORAGENT_ERROR_INTERNAL = -8
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

/* libc, to set OPENBLAS_CORETYPE before the library (and OpenBLAS with it) loads */
int setenv(const char *name, const char *value, int overwrite);
char *getenv(const char *name);
]]

local M = {}

M.VERSION_MAJOR, M.VERSION_MINOR, M.VERSION_PATCH = 0, 1, 0
M.VERSION = "0.1.0"

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

local function size_value(v, what)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v >= 2 ^ 53 then
    invalid_argument(string.format("%s must be a non-negative integer, got %s", what, tostring(v)))
  end
  return v
end

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
function Engine:generate(prompt, opts)
  opts = opts or {}
  if type(prompt) == "string" then prompt = self:tokenize(prompt) end
  local prompt_ids, prompt_len = int32_array(prompt, "prompt")
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

  local callback, raised = nil, nil
  if opts.progress then
    callback = ffi.cast("moragent_progress_fn", function(done, total)
      local ok, stop_now = pcall(opts.progress, tonumber(done), tonumber(total))
      if not ok then raised = stop_now; return 1 end
      return stop_now and 1 or 0
    end)
  end
  local out = ffi.new("moragent_generation *[1]")
  local status = lib.moragent_generate(self.handle, prompt_ids, prompt_len, params, callback, nil, out)
  if callback then callback:free() end
  if raised ~= nil then error(raised, 0) end
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
return M
