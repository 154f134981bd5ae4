"""Dialect routing for an adapter bank: a dialect identifier on the frozen base encoder's states.

Features: the base model's encoder output (the adapters disabled; the backbone's ``encoder_states``), mean-pooled
over the frames that hold the clip's audio (the window's padding left out): one d_model vector per utterance (512
for whisper-base). No other model is loaded: the bank's own base computes them.
Classifier: multinomial logistic regression (scikit-learn's ``LogisticRegression``, L2 with C = :data:`_C`, on
standardised features; scikit-learn comes with librosa), fitted on the bank's own training data. It is kept as
plain JSON (:data:`ROUTER_FILE`, beside the adapters): weights, bias, standardisation, classes, the layer and
pooling it reads, the base model and window, and the data it was fitted on with counts; prediction is numpy.
Routing: an utterance goes to the adapter of its most probable dialect when that probability is above the
threshold (:data:`DEFAULT_THRESHOLD`), else to the fallback (:func:`fallback_adapter`: the bank's pooled adapter
if it has one, else the base model).

Public: :data:`ROUTER_FILE`, :data:`AUTO`, :data:`BASE_ADAPTER`, :data:`DEFAULT_THRESHOLD`, :data:`LAYER`,
:data:`POOLING`, :class:`DialectRouter`, :func:`pooled_states`, :func:`dataset_states`, :func:`fit_router`,
:func:`fallback_adapter`, :func:`check_threshold`, :func:`confusion`, :func:`router_of`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from . import backbones, dialects

ROUTER_FILE = "router.json"
AUTO = "auto"  # the dialect option that asks a bank's router for each utterance's dialect
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in adapter_names
# Route to a dialect's adapter only when the identifier gives that dialect more than half the probability: it is
# then more likely than all the other dialects together; at or below, the prediction is at least as likely wrong as
# right (were the probabilities calibrated), and the pooled adapter (trained on every dialect) or the base is the
# safer choice. On the sample set's whisper-base states, predictions above 0.5 were right 48.5% of the time, the
# others 25.9% (benchmarks/README.md).
DEFAULT_THRESHOLD = 0.5
LAYER = "encoder output (last layer, layer-normed)"
POOLING = "mean over the frames holding the clip's audio (the window's padding left out)"
# Inverse L2 strength. On the sample set's whisper-base states (15 clips a dialect) C = 0.01, 0.1 and 1 named 41.7,
# 38.3 and 36.7% of the 60 test clips right: the middle value is kept, not the best (no tuning on test data).
_C = 0.1


@dataclasses.dataclass
class DialectRouter:
    """A fitted dialect identifier (:func:`fit_router`), saved and read back whole as JSON.

    ``classes``: the dialects (bank adapter names), in the order of the rows of ``coef`` (classes x d_model) and
    ``intercept``; ``mean`` / ``scale``: the standardisation of the features (d_model each); ``model`` and
    ``window_seconds``: the base and encoder window whose states it reads (:data:`LAYER`, :data:`POOLING`);
    ``trained_on``: the data it was fitted on (per dialect: source, data path, utterances) and its accuracy on it.
    """

    classes: list
    coef: list
    intercept: list
    mean: list
    scale: list
    model: str
    window_seconds: int
    trained_on: dict
    layer: str = LAYER
    pooling: str = POOLING
    C: float = _C

    def save(self, path) -> Path:
        """Write the router as JSON to ``path`` (a ``.json`` file, or a folder that gets :data:`ROUTER_FILE`; made
        where missing); returns the file's path."""
        path = _router_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path) -> "DialectRouter":
        """The router saved at ``path`` (a file, or a folder holding :data:`ROUTER_FILE`). Raises
        FileNotFoundError when there is none (saying how to make one), ValueError for a file that is not one."""
        path = _router_file(path)
        if not path.is_file():
            raise FileNotFoundError(f"No dialect router at {path}: fit one with AdapterBank(...).train_router() "
                                    "(a study's bank stage fits one), or give each file its dialect.")
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a dialect router saved by arabicpeft ({e}); fit it again.") from e

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        """P(dialect | utterance) of pooled encoder ``states`` (utterances x d_model): (utterances x classes)."""
        z = (np.asarray(states, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = z @ np.asarray(self.coef).T + np.asarray(self.intercept)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, states: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(the most probable dialect, its probability) of each row of ``states``."""
        p = self.probabilities(states)
        return [self.classes[i] for i in p.argmax(axis=1)], p.max(axis=1)

    def routes(self, states: np.ndarray, adapters, threshold: float = DEFAULT_THRESHOLD) -> dict:
        """Each utterance's adapter: ``adapter`` (peft adapter names; :data:`BASE_ADAPTER` for the base),
        ``predicted`` (dialect) and ``confidence`` (its probability), lists in row order, plus ``fallback`` and
        ``threshold``. An utterance whose confidence is at or below ``threshold`` (1.0: every one), or whose
        dialect has no adapter in ``adapters``, goes to :func:`fallback_adapter`. Raises ValueError for a
        threshold outside [0, 1]."""
        check_threshold(threshold)
        fallback = fallback_adapter(adapters)
        predicted, confidence = self.predict(states)
        chosen = [d if c > threshold and d in adapters else fallback for d, c in zip(predicted, confidence)]
        return {"adapter": chosen, "predicted": predicted, "confidence": confidence.round(6).tolist(),
                "fallback": fallback, "threshold": float(threshold)}

    def check_base(self, model: str, window_seconds: int) -> None:
        """Raise ValueError when the router reads another base or window than ``model`` at ``window_seconds``
        (its states would differ from those it was fitted on)."""
        if (self.model, int(self.window_seconds)) != (model, int(window_seconds)):
            raise ValueError(f"This dialect router was fitted on {self.model} at a {self.window_seconds} s window, "
                             f"the bank runs {model} at {window_seconds} s: fit the router again on this bank.")


def _router_file(path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / ROUTER_FILE


def check_threshold(threshold: float) -> float:
    """``threshold`` as a float; ValueError unless it is a probability in [0, 1]."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"route threshold {threshold} is not a probability: give a value in [0, 1] "
                         f"(default {DEFAULT_THRESHOLD}; 1 sends every utterance to the fallback).")
    return float(threshold)


def fallback_adapter(adapters) -> str:
    """Where an utterance the identifier is unsure of goes: the bank's pooled adapter (dialect
    :data:`arabicpeft.dialects.POOLED`) if ``adapters`` holds one, else :data:`BASE_ADAPTER` (adapters disabled)."""
    return dialects.POOLED if dialects.POOLED in adapters else BASE_ADAPTER


def pooled_states(model, inputs: dict, window_seconds: float, seconds: np.ndarray) -> np.ndarray:
    """Pooled encoder states (batch x d_model, float32) of one batch of model ``inputs``: :data:`LAYER` of the
    base (a peft model's adapters disabled), averaged over :data:`POOLING`: the frames the backbone names as each
    row's, else those of its ``seconds`` of audio in a ``window_seconds`` window (at least one frame)."""
    import torch

    backbone = backbones.of(model)
    param = next(p for p in model.parameters() if p.is_floating_point())
    inputs = {k: v.to(param.device, dtype=param.dtype if v.is_floating_point() else v.dtype)
              for k, v in inputs.items()}
    disabled = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
    with torch.no_grad(), disabled:
        states, valid = backbone.encoder_states(model, inputs)
    states, frames = states.float(), states.shape[1]
    if valid is None:  # the rows span the window: the clip's frames follow from its seconds
        valid = np.clip(np.ceil(np.asarray(seconds) / window_seconds * frames), 1, frames).astype(np.int64)
    valid = torch.as_tensor(valid, device=states.device)
    mask = torch.arange(frames, device=states.device)[None, :] < valid[:, None]
    mask = mask.to(states.dtype)[..., None]
    return ((states * mask).sum(dim=1) / mask.sum(dim=1)).cpu().numpy()


def router_of(loaded) -> DialectRouter:
    """The router of an adapter bank loaded from a folder (an :class:`arabicpeft.model.LoadedModel` of kind
    "bank": its :data:`ROUTER_FILE`), checked against the bank's base and window. FileNotFoundError when the
    folder has none (saying how to fit one), ValueError for a model that is not a bank."""
    if loaded.kind != "bank":
        raise ValueError(f"Dialect routing picks an adapter bank's adapter; {loaded.source} is a {loaded.kind} "
                         "model: give a bank folder, or leave the dialect out.")
    router = DialectRouter.load(loaded.source)
    router.check_base(loaded.config.model, loaded.window_seconds)
    return router


def dataset_states(model, processor, dataset, batch_size: int = 16) -> np.ndarray:
    """:func:`pooled_states` of every record of ``dataset`` (otozz features or audio records, batched by the
    backbone's collator as evaluation batches them), in order: (records x d_model)."""
    from torch.utils.data import DataLoader

    backbone = backbones.of(model)
    window = processor.feature_extractor.chunk_length
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=backbone.collator(processor, model))
    parts = []
    for batch in loader:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        parts.append(pooled_states(model, inputs, window, backbone.seconds(processor, inputs)))
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def fit_router(states: np.ndarray, labels, *, model: str, window_seconds: int,
               trained_on: Optional[dict] = None) -> DialectRouter:
    """Fit a :class:`DialectRouter` on pooled encoder ``states`` (utterances x d_model) and their dialect
    ``labels`` (one per row), read by base ``model`` at ``window_seconds``; ``trained_on`` (where the data came
    from) is recorded with the counts per dialect and the accuracy on the data fitted. Raises ValueError for
    fewer than two dialects, or labels that do not match the rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(labels) != len(states) or len(classes) < 2:
        raise ValueError(f"A dialect router needs utterances of at least two dialects with one label each; got "
                         f"{len(states)} utterances, {len(labels)} labels, dialects {classes.tolist()}.")
    scaler = StandardScaler().fit(states)
    clf = LogisticRegression(C=_C, max_iter=5000).fit(scaler.transform(states), labels)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # scikit-learn keeps one row for two classes: P(second) = sigmoid(row)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    router = DialectRouter(classes=clf.classes_.tolist(), coef=coef.tolist(), intercept=intercept.tolist(),
                           mean=scaler.mean_.tolist(), scale=scaler.scale_.tolist(), model=str(model),
                           window_seconds=int(window_seconds), trained_on={})
    accuracy = float(np.mean(np.asarray(router.predict(states)[0]) == labels))
    router.trained_on = {**(trained_on or {}), "utterances": dict(zip(classes.tolist(), counts.tolist())),
                         "n": int(len(labels)), "accuracy_on_training_data": round(accuracy, 4)}
    return router


def confusion(true, predicted, classes) -> dict:
    """The identifier's accuracy and confusion matrix: ``accuracy``, ``n``, ``classes`` and ``matrix`` (rows:
    true dialect, columns: predicted, counts), over the utterances whose true dialect is one of ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(true, predicted):
        if t in index:
            matrix[index[t], index[p]] += 1
    n = int(matrix.sum())
    return {"accuracy": round(float(np.trace(matrix) / n), 4) if n else None, "n": n, "classes": list(classes),
            "matrix": matrix.tolist()}
