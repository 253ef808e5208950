"""The paper's figures from benchmark results, as PNG, deterministic byte for byte.

| function | paper | from |
|---|---|---|
| `fig1_multigoal` | Fig. 1: trajectories over reward contours; Q contours with sampled actions at (-2,0), (0,0), (2.5,2.5) | checkpoint.pt of a multigoal SQL (and DDPG) run |
| `fig1_multigoal_seeds` | Fig. 1, left panel, for every seed | the same checkpoints |
| `fig6_swimmer` | Fig. 6 (and 3a): per-seed max / min forward distance since the start of training, finish line | result.json curves |
| `fig3b_maze` | Fig. 3b: minimum distance to the target since the start of training, threshold | result.json curves |
| `fig5_finetune` | Fig. 5: average discounted return while fine-tuning, mean and +-1 std band across seeds | result.json curves |
| `fig7_pretrain` | Fig. 7: centre-of-mass traces of the pretrained policies | checkpoint.pt of the pretraining runs |

Determinism: the Agg backend, fixed rcParams (`_RC`), PNG metadata without the "Software" entry
(matplotlib writes no date into PNGs), fixed roll-out seeds (`ROLLOUT_SEED + i`) and a freshly seeded
torch generator for policy samples, torch at one thread. The same results give the same bytes.
"""
from __future__ import annotations

import math
from pathlib import Path
import numpy as np

__all__ = ["make_figures", "ROLLOUT_SEED", "Q_STATES", "save_png", "load_agent", "POLICY_FILE"]

POLICY_FILE = "policy.pt"  # networks only, written by report.archive_results
ROLLOUT_SEED = 20_000  # roll-out episode i of a figure is reset with ROLLOUT_SEED + i
Q_STATES = ((-2.0, 0.0), (0.0, 0.0), (2.5, 2.5))  # Fig. 1 right
_RC = {"figure.dpi": 100, "savefig.dpi": 100, "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 9,
       "svg.hashsalt": "softq-report", "path.simplify": True, "axes.grid": False}
_COL = {"sql": "tab:blue", "ddpg": "tab:red", "sql_pretrained": "tab:blue", "ddpg_scratch": "tab:red",
        "ddpg_pretrained": "tab:green"}
_LABEL = {"sql": "SQL", "ddpg": "DDPG", "sql_pretrained": "SQL pretrained (MaxEnt)", "ddpg_scratch": "DDPG from scratch",
          "ddpg_pretrained": "DDPG pretrained"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path) -> None:
    fig.savefig(path, format="png", metadata={"Software": None})
    _plt().close(fig)


def _curve(r: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    c = r["curves"]
    x = np.asarray(c["step"], dtype=float)
    y = np.asarray([math.nan if v is None else float(v) for v in c.get(key, [math.nan] * len(x))], dtype=float)
    y[~np.isfinite(y)] = np.nan
    return x, y


def _by(results: list[dict], protocol: str) -> dict[str, dict[str, list[dict]]]:
    """task -> variant -> runs (sorted by seed)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for r in results:
        if r["protocol"] == protocol:
            out.setdefault(r["task"], {}).setdefault(r["variant"], []).append(r)
    for t in out.values():
        for v in t.values():
            v.sort(key=lambda r: r["seed"])
    return out


def load_agent(r: dict):
    """Rebuild the agent of a run from its config.json (else result.json's config) and checkpoint.pt, or the
    networks-only policy.pt of an archived run (`report.archive_results`)."""
    import json

    import torch

    from ..config import SQLConfig
    from ..training import make_agent

    d = Path(r["_dir"])
    cfg_d = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else r["config"]
    config = SQLConfig.from_dict(cfg_d).validate()
    path = d / "checkpoint.pt" if (d / "checkpoint.pt").exists() else d / POLICY_FILE
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    act_dim = _act_dim(ckpt)
    obs_dim = ckpt["agent"]["q"]["net.0.weight"].shape[1] - act_dim
    agent = make_agent(r["algo"], obs_dim, act_dim, config, int(r["seed"]))
    state = agent.state_dict()
    state.update(ckpt["agent"])  # a policy.pt holds the networks only; the rest keeps the fresh agent's values
    agent.load_state_dict(state)
    if hasattr(agent, "generator"):
        agent.generator.manual_seed(ROLLOUT_SEED)  # policy samples of the figure: fixed, independent of training
    return agent, config


def _act_dim(ckpt: dict) -> int:
    st = ckpt["agent"]
    if "sampler" in st:
        return int(st["sampler"][[k for k in st["sampler"] if k.endswith("weight")][-1]].shape[0])
    return int(st["actor"][[k for k in st["actor"] if k.endswith("weight")][-1]].shape[0])


def _has_ckpt(r: dict) -> bool:
    return (Path(r["_dir"]) / "checkpoint.pt").exists() or (Path(r["_dir"]) / POLICY_FILE).exists()


# -- Fig. 1 ----------------------------------------------------------------------------------------------
def _multigoal_rollouts(agent, n: int, horizon: int) -> list[np.ndarray]:
    from ..envs.multigoal import MultiGoalEnv

    env = MultiGoalEnv()
    paths = []
    for i in range(n):
        obs, _ = env.reset(seed=ROLLOUT_SEED + i)
        agent.reset_episode()
        pts = [env.position.copy()]
        for _ in range(horizon):
            obs, _, term, _, _ = env.step(agent.act(obs, deterministic=True))
            pts.append(env.position.copy())
            if term:
                break
        paths.append(np.asarray(pts))
    return paths


def _reward_contours(ax) -> None:
    from ..envs.multigoal import BOUND, GOALS

    g = np.linspace(-BOUND, BOUND, 141)
    X, Y = np.meshgrid(g, g)
    d2 = np.min([(X - gx) ** 2 + (Y - gy) ** 2 for gx, gy in GOALS], axis=0)
    ax.contour(X, Y, -d2, levels=15, colors="0.6", linewidths=0.6, linestyles="solid")
    ax.plot(GOALS[:, 0], GOALS[:, 1], "o", color="red", ms=7, zorder=5)
    ax.set_xlim(-BOUND, BOUND)
    ax.set_ylim(-BOUND, BOUND)
    ax.set_aspect("equal")


def _q_panel(ax, agent, state: tuple[float, float], n_samples: int = 50) -> None:
    import torch

    g = np.linspace(-1, 1, 81)
    A1, A2 = np.meshgrid(g, g)
    acts = torch.as_tensor(np.stack([A1.ravel(), A2.ravel()], -1)[None], dtype=torch.float32)
    obs = torch.as_tensor([state], dtype=torch.float32)
    with torch.no_grad():
        q = agent.q(obs, acts).reshape(A1.shape).numpy()
    cs = ax.contour(A1, A2, q, levels=20, cmap="coolwarm", linewidths=0.8)
    cbar = ax.figure.colorbar(cs, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label("Q(s, a)", fontsize=7)
    cbar.ax.tick_params(labelsize=6)
    if agent.algo == "sql":
        with torch.no_grad():
            a = agent.sampler(obs, n_samples, generator=agent.generator)[0].numpy()
        ax.plot(a[:, 0], a[:, 1], "*", color="tab:blue", ms=5, label=f"{n_samples} policy samples")
    else:
        with torch.no_grad():
            a = agent.actor(obs).numpy()
        ax.plot(a[:, 0], a[:, 1], "*", color="tab:blue", ms=10, label="deterministic action")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_title(f"Q at s = ({state[0]:g}, {state[1]:g})")
    ax.set_xlabel("a_x", fontsize=8)
    ax.set_ylabel("a_y", fontsize=8)
    ax.set_xticks([-1, 0, 1])
    ax.set_yticks([-1, 0, 1])
    ax.tick_params(labelsize=7)


def fig1_multigoal(results: list[dict], out: Path, n_traj: int = 30) -> list[dict]:
    plt = _plt()
    by = _by(results, "multigoal").get("multigoal", {})
    rows = [(v, next((r for r in by.get(v, []) if _has_ckpt(r)), None)) for v in ("sql", "ddpg")]
    rows = [(v, r) for v, r in rows if r is not None]
    if not rows:
        return []
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 3.4 * len(rows)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.5, 1, 1, 1]})
    for i, (variant, r) in enumerate(rows):
        agent, config = load_agent(r)
        ax = axes[i, 0]
        _reward_contours(ax)
        for p in _multigoal_rollouts(agent, n_traj, config.max_episode_steps or 20):
            ax.plot(p[:, 0], p[:, 1], "-", color="tab:blue", lw=0.9, alpha=0.8)
        ax.set_title(f"{_LABEL[variant]} (seed {r['seed']}): {n_traj} roll-outs, "
                     f"goals reached {r['metrics'].get('goals_reached')}/4")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        for j, s in enumerate(Q_STATES):
            _q_panel(axes[i, j + 1], agent, s)
        axes[i, 1].legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "fig1_multigoal.png")
    return [{"file": "fig1_multigoal.png", "paper": "Fig. 1",
             "caption": "Multi-goal task. Left: trajectories of the final policy from the origin (blue) over the "
                        "reward level curves, goals in red. Right: Q(s, .) level curves over the 2-D action (a_x, a_y) "
                        "at three states, coloured by value (red high, blue low; colour bar beside each panel, "
                        "in the run's own Q units), with actions sampled from the policy (blue stars; DDPG: its "
                        f"single deterministic action). Seed {rows[0][1]['seed']}; sampling seeds fixed."}]


def _per_seed_grid(plt, by: dict, cell_width: float, cell_height: float):
    """One panel per checkpointed run: rows SQL / DDPG, columns seeds; spare panels switched off.

    Returns (fig, [(ax, variant, run), ...]), or (None, []) when no run has a checkpoint.
    """
    runs = {v: [r for r in by.get(v, []) if _has_ckpt(r)] for v in ("sql", "ddpg")}
    variants = [v for v in runs if runs[v]]
    if not variants:
        return None, []
    n = max(len(runs[v]) for v in variants)
    fig, axes = plt.subplots(len(variants), n, figsize=(cell_width * n, cell_height * len(variants)), squeeze=False)
    cells = []
    for i, v in enumerate(variants):
        for j in range(n):
            if j < len(runs[v]):
                cells.append((axes[i, j], v, runs[v][j]))
            else:
                axes[i, j].axis("off")
    return fig, cells


def fig1_multigoal_seeds(results: list[dict], out: Path, n_traj: int = 20) -> list[dict]:
    plt = _plt()
    fig, cells = _per_seed_grid(plt, _by(results, "multigoal").get("multigoal", {}), 2.4, 2.8)
    if fig is None:
        return []
    for ax, v, run in cells:
        agent, config = load_agent(run)
        _reward_contours(ax)
        for p in _multigoal_rollouts(agent, n_traj, config.max_episode_steps or 20):
            ax.plot(p[:, 0], p[:, 1], "-", color=_COL[v], lw=0.8, alpha=0.8)
        ax.set_title(f"{_LABEL[v]} seed {run['seed']}: {run['metrics'].get('goals_reached')}/4 goals", fontsize=8)
        ax.set_xlabel("x", fontsize=7)
        ax.set_ylabel("y", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout(h_pad=1.5)
    save_png(fig, out / "fig1_multigoal_seeds.png")
    return [{"file": "fig1_multigoal_seeds.png", "paper": "Fig. 1 (left), every seed",
             "caption": f"Multi-goal task: {n_traj} roll-outs of the final policy of every seed (rows: algorithm; "
                        "SQL blue, DDPG red; goals red dots). The goal count in each title is the run's own metric "
                        "(its evaluation roll-outs, not the ones drawn)."}]


# -- Fig. 6 / 3a ------------------------------------------------------------------------------------------
def fig6_swimmer(results: list[dict], out: Path) -> list[dict]:
    plt = _plt()
    figs = []
    for task, by in _by(results, "swimmer").items():
        variants = [v for v in ("sql", "ddpg") if by.get(v)]
        n = max(len(by[v]) for v in variants)
        fig, axes = plt.subplots(n, len(variants), figsize=(4.2 * len(variants), 1.35 * n + 0.6), squeeze=False,
                                 sharex=True, sharey=True)
        for j, v in enumerate(variants):
            for i in range(n):
                ax = axes[i, j]
                if i >= len(by[v]):
                    ax.axis("off")
                    continue
                r = by[v][i]
                x, hi = _curve(r, "max_x_so_far")
                _, lo = _curve(r, "min_x_so_far")
                ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.35, lw=0)
                ax.plot(x, hi, color="tab:blue", lw=1)
                ax.plot(x, lo, color="tab:blue", lw=1)
                ax.axhline(float(r["metrics"]["finish_line"]), color="red", lw=1, label="finish line")
                ax.axhline(0.0, color="0.7", lw=0.5)
                ax.text(0.01, 0.85, f"seed {r['seed']}" + (" crossed" if r["metrics"]["success"] else ""),
                        transform=ax.transAxes, fontsize=7)
                if i == 0:
                    ax.set_title(_LABEL[v])
                    if j == 0:
                        ax.legend(loc="lower right", fontsize=6)
                if i == n - 1:
                    ax.set_xlabel("training step")
            axes[n // 2, 0].set_ylabel("centre-of-mass x (m)")
        fig.tight_layout()
        name = f"fig6_{task}.png"
        save_png(fig, out / name)
        figs.append({"file": name, "paper": "Fig. 6 (and 3a)",
                     "caption": "Swimmer: forward (positive) and backward (negative) centre-of-mass distance per "
                                "run, one row per seed. The band is bounded by the maximum and minimum x reached "
                                "since the start of training (training roll-outs); red line: the finish line (legend in the "
                                "first panel); grey line: x = 0."})
    return figs


# -- Fig. 3b ----------------------------------------------------------------------------------------------
def fig3b_maze(results: list[dict], out: Path) -> list[dict]:
    plt = _plt()
    figs = []
    for task, by in _by(results, "maze").items():
        fig, ax = plt.subplots(figsize=(6, 3.8))
        thr = None
        for v in ("ddpg", "sql"):
            for k, r in enumerate(by.get(v, [])):
                x, y = _curve(r, "min_distance_so_far")
                ax.plot(x, y, color=_COL[v], lw=1.2, alpha=0.85,
                        label=f"{_LABEL[v]} ({sum(bool(q['metrics']['success']) for q in by[v])}/{len(by[v])} below)"
                        if k == 0 else None)
                thr = float(r["metrics"]["threshold_distance"])
        if thr is not None:
            ax.axhline(thr, color="k", ls="--", lw=1, label=f"threshold {thr:.3g} m (best of the blocked passage)")
        ax.set_xlabel("training step")
        ax.set_ylabel("min distance to target so far (m)")
        ax.set_title(f"{task}: one line per run")
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"fig3b_{task}.png"
        save_png(fig, out / name)
        figs.append({"file": name, "paper": "Fig. 3b",
                     "caption": "Two-passage maze: minimum distance to the target since the start of training, one "
                                "line per run; runs that go below the dashed threshold used the open passage."})
    return figs


# -- Fig. 5 -----------------------------------------------------------------------------------------------
def fig5_finetune(results: list[dict], out: Path) -> list[dict]:
    plt = _plt()
    by = _by(results, "finetune")
    if not by:
        return []
    tasks = list(by)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.3 * len(tasks), 3.4), squeeze=False)
    for j, task in enumerate(tasks):
        ax = axes[0, j]
        for v in ("sql_pretrained", "ddpg_scratch", "ddpg_pretrained"):
            runs = by[task].get(v, [])
            if not runs:
                continue
            curves = [_curve(r, "eval_discounted_return") for r in runs]
            L = min(len(c[0]) for c in curves)
            x = curves[0][0][:L]
            Y = np.vstack([c[1][:L] for c in curves])
            m = np.nanmean(Y, axis=0)
            s = np.nanstd(Y, axis=0)
            ax.plot(x, m, color=_COL[v], lw=1.5, label=f"{_LABEL[v]} (n={len(runs)})")
            ax.fill_between(x, m - s, m + s, color=_COL[v], alpha=0.2, lw=0)
        ax.set_title(task)
        ax.set_xlabel("fine-tuning step")
        if j == 0:
            ax.set_ylabel("average discounted return")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "fig5_finetune.png")
    return [{"file": "fig5_finetune.png", "paper": "Fig. 5",
             "caption": "Fine-tuning: average discounted return of the evaluation roll-outs per epoch; lines are "
                        "means over seeds, shaded regions one standard deviation (as in the paper)."}]


# -- Fig. 7 -----------------------------------------------------------------------------------------------
def _arena_traces(agent, config, env_id: str, n: int) -> list[np.ndarray]:
    from ..training import make_env

    env = make_env(env_id, config)
    paths = []
    try:
        for i in range(n):
            obs, info = env.reset(seed=ROLLOUT_SEED + i)
            agent.reset_episode()
            pts = [np.asarray(info.get("xy_position", obs[:2]), dtype=float)]
            done = False
            while not done:
                obs, _, term, trunc, info = env.step(agent.act(obs, deterministic=True))
                pts.append(np.asarray(info.get("xy_position", obs[:2]), dtype=float))
                done = term or trunc
            paths.append(np.asarray(pts))
    finally:
        env.close()
    return paths


def fig7_pretrain(results: list[dict], out: Path, n_traj: int = 10) -> list[dict]:
    plt = _plt()
    figs = []
    for task, by in _by(results, "pretrain").items():
        fig, cells = _per_seed_grid(plt, by, 2.3, 2.5)
        if fig is None:
            continue
        lim = 1.0
        for ax, v, run in cells:
            agent, config = load_agent(run)
            for p in _arena_traces(agent, config, run["env_id"], n_traj):
                ax.plot(p[:, 0], p[:, 1], color=_COL[v], lw=0.7, alpha=0.8)
                lim = max(lim, float(np.max(np.abs(p))))
            ax.plot([0], [0], "k.", ms=4)
            ax.set_title(f"{_LABEL[v]} seed {run['seed']}", fontsize=8)
            ax.set_xlabel("x (m)", fontsize=7)
            ax.set_ylabel("y (m)", fontsize=7)
            ax.tick_params(labelsize=6)
        for ax, _, _ in cells:
            ax.set_xlim(-lim * 1.05, lim * 1.05)
            ax.set_ylim(-lim * 1.05, lim * 1.05)
            ax.set_aspect("equal")
        fig.tight_layout()
        name = f"fig7_{task}.png"
        save_png(fig, out / name)
        figs.append({"file": name, "paper": "Fig. 7",
                     "caption": f"Pretraining ({task}): centre-of-mass traces of {n_traj} roll-outs of each "
                                "pretrained policy from the start (black dot) (columns: seeds; rows: algorithm, SQL blue, "
                                "DDPG red; SQL samples from its policy, DDPG acts deterministically; no exploration noise). The paper shows one alpha per column; here alpha is "
                                "the tier's single value."})
    return figs


def make_figures(results: list[dict], out: Path) -> tuple[list[dict], list[str]]:
    """Draw every figure the results allow; returns (figure entries, notes on figures not drawn)."""
    import matplotlib
    import torch

    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    figs: list[dict] = []
    notes: list[str] = []
    try:
        with matplotlib.rc_context(_RC):
            for fn, need in ((fig1_multigoal, "multigoal checkpoints"), (fig1_multigoal_seeds, "multigoal checkpoints"),
                             (fig6_swimmer, "swimmer results"), (fig3b_maze, "maze results"),
                             (fig5_finetune, "fine-tuning results"), (fig7_pretrain, "pretraining checkpoints")):
                try:
                    got = fn(results, out)
                except Exception as e:  # a figure that cannot be drawn must not sink the report
                    notes.append(f"{fn.__name__} failed: {type(e).__name__}: {e}")
                    continue
                if not got:
                    notes.append(f"{fn.__name__}: not drawn (no {need} among the valid results)")
                figs += got
    finally:
        torch.set_num_threads(threads)
    return figs, notes
