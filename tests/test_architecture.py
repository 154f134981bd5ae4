"""The layout of ARCHITECTURE.md holds: every module imports only from layers below it and uses no other module's
private (_) names, and the modules a Kaggle bootstrap or the command line imports first load no torch (GPU
pinning must come before torch touches CUDA). What a user reads (code, comments, messages, notebooks, tests) holds
no work-log words."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "arabicpeft"
# A module's rank is above the ranks of everything it imports (ARCHITECTURE.md draws the same layers).
RANK = {
    "__init__": 0, "audio": 0, "dialects": 0, "errors": 0, "manifests": 0, "placement": 0, "text": 0, "whisper_tokens": 0,
    "device": 1, "feature_cache": 1, "methods": 1, "metrics": 1, "paper": 1, "qwen3_asr": 1, "stats": 1,
    "subtitles": 1, "transforms": 1,
    "plots": 2, "whisper": 2,
    "backbones": 3,
    "offline_model": 4, "routing": 4,
    "hub": 5, "records": 5,
    "hub_audio": 6,
    "sources": 7,
    "caching": 8, "config": 8,
    "data": 9, "model": 9, "profiles": 9, "run_dir": 9,
    "evaluation_sets": 10, "results": 10, "trainer": 10,
    "analysis": 11, "comparison": 11, "export": 11, "kaggle": 11, "plan": 11,
    "console": 12, "designs": 12, "evaluate": 12, "paper_plots": 12, "tables": 12,
    "bank": 13, "inference": 13, "report": 13, "train": 13, "transcribe": 13, "widgets": 13,
    "multigpu": 14, "study": 14,
    "commands": 15,
    "options": 16,
    "cli": 17,
    "__main__": 18,
}
UPWARD: set = set()  # imports up the layers, each with its reason: none


def imports(path: Path) -> set[str]:
    """The arabicpeft modules ``path`` imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file())
    return found


def private_uses(path: Path) -> set[str]:
    """``module._name`` of another arabicpeft module that ``path`` imports or reads."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for a in node.names:
                if node.module and a.name.startswith("_"):
                    found.add(f"{node.module}.{a.name}")
                elif not node.module:
                    aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.add(f"{aliases[node.value.id]}.{node.attr}")
    return {name for name in found if name.split(".")[0] != path.stem}


def test_every_module_has_a_layer():
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(RANK)


@pytest.mark.parametrize("module", sorted(RANK))
def test_imports_point_down_the_layers(module):
    upward = {m for m in imports(PACKAGE / f"{module}.py")
              if RANK[m] >= RANK[module] and (module, m) not in UPWARD}
    assert not upward, f"{module} (layer {RANK[module]}) imports {sorted(upward)} from its own layer or above"


def test_no_module_uses_another_modules_private_names():
    used = {p.stem: private_uses(p) for p in PACKAGE.glob("*.py")}
    assert not {m: sorted(names) for m, names in used.items() if names}


# A module holds one thing and a function does one step: past these sizes either has seams to split along.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80


def test_no_module_over_450_lines_and_no_function_over_80():
    too_long = []
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                too_long.append(f"{path.name}: {node.name}() {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, f"over {MAX_MODULE_LINES} lines a module, {MAX_FUNCTION_LINES} a function: {too_long}"


@pytest.mark.parametrize("modules", ["arabicpeft", "arabicpeft.device, arabicpeft.kaggle, arabicpeft.profiles",
                                     "arabicpeft.cli", "arabicpeft.results, arabicpeft.run_dir, arabicpeft.config"])
def test_no_torch_before_gpu_pinning(modules):
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


# Work-log words: they tell a reader about our process, not about the code. Written with [ ] and [e] so that this
# file does not match itself.
WORK_LOG = re.compile(r"\bissues?[ ]#?\d+|\bitem[ ]\d+\b|seed[ ]recipe|this[ ]session|last[ ]stop|review[e]r", re.I)
COMMIT = re.compile(r"\bcommit[ ]`?([0-9a-f]{7,40})\b")
# Commits of other repositories that a source is pinned to.
EXTERNAL_COMMITS = {"8fce859": "Open Universal Arabic ASR Leaderboard, eval.py (arabicpeft/text.py)"}


def test_no_work_log_words_in_what_a_user_reads():
    root = PACKAGE.parent
    found = []
    for folder in ("arabicpeft", "benchmarks", "kaggle", "notebooks", "tests"):
        for path in sorted((root / folder).rglob("*")):
            rel = path.relative_to(root)
            if (path.suffix not in (".py", ".ipynb", ".md", ".json") or rel.parts[:2] == ("kaggle", "build")
                    or {"__pycache__", ".ipynb_checkpoints", "data"} & set(rel.parts)
                    or rel.parts[:2] == ("benchmarks", "results")):  # measured records, as written
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                words = [m.group(0) for m in WORK_LOG.finditer(line)]
                if rel.parts[0] != "benchmarks":  # a benchmark names the commit of the code it measured
                    words += [m.group(0) for m in COMMIT.finditer(line) if m.group(1) not in EXTERNAL_COMMITS]
                found += [f"{rel}:{n}: {w}" for w in words]
    assert not found, "say what the code does instead:\n" + "\n".join(found)
