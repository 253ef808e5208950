"""Command line: `python -m softq_ref train --algo sql|ddpg|sb3_sac|sb3_ddpg --env ID --steps N --seed S --out DIR ...`.

Every input is checked before training starts; a bad one exits with status 2 and an argparse-style
message that names the field and what is accepted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from .config import PRESETS, ConfigError, SQLConfig, preset

__all__ = ["main", "build_parser", "parse_set", "MULTIGOAL_ID"]

MULTIGOAL_ID = "SoftQ/MultiGoal-v0"
EVAL_EPISODES = 20  # multi-goal: rollouts per evaluation of goals reached


def build_parser() -> argparse.ArgumentParser:
    from .training import ALGOS
    parser = argparse.ArgumentParser(prog="python -m softq_ref", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train}")
    t = sub.add_parser("train", help="train SQL or DDPG on a task",
                       description="Train an agent; writes config.json, metadata.json, metrics.csv, checkpoint.pt to --out.")
    t.add_argument("--algo", required=True, type=_algo, metavar="ALGO",
                   help=f"algorithm: one of {', '.join(ALGOS)} (sb3_*: optional extra sb3), or your own agent "
                        "factory package.module:Factory (signature (obs_dim, act_dim, config, seed) -> agent)")
    t.add_argument("--env", required=True, help="gymnasium id, e.g. SoftQ/MultiGoal-v0")
    t.add_argument("--steps", type=int, default=None,
                   help="total environment steps (a resumed run continues to this); default: the config's "
                        "epochs * epoch_length")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    t.add_argument("--preset", choices=sorted(PRESETS), default=None, help="hyperparameter preset (default: paper)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one SQLConfig field, e.g. --set alpha=10 --set hidden_sizes=64,64 (repeatable)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress (a bar on a terminal; otherwise one line every 30 s with step, rate and ETA)")
    t.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: these networks are small, and one thread measured 2x "
                        "faster on a busy 2-core machine; 0 keeps torch's default)")
    t.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES,
                   help=f"multi-goal only: rollouts per goals-reached evaluation (default {EVAL_EPISODES})")
    parser.train_parser = t  # errors are reported with the `train` usage line
    return parser


def _algo(text: str) -> str:
    from .training import ALGOS, is_factory_path

    if text in ALGOS or is_factory_path(text):
        return text
    raise argparse.ArgumentTypeError(f"unknown algo {text!r}; accepted: {', '.join(repr(a) for a in ALGOS)}, "
                                     "or an agent factory 'package.module:Factory'")


def _convert(name: str, raw: str, hint: Any) -> Any:
    """Parse `raw` as the type of SQLConfig field `name`; ValueError names the expected form."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if type(None) in args:  # `int | None`
        if raw.strip().lower() in ("none", "null"):
            return None
        return _convert(name, raw, next(a for a in args if a is not type(None)))
    if hint is bool:
        if raw.lower() in ("true", "1", "yes", "false", "0", "no"):
            return raw.lower() in ("true", "1", "yes")
        raise ValueError("expected true or false")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("expected an integer") from None
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
    if origin is tuple:
        parts = [p for p in raw.strip("()[] ").replace(" ", "").split(",") if p]
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError("expected comma-separated integers, e.g. 64,64") from None
    if origin is dict:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object, e.g. {"k": 1}')
        return value
    return raw  # str fields: the allowed values are checked by SQLConfig.validate()


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """['alpha=10', 'hidden_sizes=64,64'] -> typed overrides; ConfigError names the bad field."""
    hints = typing.get_type_hints(SQLConfig)
    fields = sorted(f.name for f in dataclasses.fields(SQLConfig))
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set alpha=10")
        if name not in hints:
            raise ConfigError(f"--set: unknown config field {name!r}; accepted fields: {fields}")
        try:
            out[name] = _convert(name, raw, hints[name])
        except ValueError as e:
            raise ConfigError(f"--set {name}={raw!r}: bad value for config field '{name}': {e}") from None
    return out


def _softq_ids() -> list[str]:
    import gymnasium as gym
    from . import envs  # noqa: F401  (registers the SoftQ/ tasks)
    return sorted(i for i in gym.registry if i.startswith("SoftQ/"))


def _multigoal_evaluator(n_episodes: int, seed: int):
    from .envs.multigoal import goals_reached

    def evaluate(agent) -> dict:
        n, counts = goals_reached(lambda o: agent.act(o, deterministic=True), n_episodes=n_episodes, seed=seed)
        return {"goals_reached": n, **{f"goal_{i}_count": c for i, c in enumerate(counts)}}
    return evaluate


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    parser = parser.train_parser
    import gymnasium as gym

    from .runtime import keep_freed_memory
    from .training import make_agent, make_env, train

    keep_freed_memory()  # fewer page faults per update; numbers unchanged

    # -- validate everything before training ---------------------------------------------------------
    softq_ids = _softq_ids()
    if args.env not in gym.registry:
        parser.error(f"argument --env: unknown environment id {args.env!r}; registered SoftQ tasks: {softq_ids} "
                     "(any registered gymnasium id, e.g. Swimmer-v5, also works)")
    if args.steps is not None and args.steps <= 0:
        parser.error(f"argument --steps: {args.steps} is invalid: expected a number of environment steps >= 1")
    if args.eval_episodes < 1:
        parser.error(f"argument --eval-episodes: {args.eval_episodes} is invalid: expected an integer >= 1")
    if args.threads < 0:
        parser.error(f"argument --threads: {args.threads} is invalid: expected an integer >= 0 (0: torch's default)")
    out = Path(args.out)
    ckpt = out / "checkpoint.pt"
    if args.resume and not ckpt.exists():
        parser.error(f"argument --resume: no checkpoint at {ckpt}; run without --resume to start a new run")
    if not args.resume and ckpt.exists():
        parser.error(f"argument --out: {out} already holds a run (checkpoint.pt); pass --resume to continue it "
                     "or choose another --out")
    problem = _unwritable(out)
    if problem:
        parser.error(f"argument --out: {problem}")
    try:
        saved = _saved_config(out, parser) if args.resume and args.preset is None else None
        if saved is not None:
            # The run's own config; --set on a resume may only restate it (train() rejects changes).
            config = saved.replace(**parse_set(args.overrides)).validate()
        else:
            config = preset(args.preset or "paper", **parse_set(args.overrides))
    except ConfigError as e:
        parser.error(str(e))
    except TypeError as e:  # e.g. a string where validate() compares numbers
        parser.error(f"invalid config value: {e}")
    _check_device(config.device, parser)
    if args.steps is None:
        args.steps = config.epochs * config.epoch_length
        print(f"note: --steps not given: {config.epochs} epochs x {config.epoch_length} steps = {args.steps}",
              file=sys.stderr)
    if args.resume and config == saved and _finished(out, args.steps):
        print(f"{out}: this run already finished at {args.steps} steps (metadata.json status completed); nothing "
              "to do. Pass a larger --steps to continue it", file=sys.stderr)
        return 0

    if args.steps < config.min_replay_size:
        print(f"note: --steps {args.steps} < min_replay_size {config.min_replay_size}: the run only collects "
              "data and makes no updates", file=sys.stderr)
    try:
        env = make_env(args.env, config)
    except Exception as e:  # noqa: BLE001 - e.g. MuJoCo missing; report instead of a traceback
        parser.error(f"argument --env: cannot make {args.env!r}: {e}")
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    try:
        agent = make_agent(args.algo, obs_dim, act_dim, config, args.seed)
    except ConfigError as e:  # a missing optional extra, a factory path that does not import
        parser.error(f"argument --algo: {e}")
    evaluate = _multigoal_evaluator(args.eval_episodes, args.seed) if args.env == MULTIGOAL_ID else None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        summary = train(agent, args.env, args.steps, args.seed, args.out, resume=args.resume,
                        progress=not args.no_progress, evaluate=evaluate)
    except ConfigError as e:  # resume with a different config / fewer steps / an unreadable checkpoint
        parser.error(str(e))
    print(json.dumps(_plain({k: v for k, v in summary.items() if k != "last_metrics"} | {"last": summary["last_metrics"]})))
    return 0


def _plain(x: Any) -> Any:
    """numpy scalars -> Python numbers (json.dumps would otherwise print them as strings); NaN -> null."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x if isinstance(x, (int, float, str, bool)) or x is None else str(x)


def _unwritable(out: Path) -> str | None:
    """None if `out` can be created and written, else the reason (checked before any training)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        return f"cannot create or write {out} ({e.strerror or e})"
    return None


def _saved_config(out: Path, parser: argparse.ArgumentParser) -> SQLConfig | None:
    """The run's config: config.json, else (missing) the one stored in the checkpoint; config.json is rewritten."""
    path = out / "config.json"
    if path.exists():
        try:
            return SQLConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            parser.error(f"argument --resume: {path} is unreadable ({e}); delete it to rebuild it from checkpoint.pt")
    from .training import load_checkpoint

    ckpt = load_checkpoint(out / "checkpoint.pt")
    print(f"note: {path} is missing; rebuilt from checkpoint.pt", file=sys.stderr)
    return SQLConfig.from_dict(ckpt["config"])


def _check_device(device: str, parser: argparse.ArgumentParser) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        parser.error(f"config field 'device' = {device!r} is invalid ({e}); expected cpu or cuda[:N]")
    if dev.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"config field 'device' = {device!r} but CUDA is not available here (torch {torch.__version__}"
                     f"{', a CPU-only build' if torch.version.cuda is None else ''}); use --set device=cpu")


def _finished(out: Path, steps: int) -> bool:
    try:
        meta = json.loads((out / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("status") == "completed" and meta.get("total_steps") == steps


if __name__ == "__main__":
    sys.exit(main())
