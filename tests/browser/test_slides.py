"""The lecture decks (scripts/slides.py, in _build/slides) in a real (headless) browser, with no internet.

For every chapter's deck: it opens without SEVERE console errors; pressing the right arrow and the space bar
(keyboard events sent to the page, as a presenter's clicker does) walks through every slide to the last one
(counted against Reveal.getTotalSlides()); the local MathJax typesets its math (mjx-container elements, no raw
TeX left in the text); every <img> has loaded (naturalWidth > 0) and the sliders are rendered; and no request
leaves 127.0.0.1. The index page lists every deck, offline too.

The tests skip (saying why) when `_build/slides` is missing (build it with `./dev slides`, after `./dev book`) or
Chromium / chromedriver are not installed. The server, browser flags and request checks are those of
test_book_html.py (imported from it), with a landscape window the size of a projector.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_book_html import (  # noqa: E402  (the book's browser-test helpers, not its tests)
    KNOWN_CONSOLE_NOISE,
    ROOT,
    _QuietHandler,
    chromium_session,
    expected_slider_count,
    non_local,
    requested_urls,
    wait_until,
)

pytestmark = pytest.mark.browser

SLIDES_DIR = ROOT / "_build" / "slides"
BOOK_DIR = ROOT / "_build" / "html"  # ./dev slides also puts a copy of the decks into the book: slides/
sys.path.insert(0, str(ROOT / "scripts"))
import slide_metadata  # noqa: E402  (which notebooks are chapters, as scripts/slides.py builds them)

DECKS = [path.stem for path in slide_metadata.chapters()]  # 01_adversarial_examples, ...
WINDOW = "--window-size=1280,800"
KEY_TIMEOUT_S = 5
# Text left in the slides that MathJax or the MyST translation should have consumed.
RAW_TEX_JS = r"""
const skip = 'script, style, pre, code, textarea, mjx-container, .jp-OutputArea, .jupyter-widgets';
const walker = document.createTreeWalker(document.querySelector('.reveal .slides'), NodeFilter.SHOW_TEXT);
const found = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  if (node.parentElement.closest(skip)) continue;
  const text = node.textContent;
  if (/\$|\\[A-Za-z]{2,}|\{(prf:|cite|ref)|```\{/.test(text)) found.push(text.trim().slice(0, 80));
}
return found;
"""


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slides_dir() -> Path:
    if not (SLIDES_DIR / "index.html").is_file():
        pytest.skip(f"{SLIDES_DIR} does not exist: build the decks first (./dev book, then ./dev slides)")
    return SLIDES_DIR


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` on a local HTTP server on 127.0.0.1 (a random free port); yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def slides_url(slides_dir: Path) -> Iterator[str]:
    with serve(slides_dir) as url:
        yield url


@pytest.fixture(scope="module")
def slides_driver() -> Iterator[object]:
    yield from chromium_session(WINDOW)


# ---- helpers ----------------------------------------------------------------------------------------------


def deck_has_math(deck_html: str) -> bool:
    """TeX outside scripts, styles and code: what MathJax has to typeset."""
    text = re.sub(r"<(script|style|pre)\b.*?</\1>", "", deck_html, flags=re.S | re.I)
    return bool(re.search(r"\$[^$]+\$|\\\(", text))


def position(driver) -> tuple:
    return tuple(driver.execute_script(
        "const i = Reveal.getIndices(); return [i.h, i.v, i.f === undefined ? -1 : i.f, Reveal.isLastSlide()];"))


def at_the_end(driver) -> bool:
    return driver.execute_script("return Reveal.isLastSlide() && !Reveal.availableFragments().next")


def open_deck(driver, url: str, deck: str, folder: Path = SLIDES_DIR) -> dict:
    driver.get_log("browser")  # drain the logs of earlier pages
    driver.get_log("performance")
    driver.get(f"{url}/{deck}.slides.html")
    wait_until(lambda: driver.execute_script("return window.courseSlidesReady === true"),
               message=f"{deck}: reveal.js did not start")
    return {"html": (folder / f"{deck}.slides.html").read_text(encoding="utf-8")}


def wait_for_math(driver, deck: str) -> None:
    wait_until(lambda: driver.execute_script(
        "return !!(window.MathJax && MathJax.startup && MathJax.startup.document"
        " && document.querySelectorAll('mjx-container').length > 0)"),
        message=f"{deck}: MathJax did not typeset the deck")
    driver.execute_async_script("MathJax.startup.promise.then(arguments[0], arguments[0]);")


def what_was_loaded(driver, seen: dict) -> set[str]:
    time.sleep(0.5)  # late requests (fonts, MathJax extensions) show up in the logs
    seen["console"] = driver.get_log("browser")
    seen["performance"] = driver.get_log("performance")
    seen["resources"] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
    return requested_urls(seen)


def severe_messages(seen: dict) -> list[str]:
    return [e["message"] for e in seen["console"]
            if e["level"] == "SEVERE" and not any(p.search(e["message"]) for p in KNOWN_CONSOLE_NOISE)]


def walk_with_the_keyboard(driver, deck: str) -> set[tuple[int, int]]:
    """Press right arrow and space (alternately) until the last slide; return the (h, v) slides seen."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    total = driver.execute_script("return Reveal.getTotalSlides()")
    fragments = driver.execute_script("return document.querySelectorAll('.reveal .slides .fragment').length")
    seen = {position(driver)[:2]}
    for press in range(total + fragments + 5):
        if at_the_end(driver):
            break
        before = position(driver)
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT if press % 2 == 0 else Keys.SPACE).perform()
        wait_until(lambda: position(driver) != before, timeout=KEY_TIMEOUT_S,
                   message=f"{deck}: a key press at slide {before[:2]} did not advance the deck")
        seen.add(position(driver)[:2])
    assert at_the_end(driver), f"{deck}: the keyboard did not reach the last slide in {total + fragments + 5} presses"
    return seen


# ---- tests ------------------------------------------------------------------------------------------------


def test_every_chapter_has_a_deck_listed_in_the_index(slides_dir: Path):
    index = (slides_dir / "index.html").read_text(encoding="utf-8")
    missing = [d for d in DECKS if not (slides_dir / f"{d}.slides.html").is_file()]
    assert not missing, f"no deck for {missing}: run ./dev slides (after ./dev book)"
    unlisted = [d for d in DECKS if f'href="{d}.slides.html"' not in index]
    assert not unlisted, f"index.html does not link {unlisted}"


def test_index_page_is_offline(slides_driver, slides_url: str):
    driver = slides_driver
    driver.get_log("performance")
    driver.get(f"{slides_url}/index.html")
    wait_until(lambda: driver.execute_script("return document.readyState") == "complete", message="index load")
    seen = {"resources": driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"),
            "performance": driver.get_log("performance")}
    assert not non_local(requested_urls(seen))
    links = driver.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert links and not non_local(set(links)), links


@pytest.mark.parametrize("deck", DECKS)
def test_deck_presents_offline(slides_driver, slides_url: str, slides_dir: Path, deck: str):
    if not (slides_dir / f"{deck}.slides.html").is_file():
        pytest.skip(f"{deck}.slides.html not built (test_every_chapter_has_a_deck_listed_in_the_index fails)")
    driver = slides_driver
    seen = open_deck(driver, slides_url, deck)
    html = seen["html"]

    # Math: typeset by the local MathJax 3, nothing left as raw TeX (or untranslated MyST).
    if deck_has_math(html):
        wait_for_math(driver, deck)
        raw = driver.execute_script(RAW_TEX_JS)
        assert not raw, f"{deck}: {len(raw)} pieces of raw TeX or MyST in the slides, e.g. {raw[:3]}"

    # Figures: every image loaded, the sliders rendered from the embedded widget state.
    n_sliders = expected_slider_count(html)
    if n_sliders:
        wait_until(lambda: driver.execute_script("return document.querySelectorAll('.noUi-handle').length")
                   >= n_sliders, message=f"{deck}: expected {n_sliders} rendered sliders")
    n_static = len(re.findall(r'<img src="data:image/', html))
    wait_until(lambda: driver.execute_script(
        "return Array.from(document.images).every(i => i.complete)"), message=f"{deck}: images still loading")
    images = driver.execute_script(
        "return Array.from(document.images).map(i => [i.naturalWidth, (i.currentSrc || i.src).slice(0, 40)])")
    broken = [src for width, src in images if not width > 0]
    assert not broken, f"{deck}: {len(broken)} images did not load: {broken[:3]}"
    assert len(images) >= n_static, f"{deck}: {len(images)} images shown, the deck has {n_static} figures"

    # The keyboard reaches every slide, up to the last.
    total = driver.execute_script("return Reveal.getTotalSlides()")
    assert total > 1
    visited = walk_with_the_keyboard(driver, deck)
    assert len(visited) == total, f"{deck}: the keyboard visited {len(visited)} of {total} slides"

    # Nothing from outside 127.0.0.1, and a quiet console.
    urls = what_was_loaded(driver, seen)
    assert any(u.split("#")[0].endswith(f"/{deck}.slides.html") for u in urls), "the deck was not seen in the log"
    outside = non_local(urls)
    assert not outside, f"{deck} requested resources outside the folder: {outside}"
    severe = severe_messages(seen)
    assert not severe, f"{deck}: SEVERE console messages: {severe}"


def test_the_book_links_its_copy_of_the_decks(slides_driver):
    """The copy in _build/html/slides loads the book's own vendor/ and course-js/, offline too."""
    copy = BOOK_DIR / "slides"
    if not (copy / "index.html").is_file():
        pytest.skip(f"{copy} does not exist (./dev slides copies the decks into the built book)")
    intro = (BOOK_DIR / "book" / "intro.html").read_text(encoding="utf-8")
    assert re.search(r'href="(\.\./)+slides/index\.html"', intro), "book/intro.md does not link the slides"
    deck = next(d for d in DECKS if (copy / f"{d}.slides.html").is_file())
    driver = slides_driver
    with serve(BOOK_DIR) as url:
        seen = open_deck(driver, f"{url}/slides", deck, copy)
        if deck_has_math(seen["html"]):
            wait_for_math(driver, deck)
        wait_until(lambda: driver.execute_script("return Array.from(document.images).every(i => i.complete)"),
                   message=f"{deck}: images still loading")
        assert driver.execute_script("return Array.from(document.images).every(i => i.naturalWidth > 0)")
        outside = non_local(what_was_loaded(driver, seen))
    assert not outside, f"the book's copy of {deck} requested resources outside the book: {outside}"
    assert not severe_messages(seen), severe_messages(seen)
