-- Loads a model folder, tokenizes a prompt, and prints a greedy and a sampled continuation.
--
-- From the repository root, after `swift build`:
--   MORAGENT_LIBRARY=.build/debug/libmoragent.so LUA_PATH="bindings/lua/?.lua;;" \
--       luajit examples/lua/generate.lua Tests/MoRAgentTests/Fixtures/models/qwen2-tiny "You are in the kitchen. > go to"

local moragent = require("moragent")

local model_dir, prompt = arg[1], arg[2] or "You are in the kitchen. > go to"
if not model_dir then
  io.stderr:write("usage: luajit generate.lua MODEL_DIR [PROMPT]\n")
  os.exit(2)
end

print("libmoragent " .. moragent.version())
moragent.set_log_callback(function(level, message) io.stderr:write(("[moragent %d] %s\n"):format(level, message)) end)

local ok, err = pcall(function()
  local engine = moragent.load(model_dir)
  local ids = engine:tokenize(prompt)
  print(("prompt: %s -> %d ids"):format(prompt, #ids))
  for _, run in ipairs({ { "greedy", {} }, { "sampled", { temperature = 0.8, top_p = 0.95, seed = 1 } } }) do
    local options = run[2]
    options.max_new_tokens = 24
    local out = engine:generate(ids, options)
    print(("%s (%d tokens, stop reason %s): %s"):format(run[1], #out.ids, out.stop_reason, out.text))
  end
  engine:free()
end)
moragent.set_log_callback(nil)
if not ok then
  io.stderr:write(("error: %s\n"):format(tostring(err)))
  os.exit(1)
end
