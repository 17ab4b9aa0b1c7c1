"""Import the config's `main` and find each workflow's `class_name` in it.

`main` is either a file path relative to the config (`src/index.py`) or a dotted module
(`shop.app`, imported with the config's directory on `sys.path`).

A file is imported as a module of a synthetic package, `_wf_project_<hash>`, whose only
directory is the file's own. That makes relative imports work (`from .workflows.orders import
OrderWorkflow` in `src/index.py`) with or without an `__init__.py`, and gives every project
directory its own module names, so a process that loads several projects (tests, or a
runner serving more than one) never gets another project's cached `src.workflows`.
Loading the same project twice returns the module already imported.

Cloudflare's layout works too: the main file's folder is also put first on `sys.path`, so its
sibling modules import absolutely (`from hello import hello` beside `src/entry.py`, the only form
Cloudflare's runtime allows), and Cloudflare's runtime modules (`workers`, `pyodide.ffi`, `js`)
resolve to wf's stand-ins (`wf.cloudflare`, which says which wins over installed packages).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType

from wf.config import Config, WorkflowConfig
from wf.errors import LoaderError
from wf.runtime.entrypoint import WorkflowEntrypoint

PACKAGE_PREFIX = "_wf_project_"


def load_main(config: Config) -> ModuleType:
    """Import `config.main` and return the module; LoaderError says what went wrong and where."""
    return _import_main(config, purpose="")


def load_workflow_classes(config: Config) -> dict[str, type[WorkflowEntrypoint]]:
    """Every declared workflow's class, keyed by workflow name."""
    if not config.workflows:
        return {}
    wanted = ", ".join(wf.class_name for wf in config.workflows)
    module = _import_main(config, purpose=f" (for {wanted})")
    return {wf.name: workflow_class(config, module, wf) for wf in config.workflows}


def code_fingerprint(config: Config) -> str:
    """A hash of the project's code as imported now: the source of every loaded module whose file
    lies under the config's folder (a virtualenv's packages excepted). Same code, same hash: a
    runner skips the replay check for code its instances were already checked against."""
    root = config.root.resolve()
    files = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py") or "site-packages" in file:
            continue
        path = Path(file).resolve()
        if path.is_relative_to(root):
            files.add(path)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:  # gone since it was imported: the name still tells this code from another
            pass
    return digest.hexdigest()[:32]


# ---------------------------------------------------------------- importing main


def _import_main(config: Config, purpose: str) -> ModuleType:
    from wf import cloudflare

    cloudflare.install()
    if is_file_main(config.main):
        file = (config.root / config.main).resolve()
        if not file.is_file():
            raise LoaderError(
                f"Cannot import main {config.main!r}{purpose}: the file {file} does not exist.",
                hint=f"fix `main` in {config.path}",
            )
        return _guarded(config, purpose, file.parent, lambda: _import_file(file))
    return _guarded(config, purpose, config.root, lambda: _import_dotted(config.main, config.root))


def is_file_main(main: str) -> bool:
    """`main` names a file (`src/index.py`) rather than a dotted module (`shop.app`)."""
    return main.endswith(".py") or "/" in main or "\\" in main


def _import_file(file: Path) -> ModuleType:
    package = package_for(file.parent)
    _first_on_path(file.parent)
    others = [folder for folder in _MAIN_FOLDERS if folder != file.parent.resolve()]
    for entry in file.parent.iterdir():  # this project's siblings win over another project's, cached
        if others and (entry.suffix == ".py" or (entry.is_dir() and entry.name.isidentifier())):
            _forget_other_projects(entry.stem, others)
    _MAIN_FOLDERS.add(file.parent.resolve())
    return importlib.import_module(f"{package}.{file.stem}")


_MAIN_FOLDERS: set[Path] = set()  # folders of the main files imported so far (tests load many projects)


def _forget_other_projects(top: str, others: list[Path]) -> None:
    """Drop a cached top-level `top` that an earlier project's main folder provided (never a library's)."""
    cached = sys.modules.get(top)
    if cached is None:
        return
    locations = [p for p in list(getattr(cached, "__path__", [])) or [getattr(cached, "__file__", None) or ""] if p]
    if locations and any(_is_under(Path(place), folder) for place in locations for folder in others):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _first_on_path(folder: Path) -> None:
    entry = str(folder)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def package_for(folder: Path) -> str:
    """The synthetic package standing for `folder`, registered on first use."""
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
    name = PACKAGE_PREFIX + digest
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        sys.modules[name] = importlib.util.module_from_spec(spec)
    return name


def _import_dotted(module: str, root: Path) -> ModuleType:
    _first_on_path(root)  # first, so this project's package wins over an earlier one's
    _forget_foreign(module.partition(".")[0], root)
    return importlib.import_module(module)


def _forget_foreign(top: str, root: Path) -> None:
    """Drop a cached `top` package that lives outside `root` when `root` has its own `top`."""
    cached = sys.modules.get(top)
    if cached is None or not ((root / top).is_dir() or (root / f"{top}.py").is_file()):
        return
    locations = list(getattr(cached, "__path__", [])) or [getattr(cached, "__file__", None) or ""]
    if any(_is_under(Path(place), root) for place in locations if place):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def _is_under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _guarded(config: Config, purpose: str, home: Path, do_import) -> ModuleType:
    """Run `do_import`, turning anything it raises into a LoaderError naming main and the cause."""
    where = f"Cannot import main {config.main!r}{purpose}"
    try:
        return do_import()
    except SyntaxError as exc:
        place = f"{exc.filename}:{exc.lineno}" + (f":{exc.offset}" if exc.offset else "")
        raise LoaderError(
            f"{where}: syntax error at {place}: {exc.msg}.", hint="fix the syntax error, then try again"
        ) from exc
    except ModuleNotFoundError as exc:
        raise LoaderError(
            f"{where}: ModuleNotFoundError: {exc}{_origin(exc, home)}.", hint=_missing_module_hint(config, exc, home)
        ) from exc
    except Exception as exc:
        raise LoaderError(
            f"{where}: {type(exc).__name__}: {exc}{_origin(exc, home)}.",
            hint="the error happened while the module was being imported; fix the code that runs at import time",
        ) from exc
    except (SystemExit, KeyboardInterrupt) as exc:  # main must not end the process that imports it
        what = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else "raised KeyboardInterrupt"
        raise LoaderError(
            f"{where}: it {what} while being imported{_origin(exc, home)}.",
            hint='guard script code with `if __name__ == "__main__":`',
        ) from None


def _origin(exc: BaseException, home: Path) -> str:
    """` (at file:line)` for the innermost traceback frame in the project, else the innermost."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib._bootstrap" not in f.filename]
    if not frames:
        return ""
    mine = [f for f in frames if _is_under(Path(f.filename), home)]
    frame = (mine or frames)[-1]
    return f" (at {frame.filename}:{frame.lineno})"


def _missing_module_hint(config: Config, exc: ModuleNotFoundError, home: Path) -> str:
    top = (exc.name or "").partition(".")[0]
    if top and is_file_main(config.main) and ((home / top).is_dir() or (home / f"{top}.py").is_file()):
        return f"`{top}` is in your project but {exc.name!r} is not: check the module's name and folder"
    if not is_file_main(config.main) and exc.name and config.main.startswith(exc.name):
        return f"{config.main!r} is looked up from {config.root}; check `main` in {config.path.name}"
    return "install the missing package into this environment, or fix the import"


# ---------------------------------------------------------------- finding the classes


def workflow_class(config: Config, module: ModuleType, wf: WorkflowConfig) -> type[WorkflowEntrypoint]:
    what = f"class_name {wf.class_name!r} of workflow {wf.name!r}"
    cls = getattr(module, wf.class_name, None)
    if cls is None:
        raise LoaderError(
            f"Main {config.main!r} has no attribute {wf.class_name!r} ({what}).", hint=_exported_hint(module)
        )
    if not isinstance(cls, type):
        raise LoaderError(
            f"{config.main}:{wf.class_name} is a {type(cls).__name__}, not a class ({what}).",
            hint="class_name must name a subclass of wf.WorkflowEntrypoint",
        )
    if not issubclass(cls, WorkflowEntrypoint):
        raise LoaderError(
            f"{config.main}:{wf.class_name} is not a subclass of WorkflowEntrypoint ({what}).",
            hint=f"declare it as `class {wf.class_name}(WorkflowEntrypoint)`, "
            "imported with `from wf import WorkflowEntrypoint`",
        )
    if cls.run is WorkflowEntrypoint.run or not inspect.iscoroutinefunction(cls.run):
        raise LoaderError(
            f"{config.main}:{wf.class_name} does not define `async def run(self, event, step)` ({what}).",
            hint="define run as a coroutine function: `async def run(...)`",
        )
    return cls


def _exported_hint(module: ModuleType) -> str:
    found = sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, WorkflowEntrypoint) and value is not WorkflowEntrypoint
    )
    if found:
        return f"it exports these WorkflowEntrypoint subclasses: {', '.join(found)}"
    return "it exports no WorkflowEntrypoint subclass; define or import the class in that module"
