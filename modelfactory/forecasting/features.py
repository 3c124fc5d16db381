"""From Rossmann rows to one Prophet-ready frame per store, and the choice of regressors.

Only open days with a sales figure are modelled: a closed day's zero is not demand, and
it would drag the weekly and yearly seasonality towards zero. Closed days are put back
at forecast time (see :mod:`modelfactory.forecasting.forecast`).
"""

from __future__ import annotations

import pandas as pd

from modelfactory.forecasting.config import REGRESSOR_COLUMNS, ForecastConfig

PROPHET_COLUMNS = ["ds", "y", *REGRESSOR_COLUMNS]


def prophet_frame(sales: pd.DataFrame) -> pd.DataFrame:
    """All stores' open days as columns Store, ds, y, promo, state_holiday, school_holiday.

    ``sales`` is a validated Rossmann frame (see :func:`modelfactory.data.rossmann.load_rossmann`).
    """
    open_days = sales[(sales["Open"] == 1)]
    return pd.DataFrame(
        {
            "Store": open_days["Store"].to_numpy(),
            "ds": open_days["Date"].to_numpy(),
            "y": open_days["Sales"].astype(float).to_numpy(),
            "promo": open_days["Promo"].astype(float).to_numpy(),
            "state_holiday": (open_days["StateHoliday"].astype(str) != "0")
            .astype(float)
            .to_numpy(),
            "school_holiday": open_days["SchoolHoliday"].astype(float).to_numpy(),
        }
    ).sort_values(["Store", "ds"], kind="stable", ignore_index=True)


def split_by_store(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """{store id: that store's rows without the Store column}, one groupby pass."""
    return {
        int(store): group.drop(columns="Store").reset_index(drop=True)  # type: ignore[arg-type]
        for store, group in frame.groupby("Store", sort=True)
    }


def select_regressors(train: pd.DataFrame, config: ForecastConfig) -> list[str]:
    """The regressors to add for one store, given its training frame and the policy.

    A regressor that is constant in training is never added (Prophet cannot scale it
    and it carries no information). Under ``"auto"`` it must also be on and off on at
    least ``config.min_regressor_days`` days each.
    """
    if config.regressor_policy == "never":
        return []
    chosen = []
    for name in config.regressors:
        values = train[name]
        on = int((values != 0).sum())
        off = len(values) - on
        if on == 0 or off == 0:
            continue
        if config.regressor_policy == "auto" and min(on, off) < config.min_regressor_days:
            continue
        chosen.append(name)
    return chosen
