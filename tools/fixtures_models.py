"""Reference fixtures for MoRAgent's model-loading and forward-pass tests.

`make(out_dir, tokenizer_json)` writes three tiny randomly initialised
Hugging Face checkpoints plus reference outputs computed by `transformers`:

    out_dir/qwen2-tiny/    Qwen2ForCausalLM,   float32,  tied embeddings, q/k/v biases
    out_dir/llama-tiny/    LlamaForCausalLM,   bfloat16, 2 shards + index, llama3 RoPE scaling
    out_dir/mistral-tiny/  MistralForCausalLM, float16,  explicit head_dim (32 != 64/4)

Each folder holds what `save_pretrained` writes (config.json,
generation_config.json, the safetensors file(s)), a copy of the shared BPE
tokenizer.json, and:

    reference.json         {"batch", "greedy", "greedy_prompts", "dtype", "compute_dtype",
                            "pad_token_id", "padded_length", "logits_std", "notes"}
    reference.safetensors  "logits" F32 [3, 13, 512], "hidden" F32 [3, 13, 64]

The references are computed in float32 from the weights exactly as stored
(the bf16/f16 checkpoints are reloaded and upcast), so the Swift engine, which
also upcasts on load, should match them to ~1e-4 regardless of storage dtype.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import (AutoModelForCausalLM, GenerationConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

VOCAB = 512
HIDDEN = 64
PAD_ID = 0            # "<|endoftext|>" in the shared BPE tokenizer
BOS_ID = 0            # Qwen2 convention: <|endoftext|> doubles as BOS (never auto-added)
EOS_ID = 2            # "<|im_end|>"
PROMPT_LENGTHS = (7, 13, 4)
NEW_TOKENS = 20
SEED = 20260101
# Smallest accepted gap between the best and second-best logit at every greedy
# step.  Random logits often have near-ties; a gap of ~1e-3 would let harmless
# float32 summation-order differences in the Swift engine flip a greedy choice.
# Prompts are re-drawn (with the next seed) until every step clears this gap.
MIN_GREEDY_MARGIN = 0.01

# Shared config fields.  max_position_embeddings is kept small everywhere (the
# tests never go past ~33 positions); for llama it also defines the llama3
# scaling regime together with original_max_position_embeddings.
COMMON = dict(vocab_size=VOCAB, hidden_size=HIDDEN, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
              pad_token_id=PAD_ID, max_position_embeddings=256, hidden_act="silu",
              attention_dropout=0.0, use_cache=True)


def _specs():
    """(name, model class, config, storage dtype, shard size or None)."""
    qwen2 = Qwen2Config(**COMMON, intermediate_size=176, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                        rope_theta=10000.0, rms_norm_eps=1e-6, use_sliding_window=False)
    # llama3 RoPE scaling leaves frequencies with wavelength < orig/high_freq_factor
    # alone, divides those with wavelength > orig/low_freq_factor by `factor`, and
    # interpolates in between.  With head_dim 16 and theta 5e5 the wavelengths are
    # 6.28, 32.4, 167, ... (x5.18 each).  original_max_position_embeddings = 32
    # would give the band (8, 32) which NO frequency falls into (32.4 is just
    # above), leaving the interpolation formula untested; 64 gives (16, 64), so
    # the three regimes are hit by i=0 (kept), i=1 (smoothed), i>=2 (scaled).
    # _check_llama3_regimes() asserts this.
    llama = LlamaConfig(**COMMON, intermediate_size=160, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
                        rope_theta=500000.0, rms_norm_eps=1e-5,
                        # transformers 5 stores this as config.json "rope_parameters"
                        # (with rope_theta folded in); "rope_scaling" is still accepted
                        # as the constructor argument.
                        rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 64})
    mistral = MistralConfig(**COMMON, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                            tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5,
                            sliding_window=None)
    # The llama checkpoint is ~380 KB in bf16; a 200 KB shard limit splits it in two.
    return [
        ("qwen2-tiny", Qwen2ForCausalLM, qwen2, torch.float32, None),
        ("llama-tiny", LlamaForCausalLM, llama, torch.bfloat16, "200KB"),
        ("mistral-tiny", MistralForCausalLM, mistral, torch.float16, None),
    ]


def _reinit(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with large, seeded random values.

    The default HF init (std 0.02, norms = 1, biases = 0) gives near-zero logits,
    so a 1e-4 tolerance would pass even for a badly broken forward pass.  With
    these scales the logits have a std of a few units and every component
    (biases, norm weights, both embedding matrices) visibly matters.

    named_parameters() de-duplicates shared tensors, so for the tied qwen2 model
    lm_head.weight is not listed and keeps pointing at embed_tokens.weight.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                std, mean = 0.5, 0.0
            elif name.endswith("norm.weight"):          # input/post_attention/final RMSNorm
                std, mean = 0.2, 1.0
            elif name.endswith(".bias"):                 # qwen2 q/k/v biases
                std, mean = 0.2, 0.0
            elif name.endswith(".weight") and p.dim() == 2:  # every nn.Linear incl. lm_head
                std, mean = 0.15, 0.0
            else:
                raise AssertionError(f"unexpected parameter {name} {tuple(p.shape)}")
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std + mean)


def _stored_tensors(folder: pathlib.Path) -> dict[str, torch.Tensor]:
    """All tensors of a saved checkpoint, single-file or sharded."""
    files = sorted(folder.glob("*.safetensors"))
    files = [f for f in files if f.name != "reference.safetensors"]
    out = {}
    for f in files:
        with safe_open(str(f), framework="pt") as sf:
            for k in sf.keys():
                out[k] = sf.get_tensor(k)
    return out


def _prompts(seed: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    # Ids start at 3 so prompts never contain the special tokens 0..2.
    return [torch.randint(3, VOCAB, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


def _greedy_by_hand(model, prompt: list[int], steps: int) -> tuple[list[int], float]:
    """Greedy decoding by full recomputation (no KV cache), as a cross-check of
    generate(); also returns the smallest top-1/top-2 logit margin seen, which
    tells how robust the greedy reference is to tiny numeric differences."""
    ids = list(prompt)
    margin = float("inf")
    for _ in range(steps):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], margin


def _check_llama3_regimes(model) -> None:
    """Assert that the llama3 RoPE frequencies include a kept, a smoothed and a
    fully scaled one (see the comment in _specs)."""
    rp = model.config.rope_parameters
    dim = model.config.head_dim
    base = 1.0 / (rp["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    ratio = (model.model.rotary_emb.inv_freq.float() / base).tolist()
    kept = sum(abs(r - 1.0) < 1e-6 for r in ratio)
    scaled = sum(abs(r - 1.0 / rp["factor"]) < 1e-6 for r in ratio)
    assert kept >= 1 and scaled >= 1 and kept + scaled < len(ratio), ratio


def _json_compact_lists(obj) -> str:
    """Indented JSON, but each list of numbers on one line (readable diffs)."""
    text = json.dumps(obj, indent=2)
    # Only lists that json.dumps broke over lines ("[" + newline): string values
    # never contain a raw newline, so text inside strings is never touched.
    return re.sub(r"\[\n\s*([-+0-9.e,\s]+?)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                  text)


def _make_one(out_dir: pathlib.Path, tokenizer_json: pathlib.Path, index: int,
              name: str, cls, config, dtype: torch.dtype, shard: str | None) -> None:
    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)   # stale shards from an earlier layout must not survive
    folder.mkdir(parents=True)

    # --- build, randomise, store in the target dtype ------------------------------
    torch.manual_seed(SEED + index)   # only for anything HF might draw; _reinit is explicit
    model = cls(config).to(torch.float32)
    _reinit(model, SEED + 100 * index)
    model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, **kwargs)
    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")

    weight_files = sorted(p.name for p in folder.glob("*.safetensors"))
    if shard:
        assert len(weight_files) >= 2, f"{name}: expected 2+ shards, got {weight_files}"
        assert (folder / "model.safetensors.index.json").exists()
    else:
        assert weight_files == ["model.safetensors"], weight_files

    # --- reload the stored checkpoint as float32 ----------------------------------
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                               attn_implementation="eager")
    ref.eval()
    stored = _stored_tensors(folder)
    # The reference model must hold exactly the upcast stored values.
    ref_state = ref.state_dict()
    for k, t in stored.items():
        assert t.dtype == dtype, (k, t.dtype)
        assert torch.equal(ref_state[k], t.to(torch.float32)), k
    if config.tie_word_embeddings:
        assert ref.lm_head.weight.data_ptr() == ref.model.embed_tokens.weight.data_ptr()

    if ref.config.rope_parameters.get("rope_type") == "llama3":
        _check_llama3_regimes(ref)

    # --- prompts: seeded, re-drawn until greedy decoding has no near-ties --------
    with torch.no_grad():
        for attempt in range(500):
            prompts = _prompts(SEED + 1000 * index + attempt)
            by_hand = [_greedy_by_hand(ref, p, NEW_TOKENS) for p in prompts]
            margin = min(m for _, m in by_hand)
            if margin >= MIN_GREEDY_MARGIN:
                break
        else:
            raise AssertionError(f"{name}: no prompt set with greedy margin >= {MIN_GREEDY_MARGIN}")

    # --- batched forward with right padding ---------------------------------------
    length = max(PROMPT_LENGTHS)
    input_ids = torch.full((len(prompts), length), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for i, p in enumerate(prompts):
        input_ids[i, :len(p)] = torch.tensor(p)
        mask[i, :len(p)] = 1

    with torch.no_grad():
        logits = ref(input_ids, attention_mask=mask).logits.float()
        hidden = ref.model(input_ids, attention_mask=mask).last_hidden_state.float()
        assert logits.shape == (3, length, VOCAB) and hidden.shape == (3, length, HIDDEN)
        # last_hidden_state is the output of the final RMSNorm, so lm_head(hidden)
        # must give the logits back.
        assert torch.allclose(ref.lm_head(hidden), logits, atol=1e-5, rtol=0)

        # Right padding must not change real positions: positions are 0..n-1 for
        # every row either way, and the mask hides the padded keys.
        for i, p in enumerate(prompts):
            solo = ref(torch.tensor([p])).logits[0].float()
            diff = (solo - logits[i, :len(p)]).abs().max().item()
            assert diff <= 1e-5, f"{name} row {i}: padded vs solo differ by {diff}"

        real = torch.cat([logits[i, :len(p)] for i, p in enumerate(prompts)])
        std = real.std().item()
        print(f"[models] {name}: logits std {std:.3f} (real positions), "
              f"hidden std {hidden[mask.bool()].std().item():.3f}, files {weight_files}")
        assert 0.5 < std < 8, f"{name}: logits std {std} out of the useful range"

        # --- greedy continuation, one prompt at a time ----------------------------
        # eos_token_id=None, so nothing can stop early and min_new_tokens never
        # has to suppress an eos logit: the result is plain argmax decoding.
        # Passing eos_token_id=None to generate() is NOT enough in transformers 5:
        # None counts as "unset" and is filled in from the model's own
        # generation_config (eos 2), after which min_new_tokens masks id 2 out of
        # the argmax.  So the model's default generation config is replaced too.
        gen_cfg = GenerationConfig(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                   do_sample=False, eos_token_id=None, pad_token_id=PAD_ID,
                                   bos_token_id=None)
        ref.generation_config = gen_cfg
        greedy = []
        for p, (hand, _) in zip(prompts, by_hand):
            ids = torch.tensor([p])
            out = ref.generate(ids, attention_mask=torch.ones_like(ids),
                               generation_config=gen_cfg)
            new = out[0, len(p):].tolist()
            assert len(new) == NEW_TOKENS, (name, len(new))
            # generate() uses a KV cache, the cross-check recomputes everything.
            assert new == hand, f"{name}: generate() {new} != argmax loop {hand}"
            greedy.append(new)
        print(f"[models] {name}: prompt attempt {attempt}, smallest greedy top1-top2 "
              f"margin {margin:.4f}, eos id {EOS_ID} generated: "
              f"{any(EOS_ID in g for g in greedy)}")

    save_file({"logits": logits.contiguous(), "hidden": hidden.contiguous()},
              str(folder / "reference.safetensors"))
    dtype_name = str(dtype).removeprefix("torch.")
    reference = {
        "batch": prompts,
        "greedy": greedy,
        "greedy_prompts": prompts,
        "dtype": dtype_name,
        "compute_dtype": "float32",
        "pad_token_id": PAD_ID,
        "padded_length": length,
        "logits_std": round(std, 4),
        "greedy_min_margin": round(margin, 4),
        # The RoPE inverse frequencies (head_dim/2 values) transformers uses after
        # any scaling, and the factor applied to cos/sin, so the Swift RoPE setup
        # can be unit-tested on its own.
        "rope_inv_freq": [float(x) for x in ref.model.rotary_emb.inv_freq.float()],
        "rope_attention_scaling": float(ref.model.rotary_emb.attention_scaling),
        "notes": (
            f"Weights stored as {dtype_name}; references computed by transformers in float32 "
            "from the exactly upcast stored weights, eager attention, eval mode. "
            "reference.safetensors: 'logits' [3,13,512] and 'hidden' [3,13,64] (output of "
            "the final RMSNorm) for the batch right-padded with pad_token_id to padded_length "
            "and an attention mask over the real tokens; only real positions are meaningful. "
            "'greedy' holds 20 new ids per prompt from greedy decoding of each prompt alone "
            "(batch 1, no padding) with NO eos token: decoding must not stop early even if "
            "config.json's eos_token_id comes up."
        ),
    }
    (folder / "reference.json").write_text(_json_compact_lists(reference) + "\n",
                                           encoding="utf-8")
    assert json.loads((folder / "reference.json").read_text(encoding="utf-8")) == reference
    # save_pretrained/safetensors create their files 0600; make the fixtures
    # plainly readable (git ignores the mode anyway, but copies keep it).
    for f in folder.iterdir():
        os.chmod(f, 0o644)


def make(out_dir: pathlib.Path, tokenizer_json: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    tokenizer_json = pathlib.Path(tokenizer_json)
    # The models share the BPE tokenizer, so every id it can produce must be a
    # valid row of the 512-row embedding.
    tok = Tokenizer.from_file(str(tokenizer_json))
    assert tok.get_vocab_size(with_added_tokens=True) <= VOCAB
    all_ids = list(tok.get_vocab(with_added_tokens=True).values())
    assert max(all_ids) < VOCAB, max(all_ids)

    # Single-threaded, deterministic kernels: reruns must write byte-identical
    # reference tensors (thread count can change float summation order).
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for index, (name, cls, config, dtype, shard) in enumerate(_specs()):
        _make_one(out_dir, tokenizer_json, index, name, cls, config, dtype, shard)


if __name__ == "__main__":
    import sys
    make(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/modelfix"),
         pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/tokfix/bpe/tokenizer.json"))
