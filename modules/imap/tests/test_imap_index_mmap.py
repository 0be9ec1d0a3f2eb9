"""The store's index_mmap setting, seen from an IMAP session: by default a
folder index is read through mmap (the file shows in petreld's memory
map once a session has read it), with 0 it is read with pread only.
(Its bounds: test_storage_module.py.)"""

import pytest

from imap_helpers import ImapServer
from smtp_helpers import message


def index_mapped(pid):
    with open(f"/proc/{pid}/maps") as f:
        return any(line.rstrip().endswith("/petrel-index.sqlite") for line in f)


@pytest.mark.parametrize("size,mapped", [(None, True), ("0", False)], ids=["default", "off"])
def test_index_read_through_mmap(make_instance, env, size, mapped):
    storage = dict(fsync=False, index_sync="off")
    if size is not None:
        storage["index_mmap"] = size
    srv = ImapServer(make_instance, env, "imap-mmap", storage=storage).start()
    address = srv.addr("alice")
    srv.deliver(address, *[message(f"note {i}", to=address).encode() for i in range(3)])
    c = srv.imap(address)
    c.select("INBOX")
    typ, data = c.search(None, "ALL")
    assert typ == "OK" and data == [b"1 2 3"], data
    typ, data = c.sort("(SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"1 2 3"], data
    assert index_mapped(srv.inst.pid) == mapped
    c.logout()

