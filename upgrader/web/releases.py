"""The upstream release listing: the ``stable-1.N.txt`` version markers of the Kubernetes release bucket.

``https://dl.k8s.io/release/stable-1.N.txt`` (dl.k8s.io answers with a redirect to its CDN) holds one
line, the newest GA patch of minor 1.N (``v1.33.13``); a minor that has no GA release yet has no
marker (404). A mirror with the same layout (any web server serving a directory of such files) works
the same. The marker's HTTP ``Last-Modified`` is when it last moved, i.e. when that patch was
published: it is taken as the release's date (None when the server sends none).

What is accepted, strictly, because the listing decides what the planner may propose:
- only http and https URLs, and redirects only to http or https (never from https down to http);
- a body of at most :data:`MAX_BODY` bytes of ASCII holding one ``vX.Y.Z`` whose minor is the
  file's own; anything else (a pre-release, an HTML error page, another minor) fails the whole
  listing naming the URL (InvalidCatalogError), so nothing half-read is ever stored;
- 404 (or 410) means "no such marker"; any other status, a timeout or a network failure is
  CatalogUnavailableError naming the URL.

Which minors are probed: from ``first_minor`` upward. Up to ``known_minor`` (the newest minor the
caller already knows exists, i.e. the built-in catalog's) a missing marker is a hole that is passed
over (a mirror may carry only some minors); past it the first missing marker ends the listing,
because minors are released in order. The markers are fetched in parallel (:data:`WORKERS` at a time).
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from upgrader.domain.catalog import Release
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import CatalogUnavailableError, InvalidCatalogError, InvalidVersionError

DEFAULT_URL = "https://dl.k8s.io/release"
OLDEST_MINOR = 24  # the built-in catalog's oldest minor (upgrader/data/catalog.txt)
MAX_BODY = 64  # bytes: a marker is "v1.33.13\n"; an error page or a wrong file is refused, not read
WORKERS = 8  # markers fetched at once: ~15 minors take one or two round trips
_ABSENT = frozenset({404, 410})
_SCHEMES = ("http", "https")


def fetch_listing(base_url: str, *, timeout: float = 10.0, first_minor: int = OLDEST_MINOR,
                  known_minor: int | None = None, max_minors: int = 100) -> list[Release]:
    """The newest GA patch of each minor 1.N the listing at ``base_url`` has, oldest first, dated by
    each marker's Last-Modified. At most ``max_minors`` minors are probed. InvalidCatalogError for a
    bad URL or a bad marker, CatalogUnavailableError when the listing cannot be read or has no marker."""
    base = _base(base_url)
    known = first_minor - 1 if known_minor is None else max(known_minor, first_minor - 1)
    last = first_minor + max_minors - 1
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    # The newest known marker first, alone: a server that cannot be reached (a blackholed network)
    # costs one timeout, not one for each worker.
    probe = min(max(known, first_minor), last)
    answers = {probe: _fetch_one(opener, base, probe, timeout)}
    found: list[Release] = []
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="catalog") as pool:
        start = first_minor
        while start <= last:
            # The first batch asks for every known minor at once; after that, WORKERS at a time.
            stop = min(last, max(known, start - 1) + WORKERS)
            batch = range(start, stop + 1)
            answers.update(_fetch_all(pool, opener, base, [m for m in batch if m not in answers], timeout))
            for minor in batch:
                release = answers[minor]
                if release is not None:
                    found.append(release)
                elif minor > known:
                    return _listing(found, base, first_minor, minor)
            start = stop + 1
    return _listing(found, base, first_minor, last)


def marker_url(base: str, minor: int) -> str:
    return f"{base}/stable-1.{minor}.txt"


def _fetch_all(pool: ThreadPoolExecutor, opener: urllib.request.OpenerDirector, base: str,
               minors: list[int], timeout: float) -> list[tuple[int, Release | None]]:
    futures = [pool.submit(_fetch_one, opener, base, minor, timeout) for minor in minors]
    try:
        return [(minor, future.result()) for minor, future in zip(minors, futures, strict=True)]
    except BaseException:
        for future in futures:
            future.cancel()  # the first failure is the answer: do not wait for markers not yet asked
        raise


def _fetch_one(opener: urllib.request.OpenerDirector, base: str, minor: int, timeout: float) -> Release | None:
    url = marker_url(base, minor)
    request = urllib.request.Request(url, headers={"User-Agent": "upgrader (release catalog)",
                                                   "Accept": "text/plain"})
    try:
        with opener.open(request, timeout=timeout) as response:
            body = _read_capped(response, url)
            last_modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in _ABSENT:
            return None
        raise CatalogUnavailableError(f"{url}: the server answered HTTP {e.code} {excerpt(e.reason, 40)}") from None
    except urllib.error.URLError as e:
        raise CatalogUnavailableError(f"{url}: cannot be read ({_reason(e.reason)})") from None
    except (OSError, http.client.HTTPException) as e:  # timeouts mid-body, resets, malformed answers
        raise CatalogUnavailableError(f"{url}: cannot be read ({_reason(e)})") from None
    return Release(_marker_version(body, url, minor), _released(last_modified))


def _read_capped(response: IO[bytes], url: str) -> bytes:
    body = response.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise InvalidCatalogError(f"{url}: more than {MAX_BODY} bytes, not a version marker (expected one "
                                  "line like v1.33.13)")
    return body


def _marker_version(body: bytes, url: str, minor: int) -> Version:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCatalogError(f"{url}: not a version marker ({excerpt(body)}; expected one line like "
                                  f"v1.{minor}.0)") from None
    line = text[:-1] if text.endswith("\n") else text  # one line: an optional final newline, nothing else
    try:
        if line != line.strip() or "\n" in line:
            raise InvalidVersionError
        version = Version.parse(line)
    except InvalidVersionError:
        raise InvalidCatalogError(f"{url}: not a GA version ({excerpt(text)}; expected one line like "
                                  f"v1.{minor}.0)") from None
    if (version.major, version.minor) != (1, minor):
        raise InvalidCatalogError(f"{url}: names {version}, not a v1.{minor} release")
    return version


def _released(last_modified: str | None) -> datetime | None:
    """Last-Modified as an aware UTC time; None when absent or unreadable (a date is optional)."""
    if not last_modified:
        return None
    try:
        when = parsedate_to_datetime(last_modified)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _listing(found: list[Release], base: str, first_minor: int, last_probed: int) -> list[Release]:
    if not found:
        raise CatalogUnavailableError(
            f"{base}: no stable-1.N.txt for v1.{first_minor} to v1.{last_probed} (HTTP 404): not a Kubernetes "
            "release listing (expected BASE/stable-1.N.txt, as under https://dl.k8s.io/release)")
    return sorted(found, key=lambda r: r.version)


def _base(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in _SCHEMES or not parts.netloc:
        raise InvalidCatalogError(f"--url {excerpt(url)}: expected an http:// or https:// URL of a directory "
                                  "holding stable-1.N.txt files")
    if parts.query or parts.fragment:
        raise InvalidCatalogError(f"--url {excerpt(url)}: no query or fragment: the URL of a directory "
                                  "holding stable-1.N.txt files")
    return url.strip().rstrip("/")


def _reason(reason: object) -> str:
    text = str(reason) or type(reason).__name__
    return excerpt(text, 80) if len(text) > 80 else text


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http and https only, and never from https down to plain http.

    Checked before urllib's own handling (which refuses some schemes with a bare HTTP 302 error and
    allows ftp), so every refusal says where the listing tried to send us."""

    def http_error_302(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                       headers: http.client.HTTPMessage) -> Any:
        location = headers.get("Location") or headers.get("URI")
        if location:
            try:
                _check_redirect(req.full_url, urljoin(req.full_url, location))
            except CatalogUnavailableError:
                fp.close()  # the redirect's own answer: nothing more is read from it
                raise
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> Any:
        _check_redirect(req.full_url, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_redirect(old_url: str, new_url: str) -> None:
    old, new = urlsplit(old_url).scheme, urlsplit(new_url).scheme
    if new not in _SCHEMES or (old == "https" and new != "https"):
        raise CatalogUnavailableError(f"{old_url}: redirected to {excerpt(new_url)}, which is refused "
                                      "(only http/https, never from https to http)")
