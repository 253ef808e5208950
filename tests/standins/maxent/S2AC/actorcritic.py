import torch.nn as nn

from actors.actor_sql import ActorSql
from networks import MLPFunction


class ActorCritic(nn.Module):
    def __init__(self, actor, observation_space, action_space, save_path, test_time, model_path, critic_kwargs,
                 actor_kwargs):
        super().__init__()
        obs_dim, act_dim = observation_space.shape[0], action_space.shape[0]
        critic_kwargs.pop("critic_cnn")
        self.q1 = MLPFunction(obs_dim, act_dim, 1, **critic_kwargs)
        self.q2 = MLPFunction(obs_dim, act_dim, 1, **critic_kwargs)
        actor_kwargs.q1, actor_kwargs.q2 = self.q1.forward, self.q2.forward
        self.pi = ActorSql(actor, obs_dim, act_dim, action_space.high[0], **actor_kwargs)

    def forward(self, obs, action_selection=None, with_logprob=True, itr=None):  # as at HEAD: no in_q_loss
        return self.pi.act(obs, action_selection, with_logprob, itr)
