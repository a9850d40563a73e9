"""Repo-wide pytest setup.

pytest's ``--import-mode=importlib`` names ``shared/tests/test_x.py`` as the module ``shared.tests.test_x`` and, if
the real ``shared`` package has not been imported yet, registers the *folder* ``shared/`` as the module ``shared``,
shadowing the installed package (``No module named 'shared.data'``). Importing the package first avoids that.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shared  # noqa: E402,F401  (see the docstring)
