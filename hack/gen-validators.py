#!/usr/bin/env python3
"""Generate runtime/pyrunc/spec/_validators.py from the JSON Schemas in oci-schemas/.

Why: `import jsonschema` costs 50-80 ms, more than a whole `pyrunc state`.  The
generated module is plain Python (one function per schema node), so importing
it costs well under a millisecond, and it reports every violation with its
JSON path instead of stopping at the first.

Only the draft 2020-12 keywords our schemas use are supported; any other
keyword is an error here, so the schemas and the generated code cannot
silently disagree.  "x-pattern-message" is ours: it words a pattern failure
("is not an absolute path" rather than the regular expression).

Deliberate differences from a JSON Schema validator (both make the runtime
stricter, never looser):
- "integer" means a JSON number without a fraction or exponent (1.0 is not an
  integer), as Go's encoding/json in runc sees it.
- A pattern ending in "$" matches at the very end of the string, as in
  ECMA-262 (Python's "$" would also match before a trailing newline).

Usage: hack/gen-validators.py [--check]   (--check: exit 1 if the file is stale)
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "oci-schemas"
OUTPUT = REPO / "runtime" / "pyrunc" / "spec" / "_validators.py"

# kind -> (schema file, JSON pointer of the root node)
ROOTS = {
    "config": ("config-schema.json", ""),
    "state": ("state-schema.json", ""),
    "features": ("features-schema.json", ""),
    "process": ("config-schema.json", "/$defs/posixProcess"),
}

IGNORED = {"$schema", "$comment", "$defs", "description", "title", "x-pattern-message"}
HANDLED = {
    "$ref", "type", "enum", "const", "minimum", "maximum", "pattern", "minLength", "minItems",
    "items", "required", "properties", "additionalProperties", "propertyNames", "dependentRequired",
    "allOf", "anyOf", "if", "then", "else",
}
TYPE_TESTS = {
    "object": "type(v) is dict",
    "array": "type(v) is list",
    "string": "type(v) is str",
    "integer": "type(v) is int",
    "number": "(type(v) is int or type(v) is float)",
    "boolean": "type(v) is bool",
    "null": "v is None",
}
# Which keywords need which instance type when the node does not declare one.
GUARDS = {
    "object": ("required", "properties", "additionalProperties", "propertyNames", "dependentRequired"),
    "array": ("minItems", "items"),
    "string": ("pattern", "minLength"),
    "number": ("minimum", "maximum"),
}

RUNTIME = '''
def _at(p: str) -> str:
    """Display form of an internal path: '.process.args[0]' -> 'process.args[0]', '' -> '$'."""
    return p[1:] if p[:1] == "." else (p or "$")


def _key(k: str) -> str:
    if k.isascii() and k.isidentifier():
        return "." + k
    return '["' + k.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"]'


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _tn(v: object) -> str:
    return _TYPE_NAMES.get(type(v), "null")


def _r(v: object) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


_RX: dict = {}


def _rx(pattern: str):
    r = _RX.get(pattern)
    if r is None:
        import re  # only for a pattern PLAIN_TESTS does not know

        r = _RX[pattern] = re.compile(pattern)
    return r


# The schemas' common patterns as plain string tests (see PLAIN_TESTS in the
# generator): `re` and the enum module it imports would cost create ~3 ms.


def _digits(v: str) -> bool:
    return v.isascii() and v.isdigit()


def _number(v: str) -> bool:
    """Digits without a leading zero (SemVer's numeric identifier)."""
    return _digits(v) and (v == "0" or v[0] != "0")


def _word(v: str) -> bool:
    return v != "" and v.isascii() and all(c.isalnum() or c == "-" for c in v)


def _semver(v: str) -> bool:
    rest, plus, build = v.partition("+")
    core, dash, pre = rest.partition("-")
    parts = core.split(".")
    return (len(parts) == 3 and all(_number(x) for x in parts)
            and (not dash or all(_word(x) and (not _digits(x) or _number(x)) for x in pre.split(".")))
            and (not plus or all(_word(x) for x in build.split("."))))


def _cpu_list(v: str) -> bool:
    return v == "" or all(all(_digits(n) for n in part.split("-", 1)) for part in v.split(","))


_CAP_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _cap_name(v: str) -> bool:
    return v.startswith("CAP_") and len(v) > 4 and _CAP_CHARS.issuperset(v[4:])


def _abs_path(v: str) -> bool:
    return v.startswith("/")


def _abs_or_drive(v: str) -> bool:
    return v.startswith("/") or (v[:1].isascii() and v[:1].isalpha() and v[1:3] == ":" + chr(92))


def _one_line(v: str) -> bool:
    return chr(10) not in v


def _mb_schema(v: str) -> bool:
    return v.startswith("MB:") and chr(10) not in v


def _page_size(v: str) -> bool:
    return len(v) > 2 and v[-1] == "B" and v[-2] in "KMG" and _number(v[:-2]) and v[0] != "0"
'''

# pattern (as written in the schemas) -> the runtime function above that tests it;
# test_schemas compares each against `re` and the generated validator against jsonschema.
PLAIN_TESTS = {
    r"^/": "_abs_path",
    r"^(/|[A-Za-z]:\\)": "_abs_or_drive",
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$": "_semver",
    r"^([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)?$": "_cpu_list",
    r"^MB:[^\n]*$": "_mb_schema",
    r"^CAP_[A-Z0-9_]+$": "_cap_name",
    r"^[^\n]*$": "_one_line",
    r"^[1-9][0-9]*[KMG]B$": "_page_size",
}


class Schemas:
    def __init__(self) -> None:
        self.files = {p.name: json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))}

    def node(self, file: str, ptr: str) -> object:
        n = self.files[file]
        for part in ptr.split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            n = n[int(part)] if isinstance(n, list) else n[part]
        return n

    def resolve(self, file: str, ref: str) -> tuple[str, str]:
        target, _, ptr = ref.partition("#")
        return (target or file), ptr


class Generator:
    def __init__(self, schemas: Schemas) -> None:
        self.s = schemas
        self.names: dict[tuple[str, str], str] = {}
        self.used: set[str] = set()
        self.queue: list[tuple[str, str]] = []
        self.by_content: dict[tuple[str, str], str] = {}
        self.consts: list[str] = []

    def name_for(self, file: str, ptr: str) -> str:
        """Function name for a node; a bare {"$ref": ...} node is its target."""
        node = self.s.node(file, ptr)
        if isinstance(node, dict) and "$ref" in node and not (set(node) - IGNORED - {"$ref"}):
            return self.name_for(*self.s.resolve(file, node["$ref"]))
        key = (file, ptr)
        # Identical subschemas ({"type": "string"}, ...) share one function; "#/" refs depend on the file.
        text = json.dumps(node, sort_keys=True)
        content = (file if '"$ref"' in text else "", text)
        if key not in self.names and content in self.by_content:
            self.names[key] = self.by_content[content]
        if key not in self.names:
            if isinstance(node, dict) and set(node) == {"type"} and isinstance(node["type"], str):
                base = "_v_" + node["type"]  # shared by every {"type": ...} leaf
            else:
                base = "_v_" + re.sub(r"[^0-9A-Za-z]+", "_", file.removesuffix(".json") + ptr).strip("_")
            name, n = base, 2
            while name in self.used:
                name, n = f"{base}_{n}", n + 1
            self.used.add(name)
            self.names[key] = self.by_content[content] = name
            self.queue.append(key)
        return self.names[key]

    def const(self, value: object) -> str:
        """A module-level constant so functions do not rebuild it; sets are sorted for deterministic output."""
        text = f"frozenset({tuple(sorted(value))!r})" if isinstance(value, frozenset) else repr(value)
        if text not in self.consts:
            self.consts.append(text)
        return f"_C{self.consts.index(text)}"

    def generate(self) -> str:
        entry = {kind: self.name_for(f, p) for kind, (f, p) in ROOTS.items()}
        funcs = []
        while self.queue:
            file, ptr = self.queue.pop(0)
            funcs.append(self.function(file, ptr))
        out = [
            "# Generated by hack/gen-validators.py from oci-schemas/*.json: do not edit.",
            '"""Validators for pyrunc\'s OCI schemas; see hack/gen-validators.py for semantics.',
            "",
            "Each function takes (value, internal path, error list) and appends one",
            "'<json path>: <problem>' line per violation.",
            '"""',
            "# ruff: noqa",
            "from __future__ import annotations",
            RUNTIME,
        ]
        out += [f"_C{i} = {text}" for i, text in enumerate(self.consts)]
        out += ["", ""]
        out.append("\n\n\n".join(funcs))
        out += ["", "", "VALIDATORS = {"]
        out += [f"    {kind!r}: {name}," for kind, name in entry.items()]
        out += ["}", ""]
        return "\n".join(out)

    def function(self, file: str, ptr: str) -> str:
        node = self.s.node(file, ptr)
        if not isinstance(node, dict):
            raise SystemExit(f"{file}#{ptr}: only object schemas are supported")
        unknown = set(node) - HANDLED - IGNORED
        if unknown:
            raise SystemExit(f"{file}#{ptr}: unsupported keywords {sorted(unknown)}")
        lines = [f"def {self.names[(file, ptr)]}(v, p, e):", f"    # {file}#{ptr} (and any identical node)"]
        lines += ["    " + line for line in (self.body(file, ptr, node) or ["pass"])]
        return "\n".join(lines)

    def body(self, file: str, ptr: str, node: dict) -> list[str]:
        b: list[str] = []
        if "$ref" in node:
            b.append(f"{self.name_for(*self.s.resolve(file, node['$ref']))}(v, p, e)")
        declared = node.get("type")
        if declared is not None:
            types = [declared] if isinstance(declared, str) else list(declared)
            test = " or ".join(TYPE_TESTS[t] for t in types)
            want = " or ".join(types)
            b += [f"if not ({test}):", f'    e.append(_at(p) + ": expected {want}, got " + _tn(v))', "    return"]
        if "enum" in node:
            values = node["enum"]
            if all(isinstance(x, str) for x in values):
                c = self.const(frozenset(values))
                b.append(f"if not (type(v) is str and v in {c}):")
            else:  # compare types too: True == 1 in Python, not in JSON
                c = self.const(tuple((type(x).__name__, x) for x in values))
                b.append(f"if not any(type(v).__name__ == t and v == x for t, x in {c}):")
            b.append(f"    e.append(_at(p) + ': ' + _r(v) + {' is not one of ' + repr(values)!r})")
        if "const" in node:
            c = node["const"]
            b += [f"if not (type(v) is {type(c).__name__} and v == {c!r}):",
                  f"    e.append(_at(p) + {': expected ' + repr(c) + ', got '!r} + _r(v))"]
        single = declared if isinstance(declared, str) else None
        for kind, keys in GUARDS.items():
            present = [k for k in keys if k in node]
            if not present:
                continue
            inner = self.typed(file, ptr, node, kind)
            satisfied = single == kind or (kind == "number" and single == "integer")
            if satisfied:
                b += inner
            else:
                guard = TYPE_TESTS["number"] if kind == "number" else TYPE_TESTS[kind]
                b.append(f"if {guard}:")
                b += ["    " + line for line in inner]
        for i, _ in enumerate(node.get("allOf", ())):
            b.append(f"{self.name_for(file, f'{ptr}/allOf/{i}')}(v, p, e)")
        if "anyOf" in node:
            names = ", ".join(self.name_for(file, f"{ptr}/anyOf/{i}") for i in range(len(node["anyOf"])))
            b += ["t = []", f"for f in ({names},):", "    s = []", "    f(v, p, s)", "    if not s:", "        break",
                  "    t += s", "else:", "    pre = len(_at(p)) + 2",
                  '    e.append(_at(p) + ": matches none of the alternatives (" + "; ".join(m[pre:] for m in t) + ")")']
        if "if" in node and ("then" in node or "else" in node):
            b += ["t = []", f"{self.name_for(file, ptr + '/if')}(v, p, t)"]
            if "then" in node:
                b += ["if not t:", f"    {self.name_for(file, ptr + '/then')}(v, p, e)"]
            if "else" in node:
                b += ["if t:" if "then" not in node else "else:", f"    {self.name_for(file, ptr + '/else')}(v, p, e)"]
        return b

    def typed(self, file: str, ptr: str, node: dict, kind: str) -> list[str]:
        """Checks that only apply to one instance type (the type is known here)."""
        b: list[str] = []
        if kind == "number":
            if "minimum" in node:
                b += [f"if v < {node['minimum']!r}:", f"    e.append(_at(p) + ': ' + _r(v) + ' is less than the minimum {node['minimum']!r}')"]
            if "maximum" in node:
                b += [f"if v > {node['maximum']!r}:", f"    e.append(_at(p) + ': ' + _r(v) + ' is greater than the maximum {node['maximum']!r}')"]
        elif kind == "string":
            if "minLength" in node:
                n = node["minLength"]
                msg = "must not be empty" if n == 1 else f"must be at least {n} characters long"
                b += [f"if len(v) < {n}:", f"    e.append(_at(p) + ': ' + _r(v) + {' ' + msg!r})"]
            if "pattern" in node:
                pat = node["pattern"]
                test = PLAIN_TESTS.get(pat)
                if pat.endswith("$") and not pat.endswith("\\$"):
                    pat = pat[:-1] + "\\Z"
                msg = node.get("x-pattern-message", f"does not match {node['pattern']!r}")
                cond = f"not {test}(v)" if test else f"_rx({pat!r}).search(v) is None"
                b += [f"if {cond}:", f'    e.append(_at(p) + ": " + _r(v) + " " + {msg!r})']
        elif kind == "array":
            if "minItems" in node:
                n = node["minItems"]
                b += [f"if len(v) < {n}:", f'    e.append(_at(p) + ": expected at least {n} item(s), got " + str(len(v)))']
            if "items" in node:
                item = self.name_for(file, ptr + "/items")
                b += ["for i, x in enumerate(v):", f'    {item}(x, p + "[" + str(i) + "]", e)']
        elif kind == "object":
            for k in node.get("required", ()):
                b += [f"if {k!r} not in v:", f"    e.append(_at(p) + {': missing required property ' + repr(k)!r})"]
            for k, deps in node.get("dependentRequired", {}).items():
                for d in deps:
                    b += [f"if {k!r} in v and {d!r} not in v:",
                          f"    e.append(_at(p) + {f': property {d!r} is required when {k!r} is present'!r})"]
            props = node.get("properties", {})
            for k in props:
                sub = self.name_for(file, f"{ptr}/properties/{k.replace('~', '~0').replace('/', '~1')}")
                suffix = "." + k if k.isascii() and k.isidentifier() else '["' + k.replace("\\", "\\\\").replace('"', '\\"') + '"]'
                b += [f"if {k!r} in v:",
                      f"    {sub}(v[{k!r}], p + {suffix!r}, e)"]
            if "propertyNames" in node:
                sub = self.name_for(file, ptr + "/propertyNames")
                b += ["pre = len(_at(p)) + 2", "for k in v:", "    t = []", f"    {sub}(k, p, t)",
                      '    e += [_at(p) + ": property name " + m[pre:] for m in t]']
            if "additionalProperties" in node:
                sub = self.name_for(file, ptr + "/additionalProperties")
                if props:
                    c = self.const(frozenset(props))
                    b += ["for k, x in v.items():", f"    if k not in {c}:", f"        {sub}(x, p + _key(k), e)"]
                else:
                    b += ["for k, x in v.items():", f"    {sub}(x, p + _key(k), e)"]
        return b


def main() -> int:
    text = Generator(Schemas()).generate()
    if sys.argv[1:] == ["--check"]:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run hack/gen-validators.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
