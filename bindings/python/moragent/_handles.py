"""Owning wrappers around the C handles: each frees its handle exactly once, on ``close()``, on
leaving a ``with`` block, or when garbage-collected, and after that passes NULL to the library,
which answers MORAGENT_ERROR_INVALID_HANDLE (raised as ``InvalidHandleError``).

Conversions between Python values and C buffers live here too; ranges that ctypes would wrap
silently (negative sizes, ids beyond 32 bits) are refused before the call.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import POINTER, byref, c_char, c_char_p, c_double, c_float, c_int32, c_size_t, c_void_p
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from . import _lib
from ._errors import check, invalid_argument

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
SIZE_MAX = 2 ** (8 * ctypes.sizeof(c_size_t)) - 1
UINT64_MAX = 2 ** 64 - 1


def int32_array(values: Iterable[int], name: str):
    """A C array of int32 holding `values`, each checked to fit."""
    values = list(values)
    for value in values:
        if not isinstance(value, int) or isinstance(value, bool) or not INT32_MIN <= value <= INT32_MAX:
            raise invalid_argument(f"{name}: {value!r} is not a 32-bit integer token id")
    return (c_int32 * len(values))(*values)


def checked_int(value: int, name: str, maximum: int, minimum: int = 0) -> int:
    """`value` if it is an integer in [minimum, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise invalid_argument(f"{name} must be an integer from {minimum} to {maximum}, got {value!r}")
    return value


INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def c_string(text, name: str) -> bytes:
    """`text` (str or bytes) as the bytes of a C string: a str is encoded as UTF-8 (lone
    surrogates pass through, for the library to refuse as it refuses any invalid UTF-8); a NUL
    inside would silently cut the string, so it is refused here."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if b"\0" in data:
        raise invalid_argument(f"{name} must not contain NUL characters (C strings end there)")
    return data


class OwnedHandle:
    """A C handle this object owns. ``address`` is None once closed."""

    _free: Callable[[Optional[int]], int]

    def __init__(self, address: int):
        self._address: Optional[int] = address

    @property
    def address(self) -> Optional[int]:
        return self._address

    @property
    def closed(self) -> bool:
        return self._address is None

    def close(self) -> None:
        """Frees the handle; closing again does nothing."""
        address, self._address = self._address, None
        if address is not None:
            check(type(self)._free(address))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        # At interpreter exit the module globals this needs may already be gone; the process
        # is ending and the OS takes the memory back.
        try:
            self.close()
        except Exception:
            pass


class GenerationHandle(OwnedHandle):
    """An owned ``moragent_generation *``; the accessors copy out of it."""

    _free = staticmethod(_lib.moragent_generation_free)

    def token_count(self) -> int:
        count = c_size_t()
        check(_lib.moragent_generation_token_count(self.address, byref(count)))
        return count.value

    def ids(self) -> List[int]:
        pointer = POINTER(c_int32)()
        check(_lib.moragent_generation_ids(self.address, byref(pointer)))
        return pointer[:self.token_count()]

    def logprobs(self) -> List[float]:
        pointer = POINTER(c_float)()
        check(_lib.moragent_generation_logprobs(self.address, byref(pointer)))
        return pointer[:self.token_count()]

    def entropies(self) -> List[float]:
        pointer = POINTER(c_float)()
        check(_lib.moragent_generation_entropies(self.address, byref(pointer)))
        return pointer[:self.token_count()]

    def text(self) -> bytes:
        pointer, length = POINTER(c_char)(), c_size_t()
        check(_lib.moragent_generation_text(self.address, byref(pointer), byref(length)))
        return ctypes.string_at(pointer, length.value)

    def stop_reason(self) -> int:
        reason = _lib.moragent_stop_reason()
        check(_lib.moragent_generation_stop_reason(self.address, byref(reason)))
        return reason.value


class EngineHandle(OwnedHandle):
    """An owned ``moragent_engine *``."""

    _free = staticmethod(_lib.moragent_engine_free)

    @classmethod
    def load(cls, model_dir: bytes) -> "EngineHandle":
        out = c_void_p()
        check(_lib.moragent_engine_load(model_dir, byref(out)))
        return cls(out.value)

    def info(self) -> _lib.moragent_engine_info:
        info = _lib.moragent_engine_info(struct_size=ctypes.sizeof(_lib.moragent_engine_info))
        check(_lib.moragent_engine_get_info(self.address, byref(info)))
        return info

    @staticmethod
    def initial_capacity(length: int) -> int:
        """The first buffer size tried for `length` bytes or ids: enough for byte-level BPE
        (at most one id per byte) and for tokens of up to 16 bytes; when it is not, the
        library reports the size needed and the call is made once more."""
        return length + 16

    def tokenize(self, text: bytes) -> List[int]:
        count = c_size_t()

        def attempt(capacity):
            ids = (c_int32 * capacity)()
            return _lib.moragent_tokenize(self.address, text, len(text), ids, capacity, byref(count)), ids
        status, ids = attempt(self.initial_capacity(len(text)))
        if status == _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL:
            status, ids = attempt(count.value)
        check(status)
        return ids[:count.value]

    def detokenize(self, ids: Sequence[int]) -> bytes:
        array = int32_array(ids, "ids")
        length = c_size_t()

        def attempt(capacity):
            text = ctypes.create_string_buffer(capacity)
            return _lib.moragent_detokenize(self.address, array, len(array), text, capacity, byref(length)), text
        status, text = attempt(self.initial_capacity(16 * len(array)))
        if status == _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL:
            status, text = attempt(length.value + 1)
        check(status)
        return text.raw[:length.value]

    def generate(self, prompt: Sequence[int], params: _lib.moragent_generation_params,
                 progress: Optional[Callable[[int, int], object]] = None) -> GenerationHandle:
        """Runs ``moragent_generate``. ``progress(done, total)`` returning a true value stops
        generation (AbortedError); an exception it raises stops it too and is re-raised here,
        so Ctrl-C works during a long generation."""
        array = int32_array(prompt, "prompt")
        callback, raised = _progress_callback(progress)
        out = c_void_p()
        status = _lib.moragent_generate(self.address, array, len(array), byref(params), callback, None, byref(out))
        _check_after_callback(status, raised)
        return GenerationHandle(out.value)


def generation_params(max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int,
                      stop: Sequence[str], stop_token_ids: Optional[Sequence[int]], ignore_eos: bool):
    """A filled ``moragent_generation_params`` and the buffers its pointers refer to (keep
    both alive for the call)."""
    params = _lib.moragent_generation_params(struct_size=ctypes.sizeof(_lib.moragent_generation_params))
    check(_lib.moragent_generation_params_default(byref(params)))
    params.max_new_tokens = checked_int(max_new_tokens, "max_new_tokens", SIZE_MAX)
    params.top_k = checked_int(top_k, "top_k", SIZE_MAX)
    params.seed = checked_int(seed, "seed", UINT64_MAX)
    params.temperature = float(temperature)
    params.top_p = float(top_p)
    if isinstance(stop, (str, bytes)):
        stop = [stop]
    encoded = [s if isinstance(s, bytes) else s.encode("utf-8", "surrogatepass") for s in stop]
    if any(b"\0" in s for s in encoded):
        raise invalid_argument("stop strings must not contain NUL characters (C strings end there)")
    strings = (c_char_p * len(encoded))(*encoded)
    params.stop_strings = ctypes.cast(strings, POINTER(c_char_p))
    params.stop_string_count = len(encoded)
    ids = int32_array(stop_token_ids or [], "stop_token_ids")
    params.stop_token_ids = ctypes.cast(ids, POINTER(c_int32))
    params.stop_token_count = len(ids)
    params.ignore_eos = 1 if ignore_eos else 0
    return params, (strings, ids)



# ---- 0.2: experts, routers, policies ----------------------------------------------------------

def _array_out(call, handle_address, element):
    """Reads an (array, count) accessor into a list."""
    pointer, count = POINTER(element)(), c_size_t()
    check(call(handle_address, byref(pointer), byref(count)))
    return pointer[:count.value]


def _progress_callback(progress: Optional[Callable[[int, int], object]]):
    """A ``moragent_progress_fn`` calling ``progress(done, total)`` (NULL for None) and the list
    that collects what it raised: a true return or an exception aborts the library call, and
    the exception is re-raised after it (so Ctrl-C works during a long call)."""
    raised: List[BaseException] = []
    if progress is None:
        return _lib.moragent_progress_fn(), raised

    def trampoline(done: int, total: int, user: Optional[int]) -> int:
        try:
            return 1 if progress(done, total) else 0
        except BaseException as error:  # noqa: B036 - handed back to the caller
            raised.append(error)
            return 1
    return _lib.moragent_progress_fn(trampoline), raised


def _check_after_callback(status: int, raised: List[BaseException]) -> None:
    """Re-raises what a progress callback raised, else checks the status."""
    if raised:
        raise raised[0]
    check(status)


def _sized_text(call, handle_address) -> bytes:
    """The text of a call with the library's buffer convention (``call(handle, buffer, capacity,
    out_length)``): asks for the length, then fetches into a buffer of that size."""
    length = c_size_t()
    status = call(handle_address, None, 0, byref(length))
    if status != _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL:
        check(status)
    text = ctypes.create_string_buffer(length.value + 1)
    check(call(handle_address, text, len(text), byref(length)))
    return text.raw[:length.value]


def _text_out(call, handle_address) -> bytes:
    pointer, length = POINTER(c_char)(), c_size_t()
    check(call(handle_address, byref(pointer), byref(length)))
    return ctypes.string_at(pointer, length.value)


class ExpertsHandle(OwnedHandle):
    """An owned ``moragent_experts *``."""

    _free = staticmethod(_lib.moragent_experts_free)

    @classmethod
    def create(cls, engine: EngineHandle, count: int, params: _lib.moragent_lora_params, seed: int) -> "ExpertsHandle":
        out = c_void_p()
        check(_lib.moragent_experts_create(engine.address, checked_int(count, "count", SIZE_MAX), byref(params),
                                           checked_int(seed, "seed", UINT64_MAX), byref(out)))
        return cls(out.value)

    def count(self) -> int:
        count = c_size_t()
        check(_lib.moragent_experts_count(self.address, byref(count)))
        return count.value

    def load_peft(self, path: bytes) -> None:
        check(_lib.moragent_experts_load_peft(self.address, c_string(path, "path")))

    def save_peft(self, index: int, path: bytes) -> None:
        check(_lib.moragent_experts_save_peft(self.address, checked_int(index, "index", SIZE_MAX), c_string(path, "path")))


# Exceptions raised by Python router callbacks, per thread: a callback runs on the thread that
# called step, which re-raises the exception once the C call has returned.
_callback_errors = threading.local()


def take_callback_error() -> Optional[BaseException]:
    """The exception a Python router callback raised during the last call on this thread, if any."""
    error = getattr(_callback_errors, "error", None)
    _callback_errors.error = None
    return error


def router_callback(fn: Callable[[_lib.moragent_step_features], Sequence[float]]):
    """A ``moragent_router_fn`` calling ``fn(features)``, which returns one weight per expert.
    Whatever ``fn`` raises (or a wrong number of weights) is recorded for the calling thread and
    reported to the library as a failure (non-zero), never propagated through C."""
    def trampoline(features, weights_out, expert_count, user):
        try:
            weights = [float(w) for w in fn(features.contents)]
            if len(weights) != expert_count:
                raise ValueError(f"the router function returned {len(weights)} weights for {expert_count} experts")
            for k, w in enumerate(weights):
                weights_out[k] = w
            return 0
        except BaseException as error:  # noqa: B036 - re-raised by the caller of step
            if getattr(_callback_errors, "error", None) is None:
                _callback_errors.error = error
            return 1
    return _lib.moragent_router_fn(trampoline)


class RouterHandle(OwnedHandle):
    """An owned ``moragent_router *``. ``keep_alive`` holds what the C router calls into (a ctypes
    callback) or relies on, for as long as this object lives."""

    _free = staticmethod(_lib.moragent_router_free)

    def __init__(self, address: int, keep_alive=()):
        super().__init__(address)
        self.keep_alive = keep_alive

    @classmethod
    def _made(cls, call, *args, keep_alive=()) -> "RouterHandle":
        out = c_void_p()
        check(call(*args, byref(out)))
        return cls(out.value, keep_alive)

    @classmethod
    def fixed(cls, expert_count: int, expert: int) -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_fixed, checked_int(expert_count, "expert_count", SIZE_MAX),
                         checked_int(expert, "expert", INT32_MAX, INT32_MIN))

    @classmethod
    def phase(cls, model_hidden_size: int, params: _lib.moragent_phase_router_params, seed: int) -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_phase, checked_int(model_hidden_size, "model_hidden_size", SIZE_MAX),
                         byref(params), checked_int(seed, "seed", UINT64_MAX))

    @classmethod
    def load_phase(cls, path: bytes) -> "RouterHandle":
        return cls._made(_lib.moragent_router_phase_load, c_string(path, "path"))

    @classmethod
    def trajectory(cls, inner: "RouterHandle") -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_trajectory, inner.address, keep_alive=(inner,))

    @classmethod
    def callback(cls, expert_count: int, fn) -> "RouterHandle":
        trampoline = router_callback(fn)
        return cls._made(_lib.moragent_router_create_callback, checked_int(expert_count, "expert_count", SIZE_MAX),
                         trampoline, None, keep_alive=(trampoline,))

    @classmethod
    def kind(cls, name: bytes, config_json: Optional[bytes], expert_count: int) -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_kind, c_string(name, "name"),
                         None if config_json is None else c_string(config_json, "config_json"),
                         checked_int(expert_count, "expert_count", SIZE_MAX))

    def expert_count(self) -> int:
        count = c_size_t()
        check(_lib.moragent_router_expert_count(self.address, byref(count)))
        return count.value

    def save_phase(self, path: bytes) -> None:
        check(_lib.moragent_router_phase_save(self.address, c_string(path, "path")))

    @classmethod
    def token(cls, experts: "ExpertsHandle", top_k: int, per_layer: bool, seed: int) -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_token, experts.address, checked_int(top_k, "top_k", SIZE_MAX),
                         1 if per_layer else 0, checked_int(seed, "seed", UINT64_MAX))

    @classmethod
    def roles(cls, engine: "EngineHandle", params: _lib.moragent_mor_params, seed: int) -> "RouterHandle":
        return cls._made(_lib.moragent_router_create_roles, engine.address, byref(params),
                         checked_int(seed, "seed", UINT64_MAX))

    @classmethod
    def load_roles(cls, engine: "EngineHandle", path: bytes) -> "RouterHandle":
        return cls._made(_lib.moragent_router_roles_load, engine.address, c_string(path, "path"))

    def save_roles(self, path: bytes) -> None:
        check(_lib.moragent_router_roles_save(self.address, c_string(path, "path")))


class StepResultHandle(OwnedHandle):
    """An owned ``moragent_step_result *``; the accessors copy out of it."""

    _free = staticmethod(_lib.moragent_step_result_free)

    def action(self) -> bytes:
        return _text_out(_lib.moragent_step_result_action, self.address)

    def response(self) -> bytes:
        return _text_out(_lib.moragent_step_result_response, self.address)

    def action_valid(self) -> bool:
        valid = c_int32()
        check(_lib.moragent_step_result_action_valid(self.address, byref(valid)))
        return valid.value != 0

    def ids(self) -> List[int]:
        return _array_out(_lib.moragent_step_result_ids, self.address, c_int32)

    def logprobs(self) -> List[float]:
        return _array_out(_lib.moragent_step_result_logprobs, self.address, c_float)

    def prompt_ids(self) -> List[int]:
        return _array_out(_lib.moragent_step_result_prompt_ids, self.address, c_int32)

    def expert(self) -> int:
        expert = c_int32()
        check(_lib.moragent_step_result_expert(self.address, byref(expert)))
        return expert.value

    def probabilities(self) -> List[float]:
        return _array_out(_lib.moragent_step_result_probabilities, self.address, c_float)

    def timing(self) -> Tuple[float, float]:
        routing, generation = c_double(), c_double()
        check(_lib.moragent_step_result_timing(self.address, byref(routing), byref(generation)))
        return routing.value, generation.value

    def roles(self) -> List[int]:
        return _array_out(_lib.moragent_step_result_roles, self.address, c_int32)

    def token_experts(self) -> List[List[int]]:
        pointer, count, per_token = POINTER(c_int32)(), c_size_t(), c_size_t()
        check(_lib.moragent_step_result_token_experts(self.address, byref(pointer), byref(count), byref(per_token)))
        k = per_token.value
        flat = pointer[:count.value * k]
        return [flat[i * k:(i + 1) * k] for i in range(count.value)]


class PolicyHandle(OwnedHandle):
    """An owned ``moragent_policy *``; ``router`` is kept so a Python callback outlives its use."""

    _free = staticmethod(_lib.moragent_policy_free)

    def __init__(self, address: int, router: RouterHandle):
        super().__init__(address)
        self.router = router

    @classmethod
    def create(cls, engine: EngineHandle, experts: Optional[ExpertsHandle], router: RouterHandle,
               params: _lib.moragent_policy_params) -> "PolicyHandle":
        out = c_void_p()
        experts_address = None if experts is None else experts.address
        check(_lib.moragent_policy_create(engine.address, experts_address, router.address, byref(params), byref(out)))
        return cls(out.value, router)

    def _check(self, status: int) -> None:
        """Re-raises what a Python router callback raised during the call, else checks the status."""
        error = take_callback_error()
        if error is not None:
            raise error
        check(status)

    def step(self, episode: int, observation: bytes, goal: bytes) -> StepResultHandle:
        out = c_void_p()
        take_callback_error()
        status = _lib.moragent_policy_step(self.address, checked_int(episode, "episode", INT64_MAX, INT64_MIN),
                                           c_string(observation, "observation"), c_string(goal, "goal"), byref(out))
        self._check(status)
        return StepResultHandle(out.value)

    def step_batch(self, steps: Sequence[Tuple[int, bytes, bytes]]) -> List[StepResultHandle]:
        n = len(steps)
        episodes = (ctypes.c_int64 * n)(*[checked_int(e, "episode", INT64_MAX, INT64_MIN) for e, _, _ in steps])
        observations = (c_char_p * n)(*[c_string(o, "observation") for _, o, _ in steps])
        goals = (c_char_p * n)(*[c_string(g, "goal") for _, _, g in steps])
        out = (c_void_p * n)()
        take_callback_error()
        self._check(_lib.moragent_policy_step_batch(self.address, n, episodes, observations, goals, out))
        return [StepResultHandle(address) for address in out]

    def end_episode(self, episode: int, reward: float, success: bool) -> None:
        check(_lib.moragent_policy_end_episode(self.address, checked_int(episode, "episode", INT64_MAX, INT64_MIN),
                                               float(reward), 1 if success else 0))

    def trace(self) -> bytes:
        return _sized_text(_lib.moragent_policy_trace_jsonl, self.address)

    def clear_ended(self) -> None:
        check(_lib.moragent_policy_clear_ended(self.address))

    def begin_episode(self, episode: int, group: int) -> None:
        check(_lib.moragent_policy_begin_episode(self.address, checked_int(episode, "episode", INT64_MAX, INT64_MIN),
                                                 checked_int(group, "group", INT64_MAX, INT64_MIN)))

    def step_reward(self, episode: int, reward: float) -> None:
        check(_lib.moragent_policy_step_reward(self.address, checked_int(episode, "episode", INT64_MAX, INT64_MIN),
                                               float(reward)))

    def recorded_steps(self) -> int:
        count = c_size_t()
        check(_lib.moragent_policy_recorded_steps(self.address, byref(count)))
        return count.value


class TrainerHandle(OwnedHandle):
    """An owned ``moragent_trainer *``; ``policy`` is kept so the policy outlives the trainer."""

    _free = staticmethod(_lib.moragent_trainer_free)

    def __init__(self, address: int, policy: PolicyHandle):
        super().__init__(address)
        self.policy = policy

    @classmethod
    def create(cls, policy: PolicyHandle, params: _lib.moragent_trainer_params) -> "TrainerHandle":
        out = c_void_p()
        check(_lib.moragent_trainer_create(policy.address, byref(params), byref(out)))
        return cls(out.value, policy)

    def update(self, progress: Optional[Callable[[int, int], object]] = None) -> None:
        """Runs ``moragent_trainer_update``; ``progress(done, total)`` as for ``generate``."""
        callback, raised = _progress_callback(progress)
        _check_after_callback(_lib.moragent_trainer_update(self.address, callback, None), raised)

    def last_stats(self) -> bytes:
        return _sized_text(_lib.moragent_trainer_last_stats, self.address)

    def save(self, path: bytes) -> None:
        check(_lib.moragent_trainer_save(self.address, c_string(path, "path")))

    def load(self, path: bytes) -> None:
        check(_lib.moragent_trainer_load(self.address, c_string(path, "path")))

    def export_expert(self, expert: int, folder: bytes) -> None:
        check(_lib.moragent_trainer_export_expert(self.address, checked_int(expert, "expert", SIZE_MAX),
                                                  c_string(folder, "folder")))


class SFTTrainerHandle(OwnedHandle):
    """An owned ``moragent_sft_trainer *``; ``engine`` is kept alive with it."""

    _free = staticmethod(_lib.moragent_sft_trainer_free)

    def __init__(self, address: int, engine: EngineHandle):
        super().__init__(address)
        self.engine = engine

    @classmethod
    def create(cls, engine: EngineHandle, config: bytes) -> "SFTTrainerHandle":
        out = c_void_p()
        check(_lib.moragent_sft_trainer_create(engine.address, c_string(config, "config"), byref(out)))
        return cls(out.value, engine)

    def step(self, batch: bytes) -> None:
        check(_lib.moragent_sft_trainer_step(self.address, c_string(batch, "batch")))

    def evaluate(self, jsonl: bytes) -> float:
        value = ctypes.c_double()
        check(_lib.moragent_sft_trainer_evaluate(self.address, c_string(jsonl, "jsonl"), byref(value)))
        return value.value

    def last_stats(self) -> bytes:
        return _sized_text(_lib.moragent_sft_trainer_last_stats, self.address)

    def save(self, path: bytes) -> None:
        check(_lib.moragent_sft_trainer_save(self.address, c_string(path, "path")))
