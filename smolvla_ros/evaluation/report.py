"""Episode outcomes and the success rates they add up to, ROS-free.

A rate is reported with its 95 % Wilson score interval: with 20 episodes a measured 80 %
means 58-92 %, which is what the number is worth.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

Z_95 = 1.959964


@dataclass
class EpisodeOutcome:
    index: int
    instruction: str  # the instruction given first
    judged: str  # the instruction the outcome is judged against (the last one given)
    seed: int  # the scene's placement seed
    success: bool
    outcome: str  # succeeded, wrong_object, no_target, time_limit, ...
    time_to_success: float | None  # seconds from the first instruction
    duration: float  # seconds the episode ran
    lifted: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    chunks: int = 0
    latency_median_ms: float | None = None
    switched_at: float | None = None  # seconds into the episode the instruction changed
    video: str = ""
    bag: str = ""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The 95 % score interval of a binomial rate (sensible at 0 % and 100 %, unlike p ± 2σ)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rates(episodes: list[EpisodeOutcome]) -> dict[str, dict]:
    """{judged instruction: episodes, successes, rate, ci95, median time to success}."""
    out = {}
    for text in dict.fromkeys(e.judged for e in episodes):
        mine = [e for e in episodes if e.judged == text]
        wins = [e for e in mine if e.success]
        times = sorted(e.time_to_success for e in wins if e.time_to_success is not None)
        low, high = wilson_interval(len(wins), len(mine))
        out[text] = {"episodes": len(mine), "successes": len(wins), "rate": len(wins) / len(mine),
                     "ci95": [round(low, 4), round(high, 4)],
                     "median_time_to_success_s": times[len(times) // 2] if times else None,
                     "outcomes": {o: sum(e.outcome == o for e in mine)
                                  for o in sorted({e.outcome for e in mine})}}
    return out


def report(episodes: list[EpisodeOutcome], setup: dict) -> dict:
    total = sum(e.success for e in episodes)
    low, high = wilson_interval(total, len(episodes))
    return {"setup": setup, "per_instruction": rates(episodes),
            "overall": {"episodes": len(episodes), "successes": total,
                        "rate": total / len(episodes) if episodes else 0.0,
                        "ci95": [round(low, 4), round(high, 4)]},
            "episodes": [asdict(e) for e in episodes]}


def write_report(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def format_rates(data: dict) -> str:
    lines = []
    for text, r in data["per_instruction"].items():
        median = r["median_time_to_success_s"]
        lines.append(f"  {text!r}: {r['successes']}/{r['episodes']} = {100 * r['rate']:.0f} % "
                     f"(95 % CI {100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f} %)"
                     f"{f', median {median:.1f} s to success' if median is not None else ''}; "
                     + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
    o = data["overall"]
    lines.append(f"  overall: {o['successes']}/{o['episodes']} = {100 * o['rate']:.0f} % "
                 f"(95 % CI {100 * o['ci95'][0]:.0f}-{100 * o['ci95'][1]:.0f} %)")
    return "\n".join(lines)
