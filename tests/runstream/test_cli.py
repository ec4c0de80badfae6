"""The ``runstream`` entry point: a SIGTERM before a service installed its own handler."""

import subprocess
import sys
import textwrap

# A SIGTERM handled inside a finalizer: Python prints and drops any exception a
# finalizer raises (importlib's module locks run one during every import), so a
# handler that stops by raising SystemExit there is lost and the service runs on.
_SIGTERM_INSIDE_A_FINALIZER = textwrap.dedent("""
    import os, signal, sys
    from runstream import cli

    signal.signal(signal.SIGTERM, cli._exit_before_start)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the Python handler runs between these bytecodes, inside __del__
                pass

    Finalized()  # dropped at once: __del__ runs now
    print("still running", flush=True)
    sys.exit(3)
""")


def test_a_sigterm_before_the_service_started_exits_cleanly_even_inside_a_finalizer():
    done = subprocess.run([sys.executable, "-c", _SIGTERM_INSIDE_A_FINALIZER], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
