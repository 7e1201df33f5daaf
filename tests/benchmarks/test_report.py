"""The report: schedule figure from the runs' metadata, pretraining curves from their logs, tables."""

from __future__ import annotations

import json

from dropbench.benchmarks.report import write_report
from dropbench.benchmarks.results import RunResult, write_result
from PIL import Image


def test_report_draws_schedules_curves_and_tables(tmp_path):
    for variant, meta in (("baseline", dict(drop_kind="none", drop_rate=0.0, drop_mode="standard")),
                          ("early-dropout", dict(drop_kind="dropout", drop_rate=0.1, drop_mode="early",
                                                 drop_schedule="linear", cutoff_epoch=1))):
        run_dir = tmp_path / "runs" / variant
        run_dir.mkdir(parents=True)
        (run_dir / "log.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": 2.0 - e / 10,
                                                               "val_top1": 10.0 * e}) + "\n" for e in range(3)))
        meta = {"model": "vit_tiny", "epochs": 3, "drop_schedule": "constant", "cutoff_epoch": 0, **meta}
        write_result(RunResult(task="pretrain", dataset="imagenet", model="vit_tiny", metrics={"top1": 20.0},
                               config={}, config_hash="h", variant=variant, pretrain=meta,
                               log_path=str(run_dir / "log.jsonl")), run_dir)
    report = write_report(tmp_path)
    text = report.read_text()
    assert "![schedules](schedules.png)" in text and "![pretrain_vit_tiny](pretrain_vit_tiny.png)" in text
    assert "| ViT-T      | early dropout | 20.0    | +0.0          | 74.3            |" in text
    assert "![differences, pretrain](deltas_pretrain.png)" in text
    for name in ("schedules.png", "pretrain_vit_tiny.png", "deltas_pretrain.png"):
        with Image.open(report.parent / name) as im:
            assert im.size[0] > 300
