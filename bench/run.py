"""`make bench`: every benchmark against the running `make run` stack.

Each runs in its own interpreter: some start nameko containers and need eventlet's
monkey patch before anything else is imported, which one shared process cannot give.
"""

import subprocess
import sys

BENCHMARKS = ["bench.read_path", "bench.click_day", "bench.vouchers_ranking", "bench.notifications"]


def main() -> None:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, "-m", name], check=False).returncode != 0:  # noqa: S603 - our own modules
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
