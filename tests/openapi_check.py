"""Check recorded WAHA exchanges against WAHA's OpenAPI contract (openapi-core).

The contract lives outside the repository (``../shared/contracts``); when it
is missing, :func:`require_spec` skips the calling test with the reason.

The contract documents only the success answers (200/201). Error answers the
fake gives (401, 404, 422, 500) are checked against the shapes GATEWAY.md
documents instead, so no canned answer goes unchecked.
"""
from __future__ import annotations

import contextlib

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parents[1].parent / "shared/contracts/waha-openapi.json"
MISSING_REASON = f"WAHA OpenAPI contract not found at {SPEC_PATH}: contract validation skipped"

# Error bodies as GATEWAY.md documents them (the contract has no error responses).
_ERROR_SHAPES: dict[int, dict] = {
    400: {"type": "object", "required": ["statusCode", "message"],
          "properties": {"statusCode": {"const": 400}}},
    401: {"type": "object", "required": ["message", "statusCode"],
          "properties": {"message": {"const": "Unauthorized"}, "statusCode": {"const": 401}}},
    404: {"type": "object", "required": ["statusCode", "message"],
          "properties": {"statusCode": {"const": 404}, "message": {"type": "string"}}},
    422: {"type": "object", "required": ["error", "status", "expected"],
          "properties": {"error": {"type": "string"},
                         "status": {"enum": ["STOPPED", "STARTING", "SCAN_QR_CODE", "FAILED",
                                             "PASSKEY_REQUIRED", "PASSKEY_CONFIRMATION_REQUIRED"]},
                         "expected": {"type": "array", "items": {"type": "string"}}}},
    500: {"type": "object", "required": ["statusCode", "exception"],
          "properties": {"statusCode": {"const": 500},
                         "exception": {"type": "object", "required": ["message"],
                                       "properties": {"message": {"type": "string"}}}}},
}


def spec_available() -> bool:
    """Tell whether the contract file is there."""
    return SPEC_PATH.is_file()


def require_spec() -> None:
    """Skip the calling test when the contract file is missing."""
    if not spec_available():
        import pytest

        pytest.skip(MISSING_REASON)


# Where the generated contract is wrong about WAHA itself: its sendVoice / sendVideo file schemas
# type ``mimetype`` and ``filename`` as "object" (a swagger generator's reading of optional
# strings), while WAHA's own docs and every example send strings ("audio/ogg; codecs=opus").
# Checked as strings; nothing else of the contract is changed.
_STRING_FIELDS = {"VoiceBinaryFile": ("mimetype", "filename"), "VoiceRemoteFile": ("mimetype",),
                  "VideoBinaryFile": ("mimetype", "filename"), "VideoRemoteFile": ("mimetype", "filename")}


@lru_cache(maxsize=1)
def load_spec():
    """Load the contract once per test run (it takes about a second), its known defects corrected."""
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(_corrected(_raw_spec()), base_uri=SPEC_PATH.as_uri())


@lru_cache(maxsize=1)
def _raw_spec() -> dict:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    schemas = spec.get("components", {}).get("schemas", {})
    for name, fields in _STRING_FIELDS.items():
        for field in fields:
            prop = schemas.get(name, {}).get("properties", {}).get(field)
            if prop is not None and prop.get("type") == "object":
                prop["type"] = "string"
    return spec


def _corrected(spec: dict) -> dict:
    """The contract with the defects shared/contracts/README.md lists that our requests meet, corrected here only."""
    spec = json.loads(json.dumps(spec))
    # WebhookConfig.events: the spec types its items as objects; WAHA takes event names (strings).
    spec["components"]["schemas"]["WebhookConfig"]["properties"]["events"]["items"] = {"type": "string"}
    return spec


class _Request:
    """An openapi-core request built from what the fake server received."""

    def __init__(self, ex: Any):
        self.host_url = ex.host_url
        self.path = ex.path
        self.method = ex.method.lower()
        self.body = ex.body or None
        self.content_type = (ex.headers.get("Content-Type") or "").lower() or "application/json"
        from openapi_core.datatypes import RequestParameters
        from urllib.parse import parse_qsl

        self.parameters = RequestParameters(query=ImmutableMultiDict(parse_qsl(ex.query, keep_blank_values=True)),
                                            header=Headers(ex.headers), cookie=ImmutableMultiDict(), path={})


class _Response:
    """An openapi-core response built from what the fake server answered."""

    def __init__(self, ex: Any):
        self.status_code = ex.status
        self.data = ex.response_body
        self.content_type = ex.response_type.lower()
        self.headers = Headers({"Content-Type": ex.response_type})


def _explain(exc: Exception) -> str:
    """Spell out an openapi-core error with the schema errors behind it."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        for err in getattr(cause, "schema_errors", ()) or ():
            parts.append(f"  at {list(err.absolute_path)}: {err.message}")
        if not getattr(cause, "schema_errors", None):
            parts.append(f"  {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


def _operation(ex: Any, request: _Request) -> dict:
    """Return the contract's operation object an exchange matched."""
    from openapi_core.templating.paths.finders import APICallPathFinder

    found = APICallPathFinder(load_spec().spec).find(request.method, request.host_url + request.path)
    return _raw_spec()["paths"][found.path.parts[-1]][request.method]


def check_request(ex: Any) -> None:
    """Raise AssertionError when a recorded request breaks the contract."""
    spec = load_spec()
    request = _Request(ex)
    try:
        spec.validate_request(request)
    except Exception as exc:  # openapi-core raises several unrelated classes
        raise AssertionError(f"{ex.method} {ex.path}?{ex.query}: request breaks the contract\n{_explain(exc)}") from exc
    # openapi-core lets a request without credentials through; WAHA does not.
    schemes = _raw_spec()["components"]["securitySchemes"]
    needs_key = any("api_key" in alternative for alternative in _operation(ex, request).get("security", []))
    header = schemes["api_key"]["name"]
    if needs_key and not ex.headers.get(header):
        raise AssertionError(f"{ex.method} {ex.path}: no {header} header")


def check_response(ex: Any) -> str:
    """Raise AssertionError when a recorded answer breaks the contract; return how it was checked."""
    if ex.status is None:
        return "no answer (dropped)"
    if ex.fault == "garbage":
        # Deliberately not WAHA: a proxy's HTML page with 200.
        return "deliberately off-contract"
    request = _Request(ex)
    documented = _operation(ex, request).get("responses", {})
    if str(ex.status) in documented:
        try:
            load_spec().validate_response(request, _Response(ex))
        except Exception as exc:
            raise AssertionError(
                f"{ex.method} {ex.path}: {ex.status} answer breaks the contract\n{_explain(exc)}\n"
                f"body: {ex.response_body[:500]!r}") from exc
        return "contract"
    shape = _ERROR_SHAPES.get(ex.status)
    if shape is None:
        raise AssertionError(f"{ex.method} {ex.path}: status {ex.status} is neither in the contract nor documented")
    try:
        jsonschema.validate(json.loads(ex.response_body), shape)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise AssertionError(f"{ex.method} {ex.path}: {ex.status} body is not WAHA's error shape: {exc}") from exc
    return "error shape"


def check_all(exchanges: Iterable[Any]) -> dict[str, int]:
    """Check every recorded request and answer; return how many answers were checked which way."""
    problems: list[str] = []
    tally: dict[str, int] = {}
    for ex in exchanges:
        for check in (check_request, check_response):
            try:
                how = check(ex)
            except AssertionError as exc:
                problems.append(str(exc))
            else:
                if how:
                    tally[how] = tally.get(how, 0) + 1
    if problems:
        raise AssertionError(f"{len(problems)} contract problem(s):\n\n" + "\n\n".join(problems))
    return tally


@contextlib.contextmanager
def checked_fake_waha(**kwargs):
    """A fake WAHA whose every exchange is checked against the contract when the test is done.

    Its file store (GET /api/files/...) is WAHA's static server, not part of the API contract.
    """
    from tests.fakes.fake_waha import FILE, FakeWaha

    with FakeWaha(**kwargs) as fake:
        yield fake
        if spec_available():
            check_all(ex for ex in fake.exchanges() if ex.endpoint != FILE)
