"""Sphinx extension of the cognito_mfa docs: the REST API page from the app's OpenAPI schema.

At ``builder-inited`` the schema is generated with drf-spectacular from the URLconf Django is
set up with (the example project's, which mounts the app under ``/api/mfa/``), exactly as the
site serves it at ``/api/schema/``, and written to ``_generated/openapi.json`` for download.
The ``openapi-operations`` directive renders every operation of it: method and path,
summary, description, authentication, parameters, request body and responses with their
error codes, then every schema component the operations refer to. Nothing is retyped: a new
endpoint or a changed field appears in the docs with the next build.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

METHODS = ("get", "post", "put", "patch", "delete")
SCHEMA_FILE = "openapi.json"


def generate_schema(app: Sphinx) -> None:
    """Generate the schema once per build (warnings of drf-spectacular fail the build)."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    if GENERATOR_STATS:
        raise RuntimeError(f"drf-spectacular reported problems: {GENERATOR_STATS}")
    # The renderer turns lazy texts and the like into plain JSON, as the served schema is.
    rendered = json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))
    app.env.cognito_mfa_schema = rendered  # type: ignore[attr-defined]
    target = Path(app.srcdir) / "_generated"
    target.mkdir(exist_ok=True)
    (target / SCHEMA_FILE).write_text(json.dumps(rendered, indent=2, sort_keys=True) + "\n")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with ``literal`` and `literal` spans, as the schema's descriptions hold."""
    parts: list[nodes.Node] = []
    # re.split with two groups yields text, group1, group2, text, ... ; walk it in threes.
    pieces = re.split(r"``(.+?)``|`(.+?)`", text)
    for index in range(0, len(pieces), 3):
        if pieces[index]:
            parts.append(nodes.Text(pieces[index]))
        if index + 2 < len(pieces):
            code = pieces[index + 1] or pieces[index + 2]
            if code:
                parts.append(nodes.literal(code, code))
    return parts


def _description(text: str) -> list[nodes.Node]:
    """Paragraphs and ``- `` bullet lists of a description."""
    result: list[nodes.Node] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines and all(line.startswith("- ") for line in lines):
            bullets = nodes.bullet_list()
            for line in lines:
                bullets += nodes.list_item("", nodes.paragraph("", "", *_inline(line[2:])))
            result.append(bullets)
        elif block.strip():
            result.append(nodes.paragraph("", "", *_inline(" ".join(lines))))
    return result


def _table(header: list[str], rows: list[list[list[nodes.Node]]], classes: str) -> nodes.table:
    table = nodes.table(classes=[classes])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head_row = nodes.row()
    for title in header:
        head_row += nodes.entry("", nodes.paragraph(text=title))
    head += head_row
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += cell if cell else [nodes.paragraph(text="")]
            row += entry
        body += row
    return table


class OpenAPIOperations(SphinxDirective):
    """Render every operation and referenced schema of the generated OpenAPI document."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        schema: dict[str, Any] = self.env.cognito_mfa_schema  # type: ignore[attr-defined]
        self.components = schema.get("components", {}).get("schemas", {})
        self.schemes = schema.get("components", {}).get("securitySchemes", {})
        result: list[nodes.Node] = [self._summary(schema)]
        for path, item in schema["paths"].items():
            for method in METHODS:
                if method in item:
                    result.append(self._operation(method, path, item[method]))
        components = nodes.section(ids=["schemas"])
        components += nodes.title(text="Schemas")
        for name, component in self.components.items():
            components += self._component(name, component)
        result.append(components)
        return result

    # -- pieces ---------------------------------------------------------------------------------

    def _reference(self, name: str) -> nodes.Node:
        reference = nodes.reference("", "", internal=True, refid=f"schema-{_slug(name)}")
        reference += nodes.literal(name, name)
        return nodes.inline("", "", reference)

    def _type(self, spec: dict[str, Any]) -> list[nodes.Node]:
        if "$ref" in spec:
            return [self._reference(spec["$ref"].rsplit("/", 1)[-1])]
        if "allOf" in spec and len(spec["allOf"]) == 1:
            return self._type(spec["allOf"][0])
        for combinator in ("oneOf", "anyOf"):
            if combinator in spec:
                parts: list[nodes.Node] = []
                for index, option in enumerate(spec[combinator]):
                    if index:
                        parts.append(nodes.Text(" or "))
                    parts.extend(self._type(option))
                return parts
        kind = spec.get("type", "any")
        if kind == "array":
            return [nodes.Text("array of "), *self._type(spec.get("items", {}))]
        words = [kind]
        if "format" in spec:
            words.append(f"({spec['format']})")
        if "enum" in spec:
            words.append("one of " + ", ".join(json.dumps(value) for value in spec["enum"]))
        if "maxLength" in spec:
            words.append(f"at most {spec['maxLength']} characters")
        if "pattern" in spec:
            words.append(f"matching {spec['pattern']}")
        if spec.get("nullable"):
            words.append("or null")
        return [nodes.Text(" ".join(words))]

    def _summary(self, schema: dict[str, Any]) -> nodes.Node:
        rows = []
        for path, item in schema["paths"].items():
            for method in METHODS:
                if method in item:
                    operation = item[method]
                    link = nodes.reference(
                        "", "", internal=True, refid=_slug(operation["operationId"])
                    )
                    link += nodes.literal(text=f"{method.upper()} {path}")
                    rows.append(
                        [
                            [nodes.paragraph("", "", link)],
                            [nodes.paragraph(text=operation.get("summary", ""))],
                            [nodes.paragraph(text=", ".join(operation["responses"]))],
                        ]
                    )
        container = nodes.container(classes=["openapi-summary"])
        container += nodes.paragraph(
            "",
            "",
            nodes.Text(f"{schema['info']['title']} {schema['info']['version']}: "),
            nodes.Text(schema["info"].get("description", "")),
        )
        container += _table(["operation", "what it does", "statuses"], rows, "openapi-operations")
        return container

    def _operation(self, method: str, path: str, operation: dict[str, Any]) -> nodes.Node:
        section = nodes.section(ids=[_slug(operation["operationId"])], classes=["openapi-op"])
        section += nodes.title(text=f"{method.upper()} {path}")
        if operation.get("summary"):
            section += nodes.paragraph("", "", nodes.strong(text=operation["summary"]))
        if operation.get("description"):
            section += _description(operation["description"])
        section += self._security(operation)
        parameters = operation.get("parameters", [])
        if parameters:
            rows = [
                [
                    [nodes.paragraph("", "", nodes.literal(text=parameter["name"]))],
                    [nodes.paragraph(text=parameter["in"])],
                    [nodes.paragraph("", "", *self._type(parameter.get("schema", {})))],
                    [nodes.paragraph("", "", *_inline(parameter.get("description", "")))],
                ]
                for parameter in parameters
            ]
            section += nodes.rubric(text="Parameters")
            section += _table(["name", "in", "type", "meaning"], rows, "openapi-parameters")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            section += nodes.rubric(text="Request body (application/json)")
            section += nodes.paragraph("", "", *self._type(body["schema"]))
        rows = []
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            shape = self._type(content["schema"]) if content else [nodes.Text("no body")]
            rows.append(
                [
                    [nodes.paragraph(text=status)],
                    [nodes.paragraph("", "", *shape)],
                    _description(response.get("description", "")),
                ]
            )
        section += nodes.rubric(text="Responses")
        section += _table(["status", "body", "codes and meaning"], rows, "openapi-responses")
        return section

    def _security(self, operation: dict[str, Any]) -> nodes.Node:
        requirements = operation.get("security")
        names = [name for requirement in requirements or [] for name in requirement]
        if not names:
            return nodes.paragraph(text="Authentication: none (no bearer token is read).")
        paragraph = nodes.paragraph(text="Authentication: ")
        for index, name in enumerate(names):
            scheme = self.schemes.get(name, {})
            if index:
                paragraph += nodes.Text(" or ")
            paragraph += nodes.literal(text=name)
            if scheme.get("scheme") == "bearer":
                paragraph += nodes.Text(" (Authorization: Bearer <Cognito access token>)")
        return paragraph

    def _component(self, name: str, component: dict[str, Any]) -> nodes.Node:
        section = nodes.section(ids=[f"schema-{_slug(name)}"], classes=["openapi-schema"])
        section += nodes.title(text=name)
        if component.get("description"):
            section += _description(component["description"])
        properties = component.get("properties")
        if not properties:
            section += nodes.paragraph("", "", *self._type(component))
            return section
        required = set(component.get("required", []))
        rows = []
        for field, spec in properties.items():
            flags = []
            if field in required:
                flags.append("required")
            if spec.get("readOnly"):
                flags.append("read-only")
            rows.append(
                [
                    [nodes.paragraph("", "", nodes.literal(text=field))],
                    [nodes.paragraph("", "", *self._type(spec))],
                    [nodes.paragraph(text=", ".join(flags))],
                    _description(spec.get("description", "")),
                ]
            )
        section += _table(["field", "type", "", "meaning"], rows, "openapi-fields")
        return section


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", generate_schema)
    app.add_directive("openapi-operations", OpenAPIOperations)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
