"""A generated corpus for the full-text index tests and bench: messages in
mixed charsets and encodings (UTF-8 8-bit, Latin-1 quoted-printable,
KOI8-R and windows-1252 base64, RFC 2047 subjects, HTML with entities and
scripts, multipart/alternative, attachments with RFC 2231 names, attached
messages, stray bytes that are not UTF-8), and the needles to search for.
Deterministic for a seed.

    python3 modules/imap/tests/fts_corpus.py 20000 /tmp/corpus   # writes N .eml files
"""

import base64
import quopri
import random
import sys

WORDS = ["albatross", "pelican", "cormorant", "gannet", "petrel", "storm", "harbour",
         "invoice", "meeting", "report", "budget", "café", "naïve", "grüße", "Straße",
         "Ärger", "привет", "мир", "сообщение", "καλημέρα", "κόσμε", "ΑΡΧΕΙΟ", "日本語",
         "foo-bar", "a.b@c.d", "50%", "C++", "x=y", "(paren)", "\"quoted\"", "NEAR(",
         "AND", "OR", "NOT", "col:umn", "star*", "^caret", "tab\there", "€uro"]

HTML_EXTRA = ["&amp;", "&lt;b&gt;", "&eacute;t&eacute;", "&#x263A;", "&nbsp;", "&bogus;"]

NEEDLES = ["albatross", "ALBATROSS", "pel", "petrel storm", "storm harbour", "café", "CAFÉ",
           "grüße", "GRÜSSE", "straße", "ärger", "привет мир", "ПРИВЕТ", "при", "καλημέρα",
           "ΚΑΛΗΜΈΡΑ", "αρχείο", "日本語", "本語", "foo-bar", "a.b@c", "50%", "c++", "x=y",
           "(paren)", "\"quoted\"", "near(", "and or", "col:umn", "star*", "^caret", "€uro",
           "été", "☺", "<b>", "script", "hidden", "résumé", "report.pdf", "inner", "sender",
           "subject", "ject: ", "from: ", "x-tag", "xy", "z", "ga", "\ufffd", "nomatchatall",
           "ann", "ing", "ort", "tab\there", "e b", "s p", "orm h"]


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def header(rng, i, ctype, cte=None, extra=""):
    subj = words(rng, 3)
    kind = rng.randrange(3)
    if kind == 0:
        subj_h = "=?UTF-8?B?" + base64.b64encode(subj.encode()).decode() + "?="
    elif kind == 1:
        subj_h = "=?UTF-8?Q?" + quopri.encodestring(subj.encode(), header=True).decode() + "?="
    else:
        subj_h = subj.encode("ascii", "replace").decode()
    name = rng.choice(["Jörg Müller", "Renée", "Иван", "Alice", "Bob Sender"])
    name_h = "=?UTF-8?Q?" + quopri.encodestring(name.encode(), header=True).decode() + "?="
    h = (f"From: {name_h} <user{i % 50}@example.org>\r\n"
         f"To: rcpt{i % 7}@example.net\r\n"
         f"Subject: {subj_h}\r\n"
         f"X-Tag: {rng.choice(WORDS)}\r\n"
         f"Date: Mon, {1 + i % 28} Jul 2024 10:00:00 +0200\r\n"
         "MIME-Version: 1.0\r\n"
         f"Content-Type: {ctype}\r\n")
    if cte:
        h += f"Content-Transfer-Encoding: {cte}\r\n"
    return h + extra + "\r\n"


def text_body(rng, charset, cte, html=False):
    t = words(rng, rng.randrange(5, 40))
    if html:
        t = (f"<html><head><style>.hidden{{}}</style><script>var hidden=1;</script></head>"
             f"<body><p>{t}</p><!-- hidden --><b>{rng.choice(WORDS)}</b>"
             f"{rng.choice(HTML_EXTRA)}</body></html>")
    raw = t.encode(charset, "replace")
    if cte == "base64":
        return base64.encodebytes(raw).decode().replace("\n", "\r\n")
    if cte == "quoted-printable":
        return quopri.encodestring(raw).decode().replace("\n", "\r\n")
    return raw.decode("latin-1")  # the bytes as they are, 8bit


def message(rng, i):
    kind = i % 8
    if kind in (0, 1):
        cs, cte = [("utf-8", "8bit"), ("iso-8859-1", "quoted-printable")][kind]
        return header(rng, i, f"text/plain; charset={cs}", cte) + text_body(rng, cs, cte)
    if kind == 2:
        return (header(rng, i, "text/plain; charset=koi8-r", "base64")
                + text_body(rng, "koi8-r", "base64"))
    if kind == 3:
        return (header(rng, i, "text/html; charset=windows-1252", "quoted-printable")
                + text_body(rng, "windows-1252", "quoted-printable", html=True))
    if kind == 4:
        b = f"alt{i}"
        return (header(rng, i, f"multipart/alternative; boundary=\"{b}\"")
                + f"preamble hidden\r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                + text_body(rng, "utf-8", "8bit")
                + f"\r\n--{b}\r\nContent-Type: text/html; charset=utf-8\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n"
                + text_body(rng, "utf-8", "base64", html=True) + f"\r\n--{b}--\r\n")
    if kind == 5:
        b = f"mix{i}"
        fname = rng.choice(["R%C3%A9sum%C3%A9.pdf", "report.pdf", "%E6%97%A5%E6%9C%AC.txt"])
        return (header(rng, i, f"multipart/mixed; boundary=\"{b}\"")
                + f"--{b}\r\nContent-Type: text/plain\r\n\r\n" + words(rng, 6)
                + f"\r\n--{b}\r\nContent-Type: application/pdf\r\n"
                f"Content-Disposition: attachment; filename*=UTF-8''{fname}\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n"
                + base64.b64encode(words(rng, 5).encode()).decode()
                + f"\r\n--{b}--\r\n")
    if kind == 6:
        b = f"fwd{i}"
        return (header(rng, i, f"multipart/mixed; boundary=\"{b}\"")
                + f"--{b}\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                f"--{b}\r\nContent-Type: message/rfc822\r\n\r\n"
                + "From: Inner Sender <inner@example.org>\r\nSubject: inner "
                + words(rng, 2) + "\r\n\r\n" + words(rng, 8) + f"\r\n--{b}--\r\n")
    # Stray bytes that are not UTF-8 in a part that claims no charset.
    body = words(rng, 6).encode() + b" \xe9t\xe9 \xff\xfe " + words(rng, 3).encode()
    return header(rng, i, "text/plain", "8bit") + body.decode("latin-1")


def generate(count, seed=15):
    """count messages as bytes (CRLF)."""
    rng = random.Random(seed)
    return [_encode(message(rng, i)) for i in range(count)]


def _encode(text):
    # Characters up to U+00FF stand for bytes (8-bit bodies); the rest is UTF-8.
    out = bytearray()
    for ch in text:
        out += bytes([ord(ch)]) if ord(ch) < 256 else ch.encode()
    return bytes(out)


if __name__ == "__main__":
    import pathlib
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "fts-corpus")
    out.mkdir(parents=True, exist_ok=True)
    for k, raw in enumerate(generate(n)):
        (out / f"{k:06d}.eml").write_bytes(raw)
