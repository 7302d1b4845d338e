"""TLS trust for registry connections, one context per trust per process (no httpx here: the quick path uses it).

Why cached: building a context costs 40-80 ms when the system bundle is parsed, and a
``pyflyte`` run talks to the same registries again and again.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from pathlib import Path

#: Where docker itself looks for per-registry CAs (``<host[:port]>/*.crt``): trust what docker trusts.
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


def context_for(certs_dir: Path, host: str, ca_file: Path | str | None) -> ssl.SSLContext:
    """The system store, docker's ``certs.d`` files for ``host`` and ``ca_file``: built once, then shared."""
    extras = tuple(str(p) for p in sorted((certs_dir / host).glob("*.crt")))
    key = (extras, str(ca_file) if ca_file is not None else None)
    with _CONTEXTS_LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _new_context(extras, ca_file)
            _CONTEXTS[key] = context
        return context


_CONTEXTS: dict[tuple[tuple[str, ...], str | None], ssl.SSLContext] = {}
_CONTEXTS_LOCK = threading.Lock()
_HASHED = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def _new_context(extras: tuple[str, ...], ca_file: Path | str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
    _load_system_trust(context)
    for extra in extras:
        context.load_verify_locations(cafile=extra)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _load_system_trust(context: ssl.SSLContext) -> None:
    """The system store, as cheaply as it can be loaded.

    OpenSSL parses a bundle file whole (~150 certificates, 30-80 ms) but looks certificates up in
    a hashed directory (``c_rehash``/``update-ca-certificates`` layout) only when a handshake
    needs one (~1 ms). Distributions build both from the same list, so the directory is used when
    it is hashed and the bundle is the default one; a bundle named in ``$SSL_CERT_FILE`` that is
    not the default is loaded as well, and with no usable system store (some macOS Pythons)
    certifi is the fallback, as in httpx.
    """
    paths = ssl.get_default_verify_paths()
    hashed = False
    if paths.capath and os.path.isdir(paths.capath):
        try:
            with os.scandir(paths.capath) as entries:
                hashed = any(_HASHED.fullmatch(entry.name) for entry in entries)
        except OSError:
            hashed = False
    bundle = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    default_bundle = paths.openssl_cafile
    custom_bundle = bundle is not None and (
        not os.path.isfile(default_bundle) or not os.path.samefile(bundle, default_bundle)
    )
    if hashed:
        context.load_verify_locations(capath=paths.capath)
        if custom_bundle:
            context.load_verify_locations(cafile=bundle)
        return
    if bundle is not None:
        context.load_verify_locations(cafile=bundle)
        return
    context.load_default_certs()  # the platform's own store (Windows, macOS keychain builds)
    if context.cert_store_stats().get("x509_ca", 0) == 0:
        try:
            import certifi

            context.load_verify_locations(cafile=certifi.where())
        except ImportError:  # pragma: no cover - certifi comes with httpx
            pass
