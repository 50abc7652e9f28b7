"""A synthetic decision archive for the replay benchmark: what an adaptive router logs.

    .venv/bin/python bench/_replay_data.py OUT_DIR --events N [--seed S] [--gzip] [--contextual]

The logger is a context-free Thompson sampler (Beta(1, 1) priors; Thompson 1933;
Chapelle & Li 2011) serving P(variant is best) estimated from 2,000 posterior
draws, floored at 1% and renormalised, and re-fitted on every reward it has seen
each ``VERSION_EVENTS`` events, which is when its ``policy_version`` moves on.
So the logging probabilities drift over time as a learner's do. The world:

- 4 variants with fixed Bernoulli means, and a fifth added at 30% of the stream
  (the experiment's variant list changes mid-file, as when a variant is deployed);
- contextual (``--contextual``): three numeric features ``x0``..``x2`` (standard
  normal, 3 decimals) and a categorical ``plan`` move each variant's log-odds by
  fixed per-variant weights, so the best variant depends on the context;
- 10% of decisions offer a subset (one variant left out), 1% are targeted (the
  caller chose: probability 1), 2% got no reward and carry the default 0.

Lines are exactly ``bandit.dsjson.to_dsjson``'s (checked by the tests), written by
a template writer that is ~10× faster; files are cut like the archiver's
(``<experiment>-<UTC yyyymmddTHHMMSS>-<seq>.json``, at most ``FILE_BYTES`` each) and
each gets the index the archiver writes beside it (``bandit.ope.build_index``).
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import json
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bandit.ope import INDEX_SUFFIX, build_index

EXPERIMENT = "replay"
VARIANTS = ("Variant1", "Variant2", "Variant3", "Variant4", "Variant5")
MEANS = (0.10, 0.12, 0.08, 0.11, 0.13)
INITIAL_VARIANTS = 4
ADDED_AT = 0.3              # the fifth variant joins at this fraction of the stream
VERSION_EVENTS = 5_000      # events per policy version (the learner's publishing period)
THOMPSON_DRAWS = 2_000
FLOOR = 0.01
SUBSET_SHARE = 0.10
TARGETED_SHARE = 0.01
DEFAULT_REWARD_SHARE = 0.02
EVENTS_PER_SECOND = 50.0
T0 = 1_714_564_800.0        # 2024-05-01T12:00:00Z
FILE_BYTES = 64 << 20
PLANS = ("basic", "plus", "pro")
N_NUMERIC = 3


class _World:
    """The true reward probabilities: per variant, shifted by the context when contextual."""

    def __init__(self, rng: np.random.Generator, contextual: bool) -> None:
        self.contextual = contextual
        self.logit = np.log(np.array(MEANS) / (1 - np.array(MEANS)))
        # Per variant: weights on x0..x2 and an offset per plan.
        self.weights = rng.normal(0.0, 0.4, size=(len(VARIANTS), N_NUMERIC))
        self.plan_offset = rng.normal(0.0, 0.4, size=(len(VARIANTS), len(PLANS)))

    def means(self, chosen: np.ndarray, numeric: np.ndarray, plan: np.ndarray) -> np.ndarray:
        logit = self.logit[chosen]
        if self.contextual:
            logit = (logit + np.einsum("ij,ij->i", self.weights[chosen], numeric)
                     + self.plan_offset[chosen, plan])
        return np.asarray(1.0 / (1.0 + np.exp(-logit)))


class _Thompson:
    """The logging policy: P(best) under Beta posteriors, floored and renormalised."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.successes = np.zeros(len(VARIANTS))
        self.failures = np.zeros(len(VARIANTS))

    def probabilities(self, k: int) -> np.ndarray:
        draws = self.rng.beta(1.0 + self.successes[:k], 1.0 + self.failures[:k],
                              size=(THOMPSON_DRAWS, k))
        share = np.bincount(draws.argmax(axis=1), minlength=k) / THOMPSON_DRAWS
        share = np.maximum(share, FLOOR)
        return np.asarray(share / share.sum())

    def learn(self, chosen: np.ndarray, reward: np.ndarray) -> None:
        np.add.at(self.successes, chosen, reward)
        np.add.at(self.failures, chosen, 1.0 - reward)


def _blocks(events: int, seed: int, contextual: bool) -> Iterator[dict[str, Any]]:
    """The stream as numpy blocks of one policy version each (one version per block)."""
    rng = np.random.default_rng(seed)
    world = _World(rng, contextual)
    logger = _Thompson(rng)
    added_at = int(events * ADDED_AT)
    start = 0
    clock = T0
    version = 0
    while start < events:
        version += 1
        k = INITIAL_VARIANTS if start < added_at else len(VARIANTS)
        size = min(VERSION_EVENTS, events - start, (added_at - start) if start < added_at
                   else events)
        base = logger.probabilities(k)
        offered = np.ones((size, k), dtype=bool)
        subset = rng.random(size) < SUBSET_SHARE
        offered[np.flatnonzero(subset), rng.integers(0, k, size=int(subset.sum()))] = False
        pmf = np.where(offered, base, 0.0)
        pmf /= pmf.sum(axis=1, keepdims=True)
        cumulative = pmf.cumsum(axis=1)
        draw = rng.random(size) * cumulative[:, -1]
        chosen = np.minimum((cumulative <= draw[:, None]).sum(axis=1), k - 1)
        # Never choose a variant with probability 0 (cumsum ties at its column).
        chosen = np.where(pmf[np.arange(size), chosen] > 0, chosen, pmf.argmax(axis=1))
        targeted = rng.random(size) < TARGETED_SHARE
        target = rng.integers(0, k, size=size)
        chosen = np.where(targeted, target, chosen)
        offered[targeted] = True
        numeric = np.round(rng.normal(size=(size, N_NUMERIC)), 3)
        plan = rng.integers(0, len(PLANS), size=size)
        reward = (rng.random(size) < world.means(chosen, numeric, plan)).astype(float)
        default = rng.random(size) < DEFAULT_REWARD_SHARE
        reward[default] = 0.0
        clock_steps = rng.exponential(1.0 / EVENTS_PER_SECOND, size=size).cumsum()
        timestamp = np.round(clock + clock_steps, 3)
        clock = float(timestamp[-1])
        learned = ~targeted & ~default
        logger.learn(chosen[learned], reward[learned])
        yield {"start": start, "k": k, "version": str(version), "pmf": pmf, "offered": offered,
               "chosen": chosen, "targeted": targeted, "reward": reward, "default": default,
               "timestamp": timestamp, "numeric": numeric, "plan": plan}
        start += size


def joined_events(events: int, *, seed: int = 0,
                  contextual: bool = False) -> Iterator[dict[str, Any]]:
    """The stream as joined events, the archiver's input (slow; for checks and tests)."""
    for block in _blocks(events, seed, contextual):
        k = block["k"]
        variants = list(VARIANTS[:k])
        for i in range(len(block["chosen"])):
            yield _joined(block, i, variants, seed, contextual)


def _joined(block: dict[str, Any], i: int, variants: list[str], seed: int,
            contextual: bool) -> dict[str, Any]:
    chosen = variants[int(block["chosen"][i])]
    offered = [v for v, on in zip(variants, block["offered"][i], strict=True) if on]
    targeted = bool(block["targeted"][i])
    probabilities = ({chosen: 1.0} if targeted else
                     {v: float(p) for v, p in zip(variants, block["pmf"][i], strict=True)
                      if p > 0})
    context = ({**{f"x{j}": float(x) for j, x in enumerate(block["numeric"][i])},
                "plan": PLANS[int(block["plan"][i])]} if contextual else None)
    return {"event_id": _event_id(seed, block["start"] + i),
            "timestamp": float(block["timestamp"][i]), "experiment": EXPERIMENT,
            "policy_version": block["version"], "variants": variants,
            "eligible": None if len(offered) == len(variants) else offered,
            "context": context, "variant": chosen, "probability": probabilities[chosen],
            "probabilities": probabilities, "targeted": targeted,
            "reward": float(block["reward"][i]), "default_reward": bool(block["default"][i])}


def _event_id(seed: int, index: int) -> str:
    return f"s{seed}-{index:010d}"


class _LineWriter:
    """``to_dsjson``'s lines from the numpy blocks, by string templates."""

    def __init__(self, seed: int, contextual: bool) -> None:
        self.seed = seed
        self.contextual = contextual
        self._stamps: dict[int, str] = {}
        self._fragments: dict[tuple[int, tuple[bool, ...], int], tuple[str, list[int]]] = {}

    def lines(self, block: dict[str, Any]) -> Iterator[str]:
        k = block["k"]
        tail = (f',"experiment":"{EXPERIMENT}","policy_version":"{block["version"]}",'
                f'"variants":{json.dumps(list(VARIANTS[:k]), separators=(",", ":"))},')
        pmf = block["pmf"].tolist()
        offered = block["offered"].tolist()
        chosen = block["chosen"].tolist()
        targeted = block["targeted"].tolist()
        reward = block["reward"].tolist()
        default = block["default"].tolist()
        timestamp = block["timestamp"].tolist()
        numeric = block["numeric"].tolist()
        plan = block["plan"].tolist()
        for i in range(len(chosen)):
            column = chosen[i]
            is_targeted = targeted[i]
            fragment, order = self._fragment(k, tuple(offered[i]), column)
            index = order[0] - 1
            if is_targeted:
                p = [1.0] + [0.0] * (len(order) - 1)
                probability = 1.0
            else:
                row = pmf[i]
                columns = [j for j in range(k) if offered[i][j]]
                p = [row[columns[o - 1]] for o in order]
                probability = p[0]
            r = reward[i]
            event_id = _event_id(self.seed, block["start"] + i)
            observed = ("[]" if default[i] else
                        f'[{{"v":{r!r},"EventId":"{event_id}","ActionTaken":false}}]')
            shared = self._shared(numeric[i], plan[i]) if self.contextual else ""
            yield (f'{{"_label_cost":{0.0 - r!r},"_label_probability":{probability!r},'
                   f'"_label_Action":{index + 1},"_labelIndex":{index},"o":{observed},'
                   f'"Timestamp":"{self._stamp(timestamp[i])}","Version":"1",'
                   f'"EventId":"{event_id}","a":[{",".join(map(str, order))}],'
                   f'"c":{{{shared}{fragment}}},"p":[{",".join(map(repr, p))}]{tail}'
                   f'"targeted":{"true" if is_targeted else "false"},'
                   f'"default_reward":{"true" if default[i] else "false"}}}')

    def _fragment(self, k: int, offered: tuple[bool, ...],
                  column: int) -> tuple[str, list[int]]:
        """The ``_multi`` list and the ``a`` order (1-based ids) for an offered set."""
        key = (k, offered, column)
        cached = self._fragments.get(key)
        if cached is None:
            names = [VARIANTS[j] for j in range(k) if offered[j]]
            index = [j for j in range(k) if offered[j]].index(column)
            order = [index + 1, *(j + 1 for j in range(len(names)) if j != index)]
            multi = ",".join(f'{{"a":{{"arm={name}":1}}}}' for name in names)
            cached = self._fragments[key] = (f'"_multi":[{multi}]', order)
        return cached

    def _shared(self, numeric: Sequence[float], plan: int) -> str:
        # The encoder writes %.9g and dsjson turns whole numbers back into ints.
        features = ",".join(f'"x{j}":{_number(x)}' for j, x in enumerate(numeric))
        return f'"s":{{{features},"plan={PLANS[plan]}":1}},'

    def _stamp(self, seconds: float) -> str:
        whole, millis = divmod(round(seconds * 1000), 1000)
        stamp = self._stamps.get(whole)
        if stamp is None:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            stamp = self._stamps[whole] = datetime.fromtimestamp(whole, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S")
        return f"{stamp}.{millis:03d}Z"


def _number(value: float) -> str:
    text = f"{value:.9g}"
    if text.lstrip("-").isdigit() and text != "-0":
        return str(int(text))
    return repr(float(text))


def dsjson_lines(events: int, *, seed: int = 0, contextual: bool = False) -> Iterator[str]:
    """The stream's DSJSON lines (no newline), as ``generate`` writes them."""
    writer = _LineWriter(seed, contextual)
    for block in _blocks(events, seed, contextual):
        yield from writer.lines(block)


def generate(out_dir: str | Path, events: int, *, seed: int = 0, gzip: bool = False,
             contextual: bool = False) -> list[Path]:
    """Write ``events`` events as archive files in ``out_dir``; returns the files, in order."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    writer = _LineWriter(seed, contextual)
    files: list[Path] = []
    buffer: list[bytes] = []
    size = 0
    opened_at = T0

    def write() -> None:
        # Named after the file's first event, as the archiver names its files.
        stamp = datetime.fromtimestamp(opened_at, UTC).strftime("%Y%m%dT%H%M%S")
        path = directory / (f"{EXPERIMENT}-{stamp}-{len(files) + 1:06d}.json"
                            + (".gz" if gzip else ""))
        data = b"".join(buffer)
        # Level 1: a benchmark archive wants speed; the ratio barely moves on these lines.
        stored = gzip_module.compress(data, compresslevel=1) if gzip else data
        path.write_bytes(stored)
        Path(f"{path}{INDEX_SUFFIX}").write_bytes(build_index(stored, path.name))
        files.append(path)

    for block in _blocks(events, seed, contextual):
        timestamps = block["timestamp"].tolist()
        for i, line in enumerate(writer.lines(block)):
            data = (line + "\n").encode()
            if buffer and size + len(data) > FILE_BYTES:
                write()
                buffer.clear()
                size = 0
            if not buffer:
                opened_at = timestamps[i]
            buffer.append(data)
            size += len(data)
    if buffer:
        write()
    return files


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--contextual", action="store_true")
    args = parser.parse_args(argv)
    if args.events <= 0:
        parser.error("--events must be positive")
    started = time.perf_counter()
    files = generate(args.out_dir, args.events, seed=args.seed, gzip=args.gzip,
                     contextual=args.contextual)
    elapsed = time.perf_counter() - started
    total = sum(f.stat().st_size for f in files)
    print(f"{args.events:,} events in {len(files)} files ({total / 1e6:,.0f} MB) in "
          f"{elapsed:.1f} s ({args.events / elapsed:,.0f} events/s)", file=sys.stderr)


if __name__ == "__main__":
    main()
