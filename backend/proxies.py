"""The client's address behind a reverse proxy, as uvicorn's ``--proxy-headers`` gave it.

Granian does not read ``X-Forwarded-For`` itself; its ``wrap_asgi_with_proxy_headers`` does, with
uvicorn's rules: only when the peer is one of ``FORWARDED_ALLOW_IPS`` (addresses or networks, comma
separated; ``*`` trusts any peer; empty trusts none), taking the right-most untrusted address, so a
client cannot choose its own rate-limit bucket by sending the header itself.
"""

from __future__ import annotations

import os

from granian.utils.proxies import wrap_asgi_with_proxy_headers
from litestar.middleware import DefineMiddleware

DEFAULT_TRUSTED = "127.0.0.1,::1"


def forwarded_middleware() -> DefineMiddleware:
    """Litestar middleware that puts the forwarded client address in ``scope["client"]``."""
    # Read like uvicorn read it (the environment, where an empty value means "trust nobody").
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_TRUSTED)
    return DefineMiddleware(wrap_asgi_with_proxy_headers, trusted_hosts=trusted)
