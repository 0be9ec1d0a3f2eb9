"""The storage module loads in petreld, registers its service, resolves its
root below data_dir, and refuses bad settings with the file and setting."""

import re

import pytest

from harness import service_conf


def storage_conf(env, **settings):
    so = env.prefix / "lib" / "petrel" / "modules" / "storage"
    return service_conf("storage", file=str(so), enabled=True, settings=settings)


def test_storage_module_starts(make_instance, env):
    inst = make_instance("storage-start")
    inst.write_confd("10-storage.conf", storage_conf(env, fsync=False))
    inst.start()
    try:
        inst.wait_log(r"storage: maildir store at \S+/mail \(index sync full\)")
        inst.wait_log(r"fsync = false")
    finally:
        inst.stop()


@pytest.mark.parametrize("name,value", [("index_sync", "sometimes"), ("index_mmap", "2G"),
                                        ("index_mmap", "-1")])
def test_storage_module_refuses_bad_setting(make_instance, env, name, value):
    inst = make_instance("storage-bad")
    inst.write_confd("10-storage.conf", storage_conf(env, **{name: value}))
    rc, out = inst.check_config()
    assert rc != 0, out
    assert re.search(rf"10-storage\.conf.*{name}", out), out
