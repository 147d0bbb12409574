// Validates FHIR R4 resources with npm fhir 4.12 (errorOnUnexpected: unknown
// properties are errors). Input: JSON files named in argv, or JSON on stdin
// when there are none; each is a resource, an array of resources, or a Bundle
// (its entries are validated). Prints every message; exits 1 on any error.
// Usage: npm install fhir@4.12.0; node fhir-validate.js [file.json…] < resources.json
const fs = require('fs');
const { Fhir } = require('fhir');
const fhir = new Fhir();
const inputs = process.argv.length > 2 ? process.argv.slice(2).map(f => fs.readFileSync(f, 'utf8')) : [fs.readFileSync(0, 'utf8')];
const resources = [];
for (const text of inputs) {
  const v = JSON.parse(text);
  for (const r of Array.isArray(v) ? v : [v]) {
    if (r.resourceType === 'Bundle' && r.type !== 'transaction' && r.type !== 'batch') {
      for (const e of r.entry || []) resources.push(e.resource);
    } else resources.push(r);
  }
}
let errors = 0;
for (const r of resources) {
  const name = (r && r.resourceType) + '/' + (r && r.id);
  const res = fhir.validate(r, { errorOnUnexpected: true });
  for (const m of res.messages || []) {
    console.log(`${name}: ${m.severity}: ${m.location}: ${m.message}`);
    if (m.severity === 'error') errors++;
  }
  if (!res.valid && !(res.messages || []).some(m => m.severity === 'error')) { console.log(`${name}: invalid`); errors++; }
}
console.log(`${resources.length} resources, ${errors} errors`);
process.exit(errors ? 1 : 0);
