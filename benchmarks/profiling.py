"""Sample a process with py-spy and split its CPU time into named stages.

py-spy (``pip install py-spy``) writes one line per distinct stack in its ``raw`` format:
``frame;frame;...;frame COUNT`` from the root to the leaf, each frame
``function (file:line)``. A stack is charged to the first rule (in order) that matches any
of its frames, so put specific rules before general ones.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

Rule = tuple[str, tuple[str, ...]]


def pyspy_binary() -> str:
    """py-spy next to the running interpreter or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


class PidRecorder:
    """Sample a running process (``--subprocesses``: and its children) with py-spy
    from ``__enter__`` until ``__exit__``, which stops py-spy with SIGINT so that it
    writes ``out``. Idle threads (waiting in a system call) are not sampled; with
    ``gil`` only the thread holding the GIL is (what serialises a Python process)."""

    def __init__(
        self, pid: int, out: Path, *, subprocesses: bool = False, gil: bool = False, rate: int = 200
    ) -> None:
        self.args = [
            pyspy_binary(),
            "record",
            "--format",
            "raw",
            "--rate",
            str(rate),
            "-o",
            str(out),
            "--pid",
            str(pid),
            "--nonblocking",
        ]
        if subprocesses:
            self.args.append("--subprocesses")
        if gil:
            self.args.append("--gil")
        self.out = out
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PidRecorder:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.0)  # attaching takes a moment
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no samples (exit {self.proc.returncode})")


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """Parse py-spy's raw output into ``(frames root→leaf, samples)``."""
    stacks = []
    for line in path.read_text().splitlines():
        head, _, count = line.rpartition(" ")
        if head and count.isdigit():
            stacks.append((head.split(";"), int(count)))
    return stacks


# Leaf frames where a thread waits (for a lock, the GIL, a queue or the event loop's
# poll) rather than computes. py-spy samples them as active, so they are counted apart.
WAIT_LEAVES = (
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Runner.run (asyncio/runners.py",
    "BaseSelector",
    "EpollSelector.select",
    "SimpleQueue.get",
    "Queue.get",
)


def breakdown(
    stacks: list[tuple[list[str], int]], rules: list[Rule], inner_rules: list[Rule] | None = None
) -> dict[str, Any]:
    """Samples per stage, with shares.

    A stack goes to the first of ``rules`` that matches any of its frames (so a stage
    includes everything it calls); failing that, to the ``inner_rules`` stage of the
    innermost frame that matches one (so framework code is charged where the CPU is,
    not to the outermost caller); failing that, to ``other``.

    Stacks whose leaf is a wait (:data:`WAIT_LEAVES`) are counted as ``waiting`` and
    left out of the shares, which are therefore shares of the time spent computing.
    Returns ``{"samples", "waiting_samples", "stages": {name: {"samples", "share"}},
    "top_other": [[leaf frame, samples], ...]}``.
    """
    per: Counter[str] = Counter()
    other_leaves: Counter[str] = Counter()
    waiting = 0
    for frames, n in stacks:
        if any(w in frames[-1] for w in WAIT_LEAVES):
            waiting += n
            continue
        name = _match(frames, rules or [], inner_rules or [])
        per[name] += n
        if name == "other":
            other_leaves[frames[-1]] += n
    total = sum(per.values()) or 1
    order = [name for name, _ in [*rules, *(inner_rules or [])]] + ["other"]
    stages = {
        name: {"samples": per[name], "share": round(per[name] / total, 3)}
        for name in order
        if per[name]
    }
    return {
        "samples": sum(per.values()),
        "waiting_samples": waiting,
        "stages": stages,
        "top_other": [[leaf, n] for leaf, n in other_leaves.most_common(8)],
    }


def _match(frames: list[str], rules: list[Rule], inner_rules: list[Rule]) -> str:
    for name, needles in rules:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    for frame in reversed(frames):
        for name, needles in inner_rules:
            if any(needle in frame for needle in needles):
                return name
    return "other"


def top_leaves(stacks: list[tuple[list[str], int]], k: int = 15) -> list[list[Any]]:
    """The ``k`` leaf frames with the most samples (where the CPU actually was)."""
    leaves: Counter[str] = Counter()
    for frames, n in stacks:
        leaves[frames[-1]] += n
    return [[leaf, n] for leaf, n in leaves.most_common(k)]
