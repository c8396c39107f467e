"""Build any method by its paper name, with keyword arguments from the config.

Names are those of the paper (Table 1 and Table 2). The OUCR ablation variants
share OUCR's constructor arguments, so a config gives widths once under ``OUCR``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Mapping, Optional

from oucr.errors import ConfigError
from oucr.models.base import ReconModel

#: paper name -> "module:callable" returning a ReconModel
METHODS: Dict[str, str] = {
    "UNet": "baselines.unet:UNet",
    "KIKI-Net": "baselines.kikinet:KIKINet",
    "Kiu-net": "baselines.kiunet:KiUNet",
    "D5C5": "baselines.d5c5:D5C5",
    "PC-RNN": "baselines.pcrnn:PCRNN",
    "OUCR": "oucr.models.oucr:OUCR",
}

#: Table 2 variant name -> (use OC-CRNN, use UC-CRNN, use refine module)
ABLATIONS: Dict[str, Dict[str, bool]] = {
    "UC-CRNN": {"use_oc": False, "use_uc": True, "use_rm": False},
    "UC-CRNN + RM": {"use_oc": False, "use_uc": True, "use_rm": True},
    "OC-CRNN": {"use_oc": True, "use_uc": False, "use_rm": False},
    "OC-CRNN + RM": {"use_oc": True, "use_uc": False, "use_rm": True},
    "UC-CRNN + OC-CRNN": {"use_oc": True, "use_uc": True, "use_rm": False},
    "UC-CRNN + OC-CRNN + RM (OUCR)": {"use_oc": True, "use_uc": True, "use_rm": True},
}

#: networks of Table 1, in the paper's row order (CS is not a network)
TABLE1_NETWORKS = ["UNet", "KIKI-Net", "Kiu-net", "D5C5", "PC-RNN", "OUCR"]


def model_config_key(name: str) -> str:
    """Config section holding ``name``'s arguments (ablation variants use ``OUCR``'s)."""
    return "OUCR" if name in ABLATIONS else name


def build_model(name: str, config: Optional[Mapping[str, Any]] = None, **overrides: Any) -> ReconModel:
    """Instantiate the method ``name``.

    Args:
        name: a key of :data:`METHODS` or :data:`ABLATIONS`.
        config: the ``models`` section of a config (method name -> kwargs); optional.
        **overrides: keyword arguments that take precedence over the config.

    Returns:
        the model.

    Raises:
        ConfigError: for an unknown name or arguments the constructor rejects.
    """
    key = model_config_key(name)
    if key not in METHODS:
        known = ", ".join(list(METHODS) + [a for a in ABLATIONS if a not in METHODS])
        raise ConfigError(f"unknown method {name!r}; known methods: {known}")
    kwargs: Dict[str, Any] = dict((config or {}).get(key, {}) or {})
    kwargs.update(ABLATIONS.get(name, {}))
    kwargs.update(overrides)
    module_name, attr = METHODS[key].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"invalid arguments for method {name!r}: {err}") from err


def method_slug(name: str) -> str:
    """File-system name of a method: ``"UC-CRNN + RM"`` -> ``"uc-crnn-rm"``, ``"OUCR"`` -> ``"oucr"``.

    The full ablation model ``"UC-CRNN + OC-CRNN + RM (OUCR)"`` is OUCR itself, slug ``"oucr"``.
    """
    if name == "UC-CRNN + OC-CRNN + RM (OUCR)":
        return "oucr"
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    while "--" in slug:
        slug = slug.replace("--", "-")
    return slug.strip("-")
