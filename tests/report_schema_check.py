#!/usr/bin/env python3
"""Validates JSON documents against doc/report.schema.json.

Uses the jsonschema package when it is installed; otherwise (or with
--builtin) a small checker of the subset of draft-07 the schema uses: type,
properties, required, additionalProperties: false, items, enum, const,
minimum, maximum, pattern, $ref (local), allOf, if/then/else.

usage: report_schema_check.py [--builtin] SCHEMA DOC.json...
Exit status: 0 valid, 1 invalid, 2 usage.
"""
import json
import re
import sys

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}

KNOWN = {"$schema", "$id", "title", "description", "definitions", "type", "properties",
         "required", "additionalProperties", "items", "enum", "const", "minimum",
         "maximum", "pattern", "$ref", "allOf", "if", "then", "else"}


def check(root, schema, value, path, errors):
    unknown = set(schema) - KNOWN
    if unknown:
        raise SystemExit("schema uses %s, which this checker does not know" % sorted(unknown))
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        check(root, node, value, path, errors)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            errors.append("%s: %r is not of type %s" % (path, value, types))
            return
    if "const" in schema and value != schema["const"]:
        errors.append("%s: %r is not %r" % (path, value, schema["const"]))
    if "enum" in schema and value not in schema["enum"]:
        errors.append("%s: %r is not one of %r" % (path, value, schema["enum"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append("%s: %r < %r" % (path, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append("%s: %r > %r" % (path, value, schema["maximum"]))
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append("%s: %r does not match %r" % (path, value, schema["pattern"]))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                errors.append("%s: %r is required" % (path, k))
        for k, v in value.items():
            if k in props:
                check(root, props[k], v, "%s.%s" % (path, k), errors)
            elif schema.get("additionalProperties", True) is False:
                errors.append("%s: %r is not allowed" % (path, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            check(root, schema["items"], v, "%s[%d]" % (path, i), errors)
    for sub in schema.get("allOf", []):
        check(root, sub, value, path, errors)
    if "if" in schema:
        probe = []
        check(root, schema["if"], value, path, probe)
        branch = schema.get("then") if not probe else schema.get("else")
        if branch is not None:
            check(root, branch, value, path, errors)


def main(argv):
    builtin = "--builtin" in argv
    argv = [a for a in argv if a != "--builtin"]
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    schema = json.load(open(argv[0]))
    validator = None
    if not builtin:
        try:
            import jsonschema
            validator = jsonschema.Draft7Validator(schema)
        except ImportError:
            pass
    bad = 0
    for name in argv[1:]:
        doc = json.load(open(name))
        if validator is not None:
            errors = ["%s: %s" % ("/".join(map(str, e.absolute_path)), e.message)
                      for e in validator.iter_errors(doc)]
            how = "jsonschema"
        else:
            errors = []
            check(schema, schema, doc, "$", errors)
            how = "builtin checker"
        for e in errors[:20]:
            print("%s: %s" % (name, e))
        print("%s: %s (%s)" % (name, "valid" if not errors else "INVALID", how))
        bad |= bool(errors)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
