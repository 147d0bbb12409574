// dicomweb-client.js — drives the npm dicomweb-client library (0.11.3,
// what browser viewers such as OHIF use) against a DICOMweb server:
//
//   node dicomweb-client.js BASE_URL STUDY_UID FILE.dcm...
//
// stores the files (STOW-RS), searches for the study, its series and
// instances (QIDO-RS), retrieves the study's metadata and one instance
// (WADO-RS), checks what came back, prints one summary line and exits
// non-zero on any mismatch. Node has no XMLHttpRequest; xhr2 provides it.
"use strict";
global.XMLHttpRequest = require("xhr2");
const fs = require("fs");
const { api } = require("dicomweb-client");

function fail(msg) {
  console.error("dicomweb-client: " + msg);
  process.exit(1);
}

async function main() {
  const [url, study, ...files] = process.argv.slice(2);
  const client = new api.DICOMwebClient({ url });
  const datasets = files.map((f) => {
    const b = fs.readFileSync(f);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  });
  await client.storeInstances({ datasets });

  const studies = await client.searchForStudies({ queryParams: { StudyInstanceUID: study } });
  if (studies.length !== 1 || studies[0]["0020000D"].Value[0] !== study) fail("search for the study: " + JSON.stringify(studies));
  const n = studies[0]["00201208"] && studies[0]["00201208"].Value[0];
  if (n !== files.length) fail(`NumberOfStudyRelatedInstances ${n}, want ${files.length}`);
  const series = await client.searchForSeries({ studyInstanceUID: study });
  if (series.length !== 1) fail("search for series: " + series.length);
  const seriesUID = series[0]["0020000E"].Value[0];
  const instances = await client.searchForInstances({ studyInstanceUID: study, seriesInstanceUID: seriesUID });
  if (instances.length !== files.length) fail(`search for instances: ${instances.length}, want ${files.length}`);

  const metadata = await client.retrieveStudyMetadata({ studyInstanceUID: study });
  if (metadata.length !== files.length) fail(`study metadata: ${metadata.length} instances`);
  for (const m of metadata) {
    if (!m["00280010"] || m["00280010"].Value[0] !== 512) fail("metadata Rows: " + JSON.stringify(m["00280010"]));
  }
  const sop = instances[0]["00080018"].Value[0];
  const retrieved = await client.retrieveInstance({ studyInstanceUID: study, seriesInstanceUID: seriesUID, sopInstanceUID: sop });
  const bytes = new Uint8Array(retrieved);
  const dicm = String.fromCharCode(...bytes.slice(128, 132));
  if (dicm !== "DICM") fail("retrieved instance is not a Part 10 file");
  // The pixel data (512×512×2 bytes) is the bulk of a slice: it came back whole.
  if (bytes.length < 512 * 512 * 2) fail(`retrieved instance of ${bytes.length} bytes`);
  console.log(`stored ${files.length}, found study/series/${instances.length} instances, metadata ${metadata.length}, retrieved ${bytes.length} bytes`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
