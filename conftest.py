"""Repo-wide pytest setup.

* No test may reach the model hub: ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are set before anything imports
  ``huggingface_hub``.
* pytest's ``--import-mode=importlib`` names ``shared/tests/test_x.py`` as the module ``shared.tests.test_x`` and,
  if the real ``shared`` package has not been imported yet, registers the *folder* ``shared/`` as the module
  ``shared``, shadowing the installed package (``No module named 'shared.data'``). Importing the package first
  avoids that.

Entry points are importable package modules (``rld.train``, ``sfd.eval``...), so nothing else is needed to keep
the projects apart in one pytest process.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shared  # noqa: E402,F401  (see the second point above)
