"""The program's process: run the program (and its test) as ``__main__``, write the verdict only if it ran to its end.

Whether it passed travels on its own channel (``channel``; the threat model is in ``eval_pipeline.sandbox``'s
docstring): ``run_program`` writes ``passed <token>`` to the verdict pipe only after the program and its test ran
to their end, with functions it captured before the program's first line, and holds the line only on its frame's
value stack meanwhile.
"""

from __future__ import annotations

import os
import sys

from .prelude import install_guards

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing itself costs every run a few milliseconds
    from typing import Any, NoReturn


def run_program(source: str, test: bytes | None, work: str, verdict_fd: int, box: list[bytes]) -> NoReturn:
    """In the program's process: run it (``_execute``), write the verdict only if it ran to its end, exit.

    The verdict line is popped from ``box`` onto this frame's value stack before the program's first line and sliced
    to nothing unless ``_execute`` returned 1, so no frame's locals, no object that ``gc`` lists and no descriptor
    holds it while the program (or anything it left behind: threads, signal handlers, finalizers) can run. Every
    name this frame uses after the program started was bound before it (``_execute`` is looked up, and its frame
    created, before the program's first line; rebinding ``os.write`` or ``_execute.__code__`` later changes nothing).
    """
    import builtins
    import marshal
    import site

    write, exit_now, caught = os.write, os._exit, BaseException
    tools = (exec, marshal.loads, builtins)
    sys.path.extend(path for path in site.getsitepackages() if path not in sys.path)  # -S skipped them
    status = [1]
    try:
        try:  # noqa: SIM105 — contextlib would cost every run its import
            write(verdict_fd, box.pop()[:_execute(source, test, work, tools, status) * 4096])
        except caught:  # raised by what the program left behind: not a pass, and nothing more to do
            pass
        _flush()
    finally:
        exit_now(status[0])


def _execute(source: str, test: bytes | None, work: str, tools: tuple[Any, Any, Any], status: list[int]) -> int:
    """The prelude, the code as ``__main__``, then the test: 1 when all of it ran to its end, else 0 with the exit
    code in ``status[0]``. Any exception, ``SystemExit`` included (as in HumanEval's harness), is a failure.

    ``test`` is the parent's compiled test with ``check``'s body inline (``eval_pipeline.sandbox.check``). What
    decides the outcome after the program started is on this frame's value stack, pushed before: ``exec`` and the
    test's code object (on Python 3.13 a program can rewrite a frame's locals, not its stack). What the test sees
    comes from ``_scope``: the program's names, less any that shadow a builtin, and the builtins as they were
    before; a program that tampers with that can deceive the test (like an object whose ``==`` is always true) but
    cannot make it skip a statement.
    """
    run, loads, builtins = tools
    test_text, tests = loads(test) if test is not None else ("", None)
    try:
        os.chdir(work)
        program = compile(source, "<program>", "exec")
        install_guards(work)
        pristine = dict(builtins.__dict__)
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        if tests is None:
            run(program, namespace)
        else:
            run(tests, _scope(run(program, namespace), namespace, pristine))
        status[0] = 0
        return 1
    except SystemExit as exc:
        status[0] = _exit_code(exc.code)
    except BaseException as exc:  # reported as the interpreter would, without the harness's frames
        _print_exception(exc, {"<program>": source, "<test>": test_text})
    return 0


def _scope(_: None, namespace: dict[Any, Any], pristine: dict[str, Any]) -> dict[str, Any]:
    """The test's globals: the program's names (plain ``str`` keys) that do not shadow a builtin, and ``pristine``
    as the builtins."""
    scope = {name: value for name, value in namespace.items() if type(name) is str and name not in pristine}
    scope["__name__"], scope["__builtins__"] = "__main__", pristine
    return scope


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 — contextlib would cost every run its import
            stream.flush()
        except BaseException:  # a full disk or a closed stream: nothing more to say
            pass


def _print_exception(exc: BaseException, sources: dict[str, str]) -> None:
    try:
        import linecache
        import traceback

        for filename, source in sources.items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
    except BaseException:  # e.g. no memory left to format it
        os.write(2, f"{type(exc).__name__}\n".encode())


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1
