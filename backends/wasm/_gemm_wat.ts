/**
 * Source of dtrain's wasm GEMM kernel, as WebAssembly text. `tools/build_gemm.ts`
 * compiles it (with `wabt`) into `_gemm_wasm.ts`; a test checks the committed
 * binary is what this text compiles to.
 *
 * The module owns its memory (the caller copies operands in) and exports:
 * - `pack(braw, bp, K, N, bks, bjs)`: copies B (element `[k, j]` at float
 *   index `k * bks + j * bjs` from `braw`) into column panels at `bp`: one
 *   `[K][8]` panel per full block of 8 columns, then one `[K][4]` panel if 4
 *   or more columns remain;
 * - `gemm(a, bp, braw, c, M, N, K, ars, aks, bks, bjs)`: `C = A * B` with C
 *   `[M, N]` row-major at `c`, A's element `[i, k]` at float index
 *   `i * ars + k * aks` from `a` (so a transposed A costs nothing), B read
 *   from the panels (and from `braw` for the last `N % 4` columns);
 * - `im2row`: the same patches as `[rows][k]` (one row per output pixel,
 *   copied in contiguous runs), for the host BLAS's Conv2D and
 *   Conv2DBackpropFilter;
 * - `im2col` and `col2im`: the patch matrix of an NHWC input for
 *   Conv2DBackpropFilter, and the input gradient from column gradients for
 *   Conv2DBackpropInput (see `convFunctions`).
 *
 * The micro-kernel keeps a 6x8 block of C in twelve SIMD registers and
 * accumulates with `f32x4.relaxed_madd` (a fused multiply-add where the CPU
 * has one), streaming each B panel once per 6 rows of A.
 *
 * @module
 */

/** Rows of C per micro-kernel block. */
const MR = 6;

/**
 * The kernel module as WebAssembly text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gemmWat } from "./_gemm_wat.ts";
 * assert.ok(gemmWat().includes("f32x4.relaxed_madd"));
 * ```
 */
export function gemmWat(): string {
  const L: string[] = [];
  const accs: string[] = [];
  for (let r = 0; r < MR; r++) for (let v = 0; v < 2; v++) accs.push(`$acc${r}_${v}`);
  const locals = [
    "(local $panel i32) (local $i i32) (local $j i32) (local $k i32) (local $ka i32) (local $pb i32) (local $nb i32) (local $akb i32) (local $arb i32) (local $pc i32)",
    ...Array.from({ length: MR }, (_, r) => `(local $pa${r} i32)`),
    ...accs.map((a) => `(local ${a} v128)`),
    "(local $b0 v128) (local $b1 v128) (local $s v128) (local $sum f32)",
  ];
  function body(mr: number, nv: number, id: string): string {
    const out: string[] = [];
    for (let r = 0; r < mr; r++) {
      out.push(
        `(local.set $pa${r} (i32.add (local.get $a) (i32.mul (i32.add (local.get $i) (i32.const ${r})) (local.get $arb))))`,
      );
      for (let v = 0; v < nv; v++) out.push(`(local.set $acc${r}_${v} (v128.const f32x4 0 0 0 0))`);
    }
    out.push(`(local.set $pb (local.get $panel))`);
    out.push(`(local.set $ka (i32.const 0)) (local.set $k (local.get $K))`);
    out.push(`(block $kd${id} (loop $kl${id}`);
    out.push(`(br_if $kd${id} (i32.eqz (local.get $k)))`);
    out.push(`(local.set $b0 (v128.load (local.get $pb)))`);
    if (nv === 2) out.push(`(local.set $b1 (v128.load offset=16 (local.get $pb)))`);
    for (let r = 0; r < mr; r++) {
      out.push(`(local.set $s (v128.load32_splat (i32.add (local.get $pa${r}) (local.get $ka))))`);
      for (let v = 0; v < nv; v++) {
        out.push(
          `(local.set $acc${r}_${v} (f32x4.relaxed_madd (local.get $s) (local.get $b${v}) (local.get $acc${r}_${v})))`,
        );
      }
    }
    out.push(`(local.set $pb (i32.add (local.get $pb) (i32.const ${16 * nv})))`);
    out.push(`(local.set $ka (i32.add (local.get $ka) (local.get $akb)))`);
    out.push(`(local.set $k (i32.sub (local.get $k) (i32.const 1)))`);
    out.push(`(br $kl${id})))`);
    for (let r = 0; r < mr; r++) {
      out.push(
        `(local.set $pc (i32.add (local.get $c) (i32.shl (i32.add (i32.mul (i32.add (local.get $i) (i32.const ${r})) (local.get $N)) (local.get $j)) (i32.const 2))))`,
      );
      for (let v = 0; v < nv; v++) {
        out.push(`(v128.store offset=${16 * v} (local.get $pc) (local.get $acc${r}_${v}))`);
      }
    }
    return out.join("\n");
  }
  // rows loop for a column block of nv vectors
  function rows(nv: number, id: string): string {
    return `
    (local.set $i (i32.const 0))
    (block $id${id} (loop $il${id}
      (br_if $id${id} (i32.gt_u (i32.add (local.get $i) (i32.const ${MR})) (local.get $M)))
      ${body(MR, nv, `${id}m`)}
      (local.set $i (i32.add (local.get $i) (i32.const ${MR})))
      (br $il${id})))
    (block $td${id} (loop $tl${id}
      (br_if $td${id} (i32.ge_u (local.get $i) (local.get $M)))
      ${body(1, nv, `${id}t`)}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $tl${id})))`;
  }
  L.push(`(module
  (memory (export "memory") 1)
  (func (export "gemm") (param $a i32) (param $b i32) (param $braw i32) (param $c i32) (param $M i32) (param $N i32) (param $K i32) (param $ars i32) (param $aks i32) (param $bks i32) (param $bjs i32)
    ${locals.join("\n    ")}
    (local.set $nb (i32.shl (local.get $N) (i32.const 2)))
    (local.set $akb (i32.shl (local.get $aks) (i32.const 2)))
    (local.set $arb (i32.shl (local.get $ars) (i32.const 2)))
    (local.set $j (i32.const 0))
    (block $jd (loop $jl
      (br_if $jd (i32.gt_u (i32.add (local.get $j) (i32.const 8)) (local.get $N)))
      (local.set $panel (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $j) (i32.const 3)) (i32.shl (local.get $K) (i32.const 5)))))
      ${rows(2, "w")}
      (local.set $j (i32.add (local.get $j) (i32.const 8)))
      (br $jl)))
    (if (i32.le_u (i32.add (local.get $j) (i32.const 4)) (local.get $N)) (then
      (local.set $panel (i32.add (local.get $b) (i32.mul (i32.shr_u (local.get $j) (i32.const 3)) (i32.shl (local.get $K) (i32.const 5)))))
      ${rows(1, "n")}
      (local.set $j (i32.add (local.get $j) (i32.const 4)))))
    ;; scalar columns
    (block $sjd (loop $sjl
      (br_if $sjd (i32.ge_u (local.get $j) (local.get $N)))
      (local.set $i (i32.const 0))
      (block $sid (loop $sil
        (br_if $sid (i32.ge_u (local.get $i) (local.get $M)))
        (local.set $sum (f32.const 0))
        (local.set $pa0 (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $arb))))
        (local.set $pb (i32.add (local.get $braw) (i32.shl (i32.mul (local.get $j) (local.get $bjs)) (i32.const 2))))
        (local.set $k (local.get $K))
        (block $skd (loop $skl
          (br_if $skd (i32.eqz (local.get $k)))
          (local.set $sum (f32.add (local.get $sum) (f32.mul (f32.load (local.get $pa0)) (f32.load (local.get $pb)))))
          (local.set $pa0 (i32.add (local.get $pa0) (local.get $akb)))
          (local.set $pb (i32.add (local.get $pb) (i32.shl (local.get $bks) (i32.const 2))))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (br $skl)))
        (f32.store (i32.add (local.get $c) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $N)) (local.get $j)) (i32.const 2))) (local.get $sum))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sil)))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $sjl)))
  )
  (func (export "pack") (param $braw i32) (param $bp i32) (param $K i32) (param $N i32) (param $bks i32) (param $bjs i32)
    (local $j i32) (local $k i32) (local $w i32) (local $jj i32) (local $src i32) (local $dst i32)
    (local.set $dst (local.get $bp))
    (local.set $j (i32.const 0))
    (block $jd (loop $jl
      ;; width of this panel: 8, or 4 for the last partial block, else stop
      (local.set $w (i32.const 8))
      (if (i32.gt_u (i32.add (local.get $j) (i32.const 8)) (local.get $N)) (then
        (local.set $w (i32.const 4))
        (br_if $jd (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $N)))))
      (local.set $k (i32.const 0))
      (block $kd (loop $kl
        (br_if $kd (i32.ge_u (local.get $k) (local.get $K)))
        (local.set $src (i32.add (local.get $braw) (i32.shl (i32.add (i32.mul (local.get $k) (local.get $bks)) (i32.mul (local.get $j) (local.get $bjs))) (i32.const 2))))
        (if (i32.eq (local.get $bjs) (i32.const 1)) (then
          (v128.store (local.get $dst) (v128.load (local.get $src)))
          (if (i32.eq (local.get $w) (i32.const 8)) (then
            (v128.store offset=16 (local.get $dst) (v128.load offset=16 (local.get $src))))))
        (else
          (local.set $jj (i32.const 0))
          (block $jjd (loop $jjl
            (br_if $jjd (i32.ge_u (local.get $jj) (local.get $w)))
            (f32.store (i32.add (local.get $dst) (i32.shl (local.get $jj) (i32.const 2)))
              (f32.load (i32.add (local.get $src) (i32.shl (i32.mul (local.get $jj) (local.get $bjs)) (i32.const 2)))))
            (local.set $jj (i32.add (local.get $jj) (i32.const 1)))
            (br $jjl)))))
        (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $w) (i32.const 2))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $kl)))
      (local.set $j (i32.add (local.get $j) (local.get $w)))
      (br_if $jd (i32.eq (local.get $w) (i32.const 4)))
      (br $jl)))
  )
  ${convFunctions()}
)`);
  return L.join("\n");
}

/** Parameters shared by `im2col` and `col2im`: the NHWC input and the conv geometry. */
const CONV_PARAMS = [
  "n",
  "h",
  "w",
  "cin",
  "oh",
  "ow",
  "kh",
  "kw",
  "sh",
  "sw",
  "dh",
  "dw",
  "top",
  "left",
].map((p) => `(param $${p} i32)`).join(" ");

/** `(local.get $x)` shorthand. */
export const lg = (x: string): string => `(local.get $${x})`;

/** `for (let v = 0; v < end; v++) { body }` over i32 locals. */
/** A counted loop: `body` runs with local `$v` from 0 while `$v < end`. */
export function forRange(v: string, end: string, body: string): string {
  return `(local.set $${v} (i32.const 0))
    (block $${v}_d (loop $${v}_l
      (br_if $${v}_d (i32.ge_u ${lg(v)} ${end}))
      ${body}
      (local.set $${v} (i32.add ${lg(v)} (i32.const 1)))
      (br $${v}_l)))`;
}

/**
 * `im2col(x, p, ...)`: patches of the NHWC input at `x` as `[k][rows]` at
 * `p`, `k = (fh, fw, c)`, `rows = (b, y, xo)`, zeros outside the input
 * (the Conv2DBackpropFilter layout: `dW = patches * dy`).
 * `col2im(cols, dx, ...)`: the NHWC input gradient at `dx` from the
 * `[rows][k]` column gradients at `cols`, overlaps summed
 * (Conv2DBackpropInput: `cols = dy * W^T`).
 */
function convFunctions(): string {
  // Row iy / column ix of the input under output (y, xo) and tap (fh, fw);
  // an unsigned compare with h / w also rejects negatives.
  const iy = `(i32.sub (i32.add (i32.mul ${lg("y")} ${lg("sh")}) (i32.mul ${lg("fh")} ${
    lg("dh")
  })) ${lg("top")})`;
  const ix = `(i32.sub (i32.add (i32.mul ${lg("xo")} ${lg("sw")}) (i32.mul ${lg("fw")} ${
    lg("dw")
  })) ${lg("left")})`;
  const im2col = `(func (export "im2col") (param $x i32) (param $p i32) ${CONV_PARAMS}
    (local $fh i32) (local $fw i32) (local $c i32) (local $b i32) (local $y i32) (local $xo i32)
    (local $iy i32) (local $ix i32) (local $row i32) (local $at i32)
    (local.set $at ${lg("p")})
    ${
    forRange(
      "fh",
      lg("kh"),
      forRange(
        "fw",
        lg("kw"),
        forRange(
          "c",
          lg("cin"),
          forRange(
            "b",
            lg("n"),
            forRange(
              "y",
              lg("oh"),
              `(local.set $iy ${iy})
              (if (i32.lt_u ${lg("iy")} ${lg("h")})
                (then
                  (local.set $row (i32.mul (i32.add (i32.mul ${lg("b")} ${lg("h")}) ${lg("iy")}) ${
                lg("w")
              }))
                  ${
                forRange(
                  "xo",
                  lg("ow"),
                  `(local.set $ix ${ix})
                  (f32.store ${lg("at")}
                    (if (result f32) (i32.lt_u ${lg("ix")} ${lg("w")})
                      (then (f32.load (i32.add ${lg("x")} (i32.shl (i32.add (i32.mul (i32.add ${
                    lg("row")
                  } ${lg("ix")}) ${lg("cin")}) ${lg("c")}) (i32.const 2)))))
                      (else (f32.const 0))))
                  (local.set $at (i32.add ${lg("at")} (i32.const 4)))`,
                )
              })
                (else
                  (memory.fill ${lg("at")} (i32.const 0) (i32.shl ${lg("ow")} (i32.const 2)))
                  (local.set $at (i32.add ${lg("at")} (i32.shl ${lg("ow")} (i32.const 2))))))`,
            ),
          ),
        ),
      ),
    )
  })`;
  // dx[..., c] += cols[r, (fh, fw, c)], 4 channels at a time, then the rest.
  const addChannels = `(local.set $c (i32.const 0))
    (block $v_d (loop $v_l
      (br_if $v_d (i32.gt_u (i32.add ${lg("c")} (i32.const 4)) ${lg("cin")}))
      (v128.store (i32.add ${lg("d")} (i32.shl ${lg("c")} (i32.const 2)))
        (f32x4.add (v128.load (i32.add ${lg("d")} (i32.shl ${lg("c")} (i32.const 2))))
          (v128.load (i32.add ${lg("s")} (i32.shl ${lg("c")} (i32.const 2))))))
      (local.set $c (i32.add ${lg("c")} (i32.const 4)))
      (br $v_l)))
    (block $t_d (loop $t_l
      (br_if $t_d (i32.ge_u ${lg("c")} ${lg("cin")}))
      (f32.store (i32.add ${lg("d")} (i32.shl ${lg("c")} (i32.const 2)))
        (f32.add (f32.load (i32.add ${lg("d")} (i32.shl ${lg("c")} (i32.const 2))))
          (f32.load (i32.add ${lg("s")} (i32.shl ${lg("c")} (i32.const 2))))))
      (local.set $c (i32.add ${lg("c")} (i32.const 1)))
      (br $t_l)))`;
  const col2im = `(func (export "col2im") (param $cols i32) (param $dx i32) ${CONV_PARAMS}
    (local $fh i32) (local $fw i32) (local $c i32) (local $b i32) (local $y i32) (local $xo i32)
    (local $iy i32) (local $ix i32) (local $src i32) (local $s i32) (local $d i32) (local $kb i32)
    (memory.fill ${lg("dx")} (i32.const 0)
      (i32.shl (i32.mul (i32.mul (i32.mul ${lg("n")} ${lg("h")}) ${lg("w")}) ${
    lg("cin")
  }) (i32.const 2)))
    (local.set $kb (i32.shl (i32.mul (i32.mul ${lg("kh")} ${lg("kw")}) ${lg("cin")}) (i32.const 2)))
    (local.set $src ${lg("cols")})
    ${
    forRange(
      "b",
      lg("n"),
      forRange(
        "y",
        lg("oh"),
        forRange(
          "xo",
          lg("ow"),
          `${
            forRange(
              "fh",
              lg("kh"),
              `(local.set $iy ${iy})
              (if (i32.lt_u ${lg("iy")} ${lg("h")}) (then
                ${
                forRange(
                  "fw",
                  lg("kw"),
                  `(local.set $ix ${ix})
                  (if (i32.lt_u ${lg("ix")} ${lg("w")}) (then
                    (local.set $s (i32.add ${lg("src")} (i32.shl (i32.mul (i32.add (i32.mul ${
                    lg("fh")
                  } ${lg("kw")}) ${lg("fw")}) ${lg("cin")}) (i32.const 2))))
                    (local.set $d (i32.add ${
                    lg("dx")
                  } (i32.shl (i32.mul (i32.add (i32.mul (i32.add (i32.mul ${lg("b")} ${lg("h")}) ${
                    lg("iy")
                  }) ${lg("w")}) ${lg("ix")}) ${lg("cin")}) (i32.const 2))))
                    ${addChannels}))`,
                )
              }))`,
            )
          }
          (local.set $src (i32.add ${lg("src")} ${lg("kb")}))`,
        ),
      ),
    )
  })`;
  // im2row: per output pixel and filter row, the kw * cin values it sees are
  // contiguous in the input when the whole row is inside it and dw = 1: one
  // copy; otherwise cin values per tap, zeros outside the input.
  const copyRun = (dst: string, src: string, bytes: string) => `
    (if (i32.ge_u ${bytes} (i32.const 64))
      (then (memory.copy ${dst} ${src} ${bytes}))
      (else
        (local.set $q (i32.const 0))
        (block $cp_d (loop $cp_l
          (br_if $cp_d (i32.ge_u ${lg("q")} ${bytes}))
          (f32.store (i32.add ${dst} ${lg("q")}) (f32.load (i32.add ${src} ${lg("q")})))
          (local.set $q (i32.add ${lg("q")} (i32.const 4)))
          (br $cp_l)))))`;
  const im2row = `(func (export "im2row") (param $x i32) (param $p i32) ${CONV_PARAMS}
    (local $fh i32) (local $fw i32) (local $b i32) (local $y i32) (local $xo i32)
    (local $iy i32) (local $ix i32) (local $at i32) (local $q i32) (local $cb i32) (local $rb i32)
    (local $row i32)
    (local.set $cb (i32.shl ${lg("cin")} (i32.const 2)))
    (local.set $rb (i32.mul ${lg("kw")} ${lg("cb")}))
    (local.set $at ${lg("p")})
    ${
    forRange(
      "b",
      lg("n"),
      forRange(
        "y",
        lg("oh"),
        forRange(
          "xo",
          lg("ow"),
          forRange(
            "fh",
            lg("kh"),
            `(local.set $iy ${iy})
            (if (i32.ge_u ${lg("iy")} ${lg("h")})
              (then (memory.fill ${lg("at")} (i32.const 0) ${lg("rb")}))
              (else
                (local.set $row (i32.mul (i32.add (i32.mul ${lg("b")} ${lg("h")}) ${lg("iy")}) ${
              lg("w")
            }))
                (local.set $fw (i32.const 0))
                (local.set $ix ${ix})
                (if (i32.and (i32.eq ${lg("dw")} (i32.const 1))
                      (i32.and (i32.ge_s ${lg("ix")} (i32.const 0))
                        (i32.le_s (i32.add ${lg("ix")} ${lg("kw")}) ${lg("w")})))
                  (then ${
              copyRun(
                lg("at"),
                `(i32.add ${lg("x")} (i32.mul (i32.add ${lg("row")} ${lg("ix")}) ${lg("cb")}))`,
                lg("rb"),
              )
            })
                  (else ${
              forRange(
                "fw",
                lg("kw"),
                `(local.set $ix ${ix})
                (if (i32.lt_u ${lg("ix")} ${lg("w")})
                  (then ${
                  copyRun(
                    `(i32.add ${lg("at")} (i32.mul ${lg("fw")} ${lg("cb")}))`,
                    `(i32.add ${lg("x")} (i32.mul (i32.add ${lg("row")} ${lg("ix")}) ${lg("cb")}))`,
                    lg("cb"),
                  )
                })
                  (else (memory.fill (i32.add ${lg("at")} (i32.mul ${lg("fw")} ${
                  lg("cb")
                })) (i32.const 0) ${lg("cb")})))`,
              )
            }))))
            (local.set $at (i32.add ${lg("at")} ${lg("rb")}))`,
          ),
        ),
      ),
    )
  })`;
  return `${im2col}
  ${im2row}
  ${col2im}`;
}
