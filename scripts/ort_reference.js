// Reference outputs from ONNX Runtime (onnxruntime-node, CPU execution provider) for the tests that
// compare qyolo with ONNX Runtime on the same file (QOperator-quantized and YOLOv8 models).
// Set up once, as ../shared/bench/ort_cpu_peer.js (npm registry; --ignore-scripts skips the CUDA
// download):
//   mkdir -p ~/.ort-peer && cd ~/.ort-peer && echo '{"name":"ort-peer","private":true}' > package.json &&
//   npm install --ignore-scripts onnxruntime-node@1.30.0
// Run:
//   NODE_PATH=~/.ort-peer/node_modules node scripts/ort_reference.js MODEL.onnx INPUT.npy OUT_PREFIX
// Feeds INPUT.npy (float32, C order) to the model's first input and writes every output as
// OUT_PREFIX<output name with '/' -> '_'>.npy (float32); prints the written files as one JSON line.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  const hlen = major >= 2 ? b.readUInt32LE(8) : b.readUInt16LE(8);
  const hstart = major >= 2 ? 12 : 10;
  const header = b.toString('latin1', hstart, hstart + hlen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${path}: only little-endian float32 is read (${header})`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order is not read`);
  const m = header.match(/'shape':\s*\(([^)]*)\)/);
  const shape = m[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const off = hstart + hlen;
  const n = shape.reduce((a, d) => a * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(off + 4 * i);
  return {shape, data};
}

function writeNpy(path, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const h = Buffer.alloc(10);
  h.write('\x93NUMPY', 0, 'latin1');
  h[6] = 1;
  h[7] = 0;
  h.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(Number(data[i]), 4 * i);
  fs.writeFileSync(path, Buffer.concat([h, Buffer.from(header, 'latin1'), body]));
}

const [model, input, prefix] = process.argv.slice(2);
if (!prefix) {
  console.error('usage: ort_reference.js MODEL.onnx INPUT.npy OUT_PREFIX');
  process.exit(2);
}
(async () => {
  // Sequential, one thread, no graph rewrites beyond the basic ones: the reference should be ONNX
  // Runtime's kernels on the file as written.
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, interOpNumThreads: 1,
    graphOptimizationLevel: 'basic', executionMode: 'sequential'});
  const x = readNpy(input);
  const out = await s.run({[s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape)});
  const written = [];
  for (const name of s.outputNames) {
    const t = out[name];
    const file = prefix + name.replace(/\//g, '_') + '.npy';
    writeNpy(file, t.dims, t.data);
    written.push({name, file, shape: t.dims});
  }
  console.log(JSON.stringify({model, input, outputs: written}));
})().catch(e => { console.error(String(e)); process.exit(1); });
