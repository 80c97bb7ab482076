"""An agent loop: a policy of 3 LoRA experts acts in a toy text world, "find the key": three rooms
(hall, kitchen, study), a brass key in the study, a locked front door in the hall. Each step the
policy reads the observation and writes an action; an action the world does not admit (with the
random-weight test model, nearly all of them) is taken as "look" and counted. Two episodes of at
most 6 steps, then the routing trace.

It runs twice: first routed by a PA-MoE phase router (printing the same lines as
examples/c/agent_loop.c and examples/lua/agent_loop.lua), then by a router written in Python, a
rule-based phase router (lines prefixed "custom").

From the repository root, after `swift build`:
    MORAGENT_LIBRARY=.build/debug/libmoragent.so PYTHONPATH=bindings/python \\
        python3 examples/python/agent_loop.py Tests/MoRAgentTests/Fixtures/models/qwen2-tiny
"""

import json
import sys

import moragent

GOAL = "find the brass key and open the front door"
MAX_STEPS = 6
SIGHTS = {"hall": "a locked front door", "kitchen": "a table and a drawer", "study": "a desk"}


class World:
    """The toy world's state, its observations and the actions it admits."""

    def __init__(self, room):
        self.room, self.key_in_study, self.carrying_key, self.door_open = room, True, False, False

    def admissible(self):
        if self.room == "hall":
            return ["look", "go to kitchen", "go to study"] + (["open door"] if self.carrying_key else [])
        return ["look", "go to hall"] + (["take key"] if self.room == "study" and self.key_in_study else [])

    def observe(self):
        key = " with a brass key on it" if self.room == "study" and self.key_in_study else ""
        exits = "kitchen, study" if self.room == "hall" else "hall"
        carried = " You carry a brass key." if self.carrying_key else ""
        return f"You are in the {self.room}. You see {SIGHTS[self.room]}{key}. You can go to: {exits}.{carried}"

    def apply(self, action):
        if action.startswith("go to "):
            self.room = action[len("go to "):]
        elif action == "take key":
            self.key_in_study, self.carrying_key = False, True
        elif action == "open door":
            self.door_open = True


def run(policy, prefix=""):
    for episode in range(2):
        world = World("hall" if episode == 0 else "kitchen")
        steps = invalid = 0
        while steps < MAX_STEPS and not world.door_open:
            step = policy.step(episode, world.observe(), GOAL)
            # A malformed response, or an action this state does not admit, is taken as "look".
            admitted = step.action_valid and step.action in world.admissible()
            taken = step.action if admitted else "look"
            invalid += not admitted
            steps += 1
            expert = "base" if step.expert is None else step.expert
            p = " ".join(f"{x:.3f}" for x in step.probabilities)
            note = "" if admitted else " (the model's was not admissible)"
            print(f'{prefix}episode {episode} step {steps}: expert {expert} (p = {p}), action "{taken}"{note}')
            world.apply(taken)
        policy.end_episode(episode, reward=1.0 if world.door_open else 0.0, success=world.door_open)
        print(f"{prefix}episode {episode}: reward {int(world.door_open)}, {invalid} of {steps} actions not admissible")
    for record in policy.trace():
        print(f"{prefix}trace: {json.dumps(record, separators=(',', ':'))}")


def phase_by_rule(features):
    """A custom router written in Python: expert 0 while exploring (an episode's first two
    steps), expert 2 once the key is carried, expert 1 otherwise."""
    if "You carry a brass key" in features.observation:
        return [0.0, 0.0, 1.0]
    return [1.0, 0.0, 0.0] if features.step < 2 else [0.0, 1.0, 0.0]


def main() -> int:
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} MODEL_DIR", file=sys.stderr)
        return 2
    print(f"libmoragent {moragent.library_version()}")
    try:
        with moragent.Engine(sys.argv[1]) as engine, \
                moragent.ExpertSet(engine, 3, rank=8, alpha=16, seed=1) as experts:
            # Fresh experts start as the base model (B = 0); training makes them differ. Untrained,
            # the phase router's random weights favour one expert throughout.
            hidden = engine.info.hidden_size
            phase = moragent.PhaseRouter(hidden, 3, attention_dim=64, lstm_hidden=64, lstm_layers=2, mlp_hidden=64,
                                         seed=7)
            sampling = dict(temperature=0.7, seed=1, max_new_tokens=24, stop=["</action>"])
            with moragent.Policy(engine, experts, phase, **sampling) as policy:
                print(f"experts: {len(experts)}, router: phase (hidden {hidden})")
                run(policy)
            with moragent.Policy(engine, experts, moragent.CallbackRouter(3, phase_by_rule), **sampling) as policy:
                print("custom router: written in Python")
                run(policy, prefix="custom ")
    except moragent.MoRAgentError as error:
        print(f"error ({error.status}): {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
