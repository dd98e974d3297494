"""Issue 14 "Also": ``loopnet info`` prints a bounded history; --history all prints every record."""

import json

from loopnet import Net, io
from loopnet.cli import main


def model_with_history(tmp_path, n):
    net = Net([2, 2], seed=0)
    net.history = [{"epoch": i + 1, "cost": 1.0 / (i + 1)} for i in range(n)]
    net.epoch = n
    io.save(net, tmp_path / "m.npz")
    return str(tmp_path / "m.npz")


def test_info_history_is_bounded(tmp_path, capsys):
    path = model_with_history(tmp_path, 1000)
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    assert out.count("\n  epoch ") == 10 and "990 more" in out and "1000 epoch records" in out
    assert main(["info", path, "--history", "all"]) == 0
    assert capsys.readouterr().out.count("\n  epoch ") == 1000
    assert main(["info", path, "--json", "--history", "2"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in d["history"]] == [1, 2, 999, 1000]
    assert d["history_records"] == 1000 and d["history_left_out"] == {"after": 2, "count": 996}


def test_info_short_history_whole(tmp_path, capsys):
    path = model_with_history(tmp_path, 7)
    assert main(["info", path, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in d["history"]] == list(range(1, 8)) and "history_left_out" not in d
