"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and STATUS=SIZE
(RFC 8438) over real exchanges: selection options alone and combined,
several patterns, subscribed names that do not exist (\\NonExistent),
RECURSIVEMATCH with CHILDINFO on the hierarchy of RFC 5258 section 5,
a STATUS after each selectable mailbox and none after a \\NonExistent
one, SIZE equal to the sum of FETCH RFC822.SIZE, DELETED and
DELETED-STORAGE, and bad forms answered BAD with a log line, also by a
crowd of sessions at once."""

import re
import threading

import pytest

from imap_helpers import Imap, ImapServer
from smtp_helpers import message

CAPS = (b"LIST-EXTENDED", b"LIST-STATUS", b"STATUS=SIZE")


@pytest.fixture
def srv(make_instance, env):
    # the crowd's 30 logins of one account at once are rate-limited by the
    # auth module's defaults (seen in its log), which this test is not about
    return ImapServer(make_instance, env, "imaplistx", imap_service={"max_errors": 200},
                      imap_settings={"max_connections_per_user": 50},
                      auth=dict(max_failures_per_account=1000, max_failures_per_ip=1000)).start()


def session(srv, user="alice"):
    c = Imap(srv.imaps_port, tls=True)
    c.login(srv.addr(user), starttls=False)
    return c


LIST_RE = re.compile(rb'^\* LIST \(([^)]*)\) "/" ("[^"]*"|\S+)(?: (.*))?$')


def listed(untagged):
    """[(name, [attributes], extended data or None)] of the LIST lines, in order."""
    out = []
    for line in untagged:
        if not line.startswith(b"* LIST "):
            continue
        m = LIST_RE.match(line)
        assert m, line
        name = m.group(2).decode().strip('"')
        ext = m.group(3).decode() if m.group(3) is not None else None
        out.append((name, m.group(1).decode().split(), ext))
    return out


def names(untagged):
    return {n: (attrs, ext) for n, attrs, ext in listed(untagged)}


def fruit_tree(c):
    """RFC 5258 section 5's hierarchy: Fruit/Peach is subscribed but gone."""
    for name in ("Fruit", "Fruit/Apple", "Fruit/Banana", "Fruit/Peach", "Tofu", "Vegetable",
                 "Vegetable/Broccoli", "Vegetable/Corn"):
        c.ok(f"CREATE {name}")
    for name in ("Fruit/Banana", "Fruit/Peach", "Tofu", "Vegetable", "Vegetable/Broccoli"):
        c.ok(f"SUBSCRIBE {name}")
    c.ok("DELETE Fruit/Peach")


def test_capabilities_advertised(srv):
    c = Imap(srv.imap_port)
    caps = b" ".join(c.ok("CAPABILITY"))
    for cap in CAPS:
        assert cap in caps.split(), caps
    c.close()


def test_subscribed_selection_and_nonexistent(srv):
    c = session(srv)
    fruit_tree(c)
    got = listed(c.ok('LIST (SUBSCRIBED) "" "*"'))
    subscribed = {n: a for n, a, _ in got}
    assert "Fruit" not in subscribed and "Fruit/Apple" not in subscribed, got
    for name in ("Fruit/Banana", "Tofu", "Vegetable", "Vegetable/Broccoli", "INBOX"):
        assert "\\Subscribed" in subscribed[name], got
        assert "\\NonExistent" not in subscribed[name], got
    assert set(subscribed["Fruit/Peach"]) == {"\\NonExistent", "\\Subscribed"}, got
    # in name order, as the store keeps them
    assert [n for n, _, _ in got] == sorted(n for n, _, _ in got), got

    plain = names(c.ok('LIST "" "*"'))
    assert "Fruit/Peach" not in plain and "Fruit/Apple" in plain, plain
    assert not any("\\Subscribed" in a for a, _ in plain.values()), plain
    ret = names(c.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
    assert "Fruit/Peach" not in ret, ret
    assert "\\Subscribed" in ret["Tofu"][0] and "\\Subscribed" not in ret["Fruit"][0], ret
    # the empty option lists are the plain command
    assert names(c.ok('LIST () "" "*" RETURN ()')) == plain
    # REMOTE adds nothing here: no mailbox is on another server
    assert names(c.ok('LIST (REMOTE) "" "*"')) == plain
    assert names(c.ok('LIST (REMOTE SUBSCRIBED) "" "*"')) == names(
        c.ok('LIST (SUBSCRIBED) "" "*"'))
    c.ok("LOGOUT")


def test_recursivematch_childinfo_rfc5258_examples(srv):
    c = session(srv)
    fruit_tree(c)
    got = names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)'))
    assert got["Fruit"] == (["\\HasChildren"], '("CHILDINFO" ("SUBSCRIBED"))'), got
    assert got["Tofu"] == (["\\HasNoChildren", "\\Subscribed"], None), got
    assert got["Vegetable"] == (["\\HasChildren", "\\Subscribed"],
                                '("CHILDINFO" ("SUBSCRIBED"))'), got
    assert "Fruit/Banana" not in got and "Vegetable/Broccoli" not in got, got
    # with "*" every subscribed child is listed itself: no CHILDINFO, and
    # Fruit, not subscribed, is not listed
    star = names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"'))
    assert "Fruit" not in star and "Fruit/Apple" not in star, star
    assert all(ext is None for _, ext in star.values()), star
    assert set(star["Fruit/Peach"][0]) == {"\\NonExistent", "\\Subscribed"}, star
    # a subscribed name under parents that do not exist
    c.ok("SUBSCRIBE Moo/Baa/Oink")
    got = names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"'))
    assert got["Moo"] == (["\\NonExistent"], '("CHILDINFO" ("SUBSCRIBED"))'), got
    got = names(c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "Moo/%"'))
    assert got == {"Moo/Baa": (["\\NonExistent"], '("CHILDINFO" ("SUBSCRIBED"))')}, got
    # without RECURSIVEMATCH the parents are not listed
    assert "Moo" not in names(c.ok('LIST (SUBSCRIBED) "" "%"'))
    # SPECIAL-USE with RECURSIVEMATCH: a parent of a special-use folder
    c.ok("CREATE Box/Bin")
    special = names(c.ok('LIST (SPECIAL-USE RECURSIVEMATCH) "" "%" RETURN (SPECIAL-USE)'))
    assert "\\Trash" in special["Trash"][0] and special["Trash"][1] is None, special
    assert "Box" not in special and "Fruit" not in special, special
    c.ok("LOGOUT")


def test_several_patterns_and_special_use(srv):
    c = session(srv)
    fruit_tree(c)
    got = names(c.ok('LIST "" ("Fruit/%" "Veg*" "INBOX") RETURN (CHILDREN SPECIAL-USE)'))
    assert set(got) == {"Fruit/Apple", "Fruit/Banana", "Vegetable", "Vegetable/Broccoli",
                        "Vegetable/Corn", "INBOX"}, got
    # a name two patterns match is listed once
    untagged = c.ok('LIST "" ("Tofu" "T*" "%ofu")')
    assert [n for n, _, _ in listed(untagged)].count("Tofu") == 1, untagged
    special = names(c.ok('LIST (SPECIAL-USE) "" "*"'))
    assert set(special) == {"Drafts", "Sent", "Trash", "Junk", "Archive"}, special
    both = names(c.ok('LIST (SPECIAL-USE SUBSCRIBED) "" "*"'))
    assert set(both) == set(special), both  # the special folders start subscribed
    c.ok("UNSUBSCRIBE Junk")
    both = names(c.ok('LIST (SPECIAL-USE SUBSCRIBED) "" "*"'))
    assert set(both) == set(special) - {"Junk"}, both
    c.ok("LOGOUT")


def status_of(line):
    m = re.match(rb'^\* STATUS ("[^"]*"|\S+) \(([^)]*)\)$', line)
    assert m, line
    words = m.group(2).decode().split()
    return m.group(1).decode().strip('"'), dict(zip(words[::2], map(int, words[1::2])))


def test_list_status_follows_each_selectable_mailbox(srv):
    srv.deliver(srv.addr("alice"), message("one").encode(), message("two", body="x" * 500).encode())
    c = session(srv)
    fruit_tree(c)
    c.ok("APPEND Fruit/Apple (\\Seen) {5+}\r\nabc\r\n")
    c.ok("SUBSCRIBE Moo/Baa")
    untagged = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "*" '
                    'RETURN (STATUS (MESSAGES UNSEEN SIZE UIDNEXT))')
    lists = 0
    for i, line in enumerate(untagged):
        if not line.startswith(b"* LIST "):
            assert line.startswith(b"* STATUS "), line
            continue
        lists += 1
        (name, attrs, _), = listed([line])
        follows = i + 1 < len(untagged) and untagged[i + 1].startswith(b"* STATUS ")
        if "\\NonExistent" in attrs:
            assert not follows, untagged
            continue
        assert follows, untagged
        sname, items = status_of(untagged[i + 1])
        assert sname == name and set(items) == {"MESSAGES", "UNSEEN", "SIZE", "UIDNEXT"}, line
        alone = status_of(c.ok(f'STATUS "{name}" (MESSAGES UNSEEN SIZE UIDNEXT)')[0])
        assert alone == (sname, items), (alone, items)
    assert lists >= 6, untagged
    st = dict(status_of(l) for l in untagged if l.startswith(b"* STATUS "))
    assert st["INBOX"]["MESSAGES"] == 2 and st["INBOX"]["UNSEEN"] == 2, st
    assert st["Fruit/Banana"] == {"MESSAGES": 0, "UNSEEN": 0, "SIZE": 0, "UIDNEXT": 1}, st
    # \NonExistent parents (Moo) and subscribed-but-gone names get none
    assert "Moo" not in st and "Fruit/Peach" not in st and "Moo/Baa" not in st, st
    # plain LIST with RETURN (STATUS) too, and a STATUS per mailbox only once
    untagged = c.ok('LIST "" ("Fruit/Apple" "Fruit/A*") RETURN (STATUS (MESSAGES UNSEEN))')
    assert untagged == [b'* LIST (\\HasNoChildren) "/" "Fruit/Apple"',
                        b'* STATUS "Fruit/Apple" (MESSAGES 1 UNSEEN 0)'], untagged
    c.ok("LOGOUT")


def test_status_size_is_the_sum_of_rfc822_size(srv):
    raws = [message(f"m{i}", body="y" * (100 * i) + "\r\n").encode() for i in range(5)]
    srv.deliver(srv.addr("alice"), *raws)
    c = session(srv)
    c.ok("SELECT INBOX")
    sizes = [int(m) for line in c.ok("FETCH 1:* RFC822.SIZE")
             for m in re.findall(rb"RFC822\.SIZE (\d+)", line)]
    assert len(sizes) == 5
    c.ok("UNSELECT")
    _, items = status_of(c.ok("STATUS INBOX (SIZE MESSAGES DELETED DELETED-STORAGE)")[0])
    assert items == {"SIZE": sum(sizes), "MESSAGES": 5, "DELETED": 0, "DELETED-STORAGE": 0}
    c.ok("SELECT INBOX")
    c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    _, items = status_of(c.ok("STATUS INBOX (DELETED DELETED-STORAGE SIZE)")[0])
    deleted = sizes[1] + sizes[3]
    assert items == {"DELETED": 2, "DELETED-STORAGE": (deleted + 1023) // 1024,
                     "SIZE": sum(sizes)}, items
    c.ok("EXPUNGE")
    _, items = status_of(c.ok("STATUS INBOX (SIZE DELETED)")[0])
    assert items == {"SIZE": sum(sizes) - deleted, "DELETED": 0}, items
    _, items = status_of(c.ok('LIST "" INBOX RETURN (STATUS (SIZE))')[1])
    assert items == {"SIZE": sum(sizes) - deleted}, items
    c.ok("LOGOUT")


BAD_LIST = (
    'LIST (RECURSIVEMATCH) "" "*"',            # alone (RFC 5258 section 3)
    'LIST (RECURSIVEMATCH REMOTE) "" "*"',     # only with REMOTE
    'LIST (BOGUS) "" "*"',
    'LIST (SUBSCRIBED (X)) "" "*"',
    'LIST "" "*" RETURN (BOGUS)',
    'LIST "" "*" RETURN (STATUS)',
    'LIST "" "*" RETURN (STATUS ())',
    'LIST "" "*" RETURN (STATUS (BOGUS))',
    'LIST "" "*" RETURN (STATUS (MESSAGES) STATUS (UNSEEN))',
    'LIST "" "*" RETURN',
    'LIST "" ()',
    'LIST () ""',
    'LSUB "" ("*")',
    'STATUS INBOX (SIZE BOGUS)',
    'STATUS INBOX ()',
)


def test_bad_forms_answered_bad_and_logged(srv):
    c = session(srv)
    for bad in BAD_LIST:
        untagged, done = c.run(bad)
        assert done.startswith("BAD") and untagged == [], (bad, done, untagged)
    c.ok('LIST "" "*"')
    c.ok("LOGOUT")
    log = srv.log()
    assert "refused (BAD): RECURSIVEMATCH needs another selection option" in log, log
    assert "refused (BAD): Unknown LIST return option" in log, log


def test_crowd_of_sessions_with_bad_list_forms(srv):
    crowd = 30
    results = [None] * crowd

    def one(i):
        try:
            c = session(srv)
            try:
                answers = [c.run(bad)[1][:3] for bad in BAD_LIST]
                good = c.run('LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES SIZE))')
                results[i] = (answers, good[1][:2], len(good[0]))
            finally:
                c.close()
        except Exception as e:  # kept for the report below
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(crowd)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in results:
        assert isinstance(r, tuple), results
        answers, good, n = r
        assert answers == ["BAD"] * len(BAD_LIST), r
        assert good == "OK" and n >= 2, r
    c = session(srv)
    c.ok("NOOP")
    c.ok("LOGOUT")
