"""Theme and CSS of the dashboard (passed to ``launch()`` / ``mount_gradio_app``, as Gradio 6 wants).

Colors come from Gradio's theme variables, plus a few of our own defined for light and
``.dark`` so deltas and badges stay readable in both themes.
"""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate")

CSS = """
:root, .light {
  --ds-good: #15803d; --ds-good-bg: #dcfce7;
  --ds-bad: #b91c1c; --ds-bad-bg: #fee2e2;
  --ds-warn-bg: #fef3c7; --ds-warn: #92400e;
  --ds-info-bg: #e0e7ff; --ds-info: #3730a3;
  --ds-bar-bg: #e2e8f0; --ds-bar: #4f46e5;
}
.dark {
  --ds-good: #4ade80; --ds-good-bg: #14532d;
  --ds-bad: #f87171; --ds-bad-bg: #450a0a;
  --ds-warn-bg: #422006; --ds-warn: #fcd34d;
  --ds-info-bg: #1e1b4b; --ds-info: #c7d2fe;
  --ds-bar-bg: #334155; --ds-bar: #818cf8;
}
.gradio-container { max-width: 1400px !important; }
#ds-header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
#ds-header h1 { margin: 0; font-size: 1.4rem; display: inline-block; margin-right: .8rem; }
#ds-header { position: relative; }
#ds-title { flex: 1 1 auto !important; padding-right: 320px; }
#ds-health { position: absolute !important; right: 0; top: .2rem; width: auto !important; min-width: 0 !important;
  flex: none !important; text-align: right; }
#ds-health .ds-badge { white-space: nowrap; }
@media (max-width: 760px) { #ds-title { padding-right: 0; } #ds-health { position: static !important; text-align: left; } }
.ds-muted { color: var(--body-text-color-subdued); }
.ds-small { font-size: 0.85em; }
.ds-good { color: var(--ds-good); font-weight: 600; }
.ds-bad { color: var(--ds-bad); font-weight: 600; }
.ds-neutral { color: var(--body-text-color-subdued); }
.ds-banner { padding: .5rem .8rem; border-radius: var(--radius-md, 6px); margin: .25rem 0; font-size: .95em;
  overflow-wrap: anywhere; }
.ds-banner-error { background: var(--ds-bad-bg); color: var(--ds-bad); border: 1px solid var(--ds-bad); }
.ds-banner-info { background: var(--ds-info-bg); color: var(--ds-info); }
.ds-banner-ok { background: var(--ds-good-bg); color: var(--ds-good); }
.ds-badge { display: inline-block; padding: .1rem .55rem; border-radius: 999px; font-weight: 600;
  background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.ds-st-succeeded { color: var(--ds-good); border-color: var(--ds-good); }
.ds-st-failed { color: var(--ds-bad); border-color: var(--ds-bad); }
.ds-st-running { color: var(--ds-bar); border-color: var(--ds-bar); }
.ds-progress { width: 100%; }
.ds-progress-meta { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; margin-bottom: .35rem; }
.ds-pct { margin-left: auto; font-variant-numeric: tabular-nums; font-weight: 600; }
.ds-bar { height: 10px; background: var(--ds-bar-bg); border-radius: 999px; overflow: hidden; }
.ds-bar-fill { height: 100%; background: var(--ds-bar); transition: width .6s ease; }
.ds-bar-done .ds-bar-fill { background: var(--ds-good); }
.ds-bar-busy .ds-bar-fill { background: repeating-linear-gradient(45deg, var(--ds-bar) 0 10px, var(--ds-bar-bg) 10px 20px);
  background-size: 28px 28px; animation: ds-stripes 1s linear infinite; }
@keyframes ds-stripes { to { background-position: 28px 0; } }
.ds-bar-failed .ds-bar-fill { background: var(--ds-bad); }
.ds-bar-cancelled .ds-bar-fill { background: var(--body-text-color-subdued); }
.ds-failure .ds-tail { max-height: none; }
.ds-failure { background: var(--ds-bad-bg); border: 1px solid var(--ds-bad); border-radius: 8px; padding: .6rem .8rem; }
.ds-failure-title { color: var(--ds-bad); font-weight: 700; overflow-wrap: anywhere; }
.ds-tail, .ds-raw { white-space: pre-wrap; overflow-wrap: anywhere; font-family: var(--font-mono); font-size: .8em;
  max-height: 18rem; overflow: auto; margin: .3rem 0 0; padding: .4rem; background: var(--background-fill-secondary);
  color: var(--body-text-color); border-radius: 6px; }
.ds-table { border-collapse: collapse; width: 100%; font-size: .92em; }
.ds-table caption { caption-side: bottom; text-align: left; color: var(--body-text-color-subdued); font-size: .85em; padding-top: .3rem; }
.ds-table th, .ds-table td { padding: .35rem .6rem; border-bottom: 1px solid var(--border-color-primary); text-align: left; }
.ds-table thead th { background: var(--background-fill-secondary); }
.ds-metrics td { font-variant-numeric: tabular-nums; }
.ds-kv th { width: 40%; font-weight: 500; color: var(--body-text-color-subdued); }
.ds-sample { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6rem .7rem; margin: .6rem 0;
  background: var(--block-background-fill); }
.ds-sample-head { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-bottom: .3rem; }
.ds-sample-n { font-weight: 700; }
.ds-chip { font-size: .8em; padding: .05rem .45rem; border-radius: 999px; border: 1px solid currentColor; }
.ds-prompt { white-space: pre-wrap; overflow-wrap: anywhere; font-weight: 500; margin-bottom: .4rem; }
.ds-pair { display: grid; grid-template-columns: 1fr 1fr; gap: .7rem; }
@media (max-width: 760px) { .ds-pair { grid-template-columns: 1fr; } }
.ds-col { min-width: 0; background: var(--background-fill-secondary); border-radius: 6px; padding: .45rem .55rem; }
.ds-col-title { font-size: .8em; text-transform: uppercase; letter-spacing: .05em; color: var(--body-text-color-subdued);
  margin-bottom: .2rem; font-weight: 600; }
.ds-resp { overflow-wrap: anywhere; }
.ds-think { margin: .1rem 0 .35rem; }
.ds-think summary { cursor: pointer; color: var(--body-text-color-subdued); font-size: .9em; }
.ds-think-body { white-space: pre-wrap; font-size: .9em; border-left: 3px solid var(--border-color-primary);
  padding-left: .5rem; margin-top: .25rem; color: var(--body-text-color-subdued); max-height: 24rem; overflow: auto; }
.ds-answer-text { white-space: pre-wrap; }
.ds-extracted { margin-top: .3rem; font-weight: 500; }
.ds-extracted.ds-neutral { color: var(--body-text-color); }
.ds-mark { font-size: 1.15em; }
.ds-cursor { animation: ds-blink 1s steps(2) infinite; color: var(--ds-bar); }
@keyframes ds-blink { 50% { opacity: 0; } }
.ds-stream-col { min-height: 8rem; background: var(--background-fill-secondary); border-radius: 8px; padding: .4rem .7rem !important; }
.ds-stream-col h4 { margin: .2rem 0 !important; }
.ds-timing { font-size: .85em; color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.ds-logbox { height: 30rem; overflow: auto; margin: 0; padding: .5rem .6rem; font-family: var(--font-mono); font-size: 12px;
  line-height: 1.4; white-space: pre-wrap; overflow-wrap: anywhere; background: var(--background-fill-secondary);
  color: var(--body-text-color); border: 1px solid var(--border-color-primary); border-radius: 8px; }
.ds-log-line { display: block; }
.ds-log-err { color: var(--ds-bad); font-weight: 600; }
.ds-log-warn { color: var(--ds-warn); }
.ds-log-note { display: block; color: var(--body-text-color-subdued); font-style: italic; }
@media (max-width: 760px) { .ds-logbox { height: 18rem; } }
/* An export job's log: a few lines; sized to them, scrolling past about eight. */
.ds-export-log .ds-logbox { height: auto; max-height: 10rem; margin-top: .4rem; }
.ds-field-error { --input-border-color: var(--ds-bad); }
.ds-field-error input, .ds-field-error textarea, .ds-field-error .wrap { border-color: var(--ds-bad) !important; }
.ds-field-error [data-testid="block-info"], .ds-field-error .info, .ds-field-error span[data-testid="block-info"] + div {
  color: var(--ds-bad) !important; font-weight: 600; }
.ds-btn-row { gap: .4rem !important; flex-wrap: wrap; }
.ds-btn-row button { flex: 1 1 auto; }
.ds-toolbar { align-items: flex-end; }
.ds-scroll { overflow-x: auto; max-width: 100%; }
.ds-stack > * { flex: 1 1 0% !important; min-width: 0 !important; }
@media (max-width: 760px) { .ds-stack { flex-direction: column !important; } .ds-stack > * { width: 100% !important; } }
/* compare: cells wrap (base → SFT over its delta), so the table fits the page instead of scrolling */
.ds-compare td, .ds-compare th { font-variant-numeric: tabular-nums; vertical-align: top; }
.ds-compare thead th { font-weight: 600; }
.ds-cmp-suite + .ds-cmp-suite { margin-top: .2rem; }
.ds-cmp-loss { white-space: nowrap; }
/* benchmarks: significance marks, leaderboard cells, suite cards, problem view */
.ds-sig { font-size: .85em; font-weight: 600; white-space: nowrap; cursor: help; padding: 0 .4rem;
  border-radius: 999px; border: 1px solid currentColor; }
.ds-sig-yes { color: var(--ds-good); }
.ds-sig-no, .ds-sig-none { color: var(--body-text-color-subdued); font-weight: 500; }
.ds-board td, .ds-board th { vertical-align: top; font-variant-numeric: tabular-nums; }
.ds-board th a { color: inherit; }
a.ds-cell { display: block; color: inherit; text-decoration: none; text-align: left; border-radius: 6px;
  padding: .2rem .3rem; margin: -.2rem -.3rem; }
.ds-cell-delta { margin: .1rem 0; }
a.ds-cell:hover { background: var(--background-fill-secondary); outline: 1px solid var(--border-color-accent, var(--ds-bar)); }
.ds-cell-main { white-space: nowrap; }
.ds-cell-base { color: var(--body-text-color-subdued); }
.ds-legend { margin-top: .4rem; }
.ds-suites { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); gap: .7rem; }
.ds-suite { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6rem .7rem;
  background: var(--block-background-fill); min-width: 0; }
.ds-suite-head { display: flex; gap: .6rem; align-items: baseline; flex-wrap: wrap; margin-bottom: .3rem; }
.ds-open-link { margin-left: auto; font-weight: 600; }
.ds-suite-cell { font-size: 1.05em; margin-bottom: .2rem; }
.ds-suite-table { margin-top: .4rem; }
.ds-gold { margin-left: auto; }
.ds-flag { color: var(--ds-warn); background: var(--ds-warn-bg); border-color: var(--ds-warn); cursor: help; }
.ds-bench-sample + .ds-bench-sample { border-top: 1px dashed var(--border-color-primary); margin-top: .45rem; padding-top: .45rem; }
.ds-sample-title { display: flex; gap: .35rem; flex-wrap: wrap; align-items: center; font-size: .8em;
  color: var(--body-text-color-subdued); margin-bottom: .2rem; }
.ds-system summary { cursor: pointer; color: var(--body-text-color-subdued); font-size: .85em; }
.ds-jobs a, .ds-board a, #run-parent a { cursor: pointer; }
/* traces: the funnel's bars, verdict badges, problems folded */
.ds-banner-warn { background: var(--ds-warn-bg); color: var(--ds-warn); border: 1px solid var(--ds-warn); }
.ds-traces-summary { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 1.2rem; margin-top: .7rem; }
@media (max-width: 960px) { .ds-traces-summary { grid-template-columns: minmax(0, 1fr); } }
.ds-funnel { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 300px), 1fr)); gap: 1rem; }
.ds-frow { display: grid; grid-template-columns: 6.5rem minmax(3rem, 1fr) 3.2rem 2.6rem; align-items: center; gap: .45rem;
  margin: .3rem 0; font-variant-numeric: tabular-nums; cursor: help; }
.ds-flabel { color: var(--body-text-color-subdued); }
.ds-fbar { height: 14px; background: var(--ds-bar-bg); border-radius: 4px; overflow: hidden; }
.ds-fbar-fill { display: block; height: 100%; background: var(--ds-bar); transition: width .6s ease; }
.ds-frow[data-key=kept] .ds-fbar-fill { background: var(--ds-good); }
.ds-fnum { text-align: right; font-weight: 600; }
.ds-fpct { text-align: right; font-size: .8em; color: var(--body-text-color-subdued); }
.ds-dropped, .ds-rejections { margin-top: .8rem; }
.ds-drops { display: flex; flex-wrap: wrap; gap: .35rem; margin: .25rem 0; }
.ds-drop { font-size: .85em; padding: .1rem .55rem; border-radius: 999px; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); }
.ds-verdict { display: inline-block; font-size: .78em; font-weight: 600; padding: .05rem .45rem; border-radius: 999px;
  border: 1px solid currentColor; white-space: nowrap; cursor: help; }
.ds-v-kept { color: var(--ds-good); background: var(--ds-good-bg); }
.ds-v-bad { color: var(--ds-bad); background: var(--ds-bad-bg); }
.ds-v-warn { color: var(--ds-warn); background: var(--ds-warn-bg); }
.ds-v-muted { color: var(--body-text-color-subdued); background: var(--background-fill-secondary); }
.ds-verdict.ds-zero { opacity: .45; }
details.ds-tproblem { padding: .45rem .7rem; margin: .45rem 0; }
details.ds-tproblem > summary { display: flex; gap: .4rem; align-items: center; flex-wrap: wrap; cursor: pointer;
  list-style: none; }
details.ds-tproblem > summary::-webkit-details-marker { display: none; }
details.ds-tproblem > summary::before { content: "▸"; color: var(--body-text-color-subdued); transition: transform .15s; }
details.ds-tproblem[open] > summary::before { transform: rotate(90deg); }
.ds-tq { flex: 1 1 14rem; min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
details.ds-tproblem[open] .ds-tq { visibility: hidden; }
details.ds-tproblem > .ds-prompt { margin-top: .5rem; }
.ds-traces { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 420px), 1fr)); gap: .6rem; }
.ds-trace { min-width: 0; background: var(--background-fill-secondary); border-radius: 6px; padding: .45rem .6rem;
  border-left: 3px solid var(--border-color-primary); overflow-wrap: anywhere; }
.ds-trace[data-verdict=kept] { border-left-color: var(--ds-good); }
.ds-why { margin-bottom: .35rem; }
/* empty banners take no room */
.ds-collapse:not(:has(.ds-banner)):not(:has(.ds-failure)) { display: none !important; }
.ds-code textarea, .ds-code pre { font-size: 12px !important; }
"""
