"""Upload a checked hub folder to the Hugging Face hub (:func:`push`)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from sepmamba_sb.hub.check import HubCheckError, check

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def push(folder: str | Path, repo: str, token: str | None = None, private: bool = False, api=None,
         progress: bool = True) -> str:
    """Check a hub folder, then upload it to the Hugging Face hub as model repository ``repo``.

    Parameters
    ----------
    folder : str or Path
        A folder that passes :func:`check`; only ``CheckResult.files`` are uploaded.
    repo : str
        ``USER/NAME`` (created if it does not exist).
    token : str, optional
        A Hugging Face token (default: the login of ``hf auth login``, or ``HF_TOKEN``).
    private : bool
        Create the repository private.
    api : huggingface_hub.HfApi, optional
        What uploads (default ``HfApi(token=token)``); anything with its ``create_repo`` and
        ``upload_folder`` works, e.g. a local stand-in.

    Returns
    -------
    str
        The uploaded commit's URL.

    Raises
    ------
    ValueError
        When ``repo`` is not ``USER/NAME``.
    HubCheckError
        When the folder fails the check (nothing is uploaded).
    """
    if not _REPO_ID.match(repo):
        raise ValueError(f"--repo must be USER/NAME (a Hugging Face model repository), got {repo!r}")
    result = check(folder, progress=progress)
    if not result.ok:
        raise HubCheckError(result)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                               allow_patterns=result.files,
                               commit_message=f"SepMamba separator (sepmamba_sb {version('sepmamba_sb')})")
    return str(getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo}")
