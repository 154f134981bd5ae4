import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# Tests never reach the hub; converted models are cached once per machine (see offline_model.cache_root).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SR = 16_000
PREFIX = [50258, 50272, 50359, 50363]  # <|startoftranscript|><|ar|><|transcribe|><|notimestamps|>
EOT = 50257


@pytest.fixture(scope="session")
def tiny_processor():
    from transformers import WhisperProcessor

    from arabicpeft.offline_model import resolve_model

    processor = WhisperProcessor.from_pretrained(resolve_model("tiny-random"))
    processor.tokenizer.set_prefix_tokens(language="ar", task="transcribe", predict_timestamps=False)
    return processor


def tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio_manifest(root: Path, rows: list[dict], split: str = "train") -> Path:
    """rows: dicts with 'seconds' (or 'file_bytes'), 'text', optional 'dialect'; writes WAVs + {split}.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, row in enumerate(rows):
        name = f"{split}-{i}.wav"
        if "file_bytes" in row:
            (root / name).write_bytes(row["file_bytes"])
        else:
            sf.write(root / name, tone(row["seconds"]), row.get("rate", SR))
        lines.append({"id": f"{split}-{i}", "audio": name, "text": row["text"], **({"dialect": row["dialect"]} if "dialect" in row else {})})
    path = root / f"{split}.jsonl"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return path


def otozz_labels(tokenizer, text: str) -> list[int]:
    """Labels exactly as the otozz hub sets store them: prefix + text tokens + <|endoftext|>."""
    return PREFIX + tokenizer.encode(text, add_special_tokens=False) + [EOT]
