"""The report's charts: matplotlib figures rendered to SVG that is inlined in the page.

Glyphs are drawn as paths (svg.fonttype "path": no font file, no font name the viewer must
have), math text is off (a `$` in a candidate id is just a dollar sign), and the SVG is cut to
what an inline <svg> needs: no XML prolog, DOCTYPE, namespace URLs or comments. Every id gets
the chart's own prefix, so several charts on one page never resolve each other's glyphs or clip
paths. The object-oriented API only (no pyplot): no global figure state, no GUI backend.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec

import numpy as np

from llmops_pipelines.reporting.tables import (
    METRICS,
    PAIRED_KINDS,
    PAIRED_LABELS,
    Candidate,
    Paired,
    format_value,
    wrap_label,
)

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "path", "svg.hashsalt": "llmops-evaluation-report", "text.parse_math": False,
    "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "axes.grid.axis": "x", "grid.alpha": 0.3,
    # Tick labels are the values themselves: no "1e-3 + 4.5e-4" offset to add up in one's head.
    "axes.formatter.useoffset": False,
}
POINT, BETTER, WORSE, NEUTRAL = "#1f5fa8", "#1a7f37", "#c62828", "#6e7781"
# Inches: the page shows a chart at its column's width (viewBox kept), ~1650 px at most.
WIDTH = 16.5
LABEL_WIDTH = 30  # characters per line of a candidate label


P = ParamSpec("P")


def styled(draw: Callable[P, str]) -> Callable[P, str]:
    """Run a chart function under STYLE: rcParams are read when artists are made, not drawn."""
    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> str:
        from matplotlib import rc_context

        with rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def _figure(height: float, width: float = WIDTH) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(svg: str, prefix: str, label: str, css: str = "chart") -> str:
    """Matplotlib's SVG document as an element for an HTML page (see the module docstring)."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)  # matplotlib escapes "--" inside
    # Its one style rule (round joins) is the page's, scoped to charts (svg.chart *).
    svg = re.sub(r"<style[^>]*>.*?</style>", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    ids = set(_ID.findall(svg))
    svg = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"',
                 lambda m: f'href="#{prefix}-{m.group(1)}"' if m.group(1) in ids else m.group(0),
                 svg)
    svg = re.sub(r"url\(#([^)]+)\)",
                 lambda m: f"url(#{prefix}-{m.group(1)})" if m.group(1) in ids else m.group(0),
                 svg)
    # The page sizes the chart (CSS); the viewBox keeps its proportions.
    svg = re.sub(r'<svg\s+width="[^"]*"\s+height="[^"]*"',
                 f'<svg class="{css}" role="img" aria-label="{html.escape(label, quote=True)}"',
                 svg, count=1)
    return svg.strip()


def render(fig: Any, prefix: str, label: str, css: str = "chart") -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None,
                                                "Format": None, "Type": None})
    return inline_svg(buffer.getvalue(), prefix, label, css)


def _labels(cands: Sequence[Candidate]) -> list[str]:
    return [wrap_label(f"{c.key}{' ★' if c.is_champion else ''}  {c.candidate_id}", LABEL_WIDTH)
            for c in cands]


def _height(labels: Sequence[str], base: float = 1.2) -> float:
    lines = sum(label.count("\n") + 1 for label in labels)
    return base + 0.2 * lines + 0.12 * len(labels)


def _errors(values: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """Asymmetric error bar lengths, 0 where the interval is unknown (never negative)."""
    below = np.where(np.isnan(lows), 0.0, np.clip(values - lows, 0, None))
    above = np.where(np.isnan(highs), 0.0, np.clip(highs - values, 0, None))
    return np.nan_to_num(np.vstack([below, above]))


def _dot_panel(ax: Any, y: np.ndarray, values: np.ndarray, lows: np.ndarray, highs: np.ndarray,
               kind: str, *, signed: bool = False,
               colors: Sequence[str] | str = POINT) -> None:
    known = ~np.isnan(values)
    color_list = [colors] * len(values) if isinstance(colors, str) else list(colors)
    for k in np.flatnonzero(known):
        ax.errorbar(values[k], y[k], xerr=_errors(values[k:k + 1], lows[k:k + 1], highs[k:k + 1]),
                    fmt="o", color=color_list[k], ecolor=color_list[k], capsize=3, markersize=5)
    span = np.concatenate([values[known], lows[~np.isnan(lows)], highs[~np.isnan(highs)]])
    if len(span):
        # 0 always in view: the bars of a metric start there, a difference is read against it.
        lo, hi = min(float(span.min()), 0.0), max(float(span.max()), 0.0)
        pad = (hi - lo) * 0.25 or 1.0
        ax.set_xlim(lo - pad if signed else lo, hi + pad)
    for i, value in enumerate(values):
        top = highs[i] if not math.isnan(highs[i]) else value
        if math.isnan(value):
            ax.annotate("n/a", (0, y[i]), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", color=NEUTRAL)
        else:
            ax.annotate(format_value(value, kind, signed=signed), (top, y[i]), xytext=(6, 0),
                        textcoords="offset points", va="center")


@styled
def metrics_chart(cands: Sequence[Candidate]) -> str:
    """Candidates x the five metrics: mean and its 95 % bootstrap CI, one panel per metric."""
    labels = _labels(cands)
    fig = _figure(_height(labels))
    axes = fig.subplots(1, len(METRICS), sharey=True)
    y = np.arange(len(cands))[::-1].astype(float)
    for ax, metric in zip(axes, METRICS, strict=True):
        values = np.array([c.values[metric.column] for c in cands], dtype=float)
        lows = np.array([c.ci[metric.column][0] for c in cands], dtype=float)
        highs = np.array([c.ci[metric.column][1] for c in cands], dtype=float)
        _dot_panel(ax, y, values, lows, highs, metric.kind)
        arrow = "↑ better" if metric.higher_is_better else "↓ better"
        ax.set_title(f"{metric.label} ({arrow})")
        ax.set_xlabel(metric.unit)
        ax.set_ylim(-0.7, len(cands) - 0.3)
    axes[0].set_yticks(y, labels)
    return render(fig, "metrics", "Each candidate's five metrics with 95 % confidence intervals")


@styled
def distribution_chart(cands: Sequence[Candidate], latency: Sequence[np.ndarray],
                       cost_per_1k: Sequence[np.ndarray]) -> str:
    """Per candidate: ms per output token over its rows, and cost x 1000 per answer."""
    labels = _labels(cands)
    fig = _figure(_height(labels, 1.5))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(cands))[::-1].astype(float)
    panels = ((latency, "latency per answer", "ms per output token (box: p25–p75; whiskers: "
               "p5–p95; ◆ p95)"),
              (cost_per_1k, "cost per 1k answers", "USD per 1000 answers like this one"))
    for ax, (series, title, unit) in zip(axes, panels, strict=True):
        data = [np.asarray(s, dtype=float)[~np.isnan(np.asarray(s, dtype=float))] for s in series]
        have = [i for i, d in enumerate(data) if len(d)]
        if have:
            ax.boxplot([data[i] for i in have], positions=y[have], orientation="horizontal",
                       whis=(5, 95), widths=0.5, showfliers=True,
                       flierprops={"markersize": 2.5, "alpha": 0.5},
                       medianprops={"color": POINT})
            p95 = [float(np.percentile(data[i], 95)) for i in have]
            ax.plot(p95, y[have], "D", color=WORSE, markersize=4, label="p95")
        for i, d in enumerate(data):
            if not len(d):
                ax.annotate("n/a", (0, y[i]), xycoords=("axes fraction", "data"), xytext=(4, 0),
                            textcoords="offset points", va="center", color=NEUTRAL)
        ax.set_title(title)
        ax.set_xlabel(unit)
        ax.set_ylim(-0.7, len(cands) - 0.3)
    axes[0].set_yticks(y, labels)
    return render(fig, "distributions", "Latency and cost per answer, per candidate")


@styled
def tradeoff_chart(cands: Sequence[Candidate]) -> str:
    """Quality against cost per 1k answers, both with their CIs: the cheap good ones sit top left."""
    fig = _figure(4.6, 9.5)
    ax = fig.subplots()
    ax.grid(True, axis="both", alpha=0.3)
    for c in cands:
        x, q = c.values["cost_per_1k_answers_usd"], c.values["quality"]
        if math.isnan(x) or math.isnan(q):
            continue
        xl, xh = c.ci["cost_per_1k_answers_usd"]
        ql, qh = c.ci["quality"]
        ax.errorbar(x, q, xerr=_errors(np.array([x]), np.array([xl]), np.array([xh])),
                    yerr=_errors(np.array([q]), np.array([ql]), np.array([qh])), fmt="o",
                    color=BETTER if c.is_champion else POINT, capsize=3, markersize=5)
        ax.annotate(c.key + (" ★" if c.is_champion else ""), (x, q), xytext=(6, 4),
                    textcoords="offset points")
    ax.set_xlabel("cost per 1k answers (USD)")
    ax.set_ylabel("quality (0..1)")
    ax.set_title("quality vs cost per 1k answers (95 % CIs; ★ the champion)")
    return render(fig, "tradeoff", "Quality against cost per 1k answers", "chart narrow")


@styled
def paired_chart(result: Paired) -> str:
    """Challenger − champion per gated metric, with the paired bootstrap CI; 0 = no difference."""
    rows = result.challengers
    labels = [wrap_label(f"{r.key}  {r.candidate_id}", LABEL_WIDTH) for r in rows]
    fig = _figure(_height(labels))
    axes = fig.subplots(1, len(result.metrics), sharey=True)
    y = np.arange(len(rows))[::-1].astype(float)
    colors = {"better": BETTER, "worse": WORSE}
    for j, (ax, metric) in enumerate(zip(axes, result.metrics, strict=True)):
        diffs = [r.diffs[j][0] for r in rows]
        values = np.array([d.diff for d in diffs], dtype=float)
        lows = np.array([d.ci_low for d in diffs], dtype=float)
        highs = np.array([d.ci_high for d in diffs], dtype=float)
        ax.axvline(0, color=NEUTRAL, linewidth=1)
        _dot_panel(ax, y, values, lows, highs, PAIRED_KINDS.get(metric, "score"), signed=True,
                   colors=[colors.get(r.diffs[j][1], NEUTRAL) for r in rows])
        ax.set_title(PAIRED_LABELS.get(metric, metric))
        ax.set_xlabel("challenger − champion")
        ax.set_ylim(-0.7, len(rows) - 0.3)
    axes[0].set_yticks(y, labels)
    return render(fig, "paired", "Challenger minus champion per gated metric, with paired CIs")
