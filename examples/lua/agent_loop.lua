-- An agent loop: a policy of 3 LoRA experts routed by a PA-MoE phase router acts in a toy text
-- world, "find the key": three rooms (hall, kitchen, study), a brass key in the study, a locked
-- front door in the hall. Each step the policy reads the observation and writes an action; an
-- action the world does not admit (with the random-weight test model, nearly all of them) is
-- taken as "look" and counted. Two episodes of at most 6 steps, then the routing trace. It prints
-- the same lines as examples/c/agent_loop.c.
--
-- From the repository root, after `swift build`:
--   MORAGENT_LIBRARY=.build/debug/libmoragent.so LUA_PATH="bindings/lua/?.lua;;" \
--       luajit examples/lua/agent_loop.lua Tests/MoRAgentTests/Fixtures/models/qwen2-tiny

local moragent = require("moragent")

local model_dir = arg[1]
if not model_dir then
  io.stderr:write("usage: luajit agent_loop.lua MODEL_DIR\n")
  os.exit(2)
end

local goal = "find the brass key and open the front door"
local max_steps = 6
local sights = { hall = "a locked front door", kitchen = "a table and a drawer", study = "a desk" }

-- The toy world's state, its observations and the actions it admits.
local World = {}
World.__index = World

local function new_world(room)
  return setmetatable({ room = room, key_in_study = true, carrying_key = false, door_open = false }, World)
end

function World:admissible()
  if self.room == "hall" then
    local actions = { "look", "go to kitchen", "go to study" }
    if self.carrying_key then actions[#actions + 1] = "open door" end
    return actions
  end
  local actions = { "look", "go to hall" }
  if self.room == "study" and self.key_in_study then actions[#actions + 1] = "take key" end
  return actions
end

function World:observe()
  local key = (self.room == "study" and self.key_in_study) and " with a brass key on it" or ""
  local exits = self.room == "hall" and "kitchen, study" or "hall"
  local carried = self.carrying_key and " You carry a brass key." or ""
  return ("You are in the %s. You see %s%s. You can go to: %s.%s"):format(self.room, sights[self.room], key, exits, carried)
end

function World:apply(action)
  if action:sub(1, 6) == "go to " then
    self.room = action:sub(7)
  elseif action == "take key" then
    self.key_in_study, self.carrying_key = false, true
  elseif action == "open door" then
    self.door_open = true
  end
end

local function admits(world, action)
  for _, a in ipairs(world:admissible()) do if a == action then return true end end
  return false
end

print("libmoragent " .. moragent.version())
local ok, err = pcall(function()
  local engine = moragent.load(model_dir)
  local hidden = engine:info().hidden_size
  -- Fresh experts start as the base model (B = 0); training makes them differ. Untrained, the
  -- phase router's random weights favour one expert throughout.
  local experts = moragent.experts(engine, 3, { rank = 8, alpha = 16, seed = 1 })
  local router = moragent.phase_router(hidden, { expert_count = 3, attention_dim = 64, lstm_hidden = 64,
                                                 lstm_layers = 2, mlp_hidden = 64, seed = 7 })
  local policy = moragent.policy(engine, experts, router,
                                 { temperature = 0.7, seed = 1, max_new_tokens = 24, stop = { "</action>" } })
  print(("experts: %d, router: phase (hidden %d)"):format(experts:count(), hidden))
  for episode = 0, 1 do
    local world = new_world(episode == 0 and "hall" or "kitchen")
    local steps, invalid = 0, 0
    while steps < max_steps and not world.door_open do
      local step = policy:step(episode, world:observe(), goal)
      -- A malformed response, or an action this state does not admit, is taken as "look".
      local admitted = step.action_valid and admits(world, step.action)
      local taken = admitted and step.action or "look"
      if not admitted then invalid = invalid + 1 end
      steps = steps + 1
      local p = step.probabilities
      print(('episode %d step %d: expert %s (p = %.3f %.3f %.3f), action "%s"%s'):format(
        episode, steps, step.expert and tostring(step.expert) or "base", p[1], p[2], p[3], taken,
        admitted and "" or " (the model's was not admissible)"))
      world:apply(taken)
    end
    policy:end_episode(episode, world.door_open and 1 or 0, world.door_open)
    print(("episode %d: reward %d, %d of %d actions not admissible"):format(episode, world.door_open and 1 or 0,
                                                                           invalid, steps))
  end
  for line in policy:trace():gmatch("[^\n]+") do print("trace: " .. line) end
  policy:free()
  router:free()
  experts:free()
  engine:free()
end)
if not ok then
  io.stderr:write(("error: %s\n"):format(tostring(err)))
  os.exit(1)
end
