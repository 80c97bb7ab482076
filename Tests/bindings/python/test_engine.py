"""Behaviour of the Pythonic API on the fixture models, checked against transformers' reference
outputs and the Swift command-line tool."""

import json
import os
import subprocess
import threading

import pytest

import moragent
from conftest import ALL_MODELS, MODELS, QWEN2, reference


def test_library_version_matches_the_bindings():
    assert moragent.library_version() == moragent._lib.MORAGENT_VERSION
    assert moragent._lib.moragent_version_number() == moragent._lib.MORAGENT_VERSION_NUMBER


def test_openblas_core_type_is_chosen_from_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx2 fma avx512f avx512bw avx512vl\n")
    assert moragent._lib.openblas_core_type(str(cpuinfo)) == "SkylakeX"
    cpuinfo.write_text("flags : fpu sse2 avx2 fma avx512f\n")
    assert moragent._lib.openblas_core_type(str(cpuinfo)) == "Haswell"
    cpuinfo.write_text("flags : fpu sse2\n")
    assert moragent._lib.openblas_core_type(str(cpuinfo)) is None
    assert moragent._lib.openblas_core_type(str(tmp_path / "missing")) is None
    # The loader set it before loading the library (this machine's CPU supports one of them).
    assert os.environ.get("OPENBLAS_CORETYPE") in ("SkylakeX", "Haswell", None)


@pytest.mark.parametrize("model,architecture", [("qwen2-tiny", "Qwen2ForCausalLM"), ("llama-tiny", "LlamaForCausalLM"),
                                                ("mistral-tiny", "MistralForCausalLM")])
def test_info_describes_the_model(model, architecture):
    with open(os.path.join(MODELS, model, "config.json")) as f:
        config = json.load(f)
    with moragent.Engine(os.path.join(MODELS, model)) as engine:
        info = engine.info
    assert info.architecture == architecture
    assert info.vocabulary_size == config["vocab_size"]
    assert info.hidden_size == config["hidden_size"]
    assert info.layer_count == config["num_hidden_layers"]
    assert info.max_position_embeddings == config["max_position_embeddings"]
    assert info.tokenizer_vocabulary_size > 0
    assert info.parameter_count > info.vocabulary_size * info.hidden_size


@pytest.mark.parametrize("text", ["You are in the kitchen. > go to", "", "héllo wörld ✓ 你好", "a\0b", "  two  spaces\n"])
def test_tokenize_then_detokenize_gives_the_text_back(engine, text):
    ids = engine.tokenize(text)
    assert all(isinstance(i, int) and 0 <= i < engine.info.vocabulary_size for i in ids)
    assert engine.detokenize(ids) == text
    assert engine.tokenize(text.encode("utf-8")) == ids


def test_long_text_needs_no_size_hint(engine):
    text = "kitchen " * 2000
    ids = engine.tokenize(text)
    assert len(ids) >= 2000
    assert engine.detokenize(ids) == text


def test_a_first_buffer_that_is_too_small_is_retried(engine, monkeypatch):
    monkeypatch.setattr(moragent._handles.EngineHandle, "initial_capacity", staticmethod(lambda length: 0))
    ids = engine.tokenize("You are in the kitchen.")
    assert len(ids) > 1
    assert engine.detokenize(ids) == "You are in the kitchen."


@pytest.mark.parametrize("model", ALL_MODELS)
def test_greedy_generation_matches_transformers(model):
    expected = reference(model)
    with moragent.Engine(os.path.join(MODELS, model)) as engine:
        for prompt, greedy in zip(expected["greedy_prompts"], expected["greedy"]):
            out = engine.generate(prompt, max_new_tokens=len(greedy), ignore_eos=True)
            assert out.ids == greedy
            assert out.stop_reason == "max_new_tokens"
            assert len(out.logprobs) == len(out.entropies) == len(greedy)
            assert all(lp <= 0 for lp in out.logprobs) and all(h >= 0 for h in out.entropies)


def _cli():
    path = os.environ.get("MORAGENT_CLI") or os.path.join(os.path.dirname(os.environ["MORAGENT_LIBRARY"]), "moragent-cli")
    if not os.path.exists(path):
        pytest.skip(f"no moragent-cli at {path} (run `swift build`)")
    return path


@pytest.mark.parametrize("options", [dict(), dict(temperature=0.8, top_p=0.95, seed=1), dict(temperature=1.3, top_k=20, seed=7)])
def test_generation_matches_the_swift_command_line_tool(engine, options):
    prompt = "You are in the kitchen. > go to"
    command = [_cli(), "generate", "--model", QWEN2, "--prompt", prompt, "--max-new-tokens", "24", "--json"]
    for name, value in options.items():
        command += ["--" + name.replace("_", "-"), str(value)]
    swift = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    out = engine.generate(prompt, max_new_tokens=24, **options)
    assert out.ids == swift["ids"]
    assert out.text == swift["text"]
    assert out.stop_reason == swift["stop_reason"]
    assert out.logprobs == pytest.approx(swift["logprobs"], abs=1e-5)
    assert out.entropies == pytest.approx(swift["entropies"], abs=1e-5)


@pytest.mark.parametrize("arguments, message", [
    (["train", "--repeats", "0"], "--repeats must be at least 1"),
    (["train", "--length", "1"], "--length must be at least 2"),
    (["train", "--batch", "0"], "--batch must be at least 1"),
    (["forward", "--threads", "0"], "--threads must be at least 1"),
    (["route", "--repeats", "0"], "--repeats must be at least 1"),
])
def test_bench_rejects_counts_it_cannot_time(arguments, message):
    # `bench train --repeats 0` used to crash taking the median of no timings.
    run = subprocess.run([_cli(), "bench", *arguments, "--shape", "tiny"], capture_output=True, text=True)
    assert run.returncode == 64, run.stderr
    assert message in run.stderr


def test_bench_train_times_a_small_step():
    run = subprocess.run([_cli(), "bench", "train", "--shape", "tiny", "--repeats", "1", "--batch", "2", "--length", "8"],
                         check=True, capture_output=True, text=True)
    result = json.loads(run.stdout)
    assert result["halves"] == 2 and result["batch"] == 2 and result["length"] == 8
    assert result["train_tokens_per_s"] > 0 and result["last_loss"] > 0


def test_the_seed_decides_sampled_tokens(engine):
    def run(seed):
        return engine.generate("go to", max_new_tokens=16, temperature=1.0, seed=seed, ignore_eos=True).ids
    assert run(5) == run(5)
    assert run(5) != run(6)
    assert len(run(5)) == 16


def test_stop_token_and_stop_string(engine):
    greedy = engine.generate("go to", max_new_tokens=16, ignore_eos=True)
    stop_id = greedy.ids[4]
    out = engine.generate("go to", max_new_tokens=16, stop_token_ids=[stop_id])
    assert out.stop_reason == "stop_token"
    assert out.ids == greedy.ids[:greedy.ids.index(stop_id) + 1]

    stop = greedy.text[-1]
    out = engine.generate("go to", max_new_tokens=16, ignore_eos=True, stop=[stop])
    assert out.stop_reason == "stop_string"
    assert out.text.endswith(stop) and greedy.text.startswith(out.text)


def test_progress_is_reported_and_can_abort(engine):
    calls = []
    out = engine.generate("go to", max_new_tokens=6, ignore_eos=True, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(7)]
    assert len(out.ids) == 6

    with pytest.raises(moragent.AbortedError) as raised:
        engine.generate("go to", max_new_tokens=50, ignore_eos=True, progress=lambda done, total: done >= 3)
    assert raised.value.status == moragent._lib.MORAGENT_ERROR_ABORTED
    assert "progress callback" in raised.value.message

    class Stop(Exception):
        pass

    def explode(done, total):
        if done == 2:
            raise Stop()
    with pytest.raises(Stop):
        engine.generate("go to", max_new_tokens=50, ignore_eos=True, progress=explode)
    # The engine is still fine afterwards.
    assert len(engine.generate("go to", max_new_tokens=3, ignore_eos=True).ids) == 3


def test_log_callback_receives_load_lines_and_can_be_removed():
    lines = []
    moragent.set_log_callback(lambda level, message: lines.append((level, message)))
    try:
        moragent.Engine(QWEN2).close()
    finally:
        moragent.set_log_callback(None)
    assert any(level == 1 and "Qwen2ForCausalLM" in message and "OpenBLAS" in message for level, message in lines)
    count = len(lines)
    moragent.Engine(QWEN2).close()
    assert len(lines) == count


def test_buffer_cache_keeps_large_buffers_until_limited(engine):
    long_prompt = list(range(5, 25)) * 60  # 1200 tokens: hidden states of 1200 x 64 floats (300 KB)
    try:
        first = engine.generate(long_prompt, max_new_tokens=4, ignore_eos=True)
        assert moragent.buffer_cache_kept_bytes() >= 256 * 1024
        moragent.set_buffer_cache_limit(0)
        assert moragent.buffer_cache_kept_bytes() == 0
        assert engine.generate(long_prompt, max_new_tokens=4, ignore_eos=True).ids == first.ids
        assert moragent.buffer_cache_kept_bytes() == 0
        for bad in (-1, 1.5, True, "1"):
            with pytest.raises(ValueError):
                moragent.set_buffer_cache_limit(bad)
    finally:
        moragent.set_buffer_cache_limit(4 << 30)


def test_threads_share_one_engine(engine):
    prompts = ["go to the kitchen", "open the fridge", "take the apple", "You are in the kitchen."]
    alone = [engine.generate(p, max_new_tokens=10, temperature=0.9, seed=i, ignore_eos=True) for i, p in enumerate(prompts)]
    together = [None] * len(prompts)

    def work(i):
        together[i] = engine.generate(prompts[i], max_new_tokens=10, temperature=0.9, seed=i, ignore_eos=True)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
