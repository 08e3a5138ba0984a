"""A Python child process that waits for its test: the real-process pattern of the truncation tests
(tests/sidecar/client/model/control_block_truncation_test.py, channel/test_channel_truncation_py.py,
region/test_region_truncation_py.py). The child opens its file, prints "ready" and blocks on a
line of stdin; the test changes the file under it (truncates, recreates), sends the line, and
reads what the child printed about its calls after the change.

The child is a separate interpreter because what these tests look for is a process that dies
(of SIGBUS, returncode -SIGBUS) or survives; a thread could not show that. Bounded: the child
gets `timeout` seconds to finish once it has its last line, and one still running when run_child
returns (a failed expectation, an exception, that timeout) is killed and reaped.

Tests import it after putting this directory on sys.path (tests/testing holds the helpers that
several test folders share).
"""
import subprocess
import sys

TIMEOUT = 60  # seconds the child has to finish after its last line


class Child:
    """The running child, as run_child hands it to `act`: one line each way at a time."""

    def __init__(self, process):
        self._p = process

    def expect(self, line):
        """Reads the child's next line of stdout; it must be `line` (else AssertionError, which
        unittest reports as a failure)."""
        got = self._p.stdout.readline().strip()
        if got != line:
            raise AssertionError(f"the child printed {got!r}, expected {line!r}")

    def send(self, line):
        self._p.stdin.write(line + "\n")
        self._p.stdin.flush()


def run_child(code, args, act, last="go", timeout=TIMEOUT):
    """Runs ``python -c code *args``; once it prints "ready", calls act(child) (which changes the
    files and may exchange more lines through child.send / child.expect), sends `last` and waits
    for the child to exit. Returns (returncode, the lines it printed after the last one
    expected)."""
    p = subprocess.Popen([sys.executable, "-c", code, *args],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child = Child(p)
        child.expect("ready")
        act(child)
        out, _ = p.communicate(last + "\n", timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out.split("\n")[:-1]
