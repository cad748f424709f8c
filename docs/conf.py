"""Sphinx configuration of the cognito_mfa documentation (``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO), str(DOCS / "_ext")]

# The example project is a host site: its settings serve the schema the API page renders and
# let autodoc import the app.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
import django  # noqa: E402

django.setup()

import cognito_mfa  # noqa: E402

project = "cognito_mfa"
author = "The cognito-mfa authors"
copyright = "The cognito-mfa authors"
release = cognito_mfa.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "cognito_mfa_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# _generated: the OpenAPI schema, written at builder-inited (the API page offers it).
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Broken cross-references are errors (make docs runs with -W). Django's and DRF's own classes
# are named in signatures but their docs are not linked (no network at build time).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|rest_framework|botocore|boto3|jwt)\..*"),
    (r"py:.*", r"(AbstractBaseUser|HttpRequest|AccessToken|Any)"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}

html_theme = "furo"
html_title = f"cognito_mfa {release}"
html_static_path = ["_static"]
html_css_files = ["cognito_mfa.css"]
