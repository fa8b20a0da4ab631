"""The examples in the core docstrings run and print what they say."""

import doctest

import pytest

import unembed._stats
import unembed.construct
import unembed.head
import unembed.moments
import unembed.views


@pytest.mark.parametrize("module", [unembed.head, unembed.construct, unembed.views, unembed.moments,
                                    unembed._stats])
def test_docstring_examples(module):
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0
    assert res.failed == 0
