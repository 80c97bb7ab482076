"""Python bindings for libmoragent (``include/moragent.h``) over ctypes.

>>> import moragent
>>> with moragent.Engine("Tests/MoRAgentTests/Fixtures/models/qwen2-tiny") as engine:
...     out = engine.generate("You are in the kitchen. > go to", max_new_tokens=8)
...     out.stop_reason
'max_new_tokens'

Layers: ``_lib`` mirrors the header one function at a time, ``_handles`` owns C handles and
buffers, and this module is the Pythonic API. Every failure raises a ``MoRAgentError``
subclass carrying the C status and the library's message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

from . import _lib
from ._errors import (AbortedError, BufferTooSmallError, InternalError, InvalidArgumentError, InvalidHandleError,
                      MalformedFileError, ModelIOError, MoRAgentError, UnsupportedError)
from ._handles import EngineHandle, generation_params

__version__ = "0.1.0"

__all__ = [
    "Engine", "EngineInfo", "Generation", "library_version", "set_log_callback",
    "MoRAgentError", "InvalidArgumentError", "InvalidHandleError", "ModelIOError", "MalformedFileError",
    "UnsupportedError", "BufferTooSmallError", "AbortedError", "InternalError",
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
