"""Contextual policies on Vowpal Wabbit's ``--cb_explore_adf``: ``online_cover`` and ``vw``.

Each decision is one multi-line VW example (``_vw_features``): the context as
the shared line, one line per offered arm. VW's exploration reduction turns
the model's scores into a pmf over those lines, which is the policy's answer.
Learning labels the chosen arm's line ``0:<cost>:<probability>`` with
cost = −reward, since VW minimises cost.

The shared features add the same score to every action, so without a
shared × action interaction the context cannot change the choice: every
policy interacts ``s`` with ``a`` (``interactions: [sa]``) unless told otherwise.

Snapshots carry the VW model (``--save_resume``, so learning resumes where it
stopped) base64-encoded, with the workspace arguments. VW's binding saves and
loads a model only through a file path, so ``snapshot`` and ``load_policy``
write it to a private ``tempfile.TemporaryDirectory`` and read it back: the
one unavoidable I/O in ``bandit/``. VW does not save all the state it learns
with (measured: after a plain save and load, ``--cover``, ``--cb_type dr``,
``--bag`` and ``--rnd`` models drift apart from the original as both learn on),
so a snapshot is a checkpoint: the policy itself carries on from the saved
model, exactly as every copy restored from it will. On the synthetic
contextual problem learning was no worse with a snapshot every 10 events. A
restore passes the same arguments again except ``--random_seed``, which the
model stores and VW refuses to see twice.

Predicting does not change what the policy answers or learns (checked for
every explorer accepted here): VW only counts the example in its progress
statistics, which are saved with the model, so two policies with the same
history answer alike even when their snapshot bytes differ.

A policy owns one VW workspace, which is not thread-safe: use a policy from
one thread at a time.
"""

from __future__ import annotations

import base64
import binascii
import math
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import vowpalwabbit

from ._errors import FeedbackError, SnapshotError, SpecError
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context, Feedback
from ._vw_features import ACTION_NAMESPACE, SHARED_NAMESPACE, FeatureEncoder

# Always present; the policy owns them, so ``flags`` may not name them.
FIXED_ARGS = ("--cb_explore_adf", "--quiet", "--save_resume")
DEFAULT_INTERACTIONS = ("sa",)
_NAMESPACES = frozenset(SHARED_NAMESPACE + ACTION_NAMESPACE + ":")  # ":" is VW's wildcard


class _VWRefusedError(ValueError):
    """VW refused its arguments or a model (it raises RuntimeError or ValueError)."""


@dataclass(frozen=True, slots=True)
class _Option:
    """One option ``flags`` may carry: its value's kind and range, and what it needs."""

    kind: str  # "flag", "int", "float", "choice" or "namespaces"
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    needs: tuple[str, ...] = ()  # explorers it applies to; () means any
    choices: tuple[str, ...] = ()
    repeatable: bool = False


# The explorers are mutually exclusive (VW fails, or crashes, when two are
# stacked); with none of them VW explores epsilon-greedily (--epsilon, default 0.05).
EXPLORERS = ("first", "bag", "cover", "squarecb", "softmax", "regcb", "synthcover", "rnd")
_GREEDY = "epsilon-greedy"
_OPTIONS: dict[str, _Option] = {
    "first": _Option("int", 1, 1e9),
    "bag": _Option("int", 1, 100),  # --bag 0 crashes VW 9.11.9
    "cover": _Option("int", 1, 100),
    "squarecb": _Option("flag"),
    "softmax": _Option("flag"),
    "regcb": _Option("flag"),
    "synthcover": _Option("flag"),
    "rnd": _Option("int", 1, 100),
    "epsilon": _Option("float", 0, 1, needs=(_GREEDY, "first", "bag", "cover", "squarecb",
                                             "softmax", "synthcover", "rnd")),
    "first_only": _Option("flag", needs=(_GREEDY, "bag", "cover", "regcb")),
    "greedify": _Option("flag", needs=("bag",)),
    "psi": _Option("float", 0, needs=("cover",)),
    "nounif": _Option("flag", needs=("cover",)),
    "gamma_scale": _Option("float", 0, low_open=True, needs=("squarecb",)),
    "gamma_exponent": _Option("float", 0, needs=("squarecb",)),
    "elim": _Option("flag", needs=("squarecb",)),
    "lambda": _Option("float", 0, needs=("softmax",)),
    "regcbopt": _Option("flag", needs=("regcb",)),
    "mellowness": _Option("float", 0, needs=("regcb", "squarecb")),
    "cb_min_cost": _Option("float", needs=("regcb", "squarecb")),
    "cb_max_cost": _Option("float", needs=("regcb", "squarecb")),
    "synthcoverpsi": _Option("float", 0, needs=("synthcover",)),
    "synthcoversize": _Option("int", 1, 10_000, needs=("synthcover",)),
    "rnd_alpha": _Option("float", 0, needs=("rnd",)),
    "rnd_invlambda": _Option("float", 0, low_open=True, needs=("rnd",)),
    "cb_type": _Option("choice", choices=("ips", "dr", "mtr", "dm", "sm")),
    "learning_rate": _Option("float", 0, low_open=True),
    "power_t": _Option("float", 0),
    "initial_t": _Option("float", 0),
    "l1": _Option("float", 0),
    "l2": _Option("float", 0),
    "sgd": _Option("flag"),
    "adaptive": _Option("flag"),
    "invariant": _Option("flag"),
    "normalized": _Option("flag"),
    "bit_precision": _Option("int", 1, 28),
    "noconstant": _Option("flag"),
    "interactions": _Option("namespaces", repeatable=True),
    "quadratic": _Option("namespaces", repeatable=True),
    "cubic": _Option("namespaces", repeatable=True),
    "ignore": _Option("namespaces", repeatable=True),
    "ignore_linear": _Option("namespaces", repeatable=True),
}
_SHORT = {"l": "learning_rate", "q": "quadratic", "b": "bit_precision", "d": "data",
          "i": "initial_regressor", "f": "final_regressor", "c": "cache", "k": "kill_cache",
          "p": "predictions", "r": "raw_predictions", "t": "testonly", "a": "audit",
          "P": "progress", "h": "help"}
_FILES_OR_SOCKETS = frozenset({
    "data", "initial_regressor", "final_regressor", "readable_model", "invert_hash", "cache",
    "cache_file", "kill_cache", "daemon", "port", "port_file", "pid_file", "predictions",
    "raw_predictions", "dictionary", "dictionary_path", "feature_mask",
    "input_feature_regularizer", "output_feature_regularizer_binary",
    "output_feature_regularizer_text", "span_server", "span_server_port", "sender",
    "audit_regressor", "epsilon_decay_audit", "dump_json_weights_experimental",
    "save_per_pass", "compressed", "audit", "progress",
})
_OWNED = frozenset({
    "cb_explore_adf", "cb_adf", "cb_explore", "cb", "save_resume", "predict_only_model",
    "preserve_performance_counters", "quiet", "random_seed", "dsjson", "json", "no_stdin",
    "testonly", "driver_output", "driver_output_off", "log_level", "log_output",
    "limit_output", "help", "version", "dry_run", "passes", "holdout_off",
})


def parse_flags(tokens: Sequence[str], path: str) -> list[str]:
    """Validate VW options against the allowlist; the normalised ``--name value`` tokens.

    Raises ``SpecError`` on ``path`` naming the first option that is unknown,
    not allowed, malformed, out of range, or meaningless with the chosen explorer.
    """
    seen: dict[str, str | None] = {}
    out: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, value, shown = _split_option(token, path)
        option = _allowed(name, shown, path)
        if option.kind == "flag":
            if value is not None:
                raise SpecError(path, f"--{name} takes no value")
        else:
            if value is None:
                if index == len(tokens):
                    raise SpecError(path, f"--{name} needs a value")
                value = tokens[index]
                index += 1
            value = _check_value(name, option, value, path)
        if name in seen and not option.repeatable:
            raise SpecError(path, f"--{name} is given twice")
        seen[name] = value
        out.append(f"--{name}")
        if value is not None:
            out.append(value)
    _check_explorer(seen, path)
    return out


def _split_option(token: object, path: str) -> tuple[str, str | None, str]:
    """``--name[=value]`` or ``-x[value]`` → (long name, value or None, as written)."""
    if not isinstance(token, str) or not token.startswith("-") or len(token) < 2:
        raise SpecError(path, f"{token!r} is not an option (expected --name or --name value)")
    if token.startswith("--"):
        name, equals, value = token[2:].partition("=")
        return name, value if equals else None, f"--{name}"
    if token[1] not in _SHORT:  # -x, or a long name behind one dash
        return token, None, token
    return _SHORT[token[1]], token[2:] or None, token[:2]


def _allowed(name: str, shown: str, path: str) -> _Option:
    option = _OPTIONS.get(name)
    if option is not None:
        return option
    if name in _FILES_OR_SOCKETS:
        reason = "reads or writes files or opens sockets"
    elif name in _OWNED:
        reason = "set by the policy"
    else:
        reason = f"not an exploration or learning option; allowed: {', '.join(_OPTIONS)}"
    raise SpecError(path, f"{shown} is not allowed ({reason})")


def _check_value(name: str, option: _Option, value: str, path: str) -> str:
    if option.kind == "choice":
        if value not in option.choices:
            raise SpecError(path, f"--{name} must be one of {', '.join(option.choices)}, "
                                  f"got {value!r}")
        return value
    if option.kind == "namespaces":
        if not value or not _NAMESPACES.issuperset(value):
            raise SpecError(path, f"--{name} {value!r}: namespaces are {SHARED_NAMESPACE} "
                                  f"(context), {ACTION_NAMESPACE} (arm) and : (all)")
        return value
    try:
        number = int(value) if option.kind == "int" else float(value)
    except ValueError:
        wanted = "an integer" if option.kind == "int" else "a number"
        raise SpecError(path, f"--{name} needs {wanted}, got {value!r}") from None
    too_low = number <= option.low if option.low_open else number < option.low
    if not math.isfinite(number) or too_low or number > option.high:
        low = "(" if option.low_open else "["
        raise SpecError(path, f"--{name} must be in {low}{option.low:g}, {option.high:g}], "
                              f"got {value!r}")
    return str(number) if option.kind == "int" else repr(number)


def _check_explorer(seen: dict[str, str | None], path: str) -> None:
    chosen = [name for name in EXPLORERS if name in seen]
    if len(chosen) > 1:
        raise SpecError(path, f"choose one explorer, got --{' and --'.join(chosen)}")
    explorer = chosen[0] if chosen else _GREEDY
    for name in seen:
        needs = _OPTIONS[name].needs
        if needs and explorer not in needs:
            wanted = " or ".join(n if n == _GREEDY else f"--{n}" for n in needs)
            raise SpecError(path, f"--{name} applies to {wanted}, not "
                                  f"{explorer if explorer == _GREEDY else '--' + explorer}")


def interaction_args(reader: SpecReader) -> list[str]:
    """``interactions`` (default ``[sa]``) as ``--interactions`` arguments."""
    value = reader.raw("interactions", list(DEFAULT_INTERACTIONS))
    path = f"{reader.path}.interactions"
    if not isinstance(value, list):
        reader.report(path, f"must be a list of namespace pairs such as 'sa', got {value!r}")
        return []
    args: list[str] = []
    for i, item in enumerate(value):
        if not (isinstance(item, str) and 2 <= len(item) <= 3
                and _NAMESPACES.issuperset(item)):
            reader.report(f"{path}[{i}]", f"must be 2 or 3 namespaces from {SHARED_NAMESPACE} "
                                          f"(context), {ACTION_NAMESPACE} (arm), : (all); "
                                          f"got {item!r}")
            continue
        args += ["--interactions", item]
    return args


class VWPolicy(Policy):
    """A ``cb_explore_adf`` workspace behind the ``Policy`` interface.

    ``args`` are the exploration and learning arguments (allowlisted by
    ``parse_flags``); the fixed ones and ``--random_seed`` are added here.
    """

    contextual = True

    def __init__(
        self,
        arms: Sequence[Arm],
        *,
        floor: float = 0.0,
        seed: int = 0,
        args: Sequence[str] = (),
        model: bytes | None = None,
    ) -> None:
        super().__init__(arms, floor=floor, seed=seed)
        self.args = parse_flags(args, "policy.args")
        self._features = FeatureEncoder(self._arms)
        self._saved: str | None = None  # the model of the current state, base64, once saved
        if model is None:
            # VW's seed is unsigned 64-bit; the policy's may be any int.
            seed_args = ["--random_seed", str(seed % (1 << 64))]
            self._use(_workspace([*FIXED_ARGS, *seed_args, *self.args]))
        else:
            self._use(_workspace([*FIXED_ARGS, *self.args], model))
            self._saved = base64.b64encode(model).decode("ascii")

    def _use(self, workspace: vowpalwabbit.Workspace) -> None:
        self._workspace = workspace
        # Bound once: the decision path calls them on every request.
        self._parse = workspace._parse
        self._predict = workspace.predict_multi
        self._learn_multi = workspace.learn_multi
        self._finish = workspace._finish_example_multi_ex

    @classmethod
    def _build(cls, reader: SpecReader, arms: Sequence[Arm], args: list[str], path: str, *,
               floor: float, seed: int) -> Self:
        """Build from read spec keys; VW's own refusals become ``SpecError`` on ``path``.
        With problems already reported, the spec is refused without building VW."""
        interactions = interaction_args(reader)
        reader.finish()
        reader.raise_problems()
        try:
            return cls(arms, floor=floor, seed=seed, args=[*args, *interactions])
        except _VWRefusedError as exc:
            raise SpecError(path, f"rejected by Vowpal Wabbit: {exc}") from None

    def _preferences(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        examples = self._parse("\n".join(self._features.lines(context, offered)))
        try:
            self._predict(examples)
            scores = examples[0].get_action_scores()
        finally:
            self._finish(examples)
        return np.array(scores, dtype=np.float64)

    def _learn(self, batch: list[Feedback]) -> None:
        # Encode the whole batch first: a bad context or eligible set refuses
        # the batch before VW has learned any of it.
        texts = [self._example(item) for item in batch]
        self._saved = None
        for text in texts:
            examples = self._parse(text)
            try:
                self._learn_multi(examples)
            finally:
                self._finish(examples)

    def _example(self, item: Feedback) -> str:
        if item.eligible is None:
            offered: Sequence[Arm] = self._arms
        else:
            # Arms removed since the decision still count as offered then.
            offered = item.eligible
            if item.arm not in offered:
                raise FeedbackError(f"arm {item.arm!r} is not among the eligible arms "
                                    f"{list(offered)!r}")
            if len(set(offered)) != len(offered) or not all(
                    isinstance(arm, str) and arm for arm in offered):
                raise FeedbackError(f"eligible arms must be unique non-empty names, "
                                    f"got {list(offered)!r}")
        lines = self._features.lines(item.context, tuple(offered))
        chosen = 1 + list(offered).index(item.arm)
        cost, probability = -float(item.reward), float(item.probability)
        lines[chosen] = f"0:{cost!r}:{probability!r} {lines[chosen]}"
        return "\n".join(lines)

    def _on_add_arm(self, arm: Arm) -> None:
        # The model is keyed by arm name: a new arm starts from the shared weights.
        self._features.add_arm(arm)

    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        self._features.remove_arm(arm)

    def _state(self) -> dict[str, Any]:
        if self._saved is None:
            model = _save(self._workspace)
            # A snapshot is a checkpoint: carry on from the saved model, as every
            # copy restored from it will, so that what VW does not save (--bag's
            # random generator) cannot make them drift apart.
            self._use(_workspace([*FIXED_ARGS, *self.args], model))
            self._saved = base64.b64encode(model).decode("ascii")
        return {"args": self.args, "model": self._saved}

    @classmethod
    def _restore(cls, arms: list[Arm], floor: float, seed: int, state: dict[str, Any]) -> Self:
        try:
            model = base64.b64decode(state["model"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise SnapshotError(f"the VW model is not base64: {exc}") from exc
        try:
            return cls(arms, floor=floor, seed=seed, args=list(state["args"]), model=model)
        except _VWRefusedError as exc:
            raise SnapshotError(f"Vowpal Wabbit cannot load the model: {exc}") from exc


@register
class OnlineCoverPolicy(VWPolicy):
    """Online cover (Agarwal et al. 2014, "Taming the monster"): ``--cover N --cb_type T``.

    Spec keys: ``cover`` (policies in the cover, ≥ 1, default 3), ``cb_type``
    (ips | dr | mtr, default mtr), ``interactions`` (default ``[sa]``).
    """

    type_name = "online_cover"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        cover = reader.integer("cover", 3, low=1, high=100)
        cb_type = reader.choice("cb_type", "mtr", ("ips", "dr", "mtr"))
        args = ["--cover", str(cover), "--cb_type", cb_type]
        return cls._build(reader, arms, args, reader.path, floor=floor, seed=seed)


@register
class VWFlagsPolicy(VWPolicy):
    """Any allowlisted ``cb_explore_adf`` exploration: ``flags: "--squarecb --gamma_scale 10"``.

    Spec keys: ``flags`` (default empty: VW's epsilon-greedy with ε = 0.05),
    ``interactions`` (default ``[sa]``). RegCB and ``--squarecb --elim`` bound
    costs by ``--cb_min_cost``/``--cb_max_cost`` (default [0, 1]); cost is
    −reward, so rewards in [0, 1] need ``--cb_min_cost -1 --cb_max_cost 0``.
    """

    type_name = "vw"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        path = f"{reader.path}.flags"
        flags = reader.string("flags", "")
        args: list[str] = []
        try:
            args = parse_flags(shlex.split(flags), path)
        except SpecError as exc:  # the first bad option: the rest cannot be read past it
            reader.report_error(exc)
        except ValueError as exc:  # shlex
            reader.report(path, f"cannot be parsed: {exc}")
        return cls._build(reader, arms, args, path, floor=floor, seed=seed)


def _workspace(args: list[str], model: bytes | None = None) -> vowpalwabbit.Workspace:
    try:
        if model is None:
            return vowpalwabbit.Workspace(arg_list=args)
        with tempfile.TemporaryDirectory(prefix="bandit-vw-") as directory:
            path = Path(directory, "model")
            path.write_bytes(model)
            return vowpalwabbit.Workspace(arg_list=[*args, "-i", str(path)])
    except (RuntimeError, ValueError) as exc:
        raise _VWRefusedError(str(exc)) from exc


def _save(workspace: vowpalwabbit.Workspace) -> bytes:
    with tempfile.TemporaryDirectory(prefix="bandit-vw-") as directory:
        path = Path(directory, "model")
        workspace.save(str(path))
        return path.read_bytes()

