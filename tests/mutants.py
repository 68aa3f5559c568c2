"""Hand-made mutants of the heads: each must make at least one test fail.

Each mutant is one wrong line a reviewer could write (an ``argmin`` for an ``argmax``, an option
read and then ignored, a stop rule that never fires). For each, this script copies the
repository's tracked files into a temporary folder, applies the change there (the
checkout is never edited) and runs the mutant's tests in that copy; a mutant *survives* when
they all pass. Run from the repository root::

    python tests/mutants.py            # every mutant, about 10 minutes on 2 threads
    python tests/mutants.py dec-argmin saip-detach-ignored

and it prints one line per mutant (killed / survived, with the first failing test) and exits 1
when one survives. Not part of the test suite (it runs the suite's head tests once per mutant);
the list below is the record of which tests guard which lines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str       # file under the repository root
    old: str        # exact text, found exactly once
    new: str
    tests: tuple[str, ...]


HEADS = "tests/test_heads.py"
STOPS = "tests/test_stop_rules.py"
OPTIONS = "tests/test_options.py"

MUTANTS = [
    # the list
    Mutant("dec-argmin", "stages/methods/dec/head.py",
           "labels = student_t_assign(z, model.centres, model.alpha).argmax(dim=1)",
           "labels = student_t_assign(z, model.centres, model.alpha).argmin(dim=1)",
           (HEADS, "tests/test_dec.py")),
    Mutant("saip-predict-p1-forced", "stages/methods/saip/head.py",
           "labels, h = model.predict(x, predict)", 'labels, h = model.predict(x, "p1")',
           (HEADS, "tests/test_saip.py")),
    Mutant("saip-clusterer-argmin", "stages/methods/saip/head.py",
           'return (p1 if which == "p1" else p2).argmax(dim=1), h',
           'return (p1 if which == "p1" else p2).argmin(dim=1), h',
           (HEADS, "tests/test_saip.py")),
    Mutant("saip-detach-ignored", "stages/methods/saip/head.py",
           "detach = resolve_detach(params)", 'detach = "none"',
           (OPTIONS, "tests/test_saip.py")),
    Mutant("dscdan-softmax-forced", "stages/methods/dscdan/head.py",
           'labels, z = predict(model, x, str(params.get("predict", "softmax")), n_clusters, seed)',
           'labels, z = predict(model, x, "softmax", n_clusters, seed)',
           (HEADS, "tests/test_dscdan.py")),
    Mutant("dscdan-stop-never", "stages/methods/dscdan/head.py",
           "stop = abs(change) < self.tol",
           "stop = False", (STOPS, "tests/test_dscdan.py")),
    Mutant("rmn-argmin", "stages/methods/rmn/head.py",
           "return log_joint(y, self.means, self.variances, self.weights).argmax(dim=1)",
           "return log_joint(y, self.means, self.variances, self.weights).argmin(dim=1)",
           (HEADS, "tests/test_rmn.py")),
    # the same kinds of change in the other heads and rules
    Mutant("depict-argmin", "stages/methods/depict/head.py",
           "labels=p.argmax(dim=1).cpu().numpy().astype(np.int64),",
           "labels=p.argmin(dim=1).cpu().numpy().astype(np.int64),", (HEADS,)),
    Mutant("dec-stop-inverted", "stages/methods/dec/head.py",
           'return step > 0 and row["delta_label"] < self.tol',
           'return step > 0 and row["delta_label"] > self.tol', (STOPS,)),
    Mutant("saip-stop-never", "stages/methods/saip/head.py",
           'return not math.isnan(row["delta_label"]) and row["delta_label"] < self.tol',
           "return False", (STOPS,)),
    Mutant("saip-stop-after-ignored", "stages/methods/saip/head.py",
           "        if step <= self.check_after:\n            return False\n", "",
           ("tests/test_saip.py",)),
    Mutant("depict-stop-never", "stages/methods/depict/head.py",
           "return step > 0 and change < self.tol", "return False", (STOPS,)),
    Mutant("dscdan-stop-last-loss", "stages/methods/dscdan/head.py",
           "self.total = self.total + loss.detach().float()",
           "self.total = loss.detach().float() * (self.count + 1)", (STOPS,)),
    Mutant("early-stopping-ties-improve", "stages/runtime/train.py",
           "if value < self.best:", "if value <= self.best:", (STOPS,)),
    Mutant("warm-start-keeps-last-weights", "stages/methods/depict/head.py",
           "    stopper.finish(result.steps)\n", "", (STOPS,)),
    # options read and then ignored (tests/test_options.py has many more, checked by hand)
    Mutant("dec-shuffle-ignored", "stages/methods/dec/head.py",
           'shuffle=bool(params.get("shuffle", False))', "shuffle=False", (OPTIONS,)),
    Mutant("dec-decoder-always-trained", "stages/methods/dec/head.py",
           "trainable = [model.centres, *autoencoder.encoder.parameters()] if w_rec == 0 else",
           "trainable = list(model.parameters()) if w_rec == 0 else", (OPTIONS,)),
    Mutant("dscdan-orth-gradient-ignored", "stages/methods/dscdan/head.py",
           'if params.get("orth_gradient", True):', "if True:", (OPTIONS,)),
    Mutant("dscdan-bandwidth-ignored", "stages/methods/dscdan/head.py",
           "terms = eq20_terms(model, x[idx], params, sigma)",
           "terms = eq20_terms(model, x[idx], params, None)", (OPTIONS,)),
    Mutant("rmn-decoder-always-trained", "stages/methods/rmn/head.py",
           "trained = autoencoder if w_rec > 0 else autoencoder.encoder",
           "trained = autoencoder", (OPTIONS,)),
    Mutant("rmn-separation-weighting-ignored", "stages/methods/rmn/head.py",
           'eta_step = eta if weighting == "sample" else eta / x.shape[0]', "eta_step = eta",
           (OPTIONS,)),
    Mutant("depict-target-ignored", "stages/methods/depict/head.py",
           'rule=str(params.get("target", "dec")), initial_q=initial_q,',
           'rule="dec", initial_q=initial_q,', (OPTIONS,)),
    Mutant("depict-warm-start-rule-ignored", "stages/methods/depict/head.py",
           'rule = str(params.get("warm_start_rule", "heldout-nmi"))', 'rule = "heldout-nmi"',
           ("tests/test_depict.py",)),
    Mutant("depict-head-init-ignored", "stages/methods/depict/head.py",
           'str(params.get("head_init", "centres"))', '"centres"', ("tests/test_depict.py",)),
    Mutant("depict-train-ce-keeps-training", "stages/methods/depict/head.py",
           "return mean < self.threshold", "return False", ("tests/test_depict.py",)),
]


#: the unmutated copy: its tests must pass, or a "killed" would mean nothing
CONTROL = Mutant("control (no change)", "", "", "", ())


def apply(root: Path, mutant: Mutant) -> None:
    path = root / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutant {mutant.name}: {mutant.path} has the text {count} times "
                         f"(expected once); the code changed, update tests/mutants.py")
    path.write_text(text.replace(mutant.old, mutant.new))


def run(mutant: Mutant, threads: int, unmutated: bool = False) -> tuple[bool, str]:
    """(killed, the first failing test) of one mutant; SystemExit when pytest could not run."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        root = Path(tmp)
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.splitlines()
        for name in tracked:  # the working tree's version of every tracked file
            if (REPO / name).is_file():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, root / name)
        if not unmutated:
            apply(root, mutant)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(root)}
        tests = [t for t in mutant.tests if (root / t).exists()]
        # its own basetemp: pytest prunes old ones, and another session's folders (a workflow
        # test running beside this) must not be among them
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                               "no:cacheprovider", f"--basetemp={root / 'pytest-tmp'}", *tests],
                              cwd=root, env=env,
                              capture_output=True, text=True)
        failed = [line for line in proc.stdout.splitlines()
                  if line.startswith(("FAILED", "ERROR"))]
        if proc.returncode not in (0, 1):  # no test ran, or pytest itself failed
            raise SystemExit(f"mutant {mutant.name}: pytest exited {proc.returncode}:\n"
                             f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        return proc.returncode == 1, failed[0] if failed else "all passed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        raise SystemExit(f"unknown mutants {sorted(unknown)}; valid: "
                         f"{', '.join(m.name for m in MUTANTS)}")
    control = Mutant(CONTROL.name, "", "", "",
                     tuple(dict.fromkeys(t for m in chosen for t in m.tests)))
    killed, detail = run(control, args.threads, unmutated=True)
    if killed:
        raise SystemExit(f"the unmutated copy fails its tests ({detail}): fix that first")
    print(f"passed   {control.name}")
    survivors = 0
    for mutant in chosen:
        killed, detail = run(mutant, args.threads)
        survivors += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'} {mutant.name:32s} {detail}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
