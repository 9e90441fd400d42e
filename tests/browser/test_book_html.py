"""The built HTML book in a real (headless) browser, with no kernel and no internet.

For every page of the table of contents: it loads without SEVERE console errors, makes no request to a host
other than 127.0.0.1, typesets its math with the local MathJax, and renders every embedded widget.
For every chapter with sliders: moving each slider changes the picture it controls (the client-side jslink
of course_lib.sliders.frame_slider works in the static page). Every chapter page stays under 2 MB.

The tests skip (saying why) when `_build/html` is missing or Chromium / chromedriver are not installed;
`./dev test` always builds the book and installs Chromium first (as root), so in CI they run.
Fixtures live in this module, not in a conftest.py: tests/conftest.py is imported by name from other tests,
and a second module called `conftest` would shadow it.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
MAX_PAGE_BYTES = 2 * 1024 * 1024
RENDER_TIMEOUT_S = 30
SLIDER_MODELS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel", "SelectionSliderModel"}
LOCAL_HOSTS = {"127.0.0.1"}
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-extension", "devtools"}
# Console noise that is not ours: Chromium asks every site for /favicon.ico (the book has none).
KNOWN_CONSOLE_NOISE = [re.compile(r"favicon\.ico")]


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part.get("chapters", [])]
    pages += [chapter["file"] for chapter in toc.get("chapters", [])]
    return [p.removesuffix(".ipynb").removesuffix(".md") for p in pages]


PAGES = _toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


# ---- fixtures: the built book on 127.0.0.1 and a headless Chromium ----------------------------------

HTML_DIR = ROOT / "_build" / "html"

CHROMIUM_CANDIDATES = [os.environ.get("COURSE_CHROMIUM", ""), "/usr/bin/chromium", "/usr/bin/chromium-browser"]
CHROMEDRIVER_CANDIDATES = [os.environ.get("COURSE_CHROMEDRIVER", ""), "/usr/bin/chromedriver"]

# Flags from the spike (shared reference static-sliders.md): headless, no background traffic, and every host name
# except 127.0.0.1 resolves to nothing, so a request leaving the machine fails loudly instead of silently working.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def _first_executable(candidates: list[str]) -> str | None:
    for candidate in candidates:
        if candidate and (Path(candidate).is_file() or shutil.which(candidate)):
            return shutil.which(candidate) or candidate
    return None


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML_DIR / "index.html").is_file():
        pytest.skip(f"{HTML_DIR} does not exist: build the book first (./dev book)")
    return HTML_DIR


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (signature of the base class)
        pass


@pytest.fixture(scope="session")
def base_url(html_dir: Path) -> Iterator[str]:
    """The book served from a local HTTP server on 127.0.0.1 (a random free port)."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def driver() -> Iterator[object]:
    yield from chromium_session()


def chromium_session(window: str | None = None) -> Iterator[object]:
    """A headless Chromium (selenium) with console and network logs, quit afterwards; skips the test when Chromium
    or chromedriver is missing. ``window`` (e.g. "--window-size=1280,800") replaces the default window size."""
    chromium = _first_executable(CHROMIUM_CANDIDATES)
    chromedriver = _first_executable(CHROMEDRIVER_CANDIDATES)
    if chromium is None or chromedriver is None:
        pytest.skip(
            "Chromium and chromedriver are needed (Debian/Ubuntu: apt-get install chromium chromium-driver; "
            "or set COURSE_CHROMIUM / COURSE_CHROMEDRIVER). `./dev test` installs them when run as root."
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(window if window and flag.startswith("--window-size=") else flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    browser.set_page_load_timeout(60)
    try:
        yield browser
    finally:
        browser.quit()


# ---- helpers ------------------------------------------------------------------------------------------


def _widget_blocks(html: str, kind: str) -> list[dict]:
    pattern = rf'<script type="application/vnd\.jupyter\.widget-{kind}\+json">(.*?)</script>'
    return [json.loads(m) for m in re.findall(pattern, html, flags=re.S)]


def expected_slider_count(html: str) -> int:
    """Number of slider models reachable from the widgets the page displays (from the embedded state)."""
    states = _widget_blocks(html, "state")
    models = {k: v for block in states for k, v in block.get("state", {}).items()}
    todo = [view["model_id"] for view in _widget_blocks(html, "view")]
    seen: set[str] = set()
    while todo:
        model_id = todo.pop()
        if model_id in seen or model_id not in models:
            continue
        seen.add(model_id)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(models[model_id].get("state", {})))
    return sum(models[m]["model_name"] in SLIDER_MODELS for m in seen)


def page_has_math(html: str) -> bool:
    return bool(re.search(r'class="math[ "]', html))


def wait_until(condition, timeout: float = RENDER_TIMEOUT_S, interval: float = 0.1, message: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {message}")
        time.sleep(interval)


def visit(driver, base_url: str, page: str) -> dict:
    """Load `page`, wait until its widgets and math are rendered, return what the browser saw."""
    driver.get_log("browser")  # drain logs of earlier pages
    driver.get_log("performance")
    html = (HTML_DIR / f"{page}.html").read_text(encoding="utf-8")
    n_sliders = expected_slider_count(html)
    n_views = len(_widget_blocks(html, "view"))
    driver.get(f"{base_url}/{page}.html")
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete", message="page load")
    if n_views:
        wait_until(
            lambda: driver.execute_script("return document.querySelectorAll('.noUi-handle').length") >= n_sliders
            and driver.execute_script("return document.querySelectorAll('.jupyter-widgets').length") > 0,
            message=f"{page}: expected {n_sliders} rendered sliders from the embedded widget state",
        )
    if page_has_math(html):
        wait_until(
            lambda: driver.execute_script("return document.querySelectorAll('mjx-container').length") > 0,
            message=f"{page}: MathJax did not typeset the page's math",
        )
    time.sleep(0.5)  # let late requests (fonts, MathJax extensions) show up in the logs
    return {
        "html": html,
        "n_sliders": n_sliders,
        "console": driver.get_log("browser"),
        "performance": driver.get_log("performance"),
        "resources": driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat(performance.getEntriesByType('navigation').map(e => e.name))"
        ),
    }


def requested_urls(seen: dict) -> set[str]:
    urls = set(seen["resources"])
    for entry in seen["performance"]:
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    return urls


def non_local(urls: set[str]) -> list[str]:
    bad = []
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in LOCAL_SCHEMES:
            continue
        if parsed.hostname not in LOCAL_HOSTS:
            bad.append(url)
    return sorted(bad)


# ---- tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_page_is_small(html_dir: Path, page: str):
    path = html_dir / f"{page}.html"
    assert path.is_file(), f"{path} missing: is the chapter in _toc.yml built?"
    size = path.stat().st_size
    assert size < MAX_PAGE_BYTES, (
        f"{path.name} is {size / 1e6:.2f} MB (limit 2 MB): render slider frames smaller (dpi ~80) or fewer"
    )


# TeX left as text in the prose: a dollar sign or a backslash command outside every math element.
RAW_TEX = re.compile(r"\$|\\[A-Za-z]{2,}")


@pytest.mark.parametrize("page", PAGES)
def test_prose_has_no_raw_tex(html_dir: Path, page: str):
    """Every formula of the prose reached the math renderer (an unparsed `$$` block leaves `$` and `\\mathbb` as text).

    Checked on the built HTML before MathJax runs: MyST turns each formula into a `.math` element; whatever TeX is
    left in the prose outside those (and outside code and cell outputs) was not recognized as math.
    """
    bs4 = pytest.importorskip("bs4")
    soup = bs4.BeautifulSoup((html_dir / f"{page}.html").read_text(encoding="utf-8"), "html.parser")
    main = soup.find("article") or soup.body
    for element in main.select("div.cell_input, div.cell_output, pre, code, .math, script, style, .highlight"):
        element.decompose()
    text = " ".join(main.get_text(" ").split())
    leftovers = [text[max(0, m.start() - 40):m.end() + 40] for m in RAW_TEX.finditer(text)]
    assert not leftovers, f"{page}: {len(leftovers)} pieces of raw TeX in the prose, e.g. {leftovers[:3]}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline(driver, base_url: str, page: str):
    seen = visit(driver, base_url, page)

    urls = requested_urls(seen)
    assert any(u.endswith(f"/{page}.html") for u in urls), "the page itself was not seen in the network log"
    outside = non_local(urls)
    assert not outside, f"{page} requested resources outside the book: {outside}"

    severe = [
        e["message"]
        for e in seen["console"]
        if e["level"] == "SEVERE" and not any(p.search(e["message"]) for p in KNOWN_CONSOLE_NOISE)
    ]
    assert not severe, f"{page}: SEVERE console messages: {severe}"

    if page_has_math(seen["html"]):
        assert driver.execute_script("return document.querySelectorAll('mjx-container').length") > 0
        raw = driver.execute_script(
            "return Array.from(document.querySelectorAll('span.math, div.math'))"
            ".filter(e => !e.querySelector('mjx-container')).length"
        )
        assert raw == 0, f"{page}: {raw} math elements were left untypeset"

    # Widget descriptions such as \(\varepsilon\) are typeset too (the MathJax 2 shim in widgets-setup.js).
    raw_labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('.jupyter-widgets .widget-label'))"
        ".map(e => e.textContent).filter(t => t.includes('\\\\('))"
    )
    assert not raw_labels, f"{page}: widget descriptions left as raw TeX: {raw_labels}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_sliders_change_the_picture(driver, base_url: str, page: str):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    seen = visit(driver, base_url, page)
    if seen["n_sliders"] == 0:
        pytest.skip(f"{page} has no sliders")
    handles = driver.find_elements("css selector", ".noUi-handle")
    assert len(handles) >= seen["n_sliders"]

    # For a handle: the first enclosing element that holds an <img> is its frame_slider box.
    image_of = (
        "let el = arguments[0];"
        "while (el && !el.querySelector('img')) { el = el.parentElement; }"
        "return el ? el.querySelector('img') : null;"
    )
    readout_of = (
        "const s = arguments[0].closest('.widget-slider');"
        "const r = s ? s.querySelector('.widget-readout') : null;"
        "return r ? (r.value !== undefined && r.value !== '' ? r.value : r.textContent) : null;"
    )
    moved = 0
    for index, handle in enumerate(handles):
        lo, hi = handle.get_attribute("aria-valuemin"), handle.get_attribute("aria-valuemax")
        if lo is not None and hi is not None and float(lo) == float(hi):
            continue  # a one-position slider cannot move
        image = driver.execute_script(image_of, handle)
        assert image is not None, f"{page}: slider {index} controls no image (a kernel-only `interact` slider?)"
        src_before = image.get_attribute("src")
        readout_before = driver.execute_script(readout_of, handle)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        ActionChains(driver).click(handle).send_keys(Keys.ARROW_RIGHT).perform()

        def changed():
            img = driver.execute_script(image_of, handle)
            return img is not None and img.get_attribute("src") != src_before

        wait_until(changed, timeout=10, message=f"{page}: moving slider {index} did not change its image")
        src_after = driver.execute_script(image_of, handle).get_attribute("src")
        assert src_after.startswith("data:image/png") or src_after.startswith("blob:"), src_after
        if readout_before is not None:
            assert driver.execute_script(readout_of, handle) != readout_before, (
                f"{page}: slider {index} moved the image but not its readout"
            )
        moved += 1
    assert moved > 0, f"{page}: no slider could be moved"
