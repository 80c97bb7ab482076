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
