"""Owning wrappers around the C handles: each frees its handle exactly once, on ``close()``, on
leaving a ``with`` block, or when garbage-collected, and after that passes NULL to the library,
which answers MORAGENT_ERROR_INVALID_HANDLE (raised as ``InvalidHandleError``).

Conversions between Python values and C buffers live here too; ranges that ctypes would wrap
silently (negative sizes, ids beyond 32 bits) are refused before the call.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, c_char, c_char_p, c_float, c_int32, c_size_t, c_void_p
from typing import Callable, Iterable, List, Optional, Sequence

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


def checked_int(value: int, name: str, maximum: int) -> int:
    """`value` if it is an integer in [0, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise invalid_argument(f"{name} must be an integer from 0 to {maximum}, got {value!r}")
    return value


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
        raised: List[BaseException] = []
        callback = _lib.moragent_progress_fn()  # NULL: no callback
        if progress is not None:
            def trampoline(done: int, total: int, user: Optional[int]) -> int:
                try:
                    return 1 if progress(done, total) else 0
                except BaseException as error:  # noqa: B036 - handed back to the caller below
                    raised.append(error)
                    return 1
            callback = _lib.moragent_progress_fn(trampoline)
        out = c_void_p()
        status = _lib.moragent_generate(self.address, array, len(array), byref(params), callback, None, byref(out))
        if raised:
            raise raised[0]
        check(status)
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

