"""Property-based: random sequences of raw C calls (random bytes as text, random ids in and out
of the vocabulary, random parameters including NaN and infinities, random frees and double
frees of engines, generations, expert sets, routers, policies and step results; router
callbacks that fail or write NaN; policies stepped and ended in random orders) never crash the
process, and every call answers with a documented status; failures carry a message naming the
function, successes clear it.

The machine keeps its own model of which handle addresses are live (and, for 0.2 objects, their
expert counts and each policy's episodes), so it knows which status each call must give: a
freed address is dead until the library hands it out again.
"""

import ctypes
import json
import math

from hypothesis import HealthCheck, event, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from moragent import _lib
from conftest import QWEN2

STATUSES = {_lib.MORAGENT_OK, _lib.MORAGENT_ERROR_INVALID_ARGUMENT, _lib.MORAGENT_ERROR_INVALID_HANDLE,
            _lib.MORAGENT_ERROR_IO, _lib.MORAGENT_ERROR_MALFORMED_FILE, _lib.MORAGENT_ERROR_UNSUPPORTED,
            _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL, _lib.MORAGENT_ERROR_ABORTED, _lib.MORAGENT_ERROR_CALLBACK,
            _lib.MORAGENT_ERROR_BUSY}
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


# How a callback router answers: "hard" routes step t to expert t mod K, "mixture" weighs all,
# "zero" routes to the base model; "fail" returns non-zero, "nan" and "negative" write bad
# weights (harmless when K is 0: there is nothing to write).
BEHAVIOURS = ["hard", "mixture", "zero", "fail", "nan", "negative"]


class RouterModel:
    """What the machine knows of a router: its kind, K, and what decides whether a step routes.
    A callback router answers with the behaviour in its `cell`, which the step rule redraws before
    every step; a trajectory router keeps the first decision of each episode (in `cache`) until
    the episode ends, as the library's does."""

    def __init__(self, kind, count, inner=None):
        self.kind, self.count, self.inner = kind, count, inner
        self.cell = ["hard"]
        self.cache = set()

    def callback(self):
        """The callback router this router ends at, if any."""
        router = self
        while router.kind == "trajectory":
            router = router.inner
        return router if router.kind == "callback" else None

    def decides(self, episode):
        """Whether a decision for `episode` succeeds now (recording what a trajectory keeps)."""
        if self.kind == "fixed":
            return True
        if self.kind == "callback":
            behaviour = self.cell[0]
            return not (behaviour == "fail" or (behaviour in ("nan", "negative") and self.count > 0))
        if episode in self.cache:
            return True
        if self.inner.decides(episode):
            self.cache.add(episode)
            return True
        return False

    def forget(self, episode):
        if self.kind == "trajectory":
            self.cache.discard(episode)
            self.inner.forget(episode)


def router_callback(cell):
    def answer(features, weights, count, user):
        behaviour = cell[0]
        if behaviour == "fail":
            return 1
        for k in range(count):
            weights[k] = {"hard": 1.0 if k == features.contents.step % count else 0.0, "mixture": k + 1.0, "zero": 0.0,
                          "nan": math.nan if k == 0 else 0.0, "negative": -1.0 if k == count - 1 else 0.0}[behaviour]
        return 0
    return _lib.moragent_router_fn(answer)


def c_text(data):
    """What the library reads from bytes passed as a C string: up to the first NUL."""
    return data.split(b"\0")[0]


class RawCalls(RuleBasedStateMachine):
    engines = Bundle("engines")
    generations = Bundle("generations")
    expert_sets = Bundle("expert_sets")
    routers = Bundle("routers")
    policies = Bundle("policies")
    results = Bundle("results")

    def __init__(self):
        super().__init__()
        self.live_engines = set()
        self.live_generations = set()
        self.live_experts = {}    # address -> expert count
        self.live_routers = {}    # address -> RouterModel
        self.live_policies = {}   # address -> {"router": RouterModel, "episodes": {episode: "running" | "ended"}}
        self.live_results = set()
        self.callbacks = []       # ctypes callbacks live routers may call: kept for the whole run
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

    # Every run starts with an engine, so the rules that need one (and the 0.2 objects built on
    # it: expert sets, then policies and their steps) are reachable within a run's steps.
    @initialize(target=engines)
    def first_engine(self):
        return self.load()

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

    # ---- 0.2: expert sets, routers, policies, step results --------------------------------

    def _freed(self, address, live, status):
        if status == _lib.MORAGENT_OK and address:
            live.discard(address) if isinstance(live, set) else live.pop(address)
            self.dead.add(address)

    @initialize(target=policies, trajectory=st.booleans())
    def first_policy(self, trajectory):
        """A live policy over two experts from the start, routed by a callback (through a
        trajectory router or not), so stepping, ending and tracing get a good share of a run."""
        engine = self.load()
        experts = self.create_experts(engine, 2, 4, 5, 1.0, False)
        router = self.create_callback_router(2)
        if trajectory:
            router = self.create_trajectory_router(router)
        return self.create_policy(engine, experts, router, 2)

    @rule(target=expert_sets, engine=engines, count=st.integers(0, 2) | st.sampled_from([70000, 2 ** 64 - 1]),
          rank=st.sampled_from([1, 4, 4, 4, 0, 70000, 2 ** 63]), modules=st.sampled_from([1, 5, 0x7F, 5, 0, 0x80]),
          alpha=st.just(8.0) | floats, null_params=st.booleans())
    def create_experts(self, engine, count, rank, modules, alpha, null_params):
        params = _lib.moragent_lora_params(struct_size=ctypes.sizeof(_lib.moragent_lora_params))
        _lib.moragent_lora_params_default(ctypes.byref(params))
        params.rank, params.target_modules, params.alpha = rank, modules, alpha
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_experts_create(engine, count, None if null_params else ctypes.byref(params), 7,
                                                     ctypes.byref(out)), "moragent_experts_create")
        valid = count <= 3 and (null_params or (1 <= rank <= 65536 and modules in (1, 5, 0x7F) and math.isfinite(alpha)))
        assert status == (_lib.MORAGENT_ERROR_INVALID_HANDLE if engine not in self.live_engines
                          else _lib.MORAGENT_OK if valid else _lib.MORAGENT_ERROR_INVALID_ARGUMENT)
        if status != _lib.MORAGENT_OK:
            assert out.value is None
            return 0
        self._born(out.value, set())
        self.live_experts[out.value] = count
        return out.value

    @rule(experts=expert_sets)
    def count_experts(self, experts):
        count = ctypes.c_size_t()
        status = expect(_lib.moragent_experts_count(experts, ctypes.byref(count)), "moragent_experts_count")
        assert status == (_lib.MORAGENT_OK if experts in self.live_experts else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        if status == _lib.MORAGENT_OK:
            assert count.value == self.live_experts[experts]

    @rule(experts=expert_sets)
    def free_experts(self, experts):
        status = expect(_lib.moragent_experts_free(experts), "moragent_experts_free")
        assert status == (_lib.MORAGENT_OK if experts in self.live_experts or not experts
                          else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        self._freed(experts, self.live_experts, status)

    def _router_born(self, out, status, model):
        if status != _lib.MORAGENT_OK:
            assert out.value is None
            return 0
        self._born(out.value, set())
        self.live_routers[out.value] = model
        return out.value

    @rule(target=routers, count=st.integers(0, 2) | st.just(70000), expert=st.integers(-2, 3))
    def create_fixed_router(self, count, expert):
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_router_create_fixed(count, expert, ctypes.byref(out)), "moragent_router_create_fixed")
        valid = count <= 65536 and (expert == -1 or 0 <= expert < count)
        assert status == (_lib.MORAGENT_OK if valid else _lib.MORAGENT_ERROR_INVALID_ARGUMENT)
        return self._router_born(out, status, RouterModel("fixed", count))

    @rule(target=routers, count=st.integers(0, 2))
    def create_callback_router(self, count):
        model = RouterModel("callback", count)
        callback = router_callback(model.cell)
        self.callbacks.append(callback)
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_router_create_callback(count, callback, None, ctypes.byref(out)),
                        "moragent_router_create_callback")
        assert status == _lib.MORAGENT_OK
        return self._router_born(out, status, model)

    @rule(target=routers, inner=routers)
    def create_trajectory_router(self, inner):
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_router_create_trajectory(inner, ctypes.byref(out)),
                        "moragent_router_create_trajectory")
        assert status == (_lib.MORAGENT_OK if inner in self.live_routers else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        inner_model = self.live_routers.get(inner)
        return self._router_born(out, status, inner_model and RouterModel("trajectory", inner_model.count, inner_model))

    @rule(router=routers)
    def free_router(self, router):
        status = expect(_lib.moragent_router_free(router), "moragent_router_free")
        assert status == (_lib.MORAGENT_OK if router in self.live_routers or not router
                          else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        self._freed(router, self.live_routers, status)

    @rule(target=policies, engine=engines, experts=expert_sets, router=routers, max_new_tokens=st.integers(0, 2))
    def create_policy(self, engine, experts, router, max_new_tokens):
        sampling = _lib.moragent_generation_params(struct_size=ctypes.sizeof(_lib.moragent_generation_params))
        _lib.moragent_generation_params_default(ctypes.byref(sampling))
        sampling.max_new_tokens = max_new_tokens
        params = _lib.moragent_policy_params(struct_size=ctypes.sizeof(_lib.moragent_policy_params))
        _lib.moragent_policy_params_default(ctypes.byref(params))
        params.sampling = ctypes.pointer(sampling)
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_policy_create(engine, experts, router, ctypes.byref(params), ctypes.byref(out)),
                        "moragent_policy_create")
        if engine not in self.live_engines or experts not in self.live_experts or router not in self.live_routers:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
        else:
            assert status == (_lib.MORAGENT_OK if self.live_routers[router].count == self.live_experts[experts]
                              else _lib.MORAGENT_ERROR_INVALID_ARGUMENT)
        if status != _lib.MORAGENT_OK:
            assert out.value is None
            return 0
        self._born(out.value, set())
        self.live_policies[out.value] = {"router": self.live_routers[router], "episodes": {}}
        return out.value

    @rule(target=results, policy=policies, episode=st.integers(-1, 2), observation=texts, goal=texts,
          behaviour=st.sampled_from(BEHAVIOURS))
    def step(self, policy, episode, observation, goal, behaviour):
        model = self.live_policies.get(policy)
        callback = model and model["router"].callback()
        if callback:
            callback.cell[0] = behaviour
        out = ctypes.c_void_p(1)
        status = expect(_lib.moragent_policy_step(policy, episode, observation, goal, ctypes.byref(out)),
                        "moragent_policy_step")
        event(f"moragent_policy_step: {_lib.moragent_status_string(status).decode()}")
        if model is None:
            expected = _lib.MORAGENT_ERROR_INVALID_HANDLE
        elif not (_is_utf8(c_text(observation)) and _is_utf8(c_text(goal))):
            expected = _lib.MORAGENT_ERROR_INVALID_ARGUMENT
        elif model["episodes"].get(episode) == "ended":
            expected = _lib.MORAGENT_ERROR_INVALID_ARGUMENT
        elif not model["router"].decides(episode):
            expected = _lib.MORAGENT_ERROR_CALLBACK
        else:
            expected = _lib.MORAGENT_OK
        assert status == expected
        if status != _lib.MORAGENT_OK:
            assert out.value is None
            return 0
        model["episodes"][episode] = "running"
        self._born(out.value, self.live_results)
        return out.value

    @rule(result=results)
    def read_result(self, result):
        expert, valid = ctypes.c_int32(), ctypes.c_int32()
        status = expect(_lib.moragent_step_result_expert(result, ctypes.byref(expert)), "moragent_step_result_expert")
        assert status == (_lib.MORAGENT_OK if result in self.live_results else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        if status != _lib.MORAGENT_OK:
            return
        probabilities, ids, logprobs = (ctypes.POINTER(ctypes.c_float)(), ctypes.POINTER(ctypes.c_int32)(),
                                        ctypes.POINTER(ctypes.c_float)())
        count, id_count, logprob_count = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        text, length = ctypes.POINTER(ctypes.c_char)(), ctypes.c_size_t()
        expect(_lib.moragent_step_result_probabilities(result, ctypes.byref(probabilities), ctypes.byref(count)),
               "moragent_step_result_probabilities")
        expect(_lib.moragent_step_result_ids(result, ctypes.byref(ids), ctypes.byref(id_count)), "moragent_step_result_ids")
        expect(_lib.moragent_step_result_logprobs(result, ctypes.byref(logprobs), ctypes.byref(logprob_count)),
               "moragent_step_result_logprobs")
        expect(_lib.moragent_step_result_action(result, ctypes.byref(text), ctypes.byref(length)),
               "moragent_step_result_action")
        expect(_lib.moragent_step_result_action_valid(result, ctypes.byref(valid)), "moragent_step_result_action_valid")
        weights = probabilities[:count.value]
        assert -1 <= expert.value < max(count.value, 1) and all(0 <= w <= 1 for w in weights)
        assert expert.value == -1 or weights[expert.value] == 1
        assert id_count.value == logprob_count.value <= 2 and all(0 <= i < VOCABULARY for i in ids[:id_count.value])
        ctypes.string_at(text, length.value).decode("utf-8")
        assert valid.value in (0, 1)

    @rule(result=results)
    def free_result(self, result):
        status = expect(_lib.moragent_step_result_free(result), "moragent_step_result_free")
        assert status == (_lib.MORAGENT_OK if result in self.live_results or not result
                          else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        self._freed(result, self.live_results, status)

    @rule(policy=policies, episode=st.integers(-1, 2), reward=st.floats(allow_nan=True, allow_infinity=True),
          success=st.booleans())
    def end_episode(self, policy, episode, reward, success):
        status = expect(_lib.moragent_policy_end_episode(policy, episode, reward, int(success)),
                        "moragent_policy_end_episode")
        model = self.live_policies.get(policy)
        if model is None:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
            return
        running = model["episodes"].get(episode) == "running"
        assert status == (_lib.MORAGENT_OK if running and math.isfinite(reward) else _lib.MORAGENT_ERROR_INVALID_ARGUMENT)
        if status == _lib.MORAGENT_OK:
            model["episodes"][episode] = "ended"
            model["router"].forget(episode)

    @rule(policy=policies, capacity=st.integers(0, 300), clear=st.booleans())
    def trace(self, policy, capacity, clear):
        buffer = ctypes.create_string_buffer(max(capacity, 1))
        length = ctypes.c_size_t()
        status = expect(_lib.moragent_policy_trace_jsonl(policy, buffer, capacity, ctypes.byref(length)),
                        "moragent_policy_trace_jsonl")
        model = self.live_policies.get(policy)
        if model is None:
            assert status == _lib.MORAGENT_ERROR_INVALID_HANDLE
            return
        assert status == (_lib.MORAGENT_OK if length.value < capacity else _lib.MORAGENT_ERROR_BUFFER_TOO_SMALL)
        if status == _lib.MORAGENT_OK:
            lines = [json.loads(line) for line in buffer.raw[:length.value].decode("utf-8").split("\n") if line]
            ended = {e for e, state in model["episodes"].items() if state == "ended"}
            assert {line["episode"] for line in lines} == ended and len(lines) == len(ended)
        if clear:
            assert expect(_lib.moragent_policy_clear_ended(policy), "moragent_policy_clear_ended") == _lib.MORAGENT_OK
            model["episodes"] = {e: s for e, s in model["episodes"].items() if s == "running"}

    @rule(policy=policies)
    def free_policy(self, policy):
        status = expect(_lib.moragent_policy_free(policy), "moragent_policy_free")
        assert status == (_lib.MORAGENT_OK if policy in self.live_policies or not policy
                          else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        self._freed(policy, self.live_policies, status)

    @rule(router=routers, policy=policies)
    def mistyped_handles(self, router, policy):
        # A freed handle's address may be reused by a new object of the other kind (the header
        # calls detection best effort); then the call is right to succeed.
        count = ctypes.c_size_t()
        status = expect(_lib.moragent_experts_count(router, ctypes.byref(count)), "moragent_experts_count",
                        ok_allowed=router in self.live_experts)
        assert status == (_lib.MORAGENT_OK if router in self.live_experts else _lib.MORAGENT_ERROR_INVALID_HANDLE)
        status = expect(_lib.moragent_router_expert_count(policy, ctypes.byref(count)), "moragent_router_expert_count",
                        ok_allowed=policy in self.live_routers)
        assert status == (_lib.MORAGENT_OK if policy in self.live_routers else _lib.MORAGENT_ERROR_INVALID_HANDLE)

    @invariant()
    def live_sets_are_disjoint(self):
        kinds = [self.live_engines, self.live_generations, set(self.live_experts), set(self.live_routers),
                 set(self.live_policies), self.live_results]
        for i, a in enumerate(kinds):
            assert not (self.dead & a)
            for b in kinds[i + 1:]:
                assert not (a & b)

    def teardown(self):
        for engine in self.live_engines:
            assert _lib.moragent_engine_free(engine) == _lib.MORAGENT_OK
        for generation in self.live_generations:
            assert _lib.moragent_generation_free(generation) == _lib.MORAGENT_OK
        for policy in self.live_policies:
            assert _lib.moragent_policy_free(policy) == _lib.MORAGENT_OK
        for result in self.live_results:
            assert _lib.moragent_step_result_free(result) == _lib.MORAGENT_OK
        for router in self.live_routers:
            assert _lib.moragent_router_free(router) == _lib.MORAGENT_OK
        for experts in self.live_experts:
            assert _lib.moragent_experts_free(experts) == _lib.MORAGENT_OK


def _is_utf8(data):
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


RawCalls.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None, database=None,
                                      suppress_health_check=[HealthCheck.too_slow])
TestRawCalls = RawCalls.TestCase
