"""Loads a model folder, tokenizes a prompt, and prints a greedy and a sampled continuation.

From the repository root, after `swift build`:
    MORAGENT_LIBRARY=.build/debug/libmoragent.so PYTHONPATH=bindings/python \
        python3 examples/python/generate.py Tests/MoRAgentTests/Fixtures/models/qwen2-tiny "You are in the kitchen. > go to"
(or `pip install bindings/python` instead of PYTHONPATH).
"""

import sys

import moragent


def main() -> int:
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} MODEL_DIR [PROMPT]", file=sys.stderr)
        return 2
    prompt = sys.argv[2] if len(sys.argv) > 2 else "You are in the kitchen. > go to"
    print(f"libmoragent {moragent.library_version()}")
    moragent.set_log_callback(lambda level, message: print(f"[moragent {level}] {message}", file=sys.stderr))
    try:
        with moragent.Engine(sys.argv[1]) as engine:
            ids = engine.tokenize(prompt)
            print(f"prompt: {prompt} -> {len(ids)} ids")
            for label, options in (("greedy", {}), ("sampled", dict(temperature=0.8, top_p=0.95, seed=1))):
                out = engine.generate(ids, max_new_tokens=24, **options)
                print(f"{label} ({len(out.ids)} tokens, stop reason {out.stop_reason}): {out.text}")
    except moragent.MoRAgentError as error:
        print(f"error ({error.status}): {error.message}", file=sys.stderr)
        return 1
    finally:
        moragent.set_log_callback(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
