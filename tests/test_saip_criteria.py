"""SAIP's label-free choice (docs/reproduction/saip-reading.md): criteria 1-4 from a history's
monitor rows, the reading and lr rules, and the command line."""

import pandas as pd
import pytest

from stages.methods.saip import criteria as crit
from stages.plumbing.errors import ConfigError

K = 10


def _history(norms, disagreement, loss, *, smallest=0.05, largest=0.2, populated=K,
             clipped=0.0) -> pd.DataFrame:
    """Monitor rows (one per entry of ``norms``) between two training rows, which are ignored."""
    n = len(norms)

    def col(value):
        return value if isinstance(value, list) else [value] * n

    rows = pd.DataFrame({"kind": "target", "step": [20 * i for i in range(n)],
                         "embedding_norm": norms, "disagreement": col(disagreement),
                         "loss_all": col(loss), "smallest_share": col(smallest),
                         "largest_share": col(largest), "populated": col(populated),
                         "clipped_share": col(clipped), "acc": 0.5})
    train = pd.DataFrame({"kind": ["train", "train"], "step": [10, 30], "loss": [9.0, 9.0]})
    return pd.concat([train, rows], ignore_index=True)


def test_criteria_pass_and_their_signals():
    result = crit.criteria(_history([4.0, 5.0, 6.0], [0.10, 0.08, 0.05], [1.0, 0.9, 0.8]), K)
    assert result["fails"] == []
    assert (result["norm_ratio_min"], result["norm_ratio_max"]) == (1.0, 1.5)
    assert result["disagreement_fall"] == pytest.approx(0.5)
    assert (result["last_step"], result["monitor_rows"]) == (40, 3)
    assert (result["acc_start"], result["acc_end"]) == (0.5, 0.5)


@pytest.mark.parametrize(("history", "fails"), [
    (dict(clipped=[0.0, 0.02, 0.0]), [1]),
    (dict(populated=[K, K - 1, K]), [2]),
    (dict(smallest=[0.05, 0.009, 0.05]), [2]),
    (dict(largest=[0.2, 0.91, 0.2]), [2]),
    (dict(norms=[4.0, 1.9, 4.0]), [3]),      # shrinks below half its start, then recovers
    (dict(norms=[4.0, 8.1, 4.0]), [3]),      # grows past twice its start
    (dict(disagreement=[0.1, 0.05, 0.1]), [4]),  # back where it started: not lower
    (dict(loss=[1.0, 0.5, 1.1]), [4]),       # the disagreement falls, the loss does not
])
def test_each_criterion_fails_on_its_own_signal(history, fails):
    args = {"norms": [4.0, 4.0, 4.0], "disagreement": [0.1, 0.08, 0.05], "loss": [1.0, 0.9, 0.8]}
    args.update(history)
    norms, disagreement, loss = args.pop("norms"), args.pop("disagreement"), args.pop("loss")
    assert crit.criteria(_history(norms, disagreement, loss, **args), K)["fails"] == fails


def _result(fails, fall=0.0, loss_end=1.0):
    return {"fails": fails, "disagreement_fall": fall, "loss_end": loss_end}


def test_reading_rule():
    # one meets all four
    assert crit.choose_reading({"a": _result([4]), "b": _result([])}, "a")[0] == "b"
    # both: the larger fall, unless the default's is within 10% of it
    both = {"a": _result([], 0.30), "b": _result([], 0.50)}
    assert crit.choose_reading(both, "a")[0] == "b"
    assert crit.choose_reading({"a": _result([], 0.46), "b": _result([], 0.50)}, "a")[0] == "a"
    # none: the fewest failures, then the less important ones (1 > 2 > 3 > 4)
    assert crit.choose_reading({"a": _result([2, 4]), "b": _result([3])}, "a")[0] == "b"
    assert crit.choose_reading({"a": _result([2]), "b": _result([4])}, "a")[0] == "b"
    assert crit.choose_reading({"a": _result([4]), "b": _result([4])}, "b")[0] == "b"
    with pytest.raises(ConfigError, match=r"--default c: not among the candidates \(a, b\)"):
        crit.choose_reading(both, "c")


def test_lr_rule():
    runs = {"slow": _result([4], loss_end=0.9), "fast": _result([], loss_end=0.3),
            "wild": _result([2, 3], loss_end=0.1)}
    assert crit.choose_lr(runs, "slow")[0] == "fast"
    assert crit.choose_lr({"slow": _result([3]), "wild": _result([2])}, "slow")[0] == "slow"


def test_command_line_prints_the_table_and_the_choice(tmp_path, capsys):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    _history([4.0, 4.5], [0.1, 0.05], [1.0, 0.8]).to_csv(good, index=False)
    _history([4.0, 0.5], [0.1, 0.4], [1.0, 0.2], smallest=[0.05, 0.0]).to_csv(bad, index=False)
    crit.main(["reading", f"both={bad}", f"p1={good}", "--default", "both", "--clusters", "10"])
    out = capsys.readouterr().out
    assert "| both | 20 (2) |" in out and "| 2, 3, 4 |" in out
    assert out.strip().endswith("chosen (reading): p1: the only candidate meeting criteria 1-4")
    with pytest.raises(SystemExit, match=r"no such history \(candidate x\)"):
        crit.main(["lr", f"x={tmp_path / 'none.csv'}", "--default", "x", "--clusters", "10"])
    pd.DataFrame({"kind": ["train"], "step": [1]}).to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(SystemExit, match=r"not a SAIP history: no monitor rows"):
        crit.main(["lr", f"x={tmp_path / 'old.csv'}", "--default", "x", "--clusters", "10"])
    with pytest.raises(SystemExit):
        crit.main(["lr", "no-path", "--default", "x", "--clusters", "10"])
