"""Every bad-input case of tests/fuzz_cases.py over every command: counts per class and every failure.

    python bench/fuzz.py [--seed N] [--only CLASS] [--timeout SECONDS]

Each case runs in-process in a fresh copy of a scratch folder and must end with exit code 2, one
"lightvid: error:" line on stderr, no traceback, and the folder as it was (tests/fuzz_cases.py says why).
Exits 1 if any case fails. tests/test_fuzz.py runs a fast subset of the same cases in `make test`.
"""
import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fuzz_cases import cases, check_case, fresh_scratch, make_scratch, run_captured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="run one class of cases (e.g. 'output')")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a case may run (default 60)")
    args = parser.parse_args()
    todo = [c for c in cases(args.seed) if args.only is None or c.kind == args.only]
    total, failed = Counter(c.kind for c in todo), {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lightvid-fuzz-") as tmp:
        template = make_scratch(Path(tmp) / "template")
        for i, case in enumerate(todo):
            scratch = fresh_scratch(template, Path(tmp) / "scratch")
            problem = check_case(case, scratch, run_captured, timeout=args.timeout)
            if problem is not None:
                failed[case] = problem
                print(f"FAIL [{case.kind}] {case}\n     {problem}", flush=True)
            elif (i + 1) % 25 == 0:
                print(f"... {i + 1}/{len(todo)} cases, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    print(f"\n{'class':<16} {'cases':>6} {'failed':>7}")
    broken = Counter(c.kind for c in failed)
    for kind in sorted(total):
        print(f"{kind:<16} {total[kind]:>6} {broken[kind]:>7}")
    print(f"{'all':<16} {sum(total.values()):>6} {len(failed):>7}   ({seconds:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
