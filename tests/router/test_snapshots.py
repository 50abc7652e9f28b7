"""Policy snapshots published to the store reach every router replica within ~1 s."""

from __future__ import annotations

import json

import httpx
import redis

from bandit import Feedback, Policy, make_policy
from common.config import Settings
from common.storage.keys import EXPERIMENTS_KEY, policy_key
from tests._redis_server import RedisServer
from tests._snapshots import publish_snapshot
from tests._wait import wait_for
from tests.router._replicas import Replica, cluster
from tests.router._stack import SIM_ENDPOINT, experiment, settings

BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]}).encode()
ARMS = ("Variant1", "Variant2", "Variant3")
# The routers poll every 0.5 s, so a lost notice costs at most that; the design's
# budget (reward → routers serving the snapshot) is p99 ≤ 1.5 s.
BUDGET_S = 1.5


def learned(updates: int, arms: tuple[str, ...] = ARMS, best: str = "Variant2") -> Policy:
    """A Thompson policy that has seen ``updates`` rewards (``best`` always pays 1)."""
    policy = make_policy({"type": "thompson"}, arms, seed=0)
    for i in range(updates):
        arm = arms[i % len(arms)]
        policy.update([Feedback(arm=arm, reward=float(arm == best), probability=0.5,
                                context=None)])
    return policy


def served_version(replica: Replica) -> int:
    response = httpx.post(f"{replica.url}/endpoints/{SIM_ENDPOINT}/invocations",
                          content=BODY, timeout=10)
    assert response.status_code == 200, response.text
    return int(response.headers["x-bandit-policy-version"])


def thompson() -> Settings:
    return settings(experiment(policy={"type": "thompson"}))


def test_a_published_snapshot_is_served_by_both_replicas(redis_url: str) -> None:
    with cluster(thompson(), registry_url=redis_url) as running, \
            redis.Redis.from_url(redis_url) as client:
        a, b = running.replicas
        assert served_version(a) == served_version(b) == 0
        policy = learned(30)
        assert publish_snapshot(client, "exp", policy.snapshot()) == 1
        took = wait_for(lambda: served_version(a) == 30 and served_version(b) == 30, BUDGET_S)
        assert took < BUDGET_S
        # Both serve the learner's state exactly: the same probabilities it computes.
        for replica in (a, b):
            assert replica.state.routes["exp"].experiment.policy.probabilities() == \
                policy.probabilities()
            ready = httpx.get(f"{replica.url}/readyz").json()
            assert ready["experiments"]["exp"]["snapshot_version"] == 1
            assert ready["registry"]["reachable"] is True
            assert ready["registry"]["snapshots"] == {"exp": 1}
            metrics = httpx.get(f"{replica.url}/metrics").text
            assert 'bandit_router_policy_version{experiment="exp"} 30.0' in metrics


def test_a_snapshot_without_its_notice_is_found_by_the_poll(redis_url: str) -> None:
    with cluster(thompson(), registry_url=redis_url, count=1) as running, \
            redis.Redis.from_url(redis_url) as client:
        (replica,) = running.replicas
        # Written as publish_snapshot does, minus the PUBLISH: as if the notice were lost.
        client.hset(policy_key("exp"), "snapshot", learned(12).snapshot())
        client.hincrby(policy_key("exp"), "version", 1)
        assert wait_for(lambda: served_version(replica) == 12, BUDGET_S) < BUDGET_S


def test_memory_registry_snapshots_reach_the_router() -> None:
    with cluster(thompson(), count=1) as running:
        (replica,) = running.replicas
        assert served_version(replica) == 0
        replica.memory_registry().snapshots.publish("exp", learned(7).snapshot())
        assert wait_for(lambda: served_version(replica) == 7, BUDGET_S) < BUDGET_S
        assert replica.state.routes["exp"].snapshot_version == 1


def test_bad_and_foreign_snapshots_are_refused_and_the_old_policy_kept() -> None:
    with cluster(thompson(), count=1) as running:
        (replica,) = running.replicas
        registry = replica.memory_registry()
        registry.snapshots.publish("exp", learned(5).snapshot())
        wait_for(lambda: served_version(replica) == 5, BUDGET_S)
        registry.snapshots.publish("exp", b"not a snapshot")
        static = make_policy({"type": "static"}, ARMS)
        for _ in range(9):
            static.update([Feedback(arm="Variant1", reward=1.0, probability=1.0, context=None)])
        registry.snapshots.publish("exp", static.snapshot())  # the config says thompson
        wait_for(lambda: replica.state.routes["exp"].snapshot_version == 3, BUDGET_S)
        assert served_version(replica) == 5
        assert replica.state.routes["exp"].experiment.policy.type_name == "thompson"
        registry.snapshots.publish("exp", learned(8).snapshot())  # a good one again
        wait_for(lambda: served_version(replica) == 8, BUDGET_S)


def test_a_snapshot_behind_an_arm_change_is_brought_to_the_registry_variants() -> None:
    # The learner has not seen Variant4 yet: the router serves its statistics for the
    # others, and Variant4 too, since the registry says it is a variant now.
    with cluster(thompson(), count=1) as running:
        (replica,) = running.replicas
        assert replica.admin("POST", "/v1/experiments/exp/variants",
                             json={"name": "Variant4"}).status_code == 201
        old = learned(20)
        replica.memory_registry().snapshots.publish("exp", old.snapshot())
        wait_for(lambda: replica.state.routes["exp"].snapshot_version == 1, BUDGET_S)
        route = replica.state.routes["exp"]
        policy = route.experiment.policy
        assert policy.arms == (*ARMS, "Variant4")
        assert policy.stats.n[:3].tolist() == old.stats.n.tolist()  # type: ignore[attr-defined]
        assert policy.stats.n[3] == 0  # type: ignore[attr-defined]
        assert route.config.arms == policy.arms


def test_routers_serve_through_a_registry_outage_and_catch_up() -> None:
    with RedisServer() as server, cluster(thompson(), registry_url=server.url,
                                          count=1) as running:
        (replica,) = running.replicas
        server.stop(kill=True)
        wait_for(lambda: not httpx.get(f"{replica.url}/readyz").json()["registry"]["reachable"],
                 3.0)
        ready = httpx.get(f"{replica.url}/readyz")
        assert ready.status_code == 200  # still serving what it has
        assert served_version(replica) == 0
        assert replica.admin("GET", "/v1/experiments").status_code == 503
        server.start()  # empty: nothing was persisted
        with redis.Redis.from_url(server.url) as client:
            publish_snapshot(client, "exp", learned(4).snapshot())
            wait_for(lambda: served_version(replica) == 4, 3.0)
            # The registry lost everything; the replica put back what it serves.
            stored = client.hkeys(EXPERIMENTS_KEY)
        assert stored == [b"exp"]
        ready_body = httpx.get(f"{replica.url}/readyz").json()
        assert ready_body["registry"]["reachable"] is True
        assert list(ready_body["experiments"]) == ["exp"]
