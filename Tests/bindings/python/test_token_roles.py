"""Token-level and Mixture-of-Roles routers (0.3) through the Python binding: creation, bad
arguments, policies stepping with them, per-token experts and roles, save/load."""

import os

import pytest

import moragent
from conftest import ADAPTERS, MODELS


@pytest.fixture(scope="module")
def experts(engine):
    with moragent.ExpertSet(engine) as s:
        for name in ("expert0", "expert1", "expert2"):
            s.load_peft(os.path.join(ADAPTERS, name))
        yield s


def test_token_router_bad_arguments(engine, experts):
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.TokenRouter(experts, 0)
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.TokenRouter(experts, 4)
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.TokenRouter(experts, -1)
    with moragent.ExpertSet(engine) as empty, pytest.raises(moragent.InvalidArgumentError):
        moragent.TokenRouter(empty, 1)


def test_token_routed_policy(engine, experts):
    with moragent.TokenRouter(experts, 2, per_layer=True, seed=7) as router:
        assert router.expert_count == 3
        with pytest.raises(moragent.InvalidArgumentError):
            moragent.TrajectoryRouter(router)
        results = []
        for _ in range(2):
            with moragent.Policy(engine, None, router, max_new_tokens=8, ignore_eos=True, seed=1) as policy:
                results.append(policy.step(0, "You are in the kitchen.", "heat an egg"))
                policy.end_episode(0, 1.0, True)
                trace = policy.trace()
        a, b = results
        assert a.ids == b.ids and a.token_experts == b.token_experts
        assert len(a.token_experts) == len(a.ids) == 8
        assert all(len(t) == 2 and all(0 <= e < 3 for e in t) for t in a.token_experts)
        assert len({t[0] for t in a.token_experts}) > 1, "routing should vary per token"
        assert a.roles is None
        assert len(a.probabilities) == 3 and abs(sum(a.probabilities) - 1) < 1e-4
        assert a.expert in (0, 1, 2) and trace[0]["experts"] == [a.expert]


def test_roles_router_bad_arguments(engine):
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.RolesRouter(engine, routed_counts=[2, 2], top_k=[1, 1, 1])
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.RolesRouter(engine, routed_counts=[2, 2, 2], top_k=[3, 1, 1])
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.RolesRouter(engine, rank=0)
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.RolesRouter(engine, scale=float("nan"))
    with pytest.raises(moragent.InvalidArgumentError):
        moragent.RolesRouter(engine, target_modules=0)


def test_roles_policy_and_files(engine, tmp_path):
    router = moragent.RolesRouter(engine, routed_counts=[2, 2, 2], top_k=[1, 1, 1], rank=4, seed=3)
    assert router.expert_count == 3
    path = tmp_path / "roles.safetensors"
    router.save(path)
    loaded = moragent.RolesRouter.load(engine, path)
    with moragent.Engine(os.path.join(MODELS, "llama-tiny")) as other, pytest.raises(moragent.MalformedFileError):
        moragent.RolesRouter.load(other, path)
    steps = []
    for r in (router, loaded):
        with moragent.Policy(engine, None, r, max_new_tokens=8, ignore_eos=True, temperature=0,
                             first_step_template="Task: {goal}\n{observation}") as policy:
            steps.append(policy.step(0, "Thought: call it. Next Role: Executor", "g"))
            plain = policy.step(1, "Thought: look around.", "g")
    a, b = steps
    assert a.ids == b.ids
    assert a.roles == ["executor"] * len(a.ids) and len(a.ids) == 8
    assert a.expert == 1 and a.probabilities == [0.0, 1.0, 0.0]
    assert a.token_experts is None
    assert plain.roles == ["reasoner"] * len(plain.ids)
    router.close()
    loaded.close()
