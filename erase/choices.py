"""The named choices of the command-line flags, in a module without torch.

The jobs build their parsers from these, so ``--help`` and bad-flag errors answer before torch,
diffusers and transformers are imported; the modules that use them import them from here.
"""

MODES = ("first_order", "second_order")
ORDERS = ("forget_first", "retain_first")
PRECONDITIONERS = ("none", "adam")
PARAM_SETS = ("full", "xattn", "noxattn", "xattn-kv", "lora")
