"""Tables from hand-made result files: exact expected output."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from dropbench.benchmarks.results import ResultError, RunResult, collect_results, read_result, write_result
from dropbench.benchmarks.tables import TABLES, build_table, build_tables, load_reference, render
from dropbench.finetune.tasks import CLS_TITLES

REAL = {"kind": "real", "root": "/data/x", "status": "ok", "fingerprint": {"path": "/data/x", "files": 3, "bytes": 9}}



def _add(root, task, dataset, model, variant, metrics, seed=0, status="ok", recipe=None, pretrain_recipe=None,
         drop_path=None, data="real"):
    extra = {"recipe": recipe} if recipe else {}
    if drop_path is not None:
        extra["hparams"] = {"drop_path": drop_path}
    provenance = {dataset: dict(REAL, kind=data)} if data else {}
    r = RunResult(task=task, dataset=dataset, model=model, metrics=metrics, config={}, config_hash="h",
                  variant=variant, seed=seed, status=status, error=None if status == "ok" else "boom",
                  extra=extra, pretrain={"recipe": pretrain_recipe} if pretrain_recipe else {}, data=provenance)
    write_result(r, root / f"{task}-{dataset}-{model}-{variant}-{seed}")


@pytest.fixture()
def results(tmp_path):
    how = dict(recipe="paper-3x", pretrain_recipe="basic", drop_path=0.1)
    _add(tmp_path, "coco", "coco", "swin_femto", "baseline", {"coco/bbox_mAP": 0.40, "coco/segm_mAP": 0.36}, **how)
    _add(tmp_path, "coco", "coco", "swin_femto", "early-sd", {"coco/bbox_mAP": 0.41, "coco/segm_mAP": 0.37}, **how)
    _add(tmp_path, "coco", "coco", "swin_femto", "early-sd", {"coco/bbox_mAP": 0.42, "coco/segm_mAP": 0.36}, seed=1,
         **how)
    _add(tmp_path, "coco", "coco", "swin_femto", "early-dropout", {}, status="failed")
    _add(tmp_path, "ade20k", "ade20k", "convnext_femto", "baseline", {"mIoU": 40.0, "mAcc": 50.0, "aAcc": 70.0})
    _add(tmp_path, "ade20k", "ade20k", "convnext_femto", "early-sd", {"mIoU": 41.25, "mAcc": 51.0, "aAcc": 71.0})
    _add(tmp_path, "pretrain", "imagenet", "vit_tiny", "baseline", {"top1": 70.0})
    _add(tmp_path, "pretrain", "imagenet", "vit_tiny", "early-dropout", {"top1": 71.5})
    for ds, v in zip(("cifar100", "flowers102", "pets", "stl10", "food101"), (80, 90, 85, 95, 75), strict=True):
        _add(tmp_path, "cls", ds, "vit_tiny", "baseline", {"top1": v})
    _add(tmp_path, "cls", "cifar100", "vit_tiny", "early-dropout", {"top1": 81})
    return collect_results(tmp_path)


def test_table4_markdown(results):
    text = render(build_table(results, TABLES["table4"], load_reference()), "md", "T4")
    assert text == (
        "**T4 — pretraining basic; fine-tuning paper-3x, drop path 0.1 (0.1: dropbench's choice, no source for these "
        "models); seeds 0, 1**\n\n"
        "| backbone   | pretraining   | AP box           | AP box delta   | AP mask          | AP mask delta   |\n"
        "|:-----------|:--------------|:-----------------|:---------------|:-----------------|:----------------|\n"
        "| Swin-F     | no dropout    | 40.0             | –              | 36.0             | –               |\n"
        "| Swin-F     | early s.d.    | 41.5 ± 0.7 (n=2) | +1.5           | 36.5 ± 0.7 (n=2) | +0.5            |\n"
        "\n"
        "Differences to the backbone's baseline row, without intervals: the runs have no per-sample outputs (runs "
        "from before they were kept); re-run them for paired bootstrap intervals.\n"
        "\n"
        "All data sets real.\n")


def test_table4_csv_and_tex(results):
    t = build_table(results, TABLES["table4"])
    assert render(t, "csv") == (
        "model,variant,AP box,AP box std,AP box n,AP box delta,AP mask,AP mask std,AP mask n,AP mask delta\n"
        "swin_femto,baseline,40,,1,,36,,1,\n"
        "swin_femto,early-sd,41.5,0.7071,2,1.5,36.5,0.7071,2,0.5\n")
    tex = render(t, "tex", "Table 4")
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert r"\caption{Table 4 — pretraining basic; fine-tuning paper-3x, drop path 0.1" in tex
    assert "seeds 0, 1. Differences to the backbone's baseline row, without intervals: the runs have no " in tex
    assert r"re-run them for paired bootstrap intervals. All data sets real.}" in tex
    assert r"Swin-F & early s.d. & 41.5 $\pm$ 0.7 (n=2) (+1.5) & 36.5 $\pm$ 0.7 (n=2) (+0.5) \\" in tex


def test_table5_and_pretraining_table_with_paper_figures(results):
    t5 = render(build_table(results, TABLES["table5"]), "csv")
    assert t5 == ("model,variant,mIoU,mIoU n,mIoU delta\n"
                  "convnext_femto,baseline,40,1,\n"
                  "convnext_femto,early-sd,41.25,1,1.25\n")
    pre = render(build_table(results, TABLES["pretrain"], load_reference()), "md")
    assert "| ViT-T      | early dropout | 71.5    | +1.5          | 74.3            |" in pre
    assert "| ViT-T      | no dropout    | 70.0    | –             | 73.9            |" in pre


def test_pretraining_table_takes_the_runs_recipe_and_late_sd_baseline(tmp_path):
    _add(tmp_path, "pretrain", "imagenet", "vit_tiny", "baseline", {"top1": 76.0}, recipe="improved")
    _add(tmp_path, "pretrain", "imagenet", "swin_femto", "baseline", {"top1": 74.0}, recipe="smoke")
    _add(tmp_path, "pretrain", "imagenet", "vit_base", "standard-sd", {"top1": 81.0}, recipe="basic")
    _add(tmp_path, "pretrain", "imagenet", "vit_base", "late-sd", {"top1": 82.0}, recipe="basic")
    t = build_table(collect_results(tmp_path), TABLES["pretrain"], load_reference())
    assert t.loc[("vit_tiny", "baseline"), ("top-1", "paper")] == 76.3  # improved recipe: its figure
    assert t.loc[("swin_femto", "baseline"), ("top-1", "paper")] == 74.3  # no figures for smoke: basic's
    assert t.loc[("vit_base", "standard-sd"), ("top-1", "paper")] == 81.6
    assert t.loc[("vit_base", "late-sd"), ("top-1", "paper")] == 82.3
    assert t.loc[("vit_base", "late-sd"), ("top-1", "delta")] == 1.0  # against standard s.d., late s.d.'s baseline


def test_differences_to_a_named_row(results):
    t = build_table(results, TABLES["table4"], baseline="early-sd")
    assert t.loc[("swin_femto", "baseline"), ("AP box", "delta")] == pytest.approx(-1.5)
    assert pd.isna(t.loc[("swin_femto", "early-sd"), ("AP box", "delta")])
    t = build_table(results, TABLES["table4"], baseline="not-a-row")  # absent: the usual baseline
    assert t.loc[("swin_femto", "early-sd"), ("AP box", "delta")] == pytest.approx(1.5)


def test_table6_mean_only_for_complete_rows(results):
    t = build_table(results, TABLES["table6"])
    assert t.loc[("vit_tiny", "baseline"), ("mean", "mean")] == 85.0
    assert pd.isna(t.loc[("vit_tiny", "early-dropout"), ("mean", "mean")])
    assert t.loc[("vit_tiny", "early-dropout"), ("C-100", "delta")] == 1.0
    text = render(t, "md", "T6")
    assert text.splitlines()[0] == "**T6 — seed 0**"
    # the paper's column titles, then the mean
    columns = [c.strip() for c in text.splitlines()[2].split("|")[3:-1]]
    assert [c for c in columns if not c.endswith((" delta", " ci_low", " ci_high", " p"))] == [
        "C-100", "Flowers", "Pets", "STL-10", "Food-101", "mean"]


def test_empty_tables_render(tmp_path):
    tables = build_tables(collect_results(tmp_path))
    assert all(t.empty for t in tables.values())
    assert render(tables["table4"], "md", "T") == "**T**\n\n(no results)\n"


def test_paper_downstream_cells_are_empty_not_invented():
    ref = pd.read_csv(__import__("dropbench.benchmarks.tables", fromlist=["REFERENCE"]).REFERENCE)
    downstream = ref[ref["table"].isin(["table4", "table5", "table6"])]
    assert len(downstream) > 0 and downstream["value"].isna().all()
    assert len(load_reference()[lambda d: d["table"] != "imagenet"]) == 0


def test_result_files_are_validated(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "result.json").write_text("{not json")
    with pytest.raises(ResultError, match="not valid JSON"):
        read_result(tmp_path / "a")
    (tmp_path / "a" / "result.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(ResultError, match="schema_version 99"):
        read_result(tmp_path / "a")
    with pytest.raises(ResultError, match="task must be"):
        RunResult(task="nope", dataset="d", model="m", metrics={}, config={}, config_hash="")
    df = collect_results(tmp_path)
    assert df.empty and len(df.attrs["problems"]) == 1


def test_generated_cells_are_marked_and_captions_name_the_generated_data(tmp_path):
    _add(tmp_path, "cls", "cifar100", "vit_tiny", "baseline", {"top1": 80})
    _add(tmp_path, "cls", "pets", "vit_tiny", "baseline", {"top1": 60}, data="generated")
    _add(tmp_path, "cls", "cifar100", "vit_tiny", "early-dropout", {"top1": 81})
    t6 = build_table(collect_results(tmp_path), TABLES["table6"])
    md = render(t6, "md", "T6")
    assert "Cells marked † come from runs on data generated by dropbench (pets;" in md
    assert "| 60.0 †" in md and "| 80.0 " in md and "80.0 †" not in md
    tex = render(t6, "tex", "T6")
    assert r"\caption{T6 — seed 0. " in tex  # the recipe, the intervals' note, then the data's
    assert r"re-run them for paired bootstrap intervals. Cells marked $^\dagger$ come from runs on data generated by " \
           r"dropbench (pets;" in tex
    assert r"60.0$^\dagger$" in tex
    assert render(t6, "csv").splitlines()[1].endswith(",Pets")  # the generated column names the row's marked cells
    # a table of generated data only says so in its caption, without marking every cell
    only = tmp_path / "only"
    _add(only, "coco", "coco", "swin_femto", "baseline", {"coco/bbox_mAP": 0.1, "coco/segm_mAP": 0.1},
         data="generated")
    t4 = render(build_table(collect_results(only), TABLES["table4"]), "md", "T4")
    assert "Generated data (dropbench's stand-ins, not the real data sets, not comparable with the paper): coco." in t4
    assert "†" not in t4


def test_results_of_schema_1_stay_readable_and_tables_say_provenance_is_unknown(tmp_path):
    _add(tmp_path, "ade20k", "ade20k", "swin_femto", "baseline", {"mIoU": 40.0}, data=None)
    path = next(tmp_path.rglob("result.json"))
    old = json.loads(path.read_text())
    del old["data"]
    old["schema_version"] = 1
    path.write_text(json.dumps(old))
    assert read_result(path).data == {} and read_result(path).schema_version == 1
    text = render(build_table(collect_results(tmp_path), TABLES["table5"]), "md", "T5")
    assert "Data provenance not recorded for 1 run(s)" in text
    with pytest.raises(ResultError, match="kind"):
        RunResult(task="coco", dataset="coco", model="m", metrics={}, config={}, config_hash="",
                  data={"coco": {"kind": "synthetic"}})


def test_an_unreadable_result_is_named_and_its_cell_marked(tmp_path, capsys):
    """A truncated result.json used to vanish from the tables, with the deltas that depended on it, naming nothing."""
    from dropbench.benchmarks.cli import main

    for variant, top1 in (("baseline", 70.0), ("early-sd", 72.0)):
        run = tmp_path / "runs" / "cls" / "pets" / "vit_tiny" / variant / "seed0"
        write_result(RunResult(task="cls", dataset="pets", model="vit_tiny", variant=variant, metrics={"top1": top1},
                               config={}, config_hash="h"), run)
        (run / "suite_run.json").write_text(json.dumps({"task": "cls", "model": "vit_tiny", "variant": variant,
                                                        "dataset": "pets"}))
    broken = tmp_path / "runs" / "cls" / "pets" / "vit_tiny" / "baseline" / "seed0" / "result.json"
    broken.write_text(broken.read_text()[:40])
    table = build_tables(collect_results(tmp_path), None)["table6"]
    text = render(table, "md")
    assert "unreadable (1 result file)" in text and "72.0" in text and "+2.0" not in text  # no delta to a lost cell
    assert main(["tables", "--results", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: unreadable result (its cell is marked; `suite run` redoes the run): {broken} is not valid" in err
    from dropbench.benchmarks.report import write_report

    report = write_report(tmp_path).read_text()
    assert f"unreadable result (its cell is marked, the run is not done): {broken}" in report
    assert "unreadable (1 result file)" in report


def test_paper_csv_has_a_row_for_every_run_of_the_paper_preset():
    """Every (table, data set, model, variant, metric) the paper preset produces has a row, empty where the paper's
    figure was not transcribed."""
    from dropbench.benchmarks.suite import load_preset

    preset = load_preset("paper")
    ref = pd.read_csv(__import__("dropbench.benchmarks.tables", fromlist=["REFERENCE"]).REFERENCE,
                      keep_default_na=False)
    have = set(zip(ref["table"], ref["dataset"], ref["model"], ref["variant"], ref["metric"], strict=True))
    metrics = {"coco": ("table4", ["coco/bbox_mAP", "coco/segm_mAP"]), "ade20k": ("table5", ["mIoU"]),
               "cls": ("table6", ["top1"])}
    wanted = set()
    assert set(preset.finetune) - set(metrics) == {"probe"}  # the paper reports no frozen-feature probes
    for entry in preset.pretrain.runs:
        for variant in entry["variants"]:
            if variant == "random-init":  # dropbench's reference row: the paper has none
                continue
            wanted.add(("imagenet", "imagenet", entry["model"], variant, "top1"))
            for task, spec in preset.finetune.items():
                if entry["model"] not in spec["models"] or task == "probe":
                    continue
                table, names = metrics[task]
                for dataset in spec.get("datasets", [task]):
                    wanted |= {(table, dataset, entry["model"], variant, m) for m in names}
    assert len(wanted) == 87 and not wanted - have, sorted(wanted - have)  # 12 ImageNet, 15 COCO + ADE20K, 60 cls
def _add_with_samples(root, dataset, variant, seed, accuracy, n=400, samples=True):
    """A classification run whose per-sample outputs give its metrics (image i right when its difficulty allows)."""
    import numpy as np
    from dropbench.finetune.samples import ClassificationState, save_states

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    difficulty = np.random.default_rng(len(dataset)).random(n)  # the same test set for every run of the data set
    right = difficulty + rng.normal(0, 0.05, n) < accuracy
    state = ClassificationState(np.arange(n), labels, np.where(right, labels, (labels + 1) % 10)[:, None], 10)
    run = root / f"cls-{dataset}-{variant}-{seed}"
    extra = {}
    if samples:
        save_states(run / "samples.npz", {"cls": state})
        extra["samples"] = "samples.npz"
    write_result(RunResult(task="cls", dataset=dataset, model="vit_tiny", metrics=state.summary(), config={},
                           config_hash="h", variant=variant, seed=seed, extra=extra), run)


def test_intervals_beside_every_delta(tmp_path):
    datasets = ("cifar100", "flowers102", "pets", "stl10", "food101")
    for ds in datasets:
        for seed in (0, 1):
            _add_with_samples(tmp_path, ds, "baseline", seed, 0.70)
            _add_with_samples(tmp_path, ds, "early-dropout", 10 + seed, 0.80)
            _add_with_samples(tmp_path, ds, "early-sd", 20 + seed, 0.70, samples=ds != "pets")
    t = build_table(collect_results(tmp_path), TABLES["table6"], n_boot=300)
    row = t.loc[("vit_tiny", "early-dropout")]
    titles = {d: CLS_TITLES[d] for d in datasets}  # Table 6's columns, as the paper heads them
    for title in (*titles.values(), "mean"):
        assert row[(title, "ci_low")] < row[(title, "delta")] < row[(title, "ci_high")]
        assert row[(title, "ci_low")] > 0 and row[(title, "p")] < 0.05  # a 10-point gain on 400 images
    # the mean's interval is narrower than a single data set's (five independent test sets)
    width = {k: row[(k, "ci_high")] - row[(k, "ci_low")] for k in ("C-100", "mean")}
    assert width["mean"] < width["C-100"]
    sd = t.loc[("vit_tiny", "early-sd")]
    assert pd.isna(sd[("Pets", "ci_low")]) and pd.isna(sd[("mean", "ci_low")]) and not pd.isna(sd[("Pets", "delta")])
    assert sd[("C-100", "ci_low")] < 0 < sd[("C-100", "ci_high")]  # no real difference: 0 inside
    caption = t.attrs["caption"]
    assert "95 % paired bootstrap intervals" in caption and "B = 300" in caption and "2 seeds per row" in caption
    assert "Rows without per-sample outputs" in caption
    md = render(t, "md", "T6")
    header = md.splitlines()[2]
    assert all(f"{c} {s}" in header for c in ("C-100", "mean") for s in ("delta", "ci_low", "ci_high", "p"))
    assert caption in md
    cifar = row[("C-100", "delta")]
    assert f"| +{cifar:.1f}* " in md.splitlines()[5] or f"+{cifar:.1f}*" in md
    tex = render(t, "tex", "Table 6")
    assert (f"+{cifar:.1f}$^*$ {{\\scriptsize[{row[('C-100', 'ci_low')]:.1f}, "
            f"{row[('C-100', 'ci_high')]:.1f}]}}") in tex
    csv = render(t, "csv").splitlines()[0]
    assert "C-100 delta,C-100 ci_low,C-100 ci_high,C-100 p" in csv


def test_rows_of_any_architecture_follow_the_paper_models(tmp_path):
    """An evaluated timm architecture gets a row labelled with its name and the user's label, after the paper models'
    rows (whatever the names' alphabetical order), in the tables and the report's plots."""
    from dropbench.benchmarks.report import write_report

    _add(tmp_path, "ade20k", "ade20k", "convnext_tiny", "mine", {"mIoU": 30.0, "mAcc": 40.0, "aAcc": 60.0})
    _add(tmp_path, "ade20k", "ade20k", "swin_femto", "baseline", {"mIoU": 40.0, "mAcc": 50.0, "aAcc": 70.0})
    _add(tmp_path, "ade20k", "ade20k", "swin_femto", "early-sd", {"mIoU": 41.0, "mAcc": 51.0, "aAcc": 71.0})
    _add(tmp_path, "ade20k", "ade20k", "convnext_tiny", "zz-base", {"mIoU": 31.0, "mAcc": 41.0, "aAcc": 61.0})
    _add(tmp_path, "ade20k", "ade20k", "aaa_net", "mine", {"mIoU": 20.0, "mAcc": 30.0, "aAcc": 50.0})
    table = build_table(collect_results(tmp_path), TABLES["table5"], baseline="zz-base")
    assert list(table.index) == [("swin_femto", "baseline"), ("swin_femto", "early-sd"), ("aaa_net", "mine"),
                                 ("convnext_tiny", "mine"), ("convnext_tiny", "zz-base")]
    assert table.loc[("convnext_tiny", "mine"), ("mIoU", "delta")] == pytest.approx(-1.0)
    rows = [line.split("|")[1:3] for line in render(table, "md", "T5").splitlines() if line.startswith("| ")][1:]
    assert [(b.strip(), v.strip()) for b, v in rows] == [("Swin-F", "no dropout"), ("Swin-F", "early s.d."),
                                                          ("aaa_net", "mine"), ("convnext_tiny", "mine"),
                                                          ("convnext_tiny", "zz-base")]
    report = write_report(tmp_path, tmp_path / "report").read_text()
    assert "convnext_tiny" in report and (tmp_path / "report" / "deltas_table5.png").is_file()


def test_random_init_row_comes_first_and_every_row_has_its_gain_over_it(tmp_path):
    """A backbone's ``random init`` row (the recipe from untrained weights) is the first row, and every other row gets
    its gain over it with a paired interval, beside the differences to the baseline row."""
    for ds in ("cifar100", "flowers102", "pets", "stl10", "food101"):
        _add_with_samples(tmp_path, ds, "random-init", 0, 0.40)
        _add_with_samples(tmp_path, ds, "baseline", 1, 0.70)
        _add_with_samples(tmp_path, ds, "early-dropout", 2, 0.71)
    t = build_table(collect_results(tmp_path), TABLES["table6"], n_boot=300)
    assert list(t.loc["vit_tiny"].index) == ["random-init", "baseline", "early-dropout"]
    assert pd.isna(t.loc[("vit_tiny", "random-init"), ("C-100", "gain")])
    for v in ("baseline", "early-dropout"):
        row = t.loc[("vit_tiny", v)]
        assert row[("C-100", "gain")] == pytest.approx(row[("C-100", "mean")] - t.loc[("vit_tiny", "random-init"),
                                                                                     ("C-100", "mean")])
        assert 0 < row[("C-100", "gain_low")] < row[("C-100", "gain")] < row[("C-100", "gain_high")]
        assert 0 < row[("mean", "gain_low")] and row[("mean", "gain_p")] < 0.05
    # the baseline differences are unchanged by the reference row: early dropout's +1 is not a real difference
    ed = t.loc[("vit_tiny", "early-dropout")]
    assert ed[("C-100", "ci_low")] < 0 < ed[("C-100", "ci_high")]
    md = render(t, "md", "T6")
    lines = md.splitlines()
    assert "| C-100 vs random init " in lines[2] and "| random init " in lines[4]
    gain = t.loc[("vit_tiny", "baseline"), ("C-100", "gain")]
    assert f"+{gain:.1f}* [" in lines[5]
    assert "C-100 gain,C-100 gain_low,C-100 gain_high,C-100 gain_p" in render(t, "csv").splitlines()[0]
    assert "vs random init" in render(t, "tex", "Table 6")


def test_an_interval_end_that_rounds_to_zero_shows_no_minus_sign():
    from dropbench.benchmarks.tables import _bounds

    assert _bounds(-0.04, -0.01, tex=False) == ("0.0", "0.0")
    assert _bounds(-0.5, 0.2, tex=False) == ("−0.5", "0.2") and _bounds(-0.5, -0.04, tex=True) == ("$-$0.5", "0.0")
