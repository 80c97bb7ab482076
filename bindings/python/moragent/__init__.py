"""Python bindings for libmoragent (``include/moragent.h``) over ctypes.

>>> import moragent
>>> with moragent.Engine("Tests/MoRAgentTests/Fixtures/models/qwen2-tiny") as engine:
...     out = engine.generate("You are in the kitchen. > go to", max_new_tokens=8)
...     out.stop_reason
'max_new_tokens'

An agent: K LoRA experts, a router that picks one per environment step, and a policy.

>>> engine = moragent.Engine("Tests/MoRAgentTests/Fixtures/models/qwen2-tiny")
>>> experts = moragent.ExpertSet(engine, 2, rank=4)
>>> router = moragent.CallbackRouter(2, lambda f: [1, 0] if f.step % 2 == 0 else [0, 1])
>>> policy = moragent.Policy(engine, experts, router, max_new_tokens=4)
>>> [policy.step(0, "You are in the hall.", "find the key").expert for _ in range(3)]
[0, 1, 0]
>>> policy.end_episode(0, reward=1.0, success=True)
>>> policy.trace()[0]["switches"]
2

Layers: ``_lib`` mirrors the header one function at a time, ``_handles`` owns C handles and
buffers, and this module is the Pythonic API. Every failure raises a ``MoRAgentError``
subclass carrying the C status and the library's message.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from . import _lib
from ._errors import invalid_argument
from ._errors import (AbortedError, BufferTooSmallError, BusyError, CallbackError, InternalError, InvalidArgumentError,
                      InvalidHandleError, MalformedFileError, ModelIOError, MoRAgentError, UnsupportedError,
                      invalid_argument, check)
from ._handles import (SIZE_MAX, EngineHandle, ExpertsHandle, PolicyHandle, RouterHandle, SFTTrainerHandle, TrainerHandle, c_string,
                       checked_int, generation_params)

__version__ = "0.4.0"

__all__ = [
    "Engine", "EngineInfo", "Generation", "library_version", "set_log_callback",
    "set_buffer_cache_limit", "buffer_cache_kept_bytes",
    "ExpertSet", "Router", "FixedRouter", "PhaseRouter", "TrajectoryRouter", "CallbackRouter", "StepFeatures",
    "TokenRouter", "RolesRouter", "ROLES",
    "load_plugin", "Policy", "StepResult", "Trainer", "ADVANTAGES", "SFTTrainer",
    "MoRAgentError", "InvalidArgumentError", "InvalidHandleError", "ModelIOError", "MalformedFileError",
    "UnsupportedError", "BufferTooSmallError", "AbortedError", "InternalError", "CallbackError", "BusyError",
]

_STOP_REASONS = {
    _lib.MORAGENT_STOP_REASON_MAX_NEW_TOKENS: "max_new_tokens",
    _lib.MORAGENT_STOP_REASON_STOP_TOKEN: "stop_token",
    _lib.MORAGENT_STOP_REASON_STOP_STRING: "stop_string",
}


def library_version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.moragent_version().decode("ascii")


_log_callback = None  # the ctypes trampoline must live as long as the library may call it


def set_log_callback(callback: Optional[Callable[[int, str], None]]) -> None:
    """Sends the library's log lines to ``callback(level, message)`` (levels: 0 debug, 1 info,
    2 warning, 3 error); None silences it, the initial state. Process-wide."""
    global _log_callback
    trampoline = _lib.moragent_log_fn()  # NULL: silent
    if callback is not None:
        def trampoline(level: int, message: bytes, user: Optional[int]) -> None:
            callback(level, message.decode("utf-8", "replace"))
        trampoline = _lib.moragent_log_fn(trampoline)
    _lib.moragent_set_log_callback(trampoline, None)
    _log_callback = trampoline


def set_buffer_cache_limit(limit_bytes: int) -> None:
    """Sets the most bytes of large, unused buffers the library keeps for its next tensors
    (4 GiB at start; what is kept plus what is in use never exceeds the most it had in use at
    once). A lower limit frees at once; 0 frees everything kept and keeps nothing. Process-wide."""
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int) or limit_bytes < 0:
        raise ValueError(f"limit_bytes must be a non-negative int, not {limit_bytes!r}")
    _lib.moragent_buffer_cache_set_limit(min(limit_bytes, 2**64 - 1))


def buffer_cache_kept_bytes() -> int:
    """The bytes the library holds now in kept buffers (in use by nothing)."""
    return _lib.moragent_buffer_cache_kept_bytes()


@dataclass(frozen=True)
class EngineInfo:
    """Shapes and names of a loaded model."""
    architecture: str
    vocabulary_size: int
    tokenizer_vocabulary_size: int
    hidden_size: int
    layer_count: int
    max_position_embeddings: int
    parameter_count: int


@dataclass(frozen=True)
class Generation:
    """One generated continuation."""
    ids: List[int]
    text: str
    logprobs: List[float]
    entropies: List[float]
    stop_reason: str


class Engine:
    """A loaded model folder (config.json, safetensors weights, tokenizer.json). Safe to share
    between threads; close it (or use ``with``) to free it before garbage collection does."""

    def __init__(self, model_dir: Union[str, os.PathLike]):
        self._handle = EngineHandle.load(os.fsencode(model_dir))

    def close(self) -> None:
        """Frees the engine; later calls raise InvalidHandleError."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def info(self) -> EngineInfo:
        raw = self._handle.info()
        return EngineInfo(architecture=raw.architecture.decode("utf-8"), vocabulary_size=raw.vocabulary_size,
                          tokenizer_vocabulary_size=raw.tokenizer_vocabulary_size, hidden_size=raw.hidden_size,
                          layer_count=raw.layer_count, max_position_embeddings=raw.max_position_embeddings,
                          parameter_count=raw.parameter_count)

    def tokenize(self, text: Union[str, bytes]) -> List[int]:
        """The token ids of `text` (no special tokens added). Bytes are passed as they are and
        must be UTF-8; a str with lone surrogates is not UTF-8 either (InvalidArgumentError)."""
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        return self._handle.tokenize(data)

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens included; unknown ids are skipped."""
        return self._handle.detokenize(ids).decode("utf-8")

    def generate(self, prompt: Union[str, Sequence[int]], *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, stop: Sequence[str] = (),
                 stop_token_ids: Optional[Sequence[int]] = None, ignore_eos: bool = False,
                 progress: Optional[Callable[[int, int], object]] = None) -> Generation:
        """A continuation of `prompt` (text, tokenized first, or token ids).

        Greedy when temperature is 0. Stops after max_new_tokens, at a stop string, or at a stop
        token: `stop_token_ids` when given, else the model's EOS unless `ignore_eos`.
        ``progress(done, total)`` is called before the prompt is processed and after each token;
        a true return value stops generation with AbortedError, and an exception it raises is
        re-raised here.
        """
        ids = self.tokenize(prompt) if isinstance(prompt, str) else prompt
        params, keep_alive = generation_params(max_new_tokens, temperature, top_k, top_p, seed, stop, stop_token_ids,
                                               ignore_eos)
        with self._handle.generate(ids, params, progress) as out:
            return Generation(ids=out.ids(), text=out.text().decode("utf-8"), logprobs=out.logprobs(),
                              entropies=out.entropies(), stop_reason=_STOP_REASONS[out.stop_reason()])


class _Owner:
    """What the 0.2 classes share: one owned handle, closed once, usable as a context manager."""

    _handle: Any

    def close(self) -> None:
        """Frees the handle; later calls raise InvalidHandleError. Objects made from this one
        (policies, trajectory routers) keep working."""
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# Hugging Face projection names -> moragent_module bits.
MODULES = {
    "q_proj": _lib.MORAGENT_MODULE_Q, "k_proj": _lib.MORAGENT_MODULE_K, "v_proj": _lib.MORAGENT_MODULE_V,
    "o_proj": _lib.MORAGENT_MODULE_O, "gate_proj": _lib.MORAGENT_MODULE_GATE, "up_proj": _lib.MORAGENT_MODULE_UP,
    "down_proj": _lib.MORAGENT_MODULE_DOWN,
}


class ExpertSet(_Owner):
    """K LoRA experts shaped for an engine's model. New experts start as PEFT initialises them
    (B = 0: equal to the base model); ``load_peft`` appends experts from PEFT folders."""

    def __init__(self, engine: Engine, count: int = 0, *, rank: int = 32, alpha: float = 64.0, use_rslora: bool = False,
                 target_modules: Iterable[str] = ("q_proj", "v_proj"), seed: int = 0):
        params = _lib.moragent_lora_params(struct_size=ctypes.sizeof(_lib.moragent_lora_params))
        check(_lib.moragent_lora_params_default(ctypes.byref(params)))
        params.rank = checked_int(rank, "rank", SIZE_MAX)
        params.alpha = float(alpha)
        params.use_rslora = 1 if use_rslora else 0
        if isinstance(target_modules, str):
            target_modules = [target_modules]
        bits = 0
        for name in target_modules:
            if name not in MODULES:
                raise invalid_argument(f"unknown target module {name!r}; known: {', '.join(MODULES)}")
            bits |= MODULES[name]
        params.target_modules = bits
        self._handle = ExpertsHandle.create(engine._handle, count, params, seed)

    def __len__(self) -> int:
        return self._handle.count()

    def load_peft(self, path: Union[str, os.PathLike]) -> int:
        """Appends the PEFT LoRA adapter in folder `path`; returns its index."""
        self._handle.load_peft(os.fsencode(path))
        return len(self) - 1

    def save_peft(self, index: int, path: Union[str, os.PathLike]) -> None:
        """Writes expert `index` as a PEFT LoRA folder (created if missing)."""
        self._handle.save_peft(index, os.fsencode(path))


@dataclass(frozen=True)
class StepFeatures:
    """What a router is told about a step."""
    episode: int
    step: int
    observation: str
    goal: str
    history_count: int


class Router(_Owner):
    """A step router over K experts: it picks the base model, one expert, or a mixture for each
    environment step. Routers may be shared by policies; a policy keeps the router it was made
    with alive, so closing the router afterwards is fine."""

    def __init__(self, handle: RouterHandle):
        self._handle = handle

    @property
    def expert_count(self) -> int:
        return self._handle.expert_count()

    @staticmethod
    def from_kind(name: str, config: Optional[Dict[str, Any]], expert_count: int) -> "Router":
        """A router of a kind a plugin registered (see ``load_plugin``) over `expert_count`
        experts; `config` is passed to the kind as JSON (None: "{}")."""
        config_json = None if config is None else json.dumps(config, allow_nan=False)
        return Router(RouterHandle.kind(name, config_json, expert_count))


class FixedRouter(Router):
    """Every step to `expert`, or to the base model when `expert` is None."""

    def __init__(self, expert_count: int, expert: Optional[int]):
        super().__init__(RouterHandle.fixed(expert_count, -1 if expert is None else expert))


class PhaseRouter(Router):
    """PA-MoE's phase router (goal cross-attention, LSTM over recent steps, MLP, softmax with a
    temperature, argmax), seeded; for engines of width `model_hidden_size` (``engine.info.hidden_size``)."""

    def __init__(self, model_hidden_size: int, expert_count: int = 4, *, attention_dim: int = 256,
                 attention_heads: int = 4, lstm_hidden: int = 256, lstm_layers: int = 3, history_length: int = 5,
                 mlp_hidden: int = 256, pooled_goal: bool = False, initial_temperature: float = 2.0,
                 final_temperature: float = 0.5, anneal_updates: int = 3000, seed: int = 0):
        params = _lib.moragent_phase_router_params(struct_size=ctypes.sizeof(_lib.moragent_phase_router_params))
        check(_lib.moragent_phase_router_params_default(ctypes.byref(params)))
        for name, value in (("expert_count", expert_count), ("attention_dim", attention_dim),
                            ("attention_heads", attention_heads), ("lstm_hidden", lstm_hidden),
                            ("lstm_layers", lstm_layers), ("history_length", history_length),
                            ("mlp_hidden", mlp_hidden), ("anneal_updates", anneal_updates)):
            setattr(params, name, checked_int(value, name, SIZE_MAX))
        params.pooled_goal = 1 if pooled_goal else 0
        params.initial_temperature = float(initial_temperature)
        params.final_temperature = float(final_temperature)
        super().__init__(RouterHandle.phase(model_hidden_size, params, seed))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the router to one safetensors file."""
        self._handle.save_phase(os.fsencode(path))

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "PhaseRouter":
        """Reads a router written by ``save``."""
        router = cls.__new__(cls)
        Router.__init__(router, RouterHandle.load_phase(os.fsencode(path)))
        return router


class TrajectoryRouter(Router):
    """PA-MoE's trajectory baseline: `inner` decides at each episode's first step, and that
    choice holds for the episode."""

    def __init__(self, inner: Router):
        super().__init__(RouterHandle.trajectory(inner._handle))
        self.inner = inner


class CallbackRouter(Router):
    """A router written in Python: ``fn(features: StepFeatures)`` returns one non-negative weight
    per expert (a list, tuple or NumPy array). One positive weight picks that expert, several a
    mixture (normalised), all zero the base model. It runs on the thread that calls
    ``Policy.step``; an exception it raises is re-raised from ``step``, and a NaN or negative
    weight raises CallbackError."""

    def __init__(self, expert_count: int, fn: Callable[[StepFeatures], Sequence[float]]):
        def raw(features: _lib.moragent_step_features) -> Sequence[float]:
            return fn(StepFeatures(episode=features.episode, step=features.step,
                                   observation=features.observation.decode("utf-8"),
                                   goal=features.goal.decode("utf-8"), history_count=features.history_count))
        super().__init__(RouterHandle.callback(expert_count, raw))
        self.fn = fn


class TokenRouter(Router):
    """Token-level top-k routing (0.3): every token of a step's forward goes through a linear
    gate over the experts of `experts` (as the set holds them now), softmax, the `top_k` best
    kept; one gate per layer (`per_layer`) or one at layer 0 for all. Use it with
    ``Policy(engine, None, router)``: the step's ``expert`` is the most used expert,
    ``probabilities`` the mean routing weights, ``token_experts`` the per-token choices."""

    def __init__(self, experts: ExpertSet, top_k: int, per_layer: bool = True, seed: int = 0):
        super().__init__(RouterHandle.token(experts._handle, top_k, per_layer, seed))


#: The Mixture-of-Roles roles, by their index in ``StepResult.roles``.
ROLES = ("reasoner", "executor", "summarizer")


class RolesRouter(Router):
    """MoRAgent's Mixture-of-Roles (0.3), with its own LoRAs for `engine`'s model: per role a
    shared LoRA plus routed ones (``routed_counts``, ``top_k`` per role: reasoner, executor,
    summarizer). Generation follows "Next Role: ..." markers, also inside one step. Use it with
    ``Policy(engine, None, router)``: the step's ``roles`` names each generated token's role,
    ``expert`` is the index of the role that wrote most, ``probabilities`` the role shares.
    Unset parameters take the library's defaults."""

    def __init__(self, engine: Engine, *, routed_counts: Optional[Sequence[int]] = None,
                 top_k: Optional[Sequence[int]] = None, rank: Optional[int] = None, scale: Optional[float] = None,
                 shared_gate: Optional[bool] = None, target_modules: Optional[int] = None, seed: int = 0):
        params = _lib.moragent_mor_params(struct_size=ctypes.sizeof(_lib.moragent_mor_params))
        check(_lib.moragent_mor_params_default(ctypes.byref(params)))
        for name, values in (("routed_counts", routed_counts), ("top_k", top_k)):
            if values is not None:
                values = list(values)
                if len(values) != 3:
                    raise invalid_argument(f"{name} needs 3 values (reasoner, executor, summarizer), got {len(values)}")
                for i, v in enumerate(values):
                    getattr(params, name)[i] = checked_int(v, f"{name}[{i}]", SIZE_MAX)
        if rank is not None:
            params.rank = checked_int(rank, "rank", SIZE_MAX)
        if scale is not None:
            params.scale = float(scale)
        if shared_gate is not None:
            params.shared_gate = 1 if shared_gate else 0
        if target_modules is not None:
            params.target_modules = checked_int(target_modules, "target_modules", 2 ** 32 - 1)
        super().__init__(RouterHandle.roles(engine._handle, params, seed))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the LoRAs, routers and shape to one safetensors file."""
        self._handle.save_roles(os.fsencode(path))

    @classmethod
    def load(cls, engine: Engine, path: Union[str, os.PathLike]) -> "RolesRouter":
        """Reads a router written by ``save``, for `engine`'s model."""
        router = cls.__new__(cls)
        Router.__init__(router, RouterHandle.load_roles(engine._handle, os.fsencode(path)))
        return router


def load_plugin(path: Union[str, os.PathLike]) -> None:
    """Loads a router plugin (a shared object; see include/moragent.h) and registers its router
    kinds for the whole process; create routers of them with ``Router.from_kind``. Loading the
    same plugin twice raises InvalidArgumentError."""
    check(_lib.moragent_plugin_load(c_string(os.fsencode(path), "path")))


@dataclass(frozen=True)
class StepResult:
    """What one policy step produced. `expert` is None for the base model or a mixture.
    `roles` (Mixture-of-Roles policies, else None): the role name of every generated token;
    `token_experts` (token-routed policies, else None): the experts chosen for each."""
    action: str
    action_valid: bool
    response: str
    expert: Optional[int]
    probabilities: List[float]
    ids: List[int]
    logprobs: List[float]
    prompt_ids: List[int]
    routing_seconds: float
    generation_seconds: float
    roles: Optional[List[str]] = None
    token_experts: Optional[List[List[int]]] = None


class Policy(_Owner):
    """An engine, experts and a router acting in a text environment: ``step`` routes, prompts
    and generates, ``end_episode`` closes an episode, ``trace`` reports routing per episode.
    One call at a time (BusyError otherwise). The policy keeps its engine and router alive and
    takes the experts the set holds now.

    Sampling defaults: temperature 1, at most 64 tokens, stopping at EOS or "</action>".
    Templates (None: the built-in ones) use {goal}, {observation}, {step}, {step_count},
    {history_length}, {history}; a history entry {k}, {observation}, {action}."""

    def __init__(self, engine: Engine, experts: Optional[ExpertSet], router: Router, *, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, seed: int = 0, max_new_tokens: int = 64,
                 stop: Sequence[str] = ("</action>",), stop_token_ids: Optional[Sequence[int]] = None,
                 ignore_eos: bool = False, first_step_template: Optional[str] = None,
                 later_step_template: Optional[str] = None, history_entry_template: Optional[str] = None,
                 history_length: int = 5, chatml: bool = False):
        sampling, keep_alive = generation_params(max_new_tokens, temperature, top_k, top_p, seed, stop, stop_token_ids,
                                                 ignore_eos)
        params = _lib.moragent_policy_params(struct_size=ctypes.sizeof(_lib.moragent_policy_params))
        check(_lib.moragent_policy_params_default(ctypes.byref(params)))
        params.sampling = ctypes.pointer(sampling)
        for name, value in (("first_step_template", first_step_template), ("later_step_template", later_step_template),
                            ("history_entry_template", history_entry_template)):
            if value is not None:
                setattr(params, name, c_string(value, name))
        params.history_length = checked_int(history_length, "history_length", SIZE_MAX)
        params.chatml = 1 if chatml else 0
        # Token and Mixture-of-Roles routers bring their own experts: `experts` may be None.
        self._handle = PolicyHandle.create(engine._handle, None if experts is None else experts._handle, router._handle,
                                           params)
        self.router = router

    def step(self, episode: int, observation: str, goal: str) -> StepResult:
        """The next step of `episode` (its first step starts it)."""
        with self._handle.step(episode, observation, goal) as out:
            return self._result(out)

    def step_batch(self, steps: Sequence[Sequence[Any]]) -> List[StepResult]:
        """The next step of several distinct episodes at once, given as (episode, observation,
        goal) triples: each is routed as ``step`` routes it, in order, then all prompts are
        prefilled and decoded as one batch, each episode sampling with the seed it has alone
        (the same steps as one ``step`` call each, up to float rounding; faster for a group of
        environments stepped in lockstep). Results in the same order; on error no episode
        changes."""
        handles = self._handle.step_batch([(episode, observation, goal) for episode, observation, goal in steps])
        try:
            return [self._result(out) for out in handles]
        finally:
            for out in handles:
                out.close()

    @staticmethod
    def _result(out) -> StepResult:
        expert = out.expert()
        routing, generation = out.timing()
        roles = [ROLES[r] for r in out.roles()]
        token_experts = out.token_experts()
        return StepResult(roles=roles or None, token_experts=token_experts or None, action=out.action().decode("utf-8"),
                          action_valid=out.action_valid(), response=out.response().decode("utf-8"),
                          expert=None if expert < 0 else expert, probabilities=out.probabilities(), ids=out.ids(),
                          logprobs=out.logprobs(), prompt_ids=out.prompt_ids(), routing_seconds=routing,
                          generation_seconds=generation)

    def end_episode(self, episode: int, reward: float, success: bool) -> None:
        """Ends `episode` with its return (finite) and outcome; it takes no more steps."""
        self._handle.end_episode(episode, reward, success)

    def trace(self) -> List[Dict[str, Any]]:
        """One dict per ended episode, in the order they ended: episode, steps, experts (None
        for base-model or mixture steps), switches, reward, success."""
        text = self._handle.trace().decode("utf-8")
        return [json.loads(line) for line in text.split("\n") if line]

    def clear_ended(self) -> None:
        """Forgets the ended episodes (their numbers may be used again)."""
        self._handle.clear_ended()

    def begin_episode(self, episode: int, group: int) -> None:
        """Starts `episode` as one rollout of `group` (the rollouts of one task instance, which
        GRPO, RLOO and GiGPO compare). An episode started by ``step`` alone is its own group."""
        self._handle.begin_episode(episode, group)

    def step_reward(self, episode: int, reward: float) -> None:
        """Adds a reward the environment gave for the latest step of `episode` (finite); the
        final return still goes to ``end_episode``."""
        self._handle.step_reward(episode, reward)

    @property
    def recorded_steps(self) -> int:
        """Steps recorded for the next update and not yet consumed."""
        return self._handle.recorded_steps()


ADVANTAGES = {"grpo": _lib.MORAGENT_ADVANTAGE_GRPO, "rloo": _lib.MORAGENT_ADVANTAGE_RLOO,
              "gigpo": _lib.MORAGENT_ADVANTAGE_GIGPO, "ppo": _lib.MORAGENT_ADVANTAGE_PPO}


class Trainer(_Owner):
    """RL updates of a policy from the episodes it recorded (``moragent_trainer``).

    ``advantage`` is one of ``ADVANTAGES`` ("gigpo" by default); every other keyword is a field
    of ``moragent_trainer_params`` (see the header for meanings and defaults), e.g.
    ``learning_rate=1e-4, diversity_interval=100, metrics_path="metrics.jsonl"``.
    ``update()`` learns from every ended episode, releases them and returns the statistics.
    Calls are serialised with the policy's (BusyError on overlap)."""

    def __init__(self, policy: Policy, *, advantage: str = "gigpo", metrics_path: Optional[str] = None, **settings: Any):
        params = _lib.moragent_trainer_params(struct_size=ctypes.sizeof(_lib.moragent_trainer_params))
        check(_lib.moragent_trainer_params_default(ctypes.byref(params)))
        if advantage not in ADVANTAGES:
            raise invalid_argument(f"advantage must be one of {sorted(ADVANTAGES)}, got {advantage!r}")
        params.advantage = ADVANTAGES[advantage]
        fields = {name for name, _ in _lib.moragent_trainer_params._fields_} - {"struct_size", "advantage", "metrics_path"}
        for name, value in settings.items():
            if name not in fields:
                raise invalid_argument(f"unknown trainer setting {name!r}; known: {sorted(fields)}")
            if isinstance(value, bool):
                value = int(value)
            try:
                setattr(params, name, value)
            except TypeError as error:
                raise invalid_argument(f"trainer setting {name}: {error}") from None
        if metrics_path is not None:
            params.metrics_path = c_string(os.fsencode(metrics_path), "metrics_path")
        self._handle = TrainerHandle.create(policy._handle, params)
        self.policy = policy

    def update(self, progress: Optional[Callable[[int, int], object]] = None) -> Dict[str, Any]:
        """One update from the policy's ended episodes; returns its statistics. ``progress(done,
        total)`` is called after every forward/backward pass; a true return aborts."""
        self._handle.update(progress)
        return self.last_stats()

    def last_stats(self) -> Dict[str, Any]:
        """The last update's statistics ({} before the first)."""
        return json.loads(self._handle.last_stats().decode("utf-8"))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Saves the whole training state as a policy bundle folder (atomically)."""
        self._handle.save(os.fsencode(path))

    def load(self, path: Union[str, os.PathLike]) -> None:
        """Restores a bundle saved by a trainer with the same settings over the same shapes."""
        self._handle.load(os.fsencode(path))

    def export_expert(self, expert: int, folder: Union[str, os.PathLike]) -> None:
        """Writes one expert as a PEFT adapter folder."""
        self._handle.export_expert(expert, os.fsencode(folder))


class SFTTrainer(_Owner):
    """Mixture-of-Roles SFT, batch by batch (``moragent_sft_trainer``). ``settings`` are the keys
    of a ``moragent train sft`` configuration (learning_rate, rank, routed_counts, planned_steps,
    ...). ``step(conversations)`` takes dicts or JSON lines and returns the step's statistics;
    ``fit`` is the convenience loop; ``save(path)`` writes the mixture, which
    ``RolesRouter.load`` turns into a router for a policy."""

    def __init__(self, engine: Engine, **settings: Any):
        self._handle = SFTTrainerHandle.create(engine._handle, json.dumps(settings).encode("utf-8"))
        self.engine = engine

    @staticmethod
    def _jsonl(conversations: Union[str, Sequence[Union[str, Dict[str, Any]]]]) -> bytes:
        if isinstance(conversations, str):
            return conversations.encode("utf-8")
        return "\n".join(c if isinstance(c, str) else json.dumps(c) for c in conversations).encode("utf-8")

    def step(self, conversations) -> Dict[str, Any]:
        """One AdamW step on a batch; returns step, loss, cross_entropy, load_balancing,
        orthogonality, grad_norm, lr, tokens."""
        self._handle.step(self._jsonl(conversations))
        return self.last_stats()

    def evaluate(self, conversations) -> float:
        """Mean cross-entropy per assistant token (no update)."""
        return self._handle.evaluate(self._jsonl(conversations))

    def last_stats(self) -> Dict[str, Any]:
        return json.loads(self._handle.last_stats().decode("utf-8"))

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the mixture as one safetensors file (atomically)."""
        self._handle.save(os.fsencode(path))

    def fit(self, train: Union[str, os.PathLike, Sequence[Any]], *, epochs: int = 4, batch_size: int = 4,
            validation: Optional[Union[str, os.PathLike, Sequence[Any]]] = None, metrics_path: Optional[str] = None,
            seed: int = 0, progress: bool = True) -> List[float]:
        """The convenience loop: `epochs` passes over `train` (a JSON-lines file or a list) in a
        seeded order, batches of `batch_size`, a progress bar on stderr, one JSON line of
        statistics per step (and one per epoch with the validation cross-entropy) appended to
        `metrics_path`. Returns the validation cross-entropy after each epoch (empty without
        validation data)."""
        import random
        import sys

        def lines(source) -> List[str]:
            if isinstance(source, (str, os.PathLike)):
                with open(source) as f:
                    return [line for line in f.read().splitlines() if line.strip()]
            return [c if isinstance(c, str) else json.dumps(c) for c in source]

        data, held = lines(train), lines(validation) if validation is not None else None
        if not data:
            raise invalid_argument("no training conversations")
        checked_int(epochs, "epochs", 1 << 31, 1)
        checked_int(batch_size, "batch_size", 1 << 31, 1)
        order, rng = list(range(len(data))), random.Random(seed)
        per_epoch = (len(data) + batch_size - 1) // batch_size
        total, done, scores = per_epoch * epochs, 0, []
        metrics = open(metrics_path, "a") if metrics_path else None
        try:
            for epoch in range(epochs):
                rng.shuffle(order)
                for b in range(per_epoch):
                    stats = self.step("\n".join(data[i] for i in order[b * batch_size:(b + 1) * batch_size]))
                    done += 1
                    if metrics:
                        metrics.write(json.dumps(stats) + "\n")
                        metrics.flush()
                    if progress:
                        filled = 30 * done // total
                        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} "
                                         f"loss {stats['loss']:.4f} ce {stats['cross_entropy']:.4f}")
                        sys.stderr.flush()
                if held is not None:
                    scores.append(self.evaluate(held))
                    if metrics:
                        metrics.write(json.dumps({"epoch": epoch + 1, "validation_cross_entropy": scores[-1]}) + "\n")
        finally:
            if metrics:
                metrics.close()
            if progress:
                sys.stderr.write("\n")
        return scores
