"""The OpenAPI document as ``clients/typescript/generate`` exports it (``litestar schema openapi``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support import SECRET, run_cli

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "openapi.json"


def export_openapi(target: Path) -> dict[str, Any]:
    """Export with the real CLI into ``target``, as the generate script does."""
    run_cli("schema", "openapi", "--output", str(target), env={"JWT_SECRET": SECRET})
    document: dict[str, Any] = json.loads(target.read_text())
    return document
