"""The short fault campaign (tools/fault_campaign.py --quick): pretraining killed at random points, inside checkpoint
and result writes, its newest checkpoint truncated, resumed each time: it ends as the uninterrupted run, bit for bit."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_fault_campaign_loses_nothing_and_counts_nothing_twice(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fault_campaign", REPO / "tools" / "fault_campaign.py")
    campaign = importlib.util.module_from_spec(spec)
    sys.modules["fault_campaign"] = campaign  # (dataclasses look their module up)
    spec.loader.exec_module(campaign)
    rc = campaign.main(["--quick", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0, summary["problems"]
    rows = summary["rows"]
    kills = sum(r["injected"] for r in rows if r["fault"].startswith("kill"))
    assert kills >= 2 and any(r["fault"] == "truncated newest checkpoint" and r["injected"] for r in rows)
    assert all(r["recovered"] == r["injected"] and r["lost"] == 0 and r["twice"] == 0 for r in rows)
    assert "| **all** |" in capsys.readouterr().out
