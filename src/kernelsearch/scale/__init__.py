"""Scale out on Ray (the optional extra `kernelsearch[ray]`): the verifier's workers on every GPU of a cluster,
behind the local pool's interface. Nothing here imports Ray until a Ray pool is asked for."""
from __future__ import annotations

import socket

from ..verify.pool import PoolConfig, WorkerPool
from .cluster import import_ray


def open_pool(config: PoolConfig, ray_address: str | None = None):
    """The verifier pool a command asked for: this machine's WorkerPool, or a RayPool on the cluster at
    `ray_address` (local, auto or ADDRESS). Raises cluster.ClusterError (one line) when Ray or the cluster is
    missing."""
    if not ray_address:
        return WorkerPool(config)
    import_ray()  # one line when Ray is not installed, before ray_pool imports it
    from .ray_pool import RayPool  # ray stays out until a Ray pool is asked for
    return RayPool(config, ray_address)


def backend_record(pool, problem: str | None = None) -> dict:
    """Which backend verified, and where: the summary's `verifier` field (for one problem, or the whole run)."""
    if hasattr(pool, "record"):
        return pool.record(problem)
    return {"backend": "local", "host": socket.gethostname(), "device": pool.device, "workers": len(pool.workers)}


def describe_backend(pool) -> str:
    """The same in one line, for a bench's context (report.html)."""
    record = backend_record(pool)
    if record["backend"] == "local":
        return f"local: {record['workers']} worker(s) on {record['host']} ({record['device']})"
    used = [f"{name} on {a['node']} ({a['jobs']} jobs)" for name, a in record["actors"].items()]
    return (f"ray ({record['address']}): {len(record['actors'])} actor(s) on {len(record['nodes'])} node(s), "
            f"{record['device']}: " + ", ".join(used) + (f"; lost: {'; '.join(record['lost'])}" if record["lost"]
                                                         else ""))
