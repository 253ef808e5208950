"""Tasks and tiers of the benchmark matrix: what each run trains, for how long, with which config.

A *task* is one experiment of the paper (env, metric protocol, claim); a *tier* says how much of it
to run. `paper` is Appendix D exactly; `ci` is a documented scale-down (every reduction carries its
reason, see `Reduction` and README.md); `smoke` runs every task for a few hundred steps.

Fine-tuning tasks have three *variants* (section 5.3, Figure 5): `sql_pretrained` (max-ent SQL
pretrained on the arena, then fine-tuned), `ddpg_scratch` and `ddpg_pretrained`. The pretraining
runs are the task `<body>_pretrain`, added automatically when a fine-tuning task is requested.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError, SQLConfig

__all__ = ["TaskDef", "TierTask", "Reduction", "TASKS", "TIERS", "GROUPS", "DEFAULT_TASKS", "tier_task",
           "expand_tasks", "variants", "RunDef", "FRACTION_PROTOCOLS"]


@dataclass(frozen=True)
class TaskDef:
    name: str
    env_id: str
    protocol: str  # key into protocols.PROTOCOLS
    claim: str | None  # CLAIM.* spec id this task feeds (None: pretraining)
    body: str = "point"
    pretrain_task: str | None = None  # fine-tuning tasks: the task whose checkpoints initialise them
    env_kwargs: dict[str, Any] = field(default_factory=dict)


_FT = {"hallway_wide": "HallwayWide", "hallway_narrow": "HallwayNarrow", "umaze": "UMaze"}

TASKS: dict[str, TaskDef] = {
    "multigoal": TaskDef("multigoal", "SoftQ/MultiGoal-v0", "multigoal", "CLAIM.5_1.multigoal_modes"),
    "swimmer": TaskDef("swimmer", "SoftQ/SwimmerFinishLine-v0", "swimmer", "CLAIM.5_2.swimmer_forward", body="swimmer"),
    "point_maze": TaskDef("point_maze", "SoftQ/PointMaze2Passage-v0", "maze", "CLAIM.5_2.maze_passage"),
    "ant_maze": TaskDef("ant_maze", "SoftQ/AntMaze2Passage-v0", "maze", "CLAIM.5_2.maze_passage", body="ant"),
    "point_pretrain": TaskDef("point_pretrain", "SoftQ/PointArena-v0", "pretrain", None),
    "ant_pretrain": TaskDef("ant_pretrain", "SoftQ/AntArena-v0", "pretrain", None, body="ant"),
}
for _b, _B in (("point", "Point"), ("ant", "Ant")):
    for _t, _T in _FT.items():
        TASKS[f"{_b}_{_t}"] = TaskDef(f"{_b}_{_t}", f"SoftQ/{_B}{_T}-v0", "finetune", "CLAIM.5_3.finetune_faster",
                                      body=_b, pretrain_task=f"{_b}_pretrain")

GROUPS: dict[str, list[str]] = {
    "point_finetune": ["point_pretrain", "point_hallway_wide", "point_hallway_narrow", "point_umaze"],
    "ant_finetune": ["ant_pretrain", "ant_hallway_wide", "ant_hallway_narrow", "ant_umaze"],
    "all": list(TASKS),
}

FINETUNE_VARIANTS = ("sql_pretrained", "ddpg_scratch", "ddpg_pretrained")


# Protocols whose claim is a success fraction of two algorithms: the tasks other algorithms can play in.
FRACTION_PROTOCOLS = ("multigoal", "swimmer", "maze")


def variants(task: str, algos: list[tuple[str, str]] | None = None) -> list[tuple[str, str, str | None]]:
    """(variant, algo, pretrain algo or None) for one task.

    `algos` [(variant, algo), ...] replaces the compared pair sql/ddpg by other algorithms (e.g. SB3's
    SAC and DDPG, see softq_ref.training.AGENT_FACTORIES); only success-fraction tasks accept it, since
    fine-tuning variants need a pretraining run and the SQL fine-tuning schedule of one algorithm.
    """
    protocol = TASKS[task].protocol
    if algos is not None:
        if protocol not in FRACTION_PROTOCOLS:
            raise ConfigError(f"task {task!r} (protocol {protocol!r}) cannot run other algorithms "
                              f"{[a for _, a in algos]}: only the success-fraction tasks "
                              f"{[t for t, d in TASKS.items() if d.protocol in FRACTION_PROTOCOLS]} can; "
                              "drop it from --tasks or run it without --algos")
        return [(variant, algo, None) for variant, algo in algos]
    if protocol == "finetune":
        return [("sql_pretrained", "sql", "sql"), ("ddpg_scratch", "ddpg", None), ("ddpg_pretrained", "ddpg", "ddpg")]
    return [("sql", "sql", None), ("ddpg", "ddpg", None)]


@dataclass(frozen=True)
class Reduction:
    """One departure of a tier from Appendix D, with its reason."""
    what: str
    why: str


@dataclass(frozen=True)
class TierTask:
    steps: int
    config: dict[str, Any]  # SQLConfig fields (applied to both algorithms; alpha etc. are ignored by DDPG)
    eval_episodes: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    reductions: tuple[Reduction, ...] = ()

    def sql_config(self) -> SQLConfig:
        return SQLConfig.from_dict(self.config).validate()


# -- paper: Appendix D.1/D.2 exactly --------------------------------------------------------------------
# Both algorithms: Q lr 1e-3, policy lr 1e-4, replay 1e6, start at 10,000 samples, batch 64, epochs of
# 10,000 steps with one update per step, 2 x 200 ReLU, OU noise (theta 0.15, sigma 0.3) for both,
# target copied every 1000 steps (swimmer 5000), K = M = 32 (multi-goal 100), K_V = 50, the D.1
# bandwidth h = d / (2 log(M + 1)), horizons 500 (multi-goal 20; the env registrations).
_PAPER_BASE = dict(q_lr=1e-3, policy_lr=1e-4, replay_size=1_000_000, min_replay_size=10_000, batch_size=64,
                   epoch_length=10_000, updates_per_step=1, hidden_sizes=[200, 200], exploration_noise="ou",
                   ou_theta=0.15, ou_sigma=0.3, target_update_interval=1000, svgd_particles=32, value_samples=50,
                   bandwidth_rule="paper_d1", alpha=0.1)
_E = 10_000  # steps per epoch (D.1)

_PAPER = {
    "multigoal": TierTask(100 * _E, {**_PAPER_BASE, "alpha": 10.0, "svgd_particles": 100}, eval_episodes=100),
    "swimmer": TierTask(500 * _E, {**_PAPER_BASE, "target_update_interval": 5000}),
    "maze": TierTask(500 * _E, dict(_PAPER_BASE)),
    "pretrain": TierTask(500 * _E, dict(_PAPER_BASE)),
    # D.1: fine-tuning 200 epochs; alpha annealed log-linearly 0.1 -> 0.001 and K_xi -> 1 within 20 epochs
    # (K_xi's start is not stated; 32 = K).
    "finetune": TierTask(200 * _E, {**_PAPER_BASE, "finetune_epochs": 20, "finetune_alpha_final": 1e-3,
                                    "finetune_noise_set_size": 32}, eval_episodes=10),
}

# -- ci: scaled down, every reduction justified ---------------------------------------------------------
_CI_SMALL = dict(q_lr=1e-3, policy_lr=1e-3, replay_size=100_000, batch_size=64, updates_per_step=1,
                 hidden_sizes=[64, 64], exploration_noise="ou", ou_theta=0.15, ou_sigma=0.3,
                 svgd_particles=16, value_samples=16, bandwidth_rule="sql_code", alpha=0.1)
_R_NET = Reduction("2 x 64 hidden units (paper 2 x 200)",
                   "2-D point / 10-D swimmer states; 64 units fit these value landscapes and cut the update cost ~3x")
_R_PART = Reduction("K = M = 16, K_V = 16 (paper 32/100 and 50)",
                    "SVGD and the soft-value estimate cost is linear in particles; 16 is the authors' later MuJoCo setting")
_R_LR = Reduction("policy lr 1e-3 (paper 1e-4)", "10-50x fewer updates than the paper; the sampler must move in that budget")
_R_POOL = Reduction("replay 1e5 (paper 1e6)", "holds the whole run at ci length, so nothing is evicted either way")
# Exploration noise is not reduced: OU (theta 0.15, sigma 0.3) for SQL and DDPG, as in D.1. (Until
# 2026-11-21 the ci tier ran SQL without it, the authors'-code default; on multi-goal that left SQL at
# 1-2 goals: 4 calibration runs without OU reached 1-3 goals, 2 with OU reached 4, see README.md.)
_R_BW = Reduction("bandwidth med^2 / log(n_fixed) (authors' code; paper D.1 text d / (2 log(M+1)))",
                  "the reference default, the one all conformance checks pass")


def _ci(steps: int, epoch: int, min_replay: int, target: int, extra: dict | None = None,
        reductions: tuple[Reduction, ...] = (), eval_episodes: int = 0, env_kwargs: dict | None = None,
        net: Reduction = _R_NET) -> TierTask:
    cfg = {**_CI_SMALL, "epoch_length": epoch, "min_replay_size": min_replay, "target_update_interval": target,
           **(extra or {})}
    base = (net, _R_PART, _R_LR, _R_POOL, _R_BW,
            Reduction(f"epochs of {epoch} steps, learning from {min_replay} samples, target copy every {target} steps "
                      "(paper 10,000 / 10,000 / 1000)",
                      "keeps the paper's ratios (start after 1 epoch, ~10 copies per epoch) at the shorter run length"))
    return TierTask(steps, cfg, eval_episodes=eval_episodes, env_kwargs=env_kwargs or {}, reductions=base + reductions)


_CI = {
    "multigoal": _ci(10_000, 1000, 500, 200, {"alpha": 10.0, "svgd_particles": 32, "value_samples": 32, "q_lr": 3e-3},
                     (Reduction("10,000 steps (paper 1M); K = M = 32 (paper 100)",
                                "500 episodes of 20 steps, the scale of the multigoal_ci preset (softq_ref/config.py)"),
                      Reduction("Q lr 3e-3 (paper 1e-3), learning from 500 samples (one epoch would be 1000)",
                                "the multigoal_ci preset's values; calibration (seeds 5, 6, no OU): 3 and 2 goals with "
                                "them vs 2 and 1 without")),
                     eval_episodes=50),
    "swimmer": _ci(80_000, 4000, 4000, 1000, {"max_episode_steps": 200},
                   (Reduction("80,000 steps (paper 5M); horizon 200 (paper 500); finish line at 1.0 m (ours 2.0 m)",
                              "5M SQL steps are ~40 h per seed on CPU. Until 2026-12-03 the ci tier ran 30,000 steps "
                              "with the line at 0.5 m: exploration alone reaches ~0.5-0.7 m there (a calibration run, "
                              "README.md), so the line did not need a gait and the backward trap could not form. At "
                              "80,000 steps the calibration run had learnt a gait (max x 1.0 m at 68,000, 1.9 m at "
                              "140,000); 1.0 m is beyond exploration and within a 200-step episode of a gait"),),
                   env_kwargs={"finish_line": 1.0}),
    "maze": _ci(20_000, 1000, 1000, 500, None,
                (Reduction("point mass (paper: quadruped), 20,000 steps = 200 episodes of 100 (paper 5M)",
                           "the point mass takes the same two-passage decision at ~20 us per env step; 200 episodes "
                           "are enough for the lower passage (44 steps) to be found"),)),
    "pretrain": _ci(10_000, 1000, 1000, 500, None,
                    (Reduction("point mass arena, 10,000 steps (paper: quadruped, 5M)",
                               "running in any direction is a one-step decision for the point mass"),)),
    "finetune": _ci(10_000, 1000, 1000, 500, {"finetune_epochs": 5, "finetune_alpha_final": 1e-3,
                                              "finetune_noise_set_size": 16},
                    (Reduction("point mass, 10 epochs of 1000 (paper: quadruped, 200 of 10,000); anneal within 5 "
                               "epochs (paper 20 of 200), K_xi 16",
                               "same shape of the D.1 schedule (anneal in the first 10-25% of fine-tuning)"),),
                    eval_episodes=5),
}

# -- long: a single 2-core machine in <= 3 hours, with the quadruped ---------------------------------------
# Sized from the measured costs in throughput.json (README.md, "The long tier"): one process per run per
# core. Point-mass and swimmer runs keep the ci sizes with more steps; the quadruped runs use 2 x 128 units.
# Entries keyed by task name (or "<body>_<protocol>") override the protocol's entry for that task.
_LONG_ANT = {"hidden_sizes": [128, 128]}
_R_LONG_ANT_NET = Reduction("quadruped: 2 x 128 hidden units (paper 2 x 200)",
                            "29-D observation, 8-D action: wider than the point-mass nets, at ~1/3 of the paper size's "
                            "SQL update cost (7.0 vs 19.6 ms, throughput.json)")
_R_LONG_ANT_BUDGET = ("a quadruped SQL step costs ~7.7 ms here (env 0.49 ms + update 7.0 ms, throughput.json), so "
                      "60,000 steps are ~8 min per run and the 10 runs of a task at 5 seeds ~1 core-hour, a third of "
                      "the machine's 3-hour budget on 2 cores. The paper trains 5M steps; at 60,000 the quadruped is "
                      "still learning to locomote, so these runs test the pipeline and early exploration, and a "
                      "verdict from them is about that budget, not the paper's")


def _long(steps: int, epoch: int, min_replay: int, target: int, extra: dict | None = None,
          reductions: tuple[Reduction, ...] = (), eval_episodes: int = 0, env_kwargs: dict | None = None,
          ant: bool = False) -> TierTask:
    return _ci(steps, epoch, min_replay, target, extra, reductions, eval_episodes, env_kwargs,
               net=_R_LONG_ANT_NET if ant else _R_NET)


_LONG: dict[str, TierTask] = {
    "multigoal": _CI["multigoal"],  # reproduced at the ci tier already; not in the long tier's default tasks
    "swimmer": _long(125_000, 5000, 5000, 1000, {"max_episode_steps": 500},
                     (Reduction("125,000 steps (paper 5M) = 250 episodes of 500 (the paper's horizon); finish line "
                                "at 1.5 m (ours 2.0 m)",
                                "calibration (README.md, seeds 5 and 6, not the matrix's): at the ci sizes the SQL "
                                "swimmer's max forward distance passes 1.0 m at step 66,000 in both seeds and 1.5 m at "
                                "100,000-116,000 (horizon 200); with horizon 500 exploration reaches 0.6 m in the "
                                "first 5,000 steps and +1.17 / -1.12 m by 60,000 without a gait, so the line sits "
                                "above that reach and below what a swimming policy covers in 500 steps (the open-loop "
                                "gait: 3.1 m). ~9 min per SQL run; not shown to be enough steps to swim at horizon "
                                "500"),),
                     env_kwargs={"finish_line": 1.5}),
    "maze": _long(40_000, 2000, 2000, 500, None,
                  (Reduction("point mass, 40,000 steps = 400 episodes of 100 (paper: quadruped, 5M)",
                             "twice the ci length, so a run that commits early has 200 more episodes to find the "
                             "lower passage (the ci matrix: 9/10 SQL and 9/10 DDPG runs found it in 200); ~2.5 min "
                             "per SQL run, so 13 seeds (power 0.8 at the paper's 1.0 vs 0.6) cost ~0.9 core-hours"),)),
    "ant_maze": _long(60_000, 5000, 5000, 1000, _LONG_ANT,
                      (Reduction("quadruped two-passage maze, 60,000 steps = 120 episodes of 500 (paper 5M); epochs "
                                 "of 5000", _R_LONG_ANT_BUDGET),), ant=True),
    "pretrain": _CI["pretrain"],  # the point-mass pretraining of the ci tier (long runs the quadruped's)
    "ant_pretrain": _long(60_000, 5000, 5000, 1000, _LONG_ANT,
                          (Reduction("quadruped arena pretraining, 60,000 steps (paper 5M)", _R_LONG_ANT_BUDGET),),
                          ant=True),
    "finetune": _CI["finetune"],
    "ant_finetune": _long(30_000, 3000, 3000, 1000, {**_LONG_ANT, "finetune_epochs": 2, "finetune_alpha_final": 1e-3,
                                                     "finetune_noise_set_size": 16},
                          (Reduction("quadruped fine-tuning, 30,000 steps = 10 epochs of 3000 (paper 200 of 10,000); "
                                     "alpha annealed within 2 epochs (paper 20), K_xi 16; 3 evaluation roll-outs per "
                                     "epoch (paper 10); default tasks: the wide hallway only",
                                     "the same schedule shape (anneal in the first 10-20%) at ~4 min per SQL run; one "
                                     "hallway of three because each costs ~0.8 core-hours at 5 seeds x 3 variants "
                                     "(the other two run with --tasks ant_hallway_narrow,ant_umaze)"),),
                          eval_episodes=3, ant=True),
}

# -- smoke: every task, a few hundred steps --------------------------------------------------------------
_SMOKE_CFG = dict(hidden_sizes=[16, 16], svgd_particles=4, value_samples=4, batch_size=16, min_replay_size=50,
                  replay_size=1000, epoch_length=100, target_update_interval=50, policy_lr=1e-3)


def _smoke(protocol: str) -> TierTask:
    extra: dict[str, Any] = {}
    if protocol == "finetune":
        extra = {"finetune_epochs": 1, "finetune_noise_set_size": 4}
    if protocol == "multigoal":
        extra = {"alpha": 10.0}
    return TierTask(200, {**_SMOKE_CFG, "max_episode_steps": 50 if protocol != "multigoal" else None, **extra},
                    eval_episodes=2 if protocol in ("multigoal", "finetune") else 0,
                    reductions=(Reduction("200 steps, 16-unit nets, 4 particles, horizon 50",
                                          "exercises every code path of every task in seconds; no claim is decided"),))


TIERS: dict[str, dict[str, TierTask]] = {
    "paper": _PAPER,
    "ci": _CI,
    "long": _LONG,
    "smoke": {p: _smoke(p) for p in ("multigoal", "swimmer", "maze", "pretrain", "finetune")},
}

# Seeds per task when --seeds is not given: {"*": default count, task: count}; seeds 0..N-1.
# ci: the maze claim needs >= 9 runs per algorithm at the paper's fractions (README.md, power analysis).
DEFAULT_SEEDS: dict[str, dict[str, int]] = {
    "smoke": {"*": 1},
    "ci": {"*": 5, "point_maze": 10, "swimmer": 6},
    # long: the swimmer and maze claims at power 0.8 (33 and 13 runs per algorithm at the paper's fractions),
    # affordable with the stacked trainer (README.md, "The long tier")
    "long": {"*": 5, "swimmer": 33, "point_maze": 13},
    "paper": {"*": 5},
}

DEFAULT_TASKS: dict[str, list[str]] = {
    "smoke": list(TASKS),
    # ci: 85 runs at 5 seeds, measured 37 min on 2 workers, one process per run (2026-11-21); now with the
    # seeds of DEFAULT_SEEDS and the stacked trainer (README.md has the matrix and its wall time).
    "ci": ["multigoal", "swimmer", "point_maze", "point_pretrain", "point_hallway_wide", "point_hallway_narrow",
           "point_umaze"],
    "paper": ["multigoal", "swimmer", "ant_maze", *GROUPS["ant_finetune"]],
    "long": ["swimmer", "point_maze", "ant_maze", "ant_pretrain", "ant_hallway_wide"],
}


def tier_task(tier: str, task: str) -> TierTask:
    if tier not in TIERS:
        raise ConfigError(f"unknown tier {tier!r}; accepted: {sorted(TIERS)}")
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; accepted: {sorted(TASKS)} or groups {sorted(GROUPS)}")
    td, entries = TASKS[task], TIERS[tier]
    for key in (task, f"{td.body}_{td.protocol}", td.protocol):  # most specific entry first
        if key in entries:
            return entries[key]
    raise ConfigError(f"tier {tier!r} defines no entry for task {task!r} (looked up {task!r}, "
                      f"{td.body + '_' + td.protocol!r}, {td.protocol!r})")


def expand_tasks(names: list[str] | None, tier: str) -> list[str]:
    """Task names (and groups) -> task list in matrix order, with the pretraining of fine-tuning tasks added."""
    names = names or DEFAULT_TASKS[tier]
    out: list[str] = []
    for n in names:
        for t in GROUPS.get(n, [n]):
            if t not in TASKS:
                raise ConfigError(f"unknown task {t!r}; accepted: {sorted(TASKS)} or groups {sorted(GROUPS)}")
            pre = TASKS[t].pretrain_task
            for x in ([pre] if pre else []) + [t]:
                if x not in out:
                    out.append(x)
    # pretraining first, so that fine-tuning runs can start as soon as their checkpoint exists
    return sorted(out, key=lambda t: TASKS[t].protocol != "pretrain")


@dataclass(frozen=True)
class RunDef:
    """One run of the matrix: everything a worker needs, as plain data (picklable, JSON-able)."""
    tier: str
    task: str
    variant: str
    algo: str
    seed: int
    env_id: str
    steps: int
    config: dict[str, Any]
    protocol: str
    eval_episodes: int
    env_kwargs: dict[str, Any]
    init_from: str | None = None  # key of the pretraining run whose weights initialise this one

    @property
    def key(self) -> str:
        return f"{self.task}/{self.variant}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dict(tier=self.tier, task=self.task, variant=self.variant, algo=self.algo, seed=self.seed,
                    env_id=self.env_id, steps=self.steps, config=self.config, protocol=self.protocol,
                    eval_episodes=self.eval_episodes, env_kwargs=self.env_kwargs, init_from=self.init_from)


def default_seeds(tier: str, task: str) -> list[int]:
    """Seeds 0..N-1 with N the tier's count for `task` (DEFAULT_SEEDS); fine-tuning tasks and their
    pretraining share one count, so every fine-tuning seed has its pretrained checkpoint."""
    counts = DEFAULT_SEEDS.get(tier, {"*": 1})
    td = TASKS[task]
    names = [task] + [t for t, d in TASKS.items() if d.pretrain_task == task] + ([td.pretrain_task] if td.pretrain_task else [])
    return list(range(max(counts.get(t, counts["*"]) for t in names)))


def matrix(tier: str, tasks: list[str] | None, seeds: list[int] | None, steps: int | None = None,
           algos: list[tuple[str, str]] | None = None) -> list[RunDef]:
    """Every run of `tasks` x variants x `seeds` (None: the tier's `default_seeds` per task);
    `algos` [(variant, algo)] replaces sql/ddpg (see `variants`).

    With `algos` and no `tasks`, the tier's default tasks are narrowed to the success-fraction ones.
    """
    if algos is not None and tasks is None:
        tasks = [t for t in DEFAULT_TASKS[tier] if TASKS[t].protocol in FRACTION_PROTOCOLS]
    if algos is not None:  # name a requested task in the error, not the pretraining it pulled in
        for task in sorted(expand_tasks(tasks, tier), key=lambda t: TASKS[t].protocol == "pretrain"):
            variants(task, algos)
    runs = []
    for task in expand_tasks(tasks, tier):
        td, tt = TASKS[task], tier_task(tier, task)
        cfg = tt.sql_config().to_dict()
        for variant, algo, pre in variants(task, algos):
            for seed in (default_seeds(tier, task) if seeds is None else seeds):
                init = f"{td.pretrain_task}/{pre}/seed{seed}" if pre else None
                runs.append(RunDef(tier, task, variant, algo, seed, td.env_id, int(steps or tt.steps), cfg, td.protocol,
                                   tt.eval_episodes, {**td.env_kwargs, **tt.env_kwargs}, init))
    return runs


__all__ += ["matrix", "default_seeds", "DEFAULT_SEEDS"]
