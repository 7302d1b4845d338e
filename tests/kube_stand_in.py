"""A stand-in for the Kubernetes API server: a real HTTP server speaking the REST subset we use.

This is NOT a cluster and it validates nothing: no Kubernetes can run on the test machine. It
exists so the library's apply and Secret-read paths go through the real ``kubernetes`` client
(configuration, URL building, JSON bodies, content types, status codes) against something that
answers like the API server does for namespaced objects: GET (one object, or a list: Events,
Pods), POST (201 / 409 AlreadyExists /
404 for a missing namespace), PUT with resourceVersion checks (409 Conflict), PATCH with a JSON
merge patch. Manifests themselves are validated separately with ``kubernetes-validate``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<namespace>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/?]+))?$"
)
_NAMESPACE = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/?]+))?$")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class StandInApi:
    """The in-memory state and a log of requests (method, path, content type)."""

    namespaces: set[str] = field(default_factory=set)
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    #: (method, plural) -> (status, message): answer that instead, once (failure injection)
    fail_next: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    #: API groups this "cluster" does not serve (a CRD that is not installed)
    missing_groups: set[str] = field(default_factory=set)
    url: str = ""
    _version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, namespace: str, plural: str, obj: dict[str, Any]) -> None:
        """Seed an object as if someone else had created it."""
        with self._lock:
            self._version += 1
            stored = copy.deepcopy(obj)
            stored.setdefault("metadata", {})["resourceVersion"] = str(self._version)
            self.objects[(namespace, plural, obj["metadata"]["name"])] = stored

    def get(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((namespace, plural, name)))

    def writes(self) -> list[tuple[str, str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    def client(self) -> Any:
        import kubernetes

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    # -- request handling --------------------------------------------------------------------
    def handle(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        namespace_match = _NAMESPACE.match(path)
        if namespace_match:
            return self._namespace(method, namespace_match.group("name"), body)
        match = _PATH.match(path)
        if not match or match.group("group") in self.missing_groups:
            return 404, _status(404, "NotFound", f"the server could not find the requested resource {path}")
        namespace, plural, name = match.group("namespace"), match.group("plural"), match.group("name")
        injected = self.fail_next.pop((method, plural), None)
        if injected is not None:
            return injected[0], _status(injected[0], "Injected", injected[1])
        key = (namespace, plural, name or (body or {}).get("metadata", {}).get("name", ""))
        with self._lock:
            existing = self.objects.get(key)
            if method == "GET" and not name:  # a list (events, pods): every object of that kind in the namespace
                items = [copy.deepcopy(o) for (ns, kind, _), o in self.objects.items() if (ns, kind) == key[:2]]
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
            if method == "GET":
                if existing is None:
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
                return 200, copy.deepcopy(existing)
            if method == "POST":
                if namespace not in self.namespaces:
                    return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
                if existing is not None:
                    return 409, _status(409, "AlreadyExists", f'{plural} "{key[2]}" already exists')
                return 201, self._store(key, body)
            if existing is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            if method == "PUT":
                sent = (body.get("metadata") or {}).get("resourceVersion")
                if sent != existing["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict", "the object has been modified")
                if plural == "secrets" and body.get("type") != existing.get("type"):
                    return 422, _status(422, "Invalid", "type: Invalid value: field is immutable")
                return 200, self._store(key, body)
            if method == "PATCH":
                sent = (body.get("metadata") or {}).get("resourceVersion")
                if sent is not None and sent != existing["metadata"]["resourceVersion"]:
                    return 409, _status(409, "Conflict", "the object has been modified")
                return 200, self._store(key, merge_patch(existing, body))
        return 405, _status(405, "MethodNotAllowed", method)

    def _store(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        stored = copy.deepcopy(body)
        metadata = stored.setdefault("metadata", {})
        metadata["resourceVersion"] = str(self._version)
        metadata["namespace"] = key[0]
        if key[1] == "secrets" and "stringData" in stored:
            raise AssertionError("the library should send data, not stringData")
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def _namespace(self, method: str, name: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if method == "POST":
                created = body["metadata"]["name"]
                if created in self.namespaces:
                    return 409, _status(409, "AlreadyExists", f'namespaces "{created}" already exists')
                self.namespaces.add(created)
                return 201, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": created}}
            if name in self.namespaces:
                return 200, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            return 404, _status(404, "NotFound", f'namespaces "{name}" not found')


def _handler(api: StandInApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.requests.append((self.command, self.path, self.headers.get("Content-Type", "")))
            status, payload = api.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def stand_in_api(namespaces: set[str] | None = None) -> Iterator[StandInApi]:
    api = StandInApi(namespaces=set(namespaces or ()))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
