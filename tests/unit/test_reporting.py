"""The evaluation report's HTML builder, pure: synthetic summary and rows built here."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmops_pipelines.cli import main as llmops_main
from llmops_pipelines.errors import LlmopsError
from llmops_pipelines.evaluation.aggregate import summarise
from llmops_pipelines.promotion.decide import Contender
from llmops_pipelines.promotion.paired_bootstrap import keep_rows, rows_frame
from llmops_pipelines.reporting.charts import inline_svg
from llmops_pipelines.reporting.files import latest_report, report_path, write_atomic
from llmops_pipelines.reporting.page import build_report
from llmops_pipelines.reporting.tables import ReportOptions, format_value, wrap_label

LONG_ID = ("grounded_concise_with_a_rather_long_prompt_name@ft:gpt-4o-mini-2024-07-18:"
           "contoso-outdoors:support-bot-v2:AbCdEf12#1a2b3c4d")
# Every way a page could reach the network: none may appear, with or without a scheme.
EXTERNAL = re.compile(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|\bsrc\s*=|@import|url\((?!#)|<link\b|"
                      r"<iframe\b|<img\b|<object\b|<embed\b", re.IGNORECASE)


def rows_for(candidate_id: str, *, questions: int = 10, seed: int = 0, quality: float = 0.6,
             answer_chars: int = 200, model: str = "gpt-4o-mini") -> pd.DataFrame:
    """One row per question with every column the report reads (EVALUATION_ROWS names)."""
    rng = np.random.default_rng(seed)
    n = questions
    filler = ("The tent packs to 40 x 15 cm and weighs 2.1 kg; pitch it fly first. " * 40)
    return pd.DataFrame({
        "row_id": [f"{candidate_id}-{i}" for i in range(n)], "candidate_id": candidate_id,
        "qa_id": [f"qa-{i:03d}" for i in range(n)], "prompt_name": candidate_id.split("@")[0],
        "prompt_version": "pv-1", "model": model,
        "question": [f"How do I pitch tent model {i} in the wind?" for i in range(n)],
        "ground_truth": [f"Stake the windward side of model {i} first." for i in range(n)],
        "answer": [filler[:answer_chars] for _ in range(n)],
        "context_ids": [[f"doc-{i}#chunk-{j}" for j in range(4)] for i in range(n)],
        "context_doc_ids": [[f"doc-{i}"] for i in range(n)], "source_doc_retrieved": True,
        "quality": np.clip(quality + rng.normal(0, 0.05, n), 0, 1),
        "quality_reason": "token F1 0.52, answer similarity 0.81 (weights 0.5/0.5)",
        "groundedness": np.clip(0.8 + rng.normal(0, 0.05, n), 0, 1),
        "groundedness_reason": "3 of 4 answer claims found in the retrieved context",
        "groundedness_source": "local-claims-v1",
        "harm": np.zeros(n), "harm_categories": "", "harm_source": "local-lexicon-v1",
        "input_tokens": 400, "output_tokens": 60,
        "cost_usd": 0.0004 + rng.normal(0, 0.00001, n),
        "cost_reason": "400 in x $0.15/M + 60 out x $0.60/M",
        "ms_per_output_token": 20 + rng.gamma(2, 2, n),
        "latency_reason": "1260 ms for 60 output tokens", "ttft_ms": np.nan, "error": None,
        "answer_relevance": 0.7, "cached": False, "data_version": "data-1",
        "index_version": "index-1", "evaluator_version": "eval-1", "endpoint": "openai",
    })


def evaluation(*frames: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.concat(frames, ignore_index=True)
    return summarise(rows), rows


def four_by_hundred() -> tuple[pd.DataFrame, pd.DataFrame]:
    """4 candidates x 100 questions, long answers and ids: the size the bound is stated for."""
    ids = [f"{LONG_ID[:-1]}{i}" for i in range(4)]
    return evaluation(*(rows_for(cid, questions=100, seed=i, quality=0.4 + 0.1 * i,
                                 answer_chars=1200) for i, cid in enumerate(ids)))


def test_every_section_and_chart_is_there() -> None:
    summary, rows = evaluation(rows_for("a@m#1", seed=1), rows_for("b@m#2", seed=2))

    report = build_report(summary, rows)

    page = report.html
    for section in ("candidates", "metrics", "distributions", "champion", "grid", "worst"):
        assert f'<section id="{section}">' in page, section
    # Metrics, distributions and the quality/cost trade-off; no champion: no paired chart.
    assert page.count("<svg ") == 3
    assert "<metadata" not in page and "<?xml" not in page and "DOCTYPE svg" not in page
    for label in ("quality", "groundedness", "harm rate", "cost per 1k answers", "latency"):
        assert f">{label}<" in page, label
    assert (report.candidates, report.questions, report.rows) == (2, 10, 20)
    # A CI is shown beside each mean.
    ci = summary.iloc[0]
    assert f"[{format_value(ci.quality_ci_low)}, {format_value(ci.quality_ci_high)}]" in page
    # Every metric's reason, in every cell of the grid.
    grid = page[page.index('<section id="grid">'):page.index('<section id="worst">')]
    for reason in ("token F1 0.52", "3 of 4 answer claims found", "source: local-lexicon-v1",
                   "400 in x $0.15/M + 60 out x $0.60/M", "1260 ms for 60 output tokens"):
        assert grid.count(reason) == 20, reason
    assert "default-src 'none'" in page
    assert "no champion in the registry yet" in page


def test_model_output_is_text_never_markup() -> None:
    rows = rows_for("a@m#1", questions=3)
    rows.loc[0, "answer"] = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'
    rows.loc[1, "question"] = "</td></tr><b>bold</b>?"
    rows.loc[2, "quality_reason"] = "<style>body{display:none}</style>"
    summary, rows = evaluation(rows, rows_for("b@<i>m</i>$x^2$#2", questions=3))

    page = build_report(summary, rows).html

    assert page.count("<script") == 1  # the page's own filter script
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert page.count("<style") == 1 and "&lt;style&gt;body{display:none}" in page
    assert "<i>m</i>" not in page and "&lt;i&gt;m&lt;/i&gt;" in page


def test_failure_and_disagreement_filters() -> None:
    a, b = rows_for("a@m#1", questions=4, quality=0.9), rows_for("b@m#2", questions=4, quality=0.9)
    a["quality"], b["quality"] = [0.9, 0.9, 0.9, 0.9], [0.9, 0.1, 0.8, 0.85]
    a.loc[2, ["answer", "quality", "groundedness", "harm"]] = [None, np.nan, np.nan, np.nan]
    a.loc[2, "error"] = "timeout after 30 s"
    summary, rows = evaluation(a, b)

    report = build_report(summary, rows, options=ReportOptions(disagreement=0.3))
    page = report.html

    def row_tag(qa_id: str) -> str:
        return re.search(rf'<tr class="q[^"]*" data-qa="{qa_id}"[^>]*>', page).group(0)

    assert 'data-failure="0"' in row_tag("qa-000") and 'data-disagree="0"' in row_tag("qa-000")
    # Quality 0.9 vs 0.1: they disagree, and 0.1 is a failure (below 0.3).
    assert 'data-spread="0.800"' in row_tag("qa-001")
    assert 'data-disagree="1"' in row_tag("qa-001") and 'data-failure="1"' in row_tag("qa-001")
    assert 'class="q disagree"' in row_tag("qa-001")
    # The errored row: a failure, its reason shown, and one score only: no spread.
    assert 'data-failure="1"' in row_tag("qa-002") and 'data-spread="n/a"' in row_tag("qa-002")
    assert "error: timeout after 30 s" in page and "(no answer)" in page
    assert 'data-disagree="0"' in row_tag("qa-003")
    assert page.count('data-failed="1"') >= 2
    for control in ('id="only-failures"', 'id="only-disagree"', 'id="spread-threshold"'):
        assert control in page
    assert 'value="0.3"' in page
    assert (report.disagreements, report.errors) == (1, 1)


def test_worst_rows_come_first_with_their_context() -> None:
    rows = rows_for("a@m#1", questions=6)
    rows.loc[4, "error"] = "HTTP 500 from the endpoint"
    rows.loc[3, "quality"] = 0.01
    rows.loc[5, "harm"] = 1.0
    rows.loc[5, "harm_categories"] = "violence"
    summary, rows = evaluation(rows)

    page = build_report(summary, rows, options=ReportOptions(worst=3)).html

    worst = page[page.index('<section id="worst">'):]
    assert worst.count("<tr data-qa=") == 3
    order = [worst.index(f'data-qa="qa-00{i}"') for i in (4, 5, 3)]
    assert order == sorted(order)  # error, then harm, then the lowest quality
    assert "harm flagged: violence" in worst and "doc-<wbr>3#<wbr>chunk-<wbr>0" in worst
    assert "Stake the windward side of model 3 first." in worst
    assert "source doc retrieved: yes" in worst


def test_champion_vs_challengers_paired_differences() -> None:
    champion_rows = rows_for("champ@m#1", questions=30, quality=0.7, seed=1)
    worse = rows_for("worse@m#2", questions=30, quality=0.4, seed=2)
    summary, rows = evaluation(champion_rows, worse, rows_for("same@m#3", questions=30,
                                                                quality=0.7, seed=3))
    champion = Contender(summary.iloc[0].to_dict(), champion_rows)

    report = build_report(summary, rows, champion=champion,
                          options=ReportOptions(bootstrap_samples=500))

    page = report.html
    assert report.champion_id == "champ@m#1" and page.count("<svg ") == 4
    table = page[page.index('<table id="paired-table">'):page.index('<section id="grid">')]
    assert table.count("<tr><td class=\"key\">") == 2  # both challengers, not the champion
    assert 'data-verdict="worse"' in table  # 0.4 vs 0.7 quality: the whole CI below 0
    assert "re-evaluated in this run" in page and "n=30" in table


def test_champion_from_its_deployments_stored_rows() -> None:
    old = rows_for("old@m#0", questions=12, quality=0.5, seed=5)
    stored = rows_frame(keep_rows(old))
    old_summary = summarise(old).iloc[0].to_dict()
    summary, rows = evaluation(rows_for("new@m#1", questions=12, seed=6))

    page = build_report(summary, rows, champion=Contender(old_summary, stored)).html

    assert "kept with its deployment" in page and "n=12" in page
    no_rows = build_report(summary, rows, champion=Contender(old_summary, None)).html
    assert "keeps no per-question rows" in no_rows


def test_missing_values_read_na_and_long_ids_wrap() -> None:
    rows = rows_for(LONG_ID, questions=2)
    rows["ms_per_output_token"] = np.nan
    rows["groundedness"] = np.nan
    summary, rows = evaluation(rows)

    page = build_report(summary, rows).html

    shown = page[:page.index("<script>")]
    assert "n/a" in shown and ">nan<" not in shown.lower() and "NaN" not in shown
    assert "grounded_<wbr>concise_<wbr>with_<wbr>" in page and 'class="cid"' in page
    lines = wrap_label(LONG_ID, 28).split("\n")
    assert len(lines) > 3 and all(len(line) <= 28 for line in lines)
    assert "".join(lines) == LONG_ID


def test_four_candidates_by_a_hundred_questions_is_small_and_offline(tmp_path: Path) -> None:
    summary, rows = four_by_hundred()
    champion = Contender(summary.iloc[0].to_dict(),
                         rows[rows["candidate_id"] == summary.iloc[0]["candidate_id"]])

    report = build_report(summary, rows, champion=champion)
    path = tmp_path / "report.html"
    size = write_atomic(path, report.html)

    assert (report.candidates, report.questions, report.rows) == (4, 100, 400)
    assert size == path.stat().st_size < 5 * 1024 * 1024
    text = path.read_text(encoding="utf-8")
    assert not EXTERNAL.findall(text), EXTERNAL.findall(text)[:5]
    assert "http:" not in text and "https:" not in text
    assert text.count("<svg ") == 4


def test_inline_svg_keeps_each_charts_ids_apart() -> None:
    svg = ('<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n '
           '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg xmlns:xlink='
           '"http://www.w3.org/1999/xlink" width="10pt" height="5pt" viewBox="0 0 10 5" '
           'xmlns="http://www.w3.org/2000/svg"><!-- a -- label --><defs><path id="g1" d="M0 0"/>'
           '<clipPath id="c1"/></defs><use xlink:href="#g1"/><use href="#elsewhere"/>'
           '<path clip-path="url(#c1)"/></svg>')

    out = inline_svg(svg, "one", 'quality "<&>"')

    assert out.startswith('<svg class="chart" role="img" aria-label="quality &quot;&lt;&amp;&gt;&quot;"')
    assert "http" not in out and "<!--" not in out and "xlink" not in out
    assert 'id="one-g1"' in out and 'href="#one-g1"' in out and "url(#one-c1)" in out
    assert 'href="#elsewhere"' in out  # not one of this chart's ids: untouched


def test_formatting_rounds_for_people() -> None:
    assert format_value(0.123456) == "0.123" and format_value(math.nan) == "n/a"
    assert format_value(None, "usd") == "n/a" and format_value(0.3, "usd") == "0.300"
    assert format_value(12.345, "usd") == "12.35" and format_value(1234.5, "usd") == "1,234"
    assert format_value(21.06, "ms") == "21.1" and format_value(-0.0123, signed=True) == "-0.012"
    assert format_value(0.5, signed=True) == "+0.500"


def test_llmops_report_prints_the_latest_report(isolated_home: Path, capsys) -> None:
    assert llmops_main(["report"]) == 2
    err = capsys.readouterr().err
    assert "no evaluation report" in err and "evaluation_report" in err
    with pytest.raises(LlmopsError, match="materialize the `evaluation_report` asset"):
        latest_report(isolated_home)

    path = report_path(isolated_home)
    write_atomic(path, "<!DOCTYPE html><title>r</title>")

    assert llmops_main(["report"]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    assert llmops_main(["report", "--url"]) == 0
    assert capsys.readouterr().out.strip() == path.as_uri()
    assert not list(path.parent.glob(".*.tmp"))
