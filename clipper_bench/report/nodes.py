"""The report's per-node table: for configurations run on a Ray cluster, where each replica and
load client ran and the energy of the host each node shares (from the records' ``nodes`` block)."""

from __future__ import annotations

import json
from pathlib import Path

from ..results.store import CONFIGS_DIR

NODE_COLUMNS = ["configuration", "node", "head", "replicas (slot: cores, GPU)", "clients (clock offset ms)",
                "host", "host energy J"]


def _replicas(node: dict) -> str:
    return ", ".join(f"{r['slot']}: {','.join(map(str, r['cpus'])) or '-'}{', GPU ' + r['gpu'] if r['gpu'] else ''}"
                     for r in node["replicas"]) or "-"


def _clients(node: dict) -> str:
    return ", ".join(f"#{c['client_index']} ({c['clock_offset_ns'] / 1e6:+.2f})" for c in node["clients"]) or "-"


def node_rows(dirs: list[Path]) -> list[list[str]]:
    """One row per node of every configuration that ran on a Ray cluster, in the table's columns."""
    rows = []
    for exp in dirs:
        for path in sorted((exp / CONFIGS_DIR).glob("*.json")):
            if path.name.endswith(".power_samples.json"):
                continue
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for node in rec.get("nodes") or []:
                joules = node.get("host_joules")
                rows.append([rec["config_id"], f"{node['node_ip']} {node['node_id'][:8]}",
                             "yes" if node["is_head"] else "", _replicas(node), _clients(node),
                             node.get("power_host") or "-",
                             f"{joules:.1f}" if joules is not None else "not measured"])
    return rows
