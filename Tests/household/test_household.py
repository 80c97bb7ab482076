"""Tests of the household text world (examples/household): generation, splits, rules, text
formats, the scripted expert and noisy walkthroughs.

Run from the repository root:  PYTHONPATH=examples/household python3 -m pytest -q Tests/household
"""

import copy
import os
import random
import re
import subprocess
import sys
import time
from collections import defaultdict

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "household"))

import household  # noqa: E402
from household import (EpisodeFinishedError, HouseholdEnv, Task, all_triples,  # noqa: E402
                       expert_action, make_task, split_of, vocabulary, walkthrough)

TOKEN = re.compile(r"^([a-z]+|[0-9]+|,|\.)$")
SUFFIX = re.compile(r"you hold (nothing|[a-z]+ [0-9]+( , (clean|hot|cool))*) \.$")
TYPES_BY_SIZE = {"full": household.TASK_TYPES, "small": household.TASK_TYPES, "mini": ("pick", "clean")}


def kitchen(task_type="clean", target="apple", destination="countertop", count=1):
    """A hand-built kitchen: an apple in the fridge, a mug on the countertop."""
    from household.world import TASK_STATES, goal_text
    return Task(task_type=task_type, goal=goal_text(task_type, target, destination), seed=0,
                split="train", size="full", room="kitchen",
                receptacles=("cabinet 1", "countertop 1", "fridge 1", "microwave 1",
                             "sinkbasin 1"),
                contents=(("cabinet 1", ()), ("countertop 1", ("mug 1",)),
                          ("fridge 1", ("apple 1",) + (("apple 2",) if count == 2 else ())),
                          ("microwave 1", ()), ("sinkbasin 1", ())),
                target=target, destination=destination, state=TASK_STATES[task_type],
                count=count, lamp=None)


def bedroom():
    """A hand-built bedroom for `look`: a book on the bed, the desklamp on sidetable 1."""
    return Task(task_type="look", goal="look at book under the desklamp", seed=0, split="train",
                size="full", room="bedroom", receptacles=("bed 1", "drawer 1", "sidetable 1"),
                contents=(("bed 1", ("book 1",)), ("drawer 1", ()),
                          ("sidetable 1", ("desklamp 1",))),
                target="book", destination="desklamp", state=None, count=1, lamp="sidetable 1")


def snapshot(env):
    """Everything a command may change, except the step count."""
    return (env.location, env.holding, copy.deepcopy(env._contents), dict(env._open),
            copy.deepcopy(env._states), env._lamp_on, dict(env._seen))


def play(env, commands):
    """Plays commands that must all be admissible; returns the last (obs, reward, done, info)."""
    for command in commands:
        assert command in env.admissible_commands(), (command, env.admissible_commands())
        result = env.step(command)
        assert result[3]["valid"]
    return result


def random_tasks(n, size, split="train"):
    return [make_task(seed, split, None, size) for seed in range(n)]


# Generation and splits.

def test_make_task_is_a_pure_function_of_its_arguments():
    for size in household.SIZES:
        for split in household.SPLITS:
            for task_type in (None,) + TYPES_BY_SIZE[size]:
                for seed in range(20):
                    assert make_task(seed, split, task_type, size) == \
                        make_task(seed, split, task_type, size)
    random.seed(1)
    first = make_task(5)
    random.seed(2)
    assert make_task(5) == first, "make_task must not use the global generator"


def test_make_task_is_the_same_in_another_process():
    code = ("import household; print([repr(household.make_task(s, sp, None, sz)) "
            "for s in range(5) for sp in household.SPLITS for sz in household.SIZES])")
    outputs = set()
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed,
                   PYTHONPATH=os.path.join(ROOT, "examples", "household"))
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                   capture_output=True, text=True).stdout)
    assert len(outputs) == 1


def test_make_task_varies_with_the_seed_and_honours_its_arguments():
    tasks = random_tasks(200, "full")
    assert len({t.signature for t in tasks}) > 150
    for task_type in household.TASK_TYPES:
        task = make_task(3, "heldout", task_type)
        assert (task.task_type, task.split, task.size) == (task_type, "heldout", "full")
    for task in random_tasks(300, "mini"):
        assert task.room == "kitchen" and task.task_type in ("pick", "clean")
        assert 3 <= len(task.receptacles) <= 4
        assert sum(len(objects) for _, objects in task.contents) <= 3


def test_make_task_rejects_bad_arguments():
    with pytest.raises(ValueError):
        make_task(0, split="test")
    with pytest.raises(ValueError):
        make_task(0, size="huge")
    with pytest.raises(ValueError):
        make_task(0, task_type="fly")
    with pytest.raises(ValueError):
        make_task(0, task_type="heat", size="mini")


@pytest.mark.parametrize("size", household.SIZES)
def test_splits_are_disjoint_and_cover_every_type(size):
    train = [make_task(seed, "train", None, size) for seed in range(2000)]
    heldout = [make_task(seed, "heldout", None, size) for seed in range(2000)]
    assert not {t.signature for t in train} & {t.signature for t in heldout}
    for split, tasks in (("train", train), ("heldout", heldout)):
        for task in tasks:
            assert task.split == split
            assert split_of(task.task_type, task.target, task.destination) == split
        assert {t.task_type for t in tasks} == set(TYPES_BY_SIZE[size])
    triples = all_triples(size)
    held = sum(split_of(*triple) == "heldout" for triple in triples) / len(triples)
    print(f"\n{size}: {len(triples)} (type, object, destination) triples, {held:.1%} held out")
    assert 0.18 <= held <= 0.27
    for task_type in TYPES_BY_SIZE[size]:
        assert {split_of(*t) for t in triples if t[0] == task_type} == {"train", "heldout"}


def test_goals_have_one_phrasing_per_type():
    patterns = {
        "pick": r"put some [a-z]+ (in|on) [a-z]+",
        "look": r"look at [a-z]+ under the desklamp",
        "clean": r"put a clean [a-z]+ (in|on) [a-z]+",
        "heat": r"heat some [a-z]+ and put it (in|on) [a-z]+",
        "cool": r"put a cool [a-z]+ (in|on) [a-z]+",
        "pick_two": r"put two [a-z]+ (in|on) [a-z]+",
    }
    for task in random_tasks(500, "full") + random_tasks(100, "mini"):
        assert re.fullmatch(patterns[task.task_type], task.goal), task.goal
        assert task.target in task.goal
        # No goal holds at the start.
        assert not any(o.startswith(task.target + " ")
                       for r, objects in task.contents if r.startswith(task.destination + " ")
                       for o in objects)


# The rules and the text formats.

def test_first_observation_lists_the_room():
    env = HouseholdEnv(kitchen())
    assert env.reset() == ("you are in the kitchen . you see a cabinet 1 , a countertop 1 , "
                           "a fridge 1 , a microwave 1 , a sinkbasin 1 . you hold nothing .")
    assert env.goal == "put a clean apple on countertop"


def test_invalid_commands_change_nothing():
    env = HouseholdEnv(kitchen())
    env.reset()
    play(env, ["go to countertop 1"])
    before = snapshot(env)
    for command in ("fly to the moon", "take apple 1 from fridge 1", "go to countertop 1",
                    "put mug 1 on countertop 1", "open countertop 1", "use desklamp 1", ""):
        obs, reward, done, info = env.step(command)
        assert obs == "nothing happens . you hold nothing ."
        assert (reward, done, info["valid"], info["won"]) == (0.0, False, False, False)
        assert snapshot(env) == before
    assert env.steps == 8


def test_commands_are_matched_case_and_space_insensitively():
    env = HouseholdEnv(kitchen())
    env.reset()
    obs, _, _, info = env.step("  GO   to\tFridge 1 ")
    assert info["valid"] and obs.startswith("you arrive at fridge 1 .")
    with pytest.raises(TypeError):
        env.step(None)


def test_containers_must_be_opened():
    env = HouseholdEnv(kitchen())
    env.reset()
    obs, *_ = play(env, ["go to fridge 1"])
    assert obs == "you arrive at fridge 1 . the fridge 1 is closed . you hold nothing ."
    assert "take apple 1 from fridge 1" not in env.admissible_commands()
    assert env.step("take apple 1 from fridge 1")[3]["valid"] is False
    obs, *_ = play(env, ["open fridge 1"])
    assert obs == ("you open the fridge 1 . the fridge 1 is open . in it , you see a apple 1 . "
                   "you hold nothing .")
    obs, *_ = play(env, ["take apple 1 from fridge 1", "go to cabinet 1"])
    assert obs == "you arrive at cabinet 1 . the cabinet 1 is closed . you hold apple 1 ."
    assert not any(c.startswith("put") for c in env.admissible_commands())
    obs, *_ = play(env, ["open cabinet 1", "put apple 1 in cabinet 1", "close cabinet 1"])
    assert obs == "you close the cabinet 1 . you hold nothing ."
    obs, *_ = play(env, ["go to countertop 1", "go to cabinet 1"])
    assert obs == "you arrive at cabinet 1 . the cabinet 1 is closed . you hold nothing ."
    obs, *_ = play(env, ["open cabinet 1"])
    assert obs.endswith("in it , you see a apple 1 . you hold nothing .")


def test_one_object_at_a_time():
    env = HouseholdEnv(kitchen())
    env.reset()
    obs, *_ = play(env, ["go to countertop 1", "take mug 1 from countertop 1"])
    assert obs == "you pick up the mug 1 from the countertop 1 . you hold mug 1 ."
    play(env, ["go to fridge 1", "open fridge 1"])
    assert not any(c.startswith("take") for c in env.admissible_commands())
    assert env.step("take apple 1 from fridge 1")[0] == "nothing happens . you hold mug 1 ."
    obs, *_ = play(env, ["put mug 1 in fridge 1", "take apple 1 from fridge 1"])
    assert obs.endswith("you hold apple 1 .")


def test_manipulations_change_the_reported_state():
    env = HouseholdEnv(kitchen())
    env.reset()
    play(env, ["go to fridge 1", "open fridge 1", "take apple 1 from fridge 1"])
    obs, *_ = play(env, ["go to sinkbasin 1", "clean apple 1 with sinkbasin 1"])
    assert obs == "you clean the apple 1 using the sinkbasin 1 . you hold apple 1 , clean ."
    obs, *_ = play(env, ["go to microwave 1", "heat apple 1 with microwave 1"])
    assert obs == "you heat the apple 1 using the microwave 1 . you hold apple 1 , clean , hot ."
    obs, *_ = play(env, ["go to fridge 1", "cool apple 1 with fridge 1"])
    assert obs == "you cool the apple 1 using the fridge 1 . you hold apple 1 , clean , cool ."
    assert play(env, ["inventory"])[0] == "you hold apple 1 , clean , cool ."
    obs, reward, done, info = play(env, ["go to countertop 1", "put apple 1 on countertop 1"])
    assert obs == "you put the apple 1 on the countertop 1 . you hold nothing ."
    assert (reward, done, info["won"]) == (1.0, True, True)
    # The state stays with the object.
    env2 = HouseholdEnv(kitchen(task_type="heat", destination="countertop"))
    env2.reset()
    play(env2, ["go to fridge 1", "open fridge 1", "take apple 1 from fridge 1",
                "go to microwave 1", "heat apple 1 with microwave 1", "go to cabinet 1",
                "open cabinet 1", "put apple 1 in cabinet 1", "take apple 1 from cabinet 1"])
    assert env2.held_states == {"hot"}


def test_goal_needs_the_state_and_the_destination_kind():
    env = HouseholdEnv(kitchen())
    env.reset()
    obs, reward, done, info = play(env, ["go to fridge 1", "open fridge 1",
                                         "take apple 1 from fridge 1", "go to countertop 1",
                                         "put apple 1 on countertop 1"])
    assert (reward, done, info["won"]) == (0.0, False, False), "a dirty apple is not enough"


def test_pick_two_needs_both_in_one_receptacle():
    env = HouseholdEnv(kitchen(task_type="pick_two", destination="countertop", count=2))
    env.reset()
    _, reward, done, _ = play(env, ["go to fridge 1", "open fridge 1",
                                    "take apple 1 from fridge 1", "go to countertop 1",
                                    "put apple 1 on countertop 1"])
    assert (reward, done) == (0.0, False)
    _, reward, done, _ = play(env, ["go to fridge 1", "take apple 2 from fridge 1",
                                    "go to countertop 1", "put apple 2 on countertop 1"])
    assert (reward, done) == (1.0, True)


def test_look_needs_the_lit_lamp_and_the_object_in_hand():
    env = HouseholdEnv(bedroom())
    env.reset()
    obs, reward, done, _ = play(env, ["go to sidetable 1", "use desklamp 1"])
    assert obs == "you turn on the desklamp 1 . you hold nothing ."
    assert (reward, done) == (0.0, False)
    assert not any(c.startswith("take desklamp") for c in env.admissible_commands())
    play(env, ["go to bed 1", "take book 1 from bed 1"])
    obs, reward, done, _ = play(env, ["go to sidetable 1"])
    assert obs == ("you arrive at sidetable 1 . on the sidetable 1 , you see a desklamp 1 . "
                   "you hold book 1 .")
    assert (reward, done) == (1.0, True)


def test_look_describes_the_room_and_the_current_receptacle():
    env = HouseholdEnv(kitchen())
    env.reset()
    play(env, ["go to fridge 1"])
    assert env.step("look")[0] == ("you are in the kitchen . you see a cabinet 1 , a countertop 1 "
                                   ", a fridge 1 , a microwave 1 , a sinkbasin 1 . you are at "
                                   "fridge 1 . the fridge 1 is closed . you hold nothing .")


def test_step_limit_ends_the_episode_without_reward():
    env = HouseholdEnv(kitchen(), max_steps=3)
    env.reset()
    assert env.step("look")[2] is False
    assert env.step("go to fridge 1")[2] is False
    obs, reward, done, info = env.step("open fridge 1")
    assert (reward, done, info["won"]) == (0.0, True, False)
    assert HouseholdEnv(make_task(0)).max_steps == 50
    with pytest.raises(ValueError):
        HouseholdEnv(kitchen(), max_steps=0)


def test_a_finished_episode_raises_until_reset():
    env = HouseholdEnv(kitchen(task_type="pick", destination="countertop"))
    env.reset()
    play(env, ["go to fridge 1", "open fridge 1", "take apple 1 from fridge 1",
               "go to countertop 1", "put apple 1 on countertop 1"])
    assert env.done and env.won
    with pytest.raises(EpisodeFinishedError):
        env.step("look")
    with pytest.raises(RuntimeError):
        env.step("look")
    env.reset()
    assert env.step("look")[3]["valid"] and not env.done


@pytest.mark.parametrize("size", household.SIZES)
def test_admissible_commands_are_valid_and_never_raise(size):
    rng = random.Random(7)
    for task in random_tasks(150, size):
        env = HouseholdEnv(task)
        env.reset()
        done = False
        while not done:
            commands = env.admissible_commands()
            assert commands == sorted(set(commands))
            if rng.random() < 0.1:  # every command of this state, each on a copy
                for command in commands:
                    assert copy.deepcopy(env).step(command)[3]["valid"]
            _, _, done, info = env.step(rng.choice(commands))
            assert info["valid"] and info["admissible"] == env.admissible_commands()


@pytest.mark.parametrize("size", household.SIZES)
def test_vocabulary_covers_every_text(size):
    vocab = set(vocabulary(size))
    assert vocabulary(size) == sorted(vocab)
    seen = set()
    rng = random.Random(3)
    for split in household.SPLITS:
        for task in random_tasks(300, size, split):
            env = HouseholdEnv(task)
            texts = [env.goal, env.reset()]
            done = False
            while not done:
                commands = env.admissible_commands()
                texts += commands
                draw = rng.random()
                command = (rng.choice(commands) if draw < 0.5 else "jump" if draw < 0.55
                           else expert_action(env))
                obs, _, done, _ = env.step(command)
                texts.append(obs)
                assert SUFFIX.search(obs), obs
            for text in texts:
                words = text.split(" ")
                assert all(TOKEN.match(w) for w in words), text
                seen.update(words)
    assert seen <= vocab, sorted(seen - vocab)
    print(f"\n{size}: vocabulary of {len(vocab)} words, {len(seen)} seen in random episodes")
    assert seen == vocab, f"never produced: {sorted(vocab - seen)}"  # the list is also tight
    assert len(vocab) <= 200
    assert set(vocabulary("mini")) <= set(vocabulary("full"))


# The expert and the walkthroughs.

@pytest.mark.parametrize("size", household.SIZES)
@pytest.mark.parametrize("split", household.SPLITS)
def test_expert_solves_every_task(size, split):
    steps = defaultdict(list)
    for task in random_tasks(300, size, split):
        env = HouseholdEnv(task)
        env.reset()
        done = False
        while not done:
            command = expert_action(env)
            assert command in env.admissible_commands(), (task, command)
            _, reward, done, info = env.step(command)
        assert info["won"] and reward == 1.0, task
        steps[task.task_type].append(env.steps)
    means = ", ".join(f"{t} {sum(v) / len(v):.1f} (max {max(v)})" for t, v in sorted(steps.items()))
    print(f"\nexpert steps, {size}/{split}: {means}")
    assert max(max(v) for v in steps.values()) <= 35


@pytest.mark.parametrize("size", household.SIZES)
def test_noisy_walkthroughs_still_win(size):
    rng = random.Random(11)
    episodes = [walkthrough(task, rng, noise=0.3) for task in random_tasks(300, size)]
    rate = sum(records[0]["won"] for records in episodes) / len(episodes)
    mean = sum(len(r) for r in episodes) / len(episodes)
    print(f"\nnoise 0.3, {size}: {rate:.1%} won, {mean:.1f} steps on average")
    assert rate >= 0.95
    noisy = 0
    for task, records in zip(random_tasks(300, size), episodes):
        env = HouseholdEnv(task)  # replayed: the expert's command must be admissible after detours
        env.reset()
        for i, record in enumerate(records):
            assert record["expert_action"] in env.admissible_commands()
            env.step(record["action"])
            assert set(record) == {"goal", "observation", "history", "action", "expert_action",
                                   "won"}
            assert record["history"] == [(r["observation"], r["action"])
                                         for r in records[max(0, i - 2):i]]
            noisy += record["action"] != record["expert_action"]
    assert noisy > 0
    again = walkthrough(make_task(1, size=size), random.Random(5), 0.3)
    assert again == walkthrough(make_task(1, size=size), random.Random(5), 0.3)
    with pytest.raises(ValueError):
        walkthrough(make_task(1), random.Random(5), 1.5)


def test_noiseless_walkthrough_is_the_expert():
    task = make_task(4)
    records = walkthrough(task, random.Random(0), noise=0.0)
    assert records[-1]["won"] and all(r["action"] == r["expert_action"] for r in records)
    assert records[0]["history"] == [] and records[0]["observation"].startswith("you are in the ")


def test_step_is_fast():
    rng = random.Random(2)
    elapsed, count = 0.0, 0
    for task in random_tasks(300, "full"):
        env = HouseholdEnv(task)
        env.reset()
        done, commands = False, env.admissible_commands()
        while not done:
            command = rng.choice(commands)
            start = time.perf_counter()
            _, _, done, info = env.step(command)
            elapsed += time.perf_counter() - start
            commands = info["admissible"]
            count += 1
    print(f"\nstep: {elapsed / count * 1e6:.1f} us on average over {count} steps")
    assert elapsed / count < 1e-3
