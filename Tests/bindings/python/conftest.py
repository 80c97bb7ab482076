"""Shared set-up: the package from bindings/python (no install needed), the library from
$MORAGENT_LIBRARY (default: the debug build), and the fixture model folders."""

import json
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "Tests", "MoRAgentTests", "Fixtures", "models")
QWEN2 = os.path.join(MODELS, "qwen2-tiny")
ALL_MODELS = ["qwen2-tiny", "llama-tiny", "mistral-tiny"]

os.environ.setdefault("MORAGENT_LIBRARY", os.path.join(ROOT, ".build", "debug", "libmoragent.so"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import moragent  # noqa: E402


@pytest.fixture(scope="session")
def engine():
    with moragent.Engine(QWEN2) as shared:
        yield shared


def reference(model: str) -> dict:
    """The transformers reference outputs committed with a fixture model."""
    with open(os.path.join(MODELS, model, "reference.json")) as f:
        return json.load(f)
