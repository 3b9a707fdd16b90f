"""Plain Radicale, multifilesystem storage with fsync off, and the bridge's authentication:
an argon2id hash (htpasswd) with successful logins remembered, as the bridge remembers them.

Run as ``python -m bench.radicale_peer DATA_DIR PORT HTPASSWD``. fsync is a privileged option
that a configuration file cannot set, so the configuration is built here.
"""

from __future__ import annotations

import signal
import socket
import sys

from radicale import config, log, server


def main(data_dir: str, port: str, htpasswd: str) -> None:
    configuration = config.load()
    configuration.update(
        {
            "server": {"hosts": f"127.0.0.1:{port}"},
            "auth": {
                "type": "htpasswd",
                "htpasswd_filename": htpasswd,
                "htpasswd_encryption": "argon2",
                "cache_logins": "True",
                "delay": "0",
            },
            "rights": {"type": "owner_only"},
            "storage": {"type": "multifilesystem", "filesystem_folder": data_dir},
            "logging": {"level": "warning"},
        },
        "bench",
    )
    configuration.update({"storage": {"_filesystem_fsync": "False"}}, "bench", privileged=True)
    log.setup()
    log.set_level("warning", False, "")
    stop_reader, stop_writer = socket.socketpair()
    signal.signal(signal.SIGTERM, lambda *_: stop_writer.close())
    server.serve(configuration, stop_reader)


if __name__ == "__main__":
    main(*sys.argv[1:4])
