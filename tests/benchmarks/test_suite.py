"""Suite planning, skipping, failure isolation and resume, on a tiny pretraining-only preset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dropbench.benchmarks.results import read_result
from dropbench.benchmarks.suite import describe, plan, run_suite, status_of

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "dropbench.benchmarks.cli"]  # the `dropbench` command, run from this checkout

MINI = """
preset = 'mini'
seeds = [0]
data = dict(imagenet=None)
synth = dict(imagenet=dict(num_classes=4, train_per_class=16, val_per_class=4, size=32))
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


def test_paper_preset_plans_the_late_sd_baselines_under_the_baseline_name(tmp_path):
    """ViT-B's and Mixer-B's standard s.d. run at late s.d.'s rate, named ``standard-sd`` so the tables find it."""
    p = plan("paper", tmp_path / "out")
    by = p.by_id()
    assert by["pretrain/vit_base/standard-sd"].drop["rate"] == 0.4
    assert by["pretrain/vit_tiny/baseline"].drop["kind"] == "none"
    assert {r.variant for r in p.runs if r.model == "mixer_b16"} == {"standard-sd", "late-sd"}
    assert not any(r.task in ("coco", "ade20k") and r.model.startswith("mixer") for r in p.runs)
    assert len({r.key for r in p.runs}) == len(p.runs)


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


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    """`make demo`'s job: every pretraining variant and every downstream task on generated data, then the tables."""
    out = tmp_path / "smoke"
    res = subprocess.run([*CLI, "suite", "run", "--preset", "smoke", "--out",
                          str(out), "--no-progress"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    p = plan("smoke", out)
    assert len(p.runs) == 36 and {status_of(p, r) for r in p.runs} == {"done"}
    assert f"{len(p.runs)} run(s) done now" in res.stdout
    results = {r.id: read_result(p.run_dir(r)) for r in p.runs}
    pretrain = [r for r in results.values() if r.task == "pretrain"]
    assert all(r.metrics["top1"] > 25.0 for r in pretrain)  # 10 generated classes: chance is 10 %
    assert {r.task for r in results.values()} == {"pretrain", "coco", "ade20k", "cls"}
    # the fine-tunes learn: box AP clearly above 0, mIoU well above chance (8 region classes), top-1 above chance
    assert all(r.metrics["coco/bbox_mAP"] > 0.1 for r in results.values() if r.task == "coco")
    assert all({"mIoU", "mAcc", "aAcc"} <= set(r.metrics) for r in results.values() if r.task == "ade20k")
    assert all(r.metrics["mIoU"] > 25.0 for r in results.values() if r.task == "ade20k")
    assert all(r.metrics["top1"] > 1.5 * 100 / r.extra["num_classes"] for r in results.values() if r.task == "cls")
    for name in ("pretrain", "table4", "table5", "table6"):
        for fmt in ("md", "tex", "csv"):
            assert (out / "tables" / f"{name}.{fmt}").stat().st_size > 0
    assert "| Swin-F     | early s.d.    |" in (out / "tables" / "table4.md").read_text()
    assert "(no results)" not in res.stdout
