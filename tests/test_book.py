"""The book site (book/): its table of contents, the build, and a real browser.

Fast checks (no build): the toc and the introduction list every chapter in
order, and the vendored JavaScript matches its checksums.

Slow checks (``slow``; the session builds the site once, ~6 min in fast
mode, unless a fresh one exists):

* the site builds with warnings as errors and references nothing online;
* in Chromium, served from 127.0.0.1: every page loads with no console
  error, no failed or external request; math is typeset by MathJax; the
  static widgets render; every plotly figure is drawn, and every figure
  with a slider (chapters 02, 08, 09, 11) changes its plotted data when a
  slider step is clicked;
* JupyterLab: chapter 08 runs, and moving its block-size widget changes
  the output.

The site used is, in order: ``$BLT_BOOK_SITE`` (a built html folder, used
as is), ``book/_build/html`` from ``make book`` if it is newer than its
sources, ``_build/book-fast/_build/html`` if fresh, else a fast-mode build
into ``_build/book-fast``. Screenshots go to ``_build/screenshots/``.

The browser tests drive Debian's ``chromium`` through Playwright (never
``playwright install``); they skip, saying so, where it is not installed
(``apt-get install -y chromium chromium-driver``).
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SHOTS = ROOT / "_build" / "screenshots"
TEST_OUT = ROOT / "_build" / "book-fast"
NOTEBOOKS = sorted(ROOT.glob("chapters/[0-9][0-9]_*.ipynb"))

# Pages that must show a live plotly figure with a slider.
SLIDER_PAGES = ("02_entropy_patching",        # the entropy-threshold figure
                "08_decoding_in_parallel",    # block size / alpha / gamma grid
                "11_the_frontier")            # the frontier (if in the toc)

# Chromium flags for a quiet, offline, unprivileged headless run.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]

# The only browser noise we accept: sphinx-thebe's script can be included
# twice by Jupyter Book 1, and the second copy redeclares a top-level
# `let THEBE_JS_URL` (a SyntaxError in the console; harmless, thebe is off).
# No request may fail: the widget manager's font-awesome .woff/.woff2 files,
# which Jupyter Book sites usually fail to load (404), are vendored in
# book/_offline/widgets and found through book/_offline/widgets-offline.js.
HARMLESS_CONSOLE = (re.compile(r"Identifier 'THEBE_JS_URL' has already been "
                               r"declared"),)
HARMLESS_URL: tuple[re.Pattern, ...] = ()


def _load_build():
    spec = importlib.util.spec_from_file_location("book_build",
                                                  BOOK / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def toc_files() -> list[str]:
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def toc_chapters() -> list[str]:
    return [f for f in toc_files() if f.startswith("chapters/")]


def page_of(file: str) -> str:
    """The site path of a toc entry ('chapters/00_x.ipynb' -> .html)."""
    return re.sub(r"\.(ipynb|md)$", "", file) + ".html"


# --------------------------------------------------------------- fast checks

def test_toc_lists_every_chapter_in_order():
    """Every chapters/NN_*.ipynb is in book/_toc.yml, in order, and nothing
    else: a new chapter must be added to the toc (and to book/intro.md)."""
    want = [f"chapters/{p.name}" for p in NOTEBOOKS]
    assert toc_chapters() == want
    for f in toc_files():
        assert list(ROOT.glob(f + ("" if "." in Path(f).name else ".*"))), f


def test_intro_lists_every_chapter():
    intro = (BOOK / "intro.md").read_text()
    linked = re.findall(r"\]\(\.\./(chapters/[0-9]{2}_[a-z0-9_]+\.ipynb)\)",
                        intro)
    assert linked == [f"chapters/{p.name}" for p in NOTEBOOKS]


def test_offline_assets_match_checksums():
    """book/_offline holds exactly the pinned files (book/fetch_assets.sh)."""
    import hashlib
    sums = (BOOK / "_offline" / "SHA256SUMS").read_text().split("\n")
    entries = [line.split(None, 1) for line in sums if line.strip()]
    assert {"require.js", "tex-svg.js", "widgets/embed-amd.js"} <= {
        name for _, name in entries}
    for digest, name in entries:
        data = (BOOK / "_offline" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name


def test_config_points_at_the_vendored_assets():
    cfg = yaml.safe_load((BOOK / "_config.yml").read_text())
    sph = cfg["sphinx"]["config"]
    static = ROOT / sph["html_static_path"][0]
    assert static.name != "_static"
    assert (static / sph["mathjax_path"]).is_file()
    for js in sph["nb_ipywidgets_js"]:
        assert (static / js).is_file(), js
    assert cfg["only_build_toc_files"] is True
    assert cfg["execute"]["execute_notebooks"] in ("force", "cache")


# ------------------------------------------------------------ the built site

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium and Playwright, or a skip that says what is missing."""
    path = _chromium()
    if path is None:
        pytest.skip("Chromium not found: the browser tests need Debian's "
                    "chromium (apt-get install -y chromium chromium-driver)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed (pip install playwright; "
                    "never `playwright install`: it uses Debian's chromium)")
    return path


@pytest.fixture(scope="session")
def site() -> Path:
    """A built site (see the module docstring); builds it if needed."""
    override = os.environ.get("BLT_BOOK_SITE")
    if override:
        path = Path(override).resolve()
        assert (path / "index.html").exists(), f"no site at {path}"
        return path
    build = _load_build()
    for out in (BOOK, TEST_OUT):
        if build.fresh(out):
            return build.site_dir(out)
    info = build.build(TEST_OUT, fast=True, quiet=True)
    print(f"\nbook built in {info['seconds']} s ({info['mode']} mode), "
          f"{info['site_bytes'] / 1e6:.1f} MB")
    return build.site_dir(TEST_OUT)


@pytest.mark.slow
def test_site_built_offline(site):
    """Every toc page exists and no page loads a script or style from the
    network (MathJax, require.js, the widget manager and plotly.js are
    local or inline)."""
    for f in toc_files():
        assert (site / page_of(f)).exists(), page_of(f)
    remote = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?"
                        r"//[^\"]+\"[^>]*>")
    for page in site.rglob("*.html"):
        html = page.read_text(errors="replace")
        tags = [t for t in remote.findall(html)
                if "rel=\"canonical\"" not in t]
        assert not tags, f"{page.relative_to(site)} loads {tags[:2]}"
    assert (site / "_static" / "tex-svg.js").exists()
    assert (site / "_static" / "widgets" / "embed-amd.js").exists()
    for name in SLIDER_PAGES:
        page = site / "chapters" / f"{name}.html"
        if f"chapters/{name}.ipynb" in toc_chapters():
            assert "plotly-graph-div" in page.read_text(), (
                f"{name}: no plotly figure on the page (PLOTLY_RENDERER?)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def server(site):
    """The site on 127.0.0.1 at a free port (the handler of
    ``python -m http.server``, in a thread)."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser(chromium, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    env = {**os.environ, "HOME": str(home),
           "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True,
                               args=CHROMIUM_ARGS, env=env)
        yield b
        b.close()


class PageLog:
    """Console errors, page errors and failed, 4xx/5xx or external requests."""

    def __init__(self, page, origin: str):
        self.problems: list[str] = []
        self.origin = origin
        page.on("console", self._console)
        page.on("pageerror", lambda e: self._add(f"page error: {e}"))
        page.on("requestfailed", lambda r: self._request(
            r.url, f"request failed ({r.failure}): {r.url}"))
        page.on("response", lambda r: r.status >= 400 and self._request(
            r.url, f"HTTP {r.status}: {r.url}"))
        # nothing may leave 127.0.0.1: abort and report anything else
        page.route("**/*", self._route)

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.origin) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self._request(url, f"external request: {url}")
            route.abort()

    def _console(self, msg):
        if msg.type == "error":
            self._add(f"console error: {msg.text}")

    def _add(self, text: str):
        if not any(p.search(text) for p in HARMLESS_CONSOLE):
            self.problems.append(text)

    def _request(self, url: str, text: str):
        if not any(p.search(url) for p in HARMLESS_URL):
            self.problems.append(text)


def _slider_state(page, index: int):
    return page.evaluate(
        """i => {
          const gd = document.querySelectorAll('div.js-plotly-plot')[i];
          return JSON.stringify({
            active: gd.layout.sliders[0].active,
            title: gd.layout.title && gd.layout.title.text,
            data: gd.data.map(t => [t.visible, t.y, t.text])});
        }""", index)


def _click_slider(page, index: int, shot: Path | None):
    """Click the far end of figure ``index``'s slider from its active step;
    return (before, after) states."""
    fig = page.locator("div.js-plotly-plot").nth(index)
    fig.scroll_into_view_if_needed()
    info = page.evaluate(
        """i => {
          const gd = document.querySelectorAll('div.js-plotly-plot')[i];
          const s = gd.layout.sliders[0];
          const r = gd.querySelector('.slider-rail-touch-rect')
                      .getBoundingClientRect();
          return {active: s.active || 0, n: s.steps.length,
                  x: r.x, y: r.y, w: r.width, h: r.height};
        }""", index)
    assert info["n"] >= 2, "a slider with one step"
    before = _slider_state(page, index)
    if shot:
        fig.screenshot(path=str(shot.with_suffix(".before.png")))
    target = 0 if info["active"] >= info["n"] / 2 else info["n"] - 1
    frac = 0.02 if target == 0 else 0.98
    page.mouse.click(info["x"] + frac * info["w"], info["y"] + info["h"] / 2)
    page.wait_for_function(
        """([i, target]) => document.querySelectorAll('div.js-plotly-plot')[i]
              .layout.sliders[0].active === target""",
        arg=[index, target], timeout=10_000)
    after = _slider_state(page, index)
    if shot:
        fig.screenshot(path=str(shot.with_suffix(".after.png")))
    return before, after


@pytest.mark.slow
def test_site_in_browser(site, server, browser):
    """Every page in Chromium: no errors, math, widgets, plots, sliders."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    report, failures, sliders_seen = [], [], {}
    for f in toc_files():
        rel = page_of(f)
        name = Path(rel).stem
        html = (site / rel).read_text(errors="replace")
        n_math = len(re.findall(r'class="math notranslate nohighlight"', html))
        n_plot = html.count('class="plotly-graph-div"')
        n_widget = html.count("application/vnd.jupyter.widget-view+json")
        page = context.new_page()
        log = PageLog(page, server)
        page.goto(f"{server}/{rel}", wait_until="load")
        try:
            if n_math:  # MathJax turns every math node into mjx-container
                page.wait_for_function(
                    "n => document.querySelectorAll('mjx-container').length"
                    " >= n", arg=n_math)
                errs = page.locator("mjx-merror").count()
                if errs:
                    failures.append(f"{rel}: {errs} MathJax errors")
            if n_plot:  # plotly.newPlot adds js-plotly-plot when drawn
                page.wait_for_function(
                    "n => document.querySelectorAll('div.js-plotly-plot')"
                    ".length >= n", arg=n_plot)
            if n_widget:  # the offline widget manager replaced the scripts
                page.wait_for_function(
                    "() => document.querySelectorAll('.jupyter-widgets')"
                    ".length > 0")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(SHOTS / f"site_{name}.png"))
            n_sliders = page.evaluate(
                "() => [...document.querySelectorAll('div.js-plotly-plot')]"
                ".map((gd, i) => gd.layout.sliders && gd.layout.sliders"
                ".length ? i : -1).filter(i => i >= 0)")
            sliders_seen[name] = len(n_sliders)
            for k, i in enumerate(n_sliders):
                before, after = _click_slider(
                    page, i, SHOTS / f"site_{name}_slider{k}")
                if before == after:
                    failures.append(f"{rel}: slider {k} changed nothing")
        except Exception as e:  # noqa: BLE001 - report every page at once
            failures.append(f"{rel}: {type(e).__name__}: {e}")
        page.wait_for_timeout(300)
        failures += [f"{rel}: {p}" for p in log.problems]
        report.append(f"{rel}: math {n_math}, plots {n_plot}, widget views "
                      f"{n_widget}, sliders {sliders_seen.get(name)}")
        page.close()
    context.close()
    (SHOTS / "site_report.txt").write_text("\n".join(report + failures) + "\n")
    for name in SLIDER_PAGES:
        if f"chapters/{name}.ipynb" in toc_chapters():
            if not sliders_seen.get(name):
                failures.append(f"{name}: no plotly figure with a slider")
    assert any("math 0" not in r for r in report), "no math anywhere"
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- JupyterLab

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(chromium, tmp_path):
    """JupyterLab on 127.0.0.1 over a copy of chapter 08 (fast mode), so
    that nothing it saves lands in chapters/."""
    work = tmp_path / "work"
    work.mkdir()
    nb = ROOT / "chapters" / "08_decoding_in_parallel.ipynb"
    shutil.copy(nb, work / nb.name)
    cfg = tmp_path / "jupyter-config"
    (cfg / "labconfig").mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the page
    (cfg / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions":
         {"@jupyterlab/apputils-extension:announcements": True}}))
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "BLT_FAST": "1", "HOME": str(tmp_path / "home"),
           "JUPYTER_CONFIG_DIR": str(cfg),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    env.pop("PLOTLY_RENDERER", None)   # the notebook's own default renderer
    jupyter = Path(sys.executable).with_name("jupyter")
    logf = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
         "--allow-root"], env=env, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}",
                                       timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp_path / "lab.log").read_text())
                time.sleep(0.5)
        yield base, token, nb.name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        logf.close()


def _wait_for_idle_kernel(base: str, token: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}",
                                    timeout=5) as r:
            kernels = json.load(r)
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel after {timeout} s: {kernels}")


@pytest.mark.slow
def test_jupyterlab_chapter_08_block_size_widget(lab, browser):
    """Run all of chapter 08 in JupyterLab, move the B slider, and see the
    widget's output change."""
    base, token, name = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/lab/tree/{name}?token={token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    _wait_for_idle_kernel(base, token)   # before "Run All Cells"
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel",
                 has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel",
                 has_text=re.compile(r"^Run All Cells$")).click()
    # the widget cell prints its result into an Output widget; then wait
    # until no cell is queued or running ([*])
    out = page.locator(".widget-output", has_text="steps per block").first
    out.wait_for(timeout=600_000)
    page.wait_for_function(
        """() => document.querySelectorAll('.jp-InputArea-prompt').length > 0
             && ![...document.querySelectorAll('.jp-InputArea-prompt')]
                .some(e => e.textContent.includes('*'))""",
        timeout=600_000, polling=1000)
    slider = page.locator(".widget-slider",
                          has=page.locator(".widget-label",
                                           has_text=re.compile(r"^B$")))
    slider.scroll_into_view_if_needed()
    readout = slider.locator(".widget-readout")
    # textContent, not innerText: JupyterLab leaves off-screen cells
    # unrendered (content-visibility), and innerText is then empty
    before_value = readout.text_content().strip()
    before_text = out.text_content()
    page.screenshot(path=str(SHOTS / "lab_08_before.png"))
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")  # B: 8 -> 16 (options 4, 8, 16)
    page.wait_for_function(
        "([el, v]) => el.textContent.trim() !== v",
        arg=[readout.element_handle(), before_value], timeout=10_000)
    out_handle = out.element_handle()
    page.wait_for_function(
        """([el, t]) => el.textContent !== t
             && el.textContent.includes('steps per block')""",
        arg=[out_handle, before_text], timeout=120_000)
    after_value = readout.text_content().strip()
    after_text = out_handle.text_content()
    page.screenshot(path=str(SHOTS / "lab_08_after.png"))
    (SHOTS / "lab_08.txt").write_text(
        f"B {before_value} -> {after_value}\n--- before\n{before_text}\n"
        f"--- after\n{after_text}\n--- page errors\n" + "\n".join(errors))
    assert (before_value, after_value) == ("8", "16")
    assert before_text != after_text
    plots = page.locator(".js-plotly-plot").count()
    images = page.locator(".jp-RenderedImage img").count()
    assert plots >= 1 and images >= 1, (plots, images)
    context.close()
    assert not errors, errors
