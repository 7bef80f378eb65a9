"""The simulation runs end to end on a small region (the full day is `python -m hub.referrals.simulate`)."""

from __future__ import annotations

from hub.referrals.simulate import Behaviour, bar_chart_png, run


async def test_a_small_simulated_day_places_referrals_and_draws_the_plot(tmp_path):
    result = await run(seed=3, providers=5, referrals_per_day=6, workdir=tmp_path,
                       behaviour=Behaviour(answer_mean_minutes=10, accept_probability=0.8, silent_probability=0.2))
    assert result["referrals"] == 6
    assert result["placed"] + result["needed_a_person"] >= 6
    assert result["placed"] == sum(result["placements_per_hour"])
    if result["placed"]:
        assert result["median_minutes_to_accepted_bed"] <= result["p90_minutes_to_accepted_bed"]
        assert result["offers_per_placement"] >= 1 and result["gp_actions_per_placement"] == 1.0
    plot = tmp_path / "plot.png"
    bar_chart_png(result["placements_per_hour"], plot)
    assert plot.read_bytes().startswith(b"\x89PNG")
