"""The measurements behind `nox -s perf` / `python -m softq_ref.perf`.

Every timing is a median over repeats; the 1-minute load average is read before each repeat and
stored next to the figure (the machine is shared: load > 1.5 marks a figure as contended). The
matmul rate is measured interleaved with the update it is compared to, at the update's own shapes.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import SQLConfig
from ..runtime import cpu_model
from .flops import MatmulReplay, count_flops, record_matmuls

__all__ = ["SETTINGS", "run", "resolve_device", "machine_info", "multiseed_summary", "multiseed_lengths"]

CONTENDED_LOAD = 1.5
SWIMMER = "SoftQ/SwimmerFinishLine-v0"
OBS_DIM, ACT_DIM = 10, 2  # the swimmer's observation and action sizes

# "paper": Appendix D.1 (batch 64, K = M = 32 sampler particles split 16 fixed / 16 updated, Kv = 50
# value samples, 2 x 200 ReLU). "authors_code": the later public softqlearning code for the MuJoCo
# tasks (shared notes, reference-code-facts.md "Later code": K = M = 16, batch 128; 2 x 128 layers,
# the layer size of that code's experiment scripts; one shared set of value draws, tanh log-det
# correction, reward-scale temperature). Here "K" = kernel particles (16, split 8/8), "M" = value draws.
SETTINGS: dict[str, SQLConfig] = {
    "paper": SQLConfig(),
    "authors_code": SQLConfig(batch_size=128, svgd_particles=16, value_samples=16, hidden_sizes=(128, 128),
                              value_proposal="uniform_shared", squash_correction="tanh_log_det",
                              temperature_mode="reward_scale", alpha=1.0 / 30.0),
}
TINY = SQLConfig(batch_size=8, svgd_particles=4, value_samples=4, hidden_sizes=(16, 16), min_replay_size=8,
                 replay_size=1000)


def resolve_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch.cuda.is_available() is False "
                           f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); use --device cpu")
    return dev


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def tune_process() -> bool:
    """The process settings the training entry points apply (softq_ref.runtime); absent in older commits."""
    if not (Path(__file__).resolve().parent.parent / "runtime.py").exists():
        return False  # a "before" run of an older reference (its tree has no such setting)
    from ..runtime import keep_freed_memory

    return keep_freed_memory()


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def machine_info(device: torch.device) -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "softq_ref", "baselines", ":(exclude)softq_ref/perf"],
                               cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    info = {
        "cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
        "git_commit": commit, "git_dirty_reference": bool(dirty), "command": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": str(device),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     **{d: _version(d) for d in ("numpy", "gymnasium", "mujoco", "stable-baselines3")}},
        "torch_config": {"mkldnn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available()},
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _batches(n: int, B: int, o: int, d: int, seed: int = 0, lead: tuple[int, ...] = ()) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"obs": torch.randn(*lead, B, o, generator=g), "action": torch.rand(*lead, B, d, generator=g) * 2 - 1,
             "reward": torch.randn(*lead, B, generator=g), "next_obs": torch.randn(*lead, B, o, generator=g),
             "terminated": (torch.rand(*lead, B, generator=g) < 0.05).float()} for _ in range(n)]


def _timed(fn: Callable[[], Any], n: int, sync: Callable[[], None]) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _loadinfo(loads: list[float]) -> dict[str, Any]:
    return {"load_1min": loads, "load_1min_median": _med(loads), "contended": max(loads) > CONTENDED_LOAD}


# -- SQL update vs the matmul rate --------------------------------------------------------------------
def sql_update(config: SQLConfig, device: torch.device, repeats: int, n: int, threads: int) -> dict[str, Any]:
    from ..sql import SoftQLearning

    torch.set_num_threads(threads)
    cfg = config.replace(device=str(device))
    agent = SoftQLearning(OBS_DIM, ACT_DIM, cfg, seed=0)
    batches = [{k: v.to(device) for k, v in b.items()} for b in _batches(8, cfg.batch_size, OBS_DIM, ACT_DIM)]
    it = iter(range(10**9))

    def step():
        agent.update(batches[next(it) % len(batches)])

    flops = count_flops(step)
    replay = MatmulReplay(record_matmuls(step))
    sync = _sync(device)
    for _ in range(3):
        step()
    replay.run()
    t_up, t_mm, loads, faults = [], [], [], 0
    for _ in range(repeats):
        loads.append(_load())
        t_mm.append(replay.time(n, sync))
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t_up.append(_timed(step, n, sync))
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    up, mm = _med(t_up), _med(t_mm)
    achieved, rate = flops / up / 1e9, replay.flops / mm / 1e9
    return {"threads": threads, "batch": cfg.batch_size, "K": cfg.svgd_particles, "n_fixed": cfg.n_fixed,
            "M_value": cfg.value_samples, "hidden": list(cfg.hidden_sizes), "obs_dim": OBS_DIM, "act_dim": ACT_DIM,
            "update_ms": up * 1e3, "update_ms_all": [t * 1e3 for t in t_up],
            "flops_per_update": flops, "matmul_calls_per_update": len(replay.calls),
            "precision": getattr(cfg, "precision", "float32"), "minor_page_faults_per_update": faults / (repeats * n),
            "matmul_only_ms": mm * 1e3, "achieved_gflops": achieved, "matmul_rate_gflops": rate,
            "ratio_to_matmul_rate": achieved / rate, **_loadinfo(loads)}


def gemm_peak(device: torch.device, threads: int, repeats: int) -> dict[str, Any]:
    """Rate of one large product of the update's biggest shape (3200 x 200 @ 200 x 200), for context."""
    torch.set_num_threads(threads)
    a, b = torch.randn(3200, 200, device=device), torch.randn(200, 200, device=device)
    sync, ts, loads = _sync(device), [], []
    for _ in range(repeats):
        loads.append(_load())
        ts.append(_timed(lambda: a @ b, 50, sync))
    return {"shape": "3200x200 @ 200x200", "threads": threads, "gflops": 2 * 3200 * 200 * 200 / _med(ts) / 1e9,
            **_loadinfo(loads)}


# -- DDPG vs Stable-Baselines3 --------------------------------------------------------------------
def ddpg_vs_sb3(device: torch.device, repeats: int, n: int, threads: int, hidden=(200, 200), batch=64) -> dict:
    from softq_baselines.ddpg import DDPG

    torch.set_num_threads(threads)
    cfg = SQLConfig(hidden_sizes=tuple(hidden), batch_size=batch, device=str(device))
    ours = DDPG(OBS_DIM, ACT_DIM, cfg, seed=0)
    batches = [{k: v.to(device) for k, v in b.items()} for b in _batches(8, batch, OBS_DIM, ACT_DIM)]
    it = iter(range(10**9))

    def ours_step():
        ours.update(batches[next(it) % len(batches)])

    out: dict[str, Any] = {"threads": threads, "batch": batch, "hidden": list(hidden),
                           "ours_flops_per_update": count_flops(ours_step)}
    sb3_step, reason = None, None
    try:
        import gymnasium as gym
        from stable_baselines3 import DDPG as SB3DDPG
        from stable_baselines3.common.logger import configure

        env = gym.make("Pendulum-v1")  # only its spaces matter: replace them with the swimmer's sizes
        env.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        env.action_space = gym.spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)
        model = SB3DDPG("MlpPolicy", env, learning_rate=1e-3, buffer_size=10_000, learning_starts=0,
                        batch_size=batch, policy_kwargs={"net_arch": list(hidden)}, device=str(device), seed=0)
        model.set_logger(configure(folder=None, format_strings=[]))
        rng = np.random.default_rng(0)
        for _ in range(2000):
            model.replay_buffer.add(rng.standard_normal((1, OBS_DIM)).astype(np.float32),
                                    rng.standard_normal((1, OBS_DIM)).astype(np.float32),
                                    rng.uniform(-1, 1, (1, ACT_DIM)).astype(np.float32),
                                    rng.standard_normal(1).astype(np.float32), np.zeros(1), [{}])

        def sb3_step():
            model.train(gradient_steps=1, batch_size=batch)
        out["sb3_version"] = _version("stable-baselines3")
        out["sb3_note"] = ("SB3 DDPG = TD3 with one critic, policy_delay 1, no target noise; its train step also "
                           "samples its replay buffer and Polyak-updates both targets (ours: hard copy every 1000 "
                           "env steps, outside update()). Networks: actor and critic [200, 200] ReLU in both.")
    except Exception as e:  # noqa: BLE001 - optional comparison
        reason = f"stable-baselines3 not usable: {type(e).__name__}: {e}"
    sync = _sync(device)
    for _ in range(3):
        ours_step()
        if sb3_step:
            sb3_step()
    t_ours, t_sb3, loads = [], [], []
    for _ in range(repeats):
        loads.append(_load())
        t_ours.append(_timed(ours_step, n, sync))
        if sb3_step:
            t_sb3.append(_timed(sb3_step, n, sync))
    out["ours_update_ms"] = _med(t_ours) * 1e3
    if sb3_step:
        out["sb3_train_step_ms"] = _med(t_sb3) * 1e3
        out["speedup_ours_vs_sb3"] = _med(t_sb3) / _med(t_ours)
    else:
        out["sb3_train_step_ms"] = "not measured"
        out["sb3_reason"] = reason
    out.update(_loadinfo(loads))
    return out


# -- end-to-end training run (subprocess: steps/s and peak memory) ------------------------------------
def _train_child(algo: str, steps: int, min_replay: int, threads: int, device: str, tiny: bool) -> None:
    from ..training import make_agent, train

    torch.set_num_threads(threads)
    tune_process()
    base = TINY if tiny else SETTINGS["paper"].replace(target_update_interval=5000)  # swimmer_paper
    cfg = base.replace(min_replay_size=min_replay, epoch_length=steps, device=device)
    agent = make_agent(algo, OBS_DIM, ACT_DIM, cfg, seed=0)
    with tempfile.TemporaryDirectory() as d:
        summary = train(agent, SWIMMER, total_steps=steps, seed=0, out_dir=d, progress=False)
    print(json.dumps({"wall_time": summary["wall_time"], "updates": summary["updates"]}))


def peak_memory(algo: str, steps: int, min_replay: int, threads: int, device: torch.device, tiny: bool) -> dict:
    """Training run in a child process; its peak resident set size from os.wait4's rusage."""
    load0 = _load()
    cmd = [sys.executable, "-c", "from softq_ref.perf.measure import _train_child as f; "
           f"f({algo!r}, {steps}, {min_replay}, {threads}, {str(device)!r}, {tiny})"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        return {"algo": algo, "error": stderr[-2000:]}
    res = json.loads(stdout.strip().splitlines()[-1])
    return {"algo": algo, "env": SWIMMER, "total_steps": steps, "min_replay_size": min_replay,
            "updates": res["updates"], "threads": threads, "wall_s": res["wall_time"],
            "env_steps_per_s": steps / res["wall_time"], "peak_rss_mib": usage.ru_maxrss / 1024,
            "load_1min": [load0, _load()], "contended": max(load0, _load()) > CONTENDED_LOAD}


# -- multi-seed throughput ------------------------------------------------------------------------------
MULTISEED_S = (1, 4, 16, 64)
MULTISEED_TARGET = 5.0  # issue 16: stacked seed-steps/s per core >= 5x one process per seed at S = 16
# Seed-steps in the long run's update phase (the short run has a quarter of its steps), so that the
# difference of the two is a few seconds at every S on an idle core. Rough idle-core update costs at
# the ci sizes: SQL ~5 ms per step in one process, ~32 ms stacked at S = 16, ~175 ms at S = 64; DDPG
# about twice SQL's rates. Estimated whole section (40 child runs + 2 FLOP rows): ~6 min idle.
MULTISEED_SEED_STEPS = {"sql": 2048, "ddpg": 4096}


def multiseed_lengths(algo: str, S: int, quick: bool = False) -> tuple[int, int]:
    """(n_short, n_long): update steps after the warm-up of the two runs of a marginal rate at S seeds."""
    if quick:  # smoke sizes: an update is ~1 ms, so ~200 extra steps stand clear of the setup's noise
        return 8, 200
    n_long = max(24, MULTISEED_SEED_STEPS[algo] // S)  # >= 24 steps: S = 64 SQL still ~4 s
    return n_long // 4, n_long


def multiseed_summary(rows: list[dict]) -> dict[str, Any]:
    """Speed-up of the stacked trainer per (algo, task) and S (the rows' `speedup`: a ratio of marginal
    rates in rows of `multiseed.training_throughput`), and whether S = 16 meets the target."""
    by = {}
    for r in rows:
        if r.get("mode") == "stacked":
            by.setdefault(f"{r['algo']} {r['task']}", {})[r["S"]] = round(r["speedup"], 2)
    return {"speedup_by_algo_task_S": by, "target_at_S16": MULTISEED_TARGET,
            "meets_target_at_S16": {k: v.get(16, 0) >= MULTISEED_TARGET for k, v in by.items() if 16 in v}}


# -- the whole run -------------------------------------------------------------------------------------
def run(out_dir: str | os.PathLike, device: str = "cpu", quick: bool = False, label: str = "",
        sections: tuple[str, ...] = ("sql", "ddpg", "train", "multiseed"), log=print) -> dict:
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads0 = torch.get_num_threads()
    reps, n = (2, 2) if quick else (7, 20)
    result: dict[str, Any] = {"label": label, "quick": quick, "machine": machine_info(dev),
                              "keep_freed_memory": tune_process(),
                              "threads_note": "per-core figures use torch.set_num_threads(1); others say their count",
                              "contended_if_load_above": CONTENDED_LOAD, "load_1min_start": _load()}
    settings = {"tiny": TINY} if quick else SETTINGS
    if "sql" in sections:
        result["sql_update"] = {}
        for name, cfg in settings.items():
            for threads in ((1,) if quick or name != "paper" else (1, 2)):
                log(f"sql update {name} threads={threads}")
                result["sql_update"][f"{name}@{threads}t"] = sql_update(cfg, dev, reps, n, threads)
        if not quick and hasattr(SQLConfig, "precision"):  # opt-in mode (absent from older references)
            log("sql update paper bfloat16_autocast threads=1")
            cfg = SETTINGS["paper"].replace(precision="bfloat16_autocast")
            result["sql_update"]["paper_bfloat16_autocast@1t"] = sql_update(cfg, dev, reps, n, 1)
        result["gemm_peak_1t"] = gemm_peak(dev, 1, reps)
    if "ddpg" in sections:
        log("ddpg vs sb3")
        result["ddpg_vs_sb3"] = ddpg_vs_sb3(dev, reps, 5 if quick else 50, 1,
                                            hidden=(16, 16) if quick else (200, 200), batch=8 if quick else 64)
    if "train" in sections:
        result["train_run"] = {}
        for algo in (("sql",) if quick else ("sql", "ddpg")):
            log(f"train run {algo}")
            steps, min_replay = (40, 8) if quick else (1200, 200)
            result["train_run"][algo] = peak_memory(algo, steps, min_replay, 1, dev, quick)
        result["train_run"]["note"] = ("env steps/s of softq_ref.training.train on the swimmer at paper settings "
                                       "(swimmer_paper), one update per step after min_replay_size steps, 1 thread; "
                                       "peak_rss_mib = ru_maxrss of that child process. The replay pool is "
                                       "allocated lazily: a full 1e6 pool adds ~92 MiB (24 float32 per transition).")
    if "multiseed" in sections:
        from .multiseed import training_throughput, update_flop_rate

        rows, flop_rows = [], []
        S_values = (2,) if quick else MULTISEED_S  # quick: S = 1 stacked runs the same code (padded to two)
        for algo in ("sql", "ddpg"):
            for task in (("point_maze",) if quick else ("point_maze", "swimmer")):
                log(f"multiseed {algo} {task} S={S_values}")
                load0 = _load()
                tier = "smoke" if quick else "ci"
                for r in training_throughput(algo, tier, task, S_values, lambda S: multiseed_lengths(algo, S, quick),
                                             warmup=8 if quick else 64, allow_whole_run_fallback=quick):
                    rows.append({**r, "load_1min": load0})
            for S in ((2,) if quick else (16,)):
                log(f"multiseed {algo} update FLOP rate S={S}")
                from .multiseed import tier_config
                _, cfg = tier_config("smoke" if quick else "ci", "swimmer", 64, 1000)
                flop_rows.append({**update_flop_rate(algo, cfg, S, OBS_DIM, ACT_DIM, n=2 if quick else 10),
                                  "load_1min": _load()})
        result["multiseed"] = {"rows": rows, "update_flop_rate": flop_rows, **multiseed_summary(rows),
                               "note": "marginal seed-steps/s per core of training at the tier's sizes: "
                                       "S * (n_long - n_short) / (wall_long - wall_short) of two runs with the same "
                                       "warm-up (64 steps without updates) and setup, then n_short or n_long steps "
                                       "of one update each, so warm-up, env construction and checkpoint cancel; "
                                       "whole_run_seed_steps_per_s_per_core = the long run's steps / its wall time. "
                                       "'process per seed' = softq_ref.training.train, one seed in one single-thread "
                                       "process; 'stacked' = softq_ref.vectorized_training.train_many with S seeds in "
                                       "one single-thread process; each run alone in a fresh child. "
                                       "update_flop_rate: speedup_ceiling_at_matmul_rate = single-seed update time / "
                                       "(stacked FLOPs / S / replayed matmul rate)"}
    torch.set_num_threads(threads0)
    result["load_1min_end"] = _load()
    (out / "perf.json").write_text(json.dumps(result, indent=2, default=str))
    return result
