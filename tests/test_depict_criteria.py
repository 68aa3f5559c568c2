"""DEPICT's label-free choices: stages.methods.depict.criteria (depict-choices.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stages.methods.depict import criteria
from stages.nets import build_network
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.errors import DataFileError
from stages.runtime.models import save_model

HELDOUT = {"warm_start_rule": "heldout-nmi", "warm_start_patience": 3, "head_init": "centres"}
TRAIN_CE = {"warm_start_rule": "train-ce", "warm_start_ce": 0.2, "head_init": "centres"}


def warm_rows(nmis: list[float]) -> list[dict]:
    return [{"kind": "warm-start-validation", "step": -100 + 10 * i, "nmi_pseudo": v}
            for i, v in enumerate(nmis)]


def history(warm: list[dict], sharpness=(0.6, 0.9), nmi_start=(0.88, 0.87), smallest=0.09,
            populated=10, dead=0) -> pd.DataFrame:
    target = [{"kind": "target", "step": s, "sharpness": sh, "nmi_start": ns,
               "smallest_share": smallest, "populated": populated, "code_dead_dims": dead}
              for s, sh, ns in zip((0, 50), sharpness, nmi_start, strict=True)]
    return pd.DataFrame(warm + target)


def attrs(config: dict, converged: bool = True, method: str = "depict") -> dict:
    return {"info": {"converged": converged, "epochs": 140}, "n_clusters": 10, "method": method,
            "provenance": {"config": config}}


def test_heldout_warm_start_stops_by_rule_only_after_patience_evaluations_without_gain():
    # best at index 1, then 3 worse evaluations: patience 3 reached
    assert criteria.warm_start_stopped_by_rule(pd.DataFrame(warm_rows([0.7, 0.8, 0.79, 0.78,
                                                                       0.8])), HELDOUT)
    # still improving at the end (or only 2 without gain): the cap ended it
    assert not criteria.warm_start_stopped_by_rule(pd.DataFrame(warm_rows([0.7, 0.8, 0.79, 0.78])),
                                                   HELDOUT)
    assert not criteria.warm_start_stopped_by_rule(pd.DataFrame(warm_rows([0.7, 0.8, 0.9])),
                                                   HELDOUT)
    with pytest.raises(DataFileError, match="warm-start-validation"):
        criteria.warm_start_stopped_by_rule(pd.DataFrame([{"kind": "target", "step": 0}]), HELDOUT)


def test_train_ce_warm_start_stops_by_rule_when_its_last_epoch_is_below_the_threshold():
    rows = [{"kind": "warm-start-epoch", "step": -20, "train_ce": 0.5},
            {"kind": "warm-start-epoch", "step": -10, "train_ce": 0.19}]
    assert criteria.warm_start_stopped_by_rule(pd.DataFrame(rows), TRAIN_CE)
    rows[-1]["train_ce"] = 0.21
    assert not criteria.warm_start_stopped_by_rule(pd.DataFrame(rows), TRAIN_CE)


@pytest.mark.parametrize("change, reason", [
    ({"converged": False}, "joint phase ran to its cap"),
    ({"warm": warm_rows([0.7, 0.8, 0.9])}, "warm start ran to its cap"),
    ({"smallest": 0.019}, "below 2%"),
    ({"populated": 9}, "below 2%"),
    ({"dead": 1}, "dead code dimension"),
])
def test_reading_is_out_for_each_exclusion(change, reason):
    warm = change.pop("warm", warm_rows([0.8, 0.7, 0.7, 0.7]))
    converged = change.pop("converged", True)
    ok = criteria.reading_verdict(history(warm_rows([0.8, 0.7, 0.7, 0.7])), attrs(HELDOUT))
    assert ok["passes"] and ok["out"] == ""
    bad = criteria.reading_verdict(history(warm, **change), attrs(HELDOUT, converged))
    assert not bad["passes"] and reason in bad["out"]


def verdict(sharpness_last: float, nmi_start_last: float, passes: bool = True) -> dict:
    return {"sharpness_last": sharpness_last, "nmi_start_last": nmi_start_last, "passes": passes}


def test_a_reading_replaces_the_default_only_when_it_beats_it_on_every_start():
    base = verdict(0.90, 0.87)
    two = {"authors": {"depict": base, "depict-ws-ce": verdict(0.92, 0.865)},
           "seed1": {"depict": base, "depict-ws-ce": verdict(0.915, 0.861)}}
    decision = criteria.decide_warm_start(two)
    assert decision["chosen"] == "depict-ws-ce" and not decision["provisional"]
    # sharper by less than 0.01 on one start: the default stays
    two["seed1"]["depict-ws-ce"] = verdict(0.905, 0.87)
    assert criteria.decide_warm_start(two)["chosen"] == "depict"
    # drifts more than 0.01 from the start on one start: the default stays
    two["seed1"]["depict-ws-ce"] = verdict(0.95, 0.855)
    assert criteria.decide_warm_start(two)["chosen"] == "depict"
    # out on one start (a cap, a small cluster): the default stays
    two["seed1"]["depict-ws-ce"] = verdict(0.95, 0.87, passes=False)
    assert criteria.decide_warm_start(two)["chosen"] == "depict"
    # missing on one start: not compared there, so it cannot replace the default
    del two["seed1"]["depict-ws-ce"]
    assert criteria.decide_warm_start(two)["chosen"] == "depict"


def test_one_start_is_provisional_and_several_qualified_go_to_the_sharper():
    base = verdict(0.90, 0.87)
    one = {"authors": {"depict": base, "a": verdict(0.92, 0.87), "b": verdict(0.95, 0.87)}}
    decision = criteria.decide_warm_start(one)
    assert decision["chosen"] == "depict" and decision["provisional"]
    assert decision["qualified"] == ["a", "b"] and "b passes" in decision["why"]
    two = {**one, "seed1": {"depict": base, "a": verdict(0.93, 0.87), "b": verdict(0.96, 0.87)}}
    assert criteria.decide_warm_start(two)["chosen"] == "b"
    with pytest.raises(DataFileError, match="default reading 'depict' is missing"):
        criteria.decide_warm_start({"x": {"a": base}})


def test_mda_verdict_and_the_two_percent_rule():
    hist = pd.DataFrame([{"kind": "validation", "epoch": e, "loss": v}
                         for e, v in [(1, 0.07), (2, 0.06), (3, 0.061)]])
    z = torch.rand(200, 4) * 1.6 - 0.8  # no saturated entry, no dead dimension
    ok = criteria.mda_verdict(hist, {"epochs": 4000}, z)
    assert ok["passes"] and ok["best_loss"] == 0.06 and ok["epochs"] == 3
    assert "epoch cap" in criteria.mda_verdict(hist, {"epochs": 3}, z)["out"]
    saturated = z.clone()
    saturated[:20, 0] = 0.99  # 20 of 800 entries = 2.5%: within the 5%
    assert criteria.mda_verdict(hist, {"epochs": 4000}, saturated)["passes"]
    saturated[:60, :] = 0.99
    assert "saturated" in criteria.mda_verdict(hist, {"epochs": 4000}, saturated)["out"]
    dead = z.clone()
    dead[:, 2] = 0.1
    assert "dead" in criteria.mda_verdict(hist, {"epochs": 4000}, dead)["out"]
    verdicts = {"a": {"best_loss": 0.0599, "passes": True},
                "b": {"best_loss": 0.0500, "passes": False}}
    assert criteria.decide_mda(verdicts, 0.0612)["chosen"] == "a"      # 2.1% below
    verdicts["a"]["best_loss"] = 0.0601                                # 1.8% below
    assert criteria.decide_mda(verdicts, 0.0612)["chosen"] is None
    with pytest.raises(DataFileError, match="no validation rows"):
        criteria.mda_verdict(hist.assign(kind="train"), {}, z)


def test_reference_loss_from_a_number_or_a_history(tmp_path):
    assert criteria.reference_loss("0.0612") == 0.0612
    path = tmp_path / "history.csv"
    pd.DataFrame([{"kind": "validation", "loss": 0.07}, {"kind": "validation", "loss": 0.0612},
                  {"kind": "train", "loss": 0.01}]).to_csv(path, index=False)
    assert criteria.reference_loss(str(path)) == 0.0612
    with pytest.raises(DataFileError, match="neither a number"):
        criteria.reference_loss(str(tmp_path / "missing.csv"))


def finetune_folder(root: Path, method: str, config: dict, sharpness_last: float) -> str:
    folder = root / "results" / "finetune" / "mnist5k" / method / "seed0"
    folder.mkdir(parents=True)
    history(warm_rows([0.8, 0.7, 0.7, 0.7]), sharpness=(0.6, sharpness_last)).to_csv(
        folder / "history.csv", index=False)
    write_arrays(folder / "labels.h5", {"labels": np.zeros(10, dtype=np.int64)},
                 attrs(config, method=method))
    return str(folder)


def test_warmstart_command_over_two_starts(tmp_path, capsys):
    starts = []
    for name, sharp in (("authors", 0.93), ("seed1", 0.95)):
        root = tmp_path / name
        starts += ["--start", name, finetune_folder(root, "depict", HELDOUT, 0.9),
                   finetune_folder(root, "depict-ws-transposed",
                                   {**HELDOUT, "head_init": "transposed"}, sharp)]
    out_csv = tmp_path / "w.csv"
    criteria.run(criteria.build_parser().parse_args(["warmstart", *starts, "--out",
                                                     str(out_csv)]))
    assert "chosen: depict-ws-transposed" in capsys.readouterr().out
    assert len(pd.read_csv(out_csv)) == 4
    with pytest.raises(DataFileError, match="no history.csv"):
        criteria.run(criteria.build_parser().parse_args(
            ["warmstart", "--start", "x", str(tmp_path)]))
    baseline = tmp_path / "authors" / "results" / "finetune" / "mnist5k" / "depict-convae-acpic"
    (baseline / "seed0").mkdir(parents=True)   # a head-less baseline: no target rows
    pd.DataFrame([{"kind": "train", "step": 0}]).to_csv(baseline / "seed0" / "history.csv",
                                                        index=False)
    write_arrays(baseline / "seed0" / "labels.h5", {"labels": np.zeros(10, dtype=np.int64)},
                 attrs({}, method="depict-convae-acpic"))
    with pytest.raises(DataFileError, match="depict-convae-acpic/seed0: no target rows.*not the "
                                            "depict-convae-\\* baselines"):
        criteria.run(criteria.build_parser().parse_args(
            ["warmstart", "--start", "authors", starts[2], str(baseline / "seed0")]))
    with pytest.raises(DataFileError, match="given twice"):
        criteria.run(criteria.build_parser().parse_args(
            ["warmstart", "--start", "a", starts[2], "--start", "a", starts[2]]))


def _mda_candidate(results, ae: str, best: float) -> None:
    """A finished DEPICT MdA pretraining ``ae`` under ``results`` with its embedding."""
    folder = results / "pretrain" / "mnist5k" / ae / "seed0"
    folder.mkdir(parents=True)
    net = build_network("depict", (1, 16, 16), {"embedding_dim": 4})
    save_model(folder / "model.pt", "depict", (1, 16, 16), {"embedding_dim": 4},
               net.state_dict(), {"provenance": {"config": {"epochs": 4000}}})
    pd.DataFrame([{"kind": "validation", "epoch": 5, "loss": best}]).to_csv(
        folder / "history.csv", index=False)
    embed = results / "embed" / "mnist5k" / ae / "seed0.h5"
    embed.parent.mkdir(parents=True)
    write_arrays(embed, {"Z": np.random.default_rng(0).uniform(-0.5, 0.5, (50, 4))})


def test_mda_command_reads_depict_pretrainings_and_skips_other_nets(tmp_path, capsys):
    results = tmp_path / "results"
    for ae, best in (("depict-mda-b50", 0.058), ("depict-mda-p200", 0.0605)):
        _mda_candidate(results, ae, best)
    other = results / "pretrain" / "mnist5k" / "sae" / "seed0"  # not DEPICT's: skipped
    other.mkdir(parents=True)
    save_model(other / "model.pt", "sae", (16,), {"hidden": [8, 4]},
               build_network("sae", (16,), {"hidden": [8, 4]}).state_dict(), {})
    pd.DataFrame([{"kind": "train", "step": 1, "loss": 1.0}]).to_csv(other / "history.csv")
    write_arrays(results / "embed" / "mnist5k" / "sae" / "seed0.h5", {"Z": np.zeros((5, 4))})
    criteria.run(criteria.build_parser().parse_args(["mda", str(results), "--reference",
                                                     "0.0612"]))
    out = capsys.readouterr().out
    assert "chosen: depict-mda-b50" in out and "sae" not in out
    with pytest.raises(DataFileError, match="no finished MdA candidate"):
        criteria.run(criteria.build_parser().parse_args(["mda", str(tmp_path / "none"),
                                                         "--reference", "0.0612"]))


def test_mda_command_over_two_results_folders(tmp_path, capsys):
    first, second = tmp_path / "a" / "results", tmp_path / "b" / "results"
    _mda_candidate(first, "depict-mda-lr3e-4", 0.0611)
    _mda_candidate(second, "depict-mda-p200", 0.0590)
    criteria.run(criteria.build_parser().parse_args(
        ["mda", str(first), str(second), "--reference", "0.0612"]))
    out = capsys.readouterr().out
    assert "depict-mda-lr3e-4" in out and "chosen: depict-mda-p200" in out
    _mda_candidate(first, "depict-mda-p200", 0.0600)  # the same candidate in both folders
    with pytest.raises(DataFileError, match="depict-mda-p200 has a finished pretraining in two"):
        criteria.run(criteria.build_parser().parse_args(
            ["mda", str(first), str(second), "--reference", "0.0612"]))
