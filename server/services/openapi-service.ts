import { fetchAbility } from '../../privileges/ability-cache.ts';
import { permittedPersonColumns } from '../../privileges/permitted-columns.ts';
import type { ColumnType } from '../../warehouse/core/column-types.ts';
import type { AppContext } from '../context.ts';
import { MAX_BATCH_IDS } from './person-service.ts';
import { listRunnableQueries } from './query-service.ts';
import { TOKEN_TTL_SECONDS, type ApiCaller } from './token-service.ts';

type Schema = Record<string, unknown>;

const SCHEMA_OF_TYPE: Record<ColumnType, Schema> = {
  string: { type: 'string' },
  text: { type: 'string' },
  integer: { type: 'integer' },
  number: { type: 'number' },
  boolean: { type: 'boolean' },
  date: { type: 'string', format: 'date' },
  datetime: { type: 'string', description: 'YYYY-MM-DD HH:mm:ss' },
};

const ERROR_RESPONSE = {
  description: 'Error',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        properties: {
          error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
};

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [String(c), ERROR_RESPONSE]));

/**
 * The OpenAPI document of what this caller may call, built from its grants as they are now:
 * the person schema lists only the tables and columns the lookup would return, and the
 * entity's saved queries appear exactly when they would run (every table and column they
 * list, join, filter or sort on readable).
 */
export async function buildOpenApi(ctx: AppContext, caller: ApiCaller, serverUrl: string): Promise<Schema> {
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const catalog = await ctx.catalog.fetch();
  const personTables: Schema = {};
  for (const table of catalog) {
    const columns = permittedPersonColumns(ability, table);
    if (columns.length === 0) continue;
    const types = new Map(table.columns.map((c) => [c.name, c]));
    personTables[table.name] = {
      type: 'array',
      description: `${table.label.en} — ${table.label.ar}`,
      items: {
        type: 'object',
        properties: Object.fromEntries(
          columns.map((c) => [
            c,
            {
              ...SCHEMA_OF_TYPE[types.get(c)!.type],
              description: `${types.get(c)!.label.en} — ${types.get(c)!.label.ar}`,
            },
          ]),
        ),
      },
    };
  }
  const paths: Schema = {
    '/api/v1/token': {
      post: {
        summary: 'Client-credentials token',
        security: [],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['grant_type', 'client_id', 'client_secret'],
                properties: {
                  grant_type: { enum: ['client_credentials'] },
                  client_id: { type: 'string' },
                  client_secret: { type: 'string' },
                },
              },
            },
          },
        },
        responses: {
          '200': {
            description: `A bearer token valid ${TOKEN_TTL_SECONDS} seconds`,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    access_token: { type: 'string' },
                    token_type: { enum: ['Bearer'] },
                    expires_in: { type: 'integer' },
                  },
                },
              },
            },
          },
          ...errors(400, 401, 403),
        },
      },
    },
    '/api/v1/persons/{national_id}': {
      get: {
        summary: 'Everything the caller may read about one person',
        parameters: [
          {
            name: 'national_id',
            in: 'path',
            required: true,
            schema: { type: 'string', pattern: `^\\d{${ctx.nationalIdRule.length}}$` },
          },
        ],
        responses: {
          '200': {
            description: 'The granted tables and columns holding the person',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    national_id: { type: 'string' },
                    tables: { type: 'object', properties: personTables },
                  },
                },
              },
            },
          },
          ...errors(400, 401, 404, 429),
        },
      },
    },
    '/api/v1/persons:batch': {
      post: {
        summary: `Up to ${MAX_BATCH_IDS} persons in one call, each answered as its single lookup would be`,
        description:
          'Results come in the order asked. A person no table the caller may read holds is a 404 result, ' +
          'exactly as an unknown ID. A malformed or repeated ID refuses the whole call with 400. ' +
          'One call counts as one request against the rate limits.',
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['national_ids'],
                additionalProperties: false,
                properties: {
                  national_ids: {
                    type: 'array',
                    minItems: 1,
                    maxItems: MAX_BATCH_IDS,
                    uniqueItems: true,
                    items: { type: 'string', pattern: `^\\d{${ctx.nationalIdRule.length}}$` },
                  },
                },
              },
            },
          },
        },
        responses: {
          '200': {
            description: 'One result per ID: 200 with the tables, or 404 with the error of the single lookup',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    results: {
                      type: 'array',
                      items: {
                        type: 'object',
                        required: ['national_id', 'status'],
                        properties: {
                          national_id: { type: 'string' },
                          status: { enum: [200, 404] },
                          tables: { type: 'object', properties: personTables },
                          error: ERROR_RESPONSE.content['application/json'].schema.properties.error,
                        },
                      },
                    },
                  },
                },
              },
            },
          },
          ...errors(400, 401, 429),
        },
      },
    },
    '/api/v1/queries': {
      get: {
        summary: "The caller's saved queries and their parameters",
        responses: { '200': { description: 'Saved queries' }, ...errors(401, 429) },
      },
    },
  };
  for (const query of await listRunnableQueries(ctx, caller)) {
    paths[`/api/v1/queries/${query.name}`] = {
      post: {
        summary: query.description,
        requestBody: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  params: {
                    type: 'object',
                    required: Object.entries(query.params)
                      .filter(([, p]) => p.required)
                      .map(([n]) => n),
                    properties: Object.fromEntries(
                      Object.entries(query.params).map(([n, p]) => [n, SCHEMA_OF_TYPE[p.type]]),
                    ),
                  },
                  page: { type: 'integer', minimum: 1 },
                  page_size: { type: 'integer', minimum: 1, maximum: 1000 },
                  next: {
                    type: 'string',
                    description:
                      "The previous answer's next, in place of page: continues right after its last row",
                  },
                },
              },
            },
          },
        },
        responses: {
          '200': {
            description: `Rows of ${query.columns.join(', ')} (at most ${query.limit})`,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    query: { type: 'string' },
                    columns: { type: 'array', items: { type: 'string' } },
                    rows: { type: 'array', items: { type: 'object' } },
                    page: { type: 'integer' },
                    page_size: { type: 'integer' },
                    has_more: { type: 'boolean' },
                    next: {
                      type: 'string',
                      description:
                        'Present while rows remain: send it back, with the same params, for the next page',
                    },
                    truncated: {
                      type: 'boolean',
                      enum: [true],
                      description: `Present when the limit (${query.limit}) cut rows off`,
                    },
                  },
                },
              },
            },
          },
          ...errors(400, 401, 403, 404, 429),
        },
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: {
      title: `Registry Hub API for ${caller.entity}`,
      version: '1.0.0',
      description: `Client ${caller.clientId}`,
    },
    servers: [{ url: serverUrl }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
