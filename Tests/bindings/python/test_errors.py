"""Every failure surfaces as the MoRAgentError subclass of its status, with the library's
message, and leaves the engine usable."""

import ctypes
import json
import math
import os
import shutil

import pytest

import moragent
from moragent import _lib
from conftest import QWEN2


def _broken_folder(tmp_path, name, edit):
    folder = tmp_path / name
    folder.mkdir()
    with open(os.path.join(QWEN2, "config.json")) as f:
        config = json.load(f)
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_missing_folder(tmp_path):
    with pytest.raises(moragent.ModelIOError) as raised:
        moragent.Engine(tmp_path / "nowhere")
    assert raised.value.status == _lib.MORAGENT_ERROR_IO
    assert "nowhere" in raised.value.message and raised.value.message.startswith("moragent_engine_load: ")


def test_broken_config(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"], "hidden_size": ')
    with pytest.raises(moragent.MalformedFileError) as raised:
        moragent.Engine(folder)
    assert raised.value.status == _lib.MORAGENT_ERROR_MALFORMED_FILE
    assert "config.json" in str(raised.value)


def test_unsupported_architecture(tmp_path):
    folder = _broken_folder(tmp_path, "gpt2", lambda c: c.update(architectures=["GPT2LMHeadModel"]))
    with pytest.raises(moragent.UnsupportedError) as raised:
        moragent.Engine(folder)
    assert "GPT2LMHeadModel" in raised.value.message


def test_truncated_weights(tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(QWEN2, folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(moragent.MalformedFileError) as raised:
        moragent.Engine(folder)
    assert "model.safetensors" in raised.value.message


@pytest.mark.parametrize("call,fragment", [
    (lambda e: e.tokenize(b"ab\xff"), "UTF-8"),
    (lambda e: e.tokenize("\ud800"), "UTF-8"),
    (lambda e: e.generate([]), "prompt"),
    (lambda e: e.generate([5, 512]), "vocabulary"),
    (lambda e: e.generate([5, -1]), "vocabulary"),
    (lambda e: e.generate([5, 2 ** 40]), "32-bit"),
    (lambda e: e.generate([5], temperature=math.nan), "temperature"),
    (lambda e: e.generate([5], temperature=math.inf), "temperature"),
    (lambda e: e.generate([5], temperature=-0.5), "temperature"),
    (lambda e: e.generate([5], top_p=math.nan), "top_p"),
    (lambda e: e.generate([5], top_p=0.0), "top_p"),
    (lambda e: e.generate([5], top_k=-1), "top_k"),
    (lambda e: e.generate([5], max_new_tokens=-1), "max_new_tokens"),
    (lambda e: e.generate([5], seed=-1), "seed"),
    (lambda e: e.generate([5], stop=[""]), "stop"),
    (lambda e: e.generate([5], stop=[b"\xc3("]), "UTF-8"),
    (lambda e: e.generate([5], stop=["a\0b"]), "NUL"),
    (lambda e: e.detokenize([1.5]), "32-bit"),
])
def test_invalid_arguments(engine, call, fragment):
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        call(engine)
    assert raised.value.status == _lib.MORAGENT_ERROR_INVALID_ARGUMENT
    assert fragment in raised.value.message
    assert isinstance(raised.value, ValueError)
    assert len(engine.generate([5], max_new_tokens=2, ignore_eos=True).ids) == 2


def test_a_closed_engine_raises_invalid_handle():
    engine = moragent.Engine(QWEN2)
    engine.close()
    engine.close()  # closing twice is harmless
    assert engine.closed
    with pytest.raises(moragent.InvalidHandleError) as raised:
        engine.tokenize("hello")
    assert raised.value.status == _lib.MORAGENT_ERROR_INVALID_HANDLE
    assert "NULL" in raised.value.message
    with pytest.raises(moragent.InvalidHandleError):
        engine.info


def test_raw_double_free_and_mistyped_handles(engine):
    out = ctypes.c_void_p()
    assert _lib.moragent_engine_load(QWEN2.encode(), ctypes.byref(out)) == _lib.MORAGENT_OK
    assert _lib.moragent_last_error() == b""
    assert _lib.moragent_engine_free(out.value) == _lib.MORAGENT_OK
    assert _lib.moragent_engine_free(out.value) == _lib.MORAGENT_ERROR_INVALID_HANDLE
    assert b"not a live moragent_engine" in _lib.moragent_last_error()
    count = ctypes.c_size_t()
    assert _lib.moragent_generation_token_count(engine._handle.address, ctypes.byref(count)) == _lib.MORAGENT_ERROR_INVALID_HANDLE
    assert b"moragent_generation" in _lib.moragent_last_error()


def test_raw_struct_size_is_checked():
    params = _lib.moragent_generation_params(struct_size=ctypes.sizeof(_lib.moragent_generation_params) - 1)
    assert _lib.moragent_generation_params_default(ctypes.byref(params)) == _lib.MORAGENT_ERROR_INVALID_ARGUMENT
    assert b"struct_size" in _lib.moragent_last_error()
    # The ctypes mirror has exactly the header's size: one byte less is refused, the size itself
    # accepted, and the defaults land in the fields of the same names.
    params.struct_size = ctypes.sizeof(_lib.moragent_generation_params)
    assert _lib.moragent_generation_params_default(ctypes.byref(params)) == _lib.MORAGENT_OK
    assert (params.max_new_tokens, params.top_p, params.top_k, params.ignore_eos) == (64, 1.0, 0, 0)
    info = _lib.moragent_engine_info(struct_size=ctypes.sizeof(_lib.moragent_engine_info) - 1)
    assert _lib.moragent_engine_get_info(None, ctypes.byref(info)) == _lib.MORAGENT_ERROR_INVALID_HANDLE


def test_status_strings():
    assert _lib.moragent_status_string(_lib.MORAGENT_ERROR_ABORTED) == b"aborted"
    assert _lib.moragent_status_string(-12345) == b"unknown status"


def test_errors_pickle_with_status_and_message():
    import pickle
    error = pickle.loads(pickle.dumps(moragent.AbortedError(-7, "stopped")))
    assert type(error) is moragent.AbortedError and error.status == -7 and error.message == "stopped"


@pytest.mark.parametrize("struct,fill", [
    (_lib.moragent_lora_params, _lib.moragent_lora_params_default),
    (_lib.moragent_phase_router_params, _lib.moragent_phase_router_params_default),
    (_lib.moragent_policy_params, _lib.moragent_policy_params_default),
])
def test_raw_0_2_struct_sizes_are_exact(struct, fill):
    # One byte less than the ctypes mirror is refused and its size accepted: the mirror has
    # exactly the size the library knows.
    params = struct(struct_size=ctypes.sizeof(struct) - 1)
    assert fill(ctypes.byref(params)) == _lib.MORAGENT_ERROR_INVALID_ARGUMENT
    assert b"struct_size" in _lib.moragent_last_error()
    params.struct_size = ctypes.sizeof(struct)
    assert fill(ctypes.byref(params)) == _lib.MORAGENT_OK


def test_raw_defaults_land_in_the_fields_of_their_names():
    lora = _lib.moragent_lora_params(struct_size=ctypes.sizeof(_lib.moragent_lora_params))
    _lib.moragent_lora_params_default(ctypes.byref(lora))
    assert (lora.rank, lora.alpha, lora.use_rslora, lora.target_modules) == \
        (32, 64.0, 0, _lib.MORAGENT_MODULE_Q | _lib.MORAGENT_MODULE_V)
    phase = _lib.moragent_phase_router_params(struct_size=ctypes.sizeof(_lib.moragent_phase_router_params))
    _lib.moragent_phase_router_params_default(ctypes.byref(phase))
    assert (phase.expert_count, phase.attention_dim, phase.attention_heads, phase.lstm_hidden, phase.lstm_layers,
            phase.history_length, phase.mlp_hidden, phase.pooled_goal, phase.initial_temperature,
            phase.final_temperature, phase.anneal_updates) == (4, 256, 4, 256, 3, 5, 256, 0, 2.0, 0.5, 3000)
    policy = _lib.moragent_policy_params(struct_size=ctypes.sizeof(_lib.moragent_policy_params))
    _lib.moragent_policy_params_default(ctypes.byref(policy))
    assert not policy.sampling and policy.first_step_template is None and policy.history_length == 5
    assert policy.chatml == 0


def test_the_plugin_vtable_mirrors_keep_the_versioned_prefix():
    # The library reads struct_size, then api_version, before anything that may change.
    assert _lib.moragent_router_kind.struct_size.offset == 0
    assert _lib.moragent_router_kind.api_version.offset == ctypes.sizeof(ctypes.c_size_t)
    assert _lib.moragent_plugin_registrar.api_version.offset == ctypes.sizeof(ctypes.c_size_t)
    assert ctypes.sizeof(_lib.moragent_router_kind) == 3 * 8 + 4 * ctypes.sizeof(ctypes.c_void_p)


def test_0_2_status_codes_have_names_and_classes():
    assert _lib.moragent_status_string(_lib.MORAGENT_ERROR_CALLBACK) == b"callback failed"
    assert _lib.moragent_status_string(_lib.MORAGENT_ERROR_BUSY) == b"busy"
    from moragent._errors import error_for
    assert type(error_for(-9, "m")) is moragent.CallbackError and type(error_for(-10, "m")) is moragent.BusyError
    assert type(error_for(-11, "m")) is moragent.MoRAgentError


def test_raw_handles_of_one_kind_are_refused_as_another(engine):
    out = ctypes.c_void_p()
    assert _lib.moragent_router_create_fixed(1, 0, ctypes.byref(out)) == _lib.MORAGENT_OK
    count = ctypes.c_size_t()
    assert _lib.moragent_experts_count(out.value, ctypes.byref(count)) == _lib.MORAGENT_ERROR_INVALID_HANDLE
    assert b"not a live moragent_experts" in _lib.moragent_last_error()
    assert _lib.moragent_policy_clear_ended(engine._handle.address) == _lib.MORAGENT_ERROR_INVALID_HANDLE
    assert _lib.moragent_router_free(out.value) == _lib.MORAGENT_OK
    assert _lib.moragent_router_free(out.value) == _lib.MORAGENT_ERROR_INVALID_HANDLE
