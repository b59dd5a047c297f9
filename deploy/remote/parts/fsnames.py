import os
import re
import sys

_ENCODED_SURROGATE = re.compile(b"\xed[\xa0-\xbf][\x80-\xbf]")


def fs_name(text):
    """The file name ``text``, as JSON carried it, as this Python's file functions take it.

    The workstation reads names as Python 3 does (bytes that are not UTF-8
    held as U+DC80..U+DCFF, its surrogateescape), so every name comes back
    to the byte: on Python 3 whatever the locale's encoding, on Python 2 as
    bytes (its unicode names would be encoded as ASCII).
    """
    if isinstance(text, bytes):
        return text
    if sys.version_info[0] >= 3:
        return os.fsdecode(text.encode("utf-8", "surrogateescape"))
    try:
        return text.encode("ascii")
    except UnicodeError:
        pass
    out, index = [], 0
    while index < len(text):
        code = ord(text[index])
        if 0xD800 <= code <= 0xDBFF and index + 1 < len(text):   # a pair (narrow builds)
            out.append(text[index:index + 2].encode("utf-8"))
            index += 2
            continue
        if 0xDC80 <= code <= 0xDCFF:
            out.append(chr(code - 0xDC00))
        else:
            out.append(text[index].encode("utf-8"))
        index += 1
    return "".join(out)


def text_name(name):
    """A file name of this Python's file functions as JSON carries it (see ``fs_name``)."""
    if sys.version_info[0] >= 3:
        return os.fsencode(name).decode("utf-8", "surrogateescape")
    if not isinstance(name, bytes):
        return name
    try:
        text = name.decode("utf-8")
        if not _ENCODED_SURROGATE.search(name):
            return text
    except UnicodeError:
        pass
    out, index = [], 0
    while index < len(name):
        char = _utf8_char(name, index)
        if char is None:
            out.append(("\\udc%02x" % ord(name[index])).decode("unicode_escape"))
            index += 1
        else:
            out.append(char)
            index += len(char.encode("utf-8"))
    return u"".join(out)


def _utf8_char(name, index):
    """The character encoded at ``name[index:]``, or None where Python 3 sees a byte."""
    for width in (1, 2, 3, 4):
        piece = name[index:index + width]
        if _ENCODED_SURROGATE.match(piece):
            return None          # Python 2 decodes these; Python 3 calls them bytes
        try:
            return piece.decode("utf-8")
        except UnicodeError:
            continue
    return None


def said(exc):
    """What ``exc`` says, as JSON carries text (the file names in it by ``text_name``)."""
    return text_name(exc.args[0] if len(exc.args) == 1 else str(exc))
