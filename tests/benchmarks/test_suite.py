"""Suite planning, skipping, failure isolation and resume, on a tiny pretraining-only preset."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from dropbench.benchmarks.results import read_result
from dropbench.benchmarks.suite import describe, plan, run_suite, status_of
from dropbench.pretrain.checkpoint import load_checkpoint_file
from dropbench.pretrain.lock import FolderInUse

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]  # the `dropbench` command, run from this checkout
PAPER_DATA = ("imagenet", "coco", "ade20k", "cifar100", "flowers102", "pets", "stl10", "food101")

MINI = """
preset = 'mini'
seeds = [0]
data = dict(imagenet=None)
synth = dict(imagenet=dict(num_classes=4, train_per_class=16, val_per_class=4, size=32))
data_policy = dict(imagenet='generated', pets='generated')
pretrain = dict(
    config='smoke',
    cfg_options={'schedule.epochs': EPOCHS, 'schedule.warmup_epochs': 1, 'data.input_size': 32,
                 'data.batch_size': 16, 'data.num_workers': 0},
    variants={
        'baseline': dict(kind='none', rate=0.0, mode='standard', schedule='constant', cutoff_epoch=0),
        'early-sd': dict(kind='drop_path', rate=0.3, mode='early', schedule='linear', cutoff_epoch=1),
        'early-dropout': dict(kind='dropout', rate=0.1, mode='early', schedule='linear', cutoff_epoch=1),
    },
    runs=[dict(model='vit_tiny', variants=VARIANTS)],
)
finetune = dict()
"""


def _last_log(run_dir: str) -> dict:
    """The last epoch record of a run's ``log.jsonl``."""
    return json.loads((Path(run_dir) / "log.jsonl").read_text().splitlines()[-1])


def preset(tmp_path: Path, variants=("baseline", "early-sd"), epochs=2, model="vit_tiny") -> Path:
    path = tmp_path / "mini.py"
    text = MINI.replace("EPOCHS", str(epochs)).replace("VARIANTS", repr(list(variants)))
    path.write_text(text.replace("model='vit_tiny'", f"model='{model}'"))
    return path


@pytest.mark.slow
def test_second_run_does_nothing_and_plan_shows_it(tmp_path):
    p = plan(preset(tmp_path), tmp_path / "out")
    assert [r.id for r in p.runs] == ["pretrain/vit_tiny/baseline", "pretrain/vit_tiny/early-sd"]
    assert all(status_of(p, r) == "todo" for r in p.runs)
    first = run_suite(p, progress=False)
    assert first.done == [r.id for r in p.runs] and first.ok
    stamps = {r.id: (p.run_dir(r) / "result.json").stat().st_mtime_ns for r in p.runs}
    again = run_suite(plan(preset(tmp_path), tmp_path / "out"), progress=False)
    assert again.done == [] and again.skipped == [r.id for r in p.runs]
    assert stamps == {r.id: (p.run_dir(r) / "result.json").stat().st_mtime_ns for r in p.runs}
    assert "2 done" in describe(p)
    # a changed config is another run: the old folder moves to stale/ and the run is redone
    p3 = plan(preset(tmp_path, epochs=1), tmp_path / "out")
    assert {status_of(p3, r) for r in p3.runs} == {"stale"}
    assert all(r.key != old.key for r, old in zip(p3.runs, p.runs, strict=True))


@pytest.mark.slow
def test_failing_run_is_recorded_and_the_others_go_on(tmp_path):
    path = preset(tmp_path, variants=("early-dropout", "baseline"), model="convnext_femto")
    res = subprocess.run([*CLI, "suite", "run", "--preset", str(path), "--out",
                          str(tmp_path / "out"), "--no-progress"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "FAILED pretrain/convnext_femto/early-dropout" in res.stdout
    failed = read_result(tmp_path / "out" / "runs" / "pretrain" / "convnext_femto" / "early-dropout")
    assert failed.status == "failed" and "no dropout" in failed.error
    # the summary names the failed run's log, which holds the traceback
    assert failed.log_path and f"(log: {failed.log_path})" in res.stdout
    assert "ValueError: convnext_femto has no dropout" in Path(failed.log_path).read_text()
    ok = read_result(tmp_path / "out" / "runs" / "pretrain" / "convnext_femto" / "baseline")
    assert ok.status == "ok" and 0 < ok.metrics["top1"] <= 100
    assert ok.metrics["top1"] == _last_log(ok.run_dir)["val_top1"]  # the run's own final evaluation
    rows = [r for r in (tmp_path / "out" / "tables" / "pretrain.md").read_text().splitlines() if "ConvNeXt-F" in r]
    assert len(rows) == 1 and f"| {ok.metrics['top1']:.1f} " in rows[0]
    assert (tmp_path / "out" / "index.csv").exists()


@pytest.mark.slow
def test_killed_suite_resumes_without_redoing_finished_runs(tmp_path):
    path = preset(tmp_path, epochs=3)
    out = tmp_path / "out"
    cmd = [*CLI, "suite", "run", "--preset", str(path), "--out", str(out),
           "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "runs" / "pretrain" / "vit_tiny" / "baseline" / "result.json"
    second_ckpt = out / "runs" / "pretrain" / "vit_tiny" / "early-sd" / "checkpoint.pth"
    deadline = time.time() + 300
    while not second_ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and not (second_ckpt.parent / "result.json").exists()
    stamp = first.stat().st_mtime_ns
    log_before = [json.loads(x) for x in (second_ckpt.parent / "log.jsonl").read_text().splitlines()]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 run(s) done now, 1 already done" in res.stdout
    assert first.stat().st_mtime_ns == stamp
    log_after = [json.loads(x) for x in (second_ckpt.parent / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log_after] == [0, 1, 2]
    assert log_after[: len(log_before)] == log_before  # epochs finished before the kill were kept, not redone


@pytest.mark.slow
def test_slurm_executor_submits_one_job_per_run(tmp_path):
    path = preset(tmp_path, epochs=1)
    path.write_text(path.read_text() + "slurm = dict(default=dict(nodes=1, gpus_per_node=0, timeout_min=10))\n")
    p = plan(path, tmp_path / "out")
    report = run_suite(p, executor="slurm", slurm_cluster="local", progress=False)
    assert sorted(report.submitted) == sorted(r.id for r in p.runs)
    deadline = time.time() + 300
    while time.time() < deadline and not all((p.run_dir(r) / "result.json").exists() for r in p.runs):
        time.sleep(0.5)
    assert all(read_result(p.run_dir(r)).status == "ok" for r in p.runs)
    assert run_suite(plan(path, tmp_path / "out"), executor="slurm", slurm_cluster="local").submitted == {}


def cls_preset(tmp_path: Path, pretrain_variants=("baseline", "early-sd")) -> Path:
    path = preset(tmp_path, variants=pretrain_variants, epochs=1)
    text = path.read_text().replace("finetune = dict()", (
        "finetune = dict(cls=dict(config='smoke', models=['vit_tiny'], datasets=['pets'],\n"
        "    cfg_options={'schedule.epochs': 1, 'schedule.warmup_epochs': 0, 'data.input_size': 32}))\n"
        "synth['pets'] = dict(num_classes=3, train_per_class=8, test_per_class=4)\n"))
    path.write_text(text + "data['pets'] = None\n")
    return path


def test_plan_orders_fine_tunes_after_their_pretraining(tmp_path):
    p = plan(cls_preset(tmp_path), tmp_path / "out", seeds=2)
    ids = [r.id for r in p.runs]
    assert ids == ["pretrain/vit_tiny/baseline", "pretrain/vit_tiny/early-sd",
                   "cls/pets/vit_tiny/baseline/seed0", "cls/pets/vit_tiny/baseline/seed1",
                   "cls/pets/vit_tiny/early-sd/seed0", "cls/pets/vit_tiny/early-sd/seed1"]
    by = p.by_id()
    assert by["cls/pets/vit_tiny/early-sd/seed1"].upstream == "pretrain/vit_tiny/early-sd"
    # keys chain: a fine-tune's key changes when its pretraining's does
    p2 = plan(cls_preset(tmp_path, ("baseline", "early-sd")).parent / "mini.py", tmp_path / "out", seeds=2)
    assert [r.key for r in p2.runs] == [r.key for r in p.runs]
    assert len({r.key for r in p.runs}) == len(p.runs)


def test_a_task_fine_tunes_only_the_variants_it_names(tmp_path):
    """``finetune.<task>.variants`` picks the checkpoints a task takes (the smoke preset's dense tasks); a name that no
    pretraining run has is refused, naming the ones there are."""
    path = cls_preset(tmp_path, ("random-init", "baseline", "early-sd"))
    only = "variants=['random-init', 'early-sd'],"
    path.write_text(path.read_text().replace("datasets=['pets'],", f"datasets=['pets'], {only}"))
    ids = [r.id for r in plan(path, tmp_path / "out").runs]
    assert [i for i in ids if i.startswith("cls/")] == ["cls/pets/vit_tiny/random-init/seed0",
                                                        "cls/pets/vit_tiny/early-sd/seed0"]
    assert len(ids) == 5  # every pretraining run is still planned
    path.write_text(path.read_text().replace(only, "variants=['late-sd'],"))
    with pytest.raises(ValueError, match=r"finetune.cls.variants names late-sd, .*: random-init, baseline, early-sd"):
        plan(path, tmp_path / "out")


def test_random_init_is_listed_like_a_variant_and_written_untrained(tmp_path, synth_imagenet):
    """A preset's ``random-init`` variant plans a 0-epoch "pretraining" run (no drop schedule), whose checkpoint holds
    the recipe's untrained model; its fine-tunes chain to it like any variant's."""
    import torch
    from dropbench.benchmarks.suite import execute_run
    from dropbench.pretrain.models import create_model

    p = plan(cls_preset(tmp_path, ("random-init", "baseline")), tmp_path / "out",
             data_roots={"imagenet": str(synth_imagenet)})
    by = p.by_id()
    rand = by["pretrain/vit_tiny/random-init"]
    assert rand.cfg_options["schedule.epochs"] == 0 and rand.drop["kind"] == "none"
    assert by["cls/pets/vit_tiny/random-init/seed0"].upstream == rand.id
    assert rand.key != by["pretrain/vit_tiny/baseline"].key
    assert execute_run(rand, p.out) == "done"
    result = read_result(p.run_dir(rand))
    assert result.status == "ok" and result.pretrain["init"] == "random" and result.pretrain["epochs"] == 0
    assert 0.0 <= result.metrics["top1"] <= 100.0 and result.extra["samples"]  # evaluated once, untrained
    ckpt = torch.load(p.run_dir(rand) / "checkpoint.pth", weights_only=True)
    torch.manual_seed(0)
    fresh = create_model("vit_tiny", num_classes=ckpt["num_classes"], img_size=32)
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in fresh.state_dict().items())  # the seeded init, untouched


def test_an_entry_s_own_options_reach_its_checkpoint_and_the_fine_tunes_rebuild_that_model(tmp_path, synth_imagenet):
    """A pretraining entry's own overrides (a rehearsal's 2-block ViT-B) are its runs'; the checkpoint records the
    model's reconstruction arguments, and classification and probes rebuild that model from them."""
    from dropbench.benchmarks.suite import execute_run
    from dropbench.finetune.cls import checkpoint_settings
    from dropbench.finetune.convert import checkpoint_model_args, load_pretrained
    from dropbench.pretrain.models import create_model
    from mmengine.config import Config

    path = cls_preset(tmp_path, ("random-init",))
    path.write_text(path.read_text().replace("dict(model='vit_tiny', variants=",
                                             "dict(model='vit_tiny', cfg_options={'model.kwargs': {'depth': 2}}, "
                                             "variants="))
    p = plan(path, tmp_path / "out", data_roots={"imagenet": str(synth_imagenet)})
    rand = p.by_id()["pretrain/vit_tiny/random-init"]
    assert rand.cfg_options["model.kwargs"] == {"depth": 2} and rand.cfg_options["data.input_size"] == 32
    assert execute_run(rand, p.out) == "done"
    ckpt = p.run_dir(rand) / "checkpoint.pth"
    assert checkpoint_model_args(ckpt) == {"depth": 2}
    assert checkpoint_settings("vit_tiny", str(ckpt), Config(dict(optim=dict(layer_decay=0.75))))["model.kwargs"] == {
        "depth": 2}
    report = load_pretrained(create_model("vit_tiny", num_classes=0, img_size=32, **checkpoint_model_args(ckpt)),
                             ckpt, "vit_tiny")  # strict but for the head: a 12-block model would not load
    assert report.loaded and not report.missing and not report.unexpected


def test_suite_plan_shows_the_data_above_the_runs_and_writes_nothing(tmp_path, capsys):
    from dropbench.benchmarks.cli import main

    out = tmp_path / "out"
    assert main(["suite", "plan", "--preset", str(cls_preset(tmp_path)), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    data, runs = text.split("preset mini:")
    assert data.split("\n")[1].split() == ["data", "set", "root", "kind", "found", "expected", "status"]
    for name in ("imagenet", "pets"):
        row = next(line for line in data.splitlines() if line.startswith(name))
        assert row.split()[2:] == ["generated", "–", "–", "pending"] and str(out / "data" / name) in row
    assert "pretrain/vit_tiny/baseline" in runs and not out.exists()


def test_paper_preset_plans_the_late_sd_baselines_under_the_baseline_name(tmp_path):
    """ViT-B's and Mixer-B's standard s.d. run at late s.d.'s rate, named ``standard-sd`` so the tables find it."""
    p = plan("paper", tmp_path / "out", data_roots={d: str(tmp_path / d) for d in PAPER_DATA})
    by = p.by_id()
    assert by["pretrain/vit_base/standard-sd"].drop["rate"] == 0.4
    assert by["pretrain/vit_tiny/baseline"].drop["kind"] == "none"
    assert {r.variant for r in p.runs if r.model == "mixer_b16"} == {"random-init", "standard-sd", "late-sd"}
    assert not any(r.task in ("coco", "ade20k") and r.model.startswith("mixer") for r in p.runs)
    assert len({r.key for r in p.runs}) == len(p.runs)


def test_finetune_drop_path_is_a_preset_key_that_changes_run_keys_only_when_set(tmp_path):
    from dropbench.benchmarks.suite import load_preset

    roots = {d: str(tmp_path / d) for d in PAPER_DATA}  # (the paper preset requires them)
    base = {r.id: r for r in plan("paper", tmp_path / "out", data_roots=roots).runs}
    assert all("model.backbone.drop_path_rate" not in r.cfg_options for r in base.values())
    cfg = load_preset("paper")
    cfg.finetune.coco.drop_path = 0.2
    cfg.finetune.cls.drop_path = 0.3
    swept = {r.id: r for r in plan(cfg, tmp_path / "out", data_roots=roots).runs}
    for run_id, r in swept.items():
        changed = r.task in ("coco", "cls")
        assert (r.key != base[run_id].key) == changed, run_id
    assert swept["coco/swin_femto/baseline/seed0"].cfg_options == {"model.backbone.drop_path_rate": 0.2}
    assert swept["cls/pets/vit_tiny/early-dropout/seed1"].cfg_options == {"drop.kind": "drop_path", "drop.rate": 0.3}
    cfg.finetune.ade20k.drop_path = 1.5
    with pytest.raises(ValueError, match="drop_path must be a rate"):
        plan(cfg, tmp_path / "out", data_roots=roots)


def test_moved_suite_folder_keeps_its_keys(tmp_path):
    keys = [r.key for r in plan(cls_preset(tmp_path), tmp_path / "a").runs]
    assert [r.key for r in plan(cls_preset(tmp_path), tmp_path / "b").runs] == keys


def test_slurm_jobs_depend_on_their_pretraining(tmp_path, monkeypatch):
    import dropbench.pretrain.launch

    submitted = []

    class FakeExecutor:
        cluster = "slurm"

        def __init__(self):
            self.params = {}

        def update_parameters(self, **kw):
            self.params.update(kw)

        def submit(self, task):
            job = type("Job", (), {"job_id": str(100 + len(submitted))})()
            submitted.append((task.argv, dict(self.params), job.job_id))
            return job

    monkeypatch.setattr(dropbench.pretrain.launch, "slurm_executor", lambda *a, **k: FakeExecutor())
    p = plan(cls_preset(tmp_path), tmp_path / "out")
    report = run_suite(p, executor="slurm", progress=False)
    assert len(report.submitted) == 4
    deps = {Path(argv[0]).parent.relative_to(tmp_path / "out" / "runs").as_posix():
            params.get("slurm_additional_parameters", {}).get("dependency") for argv, params, _ in submitted}
    assert deps["pretrain/vit_tiny/baseline"] is None
    assert deps["cls/pets/vit_tiny/baseline/seed0"] == f"afterok:{report.submitted['pretrain/vit_tiny/baseline']}"
    assert deps["cls/pets/vit_tiny/early-sd/seed0"] == f"afterok:{report.submitted['pretrain/vit_tiny/early-sd']}"
    # each job's spec carries the provenance of the data it reads: generated pets, and the generated ImageNet its
    # pretraining reads, with the roots' fingerprints
    spec = json.loads((p.run_dir(p.by_id()["cls/pets/vit_tiny/baseline/seed0"]) / "suite_run.json").read_text())
    assert {k: v["kind"] for k, v in spec["data"].items()} == {"pets": "generated", "imagenet": "generated"}
    assert spec["data"]["pets"]["fingerprint"]["files"] == 3 * (8 + 4) + 2


def _missing_roots_refused(stderr: str, needed: tuple[str, ...]) -> None:
    for name in PAPER_DATA:
        assert (f"--data-root {name}=PATH" in stderr) == (name in needed), (name, stderr)
    assert "README.md, section 'Getting the data'" in stderr and "nothing was run" in stderr
    assert stderr.count("\n") <= len(needed) + 3  # one message


def test_paper_preset_without_roots_exits_2_before_anything_is_written(tmp_path):
    out = tmp_path / "paper"
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # os.wait4: the CPU time of this process (and its own children) only
        proc = subprocess.Popen([*CLI, "suite", "run", "--preset", "paper", "--out", str(out)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        res = subprocess.CompletedProcess(proc.args, proc.returncode, "", err.read().decode())
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    assert res.returncode == 2, res.stderr[-2000:]
    # the process's CPU time is about its wall time on a machine to itself (7-8 s, nearly all of it importing torch,
    # timm and mmengine); the bounds leave room for a loaded test machine, not for loading the preset's recipes
    assert cpu < 15 and wall < 120, (cpu, wall)
    _missing_roots_refused(res.stderr, PAPER_DATA)
    assert not out.exists()
    # the refusal itself comes before any recipe is loaded or anything hashed: well under a second once imported
    from dropbench.benchmarks.datacheck import MissingDataError

    plan("paper", out, allow_missing=True, keys=False)  # imports and the preset's first parse
    start = time.perf_counter()
    with pytest.raises(MissingDataError, match="--data-root food101=PATH"):
        plan("paper", out)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("command", [["suite", "plan"], ["evaluate", "--model", "vit_tiny"]])
def test_plan_and_evaluate_refuse_missing_roots_too(tmp_path, capsys, command):
    from dropbench.benchmarks.cli import main

    out = tmp_path / "paper"
    argv = [*command, "--preset", "paper", "--out", str(out)]
    if command[0] == "evaluate":
        (tmp_path / "ckpt.pth").write_bytes(b"0")
        argv += ["--checkpoint", str(tmp_path / "ckpt.pth")]
    assert main(argv) == 2
    _missing_roots_refused(capsys.readouterr().err, PAPER_DATA[1:] if command[0] == "evaluate" else PAPER_DATA)
    assert not out.exists()


def test_paper_preset_refuses_generated_data_by_the_count_check(tmp_path, synth_imagenet):
    from dropbench.benchmarks.datacheck import DataPreflightError
    from dropbench.finetune.datasets.ade20k import write_synth_ade20k
    from dropbench.finetune.datasets.cls import write_synth_cls
    from dropbench.finetune.datasets.coco import write_synth_coco

    roots = {"imagenet": str(synth_imagenet),
             "coco": str(write_synth_coco(tmp_path / "coco", num_train=2, num_val=1, sizes=(64,))),
             "ade20k": str(write_synth_ade20k(tmp_path / "ade", train_images=2, val_images=1, sizes=((64, 48),)))}
    for name in PAPER_DATA[3:]:
        roots[name] = str(write_synth_cls(tmp_path / name, dataset=name, num_classes=2, train_per_class=2,
                                          test_per_class=1))
    out = tmp_path / "paper"
    p = plan("paper", out, data_roots=roots)
    with pytest.raises(DataPreflightError) as e:
        run_suite(p, progress=False)
    for name in PAPER_DATA:
        assert f"{name}: the " in str(e.value) and "the official release" in str(e.value)
    assert "generated" in str(e.value) and not out.exists()  # no run folder, no generated data


@pytest.mark.slow
def test_failed_pretraining_blocks_only_its_fine_tunes_and_evaluate_adds_a_row(tmp_path):
    path = cls_preset(tmp_path, ("baseline", "early-dropout"))
    path.write_text(path.read_text().replace("'early-dropout': dict(kind='dropout', rate=0.1",
                                             "'early-dropout': dict(kind='dropout', rate=1.5"))
    out = tmp_path / "out"
    report = run_suite(plan(path, out), progress=False)
    assert list(report.failed) == ["pretrain/vit_tiny/early-dropout"]
    assert report.blocked == {"cls/pets/vit_tiny/early-dropout/seed0": "pretrain/vit_tiny/early-dropout"}
    assert report.done == ["pretrain/vit_tiny/baseline", "cls/pets/vit_tiny/baseline/seed0"]
    done = read_result(out / "runs" / "cls/pets/vit_tiny/baseline/seed0")
    assert 0 < done.metrics["top1"] <= 100 and done.metrics["top1"] == _last_log(done.run_dir)["val_top1"]

    # evaluate a new checkpoint (the baseline's) under a label; its row joins the suite's
    ckpt = out / "runs" / "pretrain" / "vit_tiny" / "baseline" / "checkpoint.pth"
    res = subprocess.run([*CLI, "evaluate", "--checkpoint", str(ckpt), "--model",
                          "vit_tiny", "--preset", str(path), "--label", "my-ckpt", "--out", str(out),
                          "--no-progress"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "| ViT-T      | my-ckpt       |" in res.stdout and "| ViT-T      | no dropout    |" in res.stdout
    assert read_result(out / "runs" / "cls/pets/vit_tiny/my-ckpt/seed0").checkpoint == str(ckpt)
    # provenance: the suite's fine-tune read generated pets and a checkpoint pretrained on generated ImageNet; the
    # evaluated checkpoint's pretraining data is not known; the printed tables say what was generated
    suite_ft = read_result(out / "runs" / "cls/pets/vit_tiny/baseline/seed0").data
    assert {k: v["kind"] for k, v in suite_ft.items()} == {"pets": "generated", "imagenet": "generated"}
    assert set(read_result(out / "runs" / "cls/pets/vit_tiny/my-ckpt/seed0").data) == {"pets"}
    assert "Generated data (dropbench's stand-ins, not the real data sets, not comparable with the paper): " \
           "imagenet, pets." in res.stdout


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    """`make demo`'s job: every pretraining variant and every downstream task on generated data, then the tables; and
    the embedded default measures transfer: every pretrained row beats its random-init row on every column."""
    import pandas as pd

    out = tmp_path / "smoke"
    res = subprocess.run([*CLI, "suite", "run", "--preset", "smoke", "--out",
                          str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    p = plan("smoke", out)
    # 5 pretraining (random init included), 3 COCO, 3 ADE20K, 25 classification, 25 probes
    assert len(p.runs) == 61 and {status_of(p, r) for r in p.runs} == {"done"}
    assert f"{len(p.runs)} run(s) done now" in res.stdout
    results = {r.id: read_result(p.run_dir(r)) for r in p.runs}
    trained = [r for r in results.values() if r.variant != "random-init"]
    assert all(r.metrics["top1"] > 40.0 for r in trained if r.task == "pretrain")  # 6 textures: chance is 16.7 %
    assert {r.task for r in results.values()} == {"pretrain", "coco", "ade20k", "cls", "probe"}
    # the fine-tunes of pretrained checkpoints learn: box AP clearly above 0, mIoU and top-1 well above chance
    assert all(r.metrics["coco/bbox_mAP"] > 0.1 for r in trained if r.task == "coco")
    assert all({"mIoU", "mAcc", "aAcc"} <= set(r.metrics) for r in results.values() if r.task == "ade20k")
    assert all(r.metrics["mIoU"] > 20.0 for r in trained if r.task == "ade20k")
    assert all(r.metrics["top1"] > 1.5 * 100 / r.extra["num_classes"] for r in trained if r.task == "cls")
    probes = [r for r in results.values() if r.task == "probe"]  # every smoke checkpoint on every data set
    assert len(probes) == 25 and all(r.metrics["linear_top1"] > 1.5 * 100 / r.extra["num_classes"] for r in probes)
    for name in ("pretrain", "table4", "table5", "table6", "probe"):
        for fmt in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{fmt}").stat().st_size > 0
    assert "| ViT-T      | early dropout |" in (out / "tables" / "table4.md").read_text()
    assert "(no results)" not in res.stdout
    # the ranking that makes the smoke tables measure transfer, read from the printed tables: in Tables 4-6 and the
    # probe table every pretrained row is above the random-init row on every column, by a paired bootstrap interval
    # that excludes 0 (a generator or recipe change that lets untrained weights catch up fails here)
    for name in ("table4", "table5", "table6", "probe"):
        table = pd.read_csv(out / "tables" / f"{name}.csv")
        lows = [c for c in table.columns if c.endswith(" gain_low")]
        assert lows and (table["variant"] == "random-init").sum() == 1, (name, list(table.columns))
        rows = table[table["variant"] != "random-init"]
        assert len(rows) >= 2, name
        losing = {(v, c[:-len(" gain_low")]): g for v, row in zip(rows["variant"], rows.to_dict("records"))
                  for c in lows if not row[c] > 0 for g in [row[c.replace(" gain_low", " gain")]]}
        assert not losing, f"{name}: pretrained rows not above random init (gain, interval not above 0): {losing}"
        md = (out / "tables" / f"{name}.md").read_text()
        assert "| random init   |" in md and re.search(r" vs random init +\|", md), md
    # every difference carries its paired bootstrap interval (every run kept its per-sample outputs)
    assert all(r.extra.get("samples") for r in results.values())
    for name in ("pretrain", "table4", "table5", "table6", "probe"):
        text = (out / "tables" / f"{name}.md").read_text()
        assert " ci_low " in text and " p " in text and "B = 1000; one seed per row" in text, text
        assert "show the difference alone" not in text and "without intervals" not in text
        assert r"\scriptsize[" in (out / "tables" / f"{name}.tex").read_text()
    # provenance: every result says its data was generated (fine-tunes: their pretraining's ImageNet too), and every
    # table's caption names the generated data sets
    for r in results.values():
        expected = {r.dataset} | ({"imagenet"} if r.task != "pretrain" else set())
        assert {k for k, v in r.data.items() if v["kind"] == "generated"} == expected, r.run_dir
        assert r.data[r.dataset]["fingerprint"]["files"] > 0
    assert "Generated data (dropbench's stand-ins, not the real data sets, not comparable with the paper): " \
           "ade20k, imagenet." in (out / "tables" / "table5.md").read_text()
    assert "cifar100, flowers102, food101, imagenet, pets, stl10." in (out / "tables" / "table6.tex").read_text()
    # make demo's second command: the report, random-init rows included
    res = subprocess.run([*CLI, "report", "--results", str(out)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "| ViT-T      | random init   |" in (out / "report" / "report.md").read_text()


@pytest.mark.slow
def test_one_sigterm_stops_a_pretraining_suite_and_a_second_suite_is_refused(tmp_path):
    """The issue's case: `timeout` signals the whole process group, data-loader workers included. The first SIGTERM
    used to kill the workers, fail the run and let the suite go on; now it checkpoints and stops within seconds."""
    path = preset(tmp_path, epochs=50)
    path.write_text(path.read_text().replace("'data.num_workers': 0", "'data.num_workers': 2"))
    out = tmp_path / "out"
    cmd = [*CLI, "suite", "run", "--preset", str(path), "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    run = out / "runs" / "pretrain" / "vit_tiny" / "baseline"
    try:
        deadline = time.time() + 300
        while not (run / "checkpoint-0.pth").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None and (run / "checkpoint-0.pth").exists()
        # a second suite on the folder is refused, naming the first (the CLI exits 2 on a FileExistsError)
        with pytest.raises(FolderInUse, match=f"{out} is in use by pid {proc.pid} on .*suite run.*--wait"):
            run_suite(plan(path, out), progress=False)
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        elapsed = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = proc.stderr.read()
    assert proc.returncode == 143, stderr[-2000:]
    assert elapsed < 15, f"stopped {elapsed:.1f} s after SIGTERM"
    assert "stopped by SIGTERM" in stderr and "checkpoint saved" in stderr
    assert not (run / "result.json").exists()  # stopped, not failed: resumable
    assert not (out / "runs" / "pretrain" / "vit_tiny" / "early-sd").exists()  # the suite did not go on
    assert load_checkpoint_file(run / "checkpoint.pth")["iteration"] > 0


def test_plan_names_an_unreadable_result_and_the_run_is_not_done(tmp_path):
    from dropbench.benchmarks.results import RunResult, write_result
    from dropbench.benchmarks.suite import _prepare_folder

    p = plan(preset(tmp_path), tmp_path / "out")
    run = p.runs[0]
    folder = _prepare_folder(p, run)
    write_result(RunResult(task="pretrain", dataset="imagenet", model="vit_tiny", metrics={"top1": 50.0}, config={},
                           config_hash="h"), folder)
    assert status_of(p, run) == "done"
    (folder / "result.json").write_text("{\"task\": \"pre")  # truncated
    assert status_of(p, run) == "partial"  # not done: `suite run` redoes (resumes) it
    assert f"warning: {folder / 'result.json'} is not valid JSON" in describe(p)
