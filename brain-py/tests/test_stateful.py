"""A Brain behaves like a dict of namespaces of names, under any sequence of operations, on each backend."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from _helpers import new_store_url, remove_store
from brain import Brain
from brain.exceptions import BrainNamespaceNotExistError, BrainNamespaceRemoveDefaultError

NAMES = st.text(alphabet="ab/.é名😀", min_size=1, max_size=3)
NAMESPACES = st.sampled_from(["default", "ns", "名前", "x" * 100])
ARRAYS = hnp.arrays(
    dtype=st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
VALUES = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.integers(), ARRAYS)


def _same(got: object, expected: object) -> bool:
    if isinstance(expected, np.ndarray):
        return (
            isinstance(got, np.ndarray)
            and got.dtype == expected.dtype
            and got.shape == expected.shape
            and got.tobytes() == expected.tobytes()
        )
    return type(got) is type(expected) and got == expected


class BrainMatchesADict(RuleBasedStateMachine):
    def __init__(self, backend: str) -> None:
        super().__init__()
        self.url = new_store_url(backend, "stateful")  # a fresh store for every example
        try:
            self.brain = Brain(url=self.url)
        except BaseException:
            remove_store(self.url)
            raise
        self.model: dict[str, dict[str, object]] = {"default": {}}
        self.current = "default"

    def teardown(self) -> None:
        self.brain.close()
        remove_store(self.url)

    @rule(name=NAMES, value=VALUES)
    def set(self, name: str, value: object) -> None:
        self.brain[name] = value
        self.model[self.current][name] = value

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        self.brain.forget(name)
        self.model[self.current].pop(name, None)

    @precondition(lambda self: self.model[self.current])
    @rule(data=st.data())
    def delete_existing(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.model[self.current])))
        del self.brain[name]
        del self.model[self.current][name]

    @rule(name=NAMES)
    def delete_item(self, name: str) -> None:
        if name in self.model[self.current]:
            del self.brain[name]
            del self.model[self.current][name]
        else:
            with pytest.raises(KeyError):
                del self.brain[name]

    @rule(namespace=NAMESPACES)
    def switch_namespace(self, namespace: str) -> None:
        assert self.brain.set_namespace(namespace) == namespace
        self.current = namespace
        self.model.setdefault(namespace, {})

    @rule(namespace=NAMESPACES)
    def remove_namespace(self, namespace: str) -> None:
        if namespace == "default":
            with pytest.raises(BrainNamespaceRemoveDefaultError):
                self.brain.remove_namespace(namespace)
        elif namespace not in self.model:
            with pytest.raises(BrainNamespaceNotExistError):
                self.brain.remove_namespace(namespace)
        else:
            self.brain.remove_namespace(namespace)
            del self.model[namespace]
            if self.current == namespace:
                self.current = "default"
        assert self.brain.namespace == self.current

    @invariant()
    def names_match(self) -> None:
        assert self.brain.namespace == self.current
        assert self.brain.names() == sorted(self.model[self.current])
        assert len(self.brain) == len(self.model[self.current])

    @invariant()
    def values_match(self) -> None:
        for name, expected in self.model[self.current].items():
            got = self.brain[name]
            assert _same(got, expected), (name, got, expected)

    @invariant()
    def namespaces_match(self) -> None:
        assert self.brain.namespaces() == set(self.model)
        everything = sorted(n for names in self.model.values() for n in names)
        assert sorted(self.brain.names(namespace="all")) == everything


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_a_brain_matches_a_dict(backend: str) -> None:
    run_state_machine_as_test(lambda: BrainMatchesADict(backend), settings=SETTINGS)
