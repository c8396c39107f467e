"""The numbers the OUCR paper reports (Table 1, Table 2), for side-by-side comparison.

``reported.csv`` transcribes the paper's tables: columns
``table,method,params_m,dataset,acceleration,psnr,ssim`` (params in millions).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Optional

import pandas as pd


@lru_cache(maxsize=1)
def reported() -> pd.DataFrame:
    """All reported rows as a DataFrame (a cached copy: do not modify it)."""
    with resources.files(__package__).joinpath("reported.csv").open("r") as fh:
        return pd.read_csv(fh)


def paper_params(method: str) -> Optional[int]:
    """The paper's parameter count of a Table 1 method (e.g. 1,192,000 for OUCR), or None."""
    rows = reported()
    rows = rows[(rows["table"] == "table1") & (rows["method"] == method)]
    if rows.empty or rows["params_m"].isna().all():
        return None
    return int(round(float(rows["params_m"].dropna().iloc[0]) * 1e6))
