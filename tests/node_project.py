"""npm projects of the repository, installed for the tests into the git-ignored ``.cache``.

As for Better Auth (``tests/better_auth.py``): ``npm ci`` from the committed lock file, once per lock file,
so ``node_modules`` never lands in the tree and every run uses the pinned versions.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.better_auth import _node_tools

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
# Redocly CLI would report usage and look for updates on the internet: neither, in tests.
QUIET_NODE_ENV = {
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SDK_TELEMETRY": "off",
    "DO_NOT_TRACK": "1",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_UPDATE_NOTIFIER": "1",
}


def installed(source: Path, name: str) -> Path:
    """``source``'s ``package.json`` and ``package-lock.json`` installed (``npm ci``) in ``.cache/name``."""
    _, npm = _node_tools()
    target = CACHE / name
    target.mkdir(parents=True, exist_ok=True)
    manifests = [source / "package.json", source / "package-lock.json"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()
    stamp = target / ".installed"
    # pytest-xdist workers may all arrive here at once.
    with (target / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ((target / "node_modules").is_dir() and stamp.exists() and stamp.read_text() == digest):
            stamp.unlink(missing_ok=True)
            for path in manifests:
                shutil.copyfile(path, target / path.name)
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=target,
                env={**os.environ, **QUIET_NODE_ENV},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm ci failed in {target}:\n{done.stdout}\n{done.stderr}")
            stamp.write_text(digest)
    return target


def run_bin(
    project: Path, binary: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``node_modules/.bin/<binary>`` of an installed project (no network wanted)."""
    return subprocess.run(  # noqa: S603 - a binary of the pinned project
        [str(project / "node_modules" / ".bin" / binary), *args],
        cwd=cwd or project,
        env={**os.environ, **QUIET_NODE_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
