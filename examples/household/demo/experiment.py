"""The routing experiment (PA-MoE's Table 3 in miniature): single LoRA (K = 0), token-level,
trajectory-level and phase-level routing, each trained with GiGPO on the same frozen base model
with the same budget and seeds, evaluated on the same held-out tasks. Writes experiment.md (mean
± std over seeds of held-out success, its gain over the untrained policy, per task type, switches
per episode) and experiment.json.

    python3 examples/household/demo/experiment.py [--out DIR] [--model DIR] [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from demo import main as demo  # noqa: E402

ROUTINGS = ["single", "token", "trajectory", "phase"]


def mean_std(values: list[float], signed: bool = False) -> str:
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{values[0]:{sign}.2f}"
    return f"{statistics.mean(values):{sign}.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (default runs/experiment-<timestamp>)")
    parser.add_argument("--model", help="a base model folder (default: pretrain one as the demo does)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the demo's reduced budget")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("MORAGENT_DEMO_QUICK") == "1"
    budget = demo.BUDGETS["quick" if quick else "full"]
    out = os.path.abspath(args.out or os.path.join("runs", "experiment-" + time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    model = args.model
    if model is None:
        corpus = os.path.join(out, "corpus.txt")
        demo.make_corpus(corpus, budget, 0)
        model = os.path.join(out, "base_model")
        demo.pretrain(corpus, model, budget, 0)
    types = demo.TYPES[budget["world"]]
    results = {}
    for routing in ROUTINGS:
        for seed in range(args.seeds):
            run = os.path.join(out, f"{routing}-seed{seed}")
            os.makedirs(run, exist_ok=True)
            demo.log(f"== {routing} routing, seed {seed}")
            result = demo.train_and_evaluate(model, routing, seed, budget, run)
            results.setdefault(routing, []).append(result)
            demo.log(f"   held-out success {result['before']['success']:.2f} -> {result['after']['success']:.2f}")
    text = table(results, types)
    with open(os.path.join(out, "experiment.md"), "w") as f:
        f.write(f"Budget: {json.dumps(budget)}; seeds 0..{args.seeds - 1}; mean ± std over seeds.\n\n{text}\n")
    with open(os.path.join(out, "experiment.json"), "w") as f:
        json.dump({k: [{key: r[key] for key in ("seed", "before", "after")} for r in v] for k, v in results.items()}, f, indent=1)
    print(text)


def table(results: dict, types) -> str:
    """Mean ± std over seeds per routing: held-out success after training, its gain over the
    untrained policy on the same tasks (each seed draws its own held-out tasks, so the paired
    gain varies less than the success itself), success per task type, switches per episode."""
    rows = ["| routing | held-out success | gain over untrained | " + " | ".join(types) + " | switches / episode |",
            "|---|---|---|" + "---|" * len(types) + "---|"]
    untrained = [r["before"]["success"] for r in next(iter(results.values()))]
    rows.append(f"| untrained base | {mean_std(untrained)} | | " + " | ".join("" for _ in types) + " | |")
    for routing, runs in results.items():
        per_type = []
        for t in types:
            values = [r["after"]["success_by_type"][t] for r in runs if r["after"]["success_by_type"][t] is not None]
            per_type.append(mean_std(values) if values else "n/a")
        gains = [r["after"]["success"] - r["before"]["success"] for r in runs]
        rows.append(f"| {routing} | {mean_std([r['after']['success'] for r in runs])} | {mean_std(gains, signed=True)} | "
                    + " | ".join(per_type) + f" | {mean_std([r['after']['switches_per_episode'] for r in runs])} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
