// Writes docs/openapi.json from the built server's description (`npm run openapi` builds first).
import { writeFileSync } from 'node:fs';
import { openApiDocumentText } from '../dist/http/openapi.js';

const target = new URL('../docs/openapi.json', import.meta.url);
writeFileSync(target, openApiDocumentText());
console.log('wrote docs/openapi.json');
