"""What the commands print at the terminal: lines for the person there, a results file's scores as one table,
what a run wrote and what it trained. Torch-free.

Public: :func:`say`, :func:`format_scores`, :func:`print_scores`, :func:`print_written`, :func:`print_trained`.
"""

from __future__ import annotations

from pathlib import Path

from . import methods
from .config import ExperimentConfig


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


def print_scores(result_path) -> None:
    """Print the score table (:func:`format_scores`) of the results file ``result_path``."""
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
        method = methods.METHODS.get((result.get("config") or {}).get("method"))
        say(f"{f'adapter ({method.title})' if method and method.peft_config else 'model':<22}{model}")
    per_utterance = [folder / name for name in (result.get("utterances_file"), BEFORE_UTTERANCES_FILE)
                     if name and (folder / name).is_file()]
    if per_utterance:
        say(f"{'per-utterance scores':<22}{', '.join(map(str, per_utterance))}")
    say("results (every number, with the config and provenance):")


def print_trained(result_path) -> None:
    """One paragraph: what was trained, for how many steps, on which data, and how long it took."""
    from .results import read_results

    result = read_results(result_path)
    cfg, training, eff = ExperimentConfig.from_dict(result["config"]), result["training"], result["efficiency"]
    best = training.get("best_validation_wer")
    best_text = f", best validation WER {best:.2f}" if best is not None else ""
    resumed = f", resumed from {Path(training['resumed_from']).name}" if training.get("resumed_from") else ""
    say(f"Trained: {cfg.describe()}.")
    say(f"  reached step {training['global_step']}{resumed}{best_text}; {eff['trainable_parameters']:,} of "
        f"{eff['total_parameters']:,} parameters trained ({eff['trainable_percent']:.2f}%); training took "
        f"{eff['train_wall_time_s']:.0f} s, the whole run {eff['run_wall_time_s']:.0f} s.")
