"""API errors as real ``metav1.Status`` objects.

Clients branch on ``reason`` and ``code`` (kubectl retries an eviction on 429, treats NotFound
as "already gone"), so the texts and details follow k8s.io/apimachinery/pkg/api/errors.
"""

from __future__ import annotations

from typing import Any

from upgrader.sandbox.apiserver.resources import ResourceType


class ApiError(Exception):
    """A request the API refuses; ``status`` is the Status body sent to the client."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                    _details(rt, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 with one cause per (field, message); the summary mirrors NewInvalid's."""
    texts = [f"{field}: {msg}" for field, msg in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(rt, name)
    details["kind"] = rt.kind
    details["causes"] = [{"reason": _cause_reason(msg), "message": msg, "field": field} for field, msg in causes]
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {summary}', details)


def _cause_reason(message: str) -> str:
    if message.startswith("Required value"):
        return "FieldValueRequired"
    if message.startswith("Unsupported value"):
        return "FieldValueNotSupported"
    return "FieldValueInvalid"


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {})


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted "
                    f"media types include: {', '.join(accepted)}")


def too_many_requests(message: str, causes: list[dict[str, str]]) -> ApiError:
    return ApiError(429, "TooManyRequests", message, {"causes": causes})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}",
                    {"causes": [{"message": message}]})


def unauthorized() -> ApiError:
    """What kube-apiserver answers a request whose credentials it cannot accept (an unknown,
    revoked or expired token, an expired client certificate), on every path: 401 Unauthorized."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def forbidden(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(403, "Forbidden", f'{rt.qualified} "{name}" is forbidden: {why}', _details(rt, name))
