#!/usr/bin/env python3
"""Regenerate MoRAgent's reference test fixtures.

Usage (from anywhere):

    python tools/make_fixtures.py [--out Tests/MoRAgentTests/Fixtures]

The default output directory is Tests/MoRAgentTests/Fixtures under the
repository root (found from this file's location, not the working directory).

What it writes:

    tokenizers/bpe/tokenizer.json        byte-level BPE, Qwen2 pipeline, 512 ids
    tokenizers/gpt2/tokenizer.json       GPT-2 style BPE, legacy "a b" merges, 400 + 2 added
    tokenizers/wordlevel/tokenizer.json  WordLevel + WhitespaceSplit, 200 words
    tokenizers/reference.json            ids / decoded text from the `tokenizers` library
    models/{qwen2,llama,mistral}-tiny/   tiny random checkpoints (config.json,
                                         generation_config.json, safetensors weights,
                                         tokenizer.json = the bpe one) plus
                                         reference.json / reference.safetensors with
                                         logits, final hidden states and greedy ids
                                         computed by `transformers`
    adapters/{qwen2,llama}-tiny/...      PEFT LoRA adapters with non-zero B (plain, rsLoRA,
                                         rank/alpha patterns, all seven projections) and
                                         the logits PEFT computes with them, alone and as a
                                         0.7/0.3 soft mixture (tools/fixtures_adapters.py)
    gradients/{qwen2,llama}-tiny/...     reference gradients (float32, transformers + peft)
                                         of the causal-LM cross-entropy on the reference
                                         batch: every LoRA parameter of qwen2 expert0/expert1
                                         and llama expert0 (plain loss and a loss over the
                                         last 3 targets of each sequence only), and six base
                                         weights of qwen2-tiny under full fine-tuning
                                         (tools/fixtures_gradients.py)

Requirements: torch, transformers, tokenizers, peft, safetensors (numpy comes along).
Nothing is downloaded from a model hub: the tokenizers are trained on text the
script generates and the models get seeded random weights.  A CPU-only setup:

    python3 -m venv .venv-ref && .venv-ref/bin/pip install "torch==2.13.0+cpu" transformers tokenizers peft safetensors

(the "+cpu" torch build comes from PyTorch's CPU wheel index; plain "torch"
works too, it is just a much larger download).  The fixtures were produced with
torch 2.13.0+cpu, transformers 5.23.0 and tokenizers 0.23.3; other versions may
produce different tokenizer merges or config.json layouts.

CI never runs this script: the generated files are committed and the Swift tests
only read them.  Regenerate deliberately, review the diff, and commit.

Determinism: everything is seeded and torch runs single-threaded, so running the
script twice writes byte-identical files (checked with sha256sum).  Files written
by transformers embed its version ("transformers_version" in config.json and
generation_config.json), so a different transformers version changes those
lines even when nothing else changes.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

# The generator modules live next to this file; make them importable no
# matter what the current directory is.
TOOLS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = TOOLS_DIR.parent
sys.path.insert(0, str(TOOLS_DIR))
# Don't leave a tools/__pycache__ behind in the work tree.
sys.dont_write_bytecode = True

import fixtures_adapters  # noqa: E402
import fixtures_gradients  # noqa: E402
import fixtures_models  # noqa: E402
import fixtures_tokenizer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=REPO_ROOT / "Tests" / "MoRAgentTests" / "Fixtures",
                        help="fixture directory (default: %(default)s)")
    args = parser.parse_args(argv)
    out = args.out.resolve()

    # Tokenizers first: the models copy the bpe tokenizer.json into their folders.
    fixtures_tokenizer.make(out / "tokenizers")
    fixtures_models.make(out / "models", out / "tokenizers" / "bpe" / "tokenizer.json")
    # LoRA adapters (peft) for the tiny models just written.
    fixtures_adapters.make(out / "adapters", out / "models")
    # Training-step gradients for those models and adapters.
    fixtures_gradients.make(out / "gradients", out / "models", out / "adapters")
    print(f"fixtures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
