"""Every message of every page in both languages; the language chosen per user."""

from __future__ import annotations

import re
import string

import pytest

import fleet.web.pages  # noqa: F401  (registers every page's messages)
from fleet.web import i18n


def test_every_message_exists_in_english_and_korean_with_the_same_placeholders() -> None:
    english, korean = i18n.CATALOG["en"], i18n.CATALOG["ko"]
    assert english.keys() == korean.keys()
    fields = string.Formatter()
    for key in english:
        names_en = {f for _, f, _, _ in fields.parse(english[key]) if f}
        names_ko = {f for _, f, _, _ in fields.parse(korean[key]) if f}
        assert names_en == names_ko, key
        assert korean[key].strip(), key
    # Korean text is Korean: most messages with words carry Hangul.
    worded = [k for k in korean if re.search(r"[A-Za-z]{3}", english[k]) and k != "app.title"]
    hangul = [k for k in worded if re.search(r"[\uac00-\ud7a3]", korean[k])]
    assert len(hangul) >= 0.9 * len(worded)


@pytest.mark.parametrize(
    ("cookie", "header", "chosen"),
    [
        ("ko", "en-GB,en;q=0.9", "ko"),  # the user's own choice wins
        (None, "ko-KR,ko;q=0.9,en;q=0.8", "ko"),
        (None, "fr-FR,en;q=0.5", "en"),
        (None, None, "en"),
        ("xx", "ko", "ko"),  # an unknown cookie is ignored
    ],
)
def test_the_language_is_the_users_choice_else_the_browsers(
    cookie: str | None, header: str | None, chosen: str
) -> None:
    assert i18n.choose(cookie, header) == chosen


def test_a_page_cannot_redefine_a_shared_message() -> None:
    with pytest.raises(ValueError, match=r"nav\.overview"):
        i18n.register({"en": {"nav.overview": "x"}, "ko": {"nav.overview": "x"}})
