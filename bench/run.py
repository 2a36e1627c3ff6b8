"""`make bench`: every benchmark against the running `make run` stack."""

import importlib
import sys

BENCHMARKS = ["bench.read_path", "bench.click_day", "bench.vouchers_ranking", "bench.notifications"]


def main() -> None:
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            print(f"== {name}: not available yet, skipped")
            continue
        print(f"== {name}")
        sys.argv = [name]
        module.main()


if __name__ == "__main__":
    main()
