"""Why an etcd endpoint did not answer, when etcdctl only says "context deadline exceeded".

etcdctl 3.4 reports a refused client certificate, an untrusted server certificate and a closed
port all alike. After a failure, upgrader asks the endpoint itself: a TCP connect (is anything
listening?) and, for https, a TLS handshake with the same CA and client certificate followed by
a ``GET /health`` (a server that refuses the client certificate says so in its TLS alert). Only
the TLS library's reason is reported; no certificate or key content is ever read into a message.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from upgrader.ports import EtcdTls


def host_port(endpoint: str) -> tuple[str, int] | None:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    try:
        port = parts.port or 2379
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def reachable(endpoint: str, timeout: float = 1.0) -> bool:
    """True when a TCP connection to the endpoint's host and port opens within the timeout."""
    address = host_port(endpoint)
    if address is None:
        return False
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def diagnose(endpoint: str, tls: EtcdTls | None, timeout: float = 2.0) -> str | None:
    """A short reason the endpoint refuses us, or None when it looks fine (or nothing better is known)."""
    address = host_port(endpoint)
    if address is None:
        return "not a valid endpoint URL"
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except OSError as e:
        return f"nothing answers on {address[0]}:{address[1]} ({e.strerror or e})"
    with raw:
        if not endpoint.startswith("https://"):
            return None
        if tls is None:
            return "https endpoint but no client certificate"
        try:
            context = ssl.create_default_context(cafile=str(tls.cacert))
            context.load_cert_chain(str(tls.cert), str(tls.key))
        except (OSError, ssl.SSLError) as e:
            why = getattr(e, "reason", None) or e.strerror
            return f"the client certificate files cannot be used ({type(e).__name__}: {why})"
        try:
            with context.wrap_socket(raw, server_hostname=address[0]) as conn:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: etcd\r\nConnection: close\r\n\r\n")
                conn.recv(64)
        except ssl.SSLCertVerificationError as e:
            return f"the server's certificate is not trusted by the CA file ({e.verify_message})"
        except ssl.SSLError as e:
            return f"TLS refused: {e.reason or e.__class__.__name__} (check the etcd client certificate and CA)"
        except OSError as e:
            return f"the connection broke during TLS ({e.strerror or e})"
    return None
