/**
 * Trains the custom-layer model of `model.ts` in replicas: the strategy is
 * given the module URL, and each replica Worker imports it and calls `build`.
 *
 *   deno run -A examples/custom_layer/train.ts [--epochs 3]
 *
 * @module
 */
import { loadMnist, MirroredStrategy, tf, toTensors } from "../../mod.ts";
import { flags } from "../_args.ts";
import { build } from "./model.ts";

const f = flags({ epochs: "3", limit: "8000" });
await tf.setBackend("cpu");
const { train, test } = await loadMnist({ trainCount: Number(f.limit), testCount: 2000, seed: 3 });
const trainSet = toTensors(train, { numClasses: 10 });
const testSet = toTensors(test, { numClasses: 10 });

const model = build();
await using strategy = new MirroredStrategy({
  modelModule: { url: new URL("./model.ts", import.meta.url), exportName: "build" },
});
await strategy.fit(model, trainSet.xs, trainSet.ys, {
  epochs: Number(f.epochs),
  batchSize: 128,
  seed: 1,
});
const scores = await strategy.evaluate(model, testSet.xs, testSet.ys);
const gain = model.layers[0]!.getWeights()[0]!.dataSync();
console.log(`custom_layer: test accuracy ${(scores.acc! * 100).toFixed(2)}%`);
console.log(`FeatureGain trained: gain[400] = ${gain[400]!.toFixed(4)} (initialised to 1)`);
tf.dispose([trainSet.xs, trainSet.ys, testSet.xs, testSet.ys]);
