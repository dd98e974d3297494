"""The trace page and picture without a browser: the page is self-contained, carries every
number of the trace as formatted, and its sums, update and cost after the update agree with
NumPy arithmetic done here; the CLI writes pages and pictures of saved networks on real
examples.  (tests/test_trace_browser.py drives the page in Chromium.)"""

import argparse
import io
import json
import re
from contextlib import redirect_stdout
from html.parser import HTMLParser

import numpy as np
import pytest

import loopnet
import loopnet.io
from loopnet import reference as R
from loopnet.trace import KEYS, to_jsonable, trace
from loopnet.trace import view_model
from loopnet.trace_html import page


def g4(v, digits=4):
    """The page's number format, written out independently: Python's g, 0 as 0."""
    return "0" if v == 0 else format(float(v), f".{digits}g")


def flat_numbers(obj):
    """Every number of a JSON trace (sizes and other ints included)."""
    if isinstance(obj, (list, tuple)):
        for u in obj:
            yield from flat_numbers(u)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def small_trace():
    return trace(loopnet.Net([2, 3, 2], seed=0), [0.82, 0.04], 1)


class Parsed(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags, self.attrs, self.data, self._in = [], [], {}, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)
        self._in = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._in:
            self.data[self._in] = self.data.get(self._in, "") + data


def page_data(text):
    return json.loads(Parsed(text).data["data"])


def strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)
    elif isinstance(obj, str):
        yield obj


def test_page_is_self_contained():
    text = small_trace().to_html()
    p = Parsed(text)
    assert p.tags[0] == "html" and "script" in p.tags and "svg" in p.tags
    for tag, name, value in p.attrs:
        # nothing is loaded from anywhere: no src/href at all, the SVG namespace is no load
        assert name not in ("src", "href", "srcset", "action"), (tag, name, value)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "fetch(" not in text and "XMLHttpRequest" not in text and "import(" not in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?:", text)
    assert re.findall(r"https?://[^\s\"'<>]+", text) == ["http://www.w3.org/2000/svg"] * 2


def test_page_carries_every_number_of_the_json_trace_as_formatted():
    tr = small_trace()
    obj = json.loads(json.dumps(to_jsonable(tr)))
    shown = set(strings(page_data(tr.to_html())))
    for key in KEYS:
        if key in ("sizes", "activation", "output", "cost"):
            continue
        for v in flat_numbers(obj[key]):
            assert g4(v) in shown, (key, v)
    # and in its place: z^l_j, δ^l_j, ∂C/∂w^l_jk where the page looks for them
    d = page_data(tr.to_html())
    for l in (1, 2):
        assert d["lay"][l]["z"] == [g4(v) for v in obj["z"][l - 1]]
        assert d["lay"][l]["d"] == [g4(v) for v in obj["delta"][l - 1]]
        assert d["W"][l]["g"] == [[g4(v) for v in row] for row in obj["nabla_w"][l - 1]]
    assert d["cost_x"] == g4(obj["cost_x"])


def test_sums_shown_multiply_out_and_the_update_lowers_the_cost():
    net = loopnet.Net([3, 4, 2], seed=2)
    x, y = np.array([0.3, 0.9, 0.1]), np.array([1.0, 0.0])
    tr = trace(net, x, y)
    d = view_model(tr, eta=0.5, digits=6)
    for l in (1, 2):
        for j, v in enumerate(d["fwd"][l]):
            assert [t[0] for t in v["t"]] == list(range(tr["sizes"][l - 1]))     # all terms, in k order
            for k, w, a, prod in v["t"]:
                assert float(w) * float(a) == pytest.approx(float(prod), rel=2e-5, abs=1e-12)
            total = sum(float(t[3]) for t in v["t"]) + float(d["lay"][l]["b"][j])
            assert total == pytest.approx(float(d["lay"][l]["z"][j]), rel=1e-4, abs=1e-6)
    # BP2 with the transpose: δ^1_j = (Σ_k w^2_kj δ^2_k) σ'(z^1_j)
    for j, v in enumerate(d["bp2"][1]):
        back = sum(float(t[3]) for t in v["t"])
        assert back * float(d["lay"][1]["sp"][j]) == pytest.approx(float(d["lay"][1]["d"][j]), rel=1e-4)
    # the update, w − η ∂C/∂w, and C_x after it from the NumPy matrix form
    W = [w - 0.5 * g for w, g in zip(tr["weights"], tr["nabla_w"])]
    B = [b - 0.5 * g for b, g in zip(tr["biases"], tr["nabla_b"])]
    for l in (1, 2):
        assert d["W"][l]["wn"] == [[g4(v, 6) for v in row] for row in W[l - 1]]
        assert d["lay"][l]["bn"] == [g4(v, 6) for v in B[l - 1]]
    _, A, _ = R.backprop(W, B, x[None], y[None], "sigmoid", "sigmoid", "quadratic")
    after = 0.5 * float(np.sum((A[-1][0] - y) ** 2))
    assert d["cost_after"] == g4(after, 6)
    assert after < tr["cost_x"]


def test_wide_layers_show_the_largest_terms_and_the_rest_summed():
    rng = np.random.default_rng(0)
    net = loopnet.Net([30, 4, 2], seed=1)
    x = rng.uniform(0, 1, 30)
    tr = trace(net, x, 0)
    d = view_model(tr, top=5, digits=6)
    for j in range(4):
        prod = tr["weights"][0][j] * x
        v = d["fwd"][1][j]
        top = sorted(range(30), key=lambda k: -abs(prod[k]))[:5]
        assert [t[0] for t in v["t"]] == top
        assert v["rest"][0] == 25
        rest = sum(prod[k] for k in range(30) if k not in top)
        assert float(v["rest"][1]) == pytest.approx(rest, rel=1e-5, abs=1e-9)
        assert float(v["s"]) == pytest.approx(tr["z"][0][j] - tr["biases"][0][j], rel=1e-5)


def test_images_and_options():
    assert view_model(trace(loopnet.Net([784, 3, 2], seed=0), np.zeros(784), 0))["image"] == [28, 28]
    assert view_model(trace(loopnet.Net([64, 3, 2], seed=0), np.zeros(64), 0))["image"] == [8, 8]
    tr = small_trace()
    assert view_model(tr)["image"] is None
    assert view_model(tr, image=(1, 2))["image"] == [1, 2]
    with pytest.raises(ValueError, match="does not match"):
        view_model(tr, image=(2, 2))
    with pytest.raises(ValueError, match="digits"):
        view_model(tr, digits=0)
    with pytest.raises(ValueError, match="eta"):
        view_model(tr, eta=-1)


@pytest.mark.parametrize("output,cost", [("softmax", "log_likelihood"), ("sigmoid", "cross_entropy"),
                                         ("softmax", "quadratic"), ("identity", "mse")])
def test_every_bp1_form_renders(output, cost):
    net = loopnet.Net([2, 3, 2], output=output, cost=cost, seed=0)
    tr = trace(net, [0.2, 0.7], [0.0, 1.0])
    d = view_model(tr)
    assert len(d["bp1"]) == 2 and all(b["num"] for b in d["bp1"])
    if (output, cost) in (("softmax", "log_likelihood"), ("sigmoid", "cross_entropy")):
        a, yv = tr["a"][2][1], tr["y"][1]
        assert d["bp1"][1]["num"] == f"{g4(a)} − {g4(yv)}"
        assert float(g4(a)) - yv == pytest.approx(tr["delta"][1][1], rel=1e-3)


def test_repr_html_is_an_iframe_of_the_page():
    tr = small_trace()
    assert isinstance(tr, dict) and set(tr) == set(KEYS)
    h = tr._repr_html_()
    assert h.startswith("<iframe srcdoc=\"") and "&lt;!DOCTYPE html&gt;" in h
    assert page(view_model(tr)) == tr.to_html()


# ----------------------------------------------------------------------------- CLI

def run_trace(*argv):
    from loopnet.commands import trace as cmd
    parser = argparse.ArgumentParser()
    cmd.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        code = cmd.run(parser.parse_args([str(a) for a in argv]))
    return code, out.getvalue()


def test_cli_json_carries_the_cost():
    code, out = run_trace("--sizes", "2,3,2", "--seed", "0", "--json")
    obj = json.loads(out)
    y, aL = np.array(obj["y"]), np.array(obj["a"][-1])
    assert obj["cost_x"] == pytest.approx(0.5 * np.sum((aL - y) ** 2), rel=1e-14)


def test_cli_html_and_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    h, p, s = tmp_path / "t.html", tmp_path / "t.png", tmp_path / "t.svg"
    code, out = run_trace("--sizes", "2,3,2", "--seed", "0", "--html", h, "--png", p, "--svg", s)
    assert code == 0 and out == ""
    assert h.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000
    assert "<svg" in s.read_text()[:2000]
    obj = json.loads(run_trace("--sizes", "2,3,2", "--seed", "0", "--json")[1])
    d = page_data(h.read_text(encoding="utf-8"))
    assert d["x"] == [g4(v) for v in obj["x"]] and d["cost_x"] == g4(obj["cost_x"])


def test_cli_model_on_a_dataset_example(tmp_path):
    net = loopnet.Net([64, 5, 10], seed=3)
    model = tmp_path / "m.npz"
    loopnet.io.save(net, model)
    code, out = run_trace("--model", model, "--dataset", "digits", "--index", 17, "--json")
    assert code == 0
    obj = json.loads(out)
    (_, _), (Xt, yt) = loopnet.data.digits_split()
    ref = trace(loopnet.io.load(model), Xt[17], int(yt[17]))
    assert obj["x"] == Xt[17].tolist() and obj["y"] == np.eye(10)[yt[17]].tolist()
    assert obj["cost_x"] == ref["cost_x"]
    np.testing.assert_array_equal(np.array(obj["nabla_w"][0]), ref["nabla_w"][0])
    # a 64-input model without --dataset is traced on the digits; the page draws the 8x8 image
    h = tmp_path / "m.html"
    assert run_trace("--model", model, "--index", 17, "--html", h)[0] == 0
    d = page_data(h.read_text(encoding="utf-8"))
    assert d["image"] == [8, 8] and d["label"] == int(yt[17]) and "example 17" in d["caption"]


@pytest.mark.parametrize("argv,msg", [
    (("--model", "nope.npz"), "no such file"),
    (("--sizes", "64,3,10", "--dataset", "digits", "--index", "100000"), "--index must be"),
    (("--sizes", "5,3,10", "--dataset", "digits"), "inputs but the network has 5"),
    (("--html", "/nonexistent-dir/x.html"), "does not exist"),
    (("--top", "0", "--html", "x.html"), "--top"),
])
def test_cli_errors_are_one_line(argv, msg, capsys):
    code, _ = run_trace(*argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("loopnet: error: ") and msg in err and err.count("\n") == 1
