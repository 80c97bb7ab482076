"""A scripted expert for the household world, and noisy walkthroughs recorded from it.

The expert plays like ALFWorld's handcoded expert (Shridhar et al., ICLR 2021, §4) but without
its access to the hidden state: it knows only what the player has been shown
(`HouseholdEnv.observed_contents`) and the public state (where it stands, what it holds, which
containers are open). It searches receptacles in the order the first observation lists them,
opening the closed containers it visits, takes a target as soon as it has seen one, brings it to
the appliance the goal needs, then delivers it. Being a function of the current state only, it
recovers from any detour: this is what lets `walkthrough` mix in random commands and still
produce demonstrations that reach the goal, the recovery steps included.
"""

from __future__ import annotations

import random

from .env import HouseholdEnv
from .world import APPLIANCES, LAMP, LAMP_STANDS, PREPOSITIONS, VERBS, kind_of


def expert_action(env: HouseholdEnv) -> str:
    """The expert's next command in the current state; always one of env's admissible commands."""
    task = env.task
    loc, held = env.location, env.holding
    seen = env.observed_contents
    order = task.receptacles

    def reach(r: str, command: str) -> str:
        """Walks to r, opens it if it is a closed container, then plays command."""
        if loc != r:
            return f"go to {r}"
        if not env.is_open(r):
            return f"open {r}"
        return command

    def search(receptacles) -> str:
        """Goes to the first receptacle whose contents are unknown, and opens it if needed."""
        for r in receptacles:
            if seen[r] is None:
                return reach(r, "look")  # "look" is unreachable: reach ends at the opening
        return "look"  # everything seen and nothing to do: cannot happen, but stays admissible

    if task.task_type == "look":
        lamp_at = next((r for r in order if seen[r] is not None and LAMP in seen[r]), None)
        destination = None
    else:
        destination = next(r for r in order if kind_of(r) == task.destination)

    if held is not None:
        if kind_of(held) != task.target:
            # A distractor (taken by a noisy step): put it down where we stand.
            return reach(loc, f"put {held} {PREPOSITIONS[kind_of(loc)]} {loc}")
        if task.state is not None and task.state not in env.held_states:
            appliance = next(r for r in order if kind_of(r) == APPLIANCES[task.state])
            verb = VERBS[task.state]
            return f"{verb} {held} with {appliance}" if loc == appliance else f"go to {appliance}"
        if task.task_type == "look":
            if lamp_at is None:  # a lamp stands on a table, never inside a container
                return search(r for r in order if kind_of(r) in LAMP_STANDS)
            return f"use {LAMP}" if loc == lamp_at else f"go to {lamp_at}"
        return reach(destination, f"put {held} {PREPOSITIONS[task.destination]} {destination}")

    # Hands empty: fetch a target we have seen, unless it is already delivered. For single-target
    # tasks a target still sitting in the destination lacks its state (else the goal holds).
    for r in order:
        if seen[r] is None or (task.count > 1 and r == destination):
            continue
        for obj in seen[r]:
            if kind_of(obj) == task.target:
                return reach(r, f"take {obj} from {r}")
    return search(order)


def walkthrough(task, rng: random.Random, noise: float, max_steps: int = 50) -> list[dict]:
    """Plays one episode of the expert, replacing each command by a random admissible one with
    probability `noise`, and returns one record per step.

    Each record is {"goal", "observation", "history" (the last 2 (observation, action) pairs
    before this step, oldest first), "action" (the command played), "expert_action" (the
    expert's command in this state, the imitation target), "won" (the episode's outcome, the
    same in every record)}.
    """
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1], not {noise}")
    env = HouseholdEnv(task, max_steps=max_steps)
    observation = env.reset()
    history: list[tuple[str, str]] = []
    records = []
    done, won = False, False
    while not done:
        expert = expert_action(env)
        action = rng.choice(env.admissible_commands()) if rng.random() < noise else expert
        records.append({"goal": env.goal, "observation": observation, "history": list(history),
                        "action": action, "expert_action": expert})
        history = (history + [(observation, action)])[-2:]
        observation, _, done, info = env.step(action)
        won = info["won"]
    for record in records:
        record["won"] = won
    return records
