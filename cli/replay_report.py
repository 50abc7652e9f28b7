"""The replay result as one self-contained HTML page, to keep or send to a team.

``write_report`` renders the replay command's result object (it computes no estimate):
the trust audit first, then each candidate's estimates as forest plots against the
logging policy, the numbers in a table, the log's mean reward over time and the
logging probabilities per variant.

The page needs nothing but itself: the charts are inline SVG drawn in Python
(``cli.replay_charts``), the styles are inline, there is no script, and its
Content-Security-Policy forbids every request, so it opens offline, from a mail
attachment or a bucket alike. Every string from the data (experiment, variant,
candidate names, file paths, messages) is escaped: a name is text, never markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .replay_charts import ForestRow, Reference, cumulative, forest, histogram
from .replay_format import (
    ESTIMATOR_NAMES,
    MISSING,
    Interval,
    candidate_flags,
    count,
    decimals,
    estimators,
    exclusions,
    finite,
    interval,
    mapping,
    number,
    probability,
    sequence,
    time_range,
    utc,
    version_label,
    warnings,
    whole,
)

__all__ = ["ReportError", "render_report", "write_report"]

# Rows of a check's table beyond the failing ones: hundreds of policy versions would
# bury the failures; the rest are counted.
OK_ROWS_SHOWN = 20

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_VERDICT_WORDS = {"better": "better", "worse": "worse", "unclear": "inconclusive",
                  "unknown": MISSING}


class ReportError(Exception):
    """The report could not be written; the message names the file and the reason."""


def write_report(result: Mapping[str, Any], path: Path) -> None:
    """Write ``result`` as an HTML page to ``path`` (ReportError if the file cannot be written)."""
    page = render_report(result)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write the report to {path}: "
                          f"{error.strerror or error}") from None


def render_report(result: Mapping[str, Any]) -> str:
    """The page for ``result``, as text."""
    places = decimals(result)
    experiment = result.get("experiment")
    title = f"Replay report: {experiment}" if experiment else "Replay report"
    body = [_header(result, title), _audit(result), _estimates(result, places),
            _over_time(result, places), _histograms(result), _footer()]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="referrer" content="no-referrer">\n'
            f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f'<main>\n{"".join(body)}</main>\n</body>\n</html>\n')


def _e(value: object) -> str:
    return escape(str(value))


# -- header and status ------------------------------------------------------------

def _header(result: Mapping[str, Any], title: str) -> str:
    archive = mapping(result.get("archive"))
    facts = []
    span = time_range(result)
    if span is not None:
        facts.append(f"{utc(span[0])} → {utc(span[1])} UTC")
    facts += [f"{count(whole(archive.get(key)))} {key}" for key in ("files", "lines", "events")]
    paths = ", ".join(str(path) for path in sequence(archive.get("paths")))
    source = f'<p class="source">from <code>{_e(paths)}</code></p>' if paths else ""
    return (f"<header><h1>{_e(title)}</h1>"
            f'<p class="facts">{" · ".join(_e(fact) for fact in facts)}</p>{source}'
            f"{_status(result)}</header>\n")


def _status(result: Mapping[str, Any]) -> str:
    audit = mapping(result.get("audit"))
    pills = [_check_pill("Calibration", mapping(audit.get("calibration"))),
             _check_pill("Sample ratio", mapping(audit.get("sample_ratio")))]
    bad = whole(mapping(audit.get("bad_lines")).get("count")) or 0
    pills.append(_pill("Bad lines", f"{bad:,} skipped" if bad else "none",
                       "warn" if bad else "ok"))
    excluded = sum(n for _, n in exclusions(result))
    pills.append(_pill("Excluded", f"{excluded:,} events", "info"))
    found = len(warnings(result))
    pills.append(_pill("Warnings", f"{found:,}" if found else "none", "warn" if found else "ok"))
    return f'<div class="status" aria-label="trust audit summary">{"".join(pills)}</div>'


def _check_pill(name: str, check: Mapping[str, Any]) -> str:
    ok = check.get("ok")
    if ok is True:
        return _pill(name, "ok", "ok")
    if ok is False:
        return _pill(name, "FAILED", "bad")
    return _pill(name, "not checked", "info")


def _pill(name: str, value: str, tone: str) -> str:
    return f'<span class="pill {tone}"><b>{_e(name)}</b> {_e(value)}</span>'


# -- trust audit --------------------------------------------------------------------

def _audit(result: Mapping[str, Any]) -> str:
    audit = mapping(result.get("audit"))
    found = warnings(result)
    warning_card = ""
    if found:
        items = "".join(f"<li>{_e(text)}</li>" for text in found)
        warning_card = (f'<div class="card warn"><h3>Warnings</h3>'
                        f'<ul class="warnings">{items}</ul></div>')
    return (f'<section id="audit"><h2>Trust audit</h2>'
            f'<p class="lead">Estimates are only as good as the log: these checks come first.</p>'
            f'<div class="cards">{_events_card(result, audit)}{_smallest_card(audit)}'
            f"{warning_card}{_calibration_card(mapping(audit.get('calibration')))}"
            f"{_sample_ratio_card(mapping(audit.get('sample_ratio')))}</div></section>\n")


def _events_card(result: Mapping[str, Any], audit: Mapping[str, Any]) -> str:
    archive = mapping(result.get("archive"))
    rows = [("lines read", count(whole(archive.get("lines")))),
            ("events evaluated", count(whole(archive.get("events"))))]
    rows += [(f"excluded: {reason}", f"{n:,}") for reason, n in exclusions(result)]
    defaults = mapping(audit.get("default_rewards"))
    default_count = whole(defaults.get("count")) or 0
    kept = "dropped" if defaults.get("kept") is False else "kept"
    rows.append(("default reward (no reward came)",
                 f"{default_count:,}, {kept}" if default_count else "none"))
    bad = mapping(audit.get("bad_lines"))
    bad_count = whole(bad.get("count")) or 0
    rows.append(("bad lines, skipped", f"{bad_count:,}" if bad_count else "none"))
    table = "".join(f'<tr><th scope="row">{_e(name)}</th><td class="num">{_e(value)}</td></tr>'
                    for name, value in rows)
    examples = ""
    listed = [mapping(example) for example in sequence(bad.get("examples"))]
    if listed:
        items = "".join(
            f"<li><code>{_e(example.get('path', '?'))}:{_e(example.get('line', '?'))}</code> "
            f"{_e(example.get('message', ''))}</li>" for example in listed)
        examples = f'<h4>Bad lines, first examples</h4><ul class="examples">{items}</ul>'
    return (f'<div class="card tall"><h3>Events</h3><table class="facts-table">{table}</table>'
            f"{examples}</div>")


def _smallest_card(audit: Mapping[str, Any]) -> str:
    smallest = [finite(value) for value in sequence(audit.get("smallest_probabilities"))]
    known = [value for value in smallest if value is not None]
    if not smallest:
        return '<div class="card"><h3>Smallest logged probabilities</h3><p>—</p></div>'
    values = " ".join(f"<span class=\"chip\">{_e(probability(value))}</span>"
                      for value in smallest)
    weight = ""
    if known and min(known) > 0.0:
        weight = (f"<p>The largest importance weight is 1/μ = "
                  f"<b>{1.0 / min(known):,.0f}</b>: one such event counts as that many.</p>")
    return (f'<div class="card"><h3>Smallest logged probabilities μ</h3><p>{values}</p>'
            f'{weight}<p class="hint">Small μ make large weights, and IPS-family estimates '
            f"noisy; a candidate that favours those choices has a low ESS.</p></div>")


def _check_heading(name: str, check: Mapping[str, Any], rows: int, failing: int) -> str:
    ok = check.get("ok")
    if ok is True:
        verdict = f'<span class="verdict ok">ok</span> all {rows:,} rows pass'
    elif ok is False:
        verdict = f'<span class="verdict bad">FAILED</span> {failing:,} of {rows:,} rows fail'
    else:
        verdict = '<span class="verdict info">not checked</span>'
    return f"<h3>{_e(name)} {verdict}</h3>"


def _shown(rows: list[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    failing = [row for row in rows if row.get("ok") is False]
    others = [row for row in rows if row.get("ok") is not False]
    return failing + others[:OK_ROWS_SHOWN], max(len(others) - OK_ROWS_SHOWN, 0)


def _row_class(row: Mapping[str, Any]) -> str:
    return ' class="failing"' if row.get("ok") is False else ""


def _ok_cell(row: Mapping[str, Any]) -> str:
    ok = row.get("ok")
    word, tone = ("ok", "ok") if ok is True else ("FAIL", "bad") if ok is False else ("—", "")
    return f'<td class="state {tone}">{word}</td>'


def _more_rows(hidden: int, columns: int) -> str:
    if not hidden:
        return ""
    return (f'<tr class="more"><td colspan="{columns}">… and {hidden:,} more rows, '
            f"all passing</td></tr>")


def _calibration_card(check: Mapping[str, Any]) -> str:
    rows = [mapping(row) for row in sequence(check.get("rows"))]
    shown, hidden = _shown(rows)
    failing = sum(row.get("ok") is False for row in rows)
    body = "".join(
        f"<tr{_row_class(row)}><td>{_e(row.get('experiment', MISSING))}</td>"
        f"<td>{_e(version_label(row))}</td><td>{_e(row.get('variant', MISSING))}"
        f'</td><td class="num">{count(whole(row.get("n")))}</td>'
        f'<td class="num">{number(finite(row.get("mean")), 3)}</td>'
        f'<td class="num">{interval(finite(row.get("lower")), finite(row.get("upper")), 3)}'
        f"</td>{_ok_cell(row)}</tr>" for row in shown)
    return (f'<div class="card wide">{_check_heading("Calibration", check, len(rows), failing)}'
            f'<p class="hint">Per experiment, policy version and variant, the mean of '
            f"1{{chosen}}/μ over the events that offered it: 1 in expectation when the logged "
            f"probabilities are the ones the choices were drawn with.</p>"
            f'<table class="data"><thead><tr><th>experiment</th><th>version</th>'
            f'<th>variant</th><th class="num">events</th><th class="num">mean 1{{chosen}}/μ</th>'
            f'<th class="num">95% interval</th><th>check</th></tr></thead>'
            f"<tbody>{body}{_more_rows(hidden, 7)}</tbody></table></div>")


def _sample_ratio_card(check: Mapping[str, Any]) -> str:
    rows = [mapping(row) for row in sequence(check.get("rows"))]
    shown, hidden = _shown(rows)
    failing = sum(row.get("ok") is False for row in rows)
    body = []
    for row in shown:
        observed, expected = mapping(row.get("observed")), mapping(row.get("expected"))
        split = "".join(_split_item(variant, finite(observed.get(variant)),
                                    finite(expected.get(variant)))
                        for variant in dict.fromkeys([*observed, *expected]))
        p_value = finite(row.get("p_value"))
        body.append(
            f"<tr{_row_class(row)}><td>{_e(row.get('experiment', MISSING))}</td>"
            f"<td>{_e(version_label(row))}</td>"
            f'<td><ul class="split">{split}</ul></td>'
            f'<td class="num">{number(finite(row.get("chi2")), 2)}</td>'
            f'<td class="num">{count(whole(row.get("dof")))}</td>'
            f'<td class="num">{MISSING if p_value is None else f"{p_value:.2g}"}</td>'
            f"{_ok_cell(row)}</tr>")
    return (f'<div class="card wide">{_check_heading("Sample ratio", check, len(rows), failing)}'
            f'<p class="hint">Per experiment and policy version, the choices per variant '
            f"against the sum of their logged probabilities Σμ (chi-square): a mismatch means "
            f"choices were dropped, duplicated or logged with other probabilities.</p>"
            f'<table class="data"><thead><tr><th>experiment</th><th>version</th>'
            f'<th>observed / expected per variant</th><th class="num">χ²</th>'
            f'<th class="num">dof</th><th class="num">p-value</th><th>check</th></tr></thead>'
            f'<tbody>{"".join(body)}{_more_rows(hidden, 7)}</tbody></table></div>')


def _split_item(variant: str, observed: float | None, expected: float | None) -> str:
    gap = ""
    if observed is not None and expected:
        gap = f' <span class="gap">({(observed - expected) / expected:+.1%})</span>'
    shown_expected = MISSING if expected is None else f"{expected:,.1f}"
    return (f"<li><b>{_e(variant)}</b> {count(observed)} / {shown_expected}"
            f"{gap.replace('-', '−')}</li>")


# -- estimates ----------------------------------------------------------------------

def _estimates(result: Mapping[str, Any], places: int) -> str:
    fields = mapping(result.get("baseline"))
    baseline = Interval.read(fields)
    name = str(fields.get("name", "logging policy"))
    candidates = {str(key): mapping(value)
                  for key, value in mapping(result.get("candidates")).items()}
    lead = (f'<div class="baseline"><span class="swatch"></span><div><b>Baseline: {_e(name)}'
            f"</b>, its own mean reward on the log "
            f'<span class="big">{number(baseline.value, places)}</span> '
            f"95% {interval(baseline.lower, baseline.upper, places)} · "
            f"se {number(baseline.std_error, places)} · n {count(baseline.n)}</div></div>")
    if not candidates:
        return (f'<section id="estimates"><h2>Estimates</h2>{lead}'
                f"<p>No candidates were evaluated.</p></section>\n")
    values, differences = _forest_rows(candidates, places)
    band = None
    if baseline.value is not None:
        band = Reference(baseline.value, baseline.lower, baseline.upper, f"baseline: {name}")
    value_chart = (forest(values, reference=band, label="estimates per candidate and estimator")
                   if band is not None else "<p>The baseline is not available.</p>")
    difference_chart = forest(differences, reference=Reference(0.0, label="0 = baseline"),
                              label="difference from the baseline per candidate and estimator")
    return (f'<section id="estimates"><h2>Estimates</h2>{lead}'
            f'<figure class="card"><figcaption>Mean reward per decision, by candidate and '
            f"estimator <small>point and 95% interval; the band is the logging policy's "
            f"interval</small></figcaption>{value_chart}</figure>"
            f'<figure class="card"><figcaption>Difference from the baseline '
            f"<small>candidate − logging policy, paired per event; green or red when the 95% "
            f"interval excludes 0</small></figcaption>{difference_chart}</figure>"
            f"{_estimates_table(candidates, places)}</section>\n")


def _forest_rows(candidates: Mapping[str, Mapping[str, Any]],
                 places: int) -> tuple[list[ForestRow], list[ForestRow]]:
    values: list[ForestRow] = []
    differences: list[ForestRow] = []
    for name, fields in candidates.items():
        notes = tuple(f"⚠ {flag}" for flag in candidate_flags(fields))
        paired = mapping(fields.get("vs_baseline"))
        for estimator in estimators(fields):
            value = Interval.read(fields.get(estimator))
            values.append(ForestRow(
                name, estimator, value.value, value.lower, value.upper,
                _figures(value, places, signed=False),
                "muted" if notes else "neutral", notes))
            difference = Interval.read(paired.get(estimator))
            differences.append(ForestRow(
                name, estimator, difference.value, difference.lower, difference.upper,
                _figures(difference, places, signed=True),
                difference.verdict, notes))
    return values, differences


def _figures(estimate: Interval, places: int, *, signed: bool) -> str:
    if estimate.value is None:
        return MISSING
    return (f"{number(estimate.value, places, signed=signed)}  "
            f"{interval(estimate.lower, estimate.upper, places, signed=signed)}")


def _estimates_table(candidates: Mapping[str, Mapping[str, Any]], places: int) -> str:
    body = []
    for name, fields in candidates.items():
        names = estimators(fields)
        paired = mapping(fields.get("vs_baseline"))
        flags = "".join(f'<span class="flag">{_e(flag)}</span>'
                        for flag in candidate_flags(fields))
        spec = _spec(fields.get("spec"))
        for row, estimator in enumerate(names or ["—"]):
            value = Interval.read(fields.get(estimator))
            difference = Interval.read(paired.get(estimator))
            verdict = difference.verdict
            first = (f'<td rowspan="{max(len(names), 1)}" class="candidate"><b>{_e(name)}</b>'
                     f"{flags}{spec}</td>") if row == 0 else ""
            body.append(
                f'<tr class="{"group-start" if row == 0 else ""}">{first}'
                f'<td><abbr title="{_e(ESTIMATOR_NAMES.get(estimator, estimator))}">'
                f"{_e(estimator)}</abbr></td>"
                f'<td class="num">{number(value.value, places)}</td>'
                f'<td class="num">{interval(value.lower, value.upper, places)}</td>'
                f'<td class="num">{number(value.std_error, places)}</td>'
                f'<td class="num">{count(value.ess)}</td><td class="num">{count(value.n)}</td>'
                f'<td class="num {verdict}">{number(difference.value, places, signed=True)}</td>'
                f'<td class="num {verdict}">'
                f"{interval(difference.lower, difference.upper, places, signed=True)}</td>"
                f'<td class="{verdict}">{_VERDICT_WORDS[verdict]}</td></tr>')
    return ('<div class="card table-card"><table class="data estimates"><thead><tr>'
            "<th>candidate</th><th>estimator</th><th class=\"num\">value</th>"
            '<th class="num">95% interval</th><th class="num">std error</th>'
            '<th class="num">ESS</th><th class="num">n</th><th class="num">Δ baseline</th>'
            '<th class="num">Δ 95% interval</th><th>verdict</th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _spec(spec: object) -> str:
    fields = mapping(spec)
    if not fields:
        return ""
    text = ", ".join(f"{key}: {value if isinstance(value, str) else json.dumps(value)}"
                     for key, value in fields.items())
    return f'<div class="spec"><code>{_e(text)}</code></div>'


# -- the log over time and its probabilities ------------------------------------------

def _over_time(result: Mapping[str, Any], places: int) -> str:
    series = mapping(mapping(result.get("series")).get("cumulative"))
    times = [finite(value) for value in sequence(series.get("timestamp"))]
    events = [finite(value) for value in sequence(series.get("events"))]
    rewards = [finite(value) for value in sequence(series.get("reward"))]
    points = [(t, e, r) for t, e, r in zip(times, events, rewards, strict=False)
              if t is not None and e is not None and r is not None]
    baseline = Interval.read(result.get("baseline"))
    reference = None
    if baseline.value is not None:
        reference = Reference(baseline.value, label=f"overall {number(baseline.value, places)}")
    chart = cumulative([p[0] for p in points], [p[1] for p in points], [p[2] for p in points],
                       reference=reference)
    return (f'<section id="over-time"><h2>The log over time</h2><figure class="card">'
            f"<figcaption>Mean reward of the logged decisions so far <small>cumulative, by "
            f"time (UTC); below, the events per interval</small></figcaption>{chart}"
            f"</figure></section>\n")


def _histograms(result: Mapping[str, Any]) -> str:
    histograms = mapping(mapping(result.get("series")).get("histograms"))
    cards = []
    for variant, fields in histograms.items():
        data = mapping(fields)
        edges = [finite(edge) for edge in sequence(data.get("edges"))]
        counts = [finite(n) or 0.0 for n in sequence(data.get("counts"))]
        if not edges or any(edge is None for edge in edges):
            continue
        total = sum(counts)
        chart = histogram([edge for edge in edges if edge is not None], counts,
                          label=f"logged probabilities of {variant}")
        cards.append(f'<figure class="card"><figcaption><b>{_e(variant)}</b> '
                     f"<small>{total:,.0f} events offered it</small></figcaption>{chart}"
                     f"</figure>")
    content = (f'<div class="small-multiples">{"".join(cards)}</div>' if cards
               else "<p>No probabilities were logged.</p>")
    return (f'<section id="probabilities"><h2>Logging probabilities per variant</h2>'
            f'<p class="lead">How likely the logging policy was to choose each variant, over '
            f"the events that offered it. Mass near 0 makes large importance weights; where "
            f"it is 0, the log says nothing about that variant.</p>{content}</section>\n")


def _footer() -> str:
    glossary = "".join(f"<dt>{_e(name)}</dt><dd>{_e(text)}</dd>"
                       for name, text in _GLOSSARY)
    return f'<footer><h2>Reading this report</h2><dl>{glossary}</dl></footer>\n'


_GLOSSARY: Sequence[tuple[str, str]] = (
    ("IPS", "Inverse propensity scoring: each logged reward weighted by π(a|x)/μ(a|x). "
            "Unbiased when the logged probabilities are right; noisy with large weights."),
    ("SNIPS", "Self-normalised IPS: the same weights, divided by their sum. Slightly biased, "
              "much steadier."),
    ("DM", "Direct method: a reward model's prediction under the candidate. No weights; "
           "biased wherever the model is wrong."),
    ("DR", "Doubly robust: DM plus IPS on the model's residuals. Right when either the "
           "probabilities or the model are."),
    ("ESS", "Effective sample size of the weights, (Σw)²/Σw²: how many events the estimate "
            "effectively rests on."),
    ("Δ baseline", "The candidate's value minus the logging policy's mean, with an interval "
                   "from the paired per-event differences."),
)


_STYLE = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff;
        --accent: #1f5fbf; --good: #17803d; --bad: #b3261e; --warn: #a15c00;
        --band: rgba(245, 158, 11, 0.20); --band-line: #c27803; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
header { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
         padding: 16px 20px; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 0 0 6px; }
h4 { font-size: 13px; margin: 12px 0 4px; color: var(--muted); }
p { margin: 4px 0; }
.facts { color: var(--fg); margin: 0; }
.source { color: var(--muted); margin: 2px 0 0; overflow-wrap: anywhere; }
code { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
.lead, .hint { color: var(--muted); }
.hint { font-size: 12.5px; }
.status { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }
.pill { border-radius: 999px; padding: 3px 12px; font-size: 13px; border: 1px solid; }
.pill.ok { color: var(--good); border-color: #b7dfc4; background: #eef8f1; }
.pill.bad { color: #fff; border-color: var(--bad); background: var(--bad); }
.pill.warn { color: var(--warn); border-color: #f0d2a6; background: #fff6e8; }
.pill.info { color: var(--muted); border-color: var(--line); background: #fafbfc; }
.cards { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
        padding: 14px 16px; margin: 0 0 14px; min-width: 0; }
.cards .card { margin: 0; }
.card.wide { grid-column: 1 / -1; }
.card.tall { grid-row: span 2; }
.card.warn { border-left: 4px solid var(--warn); }
.warnings { margin: 0; padding-left: 20px; color: var(--warn); }
.warnings li { overflow-wrap: anywhere; }
.examples { margin: 0; padding-left: 18px; }
.examples li { overflow-wrap: anywhere; }
.chip { display: inline-block; background: #f0f2f6; border-radius: 4px; padding: 1px 6px;
        margin: 0 4px 4px 0; font-variant-numeric: tabular-nums; }
.verdict { font-size: 12px; border-radius: 4px; padding: 1px 8px; margin: 0 6px 0 8px;
           vertical-align: 1px; }
.verdict.ok { background: #eef8f1; color: var(--good); }
.verdict.bad { background: var(--bad); color: #fff; }
.verdict.info { background: #f0f2f6; color: var(--muted); }
h3 .verdict + * { font-weight: 400; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 8px; text-align: left; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { font-weight: 600; background: #fafbfc; }
.facts-table th { background: none; font-weight: 400; color: var(--muted); width: 62%; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td { overflow-wrap: anywhere; }
tr.failing td { background: #fdecea; color: var(--bad); font-weight: 600; }
tr.more td { color: var(--muted); font-style: italic; }
td.state.ok { color: var(--good); }
td.state.bad { color: var(--bad); font-weight: 700; }
.split { list-style: none; margin: 0; padding: 0; }
.split li { white-space: nowrap; }
.split .gap { color: var(--muted); }
.baseline { display: flex; align-items: center; gap: 12px; background: var(--card);
            border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
            margin-bottom: 14px; }
.baseline .swatch { width: 28px; height: 18px; background: var(--band);
                    border-left: 2px dashed var(--band-line); flex: none; }
.baseline .big { font-size: 18px; font-weight: 700; margin: 0 4px; }
figure { margin: 0 0 14px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
figcaption small { font-weight: 400; color: var(--muted); margin-left: 6px; }
svg.chart { display: block; width: 100%; height: auto; }
svg.chart text { font-size: 12px; fill: var(--muted); }
svg.chart text.name { font-size: 13px; font-weight: 600; fill: var(--fg); }
svg.chart text.label { fill: var(--fg); }
svg.chart text.note { fill: var(--warn); }
svg.chart text.figures { fill: var(--fg); font-variant-numeric: tabular-nums; }
svg.chart text.figures.better { fill: var(--good); font-weight: 600; }
svg.chart text.figures.worse { fill: var(--bad); font-weight: 600; }
svg.chart text.missing { fill: var(--muted); font-style: italic; }
svg.chart text.reference-label { fill: var(--band-line); font-weight: 600; }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .axis { stroke: #b9bfca; stroke-width: 1; }
svg.chart .separator { stroke: var(--line); stroke-width: 1; }
svg.chart .band { fill: var(--band); }
svg.chart .reference { stroke: var(--band-line); stroke-width: 1.5; stroke-dasharray: 5 4; }
svg.chart .zero { stroke: #6b7280; stroke-width: 1.5; }
svg.chart .mark .interval { stroke: var(--accent); stroke-width: 2; }
svg.chart .mark .point { fill: var(--accent); }
svg.chart .mark.muted .interval { stroke: #9aa3b2; }
svg.chart .mark.muted .point { fill: #fff; stroke: #9aa3b2; stroke-width: 2; }
svg.chart .mark.better .interval { stroke: var(--good); }
svg.chart .mark.better .point { fill: var(--good); }
svg.chart .mark.worse .interval { stroke: var(--bad); }
svg.chart .mark.worse .point { fill: var(--bad); }
svg.chart .mark.unclear .interval, svg.chart .mark.unknown .interval { stroke: #6b7280; }
svg.chart .mark.unclear .point, svg.chart .mark.unknown .point { fill: #6b7280; }
svg.chart .line { fill: none; stroke: var(--accent); stroke-width: 2; stroke-linejoin: round; }
svg.chart .volume { fill: #c9d3e3; }
svg.chart .bar { fill: var(--accent); opacity: 0.85; }
.table-card { padding: 0; overflow-x: auto; }
.estimates td.candidate { background: #fafbfc; min-width: 150px; max-width: 240px; }
.estimates th, .estimates td { padding: 5px 7px; }
.estimates tr.group-start td { border-top: 2px solid var(--line); }
.estimates td.better { color: var(--good); font-weight: 600; }
.estimates td.worse { color: var(--bad); font-weight: 600; }
.estimates td.unclear, .estimates td.unknown { color: var(--muted); }
.estimates td:last-child { white-space: nowrap; }
.flag { display: inline-block; margin: 4px 4px 0 0; padding: 0 6px; border-radius: 4px;
        background: #fff6e8; color: var(--warn); font-size: 12px; border: 1px solid #f0d2a6; }
.spec { margin-top: 4px; color: var(--muted); }
abbr { text-decoration: none; }
.small-multiples { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
                   gap: 14px; }
.small-multiples figure { margin: 0; }
.small-multiples figcaption b { overflow-wrap: anywhere; }
footer { margin-top: 28px; color: var(--muted); font-size: 13px; }
footer h2 { color: var(--fg); }
footer dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
footer dt { font-weight: 600; color: var(--fg); }
footer dd { margin: 0; }
@media (max-width: 800px) { .cards { grid-template-columns: 1fr; } }
@media print {
  @page { size: A4; margin: 12mm; }
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  header, .card, .baseline { border-color: #ccc; break-inside: avoid; }
  section { break-before: auto; }
  h2 { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .table-card { overflow: visible; }
}
"""
