#!/usr/bin/env python3
"""Runs `moragent bench forward` and the PyTorch peer (../shared/bench/pytorch_peer.py) back to
back, alternating, on the same shape, and prints one JSON object with both sides' medians and
the ratios (ours / peer). Shared machines drift by 5-10% and more between minutes, so only
alternated runs give a fair ratio.

Needs a venv with torch/transformers/peft for the peer (not CI):
    python3 -m venv .venv-ref && .venv-ref/bin/pip install "torch==2.13.0+cpu" transformers peft
Usage:
    .venv-ref/bin/python tools/bench_compare.py --shape tiny [--rounds 2] [--peer ../shared/bench/pytorch_peer.py]
"""
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["tiny", "qwen05b"], default="tiny")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", default=str(ROOT.parent / "shared" / "bench" / "pytorch_peer.py"))
    ap.add_argument("--workload", choices=["forward", "train"], default="forward",
                    help="forward: prefill and decode; train: one LoRA step (r=32 q/v, 4 x 256, AdamW)")
    a = ap.parse_args()
    if a.workload == "train":
        return compare_train(a)
    ours_cmd = [str(ROOT / ".build" / "release" / "moragent-cli"), "bench", "forward", "--shape", a.shape,
                "--repeats", str(a.repeats)]
    peer_cmd = [sys.executable, a.peer, "--config", a.shape, "--threads", "2", "--skip", "train",
                "--repeats", str(a.repeats)]
    ours, peer = [], []
    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}: moragent", file=sys.stderr)
        ours.append(run_json(ours_cmd))
        print(f"round {r + 1}/{a.rounds}: peer", file=sys.stderr)
        peer.append(run_json(peer_cmd))

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    # The peer's decode figures include its 128-token prefill (it times generate()); ours are
    # reported both ways, and the ratio uses the like-for-like "including prefill" figure.
    pairs = {
        "prefill_tokens_per_s": ("prefill_tokens_per_s", "prefill_tokens_per_s"),
        "decode_tokens_per_s_b1": ("decode_tokens_per_s_b1_including_prefill", "decode_tokens_per_s_b1"),
        "decode_tokens_per_s_b8": ("decode_tokens_per_s_b8_including_prefill", "decode_tokens_per_s_b8"),
    }
    result = {"shape": a.shape, "rounds": a.rounds, "moragent": {}, "peer": {}, "ratio": {}}
    for name, (ok, pk) in pairs.items():
        o, p = med(ours, ok), med(peer, pk)
        result["moragent"][name] = round(o, 2)
        result["peer"][name] = round(p, 2)
        result["ratio"][name] = round(o / p, 3)
    for k in ["decode_ms_per_step_b1", "decode_bound_ms_per_step_b1", "sgemv_bandwidth_gbytes_per_s",
              "prefill_fraction_of_sgemm_peak", "sgemm_peak_gflops"]:
        result["moragent"][k] = med(ours, k)
    for b in (1, 8):
        result["moragent"][f"decode_tokens_per_s_b{b}_excluding_prefill"] = med(ours, f"decode_tokens_per_s_b{b}")
    result["moragent"]["decode_fraction_of_bandwidth_bound_b1"] = round(
        result["moragent"]["decode_bound_ms_per_step_b1"] / result["moragent"]["decode_ms_per_step_b1"], 3)
    result["peer"]["peak_rss_mb"] = med(peer, "peak_rss_mb")
    print(json.dumps(result, indent=1))


def compare_train(a):
    """LoRA training step: tokens/s and peak memory, ours against the peer, alternated."""
    ours_cmd = [str(ROOT / ".build" / "release" / "moragent-cli"), "bench", "train", "--shape", a.shape, "--repeats", str(a.repeats)]
    peer_cmd = [sys.executable, a.peer, "--config", a.shape, "--threads", "2", "--skip", "prefill,decode", "--repeats", str(a.repeats)]
    ours, peer = [], []
    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}: moragent", file=sys.stderr)
        ours.append(run_json(ours_cmd))
        print(f"round {r + 1}/{a.rounds}: peer", file=sys.stderr)
        peer.append(run_json(peer_cmd))
    med = lambda runs, k: statistics.median(x[k] for x in runs)
    result = {"shape": a.shape, "rounds": a.rounds, "workload": "train",
              "moragent": {k: med(ours, k) for k in ["train_tokens_per_s", "train_step_s", "peak_rss_mb"]},
              "peer": {k: med(peer, k) for k in ["train_tokens_per_s", "train_step_s", "peak_rss_mb"]}}
    result["ratio"] = {"train_tokens_per_s": round(result["moragent"]["train_tokens_per_s"] / result["peer"]["train_tokens_per_s"], 3),
                       "peak_rss": round(result["moragent"]["peak_rss_mb"] / result["peer"]["peak_rss_mb"], 3)}
    # Each round's own ratio (ours, then the peer right after): on a noisy host the spread of
    # these says how far the medians' ratio can be trusted.
    result["round_ratios"] = [round(o["train_tokens_per_s"] / p["train_tokens_per_s"], 3) for o, p in zip(ours, peer)]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
