"""Reference gradients for MoRAgent's LoRA training step.

`make(out_dir, models_dir, adapters_dir)` loads the tiny checkpoints written by
fixtures_models.py and the PEFT adapters written by fixtures_adapters.py and
writes the gradients that transformers + peft compute for the models' reference
batch, in float32:

    out_dir/qwen2-tiny/expert0/   LoRA gradients (q_proj, v_proj; r=8, alpha=16)
    out_dir/qwen2-tiny/expert1/   LoRA gradients (all seven projections, rsLoRA r=4)
    out_dir/llama-tiny/expert0/   LoRA gradients (all seven projections, bf16 base)
    out_dir/qwen2-tiny/full/      full fine-tuning, no adapter: gradients of six
                                  base weights (incl. the tied embedding)

Each expert folder holds:

    gradients.safetensors         "grad." + every key of the expert's
                                  adapter_model.safetensors (same shapes, F32),
                                  for the plain loss
    masked_gradients.safetensors  the same keys for the masked loss
    gradients.json                {"base_model", "expert", "batch", "labels",
                                   "masked_labels", "loss", "masked_loss", ...,
                                   "notes"}

and full/ holds gradients.safetensors ("grad." + the HF parameter name) and
gradients.json.

The loss (plain and masked) is transformers' own `labels=` loss with
num_items_in_batch left unset: the three sequences run as ONE batch,
right-padded with pad_token_id to 13 with an attention mask; labels = input_ids
with padded positions (and, for the masked loss, every position except the last
three of each sequence) set to -100.  transformers shifts the labels by one and
takes F.cross_entropy(reduction="mean", ignore_index=-100) over the flattened
batch, i.e. the mean over ALL non-ignored target tokens of the batch (21 for the
plain loss, 9 for the masked one), NOT a mean of per-sequence means.

Checks run every time (the script fails if any does not hold):
  * the model with the adapter reproduces the adapter's reference logits;
  * transformers' loss equals a hand-written sum of token cross-entropies / N,
    and equals the loss with num_items_in_batch = N passed explicitly;
  * the batched gradients equal the sum over the sequences run alone (no
    padding) of their summed token losses / N (padding leaks nothing);
  * float64 autograd gradients of a float64 copy of the model (with the two
    float32 round trips transformers hard-codes removed, see _Float64Clean)
    match central finite differences to 1e-6 relative for randomly chosen
    entries (3 per LoRA file, 7 for full/), and the stored float32 gradients
    match the float64 ones;
  * for full/: the tied embedding's gradient is the sum of the input-embedding
    and LM-head gradients of an untied copy.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil
import types

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.models.llama import modeling_llama
from transformers.models.qwen2 import modeling_qwen2

from peft import PeftModel

from fixtures_adapters import PAD_ID, _batch, _load_base
from fixtures_models import _json_compact_lists

SEED = 20260401
IGNORE = -100
MASKED_TARGETS = 3          # masked loss: only the last 3 targets of each sequence
FD_STEP = 1e-4              # central-difference step (float64); 1e-3..1e-5 all give ~1e-9 rel
FD_RTOL = 1e-6              # |fd - autograd| <= FD_RTOL * |autograd|, float64
# An entry is eligible for the finite-difference check only if |grad| is at
# least this fraction of its tensor's largest |grad|: a relative tolerance on a
# near-zero entry would only test cancellation noise.
FD_MIN_FRACTION = 0.05
# Stored float32 gradients vs the float64 ones: max |g32 - g64| over a file
# must be below F32_RTOL * max |g64| of that file.
F32_RTOL = 1e-4

# (base model, expert folder) pairs with LoRA gradients.
EXPERTS = [("qwen2-tiny", "expert0"), ("qwen2-tiny", "expert1"), ("llama-tiny", "expert0")]
FULL_MODEL = "qwen2-tiny"
FULL_PARAMS = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
    "model.embed_tokens.weight",
]
ADAPTER_PREFIX = "base_model.model."


# --------------------------------------------------------------------------------------
# labels and losses
# --------------------------------------------------------------------------------------

def _labels(prompts, input_ids: torch.Tensor, masked: bool) -> torch.Tensor:
    """labels for transformers' `labels=` argument (unshifted: labels[i, t] is the
    target of the prediction made at position t-1).  Plain: input_ids with the
    padded positions set to -100.  Masked: -100 everywhere except the last
    MASKED_TARGETS real positions of each sequence."""
    labels = torch.full_like(input_ids, IGNORE)
    for i, p in enumerate(prompts):
        start = len(p) - MASKED_TARGETS if masked else 0
        assert start >= (1 if masked else 0), (len(p), start)   # position 0 is never a target
        labels[i, start:len(p)] = input_ids[i, start:len(p)]
    return labels


def _n_targets(labels: torch.Tensor) -> int:
    """Targets that count after transformers' shift (position 0 never does)."""
    return int((labels[:, 1:] != IGNORE).sum())


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-target cross-entropies [B, T-1] (0 where ignored), in logits' dtype."""
    b, t, v = logits.shape
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1),
                         ignore_index=IGNORE, reduction="none")
    return ce.view(b, t - 1)


def _hand_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of all target cross-entropies of the batch / number of targets."""
    return _token_losses(logits, labels).sum() / _n_targets(labels)


def _mean_of_sequence_means(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The OTHER plausible definition (not used): mean over sequences of each
    sequence's mean token loss.  Recorded so a test can tell the two apart."""
    ce = _token_losses(logits, labels)
    counts = (labels[:, 1:] != IGNORE).sum(dim=1)
    return float((ce.sum(dim=1) / counts).mean())


def _hf_loss(model, input_ids, mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' own loss (num_items_in_batch unset) and the logits."""
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    return out.loss, out.logits


# --------------------------------------------------------------------------------------
# float64 copies
# --------------------------------------------------------------------------------------

def _rms_norm_f64(self, hidden_states: torch.Tensor) -> torch.Tensor:
    assert hidden_states.dtype == torch.float64, hidden_states.dtype
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def _eager_attention_f64(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    assert query.dtype == torch.float64, query.dtype
    assert dropout == 0.0 and not module.training
    key = torch.repeat_interleave(key, module.num_key_value_groups, dim=1)
    value = torch.repeat_interleave(value, module.num_key_value_groups, dim=1)
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)            # stays float64
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


class _Float64Clean:
    """transformers' Qwen2/Llama code is not float64-clean: RMSNorm casts its input
    to float32 and eager attention runs softmax with dtype=torch.float32 (and
    ForCausalLMLoss upcasts logits with .float(), i.e. DOWN to float32 for a
    float64 model).  A "float64" model would therefore still round to float32 in
    every layer, and finite differences could not be checked to 1e-6.  Within
    this context the two eager_attention_forward functions are replaced by a
    float64 one, and the float64 copy's RMSNorm modules get a float64 forward
    (same formula); the loss is computed by hand (_hand_loss)."""

    MODULES = (modeling_qwen2, modeling_llama)

    def __enter__(self):
        self.saved = [m.eager_attention_forward for m in self.MODULES]
        for m in self.MODULES:
            m.eager_attention_forward = _eager_attention_f64
        return self

    def __exit__(self, *exc):
        for m, f in zip(self.MODULES, self.saved):
            m.eager_attention_forward = f
        return False


def _float64_copy(model):
    m = copy.deepcopy(model).to(torch.float64)
    n_norms = 0
    for module in m.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_rms_norm_f64, module)
            n_norms += 1
    assert n_norms > 0
    for p in m.parameters():
        assert p.dtype == torch.float64
    m.eval()
    return m


def _loss_f64(model64, input_ids, mask, labels) -> torch.Tensor:
    with _Float64Clean():
        logits = model64(input_ids=input_ids, attention_mask=mask).logits
    assert logits.dtype == torch.float64, logits.dtype
    return _hand_loss(logits, labels)


def _grads_f64(model64, params: dict[str, torch.nn.Parameter], input_ids, mask, labels):
    model64.zero_grad(set_to_none=True)
    loss = _loss_f64(model64, input_ids, mask, labels)
    loss.backward()
    return float(loss.detach()), {k: p.grad.detach().clone() for k, p in params.items()}


def _central_difference(model64, param: torch.nn.Parameter, index: tuple,
                        input_ids, mask, labels) -> float:
    """d loss / d param[index] by the central difference (f(x+h) - f(x-h)) / 2h,
    float64."""
    def at(offset: float) -> float:
        with torch.no_grad():
            saved = param[index].item()
            param[index] = saved + offset
            try:
                return float(_loss_f64(model64, input_ids, mask, labels))
            finally:
                param[index] = saved
    return (at(FD_STEP) - at(-FD_STEP)) / (2 * FD_STEP)


def _pick(grad64: torch.Tensor, gen: torch.Generator, rows: list[int] | None = None) -> tuple:
    """A random entry of grad64 with |g| >= FD_MIN_FRACTION * max |g| (optionally
    restricted to the given first-dimension rows)."""
    g = grad64.abs()
    ok = g >= FD_MIN_FRACTION * g.max()
    if rows is not None:
        keep = torch.zeros_like(ok)
        keep[rows] = True
        ok &= keep
    flat = torch.nonzero(ok.reshape(-1)).view(-1)
    assert flat.numel() > 0
    choice = int(flat[torch.randint(flat.numel(), (1,), generator=gen)])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(choice), grad64.shape))


def _check_fd(what: str, model64, params64: dict, grads32: dict, grads64: dict,
              picks: list[tuple[str, tuple]], input_ids, mask, labels) -> list[dict]:
    records = []
    for key, index in picks:
        g64 = float(grads64[key][index])
        g32 = float(grads32[key][index])
        fd = _central_difference(model64, params64[key], index, input_ids, mask, labels)
        rel = abs(fd - g64) / abs(g64)
        assert rel <= FD_RTOL, f"{what} {key}{list(index)}: fd {fd!r} vs autograd {g64!r} (rel {rel:.2e})"
        records.append({"key": key, "index": list(index), "grad": g32, "grad_float64": g64,
                        "finite_difference_float64": fd, "rel_err_float64": float(f"{rel:.3e}")})
    return records


def _check_f32_vs_f64(what: str, grads32: dict, grads64: dict) -> float:
    scale = max(g.abs().max().item() for g in grads64.values())
    err = max((grads32[k].double() - grads64[k]).abs().max().item() for k in grads64)
    assert err <= F32_RTOL * scale, f"{what}: float32 vs float64 grads {err:.3e} (scale {scale:.3e})"
    return err / scale


# --------------------------------------------------------------------------------------
# LoRA gradients
# --------------------------------------------------------------------------------------

def _lora_params(model) -> dict[str, torch.nn.Parameter]:
    """Trainable parameters keyed like adapter_model.safetensors (adapter name
    'default' removed)."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert ".lora_A.default." in name or ".lora_B.default." in name, name
            out[name.replace(".default.", ".")] = p
    return out


def _solo_grads(model, params: dict, prompts, labels: torch.Tensor, n: int) -> dict:
    """Gradients of (sum over sequences, each run alone without padding, of its
    summed token losses) / n: must equal the batched gradients."""
    model.zero_grad(set_to_none=True)
    for i, p in enumerate(prompts):
        logits = model(input_ids=torch.tensor([p])).logits
        (_token_losses(logits, labels[i:i + 1, :len(p)]).sum() / n).backward()
    return {k: q.grad.detach().clone() for k, q in params.items()}


def _max_rel(a: dict, b: dict) -> float:
    scale = max(t.abs().max().item() for t in b.values())
    return max((a[k] - b[k]).abs().max().item() for k in b) / scale


def _make_lora(out_dir, models_dir, adapters_dir, index, base_name, expert) -> dict:
    folder = out_dir / base_name / expert
    folder.mkdir(parents=True)
    adapter = adapters_dir / base_name / expert
    prompts, input_ids, mask = _batch(models_dir, base_name)
    adapter_ref = json.loads((adapter / "reference.json").read_text(encoding="utf-8"))
    assert adapter_ref["batch"] == prompts

    model = PeftModel.from_pretrained(_load_base(models_dir, base_name), adapter, is_trainable=True)
    model.eval()   # no dropout anywhere (lora_dropout is 0 as well); grads still on
    params = _lora_params(model)
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as sf:
        stored = {k: sf.get_tensor(k) for k in sf.keys()}
    assert sorted(params) == sorted(stored), (sorted(params), sorted(stored))
    for k, p in params.items():
        assert p.dtype == torch.float32 and torch.equal(p.detach(), stored[k]), k
    n_frozen = sum(1 for n, p in model.named_parameters() if not p.requires_grad)
    assert n_frozen > 0
    with safe_open(str(adapter / "reference.safetensors"), framework="pt") as sf:
        ref_logits = sf.get_tensor("logits")

    model64 = _float64_copy(model)
    params64 = _lora_params(model64)
    gen = torch.Generator().manual_seed(SEED + index)

    result = {}
    for variant in ("plain", "masked"):
        labels = _labels(prompts, input_ids, masked=(variant == "masked"))
        n = _n_targets(labels)
        what = f"{base_name}/{expert} {variant}"

        model.zero_grad(set_to_none=True)
        loss, logits = _hf_loss(model, input_ids, mask, labels)
        assert torch.allclose(logits.detach(), ref_logits, atol=1e-5, rtol=0), what
        loss.backward()
        grads = {k: p.grad.detach().clone() for k, p in params.items()}
        for k, g in grads.items():
            assert g.shape == stored[k].shape and torch.isfinite(g).all() and g.abs().max() > 0, k

        with torch.no_grad():
            hand = _hand_loss(logits, labels)
            explicit = model(input_ids=input_ids, attention_mask=mask, labels=labels,
                             num_items_in_batch=torch.tensor(n)).loss
        loss = loss.detach()
        assert abs(float(hand) - float(loss)) <= 1e-6 * float(loss), (what, float(hand), float(loss))
        assert abs(float(explicit) - float(loss)) <= 1e-6 * float(loss), (what, float(explicit))
        seq_means = _mean_of_sequence_means(logits.detach(), labels)

        solo = _solo_grads(model, params, prompts, labels, n)
        solo_rel = _max_rel(solo, grads)
        assert solo_rel <= 1e-5, f"{what}: solo vs batched grads {solo_rel:.2e}"

        loss64, grads64 = _grads_f64(model64, params64, input_ids, mask, labels)
        assert abs(loss64 - float(loss)) <= 1e-5 * loss64, (what, loss64, float(loss))
        f32_rel = _check_f32_vs_f64(what, grads, grads64)
        keys = sorted(grads)
        a_keys = [k for k in keys if ".lora_A." in k]
        b_keys = [k for k in keys if ".lora_B." in k]
        chosen = [a_keys[int(torch.randint(len(a_keys), (1,), generator=gen))],
                  b_keys[int(torch.randint(len(b_keys), (1,), generator=gen))],
                  keys[int(torch.randint(len(keys), (1,), generator=gen))]]
        picks = [(k, _pick(grads64[k], gen)) for k in chosen]
        fd = _check_fd(what, model64, params64, grads, grads64, picks, input_ids, mask, labels)

        print(f"[gradients] {what}: loss {float(loss):.6f} over {n} targets (float64 "
              f"{loss64:.6f}; mean of sequence means would be {seq_means:.6f}); "
              f"max |grad| {max(g.abs().max().item() for g in grads.values()):.3e}; "
              f"solo vs batch {solo_rel:.1e}; f32 vs f64 {f32_rel:.1e}; "
              f"fd rel err {max(r['rel_err_float64'] for r in fd):.1e}")
        result[variant] = dict(loss=float(loss), loss64=loss64, n=n, labels=labels,
                               grads=grads, seq_means=seq_means, fd=fd)

    plain, masked = result["plain"], result["masked"]
    save_file({"grad." + k: g.contiguous() for k, g in sorted(plain["grads"].items())},
              str(folder / "gradients.safetensors"))
    save_file({"grad." + k: g.contiguous() for k, g in sorted(masked["grads"].items())},
              str(folder / "masked_gradients.safetensors"))
    reference = {
        "base_model": base_name,
        "expert": expert,
        "batch": prompts,
        "padded_length": int(input_ids.shape[1]),
        "pad_token_id": int(adapter_ref["pad_token_id"]),
        "ignore_index": IGNORE,
        "labels": plain["labels"].tolist(),
        "masked_labels": masked["labels"].tolist(),
        "num_target_tokens": plain["n"],
        "num_masked_target_tokens": masked["n"],
        "loss": plain["loss"],
        "masked_loss": masked["loss"],
        "loss_float64": plain["loss64"],
        "masked_loss_float64": masked["loss64"],
        "loss_mean_of_sequence_means_NOT_USED": plain["seq_means"],
        "masked_loss_mean_of_sequence_means_NOT_USED": masked["seq_means"],
        "gradient_shapes": {"grad." + k: list(g.shape) for k, g in sorted(plain["grads"].items())},
        "finite_difference_checks": {"gradients": plain["fd"], "masked_gradients": masked["fd"]},
        "notes": _lora_notes(base_name, expert, plain["n"], masked["n"]),
    }
    _write_json(folder / "gradients.json", reference)
    _finish_folder(folder)
    return reference


def _loss_definition(n_plain: int, n_masked: int | None) -> str:
    text = (
        "Loss = transformers' built-in causal-LM loss, model(input_ids, attention_mask, "
        "labels=labels).loss with num_items_in_batch NOT passed. The three sequences (lengths "
        "7, 13, 4) run as ONE batch right-padded with pad_token_id to padded_length, attention "
        "mask 1 on real tokens. transformers pads labels with one -100 on the right, shifts "
        "(target of position t is labels[t+1]), flattens the whole batch and takes "
        "F.cross_entropy(logits, targets, ignore_index=-100, reduction='mean'), i.e. "
        "loss = (sum over every non-ignored target token of the batch of "
        "-log softmax(logits at the position before it)[token]) / (number of such tokens) - a "
        "GLOBAL token mean over the batch, not a mean of per-sequence means "
        "('..._mean_of_sequence_means_NOT_USED' gives that other value for comparison). "
        "Passing num_items_in_batch=N gives the same value (reduction='sum' / N; checked). "
        f"Plain loss: 'labels' = input_ids with padded positions -100; targets are tokens "
        f"1..len-1 of each sequence, N = 6 + 12 + 3 = {n_plain}. "
    )
    if n_masked is not None:
        text += (
            f"Masked loss ('masked_labels'): -100 everywhere except the last {MASKED_TARGETS} "
            f"real positions of each sequence, i.e. only the last {MASKED_TARGETS} target tokens "
            f"of each sequence count, predicted from positions len-4..len-2; N = 3 + 3 + 3 = "
            f"{n_masked}; the prompt tokens before them still go through the forward pass and "
            "attention as usual. "
        )
    return text


def _lora_notes(base_name: str, expert: str, n_plain: int, n_masked: int) -> str:
    return (
        f"Gradients of the loss w.r.t. every LoRA parameter of adapters/{base_name}/{expert} "
        f"applied to models/{base_name} (base frozen, LoRA trainable), computed by "
        "transformers + peft in float32 from the base weights exactly as stored (upcast), "
        "eager attention, eval mode (no dropout; lora_dropout is 0). "
        "gradients.safetensors / masked_gradients.safetensors (F32): key 'grad.' + the key of "
        "the same parameter in adapter_model.safetensors (adapter name not included), same "
        "shape as the weight ('gradient_shapes'). "
        + _loss_definition(n_plain, n_masked)
        + "Checks: hand-written loss equals transformers' (1e-6 rel); the batched gradients "
        "equal those of the sequences run alone without padding (1e-5 rel); a float64 copy "
        "(with transformers' float32 casts in RMSNorm and eager softmax removed) gives "
        "gradients matching the float32 ones to 1e-4 of the largest |grad|, and matching "
        "central finite differences (f(x+h) - f(x-h)) / 2h, h = 1e-4, to 1e-6 relative at the entries "
        "listed in 'finite_difference_checks' (index = [row, col] of the tensor). "
        "'loss_float64' / 'masked_loss_float64' are the float64 values of the same losses."
    )


# --------------------------------------------------------------------------------------
# full fine-tuning of selected base weights (qwen2-tiny, tied embeddings)
# --------------------------------------------------------------------------------------

def _make_full(out_dir, models_dir) -> dict:
    base_name = FULL_MODEL
    folder = out_dir / base_name / "full"
    folder.mkdir(parents=True)
    prompts, input_ids, mask = _batch(models_dir, base_name)
    labels = _labels(prompts, input_ids, masked=False)
    n = _n_targets(labels)

    model = _load_base(models_dir, base_name)
    assert model.lm_head.weight is model.model.embed_tokens.weight   # tied
    all_params = dict(model.named_parameters())
    assert "lm_head.weight" not in all_params
    for p in all_params.values():
        p.requires_grad_(True)
    params = {k: all_params[k] for k in FULL_PARAMS}

    model.zero_grad(set_to_none=True)
    loss, logits = _hf_loss(model, input_ids, mask, labels)
    loss.backward()
    grads = {k: p.grad.detach().clone() for k, p in params.items()}
    loss = loss.detach()
    with torch.no_grad():
        hand = _hand_loss(logits, labels)
    assert abs(float(hand) - float(loss)) <= 1e-6 * float(loss)
    seq_means = _mean_of_sequence_means(logits.detach(), labels)

    # Tied embedding: its gradient = input-embedding part + LM-head part.
    untied = copy.deepcopy(model)
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight.detach().clone())
    untied.zero_grad(set_to_none=True)
    _hf_loss(untied, input_ids, mask, labels)[0].backward()
    g_in = untied.model.embed_tokens.weight.grad
    g_head = untied.lm_head.weight.grad
    tie_rel = ((g_in + g_head) - grads["model.embed_tokens.weight"]).abs().max().item() \
        / grads["model.embed_tokens.weight"].abs().max().item()
    assert tie_rel <= 1e-6, f"tied embedding grad != input part + head part ({tie_rel:.2e})"
    used = sorted({t for p in prompts for t in p})
    unused = [t for t in range(g_in.shape[0]) if t not in set(used)]
    assert g_in[unused].abs().max().item() == 0.0            # input part: batch tokens only
    assert (g_head[unused].abs().sum(dim=1) > 0).all()       # head part: every row
    head_share = g_head.abs().sum().item() / (g_in.abs().sum().item() + g_head.abs().sum().item())

    model64 = _float64_copy(model)
    assert model64.lm_head.weight is model64.model.embed_tokens.weight
    params64 = {k: dict(model64.named_parameters())[k] for k in FULL_PARAMS}
    loss64, grads64 = _grads_f64(model64, params64, input_ids, mask, labels)
    assert abs(loss64 - float(loss)) <= 1e-5 * loss64
    f32_rel = _check_f32_vs_f64("full", grads, grads64)
    gen = torch.Generator().manual_seed(SEED + 100)
    emb = "model.embed_tokens.weight"
    picks = [(k, _pick(grads64[k], gen)) for k in FULL_PARAMS if k != emb]
    # one embedding row of a token in the batch (input + head), one of a token that
    # is not (head only)
    picks.append((emb, _pick(grads64[emb], gen, rows=used)))
    picks.append((emb, _pick(grads64[emb], gen, rows=unused)))
    fd = _check_fd("full", model64, params64, grads, grads64, picks, input_ids, mask, labels)
    print(f"[gradients] {base_name}/full: loss {float(loss):.6f} over {n} targets; tied "
          f"embedding = input + head parts ({tie_rel:.1e}), head share of |grad| {head_share:.2f}; "
          f"f32 vs f64 {f32_rel:.1e}; fd rel err {max(r['rel_err_float64'] for r in fd):.1e}")

    save_file({"grad." + k: grads[k].contiguous() for k in sorted(grads)},
              str(folder / "gradients.safetensors"))
    reference = {
        "base_model": base_name,
        "batch": prompts,
        "padded_length": int(input_ids.shape[1]),
        "pad_token_id": PAD_ID,
        "ignore_index": IGNORE,
        "labels": labels.tolist(),
        "num_target_tokens": n,
        "loss": float(loss),
        "loss_float64": loss64,
        "loss_mean_of_sequence_means_NOT_USED": seq_means,
        "parameters": FULL_PARAMS,
        "gradient_shapes": {"grad." + k: list(grads[k].shape) for k in sorted(grads)},
        "finite_difference_checks": {"gradients": fd},
        "notes": (
            f"Full fine-tuning of models/{base_name} (no adapter, every base parameter "
            "trainable); gradients.safetensors (F32) holds the gradients of the parameters "
            "listed in 'parameters' under 'grad.' + the HF parameter name, computed by "
            "transformers in float32, eager attention, eval mode. The model ties lm_head to "
            "model.embed_tokens.weight, so 'grad.model.embed_tokens.weight' is the gradient of "
            "the shared matrix = input-embedding part (non-zero only in rows of tokens that "
            "occur in the batch) + LM-head part (every row, from the softmax over the whole "
            "vocabulary); checked against an untied copy. Padded positions feed pad token 0 "
            "into the embedding, but no counted target depends on them (the attention mask "
            "hides them as keys, their own predictions are ignored), so row 0 gets only the "
            "LM-head part. "
            + _loss_definition(n, None)
            + "Checks: as for the LoRA gradients (float64 copy, central differences "
            "with h = 1e-4 to 1e-6 relative at the entries in 'finite_difference_checks', "
            "including one embedding row of a batch token and one of a token not in the batch)."
        ),
    }
    _write_json(folder / "gradients.json", reference)
    _finish_folder(folder)
    return reference


# --------------------------------------------------------------------------------------

def _write_json(path: pathlib.Path, obj: dict) -> None:
    path.write_text(_json_compact_lists(obj) + "\n", encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == obj


def _finish_folder(folder: pathlib.Path) -> None:
    # safetensors writes 0600 files; make them plainly readable.
    for f in folder.iterdir():
        os.chmod(f, 0o644)


def make(out_dir: pathlib.Path, models_dir: pathlib.Path, adapters_dir: pathlib.Path) -> None:
    out_dir = pathlib.Path(out_dir)
    models_dir = pathlib.Path(models_dir)
    adapters_dir = pathlib.Path(adapters_dir)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if out_dir.exists():
        shutil.rmtree(out_dir)   # nothing stale may survive
    out_dir.mkdir(parents=True)
    for index, (base_name, expert) in enumerate(EXPERTS):
        _make_lora(out_dir, models_dir, adapters_dir, index, base_name, expert)
    _make_full(out_dir, models_dir)
    total = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    print(f"[gradients] {total / 1024:.0f} KB in {out_dir}")


if __name__ == "__main__":
    import sys
    fixtures = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "MoRAgentTests" / "Fixtures"
    make(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gradfix"),
         pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else fixtures / "models"),
         pathlib.Path(sys.argv[3] if len(sys.argv) > 3 else fixtures / "adapters"))
