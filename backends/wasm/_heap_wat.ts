/**
 * Source of dtrain's in-heap wasm kernels, as WebAssembly text: a module
 * that imports the memory of tfjs' wasm backend (`env.memory`, shared when
 * the backend runs threads) and works on tensors where they live, so no
 * operand is copied. `tools/build_wasm.ts` compiles both variants; a test
 * checks the committed binaries are what this text compiles to. Every
 * address is a byte offset into the tfjs heap; every kernel takes float32
 * rows whose width is a multiple of 4 (one SIMD vector per 4 values).
 *
 * Exports:
 * - `colsum(x, out, rows, cols)`: `out[c] = sum over r of x[r, c]`, each
 *   column summed in row order from +0 (the order of tfjs' own Sum over
 *   the first axis, so the result is the same to the bit);
 * - `addrow(x, b, out, rows, cols)`: `out[r, c] = x[r, c] + b[c]` (a bias
 *   added to every row);
 * - `pool2x2(x, out, n, h, w, ch, oh, ow)`: MaxPool of a 2x2 pool with
 *   stride 2 and no padding, NHWC: each window's first maximum in row-major
 *   order (`f32x4.pmax`: a later value wins only if greater), the value
 *   `pool2x2grad` routes the gradient to;
 * - `pool2x2grad`: MaxPoolGrad of a 2x2 pool with stride 2 and no padding
 *   (see `poolGradFunction`).
 *
 * @module
 */
import { forRange, lg } from "./_gemm_wat.ts";

/**
 * The module as WebAssembly text, importing a shared memory when `shared`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heapWat } from "./_heap_wat.ts";
 * assert.ok(heapWat(true).includes("shared"));
 * assert.ok(!heapWat(false).includes("shared"));
 * ```
 */
export function heapWat(shared: boolean): string {
  return `(module
  (import "env" "memory" (memory 1${shared ? " 65536 shared" : ""}))
  ${rowFunctions()}
  ${poolFunction()}
  ${poolGradFunction()}
)`;
}

/** `colsum` and `addrow`: one pass over the rows, a vector of 4 columns at a time. */
function rowFunctions(): string {
  const cb = lg("cb");
  const colLoop = (body: string) =>
    `(local.set $c (i32.const 0))
      (block $c_d (loop $c_l
        (br_if $c_d (i32.ge_u ${lg("c")} ${cb}))
        ${body}
        (local.set $c (i32.add ${lg("c")} (i32.const 16)))
        (br $c_l)))`;
  const at = (base: string) => `(i32.add ${lg(base)} ${lg("c")})`;
  return `(func (export "colsum") (param $x i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $cb i32) (local $p i32)
    (local.set $cb (i32.shl ${lg("cols")} (i32.const 2)))
    (memory.fill ${lg("out")} (i32.const 0) ${cb})
    (local.set $p ${lg("x")})
    ${
    forRange(
      "r",
      lg("rows"),
      `${
        colLoop(
          `(v128.store ${at("out")} (f32x4.add (v128.load ${at("out")}) (v128.load ${at("p")})))`,
        )
      }
      (local.set $p (i32.add ${lg("p")} ${cb}))`,
    )
  })
  (func (export "addrow") (param $x i32) (param $b i32) (param $out i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $cb i32) (local $p i32) (local $q i32)
    (local.set $cb (i32.shl ${lg("cols")} (i32.const 2)))
    (local.set $p ${lg("x")})
    (local.set $q ${lg("out")})
    ${
    forRange(
      "r",
      lg("rows"),
      `${
        colLoop(
          `(v128.store ${at("q")} (f32x4.add (v128.load ${at("p")}) (v128.load ${at("b")})))`,
        )
      }
      (local.set $p (i32.add ${lg("p")} ${cb}))
      (local.set $q (i32.add ${lg("q")} ${cb}))`,
    )
  })`;
}

/** Locals and set-up shared by `pool2x2` and `pool2x2grad`. */
const POOL_LOCALS =
  `(local $b i32) (local $y i32) (local $xo i32) (local $c i32) (local $a i32) (local $d i32)
    (local $cb i32) (local $rowb i32) (local $p i32)
    (local.set $cb (i32.shl ${lg("ch")} (i32.const 2)))
    (local.set $rowb (i32.mul ${lg("w")} ${lg("cb")}))`;

/**
 * The loops over every 2x2 window of an NHWC input, 4 channels at a time:
 * `body` runs with `$p` the byte offset (from the input) of the window's
 * top-left cell for those channels, and `$d + $c` the address of their
 * vector of the pooled `[n, oh, ow, ch]` tensor that starts at `pooled`.
 */
function windowLoops(pooled: string, body: string): string {
  const cb = lg("cb"), rowb = lg("rowb");
  return `(local.set $d ${pooled})
    ${
    forRange(
      "b",
      lg("n"),
      forRange(
        "y",
        lg("oh"),
        `(local.set $a (i32.mul (i32.add (i32.mul ${lg("b")} ${lg("h")}) (i32.shl ${
          lg("y")
        } (i32.const 1))) ${rowb}))
        ${
          forRange(
            "xo",
            lg("ow"),
            `(local.set $c (i32.const 0))
            (block $c_d (loop $c_l
              (br_if $c_d (i32.ge_u ${lg("c")} ${cb}))
              (local.set $p (i32.add ${lg("a")} ${lg("c")}))
              ${body}
              (local.set $c (i32.add ${lg("c")} (i32.const 16)))
              (br $c_l)))
            (local.set $a (i32.add ${lg("a")} (i32.shl ${cb} (i32.const 1))))
            (local.set $d (i32.add ${lg("d")} ${cb}))`,
          )
        }`,
      ),
    )
  }`;
}

/** `pool2x2`: one output vector per 4 channels of each window. */
function poolFunction(): string {
  const ld = (at: string) => `(v128.load (i32.add ${lg("x")} ${at}))`;
  const p = lg("p"), cb = lg("cb"), rowb = lg("rowb");
  return `(func (export "pool2x2") (param $x i32) (param $out i32) (param $n i32) (param $h i32) (param $w i32) (param $ch i32) (param $oh i32) (param $ow i32)
    ${POOL_LOCALS}
    ${
    windowLoops(
      lg("out"),
      `(v128.store (i32.add ${lg("d")} ${lg("c")})
        (f32x4.pmax (f32x4.pmax (f32x4.pmax ${ld(p)} ${ld(`(i32.add ${p} ${cb})`)})
          ${ld(`(i32.add ${p} ${rowb})`)}) ${ld(`(i32.add ${p} (i32.add ${rowb} ${cb}))`)}))`,
    )
  })`;
}

/**
 * `pool2x2grad(x, g, dx, n, h, w, ch, oh, ow)`: the NHWC input gradient at
 * `dx` of a 2x2 max pool with stride 2 and no padding over the input at `x`,
 * from the output gradient `[n, oh, ow, ch]` at `g`; `ch % 4 === 0`. The
 * windows do not overlap, so each input cell gets its window's gradient if
 * it is the window's first maximum in row-major order (strict `>`, as the
 * CPU backend picks; a NaN never wins) and +0 otherwise. An odd last row or
 * column belongs to no window: the output is zero-filled first then.
 */
function poolGradFunction(): string {
  const ld = (at: string) => `(v128.load (i32.add ${lg("x")} ${at}))`;
  const st = (at: string, v: string) => `(v128.store (i32.add ${lg("dx")} ${at}) ${v})`;
  const p = lg("p"), cb = lg("cb"), rowb = lg("rowb");
  return `(func (export "pool2x2grad") (param $x i32) (param $g i32) (param $dx i32) (param $n i32) (param $h i32) (param $w i32) (param $ch i32) (param $oh i32) (param $ow i32)
    (local $m v128) (local $t1 v128) (local $t2 v128) (local $t3 v128) (local $v v128) (local $gv v128)
    ${POOL_LOCALS}
    (if (i32.or (i32.ne ${lg("h")} (i32.shl ${lg("oh")} (i32.const 1)))
          (i32.ne ${lg("w")} (i32.shl ${lg("ow")} (i32.const 1))))
      (then (memory.fill ${lg("dx")} (i32.const 0) (i32.mul (i32.mul ${lg("n")} ${
    lg("h")
  }) ${rowb}))))
    ${
    windowLoops(
      lg("g"),
      `(local.set $m ${ld(p)})
      (local.set $v ${ld(`(i32.add ${p} ${cb})`)})
      (local.set $t1 (f32x4.gt ${lg("v")} ${lg("m")}))
      (local.set $m (v128.bitselect ${lg("v")} ${lg("m")} ${lg("t1")}))
      (local.set $v ${ld(`(i32.add ${p} ${rowb})`)})
      (local.set $t2 (f32x4.gt ${lg("v")} ${lg("m")}))
      (local.set $m (v128.bitselect ${lg("v")} ${lg("m")} ${lg("t2")}))
      (local.set $t3 (f32x4.gt ${ld(`(i32.add ${p} (i32.add ${rowb} ${cb}))`)} ${lg("m")}))
      (local.set $gv (v128.load (i32.add ${lg("d")} ${lg("c")})))
      ${st(`(i32.add ${p} (i32.add ${rowb} ${cb}))`, `(v128.and ${lg("gv")} ${lg("t3")})`)}
      (local.set $t2 (v128.andnot ${lg("t2")} ${lg("t3")}))
      ${st(`(i32.add ${p} ${rowb})`, `(v128.and ${lg("gv")} ${lg("t2")})`)}
      (local.set $t3 (v128.or ${lg("t2")} ${lg("t3")}))
      (local.set $t1 (v128.andnot ${lg("t1")} ${lg("t3")}))
      ${st(`(i32.add ${p} ${cb})`, `(v128.and ${lg("gv")} ${lg("t1")})`)}
      ${st(p, `(v128.andnot ${lg("gv")} (v128.or ${lg("t1")} ${lg("t3")}))`)}`,
    )
  })`;
}
