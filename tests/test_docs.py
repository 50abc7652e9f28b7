"""docs/ as the contract: what the pages state is checked against the code.

The configuration reference must be what ``common.config_reference`` makes of the
models today (``make docs`` rewrites it); every IAM policy in docs/aws.md must be
valid JSON granting exactly the actions the code calls and never ``*``; the DSJSON
example must be what ``to_dsjson`` writes; the Redis sizing figures of docs/scaling.md
must hold on a real redis-server; every relative link in README.md and docs/ must name
a file that exists.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml

from bandit.dsjson import from_dsjson, to_dsjson
from common.config import ConfigError, parse_settings
from common.config_reference import keys, main, render, sections
from common.storage.keys import DECISIONS_STREAM, JOINED_STREAM
from reward_ingest.join_rules import JoinRule
from reward_ingest.joiner import RedisJoiner
from router.events import decision_event
from router.experiments import Decision
from router.store import RedisStore
from tests._redis_server import RedisServer, redis_server_fixture

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Written alongside these pages, in the same release.
LINKED_ELSEWHERE = {"docs/container.md", "docs/kubernetes.md"}

POLICY_ACTIONS = {
    "router": {"sagemaker:InvokeEndpoint"},
    "ingester": {"sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"},
    "archive": {"s3:PutObject"},
    "replay": {"s3:ListBucket", "s3:GetObject"},
}
_TAGGED_JSON = re.compile(r"<!-- iam-(policy|trust): (\w+) -->\n```json\n(.*?)```", re.S)
_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_configuration_reference_is_up_to_date() -> None:
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/configuration.md is stale: run `make docs`"


def test_check_mode_fails_on_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    page = tmp_path / "configuration.md"
    assert main(["--write", str(page)]) == 0
    assert main(["--check", str(page)]) == 0
    page.write_text(page.read_text(encoding="utf-8").replace("| 600 |", "| 60 |"),
                    encoding="utf-8")
    assert main(["--check", str(page)]) == 1
    assert "make docs" in capsys.readouterr().err


def test_every_key_is_documented_with_its_default() -> None:
    documented = {key.path: key for key in keys()}
    # A few keys, their YAML spelling and defaults, as load_settings reads them.
    assert documented["experiments[].context.from"].default == "`header`"
    assert documented["experiments[].reward.wait_seconds"].default == "600"
    assert documented["decision_log.stream_maxlen"].default == "1,000,000"
    assert documented["experiments[].variants[].name"].default == "required"
    assert documented["experiments[].guardrails.probe_share"].type == "number > 0, ≤ 0.5"
    assert all(key.meaning for key in documented.values())
    assert [s.path for s in sections()][:3] == ["", "experiments[]", "experiments[].variants[]"]


def test_a_key_the_reference_leaves_out_is_refused_by_the_models() -> None:
    """The page lists every key: a key it does not list is a configuration error."""
    documented = {key.path for key in keys()}
    assert "experiments[].reward.timeout" not in documented
    with pytest.raises(ConfigError, match=r"experiments\[0\]\.reward\.timeout"):
        parse_settings({"experiments": [{"name": "a", "endpoint": "e",
                                         "variants": [{"name": "V"}],
                                         "policy": {"type": "thompson"},
                                         "reward": {"timeout": 3}}]})


def test_the_smallest_file_on_the_page_is_valid() -> None:
    page = render()
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = parse_settings(yaml.safe_load(block))
    assert settings.experiments[0].reward.wait_seconds == 600.0


def _tagged_json() -> list[tuple[str, str, Any]]:
    text = (DOCS / "aws.md").read_text(encoding="utf-8")
    return [(kind, name, json.loads(body)) for kind, name, body in _TAGGED_JSON.findall(text)]


def _actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def test_aws_policies_grant_exactly_the_calls_the_code_makes() -> None:
    policies = {name: doc for kind, name, doc in _tagged_json() if kind == "policy"}
    assert set(policies) == set(POLICY_ACTIONS)
    for name, policy in policies.items():
        assert policy["Version"] == "2012-10-17"
        statements = policy["Statement"]
        granted = set().union(*(_actions(s) for s in statements))
        assert granted == POLICY_ACTIONS[name], name
        for statement in statements:
            assert statement["Effect"] == "Allow"
            assert not any("*" in action for action in _actions(statement)), name
            resources = statement["Resource"]
            for resource in [resources] if isinstance(resources, str) else resources:
                assert resource.startswith("arn:aws:"), (name, resource)
                assert resource != "*" and not resource.endswith(":*"), (name, resource)
    sagemaker = [s["Resource"] for name in ("router", "ingester")
                 for s in policies[name]["Statement"]]
    assert all(r == ["arn:aws:sagemaker:REGION:ACCOUNT:endpoint/ENDPOINT"] for r in sagemaker)


def test_the_irsa_trust_policy_is_scoped_to_one_service_account() -> None:
    (trust,) = [doc for kind, _, doc in _tagged_json() if kind == "trust"]
    (statement,) = trust["Statement"]
    assert _actions(statement) == {"sts:AssumeRoleWithWebIdentity"}
    condition = statement["Condition"]["StringEquals"]
    assert condition["OIDC_PROVIDER:sub"].startswith("system:serviceaccount:")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_name_files_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target, _ in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL, not a file of the repository
        path = (page.parent / target).resolve()
        relative = path.relative_to(ROOT).as_posix()
        assert path.exists() or relative in LINKED_ELSEWHERE, f"{page.name}: {target}"


def test_docs_point_nowhere_outside_the_repository() -> None:
    """Everything a reader needs is in the repository: no links to the web."""
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        assert not re.findall(r"\]\(https?://", text), page.name


def test_the_dsjson_example_is_what_to_dsjson_writes() -> None:
    text = (DOCS / "dsjson.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- dsjson: (\w+) -->\n```json\n(.*?)```", text, re.S))
    event = json.loads(blocks["event"])
    assert to_dsjson(event) == blocks["line"].strip()
    back = from_dsjson(blocks["line"])
    assert back["context"] == {"country": "fr", "age": 31, "premium": 1, "_ref": "x7"}
    assert back["probabilities"] == event["probabilities"]


redis_server = redis_server_fixture(scope="module")

_SIZING = 3000


def _documented_bytes() -> dict[str, int]:
    text = (DOCS / "scaling.md").read_text(encoding="utf-8")
    (figures,) = re.findall(r"<!-- redis-bytes: (.*?) -->", text)
    return {key: int(value) for key, value in (item.split("=") for item in figures.split())}


async def _measure_entry_bytes(url: str, spool: Path) -> dict[str, float]:
    """Bytes per entry of the decision and joined streams, written by the real writers."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    store = RedisStore(url, spool_path=spool)
    await store.start()
    now = time.time()
    arms = ("Variant1", "Variant2", "Variant3")
    try:
        events = [decision_event(
            Decision(event_id=uuid.uuid4().hex, experiment="churn", variant="Variant2",
                     probability=0.61, probabilities={"Variant1": 0.2, "Variant2": 0.61,
                                                      "Variant3": 0.19},
                     policy_version=1234, targeted=False),
            endpoint="bandit-sim", variants=arms, context={"country": "fr", "age": 31,
                                                          "plan": "gold"},
            eligible=None, timestamp=now, source="invocations", outcome="ok", latency_ms=12.5)
            for _ in range(_SIZING)]
        # As documented, up to the digits of the timestamp.
        assert abs(len(json.dumps(events[0], separators=(",", ":"))) - 461) <= 3
        for start in range(0, _SIZING, 500):
            await asyncio.gather(*(store.append(e) for e in events[start:start + 500]))
        joiner = RedisJoiner(client, {"churn": JoinRule(mode="first", min=0.0, max=1.0,
                                                        default=0.0, wait_seconds=1.0)})
        assert await joiner.lease.try_acquire()
        while await joiner.step(now + 10.0) > 0:  # every window closed: default rewards
            pass
        assert await client.xlen(JOINED_STREAM) == _SIZING
        usage = {name: await client.memory_usage(key, samples=0)
                 for name, key in (("decision-entry", DECISIONS_STREAM),
                                   ("joined-entry", JOINED_STREAM))}
        return {name: float(value or 0) / _SIZING for name, value in usage.items()}
    finally:
        await store.close()
        await client.aclose()


def test_documented_redis_bytes_per_entry_hold(redis_server: RedisServer,
                                               tmp_path: Path) -> None:
    measured = asyncio.run(_measure_entry_bytes(redis_server.url, tmp_path / "spool.jsonl"))
    for name, documented in _documented_bytes().items():
        assert documented * 2 / 3 <= measured[name] <= documented * 4 / 3, (name, measured)
