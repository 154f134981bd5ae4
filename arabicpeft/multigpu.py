"""Training on several GPUs from a notebook (DDP through accelerate's ``notebook_launcher``).

It sits above :mod:`arabicpeft.train` and imports it only inside the launched processes: importing
``arabicpeft.train`` imports peft, which imports bitsandbytes, which queries every GPU's compute capability and so
initialises CUDA — after which ``notebook_launcher`` refuses to fork. From a terminal, use ``torchrun
--nproc_per_node N -m arabicpeft train ...`` instead.

Public: :func:`train_on_gpus`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import UserError
from .run_dir import RESULTS_FILE


def _train(cfg):  # the function each launched process runs (imported there: see the module docstring)
    from .train import run

    return run(cfg)


def train_on_gpus(cfg, num_processes: Optional[int] = None) -> Path:
    """Train ``cfg`` (an :class:`~arabicpeft.config.ExperimentConfig`) with DDP from a notebook: accelerate's
    ``notebook_launcher`` starts ``num_processes`` processes (default: one per visible CUDA GPU), each running
    :func:`arabicpeft.train.run`; returns the path of the results JSON.

    The processes are forked from the notebook, so call this in a fresh kernel before anything touches CUDA
    (:func:`arabicpeft.device.gpu_info` does) or imports ``arabicpeft.train``: accelerate refuses otherwise. Both
    GPUs must be visible: set ``CUDA_VISIBLE_DEVICES="0,1"`` before :func:`arabicpeft.device.pin_single_gpu`
    runs, which respects it. On a CPU, ``num_processes`` gloo processes (how the tests check it). Raises
    UserError when no GPU is visible and ``num_processes`` is not given.
    """
    import torch
    from accelerate import notebook_launcher

    count = torch.cuda.device_count() if num_processes is None else num_processes  # via NVML: CUDA untouched
    if count < 1:
        raise UserError("no CUDA GPU is visible to train on", "train with arabicpeft.train.run(cfg) on this "
                        "machine, or pass num_processes to run that many CPU processes.")
    notebook_launcher(_train, (cfg,), num_processes=count)
    return Path(cfg.output_dir) / RESULTS_FILE
