"""Every error `wf` raises, in one place.

The tree::

    Exception
    ├── WfError                      something the user can fix; message names the bad value, `hint` says how
    │   ├── ConfigError              the wrangler config: file, line:column, field, expected, found
    │   ├── LoaderError              importing `main` or finding `class_name` failed
    │   ├── ValidationError          a bad value: id, name, duration, step config, payload size, JSON
    │   │   └── UsageError           a command line that does not parse (unknown option, missing argument)
    │   ├── NotFoundError            no such workflow or instance
    │   ├── ConflictError            the instance exists already, or is in a state that forbids the action
    │   ├── StoreError               the state store cannot be opened (corrupt, newer schema, locked)
    │   │   └── UnknownKindError     the store holds a step kind or log event no registered kind declares
    │   └── NoRunnerError            work was queued but no runner is alive to run it
    │
    ├── NonRetryableError            raised by workflow code: stop retrying this step now
    ├── WorkflowTimeoutError         a step attempt or a wait_for_event ran out of time (catchable in run())
    └── WorkflowFatalError           the engine ended the instance: step limit, invalid step config, bad result

    BaseException
    └── runtime.engine.Interrupt     internal: unwinds run() on suspend/pause/terminate; user
                                     `except Exception` cannot swallow it

`WfError.exit_code` is what the command line exits with.
"""

from __future__ import annotations

import builtins


class WfError(Exception):
    """An error the user can act on. `str()` is one sentence; `hint` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def naming(self, name: str) -> WfError:
        """This error, with its "the instance" (the store knows only a seq) said as `name`."""
        if name in self.message:
            return self
        message = self.message.replace("the instance", name, 1) if "the instance" in self.message else None
        return type(self)(message or f"{name}: {self.message}", self.hint)


class ConfigError(WfError):
    exit_code = 2

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ):
        where = path or ""
        if path and line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        full = f"{where}: {message}" if where else message
        super().__init__(full, hint)
        self.path, self.line, self.column, self.field = path, line, column, field


class LoaderError(WfError):
    exit_code = 2


class ValidationError(WfError, ValueError):
    exit_code = 2


class UsageError(ValidationError):
    """The command line itself is wrong: an unknown option, a missing argument (exit code 2, as click's)."""


class NotFoundError(WfError, LookupError):
    exit_code = 3


class ConflictError(WfError):
    exit_code = 4


class StoreError(WfError):
    """The store failed. `transient`: an outage (a database restart, a full disk, a lock held too
    long) that may pass; the runner retries, and a workflow never fails because of it."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None, *, transient: bool = False):
        super().__init__(message, hint)
        self.transient = transient


class UnknownKindError(StoreError, LookupError):
    """A stored step kind, step type or log event that no registered step kind declares (written by a
    newer wf, or by a kind this process did not register): readers stop here instead of guessing."""


class NoRunnerError(WfError):
    exit_code = 6


class NonRetryableError(Exception):
    """Raise inside a step to fail it at once, without further retries."""

    def __init__(self, message: str = "", name: str | None = None):
        super().__init__(message)
        self.message = message
        if name:
            self.name = name

    name = "NonRetryableError"


class WorkflowTimeoutError(Exception):
    """A step attempt exceeded its timeout, or a wait_for_event got no event in time."""

    name = "WorkflowTimeoutError"


class WorkflowFatalError(Exception):
    """The engine ended the instance (not retried)."""

    name = "WorkflowFatalError"


class StepError(Exception):
    """A step's stored final error, raised again on replay.

    Carries the original exception's class name so `status()` reports it faithfully even
    when the class itself cannot be rebuilt.
    """

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


def error_info(exc: BaseException) -> dict:
    """The `{"name", "message"}` shape Cloudflare reports for an error. The name is the exception's
    class, always: a `name` attribute is another thing on many exceptions (`AttributeError.name`
    is the missing attribute, `NameError.name` the unknown name, `ImportError.name` the module).
    Only a `StepError` (standing for a class that could not be rebuilt) and a `NonRetryableError`
    given a name of its own (as Cloudflare's takes one) carry the name elsewhere."""
    name = vars(exc).get("name") if isinstance(exc, (StepError, NonRetryableError)) else None
    if not isinstance(name, str) or not name:
        name = type(exc).__name__
    return {"name": name, "message": str(exc)}


def rebuild_error(info: dict) -> Exception:
    """Turn a stored `{"name", "message"}` back into an exception to raise in `run()`."""
    name, message = info.get("name", "Error"), info.get("message", "")
    known = {
        "NonRetryableError": NonRetryableError,
        "WorkflowTimeoutError": WorkflowTimeoutError,
        "WorkflowFatalError": WorkflowFatalError,
    }
    if name in known:
        return known[name](message)
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        try:  # OSError's kin too: given one argument, they keep it as their message
            rebuilt = builtin(_key(message) if builtin is KeyError else message)
        except Exception:  # a builtin with another constructor shape (UnicodeDecodeError...)
            return StepError(name, message)
        if type(rebuilt) is builtin:
            return rebuilt
    return StepError(name, message)


def _key(message: str) -> object:
    """The key of a KeyError from its message (the key's repr), so that the rebuilt error says the
    same thing; the message itself when it is not a literal."""
    import ast

    try:
        return ast.literal_eval(message)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return message
