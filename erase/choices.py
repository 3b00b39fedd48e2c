"""The named choices of the command-line flags, in a module without torch.

The jobs build their parsers from these, so ``--help`` and bad-flag errors answer before torch,
diffusers and transformers are imported; the modules that use them import them from here.
"""

MODES = ("first_order", "second_order")
ORDERS = ("forget_first", "retain_first")
PRECONDITIONERS = ("none", "adam")
# one message for the meta-step config and the command line (erase.validate)
ANCHOR_WITH_RETAIN_FIRST = (
    "--retain_weight_at_theta adds λ₀·L_r(θ) to the forget-first objective; with "
    "--meta_order retain_first (lur's default) the retain loss at θ is already the inner loss: "
    "add --meta_order forget_first or drop --retain_weight_at_theta"
)
PARAM_SETS = ("full", "xattn", "noxattn", "xattn-kv", "lora")
