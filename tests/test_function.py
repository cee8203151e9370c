"""``mg.function`` semantics: updates, givens, unused inputs, shared variables, names and
aliasing of results."""
import warnings

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T


def test_single_output_and_list(mode):
    x = T.dvector("x")
    f = mg.function([x], x * 2, mode=mode)
    g = mg.function([x], [x * 2], mode=mode)
    h = mg.function([x], [x * 2, x + 1], mode=mode)
    assert isinstance(f(np.ones(2)), np.ndarray)
    assert isinstance(g(np.ones(2)), list) and len(g(np.ones(2))) == 1
    a, b = h(np.ones(2))
    np.testing.assert_array_equal(a, [2, 2])
    np.testing.assert_array_equal(b, [2, 2])


def test_keyword_inputs(mode):
    x, y = T.dvector("x"), T.dvector("y")
    f = mg.function([x, y], x - y, mode=mode)
    np.testing.assert_array_equal(f(y=np.ones(2), x=np.zeros(2)), [-1, -1])
    np.testing.assert_array_equal(f(np.zeros(2), y=np.ones(2)), [-1, -1])
    with pytest.raises(TypeError, match="'y'"):
        f(x=np.zeros(2))
    with pytest.raises(TypeError, match="twice"):
        f(np.zeros(2), x=np.ones(2))
    with pytest.raises(TypeError, match="'z'"):
        f(np.zeros(2), z=np.ones(2))


def test_updates_applied_after_all_outputs(mode):
    """Every output sees the old values, even outputs listed after an update's target is used."""
    a = mg.shared(np.array(1.0), name="a")
    b = mg.shared(np.array(10.0), name="b")
    # swap: each update reads the value before any update is written
    f = mg.function([], [a + 0, b * 1], updates=[(a, b), (b, a)], mode=mode)
    out_a, out_b = f()
    assert out_a == 1.0 and out_b == 10.0
    assert a.get_value() == 10.0 and b.get_value() == 1.0
    out_a, out_b = f()
    assert out_a == 10.0 and out_b == 1.0
    assert a.get_value() == 1.0 and b.get_value() == 10.0


def test_update_counter_and_output_of_same_expression(mode):
    c = mg.shared(np.zeros(3), name="c")
    new = c + 1
    f = mg.function([], [c, new], updates=[(c, new)], mode=mode)
    old, nxt = f()
    np.testing.assert_array_equal(old, 0)
    np.testing.assert_array_equal(nxt, 1)
    np.testing.assert_array_equal(c.get_value(), 1)
    nxt[:] = 99  # the returned array is not the shared storage
    np.testing.assert_array_equal(c.get_value(), 1)
    old, nxt = f()
    np.testing.assert_array_equal(old, 1)
    np.testing.assert_array_equal(c.get_value(), 2)


def test_updates_as_dict_and_without_outputs(mode):
    w = mg.shared(np.ones(2), name="w")
    x = T.dvector("x")
    f = mg.function([x], updates={w: w * x}, mode=mode)
    assert f(np.array([2.0, 3.0])) == []
    f(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(w.get_value(), [4.0, 9.0])


def test_update_casts_to_the_shared_dtype(mode):
    w = mg.shared(np.ones(2, dtype="float64"), name="w")
    f = mg.function([], updates=[(w, T.cast(w, "float32") * 2)], mode=mode)
    f()
    assert w.get_value().dtype == np.float64
    np.testing.assert_array_equal(w.get_value(), [2.0, 2.0])


def test_a_shared_variable_updated_twice_raises():
    w = mg.shared(np.ones(2), name="w")
    with pytest.raises(ValueError, match="twice"):
        mg.function([], updates=[(w, w + 1), (w, w + 2)])


def test_givens(mode):
    x, y = T.dvector("x"), T.dvector("y")
    z = x * 2 + y
    data = mg.shared(np.array([1.0, 2.0]), name="data")
    f = mg.function([y], z, givens=[(x, data)], mode=mode)
    np.testing.assert_array_equal(f(np.ones(2)), [3.0, 5.0])
    g = mg.function([x], z, givens={y: x ** 2}, mode=mode)
    np.testing.assert_array_equal(g(np.array([1.0, 3.0])), [3.0, 15.0])
    # a minibatch slice of a shared dataset, chosen by an index input
    i = T.lscalar("i")
    big = mg.shared(np.arange(6.0), name="big")
    h = mg.function([i, y], z, givens=[(x, big[i * 2:(i + 1) * 2])], mode=mode)
    np.testing.assert_array_equal(h(1, np.zeros(2)), [4.0, 6.0])
    # the user's graph is untouched
    k = mg.function([x, y], z, mode=mode)
    np.testing.assert_array_equal(k(np.ones(2), np.zeros(2)), [2.0, 2.0])


def test_givens_type_mismatch():
    x = T.dvector("x")
    with pytest.raises(TypeError, match="givens"):
        mg.function([], x * 2, givens=[(x, T.dmatrix("m").sum(axis=0).astype("float32"))], on_unused_input="ignore")


def test_givens_apply_to_updates(mode):
    x = T.dvector("x")
    w = mg.shared(np.zeros(2), name="w")
    f = mg.function([], [], updates=[(w, w + x)], givens=[(x, T.constant(np.array([1.0, 2.0])))], mode=mode)
    f()
    f()
    np.testing.assert_array_equal(w.get_value(), [2.0, 4.0])


def test_on_unused_input_bad_value():
    x = T.dvector("x")
    with pytest.raises(ValueError, match="on_unused_input"):
        mg.function([x], x, on_unused_input="sometimes")


@pytest.mark.parametrize("setting", ["raise", "warn", "ignore"])
def test_on_unused_input(setting, mode):
    x, y = T.dvector("x"), T.dvector("unused_y")
    if setting == "raise":
        with pytest.raises(ValueError, match="unused_y"):
            mg.function([x, y], x * 2, mode=mode)
        with pytest.raises(ValueError, match="unused_y"):
            mg.function([x, y], x * 2, mode=mode, on_unused_input=setting)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = mg.function([x, y], x * 2, mode=mode, on_unused_input=setting)
    assert any("unused_y" in str(w.message) for w in caught) == (setting == "warn")
    np.testing.assert_array_equal(f(np.ones(2), np.zeros(5)), [2.0, 2.0])


def test_shape_only_use_is_a_use(mode):
    x, n = T.dvector("x"), T.dmatrix("n")
    f = mg.function([x, n], x * n.shape[0], mode=mode)
    np.testing.assert_array_equal(f(np.ones(2), np.zeros((3, 1))), [3.0, 3.0])


# --- shared variables ---------------------------------------------------------------------

def test_shared_copies_by_default():
    v = np.ones(3)
    s = mg.shared(v, name="s")
    v[0] = 5
    assert s.get_value()[0] == 1
    got = s.get_value()
    got[1] = 7
    assert s.get_value()[1] == 1
    s.set_value(v)
    v[2] = 9
    assert s.get_value()[2] == 1


def test_shared_borrow_aliases():
    v = np.ones(3)
    s = mg.shared(v, name="s", borrow=True)
    v[0] = 5
    assert s.get_value()[0] == 5
    inner = s.get_value(borrow=True)
    inner[1] = 7
    assert s.get_value()[1] == 7
    w = np.zeros(3)
    s.set_value(w, borrow=True)
    w[0] = 3
    assert s.get_value()[0] == 3


def test_shared_borrow_sees_updates(mode):
    s = mg.shared(np.zeros(2), name="s")
    f = mg.function([], updates=[(s, s + 1)], mode=mode)
    f()
    np.testing.assert_array_equal(s.get_value(borrow=True), [1, 1])
    f()
    np.testing.assert_array_equal(s.get_value(), [2, 2])


def test_functions_read_the_current_shared_value(mode):
    s = mg.shared(np.array([1.0, 2.0]), name="s")
    x = T.dvector("x")
    f = mg.function([x], x * s, mode=mode)
    np.testing.assert_array_equal(f(np.ones(2)), [1, 2])
    s.set_value(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(f(np.ones(2)), [3, 4])


def test_shared_static_shape_and_dtype():
    s = mg.shared(np.zeros((2, 3), dtype="float32"), name="s")
    assert s.type.shape == (2, 3) and s.dtype == "float32"
    t = mg.shared(np.zeros((2, 3)), shape=(None, 3))
    assert t.type.shape == (None, 3)
    with pytest.raises(TypeError):
        mg.shared(object())


def test_set_value_integer_into_float_is_accepted():
    s = mg.shared(np.zeros(2, dtype="float32"), name="s")
    s.set_value(np.array([1, 2]))
    assert s.get_value().dtype == np.float32
    np.testing.assert_array_equal(s.get_value(), [1, 2])


# --- names --------------------------------------------------------------------------------

def test_name_settable_after_creation(mode):
    x = T.dvector()
    y = T.exp(x)
    assert x.name is None
    x.name = "late_x"
    y.name = "late_y"
    assert repr(x) == "'late_x'"
    assert "late_y" in mg.pp(y) or "late_x" in mg.pp(y)
    f = mg.function([x], y, mode=mode)
    np.testing.assert_allclose(f(late_x=np.zeros(2)), [1, 1])
    with pytest.raises(TypeError, match="late_x"):
        f(np.zeros((2, 2)))
    s = mg.shared(np.zeros(2))
    s.name = "late_s"
    with pytest.raises(ValueError, match="late_s"):
        s.set_value(np.zeros(3))


# --- aliasing -----------------------------------------------------------------------------

def test_output_of_an_input_is_a_copy(mode):
    x = T.dvector("x")
    f = mg.function([x], x, mode=mode)
    xv = np.ones(3)
    out = f(xv)
    assert out is not xv and not np.shares_memory(out, xv)
    out[0] = 5
    assert xv[0] == 1


def test_views_of_inputs_are_copies(mode):
    x = T.dmatrix("x")
    f = mg.function([x], [x.T, x[0], x.reshape((-1,)), x.dimshuffle(0, 1, "x")], mode=mode)
    xv = np.ones((2, 3))
    for out in f(xv):
        assert not np.shares_memory(out, xv)
        assert out.flags.writeable


def test_output_of_a_shared_value_is_a_copy(mode):
    w = mg.shared(np.ones(3), name="w")
    f = mg.function([], [w, w.T], mode=mode)
    a, b = f()
    a[0] = 5
    b[1] = 6
    np.testing.assert_array_equal(w.get_value(), [1, 1, 1])
    assert not np.shares_memory(a, w.get_value(borrow=True))


def test_repeated_outputs_do_not_alias(mode):
    x = T.dvector("x")
    y = x * 2
    a, b = mg.function([x], [y, y], mode=mode)(np.ones(2))
    assert not np.shares_memory(a, b)
    a[0] = 0
    assert b[0] == 2


def test_results_of_two_calls_do_not_alias(mode):
    x = T.dvector("x")
    f = mg.function([x], T.exp(x) + 1, mode=mode)
    a = f(np.zeros(2))
    b = f(np.ones(2))
    assert not np.shares_memory(a, b)
    np.testing.assert_allclose(a, [2, 2])


def test_update_does_not_store_the_callers_array_or_another_shared(mode):
    a = mg.shared(np.zeros(2), name="a")
    b = mg.shared(np.ones(2), name="b")
    x = T.dvector("x")
    f = mg.function([x], updates=[(a, x), (b, b)], mode=mode)
    xv = np.array([3.0, 4.0])
    f(xv)
    xv[0] = -1
    np.testing.assert_array_equal(a.get_value(), [3.0, 4.0])
    g = mg.function([], updates=[(a, b)], mode=mode)
    g()
    b.get_value(borrow=True)[0] = 42
    np.testing.assert_array_equal(a.get_value(), [1.0, 1.0])


def test_constant_outputs_are_writable_copies(mode):
    c = T.constant(np.arange(3.0))
    f = mg.function([], c * 1, mode=mode)
    out = f()
    out[0] = 9
    np.testing.assert_array_equal(f(), [0, 1, 2])


def test_copies_of_graphs_keep_types_and_infer_again_after_a_replacement(monkeypatch):
    """clone_replace: a plain copy keeps every node's output types without running make_node
    (mg.function copies every graph it compiles); below a replaced variable, make_node infers
    the types again, since they may depend on the new value (here a reshape's constant shape)."""
    from minigraph.graph.basic import clone_replace, toposort
    from minigraph.tensor import elemwise as E

    x = T.fvector("x")
    shape = T.constant(np.array([2, 3], "int64"))
    y = T.tanh(x.reshape(shape)) * 2
    made = []
    real = E.Elemwise.make_node
    monkeypatch.setattr(E.Elemwise, "make_node", lambda self, *a: made.append(self) or real(self, *a))
    copy, = clone_replace([y])
    assert not made
    old_nodes, new_nodes = toposort([y]), toposort([copy])
    assert [n.op for n in new_nodes] == [n.op for n in old_nodes]
    assert [n.outputs[0].type for n in new_nodes] == [n.outputs[0].type for n in old_nodes]
    assert not set(map(id, new_nodes)) & set(map(id, old_nodes))
    assert [n.trace for n in new_nodes] == [n.trace for n in old_nodes]
    other, = clone_replace([y], replace={shape: T.constant(np.array([3, 2], "int64"))})
    assert other.type.shape == (3, 2) and made  # inferred again below the replacement
