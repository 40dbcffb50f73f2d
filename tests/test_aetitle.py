"""AE titles generated from facility names: the issue's examples, collisions, edge cases."""

from __future__ import annotations

import pytest

from dicomtui.dicom.aetitle import ae_title_problem, generate_ae_title


@pytest.mark.parametrize("name,expected", [
    ("Main Hospital", "MAINHOSPITAL"),
    ("St. Mary's Clinic", "STMARYSCLINIC"),
    ("Hospital Regional de São Paulo", "HOSPITALREGIONAL"),
    ("Clínica Güell-Ñandú", "CLINICAGUELLNANDU"[:16]),
    ("Straße 7", "STRASSE7"),
    ("Øresund Sjukhus", "ORESUNDSJUKHUS"),
])
def test_names_become_uppercase_ascii_alphanumerics_of_at_most_16(name, expected):
    title = generate_ae_title(name)
    assert title == expected
    assert ae_title_problem(title) is None and len(title) <= 16


def test_a_short_name_gets_a_deterministic_hash_suffix():
    title = generate_ae_title("ER")
    assert title.startswith("ER") and len(title) >= 4 and title.isalnum()
    assert generate_ae_title("ER") == title  # same name, same title, every time
    assert generate_ae_title("E.R.") != title  # a different name hashes differently


def test_collisions_get_distinct_deterministic_variants():
    taken = {"MAINHOSPITAL"}
    second = generate_ae_title("Main Hospital", taken)
    third = generate_ae_title("Main-Hospital", taken | {second})
    assert (second, third) == ("MAINHOSPITAL2", "MAINHOSPITAL3")
    assert generate_ae_title("Main Hospital", taken) == second
    full = generate_ae_title("Hospital Regional de São Paulo", {"HOSPITALREGIONAL"})
    assert full == "HOSPITALREGIONA2" and len(full) == 16
    assert generate_ae_title("main hospital", {"mainhospital"}) == "MAINHOSPITAL2"


def test_a_name_without_latin_letters_still_gets_a_valid_stable_title():
    title = generate_ae_title("東京病院")
    assert title.startswith("FAC") and ae_title_problem(title) is None
    assert generate_ae_title("東京病院") == title
    assert generate_ae_title("大阪病院") != title


@pytest.mark.parametrize("name", ["", "   ", "\t"])
def test_an_empty_name_is_refused_with_a_clear_message(name):
    with pytest.raises(ValueError, match="must not be empty"):
        generate_ae_title(name)
