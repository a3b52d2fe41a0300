/**
 * Compiles dtrain's WebAssembly text modules with `wabt` (a development
 * dependency: the library ships the compiled bytes, base64 encoded).
 *
 * @module
 */
import wabtInit from "wabt";
import { gemmWat } from "../backends/wasm/_gemm_wat.ts";
import { heapWat } from "../backends/wasm/_heap_wat.ts";
import { kernelsWat } from "../src/collective/_kernels_wat.ts";

/** A module: its text and the generated file that carries its bytes. */
export interface WatModule {
  name: string;
  text: () => string;
  /** The generated TypeScript file, relative to the repository root. */
  target: string;
  /** Name of the exported base64 constant in `target`. */
  constant: string;
  /** The text's file, for the generated file's header. @default `target` with `_wat.ts` */
  source?: string;
}

/** Every WebAssembly module dtrain builds from text. */
export const WAT_MODULES: WatModule[] = [
  {
    name: "wasm GEMM kernel",
    text: gemmWat,
    target: "backends/wasm/_gemm_wasm.ts",
    constant: "GEMM_WASM_BASE64",
  },
  {
    name: "wasm in-heap kernels",
    text: () => heapWat(false),
    target: "backends/wasm/_heap_wasm.ts",
    constant: "HEAP_WASM_BASE64",
  },
  {
    name: "wasm in-heap kernels for a shared memory",
    text: () => heapWat(true),
    target: "backends/wasm/_heap_shared_wasm.ts",
    constant: "HEAP_SHARED_WASM_BASE64",
    source: "_heap_wat.ts",
  },
  {
    name: "replica group SIMD kernels",
    text: kernelsWat,
    target: "src/collective/_kernels_wasm.ts",
    constant: "KERNELS_WASM_BASE64",
  },
];

/** The module's bytes, as `wabt` compiles its text. */
export async function compileWat(module: WatModule): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await wabtInit();
  const mod = wabt.parseWat(`${module.constant}.wat`, module.text(), {
    simd: true,
    relaxed_simd: true,
    threads: true,
  });
  try {
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}
