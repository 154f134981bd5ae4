"""The one resumable launcher of studies (:mod:`arabicpeft.designs` holds the designs, as data).

:func:`run_study` runs a :class:`~arabicpeft.designs.StudyDesign`: each run in ``<root>/<stage>/<name from its
axes>``, finished runs skipped, unfinished ones resumed (on Kaggle also restored from a previous session's output
attached as an input, and held to the session's time budget, by :func:`arabicpeft.kaggle.prepare_run`), progress
printed as "run 7/36: gulf lora seed 84 — resumed at step 1500", and a manifest ``study.json`` (planned, done,
failed, with reasons) written after every run. With ``shard=(k, n)`` one process per GPU runs its part of the plan
into the same root. :func:`arabicpeft.results.load_runs` reads the results.

Public: :func:`run_study`, :func:`run_if_empty`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from . import methods
from .config import ExperimentConfig
from .designs import BANK, PlannedRun, StudyDesign
from .errors import SessionTimeSpent, UserError
from .results import read_results
from .run_dir import RESULTS_FILE, RunDir, write_json_atomic

if TYPE_CHECKING:  # pandas is imported where a table is made
    import pandas as pd

_MANIFEST_FILE = "study.json"
_MANIFEST_SCHEMA = "arabicpeft.study/1"
_MERGED_DIR = "merged"  # an adapter start merged into its base, saved inside the start run's directory


def _is_complete(results_path) -> bool:
    """A results file of a run that trained to its end (not stopped by the time budget)."""
    path = Path(results_path)
    if not path.is_file():
        return False
    return read_results(path).get("training", {}).get("stopped_by_time_budget_at_step") is None


def _start_model(run: PlannedRun, root: Path, cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` pointed at its start run's saved model (merging an adapter start first, once, or continuing it:
    :meth:`~arabicpeft.designs.Start.use`), the path recorded."""
    from .export import merge
    from .run_dir import MODEL_DIR

    start_dir = root / run.start.name
    saved = start_dir / MODEL_DIR
    if not _is_complete(start_dir / RESULTS_FILE):
        raise RuntimeError(f"its start run {run.start.name} has not finished")
    use = run.stage.start.use(run.start.cfg, cfg)
    if use == "continue":
        start = dict(model=run.start.cfg.model, init_adapter=str(saved))
    elif use == "merge":
        merged = start_dir / _MERGED_DIR
        if not merged.is_dir():  # merged once, into a temporary folder renamed when complete
            import shutil

            partial = start_dir / f".{_MERGED_DIR}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            merge(saved, partial)  # at the base's full window; a run with encoder_seconds cuts it again
            partial.rename(merged)
        start = dict(model=str(merged))
    else:
        start = dict(model=str(saved))
    return dataclasses.replace(cfg, **start, extra={**cfg.extra, "init_from": str(saved)})


class _Manifest:
    """``study.json`` in the study root: the design and, per planned run, its status and reason.

    Every write rereads the file under a lock (``study.json.lock``, :mod:`filelock`) and changes only this
    process's entries, so the shards of a study (:func:`run_study` ``shard``) can run at once into one root."""

    def __init__(self, root: Path, design: StudyDesign, plan: list[PlannedRun], shard: Optional[str] = None):
        self.path = root / _MANIFEST_FILE
        self.design = design
        self.shard = shard
        self.runs = {r.name: {"name": r.name, "stage": r.stage.name, "kind": r.stage.kind, "values": r.values,
                              "label": r.label, "start": r.start.name if r.start else None, "status": "planned",
                              "reason": None, "results": None} for r in plan}
        self._update({}, same_design=shard is not None)

    def mark(self, name: str, status: str, reason: Optional[str] = None, results=None) -> None:
        self._update({name: dict(status=status, reason=reason, results=str(results) if results else None,
                                 updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 **({"shard": self.shard} if self.shard else {}))})

    def table(self) -> "pd.DataFrame":
        """One row per planned run: name, status (done, failed, skipped, stopped, planned) and reason."""
        import pandas as pd

        columns = ["name", "status", "reason"]
        return pd.DataFrame([[r[c] for c in columns] for r in self.runs.values()], columns=columns)

    def _update(self, changes: dict, same_design: bool = False) -> Path:
        """Reread the file (what other shards wrote), apply ``changes`` ({run name: fields}), write it back.
        ``same_design``: raise :class:`~arabicpeft.errors.UserError` when the file holds another design (the
        parts of one study must plan the same runs, or some would run twice and others never)."""
        from filelock import FileLock

        design = json.loads(json.dumps(self.design.to_dict()))
        with FileLock(str(self.path) + ".lock"):
            if self.path.is_file():
                recorded = json.loads(self.path.read_text(encoding="utf-8"))
                if same_design and recorded.get("design") != design:
                    raise UserError(f"{self.path} holds another design than this part's {self.shard} (other "
                                    "options, seeds or profile)", "give every part the same options, or delete "
                                    "study.json to re-plan (finished runs are kept and skipped).")
                on_disk = {r["name"]: r for r in recorded.get("runs", [])}
                for name, entry in self.runs.items():  # the plan's fields from this design, the rest as recorded
                    kept = {k: v for k, v in on_disk.get(name, {}).items() if k not in _PLAN_FIELDS}
                    self.runs[name] = {**entry, **kept}
            for name, fields in changes.items():
                self.runs[name].update(fields)
            counts = {}
            for r in self.runs.values():
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            return write_json_atomic(self.path, {"schema": _MANIFEST_SCHEMA, "design": design,
                                                 "counts": counts, "runs": list(self.runs.values())})


_PLAN_FIELDS = ("name", "stage", "kind", "values", "label", "start")  # of a manifest entry: from the design


def _needs(run: PlannedRun, plan: list[PlannedRun]) -> list[PlannedRun]:
    """The runs ``run`` reads: its start model, or for a bank the runs of its source stage with its axis values
    whose method a bank holds (:func:`_bank_adapters`)."""
    if run.stage.kind == BANK:
        return [r for r in plan if r.stage.name == run.stage.bank_of and methods.mixes_in_bank(r.cfg)
                and all(r.values.get(k) == v for k, v in run.values.items())]
    return [run.start] if run.start is not None else []


def _groups(plan: list[PlannedRun]) -> list[list[str]]:
    """The run names of ``plan`` in groups that must run in one process: a start and the runs that start from
    it, a bank and its adapters (:func:`_needs`). In plan order."""
    group = {r.name: r.name for r in plan}  # union-find over run names

    def root(name):
        while group[name] != name:
            group[name] = group[group[name]]
            name = group[name]
        return name

    for run in plan:
        for needed in _needs(run, plan):
            group[root(needed.name)] = root(run.name)
    groups: dict[str, list[str]] = {}
    for run in plan:
        groups.setdefault(root(run.name), []).append(run.name)
    return list(groups.values())


def _shard(plan: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    """Shard ``index`` (1-based) of ``count``: the :func:`_groups` spread largest first onto the shard with the
    fewest runs so far (so the shards get about equal numbers of runs). Runs keep the plan's order."""
    sizes = [0] * count
    mine = set()
    for members in sorted(_groups(plan), key=len, reverse=True):  # stable: plan order among equal sizes
        smallest = sizes.index(min(sizes))
        sizes[smallest] += len(members)
        if smallest == index - 1:
            mine.update(members)
    return [r for r in plan if r.name in mine]


def run_study(design: StudyDesign, root=None, dry_run: bool = False, gpu: Optional[dict] = None,
              log=print, shard: Optional[tuple[int, int]] = None) -> _Manifest | list[PlannedRun]:
    """Run every planned run of ``design`` into ``root`` (default: ``kaggle.output_root()/design.name``).

    Finished runs are skipped; unfinished ones resume from their checkpoint; on Kaggle each run's time budget
    is capped at what is left of the session, a previous session's run attached as an input is restored first,
    and once the session is spent no further run starts (rerun with the output attached to continue). GPU-only
    variants are skipped where ``gpu`` (:func:`arabicpeft.device.gpu_info`, probed when not given) lacks what
    their precision needs (:data:`arabicpeft.device.PRECISION_HARDWARE`), with the reason. A run that fails is
    recorded with its error, and so are the runs that would start from it; the others go on. ``dry_run``: print
    the planned runs, one per line, and return them. Returns the :class:`_Manifest` (also written to
    ``root/study.json``).

    ``shard=(k, n)``: run only the k-th (1-based) of n disjoint parts of the plan, so that n processes, one per
    GPU (``CUDA_VISIBLE_DEVICES=k-1``), run a study at once into one root; runs that depend on each other stay
    in one part; a run another process holds (its lock, :meth:`RunDir.hold`) is left to it. Raises ValueError
    unless 1 <= k <= n, and :class:`~arabicpeft.errors.UserError` when part k is empty (more parts than groups
    of runs) or ``root/study.json`` holds another design.
    """
    from . import device, kaggle
    from .run_dir import RunInUseError

    plan = design.plan()
    label = f"study {design.name}"
    mine = plan
    if shard is not None:
        k, n = shard
        if not 1 <= k <= n:
            raise ValueError(f"shard {k}/{n}: k must be between 1 and n.")
        mine = _shard(plan, k, n)
        label += f" shard {k}/{n}"
        if not mine:
            groups = len(_groups(plan))
            raise UserError(f"part {k} of {n} of study {design.name} is empty: its {len(plan)} runs form {groups} "
                            "groups that each run in one process (a start and the runs that start from it, a bank "
                            "and its adapters)", f"split it into at most {groups} parts (--shard K/{groups}).")
    total = len(mine)
    if dry_run:
        for i, run in enumerate(mine, start=1):
            start = f"  (starts from {run.start.name})" if run.start else ""
            log(f"run {i}/{total}: {run.name}  [{run.cfg.method}, {run.cfg.dialect}, seed {run.cfg.seed}]{start}")
        return mine
    root = Path(root) if root else kaggle.output_root() / design.name
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    manifest = _Manifest(root, design, plan, shard=f"{shard[0]}/{shard[1]}" if shard else None)
    gpu = device.gpu_info() if gpu is None else gpu
    log(f"{label}: {total} of {len(plan)} runs in {root}" if shard else f"{label}: {total} runs in {root}")
    for i, run in enumerate(mine, start=1):
        head = f"run {i}/{total}: {run.label}"
        try:
            with RunDir(root / run.name).hold():  # the run's own lock, which train.run takes again
                _attempt(run, head, manifest, root, gpu, log)
        except RunInUseError as e:
            log(f"{head} — left alone: {e.what}")
        except SessionTimeSpent as e:
            log(f"{head} — not started: {e}")
            for later in mine[i - 1:]:
                if manifest.runs[later.name]["status"] != "done":
                    manifest.mark(later.name, "planned", f"not started: {e}")
            break
    counts = json.loads(manifest.path.read_text(encoding="utf-8"))["counts"]
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if shard:
        mine_counts = collections.Counter(manifest.runs[r.name]["status"] for r in mine)
        summary = ", ".join(f"{n} {s}" for s, n in mine_counts.items()) + f" (whole study: {summary})"
    log(f"{label}: {summary}; manifest {manifest.path}")
    return manifest


def _attempt(run: PlannedRun, head: str, manifest: _Manifest, root: Path, gpu: dict, log) -> None:
    """Run (or skip, resume, record the failure of) one planned run, holding its lock; raises SessionTimeSpent."""
    from . import device, kaggle

    problem = device.precision_problem(run.cfg.precision, gpu)
    if problem:
        log(f"{head} — skipped: {problem}")
        manifest.mark(run.name, "skipped", problem)
        return
    cfg = run.cfg
    try:
        if run.start is not None:
            cfg = _start_model(run, root, cfg)
        cfg = kaggle.prepare_run(cfg, run.name, root=root, log=lambda m: log(f"    {m}"))
    except SessionTimeSpent:
        raise
    except Exception as e:  # recorded; the runs that do not depend on it go on
        log(f"{head} — failed before training: {type(e).__name__}: {e}")
        manifest.mark(run.name, "failed", f"{type(e).__name__}: {e}")
        return
    done = Path(cfg.output_dir) / RESULTS_FILE
    if _is_complete(done):
        log(f"{head} — finished earlier: {done}")
        manifest.mark(run.name, "done", results=done)
        return
    step = RunDir(cfg.output_dir).latest_step()
    log(f"{head} — " + (f"resumed at step {step}" if step is not None else "started"))
    try:
        path = _execute(run, cfg, root)
    except Exception as e:
        log(f"{head} — failed: {type(e).__name__}: {e}")
        manifest.mark(run.name, "failed", f"{type(e).__name__}: {e}")
        return
    if _is_complete(path):
        manifest.mark(run.name, "done", results=path)
        log(f"{head} — done: {path}")
    else:
        step = read_results(path).get("training", {}).get("stopped_by_time_budget_at_step")
        manifest.mark(run.name, "stopped", f"time budget reached at step {step}: rerun to resume", path)
        log(f"{head} — stopped by the time budget at step {step}: rerun (with this output attached) to resume")


def run_if_empty(design: StudyDesign, root, gpu: Optional[dict] = None, log=print):
    """The runs in ``root`` (:func:`arabicpeft.results.load_runs`), after running ``design`` into it with
    :func:`run_study` when ``root`` holds no results file yet; a folder that holds results is read as it is (its
    unfinished runs are not resumed: call :func:`run_study` for that). Returns a :class:`~arabicpeft.results.Runs`."""
    from .results import load_runs

    if load_runs(root).runs.empty:
        run_study(design, root=root, gpu=gpu, log=log)
    return load_runs(root)


def _execute(run: PlannedRun, cfg: ExperimentConfig, root: Path) -> Path:
    if run.stage.kind == BANK:
        from .bank import AdapterBank

        bank = AdapterBank(_bank_adapters(run, root))
        bank.train_router(out=cfg.output_dir)  # the dialect identifier, kept in the bank's run folder
        return bank.evaluate(cfg, cfg.output_dir)
    from .train import run as train

    return train(cfg)


def _bank_adapters(run: PlannedRun, root: Path) -> dict[str, Path]:
    """{dialect: adapter directory} of the bank's source stage: its finished runs of a method a bank holds
    (:func:`arabicpeft.methods.mixes_in_bank`) sharing this run's axes."""
    from .run_dir import MODEL_DIR

    manifest = json.loads((root / _MANIFEST_FILE).read_text(encoding="utf-8"))
    adapters = {}
    for entry in manifest["runs"]:
        if entry["stage"] != run.stage.bank_of or entry["status"] != "done":
            continue
        if any(entry["values"].get(k) != v for k, v in run.values.items()):
            continue
        cfg = read_results(entry["results"])["config"]
        if not methods.mixes_in_bank(cfg):
            continue
        if cfg["dialect"] in adapters:
            raise ValueError(f"Two adapter runs of stage {run.stage.bank_of!r} for {cfg['dialect']!r}: the bank takes "
                             "one adapter per dialect; restrict the stage's variants.")
        adapters[cfg["dialect"]] = Path(entry["results"]).parent / MODEL_DIR
    if not adapters:
        raise RuntimeError(f"no finished adapter run in stage {run.stage.bank_of!r} matches {run.values}")
    return adapters
