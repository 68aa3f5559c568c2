"""A sixth method family is one new folder: registered, validated and run by the workflow with
no edit outside ``stages/methods/<family>/``, its config recipes and its tests (issue 21).

The project is copied to a temporary folder, a toy family is written into
``stages/methods/toy/`` there (a network, a pretraining objective, an init, a head, its options
and a report note), and Snakemake plans and runs it from that copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

TOY = {
    "__init__.py": '''
        """A toy family: a linear autoencoder, k-means-free init, a head that keeps the labels."""

        from stages.methods.family import Family, Head, Init, Network, Objective

        FAMILY = Family(
            name="toy",
            options="options.yaml",
            networks={"toy-ae": Network("stages.methods.toy.net", "ToyAutoencoder")},
            objectives={"toy-recon": Objective("stages.methods.toy.pretrain", "pretrain_toy",
                                               network="toy-ae")},
            inits={"toy-split": Init("stages.methods.toy.init", "split_arrays")},
            heads={"toy": Head("stages.methods.toy.head", networks=frozenset({"toy-ae"}),
                               init="toy-split")},
            checks=("stages.methods.toy.checks:check_config",),
            method_notes={"toy-method": "toy-method is the plug-in test's family."},
            nmi_variant="nmi_max",
        )
        ''',
    "options.yaml": '''
        heads:
          toy:
            shift: {type: number, minimum: 0}
        objectives:
          toy-recon:
            toy_lr: {type: number, exclusiveMinimum: 0}
        ''',
    "checks.py": '''
        from stages.plumbing.errors import ConfigError


        def check_config(config):
            for name, recipe in config["methods"].items():
                if recipe.get("head") == "toy" and recipe.get("shift", 0) > 10:
                    raise ConfigError(f"method '{name}': toy shift above 10")
        ''',
    "net.py": '''
        import math

        from torch import nn


        class ToyAutoencoder(nn.Module):
            def __init__(self, input_shape, embedding_dim=2):
                super().__init__()
                d = math.prod(input_shape)
                self.input_shape = tuple(input_shape)
                self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, embedding_dim))
                self.decoder = nn.Linear(embedding_dim, d)

            def encode(self, x):
                return self.encoder(x)

            def decode(self, z):
                return self.decoder(z).view(-1, *self.input_shape)

            def forward(self, x):
                z = self.encode(x)
                return z, self.decode(z)
        ''',
    "pretrain.py": '''
        from stages.methods.shared.common import reconstruction_mse
        from stages.methods.shared.reconstruction import train_epochs


        def pretrain_toy(model, x, recipe, *, seed, log_every=20, checkpoint=None):
            def loss_fn(idx):
                xb = x[idx]
                return {"loss": reconstruction_mse(model(xb)[1], xb)}

            return train_epochs(model, loss_fn, x.shape[0], x.device, recipe, seed=seed,
                                log_every=log_every, checkpoint=checkpoint, desc="toy")
        ''',
    "init.py": '''
        import numpy as np


        def split_arrays(z, n_clusters, recipe, seed):
            order = np.argsort(z[:, 0], kind="stable")
            labels = np.empty(z.shape[0], dtype=np.int64)
            labels[order] = np.arange(z.shape[0]) * n_clusters // z.shape[0]
            return {"labels": labels}
        ''',
    "head.py": '''
        import numpy as np
        import torch

        from stages.methods.shared.common import FinetuneResult


        def finetune(autoencoder, x, init, params, *, seed, y_true=None, checkpoint=None,
                     log_every=20):
            with torch.no_grad():
                z = autoencoder.encode(x) + float(params.get("shift", 0.0))
            return FinetuneResult(labels=np.asarray(init["labels"], dtype=np.int64),
                                  embedding=z.cpu().numpy().astype(np.float32), history=[],
                                  state_dict=autoencoder.state_dict(),
                                  info={"shift": float(params.get("shift", 0.0))})
        ''',
}

TOY_CONFIG = {
    "autoencoders": {"toy-ae": {"net": "toy-ae", "objective": "toy-recon", "epochs": 1,
                                "batch_size": 64, "toy_lr": 0.1,
                                "optimizer": {"name": "adam", "lr": 0.001}}},
    "inits": {"toy-split": {"algorithm": "toy-split"}},
    "methods": {"toy-method": {"family": "toy", "ae": "toy-ae", "init": "toy-split",
                               "head": "toy", "shift": 0.5}},
    "datasets": {"synthetic": {"methods": ["toy-method"]}},
    "run_datasets": ["synthetic"],
    "seeds": [0],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the workflow and the package with the toy family added to it."""
    wd = tmp_path_factory.mktemp("plugin")
    for name in ("Snakefile", "workflow", "stages", "envs", "config.yaml"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(
            src, wd / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                               if src.is_dir() else {}))
    folder = wd / "stages/methods/toy"
    folder.mkdir()
    for name, text in TOY.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    (wd / "toy.yaml").write_text(yaml.safe_dump(TOY_CONFIG, sort_keys=False))
    return wd


def _env(wd: Path) -> dict[str, str]:
    # the copy's package first (it shadows the installed one, which lacks the toy family)
    return {**os.environ, "PYTHONPATH": str(wd)}


def _snakemake(wd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args, "--configfile", "toy.yaml"]
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600, env=_env(wd))
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def test_the_toy_family_is_registered_from_its_folder_alone(project):
    code = ("import json; from stages import methods as m; from stages import nets as n; "
            "print(json.dumps([m.HEADS['toy'], m.PRETRAIN_OBJECTIVES['toy-recon'], "
            "m.INIT_ALGORITHMS['toy-split'], m.HEAD_INIT['toy'], sorted(n.NETWORKS), "
            "m.METHOD_NOTES['toy-method'], m.FAMILY_NMI_VARIANT['toy']]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                         text=True, env=_env(project), check=True).stdout
    head, objective, init, needs, nets, note, nmi = json.loads(out)
    assert head == "stages.methods.toy.head"
    assert objective == ["stages.methods.toy.pretrain", "pretrain_toy"]
    assert init == ["stages.methods.toy.init", "split_arrays"]
    assert needs == "toy-split" and "toy-ae" in nets and nmi == "nmi_max"
    assert note.startswith("toy-method")


def test_snakemake_plans_the_toy_family_with_its_code_as_inputs(project):
    out = _snakemake(project, "-n", "results/metrics/synthetic/toy-method/seed0.json",
                     "--printshellcmds").stdout
    for rule in ("pretrain", "embed", "init", "finetune", "evaluate"):
        assert f"rule {rule}:" in out
    # code-aware reruns: each job lists the toy modules it runs
    assert "stages/methods/toy/head.py" in out and "stages/methods/toy/pretrain.py" in out
    assert "stages/methods/toy/net.py" in out and "stages/methods/toy/init.py" in out


def test_the_toy_family_runs_end_to_end(project):
    _snakemake(project, "results/metrics/synthetic/toy-method/seed0.json")
    metrics = json.loads((project / "results/metrics/synthetic/toy-method/seed0.json")
                         .read_text())
    assert metrics["family"] == "toy" and metrics["n_predicted_clusters"] >= 2


@pytest.mark.parametrize("change, message", [
    ({"methods": {"toy-method": {"shfit": 1.0}}}, "unknown option(s) 'shfit'; valid options: "
                                                  "ae, family, head, init, precision, shift"),
    ({"methods": {"toy-method": {"shift": -1.0}}}, "methods.toy-method.shift: -1.0 is less "
                                                   "than the minimum of 0"),
    ({"autoencoders": {"toy-ae": {"noise": 0.2}}}, "autoencoders.toy-ae: unknown option(s) "
                                                   "'noise'"),
    ({"methods": {"toy-method": {"shift": 11.0}}}, "toy shift above 10"),
])
def test_the_toy_familys_options_and_checks_are_enforced(project, change, message):
    config = yaml.safe_load((project / "toy.yaml").read_text())
    for section, entries in change.items():
        for name, values in entries.items():
            config[section][name].update(values)
    (project / "bad.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "bad.yaml"]
    proc = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600,
                          env=_env(project))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def _layout_block() -> str:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_the_architecture_layout_lists_every_family_folder_and_its_files():
    """docs/architecture.md 'Layout' matches the tree: each family folder and each module it
    names, and every subpackage of stages/."""
    block = _layout_block()
    lines = block.splitlines()
    families = sorted(p.parent.name for p in (REPO / "stages/methods").glob("*/__init__.py"))
    for family in families:
        line = next((ln for ln in lines if ln.strip().startswith(f"{family}/")), None)
        assert line is not None, f"docs/architecture.md Layout lacks stages/methods/{family}/"
        at = lines.index(line)
        rest = lines[at + 1:]
        n = next((i for i, ln in enumerate(rest) if not ln.startswith(" " * 15)), len(rest))
        entry = " ".join([line, *rest[:n]])  # the folder's line and its continuation lines
        for name in re.findall(r"\b([a-z_]+\.py)\b", entry):
            assert (REPO / "stages/methods" / family / name).is_file(), (family, name)
    for folder in sorted(p.name for p in (REPO / "stages").iterdir()
                         if p.is_dir() and (p / "__init__.py").is_file()):
        assert f"{folder}/" in block, f"docs/architecture.md Layout does not list stages/{folder}/"
