"""Run one ``unembed`` command in this process and print its peak resident memory and time.

    python benchmarks/_peak.py [--stdout FILE] [--deadline SECONDS] ARGV...

prints one JSON line: {"rc", "seconds", "cpu_seconds", "peak_rss", "baseline_rss",
"children_peak_rss", "children_cpu_seconds"} (bytes; the children: the largest peak of a
worker process (LP workers are forked: their resident pages include the parent's rows they
share, not copies) and the CPU seconds of all of them;
``cpu_seconds``: user + system time of the command, which a shared machine does not
inflate). ``baseline_rss``
is the peak before the command starts (the interpreter with numpy, scipy and unembed's CLI
imported); the test and the benchmark compare ``peak_rss - baseline_rss`` with the size of the
float64 head. Output of the command itself goes to /dev/null. With ``--deadline`` the command
is interrupted after that many seconds (rc 130) and the peak so far is reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time


def _maxrss() -> int:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return int(kib) * 1024


def main() -> None:
    import numpy  # noqa: F401
    import scipy.optimize  # noqa: F401

    from unembed.cli import main as cli

    argv = sys.argv[1:]
    out_path = os.devnull
    if argv[:1] == ["--stdout"]:
        out_path, argv = argv[1], argv[2:]
    if argv[:1] == ["--deadline"]:
        import signal

        signal.alarm(int(argv[1]))
        signal.signal(signal.SIGALRM, signal.default_int_handler)
        argv = argv[2:]
    base = _maxrss()
    c0 = time.process_time()
    t0 = time.perf_counter()
    with open(out_path, "w") as null, contextlib.redirect_stdout(null):
        rc = cli(argv)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rc": rc, "seconds": dt, "cpu_seconds": cpu, "peak_rss": _maxrss(),
                      "baseline_rss": base, "children_peak_rss": int(kids.ru_maxrss) * 1024,
                      "children_cpu_seconds": kids.ru_utime + kids.ru_stime}))


if __name__ == "__main__":
    main()
