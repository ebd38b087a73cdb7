"""How the fakes post to the app (Bitrix24 events, WAHA webhooks): once, with a timeout, everything recorded."""
from __future__ import annotations

import time
import urllib.error
import urllib.request


def post(target: str, data: bytes, send_headers: dict, timeout: float, **record) -> dict:
    """POST ``data`` to ``target``; return ``record`` with status, answer, seconds (and error when none came)."""
    record.update(status=None, answer=b"")
    started = time.monotonic()
    request = urllib.request.Request(target, data=data, method="POST", headers=send_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            record["status"], record["answer"] = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        record["status"], record["answer"] = err.code, err.read()
    except OSError as err:
        record["error"] = repr(err)
    record["seconds"] = time.monotonic() - started
    return record
