// @ts-expect-error: a plain JavaScript script, without declarations.
import { generatePrismaClients } from '../../scripts/generate-prisma-clients.js';

export default function setup(): void {
  generatePrismaClients();
}
