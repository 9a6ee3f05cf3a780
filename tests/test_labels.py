import pytest

from kwslib.labels import SC12_KEYWORDS, SC35_WORDS, SILENCE, UNKNOWN, LabelSet, label_set


def test_sc12_is_ten_keywords_silence_unknown():
    ls = label_set("sc12")
    assert ls.labels == SC12_KEYWORDS + (SILENCE, UNKNOWN)
    assert len(ls) == 12
    assert ls.label_of("yes") == "yes"
    assert ls.label_of("bed") == UNKNOWN
    assert ls.label_of("anything-else") == UNKNOWN
    assert ls.label_of(SILENCE) == SILENCE
    assert ls.id_of("bed") == 11 and ls.id_of("yes") == 0 and ls.id_of(SILENCE) == 10


def test_sc35_has_every_word_and_silence_but_no_unknown():
    ls = label_set("sc35")
    assert len(SC35_WORDS) == 35 and len(set(SC35_WORDS)) == 35
    assert ls.labels == SC35_WORDS + (SILENCE,)
    assert ls.label_of("visual") == "visual"
    assert ls.label_of("hello") is None  # no _unknown_ class: such clips are dropped
    assert ls.id_of("hello") is None


def test_custom_words_and_flags():
    ls = label_set("custom", ["Lights On", "lights off "], silence=False)
    assert ls.labels == ("lights on", "lights off", UNKNOWN)
    assert ls.label_of("music") == UNKNOWN
    assert ls.label_of(SILENCE) is None
    assert label_set("custom", ["a"], silence=True, unknown=False).labels == ("a", SILENCE)


def test_id2label_label2id_are_transformers_ready():
    ls = label_set("sc12")
    assert ls.id2label[0] == "yes" and all(isinstance(k, int) for k in ls.id2label)
    assert {v: k for k, v in ls.id2label.items()} == ls.label2id


def test_round_trip_through_dict():
    for ls in (label_set("sc12"), label_set("sc35"), label_set("custom", ["a", "b"], silence=False)):
        assert LabelSet.from_dict(ls.to_dict()) == ls


def test_bad_protocols_and_words():
    with pytest.raises(ValueError, match="unknown protocol 'sc13'; use one of sc12, sc35, custom"):
        label_set("sc13")
    with pytest.raises(ValueError, match="needs its keywords"):
        label_set("custom")
    with pytest.raises(ValueError, match="use --protocol custom"):
        label_set("sc12", ["a"])
    with pytest.raises(ValueError, match="repeat"):
        label_set("custom", ["a", "A"])
    with pytest.raises(ValueError, match="reserved"):
        label_set("custom", ["a", "_unknown_"])
    with pytest.raises(ValueError, match="no keywords"):
        label_set("custom", [" "])
