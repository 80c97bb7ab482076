"""The owning wrappers free their C handle exactly once: on close, on leaving `with`, or when
collected. Freed handles are observed through the raw layer, which then reports them dead."""

import ctypes
import gc

import moragent
from moragent import _lib
from moragent._handles import EngineHandle, generation_params
from conftest import QWEN2


def _engine_is_live(address):
    info = _lib.moragent_engine_info(struct_size=ctypes.sizeof(_lib.moragent_engine_info))
    return _lib.moragent_engine_get_info(address, ctypes.byref(info)) == _lib.MORAGENT_OK


def _generation_is_live(address):
    count = ctypes.c_size_t()
    return _lib.moragent_generation_token_count(address, ctypes.byref(count)) == _lib.MORAGENT_OK


def test_engine_context_manager_frees():
    with moragent.Engine(QWEN2) as engine:
        address = engine._handle.address
        assert _engine_is_live(address)
    assert engine.closed
    assert not _engine_is_live(address)


def test_engine_is_freed_when_collected():
    handle = EngineHandle.load(QWEN2.encode())
    address = handle.address
    assert _engine_is_live(address)
    del handle
    gc.collect()
    assert not _engine_is_live(address)


def test_generation_handles_are_freed(engine):
    params, keep = generation_params(4, 0.0, 0, 1.0, 0, [], None, True)
    with engine._handle.generate([5, 6, 7], params) as generation:
        address = generation.address
        assert _generation_is_live(address)
        assert generation.token_count() == 4
    assert not _generation_is_live(address)

    generation = engine._handle.generate([5, 6, 7], params)
    address = generation.address
    del generation
    gc.collect()
    assert not _generation_is_live(address)


def test_generate_leaves_no_generation_behind(engine, monkeypatch):
    made = []
    original = EngineHandle.generate

    def spy(self, *args, **kwargs):
        handle = original(self, *args, **kwargs)
        made.append(handle)
        return handle
    monkeypatch.setattr(EngineHandle, "generate", spy)
    engine.generate("go to", max_new_tokens=3)
    assert len(made) == 1 and made[0].closed


def _live(call, address, *out_types):
    outs = [t() for t in out_types]
    return call(address, *(ctypes.byref(o) for o in outs)) == _lib.MORAGENT_OK


def _experts_live(address):
    return _live(_lib.moragent_experts_count, address, ctypes.c_size_t)


def _router_live(address):
    return _live(_lib.moragent_router_expert_count, address, ctypes.c_size_t)


def _policy_live(address):
    return _lib.moragent_policy_clear_ended(address) == _lib.MORAGENT_OK


def _result_live(address):
    return _live(_lib.moragent_step_result_expert, address, ctypes.c_int32)


def test_0_2_objects_free_their_handles_on_close_and_collection(engine):
    experts = moragent.ExpertSet(engine, 1, rank=4)
    router = moragent.CallbackRouter(1, lambda features: [1.0])
    policy = moragent.Policy(engine, experts, router, max_new_tokens=2)
    addresses = [(experts._handle.address, _experts_live), (router._handle.address, _router_live),
                 (policy._handle.address, _policy_live)]
    assert all(live(address) for address, live in addresses)
    with experts, router, policy:
        pass
    assert not any(live(address) for address, live in addresses)

    experts = moragent.ExpertSet(engine, 1, rank=4)
    router = moragent.FixedRouter(1, 0)
    policy = moragent.Policy(engine, experts, router, max_new_tokens=2)
    addresses = [(experts._handle.address, _experts_live), (router._handle.address, _router_live),
                 (policy._handle.address, _policy_live)]
    del experts, router, policy
    gc.collect()
    assert not any(live(address) for address, live in addresses)


def test_step_leaves_no_result_behind(engine, monkeypatch):
    from moragent._handles import PolicyHandle
    made = []
    original = PolicyHandle.step

    def spy(self, *args, **kwargs):
        handle = original(self, *args, **kwargs)
        made.append(handle.address)
        return handle
    monkeypatch.setattr(PolicyHandle, "step", spy)
    with moragent.ExpertSet(engine, 1, rank=4) as experts:
        moragent.Policy(engine, experts, moragent.FixedRouter(1, 0), max_new_tokens=2).step(0, "o", "g")
    assert len(made) == 1 and not _result_live(made[0])


def test_a_trajectory_router_keeps_its_inner_python_router(engine):
    trajectory = moragent.TrajectoryRouter(moragent.CallbackRouter(1, lambda features: [1.0]))
    gc.collect()
    with moragent.ExpertSet(engine, 1, rank=4) as experts:
        assert moragent.Policy(engine, experts, trajectory, max_new_tokens=2).step(0, "o", "g").expert == 0
