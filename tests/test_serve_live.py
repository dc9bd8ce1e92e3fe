"""The real server on a loopback port: a load test, and the web page driven in headless Chromium."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

from mmsent import LABELS
from mmsent.model import Predictor
from mmsent.serve.app import create_app
from mmsent.serve.classifier import Classifier
from mmsent.serve.protocol import server_options

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


@contextmanager
def running(app, **options) -> Iterator[str]:
    """uvicorn in a thread, on a loopback socket bound here (port 0: no race for a free port),
    with the options `mmsent serve` uses unless `options` says otherwise."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, log_level="warning", **(server_options() | options)))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def server(tiny_run) -> Iterator[str]:
    with running(create_app(fused_classifier(tiny_run))) as url:
        yield url


def fused_classifier(run: Path) -> Classifier:
    """The tiny run answering as the main job's "mean of fusion models" would (the probe and concat
    averaged; the single-modality heads beside it), whichever model won on the tiny run."""
    loaded = Classifier.load(run)
    every = {m.name: m for m in [*loaded.model.members, *loaded.model.others]}
    fused = Predictor(
        [every["linear_probe"], every["concat"]],
        others=[every["text_only"], every["image_only"]],
        name="mean of fusion models",
        reference=loaded.model.reference,
    )
    return Classifier(loaded.run, loaded.cfg, loaded.image_encoder, loaded.text_encoder, fused)


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


def received_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_client_that_never_finishes_its_headers_is_disconnected(tiny_run):
    # A short header deadline, and a keep-alive timeout long past the socket's: only the deadline closes.
    options = server_options(header_timeout=0.5) | {"timeout_keep_alive": 120}
    with running(create_app(Classifier.load(tiny_run)), **options) as url:
        port = int(url.rsplit(":", 1)[1])
        half = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
        with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
            slow.sendall(half)
            assert received_until_closed(slow) == b""  # closed, no answer
        with socket.create_connection(("127.0.0.1", port), timeout=30) as silent:
            assert received_until_closed(silent) == b""  # connected, never sent a byte
        # One request answered, then half of the next: the deadline starts again after each answer.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as kept:
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + half)
            answered = received_until_closed(kept)
            assert answered.startswith(b"HTTP/1.1 200") and answered.count(b"HTTP/1.1") == 1
        with httpx.Client(base_url=url, timeout=60) as client:  # a client that sends in time is served
            assert predict(client, PAIRS[0]).status_code == 200


def screenshot_folder(tmp_path: Path) -> Path:
    """Where the page tests leave screenshots: $MMSENT_SCREENSHOTS if set, else the test's tmp folder."""
    folder = Path(os.environ.get("MMSENT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {folder}")
    return folder


def result_in_view_and_focused(page) -> dict:
    return page.evaluate(
        """() => {
            const title = document.getElementById('result-title');
            const box = title.getBoundingClientRect();
            return {focused: document.activeElement === title, top: box.top, bottom: box.bottom,
                    height: window.innerHeight, scrolled: window.scrollY};
        }"""
    )


def classify(page, colour, text, name="pair.jpg") -> None:
    page.set_input_files(
        "#image-input",
        files=[{"name": name, "mimeType": "image/jpeg", "buffer": jpeg(colour, (320, 240))}],
    )
    page.fill("#text-input", text)
    page.click("#classify")


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's /usr/bin/chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.browser
def test_page_shows_the_fusion_answer_explained_in_view_and_focused(server, browser, tmp_path):
    from playwright.sync_api import expect

    shots = screenshot_folder(tmp_path)
    with httpx.Client(base_url=server, timeout=60) as client:
        answers = {pair: predict(client, pair).json() for pair in PAIRS}
    low = next((pair for pair, a in answers.items() if a["low_confidence"]), None)
    sure = next((pair for pair, a in answers.items() if not a["low_confidence"]), None)
    close = next((pair for pair, a in answers.items() if a["close_call"]), None)
    assert low and sure, "the tiny run should answer one of PAIRS under 50% and one above"
    assert close, "the tiny run should answer one of PAIRS with a runner-up within 10 points"

    # Desktop: 1280x800. Reduced motion: bars at their final width at once, scrolling instant.
    page = browser.new_page(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server)
    expect(page.locator("#model-info")).to_contain_text("answers with mean of fusion models")

    expected = answers[sure]
    classify(page, *sure)
    expect(page.locator("#result")).to_be_visible()
    assert page.locator("#result-label").inner_text().lower() == expected["label"]
    # The fusion answers, and names its members.
    expect(page.locator("#result-head")).to_have_text(
        f"by mean of fusion models (linear probe + concat), "
        f"{100 * expected['probabilities'][expected['label']]:.1f}% sure"
        f" · cross-validated accuracy {100 * expected['cv_accuracy']:.1f}%"
    )
    shown = bar_values(page, "#result-bars")
    for label in LABELS:
        assert shown[label]["value"] == pytest.approx(expected["probabilities"][label], abs=1e-6)
        # The drawn bar's width matches its probability (to a pixel or two).
        assert shown[label]["drawn"] == pytest.approx(expected["probabilities"][label], abs=0.01)
        assert shown[label]["text"] == f"{100 * expected['probabilities'][label]:.1f}%"
    # Every model of the run beside it, its members first.
    cards = page.locator(".model-card")
    assert cards.evaluate_all("(cards) => cards.map((c) => c.dataset.model)") == [
        "linear_probe",
        "concat",
        "text_only",
        "image_only",
    ]
    for name, answer in expected["per_model"].items():
        card = page.locator(f".model-card[data-model='{name}']")
        assert card.locator(".badge").inner_text().lower() == answer["label"]
        in_answer = name in ("linear_probe", "concat")
        expect(card.locator(".role")).to_contain_text("part of the answer" if in_answer else "not part of")
        expect(card.locator(".role")).to_contain_text(
            f"cross-validated accuracy {100 * answer['cv_accuracy']:.1f}%"
        )
    # The explanation: the API's sentences, as written; each side's figure is its single-modality card's.
    sentences = page.locator("#explain-sentences li")
    said = expected["explanation"]["sentences"]
    expect(sentences).to_have_text(said[:-1] if expected["close_call"] else said)
    for side, alone in (("text", "image_only"), ("image", "text_only")):
        card = bar_values(page, f".model-card[data-model='{alone}']")
        label = expected["per_model"][alone]["label"]
        expect(sentences.nth(0 if side == "text" else 1)).to_have_text(
            f"Without the {side}: {label} {card[label]['text']} (the {alone.replace('_', '-')} model)."
        )
    readout = expected["explanation"]["readout"]
    expect(page.locator("#readout")).to_have_text(
        f"The concat model's own readout (input share {100 * readout['image_share']:.1f}%), "
        f"not an explanation: {readout['what']}."
    )
    expect(page.locator("#low-confidence")).to_be_hidden()
    state = result_in_view_and_focused(page)
    assert state["focused"] and 0 <= state["top"] and state["bottom"] <= state["height"], state
    page.screenshot(path=str(shots / "desktop-result.png"))

    # A low-confidence answer is flagged, with the threshold, the runner-up and the hardest class.
    expected = answers[low]
    classify(page, *low)
    flag = page.locator("#low-confidence")
    expect(flag).to_be_visible()
    expect(flag).to_contain_text(
        f"{100 * expected['confidence']:.1f}% is under 50%: by the model's own account"
    )
    expect(flag).to_contain_text(f"Runner-up: {expected['runner_up']}")
    hardest = expected["hardest_class"]
    expect(flag).to_contain_text(
        f"The class this model finds hardest is {hardest['label']}: it recognised "
        f"{100 * hardest['recall']:.1f}% of {hardest['label']} tweets in the run's cross-validation."
    )
    said = expected["explanation"]["sentences"]
    expect(page.locator("#explain-sentences li")).to_have_text(said[:-1] if expected["close_call"] else said)
    assert result_in_view_and_focused(page)["focused"]
    page.screenshot(path=str(shots / "desktop-low-confidence.png"), full_page=True)

    # A close call is named as one, with both classes' figures as the bars show them.
    expected = answers[close]
    classify(page, *close)
    call = page.locator("#close-call")
    expect(call).to_be_visible()
    shown = bar_values(page, "#result-bars")
    runner_up = expected["runner_up"]
    expect(call).to_contain_text(
        f"A close call: {expected['label']} {shown[expected['label']]['text']} against {runner_up} "
        f"{shown[runner_up]['text']}, within 10 points."
    )
    expect(page.locator("#explain-sentences")).not_to_contain_text("A close call")  # said once
    page.screenshot(path=str(shots / "desktop-close-call.png"), full_page=True)
    classify(page, *sure)
    if not answers[sure]["close_call"]:
        expect(page.locator("#close-call")).to_be_hidden()

    # The text alone: the run's text-only model answers, labelled as such, with its CV accuracy.
    page.reload()
    page.fill("#text-input", sure[1])
    page.click("#classify")
    expect(page.locator("#result")).to_be_visible()
    alone = answers[sure]["per_model"]["text_only"]
    expect(page.locator("#result-head")).to_have_text(
        f"by text only, from the text alone, {100 * alone['probabilities'][alone['label']]:.1f}% sure"
        f" · cross-validated accuracy {100 * alone['cv_accuracy']:.1f}%"
    )
    assert page.locator(".model-card").evaluate_all("(cards) => cards.map((c) => c.dataset.model)") == [
        "text_only"
    ]
    expect(page.locator("#models-title")).to_have_text("The model that answered")
    top, second = sorted(alone["probabilities"].values())[:-3:-1]
    if top - second <= 0.10:  # the flag quotes the close call, never the note on which model answered
        expect(page.locator("#close-call")).to_contain_text("A close call: ")
    page.screenshot(path=str(shots / "desktop-text-alone.png"), full_page=True)

    # Neither side: the page says what to send, and sends nothing.
    page.fill("#text-input", "   ")
    page.click("#classify")
    expect(page.locator("#error")).to_have_text("Choose a picture, type the tweet's text, or both.")
    classify(page, *sure)

    # A file that is no picture: the API's own message reaches the page; the old answer goes.
    page.set_input_files(
        "#image-input", files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"not really a png"}]
    )
    page.click("#classify")
    expect(page.locator("#error")).to_contain_text("not an image")
    expect(page.locator("#result")).to_be_hidden()
    page.screenshot(path=str(shots / "desktop-error.png"))

    # Nothing was fetched from anywhere but this server (blob: is the local preview).
    assert [url for url in requested if not url.startswith((server, "blob:", "data:"))] == []


@pytest.mark.browser
def test_page_at_phone_width_scrolls_the_answer_into_view(server, browser, tmp_path):
    from playwright.sync_api import expect

    shots = screenshot_folder(tmp_path)
    phone = browser.new_page(viewport={"width": 375, "height": 667}, reduced_motion="reduce")
    phone.goto(server)
    classify(phone, *PAIRS[0])
    expect(phone.locator("#result")).to_be_visible()
    state = result_in_view_and_focused(phone)
    # Below the form on a phone: the page scrolled down to it, and it holds the keyboard focus.
    assert state["focused"] and state["scrolled"] > 0, state
    assert 0 <= state["top"] and state["bottom"] <= state["height"], state
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    phone.screenshot(path=str(shots / "phone-result.png"))
    phone.screenshot(path=str(shots / "phone-result-full.png"), full_page=True)


@pytest.mark.browser
def test_docs_page_tries_out_a_prediction(server, browser):
    """Swagger UI from the swagger-ui-bundle package: it renders offline and its "Try it out" form
    sends a real upload."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server}/docs")
    operation = page.locator("#operations-default-predict_v1_predict_post")
    expect(operation).to_be_visible()
    operation.locator(".opblock-summary").click()
    page.set_input_files(
        "#operations-default-predict_v1_predict_post input[type=file]",
        files=[{"name": "sunny.jpg", "mimeType": "image/jpeg", "buffer": jpeg(PAIRS[0][0])}],
    )
    operation.locator("input[type=text], textarea").first.fill(PAIRS[0][1])
    operation.locator("button.execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"confidence"')
    assert [url for url in requested if not url.startswith((server, "data:", "blob:"))] == []


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
