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
  data       generate the embedded default data sets (ImageNet, COCO, ADE20K, classification layouts)
  pretrain   ImageNet pretraining with early / late / standard dropout or stochastic depth
  convert    normalise any checkpoint (dropbench, the paper's, timm) to a paper model's timm state dict
  finetune   fine-tune a checkpoint on COCO (Mask R-CNN), ADE20K (UperNet) or a classification set
  suite      plan / run a preset: every pretraining variant and fine-tune, then Tables 4-6
  evaluate   run every downstream task for one new checkpoint, beside the suite's rows
  tables     build the tables from result files (md, tex, csv)
  report     figures and tables in one Markdown report
run `dropbench <stage> --help` for the options of each."""


def _submit(args: argparse.Namespace) -> int:
    from dropbench.pretrain.launch import submit_slurm

    job = submit_slurm("dropbench.benchmarks.cli:main", [args.command, *args.stage_argv], args)
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
    from dropbench.benchmarks.runs import pretrain_run, run_and_record
    from dropbench.pretrain.train import build_config

    cfg = build_config(args)
    result = run_and_record("pretrain", "imagenet", cfg.model.name, args.out,
                            lambda: pretrain_run(cfg, args.out, args.resume, recipe=args.config))
    _print_result(result)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from dropbench.finetune.convert import convert_checkpoint

    report = convert_checkpoint(args.checkpoint, args.model, args.out, use_ema=args.ema, img_size=args.img_size)
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    if args.slurm:
        return _submit(args)
    import importlib

    from dropbench.benchmarks.runs import FINETUNE_TASKS, run_and_record

    module, func = FINETUNE_TASKS[args.task]
    fn = getattr(importlib.import_module(module), func)
    kwargs = dict(checkpoint=args.checkpoint, model=args.model, data_root=args.data, out_dir=args.out,
                  config=args.config, launcher=args.launcher, seed=args.seed, use_ema=args.ema, resume=args.resume,
                  cfg_options=_cfg_options(args.cfg_options))
    dataset = args.task
    if args.task == "cls":
        kwargs["dataset"] = dataset = args.dataset
    result = run_and_record(args.task, dataset, args.model, args.out, lambda: fn(**kwargs))
    _print_result(result)
    return 0


def _cfg_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--cfg-options takes KEY=VALUE pairs, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_synth(args: argparse.Namespace) -> int:
    import importlib

    module, func = {"synth-coco": ("dropbench.finetune.datasets.coco", "write_synth_coco"),
                    "synth-ade20k": ("dropbench.finetune.datasets.ade20k", "write_synth_ade20k"),
                    "synth-cls": ("dropbench.finetune.datasets.cls", "write_synth_cls")}[args.data_command]
    kwargs = {"seed": args.seed}
    if args.data_command == "synth-cls":
        kwargs["dataset"] = args.dataset
    out = getattr(importlib.import_module(module), func)(args.out, **kwargs)
    print(f"wrote a generated {args.data_command[6:]} set to {out}")
    return 0


def _parse_roots(items: list[str]) -> dict[str, str]:
    roots = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--data-root takes NAME=PATH pairs (e.g. coco=/data/coco), got {item!r}")
        name, path = item.split("=", 1)
        roots[name] = path
    return roots


def _print_tables(results_dir: Path, fmt: str = "md") -> dict:
    from dropbench.benchmarks.results import collect_results
    from dropbench.benchmarks.tables import TABLES, build_tables, load_reference, render

    results = collect_results(results_dir)
    tables = build_tables(results, load_reference())
    for name, table in tables.items():
        print(render(table, fmt, TABLES[name].title))
    _warn_unreadable(results)
    return tables


def _warn_unreadable(results) -> None:
    for problem in results.attrs.get("problems", []):
        print(f"warning: unreadable result (its cell is marked; `suite run` redoes the run): {problem}",
              file=sys.stderr)


def _finish_suite(plan, report) -> int:
    from dropbench.benchmarks.suite import index
    from dropbench.benchmarks.tables import write_tables

    if plan.out.joinpath("runs").exists():
        index(plan.out)
        tables = _print_tables(plan.out / "runs")
        written = write_tables(tables, plan.out / "tables")
        print(f"tables written to {plan.out / 'tables'} ({len(written)} files)")
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_suite(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.suite import describe, load_preset, plan, run_suite

    preset = load_preset(args.preset)
    out = args.out or Path("results") / Path(args.preset).stem
    suite_plan = plan(preset, out, _parse_roots(args.data_root), seeds=args.seeds)
    if args.suite_command == "plan":
        print(describe(suite_plan))
        return 0
    print(describe(suite_plan).splitlines()[0])
    report = run_suite(suite_plan, preset, executor=args.executor, jobs=args.jobs, progress=not args.no_progress,
                       wait=args.wait)
    return _finish_suite(suite_plan, report)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.suite import describe, load_preset, plan, run_suite

    preset = load_preset(args.preset)
    suite_plan = plan(preset, args.out, _parse_roots(args.data_root), seeds=args.seeds, checkpoint=args.checkpoint,
                      model=args.model, label=args.label)
    print(describe(suite_plan).splitlines()[0])
    report = run_suite(suite_plan, preset, executor=args.executor, jobs=args.jobs, progress=not args.no_progress,
                       wait=args.wait)
    return _finish_suite(suite_plan, report)


def _cmd_tables(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.results import collect_results
    from dropbench.benchmarks.tables import TABLES, build_tables, load_reference, render

    root = Path(args.results)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    results = collect_results(root)
    _warn_unreadable(results)
    tables = build_tables(results, load_reference())
    text = "\n".join(render(t, args.format, TABLES[name].title) for name, t in tables.items())
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from dropbench.benchmarks.report import write_report

    path = write_report(args.results, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_synth_imagenet(args: argparse.Namespace) -> int:
    from dropbench.pretrain.synth import write_synth_imagenet

    out = write_synth_imagenet(args.out, args.classes, args.train_per_class, args.val_per_class, args.size, args.seed)
    print(f"wrote a generated ImageNet-layout set to {out}")
    return 0


_CFG_DIR = {"coco": "det", "ade20k": "seg", "cls": "cls"}


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
    from dropbench.pretrain.train import get_args_parser as pretrain_parser

    parser = argparse.ArgumentParser(
        "dropbench",
        description="Downstream transfer benchmark for early / late dropout pretraining "
        "(Liu et al., Dropout Reduces Underfitting, ICML 2023).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)

    p = sub.add_parser("pretrain", parents=[pretrain_parser(add_help=False)], help="ImageNet pretraining",
                       description=pretrain_parser().description)
    _add_slurm(p)
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("convert", help="normalise a checkpoint to a paper model's timm state dict",
                       description="Convert a dropbench, paper (facebookresearch/dropout) or timm checkpoint to the "
                       "timm state dict of --model, checking that every backbone tensor fits (only the classifier "
                       "head may be dropped). Prints how many tensors were loaded, missing and unexpected.")
    p.add_argument("--checkpoint", required=True, help="input checkpoint file")
    p.add_argument("--model", required=True, help="paper model name the checkpoint holds (e.g. swin_femto)")
    p.add_argument("--out", required=True, help="output file ({'model': timm state dict, 'pretrain': metadata})")
    p.add_argument("--ema", action="store_true", help="take the EMA weights ('model_ema')")
    p.add_argument("--img-size", type=int, help="resolution to convert for (default: the checkpoint's)")
    p.set_defaults(func=_cmd_convert)

    ft = sub.add_parser("finetune", help="fine-tune a checkpoint on a downstream task (fixed drop rates)",
                        description="Fine-tune a checkpoint (dropbench's, the paper's or timm's; see `dropbench "
                        "convert`) on COCO (mmdet Mask R-CNN), ADE20K (mmseg UperNet) or a classification set, and "
                        "write RUN_DIR/result.json. Drop rates are fixed by the recipe: no dropout scheduling.")
    ftsub = ft.add_subparsers(dest="task", metavar="<task>", required=True)
    for task, help_text, data_help in (
        ("coco", "COCO detection + instance segmentation (Table 4)",
         "COCO root: train2017/, val2017/, annotations/instances_{train,val}2017.json"),
        ("ade20k", "ADE20K semantic segmentation (Table 5)",
         "ADEChallengeData2016 root: images/{training,validation}/, annotations/{training,validation}/"),
        ("cls", "classification on CIFAR-100, Flowers-102, Pets, STL-10, Food-101 or an image folder (Table 6)",
         "the data set's root as its distribution ships it"),
    ):
        p = ftsub.add_parser(task, help=help_text, description=help_text)
        if task == "cls":
            p.add_argument("--dataset", required=True,
                           choices=("cifar100", "flowers102", "pets", "stl10", "food101", "imagefolder"))
        p.add_argument("--checkpoint", required=True, help="pretrained checkpoint (any layout `convert` reads)")
        p.add_argument("--model", required=True, help="paper model the checkpoint holds (e.g. swin_femto)")
        p.add_argument("--data", required=True, help=data_help)
        p.add_argument("--config", default="smoke", help=f"recipe name or config file (configs/{_CFG_DIR[task]}/)")
        p.add_argument("--out", required=True, help="run directory (checkpoints, logs, result.json)")
        p.add_argument("--launcher", default="none", choices=("none", "pytorch", "slurm"),
                       help="none: one process; pytorch: under torchrun; slurm: inside an srun task")
        p.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
        p.add_argument("--ema", action="store_true", help="fine-tune from the checkpoint's EMA weights")
        p.add_argument("--resume", help="'auto': continue the run in --out from its latest checkpoint")
        p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")
        _add_slurm(p)
        p.set_defaults(func=_cmd_finetune)

    suite = sub.add_parser("suite", help="plan and run a preset: pretraining -> every fine-tune -> Tables 4-6",
                           description="Run a suite preset (configs/suites/): every pretraining variant, then every "
                           "downstream fine-tune, skipping runs already done with the same config and input "
                           "checkpoint; then write the tables to OUT/tables/. Killing it and running it again loses "
                           "nothing and redoes nothing finished.")
    ssub = suite.add_subparsers(dest="suite_command", metavar="<run|plan>", required=True)
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

    p = sub.add_parser("evaluate", help="run every downstream task of a preset for one checkpoint",
                       description="Fine-tune one checkpoint on every downstream task of a preset and print Tables "
                       "4-6 with its row beside the suite's rows already in --out.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model", required=True, help="paper model the checkpoint holds")
    p.add_argument("--preset", default="smoke", help="smoke | paper | a preset file")
    p.add_argument("--label", help="row label in the tables (default: the checkpoint's file name)")
    p.add_argument("--out", required=True, help="suite folder (shared with `suite run` to compare)")
    p.add_argument("--data-root", nargs="+", default=[], metavar="NAME=PATH")
    p.add_argument("--seeds", type=int)
    p.add_argument("--executor", default="local", choices=("local", "slurm"))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--wait", action="store_true", help="if another process holds --out, wait for it (default: exit 2)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("tables", help="build Tables 4-6 and the pretraining table from result files")
    p.add_argument("--results", required=True, help="folder searched for result.json files")
    p.add_argument("--format", default="md", choices=("md", "tex", "csv"))
    p.add_argument("--out", help="write to this file instead of printing")
    p.set_defaults(func=_cmd_tables)

    p = sub.add_parser("report", help="figures (schedules, pretraining curves) and tables in one Markdown report")
    p.add_argument("--results", required=True, help="a suite folder or any folder of result.json files")
    p.add_argument("--out", help="report folder (default: RESULTS/report)")
    p.set_defaults(func=_cmd_report)

    data = sub.add_parser("data", help="generate the embedded default data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="<generator>", required=True)
    p = dsub.add_parser("synth-imagenet", help="a small generated ImageNet-layout set with learnable classes")
    p.add_argument("--out", required=True, help="output root (gets train/ and val/)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_synth_imagenet)
    for name, help_text in (("synth-coco", "a small generated COCO-layout set (boxes, polygon masks)"),
                            ("synth-ade20k", "a small generated ADE20K-layout set (150-class label maps)"),
                            ("synth-cls", "a tiny generated set in one classification data set's own format")):
        p = dsub.add_parser(name, help=help_text)
        if name == "synth-cls":
            p.add_argument("--dataset", required=True, choices=("cifar100", "flowers102", "pets", "stl10", "food101",
                                                                "imagefolder"))
        p.add_argument("--out", required=True, help="output root")
        p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=_cmd_synth)
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
    except KeyboardInterrupt:
        print(f"dropbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
