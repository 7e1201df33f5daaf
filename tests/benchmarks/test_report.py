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
    # the random-init reference row (0 epochs; its log holds the one evaluation, as write_random_init writes it):
    # tabulated and drawn as a point, not scheduled
    rand = dict(drop_kind="none", drop_rate=0.0, drop_mode="standard", drop_schedule="constant", cutoff_epoch=0)
    run_dir = tmp_path / "runs" / "random-init"
    run_dir.mkdir(parents=True)
    (run_dir / "log.jsonl").write_text(json.dumps({"epoch": -1, "val_top1": 10.0, "val_loss": 2.3}) + "\n")
    write_result(RunResult(task="pretrain", dataset="imagenet", model="vit_tiny", metrics={"top1": 10.0}, config={},
                           config_hash="r", variant="random-init", pretrain={"model": "vit_tiny", "epochs": 0, **rand},
                           log_path=str(run_dir / "log.jsonl")), run_dir)
    report = write_report(tmp_path)
    text = report.read_text()
    assert "| ViT-T      | random init   | 10.0    | −10.0         | –                      |" in text
    assert "![schedules](schedules.png)" in text and "![pretrain_vit_tiny](pretrain_vit_tiny.png)" in text
    assert "| ViT-T      | early dropout | 20.0    | +0.0          | +10.0                  | 74.3            |" in text
    assert "![differences, pretrain](deltas_pretrain.png)" in text
    for name in ("schedules.png", "pretrain_vit_tiny.png", "deltas_pretrain.png"):
        with Image.open(report.parent / name) as im:
            assert im.size[0] > 300


def test_report_plots_probe_against_fine_tuned_top1_with_spearman(tmp_path):
    fine = {("vit_tiny", "baseline"): 60.0, ("vit_tiny", "late-sd"): 70.0, ("swin_femto", "baseline"): 65.0,
            ("swin_femto", "early-sd"): 80.0}
    knn = {("vit_tiny", "baseline"): 30.0, ("vit_tiny", "late-sd"): 35.0, ("swin_femto", "baseline"): 40.0,
           ("swin_femto", "early-sd"): 45.0}
    for (model, variant), top1 in fine.items():
        for task, metrics in (("cls", {"top1": top1}), ("probe", {"knn_top1": knn[(model, variant)],
                                                                  "linear_top1": top1 - 10})):
            write_result(RunResult(task=task, dataset="pets", model=model, metrics=metrics, config={}, config_hash="h",
                                   variant=variant), tmp_path / "runs" / task / model / variant)
    text = write_report(tmp_path).read_text()
    # kNN ranks the four (1, 2, 3, 4) where fine-tuning has (1, 3, 2, 4): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert ("Spearman rank correlation with fine-tuned top-1 across 4 (model, variant, data set): kNN 0.80, "
            "linear 1.00.") in text
    assert "![probe vs fine-tuning](probe_vs_finetune.png)" in text
    with Image.open(tmp_path / "report" / "probe_vs_finetune.png") as im:
        assert im.size[0] > 300
