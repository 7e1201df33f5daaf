"""``dropbench``: one command, a subcommand per stage. Each parses, calls one library function, prints its summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

__all__ = ["main"]

log = logging.getLogger("dropbench")

_EPILOG = """stages:
  data       generate the embedded default data sets (ImageNet, COCO, ADE20K, classification layouts)
  pretrain   ImageNet pretraining with early / late / standard dropout or stochastic depth
run `dropbench <stage> --help` for the options of each."""


def _cmd_pretrain(args: argparse.Namespace) -> int:
    if args.slurm:
        from pretrain.launch import submit_slurm

        job = submit_slurm("pretrain", args.stage_argv, args)
        print(f"submitted SLURM job {job.job_id}; logs in {args.out}/slurm")
        return 0
    from pretrain.train import main as pretrain_main

    summary = pretrain_main(args)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_synth_imagenet(args: argparse.Namespace) -> int:
    from pretrain.synth import write_synth_imagenet

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
    from pretrain.train import get_args_parser as pretrain_parser

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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``dropbench``; user errors print one clear line and exit 2."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.stage_argv = raw[raw.index(args.command) + 1 :]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"dropbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dropbench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
