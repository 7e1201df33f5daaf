"""Fault-injection campaign: kill, damage and crowd dropbench's stages, resume them, and check nothing is lost.

    nice python tools/fault_campaign.py --out /tmp/campaign            # the full campaign (>= 50 kill points)
    python tools/fault_campaign.py --quick --out /tmp/campaign_quick   # the short version `make test` runs

On the smoke recipes (tiny generated data), for pretraining, classification, COCO, ADE20K and a small suite: one
uninterrupted reference run per stage, then chains of runs in fresh folders, each killed with SIGKILL (process group,
data-loader workers included) at a point drawn at random: a random time over the run, or inside a checkpoint or
``result.json`` write (``DROPBENCH_FAULT``, :mod:`pretrain.faults`), and resumed after each kill until it finishes.
Each finished chain is compared with the reference run of the same seed:

* pretraining and classification: bit-identical final weights, the same metrics and the same per-epoch log;
* detection and segmentation: the same iteration count and a finished (``ok``) result;
* the suite: every planned run done exactly once (no duplicate, no missing row) and the same tables.

Other faults: two suites started at once on one folder (the second must be refused, naming the first), a truncated
newest checkpoint before a resume, a corrupted ``result.json`` in a finished suite (named by ``tables``, redone by
``suite run``), and a full disk during a checkpoint write (``RLIMIT_FSIZE`` in the child: the run must fail naming
the file, keep its previous checkpoint, and resume). Prints a table: faults injected per stage and kind, runs
recovered, results lost (must be 0), results counted twice (must be 0); exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]
WRITE_POINTS = {
    "checkpoint": ("checkpoint:tmp-created", "checkpoint:written", "checkpoint:renamed"),
    "mm-checkpoint": ("mm-checkpoint:tmp-created", "mm-checkpoint:written", "mm-checkpoint:renamed"),
    "result": ("result:tmp-created", "result:written", "result:renamed"),
}


@dataclass
class Row:
    """One line of the campaign's table."""

    stage: str
    fault: str
    injected: int = 0
    recovered: int = 0
    lost: int = 0
    twice: int = 0


@dataclass
class Campaign:
    """Where the campaign works, its random draws, and what it found."""

    root: Path
    rng: random.Random
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    log: Path | None = None
    chains: dict[str, int] = field(default_factory=dict)

    def row(self, stage: str, fault: str) -> Row:
        return self.rows.setdefault((stage, fault), Row(stage, fault))

    def say(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        if self.log:
            with self.log.open("a") as f:
                f.write(line + "\n")


@dataclass
class Attempt:
    rc: int
    seconds: float
    output: str

    @property
    def killed(self) -> bool:
        return self.rc in (-signal.SIGKILL, 128 + signal.SIGKILL)


def launch(argv: list[str], log: Path, kill_after: float | None = None, fault: str | None = None,
           fsize: int | None = None, timeout: float = 900) -> Attempt:
    """Run a dropbench command in its own process group; SIGKILL the group after ``kill_after`` seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1", DROPBENCH_ENGINE_CONSOLE="WARNING")
    env.pop("DROPBENCH_FAULT", None)
    if fault:
        env["DROPBENCH_FAULT"] = fault

    def limit() -> None:
        if fsize is not None:  # a full disk: writes past `fsize` bytes fail (EFBIG; Python ignores SIGXFSZ)
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    t0 = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(argv)}  # fault={fault} kill_after={kill_after} fsize={fsize}\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=limit if fsize is not None else None)
        try:
            proc.wait(timeout=kill_after if kill_after is not None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            _reap_group(proc.pid)
    text = log.read_text()
    return Attempt(proc.returncode, time.monotonic() - t0, text[text.rfind("\n$ "):])


def _reap_group(pgid: int) -> None:
    """Kill what is left of a process group (a killed parent's data-loader workers notice within seconds anyway)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- stages


@dataclass
class Stage:
    """A stage as the campaign drives it: its command, its comparison with the reference, the writes it makes."""

    name: str
    command: Callable[[Path], list[str]]
    compare: Callable[[Path, Path], tuple[list[str], int, int]]  # (problems, results lost, results counted twice)
    writes: tuple[str, ...]
    max_hits: int  # how many times each write point is reached in one uninterrupted run (at least)


def _result(run: Path) -> dict | None:
    try:
        return json.loads((run / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()] if (run / "log.jsonl").exists() else []


def compare_training(ref: Path, run: Path) -> tuple[list[str], int, int]:
    """Pretraining / classification: bit-identical weights, the same metrics and per-epoch log."""
    import torch
    from dropbench.pretrain.checkpoint import load_checkpoint_file

    problems = []
    a, b = _result(ref), _result(run)
    if not b or b.get("status") != "ok":
        return [f"{run}: no ok result.json"], 1, 0
    if a["metrics"] != b["metrics"]:
        problems.append(f"{run}: metrics {b['metrics']} differ from the reference's {a['metrics']}")
    if not (run / "checkpoint.pth").is_file():
        return [f"{run}: no checkpoint.pth"], 1, 0
    ka, kb = load_checkpoint_file(ref / "checkpoint.pth"), load_checkpoint_file(run / "checkpoint.pth")
    if ka["iteration"] != kb["iteration"]:
        problems.append(f"{run}: ended at iteration {kb['iteration']}, the reference at {ka['iteration']}")
    diff = [k for k in ka["model"] if not torch.equal(ka["model"][k], kb["model"][k])]
    if diff:
        problems.append(f"{run}: {len(diff)} weight tensors differ from the reference's (e.g. {diff[0]})")
    timing = ("images_per_sec", "epoch_time", "data_wait_share")
    la, lb = ([{k: v for k, v in r.items() if k not in timing} for r in _log(x)] for x in (ref, run))
    twice = sum(n - 1 for n in Counter(r["epoch"] for r in lb).values() if n > 1)
    if la != lb:
        problems.append(f"{run}: log.jsonl differs from the reference's ({len(lb)} vs {len(la)} epochs)")
    return problems, 0, twice


def compare_mm(ref: Path, run: Path) -> tuple[list[str], int, int]:
    """Detection / segmentation: the same iteration count and a finished result."""
    a, b = _result(ref), _result(run)
    if not b or b.get("status") != "ok" or not b.get("metrics"):
        return [f"{run}: no ok result.json with metrics"], 1, 0
    if (a["extra"]["iterations"], a["extra"].get("epochs")) != (b["extra"]["iterations"], b["extra"].get("epochs")):
        return [f"{run}: {b['extra']['iterations']} iterations, the reference {a['extra']['iterations']}"], 0, 0
    return [], 0, 0


def compare_suite(ref: Path, run: Path) -> tuple[list[str], int, int]:
    """The suite: every planned run done exactly once, and the same tables."""
    from dropbench.benchmarks.results import collect_results

    problems = []
    planned = {str(p.parent.relative_to(ref)) for p in (ref / "runs").rglob("suite_run.json")}
    df = collect_results(run / "runs")
    ok = df[df["status"] == "ok"] if len(df) else df
    ids = Counter(str(Path(p).parent.relative_to(run)) for p in ok["path"]) if len(ok) else Counter()
    identity = Counter(zip(ok["task"], ok["dataset"], ok["model"], ok["variant"], ok["seed"], strict=True)) \
        if len(ok) else Counter()
    twice = sum(n - 1 for n in identity.values() if n > 1)
    lost = len(planned - set(ids))
    if lost:
        problems.append(f"{run}: runs not done: {sorted(planned - set(ids))}")
    if twice:
        problems.append(f"{run}: runs counted twice: {[k for k, n in identity.items() if n > 1]}")
    if df.attrs.get("problems"):
        problems.append(f"{run}: unreadable results: {df.attrs['problems']}")
    for table in sorted((ref / "tables").glob("*.csv")):
        other = run / "tables" / table.name
        if not other.exists() or other.read_text() != table.read_text():
            problems.append(f"{run}: table {table.name} differs from the reference's")
    return problems, lost, twice


# ---------------------------------------------------------------- data and stage set-up


MINI_SUITE = """
preset = 'campaign'
seeds = [0]
data = dict(imagenet=None, pets=None)
data_policy = dict(imagenet='generated', pets='generated')
synth = dict(imagenet=dict(num_classes=4, train_per_class=16, val_per_class=4, size=32),
             pets=dict(num_classes=3, train_per_class=8, test_per_class=4))
pretrain = dict(
    config='smoke',
    cfg_options={'schedule.epochs': 2, 'schedule.warmup_epochs': 1, 'data.input_size': 32, 'data.batch_size': 16,
                 'data.num_workers': 1, 'runtime.save_every_iters': 2},
    variants={
        'baseline': dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0),
        'early-sd': dict(kind='drop_path', rate=0.3, mode='early', schedule='linear', cutoff_epoch=1),
    },
    runs=[dict(model='vit_tiny', variants=['baseline', 'early-sd'])],
)
finetune = dict(cls=dict(config='smoke', models=['vit_tiny'], datasets=['pets'],
                         cfg_options={'schedule.epochs': 1, 'schedule.warmup_epochs': 0, 'data.input_size': 32}))
"""


def prepare(root: Path) -> dict[str, Stage]:
    """Generate the tiny data sets and the input checkpoint; return the stages."""
    import torch
    from dropbench.finetune.datasets.ade20k import write_synth_ade20k
    from dropbench.finetune.datasets.cls import write_synth_cls
    from dropbench.finetune.datasets.coco import write_synth_coco
    from dropbench.pretrain.models import create_paper_model
    from dropbench.pretrain.synth import write_synth_imagenet

    data = root / "data"
    if not (data / "done").exists():
        shutil.rmtree(data, ignore_errors=True)
        write_synth_imagenet(data / "imagenet", num_classes=4, train_per_class=16, val_per_class=4, size=32,
                             progress=False)
        write_synth_cls(data / "pets", dataset="pets", num_classes=3, train_per_class=8, test_per_class=4)
        write_synth_coco(data / "coco", seed=1, num_train=8, num_val=4)
        write_synth_ade20k(data / "ade", seed=1, train_images=6, val_images=2)
        torch.manual_seed(0)
        for model in ("vit_tiny", "swin_femto"):
            torch.save({"model": create_paper_model(model, num_classes=10).state_dict(), "epoch": 1,
                        "pretrain": {"model": model, "drop_kind": "drop_path", "drop_rate": 0.1,
                                     "drop_mode": "early"}}, data / f"{model}.pth")
        (root / "campaign.py").write_text(MINI_SUITE)
        (data / "done").touch()
    tiny_pt = ["data.input_size=32", "data.num_workers=2", "data.eval_batch_size=32", "runtime.progress=false",
               "runtime.save_every_iters=2"]
    return {
        "pretraining": Stage(
            "pretraining", lambda out: [*CLI, "pretrain", "--config", "smoke", "--model", "vit_tiny", "--data",
                                        str(data / "imagenet"), "--out", str(out), "--epochs", "2", "--batch-size",
                                        "8", "--drop-path", "0.3", "--drop-mode", "early", "--cutoff-epoch", "1",
                                        "--resume", "auto", "--cfg-options", *tiny_pt],
            compare_training, WRITE_POINTS["checkpoint"] + WRITE_POINTS["result"], 2),
        "classification": Stage(
            "classification", lambda out: [*CLI, "finetune", "cls", "--dataset", "pets", "--checkpoint",
                                           str(data / "vit_tiny.pth"), "--model", "vit_tiny", "--data",
                                           str(data / "pets"), "--out", str(out), "--config", "smoke", "--seed", "0",
                                           "--resume", "auto", "--cfg-options", "data.input_size=32",
                                           "schedule.epochs=2", "data.batch_size=4", "runtime.progress=false",
                                           "runtime.save_every_iters=2", "data.num_workers=1"],
            compare_training, WRITE_POINTS["checkpoint"] + WRITE_POINTS["result"], 2),
        "COCO": Stage(
            "COCO", lambda out: [*CLI, "finetune", "coco", "--checkpoint", str(data / "swin_femto.pth"), "--model",
                                 "swin_femto", "--data", str(data / "coco"), "--out", str(out), "--config", "smoke",
                                 "--resume", "auto", "--cfg-options", "train_cfg.max_epochs=2",
                                 "default_hooks.logger.interval=1"],
            compare_mm, WRITE_POINTS["mm-checkpoint"] + WRITE_POINTS["result"], 1),
        "ADE20K": Stage(
            "ADE20K", lambda out: [*CLI, "finetune", "ade20k", "--checkpoint", str(data / "swin_femto.pth"),
                                   "--model", "swin_femto", "--data", str(data / "ade"), "--out", str(out),
                                   "--resume", "auto", "--cfg-options", "train_cfg.max_iters=6",
                                   "train_dataloader.batch_size=2", "default_hooks.checkpoint.interval=2",
                                   "default_hooks.logger.interval=1"],
            compare_mm, WRITE_POINTS["mm-checkpoint"] + WRITE_POINTS["result"], 2),
        "suite": Stage(
            "suite", lambda out: [*CLI, "suite", "run", "--preset", str(root / "campaign.py"), "--out", str(out),
                                  "--no-progress"],
            compare_suite, WRITE_POINTS["checkpoint"] + WRITE_POINTS["result"], 2),
    }


# ---------------------------------------------------------------- the campaign


def reference(c: Campaign, stage: Stage) -> tuple[Path, float]:
    """The uninterrupted run (kept between campaigns in the same folder) and its wall time."""
    out = c.root / "reference" / stage.name
    stamp = out.parent / f"{stage.name}.seconds"
    if stamp.exists() and (_result(out) or {}).get("status") == "ok" or stage.name == "suite" and stamp.exists():
        return out, float(stamp.read_text())
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = launch(stage.command(out), c.root / "logs" / f"reference-{stage.name}.log")
    if run.rc != 0:
        raise RuntimeError(f"the reference {stage.name} run failed (rc {run.rc}):\n{run.output[-3000:]}")
    stamp.write_text(f"{run.seconds:.1f}")
    return out, run.seconds


def chain(c: Campaign, stage: Stage, ref: Path, seconds: float, kills: int, extra: Callable | None = None) -> int:
    """Kill-and-resume chains until ``kills`` kills were injected; returns how many were."""
    injected = 0
    log = c.root / "logs" / f"{stage.name}.log"
    while injected < kills:
        c.chains[stage.name] = n_chain = c.chains.get(stage.name, 0) + 1
        out = c.root / "runs" / f"{stage.name}-{n_chain}"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        kinds: list[str] = []
        truncated = 0
        finished = False
        for _ in range(max(kills - injected, 1) + 2):
            if injected >= kills:
                break
            if c.rng.random() < 0.5:
                point, fault, after = "random time", None, c.rng.uniform(0.05, 0.6) * seconds  # (resumed: shorter)
            else:
                name = c.rng.choice(stage.writes)
                hits = 1 if name.startswith("result") else c.rng.randint(1, stage.max_hits)
                point, fault, after = f"in {name.split(':')[0]} write", f"{name}@{hits}", None
            run = launch(stage.command(out), log, kill_after=after, fault=fault)
            if not run.killed:
                finished = run.rc == 0
                if run.rc != 0:
                    c.problems.append(f"{stage.name} chain {n_chain}: a resumed run failed (rc {run.rc}):\n"
                                      f"{run.output[-1500:]}")
                break
            injected += 1
            kinds.append(point)
            c.row(stage.name, f"kill ({point})").injected += 1
            c.say(f"{stage.name} chain {n_chain}: killed ({point}{', ' + fault if fault else ''}) after "
                  f"{run.seconds:.1f} s")
            if extra is not None and truncated == 0:  # once per chain: the resume must fall back to an older one
                truncated += extra(c, stage, out)
        if not finished:
            run = launch(stage.command(out), log)
            finished = run.rc == 0
            if not finished:
                c.problems.append(f"{stage.name} chain {n_chain}: the final resume failed (rc {run.rc}):\n"
                                  f"{run.output[-1500:]}")
        problems, lost, twice = stage.compare(ref, out) if finished else ([f"{out}: not finished"], 1, 0)
        c.problems += problems
        for point, n in Counter(kinds).items():
            row = c.row(stage.name, f"kill ({point})")
            row.recovered += n if not problems else 0
        if truncated:
            c.row(stage.name, "truncated newest checkpoint").recovered += truncated if not problems else 0
        if kinds:
            row = c.row(stage.name, f"kill ({kinds[-1]})")
            row.lost += lost
            row.twice += twice
        verdict = "matches the reference" if not problems else problems
        c.say(f"{stage.name} chain {n_chain}: {len(kinds)} kill(s), {verdict}")
    return injected


def truncate_newest(c: Campaign, stage: Stage, out: Path) -> int:
    """Replace the newest checkpoint by a truncated copy (a machine that died while writing it)."""
    candidates = sorted([*out.glob("checkpoint.pth"), *out.glob("iter_*.pth"), *out.glob("epoch_*.pth")],
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        return 0
    path = candidates[-1]
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[: len(data) // 2])
    c.row(stage.name, "truncated newest checkpoint").injected += 1
    c.say(f"{stage.name}: truncated {path.name}")
    return 1


def damage_faults(c: Campaign, stages: dict[str, Stage], refs: dict[str, tuple[Path, float]]) -> None:
    """A truncated newest checkpoint and a full disk during a checkpoint write (pretraining), resumed."""
    stage = stages["pretraining"]
    ref, _ = refs["pretraining"]
    log = c.root / "logs" / "damage.log"
    out = c.root / "runs" / "pretraining-damage"
    shutil.rmtree(out, ignore_errors=True)
    # a full disk during a checkpoint write: the run fails naming the file, and its previous checkpoint stays
    from dropbench.pretrain.checkpoint import load_checkpoint_file

    launch(stage.command(out), log, fault="checkpoint:renamed@1")
    before = load_checkpoint_file(out / "checkpoint.pth")["iteration"]
    run = launch(stage.command(out), log, fsize=(ref / "checkpoint.pth").stat().st_size // 2)
    row = c.row("pretraining", "disk full in a checkpoint write")
    row.injected += 1
    named = f"could not write {out}" in run.output
    kept = load_checkpoint_file(out / "checkpoint.pth")["iteration"] == before
    disk_ok = run.rc == 1 and named and kept
    if disk_ok:
        c.say("pretraining: the full disk ended the run with an error naming the file; the previous checkpoint stays")
    else:
        c.problems.append(f"full disk: rc {run.rc}, error naming the file: {named}, previous checkpoint kept: {kept}"
                          f"\n{run.output[-1500:]}")
    # the newest checkpoint truncated, then resumed: it falls back, and ends as the reference
    launch(stage.command(out), log, fault="checkpoint:renamed@4")  # after epoch 0's checkpoint and a later one
    truncate_newest(c, stage, out)
    run = launch(stage.command(out), log)
    problems, lost, twice = stage.compare(ref, out) if run.rc == 0 else ([f"resume failed: {run.output[-1500:]}"], 1, 0)
    skipped = "skipped checkpoint" in run.output
    if not skipped:
        problems.append("the resume did not say which damaged checkpoint it skipped")
    c.problems += problems
    c.row("pretraining", "disk full in a checkpoint write").recovered += 1 if disk_ok and not problems else 0
    c.row("pretraining", "truncated newest checkpoint").recovered += 0 if problems else 1
    c.row("pretraining", "truncated newest checkpoint").lost += lost
    c.row("pretraining", "truncated newest checkpoint").twice += twice


def suite_faults(c: Campaign, stage: Stage, ref: Path) -> None:
    """Two suites at once on one folder, then a corrupted result.json in the finished suite."""
    log = c.root / "logs" / "suite-faults.log"
    out = c.root / "runs" / "suite-crowded"
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # both started at once: one holds the folder, the other is refused naming it (or, if it only gets there after the
    # first has finished, finds every run done); no run is done twice either way
    procs = [subprocess.Popen(stage.command(out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for _ in range(2)]
    outputs = [proc.communicate()[0] for proc in procs]
    with log.open("a") as f:
        f.write("\n".join(outputs))
    row = c.row("suite", "two suites on one folder")
    row.injected += 1
    codes = [proc.returncode for proc in procs]
    done_now = [int(m.group(1)) for o in outputs for m in [re.search(r"(\d+) run\(s\) done now", o)] if m]
    refused = [o for proc, o in zip(procs, outputs, strict=True) if proc.returncode == 2
               and re.search(rf"is in use by pid ({'|'.join(str(q.pid) for q in procs)}) on ", o)]
    planned = len(list((ref / "runs").rglob("suite_run.json")))
    if sorted(codes) == [0, 2] and refused or codes == [0, 0] and sum(done_now) == planned:
        row.recovered += 1
        c.say(f"suite: two at once: exit codes {codes}, runs done {done_now} of {planned}"
              + (f"; refused: {refused[0].strip().splitlines()[-1][:160]}" if refused else ""))
    else:
        c.problems.append(f"two suites: exit codes {codes}, runs done {done_now}:\n{outputs[0][-600:]}\n"
                          f"{outputs[1][-600:]}")
        c.say(f"suite: PROBLEM {c.problems[-1]}")
    problems, lost, twice = compare_suite(ref, out)
    c.problems += problems
    row.lost += lost
    row.twice += twice
    # a corrupted result.json: `tables` names it and marks the cell; `suite run` redoes the run; same tables after
    victim = sorted((out / "runs" / "cls").rglob("result.json"))[0]
    victim.write_text(victim.read_text()[:50])
    row = c.row("suite", "corrupted result.json")
    row.injected += 1
    tables = subprocess.run([*CLI, "tables", "--results", str(out / "runs")], cwd=REPO, env=env, capture_output=True,
                            text=True)
    named = str(victim) in tables.stderr and "unreadable" in tables.stdout
    rerun = launch(stage.command(out), log)
    problems, lost, twice = compare_suite(ref, out) if rerun.rc == 0 else ([f"rerun failed: {rerun.output[-800:]}"],
                                                                            1, 0)
    if not named:
        problems.append(f"`tables` did not name {victim} or mark its cell")
    if "1 run(s) done now" not in rerun.output:
        problems.append("`suite run` did not redo exactly the run whose result was corrupted")
    c.problems += problems
    row.recovered += 0 if problems else 1
    row.lost += lost
    row.twice += twice


def table(c: Campaign) -> str:
    rows = list(c.rows.values())
    lines = ["| stage | fault | injected | recovered | results lost | counted twice |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.stage} | {r.fault} | {r.injected} | {r.recovered} | {r.lost} | {r.twice} |" for r in rows]
    total = [sum(getattr(r, k) for r in rows) for k in ("injected", "recovered", "lost", "twice")]
    kills = sum(r.injected for r in rows if r.fault.startswith("kill"))
    lines.append(f"| **all** | {kills} kills + {total[0] - kills} other faults | {total[0]} | {total[1]} | "
                 f"{total[2]} | {total[3]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="campaign folder (data, reference runs, chains, logs)")
    p.add_argument("--quick", action="store_true", help="the short version (a few kill points per stage)")
    p.add_argument("--stages", nargs="+", help="only these stages (pretraining classification COCO ADE20K suite)")
    p.add_argument("--kills", type=int, nargs="+", help="kill points per stage, in the order of --stages")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    root = Path(args.out).resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    c = Campaign(root, random.Random(args.seed), log=root / "logs" / "campaign.log")
    stages = prepare(root)
    plan = {"pretraining": 16, "classification": 14, "COCO": 6, "ADE20K": 6, "suite": 8}
    if args.quick:  # (`make test`: the other stages' stop / resume / damage paths have their own tests)
        plan = {"pretraining": 2}
    names = args.stages or list(plan)
    kills = dict(zip(names, args.kills or [plan.get(n, 2) for n in names], strict=True))
    t0 = time.monotonic()
    refs = {}
    for name in names:
        try:
            refs[name] = reference(c, stages[name])
            c.say(f"reference {name}: {refs[name][1]:.1f} s")
        except RuntimeError as e:  # the stage cannot be checked: say so, go on with the others
            c.problems.append(str(e))
            c.say(f"reference {name} failed: {str(e)[:300]}")
    steps = []  # the other faults first, then kill chains round-robin over the stages (the table fills evenly)
    if "pretraining" in refs and not args.quick:
        steps.append(("pretraining damage", lambda: damage_faults(c, stages, refs)))
    if "suite" in refs and not args.quick:
        steps.append(("suite faults", lambda: suite_faults(c, stages["suite"], refs["suite"][0])))
    left = {name: kills[name] for name in names if name in refs}
    while any(left.values()):
        for name in [n for n in left if left[n]]:
            n = min(left[name], 3)
            left[name] -= n
            steps.append((name, lambda name=name, n=n: chain(c, stages[name], *refs[name], n,
                                                             extra=truncate_newest if name in ("pretraining", "ADE20K")
                                                             else None)))
    for name, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - one broken step must not hide the others' figures
            c.problems.append(f"{name}: the campaign step crashed: {type(e).__name__}: {e}")
            c.say(f"{name}: the campaign step crashed: {type(e).__name__}: {e}")
        (root / "table.md").write_text(table(c) + "\n")  # so far (the campaign may be stopped at any point)
    text = table(c)
    print(f"\nfault campaign ({'quick' if args.quick else 'full'}, seed {args.seed}, {time.monotonic() - t0:.0f} s)\n")
    print(text)
    (root / "table.md").write_text(text + "\n")
    (root / "summary.json").write_text(json.dumps({"rows": [vars(r) for r in c.rows.values()],
                                                   "problems": c.problems}, indent=2))
    for problem in c.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    bad = c.problems or any(r.lost or r.twice or r.recovered != r.injected for r in c.rows.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
