"""Shared helpers for the packaging tests: repo paths and a template-tolerant YAML loader."""
import os
import re

import yaml

ROOT = os.environ.get("MODELSWAP_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "modelswap")


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as f:
        return f.read()


def detemplate(text):
    """Makes a Helm template parseable as YAML for structural checks: drops lines that are only
    a template action ({{- if ...}}, {{- end }}, {{- with }}, {{- toYaml ... | nindent }}) and
    replaces inline actions with a placeholder string."""
    out = []
    for line in text.splitlines():
        if re.fullmatch(r"\s*\{\{.*\}\}\s*", line):
            continue
        out.append(re.sub(r"\{\{.*?\}\}", "TEMPLATED", line))
    return "\n".join(out) + "\n"


def load_all(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]
