// ort-node.js — the raw ONNX Runtime baseline of `make bench`: the same
// library file radgate loads (onnxruntime-node 1.30.0 ships it), driven
// from Node with no gateway in between.
//
//   node ort-node.js MODEL.onnx C H W BATCH SECONDS THREADS
//
// Runs batches of BATCH random C×H×W float32 items back to back for about
// SECONDS (after a warm-up) with THREADS intra-op threads and one inter-op
// thread, and prints one JSON line: items per second and per-run latency
// percentiles in milliseconds.
"use strict";
const ort = require("onnxruntime-node");

async function main() {
  const [model, c, h, w, batch, seconds, threads] = process.argv.slice(2);
  const [C, H, W, B] = [c, h, w, batch].map(Number);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads),
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const data = new Float32Array(B * C * H * W);
  let seed = 1;
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    data[i] = seed / 0x7fffffff - 0.5;
  }
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", data, [B, C, H, W]) };
  for (let i = 0; i < 3; i++) await session.run(feeds); // warm-up
  const lat = [];
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(Number(seconds) * 1e9));
  while (process.hrtime.bigint() - start < budget || lat.length < 5) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
  console.log(JSON.stringify({
    runs: lat.length, batch: B, items_per_s: (lat.length * B) / elapsed,
    p50_ms: pct(50), p99_ms: pct(99),
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
