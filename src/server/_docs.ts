// Private: GET /docs, a self-contained HTML page rendered from the OpenAPI
// document (no CDN, no script), so it works on an offline host.

function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

type Json = Record<string, unknown>;

function schemaText(schema: unknown): string {
  if (schema === undefined) return "";
  const ref = (schema as Json)?.$ref;
  if (typeof ref === "string") {
    const name = ref.split("/").pop()!;
    return `<a href="#schema-${esc(name)}">${esc(name)}</a>`;
  }
  return `<code>${esc(JSON.stringify(schema))}</code>`;
}

/** Renders `spec` (an OpenAPI 3 document) as one HTML page. */
export function renderDocs(spec: Json): string {
  const info = (spec.info ?? {}) as Json;
  const paths = (spec.paths ?? {}) as Record<string, Record<string, Json>>;
  const schemas = ((spec.components as Json | undefined)?.schemas ?? {}) as Record<string, unknown>;
  const routes: string[] = [];
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = ((op.parameters ?? []) as Json[])
        .map((p) =>
          `<li><code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? ", required" : ""})</li>`
        )
        .join("");
      const body = ((op.requestBody as Json | undefined)?.content as Json | undefined)?.[
        "application/json"
      ] as Json | undefined;
      const responses = Object.entries((op.responses ?? {}) as Record<string, Json>)
        .map(([status, r]) => {
          const content = (r.content ?? {}) as Record<string, Json>;
          const types = Object.entries(content)
            .map(([type, c]) => `${esc(type)} ${schemaText(c.schema)}`).join(", ");
          return `<li><b>${esc(status)}</b> ${esc(r.description ?? "")} ${types}</li>`;
        }).join("");
      routes.push(
        `<section><h3><span class="m">${esc(method.toUpperCase())}</span> ${esc(path)}</h3><p>${
          esc(op.summary ?? "")
        }</p>${op.description ? `<p>${esc(op.description)}</p>` : ""}${
          params ? `<p>Parameters:</p><ul>${params}</ul>` : ""
        }${
          body ? `<p>Body: ${schemaText(body.schema)}</p>` : ""
        }<p>Responses:</p><ul>${responses}</ul></section>`,
      );
    }
  }
  const defs = Object.entries(schemas).map(([name, s]) =>
    `<section id="schema-${esc(name)}"><h3>${esc(name)}</h3><pre>${
      esc(JSON.stringify(s, null, 2))
    }</pre></section>`
  ).join("");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.m{display:inline-block;min-width:4.5rem;font-family:monospace;color:#036}
pre{background:#f4f4f4;padding:.5rem;overflow:auto}section{border-top:1px solid #ddd}</style>
</head><body><h1>${esc(info.title)} ${esc(info.version)}</h1><p>${esc(info.description ?? "")}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a></p>
<h2>Routes</h2>${routes.join("")}<h2>Schemas</h2>${defs}</body></html>`;
}
