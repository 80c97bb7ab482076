"""Property-based: random sequences of raw C calls (random bytes as text, random ids in and out
of the vocabulary, random parameters including NaN and infinities, random frees and double
frees of engines and generations) never crash the process, and every call answers with a
documented status; failures carry a message naming the function, successes clear it.

The machine keeps its own model of which handle addresses are live, so it knows which status
each call must give: a freed address is dead until the library hands it out again.
"""

import ctypes
import math

from hypothesis import HealthCheck, event, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from moragent import _lib
from conftest import QWEN2

STATUSES = {_lib.MORAGENT_OK, _lib.MORAGENT_ERROR_INVALID_ARGUMENT, _lib.MORAGENT_ERROR_INVALID_HANDLE,
            _lib.MORAGENT_ERROR_IO, _lib.MORAGENT_ERROR_MALFORMED_FILE, _lib.MORAGENT_ERROR_UNSUPPORTED,
            _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL, _lib.MORAGENT_ERROR_ABORTED}
VOCABULARY = 512

ids = st.lists(st.integers(min_value=-(2 ** 31), max_value=2 ** 31 - 1) | st.integers(0, VOCABULARY - 1),
               max_size=12)
floats = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, 0.5, 1.0])
sizes = st.integers(0, 2 ** 64 - 1) | st.integers(0, 12)
texts = st.binary(max_size=40) | st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass"))

# Generation requests: half drawn from valid ranges (so generation runs and its results are
# checked), half from anything the C types can hold.
valid_request = st.fixed_dictionaries({
    "prompt": st.lists(st.integers(0, VOCABULARY - 1), min_size=1, max_size=8),
    "temperature": st.sampled_from([0.0, 0.7, 1.0, 2.5]), "top_p": st.sampled_from([1.0, 0.9, 0.3]),
    "top_k": st.integers(0, 600), "seed": st.integers(0, 2 ** 64 - 1), "max_new_tokens": st.integers(0, 8),
    "stop": st.lists(st.text(min_size=1, max_size=3).map(lambda s: s.replace("\0", "a").encode("utf-8", "surrogatepass")), max_size=2),
    "stop_ids": st.lists(st.integers(0, VOCABULARY - 1), max_size=3), "ignore_eos": st.booleans(),
    "abort_after": st.none() | st.integers(0, 6), "struct_size": st.none(),
})
wild_request = st.fixed_dictionaries({
    "prompt": ids, "temperature": floats, "top_p": floats, "top_k": sizes, "seed": st.integers(0, 2 ** 64 - 1),
    "max_new_tokens": sizes, "stop": st.lists(texts, max_size=2), "stop_ids": ids, "ignore_eos": st.booleans(),
    "abort_after": st.none() | st.integers(0, 6), "struct_size": st.sampled_from([None, 0, 8, 2 ** 20]),
})


def expect(status, function, ok_allowed=True):
    """A documented status, with the message rule; returns the status."""
    assert status in STATUSES, f"{function} returned undocumented status {status}"
    message = _lib.moragent_last_error()
    if status == _lib.MORAGENT_OK:
        assert ok_allowed
        assert message == b""
    else:
        assert message.startswith(function.encode() + b": "), message
        assert len(message) > len(function) + 2
        message.decode("utf-8")  # always well-formed UTF-8
    return status


class RawCalls(RuleBasedStateMachine):
    engines = Bundle("engines")
    generations = Bundle("generations")

    def __init__(self):
        super().__init__()
        self.live_engines = set()
        self.live_generations = set()
        self.dead = set()

    def _born(self, address, live):
        self.dead.discard(address)
        live.add(address)

    def _status_for(self, address, live, freeing=False):
        """What a call on `address` must return: freeing NULL is a no-op, any other address
        that is not live is refused."""
        if address in live or (freeing and not address):
            return _lib.MORAGENT_OK
        return _lib.MORAGENT_ERROR_INVALID_HANDLE

    # No precondition on how many engines are live: which handles are live depends on whether
    # the allocator reused a freed address, which varies between runs, and Hypothesis needs rule
    # selection to replay identically. Engines of the tiny model are small; teardown frees them.
    @rule(target=engines)
    def load(self):
        out = ctypes.c_void_p()
        expect(_lib.moragent_engine_load(QWEN2.encode(), ctypes.byref(out)), "moragent_engine_load")
        self._born(out.value, self.live_engines)
        return out.value

    @rule(path=st.binary(min_size=1, max_size=20).map(lambda b: b.replace(b"\0", b"x")))
    def load_garbage_path(self, path):
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_engine_load(path, ctypes.byref(out)), "moragent_engine_load", ok_allowed=False)
        assert status in (_lib.MORAGENT_ERROR_IO, _lib.MORAGENT_ERROR_INVALID_ARGUMENT, _lib.MORAGENT_ERROR_MALFORMED_FILE)
        assert out.value is None

    @rule(engine=engines)
    def free_engine(self, engine):
        status = expect(_lib.moragent_engine_free(engine), "moragent_engine_free")
        assert status == self._status_for(engine, self.live_engines, freeing=True)
        if status == _lib.MORAGENT_OK and engine:
            self.live_engines.discard(engine)
            self.dead.add(engine)

    @rule(generation=generations)
    def free_generation(self, generation):
        status = expect(_lib.moragent_generation_free(generation), "moragent_generation_free")
        assert status == self._status_for(generation, self.live_generations, freeing=True)
        if status == _lib.MORAGENT_OK and generation:
            self.live_generations.discard(generation)
            self.dead.add(generation)

    @rule(engine=engines, text=texts, capacity=sizes, null_text=st.booleans())
    def tokenize(self, engine, text, capacity, null_text):
        buffer_size = min(capacity, 64)
        buffer = (ctypes.c_int32 * buffer_size)()
        count = ctypes.c_size_t()
        # Only capacities the buffer really has, or ones the library must refuse outright.
        capacity = capacity if capacity > 2 ** 62 else buffer_size
        status = expect(_lib.moragent_tokenize(engine, None if null_text else text, len(text), buffer, capacity,
                                               ctypes.byref(count)), "moragent_tokenize")
        if engine not in self.live_engines:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
        elif status == _lib.MORAGENT_OK:
            assert count.value <= capacity and all(0 <= i < VOCABULARY for i in buffer[:count.value])
        elif status == _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL:
            assert count.value > capacity

    @rule(engine=engines, token_ids=ids, capacity=st.integers(0, 200))
    def detokenize(self, engine, token_ids, capacity):
        array = (ctypes.c_int32 * len(token_ids))(*token_ids)
        text = ctypes.create_string_buffer(max(capacity, 1))
        length = ctypes.c_size_t()
        status = expect(_lib.moragent_detokenize(engine, array, len(token_ids), text, capacity, ctypes.byref(length)),
                        "moragent_detokenize")
        if engine not in self.live_engines:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
        elif status == _lib.MORAGENT_OK:
            assert length.value < capacity and text.raw[length.value] == 0
            text.raw[:length.value].decode("utf-8")
        else:
            assert status == _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL and length.value + 1 > capacity

    @rule(target=generations, engine=engines, request=valid_request | wild_request)
    def generate(self, engine, request):
        prompt, temperature, top_p, top_k, seed, max_new_tokens, stop, stop_ids, ignore_eos, abort_after, struct_size = (
            request[k] for k in ("prompt", "temperature", "top_p", "top_k", "seed", "max_new_tokens", "stop",
                                 "stop_ids", "ignore_eos", "abort_after", "struct_size"))
        params = _lib.moragent_generation_params(struct_size=ctypes.sizeof(_lib.moragent_generation_params))
        _lib.moragent_generation_params_default(ctypes.byref(params))
        params.temperature, params.top_p, params.top_k, params.seed = temperature, top_p, top_k, seed
        # Bounded unless the progress callback ends it, so the test stays fast.
        params.max_new_tokens = max_new_tokens if abort_after is not None or max_new_tokens > 2 ** 63 else min(max_new_tokens, 8)
        stop = [s for s in stop if b"\0" not in s]
        strings = (ctypes.c_char_p * len(stop))(*stop)
        params.stop_strings, params.stop_string_count = ctypes.cast(strings, ctypes.POINTER(ctypes.c_char_p)), len(stop)
        stop_array = (ctypes.c_int32 * len(stop_ids))(*stop_ids)
        params.stop_token_ids = ctypes.cast(stop_array, ctypes.POINTER(ctypes.c_int32))
        params.stop_token_count = len(stop_ids)
        params.ignore_eos = int(ignore_eos)
        if struct_size is not None:
            params.struct_size = struct_size
        callback = _lib.moragent_progress_fn()
        if abort_after is not None:
            callback = _lib.moragent_progress_fn(lambda done, total, user: int(done >= abort_after))
        array = (ctypes.c_int32 * len(prompt))(*prompt)
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_generate(engine, array, len(prompt), ctypes.byref(params), callback, None,
                                               ctypes.byref(out)), "moragent_generate")
        event(f"moragent_generate: {_lib.moragent_status_string(status).decode()}")
        if engine not in self.live_engines:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
        if status != _lib.MORAGENT_OK:
            assert out.value is None
            valid = (prompt and all(0 <= i < VOCABULARY for i in prompt) and math.isfinite(temperature) and temperature >= 0
                     and 0 < top_p <= 1 and top_k < 2 ** 63 and max_new_tokens < 2 ** 63 and struct_size is None
                     and all(stop))
            if status == _lib.MORAGENT_ERROR_INVALID_ARGUMENT:
                assert not valid or any(not _is_utf8(s) for s in stop)
            return 0  # NULL, as a failed call leaves it: freeing it is a no-op, using it is refused
        self._born(out.value, self.live_generations)
        count = ctypes.c_size_t()
        expect(_lib.moragent_generation_token_count(out.value, ctypes.byref(count)), "moragent_generation_token_count")
        assert count.value <= params.max_new_tokens
        # Progress is reported at 0 and after each token, so a run that was not aborted never
        # reached the abort threshold.
        assert abort_after is None or count.value < abort_after
        return out.value

    @rule(generation=generations)
    def read_generation(self, generation):
        count = ctypes.c_size_t()
        status = expect(_lib.moragent_generation_token_count(generation, ctypes.byref(count)), "moragent_generation_token_count")
        assert status == self._status_for(generation, self.live_generations)
        if status != _lib.MORAGENT_OK:
            return
        token_ids, logprobs = ctypes.POINTER(ctypes.c_int32)(), ctypes.POINTER(ctypes.c_float)()
        text, length, reason = ctypes.POINTER(ctypes.c_char)(), ctypes.c_size_t(), ctypes.c_int()
        expect(_lib.moragent_generation_ids(generation, ctypes.byref(token_ids)), "moragent_generation_ids")
        expect(_lib.moragent_generation_logprobs(generation, ctypes.byref(logprobs)), "moragent_generation_logprobs")
        expect(_lib.moragent_generation_text(generation, ctypes.byref(text), ctypes.byref(length)), "moragent_generation_text")
        expect(_lib.moragent_generation_stop_reason(generation, ctypes.byref(reason)), "moragent_generation_stop_reason")
        assert all(0 <= i < VOCABULARY for i in token_ids[:count.value])
        assert all(p <= 0 for p in logprobs[:count.value])
        assert ctypes.string_at(text, length.value + 1)[-1:] == b"\0"
        ctypes.string_at(text, length.value).decode("utf-8")
        assert reason.value in (0, 1, 2)

    @rule(engine=engines)
    def engine_used_as_generation(self, engine):
        count = ctypes.c_size_t()
        status = expect(_lib.moragent_generation_token_count(engine, ctypes.byref(count)),
                        "moragent_generation_token_count", ok_allowed=False)
        assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE

    @rule(engine=consumes(engines))
    def forget_engine(self, engine):
        """Frees an engine and drops it from the bundle (so the bundle does not grow forever)."""
        if engine in self.live_engines:
            assert _lib.moragent_engine_free(engine) == _lib.MORAGENT_OK
            self.live_engines.discard(engine)
            self.dead.add(engine)

    @invariant()
    def live_sets_are_disjoint(self):
        assert not (self.live_engines & self.live_generations)
        assert not (self.dead & (self.live_engines | self.live_generations))

    def teardown(self):
        for engine in self.live_engines:
            assert _lib.moragent_engine_free(engine) == _lib.MORAGENT_OK
        for generation in self.live_generations:
            assert _lib.moragent_generation_free(generation) == _lib.MORAGENT_OK


def _is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


RawCalls.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None, database=None,
                                      suppress_health_check=[HealthCheck.too_slow])
TestRawCalls = RawCalls.TestCase
