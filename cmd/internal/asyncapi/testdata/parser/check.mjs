// Parses an AsyncAPI document with the official parser and exits 1 when any
// diagnostic has severity error (0); warnings are printed but pass.
// Usage: node check.mjs doc.json
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const path = process.argv[2];
if (!path) {
  console.error('usage: node check.mjs doc.json');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, 'utf8'));
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = d.severity === 0 ? 'error' : d.severity === 1 ? 'warning' : 'info';
  console.log(`${level}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
}
if (errors.length > 0 || !document) {
  console.error(`${errors.length} error(s): the document is not valid AsyncAPI`);
  process.exit(1);
}
console.log(`ok: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations`);
