import assert from "node:assert/strict";
import { compileWat, WAT_MODULES } from "../../tools/_compile_wat.ts";
import { gemmAvailable } from "../../backends/wasm/_gemm.ts";

for (const module of WAT_MODULES) {
  Deno.test(`the committed ${module.name} binary is what its text compiles to`, async () => {
    const fresh = await compileWat(module);
    const generated = await import(`../../${module.target}`) as Record<string, string>;
    const committed = Uint8Array.from(atob(generated[module.constant]!), (c) => c.charCodeAt(0));
    assert.deepEqual(
      committed,
      fresh,
      `${module.target} is stale: run \`deno run -A tools/build_wasm.ts\``,
    );
    assert.ok(WebAssembly.validate(committed), `${module.name} validates`);
  });
}

Deno.test("gemmAvailable() is true on Deno (SIMD and relaxed SIMD)", () => {
  assert.equal(gemmAvailable(), true);
});
