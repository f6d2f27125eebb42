"""`orgtune data check FILE`: validate a training file, then measure it under the model's chat template.

    orgtune data check data/train.jsonl --model smollm2-135m --max-seq-length 512 --show-mask 2

Rows are validated first (every bad line reported, nothing loaded); only a clean file gets token
statistics: lengths, how many rows truncation would cut, and which rows would lose every assistant
token (training drops and counts those, so no step ever trains on zero tokens).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from orgtune.data.formats import FORMATS, Row, load_rows
from orgtune.data.tokenize import encode_rows, show_mask


@dataclass
class CheckReport:
    path: Path
    format: str
    rows: int
    blank_lines: int
    max_seq_length: int
    lengths: list[int] = field(default_factory=list)  # tokens per row, before truncation
    trained_tokens: int = 0
    truncated: int = 0
    dropped_lines: list[int] = field(default_factory=list)
    masks: list[str] = field(default_factory=list)

    def stats(self) -> dict:
        xs = sorted(self.lengths)
        if not xs:
            return {}
        return {
            "min": xs[0],
            "mean": round(statistics.fmean(xs), 1),
            "p50": xs[len(xs) // 2],
            "p95": xs[min(len(xs) - 1, int(0.95 * len(xs)))],
            "max": xs[-1],
        }

    def render(self) -> str:
        s = self.stats()
        lines = [
            f"{self.path}: {self.rows} valid rows, format {self.format}"
            + (f", {self.blank_lines} blank lines skipped" if self.blank_lines else "")
        ]
        if s:
            lines.append(
                f"tokens per row     min {s['min']}  mean {s['mean']}  p50 {s['p50']}  p95 {s['p95']}  max {s['max']}"
            )
        lines.append(f"trained tokens     {self.trained_tokens} (assistant turns incl. end-of-turn, after truncation)")
        lines.append(
            f"max_seq_length     {self.max_seq_length}: {self.truncated} row(s) truncated, "
            f"{len(self.dropped_lines)} row(s) dropped (no assistant token left)"
        )
        if self.dropped_lines:
            lines.append(f"dropped lines      {', '.join(map(str, self.dropped_lines[:50]))}")
        for i, m in enumerate(self.masks, 1):
            lines.append(f"--- row {i} (trained tokens inside ⟦ ⟧) ---\n{m}")
        return "\n".join(lines)


def _sft_view(row: Row) -> Row:
    """Preference rows are measured as prompt + chosen answer."""
    if row.chosen is None:
        return row
    return Row(line=row.line, messages=row.messages + row.chosen, raw=row.raw)


def check_file(path: Path, *, model: str = "smollm2-135m", max_seq_length: int = 512, show: int = 0) -> CheckReport:
    """Validate every row (raises OrgtuneError listing bad lines), then tokenize with MODEL's template."""
    data = load_rows(path, allowed=FORMATS)
    from orgtune.models.loading import load_tokenizer, resolve_source

    tok = load_tokenizer(resolve_source(model))
    rows = [_sft_view(r) for r in data.rows]
    full = encode_rows(tok, rows, max_len=10**9)
    cut = encode_rows(tok, rows, max_len=max_seq_length)
    report = CheckReport(
        path=Path(path),
        format=data.format or "?",
        rows=len(data.rows),
        blank_lines=data.blank_lines,
        max_seq_length=max_seq_length,
        lengths=full.lengths(),
        trained_tokens=sum(r.n_trained for r in cut.rows),
        truncated=cut.truncated,
        dropped_lines=cut.dropped_lines,
    )
    report.masks = [show_mask(tok, enc) for enc in cut.rows[:show]]
    return report
