/**
 * The classic Keras parallel-training tutorial, line for line in dtrain.
 * Each Keras line is quoted in a comment above its dtrain equivalent.
 *
 *   deno run -A examples/keras_tutorial.ts [--epochs 10] [--limit 8000]
 *
 * Part 1 trains with `fit(..., { workers: 2 })` (Keras `workers=2`), which
 * in dtrain really trains on two cores: asynchronous workers around a
 * parameter server (WorkerStrategy). Part 2 uses `parallelModel` (Keras
 * `multi_gpu_model`): synchronous replicas with all-reduced gradients
 * (MirroredStrategy), one per core instead of one per GPU.
 *
 * @module
 */
import { fit, loadMnist, parallelModel, tf, toTensors } from "../mod.ts";
import { selectBackend } from "../backends/mod.ts";
import { flags } from "./_args.ts";

const f = flags({ epochs: "10", limit: "8000" });
const epochs = Number(f.epochs);

// The parameter server of part 1 applies every update on the main thread: WASM.
await selectBackend({ prefer: "wasm", threads: 1 });

// (x_train, y_train), (x_test, y_test) = mnist.load_data()
// x_train = x_train.reshape(60000, 784).astype('float32') / 255
// y_train = keras.utils.to_categorical(y_train, 10)
const { train, test } = await loadMnist({ trainCount: Number(f.limit), testCount: 2000, seed: 7 });
const { xs: xTrain, ys: yTrain } = toTensors(train, { numClasses: 10 });
const { xs: xTest, ys: yTest } = toTensors(test, { numClasses: 10 });

function buildModel(): tf.Sequential {
  // model = Sequential()
  // model.add(Dense(512, activation='relu', input_shape=(784,)))
  // model.add(Dense(10, activation='softmax'))
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 512, activation: "relu", inputShape: [784] }),
      tf.layers.dense({ units: 10, activation: "softmax" }),
    ],
  });
}

// ---- Part 1: model.fit(x, y, epochs=10, batch_size=32, workers=2) ----
const model = buildModel();
// model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
model.compile({ loss: "categoricalCrossentropy", optimizer: "adam", metrics: ["accuracy"] });
// model.fit(x_train, y_train, epochs=10, batch_size=32, workers=2)
await fit(model, xTrain, yTrain, { epochs, batchSize: 32, workers: 2, verbose: 1 });
// score = model.evaluate(x_test, y_test)
const [loss1, acc1] = (model.evaluate(xTest, yTest) as tf.Scalar[]).map((s) => s.dataSync()[0]!);
console.log(
  `keras_tutorial fit(workers=2): test accuracy ${(acc1! * 100).toFixed(2)}% (loss ${
    loss1!.toFixed(4)
  })`,
);

// ---- Part 2: parallel_model = multi_gpu_model(model, gpus=2) ----
const template = buildModel();
// parallel_model = multi_gpu_model(model, gpus=2)
await using parallel = parallelModel(template, { replicas: 2 });
// parallel_model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
parallel.compile({ loss: "categoricalCrossentropy", optimizer: "adam", metrics: ["accuracy"] });
// parallel_model.fit(x, y, epochs=10, batch_size=256)   # batch_size is the global batch
await parallel.fit(xTrain, yTrain, { epochs, batchSize: 256, verbose: 1 });
// score = parallel_model.evaluate(x_test, y_test)
const scores = await parallel.evaluate(xTest, yTest);
console.log(
  `keras_tutorial multi_gpu_model(gpus=2): test accuracy ${(scores.acc! * 100).toFixed(2)}% ` +
    `(loss ${scores.loss!.toFixed(4)})`,
);
// The template model holds the trained weights, as with multi_gpu_model.
const probs = parallel.predict(xTest.slice(0, 5)) as tf.Tensor;
console.log(`predicted classes of 5 test digits: ${Array.from(tf.argMax(probs, 1).dataSync())}`);

tf.dispose([xTrain, yTrain, xTest, yTest, probs]);
