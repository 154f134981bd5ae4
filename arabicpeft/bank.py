"""An adapter bank: one base Whisper and one LoRA adapter per dialect, loaded together as peft named adapters.

Each utterance is decoded with its dialect's adapter: the dialect label that comes with the data (oracle routing),
or the dialect its :class:`arabicpeft.routing.DialectRouter` predicts from the base encoder's states (fitted on the
bank's own training data by :meth:`AdapterBank.train_router`). A batch that mixes dialects is decoded in one
``generate`` call with peft's per-sample ``adapter_names``. With every adapter disabled the bank is exactly the
base model.

Public: :class:`AdapterBank`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from . import backbones
from .config import ExperimentConfig
from .device import PeakMemory
from .model import count_parameters, load_model
from .results import BANK_TRAIN_SET, EVALUATION, MIB, dir_bytes, read_results, record, write_results
from .routing import BASE_ADAPTER as _BASE_ADAPTER
from .routing import AUTO, DEFAULT_THRESHOLD, ROUTER_FILE, DialectRouter
from .run_dir import BEFORE_UTTERANCES_FILE, write_csv_atomic

ROUTED_UTTERANCES_FILE = "routed_utterances.csv"  # each test utterance's predicted dialect, adapter and transcript


class AdapterBank:
    """An adapter bank loaded for decoding: one base Whisper with one LoRA adapter per dialect.

    ``AdapterBank(adapters)``: {dialect: adapter directory, or the run directory holding it in ``model/``} (e.g.
    the runs of a study; they must share one base model, window and precision, else ValueError; ValueError too for
    an empty mapping, an unknown dialect or a member that is not an adapter), loaded by
    :func:`arabicpeft.model.load_model`;
    :meth:`from_study`: the bank a study evaluated. ``adapters``: {dialect: Path}; ``loaded``: the
    :class:`arabicpeft.model.LoadedModel` (kind "bank"), whose ``model`` takes peft's per-utterance
    ``adapter_names`` (e.g. in :func:`arabicpeft.evaluate.transcribe`) and whose ``config`` is the first adapter's
    training config. ``router``: its :class:`~arabicpeft.routing.DialectRouter` (given, as the path of one, or
    found as :data:`~arabicpeft.routing.ROUTER_FILE` in a bank folder), None until :meth:`train_router`.
    """

    def __init__(self, adapters, router=None):
        started = time.monotonic()
        self.loaded = load_model(adapters)
        self.adapters = {d: Path(p) for d, p in self.loaded.adapters.items()}  # run folders resolved to model/
        self._load_s = time.monotonic() - started
        self._results = None  # this bank's evaluation (results.json), once evaluated or found in a study
        folder = None if isinstance(adapters, Mapping) else Path(adapters)  # a bank folder keeps its router
        self.router_path = Path(router) if isinstance(router, (str, Path)) else folder and folder / ROUTER_FILE
        self.router = router if isinstance(router, DialectRouter) else (
            DialectRouter.load(self.router_path) if self.router_path and self.router_path.is_file() else None)

    def train_router(self, max_per_dialect: int = 200, batch_size: int = 16, out=None) -> DialectRouter:
        """Fit the bank's dialect identifier (:func:`arabicpeft.routing.fit_router`) on the pooled base-encoder
        states of the bank's own training data: for each single-variety adapter, the training split it was
        trained on (its config's source, data path, sample cap and seed; its validation split held out), at most
        ``max_per_dialect`` utterances (the first). Saves it to ``out`` (a file or folder; default: the bank
        folder's :data:`~arabicpeft.routing.ROUTER_FILE`; ValueError for a bank given as a mapping without
        ``out``), keeps it as :attr:`router` and returns it. ValueError for a bank of fewer than two dialects."""
        from .routing import dataset_states, fit_router

        out = out if out is not None else self.router_path
        if out is None:
            raise ValueError("This bank was given as a mapping: give train_router an out path for the router file.")
        states, labels, trained_on = _training_states(self, max_per_dialect, batch_size, dataset_states)
        self.router = fit_router(states, labels, model=self.loaded.config.model,
                                 window_seconds=self.loaded.window_seconds, trained_on=trained_on)
        self.router_path = self.router.save(out)
        return self.router

    def route(self, dataset, threshold: float = DEFAULT_THRESHOLD, batch_size: int = 16) -> dict:
        """Each record of ``dataset``'s adapter as the bank's router chooses it
        (:meth:`arabicpeft.routing.DialectRouter.routes`: lists ``adapter``, ``predicted``, ``confidence``, plus
        ``fallback`` and ``threshold``). ValueError when the bank has no router (fit one with :meth:`train_router`)
        or it was fitted on another base or window."""
        from .routing import dataset_states

        router = self.require_router()
        return router.routes(dataset_states(self.loaded.model, self.loaded.processor, dataset, batch_size),
                             self.adapters, threshold)

    def require_router(self) -> DialectRouter:
        """:attr:`router`, checked against the bank's base and window; ValueError when there is none."""
        if self.router is None:
            raise ValueError("This adapter bank has no dialect router: fit one with AdapterBank.train_router() (a "
                             "study's bank stage fits one), or give each utterance its dialect.")
        self.router.check_base(self.loaded.config.model, self.loaded.window_seconds)
        return self.router

    @classmethod
    def from_study(cls, root, seed: int) -> "AdapterBank":
        """The adapter bank a study under ``root`` evaluated for ``seed`` (its adapters from that evaluation's
        results file). Raises FileNotFoundError when ``root`` holds no bank evaluation of ``seed``."""
        path = _bank_run(root, seed)["path"]
        router = Path(path).parent / ROUTER_FILE
        bank = cls(read_results(path)["config"]["extra"]["bank"], router if router.is_file() else None)
        bank._results = Path(path)
        return bank

    def evaluate(self, cfg: ExperimentConfig, out_dir, threshold: float = DEFAULT_THRESHOLD,
                 routed: bool = False) -> Path:
        """Score the bank on the test sets of ``cfg`` that have an adapter, each utterance with its dialect's
        adapter in mixed-dialect batches; the same utterances with the adapters disabled give the base model's
        scores (``metrics_before``). A bank with a router is also scored routed by it (at ``threshold``) and, when
        it holds a pooled adapter, with that adapter alone: the record's ``evaluation["routing"]``
        (:func:`_routing_section`) and :data:`ROUTED_UTTERANCES_FILE`; ``routed``: the routed scores are the
        record's ``metrics`` and rows (the data's label then only in the routing section; what ``evaluate
        --dialect auto`` scores). Writes a results file of kind "evaluation" (config: ``cfg`` with the bank in
        ``extra["bank"]``) with per-utterance rows, decoding time and the bank's size on disk and in parameters
        (its ``run_wall_time_s`` includes loading the bank); returns its path. Raises ValueError when no test set
        of ``cfg`` has an adapter, for a threshold outside [0, 1], or when ``routed`` and the bank has no router."""
        self._results = _evaluate(self, cfg, out_dir, threshold, routed)
        return self._results

    def compare_on_dialect(self, dialect: str, n_utterances: int, batch_size: int = 16) -> pd.DataFrame:
        """The first ``n_utterances`` of ``dialect``'s test set (from the bank's model, source and data path)
        decoded with the dialect's own adapter, the bank's first other adapter (if any) and the base model (adapters
        disabled), side by side: columns utt_index, reference, then per adapter the hypothesis and its word errors
        (raw scheme), and a last row "corpus WER (%)" per adapter. ``dialect`` "auto": the first ``n_utterances``
        of each of the bank's dialects, routed by its router (:func:`_compare_routed`). Raises ValueError when the
        bank has no adapter for ``dialect`` (or no router, for "auto") or ``n_utterances`` is below 1."""
        from .data import load_test_sets

        if dialect == AUTO:
            return _compare_routed(self, n_utterances, batch_size)
        if int(n_utterances) < 1:
            raise ValueError(f"compare_on_dialect needs n_utterances of at least 1, got {n_utterances}: give how "
                             "many test utterances to decode.")

        model, processor, cfg = self.loaded.model, self.loaded.processor, self.loaded.config
        if dialect not in model.peft_config:
            raise ValueError(f"this bank has no adapter for {dialect!r}: choose one of "
                             f"{', '.join(n for n in model.peft_config if n != _BASE_ADAPTER)}.")
        wanted = ExperimentConfig(model=cfg.model, source=cfg.source, data_path=cfg.data_path, test_sets=[dialect],
                                  max_test_samples=n_utterances)
        tests, _, _ = load_test_sets(wanted, processor.tokenizer)
        others = [name for name in model.peft_config if name != dialect][:1]
        return _compare_adapters(model, processor, tests[dialect], [dialect, *others, _BASE_ADAPTER],
                                 batch_size=batch_size)

    def cost_summary(self) -> str:
        """What the bank costs, as one Markdown sentence from its evaluation's results file: the number of
        adapters, their weights on disk (MiB), the adapter parameters on a base of (total − adapter) parameters,
        and the seconds that decoding the mixed-dialect test sets took. Raises ValueError for a bank not yet
        evaluated (:meth:`evaluate`) nor found in a study (:meth:`from_study`)."""
        if self._results is None:
            raise ValueError("This bank has no evaluation yet: run AdapterBank.evaluate, or load a study's bank "
                             "with AdapterBank.from_study.")
        eff = read_results(self._results)["efficiency"]
        base = eff["total_parameters"] - eff["adapter_parameters"]
        return (f"Bank of {len(self.adapters)} adapters: {eff['weights_bytes'] / MIB:.2f} MiB of adapter weights "
                f"on disk ({eff['adapter_parameters']:,.0f} adapter parameters on a {base:,.0f}-parameter base); "
                f"decoding the mixed-dialect test sets took {eff['decode_wall_time_s']:.1f} s.")


def _mixed_order(sizes: dict[str, int], seed: int = 0) -> tuple[list[str], np.ndarray]:
    """A seeded interleaving of several test sets, so that batches mix dialects.

    Returns (the set name of each position, the permutation applied to the concatenated sets)."""
    names = [name for name, n in sizes.items() for _ in range(n)]
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order], order


def _set_positions(names: list[str], order: np.ndarray, test_set: str) -> list[int]:
    """The positions of ``test_set``'s utterances in a :func:`_mixed_order`, in the test set's own order."""
    return sorted((i for i, n in enumerate(names) if n == test_set), key=lambda i: order[i])


def _decode_per_utterance(model, processor, mixed, names: list, mixes: bool, kw: dict) -> tuple[list, list]:
    """(references, hypotheses) of ``mixed``, each utterance decoded with its adapter ``names[i]``: in mixed
    batches (peft ``adapter_names``) when the model's adapters mix, else adapter by adapter, in the same order."""
    from .evaluate import transcribe

    if mixes:
        return transcribe(model, processor, mixed, adapter_names=names, desc="bank (mixed batches)", **kw)
    refs, hyps = [""] * len(names), [""] * len(names)
    for name in dict.fromkeys(names):
        rows = [i for i, n in enumerate(names) if n == name]
        with _only(model, name):
            got = transcribe(model, processor, mixed.select(rows), desc=f"bank ({name})", **kw)
        for i, r, h in zip(rows, *got):
            refs[i], hyps[i] = r, h
    return refs, hyps


def _evaluate(bank: "AdapterBank", cfg: ExperimentConfig, out_dir, threshold: float, routed: bool) -> Path:
    """:meth:`AdapterBank.evaluate`."""
    from .data import load_test_sets
    from .evaluate import decoding_record, transcribe
    from .sources import DATASET_OPTIONS
    from .metrics import pooled_metrics, score_all
    from .routing import check_threshold

    check_threshold(threshold)
    if routed:
        bank.require_router()
    started = time.monotonic() - bank._load_s  # the run's wall time counts loading the bank
    adapters, loaded = bank.adapters, bank.loaded
    model, processor, trained = loaded.model, loaded.processor, loaded.config
    wanted = [t for t in cfg.test_set_names() if t in adapters]
    if not wanted:
        raise ValueError(f"No test set of {cfg.test_set_names()} has an adapter in the bank ({list(adapters)}).")
    eval_cfg = dataclasses.replace(trained, dialect=wanted[0], test_sets=wanted, source=cfg.source, streaming=False,
                                   max_test_samples=cfg.max_test_samples, data_path=cfg.data_path,
                                   **{f: getattr(cfg, f) for f in DATASET_OPTIONS})  # the dataset and its columns
    tests, report, synthetic = load_test_sets(eval_cfg, processor.tokenizer, max_seconds=loaded.window_seconds)
    pooled = datasets.concatenate_datasets([tests[t] for t in wanted])
    names, order = _mixed_order({t: len(tests[t]) for t in wanted}, seed=cfg.seed)
    mixed = pooled.select(order.tolist())
    kw = dict(batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, precision=trained.precision)
    peak = PeakMemory()
    t0 = time.monotonic()
    mixes = backbones.of(model).mixes_adapters(model)
    refs, hyps = _decode_per_utterance(model, processor, mixed, names, mixes, kw)
    decode_s = time.monotonic() - t0
    with model.disable_adapter():
        base_refs, base_hyps = transcribe(model, processor, mixed, desc="base (adapters disabled)", **kw)
    memory = peak.read()

    metrics, before, rows, before_rows = {}, {}, [], []
    for t in wanted:
        positions = _set_positions(names, order, t)  # utt_index as in every other run's rows
        ds = tests[t]
        ids = list(ds["id"]) if "id" in ds.column_names else None
        for store, frames, r, h in ((metrics, rows, refs, hyps), (before, before_rows, base_refs, base_hyps)):
            store[t], frame = score_all([r[i] for i in positions], [h[i] for i in positions], ids)
            frame.insert(0, "test_set", t)
            frames.append(frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    routing, routed_rows = (None, None) if bank.router is None else _routing_section(
        bank, mixed, (names, order, tests), {"oracle": metrics, "base": before}, kw, threshold, out)
    if routed:  # the router's choice is the evaluation; the data's label stays in routing["metrics"]["oracle"]
        metrics, rows = routing["metrics"]["predicted"], routed_rows
    write_csv_atomic(out / BEFORE_UTTERANCES_FILE, pd.concat(before_rows, ignore_index=True))
    rows = pd.concat(rows, ignore_index=True)
    _, total = count_parameters(model)
    adapter_bytes = {d: sum(f.stat().st_size for f in p.glob("*.safetensors")) for d, p in adapters.items()}
    config = dataclasses.replace(cfg, extra={**cfg.extra, "bank": {d: str(p) for d, p in adapters.items()}})
    result = record(
        out, kind=EVALUATION, config=config.to_dict(),
        data={"source": cfg.source, "synthetic": synthetic, "test": report,
              "n_test": {t: len(tests[t]) for t in wanted}},
        synthetic=synthetic, metrics=metrics, metrics_pooled=pooled_metrics(rows), metrics_before=before,
        utterances_before_file=BEFORE_UTTERANCES_FILE,
        evaluated_model={d: str(p.resolve()) for d, p in adapters.items()},
        evaluation={"test_sets": wanted, "source": cfg.source,
                    "adapter_per_test_set": "routed by the dialect router" if routed else {t: t for t in wanted},
                    "batches": "mixed dialects, one adapter per utterance (peft adapter_names)" if mixes else
                    "one adapter at a time (this model's adapters cannot be mixed in a batch)",
                    "not_in_bank": [t for t in cfg.test_set_names() if t not in adapters],
                    **({"routing": routing} if routing else {})},
        efficiency={
            "total_parameters": total,
            # the adapters' weights are named with their tuner's prefix ("lora_", "ia3_", ...)
            "adapter_parameters": sum(p.numel() for n, p in model.named_parameters() if model.base_model.prefix in n),
            "adapters_bytes": adapter_bytes,
            "weights_bytes": sum(adapter_bytes.values()),
            "saved_dir_bytes": sum(dir_bytes(p) for p in adapters.values()),
            "decode_wall_time_s": decode_s,
            "run_wall_time_s": time.monotonic() - started,
            "peak_memory": memory,
        },
        provenance={"decoding": decoding_record(), "model_family": backbones.of(model).family})
    return write_results(out, result, rows)


def _training_states(bank: "AdapterBank", max_per_dialect: int, batch_size: int, states_of) -> tuple:
    """(pooled states, dialect labels, where they came from) of :meth:`AdapterBank.train_router`'s data."""
    from . import dialects
    from .data import load_splits

    singles = {d: p for d, p in bank.adapters.items() if not dialects.variety(d).is_pooled}
    if len(singles) < 2:
        raise ValueError(f"A dialect router needs a bank of at least two single-dialect adapters; this one holds "
                         f"{', '.join(bank.adapters)}.")
    loaded = bank.loaded
    parts, labels, per_dialect = [], [], {}
    for dialect, path in singles.items():
        cfg = dataclasses.replace(ExperimentConfig.saved_with(path), streaming=False)
        train = load_splits(cfg, loaded.processor.tokenizer, loaded.window_seconds,
                            backbones.of(loaded.model).label_positions(loaded.model)).train
        used = train.select(range(min(len(train), int(max_per_dialect))))
        parts.append(states_of(loaded.model, loaded.processor, used, batch_size))
        labels += [dialect] * len(used)
        per_dialect[dialect] = {"adapter": str(path), "source": cfg.source, "data_path": cfg.data_path,
                                "train_split_utterances": len(train), "used": len(used)}
    return np.concatenate(parts), labels, {
        "data": "each adapter's own training split (its validation split held out), the first max_per_dialect",
        "max_per_dialect": int(max_per_dialect), "per_dialect": per_dialect}


def _routing_section(bank: "AdapterBank", mixed, order_of: tuple, scored: dict, kw: dict, threshold: float,
                     out: Path) -> dict:
    """(the ``routing`` section of a bank evaluation, the routed decode's per-utterance rows as
    :func:`arabicpeft.metrics.score_all` gives them with ``test_set``): the mixed test utterances routed by the
    bank's router and, when the bank holds a pooled adapter, all decoded with it; ``metrics`` per routing
    ("oracle": the data's label, "predicted", "pooled adapter", "base") and test set; the identifier's accuracy
    and confusion matrix (overall and per test set); how many utterances went to the fallback. Writes
    :data:`ROUTED_UTTERANCES_FILE`."""
    from .evaluate import transcribe
    from .metrics import score_all
    from .routing import confusion

    names, order, tests = order_of
    model, processor = bank.loaded.model, bank.loaded.processor
    routes = bank.route(mixed, threshold, batch_size=kw["batch_size"])
    runs = {"predicted": routes["adapter"]}
    if routes["fallback"] != _BASE_ADAPTER:
        runs["pooled adapter"] = [routes["fallback"]] * len(mixed)
    metrics = {"oracle": scored["oracle"]}
    frames, rows = [], []
    for label, adapter_names in runs.items():
        refs, hyps = transcribe(model, processor, mixed, adapter_names=adapter_names, desc=f"bank ({label})", **kw)
        metrics[label] = {}
        for t in tests:
            positions = _set_positions(names, order, t)
            ids = list(tests[t]["id"]) if "id" in tests[t].column_names else None
            metrics[label][t], frame = score_all([refs[i] for i in positions], [hyps[i] for i in positions], ids)
            if label == "predicted":
                frame.insert(0, "test_set", t)
                rows.append(frame)
                frames.append(pd.DataFrame({
                    "test_set": t, "utt_index": range(len(positions)),
                    **{k: [routes[k][i] for i in positions] for k in ("predicted", "confidence", "adapter")},
                    "hypothesis": [hyps[i] for i in positions]}))
    metrics["base"] = scored["base"]
    write_csv_atomic(out / ROUTED_UTTERANCES_FILE, pd.concat(frames, ignore_index=True))
    classes = bank.router.classes
    per_set = {t: confusion([names[i] for i in _set_positions(names, order, t)],
                            [routes["predicted"][i] for i in _set_positions(names, order, t)], classes)["accuracy"]
               for t in tests}
    return {"threshold": routes["threshold"], "fallback": routes["fallback"], "metrics": metrics,
            "identifier": {**confusion(names, routes["predicted"], classes), "accuracy_per_test_set": per_set},
            "to_fallback": int(sum(a == routes["fallback"] for a in routes["adapter"])),
            "router": {k: v for k, v in vars(bank.router).items() if k not in ("coef", "intercept", "mean", "scale")},
            "routed_utterances_file": ROUTED_UTTERANCES_FILE}, rows


def _compare_routed(bank: "AdapterBank", n_utterances: int, batch_size: int = 16) -> pd.DataFrame:
    """The first ``n_utterances`` of each test set the bank has a single-dialect adapter for, routed by its router
    (:data:`~arabicpeft.routing.DEFAULT_THRESHOLD`) and with their own dialect's adapter: columns test_set,
    predicted, confidence, adapter (the router's choice), reference, then per routing ("routed", "oracle") the
    hypothesis and its word errors (raw scheme)."""
    from . import dialects
    from .data import load_test_sets
    from .evaluate import transcribe
    from .metrics import utterance_errors

    model, processor, cfg = bank.loaded.model, bank.loaded.processor, bank.loaded.config
    own = [d for d in bank.adapters if not dialects.variety(d).is_pooled]
    wanted = ExperimentConfig(model=cfg.model, source=cfg.source, data_path=cfg.data_path, test_sets=own,
                              max_test_samples=max(1, int(n_utterances)))
    tests, _, _ = load_test_sets(wanted, processor.tokenizer, max_seconds=bank.loaded.window_seconds)
    mixed = datasets.concatenate_datasets([tests[t] for t in own])
    labels = [t for t in own for _ in range(len(tests[t]))]
    routes = bank.route(mixed, batch_size=batch_size)
    frame = pd.DataFrame({"test_set": labels, **{k: routes[k] for k in ("predicted", "confidence", "adapter")}})
    for name, names in (("routed", routes["adapter"]), ("oracle", labels)):
        refs, hyps = transcribe(model, processor, mixed, batch_size=batch_size, adapter_names=names, desc=name)
        frame["reference"] = refs
        frame[f"{name}: hypothesis"] = hyps
        frame[f"{name}: word errors"] = utterance_errors(refs, hyps, "raw")["word_errors"].to_numpy()
    return frame


@contextlib.contextmanager
def _only(model, name: str):
    """``model`` (a peft model of several adapters) decoding with adapter ``name`` alone (:data:`_BASE_ADAPTER`:
    every adapter disabled); its active adapter is restored after."""
    if name == _BASE_ADAPTER:
        with model.disable_adapter():
            yield
        return
    active = model.active_adapter
    model.set_adapter(name)
    try:
        yield
    finally:
        model.set_adapter(active)


def _compare_adapters(model, processor, dataset, adapter_names: list[str], batch_size: int = 16) -> pd.DataFrame:
    """Each utterance of ``dataset`` decoded with each of ``adapter_names`` (names in the bank, or
    :data:`_BASE_ADAPTER` for the base model), side by side: columns utt_index, reference, then per name the
    hypothesis and its word errors (raw scheme), plus a last row "corpus WER (%)" per name."""
    from .evaluate import transcribe
    from .metrics import utterance_errors

    frame = None
    for name in adapter_names:
        with _only(model, name):
            refs, hyps = transcribe(model, processor, dataset, batch_size=batch_size, desc=name)
        errors = utterance_errors(refs, hyps, "raw")
        if frame is None:
            frame = pd.DataFrame({"utt_index": range(len(refs)), "reference": refs})
            words = errors["ref_words"].to_numpy()
        frame[f"{name}: hypothesis"] = hyps
        frame[f"{name}: word errors"] = errors["word_errors"].to_numpy()
    total = {"utt_index": "corpus WER (%)", "reference": ""}
    for name in adapter_names:
        total[f"{name}: hypothesis"] = ""
        total[f"{name}: word errors"] = round(100.0 * frame[f"{name}: word errors"].sum() / words.sum(), 2)
    return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)


def _bank_run(root, seed: int) -> pd.Series:
    """The ``load_runs(root).runs`` row of the adapter-bank evaluation of ``seed``."""
    from .results import load_runs

    runs = load_runs(root).runs
    bank = runs[(runs["train_set"] == BANK_TRAIN_SET) & (runs["seed"] == seed)] if not runs.empty else runs
    if bank.empty:
        raise FileNotFoundError(f"No adapter-bank evaluation for seed {seed} under {root}: run a study with a bank "
                                "stage (design adapter_bank or the offline-mini preset) first.")
    return bank.iloc[0]
