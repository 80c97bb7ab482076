#!/usr/bin/env python3
"""Rollout throughput: the same household episodes played with one `Policy.step` call per
episode step and in lockstep with `Policy.step_batch` (every running episode of a round in one
batch), alternated over rounds, printed as one JSON object with medians and the ratio. Both
sides sample each episode with the same seeds, so they play the same episodes (up to the float
rounding of batched products).

Needs a base model the demo made (`bin/demo` writes runs/<timestamp>/base_model):
    MORAGENT_LIBRARY=.build/release/libmoragent.so \\
        python3 tools/bench_rollout.py --model runs/<timestamp>/base_model [--episodes 64] [--rounds 3]
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples", "household"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import household  # noqa: E402
import moragent  # noqa: E402

from demo import agent, main as demo  # noqa: E402


def one_at_a_time(policy, jobs, max_steps):
    """The agent loop without batching: each episode played to its end, one step per call."""
    episodes = []
    for episode_id, task, _ in jobs:
        env = household.HouseholdEnv(task, max_steps=max_steps)
        observation, done, won, steps = agent.observation_text(env, env.reset()), False, False, 0
        while not done:
            step = policy.step(episode_id, observation, env.goal)
            raw, _, done, info = env.step(step.action)
            observation, won, steps = agent.observation_text(env, raw), won or info["won"], steps + 1
        policy.end_episode(episode_id, 0.0, won)
        episodes.append((won, steps))
    return episodes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a household base model folder")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=30)
    a = ap.parse_args()
    engine = moragent.Engine(a.model)
    _, _, policy = demo.make_policy(engine, "phase", 0, 40)   # the demo's policy; steps recorded as in training
    tasks = agent.task_sample(random.Random(7), "train", a.episodes, "small")
    jobs = [(i, task, None) for i, task in enumerate(tasks)]
    sides = {"step": [], "step_batch": []}
    outcomes = {}
    for _ in range(a.rounds):
        for side in sides:
            start = time.perf_counter()
            if side == "step":
                played = one_at_a_time(policy, jobs, a.max_steps)
            else:
                played = [(e.won, e.steps) for e in agent.play_episodes(policy, jobs, a.max_steps)]
            seconds = time.perf_counter() - start
            policy.clear_ended()
            steps = sum(s for _, s in played)
            sides[side].append(steps / seconds)
            outcomes[side] = played
    same = sum(x == y for x, y in zip(outcomes["step"], outcomes["step_batch"]))
    result = {"episodes": a.episodes, "rounds": a.rounds, "steps": sum(s for _, s in outcomes["step"]),
              "step_per_s": round(statistics.median(sides["step"]), 1),
              "step_batch_per_s": round(statistics.median(sides["step_batch"]), 1),
              "episodes_played_alike": same}
    result["ratio"] = round(result["step_batch_per_s"] / result["step_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
