"""Decode one array of a JSON document a piece at a time, so a trace of several GB is
never in memory whole; see docs/ingest.md."""

from __future__ import annotations

import re
from typing import Callable, Iterator

import msgspec

ITEM_END = re.compile(rb"\}[ \t\r\n]*,")
PIECE_PATH = re.compile(r"`\$\[(\d+)\]")
BYTE_OFFSET = re.compile(r"\(byte (\d+)\)")
TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")
DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
# Cuts tried before reading more: the last `},` almost always parses; several failing
# means an item longer than what is buffered, or bytes that are not JSON.
CUTS_PER_READ = 3
# Neither the text before the array nor one item may be longer (nor 4 reads): past it
# the input is no trace, and reading on would only fill memory.
MAX_UNCUT_BYTES = 64 << 20


class PieceError(Exception):
    """The input cannot be cut into pieces: cut off, empty, or no such array."""


class Empty(PieceError):
    pass


class ArrayPieces:
    """Iterate for `(index of the first item, items)`, the pieces of `key`'s array in
    order; afterwards `document` is the whole object decoded with that array empty.

    `read(n)` gives up to n bytes (b"" at the end), `decode_items` decodes a JSON array
    of items, and `decode_document` the object (raising if `key` is missing)."""

    def __init__(self, read: Callable[[int], bytes], key: str, decode_items: Callable[[bytes], list],
                 decode_document: Callable[[bytes], object], chunk_bytes: int):
        self.read = read
        self.key = key
        self.array_start = re.compile(b'"' + re.escape(key.encode()) + rb'"[ \t\r\n]*:[ \t\r\n]*\[')
        self.decode_items = decode_items
        self.decode_document = decode_document
        self.chunk_bytes = chunk_bytes
        self.max_uncut = max(MAX_UNCUT_BYTES, 4 * chunk_bytes)
        self.document = None
        self.head_document = None  # the object before the array, once it is found
        self.head = b""  # the object's text before the array's `[`
        self.buffer = b""  # unread text, from just after an item's `,` (or the `[`)
        self.offset = 0  # of buffer[0] in the document
        self.eof = False
        self.items_read = 0

    def __iter__(self) -> Iterator[tuple[int, list]]:
        if not self._find_array():  # decoded whole: see _find_array
            yield self._numbered(getattr(self.document, self.key))
            return
        while True:
            self._fill()
            items = self._cut()
            if items is not None:
                yield self._numbered(items)
            elif self.eof:
                yield self._numbered(self._rest())
                return
            else:
                self._read_more()

    def _find_array(self) -> bool:
        """Read up to the `[` of `"key": [` at the top level of the object. Where there
        is none (bad JSON, no such key, or one spelled with escapes), decode the input
        whole, which raises the error there is or gives the array."""
        search_from, first_error = 0, None
        while True:
            match = self.array_start.search(self.buffer, search_from)
            if match:
                head = self.buffer[:match.end() - 1]
                try:
                    self.head_document = self.decode_document(head + b"[]}")
                except DECODE_ERRORS as err:  # nested in another value, or bad JSON before it
                    first_error = first_error or err
                    search_from = match.start() + 1
                    continue
                self.head = head
                self._consume(match.end())
                return True
            if self.eof:
                if not self.buffer.strip():
                    raise Empty("empty")
                self.document = self.head_document = self.decode_document(self.buffer)
                return False
            if len(self.buffer) > self.max_uncut:
                if first_error is not None:
                    raise first_error
                raise PieceError(f"no {self.key} list in the first {self.max_uncut >> 20} MiB")
            self._read_more()

    def _cut(self) -> list | None:
        """The items up to the last item end in the buffer that parses, or None."""
        # at the end of input, the array's `]` and what follows it hold no item end
        end = self.buffer.rfind(b"]") if self.eof else len(self.buffer)
        for attempt, match in enumerate(self._item_ends(end)):
            if attempt == CUTS_PER_READ:
                return None
            try:
                items = self.decode_items(b"[" + self.buffer[:match.start() + 1] + b"]")
            except msgspec.ValidationError as err:  # genuine: the piece parsed up to it (a
                raise self._located(err) from None  # DecodeError too, so caught first)
            except DECODE_ERRORS:
                continue
            self._consume(match.end())
            return items
        return None

    def _item_ends(self, end: int):
        """Candidate item ends, last first: those near the end, then the others."""
        near = max(0, end - (64 << 10))
        yield from reversed(list(ITEM_END.finditer(self.buffer, near, end)))
        if near:
            yield from reversed(list(ITEM_END.finditer(self.buffer, 0, near)))

    def _rest(self) -> list:
        """The last items, from the rest of the input: they, the array's `]`, and the
        rest of the object."""
        text = b"[" + self.buffer
        try:
            items, tail = self.decode_items(text), b""  # no `}` after: the object is cut off
        except msgspec.DecodeError as err:
            trailing = TRAILING.search(str(err))
            if str(err) == "Input data was truncated":
                raise PieceError(f"truncated: the input ends inside {self.key}, after "
                                 f"{self.items_read:,} complete items") from None
            if trailing is None:
                raise self._located(err) from None
            end = int(trailing[1]) - 1  # msgspec counts the byte it stopped at
            items, tail = self._decode_items(text[:end]), text[end:]
        except (msgspec.ValidationError, RecursionError) as err:
            raise self._located(err) from None
        self.document = self.decode_document(self.head + b"[]" + tail)
        return items

    def _decode_items(self, text: bytes) -> list:
        try:
            return self.decode_items(text)
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise self._located(err) from None

    def _numbered(self, items: list) -> tuple[int, list]:
        first = self.items_read
        self.items_read += len(items)
        return first, items

    def _located(self, err: Exception) -> Exception:
        """err from decoding `[` + the buffer: its item index and byte offset made
        absolute."""
        message = PIECE_PATH.sub(lambda m: f"`$.{self.key}[{self.items_read + int(m[1])}]", str(err))
        message = BYTE_OFFSET.sub(lambda m: f"(byte {self.offset + int(m[1]) - 1})", message)
        return type(err)(message)

    def _consume(self, count: int) -> None:
        self.buffer = self.buffer[count:]
        self.offset += count

    def _fill(self) -> None:
        while not self.eof and len(self.buffer) < self.chunk_bytes:
            self._read_more()

    def _read_more(self) -> None:
        if len(self.buffer) > self.max_uncut:
            raise PieceError(f"an item of {self.key} longer than {self.max_uncut >> 20} MiB, "
                             "or text that is not JSON")
        data = self.read(self.chunk_bytes)
        if data:
            self.buffer += data
        else:
            self.eof = True
