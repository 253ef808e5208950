"""Run a benchmark matrix: fresh worker processes, resumable, with result files written atomically.

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

Jobs: runs of SQL or DDPG that differ only in their seed train stacked, up to `seeds_per_process`
seeds in one process (`run_group`, softq_ref.vectorized_training; a seed's results do not depend on
which seeds share its process); other algorithms, or seeds_per_process = 1, train one run per process
(`run_one`, softq_ref.training.train). A job is what an executor schedules; softq_ref.benchmarks.jobs
plans them and orders them longest first.

Executors: `process` (default; concurrent.futures with a fresh spawned process per job,
max_workers = CPU cores) and `ray` (optional extra `ray`; each job is a Ray task with num_cpus=1 in a
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

from .jobs import block_failed, checkpoint_step, group_key, plan_jobs, run_dir, stackable_algos
from .tiers import RunDef

__all__ = ["SCHEMA_VERSION", "RunnerError", "run_dir", "run_one", "run_group", "plan_jobs", "load_result", "run_matrix",
           "unfinished_runs", "collect_results", "EXECUTORS", "DEFAULT_SEEDS_PER_PROCESS"]

SCHEMA_VERSION = 1
EXECUTORS = ("process", "ray", "inline")
# Seeds of one (task, variant) trained stacked in one process (softq_ref.vectorized); see
# softq_ref/perf/README.md for the measured throughput that sets it.
DEFAULT_SEEDS_PER_PROCESS = 16


class RunnerError(RuntimeError):
    pass


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
    from .protocols import final_metrics, make_evaluate, tracked_env_id

    d = run_dir(out_root, run)
    d.mkdir(parents=True, exist_ok=True)
    config = SQLConfig.from_dict(run.config).validate()
    env_id = tracked_env_id(run.env_id, run.protocol, run.env_kwargs)
    probe = make_env(run.env_id, config)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    agent = make_agent(run.algo, obs_dim, act_dim, config, run.seed)
    resume = (d / "checkpoint.pt").exists()
    start_step, resume_row = _resume_point(d, config.epoch_length)
    if not resume and run.init_from:
        _init_from_pretrained(agent, Path(out_root) / run.tier / run.init_from / "checkpoint.pt")
    if queue is not None:
        queue.put(("start", run.key, start_step, run.steps))
    step = [start_step]

    def on_epoch(_row: dict) -> None:
        step[0] = min(run.steps, (step[0] // config.epoch_length + 1) * config.epoch_length)
        if queue is not None:
            queue.put(("step", run.key, step[0], run.steps))

    evaluate = make_evaluate(run.protocol, run.env_id, run.eval_episodes, config, on_epoch, resume_row)
    t0 = time.perf_counter()
    summary = train(agent, env_id, run.steps, run.seed, d, resume=resume, progress=False, evaluate=evaluate)
    metrics, curves = final_metrics(run.protocol, read_metrics(d / "metrics.csv"))
    _atomic_json(d / "result.json", _result(run, metrics, curves, summary, t0, start_step if resume else None,
                                            command, trainer="process"))
    return {"key": run.key, "status": "completed", "wall_time_s": summary["wall_time"]}


def run_group(run_ds: list[dict], out_root: str, command: list[str] | None = None, queue: Any = None) -> list[dict]:
    """Train runs that differ only in their seed in one process, stacked (softq_ref.vectorized); write
    each result.json. Returns one outcome per run; a failure fails every run of the group."""
    keys = [f"{d.get('task')}/{d.get('variant')}/seed{d.get('seed')}" for d in run_ds]
    try:
        return _run_group([RunDef(**d) for d in run_ds], out_root, command or sys.argv, queue)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        err, tb = f"{type(e).__name__}: {e}", traceback.format_exc(limit=8)
        return [{"key": k, "status": "failed", "error": err, "traceback": tb} for k in keys]


def _run_group(runs: list[RunDef], out_root: str, command: list[str], queue: Any) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from ..runtime import keep_freed_memory

    keep_freed_memory()
    from ..config import SQLConfig
    from ..training import make_env, read_metrics
    from ..vectorized import make_stacked_agent
    from ..vectorized_training import train_many
    from .protocols import final_metrics, make_evaluate, tracked_env_id

    r0 = runs[0]
    if any(group_key(r) != group_key(r0) for r in runs):
        raise RunnerError(f"runs {[r.key for r in runs]} differ in more than their seed; they cannot share a process")
    config = SQLConfig.from_dict(r0.config).validate()
    dirs = [run_dir(out_root, r) for r in runs]
    resume = (dirs[0] / "checkpoint.pt").exists()
    if any((d / "checkpoint.pt").exists() != resume for d in dirs):
        raise RunnerError(f"runs {[r.key for r in runs]}: some have a checkpoint and some not; group them apart")
    env_id = tracked_env_id(r0.env_id, r0.protocol, r0.env_kwargs)
    probe = make_env(r0.env_id, config)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    agent = make_stacked_agent(r0.algo, obs_dim, act_dim, config, [r.seed for r in runs])
    points = [_resume_point(d, config.epoch_length) for d in dirs]  # each evaluate callback merges its own row
    start_step, resume_rows = points[0][0], [row for _, row in points]
    if not resume and r0.init_from:
        states = [agent.seed_state_dict(i) for i in range(len(runs))]
        for st, r in zip(states, runs):
            _copy_pretrained_networks(st, agent.algo, Path(out_root) / r.tier / r.init_from / "checkpoint.pt")
        agent.load_seed_state_dicts(states)
    for r in runs:
        if queue is not None:
            queue.put(("start", r.key, start_step, r.steps))

    def on_epoch(step: int) -> None:
        if queue is not None:
            for r in runs:
                queue.put(("step", r.key, min(step, r.steps), r.steps))

    evaluate = [make_evaluate(r.protocol, r.env_id, r.eval_episodes, config, None, row) for r, row in zip(runs, resume_rows)]
    t0 = time.perf_counter()
    summaries = train_many(agent, env_id, r0.steps, dirs, resume=resume, progress=False, evaluate=evaluate,
                           on_epoch=on_epoch)
    outcomes = []
    for r, d, summary in zip(runs, dirs, summaries):
        metrics, curves = final_metrics(r.protocol, read_metrics(d / "metrics.csv"))
        _atomic_json(d / "result.json", _result(r, metrics, curves, summary, t0, start_step if resume else None,
                                                command, trainer="vectorized", group_seeds=[x.seed for x in runs]))
        outcomes.append({"key": r.key, "status": "completed", "wall_time_s": summary["wall_time"]})
    return outcomes


def _result(run: RunDef, metrics: dict, curves: dict, summary: dict, t0: float, resumed_from: int | None,
            command: list[str], trainer: str, group_seeds: list[int] | None = None) -> dict:
    return {"schema_version": SCHEMA_VERSION, **json.loads(json.dumps(run.to_dict())), "key": run.key,
            "status": "completed", "metrics": metrics, "curves": curves,
            "wall_time_s": summary["wall_time"], "this_session_s": time.perf_counter() - t0,
            "resumed_from_step": resumed_from, "updates": summary["updates"],
            "episodes": summary["episodes"], "command": list(command), "git_commit": _git_commit(),
            "versions": _versions(), "host_pid": os.getpid(),
            # process: one run per process (softq_ref.training.train); vectorized: the seeds of group_seeds
            # stacked in one process (softq_ref.vectorized_training.train_many)
            "trainer": trainer, "group_seeds": group_seeds,
            "files": {"config": "config.json", "metadata": "metadata.json", "metrics": "metrics.csv",
                      "checkpoint": "checkpoint.pt"}}


def _resume_point(d: Path, epoch_length: int) -> tuple[int, dict | None]:
    """(step of the run folder's checkpoint, its metrics row at the last epoch end up to it); (0, None) without
    a (readable) checkpoint. The row's tracked statistics continue the resumed run's curves."""
    from ..training import read_metrics

    step = checkpoint_step(d / "checkpoint.pt")
    if step is None:
        return 0, None
    rows = [r for r in read_metrics(d / "metrics.csv") if int(r["step"]) <= step
            and int(r["step"]) % epoch_length == 0] if (d / "metrics.csv").exists() else []
    return step, rows[-1] if rows else None


_NETWORKS = {"sql": ("q", "q_target", "sampler"), "ddpg": ("q", "q_target", "actor", "actor_target")}


def _copy_pretrained_networks(state: dict, algo: str, ckpt_path: Path) -> None:
    """Put the pretrained networks of `ckpt_path` into the agent state `state` (fine-tuning starts from them)."""
    import torch

    if not ckpt_path.exists():
        raise RunnerError(f"fine-tuning needs the pretraining checkpoint {ckpt_path}, which does not exist")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    if ckpt["algo"] != algo:
        raise RunnerError(f"{ckpt_path} is a {ckpt['algo']} checkpoint; cannot initialise a {algo} agent")
    for k in _NETWORKS[algo]:
        state[k] = ckpt["agent"][k]


def _init_from_pretrained(agent, ckpt_path: Path) -> None:
    """Fine-tuning starts from the pretrained networks; optimizers, rngs and alpha start fresh (this run's seed/config)."""
    state = agent.state_dict()
    _copy_pretrained_networks(state, agent.algo, ckpt_path)
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
               log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
               seeds_per_process: int | None = None) -> dict:
    """Run every unfinished run of `runs`; returns {key: outcome} with outcome status
    completed | skipped | failed | blocked, plus the problems found in existing result files.

    `seeds_per_process` S > 1: runs that differ only in their seed train stacked, up to S per process
    (`plan_jobs`; default DEFAULT_SEEDS_PER_PROCESS); 1: one process per run (softq_ref.training.train)."""
    if executor not in EXECUTORS:
        raise RunnerError(f"unknown executor {executor!r}; accepted: {list(EXECUTORS)}")
    out_root = str(out_root)
    command = list(command or sys.argv)
    workers = max(1, int(workers or os.cpu_count() or 1))
    spp = DEFAULT_SEEDS_PER_PROCESS if seeds_per_process is None else int(seeds_per_process)
    if spp < 1:
        raise RunnerError(f"seeds_per_process = {seeds_per_process!r} is invalid: expected an integer >= 1")
    todo, problems = unfinished_runs(runs, out_root)
    for problem in problems:
        log(f"warning: {problem}")
    pending_keys = {r.key for r in todo}
    outcomes: dict[str, dict] = {r.key: {"key": r.key, "status": "skipped"} for r in runs if r.key not in pending_keys}
    done = {k for k, o in outcomes.items() if o["status"] in ("completed", "skipped")}
    bars = _Bars(len(runs), progress and sys.stderr.isatty())
    bars.matrix.update(len(runs) - len(todo))
    t0 = time.perf_counter()

    def ready(r: RunDef) -> bool:
        return r.init_from is None or r.init_from in done or r.init_from not in {x.key for x in runs}

    def job_ready(job: list[RunDef]) -> bool:
        return all(ready(r) for r in job)

    def call(job: list[RunDef]) -> tuple[Callable, tuple]:
        """The worker function and its arguments for one job (queue added by the executor)."""
        if spp > 1 and job[0].algo in stackable_algos():
            return run_group, ([r.to_dict() for r in job], out_root, command)
        return run_one, (job[0].to_dict(), out_root, command)

    def record_job(job: list[RunDef], result: dict | list[dict]) -> None:
        for r, outcome in zip(job, result if isinstance(result, list) else [result]):
            record(r.key, outcome)

    def fail_job(job: list[RunDef], error: str) -> None:
        for r in job:
            record(r.key, {"key": r.key, "status": "failed", "error": error})

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

    pending = plan_jobs(todo, spp, out_root)
    try:
        if executor == "inline":
            while pending:
                block_failed(pending, outcomes, record)
                job = next((j for j in pending if job_ready(j)), None)
                if job is None:
                    break
                pending.remove(job)
                fn, args = call(job)
                record_job(job, fn(*args, None))
        elif executor == "process":
            ctx = mp.get_context("spawn")  # a fresh interpreter per job: no torch state or threads inherited
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1) as pool:
                inflight: dict[cf.Future, list[RunDef]] = {}
                while pending or inflight:
                    block_failed(pending, outcomes, record)
                    for job in [j for j in pending if job_ready(j)]:
                        pending.remove(job)
                        fn, args = call(job)
                        inflight[pool.submit(fn, *args, queue)] = job
                    if not inflight:
                        break
                    finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for f in finished:
                        job = inflight.pop(f)
                        try:
                            record_job(job, f.result())
                        except Exception as e:  # the worker process died (killed, out of memory)
                            fail_job(job, f"worker died: {type(e).__name__}: {e}")
        else:
            ray = _import_ray()
            if not ray.is_initialized():
                ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
            remotes: dict[Callable, Any] = {}  # max_calls=1: a fresh worker process per job
            inflight_r: dict[Any, list[RunDef]] = {}
            while pending or inflight_r:
                block_failed(pending, outcomes, record)
                for job in [j for j in pending if job_ready(j)]:
                    pending.remove(job)
                    fn, args = call(job)
                    remote = remotes.setdefault(fn, ray.remote(num_cpus=1, max_calls=1)(fn))
                    inflight_r[remote.remote(*args, None)] = job
                if not inflight_r:
                    break
                finished, _ = ray.wait(list(inflight_r), num_returns=1)
                for ref in finished:
                    job = inflight_r.pop(ref)
                    try:
                        record_job(job, ray.get(ref))
                    except Exception as e:
                        fail_job(job, f"ray task failed: {type(e).__name__}: {e}")
        block_failed(pending, outcomes, record)
    finally:
        stop.set()
        if drain is not None:
            drain.join(timeout=2)
        if manager is not None:
            manager.shutdown()
        bars.close()
    summary = {"outcomes": outcomes, "problems": problems, "wall_time_s": time.perf_counter() - t0,
               "executor": executor, "workers": workers, "seeds_per_process": spp}
    return summary


def unfinished_runs(runs: list[RunDef], out_root: str | os.PathLike) -> tuple[list[RunDef], list[str]]:
    """The runs of `runs` without a valid result.json under `out_root` (what a resumed matrix still has to
    train, in order), and the problems found in the result files that exist but are rejected."""
    todo, problems = [], []
    for r in runs:
        res, problem = load_result(run_dir(out_root, r) / "result.json", r)
        if problem:
            problems.append(problem)
        if res is None:
            todo.append(r)
    return todo, problems


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
