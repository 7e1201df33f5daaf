"""The rehearsal of the paper preset, reduced to one run of every task with its full evaluation path: one pretraining
run (stopped after its first checkpoint, resumed), one COCO paper-3x, one ADE20K paper-160k with its multi-scale +
flip evaluation, one classification transfer run, then the tables; on realistic generated data."""

from __future__ import annotations

import json

import pytest
from dropbench.benchmarks.rehearse import rehearsal_preset, rehearse
from dropbench.benchmarks.results import read_result

pytest.importorskip("mmdet")
pytest.importorskip("mmseg")
pytestmark = pytest.mark.usefixtures("one_thread")

# Swin-F carries every task; STL-10 is the cheapest classification set at its native size (96 px, 10 classes)
RUNS = ["coco/swin_femto/baseline", "ade20k/swin_femto/baseline", "cls/stl10/swin_femto/baseline"]


def test_rehearsal_preset_keeps_the_recipes_and_replaces_lengths_and_data():
    cfg, reductions = rehearsal_preset("paper", cpu=True)
    assert cfg.seeds == [0] and all(v is None for v in cfg.data.values())
    assert cfg.finetune.coco.config == "paper-3x" and cfg.finetune.ade20k.config == "paper-160k"
    assert cfg.finetune.cls.config == "transfer" and cfg.pretrain.config == "basic"
    assert all(opts["realistic"] for opts in cfg.synth.values())
    assert cfg.finetune.ade20k.cfg_options["train_cfg.max_iters"] == 2
    assert cfg.finetune.ade20k.cfg_options["custom_hooks"][-1]["type"] == "RehearsalStop"
    assert all(v["cutoff_epoch"] <= 1 for v in cfg.pretrain.variants.values())
    assert reductions["ade20k"]["model.decode_head.channels"] == 64


@pytest.mark.slow
def test_rehearsal_runs_every_task_through_its_full_path(tmp_path):
    report = rehearse("paper", tmp_path, runs=list(reversed(RUNS)))  # in plan order whatever order they are given
    print(report.render())
    assert [r["run"] for r in report.rows] == ["pretrain/swin_femto/baseline", *[f"{r}/seed0" for r in RUNS]]
    assert report.ok, report.render()
    for row in report.rows:
        assert "resume" in row["stages"] and row["seconds"] > 0, row
        folder = tmp_path / "runs" / row["run"]
        assert read_result(folder).status == "ok"
        stop = ("rehearsal: stopped after" if row["task"] in ("coco", "ade20k")
                else "stopped by runtime.stop_at_iter at iteration 1")
        assert stop in (folder / "run.log").read_text(), row  # the first part ended there, the second resumed
        if row["task"] in ("coco", "ade20k"):
            assert read_result(folder).extra["resumed_from"], row
    epochs = [json.loads(line)["epoch"] for line in
              (tmp_path / "runs" / "pretrain/swin_femto/baseline" / "log.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]  # the resumed run finished the interrupted epoch 0 and ran epoch 1
    ade = read_result(tmp_path / "runs" / f"{RUNS[1]}/seed0")
    assert {"mIoU", "mIoU_ms"} <= set(ade.metrics) and ade.config["test_multi_scale"]
    coco = tmp_path / "runs" / f"{RUNS[0]}/seed0"
    assert read_result(coco).config["train_cfg"]["max_epochs"] == 2
    # two iterations leave Mask R-CNN without detections above its score threshold: mmdet's CocoMetric ran, found the
    # results empty and returned no metrics, which the row says
    assert any("Evaluating bbox" in f.read_text() for f in coco.glob("*/*.log"))
    assert {p.name for p in report.tables} >= {"table4.md", "table5.md", "table6.md", "pretrain.md"}
    assert "4/4 runs ok" in report.render()
