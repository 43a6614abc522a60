// Renders the service's OpenAPI document. Text from the document only ever goes through
// textContent or text nodes, so it cannot become markup.
"use strict";

(function () {
  const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
  const FIELD_HEADINGS = ["Field", "Type", "Required", "Limits", "Description"];

  /** A new element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** An element whose `backticked` words become <code>. */
  function prose(tag, className, text) {
    const node = el(tag, className);
    String(text).split("`").forEach((part, i) => {
      node.append(i % 2 ? el("code", null, part) : document.createTextNode(part));
    });
    return node;
  }

  /** The object a local "#/a/b" reference points to. */
  function lookup(spec, ref) {
    if (!ref.startsWith("#/")) return {};
    const parts = ref.slice(2).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    return parts.reduce((node, part) => (node ? node[part] : undefined), spec) || {};
  }

  /** Follows $ref chains; keys beside a $ref (such as description) win, as in OpenAPI 3.1. */
  function resolve(spec, node) {
    for (let hops = 0; node && typeof node.$ref === "string" && hops < 32; hops++) {
      const siblings = Object.assign({}, node);
      delete siblings.$ref;
      node = Object.assign({}, lookup(spec, node.$ref), siblings);
    }
    return node || {};
  }

  function typeOf(spec, raw) {
    const schema = resolve(spec, raw);
    if (schema.oneOf) return schema.oneOf.map((alt) => typeOf(spec, alt)).join(" | ");
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
    let type = [].concat(schema.type || "any").join(" | ");
    if (type === "array" && schema.items) type = typeOf(spec, schema.items) + "[]";
    return schema.format ? `${type} (${schema.format})` : type;
  }

  function limits(schema) {
    const parts = [];
    const min = schema.minLength;
    const max = schema.maxLength;
    if (min !== undefined && max !== undefined) parts.push(`${min}–${max} characters`);
    else if (min !== undefined) parts.push(`at least ${min} characters`);
    else if (max !== undefined) parts.push(`at most ${max} characters`);
    if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
    if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
    if (schema.minProperties !== undefined) parts.push(`at least ${schema.minProperties} field`);
    if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
    return parts.join(", ");
  }

  /** Rows for an object's fields; nested objects are flattened as `parent.child`. */
  function fieldRows(spec, schema, prefix, rows) {
    const required = new Set(schema.required || []);
    Object.entries(schema.properties || {}).forEach(([name, raw]) => {
      const field = resolve(spec, raw);
      const need = required.has(name) ? "required" : "optional";
      rows.push([prefix + name, typeOf(spec, field), need, limits(field), field.description]);
      if (field.properties) fieldRows(spec, field, `${prefix}${name}.`, rows);
    });
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
      const extra = resolve(spec, schema.additionalProperties);
      rows.push([`${prefix}<any field>`, typeOf(spec, extra), "optional", limits(extra),
                 extra.description]);
    }
    return rows;
  }

  function fieldTable(rows) {
    const table = el("table");
    const head = table.createTHead().insertRow();
    FIELD_HEADINGS.forEach((heading) => head.append(el("th", null, heading)));
    const body = table.createTBody();
    rows.forEach(([name, type, need, limit, description]) => {
      const row = body.insertRow();
      row.append(el("td", null, name), el("td", null, type), el("td", null, need),
                 el("td", null, limit), prose("td", null, description || ""));
    });
    return table;
  }

  function schemaBlock(spec, raw) {
    const schema = resolve(spec, raw);
    const block = el("div", "schema");
    if (schema.description) block.append(prose("p", "note", schema.description));
    if (schema.oneOf) {
      block.append(el("p", "note", "One of:"));
      schema.oneOf.forEach((alt) => block.append(schemaBlock(spec, alt)));
      return block;
    }
    const rows = fieldRows(spec, schema, "", []);
    if (rows.length) block.append(fieldTable(rows));
    else block.append(el("p", "type", [typeOf(spec, schema), limits(schema)].filter(Boolean)
      .join(", ")));
    return block;
  }

  function appendContent(spec, content, parent) {
    Object.entries(content || {}).forEach(([mediaType, media]) => {
      parent.append(el("p", "media", mediaType));
      if (media.schema) parent.append(schemaBlock(spec, media.schema));
    });
  }

  function headerLine(spec, name, raw) {
    const header = resolve(spec, raw);
    const line = el("p", "header");
    line.append(el("code", null, `${name}: ${typeOf(spec, header.schema || {})}`), " ");
    line.append(prose("span", null, header.description || ""));
    return line;
  }

  function responseBlock(spec, status, raw) {
    const response = resolve(spec, raw);
    const block = el("div", "response");
    const head = el("h4");
    head.append(el("span", `status status-${status.charAt(0)}`, status), " ");
    head.append(prose("span", null, response.description || ""));
    block.append(head);
    Object.entries(response.headers || {}).forEach(([name, header]) => {
      block.append(headerLine(spec, name, header));
    });
    if (response.content) appendContent(spec, response.content, block);
    else block.append(el("p", "note", "No body."));
    return block;
  }

  function securityNote(spec, security) {
    const schemes = (spec.components && spec.components.securitySchemes) || {};
    const names = security.flatMap(Object.keys).map((name) => {
      const scheme = schemes[name] || {};
      if (scheme.scheme !== "bearer") return name;
      return `Authorization: Bearer <${scheme.bearerFormat || "token"}>`;
    });
    return el("p", "auth", `Requires ${names.join(" or ")}`);
  }

  function operationSection(spec, path, method, op) {
    const section = el("section", "operation");
    section.id = op.operationId || `${method} ${path}`;
    const heading = el("h2");
    heading.append(el("span", `method method-${method}`, method.toUpperCase()), " ");
    heading.append(el("code", null, path));
    section.append(heading);
    if (op.summary) section.append(el("p", "summary", op.summary));
    if (op.description) section.append(prose("p", null, op.description));
    if (op.security && op.security.length) section.append(securityNote(spec, op.security));
    if (op.requestBody) {
      section.append(el("h3", null, "Request body"));
      appendContent(spec, resolve(spec, op.requestBody).content, section);
    }
    section.append(el("h3", null, "Responses"));
    Object.entries(op.responses || {}).forEach(([status, response]) => {
      section.append(responseBlock(spec, status, response));
    });
    return section;
  }

  function tocEntry(section, label) {
    const link = el("a", null, label);
    link.href = `#${encodeURIComponent(section.id)}`;
    const entry = el("li");
    entry.append(link);
    return entry;
  }

  function render(spec) {
    const info = spec.info || {};
    document.title = `${info.title || "API"} API`;
    document.getElementById("title").textContent = info.title || "API documentation";
    document.getElementById("version").textContent =
      `Version ${info.version || "?"} · OpenAPI ${spec.openapi}`;
    document.getElementById("about").replaceWith(prose("p", null, info.description || ""));
    const toc = el("ul");
    const main = document.getElementById("endpoints");
    main.replaceChildren();
    Object.entries(spec.paths || {}).forEach(([path, item]) => {
      METHODS.filter((method) => item[method]).forEach((method) => {
        const section = operationSection(spec, path, method, item[method]);
        main.append(section);
        toc.append(tocEntry(section, `${method.toUpperCase()} ${path}`));
      });
    });
    document.getElementById("toc").append(toc);
  }

  function fail(error) {
    const main = document.getElementById("endpoints");
    main.replaceChildren(el("p", "error", `Could not load the OpenAPI document: ${error.message}`));
  }

  // The <link id="spec"> is relative to the page, so its resolved href is the document's URL.
  fetch(document.getElementById("spec").href, { headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      return response.json();
    })
    .then(render)
    .catch(fail);
})();
