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
  expect(lib.moragent_version_number() == 4000)
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

test("buffer cache", function()
  local engine = moragent.load(qwen2)
  local long_prompt = {}
  for i = 1, 1200 do long_prompt[i] = 5 + (i - 1) % 20 end -- hidden states of 1200 x 64 floats
  local first = engine:generate(long_prompt, { max_new_tokens = 4, ignore_eos = true })
  expect(moragent.buffer_cache_kept_bytes() >= 256 * 1024, "a long prompt's buffers are kept")
  moragent.set_buffer_cache_limit(0)
  expect(moragent.buffer_cache_kept_bytes() == 0, "a limit of 0 frees them")
  local again = engine:generate(long_prompt, { max_new_tokens = 4, ignore_eos = true })
  expect(moragent.buffer_cache_kept_bytes() == 0, "and keeps nothing more")
  expect(table.concat(again.ids, ",") == table.concat(first.ids, ","), "the same tokens either way")
  expect(not pcall(moragent.set_buffer_cache_limit, -1), "a negative limit is refused")
  moragent.set_buffer_cache_limit(4 * 2 ^ 30)
  engine:free()
end)

-- ---- 0.2: experts, routers, plugins, policies --------------------------------------------

local adapters = root .. "/Tests/MoRAgentTests/Fixtures/adapters/qwen2-tiny/"
local fast = { max_new_tokens = 4, temperature = 0, ignore_eos = true }
local hall = "You are in the hall."

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local function experts_of(policy, episode, n, observation)
  local out = {}
  for t = 1, n do out[t] = policy:step(episode, observation or hall, "find the key").expert or -1 end
  return out
end

-- A scratch folder, and the plugins built into it the way Tests/bindings/c/run.sh builds them.
local scratch = os.tmpname()
os.remove(scratch)
assert(os.execute("mkdir -p " .. scratch) == 0 or true)
local function build_plugin(source, name, define)
  local output = scratch .. "/" .. name
  local command = string.format("cc -std=c99 -Wall -Wextra -Werror -shared -fPIC -I %s/include %s %s -o %s",
                                root, define and ("-D" .. define) or "", source, output)
  local status = os.execute(command)
  assert(status == 0 or status == true, "cannot build " .. name)
  return output
end
local round_robin = build_plugin(root .. "/examples/c/plugins/round_robin.c", "round_robin.so")
local wrong_version = build_plugin(root .. "/Tests/bindings/c/plugins/test_plugin.c", "test_plugin_WRONG_VERSION.so",
                                   "WRONG_VERSION")

local peft = moragent.experts(engine, 0)
peft:load_peft(adapters .. "expert0")
peft:load_peft(adapters .. "expert1")

test("expert sets: create, load and save PEFT", function()
  local set = moragent.experts(engine, 2, { rank = 4, alpha = 8, use_rslora = true, seed = 3,
                                            target_modules = { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                               "up_proj", "down_proj" } })
  expect(set:count() == 2)
  expect(set:load_peft(adapters .. "expert0") == 2 and set:count() == 3)
  set:save_peft(2, scratch .. "/saved")
  expect(read_all(scratch .. "/saved/adapter_model.safetensors") == read_all(adapters .. "expert0/adapter_model.safetensors"),
         "a loaded adapter saves back bit for bit")
  set:free()
  set:free()
  raises(lib.MORAGENT_ERROR_INVALID_HANDLE, function() set:count() end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.experts(engine, 1, { rank = 0 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.experts(engine, 1, { target_modules = { "lm_head" } }) end)
  raises(lib.MORAGENT_ERROR_IO, function() peft:load_peft(scratch .. "/nowhere") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() peft:save_peft(2, scratch .. "/x") end)
end)

test("fixed routes reach the experts", function()
  local base = moragent.policy(engine, peft, moragent.fixed_router(2, nil), fast):step(0, hall, "g")
  local first = moragent.policy(engine, peft, moragent.fixed_router(2, 0), fast):step(0, hall, "g")
  expect(base.expert == nil and first.expert == 0)
  expect(base.probabilities[1] == 0 and base.probabilities[2] == 0 and first.probabilities[1] == 1)
  expect(#first.ids == 4 and #first.logprobs == 4 and first.generation_seconds > 0 and not first.action_valid)
  local differs = false
  for i = 1, 4 do differs = differs or first.logprobs[i] ~= base.logprobs[i] end
  expect(differs, "the expert moves the log-probabilities")
  local fresh = moragent.experts(engine, 2)
  local same = moragent.policy(engine, fresh, moragent.fixed_router(2, 1), fast):step(0, hall, "g")
  for i = 1, 4 do expect(same.logprobs[i] == base.logprobs[i], "B = 0 is the base model") end
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.fixed_router(2, 2) end)
end)

test("a Lua router alternates experts and the trace counts switches", function()
  local seen
  local router = moragent.callback_router(2, function(f)
    seen = f
    return f.step % 2 == 0 and { 1, 0 } or { 0, 1 }
  end)
  expect(router:expert_count() == 2)
  local policy = moragent.policy(engine, peft, router, fast)
  expect(table.concat(experts_of(policy, 5, 4), ",") == "0,1,0,1")
  expect(seen.episode == 5 and seen.step == 3 and seen.history_count == 3 and seen.observation == hall)
  expect(seen.goal == "find the key")
  policy:end_episode(5, 0.5, true)
  expect(policy:trace() == '{"episode":5,"steps":4,"experts":[0,1,0,1],"switches":3,"reward":0.5,"success":true}',
         policy:trace())
  policy:clear_ended()
  expect(policy:trace() == "")
end)

test("a Lua router's errors and bad weights", function()
  local calls, answer = 0, nil
  local policy = moragent.policy(engine, peft, moragent.callback_router(2, function(f)
    calls = calls + 1
    if answer == "raise" then error("no such room", 0) end
    return answer
  end), fast)
  answer = "raise"
  local ok, err = pcall(policy.step, policy, 0, hall, "g")
  expect(not ok and err == "no such room", "the router's own error is re-raised: " .. tostring(err))
  answer = { 0 / 0, 0 }
  local e = raises(lib.MORAGENT_ERROR_CALLBACK, function() policy:step(0, hall, "g") end)
  expect(e.message:find("nan", 1, true) and e.name == "callback failed", e.message)
  answer = { 0, -1 }
  raises(lib.MORAGENT_ERROR_CALLBACK, function() policy:step(0, hall, "g") end)
  answer = { 1 }
  ok, err = pcall(policy.step, policy, 0, hall, "g")
  expect(not ok and tostring(err):find("1 weights for 2 experts", 1, true), tostring(err))
  answer = { 1, 3 }
  local mixed = policy:step(0, hall, "g")
  expect(mixed.expert == nil and mixed.probabilities[1] == 0.25 and mixed.probabilities[2] == 0.75)
  policy:end_episode(0, 1, true)
  expect(policy:trace():find('"steps":1,', 1, true), "failed steps took no step")
  expect(calls == 5)
end)

test("a Lua router lives as long as its policy", function()
  local policy = moragent.policy(engine, peft, moragent.callback_router(2, function(f) return { 0, 1 } end), fast)
  collectgarbage()
  collectgarbage()
  expect(policy:step(0, hall, "g").expert == 1)
  policy.router:free()
  collectgarbage()
  expect(policy:step(0, hall, "g").expert == 1, "the policy keeps the router (and its callback)")
  raises(lib.MORAGENT_ERROR_INVALID_HANDLE, function() policy.router:expert_count() end)
end)

test("a policy is busy while its router runs", function()
  local policy, inner_status
  policy = moragent.policy(engine, peft, moragent.callback_router(2, function(f)
    if f.episode == 1 then
      local ok, err = pcall(policy.step, policy, 2, "again", "g")
      inner_status = not ok and err.status
    end
    return { 1, 0 }
  end), fast)
  expect(policy:step(1, hall, "g").expert == 0)
  expect(inner_status == lib.MORAGENT_ERROR_BUSY)
end)

test("phase routers route, save and load", function()
  local small = { expert_count = 2, attention_dim = 16, attention_heads = 2, lstm_hidden = 8, lstm_layers = 2,
                  mlp_hidden = 8, seed = 3 }
  local router = moragent.phase_router(64, small)
  router:save_phase(scratch .. "/phase.safetensors")
  local loaded = moragent.load_phase_router(scratch .. "/phase.safetensors")
  expect(loaded:expert_count() == 2)
  local a, b = moragent.policy(engine, peft, router, fast), moragent.policy(engine, peft, loaded, fast)
  for _, observation in ipairs({ hall, "A locked door.", "The kitchen has a drawer." }) do
    local x, y = a:step(0, observation, "find the key"), b:step(0, observation, "find the key")
    expect(x.expert == y.expert and x.probabilities[1] == y.probabilities[1])
    expect(math.abs(x.probabilities[1] + x.probabilities[2] - 1) < 1e-5)
  end
  local narrow = moragent.phase_router(32, small)
  local err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.policy(engine, peft, narrow) end)
  expect(err.message:find("hidden size 32", 1, true))
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.phase_router(64, { attention_heads = 3 }) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.fixed_router(2, 0):save_phase(scratch .. "/x") end)
end)

test("a trajectory router keeps each episode's first choice", function()
  local calls = 0
  local inner = moragent.callback_router(2, function(f)
    calls = calls + 1
    return f.episode % 2 == 0 and { 1, 0 } or { 0, 1 }
  end)
  local router = moragent.trajectory_router(inner)
  inner:free()
  local policy = moragent.policy(engine, peft, router, fast)
  expect(table.concat(experts_of(policy, 1, 3), ",") == "1,1,1")
  expect(table.concat(experts_of(policy, 2, 2), ",") == "0,0")
  expect(calls == 2)
end)

test("plugins: a round-robin router, and broken plugins refused", function()
  moragent.load_plugin(round_robin)
  local three = moragent.experts(engine, 3, { rank = 4 })
  local router = moragent.router_from_kind("round_robin", '{"period": 2}', 3)
  local policy = moragent.policy(engine, three, router, fast)
  expect(table.concat(experts_of(policy, 0, 6), ",") == "0,0,1,1,2,2")
  policy:end_episode(0, 1, true)
  expect(policy:trace():find('"switches":2', 1, true))
  local err = raises(lib.MORAGENT_ERROR_UNSUPPORTED, function() moragent.load_plugin(wrong_version) end)
  expect(err.message:find("test_plugin_WRONG_VERSION.so", 1, true) and err.message:find("API version 999", 1, true))
  err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.load_plugin(round_robin) end)
  expect(err.message:find("already loaded", 1, true))
  raises(lib.MORAGENT_ERROR_IO, function() moragent.load_plugin(scratch .. "/missing.so") end)
  err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.router_from_kind("round_robin", '{"period": 0}', 3) end)
  expect(err.message:find("period", 1, true))
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.router_from_kind("nothing", nil, 3) end)
end)

test("policies: templates, episodes and errors", function()
  local opts = { max_new_tokens = 4, temperature = 0, ignore_eos = true, first_step_template = "FIRST {goal}/{observation}",
                 chatml = true }
  local policy = moragent.policy(engine, peft, moragent.fixed_router(2, 0), opts)
  local step = policy:step(0, "hall", "key")
  expect(engine:detokenize(step.prompt_ids) == "<|im_start|>user\nFIRST key/hall<|im_end|>\n<|im_start|>assistant\n")
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(0, 0 / 0, true) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(0, math.huge, true) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(9, 1, true) end)
  policy:end_episode(0, 1, false)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(0, 1, false) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:step(0, "hall", "key") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:step(1, "ab\255", "key") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:step(1.5, "hall", "key") end)
  local err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:step(1, "ha\0ll", "key") end)
  expect(err.message:find("NUL", 1, true))
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function()
    moragent.policy(engine, peft, moragent.fixed_router(2, 0), { later_step_template = "a\0b" })
  end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() moragent.policy(engine, peft, moragent.fixed_router(3, 0)) end)
  policy:free()
  policy:free()
  raises(lib.MORAGENT_ERROR_INVALID_HANDLE, function() policy:step(1, "hall", "key") end)
end)

test("policies: a batch of steps equals one step per episode", function()
  local opts = { max_new_tokens = 4, temperature = 1, ignore_eos = true, seed = 5 }
  local alone = moragent.policy(engine, peft, moragent.fixed_router(2, 1), opts)
  local batched = moragent.policy(engine, peft, moragent.fixed_router(2, 1), opts)
  local steps = { { 4, "hall", "find the key" }, { 5, "a long corridor with doors", "find the door" } }
  local many = batched:step_batch(steps)
  for i, s in ipairs(steps) do
    local one = alone:step(s[1], s[2], s[3])
    expect(#one.ids == #many[i].ids)
    for j = 1, #one.ids do expect(one.ids[j] == many[i].ids[j], "same tokens alone and in a batch") end
  end
  local err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() batched:step_batch({ { 6, "hall", "g" }, { 6, "hall", "g" } }) end)
  expect(err.message:find("twice", 1, true))
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() batched:step_batch({}) end)
  alone:free()
  batched:free()
end)

-- Makes a policy and drops it, returning only the addresses of its handles.
local function orphan_policy()
  local experts = moragent.experts(engine, 1, { rank = 4 })
  local router = moragent.fixed_router(1, 0)
  local policy = moragent.policy(engine, experts, router, fast)
  local function address(h) return tonumber(ffi.cast("uintptr_t", h)) end
  return address(experts.handle), address(router.handle), address(policy.handle)
end

test("collected expert sets, routers and policies are freed", function()
  local e, r, p = orphan_policy()
  local count = ffi.new("size_t[1]")
  expect(lib.moragent_policy_clear_ended(ffi.cast("moragent_policy *", p)) == lib.MORAGENT_OK, "live before")
  collectgarbage()
  collectgarbage()
  expect(lib.moragent_experts_count(ffi.cast("moragent_experts *", e), count) == lib.MORAGENT_ERROR_INVALID_HANDLE)
  expect(lib.moragent_router_expert_count(ffi.cast("moragent_router *", r), count) == lib.MORAGENT_ERROR_INVALID_HANDLE)
  expect(lib.moragent_policy_clear_ended(ffi.cast("moragent_policy *", p)) == lib.MORAGENT_ERROR_INVALID_HANDLE)
end)

-- ---- 0.4: reinforcement learning ----------------------------------------------------------

local rl_opts = { max_new_tokens = 3, seed = 5, stop = {}, first_step_template = "{goal}: {observation} ->",
                  later_step_template = "{goal}: {history} {observation} ->",
                  history_entry_template = "{observation} {action}", history_length = 1 }

-- A policy of 2 experts under a small phase router, and a trainer of it (learning rate 1e-2
-- unless `settings` says otherwise).
local function make_rl(settings)
  local experts = moragent.experts(engine, 2, { rank = 4, alpha = 8, seed = 1 })
  local router = moragent.phase_router(64, { expert_count = 2, attention_dim = 8, attention_heads = 2, lstm_hidden = 6,
                                             lstm_layers = 2, history_length = 2, mlp_hidden = 8, anneal_updates = 10,
                                             seed = 3 })
  local policy = moragent.policy(engine, experts, router, rl_opts)
  local all = { learning_rate = 1e-2 }
  for k, v in pairs(settings or {}) do all[k] = v end
  return experts, policy, moragent.trainer(policy, all)
end

-- `groups` groups of `n` episodes of `steps` steps, numbered from `first`; reward 1 when the
-- first token id of the last step is even.
local function play(policy, first, groups, n, steps)
  first, groups, n, steps = first or 0, groups or 2, n or 2, steps or 2
  for g = 0, groups - 1 do
    for j = 0, n - 1 do
      local episode, won = first + g * n + j, false
      policy:begin_episode(episode, first + g)
      for t = 0, steps - 1 do
        won = policy:step(episode, ("room %d step %d"):format(g, t), "find the even token").ids[1] % 2 == 0
      end
      policy:end_episode(episode, won and 1 or 0, won)
    end
  end
end

test("the cdef's parameter structs match the header field for field", function()
  local header = read_all(root .. "/include/moragent.h")
  local source = assert(io.open(scratch .. "/layout.c", "w"))
  source:write('#include <stddef.h>\n#include <stdio.h>\n#include "moragent.h"\nint main(void) {\n')
  local expected = {}
  for _, struct in ipairs({ "moragent_engine_info", "moragent_generation_params", "moragent_lora_params",
                            "moragent_step_features", "moragent_phase_router_params", "moragent_policy_params",
                            "moragent_trainer_params" }) do
    local body = assert(header:match("typedef struct " .. struct .. " {(.-)} " .. struct .. ";"), struct)
    source:write(('  printf("%%zu\\n", sizeof(%s));\n'):format(struct))
    expected[#expected + 1] = { struct, nil, ffi.sizeof(struct) }
    for declaration in body:gsub("/%*.-%*/", ""):gmatch("([^;]+);") do
      local field = declaration:match("([%w_]+)%s*$")
      source:write(('  printf("%%zu\\n", offsetof(%s, %s));\n'):format(struct, field))
      expected[#expected + 1] = { struct, field, ffi.offsetof(struct, field) or "missing" }
    end
  end
  source:write("  return 0;\n}\n")
  source:close()
  local built = os.execute(("cc -std=c99 -I %s/include %s/layout.c -o %s/layout"):format(root, scratch, scratch))
  expect(built == 0 or built == true, "cannot build the layout program")
  local run = assert(io.popen(scratch .. "/layout"))
  local i = 0
  for line in run:lines() do
    i = i + 1
    local struct, field, lua_value = unpack(expected[i])
    expect(tonumber(line) == lua_value, ("%s.%s: C says %s, the cdef %s"):format(struct, field or "sizeof", line,
                                                                              tostring(lua_value)))
  end
  run:close()
  expect(i == #expected and i > 40, "checked " .. i .. " values")
end)

test("statistics decode without a JSON library", function()
  local stats = moragent.decode_stats('{"update":2,"loss":-1.5e-07,"mean_return":0.25,"expert_utilisation":[1,0],' ..
                                      '"expert_entropy_bits":[3.5,null],"approx_kl":null}')
  expect(stats.update == 2 and stats.loss == -1.5e-07 and stats.mean_return == 0.25)
  expect(same(stats.expert_utilisation, { 1, 0 }) and stats.expert_entropy_bits[1] == 3.5)
  expect(#stats.expert_entropy_bits == 2 and stats.expert_entropy_bits[2] ~= stats.expert_entropy_bits[2], "null is NaN")
  expect(stats.approx_kl ~= stats.approx_kl and stats.json:sub(1, 11) == '{"update":2')
  expect(next(moragent.decode_stats("{}"), nil) == "json")
end)

test("trainer: an update on a tiny world, its statistics and metrics file", function()
  local metrics = scratch .. "/metrics.jsonl"
  local _, policy, trainer = make_rl({ metrics_path = metrics })
  expect(trainer:last_stats().json == "{}")
  play(policy)
  expect(policy:recorded_steps() == 8)
  local calls = {}
  local stats = trainer:update(function(done, total) calls[#calls + 1] = { done, total } end)
  expect(stats.update == 1 and stats.episodes == 4 and stats.steps == 8, stats.json)
  expect(#calls > 0 and calls[#calls][1] == #calls and calls[#calls][2] >= #calls, "progress after every pass")
  expect(math.abs(stats.expert_utilisation[1] + stats.expert_utilisation[2] - 1) < 1e-9)
  expect(stats.temperature == 2 and stats.grad_norm > 0 and stats.success_rate >= 0 and stats.success_rate <= 1)
  expect(stats.json:sub(1, 12) == '{"update":1,' and trainer:last_stats().json == stats.json)
  expect(policy:recorded_steps() == 0, "an update releases its episodes")
  play(policy, 10)
  expect(trainer:update().update == 2)
  local lines = {}
  for line in read_all(metrics):gmatch("[^\n]+") do lines[#lines + 1] = moragent.decode_stats(line) end
  expect(#lines == 2 and lines[1].update == 1 and lines[2].update == 2)
  expect(lines[2].temperature < 2, "the router temperature anneals per update")
end)

test("trainer: refused updates lose nothing", function()
  local _, policy, trainer = make_rl()
  local err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() trainer:update() end)
  expect(err.message:find("no ended episode", 1, true), err.message)
  policy:begin_episode(0, 0)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:begin_episode(0, 0) end)
  policy:step(0, "o", "g")
  err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(0, 0 / 0, false) end)
  expect(err.message:find("not finite", 1, true), err.message)
  policy:end_episode(0, 1, true)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:end_episode(0, 1, true) end)
  trainer:export_expert(0, scratch .. "/before")
  err = raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() trainer:update() end)
  expect(err.message:find("group 0 has one episode", 1, true), err.message)
  expect(policy:recorded_steps() == 1)
  trainer:export_expert(0, scratch .. "/after")
  expect(read_all(scratch .. "/before/adapter_model.safetensors") == read_all(scratch .. "/after/adapter_model.safetensors"),
         "a refused update changes no parameter")
  policy:begin_episode(1, 0)
  policy:step(1, "o", "g")
  policy:end_episode(1, 0, false)
  raises(lib.MORAGENT_ERROR_ABORTED, function() trainer:update(function() return true end) end)
  expect(policy:recorded_steps() == 2, "an aborted update keeps the episodes")
  local ok, raised = pcall(trainer.update, trainer, function() error("mine", 0) end)
  expect(not ok and raised == "mine", "a progress function's own error is re-raised")
  expect(policy:recorded_steps() == 2)
  expect(trainer:update().episodes == 2)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:begin_episode(1.5, 0) end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() policy:begin_episode(2, "g") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() trainer:export_expert(2, scratch .. "/x") end)
  raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() trainer:save("a\0b") end)
  trainer:free()
  trainer:free()
  raises(lib.MORAGENT_ERROR_INVALID_HANDLE, function() trainer:update() end)
end)

test("trainer settings: names, estimators and bad values", function()
  for _, bad in ipairs({ { learning_rat = 1 }, { advantage = "ppo2" }, { mini_batches = 0 }, { mini_batches = 1.5 },
                         { epochs = 2 ^ 40 }, { gamma = 0 / 0 }, { learning_rate = "fast" }, { seed = -1 },
                         { metrics_path = "a\0b" }, { cosine = "yes" } }) do
    raises(lib.MORAGENT_ERROR_INVALID_ARGUMENT, function() make_rl(bad) end)
  end
  for name in pairs(moragent.ADVANTAGES) do
    local _, policy, trainer = make_rl({ advantage = name, cosine = false, normalize_by_std = true })
    play(policy)
    expect(trainer:update().steps == 8, name)
  end
end)

test("trainer: save, load, and the same next update", function()
  local settings = { diversity_interval = 1, diversity_samples = 2 }
  local _, policy, trainer = make_rl(settings)
  play(policy)
  trainer:update()
  trainer:save(scratch .. "/bundle")
  play(policy, 20)
  local expected = trainer:update()
  trainer:export_expert(1, scratch .. "/expected")

  local _, policy2, trainer2 = make_rl(settings)
  trainer2:load(scratch .. "/bundle")
  expect(trainer2:last_stats().json == "{}")
  play(policy2, 20)
  local resumed = trainer2:update()
  trainer2:export_expert(1, scratch .. "/resumed")
  local function timeless(json) return (json:gsub(',"seconds":[^,}]*', "")) end
  expect(resumed.update == 2 and timeless(resumed.json) == timeless(expected.json), resumed.json)
  expect(read_all(scratch .. "/expected/adapter_model.safetensors") == read_all(scratch .. "/resumed/adapter_model.safetensors"),
         "the resumed trainer's expert is bit-identical")

  local _, _, other = make_rl({ advantage = "grpo" })
  local err = raises(lib.MORAGENT_ERROR_MALFORMED_FILE, function() other:load(scratch .. "/bundle") end)
  expect(err.message:find("estimator", 1, true), err.message)
  raises(lib.MORAGENT_ERROR_IO, function() other:load(scratch .. "/missing") end)
end)

test("trainer: recompute_activations gives the same updates", function()
  local function timeless(json) return (json:gsub(',"seconds":[^,}]*', "")) end
  local results = {}
  for _, recompute in ipairs({ false, true }) do
    local _, policy, trainer = make_rl({ recompute_activations = recompute, diversity_interval = 1, diversity_samples = 2 })
    play(policy)
    trainer:update()
    play(policy, 20)
    results[#results + 1] = timeless(trainer:update().json)
    trainer:export_expert(1, scratch .. "/recompute-" .. tostring(recompute))
  end
  expect(results[2] == results[1], results[2])
  expect(read_all(scratch .. "/recompute-false/adapter_model.safetensors") == read_all(scratch .. "/recompute-true/adapter_model.safetensors"),
         "the same expert with and without recomputation")
end)

-- Makes a trainer and drops it, returning only its address.
local function orphan_trainer()
  local _, _, trainer = make_rl()
  return tonumber(ffi.cast("uintptr_t", trainer.handle))
end

test("collected trainers are freed", function()
  local trainer = ffi.cast("moragent_trainer *", orphan_trainer())
  local length = ffi.new("size_t[1]")
  expect(lib.moragent_trainer_last_stats(trainer, nil, 0, length) == lib.MORAGENT_ERROR_BUFFER_TOO_SMALL, "live before")
  collectgarbage()
  collectgarbage()
  expect(lib.moragent_trainer_last_stats(trainer, nil, 0, length) == lib.MORAGENT_ERROR_INVALID_HANDLE)
end)

peft:free()
os.execute("rm -rf " .. scratch)
engine:free()
print(string.format("lua: %d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
