"""``dropbench``: one command, a subcommand per stage. Each parses, calls one library function, prints its summary."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("dropbench")

_EPILOG = """stages:
  data       check data roots (layout, official split sizes, a decoded sample), or generate stand-ins
  pretrain   ImageNet pretraining with early / late / standard dropout or stochastic depth
  convert    normalise any checkpoint (dropbench, the paper's, timm, safetensors, hub folder) to a timm state dict
  finetune   fine-tune a checkpoint on a downstream task ({tasks})
  suite      plan / run a preset: every pretraining variant and fine-tune, then Tables 4-6
  evaluate   run every downstream task (or --tasks) for one new checkpoint, beside the suite's rows
  tables     build the tables from result files (md, tex, csv)
  report     figures and tables in one Markdown report
  doctor     print the stack and check each task on the devices seen (mmcv's CUDA ops on a GPU)
run `dropbench <stage> --help` for the options of each."""


def _submit(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.cli import main as entry  # by its package name, also under `python -m`: pickled by name
    from dropbench.pretrain.launch import submit_slurm

    job = submit_slurm(entry, [args.command, *args.stage_argv], args)
    print(f"submitted SLURM job {job.job_id}; its logs go to {args.out}/slurm")
    return 0


def _print_result(result) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"task": result.task, "model": result.model, "variant": result.variant,
                          "metrics": result.metrics, "wall_time_s": round(result.wall_time_s, 1),
                          "result": f"{result.run_dir}/result.json"}, indent=2))


def _cmd_pretrain(args: argparse.Namespace) -> int:
    if args.slurm:
        return _submit(args)
    from dropbench.benchmarks.datacheck import stage_preflight
    from dropbench.benchmarks.runs import pretrain_run, run_and_record
    from dropbench.pretrain.data import PRETRAIN_DATASET
    from dropbench.pretrain.train import build_config

    cfg = build_config(args)
    data: dict = {}  # the data's provenance, filled by the preflight at the start of the stage (a failure is recorded)

    def stage():
        data.update(stage_preflight(PRETRAIN_DATASET, args.data))
        return pretrain_run(cfg, args.out, args.resume, recipe=args.config)

    result = run_and_record("pretrain", PRETRAIN_DATASET, cfg.model.name, args.out, stage, data=data)
    _print_result(result)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from dropbench.finetune.convert import convert_checkpoint

    report = convert_checkpoint(args.checkpoint, args.model, args.out, use_ema=args.ema, img_size=args.img_size)
    if report.architecture and not args.model:
        print(f"model: {report.architecture} (named by the checkpoint)")
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    if args.slurm:
        return _submit(args)
    from dropbench.benchmarks.runs import run_task
    from dropbench.finetune.convert import resolve_model
    from dropbench.finetune.tasks import Job, get_task

    model = resolve_model(args.checkpoint, args.model)
    if get_task(args.task).dense:  # a model that cannot make the pyramid: refused before the data is checked
        from dropbench.finetune.backbone import check_dense

        check_dense(model, args.checkpoint)
    job = Job(model=model, checkpoint=args.checkpoint, data=args.data,
              out=args.out, dataset=args.dataset, config=args.config, cfg_options=dict(args.cfg_options or {}),
              seed=args.seed, resume=args.resume, launcher=args.launcher, use_ema=args.ema)
    _print_result(run_task(args.task, job, preflight=True))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from dropbench.finetune.tasks import get_task

    out = get_task(args.synth_task).write_synth(args.out, dataset=args.dataset, seed=args.seed)
    print(f"wrote a generated {args.synth_task} set to {out}")
    return 0


def _parse_roots(items: list[str]) -> dict[str, str]:
    roots = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--data-root takes NAME=PATH pairs (e.g. imagenet=/data/imagenet), got {item!r}")
        name, path = item.split("=", 1)
        roots[name] = path
    return roots


def _print_tables(results_dir: Path, fmt: str = "md", baseline: str | None = None) -> dict:
    from dropbench.benchmarks.results import collect_results
    from dropbench.benchmarks.tables import TABLES, build_tables, load_reference, render

    results = collect_results(results_dir)
    tables = build_tables(results, load_reference(), baseline=baseline)
    for name, table in tables.items():
        print(render(table, fmt, TABLES[name].title))
    _warn_unreadable(results)
    return tables


def _warn_unreadable(results) -> None:
    for problem in results.attrs.get("problems", []):
        print(f"warning: unreadable result (its cell is marked; `suite run` redoes the run): {problem}",
              file=sys.stderr)


def _finish_suite(plan, report, baseline: str | None = None) -> int:
    from dropbench.benchmarks.suite import index
    from dropbench.benchmarks.tables import write_tables

    if plan.out.joinpath("runs").exists():
        index(plan.out)
        tables = _print_tables(plan.out / "runs", baseline=baseline)
        written = write_tables(tables, plan.out / "tables")
        print(f"tables written to {plan.out / 'tables'} ({len(written)} files)")
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_suite(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.suite import check_data, describe, load_preset, plan, run_suite

    preset = load_preset(args.preset)
    out = args.out or Path("results") / Path(args.preset).stem
    suite_plan = plan(preset, out, _parse_roots(args.data_root), seeds=args.seeds)
    if args.suite_command == "plan":
        reports = check_data(suite_plan)
        print(describe(suite_plan, reports))
        return 2 if any(r.status in ("error", "missing") for r in reports) else 0
    print(describe(suite_plan).splitlines()[0])
    report = run_suite(suite_plan, preset, executor=args.executor, jobs=args.jobs, progress=not args.no_progress,
                       wait=args.wait)
    return _finish_suite(suite_plan, report)


def _cmd_rehearse(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.rehearse import rehearse

    out = args.out or Path("results") / f"{Path(args.preset).stem}-rehearsal"
    report = rehearse(args.preset, out, runs=args.runs, progress=not args.no_progress,
                      keep_checkpoints=args.keep_checkpoints)
    print(report.render())
    return 0 if report.ok else 1


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.suite import describe, load_preset, plan, run_suite

    preset = load_preset(args.preset)
    suite_plan = plan(preset, args.out, _parse_roots(args.data_root), seeds=args.seeds, checkpoint=args.checkpoint,
                      model=args.model, label=args.label, tasks=args.tasks)
    print(describe(suite_plan).splitlines()[0])
    report = run_suite(suite_plan, preset, executor=args.executor, jobs=args.jobs, progress=not args.no_progress,
                       wait=args.wait)
    return _finish_suite(suite_plan, report, baseline=args.baseline)


def _cmd_tables(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.results import collect_results
    from dropbench.benchmarks.tables import TABLES, build_tables, load_reference, render

    root = Path(args.results)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    results = collect_results(root)
    _warn_unreadable(results)
    tables = build_tables(results, load_reference(), intervals=not args.no_intervals, n_boot=args.boot,
                          baseline=args.baseline)
    text = "\n".join(render(t, args.format, TABLES[name].title) for name, t in tables.items())
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _rows(results, selector: str, task: str | None, dataset: str | None, root: Path) -> list[str]:
    """The result.json paths of one table row ``MODEL:VARIANT`` of a results folder (every seed, in seed order)."""
    model, sep, variant = selector.partition(":")
    if not sep:
        raise ValueError(f"with --results, name a row as MODEL:VARIANT (e.g. vit_tiny:baseline), got {selector!r}")
    rows = results[(results["model"] == model) & (results["variant"] == variant) & (results["status"] == "ok")] \
        if not results.empty else results
    if task:
        rows = rows[rows["task"] == task]
    if dataset:
        rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"{root} has no finished run of {selector}" + (f" ({task})" if task else "")
                         + (f" on {dataset}" if dataset else ""))
    kinds = sorted({f"{t}/{d}" for t, d in zip(rows["task"], rows["dataset"])})
    if len(kinds) > 1:
        raise ValueError(f"{selector} has runs of several tasks / data sets in {root} ({', '.join(kinds)}): choose "
                         f"one with --task and --dataset")
    return list(rows.sort_values("seed", kind="stable")["path"])


def _cmd_compare(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.stats import compare_runs

    if args.results:
        from dropbench.benchmarks.results import collect_results

        root = Path(args.results)
        if not root.is_dir():
            raise FileNotFoundError(f"results folder {root} does not exist")
        results = collect_results(root)
        a, b = (_rows(results, x, args.task, args.dataset, root) for x in (args.run_a, args.run_b))
        names = (args.run_a, args.run_b)
    else:
        for run in (args.run_a, args.run_b):
            if not Path(run).exists():
                raise FileNotFoundError(f"run {run} does not exist (a run folder or its result.json)")
        a, b, names = args.run_a, args.run_b, None
    comparison = compare_runs(a, b, metrics=args.metric, n_boot=args.boot, level=args.level, seed=args.seed,
                              names=names)
    print(comparison.render())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.report import write_report

    path = write_report(args.results, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.datacheck import check_roots, missing_roots_message, render_reports

    roots = _parse_roots(args.data_root)
    missing: list[str] = []
    if args.preset:
        from dropbench.benchmarks.suite import check_data, load_preset, plan

        preset = load_preset(args.preset)
        suite_plan = plan(preset, args.out or Path("results") / Path(args.preset).stem, roots,
                          allow_missing=True, keys=False)
        reports = check_data(suite_plan, sample=args.sample)
        missing = [r.dataset for r in reports if r.status == "missing"]
    elif roots:
        reports = check_roots(roots, sample=args.sample)
    else:
        raise ValueError("give --preset PRESET (its data sets) and/or --data-root NAME=PATH ... (the roots to check)")
    print(render_reports(reports), end="")
    if missing:
        print(missing_roots_message(suite_plan.preset, missing), file=sys.stderr)
    return 2 if any(r.status in ("error", "missing") for r in reports) else 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.doctor import run_doctor

    return run_doctor()


def _cmd_synth_imagenet(args: argparse.Namespace) -> int:
    from dropbench.pretrain.synth import write_synth_imagenet

    out = write_synth_imagenet(args.out, args.classes, args.train_per_class, args.val_per_class, args.size, args.seed)
    print(f"wrote a generated ImageNet-layout set to {out}")
    return 0


def _add_slurm(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SLURM (through submitit)")
    g.add_argument("--slurm", action="store_true", help="submit to SLURM instead of running here")
    g.add_argument("--nodes", type=int, default=1)
    g.add_argument("--gpus-per-node", type=int, default=8)
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--timeout-min", type=int, default=72 * 60, help="job time limit in minutes (requeued on timeout)")
    g.add_argument("--slurm-comment", default="")


def build_parser() -> argparse.ArgumentParser:
    """The whole command-line interface."""
    from dropbench.finetune.tasks import TASKS
    from dropbench.pretrain.config import CfgOptions
    from dropbench.pretrain.train import get_args_parser as pretrain_parser

    parser = argparse.ArgumentParser(
        "dropbench",
        description="Downstream transfer benchmark for early / late dropout pretraining "
        "(Liu et al., Dropout Reduces Underfitting, ICML 2023).",
        epilog=_EPILOG.format(tasks=", ".join(TASKS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)

    p = sub.add_parser("pretrain", parents=[pretrain_parser(add_help=False)], help="ImageNet pretraining",
                       description=pretrain_parser().description)
    _add_slurm(p)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("convert", help="normalise a checkpoint to a model's timm state dict",
                       description="Convert a dropbench, paper (facebookresearch/dropout) or timm checkpoint (state "
                       "dict, .safetensors, hub folder) to the timm state dict of --model, "
                       "checking that every backbone tensor fits (only the classifier "
                       "head may be dropped). Prints how many tensors were loaded, missing and unexpected.")
    p.add_argument("--checkpoint", required=True, help="input checkpoint: a file (.pth, .safetensors, ...) or a timm "
                   "hub folder (model.safetensors / pytorch_model.bin + config.json)")
    p.add_argument("--model", help="the model the checkpoint holds: a paper model (e.g. swin_femto) or any timm "
                   "architecture; optional when the file names it (hub folder, dropbench / paper checkpoint)")
    p.add_argument("--out", required=True, help="output file ({'model': timm state dict, 'pretrain': metadata})")
    p.add_argument("--ema", action="store_true", help="take the EMA weights ('model_ema')")
    p.add_argument("--img-size", type=int, help="resolution to convert for (default: the checkpoint's)")
    p.set_defaults(func=_cmd_convert)

    ft = sub.add_parser("finetune", help="fine-tune a checkpoint on a downstream task (fixed drop rates)",
                        description="Fine-tune a checkpoint (dropbench's, the paper's or timm's; see `dropbench "
                        "convert`) on a downstream task, and write RUN_DIR/result.json. Drop rates are fixed by the "
                        "recipe: no dropout scheduling.")
    ftsub = ft.add_subparsers(dest="task", metavar="<task>", required=True)
    for task in TASKS.values():
        p = ftsub.add_parser(task.name, help=task.help, description=task.help)
        if len(task.datasets) > 1:
            p.add_argument("--dataset", required=True, choices=task.datasets)
        p.set_defaults(dataset=None)  # a task of one data set: that one
        p.add_argument("--checkpoint", required=True, help="pretrained checkpoint (any layout `convert` reads: a file "
                       "or a timm hub folder)")
        p.add_argument("--model", help="paper model (e.g. swin_femto) or timm architecture the checkpoint holds; "
                       "optional when the file names it")
        p.add_argument("--data", required=True, help=task.data_help)
        p.add_argument("--config", default="smoke", help=f"recipe name or config file (configs/{task.stage}/)")
        p.add_argument("--out", required=True, help="run directory (checkpoints, logs, result.json)")
        p.add_argument("--launcher", default="none", choices=("none", "pytorch", "slurm"),
                       help="none: one process; pytorch: under torchrun; slurm: inside an srun task")
        p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
        p.add_argument("--ema", action="store_true", help="fine-tune from the checkpoint's EMA weights")
        p.add_argument("--resume", help="'auto': continue the run in --out from its latest checkpoint")
        p.add_argument("--cfg-options", nargs="+", action=CfgOptions, default={}, metavar="KEY=VALUE",
                       help="override config keys")
        _add_slurm(p)
        p.set_defaults(func=_cmd_finetune)

    suite = sub.add_parser("suite", help="plan and run a preset: pretraining -> every fine-tune -> Tables 4-6",
                           description="Run a suite preset (configs/suites/): every pretraining variant, then every "
                           "downstream fine-tune, skipping runs already done with the same config and input "
                           "checkpoint; then write the tables to OUT/tables/. Killing it and running it again loses "
                           "nothing and redoes nothing finished.")
    ssub = suite.add_subparsers(dest="suite_command", metavar="<run|plan|rehearse>", required=True)
    for name, help_text in (("run", "run what is not done yet, then write the tables"),
                            ("plan", "print the runs and which are done, without running anything")):
        p = ssub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--preset", default="smoke", help="smoke | paper | a preset file (configs/suites/)")
        p.add_argument("--out", help="suite folder (runs/, data/, tables/, index.csv; default: results/PRESET)")
        p.add_argument("--data-root", nargs="+", default=[], metavar="NAME=PATH",
                       help="real data roots, e.g. imagenet=/data/imagenet coco=/data/coco (default: generated)")
        p.add_argument("--seeds", type=int, help="fine-tuning seeds 0..K-1 (default: the preset's)")
        if name == "run":
            p.add_argument("--executor", default="local", choices=("local", "slurm"))
            p.add_argument("--jobs", type=int, default=1, help="local worker processes")
            p.add_argument("--no-progress", action="store_true")
            p.add_argument("--wait", action="store_true", help="if another process holds --out, wait for it "
                                                                "(default: exit 2 naming it)")
        p.set_defaults(func=_cmd_suite)
    p = ssub.add_parser("rehearse", help="every run of a preset for a few iterations on realistic generated data",
                        description="Rehearse a preset (benchmarks/rehearse.py): every run with the preset's recipes, "
                        "lengths and data replaced (generated sets shaped like the real ones), stopped after its "
                        "first checkpoint and resumed, evaluated, recorded; then the tables. Prints one row per run.")
    p.add_argument("--preset", default="paper", help="paper | smoke | a preset file (configs/suites/)")
    p.add_argument("--out", help="rehearsal folder (default: results/PRESET-rehearsal)")
    p.add_argument("--runs", nargs="+", metavar="PREFIX", help="only the runs whose id starts so (with their "
                   "pretraining), e.g. cls/cifar100 ade20k/swin_femto")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep the fine-tunes' checkpoint files (default: deleted once a run has finished)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_rehearse)

    p = sub.add_parser("evaluate", help="run every downstream task of a preset for one checkpoint",
                       description="Fine-tune one checkpoint on every downstream task of a preset and print Tables "
                       "4-6 with its row beside the suite's rows already in --out.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint file or a timm hub folder (model.safetensors / "
                   "pytorch_model.bin + config.json)")
    p.add_argument("--model", help="paper model or timm architecture the checkpoint holds; optional when the file "
                   "names it (hub folder, dropbench / paper checkpoint), refused when it disagrees")
    p.add_argument("--preset", default="smoke", help="smoke | paper | a preset file")
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), metavar="TASK",
                   help=f"only these downstream tasks of the preset ({', '.join(TASKS)}; default: all)")
    p.add_argument("--label", help="row label in the tables (default: the checkpoint's file name)")
    p.add_argument("--out", required=True, help="suite folder (shared with `suite run` to compare)")
    p.add_argument("--data-root", nargs="+", default=[], metavar="NAME=PATH")
    p.add_argument("--seeds", type=int)
    p.add_argument("--executor", default="local", choices=("local", "slurm"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--baseline", help="row the differences (and intervals) are taken to, e.g. early-dropout "
                   "(default: the backbone's baseline row)")
    p.add_argument("--wait", action="store_true", help="if another process holds --out, wait for it (default: exit 2)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("tables", help="build Tables 4-6 and the pretraining table from result files")
    p.add_argument("--results", required=True, help="folder searched for result.json files")
    p.add_argument("--format", default="md", choices=("md", "tex", "csv"))
    p.add_argument("--out", help="write to this file instead of printing")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples B of the intervals (default 1000)")
    p.add_argument("--no-intervals", action="store_true", help="differences only, no bootstrap")
    p.add_argument("--baseline", help="row (variant or evaluate label) differences are taken to, where a backbone "
                   "has it (default: baseline, else standard-sd)")
    p.set_defaults(func=_cmd_tables)

    p = sub.add_parser("compare", help="paired bootstrap of two runs of one task and data set",
                       description="Compare two runs of one task and data set metric by metric: the difference A - B "
                       "with its paired bootstrap interval and p-value, from the runs' per-sample outputs. RUN_A and "
                       "RUN_B are run folders (or their result.json), or with --results rows MODEL:VARIANT of a "
                       "results folder (every seed of the row: seeds resampled first).")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--results", help="results folder whose rows RUN_A and RUN_B name (MODEL:VARIANT)")
    p.add_argument("--task", help="with --results: the task (coco, ade20k, cls, probe, pretrain) when a row has "
                   "several")
    p.add_argument("--dataset", help="with --results: the data set when a row has several")
    p.add_argument("--metric", nargs="+", help="metrics to compare (default: every shared one)")
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples B (default 1000)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("report", help="figures (schedules, pretraining curves) and tables in one Markdown report")
    p.add_argument("--results", required=True, help="a suite folder or any folder of result.json files")
    p.add_argument("--out", help="report folder (default: RESULTS/report)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("doctor", help="print the stack and check each task on the devices seen",
                       description="Print python, torch (CUDA, cuDNN), timm, mmcv (CPU or CUDA ops, GPU code), mmdet, "
                       "mmseg, the GPUs and NCCL; run each task's needs on the device (mmcv's roi_align and nms on a "
                       "GPU when one is visible). Exits 1 with the command that fixes what is missing.")
    p.set_defaults(func=_cmd_doctor)

    data = sub.add_parser("data", help="check data roots, or generate the embedded default data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="<check|generator>", required=True)
    p = dsub.add_parser("check", help="check data roots: layout, official split sizes, a decoded sample",
                        description="Check each data root as its reader expects it (README: Getting the data): the "
                        "layout, the split sizes against the official release (from directory listings and "
                        "annotation files, not pixels), a few decoded images per split, and whether it was generated. "
                        "Prints a table; exits 2 when a root is missing (for a preset that requires it) or bad.")
    p.add_argument("--preset", help="check the data sets this preset reads, under its policy (paper: real data with "
                   "the official sizes)")
    p.add_argument("--data-root", nargs="+", default=[], metavar="NAME=PATH", help="the roots, as for `suite run`")
    p.add_argument("--out", help="the preset's suite folder (where its generated data lives; default results/PRESET)")
    p.add_argument("--sample", type=int, default=8, help="images decoded per split (0: none)")
    p.set_defaults(func=_cmd_data_check)
    p = dsub.add_parser("synth-imagenet", help="a small generated ImageNet-layout set with learnable classes")
    p.add_argument("--out", required=True, help="output root (gets train/ and val/)")
    p.add_argument("--classes", type=int, default=6,
                   help="classes (the 6 textures; more classes also differ in shape, which is much harder to learn)")
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--size", type=int, default=48, help="image side in pixels (the smoke recipe's input)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth_imagenet)
    for task in TASKS.values():
        p = dsub.add_parser(f"synth-{task.name}", help=task.synth_help)
        if len(task.datasets) > 1:
            p.add_argument("--dataset", required=True, choices=task.datasets)
        p.set_defaults(dataset=None)
        p.add_argument("--out", required=True, help="output root")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=_cmd_synth, synth_task=task.name)
    return parser


def _exit_now(code: int) -> None:
    """Exit at once after a stop request: exit handlers run and output is flushed, the slow teardown is skipped."""
    import atexit

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run ``dropbench``; user errors print one clear line and exit 2."""
    parser = build_parser()
    # known, harmless warnings of the stack that would drown the output of long runs
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
    warnings.filterwarnings("ignore", message=".*torch.searchsorted.*non-contiguous")
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.stage_argv = raw[raw.index(args.command) + 1 :]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    func: Callable[[argparse.Namespace], int] = args.func
    from dropbench.pretrain.stop import Preempted, stop_signals

    try:
        with stop_signals():  # SIGTERM / SIGINT: stop within seconds, checkpoint first (dropbench.pretrain.stop)
            return func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"dropbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a diverged run (recorded as failed in its result.json)
        print(f"dropbench {args.command}: failed: {e}", file=sys.stderr)
        return 1
    except Preempted as e:
        print(f"dropbench {args.command}: {e}; run the same command again to resume", file=sys.stderr)
        if argv is None:  # the process's own command: exit now (the stack's interpreter teardown takes seconds)
            _exit_now(e.exit_code)
        return e.exit_code
    except RuntimeError as e:
        from dropbench.benchmarks.doctor import StackError

        if not isinstance(e, StackError):
            raise
        print(f"dropbench {args.command}: error: {e}", file=sys.stderr)  # the stack cannot run it here: the fix
        return 1
    except KeyboardInterrupt:
        print(f"dropbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
