"""Patchers: rules, lengths, calibration, bad input and prefix stability."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bltlib import patching as P

entropy_lists = st.lists(st.floats(0, 6, allow_nan=False, width=32),
                         min_size=1, max_size=120)


def f32(x):
    return None if x is None else torch.as_tensor(x, dtype=torch.float32)


def brute_force_starts(e, thr, rel, max_len):
    """The rules as a left-to-right loop, written as plainly as possible.

    Arithmetic is float32, as in the library, so ties round the same way.
    """
    e, thr, rel = f32(e), f32(thr), f32(rel)
    starts, cur = [], 0
    for i, h in enumerate(e):
        if i == 0:
            s = True
        else:
            s = True
            if thr is not None:
                s = s and bool(h > thr)
            if rel is not None:
                s = s and bool((h - e[i - 1]) > rel)
        if not s and max_len is not None and cur >= max_len:
            s = True
        cur = 1 if s else cur + 1
        starts.append(s)
    return starts


def test_hand_made_example():
    e = torch.tensor([0.0, 2.0, 0.5, 0.3, 3.0, 0.1, 0.1, 0.1, 0.1, 0.1])
    s = P.entropy_starts(e, threshold=1.0)
    assert P.starts_to_lengths(s).tolist() == [1, 3, 6]
    s = P.entropy_starts(e, threshold=1.0, max_patch_length=4)
    assert P.starts_to_lengths(s).tolist() == [1, 3, 4, 2]
    rel = P.entropy_starts(e, relative_threshold=1.0)
    assert torch.nonzero(rel).flatten().tolist() == [0, 1, 4]


@settings(max_examples=200, deadline=None)
@given(entropy_lists, st.one_of(st.none(), st.floats(0, 5)),
       st.one_of(st.none(), st.floats(0, 3)),
       st.one_of(st.none(), st.integers(1, 9)))
def test_matches_brute_force(e, thr, rel, max_len):
    if thr is None and rel is None:
        thr = 1.0
    et = torch.tensor(e, dtype=torch.float32)
    got = P.entropy_starts(et, threshold=thr, relative_threshold=rel,
                           max_patch_length=max_len)
    assert got.tolist() == brute_force_starts(et, thr, rel, max_len)


@settings(max_examples=200, deadline=None)
@given(entropy_lists, st.floats(0, 5), st.one_of(st.none(), st.floats(0, 3)),
       st.one_of(st.none(), st.integers(1, 9)), st.data())
def test_entropy_patching_is_prefix_stable(e, thr, rel, max_len, data):
    cut = data.draw(st.integers(1, len(e)))
    full = P.entropy_starts(e, threshold=thr, relative_threshold=rel,
                            max_patch_length=max_len)
    pre = P.entropy_starts(e[:cut], threshold=thr, relative_threshold=rel,
                           max_patch_length=max_len)
    assert pre.tolist() == full[:cut].tolist()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(1, 9), st.data())
def test_space_and_fixed_are_prefix_stable(raw, k, data):
    cut = data.draw(st.integers(1, len(raw)))
    assert (P.space_starts(raw[:cut], max_patch_length=k).tolist()
            == P.space_starts(raw, max_patch_length=k)[:cut].tolist())
    assert (P.fixed_starts(cut, k).tolist()
            == P.fixed_starts(len(raw), k)[:cut].tolist())


@settings(max_examples=100, deadline=None)
@given(entropy_lists, st.floats(0, 5), st.integers(1, 9))
def test_lengths_sum_and_max(e, thr, max_len):
    s = P.entropy_starts(e, threshold=thr, max_patch_length=max_len)
    lengths = P.starts_to_lengths(s)
    assert int(lengths.sum()) == len(e)
    assert int(lengths.max()) <= max_len
    assert P.lengths_to_starts(lengths).tolist() == s.tolist()
    assert P.patch_ids(lengths).tolist() == sorted(P.patch_ids(lengths).tolist())


@settings(max_examples=100, deadline=None)
@given(entropy_lists, st.floats(0, 5), st.floats(0, 5))
def test_higher_threshold_never_more_patches(e, a, b):
    lo, hi = sorted((a, b))
    assert (int(P.entropy_starts(e, threshold=hi).sum())
            <= int(P.entropy_starts(e, threshold=lo).sum()))


def test_space_patching():
    s = P.space_starts("def f(x):  return x")
    words = P.starts_to_lengths(s).tolist()
    assert words == [4, 7, 7, 1]  # "def ", "f(x):  ", "return ", "x"
    assert P.starts_to_lengths(P.space_starts(
        "abcdefghij", max_patch_length=4)).tolist() == [4, 4, 2]


def test_padding_zeros_are_ignored():
    assert P.lengths_to_starts([2, 1, 0, 0]).tolist() == [True, False, True]


def test_calibration_hits_target():
    gen = torch.Generator().manual_seed(0)
    e = torch.rand(20000, generator=gen) * 4
    theta = P.calibrate_threshold(e, 4.0, max_patch_length=8)
    size = P.mean_patch_size(P.entropy_starts(e, threshold=theta,
                                              max_patch_length=8))
    assert abs(size - 4.0) < 0.05
    looser = P.calibrate_threshold(e, 3.0, max_patch_length=8)
    assert looser < theta


@pytest.mark.parametrize("bad", [float("nan"), -0.5, float("inf")])
def test_bad_thresholds(bad):
    with pytest.raises(ValueError, match="finite number >= 0"):
        P.entropy_starts([1.0, 2.0], threshold=bad)
    with pytest.raises(ValueError, match="finite number >= 0"):
        P.PatcherConfig(threshold=bad)


def test_other_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        P.entropy_starts([], threshold=1.0)
    with pytest.raises(ValueError, match="empty"):
        P.space_starts(b"")
    with pytest.raises(ValueError, match="NaN"):
        P.entropy_starts([1.0, math.nan], threshold=1.0)
    with pytest.raises(ValueError, match="threshold"):
        P.entropy_starts([1.0])
    with pytest.raises(ValueError, match="max_patch_length"):
        P.entropy_starts([1.0], threshold=1.0, max_patch_length=0)
    with pytest.raises(ValueError, match="unknown patching mode"):
        P.PatcherConfig(mode="bpe")
    with pytest.raises(ValueError, match="not below"):
        P.calibrate_threshold([1.0, 2.0], 8.0, max_patch_length=8)
    with pytest.raises(ValueError, match="needs entropies"):
        P.patch_starts(P.PatcherConfig(), b"abc")


def test_patch_starts_dispatch():
    raw = b"ab cd ef"
    assert P.patch_starts(P.PatcherConfig(mode="fixed", stride=3),
                          raw).tolist() == P.fixed_starts(8, 3).tolist()
    assert P.patch_starts(P.PatcherConfig(mode="space"), raw).sum() == 3
    e = torch.zeros(9)  # one extra "next byte" entropy is fine
    assert P.patch_starts(P.PatcherConfig(threshold=0.5), raw, e).sum() == 1
