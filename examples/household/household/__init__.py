"""household: a small ALFWorld-like text world for training routed LoRA experts by RL.

Six task types (pick, look, clean, heat, cool, pick_two) in one room per task, procedurally
generated from a seed, with disjoint train and held-out splits of unseen (type, object,
destination) combinations, a scripted expert and noisy walkthroughs for imitation. Standard
library only. See examples/household/README.md for the API and the text formats.
"""

from .env import DEFAULT_MAX_STEPS, EpisodeFinishedError, HouseholdEnv
from .expert import expert_action, walkthrough
from .text import vocabulary
from .world import SIZES, SPLITS, TASK_TYPES, Task, all_triples, make_task, split_of

__all__ = [
    "DEFAULT_MAX_STEPS", "EpisodeFinishedError", "HouseholdEnv", "SIZES", "SPLITS", "TASK_TYPES",
    "Task", "all_triples", "expert_action", "make_task", "split_of", "vocabulary", "walkthrough",
]
