import assert from "node:assert/strict";
import { groupKernels, groupMemory } from "../../src/collective/kernels.ts";

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 8;
  });
}

Deno.test("group kernels sum in float32 exactly as the JavaScript all-reduce does", () => {
  const n = 1027; // a SIMD body and a scalar tail
  const memory = groupMemory(6 * n * 4)!;
  const k = groupKernels(memory)!;
  const f = new Float32Array(memory.buffer);
  const [a, b, c] = [random(n, 1), random(n, 2), random(n, 3)];
  f.set(a, 0);
  f.set(b, n);
  f.set(c, 2 * n);
  const out = 3 * n;
  const [wa, wb, wc] = [Math.fround(0.3), Math.fround(0.45), Math.fround(0.25)];
  k.wsum2(out * 4, 0, n * 4, wa, wb, n);
  k.waxpy(out * 4, 2 * n * 4, wc, n);
  const r = Math.fround;
  for (let i = 0; i < n; i++) {
    const want = r(r(r(wa * a[i]!) + r(wb * b[i]!)) + r(wc * c[i]!));
    assert.equal(f[out + i], want, `element ${i}`);
  }
  k.wscale(out * 4, 0, wb, n);
  for (let i = 0; i < n; i++) assert.equal(f[out + i], r(wb * a[i]!), `scaled element ${i}`);
});

Deno.test("groupMemory() refuses more than wasm32 can address", () => {
  assert.equal(groupMemory(2 ** 32 + 1), null);
  const small = groupMemory(1);
  assert.ok(small instanceof WebAssembly.Memory);
  assert.ok(small.buffer instanceof SharedArrayBuffer);
});
