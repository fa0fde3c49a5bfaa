"""A byzmpi plugin for the Slurm tests: the trimmed mean after a 10 ms pause, so that every round
lasts at least that long on any machine and a test can interrupt a job in the middle of its run
(without it, 400 rounds on an idle machine can be over before a signal gets there)."""

import dataclasses
import time

from byzmpi.aggregators import register_rule
from byzmpi.aggregators.registry import RULES

PAUSE = 0.01
_base = RULES["trimmed_mean"]


def _paced(x, **kwargs):
    time.sleep(PAUSE)
    return _base(x, **kwargs)


register_rule(
    dataclasses.replace(
        _base, name="paced_trimmed_mean", apply=_paced, doc=f"trimmed_mean after a {PAUSE * 1e3:.0f} ms pause (tests)"
    ),
    replace=True,
)
