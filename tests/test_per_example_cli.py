"""`loopnet inspect` and `loopnet train --dp / --clip-norm / --dropout` (issue 17)."""

import json

import numpy as np
import pytest

from loopnet import data, io
from loopnet.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.npz"
    assert main(["train", "--epochs", "1", "--quiet", "--save", str(path)]) == 0
    return path


def test_inspect_lists_the_largest_costs_and_norms(model, capsys):
    capsys.readouterr()
    net = io.load(model)
    _, (Xt, yt) = data.digits_split()
    for by, key, want in (("cost", "cost", net.per_example_costs(Xt, yt)),
                          ("grad-norm", "grad_norm", net.per_example_gradient_norms(Xt, yt))):
        assert main(["inspect", str(model), "--by", by, "--top", "4", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)["examples"]
        assert [e["row"] for e in got] == list(np.argsort(-want, kind="stable")[:4])
        assert [e[key] for e in got] == pytest.approx(np.sort(want)[::-1][:4], rel=1e-12)
    assert main(["inspect", str(model), "--by", "grad-norm", "--top", "3"]) == 0
    assert "hardest" in capsys.readouterr().out


def test_train_dp_prints_epsilon_and_saves_the_options(tmp_path, capsys):
    path = tmp_path / "dp.npz"
    assert main(["train", "--epochs", "2", "--clip-norm", "1", "--noise-multiplier", "1.1",
                 "--dp", "--delta", "1e-5", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("(delta 1e-05)") == 2     # one epsilon per epoch line
    net, meta = io.load_with_meta(path)
    assert net.history[-1]["epsilon"] > net.history[0]["epsilon"] > 0
    assert meta["extra"]["train"]["noise_multiplier"] == 1.1


def test_train_dp_without_its_options_is_a_usage_error(capsys):
    assert main(["train", "--dp"]) == 2
    assert "--dp needs --clip-norm" in capsys.readouterr().err


def test_train_dropout_is_saved(tmp_path, capsys):
    path = tmp_path / "d.npz"
    assert main(["train", "--epochs", "1", "--quiet", "--dropout", "0.2", "--save",
                 str(path)]) == 0
    assert io.load(path).dropout == (0.2,)
