"""arabicpeft: parameter-efficient fine-tuning of Whisper for multi-dialect Arabic ASR."""

__version__ = "0.1.0"
