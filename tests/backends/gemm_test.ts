import assert from "node:assert/strict";
import { compileGemm } from "../../tools/_compile_gemm.ts";
import { GEMM_WASM_BASE64 } from "../../backends/wasm/_gemm_wasm.ts";
import { gemmAvailable } from "../../backends/wasm/_gemm.ts";

Deno.test("the committed wasm GEMM binary is what _gemm_wat.ts compiles to", async () => {
  const fresh = await compileGemm();
  const committed = Uint8Array.from(atob(GEMM_WASM_BASE64), (c) => c.charCodeAt(0));
  assert.deepEqual(
    committed,
    fresh,
    "backends/wasm/_gemm_wasm.ts is stale: run `deno run -A tools/build_gemm.ts`",
  );
});

Deno.test("gemmAvailable() is true on Deno (SIMD and relaxed SIMD)", () => {
  assert.equal(gemmAvailable(), true);
});
