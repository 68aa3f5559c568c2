import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate as schema_validate

from stages.plumbing import config as cfg
from stages.plumbing.errors import ConfigError

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
    assert cfg.autoencoder_recipe(config, "sae")["epochs"] == 300  # sae-deckeras [code]
    assert cfg.autoencoder_recipe(config, "sae-paper")["epochs"] == 400
    assert cfg.autoencoder_recipe(config, "cae")["epochs"] == 200
    dcec = cfg.method_recipe(config, "dcec")
    assert dcec["max_iter"] == 20000 and dcec["update_interval"] == 140
    assert dcec["tol"] == 0.001 and dcec["clustering_weight"] == 0.1
    # [code] DEC-keras' clustering optimiser for DEC and DEC-conv; IDEC and DCEC keep Adam
    for name in ("dec", "dec-conv"):
        assert cfg.method_recipe(config, name)["optimizer"] == {"name": "sgd", "lr": 0.01,
                                                                "momentum": 0.9}
    assert "optimizer" not in dcec and "optimizer" not in cfg.method_recipe(config, "idec")
    assert cfg.autoencoder_recipe(config, "sae") == {
        **cfg.autoencoder_recipe(config, "sae-deckeras"), "name": "sae"}
    # quick: sae-adam's optimiser and init, cut to 20 epochs (docs/reproduction/quick-recipes.md)
    config["schedule"] = "quick"
    sae, adam = cfg.autoencoder_recipe(config, "sae"), cfg.autoencoder_recipe(config, "sae-adam")
    assert sae["optimizer"] == adam["optimizer"] == {"name": "adam", "lr": 0.001}
    assert sae["arch"]["init"] == "glorot-uniform" and sae["epochs"] == 20


def test_an_optimizer_per_schedule_is_checked_by_the_schema(config):
    config["autoencoders"]["cae"]["optimizer"] = {"paper": {"name": "adam", "lr": 0.001},
                                                  "quick": {"name": "sgd", "lr": 0.1}}
    schema_validate(config, SCHEMA)
    assert cfg.autoencoder_recipe(config, "cae")["optimizer"] == {"name": "sgd", "lr": 0.1}
    bad = copy.deepcopy(config)
    bad["autoencoders"]["cae"]["optimizer"] = {"paper": {"name": "adam", "lr": 0.001},
                                               "quick": {"name": "lbfgs", "lr": 0.1}}
    with pytest.raises(WorkflowError):
        schema_validate(bad, SCHEMA)
    bad["autoencoders"]["cae"]["optimizer"] = {"paper": {"name": "adam", "lr": 0.001}}
    with pytest.raises(WorkflowError):
        schema_validate(bad, SCHEMA)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["datasets"].update(cifar={"methods": ["dec"]}),
     r"unknown dataset 'cifar'; valid choices: .*mnist5k"),
    (lambda c: c["datasets"]["mnist5k"]["methods"].append("depict-x"),
     r"unknown method 'depict-x'; valid choices: .*dcec"),
    (lambda c: c["datasets"]["digits"]["methods"].append("dcec"),
     r"method 'dcec' on dataset 'digits'.*16x16.*8x8"),
    (lambda c: c["methods"]["dec"].update(ae="vae"), r"unknown autoencoder 'vae'"),
    (lambda c: c["methods"]["dec"].update(head="softmax"), r"unknown head 'softmax'"),
    (lambda c: c["methods"]["dec"].update(init="ward"), r"unknown init 'ward'"),
    (lambda c: c["inits"]["kmeans"].update(algorithm="agglomerative"),
     r"init 'kmeans': unknown init algorithm 'agglomerative'; valid choices: .*kmeans"),
    (lambda c: c["methods"]["dec"].update(head="depict"),
     r"method 'dec': head 'depict' needs an autoencoder with net 'depict', but 'sae' has net "
     r"'sae'"),
    (lambda c: c["autoencoders"]["sae"].update(objective="vae-elbo"),
     r"autoencoder 'sae': unknown pretraining objective 'vae-elbo'; valid choices: .*depict-mda"),
    (lambda c: c["autoencoders"]["cae"].update(objective="depict-sda"),
     r"autoencoder 'cae': objective 'depict-sda' needs net 'depict', not 'cae'"),
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
    lambda c: c.update(unknown_key=1),
])
def test_schema_rejects_malformed_values(config, edit):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(WorkflowError):
        schema_validate(bad, SCHEMA)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["methods"]["dec"].update(tol=2),
     r"methods\.dec\.tol: 2 is greater than the maximum of 1"),
    (lambda c: c["methods"]["rmn-gmm"].update(separation_distance="cosine"),
     r"methods\.rmn-gmm\.separation_distance: 'cosine' is not one of"),
    (lambda c: c["methods"]["rmn-gmm"].update(reconstruction="max"),
     r"methods\.rmn-gmm\.reconstruction: 'max' is not one of \['mean', 'sum'\]"),
    (lambda c: c["methods"]["rmn-gmm"].update(reconstruction_weight=-1),
     r"methods\.rmn-gmm\.reconstruction_weight: -1 is less than the minimum of 0"),
    (lambda c: c["head_defaults"]["saip"].update(lr_decay={"paper": 0.9, "quick": 2}),
     r"head_defaults\.saip\.lr_decay: 2 is greater than the maximum of 1"),
    (lambda c: c["autoencoders"]["sae"].update(validation_fraction=1.5),
     r"autoencoders\.sae\.validation_fraction: 1\.5 is greater than or equal to the maximum"),
    (lambda c: c["autoencoders"]["dae"].update(validation_fraction=0),
     r"autoencoders\.dae\.validation_fraction: 0 is less than or equal to the minimum of 0"),
    (lambda c: c["autoencoders"]["rmn"].update(validation_fraction=1.5),
     r"autoencoders\.rmn\.validation_fraction: 1\.5 is greater than or equal to the maximum"),
    (lambda c: c["methods"]["saip-hoe"].update(predict="spectral-kmeans"),
     r"methods\.saip-hoe\.predict: 'spectral-kmeans' is not one of \['p1', 'p2'\]"),
])
def test_head_and_objective_options_are_checked_by_their_own_schema(config, edit, message):
    """Each head's and objective's options come from its family's options.yaml; a value out of
    its range or choices (in either schedule) is named with the rule it breaks."""
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError, match=message):
        cfg.validate(bad)


def test_dscdan_may_predict_by_spectral_kmeans(config):
    ok = copy.deepcopy(config)
    ok["methods"]["dscdan"]["predict"] = "spectral-kmeans"
    cfg.validate(ok)


def test_method_modules_follow_the_recipe(config):
    assert cfg.method_modules(config, "dcec") == ["stages.nets.dec", "stages.methods.dec.head"]
    assert cfg.method_modules(config, "sae-kmeans") == ["stages.nets.dec"]
    assert cfg.method_modules(config, "gmm") == ["stages.methods.shared.baselines"]


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


def test_command_line_switches_become_booleans(config):
    """``--config gpu_resources=false compile=true`` arrive as strings; 'auto' stays, a typo
    is left for the schema to refuse."""
    from_cli = copy.deepcopy(config)
    from_cli.update(gpu_resources="False", compile="true")
    cfg.coerce_command_line(from_cli)
    assert from_cli["gpu_resources"] is False and from_cli["compile"] is True
    schema_validate(from_cli, SCHEMA)
    for value, ok in (("auto", True), ("yes", False)):
        given = {**copy.deepcopy(config), "gpu_resources": value}
        cfg.coerce_command_line(given)
        assert given["gpu_resources"] == value
        if ok:
            schema_validate(given, SCHEMA)
        else:
            with pytest.raises(WorkflowError):
                schema_validate(given, SCHEMA)


def test_gpu_resources_auto_asks_for_a_gpu_only_where_one_is_usable(config, monkeypatch):
    """auto: never with device cpu; otherwise as torch sees a GPU. true/false are forced."""
    import torch

    for usable in (False, True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda usable=usable: usable)
        for device in ("auto", "cuda"):
            assert cfg.gpu_resources({**config, "gpu_resources": "auto",
                                      "device": device}) is usable
        assert cfg.gpu_resources({**config, "gpu_resources": "auto", "device": "cpu"}) is False
        assert cfg.gpu_resources({**config, "gpu_resources": True, "device": "cpu"}) is True
        assert cfg.gpu_resources({**config, "gpu_resources": False}) is False
    assert config["gpu_resources"] == "auto" and config["threads"] == 1  # the shipped defaults


@pytest.mark.parametrize("where", ["methods.kmeans", "methods.dec", "head_defaults.dec",
                                   "autoencoders.sae", "inits.kmeans"])
def test_unknown_recipe_options_are_errors_naming_key_place_and_choices(config, where):
    """The probe: methods: {kmeans: {n_inits: 1, learning_rate: 5}} ran with defaults."""
    broken = copy.deepcopy(config)
    section, name = where.split(".")
    broken[section][name]["learning_rate"] = 5
    valid = {"autoencoders.sae": r"\bbatch_size\b", "inits.kmeans": r"\bn_init\b",
             "methods.kmeans": r"\bn_init\b"}.get(where, r"\blr\b")  # a baseline: its own
    with pytest.raises(ConfigError, match=rf"{where}: unknown option\(s\) 'learning_rate'; "
                                          rf"valid options: .*{valid}"):
        cfg.validate(broken)
    schema_validate(broken, SCHEMA)  # the schema lets it through; stages.plumbing.config names it


def test_unknown_top_level_and_dataset_keys_name_the_valid_ones(config):
    typo = copy.deepcopy(config)
    typo["seed"] = [0]
    with pytest.raises(ConfigError, match=r"the top level: unknown option\(s\) 'seed'; valid "
                                          r"options: .*\bseeds\b"):
        cfg.check_recipe_keys(typo)
    typo = copy.deepcopy(config)
    typo["datasets"]["mnist5k"]["method"] = ["dec"]
    with pytest.raises(ConfigError, match=r"datasets.mnist5k: unknown option\(s\) 'method'; "
                                          r"valid options: .*\bmethods\b"):
        cfg.check_recipe_keys(typo)


def test_numbers_inside_config_dicts_from_the_command_line(config):
    """--config 'methods={"dec":{"lr":0.002}}' arrives as {'lr': '0.002'} (BaseLoader)."""
    from_cli = copy.deepcopy(config)
    from_cli["methods"]["dec"].update(lr="0.002", update_interval="140", shuffle="true",
                                      optimizer={"name": "adam", "lr": "1e-3"})
    from_cli["head_defaults"]["rmn"]["eta"] = "auto"
    cfg.coerce_command_line(from_cli)
    dec = from_cli["methods"]["dec"]
    assert dec["lr"] == 0.002 and dec["update_interval"] == 140 and dec["shuffle"] is True
    assert dec["optimizer"] == {"name": "adam", "lr": 0.001}
    assert from_cli["head_defaults"]["rmn"]["eta"] == "auto"
    schema_validate(from_cli, SCHEMA)


def test_run_datasets_selects_a_subset(config):
    both = copy.deepcopy(config)
    assert {d for d, _, _ in cfg.runs(both)} == set(both["datasets"])
    both["run_datasets"] = ["digits"]
    cfg.validate(both)
    assert {d for d, _, _ in cfg.runs(both)} == {"digits"}
    both["run_datasets"] = ["digits", "cifar"]
    with pytest.raises(ConfigError, match="run_datasets: 'cifar' not in datasets; valid choices"):
        cfg.validate(both)


def test_depict_recipes(config):
    depict = cfg.method_recipe(config, "depict")
    # the authors' code (train_RLC) where it differs from the printed Eq. 7 / Eq. 12 weights
    assert depict["target"] == "dec" and depict["hidden_weight"] == 0.1
    assert cfg.autoencoder_recipe(config, "depict")["hidden_weight"] == 0.1
    assert depict["lr"] == 1e-4 and depict["batch_size"] == 100 and depict["tol"] == 1e-7
    assert cfg.method_recipe(config, "depict-sda")["reconstruction_weight"] == 0.0
    paper = {**config, "schedule": "paper"}
    assert cfg.autoencoder_recipe(paper, "depict")["epochs"] == 4000
    assert cfg.autoencoder_recipe(paper, "depict")["patience"] == 100
    assert cfg.autoencoder_modules(config, "depict") == ["stages.nets.depict",
                                                         "stages.methods.depict.pretrain"]
    assert cfg.autoencoder_modules(config, "sae") == ["stages.nets.dec",
                                                      "stages.methods.shared.reconstruction"]


def test_code_inputs_follow_imports(tmp_path):
    from stages.plumbing.codedeps import module_closure, module_files

    closure = module_closure(["stages.finetune", "stages.methods.depict.head"])
    # imported directly or through other modules; registries (package __init__) left out
    assert {"stages.runtime.train", "stages.reporting.metrics", "stages.methods.shared.common",
            "stages.runtime.models", "stages.plumbing.errors"} <= set(closure)
    assert "stages.methods" not in closure and "stages.methods.dec.head" not in closure
    assert all(f.endswith(".py") for f in module_files(["stages.embed"]))
    # a toy package: a -> b -> c, the package __init__ followed but not listed
    pkg = tmp_path / "stages"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub/__init__.py").write_text("from stages.c import f\n")
    (pkg / "a.py").write_text("import os\nfrom stages.sub import f\n")
    (pkg / "c.py").write_text("from stages import b\n")
    (pkg / "b.py").write_text("x = 1\n")
    assert module_closure(["stages.a"], root=tmp_path) == ["stages.a", "stages.b", "stages.c"]
    with pytest.raises(ValueError, match="no module 'stages.zzz'"):
        module_closure(["stages.zzz"], root=tmp_path)
