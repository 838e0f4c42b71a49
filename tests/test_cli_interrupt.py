"""Ctrl-C during a CLI command ends it with one line and exit 130, not a traceback.

Found by walkthrough: Ctrl-C while `probe` waited for an answer printed KeyboardInterrupt's traceback through
asyncio's runner (the calls in flight were stored as cancelled all the same; `store copy` already said what became of
its destination instead).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.conftest import write_config
from tests.support.daemon import EXE

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


def test_ctrl_c_while_probe_waits_for_an_answer(tmp_path: Path) -> None:
    with socket.socket() as server:  # takes the call and never answers it
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(120)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{url}', model: m}}", PROBES)
        proc = subprocess.Popen([*EXE, "probe", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=os.environ.copy(),
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            conn, _ = server.accept()  # the call is in flight
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=120)
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert err.strip() == "interrupted" and "Traceback" not in err, err
