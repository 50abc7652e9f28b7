"""Every Redis name is defined once, in ``common.storage.keys``, and both sides use it."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from common.storage import keys

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bandit", "cli", "common", "reward_ingest", "router", "simulator")
NAMES = {name: value for name, value in vars(keys).items()
         if name.isupper() and isinstance(value, str)}

# The published layout (README, operators' dashboards, other processes): renaming any of
# these is a breaking change, so it must be deliberate.
PUBLISHED = {
    "DECISIONS_STREAM": "bandit:decisions",
    "DECISION_SEEN_PREFIX": "bandit:decisions:seen:",
    "REWARDS_STREAM": "bandit:rewards",
    "REWARD_SEEN_PREFIX": "bandit:rewards:seen:",
    "JOINED_STREAM": "bandit:joined",
    "JOIN_PREFIX": "bandit:join:",
    "JOIN_OFFSETS": "bandit:join:offsets",
    "JOIN_DEADLINES": "bandit:join:deadlines",
    "JOIN_LEASE": "bandit:join:lease",
    "JOIN_COUNTS_PREFIX": "bandit:join:counts:",
    "LEARNER_PREFIX": "bandit:learner:",
    "POLICY_PREFIX": "bandit:policy:",
    "POLICY_CHANNEL": "bandit:policy:changed",
    "EXPERIMENTS_KEY": "bandit:experiments",
    "REVISION_KEY": "bandit:experiments:revision",
    "DELETED_KEY": "bandit:experiments:deleted",
    "EXPERIMENTS_CHANNEL": "bandit:experiments:changed",
    "STATS_PREFIX": "bandit:stats:",
    "TIMELINE_PREFIX": "bandit:timeline:",
    "PUSHES_PREFIX": "bandit:pushes:",
    "ARCHIVE_OFFSET_KEY": "bandit:archive:offset",
}


def test_the_names_are_the_published_ones() -> None:
    assert {name: NAMES[name] for name in PUBLISHED} == PUBLISHED
    assert keys.learner_lease_key("E") == "bandit:learner:E:lease"
    assert keys.learner_checkpoint_key("E") == "bandit:learner:E:checkpoint"
    assert keys.policy_key("E") == "bandit:policy:E"
    assert keys.decision_seen_key("e1") == "bandit:decisions:seen:e1"
    assert keys.reward_seen_key("ab") == "bandit:rewards:seen:ab"
    assert (keys.stats_key("E"), keys.timeline_key("E"), keys.pushes_key("E")) == (
        "bandit:stats:E", "bandit:timeline:E", "bandit:pushes:E")


def _product_files() -> Iterator[Path]:
    for package in PRODUCT:
        yield from sorted((ROOT / package).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the nodes that are docstrings (of modules, classes, functions, or the
    attribute docstrings that follow an assignment)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for statement in body:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
                    and isinstance(statement.value.value, str):
                found.add(id(statement.value))
    return found


def test_no_product_module_spells_a_redis_name_outside_common_storage() -> None:
    storage = ROOT / "common" / "storage"
    offenders = []
    for path in _product_files():
        if storage in path.parents:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and keys.NAMESPACE in node.value and id(node) not in docstrings:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def _product_modules() -> Iterator[ModuleType]:
    for package in PRODUCT:
        root = importlib.import_module(package)
        yield root
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue
            yield importlib.import_module(info.name)


def test_every_module_holding_a_name_holds_the_one_from_common_storage() -> None:
    for module in _product_modules():
        if module.__name__.startswith("common.storage"):
            continue
        for name, value in vars(module).items():
            if name in NAMES:
                assert value is NAMES[name], f"{module.__name__}.{name} is its own copy"


@pytest.mark.parametrize(("writer", "reader", "name"), [
    ("router.store.redis", "reward_ingest.joiner.redis", "DECISIONS_STREAM"),
    ("reward_ingest.rewards.redis", "reward_ingest.joiner.redis", "REWARDS_STREAM"),
    ("router.registry.redis", "common.storage.snapshots", "POLICY_CHANNEL"),
])
def test_the_router_and_the_ingester_share_each_name(writer: str, reader: str,
                                                     name: str) -> None:
    one, other = importlib.import_module(writer), importlib.import_module(reader)
    assert getattr(one, name) is getattr(other, name) is NAMES[name]


@pytest.mark.parametrize(("module", "builder"), [
    ("router.registry.redis", "policy_key"),
    ("reward_ingest.learner.redis", "policy_key"),
    ("reward_ingest.learner.redis", "learner_lease_key"),
    ("router.stats_source", "stats_key"),
    ("reward_ingest.learner.redis", "stats_key"),
    ("router.stats_source", "pushes_key"),
    ("reward_ingest.stats_sink", "pushes_key"),
])
def test_templated_names_come_from_the_builders(module: str, builder: str) -> None:
    assert getattr(importlib.import_module(module), builder) is getattr(keys, builder)
