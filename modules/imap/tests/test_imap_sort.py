"""SORT and THREAD (RFC 5256) with a real petreld over the raw client. The
six messages below were worked through by hand against the RFC's rules
(base subjects, sent dates in UTC with INTERNALDATE standing in for a
missing Date:, addr-mailbox keys, ties by sequence number, the
REFERENCES steps); each expected answer is that hand result."""

import base64

import pytest

from imap_helpers import Imap, ImapServer

# (internal date, header lines); the comments give the keys worked out.
MESSAGES = [
    # 1: base "hello" (reply), from zed, to amy, cc xavier, Jan 3.
    ("10-Jan-2020 00:00:00 +0000",
     "From: Zed <zed@x.test>\r\nTo: amy@x.test\r\nCc: xavier@x.test\r\n"
     "Subject: Re: hello\r\nDate: Fri, 03 Jan 2020 12:00:00 +0000\r\n"
     "Message-ID: <b@x.test>\r\nReferences: <a@x.test>\r\n"),
    # 2: base "hello", from bob, no To, Jan 1 10:00 UTC.
    ("09-Jan-2020 00:00:00 +0000",
     "From: bob@x.test\r\nSubject: hello\r\nDate: Wed, 01 Jan 2020 10:00:00 +0000\r\n"
     "Message-ID: <a@x.test>\r\n"),
    # 3: base "apple" ([list] blob, "Fwd:"), display name Aaron, Jan 2.
    ("08-Jan-2020 00:00:00 +0000",
     "From: \"Aaron\" <carl@x.test>\r\nTo: dave@x.test\r\nSubject: [list] Fwd: apple\r\n"
     "Date: Thu, 02 Jan 2020 00:00:00 +0000\r\nMessage-ID: <c@x.test>\r\n"),
    # 4: base "Apple" (encoded "Re:", "(fwd)" trailer), no Date: so its
    # sent date is the internal date, Jan 5; In-Reply-To 3.
    ("05-Jan-2020 00:00:00 +0000",
     "From: amy@x.test\r\nSubject: =?UTF-8?Q?Re=3A_Apple?= (fwd)\r\n"
     "Message-ID: <d@x.test>\r\nIn-Reply-To: <c@x.test>\r\n"),
    # 5: base "zebra", Jan 1 05:00 -0500 = 10:00 UTC, same as 2;
    # References 2 then 1.
    ("07-Jan-2020 00:00:00 +0000",
     "From: bob@x.test\r\nTo: bob@x.test\r\nSubject: zebra\r\n"
     "Date: Wed, 01 Jan 2020 05:00:00 -0500\r\nMessage-ID: <e@x.test>\r\n"
     "References: <a@x.test>\r\n <b@x.test>\r\n"),
    # 6: base "apple" (reply), from fay, to eve, Jan 4, no references.
    ("06-Jan-2020 00:00:00 +0000",
     "From: fay@x.test\r\nTo: eve@x.test\r\nSubject: Re: apple\r\n"
     "Date: Sat, 04 Jan 2020 00:00:00 +0000\r\nMessage-ID: <f@x.test>\r\n"),
]


@pytest.fixture
def srv(make_instance, env):
    return ImapServer(make_instance, env, "imapsort").start()


def filled(srv):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr("alice"), starttls=False)
    for i, (when, hdr) in enumerate(MESSAGES):
        raw = (hdr + "\r\n" + "x" * (10 * (7 - i)) + "\r\n").encode()
        _, done = c.run(b'APPEND INBOX "%s" {%d+}\r\n' % (when.encode(), len(raw)) + raw)
        assert done.startswith("OK"), done
    c.ok("SELECT INBOX")
    return c


def sort(c, text):
    untagged = c.ok(text)
    assert len(untagged) == 1 and untagged[0].startswith(b"* "), untagged
    return untagged[0].decode()


def test_capabilities(srv):
    c = filled(srv)
    caps = set(c.ok("CAPABILITY")[0].split())
    assert {b"SORT", b"SORT=DISPLAY", b"ESORT", b"THREAD=ORDEREDSUBJECT",
            b"THREAD=REFERENCES"} <= caps


def test_sort_each_criterion(srv):
    c = filled(srv)
    assert sort(c, "SORT (SUBJECT) UTF-8 ALL") == "* SORT 3 4 6 1 2 5"
    assert sort(c, "SORT (SUBJECT DATE) UTF-8 ALL") == "* SORT 3 6 4 2 1 5"
    assert sort(c, "SORT (REVERSE SUBJECT) UTF-8 ALL") == "* SORT 5 1 2 3 4 6"
    assert sort(c, "SORT (FROM) UTF-8 ALL") == "* SORT 4 2 5 3 6 1"
    assert sort(c, "SORT (DATE) UTF-8 ALL") == "* SORT 2 5 3 1 6 4"
    assert sort(c, "SORT (ARRIVAL) US-ASCII ALL") == "* SORT 4 6 5 3 2 1"
    assert sort(c, "SORT (REVERSE ARRIVAL) UTF-8 ALL") == "* SORT 1 2 3 5 6 4"
    assert sort(c, "SORT (TO) UTF-8 ALL") == "* SORT 2 4 1 5 3 6"
    assert sort(c, "SORT (CC) UTF-8 ALL") == "* SORT 2 3 4 5 6 1"
    assert sort(c, "SORT (DISPLAYFROM) UTF-8 ALL") == "* SORT 3 4 2 5 6 1"
    # Bodies shrink from message 1 to 6, headers differ: sizes by hand
    # would be brittle, so the answer is checked against RFC822.SIZE.
    sizes = {}
    for line in c.ok("FETCH 1:* (RFC822.SIZE)"):
        parts = line.split()
        sizes[int(parts[1])] = int(parts[-1].rstrip(b")"))
    want = sorted(sizes, key=lambda n: (sizes[n], n))
    assert sort(c, "SORT (SIZE) UTF-8 ALL") == "* SORT " + " ".join(map(str, want))
    assert sort(c, "SORT (FROM REVERSE DATE) UTF-8 ALL") == "* SORT 4 2 5 3 6 1"


def test_sort_with_search_keys_and_uid(srv):
    c = filled(srv)
    assert sort(c, "SORT (SUBJECT) UTF-8 FROM bob") == "* SORT 2 5"
    assert sort(c, "SORT (DATE) UTF-8 SUBJECT apple") == "* SORT 3 6 4"
    c.ok("STORE 2 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    # UIDs 1,3,4,5,6 are sequence numbers 1..5 now.
    assert sort(c, "SORT (SUBJECT) UTF-8 ALL") == "* SORT 2 3 5 1 4"
    assert sort(c, "UID SORT (SUBJECT) UTF-8 ALL") == "* SORT 3 4 6 1 5"
    # SORT takes "$" like SEARCH.
    c.ok("SEARCH RETURN (SAVE) FROM bob")
    assert sort(c, "UID SORT (ARRIVAL) UTF-8 $") == "* SORT 5"
    assert sort(c, "SORT (SUBJECT) UTF-8 DELETED") == "* SORT"


def test_esort(srv):
    c = filled(srv)
    # RFC 5267: MIN and MAX are first and last in sort order, ALL keeps it.
    line = sort(c, "SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL")
    assert line == f'* ESEARCH (TAG "a{c.n:03d}") MIN 3 MAX 5 ALL 3:4,6,1:2,5 COUNT 6'
    line = sort(c, "UID SORT RETURN (SAVE MIN) (DATE) UTF-8 ALL")
    assert line == f'* ESEARCH (TAG "a{c.n:03d}") UID MIN 2'
    assert c.ok("SEARCH $") == [b"* SEARCH 2"]
    assert c.ok("SORT RETURN (SAVE) (REVERSE ARRIVAL) UTF-8 FROM bob") == []
    assert c.ok("SEARCH $") == [b"* SEARCH 2 5"]
    assert c.ok("SORT RETURN () (SUBJECT) UTF-8 DELETED") == \
        [f'* ESEARCH (TAG "a{c.n:03d}")'.encode()]
    _, done = c.run("SORT RETURN (SAVE) (NOSUCH) UTF-8 ALL")
    assert done.startswith("BAD"), done
    assert c.ok("SEARCH $") == [b"* SEARCH"]
    _, done = c.run("SORT RETURN (BOGUS) (SUBJECT) UTF-8 ALL")
    assert done.startswith("BAD"), done


def test_sort_errors(srv):
    c = filled(srv)
    for bad in ("SORT SUBJECT UTF-8 ALL", "SORT () UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL",
                "SORT (SUBJECT REVERSE) UTF-8 ALL", "SORT (NOSUCH) UTF-8 ALL",
                "SORT (SUBJECT) UTF-8", "SORT (SUBJECT)", "THREAD NOSUCH UTF-8 ALL",
                "THREAD REFERENCES UTF-8"):
        _, done = c.run(bad)
        assert done.startswith("BAD"), (bad, done)
    _, done = c.run("SORT (SUBJECT) KOI8-R ALL")
    assert done.startswith("NO [BADCHARSET"), done


def test_thread_orderedsubject(srv):
    c = filled(srv)
    assert sort(c, "THREAD ORDEREDSUBJECT UTF-8 ALL") == "* THREAD (2 1)(5)(3 (6)(4))"
    assert sort(c, "UID THREAD ORDEREDSUBJECT UTF-8 NOT SUBJECT zebra") == \
        "* THREAD (2 1)(3 (6)(4))"


def test_thread_references(srv):
    c = filled(srv)
    # 2 <- 1 <- 5 by References; 3 <- 4 by In-Reply-To; 6 shares 3's base
    # subject and both are replies: a dummy holds the two.
    assert sort(c, "THREAD REFERENCES UTF-8 ALL") == "* THREAD (2 1 5)((3 4)(6))"
    # Without 1, 5 still hangs under 2 through the dummy <b@x.test>,
    # which is pruned.
    assert sort(c, "THREAD REFERENCES UTF-8 NOT UID 1") == "* THREAD (2 5)((3 4)(6))"
    c.ok("STORE 1 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    assert sort(c, "THREAD REFERENCES UTF-8 ALL") == "* THREAD (1 4)((2 3)(5))"
    assert sort(c, "UID THREAD REFERENCES UTF-8 ALL") == "* THREAD (2 5)((3 4)(6))"


def test_sort_long_and_mixed_case_keys(srv):
    """Keys alike in their first 8 bytes, keys that are prefixes of
    others, case differences (ASCII folded, i;unicode-casemap) and
    non-ASCII after a common start: the order is the byte order of the
    upper-cased UTF-8, ties by sequence number."""
    subjects = ["Quarterly report B", "quarterly report a", "Quarterly", "QUARTERLY REPORT A2",
                "quarterly report", "Quarterlz", "Quarterly report b", "quarterly r\u00e9port",
                "Quarterl", "Q", "quarterly report a"]
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr("alice"), starttls=False)
    for s in subjects:
        enc = "=?UTF-8?B?" + base64.b64encode(s.encode()).decode() + "?="
        raw = f"From: a@x.test\r\nSubject: {enc}\r\n\r\nx\r\n".encode()
        _, done = c.run(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        assert done.startswith("OK"), done
    c.ok("SELECT INBOX")
    want = sorted(range(1, len(subjects) + 1), key=lambda n: (subjects[n - 1].encode().upper(), n))
    assert sort(c, "SORT (SUBJECT) UTF-8 ALL") == "* SORT " + " ".join(map(str, want))
    want = sorted(range(1, len(subjects) + 1),
                  key=lambda n: (tuple(-b for b in subjects[n - 1].encode().upper()) + (1,), n))
    assert sort(c, "SORT (REVERSE SUBJECT) UTF-8 ALL") == "* SORT " + " ".join(map(str, want))
