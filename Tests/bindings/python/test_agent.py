"""The 0.2 API from Python: expert sets, the routers (fixed, phase, trajectory, a custom router
written in Python through the callback), router plugins, and policies stepping episodes."""

import ctypes
import doctest
import gc
import math
import os
import threading

import numpy as np
import pytest

import moragent
from moragent import _lib
from conftest import ADAPTERS, MODELS, QWEN2

FAST = dict(max_new_tokens=4, temperature=0.0, ignore_eos=True)  # quick, repeatable steps
HALL = "You are in the hall."


def alternating(features):
    return [1.0, 0.0] if features.step % 2 == 0 else [0.0, 1.0]


@pytest.fixture(scope="module")
def peft(engine):
    """The fixture PEFT adapters expert0 and expert1 (non-zero B)."""
    with moragent.ExpertSet(engine) as experts:
        experts.load_peft(os.path.join(ADAPTERS, "expert0"))
        experts.load_peft(os.path.join(ADAPTERS, "expert1"))
        yield experts


def run(policy, episode, steps, observation=HALL):
    return [policy.step(episode, observation, "find the key") for _ in range(steps)]


def test_the_module_example_runs():
    assert doctest.testmod(moragent).failed == 0


# ---- expert sets --------------------------------------------------------------------------

def test_expert_sets_create_load_and_save_peft(engine, tmp_path):
    with moragent.ExpertSet(engine, 2, rank=4, alpha=8, use_rslora=True, target_modules=list(moragent.MODULES),
                            seed=3) as experts:
        assert len(experts) == 2
        assert experts.load_peft(os.path.join(ADAPTERS, "expert0")) == 2
        assert len(experts) == 3
        experts.save_peft(2, tmp_path / "saved")
        with open(os.path.join(ADAPTERS, "expert0", "adapter_model.safetensors"), "rb") as original:
            assert (tmp_path / "saved" / "adapter_model.safetensors").read_bytes() == original.read()
        experts.save_peft(0, str(tmp_path / "created"))
        assert (tmp_path / "created" / "adapter_config.json").exists()
    assert experts.closed
    with moragent.ExpertSet(engine) as empty:
        assert len(empty) == 0
        assert empty.load_peft(tmp_path / "created") == 0


@pytest.mark.parametrize("make,error,fragment", [
    (lambda e: moragent.ExpertSet(e, 1, rank=0), moragent.InvalidArgumentError, "rank"),
    (lambda e: moragent.ExpertSet(e, 1, rank=-1), moragent.InvalidArgumentError, "rank"),
    (lambda e: moragent.ExpertSet(e, 1, alpha=math.nan), moragent.InvalidArgumentError, "alpha"),
    (lambda e: moragent.ExpertSet(e, 1, target_modules=[]), moragent.InvalidArgumentError, "target_modules"),
    (lambda e: moragent.ExpertSet(e, 1, target_modules=["lm_head"]), moragent.InvalidArgumentError, "lm_head"),
    (lambda e: moragent.ExpertSet(e, 70000), moragent.InvalidArgumentError, "65536"),
    (lambda e: moragent.ExpertSet(e).load_peft("/no/such/adapter"), moragent.ModelIOError, "/no/such/adapter"),
    (lambda e: moragent.ExpertSet(e).load_peft(QWEN2 + "\0x"), moragent.InvalidArgumentError, "NUL"),
    (lambda e: moragent.ExpertSet(e, 1).save_peft(1, "/tmp/x"), moragent.InvalidArgumentError, "index"),
    (lambda e: moragent.ExpertSet(e, 1).save_peft(-1, "/tmp/x"), moragent.InvalidArgumentError, "index"),
])
def test_expert_set_errors(engine, make, error, fragment):
    with pytest.raises(error) as raised:
        make(engine)
    assert fragment in raised.value.message


def test_experts_of_another_model_are_refused(engine):
    with moragent.Engine(os.path.join(MODELS, "llama-tiny")) as llama, moragent.ExpertSet(llama, 1) as experts:
        with pytest.raises(moragent.InvalidArgumentError):
            experts.load_peft(os.path.join(ADAPTERS, "expert0"))
        with pytest.raises(moragent.InvalidArgumentError) as raised:
            moragent.Policy(engine, experts, moragent.FixedRouter(1, 0))
        assert "does not fit" in raised.value.message


# ---- routes change generation; fixed routers -----------------------------------------------

def test_fixed_routes_reach_the_experts(engine, peft):
    base = moragent.Policy(engine, peft, moragent.FixedRouter(2, None), **FAST).step(0, HALL, "find the key")
    first = moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **FAST).step(0, HALL, "find the key")
    second = moragent.Policy(engine, peft, moragent.FixedRouter(2, 1), **FAST).step(0, HALL, "find the key")
    assert (base.expert, first.expert, second.expert) == (None, 0, 1)
    assert base.probabilities == [0.0, 0.0] and second.probabilities == [0.0, 1.0]
    # The fixture adapters move every log-probability (too little to change four greedy tokens).
    assert base.logprobs != first.logprobs != second.logprobs
    with moragent.ExpertSet(engine, 2) as fresh:  # B = 0: the base model exactly
        assert moragent.Policy(engine, fresh, moragent.FixedRouter(2, 1), **FAST).step(0, HALL, "find the key").logprobs \
            == base.logprobs
    assert len(first.ids) == len(first.logprobs) == 4 and all(lp <= 0 for lp in first.logprobs)
    assert first.routing_seconds >= 0 and first.generation_seconds > 0 and not first.action_valid
    assert "find the key" in engine.detokenize(first.prompt_ids)
    # Without <action></action> the action is the response's last 30 characters, trimmed.
    assert first.action and first.action == first.response[-30:].strip()


@pytest.mark.parametrize("expert_count,expert", [(2, 2), (2, -2), (0, 0), (70000, None)])
def test_fixed_router_errors(expert_count, expert):
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.FixedRouter(expert_count, expert)


# ---- a custom router written in Python -----------------------------------------------------

def test_a_python_router_alternates_experts_and_the_trace_counts_switches(engine, peft):
    seen = []

    def route(features):
        seen.append(features)
        return alternating(features)
    with moragent.CallbackRouter(2, route) as router, moragent.Policy(engine, peft, router, **FAST) as policy:
        assert router.expert_count == 2
        assert [r.expert for r in run(policy, 7, 4)] == [0, 1, 0, 1]
        policy.end_episode(7, reward=0.5, success=True)
        assert policy.trace() == [{"episode": 7, "steps": 4, "experts": [0, 1, 0, 1], "switches": 3, "reward": 0.5,
                                   "success": True}]
    assert seen[-1] == moragent.StepFeatures(episode=7, step=3, observation=HALL, goal="find the key", history_count=3)
    assert policy.closed and router.closed


def test_a_python_router_may_return_numpy_arrays_mixtures_and_nothing(engine, peft):
    answers = iter([np.array([0.0, 2.0], dtype=np.float32), np.array([1.0, 3.0]), (0, 0)])
    policy = moragent.Policy(engine, peft, moragent.CallbackRouter(2, lambda f: next(answers)), **FAST)
    hard, mixture, base = run(policy, 0, 3)
    assert hard.expert == 1 and hard.probabilities == [0.0, 1.0]
    assert mixture.expert is None and mixture.probabilities == [0.25, 0.75]
    assert base.expert is None and base.probabilities == [0.0, 0.0]
    policy.end_episode(0, 1.0, True)
    assert policy.trace()[0]["experts"] == [1, None, None]


def test_an_exception_in_a_python_router_is_raised_from_step_and_takes_no_step(engine, peft):
    calls = []

    def route(features):
        calls.append(features.step)
        if len(calls) == 1:
            raise KeyError("no such room")
        return [1.0, 0.0]
    policy = moragent.Policy(engine, peft, moragent.CallbackRouter(2, route), **FAST)
    with pytest.raises(KeyError):
        policy.step(0, HALL, "g")
    assert policy.step(0, HALL, "g").expert == 0
    assert calls == [0, 0]  # the failed step left the episode at step 0


@pytest.mark.parametrize("answer,error,fragment", [
    ([math.nan, 0.0], moragent.CallbackError, "nan"),
    ([0.0, -1.0], moragent.CallbackError, "-1.0 as the weight of expert 1"),
    ([math.inf, 0.0], moragent.CallbackError, "inf"),
    ([1.0], ValueError, "1 weights for 2 experts"),
    (None, TypeError, ""),
])
def test_bad_weights_from_a_python_router_raise(engine, peft, answer, error, fragment):
    policy = moragent.Policy(engine, peft, moragent.CallbackRouter(2, lambda f: answer), **FAST)
    with pytest.raises(error) as raised:
        policy.step(0, HALL, "g")
    assert fragment in str(raised.value)
    if error is moragent.CallbackError:
        assert raised.value.status == _lib.MORAGENT_ERROR_CALLBACK
        assert raised.value.message.startswith("moragent_policy_step: the router callback wrote")


def test_a_python_router_lives_as_long_as_its_policy(engine, peft):
    policy = moragent.Policy(engine, peft, moragent.CallbackRouter(2, alternating), **FAST)
    gc.collect()
    assert [r.expert for r in run(policy, 0, 2)] == [0, 1]
    policy.router.close()  # the caller's handle only: the policy keeps the router
    gc.collect()
    assert policy.step(0, HALL, "g").expert == 0
    with pytest.raises(moragent.InvalidHandleError):
        policy.router.expert_count


def test_a_policy_is_busy_while_its_router_runs(engine, peft):
    outcome = {}
    inside, release = threading.Event(), threading.Event()

    def route(features):
        if features.episode == 1:  # re-enter from the callback
            try:
                policy.step(2, "again", "g")
            except moragent.BusyError as error:
                outcome["reentered"] = error
        if features.episode == 3:  # hold the policy while another thread calls it
            inside.set()
            release.wait(30)
        return [1.0, 0.0]
    policy = moragent.Policy(engine, peft, moragent.CallbackRouter(2, route), **FAST)
    policy.step(1, "o", "g")
    assert outcome["reentered"].status == _lib.MORAGENT_ERROR_BUSY
    thread = threading.Thread(target=lambda: outcome.setdefault("thread", policy.step(3, "o", "g")))
    thread.start()
    assert inside.wait(30)
    with pytest.raises(moragent.BusyError) as raised:
        policy.step(4, "o", "g")
    assert "in use" in raised.value.message
    with pytest.raises(moragent.BusyError):
        policy.trace()
    release.set()
    thread.join(30)
    assert outcome["thread"].expert == 0
    assert policy.step(4, "o", "g").expert == 0


# ---- phase and trajectory routers ----------------------------------------------------------

SMALL_PHASE = dict(attention_dim=16, attention_heads=2, lstm_hidden=8, lstm_layers=2, mlp_hidden=8)


def test_phase_routers_route_save_and_load(engine, peft, tmp_path):
    router = moragent.PhaseRouter(engine.info.hidden_size, 2, seed=3, **SMALL_PHASE)
    assert router.expert_count == 2
    router.save(tmp_path / "phase.safetensors")
    loaded = moragent.PhaseRouter.load(tmp_path / "phase.safetensors")
    assert isinstance(loaded, moragent.PhaseRouter) and loaded.expert_count == 2
    original, again = (moragent.Policy(engine, peft, r, **FAST) for r in (router, loaded))
    for observation in ("You are in the hall.", "A locked door.", "The kitchen has a drawer."):
        a, b = original.step(0, observation, "find the key"), again.step(0, observation, "find the key")
        assert a.probabilities == b.probabilities and a.expert == b.expert
        assert sum(a.probabilities) == pytest.approx(1.0) and a.expert == int(np.argmax(a.probabilities))


@pytest.mark.parametrize("options,fragment", [
    (dict(attention_heads=3), "multiple"), (dict(lstm_layers=0), "positive"), (dict(history_length=5000), "4096"),
    (dict(initial_temperature=math.nan), "temperature"), (dict(attention_dim=2 ** 40), "65536"),
])
def test_phase_router_errors(engine, options, fragment):
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        moragent.PhaseRouter(engine.info.hidden_size, 2, **{**SMALL_PHASE, **options})
    assert fragment in raised.value.message


def test_a_phase_router_of_another_width_is_refused(engine, peft, tmp_path):
    narrow = moragent.PhaseRouter(32, 2, **SMALL_PHASE)
    for router in (narrow, moragent.TrajectoryRouter(narrow)):
        with pytest.raises(moragent.InvalidArgumentError) as raised:
            moragent.Policy(engine, peft, router)
        assert "hidden size 32" in raised.value.message
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.FixedRouter(2, 0)._handle.save_phase(str(tmp_path / "x").encode())
    (tmp_path / "garbage.safetensors").write_bytes(b"\x02\0\0\0\0\0\0\0{}")
    with pytest.raises(moragent.MalformedFileError):
        moragent.PhaseRouter.load(tmp_path / "garbage.safetensors")


def test_a_trajectory_router_keeps_the_first_choice_of_each_episode(engine, peft):
    calls = []

    def by_episode(features):
        calls.append(features.episode)
        return [1.0, 0.0] if features.episode % 2 == 0 else [0.0, 1.0]
    router = moragent.TrajectoryRouter(moragent.CallbackRouter(2, by_episode))
    router.inner.close()  # the trajectory router holds its own reference
    policy = moragent.Policy(engine, peft, router, **FAST)
    assert [r.expert for r in run(policy, 1, 3)] == [1, 1, 1]
    assert [r.expert for r in run(policy, 2, 2)] == [0, 0]
    assert calls == [1, 2]


# ---- plugins -------------------------------------------------------------------------------

def test_a_plugin_router_cycles_as_configured(engine, plugins):
    with moragent.ExpertSet(engine, 3, rank=4) as experts:
        router = moragent.Router.from_kind("round_robin", {"period": 2}, 3)
        assert router.expert_count == 3
        policy = moragent.Policy(engine, experts, router, **FAST)
        assert [r.expert for r in run(policy, 0, 6)] == [0, 0, 1, 1, 2, 2]
        policy.end_episode(0, 1.0, True)
        assert policy.trace()[0]["switches"] == 2
        every_step = moragent.Policy(engine, experts, moragent.Router.from_kind("round_robin", None, 3), **FAST)
        assert [r.expert for r in run(every_step, 0, 4)] == [0, 1, 2, 0]


@pytest.mark.parametrize("name,config,fragment", [
    ("round_robin", {"period": 0}, "\"period\" must be an integer"),
    ("round_robin", {"period": 1.5}, "\"period\" must be an integer"),
    ("no_such_kind", None, "registered: round_robin, test_probe"),
    ("test_probe", {"mode": "refuse"}, "refused as asked"),
])
def test_plugin_router_errors(plugins, name, config, fragment):
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        moragent.Router.from_kind(name, config, 2)
    assert fragment in raised.value.message


def test_plugin_configs_must_be_json(plugins):
    with pytest.raises(ValueError):
        moragent.Router.from_kind("round_robin", {"period": math.nan}, 2)  # json.dumps refuses NaN
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        moragent._handles.RouterHandle.kind(b"round_robin", b"{\"period\": ", 2)
    assert "not well-formed JSON" in raised.value.message


def test_broken_plugins_fail_with_a_clear_message(engine, plugins, tmp_path):
    with pytest.raises(moragent.UnsupportedError) as raised:
        moragent.load_plugin(plugins.wrong_version)
    assert "test_plugin_WRONG_VERSION.so" in raised.value.message and "plugin API version 999" in raised.value.message
    with pytest.raises(moragent.ModelIOError):
        moragent.load_plugin(tmp_path / "missing.so")
    with pytest.raises(moragent.MalformedFileError):
        moragent.load_plugin(os.path.join(QWEN2, "config.json"))
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        moragent.load_plugin(plugins.round_robin)
    assert "already loaded" in raised.value.message
    assert moragent.Router.from_kind("round_robin", {"period": 3}, 2).expert_count == 2


def test_the_library_tells_a_plugin_about_episodes_and_destroys_its_state(engine, peft, plugins):
    probe = ctypes.CDLL(plugins.probe)  # the same loaded library: its counters
    probe.test_probe_last_ended.restype = ctypes.c_longlong
    live = probe.test_probe_live_states()
    router = moragent.Router.from_kind("test_probe", {"mode": "ok"}, 2)
    policy = moragent.Policy(engine, peft, moragent.TrajectoryRouter(router), **FAST)
    assert probe.test_probe_live_states() == live + 1
    assert [r.expert for r in run(policy, 41, 2)] == [0, 0]
    ended = probe.test_probe_ended_episodes()
    policy.end_episode(41, 1.0, True)
    assert probe.test_probe_ended_episodes() == ended + 1 and probe.test_probe_last_ended() == 41
    router.close()
    assert probe.test_probe_live_states() == live + 1  # the policy still holds it
    policy.close()
    policy.router.close()
    assert probe.test_probe_live_states() == live
    failing = moragent.Policy(engine, peft, moragent.Router.from_kind("test_probe", {"mode": "fail"}, 2), **FAST)
    with pytest.raises(moragent.CallbackError) as raised:
        failing.step(0, HALL, "g")
    assert 'decide function of router kind "test_probe"' in raised.value.message


# ---- policies ------------------------------------------------------------------------------

def test_templates_history_and_chatml_shape_the_prompt(engine, peft):
    options = dict(FAST, first_step_template="FIRST goal={goal} obs={observation}",
                   later_step_template="LATER {step}/{step_count} [{history}] obs={observation}",
                   history_entry_template="({k}:{observation})", history_length=1)
    policy = moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **options)
    first, _, third = (policy.step(0, o, "key") for o in ("hall", "kitchen", "garden"))
    assert engine.detokenize(first.prompt_ids) == "FIRST goal=key obs=hall"
    assert engine.detokenize(third.prompt_ids) == "LATER 3/2 [(2:kitchen)] obs=garden"
    chat = moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **dict(options, chatml=True))
    assert engine.detokenize(chat.step(0, "hall", "key").prompt_ids) == \
        "<|im_start|>user\nFIRST goal=key obs=hall<|im_end|>\n<|im_start|>assistant\n"


def test_default_sampling_and_repeatable_steps(engine, peft):
    a, b = (moragent.Policy(engine, peft, moragent.FixedRouter(2, 1)) for _ in range(2))
    first, second = a.step(3, HALL, "g"), b.step(3, HALL, "g")
    assert first.ids == second.ids and first.logprobs == second.logprobs and 1 <= len(first.ids) <= 64
    assert moragent.Policy(engine, peft, moragent.FixedRouter(2, 1), seed=1).step(3, HALL, "g").ids != first.ids


def test_episode_life_cycle_and_errors(engine, peft):
    policy = moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **FAST)
    run(policy, 0, 2)
    run(policy, 1, 1)
    for reward in (math.nan, math.inf, -math.inf):
        with pytest.raises(moragent.InvalidArgumentError):
            policy.end_episode(0, reward, True)
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        policy.end_episode(5, 1.0, True)
    assert "has taken no step" in raised.value.message
    policy.end_episode(0, -2.5, False)
    with pytest.raises(moragent.InvalidArgumentError):
        policy.end_episode(0, 1.0, True)
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        policy.step(0, HALL, "g")
    assert "has ended" in raised.value.message
    assert policy.trace() == [{"episode": 0, "steps": 2, "experts": [0, 0], "switches": 0, "reward": -2.5,
                               "success": False}]
    policy.clear_ended()
    assert policy.trace() == []
    assert len(policy.step(0, HALL, "g").ids) == 4  # a cleared number starts a new episode
    policy.end_episode(1, 1.0, True)  # a running episode survived clearing
    for observation, fragment in (("a\0b", "NUL"), ("\ud800", "UTF-8"), (b"\xff", "UTF-8")):
        with pytest.raises(moragent.InvalidArgumentError) as raised:
            policy.step(9, observation, "g")
        assert fragment in raised.value.message
    with pytest.raises(moragent.InvalidArgumentError):
        policy.step(2 ** 63, HALL, "g")


def test_a_batch_of_steps_equals_one_step_per_episode(engine, peft):
    def make():
        router = moragent.PhaseRouter(engine.info.hidden_size, 2, attention_dim=8, attention_heads=2, lstm_hidden=4,
                                      lstm_layers=1, history_length=2, mlp_hidden=4, seed=3)
        return moragent.Policy(engine, peft, router, temperature=1.0, max_new_tokens=5, ignore_eos=True, seed=7)
    alone, batched = make(), make()
    for t in range(2):
        steps = [(20 + e, HALL if (t + e) % 2 else "You see a locked door and a key.", f"find key {e}") for e in range(3)]
        one = [alone.step(*s) for s in steps]
        many = batched.step_batch(steps)
        assert [r.ids for r in one] == [r.ids for r in many]
        assert [r.expert for r in one] == [r.expert for r in many]
        assert [r.prompt_ids for r in one] == [r.prompt_ids for r in many]
        assert np.allclose([r.logprobs for r in one], [r.logprobs for r in many], atol=1e-4)
    assert batched.recorded_steps == alone.recorded_steps == 6


def test_a_bad_batch_raises_and_changes_no_episode(engine, peft):
    policy = moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **FAST)
    assert len(policy.step_batch([(1, HALL, "g"), (2, HALL, "g")])) == 2
    policy.end_episode(1, 0.0, False)
    for steps, fragment in (([], "no steps"), ([(3, HALL, "g"), (3, HALL, "g")], "twice"),
                            ([(3, HALL, "g"), (1, HALL, "g")], "has ended"), ([(3, HALL, "g"), (4, "a\0b", "g")], "NUL")):
        with pytest.raises(moragent.InvalidArgumentError) as raised:
            policy.step_batch(steps)
        assert fragment in raised.value.message
    assert policy.recorded_steps == 2
    assert len(policy.step(3, HALL, "g").ids) == 4  # and the policy still steps


def test_policy_settings_are_checked(engine, peft):
    for options in (dict(temperature=math.nan), dict(top_p=0.0), dict(history_length=-1), dict(stop=[""]),
                    dict(first_step_template="\ud800"), dict(later_step_template="a\0b")):
        with pytest.raises(moragent.InvalidArgumentError):
            moragent.Policy(engine, peft, moragent.FixedRouter(2, 0), **options)
    with pytest.raises(moragent.InvalidArgumentError) as raised:
        moragent.Policy(engine, peft, moragent.FixedRouter(3, 0))
    assert "3 experts but the set has 2" in raised.value.message


def test_policies_keep_what_they_were_made_from(peft):
    engine = moragent.Engine(QWEN2)
    experts = moragent.ExpertSet(engine, 1, rank=4)
    router = moragent.FixedRouter(1, 0)
    policy = moragent.Policy(engine, experts, router, **FAST)
    experts.load_peft(os.path.join(ADAPTERS, "expert0"))  # the policy took the set as it was
    for owner in (engine, experts, router):
        owner.close()
    assert policy.step(0, HALL, "g").expert == 0
    policy.close()
    with pytest.raises(moragent.InvalidHandleError):
        policy.step(0, HALL, "g")
