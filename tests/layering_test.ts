// The house's layering, checked on every run: the library's rooms (mod.ts,
// backends/, and each folder under src/ with its subfolders; the files
// directly in src/ form the room "src") import each other without cycles, and
// a private `_file.ts` is imported only from inside its own room.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LIBRARY = ["mod.ts", "backends", "src"];

/** Every .ts/.js file of the library, relative to the repository root. */
async function libraryFiles(): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    const info = await Deno.stat(join(ROOT, rel));
    if (info.isFile) {
      if (/\.(ts|js)$/.test(rel)) out.push(rel);
      return;
    }
    for await (const entry of Deno.readDir(join(ROOT, rel))) {
      await walk(join(rel, entry.name));
    }
  }
  for (const top of LIBRARY) await walk(top);
  return out.sort();
}

/** The room of a library file: "mod", "backends", "src", or "src/<folder>". */
export function roomOf(file: string): string {
  const parts = file.split("/");
  if (parts.length === 1) return "mod";
  if (parts[0] === "backends") return "backends";
  return parts.length === 2 ? "src" : `src/${parts[1]}`;
}

/**
 * The relative module specifiers a file's code imports: static and dynamic
 * imports, re-exports, and Worker entry URLs (`new URL("./x.ts",
 * import.meta.url)`). Comments (doc examples) and template strings (messages)
 * are not code and are skipped.
 */
export function importsOf(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1")
    .replace(/`[^`]*`/g, "``");
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\b[^"'`;]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']/g,
    /\bimport\s*["'](\.{1,2}\/[^"']+)["']/g,
    /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g,
    /new URL\(\s*["'](\.{1,2}\/[^"']+\.(?:ts|js))["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) specs.push(match[1]!);
  }
  return specs;
}

interface Edge {
  from: string;
  to: string;
}

async function importGraph(): Promise<Edge[]> {
  const edges: Edge[] = [];
  for (const file of await libraryFiles()) {
    const source = await Deno.readTextFile(join(ROOT, file));
    for (const spec of importsOf(source)) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
      edges.push({ from: file, to: target });
    }
  }
  return edges;
}

/** The cycles of a directed graph, one per strongly connected component (Tarjan). */
export function cyclesOf(graph: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  function visit(v: string): void {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || graph.get(v)?.has(v)) out.push(component.sort());
    }
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

Deno.test("the library's rooms import each other without cycles", async () => {
  const graph = new Map<string, Set<string>>();
  const why = new Map<string, string>();
  for (const { from, to } of await importGraph()) {
    const a = roomOf(from);
    const b = roomOf(to);
    if (!graph.has(a)) graph.set(a, new Set());
    if (!graph.has(b)) graph.set(b, new Set());
    if (a === b) continue;
    graph.get(a)!.add(b);
    if (!why.has(`${a}->${b}`)) why.set(`${a}->${b}`, `${from} imports ${to}`);
  }
  const cycles = cyclesOf(graph);
  const detail = cycles.map((c) =>
    c.join(" <-> ") + ": " +
    [...why.entries()].filter(([k]) => {
      const [a, b] = k.split("->");
      return c.includes(a!) && c.includes(b!);
    }).map(([, v]) => v).join("; ")
  );
  assert.deepEqual(detail, [], `folder cycles:\n${detail.join("\n")}`);
});

Deno.test("no library file imports another room's private _file", async () => {
  const offences = (await importGraph())
    .filter(({ from, to }) => to.split("/").pop()!.startsWith("_") && roomOf(from) !== roomOf(to))
    .map(({ from, to }) => `${from} imports ${to}`);
  assert.deepEqual(offences, []);
});

Deno.test("every relative import of the library resolves to a file", async () => {
  const missing: string[] = [];
  for (const { from, to } of await importGraph()) {
    try {
      await Deno.stat(join(ROOT, to));
    } catch {
      missing.push(`${from} imports ${to}`);
    }
  }
  assert.deepEqual(missing, []);
});

Deno.test("cyclesOf() finds a cycle and importsOf() skips comments", () => {
  const graph = new Map([["a", new Set(["b"])], ["b", new Set(["c"])], ["c", new Set(["a"])]]);
  assert.deepEqual(cyclesOf(graph), [["a", "b", "c"]]);
  graph.get("c")!.delete("a");
  assert.deepEqual(cyclesOf(graph), []);
  const specs = importsOf(
    [
      '/** import { x } from "./doc.ts"; */',
      'import { y } from "./code.ts";',
      "export * from '../up.ts';",
      'import "./side.ts";',
      'const w = new Worker(new URL("./entry.ts", import.meta.url));',
      'const m = await import("./lazy.ts");',
      '// import { z } from "./commented.ts";',
      'throw new Error(`use new URL("./msg.ts", import.meta.url)`);',
    ].join("\n"),
  );
  assert.deepEqual(specs.sort(), [
    "../up.ts",
    "./code.ts",
    "./entry.ts",
    "./lazy.ts",
    "./side.ts",
  ]);
});
