"""One look per objective in every plot (the miniature's and ``eval compare``'s), and the figure helpers they share.

Runs that are easily confused are told apart by colour *and* line style and marker: nsr (blue,
solid) vs w_reinforce (green, dashed), psr (red, solid) vs grpo (orange, dashed); the base model is
grey and dotted. ``eval compare`` draws the paper's curves with the same colours as thin dotted
lines, so "our nsr" and "paper nsr" read as one family.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

STYLES: Dict[str, dict] = {
    "base": dict(color="tab:gray", ls=":", marker="s"),
    "psr": dict(color="tab:red", ls="-", marker="v"),
    "nsr": dict(color="tab:blue", ls="-", marker="o"),
    "w_reinforce": dict(color="tab:green", ls="--", marker="D"),
    "reinforce": dict(color="tab:purple", ls="-.", marker="x"),
    "grpo": dict(color="tab:orange", ls="--", marker="^"),
    "ppo": dict(color="tab:brown", ls="-.", marker="P"),
    "w_reinforce_sched": dict(color="tab:olive", ls=(0, (5, 1, 1, 1)), marker="<"),
    "w_reinforce_adaptive": dict(color="tab:cyan", ls=(0, (1, 1)), marker=">"),
    "maxrl": dict(color="tab:pink", ls="-", marker="*"),
    "passk": dict(color="black", ls="--", marker="h"),
}
# Curves whose name is none of the above (a user's own labels in eval compare) cycle through these.
_EXTRA = [dict(color=c, ls=ls, marker=m) for c, ls, m in (
    ("gold", "-", "o"), ("navy", "--", "s"), ("lime", "-.", "^"), ("teal", ":", "v"))]  # fmt: skip


def key(name: str) -> str:
    """A label's objective: "W-REINFORCE", "w_reinforce" and "run/w-reinforce" all give "w_reinforce"."""
    text = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    for known in sorted(STYLES, key=len, reverse=True):
        if text == known or text.endswith("_" + known):
            return known
    return text


def style(name: str, others: Sequence[str] = ()) -> dict:
    """Colour, line style and marker for a curve named ``name`` (``others``: the unknown names drawn, in order)."""
    known = STYLES.get(key(name))
    if known is not None:
        return dict(known)
    unknown = [n for n in dict.fromkeys(others) if key(n) not in STYLES]
    index = unknown.index(name) if name in unknown else 0
    return dict(_EXTRA[index % len(_EXTRA)])


def smooth(values: Sequence[float], window: int) -> List[float]:
    """Trailing moving average over ``window`` steps (fewer at the start): the curve drawn over the faint raw one."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
