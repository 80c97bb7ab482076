-- Tests of bindings/lua/moragent.lua on the fixture models; run from the repository root:
--   MORAGENT_LIBRARY=.build/debug/libmoragent.so luajit Tests/bindings/lua/test.lua
-- Prints one line per failure and ends with "lua: N passed, M failed".

local root = (debug.getinfo(1, "S").source:match("^@(.*)/Tests/bindings/lua/") or ".")
package.path = root .. "/bindings/lua/?.lua;" .. package.path
if not os.getenv("MORAGENT_LIBRARY") then
  error("set MORAGENT_LIBRARY to the libmoragent.so to test")
end

local ffi = require("ffi")
local moragent = require("moragent")
local lib = moragent.lib

local models = root .. "/Tests/MoRAgentTests/Fixtures/models/"
local qwen2 = models .. "qwen2-tiny"
local passed, failed = 0, 0

local function test(name, body)
  local ok, err = pcall(body)
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end

local function expect(condition, what)
  if not condition then error(what or "expectation failed", 2) end
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- Runs fn, which must raise a moragent error with `status`; returns the error.
local function raises(status, fn)
  local ok, err = pcall(fn)
  expect(not ok, "expected an error")
  expect(getmetatable(err) == moragent.Error, "not a moragent error: " .. tostring(err))
  expect(err.status == status, string.format("status %s, expected %d (%s)", tostring(err.status), status, err.message))
  expect(#err.message > 0 and tostring(err) == err.message, "no message")
  return err
end

-- The transformers reference of a fixture model: its greedy prompts and continuations.
local function reference(model)
  local f = assert(io.open(models .. model .. "/reference.json"))
  local json = f:read("*a")
  f:close()
  local function arrays(key)
    local body = json:match('"' .. key .. '"%s*:%s*(%b[])')
    local out = {}
    for list in body:sub(2, -2):gmatch("%b[]") do
      local ids = {}
      for n in list:gmatch("%-?%d+") do ids[#ids + 1] = tonumber(n) end
      out[#out + 1] = ids
    end
    return out
  end
  return arrays("greedy_prompts"), arrays("greedy")
end

local engine = moragent.load(qwen2)

test("version", function()
  expect(moragent.version() == moragent.VERSION)
  expect(lib.moragent_version_number() == 1000)
end)

test("openblas core type from cpu flags", function()
  local path = os.tmpname()
  local f = io.open(path, "w")
  f:write("processor : 0\nflags : fpu avx2 fma avx512f avx512bw avx512vl\n")
  f:close()
  expect(moragent.openblas_core_type(path) == "SkylakeX")
  f = io.open(path, "w")
  f:write("flags : fpu avx2 fma\n")
  f:close()
  expect(moragent.openblas_core_type(path) == "Haswell")
  os.remove(path)
  expect(moragent.openblas_core_type(path) == nil)
end)

test("info", function()
  local info = engine:info()
  expect(info.architecture == "Qwen2ForCausalLM")
  expect(info.vocabulary_size == 512 and info.hidden_size == 64 and info.layer_count == 2)
  expect(info.max_position_embeddings == 256 and info.parameter_count > 0 and info.tokenizer_vocabulary_size > 0)
end)

test("tokenize and detokenize round trip", function()
  for _, text in ipairs({ "You are in the kitchen. > go to", "", "héllo ✓ 你好", "a\0b", ("kitchen "):rep(500) }) do
    local ids = engine:tokenize(text)
    for _, id in ipairs(ids) do expect(id >= 0 and id < 512) end
    expect(engine:detokenize(ids) == text, "round trip of " .. text:sub(1, 20))
  end
end)

test("a first buffer that is too small is retried at the reported size", function()
  local guess = moragent.initial_capacity
  moragent.initial_capacity = function() return 0 end
  local ok, err = pcall(function()
    local ids = engine:tokenize("You are in the kitchen.")
    expect(#ids > 1 and engine:detokenize(ids) == "You are in the kitchen.")
  end)
  moragent.initial_capacity = guess
  expect(ok, tostring(err))
end)

for _, model in ipairs({ "qwen2-tiny", "llama-tiny", "mistral-tiny" }) do
  test("greedy matches transformers: " .. model, function()
    local prompts, greedy = reference(model)
    expect(#prompts == 3 and #greedy == 3, "reference not parsed")
    local e = moragent.load(models .. model)
    for i = 1, #prompts do
      local out = e:generate(prompts[i], { max_new_tokens = #greedy[i], ignore_eos = true })
      expect(same(out.ids, greedy[i]), "prompt " .. i)
      expect(out.stop_reason == "max_new_tokens" and #out.logprobs == #greedy[i] and #out.entropies == #greedy[i])
      for t = 1, #greedy[i] do
        -- A log-probability is at most 0; an entropy over V tokens lies in [0, log V].
        expect(out.logprobs[t] <= 0 and out.entropies[t] >= 0 and out.entropies[t] <= math.log(512) + 1e-3,
               "statistics of token " .. t)
      end
    end
    e:free()
  end)
end

test("seeded sampling", function()
  local function run(seed)
    return engine:generate("go to", { max_new_tokens = 12, temperature = 1.0, top_p = 0.9, seed = seed, ignore_eos = true }).ids
  end
  expect(same(run(3), run(3)))
  expect(not same(run(3), run(4)))
end)

test("stop token and stop string", function()
  local greedy = engine:generate("go to", { max_new_tokens = 16, ignore_eos = true })
  local stop_id = greedy.ids[5]
  local out = engine:generate("go to", { max_new_tokens = 16, stop_token_ids = { stop_id } })
  expect(out.stop_reason == "stop_token" and out.ids[#out.ids] == stop_id and #out.ids <= 5)
  local last = greedy.text:match("[%z\1-\127\194-\244][\128-\191]*$")
  out = engine:generate("go to", { max_new_tokens = 16, ignore_eos = true, stop = { last } })
  expect(out.stop_reason == "stop_string")
  expect(out.text:sub(-#last) == last and greedy.text:sub(1, #out.text) == out.text)
end)

test("progress is reported and aborts", function()
  local seen = {}
  engine:generate("go to", { max_new_tokens = 5, ignore_eos = true, progress = function(done, total)
    seen[#seen + 1] = done .. "/" .. total
  end })
  expect(table.concat(seen, " ") == "0/5 1/5 2/5 3/5 4/5 5/5", table.concat(seen, " "))
  local err = raises(lib.MORAGENT_ERROR_ABORTED, function()
    engine:generate("go to", { max_new_tokens = 50, ignore_eos = true, progress = function(done) return done >= 2 end })
  end)
  expect(err.message:find("progress callback", 1, true))
  local ok, raised = pcall(engine.generate, engine, "go to", { max_new_tokens = 50, progress = function() error("mine", 0) end })
  expect(not ok and raised == "mine", "a callback's own error is re-raised")
  expect(#engine:generate("go to", { max_new_tokens = 2, ignore_eos = true }).ids == 2)
end)

test("errors carry status and message", function()
  local err = raises(lib.MORAGENT_ERROR_IO, function() moragent.load(models .. "no-such-model") end)
  expect(err.message:find("no-such-model", 1, true) and err.name == "i/o error")
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:tokenize("ab\255") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5 }, { temperature = 0 / 0 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5 }, { top_p = 1.5 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({}) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5, 512 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5, 2 ^ 40 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5 }, { max_new_tokens = -1 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() engine:generate({ 5 }, { stop = { "" } }) end)
end)

test("freed engines are refused", function()
  local e = moragent.load(qwen2)
  local address = e.handle
  e:free()
  e:free()
  raises(lib.MORAGENT_ERROR_INVALID_HANDLE, function() e:info() end)
  expect(lib.moragent_engine_free(address) == lib.MORAGENT_ERROR_INVALID_HANDLE, "raw double free")
  expect(ffi.string(lib.moragent_last_error()):find("not a live moragent_engine", 1, true))
end)

-- Loads an engine and drops it, returning only its address as a number: no stack slot of the
-- caller keeps the engine reachable.
local function orphan_engine()
  local e = moragent.load(qwen2)
  return tonumber(ffi.cast("uintptr_t", e.handle))
end

test("collected engines are freed", function()
  local address = ffi.cast("moragent_engine *", orphan_engine())
  local info = ffi.new("moragent_engine_info")
  info.struct_size = ffi.sizeof(info)
  expect(lib.moragent_engine_get_info(address, info) == lib.MORAGENT_OK, "live before collection")
  collectgarbage()
  collectgarbage()
  expect(lib.moragent_engine_get_info(address, info) == lib.MORAGENT_ERROR_INVALID_HANDLE, "freed by collection")
end)

test("log callback", function()
  local lines = {}
  moragent.set_log_callback(function(level, message) lines[#lines + 1] = { level, message } end)
  moragent.load(qwen2):free()
  moragent.set_log_callback(nil)
  expect(#lines >= 1 and lines[1][1] == 1 and lines[1][2]:find("Qwen2ForCausalLM", 1, true))
  local count = #lines
  moragent.load(qwen2):free()
  expect(#lines == count)
end)

engine:free()
print(string.format("lua: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
