"""A large, realistic mailbox for the issue 15 benchmarks: threads with
References and In-Reply-To, reply and forward subjects, list tags, senders
with RFC 2047 names, dates out of arrival order, and bodies in several
charsets and transfer encodings, some HTML. Deterministic for a seed, so
that Petrel and Dovecot get the same bytes.

Needles for SEARCH BODY: RARE_WORD is in about one message in 10,000,
COMMON_WORD in about half, ABSENT_WORD in none."""

import base64
import email.utils
import quopri
import random

RARE_WORD = "quagmirethistle"
COMMON_WORD = "meeting"
ABSENT_WORD = "nowherewordzz"

_SYLLABLES = ("ka", "lo", "mi", "ren", "tas", "vo", "dri", "ne", "sul", "por", "an", "ex", "zu",
              "bel", "cor", "fin", "gal", "hul", "ist", "jor")
_NAMES = ("Ann Smith", "Bob Jones", "Zoë Müller", "José Núñez", "Ωmega Team", "Иван Петров",
          "Chen Wei", "Priya Nair", "Ólafur Jónsson", "Li Na", "Marta Kowalska", "Sam Lee")
_TAGS = ("", "", "", "[dev] ", "[ops] ", "[announce] ")
_PREFIXES = ("Re: ", "RE: ", "Fwd: ", "re: ", "Re: Re: ", "Fw: ")


def _word(rng):
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))


def _encoded_name(name):
    if name.isascii():
        return f'"{name}"'
    return "=?UTF-8?B?" + base64.b64encode(name.encode()).decode() + "?="


def _text(rng, n_words, i):
    words = [_word(rng) for _ in range(n_words)]
    if rng.random() < 0.5:
        words[rng.randrange(len(words))] = "meeting"
    if i % 10000 == 7:
        words[rng.randrange(len(words))] = RARE_WORD
    lines, line = [], []
    for w in words:
        line.append(w)
        if len(line) == 11:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


def _body(rng, i):
    """(content headers, body bytes) in one of several encodings."""
    text = _text(rng, rng.randint(150, 450), i)
    kind = rng.random()
    if kind < 0.55:
        return "Content-Type: text/plain; charset=us-ascii\r\n", text.replace("\n", "\r\n").encode()
    if kind < 0.70:
        t = text.replace("a", "ä", 3)
        qp = quopri.encodestring(t.encode("utf-8")).replace(b"\n", b"\r\n")
        return ("Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n"), qp
    if kind < 0.80:
        b = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
        return ("Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: base64\r\n"), b
    if kind < 0.90:
        t = text.replace("e", "é", 2)
        return ("Content-Type: text/plain; charset=iso-8859-1\r\n"
                "Content-Transfer-Encoding: 8bit\r\n"), t.replace("\n", "\r\n").encode("latin-1")
    html = "<html><body><p>" + text.replace("\n", "</p>\n<p>") + "</p></body></html>\n"
    boundary = f"b{i:06d}"
    parts = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
             + text.replace("\n", "\r\n")
             + f"\r\n--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n"
             + html.replace("\n", "\r\n") + f"\r\n--{boundary}--\r\n")
    return f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n', parts.encode()


def messages(n, user, domain, seed=15):
    """n messages (bytes) for user@domain, in arrival order."""
    rng = random.Random(seed)
    threads = []  # [base subject, [message-ids]]
    t0 = 1767225600  # 2026-01-01
    for i in range(n):
        if threads and rng.random() < 0.6:
            th = threads[rng.randrange(max(0, len(threads) - 500), len(threads))]
            subject = rng.choice(_PREFIXES) + th[0]
            refs = th[1][-rng.randint(1, min(5, len(th[1]))):]
        else:
            th = [rng.choice(_TAGS) + " ".join(_word(rng) for _ in range(rng.randint(2, 6))), []]
            threads.append(th)
            subject, refs = th[0], []
        msgid = f"<{i}.{seed}@bigbox.test>"
        th[1].append(msgid)
        sender = rng.choice(_NAMES)
        date = t0 + i * 60 + rng.randint(-3600, 3600)
        stamp = email.utils.formatdate(date, localtime=False)
        ctype, body = _body(rng, i)
        head = (f"From: {_encoded_name(sender)} <s{rng.randrange(300)}@example.test>\r\n"
                f"To: <{user}@{domain}>\r\n"
                + (f"Cc: <c{rng.randrange(50)}@example.test>\r\n" if rng.random() < 0.3 else "")
                + f"Subject: {subject}\r\nDate: {stamp}\r\nMessage-ID: {msgid}\r\n"
                + (f"In-Reply-To: {refs[-1]}\r\nReferences: {' '.join(refs)}\r\n" if refs else "")
                + f"MIME-Version: 1.0\r\n{ctype}\r\n")
        yield head.encode("utf-8") + body
