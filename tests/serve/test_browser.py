"""The page in a real browser: Debian's Chromium, headless, driven by Playwright, against
`lenet5 serve` on a trained model. A "1" and a "0" are drawn with mouse strokes on the canvas
and the label the page shows is checked.

LENET5_SCREENSHOT=path saves a screenshot of the page with a drawn digit there (the README's
docs/images/serve.png is made so); without it the test writes nothing outside its temporary
directory.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ..helpers.commands import Server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, mnist_dir) -> Path:
    """The default LeNet-5 after two epochs on the full MNIST (about 98.5% test accuracy)."""
    from lenet5.cli.main import main

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    code = main(["train", "--epochs", "2", "--out", str(run_dir), "--data-dir", str(mnist_dir), "--no-progress"])
    assert code == 0
    return run_dir


@pytest.fixture
def page(trained_run):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; `make test` installs Debian's chromium package")
    with Server(trained_run) as server, playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 1100})
            blocked = []
            tab.route(lambda url: not url.startswith(server.url), lambda route: (blocked.append(route.request.url),
                                                                                   route.abort()))
            tab.goto(server.url + "/")
            yield tab
            assert blocked == []  # the page asked for nothing beyond its own server
        finally:
            browser.close()


def one(box) -> list[list[tuple[float, float]]]:
    x = box["x"] + box["width"] * 0.5
    return [[(x + 6, box["y"] + box["height"] * 0.18), (x - 4, box["y"] + box["height"] * 0.82)]]


def zero(box) -> list[list[tuple[float, float]]]:
    cx, cy = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    rx, ry = box["width"] * 0.22, box["height"] * 0.32
    return [[(cx + rx * math.sin(2 * math.pi * t / 40), cy - ry * math.cos(2 * math.pi * t / 40)) for t in range(42)]]


def draw(page, strokes) -> str:
    """Draw `strokes` with the mouse; the label the page shows once its answer has arrived."""
    pad = page.locator("#pad")
    box = pad.bounding_box()
    for points in strokes(box):
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=8)
        page.mouse.up()
    page.wait_for_selector("#result[data-state=ready]")
    return page.locator("#prediction-label").inner_text()


@pytest.mark.slow
def test_drawing_a_one_and_a_zero_shows_their_labels(page):
    assert page.locator("#prediction-label").inner_text() == "?"
    assert draw(page, one) == "1"
    assert page.locator("#bars li.best .digit").inner_text() == "1"
    assert page.locator("#c1 canvas").count() == 6 and page.locator("#c3 canvas").count() == 16
    page.click("#clear")
    assert page.locator("#result").get_attribute("data-state") == "empty"
    assert draw(page, zero) == "0"
    seen = page.evaluate("""() => {
        const canvas = document.getElementById('seen');
        const data = canvas.getContext('2d').getImageData(0, 0, 28, 28).data;
        let ink = 0; for (let i = 0; i < data.length; i += 4) ink += data[i] > 128; return [canvas.width, ink];
    }""")
    assert seen[0] == 28 and seen[1] > 30  # the 28×28 input is drawn, white ink on black
    target = os.environ.get("LENET5_SCREENSHOT")
    if target:
        from lenet5.files.writing import atomic_write_bytes

        atomic_write_bytes(target, page.screenshot(full_page=True))


@pytest.mark.slow
def test_an_uploaded_photo_is_classified(page, mnist_dir, tmp_path):
    from PIL import Image

    from lenet5.data.idx import read_idx

    digit = read_idx(mnist_dir / "t10k-images-idx3-ubyte", mmap=True)[0]
    label = int(read_idx(mnist_dir / "t10k-labels-idx1-ubyte")[0])
    photo = tmp_path / "photo.png"  # dark ink on white paper, larger than MNIST, as a photo is
    Image.fromarray(255 - np.asarray(digit)).resize((200, 200), Image.Resampling.BICUBIC).save(photo)
    page.set_input_files("#upload", str(photo))
    page.wait_for_selector("#result[data-state=ready]")
    assert page.locator("#prediction-label").inner_text() == str(label)
