"""The agent side of the demo: how a household episode becomes policy steps, how a group of
rollouts is played for GiGPO, and how a policy is evaluated, all through the moragent Python
binding. The prompt template here is also what the walkthrough corpus is rendered with, so
the base model is pretrained on exactly the prompts the policy will see."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import household
import moragent

# The policy's prompt (moragent placeholders). Words and punctuation are space separated so the
# word-level tokenizer built from the corpus covers every prompt. As in verl-agent's ALFWorld
# prompt, the observation the policy sees lists the admissible commands; the history keeps the
# last actions only (observations with their command lists would make prompts long).
FIRST_STEP = "task : {goal} . now : {observation} act :"
LATER_STEP = "task : {goal} . {history} now : {observation} act :"
HISTORY_ENTRY = "did : {action} ."
HISTORY_LENGTH = 4
# verl-agent's ALFWorld reward: 10 for a won episode, nothing else. A refused command costs only
# the step it wastes; a penalty per refused command (tried: -0.5 as a step reward) taught the
# policy to trade wins for fewer refusals (held-out success 0.19 -> 0.14, refusals 12.3 -> 7.3).
SUCCESS_REWARD = 10.0


def observation_text(env: household.HouseholdEnv, observation: str) -> str:
    """What the policy is shown: the environment's observation, a short memory (where the agent
    stands, which receptacles it has searched and what it saw in them) and the commands the
    environment accepts. ALFWorld agents carry that memory in a long history; a 300k-parameter
    model with a four-step window cannot, so the agent loop keeps it for the model, from what the
    environment has shown (`observed_contents`), never from hidden state."""
    seen = env.observed_contents
    searched = [r for r in env.task.receptacles if seen[r] is not None]
    objects = [f"{o} in {r}" for r in searched for o in seen[r]]
    memory = f"memory : at {env.location or 'start'} . searched : {' , '.join(searched) or 'none'} . " \
             f"seen : {' , '.join(objects) or 'none'} ."
    return f"{observation} {memory} you can : {' , '.join(env.admissible_commands())} ."


def render_prompt(goal: str, observation: str, history: list[tuple[str, str]]) -> str:
    """The prompt moragent renders from the templates above (PromptTemplate.render), with the
    history lines joined by spaces instead of newlines (the tokenizer splits on both alike)."""
    if not history:
        return FIRST_STEP.replace("{goal}", goal).replace("{observation}", observation)
    recent = history[-HISTORY_LENGTH:]
    lines = " ".join(HISTORY_ENTRY.replace("{observation}", o).replace("{action}", a) for o, a in recent)
    # (PromptTemplate joins entries with newlines; the word-level tokenizer splits on both.)
    return LATER_STEP.replace("{goal}", goal).replace("{history}", lines).replace("{observation}", observation)


def corpus_line(goal: str, observation: str, history: list[tuple[str, str]], action: str) -> str:
    """One pretraining line: the prompt and the response the policy should write."""
    return f"{render_prompt(goal, observation, history)} <action> {action} </action>"


def noisy_walkthrough_lines(task: household.Task, rng: random.Random, noise: float, max_steps: int) -> list[str]:
    """Corpus lines of one noisy walkthrough: with probability `noise` the walk takes a random
    command (admissible, or one in five times a refused one, so "nothing happens" is seen too),
    else the scripted expert's; every line is labelled with the expert's command in the state
    reached, so the base model learns to act, and to recover from detours, like the expert."""
    env = household.HouseholdEnv(task, max_steps=max_steps)
    observation = env.reset()
    history: list[tuple[str, str]] = []
    lines = []
    done = False
    while not done:
        admissible = env.admissible_commands()
        shown = observation_text(env, observation)
        expert = household.expert_action(env)
        lines.append(corpus_line(env.goal, shown, history, expert))
        action = expert
        if rng.random() < noise:
            refused = f"go to {env.location}" if env.location else "take nothing"   # never admissible
            action = refused if rng.random() < 0.2 else rng.choice(admissible)
        history.append((shown, action))
        observation, _, done, _ = env.step(action)
    return lines


@dataclass
class Episode:
    """What one played episode looked like."""
    task: household.Task
    won: bool = False
    steps: int = 0
    experts: list = field(default_factory=list)   # expert per step (None: base model or mixture)
    invalid: int = 0                             # steps whose command the environment refused


def play_episodes(policy: moragent.Policy, jobs: list[tuple[int, household.Task, int | None]], max_steps: int) -> list[Episode]:
    """Plays episodes in lockstep, one `(episode id, task, group)` each: every round, one batched
    policy step (`Policy.step_batch`: the prompts prefilled and decoded together, each episode
    sampling as it would alone) for every episode still running, then each environment acts;
    an episode ends with its return when its environment is done. With a group, the episode is
    one rollout of that group (GiGPO compares them)."""
    envs = [household.HouseholdEnv(task, max_steps=max_steps) for _, task, _ in jobs]
    observations = [observation_text(env, env.reset()) for env in envs]
    for episode_id, _, group in jobs:
        if group is not None:
            policy.begin_episode(episode_id, group)
    results = [Episode(task) for _, task, _ in jobs]
    running = list(range(len(jobs)))
    while running:
        steps = policy.step_batch([(jobs[i][0], observations[i], envs[i].goal) for i in running])
        still = []
        for i, step in zip(running, steps):
            observation, _, done, info = envs[i].step(step.action)
            observations[i] = observation_text(envs[i], observation)
            result = results[i]
            result.steps += 1
            result.experts.append(step.expert)
            result.invalid += 0 if info["valid"] else 1
            result.won = result.won or info["won"]
            if done:
                policy.end_episode(jobs[i][0], SUCCESS_REWARD if result.won else 0.0, result.won)
            else:
                still.append(i)
        running = still
    return results


class EpisodeCounter:
    """Hands out episode ids that are never reused within a run (sampling seeds derive from them)."""

    def __init__(self, start: int = 0):
        self.next = start

    def take(self) -> int:
        self.next += 1
        return self.next - 1


def play_groups(policy, tasks, group_size: int, max_steps: int, counter: EpisodeCounter) -> list[Episode]:
    """`group_size` rollouts of each task, each group under its own id, all played in lockstep."""
    jobs = []
    for task in tasks:
        group = counter.take()
        jobs += [(counter.take(), task, group) for _ in range(group_size)]
    return play_episodes(policy, jobs, max_steps)


# Evaluation episodes use these ids every time: a policy samples step t of episode e with a seed
# derived from (seed, e, t), so two evaluations of one task set draw the same random numbers and
# differ only where the policies differ (common random numbers: less noise in before/after).
EVALUATION_IDS = 1 << 40


def evaluate(policy, tasks, max_steps: int) -> list[Episode]:
    """One episode per task; the record is released afterwards so no update learns from it."""
    episodes = play_episodes(policy, [(EVALUATION_IDS + i, task, None) for i, task in enumerate(tasks)], max_steps)
    policy.clear_ended()
    return episodes


def task_sample(rng: random.Random, split: str, count: int, size: str) -> list[household.Task]:
    """`count` tasks of `split`, task types in turn so every type is represented."""
    types = list(household.TASK_TYPES) if size != "mini" else ["pick", "clean"]
    return [household.make_task(rng.randrange(1 << 30), split=split, task_type=types[i % len(types)], size=size)
            for i in range(count)]
