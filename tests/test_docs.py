"""The examples in the core docstrings run and print what they say."""

import doctest

import pytest

import unembed.accumulators
import unembed.construct
import unembed.data
import unembed.head
import unembed.kernels
import unembed.moments
import unembed.views


@pytest.mark.parametrize("module", [unembed.head, unembed.construct, unembed.views, unembed.moments,
                                    unembed.accumulators, unembed.data, unembed.kernels])
def test_docstring_examples(module):
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0
    assert res.failed == 0
