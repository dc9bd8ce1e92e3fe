"""Screenshots of the web page answering one pair with a real run, at desktop and phone size.

    .venv/bin/python scripts/screenshots.py RUN --data ../shared/datasets/mvsa-lab5 --guid 1234
    .venv/bin/python scripts/screenshots.py RUN --image photo.jpg --text "What a day! #sunny"

Serves RUN on a loopback port (as `mmsent serve RUN` does), opens the page in headless Chromium
(Debian's /usr/bin/chromium through Playwright) at 1280x800 and at 375x667, classifies the pair
and saves what the window shows once the answer is in: OUT/desktop.png and OUT/phone.png
(OUT: docs/screenshots by default).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from mmsent.serve.app import create_app
from mmsent.serve.classifier import Classifier

CHROMIUM = "/usr/bin/chromium"
SIZES = {"desktop": (1280, 800), "phone": (375, 667)}


def start(run: Path, model: str | None) -> tuple[uvicorn.Server, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(Classifier.load(run, model)), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def shoot(url: str, image: Path, text: str, out: Path) -> list[Path]:
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        for name, (width, height) in SIZES.items():
            page = browser.new_page(viewport={"width": width, "height": height}, reduced_motion="reduce")
            page.goto(url)
            expect(page.locator("#model-info")).to_contain_text("answers with")
            page.set_input_files("#image-input", str(image))
            page.fill("#text-input", text)
            page.click("#classify")
            expect(page.locator("#result")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(out / f"{name}.png"))
            saved.append(out / f"{name}.png")
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="run folder")
    parser.add_argument("--data", type=Path, help="a lab folder: the pair is data/GUID.jpg and data/GUID.txt")
    parser.add_argument("--guid", help="the pair's guid in --data")
    parser.add_argument("--image", type=Path, help="the picture (instead of --data/--guid)")
    parser.add_argument("--text", help="the tweet's text (instead of --data/--guid)")
    parser.add_argument("--model", help="another of the run's models to answer (as `serve --model`)")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs")
    args = parser.parse_args()
    if args.guid and args.data:
        image = args.data / "data" / f"{args.guid}.jpg"
        text = (args.data / "data" / f"{args.guid}.txt").read_text(encoding="utf-8", errors="replace").strip()
    elif args.image and args.text:
        image, text = args.image, args.text
    else:
        parser.error("give --data and --guid, or --image and --text")
    args.out.mkdir(parents=True, exist_ok=True)
    server, url = start(args.run, args.model)
    try:
        for path in shoot(url, image, text, args.out):
            print(path)
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
