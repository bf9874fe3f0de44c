"""RayPool: the verifier pool's interface (`submit(request) -> Future[Verdict]`, verify, cancel, close, info,
device, workers) over verifier actors on every node of a Ray cluster. The store, the search and every future stay
with the driver; only requests and verdicts (JSON) travel."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import replace

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..verify.pool import live_pools
from ..verify.pool import PoolConfig, PoolStopped
from ..verify.verdict import Status, Verdict, VerifyRequest
from .actor import RemoteVerifier
from .cluster import Cluster, cluster_device, connect, disconnect, one_line
from .placement import RETRIES, STEAL_AFTER_S, Job, Placement, problem_key

CLOSE_S = 30.0  # for each actor to stop its worker; then it is killed
# A lost actor is replaced by a new one wherever Ray finds its GPU (CPU) free: a node that is gone has none. At most
# as many replacements as actors started, so that a node that keeps losing them (out of memory at a problem's size)
# does not churn through actor starts for the whole bench.
REPLACEMENTS_PER_ACTOR = 1
IDLE_POLL_S = 0.05  # an idle slot's shortest wait for an overdue job that another slot may take first


class RayPool:
    def __init__(self, config: PoolConfig | None = None, address: str = "local", actors: int | None = None,
                 steal_after_s: float = STEAL_AFTER_S, keep_cluster: bool = False):
        """`actors`: at most this many (default one per GPU, or per CPU on a cluster without GPUs).
        `keep_cluster`: close() leaves the Ray connection (and a local cluster) up, for a caller that owns it."""
        self.config = config or PoolConfig()
        self.cluster: Cluster = connect(address)
        self.keep_cluster = keep_cluster
        try:
            self.device = cluster_device(self.config.device)
        except ValueError:  # cluster.ClusterError: say it in one line, and leave a cluster this pool started
            self._leave_cluster()
            raise
        self.info: dict = {}  # the worker info of the last actor to answer: device_name, torch, triton, containment
        self.placement = Placement(steal_after_s)
        self.lock = threading.Condition()  # an RLock underneath: a future's callback may submit again
        self.stopping = self.closed = False
        self.done: dict[str, Counter] = {}  # problem name -> jobs answered per actor label
        self.lost: list[str] = []  # actors that died, with why
        self.workers: list[_Slot] = []
        self.labels = 0  # actors made so far, started or not: the next one's label is actor-<labels>
        self.starting: dict[str, object] = {}  # label -> replacement actor not yet answering (close() kills it)
        self.replacements_left = 0
        live_pools.register(self)  # SIGINT/SIGTERM/SIGHUP unwind to close(), which stops every actor's worker
        try:
            self.workers = self._start_actors(actors)
        except BaseException:
            live_pools.unregister(self)
            self._leave_cluster()
            raise
        self.replacements_left = REPLACEMENTS_PER_ACTOR * len(self.workers)
        for slot in self.workers:  # only now: a slot's thread reads self.workers
            slot.thread.start()

    # ---- the pool's interface ------------------------------------------------------------------------------
    def submit(self, request: VerifyRequest) -> Future:
        future: Future = Future()
        with self.lock:
            if self.stopping or self.closed:
                future.set_exception(PoolStopped(f"the verifier pool was {'stopped' if self.stopping else 'closed'}"))
            elif not self._live() and not self.starting:
                future.set_result(self._unverified(request, "no Ray verifier actor is left: " + "; ".join(self.lost)))
            else:
                self.placement.add(Job(request, future, problem_key(request)))
                self.lock.notify_all()
        return future

    def verify(self, request: VerifyRequest) -> Verdict:
        return self.submit(request).result()

    def cancel(self, future: Future) -> None:
        with self.lock:
            if self.placement.remove(future) is not None:
                future.cancel()
                return
            for slot in self.workers:
                if slot.job is not None and slot.job.future is future:
                    slot.actor.cancel.remote()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            waiting = self.placement.drain()
            starting = list(self.starting.values())  # from now on no replacement gets a slot
            self.lock.notify_all()
        for job in waiting:
            _fail(job, PoolStopped("the verifier pool was closed before this candidate's verdict"))
        try:
            for actor in starting:  # a replacement still starting: its start fails, and _await_replacement ends
                ray.kill(actor)
            live = [slot for slot in self.workers if slot.alive]
            closing = [slot.actor.close.remote() for slot in live]
            if closing:
                ray.wait(closing, num_returns=len(closing), timeout=CLOSE_S)
            for slot in live:
                ray.kill(slot.actor)
            for slot in self.workers:
                slot.thread.join(timeout=CLOSE_S)
        except RayError:
            pass  # the cluster is going or gone: its actors with it
        finally:
            live_pools.unregister(self)
            self._leave_cluster()

    def _leave_cluster(self) -> None:
        """Disconnect only from a cluster this pool connected to: a caller's own Ray session stays up."""
        if self.cluster.started_here and not self.keep_cluster:
            disconnect()

    def kill_workers(self) -> None:
        """From a signal handler (verify.live_pools): no Ray call is safe here, so only stop taking work; the
        stop signal unwinds to close(), which stops the actors' workers and the actors."""
        self.stopping = True

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- what ran where ------------------------------------------------------------------------------------
    def record(self, problem: str | None = None) -> dict:
        """The backend and the actors (with their nodes) that answered jobs, for all problems or one."""
        with self.lock:
            counts = Counter()
            for name, per_actor in self.done.items():
                if problem is None or name == problem:
                    counts.update(per_actor)
            actors = {s.label: {"node": s.where.get("node"), "host": s.where.get("host"), "gpu": s.where.get("gpu"),
                                "jobs": counts[s.label], "alive": s.alive} for s in self.workers}
        return {"backend": "ray", "address": self.cluster.address, "device": self.device,
                "nodes": sorted({a["node"] for a in actors.values() if a["jobs"]}), "actors": actors,
                "lost": list(self.lost)}

    # ---- actors --------------------------------------------------------------------------------------------
    def _start_actors(self, limit: int | None) -> list["_Slot"]:
        resource = "GPU" if self.device == "cuda" else "CPU"
        placed = []
        for node in sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: n["NodeManagerAddress"]):
            for _ in range(int(node.get("Resources", {}).get(resource, 0))):
                placed.append(node["NodeID"])
        placed = placed[:limit] if limit else placed
        if not placed:
            raise RuntimeError(f"the Ray cluster has no {resource} to start a verifier actor on")
        handles = [self._launch(NodeAffinitySchedulingStrategy(node_id, soft=False)) for node_id in placed]
        slots, failures = [], []
        for label, actor in handles:
            try:
                where = ray.get(actor.where.remote(), timeout=self.config.start_timeout_s)
            except (RayError, GetTimeoutError) as e:
                ray.kill(actor)
                failures.append(f"{label}: {one_line(e)}")
                continue
            slots.append(_Slot(self, len(slots), label, actor, where))
        if not slots:
            raise RuntimeError(f"no verifier actor started on the Ray cluster: {failures[0]}")
        self.lost.extend(f"{f} (did not start)" for f in failures)
        return slots

    def _launch(self, strategy=None) -> tuple[str, object]:
        """A new actor, (label, handle): on the node `strategy` names, else wherever Ray finds the resource."""
        label = f"actor-{self.labels}"
        self.labels += 1
        options = dict(num_cpus=1, num_gpus=1 if self.device == "cuda" else 0)
        if strategy is not None:
            options["scheduling_strategy"] = strategy
        return label, RemoteVerifier.options(**options).remote(self.config_for_actors(), label)

    def _start_replacement(self) -> None:
        """Under the lock: launch an actor in place of a lost one, and wait for it in a thread of its own (a start
        takes seconds)."""
        try:
            label, actor = self._launch()
        except Exception as e:  # noqa: BLE001 - the connection to the cluster is gone
            self.lost.append(f"no replacement could be launched: {one_line(e)[:200]}")
            return
        self.starting[label] = actor
        threading.Thread(target=self._await_replacement, args=(label, actor), name=f"ks-ray-start-{label}",
                         daemon=True).start()

    def _await_replacement(self, label: str, actor) -> None:
        """The replacement answers: it gets a slot and takes jobs; else it is reported lost, and with no actor left
        the jobs still waiting are answered."""
        try:
            where = ray.get(actor.where.remote(), timeout=self.config.start_timeout_s)
        except Exception as e:  # noqa: BLE001 - no room on any node, or close() killed it, or Ray is gone
            _kill_quietly(actor)
            with self.lock:
                del self.starting[label]
                if not (self.closed or self.stopping):
                    self.lost.append(f"{label} (a replacement) did not start: {one_line(e)[:200]}")
                orphans = [] if self._live() or self.starting else self.placement.drain()
                self.lock.notify_all()
            for orphan in orphans:
                _answer(orphan, self._unverified(orphan.request, "no Ray verifier actor is left: "
                                                 + "; ".join(self.lost)))
            return
        with self.lock:
            del self.starting[label]
            if self.closed or self.stopping:
                slot = None
            else:
                slot = _Slot(self, len(self.workers), label, actor, where)
                self.workers.append(slot)
                self.lock.notify_all()
        if slot is None:
            _kill_quietly(actor)
        else:
            slot.thread.start()

    def config_for_actors(self) -> PoolConfig:
        return replace(self.config, device=self.device, workdir=None)

    def _live(self) -> set[int]:
        return {s.index for s in self.workers if s.alive}

    # ---- called by the slots' threads ----------------------------------------------------------------------
    def next_job(self, slot: "_Slot") -> Job | None:
        with self.lock:
            while True:
                if self.closed or self.stopping or not slot.alive:
                    return None
                busy = {s.index for s in self.workers if s.job is not None}
                job = self.placement.take(slot.index, self._live(), busy)
                if job is None:
                    overdue_in = self.placement.next_overdue_in()
                    # an overdue job this slot may not take yet (its idle holder is about to): look again soon,
                    # not in a busy loop
                    self.lock.wait(timeout=None if overdue_in is None else max(IDLE_POLL_S, overdue_in))
                    continue
                if not job.started:
                    if not job.future.set_running_or_notify_cancel():
                        continue
                    job.started = True
                slot.job = job
                return job

    def answered(self, slot: "_Slot", job: Job, verdict: Verdict, info: dict | None) -> None:
        with self.lock:
            slot.job = None
            if info:
                self.info = info
            self.done.setdefault(job.request.problem_name, Counter())[slot.label] += 1
            self.lock.notify_all()
        job.future.set_result(verdict)

    def failed(self, slot: "_Slot", job: Job, error: Exception) -> None:
        with self.lock:
            slot.job = None
            self.lock.notify_all()
        _fail(job, error)

    def actor_lost(self, slot: "_Slot", job: Job, error: Exception) -> None:
        """The actor (or its node) died under `job`: start one in its place (within the bound), run the job once
        more on another actor (a replacement counts once it answers), else report it."""
        why = f"{slot.label} on {slot.where.get('node')} was lost ({one_line(error)[:200]})"
        with self.lock:
            slot.alive, slot.job = False, None
            ending = self.closed or self.stopping
            if not ending:  # close() kills the actors itself
                self.lost.append(why)
            if not ending and self.replacements_left > 0:
                self.replacements_left -= 1
                self._start_replacement()
            job.lost_on.append(slot.label)
            live = self._live() or self.starting  # an actor that is starting takes jobs soon
            orphans = [] if live else self.placement.drain()
            if ending:
                retry, outcome = False, PoolStopped("the verifier pool was stopped before this candidate's verdict")
            elif len(job.lost_on) <= RETRIES and live:
                retry, outcome = True, None
                self.placement.add(job, front=True)
            else:
                retry, outcome = False, self._unverified(job.request, (
                    f"the Ray actors running this candidate were lost: {', '.join(job.lost_on)}; "
                    f"{'it was retried once' if len(job.lost_on) > RETRIES else 'no other actor is left'}; "
                    f"last: {why}"))
            self.lock.notify_all()
        if not retry:
            (_fail if isinstance(outcome, Exception) else _answer)(job, outcome)
        for orphan in orphans:
            _answer(orphan, self._unverified(orphan.request, f"no Ray verifier actor is left: {why}"))

    def _unverified(self, request: VerifyRequest, why: str) -> Verdict:
        return Verdict(status=Status.RUNTIME_ERROR, message=f"verifier error: {why}", problem=request.problem_name,
                       candidate=request.candidate_name, device=self.info.get("device_name", self.device),
                       dtype=request.dtype, phase="static")


class _Slot:
    """One actor and the driver thread that feeds it, one job at a time (so a timing job has its GPU alone)."""

    def __init__(self, pool: RayPool, index: int, label: str, actor, where: dict):
        self.pool, self.index, self.label, self.actor, self.where = pool, index, label, actor, where
        self.alive = True
        self.job: Job | None = None
        self.thread = threading.Thread(target=self.loop, name=f"ks-ray-{label}", daemon=True)  # RayPool starts it

    def loop(self) -> None:
        while True:
            job = self.pool.next_job(self)
            if job is None:
                return
            try:
                answer = ray.get(self.actor.verify.remote(job.request.to_json()))
            except RayActorError as e:  # the actor process or its node died (ray.kill, OOM killer, node lost)
                self.pool.actor_lost(self, job, e)
                return
            except RayTaskError as e:  # verify raised inside the actor: its pool was closed, or a bug of ours
                if self.pool.closed or self.pool.stopping:
                    self.pool.failed(self, job, PoolStopped("the verifier pool was stopped"))
                else:
                    self.pool.answered(self, job, self.pool._unverified(
                        job.request, f"on {self.label}: {one_line(e.cause if e.cause else e)[:300]}"), None)
                continue
            except Exception as e:  # the connection to the cluster is gone
                self.pool.actor_lost(self, job, e)
                return
            verdict = Verdict.from_json(answer["verdict"])
            self.pool.answered(self, job, verdict, answer.get("info"))


def _kill_quietly(actor) -> None:
    try:
        ray.kill(actor)
    except Exception:  # noqa: BLE001 - gone already, with its cluster
        pass


def _answer(job: Job, verdict: Verdict) -> None:
    if not job.future.done():
        job.future.set_result(verdict)


def _fail(job: Job, error: Exception) -> None:
    if not job.future.done():
        if not job.started and not job.future.set_running_or_notify_cancel():
            return
        job.future.set_exception(error)
