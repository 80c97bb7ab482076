"""Shared set-up: the package from bindings/python (no install needed), the library from
$MORAGENT_LIBRARY (default: the debug build), the fixture model and adapter folders, and the
router plugins (built here with the system C compiler, loaded once: kinds are process-wide)."""

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODELS = os.path.join(ROOT, "Tests", "MoRAgentTests", "Fixtures", "models")
QWEN2 = os.path.join(MODELS, "qwen2-tiny")
ADAPTERS = os.path.join(ROOT, "Tests", "MoRAgentTests", "Fixtures", "adapters", "qwen2-tiny")
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


def build_plugin(source, output, *defines):
    """Compiles a plugin source into a shared object, as Tests/bindings/c/run.sh does."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the router plugins")
    subprocess.run([compiler, "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-I", os.path.join(ROOT, "include"), *("-D" + d for d in defines), source, "-o", str(output)],
                   check=True, capture_output=True)
    return str(output)


@pytest.fixture(scope="session")
def plugins(tmp_path_factory):
    """round_robin.so and the test plugin, built and loaded; the wrong-version variant, built only."""
    folder = tmp_path_factory.mktemp("plugins")
    examples = os.path.join(ROOT, "examples", "c", "plugins")
    tests = os.path.join(ROOT, "Tests", "bindings", "c", "plugins")
    built = SimpleNamespace(
        round_robin=build_plugin(os.path.join(examples, "round_robin.c"), folder / "round_robin.so"),
        probe=build_plugin(os.path.join(tests, "test_plugin.c"), folder / "test_plugin.so"),
        wrong_version=build_plugin(os.path.join(tests, "test_plugin.c"), folder / "test_plugin_WRONG_VERSION.so",
                                   "WRONG_VERSION"),
    )
    moragent.load_plugin(built.round_robin)
    moragent.load_plugin(built.probe)
    return built
