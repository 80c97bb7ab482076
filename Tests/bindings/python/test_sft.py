"""Mixture-of-Roles SFT batch by batch through the binding: steps lower the loss, the
convenience loop writes its metrics, the mixture loads as a router, bad input loses nothing."""

import json
import os

import pytest

import moragent
from conftest import ROOT

SFT = os.path.join(ROOT, "examples", "sft")
SETTINGS = dict(learning_rate=0.01, weight_decay=0, rank=4, routed_counts=[2, 2, 1], top_k=[1, 1, 1], seed=3)


def conversations(name):
    with open(os.path.join(SFT, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_steps_lower_the_cross_entropy(engine, tmp_path):
    train = conversations("train.jsonl")
    with moragent.SFTTrainer(engine, **SETTINGS) as trainer:
        assert trainer.last_stats() == {}
        before = trainer.evaluate(train)
        for step in range(1, 9):
            stats = trainer.step(train[(step * 4) % len(train):][:4] or train[:4])
            assert stats["step"] == step and stats["tokens"] > 0 and stats["grad_norm"] > 0
        after = trainer.evaluate(train)
        assert after < before - 0.5, (before, after)
        trainer.save(tmp_path / "mixture.safetensors")
        router = moragent.RolesRouter.load(engine, tmp_path / "mixture.safetensors")
        router.close()


def test_fit_writes_metrics_and_validates(engine, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    with moragent.SFTTrainer(engine, planned_steps=6, **SETTINGS) as trainer:
        scores = trainer.fit(os.path.join(SFT, "train.jsonl"), epochs=2, batch_size=4,
                             validation=os.path.join(SFT, "valid.jsonl"), metrics_path=str(metrics), progress=False)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [line for line in lines if "step" in line]
    assert len(scores) == 2 and scores[1] < scores[0]
    assert [line["epoch"] for line in lines if "epoch" in line] == [1, 2]
    assert [line["step"] for line in steps] == list(range(1, len(steps) + 1))
    assert steps[-1]["lr"] < steps[0]["lr"], "the cosine schedule spans planned_steps"


def test_bad_input_is_refused_and_changes_nothing(engine, tmp_path):
    with pytest.raises(moragent.MalformedFileError, match="unknown key"):
        moragent.SFTTrainer(engine, learning_rat=1)
    with pytest.raises(moragent.MalformedFileError, match="rank"):
        moragent.SFTTrainer(engine, rank=-1)
    with moragent.SFTTrainer(engine, **SETTINGS) as trainer:
        trainer.save(tmp_path / "before.safetensors")
        with pytest.raises(moragent.InvalidArgumentError, match="no conversation"):
            trainer.step("\n  \n")
        with pytest.raises(moragent.MalformedFileError, match="batch_jsonl:2"):
            trainer.step(json.dumps(conversations("train.jsonl")[0]) + "\n{not json")
        with pytest.raises(moragent.MalformedFileError):
            trainer.step([{"system": "s", "turns": [{"role": "user", "content": "no agent turn"}]}])
        trainer.save(tmp_path / "after.safetensors")
        assert (tmp_path / "before.safetensors").read_bytes() == (tmp_path / "after.safetensors").read_bytes()
        assert trainer.last_stats() == {}
