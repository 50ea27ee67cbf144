"""Sphinx extension for the book build (loaded from book/_config.yml).

* Plotly figures need ``PLOTLY_RENDERER=plotly_mimetype+notebook`` in the
  kernels that execute the chapters, so that each figure gets a
  ``text/html`` output (plotly.js inlined, no CDN) beside its JSON. The
  kernels inherit this process's environment, so set it here when the
  caller did not; refuse a renderer that would leave the site without
  working plots.
* Plotly's HTML renderer puts ``<script src="https://cdnjs.cloudflare.com/
  ajax/libs/mathjax/3.2.2/es5/tex-svg.min.js">`` before every figure
  (hard-coded ``include_mathjax="cdn"`` in plotly.io). Offline it is a
  failed request; online it would load a second MathJax over the local
  one. Remove it from the executed outputs; pages with math load the
  vendored MathJax (``mathjax_path``), which plotly uses when present.
* Fail early, with the command that fixes it, when the vendored assets in
  ``book/_offline`` are missing.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.errors import ConfigError

RENDERER = "plotly_mimetype+notebook"
ASSETS = ("require.js", "tex-svg.js", "widgets/embed-amd.js")
CDN_MATHJAX = re.compile(r'<script\s+src="https://cdnjs\.cloudflare\.com/ajax/'
                         r'libs/mathjax/[^"]*"\s*>\s*</script>')


def _check(app, config) -> None:
    renderer = os.environ.setdefault("PLOTLY_RENDERER", RENDERER)
    if "notebook" not in renderer.split("+") or "connected" in renderer:
        raise ConfigError(
            f"PLOTLY_RENDERER={renderer!r}: the book needs {RENDERER!r} "
            "(plotly.js inlined), or its plots need a CDN or vanish")
    for folder in config.html_static_path:
        root = Path(app.confdir, folder)
        if root.name == "_offline":
            missing = [a for a in ASSETS if not (root / a).is_file()]
            if missing:
                raise ConfigError(
                    f"missing {', '.join(missing)} in {root}: run "
                    "book/fetch_assets.sh")


def _strip_cdn_mathjax(app, doctree) -> None:
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "html" in node.get("format", "") and CDN_MATHJAX.search(text):
            node[0] = nodes.Text(CDN_MATHJAX.sub("", text))


def _fonts_beside_pages(app, exception) -> None:
    """Copy the widget fonts to ``<folder>/@jupyter-widgets/`` for every
    folder of pages. The controls' styles inside embed-amd.js resolve
    their font-awesome URLs against the AMD URL of the module
    "@jupyter-widgets/controls", i.e. relative to the page; a page with
    such widgets (tqdm's progress bars, for one) otherwise logs 404s.
    (Mapping that module path in widgets-offline.js fixed some page
    loads but not all; the copies do not depend on load order.)"""
    import shutil
    from pathlib import Path

    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    fonts = [f for f in (Path(app.srcdir) / "book" / "_offline" / "widgets")
             .iterdir() if f.suffix in (".woff", ".woff2")]
    for folder in {p.parent for p in out.rglob("*.html")}:
        if "_static" in folder.parts:
            continue
        dest = folder / "@jupyter-widgets"
        dest.mkdir(exist_ok=True)
        for f in fonts:
            shutil.copy2(f, dest / f.name)


def setup(app):
    app.connect("config-inited", _check)
    app.connect("doctree-read", _strip_cdn_mathjax)
    app.connect("build-finished", _fonts_beside_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
