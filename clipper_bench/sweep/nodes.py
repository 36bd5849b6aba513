"""A configuration on a Ray cluster, per node: the record's ``nodes`` block and per-host power.

Power is sampled per machine (Ray nodes that share one share its RAPL and GPUs), so each node
names the host whose energy it shares; the record's ``power`` block keeps the totals over hosts.
"""

from __future__ import annotations

from typing import Any

from ..power.ray_sampler import host_docs
from ..power.summary import summarize_power


def host_power(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per host label: its nodes, clock offset, sources (with why one is missing) and energy."""
    out = {}
    for label, host_doc in host_docs(doc).items():
        summary = summarize_power(host_doc, None)
        meta = doc["hosts"][label]
        out[label] = {
            "host_id": meta["host_id"], "node_ids": meta["node_ids"], "gpus": meta["gpus"],
            "clock_offset_ns": meta["clock_offset_ns"], "sources": summary["sources"],
            "energy_channels": summary.get("energy_channels", []),
            "joules": summary["joules"], "avg_w": summary.get("avg_w"),
        }
    return out


def nodes_block(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per live node: its replicas (slot, pid, cores, GPU), its clients (index, clock
    offset) and the host whose energy it shares."""
    deployment = record.get("deployment") or {}
    hosts = (record.get("power") or {}).get("hosts") or {}
    host_of = {node: label for label, h in hosts.items() for node in h["node_ids"]}
    out = []
    for node in deployment.get("ray_nodes", []):
        nid = node["node_id"]
        replicas = [{"slot": r["slot"], "pid": r["pid"], "cpus": r["cpus"], "gpu": r.get("cuda_visible_devices")}
                    for r in deployment.get("ray_replicas", []) if r["node_id"] == nid]
        clients = [{"client_index": c["client_index"], "clock_offset_ns": c["clock_offset_ns"],
                    "clock_rtt_ns": c["clock_rtt_ns"]} for c in record.get("clients", []) if c["node_id"] == nid]
        label = host_of.get(nid)
        out.append({**node, "replicas": replicas, "clients": clients, "power_host": label,
                    "host_joules": hosts[label]["joules"] if label else None})
    return out
