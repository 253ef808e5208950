"""Run a benchmark matrix: one fresh process per run, resumable, with result files written atomically.

Layout under `--out DIR`:

    DIR/<tier>/<task>/<variant>/seed<k>/
        config.json, metadata.json, metrics.csv, checkpoint.pt     (softq_ref.training.train)
        result.json                                                 (this module; marks the run finished)
    DIR/<tier>/matrix.json, claims.json, claims.md                  (matrix summary and verdicts)
    DIR/<tier>/matrix-<variants>.json, claims-<a>-vs-<b>.{json,md}  (other algorithms, --algos / --roles)

A run is *finished* when its result.json exists, parses, has this SCHEMA_VERSION and describes the same
run (tier, task, variant, seed, steps, config, env kwargs). Finished runs are skipped; others are started,
or resumed from their checkpoint (exact resume, see softq_ref.training). A result.json that is corrupt
or describes another run is reported and the run redone. Fine-tuning runs start when the pretraining
run they are initialised from has finished; if it failed they are reported as blocked.

Executors: `process` (default; concurrent.futures with a fresh spawned process per run,
max_workers = CPU cores) and `ray` (optional extra `ray`; each run is a Ray task with num_cpus=1 in a
fresh worker process; the output directory must be on a file system shared by the cluster's nodes).
`inline` runs in this process, one after another (debugging).
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from .tiers import RunDef

__all__ = ["SCHEMA_VERSION", "RunnerError", "run_dir", "run_one", "load_result", "run_matrix", "collect_results",
           "EXECUTORS"]

SCHEMA_VERSION = 1
EXECUTORS = ("process", "ray", "inline")


class RunnerError(RuntimeError):
    pass


def run_dir(out_root: str | os.PathLike, run: RunDef) -> Path:
    return Path(out_root) / run.tier / run.key


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


_IDENTITY = ("tier", "task", "variant", "algo", "seed", "env_id", "steps", "config", "env_kwargs", "init_from")
_REQUIRED = ("schema_version", "status", "metrics", "curves", "git_commit", "versions", "command", *_IDENTITY)


def load_result(path: str | os.PathLike, run: RunDef | None = None) -> tuple[dict | None, str | None]:
    """(result, None) if `path` is a valid finished result (for `run`, if given), else (None, problem)."""
    p = Path(path)
    if not p.exists():
        return None, None
    try:
        res = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        return None, f"{p}: unreadable or corrupt JSON ({type(e).__name__}: {e})"
    if not isinstance(res, dict):
        return None, f"{p}: not a JSON object"
    missing = [k for k in _REQUIRED if k not in res]
    if missing:
        return None, f"{p}: missing fields {missing}"
    if res["schema_version"] != SCHEMA_VERSION:
        return None, f"{p}: schema_version {res['schema_version']!r}, this runner writes {SCHEMA_VERSION}"
    if res["status"] != "completed":
        return None, f"{p}: status {res['status']!r}"
    if run is not None:
        want = json.loads(json.dumps(run.to_dict()))
        diff = [k for k in _IDENTITY if res.get(k) != want.get(k)]
        if diff:
            return None, f"{p}: describes a different run (differs in {diff}); it will be redone"
    return res, None


def _git_commit() -> str:
    from ..training import _git_commit as g

    return g()


def _versions() -> dict:
    from ..training import _versions as v

    return v()


def run_one(run_d: dict, out_root: str, command: list[str] | None = None, queue: Any = None) -> dict:
    """Train one run of the matrix (in whatever process calls it) and write its result.json."""
    key = f"{run_d.get('task')}/{run_d.get('variant')}/seed{run_d.get('seed')}"
    try:
        return _run_one(RunDef(**run_d), out_root, command or sys.argv, queue)
    except BaseException as e:  # reported by the matrix, never raised across the process boundary
        if isinstance(e, KeyboardInterrupt):
            raise
        return {"key": key, "status": "failed", "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(limit=8)}


def _run_one(run: RunDef, out_root: str, command: list[str], queue: Any) -> dict:
    import torch

    torch.set_num_threads(1)  # several runs share the cores; 2 threads per process are ~70x slower here
    from ..runtime import keep_freed_memory

    keep_freed_memory()  # fewer page faults per update; numbers unchanged
    from ..config import SQLConfig
    from ..training import make_agent, make_env, read_metrics, train
    from .protocols import final_metrics, make_evaluate, set_resume_state, tracked_env_id

    d = run_dir(out_root, run)
    d.mkdir(parents=True, exist_ok=True)
    config = SQLConfig.from_dict(run.config).validate()
    env_id = tracked_env_id(run.env_id, run.protocol, run.env_kwargs)
    probe = make_env(run.env_id, config)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    agent = make_agent(run.algo, obs_dim, act_dim, config, run.seed)
    ckpt_path = d / "checkpoint.pt"
    resume = ckpt_path.exists()
    start_step = 0
    if resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        start_step = int(ckpt["state"]["total_steps"])
        del ckpt
        rows = [r for r in read_metrics(d / "metrics.csv") if int(r["step"]) <= start_step
                and int(r["step"]) % config.epoch_length == 0] if (d / "metrics.csv").exists() else []
        set_resume_state(rows[-1] if rows else None)
    else:
        set_resume_state(None)
        if run.init_from:
            _init_from_pretrained(agent, Path(out_root) / run.tier / run.init_from / "checkpoint.pt")
    if queue is not None:
        queue.put(("start", run.key, start_step, run.steps))
    step = [start_step]

    def on_epoch(_row: dict) -> None:
        step[0] = min(run.steps, (step[0] // config.epoch_length + 1) * config.epoch_length)
        if queue is not None:
            queue.put(("step", run.key, step[0], run.steps))

    evaluate = make_evaluate(run.protocol, run.env_id, run.eval_episodes, config, on_epoch)
    t0 = time.perf_counter()
    summary = train(agent, env_id, run.steps, run.seed, d, resume=resume, progress=False, evaluate=evaluate)
    metrics, curves = final_metrics(run.protocol, read_metrics(d / "metrics.csv"))
    result = {"schema_version": SCHEMA_VERSION, **json.loads(json.dumps(run.to_dict())), "key": run.key,
              "status": "completed", "metrics": metrics, "curves": curves,
              "wall_time_s": summary["wall_time"], "this_session_s": time.perf_counter() - t0,
              "resumed_from_step": start_step if resume else None, "updates": summary["updates"],
              "episodes": summary["episodes"], "command": list(command), "git_commit": _git_commit(),
              "versions": _versions(), "host_pid": os.getpid(),
              "files": {"config": "config.json", "metadata": "metadata.json", "metrics": "metrics.csv",
                        "checkpoint": "checkpoint.pt"}}
    _atomic_json(d / "result.json", result)
    return {"key": run.key, "status": "completed", "wall_time_s": summary["wall_time"]}


_NETWORKS = {"sql": ("q", "q_target", "sampler"), "ddpg": ("q", "q_target", "actor", "actor_target")}


def _init_from_pretrained(agent, ckpt_path: Path) -> None:
    """Fine-tuning starts from the pretrained networks; optimizers, rngs and alpha start fresh (this run's seed/config)."""
    import torch

    if not ckpt_path.exists():
        raise RunnerError(f"fine-tuning needs the pretraining checkpoint {ckpt_path}, which does not exist")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if ckpt["algo"] != agent.algo:
        raise RunnerError(f"{ckpt_path} is a {ckpt['algo']} checkpoint; cannot initialise a {agent.algo} agent")
    state = agent.state_dict()
    for k in _NETWORKS[agent.algo]:
        state[k] = ckpt["agent"][k]
    agent.load_state_dict(state)


# -- the matrix ------------------------------------------------------------------------------------------
class _Bars:
    """tqdm bars: one for the matrix, one per run in flight (fed by the workers' per-epoch messages)."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.tqdm, self.enabled = tqdm, enabled
        self.matrix = tqdm(total=total, desc="matrix", unit="run", position=0, disable=not enabled)
        self.runs: dict[str, Any] = {}
        self.lock = threading.Lock()

    def handle(self, msg: tuple) -> None:
        kind, key, step, total = msg
        with self.lock:
            if not self.enabled:
                return
            if key not in self.runs:
                self.runs[key] = self.tqdm(total=total, initial=step, desc=key, unit="step", leave=False,
                                           position=1 + len(self.runs) % 8)
            bar = self.runs[key]
            bar.n = step
            bar.refresh()

    def finished(self, key: str, status: str) -> None:
        with self.lock:
            bar = self.runs.pop(key, None)
            if bar is not None:
                bar.close()
            self.matrix.update(1)
            self.matrix.set_postfix_str(f"last: {key} {status}")

    def close(self) -> None:
        for b in self.runs.values():
            b.close()
        self.matrix.close()


def _import_ray():
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise RunnerError("--executor ray needs Ray, an optional extra: pip install 'softq-conformance[ray]' "
                          f"(or `nox -s benchmark -- --executor ray ...`, which installs it); import failed: {e}") from e
    return ray


def run_matrix(runs: list[RunDef], out_root: str | os.PathLike, executor: str = "process", workers: int | None = None,
               progress: bool = True, command: list[str] | None = None, ray_address: str | None = None,
               log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Run every unfinished run of `runs`; returns {key: outcome} with outcome status
    completed | skipped | failed | blocked, plus the problems found in existing result files."""
    if executor not in EXECUTORS:
        raise RunnerError(f"unknown executor {executor!r}; accepted: {list(EXECUTORS)}")
    out_root = str(out_root)
    command = list(command or sys.argv)
    workers = max(1, int(workers or os.cpu_count() or 1))
    outcomes: dict[str, dict] = {}
    problems: list[str] = []
    todo: list[RunDef] = []
    for r in runs:
        res, problem = load_result(run_dir(out_root, r) / "result.json", r)
        if problem:
            problems.append(problem)
            log(f"warning: {problem}")
        if res is not None:
            outcomes[r.key] = {"key": r.key, "status": "skipped"}
        else:
            todo.append(r)
    done = {k for k, o in outcomes.items() if o["status"] in ("completed", "skipped")}
    bars = _Bars(len(runs), progress and sys.stderr.isatty())
    bars.matrix.update(len(runs) - len(todo))
    t0 = time.perf_counter()

    def ready(r: RunDef) -> bool:
        return r.init_from is None or r.init_from in done or r.init_from not in {x.key for x in runs}

    queue, stop, drain = None, threading.Event(), None
    manager = None
    if executor == "process" and bars.enabled:
        manager = mp.get_context("spawn").Manager()
        queue = manager.Queue()

        def _drain() -> None:
            while not stop.is_set():
                try:
                    bars.handle(queue.get(timeout=0.2))
                except Exception:  # queue.Empty, or the manager going away at shutdown
                    continue
        drain = threading.Thread(target=_drain, daemon=True)
        drain.start()

    def record(key: str, outcome: dict) -> None:
        outcomes[key] = outcome
        if outcome["status"] == "completed":
            done.add(key)
        else:
            log(f"run {key} {outcome['status']}: {outcome.get('error', '')}")
        bars.finished(key, outcome["status"])

    pending = list(todo)
    try:
        if executor == "inline":
            while pending:
                _block_failed(pending, outcomes, runs, record)
                r = next((x for x in pending if ready(x)), None)
                if r is None:
                    break
                pending.remove(r)
                record(r.key, run_one(r.to_dict(), out_root, command, None))
        elif executor == "process":
            ctx = mp.get_context("spawn")  # a fresh interpreter per run: no torch state or threads inherited
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1) as pool:
                inflight: dict[cf.Future, RunDef] = {}
                while pending or inflight:
                    _block_failed(pending, outcomes, runs, record)
                    for r in [x for x in pending if ready(x)]:
                        pending.remove(r)
                        inflight[pool.submit(run_one, r.to_dict(), out_root, command, queue)] = r
                    if not inflight:
                        break
                    finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for f in finished:
                        r = inflight.pop(f)
                        try:
                            record(r.key, f.result())
                        except Exception as e:  # the worker process died (killed, out of memory)
                            record(r.key, {"key": r.key, "status": "failed", "error": f"worker died: {type(e).__name__}: {e}"})
        else:
            ray = _import_ray()
            if not ray.is_initialized():
                ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
            remote = ray.remote(num_cpus=1, max_calls=1)(run_one)  # max_calls=1: a fresh worker per run
            inflight_r: dict[Any, RunDef] = {}
            while pending or inflight_r:
                _block_failed(pending, outcomes, runs, record)
                for r in [x for x in pending if ready(x)]:
                    pending.remove(r)
                    inflight_r[remote.remote(r.to_dict(), out_root, command, None)] = r
                if not inflight_r:
                    break
                finished, _ = ray.wait(list(inflight_r), num_returns=1)
                for ref in finished:
                    r = inflight_r.pop(ref)
                    try:
                        record(r.key, ray.get(ref))
                    except Exception as e:
                        record(r.key, {"key": r.key, "status": "failed", "error": f"ray task failed: {type(e).__name__}: {e}"})
        _block_failed(pending, outcomes, runs, record)
    finally:
        stop.set()
        if drain is not None:
            drain.join(timeout=2)
        if manager is not None:
            manager.shutdown()
        bars.close()
    summary = {"outcomes": outcomes, "problems": problems, "wall_time_s": time.perf_counter() - t0,
               "executor": executor, "workers": workers}
    return summary


def _block_failed(pending: list[RunDef], outcomes: dict, runs: list[RunDef], record) -> None:
    for r in list(pending):
        if r.init_from and r.init_from in outcomes and outcomes[r.init_from]["status"] in ("failed", "blocked"):
            pending.remove(r)
            record(r.key, {"key": r.key, "status": "blocked", "error": f"its pretraining run {r.init_from} did not finish"})


def collect_results(out_root: str | os.PathLike, tier: str, runs: list[RunDef] | None = None) -> tuple[list[dict], list[str]]:
    """Valid results under DIR/<tier> (only those of `runs`, if given) and the problems found on the way."""
    base = Path(out_root) / tier
    results, problems = [], []
    if runs is not None:
        for r in runs:
            res, p = load_result(run_dir(out_root, r) / "result.json", r)
            if p:
                problems.append(p)
            elif res is None:
                problems.append(f"{run_dir(out_root, r)}: no result.json (run not finished)")
            else:
                results.append(res)
        return results, problems
    for path in sorted(base.glob("*/*/seed*/result.json")):
        res, p = load_result(path)
        if p:
            problems.append(p)
        elif res is not None:
            results.append(res)
    return results, problems


def _nan_to_none(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x
