"""The decorator form of `step.do`, as Cloudflare's Python SDK has it: `@step.do(name)` over a
function makes a step run by calling it, and Cloudflare's DAG form (`depends=[...]`,
`concurrent=True`, dependencies by parameter name) runs its dependencies first."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ValidationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (which `wf status` would pay for)
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    from ..engine import Execution
    from .do import Do


class StepCallable:
    """A function decorated with `@step.do(...)`: call it to run the step (once per run).

    Its dependencies run first, each once per run (a dependency already run gives its result
    again): those listed in `depends`, whose results go to the function's parameters in order,
    or else the decorated steps named by its parameters (with or without a default). A parameter
    named `ctx` gets the step context; with `concurrent=True` the dependencies run together."""

    def __init__(
        self,
        kind: Do,
        x: Execution,
        decorated: dict[str, StepCallable],
        name: str,
        fn: Callable,
        config: dict | None,
        concurrent: bool,
        depends: list | None = None,
    ):
        self._kind, self._x, self._decorated = kind, x, decorated
        self.name, self.fn, self.config, self.concurrent = name, fn, config, concurrent
        self.depends = _checked_depends(name, depends)
        self._result: asyncio.Future | None = None
        self.__name__ = getattr(fn, "__name__", name)

    def __call__(self):
        return self._run()

    async def _run(self):
        import asyncio  # here: `wf status` loads the step kinds, and starts without asyncio

        if self._result is None:
            task = asyncio.ensure_future(self._execute())
            self._x.children.add(task)  # ended with the execution, never left running after it
            self._result = task
        return await asyncio.shield(self._result)

    async def _execute(self):
        import asyncio
        import inspect

        params = _parameters(self.fn)
        if self.depends is not None:
            deps = self.depends
            names = [p for p, _ in params if p != "ctx"][: len(deps)]
        else:
            decorated = self._decorated
            names = [p for p, _ in params if p in decorated and p != "ctx" and decorated[p] is not self]
            deps = [decorated[p] for p in names]
        if self.concurrent:
            values = await asyncio.gather(*(d() for d in deps))
        else:
            values = [await d() for d in deps]
        injected = dict(zip(names, values))
        rest = [p for p, has_default in params if p not in injected and (p == "ctx" or not has_default)]
        # more dependencies than parameters to name (a `*args`): all their results go by position
        positional, injected = (list(values), {}) if len(values) > len(names) else ([], injected)
        fn = self.fn

        def call(ctx):
            kwargs = dict(injected)
            for p in rest:
                kwargs[p] = ctx
            return fn(*positional, **kwargs)

        call.__wf_params__ = ("ctx",)  # the engine passes ctx; `call` spreads it
        if inspect.iscoroutinefunction(fn):

            async def acall(ctx):
                return await call(ctx)

            acall.__wf_params__ = ("ctx",)
            return await self._kind.run(self._x, self.name, acall, self.config)
        return await self._kind.run(self._x, self.name, call, self.config)


def _checked_depends(name: str, depends: Any) -> list[StepCallable] | None:
    """`depends=[...]`: the steps (functions decorated with `@step.do`) to run before step `name`."""
    if depends is None:
        return None
    if not isinstance(depends, (list, tuple)):
        raise ValidationError(
            f"depends of step {name!r} must be a list of steps, got {depends!r}", "e.g. depends=[step_a, step_b]"
        )
    for dep in depends:
        if not isinstance(dep, StepCallable):
            raise ValidationError(
                f"depends of step {name!r} lists {dep!r}, which is not a step",
                "list functions decorated with @step.do in this run, e.g. depends=[step_a, step_b]",
            )
    return list(depends)


def _parameters(fn: Callable) -> list[tuple[str, bool]]:
    """The positional parameters of `fn` (and a keyword-only `ctx`), each with whether it has a default."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        (p.name, p.default is not p.empty)
        for p in signature.parameters.values()
        if p.kind in kinds or (p.name == "ctx" and p.kind == p.KEYWORD_ONLY)
    ]
