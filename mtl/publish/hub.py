"""Pushing an output folder to the Hugging Face Hub as one commit, with the target checked before training.

The token comes from the argument, ``HF_TOKEN`` or the ``hf auth login`` cache (``huggingface_hub.get_token``);
it is never printed, logged or written. ``HF_ENDPOINT`` (read when called) points the client at another Hub.

What is pushed: the model, its card (``README.md``), the reports and plots. Training checkpoints and hidden files
(the ``.mtl-output`` marker, ``.tmp-*`` staging) never leave the machine. Unless the caller passes
``include_private=True`` (recipe: ``hub.include_private: true``), neither do ``test_predictions.csv`` (the user's
raw test inputs) nor ``train_log.jsonl``, ``recipe.yaml`` and ``metrics.json`` when they hold absolute local paths.

Example::

    repo_id = check_push_target("me/rt-minilm")          # before training: token valid, may write there
    push_folder("outputs/sentiment", repo_id, private=True)
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..errors import MtlError
from .output_dir import METRICS_FILE, RECIPE_FILE

logger = logging.getLogger(__name__)

IGNORED = ("checkpoints/", ".*", "*/.*")  # training checkpoints, hidden files (the marker, .tmp-* staging)
PATH_HOLDERS = ("train_log.jsonl", RECIPE_FILE, METRICS_FILE)  # pushed only when they hold no absolute local path
# an absolute local path: /x, ~/x, C:\x (C:\\x in JSON) at a line's start or after a space, quote, '=', '(', '[' or ','
_ABSOLUTE_PATH = re.compile(r"""(?:^|(?<=[\s"'=(\[,]))(?:/|~/|[A-Za-z]:(?:\\{1,2}|/))[\w.~-]""", re.MULTILINE)


class HubError(MtlError):
    """The Hub refused the token or the repository, or no token is available."""


def repo_id_problem(repo_id: str) -> str | None:
    """Why ``repo_id`` is not a valid Hub model id (checked offline), or None when it is."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") > 1:
        return f"{repo_id!r} is not a Hub repository id; write it as owner/name, e.g. my-user/sentiment-minilm"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        return f"{repo_id!r} is not a valid Hub repository id ({str(error).splitlines()[0].rstrip('.')}); " \
               "use letters, digits, '-', '_' and '.' as owner/name"
    return None


CLI_SETTING = "--push-to-hub / hub.repo_id"  # how a run's command line and recipe name the push target


def check_push_target(repo_id: str, token: str | None = None, setting: str = CLI_SETTING) -> str:
    """Check the repo id and that the token is valid and may write to its namespace; return ``owner/name``.
    ``setting`` is how the caller named the target in messages (the CLI flag and recipe key, or a Python argument).

    Call it before training so that a typo or a missing token fails in seconds, not after an hour.
    """
    if problem := repo_id_problem(repo_id):
        raise HubError(f"{setting}: {problem}")
    drop = "drop --push-to-hub / hub.push" if setting == CLI_SETTING else "skip the push"
    token = _token(token)
    try:
        info = _api().whoami(token=token)
    except Exception as error:  # HfHubHTTPError, connection errors
        response = getattr(error, "response", None)
        if response is None:  # no answer from the Hub: offline mode, no network, a proxy
            raise HubError(f"cannot reach the Hugging Face Hub to check the token ({_reason(error)}); pushing needs "
                           f"the Hub: unset HF_HUB_OFFLINE, run where huggingface.co is reachable, or {drop} and "
                           "push the saved folder later") from None
        raise HubError(f"cannot check the Hugging Face token with the Hub: {_reason(error)}. Create a token with "
                       "write access at https://huggingface.co/settings/tokens and set HF_TOKEN or run "
                       "`hf auth login`") from None
    user = info.get("name")
    access = (info.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise HubError(f"the Hugging Face token of {user!r} is read-only; pushing needs a token with write access "
                       "(https://huggingface.co/settings/tokens)")
    full = repo_id if "/" in repo_id else f"{user}/{repo_id}"
    namespaces = {user, *(org.get("name") for org in info.get("orgs") or [])}
    if full.split("/")[0] not in namespaces:
        raise HubError(f"{setting} {full!r}: the token belongs to {user!r}, who cannot write to namespace "
                       f"{full.split('/')[0]!r} (writable: {', '.join(sorted(n for n in namespaces if n))}); "
                       "fix the owner part of the repo id")
    logger.info("hub: will push to %s as %s", full, user)
    return full


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = True, token: str | None = None,
                include_private: bool = False, commit_message: str = "Upload model trained with mtl") -> str:
    """Create ``repo_id`` if needed and upload ``folder`` with ``HfApi.upload_folder`` as one commit; return its URL.

    Checkpoints and hidden files stay local, and so do the files :func:`private_files` names unless
    ``include_private``. (huggingface_hub splits an upload into several commits only past hundreds of files.)
    """
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    token = _token(token)
    withheld = [] if include_private else private_files(folder)
    ignore = [*IGNORED, *withheld]
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = list(filter_repo_objects(present, ignore_patterns=ignore))  # what upload_folder will send
    if not files:
        raise HubError(f"nothing to push: {folder} holds no files")
    api = _api()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, token=token)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, ignore_patterns=ignore, token=token,
                                   commit_message=commit_message)
    except Exception as error:
        raise HubError(f"pushing {folder} to {repo_id} failed: {_reason(error)}") from None
    if withheld:
        logger.info("hub: kept local, as they may hold private data (test inputs, local paths): %s; "
                    "hub.include_private: true (include_private=True) pushes them too", ", ".join(withheld))
    logger.info("hub: pushed %d files to %s (%s)", len(files), repo_id, commit.commit_url)
    return commit.commit_url


def private_files(folder: str | os.PathLike) -> list[str]:
    """The files of ``folder`` kept off the Hub by default: the test predictions (the user's raw test inputs), and
    the training log, recipe and metrics when they hold an absolute local path."""
    from .reports import PREDICTIONS_FILE  # the user's raw test inputs: pushed only when asked

    folder = Path(folder)
    names = [PREDICTIONS_FILE] if (folder / PREDICTIONS_FILE).is_file() else []
    return names + [name for name in PATH_HOLDERS if (folder / name).is_file()
                    and holds_absolute_path((folder / name).read_text(encoding="utf-8", errors="replace"))]


def holds_absolute_path(text: str) -> bool:
    """Whether ``text`` holds an absolute local path (``/home/me/x``, ``~/x``, ``C:\\x``); URLs and Hub ids do not."""
    return bool(_ABSOLUTE_PATH.search(text))


def _token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token found: set HF_TOKEN or run `hf auth login` with a token that has "
                       "write access (https://huggingface.co/settings/tokens)")
    return token


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def _reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    status = f"HTTP {response.status_code}" if response is not None else type(error).__name__
    first = str(error).splitlines()[0].rstrip(".") if str(error) else ""
    return f"{status}: {first}" if first else status
