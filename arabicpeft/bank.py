"""An adapter bank: one base Whisper and one LoRA adapter per dialect, loaded together as peft named adapters.

Each utterance is decoded with its dialect's adapter (the dialect label comes with the data); a batch that mixes
dialects is decoded in one ``generate`` call with peft's per-sample ``adapter_names``. With every adapter
disabled the bank is exactly the base model.

Public: :class:`AdapterBank`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from . import backbones
from .config import ExperimentConfig
from .device import PeakMemory
from .model import count_parameters, load_model
from .results import BANK_TRAIN_SET, EVALUATION, MIB, dir_bytes, read_results, record, write_results
from .run_dir import BEFORE_UTTERANCES_FILE, write_csv_atomic

_BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in adapter_names


class AdapterBank:
    """An adapter bank loaded for decoding: one base Whisper with one LoRA adapter per dialect.

    ``AdapterBank(adapters)``: {dialect: adapter directory, or the run directory holding it in ``model/``} (e.g.
    the runs of a study; they must share one base model, window and precision, else ValueError; ValueError too for
    an empty mapping, an unknown dialect or a member that is not an adapter), loaded by
    :func:`arabicpeft.model.load_model`;
    :meth:`from_study`: the bank a study evaluated. ``adapters``: {dialect: Path}; ``loaded``: the
    :class:`arabicpeft.model.LoadedModel` (kind "bank"), whose ``model`` takes peft's per-utterance
    ``adapter_names`` (e.g. in :func:`arabicpeft.evaluate.transcribe`) and whose ``config`` is the first adapter's
    training config.
    """

    def __init__(self, adapters: dict):
        started = time.monotonic()
        self.loaded = load_model(adapters)
        self.adapters = {d: Path(p) for d, p in self.loaded.adapters.items()}  # run folders resolved to model/
        self._load_s = time.monotonic() - started
        self._results = None  # this bank's evaluation (results.json), once evaluated or found in a study

    @classmethod
    def from_study(cls, root, seed: int) -> "AdapterBank":
        """The adapter bank a study under ``root`` evaluated for ``seed`` (its adapters from that evaluation's
        results file). Raises FileNotFoundError when ``root`` holds no bank evaluation of ``seed``."""
        path = _bank_run(root, seed)["path"]
        bank = cls(read_results(path)["config"]["extra"]["bank"])
        bank._results = Path(path)
        return bank

    def evaluate(self, cfg: ExperimentConfig, out_dir) -> Path:
        """Score the bank on the test sets of ``cfg`` that have an adapter, each utterance with its dialect's
        adapter in mixed-dialect batches; the same utterances with the adapters disabled give the base model's
        scores (``metrics_before``). Writes a results file of kind "evaluation" (config: ``cfg`` with the bank in
        ``extra["bank"]``) with per-utterance rows, decoding time and the bank's size on disk and in parameters
        (its ``run_wall_time_s`` includes loading the bank); returns its path. Raises ValueError when no test set
        of ``cfg`` has an adapter."""
        self._results = _evaluate(self, cfg, out_dir)
        return self._results

    def compare_on_dialect(self, dialect: str, n_utterances: int, batch_size: int = 16) -> pd.DataFrame:
        """The first ``n_utterances`` of ``dialect``'s test set (from the bank's model, source and data path)
        decoded with the dialect's own adapter, the bank's first other adapter (if any) and the base model (adapters
        disabled), side by side: columns utt_index, reference, then per adapter the hypothesis and its word errors
        (raw scheme), and a last row "corpus WER (%)" per adapter. Raises ValueError when the bank has no adapter
        for ``dialect`` or ``n_utterances`` is below 1."""
        from .data import load_test_sets

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


def _evaluate(bank: "AdapterBank", cfg: ExperimentConfig, out_dir) -> Path:
    """:meth:`AdapterBank.evaluate`."""
    from .data import load_test_sets
    from .evaluate import decoding_record, transcribe
    from .metrics import pooled_metrics, score_all

    started = time.monotonic() - bank._load_s  # the run's wall time counts loading the bank
    adapters, loaded = bank.adapters, bank.loaded
    model, processor, trained = loaded.model, loaded.processor, loaded.config
    wanted = [t for t in cfg.test_set_names() if t in adapters]
    if not wanted:
        raise ValueError(f"No test set of {cfg.test_set_names()} has an adapter in the bank ({list(adapters)}).")
    eval_cfg = dataclasses.replace(trained, test_sets=wanted, max_test_samples=cfg.max_test_samples,
                                   source=cfg.source, data_path=cfg.data_path, streaming=False)
    tests, report, synthetic = load_test_sets(eval_cfg, processor.tokenizer, max_seconds=loaded.window_seconds)
    pooled = datasets.concatenate_datasets([tests[t] for t in wanted])
    names, order = _mixed_order({t: len(tests[t]) for t in wanted}, seed=cfg.seed)
    mixed = pooled.select(order.tolist())
    kw = dict(batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, precision=trained.precision)
    peak = PeakMemory()
    t0 = time.monotonic()
    mixes = backbones.of(model).mixes_adapters(model)
    if mixes:
        refs, hyps = transcribe(model, processor, mixed, adapter_names=names, desc="bank (mixed batches)", **kw)
    else:  # decoded adapter by adapter, in the same order
        refs, hyps = [""] * len(names), [""] * len(names)
        for name in dict.fromkeys(names):
            rows = [i for i, n in enumerate(names) if n == name]
            with _only(model, name):
                got = transcribe(model, processor, mixed.select(rows), desc=f"bank ({name})", **kw)
            for i, r, h in zip(rows, *got):
                refs[i], hyps[i] = r, h
    decode_s = time.monotonic() - t0
    with model.disable_adapter():
        base_refs, base_hyps = transcribe(model, processor, mixed, desc="base (adapters disabled)", **kw)
    memory = peak.read()

    metrics, before, rows, before_rows = {}, {}, [], []
    for t in wanted:
        positions = [i for i, n in enumerate(names) if n == t]
        # back to each test set's own order (utt_index as in every other run's rows)
        positions = sorted(positions, key=lambda i: order[i])
        ds = tests[t]
        ids = list(ds["id"]) if "id" in ds.column_names else None
        for store, frames, r, h in ((metrics, rows, refs, hyps), (before, before_rows, base_refs, base_hyps)):
            store[t], frame = score_all([r[i] for i in positions], [h[i] for i in positions], ids)
            frame.insert(0, "test_set", t)
            frames.append(frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
        evaluation={"test_sets": wanted, "source": cfg.source, "adapter_per_test_set": {t: t for t in wanted},
                    "batches": "mixed dialects, one adapter per utterance (peft adapter_names)" if mixes else
                    "one adapter at a time (this model's adapters cannot be mixed in a batch)",
                    "not_in_bank": [t for t in cfg.test_set_names() if t not in adapters]},
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
