"""Command line: ``python -m arabicpeft {train,evaluate,demo,study,transcribe,merge,export,upload} ...``.

Every command writes its results JSON into ``--output-dir`` and prints that file's path as its last line.
The ``train`` options are generated from :class:`ExperimentConfig`, so the CLI and the notebooks cannot drift.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path
from typing import Optional

from . import dialects
from .config import METHODS, PRECISIONS, SOURCES, ExperimentConfig, demo_config

_SKIP = {"extra"}
_CHOICES = {"dialect": dialects.NAMES, "method": METHODS, "precision": PRECISIONS, "source": SOURCES}


def _field_type(field: dataclasses.Field):
    hint = typing.get_type_hints(ExperimentConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def _add_config_options(parser: argparse.ArgumentParser, defaults: Optional[ExperimentConfig],
                        skip=frozenset()) -> None:
    """One option per config field; ``defaults=None``: an option not given is left out of the namespace."""
    for field in dataclasses.fields(ExperimentConfig):
        if field.name in _SKIP or field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        kind = _field_type(field)
        default = getattr(defaults, field.name) if defaults is not None else argparse.SUPPRESS
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
    """The score table (each test set, then pooled over all of them) and the filter counts, on stderr."""
    from .results import read_results

    result = read_results(path)
    tables = [("before", result.get("metrics_before")), ("after" if result.get("metrics_before") else "", result.get("metrics"))]
    for stage, metrics in tables:
        rows = list((metrics or {}).items())
        if result.get("metrics_pooled") and stage != "before":
            rows.append(("pooled", result["metrics_pooled"]))
        for test_set, schemes in rows:
            for scheme, m in schemes.items():
                wer, cer = (f"{v:6.2f}" if v is not None else "   n/a" for v in (m["wer"], m["cer"]))
                print(f"{stage:>6} {test_set:<10} {scheme:<12} WER {wer}  CER {cer}  (n={m['n_utterances']})",
                      file=sys.stderr)
    for test_set, report in ((result.get("data") or {}).get("test") or {}).items():
        filtered = {k: v for k, v in (report.get("filtered") or {}).items() if v}
        if report.get("empty"):
            print(f"test set {test_set}: no rows ({report['empty']})", file=sys.stderr)
        elif filtered:
            print(f"test set {test_set}: {report.get('rows_in')} rows, {report.get('rows_used')} scored, filtered "
                  + ", ".join(f"{n} {reason}" for reason, n in filtered.items()), file=sys.stderr)


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
    """Score any model reference on dialect test sets, a local data layout, one manifest or a saved dataset.

    The results keep the training config (``config``, untouched) apart from the evaluation's own settings
    (``evaluation``), give each test set and the pooled corpus WER/CER, and record the backend."""
    from .data import is_saved_dataset, load_test_path, load_test_sets, settle_counts
    from .evaluate import evaluate_sets, pooled_metrics
    from .model import load_model, window_seconds
    from .results import write_results

    if args.backend == "ct2":
        from .export import load_ct2

        scorer, processor = load_ct2(args.model_path, compute_type=args.compute_type, cpu_threads=args.cpu_threads)
        trained = _trained_config(args.model_path)
        evaluated = {"reference": str(args.model_path), "backend": "ct2"}
    else:
        loaded = load_model(args.model_path, precision=args.precision, full_window=args.full_window)
        scorer, processor, trained = loaded.model, loaded.processor, loaded.config
        evaluated = {"backend": "hf", **loaded.describe()}
        evaluated.pop("trained_config")
    max_seconds = window_seconds(processor)
    max_positions = scorer.config.max_target_positions if args.backend == "hf" else 448  # CTranslate2: Whisper's
    data_path = Path(args.data_path) if args.data_path else None
    test_sets = args.test_sets or (list(dialects.get(args.dialect).parts) if args.dialect else None)
    if data_path is not None and (data_path.is_file() or is_saved_dataset(data_path)):
        tests, report, synthetic = load_test_path(data_path, processor.tokenizer, max_seconds, test_sets,
                                                  args.max_test_samples, max_positions)
        source = "local"
    else:
        source = args.source or ("local" if data_path else trained.source if trained else "hub")
        dialect = args.dialect or (trained.dialect if trained else None)
        if not (dialect or test_sets):
            raise SystemExit("A base model has no training dialect: give --dialect or --test-sets.")
        spec = ExperimentConfig(dialect=dialect or "all", source=source, data_path=args.data_path,
                                test_sets=test_sets, max_test_samples=args.max_test_samples, streaming=args.streaming)
        tests, report, synthetic = load_test_sets(spec, processor.tokenizer, max_seconds, max_positions,
                                                  skip_empty=True)
    max_length = (trained or ExperimentConfig()).generation_max_length
    if args.backend == "ct2":
        from .export import describe_ct2

        metrics, rows = evaluate_sets(scorer, processor, tests, batch_size=args.batch_size, max_length=max_length)
        evaluated.update(describe_ct2(scorer), requested_compute_type=args.compute_type, max_length=max_length)
    else:
        metrics, rows = evaluate_sets(scorer, processor, tests, batch_size=args.batch_size, precision=loaded.precision)
        evaluated.update(max_length=max_length)
    result = {"run_id": Path(args.output_dir).name, "kind": "evaluation", "evaluated_model": evaluated,
              "config": trained.to_dict() if trained else None,
              "evaluation": {"test_sets": list(report), "source": source, "data_path": args.data_path,
                             "max_test_samples": args.max_test_samples, "streaming": args.streaming,
                             "batch_size": args.batch_size, "backend": args.backend,
                             "compute_type": evaluated.get("compute_type", evaluated.get("precision"))},
              "data": {"source": source, "synthetic": synthetic, "test": settle_counts(report)},
              # a model trained on the synthetic set gives synthetic numbers on any data
              "synthetic": synthetic or bool(trained and trained.source == "sample"),
              "metrics": metrics, "metrics_pooled": pooled_metrics(rows),
              "provenance": {"generation_budget_tokens": next(iter(next(iter(metrics.values())).values()))[
                  "generation_budget_tokens"] if metrics else None}}
    path = write_results(args.output_dir, result, rows)
    _print_scores(path)
    return path


def _trained_config(reference) -> Optional[ExperimentConfig]:
    """The training config saved with a model directory (or its run's model/), if any."""
    from .model import CONFIG_FILE

    for directory in (Path(str(reference)), Path(str(reference)) / "model"):
        if (directory / CONFIG_FILE).is_file():
            return ExperimentConfig.from_json(directory / CONFIG_FILE)
    return None


def cmd_transcribe(args) -> Path:
    from .transcribe import collect_audio, transcribe_files, write_transcripts

    items = collect_audio(args.audio, dialect=args.dialect)
    if args.backend == "ct2":
        from .export import describe_ct2, load_ct2

        model, _ = load_ct2(args.model_path, compute_type=args.compute_type, cpu_threads=args.cpu_threads)
        info = describe_ct2(model)
    else:
        from .model import load_model

        model = load_model(args.model_path, precision=args.precision, full_window=True)
        info = {"backend": "hf", **model.describe()}
    transcripts = transcribe_files(model, items, backend=args.backend, batch_size=args.batch_size,
                                   beam_size=args.beam_size, max_new_tokens=args.max_new_tokens)
    for t in transcripts:
        print(f"{t.path}\t{t.duration:.1f} s\t{t.text}")
    return write_transcripts(transcripts, args.output_dir, subtitles=args.subtitles,
                             run_info={"model": info, "beam_size": args.beam_size, "max_new_tokens": args.max_new_tokens})


def cmd_merge(args) -> Path:
    from .export import merge

    return merge(args.model_path, args.output_dir, dtype=args.dtype)


def cmd_export(args) -> Path:
    from .export import export_ct2

    return export_ct2(args.model_path, args.output_dir, quantization=args.quantization, force=args.force)


def cmd_upload(args) -> Path:
    from .export import upload

    upload(args.folder, args.repo_id, target=args.target, private=not args.public)
    return Path(args.folder)


def _comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# Design options of the study command: name -> (type of one item, help). Passed to the design when it takes them.
_DESIGN_OPTIONS = {
    "variants": (str, "peft_vs_full / adapter_bank: lora, full, dora, lora-int8, lora-nf4"),
    "methods": (str, "paper / mixing: lora, full"),
    "dialects": (str, "the dialects (train sets) of the design"),
    "targets": (str, "mixing: the dialects the balanced model is fine-tuned on"),
    "mixtures": (str, "mixing: natural, balanced"),
    "seeds": (int, "the seeds"),
    "msa_fractions": (float, "paper: fractions of the MSA train set"),
    "test_sets": (str, "the test sets every model is scored on"),
}


def cmd_study(args) -> Path:
    import inspect

    from . import profiles, study

    if not args.design and not args.preset:
        raise SystemExit("study: give a DESIGN (" + ", ".join(study.DESIGNS) + ", or a .json/.yaml file) or --preset "
                         + "/".join(study.PRESETS) + ".")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
                 if hasattr(args, f.name) and f.name not in _DESIGN_OPTIONS}
    if args.test_sets:  # a design option that is also a config field: every run is scored on these
        overrides["test_sets"] = args.test_sets
    name = args.preset or args.design
    if name in study.PRESETS:
        base = study.offline_mini_base() if name == "offline-mini" else ExperimentConfig()
        base = profiles.apply(dataclasses.replace(base, **overrides))
        design = study.design(name, base)
    else:
        factory = study.DESIGNS.get(name)
        options = {k: getattr(args, k) for k in _DESIGN_OPTIONS if getattr(args, k) is not None and k != "test_sets"}
        if factory is not None:
            accepted = inspect.signature(factory).parameters
            if args.test_sets and "test_sets" in accepted:
                options["test_sets"] = args.test_sets
            unused = [k for k in options if k not in accepted]
            if unused:
                raise SystemExit(f"study {name}: no option(s) {', '.join('--' + k.replace('_', '-') for k in unused)}.")
        base = profiles.apply(ExperimentConfig(**overrides))
        design = study.design(name, base, **options)
    result = study.run_study(design, root=args.output_dir, dry_run=args.dry_run)
    if args.dry_run:
        return Path(args.output_dir or ".")
    return result.path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arabicpeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fine-tune Whisper (LoRA or full) on one dialect and evaluate it")
    _add_config_options(train, ExperimentConfig())
    train.set_defaults(func=cmd_train)

    model_help = ("a LoRA adapter, merged or fully fine-tuned model directory, a run directory, an adapter bank "
                  "(a directory of adapters, one per dialect), an offline name (whisper-base, tiny-random) or a hub "
                  "id; with --backend ct2 also a CTranslate2 export")
    ev = sub.add_parser("evaluate", help="score any model on dialect test sets, a manifest or a saved dataset")
    ev.add_argument("--model-path", required=True, help=model_help)
    ev.add_argument("--dialect", choices=dialects.NAMES,
                    help="test on this variety's test set(s) (default: the training dialect)")
    ev.add_argument("--test-sets", type=_comma_list, help="comma-separated test set names (registry names, or a "
                    "manifest's dialects)")
    ev.add_argument("--source", choices=SOURCES, help="where dialect test sets come from (default: as trained)")
    ev.add_argument("--data-path", help="a local data directory (test.jsonl or {name}_test_set/), one manifest "
                    "file (.jsonl/.csv with audio, text and optional dialect) or one save_to_disk directory")
    ev.add_argument("--streaming", action="store_true", help="stream hub test sets instead of downloading them")
    ev.add_argument("--precision", choices=PRECISIONS, help="override the precision the model was trained with")
    ev.add_argument("--full-window", action="store_true", help="put an adapter trained with a cut encoder window "
                    "on its base's full 30 s window (as merge and the ct2 backend do)")
    ev.add_argument("--max-test-samples", type=int, help="score at most this many utterances per test set")
    ev.add_argument("--batch-size", type=int, default=16, help="utterances per decoding batch")
    ev.add_argument("--backend", choices=("hf", "ct2"), default="hf",
                    help="hf: transformers; ct2: CTranslate2 (converted on the fly unless given an export)")
    ev.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type (default: as "
                    "stored; int8, int8_float32, float32, float16, ...)")
    ev.add_argument("--cpu-threads", type=int, default=0, help="ct2 only: CPU threads (0: CTranslate2's default)")
    ev.add_argument("--output-dir", required=True, help="where results.json and utterances.csv are written")
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("transcribe", help="transcribe audio files of any length to JSONL and SRT/VTT subtitles")
    tr.add_argument("audio", nargs="+", help="audio files, folders (searched recursively) or manifests "
                    "(.jsonl/.csv with an audio column, optional dialect)")
    tr.add_argument("--model-path", required=True, help=model_help)
    tr.add_argument("--dialect", choices=dialects.NAMES, help="the dialect of files without one in a manifest "
                    "(picks the adapter of a bank)")
    tr.add_argument("--backend", choices=("hf", "ct2"), default="hf", help="hf: transformers; ct2: faster-whisper")
    tr.add_argument("--compute-type", default="default", help="ct2 only: CTranslate2 compute type")
    tr.add_argument("--cpu-threads", type=int, default=0, help="ct2 only: CPU threads (0: CTranslate2's default)")
    tr.add_argument("--precision", choices=PRECISIONS, help="hf only: override the trained precision")
    tr.add_argument("--batch-size", type=int, default=8, help="hf only: clips per decoding batch")
    tr.add_argument("--beam-size", type=int, default=1, help="1: greedy, as evaluation decodes")
    tr.add_argument("--max-new-tokens", type=int, default=224, help="tokens per 30 s window at most")
    tr.add_argument("--subtitles", type=_comma_list, default=[], help="comma-separated: srt, vtt")
    tr.add_argument("--output-dir", required=True, help="where transcripts.jsonl (and subtitles) are written")
    tr.set_defaults(func=cmd_transcribe)

    mg = sub.add_parser("merge", help="merge a LoRA adapter into its base: a standalone transformers model")
    mg.add_argument("--model-path", required=True, help="the adapter directory (or its run directory)")
    mg.add_argument("--output-dir", required=True, help="where the merged model is written")
    mg.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="weights of the merged model")
    mg.set_defaults(func=cmd_merge)

    ex = sub.add_parser("export", help="convert a model to CTranslate2 / faster-whisper")
    ex.add_argument("--model-path", required=True, help="a merged/full model, an adapter (merged on the fly), an "
                    "offline name or a hub id")
    ex.add_argument("--format", choices=("ct2",), default="ct2", help="ct2: CTranslate2, loadable by faster-whisper")
    ex.add_argument("--quantization", choices=("float32", "float16", "int8", "int8_float16", "int8_float32"),
                    default="int8", help="weight type of the export")
    ex.add_argument("--output-dir", required=True, help="where the export is written")
    ex.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    ex.set_defaults(func=cmd_export)

    up = sub.add_parser("upload", help="upload an adapter, merged model or export (needs the network and a token)")
    up.add_argument("folder", help="a directory written by train, merge or export")
    up.add_argument("--repo-id", required=True, help="hf: user/name; kaggle: owner/model/transformers/variation")
    up.add_argument("--target", choices=("hf", "kaggle"), default="hf", help="Hugging Face Hub or Kaggle Models")
    up.add_argument("--public", action="store_true", help="hf: create a public repository (default private)")
    up.set_defaults(func=cmd_upload)

    st = sub.add_parser("study", help="run a whole study (design x axes x stages) into one runs root, resumably")
    st.add_argument("design", nargs="?", help="peft_vs_full, paper, mixing, adapter_bank, or a .json/.yaml design")
    st.add_argument("--preset", help="a ready-made study: offline-mini")
    st.add_argument("--dry-run", action="store_true", help="print the planned runs, one per line; train nothing")
    st.add_argument("--output-dir", help="the study root (default: the runs root / the design's name)")
    for option, (kind, text) in _DESIGN_OPTIONS.items():
        st.add_argument("--" + option.replace("_", "-"), help=f"{text} (comma-separated)",
                        type=lambda s, kind=kind: [kind(x.strip()) for x in s.split(",") if x.strip()])
    _add_config_options(st, None, skip={"output_dir", "test_sets"})
    st.set_defaults(func=cmd_study)

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
