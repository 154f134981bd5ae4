"""Command line: ``python -m arabicpeft {train,evaluate,demo} ...``.

Every command writes its results JSON into ``--output-dir`` and prints that file's path as its last line.
The ``train`` options are generated from :class:`ExperimentConfig`, so the CLI and the notebooks cannot drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from . import dialects
from .config import METHODS, PRECISIONS, SOURCES, ExperimentConfig, demo_config

_SKIP = {"extra"}
_CHOICES = {"dialect": dialects.NAMES, "method": METHODS, "precision": PRECISIONS, "source": SOURCES}


def _field_type(field: dataclasses.Field):
    hint = typing.get_type_hints(ExperimentConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def _add_config_options(parser: argparse.ArgumentParser, defaults: ExperimentConfig) -> None:
    for field in dataclasses.fields(ExperimentConfig):
        if field.name in _SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        default = getattr(defaults, field.name)
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(kind) is list:
            parser.add_argument(flag, type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=default,
                                help="comma-separated")
        else:
            parser.add_argument(flag, type=kind, default=default, choices=_CHOICES.get(field.name))


def _config_from(args: argparse.Namespace) -> ExperimentConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig) if f.name not in _SKIP}
    return ExperimentConfig(**values)


def _print_scores(path: Path) -> None:
    from .results import read_results

    result = read_results(path)
    for stage, key in (("before", "metrics_before"), ("after", "metrics")):
        for test_set, schemes in (result.get(key) or {}).items():
            for scheme, m in schemes.items():
                print(f"{stage:>6} {test_set:<10} {scheme:<12} WER {m['wer']:6.2f}  CER {m['cer']:6.2f}  "
                      f"(n={m['n_utterances']})", file=sys.stderr)


def cmd_train(args) -> Path:
    from .train import run

    return run(_config_from(args))


def cmd_demo(args) -> Path:
    from .train import run

    cfg = demo_config(output_dir=args.output_dir)
    if args.max_steps:
        cfg.max_steps = args.max_steps
    path = run(cfg)
    _print_scores(path)
    return path


def cmd_evaluate(args) -> Path:
    from .data import load_test_sets, settle_counts
    from .evaluate import evaluate_sets, generation_budget
    from .model import load_trained, window_seconds
    from .results import write_results

    model, processor, trained_cfg = load_trained(args.model_path, precision=args.precision)
    cfg = dataclasses.replace(
        trained_cfg, dialect=args.dialect or trained_cfg.dialect, source=args.source or trained_cfg.source,
        data_path=args.data_path or trained_cfg.data_path, test_sets=args.test_sets or None,
        max_test_samples=args.max_test_samples, streaming=args.streaming, output_dir=args.output_dir,
    )
    tests, report, synthetic = load_test_sets(cfg, processor.tokenizer, max_seconds=window_seconds(processor),
                                              max_positions=model.config.max_target_positions)
    metrics, rows = evaluate_sets(model, processor, tests, batch_size=args.batch_size, precision=cfg.precision)
    result = {"run_id": Path(args.output_dir).name, "evaluated_model": str(Path(args.model_path).resolve()),
              "config": cfg.to_dict(),
              "data": {"source": cfg.source, "synthetic": synthetic, "test": settle_counts(report)},
              "synthetic": synthetic, "metrics": metrics,
              "provenance": {"generation_budget_tokens": generation_budget(model, processor.tokenizer)}}
    return write_results(args.output_dir, result, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arabicpeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fine-tune Whisper (LoRA or full) on one dialect and evaluate it")
    _add_config_options(train, ExperimentConfig())
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="score a saved adapter or model on dialect test sets or local data")
    ev.add_argument("--model-path", required=True, help="the 'model' directory a train run saved")
    ev.add_argument("--dialect", help="test on this variety's test set(s) (default: the training dialect)")
    ev.add_argument("--test-sets", type=lambda s: [x.strip() for x in s.split(",")], help="comma-separated")
    ev.add_argument("--source", choices=("hub", "local", "sample"))
    ev.add_argument("--data-path")
    ev.add_argument("--streaming", action="store_true")
    ev.add_argument("--precision", help="override the precision the model was trained with")
    ev.add_argument("--max-test-samples", type=int)
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--output-dir", required=True)
    ev.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="the main job on the embedded offline default (whisper-base + synthetic set)")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--max-steps", type=int, help="override the demo's number of training steps")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> None:
    from .environment import pin_single_gpu

    args = build_parser().parse_args(argv)
    pin_single_gpu()  # before torch sees CUDA: one GPU unless launched with torchrun (see its docstring)
    path = args.func(args)
    print(Path(path).resolve())


if __name__ == "__main__":
    main()
