"""report.html: one self-contained file that opens from disk with no server.

Figures are inlined as base64 ``data:`` URIs and the style sheet is inline, so the
file can be mailed, attached to CI artefacts or opened offline. A small inline
script marks ``<body data-images-ok="true">`` once every image has decoded, which
lets a headless browser test check the page as a reader would see it.
"""

from __future__ import annotations

import base64
import html

from .content import ReportContent, Table

__all__ = ["render", "table"]

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 1240px; margin: 0 auto; padding: 0 24px 48px; background: #fff; }
h1 { font-size: 26px; margin: 24px 0 8px; } h2 { border-bottom: 2px solid #ddd; margin-top: 36px; }
.banner { background: #b00020; color: #fff; font-weight: 700; font-size: 18px; padding: 14px 18px;
          border-radius: 6px; margin: 16px 0; }
.warnings { border: 2px solid #d55e00; background: #fff4ec; border-radius: 6px; padding: 4px 18px; }
.warnings li.loud { color: #b00020; font-weight: 700; }
.findings li { margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 12.5px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.meta td { text-align: left; } .scroll { overflow-x: auto; }
figure { margin: 24px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 14px; max-width: 900px; }
.verdict-confirmed, .verdict-ok { color: #006b3c; font-weight: 700; }
.verdict-refuted, .verdict-fail, .verdict-not-confirmed { color: #b00020; font-weight: 700; }
.claims td { text-align: left; }
.muted { color: #666; font-size: 13px; }
"""

#: Runs after load: marks whether every <img> decoded (complete and with a width).
_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.setAttribute('data-images', String(images.length));
  document.body.setAttribute('data-images-loaded', String(loaded.length));
  document.body.setAttribute('data-images-ok', loaded.length === images.length ? 'true' : 'false');
});
"""


def _e(text) -> str:
    return html.escape(str(text))


def table(t: Table, *, css_class: str = "", table_id: str = "") -> str:
    attrs = (f' class="{css_class}"' if css_class else "") + (f' id="{table_id}"' if table_id else "")
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    body = []
    for row in t.rows:
        cells = []
        for column, cell in zip(t.columns, row):
            slug = "-".join(str(cell).lower().split())
            cls = f' class="verdict-{_e(slug)}"' if column == "verdict" and cell else ""
            cells.append(f"<td{cls}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def render(content: ReportContent) -> str:
    several = len(content.runs) > 1
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{_e(content.title)}</title><style>{_CSS}</style>",
           f"<script>{_SCRIPT}</script></head><body>", f"<h1>{_e(content.title)}</h1>"]
    for run in content.runs:
        if not run.complete:
            out.append(f'<div class="banner" role="alert">⚠ INCOMPLETE RUN'
                       f'{" " + _e(run.label) if several else ""}: status “{_e(run.status)}”'
                       f'{" — " + _e(run.reason) if run.reason else ""}. '
                       "Only the load points that finished are shown.</div>")
    warnings = [(run, w) for run in content.runs for w in run.warnings]
    if warnings:
        out.append('<h2>⚠ Warnings</h2><div class="warnings"><ul>')
        for run, w in warnings:
            prefix = f"run {_e(run.label)}: " if several else ""
            out.append(f'<li class="{"loud" if w.loud else ""}">{prefix}{_e(w.text)}</li>')
        out.append("</ul></div>")
    out.append('<h2>Findings</h2><div class="findings">')
    for run in content.runs:
        if several:
            out.append(f"<h3>Run {_e(run.label)} ({_e(run.run_id)})</h3>")
        out.append("<ul>" + "".join(f"<li>{_e(f.text)}</li>" for f in run.findings) + "</ul>")
    if content.comparisons:
        out.append("<h3>Run against run</h3><ul>"
                   + "".join(f"<li>{_e(f.text)}</li>" for f in content.comparisons) + "</ul>")
    out.append("</div>")
    if content.claims is not None or content.claims_error:
        out.append('<h2 id="claims">What the documents claim, measured</h2>')
        if content.claims is not None:
            out.append(table(content.claims, css_class="claims"))
        if content.claims_rules:
            out.append("<p>Verdict rules:</p><ul>"
                       + "".join(f"<li>{_e(rule)}</li>" for rule in content.claims_rules) + "</ul>")
        if content.claims_error:
            out.append(f'<p class="muted">{_e(content.claims_error)}</p>')
    for title, paragraphs, tables in content.extra:  # faults, soak (report/resilience.py)
        out.append(f"<h2>{_e(title)}</h2>" + "".join(f"<p>{_e(p)}</p>" for p in paragraphs))
        out.extend(table(t) for t in tables)
    out.append('<h2 id="summary">Summary</h2>')
    for i, run in enumerate(content.runs):
        if several:
            out.append(f"<h3>Run {_e(run.label)} ({_e(run.run_id)})</h3>")
        out.append(table(run.summary, css_class="summary-table",
                         table_id="summary-table" if i == 0 else f"summary-table-{run.label}"))
    out.append("<h2>Figures</h2>")
    for figure in content.figures:
        data = base64.b64encode(figure.png).decode("ascii")
        out.append(f'<figure id="fig-{_e(figure.name)}"><h3>{_e(figure.title)}</h3>'
                   f'<img alt="{_e(figure.title)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_e(figure.caption)}</figcaption></figure>")
    out.append('<h2>Run metadata</h2>' + table(content.metadata, css_class="meta"))
    out.append(f'<p class="muted">Generated {_e(content.generated_at)} by '
               "<code>python -m duplexbench report</code>.</p></body></html>")
    return "\n".join(out)
