"""upgrader.web.releases against a real HTTP server serving the release bucket's layout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.listing_server import ListingServer, listing_server
from upgrader.domain.versions import Version
from upgrader.errors import CatalogUnavailableError, InvalidCatalogError
from upgrader.web.releases import MAX_BODY, fetch_listing

NEWEST = {24: "v1.24.17", 25: "v1.25.16", 26: "v1.26.15", 27: "v1.27.16", 28: "v1.28.15", 29: "v1.29.15",
          30: "v1.30.14", 31: "v1.31.14", 32: "v1.32.13", 33: "v1.33.13", 34: "v1.34.12", 35: "v1.35.10",
          36: "v1.36.6", 37: "v1.37.3", 38: "v1.38.0"}
KNOWN = 37  # the built-in catalog's newest minor


def released(minor: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC).replace(day=1 + minor - 24)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ListingServer]:
    with listing_server(tmp_path) as running:
        for minor, version in NEWEST.items():
            running.write(minor, version + "\n", modified=released(minor))
        yield running


def test_every_minor_is_read_with_its_last_modified_as_the_release_date(server: ListingServer) -> None:
    listing = fetch_listing(server.url, known_minor=KNOWN)
    assert [str(r.version) for r in listing] == list(NEWEST.values())
    assert [r.released for r in listing] == [released(m) for m in NEWEST]
    assert all(r.released is not None and r.released.tzinfo is UTC for r in listing)


def test_fifteen_minors_take_well_under_a_second(server: ListingServer) -> None:
    fetch_listing(server.url, known_minor=KNOWN)  # warm: the first connection of the process
    started = time.monotonic()
    listing = fetch_listing(server.url + "/", known_minor=KNOWN)
    elapsed = time.monotonic() - started
    assert len(listing) == 15
    assert elapsed < 1.0, f"{elapsed:.2f} s for 15 minors"


def test_the_listing_ends_at_the_first_missing_minor_past_the_known_ones(server: ListingServer) -> None:
    server.write(40, "v1.40.0\n")  # after a hole at 39: not read, minors come in order
    listing = fetch_listing(server.url, known_minor=KNOWN)
    assert listing[-1].version == Version(1, 38, 0)
    assert [r.version.minor for r in listing] == list(range(24, 39))


def test_holes_among_the_known_minors_are_passed_over(server: ListingServer) -> None:
    for minor in (24, 25, 30):  # a mirror that carries only some minors
        server.remove(minor)
    listing = fetch_listing(server.url, known_minor=KNOWN)
    assert [r.version.minor for r in listing] == [m for m in NEWEST if m not in (24, 25, 30)]


def test_a_server_without_the_layout_is_unavailable_naming_the_url(tmp_path: Path) -> None:
    with listing_server(tmp_path) as empty, pytest.raises(CatalogUnavailableError) as caught:
        fetch_listing(empty.url, known_minor=KNOWN)
    assert empty.url in caught.value.message and "stable-1.N.txt" in caught.value.message
    assert "\n" not in caught.value.message


def test_max_minors_caps_the_probe(server: ListingServer) -> None:
    assert [r.version.minor for r in fetch_listing(server.url, known_minor=KNOWN, max_minors=3)] == [24, 25, 26]


@pytest.mark.parametrize("body", [
    "<html><body>Not here</body></html>",  # an error page answered with 200
    "v1.30.15-rc.0\n",  # a pre-release
    "v1.31.2\n",  # another minor's version
    "v2.30.1\n",
    "v1.30.14\nv1.30.13\n",  # two lines
    " v1.30.14\n",
    "v1.30.14\r\n",
    b"v1.30.\xff\n",
    "",
    "v1.30.14" + " " * MAX_BODY,  # too long to be a marker
])
def test_a_bad_marker_fails_the_listing_naming_its_url(server: ListingServer, body: str | bytes) -> None:
    server.write(30, body)
    with pytest.raises(InvalidCatalogError) as caught:
        fetch_listing(server.url, known_minor=KNOWN)
    message = caught.value.message
    assert message.startswith(f"{server.url}/stable-1.30.txt: ")
    assert "\n" not in message and caught.value.exit_code == 2


def test_a_marker_without_a_final_newline_is_read(server: ListingServer) -> None:
    server.write(30, "v1.30.14")  # dl.k8s.io serves "v1.31.2" with Content-Length 7
    assert Version(1, 30, 14) in {r.version for r in fetch_listing(server.url, known_minor=KNOWN)}


def test_a_server_error_is_unavailable_naming_the_url(server: ListingServer) -> None:
    server.statuses["/release/stable-1.33.txt"] = 503
    with pytest.raises(CatalogUnavailableError) as caught:
        fetch_listing(server.url, known_minor=KNOWN)
    assert caught.value.message.startswith(f"{server.url}/stable-1.33.txt: the server answered HTTP 503")


def test_a_server_that_does_not_answer_costs_one_timeout_not_one_per_worker() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/release"
        started = time.monotonic()
        with pytest.raises(CatalogUnavailableError) as caught:
            fetch_listing(url, known_minor=KNOWN, timeout=0.5)
        elapsed = time.monotonic() - started
    assert caught.value.message.startswith(f"{url}/stable-1.37.txt: cannot be read (")
    assert elapsed < 1.5, f"{elapsed:.2f} s"


def test_a_server_that_is_down_is_unavailable_naming_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/release"
    with pytest.raises(CatalogUnavailableError) as caught:
        fetch_listing(url, known_minor=KNOWN, timeout=2)
    message = caught.value.message
    assert message.startswith(f"{url}/stable-1.") and "cannot be read" in message and "\n" not in message


def test_a_redirect_to_http_is_followed(server: ListingServer, tmp_path: Path) -> None:
    with listing_server(tmp_path / "cdn") as cdn:  # dl.k8s.io answers with a redirect to its CDN
        cdn.write(33, "v1.33.14\n", modified=datetime(2026, 11, 20, tzinfo=UTC))
        server.redirects["/release/stable-1.33.txt"] = f"{cdn.url}/stable-1.33.txt"
        listing = fetch_listing(server.url, known_minor=KNOWN)
    assert {(r.version, r.released) for r in listing} >= {(Version(1, 33, 14), datetime(2026, 11, 20, tzinfo=UTC))}


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/stable-1.33.txt"])
def test_a_redirect_to_another_scheme_is_refused(server: ListingServer, target: str) -> None:
    server.redirects["/release/stable-1.33.txt"] = target
    with pytest.raises(CatalogUnavailableError) as caught:
        fetch_listing(server.url, known_minor=KNOWN)
    assert caught.value.message.startswith(f"{server.url}/stable-1.33.txt: redirected to {target!r}")


@pytest.mark.parametrize("url", ["file:///srv/mirror/release", "ftp://mirror/release", "dl.k8s.io/release",
                                 "https:///release", "https://mirror/release?x=1"])
def test_only_an_http_or_https_directory_url_is_taken(url: str) -> None:
    with pytest.raises(InvalidCatalogError, match=r"^--url .*http:// or https://|^--url .*no query"):
        fetch_listing(url)
