/**
 * A model with a custom layer. Every replica Worker imports this module, so
 * the layer class is registered there too, and calls `build()`.
 *
 * @module
 */
import { tf } from "../../mod.ts";

/** Learnable per-feature gain and bias, applied before the dense layers. */
export class FeatureGain extends tf.layers.Layer {
  static className = "FeatureGain";
  gain!: tf.LayerVariable;
  bias!: tf.LayerVariable;

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const features = (inputShape as tf.Shape)[1] as number;
    this.gain = this.addWeight("gain", [features], "float32", tf.initializers.ones());
    this.bias = this.addWeight("bias", [features], "float32", tf.initializers.zeros());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => tf.add(tf.mul(x, this.gain.read()), this.bias.read()));
  }
}
tf.serialization.registerClass(FeatureGain);

/** Builds and compiles the model; called in the main thread and in every replica. */
export function build(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      new FeatureGain({ inputShape: [784] }),
      tf.layers.dense({ units: 128, activation: "relu" }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
  model.compile({
    optimizer: tf.train.adam(0.001),
    loss: "categoricalCrossentropy",
    metrics: ["accuracy"],
  });
  return model;
}
