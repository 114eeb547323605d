"""What an ingest run did, counted so that rows read = rows indexed + rows quarantined."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class IngestSummary:
    files: list[str]
    rows_read: int = 0
    rows_indexed: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0
    index_version: str | None = None
    quarantine_path: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    risk_levels: dict[str, int] = field(default_factory=dict)
    risk_seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_indexed + self.rows_quarantined

    def to_dict(self) -> dict:
        return {**asdict(self), "rows_per_s": round(self.rows_per_s, 1), "balanced": self.balanced}

    def render(self) -> str:
        top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]
        lines = [
            f"files:            {len(self.files)}",
            f"rows read:        {self.rows_read}",
            f"rows indexed:     {self.rows_indexed}",
            f"rows quarantined: {self.rows_quarantined}" + (f"  -> {self.quarantine_path}" if self.rows_quarantined else ""),
            f"seconds:          {self.seconds:.1f}",
            f"rows/s:           {self.rows_per_s:.1f}",
            f"index version:    {self.index_version}",
            "risk levels:      " + (", ".join(f"{k} {v}" for k, v in sorted(self.risk_levels.items())) or "not scored")
            + (f"  (scored in {self.risk_seconds:.1f} s)" if self.risk_levels else ""),
        ]
        lines += [f"  quarantined because {reason}: {n}" for reason, n in top]
        return "\n".join(lines)
