"""Reference fixtures for MoRAgent's LoRA experts.

`make(out_dir, models_dir)` writes PEFT LoRA adapters for the tiny checkpoints
made by fixtures_models.py, built with peft's own API (get_peft_model +
LoraConfig, save_pretrained), plus reference outputs computed by
transformers + peft in float32:

    out_dir/qwen2-tiny/expert0/   r=8,  alpha=16, q_proj v_proj
    out_dir/qwen2-tiny/expert1/   r=4,  alpha=8,  all seven projections, rsLoRA
    out_dir/qwen2-tiny/expert2/   r=16, alpha=16, q/k/v/o_proj, with rank_pattern
                                  (layer 1 q_proj: r=2) and alpha_pattern
                                  (layer 0 v_proj: alpha=5)
    out_dir/llama-tiny/expert0/   r=8,  alpha=32, all seven projections (bf16 base)
    out_dir/qwen2-tiny/mixture_reference.safetensors
                                  soft mixture 0.7*expert0 + 0.3*expert1, mixed per layer:
                                  "logits_mix", "logits_e0", "logits_e1" F32 [3, 13, 512]
    out_dir/qwen2-tiny/mixture_reference.json
                                  weights, batch and the exact definition of the mixture

Each expert folder holds what PeftModel.save_pretrained writes
(adapter_config.json, adapter_model.safetensors; the boilerplate README.md model
card is deleted) and:

    reference.safetensors  "logits" F32 [3, 13, 512]        with the adapter applied
                           "delta_logits" F32 [3, 13, 512]  logits(with) - logits(base)
    reference.json         {"base_model", "batch", "scaling", "r", "lora_alpha",
                            "max_abs_delta_logits", ..., "notes"}

The batch is the base model's reference batch (models/<name>/reference.json,
right-padded with 0 to 13, attention mask over the real tokens), and the
base is loaded from the checkpoint exactly as stored, upcast to float32.

The LoRA weights are not PEFT's default init (lora_B = 0 would make the adapter
a no-op): lora_A and lora_B are both overwritten with seeded normal noise.

Checks run every time (the script fails if any does not hold):
  * PEFT's logits equal an independent re-implementation (forward hooks on the
    plain base model, reading only adapter_config.json + adapter_model.safetensors)
    to 1e-5, for every adapter and for the mixture;
  * PeftModel.from_pretrained on the saved folder gives identical logits;
  * each sequence run alone equals its row of the padded batch (1e-5);
  * PEFT's mixed-batch forward (adapter_names=["e0", "e1", "__base__"]) equals
    row 0 of expert0, row 1 of expert1 and row 2 of the base model (1e-5), so a
    mixed-batch reference can be assembled from the single-adapter files;
  * the rank_pattern / alpha_pattern entries really changed the saved shapes and
    PEFT's scaling.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import re
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

import peft
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

from fixtures_models import _json_compact_lists

SEED = 20260301
PAD_ID = 0
VOCAB = 512
# Both LoRA factors are drawn from N(0, LORA_STD^2).  PEFT's own init sets
# lora_B = 0 (a no-op adapter).  The tiny models are very sensitive (base logits
# have a std of a few units): 0.3 moved the logits by up to ~25, 0.05 by ~5-9;
# 0.02 gives a max |delta logits| of ~0.7-1.7 and a mean of ~0.1-0.26 at real
# positions (printed on every run), i.e. O(0.1-1): a wrong scaling or a missing
# module is far outside a 1e-4 tolerance, yet the base model still dominates.
LORA_STD = 0.02
ALL_SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Soft-mixture weights for qwen2-tiny: w0 * expert0 + w1 * expert1.
MIX = (("e0", "expert0", 0.7), ("e1", "expert1", 0.3))

# PEFT's pattern keys are regular expressions matched against the module's name
# inside the base model (e.g. "model.layers.1.self_attn.q_proj") as
# re.match(r"(.*\.)?(KEY)$", name), i.e. KEY must match a dotted suffix of the
# name.  One key is a full name, the other a suffix, so both forms are exercised.
EXPERT2_RANK_PATTERN = {"model.layers.1.self_attn.q_proj": 2}
EXPERT2_ALPHA_PATTERN = {"layers.0.self_attn.v_proj": 5}


def _specs():
    """(base model, adapter folder, LoraConfig kwargs)."""
    return [
        ("qwen2-tiny", "expert0", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                       use_rslora=False)),
        ("qwen2-tiny", "expert1", dict(r=4, lora_alpha=8, target_modules=ALL_SEVEN,
                                       use_rslora=True)),
        ("qwen2-tiny", "expert2", dict(r=16, lora_alpha=16,
                                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                       use_rslora=False,
                                       rank_pattern=dict(EXPERT2_RANK_PATTERN),
                                       alpha_pattern=dict(EXPERT2_ALPHA_PATTERN))),
        ("llama-tiny", "expert0", dict(r=8, lora_alpha=32, target_modules=ALL_SEVEN,
                                       use_rslora=False)),
    ]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def _load_base(models_dir: pathlib.Path, name: str):
    model = AutoModelForCausalLM.from_pretrained(models_dir / name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return model


def _batch(models_dir: pathlib.Path, name: str):
    ref = json.loads((models_dir / name / "reference.json").read_text(encoding="utf-8"))
    prompts = ref["batch"]
    length = ref["padded_length"]
    assert ref["pad_token_id"] == PAD_ID
    input_ids = torch.full((len(prompts), length), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for i, p in enumerate(prompts):
        input_ids[i, :len(p)] = torch.tensor(p)
        mask[i, :len(p)] = 1
    return prompts, input_ids, mask


def _logits(model, input_ids, mask) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=mask).logits.float()


def _real_max(t: torch.Tensor, prompts) -> float:
    """max |t| over the real (unpadded) positions of a [3, 13, V] tensor."""
    return max(t[i, :len(p)].abs().max().item() for i, p in enumerate(prompts))


def _real_mean(t: torch.Tensor, prompts) -> float:
    return torch.cat([t[i, :len(p)] for i, p in enumerate(prompts)]).abs().mean().item()


def _lora_layers(peft_model) -> dict[str, LoraLayer]:
    """LoraLayer modules keyed by their name inside the base model
    ("model.layers.0.self_attn.q_proj")."""
    out = {}
    prefix = "base_model.model."
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer):
            assert name.startswith(prefix), name
            out[name[len(prefix):]] = module
    return out


def _read_adapter(folder: pathlib.Path):
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as sf:
        tensors = {k: sf.get_tensor(k) for k in sf.keys()}
    return config, tensors


def _pattern_value(patterns: dict, module_name: str, default):
    """PEFT's rule (peft.utils.other.get_pattern_key): the first key K with
    re.match(r"(.*\\.)?(K)$", module_name) wins; otherwise the default."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module_name):
            return value
    return default


def _manual_scalings(config: dict, tensors: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """From the saved files alone: module name -> (A [r, in], B [out, r], scale)."""
    prefix = "base_model.model."
    out = {}
    for key in sorted(tensors):
        m = re.fullmatch(re.escape(prefix) + r"(.+)\.lora_A\.weight", key)
        if not m:
            assert re.fullmatch(re.escape(prefix) + r".+\.lora_B\.weight", key), key
            continue
        name = m.group(1)
        a = tensors[key].float()
        b = tensors[f"{prefix}{name}.lora_B.weight"].float()
        r = _pattern_value(config["rank_pattern"], name, config["r"])
        alpha = _pattern_value(config["alpha_pattern"], name, config["lora_alpha"])
        assert a.shape[0] == r and b.shape[1] == r, (name, a.shape, b.shape, r)
        scale = alpha / math.sqrt(r) if config["use_rslora"] else alpha / r
        out[name] = (a, b, scale)
    return out


def _manual_logits(base, adapters: list[tuple[dict, float]], input_ids, mask) -> torch.Tensor:
    """Independent LoRA forward: hooks on the plain base model's nn.Linear modules
    add  sum_e  w_e * scale_e * B_e (A_e x)  to each targeted projection's output.
    `adapters` = [(module name -> (A, B, scale), w_e), ...]."""
    modules = dict(base.named_modules())
    per_module: dict[str, list] = {}
    for layers, weight in adapters:
        for name, (a, b, scale) in layers.items():
            assert isinstance(modules[name], torch.nn.Linear), name
            per_module.setdefault(name, []).append((a, b, weight * scale))

    def hook_for(terms):
        def hook(_module, inputs, output):
            x = inputs[0]
            for a, b, s in terms:
                output = output + (x @ a.T @ b.T) * s
            return output
        return hook

    handles = [modules[n].register_forward_hook(hook_for(t)) for n, t in per_module.items()]
    try:
        return _logits(base, input_ids, mask)
    finally:
        for h in handles:
            h.remove()


def _sorted_sets(config: LoraConfig) -> None:
    """PEFT turns target_modules into a set and save_pretrained writes list(set):
    the order then depends on Python's per-process string hash seed, so
    adapter_config.json would differ between runs.  Sorted lists serialise
    identically every time (PEFT turns them back into sets on load)."""
    for field, value in vars(config).items():
        if isinstance(value, set):
            setattr(config, field, sorted(value))


def _finish_folder(folder: pathlib.Path) -> None:
    # save_pretrained writes 0600 files; make them plainly readable.
    for f in folder.iterdir():
        os.chmod(f, 0o644)


def _check_solo_rows(model, prompts, batched: torch.Tensor, what: str) -> float:
    worst = 0.0
    with torch.no_grad():
        for i, p in enumerate(prompts):
            solo = model(input_ids=torch.tensor([p])).logits[0].float()
            diff = (solo - batched[i, :len(p)]).abs().max().item()
            assert diff <= 1e-5, f"{what} row {i}: solo vs batched differ by {diff}"
            worst = max(worst, diff)
    return worst


# --------------------------------------------------------------------------------------
# one adapter
# --------------------------------------------------------------------------------------

def _make_one(out_dir: pathlib.Path, models_dir: pathlib.Path, index: int,
              base_name: str, expert: str, kwargs: dict) -> dict:
    folder = out_dir / base_name / expert
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    prompts, input_ids, mask = _batch(models_dir, base_name)

    # --- base logits: must be the models' own reference ---------------------------
    base = _load_base(models_dir, base_name)
    base_logits = _logits(base, input_ids, mask)
    with safe_open(str(models_dir / base_name / "reference.safetensors"), framework="pt") as sf:
        model_ref = sf.get_tensor("logits")
    assert torch.allclose(base_logits, model_ref, atol=1e-5, rtol=0), base_name

    # --- PEFT adapter, seeded re-init of both factors ------------------------------
    torch.manual_seed(SEED + index)   # PEFT's own (overwritten) init draws from here
    config = LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.0, bias="none", **kwargs)
    model = get_peft_model(base, config)   # wraps `base` in place
    model.eval()
    gen = torch.Generator().manual_seed(SEED + 100 * index)
    n_lora = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * LORA_STD)
                n_lora += 1
    assert n_lora > 0

    logits = _logits(model, input_ids, mask)
    with model.disable_adapter():
        assert torch.equal(_logits(model, input_ids, mask), base_logits)
    delta = logits - base_logits
    max_delta = _real_max(delta, prompts)
    mean_delta = _real_mean(delta, prompts)
    assert 0.1 < max_delta < 5, f"{base_name}/{expert}: max |delta logits| {max_delta}"
    solo_diff = _check_solo_rows(model, prompts, logits, f"{base_name}/{expert}")

    layers = _lora_layers(model)
    scaling = {n: float(m.scaling["default"]) for n, m in layers.items()}
    ranks = {n: int(m.r["default"]) for n, m in layers.items()}
    alphas = {n: m.lora_alpha["default"] for n, m in layers.items()}

    # --- save ---------------------------------------------------------------------
    peft_cfg = model.peft_config["default"]
    # get_peft_model recorded the absolute path of the base folder; store the
    # fixture name instead so the file does not depend on the checkout location.
    peft_cfg.base_model_name_or_path = base_name
    _sorted_sets(peft_cfg)
    # save_embedding_layers=False: no embedding is targeted, and the default "auto"
    # would look "qwen2-tiny" up on the Hub to compare vocabulary sizes.
    model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
    readme = folder / "README.md"
    if readme.exists():
        readme.unlink()   # PEFT's model-card template; not a fixture
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"], files

    saved_config, tensors = _read_adapter(folder)
    for k, t in tensors.items():
        assert t.dtype == torch.float32, (k, t.dtype)

    # --- independent re-implementation from the files alone ------------------------
    manual_layers = _manual_scalings(saved_config, tensors)
    assert sorted(manual_layers) == sorted(layers), (sorted(manual_layers), sorted(layers))
    for n, (_, _, s) in manual_layers.items():
        assert abs(s - scaling[n]) < 1e-12, (n, s, scaling[n])
    fresh = _load_base(models_dir, base_name)
    manual = _manual_logits(fresh, [(manual_layers, 1.0)], input_ids, mask)
    manual_diff = (manual - logits).abs().max().item()
    assert manual_diff <= 1e-5, f"{base_name}/{expert}: hooks vs PEFT differ by {manual_diff}"

    # --- round trip: PeftModel.from_pretrained must give identical logits ----------
    fresh = _load_base(models_dir, base_name)
    reloaded = PeftModel.from_pretrained(fresh, folder)
    reloaded.eval()
    assert torch.equal(_logits(reloaded, input_ids, mask), logits), f"{base_name}/{expert}: round trip"
    reloaded_layers = _lora_layers(reloaded)
    assert {n: float(m.scaling["default"]) for n, m in reloaded_layers.items()} == scaling

    if kwargs.get("rank_pattern") or kwargs.get("alpha_pattern"):
        _check_patterns(saved_config, tensors, scaling, kwargs)

    shapes = {k: list(t.shape) for k, t in sorted(tensors.items())}
    print(f"[adapters] {base_name}/{expert}: {len(layers)} LoRA modules, "
          f"{sum(t.numel() for t in tensors.values())} params; max |delta logits| "
          f"{max_delta:.4f}, mean {mean_delta:.4f} (real positions); hooks vs PEFT "
          f"{manual_diff:.2e}; solo vs batch {solo_diff:.2e}; round trip identical")

    save_file({"logits": logits.contiguous(), "delta_logits": delta.contiguous()},
              str(folder / "reference.safetensors"))
    reference = {
        "base_model": base_name,
        "batch": prompts,
        "padded_length": int(input_ids.shape[1]),
        "pad_token_id": PAD_ID,
        "peft_version": peft.__version__,
        "scaling": scaling,
        "r": ranks,
        "lora_alpha": alphas,
        "max_abs_delta_logits": round(max_delta, 4),
        "mean_abs_delta_logits": round(mean_delta, 4),
        "tensor_shapes": shapes,
        "notes": _notes(kwargs),
    }
    (folder / "reference.json").write_text(_json_compact_lists(reference) + "\n", encoding="utf-8")
    assert json.loads((folder / "reference.json").read_text(encoding="utf-8")) == reference
    _finish_folder(folder)
    return {"logits": logits, "base_logits": base_logits}


def _check_patterns(saved_config: dict, tensors: dict, scaling: dict, kwargs: dict) -> None:
    """rank_pattern / alpha_pattern must have reached adapter_config.json as given,
    changed the saved shapes, and changed PEFT's scaling."""
    assert saved_config["rank_pattern"] == kwargs["rank_pattern"], saved_config["rank_pattern"]
    assert saved_config["alpha_pattern"] == kwargs["alpha_pattern"], saved_config["alpha_pattern"]
    r, alpha = kwargs["r"], kwargs["lora_alpha"]
    p = "base_model.model.model.layers"
    # layer 1 q_proj: rank 2 instead of 16
    assert list(tensors[f"{p}.1.self_attn.q_proj.lora_A.weight"].shape) == [2, 64]
    assert list(tensors[f"{p}.1.self_attn.q_proj.lora_B.weight"].shape) == [64, 2]
    assert list(tensors[f"{p}.0.self_attn.q_proj.lora_A.weight"].shape) == [r, 64]
    assert scaling["model.layers.1.self_attn.q_proj"] == alpha / 2
    # layer 0 v_proj: alpha 5 instead of 16 (rank unchanged)
    assert list(tensors[f"{p}.0.self_attn.v_proj.lora_A.weight"].shape) == [r, 64]
    assert scaling["model.layers.0.self_attn.v_proj"] == 5 / r
    assert scaling["model.layers.1.self_attn.v_proj"] == alpha / r
    others = {n: s for n, s in scaling.items()
              if n not in ("model.layers.1.self_attn.q_proj", "model.layers.0.self_attn.v_proj")}
    assert all(s == alpha / r for s in others.values()), others


def _notes(kwargs: dict) -> str:
    text = (
        "Adapter made with peft's get_peft_model(LoraConfig(...)) and saved with save_pretrained "
        f"(safetensors, F32); lora_A and lora_B re-initialised with seeded N(0, {LORA_STD}^2) noise. "
        "reference.safetensors: 'logits' [3,13,512] with the adapter applied and 'delta_logits' = "
        "logits(with adapter) - logits(base) for the base model's reference batch, right-padded "
        "with pad_token_id to padded_length with an attention mask over the real tokens; only real "
        "positions are meaningful. Computed by transformers+peft in float32 from the base weights "
        "exactly as stored (upcast), eager attention, eval mode. Each LoRA module adds "
        "scaling * B @ (A @ x) to its projection's output, scaling = lora_alpha / r "
        "(or lora_alpha / sqrt(r) when use_rslora is true). 'scaling', 'r', 'lora_alpha' are "
        "read from peft's LoraLayer objects and keyed by the module name inside the base model; "
        "tensor keys in adapter_model.safetensors are 'base_model.model.' + that name + "
        "'.lora_A.weight' [r, in] / '.lora_B.weight' [out, r] (adapter name not included). "
        "A mixed batch (row 0 expert0, row 1 expert1, row 2 no adapter) equals the matching rows "
        "of the single-adapter references (checked against peft's adapter_names mixed-batch "
        "forward to 1e-5)."
    )
    if kwargs.get("use_rslora"):
        text += " This adapter uses rsLoRA: scaling = lora_alpha / sqrt(r) = 8 / 2 = 4.0."
    if kwargs.get("rank_pattern") or kwargs.get("alpha_pattern"):
        text += (
            " rank_pattern / alpha_pattern: adapter_config.json holds them verbatim as "
            f"\"rank_pattern\": {json.dumps(kwargs['rank_pattern'])} and "
            f"\"alpha_pattern\": {json.dumps(kwargs['alpha_pattern'])} (the top-level \"r\" and "
            "\"lora_alpha\" stay 16). peft matches each key K as a regex against the module name "
            "inside the base model with re.match(r'(.*\\.)?(K)$', name), first matching key wins: "
            "the rank key is a full name, the alpha key a dotted suffix. Effect: layer 1 q_proj "
            "has r=2 (lora_A [2,64], lora_B [64,2]) and scaling 16/2 = 8.0; layer 0 v_proj keeps "
            "r=16 but has alpha 5, scaling 5/16 = 0.3125; every other module r=16, scaling 1.0."
        )
    return text


# --------------------------------------------------------------------------------------
# soft mixture and mixed batch (qwen2-tiny, expert0 + expert1)
# --------------------------------------------------------------------------------------

def _make_mixture(out_dir: pathlib.Path, models_dir: pathlib.Path, singles: dict) -> None:
    base_name = "qwen2-tiny"
    prompts, input_ids, mask = _batch(models_dir, base_name)
    (n0, f0, w0), (n1, f1, w1) = MIX

    model = PeftModel.from_pretrained(_load_base(models_dir, base_name),
                                      out_dir / base_name / f0, adapter_name=n0)
    model.load_adapter(out_dir / base_name / f1, adapter_name=n1)
    model.eval()

    # Single adapters from the two-adapter model must reproduce their own references.
    singles_logits = {}
    for name, folder in ((n0, f0), (n1, f1)):
        model.set_adapter(name)
        got = _logits(model, input_ids, mask)
        assert torch.equal(got, singles[(base_name, folder)]["logits"]), name
        singles_logits[name] = got
    base_logits = singles[(base_name, f0)]["base_logits"]

    # --- mixed batch: row 0 -> e0, row 1 -> e1, row 2 -> base ------------------------
    with torch.no_grad():
        mixed = model(input_ids=input_ids, attention_mask=mask,
                      adapter_names=[n0, n1, "__base__"]).logits.float()
    expected_rows = [singles_logits[n0][0], singles_logits[n1][1], base_logits[2]]
    for i, p in enumerate(prompts):
        diff = (mixed[i, :len(p)] - expected_rows[i][:len(p)]).abs().max().item()
        assert diff <= 1e-5, f"mixed batch row {i}: {diff}"

    # --- soft mixture: both adapters active, each one's scaling times its weight -----
    model.base_model.set_adapter([n0, n1])
    layers = _lora_layers(model)
    for m in layers.values():
        for name, w in ((n0, w0), (n1, w1)):
            if name in m.scaling:
                m.scaling[name] *= w
    assert sorted(model.base_model.active_adapters) == sorted([n0, n1])
    logits_mix = _logits(model, input_ids, mask)
    solo_diff = _check_solo_rows(model, prompts, logits_mix, "mixture")

    # Independent check from the saved files: per-layer weighted sum of deltas.
    parts = []
    for _, folder, w in MIX:
        cfg, tensors = _read_adapter(out_dir / base_name / folder)
        parts.append((_manual_scalings(cfg, tensors), w))
    manual = _manual_logits(_load_base(models_dir, base_name), parts, input_ids, mask)
    manual_diff = (manual - logits_mix).abs().max().item()
    assert manual_diff <= 1e-5, f"mixture: hooks vs PEFT differ by {manual_diff}"

    # The per-layer mixture is NOT the mixture of the logits (attention, SiLU and
    # RMSNorm are nonlinear); make sure the fixture tells the two apart.
    logit_space = base_logits + w0 * (singles_logits[n0] - base_logits) \
        + w1 * (singles_logits[n1] - base_logits)
    gap = _real_max(logits_mix - logit_space, prompts)
    assert gap > 1e-3, f"mixture indistinguishable from logit-space mixing ({gap})"
    print(f"[adapters] {base_name} mixture {w0}*{f0} + {w1}*{f1}: max |mix - base| "
          f"{_real_max(logits_mix - base_logits, prompts):.4f}; per-layer vs logit-space mixing "
          f"differ by {gap:.4f}; hooks vs PEFT {manual_diff:.2e}; solo vs batch {solo_diff:.2e}; "
          f"mixed batch (e0, e1, base) rows match single references")

    path = out_dir / base_name / "mixture_reference.safetensors"
    save_file({"logits_mix": logits_mix.contiguous(),
               "logits_e0": singles_logits[n0].contiguous(),
               "logits_e1": singles_logits[n1].contiguous()}, str(path))
    os.chmod(path, 0o644)
    reference = {
        "base_model": base_name,
        "experts": [f0, f1],
        "weights": [w0, w1],
        "batch": prompts,
        "padded_length": int(input_ids.shape[1]),
        "pad_token_id": PAD_ID,
        "peft_version": peft.__version__,
        "max_abs_mix_minus_base": round(_real_max(logits_mix - base_logits, prompts), 4),
        "max_abs_per_layer_minus_logit_space_mixing": round(gap, 4),
        "notes": (
            f"mixture_reference.safetensors: 'logits_mix' [3,13,512] is the soft mixture "
            f"{w0}*{f0} + {w1}*{f1} applied PER LoRA LAYER: every targeted projection computes "
            f"y = W x (+ b) + {w0} * s0 * B0 (A0 x) + {w1} * s1 * B1 (A1 x), where s_e is expert "
            "e's own PEFT scaling (lora_alpha/r, or lora_alpha/sqrt(r) with rsLoRA: "
            f"{f0} 16/8 = 2.0, {f1} 8/sqrt(4) = 4.0) and an expert that does not target a "
            f"module contributes nothing there ({f0} only has q_proj/v_proj, {f1} all seven). "
            "It is NOT base + 0.7*(logits_e0 - base) + 0.3*(logits_e1 - base): attention, SiLU "
            "and RMSNorm are nonlinear, and the two differ by "
            "max_abs_per_layer_minus_logit_space_mixing at real positions. Built with peft: both "
            "adapters loaded into one PeftModel as 'e0'/'e1', both activated "
            "(base_model.set_adapter(['e0','e1']), which sums active adapters' deltas), and each "
            f"LoraLayer's scaling['e0'] *= {w0}, scaling['e1'] *= {w1}; cross-checked to 1e-5 "
            "against forward hooks on the plain base model that read only the saved adapter "
            "files. 'logits_e0' / 'logits_e1' are the single-expert logits (identical to the "
            "experts' own reference.safetensors 'logits'). Same batch, padding and float32 "
            "eager setup as the expert references; only real positions are meaningful."
        ),
    }
    json_path = out_dir / base_name / "mixture_reference.json"
    json_path.write_text(_json_compact_lists(reference) + "\n", encoding="utf-8")
    assert json.loads(json_path.read_text(encoding="utf-8")) == reference
    os.chmod(json_path, 0o644)


def make(out_dir: pathlib.Path, models_dir: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    models_dir = pathlib.Path(models_dir)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if out_dir.exists():
        shutil.rmtree(out_dir)   # nothing stale may survive
    out_dir.mkdir(parents=True)
    singles = {}
    for index, (base_name, expert, kwargs) in enumerate(_specs()):
        singles[(base_name, expert)] = _make_one(out_dir, models_dir, index, base_name, expert, kwargs)
    _make_mixture(out_dir, models_dir, singles)


if __name__ == "__main__":
    import sys
    make(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/adapterfix"),
         pathlib.Path(sys.argv[2] if len(sys.argv) > 2
                      else pathlib.Path(__file__).resolve().parent.parent
                      / "Tests" / "MoRAgentTests" / "Fixtures" / "models"))
