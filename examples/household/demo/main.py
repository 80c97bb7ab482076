"""MoRAgent's main job: PA-MoE on a household text world, end to end, on CPUs.

1. Scripted, noisy walkthroughs of the world's training split become a corpus.
2. The library builds a word-level tokenizer from it and pretrains a tiny base model
   (`moragent train base`), which is then frozen.
3. K LoRA experts and a phase router are trained with GiGPO through the Python binding
   (groups of n rollouts per task instance, PA-MoE's balance, switching and diversity terms).
4. The untrained and the trained policy are evaluated on the held-out split: a table of success
   per task type, switches per episode and expert utilisation, a learning curve and a
   per-episode expert timeline (PA-MoE's Figure 2b) as PNG files.

Everything goes to runs/<timestamp>/ (or --out). MORAGENT_DEMO_QUICK=1 (or --quick) runs a
reduced budget in a few minutes. `--routing` picks the router (phase, trajectory, token, or
single: one LoRA, PA-MoE's K = 0 baseline); experiment.py compares them over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "examples", "household"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import household  # noqa: E402
import moragent  # noqa: E402

from demo import agent, plots  # noqa: E402

# Budgets: the full run fits the 15-minute aim on 2 cores (build included); quick is for CI.
# Each update takes 4 optimiser steps on quarters of its batch (verl-agent takes several per
# batch too: ppo_mini_batch_size 256 steps), clipped by the surrogate after the first.
BUDGETS = {
    "full": dict(world="small", walkthroughs=2400, noise=0.3, pretrain_steps=3000, pretrain_batch=16, updates=40, groups=8, learning_rate=3e-3, mini_batches=4, kl_coefficient=0.1,
                 group_size=8, max_steps=30, eval_per_type=50),
    "quick": dict(world="mini", walkthroughs=800, noise=0.3, pretrain_steps=600, pretrain_batch=16, updates=30, groups=8, learning_rate=3e-3, mini_batches=4,
                  kl_coefficient=0.1, group_size=8, max_steps=20, eval_per_type=200),
}
EXPERTS = 4
# The household world sizes the budgets use: "small" has ALFWorld's six task types in rooms with
# one receptacle per kind, which a 300k-parameter model pretrained for two minutes can learn to
# act in; the quick budget's "mini" kitchen has `pick` and `clean` only.
TYPES = {"small": household.TASK_TYPES, "full": household.TASK_TYPES, "mini": ("pick", "clean")}


def log(message: str) -> None:
    print(message, flush=True)


def progress_bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def make_corpus(path: str, budget: dict, seed: int) -> int:
    """Noisy scripted walkthroughs of training tasks, one line per step: the prompt of a state
    the noisy walk reached and the scripted expert's command there. The noise spreads the
    states (the base model sees detours and how to recover from them); what the expert cannot
    know from two steps of history (which receptacles it has searched) leaves RL something to
    improve."""
    rng = random.Random(seed)
    lines = []
    for i in range(budget["walkthroughs"]):
        task = household.make_task(rng.randrange(1 << 30), split="train", size=budget["world"],
                                   task_type=TYPES[budget["world"]][i % len(TYPES[budget["world"]])])
        lines += agent.noisy_walkthrough_lines(task, rng, budget["noise"], budget["max_steps"])
    rng.shuffle(lines)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return len(lines)


def pretrain(corpus: str, out: str, budget: dict, seed: int) -> None:
    """`moragent train base`: tokenizer + tiny Llama-style model trained from scratch on the
    corpus (loss on the response tokens), written atomically to `out`."""
    cli = os.environ.get("MORAGENT_CLI") or os.path.join(ROOT, "bin", "moragent")
    command = [cli, "train", "base", "--corpus", corpus, "--out", out,
               "--hidden", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--intermediate", "256",
               "--steps", str(budget["pretrain_steps"]), "--batch", str(budget["pretrain_batch"]), "--lr", "3e-3",
               "--seed", str(seed), "--max-length", "512", "--mask-after", "act"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if "step" in record and "loss" in record:
            print(f"\r  pretraining {progress_bar(record['step'], budget['pretrain_steps'])} loss {record['loss']:.3f}",
                  end="", flush=True)
    print()
    if process.wait() != 0:
        raise SystemExit(f"moragent train base failed ({process.returncode})")


def make_policy(engine: moragent.Engine, routing: str, seed: int, updates: int):
    """Experts, router and policy for one routing granularity (DESIGN.md §4)."""
    hidden = engine.info.hidden_size
    count = 1 if routing == "single" else EXPERTS
    experts = moragent.ExpertSet(engine, count, rank=8, alpha=16, seed=seed)
    if routing == "single":
        router = moragent.FixedRouter(1, 0)
    elif routing == "token":
        router = moragent.TokenRouter(experts, top_k=2, seed=seed)
    else:
        router = moragent.PhaseRouter(hidden, EXPERTS, attention_dim=64, attention_heads=4, lstm_hidden=64,
                                      lstm_layers=3, history_length=5, mlp_hidden=64, anneal_updates=updates,
                                      seed=seed)
        if routing == "trajectory":
            router = moragent.TrajectoryRouter(router)
    policy = moragent.Policy(engine, experts, router, temperature=1.0, max_new_tokens=16, stop=("</action>",),
                             seed=seed, first_step_template=agent.FIRST_STEP, later_step_template=agent.LATER_STEP,
                             history_entry_template=agent.HISTORY_ENTRY, history_length=agent.HISTORY_LENGTH)
    return experts, router, policy


def summarize(episodes: list[agent.Episode], expert_count: int) -> dict:
    """Success per task type, overall, switches per episode and hard expert utilisation."""
    by_type = {t: [e.won for e in episodes if e.task.task_type == t] for t in household.TASK_TYPES}
    steps = [x for e in episodes for x in e.experts]
    used = [x for x in steps if x is not None]
    return {
        "success": sum(e.won for e in episodes) / len(episodes),
        "success_by_type": {t: (sum(v) / len(v) if v else None) for t, v in by_type.items()},
        "mean_steps": statistics.mean(e.steps for e in episodes),
        "switches_per_episode": statistics.mean(sum(a != b for a, b in zip(e.experts, e.experts[1:])) for e in episodes),
        "expert_utilisation": [used.count(k) / max(len(steps), 1) for k in range(expert_count)],
        "invalid_per_episode": statistics.mean(e.invalid for e in episodes),
    }


def train_and_evaluate(model: str, routing: str, seed: int, budget: dict, out: str) -> dict:
    """RL with the given routing, evaluated before and after on held-out tasks."""
    os.makedirs(out, exist_ok=True)
    engine = moragent.Engine(model)
    experts, router, policy = make_policy(engine, routing, seed, budget["updates"])
    trainer = moragent.Trainer(policy, advantage="gigpo", learning_rate=budget["learning_rate"], weight_decay=0.0,
                               mini_batches=budget["mini_batches"], diversity_interval=10, diversity_samples=16, chunk_steps=64,
                               router_learning_rate_scale=0.1, balance_coefficient=0.01,
                               kl_coefficient=budget.get("kl_coefficient", 0.0),
                               metrics_path=os.path.join(out, "metrics.jsonl"), seed=seed)
    counter = agent.EpisodeCounter()
    held_out = agent.task_sample(random.Random(1000 + seed), "heldout", budget["eval_per_type"] * len(TYPES[budget["world"]]), budget["world"])
    log(f"  evaluating the untrained policy on {len(held_out)} held-out tasks")
    before = agent.evaluate(policy, held_out, budget["max_steps"])
    rng = random.Random(seed)
    curve = []
    started = time.time()
    for update in range(1, budget["updates"] + 1):
        tasks = agent.task_sample(rng, "train", budget["groups"], budget["world"])
        agent.play_groups(policy, tasks, budget["group_size"], budget["max_steps"], counter)
        stats = trainer.update()
        curve.append(stats)
        log(f"  update {progress_bar(update, budget['updates'])} success {stats['success_rate']:.2f} "
            f"return {stats['mean_return']:.2f} steps {stats['mean_length']:.1f} "
            f"switches {stats['switches_per_episode']:.2f} tau {stats['temperature']:.2f} "
            f"({time.time() - started:.0f}s)")
    log(f"  evaluating the trained policy on {len(held_out)} held-out tasks")
    after = agent.evaluate(policy, held_out, budget["max_steps"])
    trainer.save(os.path.join(out, "bundle"))
    os.makedirs(os.path.join(out, "experts"), exist_ok=True)
    for k in range(len(experts)):
        trainer.export_expert(k, os.path.join(out, "experts", f"expert_{k}"))
    count = len(experts)
    return {"routing": routing, "seed": seed, "before": summarize(before, count), "after": summarize(after, count),
            "curve": curve, "timelines": [e.experts for e in after], "expert_count": count,
            "eval_types": [e.task.task_type for e in after]}


def table(result: dict) -> str:
    """The markdown table the demo prints."""
    b, a = result["before"], result["after"]
    rows = ["| task type | untrained | trained |", "|---|---|---|"]
    for t in household.TASK_TYPES:
        fmt = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
        rows.append(f"| {t} | {fmt(b['success_by_type'][t])} | {fmt(a['success_by_type'][t])} |")
    rows.append(f"| **all** | **{b['success']:.2f}** | **{a['success']:.2f}** |")
    rows.append(f"| steps per episode | {b['mean_steps']:.1f} | {a['mean_steps']:.1f} |")
    rows.append(f"| switches per episode | {b['switches_per_episode']:.2f} | {a['switches_per_episode']:.2f} |")
    rows.append(f"| refused commands per episode | {b['invalid_per_episode']:.1f} | {a['invalid_per_episode']:.1f} |")
    rows.append("| expert utilisation | " + " / ".join(f"{u:.2f}" for u in b["expert_utilisation"]) + " | "
                + " / ".join(f"{u:.2f}" for u in a["expert_utilisation"]) + " |")
    return "\n".join(rows)


def write_report(result: dict, out: str) -> None:
    curve = result["curve"]
    rates = [(s["update"], s["success_rate"]) for s in curve]
    window = 5
    smoothed = [(u, statistics.mean(r for _, r in rates[max(0, i - window + 1):i + 1])) for i, (u, _) in enumerate(rates)]
    plots.line_chart(os.path.join(out, "learning_curve.png"),
                     [("success rate (training rollouts)", rates, None),
                      (f"mean of the last {window} updates", smoothed, None)],
                     title=f"PA-MoE GiGPO on the household world ({result['routing']} routing)",
                     x_label="update", y_label="rate", y_range=(0, 1))
    rows = result["timelines"][:16]
    plots.expert_timeline(os.path.join(out, "expert_timeline.png"), rows, result["expert_count"],
                          title="experts chosen per step, held-out episodes",
                          row_labels=result["eval_types"][:16])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({k: v for k, v in result.items() if k != "curve"}, f, indent=1)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table(result) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (default runs/<timestamp> in the current folder)")
    parser.add_argument("--quick", action="store_true", help="reduced budget (also MORAGENT_DEMO_QUICK=1)")
    parser.add_argument("--routing", default="phase", choices=["phase", "trajectory", "token", "single"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="reuse a base model folder instead of pretraining one")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("MORAGENT_DEMO_QUICK") == "1"
    budget = BUDGETS["quick" if quick else "full"]
    out = os.path.abspath(args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    started = time.time()
    log(f"MoRAgent demo ({'quick' if quick else 'full'} budget) -> {out}")
    model = args.model
    if model is None:
        corpus = os.path.join(out, "corpus.txt")
        lines = make_corpus(corpus, budget, args.seed)
        log(f"[1/3] {lines} walkthrough steps written to corpus.txt; pretraining the base model")
        model = os.path.join(out, "base_model")
        pretrain(corpus, model, budget, args.seed)
    log(f"[2/3] training {args.routing}-routed LoRA experts with GiGPO ({time.time() - started:.0f}s so far)")
    result = train_and_evaluate(model, args.routing, args.seed, budget, out)
    log(f"[3/3] writing the report ({time.time() - started:.0f}s so far)")
    write_report(result, out)
    print()
    print(table(result))
    print()
    log(f"wrote {out}/table.md, learning_curve.png, expert_timeline.png, metrics.jsonl, bundle/ "
        f"in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
