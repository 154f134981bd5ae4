"""Command line: ``python -m arabicpeft {demo,train,evaluate,study,cache,transcribe,merge,export,upload} ...``
(``arabicpeft`` once installed).

Every command writes its results JSON into its output folder and prints that file's path as its LAST stdout
line (scripts take it with ``| tail -1``); what it prints before that is for people.

How a command is built (a new one gets all of this by following the same pattern):

- **Options from the config.** :func:`arabicpeft.options.add_config_options` turns fields of
  :class:`ExperimentConfig` into options whose help, default and choices come from the field itself (``_section``
  in config.py), so ``--help`` cannot drift from the code. Options that are not config fields get a one-line help
  with their default too, and an argparse type of :mod:`arabicpeft.options` that refuses a bad value.
- **Cheap checks first.** This module and config/kaggle/device import no torch: a command validates its config
  and runs :func:`arabicpeft.kaggle.preflight` (paths, GPU driver, hub) before importing anything heavy,
  so a mistake is reported within a second.
- **Errors in one line.** Raise :class:`arabicpeft.errors.UserError` (``UserError(what, todo)``) for anything
  the user can fix; :func:`main` prints ``error: <what> — <todo>`` and exits 1 (usage errors: 2) without a
  traceback. ``--debug`` (anywhere on the line) or ``ARABICPEFT_DEBUG=1`` shows the traceback. Other
  exceptions are bugs and keep theirs.
- **Scores in one table.** A command that scores prints :func:`arabicpeft.console.print_scores` (per test set and
  pooled over all of them, before/after when both exist), then :func:`arabicpeft.console.print_written` (what it
  wrote, results path last).
- **Register it**: its function in :mod:`arabicpeft.commands` (named as the command, returning the results path),
  its options in an ``_add_*`` function here with ``set_defaults(func=commands.NAME)``.

Public: :func:`main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from . import commands, dialects, options
from .config import PRECISIONS, ExperimentConfig, demo_config
from .errors import UserError, user_message, write_failure
from .routing import AUTO, DEFAULT_THRESHOLD

_DEBUG_ENV_VAR = "ARABICPEFT_DEBUG"
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


_MODEL_HELP = ("a LoRA adapter, merged or fully fine-tuned model directory, a run directory, an adapter bank "
               "(a directory of adapters, one per dialect), an offline name (whisper-base, tiny-random) or a hub "
               "id; with --backend ct2 also a CTranslate2 export")


def _build_parser() -> argparse.ArgumentParser:
    # As the user typed it: the console script "arabicpeft", or "python -m arabicpeft".
    prog = "arabicpeft" if Path(sys.argv[0]).name == "arabicpeft" else "python -m arabicpeft"
    parser = _Parser(prog=prog, description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (also: ARABICPEFT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="{demo,train,evaluate,study,cache,transcribe,merge,export,upload}")
    for add in (_add_demo_and_train, _add_evaluate, _add_study, _add_cache, _add_transcribe, _add_model_commands):
        add(sub)
    return parser


def _add_demo_and_train(sub) -> None:
    """The demo and train commands: a training run."""
    demo = sub.add_parser("demo", help="start here: the main job offline, in minutes (whisper-base + LoRA on the "
                          "synthetic sample set)", formatter_class=_Formatter,
                          description="The main job on the embedded offline default: whisper-base (from PyPI) + "
                          "LoRA, trained on the synthetic sample set and scored before and after.")
    demo.add_argument("--output-dir", metavar="DIR", help="where to write (default: runs/demo, or "
                      "$ARABICPEFT_OUTPUT/demo; a rerun resumes there)")
    demo.add_argument("--max-steps", type=options.in_range("max_steps", int), metavar="N",
                      help=f"training steps (default: {demo_config().max_steps})")
    demo.add_argument("--rescore", action="store_true", help=_RESCORE_HELP)
    demo.set_defaults(func=commands.demo)

    train = sub.add_parser("train", help="fine-tune Whisper (LoRA or full) on one dialect and score it",
                           description=_TRAIN_DESCRIPTION, formatter_class=_Formatter,
                           usage="%(prog)s [options]  (every option below is a field of ExperimentConfig)")
    options.add_config_options(train, ExperimentConfig())
    train.add_argument("--rescore", action="store_true", help=_RESCORE_HELP)
    train.set_defaults(func=commands.train, parser=train)


def _add_evaluate(sub) -> None:
    """The evaluate command."""
    ev = sub.add_parser("evaluate", help="score any model on dialect test sets, a manifest or a saved dataset",
                        formatter_class=_Formatter,
                        description="Score any model (a train run's 'model' folder, a merged model, an adapter bank, "
                        "an offline name or a hub id)\non dialect test sets, a manifest or a saved dataset. Options "
                        "left out keep the trained run's values.")
    ev.add_argument("--model-path", required=True, metavar="REF", help=_MODEL_HELP)
    ev.add_argument("--output-dir", required=True, metavar="DIR", help="where results.json and utterances.csv go")
    _add_routing(ev, "score on this variety's test set(s) when --test-sets is not given (default: the training "
                 "dialect); auto: an adapter bank's router picks each utterance's adapter")
    options.add_config_options(ev, ExperimentConfig(), ["test_sets", "source", "data_path", "streaming",
                                                "precision", "max_test_samples", "feature_cache",
                                                "generation_max_length", "dataset", "split_test", "audio_column",
                                                "text_column", "dialect_column", "pool"],
                       default_note="default: as the model was trained",
                       helps={"test_sets": "comma-separated test set names: registry names, or a manifest's "
                                           "dialects (default: the training dialect's)",
                              "data_path": "a local data folder (test.jsonl or {name}_test_set/), one manifest "
                                           "(.jsonl/.csv with audio, text, optional dialect) or one save_to_disk "
                                           "folder (default: as trained)",
                              "generation_max_length": "longest transcript decoded, in tokens (default: as the "
                                                       "model was trained, else the model's limit; 225 reproduces "
                                                       "the paper)"})
    ev.add_argument("--window", type=options.window, default="trained", metavar="{trained,full,SECONDS}",
                    help=_WINDOW_HELP)
    ev.add_argument("--batch-size", type=options.at_least(1), default=16, metavar="N",
                    help="utterances per batch (default: 16)")
    ev.add_argument("--backend", choices=("hf", "ct2"), default="hf", help="hf: transformers; ct2: CTranslate2 "
                    "(converted on the fly unless given an export) (default: hf)")
    ev.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type: int8, "
                    "int8_float32, float32, float16, ... (default: as stored)")
    ev.add_argument("--cpu-threads", type=options.at_least(0), default=0, metavar="N",
                    help="ct2 only: CPU threads (default: 0, CTranslate2's choice)")
    ev.add_argument("--transform", default=None, metavar="SPEC[,SPEC...]", help="score each set also (or only) "
                    "under these robustness transforms: clean, noise-{white,pink,babble}-SNRdB, telephone, speed-F "
                    "(e.g. clean,noise-white-10dB); docs/robustness.md")
    ev.add_argument("--transform-seed", type=options.at_least(0), default=0, metavar="N", help="seed of the transforms' "
                    "noise (default: 0)")
    ev.set_defaults(func=commands.evaluate, parser=ev)


def _add_study(sub) -> None:
    """The study command: the design options, then every config field a design does not set itself."""
    st = sub.add_parser("study", help="run a whole study (design x axes x stages) into one runs root, resumably",
                        formatter_class=_Formatter,
                        description="Run every training and scoring of a study design, skipping finished runs and "
                        "resuming unfinished\nones; writes study.json (planned, done, failed) for the analysis.")
    st.add_argument("design", nargs="?", help="peft_vs_full, paper, mixing, adapter_bank, or a .json/.yaml design")
    st.add_argument("--preset", help="a ready-made study: offline-mini (whisper-base on the sample set, CPU)")
    st.add_argument("--dry-run", action="store_true", help="print the planned runs, one per line; train nothing")
    st.add_argument("--output-dir", metavar="DIR", help="the study root (default: the runs root / the design's name)")
    st.add_argument("--shard", metavar="K/N", type=options.shard, help="run only part K of N of the study (runs that "
                    "depend on each other stay together), e.g. one process per GPU: CUDA_VISIBLE_DEVICES=0 ... "
                    "--shard 1/2 & CUDA_VISIBLE_DEVICES=1 ... --shard 2/2 & wait")
    for option, (kind, text, _) in commands.DESIGN_OPTIONS.items():
        st.add_argument("--" + option.replace("_", "-"), help=f"{text} (comma-separated; default: the design's)",
                        metavar="A,B", type=lambda s, kind=kind: [kind(x.strip()) for x in s.split(",") if x.strip()])
    options.add_config_options(st, ExperimentConfig(), [f.name for f in dataclasses.fields(ExperimentConfig)
                                                if f.name not in commands.NOT_STUDY_OPTIONS],
                       default_note="default: the design's, else the train default")
    st.set_defaults(func=commands.study)


def _add_cache(sub) -> None:
    """The cache command."""
    ca = sub.add_parser("cache", help="write the compact log-mel cache of a dialect's data (lossless; float16 optional)",
                        formatter_class=_Formatter,
                        description="Read a dialect's train and test sets once (the hub streamed) and store their "
                        "log-mel features without\nWhisper's padding (~12x fewer bytes than Arrow float32 for the "
                        "sample set's 2.6 s clips), the same\nmodel inputs bitwise. Then train or\nevaluate with --feature-cache DIR. Splits already there "
                        "are kept.")
    ca.add_argument("--output-dir", required=True, metavar="DIR", help="the cache folder (one subfolder per split)")
    ca.add_argument("--splits", type=options.comma_list, default=["train", "test"], metavar="A,B",
                    help="train, test (default: both)")
    options.add_config_options(ca, ExperimentConfig(), ["dialect", "test_sets", "source", "data_path", "model",
                                                "encoder_seconds", "feature_cache_dtype", "dataset", "split_train",
                                                "split_test", "audio_column", "text_column", "dialect_column",
                                                "pool"],
                       helps={"model": "for audio sources: the model whose feature extractor and tokenizer make the "
                                       "log-mel and labels (default: openai/whisper-small; otozz sets need none)"})
    ca.set_defaults(func=commands.cache)


def _variety_or_auto(text: str) -> str:
    """--dialect of evaluate and transcribe: a variety name (the paper's or one a dataset or bank declares) or auto."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return dialects.variety_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_routing(parser, dialect_help: str) -> None:
    """--dialect (a variety, or auto: routed by an adapter bank's router) and --route-threshold."""
    parser.add_argument("--dialect", type=_variety_or_auto, metavar="VARIETY",
                        help=f"{dialect_help} (a variety: {', '.join(dialects.NAMES)}, or one the data names)")
    parser.add_argument("--route-threshold", type=float, default=DEFAULT_THRESHOLD, metavar="P", help="--dialect "
                        "auto: the router's probability at or below which an utterance goes to the bank's pooled "
                        f"adapter, else the base (default: {DEFAULT_THRESHOLD}: more likely than all others together)")


def _add_transcribe(sub) -> None:
    """The transcribe command."""
    tr = sub.add_parser("transcribe", help="transcribe audio files of any length to JSONL and SRT/VTT subtitles",
                        formatter_class=_Formatter)
    tr.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or manifests "
                    "(.jsonl/.csv with an audio column, optional dialect)")
    tr.add_argument("--model-path", required=True, metavar="REF", help=_MODEL_HELP)
    tr.add_argument("--output-dir", required=True, metavar="DIR", help="where transcripts.jsonl (and subtitles) go")
    _add_routing(tr, "the dialect of files without one in a manifest (picks the adapter of a bank); auto: the "
                 "bank's router picks it")
    tr.add_argument("--backend", choices=("hf", "ct2"), default="hf",
                    help="hf: transformers; ct2: faster-whisper (default: hf)")
    tr.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type (default: as stored)")
    tr.add_argument("--cpu-threads", type=options.at_least(0), default=0, metavar="N",
                    help="ct2 only: CPU threads (default: 0, CTranslate2's choice)")
    tr.add_argument("--precision", choices=PRECISIONS, help="hf only: override the trained precision")
    tr.add_argument("--window", type=options.window, default="trained", metavar="{trained,full,SECONDS}",
                    help=_WINDOW_HELP + "; ct2: the export's 30 s window")
    tr.add_argument("--batch-size", type=options.at_least(1), default=8, metavar="N",
                    help="hf only: clips per batch (default: 8)")
    tr.add_argument("--beam-size", type=options.at_least(1), default=1, metavar="N",
                    help="1: greedy, as evaluation (default: 1)")
    tr.add_argument("--max-new-tokens", type=options.at_least(1), default=224, metavar="N",
                    help="tokens per segment at most, within 16 + 20 per second of its audio (default: 224)")
    tr.add_argument("--subtitles", type=options.subtitle_formats, default=[], metavar="A,B",
                    help="comma-separated, any case: srt, vtt (default: none)")
    tr.set_defaults(func=commands.transcribe, parser=tr)


def _add_model_commands(sub) -> None:
    """merge, export and upload: what is done with a trained model."""
    mg = sub.add_parser("merge", help="merge a LoRA adapter into its base: a standalone transformers model",
                        formatter_class=_Formatter)
    mg.add_argument("--model-path", required=True, metavar="DIR", help="the adapter folder (or its run folder)")
    mg.add_argument("--output-dir", required=True, metavar="DIR", help="where the merged model is written")
    mg.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                    help="weights of the merged model (default: fp32)")
    mg.set_defaults(func=commands.merge)

    ex = sub.add_parser("export", help="convert a model to CTranslate2 / faster-whisper", formatter_class=_Formatter)
    ex.add_argument("--model-path", required=True, metavar="REF", help="a merged/full model, an adapter (merged on "
                    "the fly), an offline name or a hub id")
    ex.add_argument("--output-dir", required=True, metavar="DIR", help="where the export is written")
    ex.add_argument("--format", choices=("ct2",), default="ct2",
                    help="ct2: CTranslate2, loadable by faster-whisper (default: ct2)")
    ex.add_argument("--quantization", choices=("float32", "float16", "int8", "int8_float16", "int8_float32"),
                    default="int8", help="weight type of the export (default: int8)")
    ex.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    ex.set_defaults(func=commands.export)

    up = sub.add_parser("upload", help="upload an adapter, merged model or export (needs the network and a token)",
                        formatter_class=_Formatter)
    up.add_argument("folder", help="a folder written by train, merge or export")
    up.add_argument("--repo-id", required=True, help="hf: user/name; kaggle: owner/model/transformers/variation")
    up.add_argument("--target", choices=("hf", "kaggle"), default="hf",
                    help="Hugging Face Hub or Kaggle Models (default: hf)")
    up.add_argument("--public", action="store_true", help="hf: create a public repository (default: private)")
    up.set_defaults(func=commands.upload)


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
        message = user_message(exc) if isinstance(exc, UserError) else write_failure(exc) or user_message(exc)
        if debug or message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, _UsageError) else 1)
    print(Path(path).resolve())


if __name__ == "__main__":
    main()
