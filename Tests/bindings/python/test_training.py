"""RL updates through the binding: statistics, metrics lines, refusals that lose nothing,
checkpoints that resume bit for bit, and a bundle that survives its writer being SIGKILLed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import moragent
from conftest import QWEN2, ROOT

TEMPLATE = dict(first_step_template="{goal}: {observation} ->", later_step_template="{goal}: {history} {observation} ->",
                history_entry_template="{observation} {action}", history_length=1)


def make(engine, seed=3, **settings):
    experts = moragent.ExpertSet(engine, 2, rank=4, alpha=8, seed=1)
    router = moragent.PhaseRouter(engine.info.hidden_size, 2, attention_dim=8, attention_heads=2, lstm_hidden=6,
                                  lstm_layers=2, history_length=2, mlp_hidden=8, anneal_updates=10, seed=seed)
    policy = moragent.Policy(engine, experts, router, max_new_tokens=3, stop=(), seed=5, **TEMPLATE)
    settings.setdefault("learning_rate", 1e-2)
    trainer = moragent.Trainer(policy, **settings)
    return experts, policy, trainer


def play(policy, first=0, groups=2, n=2, steps=2):
    """Groups of one-to-`steps`-step episodes; reward 1 when the first token id is even."""
    for g in range(groups):
        for j in range(n):
            episode = first + g * n + j
            policy.begin_episode(episode, first + g)
            won = False
            for t in range(steps):
                won = policy.step(episode, f"room {g} step {t}", "find the even token").ids[0] % 2 == 0
            policy.end_episode(episode, 1.0 if won else 0.0, won)


def test_update_returns_statistics_and_appends_metrics(engine, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    experts, policy, trainer = make(engine, metrics_path=str(metrics))
    with experts, policy, trainer:
        assert trainer.last_stats() == {}
        play(policy)
        assert policy.recorded_steps == 8
        calls = []
        stats = trainer.update(progress=lambda done, total: calls.append((done, total)))
        assert stats["update"] == 1 and stats["episodes"] == 4 and stats["steps"] == 8
        assert calls and calls[-1][0] == len(calls) == calls[-1][1], "the last pass reports done == total"
        assert abs(sum(stats["expert_utilisation"]) - 1) < 1e-9
        assert stats["temperature"] == 2.0 and stats["grad_norm"] > 0
        assert policy.recorded_steps == 0
        play(policy, first=10)
        trainer.update()
        lines = [json.loads(line) for line in metrics.read_text().splitlines()]
        assert [line["update"] for line in lines] == [1, 2]
        assert lines[1]["temperature"] < 2.0, "the router temperature anneals per update"


def test_step_rewards_count_in_the_return(engine):
    experts, policy, trainer = make(engine)
    with experts, policy, trainer:
        for episode in (0, 1):
            policy.begin_episode(episode, 0)
            policy.step(episode, "o", "g")
            policy.step_reward(episode, -0.5)
            policy.step(episode, "p", "g")
            with pytest.raises(moragent.InvalidArgumentError, match="not finite"):
                policy.step_reward(episode, float("inf"))
            policy.end_episode(episode, 1.0 + episode, episode == 1)
            with pytest.raises(moragent.InvalidArgumentError, match="ended"):
                policy.step_reward(episode, 1.0)
        assert trainer.update()["mean_return"] == pytest.approx((0.5 + 1.5) / 2)


def test_refused_updates_lose_nothing(engine, tmp_path):
    experts, policy, trainer = make(engine)
    with experts, policy, trainer:
        with pytest.raises(moragent.InvalidArgumentError, match="no ended episode"):
            trainer.update()
        policy.step(0, "o", "g")
        with pytest.raises(moragent.InvalidArgumentError, match="not finite"):
            policy.end_episode(0, float("nan"), False)
        policy.end_episode(0, 1.0, True)
        with pytest.raises(moragent.InvalidArgumentError, match="already ended"):
            policy.end_episode(0, 1.0, True)
        experts.save_peft(0, tmp_path / "before")
        with pytest.raises(moragent.InvalidArgumentError, match="group 0 has one episode"):
            trainer.update()
        assert policy.recorded_steps == 1
        experts.save_peft(0, tmp_path / "after")
        assert (tmp_path / "before" / "adapter_model.safetensors").read_bytes() == \
            (tmp_path / "after" / "adapter_model.safetensors").read_bytes()
        with pytest.raises(moragent.AbortedError):
            policy.begin_episode(1, 0)
            policy.step(1, "o", "g")
            policy.end_episode(1, 0.0, False)
            trainer.update(progress=lambda done, total: True)
        assert policy.recorded_steps == 2, "an aborted update keeps the episodes"
        assert trainer.update()["episodes"] == 2
    with pytest.raises(moragent.InvalidArgumentError, match="unknown trainer setting"):
        make(engine, learning_rat=1)
    with pytest.raises(moragent.InvalidArgumentError, match="advantage"):
        make(engine, advantage="ppo2")
    with pytest.raises(moragent.InvalidArgumentError, match="mini_batches"):
        make(engine, mini_batches=0)


@pytest.mark.parametrize("advantage", ["grpo", "rloo", "gigpo", "ppo"])
def test_every_estimator_updates(engine, advantage):
    experts, policy, trainer = make(engine, advantage=advantage)
    with experts, policy, trainer:
        play(policy)
        assert trainer.update()["steps"] == 8


def test_checkpoint_resumes_bit_identically(engine, tmp_path):
    experts, policy, trainer = make(engine, diversity_interval=1, diversity_samples=2)
    play(policy)
    trainer.update()
    trainer.save(tmp_path / "bundle")
    assert sorted(os.listdir(tmp_path / "bundle")) == ["experts.safetensors", "manifest.json", "router.safetensors",
                                                       "samples.json", "trainer.safetensors"]
    play(policy, first=20)
    expected = trainer.update()
    trainer.export_expert(1, tmp_path / "expected")

    experts2, policy2, trainer2 = make(engine, diversity_interval=1, diversity_samples=2)
    trainer2.load(tmp_path / "bundle")
    play(policy2, first=20)
    resumed = trainer2.update()
    trainer2.export_expert(1, tmp_path / "resumed")
    expected.pop("seconds"), resumed.pop("seconds")
    assert resumed == expected
    assert (tmp_path / "expected" / "adapter_model.safetensors").read_bytes() == \
        (tmp_path / "resumed" / "adapter_model.safetensors").read_bytes()

    _, _, other = make(engine, advantage="grpo")
    with pytest.raises(moragent.MalformedFileError, match="estimator"):
        other.load(tmp_path / "bundle")
    with pytest.raises(moragent.ModelIOError):
        other.load(tmp_path / "missing")


def test_recomputed_activations_give_the_same_updates(engine, tmp_path):
    # recompute_activations keeps only each layer's input for the backward, which recomputes
    # the rest: less memory, the same gradients bit for bit.
    results = []
    for recompute in (False, True):
        experts, policy, trainer = make(engine, recompute_activations=recompute, diversity_interval=1, diversity_samples=2)
        with experts, policy, trainer:
            play(policy)
            trainer.update()
            play(policy, first=20)
            stats = trainer.update()
            stats.pop("seconds")
            trainer.export_expert(1, tmp_path / str(recompute))
            results.append(stats)
    assert results[1] == results[0]
    assert (tmp_path / "True" / "adapter_model.safetensors").read_bytes() == \
        (tmp_path / "False" / "adapter_model.safetensors").read_bytes()


WRITER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import moragent
from test_training import make, play
engine = moragent.Engine(sys.argv[2])
experts, policy, trainer = make(engine)
n = 0
while True:
    play(policy, first=n * 100)
    trainer.update()
    trainer.save(sys.argv[3])
    n += 1
    print(n, flush=True)
"""


def test_a_save_killed_midway_leaves_the_previous_bundle_whole(engine, tmp_path):
    """A writer saving again and again is SIGKILLed at random moments (also inside saves); the
    bundle at the path always loads, and no half-written files are mistaken for it."""
    bundle = tmp_path / "bundle"
    here = os.path.dirname(__file__)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, os.path.join(ROOT, "bindings", "python")]))
    for delay in (0.0, 0.013, 0.029, 0.047):
        child = subprocess.Popen([sys.executable, "-c", WRITER, here, QWEN2, str(bundle)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Wait for at least one complete save, then kill at an arbitrary moment after a later one began.
        saves = 0
        while saves < 2:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            saves = int(line)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        _, _, trainer = make(engine)
        trainer.load(bundle)
        assert trainer.last_stats() == {}
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["updates"] >= 2
