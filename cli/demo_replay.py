"""The live demo's last word: its own archive replayed against the split it started from.

The demo starts from an equal split (what an A/B test would have kept serving) and
lets Thompson sampling move the traffic. Replaying the archive it wrote answers, with
an interval, how much more per request the bandit earned than that split would
have: the logging policy's own mean against the equal split's estimate, from paired
per-event terms.

The estimate is the direct method's (DM: each variant's mean logged reward, averaged
under the split). The demo's routing ignores the request, so those means are nearly
unbiased (adaptive logging biases a starved variant's mean slightly downward: Nie et
al. 2018), and they stay steady where the weighted estimators cannot: the bandit
starves two of the three variants within a few hundred requests, their logged
probabilities fall below 0.001, and IPS, SNIPS and DR then rest on the handful of
events whose weights reach 1/μ (an effective sample size near 10 of 4,000: in one
run DR's 95% interval for the gain, [−0.162, +0.102], missed its true +0.123, which
DM's, [+0.039, +0.148], held). The replay command shows all four.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

EQUAL_SPLIT = "ab_split"


def replay_lines(archive_dir: str, variants: Sequence[str]) -> list[str]:
    """A few lines on what the archive says, and the command that shows all of it."""
    from bandit.ope import EvaluationError

    from .replay import NamedSpec, ReplayOptions, run

    split: dict[str, Any] = {"type": "static"}  # equal weights over the offered variants
    options = ReplayOptions(paths=(archive_dir,),
                            candidates=(NamedSpec(EQUAL_SPLIT, split),))
    command = ("bandit-router replay " + shlex.quote(archive_dir)
               + " --policy " + shlex.quote(f"{EQUAL_SPLIT}=static")
               + " --policy thompson --policy 'greedy={\"type\":\"epsilon_greedy\","
                 "\"epsilon\":0.05}' --report replay.html")
    try:
        document = run(options)
    except EvaluationError as exc:
        return [f"replay of the archive in {archive_dir}: not possible ({exc})"]
    baseline = document["baseline"]
    split = document["candidates"][EQUAL_SPLIT]
    gain = split["vs_baseline"]["DM"]
    if gain["value"] is None:
        return [f"replay of {document['archive']['events']:,} archived decisions: "
                "no estimate"]
    # vs_baseline is candidate − logging policy; the bandit's gain is its negative.
    lines = [
        f"replay of this run's archive ({document['archive']['events']:,} decisions in "
        f"{archive_dir}): the bandit earned {-gain['value']:+.3f} per request against the "
        f"equal A/B split it started from (DM; 95% interval [{-gain['upper']:+.3f}, "
        f"{-gain['lower']:+.3f}]); its own mean {baseline['value']:.3f}",
        f"compare other policies on it: {command}",
    ]
    support = split["support"]
    if support["biased"]:
        lines.append(f"(on {support['unsupported_events']:,} decisions the bandit gave a variant "
                     "probability 0: the log says nothing about it there)")
    if not document["audit"].get("calibration", {}).get("ok", True):
        lines.append("warning: the archive failed its calibration check; see the command above")
    return lines
