"""The trace page in a real browser: headless Chromium driven by Playwright (pip package
``playwright``, pointed at the system's Chromium; ``playwright install`` is never needed).

Checks that every number of ``loopnet trace --json`` is on the page as formatted, steps
through with the arrow keys checking what each step highlights and which kernel it names,
and keeps screenshots in pytest's tmp_path (``pytest --basetemp=DIR`` to look at them).
Skips with the reason when Playwright or Chromium is missing (.ci/run installs both).
"""

import json
import os
import re
import shutil

import numpy as np
import pytest

import loopnet
from loopnet.trace import KERNELS, trace

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs the playwright package "
                                  "(pip install 'loopnet[browser]')")

CHROMIUM = os.environ.get("LOOPNET_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
if CHROMIUM is None:
    pytest.skip("no Chromium found (apt-get install chromium, or set LOOPNET_CHROMIUM)",
                allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?")


def g4(v):
    return "0" if v == 0 else format(float(v), ".4g")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=FLAGS, viewport={"width": 1400, "height": 900},
            offline=True)
        yield ctx
        ctx.close()


def open_page(browser, tmp_path, tr, name, **options):
    path = tmp_path / f"{name}.html"
    path.write_text(tr.to_html(**options), encoding="utf-8")
    page = browser.new_page()
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#panel h2")
    return page, errors, requests


def expected_steps(L):
    return (["input"] + [f"forward-{l}" for l in range(1, L + 1)] + ["cost", "bp1"]
            + [f"bp2-{l}" for l in range(L - 1, 0, -1)] + ["bp3"]
            + [f"bp4-{l}" for l in range(L, 0, -1)] + ["update"])


def highlighted(page, selector):
    return page.eval_on_selector_all(selector, "els => els.map(e => e.id)")


def test_small_network_every_number_and_every_step(browser, tmp_path):
    from loopnet.commands import trace as cmd
    import argparse
    import io
    from contextlib import redirect_stdout
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        assert cmd.run(parser.parse_args(["--sizes", "2,3,2", "--seed", "0", "--json"])) == 0
    obj = json.loads(out.getvalue())
    tr = trace(loopnet.Net([2, 3, 2], seed=0), obj["x"], obj["y"])
    page, errors, requests = open_page(browser, tmp_path, tr, "small")
    tokens = set(NUMBER.findall(page.inner_text("body")))
    for key in ("x", "y", "weights", "biases", "z", "a", "delta", "nabla_w", "nabla_b", "cost_x"):
        vals = np.ravel(np.array(obj[key] if key != "a" else sum(obj["a"], []), dtype=object))
        for v in np.hstack([np.ravel(u) for u in vals]) if key != "cost_x" else [obj["cost_x"]]:
            assert g4(v) in tokens, (key, v)
    L = 2
    seen = []
    for i, step in enumerate(expected_steps(L)):
        if i:
            page.keyboard.press("ArrowRight")
        assert page.evaluate("document.body.dataset.step") == step
        seen.append(step)
        panel = page.inner_text("#panel")
        neurons = highlighted(page, "circle.neuron.hl")
        edges = highlighted(page, "line.edge.hl")
        if step.startswith("forward-"):
            l = int(step[-1])
            assert neurons and all(n.startswith(f"n{l}_") for n in neurons)
            assert len(edges) == 2 * 3 if l == 1 else 3 * 2
            assert all(e.startswith(f"e{l}_") for e in edges)
            assert KERNELS["forward"] in panel
            j = obj["y"].index(1.0) if l == 2 else int(np.argmax(np.abs(obj["delta"][0])))
            assert f"n{l}_{j}" in highlighted(page, "circle.neuron.sel")
            results = page.eval_on_selector_all("#panel .result", "els => els.map(e => e.innerText)")
            assert results == [g4(obj["z"][l - 1][j]), g4(obj["a"][l][j])]
        elif step in ("cost", "bp1"):
            assert sorted(neurons) == ["n2_0", "n2_1"]
            assert KERNELS["cost" if step == "cost" else "BP1"] in panel
            if step == "bp1":
                assert "BP1" in panel and g4(obj["delta"][1][1]) in panel
        elif step == "bp2-1":
            assert sorted(neurons) == ["n1_0", "n1_1", "n1_2"]
            assert edges and all(e.startswith("e2_") for e in edges)   # w^2 carries δ^2 back
            assert KERNELS["BP2"] in panel and "BP2" in panel
        elif step == "bp3":
            assert len(neurons) == 5 and KERNELS["BP3"] in panel
        elif step.startswith("bp4-"):
            l = int(step[-1])
            assert all(e.startswith(f"e{l}_") for e in edges) and KERNELS["BP4"] in panel
            assert any(g4(v) in panel for v in np.ravel(obj["nabla_w"][l - 1]))
        elif step == "update":
            assert KERNELS["update"] in panel and "←" in panel
        if step in ("forward-2", "bp1", "bp2-1", "bp4-2"):
            page.screenshot(path=str(tmp_path / f"small-{i:02d}-{step}.png"))
    assert seen == expected_steps(L)
    page.keyboard.press("ArrowRight")                 # past the end: stays on the last step
    assert page.evaluate("document.body.dataset.step") == "update"
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.body.dataset.step") == "input"
    # clicking a neuron shows all of its quantities
    page.click("#n1_2")
    info = page.inner_text("#info")
    for key in ("biases", "z", "delta", "nabla_b"):
        assert g4(obj[key][0][2]) in info, key
    assert g4(obj["a"][1][2]) in info
    # and a weight all of its own: w, the activation in, the error out, ∂C/∂w, w after the update
    page.dispatch_event("#e2_1_0", "click")
    info = page.inner_text("#info")
    w, g = obj["weights"][1][1][0], obj["nabla_w"][1][1][0]
    for v in (w, obj["a"][1][0], obj["delta"][1][1], g, w - 3.0 * g):
        assert g4(v) in info, v
    assert "e2_1_0" in highlighted(page, "line.edge.sel")
    assert not errors and all(u.startswith("file:") for u in requests), (errors, requests)


def test_wide_network_with_an_image(browser, tmp_path):
    """[784, 30, 10]: the input drawn as 28x28 pixels, the 8 largest terms and the rest."""
    net = loopnet.Net([784, 30, 10], seed=0)
    yy, xx = np.mgrid[0:28, 0:28]
    x = (((yy - 14) ** 2 + (xx - 14) ** 2) < 64).astype(float).ravel()   # a disc
    tr = trace(net, x, 3)
    page, errors, _ = open_page(browser, tmp_path, tr, "wide")
    assert len(page.query_selector_all("rect.pix")) == 784
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.body.dataset.step") == "forward-1"
    j = int(np.argmax(np.abs(tr["delta"][0])))
    for move in range(2):
        prod = tr["weights"][0][j] * x
        top = sorted(range(784), key=lambda k: -abs(prod[k]))[:8]
        rows = page.eval_on_selector_all(
            "#panel table:first-of-type tr", "rs => rs.map(r => r.innerText)")
        ks = [int(r.split("\t")[0]) for r in rows[1:9]]
        assert ks == top
        assert f"the other {784 - 8} terms" in page.inner_text("#panel")
        results = page.eval_on_selector_all("#panel .result", "els => els.map(e => e.innerText)")
        assert results == [g4(tr["z"][0][j]), g4(tr["a"][1][j])]
        assert len(highlighted(page, "line.edge")) <= 9 + 300     # layer 1: its largest terms only
        assert f"n1_{j}" in highlighted(page, "circle.neuron.sel")
        if move == 0:
            page.screenshot(path=str(tmp_path / "wide-forward-1.png"))
        page.keyboard.press("ArrowDown")                          # the next neuron
        j = (j + 1) % 30
    for _ in range(4):                                            # forward-2, cost, BP1, BP2
        page.keyboard.press("ArrowRight")
    assert page.evaluate("document.body.dataset.step") == "bp2-1"
    page.screenshot(path=str(tmp_path / "wide-bp2.png"))
    assert g4(tr["delta"][0][j]) in page.inner_text("#panel")
    assert not errors, errors


def test_dropout_page_marks_the_dropped_neurons(browser, tmp_path):
    from loopnet.trace import DropoutKey
    net = loopnet.Net([2, 6, 2], seed=0, dropout=0.5)
    tr = trace(net, [0.1, 0.9], 0, dropout=DropoutKey(12, 2))
    mask = tr["dropout"]["mask"][0]
    assert 0 < mask.sum() < 6
    page, errors, requests = open_page(browser, tmp_path, tr, "dropout")
    dropped = sorted(highlighted(page, "circle.neuron.dropped"))
    assert dropped == sorted(f"n1_{j}" for j in np.flatnonzero(mask == 0))
    panels = {}
    for i, step in enumerate(expected_steps(2)):
        if i:
            page.keyboard.press("ArrowRight")
        assert page.evaluate("document.body.dataset.step") == step
        panels[step] = page.inner_text("#panel")
    assert "ã" in panels["forward-1"] and "goes on to layer 2" in panels["forward-1"]
    assert "dropout mask" in panels["bp2-1"]
    assert errors == [] and all(u.startswith("file:") for u in requests)
    page.close()
