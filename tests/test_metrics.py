from lens_focus.metrics import best_subspan_em, normalize_answer


def test_normalize():
    assert normalize_answer("The  Röntgen, Wilhelm!") == "röntgen wilhelm"
    assert normalize_answer("an apple a day") == "apple day"


def test_best_subspan_em():
    assert best_subspan_em("It was Wilhelm Conrad Röntgen.", ["Wilhelm Conrad Röntgen"]) == 1.0
    assert best_subspan_em("the Beatles", ["Beatles", "x"]) == 1.0
    assert best_subspan_em("Röntgen", ["Wilhelm Conrad Röntgen"]) == 0.0
    assert best_subspan_em("anything", ["the"]) == 0.0  # an answer that normalises to nothing never matches
