"""Running untrusted Python (model-written code, an agent's tool calls) in a child process under OS limits.

Two ways in, one sandbox:

* ``run_python(code, stdin=, timeout_s=, memory_mb=, files=)`` → ``ProgramResult`` (stdout, stderr, exit code,
  timed out, error): the general API, for agent tools and environments (``program``);
* ``run_checked(code, check=)`` → ``CheckResult`` (passed, status): the verifier's, where a pass is what the
  program cannot forge (``checked``), and ``run_programs`` for many at a time (``batch``).

The modules, one idea each: ``limits`` (what a run may use), ``cgroup`` (a process cap for root), ``execution``
(one run: directory, pipes, bootstrap, wait), ``process`` (waiting and killing the process group), ``verdict``
(the parent's end of the verdict channel), ``report`` (the bootstrap's report), ``outcome`` (how a run ended),
``output`` (reading what it printed, within a size), ``check`` (a HumanEval-style test compiled for the run), and
``child/``, the bootstrap's side: ``boot``, ``channel``, ``isolation``, ``prelude`` and ``runner``.

What contains the code
----------------------
The operating system:

* ``resource`` limits on the program's process: address space (``memory_mb``), CPU seconds (≈ the timeout),
  file size (``MAX_FILE_BYTES``), processes (``MAX_PROCESSES``; the kernel does not apply it to root) and no
  core dumps;
* a wall-clock timeout, after which the whole process group is killed with SIGKILL;
* where the kernel allows it (root, or unprivileged user namespaces): new network, PID and mount namespaces. The
  network namespace has no usable interface, so no connection leaves the process; the PID namespace makes the
  program the init of its own namespace, so everything it forks dies (and is reaped) with it; in the mount
  namespace every mount except the fresh working directory is remounted read-only;
* for root, a ``pids`` cgroup (v1, or v2 where delegated) caps the number of processes instead of RLIMIT_NPROC;
* every capability dropped (bounding set included) with no_new_privs, so that a program run as root cannot raise
  its limits, remount, leave its cgroup or regain privileges by exec. It still runs as the same user, though:
  files that user can read, it can read.

Whatever of this a host does not allow is skipped silently; a result's ``isolation`` names what was in force.
Without the namespaces (e.g. macOS, or containers that forbid them) only the limits and the prelude remain.

On top of that a prelude, run in the program's own interpreter before its code, makes ``socket.socket`` raise,
refuses writes, deletes and renames outside the working directory through ``open``/``os``, and refuses
``os.system``/exec/spawn, ``subprocess``, ``os.kill`` and ``setsid``. The prelude is defence in depth and
nothing more: code running in the same interpreter can undo it (``ctypes``, ``posix``, the classes' MRO). It is
not a security boundary; the OS mechanisms above are the real ones.

What "passed" means, and why a program cannot claim it
------------------------------------------------------
``passed`` means the program ran to its end without an exception, and with a ``Check`` that the test code and
``check(<entry_point>)`` then ran to their end too (HumanEval's harness: any exception, ``SystemExit`` included, is a
failure). The exit status is never trusted for that: ``os._exit(0)`` at import, ``raise SystemExit(0)`` in the
function, ``os._exit`` from a thread or a signal handler, an ``atexit`` hook, an ``exec`` of another program all exit
with 0 and are failures. The verdict travels on a channel of its own:

* the parent draws a fresh random token for each run and hands it to the bootstrap on a pipe as its stdin (never in
  argv, the environment or a file); the bootstrap reads it before anything else and points stdin at the program's
  input (or /dev/null);
* the program's process writes ``passed <token>`` to a verdict pipe only from the harness's code, after the program
  (and the test) returned normally, through functions it captured before the program's first line;
* the parent counts a pass only when that exact line is on the verdict pipe *and* the bootstrap exited with 0 within
  the time. Anything else the program writes there, or to any descriptor it finds through /proc/self/fd, or to
  stdout, or in the report (which is closed in its process and only ever classifies failures), cannot be the line:
  the program does not know the token. Killing the bootstrap, or itself, gives a failure.

The threat model, and where it stops. The program is arbitrary Python that wants a pass without passing: it may exit
in any way, spray descriptors, replace ``sys.stdout``, ``builtins``, ``exec``, ``os.write``, ``os._exit`` or
``sys.exit``, define names that shadow builtins, fork, start threads, send signals, add audit hooks, end with a
dangling decorator or an open string meant to swallow the test code, search the interpreter from Python for the
verdict line (every frame's locals, everything ``gc`` lists and what it refers to, in any thread, at any time) and,
on Python 3.13, rewrite the harness frames' locals. None of that gives a pass:

* the verdict line exists, while the program can run, only on a harness frame's value stack, which neither
  ``frame.f_locals`` nor ``gc`` exposes, and the bootstrap that read the token is not dumpable (its memory is
  closed to the program);
* the harness's path from the program's first line to the verdict uses only what it pushed or bound before: the
  functions it calls, ``exec`` and the test's code object sit on value stacks, not in locals a program could rewrite;
* the test is compiled in the parent (``check``) apart from the program, so it cannot be swallowed, with
  ``check``'s body inline, so no hook can swap ``check`` between its definition and its call; it runs in its own
  namespace with the builtins as they were before the program ran;
* trace and profile functions and ``sys.monitoring`` (whose callbacks can jump over lines) are refused by the
  prelude, and the originals are dropped so that ``gc`` cannot return them.

What the program can still do to the test is deceive it from inside its own process (an object whose ``==`` is
always true, a patched ``math``, a helper the test uses rewritten while it runs): out of scope, as in the reference
HumanEval harness, whose own result list is even reachable through ``gc``. What a same-process harness cannot stop
at all is code that reads or rewrites the interpreter's raw memory (ctypes, /proc/self/mem, C helper modules such
as ``_testcapi``): whatever the harness can do, such code can do too. The OS boundary above still holds against it.
"""

from eval_pipeline.sandbox.batch import Program, run_programs
from eval_pipeline.sandbox.cgroup import fork_limit_enforced
from eval_pipeline.sandbox.check import Check
from eval_pipeline.sandbox.checked import CheckResult, run_checked
from eval_pipeline.sandbox.execution import SandboxFailure
from eval_pipeline.sandbox.limits import MAX_FILE_BYTES, MAX_PROCESSES, Limits
from eval_pipeline.sandbox.outcome import Status
from eval_pipeline.sandbox.program import MAX_OUTPUT_CHARS, ProgramResult, run_python

__all__ = ["MAX_FILE_BYTES", "MAX_OUTPUT_CHARS", "MAX_PROCESSES", "Check", "CheckResult", "Limits", "Program",
           "ProgramResult", "SandboxFailure", "Status", "fork_limit_enforced", "run_checked", "run_programs",
           "run_python"]
