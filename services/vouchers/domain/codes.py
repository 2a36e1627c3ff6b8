"""Voucher codes: short, typed by hand at a provider's desk, read aloud on the phone.

Eight characters from an alphabet without look-alikes (no 0/O, 1/I/L, U/V pairs
kept apart: U is left out) and a check character (Luhn mod N), so a mistyped
character or two swapped neighbours are caught before any look-up.
"""

from collections.abc import Sequence

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY_LENGTH = 8
_INDEX = {char: index for index, char in enumerate(ALPHABET)}


def check_character(body: str) -> str:
    """Luhn mod N check character of ``body`` (characters of ALPHABET)."""
    base = len(ALPHABET)
    factor = 2
    total = 0
    for char in reversed(body):
        addend = factor * _INDEX[char]
        factor = 1 if factor == 2 else 2
        total += addend // base + addend % base
    return ALPHABET[(base - total % base) % base]


def make_code(digits: Sequence[int]) -> str:
    """A code from ``BODY_LENGTH`` random numbers (each taken modulo the alphabet)."""
    if len(digits) != BODY_LENGTH:
        raise ValueError(f"servono {BODY_LENGTH} numeri casuali")
    body = "".join(ALPHABET[d % len(ALPHABET)] for d in digits)
    return body + check_character(body)


def normalize_code(text: str) -> str:
    """What a person typed, as stored: upper case, no spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -")


def is_valid_code(text: str) -> bool:
    code = normalize_code(text)
    if len(code) != BODY_LENGTH + 1 or any(ch not in _INDEX for ch in code):
        return False
    return check_character(code[:-1]) == code[-1]


def display_code(code: str) -> str:
    """Grouped for reading: 'ABCD-EFGH-K'."""
    return f"{code[:4]}-{code[4:8]}-{code[8:]}"
