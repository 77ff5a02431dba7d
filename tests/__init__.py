"""The test suite; its helpers are the package ``tests.helpers``.

The test modules themselves are not in packages (their folders have no ``__init__.py``):
pytest imports each by its file name, so those names are unique across the folders.
Assertions in the helpers are rewritten by pytest like the tests' own.
"""

import pytest

pytest.register_assert_rewrite("tests.helpers")
