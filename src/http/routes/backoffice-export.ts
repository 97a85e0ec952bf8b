import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { ActivityLogError } from '../../core/errors.js';
import { type ActivityPage, type ActivityQuery, MAX_QUERY_LIMIT } from '../../store/activity-store.js';
import {
  csvHeader,
  csvLine,
  ndjsonLine,
  type StoredActivityJson,
  storedActivityToJson,
} from '../activity-export.js';
import { requireToken } from '../auth.js';
import { withSnakeField } from '../snake-field.js';
import { parseActivityQuery } from './backoffice-activities.js';

export interface BackofficeExportRouteOptions {
  /** Reads a page of the log (the activity log's `query`). */
  readonly query: (query: ActivityQuery) => Promise<ActivityPage>;
  readonly adminToken: string | null;
}

interface ExportFormat {
  readonly contentType: string;
  readonly header: string;
  readonly line: (activity: StoredActivityJson) => string;
}

const FORMATS: Readonly<Record<'csv' | 'ndjson', ExportFormat>> = {
  csv: { contentType: 'text/csv; charset=utf-8', header: csvHeader(), line: csvLine },
  ndjson: { contentType: 'application/x-ndjson; charset=utf-8', header: '', line: ndjsonLine },
};

/**
 * `GET /api/backoffice/activity-logs/export.csv` and `.ndjson` (admin token or session): every
 * activity matching the list API's filters, newest first. Rows are read one keyset page at a time
 * and written as they come, so memory stays flat however many rows match.
 */
export function registerBackofficeExportRoutes(
  app: FastifyInstance,
  options: BackofficeExportRouteOptions,
): void {
  const { query: readLog } = options;
  const onRequest = requireToken({ token: options.adminToken, variable: 'ACTIVITY_LOG_ADMIN_TOKEN' });
  for (const [extension, format] of Object.entries(FORMATS)) {
    app.get<{ Querystring: unknown }>(
      `/api/backoffice/activity-logs/export.${extension}`,
      { onRequest },
      async (request, reply) => {
        const filter = exportFilter(request.query);
        const readPage = (cursor: string | undefined) =>
          readLog({ ...filter, limit: MAX_QUERY_LIMIT, cursor }).catch((error: unknown) => {
            throw withSnakeField(error);
          });
        // The first page is read before any byte is sent, so a bad filter or a down store is a JSON error.
        const first = await readPage(undefined);
        const stamp = new Date()
          .toISOString()
          .replaceAll(':', '-')
          .replace(/\.\d+Z$/, 'Z');
        reply
          .header('content-type', format.contentType)
          .header('content-disposition', `attachment; filename="activity-logs-${stamp}.${extension}"`)
          .header('x-content-type-options', 'nosniff');
        // HEAD gets the headers only; a stream handed to it would be read to the end for nothing.
        if (request.method === 'HEAD') return reply.send();
        return reply.send(Readable.from(exportChunks(first, readPage, format), { objectMode: false }));
      },
    );
  }
}

async function* exportChunks(
  first: ActivityPage,
  readPage: (cursor: string | undefined) => Promise<ActivityPage>,
  format: ExportFormat,
): AsyncGenerator<string> {
  if (format.header !== '') yield format.header;
  let page = first;
  for (;;) {
    if (page.data.length > 0)
      yield page.data.map((activity) => format.line(storedActivityToJson(activity, page.erasedIds))).join('');
    if (page.nextCursor === null) return;
    page = await readPage(page.nextCursor);
  }
}

/** The list API's filters; paging is the export's own business, so `limit` and `cursor` are refused. */
function exportFilter(query: unknown): ActivityQuery {
  const parsed = parseActivityQuery(query);
  for (const [field, value] of [
    ['limit', parsed.limit],
    ['cursor', parsed.cursor],
  ] as const) {
    if (value !== undefined) {
      throw new ActivityLogError(
        'VALIDATION_FAILED',
        `${field} is not accepted by an export: it always returns every matching activity`,
        { field },
      );
    }
  }
  return parsed;
}
