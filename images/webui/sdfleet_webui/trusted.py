"""The trusted sidecar's entrypoint: the front (game server port) and the user sync, together.

    python -m sdfleet_webui.trusted

Both need the same fact, whose pod this is, and both must stay out of the WebUI
container's reach (it runs third-party extensions), so they share the ``user-sync``
container. The front runs on the asyncio loop of the main thread; the sync loop on a
thread. SIGTERM stops the front, then the sync makes its final copy back.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

from . import settings as st
from .agones import AgonesSdk
from .front import Front, FrontConfig
from .logs import log
from .usersync import SyncConfig, UserSync


async def run(front_config: FrontConfig, sync: UserSync | None) -> None:
    front = Front(front_config)
    await front.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    thread = None
    if sync is not None:
        thread = threading.Thread(target=sync.run, name="user-sync")
        thread.start()
    await stop.wait()
    log("signal", signal="SIGTERM")
    await front.stop()
    if sync is not None:
        sync.stop.set()
        sync.wake.set()
        await asyncio.to_thread(thread.join)


def main() -> int:
    try:
        front_config = FrontConfig.from_env()
        sync_config = SyncConfig.from_env()
    except st.SettingError as exc:
        log("config-error", level="error", cause=str(exc))
        return 2
    sync = UserSync(sync_config, AgonesSdk(sync_config.agones_port))
    log("trusted-sidecar-starting", front=f"{front_config.host}:{front_config.port}",
        users_root=str(sync_config.users_root))
    asyncio.run(run(front_config, sync))
    log("trusted-sidecar-stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
