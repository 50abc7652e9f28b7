"""Candidate policies replayed over the log: the distribution each would have served.

A ``Candidate`` is a policy spec (or a ``Policy``) walked through the archive chunk
by chunk, in log order. For every logged event it answers π(·|x_i), the candidate's
whole distribution over the chunk's columns; the estimators turn the chunk and π
into IPS, SNIPS, DM and DR.

**Progressive replay.** A learning candidate scores event i with the distribution
it has *before* learning event i, then learns event i exactly as the production
learner would feed it (``reward_ingest.learner``): the logged action, its reward,
the logged propensity μ(a_i|x_i), the context and the offered set, one
``update`` per event. π_i then depends on events < i only, so E[w_i r_i | past] is
the value of π_i whenever μ covers it, and the IPS-family estimate over the log is
an estimate of the candidate's progressive value (1/n) Σ V(π_i): the mean value of
the policies it would have had along the log (progressive validation, Blum, Kalai
& Langford 1999).

Why not the rejection form of Li, Chu, Langford & Wang (2011), which keeps an
event only when the candidate's own draw matches the logged action, and teaches
the candidate the kept events alone? It evaluates the candidate learning from its
own choices, but it needs a uniform (or reweighted) logger and discards ~(K−1)/K
of the events with K actions: a log of n events replays ~n/K of them, with ~K
times the variance. Progressive replay uses every event. The candidate learns
off-policy from the logger's choices, each weighted by its logged propensity, as
the production learner teaches any policy from the decisions that were served;
the value estimated is that of the candidate trained on the logger's data, not of
one that had chosen the actions itself.

Three ways to get there, all with the same answers as the public ``Policy`` API:

- **fixed** (``static``): no learning, no context; one ``probabilities`` call per
  distinct offered set in the chunk, vectorised over the events.
- **progressive** (every other type): ``probabilities`` then ``update``, per event.
- **VW** (``online_cover``, ``vw``): VW reads the archive's own DSJSON lines (a
  workspace with the policy's arguments plus ``--dsjson``, alive as long as the
  candidate): one ``learn`` per line, which predicts before it updates, as VW's own
  ``--dsjson`` driver does per line (``_vw_replay``). That predicts what the driver
  predicts over the file (checked pmf for pmf for every explorer the policy
  accepts) and is the model the policy learns: a line's features are the policy's
  features (``bandit.dsjson``), read from JSON instead of text (values a few float32
  ulps apart, so answers agree to ~1e-5, not bit for bit). Encoding each context to
  text twice instead costs 2-3× as much. The policy's ``floor`` is applied on top,
  as ``Policy.probabilities`` does.

Columns are ``chunk.arms``; the candidate follows a change of variant list between
chunks with ``add_arm``/``remove_arm``, as the production policy does. A ``_multi``
lists the offered variants in the chunk's column order (``bandit.dsjson`` writes
them in the experiment's variant order, which the reader keeps as columns).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ArmError, BanditError, EvaluationError, SpecError
from .._policy import Policy, decode_snapshot
from .._registry import load_policy, make_policy
from .._static import StaticPolicy
from .._types import Arm, Context, Feedback, PolicySpec
from .._vw import FIXED_ARGS, VWPolicy
from ._chunks import BoolArray, FloatArray, IntArray, LogChunk
from ._vw_replay import LineRefusedError, VWLineReplay

__all__ = ["Candidate", "CandidateError"]

# Types whose probabilities depend on nothing but the offered set: scored per set.
_FIXED_TYPES: tuple[type[Policy], ...] = (StaticPolicy,)
# A spec is checked before any chunk names the arms: on these (see _probe_arms).
_PROBE_ARM = "probe"


class CandidateError(EvaluationError):
    """A candidate that cannot be replayed: an invalid spec, a chunk it cannot read.

    The message names the candidate and what was wrong (a spec problem keeps
    ``SpecError``'s ``policy.key: problem`` text).
    """


class Candidate:
    """One candidate policy replayed over the log.

    ``spec`` is a policy spec (``{"type": "thompson"}``, the config's ``policy:``
    key) or a ``Policy``, which is copied (its snapshot) and then learns on as it
    would have: ``seed`` applies to specs only. ``probabilities`` is stateful:
    call it once per chunk, in log order.

    ``learning`` is False for a candidate whose answers never change (``static``);
    ``needs_contexts`` and ``needs_lines`` say what the chunks must carry;
    ``skipped`` counts events the candidate scored but refused to learn (a reward
    outside its model, say), which the production learner skips too.
    """

    def __init__(self, name: str, spec: PolicySpec | Policy, *, seed: int = 0) -> None:
        self.name = name
        self.skipped = 0
        self._spec: PolicySpec | None = None
        self._seed = seed
        self._policy: Policy | None = None
        self._vw: VWLineReplay | None = None
        if isinstance(spec, Policy):
            try:  # ours to teach; the caller's is untouched
                template = load_policy(spec.snapshot())
            except BanditError as exc:
                raise CandidateError(f"candidate {name!r}: cannot copy the policy: "
                                     f"{exc}") from None
            self._policy = template
        else:
            template = self._build(spec, _probe_arms(spec))  # refused now, not at chunk one
            self._spec = spec
        self.learning = not isinstance(template, _FIXED_TYPES)
        self.needs_lines = isinstance(template, VWPolicy)
        self.needs_contexts = template.contextual and not self.needs_lines

    def __repr__(self) -> str:
        return f"Candidate({self.name!r})"

    def probabilities(self, chunk: LogChunk) -> FloatArray:
        """π over ``chunk.arms`` for every event (n × K): the candidate's distribution
        before it learned the event; 0 where an arm was not offered; rows sum to 1."""
        policy = self._policy_for(chunk.arms)
        n, columns = len(chunk), len(chunk.arms)
        if n == 0:
            return np.zeros((0, columns))
        patterns, pattern_of = _offered_patterns(chunk.offered)
        if not self.learning:
            return self._fixed(policy, chunk.arms, patterns, pattern_of)
        if self.needs_lines:
            return self._replay_lines(policy, chunk, patterns, pattern_of)
        return self._replay(policy, chunk, patterns, pattern_of)

    # -- building and following the variant list -------------------------------------

    def _build(self, spec: PolicySpec, arms: Sequence[Arm]) -> Policy:
        try:
            return make_policy(spec, arms, self._seed)
        except SpecError as exc:
            raise CandidateError(f"candidate {self.name!r}: {exc}") from None

    def _policy_for(self, arms: tuple[Arm, ...]) -> Policy:
        policy = self._policy
        if policy is None:
            if self._spec is None:  # set whenever no policy is
                raise CandidateError(f"candidate {self.name!r} has no policy")
            policy = self._policy = self._build(self._spec, arms)
        else:
            self._follow(policy, arms)
        if self.needs_lines and self._vw is None:
            self._vw = self._dsjson_workspace(policy)
        return policy

    def _follow(self, policy: Policy, arms: tuple[Arm, ...]) -> None:
        """Make the policy's arms the chunk's: add the new ones, remove the gone ones."""
        if policy.arms == arms:
            return
        wanted, current = set(arms), set(policy.arms)
        gone = [arm for arm in policy.arms if arm not in wanted]
        # Remove first (a floor may not allow one arm more), but never the last arm.
        last = gone.pop() if len(gone) == len(current) else None
        try:
            for arm in gone:
                policy.remove_arm(arm)
            for arm in arms:
                if arm not in current:
                    policy.add_arm(arm)
            if last is not None:
                policy.remove_arm(last)
        except ArmError as exc:
            raise CandidateError(f"candidate {self.name!r} cannot follow the variant list "
                                 f"{list(arms)}: {exc}") from None

    def _dsjson_workspace(self, policy: Policy) -> VWLineReplay:
        if not isinstance(policy, VWPolicy):
            raise CandidateError(f"candidate {self.name!r} is not a Vowpal Wabbit policy")
        args = [*FIXED_ARGS, "--dsjson", *policy.args]
        try:
            if self._spec is not None:
                # The seed exactly as VWPolicy passes it, so the model is the policy's.
                return VWLineReplay([*args, "--random_seed", str(self._seed % (1 << 64))])
            state = decode_snapshot(policy.snapshot())["state"]
            return VWLineReplay(args, base64.b64decode(state["model"]))
        except ValueError as exc:
            raise CandidateError(f"candidate {self.name!r}: Vowpal Wabbit refused "
                                 f"{' '.join(args)}: {exc}") from None

    # -- the three replays -------------------------------------------------------------

    def _fixed(self, policy: Policy, arms: tuple[Arm, ...], patterns: BoolArray,
               pattern_of: IntArray) -> FloatArray:
        table = np.array([_row(policy.probabilities(None, _eligible(arms, offered)), arms)
                          for offered in patterns])
        return np.asarray(table[pattern_of], dtype=np.float64)

    def _replay(self, policy: Policy, chunk: LogChunk, patterns: BoolArray,
                pattern_of: IntArray) -> FloatArray:
        arms = chunk.arms
        contexts = self._contexts(chunk) if self.needs_contexts else None
        eligible_sets = [_eligible(arms, offered) for offered in patterns]
        chosen = [arms[j] for j in chunk.action.tolist()]
        rows: list[list[float]] = []
        skipped = 0
        # Bound once: this loop runs once per event.
        probabilities, update, append = policy.probabilities, policy.update, rows.append
        for i, (arm, reward, propensity, pattern) in enumerate(zip(
                chosen, chunk.reward.tolist(), chunk.propensity.tolist(), pattern_of.tolist(),
                strict=True)):
            context: Context | None = None if contexts is None else contexts[i]
            eligible = eligible_sets[pattern]
            try:
                probs = probabilities(context, eligible)
            except BanditError as exc:
                raise CandidateError(f"candidate {self.name!r} cannot score event {i} of the "
                                     f"chunk: {exc}") from None
            append([probs[a] for a in arms])
            try:
                update((Feedback(arm, reward, propensity, context, eligible),))
            except (BanditError, TypeError, ValueError):
                skipped += 1  # as the learner does: the event is scored, not learned
        self.skipped += skipped
        return np.array(rows, dtype=np.float64)

    def _replay_lines(self, policy: Policy, chunk: LogChunk, patterns: BoolArray,
                      pattern_of: IntArray) -> FloatArray:
        replay = self._vw
        if replay is None:  # _policy_for made it
            raise CandidateError(f"candidate {self.name!r} has no Vowpal Wabbit workspace")
        try:
            pmf = replay.scores(self._lines(chunk), chunk.offered)
        except LineRefusedError as exc:
            raise CandidateError(f"candidate {self.name!r}: Vowpal Wabbit: {exc}") from None
        return _as_served(pmf, chunk.offered, pattern_of, patterns, policy.floor)

    # -- what the chunk must carry -------------------------------------------------------

    def _contexts(self, chunk: LogChunk) -> Sequence[Context | None]:
        if chunk.contexts is None or len(chunk.contexts) != len(chunk):
            raise CandidateError(f"candidate {self.name!r} is contextual: read the archive "
                                 "with contexts")
        return chunk.contexts

    def _lines(self, chunk: LogChunk) -> Sequence[str]:
        if chunk.lines is None or len(chunk.lines) != len(chunk):
            raise CandidateError(f"candidate {self.name!r} learns from the DSJSON lines: "
                                 "read the archive with lines")
        return chunk.lines  # with or without its newline: VW reads a line the same


def _probe_arms(spec: PolicySpec) -> tuple[Arm, ...]:
    """Arms to check a spec on before the log names them: those a ``weights`` mapping
    names (the real arms must include them, so every problem found here is real),
    else one placeholder."""
    weights: Any = spec.get("weights") if isinstance(spec, Mapping) else None
    if isinstance(weights, Mapping):
        named = tuple(key for key in weights if isinstance(key, str) and key)
        if named:
            return named
    return (_PROBE_ARM,)


def _eligible(arms: tuple[Arm, ...], offered: BoolArray) -> tuple[Arm, ...] | None:
    """An offered mask as ``probabilities``' eligible set: None when every arm is offered,
    as the learner passes a decision without an ``eligible`` list."""
    if offered.all():
        return None
    return tuple(arms[j] for j in np.flatnonzero(offered).tolist())


def _row(probabilities: Mapping[Arm, float], arms: tuple[Arm, ...]) -> list[float]:
    return [probabilities[arm] for arm in arms]


def _as_served(pmf: FloatArray, offered: BoolArray, pattern_of: IntArray, patterns: BoolArray,
               floor: float) -> FloatArray:
    """Rows of VW's pmf as ``Policy.probabilities`` serves them: normalised (uniform over
    the offered arms when the total is not positive), then mixed with uniform so every
    offered arm gets at least ``floor`` (``bandit._policy.normalise``, ``apply_floor``)."""
    width = patterns.sum(axis=1)[pattern_of].astype(np.float64)
    uniform = offered / width[:, None]
    total = pmf.sum(axis=1)
    good = (total > 0.0) & np.isfinite(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(good[:, None], pmf / total[:, None], uniform)
    if floor <= 0.0:
        return np.asarray(shares, dtype=np.float64)
    floored = np.where(offered, floor + (1.0 - width[:, None] * floor) * shares, 0.0)
    return np.asarray(np.where((floor * width >= 1.0)[:, None], uniform, floored),
                      dtype=np.float64)


def _offered_patterns(offered: BoolArray) -> tuple[BoolArray, IntArray]:
    """The distinct offered sets (rows) and each event's index among them.

    Rows packed into one integer each make ``np.unique`` ~100× cheaper than on the
    rows themselves (1.6 µs an event otherwise); past 62 variants, rows it is.
    """
    if offered.shape[1] <= 62:
        bits = offered.astype(np.int64) @ (np.int64(1) << np.arange(offered.shape[1],
                                                                    dtype=np.int64))
        _, first, pattern_of = np.unique(bits, return_index=True, return_inverse=True)
        return offered[first], pattern_of.reshape(-1)
    patterns, pattern_of = np.unique(offered, axis=0, return_inverse=True)
    return patterns, pattern_of.reshape(-1)  # numpy 2.0.x returned it with the input's rank
