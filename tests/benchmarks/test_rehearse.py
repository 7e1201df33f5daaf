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


def test_on_a_gpu_the_generated_sets_hold_two_batches_of_the_recipes_and_memory_is_checked():
    """A GPU rehearsal keeps the recipes' per-GPU batches (so the peak memory it reports is the real run's): every set
    dropbench's own loop reads holds two of them; a run whose peak passes the limit fails its row."""
    from dropbench.benchmarks.rehearse import MEMORY_LIMIT, memory_check
    from dropbench.pretrain.config import load_config, resolve_config

    cfg, reductions = rehearsal_preset("paper", cpu=False)
    assert reductions == {} and "model.kwargs" not in str(cfg.pretrain.runs)  # no CPU reduction on a GPU
    imagenet = cfg.synth["imagenet"]
    assert imagenet["num_classes"] * imagenet["train_per_class"] >= 2 * load_config(
        resolve_config("pretrain", cfg.pretrain.config)).data.batch_size
    transfer = load_config(resolve_config("cls", cfg.finetune.cls.config))
    for dataset in cfg.finetune.cls.datasets:
        batch = transfer.per_dataset.get(dataset, {}).get("data", {}).get("batch_size", transfer.data.batch_size)
        opts = cfg.synth[dataset]
        assert opts["drawn_classes"] * opts["train_per_class"] >= 2 * batch, dataset
    fits = {"device": "H100", "total_gib": 79.2, "peak_allocated_gib": 30.0, "peak_reserved_gib": 31.5}
    assert memory_check(fits) == ("GPU peak 31.5 of 79.2 GiB (H100)", "")
    shown, error = memory_check({**fits, "peak_reserved_gib": round(79.2 * MEMORY_LIMIT + 0.5, 1)})
    assert shown.startswith("GPU peak 75.7 of 79.2") and "lower data.batch_size" in error
    assert memory_check(None) == ("", "")


def test_on_a_cpu_the_first_run_of_a_group_goes_through_the_full_path_and_the_others_straight(tmp_path):
    """The paper preset's rehearsal plan on a CPU: ViT-B and Mixer-B pretrain at 2 blocks; in each group of runs of one
    task, model and data set the first is stopped and resumed (ADE20K: multi-scale), the others run straight."""
    from dropbench.benchmarks.rehearse import _straight_repeats
    from dropbench.benchmarks.suite import plan

    cfg, _ = rehearsal_preset("paper", cpu=True)
    runs, repeats = _straight_repeats(plan(cfg, tmp_path, seeds=1).runs)
    by = {r.id: r for r in runs}
    assert by["pretrain/vit_base/late-sd"].cfg_options["model.kwargs"] == {"depth": 2}
    assert by["pretrain/mixer_b16/standard-sd"].cfg_options["model.kwargs"] == {"num_blocks": 2}
    assert "model.kwargs" not in by["pretrain/swin_femto/baseline"].cfg_options
    assert not any(r.startswith("pretrain/") for r in repeats)

    def stops(run_id: str) -> bool:
        opts = by[run_id].cfg_options
        return ("runtime.stop_at_iter" in opts
                or any(dict(h)["type"] == "RehearsalStop" for h in opts.get("custom_hooks", [])))

    first, other = "ade20k/swin_femto/random-init/seed0", "ade20k/swin_femto/early-sd/seed0"
    assert stops(first) and "test_multi_scale" not in by[first].cfg_options and first not in repeats
    assert not stops(other) and by[other].cfg_options["test_multi_scale"] is False and repeats[other] == first
    assert by[other].cfg_options["custom_hooks"] == by[first].cfg_options["custom_hooks"][:-1]  # the recipe's stay
    assert stops("cls/food101/vit_base/random-init/seed0") and not stops("cls/food101/vit_base/late-sd/seed0")
    assert not stops("coco/convnext_femto/baseline/seed0") and stops("coco/convnext_femto/random-init/seed0")
    groups = {(r.task, r.model, r.dataset) for r in runs if r.task != "pretrain"}
    assert len(runs) - len(repeats) == 17 + len(groups)  # every pretraining run, and one run per group in full


@pytest.mark.slow
def test_rehearsal_runs_every_task_through_its_full_path(tmp_path, capfd):
    report = rehearse("paper", tmp_path, runs=list(reversed(RUNS)))  # in plan order whatever order they are given
    console = "".join(capfd.readouterr())
    assert "Config:" not in console  # mmengine's environment and config dump: the run's log file only
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
        # a finished fine-tune's checkpoints are deleted, the pretraining checkpoint stays for later fine-tunes
        assert (folder / "checkpoint.pth").exists() if row["task"] == "pretrain" else not list(folder.glob("*.pth"))
        if row["task"] in ("coco", "ade20k"):
            # resumed from the first checkpoint: the second part trains the rest
            first = "epoch_1.pth" if row["task"] == "coco" else "iter_1.pth"
            assert read_result(folder).extra["resumed_from"].endswith(first), row
    epochs = [json.loads(line)["epoch"] for line in
              (tmp_path / "runs" / "pretrain/swin_femto/baseline" / "log.jsonl").read_text().splitlines()]
    assert epochs == [0, 1]  # the resumed run finished the interrupted epoch 0 and ran epoch 1
    cls_log = (tmp_path / "runs" / f"{RUNS[2]}/seed0" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in cls_log] == [2]  # runtime.max_iters_per_epoch: one epoch of 2
    ade = read_result(tmp_path / "runs" / f"{RUNS[1]}/seed0")
    assert {"mIoU", "mIoU_ms"} <= set(ade.metrics) and ade.config["test_multi_scale"]
    coco = tmp_path / "runs" / f"{RUNS[0]}/seed0"
    assert read_result(coco).config["train_cfg"]["max_epochs"] == 2
    # two iterations leave Mask R-CNN without detections above its score threshold: mmdet's CocoMetric ran, found the
    # results empty and returned no metrics, which the row says
    assert any("Evaluating bbox" in f.read_text() for f in coco.glob("*/*.log"))
    assert all("Config:" in f.read_text() for f in coco.glob("*/*.log"))  # the config dump is in each part's log
    assert {p.name for p in report.tables} >= {"table4.md", "table5.md", "table6.md", "pretrain.md"}
    assert "4/4 runs ok" in report.render()


def test_runs_that_match_nothing_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="no run of preset paper-rehearsal starts so"):
        rehearse("paper", tmp_path / "out", runs=["cls/svhn"])
    assert not (tmp_path / "out").exists()
