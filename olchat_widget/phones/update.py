"""Fetch a new copy of the numbering plan and make it the active one atomically.

The new file is written next to the target, fully validated by the same
parser the app uses, and only then moved over the old file with os.replace().
A reader therefore sees either the old file or the new one, never half of
one, and a bad download leaves the old file exactly as it was.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

from .numbering import NumberingPlan, NumberingPlanError

DEFAULT_REGISTRY_URL = "https://opendata.digital.gov.ru/downloads/DEF-9xx.csv"

# The real file has ~17,000 ranges in ~3 MB. Fewer than MIN_ROWS ranges means a
# truncated or wrong file; a new file with less than MIN_SHARE of the old row
# count is more likely a broken export than a real change of the plan.
MIN_ROWS = 1000
MIN_SHARE = 0.5
MAX_BYTES = 64 * 1024 * 1024  # never let a misbehaving server fill the disk
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class UpdateResult:
    """What an update installed."""

    source: str
    target_path: str
    rows: int
    codes: int
    operators: int
    territories: int
    size_bytes: int
    previous_rows: int | None  # None when there was no usable file before

    def summary(self) -> str:
        """Return a one-line human summary."""
        before = "" if self.previous_rows is None else f" (was {self.previous_rows})"
        return (
            f"{self.rows} ranges{before} in {self.codes} codes, {self.operators} operator names, "
            f"{self.territories} territories; {self.size_bytes} bytes -> {self.target_path}"
        )


def _is_url(source: str) -> bool:
    """Say whether the source is an http(s) URL."""
    return urlparse(source).scheme.lower() in ("http", "https")


def _download(url: str, out, timeout: float) -> None:
    """Stream an http(s) URL into an open binary file."""
    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            if response.status_code != 200:
                raise NumberingPlanError(f"download failed: HTTP {response.status_code} from {url}")
            total = 0
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > MAX_BYTES:
                    raise NumberingPlanError(f"download failed: more than {MAX_BYTES} bytes from {url}")
                out.write(chunk)
    except requests.Timeout:
        raise NumberingPlanError(f"download failed: no answer from {url} within {timeout:g} s") from None
    except requests.RequestException as exc:
        raise NumberingPlanError(f"download failed: {type(exc).__name__}: {exc}") from None


def _copy_local(source: str, out) -> None:
    """Copy a local file (plain path or file:// URL) into an open binary file."""
    path = unquote(urlparse(source).path) if source.startswith("file://") else source
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise NumberingPlanError(f"{path} is larger than {MAX_BYTES} bytes")
        with open(path, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
    except FileNotFoundError:
        raise NumberingPlanError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NumberingPlanError(f"{path} is a directory, not the DEF-9xx.csv file") from None
    except OSError as exc:
        raise NumberingPlanError(f"cannot read {path}: {exc.strerror or exc}") from None


def _previous_rows(target: Path) -> int | None:
    """Return the row count of the currently active file, None when there is none or it is unusable."""
    if not target.exists():
        return None
    try:
        return NumberingPlan.load(target).rows
    except NumberingPlanError:
        return None


def update_registry(source: str, target_path: str, *, timeout: float = 30.0,
                    min_rows: int = MIN_ROWS) -> UpdateResult:
    """Fetch source (URL or path), validate it and atomically replace target_path; raise NumberingPlanError if bad."""
    if not source:
        raise NumberingPlanError("no source given (a URL or a file path)")
    if not target_path:
        raise NumberingPlanError("no target path configured (OLCHAT_NUMBERING_PATH)")
    target = Path(target_path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NumberingPlanError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    # Same directory as the target: os.replace() is atomic only within one file system.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if _is_url(source):
                _download(source, out, timeout)
            else:
                _copy_local(source, out)
            out.flush()
            os.fsync(out.fileno())
        size = os.path.getsize(tmp_name)
        if size == 0:
            raise NumberingPlanError(f"{source} is empty")
        try:
            plan = NumberingPlan.load(tmp_name)
        except NumberingPlanError as exc:
            raise NumberingPlanError(f"{source} is not a valid DEF-9xx.csv: {exc}") from None
        if plan.rows < min_rows:
            raise NumberingPlanError(
                f"{source} has only {plan.rows} ranges (at least {min_rows} expected): truncated or wrong file"
            )
        previous = _previous_rows(target)
        if previous is not None and plan.rows < previous * MIN_SHARE:
            raise NumberingPlanError(
                f"{source} has {plan.rows} ranges, less than half of the active file's {previous}: refusing"
            )
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; the app may run as another user
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return UpdateResult(
        source=source,
        target_path=str(target),
        rows=plan.rows,
        codes=plan.codes,
        operators=len(plan.operators),
        territories=len(plan.territories),
        size_bytes=size,
        previous_rows=previous,
    )
