"""The generic walk of the configuration schema: keys, types, enums, bounds, one short line per problem.

``workflow/schemas/config.schema.yaml`` (:data:`SCHEMA_PATH`) is the one definition
of the configuration's keys and types. It is walked here rather than handed to a
generic JSON-schema validator, whose errors are pages long and, for a ``oneOf``,
never name the offending key. Each problem is one message starting with the key
path it is about, e.g.::

    datasets.my-brain.slice_per_volume: unknown key; did you mean slices_per_volume?
    training.epochs: must be a positive integer, got 'ten'

Unknown keys get a did-you-mean; a mapping with a ``oneOf`` whose branches share a
``const`` key (a ``datasets.<name>`` section and its ``format``) is checked against
the branch that key selects. The subset of JSON Schema the walk understands:
``type``, ``enum``, ``const``, bounds, ``pattern``, ``items``/``minItems``/``maxItems``/
``uniqueItems``/``contains``, ``properties``/``required``/``additionalProperties``/
``unevaluatedProperties``/``propertyNames``/``minProperties``, ``oneOf``, ``allOf``,
local ``$ref`` and ``$comment`` (a message of its own for ``pattern`` and ``contains``).

The project's rules between keys and the model arguments are :mod:`oucr.config_rules`;
:mod:`oucr.config_check` runs all of them. No torch here.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import yaml

from oucr.errors import ConfigError
from oucr.names import OUCR, OUCR_FULL

PathLike = Union[str, Path]

#: the schema, next to the workflow that it configures
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"

_NUMBER_TYPES = ("integer", "number")


# Small helpers -------------------------------------------------------------------------------


def is_int(v: Any) -> bool:
    """Whether ``v`` is an integer (a bool is not)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """Whether ``v`` is an integer or a float (a bool is not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def quote_value(value: Any) -> str:
    """A value as a message quotes it: short, never a dump."""
    if isinstance(value, Mapping):
        return "a mapping" if value else "an empty mapping"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def closest_name(word: Any, choices: Iterable[Any]) -> Optional[str]:
    """The choice closest to ``word`` (difflib, cutoff 0.6), or None."""
    options = [str(c) for c in choices]
    found = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return found[0] if found else None


#: names that are not keys of their own because they are another name's run
_SAME_AS = {OUCR_FULL: OUCR}


def unknown_key(path: str, key: Any, known: Iterable[Any], what: str = "key") -> str:
    """The message for an unknown ``key`` under ``path``: the known name it is, or resembles."""
    known = [str(k) for k in known]
    if _SAME_AS.get(key) in known:
        return f"{_join(path, key)}: {key} is {_SAME_AS[key]} itself; use {_join(path, _SAME_AS[key])}"
    match = closest_name(key, known)
    if match:
        return f"{_join(path, key)}: unknown {what}; did you mean {match}?"
    return f"{_join(path, key)}: unknown {what}; known: {', '.join(known) or 'none'}"


def _number_text_hint(value: Any) -> str:
    """Why a number arrived as text, when it did."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    if re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
        return f" (YAML reads {value} as text: write it with a decimal point, e.g. {value.replace('e', '.0e', 1)})"
    return " (a quoted number is text: remove the quotes)"


# The schema walk -----------------------------------------------------------------------------


def load_schema(path: Optional[PathLike] = None) -> Dict[str, Any]:
    """The configuration schema (default :data:`SCHEMA_PATH`).

    Raises:
        ConfigError: if the schema file is missing or not YAML.
    """
    p = Path(path) if path is not None else SCHEMA_PATH
    if not p.is_file():
        raise ConfigError(f"the configuration schema {p} does not exist (run from a checkout of the workflow)")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"the configuration schema {p} is not valid YAML: {err}") from err


def _types(node: Mapping[str, Any]) -> List[str]:
    t = node.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


def _has_type(value: Any, t: str) -> bool:
    return {
        "object": lambda v: isinstance(v, Mapping),
        "array": lambda v: isinstance(v, (list, tuple)),
        "string": lambda v: isinstance(v, str),
        "integer": is_int,
        "number": is_number,
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }[t](value)


def _bounds(node: Mapping[str, Any]) -> Tuple[Optional[Tuple[str, Any]], Optional[Tuple[str, Any]]]:
    lower = (">", node["exclusiveMinimum"]) if "exclusiveMinimum" in node else (
        (">=", node["minimum"]) if "minimum" in node else None)
    upper = ("<", node["exclusiveMaximum"]) if "exclusiveMaximum" in node else (
        ("<=", node["maximum"]) if "maximum" in node else None)
    return lower, upper


def _numeric_phrase(kind: str, node: Mapping[str, Any]) -> str:
    noun = "integer" if kind == "integer" else "number"
    lower, upper = _bounds(node)
    if upper is None and lower in ((">=", 1), (">", 0)):
        return f"a positive {noun}"
    if upper is None and lower == (">=", 0):
        return f"a non-negative {noun}"
    if lower and upper and lower[0] == ">" and upper[0] == "<":
        return f"a {noun} strictly between {lower[1]} and {upper[1]}"
    article = "an" if noun == "integer" else "a"
    bounds = " and ".join(f"{op} {v}" for op, v in (b for b in (lower, upper) if b is not None))
    return f"{article} {noun} {bounds}".rstrip()


class SchemaWalk:
    """Checks a value against the schema, collecting ``path: message`` problems."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.root = schema
        self.problems: List[str] = []
        self.paths: Set[str] = set()  #: key paths with a problem (later layers skip them)

    # schema plumbing

    def resolve(self, node: Mapping[str, Any]) -> Dict[str, Any]:
        """``node`` with its ``$ref`` followed and its ``allOf`` parts merged in."""
        node = dict(node or {})
        while "$ref" in node:
            ref = node.pop("$ref")
            if not ref.startswith("#/"):
                raise ConfigError(f"the configuration schema refers outside itself ({ref}); only #/... is supported")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part]
            node = {**target, **node}
        for part in node.pop("allOf", []) or []:
            part = self.resolve(part)
            for key, value in part.items():
                if key == "properties":
                    node["properties"] = {**value, **node.get("properties", {})}
                elif key == "required":
                    node["required"] = list(dict.fromkeys(list(node.get("required", [])) + list(value)))
                else:
                    node.setdefault(key, value)
        return node

    def describe(self, node: Mapping[str, Any]) -> str:
        """What a node accepts, as a noun phrase (``a positive integer``, ``one of a, b``)."""
        node = self.resolve(node)
        types = _types(node)
        if "enum" in node:
            phrase = "one of " + ", ".join(str(v) for v in node["enum"])
        elif "const" in node:
            phrase = repr(node["const"])
        else:
            parts = []
            for t in types:
                if t in _NUMBER_TYPES:
                    parts.append(_numeric_phrase(t, node))
                elif t == "boolean":
                    parts.append("true or false")
                elif t == "string":
                    parts.append("text")
                elif t == "object":
                    parts.append("a mapping of keys")
                elif t == "array":
                    parts.append(self._array_phrase(node))
            phrase = " or ".join(parts) or "valid"
        if "null" in types and "enum" not in node:
            phrase += " or null"
        return phrase

    def _array_phrase(self, node: Mapping[str, Any]) -> str:
        lo, hi = node.get("minItems"), node.get("maxItems")
        head = f"a list of {lo} values" if lo is not None and lo == hi else (
            "a non-empty list" if lo else "a list")
        items = node.get("items")
        return head + (f", each {self.describe(items)}" if items else "")

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)
        self.paths.add(path)

    # the walk

    def walk(self, value: Any, node: Mapping[str, Any], path: str = "", context: str = "") -> None:
        """Check ``value`` against ``node``; ``context`` qualifies 'required' messages."""
        node = self.resolve(node)
        if not node:
            return
        types = _types(node)
        if types and not any(_has_type(value, t) for t in types):
            hint = _number_text_hint(value) if any(t in _NUMBER_TYPES for t in types) else ""
            self.add(path, f"must be {self.describe(node)}, got {quote_value(value)}{hint}")
            return
        if value is None:
            return
        if "const" in node and value != node["const"]:
            self.add(path, f"must be {node['const']!r}, got {quote_value(value)}")
            return
        if "enum" in node and value not in node["enum"]:
            match = closest_name(value, node["enum"]) if isinstance(value, str) else None
            self.add(path, f"must be one of {', '.join(str(v) for v in node['enum'])}, got {quote_value(value)}"
                     + (f"; did you mean {match}?" if match else ""))
            return
        if is_number(value) and not self._within_bounds(value, node):
            self.add(path, f"must be {self.describe(node)}, got {quote_value(value)}")
            return
        if isinstance(value, str) and "pattern" in node and not re.search(node["pattern"], value):
            self.add(path, f"{node.get('$comment') or 'must match ' + node['pattern']}, got {quote_value(value)}")
            return
        if isinstance(value, (list, tuple)):
            self._walk_array(value, node, path)
        elif isinstance(value, Mapping):
            self._walk_object(value, node, path, context)
            if "oneOf" in node:
                self._walk_one_of(value, node, path)

    @staticmethod
    def _within_bounds(value: Any, node: Mapping[str, Any]) -> bool:
        lower, upper = _bounds(node)
        ok = True
        if lower is not None:
            ok &= value > lower[1] if lower[0] == ">" else value >= lower[1]
        if upper is not None:
            ok &= value < upper[1] if upper[0] == "<" else value <= upper[1]
        return bool(ok)

    def _walk_array(self, value: Sequence[Any], node: Mapping[str, Any], path: str) -> None:
        lo, hi = node.get("minItems"), node.get("maxItems")
        if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
            self.add(path, f"must be {self.describe(node)}, got {quote_value(list(value))}")
            return
        if node.get("uniqueItems"):
            seen: List[Any] = []
            for item in value:
                if item in seen:
                    self.add(path, f"lists {quote_value(item)} more than once")
                    return
                seen.append(item)
        if "items" in node:
            for i, item in enumerate(value):
                self.walk(item, node["items"], f"{path}[{i}]")
        if "contains" in node:
            wanted = self.resolve(node["contains"])
            if not any(self._accepts(item, wanted) for item in value):
                target = repr(wanted["const"]) if "const" in wanted else self.describe(wanted)
                self.add(path, node.get("$comment") or f"must contain {target}")

    def _accepts(self, value: Any, node: Mapping[str, Any]) -> bool:
        probe = SchemaWalk(self.root)
        probe.walk(value, node)
        return not probe.problems

    def _walk_object(self, value: Mapping[str, Any], node: Mapping[str, Any], path: str, context: str) -> None:
        properties: Mapping[str, Any] = node.get("properties") or {}
        for key in node.get("required", []) or []:
            if key not in value:
                self.add(_join(path, key), f"missing (required{context})")
        n = node.get("minProperties")
        if n is not None and len(value) < n:
            self.add(path, f"needs at least {n} entr{'y' if n == 1 else 'ies'}")
        names = self.resolve(node["propertyNames"]) if "propertyNames" in node else None
        extra = node.get("additionalProperties", node.get("unevaluatedProperties", True))
        for key, sub in value.items():
            kpath = _join(path, key)
            if names is not None and not self._accepts(str(key), names):
                if "enum" in names:
                    self.problems.append(unknown_key(path, key, names["enum"]))
                    self.paths.add(kpath)
                else:
                    self.add(kpath, f"not a valid key: {names.get('$comment') or self.describe(names)}")
                continue
            if key in properties:
                self.walk(sub, properties[key], kpath)
            elif extra is False:
                self.problems.append(unknown_key(path, key, properties))
                self.paths.add(kpath)
            elif isinstance(extra, Mapping):
                self.walk(sub, extra, kpath)

    def _walk_one_of(self, value: Mapping[str, Any], node: Mapping[str, Any], path: str) -> None:
        branches = [self.resolve(b) for b in node["oneOf"]]
        keys = set.intersection(*(set(b.get("properties") or {}) for b in branches)) if branches else set()
        disc = next((k for k in sorted(keys)
                     if all("const" in self.resolve(b["properties"][k]) for b in branches)), None)
        if disc is not None:
            if disc not in value:
                if disc not in (node.get("required") or []):
                    self.add(_join(path, disc), "missing (required)")
                return
            consts = [self.resolve(b["properties"][disc])["const"] for b in branches]
            if value[disc] not in consts:
                if "enum" not in self.resolve((node.get("properties") or {}).get(disc, {})):
                    self.add(_join(path, disc),
                             f"must be one of {', '.join(map(str, consts))}, got {quote_value(value[disc])}")
                return
            branch = branches[consts.index(value[disc])]
            self.walk(value, branch, path, context=f" with {disc}: {value[disc]}")
            return
        trials = []
        for branch in branches:
            probe = SchemaWalk(self.root)
            probe.walk(value, branch, path)
            if not probe.problems:
                return
            trials.append(probe)
        best = min(trials, key=lambda p: len(p.problems))
        self.problems += best.problems
        self.paths |= best.paths


def schema_problems(config: Mapping[str, Any], schema: Mapping[str, Any]) -> Tuple[List[str], Set[str]]:
    """Problems of keys and types, and the key paths they are about."""
    walk = SchemaWalk(schema)
    walk.walk(config, schema)
    return walk.problems, walk.paths


def is_flagged(paths: Set[str], path: str) -> bool:
    """Whether ``path``, a key inside it or a section around it already has a problem.

    ``paths`` are the key paths a check reported (:attr:`SchemaWalk.paths`); later
    checks skip what the schema walk already flagged.
    """
    return any(p == path or p.startswith(path + ".") or p.startswith(path + "[") or path.startswith(p + ".")
               for p in paths if p)


def apply_defaults(config: Dict[str, Any], schema: Mapping[str, Any]) -> Dict[str, Any]:
    """Fill in the schema's top-level ``default`` values that ``config`` leaves out, in place."""
    for key, node in (schema.get("properties") or {}).items():
        if isinstance(node, Mapping) and "default" in node:
            config.setdefault(key, copy.deepcopy(node["default"]))
    return config
