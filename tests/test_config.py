import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as schema_validate

from stages import config as cfg
from stages.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def config():
    c = yaml.safe_load((REPO / "config.yaml").read_text())
    schema_validate(c, SCHEMA)  # fills defaults
    return c


def test_default_config_is_valid(config):
    cfg.validate(config)
    assert ("mnist5k", "dcec", 0) in cfg.runs(config)
    assert not any(d == "digits" and m in ("dcec", "cae-kmeans") for d, m, _ in cfg.runs(config))


def test_schedule_resolution(config):
    quick = cfg.autoencoder_recipe(config, "sae")
    assert quick["epochs"] == config["autoencoders"]["sae"]["epochs"]["quick"]
    config["schedule"] = "paper"
    assert cfg.autoencoder_recipe(config, "sae")["epochs"] == 400
    assert cfg.autoencoder_recipe(config, "cae")["epochs"] == 200
    dcec = cfg.method_recipe(config, "dcec")
    assert dcec["max_iter"] == 20000 and dcec["update_interval"] == 140
    assert dcec["tol"] == 0.001 and dcec["clustering_weight"] == 0.1


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["datasets"].update(cifar={"methods": ["dec"]}),
     r"unknown dataset 'cifar'; valid choices: .*mnist5k"),
    (lambda c: c["datasets"]["mnist5k"]["methods"].append("depict-x"),
     r"unknown method 'depict-x'; valid choices: .*dcec"),
    (lambda c: c["datasets"]["digits"]["methods"].append("dcec"),
     r"method 'dcec' on dataset 'digits'.*16x16.*8x8"),
    (lambda c: c["methods"]["dec"].update(ae="vae"), r"unknown autoencoder 'vae'"),
    (lambda c: c["methods"]["dec"].update(head="softmax"), r"unknown head 'softmax'"),
    (lambda c: c["methods"]["dec"].update(init="gmm"), r"unknown init 'gmm'"),
])
def test_semantic_errors_name_value_and_choices(config, edit, message):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        cfg.validate(bad)


@pytest.mark.parametrize("edit", [
    lambda c: c.update(schedule="fast"),
    lambda c: c.update(seeds=[]),
    lambda c: c.update(device="gpu0"),
    lambda c: c["autoencoders"]["sae"].update(epochs={"paper": 400}),
    lambda c: c["methods"]["dec"].update(tol=2),
    lambda c: c.update(unknown_key=1),
])
def test_schema_rejects_malformed_values(config, edit):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(WorkflowError):
        schema_validate(bad, SCHEMA)


def test_method_modules_follow_the_recipe(config):
    assert cfg.method_modules(config, "dcec") == ["stages.nets.dec", "stages.methods.dec"]
    assert cfg.method_modules(config, "sae-kmeans") == ["stages.nets.dec"]
    assert cfg.method_modules(config, "gmm") == ["stages.methods.baselines"]


def test_command_line_seeds_become_integers(config):
    """``--config seeds=[0,1,2]`` reaches the Snakefile as strings; they must pass the schema."""
    from_cli = copy.deepcopy(config)
    from_cli["seeds"] = ["0", "1", "2"]
    cfg.coerce_command_line(from_cli)
    assert from_cli["seeds"] == [0, 1, 2]
    schema_validate(from_cli, SCHEMA)
    not_a_seed = copy.deepcopy(config)
    not_a_seed["seeds"] = ["zero"]
    cfg.coerce_command_line(not_a_seed)
    with pytest.raises(WorkflowError):
        schema_validate(not_a_seed, SCHEMA)
