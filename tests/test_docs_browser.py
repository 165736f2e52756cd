"""``/schema`` in a real headless Chromium: Scalar renders from the app's own copy, sends a request with a
bearer token, and nothing the page asks for leaves 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx

from backend.http.docs_page import SCALAR_VERSION
from tests.browser import chromium
from tests.support import ApiServer, Tokens

_HAS_BUTTON = "[...document.querySelectorAll('button')].some(b => b.innerText.includes(%s))"
_CLICK_BUTTON = """(() => {
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.includes(%s));
  if (button) button.click();
  return !!button;
})()"""

# The value cell that follows the key cell holding `name` in the API client's parameter table.
_FOCUS_VALUE_OF = """(() => {
  const cells = [...document.querySelectorAll('[role=dialog] .code-input-lite__editor')];
  const label = c => c.getAttribute('aria-label')?.trim();
  const key = cells.findIndex(c => label(c) === 'Key' && c.innerText.trim() === %s);
  const value = cells.slice(key + 1).find(c => label(c) === 'Value');
  if (key < 0 || !value) return false;
  value.focus();
  return document.activeElement === value;
})()"""


def test_docs_render_offline_and_send_a_request(api: ApiServer, tokens: Tokens, user: str) -> None:
    with chromium() as page:
        page.goto(f"{api.url}/schema")
        page.wait_for("document.body.innerText.includes('/api/{user_id}/tasks/stats')")
        listed = page.evaluate("document.body.innerText")
        for operation in ("GET\n/api/{user_id}/tasks\n", "POST\n/api/{user_id}/tasks\n", "PATCH\n/api/"):
            assert operation in listed, operation
        assert page.evaluate(_HAS_BUTTON % json.dumps("Open Group - health"))

        # The token goes into the page's Authentication box; the API client opens from "Test Request".
        page.evaluate(
            f"""(() => {{
              const box = document.querySelector('input[placeholder="Token"]');
              box.value = {json.dumps(tokens.hs256(user))};
              box.dispatchEvent(new Event('input', {{bubbles: true}}));
            }})()"""
        )
        page.wait_for(_CLICK_BUTTON % json.dumps("Test Request\n(get /api/{user_id}/tasks)"))
        page.wait_for(_FOCUS_VALUE_OF % json.dumps("user_id"))
        page.call("Input.insertText", text=user)
        page.wait_for(_CLICK_BUTTON % json.dumps("Send"))

        method, _, status = page.wait_for_response(f"{api.url}/api/{user}/tasks")
        assert (method, status) == ("GET", 200)

        assert page.requests, "the request log is empty"
        assert page.foreign_requests() == []
        assert f"{api.url}/schema/assets/scalar-api-reference-{SCALAR_VERSION}.js" in page.requests


def test_scalar_is_served_by_the_app_at_the_pinned_version(anon: httpx.Client) -> None:
    page = anon.get("/schema")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert "https://" not in page.text
    script = anon.get(f"/schema/assets/scalar-api-reference-{SCALAR_VERSION}.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "immutable" in script.headers["cache-control"]
    vendored = Path(__file__).parents[1] / "backend" / "static" / "scalar" / "standalone.js"
    assert script.content == vendored.read_bytes()
    assert f"@scalar/api-reference@{SCALAR_VERSION}".encode() in script.content


def test_unknown_schema_paths_are_problem_documents(anon: httpx.Client) -> None:
    for path in ("/schema/nope", "/schema/nope.json", "/schema/a/b/c", "/schema/assets/scalar-0.0.0.js"):
        response = anon.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json", path
        assert response.json()["status"] == 404, path


def test_vendored_scalar_is_the_pinned_npm_release(tmp_path: Path) -> None:
    """``backend/static/scalar/update`` run afresh gives back the committed bytes."""
    here = Path(__file__).parents[1] / "backend" / "static" / "scalar"
    for name in ("update", "VERSION"):
        shutil.copy2(here / name, tmp_path / name)
    npm = shutil.which("npm")
    assert npm, "npm is needed (apt-get install nodejs npm)"
    done = subprocess.run(  # noqa: S603 - our own script
        [str(tmp_path / "update")], capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "VERSION").read_text().strip() == SCALAR_VERSION
    assert (tmp_path / "standalone.js").read_bytes() == (here / "standalone.js").read_bytes()


# Every operation in the sidebar opened in turn; what Scalar rendered for it. Scalar renders a section
# when it is shown, so each one is visited (its sidebar link), then read.
_RENDERED_OPERATIONS = """(async () => {
  const pause = () => new Promise(resolve => setTimeout(resolve, 50));
  const groups = [...document.querySelectorAll('button')].filter(b => b.innerText.startsWith('Open Group'));
  groups.forEach(b => b.click());
  await pause();
  const links = [...document.querySelectorAll('a')].filter(a => a.querySelector('.sidebar-heading-type'));
  const out = [];
  for (const link of links) {
    const bare = link.cloneNode(true);
    bare.querySelectorAll('.sidebar-heading-type').forEach(e => e.remove());
    const label = bare.textContent.trim();
    link.click();
    let section = null;
    for (let i = 0; i < 100 && !(section && section.querySelector('.parameter-item')); i++) {
      section = [...document.querySelectorAll('section')].find(s => s.getAttribute('label') === label);
      await pause();
    }
    const parameters = [...(section ? section.querySelectorAll('.parameter-item') : [])]
      .map(item => [item.querySelector('.property-name [id]'), item.querySelector('.property-description')])
      .filter(([name]) => name && /[.](path|query|header|cookie)[.]/.test(name.id))
      .map(([name, text]) => ({where: name.id, description: text ? text.innerText.trim() : ''}));
    out.push({label, rendered: !!section, parameters});
  }
  return out;
})()"""

# What Scalar writes itself where a parameter has no description of its own.
_SCALAR_STOCK = ("Integer numbers.", "the date-time notation as defined by RFC 3339")


def test_the_rendered_docs_show_no_markdown_marks_and_describe_every_parameter(api: ApiServer) -> None:
    with chromium() as page:
        page.goto(f"{api.url}/schema")
        page.wait_for("document.body.innerText.includes('/api/{user_id}/tasks/stats')")
        operations = page.evaluate(_RENDERED_OPERATIONS, timeout=120)
        text = page.evaluate("document.body.innerText")
    assert len(operations) >= 13, operations
    assert [o["label"] for o in operations if not o["rendered"]] == [], operations
    # Sidebar entries, headings and response labels are plain text: Markdown's backticks would show.
    assert [line for line in text.splitlines() if "`" in line] == []
    parameters = [p for o in operations for p in o["parameters"]]
    assert any(p["where"].endswith(".path.user_id") for p in parameters), parameters
    undocumented = [
        p["where"] for p in parameters if not p["description"] or p["description"].startswith(_SCALAR_STOCK)
    ]
    assert undocumented == [], undocumented


_OPEN_OPERATION = """(() => {
  const link = [...document.querySelectorAll('a')].find(a => a.querySelector('.sidebar-heading-type')
    && a.textContent.includes(%s));
  if (link) link.click();
  return !!link;
})()"""


def test_test_request_on_the_toggle_sends_no_body_and_toggles(
    api: ApiServer, tokens: Tokens, user: str, client: httpx.Client
) -> None:
    """Scalar's Test Request sends the first example: the toggle's is no body, so the task flips."""
    task = client.post("/tasks", json={"title": "Flip me", "completed": True}).json()
    url = f"{api.url}/api/{user}/tasks/{task['id']}/complete"
    with chromium() as page:
        page.goto(f"{api.url}/schema")
        page.wait_for("document.body.innerText.includes('/api/{user_id}/tasks/stats')")
        page.evaluate(
            f"""(() => {{
              const box = document.querySelector('input[placeholder="Token"]');
              box.value = {json.dumps(tokens.hs256(user))};
              box.dispatchEvent(new Event('input', {{bubbles: true}}));
            }})()"""
        )
        page.wait_for(_OPEN_OPERATION % json.dumps("Toggle completed, or set it"))
        toggle = "Test Request\n(patch /api/{user_id}/tasks/{task_id}/complete)"
        page.wait_for(_CLICK_BUTTON % json.dumps(toggle))
        for name, value in (("user_id", user), ("task_id", task["id"])):
            page.wait_for(_FOCUS_VALUE_OF % json.dumps(name))
            page.call("Input.insertText", text=value)
        page.wait_for(_CLICK_BUTTON % json.dumps("Send"))
        method, _, status = page.wait_for_response(url)
        sent = [body for m, u, body in page.sent if m == "PATCH" and u == url]
    assert (method, status) == ("PATCH", 200)
    assert sent in ([None], [""]), sent
    assert client.get(f"/tasks/{task['id']}").json()["completed"] is False
