"""Every config file under config/ passes the workflow's checks when layered on config.yaml as
its header says (the reproduction commands of docs/reproduction/README.md start with these)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config
from snakemake.utils import validate as schema_validate

from stages.plumbing import config as cfg

REPO = Path(__file__).resolve().parents[1]
BASE = yaml.safe_load((REPO / "config.yaml").read_text())
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
#: files layered on another config file besides config.yaml, in the order the command gives
LAYERS = {"depict-authors-mda.yaml": ["select-depict-warmstart.yaml"]}


def layered(name: str) -> dict:
    config = copy.deepcopy(BASE)
    for layer in [*LAYERS.get(name, []), name]:
        update_config(config, yaml.safe_load((REPO / "config" / layer).read_text()))
    return config


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.yaml")))
def test_config_file_passes_the_workflow_checks(name: str) -> None:
    config = layered(name)
    cfg.coerce_command_line(config)
    cfg.check_recipe_keys(config)
    schema_validate(config, SCHEMA)
    cfg.validate(config)


def test_the_warm_start_readings_differ_from_depict_in_their_one_option() -> None:
    config = layered("depict-authors-mda.yaml")
    base = cfg.method_recipe(config, "depict")
    for method, change in {"depict-ws-transposed": {"head_init": "transposed"},
                           "depict-ws-ce": {"warm_start_rule": "train-ce"},
                           "depict-ws-ce-transposed": {"warm_start_rule": "train-ce",
                                                       "head_init": "transposed"}}.items():
        recipe = cfg.method_recipe(config, method)
        assert {k: v for k, v in recipe.items() if base.get(k) != v} == {**change,
                                                                        "name": method}


def test_the_mda_candidates_differ_from_the_codes_recipe_in_their_one_option() -> None:
    """Each candidate of depict-choices.md section 2 is the code's MdA recipe (the `depict`
    default when they ran, `depict-mda-code` since) with one change; the one chosen is today's
    `depict` at the paper schedule."""
    config = layered("select-depict-mda.yaml")
    base = cfg.autoencoder_recipe(layered("reproduce-depict.yaml"), "depict-mda-code")
    assert cfg.autoencoder_recipe(config, "depict") == {
        **cfg.autoencoder_recipe(config, "depict-mda-drop02"), "name": "depict"}
    changes = {"depict-mda-b50": {"batch_size": 50}, "depict-mda-p200": {"patience": 200},
               "depict-mda-lr3e-4": {"optimizer": {"name": "adam", "lr": 0.0003}},
               "depict-mda-drop02": {"arch": {"dropouts": [0.2, 0.2, 0.0]}}}
    for ae, change in changes.items():
        recipe = cfg.autoencoder_recipe(config, ae)
        assert {k: v for k, v in recipe.items() if base.get(k) != v} == {**change, "name": ae}
    # the renamed rows' methods are today's with the code's MdA, nothing else
    config = layered("reproduce-depict.yaml")
    for method in ("depict", "depict-convae-acpic", "depict-convae-kmeans"):
        old = cfg.method_recipe(config, f"{method}-mda-code")
        today = cfg.method_recipe(config, method)
        assert {k: v for k, v in old.items() if today.get(k) != v} == {
            "ae": "depict-mda-code", "name": f"{method}-mda-code"}


def test_every_recorded_row_names_a_method_its_config_defines() -> None:
    """docs/reproduction/all.csv: each row's method is defined by the config it was recorded
    with (layered on config.yaml), so that a row still names what ran after a default changes
    and its rows are renamed (``python -m stages.records rename``)."""
    rows = pd.read_csv(REPO / "docs" / "reproduction" / "all.csv")
    missing = []
    for name, group in rows.groupby("config"):
        config = layered(Path(name).name)
        missing += [(name, m) for m in sorted(group["method"].unique())
                    if m not in config["methods"]]
    assert not missing, f"recorded methods their config does not define: {missing}"
