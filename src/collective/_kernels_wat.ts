/**
 * Source of the replica group's SIMD kernels, as WebAssembly text.
 * `tools/build_wasm.ts` compiles it (with `wabt`) into `_kernels_wasm.ts`; a
 * test checks the committed binary is what this text compiles to.
 *
 * The module imports the group's shared memory (`env.memory`) and works on
 * byte addresses in it, in float32 arithmetic:
 * - `wsum2(out, a, b, wa, wb, n)`: `out[i] = wa * a[i] + wb * b[i]`;
 * - `waxpy(out, a, wa, n)`: `out[i] = out[i] + wa * a[i]`;
 * - `wscale(out, a, wa, n)`: `out[i] = wa * a[i]`;
 * - `sgd(w, g, n, lr)`: `w -= lr * g`;
 * - `momentum(w, acc, g, n, lr, mu, nesterov)`: `acc = mu * acc + g`, then
 *   `w -= lr * acc` (or `lr * (g + mu * acc)` with Nesterov);
 * - `adam(w, m, v, g, n, lr, b1, b2, c1, c2, eps)`: `m = b1 m + (1 - b1) g`,
 *   `v = b2 v + (1 - b2) g^2`, `w -= lr * (m c1) / (sqrt(v c2) + eps)`,
 *   where `c1`, `c2` are the bias corrections `1 / (1 - beta^t)`.
 *
 * @module
 */

/** `(local.get $x)` shorthand. */
const g = (x: string) => `(local.get $${x})`;
/** Byte address of float `i` from base `p`. */
const at = (p: string, i = "i") => `(i32.add ${g(p)} (i32.shl ${g(i)} (i32.const 2)))`;

/**
 * An element-wise loop: `vec` runs on 4 floats at a time, `scalar` on the
 * tail; both see `$i` (a float index).
 */
function loop(vec: string, scalar: string): string {
  return `
    (local.set $end4 (i32.and ${g("n")} (i32.const -4)))
    (local.set $i (i32.const 0))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u ${g("i")} ${g("end4")}))
      ${vec}
      (local.set $i (i32.add ${g("i")} (i32.const 4)))
      (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u ${g("i")} ${g("n")}))
      ${scalar}
      (local.set $i (i32.add ${g("i")} (i32.const 1)))
      (br $sl)))`;
}

const LOOP_LOCALS = "(local $i i32) (local $end4 i32)";

/**
 * The kernel module as WebAssembly text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelsWat } from "./_kernels_wat.ts";
 * assert.ok(kernelsWat().includes('(export "adam")'));
 * ```
 */
export function kernelsWat(): string {
  const vload = (p: string) => `(v128.load ${at(p)})`;
  const fload = (p: string) => `(f32.load ${at(p)})`;
  return `(module
  (import "env" "memory" (memory 1 65536 shared))
  (func (export "wsum2") (param $out i32) (param $a i32) (param $b i32) (param $wa f32) (param $wb f32) (param $n i32)
    ${LOOP_LOCALS} (local $va v128) (local $vb v128)
    (local.set $va (f32x4.splat ${g("wa")}))
    (local.set $vb (f32x4.splat ${g("wb")}))
    ${
    loop(
      `(v128.store ${at("out")} (f32x4.add (f32x4.mul ${g("va")} ${vload("a")}) (f32x4.mul ${
        g("vb")
      } ${vload("b")})))`,
      `(f32.store ${at("out")} (f32.add (f32.mul ${g("wa")} ${fload("a")}) (f32.mul ${g("wb")} ${
        fload("b")
      })))`,
    )
  })
  (func (export "waxpy") (param $out i32) (param $a i32) (param $wa f32) (param $n i32)
    ${LOOP_LOCALS} (local $va v128)
    (local.set $va (f32x4.splat ${g("wa")}))
    ${
    loop(
      `(v128.store ${at("out")} (f32x4.add ${vload("out")} (f32x4.mul ${g("va")} ${vload("a")})))`,
      `(f32.store ${at("out")} (f32.add ${fload("out")} (f32.mul ${g("wa")} ${fload("a")})))`,
    )
  })
  (func (export "wscale") (param $out i32) (param $a i32) (param $wa f32) (param $n i32)
    ${LOOP_LOCALS} (local $va v128)
    (local.set $va (f32x4.splat ${g("wa")}))
    ${
    loop(
      `(v128.store ${at("out")} (f32x4.mul ${g("va")} ${vload("a")}))`,
      `(f32.store ${at("out")} (f32.mul ${g("wa")} ${fload("a")}))`,
    )
  })
  (func (export "sgd") (param $w i32) (param $g i32) (param $n i32) (param $lr f32)
    ${LOOP_LOCALS} (local $vlr v128)
    (local.set $vlr (f32x4.splat ${g("lr")}))
    ${
    loop(
      `(v128.store ${at("w")} (f32x4.sub ${vload("w")} (f32x4.mul ${g("vlr")} ${vload("g")})))`,
      `(f32.store ${at("w")} (f32.sub ${fload("w")} (f32.mul ${g("lr")} ${fload("g")})))`,
    )
  })
  (func (export "momentum") (param $w i32) (param $acc i32) (param $g i32) (param $n i32) (param $lr f32) (param $mu f32) (param $nesterov i32)
    ${LOOP_LOCALS} (local $vlr v128) (local $vmu v128) (local $va v128) (local $vg v128) (local $sa f32) (local $sg f32)
    (local.set $vlr (f32x4.splat ${g("lr")}))
    (local.set $vmu (f32x4.splat ${g("mu")}))
    ${
    loop(
      `(local.set $vg ${vload("g")})
      (local.set $va (f32x4.add (f32x4.mul ${g("vmu")} ${vload("acc")}) ${g("vg")}))
      (v128.store ${at("acc")} ${g("va")})
      (v128.store ${at("w")} (f32x4.sub ${vload("w")} (f32x4.mul ${g("vlr")}
        (if (result v128) ${g("nesterov")}
          (then (f32x4.add ${g("vg")} (f32x4.mul ${g("vmu")} ${g("va")})))
          (else ${g("va")})))))`,
      `(local.set $sg ${fload("g")})
      (local.set $sa (f32.add (f32.mul ${g("mu")} ${fload("acc")}) ${g("sg")}))
      (f32.store ${at("acc")} ${g("sa")})
      (f32.store ${at("w")} (f32.sub ${fload("w")} (f32.mul ${g("lr")}
        (if (result f32) ${g("nesterov")}
          (then (f32.add ${g("sg")} (f32.mul ${g("mu")} ${g("sa")})))
          (else ${g("sa")})))))`,
    )
  })
  (func (export "adam") (param $w i32) (param $m i32) (param $v i32) (param $g i32) (param $n i32) (param $lr f32) (param $b1 f32) (param $b2 f32) (param $c1 f32) (param $c2 f32) (param $eps f32)
    ${LOOP_LOCALS}
    (local $vlr v128) (local $vb1 v128) (local $vb2 v128) (local $vg1 v128) (local $vg2 v128)
    (local $vc1 v128) (local $vc2 v128) (local $veps v128)
    (local $x v128) (local $m1 v128) (local $v1 v128)
    (local $sx f32) (local $sm f32) (local $sv f32)
    (local.set $vlr (f32x4.splat ${g("lr")}))
    (local.set $vb1 (f32x4.splat ${g("b1")}))
    (local.set $vb2 (f32x4.splat ${g("b2")}))
    (local.set $vg1 (f32x4.splat (f32.sub (f32.const 1) ${g("b1")})))
    (local.set $vg2 (f32x4.splat (f32.sub (f32.const 1) ${g("b2")})))
    (local.set $vc1 (f32x4.splat ${g("c1")}))
    (local.set $vc2 (f32x4.splat ${g("c2")}))
    (local.set $veps (f32x4.splat ${g("eps")}))
    ${
    loop(
      `(local.set $x ${vload("g")})
      (local.set $m1 (f32x4.add (f32x4.mul ${g("vb1")} ${vload("m")}) (f32x4.mul ${g("vg1")} ${
        g("x")
      })))
      (local.set $v1 (f32x4.add (f32x4.mul ${g("vb2")} ${vload("v")}) (f32x4.mul ${
        g("vg2")
      } (f32x4.mul ${g("x")} ${g("x")}))))
      (v128.store ${at("m")} ${g("m1")})
      (v128.store ${at("v")} ${g("v1")})
      (v128.store ${at("w")} (f32x4.sub ${vload("w")} (f32x4.mul ${g("vlr")}
        (f32x4.div (f32x4.mul ${g("m1")} ${g("vc1")})
          (f32x4.add (f32x4.sqrt (f32x4.mul ${g("v1")} ${g("vc2")})) ${g("veps")})))))`,
      `(local.set $sx ${fload("g")})
      (local.set $sm (f32.add (f32.mul ${g("b1")} ${fload("m")}) (f32.mul (f32.sub (f32.const 1) ${
        g("b1")
      }) ${g("sx")})))
      (local.set $sv (f32.add (f32.mul ${g("b2")} ${fload("v")}) (f32.mul (f32.sub (f32.const 1) ${
        g("b2")
      }) (f32.mul ${g("sx")} ${g("sx")}))))
      (f32.store ${at("m")} ${g("sm")})
      (f32.store ${at("v")} ${g("sv")})
      (f32.store ${at("w")} (f32.sub ${fload("w")} (f32.mul ${g("lr")}
        (f32.div (f32.mul ${g("sm")} ${g("c1")})
          (f32.add (f32.sqrt (f32.mul ${g("sv")} ${g("c2")})) ${g("eps")})))))`,
    )
  })
)`;
}
