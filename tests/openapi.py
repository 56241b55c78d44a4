"""Validate API responses against the project's own OpenAPI schema (as Zulip does for every test)."""

import re
from functools import cache

import jsonschema
from drf_spectacular.generators import SchemaGenerator


@cache
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(node, root):
    """Inline $refs and turn OpenAPI 3.0 `nullable` into JSON Schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _resolve(target, root)
        out = {k: _resolve(v, root) for k, v in node.items() if k != "nullable"}
        if node.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_resolve(x, root) for x in node]
    return node


def _operation(method: str, path: str):
    for template, item in schema()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]
    return None


def validate_response(method: str, path: str, status: int, body) -> None:
    """Fail unless the schema documents this status for this operation and the body matches it."""
    operation = _operation(method, path)
    assert operation is not None, f"{method} {path} is not in the OpenAPI schema"
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {path} -> {status} is not documented (has {sorted(responses)})"
    content = responses[str(status)].get("content", {})
    if not content:
        return
    media = content.get("application/json") or next(iter(content.values()))
    jsonschema.validate(body, _resolve(media["schema"], schema()))
