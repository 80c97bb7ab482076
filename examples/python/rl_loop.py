"""An RL loop: a PA-MoE policy (3 LoRA experts chosen per step by a small phase router) plays the
household environment (examples/household, mini size, "pick" tasks) and learns from it with
GiGPO. Each update plays one task instance 4 times (a group: GiGPO compares the rollouts of one
instance, step by step where they meet the same observation), episodes of at most 6 steps, then
makes one update from them; 3 updates, one line of statistics each. At the end it saves the
trainer as a policy bundle and reloads it into a fresh trainer.

The loop, per episode: policy.begin_episode -> (policy.step -> env.step) * -> policy.end_episode;
per update: trainer.update(), which returns the statistics.

examples/c/rl_loop.c and examples/lua/rl_loop.lua run the same loop on a copy of the mini pick
task. With the random-weight test model success stays near zero: this shows the wiring.

From the repository root, after `swift build`:
    MORAGENT_LIBRARY=.build/debug/libmoragent.so PYTHONPATH=bindings/python \\
        python3 examples/python/rl_loop.py Tests/MoRAgentTests/Fixtures/models/qwen2-tiny
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "household"))

import household  # noqa: E402
import moragent  # noqa: E402

EXPERTS, UPDATES, GROUP_SIZE, MAX_STEPS = 3, 3, 4, 6
# A compact prompt with the last step as history keeps the example quick.
TEMPLATE = dict(first_step_template="Task: {goal}\nObservation: {observation}\nAction inside <action> </action>:",
                later_step_template="Task: {goal}\nLast: {history}\nObservation: {observation}\n"
                                    "Action inside <action> </action>:",
                history_entry_template="{observation} > {action}", history_length=1)


def make_trainer(engine):
    """A policy of fresh experts and a small phase router, and a GiGPO trainer bound to it. Made
    twice with the same seeds: trainers of equal shapes and settings can load each other's bundles."""
    experts = moragent.ExpertSet(engine, EXPERTS, rank=4, alpha=8, seed=1)
    # PA-MoE's router, shrunk: its temperature anneals from 2 to 0.5 over the 3 updates.
    router = moragent.PhaseRouter(engine.info.hidden_size, EXPERTS, attention_dim=16, attention_heads=2,
                                  lstm_hidden=16, lstm_layers=2, history_length=3, mlp_hidden=16,
                                  anneal_updates=UPDATES, seed=7)
    # RL samples (temperature 1); each step's seed derives from (seed, episode, step).
    policy = moragent.Policy(engine, experts, router, temperature=1.0, seed=1, max_new_tokens=12,
                             stop=["</action>"], **TEMPLATE)
    return policy, moragent.Trainer(policy, advantage="gigpo", learning_rate=1e-3)


def main() -> int:
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} MODEL_DIR", file=sys.stderr)
        return 2
    print(f"libmoragent {moragent.library_version()}")
    try:
        engine = moragent.Engine(sys.argv[1])
        policy, trainer = make_trainer(engine)
        for update in range(UPDATES):
            group = update
            env = household.HouseholdEnv(household.make_task(seed=update, task_type="pick", size="mini"),
                                         max_steps=MAX_STEPS)
            for j in range(GROUP_SIZE):
                episode = group * GROUP_SIZE + j
                observation, done, reward, won = env.reset(), False, 0.0, False
                policy.begin_episode(episode, group)
                while not done:
                    # The text between <action> and </action>; a response without them gives its
                    # tail, which the environment answers with "nothing happens ." (and GiGPO
                    # penalises).
                    step = policy.step(episode, observation, env.goal)
                    observation, r, done, info = env.step(step.action)
                    reward, won = reward + r, info["won"]
                policy.end_episode(episode, reward=reward, success=won)
            # One update from the episodes ended since the last, which the policy then releases.
            stats = trainer.update()
            print(f"update {stats['update']}: success {stats['success_rate']:.3f}, "
                  f"mean return {stats['mean_return']:.3f}, switches/episode {stats['switches_per_episode']:.2f}, "
                  f"episodes {stats['episodes']}")

        # Save everything (experts, router, optimiser moments, counters), reload it into a fresh
        # trainer of the same shapes, and check the two hold the same experts.
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(os.path.join(folder, "bundle"))
            _, fresh = make_trainer(engine)
            fresh.load(os.path.join(folder, "bundle"))
            trainer.export_expert(0, os.path.join(folder, "trained"))
            fresh.export_expert(0, os.path.join(folder, "reloaded"))
            adapters = [open(os.path.join(folder, name, "adapter_model.safetensors"), "rb").read()
                        for name in ("trained", "reloaded")]
            print(f"bundle reloaded into a fresh trainer: expert 0 {'identical' if adapters[0] == adapters[1] else 'DIFFERS'}")
    except moragent.MoRAgentError as error:
        print(f"error ({error.status}): {error.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
