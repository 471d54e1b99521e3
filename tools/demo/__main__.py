"""`make demo`: start the data plane on loopback, print where to sign in, stop on Ctrl-C.

    python -m tools.demo [--stack demo] [--port 8080]

Exit status: 0 stopped cleanly, 1 it could not start (the reason is printed), 2 the stack
config is invalid (one line per problem).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_CONFIG_ERROR = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="demo", help="reads Pulumi.<stack>.yaml (default: demo)")
    parser.add_argument("--config-file", help="a stack file to read instead of Pulumi.<stack>.yaml")
    parser.add_argument("--port", type=int, default=8080, help="where to serve it (default: 8080)")
    parser.add_argument("--state-dir", help="where people's files are kept (default: .demo)")
    args = parser.parse_args(argv)

    from components.config import ConfigError
    from tools.demo.world import Demo

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        demo = Demo(args.stack, port=args.port, config_file=args.config_file,
                    state_dir=Path(args.state_dir) if args.state_dir else None)
    except ConfigError as exc:
        print(f"{args.config_file or f'Pulumi.{args.stack}.yaml'}: invalid config "
              f"({len(exc.lines)} problem(s)):", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except FileNotFoundError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    started = time.monotonic()
    print("make demo: starting Redis, the router, the allocator and culler, the cluster "
          "emulator and the first pod ...", flush=True)
    try:
        demo.start()
    except (RuntimeError, OSError) as exc:
        print(f"make demo: could not start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"""
sdfleet demo is up ({time.monotonic() - started:.0f} s): open {demo.url}/

  sign in as {' or '.join(demo.accounts)} (each gets their own pod)
  idle pods are culled after {demo.idle_seconds} s; files are kept in {demo.state_dir / 'users'}
  this is a local demo: the sign-in stands in for IAP and the WebUI is a stand-in, not
  Stable Diffusion; the router, Redis, allocator, culler and the pods' programs are real.

Ctrl-C stops everything.""", flush=True)
    stopping.wait()
    print("make demo: stopping ...", flush=True)
    demo.stop()
    print("make demo: stopped; nothing is left running.", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
