"""The real server on a loopback port: a load test, and the web page driven in headless Chromium."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

from mmsent import LABELS
from mmsent.serve.app import create_app
from mmsent.serve.classifier import Classifier

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Pairs the tiny run's classes are drawn from (see conftest): colour and words carry the label.
PAIRS = [
    ((220, 60, 40), "the happy sunny day #win"),
    ((90, 200, 80), "a meeting report on the train"),
    ((40, 60, 220), "sad awful rain #lose"),
    ((200, 80, 60), "love the great day"),
]


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tiny_run) -> Iterator[str]:
    """uvicorn in a thread, on a loopback socket bound here (port 0: no race for a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Answer with the fusion head, whichever model won on the tiny run: the page shows its fusion share.
    classifier = Classifier.load(tiny_run, answer="concat")
    app = create_app(classifier)
    instance = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)
    sock.close()


def predict(client: httpx.Client, pair: tuple) -> httpx.Response:
    colour, text = pair
    return client.post(
        "/v1/predict", files={"image": ("p.jpg", jpeg(colour), "image/jpeg")}, data={"text": text}
    )


def test_load_8_concurrent_clients_400_requests_no_error_no_mixups(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        expected = [predict(client, pair).json() for pair in PAIRS]

    def one_client(worker: int) -> list[tuple[int, int, dict]]:
        results = []
        with httpx.Client(base_url=server, timeout=60) as client:
            for i in range(50):
                which = (worker + i) % len(PAIRS)
                response = predict(client, PAIRS[which])
                results.append((which, response.status_code, response.json()))
        return results

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for batch in pool.map(one_client, range(8)) for r in batch]
    elapsed = time.perf_counter() - started

    assert len(results) == 400
    assert [status for _, status, _ in results] == [200] * 400
    for which, _, body in results:  # each answer belongs to its own request, not a neighbour's
        assert body["label"] == expected[which]["label"]
        for label in LABELS:
            assert body["probabilities"][label] == pytest.approx(
                expected[which]["probabilities"][label], abs=1e-5
            )
    print(f"\n400 requests from 8 clients in {elapsed:.1f} s ({400 / elapsed:.0f} req/s)")


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium (apt-get install chromium)"
)
def test_page_classifies_an_uploaded_image_in_a_real_browser(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    colour, text = PAIRS[0]
    with httpx.Client(base_url=server, timeout=60) as client:
        expected = predict(client, PAIRS[0]).json()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            # Reduced motion: bars are drawn at their final width at once, so they can be measured.
            page = browser.new_page(viewport={"width": 1000, "height": 1100}, reduced_motion="reduce")
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(server)
            sync_api.expect(page.locator("#model-info")).to_contain_text("heads: ")

            page.set_input_files(
                "#image-input",
                files=[{"name": "sunny.jpg", "mimeType": "image/jpeg", "buffer": jpeg(colour, (320, 240))}],
            )
            preview = page.locator("#preview")
            sync_api.expect(preview).to_be_visible()
            assert page.evaluate("document.getElementById('preview').naturalWidth") == 320
            page.fill("#text-input", text)
            sync_api.expect(page.locator("#text-count")).to_have_text(f"{len(text)} / 5000")
            page.click("#classify")

            result = page.locator("#result")
            sync_api.expect(result).to_be_visible()
            assert page.locator("#result-label").inner_text().lower() == expected["label"]
            shown = bar_values(page, "#result-bars")
            for label in LABELS:
                assert shown[label]["value"] == pytest.approx(expected["probabilities"][label], abs=1e-6)
                # The drawn bar's width matches its probability (to a pixel or two on a ~500 px track).
                assert shown[label]["drawn"] == pytest.approx(expected["probabilities"][label], abs=0.01)
                assert shown[label]["text"] == f"{100 * expected['probabilities'][label]:.1f}%"
            for side in ("text", "image"):
                card = page.locator(f".modality[data-modality='{side}']")
                sync_api.expect(card).to_be_visible()
                assert card.locator(".badge").inner_text().lower() == expected["modalities"][side]["label"]
            assert expected["head"] == "concat"
            fusion = expected["fusion"]
            sync_api.expect(page.locator("#fusion-note")).to_have_text(
                f"The concat head leaned on the {fusion['leaned_on']}."
            )
            drawn = page.evaluate(
                """() => ['text', 'image'].map((side) =>
                    document.querySelector(`#fusion-split .${side}-part`).getBoundingClientRect().width /
                    document.querySelector('#fusion-split').getBoundingClientRect().width)"""
            )
            assert drawn == pytest.approx([fusion["text_share"], fusion["image_share"]], abs=0.01)
            page.screenshot(path=str(tmp_path / "page-result.png"), full_page=True)

            # The API's own error message reaches the page.
            page.set_input_files(
                "#image-input",
                files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not really a png"}],
            )
            page.click("#classify")
            sync_api.expect(page.locator("#error")).to_contain_text("not an image")
            sync_api.expect(result).to_be_hidden()  # the old answer does not linger beside the error
            page.screenshot(path=str(tmp_path / "page-error.png"), full_page=True)

            # Nothing was fetched from anywhere but this server (blob: is the local preview).
            outside = [url for url in requested if not url.startswith((server, "blob:", "data:"))]
            assert outside == []

            # Phone width: the page fits without sideways scrolling.
            phone = browser.new_page(viewport={"width": 360, "height": 740}, reduced_motion="reduce")
            phone.goto(server)
            phone.set_input_files(
                "#image-input",
                files=[{"name": "sunny.jpg", "mimeType": "image/jpeg", "buffer": jpeg(colour, (320, 240))}],
            )
            phone.fill("#text-input", text)
            phone.click("#classify")
            sync_api.expect(phone.locator("#result")).to_be_visible()
            assert phone.evaluate("document.documentElement.scrollWidth") <= 360
            phone.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)
        finally:
            browser.close()
    # A folder to keep the screenshots in, for a person to look at.
    keep = os.environ.get("MMSENT_SCREENSHOTS")
    if keep:
        for shot in tmp_path.glob("page-*.png"):
            shutil.copy(shot, Path(keep) / shot.name)


def bar_values(page, container: str) -> dict[str, dict]:
    """Each bar row's value (data attribute), its drawn fill fraction and its printed percentage."""
    return page.evaluate(
        """(selector) => Object.fromEntries(
          [...document.querySelectorAll(selector + ' .bar-row')].map((row) => {
            const track = row.querySelector('.bar-track').getBoundingClientRect();
            const fill = row.querySelector('.bar-fill').getBoundingClientRect();
            return [row.dataset.label, {
                value: Number(row.dataset.value),
                drawn: fill.width / track.width,
                text: row.querySelector('.bar-value').textContent,
            }];
          }))""",
        container,
    )
