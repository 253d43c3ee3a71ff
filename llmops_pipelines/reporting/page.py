"""The evaluation report as one self-contained HTML page (see build_report).

Offline by construction: styles and the filter script are inline, charts are inline SVG with
their glyphs as paths, and the page's Content-Security-Policy lets the browser load nothing
(default-src 'none'), so even a link that slipped into model output could fetch nothing.
Everything that comes from data (answers, questions, reasons, ids) goes through Jinja2's
autoescape: model output is text, never markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from llmops_pipelines.promotion.decide import Contender
from llmops_pipelines.reporting import charts
from llmops_pipelines.reporting.tables import (
    METRICS,
    PAIRED_KINDS,
    PAIRED_LABELS,
    ReportOptions,
    candidates,
    format_ci,
    format_value,
    grid,
    id_pieces,
    paired,
    worst_rows,
)


@dataclass(frozen=True)
class Report:
    """The page and the counts the asset's metadata shows."""

    html: str
    candidates: int
    questions: int
    rows: int
    errors: int
    failing_rows: int
    disagreements: int   # questions whose quality spread is above ReportOptions.disagreement
    champion_id: str | None


def _wrap_id(value: object) -> Markup:
    """An id with break opportunities after its separators (each piece escaped)."""
    return Markup("<wbr>").join(escape(p) for p in id_pieces(str(value)))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["wrapid"] = _wrap_id
    env.filters["fv"] = lambda v, kind="score", signed=False: format_value(v, kind, signed=signed)
    env.filters["ci"] = lambda pair, kind="score", signed=False: format_ci(pair[0], pair[1], kind,
                                                                           signed=signed)
    env.filters["spread"] = lambda v: "n/a" if math.isnan(v) else f"{v:.3f}"
    return env


def _versions(rows: pd.DataFrame) -> dict[str, str]:
    out = {}
    for column in ("data_version", "index_version", "evaluator_version"):
        if column in rows:
            found = sorted({str(v) for v in rows[column].dropna()})
            if found:
                out[column.removesuffix("_version")] = ", ".join(found)
    return out


def _series(rows: pd.DataFrame, cid: str, column: str, *, scale: float = 1.0,
            answered: bool = False) -> np.ndarray:
    mine = rows[rows["candidate_id"].astype(str) == cid]
    if column not in mine:
        return np.array([], dtype=float)
    values = pd.to_numeric(mine[column], errors="coerce").astype(float) * scale
    if answered and "answer" in mine:
        values = values[mine["answer"].notna()]
    return values.to_numpy(dtype=float)


def build_report(summary: pd.DataFrame, rows: pd.DataFrame, *, champion: Contender | None = None,
                 options: ReportOptions | None = None, title: str = "Evaluation report",
                 generated_at: str = "", facts: Mapping[str, str] | None = None) -> Report:
    """The whole page from evaluation_summary and evaluation_rows (EVALUATION_* schemas).

    champion: the registry's champion with its per-question rows (promotion.deploy's
    champion_contender), or None. facts: extra header lines (experiment, deployment id, ...).
    """
    options = options or ReportOptions()
    cands = candidates(summary, champion.id if champion else None)
    known = {c.candidate_id for c in cands}
    rows = rows[rows["candidate_id"].astype(str).isin(known)] if len(rows) else rows
    questions = grid(rows, cands, options)
    compared = paired(rows, cands, champion, options)
    figures = {"metrics": "", "distributions": "", "tradeoff": "", "paired": ""}
    if cands:
        figures["metrics"] = charts.metrics_chart(cands)
        figures["distributions"] = charts.distribution_chart(
            cands, [_series(rows, c.candidate_id, "ms_per_output_token") for c in cands],
            [_series(rows, c.candidate_id, "cost_usd", scale=1000, answered=True) for c in cands])
        figures["tradeoff"] = charts.tradeoff_chart(cands)
    if compared.challengers:
        figures["paired"] = charts.paired_chart(compared)
    failing = sum(1 for q in questions for c in q.cells if c is not None and c.failures)
    errors = int(rows["error"].notna().sum()) if "error" in rows else 0
    disagreements = sum(q.disagree for q in questions)
    page = _env().from_string(TEMPLATE).render(
        csp=Markup(CSP), sections=SECTIONS, title=title, generated_at=generated_at,
        facts=dict(facts or {}), versions=_versions(rows), options=options, metrics=METRICS,
        cands=cands, questions=questions, worst=worst_rows(rows, cands, options),
        paired=compared, paired_kinds=PAIRED_KINDS, paired_labels=PAIRED_LABELS,
        figures={k: Markup(v) for k, v in figures.items()}, rows=len(rows), errors=errors,
        failing=failing, disagreements=disagreements)
    return Report(html=page, candidates=len(cands), questions=len(questions), rows=len(rows),
                  errors=errors, failing_rows=failing, disagreements=disagreements,
                  champion_id=champion.id if champion else None)


SECTIONS = (("candidates", "candidates"), ("metrics", "metrics"),
            ("distributions", "latency & cost"), ("champion", "champion vs challengers"),
            ("grid", "questions × candidates"), ("worst", "worst rows"))

STYLE = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg2: #f6f8fa; --bad: #c62828;
        --badbg: #fdecea; --good: #1a7f37; --warn: #9a6700; --warnbg: #fff8c5; }
* { box-sizing: border-box; }
body { margin: 0 auto; padding: 16px 20px 48px; max-width: 1680px; color: var(--fg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .note { color: var(--muted); } .note { margin: 4px 0 10px; }
nav a { margin-right: 14px; }
svg.chart { display: block; width: 100%; height: auto; max-width: 1650px; }
svg.chart.narrow { max-width: 950px; }
svg.chart * { stroke-linejoin: round; stroke-linecap: butt; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: 5px 7px; vertical-align: top; text-align: left;
         overflow-wrap: anywhere; word-break: break-word; }
th { background: var(--bg2); position: sticky; top: 0; z-index: 1; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th { overflow-wrap: normal; word-break: normal; hyphens: auto; }
.cid { overflow-wrap: anywhere; word-break: normal; font-family: ui-monospace, SFMono-Regular,
       Menlo, Consolas, monospace; font-size: 12px; }
.ci { display: block; color: var(--muted); font-size: 12px; white-space: nowrap; }
th .ci { white-space: normal; font-weight: normal; }
.key { font-weight: 600; white-space: nowrap; }
.champ { color: var(--good); font-weight: 600; }
.answer { white-space: pre-wrap; margin-bottom: 6px; }
.cut { color: var(--muted); font-size: 12px; }
ul.scores { list-style: none; display: flex; flex-wrap: wrap; gap: 0 12px; margin: 4px 0;
            padding: 0; font-size: 12px; font-variant-numeric: tabular-nums; }
ul.scores li { white-space: nowrap; } ul.scores span { color: var(--muted); }
ul.fails { margin: 4px 0; padding-left: 18px; color: var(--bad); font-size: 12px; }
td.fail { background: var(--badbg); }
tr.disagree td.question { box-shadow: inset 4px 0 0 var(--warn); }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px;
         background: var(--warnbg); color: var(--warn); }
details summary { cursor: pointer; color: var(--muted); font-size: 12px; }
details dl { margin: 4px 0; font-size: 12px; } details dt { font-weight: 600; }
details dd { margin: 0 0 4px 0; white-space: pre-wrap; }
.controls { display: flex; gap: 18px; align-items: center; flex-wrap: wrap; margin: 8px 0;
            padding: 8px 10px; background: var(--bg2); border: 1px solid var(--line); }
.controls input[type=number] { width: 70px; }
.better { color: var(--good); font-weight: 600; } .worse { color: var(--bad); font-weight: 600; }
.unclear, .na { color: var(--muted); }
ol.ctx { margin: 0; padding-left: 18px; font-size: 12px; }
"""

SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("#grid-table tbody tr.q"));
  var failures = document.getElementById("only-failures");
  var disagree = document.getElementById("only-disagree");
  var threshold = document.getElementById("spread-threshold");
  var count = document.getElementById("grid-count");
  function apply() {
    var bound = parseFloat(threshold.value), shown = 0;
    rows.forEach(function (row) {
      var spread = parseFloat(row.getAttribute("data-spread"));
      var split = !isNaN(spread) && !isNaN(bound) && spread > bound;
      row.classList.toggle("disagree", split);
      var keep = (!failures.checked || row.getAttribute("data-failure") === "1") &&
                 (!disagree.checked || split);
      row.hidden = !keep;
      if (keep) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " questions shown";
  }
  [failures, disagree, threshold].forEach(function (el) {
    el.addEventListener("input", apply);
    el.addEventListener("change", apply);
  });
  apply();
})();
"""

# The browser may load nothing: not a script, a style sheet, a font, an image or a frame.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>""" + STYLE + """</style>
</head>
<body>
{% macro scores(items) %}<ul class="scores">{% for label, value in items %}
<li><span>{{ label }}</span> {{ value }}</li>{% endfor %}</ul>{% endmacro %}
{% macro answer(text, cut) %}<div class="answer">{{ text if text else "(no answer)" }}</div>
{% if cut %}<span class="cut">… {{ cut }} more characters</span>{% endif %}{% endmacro %}
{% macro fails(items) %}{% if items %}<ul class="fails">{% for f in items %}<li>{{ f }}</li>
{% endfor %}</ul>{% endif %}{% endmacro %}
{% macro reasons(items) %}<dl>{% for name, text in items %}<dt>{{ name }}</dt><dd>{{ text }}</dd>
{% endfor %}</dl>{% endmacro %}
<header>
<h1>{{ title }}</h1>
<p class="meta">{{ cands|length }} candidates × {{ questions|length }} questions:
{{ rows }} rows, {{ errors }} errors, {{ failing }} failing rows, {{ disagreements }} questions
where candidates disagree (quality spread &gt; {{ options.disagreement }})
{% if generated_at %} · generated {{ generated_at }}{% endif %}</p>
{% if versions or facts %}
<p class="meta">{% for k, v in facts.items() %}{{ k }}: <span class="cid">{{ v|wrapid }}</span> ·
{% endfor %}{% for k, v in versions.items() %}{{ k }} version
<span class="cid">{{ v|wrapid }}</span>{% if not loop.last %} · {% endif %}{% endfor %}</p>
{% endif %}
<nav>{% for anchor, text in sections %}<a href="#{{ anchor }}">{{ text }}</a>{% endfor %}</nav>
</header>

<section id="candidates">
<h2>Candidates</h2>
{% if not cands %}<p class="note">No candidate was evaluated.</p>{% else %}
<p class="note">Means with their 95 % bootstrap confidence interval below (n/a: not scored).
The key (C1, …) names the candidate in every chart and table.
{% if paired.champion_id %}★ the registry's champion.{% endif %}</p>
<div class="scroll"><table id="candidates-table">
<colgroup><col style="width:48px"><col style="width:20%"><col style="width:9%">
<col style="width:9%"><col style="width:80px"><col style="width:52px"><col style="width:80px">
{% for m in metrics %}<col>{% endfor %}<col style="width:110px"><col style="width:56px"></colgroup>
<thead><tr><th>key</th><th>candidate id</th><th>prompt</th><th>model</th><th>endpoint</th>
<th class="num">rows</th><th class="num">coverage</th>
{% for m in metrics %}<th class="num">{{ m.label }}<span class="ci">{{ m.unit }}</span></th>
{% endfor %}<th class="num">p50 / p95 ms/tok</th><th class="num">errors</th></tr></thead>
<tbody>
{% for c in cands %}
<tr data-candidate="{{ c.candidate_id }}"><td class="key">{{ c.key }}
{% if c.is_champion %}<span class="champ" title="champion">★</span>{% endif %}</td>
<td class="cid">{{ c.candidate_id|wrapid }}</td><td class="cid">{{ c.prompt|wrapid }}</td>
<td class="cid">{{ c.model|wrapid }}</td><td>{{ c.endpoint or "n/a" }}</td>
<td class="num">{{ c.rows }}</td><td class="num">{{ c.coverage|fv }}</td>
{% for m in metrics %}<td class="num">{{ c.values[m.column]|fv(m.kind) }}
<span class="ci">{{ c.ci[m.column]|ci(m.kind) }}</span></td>{% endfor %}
<td class="num">{{ c.latency_p50|fv("ms") }} / {{ c.latency_p95|fv("ms") }}</td>
<td class="num">{{ c.errors }}</td></tr>
{% endfor %}
</tbody></table></div>
{% endif %}
</section>

<section id="metrics">
<h2>Five metrics with 95 % confidence intervals</h2>
<p class="note">Dot: the candidate's mean over its rows; bar: the 95 % percentile bootstrap
interval of that mean (evaluation_summary's *_ci_low / *_ci_high).</p>
{{ figures.metrics }}
</section>

<section id="distributions">
<h2>Latency and cost per answer</h2>
<p class="note">Every row's ms per output token, and its cost scaled to 1000 answers, per
candidate (evaluation_rows).</p>
{{ figures.distributions }}
{{ figures.tradeoff }}
</section>

<section id="champion">
<h2>Champion vs challengers</h2>
{% if paired.champion_id %}<p>Champion: <span class="key">{{ paired.champion_key or "" }}</span>
<span class="cid">{{ paired.champion_id|wrapid }}</span></p>{% endif %}
<p class="note">{{ paired.note }}</p>
{% if paired.challengers %}
{{ figures.paired }}
<div class="scroll"><table id="paired-table">
<colgroup><col style="width:48px"><col style="width:24%">
{% for m in paired.metrics %}<col>{% endfor %}</colgroup>
<thead><tr><th>key</th><th>challenger</th>
{% for m in paired.metrics %}<th class="num">{{ paired_labels.get(m, m) }}</th>{% endfor %}
</tr></thead>
<tbody>
{% for r in paired.challengers %}
<tr><td class="key">{{ r.key }}</td><td class="cid">{{ r.candidate_id|wrapid }}</td>
{% for d, verdict in r.diffs %}{% set kind = paired_kinds[d.metric] %}
<td class="num {{ verdict|replace('/', '') }}" data-verdict="{{ verdict }}">
{{ d.diff|fv(kind, True) }}<span class="ci">{{ (d.ci_low, d.ci_high)|ci(kind, True) }}
n={{ d.pairs }}</span><span class="ci">{{ verdict }}</span></td>{% endfor %}
</tr>
{% endfor %}
</tbody></table></div>
{% endif %}
</section>

<section id="grid">
<h2>Every question × candidate</h2>
<p class="note">A cell is red when its row failed: an error, a metric not scored,
quality &lt; {{ options.low_quality }}, groundedness &lt; {{ options.low_groundedness }} or harm
flagged. A question disagrees when the spread (max − min) of quality across the candidates is
above the threshold.</p>
<div class="controls">
<label><input type="checkbox" id="only-failures"> only questions with a failure</label>
<label><input type="checkbox" id="only-disagree"> only questions where candidates disagree:
quality spread &gt; <input type="number" id="spread-threshold" min="0" max="1" step="0.05"
value="{{ options.disagreement }}"></label>
<span id="grid-count" class="meta">{{ questions|length }} questions</span>
</div>
<div class="scroll"><table id="grid-table" style="min-width: {{ 260 + 300 * cands|length }}px">
<colgroup><col style="width:260px">{% for c in cands %}<col>{% endfor %}</colgroup>
<thead><tr><th>question</th>{% for c in cands %}<th><span class="key">{{ c.key }}</span>
{% if c.is_champion %}<span class="champ">★</span>{% endif %}
<span class="cid">{{ c.candidate_id|wrapid }}</span></th>{% endfor %}</tr></thead>
<tbody>
{% for q in questions %}
<tr class="q{% if q.disagree %} disagree{% endif %}" data-qa="{{ q.qa_id }}"
 data-failure="{{ 1 if q.failed else 0 }}" data-spread="{{ q.spread|spread }}"
 data-disagree="{{ 1 if q.disagree else 0 }}">
<td class="question"><span class="cid">{{ q.qa_id|wrapid }}</span>
<div class="answer">{{ q.question }}</div>
<span class="badge">quality spread {{ q.spread|spread }}</span>
<details><summary>ground truth</summary>
<div class="answer">{{ q.ground_truth or "n/a" }}</div></details></td>
{% for cell in q.cells %}
{% if cell is none %}<td class="na" data-failed="0">not evaluated</td>{% else %}
<td class="cell{% if cell.failures %} fail{% endif %}" data-candidate="{{ cell.key }}"
 data-failed="{{ 1 if cell.failures else 0 }}">
{{ answer(cell.answer, cell.answer_cut) }}
{{ scores(cell.scores) }}
{{ fails(cell.failures) }}
{% if cell.reasons %}<details><summary>reasons</summary>{{ reasons(cell.reasons) }}</details>
{% endif %}
</td>{% endif %}
{% endfor %}
</tr>
{% endfor %}
</tbody></table></div>
</section>

<section id="worst">
<h2>The {{ worst|length }} worst rows</h2>
<p class="note">Errors first, then harm flagged, then the lowest quality and groundedness
(unscored counts lowest).</p>
<div class="scroll"><table id="worst-table">
<colgroup><col style="width:90px"><col style="width:18%"><col style="width:15%">
<col style="width:22%"><col style="width:11%"><col style="width:10%"><col></colgroup>
<thead><tr><th>candidate</th><th>question</th><th>ground truth</th><th>answer</th>
<th>retrieved context ids</th><th>scores</th><th>why / reasons</th></tr></thead>
<tbody>
{% for w in worst %}
<tr data-qa="{{ w.qa_id }}" data-candidate="{{ w.key }}"
 data-failed="{{ 1 if w.failures else 0 }}"><td><span class="key">{{ w.key }}</span>
<span class="cid">{{ w.qa_id|wrapid }}</span></td>
<td><div class="answer">{{ w.question }}</div></td>
<td><div class="answer">{{ w.ground_truth or "n/a" }}</div></td>
<td>{{ answer(w.answer, w.answer_cut) }}</td>
<td>{% if w.context_ids %}<ol class="ctx">{% for c in w.context_ids %}
<li class="cid">{{ c|wrapid }}</li>{% endfor %}</ol>{% else %}none{% endif %}
<span class="ci">source doc retrieved: {{ w.source_doc_retrieved }}</span></td>
<td>{{ scores(w.scores) }}</td>
<td>{{ fails(w.failures) }}{{ reasons(w.reasons) }}</td></tr>
{% endfor %}
</tbody></table></div>
</section>
<script>""" + SCRIPT + """</script>
</body>
</html>
"""
