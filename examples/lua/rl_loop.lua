-- An RL loop: a PA-MoE policy (3 LoRA experts chosen per step by a small phase router) plays a
-- mini household world and learns from it with GiGPO. Each update plays one task instance 4
-- times (a group: GiGPO compares the rollouts of one instance, step by step where they meet the
-- same observation), episodes of at most 6 steps, then makes one update from them; 3 updates, one
-- line of statistics each. At the end it saves the trainer as a policy bundle and reloads it into
-- a fresh trainer.
--
-- The loop, per episode: policy:begin_episode -> (policy:step -> world:step) * ->
-- policy:end_episode; per update: trainer:update, which returns the statistics.
--
-- The world is the "pick" task of examples/household in its mini size (one kitchen, 3 or 4
-- receptacles, the same sentences and commands), without the appliances pick never needs. It is
-- drawn from the Park-Miller generator of examples/c/rl_loop.c, so both play the same worlds and
-- print the same lines. With the random-weight test model success stays near zero: this shows
-- the wiring.
--
-- From the repository root, after `swift build`:
--   MORAGENT_LIBRARY=.build/debug/libmoragent.so LUA_PATH="bindings/lua/?.lua;;" \
--       luajit examples/lua/rl_loop.lua Tests/MoRAgentTests/Fixtures/models/qwen2-tiny

local moragent = require("moragent")

local model_dir = arg[1]
if not model_dir then
  io.stderr:write("usage: luajit rl_loop.lua MODEL_DIR\n")
  os.exit(2)
end

local EXPERTS, UPDATES, GROUP_SIZE, MAX_STEPS = 3, 3, 4, 6

-- ---- the world ------------------------------------------------------------------------------

-- Park-Miller "minimal standard" generator: x * 48271 stays below 2^53, exact in doubles.
local lcg_state = 2024
local function draw(n)
  lcg_state = lcg_state * 48271 % 2147483647
  return lcg_state % n
end

-- The mini world's receptacle kinds in listing order, one of each ("cabinet 1"); cabinet and
-- drawer are containers (they start closed), countertop and sinkbasin are always present.
local KINDS = { "cabinet", "countertop", "drawer", "shelf", "sinkbasin" }
local PREPOSITION = { cabinet = "in", countertop = "on", drawer = "in", shelf = "on", sinkbasin = "in" }
local CONTAINER = { cabinet = true, drawer = true }
local OBJECTS = { "apple", "egg", "knife", "mug", "plate", "potato", "tomato" }

local function kind_of(name) return name:match("^%S+") end

-- "a apple 1 , a egg 1" or "nothing" (ALFWorld writes "a" before every name).
local function listing(names) return #names > 0 and "a " .. table.concat(names, " , a ") or "nothing" end

-- A task laid out as examples/household's make_task(size="mini", task_type="pick") lays it out:
-- 1 or 2 optional receptacles, a destination other than the sinkbasin, the target elsewhere, 1 or
-- 2 distractors of other kinds anywhere. Draws are retried until they fit, as in the C example.
local function make_task()
  local present, optional = { false, true, false, false, true }, { 1, 3, 4 }
  local extra = 1 + draw(2)
  while extra > 0 do
    local r = optional[draw(3) + 1]
    if not present[r] then present[r], extra = true, extra - 1 end
  end
  local destination
  repeat destination = draw(4) + 1 until present[destination]
  local chosen, target = {}, draw(#OBJECTS) + 1 -- "target" or "distractor" per object kind
  chosen[target] = "target"
  extra = 1 + draw(2)
  while extra > 0 do
    local k = draw(#OBJECTS) + 1
    if not chosen[k] then chosen[k], extra = "distractor", extra - 1 end
  end
  local task = { receptacles = {}, objects = {}, start = {}, target = OBJECTS[target] .. " 1",
                 destination = KINDS[destination] .. " 1" }
  for r = 1, #KINDS do if present[r] then task.receptacles[#task.receptacles + 1] = KINDS[r] .. " 1" end end
  for k = 1, #OBJECTS do
    if chosen[k] then
      local where
      repeat where = draw(#KINDS) + 1 until present[where] and not (chosen[k] == "target" and where == destination)
      local name = OBJECTS[k] .. " 1"
      task.objects[#task.objects + 1], task.start[name] = name, KINDS[where] .. " 1"
    end
  end
  -- Goals name kinds: any receptacle of the kind will do.
  task.goal = ("put some %s %s %s"):format(OBJECTS[target], PREPOSITION[KINDS[destination]], KINDS[destination])
  return task
end

local World = {}
World.__index = World

-- A world playing `task` and its first observation.
local function new_world(task)
  local w = setmetatable({ task = task, at = {}, open = {}, steps = 0, won = false }, World)
  for name, where in pairs(task.start) do w.at[name] = where end
  return w, w:room() .. " " .. w:hold()
end

function World:room() return "you are in the kitchen . you see " .. listing(self.task.receptacles) .. " ." end

-- Every observation ends with what the player holds.
function World:hold() return "you hold " .. (self.held or "nothing") .. " ." end

-- What a receptacle shows: a closed container hides its contents.
function World:status(r)
  local here = {}
  for _, o in ipairs(self.task.objects) do if self.at[o] == r then here[#here + 1] = o end end
  local contents = (PREPOSITION[kind_of(r)] == "in" and "in it" or "on the " .. r) .. " , you see " .. listing(here) .. " ."
  if not CONTAINER[kind_of(r)] then return contents end
  if not self.open[r] then return ("the %s is closed ."):format(r) end
  return ("the %s is open . %s"):format(r, contents)
end

-- The commands this state admits (as HouseholdEnv lists them), each a function doing it and
-- returning its sentence.
function World:commands()
  local here, held = self.location, self.held
  local commands = {
    look = function() return self:room() .. (here and (" you are at %s . %s"):format(here, self:status(here)) or "") end,
    inventory = function() return nil end,
  }
  for _, r in ipairs(self.task.receptacles) do
    if r ~= here then
      commands["go to " .. r] = function()
        self.location = r
        return ("you arrive at %s . %s"):format(r, self:status(r))
      end
    end
  end
  if here and CONTAINER[kind_of(here)] then
    commands[(self.open[here] and "close " or "open ") .. here] = function()
      self.open[here] = not self.open[here]
      return self.open[here] and ("you open the %s . %s"):format(here, self:status(here))
                             or ("you close the %s ."):format(here)
    end
  end
  if here and (self.open[here] or not CONTAINER[kind_of(here)]) then
    if held then
      local preposition = PREPOSITION[kind_of(here)]
      commands[("put %s %s %s"):format(held, preposition, here)] = function()
        self.at[held], self.held = here, nil
        return ("you put the %s %s the %s ."):format(held, preposition, here)
      end
    else
      for _, o in ipairs(self.task.objects) do
        if self.at[o] == here then
          commands[("take %s from %s"):format(o, here)] = function()
            self.at[o], self.held = nil, o
            return ("you pick up the %s from the %s ."):format(o, here)
          end
        end
      end
    end
  end
  return commands
end

-- Plays one command (any text; matched after collapsing spaces and lowercasing, as
-- HouseholdEnv.step does); returns the observation and the reward, 1 on the winning step.
function World:step(action)
  local normalised = action:lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  local command = self:commands()[normalised]
  self.steps = self.steps + 1
  local text = "nothing happens ."
  if command then text = command() end -- nil for inventory: the suffix alone
  self.won = self.at[self.task.target] == self.task.destination
  return (text and text .. " " or "") .. self:hold(), self.won and 1 or 0
end

-- ---- the policy and its trainer -------------------------------------------------------------

-- A policy of fresh experts and a small phase router, and a GiGPO trainer bound to it. Made
-- twice with the same seeds: trainers of equal shapes and settings can load each other's bundles.
local function make_trainer(engine)
  local experts = moragent.experts(engine, EXPERTS, { rank = 4, alpha = 8, seed = 1 })
  -- PA-MoE's router, shrunk: its temperature anneals from 2 to 0.5 over the 3 updates.
  local router = moragent.phase_router(engine:info().hidden_size, {
    expert_count = EXPERTS, attention_dim = 16, attention_heads = 2, lstm_hidden = 16, lstm_layers = 2,
    history_length = 3, mlp_hidden = 16, anneal_updates = UPDATES, seed = 7 })
  -- RL samples (temperature 1); each step's seed derives from (seed, episode, step). A compact
  -- prompt with the last step as history keeps the example quick.
  local policy = moragent.policy(engine, experts, router, {
    temperature = 1, seed = 1, max_new_tokens = 12, stop = { "</action>" },
    first_step_template = "Task: {goal}\nObservation: {observation}\nAction inside <action> </action>:",
    later_step_template = "Task: {goal}\nLast: {history}\nObservation: {observation}\nAction inside <action> </action>:",
    history_entry_template = "{observation} > {action}", history_length = 1 })
  return policy, moragent.trainer(policy, { advantage = "gigpo", learning_rate = 1e-3 })
end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

print("libmoragent " .. moragent.version())
local ok, err = pcall(function()
  local engine = moragent.load(model_dir)
  local policy, trainer = make_trainer(engine)
  for update = 0, UPDATES - 1 do
    local group, task = update, make_task()
    for j = 0, GROUP_SIZE - 1 do
      local episode = group * GROUP_SIZE + j
      local world, observation = new_world(task)
      policy:begin_episode(episode, group)
      local reward = 0
      while not world.won and world.steps < MAX_STEPS do
        -- The text between <action> and </action>; a response without them gives its tail, which
        -- the world answers with "nothing happens ." (and GiGPO penalises).
        local step = policy:step(episode, observation, task.goal)
        local r
        observation, r = world:step(step.action)
        reward = reward + r
      end
      policy:end_episode(episode, reward, world.won)
    end
    -- One update from the episodes ended since the last, which the policy then releases.
    local stats = trainer:update()
    print(("update %d: success %.3f, mean return %.3f, switches/episode %.2f, episodes %d"):format(
      stats.update, stats.success_rate, stats.mean_return, stats.switches_per_episode, stats.episodes))
  end

  -- Save everything (experts, router, optimiser moments, counters), reload it into a fresh
  -- trainer of the same shapes, and check the two hold the same experts.
  local folder = os.tmpname()
  os.remove(folder)
  local made = os.execute("mkdir -p " .. folder)
  assert(made == 0 or made == true, "cannot make " .. folder)
  trainer:save(folder .. "/bundle")
  local fresh_policy, fresh = make_trainer(engine)
  fresh:load(folder .. "/bundle")
  trainer:export_expert(0, folder .. "/trained")
  fresh:export_expert(0, folder .. "/reloaded")
  local same = read_all(folder .. "/trained/adapter_model.safetensors") ==
               read_all(folder .. "/reloaded/adapter_model.safetensors")
  print("bundle reloaded into a fresh trainer: expert 0 " .. (same and "identical" or "DIFFERS"))
  os.execute("rm -rf " .. folder)
  for _, handle in ipairs({ fresh, fresh_policy, trainer, policy, engine }) do handle:free() end
end)
if not ok then
  io.stderr:write(("error: %s\n"):format(tostring(err)))
  os.exit(1)
end
