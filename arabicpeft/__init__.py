"""arabicpeft: parameter-efficient fine-tuning of Whisper for multi-dialect Arabic ASR."""

import logging

__version__ = "0.1.0"


class _NoCpu4bitKernelNotice(logging.Filter):
    """Drops bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community ..." and the kernels
    package's "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' ..." (silenced
    here, before anything imports bitsandbytes, deliberately). peft and transformers' Trainer import bitsandbytes
    whatever the precision, and on a CPU with AVX512-BF16 bitsandbytes then tries to fetch an optional 4-bit
    matmul kernel from the hub. arabicpeft never runs 4-bit weights on a CPU (nf4 needs a CUDA GPU:
    ``arabicpeft.device.PRECISION_HARDWARE``), and bitsandbytes falls back to its own CPU code; every other
    message of both loggers still shows."""

    PREFIXES = ("Failed to load CPU gemm_4bit_forward from kernels-community",
                "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes'")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.PREFIXES)


for _logger in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
    logging.getLogger(_logger).addFilter(_NoCpu4bitKernelNotice())
