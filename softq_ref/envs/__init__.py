"""Gymnasium tasks of the paper, registered under the `SoftQ/` namespace on import of softq_ref.

Entry points are strings, so MuJoCo is only imported when a MuJoCo task is made.
"""
from gymnasium.envs.registration import register, registry

# id -> (entry point, max_episode_steps); paper D.2: horizon 500, multi-goal 20.
TASKS: dict[str, tuple[str, int]] = {
    "SoftQ/MultiGoal-v0": ("softq_ref.envs.multigoal:MultiGoalEnv", 20),
}


def register_tasks() -> None:
    for env_id, (entry_point, horizon) in TASKS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, max_episode_steps=horizon)


register_tasks()
