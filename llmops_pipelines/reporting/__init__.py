"""The evaluation report: one self-contained, offline HTML file comparing the candidates.

`page.build_report` (summary + rows + the champion, when there is one -> HTML text),
`charts` (matplotlib rendered to inline SVG), `tables` (what the report shows, as plain data),
`files` (where the report lives under LLMOPS_HOME, written atomically). Nothing here imports
matplotlib until a chart is drawn, so `llmops report` stays fast.
"""
