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
# word-level tokenizer built from the corpus covers every prompt.
FIRST_STEP = "task : {goal} . now : {observation} act :"
LATER_STEP = "task : {goal} . {history} now : {observation} act :"
HISTORY_ENTRY = "before : {observation} did : {action} ."
HISTORY_LENGTH = 3
SUCCESS_REWARD = 10.0      # verl-agent's ALFWorld reward for a won episode


def render_prompt(goal: str, observation: str, history: list[tuple[str, str]]) -> str:
    """The prompt moragent renders from the templates above (PromptTemplate.render), with the
    history lines joined by spaces instead of newlines (the tokenizer splits on both alike)."""
    if not history:
        return FIRST_STEP.replace("{goal}", goal).replace("{observation}", observation)
    recent = history[-HISTORY_LENGTH:]
    lines = " ".join(HISTORY_ENTRY.replace("{observation}", o).replace("{action}", a) for o, a in recent)
    return LATER_STEP.replace("{goal}", goal).replace("{history}", lines).replace("{observation}", observation)


def corpus_line(goal: str, observation: str, history: list[tuple[str, str]], action: str) -> str:
    """One pretraining line: the prompt and the response the policy should write."""
    return f"{render_prompt(goal, observation, history)} <action> {action} </action>"


@dataclass
class Episode:
    """What one played episode looked like."""
    task: household.Task
    won: bool = False
    steps: int = 0
    experts: list = field(default_factory=list)   # expert per step (None: base model or mixture)
    invalid: int = 0                             # steps whose command the environment refused


def play_episode(policy: moragent.Policy, episode_id: int, task: household.Task, max_steps: int,
                 group: int | None = None) -> Episode:
    """Plays one episode: step the policy, act in the environment, end the episode with its
    return. With `group`, the episode is one rollout of that group (GiGPO compares them)."""
    env = household.HouseholdEnv(task, max_steps=max_steps)
    observation = env.reset()
    if group is not None:
        policy.begin_episode(episode_id, group)
    result = Episode(task)
    done = False
    while not done:
        step = policy.step(episode_id, observation, env.goal)
        observation, reward, done, info = env.step(step.action)
        result.steps += 1
        result.experts.append(step.expert)
        result.invalid += 0 if info["valid"] else 1
        result.won = result.won or info["won"]
    policy.end_episode(episode_id, SUCCESS_REWARD if result.won else 0.0, result.won)
    return result


class EpisodeCounter:
    """Hands out episode ids that are never reused within a run (sampling seeds derive from them)."""

    def __init__(self, start: int = 0):
        self.next = start

    def take(self) -> int:
        self.next += 1
        return self.next - 1


def play_groups(policy, tasks, group_size: int, max_steps: int, counter: EpisodeCounter) -> list[Episode]:
    """`group_size` rollouts of each task, each group under its own id."""
    episodes = []
    for task in tasks:
        group = counter.take()
        for _ in range(group_size):
            episodes.append(play_episode(policy, counter.take(), task, max_steps, group=group))
    return episodes


def evaluate(policy, tasks, max_steps: int, counter: EpisodeCounter) -> list[Episode]:
    """One episode per task; the record is released afterwards so no update learns from it."""
    episodes = [play_episode(policy, counter.take(), task, max_steps) for task in tasks]
    policy.clear_ended()
    return episodes


def task_sample(rng: random.Random, split: str, count: int, size: str = "full") -> list[household.Task]:
    """`count` tasks of `split`, task types in turn so every type is represented."""
    types = list(household.TASK_TYPES) if size == "full" else ["pick", "clean"]
    return [household.make_task(rng.randrange(1 << 30), split=split, task_type=types[i % len(types)], size=size)
            for i in range(count)]
