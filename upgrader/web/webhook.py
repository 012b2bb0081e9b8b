"""The schedule's webhook: one JSON summary POSTed after a tick, never a reason for the tick to fail.

cron runs ``schedule tick`` with nobody watching; ``--notify URL`` is how a person hears about it. A
notification that cannot be delivered must not change what the tick did or how it exits, so
:func:`post_summary` never raises for a network or HTTP failure: it retries what may pass (no
connection, a timeout, a 5xx, a 429) with exponential backoff and jitter, and returns a one-line
reason when it gives up (``None`` when the receiver took the summary). Only a programming error (a
document that is not JSON, a nonsense retry setting) raises.

Guarantees:
- only ``http`` and ``https``; redirects are not followed (a 3xx is a failure that names its code),
  so a receiver cannot send the summary to another scheme or host;
- the URL's query and userinfo often carry the receiver's token: neither is ever logged nor put in the
  reason, which names the URL by scheme, host, port and path only. Userinfo (``https://user:pw@host``)
  is sent as HTTP Basic authentication, as a browser would;
- at most ``attempts`` requests, each bounded by ``timeout`` seconds per connect and per read.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPException, InvalidURL
from typing import Any

import tenacity

from upgrader import __version__
from upgrader.logs import get_logger

log = get_logger("upgrader.web.webhook")

USER_AGENT = f"upgrader/{__version__}"
SCHEMES = ("http", "https")
_READ_LIMIT = 64 * 1024  # of a receiver's answer: read (so the connection ends cleanly), never kept


class _Retryable(Exception):
    """A failure that may pass: no connection, a timeout, a 5xx or a 429."""


class _Final(Exception):
    """A failure that another attempt would only repeat: a 4xx, a redirect, a bad certificate."""


@dataclass(frozen=True, slots=True)
class _Target:
    url: str  # without userinfo: what urllib is given
    shown: str  # scheme://host[:port]/path: what logs and reasons show
    authorization: str | None  # Basic credentials from the URL's userinfo


def post_summary(
    url: str, document: Mapping[str, Any], *, timeout: float = 5.0, attempts: int = 4, wait_max: float = 2.0
) -> str | None:
    """POST ``document`` as JSON to ``url``; ``None`` when a 2xx answered, else why not (one line).

    Waits between attempts are random up to an exponentially growing bound, capped at ``wait_max``
    seconds (full jitter: hosts that tick together do not retry together).
    """
    if attempts < 1 or not timeout > 0 or not wait_max >= 0:
        raise ValueError(f"need attempts >= 1, timeout > 0, wait_max >= 0; got {attempts}, {timeout}, {wait_max}")
    body = json.dumps(dict(document), allow_nan=False).encode()  # not JSON: a programming error
    target = _target(url)
    if isinstance(target, str):
        log.warning("webhook_refused", reason=target)
        return target
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_random_exponential(multiplier=wait_max / 4, max=wait_max),
        retry=tenacity.retry_if_exception_type(_Retryable),
        reraise=True,
    )
    tries = 0

    def attempt() -> None:
        nonlocal tries
        tries += 1
        _post(target, body, timeout)

    try:
        retrying(attempt)
    except (_Retryable, _Final) as e:
        reason = f"webhook {target.shown}: {e} ({tries} attempt{'s' if tries != 1 else ''})"
        log.warning("webhook_failed", url=target.shown, reason=str(e), attempts=tries)
        return reason
    log.info("webhook_delivered", url=target.shown)
    return None


def safe_url(url: str) -> str:
    """``url`` as logs may show it: scheme, host, port and path; no userinfo, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}{parts.path}"


def _target(url: str) -> _Target | str:
    """The URL split for sending and for showing, or why it cannot be used."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "webhook URL holds whitespace or control characters"
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return f"webhook URL must be http:// or https://, not {scheme or 'a relative URL'!r}"
    try:
        parts.port  # noqa: B018 (the property checks the port)
    except ValueError:
        return f"webhook URL {safe_url(url)!r} has an invalid port"
    if not parts.hostname:
        return "webhook URL has no host"
    authorization = None
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    plain = urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return _Target(url=plain, shown=safe_url(url), authorization=authorization)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: urllib would turn the POST into a GET to wherever it was sent."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirects())


def _post(target: _Target, body: bytes, timeout: float) -> None:
    """One attempt: returns on a 2xx, raises :class:`_Retryable` or :class:`_Final` otherwise."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept": "*/*"}
    if target.authorization:
        headers["Authorization"] = target.authorization
    request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(_READ_LIMIT)
    except urllib.error.HTTPError as e:
        e.close()
        text = f"HTTP {e.code} {_one_line(str(e.reason))}".rstrip()
        if e.code == 429 or e.code >= 500:
            raise _Retryable(text) from None
        if 300 <= e.code < 400:
            text += " (redirects are not followed)"
        raise _Final(text) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLCertVerificationError):
            raise _Final(f"TLS certificate not trusted: {_one_line(str(e.reason.verify_message))}") from None
        raise _Retryable(_one_line(str(e.reason))) from None
    except InvalidURL as e:
        raise _Final(_one_line(str(e))) from None
    except (HTTPException, OSError) as e:  # a read timeout, a dropped connection
        raise _Retryable(_one_line(str(e)) or type(e).__name__) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
