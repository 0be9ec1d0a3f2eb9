#!/usr/bin/env python3
"""SEARCH BODY over one large mailbox with and without the full-text index
(docs/fts.md), on this machine, over loopback.

    PETREL_PREFIX=_build/dev/inst PETREL_TEST_MODULES=_build/dev/tests/modules/.libs \
        python3 bench/fts_bench.py [--msgs 20000] [--repeats 5]

A Petrel instance made as the integration tests make theirs (no root
needed); bigbox.py's messages APPENDed to one INBOX (pipelined, LITERAL+).
Then, with the storage's `fts = true`: the first UID SEARCH BODY (which
indexes every message: the catch-up, reported as "index build"), then
BODY with a rare, a common and an absent word, REPEATS times each
(median). Then the same after a restart with `fts = false` (the scan).
Prints one JSON line per measure and a Markdown table.
"""

import argparse
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TOP / "tests" / "integration"), str(TOP / "modules" / "imap" / "tests"),
                str(TOP / "bench")]

import bigbox  # noqa: E402
from harness import Env, Instance  # noqa: E402
from imap_helpers import Imap, ImapServer  # noqa: E402


def session(srv):
    c = Imap(srv.imaps_port, tls=True, timeout=600)
    c.login(srv.addr("alice"), starttls=False)
    return c


def append(srv, msgs, batch=200):
    c = session(srv)
    for k in range(0, len(msgs), batch):
        tags = []
        for raw in msgs[k:k + batch]:
            tag = c.tag()
            tags.append(tag)
            c.send(tag.encode() + b" APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
        for tag in tags:
            _, done = c.wait(tag)
            assert done.startswith("OK"), done
    c.ok("LOGOUT")


def timed_search(c, word):
    t = time.perf_counter()
    untagged, done = c.run(f"UID SEARCH BODY {word}")
    ms = (time.perf_counter() - t) * 1000
    assert done.startswith("OK"), done
    hits = [ln for ln in untagged if ln.startswith(b"* SEARCH")][0].split()[2:]
    return ms, len(hits)


def measure(srv, label, repeats, first):
    c = session(srv)
    c.ok("SELECT INBOX")
    out = []
    if first:
        ms, n = timed_search(c, bigbox.RARE_WORD)
        out.append(dict(index=label, word="first (index build)", ms=round(ms, 1), hits=n))
    for name, word in (("rare", bigbox.RARE_WORD), ("common", bigbox.COMMON_WORD),
                       ("absent", bigbox.ABSENT_WORD)):
        runs = [timed_search(c, word) for _ in range(repeats)]
        out.append(dict(index=label, word=name, ms=round(statistics.median(r[0] for r in runs), 1),
                        hits=runs[0][1]))
    c.ok("LOGOUT")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--msgs", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    env = Env()
    base = pathlib.Path(tempfile.mkdtemp(prefix="petrel-ftsbench-", dir="/tmp"))
    base.chmod(0o755)
    srv = ImapServer(lambda name, **kw: Instance(env, base, env.test_modules, name=name, **kw), env,
                     "ftsbench", storage=dict(fsync=False, index_sync="off", fts=True,
                                                fts_catchup="1h")).start()
    try:
        t = time.perf_counter()
        append(srv, list(bigbox.messages(args.msgs, "alice", srv.domain)))
        print(f"appended {args.msgs} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        rows = measure(srv, "fts", args.repeats, True)
        srv.stop()
        srv.inst.set_module_settings("storage", fsync=False, index_sync="off", fts=False)
        srv.start()
        rows += measure(srv, "scan", max(1, args.repeats // 2), False)
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"| SEARCH BODY, {args.msgs} messages | ms | hits |\n|---|---|---|")
    for r in rows:
        print(json.dumps(dict(msgs=args.msgs, **r)), file=sys.stderr)
        print(f"| {r['index']}: {r['word']} | {r['ms']} | {r['hits']} |")


if __name__ == "__main__":
    main()
