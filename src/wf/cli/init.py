"""`wf init`: write a project that runs at once, offline, and whose own tests pass."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

import typer

from ..errors import ConflictError, ValidationError
from .core import app, say

RENAMES = {"gitignore": ".gitignore"}
NEXT = {  # what to run first in each template's project
    "default": "trigger order-processing --params order.json --wait",
    "cloudflare": 'trigger my-workflow \'{"name": "Ada", "wait": "1 second"}\' --wait',
}
TEXT_SUFFIXES = (".py", ".jsonc", ".json", ".md", ".toml", "gitignore")


def template_files(template: str) -> dict[str, str]:
    """Relative path → text of every file of a bundled template."""
    root = resources.files("wf") / "templates"
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    if template not in names:
        raise ValidationError(f"template {template!r} does not exist", "available: " + ", ".join(names))
    files: dict[str, str] = {}
    _collect(root / template, "", files)
    return files


def _collect(folder, prefix: str, files: dict[str, str]) -> None:
    for entry in folder.iterdir():
        if entry.name in ("__pycache__",) or entry.name.endswith(".pyc"):
            continue
        rel = f"{prefix}{RENAMES.get(entry.name, entry.name)}"
        if entry.is_dir():
            _collect(entry, rel + "/", files)
        elif entry.name.endswith(TEXT_SUFFIXES):
            files[rel] = entry.read_text(encoding="utf-8")


def render(files: dict[str, str], name: str, fmt: str) -> dict[str, str]:
    out = {path: text.replace("{{name}}", name) for path, text in files.items()}
    if fmt == "toml":
        out["wrangler.toml"] = _as_toml(out.pop("wrangler.jsonc"))
    return out


def _as_toml(jsonc: str) -> str:
    import pyjson5
    import tomli_w

    return (
        "# wf project config: the same shape as Cloudflare's wrangler.toml.\n"
        "# main exports the workflow classes; each [[workflows]] entry declares one.\n\n"
        + tomli_w.dumps({k: v for k, v in pyjson5.loads(jsonc).items() if k != "$schema"})
    )


@app.command()
def init(
    directory: str = typer.Argument(".", metavar="DIR", help="Where to create the project (default: here)."),
    template: str = typer.Option(
        "default", "--template", help="Project template: default (an order and an approval workflow) or cloudflare."
    ),
    fmt: str = typer.Option("jsonc", "--format", help="Config format: jsonc or toml."),
    name: str | None = typer.Option(None, "--name", help="Project name (default: the folder's name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
):
    """Create a project that runs at once, offline, with its tests, and deploys to Cloudflare as it is.

    `default`: an order workflow, an approval workflow, a Worker with an HTTP API, tests.
    `cloudflare`: Cloudflare's Python Workflows starter (src/entry.py: a Workflow, and a Worker
    that starts and reads it), with pyproject.toml for Cloudflare's Python tooling, and tests.

    Example: wf init shop && cd shop && wf trigger order-processing --params order.json --wait
    """
    if fmt not in ("jsonc", "toml"):
        raise ValidationError(f"--format {fmt!r} is not supported", "use --format jsonc or --format toml")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ValidationError(f"{directory!r} exists and is not a folder", "choose another directory")
    project = name or re.sub(r"[^a-zA-Z0-9_-]", "-", target.resolve().name) or "my-project"
    files = render(template_files(template), project, fmt)
    clashes = sorted(p for p in files if (target / p).exists())
    if clashes and not force:
        raise ConflictError(
            f"{len(clashes)} file(s) already exist in {directory!r}: {', '.join(clashes[:5])}"
            + (" ..." if len(clashes) > 5 else ""),
            "pass --force to overwrite them",
        )
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    where = "" if directory == "." else f"cd {shlex.quote(directory)} && "
    say(
        f"created {len(files)} files in {target.resolve()}\n"
        f"next: {where}{wf_command(target)} {NEXT.get(template, 'dev')}"
    )


def wf_command(project: Path) -> str:
    """How to run this same `wf` from inside `project`: `wf` when the shell finds it on its PATH (an
    active virtual environment), else its path, relative to the project when that is shorter."""
    script = Path(sys.executable).parent / "wf"
    found = shutil.which("wf")
    if found and Path(found).resolve() == script.resolve():
        return "wf"
    if not script.exists():  # not installed as a script (python -m wf from a checkout)
        return f"{shlex.quote(sys.executable)} -m wf"
    relative = os.path.relpath(script, project.resolve())
    return shlex.quote(relative if len(relative) < len(str(script)) else str(script))
