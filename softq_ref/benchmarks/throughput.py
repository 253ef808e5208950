"""Measured cost of one training run's parts, and the table the cost estimate (`cost.py`) reads.

    python -m softq_ref.benchmarks.throughput                 # measure, write throughput.json beside this file
    python -m softq_ref.benchmarks.throughput --quick --out /tmp/t.json   # fewer repetitions (a test's smoke check)
    python -m softq_ref.benchmarks.throughput --speedups-from reports/perf/X/perf.json   # only the multi-seed factors

Measured single-threaded (`torch.set_num_threads(1)`, as every benchmark worker runs), in this process:

* `env_step_us[env_id]`: one `env.step` of uniformly random actions (episode resets included, amortised);
* `act_us[tier][body][algo]` and `update_us[tier][body][algo]`: one `agent.act(obs)` (training mode: SQL samples
  its sampler, DDPG adds OU noise) and one `agent.update(batch)` (Q and policy / sampler step, batch from a
  replay buffer of random transitions) at the tier's network sizes, particles and batch size for that body
  (`BODIES`: which task's config and env stand for the body).

The training loop's cost per env step is then env + act + (in the learning phase) `updates_per_step` x update,
plus the replay add / sample and per-epoch bookkeeping (a few per cent, not modelled). Each figure is the
fastest of 4 repetitions (50 updates, 200 acts or 500 env steps each). The file records
when, where (CPU model, load average before and after) and at which commit it was measured: a table measured
under load is slower than the machine, and says so.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..runtime import cpu_model

__all__ = ["BODIES", "DEFAULT_PATH", "measure_env", "measure_agent", "measure_all", "load_table"]

DEFAULT_PATH = Path(__file__).with_name("throughput.json")

# body -> (task whose tier config and env id stand for the body's runs). Fine-tuning and pretraining of a body
# use the same network sizes as its maze task in every tier (tiers.py), and the same obs / action dimensions
# up to a few inputs.
BODIES: dict[str, str] = {"multigoal": "multigoal", "point": "point_maze", "swimmer": "swimmer", "ant": "ant_maze"}
ALGOS = ("sql", "ddpg")
MEASURED_TIERS = ("ci", "long", "paper")


def _timed(fn, n: int, repeats: int) -> float:
    """Fastest over `repeats` of the mean time of `n` calls, in microseconds: the machine's cost with the
    least interference from other processes (the load average is recorded beside it)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out.append((time.perf_counter() - t0) / n * 1e6)
    return float(min(out))


def measure_env(env_id: str, n: int = 1000, repeats: int = 3, max_episode_steps: int | None = None) -> float:
    """Microseconds per env.step of random actions (resets amortised)."""
    from ..config import SQLConfig
    from ..training import make_env

    env = make_env(env_id, SQLConfig(max_episode_steps=max_episode_steps))
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    env.action_space.seed(0)
    low, high = env.action_space.low, env.action_space.high

    def step():
        _, _, term, trunc, _ = env.step(rng.uniform(low, high).astype(np.float32))
        if term or trunc:
            env.reset()

    for _ in range(20):
        step()
    t = _timed(step, n, repeats)
    env.close()
    return t


def measure_agent(algo: str, env_id: str, config: dict, n_act: int = 200, n_update: int = 100,
                  repeats: int = 3) -> tuple[float, float]:
    """(act_us, update_us) of `algo` at `config` on the dimensions of `env_id`."""
    import torch

    from ..config import SQLConfig
    from ..replay import ReplayBuffer
    from ..training import make_agent, make_env

    cfg = SQLConfig.from_dict(config).validate()
    env = make_env(env_id, cfg)
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    obs, _ = env.reset(seed=0)
    env.close()
    agent = make_agent(algo, od, ad, cfg, 0)
    rng = np.random.default_rng(0)
    replay = ReplayBuffer(od, ad, 5000)
    for _ in range(5000):
        replay.add(rng.normal(size=od).astype(np.float32), rng.uniform(-1, 1, ad).astype(np.float32),
                   float(rng.normal()), rng.normal(size=od).astype(np.float32), False)
    agent.reset_episode()
    obs = np.asarray(obs, dtype=np.float32)
    for _ in range(5):
        agent.act(obs)
        agent.update(replay.sample(cfg.batch_size, rng))
    act_us = _timed(lambda: agent.act(obs), n_act, repeats)
    upd_us = _timed(lambda: agent.update(replay.sample(cfg.batch_size, rng)), n_update, repeats)
    return act_us, upd_us


def _git_commit() -> str:
    from ..training import _git_commit as g

    return g()


def measure_all(quick: bool = False, tiers: tuple[str, ...] = MEASURED_TIERS, log=lambda s: print(s, file=sys.stderr)) -> dict:
    import torch

    from ..envs import TASKS as ENV_TASKS
    from .tiers import TASKS, tier_task

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    scale = 0.1 if quick else 1.0
    env_ids = sorted(ENV_TASKS)
    table: dict = {"schema_version": 1,
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "git_commit": _git_commit(), "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                                            "platform": platform.platform(), "python": platform.python_version(),
                                                            "torch": torch.__version__},
                   "threads": 1, "quick": quick, "repeats": 1 if quick else 4, "load_average_before": list(load_before),
                   "bodies": BODIES, "env_step_us": {}, "act_us": {}, "update_us": {}}
    for env_id in env_ids:
        table["env_step_us"][env_id] = round(measure_env(env_id, n=max(20, int(500 * scale)), repeats=1 if quick else 4), 2)
        log(f"env {env_id}: {table['env_step_us'][env_id]:.1f} us/step")
    for tier in tiers:
        for body, task in BODIES.items():
            cfg = tier_task(tier, task).config
            for algo in ALGOS:
                a, u = measure_agent(algo, TASKS[task].env_id, cfg, n_act=max(10, int(200 * scale)),
                                     n_update=max(5, int(50 * scale)), repeats=1 if quick else 4)
                table["act_us"].setdefault(tier, {}).setdefault(body, {})[algo] = round(a, 1)
                table["update_us"].setdefault(tier, {}).setdefault(body, {})[algo] = round(u, 1)
                log(f"{tier:<5} {body:<9} {algo:<4}: act {a:8.0f} us, update {u:8.0f} us")
    table["load_average_after"] = list(os.getloadavg())
    table["measurement_wall_s"] = round(time.perf_counter() - t_start, 1)
    return table


def load_table(path: str | os.PathLike | None = None) -> dict:
    """The committed table (or `path`); ValueError naming the file and the missing field when malformed."""
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        t = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"throughput table {p}: unreadable ({type(e).__name__}: {e}); "
                         "regenerate it with python -m softq_ref.benchmarks.throughput") from None
    for k in ("env_step_us", "act_us", "update_us", "date", "git_commit", "machine", "load_average_before"):
        if k not in t:
            raise ValueError(f"throughput table {p}: missing field {k!r}; expected a file written by "
                             "python -m softq_ref.benchmarks.throughput")
    return t


def speedups_from_perf(perf_json: str | os.PathLike) -> tuple[dict, str]:
    """(`multiseed_speedup` table, its source line) from a perf run's multi-seed rows (`python -m softq_ref.perf
    --sections multiseed`): per S and algo, the mean over tasks of the stacked speed-up. Only marginal rates
    are taken: whole-run ratios overstate the stacked trainer (softq_ref/perf/multiseed.py)."""
    p = Path(perf_json)
    try:
        perf = json.loads(p.read_text())
        rows = perf["multiseed"]["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--speedups-from {p}: no multi-seed rows ({type(e).__name__}: {e}); expected the perf.json of "
                         "python -m softq_ref.perf --sections multiseed") from None
    by: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r.get("mode") != "stacked":
            continue
        if r.get("rate_method") != "marginal":
            raise ValueError(f"--speedups-from {p}: row {r.get('algo')} {r.get('task')} S={r.get('S')} has rate_method "
                             f"{r.get('rate_method')!r}; only marginal rates make cost factors (re-measure without --quick)")
        by.setdefault(str(r["S"]), {}).setdefault(r["algo"], []).append(float(r["speedup"]))
    if not by:
        raise ValueError(f"--speedups-from {p}: no stacked rows")
    table = {S: {a: round(sum(v) / len(v), 2) for a, v in algos.items()} for S, algos in sorted(by.items(), key=lambda kv: int(kv[0]))}
    loads = sorted({round(float(r["load_1min"]), 1) for r in rows if r.get("load_1min") is not None})
    tasks = sorted({r["task"] for r in rows})
    source = (f"{p}: marginal seed-steps/s per core of the stacked trainer over one process per seed, mean over "
              f"{', '.join(tasks)}; measured at git {str(perf.get('machine', {}).get('git_commit', '?'))[:10]}, "
              f"load average {loads[0] if loads else '?'}-{loads[-1] if loads else '?'}")
    return table, source


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m softq_ref.benchmarks.throughput", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_PATH))
    ap.add_argument("--quick", action="store_true", help="10x fewer repetitions (checks the code path, not the machine)")
    ap.add_argument("--tiers", default=",".join(MEASURED_TIERS))
    ap.add_argument("--speedups-from", default=None, metavar="PERF_JSON",
                    help="set only the multi-seed speed-up factors, from a perf run's multi-seed section (marginal rates); "
                         "measure nothing else")
    args = ap.parse_args(argv)
    old: dict = {}
    if Path(args.out).exists():
        try:
            old = json.loads(Path(args.out).read_text())
        except ValueError:
            old = {}
    if args.speedups_from:
        if not old:
            print(f"error: --speedups-from needs an existing table at --out {args.out}", file=sys.stderr)
            return 2
        try:
            old["multiseed_speedup"], old["multiseed_speedup_source"] = speedups_from_perf(args.speedups_from)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        Path(args.out).write_text(json.dumps(old, indent=1, sort_keys=False) + "\n")
        print(f"wrote multiseed_speedup {old['multiseed_speedup']} to {args.out}")
        return 0
    table = measure_all(args.quick, tuple(t.strip() for t in args.tiers.split(",") if t.strip()))
    # merge: keep a measured multi-seed speed-up table and its source
    table.update({k: v for k, v in old.items() if k in ("multiseed_speedup", "multiseed_speedup_source")})
    table.setdefault("multiseed_speedup", {})
    Path(args.out).write_text(json.dumps(table, indent=1, sort_keys=False) + "\n")
    print(f"wrote {args.out} (load average {table['load_average_before']} -> {table['load_average_after']}, "
          f"{table['measurement_wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
