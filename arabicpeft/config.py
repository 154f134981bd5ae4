"""One plain dataclass configures a run; the CLI, the notebooks and the results files share it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

METHODS = ("lora", "full")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "nf4")
SOURCES = ("hub", "local", "sample")
MIXTURES = ("natural", "balanced")  # how a pooled train set ("all") draws on its dialects

# LoRA target presets. Names match the Linear layers of transformers' Whisper.
LORA_TARGETS = {
    "qv": ["q_proj", "v_proj"],  # the project we replace, and the LoRA paper's default
    "qkvo": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "all-linear": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
}

# Paper protocol (Özyılmaz et al. 2025) for full fine-tuning; LoRA needs a larger step size.
DEFAULT_LR = {"full": 1e-5, "lora": 1e-3}
# The paper's decoding budget (their evaluate_dialects.py), for exact reproduction: it cuts references longer
# than 225 tokens, which the 448-position label filter admits. Our default (None) is the model's own limit.
PAPER_GENERATION_MAX_LENGTH = 225


@dataclass
class ExperimentConfig:
    # what to train
    dialect: str = "egyptian"
    method: str = "lora"
    model: str = "openai/whisper-small"  # hub id, local directory, or an offline name (see offline_model)
    precision: str = "fp32"
    seed: int = 42  # paper: 42 / 84 / 168; picks the train/validation split and the initialisation

    # data
    source: str = "hub"
    data_path: Optional[str] = None  # for source="local"
    streaming: bool = False
    val_fraction: float = 0.2
    test_sets: Optional[list[str]] = None  # default: the training set's own variety (or varieties, for "all")
    max_train_samples: Optional[int] = None
    train_fraction: float = 1.0  # train on the first round(fraction x n) training utterances (paper's MSA curve)
    mixture: str = "natural"  # pooled sets: "natural" proportions, or "balanced" (equal records per dialect)
    max_train_per_dialect: Optional[int] = None  # pooled sets: at most this many records of each dialect
    max_eval_samples: Optional[int] = None
    max_test_samples: Optional[int] = None
    encoder_seconds: Optional[float] = None  # cut the encoder window below the model's 30 s (None: keep)

    # LoRA
    lora_r: int = 32
    lora_alpha: int = 64
    lora_dropout: float = 0.05
    lora_targets: str = "qv"  # a preset name from LORA_TARGETS or a comma-separated list of module names
    use_dora: bool = False
    init_adapter: Optional[str] = None  # a saved LoRA adapter to continue training (instead of a fresh one)

    # optimisation (Seq2SeqTrainer)
    learning_rate: Optional[float] = None  # None: DEFAULT_LR[method]
    warmup_steps: int = 500
    max_steps: int = 5000
    batch_size: int = 8
    eval_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    adam_beta2: float = 0.999
    weight_decay: float = 0.0
    gradient_checkpointing: bool = False
    eval_steps: int = 250  # evaluation and checkpoint interval
    early_stopping_patience: Optional[int] = 3  # None or 0: no early stopping
    logging_steps: int = 25
    # transcript tokens greedy decoding may produce; None: the model's limit (max_target_positions less the
    # 4-token prompt), so every admitted reference can be matched; PAPER_GENERATION_MAX_LENGTH reproduces the paper
    generation_max_length: Optional[int] = None
    num_workers: int = 0
    time_budget_s: Optional[float] = None  # stop cleanly (and save) once training has run this long
    evaluate_before: bool = True  # score the starting model on the test sets too

    # where
    output_dir: str = "runs/experiment"
    resume_from: Optional[str] = None  # a checkpoint directory to resume from (e.g. an attached Kaggle dataset)
    extra: dict = field(default_factory=dict)  # free-form notes carried into the results file

    def __post_init__(self) -> None:
        from . import dialects

        self.dialect = dialects.get(self.dialect).name
        if self.test_sets is not None:
            self.test_sets = [dialects.get(t).name for t in self.test_sets]
        for name, value, allowed in (
            ("method", self.method, METHODS),
            ("precision", self.precision, PRECISIONS),
            ("source", self.source, SOURCES),
            ("mixture", self.mixture, MIXTURES),
        ):
            if value not in allowed:
                raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(allowed)}.")
        if self.source == "local" and not self.data_path:
            raise ValueError("source='local' needs data_path: a save_to_disk directory or an audio manifest.")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}.")
        if not 0.0 < self.train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {self.train_fraction}.")
        if self.init_adapter and self.method != "lora":
            raise ValueError("init_adapter continues a LoRA adapter: it needs method='lora'.")
        if self.method == "full" and self.precision in ("int8", "nf4"):
            raise ValueError(
                f"Full fine-tuning of a {self.precision}-quantized model is not possible (its weights are frozen "
                "integers); use method='lora' (QLoRA) or precision fp32/fp16/bf16."
            )
        self.target_modules()  # validate early

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.method]

    def target_modules(self) -> list[str]:
        if self.lora_targets in LORA_TARGETS:
            return list(LORA_TARGETS[self.lora_targets])
        modules = [m.strip() for m in self.lora_targets.split(",") if m.strip()]
        if not modules:
            raise ValueError(f"lora_targets must be one of {', '.join(LORA_TARGETS)} or module names.")
        return modules

    def test_set_names(self) -> list[str]:
        from . import dialects

        return list(self.test_sets) if self.test_sets else list(dialects.get(self.dialect).parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config fields: {', '.join(unknown)}. Remove them; the fields are those of "
                             "ExperimentConfig (python -m arabicpeft train --help).")
        return cls(**values)

    @classmethod
    def from_json(cls, path) -> "ExperimentConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


def demo_config(output_dir: str = "runs/demo") -> ExperimentConfig:
    """The main job: whisper-base (from PyPI, no hub) + LoRA on the embedded synthetic sample set, on CPU.

    The encoder window is cut to 8 s (every sample clip is shorter) so that it trains on 2 CPU cores in
    minutes; validation runs once, at the end, to keep the time for training.
    """
    return ExperimentConfig(
        dialect="all", method="lora", model="whisper-base", precision="fp32", seed=42, source="sample",
        encoder_seconds=8, lora_targets="qkvo", learning_rate=1e-3, warmup_steps=10, max_steps=60,
        batch_size=8, eval_batch_size=16, eval_steps=60, early_stopping_patience=None, max_eval_samples=30,
        logging_steps=10, generation_max_length=48, output_dir=output_dir,
    )
