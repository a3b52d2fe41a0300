/**
 * Compiles the wasm GEMM kernel's text to a binary with `wabt` (a
 * development dependency: the library ships the compiled bytes).
 *
 * @module
 */
import wabtInit from "wabt";
import { gemmWat } from "../backends/wasm/_gemm_wat.ts";

/** The kernel module's bytes, as `wabt` compiles `gemmWat()`. */
export async function compileGemm(): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat("gemm.wat", gemmWat(), { simd: true, relaxed_simd: true });
  try {
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}
