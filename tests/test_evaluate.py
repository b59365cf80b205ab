from deid.evaluate import Scores


def g(s, e, t, tier=1, text="x"):
    return {"start": s, "end": e, "type": t, "tier": tier, "text": text}


def test_exact_and_overlap_metrics():
    sc = Scores()
    gold = [g(0, 3, "NAME"), g(10, 20, "ADDRESS", 1), g(30, 32, "STD", 3)]
    pred = [g(0, 3, "NAME"), g(10, 15, "ADDRESS", 2), g(40, 42, "NAME")]
    sc.add(1, gold, pred, {1: [(0, 3)], 2: [(0, 3), (10, 15)], 3: [(0, 3), (10, 15)]})
    pt = sc.per_type()
    assert pt["NAME"]["exact"]["p"] == 0.5 and pt["NAME"]["exact"]["r"] == 1.0
    assert pt["ADDRESS"]["exact"]["r"] == 0.0 and pt["ADDRESS"]["overlap"]["r"] == 1.0
    assert pt["STD"]["overlap"]["r"] == 0.0
    tiers = sc.tier_scores()
    assert tiers["p"] == 0.0 and tiers["r"] == 0.0      # the address has the wrong tier, the STD is missed
    leaks = sc.leak_rates()
    assert leaks[1] == 0.5       # the tier-1 address is not masked at level 1
    assert leaks[3] == 2 / 3     # partly masked address and the missed STD leak


def test_perfect_prediction():
    sc = Scores()
    gold = [g(0, 3, "NAME"), g(5, 9, "PREGNANCY", 2)]
    sc.add(1, gold, gold, {1: [(0, 3)], 2: [(0, 3), (5, 9)], 3: [(0, 3), (5, 9)]})
    assert sc.leak_rates() == {1: 0.0, 2: 0.0, 3: 0.0}
    assert sc.tier_scores()["p"] == 1.0
