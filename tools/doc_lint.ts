/**
 * `deno doc --lint` over dtrain's public modules. tfjs ships its types
 * without doc comments, so `mod.ts` (which re-exports `tf`) is linted through
 * its own parts, and "references private type X" is accepted only where X is
 * a tfjs type (dtrain's API takes tfjs models and tensors by design) or Hono's
 * app class (the server returns one). Every other finding fails.
 *
 * @module
 */
const MODULES = [
  "backends/mod.ts",
  "src/strategy/strategy.ts",
  "src/strategy/create_strategy.ts",
  "src/strategy/mirrored.ts",
  "src/strategy/worker.ts",
  "src/strategy/ps/remote_workers.ts",
  "src/edge/mod.ts",
  "src/cluster/mod.ts",
  "src/strategy/keras.ts",
  "src/server/mod.ts",
  "src/cli/main.ts",
  "src/training/callbacks.ts",
  "src/training/progress.ts",
  "src/errors.ts",
  "src/data/mod.ts",
  "src/io/mod.ts",
];
const TFJS_TYPES = new Set([
  "Tensor",
  "Tensor2D",
  "Scalar",
  "LayersModel",
  "IOHandler",
  "Optimizer",
  "Sequential",
  "OpenAPIHono",
]);

const out = await new Deno.Command(Deno.execPath(), {
  args: ["doc", "--lint", ...MODULES],
  env: { NO_COLOR: "1" },
  stdout: "piped",
  stderr: "piped",
}).output();
const text = new TextDecoder().decode(out.stderr) +
  new TextDecoder().decode(out.stdout);
const blocks = text.split(/\n(?=error\[)/).filter((b) => b.startsWith("error["));
const failures = blocks.filter((b) => {
  const m = b.match(
    /^error\[private-type-ref\]: public type '.*' references private type '(\w+)'/,
  );
  return !(m && TFJS_TYPES.has(m[1]!));
});
for (const f of failures) console.error(f.trim() + "\n");
console.error(
  `doc lint: ${blocks.length - failures.length} accepted tfjs type references, ` +
    `${failures.length} errors`,
);
Deno.exit(failures.length === 0 ? 0 : 1);
