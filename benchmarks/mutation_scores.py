"""Per-module mutation score from mutmut's results (run after ``mutmut run``).

Usage: ``python benchmarks/mutation_scores.py`` in the repository root. Prints, for each
mutated module, how many mutants the tests killed, how many survived or had no test, and
the score ``killed / (killed + survived + no tests + timeout)``. Mutants still "not
checked" (an unfinished run) are counted apart and left out of the score.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from typing import Dict, Iterable, Tuple

#: mutmut statuses that count against the score (a timeout is a mutant the tests did not catch in time)
_NOT_KILLED = ("survived", "no tests", "timeout", "suspicious")


def parse_results(lines: Iterable[str]) -> Dict[str, Counter]:
    """Counts of each status per module from ``mutmut results --all true`` lines.

    A line reads ``    oucr.stats.x_holm__mutmut_3: killed``; the module is the part of
    the mutant's name before its mangled function name (``.x_`` or ``.xǁ``).
    """
    counts: Dict[str, Counter] = defaultdict(Counter)
    for line in lines:
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        cut = min(i for i in (name.find(".x_"), name.find(".xǁ")) if i >= 0)
        counts[name[:cut]][status.strip()] += 1
    return counts


def score(counts: Counter) -> Tuple[int, int, float]:
    """(killed, counted, score) of one module; score is NaN when nothing was counted."""
    killed = counts["killed"]
    counted = killed + sum(counts[s] for s in _NOT_KILLED)
    return killed, counted, (killed / counted if counted else float("nan"))


def main() -> int:
    out = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True)
    modules = parse_results(out.stdout.splitlines())
    print(f"{'module':<20} {'killed':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} {'unchecked':>10} {'score':>7}")
    worst = 1.0
    for module in sorted(modules):
        c = modules[module]
        killed, counted, s = score(c)
        worst = min(worst, s) if counted else worst
        print(f"{module:<20} {killed:>7} {c['survived']:>9} {c['no tests']:>9} {c['timeout']:>8} "
              f"{c['not checked']:>10} {s:>7.1%}")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
