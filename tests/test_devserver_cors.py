"""``scripts/dev`` says at start which browser origins may call the API and how to add one: without
``CORS_ALLOW_ORIGINS`` the first fetch from a Next.js dev server on localhost:3000 fails."""

from __future__ import annotations

from backend.devserver import cors_summary


def test_unset_says_no_origin_and_how_to_add_one() -> None:
    line = cors_summary({})
    assert "no browser page may call the API" in line
    assert "CORS_ALLOW_ORIGINS" in line
    assert "http://localhost:3000" in line


def test_set_lists_the_origins() -> None:
    line = cors_summary({"CORS_ALLOW_ORIGINS": "http://localhost:3000, https://app.example.com"})
    assert "http://localhost:3000, https://app.example.com may call the API" in line
    assert "CORS_ALLOW_ORIGINS" in line
