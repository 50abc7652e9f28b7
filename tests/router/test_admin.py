"""The admin API: bearer auth, experiments and variants changed at run time, on every replica."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import httpx
import pytest

from bandit import Feedback, make_policy
from common.config import Settings
from tests._wait import wait_for
from tests.router._replicas import TOKEN, Cluster, Replica, cluster
from tests.router._stack import SIM_ENDPOINT, experiment, settings

BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]})
ARMS = ["Variant1", "Variant2", "Variant3"]
# A change on one replica must be served by the others within 2 s (they poll every
# 0.5 s and are told at once over pub/sub).
REPLICA_BUDGET_S = 2.0


def thompson() -> Settings:
    return settings(experiment(policy={"type": "thompson"}))


@pytest.fixture(scope="module")
def one() -> Iterator[Replica]:
    """One router on an in-memory registry (the module's tests share it; each cleans up)."""
    with cluster(thompson(), count=1) as running:
        yield running.replicas[0]


@pytest.fixture
def two(redis_url: str) -> Iterator[Cluster]:
    """Two routers sharing a real Redis registry."""
    with cluster(thompson(), registry_url=redis_url) as running:
        yield running


def invoke(replica: Replica, target: str | None = None) -> dict[str, Any]:
    kwargs = {"TargetVariant": target} if target else {}
    answer: dict[str, Any] = replica.client().invoke_endpoint(
        EndpointName=SIM_ENDPOINT, Body=BODY, ContentType="application/json", **kwargs)
    return answer


def arm_stats(replica: Replica) -> dict[str, tuple[float, float]]:
    """The live policy's per-arm (count, reward sum), read from its snapshot."""
    state = json.loads(replica.state.routes["exp"].experiment.policy.snapshot())
    stats = state["state"]["stats"]
    return {arm: (stats["n"][i], stats["total"][i]) for i, arm in enumerate(state["arms"])}


# -- auth ---------------------------------------------------------------------------


def test_without_a_configured_token_the_admin_api_is_disabled() -> None:
    with cluster(thompson(), count=1, token=None) as running:
        (replica,) = running.replicas
        response = replica.admin("GET", "/v1/experiments")
    assert response.status_code == 403
    assert response.json() == {"error": "admin_disabled",
                               "message": "admin API disabled: set BANDIT_ROUTER_ADMIN_TOKEN"}


@pytest.mark.parametrize("header", [None, f"Bearer {TOKEN}x", "Bearer", f"Basic {TOKEN}",
                                    TOKEN])
def test_a_missing_or_wrong_token_gets_401(one: Replica, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in [("GET", "/v1/experiments"), ("DELETE", "/v1/experiments/exp"),
                         ("POST", "/v1/experiments/exp/variants"),
                         ("GET", "/v1/experiments/exp/stats")]:
        response = httpx.request(method, one.url + path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"
    assert "exp" in one.state.routes  # nothing happened


# -- experiments --------------------------------------------------------------------


def test_crud_round_trip(one: Replica) -> None:
    listed = one.admin("GET", "/v1/experiments")
    assert listed.status_code == 200
    assert [e["name"] for e in listed.json()["experiments"]] == ["exp"]
    revision = listed.json()["revision"]
    assert listed.headers["x-bandit-registry-revision"] == str(revision)
    # GET shows the stored form, which PUT takes back unchanged.
    current = one.admin("GET", "/v1/experiments/exp").json()
    assert sorted(current["variants"], key=lambda v: v["name"]) == [
        {"name": v, "url": None, "initial_weight": None} for v in ARMS]
    assert one.admin("PUT", "/v1/experiments/exp", json=current).status_code == 200

    new = experiment("exp2", endpoint="other-endpoint", policy={"type": "epsilon_greedy"})
    del new["name"]  # taken from the URL
    created = one.admin("PUT", "/v1/experiments/exp2", json=new)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "exp2" and created.json()["policy"]["type"] == "epsilon_greedy"
    assert int(created.headers["x-bandit-registry-revision"]) > revision
    # Served at once by the replica that took it.
    decision = httpx.post(f"{one.url}/v1/experiments/exp2/decisions", json={})
    assert decision.status_code == 200 and decision.json()["variant"] in ARMS
    assert one.state.endpoints["other-endpoint"].config.name == "exp2"
    assert one.admin("GET", "/v1/experiments/exp2").json() == created.json()

    replaced = one.admin("PUT", "/v1/experiments/exp2", json={**new, "seed": 5})
    assert replaced.status_code == 200 and replaced.json()["seed"] == 5
    assert one.state.routes["exp2"].config.seed == 5

    deleted = one.admin("DELETE", "/v1/experiments/exp2")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": "exp2",
                              "revision": int(deleted.headers["x-bandit-registry-revision"])}
    assert "exp2" not in one.state.routes and "other-endpoint" not in one.state.endpoints
    gone = httpx.post(f"{one.url}/v1/experiments/exp2/decisions", json={})
    assert gone.status_code == 400 and gone.headers["x-amzn-errortype"] == "ValidationError"
    for method in ("GET", "DELETE"):
        missing = one.admin(method, "/v1/experiments/exp2")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_a_put_routing_a_taken_endpoint_is_a_conflict(one: Replica) -> None:
    response = one.admin("PUT", "/v1/experiments/exp3", json=experiment("exp3"))
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "message": f"endpoint {SIM_ENDPOINT} is "
                                                               "already routed by experiment "
                                                               "'exp'"}
    assert "exp3" not in one.state.routes


def test_a_bad_put_body_names_every_bad_key(one: Replica) -> None:
    body = {"name": "other", "endpoint": "bad_endpoint!", "backend": "grpc",
            "variants": [{"name": "Variant1", "weight": 1}, {"name": "Variant2"}],
            "policy": {"type": "thompson", "epsilon": 0.1},
            "reward": {"min": 1.0, "max": 0.0}, "colour": "blue"}
    response = one.admin("PUT", "/v1/experiments/exp", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_config"
    problems = response.json()["problems"]
    # One line per bad key, in check-config's words, paths relative to the experiment.
    assert [problem.split(":", 1)[0] for problem in problems] == [
        "name", "endpoint", "backend", "variants[0].weight", "reward.max", "colour",
        "policy.epsilon"]
    assert problems[0] == "name: must be 'exp' (the experiment in the URL), got 'other'"
    assert "variants[0].weight: unknown key" in problems
    assert "reward.max: must be above min (1), got 0" in problems
    assert response.json()["message"] == "; ".join(problems)
    # The live experiment is untouched.
    assert one.state.routes["exp"].config.endpoint == SIM_ENDPOINT


def test_a_bad_policy_is_named_with_its_path(one: Replica) -> None:
    body = experiment(policy={"type": "thompson", "epsilon": 0.1, "prior": {"alpha": -1}})
    response = one.admin("PUT", "/v1/experiments/exp", json=body)
    assert response.status_code == 422
    assert [p.split(":", 1)[0] for p in response.json()["problems"]] == ["policy.prior.alpha",
                                                                          "policy.epsilon"]


@pytest.mark.parametrize(("raw", "message"), [(b"{", "body: not valid JSON"),
                                              (b"[1]", "body: must be a JSON object"),
                                              (b'{"seed": NaN}', "body: not valid JSON")])
def test_a_body_that_is_not_a_json_object_gets_400(one: Replica, raw: bytes,
                                                   message: str) -> None:
    response = one.admin("PUT", "/v1/experiments/exp", content=raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert response.json()["message"].startswith(message)


# -- variants -----------------------------------------------------------------------


def test_variants_come_and_go_while_the_others_keep_their_statistics(one: Replica) -> None:
    learned = make_policy({"type": "thompson"}, ARMS, seed=0)
    for i in range(30):
        arm = ARMS[i % 3]
        learned.update([Feedback(arm=arm, reward=float(arm == "Variant2"), probability=0.5,
                                 context=None)])
    version = one.state.routes["exp"].snapshot_version
    one.memory_registry().snapshots.publish("exp", learned.snapshot())
    wait_for(lambda: one.state.routes["exp"].snapshot_version == version + 1, 1.5)
    before = arm_stats(one)
    assert before == {"Variant1": (10.0, 0.0), "Variant2": (10.0, 10.0),
                      "Variant3": (10.0, 0.0)}

    added = one.admin("POST", "/v1/experiments/exp/variants", json={"name": "Variant4"})
    assert added.status_code == 201, added.text
    assert [v["name"] for v in added.json()["variants"]] == [*ARMS, "Variant4"]
    assert invoke(one, "Variant4")["InvokedProductionVariant"] == "Variant4"
    after_add = arm_stats(one)
    assert after_add == {**before, "Variant4": (0.0, 0.0)}

    removed = one.admin("DELETE", "/v1/experiments/exp/variants/Variant2")
    assert removed.status_code == 200, removed.text
    assert [v["name"] for v in removed.json()["variants"]] == ["Variant1", "Variant3",
                                                               "Variant4"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        invoke(one, "Variant2")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "Variant2" in caught.value.response["Error"]["Message"]
    after_remove = arm_stats(one)
    assert after_remove == {arm: after_add[arm] for arm in ("Variant1", "Variant3", "Variant4")}
    # Routed (untargeted) traffic never picks the removed variant.
    assert {invoke(one)["InvokedProductionVariant"] for _ in range(20)} <= {
        "Variant1", "Variant3", "Variant4"}

    # Put things back for the module's other tests.
    assert one.admin("DELETE", "/v1/experiments/exp/variants/Variant4").status_code == 200
    assert one.admin("POST", "/v1/experiments/exp/variants",
                     json={"name": "Variant2"}).status_code == 201


def test_variant_errors(one: Replica) -> None:
    cases = [
        ("POST", "/v1/experiments/exp/variants", {"name": "Variant1"}, 409, "conflict"),
        ("POST", "/v1/experiments/nope/variants", {"name": "Variant9"}, 404, "not_found"),
        ("POST", "/v1/experiments/exp/variants", {"name": "bad_name", "x": 1}, 422,
         "invalid_config"),
        ("POST", "/v1/experiments/exp/variants", {"name": "Variant9",
                                                  "url": "http://127.0.0.1:1/"}, 422,
         "invalid_config"),  # a url only applies to the http backend
        ("DELETE", "/v1/experiments/exp/variants/Variant9", None, 404, "not_found"),
    ]
    for method, path, body, status, code in cases:
        response = one.admin(method, path, json=body)
        assert (response.status_code, response.json()["error"]) == (status, code), path
    bad = one.admin("POST", "/v1/experiments/exp/variants", json={"name": "bad_name", "x": 1})
    assert [p.split(":", 1)[0] for p in bad.json()["problems"]] == ["name", "x"]
    url = one.admin("POST", "/v1/experiments/exp/variants",
                    json={"name": "Variant9", "url": "http://127.0.0.1:1/"})
    assert url.json()["problems"][0].startswith("variants[3].url: only applies")
    assert set(one.state.routes["exp"].config.arms) == set(ARMS)


def test_the_last_variant_cannot_be_removed() -> None:
    with cluster(settings(experiment(variants=[{"name": "Variant1"}, {"name": "Variant2"}],
                                     policy={"type": "static", "weights": {
                                         "Variant1": 1, "Variant2": 3}})),
                 count=1) as running:
        (replica,) = running.replicas
        response = replica.admin("DELETE", "/v1/experiments/exp/variants/Variant2")
        assert response.status_code == 200
        # The static weights lose the gone variant's key with it.
        assert response.json()["policy"] == {"type": "static", "weights": {"Variant1": 1}}
        last = replica.admin("DELETE", "/v1/experiments/exp/variants/Variant1")
        assert last.status_code == 409 and last.json()["error"] == "conflict"
        assert "last variant" in last.json()["message"]
        assert replica.state.routes["exp"].experiment.policy.arms == ("Variant1",)


def test_an_http_experiment_gets_its_variants_and_backend_at_run_time() -> None:
    with cluster(thompson(), count=1) as running:
        (replica,) = running.replicas

        def variant(name: str) -> dict[str, str]:
            return {"name": name, "url": f"{running.sim_url}/variants/{name}/invocations"}

        body = experiment("web", endpoint="http-endpoint", backend="http",
                          variants=[variant("Variant1"), variant("Variant2")])
        assert replica.admin("PUT", "/v1/experiments/web", json=body).status_code == 201
        backend = replica.state.routes["web"].backend
        assert backend in replica.state.backends
        assert replica.admin("POST", "/v1/experiments/web/variants",
                             json=variant("Variant4")).status_code == 201
        answer = replica.client().invoke_endpoint(EndpointName="http-endpoint", Body=BODY,
                                                  TargetVariant="Variant4")
        assert answer["InvokedProductionVariant"] == "Variant4"
        assert replica.state.routes["web"].backend is backend  # updated, not replaced
        assert replica.admin("DELETE", "/v1/experiments/web").status_code == 200
        assert backend not in replica.state.backends  # closed once requests drain


# -- stats --------------------------------------------------------------------------


def test_stats_per_variant(one: Replica) -> None:
    before = one.admin("GET", "/v1/experiments/exp/stats").json()
    for _ in range(6):
        invoke(one)
    invoke(one, "Variant3")
    response = one.admin("GET", "/v1/experiments/exp/stats")
    assert response.status_code == 200
    stats = response.json()
    assert stats["experiment"] == "exp" and stats["endpoint"] == SIM_ENDPOINT
    assert stats["policy"]["type"] == "thompson"
    assert stats["policy"]["version"] == one.state.routes["exp"].experiment.policy.version
    variants = {v["name"]: v for v in stats["variants"]}
    assert set(variants) == set(ARMS)
    old = {v["name"]: v for v in before["variants"]}
    assert sum(v["decisions"] - old[v["name"]]["decisions"] for v in variants.values()) == 7
    assert variants["Variant3"]["targeted_decisions"] == old["Variant3"]["targeted_decisions"] + 1
    probabilities = one.state.routes["exp"].experiment.policy.probabilities()
    for name, variant in variants.items():
        assert variant["traffic_share"] == pytest.approx(probabilities[name])
        assert variant["probability_best"] == pytest.approx(probabilities[name])  # no floor
        assert (variant["state"], variant["suspended"]) == ("healthy", False)
        assert variant["rewards_joined"] is None and variant["mean_reward"] is None
        assert variant["mean_reward_ci95"] is None and variant["last_weight_pushed"] is None
    assert sum(v["traffic_share"] for v in variants.values()) == pytest.approx(1.0)
    assert one.admin("GET", "/v1/experiments/nope/stats").status_code == 404
    # The response model is documented (reward fields say why they are null).
    schema = httpx.get(f"{one.url}/openapi.json").json()["components"]["schemas"]
    assert "reward learner" in schema["VariantStats"]["properties"]["mean_reward"]["description"]


# -- replicas -----------------------------------------------------------------------


def test_a_change_on_one_replica_is_served_by_the_other_within_2_s(two: Cluster) -> None:
    a, b = two.replicas
    new = experiment("exp2", endpoint="other-endpoint")
    assert a.admin("PUT", "/v1/experiments/exp2", json=new).status_code == 201
    took = wait_for(lambda: httpx.post(f"{b.url}/v1/experiments/exp2/decisions",
                                       json={}).status_code == 200, REPLICA_BUDGET_S)
    assert took < REPLICA_BUDGET_S

    assert a.admin("POST", "/v1/experiments/exp/variants",
                   json={"name": "Variant4"}).status_code == 201
    wait_for(lambda: "Variant4" in b.state.routes["exp"].experiment.policy.arms,
             REPLICA_BUDGET_S)
    assert invoke(b, "Variant4")["InvokedProductionVariant"] == "Variant4"

    assert b.admin("DELETE", "/v1/experiments/exp/variants/Variant1").status_code == 200
    wait_for(lambda: "Variant1" not in a.state.routes["exp"].experiment.policy.arms,
             REPLICA_BUDGET_S)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        invoke(a, "Variant1")
    assert caught.value.response["Error"]["Code"] == "ValidationError"

    assert b.admin("DELETE", "/v1/experiments/exp2").status_code == 200
    wait_for(lambda: "exp2" not in a.state.routes, REPLICA_BUDGET_S)
    # Both agree with the registry, and with each other.
    for replica in (a, b):
        listed = replica.admin("GET", "/v1/experiments").json()
        assert [e["name"] for e in listed["experiments"]] == ["exp"]
        assert [v["name"] for v in listed["experiments"][0]["variants"]] == [
            "Variant2", "Variant3", "Variant4"]
        assert replica.sync.revision == listed["revision"]


def test_concurrent_variant_adds_on_two_replicas_both_land(two: Cluster) -> None:
    # Optimistic concurrency: a write against a stale revision is redone, never lost.
    import concurrent.futures

    a, b = two.replicas
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(
            lambda job: job[0].admin("POST", "/v1/experiments/exp/variants",
                                     json={"name": job[1]}),
            [(a, "Variant4"), (b, "Variant5")]))
    assert [answer.status_code for answer in answers] == [201, 201]
    wanted = {*ARMS, "Variant4", "Variant5"}
    wait_for(lambda: all(set(r.state.routes["exp"].config.arms) == wanted for r in (a, b)),
             REPLICA_BUDGET_S)


def test_a_restarted_router_does_not_revive_a_deleted_experiment(redis_url: str) -> None:
    config = settings(experiment(), experiment("exp2", endpoint="other-endpoint"))
    with cluster(config, registry_url=redis_url, count=1) as running:
        assert running.replicas[0].admin("DELETE", "/v1/experiments/exp2").status_code == 200
    # A new replica with the same config file: the registry, not the file, decides.
    with cluster(config, registry_url=redis_url, count=1) as running:
        assert sorted(running.replicas[0].state.routes) == ["exp"]
