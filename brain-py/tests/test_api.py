"""brain-plasma 0.3's API, call by call, with brain-plasma's behaviour."""

from __future__ import annotations

import datetime as dt
import functools
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import brain as brain_pkg
from brain import Brain
from brain.exceptions import (
    BrainClientDisconnectedError,
    BrainError,
    BrainNameNotExistError,
    BrainNamespaceNameError,
    BrainNamespaceNotExistError,
    BrainNamespaceRemoveDefaultError,
    BrainStorePathError,
    BrainUnpicklingError,
)


def test_brain_plasma_readme_example(default_store: str) -> None:
    # brain-plasma's README, verbatim but for the import; the store is
    # this test's own (through BRAIN_PATH or BRAIN_URL) instead of a plasma_store.
    from brain import Brain  # was: from brain_plasma import Brain

    brain = Brain()  # no plasma_store to start
    assert brain.url == default_store
    brain["this"] = "a text object"
    assert brain["this"] == "a text object"
    assert brain.names() == ["this"]
    del brain["this"]
    with pytest.raises(KeyError) as info:
        brain["this"]
    assert isinstance(info.value, BrainNameNotExistError)
    brain.set_namespace("newname")
    brain["this"] = "newname text object"
    brain.set_namespace("default")
    assert brain.names(namespace="all") == ["this"]
    # The object written in "newname" is there, untouched.
    brain.set_namespace("newname")
    assert brain["this"] == "newname text object"


def test_brain_plasmas_test_double_gives_each_brain_a_store_of_its_own(default_store: str) -> None:
    # brain-plasma's own tests, but for the imports: each Brain's objects in
    # a store of its own (a dict in brain-plasma), never the real store.
    from brain.mock import MockPlasmaClient  # was: from brain_plasma.mock import MockPlasmaClient

    brain = Brain(ClientClass=MockPlasmaClient)
    brain.learn("this", "that")
    assert brain.exists("this") and brain.recall("this") == "that"
    assert brain.url.startswith("memory://")
    assert "this" not in Brain(ClientClass=MockPlasmaClient)
    assert "this" not in Brain() and Brain().url == default_store
    other = Brain(namespace="nondefault", ClientClass=MockPlasmaClient)
    assert other.namespace == "nondefault"
    # Its memory goes with the Brain, as the dict did.
    url = brain.url
    del brain
    import gc

    gc.collect()
    assert Brain(url=url).names() == []

    # brain-plasma's own class of that name (vendored by a project) does the same.
    class LocalMock:
        pass

    LocalMock.__name__ = "MockPlasmaClient"
    assert Brain("default", "/tmp/plasma", LocalMock).url.startswith("memory://")
    # A URL given with it is the store.
    assert Brain(url=default_store, ClientClass=MockPlasmaClient).url == default_store
    # Any other class: ignored, and said so.
    with pytest.warns(UserWarning, match="ClientClass='dict'.* is ignored.*memory://NAME"):
        ignored = Brain(ClientClass=dict)
    assert ignored.url == default_store


def test_the_session_never_uses_the_users_default_store() -> None:
    # conftest points BRAIN_PATH at a throwaway store for the whole session.
    assert "BRAIN_URL" not in os.environ
    path = Path(brain_pkg.default_store_path())
    assert path.parent != Path(f"/dev/shm/brain-{os.getuid()}")
    assert path.name.startswith("brain-pytest-session-")
    assert Path(Brain().path) == path


@pytest.mark.shm_only("BRAIN_PATH and default_store_path() name a shared-memory directory (test_memory.py tests BRAIN_URL)")
def test_default_store_is_brain_path(default_store: str, store_path: Path) -> None:
    assert Path(brain_pkg.default_store_path()) == store_path
    Brain()["x"] = 1
    assert Brain(path=store_path)["x"] == 1
    assert Brain(url=default_store)["x"] == 1


def test_signatures_show_arguments_not_given_as_such() -> None:
    # help(Brain.update) used to show `<object object at 0x...>` for them.
    import inspect

    shown = str(inspect.signature(Brain.update))
    assert "object object" not in shown and "name: 'Any' = <not given>" in shown, shown


def test_learn_recall_exists_forget(brain: Brain) -> None:
    assert not brain.exists("a")
    brain.learn("a", [1, 2, 3])
    assert brain.exists("a")
    assert brain.recall("a") == [1, 2, 3]
    brain.forget("a")
    assert not brain.exists("a")
    with pytest.raises(BrainNameNotExistError):
        brain.recall("a")


def test_forget_of_a_missing_name_is_silent(brain: Brain) -> None:
    brain["kept"] = 1
    assert brain.forget("never-set") is None
    assert brain.names() == ["kept"]


def test_learn_keeps_the_old_description_when_none_is_given(brain: Brain) -> None:
    brain.learn("x", 1, description="first")
    assert brain.metadata("x")["description"] == "first"
    brain.learn("x", 2)
    assert brain["x"] == 2
    assert brain.metadata("x")["description"] == "first"
    brain["x"] = 3
    assert brain.metadata("x")["description"] == "first"
    brain.learn("x", 4, description="second")
    assert brain.metadata("x")["description"] == "second"
    brain.learn("new", 5)
    assert brain.metadata("new")["description"] == ""


def test_replacing_changes_type_freely(brain: Brain) -> None:
    for value in ["text", b"bytes", 7, np.arange(3), {"k": "v"}, None]:
        brain["x"] = value
        got = brain["x"]
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got, value)
        else:
            assert got == value and type(got) is type(value)
    assert brain.names() == ["x"]


def test_mapping_protocol(brain: Brain) -> None:
    brain["b"] = 2
    brain["a"] = 1
    assert "a" in brain and "zzz" not in brain
    assert 1 not in brain  # a non-str is simply not a name
    assert "" not in brain and "x" * 70_000 not in brain  # nor one no name can be
    assert len(brain) == 2
    assert list(brain) == ["a", "b"]
    assert dict(brain.items()) == {"a": 1, "b": 2}
    del brain["a"]
    assert list(brain.keys()) == ["b"]
    assert brain.get("a") is None
    assert brain.get("a", "fallback") == "fallback"
    assert brain.get("b", "fallback") == 2
    brain.update({"c": 3}, d=4)
    assert brain.names() == ["b", "c", "d"]
    assert brain.pop("c") == 3 and "c" not in brain


def test_names_are_per_namespace_and_all(brain: Brain) -> None:
    brain["x"] = 1
    brain["y"] = 2
    brain.set_namespace("other")
    brain["x"] = 10
    brain["z"] = 30
    assert brain.names() == ["x", "z"]
    assert brain.names(namespace="default") == ["x", "y"]
    assert sorted(brain.names(namespace="all")) == ["x", "x", "y", "z"]
    assert brain["x"] == 10
    brain.set_namespace("default")
    assert brain["x"] == 1
    assert "z" not in brain


def test_metadata_shapes(brain: Brain) -> None:
    before = dt.datetime.now(dt.timezone.utc)
    brain.learn("a", b"12345", description="five bytes")
    brain.learn("b", "text")
    one = brain.metadata("a")
    assert isinstance(one, dict)
    assert one["name"] == "a"
    assert one["namespace"] == "default"
    assert one["description"] == "five bytes"
    assert one["size"] == 5
    assert one["value_id"] == brain.object_id("a")
    assert isinstance(one["created"], dt.datetime)
    assert before - dt.timedelta(seconds=5) <= one["created"] <= dt.datetime.now(dt.timezone.utc)
    assert brain.metadata("missing") is None

    several = brain.metadata("a", "b")
    assert isinstance(several, dict) and list(several) == ["a", "b"]
    assert several["a"]["description"] == "five bytes" and several["b"]["name"] == "b"
    with_missing = brain.metadata("a", "missing")
    assert with_missing["a"]["name"] == "a" and with_missing["missing"] is None

    as_list = brain.metadata("b", "a", output="list")
    assert isinstance(as_list, list)
    assert [m["name"] for m in as_list] == ["b", "a"]

    every = brain.metadata()
    assert isinstance(every, dict) and sorted(every) == ["a", "b"]
    every_list = brain.metadata(output="list")
    assert isinstance(every_list, list) and sorted(m["name"] for m in every_list) == ["a", "b"]
    assert brain.info("a")["description"] == "five bytes"

    with pytest.raises(TypeError):
        brain.metadata("a", output="tuple")


def test_namespaces(brain: Brain) -> None:
    assert brain.namespaces() == {"default"}
    assert isinstance(brain.namespaces(), set)
    assert brain.set_namespace() == "default"
    assert brain.set_namespace("ab") == "ab"
    assert brain.namespace == "ab" and brain.set_namespace() == "ab"
    long_name = "n" * 100
    brain.set_namespace(long_name)
    brain["k"] = "in a long namespace"
    brain.set_namespace("名前 ✓")
    brain["k"] = "in a unicode namespace"
    assert brain.namespaces() == {"default", "ab", long_name, "名前 ✓"}
    brain.set_namespace(long_name)
    assert brain["k"] == "in a long namespace"
    # Another Brain on the same store starts in a namespace given to it.
    other = Brain(namespace="ab", url=brain.url)
    assert other.namespace == "ab" and other.names() == []


def test_bad_namespace_names(brain: Brain) -> None:
    with pytest.raises(BrainNamespaceNameError):
        brain.set_namespace("")
    with pytest.raises(BrainNamespaceNameError):
        brain.set_namespace(5)  # type: ignore[arg-type]
    assert brain.namespace == "default"


def test_remove_namespace(brain: Brain) -> None:
    brain.set_namespace("gone")
    brain["a"] = 1
    brain["b"] = 2
    brain.set_namespace("stays")
    brain["c"] = 3

    message = brain.remove_namespace("gone")
    assert "gone" in message
    assert brain.namespace == "stays"
    assert brain.namespaces() == {"default", "stays"}
    assert brain["c"] == 3
    assert "a" not in brain.names(namespace="all")

    # Removing the current namespace (explicitly or by default) switches to 'default'.
    assert brain.remove_namespace() == "Deleted namespace stays. Using namespace default."
    assert brain.namespace == "default"
    assert brain.namespaces() == {"default"}
    brain.set_namespace("again")
    brain.remove_namespace("again")
    assert brain.namespace == "default"


def test_remove_namespace_refuses_default_and_missing(brain: Brain) -> None:
    brain["kept"] = 1
    with pytest.raises(BrainNamespaceRemoveDefaultError):
        brain.remove_namespace("default")
    brain.set_namespace("default")
    with pytest.raises(BrainNamespaceRemoveDefaultError):
        brain.remove_namespace()
    with pytest.raises(BrainNamespaceNotExistError):
        brain.remove_namespace("never-made")
    assert brain["kept"] == 1
    assert brain.namespaces() == {"default"}


def test_a_recreated_namespace_is_empty(brain: Brain) -> None:
    brain.set_namespace("ns")
    brain["x"] = 1
    brain.remove_namespace("ns")
    brain.set_namespace("ns")
    assert brain.names() == []
    assert not brain.exists("x")


def test_size_used_free_bytes_mb(store_url: str) -> None:
    brain = Brain(url=store_url, capacity=50_000_000)
    assert brain.size() == 50_000_000
    assert brain.bytes == 50_000_000
    assert brain.mb == "50 MB"
    empty_used = brain.used()
    assert brain.free() == brain.size() - empty_used
    brain["arr"] = np.zeros(1_000_000)  # 8 MB
    assert brain.used() >= empty_used + 8_000_000
    assert brain.free() == 50_000_000 - brain.used()
    brain.forget("arr")
    assert brain.used() == empty_used
    # Another Brain sees the capacity of the store itself.
    assert Brain(url=store_url).size() == 50_000_000


@pytest.mark.shm_only("a memory store has no tmpfs to take its size from")
def test_size_without_capacity_is_the_filesystem(brain: Brain) -> None:
    assert brain.size() == brain.store.usage()["filesystem_size"] > 0
    assert brain.mb == f"{round(brain.size() / 1_000_000)} MB"
    assert 0 <= brain.free() <= brain.size()


def test_sleep_and_wake_up(brain: Brain) -> None:
    brain["x"] = "kept"
    brain.sleep()
    for operation in (
        lambda: brain["x"],
        lambda: brain.learn("y", 1),
        lambda: brain.names(),
        lambda: brain.exists("x"),
        lambda: brain.forget("x"),
        lambda: brain.namespaces(),
        lambda: brain.size(),
    ):
        with pytest.raises(BrainClientDisconnectedError):
            operation()
    brain.wake_up()
    assert brain["x"] == "kept"
    assert brain.names() == ["x"]


def test_context_manager_closes(store_url: str) -> None:
    with Brain(url=store_url) as b:
        b["x"] = 1
    with pytest.raises(BrainClientDisconnectedError):
        b["x"]
    assert Brain(url=store_url)["x"] == 1


def test_object_ids(brain: Brain) -> None:
    brain["a"] = 1
    brain["b"] = 2
    ida, idb = brain.object_id("a"), brain.object_id("b")
    assert isinstance(ida, str) and ida != idb
    assert brain.object_id("missing") is None
    brain["a"] = "replaced"
    assert brain.object_id("a") == ida  # the id belongs to the name
    assert brain.object_ids() == {"a": ida, "b": idb}
    assert brain.ids() == [ida, idb]
    brain.set_namespace("other")
    brain["a"] = 1
    assert brain.object_id("a") != ida
    assert brain.ids() == [brain.object_id("a")]


def test_a_brain_pickles_to_the_same_store(brain: Brain) -> None:
    brain.set_namespace("ns")
    brain["x"] = 42
    clone = pickle.loads(pickle.dumps(brain))
    assert clone.url == brain.url and clone.path == brain.path and clone.namespace == "ns"
    assert clone["x"] == 42


@pytest.mark.shm_only("a store given by a relative path is a directory")
def test_a_relative_path_stays_the_same_store_after_a_chdir(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(store_path.parent)
    brain = Brain(path=store_path.name)
    brain["sales"] = "data"
    assert brain.url == f"shm://{store_path}"
    elsewhere = tmp_path  # removed by pytest
    monkeypatch.chdir(elsewhere)  # a notebook's %cd, gunicorn --chdir
    assert pickle.loads(pickle.dumps(brain))["sales"] == "data"
    brain.sleep()
    brain.wake_up()
    assert brain["sales"] == "data"
    assert list(elsewhere.iterdir()) == [], "a store was made in the new directory"


@pytest.mark.shm_only("a store given by a path is a directory")
def test_a_store_path_of_home_is_expanded_and_a_url_or_nothing_is_refused(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(store_path.parent))
    monkeypatch.chdir(tmp_path)
    brain = Brain(path=f"~/{store_path.name}")
    assert brain.path == str(store_path)
    brain["x"] = 1
    home = tmp_path / "home"  # removed with the test's directory
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    brain.dump("~/dump")
    assert Brain.list_dump("~/dump")["objects"][0]["name"] == "x"
    assert (home / "dump").is_dir()
    shutil.rmtree(home)  # the working directory is checked for strays below
    for path, why in (("", "the path is empty"), ("memory://x", "it is a memory:// URL")):
        with pytest.raises(BrainStorePathError, match=why):
            Brain(path=path)
    # A URL set where a path goes, in the environment, is refused too.
    monkeypatch.delenv("BRAIN_URL", raising=False)
    monkeypatch.setenv("BRAIN_PATH", "redis://127.0.0.1:1")
    with pytest.raises(BrainStorePathError, match="BRAIN_URL, not BRAIN_PATH"):
        Brain()
    assert list(tmp_path.iterdir()) == [], "a directory was made in the working directory"
    # Written out as shm://, a path is a path, whatever it looks like.
    Brain(url="shm://memory://x")["y"] = 1
    assert (tmp_path / "memory:" / "x").is_dir()


def test_clear_deletes_values_this_process_cannot_read(brain: Brain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gone_module.py").write_text("class Gone:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module  # type: ignore[import-not-found]

    brain["a"] = 1
    brain["k"] = gone_module.Gone()
    brain["z"] = 2
    monkeypatch.delitem(__import__("sys").modules, "gone_module")
    (tmp_path / "gone_module.py").unlink()
    with pytest.raises(BrainUnpicklingError):
        brain["k"]
    brain.clear()
    assert brain.names() == []


def test_update_without_a_function_says_what_it_needs(brain: Brain) -> None:
    with pytest.raises(TypeError, match=r"update\('visits'\): update\(name, fn\) needs"):
        brain.update("visits")
    assert brain.names() == []


def test_a_bad_preallocation_is_named_as_such(store_url: str) -> None:
    with pytest.raises(ValueError, match=r"Brain\(preallocate='x'\).*Memory to keep allocated") as info:
        Brain(url=store_url, preallocate="x")
    assert "capacity" not in str(info.value)


def test_brain_plasmas_calls_that_are_gone_say_what_replaced_them(brain: Brain) -> None:
    with pytest.raises(AttributeError, match=r"Brain.show_namespaces .*brain.namespaces\(\)"):
        brain.show_namespaces()  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"output='list'"):
        brain.knowledge()  # type: ignore[attr-defined]
    assert not hasattr(brain, "dead") and not hasattr(brain, "client")
    with pytest.raises(AttributeError, match="has no attribute 'no_such_call'"):
        brain.no_such_call  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.shm_only("the command is given the store's directory")
def test_python_dash_m_brain_is_the_command(store_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "brain", "--store", str(store_path), "ls", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out


def test_repr(brain: Brain) -> None:
    brain["x"] = 1
    assert "(1 name)" in repr(brain) and brain.url in repr(brain)
    brain.sleep()
    assert "asleep" in repr(brain)


def test_every_exception_is_a_brain_error() -> None:
    from brain import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), BrainError)
    assert issubclass(exceptions.BrainNameNotExistError, KeyError)
    assert issubclass(exceptions.BrainNameTypeError, TypeError)
    assert issubclass(exceptions.BrainUnsupportedObjectError, TypeError)
    assert issubclass(exceptions.BrainStorePathError, OSError)
    assert issubclass(exceptions.BrainStoreUrlError, ValueError)
    assert issubclass(exceptions.BrainUnsupportedOperationError, NotImplementedError)


def test_a_brain_is_equal_only_to_itself_and_hashable(brain: Brain, store_url: str) -> None:
    """As brain-plasma's Brain: an object, not a value compared by contents
    (a Mapping's == would read every stored value, and a Mapping is not hashable)."""
    brain["frame"] = pd.DataFrame({"a": [1, 2]})
    other = Brain(url=store_url)
    assert brain == brain and brain != other and other not in [brain]
    assert {brain: "kept"}[brain] == "kept"
    assert functools.lru_cache(lambda b: len(b))(brain) == 1


def test_a_description_of_false_is_none_given(brain: Brain) -> None:
    """brain-plasma 0.2's default was description=False."""
    brain.learn("x", 1, description="kept")
    brain.learn("x", 2, description=False)  # type: ignore[arg-type]
    assert brain.metadata("x")["description"] == "kept"
    with pytest.raises(TypeError, match="a description is a str or None"):
        brain.learn("x", 3, description=7)  # type: ignore[arg-type]


def test_an_infinite_timeout_means_no_limit(brain: Brain) -> None:
    """As threading takes it: float("inf") is no limit, not a bad value."""
    brain["x"] = 1
    assert brain.wait_for("x", timeout=float("inf")) == 1
    with brain.lock("x", timeout=float("inf")) as lock:
        assert lock.held
    watcher = brain.watch()
    brain["y"] = 2
    assert watcher.next_event(timeout=float("inf")) == ("set", brain.namespace, "y")
    with pytest.raises(ValueError, match="or None, or float"):
        brain.wait_for("x", timeout=-1)


def _inotify_fds() -> int:
    """How many inotify descriptors this process has open."""
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += "inotify" in os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed since
            pass
    return count


def test_a_watcher_closes_as_a_context_manager_and_stops_iterating(brain: Brain) -> None:
    with brain.watch() as watcher:
        assert not watcher.closed
        brain["y"] = 1
        assert watcher.next_event(timeout=10) == ("set", brain.namespace, "y")
    assert watcher.closed
    brain["y"] = 2
    assert list(watcher) == []
    with pytest.raises(RuntimeError, match="closed"):
        watcher.next_event(timeout=0)
    watcher.close()  # again: nothing happens


@pytest.mark.shm_only("a shared-memory store's watcher holds an inotify descriptor")
def test_closing_a_watcher_gives_back_its_descriptor(brain: Brain) -> None:
    before = _inotify_fds()
    watcher = brain.watch()
    assert _inotify_fds() == before + 1
    watcher.close()
    assert _inotify_fds() == before


def test_names_brain_keeps_for_frame_parts_are_refused(brain: Brain) -> None:
    """A name with the prefix of frame parts would be hidden from names() and
    removed by gc: it is refused, not stored."""
    from brain.exceptions import BrainReservedNameError

    name = "\0brain-part\0mine"
    with pytest.raises(BrainReservedNameError, match="keeps for the parts of frames") as info:
        brain[name] = 1
    assert isinstance(info.value, ValueError)
    assert name not in brain
    assert brain.names() == []
    brain["\0brain-partial"] = 2  # only the whole prefix is brain's
    assert brain.names() == ["\0brain-partial"]
