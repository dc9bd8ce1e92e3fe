// A small, local stand-in for Swagger UI: each operation in /openapi.json with its fields and responses.
"use strict";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Follows a "$ref" inside the same document ("#/components/schemas/Name").
function resolve(spec, schema) {
  if (!schema || !schema.$ref) return schema || {};
  return schema.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node[key], spec);
}

function typeOf(schema) {
  if (schema.anyOf) return schema.anyOf.map(typeOf).filter((t) => t !== "null").join(" | ");
  if (schema.type === "array") return `list of ${typeOf(schema.items || {})}`;
  if (schema.format === "binary" || schema.contentMediaType) return "file";
  return schema.type || "object";
}

function fieldTable(spec, body) {
  const schema = resolve(spec, body.schema);
  const table = el("table");
  const head = el("tr");
  head.append(el("th", null, "field"), el("th", null, "type"), el("th", null, "description"));
  table.append(head);
  for (const [name, raw] of Object.entries(schema.properties || {})) {
    const field = resolve(spec, raw);
    const row = el("tr");
    row.append(el("td", null, name), el("td", null, typeOf(field)), el("td", null, field.description || ""));
    table.append(row);
  }
  return table;
}

function render(spec) {
  const box = document.getElementById("endpoints");
  box.replaceChildren();
  for (const [path, operations] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      const card = el("section", "card endpoint");
      const title = el("h2");
      title.append(el("span", `method ${method}`, method.toUpperCase()), el("code", null, path), el("span", null, op.summary || ""));
      card.append(title);
      const body = op.requestBody && op.requestBody.content;
      if (body) {
        for (const [type, content] of Object.entries(body)) {
          card.append(el("p", null, `Body: ${type}`), fieldTable(spec, content));
        }
      }
      const codes = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description}`);
      card.append(el("p", "note", `Responses: ${codes.join(" · ")}`));
      box.append(card);
    }
  }
}

fetch("/openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => {
    document.getElementById("endpoints").textContent = `Could not read /openapi.json (${error.message}).`;
  });
