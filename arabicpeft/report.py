"""A study's report (:class:`StudyReport`, notebook 03): one section per method, each computing its tables
(:mod:`arabicpeft.analysis`, :mod:`arabicpeft.tables`) and figures (:mod:`arabicpeft.plots`,
:mod:`arabicpeft.paper_plots`), writing them — the one writer of tables (CSV + LaTeX) and figures (PNG + PDF) — and
returning them for display; :func:`published_figures` writes the paper's figures from its published data (notebook
04), and :func:`project_path` resolves a notebook's relative paths against the project root.

Public: :func:`project_path`, :func:`published_figures`, :class:`StudyReport`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from . import paper_plots, plots, profiles, stats
from .analysis import (BANK_COLUMNS, BASELINE, PEFT, NoPairs, bank_comparison, bootstrap_replicates,
                       compare_methods, comparison_statement, gain_forgetting_table, rate_table, routing_confusion,
                       routing_table, scored_rows, system_table)
from .dialects import MSA
from .paper import WITH_PRETRAINING, WITHOUT_PRETRAINING, figure_data
from .results import BANK_TRAIN_SET, TRAINED, TRAINING, load_runs
from .tables import (by_group, by_method, efficiency_summary, group_label, held_out_table, matrix_table,
                     noise_curve, pool_sizes, published_pool_size, scored_start)


def project_path(path) -> Path:
    """``path`` as an absolute path: kept when absolute; a relative one is resolved against the project root.

    The project root is the nearest directory at or above the working directory that holds both
    ``pyproject.toml`` and the ``arabicpeft`` package, so ``"runs/study"`` means the same folder from the
    repository root and from a notebook kernel running in ``notebooks/``. Without such a directory (an
    installed package, e.g. on Kaggle) the working directory is the root.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "arabicpeft" / "__init__.py").is_file():
            return folder / path
    return cwd / path


# Writing: tables as CSV + LaTeX, figures as PNG + PDF --------------------------------------------------------

_DPI = 200


def _save_table(df: pd.DataFrame, path_stem, float_format: str | None = "%.2f", caption: str | None = None,
                label: str | None = None, index: bool = False) -> list[Path]:
    """Write ``df`` as ``{path_stem}.csv`` (full precision) and ``{path_stem}.tex`` (pandas ``to_latex``,
    numbers formatted with ``float_format``, booktabs rules); returns the two paths. NaN is written as "--"
    in LaTeX and as an empty field in the CSV."""
    paths = [Path(f"{path_stem}.csv"), Path(f"{path_stem}.tex")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(paths[0], index=index)
    formatter = (lambda v: float_format % v) if float_format else None
    latex = df.to_latex(index=index, float_format=formatter, na_rep="--", caption=caption, label=label,
                        escape=True)
    paths[1].write_text(latex, encoding="utf-8")
    return paths


def _save_figure(fig, path_stem) -> list[Path]:
    """Write ``fig`` as ``{path_stem}.png`` (DPI 200) and ``{path_stem}.pdf``; returns the two paths."""
    paths = [Path(f"{path_stem}.png"), Path(f"{path_stem}.pdf")]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    return paths


class _Note(str):
    """Markdown text that a notebook displays formatted (IPython reads ``_repr_markdown_``); a plain str otherwise."""

    def _repr_markdown_(self) -> str:
        return str(self)


_SYNTHETIC_NOTICE = _Note("**Synthetic sample data:** some or all of these runs were trained and scored on the "
                          "espeak-ng sample set. Their numbers only show that the pipeline works.")


def _file_label(label: str) -> str:
    """A label as part of a file name: runs of characters other than letters, digits, ".", "+" and "-" become
    "_" ("lora fp32 r32" -> "lora_fp32_r32"); past 80 characters it is cut and a hash of the whole added."""
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(label)).strip("_")
    if len(name) > 80:
        name = f"{name[:70]}_{hashlib.sha1(str(label).encode('utf-8')).hexdigest()[:8]}"
    return name


def _pool_statement(pools: pd.DataFrame) -> _Note:
    """The sizes of the natural and balanced pools side by side, so that size is not taken for balance."""
    sizes = pools.groupby("mixture")[["pool_records", "published_records"]].first()
    ours = ", ".join(f"{m} {int(r):,}" for m, r in sizes["pool_records"].dropna().items()) or "not recorded"
    published = ", ".join(f"{m} {published_pool_size(m):,}" for m in ("natural", "balanced"))
    text = (f"**Pooled train sets.** Records in the pools of these runs (before filters and the validation split): "
            f"{ours}. On the full otozz train sets (published sizes, `arabicpeft.dialects`): {published} "
            "(balanced: 5 x the smallest dialect). ")
    if len(sizes) > 1 and sizes["pool_records"].nunique() > 1:
        text += ("The balanced pool is smaller as well as balanced: a difference between the two models is one of "
                 "size and balance together.")
    else:
        text += "A balanced pool of the full sets is smaller as well as balanced: size is not balance."
    return _Note(text)


def _data_notice(frame: pd.DataFrame, root) -> _Note:
    """What a reader must know before any number of ``frame`` (``Runs.runs`` or ``Runs.scores()`` rows read from
    ``root``): that there are none, that some come from the synthetic sample set (:data:`_SYNTHETIC_NOTICE`), or
    nothing (an empty Note)."""
    if frame.empty:
        missing = "" if Path(root).is_dir() else " (the folder does not exist: a typo?)"
        return _Note(f"No results in `{root}`{missing}: run a study into it, or point the notebook at a folder of "
                     "results.")
    return _SYNTHETIC_NOTICE if frame["synthetic"].eq(True).any() else _Note("")


def published_figures(out_dir) -> list:
    """The paper's Figs. 1–4 from its published per-seed results (:func:`arabicpeft.paper.figure_data`), each
    written under ``out_dir`` as ``fig1_msa_trainsize``, ``fig2_pretraining``, ``fig3_pooled_vs_specific`` and
    ``fig4_heatmap`` (PNG + PDF; Figs. 2 and 4 of WER, Fig. 4 with MSA pre-training). Returns the four figures
    in that order."""
    figures = paper_plots.draw_figures(figure_data(), ["wer"], curve_label="whisper-small fine-tuned on MSA",
                                       metric_in_name=False)
    for stem, fig in figures.items():
        _save_figure(fig, Path(out_dir) / stem)
    return list(figures.values())


class StudyReport:
    """The analysis of one study's runs, one section per method: each computes its tables and figures, writes
    them under :attr:`output_dir` (tables as CSV + LaTeX, figures as PNG + PDF) and returns what a notebook
    shows, in order (tables, figures and Markdown notes), for ``display(*section)``. Every section runs on every
    design (:data:`arabicpeft.designs.DESIGNS`, and a folder of single runs and evaluations); a section a study has
    no data for returns [a Note saying so].

    ``runs``: a :class:`~arabicpeft.results.Runs` (``load_runs(root)`` or :func:`arabicpeft.study.run_if_empty`),
    or the folder to read it from. With no results there, every section returns [a Note saying so].
    ``output_dir``: where the tables and figures go (relative paths: :func:`project_path`; None: the runs
    root's ``analysis`` folder). ``scheme``: the scoring read ("raw", "leaderboard", "ar_norm_v2", ...), named
    in the captions. ``n_boot``: bootstrap replicates and permutations (None: 10,000; 2,000 under the ci
    profile). ``margin``: the equivalence margin of :meth:`comparison` in % points (default
    :data:`stats.EQUIVALENCE_MARGIN`, 1 point; why there), set before looking at the results.

    A *system* is a run without its seed (the reader's ``system`` column: every config field but the seed and
    where/how it was run, its start, stage and kind); nothing is averaged across systems, and every table and
    figure names a system by that label (each field that differs between systems). Runs stopped by their time
    budget before their last step are left out (:attr:`left_out`; :meth:`overview` counts and names them).
    Rates and differences are in % (points).
    """

    def __init__(self, runs, output_dir=None, scheme: str = "raw", n_boot: int | None = None,
                 margin: float = stats.EQUIVALENCE_MARGIN):
        runs = runs if hasattr(runs, "runs") else load_runs(runs)
        stopped = runs.runs["stopped_by_time_budget"].eq(True) if not runs.runs.empty else pd.Series(dtype=bool)
        self.left_out = runs.runs[stopped]  # unfinished: never averaged with finished runs, nor shown
        self.runs = runs.subset(~stopped) if stopped.any() else runs
        self.output_dir = project_path(output_dir) if output_dir else Path(self.runs.root) / "analysis"
        self.scheme = scheme
        self.n_boot = bootstrap_replicates(n_boot)
        self.margin = margin
        self._utterances = self._scores = None

    def __repr__(self) -> str:
        return f"StudyReport({self.runs!r} -> {self.output_dir}, scheme {self.scheme!r}, n_boot {self.n_boot})"

    @property
    def utterances(self) -> pd.DataFrame:
        """``runs.utterances(scheme)``, read once: per-utterance counts of the trained and starting models."""
        if self._utterances is None:
            self._utterances = self.runs.utterances(scheme=self.scheme)
        return self._utterances

    @property
    def scores(self) -> pd.DataFrame:
        """``runs.scores(scheme)``, read once: corpus scores of the trained and starting models."""
        if self._scores is None:
            self._scores = self.runs.scores(scheme=self.scheme)
        return self._scores

    def _save(self, name: str, table: pd.DataFrame | None = None, fig=None, **table_options) -> None:
        if table is not None:
            _save_table(table, self.output_dir / name, **table_options)
        if fig is not None:
            _save_figure(fig, self.output_dir / name)

    def _no_results(self) -> list | None:
        """[the no-results Note] when there are no (finished) runs, else None."""
        return [_data_notice(self.runs.runs, self.runs.root)] if self.runs.runs.empty else None

    def overview(self) -> list:
        """The runs at a glance: a Note with where the results are read from and written to, the profile and
        n_boot, each study manifest's run counts, the runs left out (stopped by their time budget) and what a
        reader must know first (no results, or results of the synthetic sample set); then the runs per system
        (runs, seeds, test sets); then, where the study trained on pooled sets, :func:`pool_sizes` (natural vs
        balanced, in these runs and by the published sizes) as a Note and a table."""
        runs = self.runs
        lines = [f"Results: `{runs.root}`; tables and figures: `{self.output_dir}`; profile "
                 f"{profiles.current()!r}, scheme {self.scheme!r}, n_boot = {self.n_boot}."]
        lines += [f"study {m['design']['name']}: {m['counts']}" for m in runs.manifests()]
        if not self.left_out.empty:
            lines.append(f"Left out of every section: {len(self.left_out)} run(s) stopped by their time budget before "
                         f"their last step ({', '.join(map(str, self.left_out['run_id']))}); rerun the study to "
                         "finish them.")
        notice = _Note("\n\n".join([*lines, _data_notice(runs.runs, runs.root)]).strip())
        if runs.runs.empty:
            return [notice]
        table = runs.runs.groupby("system", sort=False, dropna=False).agg(
            kind=("kind", "first"), stage=("stage", "first"), variant=("variant", "first"),
            train_set=("train_set", "first"), runs=("run_id", "nunique"), seeds=("seed", lambda s: sorted(set(s))),
            test_sets=("eval_test_sets", "first"))
        pools = pool_sizes(runs.runs)
        return [notice, table] + ([_pool_statement(pools), pools] if not pools.empty else [])

    def rates(self) -> list:
        """WER/CER per run (:func:`rate_table`: corpus rate with its utterance-bootstrap CI) and per system
        (:func:`system_table`: mean over seeds, SD, bootstrap CI of the mean and t-interval over seeds), written
        as ``rates_per_run`` and ``rates`` (tables) and ``rates`` (figure, :func:`plots.fig_rates`, one bar per
        system, labelled by it). Returns [system table, figure]."""
        if notice := self._no_results():
            return notice
        per_run = rate_table(self.utterances, n_boot=self.n_boot)
        rates = system_table(self.utterances, n_boot=self.n_boot)
        fig = plots.fig_rates(rates, per_run=per_run)
        self._save("rates_per_run", per_run, caption=f"Corpus WER/CER (%, {self.scheme}) per run, 95% bootstrap CI",
                   label="tab:rates-per-run")
        self._save("rates", rates, fig, caption=f"Corpus WER/CER (%, {self.scheme}), mean over seeds",
                   label="tab:rates")
        return [rates, fig]

    def comparison(self, a: str = BASELINE, b: str = PEFT) -> list:
        """Variant ``b`` vs ``a`` (default every adapter variant vs full fine-tuning; :func:`compare_methods`: Δ with
        its t-interval and Holm-adjusted t-test over seeds, TOST equivalence within :attr:`margin`, Hedges' g,
        and the utterance-level CI and permutation p conditional on the seeds), written as ``peft_vs_full`` (table
        and figure, :func:`plots.fig_method_comparison`). Returns [the WER and CER :func:`comparison_statement`
        as a Note, the table, the figure], or [a Note] when no cell has runs of both (yet)."""
        if notice := self._no_results():
            return notice
        try:
            table = compare_methods(self.utterances, a=a, b=b, margin=self.margin, n_boot=self.n_boot)
        except NoPairs as e:
            return [_Note(f"{e} No comparison: a study still running, or a design without both.")]
        fig = plots.fig_method_comparison(table)
        self._save("peft_vs_full", table, fig, float_format="%.4g",
                   caption=f"{b} vs {a}: difference of seed means (% points), t-interval and TOST (margin "
                           f"{self.margin:g}) over seeds", label="tab:peft-vs-full")
        statements = _Note("\n\n".join(comparison_statement(table, metric) for metric in ("wer", "cer")))
        return [statements, table, fig]

    def matrix(self) -> list:
        """The train x test matrix of each group of training runs that differ only in their train set and seed
        (one method, one context: study stage, start, mixture, ...; :func:`by_group`) and have more than one
        cell: :func:`matrix_table` ("mean (± sd)" over seeds of WER) and :func:`paper_plots.fig4_heatmap` (all train
        sets, titled by the group), both written as ``matrix_<group>``. Returns [a Note "**<group>**", table,
        figure] per matrix, or [a Note] when no group has more than one cell."""
        if notice := self._no_results():
            return notice
        shown = []
        for group, part in by_group(self.scores).items():
            if part["train_set"].nunique() * part["test_set"].nunique() < 2:
                continue
            table = matrix_table(part)
            fig = paper_plots.fig4_heatmap(part, condition=None, drop_train_sets=())
            fig.suptitle(group)
            self._save(f"matrix_{_file_label(group)}", table, fig, index=True, float_format=None,
                       caption=f"WER (%, {self.scheme}), {group}: mean (± sd) over seeds")
            shown += [_Note(f"**{group}**"), table, fig]
        return shown or [_Note("No train x test matrix: each group of runs has one train set and one test set.")]

    def gain_forgetting(self) -> list:
        """Gain and forgetting of every run that scored its starting model (:func:`scored_start`,
        :func:`gain_forgetting_table` for WER and CER, one group per context and method), written as
        ``gain_forgetting`` (table) and ``gain_forgetting_{wer,cer}`` (figures, :func:`plots.fig_gain_forgetting`,
        one colour per group). Returns [WER figure, CER figure, table], or [a Note] when no run scored its
        starting model."""
        if notice := self._no_results():
            return notice
        with_start = scored_start(self.utterances)
        if with_start.empty:
            return [_Note("No run scored its starting model (`evaluate_before`): no gain/forgetting table.")]
        table = pd.concat([gain_forgetting_table(with_start, metric=m, n_boot=self.n_boot) for m in ("wer", "cer")],
                          ignore_index=True)
        table.insert(0, "group", [group_label(v, c) for v, c in zip(table["variant"], table["context"])])
        self._save("gain_forgetting", table, label="tab:gain-forgetting",
                   caption="Gain and forgetting relative to the starting model (% points, 95% CI)")
        figures = []
        for metric in ("wer", "cer"):
            figures.append(plots.fig_gain_forgetting(table[table["metric"] == metric], hue="group"))
            self._save(f"gain_forgetting_{metric}", fig=figures[-1])
        return [*figures, table]

    def bank(self) -> list:
        """The adapter bank against its alternatives (:func:`bank_comparison`), written as ``bank_vs_pooled``
        (table and figure, :func:`plots.fig_rates`). Returns [the :data:`BANK_COLUMNS` of the table, the figure],
        or [a Note] when the runs hold no adapter-bank evaluation."""
        if notice := self._no_results():
            return notice
        if not (self.utterances["train_set"] == BANK_TRAIN_SET).any():
            return [_Note("No adapter-bank evaluation in this study (designs adapter_bank and offline-mini have one).")]
        table = bank_comparison(self.utterances, n_boot=self.n_boot)
        fig = plots.fig_rates(table)
        self._save("bank_vs_pooled", table, fig, float_format="%.4g",
                   caption=f"Adapter bank vs pooled and own-dialect models (%, {self.scheme}), mean over seeds")
        return [table[BANK_COLUMNS], fig, *self._routing()]

    def routing(self) -> list:
        """The routing section alone (as :meth:`bank` ends): [its table, the confusion matrix], or [a Note] when no
        bank evaluation of the study holds a routing section (a bank without a dialect router)."""
        if notice := self._no_results():
            return notice
        return self._routing() or [_Note("No bank evaluation here was routed by a dialect router (a bank evaluated "
                                         "without one, or an older study).")]

    def _routing(self) -> list:
        """The bank routed by its dialect router vs the data's label, the pooled adapter and the base
        (:func:`routing_table`, mean over seeds) and the router's confusion matrix (:func:`plots.fig_confusion`),
        written as ``bank_routing``; [] when no bank evaluation holds a routing section."""
        routed = routing_table(self.runs.runs, self.scheme)
        if routed.empty:
            return []
        table = (routed.groupby(["test_set", "routing"], sort=False)[["wer", "cer", "identifier_accuracy", "n"]]
                 .mean().reset_index())
        fig = plots.fig_confusion(routing_confusion(self.runs.runs))
        self._save("bank_routing", table, fig, float_format="%.4g", caption="Adapter bank routed by its dialect "
                   f"identifier vs oracle routing, the pooled adapter and the base (%, {self.scheme}), mean over seeds")
        return [table, fig]

    def msa_curve(self, msa: str = MSA) -> list:
        """The MSA train-size curve of each method (:func:`arabicpeft.paper_plots.msa_trainsize_frame` and
        :func:`~arabicpeft.paper_plots.fig1_msa_trainsize`), table and figure written as ``msa_curve_<variant>``.
        Returns the figures, or [a Note] when the training runs on ``msa`` do not span several train sizes."""
        if notice := self._no_results():
            return notice
        scores = self.scores
        trained_msa = scores[(scores["dialect"] == msa) & (scores["kind"] == TRAINING)]
        if trained_msa["n_train"].nunique() < 2:
            return [_Note("No MSA train-size curve in this study (the paper design has one).")]
        figures = []
        for variant, part in by_method(trained_msa).items():
            curve = paper_plots.msa_trainsize_frame(scores[scores["path"].isin(set(part["path"]))], msa=msa)
            figures.append(paper_plots.fig1_msa_trainsize(curve, curve_label=f"{variant} on MSA"))
            self._save(f"msa_curve_{_file_label(variant)}", curve, figures[-1], float_format="%.4g")
        return figures

    def noise_curve(self) -> list:
        """WER/CER against SNR (:func:`arabicpeft.tables.noise_curve`: per system and noise, pooled over test sets,
        mean over seeds; the clean score beside it) and :func:`plots.fig_noise_curve`, written as ``noise_curve``.
        Returns [table, figure], or [a Note] when no run holds scores on noisy test sets."""
        if notice := self._no_results():
            return notice
        table = noise_curve(self.scores)
        if table.empty:
            return [_Note("No scores on noisy test sets in these runs: score a model with e.g. `evaluate "
                          "--transform clean,noise-white-20dB,noise-white-10dB,noise-white-5dB,noise-white-0dB`.")]
        fig = plots.fig_noise_curve(table)
        self._save("noise_curve", table, fig, caption=f"WER/CER (%, {self.scheme}) against SNR, pooled over test "
                   "sets, mean over seeds", label="tab:noise-curve")
        return [table, fig]

    def held_out(self) -> list:
        """Each system's WER/CER per test set with the sets it was trained on, those related to its training data
        (same or related source) and held-out ones marked apart (:func:`arabicpeft.tables.held_out_table`), written
        as ``held_out``. Returns [a Note, table], or [a Note] when no scored set has a known relation."""
        if notice := self._no_results():
            return notice
        table = held_out_table(self.scores)
        if table.empty:
            return [_Note("No scored set with a known relation to its model's training data (base models only).")]
        self._save("held_out", table, caption=f"WER/CER (%, {self.scheme}) on sets trained on, related to the "
                   "training data, and held out", label="tab:held-out")
        counts = table["relation"].value_counts().reindex(table["relation"].cat.categories, fill_value=0)
        return [_Note("Scores on sets related to the training data (the same recordings or source) are not "
                      "held-out scores; rows per relation: " + ", ".join(f"{k} {v}" for k, v in counts.items())),
                table]

    def efficiency(self) -> list:
        """The efficiency table (:func:`efficiency_summary`: per system, mean and SD over seeds of trainable
        parameters, peak memory, wall time, samples/s and bytes on disk) and :func:`plots.fig_efficiency`, both
        written as ``efficiency``. Returns [figure, table], or [a Note] without training runs."""
        if notice := self._no_results():
            return notice
        if not (self.runs.runs["kind"] == TRAINING).any():
            return [_Note("No training runs (evaluations only): no training cost to report.")]
        table = efficiency_summary(self.runs.runs)
        fig = plots.fig_efficiency(self.runs.runs)
        self._save("efficiency", table, fig, float_format="%.4g", caption="Efficiency, mean and SD over seeds",
                   label="tab:efficiency")
        return [fig, table]

    def paper_figures(self, metrics=("wer", "cer"), msa: str = MSA) -> list:
        """The paper's four figures from these runs (a :func:`arabicpeft.designs.paper` study), one set per method.

        Per variant (:func:`by_method`; each figure holds that variant's runs, with their starting models'
        scores; :func:`arabicpeft.paper_plots.own_figure_data`): Fig. 1, Figs. 2 and 4 once per metric of
        ``metrics``, Fig. 3, each titled with the variant and written as ``fig1_msa_trainsize_<variant>``,
        ``fig2_pretraining_<metric>_<variant>``, ``fig3_pooled_vs_specific_<variant>``,
        ``fig4_heatmap_<metric>_<variant>`` (spaces of the variant label become "_"). Returns the data notice
        first when there is one (no results, or synthetic ones), then the figures: all Fig. 1s, then Figs. 2, 3
        and 4; or [a Note] for a study that is not of the paper's design (no runs of both conditions and on
        ``msa``).
        """
        scores = self.scores
        notice = _data_notice(scores, self.runs.root)
        if scores.empty:
            return [notice]
        trained = scored_rows(scores, TRAINED)
        conditions = set(trained["condition"])
        if not ({WITH_PRETRAINING, WITHOUT_PRETRAINING} <= conditions and (trained["train_set"] == msa).any()):
            return [_Note("Not a study of the paper's design (no runs trained on MSA and on the dialects with and "
                          "without MSA pre-training): no paper figures.")]
        by_variant = {}
        for variant, rows in by_method(scores).items():
            frames = paper_plots.own_figure_data(scores[scores["path"].isin(set(rows["path"]))], msa=msa)
            by_variant[variant] = paper_plots.draw_figures(frames, metrics, curve_label=f"own runs on MSA: {variant}",
                                                           title=variant)
        figures = []
        for stem in ["fig1_msa_trainsize", "fig2_pretraining", "fig3_pooled_vs_specific", "fig4_heatmap"]:
            for variant, drawn in by_variant.items():
                for name, fig in drawn.items():
                    if name.startswith(stem):
                        self._save(f"{name}_{_file_label(variant)}", fig=fig)
                        figures.append(fig)
        return ([notice] if notice else []) + figures
