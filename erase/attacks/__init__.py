"""Attacks that try to bring an erased concept back, and the judges that score them.

One interface: (an erased model, its original, a concept, a judge) → records (see
``records.AttackRecord``) with the ASR of UnlearnDiffAtk. Prompt attacks (``unlearndiff``,
``soft_prompt``, ``concept_inversion``) share one denoising loss on target latents; ``relearn``
fine-tunes through the project's trainer. The job is ``erase.cli.attack``.
"""

from .harness import ATTACKS, PROMPT_ATTACKS
from .records import AttackRecord, asr, pre_asr

__all__ = ["ATTACKS", "PROMPT_ATTACKS", "AttackRecord", "asr", "pre_asr"]
